/* Reductions. SUM, PROD, MAX and MIN are primitives (kind REDUCE: the scheduler lets them
 * close a fused elementwise group, so sum(a*b) is one pass with no intermediate); mean, var
 * and logsumexp are built from them and elementwise ops, so autograd needs no rules of its
 * own for them. ARGMAX / ARGMIN are kernels.
 *
 * Node layout (what lib/backend/cpu/reduce.c and the vjp rules rely on):
 *   SUM/PROD/MAX/MIN  inputs[0] = the array reduced (any layout); params.i[0] = bitmask of the
 *                     reduced axes of the input; the node's shape is the input's with those
 *                     axes set to 1 (keepdims), so a cotangent broadcasts straight back.
 *                     keepdims = 0 is a reshape (a view) on top of the node.
 *   ARGMAX/ARGMIN     params.i[0] = the axis; shape as above (that axis set to 1); int64.
 *
 * Dtypes (as NumPy on 64-bit Linux): sum and prod of bool/uint8/int32/int64 give int64, of
 * floats the same float dtype (accumulated in double); max and min keep the dtype; mean, var
 * and logsumexp of integers give float32 (float16/bfloat16 compute in float32 and are cast
 * back). An empty reduction gives 0 (sum), 1 (prod), NaN (mean, var), -inf (logsumexp); max,
 * min, argmax and argmin of an empty axis are errors. */
#include <math.h>
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

/* Bitmask of the reduced axes, or -1 with an error naming op and the shape. No axes (NULL or
 * naxes 0) means all. A 0-d array accepts axis 0 or -1 (as lz_axis does), reducing nothing. */
static int64_t axes_mask(const char *op, const lz_array *a, const int *axes, int naxes) {
    int nd = a->ndim;
    if (!axes || naxes == 0) return nd ? (int64_t)((1u << nd) - 1) : 0;
    char sa[160];
    if (naxes < 0) {
        lz_fail("%s: %d axes given for %s", op, naxes, lz_shape_str(a, sa, sizeof sa));
        return -1;
    }
    int64_t mask = 0;
    for (int i = 0; i < naxes; i++) {
        int ax = axes[i] < 0 ? axes[i] + nd : axes[i];
        if (nd == 0 && (axes[i] == 0 || axes[i] == -1)) continue;
        if (ax < 0 || ax >= nd) {
            lz_fail("%s: axis %d is out of range for %s", op, axes[i], lz_shape_str(a, sa, sizeof sa));
            return -1;
        }
        if (mask >> ax & 1) {
            lz_fail("%s: axis %d is repeated in the axes of %s", op, axes[i],
                    lz_shape_str(a, sa, sizeof sa));
            return -1;
        }
        mask |= (int64_t)1 << ax;
    }
    return mask;
}

/* Number of elements each output reduces. */
static int64_t count(const lz_array *a, int64_t mask) {
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++) if (mask >> d & 1) n *= a->shape[d];
    return n;
}

/* Drops the reduced axes of r (shape of a keepdims result): a view. New reference. */
static lz_array *squeeze_mask(lz_array *r, int64_t mask) {
    int64_t shape[LZ_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < r->ndim; d++) if (!(mask >> d & 1)) shape[nd++] = r->shape[d];
    lz_pool_push();
    lz_array *s = lz_retain(lz_reshape(r, nd, shape));
    lz_pool_pop();
    return s;
}

