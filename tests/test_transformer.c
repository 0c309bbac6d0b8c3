/* The transformer language model of model.type transformer (lib/io/model_gpt.c), its
 * key/value cache (lib/nn/kv_cache.c) and sampling (lib/io/sample.c): every parameter's
 * gradient against finite differences on a tiny model (2 layers, width 32), causal masking,
 * cached generation equal to full recomputation, checkpointed blocks giving the gradients of
 * plain ones, determinism of sampling, the summary, and the errors. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "gradcheck.h"
#include "nn_testutil.h"
#include "io/model.h"

#define VOCAB 11

/* extra: ", key: value, ..." of model keys, applied as overrides of the tiny model */
static lz_config *tiny_cfg(const char *extra) {
    const char *text = "name: t\ndata: {path: x.h5}\n"
                       "model: {type: transformer, n_layers: 2, n_heads: 2, d_model: 32, context: 8}\n";
    char buf[1024], over[16][128];
    const char *ov[16];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", extra);
    for (char *tok = strtok(buf, ","); tok && n < 16; tok = strtok(NULL, ",")) {
        while (*tok == ' ') tok++;
        char *colon = strchr(tok, ':');
        assert_non_null(colon);
        *colon = 0;
        snprintf(over[n], sizeof over[n], "model.%s=%s", tok, colon + 2);
        ov[n] = over[n];
        n++;
    }
    lz_config *c = lz_config_load_string(text, "tiny.yaml", n, ov);
    if (!c) fail_msg("config: %s", lz_error());
    return c;
}

static lz_module *tiny(const char *extra, uint64_t seed) {
    lz_config *c = tiny_cfg(extra);
    lz_model_shape sh = {0, 0, 0, VOCAB};
    lz_module *m = lz_model_build(c, &sh, lz_key_new(seed));
    lz_config_free(c);
    if (!m) fail_msg("build: %s", lz_error());
    return m;
}

static lz_array *tokens(int64_t b, int64_t t, uint64_t seed) {
    int32_t v[256];
    for (int64_t i = 0; i < b * t; i++) v[i] = (int32_t)(t_uniform(&seed, 0, VOCAB - 1e-9));
    int64_t shape[2] = {b, t};
    return lz_from_data(v, 2, shape, LZ_I32);
}

static const char *const variants[] = {
    "",                                                              /* gelu, layer, learned, tied */
    ", mlp: swiglu, norm: rms, positions: rotary, tied_embeddings: false",
    ", mlp: gelu, norm: layer, positions: rotary, bias: false, checkpoint_blocks: true",
};

/* ---- gradients ---- */

typedef struct {
    lz_module *m;
    lz_named_list l;
    lz_array *x, *y;
} lctx;

static int loss_fn(void *p, int n, lz_array *const *in, lz_array **out) {
    lctx *c = p;
    assert_int_equal(n, c->l.n);
    lz_array **saved = malloc((size_t)n * sizeof *saved);
    for (int i = 0; i < n; i++) {
        saved[i] = *c->l.items[i].slot;
        *c->l.items[i].slot = in[i];
    }
    out[0] = lz_cross_entropy(lz_module_forward(c->m, c->x, NULL), c->y, NULL);
    for (int i = 0; i < n; i++) *c->l.items[i].slot = saved[i];
    free(saved);
    return out[0] ? 1 : -1;
}

static void test_gradcheck(void **state) {
    (void)state;
    /* gc_check and nt_randomize manage their references themselves: no pool open here */
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        lz_module *m = tiny(variants[v], 7 + v);
        lz_module_train(m, false);
        nt_randomize(m, -0.5, 0.5, 3 + v);   /* O(1) values: well-scaled differences */
        lctx c = {m, {0}, tokens(2, 6, 1 + v), tokens(2, 6, 11 + v)};
        assert_int_equal(lz_module_collect(m, LZ_PARAMS, &c.l), 0);
        lz_array **xs = malloc((size_t)c.l.n * sizeof *xs);
        for (int i = 0; i < c.l.n; i++) xs[i] = *c.l.items[i].slot;
        /* every parameter, checked along 6 random directions (all elements when small) */
        gc_check(variants[v], loss_fn, &c, c.l.n, xs,
                 &(gc_opts){.h = 1e-2, .rtol = 2e-2, .atol = 2e-3, .max_elems = 6});
        free(xs);
        lz_named_list_free(&c.l);
        lz_release(c.x);
        lz_release(c.y);
        lz_module_free(m);
    }
}

