/* Data parallelism (lib/dist) at the ranks it is launched with:
 *   allreduce_busbw_<size>  all-reduce (sum, f32) bus bandwidth, 1 MiB to 256 MiB: the
 *                           nccl-tests convention, bytes * 2 (R-1)/R per second (0 at 1 rank)
 *   mlp_step_<R>ranks       the MNIST MLP (784-512-512-10, Adam, global batch 128) step time:
 *                           forward/backward, gradients averaged (25 MiB buckets), update;
 *                           comm_share: the part of it spent in the all-reduce (not hidden:
 *                           the reduction follows the backward pass)
 * Started without mpirun (make bench), it measures a world of one and then runs itself under
 * `mpirun -np 2` for the 2-rank figures. Without MPI it says so and exits 0.
 *   mpirun -np 2 build/release/bench/bench_dist */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "leibniz.h"
#include "io/model.h"
#include "dist/dist.h"

static int rank;

static void allreduce_bandwidth(lz_dist *d) {
    int R = lz_dist_size(d);
    for (int64_t mib = 1; mib <= 256; mib *= 4) {
        int64_t n = mib * 1048576 / 4;
        lz_array *x = lz_empty(1, &n, LZ_F32);
        memset(lz_data_mut(x), 0, (size_t)n * 4);
        int reps = mib <= 16 ? 10 : 3;
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {
            lz_dist_barrier(d);
            double t0 = now();
            lz_array *y = lz_dist_all_reduce(d, x, LZ_DIST_SUM);
            double t = now() - t0;
            if (!y) { fprintf(stderr, "bench_dist: %s\n", lz_error()); exit(1); }
            lz_release(y);
            double worst[1] = {t};
            lz_dist_all_reduce_doubles(d, worst, 1, LZ_DIST_MAX);
            if (r > 0 && worst[0] < best) best = worst[0];
        }
        double bus = (double)n * 4 * 2.0 * (R - 1) / R / best / 1e9;
        if (rank == 0)
            printf("BENCH dist_allreduce_busbw_%lldMiB_%dranks %.2f GB/s (%.2f ms)\n", (long long)mib,
                   R, bus, best * 1e3);
        lz_release(x);
    }
}

typedef struct { lz_array *x, *y; } step_ctx;
static const lz_config *g_cfg;

static int loss_fn(void *p, lz_module *m, lz_array **out) {
    step_ctx *c = p;
    out[0] = lz_model_loss(g_cfg, lz_module_forward(m, c->x, NULL), c->y);
    return out[0] ? 1 : -1;
}

static void mlp_step(lz_dist *d) {
    int R = lz_dist_size(d);
    const char *yaml = "name: b\ndata: {path: none, batch_size: 128}\n"
                       "model: {type: mlp, hidden: [512, 512]}\noptimizer: {name: adam, lr: 1e-3}\n";
    lz_config *cfg = lz_config_load_string(yaml, "bench", 0, NULL);
    g_cfg = cfg;
    lz_model_shape shape = {1, 28, 28, 10};
    lz_module *m = cfg ? lz_model_build(cfg, &shape, lz_key_new(1)) : NULL;
    if (!m) { fprintf(stderr, "bench_dist: %s\n", lz_error()); exit(1); }
    lz_named_list params;
    lz_module_collect(m, LZ_TRAINABLE, &params);
    int n = params.n;
    const char **names = calloc((size_t)n, sizeof *names);
    lz_array **grads = calloc((size_t)n, sizeof *grads), **avg = calloc((size_t)n, sizeof *avg),
             **cur = calloc((size_t)n, sizeof *cur), **next = calloc((size_t)n, sizeof *next);
    for (int i = 0; i < n; i++) names[i] = params.items[i].name;
    lz_optim_config oc = lz_optim_defaults(LZ_ADAM);
    lz_optim *opt = lz_optim_new(&oc);
    int64_t b = 128 / R, xs[4] = {b, 1, 28, 28};
    lz_array *x = lz_random_uniform(lz_key_new(2 + (uint64_t)rank), 4, xs, 0, 1, LZ_F32);
    int32_t labels[128];
    for (int i = 0; i < b; i++) labels[i] = (i * 7 + rank) % 10;
    lz_array *y = lz_from_data(labels, 1, &b, LZ_I32);
    lz_eval1(x);
    double total = 0, comm = 0;
    int steps = 30, warm = 5;
    for (int s = 0; s < steps + warm; s++) {
        lz_dist_barrier(d);
        double t0 = now();
        lz_pool_push();
        step_ctx c = {x, y};
        lz_array *loss;
        if (lz_module_value_and_grad(m, &params, loss_fn, &c, &loss, 1, grads) < 0) exit(1);
        lz_eval(n, grads);
        double t1 = now();
        if (lz_dist_all_reduce_many(d, n, grads, LZ_DIST_MEAN, 25 << 20, avg)) {
            fprintf(stderr, "bench_dist: %s\n", lz_error());
            exit(1);
        }
        double t2 = now();
        for (int i = 0; i < n; i++) cur[i] = *params.items[i].slot;
        lz_optim_step(opt, n, names, cur, avg, next, 1e-3);
        for (int i = 0; i < n; i++) lz_param_set(&params.items[i], next[i]);
        lz_optim_eval(opt, n, next);
        lz_pool_pop();
        double t3 = now();
        if (s >= warm) { total += t3 - t0; comm += t2 - t1; }
    }
    double v[2] = {total / steps, comm / steps};
    lz_dist_all_reduce_doubles(d, v, 2, LZ_DIST_MAX);
    if (rank == 0)
        printf("BENCH dist_mlp_step_%dranks %.2f ms (global batch 128, %lld per rank; all-reduce "
               "%.2f ms, comm_share %.0f%%, not overlapped)\n", R, v[0] * 1e3, (long long)b,
               v[1] * 1e3, 100 * v[1] / v[0]);
    lz_release(x); lz_release(y);
    lz_optim_free(opt);
    lz_named_list_free(&params);
    lz_module_free(m);
    lz_config_free(cfg);
    free(names); free(grads); free(avg); free(cur); free(next);
}

int main(int argc, char **argv) {
    (void)argc;
    if (!lz_dist_built()) { puts("bench_dist: skipped (built without MPI)"); return 0; }
    int launched = lz_dist_launched();
    lz_dist *d = lz_dist_init(&(lz_dist_options){.timeout_s = 120});
    if (!d) { fprintf(stderr, "bench_dist: %s\n", lz_error()); return 1; }
    rank = lz_dist_rank(d);
    int R = lz_dist_size(d);
    if (!getenv("OMP_NUM_THREADS")) {   /* the host's cores shared between its ranks */
        int share = lz_threads() / lz_dist_local_size(d);
        lz_set_threads(share > 0 ? share : 1);
    }
    if (rank == 0) printf("bench_dist: %d rank(s), %d threads each\n", R, lz_threads());
    allreduce_bandwidth(d);
    mlp_step(d);
    lz_dist_finalize(d);
    fflush(stdout);
    if (launched > 1 || system("command -v mpirun >/dev/null 2>&1") != 0) return 0;
    /* alone: the same at 2 ranks */
    char cmd[4300], self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 0;
    self[k] = 0;
    snprintf(cmd, sizeof cmd, "mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 %s", self);
    (void)argv;
    return system(cmd) == 0 ? 0 : 1;
}
