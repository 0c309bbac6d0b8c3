/* Reductions: sum, prod, max, min, mean, var, logsumexp over every subset of axes, argmax and
 * argmin along each axis, against naive float64 references written here; integer dtypes,
 * NaN/inf, empty axes, accuracy of long sums, fusion (one kernel, one buffer), errors. */
#include "testutil.h"

enum { R_SUM, R_PROD, R_MAX, R_MIN, R_MEAN, R_VAR, R_LSE, R_NOPS };
static const char *op_name[R_NOPS] = {"sum", "prod", "max", "min", "mean", "var", "logsumexp"};

static lz_array *apply(int op, lz_array *a, const int *axes, int naxes, int keepdims, int ddof) {
    switch (op) {
    case R_SUM: return lz_sum(a, axes, naxes, keepdims);
    case R_PROD: return lz_prod(a, axes, naxes, keepdims);
    case R_MAX: return lz_max(a, axes, naxes, keepdims);
    case R_MIN: return lz_min(a, axes, naxes, keepdims);
    case R_MEAN: return lz_mean(a, axes, naxes, keepdims);
    case R_VAR: return lz_var(a, axes, naxes, keepdims, ddof);
    default: return lz_logsumexp(a, axes, naxes, keepdims);
    }
}

/* Output index (row-major over the kept axes) of every input element, and the output size. */
static int64_t *out_index(int nd, const int64_t *shape, unsigned mask, int64_t n, int64_t *nout) {
    int64_t *oi = malloc((size_t)(n ? n : 1) * sizeof *oi), idx[LZ_MAX_DIMS] = {0};
    *nout = 1;
    for (int d = 0; d < nd; d++) if (!(mask >> d & 1)) *nout *= shape[d];
    for (int64_t i = 0; i < n; i++) {
        int64_t o = 0;
        for (int d = 0; d < nd; d++) if (!(mask >> d & 1)) o = o * shape[d] + idx[d];
        oi[i] = o;
        for (int d = nd - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
    }
    return oi;
}

/* The float64 reference: a plain loop per op, NaN and inf handled explicitly. */
static double *reference(int op, const double *v, int nd, const int64_t *shape, unsigned mask,
                         int ddof, int64_t *nout) {
    int64_t n = 1, cnt = 1;
    for (int d = 0; d < nd; d++) { n *= shape[d]; if (mask >> d & 1) cnt *= shape[d]; }
    int64_t *oi = out_index(nd, shape, mask, n, nout), no = *nout;
    double *r = malloc((size_t)(no ? no : 1) * sizeof *r), *m = calloc((size_t)(no ? no : 1), sizeof *m);
    int *nan = calloc((size_t)(no ? no : 1), sizeof *nan), *pinf = calloc((size_t)(no ? no : 1), sizeof *pinf);
    for (int64_t o = 0; o < no; o++)
        r[o] = op == R_PROD ? 1 : op == R_MAX || op == R_LSE ? -INFINITY : op == R_MIN ? INFINITY : 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        int64_t o = oi[i];
        if (isnan(x)) nan[o] = 1;
        if (x == INFINITY) pinf[o] = 1;
        switch (op) {
        case R_SUM: case R_MEAN: r[o] += x; break;
        case R_PROD: r[o] *= x; break;
        case R_MAX: case R_LSE: if (x > r[o]) r[o] = x; break;
        case R_MIN: if (x < r[o]) r[o] = x; break;
        default: m[o] += x; break;
        }
    }
    if (op == R_MEAN) for (int64_t o = 0; o < no; o++) r[o] = cnt ? r[o] / (double)cnt : NAN;
    if (op == R_VAR) {
        for (int64_t o = 0; o < no; o++) m[o] /= (double)cnt;
        for (int64_t i = 0; i < n; i++) r[oi[i]] += (v[i] - m[oi[i]]) * (v[i] - m[oi[i]]);
        for (int64_t o = 0; o < no; o++) r[o] = cnt ? r[o] / (double)(cnt - ddof) : NAN;
    }
    if (op == R_LSE) {
        for (int64_t o = 0; o < no; o++) m[o] = r[o], r[o] = 0;
        for (int64_t i = 0; i < n; i++) if (isfinite(m[oi[i]])) r[oi[i]] += exp(v[i] - m[oi[i]]);
        for (int64_t o = 0; o < no; o++)
            r[o] = nan[o] ? NAN : pinf[o] ? INFINITY : m[o] == -INFINITY ? -INFINITY : m[o] + log(r[o]);
    }
    if (op == R_MAX || op == R_MIN)
        for (int64_t o = 0; o < no; o++) if (nan[o]) r[o] = NAN;
    free(oi); free(m); free(nan); free(pinf);
    return r;
}

