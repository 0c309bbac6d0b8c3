/* Layers of lib/nn: each forward against a naive float64 reference written here, on inputs
 * in contiguous, strided and transposed layouts; input checks name the module and shapes.
 * Normalisation, attention and the transformer block are in test_nn_blocks.c. */
#include "nn_testutil.h"

static const int layouts[3] = {T_CONTIG, T_STRIDED, T_TRANSPOSED};

/* ---- linear, embedding ---- */

static void test_linear(void **state) {
    (void)state;
    uint64_t seed = 11;
    static const struct { int nd; int64_t s[3]; } xs[] = {{1, {5}}, {2, {4, 5}}, {3, {2, 3, 5}}, {2, {0, 5}}, {2, {1, 5}}};
    for (int bias = 0; bias < 2; bias++)
        for (size_t c = 0; c < sizeof xs / sizeof *xs; c++)
            for (int li = 0; li < 3; li++) {
                lz_module *m = lz_nn_linear(5, 7, bias, lz_key_new(c));
                assert_non_null(m);
                tarr x = t_rand(xs[c].nd, xs[c].s, LZ_F32, -2, 2, &seed, layouts[li]);
                double *w = nt_param(m, "weight"), *b = bias ? nt_param(m, "bias") : NULL;
                int64_t rows = x.n / 5;
                double *ref = malloc((size_t)(rows * 7 + 1) * sizeof *ref);
                nt_linear(x.v, rows, 5, w, b, 7, ref);
                lz_array *y = lz_module_forward(m, x.a, NULL);
                assert_non_null(y);
                assert_int_equal(lz_ndim(y), xs[c].nd);
                assert_int_equal(lz_dim(y, -1), 7);
                t_assert_close(y, ref, rows * 7, 1e-5, 1e-5);
                lz_release(y);
                free(ref);
                free(w);
                free(b);
                t_free(&x);
                lz_module_free(m);
            }
}

static void test_linear_init_bounds(void **state) {
    (void)state;
    /* PyTorch nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias */
    lz_module *m = lz_nn_linear(64, 32, true, lz_key_new(3));
    double *w = nt_param(m, "weight"), *b = nt_param(m, "bias");
    double bound = 1 / sqrt(64.0), mx = 0, s2 = 0;
    for (int i = 0; i < 64 * 32; i++) { mx = fmax(mx, fabs(w[i])); s2 += w[i] * w[i]; }
    assert_true(mx <= bound && mx > 0.95 * bound);
    /* variance of U(-a, a) is a^2 / 3 */
    assert_true(fabs(s2 / (64 * 32) - bound * bound / 3) < 0.1 * bound * bound / 3);
    for (int i = 0; i < 32; i++) assert_true(fabs(b[i]) <= bound);
    free(w);
    free(b);
    lz_module_free(m);
    /* different keys give different weights, the same key the same */
    lz_module *a = lz_nn_linear(4, 4, false, lz_key_new(1)), *a2 = lz_nn_linear(4, 4, false, lz_key_new(1));
    lz_module *c = lz_nn_linear(4, 4, false, lz_key_new(2));
    double *wa = nt_param(a, "weight"), *wa2 = nt_param(a2, "weight"), *wc = nt_param(c, "weight");
    assert_memory_equal(wa, wa2, 16 * sizeof(double));
    assert_true(memcmp(wa, wc, 16 * sizeof(double)) != 0);
    free(wa); free(wa2); free(wc);
    lz_module_free(a); lz_module_free(a2); lz_module_free(c);
}

static void test_linear_errors(void **state) {
    (void)state;
    t_assert_error(lz_nn_linear(0, 3, true, lz_key_new(0)), "linear: in (0)");
    lz_module *m = lz_nn_linear(4, 3, true, lz_key_new(0));
    int64_t s[2] = {2, 5};
    lz_array *x = lz_zeros(2, s, LZ_F32);
    t_assert_error(lz_module_forward(m, x, NULL), "linear '(root)': input float32[2,5] must end in 4 features (weight float32[3,4])");
    lz_release(x);
    lz_module_free(m);
}

