/* vjp rules of the fused nn kernels: softmax, log_softmax, layer_norm, rms_norm, attention
 * (node layouts: lib/ops/nn.c). Their kernels keep no statistics for the backward pass, so
 * the rules recompute what they need (means, inverse deviations, attention probabilities).
 * Softmax, log_softmax and the three-input attention do it with ordinary ops, which fuse
 * into the backward graph and can be differentiated again. The norms and the packed
 * attention (lz_attention_qkv) get one fused backward kernel (lz_norm_grad,
 * lz_attention_qkv_grad: the same primitive with a backward flag); the rule of such a
 * backward node differentiates its composite form (norm_terms, attention_terms) through
 * ad_vjp_masked, so gradients of gradients still work. Inputs reach these nodes as float32. */
#include <math.h>
#include <string.h>
#include "rules.h"

static int ok(lz_array *a) { return a ? 0 : -1; }

/* [..., T, H D] -> [..., H, T, D] (views) */
static lz_array *split_heads(lz_array *x, int64_t heads) {
    if (!x) return NULL;
    int nd = x->ndim;
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)(nd - 1) * sizeof *shape);
    shape[nd - 1] = heads;
    shape[nd] = x->shape[nd - 1] / heads;
    return lz_swapaxes(lz_reshape(x, nd + 1, shape), -3, -2);
}

/* softmax: y (ct - sum(ct y)) along the axis */
static int softmax_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    int ax = (int)node->params.i[0];
    lz_array *dot = lz_sum(lz_mul(ct, node), &ax, 1, 1);
    return ok(g[0] = lz_mul(node, lz_sub(ct, dot)));
}

/* log_softmax: ct - exp(y) sum(ct) along the axis */
static int log_softmax_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    int ax = (int)node->params.i[0];
    return ok(g[0] = lz_sub(ct, lz_mul(lz_exp(node), lz_sum(ct, &ax, 1, 1))));
}

/* ct summed over every axis but the last (a weight's or bias's cotangent). */
static lz_array *sum_leading(lz_array *a) {
    int axes[LZ_MAX_DIMS];
    for (int d = 0; d + 1 < a->ndim; d++) axes[d] = d;
    return a && a->ndim > 1 ? lz_sum(a, axes, a->ndim - 1, 0) : a;
}

/* layer norm over the last axis, y = xhat w + b with xhat = (x - mean) rstd:
 *   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = ct w
 * rms norm, y = xhat w with xhat = x rstd, rstd = 1/sqrt(mean(x^2) + eps):
 *   dx = rstd (dxhat - xhat mean(dxhat xhat))
 * written with ordinary ops: the composite form of the fused backward kernel, used for its
 * own derivative. g[0] dx, g[1] d weight (with wt), g[1 + (wt != NULL)] d bias (with has_b). */
static int norm_terms(bool layer, lz_array *x, lz_array *wt, lz_array *ct, double eps,
                      bool has_b, const bool *w, lz_array **g) {
    int last = -1;
    lz_array *xc = layer ? lz_sub(x, lz_mean(x, &last, 1, 1)) : x;
    lz_array *rstd = lz_rsqrt(lz_add_scalar(lz_mean(lz_square(xc), &last, 1, 1), eps));
    lz_array *xhat = lz_mul(xc, rstd);
    lz_array *dxhat = wt ? lz_mul(ct, wt) : ct;
    if (w[0]) {
        lz_array *inner = lz_sub(dxhat, lz_mul(xhat, lz_mean(lz_mul(dxhat, xhat), &last, 1, 1)));
        if (layer) inner = lz_sub(inner, lz_mean(dxhat, &last, 1, 1));
        if (!(g[0] = lz_mul(rstd, inner))) return -1;
    }
    if (wt && w[1] && !(g[1] = sum_leading(lz_mul(ct, xhat)))) return -1;
    if (has_b && w[1 + (wt != NULL)] && !(g[1 + (wt != NULL)] = sum_leading(ct))) return -1;
    return 0;
}

/* The fused backward node as a function of (x [R, N], ct [R, N] [, weight]): its packed
 * [R + 2, N] result from the composite form. */
