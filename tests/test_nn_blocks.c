/* Normalisation layers (batch, layer, RMS, group norm), multi-head attention and the
 * transformer block of lib/nn, each forward against a naive float64 reference written here;
 * input checks name the module and shapes. */
#include "nn_testutil.h"

static const int layouts[3] = {T_CONTIG, T_STRIDED, T_TRANSPOSED};

/* ---- normalisation ---- */

static void test_batch_norm(void **state) {
    (void)state;
    uint64_t seed = 27;
    static const struct { int nd; int64_t s[4]; } cs[] = {{2, {8, 3}}, {3, {4, 3, 5}}, {4, {3, 3, 4, 5}}};
    for (size_t c = 0; c < 3; c++) {
        int nd = cs[c].nd;
        lz_module *m = nd == 4 ? lz_nn_batch_norm2d(3, 1e-5, 0.1, true) : lz_nn_batch_norm1d(3, 1e-5, 0.1, true);
        assert_non_null(m);
        nt_randomize(m, 0.5, 1.5, 100 + c);
        double *w = nt_param(m, "weight"), *b = nt_param(m, "bias");
        tarr x = t_rand(nd, cs[c].s, LZ_F32, -2, 3, &seed, layouts[c]);
        int64_t n = cs[c].s[0], inner = x.n / (n * 3);
        double mean[3] = {0}, var[3] = {0}, cnt = (double)(n * inner);
        for (int64_t i = 0; i < x.n; i++) mean[(i / inner) % 3] += x.v[i] / cnt;
        for (int64_t i = 0; i < x.n; i++) {
            double d = x.v[i] - mean[(i / inner) % 3];
            var[(i / inner) % 3] += d * d / cnt;
        }
        double *ref = malloc((size_t)x.n * sizeof *ref);
        for (int64_t i = 0; i < x.n; i++) {
            int ch = (int)((i / inner) % 3);
            ref[i] = (x.v[i] - mean[ch]) / sqrt(var[ch] + 1e-5) * w[ch] + b[ch];
        }
        /* training: batch statistics; running statistics installed lazily */
        lz_array *y = lz_module_forward(m, x.a, NULL);
        assert_false(lz_is_evaluated(lz_module_param(m, "running_mean")));
        assert_int_equal(lz_module_eval(m, 1, &y), 0);
        assert_true(lz_is_evaluated(lz_module_param(m, "running_mean")));
        t_assert_close(y, ref, x.n, 1e-4, 1e-5);
        double rm[3], rv[3];
        for (int ch = 0; ch < 3; ch++) {
            rm[ch] = 0.1 * mean[ch];
            rv[ch] = 0.9 + 0.1 * var[ch] * cnt / (cnt - 1);   /* unbiased, as PyTorch */
        }
        t_assert_close(lz_module_param(m, "running_mean"), rm, 3, 1e-5, 1e-6);
        t_assert_close(lz_module_param(m, "running_var"), rv, 3, 1e-5, 1e-6);
        lz_release(y);
        /* evaluation: running statistics */
        lz_module_train(m, false);
        for (int64_t i = 0; i < x.n; i++) {
            int ch = (int)((i / inner) % 3);
            ref[i] = (x.v[i] - rm[ch]) / sqrt(rv[ch] + 1e-5) * w[ch] + b[ch];
        }
        y = lz_module_forward(m, x.a, NULL);
        t_assert_close(y, ref, x.n, 1e-4, 1e-5);
        lz_release(y);
        free(ref); free(w); free(b);
        t_free(&x);
        lz_module_free(m);
    }
    lz_module *m = lz_nn_batch_norm2d(3, 1e-5, 0.1, false);
    assert_null(lz_module_param(m, "weight"));
    int64_t one[4] = {1, 3, 1, 1}, bad[4] = {2, 4, 2, 2}, b3[3] = {2, 3, 4};
    lz_array *x1 = lz_zeros(4, one, LZ_F32), *xb = lz_zeros(4, bad, LZ_F32), *x3 = lz_zeros(3, b3, LZ_F32);
    t_assert_error(lz_module_forward(m, x1, NULL), "batch_norm2d '(root)': training needs more than one value per channel, input is float32[1,3,1,1]");
    t_assert_error(lz_module_forward(m, xb, NULL), "input float32[2,4,2,2] has 4 channels (axis 1), expected 3");
    t_assert_error(lz_module_forward(m, x3, NULL), "input float32[2,3,4] must be [N, C, H, W]");
    lz_release(x1); lz_release(xb); lz_release(x3);
    lz_module_free(m);
    t_assert_error(lz_nn_batch_norm1d(3, 1e-5, 1.5, true), "momentum 1.5");
}

