// Row kernels on the GPU: softmax, log-softmax (any axis, any layout), layer norm and RMS
// norm (last axis), and the norms' backward (NORM_GRAD). The semantics are the CPU's
// (lib/backend/cpu/nn.c, norm_grad.c):
//   softmax / log-softmax: max-subtracted, float32; a row holding a NaN or a +inf, or only
//     -inf, gives NaN everywhere; -inf entries give exact 0 / -inf.
//   norms: mean and variance summed in double (two passes), rstd rounded to float, the
//     mean split in hi + lo floats for x - mean, as the CPU does (values near 1e4 keep
//     their precision).
// Two ways to walk rows:
//   rows_kernel  a group of TPR threads per row (TPR < 32: several rows per warp; 32: a
//                warp; 256 / 1024: a block), reductions by warp shuffles (+ shared memory
//                across warps). Used when the row is unit-stride in x, or when rows are few.
//   tile_kernel  32 neighbouring rows per block, KY threads along each row (blockDim
//                32 x KY): reads neighbouring rows' elements together, i.e. coalesced when
//                the axis is not the innermost one (softmax over axis 0).
// Every reduction is a fixed tree: results do not depend on timing.
#include <cuda_runtime.h>
#include <stdint.h>
#include "nn.h"

namespace {

// ---- group reductions: every thread of the group gets the same bits ----

template <typename T, bool MAX>
__device__ __forceinline__ T combine(T a, T b) {
    if constexpr (MAX) return b > a ? b : a;
    else return a + b;
}

// A group of TPR threads (TPR a power of two <= 1024) of one row; TPR > 32 is the whole
// block. All threads of the block must call it (TPR > 32: __syncthreads inside).
template <int TPR>
struct RowRed {
    template <typename T, bool MAX>
    static __device__ __forceinline__ T red(T v) {
        constexpr int W = TPR < 32 ? TPR : 32;
        // butterfly: lanes i and i ^ o compute the same sum (a + b == b + a)
        #pragma unroll
        for (int o = W / 2; o > 0; o >>= 1) v = combine<T, MAX>(v, __shfl_xor_sync(0xffffffffu, v, o));
        if constexpr (TPR > 32) {
            __shared__ T sh[32];
            if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
            __syncthreads();
            v = sh[0];
            #pragma unroll
            for (int i = 1; i < TPR / 32; i++) v = combine<T, MAX>(v, sh[i]);
            __syncthreads();   // sh is reused by the next reduction
        }
        return v;
    }
};

// A column of KY threads (threadIdx.y) of a 32 x KY block; all the block's threads call it.
template <int KY>
struct TileRed {
    template <typename T, bool MAX>
    static __device__ __forceinline__ T red(T v) {
        __shared__ T sh[KY][33];
        sh[threadIdx.y][threadIdx.x] = v;
        __syncthreads();
        v = sh[0][threadIdx.x];
        #pragma unroll
        for (int i = 1; i < KY; i++) v = combine<T, MAX>(v, sh[i][threadIdx.x]);
        __syncthreads();
        return v;
    }
};

// Start offsets of row r in x and y.
__device__ __forceinline__ void row_offsets(const cuk_rowmap &m, int64_t r, int64_t *io,
                                            int64_t *oo) {
    int64_t a = 0, b = 0;
    for (int d = m.nd - 1; d > 0; d--) {
        int64_t s = m.size[d], q = r / s, i = r - q * s;
        r = q;
        a += i * m.in_st[d];
        b += i * m.out_st[d];
    }
    if (m.nd > 0) {
        a += r * m.in_st[0];
        b += r * m.out_st[0];
    }
    *io = a;
    *oo = b;
}

// One row: this thread handles elements k0, k0 + dk, ... < n. Every thread of the group
// calls it (inactive ones, past the last row, with active false: they only take part in
// the reductions). x and y may be the same memory: element k is read and then written by
// the same thread, after every reduction over the row.
template <int OP, class RED>
__device__ __forceinline__ void row_op(const float *xr, int64_t sx, float *yr,
                                       int64_t sy, int64_t n, int64_t k0, int64_t dk,
                                       bool active, const float *w, const float *b,
                                       double eps) {
    const int64_t ne = active ? n : 0;
    if constexpr (OP == CUK_SOFTMAX || OP == CUK_LOG_SOFTMAX) {
        float m = -INFINITY;
        bool nan = false;
        for (int64_t k = k0; k < ne; k += dk) {
            float v = xr[k * sx];
            m = v > m ? v : m;
            nan |= v != v;
        }
        if (nan) m = INFINITY;   // NaN or +inf: the row's results are NaN
        m = RED::template red<float, true>(m);
        const bool bad = !isfinite(m);   // NaN, +inf, or only -inf (inactive rows too)
        const int64_t ns = bad ? 0 : ne;
        float s = 0;
        for (int64_t k = k0; k < ns; k += dk) s += expf(xr[k * sx] - m);
        s = RED::template red<float, false>(s);
        if (bad) {
            for (int64_t k = k0; k < ne; k += dk) yr[k * sy] = __int_as_float(0x7fc00000);
            return;
        }
        if constexpr (OP == CUK_SOFTMAX) {
            const float r = 1.0f / s;   // s >= 1: the max contributes exp(0)
            for (int64_t k = k0; k < ne; k += dk) yr[k * sy] = expf(xr[k * sx] - m) * r;
        } else {
            // (x - m) - log(s): near the max, x - m is exact
            const float c = logf(s);
            for (int64_t k = k0; k < ne; k += dk) yr[k * sy] = (xr[k * sx] - m) - c;
        }
    } else if constexpr (OP == CUK_LAYER_NORM) {
        double s = 0;
        for (int64_t k = k0; k < ne; k += dk) s += (double)xr[k * sx];
        s = RED::template red<double, false>(s);
        const double mean = s / (double)n;
        double q = 0;
        for (int64_t k = k0; k < ne; k += dk) {
            double d = (double)xr[k * sx] - mean;
            q += d * d;
        }
        q = RED::template red<double, false>(q);
        const float r = (float)(1.0 / sqrt(q / (double)n + eps));
        const float mh = (float)mean, ml = (float)(mean - (double)mh);
        for (int64_t k = k0; k < ne; k += dk) {
            float v = ((xr[k * sx] - mh) - ml) * r;
            if (w) v = v * w[k];
            if (b) v = v + b[k];
            yr[k * sy] = v;
        }
    } else {   // CUK_RMS_NORM
        double q = 0;
        for (int64_t k = k0; k < ne; k += dk) {
            double v = (double)xr[k * sx];
            q += v * v;
        }
        q = RED::template red<double, false>(q);
        const float r = (float)(1.0 / sqrt(q / (double)n + eps));
        for (int64_t k = k0; k < ne; k += dk) {
            float v = xr[k * sx] * r;
            if (w) v = v * w[k];
            yr[k * sy] = v;
        }
    }
}

template <int TPR>
__host__ __device__ constexpr int block_of() { return TPR > 256 ? TPR : 256; }

template <int OP, int TPR>
__global__ void __launch_bounds__(block_of<TPR>())
rows_kernel(const float *x, float *y, cuk_rowmap map, int64_t rows, int64_t n, int64_t sx,
            int64_t sy, const float *w, const float *b, double eps) {
    constexpr int G = block_of<TPR>() / TPR;   // rows per block
    const int g = (int)threadIdx.x / TPR, t = (int)threadIdx.x % TPR;
    // the loop is uniform over the block: every thread reaches every reduction
    for (int64_t r0 = (int64_t)blockIdx.x * G; r0 < rows; r0 += (int64_t)gridDim.x * G) {
        const int64_t r = r0 + g;
        const bool active = r < rows;
        int64_t io = 0, oo = 0;
        if (active) row_offsets(map, r, &io, &oo);
        row_op<OP, RowRed<TPR>>(x + io, sx, y + oo, sy, n, t, TPR, active, w, b, eps);
    }
}

template <int OP, int KY>
__global__ void __launch_bounds__(32 * KY)
tile_kernel(const float *x, float *y, cuk_rowmap map, int64_t rows, int64_t n, int64_t sx,
            int64_t sy, const float *w, const float *b, double eps) {
    for (int64_t r0 = (int64_t)blockIdx.x * 32; r0 < rows; r0 += (int64_t)gridDim.x * 32) {
        const int64_t r = r0 + threadIdx.x;
        const bool active = r < rows;
        int64_t io = 0, oo = 0;
        if (active) row_offsets(map, r, &io, &oo);
        row_op<OP, TileRed<KY>>(x + io, sx, y + oo, sy, n, threadIdx.y, KY, active, w, b, eps);
    }
}

int grid_of(int64_t blocks) {
    const int64_t cap = 65535LL * 16;
    return (int)(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

template <int OP, int TPR>
void launch_rows(const float *x, float *y, const cuk_rowmap &m, int64_t rows, int64_t n,
                 int64_t sx, int64_t sy, const float *w, const float *b, double eps,
                 cudaStream_t s) {
    constexpr int BS = block_of<TPR>(), G = BS / TPR;
    rows_kernel<OP, TPR><<<grid_of((rows + G - 1) / G), BS, 0, s>>>(x, y, m, rows, n, sx, sy, w,
                                                                     b, eps);
}

template <int OP>
void launch_op(const float *x, float *y, const cuk_rowmap &m, int64_t rows, int64_t n,
               int64_t sx, int64_t sy, const float *w, const float *b, double eps, int sms,
               cudaStream_t s) {
    if (sx != 1 && rows >= 32) {
        // neighbouring rows read together; 32 threads along the row when tiles are few
        const int64_t tiles = (rows + 31) / 32;
        if (tiles < (int64_t)sms * 8 && n >= 64)
            tile_kernel<OP, 32><<<grid_of(tiles), dim3(32, 32), 0, s>>>(x, y, m, rows, n, sx, sy,
                                                                         w, b, eps);
        else
            tile_kernel<OP, 8><<<grid_of(tiles), dim3(32, 8), 0, s>>>(x, y, m, rows, n, sx, sy,
                                                                       w, b, eps);
        return;
    }
    if (n <= 8) launch_rows<OP, 8>(x, y, m, rows, n, sx, sy, w, b, eps, s);
    else if (n <= 16) launch_rows<OP, 16>(x, y, m, rows, n, sx, sy, w, b, eps, s);
    else if (n <= 2048) launch_rows<OP, 32>(x, y, m, rows, n, sx, sy, w, b, eps, s);
    else if (n <= 8192) launch_rows<OP, 256>(x, y, m, rows, n, sx, sy, w, b, eps, s);
    else launch_rows<OP, 1024>(x, y, m, rows, n, sx, sy, w, b, eps, s);
}

// ---- NORM_GRAD ----

// One group of TPR threads (TPR >= 32: a warp, or the whole block) per chunk of ch rows.
// Thread t owns columns t, t + TPR, ... of the chunk's partial sums part[c * 2n + i]
// (d weight) and part[c * 2n + n + i] (d bias): no two threads write the same one.
template <int TPR, bool LAYER>
__global__ void __launch_bounds__(block_of<TPR>())
norm_grad_rows(const float *__restrict__ x, const float *__restrict__ ct,
               const float *__restrict__ w, float *__restrict__ dx, float *__restrict__ part,
               int64_t rows, int64_t n, int64_t ch, int64_t nchunks, double eps) {
    static_assert(TPR >= 32, "groups are whole warps");
    constexpr int G = block_of<TPR>() / TPR;
    const int g = (int)threadIdx.x / TPR, t = (int)threadIdx.x % TPR;
    for (int64_t c0 = (int64_t)blockIdx.x * G; c0 < nchunks; c0 += (int64_t)gridDim.x * G) {
        const int64_t c = c0 + g;
        // TPR == 32: uniform over the warp (no block-wide barrier then); TPR > 32: G == 1
        if (c >= nchunks) continue;
        float *pw = part + c * 2 * n, *pb = pw + n;
        const int64_t rbeg = c * ch, rend = rows - rbeg < ch ? rows : rbeg + ch;
        for (int64_t r = rbeg; r < rend; r++) {
            const float *xr = x + r * n, *cr = ct + r * n;
            float *dr = dx + r * n;
            double mean = 0, q = 0;
            if constexpr (LAYER) {
                double s = 0;
                for (int64_t i = t; i < n; i += TPR) s += (double)xr[i];
                s = RowRed<TPR>::template red<double, false>(s);
                mean = s / (double)n;
                for (int64_t i = t; i < n; i += TPR) {
                    double d = (double)xr[i] - mean;
                    q += d * d;
                }
            } else {
                for (int64_t i = t; i < n; i += TPR) {
                    double v = (double)xr[i];
                    q += v * v;
                }
            }
            q = RowRed<TPR>::template red<double, false>(q);
            const float rs = (float)(1.0 / sqrt(q / (double)n + eps));
            const float mh = (float)mean, ml = (float)(mean - (double)mh);
            const bool first = r == rbeg;
            float m1 = 0, m2 = 0;
            for (int64_t i = t; i < n; i += TPR) {
                const float cv = cr[i];
                const float xh = ((xr[i] - mh) - ml) * rs, gv = w ? cv * w[i] : cv;
                m1 += gv;
                m2 += gv * xh;
                const float a = cv * xh;
                pw[i] = first ? a : pw[i] + a;
                pb[i] = first ? cv : pb[i] + cv;
            }
            m1 = RowRed<TPR>::template red<float, false>(m1);
            m2 = RowRed<TPR>::template red<float, false>(m2);
            m1 = LAYER ? m1 / (float)n : 0.0f;
            m2 /= (float)n;
            for (int64_t i = t; i < n; i += TPR) {
                const float cv = cr[i];
                const float xh = ((xr[i] - mh) - ml) * rs, gv = w ? cv * w[i] : cv;
                dr[i] = rs * (gv - m1 - xh * m2);
            }
        }
    }
}

// The 2n column sums over the chunks, in a fixed order: threadIdx.y sums chunks
// y, y + KY, ..., then the KY partial sums are added in order. Zero rows for the absent
// parameters.
template <int KY>
__global__ void __launch_bounds__(32 * KY)
norm_grad_cols(const float *__restrict__ part, float *__restrict__ dwdb, int64_t n,
               int64_t nchunks, int has_w, int has_b) {
    __shared__ float sh[KY][33];
    const int64_t n2 = 2 * n;
    for (int64_t j0 = (int64_t)blockIdx.x * 32; j0 < n2; j0 += (int64_t)gridDim.x * 32) {
        const int64_t j = j0 + threadIdx.x;
        float s = 0;
        if (j < n2)
            for (int64_t c = threadIdx.y; c < nchunks; c += KY) s += part[c * n2 + j];
        sh[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && j < n2) {
            float a = sh[0][threadIdx.x];
            #pragma unroll
            for (int i = 1; i < KY; i++) a += sh[i][threadIdx.x];
            const bool keep = j < n ? has_w != 0 : has_b != 0;
            dwdb[j] = keep ? a : 0.0f;
        }
        __syncthreads();
    }
}

template <int TPR>
void launch_grad(const float *x, const float *ct, const float *w, float *dx, float *part,
                 int64_t rows, int64_t n, int64_t ch, int64_t nchunks, double eps, bool layer,
                 cudaStream_t s) {
    constexpr int BS = block_of<TPR>(), G = BS / TPR;
    const int grid = grid_of((nchunks + G - 1) / G);
    if (layer)
        norm_grad_rows<TPR, true><<<grid, BS, 0, s>>>(x, ct, w, dx, part, rows, n, ch, nchunks, eps);
    else
        norm_grad_rows<TPR, false><<<grid, BS, 0, s>>>(x, ct, w, dx, part, rows, n, ch, nchunks, eps);
}

}  // namespace

extern "C" void cuk_nn_rows(int op, const float *x, float *y, const cuk_rowmap *map,
                            int64_t rows, int64_t n, int64_t sx, int64_t sy, const float *w,
                            const float *b, double eps, int sms, void *stream) {
    if (rows <= 0 || n <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    const cuk_rowmap m = *map;
    switch (op) {
    case CUK_SOFTMAX: launch_op<CUK_SOFTMAX>(x, y, m, rows, n, sx, sy, w, b, eps, sms, s); break;
    case CUK_LOG_SOFTMAX: launch_op<CUK_LOG_SOFTMAX>(x, y, m, rows, n, sx, sy, w, b, eps, sms, s); break;
    case CUK_LAYER_NORM: launch_op<CUK_LAYER_NORM>(x, y, m, rows, n, sx, sy, w, b, eps, sms, s); break;
    default: launch_op<CUK_RMS_NORM>(x, y, m, rows, n, sx, sy, w, b, eps, sms, s); break;
    }
}

extern "C" void cuk_norm_grad(const float *x, const float *ct, const float *w, float *out,
                              float *part, int64_t rows, int64_t n, int64_t ch, int64_t nchunks,
                              int tpr, double eps, int layer, int has_w, int has_b, int sms,
                              void *stream) {
    if (n <= 0) return;
    cudaStream_t s = (cudaStream_t)stream;
    if (rows > 0 && nchunks > 0) {
        if (tpr <= 32) launch_grad<32>(x, ct, w, out, part, rows, n, ch, nchunks, eps, layer, s);
        else if (tpr <= 256) launch_grad<256>(x, ct, w, out, part, rows, n, ch, nchunks, eps, layer, s);
        else launch_grad<1024>(x, ct, w, out, part, rows, n, ch, nchunks, eps, layer, s);
    } else {
        nchunks = 0;   // no rows: the gradient rows are zeros
    }
    const int64_t tiles = (2 * n + 31) / 32;
    if (tiles < (int64_t)sms * 4)
        norm_grad_cols<32><<<grid_of(tiles), dim3(32, 32), 0, s>>>(part, out + rows * n, n,
                                                                   nchunks, has_w, has_b);
    else
        norm_grad_cols<8><<<grid_of(tiles), dim3(32, 8), 0, s>>>(part, out + rows * n, n,
                                                                 nchunks, has_w, has_b);
}
