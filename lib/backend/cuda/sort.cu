// SORT / ARGSORT on the GPU, and the segmented key sort the index and random families use.
//
// Each element becomes the CPU's unsigned key (lib/backend/cpu/sort.c: floats with the sign
// flipped, NaN the largest key, -0 -> +0; descending complements the key), packed with its
// position: key << 32 | position for dtypes of <= 4 bytes (one uint64), {key, position} for
// int64. Sorting these unique (key, position) values ascending is exactly the CPU's stable
// order, so any sorting network gives identical results. Rows are padded to a power of two P
// with the largest value and sorted by a bitonic network: chunks of 4096 uint64 (2048 pairs)
// in shared memory, and for longer rows the strides of at least a chunk as global passes.
// O(P log^2 P) work per row.
#include <cuda_runtime.h>
#include <stdint.h>
#include "sort.h"
#include "walk.cuh"

namespace {

enum { DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_BF16, DT_F32 };

struct pair64 { uint64_t key, pos; };

__device__ __forceinline__ bool gt(uint64_t a, uint64_t b) { return a > b; }
__device__ __forceinline__ bool gt(const pair64 &a, const pair64 &b) {
    return a.key > b.key || (a.key == b.key && a.pos > b.pos);
}

template <typename T> __device__ __forceinline__ T top();
template <> __device__ __forceinline__ uint64_t top<uint64_t>() { return ~0ull; }
template <> __device__ __forceinline__ pair64 top<pair64>() { return pair64{~0ull, ~0ull}; }

// elements of T per shared chunk: 32 KiB
template <typename T> struct chunk { static constexpr int S = 32768 / (int)sizeof(T); };

constexpr int SORT_THREADS = 512;


// Compare-exchange of i and i | j (bit j of i clear) for stage k of rows of P keys: the
// row-local index decides the direction, so each row sorts ascending on its own.
template <typename T>
__device__ __forceinline__ void cmpx(T *s, int64_t i, int64_t j, int64_t gi, int64_t P, int64_t k) {
    int64_t l = i | j;
    bool asc = ((gi & (P - 1)) & k) == 0;
    T a = s[i], b = s[l];
    if (gt(a, b) == asc) { s[i] = b; s[l] = a; }
}

// kfix == 0: sorts each chunk of S keys (stages k = 2 .. min(P, S)); kfix > S: the steps
// j = S/2 .. 1 of stage kfix (the longer strides were done by bitonic_global).
template <typename T>
__global__ void bitonic_shared(T *keys, int64_t total, int64_t P, int64_t kfix) {
    constexpr int S = chunk<T>::S;
    __shared__ T s[S];
    int64_t nchunks = (total + S - 1) / S;
    for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
        int64_t base = c * S;
        for (int t = threadIdx.x; t < S; t += blockDim.x)
            s[t] = base + t < total ? keys[base + t] : top<T>();
        __syncthreads();
        int64_t k0 = kfix ? kfix : 2, k1 = kfix ? kfix : (P < S ? P : S);
        for (int64_t k = k0; k <= k1; k <<= 1) {
            for (int64_t j = (kfix ? (int64_t)S : k) >> 1; j > 0; j >>= 1) {
                for (int t = threadIdx.x; t < S / 2; t += blockDim.x) {
                    int64_t i = ((t & ~(j - 1)) << 1) | (t & (j - 1));
                    cmpx(s, i, j, base + i, P, k);
                }
                __syncthreads();
            }
        }
        for (int t = threadIdx.x; t < S; t += blockDim.x)
            if (base + t < total) keys[base + t] = s[t];
        __syncthreads();
    }
}

// One step (stage k, stride j >= S) over all rows, in global memory.
template <typename T>
__global__ void bitonic_global(T *keys, int64_t total, int64_t P, int64_t k, int64_t j) {
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total / 2;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = ((t & ~(j - 1)) << 1) | (t & (j - 1));
        cmpx(keys, i, j, i, P, k);
    }
}

template <typename T>
void sort_rows(T *keys, int64_t rows, int64_t P, cudaStream_t st) {
    constexpr int S = chunk<T>::S;
    int64_t total = rows * P;
    if (total <= 0 || P < 2) return;
    int64_t nchunks = (total + S - 1) / S;
    int g = (int)(nchunks < 65536 * 8 ? nchunks : 65536 * 8);
    bitonic_shared<T><<<g, SORT_THREADS, 0, st>>>(keys, total, P, 0);
    for (int64_t k = 2 * (int64_t)S; k <= P; k <<= 1) {
        for (int64_t j = k >> 1; j >= S; j >>= 1)
            bitonic_global<T><<<grid_for(total / 2, 256), 256, 0, st>>>(keys, total, P, k, j);
        bitonic_shared<T><<<g, SORT_THREADS, 0, st>>>(keys, total, P, k);
    }
}

// ---- keys of elements: the CPU's key_at ----

__device__ __forceinline__ uint64_t float_key(uint64_t u, uint64_t sign, uint64_t inf, uint64_t all) {
    if ((u & ~sign & all) > inf) return all;   // any NaN: after everything
    if (u == sign) u = 0;                      // -0 ties with +0
    return (u & sign) ? (~u & all) : (u | sign);
}

