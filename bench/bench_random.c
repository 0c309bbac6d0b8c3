/* Random: throughput of each distribution (million elements per second) for a draw of 2^22
 * elements, best of a few runs after a warm-up, with the default thread count and with one
 * thread (the kernel parallelises over blocks of counters). The figures include the output
 * allocation (from the allocator's cache after the warm-up). */
#include <stdio.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"

#define N ((int64_t)1 << 22)

static lz_array *bits(lz_key k) { int64_t n = N; return lz_random_bits(k, 1, &n); }
static lz_array *uniform(lz_key k) { int64_t n = N; return lz_random_uniform(k, 1, &n, 0, 1, LZ_F32); }
static lz_array *normal(lz_key k) { int64_t n = N; return lz_random_normal(k, 1, &n, 0, 1, LZ_F32); }
static lz_array *trunc_normal(lz_key k) { int64_t n = N; return lz_random_truncated_normal(k, 1, &n, -2, 2, LZ_F32); }
static lz_array *bernoulli(lz_key k) { int64_t n = N; return lz_random_bernoulli(k, 1, &n, 0.5); }
static lz_array *randint(lz_key k) { int64_t n = N; return lz_random_randint(k, 1, &n, 0, 1000, LZ_I32); }
static lz_array *permutation(lz_key k) { return lz_random_permutation(k, N); }

static double melem_per_s(lz_array *(*f)(lz_key), int reps) {
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        lz_array *a = f(lz_key_new((uint64_t)r));
        if (lz_eval1(a)) { fprintf(stderr, "%s\n", lz_error()); return 0; }
        double t = now() - t0;
        lz_release(a);
        if (r && t < best) best = t;
    }
    return (double)N / best * 1e-6;
}

int main(void) {
    struct { const char *name; lz_array *(*f)(lz_key); } cases[] = {
        {"bits", bits}, {"uniform_f32", uniform}, {"normal_f32", normal},
        {"truncated_normal_f32", trunc_normal}, {"bernoulli", bernoulli},
        {"randint_i32", randint}, {"permutation", permutation}};
    for (int threads = 0; threads < 2; threads++) {
        lz_set_threads(threads);   /* 0: default (all cores), then 1 */
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
            printf("BENCH random_%s_%s %.1f Melem/s\n", cases[c].name, threads ? "1thread" : "threads",
                   melem_per_s(cases[c].f, 3));
    }
    lz_set_threads(0);
    return 0;
}
