/* RANDOM_BITS kernel: every element from (key, flat index) alone; params and stream layout
 * are documented in lib/ops/random.c. The output is cut into chunks of CHUNK_WORDS stream
 * words (the chunk boundaries are fixed by the layout, not by the thread count); each chunk
 * computes its Philox blocks into a small buffer, then turns words into values. Threads
 * take chunks, so results are bitwise identical for any thread count. */
#include <math.h>
#include <string.h>
#include "cpu.h"
#include "../../core/philox.h"

#define CHUNK_WORDS 1024            /* 256 Philox blocks, 4 KiB on the stack */

typedef struct {
    int dist, wpe;                  /* distribution, words per element */
    uint64_t hi, lo;                /* the key */
    lz_dtype dtype;
    const lz_params *p;
    /* truncated normal, prepared once */
    double pa, pw, a, b;
    int flip;
} job;

/* Stream words [4*b0, 4*(b0+nb)) into w. The lane loop is written so the compiler can
 * vectorise the 32x32->64 multiplies across blocks. */
static void fill(const job *j, uint64_t b0, int nb, uint32_t *w) {
    uint32_t c0[CHUNK_WORDS / 4], c1[CHUNK_WORDS / 4], c2[CHUNK_WORDS / 4], c3[CHUNK_WORDS / 4];
    uint32_t k0 = (uint32_t)j->lo, k1 = (uint32_t)(j->lo >> 32);
    for (int l = 0; l < nb; l++) {
        c0[l] = (uint32_t)(b0 + (uint64_t)l);
        c1[l] = (uint32_t)((b0 + (uint64_t)l) >> 32);
        c2[l] = (uint32_t)j->hi;
        c3[l] = (uint32_t)(j->hi >> 32);
    }
    for (int r = 0; r < LZ_PHILOX_ROUNDS; r++) {
        for (int l = 0; l < nb; l++) {
            uint64_t p0 = (uint64_t)LZ_PHILOX_M0 * c0[l], p1 = (uint64_t)LZ_PHILOX_M1 * c2[l];
            uint32_t x0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t x2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c0[l] = x0;
            c1[l] = (uint32_t)p1;
            c2[l] = x2;
            c3[l] = (uint32_t)p0;
        }
        k0 += LZ_PHILOX_W0;
        k1 += LZ_PHILOX_W1;
    }
    for (int l = 0; l < nb; l++) {
        w[4 * l] = c0[l];
        w[4 * l + 1] = c1[l];
        w[4 * l + 2] = c2[l];
        w[4 * l + 3] = c3[l];
    }
}

/* Rounds v to dtype t and returns it as float (exactly representable in t). */
static inline float to_dtype(float v, lz_dtype t) {
    if (t == LZ_F16) return lz_f16_to_f32(lz_f32_to_f16(v));
    if (t == LZ_BF16) return lz_bf16_to_f32(lz_f32_to_bf16(v));
    return v;
}

static void store_floats(void *out, lz_dtype t, int64_t e0, const float *v, int m) {
    if (t == LZ_F32) memcpy((float *)out + e0, v, (size_t)m * 4);
    else if (t == LZ_F16) for (int k = 0; k < m; k++) ((uint16_t *)out)[e0 + k] = lz_f32_to_f16(v[k]);
    else for (int k = 0; k < m; k++) ((uint16_t *)out)[e0 + k] = lz_f32_to_bf16(v[k]);
}

/* Inverse of the standard normal CDF: P. J. Acklam's rational approximation (relative
 * error below 1.2e-9 on (0, 1), well under float32 resolution). */
