/* Memory of differentiated training steps, measured with the allocator's peak
 * (lz_memory_reset_peak before a step's lz_eval, t_mem().peak after):
 *   - a 100-layer MLP: forward activations the backward does not need are freed during the
 *     eval, and the backward is ordered so that each layer's stored activation dies as its
 *     gradients are made; the peak is checked against a bound derived from what the backward
 *     must keep, far below storing every intermediate twice;
 *   - a stack of transformer-like blocks: lz_checkpoint per block at least halves the peak,
 *     for at most one extra forward pass of FLOPs.
 * The protocol matters: a step is built inside an autorelease pool, its targets retained, the
 * pool popped, and only then evaluated; a pool's reference would keep every intermediate's
 * buffer alive until it pops. */
#include "testutil.h"
#include "autograd_blocks.h"

typedef struct {
    size_t resident;   /* bytes live before the eval (inputs, parameters) */
    size_t peak;       /* peak during the eval */
    size_t after;      /* live after it, the step's targets still held */
    uint64_t flops;
} cost;

/* One SGD step of fn: value, gradients w.r.t. the inputs with wrt[i], updated inputs, all in
 * one lz_eval (targets: the value then the updates, or the reverse). The updated inputs
 * replace in[i] (the old ones released). */
static cost sgd_step(lz_fn fn, void *ctx, int n, lz_array **in, const bool *wrt, double *value,
                     bool reverse) {
    lz_array **t = calloc((size_t)n + 1, sizeof *t), **g = calloc((size_t)n, sizeof *g), *out;
    int k = 0;
    lz_pool_push();
    assert_int_equal(lz_value_and_grad(fn, ctx, n, in, wrt, &out, 1, g), 1);
    t[k++] = lz_retain(out);
    for (int i = 0; i < n; i++)
        if (wrt[i]) t[k++] = lz_retain(lz_sub(in[i], lz_mul_scalar(g[i], 0.01)));
    lz_pool_pop();
    cost c;
    c.resident = t_mem().active;
    t_mem_reset_peak();
    lz_stats_reset();
    for (int i = 0; reverse && i < k / 2; i++) {
        lz_array *tmp = t[i];
        t[i] = t[k - 1 - i];
        t[k - 1 - i] = tmp;
    }
    assert_int_equal(lz_eval(k, t), 0);
    for (int i = 0; reverse && i < k / 2; i++) {
        lz_array *tmp = t[i];
        t[i] = t[k - 1 - i];
        t[k - 1 - i] = tmp;
    }
    c.peak = t_mem().peak;
    c.after = t_mem().active;
    c.flops = lz_stats().flops;
    *value = lz_item(t[0]);
    lz_release(t[0]);
    for (int i = 0, j = 1; i < n; i++)
        if (wrt[i]) { lz_release(in[i]); in[i] = t[j++]; }
    free(t);
    free(g);
    return c;
}

static double mb(size_t b) { return (double)b / 1e6; }

/* ---- a 100-layer MLP ---- */
enum { L = 100, W = 128, B = 128 };
typedef struct { lz_array *x; } mlp;

