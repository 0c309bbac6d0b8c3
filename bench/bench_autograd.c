/* Autograd figures.
 *   - An MLP training step (784-512-512-10, batch 128, relu, log-softmax NLL): forward alone,
 *     building the backward graph (value_and_grad, no compute), and forward + backward + SGD
 *     update in one lz_eval; best of several after warm-up, with all threads and with one.
 *     step/forward near 3 is what the FLOPs ask for (two matmuls back per matmul forward).
 *   - Memory of a 100-layer tanh MLP step (256 wide, batch 256): the allocator's peak during
 *     the step's eval, parameters included, against storing every forward intermediate
 *     twice (a value and a gradient each) plus the parameters.
 *   - A stack of 8 transformer-like blocks (pre-norm causal attention + gelu MLP, residuals;
 *     batch 4, 128 tokens, width 64) with and without lz_checkpoint per block: peak memory
 *     (parameters included), step time (one warm-up, best of two) and FLOPs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "leibniz.h"
#include "bench.h"

static int fail(void) {
    fprintf(stderr, "bench_autograd: %s\n", lz_error());
    return 1;
}

static double mb(size_t b) { return (double)b / 1e6; }

/* ---- the MLP step ---- */
typedef struct { lz_array *x, *y; } batch;

static lz_array *linear(lz_array *x, lz_array *w, lz_array *b) {
    return lz_add(lz_matmul(x, lz_transpose(w)), b);
}

static int mlp_loss(void *ctx, int n, lz_array *const *p, lz_array **out) {
    (void)n;
    batch *d = ctx;
    lz_array *h = lz_relu(linear(d->x, p[0], p[1]));
    h = lz_relu(linear(h, p[2], p[3]));
    lz_array *ls = lz_log_softmax(linear(h, p[4], p[5]), -1);
    out[0] = lz_neg(lz_mean(lz_take_along_axis(ls, d->y, 1), NULL, 0, 0));
    return out[0] ? 1 : -1;
}

/* Prints the MLP step figures with the current thread count, names ending in suffix. */
static int mlp_step(const char *suffix) {
    enum { B = 128, D = 784, H = 512, C = 10, NP = 6, WARM = 5, ITERS = 30 };
    const int64_t rows[NP / 2] = {H, H, C}, cols[NP / 2] = {D, H, H};
    lz_key ks[2 + NP / 2];
    lz_key_split(lz_key_new(7), 2 + NP / 2, ks);
    lz_array *p[NP];
    lz_pool_push();
    batch d = {lz_retain(lz_random_normal(ks[0], 2, (int64_t[]){B, D}, 0, 1, LZ_F32)),
               lz_retain(lz_random_randint(ks[1], 2, (int64_t[]){B, 1}, 0, C, LZ_I64))};
    for (int l = 0; l < NP / 2; l++) {
        p[2 * l] = lz_retain(lz_random_normal(ks[2 + l], 2, (int64_t[]){rows[l], cols[l]}, 0,
                                              1 / sqrt((double)cols[l]), LZ_F32));
        p[2 * l + 1] = lz_retain(lz_zeros(1, (int64_t[]){rows[l]}, LZ_F32));
    }
    lz_pool_pop();
    if (LZ_EVAL(d.x, d.y, p[0], p[1], p[2], p[3], p[4], p[5])) return fail();
    double t_fwd = INFINITY, t_build = INFINITY, t_step = INFINITY, first = 0, last = 0;
    for (int it = 0; it < WARM + ITERS; it++) {   /* forward only */
        lz_array *out;
        lz_pool_push();
        double t0 = now();
        if (mlp_loss(&d, NP, p, &out) < 0) return fail();
        lz_retain(out);
        lz_pool_pop();
        if (lz_eval1(out)) return fail();
        double t1 = now();
        lz_release(out);
        if (it >= WARM && t1 - t0 < t_fwd) t_fwd = t1 - t0;
    }
    for (int it = 0; it < WARM + ITERS; it++) {   /* training steps */
        lz_array *out, *g[NP], *t[NP + 1];
        lz_pool_push();
        double t0 = now();
        if (lz_value_and_grad(mlp_loss, &d, NP, p, NULL, &out, 1, g) < 0) return fail();
        double t1 = now();
        t[NP] = lz_retain(out);
        for (int i = 0; i < NP; i++) t[i] = lz_retain(lz_sub(p[i], lz_mul_scalar(g[i], 0.1)));
        lz_pool_pop();   /* before the eval: a pool's references keep buffers alive */
        if (lz_eval(NP + 1, t)) return fail();
        double t2 = now();
        if (it >= WARM) {
            if (t1 - t0 < t_build) t_build = t1 - t0;
            if (t2 - t0 < t_step) t_step = t2 - t0;
        }
        for (int i = 0; i < NP; i++) { lz_release(p[i]); p[i] = t[i]; }
        last = lz_item(t[NP]);
        if (it == 0) first = last;
        lz_release(t[NP]);
    }
    printf("BENCH mlp_784_512_512_10_b128_step_ms%s %.3f ms\n", suffix, 1e3 * t_step);
    printf("BENCH mlp_784_512_512_10_b128_forward_ms%s %.3f ms\n", suffix, 1e3 * t_fwd);
    printf("BENCH mlp_784_512_512_10_b128_value_and_grad_build_us%s %.1f us\n", suffix,
           1e6 * t_build);
    printf("BENCH mlp_784_512_512_10_b128_step_over_forward%s %.2f x\n", suffix, t_step / t_fwd);
    printf("BENCH mlp_784_512_512_10_b128_loss_first%s %.3f nats\n", suffix, first);
    printf("BENCH mlp_784_512_512_10_b128_loss_last%s %.3f nats\n", suffix, last);
    for (int i = 0; i < NP; i++) lz_release(p[i]);
    lz_release(d.x);
    lz_release(d.y);
    return 0;
}