/* Integer sum/prod/max/min with int64 wrap-around, as the kernels promise. */
static int64_t *reference_int(int op, const double *v, int nd, const int64_t *shape, unsigned mask,
                              int64_t *nout) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    int64_t *oi = out_index(nd, shape, mask, n, nout), no = *nout;
    uint64_t *r = malloc((size_t)(no ? no : 1) * sizeof *r);
    for (int64_t o = 0; o < no; o++)
        r[o] = op == R_PROD ? 1 : op == R_MAX ? (uint64_t)INT64_MIN : op == R_MIN ? (uint64_t)INT64_MAX : 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = (int64_t)v[i], o = oi[i];
        switch (op) {
        case R_SUM: r[o] += (uint64_t)x; break;
        case R_PROD: r[o] *= (uint64_t)x; break;
        case R_MAX: if (x > (int64_t)r[o]) r[o] = (uint64_t)x; break;
        default: if (x < (int64_t)r[o]) r[o] = (uint64_t)x; break;
        }
    }
    free(oi);
    return (int64_t *)r;
}

static void check_shape(lz_array *r, int nd, const int64_t *shape, unsigned mask, int keepdims) {
    int k = 0;
    for (int d = 0; d < nd; d++) {
        if (mask >> d & 1 && !keepdims) continue;
        assert_int_equal(lz_dim(r, k), mask >> d & 1 ? 1 : shape[d]);
        k++;
    }
    assert_int_equal(lz_ndim(r), k);
}

/* Runs one case and compares; axes given as a list (some negative), or NULL for all. */
static void check_case(int op, tarr *x, int nd, const int64_t *shape, unsigned mask, int keepdims,
                       int as_null, uint64_t *seed, double rtol, double atol) {
    int axes[LZ_MAX_DIMS], na = 0;
    for (int d = 0; d < nd; d++)
        if (mask >> d & 1) axes[na++] = t_uniform(seed, 0, 1) < 0.5 ? d : d - nd;
    /* shuffle: the order of axes must not matter */
    for (int i = na - 1; i > 0; i--) {
        int j = (int)t_uniform(seed, 0, i + 1), t = axes[i];
        axes[i] = axes[j]; axes[j] = t;
    }
    int ddof = op == R_VAR ? (int)t_uniform(seed, 0, 2) : 0;
    int64_t no;
    double *ref = reference(op, x->v, nd, shape, mask, ddof, &no);
    lz_pool_push();
    lz_array *r = apply(op, x->a, as_null ? NULL : axes, as_null ? 0 : na, keepdims, ddof);
    if (!r) fail_msg("%s: %s", op_name[op], lz_error());
    check_shape(r, nd, shape, mask, keepdims);
    t_assert_close(r, ref, no, rtol, atol);
    lz_pool_pop();
    free(ref);
}

static void random_shape(uint64_t *seed, int nd, int64_t *shape, int64_t maxdim) {
    static const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 31};
    for (int d = 0; d < nd; d++) {
        int64_t s = sizes[(int)t_uniform(seed, 0, 10)];
        shape[d] = s > maxdim ? maxdim : s;
    }
}

static double tol_of(int op) { return op == R_SUM || op == R_MAX || op == R_MIN ? 2e-6 : 2e-5; }

/* Every op, every subset of axes of ranks 0-4 (a sample for rank 5), keepdims on and off,
 * the three layouts, float32. */
