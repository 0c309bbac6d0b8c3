/* Neural-network kernels: softmax, log-softmax, layer norm, RMS norm, attention. Each is one
 * primitive with a fused CPU kernel (lib/backend/cpu/nn.c, attention.c); the constructors
 * only check shapes, pick dtypes and build the node.
 *
 * Kernels compute in float32. Integer inputs give float32 results; float16/bfloat16 inputs
 * are cast to float32 here, computed, and cast back (the casts are elementwise nodes that
 * fuse with whatever produced or consumes them).
 *
 * Params:
 *   SOFTMAX, LOG_SOFTMAX   i[0] axis (normalised, 0 for a 0-d array)
 *   LAYER_NORM             f[0] eps; i[0] has weight, i[1] has bias;
 *                          inputs x [, weight] [, bias], weight/bias contiguous float32 [N]
 *   RMS_NORM               f[0] eps; i[0] has weight; inputs x [, weight]
 *   NORM_GRAD              their backward (lz_norm_grad): f[0] eps; i[0] has weight,
 *                          i[1] has bias, i[2] 1 for RMS; inputs x and ct as [R, N]
 *                          contiguous float32 [, weight]; output [R + 2, N]: dx, then the
 *                          weight's and the bias's gradient rows.
 *   ATTENTION              f[0] scale (resolved, > 0); i[0] causal; i[1] with_lse;
 *                          inputs q, k, v already broadcast to the output's batch dims,
 *                          float32, with their last two dims in a GEMM-ready layout
 *                          (unit stride along D, row stride >= D).
 *                          with_lse: the output is [..., Tq, Dv + 1], the last column of
 *                          each row holding the row's log-sum-exp of the scaled, masked
 *                          scores (-inf where a query sees no key), for autograd.
 *   ATTENTION_QKV          packed self-attention (lz_attention_qkv): f[0] scale, i[0] causal,
 *                          i[2] heads; one input qkv [..., T, 3 H D], contiguous float32,
 *                          output [..., T, H D].
 *   ATTENTION_QKV_GRAD     its backward (lz_attention_qkv_grad), same params: inputs qkv and
 *                          d out [..., T, H D] (both contiguous), output d qkv [..., T, 3 H D]. */
#include <math.h>
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

/* The dtype a result has: float inputs keep theirs, integers give float32. */
static lz_dtype result_dtype(lz_dtype t) { return lz_dtype_is_float(t) ? t : LZ_F32; }

/* Builds prim over inputs cast to float32 and casts the result to out_t. Inputs are
 * borrowed; returns a new (autoreleased) reference. */
