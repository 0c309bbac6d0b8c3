/* Modules as named trees: names and look-ups, replacing values and children, iteration,
 * freezing by pattern, training mode, evaluation, summaries, errors that name the module path,
 * and gradients of a module (lz_module_value_and_grad). */
#include "nn_testutil.h"

/* A small custom model: an embedding-free "net" with children "body" (a sequential of two
 * linear layers with a relu) and "head", and a buffer of its own. */
static lz_array *net_forward(lz_module *m, lz_array *x, const lz_key *key) {
    /* lz_module_forward holds a pool open around a forward: plain op results are right */
    lz_array *h = lz_module_forward(lz_module_child_at(m, 0), x, key);
    return lz_module_forward(lz_module_child_at(m, 1), h, key);
}

static const lz_module_kind net_kind = {"net", net_forward, NULL, NULL};

static lz_module *net_new(void) {
    lz_module *m = lz_module_new(&net_kind, NULL);
    int64_t one = 1;
    lz_array *steps = lz_zeros(1, &one, LZ_I64);
    int rc = lz_module_add_child(m, "body", lz_nn_sequential(3, (lz_module *[]){
                 lz_nn_linear(4, 8, true, lz_key_new(1)), lz_nn_relu(),
                 lz_nn_linear(8, 8, false, lz_key_new(2))})) ||
             lz_module_add_child(m, "head", lz_nn_linear(8, 3, true, lz_key_new(3))) ||
             lz_module_add_buffer(m, "steps", steps);
    lz_release(steps);
    assert_int_equal(rc, 0);
    return m;
}

static void test_names_and_lookup(void **state) {
    (void)state;
    lz_module *m = net_new();
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_PARAMS | LZ_BUFFERS, &l), 0);
    /* PyTorch order: own entries first, then children depth first */
    const char *want[] = {"steps", "body.0.weight", "body.0.bias", "body.2.weight", "head.weight", "head.bias"};
    assert_int_equal(l.n, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(l.items[i].name, want[i]);
    assert_true(l.items[0].buffer && !l.items[1].buffer);
    lz_named_list_free(&l);
    assert_int_equal(lz_module_collect(m, LZ_PARAMS, &l), 0);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.items[0].name, "body.0.weight");
    lz_named_list_free(&l);
    assert_int_equal(lz_module_num_params(m, false), 4 * 8 + 8 + 64 + 24 + 3);

    lz_array *w = lz_module_param(m, "body.2.weight");
    assert_non_null(w);
    assert_int_equal(lz_dim(w, 0), 8);
    lz_module *body = lz_module_child(m, "body"), *l0 = lz_module_child(m, "body.0");
    assert_string_equal(lz_module_kind_of(body)->name, "sequential");
    assert_ptr_equal(lz_module_parent(l0), body);
    assert_ptr_equal(lz_module_param(body, "0.weight"), lz_module_param(m, "body.0.weight"));
    char p[64];
    assert_string_equal(lz_module_path(l0, p, sizeof p), "body.0");
    assert_string_equal(lz_module_path(m, p, sizeof p), "");
    assert_string_equal(lz_module_name(l0), "0");

    t_assert_error(lz_module_param(m, "body.2.weigth"), "net '(root)': no parameter or buffer named \"body.2.weigth\" (did you mean \"body.2.weight\"?)");
    t_assert_error(lz_module_param(m, "body.7.weight"), "did you mean \"body.0.weight\"");
    t_assert_error(lz_module_param(m, "tail.completely.different"), "no parameter or buffer named \"tail.completely.different\" (6 exist");
    t_assert_error(lz_module_child(m, "bdy"), "no module named \"bdy\" (did you mean \"body\"?)");
    t_assert_error(lz_module_param(l0, "wieght"), "linear 'body.0': no parameter or buffer named \"wieght\"");

    /* names: unique, non-empty, no dots */
    int64_t two = 2;
    lz_array *z = lz_zeros(1, &two, LZ_F32);
    lz_error_clear();
    assert_int_equal(lz_module_add_param(m, "head", z), -1);
    assert_non_null(strstr(lz_error(), "the name \"head\" is taken (by a child)"));
    assert_int_equal(lz_module_add_param(m, "a.b", z), -1);
    assert_non_null(strstr(lz_error(), "parameter name \"a.b\" must be non-empty and have no '.'"));
    assert_int_equal(lz_module_add_param(m, "", z), -1);
    assert_int_equal(lz_module_add_child(m, "steps", lz_nn_relu()), -1);
    assert_non_null(strstr(lz_error(), "the name \"steps\" is taken (by a parameter or buffer)"));
    int64_t ix = 2;
    lz_array *iz = lz_zeros(1, &ix, LZ_I32);
    assert_int_equal(lz_module_add_param(m, "ints", iz), -1);
    assert_non_null(strstr(lz_error(), "parameter \"ints\" is int32[2]: parameters are float arrays"));
    /* a child that already has a parent is refused (not freed) */
    assert_int_equal(lz_module_add_child(m, "again", l0), -1);
    assert_non_null(strstr(lz_error(), "already belongs to a parent"));
    lz_release(iz);
    lz_release(z);
    /* freeing a child detaches it */
    assert_int_equal(lz_module_add_child(m, "extra", lz_nn_relu()), 0);
    lz_module_free(lz_module_child(m, "extra"));
    assert_int_equal(lz_module_num_children(m), 2);

    char *s = lz_module_summary(m);
    assert_non_null(s);
    assert_non_null(strstr(s, "net() steps (buffer) int64[1]\n"));
    assert_non_null(strstr(s, "  body: sequential(3 layers)\n"));
    assert_non_null(strstr(s, "    0: linear(in=4, out=8, bias) weight float32[8,4] bias float32[8]\n"));
    assert_non_null(strstr(s, "    1: relu()\n"));
    assert_non_null(strstr(s, "parameters: 131 (131 trainable)\n"));
    free(s);
    lz_module_free(m);
}

