/* The vjp of VIEW nodes, from layouts alone.
 *
 * A view node records only its layout (shape, strides, offset) over its input's buffer, not
 * which op built it, and views are made in many places (shape ops, broadcasting in
 * elementwise constructors, reductions, split...). So the rule reads the layouts:
 *
 *   1. decode   the input's layout is nested (no overlap): each buffer address it covers
 *               decodes to one of its elements. Decoding the view's first element and its
 *               neighbour along each axis gives the view as a strided view of the input's
 *               LOGICAL (row-major) index space: offset o and logical strides T (0 on
 *               broadcast axes, negative on flipped ones). Corners are re-decoded to check.
 *   2. embed    the cotangent goes back through that logical view: broadcast axes are
 *               summed, flipped axes flipped back, axes sorted by stride (undoing a
 *               permutation), then, innermost first, each axis's rows are padded with zeros
 *               up to its stride (a slice with a step, or a slice of an inner axis) and
 *               merged into the next; the whole is placed at o in a flat array of the
 *               input's size and reshaped to its shape.
 * Transposes, broadcasts, reshapes, expand/squeeze and flips need no padding: the cotangent
 * comes back as a permuted/summed/reshaped view. Padding is lz_pad (whose own rule is a
 * slice), so the rule is itself differentiable.
 *
 * The input's buffer positions that are repeated (a broadcast input) are decoded to index 0
 * of the repeated axes: the cotangent of such an input goes to one of the equal elements,
 * which the input's own view rule then sums back correctly. */
#include <string.h>
#include "rules.h"

/* ---- 1. decoding buffer addresses into an input's logical index ---- */
typedef struct {
    int n;
    int64_t base;                  /* lowest address covered */
    int64_t step[LZ_MAX_DIMS];     /* |stride|, largest first */
    int64_t size[LZ_MAX_DIMS];
    int64_t logical[LZ_MAX_DIMS];  /* row-major stride of that axis in the input */
    bool flip[LZ_MAX_DIMS];
} decoder;

static int decoder_init(decoder *d, const lz_array *in) {
    int64_t cs[LZ_MAX_DIMS];
    lz_contiguous_strides(in->ndim, in->shape, cs);
    d->n = 0;
    d->base = in->offset;
    for (int a = 0; a < in->ndim; a++) {
        int64_t s = in->strides[a];
        if (in->shape[a] == 1 || s == 0) continue;   /* index 0 on repeated axes */
        if (s < 0) d->base += (in->shape[a] - 1) * s;
        int j = d->n++;
        int64_t m = s < 0 ? -s : s;
        while (j > 0 && d->step[j - 1] < m) {
            d->step[j] = d->step[j - 1];
            d->size[j] = d->size[j - 1];
            d->logical[j] = d->logical[j - 1];
            d->flip[j] = d->flip[j - 1];
            j--;
        }
        d->step[j] = m;
        d->size[j] = in->shape[a];
        d->logical[j] = cs[a];
        d->flip[j] = s < 0;
    }
    int64_t span = 0;
    for (int j = d->n - 1; j >= 0; j--) {
        if (d->step[j] <= span) return -1;   /* overlapping layout: not decodable */
        span += (d->size[j] - 1) * d->step[j];
    }
    return 0;
}

/* The input's row-major index at buffer address addr, or -1 when it covers no such address. */
static int64_t decode(const decoder *d, int64_t addr) {
    int64_t r = addr - d->base, lin = 0;
    if (r < 0) return -1;
    for (int j = 0; j < d->n; j++) {
        int64_t q = r / d->step[j];
        if (q >= d->size[j]) return -1;
        r -= q * d->step[j];
        lin += (d->flip[j] ? d->size[j] - 1 - q : q) * d->logical[j];
    }
    return r ? -1 : lin;
}

/* ---- 2. embedding ---- */

/* x [..., L] with `before` and `after` zeros on its last axis. */
static lz_array *pad_last(lz_array *x, int64_t before, int64_t after) {
    if (!x || (!before && !after)) return x;
    int64_t pads[2 * LZ_MAX_DIMS] = {0};
    pads[2 * x->ndim - 2] = before;
    pads[2 * x->ndim - 1] = after;
    return lz_pad(x, pads, 0);
}

/* x [..., L] cut to its first n elements on the last axis (only zeros are cut). */
static lz_array *cut_last(lz_array *x, int64_t n) { return lz_slice_axis(x, -1, 0, n, 1); }

static void *fail(const lz_array *node, const lz_array *in, const char *why) {
    char sv[160], si[160];
    lz_format_shape(node->ndim, node->strides, sv, sizeof sv);
    lz_format_shape(in->ndim, in->strides, si, sizeof si);
    return lz_fail("view: cannot differentiate the view %s (strides %s, offset %lld) of %s "
                   "(strides %s, offset %lld): %s",
                   lz_shape_str(node, (char[160]){0}, 160), sv, (long long)node->offset,
                   lz_shape_str(in, (char[160]){0}, 160), si, (long long)in->offset, why);
}

/* The cotangent of `in` from ct, the cotangent of a logical view of it with strides T and
 * offset o (T and o are modified). */
