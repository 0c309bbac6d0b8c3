/* Indexing and joining: take, take_along_axis, scatter_add, one_hot, concatenate, stack,
 * split, pad, tile, repeat.
 *
 * Nodes and their params (for the kernels in lib/backend/cpu/index.c and the vjp rules):
 *
 *   GATHER (take)      inputs {a, indices}; i[0] = axis (normalised).
 *                      out = a.shape[:axis] + indices.shape + a.shape[axis+1:], a's dtype.
 *                      vjp: scatter_add(zeros_like(a), indices, cotangent, axis) (take form).
 *   TAKE_ALONG         inputs {a, indices}, both already broadcast (views) so that they have
 *                      out's shape except a keeps its own size on `axis`; i[0] = axis.
 *                      out[.., j, ..] = a[.., indices[.., j, ..], ..].
 *                      vjp: scatter_add(zeros_like(a), indices, cotangent, axis) (along form).
 *   SCATTER_ADD        inputs {a, indices, updates}; i[0] = axis, i[1] = form:
 *                      0 take form:  updates = a.shape[:axis] + indices.shape + a.shape[axis+1:]
 *                                    out[.., indices[j], ..] += updates[.., j, ..]
 *                      1 along form: indices (a broadcast view) and updates share one shape,
 *                                    a's except on axis; out[.., indices[.., j, ..], ..] +=
 *                                    updates[.., j, ..]
 *                      updates are contiguous and of a's dtype. Duplicates accumulate.
 *                      vjp: a gets the cotangent; updates get take (form 0) or
 *                      take_along_axis (form 1) of the cotangent with the same indices.
 *   CONCAT             inputs {x0, .., xn-1} of one dtype, equal shapes except on axis;
 *                      i[0] = axis, i[1] = n. vjp: slice each input's range on axis.
 *   PAD                inputs {a}; i[2d], i[2d+1] = before/after on axis d (>= 0);
 *                      f[0] = the constant. vjp: slice the interior out of the cotangent.
 *
 * Indices are integer arrays (uint8, int32, int64); negative ones count from the end; one out
 * of range fails the eval with a message naming the op, the index and the size. float16 and
 * bfloat16 scatter_add computes in float32. one_hot, stack, split, tile and repeat compose
 * other ops (views, equal, concatenate, reshape) and add no node of their own. */
#include <stdlib.h>
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

static int is_index_dtype(lz_dtype t) { return t == LZ_U8 || t == LZ_I32 || t == LZ_I64; }

static int check_indices(const char *op, const lz_array *ix) {
    if (is_index_dtype(ix->dtype)) return 0;
    char s[160];
    lz_fail("%s: indices must be an integer array (uint8, int32, int64), got %s", op,
            lz_shape_str(ix, s, sizeof s));
    return -1;
}

static int is_half(lz_dtype t) { return t == LZ_F16 || t == LZ_BF16; }

/* ---- take ---- */

lz_array *lz_take(lz_array *a, lz_array *indices, int axis) {
    if (!a || !indices) return NULL;
    if (check_indices("take", indices)) return NULL;
    char s[160];
    if (a->ndim == 0) return lz_fail("take: cannot index a 0-d array (%s)", lz_shape_str(a, s, sizeof s));
    int ax = lz_axis("take", axis, a->ndim);
    if (ax < 0) return NULL;
    int nd = a->ndim - 1 + indices->ndim;
    if (nd > LZ_MAX_DIMS)
        return lz_fail("take: the result would have %d dimensions (at most %d)", nd, LZ_MAX_DIMS);
    int64_t shape[LZ_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < ax; d++) shape[k++] = a->shape[d];
    for (int d = 0; d < indices->ndim; d++) shape[k++] = indices->shape[d];
    for (int d = ax + 1; d < a->ndim; d++) shape[k++] = a->shape[d];
    lz_params p = {.i = {ax}};
    lz_array *in[2] = {a, indices};
    return lz_autorelease(lz_node(LZ_P_GATHER, a->dtype, nd, shape, 2, in, &p));
}

/* ---- take_along_axis ---- */

/* The shape where a and indices meet: broadcast on every axis but `ax`, where indices rule.
 * -1 with an error when they cannot. */
