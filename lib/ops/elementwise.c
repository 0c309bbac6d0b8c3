/* Elementwise constructors: dtype promotion, broadcasting, and the rep each kernel sees.
 * Inputs reach an elementwise node already broadcast (a view with zero strides) and cast
 * to the dtype the kernel computes in, so the engine only ever sees same-shape operands. */
#include <math.h>
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

static lz_dtype float_of(lz_dtype t) { return lz_dtype_is_float(t) ? t : LZ_F32; }

/* Broadcast shape of n arrays into out; -1 with an error naming op on mismatch. */
static int broadcast_shape(const char *op, int n, lz_array *const *xs, int *ndim, int64_t *out) {
    int nd = 0;
    for (int i = 0; i < n; i++) if (xs[i]->ndim > nd) nd = xs[i]->ndim;
    for (int d = 0; d < nd; d++) out[d] = 1;
    for (int i = 0; i < n; i++) {
        const lz_array *x = xs[i];
        for (int d = 0; d < x->ndim; d++) {
            int64_t *o = &out[nd - x->ndim + d], s = x->shape[d];
            if (s == *o || s == 1) continue;
            if (*o == 1) { *o = s; continue; }
            char sa[160], sb[160];
            lz_shape_str(xs[0], sa, sizeof sa);
            lz_shape_str(xs[n > 1 && i == 0 ? 1 : i], sb, sizeof sb);
            lz_fail("%s: shapes %s and %s cannot be broadcast together", op, sa, sb);
            return -1;
        }
    }
    *ndim = nd;
    return 0;
}

static lz_array *broadcast(lz_array *x, int ndim, const int64_t *shape) {
    if (x->ndim == ndim && !memcmp(x->shape, shape, (size_t)ndim * sizeof *shape)) return lz_retain(x);
    int64_t strides[LZ_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        int k = d - (ndim - x->ndim);
        strides[d] = k < 0 || x->shape[k] == 1 ? 0 : x->strides[k];
    }
    return lz_view_of(x, ndim, shape, strides, x->offset);
}

static lz_array *cast(lz_array *x, lz_dtype t) {
    return x->dtype == t ? lz_retain(x) : lz_node(LZ_P_CAST, t, x->ndim, x->shape, 1, &x, NULL);
}

/* New reference to x cast to t and broadcast to shape. An evaluated x is broadcast first (a
 * view, so a leaf of the consumer's group) and cast at full shape, inside that group; a
 * pending x is cast first, at its own shape, where the cast can join x's group (a view of a
 * pending array is a node of its own, which fusion does not cross). */
static lz_array *conform(lz_array *x, lz_dtype t, int ndim, const int64_t *shape) {
    lz_array *a = lz_is_evaluated(x) ? broadcast(x, ndim, shape) : cast(x, t);
    if (!a) return NULL;
    lz_array *b = lz_is_evaluated(x) ? cast(a, t) : broadcast(a, ndim, shape);
    lz_release(a);
    return b;
}

/* Builds prim over n inputs, each conformed to `in_t`, with output dtype out_t and
 * parameters prm (NULL: none). */
static lz_array *make_with(lz_prim_id p, int n, lz_array *const *xs, const lz_dtype *in_t,
                           lz_dtype out_t, const lz_params *prm) {
    for (int i = 0; i < n; i++) if (!xs[i]) return NULL;
    int ndim;
    int64_t shape[LZ_MAX_DIMS];
    if (broadcast_shape(lz_prims[p].name, n, xs, &ndim, shape)) return NULL;
    lz_array *c[3] = {NULL, NULL, NULL};
    lz_array *out = NULL;
    for (int i = 0; i < n; i++)
        if (!(c[i] = conform(xs[i], in_t[i], ndim, shape))) goto done;
    out = lz_node(p, out_t, ndim, shape, n, c, prm);
done:
    for (int i = 0; i < n; i++) lz_release(c[i]);
    return lz_autorelease(out);
}

static lz_array *make(lz_prim_id p, int n, lz_array *const *xs, const lz_dtype *in_t,
                      lz_dtype out_t) {
    return make_with(p, n, xs, in_t, out_t, NULL);
}

/* ---- unary ---- */
enum { MATH, KEEP, PRED, LOGIC };

static lz_array *unary(lz_prim_id p, lz_array *a, int kind) {
    if (!a) return NULL;
    lz_dtype in = a->dtype, out = a->dtype;
    switch (kind) {
    case MATH: in = out = float_of(a->dtype); break;
    case KEEP: break;
    case PRED: out = LZ_BOOL; break;
    case LOGIC: in = out = LZ_BOOL; break;
    }
    return make(p, 1, &a, &in, out);
}

