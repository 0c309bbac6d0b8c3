/* libFuzzer harness for the dataset reader: the input is written to a file, its splits are
 * listed, and split "train" is opened and its first and last examples (or tokens) read.
 * libhdf5 runs first in h5_probe's child (see fuzz_ckpt.c). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "leibniz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/lz_fuzz_data_%ld.h5", (long)getpid());
        if (!getenv("LZ_H5_TIMEOUT")) setenv("LZ_H5_TIMEOUT", "2", 1);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char **splits;
    int ns = lz_dataset_splits(path, &splits);
    if (ns >= 0) free(splits);
    lz_dataset *ds = lz_dataset_open(path, "train");
    if (!ds) return 0;
    const lz_data_info *in = lz_dataset_info(ds);
    if (in->kind == LZ_DATA_IMAGES && (int64_t)in->height * in->width * in->channels <= 1 << 20) {
        int64_t idx[2] = {0, in->length - 1};
        uint8_t *img = malloc((size_t)(2 * in->height * in->width * in->channels));
        int32_t lab[2];
        if (img) lz_dataset_read_images(ds, 2, idx, img, in->has_labels ? lab : NULL);
        free(img);
    } else if (in->kind == LZ_DATA_TEXT) {
        int32_t t[4];
        lz_dataset_read_tokens(ds, 0, in->length < 4 ? in->length : 4, t);
    }
    lz_dataset_close(ds);
    return 0;
}
