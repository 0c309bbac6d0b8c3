/* Random constructors: explicit keys, counter-based streams (Philox4x32-10, lib/core/philox.h).
 *
 * Keys. An lz_key is a plain 128-bit value {hi, lo}: lo is the Philox key, hi fills the upper
 * half of the counter (a stream number). lz_key_new(seed) is {0, seed}, so distinct seeds are
 * distinct keys. Derived keys are one Philox block of the parent under a counter whose top bits
 * carry a tag no data stream uses (LZ_RNG_TAG_*):
 *   split child k   = block(parent, c0 = k, c1 = TAG_SPLIT)      (child k does not depend on n)
 *   fold(key, d)    = block(block(key, c0 = lo32(d), TAG_FOLD_LO), c0 = hi32(d), TAG_FOLD_HI)
 * the four output words read as lo = w0 | w1 << 32, hi = w2 | w3 << 32.
 *
 * Streams. A key's word stream is W[k] = word k % 4 of Philox block k / 4 (counter
 * c0,c1 = k / 4, c2,c3 = hi). Element i of a draw (flat row-major index) reads only its own
 * words, so it depends on (key, i) and nothing else: not on the shape (a [2,3] draw is the
 * [6] draw reshaped, a [5] draw is the prefix of a [7] draw), nor on threads or tiling.
 *   bits, uniform, bernoulli   1 word:  W[i]
 *   normal                     words W[2m], W[2m+1] of pair m = i / 2 (Box-Muller: the even
 *                              element takes r cos t, the odd one r sin t)
 *   truncated normal           2 words: W[2i] | W[2i+1] << 32
 *   randint                    2 words (span <= 2^32) or 4 words (wider spans)
 *   permutation                step k of the shuffle reads W[2k] | W[2k+1] << 32
 *
 * Every op is ONE RANDOM_BITS node (no inputs) with these params:
 *   i[0]  distribution (LZ_RNG_*)          i[1]  key.hi (bits)     i[2]  key.lo (bits)
 *   i[3]  words per element (1, 2 or 4; normal: 1, read in pairs)
 *   i[4]  randint lo                        i[5]  randint span hi - lo as uint64 bits
 *   i[6]  bernoulli threshold t (true when W[i] < t; t = floor(p * 2^32), 2^32 for p = 1)
 *   uniform:          f[0] lo, f[1] hi, f[2] smallest dtype value >= lo, f[3] largest < hi
 *   normal:           f[0] mean, f[1] std
 *   truncated normal: f[0] lo, f[1] hi, f[2] smallest dtype value >= lo, f[3] largest <= hi
 *
 * Methods (the kernel, lib/backend/cpu/random.c, says how each is computed):
 *   uniform    u = (W >> 8) * 2^-24 in [0, 1), lo + (hi - lo) u in double, rounded to the
 *              dtype and clamped to [f[2], f[3]]: hi is never returned, even after rounding.
 *   normal     Box-Muller with u1 = (W + 1) 2^-32 in (0, 1]: |z| <= 6.66 (the tail beyond has
 *              probability 3e-11).
 *   truncated  inverse CDF (like jax.random.truncated_normal): u in (0, 1) from 53 bits,
 *              x = Phi^-1(Phi(lo) + u (Phi(hi) - Phi(lo))), computed on the lower-tail side
 *              (mirrored when lo > 0) so that narrow tail intervals keep their precision;
 *              clamped to [lo, hi]. Bounds in the same tail beyond ~37 std degenerate to the
 *              bound (Phi underflows in double).
 *   randint    Lemire's multiply-shift without rejection: lo + floor(x * span / 2^bits) with
 *              64 random bits (span <= 2^32: each value's probability is off by at most
 *              2^-32 relative) or 128 bits (wider spans: at most 2^-64). No modulo.
 *   permutation inside-out Fisher-Yates; step k draws j uniform in [0, k] as above. The draws
 *              are parallel, the swaps sequential: deterministic for a key. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "../core/internal.h"
#include "../core/philox.h"
#include "ops.h"

/* ---- keys ---- */

