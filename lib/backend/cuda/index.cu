// Index, join, arg-reduce and scan kernels (GPU): take, take_along_axis, scatter_add,
// concatenate, pad, argmax / argmin, cumsum. Inputs are read in place through their
// strides (cuk_lay walks); outputs are contiguous. One thread per output element unless
// said otherwise; grid-stride loops throughout.
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include "index.h"
#include "walk.cuh"

namespace {

enum { DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_BF16, DT_F32 };


#define GRID_STRIDE(e, total)                                                          \
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < (total);      \
         e += (int64_t)gridDim.x * blockDim.x)

// ---- indices ----

__device__ __forceinline__ int64_t load_index(const void *ix, int dt, int64_t off) {
    switch (dt) {
    case DT_U8: return ((const uint8_t *)ix)[off];
    case DT_I32: return ((const int32_t *)ix)[off];
    default: return ((const int64_t *)ix)[off];
    }
}

// The index of (o, j, i), wrapped from the end; -1 when out of range.
__device__ __forceinline__ int64_t index_at(const void *ix, const cuk_index_desc &d, int64_t o,
                                            int64_t j, int64_t i) {
    int64_t off = d.along ? lay_off(d.x1, o) + j * d.xst + lay_off(d.x2, i) : lay_off(d.x1, j);
    int64_t x = load_index(ix, d.idtype, off);
    if (x < 0) x += d.n;
    return x >= 0 && x < d.n ? x : -1;
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

// ---- take / take_along_axis ----

template <typename T>
__global__ void gather(T *out, const T *a, const void *ix, cuk_index_desc d, int64_t total) {
    GRID_STRIDE(e, total) {
        int64_t i = e % d.ni, q = e / d.ni, j = q % d.cnt, o = q / d.cnt;
        int64_t x = index_at(ix, d, o, j, i);
        out[e] = x >= 0 ? a[lay_off(d.ao, o) + x * d.ast + lay_off(d.ai, i)] : (T)0;
    }
}

// ---- scatter_add ----

struct add_op {
    template <typename T> __device__ __forceinline__ T operator()(T x, T y) const { return (T)(x + y); }
};
struct or_op {
    __device__ __forceinline__ uint8_t operator()(uint8_t x, uint8_t y) const { return (uint8_t)(x | y); }
};

template <typename T, typename OP>
__global__ void scatter_direct(T *out, const T *a, const T *upd, const void *ix, cuk_index_desc d,
                               int64_t total) {
    OP op;
    GRID_STRIDE(e, total) {
        int64_t i = e % d.ni, q = e / d.ni, t = q % d.n, o = q / d.n;
        T acc = a[lay_off(d.ao, o) + t * d.ast + lay_off(d.ai, i)];
        for (int64_t j = 0; j < d.cnt; j++)
            if (index_at(ix, d, o, j, i) == t) acc = op(acc, upd[(o * d.cnt + j) * d.ni + i]);
        out[e] = acc;
    }
}

__global__ void scatter_keys(uint64_t *keys, const void *ix, cuk_index_desc d, int64_t P, int64_t total) {
    GRID_STRIDE(e, total) {
        int64_t row = e / P, j = e % P;
        uint64_t key = ~0ull;
        if (j < d.cnt) {
            int64_t o = d.along ? row / d.ni : 0, i = d.along ? row % d.ni : 0;
            int64_t x = index_at(ix, d, o, j, i);
            if (x >= 0) key = (uint64_t)x << 32 | (uint64_t)j;
        }
        keys[e] = key;
    }
}

__global__ void scatter_ranges(int64_t *rng, const uint64_t *keys, int64_t P, int64_t n) {
    GRID_STRIDE(t, n) {
        rng[2 * t] = lower_bound(keys, P, (uint64_t)t << 32);
        rng[2 * t + 1] = lower_bound(keys, P, (uint64_t)(t + 1) << 32);
    }
}

template <typename T, typename OP>
__global__ void scatter_sorted(T *out, const T *a, const T *upd, const uint64_t *keys,
                               const int64_t *rng, cuk_index_desc d, int64_t P, int64_t total) {
    OP op;
    GRID_STRIDE(e, total) {
        int64_t i = e % d.ni, q = e / d.ni, t = q % d.n, o = q / d.n;
        T acc = a[lay_off(d.ao, o) + t * d.ast + lay_off(d.ai, i)];
        const uint64_t *seg = keys;
        int64_t p0, p1;
        if (d.along) {
            seg = keys + (o * d.ni + i) * P;
            p0 = lower_bound(seg, P, (uint64_t)t << 32);
            p1 = lower_bound(seg, P, (uint64_t)(t + 1) << 32);
        } else {
            p0 = rng[2 * t];
            p1 = rng[2 * t + 1];
        }
        for (int64_t p = p0; p < p1; p++) {
            int64_t j = (int64_t)(seg[p] & 0xffffffffull);
            acc = op(acc, upd[(o * d.cnt + j) * d.ni + i]);
        }
        out[e] = acc;
    }
}

// ---- copies ----

template <typename T>
__global__ void copy_walk(T *dst, cuk_lay dl, const T *src, cuk_lay sl, int64_t n) {
    GRID_STRIDE(e, n) dst[lay_off(dl, e)] = src[lay_off(sl, e)];
}

template <typename T>
__global__ void pad_kernel(T *out, const T *a, cuk_pad_desc d, T fill, int64_t total) {
    GRID_STRIDE(e, total) {
        int64_t rem = e, off = 0;
        bool inside = true;
#pragma unroll
        for (int k = 7; k >= 0; k--) {
            if (k < d.nd) {
                int64_t c = rem % d.oshape[k] - d.before[k];
                rem /= d.oshape[k];
                inside = inside && c >= 0 && c < d.ashape[k];
                off += c * d.astrides[k];
            }
        }
        out[e] = inside ? a[off] : fill;
    }
}

// ---- argmax / argmin ----

__device__ __forceinline__ float load_f32(const void *p, int dt, int64_t off) {
    switch (dt) {
    case DT_F16: return __half2float(__ushort_as_half(((const uint16_t *)p)[off]));
    case DT_BF16: return __uint_as_float((uint32_t)((const uint16_t *)p)[off] << 16);
    default: return ((const float *)p)[off];
    }
}

__device__ __forceinline__ int64_t load_i64(const void *p, int dt, int64_t off) {
    switch (dt) {
    case DT_BOOL: return ((const uint8_t *)p)[off] != 0;
    case DT_U8: return ((const uint8_t *)p)[off];
    case DT_I32: return ((const int32_t *)p)[off];
    default: return ((const int64_t *)p)[off];
    }
}

template <typename V> __device__ __forceinline__ V load_v(const void *p, int dt, int64_t off);
template <> __device__ __forceinline__ float load_v<float>(const void *p, int dt, int64_t off) { return load_f32(p, dt, off); }
template <> __device__ __forceinline__ int64_t load_v<int64_t>(const void *p, int dt, int64_t off) { return load_i64(p, dt, off); }

// Whether (x, xi) is preferred to (y, yi): a strict total order (NaN above everything, ties
// by the lower index), so any reduction tree finds the CPU's pick. Index -1: none yet.
__device__ __forceinline__ bool better(float x, int64_t xi, float y, int64_t yi, bool is_max) {
    if (yi < 0) return xi >= 0;
    if (xi < 0) return false;
    bool xn = x != x, yn = y != y;
    if (xn || yn) return xn && yn ? xi < yi : xn;
    if (x != y) return is_max ? x > y : x < y;
    return xi < yi;
}
__device__ __forceinline__ bool better(int64_t x, int64_t xi, int64_t y, int64_t yi, bool is_max) {
    if (yi < 0) return xi >= 0;
    if (xi < 0) return false;
    if (x != y) return is_max ? x > y : x < y;
    return xi < yi;
}

// TPL threads per line (1, 32 or 256), blocks of 256 threads.
template <typename V, int TPL>
__global__ void arg_reduce(int64_t *out, const void *in, int dt, cuk_lay lines, int64_t sa,
                           int64_t A, int64_t nout, bool is_max) {
    constexpr int LPB = 256 / TPL;
    __shared__ V sv[8];
    __shared__ int64_t si[8];
    int lane = threadIdx.x % TPL;
    for (int64_t base = (int64_t)blockIdx.x * LPB; base < nout; base += (int64_t)gridDim.x * LPB) {
        int64_t line = base + threadIdx.x / TPL;
        V bv = V(0);
        int64_t bi = -1;
        if (line < nout) {
            int64_t off = lay_off(lines, line);
            for (int64_t k = lane; k < A; k += TPL) {
                V x = load_v<V>(in, dt, off + k * sa);
                if (better(x, k, bv, bi, is_max)) { bv = x; bi = k; }
            }
        }
        if (TPL >= 32) {
#pragma unroll
            for (int s = 16; s > 0; s >>= 1) {
                V ov = __shfl_down_sync(0xffffffffu, bv, s);
                int64_t oi = __shfl_down_sync(0xffffffffu, bi, s);
                if (better(ov, oi, bv, bi, is_max)) { bv = ov; bi = oi; }
            }
        }
        if (TPL == 256) {
            int w = threadIdx.x / 32;
            if (threadIdx.x % 32 == 0) { sv[w] = bv; si[w] = bi; }
            __syncthreads();
            if (threadIdx.x == 0) {
                for (int k = 1; k < 8; k++)
                    if (better(sv[k], si[k], bv, bi, is_max)) { bv = sv[k]; bi = si[k]; }
                out[line] = bi;
            }
            __syncthreads();
        } else if (lane == 0 && line < nout) {
            out[line] = bi;
        }
    }
}

template <typename V>
void arg_launch(int64_t *out, const void *in, int dt, const cuk_lay &l, int64_t sa, int64_t A,
                int64_t nout, bool is_max, cudaStream_t st) {
    if (A <= 16) {
        arg_reduce<V, 1><<<grid_for(nout, 256), 256, 0, st>>>(out, in, dt, l, sa, A, nout, is_max);
    } else if (A >= 2048 && nout <= 4096) {
        arg_reduce<V, 256><<<grid_for(nout, 1), 256, 0, st>>>(out, in, dt, l, sa, A, nout, is_max);
    } else {
        arg_reduce<V, 32><<<grid_for(nout, 8), 256, 0, st>>>(out, in, dt, l, sa, A, nout, is_max);
    }
}

// ---- cumsum ----

__device__ __forceinline__ uint16_t f32_to_bf16(float f) {   // the CPU's lz_f32_to_bf16
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

template <typename A> __device__ __forceinline__ A load_acc(const void *p, int dt, int64_t off);
template <> __device__ __forceinline__ double load_acc<double>(const void *p, int dt, int64_t off) {
    return (double)load_f32(p, dt, off);
}
template <> __device__ __forceinline__ uint64_t load_acc<uint64_t>(const void *p, int dt, int64_t off) {
    return (uint64_t)load_i64(p, dt, off);
}

__device__ __forceinline__ void store_acc(void *out, int odt, int64_t k, double v) {
    float f = __double2float_rn(v);
    switch (odt) {
    case DT_F16: ((uint16_t *)out)[k] = __half_as_ushort(__float2half_rn(f)); break;
    case DT_BF16: ((uint16_t *)out)[k] = f32_to_bf16(f); break;
    default: ((float *)out)[k] = f; break;
    }
}
__device__ __forceinline__ void store_acc(void *out, int, int64_t k, uint64_t v) {
    ((int64_t *)out)[k] = (int64_t)v;
}

struct scan_desc {
    cuk_lay lo, li;
    int64_t st, n, outer, ni;
    int dt, odt, reverse;
};

// One thread per column (o, i), walking the axis.
template <typename A>
__global__ void cumsum_cols(void *out, const void *in, scan_desc d) {
    GRID_STRIDE(c, d.outer * d.ni) {
        int64_t o = c / d.ni, i = c % d.ni, base = lay_off(d.lo, o) + lay_off(d.li, i);
        A acc = 0;
        for (int64_t s = 0; s < d.n; s++) {
            int64_t j = d.reverse ? d.n - 1 - s : s;
            acc += load_acc<A>(in, d.dt, base + j * d.st);
            store_acc(out, d.odt, (o * d.n + j) * d.ni + i, acc);
        }
    }
}

// One block (256 threads) per column: tiles of 256 x 8 consecutive steps, each thread
// scanning its 8, a block scan of the thread totals, and a carry between tiles.
constexpr int SCAN_K = 8;
template <typename A>
__global__ void cumsum_block(void *out, const void *in, scan_desc d) {
    __shared__ A wsum[8];
    __shared__ A total;
    int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    for (int64_t c = blockIdx.x; c < d.outer * d.ni; c += gridDim.x) {
        int64_t o = c / d.ni, i = c % d.ni, base = lay_off(d.lo, o) + lay_off(d.li, i);
        A carry = 0;
        for (int64_t t0 = 0; t0 < d.n; t0 += 256 * SCAN_K) {
            int64_t s0 = t0 + (int64_t)threadIdx.x * SCAN_K;
            A loc[SCAN_K], tot = 0;
#pragma unroll
            for (int q = 0; q < SCAN_K; q++) {
                int64_t s = s0 + q;
                if (s < d.n) {
                    int64_t j = d.reverse ? d.n - 1 - s : s;
                    tot += load_acc<A>(in, d.dt, base + j * d.st);
                }
                loc[q] = tot;
            }
            A incl = tot;
#pragma unroll
            for (int sh = 1; sh < 32; sh <<= 1) {
                A y = __shfl_up_sync(0xffffffffu, incl, sh);
                if (lane >= sh) incl += y;
            }
            A excl = __shfl_up_sync(0xffffffffu, incl, 1);
            if (lane == 0) excl = 0;
            if (lane == 31) wsum[w] = incl;
            __syncthreads();
            if (threadIdx.x == 0) {
                A run = 0;
                for (int k = 0; k < 8; k++) { A x = wsum[k]; wsum[k] = run; run += x; }
                total = run;
            }
            __syncthreads();
            A before = carry + wsum[w] + excl;
#pragma unroll
            for (int q = 0; q < SCAN_K; q++) {
                int64_t s = s0 + q;
                if (s < d.n) {
                    int64_t j = d.reverse ? d.n - 1 - s : s;
                    store_acc(out, d.odt, (o * d.n + j) * d.ni + i, before + loc[q]);
                }
            }
            carry += total;
            __syncthreads();
        }
    }
}

template <typename A>
void cumsum_launch(void *out, const void *in, const scan_desc &d, cudaStream_t st) {
    int64_t cols = d.outer * d.ni;
    if (cols >= 2048 || d.n <= 512) cumsum_cols<A><<<grid_for(cols, 128), 128, 0, st>>>(out, in, d);
    else cumsum_block<A><<<grid_for(cols, 1), 256, 0, st>>>(out, in, d);
}

}  // namespace

// ---- launchers ----

extern "C" void cuk_gather(void *out, const void *a, const void *ix, int es, const cuk_index_desc *d,
                           void *stream) {
    int64_t total = d->outer * d->cnt * d->ni;
    if (total <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    int g = grid_for(total, 256);
    switch (es) {
    case 1: gather<uint8_t><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, ix, *d, total); break;
    case 2: gather<uint16_t><<<g, 256, 0, s>>>((uint16_t *)out, (const uint16_t *)a, ix, *d, total); break;
    case 4: gather<uint32_t><<<g, 256, 0, s>>>((uint32_t *)out, (const uint32_t *)a, ix, *d, total); break;
    default: gather<uint64_t><<<g, 256, 0, s>>>((uint64_t *)out, (const uint64_t *)a, ix, *d, total); break;
    }
}

extern "C" void cuk_scatter_add_direct(void *out, const void *a, const void *upd, const void *ix,
                                       int dtype, const cuk_index_desc *d, void *stream) {
    int64_t total = d->outer * d->n * d->ni;
    if (total <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    int g = grid_for(total, 256);
    switch (dtype) {
    case DT_F32:
        scatter_direct<float, add_op><<<g, 256, 0, s>>>((float *)out, (const float *)a, (const float *)upd, ix, *d, total);
        break;
    case DT_I32:
        scatter_direct<uint32_t, add_op><<<g, 256, 0, s>>>((uint32_t *)out, (const uint32_t *)a, (const uint32_t *)upd, ix, *d, total);
        break;
    case DT_I64:
        scatter_direct<uint64_t, add_op><<<g, 256, 0, s>>>((uint64_t *)out, (const uint64_t *)a, (const uint64_t *)upd, ix, *d, total);
        break;
    case DT_U8:
        scatter_direct<uint8_t, add_op><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, (const uint8_t *)upd, ix, *d, total);
        break;
    default:   // bool
        scatter_direct<uint8_t, or_op><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, (const uint8_t *)upd, ix, *d, total);
        break;
    }
}

