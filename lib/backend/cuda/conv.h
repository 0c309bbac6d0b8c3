/* Launchers of conv.cu: the window primitives' kernels (CONV's im2col / col2im / dy packing
 * around cuBLAS GEMMs, and the max / avg pools), in plain C. All operands float32; strided
 * inputs are read through their strides, outputs are dense. Each launches on `stream` (a
 * cudaStream_t) and returns at once; the caller checks the launch (cu_done). */
#ifndef LZ_CUDA_CONV_H
#define LZ_CUDA_CONV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The geometry of a window op (lib/ops/conv.h): input H, W, output OH, OW, kernel, stride,
 * padding before, dilation (1-d: H = OH = KH = 1). */
typedef struct { int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw; } cuk_win;
/* Element strides of an [N, C, H, W] operand (a 3-d one has h = 0). */
typedef struct { int64_t n, c, h, w; } cuk_str;

/* Patches of images [n0, n0+nb) of x (C channels) into cols. wide 0: per image
 * [C*KH*KW, OH*OW], images one after the other; wide 1: [C*KH*KW, nb*OH*OW] (column
 * i*OH*OW + p). */
void cuk_conv_im2col(float *cols, const float *x, cuk_str xs, cuk_win g, int64_t n0,
                     int64_t nb, int64_t c, int wide, void *stream);
/* dx [nb, C, H, W] (dense) = the sum of the per-image patches cols (wide 0 layout) over the
 * windows covering each element: one thread per element of dx, no atomics. */
void cuk_conv_col2im(float *dx, const float *cols, cuk_win g, int64_t nb, int64_t c,
                     void *stream);
/* Images [n0, n0+nb) of dy (strided [N, O, OH, OW]) into dst [O, nb*OH*OW]. */
void cuk_conv_pack(float *dst, const float *dy, cuk_str s, cuk_win g, int64_t n0, int64_t nb,
                   int64_t o, void *stream);

/* Pools over `planes` = N*C planes (c = C splits a plane index into image and channel).
 * Max: first max of a window in row-major order, a NaN wins, -inf for a window of padding
 * only. `positive`: only windows whose max is > 0 count (others give 0). */
void cuk_pool_max_forward(float *y, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                          int64_t c, void *stream);
/* tap[window] = kh*KW + kw of its argmax, or -1 (no position, or not > 0 with positive). */
void cuk_pool_max_taps(int32_t *tap, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                       int64_t c, int positive, void *stream);
/* dx [N, C, H, W] (dense): each element the sum of dy over the windows whose tap is it. */
void cuk_pool_max_backward(float *dx, const int32_t *tap, const float *dy, cuk_str dys,
                           cuk_win g, int64_t planes, int64_t c, void *stream);
/* y [N, C, OH, OW] (dense): h (shape of x) read at each window's argmax in x. */
void cuk_pool_max_gather(float *y, const float *x, cuk_str xs, const float *h, cuk_str hs,
                         cuk_win g, int64_t planes, int64_t c, int positive, void *stream);
/* Avg: the window's sum over KH*KW (count_pad) or over its non-padding positions. */
void cuk_pool_avg_forward(float *y, const float *x, cuk_str xs, cuk_win g, int64_t planes,
                          int64_t c, int count_pad, void *stream);
/* dx [N, C, H, W] (dense): each element the sum of dy[w] / divisor[w] over covering windows. */
void cuk_pool_avg_backward(float *dx, const float *dy, cuk_str dys, cuk_win g, int64_t planes,
                           int64_t c, int count_pad, void *stream);

#ifdef __cplusplus
}
#endif

#endif
