/* matmul against a naive float64 NumPy-semantics reference: shapes (odd, size 1, k = 0,
 * batch broadcasting, vectors), layouts (contiguous, strided, transposed, swapped axes),
 * dtypes, no-copy transposes, FLOP counting, errors. */
#include "testutil.h"

/* NumPy matmul of row-major float64 values; returns the result's ndim and fills shape/out
 * (out sized by the caller: at most 4096 elements here). */
static int ref_matmul(int an, const int64_t *as, const double *av, int bn, const int64_t *bs,
                      const double *bv, int64_t *shape, double *out) {
    int64_t a2[LZ_MAX_DIMS], b2[LZ_MAX_DIMS];
    int na = an, nbd = bn;
    if (an == 1) { a2[0] = 1; a2[1] = as[0]; na = 2; } else memcpy(a2, as, an * sizeof *as);
    if (bn == 1) { b2[0] = bs[0]; b2[1] = 1; nbd = 2; } else memcpy(b2, bs, bn * sizeof *bs);
    int64_t m = a2[na - 2], k = a2[na - 1], n = b2[nbd - 1];
    int ab = na - 2, bb = nbd - 2, nb = ab > bb ? ab : bb;
    int64_t batch[LZ_MAX_DIMS], nbatch = 1;
    for (int d = 0; d < nb; d++) {
        int i = d - (nb - ab), j = d - (nb - bb);
        int64_t p = i < 0 ? 1 : a2[i], q = j < 0 ? 1 : b2[j];
        batch[d] = p == 1 ? q : p;
        nbatch *= batch[d];
    }
    for (int64_t bi = 0; bi < nbatch; bi++) {
        /* flat batch offsets of a and b with broadcasting */
        int64_t rem = bi, oa = 0, ob = 0, sa = 1, sb = 1;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t idx = rem % batch[d];
            rem /= batch[d];
            int i = d - (nb - ab), j = d - (nb - bb);
            if (i >= 0) { oa += (a2[i] == 1 ? 0 : idx) * sa; sa *= a2[i]; }
            if (j >= 0) { ob += (b2[j] == 1 ? 0 : idx) * sb; sb *= b2[j]; }
        }
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += av[(oa * m + r) * k + p] * bv[(ob * k + p) * n + c];
                out[(bi * m + r) * n + c] = s;
            }
    }
    int nd = 0;
    for (int d = 0; d < nb; d++) shape[nd++] = batch[d];
    if (an != 1) shape[nd++] = m;
    if (bn != 1) shape[nd++] = n;
    return nd;
}

typedef struct { int an; int64_t as[4]; int bn; int64_t bs[4]; } case_t;

static const case_t cases[] = {
    {2, {3, 4}, 2, {4, 5}},
    {2, {1, 1}, 2, {1, 1}},
    {2, {7, 13}, 2, {13, 5}},
    {2, {1, 9}, 2, {9, 1}},
    {2, {9, 1}, 2, {1, 7}},
    {2, {5, 0}, 2, {0, 3}},            /* k = 0: zeros */
    {2, {0, 3}, 2, {3, 4}},            /* m = 0 */
    {2, {3, 4}, 2, {4, 0}},            /* n = 0 */
    {4, {2, 1, 3, 4}, 3, {5, 4, 2}},   /* batch broadcasting */
    {3, {6, 3, 4}, 2, {4, 5}},         /* folds into one GEMM when A is contiguous */
    {2, {3, 4}, 3, {6, 4, 5}},
    {4, {2, 3, 5, 4}, 3, {3, 4, 2}},
    {3, {1, 3, 4}, 3, {4, 4, 2}},
    {1, {4}, 2, {4, 3}},               /* vector @ matrix */
    {2, {3, 4}, 1, {4}},               /* matrix @ vector */
    {1, {4}, 1, {4}},                  /* vector @ vector: 0-d */
    {3, {2, 3, 4}, 1, {4}},
    {1, {4}, 3, {2, 4, 3}},
    {1, {1}, 1, {1}},
    {2, {65, 129}, 2, {129, 33}},
};

