/* NN kernels: softmax, log-softmax, layer norm, RMS norm, attention, each against a naive
 * float64 reference written here. */
#include "testutil.h"

/* Not in ops.h yet (see lib/ops/nn.c): attention with the row log-sum-exp appended. */
lz_array *lz_attention_lse(lz_array *q, lz_array *k, lz_array *v, double scale, int causal);

static const int layouts[3] = {T_CONTIG, T_STRIDED, T_TRANSPOSED};

/* outer / length / inner of a row-major shape around axis */
static void split_axis(int ndim, const int64_t *shape, int axis, int64_t *outer, int64_t *len,
                       int64_t *inner) {
    *outer = *inner = 1;
    *len = ndim ? shape[axis] : 1;
    for (int d = 0; d < axis; d++) *outer *= shape[d];
    for (int d = axis + 1; d < ndim; d++) *inner *= shape[d];
}

/* Softmax (log_ = 0) or log-softmax (1) of v along axis, in double. */
static double *ref_softmax(const double *v, int ndim, const int64_t *shape, int axis, int log_) {
    int64_t outer, n, inner, total = 1;
    for (int d = 0; d < ndim; d++) total *= shape[d];
    split_axis(ndim, shape, axis, &outer, &n, &inner);
    double *r = malloc((size_t)(total ? total : 1) * sizeof *r);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const double *x = v + o * n * inner + i;
            double *y = r + o * n * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < n; k++) m = fmax(m, x[k * inner]);
            for (int64_t k = 0; k < n; k++) s += exp(x[k * inner] - m);
            for (int64_t k = 0; k < n; k++)
                y[k * inner] = log_ ? x[k * inner] - m - log(s) : exp(x[k * inner] - m) / s;
        }
    return r;
}

static void test_softmax_shapes_axes_layouts(void **state) {
    (void)state;
    static const struct { int nd; int64_t s[4]; } cases[] = {
        {0, {0}}, {1, {1}}, {1, {5}}, {1, {37}}, {2, {3, 1}}, {2, {4, 7}}, {2, {0, 4}},
        {2, {3, 0}}, {3, {2, 3, 5}}, {3, {2, 1, 33}}, {3, {5, 17, 3}}, {4, {2, 3, 1, 19}},
        {2, {17, 300}}, {2, {300, 130}},
    };
    uint64_t seed = 1;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int nd = cases[c].nd;
        const int64_t *shape = cases[c].s;
        for (int li = 0; li < 3; li++) {
            tarr x = t_rand(nd, shape, LZ_F32, -6, 6, &seed, layouts[li]);
            for (int axis = 0; axis < (nd ? nd : 1); axis++)
                for (int lg = 0; lg < 2; lg++) {
                    double *ref = ref_softmax(x.v, nd, shape, axis, lg);
                    /* the negative spelling of the same axis */
                    int ax = (axis + li) % 2 ? axis - (nd ? nd : 1) : axis;
                    lz_array *y = lg ? lz_log_softmax(x.a, ax) : lz_softmax(x.a, ax);
                    assert_non_null(y);
                    assert_int_equal(lz_dtype_of(y), LZ_F32);
                    assert_int_equal(lz_ndim(y), nd);
                    t_assert_close(y, ref, x.n, 1e-5, lg ? 1e-5 : 1e-7);
                    lz_release(y);
                    free(ref);
                }
            t_free(&x);
        }
    }
}

/* Rows summing to one, exactly where it matters: huge logits, -inf (masked), and the
 * documented NaN rows (all -inf, +inf, NaN). */
