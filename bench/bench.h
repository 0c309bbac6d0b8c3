/* Shared by the bench programs: a monotonic clock in seconds and the machine's sgemm rate.
 * Each program prints its figures as lines "BENCH <name> <value> <unit>". */
#ifndef LZ_BENCH_H
#define LZ_BENCH_H

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The best of `reps` 1024^3 cblas_sgemm runs in GFLOP/s (the first run, thread start-up, is
 * not counted): the rate the achieved figures are set against. */
static inline double sgemm_peak_reps(int reps) {
    int n = 1024;
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b),
          *c = malloc((size_t)n * n * sizeof *c);
    for (int64_t i = 0; i < (int64_t)n * n; i++) a[i] = b[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * n / best * 1e-9;
}

#endif