/* ---- one SGD step's eval, measured ---- */
typedef struct { size_t resident, peak; double ms, gflop; } cost;

/* Builds a step of fn (gradients w.r.t. inputs with wrt[i]) inside a pool, pops it, then
 * evaluates value and updated inputs in one lz_eval. The updates are dropped (in[] is
 * unchanged), so repeated calls measure the same step. */
static int step(lz_fn fn, void *ctx, int n, lz_array *const *in, const bool *wrt, cost *c) {
    lz_array **t = calloc((size_t)n + 1, sizeof *t), **g = calloc((size_t)n, sizeof *g), *out;
    int k = 0;
    lz_pool_push();
    double t0 = now();
    if (lz_value_and_grad(fn, ctx, n, in, wrt, &out, 1, g) < 0) {
        lz_pool_pop();
        free(t);
        free(g);
        return fail();
    }
    t[k++] = lz_retain(out);
    for (int i = 0; i < n; i++)
        if (wrt[i]) t[k++] = lz_retain(lz_sub(in[i], lz_mul_scalar(g[i], 0.01)));
    lz_pool_pop();
    c->resident = lz_memory().active;
    lz_memory_reset_peak();
    lz_stats_reset();
    int rc = lz_eval(k, t);
    c->ms = 1e3 * (now() - t0);
    c->peak = lz_memory().peak;
    c->gflop = (double)lz_stats().flops / 1e9;
    for (int i = 0; i < k; i++) lz_release(t[i]);
    free(t);
    free(g);
    return rc ? fail() : 0;
}

/* ---- a 100-layer MLP's memory ---- */
enum { ML = 100, MW = 256, MB = 256 };

