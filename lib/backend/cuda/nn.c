/* GPU entries of the nn family: SOFTMAX, LOG_SOFTMAX (any axis, any input layout), LAYER_NORM,
 * RMS_NORM (last axis, any input layout) and NORM_GRAD (their backward). The kernels are in
 * nn.cu; here the arrays are unpacked into a row map (where each row starts in the input and
 * the output) and the launches are counted as the CPU counts them (lib/backend/cpu/nn.c,
 * norm_grad.c). Inputs are float32 (the constructors in lib/ops/nn.c cast to it). */
#include <stdlib.h>
#include "cuda.h"
#include "nn.h"

static int sm_count(void) {
    return cu_props.multiProcessorCount > 0 ? cu_props.multiProcessorCount : 1;
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

/* The rows of `in` along `axis` (every index of the other dims), for in and out: dims of
 * size 1 dropped, the others ordered by decreasing |input stride| (neighbouring rows are
 * neighbours in the input where possible), then merged where a pair of dims walks both
 * arrays as one dim would. Returns the number of rows. */
static int64_t row_map(cuk_rowmap *m, const lz_array *in, const lz_array *out, int axis) {
    m->nd = 0;
    int64_t rows = 1;
    for (int d = 0; d < in->ndim; d++) {
        if (d == axis || in->shape[d] == 1) continue;
        int64_t st = in->strides[d], ast = abs64(st);
        int k = m->nd++;
        while (k > 0 && abs64(m->in_st[k - 1]) < ast) {   /* stable: equal strides keep order */
            m->size[k] = m->size[k - 1];
            m->in_st[k] = m->in_st[k - 1];
            m->out_st[k] = m->out_st[k - 1];
            k--;
        }
        m->size[k] = in->shape[d];
        m->in_st[k] = st;
        m->out_st[k] = out->strides[d];
        rows *= in->shape[d];
    }
    int nd = 0;
    for (int d = 0; d < m->nd; d++) {
        if (nd > 0 && m->in_st[nd - 1] == m->in_st[d] * m->size[d] &&
            m->out_st[nd - 1] == m->out_st[d] * m->size[d]) {
            /* dim nd - 1 (outer) and d (inner) are one dim of their product */
            m->size[nd - 1] *= m->size[d];
            m->in_st[nd - 1] = m->in_st[d];
            m->out_st[nd - 1] = m->out_st[d];
            continue;
        }
        m->size[nd] = m->size[d];
        m->in_st[nd] = m->in_st[d];
        m->out_st[nd] = m->out_st[d];
        nd++;
    }
    m->nd = nd;
    return rows;
}

/* A float32 [n] operand (weight, bias) as a contiguous device pointer; *tmp to release. */
static const float *vec_ptr(const char *op, lz_array *a, lz_buffer **tmp) {
    *tmp = NULL;
    if (a->dtype != LZ_F32) {
        lz_fail("%s: a weight or bias of dtype %s is not supported on the GPU yet", op,
                lz_dtype_name(a->dtype));
        return NULL;
    }
    return cu_contiguous(a, tmp);
}

/* Runs op over every row of x along axis into out. w, b: the norms' affine operands.
 * extra: their bytes, for the counters. */
static int run_rows(const char *name, int op, lz_array *out, lz_array *x, int axis,
                    const float *w, const float *b, double eps, uint64_t extra) {
    if (x->dtype != LZ_F32 || out->dtype != LZ_F32) {
        lz_fail("%s: dtype %s is not supported on the GPU yet (float32 only)", name,
                lz_dtype_name(x->dtype));
        return -1;
    }
    int64_t total = lz_size(out);
    uint64_t bytes = 2 * (uint64_t)total * 4 + extra;
    if (total == 0) return cu_done(name, out, 0, bytes, 0);
    int64_t n = x->ndim ? x->shape[axis] : 1;
    int64_t sx = x->ndim && n > 1 ? x->strides[axis] : 1;   /* a row of 1 is contiguous */
    int64_t sy = out->ndim && n > 1 ? out->strides[axis] : 1;
    cuk_rowmap m;
    int64_t rows = row_map(&m, x, out, axis);
    cuk_nn_rows(op, cu_ptr(x), cu_ptr(out), &m, rows, n, sx, sy, w, b, eps, sm_count(),
                cu_stream);
    return cu_done(name, out, 1, bytes, 0);
}

static int softmax_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return run_rows("softmax", CUK_SOFTMAX, out, in[0], (int)p->i[0], NULL, NULL, 0, 0);
}

