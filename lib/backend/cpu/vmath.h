/* Vectorisable float math for the elementwise kernels.
 *
 * libm's expf/logf/tanhf/erff are calls the compiler cannot vectorise, so a loop over them
 * runs one element at a time. These are branch-free C (range reduction, a polynomial, a few
 * selects) that gcc -O3 turns into SIMD code inside the `omp simd` loops of ew_ops.c; keep
 * them so (check with -fopt-info-vec-missed): no calls, no conditional float arithmetic.
 *
 * Max error against double libm over the whole float range (asserted, with these bounds, in
 * tests/test_elementwise.c): exp 1 ulp, log 1, log1p 2, expm1 1.5, tanh 2, erf 1.5, sin/cos 2,
 * sigmoid 2.5, softplus 2.5, silu 3.5, gelu 6 (normal results); gelu_tanh 4 + 5|u| where u
 * is its tanh argument (the float rounding of u is amplified by the function itself). IEEE
 * results at +-0, +-inf, NaN, on overflow and underflow; denormal results are produced, not
 * flushed, and limits are taken where the formula would give inf*0 (gelu(-inf) = -0).
 *
 * Polynomial coefficients are minimax fits (least squares reweighted to equal ripple, in
 * double, then rounded to float) made for this file. fmaf is spelled out: ISO C mode does not
 * contract a*b+c, and the fused form is both faster and more accurate. */
#ifndef LZ_VMATH_H
#define LZ_VMATH_H
#include <math.h>
#include <stdint.h>

/* With hardware FMA (-march=native on anything since 2013) fmaf is one instruction. Without
 * it (OPT=-march=x86-64) fmaf is libm's exact software version: slower, and the loops are no
 * longer vectorised, but the range reductions stay exact and the error bounds above hold
 * (a plain a*b+c measured 3-35 ulp for exp and sin there). */
#define VM_FMA(a, b, c) fmaf(a, b, c)

static inline uint32_t vm_bits(float x) { union { float f; uint32_t u; } v = {.f = x}; return v.u; }
static inline float vm_float(uint32_t u) { union { uint32_t u; float f; } v = {.u = u}; return v.f; }

#define VM_LN2 0x1.62e430p-1f        /* ln 2 rounded to float */
#define VM_LN2_LO -0x1.05c610p-29f   /* ln 2 - VM_LN2 */
#define VM_ROUND 0x1.8p23f           /* adding it rounds |v| < 2^22 to an integer */

/* e^r - 1 - r = r^2 q(r) for |r| <= ln2/2 (relative error of e^r 3e-9). */
static inline float vm_expq(float r) {
    float q = VM_FMA(0x1.6a2448p-10f, r, 0x1.1239d4p-7f);
    q = VM_FMA(q, r, 0x1.5558f2p-5f);
    q = VM_FMA(q, r, 0x1.555492p-3f);
    q = VM_FMA(q, r, 0x1.fffffcp-2f);
    return VM_FMA(r * r, q, r);   /* e^r - 1 */
}

/* Reduction shared by exp, expm1 and silu: x = n ln2 + r, |r| <= ln2/2. x is clamped to
 * [xmin, 89], where e^x is past overflow and (for xmin = -104) below half the smallest
 * denormal; NaN passes through (into r). */
static inline float vm_reduce_to(float x, float xmin, int32_t *n) {
    x = x > 89.0f ? 89.0f : x;
    x = x < xmin ? xmin : x;
    float k = VM_FMA(x, 0x1.715476p+0f, VM_ROUND);
    *n = (int32_t)(vm_bits(k) - vm_bits(VM_ROUND));
    k -= VM_ROUND;
    float r = VM_FMA(-k, VM_LN2, x);   /* exact: x - k ln2 fits in 24 bits (|k| < 2^8) */
    return VM_FMA(-k, VM_LN2_LO, r);
}

static inline float vm_reduce(float x, int32_t *n) { return vm_reduce_to(x, -104.0f, n); }

/* 2^n as two factors, each a normal float for n in [-252, 254], so that p * 2^n over- or
 * underflows (to a correctly rounded denormal) only in the last multiplication. */
