/* Convolution and pooling constructors: one node each, of the window primitives CONV,
 * POOL_MAX and POOL_AVG. The geometry, the modes (forward, input gradient, weight gradient /
 * gather), the params layout and the vjp rules are in conv.h.
 *
 * Conventions of the public constructors (ops.h):
 *   - layouts NCW / NCHW, weights [O, C/groups, (kH,) kW]; no bias (the layer adds it);
 *   - conv2d: stride, padding, dilation may be NULL (1, 0, 1); padding is symmetric;
 *   - pools: stride NULL or an entry 0 means "= kernel" (PyTorch's default), padding NULL
 *     means 0 and may be at most half the kernel (PyTorch's rule: no window is all padding);
 *     max pool pads with -inf; avg pool counts the padding in the divisor
 *     (count_include_pad=True, PyTorch's default); floor mode (no ceil_mode);
 *   - float dtypes only: float16/bfloat16 are computed in float32 and cast back; integer
 *     inputs are an error (cast them first).
 * The inputs of a node: x and dy may have any layout (the kernel reads them through their
 * strides); a CONV weight is made contiguous here when it is not (GEMM reads it as a
 * matrix [O, C/groups*KH*KW]). */
#include <string.h>
#include "../core/internal.h"
#include "conv.h"
#include "ops.h"

static const char *op_name(lz_prim_id prim, const lz_window *g) {
    static const char *names[3][2] = {{"conv1d", "conv2d"}, {"max_pool1d", "max_pool2d"},
                                      {"avg_pool1d", "avg_pool2d"}};
    int k = prim == LZ_P_CONV ? 0 : prim == LZ_P_POOL_MAX ? 1 : 2;
    return names[k][g->nsp == 2];
}

/* The operands' roles by mode, for messages and shape checks. */
enum { X, W, DY, H };
static void roles(lz_prim_id prim, int mode, int r[2]) {
    static const int conv[3][2] = {{X, W}, {DY, W}, {X, DY}};
    static const int pmax[3][2] = {{X, -1}, {X, DY}, {X, H}};
    if (prim == LZ_P_CONV) { r[0] = conv[mode][0]; r[1] = conv[mode][1]; }
    else if (prim == LZ_P_POOL_MAX) { r[0] = pmax[mode][0]; r[1] = pmax[mode][1]; }
    else { r[0] = mode == LZ_WIN_FORWARD ? X : DY; r[1] = -1; }
}

static const char *role_name(int r) {
    static const char *n[] = {"input", "weight", "output gradient", "gathered array"};
    return n[r];
}

/* Checks the geometry itself; -1 with an error. */
static int check_geometry(const char *op, lz_prim_id prim, const lz_window *g) {
    static const char *axis[2] = {"H", "W"};
    int pool = prim != LZ_P_CONV;
    int max_mode = prim == LZ_P_POOL_AVG ? LZ_WIN_INPUT_GRAD : LZ_WIN_WEIGHT_GRAD;
    if (g->mode < 0 || g->mode > max_mode || (g->nsp != 1 && g->nsp != 2)) {
        lz_fail("%s: invalid mode %d or %d spatial dims", op, g->mode, g->nsp);
        return -1;
    }
    if (!pool && g->groups < 1) {
        lz_fail("%s: groups must be >= 1, got %lld", op, (long long)g->groups);
        return -1;
    }
    for (int d = 2 - g->nsp; d < 2; d++) {
        const char *ax = g->nsp == 2 ? axis[d] : "W";
        if (g->kernel[d] < 1 || g->stride[d] < 1 || g->dilation[d] < 1 || g->in[d] < 0 ||
            g->pad_lo[d] < 0 || g->pad_hi[d] < 0) {
            lz_fail("%s: along %s: kernel %lld, stride %lld, dilation %lld must be >= 1 and "
                    "padding %lld+%lld >= 0", op, ax, (long long)g->kernel[d],
                    (long long)g->stride[d], (long long)g->dilation[d],
                    (long long)g->pad_lo[d], (long long)g->pad_hi[d]);
            return -1;
        }
        int64_t extent = g->dilation[d] * (g->kernel[d] - 1) + 1;
        int64_t padded = g->in[d] + g->pad_lo[d] + g->pad_hi[d];
        if (extent > padded) {
            lz_fail("%s: kernel extent %lld is larger than the padded input %lld along %s",
                    op, (long long)extent, (long long)padded, ax);
            return -1;
        }
        if (pool && (2 * g->pad_lo[d] > g->kernel[d] || 2 * g->pad_hi[d] > g->kernel[d])) {
            lz_fail("%s: padding %lld is more than half the kernel %lld along %s", op,
                    (long long)(g->pad_lo[d] > g->pad_hi[d] ? g->pad_lo[d] : g->pad_hi[d]),
                    (long long)g->kernel[d], ax);
            return -1;
        }
    }
    if (g->nsp == 1 && (g->in[0] != 1 || g->kernel[0] != 1 || g->stride[0] != 1 ||
                        g->dilation[0] != 1 || g->pad_lo[0] || g->pad_hi[0])) {
        lz_fail("%s: a 1-d geometry must have H = 1", op);
        return -1;
    }
    return 0;
}

