/* Views: reshape, transpose/permute, expand/squeeze, broadcast, slice, flip. Each computes
 * the new layout from the input's (fixed at construction, pending or not) and shares its
 * buffer; only a reshape that no strides can express makes a contiguous copy first. */
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

static lz_array *view(lz_array *a, int ndim, const int64_t *shape, const int64_t *strides,
                      int64_t offset) {
    return lz_autorelease(lz_view_of(a, ndim, shape, strides, offset));
}

/* Strides for `shape` over a's elements in row-major order without copying, if they exist:
 * each run of new dims must map onto a run of old dims that is itself contiguous. */
static int reshape_strides(const lz_array *a, int ndim, const int64_t *shape, int64_t *out) {
    int od = 0, nd = 0;
    /* drop size-1 old dims: they constrain nothing */
    int64_t os[LZ_MAX_DIMS], ost[LZ_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != 1) { os[on] = a->shape[d]; ost[on] = a->strides[d]; on++; }
    while (nd < ndim) {
        if (shape[nd] == 1) { out[nd] = 0; nd++; continue; }
        if (od >= on) return -1;
        /* group: grow old and new products until equal */
        int o0 = od, n0 = nd;
        int64_t po = os[od++], pn = shape[nd++];
        while (po != pn) {
            if (po < pn) {
                if (od >= on) return -1;
                po *= os[od++];
            } else {
                while (nd < ndim && shape[nd] == 1) out[nd++] = 0;
                if (nd >= ndim) return -1;
                pn *= shape[nd++];
            }
        }
        for (int k = o0; k + 1 < od; k++)
            if (ost[k] != ost[k + 1] * os[k + 1]) return -1;   /* old run not contiguous */
        int64_t s = ost[od - 1];
        for (int k = nd - 1; k >= n0; k--) {
            out[k] = shape[k] == 1 ? 0 : s;
            s *= shape[k];
        }
    }
    return od == on ? 0 : -1;
}

lz_array *lz_reshape(lz_array *a, int ndim, const int64_t *shape_in) {
    if (!a) return NULL;
    if (ndim < 0 || ndim > LZ_MAX_DIMS) return lz_fail("reshape: %d dimensions", ndim);
    int64_t shape[LZ_MAX_DIMS], known = 1;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = shape_in[d];
        if (shape[d] == -1) {
            if (infer >= 0) return lz_fail("reshape: more than one dimension is -1");
            infer = d;
        } else if (shape[d] < 0) {
            return lz_fail("reshape: negative dimension %lld", (long long)shape[d]);
        } else {
            known *= shape[d];
        }
    }
    int64_t n = lz_size(a);
    if (infer >= 0) shape[infer] = known ? n / known : 0;
    if (lz_shape_size(ndim, shape) != n || (infer >= 0 && known && n % known)) {
        char sa[160], sb[160];
        lz_shape_str(a, sa, sizeof sa);
        lz_format_shape(ndim, shape_in, sb, sizeof sb);
        return lz_fail("reshape: cannot reshape %s (%lld elements) into %s", sa, (long long)n, sb);
    }
    int64_t strides[LZ_MAX_DIMS];
    if (n && reshape_strides(a, ndim, shape, strides) == 0)
        return view(a, ndim, shape, strides, a->offset);
    lz_array *c = lz_node(LZ_P_COPY, a->dtype, a->ndim, a->shape, 1, &a, NULL);
    if (!c) return NULL;
    lz_contiguous_strides(ndim, shape, strides);
    lz_array *r = lz_view_of(c, ndim, shape, strides, 0);
    lz_release(c);
    return lz_autorelease(r);
}

lz_array *lz_flatten(lz_array *a, int start, int end) {
    if (!a) return NULL;
    if (a->ndim == 0) { int64_t one = 1; return lz_reshape(a, 1, &one); }
    int s = lz_axis("flatten", start, a->ndim), e = lz_axis("flatten", end, a->ndim);
    if (s < 0 || e < 0) return NULL;
    if (s > e) return lz_fail("flatten: start axis %d is after end axis %d", start, end);
    int64_t shape[LZ_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < s; d++) shape[nd++] = a->shape[d];
    int64_t m = 1;
    for (int d = s; d <= e; d++) m *= a->shape[d];
    shape[nd++] = m;
    for (int d = e + 1; d < a->ndim; d++) shape[nd++] = a->shape[d];
    return lz_reshape(a, nd, shape);
}

lz_array *lz_permute(lz_array *a, const int *axes) {
    if (!a) return NULL;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    int seen[LZ_MAX_DIMS] = {0};
    for (int d = 0; d < a->ndim; d++) {
        int ax = lz_axis("permute", axes[d], a->ndim);
        if (ax < 0) return NULL;
        if (seen[ax]++) return lz_fail("permute: axis %d appears twice", axes[d]);
        shape[d] = a->shape[ax];
        strides[d] = a->strides[ax];
    }
    return view(a, a->ndim, shape, strides, a->offset);
}

lz_array *lz_transpose(lz_array *a) {
    if (!a) return NULL;
    int axes[LZ_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) axes[d] = a->ndim - 1 - d;
    return lz_permute(a, axes);
}

