/* The CUDA backend as the user sees it: devices, unified memory (copies made once, where
 * they are read), mixing CPU and GPU ops, the same random bits on both, fusion into one
 * kernel, device memory figures and limits. Skips (passing) on a machine without a GPU;
 * `test_cuda --require-gpu` exits 2 there instead (make test-cuda uses it). */
#include "testutil.h"

static lz_array *ramp(int64_t n, double scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(scale * (double)(i % 1000) - 3.0);
    lz_array *a = lz_from_data(v, 1, &n, LZ_F32);
    free(v);
    return a;
}

static void test_devices(void **state) {
    (void)state;
    assert_int_equal(lz_set_default_device(LZ_GPU), 0);
    assert_int_equal(lz_default_device(), LZ_GPU);
    assert_string_equal(lz_device_name(LZ_GPU), "cuda");
    /* a thread default overrides the process's, and unset follows it again */
    assert_int_equal(lz_set_thread_device(LZ_CPU), 0);
    assert_int_equal(lz_default_device(), LZ_CPU);
    assert_int_equal(lz_set_thread_device(LZ_DEVICE_UNSET), 0);
    assert_int_equal(lz_default_device(), LZ_GPU);
}

/* An op on the GPU copies its host input once; reading the result copies it back once;
 * a CPU op reading a GPU result gets its value; and the other way round. */
static void test_unified_memory(void **state) {
    (void)state;
    lz_pool_push();
    int64_t n = 1 << 20;
    lz_array *x = ramp(n, 0.01);
    lz_set_thread_device(LZ_GPU);
    lz_stats_reset();
    lz_array *y = lz_mul_scalar(lz_add(x, x), 0.5);   /* = x, on the GPU */
    assert_int_equal(lz_eval1(y), 0);
    lz_stats_t s = lz_stats();
    assert_int_equal(s.to_device, (uint64_t)n * 4);
    assert_int_equal(s.to_host, 0);
    assert_true(s.gpu_kernels >= 1);
    assert_true(lz_memory_device().active >= (size_t)n * 4);
    const float *p = lz_data(y);
    assert_non_null(p);
    assert_int_equal(lz_stats().to_host, (uint64_t)n * 4);
    for (int64_t i = 0; i < n; i += 4099) assert_float_equal(p[i], (float)(0.01 * (double)(i % 1000) - 3.0), 1e-6);
    (void)lz_data(y);   /* valid on the host now: no second copy */
    assert_int_equal(lz_stats().to_host, (uint64_t)n * 4);
    /* a second GPU op on x does not copy x again */
    lz_array *z = lz_sum(lz_neg(x), NULL, 0, 0);
    assert_int_equal(lz_eval1(z), 0);
    assert_int_equal(lz_stats().to_device, (uint64_t)n * 4);
    /* a CPU op reading the GPU result */
    lz_set_thread_device(LZ_CPU);
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref -= (double)(float)(0.01 * (double)(i % 1000) - 3.0);
    lz_array *w = lz_add_scalar(z, 1.0);
    assert_float_equal(lz_item(w), ref + 1.0, fabs(ref) * 1e-6);
    lz_set_thread_device(LZ_DEVICE_UNSET);
    lz_pool_pop();
}

/* Philox: the same key gives the same bits on both devices, and so the same normals. */
static void test_random_bits_identical(void **state) {
    (void)state;
    lz_pool_push();
    int64_t shape[2] = {37, 1001};
    lz_key k = lz_key_fold(lz_key_new(42), 7);
    lz_set_thread_device(LZ_CPU);
    lz_array *c = lz_random_bits(k, 2, shape), *cn = lz_random_normal(k, 2, shape, 0, 1, LZ_F32);
    assert_int_equal(LZ_EVAL(c, cn), 0);
    lz_set_thread_device(LZ_GPU);
    lz_stats_reset();
    lz_array *g = lz_random_bits(k, 2, shape), *gn = lz_random_normal(k, 2, shape, 0, 1, LZ_F32);
    assert_int_equal(LZ_EVAL(g, gn), 0);
    assert_true(lz_stats().gpu_kernels >= 1);
    assert_int_equal(lz_stats().cpu_fallbacks, 0);
    lz_set_thread_device(LZ_DEVICE_UNSET);
    const int64_t *a = lz_data(c), *b = lz_data(g);
    int64_t n = shape[0] * shape[1], bad = 0;
    for (int64_t i = 0; i < n; i++) bad += a[i] != b[i];
    assert_int_equal(bad, 0);
    const float *fa = lz_data(cn), *fb = lz_data(gn);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)fa[i] - fb[i]));
    printf("random: %lld words identical; normals differ by at most %.3g (libm vs CUDA)\n",
           (long long)n, worst);
    assert_true(worst < 1e-5);
    lz_pool_pop();
}

