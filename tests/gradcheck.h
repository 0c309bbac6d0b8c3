/* gradcheck: reverse-mode gradients against central finite differences, for any lz_fn.
 *
 *   gc_check(name, fn, ctx, n, inputs, opts) draws a fixed random cotangent c for fn's first
 *   output y, computes the analytic vjp g_i = c^T dy/dx_i with lz_vjp, and compares each
 *   element of each float input with the central difference
 *       (c . y(x + h e) - c . y(x - h e)) / 2h
 *   where y is evaluated in the library (float32 arithmetic) and the dot product in double.
 *   An element passes when |analytic - numeric| <= atol * s + rtol * max(|analytic|, |numeric|)
 *   where s = max(1, largest |analytic| entry of that input) (for directions, of its norm): the
 *   differences' rounding noise grows with the function's scale.
 *   Inputs larger than max_elems are checked on max_elems random directions v instead (g.v
 *   against the difference along v).
 *
 * Why these tolerances: float32 rounds each output to ~6e-8 relative, so the difference
 * quotient carries ~1e-7 |y| / h of noise, and its truncation error is ~h^2 |y'''| / 6; with
 * h = 1e-2 and values of order one both stay below 1e-3, so rtol = atol = 1e-2 separates
 * correct rules from wrong ones (a wrong rule is off by O(1)) without flaky failures. Inputs
 * must keep kinks (relu, abs, max, floor...) more than h away, which the tests arrange.
 *
 * Coverage: the primitives whose vjp rules ran during a check that passed are recorded in
 * gc_covered[]; a test can then require every primitive with a rule to have been checked. */
#ifndef LZ_GRADCHECK_H
#define LZ_GRADCHECK_H

#include "testutil.h"
#include "core/internal.h"

typedef struct {
    double h;        /* step (default 1e-2) */
    double rtol;     /* default 1e-2 */
    double atol;     /* default 1e-2 */
    int max_elems;   /* per input, above it random directions are used (default 64) */
} gc_opts;

static bool gc_covered[LZ_NPRIMS];
static int gc_checks_run;

static uint64_t gc_seed_state = 0x9e3779b97f4a7c15ull;

/* c . (first output of fn at xs), in double; NaN on failure. */
static double gc_dot(lz_fn fn, void *ctx, int n, lz_array *const *xs, const double *c,
                     int64_t m) {
    lz_array *outs[LZ_FN_MAX_OUTPUTS] = {NULL};
    double s = NAN;
    lz_pool_push();
    int k = fn(ctx, n, xs, outs);
    if (k >= 1 && outs[0] && lz_size(outs[0]) == m) {
        lz_array *y = lz_astype(outs[0], LZ_F32);
        float *f = malloc((size_t)(m ? m : 1) * sizeof *f);
        if (y && lz_to_float(y, f, m) == 0) {
            s = 0;
            for (int64_t i = 0; i < m; i++) s += c[i] * (double)f[i];
        }
        free(f);
    }
    lz_pool_pop();
    return s;
}

/* An evaluated array of the given shape and dtype holding v (row-major). New reference. */
static lz_array *gc_array_of(int ndim, const int64_t *shape, lz_dtype t, const double *v) {
    int64_t n = lz_shape_size(ndim, shape);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    lz_pool_push();
    lz_array *a = lz_retain(lz_astype(lz_from_data(f, ndim, shape, LZ_F32), t));
    lz_eval1(a);
    lz_pool_pop();
    free(f);
    return a;
}

/* An evaluated array of x's shape and dtype holding v. New reference. */
static lz_array *gc_array(const lz_array *x, const double *v) {
    return gc_array_of(lz_ndim(x), lz_shape(x), lz_dtype_of(x), v);
}

/* Returns 0 when every checked element agrees; otherwise fails the current test with the
 * first disagreement (input, element, both values). */