static void test_float_ops_all_axes(void **state) {
    (void)state;
    uint64_t seed = 42;
    for (int nd = 0; nd <= 5; nd++) {
        for (int rep = 0; rep < (nd <= 2 ? 4 : 2); rep++) {
            int64_t shape[LZ_MAX_DIMS];
            random_shape(&seed, nd, shape, nd >= 4 ? 7 : 31);
            for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout++) {
                tarr x = t_rand(nd, shape, LZ_F32, -2, 2, &seed, layout);
                tarr xp = t_rand(nd, shape, LZ_F32, 0.7, 1.3, &seed, layout);   /* for prod */
                for (unsigned mask = 0; mask < (1u << nd); mask++) {
                    if (nd == 5 && t_uniform(&seed, 0, 1) < 0.7) continue;
                    for (int op = 0; op < R_NOPS; op++) {
                        int keep = (int)t_uniform(&seed, 0, 2);
                        if (mask == 0 && nd > 0) continue;    /* mask 0 means "all": below */
                        check_case(op, op == R_PROD ? &xp : &x, nd, shape, mask, keep, 0, &seed,
                                   tol_of(op), tol_of(op));
                    }
                }
                for (int op = 0; op < R_NOPS; op++)           /* axes NULL: all */
                    check_case(op, op == R_PROD ? &xp : &x, nd, shape, (1u << nd) - 1, layout & 1, 1,
                               &seed, tol_of(op), tol_of(op));
                t_free(&x);
                t_free(&xp);
            }
        }
    }
}

/* Shapes large enough for the threaded paths (a plain reduction is threaded from 512K
 * elements: CPU_PAR_WORK) and the column (K > tile) paths; more threads than cores to
 * exercise the partial merges. */
static void test_large_shapes_threaded(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {
        {1030, 520, 1}, {3, 180000, 1}, {180000, 3, 1}, {2, 30000, 9}, {540001, 1, 1}, {9, 15, 4100},
    };
    uint64_t seed = 7;
    for (int threads = 1; threads <= 3; threads += 2) {
        lz_set_threads(threads);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int nd = shapes[s][2] == 1 ? (shapes[s][1] == 1 ? 1 : 2) : 3;
            for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout += 2) {
                tarr x = t_rand(nd, shapes[s], LZ_F32, -1, 1, &seed, layout);
                for (unsigned mask = 1; mask < (1u << nd); mask++)
                    for (int op = R_SUM; op <= R_MIN; op++) {
                        if (op == R_PROD) continue;
                        check_case(op, &x, nd, shapes[s], mask, 0, 0, &seed, 1e-5, 1e-5);
                    }
                check_case(R_MEAN, &x, nd, shapes[s], 1, 1, 0, &seed, 1e-5, 1e-5);
                check_case(R_VAR, &x, nd, shapes[s], (1u << nd) - 1, 0, 0, &seed, 1e-5, 1e-5);
                t_free(&x);
            }
        }
    }
    lz_set_threads(0);
}

/* Integer dtypes: exact results, dtype rules (sum/prod -> int64, max/min keep, mean -> f32). */
static void test_integer_dtypes(void **state) {
    (void)state;
    static const lz_dtype types[] = {LZ_BOOL, LZ_U8, LZ_I32, LZ_I64};
    uint64_t seed = 3;
    for (size_t ti = 0; ti < 4; ti++) {
        lz_dtype t = types[ti];
        for (int nd = 1; nd <= 3; nd++) {
            int64_t shape[LZ_MAX_DIMS];
            random_shape(&seed, nd, shape, 13);
            for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout++) {
                double hi = t == LZ_BOOL ? 2 : t == LZ_U8 ? 256 : 1000;
                double lo = t == LZ_BOOL || t == LZ_U8 ? 0 : -1000;
                tarr x = t_rand(nd, shape, t, lo, hi, &seed, layout);
                tarr xp = t_rand(nd, shape, t, t == LZ_BOOL ? 0 : 1, t == LZ_BOOL ? 2 : 3, &seed, layout);
                for (unsigned mask = 1; mask < (1u << nd); mask++) {
                    for (int op = R_SUM; op <= R_MEAN; op++) {
                        tarr *in = op == R_PROD ? &xp : &x;
                        int64_t no;
                        double *ref = reference(op, in->v, nd, shape, mask, 0, &no);
                        lz_pool_push();
                        int axes[LZ_MAX_DIMS], na = 0;
                        for (int d = 0; d < nd; d++) if (mask >> d & 1) axes[na++] = d;
                        lz_array *r = apply(op, in->a, axes, na, 0, 0);
                        assert_non_null(r);
                        lz_dtype want = op <= R_PROD ? LZ_I64 : op == R_MEAN ? LZ_F32 : t;
                        assert_int_equal(lz_dtype_of(r), want);
                        if (op == R_MEAN) {
                            t_assert_close(r, ref, no, 1e-5, 1e-4);
                        } else {
                            int64_t *got = malloc((size_t)no * sizeof *got);
                            int64_t *want = reference_int(op, in->v, nd, shape, mask, &no);
                            assert_int_equal(lz_to_int(r, got, no), 0);
                            for (int64_t o = 0; o < no; o++)
                                if (got[o] != want[o])
                                    fail_msg("%s %s: element %lld: %lld, expected %lld", op_name[op],
                                             lz_dtype_name(t), (long long)o, (long long)got[o],
                                             (long long)want[o]);
                            free(got);
                            free(want);
                        }
                        lz_pool_pop();
                        free(ref);
                    }
                }
                t_free(&x);
                t_free(&xp);
            }
        }
    }
    /* int64 beyond 2^53 stays exact, and wraps around like int64 */
    int64_t big[3] = {(int64_t)1 << 60, 1, INT64_MAX}, n3 = 3;
    lz_array *b = lz_from_data(big, 1, &n3, LZ_I64);
    lz_pool_push();
    int64_t got;
    lz_to_int(lz_max(b, NULL, 0, 0), &got, 1);
    assert_true(got == INT64_MAX);
    lz_to_int(lz_sum(lz_slice_axis(b, 0, 0, 2, 1), NULL, 0, 0), &got, 1);
    assert_true(got == ((int64_t)1 << 60) + 1);
    lz_to_int(lz_sum(b, NULL, 0, 0), &got, 1);
    assert_true(got == (int64_t)((uint64_t)1 << 60) + INT64_MIN);   /* wrapped */
    lz_pool_pop();
    lz_release(b);
}