extern "C" void cuk_scatter_keys(uint64_t *keys, const void *ix, const cuk_index_desc *d, int64_t P,
                                 void *stream) {
    int64_t total = (d->along ? d->outer * d->ni : 1) * P;
    if (total <= 0) return;
    scatter_keys<<<grid_for(total, 256), 256, 0, (cudaStream_t)stream>>>(keys, ix, *d, P, total);
}

extern "C" void cuk_scatter_ranges(int64_t *rng, const uint64_t *keys, int64_t P, int64_t n, void *stream) {
    if (n <= 0) return;
    scatter_ranges<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(rng, keys, P, n);
}

extern "C" void cuk_scatter_add_sorted(void *out, const void *a, const void *upd, int dtype,
                                       const cuk_index_desc *d, const uint64_t *keys,
                                       const int64_t *rng, int64_t P, void *stream) {
    int64_t total = d->outer * d->n * d->ni;
    if (total <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    int g = grid_for(total, 256);
    switch (dtype) {
    case DT_F32:
        scatter_sorted<float, add_op><<<g, 256, 0, s>>>((float *)out, (const float *)a, (const float *)upd, keys, rng, *d, P, total);
        break;
    case DT_I32:
        scatter_sorted<uint32_t, add_op><<<g, 256, 0, s>>>((uint32_t *)out, (const uint32_t *)a, (const uint32_t *)upd, keys, rng, *d, P, total);
        break;
    case DT_I64:
        scatter_sorted<uint64_t, add_op><<<g, 256, 0, s>>>((uint64_t *)out, (const uint64_t *)a, (const uint64_t *)upd, keys, rng, *d, P, total);
        break;
    case DT_U8:
        scatter_sorted<uint8_t, add_op><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, (const uint8_t *)upd, keys, rng, *d, P, total);
        break;
    default:   // bool
        scatter_sorted<uint8_t, or_op><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, (const uint8_t *)upd, keys, rng, *d, P, total);
        break;
    }
}