static void test_embedding(void **state) {
    (void)state;
    lz_module *m = lz_nn_embedding(10, 3, lz_key_new(5));
    double *w = nt_param(m, "weight");
    int64_t idx[6] = {0, 9, 3, 3, -1, 5}, s[2] = {2, 3};
    lz_array *ix = lz_from_data(idx, 2, s, LZ_I64);
    lz_array *y = lz_module_forward(m, ix, NULL);
    assert_int_equal(lz_ndim(y), 3);
    double ref[18];
    for (int i = 0; i < 6; i++)
        for (int d = 0; d < 3; d++) ref[i * 3 + d] = w[((idx[i] + 10) % 10) * 3 + d];
    t_assert_close(y, ref, 18, 0, 0);
    lz_release(y);
    /* N(0, 1) init (PyTorch nn.Embedding) */
    lz_module *big = lz_nn_embedding(100, 100, lz_key_new(1));
    double *wb = nt_param(big, "weight"), mean = 0, var = 0;
    for (int i = 0; i < 10000; i++) mean += wb[i];
    mean /= 10000;
    for (int i = 0; i < 10000; i++) var += (wb[i] - mean) * (wb[i] - mean);
    var /= 10000;
    assert_true(fabs(mean) < 0.05 && fabs(var - 1) < 0.05);
    free(wb);
    lz_module_free(big);
    /* float indices are refused, out of range fails at evaluation */
    lz_array *f = lz_zeros(1, s, LZ_F32);
    t_assert_error(lz_module_forward(m, f, NULL), "embedding '(root)': input float32[2] must hold integer indices");
    int64_t bad[1] = {10}, one[1] = {1};
    lz_array *bi = lz_from_data(bad, 1, one, LZ_I64);
    lz_array *yb = lz_module_forward(m, bi, NULL);
    assert_non_null(yb);
    assert_int_equal(lz_eval1(yb), -1);
    lz_release(yb);
    lz_release(bi);
    lz_release(f);
    lz_release(ix);
    free(w);
    lz_module_free(m);
}

/* ---- convolution and pooling ---- */

/* conv over [N, C, H, W] (1-d: H = KH = 1) */
static double *ref_conv(const double *x, const int64_t *xs, const double *w, const int64_t *ws,
                        const double *b, const int *st, const int *pad, const int *dil, int groups,
                        int64_t *ys) {
    int64_t n = xs[0], c = xs[1], h = xs[2], wd = xs[3], o = ws[0], cg = ws[1], kh = ws[2], kw = ws[3];
    int64_t oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) / st[0] + 1;
    int64_t ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) / st[1] + 1;
    ys[0] = n; ys[1] = o; ys[2] = oh; ys[3] = ow;
    double *y = calloc((size_t)(n * o * oh * ow + 1), sizeof *y);
    int64_t og = o / groups;
    (void)c;
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t oi = 0; oi < o; oi++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double s = b ? b[oi] : 0;
                    int64_t g = oi / og;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t a = 0; a < kh; a++)
                            for (int64_t bb = 0; bb < kw; bb++) {
                                int64_t r = i * st[0] - pad[0] + a * dil[0], q = j * st[1] - pad[1] + bb * dil[1];
                                if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                                s += x[((ni * xs[1] + g * cg + ci) * h + r) * wd + q] *
                                     w[((oi * cg + ci) * kh + a) * kw + bb];
                            }
                    y[((ni * o + oi) * oh + i) * ow + j] = s;
                }
    return y;
}

