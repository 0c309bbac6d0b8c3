/* Elementwise kernels: one loop per primitive and register rep (F: float, I: int64).
 * Each is a plain loop the compiler vectorises; the fused engine calls them tile by tile.
 * `omp simd` on every loop: the engine may pass out == an input (exact aliasing, which has
 * no loop-carried dependence), and without it gcc's overlap check picks the scalar loop.
 * Which rep a constructor feeds each op is fixed in lib/ops/elementwise.c.
 *
 * Vectorised (checked with -fopt-info-vec): everything but pow (a libm call), and sin/cos
 * of |x| > 2^19 (libm, in a second pass).
 * No kernel reads floating-point exception flags, so this file tells gcc not to preserve
 * them: with trapping math on, gcc sinks the arithmetic of one side of a select into a
 * branch and then refuses to if-convert it (log, log1p, softplus stayed scalar). It must
 * come first so that the inline functions of vmath.h are compiled (and inlined) with it. */
#pragma GCC optimize("no-trapping-math")
#include <math.h>
#include "cpu.h"
#include "vmath.h"
#ifdef __AVX__
#include <immintrin.h>
#endif

#define UNARY_F(name, expr)                                                            \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)b_; (void)c_; (void)p;                                                   \
        const float *a = a_;                                                           \
        float *o = out;                                                                \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (expr); } \
    }
#define UNARY_I(name, expr)                                                            \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)b_; (void)c_; (void)p;                                                   \
        const int64_t *a = a_;                                                         \
        int64_t *o = out;                                                              \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { int64_t x = a[i]; o[i] = (expr); } \
    }
/* F inputs, I (0/1) output */
#define PRED_F(name, expr)                                                             \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)b_; (void)c_; (void)p;                                                   \
        const float *a = a_;                                                           \
        int64_t *o = out;                                                              \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (expr); } \
    }
#define BINARY(name, T, U, expr)                                                       \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)c_; (void)p;                                                             \
        const T *a = a_, *b = b_;                                                      \
        U *o = out;                                                                    \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { T x = a[i], y = b[i]; o[i] = (expr); } \
    }

UNARY_F(neg_f, -x)
UNARY_F(abs_f, fabsf(x))
UNARY_F(sign_f, x > 0 ? 1.0f : x < 0 ? -1.0f : x)   /* keeps 0, -0 and NaN */
UNARY_F(exp_f, lz_expf(x))
UNARY_F(log_f, lz_logf(x))
UNARY_F(log1p_f, lz_log1pf(x))
UNARY_F(expm1_f, lz_expm1f(x))

/* sqrtf sets errno for x < 0 under gcc's default -fmath-errno (which a pragma cannot turn
 * off for builtins), so its loop stays scalar: use the vector instruction directly. */
#define SQRT_LOOP(name, vexpr, expr)                                                   \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)b_; (void)c_; (void)p;                                                   \
        const float *a = a_;                                                           \
        float *o = out;                                                                \
        int64_t i = 0;                                                                 \
        VECTOR_PART(vexpr)                                                             \
        for (; i < n; i++) { float x = a[i]; o[i] = (expr); }                          \
    }
#ifdef __AVX__
#define VECTOR_PART(vexpr)                                                             \
    for (; i + 8 <= n; i += 8) {                                                       \
        __m256 v = _mm256_sqrt_ps(_mm256_loadu_ps(a + i));                             \
        _mm256_storeu_ps(o + i, (vexpr));                                              \
    }
#else
#define VECTOR_PART(vexpr)
#endif
SQRT_LOOP(sqrt_f, v, sqrtf(x))
SQRT_LOOP(rsqrt_f, _mm256_div_ps(_mm256_set1_ps(1.0f), v), 1.0f / sqrtf(x))
UNARY_F(square_f, x * x)
/* sin, cos: vectorised for |x| <= VM_TRIG_MAX. A larger finite x (rare) is left in place by
 * the first pass (no result is that large) and finished by libm in a second, scalar one. */
#define TRIG(name, c, libm)                                                            \
    static void name(int64_t n, void *out, const void *a_, const void *b_, const void *c_, \
                     const lz_params *p) {                                             \
        (void)b_; (void)c_; (void)p;                                                   \
        const float *a = a_;                                                           \
        float *o = out;                                                                \
        int big = 0;                                                                   \
        _Pragma("omp simd reduction(|:big)") for (int64_t i = 0; i < n; i++) {          \
            float x = a[i];                                                            \
            int b = (fabsf(x) > VM_TRIG_MAX) & (fabsf(x) < INFINITY);                  \
            o[i] = b ? x : vm_sincos(x, c);                                            \
            big |= b;                                                                  \
        }                                                                              \
        if (big)                                                                       \
            for (int64_t i = 0; i < n; i++)                                            \
                if (fabsf(o[i]) > VM_TRIG_MAX) o[i] = libm(o[i]);                      \
    }
