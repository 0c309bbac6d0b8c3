/* Initializers: fans, gains, and the moments and bounds of each distribution against the
 * formulas of torch.nn.init; the orthogonal initializer's orthonormality. */
#include "nn_testutil.h"

/* ---- initializers ---- */

static void moments(lz_array *a, double *mean, double *var, double *lo, double *hi) {
    double *v = nt_vals(a);
    int64_t n = lz_size(a);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += v[i];
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *var = s2 / (double)n;
    free(v);
}

static void test_initializers(void **state) {
    (void)state;
    int64_t shape[4] = {64, 32, 3, 3};   /* fan_in 288, fan_out 576 */
    double fi, fo, mean, var, lo, hi;
    lz_init_fans(4, shape, &fi, &fo);
    assert_true(fi == 288 && fo == 576);
    lz_init_fans(1, shape, &fi, &fo);
    assert_true(fi == 64 && fo == 64);
    assert_true(fabs(lz_init_gain("relu", 0) - sqrt(2)) < 1e-12);
    assert_true(fabs(lz_init_gain("leaky_relu", sqrt(5)) - sqrt(1.0 / 3)) < 1e-12);
    assert_true(fabs(lz_init_gain("tanh", 0) - 5.0 / 3) < 1e-12);
    lz_error_clear();
    assert_true(lz_init_gain("swish", 0) == -1);
    assert_non_null(strstr(lz_error(), "unknown nonlinearity \"swish\""));
    lz_pool_push();
    lz_key k = lz_key_new(4);
    struct { lz_array *a; double mean, var, bound; } cs[] = {
        {lz_init_zeros(4, shape, LZ_F32), 0, 0, 0},
        {lz_init_ones(4, shape, LZ_F32), 1, 0, 1},
        {lz_init_constant(4, shape, 0.25, LZ_F32), 0.25, 0, 0.25},
        {lz_init_uniform(k, 4, shape, -2, 1, LZ_F32), -0.5, 9.0 / 12, 2},
        {lz_init_normal(k, 4, shape, 1, 2, LZ_F32), 1, 4, 0},
        /* N(0,1) truncated to [-2, 2] has variance 0.7737 */
        {lz_init_truncated_normal(k, 4, shape, 0.5, 2, -3.5, 4.5, LZ_F32), 0.5, 4 * 0.77371, 4},
        {lz_init_xavier_uniform(k, 4, shape, 2, LZ_F32), 0, 4 * 2.0 / 864, 2 * sqrt(6.0 / 864)},
        {lz_init_xavier_normal(k, 4, shape, 1, LZ_F32), 0, 2.0 / 864, 0},
        {lz_init_kaiming_uniform(k, 4, shape, sqrt(2), LZ_FAN_IN, LZ_F32), 0, 2.0 / 288, sqrt(6.0 / 288)},
        {lz_init_kaiming_normal(k, 4, shape, sqrt(2), LZ_FAN_OUT, LZ_F32), 0, 2.0 / 576, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        assert_non_null(cs[i].a);
        moments(cs[i].a, &mean, &var, &lo, &hi);
        double sd = sqrt(cs[i].var);
        assert_true(fabs(mean - cs[i].mean) <= 0.02 * (sd + 1e-3) * 5);
        assert_true(fabs(var - cs[i].var) <= 0.05 * cs[i].var + 1e-12);
        if (cs[i].bound > 0 && i >= 3) {
            /* bounds hold and are nearly reached: uniform ones symmetric around the mean */
            assert_true(hi <= cs[i].mean + cs[i].bound + 1e-6 || i == 3);
            assert_true(lo >= cs[i].mean - cs[i].bound - 1e-6);
            assert_true(hi - lo > 1.8 * cs[i].bound * (i == 3 ? 0.75 : 1));
        }
    }
    /* orthogonal: rows orthonormal (wide) or columns (tall), times gain */
    for (int tall = 0; tall < 2; tall++) {
        int64_t s2[3] = {tall ? 12 : 4, 2, tall ? 2 : 4};   /* [12, 4] or [4, 8] after flattening */
        lz_array *q = lz_init_orthogonal(k, 3, s2, 2, LZ_F32);
        assert_true(lz_is_evaluated(q));
        double *v = nt_vals(q);
        int64_t r = s2[0], c = s2[1] * s2[2], n = tall ? c : r;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double dot = 0;
                for (int64_t e = 0; e < (tall ? r : c); e++)
                    dot += tall ? v[e * c + i] * v[e * c + j] : v[i * c + e] * v[j * c + e];
                assert_true(fabs(dot - (i == j ? 4 : 0)) < 1e-5);
            }
        free(v);
    }
    t_assert_error(lz_init_orthogonal(k, 1, shape, 1, LZ_F32), "needs at least 2 dimensions");
    t_assert_error(lz_init_normal(k, 2, shape, 0, 1, LZ_I32), "init_normal: dtype int32 is not a float dtype");
    t_assert_error(lz_init_truncated_normal(k, 2, shape, 0, 1, 2, -2, LZ_F32), "lo 2 must be < hi -2");
    int64_t zero[2] = {3, 0};
    t_assert_error(lz_init_kaiming_uniform(k, 2, zero, 1, LZ_FAN_IN, LZ_F32), "the shape has an empty fan");
    lz_pool_pop();
}


/* the documented defaults of layers without random init (PyTorch's) and of LoRA (PEFT's) */
static void all_equal(lz_module *m, const char *name, double v) {
    lz_array *a = lz_module_param(m, name);
    assert_non_null(a);
    double *x = nt_vals(a);
    for (int64_t i = 0; i < lz_size(a); i++)
        if (x[i] != v) fail_msg("%s[%lld] = %g, expected %g", name, (long long)i, x[i], v);
    free(x);
}

static void test_layer_defaults(void **state) {
    (void)state;
    lz_module *ln = lz_nn_layer_norm(6, 1e-5, true, true), *rn = lz_nn_rms_norm(6, 1e-6, true);
    lz_module *bn = lz_nn_batch_norm2d(4, 1e-5, 0.1, true), *gn = lz_nn_group_norm(2, 4, 1e-5, true);
    all_equal(ln, "weight", 1);
    all_equal(ln, "bias", 0);
    all_equal(rn, "weight", 1);
    all_equal(bn, "weight", 1);
    all_equal(bn, "bias", 0);
    all_equal(bn, "running_mean", 0);
    all_equal(bn, "running_var", 1);
    all_equal(gn, "weight", 1);
    all_equal(gn, "bias", 0);
    lz_module *seq = lz_nn_sequential(1, (lz_module *[]){lz_nn_linear(100, 50, true, lz_key_new(1))});
    assert_int_equal(lz_lora_apply(seq, "0", 4, 8, 0, lz_key_new(2)), 1);
    all_equal(seq, "0.lora_b", 0);
    double *a = nt_param(seq, "0.lora_a"), mx = 0;
    for (int i = 0; i < 400; i++) mx = fmax(mx, fabs(a[i]));
    assert_true(mx <= 0.1 && mx > 0.09);   /* U(-1/sqrt(in), 1/sqrt(in)), in = 100 */
    free(a);
    lz_module_free(ln); lz_module_free(rn); lz_module_free(bn); lz_module_free(gn); lz_module_free(seq);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initializers),
        cmocka_unit_test(test_layer_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