static void test_layer_rms_norm(void **state) {
    (void)state;
    uint64_t seed = 28;
    int64_t xs[3] = {2, 3, 16};
    for (int li = 0; li < 3; li++)
        for (int k = 0; k < 4; k++) {
            lz_module *m = k == 0 ? lz_nn_layer_norm(16, 1e-5, true, true) : k == 1 ? lz_nn_layer_norm(16, 1e-5, true, false)
                         : k == 2 ? lz_nn_layer_norm(16, 1e-3, false, false) : lz_nn_rms_norm(16, 1e-6, true);
            nt_randomize(m, 0.5, 1.5, 7 + k);
            double *w = k != 2 ? nt_param(m, "weight") : NULL, *b = k == 0 ? nt_param(m, "bias") : NULL;
            tarr x = t_rand(3, xs, LZ_F32, -2, 3, &seed, layouts[li]);
            double ref[96];
            nt_norm(x.v, 6, 16, w, b, k == 2 ? 1e-3 : k == 3 ? 1e-6 : 1e-5, k == 3, ref);
            lz_array *y = lz_module_forward(m, x.a, NULL);
            t_assert_close(y, ref, 96, 1e-4, 1e-5);
            lz_release(y);
            free(w); free(b);
            t_free(&x);
            lz_module_free(m);
        }
    lz_module *m = lz_nn_rms_norm(8, 1e-6, true);
    int64_t s[2] = {2, 7};
    lz_array *x = lz_zeros(2, s, LZ_F32);
    t_assert_error(lz_module_forward(m, x, NULL), "rms_norm '(root)': input float32[2,7] must end in an axis of 8");
    lz_release(x);
    lz_module_free(m);
}

static void test_group_norm(void **state) {
    (void)state;
    uint64_t seed = 29;
    int64_t xs[4] = {2, 6, 3, 4};
    for (int g = 1; g <= 6; g++) {
        if (6 % g) continue;
        lz_module *m = lz_nn_group_norm(g, 6, 1e-5, true);
        nt_randomize(m, 0.5, 1.5, 40 + g);
        double *w = nt_param(m, "weight"), *b = nt_param(m, "bias");
        tarr x = t_rand(4, xs, LZ_F32, -2, 2, &seed, layouts[g % 3]);
        int64_t per = 6 / g * 12;   /* elements of one (sample, group) */
        double ref[144];
        for (int64_t r = 0; r < 2 * g; r++) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < per; i++) mean += x.v[r * per + i] / (double)per;
            for (int64_t i = 0; i < per; i++) var += pow(x.v[r * per + i] - mean, 2) / (double)per;
            for (int64_t i = 0; i < per; i++) {
                int64_t flat = r * per + i, ch = (flat / 12) % 6;
                ref[flat] = (x.v[flat] - mean) / sqrt(var + 1e-5) * w[ch] + b[ch];
            }
        }
        lz_array *y = lz_module_forward(m, x.a, NULL);
        t_assert_close(y, ref, 144, 1e-4, 1e-5);
        lz_release(y);
        free(w); free(b);
        t_free(&x);
        lz_module_free(m);
    }
    t_assert_error(lz_nn_group_norm(4, 6, 1e-5, true), "divisible by groups 4");
}

/* ---- attention and transformer block ---- */

/* Reference self-attention of x [B, T, D] with qkv weights [3D, D] (or NULL bias), out
 * projection, heads H, optional causal mask and rotary embedding (rotate-half layout). */
