/* libFuzzer harness for the checkpoint reader: the input is written to a file and opened as a
 * checkpoint unverified (LZ_CKPT_UNVERIFIED=1, so that libhdf5 is reached despite the checksum
 * header), then every array of the usual sections and the usual keys are read. libhdf5 runs
 * first in h5_probe's child, so a crash or hang there is a clean refusal here; what this
 * finds is a crash, leak or hang of leibniz's own code or of the in-process pass. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "leibniz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/lz_fuzz_ckpt_%ld.h5", (long)getpid());
        setenv("LZ_CKPT_UNVERIFIED", "1", 1);
        if (!getenv("LZ_H5_TIMEOUT")) setenv("LZ_H5_TIMEOUT", "2", 1);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) return 0;
    static const char *const sections[] = {"params", "optim", "buffers"};
    for (int s = 0; s < 3; s++) {
        int64_t n;
        const char *const *names = lz_ckpt_names(c, sections[s], &n);
        for (int64_t i = 0; names && i < n; i++) {
            lz_pool_push();
            lz_ckpt_get(c, sections[s], names[i]);
            lz_pool_pop();
        }
    }
    int64_t v;
    double d;
    size_t nb;
    lz_key keys[16];
    lz_ckpt_get_str(c, "config");
    lz_ckpt_get_str(c, "metrics");
    lz_ckpt_get_int(c, "step", &v);
    lz_ckpt_get_float(c, "best_metric", &d);
    lz_ckpt_get_bytes(c, "loader", &nb);
    lz_ckpt_get_keys(c, "rng", keys, 16);
    lz_ckpt_close(c);
    return 0;
}
