/* Training with the library end to end (nn + autograd + optim): a small MLP learns XOR and two
 * spirals to 100% train accuracy, a tiny transformer memorises a 64-token sequence; freezing
 * keeps frozen parameters bit for bit; LoRA trains only its adapters and merging them gives
 * the unmerged model's outputs. */
#include "nn_testutil.h"
#include "optim/optim.h"

/* ---- a training loop over a module's trainable parameters ---- */
typedef struct {
    lz_module *m;
    lz_named_list l;
    const char **names;
    lz_optim *opt;
} trainer;

static void trainer_init(trainer *t, lz_module *m, double lr) {
    t->m = m;
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &t->l), 0);
    t->names = malloc((size_t)t->l.n * sizeof *t->names);
    for (int i = 0; i < t->l.n; i++) t->names[i] = t->l.items[i].name;
    lz_optim_config c = lz_optim_defaults(LZ_ADAM);
    c.lr = lr;
    t->opt = lz_optim_new(&c);
    assert_non_null(t->opt);
}

static void trainer_free(trainer *t) {
    lz_optim_free(t->opt);
    free(t->names);
    lz_named_list_free(&t->l);
}

/* One step: loss and gradients, the Adam update installed in the module's slots, and ONE
 * evaluation of everything. Returns the loss before the step. */
static double step(trainer *t, lz_module_loss_fn fn, void *ctx) {
    int n = t->l.n;
    lz_array *loss, **g = malloc((size_t)n * sizeof *g), **p = malloc((size_t)n * sizeof *p),
             **next = malloc((size_t)(n + 1) * sizeof *next);
    lz_pool_push();
    assert_true(lz_module_value_and_grad(t->m, &t->l, fn, ctx, &loss, 1, g) >= 1);
    for (int i = 0; i < n; i++) p[i] = *t->l.items[i].slot;
    assert_int_equal(lz_optim_step(t->opt, n, t->names, p, g, next, -1), 0);
    for (int i = 0; i < n; i++) assert_int_equal(lz_param_set(&t->l.items[i], next[i]), 0);
    next[n] = loss;
    assert_int_equal(lz_optim_eval(t->opt, n + 1, next), 0);
    double v = lz_item(loss);
    lz_pool_pop();
    free(g);
    free(p);
    free(next);
    return v;
}

/* ---- classification data ---- */
typedef struct { lz_array *x, *y; int64_t n; } data;

static int ce_fn(void *ctx, lz_module *m, lz_array **out) {
    data *d = ctx;
    out[0] = lz_cross_entropy(lz_module_forward(m, d->x, NULL), d->y, NULL);
    return 1;
}

/* fraction of rows whose argmax matches the label */
static double accuracy(lz_module *m, data *d) {
    lz_pool_push();
    lz_module_train(m, false);
    lz_array *pred = lz_argmax(lz_module_forward(m, d->x, NULL), -1, 0);
    int64_t *pv = malloc((size_t)d->n * sizeof *pv), *yv = malloc((size_t)d->n * sizeof *yv);
    assert_int_equal(lz_to_int(pred, pv, d->n), 0);
    assert_int_equal(lz_to_int(d->y, yv, d->n), 0);
    int64_t ok = 0;
    for (int64_t i = 0; i < d->n; i++) ok += pv[i] == yv[i];
    lz_module_train(m, true);
    lz_pool_pop();
    free(pv);
    free(yv);
    return (double)ok / (double)d->n;
}

