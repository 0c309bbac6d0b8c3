/* vjp rules of the reductions SUM, PROD, MAX, MIN.
 *
 * A reduction node keeps the reduced axes as size 1 (params.i[0] is the bitmask of reduced
 * axes, lib/ops/reduce.c), so its cotangent broadcasts straight back onto the input; a
 * keepdims = 0 result is a view on top whose own rule restores the size-1 axes. Composites
 * (mean, var, logsumexp) are built from these and elementwise ops and need no rules. */
#include "rules.h"

/* The reduced axes of node as a list; returns how many. */
static int axes_of(const lz_array *node, int *axes) {
    int n = 0;
    for (int d = 0; d < node->ndim; d++)
        if (node->params.i[0] >> d & 1) axes[n++] = d;
    return n;
}

static int sum_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *in = node->inputs[0];
    g[0] = lz_broadcast_to(ct, in->ndim, in->shape);
    return g[0] ? 0 : -1;
}

/* d prod / dx_i = product of the others. With no zero in the slice that is out / x_i; with
 * exactly one zero, the zero's entry is the product of the non-zeros and the others get 0;
 * with more, all get 0. Built without dividing by zero, so no NaN appears. */
static int prod_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *x = node->inputs[0];
    int axes[LZ_MAX_DIMS], na = axes_of(node, axes);
    lz_array *zero = lz_scalar(0, x->dtype), *one = lz_scalar(1, x->dtype);
    lz_array *is0 = lz_equal(x, zero);
    lz_array *nz = lz_where(is0, one, x);
    lz_array *zeros = lz_sum(lz_astype(is0, x->dtype), axes, na, 1);   /* per slice */
    lz_array *others = lz_prod(nz, axes, na, 1);                        /* product of non-zeros */
    lz_array *at_zero = lz_where(lz_equal(zeros, one), others, zero);
    lz_array *at_other = lz_where(lz_equal(zeros, zero), lz_div(node, nz), zero);
    g[0] = lz_mul(ct, lz_where(is0, at_zero, at_other));
    return g[0] ? 0 : -1;
}

/* max / min: the elements equal to the result share the cotangent equally. */
static int extremum_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *x = node->inputs[0];
    int axes[LZ_MAX_DIMS], na = axes_of(node, axes);
    lz_array *hit = lz_equal(x, node);
    lz_array *count = lz_sum(lz_astype(hit, ct->dtype), axes, na, 1);
    g[0] = lz_where(hit, lz_div(ct, count), lz_scalar(0, ct->dtype));
    return g[0] ? 0 : -1;
}

void ad_register_reduce(void) {
    lz_prims[LZ_P_SUM].vjp = sum_vjp;
    lz_prims[LZ_P_PROD].vjp = prod_vjp;
    lz_prims[LZ_P_MAX].vjp = extremum_vjp;
    lz_prims[LZ_P_MIN].vjp = extremum_vjp;
}