__attribute__((unused)) static int gc_check_(const char *name, lz_fn fn, void *ctx, int n, lz_array *const *inputs,
                     const gc_opts *opts, const char *file, int line) {
    gc_opts o = {1e-2, 2e-3, 1e-3, 64};
    if (opts) {
        if (opts->h > 0) o.h = opts->h;
        if (opts->rtol > 0) o.rtol = opts->rtol;
        if (opts->atol > 0) o.atol = opts->atol;
        if (opts->max_elems > 0) o.max_elems = opts->max_elems;
    }
    lz_autograd_init();
    /* the output's size, from a plain call */
    lz_array *outs[LZ_FN_MAX_OUTPUTS] = {NULL};
    lz_pool_push();
    int k = fn(ctx, n, inputs, outs);
    int64_t m = k >= 1 && outs[0] ? lz_size(outs[0]) : -1;
    lz_array *cshape = k >= 1 && outs[0] ? lz_retain(outs[0]) : NULL;
    lz_pool_pop();
    if (m < 0) {
        fail_msg("%s:%d: %s: fn failed: %s", file, line, name, lz_error());
        return -1;
    }
    double *c = malloc((size_t)(m ? m : 1) * sizeof *c);
    for (int64_t i = 0; i < m; i++) c[i] = t_uniform(&gc_seed_state, -1, 1);
    lz_array *ct = gc_array(cshape, c);
    lz_release(cshape);

    uint64_t before[LZ_NPRIMS];
    for (int p = 0; p < LZ_NPRIMS; p++) before[p] = lz_vjp_rule_calls(p);
    lz_array **g = calloc((size_t)n + 1, sizeof *g);
    lz_pool_push();
    int rc = lz_vjp(fn, ctx, n, inputs, 1, &ct, NULL, 0, g);
    for (int i = 0; i < n && rc >= 0; i++) lz_retain(g[i]);
    lz_pool_pop();
    if (rc < 0) {
        fail_msg("%s:%d: %s: lz_vjp failed: %s", file, line, name, lz_error());
        return -1;
    }
    bool used[LZ_NPRIMS];
    for (int p = 0; p < LZ_NPRIMS; p++) used[p] = lz_vjp_rule_calls(p) > before[p];

    int bad = 0;
    char msg[512] = "";
    for (int i = 0; i < n && !bad; i++) {
        if (!lz_dtype_is_float(lz_dtype_of(inputs[i]))) continue;
        int64_t sz = lz_size(inputs[i]);
        double *x = malloc((size_t)(sz ? sz : 1) * sizeof *x);
        double *ga = malloc((size_t)(sz ? sz : 1) * sizeof *ga);
        double *v = malloc((size_t)(sz ? sz : 1) * sizeof *v);
        float *f = malloc((size_t)(sz ? sz : 1) * sizeof *f);
        lz_array *gf = lz_astype(g[i], LZ_F32);
        if (lz_to_float(gf, f, sz)) {
            snprintf(msg, sizeof msg, "gradient %d could not be evaluated: %s", i, lz_error());
            bad = 1;
        }
        lz_release(gf);
        for (int64_t e = 0; e < sz; e++) ga[e] = f[e];
        lz_array *xf = lz_astype(inputs[i], LZ_F32);
        lz_to_float(xf, f, sz);
        lz_release(xf);
        for (int64_t e = 0; e < sz; e++) x[e] = f[e];
        bool directions = sz > o.max_elems;
        int64_t ncheck = directions ? o.max_elems : sz;
        /* the differences' noise grows with the function's scale: atol is relative to the
         * largest analytic entry (the gradient's norm for directions) when that exceeds 1 */
        double scale = 1, norm2 = 0;
        for (int64_t j = 0; j < sz; j++) {
            if (fabs(ga[j]) > scale) scale = fabs(ga[j]);
            norm2 += ga[j] * ga[j];
        }
        if (directions && sqrt(norm2) > scale) scale = sqrt(norm2);
        lz_array **xs = malloc((size_t)n * sizeof *xs);
        for (int64_t e = 0; e < ncheck && !bad; e++) {
            double analytic = 0;
            for (int64_t j = 0; j < sz; j++) {
                v[j] = directions ? t_uniform(&gc_seed_state, -1, 1) : (j == e);
                analytic += ga[j] * v[j];
            }
            double fx[2];
            for (int s = 0; s < 2; s++) {
                double *xp = malloc((size_t)sz * sizeof *xp);
                for (int64_t j = 0; j < sz; j++) xp[j] = x[j] + (s ? -o.h : o.h) * v[j];
                for (int q = 0; q < n; q++) xs[q] = inputs[q];
                xs[i] = gc_array(inputs[i], xp);
                fx[s] = gc_dot(fn, ctx, n, xs, c, m);
                lz_release(xs[i]);
                free(xp);
            }
            double numeric = (fx[0] - fx[1]) / (2 * o.h);
            double tol = o.atol * scale + o.rtol * fmax(fabs(analytic), fabs(numeric));
            if (!(fabs(analytic - numeric) <= tol)) {
                snprintf(msg, sizeof msg, "input %d %s %lld: analytic %.7g, numeric %.7g", i,
                         directions ? "direction" : "element", (long long)e, analytic, numeric);
                bad = 1;
            }
        }
        free(xs);
        free(x);
        free(ga);
        free(v);
        free(f);
    }
    for (int i = 0; i < n; i++) lz_release(g[i]);
    free(g);
    lz_release(ct);
    free(c);
    if (bad) {
        fail_msg("%s:%d: gradcheck %s: %s", file, line, name, msg);
        return -1;
    }
    gc_checks_run++;
    for (int p = 0; p < LZ_NPRIMS; p++) gc_covered[p] |= used[p];
    return 0;
}
/* ---- test inputs: values kept away from kinks, in chosen layouts ---- */

/* An evaluated float32 array with logical values v (row-major) laid out as T_CONTIG,
 * T_STRIDED (every other element of a larger buffer) or T_TRANSPOSED (a transposed view). */
