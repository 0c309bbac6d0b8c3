/* Sorting and scans: sort, argsort, topk, cumsum against naive float64 references written
 * here: stability (ties keep increasing positions), NaNs last (first for topk), -0 == +0,
 * infinities, every dtype, every axis, non-contiguous layouts, size-0/size-1 dims, long rows
 * (radix passes) and many rows (threads); every error path with its message. */
#include "testutil.h"

/* An array of dtype t holding the logical values v (row-major) with the given layout, built
 * like t_rand's (stored as int64 for int32 and int64, else float32, then cast: exact for the values
 * the tests use). */
static lz_array *from_values(int nd, const int64_t *shape, const double *v, lz_dtype t,
                             int layout) {
    int64_t big[8], n = t_numel(nd, shape), m = 1;
    for (int d = 0; d < nd; d++) {
        big[d] = layout == T_STRIDED ? 2 * shape[d] + 1
               : layout == T_TRANSPOSED ? shape[nd - 1 - d] : shape[d];
        m *= big[d];
    }
    lz_dtype st = t == LZ_I64 || t == LZ_I32 ? LZ_I64 : LZ_F32;
    char *buf = calloc((size_t)(m ? m : 1), 8);
    for (int64_t k = 0; k < n; k++) {
        int64_t idx[8], pos[8];
        t_unravel(k, nd, shape, idx);
        for (int d = 0; d < nd; d++)
            pos[d] = layout == T_STRIDED ? 1 + 2 * idx[d]
                   : layout == T_TRANSPOSED ? idx[nd - 1 - d] : idx[d];
        int64_t at = t_ravel(nd, big, pos);
        if (st == LZ_I64) ((int64_t *)buf)[at] = (int64_t)v[k];
        else ((float *)buf)[at] = (float)v[k];
    }
    lz_array *x = lz_from_data(buf, nd, big, st), *y = lz_astype(x, t), *r;
    lz_eval1(y);
    if (layout == T_STRIDED) {
        int64_t b[8], e[8], s[8];
        for (int d = 0; d < nd; d++) { b[d] = 1; e[d] = big[d]; s[d] = 2; }
        r = lz_slice(y, b, e, s);
    } else if (layout == T_TRANSPOSED) {
        r = lz_transpose(y);
    } else {
        r = lz_retain(y);
    }
    lz_release(x);
    lz_release(y);
    free(buf);
    return r;
}

/* Values with many ties, and for floats NaN, +-inf and -0. */
static double rand_value(uint64_t *s, lz_dtype t) {
    int64_t c = t_irand(s, 0, 20);
    switch (t) {
    case LZ_BOOL: return (double)t_irand(s, 0, 2);
    case LZ_U8: return c < 10 ? (double)t_irand(s, 0, 4) : (double)t_irand(s, 0, 256);
    case LZ_I32: return c < 15 ? (double)t_irand(s, -3, 4) : (double)t_irand(s, -2000000000, 2000000000);
    case LZ_I64:
        if (c == 0) return -9223372036854775808.0;             /* INT64_MIN */
        if (c < 4) return (c & 1 ? -1 : 1) * 4611686018427387904.0 + (double)t_irand(s, -3, 4) * 2048;
        return (double)t_irand(s, -3, 4);
    default:
        if (c == 0) return NAN;
        if (c == 1) return INFINITY;
        if (c == 2) return -INFINITY;
        if (c == 3) return -0.0;
        if (c == 4) return 0.0;
        if (t == LZ_F32 && c > 16) return (float)t_uniform(s, -1e6, 1e6);
        return (double)t_irand(s, -40, 40) / 4;
    }
}

