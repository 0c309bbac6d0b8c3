/* Initializers: lazy random arrays with the scales of PyTorch's torch.nn.init. Each is one
 * random node (times a constant), so a model's initialisation evaluates in one pass; only the
 * orthogonal initializer computes at once (a QR factorisation on the host). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn_internal.h"

void lz_init_fans(int ndim, const int64_t *shape, double *fan_in, double *fan_out) {
    double fi = 1, fo = 1;
    if (ndim == 1) {
        fi = fo = (double)shape[0];
    } else if (ndim >= 2) {
        double rf = 1;   /* receptive field: the kernel's spatial size */
        for (int d = 2; d < ndim; d++) rf *= (double)shape[d];
        fi = (double)shape[1] * rf;
        fo = (double)shape[0] * rf;
    }
    if (fan_in) *fan_in = fi;
    if (fan_out) *fan_out = fo;
}

double lz_init_gain(const char *nl, double param) {
    if (!nl) { lz_fail("lz_init_gain: nonlinearity is NULL"); return -1; }
    if (!strcmp(nl, "linear") || !strcmp(nl, "conv") || !strcmp(nl, "conv1d") ||
        !strcmp(nl, "conv2d") || !strcmp(nl, "sigmoid"))
        return 1;
    if (!strcmp(nl, "tanh")) return 5.0 / 3.0;
    if (!strcmp(nl, "relu")) return sqrt(2.0);
    if (!strcmp(nl, "leaky_relu")) return sqrt(2.0 / (1 + param * param));
    if (!strcmp(nl, "selu")) return 0.75;
    lz_fail("lz_init_gain: unknown nonlinearity \"%s\" (linear, conv, sigmoid, tanh, relu, "
            "leaky_relu, selu)", nl);
    return -1;
}

static int check(const char *op, int ndim, const int64_t *shape, lz_dtype t) {
    if (!lz_dtype_is_float(t)) {
        lz_fail("%s: dtype %s is not a float dtype", op, lz_dtype_name(t));
        return -1;
    }
    if (ndim < 0 || ndim > LZ_MAX_DIMS || (ndim && !shape)) {
        lz_fail("%s: bad shape (%d dimensions)", op, ndim);
        return -1;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) {
            lz_fail("%s: negative dimension %lld", op, (long long)shape[d]);
            return -1;
        }
    return 0;
}

lz_array *lz_init_zeros(int ndim, const int64_t *shape, lz_dtype t) {
    return check("init_zeros", ndim, shape, t) ? NULL : lz_zeros(ndim, shape, t);
}

lz_array *lz_init_ones(int ndim, const int64_t *shape, lz_dtype t) {
    return check("init_ones", ndim, shape, t) ? NULL : lz_ones(ndim, shape, t);
}

lz_array *lz_init_constant(int ndim, const int64_t *shape, double v, lz_dtype t) {
    return check("init_constant", ndim, shape, t) ? NULL : lz_full(ndim, shape, v, t);
}

lz_array *lz_init_uniform(lz_key key, int ndim, const int64_t *shape, double lo, double hi,
                          lz_dtype t) {
    if (check("init_uniform", ndim, shape, t)) return NULL;
    if (!(lo <= hi)) return lz_fail("init_uniform: lo %g > hi %g", lo, hi);
    if (lo == hi) return lz_full(ndim, shape, lo, t);
    return lz_random_uniform(key, ndim, shape, lo, hi, t);
}

lz_array *lz_init_normal(lz_key key, int ndim, const int64_t *shape, double mean, double std,
                         lz_dtype t) {
    if (check("init_normal", ndim, shape, t)) return NULL;
    if (!(std >= 0)) return lz_fail("init_normal: std %g < 0", std);
    return lz_random_normal(key, ndim, shape, mean, std, t);
}

lz_array *lz_init_truncated_normal(lz_key key, int ndim, const int64_t *shape, double mean,
                                   double std, double lo, double hi, lz_dtype t) {
    if (check("init_truncated_normal", ndim, shape, t)) return NULL;
    if (!(std > 0)) return lz_fail("init_truncated_normal: std %g must be > 0", std);
    if (!(lo < hi)) return lz_fail("init_truncated_normal: lo %g must be < hi %g", lo, hi);
    /* standard bounds, then scaled and shifted: one random node and two fused ops */
    lz_pool_push();
    lz_array *z = lz_random_truncated_normal(key, ndim, shape, (lo - mean) / std,
                                             (hi - mean) / std, LZ_F32);
    lz_array *r = lz_retain(lz_astype(lz_add_scalar(lz_mul_scalar(z, std), mean), t));
    lz_pool_pop();
    return lz_autorelease(r);
}

/* fan_in + fan_out, failing for an empty fan */
static double fan_sum(const char *op, int ndim, const int64_t *shape) {
    double fi, fo;
    lz_init_fans(ndim, shape, &fi, &fo);
    if (fi + fo <= 0) { lz_fail("%s: the shape has no fan (an empty or 0-d shape)", op); return -1; }
    return fi + fo;
}

