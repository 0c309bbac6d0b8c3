/* Autograd transforms: gradients of gradients (x^3, a Hessian-vector product against finite
 * differences), vjp with cotangents, stop_gradient, zero gradients for unused inputs, errors,
 * what the backward graph holds, long chains, and an MLP trained by SGD. The rules of the
 * primitives are checked one by one in test_autograd.c. */
#include "gradcheck.h"

/* ---- gradients of gradients ---- */
static int cube_sum(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    lz_array *c = *(int *)ctx ? lz_pow_scalar(x[0], 3) : lz_mul(lz_mul(x[0], x[0]), x[0]);
    out[0] = lz_sum(c, NULL, 0, 0);
    return out[0] ? 1 : -1;
}

typedef struct { lz_fn f; void *ctx; } inner;

/* sum(grad f(x)): differentiating it again gives the diagonal of f's Hessian for separable f. */
static int sum_of_grad(void *ctx, int n, lz_array *const *x, lz_array **out) {
    inner *in = ctx;
    lz_array *g;
    if (lz_grad(in->f, in->ctx, n, x, NULL, &g)) return -1;
    out[0] = lz_sum(g, NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static void test_grad_of_grad(void **state) {
    (void)state;
    double v[5] = {-1.5, -0.5, 0.25, 1, 2};
    lz_array *x = gc_layout(v, 1, (int64_t[]){5}, T_STRIDED);
    for (int use_pow = 0; use_pow < 2; use_pow++) {
        inner first = {cube_sum, &use_pow};
        inner second = {sum_of_grad, &first};
        lz_array *g2, *g3;
        lz_pool_push();
        assert_int_equal(lz_grad(sum_of_grad, &first, 1, &x, NULL, &g2), 0);   /* 6x */
        assert_int_equal(lz_grad(sum_of_grad, &second, 1, &x, NULL, &g3), 0);  /* 6 */
        double e2[5], e3[5];
        for (int i = 0; i < 5; i++) { e2[i] = 6 * v[i]; e3[i] = 6; }
        t_assert_close(g2, e2, 5, 1e-6, 1e-6);
        t_assert_close(g3, e3, 5, 1e-6, 1e-6);
        lz_pool_pop();
    }
    lz_release(x);
}

/* A small MLP: loss(W1, b1, W2; X, y). */
typedef struct { lz_array *X, *y; } batch;

static lz_array *linear(lz_array *x, lz_array *w, lz_array *b) {   /* x [B, I], w [O, I] */
    lz_array *y = lz_matmul(x, lz_transpose(w));
    return b ? lz_add(y, b) : y;
}

static int mlp_loss(void *ctx, int n, lz_array *const *p, lz_array **out) {
    (void)n;
    batch *d = ctx;
    lz_array *h = lz_tanh(linear(d->X, p[0], p[1]));
    lz_array *f = lz_squeeze(linear(h, p[2], NULL), 1);             /* [B] */
    out[0] = lz_mean(lz_softplus(lz_neg(lz_mul(f, d->y))), NULL, 0, 0);   /* logistic loss */
    out[1] = lz_mean(lz_astype(lz_greater(lz_mul(f, d->y), lz_scalar(0, LZ_F32)), LZ_F32),
                     NULL, 0, 0);                                    /* accuracy (aux) */
    return out[0] && out[1] ? 2 : -1;
}

typedef struct { batch *d; lz_array *const *v; } hvp_ctx;

/* <grad loss(p), v>: its gradient is the Hessian-vector product H v. */
static int grad_dot_v(void *ctx, int n, lz_array *const *p, lz_array **out) {
    hvp_ctx *h = ctx;
    lz_array *g[3];
    if (lz_grad(mlp_loss, h->d, n, p, NULL, g)) return -1;
    lz_array *s = lz_scalar(0, LZ_F32);
    for (int i = 0; i < n; i++) s = lz_add(s, lz_sum(lz_mul(g[i], h->v[i]), NULL, 0, 0));
    out[0] = s;
    return s ? 1 : -1;
}

static void make_problem(batch *d, lz_array **p, int B, int H) {
    int64_t sx[2] = {B, 2}, sw1[2] = {H, 2}, sb1[1] = {H}, sw2[2] = {1, H};
    double *xv = malloc((size_t)B * 2 * sizeof *xv), *yv = malloc((size_t)B * sizeof *yv);
    for (int i = 0; i < B; i++) {   /* two clusters around (1, 1) and (-1, -1) */
        double lab = i % 2 ? 1 : -1;
        xv[2 * i] = lab + t_uniform(&gc_seed_state, -0.6, 0.6);
        xv[2 * i + 1] = lab + t_uniform(&gc_seed_state, -0.6, 0.6);
        yv[i] = lab;
    }
    d->X = gc_layout(xv, 2, sx, T_CONTIG);
    d->y = gc_layout(yv, 1, (int64_t[]){B}, T_CONTIG);
    p[0] = gc_rand(2, sw1, -0.5, 0.5, GC_PLAIN, T_TRANSPOSED);
    p[1] = gc_rand(1, sb1, -0.1, 0.1, GC_PLAIN, T_CONTIG);
    p[2] = gc_rand(2, sw2, -0.5, 0.5, GC_PLAIN, T_STRIDED);
    free(xv);
    free(yv);
}

static void test_hvp_matches_differences(void **state) {
    (void)state;
    batch d;
    lz_array *p[3], *v[3];
    make_problem(&d, p, 8, 5);
    for (int i = 0; i < 3; i++) v[i] = gc_rand(lz_ndim(p[i]), lz_shape(p[i]), -1, 1, GC_PLAIN, T_CONTIG);
    hvp_ctx hc = {&d, v};
    lz_array *hv[3];
    lz_pool_push();
    assert_int_equal(lz_grad(grad_dot_v, &hc, 3, p, NULL, hv), 0);
    /* (grad(p + h v) - grad(p - h v)) / 2h */
    const double h = 1e-2;
    lz_array *gp[3], *gm[3], *pp[3], *pm[3];
    for (int i = 0; i < 3; i++) {
        pp[i] = lz_add(p[i], lz_mul_scalar(v[i], h));
        pm[i] = lz_sub(p[i], lz_mul_scalar(v[i], h));
        lz_eval1(pp[i]);
        lz_eval1(pm[i]);
    }
    assert_int_equal(lz_grad(mlp_loss, &d, 3, pp, NULL, gp), 0);
    assert_int_equal(lz_grad(mlp_loss, &d, 3, pm, NULL, gm), 0);
    for (int i = 0; i < 3; i++) {
        int64_t n = lz_size(p[i]);
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        double *fd = malloc((size_t)n * sizeof *fd);
        lz_to_float(gp[i], a, n);
        lz_to_float(gm[i], b, n);
        for (int64_t e = 0; e < n; e++) fd[e] = ((double)a[e] - b[e]) / (2 * h);
        t_assert_close(hv[i], fd, n, 2e-2, 2e-3);
        free(a);
        free(b);
        free(fd);
    }
    lz_pool_pop();
    for (int i = 0; i < 3; i++) { lz_release(p[i]); lz_release(v[i]); }
    lz_release(d.X);
    lz_release(d.y);
}

/* ---- transforms: vjp, stop_gradient, zeros, aux outputs, errors ---- */
static int square_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_mul(x[0], x[0]);
    out[1] = lz_sum(x[0], NULL, 0, 0);
    return 2;
}

static void test_vjp_with_cotangent(void **state) {
    (void)state;
    double v[6] = {1, -2, 3, 0.5, 4, -1}, c[6] = {1, 2, 3, 4, 5, 6}, e[6];
    int64_t s[2] = {2, 3};
    lz_array *x = gc_layout(v, 2, s, T_TRANSPOSED), *ct = gc_layout(c, 2, s, T_STRIDED);
    lz_array *out[2], *g;
    lz_pool_push();
    assert_int_equal(lz_vjp(square_fn, NULL, 1, &x, 1, &ct, out, 2, &g), 2);
    for (int i = 0; i < 6; i++) e[i] = 2 * v[i] * c[i];
    t_assert_close(g, e, 6, 1e-6, 0);
    assert_true(lz_item(out[1]) == 5.5);
    /* both outputs with cotangents add up; a NULL cotangent is zero */
    lz_array *cts[2] = {ct, lz_scalar(10, LZ_F32)};
    assert_int_equal(lz_vjp(square_fn, NULL, 1, &x, 2, cts, NULL, 0, &g), 2);
    for (int i = 0; i < 6; i++) e[i] = 2 * v[i] * c[i] + 10;
    t_assert_close(g, e, 6, 1e-6, 0);
    cts[0] = NULL;
    assert_int_equal(lz_vjp(square_fn, NULL, 1, &x, 2, cts, NULL, 0, &g), 2);
    for (int i = 0; i < 6; i++) e[i] = 10;
    t_assert_close(g, e, 6, 0, 0);
    lz_pool_pop();
    lz_release(x);
    lz_release(ct);
}

static int stop_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_sum(lz_mul(x[0], lz_stop_gradient(lz_exp(x[0]))), NULL, 0, 0);
    return 1;
}