/* float16 / bfloat16: storage dtypes kept, computed in float32 or better. */
static void test_half_dtypes(void **state) {
    (void)state;
    uint64_t seed = 11;
    int64_t shape[2] = {37, 45};
    for (lz_dtype t = LZ_F16; t <= LZ_BF16; t++) {
        tarr x = t_rand(2, shape, t, -2, 2, &seed, T_TRANSPOSED);
        for (int op = R_SUM; op < R_NOPS; op++) {
            if (op == R_PROD) continue;
            for (unsigned mask = 1; mask < 4; mask++) {
                int64_t no;
                double *ref = reference(op, x.v, 2, shape, mask, 0, &no);
                lz_pool_push();
                int ax = mask == 1 ? 0 : 1;
                lz_array *r = apply(op, x.a, &ax, mask == 3 ? 0 : 1, 0, 0);
                assert_int_equal(lz_dtype_of(r), t);
                double tol = t == LZ_F16 ? 2e-3 : 1e-2;
                t_assert_close(r, ref, no, tol, tol * (op == R_SUM ? 8 : 1));
                lz_pool_pop();
                free(ref);
            }
        }
        t_free(&x);
    }
}

static float fval(lz_array *a) { float f = NAN; lz_to_float(a, &f, 1); return f; }

static void test_nan_inf(void **state) {
    (void)state;
    float v[8] = {1, NAN, 3, -INFINITY, 2, 5, NAN, 0};
    int64_t n = 8, sh2[2] = {2, 4};
    lz_array *a = lz_from_data(v, 1, &n, LZ_F32);
    lz_array *a2 = lz_from_data(v, 2, sh2, LZ_F32);
    lz_pool_push();
    assert_true(isnan(fval(lz_max(a, NULL, 0, 0))));
    assert_true(isnan(fval(lz_min(a, NULL, 0, 0))));
    assert_true(isnan(fval(lz_sum(a, NULL, 0, 0))));
    /* a part without NaN: [3, -inf] */
    lz_array *s = lz_slice_axis(a, 0, 2, 4, 1);
    assert_true(fval(lz_max(s, NULL, 0, 0)) == 3);
    assert_true(fval(lz_min(s, NULL, 0, 0)) == -INFINITY);
    assert_true(fval(lz_sum(s, NULL, 0, 0)) == -INFINITY);
    /* argmax / argmin: the first NaN wins, as in NumPy */
    int64_t idx[2];
    lz_to_int(lz_argmax(a, 0, 0), idx, 1);
    assert_int_equal(idx[0], 1);
    lz_to_int(lz_argmin(a, 0, 0), idx, 1);
    assert_int_equal(idx[0], 1);
    lz_to_int(lz_argmax(a2, 1, 0), idx, 2);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 2);
    lz_to_int(lz_argmax(s, 0, 0), idx, 1);
    assert_int_equal(idx[0], 0);
    lz_to_int(lz_argmin(s, 0, 0), idx, 1);
    assert_int_equal(idx[0], 1);
    /* inf - inf */
    float w[2] = {INFINITY, -INFINITY};
    int64_t two = 2;
    lz_array *b = lz_from_data(w, 1, &two, LZ_F32);
    assert_true(isnan(fval(lz_sum(b, NULL, 0, 0))));
    assert_true(fval(lz_logsumexp(b, NULL, 0, 0)) == INFINITY);
    /* logsumexp: all -inf rows, +inf, big values that would overflow exp */
    float l[9] = {-INFINITY, -INFINITY, -INFINITY, 1000, 1000, -INFINITY, INFINITY, 1, 2};
    int64_t sh[2] = {3, 3};
    lz_array *c = lz_from_data(l, 2, sh, LZ_F32);
    int ax = -1;
    float out[3];
    lz_to_float(lz_logsumexp(c, &ax, 1, 0), out, 3);
    assert_true(out[0] == -INFINITY);
    assert_true(fabsf(out[1] - (1000.0f + logf(2.0f))) < 1e-3f);
    assert_true(out[2] == INFINITY);
    /* small values that would underflow exp */
    float u[2] = {-1000, -1000};
    lz_array *d = lz_from_data(u, 1, &two, LZ_F32);
    assert_true(fabsf(fval(lz_logsumexp(d, NULL, 0, 0)) - (-1000.0f + logf(2.0f))) < 1e-3f);
    lz_pool_pop();
    lz_release(a);
    lz_release(a2);
}