typedef struct { bool layer, has_w, has_b; double eps; } norm_ctx;

static int norm_grad_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const norm_ctx *c = ctx;
    lz_array *g[3] = {NULL, NULL, NULL};
    bool all[3] = {true, true, true};
    if (norm_terms(c->layer, in[0], c->has_w ? in[2] : NULL, in[1], c->eps, c->has_b, all, g))
        return -1;
    int64_t row[2] = {1, lz_dim(in[0], -1)};
    lz_array *parts[3] = {g[0], NULL, NULL};
    for (int i = 0; i < 2; i++) {
        bool have = i == 0 ? c->has_w : c->has_b;
        lz_array *r = have ? g[1 + (i == 1 && c->has_w)] : NULL;
        parts[1 + i] = r ? lz_reshape(r, 2, row) : lz_zeros(2, row, LZ_F32);
    }
    out[0] = lz_concatenate(3, parts, 0);
    return out[0] ? 1 : -1;
}

/* The fused backward node: differentiate its composite form. */
static int norm_grad_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    norm_ctx c = {!node->params.i[2], node->params.i[0], node->params.i[1], node->params.f[0]};
    return ad_vjp_masked("norm_grad", norm_grad_fn, &c, node->ninputs, node->inputs, w, 1, &ct,
                         g) < 0 ? -1 : 0;
}

static int norm_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    bool layer = node->prim == LZ_P_LAYER_NORM;
    bool has_w = node->params.i[0], has_b = layer && node->params.i[1];
    double eps = node->params.f[0];
    lz_array *x = node->inputs[0], *wt = has_w ? node->inputs[1] : NULL;
    lz_array *r = lz_norm_grad(x, wt, ct, eps, !layer, has_b);
    if (!r) return -1;
    int64_t rows = r->shape[0] - 2, n = r->shape[1];
    if (w[0] && !(g[0] = lz_reshape(lz_slice_axis(r, 0, 0, rows, 1), x->ndim, x->shape)))
        return -1;
    if (has_w && w[1] && !(g[1] = lz_reshape(lz_slice_axis(r, 0, rows, rows + 1, 1), 1, &n)))
        return -1;
    if (has_b && w[1 + has_w] &&
        !(g[1 + has_w] = lz_reshape(lz_slice_axis(r, 0, rows + 1, rows + 2, 1), 1, &n)))
        return -1;
    return 0;
}

/* attention: recompute P = softmax(scale q k^T, masked) and go back through
 *   O = P v:   dv = P^T dO,  dP = dO v^T,  dS = P (dP - rowsum(dP P)),
 *   S = scale q k^T:  dq = scale dS k,  dk = scale dS^T q;
 * with the log-sum-exp column (lse = logsumexp of S's row), d lse / dS = P adds ct_lse P
 * (ct_lse NULL: none). Rows that see no key have P = 0 (and an output of 0 / lse of -inf):
 * no gradient. g[i] is set for the inputs with w[i]. */
static int attention_terms(lz_array *q, lz_array *k, lz_array *v, lz_array *dout,
                           lz_array *ct_lse, double scale, int causal, const bool *w,
                           lz_array **g) {
    int last = -1;
    int64_t tq = q->shape[q->ndim - 2], tk = k->shape[k->ndim - 2];
    lz_array *s = lz_mul_scalar(lz_matmul(q, lz_swapaxes(k, -1, -2)), scale);
    lz_array *allowed = NULL, *p;
    if (causal) {   /* key j is seen by query i when j <= i + (tk - tq) */
        lz_array *i = lz_expand_dims(lz_arange((double)(tk - tq), (double)tk, 1, LZ_I64), 1);
        allowed = lz_less_equal(lz_arange(0, (double)tk, 1, LZ_I64), i);
        s = lz_where(allowed, s, lz_scalar(-INFINITY, LZ_F32));
    }
    p = lz_softmax(s, -1);
    if (causal) p = lz_where(allowed, p, lz_scalar(0, LZ_F32));
    if (w[2] && !(g[2] = lz_matmul(lz_swapaxes(p, -1, -2), dout))) return -1;
    if (!w[0] && !w[1]) return 0;
    lz_array *dp = lz_matmul(dout, lz_swapaxes(v, -1, -2));
    lz_array *ds = lz_mul(p, lz_sub(dp, lz_sum(lz_mul(dp, p), &last, 1, 1)));
    if (ct_lse) ds = lz_add(ds, lz_mul(ct_lse, p));
    ds = lz_mul_scalar(ds, scale);
    if (w[0] && !(g[0] = lz_matmul(ds, k))) return -1;
    if (w[1] && !(g[1] = lz_matmul(lz_swapaxes(ds, -1, -2), q))) return -1;
    return 0;
}