static void test_conv2d(void **state) {
    (void)state;
    uint64_t seed = 21;
    static const struct { int64_t n, c, h, w, o; int k[2], s[2], p[2], d[2], g; int bias; } cs[] = {
        {2, 3, 7, 6, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, 1},
        {1, 4, 9, 8, 6, {3, 2}, {2, 1}, {0, 1}, {1, 2}, 2, 0},
        {3, 2, 5, 5, 2, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, 1},
        {1, 6, 6, 7, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 6, 1},   /* depthwise */
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++)
        for (int li = 0; li < 3; li++) {
            lz_module *m = lz_nn_conv2d(cs[c].c, cs[c].o, cs[c].k, cs[c].s, cs[c].p, cs[c].d, cs[c].g,
                                        cs[c].bias, lz_key_new(c));
            assert_non_null(m);
            int64_t xs[4] = {cs[c].n, cs[c].c, cs[c].h, cs[c].w};
            tarr x = t_rand(4, xs, LZ_F32, -1, 1, &seed, layouts[li]);
            lz_array *wa = lz_module_param(m, "weight");
            double *w = nt_vals(wa), *b = cs[c].bias ? nt_param(m, "bias") : NULL;
            int64_t ys[4];
            double *ref = ref_conv(x.v, xs, w, lz_shape(wa), b, cs[c].s, cs[c].p, cs[c].d, cs[c].g, ys);
            lz_array *y = lz_module_forward(m, x.a, NULL);
            assert_non_null(y);
            for (int d = 0; d < 4; d++) assert_int_equal(lz_dim(y, d), ys[d]);
            t_assert_close(y, ref, lz_size(y), 1e-5, 1e-5);
            lz_release(y);
            free(ref); free(w); free(b);
            t_free(&x);
            lz_module_free(m);
        }
    /* PyTorch init bound 1/sqrt(fan_in), fan_in = C/groups * KH * KW */
    int k[2] = {3, 3};
    lz_module *m = lz_nn_conv2d(8, 16, k, NULL, NULL, NULL, 1, true, lz_key_new(9));
    double *w = nt_param(m, "weight"), mx = 0;
    for (int i = 0; i < 16 * 8 * 9; i++) mx = fmax(mx, fabs(w[i]));
    assert_true(mx <= 1 / sqrt(72.0) && mx > 0.9 / sqrt(72.0));
    free(w);
    int64_t bad[4] = {1, 3, 5, 5}, tiny[4] = {1, 8, 2, 2}, three[3] = {1, 8, 5};
    lz_array *xb = lz_zeros(4, bad, LZ_F32), *xt = lz_zeros(4, tiny, LZ_F32), *x3 = lz_zeros(3, three, LZ_F32);
    t_assert_error(lz_module_forward(m, xb, NULL), "conv2d '(root)': input float32[1,3,5,5] has 3 channels (axis 1), expected 8 (weight float32[16,8,3,3])");
    t_assert_error(lz_module_forward(m, xt, NULL), "is smaller than the kernel");
    t_assert_error(lz_module_forward(m, x3, NULL), "input float32[1,8,5] must be [N, C, H, W]");
    t_assert_error(lz_nn_conv2d(6, 4, k, NULL, NULL, NULL, 4, true, lz_key_new(0)), "divisible by groups=4");
    lz_release(xb); lz_release(xt); lz_release(x3);
    lz_module_free(m);
}

static void test_conv1d(void **state) {
    (void)state;
    uint64_t seed = 22;
    for (int li = 0; li < 3; li++)
        for (int g = 1; g <= 2; g++) {
            lz_module *m = lz_nn_conv1d(4, 6, 3, 2, 1, 2, g, true, lz_key_new(g));
            int64_t xs[3] = {2, 4, 11};
            tarr x = t_rand(3, xs, LZ_F32, -1, 1, &seed, layouts[li]);
            lz_array *wa = lz_module_param(m, "weight");
            double *w = nt_vals(wa), *b = nt_param(m, "bias");
            int64_t x4[4] = {2, 4, 1, 11}, w4[4] = {6, 4 / g, 1, 3}, ys[4];
            int st[2] = {1, 2}, pd[2] = {0, 1}, dl[2] = {1, 2};
            double *ref = ref_conv(x.v, x4, w, w4, b, st, pd, dl, g, ys);
            lz_array *y = lz_module_forward(m, x.a, NULL);
            assert_int_equal(lz_ndim(y), 3);
            assert_int_equal(lz_dim(y, 2), ys[3]);
            t_assert_close(y, ref, lz_size(y), 1e-5, 1e-5);
            lz_release(y);
            free(ref); free(w); free(b);
            t_free(&x);
            lz_module_free(m);
        }
}

