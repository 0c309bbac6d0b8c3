/* Arrays: dtypes and conversions, creation ops, adoption of user buffers, reading back,
 * pools, the allocator's cache and limits, threads. */
#include "testutil.h"

static void test_dtype_table(void **state) {
    (void)state;
    assert_int_equal(lz_dtype_size(LZ_F32), 4);
    assert_int_equal(lz_dtype_size(LZ_F16), 2);
    assert_int_equal(lz_dtype_size(LZ_BF16), 2);
    assert_int_equal(lz_dtype_size(LZ_I64), 8);
    assert_int_equal(lz_dtype_size(LZ_BOOL), 1);
    assert_string_equal(lz_dtype_name(LZ_BF16), "bfloat16");
    assert_true(lz_dtype_is_float(LZ_F16));
    assert_false(lz_dtype_is_float(LZ_I32));
}

/* float16 and bfloat16 store with round-to-nearest-even: check exact known encodings. */
static void test_half_storage(void **state) {
    (void)state;
    float v[6] = {1.0f, -2.5f, 65504.0f, 1e-8f, 3.14159265f, 70000.0f};
    int64_t n = 6;
    lz_array *a = lz_from_data(v, 1, &n, LZ_F32);
    lz_array *h = lz_astype(a, LZ_F16), *b = lz_astype(a, LZ_BF16);
    const uint16_t *hp = lz_data(h), *bp = lz_data(b);
    uint16_t want_h[6] = {0x3c00, 0xc100, 0x7bff, 0x0000, 0x4248, 0x7c00};
    uint16_t want_b[6] = {0x3f80, 0xc020, 0x4780, 0x322c, 0x4049, 0x4789};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(hp[i], want_h[i]);
        assert_int_equal(bp[i], want_b[i]);
    }
    float back[6];
    lz_to_float(h, back, 6);
    assert_true(back[0] == 1.0f && back[1] == -2.5f && back[2] == 65504.0f && isinf(back[5]));
    lz_release(a); lz_release(h); lz_release(b);
}

static void test_creation(void **state) {
    (void)state;
    lz_array *r = lz_arange(0, 10, 3, LZ_I32);
    int64_t iv[8];
    assert_int_equal(lz_size(r), 4);
    lz_to_int(r, iv, 4);
    assert_true(iv[0] == 0 && iv[1] == 3 && iv[2] == 6 && iv[3] == 9);
    lz_array *rd = lz_arange(5, 0, -2, LZ_F32);
    float fv[8];
    assert_int_equal(lz_size(rd), 3);
    lz_to_float(rd, fv, 3);
    assert_true(fv[0] == 5 && fv[1] == 3 && fv[2] == 1);
    lz_array *l = lz_linspace(0, 1, 5, LZ_F32);
    lz_to_float(l, fv, 5);
    for (int i = 0; i < 5; i++) assert_true(fabsf(fv[i] - 0.25f * (float)i) < 1e-7f);
    lz_array *e = lz_eye(3, 4, 1, LZ_F32);
    float ev[12];
    lz_to_float(e, ev, 12);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) assert_true(ev[i * 4 + j] == (j - i == 1 ? 1.0f : 0.0f));
    int64_t s[2] = {2, 3};
    lz_array *f = lz_full(2, s, 2.5, LZ_F32), *z = lz_zeros(2, s, LZ_I64), *o = lz_ones_like(f);
    assert_false(lz_is_evaluated(f));   /* lazy */
    lz_to_float(f, fv, 6);
    for (int i = 0; i < 6; i++) assert_true(fv[i] == 2.5f);
    assert_int_equal(lz_to_int(z, iv, 8), 0);
    assert_true(iv[0] == 0 && iv[3] == 0);
    assert_true(lz_item(o) == 1.0);
    lz_array *zero = lz_zeros(0, NULL, LZ_F32);
    assert_int_equal(lz_ndim(zero), 0);
    assert_true(lz_item(zero) == 0.0);
    t_assert_error(lz_arange(0, 1, 0, LZ_F32), "arange");
    t_assert_error(lz_linspace(0, 1, -1, LZ_F32), "linspace: negative count");
    int64_t neg[1] = {-3};
    t_assert_error(lz_zeros(1, neg, LZ_F32), "negative dimension");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    t_assert_error(lz_zeros(9, nine, LZ_F32), "at most 8 dimensions");
    lz_release(r); lz_release(rd); lz_release(l); lz_release(e);
    lz_release(f); lz_release(z); lz_release(o); lz_release(zero);
}

static int freed;
static void count_free(void *data, void *ctx) { (void)ctx; free(data); freed++; }

static void test_adopt_buffer(void **state) {
    (void)state;
    float *p = malloc(4 * sizeof *p);
    for (int i = 0; i < 4; i++) p[i] = (float)i;
    int64_t n = 4;
    freed = 0;
    lz_array *a = lz_from_buffer(p, 1, &n, LZ_F32, count_free, NULL);
    assert_ptr_equal(lz_data(a), p);            /* no copy */
    lz_array *v = lz_slice_axis(a, 0, 1, 4, 2);  /* a view keeps the buffer alive */
    lz_release(a);
    assert_int_equal(freed, 0);
    float out[2];
    lz_to_float(v, out, 2);
    assert_true(out[0] == 1 && out[1] == 3);
    lz_release(v);
    assert_int_equal(freed, 1);
}