static int along_shape(const char *op, const lz_array *a, const lz_array *ix, int ax,
                       int64_t *shape) {
    char sa[160], si[160];
    if (ix->ndim != a->ndim) {
        lz_fail("%s: indices %s must have as many dimensions as the array %s", op,
                lz_shape_str(ix, si, sizeof si), lz_shape_str(a, sa, sizeof sa));
        return -1;
    }
    for (int d = 0; d < a->ndim; d++) {
        int64_t x = a->shape[d], y = ix->shape[d];
        if (d == ax) shape[d] = y;
        else if (x == y || y == 1) shape[d] = x;
        else if (x == 1) shape[d] = y;
        else {
            lz_fail("%s: indices %s do not broadcast against the array %s on axis %d", op,
                    lz_shape_str(ix, si, sizeof si), lz_shape_str(a, sa, sizeof sa), d);
            return -1;
        }
    }
    return 0;
}

lz_array *lz_take_along_axis(lz_array *a, lz_array *indices, int axis) {
    if (!a || !indices) return NULL;
    if (check_indices("take_along_axis", indices)) return NULL;
    char s[160];
    if (a->ndim == 0)
        return lz_fail("take_along_axis: cannot index a 0-d array (%s)", lz_shape_str(a, s, sizeof s));
    int ax = lz_axis("take_along_axis", axis, a->ndim);
    if (ax < 0) return NULL;
    int64_t shape[LZ_MAX_DIMS], ashape[LZ_MAX_DIMS];
    if (along_shape("take_along_axis", a, indices, ax, shape)) return NULL;
    memcpy(ashape, shape, sizeof shape);
    ashape[ax] = a->shape[ax];
    lz_pool_push();
    lz_array *in[2] = {lz_broadcast_to(a, a->ndim, ashape), lz_broadcast_to(indices, a->ndim, shape)};
    lz_params p = {.i = {ax}};
    lz_array *r = lz_node(LZ_P_TAKE_ALONG, a->dtype, a->ndim, shape, 2, in, &p);
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- scatter_add ---- */

lz_array *lz_scatter_add(lz_array *a, lz_array *indices, lz_array *updates, int axis) {
    if (!a || !indices || !updates) return NULL;
    if (check_indices("scatter_add", indices)) return NULL;
    char sa[160], si[160], su[160], se[160];
    if (a->ndim == 0)
        return lz_fail("scatter_add: cannot index a 0-d array (%s)", lz_shape_str(a, sa, sizeof sa));
    int ax = lz_axis("scatter_add", axis, a->ndim);
    if (ax < 0) return NULL;
    /* take form: updates shaped like take(a, indices, axis) */
    int64_t want[2 * LZ_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < ax; d++) want[nd++] = a->shape[d];
    for (int d = 0; d < indices->ndim; d++) want[nd++] = indices->shape[d];
    for (int d = ax + 1; d < a->ndim; d++) want[nd++] = a->shape[d];
    int along = -1;
    if (updates->ndim == nd && !memcmp(updates->shape, want, (size_t)nd * sizeof *want)) {
        along = 0;
    } else if (indices->ndim == a->ndim && updates->ndim == a->ndim) {
        /* along form: updates have a's shape but on axis; indices broadcast to updates */
        along = 1;
        for (int d = 0; d < a->ndim; d++) {
            int64_t u = updates->shape[d], x = indices->shape[d];
            if ((d != ax && u != a->shape[d]) || (x != u && x != 1)) along = -1;
        }
        memcpy(want, a->shape, sizeof a->shape);
        want[ax] = indices->shape[ax];
        nd = a->ndim;
    }
    if (along < 0) {
        lz_format_shape(nd, want, se, sizeof se);
        return lz_fail("scatter_add: updates %s do not fit indices %s on axis %d of %s "
                       "(expected updates of shape %s)",
                       lz_shape_str(updates, su, sizeof su), lz_shape_str(indices, si, sizeof si),
                       ax, lz_shape_str(a, sa, sizeof sa), se);
    }
    lz_dtype t = is_half(a->dtype) ? LZ_F32 : a->dtype;
    lz_pool_push();
    lz_array *ix = along ? lz_broadcast_to(indices, updates->ndim, updates->shape) : indices;
    lz_array *in[3] = {lz_astype(a, t), ix, lz_contiguous(lz_astype(updates, t))};
    lz_params p = {.i = {ax, along}};
    lz_array *r = lz_node(LZ_P_SCATTER_ADD, t, a->ndim, a->shape, 3, in, &p);
    if (r && t != a->dtype) {
        lz_autorelease(r);
        r = lz_retain(lz_astype(r, a->dtype));
    }
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- one_hot: equal(indices[..., None], arange(depth)) ---- */

lz_array *lz_one_hot(lz_array *indices, int64_t depth, lz_dtype t) {
    if (!indices) return NULL;
    if (check_indices("one_hot", indices)) return NULL;
    if (depth < 0) return lz_fail("one_hot: negative depth %lld", (long long)depth);
    if ((unsigned)t >= LZ_NDTYPES) return lz_fail("one_hot: unknown dtype %d", (int)t);
    lz_pool_push();
    lz_array *r = lz_astype(lz_equal(lz_expand_dims(indices, -1),
                                     lz_arange(0, (double)depth, 1, LZ_I64)), t);
    lz_retain(r);
    lz_pool_pop();
    return lz_autorelease(r);
}

/* ---- concatenate, stack ---- */

lz_array *lz_concatenate(int n, lz_array *const *arrays, int axis) {
    if (n <= 0) return lz_fail("concatenate: needs at least one array, got %d", n);
    for (int k = 0; k < n; k++) if (!arrays[k]) return NULL;
    const lz_array *a0 = arrays[0];
    char s0[160], sk[160];
    if (a0->ndim == 0)
        return lz_fail("concatenate: zero-dimensional arrays cannot be concatenated (array 0 is %s)",
                       lz_shape_str(a0, s0, sizeof s0));
    int ax = lz_axis("concatenate", axis, a0->ndim);
    if (ax < 0) return NULL;
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, a0->shape, sizeof shape);
    shape[ax] = 0;
    lz_dtype t = a0->dtype;
    for (int k = 0; k < n; k++) {
        const lz_array *x = arrays[k];
        int ok = x->ndim == a0->ndim;
        for (int d = 0; ok && d < a0->ndim; d++) ok = d == ax || x->shape[d] == a0->shape[d];
        if (!ok)
            return lz_fail("concatenate: array %d has shape %s, which does not match array 0's "
                           "%s outside axis %d", k, lz_shape_str(x, sk, sizeof sk),
                           lz_shape_str(a0, s0, sizeof s0), ax);
        shape[ax] += x->shape[ax];
        t = lz_promote_types(t, x->dtype);
    }
    if (n == 1) return lz_autorelease(lz_retain(arrays[0]));
    lz_array **in = malloc((size_t)n * sizeof *in);
    if (!in) return lz_fail("concatenate: out of memory");
    lz_pool_push();
    for (int k = 0; k < n; k++) in[k] = lz_astype(arrays[k], t);
    lz_params p = {.i = {ax, n}};
    lz_array *r = lz_node(LZ_P_CONCAT, t, a0->ndim, shape, n, in, &p);
    lz_pool_pop();
    free(in);
    return lz_autorelease(r);
}

lz_array *lz_stack(int n, lz_array *const *arrays, int axis) {
    if (n <= 0) return lz_fail("stack: needs at least one array, got %d", n);
    for (int k = 0; k < n; k++) if (!arrays[k]) return NULL;
    const lz_array *a0 = arrays[0];
    char s0[160], sk[160];
    for (int k = 1; k < n; k++) {
        const lz_array *x = arrays[k];
        if (x->ndim != a0->ndim || memcmp(x->shape, a0->shape, (size_t)a0->ndim * sizeof *x->shape))
            return lz_fail("stack: array %d has shape %s, array 0 has %s; all must be equal", k,
                           lz_shape_str(x, sk, sizeof sk), lz_shape_str(a0, s0, sizeof s0));
    }
    if (a0->ndim == LZ_MAX_DIMS)
        return lz_fail("stack: arrays have at most %d dimensions", LZ_MAX_DIMS);
    int ax = lz_axis("stack", axis, a0->ndim + 1);
    if (ax < 0) return NULL;
    lz_array **in = malloc((size_t)n * sizeof *in);
    if (!in) return lz_fail("stack: out of memory");
    lz_pool_push();
    for (int k = 0; k < n; k++) in[k] = lz_expand_dims(arrays[k], ax);
    lz_array *r = lz_retain(lz_concatenate(n, in, ax));
    lz_pool_pop();
    free(in);
    return lz_autorelease(r);
}

/* ---- split: equal sections as views ---- */

int lz_split(lz_array *a, int sections, int axis, lz_array **out) {
    if (!a) return -1;
    if (sections <= 0) { lz_fail("split: %d sections; need at least 1", sections); return -1; }
    char s[160];
    if (a->ndim == 0) {
        lz_fail("split: cannot split a 0-d array (%s)", lz_shape_str(a, s, sizeof s));
        return -1;
    }
    int ax = lz_axis("split", axis, a->ndim);
    if (ax < 0) return -1;
    int64_t n = a->shape[ax];
    if (n % sections) {
        lz_fail("split: axis %d of %s (size %lld) cannot be split into %d equal sections", ax,
                lz_shape_str(a, s, sizeof s), (long long)n, sections);
        return -1;
    }
    int64_t m = n / sections;
    int ok = 1;
    lz_pool_push();
    for (int k = 0; k < sections; k++) {
        out[k] = lz_retain(lz_slice_axis(a, ax, k * m, (k + 1) * m, 1));
        ok = ok && out[k];
    }
    lz_pool_pop();
    for (int k = 0; k < sections; k++) {
        if (!ok) { lz_release(out[k]); out[k] = NULL; }
        else lz_autorelease(out[k]);
    }
    return ok ? 0 : -1;
}

/* ---- pad ---- */

lz_array *lz_pad(lz_array *a, const int64_t *pads, double value) {
    if (!a) return NULL;
    if (!pads && a->ndim) return lz_fail("pad: pads is NULL");
    int64_t shape[LZ_MAX_DIMS];
    int any = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (pads[2 * d] < 0 || pads[2 * d + 1] < 0) {
            char s[160];
            return lz_fail("pad: negative padding (%lld, %lld) on axis %d of %s",
                           (long long)pads[2 * d], (long long)pads[2 * d + 1], d,
                           lz_shape_str(a, s, sizeof s));
        }
        shape[d] = a->shape[d] + pads[2 * d] + pads[2 * d + 1];
        any |= pads[2 * d] || pads[2 * d + 1];
    }
    if (!any) return lz_autorelease(lz_retain(a));
    lz_params p = {.f = {value}};
    for (int d = 0; d < 2 * a->ndim; d++) p.i[d] = pads[d];
    return lz_autorelease(lz_node(LZ_P_PAD, a->dtype, a->ndim, shape, 1, &a, &p));
}