static void test_set_param_and_replace(void **state) {
    (void)state;
    lz_module *m = net_new();
    int64_t ws[2] = {3, 8}, xs[2] = {2, 4};
    double wv[24];
    for (int i = 0; i < 24; i++) wv[i] = 0;
    lz_array *w0 = nt_array(2, ws, wv);
    assert_int_equal(lz_module_set_param(m, "head.weight", w0), 0);
    assert_ptr_equal(lz_module_param(m, "head.weight"), w0);
    /* the head now ignores its input: output = bias */
    lz_array *x = lz_ones(2, xs, LZ_F32), *y = lz_module_forward(m, x, NULL);
    double *b = nt_param(m, "head.bias"), ref[6];
    for (int i = 0; i < 6; i++) ref[i] = b[i % 3];
    t_assert_close(y, ref, 6, 0, 1e-7);
    lz_release(y);
    free(b);
    int64_t bad[2] = {8, 3};
    lz_array *wb = lz_zeros(2, bad, LZ_F32), *wi = lz_zeros(2, ws, LZ_I32);
    lz_error_clear();
    assert_int_equal(lz_module_set_param(m, "head.weight", wb), -1);
    assert_non_null(strstr(lz_error(), "linear 'head': new value of \"weight\" is float32[8,3] but the current value is float32[3,8]"));
    assert_int_equal(lz_module_set_param(m, "head.weight", wi), -1);
    assert_int_equal(lz_module_set_param(m, "head.wait", w0), -1);
    assert_non_null(strstr(lz_error(), "did you mean \"head.weight\""));

    /* through a collected slot */
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_PARAMS, &l), 0);
    assert_int_equal(lz_param_set(&l.items[3], wb), -1);
    assert_non_null(strstr(lz_error(), "new value of \"head.weight\" is float32[8,3]"));
    lz_array *w1 = lz_ones(2, ws, LZ_F32);
    assert_int_equal(lz_param_set(&l.items[3], w1), 0);
    assert_ptr_equal(lz_module_param(m, "head.weight"), w1);
    assert_ptr_equal(*l.items[3].slot, w1);
    lz_named_list_free(&l);
    lz_release(w1);

    /* a new head: different output size, the old one freed, mode inherited */
    lz_module_train(m, false);
    lz_module *head = lz_nn_linear(8, 5, true, lz_key_new(9));
    assert_true(lz_module_is_training(head));
    assert_int_equal(lz_module_replace(m, "head", head), 0);
    assert_false(lz_module_is_training(head));
    assert_string_equal(lz_module_name(head), "head");
    y = lz_module_forward(m, x, NULL);
    assert_int_equal(lz_dim(y, 1), 5);
    lz_release(y);
    assert_int_equal(lz_module_replace(m, "body.2", lz_nn_linear(8, 8, true, lz_key_new(1))), 0);
    assert_non_null(lz_module_param(m, "body.2.bias"));
    assert_int_equal(lz_module_replace(m, "hed", lz_nn_relu()), -1);
    assert_non_null(strstr(lz_error(), "no module named \"hed\" (did you mean \"head\"?)"));
    lz_release(w0);
    lz_release(wb);
    lz_release(wi);
    lz_release(x);
    lz_module_free(m);
}