lz_array *lz_init_xavier_uniform(lz_key key, int ndim, const int64_t *shape, double gain,
                                 lz_dtype t) {
    if (check("init_xavier_uniform", ndim, shape, t)) return NULL;
    double f = fan_sum("init_xavier_uniform", ndim, shape);
    if (f < 0) return NULL;
    double b = gain * sqrt(6.0 / f);
    return lz_init_uniform(key, ndim, shape, -b, b, t);
}

lz_array *lz_init_xavier_normal(lz_key key, int ndim, const int64_t *shape, double gain,
                                lz_dtype t) {
    if (check("init_xavier_normal", ndim, shape, t)) return NULL;
    double f = fan_sum("init_xavier_normal", ndim, shape);
    if (f < 0) return NULL;
    return lz_random_normal(key, ndim, shape, 0, gain * sqrt(2.0 / f), t);
}

static double kaiming_std(const char *op, int ndim, const int64_t *shape, double gain,
                          lz_fan_mode mode) {
    double fi, fo;
    lz_init_fans(ndim, shape, &fi, &fo);
    double fan = mode == LZ_FAN_OUT ? fo : fi;
    if (fan <= 0) { lz_fail("%s: the shape has an empty fan", op); return -1; }
    return gain / sqrt(fan);
}

lz_array *lz_init_kaiming_uniform(lz_key key, int ndim, const int64_t *shape, double gain,
                                  lz_fan_mode mode, lz_dtype t) {
    if (check("init_kaiming_uniform", ndim, shape, t)) return NULL;
    double s = kaiming_std("init_kaiming_uniform", ndim, shape, gain, mode);
    if (s < 0) return NULL;
    return lz_init_uniform(key, ndim, shape, -sqrt(3.0) * s, sqrt(3.0) * s, t);
}

lz_array *lz_init_kaiming_normal(lz_key key, int ndim, const int64_t *shape, double gain,
                                 lz_fan_mode mode, lz_dtype t) {
    if (check("init_kaiming_normal", ndim, shape, t)) return NULL;
    double s = kaiming_std("init_kaiming_normal", ndim, shape, gain, mode);
    if (s < 0) return NULL;
    return lz_random_normal(key, ndim, shape, 0, s, t);
}

lz_array *lz_init_orthogonal(lz_key key, int ndim, const int64_t *shape, double gain,
                             lz_dtype t) {
    if (check("init_orthogonal", ndim, shape, t)) return NULL;
    if (ndim < 2) return lz_fail("init_orthogonal: needs at least 2 dimensions, got %d", ndim);
    int64_t rows = shape[0], cols = lz_shape_size(ndim - 1, shape + 1);
    if (rows == 0 || cols == 0) return lz_zeros(ndim, shape, t);
    /* QR of the taller orientation: A is m x n, m >= n, stored column-major in a */
    int64_t m = rows >= cols ? rows : cols, n = rows >= cols ? cols : rows;
    int64_t two[2] = {rows, cols};
    float *f = malloc((size_t)(rows * cols) * sizeof *f);
    double *a = malloc((size_t)(rows * cols) * sizeof *a);
    if (!f || !a) { free(f); free(a); return lz_fail("init_orthogonal: out of memory"); }
    lz_pool_push();   /* the draw is a temporary whatever pool the caller has open */
    int rc = lz_to_float(lz_random_normal(key, 2, two, 0, 1, LZ_F32), f, rows * cols);
    lz_pool_pop();
    if (rc) { free(f); free(a); return NULL; }
    /* column j of A: row j of the draw when rows < cols (the transpose), else column j */
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++)
            a[j * m + i] = rows >= cols ? f[i * cols + j] : f[j * cols + i];
    /* modified Gram-Schmidt, twice per column: R's diagonal comes out positive, which is the
     * sign correction torch applies to its Householder QR */
    for (int64_t j = 0; j < n; j++) {
        double *v = a + j * m;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t k = 0; k < j; k++) {
                const double *q = a + k * m;
                double d = 0;
                for (int64_t i = 0; i < m; i++) d += q[i] * v[i];
                for (int64_t i = 0; i < m; i++) v[i] -= d * q[i];
            }
        double nrm = 0;
        for (int64_t i = 0; i < m; i++) nrm += v[i] * v[i];
        nrm = sqrt(nrm);
        for (int64_t i = 0; i < m; i++) v[i] = nrm > 0 ? v[i] / nrm : 0;
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            float x = (float)(gain * a[j * m + i]);
            if (rows >= cols) f[i * cols + j] = x;
            else f[j * cols + i] = x;
        }
    free(a);
    lz_pool_push();
    lz_array *r = lz_retain(lz_astype(lz_from_data(f, ndim, shape, LZ_F32), t));
    lz_pool_pop();
    free(f);
    if (r && lz_eval1(r)) { lz_release(r); return NULL; }
    return lz_autorelease(r);
}

lz_array *nn_default_uniform(lz_key key, int ndim, const int64_t *shape, double fan_in) {
    double b = fan_in > 0 ? 1.0 / sqrt(fan_in) : 0;
    return lz_init_uniform(key, ndim, shape, -b, b, LZ_F32);
}
