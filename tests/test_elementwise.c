/* Elementwise ops: every op of the elementwise section of lib/ops/ops.h against naive float64
 * references written here, over contiguous/strided/transposed layouts, broadcasting (0-d and
 * size-1 dims), size-0 arrays, integer dtypes (wrapping, promotion), float16/bfloat16 storage;
 * edge values; the vectorised math of lib/backend/cpu/vmath.h against double libm over the
 * whole float range in ulps; error paths. The fused engine's own cases are in test_fusion.c.
 *
 * Tolerances are in ulps of the result's format, per op (the tables below). An ulp here is
 * the spacing of the format in the binade of the exact value (2^-149 below FLT_MIN for
 * float32). NaN must give NaN, an exact value that rounds to +-inf must give that inf, and a
 * zero must have the sign of the reference. */
#include <float.h>
#include "ulps.h"

/* An integer as the dtype t stores it (two's complement wrap; bool: nonzero). */
static int64_t wrap(int64_t v, lz_dtype t) {
    return t == LZ_BOOL ? v != 0 : t == LZ_U8 ? (int64_t)(uint8_t)(uint64_t)v
         : t == LZ_I32 ? (int64_t)(int32_t)(uint32_t)(uint64_t)v : v;
}

static lz_array *from_floats(int n, const float *v) {
    int64_t s = n;
    return lz_from_data(v, 1, &s, LZ_F32);
}

/* ---- the unary table ---- */
#define R(name, expr) static double name(double x) { return expr; }
R(r_neg, -x) R(r_sign, x > 0 ? 1 : x < 0 ? -1 : x) R(r_rsqrt, 1 / sqrt(x)) R(r_square, x * x)
R(r_sigmoid, 1 / (1 + exp(-x))) R(r_relu, x <= 0 ? 0 : x)   /* relu: NaN stays NaN */
R(r_not, x == 0) R(r_isnan, isnan(x)) R(r_isfinite, isfinite(x))
static double r_gelu(double x) { return x == -INFINITY ? -0.0 : 0.5 * x * erfc(-x / sqrt(2.0)); }
static double u_tanh(double x) { return sqrt(2 / M_PI) * (x + 0.044715 * x * x * x); }
/* 0.5 x (1 + tanh u) written as x / (1 + e^-2u), which does not cancel for x < 0 */
static double r_gelu_tanh(double x) { return x == -INFINITY ? -0.0 : x / (1 + exp(-2 * u_tanh(x))); }
static double r_silu(double x) { return x == -INFINITY ? -0.0 : x / (1 + exp(-x)); }
static double r_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

enum { MATH, KEEP, PRED };   /* MATH: integers give float32; KEEP: same dtype; PRED: bool */
typedef struct {
    const char *name;
    lz_array *(*op)(lz_array *);
    double (*ref)(double);
    double lo, hi;     /* random inputs */
    double ulp;        /* max error, float32 ulps */
    int kind;
} unary_case;

static const unary_case unary_cases[] = {
    {"neg", lz_neg, r_neg, -10, 10, 0, KEEP},
    {"abs", lz_abs, fabs, -10, 10, 0, KEEP},
    {"sign", lz_sign, r_sign, -3, 3, 0, KEEP},
    {"exp", lz_exp, exp, -90, 90, 1, MATH},
    {"log", lz_log, log, 0, 100, 1, MATH},
    {"log1p", lz_log1p, log1p, -1, 10, 2, MATH},
    {"expm1", lz_expm1, expm1, -20, 20, 1.5, MATH},
    {"sqrt", lz_sqrt, sqrt, 0, 100, 0.5, MATH},
    {"rsqrt", lz_rsqrt, r_rsqrt, 0, 100, 1.5, MATH},
    {"square", lz_square, r_square, -10, 10, 0.5, KEEP},
    {"sin", lz_sin, sin, -10, 10, 2, MATH},
    {"cos", lz_cos, cos, -10, 10, 2, MATH},
    {"tanh", lz_tanh, tanh, -10, 10, 2, MATH},
    {"sigmoid", lz_sigmoid, r_sigmoid, -30, 30, 2.5, MATH},
    {"relu", lz_relu, r_relu, -5, 5, 0, MATH},
    {"gelu", lz_gelu, r_gelu, -8, 8, 6, MATH},
    {"gelu_tanh", lz_gelu_tanh, r_gelu_tanh, -8, 8, -1, MATH},   /* -1: see tol_gelu_tanh */
    {"silu", lz_silu, r_silu, -30, 30, 3.5, MATH},
    {"softplus", lz_softplus, r_softplus, -30, 30, 2.5, MATH},
    {"erf", lz_erf, erf, -5, 5, 1.5, MATH},
    {"floor", lz_floor, floor, -10, 10, 0, KEEP},
    {"ceil", lz_ceil, ceil, -10, 10, 0, KEEP},
    {"round", lz_round, nearbyint, -10, 10, 0, KEEP},
    {"logical_not", lz_logical_not, r_not, -2, 2, 0, PRED},
    {"isnan", lz_isnan, r_isnan, -2, 2, 0, PRED},
    {"isfinite", lz_isfinite, r_isfinite, -2, 2, 0, PRED},
};
#define NUNARY (int)(sizeof unary_cases / sizeof *unary_cases)

/* gelu_tanh computes u = c (x + 0.044715 x^3) in float: its relative error (a few ulps)
 * becomes |2u| times that in e^-2u, so the bound grows with |u| (the function's condition
 * number), as in every float implementation. */
static double tol_gelu_tanh(double x) { return 4 + 5 * fabs(u_tanh(x)); }

static double tol_of(const unary_case *c, double x) { return c->ulp < 0 ? tol_gelu_tanh(x) : c->ulp; }