TRIG(sin_f, 0, sinf)
TRIG(cos_f, 1, cosf)
UNARY_F(tanh_f, lz_tanhf(x))
UNARY_F(sigmoid_f, lz_sigmoidf(x))
UNARY_F(relu_f, x <= 0 ? 0.0f : x)   /* NaN propagates */
UNARY_F(gelu_f, lz_geluf(x))
/* GELU_GRAD (the node GELU's vjp builds, inputs x and a cotangent c): c (Phi(x) + x phi(x)),
 * one instruction where the composite took eleven (the GPT's MLP backward: 21.6 -> ~10 ms a
 * step on one core). Phi(x) is erfc(-x/sqrt2)/2 (as lz_geluf: no 1 + erf cancellation);
 * beyond |x| = 20 it is 0 or 1 and x phi(x) is 0. */
static inline float gelu_slope(float x) {
    float xc = x < -20.0f ? -20.0f : x > 20.0f ? 20.0f : x;
    float s = xc * xc, slo = VM_FMA(xc, xc, -s);
    float q = vm_erfc_pos(fabsf(xc) * 0x1.6a09e6p-1f, 0.5f * s, 0.5f * slo, 0.5f);   /* Phi(-|x|) */
    float cdf = xc <= 0.0f ? q : 1.0f - q;
    return VM_FMA(xc * 0x1.988454p-2f, lz_expf(-0.5f * s), cdf);   /* 1/sqrt(2 pi) */
}
BINARY(gelu_grad_f, float, float, y * gelu_slope(x))
UNARY_F(gelu_tanh_f, lz_gelu_tanhf(x))
UNARY_F(silu_f, lz_siluf(x))
UNARY_F(softplus_f, lz_softplusf(x))
UNARY_F(erf_f, lz_erff(x))
UNARY_F(floor_f, floorf(x))
UNARY_F(ceil_f, ceilf(x))
UNARY_F(round_f, nearbyintf(x))
PRED_F(isnan_f, x != x)
PRED_F(isfinite_f, isfinite(x) != 0)

UNARY_I(neg_i, (int64_t)(0 - (uint64_t)x))
UNARY_I(abs_i, x < 0 ? (int64_t)(0 - (uint64_t)x) : x)
UNARY_I(sign_i, (x > 0) - (x < 0))
UNARY_I(square_i, (int64_t)((uint64_t)x * (uint64_t)x))
UNARY_I(same_i, x)
UNARY_I(not_i, !x)
UNARY_I(false_i, x * 0)
UNARY_I(true_i, x * 0 + 1)

BINARY(add_f, float, float, x + y)
BINARY(sub_f, float, float, x - y)
BINARY(mul_f, float, float, x * y)
BINARY(div_f, float, float, x / y)
BINARY(pow_f, float, float, powf(x, y))
BINARY(max_f, float, float, x != x || x > y ? x : y)   /* NaN propagates from either side */
BINARY(min_f, float, float, x != x || x < y ? x : y)
BINARY(eq_f, float, int64_t, x == y)
BINARY(ne_f, float, int64_t, x != y)
BINARY(lt_f, float, int64_t, x < y)
BINARY(le_f, float, int64_t, x <= y)
BINARY(gt_f, float, int64_t, x > y)
BINARY(ge_f, float, int64_t, x >= y)

/* integer arithmetic wraps (two's complement), as stored integer types do */
BINARY(add_i, int64_t, int64_t, (int64_t)((uint64_t)x + (uint64_t)y))
BINARY(sub_i, int64_t, int64_t, (int64_t)((uint64_t)x - (uint64_t)y))
BINARY(mul_i, int64_t, int64_t, (int64_t)((uint64_t)x * (uint64_t)y))
BINARY(max_i, int64_t, int64_t, x > y ? x : y)
BINARY(min_i, int64_t, int64_t, x < y ? x : y)
BINARY(eq_i, int64_t, int64_t, x == y)
BINARY(ne_i, int64_t, int64_t, x != y)
BINARY(lt_i, int64_t, int64_t, x < y)
BINARY(le_i, int64_t, int64_t, x <= y)
BINARY(gt_i, int64_t, int64_t, x > y)
BINARY(ge_i, int64_t, int64_t, x >= y)
BINARY(and_i, int64_t, int64_t, x && y)
BINARY(or_i, int64_t, int64_t, x || y)