/* An 8-op elementwise chain is one generated kernel, and its result matches the CPU's. */
static void test_fused_chain(void **state) {
    (void)state;
    lz_pool_push();
    int64_t n = 100003;
    lz_array *x = ramp(n, 0.006);
    lz_array *outs[2];
    for (int dev = 0; dev < 2; dev++) {
        lz_set_thread_device(dev ? LZ_GPU : LZ_CPU);
        lz_array *y = lz_tanh(lz_mul_scalar(lz_exp(lz_neg(lz_square(lz_sin(lz_add_scalar(x, 0.5))))), 3.0));
        y = lz_sqrt(lz_add_scalar(lz_abs(y), 1.0));
        lz_stats_reset();
        assert_int_equal(lz_eval1(y), 0);
        if (dev) {
            assert_int_equal(lz_stats().kernels, 1);
            assert_int_equal(lz_stats().gpu_kernels, 1);
        }
        outs[dev] = y;
    }
    lz_set_thread_device(LZ_DEVICE_UNSET);
    const float *a = lz_data(outs[0]), *b = lz_data(outs[1]);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]) / fmax(1e-30, fabs(a[i])));
    printf("fused chain: one kernel, relative difference to the CPU at most %.3g\n", worst);
    assert_true(worst < 1e-5);
    lz_pool_pop();
}

/* A matmul and a reduction on the GPU against the CPU. */
static void test_matmul_reduce(void **state) {
    (void)state;
    lz_pool_push();
    int64_t sa[2] = {129, 77}, sb[2] = {77, 65};
    lz_key k = lz_key_new(3);
    lz_array *a = lz_random_normal(lz_key_fold(k, 1), 2, sa, 0, 1, LZ_F32);
    lz_array *b = lz_random_normal(lz_key_fold(k, 2), 2, sb, 0, 1, LZ_F32);
    assert_int_equal(LZ_EVAL(a, b), 0);
    lz_array *r[2][3];
    for (int dev = 0; dev < 2; dev++) {
        lz_set_thread_device(dev ? LZ_GPU : LZ_CPU);
        lz_array *c = lz_matmul(a, lz_transpose(lz_transpose(b)));
        r[dev][0] = c;
        r[dev][1] = lz_sum(c, (int[]){0}, 1, 0);
        r[dev][2] = lz_max(lz_mul(c, c), (int[]){1}, 1, 1);
        assert_int_equal(LZ_EVAL(r[dev][0], r[dev][1], r[dev][2]), 0);
    }
    lz_set_thread_device(LZ_DEVICE_UNSET);
    for (int j = 0; j < 3; j++) {
        int64_t n = lz_size(r[0][j]);
        const float *x = lz_data(r[0][j]), *y = lz_data(r[1][j]);
        for (int64_t i = 0; i < n; i++) assert_float_equal(x[i], y[i], 1e-4 * (1 + fabs(x[i])));
    }
    lz_pool_pop();
}

/* The device limit turns an allocation past it into an error naming the device. */
static void test_device_limit(void **state) {
    (void)state;
    lz_pool_push();
    lz_memory_info m = lz_memory_device();
    assert_true(m.limit > 0);   /* capped below the card's free memory from the start */
    lz_memory_device_set_limit(m.active + 4096);
    lz_set_thread_device(LZ_GPU);
    int64_t n = 1 << 20;
    lz_array *x = ramp(n, 1.0);
    lz_array *y = lz_exp(x);
    assert_int_equal(lz_eval1(y), -1);
    assert_non_null(strstr(lz_error(), "out of memory (device)"));
    lz_memory_device_set_limit(m.limit);
    assert_int_equal(lz_eval1(y), 0);
    lz_set_thread_device(LZ_DEVICE_UNSET);
    lz_pool_pop();
}

int main(int argc, char **argv) {
    bool require = argc > 1 && !strcmp(argv[1], "--require-gpu");
    if (getenv("LZ_TEST_EMULATED_GPU")) {   /* this test is for a real GPU and its kernels */
        printf("skip test_cuda: the GPU is emulated (tests/emu_gpu.h)\n");
        return require ? 2 : 0;
    }
    if (!lz_gpu_available()) {
        printf("%s test_cuda: no GPU (%s)\n", require ? "FAIL" : "skip", lz_gpu_status());
        return require ? 2 : 0;
    }
    if (require) {
        printf("GPU: %s\n", lz_gpu_status());
        return 0;
    }
    printf("GPU: %s\n", lz_gpu_status());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_unified_memory),
        cmocka_unit_test(test_random_bits_identical),
        cmocka_unit_test(test_fused_chain),
        cmocka_unit_test(test_matmul_reduce),
        cmocka_unit_test(test_device_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