static void ref_attention(const double *x, int64_t bsz, int64_t t, int64_t d, const double *wqkv,
                          const double *bqkv, const double *wo, const double *bo, int64_t heads,
                          int causal, int rope, double theta, double *y) {
    int64_t hd = d / heads, half = hd / 2;
    double *qkv = malloc((size_t)(bsz * t * 3 * d) * sizeof *qkv), *att = malloc((size_t)(bsz * t * d) * sizeof *att);
    nt_linear(x, bsz * t, d, wqkv, bqkv, 3 * d, qkv);
    if (rope)
        for (int64_t r = 0; r < bsz * t; r++)
            for (int part = 0; part < 2; part++)
                for (int64_t h = 0; h < heads; h++) {
                    double *v = qkv + r * 3 * d + part * d + h * hd;
                    double pos = (double)(r % t);
                    for (int64_t i = 0; i < half; i++) {
                        double a = pos * pow(theta, -2.0 * (double)i / (double)hd), x1 = v[i], x2 = v[i + half];
                        v[i] = x1 * cos(a) - x2 * sin(a);
                        v[i + half] = x2 * cos(a) + x1 * sin(a);
                    }
                }
    for (int64_t b = 0; b < bsz; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < t; i++) {
                double sc[64], mx = -INFINITY, s = 0;
                for (int64_t j = 0; j < t; j++) {
                    sc[j] = -INFINITY;
                    if (causal && j > i) continue;
                    double dot = 0;
                    for (int64_t e = 0; e < hd; e++)
                        dot += qkv[(b * t + i) * 3 * d + h * hd + e] * qkv[(b * t + j) * 3 * d + d + h * hd + e];
                    sc[j] = dot / sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int64_t j = 0; j < t; j++) s += exp(sc[j] - mx);
                for (int64_t e = 0; e < hd; e++) {
                    double o = 0;
                    for (int64_t j = 0; j < t; j++)
                        o += exp(sc[j] - mx) / s * qkv[(b * t + j) * 3 * d + 2 * d + h * hd + e];
                    att[(b * t + i) * d + h * hd + e] = o;
                }
            }
    nt_linear(att, bsz * t, d, wo, bo, d, y);
    free(qkv);
    free(att);
}

/* the [3D, D] qkv weight (and [3D] bias) of an attention module, fused or not */
static void qkv_of(lz_module *m, int fused, int64_t d, double **w, double **b) {
    if (fused) {
        *w = nt_param(m, "qkv.weight");
        *b = lz_module_param(m, "qkv.bias") ? nt_param(m, "qkv.bias") : NULL;
        lz_error_clear();
        return;
    }
    *w = malloc((size_t)(3 * d * d) * sizeof **w);
    *b = malloc((size_t)(3 * d) * sizeof **b);
    const char *wn[3] = {"q.weight", "k.weight", "v.weight"}, *bn[3] = {"q.bias", "k.bias", "v.bias"};
    for (int i = 0; i < 3; i++) {
        double *p = nt_param(m, wn[i]), *q = nt_param(m, bn[i]);
        memcpy(*w + i * d * d, p, (size_t)(d * d) * sizeof *p);
        memcpy(*b + i * d, q, (size_t)d * sizeof *q);
        free(p);
        free(q);
    }
}