static void test_xor(void **state) {
    (void)state;
    double xv[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int64_t yv[4] = {0, 1, 1, 0}, xs[2] = {4, 2}, n = 4;
    data d = {nt_array(2, xs, xv), lz_from_data(yv, 1, &n, LZ_I64), 4};
    lz_module *m = lz_nn_sequential(3, (lz_module *[]){lz_nn_linear(2, 8, true, lz_key_new(1)), lz_nn_tanh(),
                                                       lz_nn_linear(8, 2, true, lz_key_new(2))});
    trainer t;
    trainer_init(&t, m, 0.05);
    double first = step(&t, ce_fn, &d), last = first;
    for (int i = 0; i < 300; i++) last = step(&t, ce_fn, &d);
    assert_true(last < 0.05 && last < first);
    assert_true(accuracy(m, &d) == 1.0);
    trainer_free(&t);
    lz_module_free(m);
    lz_release(d.x);
    lz_release(d.y);
}

static void test_two_spirals(void **state) {
    (void)state;
    enum { PER = 100 };
    double xv[4 * PER];
    int64_t yv[2 * PER], xs[2] = {2 * PER, 2}, n = 2 * PER;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < PER; i++) {
            double r = 0.1 + 0.9 * i / PER, a = 3 * M_PI * i / PER + c * M_PI;
            xv[(c * PER + i) * 2] = r * cos(a);
            xv[(c * PER + i) * 2 + 1] = r * sin(a);
            yv[c * PER + i] = c;
        }
    data d = {nt_array(2, xs, xv), lz_from_data(yv, 1, &n, LZ_I64), n};
    lz_module *m = lz_nn_sequential(5, (lz_module *[]){lz_nn_linear(2, 64, true, lz_key_new(3)), lz_nn_tanh(),
                                                       lz_nn_linear(64, 64, true, lz_key_new(4)), lz_nn_tanh(),
                                                       lz_nn_linear(64, 2, true, lz_key_new(5))});
    trainer t;
    trainer_init(&t, m, 0.01);
    double acc = 0;
    int steps = 0;
    for (; steps < 3000 && acc < 1; steps += 100) {
        for (int i = 0; i < 100; i++) step(&t, ce_fn, &d);
        acc = accuracy(m, &d);
    }
    printf("two spirals: %.1f%% train accuracy after %d steps\n", 100 * acc, steps);
    assert_true(acc == 1.0);
    trainer_free(&t);
    lz_module_free(m);
    lz_release(d.x);
    lz_release(d.y);
}

/* ---- a tiny causal language model: token and position embeddings, blocks, norm, head ---- */
static lz_array *lm_forward(lz_module *m, lz_array *tokens, const lz_key *key) {
    int64_t t = lz_dim(tokens, -1);
    lz_array *pos = lz_slice_axis(lz_module_param(m, "pos"), 0, 0, t, 1);
    lz_array *h = lz_add(lz_module_forward(lz_module_child(m, "embed"), tokens, key), pos);
    h = lz_module_forward(lz_module_child(m, "blocks"), h, key);
    h = lz_module_forward(lz_module_child(m, "norm"), h, key);
    return lz_module_forward(lz_module_child(m, "head"), h, key);
}

static const lz_module_kind lm_kind = {"tiny_lm", lm_forward, NULL, NULL};

static lz_module *lm_new(int64_t vocab, int64_t dim, int64_t ctx, int layers, lz_key key) {
    lz_key k[8];
    lz_key_split(key, 8, k);
    lz_module *m = lz_module_new(&lm_kind, NULL);
    int64_t ps[2] = {ctx, dim};
    lz_array *pos = lz_init_normal(k[0], 2, ps, 0, 0.02, LZ_F32);
    lz_module *blocks = lz_nn_sequential(0, NULL);
    lz_block_opts bo = {.bias = true, .causal = true};
    for (int i = 0; i < layers; i++)
        assert_int_equal(lz_nn_sequential_append(blocks, lz_nn_transformer_block(dim, 2, &bo, k[2 + i])), 0);
    int rc = lz_module_add_param(m, "pos", pos) ||
             lz_module_add_child(m, "embed", lz_nn_embedding(vocab, dim, k[1])) ||
             lz_module_add_child(m, "blocks", blocks) ||
             lz_module_add_child(m, "norm", lz_nn_layer_norm(dim, 1e-5, true, true)) ||
             lz_module_add_child(m, "head", lz_nn_linear(dim, vocab, true, k[7]));
    lz_release(pos);
    assert_int_equal(rc, 0);
    return m;
}

typedef struct { lz_array *in, *target; } seq;

static int lm_fn(void *ctx, lz_module *m, lz_array **out) {
    seq *s = ctx;
    out[0] = lz_cross_entropy(lz_module_forward(m, s->in, NULL), s->target, NULL);
    return 1;
}

static void test_transformer_memorises(void **state) {
    (void)state;
    enum { T = 64, V = 16 };
    int64_t tok[T + 1], tl = T;
    uint64_t seed = 99;
    for (int i = 0; i <= T; i++) tok[i] = (int64_t)t_uniform(&seed, 0, V);
    int64_t one_t[2] = {1, T};
    seq s = {lz_from_data(tok, 2, one_t, LZ_I64), lz_from_data(tok + 1, 2, one_t, LZ_I64)};
    lz_module *m = lm_new(V, 32, T, 2, lz_key_new(7));
    assert_non_null(lz_module_param(m, "blocks.1.attn.qkv.weight"));
    trainer t;
    trainer_init(&t, m, 3e-3);
    double loss = 0;
    int steps = 0, exact = 0;
    for (; steps < 600 && exact < T; steps += 50) {
        for (int i = 0; i < 50; i++) loss = step(&t, lm_fn, &s);
        /* greedy next-token predictions over the whole sequence */
        lz_pool_push();
        lz_module_train(m, false);
        lz_array *pred = lz_argmax(lz_module_forward(m, s.in, NULL), -1, 0);
        int64_t pv[T];
        assert_int_equal(lz_to_int(pred, pv, T), 0);
        exact = 0;
        for (int i = 0; i < T; i++) exact += pv[i] == tok[i + 1];
        lz_module_train(m, true);
        lz_pool_pop();
    }
    printf("tiny transformer: %d/%d next tokens after %d steps (loss %.4f)\n", exact, (int)tl, steps, loss);
    assert_int_equal(exact, T);
    trainer_free(&t);
    lz_module_free(m);
    lz_release(s.in);
    lz_release(s.target);
}

