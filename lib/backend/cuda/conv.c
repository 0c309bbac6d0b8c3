/* GPU kernels of the window primitives CONV, POOL_MAX, POOL_AVG (geometry, modes and params
 * in lib/ops/conv.h; the CPU's in lib/backend/cpu/conv.c and pool.c). Float32 only: the
 * constructor casts every operand to float32 (float16 / bfloat16 are cast back after).
 *
 * CONV: im2col into scratch, then cuBLAS GEMMs (R = C/groups*KH*KW, per group g):
 *   FORWARD      y_g[i]  = W_g [Og, R] @ cols_g[i] [R, OH*OW]   per image i, into y
 *   INPUT_GRAD   cols_g[i] = W_g^T @ dy_g[i], then col2im (a gather: one thread per element
 *                of dx summing the patch entries that cover it) writes dx
 *   WEIGHT_GRAD  dW_g = dy_g [Og, n*OH*OW] @ cols_g^T   (cols laid out [C*KK, n*OH*OW] and
 *                dy packed [O, n*OH*OW], so the images sum inside one GEMM's K)
 * The per-image GEMMs go as one strided-batched call over the images of a chunk per group,
 * or over the groups per image when there are more groups (depthwise). Images are taken in
 * chunks whose scratch stays under CONV_SCRATCH bytes (the WEIGHT_GRAD chunks accumulate
 * with beta 1). A 1x1 stride-1 unpadded conv over a dense x (FORWARD) or into dx
 * (INPUT_GRAD) skips im2col / col2im: the patch matrix of an image is the image.
 *
 * Pools (conv.cu): one thread per output element; the input gradients one thread per input
 * element (max pool's argmax taps first, into scratch), no atomics. */
#include <cublas_v2.h>
#include <limits.h>
#include <stdbool.h>
#include "cuda.h"
#include "conv.h"
#include "../../ops/conv.h"

#define CONV_SCRATCH ((int64_t)256 << 20)   /* bytes of patches (+ packed dy) per chunk */

static cuk_win win_of(const lz_window *w) {
    return (cuk_win){.h = w->in[0], .w = w->in[1], .oh = lz_window_out(w, 0),
                     .ow = lz_window_out(w, 1), .kh = w->kernel[0], .kw = w->kernel[1],
                     .sh = w->stride[0], .sw = w->stride[1], .ph = w->pad_lo[0],
                     .pw = w->pad_lo[1], .dh = w->dilation[0], .dw = w->dilation[1]};
}

/* Strides of an [N, C, (H,) W] operand; a 3-d one has H = 1. */
static cuk_str str_of(const lz_array *a) {
    if (a->ndim == 4)
        return (cuk_str){a->strides[0], a->strides[1], a->strides[2], a->strides[3]};
    return (cuk_str){a->strides[0], a->strides[1], 0, a->strides[2]};
}

static const char *win_name(lz_prim_id prim, int nsp) {
    if (prim == LZ_P_CONV) return nsp == 2 ? "conv2d" : "conv1d";
    if (prim == LZ_P_POOL_MAX) return nsp == 2 ? "max_pool2d" : "max_pool1d";
    return nsp == 2 ? "avg_pool2d" : "avg_pool1d";
}

/* Row-major C[m, n] (ldc) = op(A)[m, k] @ op(B)[k, n] + beta C, `batch` times with the
 * operands sa, sb, sc floats apart. cuBLAS is column-major: the same memory read there is
 * C^T = op(B)^T op(A)^T, so B goes first. */