static inline float vm_scale(float p, int32_t n) {
    int32_t n1 = n >> 1, n2 = n - n1;
    float s1 = vm_float((uint32_t)(n1 + 127) << 23), s2 = vm_float((uint32_t)(n2 + 127) << 23);
    return p * s1 * s2;
}

static inline float lz_expf(float x) {
    int32_t n;
    float r = vm_reduce(x, &n);
    return vm_scale(1.0f + vm_expq(r), n);
}

/* e^(x + lo), lo a tail smaller than half an ulp of x (added to the reduced argument). */
static inline float vm_exp2f(float x, float lo) {
    int32_t n;
    float r = vm_reduce(x, &n) + lo;
    return vm_scale(1.0f + vm_expq(r), n);
}

static inline float lz_expm1f(float x) {
    int32_t n;
    float r = vm_reduce(x, &n);
    float q = vm_expq(r);
    /* small n: 2^n (1 + q) - 1 = 2^n q + (2^n - 1), both terms exact or nearly so;
     * large n: the -1 is below an ulp, so e^x itself. */
    int32_t m = n < -30 ? -30 : n > 30 ? 30 : n;
    float s = vm_float((uint32_t)(m + 127) << 23);
    float small = VM_FMA(s, q, s - 1.0f);
    small = x == 0.0f ? x : small;   /* keeps -0 */
    return n > 24 ? vm_scale(1.0f + q, n) : small;
}

/* log(1 + f) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1] and small c, as (f + c) + f^2 q(f):
 * adding c first is exact when f + c is x itself (log1p of small x). */
static inline float vm_log1p_poly(float f, float c) {
    float q = VM_FMA(-0x1.383d96p-4f, f, 0x1.084ep-3f);
    q = VM_FMA(q, f, -0x1.0f375cp-3f);
    q = VM_FMA(q, f, 0x1.22709cp-3f);
    q = VM_FMA(q, f, -0x1.54274ap-3f);
    q = VM_FMA(q, f, 0x1.99a402p-3f);
    q = VM_FMA(q, f, -0x1.000428p-2f);
    q = VM_FMA(q, f, 0x1.55555p-2f);
    q = VM_FMA(q, f, -0x1.fffff8p-2f);
    return VM_FMA(f * f, q, f + c);
}

/* Splits positive finite x into 2^e * m with m in [sqrt(1/2), sqrt(2)); returns m - 1
 * (exact) and e as a float. Denormals are scaled up first. */
static inline float vm_log_split(float x, float *e) {
    /* written so that gcc if-converts it: the multiply is unconditional, the adjustment an
     * integer select (a conditional float multiply or subtract is left as a branch) */
    float xs = x * 0x1p23f;
    int tiny = x < 0x1p-126f;
    uint32_t u = vm_bits(tiny ? xs : x) - 0x3f3504f3u;   /* bits of sqrt(1/2) */
    *e = (float)(((int32_t)u >> 23) - (tiny ? 23 : 0));
    return vm_float((u & 0x7fffffu) + 0x3f3504f3u) - 1.0f;
}

static inline float lz_logf(float x) {
    float e, f = vm_log_split(x, &e);
    float r = VM_FMA(e, VM_LN2, VM_FMA(e, VM_LN2_LO, vm_log1p_poly(f, 0.0f)));
    r = x == INFINITY ? x : r;
    r = x == 0.0f ? -INFINITY : r;
    return (x < 0.0f) | (x != x) ? NAN : r;
}

/* log(1 + x) = log(u) + c/u with u = 1 + x rounded and c = x - (u - 1) its rounding error. */
static inline float lz_log1pf(float x) {
    float u = 1.0f + x;
    float c = (x - (u - 1.0f)) / (u > 0.0f ? u : 1.0f);
    float e, f = vm_log_split(u > 0.0f ? u : 1.0f, &e);
    float r = VM_FMA(e, VM_LN2, VM_FMA(e, VM_LN2_LO, vm_log1p_poly(f, c)));
    r = x == INFINITY ? x : r;
    r = x == -1.0f ? -INFINITY : r;
    r = x == 0.0f ? x : r;   /* keeps -0 */
    return (x < -1.0f) | (x != x) ? NAN : r;
}

