/* Losses against float64 references: every reduction, label smoothing, ignore_index, the
 * elementwise losses with broadcasting, and stability at logits of +-1e4 (finite values AND
 * finite, correct gradients). */
#include "nn_testutil.h"

static const lz_reduction reds[3] = {LZ_REDUCE_NONE, LZ_REDUCE_SUM, LZ_REDUCE_MEAN};

/* applies a reduction to n per-element losses; count replaces n for the mean */
static double red(const double *l, int64_t n, lz_reduction r, double count, double *out) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += l[i];
    if (r == LZ_REDUCE_NONE) { memcpy(out, l, (size_t)n * sizeof *l); return 0; }
    out[0] = r == LZ_REDUCE_SUM ? s : s / (count > 0 ? count : 1);
    return out[0];
}

/* cross-entropy per row of logits [n, c] with targets, smoothing s, ignore (-1 = none) */
static void ref_ce(const double *x, const int64_t *t, int64_t n, int64_t c, double s,
                   int64_t ignore, double *loss, double *count) {
    *count = 0;
    for (int64_t r = 0; r < n; r++) {
        const double *row = x + r * c;
        double mx = -INFINITY, z = 0, mean_logp = 0;
        for (int64_t k = 0; k < c; k++) mx = fmax(mx, row[k]);
        for (int64_t k = 0; k < c; k++) z += exp(row[k] - mx);
        double lse = mx + log(z);
        for (int64_t k = 0; k < c; k++) mean_logp += (row[k] - lse) / (double)c;
        if (t[r] == ignore) { loss[r] = 0; continue; }
        *count += 1;
        loss[r] = (1 - s) * (lse - row[t[r]]) - s * mean_logp;
    }
}

static void test_cross_entropy(void **state) {
    (void)state;
    uint64_t seed = 41;
    int64_t xs[3] = {2, 3, 5}, n = 6, c = 5;
    int64_t tv[6] = {0, 4, 2, 2, 1, 3};
    for (int li = 0; li < 3; li++)
        for (int ig = 0; ig < 2; ig++)
            for (int sm = 0; sm < 2; sm++)
                for (int ri = 0; ri < 3; ri++) {
                    tarr x = t_rand(3, xs, LZ_F32, -3, 3, &seed, li == 0 ? T_CONTIG : li == 1 ? T_STRIDED : T_TRANSPOSED);
                    int64_t ts[2] = {2, 3};
                    lz_array *t = lz_from_data(tv, 2, ts, LZ_I64);
                    lz_ce_opts o = {.reduction = reds[ri], .label_smoothing = sm ? 0.2 : 0,
                                    .ignore = ig, .ignore_index = 2};
                    double l[6], cnt, ref[6];
                    ref_ce(x.v, tv, n, c, o.label_smoothing, ig ? 2 : -1, l, &cnt);
                    red(l, n, reds[ri], cnt, ref);
                    lz_array *y = lz_cross_entropy(x.a, t, &o);
                    assert_non_null(y);
                    if (reds[ri] == LZ_REDUCE_NONE) {
                        assert_int_equal(lz_ndim(y), 2);
                        t_assert_close(y, ref, 6, 1e-5, 1e-6);
                    } else {
                        assert_int_equal(lz_size(y), 1);
                        t_assert_close(y, ref, 1, 1e-5, 1e-6);
                    }
                    /* nll over log_softmax gives the same */
                    lz_array *lp = lz_log_softmax(x.a, -1), *y2 = lz_nll_loss(lp, t, &o);
                    t_assert_close(y2, ref, reds[ri] == LZ_REDUCE_NONE ? 6 : 1, 1e-5, 1e-6);
                    lz_release(lp);
                    lz_release(y2);
                    lz_release(y);
                    lz_release(t);
                    t_free(&x);
                }
    /* every target ignored: mean 0, not NaN; int32 and uint8 targets work */
    int32_t ti[2] = {1, 1};
    int64_t s2[2] = {2, 3}, one = 2;
    lz_array *x = lz_ones(2, s2, LZ_F32), *t = lz_from_data(ti, 1, &one, LZ_I32);
    lz_ce_opts o = {.ignore = true, .ignore_index = 1};
    double zero = 0, l3 = log(3.0);
    lz_array *y = lz_cross_entropy(x, t, &o);
    t_assert_close(y, &zero, 1, 0, 0);
    lz_release(y);
    y = lz_cross_entropy(x, t, NULL);
    t_assert_close(y, &l3, 1, 1e-6, 0);
    lz_release(y);
    uint8_t tu[2] = {0, 2};
    lz_array *t8 = lz_from_data(tu, 1, &one, LZ_U8);
    y = lz_cross_entropy(x, t8, NULL);
    t_assert_close(y, &l3, 1, 1e-6, 0);
    lz_release(y);
    /* out of range and negative (not ignored) targets fail at evaluation */
    int64_t bad[2] = {0, 3}, neg[2] = {0, -1};
    lz_array *tb = lz_from_data(bad, 1, &one, LZ_I64), *tn = lz_from_data(neg, 1, &one, LZ_I64);
    y = lz_cross_entropy(x, tb, NULL);
    assert_non_null(y);
    assert_int_equal(lz_eval1(y), -1);
    lz_release(y);
    y = lz_cross_entropy(x, tn, NULL);
    assert_int_equal(lz_eval1(y), -1);
    lz_release(y);
    /* argument errors */
    lz_array *xf = lz_ones(1, &one, LZ_F32);
    t_assert_error(lz_cross_entropy(x, xf, NULL), "cross_entropy: targets float32[2] must be integer class indices");
    int64_t s3[1] = {3};
    lz_array *t3 = lz_zeros(1, s3, LZ_I64);
    t_assert_error(lz_cross_entropy(x, t3, NULL), "cross_entropy: targets int64[3] do not match logits float32[2,3] on axis 0");
    t_assert_error(lz_cross_entropy(x, x, NULL), "must be [..., C] and targets float32[2,3] the same [...]");
    lz_ce_opts bs = {.label_smoothing = 1.5};
    t_assert_error(lz_cross_entropy(x, t, &bs), "label_smoothing 1.5 is not in [0, 1]");
    lz_ce_opts bm = {.reduction = LZ_REDUCE_BATCHMEAN};
    t_assert_error(lz_nll_loss(x, t, &bm), "nll_loss: reduction batchmean is not one of mean, sum, none");
    lz_release(x); lz_release(t); lz_release(t8); lz_release(tb); lz_release(tn); lz_release(xf); lz_release(t3);
}