/* The total order the ops promise: NaN after everything, NaNs equal, -0 == +0. */
static int cmp_vals(double x, double y) {
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

typedef struct { double v; int64_t i; int desc; } item;
static int cmp_items(const void *pa, const void *pb) {
    const item *a = pa, *b = pb;
    int c = cmp_vals(a->v, b->v);
    if (a->desc) c = -c;
    return c ? c : (a->i > b->i) - (a->i < b->i);   /* stable: ties by position */
}

/* Sorts every row along ax of v (shape) into ref_v / ref_i (desc: largest first). */
static void ref_sort(int nd, const int64_t *shape, int ax, const double *v, int desc,
                     double *ref_v, double *ref_i) {
    int64_t n = shape[ax], total = t_numel(nd, shape);
    item *row = malloc((size_t)(n ? n : 1) * sizeof *row);
    for (int64_t k = 0; k < total; k++) {
        int64_t idx[8] = {0};   /* gcc -O2 cannot see that t_unravel sets idx[ax] */
        t_unravel(k, nd, shape, idx);
        if (idx[ax]) continue;   /* one visit per row */
        for (int64_t j = 0; j < n; j++) {
            idx[ax] = j;
            row[j] = (item){v[t_ravel(nd, shape, idx)], j, desc};
        }
        qsort(row, (size_t)n, sizeof *row, cmp_items);
        for (int64_t j = 0; j < n; j++) {
            idx[ax] = j;
            int64_t at = t_ravel(nd, shape, idx);
            ref_v[at] = row[j].v;
            ref_i[at] = (double)row[j].i;
        }
    }
    free(row);
}

static void check_values(lz_array *r, lz_dtype t, const double *ref, int64_t n) {
    assert_non_null(r);
    assert_int_equal(lz_dtype_of(r), t);
    if (t == LZ_I64 || t == LZ_I32) {
        int64_t *x = malloc((size_t)(n ? n : 1) * sizeof *x);
        assert_int_equal(lz_to_int(r, x, n), 0);
        for (int64_t k = 0; k < n; k++)
            if (x[k] != (int64_t)ref[k])
                fail_msg("element %lld: got %lld, expected %lld", (long long)k, (long long)x[k],
                         (long long)ref[k]);
        free(x);
    } else {
        t_assert_close(r, ref, n, 0, 0);
    }
}

static const lz_dtype DTYPES[] = {LZ_F32, LZ_I32, LZ_I64, LZ_U8, LZ_BOOL, LZ_F16, LZ_BF16};

static void run_sort_case(uint64_t *s, int nd, const int64_t *shape, lz_dtype t, int axis,
                          int layout) {
    int ax = axis < 0 ? axis + nd : axis;
    int64_t n = t_numel(nd, shape);
    /* calloc: for n == 0 gcc -O1 would otherwise warn that v is read uninitialised */
    double *v = calloc((size_t)(n ? n : 1), sizeof *v), *rv = malloc((size_t)(n ? n : 1) * sizeof *rv),
           *ri = malloc((size_t)(n ? n : 1) * sizeof *ri);
    for (int64_t k = 0; k < n; k++) v[k] = rand_value(s, t);
    lz_array *a = from_values(nd, shape, v, t, layout);
    ref_sort(nd, shape, ax, v, 0, rv, ri);
    lz_array *sv = lz_sort(a, axis), *si = lz_argsort(a, axis);
    assert_int_equal(lz_ndim(sv), nd);
    for (int d = 0; d < nd; d++) assert_int_equal(lz_shape(si)[d], shape[d]);
    check_values(sv, t, rv, n);
    check_values(si, LZ_I64, ri, n);
    lz_release(sv);
    lz_release(si);
    lz_release(a);
    free(v);
    free(rv);
    free(ri);
}

static void test_sort_random(void **state) {
    (void)state;
    uint64_t s = 21;
    static const int64_t dims[] = {1, 2, 3, 5, 7, 0, 1, 4};
    for (int trial = 0; trial < 350; trial++) {
        int nd = (int)t_irand(&s, 1, 4);
        int64_t shape[8];
        for (int d = 0; d < nd; d++) shape[d] = dims[t_irand(&s, 0, trial % 5 ? 7 : 8)];
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        if (trial % 3 == 0) shape[ax] = t_irand(&s, 33, 300);   /* past insertion sort: radix */
        run_sort_case(&s, nd, shape, DTYPES[trial % 7], axis, (int)t_irand(&s, 0, 3));
    }
}

/* Long rows and many rows: every radix pass, and the threaded row loop. */
static void test_sort_large(void **state) {
    (void)state;
    uint64_t s = 22;
    int64_t one[1] = {100000}, many[2] = {400, 300};
    run_sort_case(&s, 1, one, LZ_F32, 0, T_CONTIG);
    run_sort_case(&s, 1, one, LZ_I64, 0, T_STRIDED);
    run_sort_case(&s, 2, many, LZ_I32, 0, T_TRANSPOSED);
    run_sort_case(&s, 2, many, LZ_F16, 1, T_CONTIG);
    run_sort_case(&s, 2, many, LZ_I64, -1, T_CONTIG);
}

/* Many equal values: within each tie, argsort gives increasing positions. */
static void test_argsort_stable(void **state) {
    (void)state;
    uint64_t s = 23;
    int64_t n = 5000;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t k = 0; k < n; k++) x[k] = (float)t_irand(&s, 0, 3) - 1;
    x[17] = -0.0f;   /* ties with 0 */
    lz_array *a = lz_from_data(x, 1, &n, LZ_F32), *ix = lz_argsort(a, 0);
    int64_t *p = malloc((size_t)n * sizeof *p);
    assert_int_equal(lz_to_int(ix, p, n), 0);
    for (int64_t k = 1; k < n; k++) {
        float u = x[p[k - 1]], w = x[p[k]];
        assert_true(u <= w);
        if (u == w) assert_true(p[k - 1] < p[k]);
    }
    free(p);
    free(x);
    lz_release(ix);
    lz_release(a);
}