static const struct { int nd; int64_t s[3]; } shapes[] = {
    {0, {0}}, {1, {0}}, {1, {1}}, {1, {1000}}, {2, {3, 0}}, {2, {7, 33}}, {3, {2, 1, 65}},
    {3, {5, 4, 3}},
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

/* One unary case on random inputs of dtype t in every shape and layout. */
static void run_unary(const unary_case *c, lz_dtype t, uint64_t *seed) {
    for (int s = 0; s < NSHAPES; s++)
        for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout++) {
            double lo = c->lo, hi = c->hi;
            if (t == LZ_U8 || t == LZ_BOOL) lo = 0, hi = t == LZ_U8 ? 250 : 2;
            tarr x = t_rand(shapes[s].nd, shapes[s].s, t, lo, hi, seed, layout);
            lz_pool_push();
            lz_array *y = c->op(x.a);
            assert_non_null(y);
            lz_dtype want = c->kind == PRED ? LZ_BOOL
                          : c->kind == MATH && !lz_dtype_is_float(t) ? LZ_F32 : t;
            assert_int_equal(lz_dtype_of(y), want);
            assert_int_equal(lz_ndim(y), shapes[s].nd);
            double *ref = malloc((size_t)(x.n + 1) * sizeof *ref), *tol = malloc((size_t)(x.n + 1) * sizeof *tol);
            int64_t *iref = malloc((size_t)(x.n + 1) * sizeof *iref);
            for (int64_t i = 0; i < x.n; i++) {
                ref[i] = c->ref(x.v[i]);
                /* float32 error bound, plus the rounding to a 16-bit result format */
                tol[i] = tol_of(c, x.v[i]) / (t == LZ_F16 ? 8192 : t == LZ_BF16 ? 65536 : 1) +
                         (t == LZ_F16 || t == LZ_BF16 ? 1 : 0);
                iref[i] = lz_dtype_is_float(want) ? 0 : wrap((int64_t)ref[i], want);
            }
            char what[64];
            snprintf(what, sizeof what, "%s layout %d shape %d", c->name, layout, s);
            if (lz_dtype_is_float(want)) check_ulps(y, ref, tol, 0, what);
            else check_ints(y, iref, what);
            free(ref); free(tol); free(iref);
            lz_pool_pop();
            t_free(&x);
        }
}

static void test_unary_float32(void **state) {
    (void)state;
    uint64_t seed = 1;
    for (int k = 0; k < NUNARY; k++) run_unary(&unary_cases[k], LZ_F32, &seed);
}

/* float16/bfloat16 compute in float32 and round once more; integers either keep their dtype
 * (neg, abs, sign, square, floor, ceil, round: wrapping) or become float32. */
static void test_unary_other_dtypes(void **state) {
    (void)state;
    uint64_t seed = 2;
    const lz_dtype ts[] = {LZ_F16, LZ_BF16, LZ_I32, LZ_I64, LZ_U8, LZ_BOOL};
    for (int k = 0; k < NUNARY; k++)
        for (int j = 0; j < 6; j++) run_unary(&unary_cases[k], ts[j], &seed);
}

/* Special and extreme inputs, float32: no NaN where the function is finite, exact infinities,
 * signed zeros, under/overflow, denormals, round half to even, log(0) = -inf. */
static const float edge[] = {
    0.0f, -0.0f, INFINITY, -INFINITY, NAN, 0x1p-149f, -0x1p-149f, FLT_MIN, -FLT_MIN,
    FLT_MAX, -FLT_MAX, 1e-30f, -1e-30f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 3.5f, -0.3f,
    8388607.5f, 88.72283f, 88.7229f, 89.0f, -87.33655f, -87.5f, -103.0f, -103.97f, -104.0f,
    -105.0f, -200.0f, 20.0f, -20.0f, 9.1f, -9.1f, 100.0f, -100.0f, 1e10f, -1e10f, 4.0f, -4.0f,
    1.0f, -1.0f, 0.625f, -0.625f, 3.92f, 10.5f, -0.99999994f, 16.6f, -16.6f, 0x1p-24f,
};
#define NEDGE (int)(sizeof edge / sizeof *edge)

static void test_unary_edge_values(void **state) {
    (void)state;
    lz_array *x = from_floats(NEDGE, edge);
    for (int k = 0; k < NUNARY; k++) {
        const unary_case *c = &unary_cases[k];
        lz_pool_push();
        lz_array *y = c->op(x);
        double ref[NEDGE], tol[NEDGE];
        int64_t iref[NEDGE];
        for (int i = 0; i < NEDGE; i++) {
            ref[i] = c->ref(edge[i]);
            tol[i] = tol_of(c, edge[i]);
            iref[i] = isnan(ref[i]) ? 0 : (int64_t)ref[i];
        }
        if (c->kind == PRED) check_ints(y, iref, c->name);
        else check_ulps(y, ref, tol, 0, c->name);
        lz_pool_pop();
    }
    lz_release(x);
}

/* The fast math over the whole float range: every 4099th bit pattern (about a million
 * values: all binades, denormals, infinities, NaNs). Bounds are the measured maxima rounded
 * up; gelu is bounded for normal results only (a denormal one keeps fewer bits). */