static void test_softmax_extremes(void **state) {
    (void)state;
    const double inf = INFINITY;
    double rows[][6] = {
        {1e4, -1e4, 0, 1e4 - 1, 5, -5},
        {-1e4, -1e4 + 2, -1e4 + 1, -1e4, -1e4, -1e4},
        {-inf, 3, -inf, -inf, 1, -inf},
        {-inf, -inf, -inf, -inf, -inf, 7},
        {-inf, -inf, -inf, -inf, -inf, -inf},   /* fully masked: NaN, as in PyTorch */
        {inf, 1, 2, 3, 4, 5},                   /* +inf: NaN, as in PyTorch */
        {NAN, 1, 2, 3, 4, 5},
        {1e30f, -1e30f, 0, 0, 0, 0},
    };
    int nrows = (int)(sizeof rows / sizeof *rows);
    float f[8 * 6];
    for (int i = 0; i < nrows * 6; i++) f[i] = (float)rows[i / 6][i % 6];
    int64_t shape[2] = {nrows, 6};
    lz_array *x = lz_from_data(f, 2, shape, LZ_F32);
    double v[8 * 6];
    for (int i = 0; i < nrows * 6; i++) v[i] = f[i];
    for (int lg = 0; lg < 2; lg++) {
        double *ref = ref_softmax(v, 2, shape, 1, lg);
        for (int i = 4 * 6; i < 7 * 6; i++) ref[i] = NAN;   /* what we promise */
        lz_array *y = lg ? lz_log_softmax(x, 1) : lz_softmax(x, 1);
        t_assert_close(y, ref, nrows * 6, 1e-5, 1e-6);
        /* masked entries are exactly 0 (softmax) / -inf (log-softmax) */
        float out[8 * 6];
        lz_to_float(y, out, nrows * 6);
        assert_true(out[2 * 6] == (lg ? -INFINITY : 0.0f));
        lz_release(y);
        free(ref);
    }
    /* the same along axis 0 of the transpose, as a view (panel path) and as a contiguous
     * array (column path) */
    float ft[8 * 6];
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < 6; j++) ft[j * nrows + i] = f[i * 6 + j];
    int64_t tshape[2] = {6, nrows};
    lz_array *xt[2] = {lz_transpose(x), lz_from_data(ft, 2, tshape, LZ_F32)};
    for (int lg = 0; lg < 2; lg++) {
        double *ref = ref_softmax(v, 2, shape, 1, lg);
        for (int i = 4 * 6; i < 7 * 6; i++) ref[i] = NAN;
        double reft[8 * 6];
        for (int i = 0; i < nrows; i++)
            for (int j = 0; j < 6; j++) reft[j * nrows + i] = ref[i * 6 + j];
        for (int c = 0; c < 2; c++) {
            lz_array *yt = lg ? lz_log_softmax(xt[c], 0) : lz_softmax(xt[c], 0);
            t_assert_close(yt, reft, nrows * 6, 1e-5, 1e-6);
            lz_release(yt);
        }
        free(ref);
    }
    lz_release(xt[0]);
    lz_release(xt[1]);
    lz_release(x);
}

/* Long rows in many threads' panels, and a masked long row. */
static void test_softmax_large(void **state) {
    (void)state;
    uint64_t seed = 7;
    int64_t shape[3] = {3, 257, 129};
    for (int li = 0; li < 3; li++) {
        tarr x = t_rand(3, shape, LZ_F32, -20, 20, &seed, layouts[li]);
        for (int axis = 0; axis < 3; axis++) {
            double *ref = ref_softmax(x.v, 3, shape, axis, 0);
            lz_array *y = lz_softmax(x.a, axis);
            t_assert_close(y, ref, x.n, 1e-5, 1e-7);
            lz_release(y);
            free(ref);
        }
        t_free(&x);
    }
}

static void test_softmax_dtypes(void **state) {
    (void)state;
    uint64_t seed = 3;
    int64_t shape[2] = {5, 9};
    tarr h = t_rand(2, shape, LZ_F16, -4, 4, &seed, T_CONTIG);
    lz_array *y = lz_softmax(h.a, 1);
    assert_int_equal(lz_dtype_of(y), LZ_F16);
    double *ref = ref_softmax(h.v, 2, shape, 1, 0);
    t_assert_close(y, ref, h.n, 2e-3, 1e-4);
    free(ref);
    lz_release(y);
    t_free(&h);
    tarr n = t_rand(2, shape, LZ_I32, -4, 4, &seed, T_STRIDED);
    y = lz_log_softmax(n.a, 0);
    assert_int_equal(lz_dtype_of(y), LZ_F32);
    ref = ref_softmax(n.v, 2, shape, 0, 1);
    t_assert_close(y, ref, n.n, 1e-5, 1e-5);
    free(ref);
    lz_release(y);
    t_free(&n);
}

static void test_softmax_errors(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3};
    lz_array *x = lz_zeros(2, shape, LZ_F32);
    t_assert_error(lz_softmax(x, 2), "softmax: axis 2 is out of range");
    t_assert_error(lz_log_softmax(x, -3), "log_softmax: axis -3");
    lz_fail("first");
    assert_null(lz_softmax(NULL, 0));
    assert_string_equal(lz_error(), "first");
    lz_release(x);
}