static void test_pools(void **state) {
    (void)state;
    uint64_t seed = 23;
    int64_t xs[4] = {2, 3, 7, 6};
    static const struct { int k[2], s[2], p[2]; } cs[] = {
        {{2, 2}, {0, 0}, {0, 0}}, {{3, 3}, {2, 1}, {1, 1}}, {{3, 2}, {1, 2}, {0, 1}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++)
        for (int mx = 0; mx < 2; mx++) {
            tarr x = t_rand(4, xs, LZ_F32, -3, 3, &seed, layouts[c % 3]);
            lz_module *m = mx ? lz_nn_max_pool2d(cs[c].k, cs[c].s, cs[c].p)
                              : lz_nn_avg_pool2d(cs[c].k, cs[c].s, cs[c].p);
            int s0 = cs[c].s[0] ? cs[c].s[0] : cs[c].k[0], s1 = cs[c].s[1] ? cs[c].s[1] : cs[c].k[1];
            int64_t oh = (7 + 2 * cs[c].p[0] - cs[c].k[0]) / s0 + 1, ow = (6 + 2 * cs[c].p[1] - cs[c].k[1]) / s1 + 1;
            double *ref = malloc((size_t)(2 * 3 * oh * ow) * sizeof *ref);
            for (int64_t nc = 0; nc < 6; nc++)
                for (int64_t i = 0; i < oh; i++)
                    for (int64_t j = 0; j < ow; j++) {
                        double best = -INFINITY, sum = 0;
                        for (int a = 0; a < cs[c].k[0]; a++)
                            for (int b = 0; b < cs[c].k[1]; b++) {
                                int64_t r = i * s0 - cs[c].p[0] + a, q = j * s1 - cs[c].p[1] + b;
                                if (r < 0 || r >= 7 || q < 0 || q >= 6) continue;   /* padding: 0 for avg */
                                double v = x.v[(nc * 7 + r) * 6 + q];
                                best = fmax(best, v);
                                sum += v;
                            }
                        /* avg counts padding (PyTorch count_include_pad=True) */
                        ref[(nc * oh + i) * ow + j] = mx ? best : sum / (cs[c].k[0] * cs[c].k[1]);
                    }
            lz_array *y = lz_module_forward(m, x.a, NULL);
            assert_non_null(y);
            assert_int_equal(lz_dim(y, 2), oh);
            assert_int_equal(lz_dim(y, 3), ow);
            t_assert_close(y, ref, 6 * oh * ow, 1e-6, 1e-6);
            lz_release(y);
            free(ref);
            t_free(&x);
            lz_module_free(m);
        }
    int k[2] = {2, 2}, p[2] = {2, 0};
    t_assert_error(lz_nn_max_pool2d(k, NULL, p), "padding");
    lz_module *m = lz_nn_max_pool2d(k, NULL, NULL);
    int64_t s3[3] = {1, 2, 3};
    lz_array *x3 = lz_zeros(3, s3, LZ_F32);
    t_assert_error(lz_module_forward(m, x3, NULL), "max_pool2d '(root)': input float32[1,2,3] must be [N, C, H, W]");
    lz_release(x3);
    lz_module_free(m);
}

static void test_adaptive_avg_pool(void **state) {
    (void)state;
    uint64_t seed = 24;
    static const int64_t outs[][2] = {{1, 1}, {2, 3}, {3, 2}, {5, 4}, {7, 6}, {8, 9}};
    int64_t xs[4] = {2, 3, 7, 6};
    for (size_t c = 0; c < sizeof outs / sizeof *outs; c++) {
        tarr x = t_rand(4, xs, LZ_F32, -3, 3, &seed, layouts[c % 3]);
        int64_t oh = outs[c][0], ow = outs[c][1];
        lz_module *m = lz_nn_adaptive_avg_pool2d(oh, ow);
        double *ref = malloc((size_t)(6 * oh * ow) * sizeof *ref);
        for (int64_t nc = 0; nc < 6; nc++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    int64_t r0 = i * 7 / oh, r1 = ((i + 1) * 7 + oh - 1) / oh;
                    int64_t q0 = j * 6 / ow, q1 = ((j + 1) * 6 + ow - 1) / ow;
                    double s = 0;
                    for (int64_t r = r0; r < r1; r++)
                        for (int64_t q = q0; q < q1; q++) s += x.v[(nc * 7 + r) * 6 + q];
                    ref[(nc * oh + i) * ow + j] = s / (double)((r1 - r0) * (q1 - q0));
                }
        lz_array *y = lz_module_forward(m, x.a, NULL);
        assert_non_null(y);
        assert_int_equal(lz_dim(y, 2), oh);
        assert_int_equal(lz_dim(y, 3), ow);
        t_assert_close(y, ref, 6 * oh * ow, 1e-5, 1e-6);
        lz_release(y);
        free(ref);
        t_free(&x);
        lz_module_free(m);
    }
}

static void test_flatten(void **state) {
    (void)state;
    uint64_t seed = 25;
    int64_t xs[4] = {2, 3, 4, 5};
    tarr x = t_rand(4, xs, LZ_F32, -1, 1, &seed, T_TRANSPOSED);
    lz_module *m = lz_nn_flatten(1, -1);
    lz_array *y = lz_module_forward(m, x.a, NULL);
    assert_int_equal(lz_ndim(y), 2);
    assert_int_equal(lz_dim(y, 1), 60);
    t_assert_close(y, x.v, x.n, 0, 0);
    lz_release(y);
    lz_module *m2 = lz_nn_flatten(1, 2);
    y = lz_module_forward(m2, x.a, NULL);
    assert_int_equal(lz_ndim(y), 3);
    assert_int_equal(lz_dim(y, 1), 12);
    lz_release(y);
    lz_module *bad = lz_nn_flatten(2, 7);
    t_assert_error(lz_module_forward(bad, x.a, NULL), "flatten '(root)': cannot flatten axes 2..7 of input float32[2,3,4,5]");
    lz_module_free(bad);
    lz_module_free(m);
    lz_module_free(m2);
    t_free(&x);
}

/* ---- activations ---- */

static double ref_act(int k, double x) {
    switch (k) {
    case 0: return x > 0 ? x : 0;
    case 1: return x > 0 ? x : 0.1 * x;
    case 2: return nt_gelu(x);
    case 3: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case 4: return nt_silu(x);
    case 5: return tanh(x);
    default: return 1 / (1 + exp(-x));
    }
}

static void test_activations(void **state) {
    (void)state;
    uint64_t seed = 26;
    int64_t xs[2] = {5, 9};
    for (int k = 0; k < 9; k++) {
        lz_module *m = k == 0 ? lz_nn_relu() : k == 1 ? lz_nn_leaky_relu(0.1) : k == 2 ? lz_nn_gelu(false)
                     : k == 3 ? lz_nn_gelu(true) : k == 4 ? lz_nn_silu() : k == 5 ? lz_nn_tanh()
                     : k == 6 ? lz_nn_sigmoid() : k == 7 ? lz_nn_softmax(-1) : lz_nn_log_softmax(0);
        tarr x = t_rand(2, xs, LZ_F32, -4, 4, &seed, layouts[k % 3]);
        double ref[45];
        if (k < 7) {
            for (int i = 0; i < 45; i++) ref[i] = ref_act(k, x.v[i]);
        } else if (k == 7) {
            for (int r = 0; r < 5; r++) {
                double mx = -INFINITY, s = 0;
                for (int c = 0; c < 9; c++) mx = fmax(mx, x.v[r * 9 + c]);
                for (int c = 0; c < 9; c++) s += exp(x.v[r * 9 + c] - mx);
                for (int c = 0; c < 9; c++) ref[r * 9 + c] = exp(x.v[r * 9 + c] - mx) / s;
            }
        } else {
            for (int c = 0; c < 9; c++) {
                double mx = -INFINITY, s = 0;
                for (int r = 0; r < 5; r++) mx = fmax(mx, x.v[r * 9 + c]);
                for (int r = 0; r < 5; r++) s += exp(x.v[r * 9 + c] - mx);
                for (int r = 0; r < 5; r++) ref[r * 9 + c] = x.v[r * 9 + c] - mx - log(s);
            }
        }
        lz_array *y = lz_module_forward(m, x.a, NULL);
        t_assert_close(y, ref, 45, 1e-5, 1e-6);
        lz_release(y);
        t_free(&x);
        lz_module_free(m);
    }
    lz_module *l = lz_nn_lambda("exp", lz_exp);
    assert_string_equal(lz_module_kind_of(l)->name, "exp");
    double v[3] = {0, 1, -1}, r[3] = {1, M_E, 1 / M_E};
    int64_t n3 = 3;
    lz_array *x = nt_array(1, &n3, v), *y = lz_module_forward(l, x, NULL);
    t_assert_close(y, r, 3, 1e-6, 0);
    lz_release(x);
    lz_release(y);
    lz_module_free(l);
}

/* ---- dropout ---- */

static void test_dropout(void **state) {
    (void)state;
    int64_t s[2] = {100, 100};
    lz_array *x = lz_ones(2, s, LZ_F32);
    lz_module *m = lz_nn_dropout(0.25);
    t_assert_error(lz_module_forward(m, x, NULL), "dropout '(root)': training mode needs a random key");
    lz_key k = lz_key_new(7);
    lz_array *y = lz_module_forward(m, x, &k), *y2 = lz_module_forward(m, x, &k);
    double *v = nt_vals(y), *v2 = nt_vals(y2);
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        assert_true(v[i] == 0 || fabs(v[i] - 1 / 0.75) < 1e-6);   /* kept values are scaled */
        zeros += v[i] == 0;
        assert_true(v[i] == v2[i]);                                /* same key, same mask */
    }
    assert_true(abs(zeros - 2500) < 200);
    lz_key k2 = lz_key_new(8);
    lz_array *y3 = lz_module_forward(m, x, &k2);
    double *v3 = nt_vals(y3);
    int same = 0;
    for (int i = 0; i < 10000; i++) same += v3[i] == v[i];
    assert_true(same < 9000);
    free(v); free(v2); free(v3);
    lz_release(y); lz_release(y2); lz_release(y3);
    /* evaluation mode: identity, no key needed */
    lz_module_train(m, false);
    y = lz_module_forward(m, x, NULL);
    double *ve = nt_vals(y);
    for (int i = 0; i < 10000; i++) assert_true(ve[i] == 1);
    free(ve);
    lz_release(y);
    /* two dropouts in one sequential get different masks from one key */
    lz_module *seq = lz_nn_sequential(2, (lz_module *[]){lz_nn_dropout(0.5), lz_nn_dropout(0.5)});
    lz_module *one = lz_nn_sequential(1, (lz_module *[]){lz_nn_dropout(0.5)});
    lz_array *ys = lz_module_forward(seq, x, &k), *yo = lz_module_forward(one, x, &k);
    double *vs = nt_vals(ys), *vo = nt_vals(yo);
    int nz = 0;
    for (int i = 0; i < 10000; i++) nz += vs[i] != 0;
    /* independent masks keep 1/4; the same mask twice would keep 1/2 */
    assert_true(abs(nz - 2500) < 250);
    free(vs); free(vo);
    lz_release(ys); lz_release(yo);
    lz_module_free(seq);
    lz_module_free(one);
    t_assert_error(lz_nn_dropout(1.5), "dropout: p = 1.5 is not in [0, 1]");
    lz_module *all = lz_nn_dropout(1);
    y = lz_module_forward(all, x, &k);
    double *va = nt_vals(y);
    for (int i = 0; i < 10000; i++) assert_true(va[i] == 0);
    free(va);
    lz_release(y);
    lz_module_free(all);
    lz_module_free(m);
    lz_release(x);
}