static void test_reading(void **state) {
    (void)state;
    int64_t s[2] = {3, 4};
    lz_array *a = lz_arange(0, 12, 1, LZ_F32);
    lz_array *m = lz_reshape(a, 2, s), *t = lz_transpose(m);
    const float *d = lz_data(t);                  /* non-contiguous: made contiguous */
    assert_true(lz_is_contiguous(t));
    assert_true(d[0] == 0 && d[1] == 4 && d[2] == 8 && d[3] == 1);
    int64_t iv[12];
    assert_int_equal(lz_to_int(t, iv, 12), 0);
    assert_true(iv[11] == 11);
    float small[2];
    assert_int_equal(lz_to_float(t, small, 2), -1);
    assert_non_null(strstr(lz_error(), "room for 2 elements"));
    int64_t zero = 0;
    lz_array *empty = lz_zeros(1, &zero, LZ_F32);
    assert_true(isnan(lz_item(empty)));
    assert_non_null(strstr(lz_error(), "empty"));
    char buf[64];
    assert_string_equal(lz_shape_str(t, buf, sizeof buf), "float32[4,3]");
    lz_release(a); lz_release(m); lz_release(t); lz_release(empty);
}

static void test_pool_releases(void **state) {
    (void)state;
    size_t before = t_mem().active;
    int64_t n = 1 << 16;
    lz_pool_push();
    lz_array *x = lz_ones(1, &n, LZ_F32);
    lz_array *y = lz_add(x, x);
    lz_array *keep = lz_retain(lz_mul(y, y));
    lz_eval1(keep);
    lz_pool_pop();
    assert_true(lz_item(keep) == 4.0);
    lz_release(keep);
    assert_int_equal(t_mem().active, before);
}

/* A training loop's buffers come back from the cache: no new system allocation per step. */
static void test_allocator_cache(void **state) {
    (void)state;
    t_mem_set_cache_limit((size_t)1 << 30);
    int64_t n = 100000;
    for (int step = 0; step < 3; step++) {
        lz_pool_push();
        lz_array *x = lz_full(1, &n, (double)step, LZ_F32);
        lz_array *y = lz_exp(x);
        lz_eval1(y);
        lz_pool_pop();
        if (step == 0) assert_true(t_mem().cached >= (size_t)n * 4);
    }
    lz_memory_info m = t_mem();
    assert_true(m.cached <= m.cache_limit);
    t_mem_set_cache_limit(0);      /* a zero limit empties the cache */
    assert_int_equal(t_mem().cached, 0);
    t_mem_set_cache_limit(t_on_gpu() ? (size_t)-1 : (size_t)1 << 28);
}

static size_t counted;
static void *counting_alloc(size_t n) { counted += n; return aligned_alloc(64, n); }

/* The allocator's source of blocks can be replaced (a GPU backend's managed memory), but
 * only while nothing is live. */
static void test_system_allocator_hook(void **state) {
    (void)state;
    lz_memory_clear_cache();
    assert_int_equal(lz_memory().active, 0);   /* the tests before released everything */
    {
        assert_int_equal(lz_memory_set_system_allocator(counting_alloc, free), 0);
        counted = 0;
        int64_t n = 5000;
        lz_array *x = lz_ones(1, &n, LZ_F32);
        assert_true(lz_item(x) == 1.0);
        assert_true(counted >= 5000 * 4);
        assert_int_equal(lz_memory_set_system_allocator(NULL, NULL), -1);   /* x is live */
        assert_non_null(strstr(lz_error(), "bytes are live"));
        lz_release(x);
        assert_int_equal(lz_memory_set_system_allocator(NULL, NULL), 0);
    }
}

static void test_threads_same_result(void **state) {
    (void)state;
    int64_t n = 300001;
    lz_array *x = lz_linspace(-3, 3, n, LZ_F32);
    float *r1 = malloc(n * sizeof *r1), *r2 = malloc(n * sizeof *r2);
    lz_pool_push();
    lz_set_threads(1);
    assert_int_equal(lz_threads(), 1);
    lz_array *y1 = lz_tanh(lz_mul(x, x));
    lz_to_float(y1, r1, n);
    lz_set_threads(2);
    lz_array *y2 = lz_tanh(lz_mul(x, x));
    lz_to_float(y2, r2, n);
    assert_memory_equal(r1, r2, n * sizeof *r1);
    lz_set_threads(0);
    assert_true(lz_threads() >= 1);
    free(r1); free(r2);
    lz_pool_pop();
    lz_release(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_half_storage),
        cmocka_unit_test(test_creation),
        cmocka_unit_test(test_adopt_buffer),
        cmocka_unit_test(test_reading),
        cmocka_unit_test(test_pool_releases),
        cmocka_unit_test(test_allocator_cache),
        cmocka_unit_test(test_system_allocator_hook),
        cmocka_unit_test(test_threads_same_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