static void test_vmath_ulps_full_range(void **state) {
    (void)state;
    int64_t n = 0, cap = (int64_t)(0x100000000ull / 4099) + 1;
    float *v = malloc((size_t)cap * sizeof *v);
    for (uint64_t b = 12345; b < 0x100000000ull; b += 4099) {
        uint32_t u = (uint32_t)b;
        memcpy(&v[n++], &u, 4);
    }
    lz_array *x = from_floats((int)n, v);
    double *ref = malloc((size_t)n * sizeof *ref), *tol = malloc((size_t)n * sizeof *tol);
    const char *names[] = {"exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf", "gelu",
                           "gelu_tanh", "silu", "softplus", "sin", "cos"};
    for (int k = 0; k < NUNARY; k++) {
        const unary_case *c = &unary_cases[k];
        bool listed = false;
        for (int j = 0; j < 13; j++) listed |= !strcmp(c->name, names[j]);
        if (!listed) continue;
        for (int64_t i = 0; i < n; i++) {
            ref[i] = c->ref(v[i]);
            tol[i] = tol_of(c, v[i]);
            if (!strcmp(c->name, "gelu") && fabs(ref[i]) < FLT_MIN) tol[i] = 16;
        }
        lz_pool_push();
        check_ulps(c->op(x), ref, tol, 0, c->name);
        lz_pool_pop();
    }
    free(ref); free(tol); free(v);
    lz_release(x);
}

/* ---- binary ---- */
#define B(name, expr) static double name(double x, double y) { return expr; }
B(b_add, x + y) B(b_sub, x - y) B(b_mul, x * y) B(b_div, x / y)
B(b_max, isnan(x) || isnan(y) ? NAN : x > y ? x : y)
B(b_min, isnan(x) || isnan(y) ? NAN : x < y ? x : y)
B(b_eq, x == y) B(b_ne, x != y) B(b_lt, x < y) B(b_le, x <= y) B(b_gt, x > y) B(b_ge, x >= y)
B(b_and, x != 0 && y != 0) B(b_or, x != 0 || y != 0)
/* integer power by repeated multiplication, wrapping */
static int64_t ipow_ref(int64_t x, int64_t y) {
    if (y < 0) return x == 1 ? 1 : x == -1 ? (y % 2 ? -1 : 1) : 0;
    uint64_t r = 1;
    for (int64_t i = 0; i < y; i++) r *= (uint64_t)x;
    return (int64_t)r;
}

enum { ARITH, DIVIDE, CMP, LOGIC };
typedef struct {
    const char *name;
    lz_array *(*op)(lz_array *, lz_array *);
    double (*ref)(double, double);
    double ulp;
    int kind;
} binary_case;

static const binary_case binary_cases[] = {
    {"add", lz_add, b_add, 0.5, ARITH}, {"sub", lz_sub, b_sub, 0.5, ARITH},
    {"mul", lz_mul, b_mul, 0.5, ARITH}, {"div", lz_div, b_div, 0.5, DIVIDE},
    {"pow", lz_pow, pow, 1, ARITH}, {"maximum", lz_maximum, b_max, 0, ARITH},
    {"minimum", lz_minimum, b_min, 0, ARITH}, {"equal", lz_equal, b_eq, 0, CMP},
    {"not_equal", lz_not_equal, b_ne, 0, CMP}, {"less", lz_less, b_lt, 0, CMP},
    {"less_equal", lz_less_equal, b_le, 0, CMP}, {"greater", lz_greater, b_gt, 0, CMP},
    {"greater_equal", lz_greater_equal, b_ge, 0, CMP},
    {"logical_and", lz_logical_and, b_and, 0, LOGIC},
    {"logical_or", lz_logical_or, b_or, 0, LOGIC},
};
#define NBINARY (int)(sizeof binary_cases / sizeof *binary_cases)

static const struct { int na, nb; int64_t a[3], b[3]; } pairs[] = {
    {2, 2, {3, 4}, {3, 4}}, {2, 2, {3, 1}, {1, 4}}, {3, 1, {2, 3, 4}, {4}}, {0, 1, {0}, {5}},
    {1, 0, {5}, {0}}, {0, 0, {0}, {0}}, {2, 2, {0, 3}, {1, 3}}, {3, 2, {4, 1, 3}, {2, 1}},
    {1, 2, {1}, {6, 7}}, {2, 3, {9, 17}, {2, 9, 17}},
};
#define NPAIRS (int)(sizeof pairs / sizeof *pairs)

/* The dtype rule of ops.h, written out: bool < uint8 < int32 < int64 < f16/bf16 < f32. */
static lz_dtype promote_ref(lz_dtype a, lz_dtype b) {
    static const int rank[LZ_NDTYPES] = {[LZ_BOOL] = 0, [LZ_U8] = 1, [LZ_I32] = 2, [LZ_I64] = 3,
                                         [LZ_F16] = 4, [LZ_BF16] = 4, [LZ_F32] = 5};
    if (a == b) return a;
    if (rank[a] == 4 && rank[b] == 4) return LZ_F32;
    return rank[a] >= rank[b] ? a : b;
}

/* Random input ranges; pow keeps integer results small and float bases positive. */
static void range_of(const binary_case *c, lz_dtype t, int second, double *lo, double *hi) {
    bool fl = lz_dtype_is_float(t);
    *lo = t == LZ_BOOL || t == LZ_U8 ? 0 : fl ? -8 : -60;
    *hi = t == LZ_BOOL ? 2 : t == LZ_U8 ? 250 : fl ? 8 : 60;
    if (c->ref == pow && t != LZ_BOOL) {
        *lo = fl ? (second ? -3 : 0.1) : second || t == LZ_U8 ? 0 : -6;
        *hi = second ? (fl ? 3 : 4) : fl ? 4 : 6;
    }
}

