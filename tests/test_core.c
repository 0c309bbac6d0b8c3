/* Core: handles, views, laziness, eval, fusion, donation, memory, errors. */
#include "testutil.h"

static void test_from_data_and_read(void **state) {
    (void)state;
    float data[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    lz_array *a = lz_from_data(data, 2, shape, LZ_F32);
    assert_int_equal(lz_ndim(a), 2);
    assert_int_equal(lz_size(a), 6);
    assert_true(lz_is_evaluated(a));
    float out[6];
    assert_int_equal(lz_to_float(a, out, 6), 0);
    assert_memory_equal(out, data, sizeof data);
    assert_true(lz_item(a) == 1.0);
    lz_release(a);
}

static void test_lazy_until_eval(void **state) {
    (void)state;
    int64_t n = 1000;
    lz_array *x = lz_arange(0, (double)n, 1, LZ_F32);
    lz_stats_reset();
    lz_pool_push();
    lz_array *y = lz_exp(lz_mul(x, x));   /* nothing computes */
    lz_array *z = lz_add_scalar(y, 1.0);
    assert_int_equal(lz_stats().kernels, 0);
    assert_false(lz_is_evaluated(z));
    lz_retain(z);
    lz_pool_pop();
    assert_int_equal(lz_eval1(z), 0);
    assert_true(lz_stats().kernels > 0);
    assert_true(lz_is_evaluated(z));
    lz_release(z);
    lz_release(x);
}

/* A chain of 8 elementwise ops over 1,000,000 floats: one kernel, one buffer (the output). */
static void test_fusion_chain_one_kernel(void **state) {
    (void)state;
    int64_t n = 1000000;
    lz_array *x = lz_linspace(-2, 2, n, LZ_F32);
    lz_pool_push();
    lz_array *y = lz_mul_scalar(x, 0.5);        /* 1 (+ scalar leaf) */
    y = lz_add_scalar(y, 1.0);                  /* 2 */
    y = lz_tanh(y);                             /* 3 */
    y = lz_mul(y, x);                           /* 4 */
    y = lz_exp(y);                              /* 5 */
    y = lz_sqrt(y);                             /* 6 */
    y = lz_maximum(y, x);                       /* 7 */
    y = lz_neg(y);                              /* 8 */
    lz_retain(y);
    lz_pool_pop();
    lz_stats_reset();
    t_mem_reset_peak();
    assert_int_equal(lz_eval1(y), 0);
    lz_stats_t s = lz_stats();
    assert_int_equal(s.kernels, 1);
    assert_int_equal(s.fused_ops, 8);
    assert_int_equal(s.buffers, t_on_gpu() ? 2 : 1);   /* on a GPU, x's device copy too */
    uint64_t copies = t_on_gpu() ? 2 : 1;
    assert_true(s.bytes_alloc >= copies * n * 4 && s.bytes_alloc < copies * n * 5);
    float *xs = malloc(n * sizeof *xs), *ys = malloc(n * sizeof *ys);
    lz_to_float(x, xs, n);
    lz_to_float(y, ys, n);
    for (int64_t i = 0; i < n; i += 997) {
        double v = xs[i];
        double r = -fmax(sqrt(exp(tanh(v * 0.5 + 1.0) * v)), v);
        assert_true(fabs(ys[i] - r) <= 1e-5 * fabs(r) + 1e-6);
    }
    free(xs);
    free(ys);
    lz_release(y);
    lz_release(x);
}

/* Evaluating inside a pool, where every intermediate is still referenced by the pool, fuses
 * too; an intermediate read afterwards is recomputed from its inputs. */
static void test_fusion_inside_pool(void **state) {
    (void)state;
    int64_t n = 50000;
    lz_pool_push();
    lz_array *x = lz_linspace(0, 1, n, LZ_F32);
    lz_array *h = lz_mul_scalar(x, 2.0);
    lz_array *y = lz_add_scalar(lz_exp(h), 1.0);
    lz_stats_reset();
    assert_int_equal(lz_eval1(y), 0);
    assert_int_equal(lz_stats().kernels, 1);
    assert_false(lz_is_evaluated(h));
    assert_true(fabs(lz_item(h) - 0.0) < 1e-7);
    float last;
    lz_array *hl = lz_slice_axis(h, 0, -1, n, 1);
    lz_to_float(hl, &last, 1);
    assert_true(fabsf(last - 2.0f) < 1e-6f);
    lz_pool_pop();
}

/* 1000 chained ops: peak memory is a few buffers, not 1000. */
static void test_long_chain_bounded_memory(void **state) {
    (void)state;
    int64_t n = 100000;
    lz_array *x = lz_ones(1, &n, LZ_F32);
    lz_eval1(x);
    lz_array *y = lz_retain(x);
    for (int i = 0; i < 1000; i++) {
        lz_array *z = lz_add_scalar(y, 1.0);
        lz_release(y);
        y = z;
    }
    t_mem_reset_peak();
    size_t before = t_mem().active;
    assert_int_equal(lz_eval1(y), 0);
    size_t peak = t_mem().peak - before;
    assert_true(peak <= 4 * (size_t)n * 4 + 4096);
    assert_true(lz_item(y) == 1001.0);
    lz_release(y);
    lz_release(x);
}

static void test_views_share_memory(void **state) {
    (void)state;
    float data[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[2] = {2, 3};
    lz_array *a = lz_from_data(data, 2, shape, LZ_F32);
    lz_stats_reset();
    lz_array *t = lz_transpose(a);
    assert_true(lz_is_evaluated(t));
    assert_int_equal(lz_stats().buffers, 0);
    assert_int_equal(lz_dim(t, 0), 3);
    float out[6];
    lz_to_float(t, out, 6);
    float want[6] = {0, 3, 1, 4, 2, 5};
    assert_memory_equal(out, want, sizeof want);
    lz_array *f = lz_flip(a, 1);
    lz_to_float(f, out, 6);
    float want_f[6] = {2, 1, 0, 5, 4, 3};
    assert_memory_equal(out, want_f, sizeof want_f);
    lz_array *s = lz_slice_axis(a, 1, 0, 3, 2);
    assert_int_equal(lz_dim(s, 1), 2);
    lz_to_float(s, out, 4);
    float want_s[4] = {0, 2, 3, 5};
    assert_memory_equal(out, want_s, sizeof want_s);
    int64_t r[1] = {-1};
    lz_array *flat = lz_reshape(a, 1, r);
    assert_true(lz_is_evaluated(flat));   /* a view: no copy */
    lz_array *tflat = lz_reshape(t, 1, r);  /* transposed: needs a copy */
    assert_false(lz_is_evaluated(tflat));
    lz_to_float(tflat, out, 6);
    assert_memory_equal(out, want, sizeof want);
    lz_release(tflat); lz_release(flat); lz_release(s); lz_release(f); lz_release(t); lz_release(a);
}

static void test_broadcast_and_promotion(void **state) {
    (void)state;
    uint64_t seed = 7;
    int64_t sa[3] = {4, 1, 5}, sb[2] = {3, 1};
    tarr a = t_rand(3, sa, LZ_F32, -1, 1, &seed, T_STRIDED);
    tarr b = t_rand(2, sb, LZ_I32, -5, 5, &seed, T_CONTIG);
    lz_array *c = lz_mul(a.a, b.a);
    assert_int_equal(lz_dtype_of(c), LZ_F32);
    assert_int_equal(lz_ndim(c), 3);
    double ref[60];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 3; j++) for (int k = 0; k < 5; k++)
        ref[(i * 3 + j) * 5 + k] = a.v[i * 5 + k] * b.v[j];
    t_assert_close(c, ref, 60, 1e-6, 0);
    lz_release(c);
    t_free(&a);
    t_free(&b);
}

static void test_donation_in_place(void **state) {
    (void)state;
    int64_t n = 4096;
    lz_array *x = lz_ones(1, &n, LZ_F32);
    lz_eval1(x);
    lz_array *y = lz_mul_scalar(x, 3.0);
    lz_eval1(y);            /* y is held: its buffer may not be reused */
    lz_array *z = lz_add_scalar(y, 1.0);
    lz_release(y);          /* now y dies inside z's eval: z takes its buffer */
    lz_stats_reset();
    lz_eval1(z);
    assert_int_equal(lz_stats().buffers, 0);
    assert_true(lz_item(z) == 4.0);
    lz_release(z);
    lz_release(x);
}

static void test_errors_name_op_and_shapes(void **state) {
    (void)state;
    int64_t s1[2] = {2, 3}, s2[2] = {4, 3};
    lz_array *a = lz_zeros(2, s1, LZ_F32), *b = lz_zeros(2, s2, LZ_F32);
    t_assert_error(lz_add(a, b), "add: shapes float32[2,3] and float32[4,3] cannot be broadcast");
    t_assert_error(lz_transpose(NULL), "");
    t_assert_error(lz_squeeze(a, 0), "squeeze: axis 0 has size 2");
    t_assert_error(lz_expand_dims(a, 5), "axis 5 is out of range");
    int64_t bad[1] = {7};
    t_assert_error(lz_reshape(a, 1, bad), "reshape: cannot reshape float32[2,3] (6 elements) into [7]");
    /* a NULL input propagates without a new message */
    lz_error_clear();
    lz_fail("first");
    assert_null(lz_exp(lz_add(a, b)));
    assert_string_equal(lz_error(), "add: shapes float32[2,3] and float32[4,3] cannot be broadcast together");
    lz_release(a);
    lz_release(b);
}

static void test_memory_limit_is_an_error(void **state) {
    (void)state;
    int64_t n = 1 << 20;
    lz_array *x = lz_ones(1, &n, LZ_F32);
    t_mem_set_limit(t_mem().active + 1024);
    lz_error_clear();
    assert_int_equal(lz_eval1(x), -1);
    assert_non_null(strstr(lz_error(), "out of memory"));
    assert_false(lz_is_evaluated(x));
    t_mem_set_limit(0);
    assert_int_equal(lz_eval1(x), 0);
    assert_true(lz_item(x) == 1.0);
    lz_release(x);
}

static void test_graph_guard(void **state) {
    (void)state;
    lz_set_graph_limit(50, LZ_GRAPH_ERROR);
    lz_array *y = lz_scalar(0, LZ_F32);
    lz_array *ok = NULL;
    for (int i = 0; i < 60 && y; i++) {
        lz_array *z = lz_add_scalar(y, 1.0);
        lz_release(y);
        y = z;
        if (i == 10) ok = lz_retain(y);
    }
    assert_null(y);
    assert_non_null(strstr(lz_error(), "without lz_eval"));
    lz_set_graph_limit(50, LZ_GRAPH_EVAL);
    y = lz_scalar(0, LZ_F32);
    for (int i = 0; i < 200; i++) {
        lz_array *z = lz_add_scalar(y, 1.0);
        lz_release(y);
        y = z;
    }
    assert_true(lz_item(y) == 200.0);
    lz_release(y);
    lz_release(ok);
    lz_set_graph_limit(1000000, LZ_GRAPH_ERROR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_data_and_read),
        cmocka_unit_test(test_lazy_until_eval),
        cmocka_unit_test(test_fusion_chain_one_kernel),
        cmocka_unit_test(test_fusion_inside_pool),
        cmocka_unit_test(test_long_chain_bounded_memory),
        cmocka_unit_test(test_views_share_memory),
        cmocka_unit_test(test_broadcast_and_promotion),
        cmocka_unit_test(test_donation_in_place),
        cmocka_unit_test(test_errors_name_op_and_shapes),
        cmocka_unit_test(test_memory_limit_is_an_error),
        cmocka_unit_test(test_graph_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