/* ---- layer norm / RMS norm ---- */

/* Over the last axis; w, b may be NULL. rms: no centring. */
static double *ref_norm(const double *v, int64_t rows, int64_t n, const double *w,
                        const double *b, double eps, int rms) {
    int64_t total = rows * n;
    double *r = malloc((size_t)(total > 0 ? total : 1) * sizeof *r);
    for (int64_t i = 0; i < rows; i++) {
        const double *x = v + i * n;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t k = 0; k < n; k++) mean += x[k];
            mean /= (double)n;
        }
        for (int64_t k = 0; k < n; k++) var += (x[k] - mean) * (x[k] - mean);
        var /= (double)n;
        for (int64_t k = 0; k < n; k++)
            r[i * n + k] = (x[k] - mean) / sqrt(var + eps) * (w ? w[k] : 1) + (b ? b[k] : 0);
    }
    return r;
}

static void check_norms(int nd, const int64_t *shape, double lo, double hi, uint64_t *seed,
                        double rtol, double atol) {
    int64_t n = shape[nd - 1], rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
    for (int li = 0; li < 3; li++) {
        tarr x = t_rand(nd, shape, LZ_F32, lo, hi, seed, layouts[li]);
        tarr w = t_rand(1, &n, LZ_F32, 0.5, 2, seed, layouts[(li + 1) % 3]);
        tarr b = t_rand(1, &n, LZ_F32, -1, 1, seed, layouts[(li + 2) % 3]);
        for (int mask = 0; mask < 4; mask++) {
            lz_array *wa = mask & 1 ? w.a : NULL, *ba = mask & 2 ? b.a : NULL;
            double eps = mask == 3 ? 1e-3 : 1e-5;
            double *ref = ref_norm(x.v, rows, n, wa ? w.v : NULL, ba ? b.v : NULL, eps, 0);
            lz_array *y = lz_layer_norm(x.a, wa, ba, eps);
            assert_non_null(y);
            t_assert_close(y, ref, x.n, rtol, atol);
            lz_release(y);
            free(ref);
            if (mask & 2) continue;
            ref = ref_norm(x.v, rows, n, wa ? w.v : NULL, NULL, eps, 1);
            y = lz_rms_norm(x.a, wa, eps);
            t_assert_close(y, ref, x.n, rtol, atol);
            lz_release(y);
            free(ref);
        }
        t_free(&x);
        t_free(&w);
        t_free(&b);
    }
}

static void test_norms_shapes_layouts(void **state) {
    (void)state;
    static const struct { int nd; int64_t s[4]; } cases[] = {
        {1, {1}}, {1, {7}}, {2, {3, 5}}, {2, {4, 1}}, {2, {0, 8}}, {3, {2, 3, 17}},
        {3, {2, 0, 3}}, {2, {70, 1000}}, {4, {2, 1, 3, 33}},
    };
    uint64_t seed = 11;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        check_norms(cases[c].nd, cases[c].s, -3, 3, &seed, 1e-5, 1e-5);
}

/* Values around 1e4 with std ~1: a one-pass float variance would lose everything. */
static void test_norms_large_offset(void **state) {
    (void)state;
    uint64_t seed = 5;
    int64_t shape[2] = {33, 1024};
    check_norms(2, shape, 1e4 - 1.7, 1e4 + 1.7, &seed, 1e-5, 2e-5);
    int64_t shape2[2] = {4, 5};
    check_norms(2, shape2, -1e4 - 1, -1e4 + 1, &seed, 1e-5, 2e-5);
}

/* A constant row has variance 0: the output is the bias (no NaN thanks to eps). */
static void test_norms_constant_rows(void **state) {
    (void)state;
    int64_t shape[2] = {2, 6}, n = 6;
    lz_array *x = lz_full(2, shape, 3.5, LZ_F32);
    lz_array *b = lz_arange(0, 6, 1, LZ_F32);
    lz_array *y = lz_layer_norm(x, NULL, b, 1e-5);
    double ref[12];
    for (int i = 0; i < 12; i++) ref[i] = i % 6;
    t_assert_close(y, ref, 12, 0, 1e-6);
    lz_release(y);
    lz_array *z = lz_rms_norm(x, NULL, 0);
    for (int i = 0; i < 12; i++) ref[i] = 1;
    t_assert_close(z, ref, 12, 1e-6, 0);
    lz_release(z);
    (void)n;
    lz_release(b);
    lz_release(x);
}

