// RANDOM_BITS on the GPU: the CPU's Philox4x32-10 stream (lib/core/philox.h: word k of a
// key's stream is word k % 4 of block k / 4, counter (block, key.hi), key key.lo) and the
// CPU's conversions (lib/backend/cpu/random.c), so the integer draws (bits, bernoulli,
// randint, permutation) are bit-identical to the CPU's and the uniform ones too (exact
// double arithmetic, no contraction: __dmul_rn / __dadd_rn). The normal and truncated
// normal ones use the device's double log, sqrt and sincos (sqrt correctly rounded, log and
// sincos within 1-2 ulp of glibc), so a float result can differ from the CPU's by one ulp
// in the rare case where the double lands next to a float rounding boundary.
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include "core/philox.h"
#include "random.h"

namespace {

enum { DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_BF16, DT_F32 };

#define GRID_STRIDE(e, total)                                                          \
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < (total);      \
         e += (int64_t)gridDim.x * blockDim.x)

int grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (int)(b < 65536 * 8 ? (b > 0 ? b : 1) : 65536 * 8);
}

// lz_rng_block: block b of key (hi, lo), ten rounds
__device__ __forceinline__ void philox_block(uint64_t hi, uint64_t lo, uint64_t b, uint32_t c[4]) {
    c[0] = (uint32_t)b;
    c[1] = (uint32_t)(b >> 32);
    c[2] = (uint32_t)hi;
    c[3] = (uint32_t)(hi >> 32);
    uint32_t k0 = (uint32_t)lo, k1 = (uint32_t)(lo >> 32);
#pragma unroll
    for (int r = 0; r < LZ_PHILOX_ROUNDS; r++) {
        if (r) { k0 += LZ_PHILOX_W0; k1 += LZ_PHILOX_W1; }
        uint32_t h0 = __umulhi(LZ_PHILOX_M0, c[0]), l0 = LZ_PHILOX_M0 * c[0];
        uint32_t h1 = __umulhi(LZ_PHILOX_M1, c[2]), l1 = LZ_PHILOX_M1 * c[2];
        uint32_t x0 = h1 ^ c[1] ^ k0, x2 = h0 ^ c[3] ^ k1;
        c[0] = x0;
        c[1] = l1;
        c[2] = x2;
        c[3] = l0;
    }
}

__device__ __forceinline__ uint16_t f32_to_bf16(float f) {   // lz_f32_to_bf16
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

// rounds v to dtype dt, as a float (the CPU's to_dtype)
__device__ __forceinline__ float to_dtype(float v, int dt) {
    if (dt == DT_F16) return __half2float(__float2half_rn(v));
    if (dt == DT_BF16) return __uint_as_float((uint32_t)f32_to_bf16(v) << 16);
    return v;
}

__device__ __forceinline__ void store_float(void *out, int dt, int64_t e, float v) {
    if (dt == DT_F16) ((uint16_t *)out)[e] = __half_as_ushort(__float2half_rn(v));
    else if (dt == DT_BF16) ((uint16_t *)out)[e] = f32_to_bf16(v);
    else ((float *)out)[e] = v;
}

__device__ __forceinline__ uint64_t word64(const uint32_t *w) { return w[0] | (uint64_t)w[1] << 32; }

// floor((xhi:xlo) * span / 2^128)
__device__ __forceinline__ uint64_t mulhi128(uint64_t xhi, uint64_t xlo, uint64_t span) {
    uint64_t lo1 = xhi * span, hi1 = __umul64hi(xhi, span), c = __umul64hi(xlo, span);
    uint64_t s = lo1 + c;
    return hi1 + (s < lo1 ? 1 : 0);
}

// Acklam's inverse normal CDF, evaluated in the CPU's order without contraction.
__device__ double normal_icdf(double p) {
    const double a0 = -3.969683028665376e+01, a1 = 2.209460984245205e+02, a2 = -2.759285104469687e+02,
                 a3 = 1.383577518672690e+02, a4 = -3.066479806614716e+01, a5 = 2.506628277459239e+00;
    const double b0 = -5.447609879822406e+01, b1 = 1.615858368580409e+02, b2 = -1.556989798598866e+02,
                 b3 = 6.680131188771972e+01, b4 = -1.328068155288572e+01;
    const double c0 = -7.784894002430293e-03, c1 = -3.223964580411365e-01, c2 = -2.400758277161838e+00,
                 c3 = -2.549732539343734e+00, c4 = 4.374664141464968e+00, c5 = 2.938163982698783e+00;
    const double d0 = 7.784695709041462e-03, d1 = 3.224671290700398e-01, d2 = 2.445134137142996e+00,
                 d3 = 3.754408661907416e+00;
    if (!(p > 0)) return -__longlong_as_double(0x7ff0000000000000ll);
    if (!(p < 1)) return __longlong_as_double(0x7ff0000000000000ll);
    if (p < 0.02425 || p > 1 - 0.02425) {
        double q = sqrt(__dmul_rn(-2.0, log(p < 0.5 ? p : __dsub_rn(1.0, p))));
        double num = __dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(
                         __dadd_rn(__dmul_rn(c0, q), c1), q), c2), q), c3), q), c4), q), c5);
        double den = __dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(
                         __dadd_rn(__dmul_rn(d0, q), d1), q), d2), q), d3), q), 1.0);
        double x = __ddiv_rn(num, den);
        return p < 0.5 ? x : -x;
    }
    double q = __dsub_rn(p, 0.5), r = __dmul_rn(q, q);
    double num = __dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(
                     __dadd_rn(__dmul_rn(a0, r), a1), r), a2), r), a3), r), a4), r), a5), q);
    double den = __dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(__dadd_rn(__dmul_rn(
                     __dadd_rn(__dmul_rn(b0, r), b1), r), b2), r), b3), r), b4), r), 1.0);
    return __ddiv_rn(num, den);
}

