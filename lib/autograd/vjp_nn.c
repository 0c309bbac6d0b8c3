/* vjp rules of the fused nn kernels: softmax, log_softmax, layer_norm, rms_norm, attention
 * (node layouts: lib/ops/nn.c). Their kernels keep no statistics for the backward pass, so
 * the rules recompute what they need (means, inverse deviations, attention probabilities)
 * with ordinary ops; those fuse into the backward graph, and being ordinary ops they can be
 * differentiated again. Inputs reach these nodes as float32. */
#include <math.h>
#include "rules.h"

static int ok(lz_array *a) { return a ? 0 : -1; }

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
 *   dx = rstd (dxhat - xhat mean(dxhat xhat)) */
static int norm_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    bool layer = node->prim == LZ_P_LAYER_NORM;
    bool has_w = node->params.i[0], has_b = layer && node->params.i[1];
    int last = -1;
    lz_array *x = node->inputs[0], *wt = has_w ? node->inputs[1] : NULL;
    lz_array *xc = layer ? lz_sub(x, lz_mean(x, &last, 1, 1)) : x;
    lz_array *rstd = lz_rsqrt(lz_add_scalar(lz_mean(lz_square(xc), &last, 1, 1),
                                            node->params.f[0]));
    lz_array *xhat = lz_mul(xc, rstd);
    lz_array *dxhat = wt ? lz_mul(ct, wt) : ct;
    if (w[0]) {
        lz_array *inner = lz_sub(dxhat, lz_mul(xhat, lz_mean(lz_mul(dxhat, xhat), &last, 1, 1)));
        if (layer) inner = lz_sub(inner, lz_mean(dxhat, &last, 1, 1));
        if (!(g[0] = lz_mul(rstd, inner))) return -1;
    }
    if (has_w && w[1] && !(g[1] = sum_leading(lz_mul(ct, xhat)))) return -1;
    if (has_b && w[1 + has_w] && !(g[1 + has_w] = sum_leading(ct))) return -1;
    return 0;
}

/* attention: recompute P = softmax(scale q k^T, masked) and go back through
 *   O = P v:   dv = P^T dO,  dP = dO v^T,  dS = P (dP - rowsum(dP P)),
 *   S = scale q k^T:  dq = scale dS k,  dk = scale dS^T q;
 * with the log-sum-exp column (lse = logsumexp of S's row), d lse / dS = P adds ct_lse P.
 * Rows that see no key have P = 0 (and an output of 0 / lse of -inf): no gradient. */
static int attention_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    lz_array *q = node->inputs[0], *k = node->inputs[1], *v = node->inputs[2];
    double scale = node->params.f[0];
    int causal = (int)node->params.i[0], with_lse = (int)node->params.i[1], last = -1;
    int64_t tq = q->shape[q->ndim - 2], tk = k->shape[k->ndim - 2], dv = v->shape[v->ndim - 1];
    lz_array *s = lz_mul_scalar(lz_matmul(q, lz_swapaxes(k, -1, -2)), scale);
    lz_array *allowed = NULL, *p;
    if (causal) {   /* key j is seen by query i when j <= i + (tk - tq) */
        lz_array *i = lz_expand_dims(lz_arange((double)(tk - tq), (double)tk, 1, LZ_I64), 1);
        allowed = lz_less_equal(lz_arange(0, (double)tk, 1, LZ_I64), i);
        s = lz_where(allowed, s, lz_scalar(-INFINITY, LZ_F32));
    }
    p = lz_softmax(s, -1);
    if (causal) p = lz_where(allowed, p, lz_scalar(0, LZ_F32));
    lz_array *dout = with_lse ? lz_slice_axis(ct, -1, 0, dv, 1) : ct;
    if (w[2] && !(g[2] = lz_matmul(lz_swapaxes(p, -1, -2), dout))) return -1;
    if (!w[0] && !w[1]) return 0;
    lz_array *dp = lz_matmul(dout, lz_swapaxes(v, -1, -2));
    lz_array *ds = lz_mul(p, lz_sub(dp, lz_sum(lz_mul(dp, p), &last, 1, 1)));
    if (with_lse) ds = lz_add(ds, lz_mul(lz_slice_axis(ct, -1, dv, dv + 1, 1), p));
    ds = lz_mul_scalar(ds, scale);
    if (w[0] && !(g[0] = lz_matmul(ds, k))) return -1;
    if (w[1] && !(g[1] = lz_matmul(lz_swapaxes(ds, -1, -2), q))) return -1;
    return 0;
}

void ad_register_nn(void) {
    lz_prims[LZ_P_SOFTMAX].vjp = softmax_vjp;
    lz_prims[LZ_P_LOG_SOFTMAX].vjp = log_softmax_vjp;
    lz_prims[LZ_P_LAYER_NORM].vjp = norm_vjp;
    lz_prims[LZ_P_RMS_NORM].vjp = norm_vjp;
    lz_prims[LZ_P_ATTENTION].vjp = attention_vjp;
}
