/* Shared test helpers: random arrays with a float64 copy of their logical values (so
 * references are computed independently, in double), non-contiguous layouts, and
 * comparisons that print the first mismatch. */
#ifndef LZ_TESTUTIL_H
#define LZ_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "leibniz.h"

/* The memory pool the ops of a test allocate from: the device's when the default device is
 * the GPU (make test-cuda), else the host's. Tests of an op's memory behaviour (peaks, limits,
 * the cache) read and set this one; tests of host arrays (checkpoints read, data) keep
 * lz_memory(). A limit of 0 restores the device pool's initial cap (below the card's free
 * memory), as 0 means "none" on the host. */
static inline int t_on_gpu(void) { return lz_default_device() == LZ_GPU; }
static inline lz_memory_info t_mem(void) { return t_on_gpu() ? lz_memory_device() : lz_memory(); }
static inline void t_mem_reset_peak(void) {
    if (t_on_gpu()) lz_memory_device_reset_peak();
    else lz_memory_reset_peak();
}
static inline void t_mem_set_limit(size_t bytes) {
    static size_t device_cap;
    if (!t_on_gpu()) { lz_memory_set_limit(bytes); return; }
    if (!device_cap) device_cap = lz_memory_device().limit;
    lz_memory_device_set_limit(bytes ? bytes : device_cap);
}
static inline void t_mem_set_cache_limit(size_t bytes) {
    if (t_on_gpu()) lz_memory_device_set_cache_limit(bytes);
    else lz_memory_set_cache_limit(bytes);
}

/* LZ_TEST_EMULATED_GPU=1: the test runs with an emulated GPU as its default device
 * (tests/emu_gpu.h; make test-emulated). */
#include "emu_gpu.h"
__attribute__((constructor)) static void t_emulated_gpu(void) {
    const char *e = getenv("LZ_TEST_EMULATED_GPU");
    if (e && !strcmp(e, "1") && !emu_gpu_install()) {
        lz_set_default_device(LZ_GPU);
        atexit(emu_gpu_cleanup);
    }
}