/* ---- gradients at extreme logits ---- */

typedef struct { lz_array *t; int kind; } loss_ctx;

static int loss_fn(void *c, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    loss_ctx *l = c;
    lz_ce_opts o = {.label_smoothing = 0.1};
    switch (l->kind) {
    case 0: out[0] = lz_cross_entropy(in[0], l->t, &o); break;
    case 1: out[0] = lz_binary_cross_entropy_with_logits(in[0], l->t, LZ_REDUCE_SUM); break;
    default: out[0] = lz_kl_div(lz_log_softmax(in[0], -1), l->t, LZ_REDUCE_BATCHMEAN, false); break;
    }
    return 1;
}

static void test_extreme_logits(void **state) {
    (void)state;
    /* rows: one huge winner, a huge loser, a tie of huge values */
    double xv[12] = {1e4, -1e4, 0, 5, -1e4, 1e4, 1e4, -1e4, 1e4, 1e4, -1e4, -1e4};
    int64_t xs[2] = {3, 4}, ts = 3;
    int64_t tv[3] = {1, 0, 2};
    lz_array *x = nt_array(2, xs, xv), *t = lz_from_data(tv, 1, &ts, LZ_I64);
    /* cross-entropy with smoothing 0.1: value and gradient (softmax - smoothed one-hot) / 3 */
    double loss = 0, g[12];
    for (int r = 0; r < 3; r++) {
        double mx = -INFINITY, z = 0, mlp = 0;
        for (int k = 0; k < 4; k++) mx = fmax(mx, xv[r * 4 + k]);
        for (int k = 0; k < 4; k++) z += exp(xv[r * 4 + k] - mx);
        for (int k = 0; k < 4; k++) mlp += (xv[r * 4 + k] - mx - log(z)) / 4;
        loss += (0.9 * (mx + log(z) - xv[r * 4 + tv[r]]) - 0.1 * mlp) / 3;
        for (int k = 0; k < 4; k++)
            g[r * 4 + k] = (exp(xv[r * 4 + k] - mx) / z - 0.9 * (k == tv[r]) - 0.1 / 4) / 3;
    }
    loss_ctx c = {t, 0};
    lz_array *out, *gr;
    assert_int_equal(lz_value_and_grad(loss_fn, &c, 1, &x, NULL, &out, 1, &gr), 1);
    t_assert_close(out, &loss, 1, 1e-6, 0);
    t_assert_close(gr, g, 12, 1e-5, 1e-6);
    lz_release(out);
    lz_release(gr);
    /* BCE with logits: softplus(x) - x t, gradient sigmoid(x) - t */
    double tb[12], lb = 0, gb[12];
    for (int i = 0; i < 12; i++) {
        tb[i] = (i % 3) / 2.0;
        double sp = fmax(xv[i], 0) + log1p(exp(-fabs(xv[i])));
        lb += sp - xv[i] * tb[i];
        gb[i] = 1 / (1 + exp(-xv[i])) - tb[i];
    }
    lz_array *tba = nt_array(2, xs, tb);
    loss_ctx cb = {tba, 1};
    assert_int_equal(lz_value_and_grad(loss_fn, &cb, 1, &x, NULL, &out, 1, &gr), 1);
    t_assert_close(out, &lb, 1, 1e-6, 0);
    t_assert_close(gr, gb, 12, 1e-6, 1e-7);
    lz_release(out);
    lz_release(gr);
    /* KL(target || softmax(x)) with zeros in the target: finite value and gradient */
    double tk[12] = {0, 1, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0.25, 0.75}, lk = 0, gk[12];
    for (int r = 0; r < 3; r++) {
        double mx = -INFINITY, z = 0;
        for (int k = 0; k < 4; k++) mx = fmax(mx, xv[r * 4 + k]);
        for (int k = 0; k < 4; k++) z += exp(xv[r * 4 + k] - mx);
        for (int k = 0; k < 4; k++) {
            double lp = xv[r * 4 + k] - mx - log(z), tt = tk[r * 4 + k];
            if (tt > 0) lk += tt * (log(tt) - lp) / 3;
            gk[r * 4 + k] = (exp(lp) - tt) / 3;
        }
    }
    lz_array *tka = nt_array(2, xs, tk);
    loss_ctx ck = {tka, 2};
    assert_int_equal(lz_value_and_grad(loss_fn, &ck, 1, &x, NULL, &out, 1, &gr), 1);
    /* KL here is ~1e4 (targets on hugely negative logits): relative tolerance */
    t_assert_close(out, &lk, 1, 1e-6, 0);
    t_assert_close(gr, gk, 12, 1e-5, 1e-6);
    lz_release(out);
    lz_release(gr);
    lz_release(x); lz_release(t); lz_release(tba); lz_release(tka);
}