static void check_case(const case_t *cs, lz_dtype t, int la, int lb, double tol, uint64_t *seed) {
    double lo = lz_dtype_is_float(t) ? -1 : t == LZ_U8 || t == LZ_BOOL ? 0 : -5;
    double hi = lz_dtype_is_float(t) ? 1 : t == LZ_BOOL ? 2 : 6;
    tarr a = t_rand(cs->an, cs->as, t, lo, hi, seed, la);
    tarr b = t_rand(cs->bn, cs->bs, t, lo, hi, seed, lb);
    int64_t shape[LZ_MAX_DIMS];
    double *ref = malloc(4096 * sizeof *ref);
    int nd = ref_matmul(cs->an, cs->as, a.v, cs->bn, cs->bs, b.v, shape, ref);
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    if (t == LZ_U8) for (int64_t i = 0; i < n; i++) ref[i] = (double)(uint8_t)(int64_t)ref[i];
    if (t == LZ_BOOL) for (int64_t i = 0; i < n; i++) ref[i] = ref[i] != 0;
    lz_array *c = lz_matmul(a.a, b.a);
    if (!c) fail_msg("matmul failed: %s", lz_error());
    assert_int_equal(lz_ndim(c), nd);
    assert_memory_equal(lz_shape(c), shape, (size_t)nd * sizeof *shape);
    assert_int_equal(lz_dtype_of(c), t);
    int64_t k = cs->an == 1 ? cs->as[0] : cs->as[cs->an - 1];
    t_assert_close(c, ref, n, tol, tol * sqrt((double)(k + 1)));
    lz_release(c);
    free(ref);
    t_free(&a);
    t_free(&b);
}

static void test_matmul_shapes_layouts(void **state) {
    (void)state;
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int la = T_CONTIG; la <= T_TRANSPOSED; la++)
            for (int lb = T_CONTIG; lb <= T_TRANSPOSED; lb++)
                check_case(&cases[i], LZ_F32, la, lb, 1e-5, &seed);
}

/* Products big and thin enough that linalg.c splits their rows or columns over the threads
 * (one dim <= 128, m n k >= 2^26), with every layout of the operands; a batch that folds into
 * one GEMM takes the same path. Checked against a float64 product of the logical values. */
static void test_matmul_thin_split(void **state) {
    (void)state;
    static const struct { int nd; int64_t as[3], bs[2]; } cs[] = {
        {2, {4096, 128}, {128, 160}},    /* rows split */
        {2, {128, 256}, {256, 2100}},    /* columns split */
        {3, {32, 128, 128}, {128, 160}}, /* folded batch, rows split */
    };
    uint64_t seed = 9;
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        for (int la = T_CONTIG; la <= T_TRANSPOSED; la += 2)
            for (int lb = T_CONTIG; lb <= T_TRANSPOSED; lb++) {
                if (cs[i].nd == 3 && la != T_CONTIG) continue;
                tarr a = t_rand(cs[i].nd, cs[i].as, LZ_F32, -1, 1, &seed, la);
                tarr b = t_rand(2, cs[i].bs, LZ_F32, -1, 1, &seed, lb);
                int64_t m = a.n / cs[i].bs[0], k = cs[i].bs[0], n = cs[i].bs[1];
                double *ref = calloc((size_t)(m * n), sizeof *ref);
                for (int64_t r = 0; r < m; r++)
                    for (int64_t p = 0; p < k; p++) {
                        double x = a.v[r * k + p];
                        for (int64_t c = 0; c < n; c++) ref[r * n + c] += x * b.v[p * n + c];
                    }
                lz_array *c = lz_matmul(a.a, b.a);
                t_assert_close(c, ref, m * n, 1e-5, 1e-5 * sqrt((double)k + 1));
                lz_release(c);
                free(ref);
                t_free(&a);
                t_free(&b);
            }
}