/* Broadcast pair p, layout la/lb, dtypes ta/tb: result dtype, shape and values. */
static void run_binary(const binary_case *c, int p, int la, int lb, lz_dtype ta, lz_dtype tb,
                       uint64_t *seed) {
    double lo, hi;
    range_of(c, ta, 0, &lo, &hi);
    tarr a = t_rand(pairs[p].na, pairs[p].a, ta, lo, hi, seed, la);
    range_of(c, tb, 1, &lo, &hi);
    tarr b = t_rand(pairs[p].nb, pairs[p].b, tb, lo, hi, seed, lb);
    lz_pool_push();
    lz_array *y = c->op(a.a, b.a);
    assert_non_null(y);
    lz_dtype t = promote_ref(ta, tb);
    lz_dtype want = c->kind == CMP || c->kind == LOGIC ? LZ_BOOL
                  : c->kind == DIVIDE && !lz_dtype_is_float(t) ? LZ_F32 : t;
    assert_int_equal(lz_dtype_of(y), want);
    int nd = pairs[p].na > pairs[p].nb ? pairs[p].na : pairs[p].nb;
    int64_t shape[3], n = 1;
    for (int d = 0; d < nd; d++) {
        int ka = d - (nd - pairs[p].na), kb = d - (nd - pairs[p].nb);
        int64_t sa = ka >= 0 ? pairs[p].a[ka] : 1, sb = kb >= 0 ? pairs[p].b[kb] : 1;
        shape[d] = sa == 1 ? sb : sa;
        n *= shape[d];
        assert_int_equal(lz_dim(y, d), shape[d]);
    }
    double *ref = malloc((size_t)(n + 1) * sizeof *ref);
    int64_t *iref = malloc((size_t)(n + 1) * sizeof *iref);
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = 0, ib = 0, sa = 1, sb = 1, r = i;
        for (int d = nd - 1; d >= 0; d--) {   /* the broadcast source of element i */
            int64_t idx = r % shape[d];
            r /= shape[d];
            int ka = d - (nd - pairs[p].na), kb = d - (nd - pairs[p].nb);
            if (ka >= 0) { ia += (pairs[p].a[ka] == 1 ? 0 : idx) * sa; sa *= pairs[p].a[ka]; }
            if (kb >= 0) { ib += (pairs[p].b[kb] == 1 ? 0 : idx) * sb; sb *= pairs[p].b[kb]; }
        }
        /* operands as the computing dtype holds them */
        double x = lz_dtype_is_float(t) ? round_to(a.v[ia], fmt_of(t)) : a.v[ia];
        double z = lz_dtype_is_float(t) ? round_to(b.v[ib], fmt_of(t)) : b.v[ib];
        if (t == LZ_BOOL) x = x != 0, z = z != 0;
        ref[i] = c->ref(x, z);
        if (!lz_dtype_is_float(want)) {
            if (want == LZ_BOOL) iref[i] = ref[i] != 0;
            else if (c->ref == pow) iref[i] = wrap(ipow_ref((int64_t)x, (int64_t)z), want);
            else iref[i] = wrap(c->ref == b_mul ? (int64_t)((uint64_t)(int64_t)x * (uint64_t)(int64_t)z)
                                                : (int64_t)ref[i], want);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "%s pair %d layouts %d/%d %s,%s", c->name, p, la, lb,
             lz_dtype_name(ta), lz_dtype_name(tb));
    if (lz_dtype_is_float(want))
        check_ulps(y, ref, NULL, want == LZ_F32 ? c->ulp : c->ulp / 8192 + 1, what);
    else
        check_ints(y, iref, what);
    free(ref); free(iref);
    lz_pool_pop();
    t_free(&a); t_free(&b);
}

static void test_binary_float32_broadcast_layouts(void **state) {
    (void)state;
    uint64_t seed = 3;
    for (int k = 0; k < NBINARY; k++)
        for (int p = 0; p < NPAIRS; p++)
            for (int la = T_CONTIG; la <= T_TRANSPOSED; la++)
                run_binary(&binary_cases[k], p, la, (la + p) % 3, LZ_F32, LZ_F32, &seed);
}

static void test_binary_dtypes_and_promotion(void **state) {
    (void)state;
    uint64_t seed = 4;
    const lz_dtype ds[][2] = {
        {LZ_I32, LZ_I32}, {LZ_I64, LZ_I32}, {LZ_U8, LZ_U8}, {LZ_U8, LZ_BOOL}, {LZ_BOOL, LZ_BOOL},
        {LZ_F32, LZ_I32}, {LZ_I64, LZ_F32}, {LZ_F16, LZ_BF16}, {LZ_F16, LZ_I64}, {LZ_BF16, LZ_U8},
        {LZ_F16, LZ_F16}, {LZ_I32, LZ_U8},
    };
    for (int k = 0; k < NBINARY; k++)
        for (int d = 0; d < (int)(sizeof ds / sizeof *ds); d++) {
            if (binary_cases[k].ref == b_div && !lz_dtype_is_float(ds[d][1])) continue;
            for (int p = 0; p < NPAIRS; p += 3)
                run_binary(&binary_cases[k], p, p % 3, (p + 1) % 3, ds[d][0], ds[d][1], &seed);
        }
}

