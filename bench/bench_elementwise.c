/* Elementwise engine: an 8-op chain over 16M float32 elements, fused (one lz_eval, one
 * kernel) against unfused (lz_eval after each op), and the fused kernel's memory throughput
 * against a plain memcpy of the same bytes; a transposed read (lz_contiguous of the
 * transpose of a [4096,1024] float32 matrix, and a + b^T of two such squares). Best of
 * several repetitions, all cores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"

#define N (16 * 1024 * 1024)
#define REPS 10

/* Two 8-op chains. Transcendental: y = -max(sqrt(exp(tanh(x * 0.5 + 1) * x)), x) (mul, add,
 * tanh, mul, exp, sqrt, maximum, neg): fused it is compute-bound (tanh and exp dominate).
 * Arithmetic: y = -max(|relu(x * 0.5 + 1) * x - x|, x) (mul, add, relu, mul, sub, abs,
 * maximum, neg): fused it is memory-bound, the case fusion exists for. With `each`, every
 * intermediate is evaluated as it is made. Returns a new ref. */
static lz_array *chain(lz_array *x, int each, int arith) {
    lz_pool_push();
    lz_array *y = lz_mul_scalar(x, 0.5);
    if (each) lz_eval1(y);
    y = lz_add_scalar(y, 1.0);
    if (each) lz_eval1(y);
    y = arith ? lz_relu(y) : lz_tanh(y);
    if (each) lz_eval1(y);
    y = lz_mul(y, x);
    if (each) lz_eval1(y);
    y = arith ? lz_sub(y, x) : lz_exp(y);
    if (each) lz_eval1(y);
    y = arith ? lz_abs(y) : lz_sqrt(y);
    if (each) lz_eval1(y);
    y = lz_maximum(y, x);
    if (each) lz_eval1(y);
    y = lz_neg(y);
    lz_retain(y);
    lz_pool_pop();
    return y;
}

/* One run of the chain; returns seconds, and its first element in *check. */
static double time_chain(lz_array *x, int each, int arith, float *check) {
    double t0 = now();
    lz_array *y = chain(x, each, arith);
    if (lz_eval1(y)) {
        fprintf(stderr, "bench_elementwise: %s\n", lz_error());
        exit(1);
    }
    double t = now() - t0;
    *check = (float)lz_item(y);
    lz_release(y);
    return t;
}

/* Best fused and unfused times of one chain, interleaved so both see the same load. */
static void time_both(lz_array *x, int arith, double *fused, double *unfused) {
    float c1 = 0, c2 = 0;
    time_chain(x, 1, arith, &c2);    /* warm the allocator cache and the threads */
    *fused = *unfused = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t = time_chain(x, 0, arith, &c1);
        if (t < *fused) *fused = t;
        t = time_chain(x, 1, arith, &c2);
        if (t < *unfused) *unfused = t;
    }
    if (c1 != c2) {
        fprintf(stderr, "bench_elementwise: fused %g and unfused %g differ\n", c1, c2);
        exit(1);
    }
}

/* Seconds of the best of REPS evaluations of make(x, y) (a new ref, released here). */
static double best_of(lz_array *(*make)(lz_array *, lz_array *), lz_array *x, lz_array *y) {
    double best = 1e30;
    for (int r = 0; r <= REPS; r++) {   /* the first run warms the allocator cache */
        double t0 = now();
        lz_array *z = make(x, y);
        if (lz_eval1(z)) {
            fprintf(stderr, "bench_elementwise: %s\n", lz_error());
            exit(1);
        }
        double t = now() - t0;
        lz_release(z);
        if (r && t < best) best = t;
    }
    return best;
}

static lz_array *transpose_copy(lz_array *x, lz_array *y) {
    (void)y;
    lz_pool_push();
    lz_array *z = lz_retain(lz_contiguous(lz_transpose(x)));
    lz_pool_pop();
    return z;
}

static lz_array *add_transposed(lz_array *x, lz_array *y) {
    lz_pool_push();
    lz_array *z = lz_retain(lz_add(x, lz_transpose(y)));
    lz_pool_pop();
    return z;
}

static void transposes(void) {
    int64_t shape[2] = {4096, 1024}, sq[2] = {2048, 2048};
    lz_pool_push();
    lz_array *x = lz_retain(lz_reshape(lz_arange(0, 4096.0 * 1024, 1, LZ_F32), 2, shape));
    lz_array *a = lz_retain(lz_reshape(lz_arange(0, 2048.0 * 2048, 1, LZ_F32), 2, sq));
    lz_array *b = lz_retain(lz_reshape(lz_arange(1, 2048.0 * 2048 + 1, 1, LZ_F32), 2, sq));
    lz_pool_pop();
    if (LZ_EVAL(x, a, b)) {
        fprintf(stderr, "bench_elementwise: %s\n", lz_error());
        exit(1);
    }
    double bytes = 2.0 * 4096 * 1024 * sizeof(float);   /* read once, written once */
    printf("BENCH transpose_copy_4096x1024_GBps %.2f GB/s\n", bytes / best_of(transpose_copy, x, NULL) / 1e9);
    bytes = 3.0 * 2048 * 2048 * sizeof(float);
    printf("BENCH add_transposed_2048_GBps %.2f GB/s\n", bytes / best_of(add_transposed, a, b) / 1e9);
    lz_release(x);
    lz_release(a);
    lz_release(b);
}

int main(void) {
    int64_t n = N;
    lz_array *x = lz_linspace(-2, 2, n, LZ_F32);
    lz_eval1(x);
    double fused, unfused, afused, aunfused;
    time_both(x, 0, &fused, &unfused);
    time_both(x, 1, &afused, &aunfused);

    size_t bytes = (size_t)N * sizeof(float);
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) return 1;
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    double copy = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        memcpy(dst, src, bytes);
        double t = now() - t0;
        if (t < copy) copy = t;
        src[r] = dst[bytes - 1 - r];   /* keep the copies observable */
    }
    free(src);
    free(dst);

    double moved = 2.0 * (double)bytes;   /* the fused kernel reads x once, writes y once */
    double gbps = moved / fused / 1e9, mgbps = moved / copy / 1e9;
    printf("BENCH fused_chain8_16M_ms %.2f ms\n", fused * 1e3);
    printf("BENCH unfused_chain8_16M_ms %.2f ms\n", unfused * 1e3);
    printf("BENCH fused_speedup %.2f x\n", unfused / fused);
    printf("BENCH fused_chain8_16M_GBps %.2f GB/s\n", gbps);
    printf("BENCH memcpy_16M_GBps %.2f GB/s\n", mgbps);
    printf("BENCH fused_vs_memcpy %.1f %%\n", 100.0 * gbps / mgbps);
    printf("BENCH fused_arith_chain8_16M_ms %.2f ms\n", afused * 1e3);
    printf("BENCH unfused_arith_chain8_16M_ms %.2f ms\n", aunfused * 1e3);
    printf("BENCH fused_arith_speedup %.2f x\n", aunfused / afused);
    printf("BENCH fused_arith_chain8_16M_GBps %.2f GB/s\n", moved / afused / 1e9);
    lz_release(x);
    transposes();
    return 0;
}