/* ---- packed self-attention (lz_attention_qkv): heads split and merged by views ---- */
typedef struct { int64_t heads; double scale; int causal; } qkv_ctx;

/* part (0 q, 1 k, 2 v) of qkv [..., T, 3 H D] as [..., H, T, D] */
static lz_array *qkv_part(lz_array *x, int part, int64_t heads) {
    if (!x) return NULL;
    int64_t w = x->shape[x->ndim - 1] / 3;
    return split_heads(lz_slice_axis(x, -1, part * w, (part + 1) * w, 1), heads);
}

/* The backward of packed attention written with ordinary ops, as a function of (qkv, dout):
 * what the fused backward kernel computes, differentiable again (second order). */
static int qkv_grad_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const qkv_ctx *c = ctx;
    lz_array *qkv = in[0], *g[3] = {NULL, NULL, NULL};
    bool all[3] = {true, true, true};
    lz_array *dout = split_heads(in[1], c->heads);
    if (!dout || attention_terms(qkv_part(qkv, 0, c->heads), qkv_part(qkv, 1, c->heads),
                                 qkv_part(qkv, 2, c->heads), dout, NULL, c->scale, c->causal,
                                 all, g))
        return -1;
    int nd = qkv->ndim;
    for (int i = 0; i < 3; i++)   /* [..., H, T, D] -> [..., T, H D] */
        g[i] = lz_reshape(lz_swapaxes(g[i], -3, -2), nd, lz_shape(in[1]));
    out[0] = lz_concatenate(3, g, -1);
    return out[0] ? 1 : -1;
}

/* packed self-attention: the fused backward kernel */
static int attention_qkv_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    g[0] = lz_attention_qkv_grad(node->inputs[0], ct, node->params.i[2], node->params.f[0],
                                 (int)node->params.i[0]);
    return g[0] ? 0 : -1;
}

/* its backward: differentiate the composite form */
static int attention_qkv_grad_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    qkv_ctx c = {node->params.i[2], node->params.f[0], (int)node->params.i[0]};
    return ad_vjp_masked("attention_qkv_grad", qkv_grad_fn, &c, 2, node->inputs, w, 1, &ct, g) < 0
               ? -1 : 0;
}

static int attention_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    double scale = node->params.f[0];
    int causal = (int)node->params.i[0], with_lse = (int)node->params.i[1];
    lz_array *q = node->inputs[0], *k = node->inputs[1], *v = node->inputs[2];
    int64_t dv = v->shape[v->ndim - 1];
    lz_array *dout = with_lse ? lz_slice_axis(ct, -1, 0, dv, 1) : ct;
    lz_array *ct_lse = with_lse ? lz_slice_axis(ct, -1, dv, dv + 1, 1) : NULL;
    return attention_terms(q, k, v, dout, ct_lse, scale, causal, w, g);
}

void ad_register_nn(void) {
    lz_prims[LZ_P_SOFTMAX].vjp = softmax_vjp;
    lz_prims[LZ_P_LOG_SOFTMAX].vjp = log_softmax_vjp;
    lz_prims[LZ_P_LAYER_NORM].vjp = norm_vjp;
    lz_prims[LZ_P_RMS_NORM].vjp = norm_vjp;
    lz_prims[LZ_P_NORM_GRAD].vjp = norm_grad_vjp;
    lz_prims[LZ_P_ATTENTION].vjp = attention_vjp;
    lz_prims[LZ_P_ATTENTION_QKV].vjp = attention_qkv_vjp;
    lz_prims[LZ_P_ATTENTION_QKV_GRAD].vjp = attention_qkv_grad_vjp;
}