/* Integer power by squaring; negative exponents give 0 except for bases 1 and -1. */
static int64_t ipow(int64_t x, int64_t y) {
    if (y < 0) return x == 1 ? 1 : x == -1 ? (y & 1 ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)x;
    while (y) {
        if (y & 1) r *= b;
        b *= b;
        y >>= 1;
    }
    return (int64_t)r;
}
BINARY(pow_i, int64_t, int64_t, ipow(x, y))

/* a x + b and a x + b y, the scalars in params.f: two roundings, as the separate ops give
 * (-std=c11 keeps gcc from contracting them into a fused multiply-add). */
static void affine_f(int64_t n, void *out, const void *x_, const void *b_, const void *c_,
                     const lz_params *p) {
    (void)b_; (void)c_;
    const float *x = x_, s = (float)p->f[0], t = (float)p->f[1];
    float *o = out;
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = s * x[i] + t;
}

static void axpby_f(int64_t n, void *out, const void *x_, const void *y_, const void *c_,
                    const lz_params *p) {
    (void)c_;
    const float *x = x_, *y = y_, s = (float)p->f[0], t = (float)p->f[1];
    float *o = out;
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = s * x[i] + t * y[i];
}

static void where_f(int64_t n, void *out, const void *c_, const void *a_, const void *b_,
                    const lz_params *p) {
    (void)p;
    const int64_t *c = c_;
    const float *a = a_, *b = b_;
    float *o = out;
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = c[i] ? a[i] : b[i];
}

static void where_i(int64_t n, void *out, const void *c_, const void *a_, const void *b_,
                    const lz_params *p) {
    (void)p;
    const int64_t *c = c_, *a = a_, *b = b_;
    int64_t *o = out;
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = c[i] ? a[i] : b[i];
}

const ew_kernels cpu_ew[LZ_NPRIMS] = {
    [LZ_P_NEG] = {neg_f, neg_i}, [LZ_P_ABS] = {abs_f, abs_i}, [LZ_P_SIGN] = {sign_f, sign_i},
    [LZ_P_EXP] = {exp_f, NULL}, [LZ_P_LOG] = {log_f, NULL}, [LZ_P_LOG1P] = {log1p_f, NULL},
    [LZ_P_EXPM1] = {expm1_f, NULL}, [LZ_P_SQRT] = {sqrt_f, NULL},
    [LZ_P_RSQRT] = {rsqrt_f, NULL}, [LZ_P_SQUARE] = {square_f, square_i},
    [LZ_P_SIN] = {sin_f, NULL}, [LZ_P_COS] = {cos_f, NULL}, [LZ_P_TANH] = {tanh_f, NULL},
    [LZ_P_SIGMOID] = {sigmoid_f, NULL}, [LZ_P_RELU] = {relu_f, NULL},
    [LZ_P_GELU] = {gelu_f, NULL}, [LZ_P_GELU_TANH] = {gelu_tanh_f, NULL},
    [LZ_P_SILU] = {silu_f, NULL}, [LZ_P_SOFTPLUS] = {softplus_f, NULL},
    [LZ_P_ERF] = {erf_f, NULL}, [LZ_P_FLOOR] = {floor_f, same_i}, [LZ_P_CEIL] = {ceil_f, same_i},
    [LZ_P_ROUND] = {round_f, same_i}, [LZ_P_AFFINE] = {affine_f, NULL},
    [LZ_P_LOGICAL_NOT] = {NULL, not_i},
    [LZ_P_ISNAN] = {isnan_f, false_i}, [LZ_P_ISFINITE] = {isfinite_f, true_i},
    [LZ_P_ADD] = {add_f, add_i}, [LZ_P_SUB] = {sub_f, sub_i}, [LZ_P_MUL] = {mul_f, mul_i},
    [LZ_P_DIV] = {div_f, NULL}, [LZ_P_POW] = {pow_f, pow_i},
    [LZ_P_MAXIMUM] = {max_f, max_i}, [LZ_P_MINIMUM] = {min_f, min_i},
    [LZ_P_AXPBY] = {axpby_f, NULL}, [LZ_P_GELU_GRAD] = {gelu_grad_f, NULL},
    [LZ_P_EQ] = {eq_f, eq_i}, [LZ_P_NE] = {ne_f, ne_i}, [LZ_P_LT] = {lt_f, lt_i},
    [LZ_P_LE] = {le_f, le_i}, [LZ_P_GT] = {gt_f, gt_i}, [LZ_P_GE] = {ge_f, ge_i},
    [LZ_P_LOGICAL_AND] = {NULL, and_i}, [LZ_P_LOGICAL_OR] = {NULL, or_i},
    [LZ_P_WHERE] = {where_f, where_i},
};
