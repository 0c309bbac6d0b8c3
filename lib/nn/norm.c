/* Normalisation layers: batch norm (1d, 2d) with running statistics, layer norm, RMS norm,
 * group norm. Layer and RMS norm use the fused kernels of lib/ops/nn.c; group norm reshapes
 * its groups into rows for the layer-norm kernel; batch norm is composed of reductions and
 * elementwise ops (they fuse). */
#include <stdio.h>
#include <stdlib.h>
#include "../autograd/autograd.h"
#include "nn_internal.h"

/* ---- batch norm ---- */

typedef struct {
    int nd_min, nd_max;   /* accepted input ranks: 1d [N, C] / [N, C, L], 2d [N, C, H, W] */
    double eps, momentum;
} bn_state;

/* v [C] as [1, C, 1, ...] for an input of rank nd */
static lz_array *per_channel(lz_array *v, int nd) {
    int64_t shape[LZ_MAX_DIMS];
    for (int d = 0; d < nd; d++) shape[d] = 1;
    shape[1] = lz_dim(v, 0);
    return lz_reshape(v, nd, shape);
}

static lz_array *bn_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    bn_state *s = lz_module_state(m);
    lz_array *rm = nn_param(m, "running_mean"), *rv = nn_param(m, "running_var");
    lz_array *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    int nd = lz_ndim(x);
    int64_t c = lz_dim(rm, 0);
    if (nd < s->nd_min || nd > s->nd_max)
        return nn_fail(m, "input %s must be %s", nn_shape(x),
                       s->nd_max == 4 ? "[N, C, H, W]" : "[N, C] or [N, C, L]");
    if (lz_dim(x, 1) != c)
        return nn_fail(m, "input %s has %lld channels (axis 1), expected %lld", nn_shape(x),
                       (long long)lz_dim(x, 1), (long long)c);
    if (!lz_dtype_is_float(lz_dtype_of(x)))
        return nn_fail(m, "input %s must be a float array", nn_shape(x));
    int axes[LZ_MAX_DIMS], na = 0;
    int64_t count = 1;
    for (int d = 0; d < nd; d++)
        if (d != 1) { axes[na++] = d; count *= lz_dim(x, d); }
    bool training = lz_module_is_training(m);
    if (training && count < 2)
        return nn_fail(m, "training needs more than one value per channel, input is %s",
                       nn_shape(x));
    lz_pool_push();
    lz_array *y;
    if (training) {
        lz_array *mean = lz_mean(x, axes, na, 1);
        lz_array *xc = lz_sub(x, mean);
        lz_array *var = lz_mean(lz_square(xc), axes, na, 1);
        y = lz_mul(xc, lz_rsqrt(lz_add_scalar(var, s->eps)));
        /* running statistics: no gradient, unbiased variance (as PyTorch) */
        int64_t cs[1] = {c};
        lz_array *bm = lz_stop_gradient(lz_reshape(mean, 1, cs));
        lz_array *bv = lz_stop_gradient(lz_reshape(var, 1, cs));
        double mo = s->momentum, unbias = (double)count / (double)(count - 1);
        lz_array *nm = lz_add(lz_mul_scalar(rm, 1 - mo), lz_mul_scalar(bm, mo));
        lz_array *nv = lz_add(lz_mul_scalar(rv, 1 - mo), lz_mul_scalar(bv, mo * unbias));
        if (nm && nv) {
            nn_set_buffer(m, "running_mean", lz_astype(nm, LZ_F32));
            nn_set_buffer(m, "running_var", lz_astype(nv, LZ_F32));
        }
    } else {
        y = lz_mul(lz_sub(x, per_channel(rm, nd)),
                   lz_rsqrt(lz_add_scalar(per_channel(rv, nd), s->eps)));
    }
    if (w) y = lz_mul(y, per_channel(w, nd));
    if (b) y = lz_add(y, per_channel(b, nd));
    if (y) y = lz_astype(y, lz_dtype_of(x));
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void bn_describe(const lz_module *m, char *buf, size_t n) {
    bn_state *s = lz_module_state(m);
    snprintf(buf, n, "channels=%lld, eps=%g, momentum=%g%s",
             (long long)lz_dim(nn_param(m, "running_mean"), 0), s->eps, s->momentum,
             nn_param(m, "weight") ? ", affine" : "");
}

static const lz_module_kind bn_kinds[2] = {
    {"batch_norm1d", bn_forward, bn_describe, NULL},
    {"batch_norm2d", bn_forward, bn_describe, NULL},
};

/* Adds weight (ones) and bias (zeros) of size n when wanted; 0 or -1. */
static int add_affine(lz_module *m, int64_t n, bool weight, bool bias) {
    int rc = 0;
    lz_pool_push();
    if (weight) {
        lz_array *w = lz_ones(1, &n, LZ_F32);
        rc = lz_eval1(w) || lz_module_add_param(m, "weight", w);
    }
    if (bias && !rc) {
        lz_array *b = lz_zeros(1, &n, LZ_F32);
        rc = lz_eval1(b) || lz_module_add_param(m, "bias", b);
    }
    lz_pool_pop();
    return rc ? -1 : 0;
}