static lz_array *embed(lz_array *node, lz_array *in, lz_array *ct, int64_t *T, int64_t o) {
    int nd = node->ndim;
    const int64_t *S = node->shape;
    int sum_axes[LZ_MAX_DIMS], nsum = 0, keep[LZ_MAX_DIMS], nkeep = 0;
    lz_array *x = ct;
    for (int j = 0; j < nd; j++) {
        if (S[j] == 1) continue;
        if (T[j] == 0) { sum_axes[nsum++] = j; continue; }
        if (T[j] < 0) {   /* flipped axis: flip the cotangent back */
            x = lz_flip(x, j);
            o += (S[j] - 1) * T[j];
            T[j] = -T[j];
        }
        int k = nkeep++;   /* insertion sort by logical stride, largest first */
        while (k > 0 && T[keep[k - 1]] < T[j]) { keep[k] = keep[k - 1]; k--; }
        keep[k] = j;
    }
    if (nsum) x = lz_sum(x, sum_axes, nsum, 1);
    /* permute the kept axes outermost-first behind the others (all of size 1 now) */
    int perm[LZ_MAX_DIMS], np = 0;
    bool kept[LZ_MAX_DIMS] = {false};
    for (int k = 0; k < nkeep; k++) kept[keep[k]] = true;
    for (int j = 0; j < nd; j++) if (!kept[j]) perm[np++] = j;
    for (int k = 0; k < nkeep; k++) perm[np++] = keep[k];
    if (nd) x = lz_permute(x, perm);
    int64_t shape[LZ_MAX_DIMS + 1], t[LZ_MAX_DIMS], c[LZ_MAX_DIMS];
    for (int k = 0; k < nkeep; k++) { shape[k] = S[keep[k]]; t[k] = T[keep[k]]; }

    /* per-axis offsets: o = sum c_k t_k + r, greedily from the outermost axis */
    int64_t r = o;
    for (int k = 0; k < nkeep; k++) { c[k] = r / t[k]; r -= c[k] * t[k]; }
    /* a dry run: does the cotangent fill the input exactly (no padding at all)? */
    int64_t N = lz_size(in), before = r, used = 1, L = 1;
    bool plain = true;
    for (int k = nkeep - 1; k >= 0; k--) {
        if (before + used > t[k]) return fail(node, in, "rows overlap");
        plain = plain && before == 0 && L == t[k];
        used = before + (shape[k] - 1) * t[k] + used;
        L = shape[k] * t[k];
        before = c[k] * t[k];
    }
    if (before + used > N) return fail(node, in, "it reaches past the input");
    if (plain && before == 0 && L == N) return lz_reshape(x, in->ndim, in->shape);

    shape[nkeep] = 1;
    x = lz_reshape(x, nkeep + 1, shape);
    before = r;
    L = 1;
    for (int k = nkeep - 1; k >= 0 && x; k--) {
        int64_t after = t[k] - before - L;
        if (after < 0) { x = cut_last(x, L + after); L += after; after = 0; }
        x = pad_last(x, before, after);
        shape[k] = shape[k] * t[k];   /* merge axis k with its rows */
        if (x) x = lz_reshape(x, k + 1, shape);
        L = shape[k];
        before = c[k] * t[k];
    }
    if (!x) return NULL;
    int64_t after = N - before - L;
    if (after < 0) { x = cut_last(x, L + after); after = 0; }
    x = pad_last(x, before, after);
    return x ? lz_reshape(x, in->ndim, in->shape) : NULL;
}

static int view_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    (void)w;
    switch (ad_tag(node)) {   /* marked views of the transforms (rules.h) */
    case AD_STOP_TAG: return 0;
    case AD_DEPENDS_TAG:
    case AD_BLOCK_IN_TAG: g[0] = ct; return 0;   /* the input's own layout: the identity */
    case AD_BLOCK_OUT_TAG:   /* the transforms recompute the block instead */
        lz_fail("view: internal error: a checkpointed block's output reached the view rule");
        return -1;
    default: break;
    }
    lz_array *in = node->inputs[0];
    if (!lz_size(node) || !lz_size(in)) return 0;
    decoder d;
    if (decoder_init(&d, in)) { fail(node, in, "the input's layout overlaps itself"); return -1; }
    int64_t o = decode(&d, node->offset), T[LZ_MAX_DIMS];
    if (o < 0) { fail(node, in, "its first element is not one of the input's"); return -1; }
    int nd = node->ndim, axes[LZ_MAX_DIMS], na = 0;
    for (int j = 0; j < nd; j++) {
        T[j] = 0;
        if (node->shape[j] == 1 || node->strides[j] == 0) continue;
        int64_t next = decode(&d, node->offset + node->strides[j]);
        if (next < 0) { fail(node, in, "an element is not one of the input's"); return -1; }
        T[j] = next - o;
        axes[na++] = j;
    }
    /* the decoded strides must hold at every corner of the view */
    for (int64_t m = 1; m < ((int64_t)1 << na); m++) {
        int64_t addr = node->offset, want = o;
        for (int k = 0; k < na; k++)
            if (m >> k & 1) {
                addr += (node->shape[axes[k]] - 1) * node->strides[axes[k]];
                want += (node->shape[axes[k]] - 1) * T[axes[k]];
            }
        if (decode(&d, addr) != want) {
            fail(node, in, "it is not a strided view of the input's elements");
            return -1;
        }
    }
    g[0] = embed(node, in, ct, T, o);
    return g[0] ? 0 : -1;
}

void ad_register_view(void) { lz_prims[LZ_P_VIEW].vjp = view_vjp; }