static lz_key derive(lz_key k, uint32_t word, uint32_t tag) {
    uint32_t c[4] = {word, tag, (uint32_t)k.hi, (uint32_t)(k.hi >> 32)};
    lz_philox4x32(c, (uint32_t)k.lo, (uint32_t)(k.lo >> 32), LZ_PHILOX_ROUNDS);
    return (lz_key){.hi = c[2] | (uint64_t)c[3] << 32, .lo = c[0] | (uint64_t)c[1] << 32};
}

lz_key lz_key_new(uint64_t seed) { return (lz_key){.hi = 0, .lo = seed}; }

void lz_key_split(lz_key key, int n, lz_key *out) {
    for (int k = 0; k < n && out; k++) out[k] = derive(key, (uint32_t)k, LZ_RNG_TAG_SPLIT);
}

lz_key lz_key_fold(lz_key key, uint64_t data) {
    lz_key k = derive(key, (uint32_t)data, LZ_RNG_TAG_FOLD_LO);
    return derive(k, (uint32_t)(data >> 32), LZ_RNG_TAG_FOLD_HI);
}

/* ---- values representable in a float dtype (for bounds that must hold after rounding) ---- */

static double round_to(double x, lz_dtype t) {
    switch (t) {
    case LZ_F16: return lz_f16_to_f32(lz_f32_to_f16((float)x));
    case LZ_BF16: return lz_bf16_to_f32(lz_f32_to_bf16((float)x));
    default: return (float)x;
    }
}

/* The neighbour of x (a value of dtype t, not NaN) towards +inf (up) or -inf. */
static double step(double x, lz_dtype t, int up) {
    if (t == LZ_F32) return nextafterf((float)x, up ? INFINITY : -INFINITY);
    uint16_t h = t == LZ_F16 ? lz_f32_to_f16((float)x) : lz_f32_to_bf16((float)x);
    uint16_t mag = h & 0x7fff, neg = h & 0x8000;
    if (!mag) h = up ? 0x0001 : 0x8001;
    else if (!neg == !!up) h = (uint16_t)(neg | (mag + 1));   /* away from zero */
    else h = (uint16_t)(neg | (mag - 1));                      /* towards zero */
    return t == LZ_F16 ? lz_f16_to_f32(h) : lz_bf16_to_f32(h);
}

static double at_least(double x, lz_dtype t) {   /* smallest value of t >= x */
    double r = round_to(x, t);
    while (r < x) r = step(r, t, 1);
    return r;
}

static double at_most(double x, lz_dtype t, int strict) {   /* largest value of t <= x (< x) */
    double r = round_to(x, t);
    while (strict ? r >= x : r > x) r = step(r, t, 0);
    return r;
}

/* ---- the node ---- */

/* Checks the shape and builds the RANDOM_BITS node; p->i[0] and p->i[3] are set by the
 * caller, the key here. */
static lz_array *draw(const char *op, lz_key key, int ndim, const int64_t *shape, lz_dtype t,
                      lz_params *p) {
    if (ndim < 0 || ndim > LZ_MAX_DIMS || (ndim && !shape))
        return lz_fail("%s: %d dimensions (0 to %d allowed)", op, ndim, LZ_MAX_DIMS);
    char s[160];
    lz_format_shape(ndim, shape, s, sizeof s);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return lz_fail("%s: negative dimension in shape %s", op, s);
        if (shape[d] && n > (LZ_RNG_MAX_BLOCKS / 4) / shape[d])
            return lz_fail("%s: shape %s has too many elements", op, s);
        n *= shape[d];
    }
    memcpy(&p->i[1], &key.hi, 8);
    memcpy(&p->i[2], &key.lo, 8);
    return lz_autorelease(lz_node(LZ_P_RANDOM_BITS, t, ndim, shape, 0, NULL, p));
}

static int need_float(const char *op, lz_dtype t) {
    if ((unsigned)t < LZ_NDTYPES && lz_dtype_is_float(t)) return 0;
    lz_fail("%s: dtype %s is not a floating-point type", op,
            (unsigned)t < LZ_NDTYPES ? lz_dtype_name(t) : "(invalid)");
    return -1;
}

lz_array *lz_random_bits(lz_key key, int ndim, const int64_t *shape) {
    lz_params p = {.i = {[0] = LZ_RNG_BITS, [3] = 1}};
    return draw("random_bits", key, ndim, shape, LZ_I64, &p);
}