static lz_array *node_f32(lz_prim_id p, int ndim, const int64_t *shape, int n,
                          lz_array *const *xs, const lz_params *params, lz_dtype out_t) {
    bool all_f32 = true;
    for (int i = 0; i < n; i++) all_f32 = all_f32 && xs[i]->dtype == LZ_F32;
    if (all_f32 && out_t == LZ_F32)
        return lz_autorelease(lz_node(p, LZ_F32, ndim, shape, n, xs, params));
    lz_pool_push();
    lz_array *c[4];
    for (int i = 0; i < n; i++) c[i] = lz_astype(xs[i], LZ_F32);
    lz_array *y = lz_autorelease(lz_node(p, LZ_F32, ndim, shape, n, c, params));
    lz_array *r = lz_retain(lz_astype(y, out_t));
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- softmax, log-softmax ---- */
static lz_array *softmax_like(lz_prim_id p, lz_array *a, int axis) {
    if (!a) return NULL;
    int ax = lz_axis(lz_prims[p].name, axis, a->ndim);   /* 0-d: one row of length 1 */
    if (ax < 0) return NULL;
    lz_params pr = {0};
    pr.i[0] = ax;
    return node_f32(p, a->ndim, a->shape, 1, &a, &pr, result_dtype(a->dtype));
}

lz_array *lz_softmax(lz_array *a, int axis) { return softmax_like(LZ_P_SOFTMAX, a, axis); }
lz_array *lz_log_softmax(lz_array *a, int axis) { return softmax_like(LZ_P_LOG_SOFTMAX, a, axis); }

/* ---- layer norm, RMS norm ---- */

/* Checks that a weight/bias is [N] for x's last axis N. */
static int check_affine(const char *op, const char *what, lz_array *x, lz_array *w) {
    int64_t n = x->shape[x->ndim - 1];
    if (w->ndim == 1 && w->shape[0] == n) return 0;
    char sx[160], sw[160];
    lz_shape_str(x, sx, sizeof sx);
    lz_shape_str(w, sw, sizeof sw);
    lz_fail("%s: %s %s does not match the last axis of x %s (expected [%lld])", op, what, sw,
            sx, (long long)n);
    return -1;
}

static lz_array *norm(lz_prim_id p, lz_array *x, lz_array *w, lz_array *b, double eps) {
    const char *op = lz_prims[p].name;
    char sx[160];
    if (x->ndim == 0)
        return lz_fail("%s: x must have at least one dimension, got %s", op,
                       lz_shape_str(x, sx, sizeof sx));
    if (!(eps >= 0)) return lz_fail("%s: eps must be >= 0, got %g", op, eps);
    if ((w && check_affine(op, "weight", x, w)) || (b && check_affine(op, "bias", x, b)))
        return NULL;
    lz_params pr = {0};
    pr.f[0] = eps;
    pr.i[0] = w != NULL;
    pr.i[1] = b != NULL;
    lz_pool_push();
    /* weight and bias are small: the kernel wants them contiguous float32 */
    lz_array *xs[3];
    int n = 0;
    xs[n++] = x;
    if (w) xs[n++] = lz_contiguous(lz_astype(w, LZ_F32));
    if (b) xs[n++] = lz_contiguous(lz_astype(b, LZ_F32));
    lz_array *r = lz_retain(node_f32(p, x->ndim, x->shape, n, xs, &pr, result_dtype(x->dtype)));
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_layer_norm(lz_array *x, lz_array *weight, lz_array *bias, double eps) {
    if (!x) return NULL;
    return norm(LZ_P_LAYER_NORM, x, weight, bias, eps);
}

lz_array *lz_rms_norm(lz_array *x, lz_array *weight, double eps) {
    if (!x) return NULL;
    return norm(LZ_P_RMS_NORM, x, weight, NULL, eps);
}

lz_array *lz_norm_grad(lz_array *x, lz_array *weight, lz_array *ct, double eps, int rms,
                       int has_bias) {
    if (!x || !ct) return NULL;
    const char *op = rms ? "rms_norm_grad" : "layer_norm_grad";
    char sx[160], sc[160];
    if (x->ndim == 0 || ct->ndim != x->ndim ||
        memcmp(ct->shape, x->shape, (size_t)x->ndim * sizeof *x->shape))
        return lz_fail("%s: cotangent %s does not match x %s (at least one dimension)", op,
                       lz_shape_str(ct, sc, sizeof sc), lz_shape_str(x, sx, sizeof sx));
    if (weight && check_affine(op, "weight", x, weight)) return NULL;
    int64_t n = x->shape[x->ndim - 1], shape[2] = {n ? lz_size(x) / n : 0, n};
    lz_params pr = {0};
    pr.f[0] = eps;
    pr.i[0] = weight != NULL;
    pr.i[1] = has_bias != 0 && !rms;
    pr.i[2] = rms != 0;
    lz_pool_push();
    lz_array *in[3] = {lz_reshape(lz_contiguous(lz_astype(x, LZ_F32)), 2, shape),
                       lz_reshape(lz_contiguous(lz_astype(ct, LZ_F32)), 2, shape),
                       weight ? lz_contiguous(lz_astype(weight, LZ_F32)) : NULL};
    lz_array *r = NULL;
    shape[0] += 2;
    if (in[0] && in[1] && (!weight || in[2]))
        r = lz_node(LZ_P_NORM_GRAD, LZ_F32, 2, shape, weight ? 3 : 2, in, &pr);
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- attention ---- */

/* Can the matrix formed by a's last two dims be handed to GEMM as it is? */
static bool gemm_ready(const lz_array *a) {
    int64_t r = a->shape[a->ndim - 2], c = a->shape[a->ndim - 1];
    int64_t sr = a->strides[a->ndim - 2], sc = a->strides[a->ndim - 1];
    return (c <= 1 || sc == 1) && (r <= 1 || sr >= (c > 1 ? c : 1));
}

/* a (float32) broadcast over the batch dims `bshape` (nb of them), its last two dims kept,
 * made GEMM-ready first if needed. New reference in the open pool. */
static lz_array *attn_input(lz_array *a, int nb, const int64_t *bshape) {
    if (!gemm_ready(a)) a = lz_copy(a);
    if (!a) return NULL;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    for (int d = 0; d < nb; d++) {
        int k = d - (nb - (a->ndim - 2));
        shape[d] = bshape[d];
        strides[d] = k < 0 || a->shape[k] == 1 ? 0 : a->strides[k];
    }
    for (int d = 0; d < 2; d++) {
        shape[nb + d] = a->shape[a->ndim - 2 + d];
        strides[nb + d] = a->strides[a->ndim - 2 + d];
    }
    return lz_autorelease(lz_view_of(a, nb + 2, shape, strides, a->offset));
}

/* The attention node; with_lse adds the log-sum-exp column (see the params above). */
static lz_array *attention(lz_array *q, lz_array *k, lz_array *v, double scale, int causal,
                           int with_lse) {
    if (!q || !k || !v) return NULL;
    char sq[160], sk[160], sv[160];
    lz_shape_str(q, sq, sizeof sq);
    lz_shape_str(k, sk, sizeof sk);
    lz_shape_str(v, sv, sizeof sv);
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
        return lz_fail("attention: q, k and v need at least 2 dimensions ([..., T, D]), got "
                       "q %s, k %s, v %s", sq, sk, sv);
    int64_t tq = q->shape[q->ndim - 2], d = q->shape[q->ndim - 1];
    int64_t tk = k->shape[k->ndim - 2], dv = v->shape[v->ndim - 1];
    if (k->shape[k->ndim - 1] != d)
        return lz_fail("attention: q %s and k %s differ in the last dimension (D)", sq, sk);
    if (v->shape[v->ndim - 2] != tk)
        return lz_fail("attention: k %s and v %s differ in the number of keys (dim -2)", sk, sv);
    /* batch dims broadcast like elementwise operands */
    int nb = 0;
    lz_array *xs[3] = {q, k, v};
    for (int i = 0; i < 3; i++) if (xs[i]->ndim - 2 > nb) nb = xs[i]->ndim - 2;
    int64_t shape[LZ_MAX_DIMS];
    for (int j = 0; j < nb; j++) shape[j] = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < xs[i]->ndim - 2; j++) {
            int64_t *o = &shape[nb - (xs[i]->ndim - 2) + j], s = xs[i]->shape[j];
            if (s == *o || s == 1) continue;
            if (*o != 1)
                return lz_fail("attention: batch dimensions of q %s, k %s and v %s cannot be "
                               "broadcast together", sq, sk, sv);
            *o = s;
        }
    if (!(scale > 0)) scale = d > 0 ? 1.0 / sqrt((double)d) : 1.0;
    if (!isfinite(scale)) return lz_fail("attention: scale must be finite, got %g", scale);
    shape[nb] = tq;
    shape[nb + 1] = dv + (with_lse ? 1 : 0);
    lz_params pr = {0};
    pr.f[0] = scale;
    pr.i[0] = causal != 0;
    pr.i[1] = with_lse != 0;
    lz_dtype t = LZ_F32;
    if (q->dtype == k->dtype && k->dtype == v->dtype) t = result_dtype(q->dtype);
    lz_pool_push();
    lz_array *in[3];
    for (int i = 0; i < 3; i++) in[i] = attn_input(lz_astype(xs[i], LZ_F32), nb, shape);
    lz_array *r = NULL;
    if (in[0] && in[1] && in[2]) {
        lz_array *y = lz_autorelease(lz_node(LZ_P_ATTENTION, LZ_F32, nb + 2, shape, 3, in, &pr));
        r = lz_retain(lz_astype(y, t));
    }
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_attention(lz_array *q, lz_array *k, lz_array *v, double scale, int causal) {
    return attention(q, k, v, scale, causal, 0);
}

/* For lib/autograd (not in ops.h yet): attention whose output rows carry the log-sum-exp
 * as an extra last column: [..., Tq, Dv + 1]. Slice [..., :Dv] for the attention output
 * and [..., Dv] for the log-sum-exp; both come from one kernel run. */
lz_array *lz_attention_lse(lz_array *q, lz_array *k, lz_array *v, double scale, int causal) {
    return attention(q, k, v, scale, causal, 1);
}

/* ---- packed self-attention ---- */

/* Checks qkv [..., T, 3 H D] against heads; fills *hd. 0 or -1. */
static int qkv_check(const char *op, lz_array *qkv, int64_t heads, int64_t *hd) {
    char sq[160];
    lz_shape_str(qkv, sq, sizeof sq);
    if (qkv->ndim < 2) {
        lz_fail("%s: qkv %s needs at least 2 dimensions ([..., T, 3 H D])", op, sq);
        return -1;
    }
    int64_t w = qkv->shape[qkv->ndim - 1];
    if (heads < 1 || w % (3 * heads)) {
        lz_fail("%s: the last dimension of qkv %s is not 3 x heads (%lld) x head size", op, sq,
                (long long)heads);
        return -1;
    }
    *hd = w / (3 * heads);
    return 0;
}

static lz_params qkv_params(double scale, int causal, int64_t heads, int64_t hd) {
    lz_params pr = {0};
    if (!(scale > 0)) scale = hd > 0 ? 1.0 / sqrt((double)hd) : 1.0;
    pr.f[0] = scale;
    pr.i[0] = causal != 0;
    pr.i[2] = heads;
    return pr;
}

lz_array *lz_attention_qkv(lz_array *qkv, int64_t heads, double scale, int causal) {
    if (!qkv) return NULL;
    int64_t hd;
    if (qkv_check("attention_qkv", qkv, heads, &hd)) return NULL;
    if (!isfinite(scale)) return lz_fail("attention_qkv: scale must be finite, got %g", scale);
    lz_params pr = qkv_params(scale, causal, heads, hd);
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, qkv->shape, (size_t)qkv->ndim * sizeof *shape);
    shape[qkv->ndim - 1] = heads * hd;
    lz_pool_push();
    lz_array *in = lz_contiguous(lz_astype(qkv, LZ_F32)), *r = NULL;
    if (in) {
        lz_array *y = lz_autorelease(lz_node(LZ_P_ATTENTION_QKV, LZ_F32, qkv->ndim, shape, 1, &in, &pr));
        r = lz_retain(lz_astype(y, result_dtype(qkv->dtype)));
    }
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_attention_qkv_grad(lz_array *qkv, lz_array *dout, int64_t heads, double scale,
                                int causal) {
    if (!qkv || !dout) return NULL;
    int64_t hd;
    if (qkv_check("attention_qkv_grad", qkv, heads, &hd)) return NULL;
    int nd = qkv->ndim;
    bool ok = dout->ndim == nd && dout->shape[nd - 1] == heads * hd;
    for (int d = 0; ok && d + 1 < nd; d++) ok = dout->shape[d] == qkv->shape[d];
    if (!ok) {
        char sq[160], sd[160];
        lz_shape_str(qkv, sq, sizeof sq);
        lz_shape_str(dout, sd, sizeof sd);
        return lz_fail("attention_qkv_grad: d out %s does not match qkv %s", sd, sq);
    }
    lz_params pr = qkv_params(scale, causal, heads, hd);
    lz_pool_push();
    lz_array *in[2] = {lz_contiguous(lz_astype(qkv, LZ_F32)), lz_contiguous(lz_astype(dout, LZ_F32))};
    lz_array *r = NULL;
    if (in[0] && in[1]) {
        lz_array *g = lz_autorelease(lz_node(LZ_P_ATTENTION_QKV_GRAD, LZ_F32, nd, qkv->shape, 2, in, &pr));
        r = lz_retain(lz_astype(g, result_dtype(qkv->dtype)));
    }
    lz_pool_pop();
    return lz_autorelease(r);
}