/* The shape a tensor of role r must have, given N, C, O (-1 = not known yet). */
static void role_shape(int r, const lz_window *g, int64_t n, int64_t c, int64_t o,
                       int64_t *shape) {
    int nsp = g->nsp;
    int64_t sp[2];
    for (int d = 0; d < 2; d++)
        sp[d] = r == W ? g->kernel[d] : r == DY ? lz_window_out(g, d) : g->in[d];
    shape[0] = r == W ? o : n;
    shape[1] = r == W ? (c < 0 ? -1 : c / g->groups) : r == DY ? o : c;
    for (int d = 0; d < nsp; d++) shape[2 + d] = sp[2 - nsp + d];
}

static int shape_matches(const lz_array *a, int nd, const int64_t *want) {
    if (a->ndim != nd) return 0;
    for (int d = 0; d < nd; d++)
        if (want[d] >= 0 && a->shape[d] != want[d]) return 0;
    return 1;
}

lz_array *lz_window_node(lz_prim_id prim, const lz_window *g, lz_array *a, lz_array *b) {
    if (prim != LZ_P_CONV && prim != LZ_P_POOL_MAX && prim != LZ_P_POOL_AVG)
        return lz_fail("window node: %s is not a window primitive",
                       (unsigned)prim < LZ_NPRIMS ? lz_prims[prim].name : "?");
    const char *op = op_name(prim, g);
    if (check_geometry(op, prim, g)) return NULL;
    int r[2];
    roles(prim, g->mode, r);
    lz_array *xs[2] = {a, b};
    int nin = r[1] < 0 ? 1 : 2, nd = g->nsp + 2;
    char s0[160], s1[160];
    for (int i = 0; i < nin; i++) {
        if (!xs[i]) return NULL;
        if (xs[i]->ndim != nd)
            return lz_fail("%s: %s must be %d-d (%s), got %s", op, role_name(r[i]), nd,
                           r[i] == W ? (nd == 4 ? "[O, C/groups, kH, kW]" : "[O, C/groups, kW]")
                                     : (nd == 4 ? "[N, C, H, W]" : "[N, C, W]"),
                           lz_shape_str(xs[i], s0, sizeof s0));
        if (!lz_dtype_is_float(xs[i]->dtype))
            return lz_fail("%s: %s must be a float array, got %s (cast it first)", op,
                           role_name(r[i]), lz_shape_str(xs[i], s0, sizeof s0));
    }
    /* N, C, O from the operands, then every operand checked against the geometry */
    int64_t n = -1, c = -1, o = -1;
    for (int i = 0; i < nin; i++) {
        const lz_array *t = xs[i];
        if (r[i] == X || r[i] == H) { n = t->shape[0]; c = t->shape[1]; }
        else if (r[i] == DY) { n = t->shape[0]; o = t->shape[1]; }
        else o = t->shape[0];
    }
    if (prim == LZ_P_CONV) {
        if (c < 0) c = xs[1]->shape[1] * g->groups;     /* INPUT_GRAD: from the weight */
        if (c % g->groups)
            return lz_fail("%s: input channels %lld are not divisible by groups %lld", op,
                           (long long)c, (long long)g->groups);
        if (o % g->groups)
            return lz_fail("%s: output channels %lld are not divisible by groups %lld", op,
                           (long long)o, (long long)g->groups);
    } else {
        o = c >= 0 ? c : o;
        c = o;
    }
    for (int i = 0; i < nin; i++) {
        int64_t want[4];
        role_shape(r[i], g, n, c, o, want);
        if (!shape_matches(xs[i], nd, want)) {
            char sw[160];
            lz_format_shape(nd, want, sw, sizeof sw);
            if (r[i] == W && xs[i]->shape[1] * g->groups != c)
                return lz_fail("%s: input %s has %lld channels but weight %s expects "
                               "%lld * groups %lld", op,
                               lz_shape_str(xs[0], s1, sizeof s1), (long long)c,
                               lz_shape_str(xs[i], s0, sizeof s0),
                               (long long)xs[i]->shape[1], (long long)g->groups);
            return lz_fail("%s: %s is %s, expected %s", op, role_name(r[i]),
                           lz_shape_str(xs[i], s0, sizeof s0), sw);
        }
    }
    /* the output: the role the mode produces */
    int out_role = g->mode == LZ_WIN_FORWARD ? DY
                 : g->mode == LZ_WIN_INPUT_GRAD ? X
                 : prim == LZ_P_CONV ? W : DY;
    int64_t shape[4];
    role_shape(out_role, g, n, c, o, shape);
    lz_dtype rt = a->dtype;
    if (nin == 2 && b->dtype != rt) rt = LZ_F32;
    lz_params p;
    lz_window_to_params(g, &p);

    lz_pool_push();
    lz_array *in[2] = {NULL, NULL}, *out = NULL;
    for (int i = 0; i < nin; i++) {
        in[i] = lz_astype(xs[i], LZ_F32);
        if (in[i] && r[i] == W && !lz_is_contiguous(in[i])) in[i] = lz_copy(in[i]);
    }
    if (in[0] && (nin == 1 || in[1])) {
        out = lz_autorelease(lz_node(prim, LZ_F32, nd, shape, nin, in, &p));
        if (rt != LZ_F32) out = lz_astype(out, rt);
    }
    lz_retain(out);
    lz_pool_pop();
    return lz_autorelease(out);
}

