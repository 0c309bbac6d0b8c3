/* Learning-rate schedules at chosen steps against their formulas, and gradient clipping
 * (by global norm and by value) against float64 references. */
#include "testutil.h"
#include "optim/optim.h"
#include "optim_testutil.h"

/* ---- clipping ---- */

static void test_clip_grad_norm(void **state) {
    (void)state;
    uint64_t seed = 9;
    tarr g[3] = {t_rand(2, (int64_t[]){4, 5}, LZ_F32, -1, 1, &seed, T_TRANSPOSED),
                 t_rand(1, (int64_t[]){9}, LZ_F32, -1, 1, &seed, T_STRIDED),
                 t_rand(1, (int64_t[]){0}, LZ_F32, -1, 1, &seed, T_CONTIG)};
    lz_array *in[3] = {g[0].a, g[1].a, g[2].a}, *out[3], *norm;
    double sq = 0;
    for (int j = 0; j < 3; j++)
        for (int64_t i = 0; i < g[j].n; i++) sq += g[j].v[i] * g[j].v[i];
    double total = sqrt(sq);
    for (int pass = 0; pass < 2; pass++) {
        double max_norm = pass ? 2 * total : total / 3;       /* clips, then does not */
        lz_stats_reset();
        assert_int_equal(lz_clip_grad_norm(3, in, max_norm, out, &norm), 0);
        assert_int_equal(lz_stats().kernels, 0);               /* lazy */
        assert_int_equal(lz_ndim(norm), 0);
        assert_true(fabs(lz_item(norm) - total) <= 1e-6 * total);
        double coef = fmin(1, max_norm / (total + 1e-6));
        for (int j = 0; j < 3; j++) {
            double *want = malloc((size_t)(g[j].n + 1) * sizeof(double));
            for (int64_t i = 0; i < g[j].n; i++) want[i] = g[j].v[i] * coef;
            t_assert_close(out[j], want, g[j].n, pass ? 0 : 1e-6, 0);   /* coef 1: exact */
            free(want);
            lz_release(out[j]);
        }
        lz_release(norm);
    }
    /* no gradients: norm 0 */
    assert_int_equal(lz_clip_grad_norm(0, NULL, 1, NULL, &norm), 0);
    assert_true(lz_item(norm) == 0);
    lz_release(norm);
    /* value clipping, with a NaN kept */
    double v[5] = {-3, -0.5, 0, 0.7, NAN}, want[5] = {-1, -0.5, 0, (float)0.7, NAN};
    lz_array *x = mk(v, 1, (int64_t[]){5}, T_STRIDED), *y;
    assert_int_equal(lz_clip_grad_value(1, &x, 1.0, &y), 0);
    t_assert_close(y, want, 5, 0, 0);
    lz_release(y);
    assert_fails(lz_clip_grad_norm(1, &x, 0, &y, NULL), "lz_clip_grad_norm: the bound must be finite and > 0");
    assert_fails(lz_clip_grad_value(1, &x, -1, &y), "must be finite and >= 0");
    lz_array *ints = lz_arange(0, 3, 1, LZ_I32);
    assert_fails(lz_clip_grad_norm(1, &ints, 1, &y, NULL), "gradient 0 is int32[3], not float");
    lz_release(ints);
    lz_release(x);
    for (int j = 0; j < 3; j++) t_free(&g[j]);
}

/* ---- schedules at chosen steps ---- */

static void near(double got, double want) {
    if (fabs(got - want) > 1e-12 * fmax(1, fabs(want))) fail_msg("got %.17g, expected %.17g", got, want);
}