/* ---- tile and repeat: a broadcast view with a new axis next to each repeated one, then a
 * reshape that merges them (it copies, once, unless strides can express the result) ---- */

lz_array *lz_tile(lz_array *a, const int64_t *reps) {
    if (!a) return NULL;
    if (!reps && a->ndim) return lz_fail("tile: reps is NULL");
    int nrep = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (reps[d] < 0)
            return lz_fail("tile: negative repetition %lld on axis %d", (long long)reps[d], d);
        nrep += reps[d] != 1;
    }
    if (!nrep) return lz_autorelease(lz_retain(a));
    lz_pool_push();
    lz_array *r = a;
    if (a->ndim + nrep <= LZ_MAX_DIMS) {
        /* [.., reps[d], shape[d], ..] in one view */
        int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS], final[LZ_MAX_DIMS];
        int k = 0;
        for (int d = 0; d < a->ndim; d++) {
            if (reps[d] != 1) { shape[k] = reps[d]; strides[k++] = 0; }
            shape[k] = a->shape[d];
            strides[k++] = a->strides[d];
            final[d] = a->shape[d] * reps[d];
        }
        r = lz_autorelease(lz_view_of(a, k, shape, strides, a->offset));
        r = lz_reshape(r, a->ndim, final);
    } else {
        /* one axis at a time */
        for (int d = 0; d < a->ndim && r; d++) {
            if (reps[d] == 1) continue;
            int64_t shape[LZ_MAX_DIMS], final[LZ_MAX_DIMS];
            memcpy(final, r->shape, sizeof final);
            final[d] *= reps[d];
            lz_array *e = lz_expand_dims(r, d);
            if (!e) { r = NULL; break; }
            memcpy(shape, e->shape, sizeof shape);
            shape[d] = reps[d];
            r = lz_reshape(lz_broadcast_to(e, e->ndim, shape), a->ndim, final);
        }
    }
    lz_retain(r);
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_repeat(lz_array *a, int64_t repeats, int axis) {
    if (!a) return NULL;
    if (repeats < 0) return lz_fail("repeat: negative repetition count %lld", (long long)repeats);
    lz_pool_push();
    lz_array *x = a;
    if (a->ndim == 0) {
        int64_t one = 1;
        x = lz_reshape(a, 1, &one);
    }
    lz_array *r = NULL;
    int ax = lz_axis("repeat", axis, x->ndim);
    if (ax >= 0) {
        int64_t shape[LZ_MAX_DIMS], final[LZ_MAX_DIMS];
        memcpy(final, x->shape, sizeof final);
        final[ax] *= repeats;
        lz_array *e = lz_expand_dims(x, ax + 1);
        if (e) {
            memcpy(shape, e->shape, sizeof shape);
            shape[ax + 1] = repeats;
            r = repeats == 1 ? x : lz_reshape(lz_broadcast_to(e, e->ndim, shape), x->ndim, final);
        }
    }
    lz_retain(r);
    lz_pool_pop();
    return lz_autorelease(r);
}