__global__ void random_kernel(void *out, cuk_rng_desc d, int64_t n) {
    const int64_t epb = 4 / d.wpe;   // elements per Philox block
    const int64_t nb = (n + epb - 1) / epb;
    const double two_pi_2m32 = 2 * 3.14159265358979323846 * 0x1p-32;   // 2 * M_PI * 2^-32
    GRID_STRIDE(b, nb) {
        uint32_t w[4];
        philox_block(d.hi, d.lo, (uint64_t)b, w);
        int64_t e0 = b * epb;
        switch (d.dist) {
        case LZ_RNG_BITS:
            for (int q = 0; q < 4; q++)
                if (e0 + q < n) ((int64_t *)out)[e0 + q] = w[q];
            break;
        case LZ_RNG_UNIFORM:
            for (int q = 0; q < 4; q++) {
                if (e0 + q >= n) break;
                double u = (double)(w[q] >> 8) * 0x1p-24;
                float x = to_dtype(__double2float_rn(__dadd_rn(d.lo_v, __dmul_rn(d.width, u))), d.dtype);
                store_float(out, d.dtype, e0 + q, x < d.lo_d ? d.lo_d : x > d.hi_d ? d.hi_d : x);
            }
            break;
        case LZ_RNG_NORMAL:   // pairs (e0, e0 + 1), (e0 + 2, e0 + 3): Box-Muller
            for (int q = 0; q < 4; q += 2) {
                if (e0 + q >= n) break;
                double r = sqrt(__dmul_rn(-2.0, log(__dmul_rn((double)w[q] + 1, 0x1p-32)))), s, c;
                sincos(__dmul_rn(two_pi_2m32, (double)w[q + 1]), &s, &c);
                double sr = __dmul_rn(d.std, r);
                float vc = __double2float_rn(__dadd_rn(d.mean, __dmul_rn(sr, c)));
                store_float(out, d.dtype, e0 + q, to_dtype(vc, d.dtype));
                if (e0 + q + 1 < n) {
                    float vs = __double2float_rn(__dadd_rn(d.mean, __dmul_rn(sr, s)));
                    store_float(out, d.dtype, e0 + q + 1, to_dtype(vs, d.dtype));
                }
            }
            break;
        case LZ_RNG_TRUNC_NORMAL:   // 2 words an element
            for (int q = 0; q < 2; q++) {
                if (e0 + q >= n) break;
                double u = __dmul_rn((double)(word64(w + 2 * q) >> 11) + 0.5, 0x1p-53);
                double x = normal_icdf(__dadd_rn(d.pa, __dmul_rn(u, d.pw)));
                x = x < d.a ? d.a : x > d.b ? d.b : x;
                float y = to_dtype(__double2float_rn(d.flip ? -x : x), d.dtype);
                store_float(out, d.dtype, e0 + q, y < d.lo_d ? d.lo_d : y > d.hi_d ? d.hi_d : y);
            }
            break;
        case LZ_RNG_BERNOULLI:
            for (int q = 0; q < 4; q++)
                if (e0 + q < n) ((uint8_t *)out)[e0 + q] = (uint64_t)w[q] < d.thresh;
            break;
        case LZ_RNG_RANDINT:
            for (int q = 0; q < (int)epb; q++) {
                if (e0 + q >= n) break;
                uint64_t r = d.wpe == 2 ? __umul64hi(word64(w + 2 * q), d.span)
                                        : mulhi128(word64(w + 2), word64(w), d.span);
                int64_t x = (int64_t)(d.ilo + r);   // wraps back into [lo, hi)
                if (d.dtype == DT_U8) ((uint8_t *)out)[e0 + q] = (uint8_t)x;
                else if (d.dtype == DT_I32) ((int32_t *)out)[e0 + q] = (int32_t)x;
                else ((int64_t *)out)[e0 + q] = x;
            }
            break;
        default:
            break;
        }
    }
}