/* Empty axes: sum 0, prod 1, mean NaN, logsumexp -inf; empty kept axes give empty results. */
static void test_empty(void **state) {
    (void)state;
    int64_t shape[2] = {3, 0};
    lz_array *z = lz_zeros(2, shape, LZ_F32);
    lz_array *zi = lz_zeros(2, shape, LZ_I32);
    lz_pool_push();
    int ax = 1;
    float out[3];
    lz_to_float(lz_sum(z, &ax, 1, 0), out, 3);
    assert_true(out[0] == 0 && out[2] == 0);
    lz_to_float(lz_prod(z, &ax, 1, 0), out, 3);
    assert_true(out[0] == 1 && out[2] == 1);
    lz_to_float(lz_mean(z, &ax, 1, 0), out, 3);
    assert_true(isnan(out[0]));
    lz_to_float(lz_logsumexp(z, &ax, 1, 0), out, 3);
    assert_true(out[1] == -INFINITY);
    int64_t iout[3];
    lz_to_int(lz_sum(zi, &ax, 1, 0), iout, 3);
    assert_true(iout[0] == 0 && iout[2] == 0);
    assert_true(lz_item(lz_sum(z, NULL, 0, 0)) == 0);
    ax = 0;
    lz_array *e = lz_max(z, &ax, 1, 1);            /* reduces the 3, keeps the empty axis */
    assert_non_null(e);
    assert_int_equal(lz_size(e), 0);
    assert_int_equal(lz_eval1(e), 0);
    lz_array *ea = lz_argmax(z, 0, 0);
    assert_int_equal(lz_size(ea), 0);
    assert_int_equal(lz_eval1(ea), 0);
    lz_pool_pop();
    lz_release(z);
    lz_release(zi);
}

/* Reference argmax/argmin along axis: first index of the best; the first NaN wins. */
static void check_arg(tarr *x, int nd, const int64_t *shape, int axis, int is_max, int keepdims) {
    int64_t no, *oi = out_index(nd, shape, 1u << axis, x->n, &no);
    double *best = malloc((size_t)no * sizeof *best);
    int64_t *want = malloc((size_t)no * sizeof *want), *got = malloc((size_t)no * sizeof *got);
    int64_t *pos = malloc((size_t)no * sizeof *pos);
    for (int64_t o = 0; o < no; o++) { want[o] = -1; pos[o] = 0; }
    for (int64_t i = 0; i < x->n; i++) {
        int64_t o = oi[i], k = pos[o]++;
        double v = x->v[i];
        if (want[o] < 0 || (!isnan(best[o]) && (isnan(v) || (is_max ? v > best[o] : v < best[o])))) {
            best[o] = v;
            want[o] = k;
        }
    }
    lz_pool_push();
    lz_array *r = is_max ? lz_argmax(x->a, axis - (keepdims ? nd : 0), keepdims)
                         : lz_argmin(x->a, axis, keepdims);
    if (!r) fail_msg("arg: %s", lz_error());
    assert_int_equal(lz_dtype_of(r), LZ_I64);
    check_shape(r, nd, shape, 1u << axis, keepdims);
    assert_int_equal(lz_to_int(r, got, no), 0);
    for (int64_t o = 0; o < no; o++)
        if (got[o] != want[o])
            fail_msg("arg%s axis %d of %s: element %lld: %lld, expected %lld", is_max ? "max" : "min",
                     axis, lz_dtype_name(lz_dtype_of(x->a)), (long long)o, (long long)got[o],
                     (long long)want[o]);
    lz_pool_pop();
    free(oi); free(best); free(want); free(got); free(pos);
}

