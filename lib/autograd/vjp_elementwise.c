/* vjp rules of the elementwise primitives.
 *
 * An elementwise node's inputs were already broadcast (views) and cast to the dtype it computes
 * in by its constructor, so every cotangent here has the node's own shape: the reduction
 * back to a broadcast input's shape is the view rule's job (vjp_view.c), a cast back the CAST
 * rule's. Rules use the node itself (its value) where the derivative is cheaper from the
 * output (exp, sqrt, tanh, sigmoid), and otherwise reference only the inputs they need, so
 * the backward graph keeps no other forward value alive. */
#include "../ops/conv.h"
#include "rules.h"

#define X(i) (node->inputs[i])

/* A scalar of like's dtype (broadcasts in any elementwise op). */
static lz_array *sc(const lz_array *like, double v) { return lz_scalar(v, like->dtype); }

/* 1 - a */
static lz_array *one_minus(lz_array *a) { return a ? lz_sub(sc(a, 1), a) : NULL; }

/* Stores the cotangent of input 0: ct times the local derivative d (NULL d: error). */
static int chain(lz_array **g, lz_array *ct, lz_array *d) {
    g[0] = d ? lz_mul(ct, d) : NULL;
    return g[0] ? 0 : -1;
}

static int set(lz_array **g, int i, lz_array *v) {
    g[i] = v;
    return v ? 0 : -1;
}

#define RULE(name) static int name(lz_array *node, lz_array *ct, const bool *w, lz_array **g)
#define UNUSED (void)node; (void)ct; (void)w; (void)g

/* ---- unary ---- */
RULE(neg) { (void)node; (void)w; return set(g, 0, lz_neg(ct)); }
RULE(abs_) { (void)w; return chain(g, ct, lz_sign(X(0))); }
RULE(exp_) { (void)w; return chain(g, ct, node); }
RULE(log_) { (void)w; return set(g, 0, lz_div(ct, X(0))); }
RULE(log1p_) { (void)w; return set(g, 0, lz_div(ct, lz_add_scalar(X(0), 1))); }
RULE(expm1_) { (void)w; return chain(g, ct, lz_add_scalar(node, 1)); }
RULE(sqrt_) { (void)w; return set(g, 0, lz_div(lz_mul_scalar(ct, 0.5), node)); }
/* d x^-1/2 = -1/2 x^-3/2 = -1/2 out^3 */
RULE(rsqrt_) { (void)w; return chain(g, ct, lz_mul_scalar(lz_mul(node, lz_square(node)), -0.5)); }
RULE(square) { (void)w; return chain(g, ct, lz_mul_scalar(X(0), 2)); }
RULE(sin_) { (void)w; return chain(g, ct, lz_cos(X(0))); }
RULE(cos_) { (void)w; return chain(g, ct, lz_neg(lz_sin(X(0)))); }
RULE(tanh_) { (void)w; return chain(g, ct, one_minus(lz_square(node))); }
RULE(sigmoid) { (void)w; return chain(g, ct, lz_mul(node, one_minus(node))); }
/* the derivative at 0 is taken as 0; where() keeps a NaN cotangent out of the dead side.
 * The mask comes from the output (relu(x) > 0 exactly where x > 0, NaN included): the
 * output is kept anyway by whatever consumes it, while a mask of x would keep the input
 * alive too and stop it fusing into the relu (a linear or conv layer's bias add then ran
 * as a pass of its own: ~2 ms of a 65 ms MNIST CNN step). */
RULE(relu) {
    (void)w;
    /* Under a max pool (conv -> relu -> pool), ct is the pool's INPUT_GRAD of this output:
     * the flagged mode routes it only through windows whose max is > 0, which is this mask
     * (see ops/conv.h), in the same pass; the mask was a pass of its own over the largest
     * activations of an MNIST CNN (~2.5 ms of a 58 ms step). */
    if (lz_is_pending(ct) && ct->prim == LZ_P_POOL_MAX && ct->inputs[0] == node) {
        lz_window geo = lz_window_of(&ct->params);
        if (geo.mode == LZ_WIN_INPUT_GRAD && !geo.positive) {
            geo.positive = 1;
            return set(g, 0, lz_window_node(LZ_P_POOL_MAX, &geo, node, ct->inputs[1]));
        }
    }
    return set(g, 0, lz_where(lz_greater(node, sc(node, 0)), ct, sc(ct, 0)));
}
/* x Phi(x): Phi(x) + x phi(x). For float32 one GELU_GRAD node with inputs (x, ct) computes
 * ct (Phi(x) + x phi(x)) in one fused instruction (ew_ops.c). That node's own rule:
 * d/dx = ct' ct phi(x) (2 - x^2), d/dct = ct' (Phi(x) + x phi(x)), with ordinary ops. */