/* ---- causal masking ---- */

static void test_causal(void **state) {
    (void)state;
    for (size_t v = 0; v < 2; v++) {
        lz_pool_push();
        lz_module *m = tiny(variants[v], 3);
        lz_module_train(m, false);
        int32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
        int64_t shape[2] = {1, 8};
        for (int t = 0; t < 8; t++) {
            memcpy(b, a, sizeof a);
            b[t] = (a[t] + 3) % VOCAB;
            lz_array *la = lz_module_forward(m, lz_from_data(a, 2, shape, LZ_I32), NULL);
            lz_array *lb = lz_module_forward(m, lz_from_data(b, 2, shape, LZ_I32), NULL);
            assert_int_equal(LZ_EVAL(la, lb), 0);
            const float *pa = lz_data(la), *pb = lz_data(lb);
            for (int i = 0; i < t * VOCAB; i++) assert_true(pa[i] == pb[i]);   /* earlier positions */
            bool changed = false;
            for (int i = t * VOCAB; i < (t + 1) * VOCAB; i++) changed |= pa[i] != pb[i];
            assert_true(changed);   /* the changed position itself does see it */
        }
        lz_module_free(m);
        lz_pool_pop();
    }
}

/* ---- the cache ---- */

static void test_cached_logits(void **state) {
    (void)state;
    for (size_t v = 0; v < 2; v++) {
        lz_pool_push();
        lz_module *m = tiny(variants[v], 5);
        lz_module_train(m, false);
        lz_array *x = tokens(1, 8, 99);
        lz_array *full = lz_module_forward(m, x, NULL);
        assert_int_equal(lz_eval1(full), 0);
        const float *pf = lz_data(full);
        lz_kv_cache *c = lz_model_gpt_cache(m);
        lz_kv_cache_reset(c);
        /* a prefill of 3 tokens, then one at a time */
        int64_t at = 0;
        for (int64_t step = 3; at < 8; step = 1) {
            lz_array *y = lz_model_gpt_forward_cached(m, lz_slice_axis(x, 1, at, at + step, 1));
            assert_non_null(y);
            assert_int_equal(lz_kv_cache_eval(c, 1, &y), 0);
            at += step;
            assert_int_equal(lz_kv_cache_length(c), at);
            const float *py = lz_data(y);
            for (int i = 0; i < VOCAB; i++)
                assert_float_equal(py[i], pf[(at - 1) * VOCAB + i], 1e-4);
        }
        t_assert_error(lz_model_gpt_forward_cached(m, lz_slice_axis(x, 1, 0, 1, 1)),
                       "exceed the context of 8");
        lz_kv_cache_reset(c);
        lz_module_free(m);
        lz_pool_pop();
    }
}

