/* Convolution and pooling layers over NCL / NCHW inputs. The ops (lib/ops/conv.c) do the work;
 * these check the input against the layer so that errors name the module. */
#include <stdio.h>
#include <stdlib.h>
#include "nn_internal.h"

/* ---- convolutions ---- */

typedef struct {
    int nsp;   /* 1 or 2 spatial dims */
    int kernel[2], stride[2], padding[2], dilation[2], groups;
} conv_state;

static lz_array *conv_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    conv_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    int64_t cin = lz_dim(w, 1) * s->groups;
    if (lz_ndim(x) != 2 + s->nsp)
        return nn_fail(m, "input %s must be %s", nn_shape(x), s->nsp == 1 ? "[N, C, L]" : "[N, C, H, W]");
    if (lz_dim(x, 1) != cin)
        return nn_fail(m, "input %s has %lld channels (axis 1), expected %lld (weight %s)",
                       nn_shape(x), (long long)lz_dim(x, 1), (long long)cin, nn_shape(w));
    for (int d = 0; d < s->nsp; d++) {
        int64_t extent = (int64_t)s->dilation[d] * (s->kernel[d] - 1) + 1;
        if (lz_dim(x, 2 + d) + 2 * s->padding[d] < extent)
            return nn_fail(m, "input %s is smaller than the kernel (extent %lld with dilation, "
                              "padding %d) along spatial axis %d", nn_shape(x),
                           (long long)extent, s->padding[d], d);
    }
    lz_pool_push();
    lz_array *y = s->nsp == 1
        ? lz_conv1d(x, w, s->stride[0], s->padding[0], s->dilation[0], s->groups)
        : lz_conv2d(x, w, s->stride, s->padding, s->dilation, s->groups);
    if (b) {
        int64_t bs[3] = {lz_dim(b, 0), 1, 1};
        y = lz_add(y, lz_reshape(b, 1 + s->nsp, bs));
    }
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void conv_describe(const lz_module *m, char *buf, size_t n) {
    conv_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight");
    if (s->nsp == 1)
        snprintf(buf, n, "in=%lld, out=%lld, kernel=%d, stride=%d, padding=%d, dilation=%d, "
                 "groups=%d%s", (long long)(lz_dim(w, 1) * s->groups), (long long)lz_dim(w, 0),
                 s->kernel[0], s->stride[0], s->padding[0], s->dilation[0], s->groups,
                 nn_param(m, "bias") ? ", bias" : "");
    else
        snprintf(buf, n, "in=%lld, out=%lld, kernel=%dx%d, stride=%dx%d, padding=%dx%d, "
                 "dilation=%dx%d, groups=%d%s", (long long)(lz_dim(w, 1) * s->groups),
                 (long long)lz_dim(w, 0), s->kernel[0], s->kernel[1], s->stride[0], s->stride[1],
                 s->padding[0], s->padding[1], s->dilation[0], s->dilation[1], s->groups,
                 nn_param(m, "bias") ? ", bias" : "");
}

static const lz_module_kind conv_kinds[2] = {
    {"conv1d", conv_forward, conv_describe, NULL},
    {"conv2d", conv_forward, conv_describe, NULL},
};

static lz_module *conv_new(int nsp, int64_t cin, int64_t cout, const int *k, const int *st,
                           const int *pad, const int *dil, int groups, bool bias, lz_key key) {
    const char *op = conv_kinds[nsp - 1].name;
    if (cin < 1 || cout < 1 || groups < 1 || cin % groups || cout % groups)
        return lz_fail("%s: channels in=%lld, out=%lld must be >= 1 and divisible by groups=%d",
                       op, (long long)cin, (long long)cout, groups);
    conv_state *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("%s: out of memory", op);
    s->nsp = nsp;
    s->groups = groups;
    int64_t ws[4] = {cout, cin / groups, 1, 1}, bs[1] = {cout};
    double fan_in = (double)(cin / groups);
    for (int d = 0; d < nsp; d++) {
        s->kernel[d] = k[d];
        s->stride[d] = st ? st[d] : 1;
        s->padding[d] = pad ? pad[d] : 0;
        s->dilation[d] = dil ? dil[d] : 1;
        if (s->kernel[d] < 1 || s->stride[d] < 1 || s->padding[d] < 0 || s->dilation[d] < 1) {
            free(s);
            return lz_fail("%s: kernel %d, stride %d, dilation %d must be >= 1 and padding %d >= 0",
                           op, k[d], st ? st[d] : 1, dil ? dil[d] : 1, pad ? pad[d] : 0);
        }
        ws[2 + d] = k[d];
        fan_in *= k[d];
    }
    lz_key ks[2];
    lz_key_split(key, 2, ks);
    lz_module *m = lz_module_new(&conv_kinds[nsp - 1], s);
    if (!m) return NULL;
    lz_pool_push();
    lz_array *w = nn_default_uniform(ks[0], 2 + nsp, ws, fan_in);
    lz_array *b = bias ? nn_default_uniform(ks[1], 1, bs, fan_in) : NULL;
    if (!w || (bias && !b) || (bias ? LZ_EVAL(w, b) : lz_eval1(w)) ||
        lz_module_add_param(m, "weight", w) || (b && lz_module_add_param(m, "bias", b))) {
        lz_module_free(m);
        m = NULL;
    }
    lz_pool_pop();
    return m;
}

lz_module *lz_nn_conv1d(int64_t in_ch, int64_t out_ch, int kernel, int stride, int padding,
                        int dilation, int groups, bool bias, lz_key key) {
    int k[1] = {kernel}, st[1] = {stride}, p[1] = {padding}, d[1] = {dilation};
    return conv_new(1, in_ch, out_ch, k, st, p, d, groups, bias, key);
}