/* xorshift64*: deterministic test data */
static inline double t_uniform(uint64_t *s, double lo, double hi) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    uint64_t r = *s * 2685821657736338717ull;
    return lo + (hi - lo) * (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

/* Random integer in [lo, hi). */
static inline int64_t t_irand(uint64_t *s, int64_t lo, int64_t hi) {
    return lo + (int64_t)floor(t_uniform(s, 0, (double)(hi - lo)));
}

/* Row-major helpers for references: element count, flat index <-> multi-index. */
static inline int64_t t_numel(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    return n;
}

static inline void t_unravel(int64_t k, int nd, const int64_t *shape, int64_t *idx) {
    for (int d = nd - 1; d >= 0; d--) { idx[d] = k % shape[d]; k /= shape[d]; }
}

static inline int64_t t_ravel(int nd, const int64_t *shape, const int64_t *idx) {
    int64_t k = 0;
    for (int d = 0; d < nd; d++) k = k * shape[d] + idx[d];
    return k;
}

/* A test array: `a` (a new reference the caller releases, also inside a pool) and `v`, its logical values in row-major order,
 * already rounded to a's dtype, as doubles (free with t_free). */
typedef struct { lz_array *a; double *v; int64_t n; } tarr;

enum { T_CONTIG, T_STRIDED, T_TRANSPOSED };

/* Random values in [lo, hi) (rounded for integer dtypes) with the given layout:
 * T_STRIDED takes every other element of a larger array along each axis,
 * T_TRANSPOSED builds the data with reversed axes and transposes it back (a view). */
static inline tarr t_rand(int ndim, const int64_t *shape, lz_dtype t, double lo, double hi,
                          uint64_t *seed, int layout) {
    tarr r;
    lz_pool_push();   /* the arrays made here are the pool's; r.a is retained at the end */
    r.n = 1;
    for (int d = 0; d < ndim; d++) r.n *= shape[d];
    r.v = malloc((size_t)(r.n ? r.n : 1) * sizeof(double));
    for (int64_t i = 0; i < r.n; i++) {
        double x = t_uniform(seed, lo, hi);
        if (!lz_dtype_is_float(t)) x = floor(x);
        if (t == LZ_BOOL) x = x != 0;
        r.v[i] = x;
    }
    if (layout == T_CONTIG || ndim == 0) {
        float *f = malloc((size_t)(r.n ? r.n : 1) * sizeof(float));
        for (int64_t i = 0; i < r.n; i++) f[i] = (float)r.v[i];
        lz_array *x = lz_from_data(f, ndim, shape, LZ_F32);
        r.a = lz_astype(x, t);
        lz_eval1(r.a);
        free(f);
    } else if (layout == T_STRIDED) {
        int64_t big[LZ_MAX_DIMS], n = 1;
        for (int d = 0; d < ndim; d++) { big[d] = 2 * shape[d] + 1; n *= big[d]; }
        float *f = calloc((size_t)n, sizeof(float));
        int64_t idx[LZ_MAX_DIMS] = {0};
        for (int64_t i = 0; i < r.n; i++) {
            int64_t off = 0;
            for (int d = 0; d < ndim; d++) off = off * big[d] + 1 + 2 * idx[d];
            f[off] = (float)r.v[i];
            for (int d = ndim - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
        }
        lz_array *x = lz_from_data(f, ndim, big, LZ_F32);
        lz_array *y = lz_astype(x, t);
        lz_eval1(y);
        int64_t st[LZ_MAX_DIMS], sp[LZ_MAX_DIMS], stp[LZ_MAX_DIMS];
        for (int d = 0; d < ndim; d++) { st[d] = 1; sp[d] = big[d]; stp[d] = 2; }
        r.a = lz_slice(y, st, sp, stp);
        free(f);
    } else {
        int64_t rev[LZ_MAX_DIMS];
        for (int d = 0; d < ndim; d++) rev[d] = shape[ndim - 1 - d];
        float *f = malloc((size_t)(r.n ? r.n : 1) * sizeof(float));
        int64_t idx[LZ_MAX_DIMS] = {0};
        for (int64_t i = 0; i < r.n; i++) {
            int64_t off = 0;
            for (int d = ndim - 1; d >= 0; d--) off = off * shape[d] + idx[d];
            f[off] = (float)r.v[i];
            for (int d = ndim - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
        }
        lz_array *x = lz_from_data(f, ndim, rev, LZ_F32);
        lz_array *y = lz_astype(x, t);
        lz_eval1(y);
        r.a = lz_transpose(y);
        free(f);
    }
    /* round the reference to what the dtype stores */
    if (t == LZ_F32) for (int64_t i = 0; i < r.n; i++) r.v[i] = (float)r.v[i];
    if (t == LZ_F16 || t == LZ_BF16) {
        lz_array *c = lz_astype(r.a, LZ_F32);
        float *f = malloc((size_t)(r.n ? r.n : 1) * sizeof(float));
        lz_to_float(c, f, r.n);
        for (int64_t i = 0; i < r.n; i++) r.v[i] = f[i];
        free(f);
    }
    lz_retain(r.a);
    lz_pool_pop();
    return r;
}

static inline void t_free(tarr *t) { lz_release(t->a); free(t->v); t->a = NULL; t->v = NULL; }

/* Fails the test when a's values differ from ref beyond atol + rtol*|ref| (NaNs must match,
 * infinities must be equal). Shape must have n elements. */
static inline void t_assert_close_(lz_array *a, const double *ref, int64_t n, double rtol,
                                   double atol, const char *file, int line) {
    if (!a) { fail_msg("%s:%d: array is NULL: %s", file, line, lz_error()); return; }
    if (lz_size(a) != n) fail_msg("%s:%d: size %lld, expected %lld", file, line, (long long)lz_size(a), (long long)n);
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (lz_to_float(a, f, n)) fail_msg("%s:%d: read failed: %s", file, line, lz_error());
    for (int64_t i = 0; i < n; i++) {
        double x = f[i], y = ref[i];
        int ok = (isnan(x) && isnan(y)) || (isinf(y) && x == y) ||
                 (!isnan(x) && fabs(x - y) <= atol + rtol * fabs(y));
        if (!ok) {
            free(f);
            fail_msg("%s:%d: element %lld: got %.9g, expected %.9g", file, line, (long long)i, x, y);
        }
    }
    free(f);
}
#define t_assert_close(a, ref, n, rtol, atol) t_assert_close_(a, ref, n, rtol, atol, __FILE__, __LINE__)

/* Asserts that expr returned NULL (or negative) and the error message contains `needle`. */
#define t_assert_error(expr, needle) do {                                              \
        lz_error_clear();                                                              \
        void *p_ = (void *)(expr);                                                     \
        assert_null(p_);                                                               \
        if (!strstr(lz_error(), needle))                                               \
            fail_msg("error message \"%s\" lacks \"%s\"", lz_error(), needle);          \
    } while (0)

#endif