static lz_array *gelu_slope(lz_array *x, lz_array **pdf) {
    lz_array *cdf = lz_mul_scalar(lz_add_scalar(lz_erf(lz_mul_scalar(x, 0.70710678118654752)), 1), 0.5);
    *pdf = lz_mul_scalar(lz_exp(lz_mul_scalar(lz_square(x), -0.5)), 0.3989422804014327);
    return lz_add(cdf, lz_mul(x, *pdf));
}

RULE(gelu) {
    (void)w;
    lz_array *x = X(0), *pdf;
    if (x->dtype == LZ_F32 && ct->dtype == LZ_F32) {
        lz_array *in[2] = {x, ct};
        return set(g, 0, lz_autorelease(lz_node(LZ_P_GELU_GRAD, LZ_F32, node->ndim, node->shape,
                                                2, in, NULL)));
    }
    return chain(g, ct, gelu_slope(x, &pdf));
}

RULE(gelu_grad) {
    lz_array *x = X(0), *pdf;
    lz_array *slope = gelu_slope(x, &pdf);
    if (w[0] && !(g[0] = lz_mul(lz_mul(ct, X(1)), lz_mul(pdf, lz_sub(sc(x, 2), lz_square(x))))))
        return -1;
    return w[1] ? set(g, 1, lz_mul(ct, slope)) : 0;
}
/* 0.5 x (1 + tanh(u)), u = c (x + k x^3): 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2) */
RULE(gelu_tanh) {
    (void)w;
    const double c = 0.7978845608028654, k = 0.044715;
    lz_array *x = X(0), *x2 = lz_square(x);
    lz_array *t = lz_tanh(lz_mul_scalar(lz_add(x, lz_mul_scalar(lz_mul(x2, x), k)), c));
    lz_array *du = lz_mul_scalar(lz_add_scalar(lz_mul_scalar(x2, 3 * k), 1), c);
    lz_array *d = lz_add(lz_mul_scalar(lz_add_scalar(t, 1), 0.5),
                         lz_mul(lz_mul_scalar(x, 0.5), lz_mul(one_minus(lz_square(t)), du)));
    return chain(g, ct, d);
}
/* x s(x): s (1 + x (1 - s)) */
RULE(silu) {
    (void)w;
    lz_array *x = X(0), *s = lz_sigmoid(x);
    return chain(g, ct, lz_mul(s, lz_add_scalar(lz_mul(x, one_minus(s)), 1)));
}
RULE(softplus) { (void)w; return chain(g, ct, lz_sigmoid(X(0))); }
RULE(erf_) {
    (void)w;
    return chain(g, ct, lz_mul_scalar(lz_exp(lz_neg(lz_square(X(0)))), 1.1283791670955126));
}
/* sign, floor, ceil, round: zero almost everywhere */
RULE(zero) { UNUSED; return 0; }
RULE(copy) { (void)node; (void)w; return set(g, 0, lz_autorelease(lz_retain(ct))); }
/* the input is float (only float inputs are wanted): the cotangent goes back to its dtype */
RULE(cast) { (void)w; return set(g, 0, lz_astype(ct, X(0)->dtype)); }

/* ---- binary ---- */
RULE(add) {
    (void)node;
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_autorelease(lz_retain(ct)));
    if (w[1]) rc |= set(g, 1, lz_autorelease(lz_retain(ct)));
    return rc;
}
RULE(sub) {
    (void)node;
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_autorelease(lz_retain(ct)));
    if (w[1]) rc |= set(g, 1, lz_neg(ct));
    return rc;
}
RULE(mul) {
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_mul(ct, X(1)));
    if (w[1]) rc |= set(g, 1, lz_mul(ct, X(0)));
    return rc;
}
/* a / b: ct / b and -ct a / b^2 = -(ct out) / b */
RULE(div_) {
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_div(ct, X(1)));
    if (w[1]) rc |= set(g, 1, lz_neg(lz_div(lz_mul(ct, node), X(1))));
    return rc;
}
/* a^b: b a^(b-1) (0 where b == 0, also at a == 0) and out log a (0 where a == 0, as the
 * limit from the right; NaN for negative a, like other frameworks) */