static void test_stop_gradient(void **state) {
    (void)state;
    double v[4] = {0, 1, -1, 2}, e[4];
    lz_array *x = gc_layout(v, 1, (int64_t[]){4}, T_CONTIG), *g;
    lz_pool_push();
    assert_int_equal(lz_grad(stop_fn, NULL, 1, &x, NULL, &g), 0);
    for (int i = 0; i < 4; i++) e[i] = exp(v[i]);   /* not exp(x) (1 + x) */
    t_assert_close(g, e, 4, 1e-6, 0);
    assert_ptr_equal(lz_stop_gradient(x), x);      /* an evaluated array is a constant */
    lz_pool_pop();
    lz_release(x);
}

static int first_only(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = ctx ? lz_scalar(3, LZ_F32) : lz_sum(lz_exp(x[0]), NULL, 0, 0);
    return 1;
}

static void test_zero_gradients(void **state) {
    (void)state;
    int64_t s[2] = {2, 2};
    double zero[4] = {0, 0, 0, 0};
    lz_array *x[2] = {gc_rand(1, (int64_t[]){3}, -1, 1, GC_PLAIN, T_CONTIG),
                      gc_array_of(2, s, LZ_BF16, zero)};
    lz_array *g[2], *out[1];
    lz_pool_push();
    assert_int_equal(lz_value_and_grad(first_only, NULL, 2, x, NULL, out, 1, g), 1);
    assert_int_equal(lz_dtype_of(g[1]), LZ_BF16);
    assert_int_equal(lz_ndim(g[1]), 2);
    t_assert_close(g[1], zero, 4, 0, 0);
    /* a value that depends on nothing: all zeros; wrt picks inputs */
    bool wrt[2] = {false, true};
    assert_int_equal(lz_value_and_grad(first_only, (void *)1, 2, x, wrt, out, 1, g), 1);
    assert_null(g[0]);
    t_assert_close(g[1], zero, 4, 0, 0);
    assert_true(lz_item(out[0]) == 3);
    lz_pool_pop();
    lz_release(x[0]);
    lz_release(x[1]);
}

