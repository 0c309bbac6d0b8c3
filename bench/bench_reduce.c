/* Reduction throughput: row sums, column sums, a full sum, and a fused sum of a product, in
 * GB/s of input read (best of a few runs after a warm-up). */
#include <stdio.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"

typedef lz_array *(*build_fn)(lz_array *a, lz_array *b);

static lz_array *rows(lz_array *a, lz_array *b) { (void)b; int ax = 1; return lz_sum(a, &ax, 1, 0); }
static lz_array *cols(lz_array *a, lz_array *b) { (void)b; int ax = 0; return lz_sum(a, &ax, 1, 0); }
static lz_array *all(lz_array *a, lz_array *b) { (void)b; return lz_sum(a, NULL, 0, 0); }
static lz_array *dot(lz_array *a, lz_array *b) { return lz_sum(lz_mul(a, b), NULL, 0, 0); }

/* Seconds per evaluation of the graph fn builds (graph building included: it is tiny). */
static double best_time(build_fn fn, lz_array *a, lz_array *b, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        lz_pool_push();
        double t0 = now();
        lz_array *s = fn(a, b);
        if (!s || lz_eval1(s)) { fprintf(stderr, "bench_reduce: %s\n", lz_error()); lz_pool_pop(); return -1; }
        double t = now() - t0;
        lz_pool_pop();
        if (r && t < best) best = t;      /* the first run warms caches and the allocator */
    }
    return best;
}

static void report(const char *name, double bytes, double secs) {
    if (secs > 0) printf("BENCH %s %.2f GB/s\n", name, bytes / secs * 1e-9);
}

int main(void) {
    int64_t sh[2] = {4096, 1024}, n = (int64_t)1 << 24;
    lz_key k = lz_key_new(1);
    lz_array *m = lz_random_uniform(k, 2, sh, -1, 1, LZ_F32);
    lz_array *x = lz_random_uniform(lz_key_fold(k, 2), 1, &n, -1, 1, LZ_F32);
    lz_array *y = lz_random_uniform(lz_key_fold(k, 3), 1, &n, -1, 1, LZ_F32);
    if (!m || !x || !y || LZ_EVAL(m, x, y)) {
        /* random may not be there yet: fall back to a deterministic ramp */
        lz_release(m); lz_release(x); lz_release(y);
        lz_error_clear();
        lz_array *r = lz_linspace(-1, 1, sh[0] * sh[1], LZ_F32);
        m = lz_reshape(r, 2, sh);
        lz_release(r);
        x = lz_linspace(-1, 1, n, LZ_F32);
        y = lz_linspace(1, -1, n, LZ_F32);
        if (LZ_EVAL(m, x, y)) { fprintf(stderr, "bench_reduce: %s\n", lz_error()); return 1; }
    }
    double mb = (double)sh[0] * (double)sh[1] * 4, xb = (double)n * 4;
    report("sum_rows_4096x1024_GBps", mb, best_time(rows, m, NULL, 10));
    report("sum_cols_4096x1024_GBps", mb, best_time(cols, m, NULL, 10));
    report("sum_all_16M_GBps", xb, best_time(all, x, NULL, 5));
    report("fused_sum_mul_16M_GBps", 2 * xb, best_time(dot, x, y, 5));
    lz_release(m);
    lz_release(x);
    lz_release(y);
    return 0;
}
