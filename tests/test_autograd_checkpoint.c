/* Gradient checkpointing (lz_checkpoint): gradients through checkpointed transformer-like
 * blocks equal the plain ones; a finite-difference check of a checkpointed block; gradients
 * of gradients; blocks with several outputs, nested checkpoints, integer inputs; how many
 * times a block runs; use outside any transform; errors. Memory and FLOPs:
 * test_autograd_memory.c. */
#include "gradcheck.h"
#include "autograd_blocks.h"

/* ---- gradients as plain numbers ---- */
typedef struct {
    int n;
    double value;
    float *g[64];
    int64_t size[64];
} result;

/* value and gradients of fn at in (all inputs), evaluated. */
static void eval_grads(lz_fn fn, void *ctx, int n, lz_array *const *in, result *r) {
    assert_true(n <= 64);
    lz_array *out, *g[64];
    lz_pool_push();
    assert_int_equal(lz_value_and_grad(fn, ctx, n, in, NULL, &out, 1, g), 1);
    r->n = n;
    r->value = lz_item(out);
    for (int i = 0; i < n; i++) {
        r->size[i] = lz_size(g[i]);
        r->g[i] = malloc((size_t)(r->size[i] ? r->size[i] : 1) * sizeof(float));
        assert_int_equal(lz_to_float(g[i], r->g[i], r->size[i]), 0);
    }
    lz_pool_pop();
}

static void result_free(result *r) {
    for (int i = 0; i < r->n; i++) free(r->g[i]);
}

/* Same values to float rounding: the recomputation runs the same ops on the same values. */
static void assert_same(const result *a, const result *b) {
    assert_int_equal(a->n, b->n);
    if (fabs(a->value - b->value) > 1e-6 * fabs(b->value))
        fail_msg("values differ: %.9g vs %.9g", a->value, b->value);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->size[i], b->size[i]);
        double scale = 0;
        for (int64_t e = 0; e < a->size[i]; e++) scale = fmax(scale, fabs(b->g[i][e]));
        for (int64_t e = 0; e < a->size[i]; e++)
            if (fabs(a->g[i][e] - b->g[i][e]) > 1e-5 * scale + 1e-5 * fabs(b->g[i][e]))
                fail_msg("gradient %d element %lld: %.9g with checkpointing, %.9g without", i,
                         (long long)e, a->g[i][e], b->g[i][e]);
    }
}

/* ---- transformer-like stacks ---- */
static void check_stack(tb_model m) {
    int n = 1 + TB_NPARAM * m.L;
    lz_array *in[64];
    tb_inputs(&m, 11, in);
    result on, off;
    m.ckpt = 1;
    m.calls = 0;
    eval_grads(tb_loss, &m, n, in, &on);
    assert_int_equal(m.calls, 2 * m.L);   /* forward, then once more in the backward */
    m.ckpt = 0;
    m.calls = 0;
    eval_grads(tb_loss, &m, n, in, &off);
    assert_int_equal(m.calls, m.L);
    assert_same(&on, &off);
    result_free(&on);
    result_free(&off);
    for (int i = 0; i < n; i++) lz_release(in[i]);
}

static void test_stack_gradients_equal(void **state) {
    (void)state;
    check_stack((tb_model){.B = 2, .T = 5, .D = 8, .H = 2, .L = 3});
    check_stack((tb_model){.B = 1, .T = 7, .D = 12, .H = 3, .L = 1});
    check_stack((tb_model){.B = 3, .T = 1, .D = 4, .H = 1, .L = 2});
}

/* Finite differences through a checkpointed block (its recomputation, not the plain rules,
 * gives the gradient). */
static void test_stack_gradcheck(void **state) {
    (void)state;
    tb_model m = {.B = 1, .T = 3, .D = 4, .H = 2, .L = 2, .ckpt = 1};
    lz_array *in[1 + 2 * TB_NPARAM];
    tb_inputs(&m, 5, in);
    gc_check("checkpointed stack", tb_loss, &m, 1 + 2 * TB_NPARAM, in, &(gc_opts){.max_elems = 16});
    for (int i = 0; i < 1 + 2 * TB_NPARAM; i++) lz_release(in[i]);
}