static int deep_loss(void *ctx, int n, lz_array *const *p, lz_array **out) {
    (void)n;
    lz_array *h = ctx;
    for (int l = 0; l < ML; l++)
        h = lz_tanh(lz_add(lz_matmul(h, lz_transpose(p[2 * l])), p[2 * l + 1]));
    out[0] = lz_mean(lz_square(h), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static int mlp100(void) {
    lz_array *p[2 * ML], *x;
    bool wrt[2 * ML];
    lz_key key = lz_key_new(1);
    lz_pool_push();
    x = lz_retain(lz_random_normal(key, 2, (int64_t[]){MB, MW}, 0, 1, LZ_F32));
    for (int l = 0; l < ML; l++) {
        p[2 * l] = lz_retain(lz_random_normal(lz_key_fold(key, (uint64_t)l + 1), 2,
                                              (int64_t[]){MW, MW}, 0, 1.0 / 16, LZ_F32));
        p[2 * l + 1] = lz_retain(lz_zeros(1, (int64_t[]){MW}, LZ_F32));
        wrt[2 * l] = wrt[2 * l + 1] = true;
    }
    lz_pool_pop();
    if (lz_eval1(x) || lz_eval(2 * ML, p)) return fail();
    cost c = {0, 0, 0, 0};
    if (step(deep_loss, x, 2 * ML, p, wrt, &c)) return 1;
    /* each layer's forward makes three [B, W] values (matmul, + bias, tanh) */
    size_t act = (size_t)MB * MW * 4, params = (size_t)ML * ((size_t)MW * MW * 4 + MW * 4);
    printf("BENCH mlp100_peak_MB %.1f MB\n", mb(c.peak));
    printf("BENCH mlp100_resident_MB %.1f MB\n", mb(c.resident));
    printf("BENCH mlp100_all_intermediates_twice_MB %.1f MB\n",
           mb(params + 2 * 3 * (size_t)ML * act));
    for (int i = 0; i < 2 * ML; i++) lz_release(p[i]);
    lz_release(x);
    return 0;
}

/* ---- checkpointed transformer-like blocks ---- */
enum { NPB = 8 };   /* per block: ln1 w, b; Wqkv [3D, D]; Wo; ln2 w, b; W1 [4D, D]; W2 [D, 4D] */
typedef struct { int B, T, D, H, L, ckpt; } stack;

static lz_array *lin(lz_array *x, lz_array *w) { return lz_matmul(x, lz_swapaxes(w, -1, -2)); }

static lz_array *heads(lz_array *a, const stack *s) {
    return lz_swapaxes(lz_reshape(a, 4, (int64_t[]){s->B, s->T, s->H, s->D / s->H}), 1, 2);
}

static int block(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const stack *s = ctx;
    int64_t D = s->D;
    lz_array *qkv = lin(lz_layer_norm(in[0], in[1], in[2], 1e-5), in[3]);
    lz_array *q = heads(lz_slice_axis(qkv, -1, 0, D, 1), s);
    lz_array *k = heads(lz_slice_axis(qkv, -1, D, 2 * D, 1), s);
    lz_array *v = heads(lz_slice_axis(qkv, -1, 2 * D, 3 * D, 1), s);
    lz_array *att = lz_swapaxes(lz_attention(q, k, v, 0, 1), 1, 2);
    lz_array *x2 = lz_add(in[0], lin(lz_reshape(att, 3, (int64_t[]){s->B, s->T, D}), in[4]));
    lz_array *h = lz_gelu(lin(lz_layer_norm(x2, in[5], in[6], 1e-5), in[7]));
    out[0] = lz_add(x2, lin(h, in[8]));
    return out[0] ? 1 : -1;
}

static int stack_loss(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const stack *s = ctx;
    lz_array *h = in[0];
    for (int l = 0; l < s->L; l++) {
        lz_array *bin[1 + NPB] = {h};
        memcpy(bin + 1, in + 1 + NPB * l, NPB * sizeof *bin);
        if ((s->ckpt ? lz_checkpoint(block, ctx, 1 + NPB, bin, &h)
                     : block(ctx, 1 + NPB, bin, &h)) != 1)
            return -1;
    }
    out[0] = lz_mean(lz_square(h), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static int checkpointed_blocks(void) {
    stack s = {.B = 4, .T = 128, .D = 64, .H = 4, .L = 8};
    int n = 1 + NPB * s.L;
    int64_t D = s.D;
    lz_array **in = calloc((size_t)n, sizeof *in);
    bool *wrt = calloc((size_t)n, sizeof *wrt);
    lz_key key = lz_key_new(5);
    lz_pool_push();
    in[0] = lz_retain(lz_random_normal(key, 3, (int64_t[]){s.B, s.T, D}, 0, 1, LZ_F32));
    for (int i = 1; i < n; i++) {
        int kind = (i - 1) % NPB;
        const int64_t rows[NPB] = {0, 0, 3 * D, D, 0, 0, 4 * D, D};
        const int64_t cols[NPB] = {D, D, D, D, D, D, D, 4 * D};
        lz_key k = lz_key_fold(key, (uint64_t)i);
        double sd = 1 / sqrt((double)cols[kind]), mean = kind == 0 || kind == 4 ? 1 : 0;
        in[i] = lz_retain(rows[kind]
            ? lz_random_normal(k, 2, (int64_t[]){rows[kind], cols[kind]}, 0, sd, LZ_F32)
            : lz_random_normal(k, 1, (int64_t[]){D}, mean, 0.1, LZ_F32));
        wrt[i] = true;
    }
    lz_pool_pop();
    if (lz_eval(n, in)) return fail();
    cost best[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int ck = 0; ck < 2; ck++) {
        s.ckpt = ck;
        for (int it = 0; it < 3; it++) {   /* one warm-up, best of two */
            cost c = {0, 0, 0, 0};
            if (step(stack_loss, &s, n, in, wrt, &c)) return 1;
            if (it == 1 || (it > 1 && c.ms < best[ck].ms)) best[ck] = c;
        }
    }
    printf("BENCH ckpt_blocks_peak_MB_off %.2f MB\n", mb(best[0].peak));
    printf("BENCH ckpt_blocks_peak_MB_on %.2f MB\n", mb(best[1].peak));
    printf("BENCH ckpt_blocks_resident_MB %.2f MB\n", mb(best[0].resident));
    printf("BENCH ckpt_blocks_step_ms_off %.2f ms\n", best[0].ms);
    printf("BENCH ckpt_blocks_step_ms_on %.2f ms\n", best[1].ms);
    printf("BENCH ckpt_blocks_step_gflop_off %.3f GFLOP\n", best[0].gflop);
    printf("BENCH ckpt_blocks_step_gflop_on %.3f GFLOP\n", best[1].gflop);
    for (int i = 0; i < n; i++) lz_release(in[i]);
    free(in);
    free(wrt);
    return 0;
}

int main(void) {
    if (mlp_step("")) return 1;
    int threads = lz_threads();
    lz_set_threads(1);   /* the same on one thread: free of contention on a shared machine */
    int rc = mlp_step("_1thread");
    lz_set_threads(threads);
    if (rc || mlp100() || checkpointed_blocks()) return 1;
    return 0;
}