lz_array *lz_neg(lz_array *a) { return unary(LZ_P_NEG, a, KEEP); }
lz_array *lz_abs(lz_array *a) { return unary(LZ_P_ABS, a, KEEP); }
lz_array *lz_sign(lz_array *a) { return unary(LZ_P_SIGN, a, KEEP); }
lz_array *lz_exp(lz_array *a) { return unary(LZ_P_EXP, a, MATH); }
lz_array *lz_log(lz_array *a) { return unary(LZ_P_LOG, a, MATH); }
lz_array *lz_log1p(lz_array *a) { return unary(LZ_P_LOG1P, a, MATH); }
lz_array *lz_expm1(lz_array *a) { return unary(LZ_P_EXPM1, a, MATH); }
lz_array *lz_sqrt(lz_array *a) { return unary(LZ_P_SQRT, a, MATH); }
lz_array *lz_rsqrt(lz_array *a) { return unary(LZ_P_RSQRT, a, MATH); }
lz_array *lz_square(lz_array *a) { return unary(LZ_P_SQUARE, a, KEEP); }
lz_array *lz_sin(lz_array *a) { return unary(LZ_P_SIN, a, MATH); }
lz_array *lz_cos(lz_array *a) { return unary(LZ_P_COS, a, MATH); }
lz_array *lz_tanh(lz_array *a) { return unary(LZ_P_TANH, a, MATH); }
lz_array *lz_sigmoid(lz_array *a) { return unary(LZ_P_SIGMOID, a, MATH); }
lz_array *lz_relu(lz_array *a) { return unary(LZ_P_RELU, a, MATH); }
lz_array *lz_gelu(lz_array *a) { return unary(LZ_P_GELU, a, MATH); }
lz_array *lz_gelu_tanh(lz_array *a) { return unary(LZ_P_GELU_TANH, a, MATH); }
lz_array *lz_silu(lz_array *a) { return unary(LZ_P_SILU, a, MATH); }
lz_array *lz_softplus(lz_array *a) { return unary(LZ_P_SOFTPLUS, a, MATH); }
lz_array *lz_erf(lz_array *a) { return unary(LZ_P_ERF, a, MATH); }
lz_array *lz_floor(lz_array *a) { return unary(LZ_P_FLOOR, a, KEEP); }
lz_array *lz_ceil(lz_array *a) { return unary(LZ_P_CEIL, a, KEEP); }
lz_array *lz_round(lz_array *a) { return unary(LZ_P_ROUND, a, KEEP); }
lz_array *lz_logical_not(lz_array *a) { return unary(LZ_P_LOGICAL_NOT, a, LOGIC); }
lz_array *lz_isnan(lz_array *a) { return unary(LZ_P_ISNAN, a, PRED); }
lz_array *lz_isfinite(lz_array *a) { return unary(LZ_P_ISFINITE, a, PRED); }

/* params.f[0] = a, f[1] = b */
lz_array *lz_affine(lz_array *x, double a, double b) {
    if (!x) return NULL;
    lz_dtype t = float_of(x->dtype);
    lz_params prm = {.f = {a, b}};
    return make_with(LZ_P_AFFINE, 1, &x, &t, t, &prm);
}

lz_array *lz_astype(lz_array *a, lz_dtype t) {
    if (!a) return NULL;
    if ((unsigned)t >= LZ_NDTYPES) return lz_fail("astype: unknown dtype %d", (int)t);
    if (a->dtype == t) return lz_autorelease(lz_retain(a));
    return lz_autorelease(lz_node(LZ_P_CAST, t, a->ndim, a->shape, 1, &a, NULL));
}

lz_array *lz_copy(lz_array *a) {
    if (!a) return NULL;
    return lz_autorelease(lz_node(LZ_P_COPY, a->dtype, a->ndim, a->shape, 1, &a, NULL));
}

lz_array *lz_contiguous(lz_array *a) {
    if (!a) return NULL;
    /* a pending view with a contiguous layout is fine: kernels read it with its offset */
    if (lz_is_contiguous(a)) return lz_autorelease(lz_retain(a));
    return lz_copy(a);
}

/* ---- binary ---- */
enum { ARITH, DIVIDE, CMP, BOOLEAN };