static void test_patterns_and_freezing(void **state) {
    (void)state;
    assert_true(lz_name_match("*.bias", "blocks.3.attn.qkv.bias"));
    assert_true(lz_name_match("blocks.*.attn.*", "blocks.3.attn.qkv.weight"));
    assert_true(lz_name_match("blocks.3", "blocks.3.attn.qkv.weight"));   /* a module path */
    assert_false(lz_name_match("blocks.3", "blocks.31.attn.qkv.weight"));
    assert_false(lz_name_match("blocks.?", "blocks.31.weight"));
    assert_true(lz_name_match("blocks.??.weight", "blocks.31.weight"));
    assert_true(lz_name_match("*", "x"));
    assert_false(lz_name_match("head.weight", "head.weights"));
    assert_true(lz_name_match("*attn*", "blocks.0.attn.out.bias"));

    lz_module *m = net_new();
    assert_int_equal(lz_module_freeze(m, "*.bias"), 2);
    assert_true(lz_module_is_frozen(m, "head.bias"));
    assert_false(lz_module_is_frozen(m, "head.weight"));
    assert_int_equal(lz_module_num_params(m, true), 131 - 11);
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[2].name, "head.weight");
    lz_named_list_free(&l);
    assert_int_equal(lz_module_freeze(m, "body"), 3);
    assert_int_equal(lz_module_unfreeze(m, "body.0"), 2);
    assert_int_equal(lz_module_num_params(m, true), 32 + 8 + 24);
    assert_int_equal(lz_module_freeze(m, "blocks.*"), -1);
    assert_non_null(strstr(lz_error(), "net '(root)': freeze: no parameter matches \"blocks.*\" (of 5 parameters)"));
    lz_error_clear();
    assert_false(lz_module_is_frozen(m, "steps"));
    assert_non_null(strstr(lz_error(), "no parameter named \"steps\""));
    char *s = lz_module_summary(m);
    assert_non_null(strstr(s, "bias (frozen) float32[3]"));
    free(s);
    /* frozen everything: a clear error, not an empty step */
    assert_int_equal(lz_module_freeze(m, "*"), 5);
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), -1);
    assert_non_null(strstr(lz_error(), "net '(root)': every parameter is frozen (5 parameters)"));
    lz_named_list empty = {0};
    assert_int_equal(lz_module_value_and_grad(m, &empty, NULL, NULL, NULL, 0, NULL), -1);
    assert_non_null(strstr(lz_error(), "no parameters to differentiate"));
    assert_int_equal(lz_module_unfreeze(m, "*"), 5);
    assert_int_equal(lz_module_num_params(m, true), 131);
    lz_module_free(m);
}

/* errors raised by ops inside a forward are prefixed with the innermost module's path */
static lz_array *bad_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)m; (void)key;
    int64_t s[1] = {7};
    return lz_add(x, lz_zeros(1, s, LZ_F32));
}

static const lz_module_kind bad_kind = {"bad", bad_forward, NULL, NULL};

static void test_error_paths(void **state) {
    (void)state;
    lz_module *inner = lz_nn_sequential(2, (lz_module *[]){lz_nn_relu(), lz_module_new(&bad_kind, NULL)});
    lz_module *outer = lz_nn_sequential(1, (lz_module *[]){inner});
    int64_t s[2] = {2, 3};
    lz_array *x = lz_ones(2, s, LZ_F32);
    lz_error_clear();
    assert_null(lz_module_forward(outer, x, NULL));
    /* prefixed once, by the innermost module, with the full path */
    assert_non_null(strstr(lz_error(), "bad '0.1': "));
    assert_null(strstr(lz_error(), "sequential"));
    assert_non_null(strstr(lz_error(), "float32[2,3]"));
    t_assert_error(lz_module_forward(outer, NULL, NULL), "sequential '(root)': input is NULL");
    lz_release(x);
    lz_module_free(outer);
    t_assert_error(lz_module_new(NULL, NULL), "a kind needs a name and a forward function");
}

/* ---- gradients through a module ---- */

typedef struct { lz_array *x, *t; } batch;

static int mse_fn(void *ctx, lz_module *m, lz_array **out) {
    batch *b = ctx;
    out[0] = lz_mse_loss(lz_module_forward(m, b->x, NULL), b->t, LZ_REDUCE_MEAN);
    out[1] = lz_sum(lz_module_forward(m, b->x, NULL), NULL, 0, 0);   /* an auxiliary output */
    return out[0] ? 2 : -1;
}