/* Fixed values: NaN propagation, infinities, integer wrap, integer division, exact int64. */
static void test_binary_edge_values(void **state) {
    (void)state;
    lz_pool_push();
    float fa[] = {NAN, 1, NAN, INFINITY, -INFINITY, -INFINITY, 0, 1, -1, 0};
    float fb[] = {1, NAN, NAN, 1, NAN, -INFINITY, -0.0f, 0, 0, 0};
    lz_array *a = from_floats(10, fa), *b = from_floats(10, fb);
    double r_max[10], r_min[10], r_div[10];
    for (int i = 0; i < 10; i++)
        r_max[i] = b_max(fa[i], fb[i]), r_min[i] = b_min(fa[i], fb[i]), r_div[i] = (double)fa[i] / fb[i];
    r_max[6] = 0, r_min[6] = 0;   /* max/min(0, -0): either zero; compare without sign below */
    lz_array *mx = lz_maximum(a, b), *mn = lz_minimum(a, b);
    float v[10];
    lz_to_float(mx, v, 10);
    for (int i = 0; i < 10; i++) assert_true(isnan(r_max[i]) ? isnan(v[i]) : v[i] == r_max[i]);
    lz_to_float(mn, v, 10);
    for (int i = 0; i < 10; i++) assert_true(isnan(r_min[i]) ? isnan(v[i]) : v[i] == r_min[i]);
    check_ulps(lz_div(a, b), r_div, NULL, 0, "div by zero");
    int64_t eq[10], ne[10], lt[10];
    for (int i = 0; i < 10; i++) eq[i] = fa[i] == fb[i], ne[i] = fa[i] != fb[i], lt[i] = fa[i] < fb[i];
    check_ints(lz_equal(a, b), eq, "equal with NaN");
    check_ints(lz_not_equal(a, b), ne, "not_equal with NaN");
    check_ints(lz_less(a, b), lt, "less with NaN");
    int64_t land[10], lor[10];
    for (int i = 0; i < 10; i++) land[i] = fa[i] != 0 && fb[i] != 0, lor[i] = fa[i] != 0 || fb[i] != 0;
    check_ints(lz_logical_and(a, b), land, "logical_and of floats");
    check_ints(lz_logical_or(a, b), lor, "logical_or of floats");

    int32_t ia[] = {INT32_MAX, 65536, -7, 7, 1, -1, 0, 2, -3, 2};
    int32_t ib[] = {1, 65536, 2, 2, 0, 0, 0, 10, 3, -1};
    int64_t s = 10;
    lz_array *x = lz_from_data(ia, 1, &s, LZ_I32), *y = lz_from_data(ib, 1, &s, LZ_I32);
    int64_t add[10], mul[10], pw[10];
    double dv[10];
    for (int i = 0; i < 10; i++) {
        add[i] = wrap((int64_t)ia[i] + ib[i], LZ_I32), mul[i] = wrap((int64_t)ia[i] * ib[i], LZ_I32);
        pw[i] = wrap(ipow_ref(ia[i], ib[i]), LZ_I32), dv[i] = (double)ia[i] / ib[i];
    }
    check_ints(lz_add(x, y), add, "int32 add wraps");
    check_ints(lz_mul(x, y), mul, "int32 mul wraps");
    check_ints(lz_pow(x, y), pw, "int32 pow");
    int64_t pos[10];
    for (int i = 0; i < 10; i++) pos[i] = add[i] > 0;
    check_ints(lz_greater(lz_add(x, y), lz_scalar(0, LZ_I32)), pos, "fused int32 sum wraps before >");
    lz_array *q = lz_div(x, y);
    assert_int_equal(lz_dtype_of(q), LZ_F32);
    check_ulps(q, dv, NULL, 0.5, "int division gives float32");

    int64_t big[] = {INT64_MAX, (1ll << 53) + 1, INT64_MIN}, one[] = {1, 1ll << 53, -1};
    s = 3;
    lz_array *g = lz_from_data(big, 1, &s, LZ_I64), *h = lz_from_data(one, 1, &s, LZ_I64);
    int64_t gsum[] = {INT64_MIN, (1ll << 53) + (1ll << 53) + 1, INT64_MAX}, ggt[] = {1, 1, 0};
    check_ints(lz_add(g, h), gsum, "int64 add wraps");
    check_ints(lz_greater(g, h), ggt, "int64 compare is exact");
    uint8_t ua[] = {200, 3, 16}, ub[] = {100, 5, 16};
    lz_array *u = lz_from_data(ua, 1, &s, LZ_U8), *w = lz_from_data(ub, 1, &s, LZ_U8);
    int64_t usum[] = {44, 8, 32}, udif[] = {100, 254, 0}, uprod[] = {32, 15, 0};
    check_ints(lz_add(u, w), usum, "uint8 add wraps");
    check_ints(lz_sub(u, w), udif, "uint8 sub wraps");
    check_ints(lz_mul(u, w), uprod, "uint8 mul wraps");
    lz_pool_pop();
}