/* tanh|x| = -m / (2 + m) with m = e^-2|x| - 1 = 2^n (1 + q) - 1, q = e^r - 1: the numerator
 * (1 - 2^n) - 2^n q and the denominator (1 + 2^n) + 2^n q are each rounded once, and q is
 * accurate near 0, so one formula serves small and large |x| (no cancellation either way).
 * Past |x| = 9.1 the result rounds to 1; 2^n is then still a normal number. */
static inline float lz_tanhf(float x) {
    float a = fabsf(x);
    float t = -2.0f * (a > 9.1f ? 9.1f : a);
    float k = VM_FMA(t, 0x1.715476p+0f, VM_ROUND);
    int32_t n = (int32_t)(vm_bits(k) - vm_bits(VM_ROUND));
    k -= VM_ROUND;
    float r = VM_FMA(-k, VM_LN2_LO, VM_FMA(-k, VM_LN2, t));
    float q = vm_expq(r), s = vm_float((uint32_t)(n + 127) << 23);
    return copysignf(VM_FMA(-s, q, 1.0f - s) / VM_FMA(s, q, 1.0f + s), x);
}

/* sin (c = 0) or cos (c = 1) for |x| <= VM_TRIG_MAX: x = k pi/2 + r with pi/2 in three
 * parts (the first product is exact, the rest is below 2^-70 k), then sin or cos of r on
 * [-pi/4, pi/4] by quadrant, cos x being sin in the next quadrant. 1.6 ulp; past 2^19 the
 * reduction loses bits and the caller uses libm. */
#define VM_TRIG_MAX 0x1p19f
static inline float vm_sincos(float x, int c) {
    float k = VM_FMA(x, 0x1.45f306p-1f, VM_ROUND);   /* 2/pi */
    uint32_t q = vm_bits(k) - vm_bits(VM_ROUND) + (uint32_t)c;
    k -= VM_ROUND;
    float r = VM_FMA(-k, 0x1.921fb6p+0f, x);
    r = VM_FMA(-k, -0x1.777a5cp-25f, r);
    r = VM_FMA(-k, -0x1.ee59dap-50f, r);
    float s = r * r;
    float ps = VM_FMA(VM_FMA(-0x1.9943ep-13f, s, 0x1.11073ap-7f), s, -0x1.555546p-3f);
    float sn = VM_FMA(r * s, ps, r);                                 /* r + r^3 S(r^2) */
    float pc = VM_FMA(VM_FMA(0x1.99eb9cp-16f, s, -0x1.6c0c34p-10f), s, 0x1.55554ap-5f);
    float cs = VM_FMA(s * s, pc, VM_FMA(-0.5f, s, 1.0f));            /* 1 - r^2/2 + r^4 C */
    float v = q & 1 ? cs : sn;
    v = vm_float(vm_bits(v) ^ ((q & 2) << 30));                      /* quadrants 2, 3: - */
    return (x == 0.0f) & !c ? x : v;                                 /* sin(-0) = -0 */
}