static double normal_icdf(double p) {
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    if (!(p > 0)) return -INFINITY;
    if (!(p < 1)) return INFINITY;
    if (p < 0.02425 || p > 1 - 0.02425) {
        double q = sqrt(-2 * log(p < 0.5 ? p : 1 - p));
        double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                   ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        return p < 0.5 ? x : -x;
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

static double normal_cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }

static inline uint64_t word64(const uint32_t *w) { return w[0] | (uint64_t)w[1] << 32; }

/* floor(x * span / 2^64) and floor((hi:lo) * span / 2^128) */
static inline uint64_t mulhi64(uint64_t x, uint64_t span) {
    return (uint64_t)(((unsigned __int128)x * span) >> 64);
}
static inline uint64_t mulhi128(uint64_t xhi, uint64_t xlo, uint64_t span) {
    unsigned __int128 t = (unsigned __int128)xhi * span + (((unsigned __int128)xlo * span) >> 64);
    return (uint64_t)(t >> 64);
}

/* Elements [e0, e0 + m) from their words w (w[0] is stream word e0 * wpe). */
static void convert(const job *j, void *out, int64_t e0, int m, const uint32_t *w) {
    const lz_params *p = j->p;
    float v[CHUNK_WORDS];
    switch (j->dist) {
    case LZ_RNG_BITS:
        for (int k = 0; k < m; k++) ((int64_t *)out)[e0 + k] = w[k];
        return;
    case LZ_RNG_UNIFORM: {
        double lo = p->f[0], width = p->f[1] - p->f[0];
        float lo_d = (float)p->f[2], hi_d = (float)p->f[3];
        for (int k = 0; k < m; k++) {
            float x = to_dtype((float)(lo + width * ((double)(w[k] >> 8) * 0x1p-24)), j->dtype);
            v[k] = x < lo_d ? lo_d : x > hi_d ? hi_d : x;
        }
        break;
    }
    case LZ_RNG_NORMAL: {
        double mean = p->f[0], std = p->f[1];
        for (int k = 0; k < m; k += 2) {   /* e0 is even: chunks hold whole pairs */
            double r = sqrt(-2 * log(((double)w[k] + 1) * 0x1p-32)), s, c;
            sincos(2 * M_PI * 0x1p-32 * (double)w[k + 1], &s, &c);
            v[k] = (float)(mean + std * r * c);
            if (k + 1 < m) v[k + 1] = (float)(mean + std * r * s);
        }
        if (j->dtype != LZ_F32) for (int k = 0; k < m; k++) v[k] = to_dtype(v[k], j->dtype);
        break;
    }
    case LZ_RNG_TRUNC_NORMAL: {
        float lo_d = (float)p->f[2], hi_d = (float)p->f[3];
        for (int k = 0; k < m; k++) {
            double u = ((double)(word64(w + 2 * k) >> 11) + 0.5) * 0x1p-53;   /* (0, 1) */
            double x = normal_icdf(j->pa + u * j->pw);
            x = x < j->a ? j->a : x > j->b ? j->b : x;
            float y = to_dtype((float)(j->flip ? -x : x), j->dtype);
            v[k] = y < lo_d ? lo_d : y > hi_d ? hi_d : y;
        }
        break;
    }
    case LZ_RNG_BERNOULLI: {
        uint64_t t = (uint64_t)p->i[6];
        for (int k = 0; k < m; k++) ((uint8_t *)out)[e0 + k] = w[k] < t;
        return;
    }
    case LZ_RNG_RANDINT: {
        uint64_t lo = (uint64_t)p->i[4], span;
        memcpy(&span, &p->i[5], 8);
        for (int k = 0; k < m; k++) {
            uint64_t r = j->wpe == 2 ? mulhi64(word64(w + 2 * k), span)
                                     : mulhi128(word64(w + 4 * k + 2), word64(w + 4 * k), span);
            int64_t x = (int64_t)(lo + r);   /* wraps back into [lo, hi) */
            switch (j->dtype) {
            case LZ_U8: ((uint8_t *)out)[e0 + k] = (uint8_t)x; break;
            case LZ_I32: ((int32_t *)out)[e0 + k] = (int32_t)x; break;
            default: ((int64_t *)out)[e0 + k] = x; break;
            }
        }
        return;
    }
    case LZ_RNG_PERMUTATION:   /* the draws of the shuffle: step k picks from [0, k] */
        for (int k = 0; k < m; k++)
            ((int64_t *)out)[e0 + k] = (int64_t)mulhi64(word64(w + 2 * k), (uint64_t)(e0 + k) + 1);
        return;
    }
    store_floats(out, j->dtype, e0, v, m);
}

static int random_bits(lz_array *out, lz_array *const *in, const lz_params *p) {
    (void)in;
    job j = {.dist = (int)p->i[0], .wpe = (int)p->i[3], .dtype = out->dtype, .p = p};
    memcpy(&j.hi, &p->i[1], 8);
    memcpy(&j.lo, &p->i[2], 8);
    if (j.dist == LZ_RNG_TRUNC_NORMAL) {
        /* work on the side of the lower tail: mirror [lo, hi] when it lies above 0 */
        j.flip = p->f[0] > 0;
        j.a = j.flip ? -p->f[1] : p->f[0];
        j.b = j.flip ? -p->f[0] : p->f[1];
        j.pa = normal_cdf(j.a);
        j.pw = normal_cdf(j.b) - j.pa;
    }
    int64_t n = lz_size(out), per = CHUNK_WORDS / j.wpe;
    int64_t nchunks = (n + per - 1) / per;
    void *dst = out->buf->data;
    int heavy = j.dist == LZ_RNG_NORMAL || j.dist == LZ_RNG_TRUNC_NORMAL;
    int threads = n >= (heavy ? 8192 : 65536) ? cpu_threads() : 1;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < nchunks; c++) {
        uint32_t w[CHUNK_WORDS];
        int64_t e0 = c * per;
        int m = (int)(n - e0 < per ? n - e0 : per);
        int nb = (int)((m * (int64_t)j.wpe + 3) / 4);
        fill(&j, (uint64_t)(e0 * j.wpe / 4), nb, w);
        convert(&j, dst, e0, m, w);
    }
    if (j.dist == LZ_RNG_PERMUTATION) {
        /* inside-out Fisher-Yates: out[k] holds step k's draw until step k replaces it */
        int64_t *a = dst;
        for (int64_t k = 0; k < n; k++) {
            int64_t r = a[k];
            a[k] = a[r];
            a[r] = k;
        }
    }
    lz_stats_add(1, (uint64_t)n * lz_dtype_size(out->dtype), 0);
    return 0;
}

void cpu_register_random(void) { lz_prims[LZ_P_RANDOM_BITS].cpu = random_bits; }