static void test_where(void **state) {
    (void)state;
    uint64_t seed = 5;
    int64_t sc[2] = {4, 1}, sa[2] = {1, 6}, sb[1] = {6};
    tarr c = t_rand(2, sc, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr a = t_rand(2, sa, LZ_I32, -9, 9, &seed, T_STRIDED);
    tarr b = t_rand(1, sb, LZ_F32, -9, 9, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *cz = lz_mul(c.a, lz_greater(c.a, lz_scalar(-0.5, LZ_F32)));
    lz_array *y = lz_where(cz, a.a, b.a);
    assert_int_equal(lz_dtype_of(y), LZ_F32);
    double ref[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) {
            double cv = c.v[i] * (c.v[i] > -0.5);
            ref[i * 6 + j] = cv != 0 ? a.v[j] : b.v[j];
        }
    assert_int_equal(lz_dim(y, 0), 4);
    check_ulps(y, ref, NULL, 0, "where broadcast, int and float branches");
    /* the branch not taken never leaks: NaN and inf where the condition rejects them */
    float cv[] = {1, 0, NAN, 0}, xv[] = {1, NAN, 3, INFINITY}, zv[] = {NAN, 2, NAN, 4};
    double want[] = {1, 2, 3, 4};
    check_ulps(lz_where(from_floats(4, cv), from_floats(4, xv), from_floats(4, zv)), want, NULL, 0,
               "where with NaN in the other branch");
    /* 0-d scalar branch, bool result */
    lz_array *yb = lz_where(lz_less(b.a, lz_scalar(0, LZ_F32)), lz_scalar(1, LZ_BOOL),
                            lz_greater(b.a, lz_scalar(3, LZ_F32)));
    assert_int_equal(lz_dtype_of(yb), LZ_BOOL);
    int64_t iref[6];
    for (int j = 0; j < 6; j++) iref[j] = b.v[j] < 0 ? 1 : b.v[j] > 3;
    check_ints(yb, iref, "where to bool");
    lz_pool_pop();
    t_free(&c); t_free(&a); t_free(&b);
}

static void test_scalar_helpers(void **state) {
    (void)state;
    lz_pool_push();
    int32_t iv[] = {-3, 0, 7, 100};
    uint8_t uv[] = {0, 1, 90, 255};
    float fv[] = {-1.5f, 0, 2, 3.25f};
    int64_t s = 4;
    lz_array *i = lz_from_data(iv, 1, &s, LZ_I32), *u = lz_from_data(uv, 1, &s, LZ_U8),
             *f = from_floats(4, fv);
    int64_t r_addi[4], r_mulu[4], r_powi[4];
    double r_addf[4], r_powf[4], r_sq[4], r_half[4], r_nan[4];
    for (int k = 0; k < 4; k++) {
        r_addi[k] = iv[k] + 3, r_mulu[k] = (uv[k] * 3) & 255, r_powi[k] = ipow_ref(iv[k], 3);
        r_addf[k] = iv[k] + 0.5, r_powf[k] = pow(fv[k], 2.5), r_sq[k] = (double)fv[k] * fv[k];
        r_half[k] = pow(iv[k], 0.5), r_nan[k] = NAN;
    }
    lz_array *y = lz_add_scalar(i, 3);
    check_ints(y, r_addi, "add_scalar int stays int");
    assert_int_equal(lz_dtype_of(y), LZ_I32);
    check_ulps(y = lz_add_scalar(i, 0.5), r_addf, NULL, 0.5, "add_scalar int + 0.5 gives float32");
    assert_int_equal(lz_dtype_of(y), LZ_F32);
    check_ulps(lz_add_scalar(i, NAN), r_nan, NULL, 0, "add_scalar int + NaN gives float32 NaN");
    check_ints(y = lz_mul_scalar(u, 3), r_mulu, "mul_scalar uint8 wraps");
    assert_int_equal(lz_dtype_of(y), LZ_U8);
    check_ints(lz_pow_scalar(i, 3), r_powi, "pow_scalar int");
    check_ulps(lz_pow_scalar(f, 2.5), r_powf, NULL, 1, "pow_scalar float");
    check_ulps(lz_pow_scalar(f, 2), r_sq, NULL, 0.5, "pow_scalar 2");
    check_ulps(lz_pow_scalar(i, 0.5), r_half, NULL, 1, "pow_scalar int ^ 0.5");
    double r_mulf[4];
    for (int k = 0; k < 4; k++) r_mulf[k] = round_to(fv[k] * round_to(0.1, F16), F16);
    check_ulps(y = lz_mul_scalar(lz_astype(f, LZ_F16), 0.1), r_mulf, NULL, 1, "mul_scalar float16");
    assert_int_equal(lz_dtype_of(y), LZ_F16);
    lz_pool_pop();
}

/* affine and axpby: in float32 bit for bit the expressions they replace (each product
 * rounded, then the sum), over transposed and broadcast operands; ints give float32; float16
 * is computed in float32 and rounded once. */
static bool same_floats(lz_array *p, lz_array *q) {
    int64_t n = lz_size(p);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    bool same = !lz_to_float(p, a, n) && !lz_to_float(q, b, n) && !memcmp(a, b, (size_t)n * sizeof *a);
    free(a);
    free(b);
    return same;
}

static void test_affine_axpby(void **state) {
    (void)state;
    uint64_t seed = 12;
    int64_t sx[2] = {33, 17}, sy[1] = {17}, n = 33 * 17;
    tarr x = t_rand(2, sx, LZ_F32, -3, 3, &seed, T_TRANSPOSED);
    tarr y = t_rand(1, sy, LZ_F32, -3, 3, &seed, T_STRIDED);
    tarr k = t_rand(2, sx, LZ_I32, -50, 50, &seed, T_CONTIG);
    const double a = 0.1, b = -1.3;   /* neither exact in float32 */
    const float fa = (float)a, fb = (float)b;
    lz_pool_push();
    lz_array *af = lz_affine(x.a, a, b), *ab = lz_axpby(a, x.a, b, y.a);
    assert_true(same_floats(af, lz_add_scalar(lz_mul_scalar(x.a, a), b)));
    assert_true(same_floats(ab, lz_add(lz_mul_scalar(x.a, a), lz_mul_scalar(y.a, b))));
    double *r1 = malloc(n * sizeof *r1), *r2 = malloc(n * sizeof *r2), *r3 = malloc(n * sizeof *r3);
    double *r4 = malloc(n * sizeof *r4);
    for (int64_t i = 0; i < n; i++) {
        float xv = (float)x.v[i], yv = (float)y.v[i % 17], p = fa * xv, q = fb * yv;
        r1[i] = p + fb;
        r2[i] = p + q;
        r3[i] = (float)(fa * (float)k.v[i]) + 1.0f;
    }
    check_ulps(af, r1, NULL, 0, "affine");
    check_ulps(ab, r2, NULL, 0, "axpby with broadcasting");
    lz_array *ai = lz_affine(k.a, a, 1);
    assert_int_equal(lz_dtype_of(ai), LZ_F32);
    check_ulps(ai, r3, NULL, 0, "affine of int32 gives float32");
    lz_array *h = lz_axpby(a, lz_astype(x.a, LZ_F16), b, lz_astype(y.a, LZ_F16));
    assert_int_equal(lz_dtype_of(h), LZ_F16);
    /* x and y were drawn in float32: their float16 roundings are the inputs here */
    lz_array *hr = lz_axpby(a, lz_astype(lz_astype(x.a, LZ_F16), LZ_F32), b,
                            lz_astype(lz_astype(y.a, LZ_F16), LZ_F32));
    float *hv = malloc(n * sizeof *hv);
    assert_int_equal(lz_to_float(hr, hv, n), 0);
    for (int64_t i = 0; i < n; i++) r4[i] = round_to(hv[i], F16);
    check_ulps(h, r4, NULL, 0, "axpby of float16, rounded once");
    free(hv);
    int64_t s3[1] = {3};
    lz_array *bad = lz_zeros(1, s3, LZ_F32);
    t_assert_error(lz_axpby(1, x.a, 1, bad), "axpby: shapes float32[33,17] and float32[3] cannot be broadcast together");
    assert_null(lz_affine(NULL, 1, 0));
    assert_null(lz_axpby(1, NULL, 1, y.a));
    lz_pool_pop();
    free(r1); free(r2); free(r3); free(r4);
    t_free(&x); t_free(&y); t_free(&k);
}

/* ---- astype, copy, contiguous ---- */
static double decode16(uint16_t h, bool bf) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    if (bf) return f;
    int sgn = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return sgn ? -v : v;
}

static void test_astype_all_pairs(void **state) {
    (void)state;
    uint64_t seed = 6;
    for (int from = 0; from < LZ_NDTYPES; from++)
        for (int to = 0; to < LZ_NDTYPES; to++) {
            int64_t sh[2] = {5, 7};
            tarr x = t_rand(2, sh, (lz_dtype)from, 0, from == LZ_BOOL ? 2 : 100, &seed, T_TRANSPOSED);
            lz_pool_push();
            lz_array *y = lz_astype(x.a, (lz_dtype)to);
            assert_int_equal(lz_dtype_of(y), to);
            double ref[35];
            int64_t iref[35];
            for (int i = 0; i < 35; i++) {
                ref[i] = lz_dtype_is_float(to) ? round_to(x.v[i], fmt_of(to)) : x.v[i];
                iref[i] = to == LZ_BOOL ? x.v[i] != 0 : wrap((int64_t)trunc(x.v[i]), (lz_dtype)to);
            }
            if (lz_dtype_is_float(to)) check_ulps(y, ref, NULL, 0, "astype");
            else check_ints(y, iref, "astype");
            lz_pool_pop();
            t_free(&x);
        }
}

static void test_astype_edges_and_half_round_trips(void **state) {
    (void)state;
    lz_pool_push();
    float fv[] = {2.7f, -2.7f, 0.999f, -0.5f, 0, -0.0f, NAN, INFINITY, 300.5f, -1};
    lz_array *f = from_floats(10, fv);
    int64_t t32[] = {2, -2, 0, 0, 0, 0}, tb[] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    lz_array *fi = lz_astype(lz_slice_axis(f, 0, 0, 6, 1), LZ_I32);
    check_ints(fi, t32, "float -> int32 truncates");
    check_ints(lz_astype(f, LZ_BOOL), tb, "float -> bool (NaN is true)");
    int64_t iv[] = {1ll << 31, (1ll << 32) + 5, -(1ll << 31) - 1, 256, -1, 300}, s = 6;
    lz_array *i = lz_from_data(iv, 1, &s, LZ_I64);
    int64_t w32[] = {INT32_MIN, 5, INT32_MAX, 256, -1, 300}, w8[] = {0, 5, 255, 0, 255, 44};
    check_ints(lz_astype(i, LZ_I32), w32, "int64 -> int32 wraps");
    check_ints(lz_astype(i, LZ_U8), w8, "int64 -> uint8 wraps");
    check_ints(lz_astype(lz_astype(i, LZ_I32), LZ_U8), w8, "int32 -> uint8 wraps");
    /* inside one fused group the intermediate int32 wraps as if it had been stored */
    check_ints(lz_astype(lz_astype(i, LZ_I32), LZ_I64), w32, "int64 -> int32 -> int64 fused");

    /* float32 -> float16 / bfloat16: ties to even, subnormals, overflow, NaN */
    float hv[] = {1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 65519, 65520,
                  1e-6f, 3e-8f, 2.9e-8f, -0x1p-25f, 1e5f, FLT_MAX, 0x1p-130f, NAN, -INFINITY, 0.1f};
    lz_array *h = from_floats(16, hv);
    double r16[16], rb16[16], r16b[16];
    for (int k = 0; k < 16; k++) {
        r16[k] = round_to(hv[k], F16);
        rb16[k] = round_to(hv[k], BF16);
        r16b[k] = round_to(r16[k], BF16);
    }
    check_ulps(lz_astype(h, LZ_F16), r16, NULL, 0, "float32 -> float16 rounding");
    check_ulps(lz_astype(h, LZ_BF16), rb16, NULL, 0, "float32 -> bfloat16 rounding");
    check_ulps(lz_astype(lz_astype(h, LZ_F16), LZ_BF16), r16b, NULL, 0, "float16 -> bfloat16");

    /* float32 -> 16 bits over the whole range (every 4099th pattern), stored and, fused,
     * kept in a float32 register between two casts */
    int64_t m = 0, cap = (int64_t)(0x100000000ull / 4099) + 1;
    float *all = malloc((size_t)cap * sizeof *all);
    double *want = malloc((size_t)cap * sizeof *want);
    for (uint64_t u = 777; u < 0x100000000ull; u += 4099, m++) memcpy(&all[m], &(uint32_t){(uint32_t)u}, 4);
    lz_array *wide = from_floats((int)m, all);
    for (int bf = 0; bf < 2; bf++) {
        for (int64_t k = 0; k < m; k++) want[k] = round_to(all[k], bf ? BF16 : F16);
        lz_dtype t = bf ? LZ_BF16 : LZ_F16;
        check_ulps(lz_astype(wide, t), want, NULL, 0, "float32 -> 16 bits, stored");
        check_ulps(lz_astype(lz_astype(wide, t), LZ_F32), want, NULL, 0, "float32 -> 16 bits, fused");
    }
    free(all); free(want);
    /* every float16 / bfloat16 bit pattern survives a round trip through float32, and reads
     * back as the value its bits mean */
    uint16_t *bits = malloc(65536 * sizeof *bits);
    double *ref = malloc(65536 * sizeof *ref);
    for (int bf = 0; bf < 2; bf++) {
        for (int k = 0; k < 65536; k++) bits[k] = (uint16_t)k, ref[k] = decode16((uint16_t)k, bf);
        int64_t n = 65536;
        lz_array *x = lz_from_data(bits, 1, &n, bf ? LZ_BF16 : LZ_F16);
        lz_array *rt = lz_astype(lz_astype(x, LZ_F32), bf ? LZ_BF16 : LZ_F16);
        check_ulps(lz_astype(x, LZ_F32), ref, NULL, 0, bf ? "bfloat16 -> float32" : "float16 -> float32");
        const uint16_t *back = lz_data(rt);
        for (int k = 0; k < 65536; k++)
            if (!isnan(ref[k]) && back[k] != k) fail_msg("16-bit pattern %#x came back as %#x", k, back[k]);
    }
    free(bits); free(ref);
    lz_pool_pop();
}

static void test_copy_and_contiguous(void **state) {
    (void)state;
    uint64_t seed = 7;
    int64_t sh[3] = {3, 5, 2}, z[2] = {0, 3};
    tarr x = t_rand(3, sh, LZ_F32, -1, 1, &seed, T_TRANSPOSED);
    tarr e = t_rand(2, z, LZ_I64, -1, 1, &seed, T_STRIDED);
    lz_pool_push();
    lz_array *c = lz_contiguous(x.a), *d = lz_copy(x.a);
    assert_true(!lz_is_contiguous(x.a) && lz_is_contiguous(c) && lz_is_contiguous(d));
    check_ulps(c, x.v, NULL, 0, "contiguous of a transposed view");
    check_ulps(d, x.v, NULL, 0, "copy of a transposed view");
    assert_ptr_equal(lz_contiguous(c), c);   /* already contiguous: the same array */
    lz_array *d2 = lz_copy(c);
    assert_true(d2 != c && lz_data(d2) != lz_data(c));
    check_ints(lz_copy(e.a), (int64_t[1]){0}, "copy of size 0");
    check_ints(lz_contiguous(lz_astype(lz_scalar(5, LZ_I32), LZ_I64)), (int64_t[1]){5}, "0-d");
    lz_pool_pop();
    t_free(&x); t_free(&e);
}

/* ---- errors ---- */
static void test_errors(void **state) {
    (void)state;
    int64_t s1[2] = {2, 3}, s2[2] = {4, 3}, s3[1] = {2}, s4[1] = {3};
    lz_array *a = lz_zeros(2, s1, LZ_F32), *b = lz_zeros(2, s2, LZ_I32);
    lz_array *c = lz_zeros(1, s3, LZ_BOOL), *d = lz_zeros(1, s4, LZ_F32);
    t_assert_error(lz_sub(a, b), "sub: shapes float32[2,3] and int32[4,3] cannot be broadcast together");
    t_assert_error(lz_greater(b, a), "greater: shapes int32[4,3] and float32[2,3] cannot be broadcast");
    t_assert_error(lz_where(c, d, d), "where: shapes bool[2] and float32[3] cannot be broadcast together");
    t_assert_error(lz_where(d, d, c), "where: shapes float32[3] and bool[2] cannot be broadcast together");
    t_assert_error(lz_astype(a, (lz_dtype)99), "astype: unknown dtype 99");
    t_assert_error(lz_astype(a, (lz_dtype)-1), "astype: unknown dtype -1");
    /* a NULL input gives NULL and keeps the first message */
    lz_error_clear();
    lz_fail("first");
    assert_true(!lz_add(NULL, a) && !lz_exp(NULL) && !lz_where(c, NULL, d) && !lz_copy(NULL));
    assert_true(!lz_astype(NULL, LZ_F32) && !lz_contiguous(NULL) && !lz_add_scalar(NULL, 1));
    assert_null(lz_pow_scalar(NULL, 2));
    assert_string_equal(lz_error(), "first");
    lz_release(a); lz_release(b); lz_release(c); lz_release(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_float32), cmocka_unit_test(test_unary_other_dtypes),
        cmocka_unit_test(test_unary_edge_values), cmocka_unit_test(test_vmath_ulps_full_range),
        cmocka_unit_test(test_binary_float32_broadcast_layouts),
        cmocka_unit_test(test_binary_dtypes_and_promotion),
        cmocka_unit_test(test_binary_edge_values), cmocka_unit_test(test_where),
        cmocka_unit_test(test_scalar_helpers), cmocka_unit_test(test_affine_axpby),
        cmocka_unit_test(test_astype_all_pairs),
        cmocka_unit_test(test_astype_edges_and_half_round_trips),
        cmocka_unit_test(test_copy_and_contiguous), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