RULE(pow_) {
    lz_array *a = X(0), *b = X(1);
    int rc = 0;
    if (w[0]) {
        lz_array *d = lz_mul(b, lz_pow(a, lz_add_scalar(b, -1)));
        rc |= set(g, 0, lz_where(lz_equal(b, sc(b, 0)), sc(ct, 0), lz_mul(ct, d)));
    }
    if (w[1]) {
        lz_array *d = lz_mul(node, lz_log(a));
        rc |= set(g, 1, lz_where(lz_equal(a, sc(a, 0)), sc(ct, 0), lz_mul(ct, d)));
    }
    return rc;
}
/* maximum/minimum: the winner gets the cotangent, a tie splits it in halves (as the max and
 * min reductions share it between tied elements) */
static int extremum(lz_array *node, lz_array *ct, const bool *w, lz_array **g, bool is_max) {
    lz_array *a = X(0), *b = X(1);
    lz_array *tie = lz_where(lz_equal(a, b), lz_mul_scalar(ct, 0.5), sc(ct, 0));
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_where(is_max ? lz_greater(a, b) : lz_less(a, b), ct, tie));
    if (w[1]) rc |= set(g, 1, lz_where(is_max ? lz_greater(b, a) : lz_less(b, a), ct, tie));
    return rc;
}
RULE(maximum) { return extremum(node, ct, w, g, true); }
RULE(minimum) { return extremum(node, ct, w, g, false); }

/* a x + b: a ct;  a x + b y: a ct and b ct */
RULE(affine) { (void)w; return set(g, 0, lz_mul_scalar(ct, node->params.f[0])); }
RULE(axpby) {
    int rc = 0;
    if (w[0]) rc |= set(g, 0, lz_mul_scalar(ct, node->params.f[0]));
    if (w[1]) rc |= set(g, 1, lz_mul_scalar(ct, node->params.f[1]));
    return rc;
}

/* where(cond, a, b): the chosen side gets the cotangent; cond (bool) gets none */
RULE(where) {
    lz_array *cond = X(0), *z = sc(ct, 0);
    int rc = 0;
    if (w[1]) rc |= set(g, 1, lz_where(cond, ct, z));
    if (w[2]) rc |= set(g, 2, lz_where(cond, z, ct));
    return rc;
}

void ad_register_elementwise(void) {
    static const struct { lz_prim_id p; lz_vjp_fn f; } rules[] = {
        {LZ_P_NEG, neg}, {LZ_P_ABS, abs_}, {LZ_P_SIGN, zero}, {LZ_P_EXP, exp_},
        {LZ_P_LOG, log_}, {LZ_P_LOG1P, log1p_}, {LZ_P_EXPM1, expm1_}, {LZ_P_SQRT, sqrt_},
        {LZ_P_RSQRT, rsqrt_}, {LZ_P_SQUARE, square}, {LZ_P_SIN, sin_}, {LZ_P_COS, cos_},
        {LZ_P_TANH, tanh_}, {LZ_P_SIGMOID, sigmoid}, {LZ_P_RELU, relu}, {LZ_P_GELU, gelu},
        {LZ_P_GELU_GRAD, gelu_grad},
        {LZ_P_GELU_TANH, gelu_tanh}, {LZ_P_SILU, silu}, {LZ_P_SOFTPLUS, softplus},
        {LZ_P_ERF, erf_}, {LZ_P_FLOOR, zero}, {LZ_P_CEIL, zero}, {LZ_P_ROUND, zero},
        {LZ_P_COPY, copy}, {LZ_P_CAST, cast}, {LZ_P_ADD, add}, {LZ_P_SUB, sub},
        {LZ_P_MUL, mul}, {LZ_P_DIV, div_}, {LZ_P_POW, pow_}, {LZ_P_MAXIMUM, maximum},
        {LZ_P_MINIMUM, minimum}, {LZ_P_WHERE, where}, {LZ_P_AFFINE, affine},
        {LZ_P_AXPBY, axpby},
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) lz_prims[rules[i].p].vjp = rules[i].f;
}