static int evaluates(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_sum(x[0], NULL, 0, 0);
    lz_item(out[0]);
    return 1;
}

static int fails(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_add(x[0], lz_ones(1, (int64_t[]){7}, LZ_F32));
    return out[0] ? 1 : -1;
}

static int int_value(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_sum(lz_astype(x[0], LZ_I32), NULL, 0, 0);
    return 1;
}

static void test_errors(void **state) {
    (void)state;
    lz_array *x = gc_rand(1, (int64_t[]){3}, -1, 1, GC_PLAIN, T_CONTIG), *g[1] = {NULL};
    lz_array *i = lz_astype(x, LZ_I32);
    unary_op ex = lz_exp;
    lz_pool_push();
    t_assert_error(lz_grad(unary_fn, &ex, 1, &x, NULL, g) ? NULL : x, "not a scalar");
    t_assert_error(lz_grad(int_value, NULL, 1, &x, NULL, g) ? NULL : x, "integer and bool outputs");
    t_assert_error(lz_grad(first_only, NULL, 1, &i, NULL, g) ? NULL : x, "only taken w.r.t. float");
    t_assert_error(lz_grad(evaluates, NULL, 1, &x, NULL, g) ? NULL : x, "fn evaluated");
    t_assert_error(lz_grad(fails, NULL, 1, &x, NULL, g) ? NULL : x, "cannot be broadcast");
    t_assert_error(lz_grad(NULL, NULL, 1, &x, NULL, g) ? NULL : x, "fn is NULL");
    lz_array *bad = lz_ones(1, (int64_t[]){4}, LZ_F32);
    t_assert_error(lz_vjp(unary_fn, &ex, 1, &x, 1, &bad, NULL, 0, g) >= 0 ? x : NULL, "cotangent 0 is");
    /* a primitive without a rule is named */
    lz_vjp_fn saved = lz_prims[LZ_P_EXP].vjp;
    lz_prims[LZ_P_EXP].vjp = NULL;
    t_assert_error(lz_grad(first_only, NULL, 1, &x, NULL, g) ? NULL : x, "no vjp rule for primitive exp");
    lz_prims[LZ_P_EXP].vjp = saved;
    assert_null(g[0]);
    lz_pool_pop();
    lz_release(i);
    lz_release(x);
}

