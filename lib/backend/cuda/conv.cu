/* Kernels of the window primitives (geometry and modes in lib/ops/conv.h; launchers in
 * conv.h). CONV is im2col + cuBLAS GEMM (conv.c); here are the copies around the GEMMs:
 * im2col, col2im as a gather (one thread per input element, summing the patch entries that
 * cover it: no atomics, every element written once), and packing dy for the weight
 * gradient. Pools: one thread per output element, the gradients one thread per input
 * element over the windows that cover it, in the CPU's window order (row-major), so sums
 * come out in the same order.
 *
 * Every kernel is a grid-stride loop over the elements it writes, in their memory order
 * (coalesced stores). The index arithmetic is templated: 32-bit when the element count fits
 * (64-bit divisions cost several times more), 64-bit otherwise; offsets into strided
 * operands are always 64-bit. */
#include <cuda_runtime.h>
#include <stdint.h>
#include "conv.h"

namespace {

constexpr int THREADS = 256;

unsigned blocks_for(int64_t total) {
    int64_t b = (total + THREADS - 1) / THREADS;
    if (b > (1 << 20)) b = 1 << 20;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Launches kernel<I> over `total` elements: I = uint32_t when total < 2^31 (idx + stride
 * then stays below 2^32), else int64_t. */
#define LAUNCH(kernel, total, stream, ...)                                                   \
    do {                                                                                     \
        cudaStream_t s_ = (cudaStream_t)(stream);                                            \
        if ((total) < ((int64_t)1 << 31))                                                    \
            kernel<uint32_t><<<blocks_for(total), THREADS, 0, s_>>>(__VA_ARGS__);            \
        else                                                                                 \
            kernel<int64_t><<<blocks_for(total), THREADS, 0, s_>>>(__VA_ARGS__);             \
    } while (0)

#define GRID_LOOP(I, idx, total)                                                             \
    for (I idx = (I)(blockIdx.x * blockDim.x + threadIdx.x); idx < (total);                 \
         idx += (I)(gridDim.x * blockDim.x))

/* ---- CONV ---- */

template <typename I>
__global__ void im2col_kernel(float *__restrict__ cols, const float *__restrict__ x, cuk_str xs,
                              cuk_win g, int64_t n0, int64_t nb_, int64_t c, int wide,
                              int64_t total_) {
    const I total = (I)total_, nb = (I)nb_, ow = (I)g.ow, ohw = (I)(g.oh * g.ow);
    const I kw = (I)g.kw, kk = (I)(g.kh * g.kw), rows = (I)(c * g.kh * g.kw);
    GRID_LOOP(I, idx, total) {
        I p = idx % ohw, t = idx / ohw, i, row;
        if (wide) { i = t % nb; row = t / nb; }
        else { row = t % rows; i = t / rows; }
        I ch = row / kk, tap = row - ch * kk, ky = tap / kw, kx = tap - ky * kw;
        I oy = p / ow, ox = p - oy * ow;
        int64_t ih = (int64_t)oy * g.sh - g.ph + (int64_t)ky * g.dh;
        int64_t iw = (int64_t)ox * g.sw - g.pw + (int64_t)kx * g.dw;
        float v = 0.0f;
        if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
            v = x[(n0 + (int64_t)i) * xs.n + (int64_t)ch * xs.c + ih * xs.h + iw * xs.w];
        cols[idx] = v;
    }
}

template <typename I>
__global__ void col2im_kernel(float *__restrict__ dx, const float *__restrict__ cols, cuk_win g,
                              int64_t c_, int64_t total_) {
    const I total = (I)total_, w = (I)g.w, h = (I)g.h, c = (I)c_;
    const int64_t ohw = g.oh * g.ow, kk = g.kh * g.kw;
    GRID_LOOP(I, idx, total) {
        I iw = idx % w, t = idx / w, ih = t % h;
        t /= h;
        I ch = t % c, i = t / c;
        /* image i's patch matrix, from the rows of channel ch */
        const float *src = cols + ((int64_t)i * c_ + ch) * kk * ohw;
        float acc = 0.0f;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            int64_t th = (int64_t)ih + g.ph - ky * g.dh;   /* = oy * sh */
            if (th < 0) break;                              /* decreases with ky */
            if (th % g.sh) continue;
            int64_t oy = th / g.sh;
            if (oy >= g.oh) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                int64_t tw = (int64_t)iw + g.pw - kx * g.dw;
                if (tw < 0) break;
                if (tw % g.sw) continue;
                int64_t ox = tw / g.sw;
                if (ox >= g.ow) continue;
                acc += src[(ky * g.kw + kx) * ohw + oy * g.ow + ox];
            }
        }
        dx[idx] = acc;
    }
}

