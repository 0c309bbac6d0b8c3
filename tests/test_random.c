/* Random: Philox known answers, the stream layout, determinism (threads, shapes, slices),
 * keys, the statistics of every distribution against formulas computed here in double, and
 * error paths. Seeds are fixed, so the statistical bounds (4-6 standard errors) are checked
 * once and cannot flake. */
#include "testutil.h"
#include "core/philox.h"

#define N_STAT 1000000

/* Values of a (any dtype) as doubles; caller frees. */
static double *values(lz_array *a) {
    int64_t n = lz_size(a);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (lz_dtype_is_float(lz_dtype_of(a))) {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        assert_int_equal(lz_to_float(a, f, n), 0);
        for (int64_t i = 0; i < n; i++) v[i] = f[i];
        free(f);
    } else {
        int64_t *q = malloc((size_t)(n ? n : 1) * sizeof *q);
        assert_int_equal(lz_to_int(a, q, n), 0);
        for (int64_t i = 0; i < n; i++) v[i] = (double)q[i];
        free(q);
    }
    return v;
}

static void moments(const double *v, int64_t n, double *mean, double *var) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *var = s2 / (double)(n - 1);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov distance of the samples (sorted in place) from cdf. */
static double ks(double *v, int64_t n, double (*cdf)(double, const double *), const double *arg) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        double f = cdf(v[i], arg);
        double lo = f - (double)i / (double)n, hi = (double)(i + 1) / (double)n - f;
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    return d;
}

/* Upper tail Q(x) = P(Z > x), accurate far out. */
static double q_tail(double x) { return 0.5 * erfc(x / sqrt(2.0)); }
static double phi(double x) { return isinf(x) ? 0 : exp(-0.5 * x * x) / sqrt(2 * M_PI); }
static double normal_cdf(double x, const double *arg) { return 1 - q_tail((x - arg[0]) / arg[1]); }
/* arg = {a, b}: the standard normal truncated to [a, b], from the side of the tail it is in
 * so that far-out intervals keep their precision (Phi(x) = Q(-x)). */
static double trunc_cdf(double x, const double *arg) {
    double a = arg[0], b = arg[1];
    if (a + b > 0) return (q_tail(a) - q_tail(x)) / (q_tail(a) - q_tail(b));
    return (q_tail(-x) - q_tail(-a)) / (q_tail(-b) - q_tail(-a));
}

static void equal_arrays(lz_array *a, lz_array *b) {
    assert_int_equal(lz_size(a), lz_size(b));
    double *x = values(a), *y = values(b);
    assert_memory_equal(x, y, (size_t)lz_size(a) * sizeof *x);
    free(x);
    free(y);
}

/* ---- Philox ---- */

/* Known answers from the Random123 distribution, tests/kat_vectors (D. E. Shaw Research;
 * the philox4x32 lines: counter[4] key[2] -> output[4]). */
