/* Helpers shared by the tests of lib/nn: reading arrays into doubles, randomising a module's
 * parameters, and the float64 reference pieces several tests use. */
#ifndef LZ_NN_TESTUTIL_H
#define LZ_NN_TESTUTIL_H

#include "testutil.h"
#include "nn/nn.h"

/* a's values (row-major, logical order) as a malloc'ed double array */
static inline double *nt_vals(lz_array *a) {
    int64_t n = lz_size(a);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    lz_pool_push();
    lz_array *c = lz_astype(a, LZ_F32);
    if (lz_to_float(c, f, n)) fail_msg("nt_vals: %s", lz_error());
    lz_pool_pop();
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* The parameter at path of m, as doubles. */
static inline double *nt_param(lz_module *m, const char *path) {
    lz_array *p = lz_module_param(m, path);
    if (!p) fail_msg("no parameter %s: %s", path, lz_error());
    return nt_vals(p);
}

/* Replaces every parameter of m by uniform values in [lo, hi) (so that ones/zeros defaults
 * do not hide mistakes in the tests). */
static inline void nt_randomize(lz_module *m, double lo, double hi, uint64_t seed) {
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_PARAMS, &l), 0);
    for (int i = 0; i < l.n; i++) {
        lz_array *cur = *l.items[i].slot;
        tarr r = t_rand(lz_ndim(cur), lz_shape(cur), LZ_F32, lo, hi, &seed, T_CONTIG);
        assert_int_equal(lz_param_set(&l.items[i], r.a), 0);
        t_free(&r);
    }
    lz_named_list_free(&l);
}

/* an evaluated float32 array from doubles */
__attribute__((noinline, unused)) static lz_array *nt_array(int ndim, const int64_t *shape, const double *v) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    lz_array *a = lz_from_data(f, ndim, shape, LZ_F32);
    free(f);
    return a;
}

/* y[r, o] = b[o] + sum_i x[r, i] w[o, i] for rows r < nr (w is [out, in]); b may be NULL */
static inline void nt_linear(const double *x, int64_t nr, int64_t in, const double *w,
                             const double *b, int64_t out, double *y) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int64_t i = 0; i < in; i++) s += x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
}

/* layer norm over rows of n (w, b may be NULL); rms when rms != 0 */
static inline void nt_norm(const double *x, int64_t nr, int64_t n, const double *w,
                           const double *b, double eps, int rms, double *y) {
    for (int64_t r = 0; r < nr; r++) {
        const double *xr = x + r * n;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t i = 0; i < n; i++) mean += xr[i];
            mean /= (double)n;
        }
        for (int64_t i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= (double)n;
        for (int64_t i = 0; i < n; i++)
            y[r * n + i] = (xr[i] - mean) / sqrt(var + eps) * (w ? w[i] : 1) + (b ? b[i] : 0);
    }
}

static inline double nt_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static inline double nt_silu(double x) { return x / (1 + exp(-x)); }

#endif