static void test_norms_dtypes(void **state) {
    (void)state;
    uint64_t seed = 9;
    int64_t shape[2] = {3, 40}, n = 40;
    tarr x = t_rand(2, shape, LZ_BF16, -2, 2, &seed, T_TRANSPOSED);
    tarr w = t_rand(1, &n, LZ_F16, 0.5, 1.5, &seed, T_CONTIG);
    lz_array *y = lz_layer_norm(x.a, w.a, NULL, 1e-5);
    assert_int_equal(lz_dtype_of(y), LZ_BF16);
    double *ref = ref_norm(x.v, 3, n, w.v, NULL, 1e-5, 0);
    t_assert_close(y, ref, x.n, 1e-2, 1e-2);
    free(ref);
    lz_release(y);
    t_free(&x);
    t_free(&w);
    tarr i = t_rand(2, shape, LZ_I64, -5, 5, &seed, T_CONTIG);
    y = lz_rms_norm(i.a, NULL, 1e-6);
    assert_int_equal(lz_dtype_of(y), LZ_F32);
    ref = ref_norm(i.v, 3, n, NULL, NULL, 1e-6, 1);
    t_assert_close(y, ref, i.n, 1e-5, 1e-6);
    free(ref);
    lz_release(y);
    t_free(&i);
}

static void test_norm_errors(void **state) {
    (void)state;
    int64_t shape[2] = {2, 4}, five = 5, four = 4, sq[2] = {1, 4};
    lz_array *x = lz_zeros(2, shape, LZ_F32);
    lz_array *w5 = lz_ones(1, &five, LZ_F32), *w4 = lz_ones(1, &four, LZ_F32);
    lz_array *w14 = lz_ones(2, sq, LZ_F32), *s = lz_scalar(1, LZ_F32);
    t_assert_error(lz_layer_norm(x, w5, NULL, 1e-5),
                   "layer_norm: weight float32[5] does not match the last axis of x float32[2,4] "
                   "(expected [4])");
    t_assert_error(lz_layer_norm(x, w4, w14, 1e-5), "layer_norm: bias float32[1,4]");
    t_assert_error(lz_rms_norm(x, w5, 1e-5), "rms_norm: weight float32[5]");
    t_assert_error(lz_rms_norm(s, NULL, 1e-5), "rms_norm: x must have at least one dimension");
    t_assert_error(lz_layer_norm(x, NULL, NULL, -1), "layer_norm: eps must be >= 0");
    lz_error_clear();
    assert_null(lz_layer_norm(NULL, w4, NULL, 1e-5));
    lz_release(x); lz_release(w5); lz_release(w4); lz_release(w14); lz_release(s);
}

/* ---- attention ---- */

typedef struct {
    int nb;                  /* batch dims of the output */
    int64_t qb[3], kb[3], vb[3];   /* batch shapes, right-aligned in nb (1 = broadcast) */
    int qn, kn, vn;          /* how many batch dims each input has */
    int64_t tq, tk, d, dv;
    int causal;
    double scale;
} attn_case;

/* Flat offset into an input's batch dims (shape `ib`, `in` dims) of output batch index b. */
static int64_t batch_off(int64_t b, int nb, const int64_t *ob, int in, const int64_t *ib) {
    int64_t idx[3], off = 0;
    for (int d = nb - 1; d >= 0; d--) { idx[d] = b % ob[d]; b /= ob[d]; }
    for (int d = 0; d < in; d++) {
        int64_t i = idx[nb - in + d];
        off = off * ib[d] + (ib[d] == 1 ? 0 : i);
    }
    return off;
}