__device__ __forceinline__ uint64_t key_at(const void *src, int dt, int64_t off) {
    switch (dt) {
    case DT_BOOL: return ((const uint8_t *)src)[off] != 0;
    case DT_U8: return ((const uint8_t *)src)[off];
    case DT_F16: return float_key(((const uint16_t *)src)[off], 0x8000u, 0x7c00u, 0xffffu);
    case DT_BF16: return float_key(((const uint16_t *)src)[off], 0x8000u, 0x7f80u, 0xffffu);
    case DT_I32: return ((const uint32_t *)src)[off] ^ 0x80000000u;
    case DT_F32: return float_key(((const uint32_t *)src)[off], 0x80000000u, 0x7f800000u, 0xffffffffu);
    default: return ((const uint64_t *)src)[off] ^ 0x8000000000000000ull;
    }
}

__device__ __forceinline__ void make(uint64_t &x, uint64_t key, uint64_t pos) { x = key << 32 | pos; }
__device__ __forceinline__ void make(pair64 &x, uint64_t key, uint64_t pos) { x = pair64{key, pos}; }
__device__ __forceinline__ uint64_t pos_of(uint64_t x) { return x & 0xffffffffull; }
__device__ __forceinline__ uint64_t pos_of(const pair64 &x) { return x.pos; }

struct rows_desc {
    cuk_lay outer, inner;
    int64_t st, n, ni, P;
};

__device__ __forceinline__ int64_t row_off(const rows_desc &r, int64_t row) {
    return lay_off(r.outer, row / r.ni) + lay_off(r.inner, row % r.ni);
}

template <typename T>
__global__ void build_keys(T *keys, const void *src, int dt, rows_desc r, uint64_t flip, int64_t total) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = e / r.P, j = e % r.P;
        T x;
        if (j < r.n) make(x, key_at(src, dt, row_off(r, row) + j * r.st) ^ flip, (uint64_t)j);
        else x = top<T>();
        keys[e] = x;
    }
}

// out element e = (o * n + j) * ni + i: position or value of rank j in row o * ni + i
template <typename T, typename V>
__global__ void emit(void *out, const T *keys, const V *src, rows_desc r, int argsort, int64_t total) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % r.ni, q = e / r.ni, j = q % r.n, o = q / r.n, row = o * r.ni + i;
        int64_t pos = (int64_t)pos_of(keys[row * r.P + j]);
        if (argsort) ((int64_t *)out)[e] = pos;
        else ((V *)out)[e] = src[row_off(r, row) + pos * r.st];
    }
}

template <typename T>
void sort_all(void *out, const void *src, int dt, const rows_desc &r, int64_t rows, int desc,
              int argsort, T *keys, cudaStream_t st) {
    int kb = dt == DT_BOOL || dt == DT_U8 ? 1 : dt == DT_F16 || dt == DT_BF16 ? 2 : dt == DT_I64 ? 8 : 4;
    uint64_t flip = desc ? (kb == 8 ? ~0ull : (1ull << (8 * kb)) - 1) : 0;
    int64_t total = rows * r.P, n_out = rows * r.n;
    build_keys<T><<<grid_for(total, 256), 256, 0, st>>>(keys, src, dt, r, flip, total);
    sort_rows<T>(keys, rows, r.P, st);
    int g = grid_for(n_out, 256);
    if (argsort) { emit<T, uint8_t><<<g, 256, 0, st>>>(out, keys, (const uint8_t *)src, r, 1, n_out); return; }
    switch (kb) {
    case 1: emit<T, uint8_t><<<g, 256, 0, st>>>(out, keys, (const uint8_t *)src, r, 0, n_out); break;
    case 2: emit<T, uint16_t><<<g, 256, 0, st>>>(out, keys, (const uint16_t *)src, r, 0, n_out); break;
    case 4: emit<T, uint32_t><<<g, 256, 0, st>>>(out, keys, (const uint32_t *)src, r, 0, n_out); break;
    default: emit<T, uint64_t><<<g, 256, 0, st>>>(out, keys, (const uint64_t *)src, r, 0, n_out); break;
    }
}

}  // namespace

extern "C" void cuk_sort_u64_rows(uint64_t *keys, int64_t rows, int64_t P, void *stream) {
    sort_rows<uint64_t>(keys, rows, P, (cudaStream_t)stream);
}

extern "C" void cuk_sort(void *out, const void *src, int dtype, const cuk_lay *outer,
                         const cuk_lay *inner, int64_t st, int64_t n, int64_t ni, int64_t rows,
                         int64_t P, int descending, int argsort, void *scratch, void *stream) {
    if (rows <= 0 || n <= 0) return;
    rows_desc r;
    r.outer = *outer;
    r.inner = *inner;
    r.st = st;
    r.n = n;
    r.ni = ni;
    r.P = P;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_I64)
        sort_all<pair64>(out, src, dtype, r, rows, descending, argsort, (pair64 *)scratch, s);
    else
        sort_all<uint64_t>(out, src, dtype, r, rows, descending, argsort, (uint64_t *)scratch, s);
}