static void test_sequential(void **state) {
    (void)state;
    uint64_t seed = 32;
    lz_module *m = lz_nn_sequential(3, (lz_module *[]){lz_nn_linear(3, 8, true, lz_key_new(1)), lz_nn_tanh(),
                                                       lz_nn_linear(8, 2, true, lz_key_new(2))});
    assert_non_null(m);
    int64_t xs[2] = {5, 3};
    tarr x = t_rand(2, xs, LZ_F32, -1, 1, &seed, T_TRANSPOSED);
    double *w0 = nt_param(m, "0.weight"), *b0 = nt_param(m, "0.bias"), *w2 = nt_param(m, "2.weight"), *b2 = nt_param(m, "2.bias");
    double h[40], ref[10];
    nt_linear(x.v, 5, 3, w0, b0, 8, h);
    for (int i = 0; i < 40; i++) h[i] = tanh(h[i]);
    nt_linear(h, 5, 8, w2, b2, 2, ref);
    lz_array *y = lz_module_forward(m, x.a, NULL);
    t_assert_close(y, ref, 10, 1e-5, 1e-6);
    lz_release(y);
    /* errors inside name the failing layer's path */
    assert_int_equal(lz_nn_sequential_append(m, lz_nn_linear(5, 1, true, lz_key_new(3))), 0);
    t_assert_error(lz_module_forward(m, x.a, NULL), "linear '3': input float32[5,2] must end in 5 features");
    /* a NULL layer frees the others and keeps the constructor's error */
    t_assert_error(lz_nn_sequential(2, (lz_module *[]){lz_nn_relu(), lz_nn_linear(0, 1, true, lz_key_new(0))}),
                   "linear: in (0)");
    free(w0); free(b0); free(w2); free(b2);
    t_free(&x);
    lz_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_init_bounds),
        cmocka_unit_test(test_linear_errors),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_adaptive_avg_pool),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_sequential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
