/* Modules end to end: a full training step (forward, backward, Adam update, one eval) of an
 * MLP on MNIST-sized inputs and of a small GPT-style transformer, and the cost of building a
 * step's graph (module tree walk + op constructors + autograd), which is pure overhead that
 * small models on a CPU feel most. Figures are the median of a few timed steps after warm-up.
 *
 *   mlp_step_*          784-256-256-10 relu MLP, batch 128, cross-entropy
 *   gpt_step_*          2 pre-norm blocks, D 128, 4 heads, T 64, batch 8, vocab 64
 *   *_graph_build_us    building the step's graph without evaluating it */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "leibniz.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "bench.h"
#include "bench_gpt.h"

static void die(const char *what) {
    fprintf(stderr, "bench_module: %s: %s\n", what, lz_error());
    exit(1);
}

typedef struct {
    lz_module *m;
    lz_named_list l;
    const char **names;
    lz_optim *opt;
    lz_array *x, *y;
} model;

static int loss_fn(void *ctx, lz_module *m, lz_array **out) {
    model *b = ctx;
    out[0] = lz_cross_entropy(lz_module_forward(m, b->x, NULL), b->y, NULL);
    return out[0] ? 1 : -1;
}

static void setup(model *b, lz_module *m, lz_array *x, lz_array *y) {
    b->m = m;
    b->x = x;
    b->y = y;
    if (!m || lz_module_collect(m, LZ_TRAINABLE, &b->l)) die("model");
    b->names = malloc((size_t)b->l.n * sizeof *b->names);
    for (int i = 0; i < b->l.n; i++) b->names[i] = b->l.items[i].name;
    lz_optim_config c = lz_optim_defaults(LZ_ADAM);
    b->opt = lz_optim_new(&c);
}

static void teardown(model *b) {
    lz_optim_free(b->opt);
    free(b->names);
    lz_named_list_free(&b->l);
    lz_module_free(b->m);
    lz_release(b->x);
    lz_release(b->y);
}

/* One step; when eval is false only the graph is built (and dropped). Returns its time. */
static double step(model *b, int eval) {
    int n = b->l.n;
    lz_array *loss, *g[64], *p[64], *next[65];
    if (n > 64) die("too many parameters for the bench");
    double t0 = now();
    lz_pool_push();
    if (lz_module_value_and_grad(b->m, &b->l, loss_fn, b, &loss, 1, g) < 1) die("value_and_grad");
    for (int i = 0; i < n; i++) p[i] = *b->l.items[i].slot;
    if (lz_optim_step(b->opt, n, b->names, p, g, next, -1)) die("optim");
    if (eval) {
        for (int i = 0; i < n; i++) lz_param_set(&b->l.items[i], next[i]);
        next[n] = loss;
        if (lz_optim_eval(b->opt, n + 1, next)) die("eval");
    }
    lz_pool_pop();
    return now() - t0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_step(model *b, int eval, int reps) {
    double t[64];
    for (int r = 0; r < 3; r++) step(b, eval);   /* warm-up: allocator cache, thread pools */
    for (int r = 0; r < reps; r++) t[r] = step(b, eval);
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

static lz_array *randn(int nd, const int64_t *s, uint64_t seed) {
    lz_array *a = lz_random_normal(lz_key_new(seed), nd, s, 0, 1, LZ_F32);
    if (!a || lz_eval1(a)) die("data");
    return a;
}

static lz_array *randint(int nd, const int64_t *s, int64_t hi, uint64_t seed) {
    lz_array *a = lz_random_randint(lz_key_new(seed), nd, s, 0, hi, LZ_I64);
    if (!a || lz_eval1(a)) die("data");
    return a;
}

int main(void) {
    model b;
    int64_t xs[2] = {128, 784}, ys = 128;
    setup(&b, lz_nn_sequential(5, (lz_module *[]){lz_nn_linear(784, 256, true, lz_key_new(1)), lz_nn_relu(),
                                                  lz_nn_linear(256, 256, true, lz_key_new(2)), lz_nn_relu(),
                                                  lz_nn_linear(256, 10, true, lz_key_new(3))}),
          randn(2, xs, 1), randint(1, &ys, 10, 2));
    double t = median_step(&b, 1, 15), tb = median_step(&b, 0, 15);
    double flops = 6.0 * 128 * (784 * 256 + 256 * 256 + 256 * 10);
    printf("BENCH mlp_step_ms %.3f ms\n", 1e3 * t);
    printf("BENCH mlp_step_samples %.0f samples/s\n", 128 / t);
    printf("BENCH mlp_step_gflops %.2f GFLOP/s\n", flops / t * 1e-9);
    printf("BENCH mlp_graph_build_us %.1f us\n", 1e6 * tb);
    teardown(&b);

    int64_t ts[2] = {8, 64};
    setup(&b, bench_gpt_new(64, 128, 64, 2, 4), randint(2, ts, 64, 3), randint(2, ts, 64, 4));
    t = median_step(&b, 1, 9);
    tb = median_step(&b, 0, 9);
    printf("BENCH gpt_step_ms %.3f ms\n", 1e3 * t);
    printf("BENCH gpt_step_tokens %.0f tokens/s\n", 8 * 64 / t);
    printf("BENCH gpt_graph_build_us %.1f us\n", 1e6 * tb);
    printf("BENCH gpt_params %lld params\n", (long long)lz_module_num_params(b.m, false));
    teardown(&b);
    return 0;
}
