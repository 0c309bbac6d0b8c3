/* GEMM: lz_matmul (constructor + lz_eval, output buffer from the allocator's cache) against
 * a raw cblas_sgemm on the same input buffers, square float32, all cores. Runs of the two
 * alternate so both see the same machine; each figure is the best run. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"

static double run_lz(lz_array *a, lz_array *b) {
    double t0 = now();
    lz_array *c = lz_matmul(a, b);
    if (!c || lz_eval1(c)) {
        fprintf(stderr, "bench_gemm: %s\n", lz_error());
        exit(1);
    }
    double t = now() - t0;
    lz_release(c);
    return t;
}

static double run_cblas(int n, const float *a, const float *b, float *c) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    return now() - t0;
}

int main(void) {
    static const int sizes[] = {256, 512, 1024, 2048};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        int64_t shape[2] = {n, n};
        float *host = malloc((size_t)n * n * sizeof *host);
        for (int64_t i = 0; i < (int64_t)n * n; i++) host[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        lz_array *a = lz_from_data(host, 2, shape, LZ_F32);
        lz_array *b = lz_from_data(host, 2, shape, LZ_F32);
        const float *pa = lz_data(a), *pb = lz_data(b);
        float *c = malloc((size_t)n * n * sizeof *c);
        double flops = 2.0 * n * n * n, best_lz = 1e30, best_cb = 1e30, spent = 0;
        run_lz(a, b);                                  /* warm-up: threads, allocator cache */
        run_cblas(n, pa, pb, c);
        for (int r = 0; r < 50 && (r < 3 || spent < 1.0); r++) {
            double t1 = run_lz(a, b), t2 = run_cblas(n, pa, pb, c);
            if (t1 < best_lz) best_lz = t1;
            if (t2 < best_cb) best_cb = t2;
            spent += t1 + t2;
        }
        double g_lz = flops / best_lz * 1e-9, g_cb = flops / best_cb * 1e-9;
        printf("BENCH gemm_%d_leibniz %.1f GFLOP/s\n", n, g_lz);
        printf("BENCH gemm_%d_cblas %.1f GFLOP/s\n", n, g_cb);
        printf("BENCH gemm_%d_ratio %.1f %%\n", n, 100.0 * g_lz / g_cb);
        fflush(stdout);
        free(c);
        free(host);
        lz_release(a);
        lz_release(b);
    }
    return 0;
}