// ---- permutation ----

__global__ void perm_draws(uint32_t *draws, uint64_t *keys, uint64_t hi, uint64_t lo, int64_t n, int64_t P) {
    GRID_STRIDE(k, P) {
        uint64_t key = ~0ull;
        if (k < n) {
            uint32_t w[4];
            philox_block(hi, lo, (uint64_t)k / 2, w);   // step k reads words 2k, 2k + 1
            uint64_t r = __umul64hi(word64(w + 2 * (k % 2)), (uint64_t)k + 1);
            draws[k] = (uint32_t)r;
            key = r << 32 | (uint64_t)k;
        }
        keys[k] = key;
    }
}

__device__ __forceinline__ int64_t lower_bound(const uint64_t *k, int64_t len, uint64_t x) {
    int64_t lo = 0, hi = len;
    while (lo < hi) {
        int64_t mid = (lo + hi) >> 1;
        if (k[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// The shuffle is the swaps a[k] <-> a[r_k], k = 0 .. n-1, on the identity. Position q is
// written by step q (with the value at r_q before it, or q itself when r_q = q) and by
// every later step k with r_k = q (with k). So out[p] is the last k in (p, n) with r_k = p;
// failing that the value position r_p held just before step p: the last k in (r_p, p) with
// r_k = r_p, and so on down the chain (q strictly decreases). keys (sorted r << 32 | k) give
// "the last k < lim with r_k = q" by one binary search.
__global__ void perm_chain(int64_t *out, const uint32_t *draws, const uint64_t *keys, int64_t n) {
    GRID_STRIDE(p, n) {
        uint64_t q = (uint64_t)p, lim = (uint64_t)n;
        for (;;) {
            int64_t c = lower_bound(keys, n, q << 32 | lim) - 1;
            if (c >= 0) {
                uint64_t kk = keys[c];
                if (kk >> 32 == q && (kk & 0xffffffffull) > q) { out[p] = (int64_t)(kk & 0xffffffffull); break; }
            }
            uint64_t r = draws[q];
            if (r == q) { out[p] = (int64_t)q; break; }
            lim = q;
            q = r;
        }
    }
}

}  // namespace

extern "C" void cuk_random(void *out, const cuk_rng_desc *d, int64_t n, void *stream) {
    if (n <= 0) return;
    int64_t nb = (n + 4 / d->wpe - 1) / (4 / d->wpe);
    random_kernel<<<grid_for(nb, 256), 256, 0, (cudaStream_t)stream>>>(out, *d, n);
}

extern "C" void cuk_perm_draws(uint32_t *draws, uint64_t *keys, uint64_t hi, uint64_t lo, int64_t n,
                               int64_t P, void *stream) {
    if (P <= 0) return;
    perm_draws<<<grid_for(P, 256), 256, 0, (cudaStream_t)stream>>>(draws, keys, hi, lo, n, P);
}

extern "C" void cuk_perm_chain(int64_t *out, const uint32_t *draws, const uint64_t *keys, int64_t n,
                               void *stream) {
    if (n <= 0) return;
    perm_chain<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(out, draws, keys, n);
}