/* e = e^-|x| never overflows; for x < 0, sigmoid = e / (1 + e) keeps tiny results exact. */
static inline float lz_sigmoidf(float x) {
    float e = lz_expf(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* m erfc(z) for z >= 0 (up to NaN), given z^2 = z2 + z2lo exactly: m t S(t) e^-z^2 with
 * t = 2/(2+z) (S, fitted to 1e-9 relative, is smooth on t in [0, 1]). m is applied before
 * e^-z^2 so that a result that is normal never passes through a denormal. */
static inline float vm_erfc_pos(float z, float z2, float z2lo, float m) {
    float t = 2.0f / (2.0f + z);
    float p = VM_FMA(-0x1.2eabaep-5f, t, 0x1.bfd866p-3f);
    p = VM_FMA(p, t, -0x1.0b5eaap-1f);
    p = VM_FMA(p, t, 0x1.350f1cp-1f);
    p = VM_FMA(p, t, -0x1.2c16dap-2f);
    p = VM_FMA(p, t, 0x1.025224p-5f);
    p = VM_FMA(p, t, -0x1.1654eep-4f);
    p = VM_FMA(p, t, -0x1.54b96ep-8f);
    p = VM_FMA(p, t, 0x1.591f52p-4f);
    p = VM_FMA(p, t, 0x1.68eee4p-3f);
    p = VM_FMA(p, t, 0x1.f985dp-3f);
    p = VM_FMA(p, t, 0x1.20dd6ep-2f);
    p = VM_FMA(p, t, 0x1.20dd76p-2f);
    return m * t * p * vm_exp2f(-z2, -z2lo);
}

/* erf(x) for |x| < 1 as x + x p(x^2): the 1 kept apart keeps the rounding of p small. */
static inline float vm_erf_small(float x, float s) {
    float p = VM_FMA(0x1.496a2ep-14f, s, -0x1.a3f6fep-11f);
    p = VM_FMA(p, s, 0x1.5405b2p-8f);
    p = VM_FMA(p, s, -0x1.b7f90cp-6f);
    p = VM_FMA(p, s, 0x1.ce2cf8p-4f);
    p = VM_FMA(p, s, -0x1.81273ep-2f);
    p = VM_FMA(p, s, 0x1.06eba8p-3f);
    return VM_FMA(x, p, x);
}

static inline float lz_erff(float x) {
    float a = fabsf(x);
    a = a > 10.0f ? 10.0f : a;           /* erfc(10) underflows: erf is 1 from 4 on */
    float s = a * a, slo = VM_FMA(a, a, -s);
    float big = copysignf(1.0f - vm_erfc_pos(a, s, slo, 1.0f), x);
    return a < 1.0f ? vm_erf_small(x, x * x) : big;
}

/* x Phi(x) with Phi(x) = erfc(-x/sqrt2)/2: g = x erfc(|x|/sqrt2)/2 is the result for x < 0
 * and x - g for x >= 0, so no 1 + erf ever cancels; (x/sqrt2)^2 = x^2/2 is carried exactly. */
static inline float lz_geluf(float x) {
    float xc = x < -20.0f ? -20.0f : x > 20.0f ? 20.0f : x;   /* Phi is 0 or 1 beyond */
    float s = xc * xc, slo = VM_FMA(xc, xc, -s);
    float g = vm_erfc_pos(fabsf(xc) * 0x1.6a09e6p-1f, 0.5f * s, 0.5f * slo, 0.5f * xc);
    return x <= 0.0f ? g : x - g;   /* -inf: -20 * 0 = -0, not NaN; -0 stays -0 */
}

/* 0.5 x (1 + tanh(u)) = x sigmoid(2u): the same function without cancellation for x < 0. */
static inline float lz_gelu_tanhf(float x) {
    float xc = x < -20.0f ? -20.0f : x;
    float u = 0x1.988454p+0f * VM_FMA(0.044715f * xc, xc * xc, xc);   /* 2 sqrt(2/pi) */
    return xc * lz_sigmoidf(u);
}

/* x sigmoid(x): x / (1 + e^-x) for x >= 0; for x < 0, x e^x / (1 + e^x) with x applied to
 * the mantissa of e^x before its exponent, so a normal result (down to x = -87 - log|x|)
 * never passes through a denormal e^x. Past -120 the result is below the smallest denormal. */
static inline float lz_siluf(float x) {
    float xm = x < -120.0f ? -120.0f : x;
    int32_t n;
    float r = vm_reduce_to(-fabsf(xm), -120.0f, &n);
    float p = 1.0f + vm_expq(r);
    float d = 1.0f + vm_scale(p, n);   /* 1 + e^-|x| */
    return x < 0.0f ? vm_scale(xm * p / d, n) : x / d;
}

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|) */
static inline float lz_softplusf(float x) {
    return (x > 0.0f ? x : 0.0f) + lz_log1pf(lz_expf(-fabsf(x)));
}

#endif