/* Reference: [nbatch, tq, dv (+1 with lse)] in double. */
static double *ref_attention(const attn_case *c, const int64_t *ob, const double *q,
                             const double *k, const double *v, int lse) {
    int64_t nbatch = 1, w = c->dv + lse;
    for (int d = 0; d < c->nb; d++) nbatch *= ob[d];
    double scale = c->scale > 0 ? c->scale : 1 / sqrt((double)c->d);
    double *r = calloc((size_t)(nbatch * c->tq * w + 1), sizeof *r);
    double *s = malloc((size_t)(c->tk + 1) * sizeof *s);
    for (int64_t b = 0; b < nbatch; b++) {
        const double *qb = q + batch_off(b, c->nb, ob, c->qn, c->qb) * c->tq * c->d;
        const double *kb = k + batch_off(b, c->nb, ob, c->kn, c->kb) * c->tk * c->d;
        const double *vb = v + batch_off(b, c->nb, ob, c->vn, c->vb) * c->tk * c->dv;
        for (int64_t i = 0; i < c->tq; i++) {
            double *y = r + (b * c->tq + i) * w;
            int64_t n = c->causal ? i + (c->tk - c->tq) + 1 : c->tk;
            if (n > c->tk) n = c->tk;
            double m = -INFINITY, l = 0;
            for (int64_t j = 0; j < n; j++) {
                s[j] = 0;
                for (int64_t d = 0; d < c->d; d++) s[j] += qb[i * c->d + d] * kb[j * c->d + d];
                s[j] *= scale;
                m = fmax(m, s[j]);
            }
            for (int64_t j = 0; j < n; j++) l += (s[j] = exp(s[j] - m));
            for (int64_t j = 0; j < n; j++)
                for (int64_t d = 0; d < c->dv; d++) y[d] += s[j] / l * vb[j * c->dv + d];
            if (lse) y[c->dv] = n > 0 ? m + log(l) : -INFINITY;
        }
    }
    free(s);
    return r;
}

static void check_attention(const attn_case *c, int layout, uint64_t *seed) {
    int64_t qs[5], ks[5], vs[5], ob[3];
    for (int d = 0; d < c->nb; d++) ob[d] = 1;
    memcpy(qs, c->qb, (size_t)c->qn * 8);
    memcpy(ks, c->kb, (size_t)c->kn * 8);
    memcpy(vs, c->vb, (size_t)c->vn * 8);
    for (int d = 0; d < c->qn; d++) if (c->qb[d] != 1) ob[c->nb - c->qn + d] = c->qb[d];
    for (int d = 0; d < c->kn; d++) if (c->kb[d] != 1) ob[c->nb - c->kn + d] = c->kb[d];
    for (int d = 0; d < c->vn; d++) if (c->vb[d] != 1) ob[c->nb - c->vn + d] = c->vb[d];
    qs[c->qn] = c->tq; qs[c->qn + 1] = c->d;
    ks[c->kn] = c->tk; ks[c->kn + 1] = c->d;
    vs[c->vn] = c->tk; vs[c->vn + 1] = c->dv;
    tarr q = t_rand(c->qn + 2, qs, LZ_F32, -2, 2, seed, layout);
    tarr k = t_rand(c->kn + 2, ks, LZ_F32, -2, 2, seed, layouts[(layout + 1) % 3]);
    tarr v = t_rand(c->vn + 2, vs, LZ_F32, -2, 2, seed, layouts[(layout + 2) % 3]);
    for (int lse = 0; lse < 2; lse++) {
        double *ref = ref_attention(c, ob, q.v, k.v, v.v, lse);
        lz_array *y = lse ? lz_attention_lse(q.a, k.a, v.a, c->scale, c->causal)
                          : lz_attention(q.a, k.a, v.a, c->scale, c->causal);
        if (!y) fail_msg("attention failed: %s", lz_error());
        assert_int_equal(lz_ndim(y), c->nb + 2);
        int64_t n = 1;
        for (int d = 0; d < c->nb; d++) {
            assert_int_equal(lz_shape(y)[d], ob[d]);
            n *= ob[d];
        }
        assert_int_equal(lz_shape(y)[c->nb], c->tq);
        assert_int_equal(lz_shape(y)[c->nb + 1], c->dv + lse);
        n *= c->tq * (c->dv + lse);
        t_assert_close(y, ref, n, 1e-4, 2e-5);
        lz_release(y);
        free(ref);
    }
    t_free(&q);
    t_free(&k);
    t_free(&v);
}

