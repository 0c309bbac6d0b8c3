/* A mutation hunter for the checkpoint and dataset readers (no coverage feedback; libFuzzer
 * harnesses are fuzz_ckpt.c and fuzz_dataset.c). Each mutant of a seed file (a few bytes
 * flipped or set to 0x00/0xff/random) goes through lz_ckpt_open + a read of every key and
 * array, or lz_dataset_open + reads. It counts outcomes and keeps the mutants on which
 * libhdf5 crashed or hung inside the probe (the messages of h5_probe), for the regression
 * corpus: without the probe, those would have crashed or hung the program.
 *   hunt ckpt|dataset SEED ITERATIONS OUTDIR [MAXKEEP]
 * LZ_CKPT_UNVERIFIED=1 is set, so that checkpoints reach libhdf5 despite their checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "leibniz.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static unsigned char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)*n);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) { fclose(f); free(b); return NULL; }
    fclose(f);
    return b;
}

static void dump(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(b, 1, (size_t)n, f); fclose(f); }
}

/* 0 opened, 1 refused cleanly, 2 libhdf5 crashed in the probe, 3 it hung */
static int try_ckpt(const char *path) {
    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) {
        const char *e = lz_error();
        return strstr(e, "crashed") || strstr(e, "failed reading it") ? 2
             : strstr(e, "did not finish") ? 3 : 1;
    }
    int64_t n;
    const char *sec[] = {"params", "optim", "buffers"};
    for (int s = 0; s < 3; s++) {
        const char *const *nm = lz_ckpt_names(c, sec[s], &n);
        for (int64_t i = 0; nm && i < n; i++) {
            lz_pool_push();
            lz_ckpt_get(c, sec[s], nm[i]);
            lz_pool_pop();
        }
    }
    lz_ckpt_get_str(c, "config");
    lz_ckpt_get_str(c, "metrics");
    int64_t v;
    lz_ckpt_get_int(c, "step", &v);
    lz_ckpt_close(c);
    return 0;
}

static int try_dataset(const char *path) {
    lz_dataset *ds = lz_dataset_open(path, "train");
    if (!ds) {
        const char *e = lz_error();
        return strstr(e, "crashed") || strstr(e, "failed reading it") ? 2
             : strstr(e, "did not finish") ? 3 : 1;
    }
    const lz_data_info *in = lz_dataset_info(ds);
    if (in->kind == LZ_DATA_IMAGES && in->length > 0 && in->length < 100000 &&
        (int64_t)in->height * in->width * in->channels < 1 << 20) {
        int64_t idx[2] = {0, in->length - 1};
        uint8_t *img = malloc((size_t)(2 * in->height * in->width * in->channels));
        int32_t lab[2];
        lz_dataset_read_images(ds, 2, idx, img, in->has_labels ? lab : NULL);
        free(img);
    }
    lz_dataset_close(ds);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: hunt ckpt|dataset SEED ITERATIONS OUTDIR [MAXKEEP]\n"); return 2; }
    int ckpt = !strcmp(argv[1], "ckpt");
    long n;
    unsigned char *seed = slurp(argv[2], &n);
    if (!seed) { fprintf(stderr, "%s: cannot read\n", argv[2]); return 2; }
    long iters = atol(argv[3]);
    int maxkeep = argc > 5 ? atoi(argv[5]) : 10;
    rng ^= (uint64_t)time(NULL);
    setenv("LZ_CKPT_UNVERIFIED", "1", 1);
    unsigned char *m = malloc((size_t)n);
    char tmp[512], keep[600];
    snprintf(tmp, sizeof tmp, "%s/mutant.h5", argv[4]);
    long count[4] = {0};
    int kept = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long it = 0; it < iters; it++) {
        memcpy(m, seed, (size_t)n);
        int flips = 1 + (int)(next() % 8);
        for (int k = 0; k < flips; k++) {
            long at = (long)(next() % (uint64_t)n);
            switch (next() % 4) {
            case 0: m[at] ^= (unsigned char)(1u << (next() % 8)); break;
            case 1: m[at] = 0xff; break;
            case 2: m[at] = 0; break;
            default: m[at] = (unsigned char)next(); break;
            }
        }
        dump(tmp, m, n);
        int r = ckpt ? try_ckpt(tmp) : try_dataset(tmp);
        count[r]++;
        if (r >= 2 && kept < maxkeep) {
            snprintf(keep, sizeof keep, "%s/%s_%s_%d.h5", argv[4], ckpt ? "ckpt" : "dataset",
                     r == 2 ? "crash" : "hang", kept++);
            dump(keep, m, n);
            fprintf(stderr, "%s: %s\n", keep, lz_error());
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%ld mutants in %.1f s: %ld opened, %ld refused with a message, %ld crashed libhdf5 "
           "in the probe, %ld hung it (stopped); the hunter itself: no crash\n",
           iters, s, count[0], count[1], count[2], count[3]);
    return 0;
}