static cublasStatus_t gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                           float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    cublasHandle_t h = (cublasHandle_t)cu_blas();
    const float one = 1.0f;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        return cublasSgemm(h, opb, opa, (int)n, (int)m, (int)k, &one, b, (int)ldb, a, (int)lda,
                           &beta, c, (int)ldc);
    return cublasSgemmStridedBatched(h, opb, opa, (int)n, (int)m, (int)k, &one, b, (int)ldb, sb,
                                     a, (int)lda, sa, &beta, c, (int)ldc, sc, (int)batch);
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static int conv_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    lz_window win = lz_window_of(p);
    cuk_win g = win_of(&win);
    int mode = win.mode;
    const char *op = win_name(LZ_P_CONV, win.nsp);
    /* x: the forward input (FORWARD, WEIGHT_GRAD); dy: the forward output's cotangent */
    lz_array *xa = mode == LZ_WIN_INPUT_GRAD ? NULL : in[0];
    lz_array *dya = mode == LZ_WIN_FORWARD ? NULL : mode == LZ_WIN_INPUT_GRAD ? in[0] : in[1];
    lz_array *wa = mode == LZ_WIN_WEIGHT_GRAD ? NULL : in[1];
    int64_t n = mode == LZ_WIN_WEIGHT_GRAD ? xa->shape[0] : out->shape[0];
    int64_t c = mode == LZ_WIN_INPUT_GRAD ? out->shape[1] : xa->shape[1];
    int64_t o = mode == LZ_WIN_FORWARD ? out->shape[1]
              : mode == LZ_WIN_INPUT_GRAD ? dya->shape[1] : out->shape[0];
    int64_t groups = win.groups, cg = c / groups, og = o / groups;
    int64_t kk = g.kh * g.kw, r = cg * kk, ohw = g.oh * g.ow, hw = g.h * g.w;
    int64_t out_size = lz_size(out);
    uint64_t flops = (uint64_t)(2 * n * o * ohw * r);
    uint64_t bytes = (uint64_t)(n * c * hw + o * r + n * o * ohw) * 4;
    float *y = cu_ptr(out);
    if (!out_size) return cu_done(op, out, 0, bytes, flops);
    if (!flops) {
        cudaError_t e = cudaMemsetAsync(y, 0, (size_t)out_size * 4, cu_stream);
        if (e != cudaSuccess) return cu_fail(op, out, e);
        return cu_done(op, out, 1, bytes, flops);
    }
    bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && !g.ph && !g.pw &&
                     !win.pad_hi[0] && !win.pad_hi[1];
    bool direct = pointwise && (mode == LZ_WIN_INPUT_GRAD ||
                                (mode == LZ_WIN_FORWARD && lz_is_contiguous(xa)));
    /* scratch per image: the patches, and for WEIGHT_GRAD the packed dy */
    int64_t per_image = direct ? 0 : c * kk * ohw;
    if (mode == LZ_WIN_WEIGHT_GRAD) per_image += o * ohw;
    int64_t nb = per_image ? CONV_SCRATCH / (4 * per_image) : n;
    if (nb < 1) nb = 1;
    if (nb > n) nb = n;
    int64_t ncol_max = mode == LZ_WIN_WEIGHT_GRAD ? nb * ohw : ohw;
    if (!fits_int(og) || !fits_int(r) || !fits_int(ohw) || !fits_int(ncol_max) ||
        !fits_int(groups) || !fits_int(nb)) {
        lz_fail("%s: a GEMM dimension past 2^31 is not supported on the GPU yet", op);
        return -1;
    }

    lz_buffer *tmp_w = NULL, *tmp_dy = NULL, *scratch = NULL;
    const float *w = NULL, *dy = NULL, *x = xa ? cu_ptr(xa) : NULL;
    cuk_str xs = xa ? str_of(xa) : (cuk_str){0}, dys = dya ? str_of(dya) : (cuk_str){0};
    int rc = 0, nk = 0;
    if (wa && !(w = cu_contiguous(wa, &tmp_w))) rc = -1;
    if (!rc && mode == LZ_WIN_INPUT_GRAD && !(dy = cu_contiguous(dya, &tmp_dy))) rc = -1;
    if (mode == LZ_WIN_WEIGHT_GRAD) dy = cu_ptr(dya);   /* read through its strides (pack) */
    if (!rc && per_image && !(scratch = cu_scratch((size_t)(nb * per_image) * 4))) rc = -1;
    float *cols = scratch ? scratch->dev : NULL;
    cudaStream_t s = cu_stream;
    int64_t img_cols = c * kk * ohw;         /* one image's patch matrix (= C*HW when direct) */

    for (int64_t n0 = 0; n0 < n && !rc; n0 += nb) {
        int64_t b = n - n0 < nb ? n - n0 : nb;
        cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
        if (mode == LZ_WIN_FORWARD) {
            const float *src = cols;
            if (direct) src = x + n0 * c * hw;
            else { cuk_conv_im2col(cols, x, xs, g, n0, b, c, 0, s); nk++; }
            float *yc = y + n0 * o * ohw;
            if (b >= groups)
                for (int64_t gi = 0; gi < groups && !st; gi++, nk++)
                    st = gemm(false, false, og, ohw, r, w + gi * og * r, r, 0, src + gi * r * ohw,
                              ohw, img_cols, 0.0f, yc + gi * og * ohw, ohw, o * ohw, b);
            else
                for (int64_t i = 0; i < b && !st; i++, nk++)
                    st = gemm(false, false, og, ohw, r, w, r, og * r, src + i * img_cols, ohw,
                              r * ohw, 0.0f, yc + i * o * ohw, ohw, og * ohw, groups);
        } else if (mode == LZ_WIN_INPUT_GRAD) {
            float *dst = direct ? y + n0 * c * hw : cols;
            const float *dyc = dy + n0 * o * ohw;
            if (b >= groups)
                for (int64_t gi = 0; gi < groups && !st; gi++, nk++)
                    st = gemm(true, false, r, ohw, og, w + gi * og * r, r, 0, dyc + gi * og * ohw,
                              ohw, o * ohw, 0.0f, dst + gi * r * ohw, ohw, img_cols, b);
            else
                for (int64_t i = 0; i < b && !st; i++, nk++)
                    st = gemm(true, false, r, ohw, og, w, r, og * r, dyc + i * o * ohw, ohw,
                              og * ohw, 0.0f, dst + i * img_cols, ohw, r * ohw, groups);
            if (!st && !direct) { cuk_conv_col2im(y + n0 * c * hw, cols, g, b, c, s); nk++; }
        } else {
            int64_t ncol = b * ohw;
            float *dyp = cols + b * img_cols;
            cuk_conv_im2col(cols, x, xs, g, n0, b, c, 1, s);
            cuk_conv_pack(dyp, dy, dys, g, n0, b, o, s);
            nk += 2;
            st = gemm(false, true, og, r, ncol, dyp, ncol, og * ncol, cols, ncol, r * ncol,
                      n0 ? 1.0f : 0.0f, y, r, og * r, groups);
            nk++;
        }
        if (st != CUBLAS_STATUS_SUCCESS) {
            lz_fail("%s: cuBLAS error %d (%s)", op, (int)st, cublasGetStatusString(st));
            rc = -1;
        }
    }
    if (!rc) rc = cu_done(op, out, nk, bytes, flops);
    lz_buffer_release(scratch);
    lz_buffer_release(tmp_w);
    lz_buffer_release(tmp_dy);
    return rc;
}