/* ---- gradients of gradients ---- */
static int cube_block(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_mul(lz_mul(lz_mul(x[0], x[0]), x[0]), x[1]);   /* x^3 w */
    return 1;
}

static int cube_sum(void *ctx, int n, lz_array *const *x, lz_array **out) {
    lz_array *y;
    if (ctx ? lz_checkpoint(cube_block, NULL, n, x, &y) != 1 : cube_block(NULL, n, x, &y) != 1)
        return -1;
    out[0] = lz_sum(y, NULL, 0, 0);
    return 1;
}

typedef struct { lz_fn f; void *ctx; } inner;

/* sum of the gradient w.r.t. x of the inner function */
static int sum_grad_x(void *ctx, int n, lz_array *const *x, lz_array **out) {
    inner *in = ctx;
    lz_array *g[2];
    if (lz_grad(in->f, in->ctx, n, x, (bool[]){true, false}, g)) return -1;
    out[0] = lz_sum(g[0], NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static void test_grad_of_grad(void **state) {
    (void)state;
    double xv[5] = {-1.5, -0.5, 0.25, 1, 2}, wv[5] = {0.5, -1, 2, 1.5, -0.25}, ex[5], ew[5];
    lz_array *x[2] = {gc_layout(xv, 1, (int64_t[]){5}, T_STRIDED),
                      gc_layout(wv, 1, (int64_t[]){5}, T_CONTIG)};
    inner first = {cube_sum, (void *)1};
    lz_array *g[2];
    lz_pool_push();
    /* d/dx sum(3 x^2 w) = 6 x w, d/dw = 3 x^2 */
    assert_int_equal(lz_grad(sum_grad_x, &first, 2, x, NULL, g), 0);
    for (int i = 0; i < 5; i++) { ex[i] = 6 * xv[i] * wv[i]; ew[i] = 3 * xv[i] * xv[i]; }
    t_assert_close(g[0], ex, 5, 1e-6, 1e-6);
    t_assert_close(g[1], ew, 5, 1e-6, 1e-6);
    /* third order: d/dx sum(6 x w) = 6 w */
    inner second = {sum_grad_x, &first};
    assert_int_equal(lz_grad(sum_grad_x, &second, 2, x, NULL, g), 0);
    for (int i = 0; i < 5; i++) ex[i] = 6 * wv[i];
    t_assert_close(g[0], ex, 5, 1e-6, 1e-6);
    lz_pool_pop();
    lz_release(x[0]);
    lz_release(x[1]);
}

/* Hessian-vector products of the stack: <grad loss, v> differentiated again. */
typedef struct { tb_model *m; lz_array *const *v; } hvp_ctx;

static int grad_dot_v(void *ctx, int n, lz_array *const *in, lz_array **out) {
    hvp_ctx *h = ctx;
    lz_array *g[1 + 2 * TB_NPARAM];
    if (lz_grad(tb_loss, h->m, n, in, NULL, g)) return -1;
    lz_array *s = lz_scalar(0, LZ_F32);
    for (int i = 0; i < n; i++) s = lz_add(s, lz_sum(lz_mul(g[i], h->v[i]), NULL, 0, 0));
    out[0] = s;
    return s ? 1 : -1;
}

static void test_stack_hvp(void **state) {
    (void)state;
    tb_model m = {.B = 2, .T = 3, .D = 4, .H = 2, .L = 2};
    int n = 1 + 2 * TB_NPARAM;
    lz_array *in[1 + 2 * TB_NPARAM], *v[1 + 2 * TB_NPARAM];
    tb_inputs(&m, 21, in);
    tb_inputs(&m, 22, v);
    hvp_ctx h = {&m, v};
    result on, off;
    m.ckpt = 1;
    eval_grads(grad_dot_v, &h, n, in, &on);
    m.ckpt = 0;
    eval_grads(grad_dot_v, &h, n, in, &off);
    assert_same(&on, &off);
    result_free(&on);
    result_free(&off);
    for (int i = 0; i < n; i++) { lz_release(in[i]); lz_release(v[i]); }
}

/* ---- several outputs, nesting, integer inputs ---- */
/* two outputs of different shapes: tanh(x @ w) [3, 2] and rowwise sum of x^2 * s [3] */
static int two_out(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    (*(int *)ctx)++;
    out[0] = lz_tanh(lz_matmul(x[0], x[1]));
    int last = -1;
    out[1] = lz_mul(lz_sum(lz_square(x[0]), &last, 1, 0), x[2]);
    return 2;
}

typedef struct { int ckpt, use, calls; } two_ctx;

/* use: 1 = first output only, 2 = second only, 3 = both (the first also feeds the second's
 * consumer, so the outputs' cotangents come from several places) */
static int two_loss(void *ctx, int n, lz_array *const *x, lz_array **out) {
    two_ctx *c = ctx;
    lz_array *y[2];
    int k = c->ckpt ? lz_checkpoint(two_out, &c->calls, n, x, y) : two_out(&c->calls, n, x, y);
    if (k != 2) return -1;
    lz_array *a = lz_sum(lz_square(y[0]), NULL, 0, 0);
    lz_array *b = lz_sum(lz_mul(y[1], lz_sum(y[0], (int[]){1}, 1, 0)), NULL, 0, 0);
    out[0] = c->use == 1 ? a : c->use == 2 ? lz_sum(lz_exp(y[1]), NULL, 0, 0) : lz_add(a, b);
    return 1;
}

static void test_multiple_outputs(void **state) {
    (void)state;
    lz_array *x[3] = {gc_rand(2, (int64_t[]){3, 4}, -1, 1, GC_PLAIN, T_TRANSPOSED),
                      gc_rand(2, (int64_t[]){4, 2}, -1, 1, GC_PLAIN, T_STRIDED),
                      gc_rand(0, NULL, 0.5, 1, GC_PLAIN, T_CONTIG)};
    for (int use = 1; use <= 3; use++) {
        two_ctx on = {1, use, 0}, off = {0, use, 0};
        result a, b;
        eval_grads(two_loss, &on, 3, x, &a);
        eval_grads(two_loss, &off, 3, x, &b);
        assert_same(&a, &b);
        assert_int_equal(on.calls, 2);   /* one recomputation for both outputs */
        result_free(&a);
        result_free(&b);
        gc_check("two outputs", two_loss, &on, 3, x, NULL);
    }
    for (int i = 0; i < 3; i++) lz_release(x[i]);
}

/* a block that returns one of its inputs as it is, and a value that ignores its other input */
static int passthrough(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_mul(x[0], x[0]);
    out[1] = x[0];
    return 2;
}

static int passthrough_loss(void *ctx, int n, lz_array *const *x, lz_array **out) {
    lz_array *y[2];
    if ((ctx ? lz_checkpoint(passthrough, NULL, n, x, y) : passthrough(NULL, n, x, y)) != 2)
        return -1;
    out[0] = lz_add(lz_sum(lz_exp(y[0]), NULL, 0, 0), lz_sum(lz_mul(y[1], y[1]), NULL, 0, 0));
    return 1;
}

static void test_passthrough(void **state) {
    (void)state;
    lz_array *x[2] = {gc_rand(2, (int64_t[]){2, 3}, -1, 1, GC_PLAIN, T_TRANSPOSED),
                      gc_rand(1, (int64_t[]){4}, -1, 1, GC_PLAIN, T_CONTIG)};
    result a, b;
    eval_grads(passthrough_loss, (void *)1, 2, x, &a);
    eval_grads(passthrough_loss, NULL, 2, x, &b);
    assert_same(&a, &b);
    for (int e = 0; e < 4; e++) assert_true(a.g[1][e] == 0);   /* unused input: zeros */
    result_free(&a);
    result_free(&b);
    gc_check("passthrough", passthrough_loss, (void *)1, 2, x, NULL);
    lz_release(x[0]);
    lz_release(x[1]);
}

/* a block made of two checkpointed blocks */
static int outer_block(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    tb_model *m = ctx;
    lz_array *h = in[0];
    for (int l = 0; l < 2; l++) {
        lz_array *bin[1 + TB_NPARAM] = {h};
        memcpy(bin + 1, in + 1 + TB_NPARAM * l, TB_NPARAM * sizeof *bin);
        if (lz_checkpoint(tb_block, m, 1 + TB_NPARAM, bin, &h) != 1) return -1;
    }
    out[0] = h;
    return 1;
}

static int nested_loss(void *ctx, int n, lz_array *const *in, lz_array **out) {
    tb_model *m = ctx;
    lz_array *y;
    if (m->ckpt ? lz_checkpoint(outer_block, m, n, in, &y) != 1 : tb_loss(m, n, in, &y) != 1)
        return -1;
    out[0] = m->ckpt ? lz_mean(lz_square(y), NULL, 0, 0) : y;
    return 1;
}

static void test_nested(void **state) {
    (void)state;
    tb_model m = {.B = 2, .T = 4, .D = 8, .H = 2, .L = 2};
    int n = 1 + 2 * TB_NPARAM;
    lz_array *in[1 + 2 * TB_NPARAM];
    tb_inputs(&m, 31, in);
    result on, off;
    m.ckpt = 1;
    m.calls = 0;
    eval_grads(nested_loss, &m, n, in, &on);
    /* forward 2; the outer recomputation 2 (its inner blocks are checkpointed again), whose
     * backward recomputes each inner block once: 2 */
    assert_int_equal(m.calls, 6);
    m.ckpt = 0;
    eval_grads(nested_loss, &m, n, in, &off);
    assert_same(&on, &off);
    result_free(&on);
    result_free(&off);
    for (int i = 0; i < n; i++) lz_release(in[i]);
}

/* an integer input (rows to gather) and a float input that is not differentiated */
static int gather_block(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_tanh(lz_mul(lz_take(x[0], x[1], 0), x[2]));
    return 1;
}

static int gather_loss(void *ctx, int n, lz_array *const *x, lz_array **out) {
    lz_array *y;
    if ((ctx ? lz_checkpoint(gather_block, NULL, n, x, &y) : gather_block(NULL, n, x, &y)) != 1)
        return -1;
    out[0] = lz_sum(lz_square(y), NULL, 0, 0);
    return 1;
}

static void test_integer_input(void **state) {
    (void)state;
    int64_t rows[4] = {2, 0, 2, 1};
    lz_array *x[3] = {gc_rand(2, (int64_t[]){3, 5}, -1, 1, GC_PLAIN, T_CONTIG),
                      lz_from_data(rows, 1, (int64_t[]){4}, LZ_I64),
                      gc_rand(1, (int64_t[]){5}, -1, 1, GC_PLAIN, T_STRIDED)};
    bool wrt[3] = {true, false, false};
    lz_array *g[2][3];
    lz_pool_push();
    for (int c = 0; c < 2; c++)
        assert_int_equal(lz_grad(gather_loss, (void *)(intptr_t)c, 3, x, wrt, g[c]), 0);
    float a[15], b[15];
    double e[15];
    lz_to_float(g[0][0], a, 15);
    lz_to_float(g[1][0], b, 15);
    for (int i = 0; i < 15; i++) e[i] = a[i];
    t_assert_close(g[1][0], e, 15, 1e-6, 1e-7);
    assert_true(b[5] != 0);   /* row 1 gathered once, row 2 twice */
    lz_pool_pop();
    for (int i = 0; i < 3; i++) lz_release(x[i]);
}

/* ---- outside a transform ---- */
static void test_plain_evaluation(void **state) {
    (void)state;
    tb_model m = {.B = 2, .T = 3, .D = 8, .H = 2, .L = 2};
    int n = 1 + 2 * TB_NPARAM;
    lz_array *in[1 + 2 * TB_NPARAM], *y[2];
    tb_inputs(&m, 41, in);
    lz_pool_push();
    for (int c = 0; c < 2; c++) {
        m.ckpt = c;
        m.calls = 0;
        assert_int_equal(tb_loss(&m, n, in, &y[c]), 1);
        assert_int_equal(m.calls, 2);   /* no recomputation without a transform */
    }
    double v = lz_item(y[0]);
    t_assert_close(y[1], &v, 1, 0, 0);
    lz_pool_pop();
    for (int i = 0; i < n; i++) lz_release(in[i]);
}

/* ---- errors ---- */
static int reads_ctx(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = lz_mul(x[0], (lz_array *)ctx);   /* a weight that is not an input */
    return 1;
}

static int captures(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    lz_array *w2 = lz_mul_scalar(x[1], 2), *y;
    if (lz_checkpoint(reads_ctx, w2, 1, x, &y) != 1) return -1;
    out[0] = lz_sum(y, NULL, 0, 0);
    return 1;
}

static int flaky(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    int *calls = ctx;
    out[0] = lz_exp(x[0]);
    out[1] = x[0];
    return ++*calls == 1 ? 1 : 2;   /* a different number of outputs when run again */
}

static int flaky_loss(void *ctx, int n, lz_array *const *x, lz_array **out) {
    lz_array *y[2];
    if (lz_checkpoint(flaky, ctx, n, x, y) < 0) return -1;
    out[0] = lz_sum(y[0], NULL, 0, 0);
    return 1;
}

static int failing(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = ctx ? lz_add(x[0], lz_ones(1, (int64_t[]){7}, LZ_F32)) : NULL;
    return ctx ? 1 : 0;
}

static void test_errors(void **state) {
    (void)state;
    lz_array *x[2] = {gc_rand(1, (int64_t[]){3}, -1, 1, GC_PLAIN, T_CONTIG),
                      gc_rand(1, (int64_t[]){3}, -1, 1, GC_PLAIN, T_CONTIG)};
    lz_array *g[2] = {NULL, NULL}, *y[2], *null = NULL;
    lz_pool_push();
    t_assert_error(lz_grad(captures, NULL, 2, x, NULL, g) ? NULL : x[0], "not one of the block's inputs");
    assert_null(g[0]);
    int calls = 0;
    t_assert_error(lz_grad(flaky_loss, &calls, 1, x, NULL, g) ? NULL : x[0], "returned 2 outputs when run again");
    t_assert_error(lz_checkpoint(NULL, NULL, 1, x, y) < 0 ? NULL : x[0], "block is NULL");
    t_assert_error(lz_checkpoint(cube_block, NULL, 1, &null, y) < 0 ? NULL : x[0], "input 0 is NULL");
    t_assert_error(lz_checkpoint(failing, NULL, 1, x, y) < 0 ? NULL : x[0], "returned no outputs");
    t_assert_error(lz_checkpoint(failing, (void *)1, 1, x, y) < 0 ? NULL : x[0], "cannot be broadcast");
    lz_pool_pop();
    lz_release(x[0]);
    lz_release(x[1]);
}

static int reseed(void **state) {
    (void)state;
    static uint64_t n;
    gc_seed_state = 0x853c49e6748fea9bull ^ (++n * 0x2545f4914f6cdd1dull);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_stack_gradients_equal, reseed),
        cmocka_unit_test_setup(test_stack_gradcheck, reseed),
        cmocka_unit_test_setup(test_grad_of_grad, reseed),
        cmocka_unit_test_setup(test_stack_hvp, reseed),
        cmocka_unit_test_setup(test_multiple_outputs, reseed),
        cmocka_unit_test_setup(test_passthrough, reseed),
        cmocka_unit_test_setup(test_nested, reseed),
        cmocka_unit_test_setup(test_integer_input, reseed),
        cmocka_unit_test_setup(test_plain_evaluation, reseed),
        cmocka_unit_test_setup(test_errors, reseed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