static void test_sort_nans_last(void **state) {
    (void)state;
    float x[7] = {NAN, 2, -INFINITY, NAN, 1, INFINITY, -0.0f};
    int64_t n = 7;
    lz_array *a = lz_from_data(x, 1, &n, LZ_F32), *sv = lz_sort(a, 0), *si = lz_argsort(a, 0);
    double want_v[7] = {-INFINITY, -0.0, 1, 2, INFINITY, NAN, NAN};
    double want_i[7] = {2, 6, 4, 1, 5, 0, 3};
    check_values(sv, LZ_F32, want_v, 7);
    check_values(si, LZ_I64, want_i, 7);
    float got[7];
    lz_to_float(sv, got, 7);
    assert_true(signbit(got[1]));   /* sort moves values: -0 stays -0 */
    lz_release(sv);
    lz_release(si);
    lz_release(a);
}

/* ---- topk ---- */

static void test_topk(void **state) {
    (void)state;
    uint64_t s = 24;
    /* ties: lower index first */
    float x[5] = {3, 1, 3, 2, 3};
    int64_t n5 = 5;
    lz_array *a = lz_from_data(x, 1, &n5, LZ_F32), *v, *ix;
    assert_int_equal(lz_topk(a, 3, 0, &v, &ix), 0);
    double wv[3] = {3, 3, 3}, wi[3] = {0, 2, 4};
    check_values(v, LZ_F32, wv, 3);
    check_values(ix, LZ_I64, wi, 3);
    lz_release(v);
    lz_release(ix);
    lz_release(a);
    /* random against a stable descending sort (NaNs count as the largest) */
    for (int trial = 0; trial < 150; trial++) {
        int nd = (int)t_irand(&s, 1, 4);
        int64_t shape[8], kshape[8];
        for (int d = 0; d < nd; d++) shape[d] = t_irand(&s, 1, 6);
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        if (trial % 4 == 0) shape[ax] = t_irand(&s, 33, 200);
        int64_t k = t_irand(&s, 0, shape[ax] + 1), n = t_numel(nd, shape);
        lz_dtype t = DTYPES[trial % 7];
        double *vals = malloc((size_t)n * sizeof *vals), *rv = malloc((size_t)n * sizeof *rv),
               *ri = malloc((size_t)n * sizeof *ri);
        for (int64_t q = 0; q < n; q++) vals[q] = rand_value(&s, t);
        a = from_values(nd, shape, vals, t, (int)t_irand(&s, 0, 3));
        ref_sort(nd, shape, ax, vals, 1, rv, ri);
        memcpy(kshape, shape, sizeof kshape);
        kshape[ax] = k;
        int64_t kn = t_numel(nd, kshape);
        double *kv = malloc((size_t)(kn ? kn : 1) * sizeof *kv), *ki = malloc((size_t)(kn ? kn : 1) * sizeof *ki);
        for (int64_t q = 0; q < kn; q++) {
            int64_t idx[8];
            t_unravel(q, nd, kshape, idx);
            int64_t at = t_ravel(nd, shape, idx);
            kv[q] = rv[at];
            ki[q] = ri[at];
        }
        lz_array *tv = NULL, *ti = NULL;
        assert_int_equal(lz_topk(a, k, axis, &tv, trial & 1 ? &ti : NULL), 0);
        for (int d = 0; d < nd; d++) assert_int_equal(lz_shape(tv)[d], kshape[d]);
        check_values(tv, t, kv, kn);
        if (ti) check_values(ti, LZ_I64, ki, kn);
        lz_release(tv);
        lz_release(ti);
        lz_release(a);
        free(vals); free(rv); free(ri); free(kv); free(ki);
    }
}