static void test_value_and_grad(void **state) {
    (void)state;
    uint64_t seed = 5;
    lz_module *m = lz_nn_linear(3, 2, true, lz_key_new(1));
    int64_t xs[2] = {4, 3}, ts[2] = {4, 2};
    tarr x = t_rand(2, xs, LZ_F32, -1, 1, &seed, T_CONTIG), t = t_rand(2, ts, LZ_F32, -1, 1, &seed, T_STRIDED);
    double *w = nt_param(m, "weight"), *b = nt_param(m, "bias"), y[8], gw[6] = {0}, gb[2] = {0}, loss = 0;
    nt_linear(x.v, 4, 3, w, b, 2, y);
    for (int r = 0; r < 4; r++)
        for (int o = 0; o < 2; o++) {
            double d = y[r * 2 + o] - t.v[r * 2 + o];
            loss += d * d / 8;
            gb[o] += 2 * d / 8;
            for (int i = 0; i < 3; i++) gw[o * 3 + i] += 2 * d / 8 * x.v[r * 3 + i];
        }
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), 0);
    lz_array *outs[2], *g[2];
    batch bt = {x.a, t.a};
    lz_array *before = lz_module_param(m, "weight");
    assert_int_equal(lz_module_value_and_grad(m, &l, mse_fn, &bt, outs, 2, g), 2);
    /* the parameters are back in place */
    assert_ptr_equal(lz_module_param(m, "weight"), before);
    t_assert_close(outs[0], &loss, 1, 1e-5, 1e-6);
    t_assert_close(g[0], gw, 6, 1e-5, 1e-6);
    t_assert_close(g[1], gb, 2, 1e-5, 1e-6);
    for (int i = 0; i < 2; i++) { lz_release(outs[i]); lz_release(g[i]); }
    /* only the trainable ones: freeze the bias */
    lz_named_list_free(&l);
    lz_module_freeze(m, "bias");
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(lz_module_value_and_grad(m, &l, mse_fn, &bt, outs, 1, g), 2);
    t_assert_close(g[0], gw, 6, 1e-5, 1e-6);
    lz_release(outs[0]);
    lz_release(g[0]);
    lz_named_list_free(&l);
    free(w); free(b);
    t_free(&x);
    t_free(&t);
    lz_module_free(m);
}

/* A training step with batch norm: the running statistics are pending after the forward
 * inside value_and_grad and are evaluated with the step by lz_module_eval. */
static int bn_fn(void *ctx, lz_module *m, lz_array **out) {
    batch *b = ctx;
    out[0] = lz_mean(lz_square(lz_module_forward(m, b->x, NULL)), NULL, 0, 0);
    return 1;
}

static void test_batch_norm_step(void **state) {
    (void)state;
    uint64_t seed = 6;
    lz_module *m = lz_nn_sequential(2, (lz_module *[]){lz_nn_linear(3, 4, true, lz_key_new(1)),
                                                       lz_nn_batch_norm1d(4, 1e-5, 0.5, true)});
    nt_randomize(m, -1, 1, 77);
    int64_t xs[2] = {6, 3};
    tarr x = t_rand(2, xs, LZ_F32, -1, 1, &seed, T_CONTIG);
    double *w = nt_param(m, "0.weight"), *b = nt_param(m, "0.bias"), h[24], mean[4] = {0}, var[4] = {0};
    nt_linear(x.v, 6, 3, w, b, 4, h);
    for (int r = 0; r < 6; r++) for (int c = 0; c < 4; c++) mean[c] += h[r * 4 + c] / 6;
    for (int r = 0; r < 6; r++) for (int c = 0; c < 4; c++) var[c] += pow(h[r * 4 + c] - mean[c], 2) / 5;
    lz_named_list l;
    assert_int_equal(lz_module_collect(m, LZ_TRAINABLE, &l), 0);
    assert_int_equal(l.n, 4);
    lz_array *loss, *g[4];
    batch bt = {x.a, NULL};
    assert_int_equal(lz_module_value_and_grad(m, &l, bn_fn, &bt, &loss, 1, g), 1);
    assert_false(lz_is_evaluated(lz_module_param(m, "1.running_mean")));
    /* a plain SGD step on the collected slots, then one eval of everything */
    lz_pool_push();
    for (int i = 0; i < 4; i++)
        assert_int_equal(lz_param_set(&l.items[i], lz_sub(*l.items[i].slot, lz_mul_scalar(g[i], 0.1))), 0);
    lz_pool_pop();
    assert_int_equal(lz_module_eval(m, 1, &loss), 0);
    assert_true(lz_is_evaluated(lz_module_param(m, "1.running_var")));
    assert_true(lz_is_evaluated(lz_module_param(m, "0.weight")));
    double rm[4], rv[4];
    for (int c = 0; c < 4; c++) { rm[c] = 0.5 * mean[c]; rv[c] = 0.5 + 0.5 * var[c]; }
    t_assert_close(lz_module_param(m, "1.running_mean"), rm, 4, 1e-5, 1e-6);
    t_assert_close(lz_module_param(m, "1.running_var"), rv, 4, 1e-5, 1e-6);
    /* gradient of the linear bias through batch norm is zero (the mean is subtracted) */
    double zero[4] = {0};
    t_assert_close(g[1], zero, 4, 0, 1e-5);
    for (int i = 0; i < 4; i++) lz_release(g[i]);
    lz_release(loss);
    lz_named_list_free(&l);
    free(w); free(b);
    t_free(&x);
    lz_module_free(m);
}


