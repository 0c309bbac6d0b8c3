/* Gradients through every layer: each layer's parameters (and its input, where it is float)
 * get gradients from autograd that agree with central finite differences (tests/gradcheck.h)
 * on a small instance; the losses likewise w.r.t. their inputs. */
/* gradcheck.h brings helpers this file does not use; gcc also misjudges t_rand's buffer
 * once inlined here */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "gradcheck.h"
#include "nn_testutil.h"

/* ---- a module as an lz_fn: inputs = [x if float] + the module's parameters ---- */
typedef struct {
    lz_module *m;
    lz_named_list l;
    lz_array *x;       /* used when it is not an input (integer indices) */
    bool with_x;
    bool use_key;
    lz_key key;
} mctx;

static long fn_calls;
static int module_fn(void *c, int n, lz_array *const *in, lz_array **out) {
    mctx *g = c;
    fn_calls++;
    int off = g->with_x ? 1 : 0;
    assert_int_equal(n, off + g->l.n);
    lz_array **saved = malloc((size_t)(g->l.n + 1) * sizeof *saved);
    for (int i = 0; i < g->l.n; i++) {
        saved[i] = *g->l.items[i].slot;
        *g->l.items[i].slot = lz_retain(in[off + i]);
    }
    out[0] = lz_module_forward(g->m, g->with_x ? in[0] : g->x, g->use_key ? &g->key : NULL);
    for (int i = 0; i < g->l.n; i++) {
        lz_release(*g->l.items[i].slot);
        *g->l.items[i].slot = saved[i];
    }
    free(saved);
    return out[0] ? 1 : -1;
}

/* Checks the gradients of m's output w.r.t. x (when float) and all of m's parameters.
 * Takes ownership of m and x. */
static void check_module(const char *name, lz_module *m, lz_array *x, const lz_key *key,
                         const gc_opts *o) {
    assert_non_null(m);
    assert_non_null(x);
    mctx c = {.m = m, .x = x, .with_x = lz_dtype_is_float(lz_dtype_of(x)), .use_key = key != NULL};
    if (key) c.key = *key;
    assert_int_equal(lz_module_collect(m, LZ_PARAMS, &c.l), 0);
    int n = (c.with_x ? 1 : 0) + c.l.n;
    lz_array **in = malloc((size_t)n * sizeof *in);
    int k = 0;
    if (c.with_x) in[k++] = x;
    for (int i = 0; i < c.l.n; i++) in[k++] = *c.l.items[i].slot;
    gc_check(name, module_fn, &c, n, in, o);
    free(in);
    lz_named_list_free(&c.l);
    lz_module_free(m);
    lz_release(x);
}

/* a random float input of the given shape, kept away from kinks when kink != 0 */
static lz_array *rin(int nd, const int64_t *s, int kind, int layout) {
    return gc_rand(nd, s, -1.5, 1.5, kind, layout);
}

static void reseed(void **state) {
    (void)state;
    gc_seed_state = 0x12345678abcdefull;
}

static void test_grad_linear_conv(void **state) {
    reseed(state);
    int64_t xs[2] = {3, 4};
    check_module("linear", lz_nn_linear(4, 3, true, lz_key_new(1)), rin(2, xs, GC_PLAIN, T_TRANSPOSED), NULL, NULL);
    check_module("linear (no bias)", lz_nn_linear(4, 2, false, lz_key_new(2)), rin(2, xs, GC_PLAIN, T_STRIDED), NULL, NULL);
    int64_t x1[3] = {2, 4, 7};
    check_module("conv1d", lz_nn_conv1d(4, 4, 3, 2, 1, 2, 2, true, lz_key_new(3)), rin(3, x1, GC_PLAIN, T_CONTIG), NULL, NULL);
    int64_t x2[4] = {2, 2, 5, 4};
    int k[2] = {3, 2}, st[2] = {1, 2}, p[2] = {1, 0}, d[2] = {1, 1};
    check_module("conv2d", lz_nn_conv2d(2, 3, k, st, p, d, 1, true, lz_key_new(4)), rin(4, x2, GC_PLAIN, T_STRIDED), NULL, NULL);
    int64_t ix[4] = {1, 3, 3, 0}, is[2] = {2, 2};
    lz_array *idx = lz_from_data(ix, 2, is, LZ_I64);
    check_module("embedding", lz_nn_embedding(5, 3, lz_key_new(5)), idx, NULL, NULL);
}