static int mlp_loss(void *ctx, int n, lz_array *const *p, lz_array **out) {
    (void)n;
    lz_array *h = ((mlp *)ctx)->x;
    for (int l = 0; l < L; l++)
        h = lz_tanh(lz_add(lz_matmul(h, lz_transpose(p[2 * l])), p[2 * l + 1]));
    out[0] = lz_mean(lz_square(h), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static void test_mlp100_peak(void **state) {
    (void)state;
    mlp m;
    lz_array *p[2 * L];
    bool wrt[2 * L];
    lz_key key = lz_key_new(1);
    lz_pool_push();
    m.x = lz_retain(lz_random_normal(key, 2, (int64_t[]){B, W}, 0, 1, LZ_F32));
    for (int l = 0; l < L; l++) {
        p[2 * l] = lz_retain(lz_random_normal(lz_key_fold(key, (uint64_t)l + 1), 2,
                                              (int64_t[]){W, W}, 0, 1.0 / 11, LZ_F32));
        p[2 * l + 1] = lz_retain(lz_zeros(1, (int64_t[]){W}, LZ_F32));
        wrt[2 * l] = wrt[2 * l + 1] = true;
    }
    lz_eval1(m.x);
    lz_eval(2 * L, p);
    lz_pool_pop();

    /* Sizes (the allocator rounds to its buckets; these sizes are bucket sizes already).
     * act: one [B, W] float32 value. Every layer's forward makes three values of that size
     * (matmul, + bias, tanh): storing every intermediate twice (a value and a gradient of
     * the same size for each) is 6 L act on top of the parameters.
     * What the backward must keep: tanh's rule uses the layer's output, the next matmul's
     * weight gradient uses it too, and nothing else of the forward (the matmul output is
     * consumed by the fused bias + tanh, add's rule needs no value): L act. Gradients
     * (params bytes, turned into the new parameters in place) appear while those die. So
     * the peak above the resident inputs is at most max(L act, params) plus a few
     * buffers of work. */
    const size_t act = (size_t)B * W * 4, params = (size_t)L * ((size_t)W * W * 4 + W * 4);
    const size_t naive = params + 6 * (size_t)L * act;
    double v0, v1;
    cost c = sgd_step(mlp_loss, &m, 2 * L, p, wrt, &v0, false);
    /* the same figures each step, whatever the order of the targets (the backward orders
     * itself: transform.c, "Memory order") */
    cost d = sgd_step(mlp_loss, &m, 2 * L, p, wrt, &v1, true);
    size_t above = c.peak - c.resident, bound = (act * L > params ? act * L : params) + 8 * act;
    printf("mlp %d x %d, batch %d: resident %.1f MB, peak %.1f MB (+%.1f MB); kept activations "
           "%.1f MB; every intermediate twice + params %.1f MB; loss %.5f -> %.5f\n",
           L, W, B, mb(c.resident), mb(c.peak), mb(above), mb(act * L), mb(naive), v0, v1);
    printf("targets in reverse order: peak %.1f MB (+%.1f MB)\n", mb(d.peak),
           mb(d.peak - d.resident));
    assert_true(above <= bound);
    assert_true(c.peak * 3 < naive);       /* "well under" */
    assert_true(d.peak - d.resident <= bound);
    assert_true(v1 < v0);
    for (int i = 0; i < 2 * L; i++) lz_release(p[i]);
    lz_release(m.x);
}

/* ---- checkpointing a stack of transformer-like blocks ---- */
static void test_checkpoint_peak_and_flops(void **state) {
    (void)state;
    tb_model m = {.B = 4, .T = 64, .D = 32, .H = 2, .L = 12};
    int n = 1 + TB_NPARAM * m.L;
    lz_array **in = calloc((size_t)n, sizeof *in);
    bool *wrt = calloc((size_t)n, sizeof *wrt);
    for (int i = 1; i < n; i++) wrt[i] = true;
    tb_inputs(&m, 7, in);

    /* the forward alone, for its FLOPs */
    lz_pool_push();
    lz_array *y;
    assert_int_equal(tb_loss(&m, n, in, &y), 1);
    lz_retain(y);
    lz_pool_pop();
    lz_stats_reset();
    lz_eval1(y);
    uint64_t fwd = lz_stats().flops;
    double vf = lz_item(y);
    lz_release(y);

    double v[2];
    cost c[2];
    for (int ck = 0; ck < 2; ck++) {   /* the same parameters: the updates are not kept */
        lz_array **p = calloc((size_t)n, sizeof *p);
        for (int i = 0; i < n; i++) p[i] = lz_retain(in[i]);
        m.ckpt = ck;
        m.calls = 0;
        c[ck] = sgd_step(tb_loss, &m, n, p, wrt, &v[ck], false);
        assert_int_equal(m.calls, (1 + ck) * m.L);
        for (int i = 0; i < n; i++) lz_release(p[i]);
        free(p);
    }
    printf("%d blocks [%d, %d, %d]: peak %.2f MB without checkpointing, %.2f MB with (resident "
           "%.2f MB); GFLOP forward %.3f, step %.3f without, %.3f with\n", m.L, m.B, m.T, m.D,
           mb(c[0].peak), mb(c[1].peak), mb(c[0].resident), fwd / 1e9, c[0].flops / 1e9,
           c[1].flops / 1e9);
    assert_true(fabs(v[0] - vf) <= 1e-6 * fabs(vf) && fabs(v[1] - vf) <= 1e-6 * fabs(vf));
    assert_true(2 * c[1].peak <= c[0].peak);
    assert_true(c[1].flops > c[0].flops);            /* it did recompute */
    assert_true(c[1].flops - c[0].flops <= fwd);     /* at most one extra forward */
    for (int i = 0; i < n; i++) lz_release(in[i]);
    free(in);
    free(wrt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp100_peak),
        cmocka_unit_test(test_checkpoint_peak_and_flops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