static void test_schedules(void **state) {
    (void)state;
    lz_schedule *s = lz_schedule_constant(0.3);
    near(lz_schedule_value(s, 0), 0.3);
    near(lz_schedule_value(s, 1000000), 0.3);
    lz_schedule_free(s);

    s = lz_schedule_step(0.1, 10, 0.5);
    near(lz_schedule_value(s, 0), 0.1);
    near(lz_schedule_value(s, 9), 0.1);
    near(lz_schedule_value(s, 10), 0.05);
    near(lz_schedule_value(s, 25), 0.025);
    near(lz_schedule_value(s, -5), 0.1);
    lz_schedule_free(s);

    s = lz_schedule_multistep(1, 2, (int64_t[]){3, 7}, 0.1);
    near(lz_schedule_value(s, 2), 1);
    near(lz_schedule_value(s, 3), 0.1);
    near(lz_schedule_value(s, 6), 0.1);
    near(lz_schedule_value(s, 7), 0.01);
    near(lz_schedule_value(s, 1000), 0.01);
    lz_schedule_free(s);

    s = lz_schedule_exponential(2, 0.9);
    near(lz_schedule_value(s, 0), 2);
    near(lz_schedule_value(s, 3), 2 * 0.729);
    lz_schedule_free(s);

    s = lz_schedule_cosine(1, 100, 0.1);
    near(lz_schedule_value(s, 0), 1);
    near(lz_schedule_value(s, 50), 0.55);
    near(lz_schedule_value(s, 25), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI / 4)));
    near(lz_schedule_value(s, 100), 0.1);
    near(lz_schedule_value(s, 150), 0.1);
    lz_schedule_free(s);

    s = lz_schedule_linear(0, 1e-3, 10);
    near(lz_schedule_value(s, 0), 0);
    near(lz_schedule_value(s, 5), 5e-4);
    near(lz_schedule_value(s, 10), 1e-3);
    near(lz_schedule_value(s, 20), 1e-3);
    lz_schedule_free(s);

    /* warmup 10 steps to 1e-3, then cosine to 1e-5 over 90: join and the convenience */
    lz_schedule *parts[2] = {lz_schedule_linear(0, 1e-3, 10), lz_schedule_cosine(1e-3, 90, 1e-5)};
    lz_schedule *j = lz_schedule_join(2, parts, (int64_t[]){10});
    lz_schedule *wc = lz_schedule_warmup_cosine(1e-3, 10, 100, 1e-5);
    double want[][2] = {{0, 0}, {5, 5e-4}, {9, 9e-4}, {10, 1e-3}, {55, 1e-5 + (1e-3 - 1e-5) * 0.5},
                        {100, 1e-5}, {500, 1e-5}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        near(lz_schedule_value(j, (int64_t)want[i][0]), want[i][1]);
        near(lz_schedule_value(wc, (int64_t)want[i][0]), want[i][1]);
    }
    lz_schedule_free(j);
    lz_schedule_free(wc);

    /* three parts, each counted from its own start */
    lz_schedule *three[3] = {lz_schedule_constant(1), lz_schedule_exponential(1, 0.5),
                             lz_schedule_constant(0.01)};
    j = lz_schedule_join(3, three, (int64_t[]){2, 5});
    double w3[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 0.5}, {4, 0.25}, {5, 0.01}, {9, 0.01}};
    for (size_t i = 0; i < sizeof w3 / sizeof *w3; i++) near(lz_schedule_value(j, (int64_t)w3[i][0]), w3[i][1]);
    lz_schedule_free(j);

    /* errors: bad arguments; a join frees its parts when it fails */
    t_assert_error(lz_schedule_step(1, 0, 0.5), "lz_schedule_step: step_size 0 must be > 0");
    t_assert_error(lz_schedule_cosine(1, 0, 0), "lz_schedule_cosine: steps 0");
    t_assert_error(lz_schedule_linear(0, 1, -1), "lz_schedule_linear: steps -1");
    t_assert_error(lz_schedule_constant(NAN), "not finite");
    t_assert_error(lz_schedule_multistep(1, 2, (int64_t[]){5, 5}, 0.1), "milestones must increase");
    lz_schedule *bad[2] = {lz_schedule_constant(1), lz_schedule_constant(2)};
    t_assert_error(lz_schedule_join(2, bad, (int64_t[]){0}), "boundaries must be positive");
    lz_error_clear();
    lz_schedule *withnull[2] = {lz_schedule_constant(1), lz_schedule_cosine(1, -1, 0)};
    assert_null(lz_schedule_join(2, withnull, (int64_t[]){3}));
    assert_non_null(strstr(lz_error(), "lz_schedule_cosine"));   /* the first error is kept */
    t_assert_error(lz_schedule_warmup_cosine(1, 10, 10, 0), "warmup (10) < total (10)");
    assert_true(isnan(lz_schedule_value(NULL, 3)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_schedules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