/* ---- cumsum ---- */

static void test_cumsum_random(void **state) {
    (void)state;
    uint64_t s = 25;
    static const lz_dtype ts[] = {LZ_F32, LZ_I32, LZ_U8, LZ_BOOL, LZ_I64, LZ_F16, LZ_BF16};
    for (int trial = 0; trial < 300; trial++) {
        int nd = (int)t_irand(&s, 1, 5);
        int64_t shape[8];
        for (int d = 0; d < nd; d++) shape[d] = t_irand(&s, 0, 9) ? t_irand(&s, 1, 6) : 0;
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis, rev = trial & 1;
        if (trial % 5 == 0) shape[ax] = 200;
        lz_dtype t = ts[trial % 7];
        lz_dtype ot = lz_dtype_is_float(t) ? t : LZ_I64;
        double lo = t == LZ_U8 || t == LZ_BOOL ? 0 : -100, hi = t == LZ_BOOL ? 2 : 100;
        tarr a = t_rand(nd, shape, t, lo, hi, &s, (int)t_irand(&s, 0, 3));
        int64_t n = a.n, m = shape[ax];
        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
        for (int64_t k = 0; k < n; k++) {
            int64_t idx[8];
            t_unravel(k, nd, shape, idx);
            int64_t j = idx[ax];
            double acc = 0;
            for (int64_t q = rev ? j : 0; q <= (rev ? m - 1 : j); q++) {
                idx[ax] = q;
                acc += a.v[t_ravel(nd, shape, idx)];
            }
            ref[k] = acc;
        }
        lz_array *r = lz_cumsum(a.a, axis, rev);
        assert_int_equal(lz_dtype_of(r), ot);
        for (int d = 0; d < nd; d++) assert_int_equal(lz_shape(r)[d], shape[d]);
        if (ot == LZ_I64) check_values(r, ot, ref, n);
        else t_assert_close(r, ref, n, t == LZ_F32 ? 1e-6 : t == LZ_F16 ? 1e-3 : 8e-3,
                            t == LZ_F32 ? 1e-4 : 0.5);
        lz_release(r);
        free(ref);
        t_free(&a);
    }
}

/* A million 0.1f: a float32 running sum drifts by ~1e-2; ours must be within rounding. */
static void test_cumsum_accuracy(void **state) {
    (void)state;
    int64_t n = 1 << 20;
    lz_array *a = lz_full(1, &n, 0.1, LZ_F32);
    for (int rev = 0; rev < 2; rev++) {
        lz_array *r = lz_cumsum(a, 0, rev);
        const float *p = lz_data(r);
        assert_non_null(p);
        double unit = (double)0.1f;
        for (int64_t k = 0; k < n; k += 4099) {
            double want = unit * (double)(rev ? n - k : k + 1);
            assert_true(fabs(p[k] - want) <= 1e-7 * want);
        }
        lz_release(r);
    }
    lz_release(a);
}