/* ---- freezing and LoRA ---- */

/* values of every parameter, concatenated, as doubles */
static double *snapshot(lz_module *m, int64_t *n) {
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_PARAMS, &l), 0);
    int64_t total = 0;
    for (int i = 0; i < l.n; i++) total += lz_size(*l.items[i].slot);
    double *v = malloc((size_t)total * sizeof *v);
    int64_t at = 0;
    for (int i = 0; i < l.n; i++) {
        double *p = nt_vals(*l.items[i].slot);
        memcpy(v + at, p, (size_t)lz_size(*l.items[i].slot) * sizeof *p);
        at += lz_size(*l.items[i].slot);
        free(p);
    }
    lz_named_list_free(&l);
    *n = total;
    return v;
}

static double *param_copy(lz_module *m, const char *name) { return nt_param(m, name); }

static void test_freeze_training(void **state) {
    (void)state;
    double xv[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int64_t yv[4] = {0, 1, 1, 0}, xs[2] = {4, 2}, n = 4;
    data d = {nt_array(2, xs, xv), lz_from_data(yv, 1, &n, LZ_I64), 4};
    lz_module *m = lz_nn_sequential(3, (lz_module *[]){lz_nn_linear(2, 8, true, lz_key_new(1)), lz_nn_tanh(),
                                                       lz_nn_linear(8, 2, true, lz_key_new(2))});
    assert_int_equal(lz_module_freeze(m, "0"), 2);
    double *w0 = param_copy(m, "0.weight"), *h0 = param_copy(m, "2.weight");
    trainer t;
    trainer_init(&t, m, 0.05);
    assert_int_equal(t.l.n, 2);
    for (int i = 0; i < 20; i++) step(&t, ce_fn, &d);
    double *w1 = param_copy(m, "0.weight"), *h1 = param_copy(m, "2.weight");
    assert_memory_equal(w0, w1, 16 * sizeof(double));
    assert_true(memcmp(h0, h1, 16 * sizeof(double)) != 0);
    free(w0); free(w1); free(h0); free(h1);
    trainer_free(&t);
    lz_module_free(m);
    lz_release(d.x);
    lz_release(d.y);
}

static void test_lora(void **state) {
    (void)state;
    uint64_t seed = 5;
    /* a model with a nested linear, trained briefly so the adapters are non-zero */
    int64_t xs[2] = {16, 4};
    tarr x = t_rand(2, xs, LZ_F32, -1, 1, &seed, T_CONTIG);
    int64_t yv[16];
    for (int i = 0; i < 16; i++) yv[i] = i % 3;
    int64_t n = 16;
    data d = {x.a, lz_from_data(yv, 1, &n, LZ_I64), 16};
    lz_module *m = lz_nn_sequential(3, (lz_module *[]){lz_nn_linear(4, 16, true, lz_key_new(1)), lz_nn_gelu(false),
                                                       lz_nn_linear(16, 3, false, lz_key_new(2))});
    int64_t base_n;
    double *base = snapshot(m, &base_n);
    lz_array *y0 = lz_module_forward(m, x.a, NULL);
    assert_int_equal(lz_eval1(y0), 0);
    assert_int_equal(lz_lora_apply(m, "*", 2, 8, 0, lz_key_new(3)), 2);
    /* same names for the base weights, adapters added, only adapters trainable */
    assert_string_equal(lz_module_kind_of(lz_module_child(m, "0"))->name, "lora_linear");
    assert_non_null(lz_module_param(m, "2.lora_b"));
    assert_true(lz_module_is_frozen(m, "0.weight") && lz_module_is_frozen(m, "0.bias"));
    assert_false(lz_module_is_frozen(m, "0.lora_a"));
    assert_int_equal(lz_module_num_params(m, true), 2 * 4 + 16 * 2 + 2 * 16 + 3 * 2);
    /* B = 0: the wrapped model computes what the base did */
    lz_array *y1 = lz_module_forward(m, x.a, NULL);
    double *v0 = nt_vals(y0);
    t_assert_close(y1, v0, 48, 0, 1e-6);
    lz_release(y1);
    trainer t;
    trainer_init(&t, m, 0.02);
    assert_int_equal(t.l.n, 4);
    double first = step(&t, ce_fn, &d), last = first;
    for (int i = 0; i < 30; i++) last = step(&t, ce_fn, &d);
    assert_true(last < first);
    trainer_free(&t);
    /* the base parameters did not change; collect order puts them where they were */
    double *wb = param_copy(m, "0.weight"), *bb = param_copy(m, "0.bias"), *w2 = param_copy(m, "2.weight");
    assert_memory_equal(wb, base, 64 * sizeof(double));
    assert_memory_equal(bb, base + 64, 16 * sizeof(double));
    assert_memory_equal(w2, base + 80, 48 * sizeof(double));
    free(wb); free(bb); free(w2);
    double *bl = param_copy(m, "2.lora_b");
    double mx = 0;
    for (int i = 0; i < 6; i++) mx = fmax(mx, fabs(bl[i]));
    assert_true(mx > 1e-3);
    free(bl);
    /* merging: plain linear layers again, same outputs */
    lz_array *yl = lz_module_forward(m, x.a, NULL);
    double *vl = nt_vals(yl);
    assert_int_equal(lz_lora_merge(m), 2);
    assert_string_equal(lz_module_kind_of(lz_module_child(m, "0"))->name, "linear");
    lz_error_clear();
    assert_null(lz_module_param(m, "0.lora_a"));
    assert_true(lz_module_is_frozen(m, "2.weight"));
    lz_array *ym = lz_module_forward(m, x.a, NULL);
    t_assert_close(ym, vl, 48, 0, 1e-5);
    /* and the merged weights differ from the base ones */
    double *wm = param_copy(m, "2.weight");
    assert_true(memcmp(wm, base + 80, 48 * sizeof(double)) != 0);
    free(wm);
    assert_int_equal(lz_lora_merge(m), 0);
    /* errors */
    assert_int_equal(lz_lora_apply(m, "nothing*", 2, 8, 0, lz_key_new(0)), -1);
    assert_non_null(strstr(lz_error(), "sequential '(root)': lora: no linear layer matches \"nothing*\""));
    assert_int_equal(lz_lora_apply(m, "*", 0, 8, 0, lz_key_new(0)), -1);
    assert_non_null(strstr(lz_error(), "lora: rank 0 must be >= 1"));
    free(vl); free(v0); free(base);
    lz_release(yl); lz_release(ym); lz_release(y0);
    lz_module_free(m);
    t_free(&x);
    lz_release(d.y);
}

/* LoRA on the attention projections of a transformer: merge equals unmerged to 1e-5 */
static void test_lora_transformer(void **state) {
    (void)state;
    lz_module *m = lm_new(11, 16, 8, 2, lz_key_new(4));
    assert_int_equal(lz_lora_apply(m, "blocks.*.attn.*", 4, 8, 0.1, lz_key_new(5)), 4);
    assert_int_equal(lz_lora_apply(m, "head", 2, 4, 0, lz_key_new(6)), 1);
    assert_false(lz_module_is_frozen(m, "head.lora_a"));
    assert_true(lz_module_is_frozen(m, "blocks.0.attn.qkv.lora_a") == false);
    assert_true(lz_module_is_frozen(m, "blocks.0.mlp.fc1.weight"));
    assert_true(lz_module_is_frozen(m, "pos"));
    nt_randomize(m, -0.3, 0.3, 8);
    int64_t tok[8] = {1, 5, 2, 9, 10, 0, 3, 3}, s[2] = {1, 8};
    lz_array *in = lz_from_data(tok, 2, s, LZ_I64);
    lz_module_train(m, false);   /* adapter dropout off */
    lz_array *y = lz_module_forward(m, in, NULL);
    double *v = nt_vals(y);
    assert_int_equal(lz_lora_merge(m), 5);
    lz_array *ym = lz_module_forward(m, in, NULL);
    t_assert_close(ym, v, 88, 0, 1e-5);
    free(v);
    lz_release(y);
    lz_release(ym);
    lz_release(in);
    lz_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xor),
        cmocka_unit_test(test_two_spirals),
        cmocka_unit_test(test_transformer_memorises),
        cmocka_unit_test(test_freeze_training),
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_lora_transformer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