static int log_softmax_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return run_rows("log_softmax", CUK_LOG_SOFTMAX, out, in[0], (int)p->i[0], NULL, NULL, 0, 0);
}

/* LAYER_NORM (rms 0) and RMS_NORM (rms 1): inputs x [, weight] [, bias (layer only)]. */
static int norm_gpu(const char *name, int rms, lz_array *out, lz_array *const *in,
                    const lz_params *p) {
    lz_buffer *tw = NULL, *tb = NULL;
    const float *w = NULL, *b = NULL;
    int k = 1, rc = -1;
    if (out->ndim == 0) {
        lz_fail("%s: x must have at least one dimension", name);
        return -1;
    }
    if (p->i[0] && !(w = vec_ptr(name, in[k++], &tw))) goto done;
    if (!rms && p->i[1] && !(b = vec_ptr(name, in[k++], &tb))) goto done;
    uint64_t extra = (uint64_t)(k - 1) * (uint64_t)out->shape[out->ndim - 1] * 4;
    rc = run_rows(name, rms ? CUK_RMS_NORM : CUK_LAYER_NORM, out, in[0], out->ndim - 1, w, b,
                  p->f[0], extra);
done:
    if (tw) lz_buffer_release(tw);
    if (tb) lz_buffer_release(tb);
    return rc;
}

static int layer_norm_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return norm_gpu("layer_norm", 0, out, in, p);
}

static int rms_norm_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return norm_gpu("rms_norm", 1, out, in, p);
}

/* NORM_GRAD: x, ct [R, N] float32 [, weight [N]] -> [R + 2, N]: dx, d weight, d bias. */
static int norm_grad_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const char *name = "norm_grad";
    int64_t n = out->shape[1], rows = out->shape[0] - 2;
    int layer = !p->i[2], has_w = p->i[0] != 0, has_b = layer && p->i[1];
    uint64_t bytes = 4 * (uint64_t)(3 * rows * n + 3 * n);
    if (n == 0) return cu_done(name, out, 0, bytes, 0);
    if (in[0]->dtype != LZ_F32 || in[1]->dtype != LZ_F32 || out->dtype != LZ_F32) {
        lz_fail("%s: dtype %s is not supported on the GPU yet (float32 only)", name,
                lz_dtype_name(in[0]->dtype));
        return -1;
    }
    lz_buffer *tx = NULL, *tc = NULL, *tw = NULL, *part = NULL;
    const float *x = NULL, *ct = NULL, *w = NULL;
    int rc = -1;
    if (!(x = cu_contiguous(in[0], &tx)) || !(ct = cu_contiguous(in[1], &tc))) goto done;
    if (has_w && !(w = vec_ptr(name, in[2], &tw))) goto done;
    /* threads per row by row length; chunks of ch rows, enough of them to fill the device
     * (about half its resident threads), none shorter than a few rows so that the partial
     * sums (2N floats a chunk) stay small beside x and ct */
    int tpr = n <= 2048 ? 32 : n <= 8192 ? 256 : 1024;
    int64_t target = (int64_t)sm_count() * (2048 / tpr) / 2, min_ch = tpr == 32 ? 16 : 4;
    if (target < 1) target = 1;
    int64_t ch = (rows + target - 1) / target;
    if (ch < min_ch) ch = min_ch;
    int64_t nchunks = rows > 0 ? (rows + ch - 1) / ch : 0;
    if (!(part = cu_scratch((size_t)(nchunks * 2 * n) * sizeof(float)))) goto done;
    cuk_norm_grad(x, ct, w, cu_ptr(out), part->dev, rows, n, ch, nchunks, tpr, p->f[0], layer,
                  has_w, has_b, sm_count(), cu_stream);
    rc = cu_done(name, out, rows > 0 ? 2 : 1, bytes, 0);
done:
    if (tx) lz_buffer_release(tx);
    if (tc) lz_buffer_release(tc);
    if (tw) lz_buffer_release(tw);
    if (part) lz_buffer_release(part);
    return rc;
}

void cuda_register_nn(void) {
    lz_prims[LZ_P_SOFTMAX].gpu = softmax_gpu;
    lz_prims[LZ_P_LOG_SOFTMAX].gpu = log_softmax_gpu;
    lz_prims[LZ_P_LAYER_NORM].gpu = layer_norm_gpu;
    lz_prims[LZ_P_RMS_NORM].gpu = rms_norm_gpu;
    lz_prims[LZ_P_NORM_GRAD].gpu = norm_grad_gpu;
}
