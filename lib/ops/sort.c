/* Sorting and scans: sort, argsort, topk, cumsum.
 *
 * Nodes and their params (for the kernels in lib/backend/cpu/sort.c and the vjp rules):
 *
 *   SORT      inputs {a}; i[0] = axis (normalised), i[1] = 1 for descending (0 from lz_sort).
 *             out: a's shape and dtype. Stable; NaNs last (first when descending); -0 and +0
 *             tie. vjp: take_along_axis(cotangent... ) scattered back: with p = argsort(a),
 *             grad_a = scatter_add(zeros_like(a), p, cotangent, axis) (along form).
 *   ARGSORT   inputs {a}; i[0] = axis, i[1] = descending. out: a's shape, int64 positions
 *             along axis; equal elements keep increasing positions in both directions.
 *             Not differentiable.
 *   CUMSUM    inputs {a}; i[0] = axis, i[1] = 1 for reverse (out[j] = sum of a[j..n-1]).
 *             out: a's shape; float dtypes keep theirs (sums run in double), integer and bool
 *             inputs give int64. vjp: cumsum(cotangent, axis, !reverse).
 *
 * All dtypes sort (bool, uint8, int32, int64, float16, bfloat16, float32). topk composes
 * argsort (descending) with a slice and take_along_axis. */
#include "../core/internal.h"
#include "ops.h"

/* lz_axis, but a 0-d array takes axis 0 or -1 (as one element along its only "axis"). */
static int axis_of(const char *op, int axis, int ndim) {
    return ndim == 0 && (axis == 0 || axis == -1) ? 0 : lz_axis(op, axis, ndim);
}

static lz_array *sort_node(lz_prim_id prim, const char *op, lz_array *a, int axis,
                           int descending) {
    if (!a) return NULL;
    int ax = axis_of(op, axis, a->ndim);
    if (ax < 0) return NULL;
    lz_dtype t = prim == LZ_P_ARGSORT ? LZ_I64 : a->dtype;
    if (a->ndim == 0)   /* one element: itself, or position 0 */
        return prim == LZ_P_ARGSORT ? lz_zeros(0, NULL, LZ_I64) : lz_autorelease(lz_retain(a));
    lz_params p = {.i = {ax, descending}};
    return lz_autorelease(lz_node(prim, t, a->ndim, a->shape, 1, &a, &p));
}

lz_array *lz_sort(lz_array *a, int axis) { return sort_node(LZ_P_SORT, "sort", a, axis, 0); }

lz_array *lz_argsort(lz_array *a, int axis) {
    return sort_node(LZ_P_ARGSORT, "argsort", a, axis, 0);
}

int lz_topk(lz_array *a, int64_t k, int axis, lz_array **values, lz_array **indices) {
    if (values) *values = NULL;
    if (indices) *indices = NULL;
    if (!a) return -1;
    char s[160];
    if (a->ndim == 0) {
        lz_fail("topk: cannot select from a 0-d array (%s)", lz_shape_str(a, s, sizeof s));
        return -1;
    }
    int ax = lz_axis("topk", axis, a->ndim);
    if (ax < 0) return -1;
    if (k < 0 || k > a->shape[ax]) {
        lz_fail("topk: k = %lld is out of range for axis %d of %s", (long long)k, ax,
                lz_shape_str(a, s, sizeof s));
        return -1;
    }
    lz_pool_push();
    lz_array *ix = lz_slice_axis(sort_node(LZ_P_ARGSORT, "topk", a, ax, 1), ax, 0, k, 1);
    lz_array *v = values ? lz_take_along_axis(a, ix, ax) : NULL;
    int ok = ix && (!values || v);
    if (ok) {
        if (values) *values = lz_retain(v);
        if (indices) *indices = lz_retain(ix);
    }
    lz_pool_pop();
    if (!ok) return -1;
    if (values) lz_autorelease(*values);
    if (indices) lz_autorelease(*indices);
    return 0;
}

lz_array *lz_cumsum(lz_array *a, int axis, int reverse) {
    if (!a) return NULL;
    int ax = axis_of("cumsum", axis, a->ndim);
    if (ax < 0) return NULL;
    lz_dtype t = lz_dtype_is_float(a->dtype) ? a->dtype : LZ_I64;
    if (a->ndim == 0) return lz_astype(a, t);
    lz_params p = {.i = {ax, reverse != 0}};
    return lz_autorelease(lz_node(LZ_P_CUMSUM, t, a->ndim, a->shape, 1, &a, &p));
}