static void test_argmax_argmin(void **state) {
    (void)state;
    static const lz_dtype types[] = {LZ_F32, LZ_I32, LZ_U8, LZ_F16};
    uint64_t seed = 5;
    for (size_t ti = 0; ti < 4; ti++) {
        for (int nd = 1; nd <= 4; nd++) {
            for (int rep = 0; rep < 3; rep++) {
                int64_t shape[LZ_MAX_DIMS];
                random_shape(&seed, nd, shape, 16);
                for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout++) {
                    /* few distinct values: ties are everywhere */
                    tarr x = t_rand(nd, shape, types[ti], 0, 4, &seed, layout);
                    for (int axis = 0; axis < nd; axis++)
                        for (int is_max = 0; is_max < 2; is_max++)
                            check_arg(&x, nd, shape, axis, is_max, (axis + rep) & 1);
                    t_free(&x);
                }
            }
        }
    }
    /* large: the threaded row, split-line and column paths */
    static const int64_t shapes[][2] = {{300, 700}, {2, 70000}, {70000, 2}, {100000, 1}};
    for (size_t s = 0; s < 4; s++) {
        for (int layout = T_CONTIG; layout <= T_TRANSPOSED; layout += 2) {
            tarr x = t_rand(2, shapes[s], LZ_F32, -1, 1, &seed, layout);
            for (int axis = 0; axis < 2; axis++) {
                check_arg(&x, 2, shapes[s], axis, 1, 0);
                check_arg(&x, 2, shapes[s], axis, 0, 1);
            }
            t_free(&x);
        }
    }
    lz_pool_push();
    int64_t n = 100000;
    lz_array *r = lz_argmax(lz_arange(0, (double)n, 1, LZ_F32), 0, 0);
    assert_true(lz_item(r) == (double)(n - 1));
    lz_array *s0 = lz_argmin(lz_scalar(3, LZ_F32), 0, 0);       /* 0-d: index 0 */
    assert_int_equal(lz_ndim(s0), 0);
    assert_true(lz_item(s0) == 0);
    lz_pool_pop();
}

/* 16M float32 values summed: the result is as good as rounding the float64 sum. A float32
 * accumulator would be off by ~1e-3 relative here. */
static void test_sum_accuracy_16m(void **state) {
    (void)state;
    int64_t n = (int64_t)1 << 24;
    float *f = malloc((size_t)n * sizeof *f);
    uint64_t seed = 99;
    double want = 0, want_cols[4] = {0};
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)t_uniform(&seed, 0, 1) + 0.1f;
        want += f[i];
        want_cols[i % 4] += f[i];
    }
    lz_array *a = lz_from_data(f, 1, &n, LZ_F32);
    free(f);
    for (int threads = 1; threads <= 2; threads++) {
        lz_set_threads(threads);
        lz_pool_push();
        double got = lz_item(lz_sum(a, NULL, 0, 0));
        assert_true(fabs(got - want) <= 1e-7 * want);
        double m = lz_item(lz_mean(a, NULL, 0, 0));
        assert_true(fabs(m - want / (double)n) <= 2e-7 * (want / (double)n));
        /* as columns: [4M, 4] summed over axis 0 (a vector of partial sums) */
        int64_t sh[2] = {n / 4, 4};
        int ax = 0;
        float cols[4];
        lz_to_float(lz_sum(lz_reshape(a, 2, sh), &ax, 1, 0), cols, 4);
        for (int k = 0; k < 4; k++) assert_true(fabs(cols[k] - want_cols[k]) <= 1e-7 * want_cols[k]);
        lz_pool_pop();
    }
    lz_set_threads(0);
    lz_release(a);
}