static lz_module *bn_new(int two_d, int64_t c, double eps, double momentum, bool affine) {
    const char *op = bn_kinds[two_d].name;
    if (c < 1) return lz_fail("%s: channels %lld must be >= 1", op, (long long)c);
    if (!(eps >= 0)) return lz_fail("%s: eps %g must be >= 0", op, eps);
    if (!(momentum >= 0 && momentum <= 1)) return lz_fail("%s: momentum %g is not in [0, 1]", op, momentum);
    bn_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("%s: out of memory", op);
    *s = (bn_state){two_d ? 4 : 2, two_d ? 4 : 3, eps, momentum};
    lz_module *m = lz_module_new(&bn_kinds[two_d], s);
    if (!m) return NULL;
    int rc = add_affine(m, c, affine, affine);
    lz_pool_push();
    lz_array *rm = lz_zeros(1, &c, LZ_F32), *rv = lz_ones(1, &c, LZ_F32);
    rc = rc || LZ_EVAL(rm, rv) || lz_module_add_buffer(m, "running_mean", rm) ||
         lz_module_add_buffer(m, "running_var", rv);
    lz_pool_pop();
    if (rc) { lz_module_free(m); return NULL; }
    return m;
}

lz_module *lz_nn_batch_norm1d(int64_t channels, double eps, double momentum, bool affine) {
    return bn_new(0, channels, eps, momentum, affine);
}

lz_module *lz_nn_batch_norm2d(int64_t channels, double eps, double momentum, bool affine) {
    return bn_new(1, channels, eps, momentum, affine);
}

/* ---- layer norm, RMS norm ---- */

typedef struct { double eps; int64_t dim; } ln_state;

static lz_array *check_last(lz_module *m, lz_array *x, int64_t n) {
    if (lz_ndim(x) < 1 || lz_dim(x, -1) != n)
        return nn_fail(m, "input %s must end in an axis of %lld", nn_shape(x), (long long)n);
    return x;
}

static lz_array *layer_norm_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    ln_state *s = lz_module_state(m);
    if (!check_last(m, x, s->dim)) return NULL;
    return lz_layer_norm(x, nn_param(m, "weight"), nn_param(m, "bias"), s->eps);
}

static lz_array *rms_norm_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    ln_state *s = lz_module_state(m);
    if (!check_last(m, x, s->dim)) return NULL;
    return lz_rms_norm(x, nn_param(m, "weight"), s->eps);
}

static void ln_describe(const lz_module *m, char *buf, size_t n) {
    ln_state *s = lz_module_state(m);
    snprintf(buf, n, "dim=%lld, eps=%g%s%s", (long long)s->dim, s->eps,
             nn_param(m, "weight") ? ", weight" : "", nn_param(m, "bias") ? ", bias" : "");
}

static const lz_module_kind layer_norm_kind = {"layer_norm", layer_norm_forward, ln_describe, NULL};
static const lz_module_kind rms_norm_kind = {"rms_norm", rms_norm_forward, ln_describe, NULL};

static lz_module *ln_new(const lz_module_kind *kind, int64_t dim, double eps, bool w, bool b) {
    if (dim < 1) return lz_fail("%s: dim %lld must be >= 1", kind->name, (long long)dim);
    if (!(eps >= 0)) return lz_fail("%s: eps %g must be >= 0", kind->name, eps);
    ln_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("%s: out of memory", kind->name);
    *s = (ln_state){eps, dim};
    lz_module *m = lz_module_new(kind, s);
    if (m && add_affine(m, dim, w, b)) { lz_module_free(m); return NULL; }
    return m;
}

lz_module *lz_nn_layer_norm(int64_t dim, double eps, bool affine, bool bias) {
    return ln_new(&layer_norm_kind, dim, eps, affine, affine && bias);
}

lz_module *lz_nn_rms_norm(int64_t dim, double eps, bool affine) {
    return ln_new(&rms_norm_kind, dim, eps, affine, false);
}

/* ---- group norm ---- */

typedef struct { double eps; int64_t groups, channels; } gn_state;

static lz_array *group_norm_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    gn_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    int nd = lz_ndim(x);
    if (nd < 2 || lz_dim(x, 1) != s->channels)
        return nn_fail(m, "input %s must be [N, %lld, ...]", nn_shape(x), (long long)s->channels);
    lz_pool_push();
    /* each (sample, group) is one row of the layer-norm kernel */
    int64_t rows[3] = {lz_dim(x, 0), s->groups, -1};
    lz_array *y = lz_size(x) == 0 ? x : lz_layer_norm(lz_reshape(x, 3, rows), NULL, NULL, s->eps);
    y = lz_reshape(y, nd, lz_shape(x));
    if (w) y = lz_mul(y, per_channel(w, nd));
    if (b) y = lz_add(y, per_channel(b, nd));
    if (y) y = lz_astype(y, lz_dtype_of(x));
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void gn_describe(const lz_module *m, char *buf, size_t n) {
    gn_state *s = lz_module_state(m);
    snprintf(buf, n, "groups=%lld, channels=%lld, eps=%g%s", (long long)s->groups,
             (long long)s->channels, s->eps, nn_param(m, "weight") ? ", affine" : "");
}

static const lz_module_kind group_norm_kind = {"group_norm", group_norm_forward, gn_describe, NULL};

lz_module *lz_nn_group_norm(int64_t groups, int64_t channels, double eps, bool affine) {
    if (groups < 1 || channels < 1 || channels % groups)
        return lz_fail("group_norm: channels %lld must be >= 1 and divisible by groups %lld",
                       (long long)channels, (long long)groups);
    if (!(eps >= 0)) return lz_fail("group_norm: eps %g must be >= 0", eps);
    gn_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("group_norm: out of memory");
    *s = (gn_state){eps, groups, channels};
    lz_module *m = lz_module_new(&group_norm_kind, s);
    if (m && add_affine(m, channels, affine, affine)) { lz_module_free(m); return NULL; }
    return m;
}