lz_module *lz_nn_conv2d(int64_t in_ch, int64_t out_ch, const int kernel[2], const int stride[2],
                        const int padding[2], const int dilation[2], int groups, bool bias,
                        lz_key key) {
    if (!kernel) return lz_fail("conv2d: kernel is NULL");
    return conv_new(2, in_ch, out_ch, kernel, stride, padding, dilation, groups, bias, key);
}

/* ---- pooling ---- */

typedef struct {
    bool max;
    int kernel[2], stride[2], padding[2];
} pool_state;

static lz_array *pool_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    pool_state *s = lz_module_state(m);
    if (lz_ndim(x) != 4) return nn_fail(m, "input %s must be [N, C, H, W]", nn_shape(x));
    for (int d = 0; d < 2; d++)
        if (lz_dim(x, 2 + d) + 2 * s->padding[d] < s->kernel[d])
            return nn_fail(m, "input %s is smaller than the %dx%d window (padding %dx%d)",
                           nn_shape(x), s->kernel[0], s->kernel[1], s->padding[0], s->padding[1]);
    return s->max ? lz_max_pool2d(x, s->kernel, s->stride, s->padding)
                  : lz_avg_pool2d(x, s->kernel, s->stride, s->padding);
}

static void pool_describe(const lz_module *m, char *buf, size_t n) {
    pool_state *s = lz_module_state(m);
    snprintf(buf, n, "kernel=%dx%d, stride=%dx%d, padding=%dx%d", s->kernel[0], s->kernel[1],
             s->stride[0], s->stride[1], s->padding[0], s->padding[1]);
}

static const lz_module_kind pool_kinds[2] = {
    {"avg_pool2d", pool_forward, pool_describe, NULL},
    {"max_pool2d", pool_forward, pool_describe, NULL},
};

static lz_module *pool_new(bool max, const int *k, const int *st, const int *pad) {
    const char *op = pool_kinds[max].name;
    if (!k) return lz_fail("%s: kernel is NULL", op);
    pool_state *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("%s: out of memory", op);
    s->max = max;
    for (int d = 0; d < 2; d++) {
        s->kernel[d] = k[d];
        s->stride[d] = st && st[d] ? st[d] : k[d];
        s->padding[d] = pad ? pad[d] : 0;
        if (s->kernel[d] < 1 || s->stride[d] < 1 || s->padding[d] < 0 ||
            2 * s->padding[d] > s->kernel[d]) {
            free(s);
            return lz_fail("%s: kernel %dx%d and stride must be >= 1, padding %dx%d in [0, kernel/2]",
                           op, k[0], k[1], pad ? pad[0] : 0, pad ? pad[1] : 0);
        }
    }
    return lz_module_new(&pool_kinds[max], s);
}

lz_module *lz_nn_max_pool2d(const int kernel[2], const int stride[2], const int padding[2]) {
    return pool_new(true, kernel, stride, padding);
}

lz_module *lz_nn_avg_pool2d(const int kernel[2], const int stride[2], const int padding[2]) {
    return pool_new(false, kernel, stride, padding);
}

/* ---- adaptive average pooling ---- */

typedef struct { int64_t out[2]; } adaptive_state;

/* Mean over windows [floor(i n / o), ceil((i + 1) n / o)) of axis `axis` (o outputs). */
static lz_array *adaptive_axis(lz_array *x, int axis, int64_t o) {
    int64_t n = lz_dim(x, axis);
    if (n % o == 0) {
        /* equal windows: one reshape and a mean */
        int64_t shape[LZ_MAX_DIMS];
        int nd = lz_ndim(x), k = 0;
        for (int d = 0; d < nd; d++) {
            if (d == axis) { shape[k++] = o; shape[k++] = n / o; }
            else shape[k++] = lz_dim(x, d);
        }
        int ax = axis + 1;
        return lz_mean(lz_reshape(x, nd + 1, shape), &ax, 1, 0);
    }
    lz_array **parts = malloc((size_t)o * sizeof *parts);
    if (!parts) return lz_fail("adaptive_avg_pool2d: out of memory");
    for (int64_t i = 0; i < o; i++) {
        int64_t lo = i * n / o, hi = ((i + 1) * n + o - 1) / o;
        parts[i] = lz_mean(lz_slice_axis(x, axis, lo, hi, 1), &axis, 1, 1);
    }
    lz_array *y = lz_concatenate((int)o, parts, axis);
    free(parts);
    return y;
}

static lz_array *adaptive_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    adaptive_state *s = lz_module_state(m);
    if (lz_ndim(x) != 4) return nn_fail(m, "input %s must be [N, C, H, W]", nn_shape(x));
    if (lz_dim(x, 2) < 1 || lz_dim(x, 3) < 1)
        return nn_fail(m, "input %s has an empty spatial axis", nn_shape(x));
    lz_pool_push();
    lz_array *y = adaptive_axis(adaptive_axis(x, 2, s->out[0]), 3, s->out[1]);
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void adaptive_describe(const lz_module *m, char *buf, size_t n) {
    adaptive_state *s = lz_module_state(m);
    snprintf(buf, n, "out=%lldx%lld", (long long)s->out[0], (long long)s->out[1]);
}

static const lz_module_kind adaptive_kind = {"adaptive_avg_pool2d", adaptive_forward,
                                             adaptive_describe, NULL};

lz_module *lz_nn_adaptive_avg_pool2d(int64_t oh, int64_t ow) {
    if (oh < 1 || ow < 1)
        return lz_fail("adaptive_avg_pool2d: output size %lldx%lld must be >= 1", (long long)oh,
                       (long long)ow);
    adaptive_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("adaptive_avg_pool2d: out of memory");
    s->out[0] = oh;
    s->out[1] = ow;
    return lz_module_new(&adaptive_kind, s);
}