static lz_array *binary(lz_prim_id p, lz_array *a, lz_array *b, int kind) {
    if (!a || !b) return NULL;
    lz_dtype t = lz_promote_types(a->dtype, b->dtype), out = t;
    switch (kind) {
    case ARITH: break;
    case DIVIDE: t = out = float_of(t); break;
    case CMP: out = LZ_BOOL; break;
    case BOOLEAN: t = out = LZ_BOOL; break;
    }
    lz_array *xs[2] = {a, b};
    lz_dtype in[2] = {t, t};
    return make(p, 2, xs, in, out);
}

lz_array *lz_add(lz_array *a, lz_array *b) { return binary(LZ_P_ADD, a, b, ARITH); }
lz_array *lz_sub(lz_array *a, lz_array *b) { return binary(LZ_P_SUB, a, b, ARITH); }
lz_array *lz_mul(lz_array *a, lz_array *b) { return binary(LZ_P_MUL, a, b, ARITH); }
lz_array *lz_div(lz_array *a, lz_array *b) { return binary(LZ_P_DIV, a, b, DIVIDE); }
lz_array *lz_pow(lz_array *a, lz_array *b) { return binary(LZ_P_POW, a, b, ARITH); }
lz_array *lz_maximum(lz_array *a, lz_array *b) { return binary(LZ_P_MAXIMUM, a, b, ARITH); }
lz_array *lz_minimum(lz_array *a, lz_array *b) { return binary(LZ_P_MINIMUM, a, b, ARITH); }
lz_array *lz_equal(lz_array *a, lz_array *b) { return binary(LZ_P_EQ, a, b, CMP); }
lz_array *lz_not_equal(lz_array *a, lz_array *b) { return binary(LZ_P_NE, a, b, CMP); }
lz_array *lz_less(lz_array *a, lz_array *b) { return binary(LZ_P_LT, a, b, CMP); }
lz_array *lz_less_equal(lz_array *a, lz_array *b) { return binary(LZ_P_LE, a, b, CMP); }
lz_array *lz_greater(lz_array *a, lz_array *b) { return binary(LZ_P_GT, a, b, CMP); }
lz_array *lz_greater_equal(lz_array *a, lz_array *b) { return binary(LZ_P_GE, a, b, CMP); }
lz_array *lz_logical_and(lz_array *a, lz_array *b) { return binary(LZ_P_LOGICAL_AND, a, b, BOOLEAN); }
lz_array *lz_logical_or(lz_array *a, lz_array *b) { return binary(LZ_P_LOGICAL_OR, a, b, BOOLEAN); }

/* params.f[0] = a, f[1] = b */
lz_array *lz_axpby(double a, lz_array *x, double b, lz_array *y) {
    if (!x || !y) return NULL;
    lz_dtype t = float_of(lz_promote_types(x->dtype, y->dtype));
    lz_array *xs[2] = {x, y};
    lz_dtype in[2] = {t, t};
    lz_params prm = {.f = {a, b}};
    return make_with(LZ_P_AXPBY, 2, xs, in, t, &prm);
}

lz_array *lz_where(lz_array *cond, lz_array *a, lz_array *b) {
    if (!cond || !a || !b) return NULL;
    lz_dtype t = lz_promote_types(a->dtype, b->dtype);
    lz_array *xs[3] = {cond, a, b};
    lz_dtype in[3] = {LZ_BOOL, t, t};
    return make(LZ_P_WHERE, 3, xs, in, t);
}

/* A scalar typed like a: a's dtype, or float32 when a is integral and s is not an integer
 * (NaN, inf and integers past int64 included: converting those to int64 is undefined). */
static lz_array *scalar_for(lz_array *a, double s) {
    lz_dtype t = a->dtype;
    if (!lz_dtype_is_float(t) && !(fabs(s) < 0x1p63 && s == trunc(s))) t = LZ_F32;
    lz_array *c = lz_scalar(s, t);
    return c;
}

static lz_array *with_scalar(lz_array *(*op)(lz_array *, lz_array *), lz_array *a, double s) {
    if (!a) return NULL;
    lz_pool_push();
    lz_array *r = lz_retain(op(a, scalar_for(a, s)));
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_add_scalar(lz_array *a, double s) { return with_scalar(lz_add, a, s); }
lz_array *lz_mul_scalar(lz_array *a, double s) { return with_scalar(lz_mul, a, s); }
/* x^2 is x*x exactly (correctly rounded either way): square vectorises, powf does not. */
lz_array *lz_pow_scalar(lz_array *a, double s) {
    return s == 2 ? lz_square(a) : with_scalar(lz_pow, a, s);
}