template <typename I>
__global__ void pack_kernel(float *__restrict__ dst, const float *__restrict__ dy, cuk_str s,
                            cuk_win g, int64_t n0, int64_t nb_, int64_t total_) {
    const I total = (I)total_, nb = (I)nb_, ow = (I)g.ow, ohw = (I)(g.oh * g.ow);
    GRID_LOOP(I, idx, total) {
        I p = idx % ohw, t = idx / ohw, i = t % nb, o = t / nb;
        I oy = p / ow, ox = p - oy * ow;
        dst[idx] = dy[(n0 + (int64_t)i) * s.n + (int64_t)o * s.c + (int64_t)oy * s.h +
                      (int64_t)ox * s.w];
    }
}

/* ---- pools ---- */

__device__ __forceinline__ bool beats(float v, float best) {
    return v > best || (v != v && best == best);   /* greater, or the first NaN */
}

/* The tap kh*KW + kw of the first max of window (oy, ox) of a plane (-1 if the window holds
 * no position), its value in *best. */
__device__ __forceinline__ int64_t window_argmax(const float *plane, cuk_str s, const cuk_win &g,
                                                 int64_t oy, int64_t ox, float *best_out) {
    int64_t best_tap = -1;
    float best = 0.0f;
    for (int64_t ky = 0; ky < g.kh; ky++) {
        int64_t ih = oy * g.sh - g.ph + ky * g.dh;
        if (ih < 0 || ih >= g.h) continue;
        for (int64_t kx = 0; kx < g.kw; kx++) {
            int64_t iw = ox * g.sw - g.pw + kx * g.dw;
            if (iw < 0 || iw >= g.w) continue;
            float v = plane[ih * s.h + iw * s.w];
            if (best_tap < 0 || beats(v, best)) {
                best = v;
                best_tap = ky * g.kw + kx;
            }
        }
    }
    *best_out = best;
    return best_tap;
}

/* Output element idx -> its plane (image, channel) and window (oy, ox). */
template <typename I>
__device__ __forceinline__ void split_out(I idx, const cuk_win &g, I c, I *n, I *ch, int64_t *oy,
                                          int64_t *ox) {
    const I ow = (I)g.ow, oh = (I)g.oh;
    I t = idx / ow;
    *ox = (int64_t)(idx - t * ow);
    I pl = t / oh;
    *oy = (int64_t)(t - pl * oh);
    *n = pl / c;
    *ch = pl - *n * c;
}

template <typename I>
__device__ __forceinline__ void split_in(I idx, const cuk_win &g, I c, I *n, I *ch, int64_t *ih,
                                         int64_t *iw) {
    const I w = (I)g.w, h = (I)g.h;
    I t = idx / w;
    *iw = (int64_t)(idx - t * w);
    I pl = t / h;
    *ih = (int64_t)(t - pl * h);
    *n = pl / c;
    *ch = pl - *n * c;
}

template <typename I>
__global__ void max_forward_kernel(float *__restrict__ y, const float *__restrict__ x, cuk_str xs,
                                   cuk_win g, int64_t c_, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t oy, ox;
        split_out(idx, g, c, &n, &ch, &oy, &ox);
        float best;
        int64_t tap = window_argmax(x + (int64_t)n * xs.n + (int64_t)ch * xs.c, xs, g, oy, ox, &best);
        y[idx] = tap < 0 ? -__uint_as_float(0x7f800000u) : best;
    }
}

template <typename I>
__global__ void max_taps_kernel(int32_t *__restrict__ taps, const float *__restrict__ x, cuk_str xs,
                                cuk_win g, int64_t c_, int positive, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t oy, ox;
        split_out(idx, g, c, &n, &ch, &oy, &ox);
        float best;
        int64_t tap = window_argmax(x + (int64_t)n * xs.n + (int64_t)ch * xs.c, xs, g, oy, ox, &best);
        taps[idx] = tap >= 0 && (!positive || best > 0.0f) ? (int32_t)tap : -1;
    }
}