/* ---- public constructors ---- */

static lz_array *conv(int nsp, lz_array *x, lz_array *w, const int *stride, const int *padding,
                      const int *dilation, int groups) {
    if (!x || !w) return NULL;
    const char *op = nsp == 2 ? "conv2d" : "conv1d";
    char s[160];
    int nd = nsp + 2;
    if (x->ndim != nd)
        return lz_fail("%s: input must be %s, got %s", op,
                       nsp == 2 ? "[N, C, H, W]" : "[N, C, W]", lz_shape_str(x, s, sizeof s));
    if (w->ndim != nd)
        return lz_fail("%s: weight must be %s, got %s", op,
                       nsp == 2 ? "[O, C/groups, kH, kW]" : "[O, C/groups, kW]",
                       lz_shape_str(w, s, sizeof s));
    lz_window g = {.mode = LZ_WIN_FORWARD, .nsp = nsp, .groups = groups, .count_pad = 1,
                   .in = {1, 1}, .kernel = {1, 1}, .stride = {1, 1}, .dilation = {1, 1}};
    for (int d = 0; d < nsp; d++) {
        int k = 2 - nsp + d;
        g.in[k] = x->shape[2 + d];
        g.kernel[k] = w->shape[2 + d];
        g.stride[k] = stride ? stride[d] : 1;
        g.pad_lo[k] = g.pad_hi[k] = padding ? padding[d] : 0;
        g.dilation[k] = dilation ? dilation[d] : 1;
    }
    return lz_window_node(LZ_P_CONV, &g, x, w);
}

lz_array *lz_conv1d(lz_array *x, lz_array *w, int stride, int padding, int dilation, int groups) {
    return conv(1, x, w, &stride, &padding, &dilation, groups);
}

lz_array *lz_conv2d(lz_array *x, lz_array *w, const int stride[2], const int padding[2],
                    const int dilation[2], int groups) {
    return conv(2, x, w, stride, padding, dilation, groups);
}

static lz_array *pool(lz_prim_id prim, int nsp, lz_array *x, const int *kernel,
                      const int *stride, const lz_window *base, const int *padding) {
    if (!x) return NULL;
    lz_window g = *base;
    const char *op = op_name(prim, &g);
    char s[160];
    if (x->ndim != nsp + 2)
        return lz_fail("%s: input must be %s, got %s", op,
                       nsp == 2 ? "[N, C, H, W]" : "[N, C, W]", lz_shape_str(x, s, sizeof s));
    if (!kernel) return lz_fail("%s: kernel size is NULL", op);
    for (int d = 0; d < nsp; d++) {
        int k = 2 - nsp + d;
        g.in[k] = x->shape[2 + d];
        g.kernel[k] = kernel[d];
        g.stride[k] = stride && stride[d] ? stride[d] : kernel[d];
        g.pad_lo[k] = g.pad_hi[k] = padding ? padding[d] : 0;
    }
    return lz_window_node(prim, &g, x, NULL);
}

static const lz_window pool2 = {.mode = LZ_WIN_FORWARD, .nsp = 2, .groups = 1, .count_pad = 1,
                                .in = {1, 1}, .kernel = {1, 1}, .stride = {1, 1},
                                .dilation = {1, 1}};
static const lz_window pool1 = {.mode = LZ_WIN_FORWARD, .nsp = 1, .groups = 1, .count_pad = 1,
                                .in = {1, 1}, .kernel = {1, 1}, .stride = {1, 1},
                                .dilation = {1, 1}};

lz_array *lz_max_pool2d(lz_array *x, const int kernel[2], const int stride[2], const int padding[2]) {
    return pool(LZ_P_POOL_MAX, 2, x, kernel, stride, &pool2, padding);
}

lz_array *lz_avg_pool2d(lz_array *x, const int kernel[2], const int stride[2], const int padding[2]) {
    return pool(LZ_P_POOL_AVG, 2, x, kernel, stride, &pool2, padding);
}

lz_array *lz_max_pool1d(lz_array *x, int kernel, int stride, int padding) {
    return pool(LZ_P_POOL_MAX, 1, x, &kernel, &stride, &pool1, &padding);
}

lz_array *lz_avg_pool1d(lz_array *x, int kernel, int stride, int padding) {
    return pool(LZ_P_POOL_AVG, 1, x, &kernel, &stride, &pool1, &padding);
}