/* Past the threading threshold, on both axes of a transposed input. */
static void test_cumsum_large(void **state) {
    (void)state;
    uint64_t s = 26;
    int64_t sh[2] = {300, 200};
    tarr a = t_rand(2, sh, LZ_F32, -1, 1, &s, T_TRANSPOSED);
    double *ref = malloc(300 * 200 * sizeof *ref);
    for (int ax = 0; ax < 2; ax++) {
        for (int64_t i = 0; i < 300; i++)
            for (int64_t j = 0; j < 200; j++) {
                double acc = 0;
                if (ax == 0) for (int64_t q = i; q < 300; q++) acc += a.v[q * 200 + j];
                else for (int64_t q = 0; q <= j; q++) acc += a.v[i * 200 + q];
                ref[i * 200 + j] = acc;
            }
        lz_array *r = lz_cumsum(a.a, ax, ax == 0);
        t_assert_close(r, ref, 300 * 200, 1e-6, 1e-5);
        lz_release(r);
    }
    free(ref);
    t_free(&a);
}

static void test_scalars(void **state) {
    (void)state;
    lz_array *x = lz_scalar(3, LZ_I32), *s = lz_sort(x, 0), *i = lz_argsort(x, -1),
             *c = lz_cumsum(x, -1, 0);
    assert_int_equal(lz_ndim(s), 0);
    assert_true(lz_item(s) == 3);
    assert_true(lz_item(i) == 0 && lz_dtype_of(i) == LZ_I64);
    assert_true(lz_item(c) == 3 && lz_dtype_of(c) == LZ_I64);
    lz_release(x); lz_release(s); lz_release(i); lz_release(c);
}

static void test_sort_errors(void **state) {
    (void)state;
    lz_pool_push();
    int64_t s24[2] = {2, 4};
    lz_array *a = lz_zeros(2, s24, LZ_F32), *v = NULL, *ix = NULL;
    t_assert_error(lz_sort(a, 2), "sort: axis 2 is out of range for an array of 2 dimensions");
    t_assert_error(lz_argsort(a, -3), "argsort: axis -3 is out of range");
    t_assert_error(lz_cumsum(a, 5, 0), "cumsum: axis 5 is out of range");
    lz_error_clear();
    assert_int_equal(lz_topk(a, 5, 1, &v, &ix), -1);
    assert_null(v);
    assert_null(ix);
    assert_non_null(strstr(lz_error(), "topk: k = 5 is out of range for axis 1 of float32[2,4]"));
    assert_int_equal(lz_topk(a, -1, -1, &v, NULL), -1);
    assert_non_null(strstr(lz_error(), "topk: k = -1 is out of range for axis 1"));
    assert_int_equal(lz_topk(a, 1, 2, &v, NULL), -1);
    assert_non_null(strstr(lz_error(), "topk: axis 2 is out of range"));
    assert_int_equal(lz_topk(lz_scalar(1, LZ_F32), 1, 0, &v, NULL), -1);
    assert_non_null(strstr(lz_error(), "topk: cannot select from a 0-d array"));
    lz_error_clear();
    lz_fail("first");
    assert_null(lz_sort(NULL, 0));
    assert_null(lz_cumsum(NULL, 0, 1));
    assert_int_equal(lz_topk(NULL, 1, 0, &v, &ix), -1);
    assert_string_equal(lz_error(), "first");
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_random),
        cmocka_unit_test(test_sort_large),
        cmocka_unit_test(test_argsort_stable),
        cmocka_unit_test(test_sort_nans_last),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_cumsum_random),
        cmocka_unit_test(test_cumsum_accuracy),
        cmocka_unit_test(test_cumsum_large),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_sort_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