static void test_attention_random(void **state) {
    (void)state;
    static const attn_case cases[] = {
        /* nb  qb          kb          vb         qn kn vn  tq   tk   d   dv causal scale */
        {0, {0}, {0}, {0}, 0, 0, 0, 1, 1, 1, 1, 0, 0},
        {1, {3}, {3}, {3}, 1, 1, 1, 7, 7, 16, 16, 0, 0},
        {1, {3}, {3}, {3}, 1, 1, 1, 7, 7, 16, 16, 1, 0},
        {2, {2, 3}, {2, 3}, {2, 3}, 2, 2, 2, 5, 9, 33, 33, 1, 0},      /* Tq < Tk */
        {2, {2, 3}, {2, 3}, {2, 3}, 2, 2, 2, 9, 5, 33, 33, 1, 0},      /* Tq > Tk */
        {2, {2, 3}, {3}, {1, 3}, 2, 1, 2, 6, 11, 8, 5, 0, 0.3},        /* broadcast, Dv != D */
        {2, {1, 2}, {4, 1}, {4, 2}, 2, 2, 2, 3, 4, 2, 3, 1, 0},        /* broadcast both ways */
        {1, {0}, {3}, {3}, 0, 1, 1, 4, 6, 5, 5, 1, 0},                 /* q without batch dims */
        {1, {2}, {2}, {2}, 1, 1, 1, 300, 300, 33, 33, 1, 0},           /* crosses blocks */
        {1, {2}, {2}, {2}, 1, 1, 1, 300, 300, 20, 24, 0, 0},
        {1, {2}, {2}, {2}, 1, 1, 1, 130, 290, 64, 64, 1, 0},
        {1, {2}, {2}, {2}, 1, 1, 1, 1, 200, 16, 16, 1, 0},             /* KV cache: Tq = 1 */
        {1, {0}, {0}, {0}, 1, 1, 1, 4, 4, 8, 8, 1, 0},                 /* empty batch */
        {1, {2}, {2}, {2}, 1, 1, 1, 0, 4, 8, 8, 0, 0},                 /* no queries */
        {1, {2}, {2}, {2}, 1, 1, 1, 3, 0, 8, 8, 0, 0},                 /* no keys: zeros */
        {1, {2}, {2}, {2}, 1, 1, 1, 3, 4, 0, 8, 0, 1},                 /* D = 0: mean of v */
        {1, {2}, {2}, {2}, 1, 1, 1, 3, 4, 8, 0, 1, 0},                 /* Dv = 0 */
    };
    uint64_t seed = 21;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int li = 0; li < 3; li++) check_attention(&cases[i], layouts[li], &seed);
}