/* ---- loading named arrays (checkpoints, pretrained weights) ---- */
static void test_load(void **state) {
    (void)state;
    lz_module *a = net_new(), *b = net_new();
    nt_randomize(a, -1, 1, 123);
    lz_named_list l;
    assert_int_equal(lz_module_collect(a, LZ_PARAMS | LZ_BUFFERS, &l), 0);
    const char *names[8];
    lz_array *arrays[8];
    for (int i = 0; i < l.n; i++) { names[i] = l.items[i].name; arrays[i] = *l.items[i].slot; }
    char *report = (char *)1;
    assert_int_equal(lz_module_load(b, l.n, names, arrays, true, &report), 6);
    assert_null(report);
    int64_t xs[2] = {3, 4};
    lz_array *x = lz_ones(2, xs, LZ_F32), *ya = lz_module_forward(a, x, NULL), *yb = lz_module_forward(b, x, NULL);
    double *va = nt_vals(ya);
    t_assert_close(yb, va, 9, 0, 0);
    free(va);
    lz_release(ya);
    lz_release(yb);

    /* fine-tuning: a new head of another size keeps its own values, the rest loads */
    lz_module *c = net_new();
    assert_int_equal(lz_module_replace(c, "head", lz_nn_linear(8, 5, true, lz_key_new(4))), 0);
    lz_array *head_before = lz_module_param(c, "head.weight");
    lz_error_clear();
    assert_int_equal(lz_module_load(c, l.n, names, arrays, true, &report), -1);
    assert_non_null(strstr(lz_error(), "net '(root)': load: 0 unexpected, 0 missing, 2 mismatched entries; nothing loaded (first: mismatch: head.weight is float32[5,8] in the model but float32[3,8] given)"));
    assert_non_null(strstr(report, "mismatch: head.bias is float32[5] in the model but float32[3] given\n"));
    free(report);
    assert_ptr_equal(lz_module_param(c, "head.weight"), head_before);
    assert_int_equal(lz_module_load(c, l.n, names, arrays, false, &report), 4);
    assert_ptr_equal(lz_module_param(c, "head.weight"), head_before);
    assert_ptr_equal(lz_module_param(c, "body.0.weight"), arrays[1]);
    free(report);

    /* unexpected and missing names */
    const char *odd[2] = {"body.0.weight", "body.9.weight"};
    lz_array *oa[2] = {arrays[1], arrays[1]};
    assert_int_equal(lz_module_load(b, 2, odd, oa, false, &report), 1);
    assert_non_null(strstr(report, "unexpected: body.9.weight float32[8,4] (the model has no such entry)\n"));
    assert_non_null(strstr(report, "missing: head.bias float32[3] (not given; keeps its value)\n"));
    assert_null(strstr(report, "missing: body.0.weight"));
    free(report);
    /* a float16 copy converts; an integer array for a float parameter does not fit */
    lz_array *h = lz_astype(arrays[1], LZ_F16), *iv = lz_astype(arrays[1], LZ_I32);
    assert_int_equal(lz_module_load(b, 1, odd, &h, false, NULL), 1);
    assert_int_equal(lz_dtype_of(lz_module_param(b, "body.0.weight")), LZ_F32);
    assert_int_equal(lz_module_load(b, 1, odd, &iv, false, &report), 0);
    assert_non_null(strstr(report, "mismatch: body.0.weight is float32[8,4] in the model but int32[8,4] given"));
    free(report);
    lz_release(h);
    lz_release(iv);
    lz_release(x);
    lz_named_list_free(&l);
    lz_module_free(a);
    lz_module_free(b);
    lz_module_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_lookup),
        cmocka_unit_test(test_set_param_and_replace),
        cmocka_unit_test(test_patterns_and_freezing),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_value_and_grad),
        cmocka_unit_test(test_batch_norm_step),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