static void test_generate_cache_matches_recompute(void **state) {
    (void)state;
    for (size_t v = 0; v < 2; v++) {
        lz_module *m = tiny(variants[v], 21);
        int32_t prompt[3] = {1, 4, 2}, a[40], b[40], c[40];
        /* 40 tokens with a context of 8: the window restarts several times */
        assert_int_equal(lz_model_generate(m, prompt, 3, 40, 0.8, 5, 1, true, a), 0);
        assert_int_equal(lz_model_generate(m, prompt, 3, 40, 0.8, 5, 1, false, b), 0);
        assert_memory_equal(a, b, sizeof a);
        assert_int_equal(lz_model_generate(m, prompt, 3, 40, 0.8, 5, 1, true, c), 0);
        assert_memory_equal(a, c, sizeof a);   /* deterministic for a seed */
        assert_int_equal(lz_model_generate(m, prompt, 3, 40, 0.8, 5, 2, true, c), 0);
        assert_true(memcmp(a, c, sizeof a) != 0);   /* another seed, other text */
        for (int i = 0; i < 40; i++) assert_true(a[i] >= 0 && a[i] < VOCAB);
        /* greedy: the same with and without cache */
        assert_int_equal(lz_model_generate(m, prompt, 3, 20, 0, 0, 1, true, a), 0);
        assert_int_equal(lz_model_generate(m, prompt, 3, 20, 0, 0, 9, false, b), 0);
        assert_memory_equal(a, b, 20 * sizeof *a);
        /* a prompt longer than the context keeps its end */
        int32_t longp[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1};
        assert_int_equal(lz_model_generate(m, longp, 12, 10, 1.0, 0, 3, true, a), 0);
        assert_int_equal(lz_model_generate(m, longp, 12, 10, 1.0, 0, 3, false, b), 0);
        assert_memory_equal(a, b, 10 * sizeof *a);
        lz_error_clear();
        assert_int_equal(lz_model_generate(m, prompt, 0, 5, 1, 0, 1, true, a), -1);
        assert_non_null(strstr(lz_error(), "at least one token"));
        int32_t bad[1] = {VOCAB};
        assert_int_equal(lz_model_generate(m, bad, 1, 5, 1, 0, 1, true, a), -1);
        assert_non_null(strstr(lz_error(), "outside the vocabulary"));
        lz_module_free(m);
    }
}

/* top-k 1 is greedy whatever the temperature */
static void test_top_k_one(void **state) {
    (void)state;
    lz_module *m = tiny("", 4);
    int32_t prompt[2] = {3, 3}, a[12], b[12];
    assert_int_equal(lz_model_generate(m, prompt, 2, 12, 5.0, 1, 1, true, a), 0);
    assert_int_equal(lz_model_generate(m, prompt, 2, 12, 0, 0, 2, true, b), 0);
    assert_memory_equal(a, b, sizeof a);
    lz_module_free(m);
}

/* ---- checkpointing ---- */

typedef struct { lz_array *x, *y; lz_key key; } mctx;
static int mloss(void *p, lz_module *m, lz_array **out) {
    mctx *c = p;
    out[0] = lz_cross_entropy(lz_module_forward(m, c->x, &c->key), c->y, NULL);
    return out[0] ? 1 : -1;
}

static void grads_of(const char *extra, lz_array *x, lz_array *y, double **g, int64_t *sizes, int *n,
                     size_t *peak) {
    lz_module *m = tiny(extra, 8);
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), 0);
    lz_array *gr[64], *loss = NULL;
    assert_true(l.n <= 64);
    mctx c = {x, y, lz_key_new(5)};
    t_mem_reset_peak();
    size_t base = t_mem().active;
    lz_pool_push();
    assert_int_equal(lz_module_value_and_grad(m, &l, mloss, &c, &loss, 1, gr), 1);
    for (int i = 0; i < l.n; i++) lz_retain(gr[i]);
    lz_pool_pop();
    assert_int_equal(lz_eval(l.n, gr), 0);
    *peak = t_mem().peak - base;
    *n = l.n;
    for (int i = 0; i < l.n; i++) {
        sizes[i] = lz_size(gr[i]);
        g[i] = nt_vals(gr[i]);
        lz_release(gr[i]);
    }
    lz_named_list_free(&l);
    lz_module_free(m);
}

static void test_checkpoint_same_gradients(void **state) {
    (void)state;
    /* dropout on: the recomputed blocks must draw the same masks */
    const char *pairs[2][2] = {
        {", dropout: 0.1", ", dropout: 0.1, checkpoint_blocks: true"},
        {", mlp: swiglu, positions: rotary", ", mlp: swiglu, positions: rotary, checkpoint_blocks: true"},
    };
    for (int p = 0; p < 2; p++) {
        lz_pool_push();
        lz_array *x = tokens(2, 8, 5), *y = tokens(2, 8, 6);
        double *ga[64], *gb[64];
        int64_t sa[64], sb[64];
        int na, nb;
        size_t pa, pb;
        grads_of(pairs[p][0], x, y, ga, sa, &na, &pa);
        grads_of(pairs[p][1], x, y, gb, sb, &nb, &pb);
        assert_int_equal(na, nb);
        for (int i = 0; i < na; i++) {
            assert_int_equal(sa[i], sb[i]);
            for (int64_t e = 0; e < sa[i]; e++) assert_float_equal(ga[i][e], gb[i][e], 1e-5 + 1e-4 * fabs(ga[i][e]));
            free(ga[i]);
            free(gb[i]);
        }
        lz_pool_pop();
    }
}