/* Windows covering input row ih are oy = (ih + ph - ky*dh) / sh for the ky where that divides;
 * ky from KH-1 down gives them in increasing oy (and likewise kx, ox): row-major window order. */
template <typename I>
__global__ void max_backward_kernel(float *__restrict__ dx, const int32_t *__restrict__ taps,
                                    const float *__restrict__ dy, cuk_str ds, cuk_win g,
                                    int64_t c_, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    const int64_t ohw = g.oh * g.ow;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t ih, iw;
        split_in(idx, g, c, &n, &ch, &ih, &iw);
        const int32_t *tp = taps + ((int64_t)n * c_ + ch) * ohw;
        const float *dp = dy + (int64_t)n * ds.n + (int64_t)ch * ds.c;
        float acc = 0.0f;
        for (int64_t ky = g.kh - 1; ky >= 0; ky--) {
            int64_t th = ih + g.ph - ky * g.dh;
            if (th < 0 || th % g.sh) continue;
            int64_t oy = th / g.sh;
            if (oy >= g.oh) break;                          /* grows as ky falls */
            for (int64_t kx = g.kw - 1; kx >= 0; kx--) {
                int64_t tw = iw + g.pw - kx * g.dw;
                if (tw < 0 || tw % g.sw) continue;
                int64_t ox = tw / g.sw;
                if (ox >= g.ow) break;
                if (tp[oy * g.ow + ox] == ky * g.kw + kx) acc += dp[oy * ds.h + ox * ds.w];
            }
        }
        dx[idx] = acc;
    }
}

template <typename I>
__global__ void max_gather_kernel(float *__restrict__ y, const float *__restrict__ x, cuk_str xs,
                                  const float *__restrict__ h, cuk_str hs, cuk_win g, int64_t c_,
                                  int positive, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t oy, ox;
        split_out(idx, g, c, &n, &ch, &oy, &ox);
        float best;
        int64_t tap = window_argmax(x + (int64_t)n * xs.n + (int64_t)ch * xs.c, xs, g, oy, ox, &best);
        float v = 0.0f;
        if (tap >= 0 && (!positive || best > 0.0f)) {
            int64_t ky = tap / g.kw, kx = tap - ky * g.kw;
            int64_t ih = oy * g.sh - g.ph + ky * g.dh, iw = ox * g.sw - g.pw + kx * g.dw;
            v = h[(int64_t)n * hs.n + (int64_t)ch * hs.c + ih * hs.h + iw * hs.w];
        }
        y[idx] = v;
    }
}

/* Positions of window o along one axis that lie inside [0, in). */
__device__ __forceinline__ int64_t valid_taps(int64_t o, int64_t s, int64_t p, int64_t k,
                                              int64_t d, int64_t in) {
    int64_t cnt = 0;
    for (int64_t j = 0; j < k; j++) {
        int64_t i = o * s - p + j * d;
        cnt += i >= 0 && i < in;
    }
    return cnt;
}

template <typename I>
__global__ void avg_forward_kernel(float *__restrict__ y, const float *__restrict__ x, cuk_str xs,
                                   cuk_win g, int64_t c_, int count_pad, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t oy, ox;
        split_out(idx, g, c, &n, &ch, &oy, &ox);
        const float *plane = x + (int64_t)n * xs.n + (int64_t)ch * xs.c;
        float s = 0.0f;
        int64_t cnt = 0;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            int64_t ih = oy * g.sh - g.ph + ky * g.dh;
            if (ih < 0 || ih >= g.h) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                int64_t iw = ox * g.sw - g.pw + kx * g.dw;
                if (iw < 0 || iw >= g.w) continue;
                s += plane[ih * xs.h + iw * xs.w];
                cnt++;
            }
        }
        float div = count_pad ? (float)(g.kh * g.kw) : (float)cnt;
        y[idx] = div > 0.0f ? s / div : 0.0f;
    }
}