lz_array *lz_random_uniform(lz_key key, int ndim, const int64_t *shape, double lo, double hi,
                            lz_dtype t) {
    const char *op = "random_uniform";
    if (need_float(op, t)) return NULL;
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return lz_fail("%s: needs finite lo < hi, got lo %g, hi %g", op, lo, hi);
    lz_params p = {.i = {[0] = LZ_RNG_UNIFORM, [3] = 1},
                   .f = {lo, hi, at_least(lo, t), at_most(hi, t, 1)}};
    if (p.f[2] > p.f[3])
        return lz_fail("%s: no %s value lies in [%g, %g)", op, lz_dtype_name(t), lo, hi);
    return draw(op, key, ndim, shape, t, &p);
}

lz_array *lz_random_normal(lz_key key, int ndim, const int64_t *shape, double mean, double std,
                           lz_dtype t) {
    const char *op = "random_normal";
    if (need_float(op, t)) return NULL;
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return lz_fail("%s: needs a finite mean and std >= 0, got mean %g, std %g", op, mean, std);
    lz_params p = {.i = {[0] = LZ_RNG_NORMAL, [3] = 1}, .f = {mean, std}};
    return draw(op, key, ndim, shape, t, &p);
}

lz_array *lz_random_truncated_normal(lz_key key, int ndim, const int64_t *shape, double lo,
                                     double hi, lz_dtype t) {
    const char *op = "random_truncated_normal";
    if (need_float(op, t)) return NULL;
    if (!(lo < hi))
        return lz_fail("%s: needs lo < hi (in standard deviations), got lo %g, hi %g", op, lo, hi);
    lz_params p = {.i = {[0] = LZ_RNG_TRUNC_NORMAL, [3] = 2},
                   .f = {lo, hi, at_least(lo, t), at_most(hi, t, 0)}};
    if (p.f[2] > p.f[3])
        return lz_fail("%s: no %s value lies in [%g, %g]", op, lz_dtype_name(t), lo, hi);
    return draw(op, key, ndim, shape, t, &p);
}

lz_array *lz_random_bernoulli(lz_key key, int ndim, const int64_t *shape, double p) {
    if (!(p >= 0 && p <= 1))
        return lz_fail("random_bernoulli: probability %g is outside [0, 1]", p);
    lz_params q = {.i = {[0] = LZ_RNG_BERNOULLI, [3] = 1, [6] = (int64_t)(p * 4294967296.0)},
                   .f = {p}};
    return draw("random_bernoulli", key, ndim, shape, LZ_BOOL, &q);
}

lz_array *lz_random_randint(lz_key key, int ndim, const int64_t *shape, int64_t lo, int64_t hi,
                            lz_dtype t) {
    const char *op = "random_randint";
    int64_t min, max;
    switch (t) {
    case LZ_U8: min = 0; max = UINT8_MAX; break;
    case LZ_I32: min = INT32_MIN; max = INT32_MAX; break;
    case LZ_I64: min = INT64_MIN; max = INT64_MAX; break;
    default:
        return lz_fail("%s: dtype %s is not uint8, int32 or int64", op,
                       (unsigned)t < LZ_NDTYPES ? lz_dtype_name(t) : "(invalid)");
    }
    if (hi <= lo)
        return lz_fail("%s: empty range [%lld, %lld)", op, (long long)lo, (long long)hi);
    if (lo < min || hi - 1 > max)
        return lz_fail("%s: range [%lld, %lld) does not fit %s", op, (long long)lo,
                       (long long)hi, lz_dtype_name(t));
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    lz_params p = {.i = {[0] = LZ_RNG_RANDINT, [3] = span <= ((uint64_t)1 << 32) ? 2 : 4,
                         [4] = lo}};
    memcpy(&p.i[5], &span, 8);
    return draw(op, key, ndim, shape, t, &p);
}

lz_array *lz_random_permutation(lz_key key, int64_t n) {
    if (n < 0) return lz_fail("random_permutation: negative length %lld", (long long)n);
    lz_params p = {.i = {[0] = LZ_RNG_PERMUTATION, [3] = 2}};
    return draw("random_permutation", key, 1, &n, LZ_I64, &p);
}
