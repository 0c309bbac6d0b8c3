/* NN kernels: softmax, log-softmax, layer norm, RMS norm (GB/s, bytes = input read once +
 * output written once) and fused attention (GFLOP/s, ms). Each figure is the best of a few
 * timed runs after a warm-up. Attention FLOPs use the usual convention: 4 * T * T * D per
 * head without mask, half of that with the causal mask.
 *
 * softmax_axis0_*: softmax over the first axis of a 4096 x 1024 array, by the kernel's
 * strided path and by "permute the axis last, contiguous copy, softmax, permute back". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"


static lz_array *random_array(int ndim, const int64_t *shape, uint64_t seed) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)((double)(seed >> 40) / (double)(1 << 24) * 8.0 - 4.0);
    }
    lz_array *a = lz_from_data(f, ndim, shape, LZ_F32);
    free(f);
    return a;
}

typedef lz_array *(*build_fn)(lz_array *const *in);

/* Best time of `reps` runs of build + eval (the graph building is negligible), after two
 * runs that warm caches and the allocator. */
static double time_op(build_fn f, lz_array *const *in, int reps) {
    double best = 1e30;
    for (int r = -2; r < reps; r++) {
        lz_pool_push();
        lz_array *y = f(in);
        double t0 = now();
        if (lz_eval1(y)) { fprintf(stderr, "bench_nn: %s\n", lz_error()); exit(1); }
        double t = now() - t0;
        lz_pool_pop();
        if (r >= 0 && t < best) best = t;
    }
    return best;
}

/* Keeps the threads busy for a moment first: the first parallel work of a process runs
 * slow (thread pools starting, idle cores waking), measured up to 4x on a 16-core VM. */
static void warm_up(build_fn f, lz_array *const *in) {
    for (double t0 = now(); now() - t0 < 0.2;) {
        lz_pool_push();
        lz_eval1(f(in));
        lz_pool_pop();
    }
}

static lz_array *softmax_last(lz_array *const *in) { return lz_softmax(in[0], -1); }
static lz_array *log_softmax_last(lz_array *const *in) { return lz_log_softmax(in[0], -1); }
static lz_array *softmax_axis0(lz_array *const *in) { return lz_softmax(in[0], 0); }
static lz_array *softmax_axis0_permuted(lz_array *const *in) {
    return lz_transpose(lz_softmax(lz_contiguous(lz_transpose(in[0])), -1));
}
static lz_array *layer_norm(lz_array *const *in) { return lz_layer_norm(in[0], in[1], in[2], 1e-5); }
static lz_array *rms_norm(lz_array *const *in) { return lz_rms_norm(in[0], in[1], 1e-5); }
static lz_array *attention_causal(lz_array *const *in) {
    return lz_attention(in[0], in[1], in[2], 0, 1);
}
static lz_array *attention_full(lz_array *const *in) {
    return lz_attention(in[0], in[1], in[2], 0, 0);
}
/* The same attention done the materialising way: softmax(Q K^T * s + mask) V. */
static lz_array *attention_naive(lz_array *const *in) {
    lz_array *s = lz_mul_scalar(lz_matmul(in[0], lz_swapaxes(in[1], -1, -2)), 1 / sqrt(32.0));
    return lz_matmul(lz_softmax(lz_add(s, in[3]), -1), in[2]);
}

int main(void) {
    const int64_t rows = 4096, cols = 1024, shape[2] = {rows, cols};
    const double gb = 2.0 * (double)(rows * cols) * 4 / 1e9;
    lz_array *x = random_array(2, shape, 1);
    lz_array *w = random_array(1, &cols, 2), *b = random_array(1, &cols, 3);
    lz_array *in[5] = {x, w, b, NULL, NULL};
    warm_up(log_softmax_last, in);
    printf("BENCH softmax_4096x1024_GBps %.2f GB/s\n", gb / time_op(softmax_last, in, 5));
    printf("BENCH log_softmax_4096x1024_GBps %.2f GB/s\n", gb / time_op(log_softmax_last, in, 5));
    printf("BENCH softmax_axis0_4096x1024_strided_GBps %.2f GB/s\n",
           gb / time_op(softmax_axis0, in, 5));
    printf("BENCH softmax_axis0_4096x1024_permute_GBps %.2f GB/s\n",
           gb / time_op(softmax_axis0_permuted, in, 5));
    printf("BENCH layer_norm_4096x1024_GBps %.2f GB/s\n",
           (gb + 2.0 * (double)cols * 4 / 1e9) / time_op(layer_norm, in, 5));
    printf("BENCH rms_norm_4096x1024_GBps %.2f GB/s\n",
           (gb + (double)cols * 4 / 1e9) / time_op(rms_norm, in, 5));

    const int64_t B = 8, H = 4, T = 256, D = 32, qshape[4] = {B, H, T, D};
    lz_array *q = random_array(4, qshape, 4), *k = random_array(4, qshape, 5);
    lz_array *v = random_array(4, qshape, 6);
    lz_array *ain[5] = {q, k, v, NULL, NULL};
    double flops = 4.0 * (double)(B * H * T * T * D);
    double tc = time_op(attention_causal, ain, 10), tf = time_op(attention_full, ain, 10);
    printf("BENCH attention_b8_h4_t256_d32_causal_GFLOPs %.2f GFLOP/s\n", flops / 2 / tc / 1e9);
    printf("BENCH attention_b8_h4_t256_d32_causal_ms %.3f ms\n", tc * 1e3);
    printf("BENCH attention_b8_h4_t256_d32_GFLOPs %.2f GFLOP/s\n", flops / tf / 1e9);
    printf("BENCH attention_b8_h4_t256_d32_ms %.3f ms\n", tf * 1e3);

    /* the unfused path for comparison: scores materialised, additive causal mask */
    int64_t mshape[2] = {T, T};
    float *m = malloc((size_t)(T * T) * sizeof *m);
    for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < T; j++) m[i * T + j] = j > i ? -1e30f : 0.0f;
    lz_array *mask = lz_from_data(m, 2, mshape, LZ_F32);
    free(m);
    ain[3] = mask;
    lz_error_clear();
    lz_pool_push();
    int have_matmul = lz_eval1(attention_naive(ain)) == 0;
    lz_pool_pop();
    if (have_matmul)
        printf("BENCH attention_b8_h4_t256_d32_causal_unfused_ms %.3f ms\n",
               time_op(attention_naive, ain, 10) * 1e3);
    lz_release(mask);
    lz_release(q); lz_release(k); lz_release(v);
    lz_release(x); lz_release(w); lz_release(b);
    return 0;
}