/* With a KV cache, one query at the end sees every key: causal equals non-causal. */
static void test_attention_kv_cache(void **state) {
    (void)state;
    uint64_t seed = 4;
    int64_t qs[3] = {2, 1, 24}, ks[3] = {2, 77, 24};
    tarr q = t_rand(3, qs, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr k = t_rand(3, ks, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr v = t_rand(3, ks, LZ_F32, -1, 1, &seed, T_STRIDED);
    lz_array *a = lz_attention(q.a, k.a, v.a, 0, 1), *b = lz_attention(q.a, k.a, v.a, 0, 0);
    float fa[48], fb[48];
    lz_to_float(a, fa, 48);
    lz_to_float(b, fb, 48);
    assert_memory_equal(fa, fb, sizeof fa);
    lz_release(a); lz_release(b);
    t_free(&q); t_free(&k); t_free(&v);
}

/* q, k, v as views of one packed [B, T, 3, H, D] projection, heads moved forward: no copy,
 * row stride 3*H*D handed to GEMM as is. */
static void test_attention_packed_qkv(void **state) {
    (void)state;
    uint64_t seed = 12;
    int64_t shape[5] = {2, 37, 3, 4, 10};
    tarr x = t_rand(5, shape, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *h[3];
    double *vals[3];
    for (int i = 0; i < 3; i++) {
        h[i] = lz_swapaxes(lz_squeeze(lz_slice_axis(x.a, 2, i, i + 1, 1), 2), 1, 2);
        assert_true(lz_is_evaluated(h[i]));
        vals[i] = malloc(2 * 4 * 37 * 10 * sizeof(double));
        float f[2 * 4 * 37 * 10];
        lz_to_float(h[i], f, 2 * 4 * 37 * 10);
        for (int j = 0; j < 2 * 4 * 37 * 10; j++) vals[i][j] = f[j];
    }
    attn_case c = {2, {2, 4}, {2, 4}, {2, 4}, 2, 2, 2, 37, 37, 10, 10, 1, 0};
    int64_t ob[2] = {2, 4};
    double *ref = ref_attention(&c, ob, vals[0], vals[1], vals[2], 0);
    lz_array *y = lz_attention(h[0], h[1], h[2], 0, 1);
    lz_stats_reset();
    assert_int_equal(lz_eval1(y), 0);
    assert_int_equal(lz_stats().kernels, 1);   /* no copies of q, k, v */
    t_assert_close(y, ref, 2 * 4 * 37 * 10, 1e-4, 2e-5);
    free(ref);
    for (int i = 0; i < 3; i++) free(vals[i]);
    lz_pool_pop();
    t_free(&x);
}

/* Half inputs compute in float32 and come back in their dtype; mixed dtypes give float32. */
static void test_attention_dtypes(void **state) {
    (void)state;
    uint64_t seed = 31;
    int64_t qs[3] = {2, 5, 8}, ks[3] = {2, 7, 8};
    tarr q = t_rand(3, qs, LZ_F16, -1, 1, &seed, T_CONTIG);
    tarr k = t_rand(3, ks, LZ_F16, -1, 1, &seed, T_TRANSPOSED);
    tarr v = t_rand(3, ks, LZ_F16, -1, 1, &seed, T_STRIDED);
    attn_case c = {1, {2}, {2}, {2}, 1, 1, 1, 5, 7, 8, 8, 1, 0};
    int64_t ob[1] = {2};
    double *ref = ref_attention(&c, ob, q.v, k.v, v.v, 0);
    lz_array *y = lz_attention(q.a, k.a, v.a, 0, 1);
    assert_int_equal(lz_dtype_of(y), LZ_F16);
    t_assert_close(y, ref, 2 * 5 * 8, 2e-3, 2e-3);
    lz_release(y);
    tarr v32 = t_rand(3, ks, LZ_F32, -1, 1, &seed, T_CONTIG);
    free(ref);
    ref = ref_attention(&c, ob, q.v, k.v, v32.v, 0);
    y = lz_attention(q.a, k.a, v32.a, 0, 1);
    assert_int_equal(lz_dtype_of(y), LZ_F32);
    t_assert_close(y, ref, 2 * 5 * 8, 1e-4, 2e-5);
    lz_release(y);
    free(ref);
    t_free(&q); t_free(&k); t_free(&v); t_free(&v32);
}

/* Work is split by rows / blocks, never inside a sum: any thread count gives the same bits. */
static void test_threads_same_bits(void **state) {
    (void)state;
    uint64_t seed = 17;
    int64_t xs[2] = {300, 257}, qs[3] = {3, 200, 40};
    tarr x = t_rand(2, xs, LZ_F32, -5, 5, &seed, T_CONTIG);
    tarr q = t_rand(3, qs, LZ_F32, -1, 1, &seed, T_CONTIG);
    float *r[2][4];
    for (int t = 0; t < 2; t++) {
        lz_set_threads(t + 1);
        lz_pool_push();
        lz_array *ys[4] = {lz_softmax(x.a, 0), lz_softmax(x.a, 1),
                           lz_layer_norm(x.a, NULL, NULL, 1e-5),
                           lz_attention(q.a, q.a, q.a, 0, 1)};
        for (int i = 0; i < 4; i++) {
            r[t][i] = malloc((size_t)lz_size(ys[i]) * sizeof(float));
            lz_to_float(ys[i], r[t][i], lz_size(ys[i]));
        }
        lz_pool_pop();
    }
    lz_set_threads(0);
    int64_t n[4] = {x.n, x.n, x.n, q.n};
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(r[0][i], r[1][i], (size_t)n[i] * sizeof(float));
        free(r[0][i]);
        free(r[1][i]);
    }
    t_free(&x);
    t_free(&q);
}

/* T = 1024: the kernel never holds a T x T matrix (4 MiB per head). Also FLOP counts. */
static void test_attention_memory_and_flops(void **state) {
    (void)state;
    uint64_t seed = 8;
    int64_t t = 1024, d = 64, shape[3] = {2, t, d};
    tarr q = t_rand(3, shape, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr k = t_rand(3, shape, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr v = t_rand(3, shape, LZ_F32, -1, 1, &seed, T_CONTIG);
    uint64_t full = 0;
    for (int causal = 0; causal < 2; causal++) {
        size_t before = t_mem().active;
        t_mem_reset_peak();
        lz_stats_reset();
        lz_array *y = lz_attention(q.a, k.a, v.a, 0, causal);
        assert_int_equal(lz_eval1(y), 0);
        size_t out = (size_t)(2 * t * d * 4), extra = t_mem().peak - before - out;
        lz_stats_t s = lz_stats();
        assert_int_equal(s.kernels, 1);
        /* scratch only: a few blocks per thread, far below one T x T score matrix */
        if (extra >= (size_t)(t * t * 4) / 8)
            fail_msg("attention used %zu bytes besides its output", extra);
        if (!causal) {
            full = s.flops;
            assert_int_equal(full, (uint64_t)(4 * 2 * t * t * d));
        } else {
            /* masked key blocks are skipped: about half the work, plus the diagonal */
            assert_true(s.flops < full * 6 / 10 && s.flops > full / 2);
        }
        lz_release(y);
    }
    t_free(&q); t_free(&k); t_free(&v);
}

static void test_attention_errors(void **state) {
    (void)state;
    int64_t sq[3] = {2, 5, 8}, sk[3] = {2, 6, 7}, sv[3] = {2, 4, 8}, sb[3] = {3, 6, 8};
    int64_t s1[1] = {8}, s6[3] = {2, 6, 8};
    lz_array *q = lz_zeros(3, sq, LZ_F32), *k7 = lz_zeros(3, sk, LZ_F32);
    lz_array *v4 = lz_zeros(3, sv, LZ_F32), *kb = lz_zeros(3, sb, LZ_F32);
    lz_array *one = lz_zeros(1, s1, LZ_F32), *k = lz_zeros(3, s6, LZ_F32);
    t_assert_error(lz_attention(q, k7, k7, 0, 0),
                   "attention: q float32[2,5,8] and k float32[2,6,7] differ in the last "
                   "dimension");
    t_assert_error(lz_attention(q, k, v4, 0, 0),
                   "attention: k float32[2,6,8] and v float32[2,4,8] differ in the number "
                   "of keys");
    t_assert_error(lz_attention(q, kb, kb, 0, 1), "attention: batch dimensions of q float32[2,5,8], "
                   "k float32[3,6,8] and v float32[3,6,8] cannot be broadcast together");
    t_assert_error(lz_attention(one, k, k, 0, 0), "attention: q, k and v need at least 2 dimensions");
    lz_error_clear();
    assert_null(lz_attention(q, NULL, k, 0, 0));
    lz_release(q); lz_release(k7); lz_release(v4); lz_release(kb); lz_release(one); lz_release(k);
}

/* Pending inputs and a consumer: the kernel sits in a graph like any node. */
static void test_nn_in_graph(void **state) {
    (void)state;
    int64_t shape[2] = {4, 10};
    lz_pool_push();
    lz_array *x = lz_linspace(-3, 3, 40, LZ_F32);
    x = lz_reshape(x, 2, shape);
    lz_array *y = lz_mul_scalar(lz_softmax(lz_square(x), -1), 2);
    lz_array *z = lz_layer_norm(lz_transpose(y), NULL, NULL, 1e-5);
    double v[40], ref_y[40];
    for (int i = 0; i < 40; i++) {
        float f = (float)(-3 + 6.0 * i / 39);
        v[i] = f * f;
    }
    for (int i = 0; i < 4; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < 10; j++) m = fmax(m, v[i * 10 + j]);
        for (int j = 0; j < 10; j++) s += exp(v[i * 10 + j] - m);
        for (int j = 0; j < 10; j++) ref_y[j * 4 + i] = 2 * exp(v[i * 10 + j] - m) / s;
    }
    double *ref = ref_norm(ref_y, 10, 4, NULL, NULL, 1e-5, 0);
    t_assert_close(z, ref, 40, 1e-4, 1e-5);
    free(ref);
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_shapes_axes_layouts),
        cmocka_unit_test(test_softmax_extremes),
        cmocka_unit_test(test_softmax_large),
        cmocka_unit_test(test_softmax_dtypes),
        cmocka_unit_test(test_softmax_errors),
        cmocka_unit_test(test_norms_shapes_layouts),
        cmocka_unit_test(test_norms_large_offset),
        cmocka_unit_test(test_norms_constant_rows),
        cmocka_unit_test(test_norms_dtypes),
        cmocka_unit_test(test_norm_errors),
        cmocka_unit_test(test_attention_random),
        cmocka_unit_test(test_attention_kv_cache),
        cmocka_unit_test(test_attention_packed_qkv),
        cmocka_unit_test(test_attention_dtypes),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_attention_memory_and_flops),
        cmocka_unit_test(test_attention_errors),
        cmocka_unit_test(test_nn_in_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