static void test_philox_known_answers(void **state) {
    (void)state;
    static const struct { int rounds; uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
        {7, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
        {7, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
        {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {10, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {10, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t t = 0; t < sizeof kat / sizeof *kat; t++) {
        uint32_t c[4];
        memcpy(c, kat[t].ctr, sizeof c);
        lz_philox4x32(c, kat[t].key[0], kat[t].key[1], kat[t].rounds);
        for (int k = 0; k < 4; k++)
            if (c[k] != kat[t].out[k])
                fail_msg("vector %zu word %d: %08x, expected %08x", t, k, c[k], kat[t].out[k]);
    }
}

/* lz_random_bits is the documented word stream: word i = word i%4 of block i/4, the key's
 * lo as Philox key, its hi in counter words 2-3. The kernel's vectorised Philox is checked
 * here against the scalar one, across several chunks and an odd tail. */
static void test_bits_are_the_stream(void **state) {
    (void)state;
    int64_t n = 4;
    lz_array *z = lz_random_bits(lz_key_new(0), 1, &n);
    int64_t w[4];
    assert_int_equal(lz_to_int(z, w, 4), 0);
    assert_true(w[0] == 0x6627e8d5 && w[1] == 0xe169c58d && w[2] == 0xbc57ac4c && w[3] == 0x9b00dbd8);
    lz_release(z);

    lz_key key = {.hi = 0x0370734413198a2eull, .lo = 0x299f31d0a4093822ull};
    n = 5003;
    lz_array *b = lz_random_bits(key, 1, &n);
    int64_t *got = malloc((size_t)n * sizeof *got);
    assert_int_equal(lz_to_int(b, got, n), 0);
    assert_int_equal(lz_dtype_of(b), LZ_I64);
    for (int64_t i = 0; i < n; i++) {
        uint32_t c[4] = {(uint32_t)(i / 4), 0, (uint32_t)key.hi, (uint32_t)(key.hi >> 32)};
        lz_philox4x32(c, (uint32_t)key.lo, (uint32_t)(key.lo >> 32), 10);
        if (got[i] != c[i % 4]) fail_msg("word %lld: %llx, expected %x", (long long)i,
                                         (long long)got[i], c[i % 4]);
    }
    free(got);
    lz_release(b);
}

/* ---- determinism ---- */

typedef lz_array *(*drawer)(lz_key key, int ndim, const int64_t *shape);
static lz_array *d_bits(lz_key k, int nd, const int64_t *s) { return lz_random_bits(k, nd, s); }
static lz_array *d_unif(lz_key k, int nd, const int64_t *s) { return lz_random_uniform(k, nd, s, -1, 2, LZ_F32); }
static lz_array *d_unif16(lz_key k, int nd, const int64_t *s) { return lz_random_uniform(k, nd, s, 0, 1, LZ_F16); }
static lz_array *d_norm(lz_key k, int nd, const int64_t *s) { return lz_random_normal(k, nd, s, 1, 2, LZ_F32); }
static lz_array *d_normbf(lz_key k, int nd, const int64_t *s) { return lz_random_normal(k, nd, s, 0, 1, LZ_BF16); }
static lz_array *d_trunc(lz_key k, int nd, const int64_t *s) { return lz_random_truncated_normal(k, nd, s, -2, 1, LZ_F32); }
static lz_array *d_bern(lz_key k, int nd, const int64_t *s) { return lz_random_bernoulli(k, nd, s, 0.3); }
static lz_array *d_int(lz_key k, int nd, const int64_t *s) { return lz_random_randint(k, nd, s, -7, 100, LZ_I32); }
static lz_array *d_wide(lz_key k, int nd, const int64_t *s) { return lz_random_randint(k, nd, s, INT64_MIN, INT64_MAX, LZ_I64); }
static lz_array *d_perm(lz_key k, int nd, const int64_t *s) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= s[d];
    return lz_random_permutation(k, n);
}
static const drawer all[] = {d_bits, d_unif, d_unif16, d_norm, d_normbf, d_trunc, d_bern,
                             d_int, d_wide, d_perm};
#define NDRAW (int)(sizeof all / sizeof *all)

static void test_same_key_same_values_any_threads(void **state) {
    (void)state;
    lz_key key = lz_key_new(1234);
    int64_t n = 300001;                       /* large enough for the threaded path, odd */
    for (int d = 0; d < NDRAW; d++) {
        lz_set_threads(1);
        lz_array *a = all[d](key, 1, &n);
        assert_int_equal(lz_eval1(a), 0);
        lz_set_threads(2);
        lz_array *b = all[d](key, 1, &n);
        assert_int_equal(lz_eval1(b), 0);
        equal_arrays(a, b);
        lz_release(a);
        lz_release(b);
    }
    lz_set_threads(0);
}

/* Element i depends on (key, i) only: a reshaped draw, a longer draw's prefix and a slice
 * read later give the same numbers. (Not for permutation, whose values depend on n.) */
static void test_elements_depend_on_index_only(void **state) {
    (void)state;
    lz_key key = lz_key_new(99);
    for (int d = 0; d < NDRAW - 1; d++) {
        int64_t s2[2] = {37, 61}, flat = 37 * 61, longer = 5000;
        lz_pool_push();
        lz_array *a = all[d](key, 2, s2);
        lz_array *b = all[d](key, 1, &flat);
        lz_array *c = all[d](key, 1, &longer);
        lz_array *prefix = lz_slice_axis(c, 0, 0, flat, 1);
        lz_array *mid = lz_slice_axis(c, 0, 1001, 3003, 2);    /* a strided slice of c */
        lz_array *bf = lz_reshape(a, 1, &flat);
        equal_arrays(bf, b);
        equal_arrays(prefix, b);
        assert_int_equal(lz_eval1(c), 0);
        double *whole = values(c), *part = values(mid);
        for (int64_t i = 0; i < lz_size(mid); i++) assert_true(part[i] == whole[1001 + 2 * i]);
        free(whole);
        free(part);
        lz_pool_pop();
    }
    /* a 0-d draw is element 0 */
    lz_array *s = lz_random_uniform(key, 0, NULL, 0, 1, LZ_F32);
    int64_t one = 1;
    lz_array *v = lz_random_uniform(key, 1, &one, 0, 1, LZ_F32);
    assert_true(lz_item(s) == lz_item(v));
    lz_release(s);
    lz_release(v);
    /* empty shapes are fine */
    int64_t s0[2] = {3, 0};
    lz_array *e = lz_random_normal(key, 2, s0, 0, 1, LZ_F32);
    assert_int_equal(lz_eval1(e), 0);
    assert_int_equal(lz_size(e), 0);
    lz_release(e);
}

/* ---- keys ---- */

static double corr(const double *x, const double *y, int64_t n) {
    double mx, vx, my, vy, s = 0;
    moments(x, n, &mx, &vx);
    moments(y, n, &my, &vy);
    for (int64_t i = 0; i < n; i++) s += (x[i] - mx) * (y[i] - my);
    return s / (double)(n - 1) / sqrt(vx * vy);
}

/* Neighbouring elements share Philox blocks (and normal pairs share their uniforms): they
 * must still be uncorrelated. */
static void assert_lag_uncorrelated(const double *v, int64_t n) {
    for (int lag = 1; lag <= 4; lag++) {
        double r = corr(v, v + lag, n - lag);
        if (fabs(r) > 5 / sqrt((double)n)) fail_msg("lag %d correlation %g", lag, r);
    }
}

static int same_key(lz_key a, lz_key b) { return a.hi == b.hi && a.lo == b.lo; }

static void test_keys(void **state) {
    (void)state;
    lz_key k = lz_key_new(42), kids[8], kids2[3];
    assert_true(same_key(k, lz_key_new(42)));
    assert_false(same_key(k, lz_key_new(43)));
    lz_key_split(k, 8, kids);
    lz_key_split(k, 3, kids2);
    for (int i = 0; i < 3; i++) assert_true(same_key(kids[i], kids2[i]));   /* deterministic */
    for (int i = 0; i < 8; i++) {
        assert_false(same_key(kids[i], k));
        for (int j = 0; j < i; j++) assert_false(same_key(kids[i], kids[j]));
    }
    lz_key_split(k, 0, kids2);   /* nothing to do */
    lz_key f1 = lz_key_fold(k, 1), f2 = lz_key_fold(k, 2), fb = lz_key_fold(k, 1ull << 32);
    assert_true(same_key(f1, lz_key_fold(k, 1)));
    assert_false(same_key(f1, f2));
    assert_false(same_key(f1, fb));
    assert_false(same_key(f1, k));
    assert_false(same_key(f1, kids[1]));

    /* streams of the parent, children, folds and neighbouring seeds are unrelated */
    lz_key ks[] = {k, kids[0], kids[1], f1, f2, fb, lz_key_new(43), lz_key_new(0),
                   {.hi = 1, .lo = 42}};
    int nk = (int)(sizeof ks / sizeof *ks);
    int64_t n = 100000;
    double *v[9];
    for (int i = 0; i < nk; i++) {
        lz_array *u = lz_random_bits(ks[i], 1, &n);
        v[i] = values(u);
        lz_release(u);
    }
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < i; j++) {
            int64_t eq = 0;
            for (int64_t t = 0; t < n; t++) eq += v[i][t] == v[j][t];
            assert_true(eq <= 2);                                  /* expected 2.3e-5 */
            assert_true(fabs(corr(v[i], v[j], n)) < 5 / sqrt((double)n));
        }
    for (int i = 0; i < nk; i++) free(v[i]);
}

/* ---- distributions ---- */

static void test_uniform(void **state) {
    (void)state;
    int64_t n = N_STAT;
    double lo = -2, hi = 3;
    lz_array *a = lz_random_uniform(lz_key_new(7), 1, &n, lo, hi, LZ_F32);
    assert_int_equal(lz_dtype_of(a), LZ_F32);
    double *v = values(a), mean, var;
    int bins = 100;
    int64_t count[100] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_true(v[i] >= lo && v[i] < hi);
        count[(int)((v[i] - lo) / (hi - lo) * bins)]++;
    }
    moments(v, n, &mean, &var);
    assert_lag_uncorrelated(v, n);
    double w = hi - lo, se = w / sqrt(12.0 * (double)n);
    assert_true(fabs(mean - (lo + hi) / 2) < 5 * se);
    assert_true(fabs(var - w * w / 12) < 5 * w * w / 12 * sqrt(0.8 / (double)n));
    double chi2 = 0, e = (double)n / bins;
    for (int b = 0; b < bins; b++) chi2 += (count[b] - e) * (count[b] - e) / e;
    assert_true(chi2 < 99 + 5 * sqrt(2 * 99.0));      /* df 99: mean 99, sd 14 */
    free(v);
    lz_release(a);

    /* [0, 1) in float32 is k 2^-24 with all 24 bits used: the lowest one is set half the time */
    a = lz_random_uniform(lz_key_new(8), 1, &n, 0, 1, LZ_F32);
    v = values(a);
    int64_t odd = 0;
    for (int64_t i = 0; i < n; i++) {
        double k = v[i] * 0x1p24;
        assert_true(k == floor(k));
        odd += fmod(k, 2) == 1;
    }
    assert_true(fabs((double)odd / (double)n - 0.5) < 5 * 0.5 / sqrt((double)n));
    free(v);
    lz_release(a);

    /* hi is never returned, also where lo + (hi - lo) u rounds up to hi in the dtype */
    struct { double lo, hi; lz_dtype t; } cases[] = {
        {1, 2, LZ_F32}, {0, 1, LZ_F16}, {0, 1, LZ_BF16}, {1000, 1001, LZ_F16},
        {1, 1 + 0x1p-22, LZ_F32}, {-1, -0.999, LZ_BF16}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t m = 200000;
        lz_array *u = lz_random_uniform(lz_key_new(c), 1, &m, cases[c].lo, cases[c].hi, cases[c].t);
        assert_int_equal(lz_dtype_of(u), cases[c].t);
        double *x = values(u), mx = -INFINITY, mn = INFINITY;
        for (int64_t i = 0; i < m; i++) {
            assert_true(x[i] >= cases[c].lo && x[i] < cases[c].hi);
            mx = fmax(mx, x[i]);
            mn = fmin(mn, x[i]);
        }
        assert_true(mn < mx || cases[c].t == LZ_BF16);   /* [-1,-0.999) holds one bf16 value */
        free(x);
        lz_release(u);
    }
}

static void test_normal(void **state) {
    (void)state;
    int64_t n = N_STAT;
    struct { double mean, std; } cases[] = {{0, 1}, {3, 0.5}};
    for (int c = 0; c < 2; c++) {
        lz_array *a = lz_random_normal(lz_key_new(11 + c), 1, &n, cases[c].mean, cases[c].std, LZ_F32);
        double *v = values(a), mean, var, m3 = 0, m4 = 0, sd = cases[c].std;
        moments(v, n, &mean, &var);
        assert_lag_uncorrelated(v, n);
        for (int64_t i = 0; i < n; i++) {
            double z = (v[i] - cases[c].mean) / sd;
            m3 += z * z * z;
            m4 += z * z * z * z;
        }
        m3 /= (double)n;
        m4 /= (double)n;
        double rn = sqrt((double)n);
        assert_true(fabs(mean - cases[c].mean) < 5 * sd / rn);
        assert_true(fabs(var / (sd * sd) - 1) < 5 * sqrt(2.0) / rn);
        assert_true(fabs(m3) < 5 * sqrt(15.0) / rn);             /* var of z^3 is 15 */
        assert_true(fabs(m4 - 3) < 5 * sqrt(96.0) / rn);         /* var of z^4 is 96 */
        double arg[2] = {cases[c].mean, sd};
        assert_true(ks(v, n, normal_cdf, arg) < 1.95 / rn);      /* p = 0.001 */
        free(v);
        lz_release(a);
    }
    /* std 0 gives the mean; half types run through the same stream */
    int64_t m = 1000;
    lz_array *z = lz_random_normal(lz_key_new(1), 1, &m, 2.5, 0, LZ_F32);
    double *zv = values(z);
    for (int64_t i = 0; i < m; i++) assert_true(zv[i] == 2.5);
    free(zv);
    lz_array *h = lz_random_normal(lz_key_new(1), 1, &m, 0, 1, LZ_F16);
    lz_array *f = lz_random_normal(lz_key_new(1), 1, &m, 0, 1, LZ_F32);
    double *hv = values(h), *fv = values(f);
    for (int64_t i = 0; i < m; i++) assert_true(fabs(hv[i] - fv[i]) <= 1e-3 * fabs(fv[i]) + 1e-7);
    free(hv);
    free(fv);
    lz_release(z);
    lz_release(h);
    lz_release(f);
}

static void test_truncated_normal(void **state) {
    (void)state;
    struct { double a, b; int64_t n; } cases[] = {
        {-2, 2, N_STAT}, {0.5, 3, 300000}, {-1, INFINITY, 300000}, {-INFINITY, -3, 300000},
        {5, 6, 300000}, {-30, -29.5, 100000}, {-0.01, 0.01, 100000}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double a = cases[c].a, b = cases[c].b;
        int64_t n = cases[c].n;
        lz_array *t = lz_random_truncated_normal(lz_key_new(20 + c), 1, &n, a, b, LZ_F32);
        double *v = values(t), mean, var;
        for (int64_t i = 0; i < n; i++)
            if (!(v[i] >= a && v[i] <= b)) fail_msg("[%g, %g]: %g", a, b, v[i]);
        moments(v, n, &mean, &var);
        assert_lag_uncorrelated(v, n);
        /* moments of the normal truncated to [a, b]: Z = Phi(b) - Phi(a),
         * mean = (phi(a) - phi(b)) / Z, var = 1 + (a phi(a) - b phi(b)) / Z - mean^2 */
        double z = a + b > 0 ? q_tail(a) - q_tail(b) : q_tail(-b) - q_tail(-a);
        double mu = (phi(a) - phi(b)) / z;
        double pa = isinf(a) ? 0 : a * phi(a), pb = isinf(b) ? 0 : b * phi(b);
        double var_ref = 1 + (pa - pb) / z - mu * mu;
        double rn = sqrt((double)n), sd = sqrt(var_ref);
        if (fabs(mean - mu) > 5 * sd / rn || fabs(var - var_ref) > 6 * var_ref * sqrt(2.0) / rn)
            fail_msg("[%g, %g]: mean %g var %g, expected %g %g", a, b, mean, var, mu, var_ref);
        double arg[2] = {a, b}, d = ks(v, n, trunc_cdf, arg);
        if (d > 1.95 / rn) fail_msg("[%g, %g]: KS distance %g", a, b, d);
        free(v);
        lz_release(t);
    }
    /* f16 output keeps to bounds that are not representable in f16 */
    int64_t m = 100000;
    lz_array *h = lz_random_truncated_normal(lz_key_new(3), 1, &m, -0.1, 0.1, LZ_F16);
    double *hv = values(h);
    for (int64_t i = 0; i < m; i++) assert_true(hv[i] >= -0.1 && hv[i] <= 0.1);
    free(hv);
    lz_release(h);
}

static void test_bernoulli(void **state) {
    (void)state;
    int64_t n = N_STAT;
    double ps[] = {0.3, 0.001, 0, 1};
    for (int c = 0; c < 4; c++) {
        lz_array *b = lz_random_bernoulli(lz_key_new(30 + c), 1, &n, ps[c]);
        assert_int_equal(lz_dtype_of(b), LZ_BOOL);
        double *v = values(b), s = 0;
        for (int64_t i = 0; i < n; i++) { assert_true(v[i] == 0 || v[i] == 1); s += v[i]; }
        double p = ps[c], rate = s / (double)n;
        assert_true(fabs(rate - p) <= 5 * sqrt(p * (1 - p) / (double)n));
        free(v);
        lz_release(b);
    }
}

static void test_randint(void **state) {
    (void)state;
    int64_t n = N_STAT;
    /* small range with a negative lo: every value equally often (chi-square, df 11) */
    lz_array *a = lz_random_randint(lz_key_new(40), 1, &n, -5, 7, LZ_I32);
    assert_int_equal(lz_dtype_of(a), LZ_I32);
    double *v = values(a), chi2 = 0;
    int64_t count[12] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_true(v[i] >= -5 && v[i] < 7 && v[i] == floor(v[i]));
        count[(int)v[i] + 5]++;
    }
    for (int k = 0; k < 12; k++) {
        double e = (double)n / 12;
        chi2 += (count[k] - e) * (count[k] - e) / e;
    }
    assert_true(chi2 < 11 + 5 * sqrt(22.0));
    free(v);
    lz_release(a);

    /* uint8 over its whole range, a single-value range, and int64 ranges wider than 2^32
     * (the 128-bit path): in range, mean in place, top and bottom halves equally likely */
    struct { int64_t lo, hi; lz_dtype t; } cases[] = {
        {0, 256, LZ_U8}, {-3, -2, LZ_I64}, {INT64_MIN, INT64_MAX, LZ_I64},
        {-(1ll << 40), 3ll << 40, LZ_I64}, {INT32_MIN, (int64_t)INT32_MAX + 1, LZ_I32}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t m = 200000, lo = cases[c].lo, hi = cases[c].hi;
        lz_array *r = lz_random_randint(lz_key_new(50 + c), 1, &m, lo, hi, cases[c].t);
        int64_t *q = malloc((size_t)m * sizeof *q);
        assert_int_equal(lz_to_int(r, q, m), 0);
        double width = (double)hi - (double)lo, mid = (double)lo + width / 2, s = 0;
        int64_t upper = 0, odd = 0;
        for (int64_t i = 0; i < m; i++) {
            assert_true(q[i] >= lo && q[i] <= hi - 1);
            s += ((double)q[i] - mid) / width;
            upper += (double)q[i] >= mid;
            odd += q[i] & 1;
        }
        if (width > 1) {
            double se = 0.5 / sqrt((double)m);
            assert_true(fabs(s / (double)m) < 5 * sqrt(1.0 / 12 / (double)m));
            assert_true(fabs((double)upper / (double)m - 0.5) < 5 * se);
            assert_true(fabs((double)odd / (double)m - 0.5) < 5 * se);
        }
        free(q);
        lz_release(r);
    }
}

static void test_permutation(void **state) {
    (void)state;
    int64_t sizes[] = {0, 1, 2, 1000, 1000003};
    for (int c = 0; c < 5; c++) {
        int64_t n = sizes[c];
        lz_array *p = lz_random_permutation(lz_key_new(60), n);
        assert_int_equal(lz_dtype_of(p), LZ_I64);
        assert_int_equal(lz_size(p), n);
        int64_t *q = malloc((size_t)(n ? n : 1) * sizeof *q);
        char *seen = calloc((size_t)(n ? n : 1), 1);
        assert_int_equal(lz_to_int(p, q, n), 0);
        int64_t fixed = 0;
        for (int64_t i = 0; i < n; i++) {
            assert_true(q[i] >= 0 && q[i] < n && !seen[q[i]]);
            seen[q[i]] = 1;
            fixed += q[i] == i;
        }
        if (n >= 1000) assert_true(fixed < 10);    /* a random permutation fixes ~1 point */
        free(q);
        free(seen);
        lz_release(p);
    }
    /* uniform over the 6 permutations of 3 (chi-square, df 5), over folded keys */
    int64_t count[6] = {0}, draws = 6000;
    lz_key base = lz_key_new(61);
    for (int64_t d = 0; d < draws; d++) {
        lz_array *p = lz_random_permutation(lz_key_fold(base, (uint64_t)d), 3);
        int64_t q[3];
        assert_int_equal(lz_to_int(p, q, 3), 0);
        count[q[0] * 2 + (q[1] > q[2])]++;
        lz_release(p);
    }
    double chi2 = 0, e = (double)draws / 6;
    for (int k = 0; k < 6; k++) chi2 += (count[k] - e) * (count[k] - e) / e;
    assert_true(chi2 < 5 + 5 * sqrt(10.0));
    /* different keys give different permutations */
    int64_t n = 100;
    lz_array *p1 = lz_random_permutation(lz_key_new(1), n), *p2 = lz_random_permutation(lz_key_new(2), n);
    double *a = values(p1), *b = values(p2);
    assert_true(memcmp(a, b, (size_t)n * sizeof *a) != 0);
    free(a);
    free(b);
    lz_release(p1);
    lz_release(p2);
}

/* A random node is one kernel launch, and nothing runs until it is read. */
static void test_lazy_one_kernel(void **state) {
    (void)state;
    int64_t s[2] = {300, 700};
    lz_stats_reset();
    lz_array *a = lz_random_normal(lz_key_new(5), 2, s, 0, 1, LZ_F32);
    assert_false(lz_is_evaluated(a));
    assert_int_equal(lz_stats().kernels, 0);
    assert_int_equal(lz_eval1(a), 0);
    assert_int_equal(lz_stats().kernels, 1);
    lz_release(a);
}

static void test_errors(void **state) {
    (void)state;
    lz_key k = lz_key_new(0);
    int64_t n = 10, neg[2] = {3, -1};
    t_assert_error(lz_random_uniform(k, 1, &n, 1, 1, LZ_F32), "lo < hi");
    t_assert_error(lz_random_uniform(k, 1, &n, 2, 1, LZ_F32), "random_uniform");
    t_assert_error(lz_random_uniform(k, 1, &n, 0, INFINITY, LZ_F32), "finite");
    t_assert_error(lz_random_uniform(k, 1, &n, 0, 1, LZ_I32), "not a floating-point type");
    t_assert_error(lz_random_uniform(k, 1, &n, 1 + 1e-12, 1 + 2e-12, LZ_F32), "no float32 value");
    t_assert_error(lz_random_normal(k, 1, &n, 0, -1, LZ_F32), "std >= 0");
    t_assert_error(lz_random_normal(k, 1, &n, NAN, 1, LZ_F32), "random_normal");
    t_assert_error(lz_random_normal(k, 1, &n, 0, 1, LZ_U8), "not a floating-point type");
    t_assert_error(lz_random_truncated_normal(k, 1, &n, 1, -1, LZ_F32), "lo < hi");
    t_assert_error(lz_random_truncated_normal(k, 1, &n, 0, NAN, LZ_F32), "random_truncated_normal");
    t_assert_error(lz_random_truncated_normal(k, 1, &n, 1.0001, 1.001, LZ_BF16), "no bfloat16 value");
    t_assert_error(lz_random_bernoulli(k, 1, &n, 1.5), "outside [0, 1]");
    t_assert_error(lz_random_bernoulli(k, 1, &n, -0.1), "outside [0, 1]");
    t_assert_error(lz_random_bernoulli(k, 1, &n, NAN), "random_bernoulli");
    t_assert_error(lz_random_randint(k, 1, &n, 5, 5, LZ_I32), "empty range [5, 5)");
    t_assert_error(lz_random_randint(k, 1, &n, -1, 10, LZ_U8), "does not fit uint8");
    t_assert_error(lz_random_randint(k, 1, &n, 0, 1ll << 32, LZ_I32), "does not fit int32");
    t_assert_error(lz_random_randint(k, 1, &n, 0, 10, LZ_F32), "not uint8, int32 or int64");
    t_assert_error(lz_random_permutation(k, -1), "negative length -1");
    t_assert_error(lz_random_normal(k, 2, neg, 0, 1, LZ_F32), "negative dimension in shape [3,-1]");
    t_assert_error(lz_random_bits(k, 9, neg), "dimensions");
    int64_t huge[2] = {1ll << 40, 1ll << 40};
    t_assert_error(lz_random_bits(k, 2, huge), "too many elements");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_bits_are_the_stream),
        cmocka_unit_test(test_same_key_same_values_any_threads),
        cmocka_unit_test(test_elements_depend_on_index_only),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_truncated_normal),
        cmocka_unit_test(test_bernoulli),
        cmocka_unit_test(test_randint),
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_lazy_one_kernel),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