static void test_attention(void **state) {
    (void)state;
    uint64_t seed = 30;
    int64_t d = 16;
    for (int fused = 0; fused < 2; fused++)
        for (int causal = 0; causal < 2; causal++)
            for (int rope = 0; rope < 2; rope++) {
                lz_attention_opts o = {.bias = !fused || causal, .fused_qkv = fused, .causal = causal,
                                       .rope = rope, .rope_theta = rope && causal ? 100 : 0};
                lz_module *m = lz_nn_attention(d, 4, &o, lz_key_new(fused * 4 + causal * 2 + rope));
                assert_non_null(m);
                nt_randomize(m, -0.5, 0.5, 50 + causal);
                int64_t xs[3] = {2, 7, d};
                tarr x = t_rand(3, xs, LZ_F32, -1, 1, &seed, layouts[(fused + causal + rope) % 3]);
                double *w, *b, *wo = nt_param(m, "out.weight"), *bo = o.bias ? nt_param(m, "out.bias") : NULL;
                qkv_of(m, fused, d, &w, &b);
                double ref[2 * 7 * 16];
                ref_attention(x.v, 2, 7, d, w, b, wo, bo, 4, causal, rope, o.rope_theta ? o.rope_theta : 10000, ref);
                lz_array *y = lz_module_forward(m, x.a, NULL);
                assert_non_null(y);
                t_assert_close(y, ref, x.n, 1e-4, 1e-5);
                lz_release(y);
                /* unbatched [T, D] gives the first batch's rows */
                lz_array *x0 = lz_slice_axis(x.a, 0, 0, 1, 1), *x0s = lz_squeeze(x0, 0);
                y = lz_module_forward(m, x0s, NULL);
                assert_int_equal(lz_ndim(y), 2);
                t_assert_close(y, ref, 7 * d, 1e-4, 1e-5);
                lz_release(y);
                /* a second length reuses nothing stale (RoPE tables) */
                lz_array *x3 = lz_slice_axis(x.a, 1, 0, 3, 1);
                double *v3 = nt_vals(x3), ref3[2 * 3 * 16];
                ref_attention(v3, 2, 3, d, w, b, wo, bo, 4, causal, rope, o.rope_theta ? o.rope_theta : 10000, ref3);
                y = lz_module_forward(m, x3, NULL);
                t_assert_close(y, ref3, 2 * 3 * d, 1e-4, 1e-5);
                lz_release(y);
                free(v3);
                lz_release(x3);
                lz_release(x0);
                lz_release(x0s);
                free(w); free(b); free(wo); free(bo);
                t_free(&x);
                lz_module_free(m);
            }
    t_assert_error(lz_nn_attention(10, 3, NULL, lz_key_new(0)), "heads (3) must divide dim (10)");
    lz_attention_opts o = {.rope = true};
    t_assert_error(lz_nn_attention(12, 4, &o, lz_key_new(0)), "rope needs an even head size");
    lz_module *m = lz_nn_attention(8, 2, NULL, lz_key_new(0));
    int64_t s[3] = {2, 3, 6};
    lz_array *x = lz_zeros(3, s, LZ_F32);
    t_assert_error(lz_module_forward(m, x, NULL), "attention '(root)': input float32[2,3,6] must be [B, T, 8] or [T, 8]");
    lz_release(x);
    /* PyTorch nn.MultiheadAttention init: xavier_uniform qkv [3D, D], zero biases */
    double *w = nt_param(m, "qkv.weight"), *b = nt_param(m, "qkv.bias"), mx = 0;
    for (int i = 0; i < 3 * 64; i++) mx = fmax(mx, fabs(w[i]));
    assert_true(mx <= sqrt(6.0 / 32) && mx > 0.8 * sqrt(6.0 / 32));
    for (int i = 0; i < 24; i++) assert_true(b[i] == 0);
    free(w);
    free(b);
    lz_module_free(m);
}