static void test_matmul_dtypes(void **state) {
    (void)state;
    uint64_t seed = 7;
    const lz_dtype ints[] = {LZ_I32, LZ_I64, LZ_U8, LZ_BOOL};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_case(&cases[i], LZ_F16, T_CONTIG, T_TRANSPOSED, 2e-2, &seed);
        check_case(&cases[i], LZ_BF16, T_STRIDED, T_CONTIG, 2e-2, &seed);
        for (size_t j = 0; j < sizeof ints / sizeof *ints; j++)
            check_case(&cases[i], ints[j], T_CONTIG, T_STRIDED, 0, &seed);
    }
    /* int64 stays exact past float32's 24 bits */
    int64_t big[2] = {1 << 20, 3}, shape[2] = {1, 2}, col[1] = {2};
    lz_array *a = lz_from_data(big, 2, shape, LZ_I64);
    lz_array *b = lz_from_data((int64_t[]){1 << 20, 1}, 1, col, LZ_I64);
    lz_array *c = lz_matmul(a, b);
    assert_true(lz_item(c) == (double)((1ll << 40) + 3));
    lz_release(c);
    lz_release(a);
    lz_release(b);
    /* mixed dtypes promote */
    lz_array *f = lz_ones(2, shape, LZ_F32);
    lz_array *i = lz_ones(1, col, LZ_I32);
    lz_array *m = lz_matmul(f, i);
    assert_int_equal(lz_dtype_of(m), LZ_F32);
    assert_true(lz_item(m) == 2.0);
    lz_release(m);
    lz_release(f);
    lz_release(i);
}