/* ---- memory and depth ---- */
typedef struct { lz_array *e, *k; } keep;

static int keeps(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    keep *kp = ctx;
    kp->e = lz_retain(lz_exp(x[0]));            /* its rule needs it */
    kp->k = lz_retain(lz_add_scalar(kp->e, 1)); /* add's rule needs nothing */
    out[0] = lz_sum(lz_mul_scalar(kp->k, 2), NULL, 0, 0);
    return 1;
}

static void test_backward_holds_only_what_rules_need(void **state) {
    (void)state;
    lz_array *x = gc_rand(1, (int64_t[]){1000}, -1, 1, GC_PLAIN, T_CONTIG), *g, *out;
    keep kp;
    lz_pool_push();
    assert_int_equal(lz_value_and_grad(keeps, &kp, 1, &x, NULL, &out, 1, &g), 1);
    lz_retain(g);
    lz_pool_pop();   /* drops the value: only the gradient's graph remains */
    assert_int_equal(atomic_load(&kp.k->refs), 1);     /* ours alone */
    assert_true(atomic_load(&kp.e->refs) > 1);         /* held by the backward graph */
    lz_release(kp.k);
    lz_release(kp.e);
    lz_release(g);
    lz_release(x);
}

static int long_chain(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    lz_array *y = x[0];
    for (int i = 0; i < 20000; i++) y = lz_add(y, x[0]);
    out[0] = lz_sum(y, NULL, 0, 0);
    return 1;
}

static void test_long_chain(void **state) {
    (void)state;
    lz_array *x = gc_rand(1, (int64_t[]){4}, -1, 1, GC_PLAIN, T_CONTIG), *g;
    double e[4] = {20001, 20001, 20001, 20001};
    lz_pool_push();
    assert_int_equal(lz_grad(long_chain, NULL, 1, &x, NULL, &g), 0);
    t_assert_close(g, e, 4, 1e-6, 0);
    lz_pool_pop();
    lz_release(x);
}

/* ---- training ---- */
static void test_mlp_sgd(void **state) {
    (void)state;
    batch d;
    lz_array *p[3];
    make_problem(&d, p, 64, 16);
    double first = 0, last = 0, acc = 0;
    for (int step = 0; step < 150; step++) {
        lz_array *g[3], *out[2], *np[3];
        lz_pool_push();
        assert_int_equal(lz_value_and_grad(mlp_loss, &d, 3, p, NULL, out, 2, g), 2);
        for (int i = 0; i < 3; i++) np[i] = lz_sub(p[i], lz_mul_scalar(g[i], 0.5));
        /* one eval: forward, backward and the update */
        assert_int_equal(LZ_EVAL(out[0], out[1], np[0], np[1], np[2]), 0);
        for (int i = 0; i < 3; i++) { lz_release(p[i]); p[i] = lz_retain(np[i]); }
        last = lz_item(out[0]);
        acc = lz_item(out[1]);
        if (step == 0) first = last;
        lz_pool_pop();
    }
    if (!(last < first / 10)) fail_msg("loss went from %g to %g", first, last);
    assert_true(acc == 1.0);
    for (int i = 0; i < 3; i++) lz_release(p[i]);
    lz_release(d.X);
    lz_release(d.y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_grad_of_grad, gc_reseed),
        cmocka_unit_test_setup(test_hvp_matches_differences, gc_reseed),
        cmocka_unit_test_setup(test_vjp_with_cotangent, gc_reseed),
        cmocka_unit_test_setup(test_stop_gradient, gc_reseed),
        cmocka_unit_test_setup(test_zero_gradients, gc_reseed),
        cmocka_unit_test_setup(test_errors, gc_reseed),
        cmocka_unit_test_setup(test_backward_holds_only_what_rules_need, gc_reseed),
        cmocka_unit_test_setup(test_long_chain, gc_reseed),
        cmocka_unit_test_setup(test_mlp_sgd, gc_reseed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