static int pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p, bool is_max) {
    lz_window win = lz_window_of(p);
    cuk_win g = win_of(&win);
    int mode = win.mode;
    const char *op = win_name(is_max ? LZ_P_POOL_MAX : LZ_P_POOL_AVG, win.nsp);
    int64_t c = out->shape[1], planes = out->shape[0] * c, ohw = g.oh * g.ow, hw = g.h * g.w;
    uint64_t bytes = (uint64_t)(planes * (2 * hw + ohw)) * 4;
    if (!lz_size(out)) return cu_done(op, out, 0, bytes, 0);
    float *y = cu_ptr(out);
    const float *a = cu_ptr(in[0]);
    cuk_str as = str_of(in[0]);
    cudaStream_t s = cu_stream;
    if (!is_max) {
        int count_pad = win.count_pad != 0;
        if (mode == LZ_WIN_FORWARD) cuk_pool_avg_forward(y, a, as, g, planes, c, count_pad, s);
        else cuk_pool_avg_backward(y, a, as, g, planes, c, count_pad, s);
        return cu_done(op, out, 1, bytes, 0);
    }
    if (mode == LZ_WIN_FORWARD) {
        cuk_pool_max_forward(y, a, as, g, planes, c, s);
        return cu_done(op, out, 1, bytes, 0);
    }
    int positive = win.positive != 0;
    const float *b = cu_ptr(in[1]);
    cuk_str bs = str_of(in[1]);
    if (mode == LZ_WIN_GATHER) {
        cuk_pool_max_gather(y, a, as, b, bs, g, planes, c, positive, s);
        return cu_done(op, out, 1, bytes, 0);
    }
    if (g.kh * g.kw > INT32_MAX) {
        lz_fail("%s: a window of more than 2^31 positions is not supported on the GPU yet", op);
        return -1;
    }
    lz_buffer *taps = cu_scratch((size_t)(planes * ohw) * sizeof(int32_t));
    if (!taps) return -1;
    cuk_pool_max_taps(taps->dev, a, as, g, planes, c, positive, s);
    cuk_pool_max_backward(y, taps->dev, b, bs, g, planes, c, s);
    int rc = cu_done(op, out, 2, bytes, 0);
    lz_buffer_release(taps);
    return rc;
}

static int max_pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return pool_kernel(out, in, p, true);
}

static int avg_pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return pool_kernel(out, in, p, false);
}

void cuda_register_conv(void) {
    lz_prims[LZ_P_CONV].gpu = conv_kernel;
    lz_prims[LZ_P_POOL_MAX].gpu = max_pool_kernel;
    lz_prims[LZ_P_POOL_AVG].gpu = avg_pool_kernel;
}