/* Transposes are GEMM flags: the only buffer allocated is the output's. */
static void test_transpose_is_not_copied(void **state) {
    (void)state;
    uint64_t seed = 3;
    int64_t sa[2] = {33, 17}, sb[2] = {33, 20};      /* a^T [17,33] @ b [33,20] */
    tarr a = t_rand(2, sa, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr b = t_rand(2, sb, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_array *at = lz_transpose(a.a), *bt = lz_transpose(b.a);
    lz_array *prods[3] = {lz_matmul(at, b.a), NULL, NULL};
    lz_array *tt = lz_transpose(prods[0]);            /* [20,17] contiguous-transposed view */
    prods[1] = lz_matmul(bt, a.a);                     /* b^T @ a = (a^T b)^T */
    lz_array *ttt = lz_transpose(tt);                 /* [17,20]: a pending view */
    prods[2] = lz_matmul(ttt, bt);                    /* [17,20] @ [20,33] */
    lz_stats_reset();
    assert_int_equal(lz_eval1(prods[0]), 0);
    lz_stats_t s = lz_stats();
    assert_int_equal(s.buffers, 1);
    assert_int_equal(s.kernels, 1);
    assert_int_equal(s.flops, 2ull * 17 * 20 * 33);
    lz_stats_reset();
    assert_int_equal(lz_eval(2, prods + 1), 0);
    assert_int_equal(lz_stats().buffers, 2);
    /* values: prods[1] == prods[0]^T */
    float p0[17 * 20], p1[20 * 17];
    lz_to_float(prods[0], p0, 17 * 20);
    lz_to_float(prods[1], p1, 20 * 17);
    for (int i = 0; i < 17; i++)
        for (int j = 0; j < 20; j++) {
            double r = 0;
            for (int p = 0; p < 33; p++) r += a.v[p * 17 + i] * b.v[p * 20 + j];
            assert_true(fabs(p0[i * 20 + j] - r) < 1e-4);
            assert_true(fabs(p1[j * 17 + i] - r) < 1e-4);
        }
    /* batched: swapaxes of a contiguous [B, k, m] is a flag too, and [B,m,k] @ [k,n] with A
     * contiguous runs as one GEMM */
    int64_t s3[3] = {4, 6, 5}, s2[2] = {6, 3};
    tarr x = t_rand(3, s3, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr w = t_rand(2, s2, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_array *xt = lz_swapaxes(x.a, 1, 2);            /* [4, 5, 6] */
    lz_array *y = lz_matmul(xt, w.a);                 /* [4, 5, 3] */
    lz_array *xr = lz_reshape(x.a, 3, (int64_t[]){4, 5, 6});
    lz_array *z = lz_matmul(xr, w.a);
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(y, z), 0);
    assert_int_equal(lz_stats().buffers, 2);
    assert_int_equal(lz_stats().kernels, 2);
    float yv[60], zv[60];
    lz_to_float(y, yv, 60);
    lz_to_float(z, zv, 60);
    for (int b0 = 0; b0 < 4; b0++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++) {
                double ry = 0, rz = 0;
                for (int p = 0; p < 6; p++) {
                    ry += x.v[b0 * 30 + p * 5 + i] * w.v[p * 3 + j];
                    rz += x.v[b0 * 30 + i * 6 + p] * w.v[p * 3 + j];
                }
                assert_true(fabs(yv[(b0 * 5 + i) * 3 + j] - ry) < 1e-5);
                assert_true(fabs(zv[(b0 * 5 + i) * 3 + j] - rz) < 1e-5);
            }
    lz_release(xt); lz_release(y); lz_release(xr); lz_release(z);
    t_free(&x); t_free(&w);
    for (int i = 0; i < 3; i++) lz_release(prods[i]);
    lz_release(ttt); lz_release(tt); lz_release(at); lz_release(bt);
    t_free(&a); t_free(&b);
}

/* Lazy inputs, broadcast (stride 0) matrices, many small batched GEMMs on threads. */
static void test_lazy_and_batched(void **state) {
    (void)state;
    uint64_t seed = 11;
    int64_t sa[3] = {64, 8, 16}, sb[2] = {16, 8};
    tarr a = t_rand(3, sa, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr b = t_rand(2, sb, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *a2 = lz_mul_scalar(a.a, 2.0);                        /* pending */
    lz_array *bb = lz_broadcast_to(b.a, 3, (int64_t[]){64, 16, 8}); /* stride-0 batch */
    lz_array *c = lz_retain(lz_matmul(lz_swapaxes(bb, 1, 2), lz_swapaxes(a2, 1, 2)));
    lz_pool_pop();                                                  /* c: [64, 8, 8] */
    assert_int_equal(lz_eval1(c), 0);
    double *ref = malloc(64 * 64 * sizeof *ref);
    for (int z = 0; z < 64; z++)
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) {
                double s = 0;
                for (int p = 0; p < 16; p++) s += b.v[p * 8 + i] * 2 * a.v[z * 128 + j * 16 + p];
                ref[(z * 8 + i) * 8 + j] = s;
            }
    t_assert_close(c, ref, 64 * 64, 1e-5, 1e-5);
    free(ref);
    lz_release(c);
    t_free(&a);
    t_free(&b);
}

static void test_matmul_errors(void **state) {
    (void)state;
    lz_array *a = lz_zeros(2, (int64_t[]){2, 3}, LZ_F32);
    lz_array *b = lz_zeros(2, (int64_t[]){4, 5}, LZ_F32);
    lz_array *s = lz_scalar(1, LZ_F32);
    lz_array *c = lz_zeros(3, (int64_t[]){2, 3, 4}, LZ_F32);
    lz_array *d = lz_zeros(3, (int64_t[]){3, 4, 5}, LZ_F32);
    t_assert_error(lz_matmul(a, b), "matmul: inner dimensions differ: float32[2,3] @ float32[4,5] (3 != 4)");
    t_assert_error(lz_matmul(s, a), "matmul: operands must have at least 1 dimension");
    t_assert_error(lz_matmul(c, d), "matmul: batch dimensions of float32[2,3,4] and float32[3,4,5] cannot be broadcast");
    t_assert_error(lz_matmul(NULL, a), "");
    lz_release(a); lz_release(b); lz_release(s); lz_release(c); lz_release(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_shapes_layouts),
        cmocka_unit_test(test_matmul_thin_split),
        cmocka_unit_test(test_matmul_dtypes),
        cmocka_unit_test(test_transpose_is_not_copied),
        cmocka_unit_test(test_lazy_and_batched),
        cmocka_unit_test(test_matmul_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
