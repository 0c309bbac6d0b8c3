/* Convolution: a ResNet-sized layer, input [128, 32, 14, 14], 64 filters 3x3, stride 1,
 * padding 1, float32, all cores: the forward pass through lz_conv2d (constructor + lz_eval),
 * and its two gradient modes (input: transposed conv, weight), best of several runs.
 * Also a 2x2 max pool over the output. BENCH_THREADS=n sets the threads. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "leibniz.h"
#include "ops/conv.h"
#include "bench.h"

#define NAME "conv2d_128x32x14x14_64x3x3"

static lz_array *filled(int ndim, const int64_t *shape, unsigned salt) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)(((i + salt) * 7919) % 1000) / 1000.0f - 0.5f;
    lz_array *a = lz_from_data(f, ndim, shape, LZ_F32);
    free(f);
    return a;
}

/* Best time of building (mode/prim/inputs) and evaluating it. */
static double best_of(lz_prim_id prim, const lz_window *g, lz_array *a, lz_array *b, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        lz_array *y = lz_window_node(prim, g, a, b);
        if (!y || lz_eval1(y)) {
            fprintf(stderr, "bench_conv: %s\n", lz_error());
            exit(1);
        }
        double t = now() - t0;
        if (t < best) best = t;
        lz_release(y);
    }
    return best;
}

int main(void) {
    /* BENCH_THREADS: threads (default all cores); one thread is the steadier figure on a
     * shared machine */
    if (getenv("BENCH_THREADS") && atoi(getenv("BENCH_THREADS")) > 0) lz_set_threads(atoi(getenv("BENCH_THREADS")));
    int64_t xs[4] = {128, 32, 14, 14}, ws[4] = {64, 32, 3, 3}, ys[4] = {128, 64, 14, 14};
    lz_array *x = filled(4, xs, 1), *w = filled(4, ws, 2), *dy = filled(4, ys, 3);
    double flops = 2.0 * 128 * 64 * 14 * 14 * 32 * 9;

    /* forward through the public constructor */
    int one[2] = {1, 1};
    double best = 1e30;
    for (int r = 0; r < 12; r++) {
        double t0 = now();
        lz_array *y = lz_conv2d(x, w, one, one, one, 1);
        if (!y || lz_eval1(y)) {
            fprintf(stderr, "bench_conv: %s\n", lz_error());
            return 1;
        }
        double t = now() - t0;
        if (r && t < best) best = t;          /* run 0 warms threads and the cache */
        lz_release(y);
    }
    printf("BENCH " NAME "_GFLOPs %.1f GFLOP/s\n", flops / best * 1e-9);
    printf("BENCH " NAME "_ms %.2f ms\n", best * 1e3);

    lz_window g = {.mode = LZ_WIN_INPUT_GRAD, .nsp = 2, .groups = 1, .count_pad = 1,
                   .in = {14, 14}, .kernel = {3, 3}, .stride = {1, 1}, .pad_lo = {1, 1},
                   .pad_hi = {1, 1}, .dilation = {1, 1}};
    best_of(LZ_P_CONV, &g, dy, w, 1);
    printf("BENCH " NAME "_input_grad_ms %.2f ms\n", best_of(LZ_P_CONV, &g, dy, w, 8) * 1e3);
    g.mode = LZ_WIN_WEIGHT_GRAD;
    best_of(LZ_P_CONV, &g, x, dy, 1);
    printf("BENCH " NAME "_weight_grad_ms %.2f ms\n", best_of(LZ_P_CONV, &g, x, dy, 8) * 1e3);

    lz_window p = {.mode = LZ_WIN_FORWARD, .nsp = 2, .groups = 1, .count_pad = 1,
                   .in = {14, 14}, .kernel = {2, 2}, .stride = {2, 2}, .dilation = {1, 1}};
    best_of(LZ_P_POOL_MAX, &p, dy, NULL, 1);
    printf("BENCH max_pool2d_128x64x14x14_2x2_ms %.2f ms\n",
           best_of(LZ_P_POOL_MAX, &p, dy, NULL, 8) * 1e3);
    fflush(stdout);
    lz_release(x);
    lz_release(w);
    lz_release(dy);
    return 0;
}