static void test_grad_pools_activations(void **state) {
    reseed(state);
    int64_t x2[4] = {1, 2, 5, 4};
    int k[2] = {2, 2}, k3[2] = {3, 3}, st[2] = {1, 1}, p[2] = {1, 1};
    /* distinct values 0.1 apart: no ties inside a max window within the step */
    check_module("max_pool2d", lz_nn_max_pool2d(k3, st, p), gc_rand(4, x2, -2, 2, GC_DISTINCT, T_CONTIG), NULL, NULL);
    check_module("avg_pool2d", lz_nn_avg_pool2d(k, NULL, NULL), rin(4, x2, GC_PLAIN, T_TRANSPOSED), NULL, NULL);
    check_module("adaptive_avg_pool2d", lz_nn_adaptive_avg_pool2d(3, 3), rin(4, x2, GC_PLAIN, T_CONTIG), NULL, NULL);
    int64_t xs[2] = {3, 5};
    check_module("leaky_relu", lz_nn_leaky_relu(0.1), rin(2, xs, GC_KINK, T_CONTIG), NULL, NULL);
    check_module("relu", lz_nn_relu(), rin(2, xs, GC_KINK, T_STRIDED), NULL, NULL);
    check_module("gelu", lz_nn_gelu(false), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("gelu_tanh", lz_nn_gelu(true), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("silu", lz_nn_silu(), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("tanh", lz_nn_tanh(), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("sigmoid", lz_nn_sigmoid(), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("softmax", lz_nn_softmax(-1), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
    check_module("log_softmax", lz_nn_log_softmax(0), rin(2, xs, GC_PLAIN, T_TRANSPOSED), NULL, NULL);
    lz_key key = lz_key_new(9);
    check_module("dropout", lz_nn_dropout(0.3), rin(2, xs, GC_PLAIN, T_CONTIG), &key, NULL);
    int64_t x4[4] = {2, 3, 2, 2};
    check_module("flatten", lz_nn_flatten(1, -1), rin(4, x4, GC_PLAIN, T_STRIDED), NULL, NULL);
    check_module("sequential", lz_nn_sequential(3, (lz_module *[]){lz_nn_linear(5, 4, true, lz_key_new(1)),
                 lz_nn_tanh(), lz_nn_linear(4, 2, true, lz_key_new(2))}), rin(2, xs, GC_PLAIN, T_CONTIG), NULL, NULL);
}

static void test_grad_norms(void **state) {
    reseed(state);
    int64_t x1[3] = {4, 3, 2}, x2[4] = {3, 2, 2, 3}, xl[3] = {2, 3, 6};
    lz_module *b1 = lz_nn_batch_norm1d(3, 1e-5, 0.1, true);
    nt_randomize(b1, 0.5, 1.5, 3);
    check_module("batch_norm1d (training)", b1, rin(3, x1, GC_PLAIN, T_CONTIG), NULL, NULL);
    lz_module *b2 = lz_nn_batch_norm2d(2, 1e-5, 0.1, true);
    nt_randomize(b2, 0.5, 1.5, 4);
    check_module("batch_norm2d (training)", b2, rin(4, x2, GC_PLAIN, T_TRANSPOSED), NULL, NULL);
    lz_module *b3 = lz_nn_batch_norm2d(2, 1e-5, 0.1, true);
    nt_randomize(b3, 0.5, 1.5, 5);
    lz_module_train(b3, false);
    check_module("batch_norm2d (evaluation)", b3, rin(4, x2, GC_PLAIN, T_CONTIG), NULL, NULL);
    lz_module *ln = lz_nn_layer_norm(6, 1e-5, true, true);
    nt_randomize(ln, 0.5, 1.5, 6);
    check_module("layer_norm", ln, rin(3, xl, GC_PLAIN, T_STRIDED), NULL, NULL);
    lz_module *rn = lz_nn_rms_norm(6, 1e-6, true);
    nt_randomize(rn, 0.5, 1.5, 7);
    check_module("rms_norm", rn, rin(3, xl, GC_PLAIN, T_CONTIG), NULL, NULL);
    lz_module *gn = lz_nn_group_norm(2, 4, 1e-5, true);
    nt_randomize(gn, 0.5, 1.5, 8);
    int64_t xg[3] = {2, 4, 3};
    check_module("group_norm", gn, rin(3, xg, GC_PLAIN, T_TRANSPOSED), NULL, NULL);
}

static void test_grad_attention(void **state) {
    reseed(state);
    int64_t xs[3] = {2, 4, 8};
    gc_opts o = {.max_elems = 24};
    for (int v = 0; v < 3; v++) {
        lz_attention_opts ao = {.bias = v != 1, .fused_qkv = v != 2, .causal = v != 0, .rope = v == 1};
        lz_module *m = lz_nn_attention(8, 2, &ao, lz_key_new(v));
        nt_randomize(m, -0.6, 0.6, 10 + v);
        check_module(v == 0 ? "attention" : v == 1 ? "attention (causal, rope)" : "attention (separate qkv)",
                     m, rin(3, xs, GC_PLAIN, v == 1 ? T_TRANSPOSED : T_CONTIG), NULL, &o);
    }
    for (int v = 0; v < 2; v++) {
        lz_block_opts bo = {.norm = v ? LZ_NORM_RMS : LZ_NORM_LAYER, .mlp = v ? LZ_MLP_SWIGLU : LZ_MLP_GELU,
                            .bias = !v, .causal = true, .rope = v != 0, .d_ff = 12};
        lz_module *m = lz_nn_transformer_block(8, 2, &bo, lz_key_new(20 + v));
        nt_randomize(m, -0.5, 0.5, 30 + v);
        check_module(v ? "transformer block (rms, swiglu, rope)" : "transformer block (layer, gelu)",
                     m, rin(3, xs, GC_PLAIN, T_CONTIG), NULL, &o);
    }
}

static void test_grad_lora(void **state) {
    reseed(state);
    lz_module *m = lz_nn_sequential(1, (lz_module *[]){lz_nn_linear(5, 4, true, lz_key_new(1))});
    assert_int_equal(lz_lora_apply(m, "*", 2, 4, 0.25, lz_key_new(2)), 1);
    nt_randomize(m, -0.5, 0.5, 40);   /* lora_b is zero at first: make every path visible */
    int64_t xs[2] = {3, 5};
    lz_key key = lz_key_new(3);
    check_module("lora_linear (dropout)", m, rin(2, xs, GC_PLAIN, T_CONTIG), &key, NULL);
}

/* ---- losses w.r.t. their inputs ---- */
typedef struct { int kind; lz_array *t; } lctx;

static int loss_fn(void *c, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    lctx *l = c;
    lz_ce_opts ce = {.reduction = LZ_REDUCE_MEAN, .label_smoothing = 0.15, .ignore = true, .ignore_index = 0};
    switch (l->kind) {
    case 0: out[0] = lz_cross_entropy(in[0], l->t, &ce); break;
    case 1: ce.reduction = LZ_REDUCE_NONE; out[0] = lz_nll_loss(in[0], l->t, &ce); break;
    case 2: out[0] = lz_mse_loss(in[0], in[1], LZ_REDUCE_MEAN); break;
    case 3: out[0] = lz_l1_loss(in[0], in[1], LZ_REDUCE_SUM); break;
    case 4: out[0] = lz_smooth_l1_loss(in[0], in[1], 0.5, LZ_REDUCE_NONE); break;
    case 5: out[0] = lz_huber_loss(in[0], in[1], 0.5, LZ_REDUCE_MEAN); break;
    case 6: out[0] = lz_binary_cross_entropy_with_logits(in[0], in[1], LZ_REDUCE_MEAN); break;
    default: out[0] = lz_kl_div(lz_log_softmax(in[0], -1), lz_softmax(in[1], -1), LZ_REDUCE_BATCHMEAN, false); break;
    }
    return out[0] ? 1 : -1;
}

static void test_grad_losses(void **state) {
    reseed(state);
    int64_t xs[2] = {4, 5}, ts = 4, tv[4] = {1, 0, 4, 2};
    lz_array *t = lz_from_data(tv, 1, &ts, LZ_I64);
    static const char *names[] = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
                                  "huber_loss", "binary_cross_entropy_with_logits", "kl_div"};
    for (int k = 0; k < 8; k++) {
        lctx c = {k, t};
        lz_array *in[2];
        in[0] = gc_rand(2, xs, -2, 2, GC_PLAIN, k % 2 ? T_TRANSPOSED : T_CONTIG);
        if (k >= 2 && k <= 5) {
            /* keep |pred - target| away from 0 and from the threshold 0.5 (the kinks): pred on a
             * grid 0.25 apart offset by 0.1, the target on the grid */
            lz_release(in[0]);
            in[0] = gc_rand(2, xs, -2, 2, GC_GRID_OFF, T_CONTIG);
            in[1] = gc_rand(2, xs, -2, 2, GC_GRID, T_STRIDED);
        } else if (k == 6) {
            in[1] = gc_rand(2, xs, 0, 1, GC_PLAIN, T_CONTIG);
        } else {
            in[1] = gc_rand(2, xs, -1, 1, GC_PLAIN, T_CONTIG);
        }
        if (k == 1) {   /* nll over log-probabilities */
            lz_array *lp = lz_log_softmax(in[0], -1);
            lz_eval1(lp);
            lz_release(in[0]);
            in[0] = lp;
        }
        gc_check(names[k], loss_fn, &c, k < 2 ? 1 : 2, in, NULL);
        lz_release(in[0]);
        lz_release(in[1]);
    }
    lz_release(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_linear_conv),
        cmocka_unit_test(test_grad_pools_activations),
        cmocka_unit_test(test_grad_norms),
        cmocka_unit_test(test_grad_attention),
        cmocka_unit_test(test_grad_lora),
        cmocka_unit_test(test_grad_losses),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("gradchecks passed: %d (%ld module calls)\n", gc_checks_run, fn_calls);
    return rc;
}