static void test_transformer_block(void **state) {
    (void)state;
    uint64_t seed = 31;
    int64_t d = 16, t = 5;
    for (int swiglu = 0; swiglu < 2; swiglu++)
        for (int rms = 0; rms < 2; rms++) {
            lz_block_opts o = {.d_ff = swiglu ? 24 : 0, .norm = rms ? LZ_NORM_RMS : LZ_NORM_LAYER,
                               .mlp = swiglu ? LZ_MLP_SWIGLU : LZ_MLP_GELU, .bias = !swiglu,
                               .causal = true, .rope = rms != 0};
            lz_module *m = lz_nn_transformer_block(d, 2, &o, lz_key_new(swiglu * 2 + rms));
            assert_non_null(m);
            nt_randomize(m, -0.4, 0.4, 60 + swiglu);
            int64_t xs[3] = {2, t, d}, rows = 2 * t, hid = swiglu ? 24 : 64;
            tarr x = t_rand(3, xs, LZ_F32, -1, 1, &seed, layouts[swiglu + rms]);
            double *n1w = nt_param(m, "norm1.weight"), *n2w = nt_param(m, "norm2.weight");
            double *n1b = o.bias && !rms ? nt_param(m, "norm1.bias") : NULL, *n2b = o.bias && !rms ? nt_param(m, "norm2.bias") : NULL;
            double *w, *b, *wo = nt_param(m, "attn.out.weight"), *bo = o.bias ? nt_param(m, "attn.out.bias") : NULL;
            lz_module *attn = lz_module_child(m, "attn");
            qkv_of(attn, 1, d, &w, &b);
            double h[160], a[160], y1[160], h2[160], ref[160], *u = malloc((size_t)(rows * hid) * sizeof *u),
                   *g = malloc((size_t)(rows * hid) * sizeof *g);
            nt_norm(x.v, rows, d, n1w, n1b, rms ? 1e-6 : 1e-5, rms, h);
            ref_attention(h, 2, t, d, w, b, wo, bo, 2, 1, rms, 10000, a);
            for (int i = 0; i < rows * d; i++) y1[i] = x.v[i] + a[i];
            nt_norm(y1, rows, d, n2w, n2b, rms ? 1e-6 : 1e-5, rms, h2);
            if (swiglu) {
                double *wg = nt_param(m, "mlp.gate.weight"), *wu = nt_param(m, "mlp.up.weight"), *wd = nt_param(m, "mlp.down.weight");
                nt_linear(h2, rows, d, wg, NULL, hid, g);
                nt_linear(h2, rows, d, wu, NULL, hid, u);
                for (int i = 0; i < rows * hid; i++) g[i] = nt_silu(g[i]) * u[i];
                nt_linear(g, rows, hid, wd, NULL, d, ref);
                free(wg); free(wu); free(wd);
            } else {
                double *w1 = nt_param(m, "mlp.fc1.weight"), *b1 = nt_param(m, "mlp.fc1.bias");
                double *w2 = nt_param(m, "mlp.fc2.weight"), *b2 = nt_param(m, "mlp.fc2.bias");
                nt_linear(h2, rows, d, w1, b1, hid, g);
                for (int i = 0; i < rows * hid; i++) g[i] = nt_gelu(g[i]);
                nt_linear(g, rows, hid, w2, b2, d, ref);
                free(w1); free(b1); free(w2); free(b2);
            }
            for (int i = 0; i < rows * d; i++) ref[i] += y1[i];
            lz_array *y = lz_module_forward(m, x.a, NULL);
            assert_non_null(y);
            t_assert_close(y, ref, rows * d, 1e-4, 1e-4);
            lz_release(y);
            free(u); free(g); free(n1w); free(n2w); free(n1b); free(n2b);
            free(w); free(b); free(wo); free(bo);
            t_free(&x);
            lz_module_free(m);
        }
    /* defaults: d_ff 4D; dropout children only when asked; their masks differ */
    lz_block_opts o = {.bias = true, .dropout = 0.5};
    lz_module *m = lz_nn_transformer_block(8, 2, &o, lz_key_new(1));
    assert_int_equal(lz_dim(lz_module_param(m, "mlp.fc1.weight"), 0), 32);
    assert_non_null(lz_module_child(m, "dropout2"));
    int64_t s[3] = {1, 3, 8};
    lz_array *x = lz_ones(3, s, LZ_F32);
    t_assert_error(lz_module_forward(m, x, NULL), "dropout 'dropout1': training mode needs a random key");
    lz_key k = lz_key_new(3);
    lz_array *y = lz_module_forward(m, x, &k);
    assert_non_null(y);
    lz_release(y);
    lz_block_opts sw = {.mlp = LZ_MLP_SWIGLU};
    lz_module *m2 = lz_nn_transformer_block(12, 3, &sw, lz_key_new(1));
    assert_int_equal(lz_dim(lz_module_param(m2, "mlp.gate.weight"), 0), 32);   /* 8/3 * 12 = 32 */
    lz_module_free(m2);
    lz_release(x);
    lz_module_free(m);
    t_assert_error(lz_nn_transformer_block(10, 3, NULL, lz_key_new(0)), "heads (3) must divide dim (10)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_layer_rms_norm),
        cmocka_unit_test(test_group_norm),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_transformer_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
