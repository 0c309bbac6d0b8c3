/* Checkpoint throughput: writing (commit included: flush, fsync, rename) and reading back a
 * 64 MiB checkpoint of 16 float32 arrays, and the CRC-32C that guards each array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "leibniz.h"
#include "io/checkpoint.h"
#include "io/ckpt_internal.h"
#include "bench.h"

enum { NARR = 16, REPS = 3 };

int main(void) {
    char dir[] = "/tmp/lz_bench_ckpt_XXXXXX";
    if (!mkdtemp(dir)) { fprintf(stderr, "cannot make a temporary folder\n"); return 1; }
    char path[128];
    snprintf(path, sizeof path, "%s/bench.h5", dir);
    const int64_t n = 1 << 20;   /* 4 MiB each */
    lz_array *a[NARR];
    for (int i = 0; i < NARR; i++) {
        a[i] = lz_random_normal(lz_key_new((uint64_t)i), 1, &n, 0, 1, LZ_F32);
        lz_eval1(a[i]);
    }
    double mib = NARR * (double)n * 4 / (1 << 20);
    double best_w = 1e9, best_r = 1e9;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        lz_ckpt_writer *w = lz_ckpt_create(path);
        for (int i = 0; i < NARR; i++) {
            char name[48];
            snprintf(name, sizeof name, "blocks.%d.mlp.weight", i);
            lz_ckpt_put(w, "params", name, a[i]);
        }
        lz_ckpt_set_int(w, "step", r);
        if (lz_ckpt_commit(w)) { fprintf(stderr, "%s\n", lz_error()); return 1; }
        double t1 = now();
        lz_ckpt *c = lz_ckpt_open(path);
        if (!c) { fprintf(stderr, "%s\n", lz_error()); return 1; }
        for (int i = 0; i < NARR; i++) {
            char name[48];
            snprintf(name, sizeof name, "blocks.%d.mlp.weight", i);
            lz_array *b = lz_ckpt_get(c, "params", name);
            if (!b) { fprintf(stderr, "%s\n", lz_error()); return 1; }
            lz_release(b);
        }
        lz_ckpt_close(c);
        double t2 = now();
        if (t1 - t0 < best_w) best_w = t1 - t0;
        if (t2 - t1 < best_r) best_r = t2 - t1;
    }
    printf("BENCH ckpt_write_64MiB %.1f MiB/s\n", mib / best_w);
    printf("BENCH ckpt_read_64MiB %.1f MiB/s\n", mib / best_r);
    const void *p = lz_data(a[0]);
    volatile uint32_t crc = 0;   /* keeps the loop */
    double t0 = now();
    for (int r = 0; r < 20; r++) crc = ckpt_crc32c(crc, p, (size_t)n * 4);
    double t = now() - t0;
    printf("BENCH ckpt_crc32c %.2f GB/s\n", 20.0 * (double)n * 4 / t / 1e9);
    for (int i = 0; i < NARR; i++) lz_release(a[i]);
    unlink(path);
    rmdir(dir);
    return 0;
}