template <typename I>
__global__ void avg_backward_kernel(float *__restrict__ dx, const float *__restrict__ dy, cuk_str ds,
                                    cuk_win g, int64_t c_, int count_pad, int64_t total_) {
    const I total = (I)total_, c = (I)c_;
    GRID_LOOP(I, idx, total) {
        I n, ch;
        int64_t ih, iw;
        split_in(idx, g, c, &n, &ch, &ih, &iw);
        const float *dp = dy + (int64_t)n * ds.n + (int64_t)ch * ds.c;
        float acc = 0.0f;
        for (int64_t ky = g.kh - 1; ky >= 0; ky--) {
            int64_t th = ih + g.ph - ky * g.dh;
            if (th < 0 || th % g.sh) continue;
            int64_t oy = th / g.sh;
            if (oy >= g.oh) break;
            int64_t rows = count_pad ? 0 : valid_taps(oy, g.sh, g.ph, g.kh, g.dh, g.h);
            for (int64_t kx = g.kw - 1; kx >= 0; kx--) {
                int64_t tw = iw + g.pw - kx * g.dw;
                if (tw < 0 || tw % g.sw) continue;
                int64_t ox = tw / g.sw;
                if (ox >= g.ow) break;
                float div = count_pad ? (float)(g.kh * g.kw)
                                      : (float)(rows * valid_taps(ox, g.sw, g.pw, g.kw, g.dw, g.w));
                if (div > 0.0f) acc += dp[oy * ds.h + ox * ds.w] / div;
            }
        }
        dx[idx] = acc;
    }
}

}  // namespace

extern "C" {

void cuk_conv_im2col(float *cols, const float *x, cuk_str xs, cuk_win g, int64_t n0, int64_t nb,
                     int64_t c, int wide, void *stream) {
    int64_t total = nb * c * g.kh * g.kw * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(im2col_kernel, total, stream, cols, x, xs, g, n0, nb, c, wide, total);
}

void cuk_conv_col2im(float *dx, const float *cols, cuk_win g, int64_t nb, int64_t c, void *stream) {
    int64_t total = nb * c * g.h * g.w;
    if (total <= 0) return;
    LAUNCH(col2im_kernel, total, stream, dx, cols, g, c, total);
}

void cuk_conv_pack(float *dst, const float *dy, cuk_str s, cuk_win g, int64_t n0, int64_t nb,
                   int64_t o, void *stream) {
    int64_t total = o * nb * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(pack_kernel, total, stream, dst, dy, s, g, n0, nb, total);
}

void cuk_pool_max_forward(float *y, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                          int64_t c, void *stream) {
    int64_t total = planes * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(max_forward_kernel, total, stream, y, x, xs, g, c, total);
}

void cuk_pool_max_taps(int32_t *tap, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                       int64_t c, int positive, void *stream) {
    int64_t total = planes * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(max_taps_kernel, total, stream, tap, x, xs, g, c, positive, total);
}

void cuk_pool_max_backward(float *dx, const int32_t *tap, const float *dy, cuk_str dys,
                           cuk_win g, int64_t planes, int64_t c, void *stream) {
    int64_t total = planes * g.h * g.w;
    if (total <= 0) return;
    LAUNCH(max_backward_kernel, total, stream, dx, tap, dy, dys, g, c, total);
}

void cuk_pool_max_gather(float *y, const float *x, cuk_str xs, const float *h, cuk_str hs,
                         cuk_win g, int64_t planes, int64_t c, int positive, void *stream) {
    int64_t total = planes * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(max_gather_kernel, total, stream, y, x, xs, h, hs, g, c, positive, total);
}

void cuk_pool_avg_forward(float *y, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                          int64_t c, int count_pad, void *stream) {
    int64_t total = planes * g.oh * g.ow;
    if (total <= 0) return;
    LAUNCH(avg_forward_kernel, total, stream, y, x, xs, g, c, count_pad, total);
}

void cuk_pool_avg_backward(float *dx, const float *dy, cuk_str dys, cuk_win g, int64_t planes,
                           int64_t c, int count_pad, void *stream) {
    int64_t total = planes * g.h * g.w;
    if (total <= 0) return;
    LAUNCH(avg_backward_kernel, total, stream, dx, dy, dys, g, c, count_pad, total);
}

}  // extern "C"