/* ---- elementwise losses ---- */

static double ref_elem(int k, double d, double p) {
    double a = fabs(d);
    switch (k) {
    case 0: return d * d;
    case 1: return a;
    case 2: return a < p ? 0.5 * d * d / p : a - 0.5 * p;        /* smooth l1, beta p */
    default: return a < p ? 0.5 * d * d : p * (a - 0.5 * p);     /* huber, delta p */
    }
}

static void test_elementwise_losses(void **state) {
    (void)state;
    uint64_t seed = 43;
    int64_t ps[3] = {2, 3, 4}, tsh[2] = {3, 4};   /* the target broadcasts over axis 0 */
    for (int k = 0; k < 4; k++)
        for (int ri = 0; ri < 4; ri++) {
            lz_reduction r = ri < 3 ? reds[ri] : LZ_REDUCE_BATCHMEAN;
            tarr p = t_rand(3, ps, LZ_F32, -3, 3, &seed, (k + ri) % 3 == 0 ? T_CONTIG : (k + ri) % 3 == 1 ? T_STRIDED : T_TRANSPOSED);
            tarr t = t_rand(2, tsh, LZ_F32, -3, 3, &seed, T_TRANSPOSED);
            double l[24], ref[24], prm = k == 2 ? 0.7 : 1.3;
            for (int i = 0; i < 24; i++) l[i] = ref_elem(k, p.v[i] - t.v[i % 12], prm);
            if (r == LZ_REDUCE_BATCHMEAN) {
                double s = 0;
                for (int i = 0; i < 24; i++) s += l[i];
                ref[0] = s / 2;
            } else {
                red(l, 24, r, 24, ref);
            }
            lz_array *y = k == 0 ? lz_mse_loss(p.a, t.a, r) : k == 1 ? lz_l1_loss(p.a, t.a, r)
                        : k == 2 ? lz_smooth_l1_loss(p.a, t.a, prm, r) : lz_huber_loss(p.a, t.a, prm, r);
            assert_non_null(y);
            t_assert_close(y, ref, r == LZ_REDUCE_NONE ? 24 : 1, 1e-5, 1e-6);
            lz_release(y);
            t_free(&p);
            t_free(&t);
        }
    /* KL, probabilities and log-probabilities as targets */
    double in[4] = {log(0.1), log(0.2), log(0.3), log(0.4)}, tg[4] = {0.25, 0.25, 0.5, 0};
    int64_t four = 4;
    lz_array *ia = nt_array(1, &four, in), *ta = nt_array(1, &four, tg);
    double kl = 0, lt[4];
    for (int i = 0; i < 3; i++) kl += tg[i] * (log(tg[i]) - in[i]);
    lz_array *y = lz_kl_div(ia, ta, LZ_REDUCE_SUM, false);
    t_assert_close(y, &kl, 1, 1e-6, 1e-7);
    lz_release(y);
    for (int i = 0; i < 4; i++) lt[i] = tg[i] > 0 ? log(tg[i]) : -INFINITY;
    lz_array *lta = nt_array(1, &four, lt);
    y = lz_kl_div(ia, lta, LZ_REDUCE_SUM, true);
    t_assert_close(y, &kl, 1, 1e-6, 1e-7);
    lz_release(y);
    /* errors */
    int64_t five = 5;
    lz_array *bad = lz_zeros(1, &five, LZ_F32), *ints = lz_zeros(1, &four, LZ_I32);
    t_assert_error(lz_mse_loss(ia, bad, LZ_REDUCE_MEAN), "mse_loss: predictions float32[4] and targets float32[5]");
    t_assert_error(lz_l1_loss(ints, ia, LZ_REDUCE_MEAN), "l1_loss: predictions int32[4] must be a float array");
    t_assert_error(lz_huber_loss(ia, ta, 0, LZ_REDUCE_MEAN), "huber_loss: the threshold 0 must be > 0");
    t_assert_error(lz_mse_loss(ia, ta, (lz_reduction)9), "mse_loss: unknown reduction 9");
    lz_release(ia); lz_release(ta); lz_release(lta); lz_release(bad); lz_release(ints);
}

static void test_bce(void **state) {
    (void)state;
    uint64_t seed = 44;
    int64_t s[2] = {4, 5};
    for (int ri = 0; ri < 3; ri++) {
        tarr x = t_rand(2, s, LZ_F32, -30, 30, &seed, ri == 0 ? T_CONTIG : ri == 1 ? T_STRIDED : T_TRANSPOSED);
        tarr t = t_rand(2, s, LZ_F32, 0, 1, &seed, T_CONTIG);
        double l[20], ref[20];
        for (int i = 0; i < 20; i++) {
            double p = 1 / (1 + exp(-x.v[i]));
            /* the textbook form, in double (fine away from saturation in double) */
            l[i] = -(t.v[i] * log(p) + (1 - t.v[i]) * log1p(-p));
        }
        red(l, 20, reds[ri], 20, ref);
        lz_array *y = lz_binary_cross_entropy_with_logits(x.a, t.a, reds[ri]);
        t_assert_close(y, ref, ri == 0 ? 20 : 1, 1e-4, 1e-5);
        lz_release(y);
        t_free(&x);
        t_free(&t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_extreme_logits),
        cmocka_unit_test(test_elementwise_losses),
        cmocka_unit_test(test_bce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