lz_array *lz_swapaxes(lz_array *a, int axis1, int axis2) {
    if (!a) return NULL;
    int x = lz_axis("swapaxes", axis1, a->ndim), y = lz_axis("swapaxes", axis2, a->ndim);
    if (x < 0 || y < 0) return NULL;
    int axes[LZ_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) axes[d] = d;
    axes[x] = y;
    axes[y] = x;
    return lz_permute(a, axes);
}

lz_array *lz_expand_dims(lz_array *a, int axis) {
    if (!a) return NULL;
    if (a->ndim == LZ_MAX_DIMS)
        return lz_fail("expand_dims: arrays have at most %d dimensions", LZ_MAX_DIMS);
    int ax = lz_axis("expand_dims", axis, a->ndim + 1);
    if (ax < 0) return NULL;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    for (int d = 0, k = 0; d <= a->ndim; d++) {
        if (d == ax) { shape[d] = 1; strides[d] = 0; continue; }
        shape[d] = a->shape[k];
        strides[d] = a->strides[k++];
    }
    return view(a, a->ndim + 1, shape, strides, a->offset);
}

lz_array *lz_squeeze(lz_array *a, int axis) {
    if (!a) return NULL;
    int ax = lz_axis("squeeze", axis, a->ndim);
    if (ax < 0) return NULL;
    if (a->shape[ax] != 1)
        return lz_fail("squeeze: axis %d has size %lld, not 1", axis, (long long)a->shape[ax]);
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    for (int d = 0, k = 0; d < a->ndim; d++)
        if (d != ax) { shape[k] = a->shape[d]; strides[k++] = a->strides[d]; }
    return view(a, a->ndim - 1, shape, strides, a->offset);
}

lz_array *lz_squeeze_all(lz_array *a) {
    if (!a) return NULL;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != 1) { shape[k] = a->shape[d]; strides[k++] = a->strides[d]; }
    return view(a, k, shape, strides, a->offset);
}

lz_array *lz_broadcast_to(lz_array *a, int ndim, const int64_t *shape) {
    if (!a) return NULL;
    if (ndim < a->ndim || ndim > LZ_MAX_DIMS) goto bad;
    int64_t strides[LZ_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        int k = d - (ndim - a->ndim);
        if (k < 0) { strides[d] = 0; continue; }
        if (a->shape[k] == shape[d]) strides[d] = a->strides[k];
        else if (a->shape[k] == 1) strides[d] = 0;
        else goto bad;
    }
    return view(a, ndim, shape, strides, a->offset);
bad:;
    char sa[160], sb[160];
    lz_shape_str(a, sa, sizeof sa);
    lz_format_shape(ndim, shape, sb, sizeof sb);
    return lz_fail("broadcast_to: cannot broadcast %s to %s", sa, sb);
}

/* Python slice semantics for one axis: clamps, negative indices count from the end. */
static void slice_range(int64_t n, int64_t start, int64_t stop, int64_t step, int64_t *first,
                        int64_t *count) {
    if (step > 0) {
        if (start < 0) start += n;
        if (stop < 0) stop += n;
        start = start < 0 ? 0 : start > n ? n : start;
        stop = stop < 0 ? 0 : stop > n ? n : stop;
        *count = stop > start ? (stop - start + step - 1) / step : 0;
    } else {
        if (start < 0) start += n;
        if (stop == INT64_MIN) stop = -1;        /* "to the beginning" */
        else if (stop < 0) stop += n;
        start = start < -1 ? -1 : start >= n ? n - 1 : start;
        stop = stop < -1 ? -1 : stop >= n ? n - 1 : stop;
        *count = start > stop ? (start - stop - step - 1) / -step : 0;
    }
    *first = start;
}

lz_array *lz_slice_axis(lz_array *a, int axis, int64_t start, int64_t stop, int64_t step) {
    if (!a) return NULL;
    int ax = lz_axis("slice", axis, a->ndim);
    if (ax < 0) return NULL;
    if (step == 0) return lz_fail("slice: step must not be 0");
    int64_t first, count, shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    slice_range(a->shape[ax], start, stop, step, &first, &count);
    memcpy(shape, a->shape, sizeof shape);
    memcpy(strides, a->strides, sizeof strides);
    shape[ax] = count;
    strides[ax] = a->strides[ax] * step;
    int64_t offset = a->offset + (count ? first * a->strides[ax] : 0);
    return view(a, a->ndim, shape, strides, offset);
}

lz_array *lz_slice(lz_array *a, const int64_t *start, const int64_t *stop, const int64_t *step) {
    if (!a) return NULL;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS], offset = a->offset;
    for (int d = 0; d < a->ndim; d++) {
        int64_t st = step ? step[d] : 1;
        if (st == 0) return lz_fail("slice: step must not be 0 (axis %d)", d);
        int64_t b = start ? start[d] : st > 0 ? 0 : INT64_MAX;
        int64_t e = stop ? stop[d] : st > 0 ? INT64_MAX : INT64_MIN;
        int64_t first, count;
        slice_range(a->shape[d], b, e, st, &first, &count);
        shape[d] = count;
        strides[d] = a->strides[d] * st;
        if (count) offset += first * a->strides[d];
    }
    return view(a, a->ndim, shape, strides, offset);
}

lz_array *lz_flip(lz_array *a, int axis) {
    if (!a) return NULL;
    int ax = lz_axis("flip", axis, a->ndim);
    if (ax < 0) return NULL;
    return lz_slice_axis(a, ax, -1, INT64_MIN, -1);
}