/* ---- summary and errors ---- */

static void test_summary_and_errors(void **state) {
    (void)state;
    lz_module *m = tiny(", tied_embeddings: false", 1);
    lz_model_shape sh = {0, 0, 0, VOCAB};
    char *s = lz_model_summary(m, &sh);
    assert_non_null(s);
    assert_non_null(strstr(s, "blocks.0"));
    assert_non_null(strstr(s, "blocks.1"));
    assert_non_null(strstr(s, "tok_emb"));
    char want[64];
    snprintf(want, sizeof want, "parameters: %lld", (long long)lz_module_num_params(m, false));
    assert_non_null(strstr(s, want));
    free(s);
    const lz_model_gpt_info *i = lz_model_gpt(m);
    assert_non_null(i);
    assert_int_equal(i->n_layers, 2);
    lz_pool_push();
    t_assert_error(lz_module_forward(m, tokens(1, 9, 1), NULL), "exceed the context of 8");
    int64_t shape[2] = {1, 2};
    t_assert_error(lz_module_forward(m, lz_zeros(2, shape, LZ_F32), NULL), "integer tokens");
    lz_pool_pop();
    lz_module_free(m);

    const char *bad[1] = {"model.n_heads=3"};   /* the config check catches this one */
    t_assert_error(lz_config_load_string("name: t\ndata: {path: x.h5}\nmodel: {type: transformer, "
                                         "d_model: 32}\n", "t.yaml", 1, bad), "must divide");
    lz_config *c = tiny_cfg(", vocab_size: 5");
    t_assert_error(lz_model_build(c, &sh, lz_key_new(0)), "smaller than the data's vocabulary");
    lz_config_free(c);
    c = tiny_cfg("");
    lz_model_shape img = {1, 28, 28, 10};
    t_assert_error(lz_model_build(c, &img, lz_key_new(0)), "takes text");
    lz_config_free(c);
    t_assert_error(lz_kv_cache_new(0), "n_layers 0");
}

/* peak memory of one training step's gradients, with and without checkpointed blocks */
static void test_checkpoint_memory(void **state) {
    (void)state;
    lz_pool_push();
    const char *big = ", n_layers: 4, d_model: 64, context: 64";
    int64_t shape[2] = {8, 64};
    int32_t v[512];
    for (int k = 0; k < 512; k++) v[k] = (int32_t)((k * 7) % VOCAB);
    lz_array *x = lz_from_data(v, 2, shape, LZ_I32), *y = lz_from_data(v, 2, shape, LZ_I32);
    double *g[64];
    int64_t sz[64];
    int n;
    size_t p0, p1;
    char cfg1[128];
    snprintf(cfg1, sizeof cfg1, "%s, checkpoint_blocks: true", big);
    grads_of(big, x, y, g, sz, &n, &p0);
    for (int i = 0; i < n; i++) free(g[i]);
    grads_of(cfg1, x, y, g, sz, &n, &p1);
    for (int i = 0; i < n; i++) free(g[i]);
    printf("peak memory of a step (4 layers, width 64, 8x64 tokens): %.2f MiB plain, %.2f MiB "
           "checkpointed\n", (double)p0 / 1048576, (double)p1 / 1048576);
    assert_true(p1 < p0);
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_cached_logits),
        cmocka_unit_test(test_generate_cache_matches_recompute),
        cmocka_unit_test(test_top_k_one),
        cmocka_unit_test(test_checkpoint_same_gradients),
        cmocka_unit_test(test_summary_and_errors),
        cmocka_unit_test(test_checkpoint_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
