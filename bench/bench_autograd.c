/* Autograd cost on an MLP training step (784-256-10, batch 128, relu, log-softmax NLL):
 * forward alone, building the backward graph (value_and_grad, no compute), and one eval of
 * forward + backward + SGD update. The ratio step/forward is the figure to watch (about 3 is
 * what the FLOPs ask for: backward is two matmuls per forward one). */
#include <stdio.h>
#include <time.h>
#include "leibniz.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct { lz_array *x, *y; } batch;

static lz_array *linear(lz_array *x, lz_array *w, lz_array *b) {
    return lz_add(lz_matmul(x, lz_transpose(w)), b);
}

static int loss(void *ctx, int n, lz_array *const *p, lz_array **out) {
    (void)n;
    batch *d = ctx;
    lz_array *h = lz_relu(linear(d->x, p[0], p[1]));
    lz_array *ls = lz_log_softmax(linear(h, p[2], p[3]), -1);
    out[0] = lz_neg(lz_mean(lz_take_along_axis(ls, d->y, 1), NULL, 0, 0));
    return out[0] ? 1 : -1;
}

/* Times forward alone and full training steps with the current thread count; prints BENCH
 * lines with the given suffix. Returns 0 or 1. */
static int measure(const char *suffix) {
    const int B = 128, D = 784, H = 256, C = 10, warm = 5, iters = 40;
    lz_key ks[6];
    lz_key_split(lz_key_new(7), 6, ks);
    batch d = {lz_random_normal(ks[0], 2, (int64_t[]){B, D}, 0, 1, LZ_F32),
               lz_random_randint(ks[1], 2, (int64_t[]){B, 1}, 0, C, LZ_I64)};
    lz_array *p[4] = {lz_random_normal(ks[2], 2, (int64_t[]){H, D}, 0, 0.05, LZ_F32),
                      lz_zeros(1, (int64_t[]){H}, LZ_F32),
                      lz_random_normal(ks[3], 2, (int64_t[]){C, H}, 0, 0.05, LZ_F32),
                      lz_zeros(1, (int64_t[]){C}, LZ_F32)};
    if (LZ_EVAL(d.x, d.y, p[0], p[1], p[2], p[3])) { fprintf(stderr, "%s\n", lz_error()); return 1; }
    double t_fwd = 0, t_build = 0, t_step = 0, first = 0, last = 0;
    for (int it = 0; it < warm + iters; it++) {   /* forward only */
        lz_pool_push();
        lz_array *out;
        double t0 = now();
        if (loss(&d, 4, p, &out) < 0 || lz_eval1(out)) { fprintf(stderr, "%s\n", lz_error()); return 1; }
        if (it >= warm) t_fwd += now() - t0;
        lz_pool_pop();
    }
    for (int it = 0; it < warm + iters; it++) {   /* training steps */
        lz_pool_push();
        lz_array *out, *g[4], *np[4];
        double t0 = now();
        if (lz_value_and_grad(loss, &d, 4, p, NULL, &out, 1, g) < 0) {
            fprintf(stderr, "%s\n", lz_error());
            return 1;
        }
        for (int i = 0; i < 4; i++) np[i] = lz_sub(p[i], lz_mul_scalar(g[i], 0.1));
        double t1 = now();
        if (LZ_EVAL(out, np[0], np[1], np[2], np[3])) { fprintf(stderr, "%s\n", lz_error()); return 1; }
        double t2 = now();
        if (it >= warm) { t_build += t1 - t0; t_step += t2 - t0; }
        for (int i = 0; i < 4; i++) { lz_release(p[i]); p[i] = lz_retain(np[i]); }
        last = lz_item(out);
        if (it == 0) first = last;
        lz_pool_pop();
    }
    printf("BENCH mlp_forward%s %.3f ms\n", suffix, 1e3 * t_fwd / iters);
    printf("BENCH mlp_value_and_grad_build%s %.1f us\n", suffix, 1e6 * t_build / iters);
    printf("BENCH mlp_train_step%s %.3f ms\n", suffix, 1e3 * t_step / iters);
    printf("BENCH mlp_step_over_forward%s %.2f x\n", suffix, t_step / t_fwd);
    printf("BENCH mlp_loss_first%s %.3f nats\n", suffix, first);
    printf("BENCH mlp_loss_last%s %.3f nats\n", suffix, last);
    for (int i = 0; i < 4; i++) lz_release(p[i]);
    lz_release(d.x);
    lz_release(d.y);
    return 0;
}

int main(void) {
    if (measure("")) return 1;
    int threads = lz_threads();
    lz_set_threads(1);   /* the same on one thread: free of contention on a shared machine */
    int rc = measure("_1thread");
    lz_set_threads(threads);
    return rc;
}