/* A REDUCE (or ARG) node over the axes in mask, dtype t. Autoreleased. */
static lz_array *node(lz_prim_id p, lz_array *a, int64_t mask, lz_dtype t, int keepdims) {
    if (!a) return NULL;
    int64_t shape[LZ_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = mask >> d & 1 ? 1 : a->shape[d];
    lz_params prm;
    memset(&prm, 0, sizeof prm);
    prm.i[0] = mask;
    if (p == LZ_P_ARGMAX || p == LZ_P_ARGMIN)
        for (int d = 0; d < a->ndim; d++) if (mask >> d & 1) prm.i[0] = d;
    lz_array *r = lz_node(p, t, a->ndim, shape, 1, &a, &prm);
    if (!r || keepdims) return lz_autorelease(r);
    lz_array *s = squeeze_mask(r, mask);
    lz_release(r);
    return lz_autorelease(s);
}

static lz_array *reduce(lz_prim_id p, lz_array *a, const int *axes, int naxes, int keepdims) {
    if (!a) return NULL;
    const char *op = lz_prims[p].name;
    int64_t mask = axes_mask(op, a, axes, naxes);
    if (mask < 0) return NULL;
    if ((p == LZ_P_MAX || p == LZ_P_MIN) && count(a, mask) == 0) {
        char sa[160];
        return lz_fail("%s: cannot reduce over an empty axis of %s (no identity)", op,
                       lz_shape_str(a, sa, sizeof sa));
    }
    lz_dtype t = a->dtype;
    if ((p == LZ_P_SUM || p == LZ_P_PROD) && !lz_dtype_is_float(t)) t = LZ_I64;
    return node(p, a, mask, t, keepdims);
}

lz_array *lz_sum(lz_array *a, const int *axes, int naxes, int keepdims) {
    return reduce(LZ_P_SUM, a, axes, naxes, keepdims);
}
lz_array *lz_prod(lz_array *a, const int *axes, int naxes, int keepdims) {
    return reduce(LZ_P_PROD, a, axes, naxes, keepdims);
}
lz_array *lz_max(lz_array *a, const int *axes, int naxes, int keepdims) {
    return reduce(LZ_P_MAX, a, axes, naxes, keepdims);
}
lz_array *lz_min(lz_array *a, const int *axes, int naxes, int keepdims) {
    return reduce(LZ_P_MIN, a, axes, naxes, keepdims);
}

/* ---- composites (built in a pool; the result is retained past it) ---- */

/* a as the float32 array composites compute in. */
static lz_array *as_f32(lz_array *a) { return a->dtype == LZ_F32 ? a : lz_astype(a, LZ_F32); }
static lz_dtype result_dtype(const lz_array *a) {
    return lz_dtype_is_float(a->dtype) ? a->dtype : LZ_F32;
}

/* sum(x * scale) over mask: the scale is applied before the sum so that the whole thing,
 * and whatever elementwise tree x is, runs as one fused kernel. Each product is rounded
 * once; the sum itself accumulates in double. n == 0 gives NaN (0/0), as in NumPy. */
static lz_array *scaled_sum(lz_array *x, int64_t mask, double scale, int64_t n, int keepdims) {
    if (!x) return NULL;
    lz_array *r = node(LZ_P_SUM, lz_mul_scalar(x, scale), mask, x->dtype, 1);
    if (n == 0) r = lz_mul_scalar(r, NAN);
    return keepdims || !r ? r : lz_autorelease(squeeze_mask(r, mask));
}

lz_array *lz_mean(lz_array *a, const int *axes, int naxes, int keepdims) {
    if (!a) return NULL;
    int64_t mask = axes_mask("mean", a, axes, naxes);
    if (mask < 0) return NULL;
    int64_t n = count(a, mask);
    lz_pool_push();
    lz_array *r = scaled_sum(as_f32(a), mask, n ? 1.0 / (double)n : 1.0, n, keepdims);
    r = lz_retain(lz_astype(r, result_dtype(a)));
    lz_pool_pop();
    return lz_autorelease(r);
}

/* Two passes (mean, then the squared deviations), which is far more accurate than
 * E[x^2] - E[x]^2; the second pass is one fused kernel. */
lz_array *lz_var(lz_array *a, const int *axes, int naxes, int keepdims, int ddof) {
    if (!a) return NULL;
    int64_t mask = axes_mask("var", a, axes, naxes);
    if (mask < 0) return NULL;
    int64_t n = count(a, mask);
    lz_pool_push();
    lz_array *x = as_f32(a);
    lz_array *m = lz_mean(x, axes, naxes, 1);
    lz_array *d = lz_square(lz_sub(x, m));
    double scale = n - ddof > 0 ? 1.0 / (double)(n - ddof) : INFINITY;
    lz_array *r = scaled_sum(d, mask, scale, n, keepdims);
    r = lz_retain(lz_astype(r, result_dtype(a)));
    lz_pool_pop();
    return lz_autorelease(r);
}

/* log(sum(exp(x - m))) + m with m the max, replaced by 0 where it is not finite: rows of
 * -inf give log(0) = -inf, a +inf gives +inf, a NaN gives NaN, and nothing overflows. */
lz_array *lz_logsumexp(lz_array *a, const int *axes, int naxes, int keepdims) {
    if (!a) return NULL;
    int64_t mask = axes_mask("logsumexp", a, axes, naxes);
    if (mask < 0) return NULL;
    lz_pool_push();
    lz_array *x = as_f32(a), *r;
    if (count(a, mask) == 0) {
        r = lz_log(node(LZ_P_SUM, lz_exp(x), mask, LZ_F32, 1));
    } else {
        lz_array *m = node(LZ_P_MAX, x, mask, LZ_F32, 1);
        lz_array *ms = lz_where(lz_isfinite(m), m, lz_zeros_like(m));
        r = lz_add(lz_log(node(LZ_P_SUM, lz_exp(lz_sub(x, ms)), mask, LZ_F32, 1)), ms);
    }
    if (r && !keepdims) r = lz_autorelease(squeeze_mask(r, mask));
    r = lz_retain(lz_astype(r, result_dtype(a)));
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- argmax / argmin ---- */

static lz_array *arg(lz_prim_id p, lz_array *a, int axis, int keepdims) {
    if (!a) return NULL;
    const char *op = lz_prims[p].name;
    char sa[160];
    int nd = a->ndim, ax = axis < 0 ? axis + nd : axis;
    if (nd == 0 && (axis == 0 || axis == -1))
        return lz_autorelease(lz_node(p, LZ_I64, 0, NULL, 1, &a, NULL));
    if (ax < 0 || ax >= nd)
        return lz_fail("%s: axis %d is out of range for %s", op, axis, lz_shape_str(a, sa, sizeof sa));
    if (a->shape[ax] == 0)
        return lz_fail("%s: cannot reduce over the empty axis %d of %s", op, axis,
                       lz_shape_str(a, sa, sizeof sa));
    return node(p, a, (int64_t)1 << ax, LZ_I64, keepdims);
}

lz_array *lz_argmax(lz_array *a, int axis, int keepdims) { return arg(LZ_P_ARGMAX, a, axis, keepdims); }
lz_array *lz_argmin(lz_array *a, int axis, int keepdims) { return arg(LZ_P_ARGMIN, a, axis, keepdims); }
