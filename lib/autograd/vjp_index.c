/* vjp rules of indexing, joining, sorting and scans (node layouts: lib/ops/index.c, sort.c).
 *
 * Gathers scatter their cotangent back (repeated indices accumulate), scatters gather it,
 * joins slice it apart, pad cuts its interior out, sort sends each cotangent to the position
 * its value came from, cumsum runs the other way. Indices never get a cotangent. */
#include "rules.h"

/* take(a, ix, axis): a gets scatter_add(zeros, ix, ct, axis) (take form) */
static int gather_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *a = node->inputs[0];
    g[0] = lz_scatter_add(lz_zeros_like(a), node->inputs[1], ct, (int)node->params.i[0]);
    return g[0] ? 0 : -1;
}

/* take_along_axis: inputs already broadcast to the output's shape off the axis, so the
 * scatter is in its along form; the broadcast view's own rule sums repeated rows */
static int take_along_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *a = node->inputs[0];
    g[0] = lz_scatter_add(lz_zeros_like(a), node->inputs[1], ct, (int)node->params.i[0]);
    return g[0] ? 0 : -1;
}

/* scatter_add(a, ix, u): a gets ct; u gets ct gathered at the same indices */
static int scatter_add_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    lz_array *ix = node->inputs[1];
    int axis = (int)node->params.i[0];
    if (w[0] && !(g[0] = lz_autorelease(lz_retain(ct)))) return -1;
    if (w[2]) {
        g[2] = node->params.i[1] ? lz_take_along_axis(ct, ix, axis) : lz_take(ct, ix, axis);
        if (!g[2]) return -1;
    }
    return 0;
}

/* concatenate: each input gets its range of the axis */
static int concat_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    int axis = (int)node->params.i[0];
    int64_t at = 0;
    for (int k = 0; k < node->ninputs; k++) {
        int64_t n = node->inputs[k]->shape[axis];
        if (w[k] && !(g[k] = lz_slice_axis(ct, axis, at, at + n, 1))) return -1;
        at += n;
    }
    return 0;
}

/* pad: the interior of the cotangent */
static int pad_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *a = node->inputs[0];
    int64_t start[LZ_MAX_DIMS], stop[LZ_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        start[d] = node->params.i[2 * d];
        stop[d] = start[d] + a->shape[d];
    }
    g[0] = lz_slice(ct, start, stop, NULL);
    return g[0] ? 0 : -1;
}

/* sort: out[j] = a[p[j]] with p the (stable) argsort in the same direction, so a gets
 * scatter_add(zeros, p, ct) along the axis. The ARGSORT node is built here because ops.h
 * has no descending argsort; its params are SORT's own. */
static int sort_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    lz_array *a = node->inputs[0];
    lz_array *p = lz_autorelease(lz_node(LZ_P_ARGSORT, LZ_I64, a->ndim, a->shape, 1, &a,
                                         &node->params));
    g[0] = p ? lz_scatter_add(lz_zeros_like(a), p, ct, (int)node->params.i[0]) : NULL;
    return g[0] ? 0 : -1;
}

/* cumsum: each input element feeds every later (earlier, reversed) output */
static int cumsum_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    g[0] = lz_cumsum(ct, (int)node->params.i[0], !node->params.i[1]);
    return g[0] ? 0 : -1;
}

void ad_register_index(void) {
    lz_prims[LZ_P_GATHER].vjp = gather_vjp;
    lz_prims[LZ_P_TAKE_ALONG].vjp = take_along_vjp;
    lz_prims[LZ_P_SCATTER_ADD].vjp = scatter_add_vjp;
    lz_prims[LZ_P_CONCAT].vjp = concat_vjp;
    lz_prims[LZ_P_PAD].vjp = pad_vjp;
    lz_prims[LZ_P_SORT].vjp = sort_vjp;
    lz_prims[LZ_P_CUMSUM].vjp = cumsum_vjp;
}