/* sum(a*b) and mean((x-y)^2) over 1M elements: one kernel, and the only buffer allocated is
 * the output (the product is never materialised). */
static void test_fusion_one_kernel(void **state) {
    (void)state;
    int64_t n = 1000000;
    uint64_t seed = 1;
    tarr a = t_rand(1, &n, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr b = t_rand(1, &n, LZ_F32, -1, 1, &seed, T_CONTIG);
    double dot = 0, mse = 0;
    for (int64_t i = 0; i < n; i++) {
        dot += a.v[i] * b.v[i];
        mse += (a.v[i] - b.v[i]) * (a.v[i] - b.v[i]);
    }
    mse /= (double)n;
    lz_pool_push();
    lz_array *s = lz_sum(lz_mul(a.a, b.a), NULL, 0, 0);
    lz_array *m = lz_mean(lz_square(lz_sub(a.a, b.a)), NULL, 0, 0);
    lz_stats_reset();
    assert_int_equal(lz_eval1(s), 0);
    lz_stats_t st = lz_stats();
    assert_int_equal(st.kernels, 1);
    assert_int_equal(st.buffers, 1);
    assert_true(fabs(lz_item(s) - dot) <= 1e-6 * fabs(dot) + 1e-6);
    lz_stats_reset();
    assert_int_equal(lz_eval1(m), 0);
    st = lz_stats();
    assert_int_equal(st.kernels, 1);
    assert_int_equal(st.buffers, 1);
    assert_true(fabs(lz_item(m) - mse) <= 1e-6 * mse);
    /* a column sum of a fused product: still one kernel */
    int64_t sh[2] = {1000, 1000};
    int ax = 0;
    lz_array *c = lz_sum(lz_mul(lz_reshape(a.a, 2, sh), lz_reshape(b.a, 2, sh)), &ax, 1, 0);
    lz_stats_reset();
    assert_int_equal(lz_eval1(c), 0);
    assert_int_equal(lz_stats().kernels, 1);
    double col0 = 0;
    for (int64_t i = 0; i < 1000; i++) col0 += a.v[i * 1000] * b.v[i * 1000];
    assert_true(fabs(lz_item(c) - col0) <= 1e-5);
    lz_pool_pop();
    t_free(&a);
    t_free(&b);
}

static void test_errors(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3}, eshape[2] = {0, 3};
    lz_array *a = lz_zeros(2, shape, LZ_F32);
    lz_array *e = lz_zeros(2, eshape, LZ_F32);
    int bad = 2, neg = -3, dup[2] = {1, -1};
    t_assert_error(lz_sum(a, &bad, 1, 0), "sum: axis 2 is out of range for float32[2,3]");
    t_assert_error(lz_mean(a, &neg, 1, 0), "mean: axis -3 is out of range");
    t_assert_error(lz_max(a, dup, 2, 0), "max: axis -1 is repeated");
    t_assert_error(lz_var(a, dup, 2, 0, 1), "var");
    t_assert_error(lz_logsumexp(a, &bad, 1, 0), "logsumexp: axis 2");
    t_assert_error(lz_max(e, NULL, 0, 0), "max: cannot reduce over an empty axis of float32[0,3]");
    int zero = 0;
    t_assert_error(lz_min(e, &zero, 1, 1), "min: cannot reduce over an empty axis");
    t_assert_error(lz_argmax(e, 0, 0), "argmax: cannot reduce over the empty axis 0 of float32[0,3]");
    t_assert_error(lz_argmin(a, 2, 0), "argmin: axis 2 is out of range for float32[2,3]");
    t_assert_error(lz_argmax(a, -3, 0), "argmax: axis -3");
    /* NULL in, NULL out, first error kept */
    lz_error_clear();
    lz_fail("first");
    assert_null(lz_sum(NULL, NULL, 0, 0));
    assert_null(lz_logsumexp(NULL, NULL, 0, 0));
    assert_null(lz_argmax(NULL, 0, 0));
    assert_string_equal(lz_error(), "first");
    lz_error_clear();
    lz_release(a);
    lz_release(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_ops_all_axes),
        cmocka_unit_test(test_large_shapes_threaded),
        cmocka_unit_test(test_integer_dtypes),
        cmocka_unit_test(test_half_dtypes),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_argmax_argmin),
        cmocka_unit_test(test_sum_accuracy_16m),
        cmocka_unit_test(test_fusion_one_kernel),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