extern "C" void cuk_index_copy(void *dst, const cuk_lay *dl, const void *src, const cuk_lay *sl, int es,
                               int64_t n, void *stream) {
    if (n <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    bool flat_d = dl->nd == 0 || (dl->nd == 1 && dl->strides[0] == 1);
    bool flat_s = sl->nd == 0 || (sl->nd == 1 && sl->strides[0] == 1);
    if (flat_d && flat_s) {   // both runs of memory: one copy
        cudaMemcpyAsync(dst, src, (size_t)n * (size_t)es, cudaMemcpyDeviceToDevice, s);
        return;
    }
    int g = grid_for(n, 256);
    switch (es) {
    case 1: copy_walk<uint8_t><<<g, 256, 0, s>>>((uint8_t *)dst, *dl, (const uint8_t *)src, *sl, n); break;
    case 2: copy_walk<uint16_t><<<g, 256, 0, s>>>((uint16_t *)dst, *dl, (const uint16_t *)src, *sl, n); break;
    case 4: copy_walk<uint32_t><<<g, 256, 0, s>>>((uint32_t *)dst, *dl, (const uint32_t *)src, *sl, n); break;
    default: copy_walk<uint64_t><<<g, 256, 0, s>>>((uint64_t *)dst, *dl, (const uint64_t *)src, *sl, n); break;
    }
}

extern "C" void cuk_pad(void *out, const void *a, int es, const cuk_pad_desc *d, uint64_t fill,
                        int64_t total, void *stream) {
    if (total <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    int g = grid_for(total, 256);
    switch (es) {
    case 1: pad_kernel<uint8_t><<<g, 256, 0, s>>>((uint8_t *)out, (const uint8_t *)a, *d, (uint8_t)fill, total); break;
    case 2: pad_kernel<uint16_t><<<g, 256, 0, s>>>((uint16_t *)out, (const uint16_t *)a, *d, (uint16_t)fill, total); break;
    case 4: pad_kernel<uint32_t><<<g, 256, 0, s>>>((uint32_t *)out, (const uint32_t *)a, *d, (uint32_t)fill, total); break;
    default: pad_kernel<uint64_t><<<g, 256, 0, s>>>((uint64_t *)out, (const uint64_t *)a, *d, fill, total); break;
    }
}

extern "C" void cuk_arg_reduce(int64_t *out, const void *in, int dtype, const cuk_lay *lines, int64_t sa,
                               int64_t A, int64_t nout, int is_max, void *stream) {
    if (nout <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32 || dtype == DT_F16 || dtype == DT_BF16)
        arg_launch<float>(out, in, dtype, *lines, sa, A, nout, is_max != 0, s);
    else
        arg_launch<int64_t>(out, in, dtype, *lines, sa, A, nout, is_max != 0, s);
}

extern "C" void cuk_cumsum(void *out, int odtype, const void *in, int dtype, const cuk_lay *lo,
                           const cuk_lay *li, int64_t st, int64_t n, int64_t outer, int64_t ni, int reverse,
                           void *stream) {
    if (n <= 0 || outer * ni <= 0) return;
    scan_desc d;
    d.lo = *lo;
    d.li = *li;
    d.st = st;
    d.n = n;
    d.outer = outer;
    d.ni = ni;
    d.dt = dtype;
    d.odt = odtype;
    d.reverse = reverse;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32 || dtype == DT_F16 || dtype == DT_BF16) cumsum_launch<double>(out, in, d, s);
    else cumsum_launch<uint64_t>(out, in, d, s);
}