static lz_array *gc_layout(const double *v, int ndim, const int64_t *shape, int layout) {
    int64_t n = lz_shape_size(ndim, shape);
    if (layout == T_CONTIG || ndim == 0) return gc_array_of(ndim, shape, LZ_F32, v);
    int64_t big[LZ_MAX_DIMS], rev[LZ_MAX_DIMS], nb = 1, idx[LZ_MAX_DIMS] = {0};
    for (int d = 0; d < ndim; d++) {
        big[d] = layout == T_STRIDED ? 2 * shape[d] + 1 : shape[ndim - 1 - d];
        rev[d] = shape[ndim - 1 - d];
        nb *= big[d];
    }
    double *b = calloc((size_t)nb, sizeof *b);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        if (layout == T_STRIDED) for (int d = 0; d < ndim; d++) off = off * big[d] + 1 + 2 * idx[d];
        else for (int d = ndim - 1; d >= 0; d--) off = off * shape[d] + idx[d];
        b[off] = v[i];
        for (int d = ndim - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
    }
    lz_pool_push();
    lz_array *base = gc_array_of(ndim, layout == T_STRIDED ? big : rev, LZ_F32, b);
    lz_array *r;
    if (layout == T_STRIDED) {
        int64_t st[LZ_MAX_DIMS], sp[LZ_MAX_DIMS], step[LZ_MAX_DIMS];
        for (int d = 0; d < ndim; d++) { st[d] = 1; sp[d] = big[d]; step[d] = 2; }
        r = lz_retain(lz_slice(base, st, sp, step));
    } else {
        r = lz_retain(lz_transpose(base));
    }
    lz_release(base);
    lz_pool_pop();
    free(b);
    return r;
}

enum { GC_PLAIN, GC_KINK, GC_INT_STEP, GC_HALF_STEP, GC_GRID, GC_GRID_OFF, GC_DISTINCT };

/* A value in [lo, hi) kept away from the kinks of `kind` by more than the gradcheck step. */
static double gc_draw(double lo, double hi, int kind) {
    double u = t_uniform(&gc_seed_state, lo, hi), f = t_uniform(&gc_seed_state, 0, 1);
    switch (kind) {
    case GC_KINK: return fabs(u) < 0.1 ? copysign(0.1 + fabs(u), u) : u;
    case GC_INT_STEP: return floor(u) + 0.2 + 0.6 * f;
    case GC_HALF_STEP: return round(u) + 0.6 * (f - 0.5);
    case GC_GRID: return 0.25 * floor(4 * u);            /* with GC_GRID_OFF: never within 0.1 */
    case GC_GRID_OFF: return 0.25 * floor(4 * u) + 0.1;
    default: return u;
    }
}

static lz_array *gc_rand(int ndim, const int64_t *shape, double lo, double hi, int kind, int layout) {
    int64_t n = lz_shape_size(ndim, shape);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = gc_draw(lo, hi, kind);
    if (kind == GC_DISTINCT) {   /* a shuffled grid 0.1 apart: no ties, no kinks within h */
        for (int64_t i = 0; i < n; i++) v[i] = lo + 0.1 * (double)i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)t_uniform(&gc_seed_state, 0, (double)i + 1);
            double t = v[i]; v[i] = v[j]; v[j] = t;
        }
    }
    lz_array *a = gc_layout(v, ndim, shape, layout);
    free(v);
    return a;
}

/* A random shape of up to maxnd dims of sizes 1..4. */
static inline int gc_rshape(int maxnd, int64_t *shape) {
    int nd = (int)t_uniform(&gc_seed_state, 0, maxnd + 1);
    for (int d = 0; d < nd; d++) shape[d] = 1 + (int64_t)t_uniform(&gc_seed_state, 0, 4);
    return nd;
}

static inline int gc_layout_of(int k) { return k % 3 == 0 ? T_CONTIG : k % 3 == 1 ? T_STRIDED : T_TRANSPOSED; }

/* gc_check(name, fn, ctx, n, inputs, opts): variadic so that opts may be a compound literal */
#define gc_check(...) gc_check_(__VA_ARGS__, __FILE__, __LINE__)

/* A cmocka setup: a fresh draw sequence per test, varied by the environment's GC_SEED. */
static inline int gc_reseed(void **state) {
    (void)state;
    static uint64_t n;
    const char *env = getenv("GC_SEED");
    gc_seed_state = 0x9e3779b97f4a7c15ull ^ (++n * 0x2545f4914f6cdd1dull) ^
                    (env ? strtoull(env, NULL, 10) * 0x94d049bb133111ebull : 0);
    return 0;
}

/* lz_fn adaptors for one-input and two-input ops: ctx points to the op. */
typedef lz_array *(*unary_op)(lz_array *);
typedef lz_array *(*binary_op)(lz_array *, lz_array *);

static inline int unary_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = (*(unary_op *)ctx)(x[0]);
    return out[0] ? 1 : -1;
}

#endif
