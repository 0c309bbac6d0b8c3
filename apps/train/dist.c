/* train under mpirun (lib/dist): one model trained by every rank in step. data.batch_size
 * is the global batch, each rank's loader yields its slice of the same batch a single process
 * would read (so the data order does not depend on the number of ranks); the gradients are
 * averaged with bucketed all-reduces after the backward pass, then every rank applies the
 * same update. Rank 0 alone prints and writes files. A single process never comes here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train.h"

/* Joins the job when launched with more than one process (mpirun sets the environment). */
void dist_start(void) {
    int launched = lz_dist_launched();
    T.rank = 0;
    T.world = 1;
    if (launched <= 1) return;
    if (!lz_dist_built())
        die(EXIT_USAGE, "launched by mpirun as one of %d processes, but this train was built "
            "without MPI: each process would train alone. Install Open MPI (libopenmpi-dev) and "
            "rebuild, or run a single train", launched);
    const char *dev = lz_config_str(T.cfg, "device");
    bool gpu = !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && lz_gpu_available());
    lz_dist_options o = {.timeout_s = lz_config_float(T.cfg, "dist.timeout_s"),
                         .device = gpu ? LZ_GPU : LZ_CPU};
    T.dist = lz_dist_init(&o);
    if (!T.dist) die(EXIT_USAGE, "%s", lz_error());
    T.rank = lz_dist_rank(T.dist);
    T.world = lz_dist_size(T.dist);
    T.bucket_bytes = (size_t)(lz_config_float(T.cfg, "dist.bucket_mb") * 1048576.0);
    /* ranks on one host share its cores: by default each takes its share of them */
    if (!gpu && lz_config_int(T.cfg, "train.threads") == 0) {
        int share = lz_threads() / lz_dist_local_size(T.dist);
        lz_set_threads(share > 0 ? share : 1);
    }
    if (T.rank != 0 && !freopen("/dev/null", "w", stdout))
        die(EXIT_RUNTIME, "cannot silence the output of rank %d", T.rank);
    int64_t bs = lz_config_int(T.cfg, "data.batch_size");
    if (bs % T.world)
        die(EXIT_USAGE, "data.batch_size %lld does not divide over %d ranks: it is the global "
            "batch, split evenly (use a multiple of %d)", (long long)bs, T.world, T.world);
    printf("data parallel: %d ranks (%s), %lld examples per rank and batch, gradient buckets of "
           "%.3g MiB, timeout %g s\n", T.world, lz_dist_backend(T.dist), (long long)(bs / T.world),
           lz_config_float(T.cfg, "dist.bucket_mb"), o.timeout_s);
}

void dist_end(void) {
    lz_dist_finalize(T.dist);
    T.dist = NULL;
}

/* A collective failed (a rank died or hangs): say so on this rank, then end every rank. */
_Noreturn void dist_fail(const char *what) {
    progress_clear();
    fprintf(stderr, "train: rank %d: %s: %s\n", T.rank, what, lz_error());
    fflush(stderr);
    lz_dist_abort(T.dist, EXIT_RUNTIME);
    exit(EXIT_RUNTIME);
}

/* Every parameter and buffer, and the optimizer state, replaced by rank 0's: the ranks start
 * identical (after initialisation, finetune.init_from or --resume). */
void dist_sync_state(void) {
    if (!T.dist) return;
    lz_pool_push();
    for (int i = 0; i < T.all.n; i++) {
        lz_array *a = lz_dist_broadcast(T.dist, *T.all.items[i].slot, 0);
        if (!a) dist_fail("broadcasting the parameters");
        if (lz_param_set(&T.all.items[i], a)) die(EXIT_RUNTIME, "%s", lz_error());
    }
    double count = lz_optim_state_count(T.opt), range[2] = {count, -count};
    if (lz_dist_all_reduce_doubles(T.dist, range, 2, LZ_DIST_MAX)) dist_fail("the optimizer state");
    if (range[0] != count || -range[1] != count)
        die(EXIT_RUNTIME, "rank %d has %g optimizer state entries, others up to %g", T.rank, count,
            range[0]);
    for (int i = 0; i < (int)count; i++) {
        const char *name = lz_optim_state_name(T.opt, i);
        lz_array *a = lz_optim_state_array(T.opt, i);
        lz_array *b = a ? lz_dist_broadcast(T.dist, a, 0) : NULL;
        if (!b) dist_fail("broadcasting the optimizer state");
        char copy[512];
        snprintf(copy, sizeof copy, "%s", name);   /* loading may move the names */
        if (lz_optim_state_load(T.opt, copy, b)) die(EXIT_RUNTIME, "%s", lz_error());
    }   /* a and b belong to the pool (the optimizer retains b) */
    lz_pool_pop();
}

/* The global gradients from this rank's: grads[i] (evaluated by the caller) replaced by the
 * example-weighted mean over the ranks. local: this rank's examples of the batch, total: the
 * batch's. Equal shares (the usual case) are a plain mean. */
void dist_average_grads(int n, lz_array **grads, int64_t local, int64_t total) {
    if (local * T.world != total) {
        double w = (double)local * T.world / (double)total;
        for (int i = 0; i < n; i++) grads[i] = lz_mul_scalar(grads[i], w);
    }
    lz_array **out = T.evals + T.all.n + n;   /* free room past what train_micro uses */
    if (lz_dist_all_reduce_many(T.dist, n, grads, LZ_DIST_MEAN, T.bucket_bytes, out))
        dist_fail("averaging the gradients");
    for (int i = 0; i < n; i++) grads[i] = out[i];   /* in the step's pool */
}

/* The step's figures over the ranks: the loss weighted by examples, hits and examples
 * summed; a stop request on any rank stops all of them at the same step. */
void dist_step_stats(double *loss, int64_t *correct, int64_t *examples) {
    double v[4] = {*loss * (double)*examples, (double)*correct, (double)*examples, stop_requested};
    if (lz_dist_all_reduce_doubles(T.dist, v, 4, LZ_DIST_SUM)) dist_fail("the step's loss");
    *loss = v[2] > 0 ? v[0] / v[2] : NAN;
    *correct = (int64_t)v[1];
    *examples = (int64_t)v[2];
    if (v[3] > 0) stop_requested = 1;
}

/* Validation figures of the shards combined: loss weighted by examples, counts summed. */
void dist_reduce_metrics(lz_model_metrics *r) {
    double v[3] = {r->loss * (double)r->n, (double)r->correct, (double)r->n};
    if (lz_dist_all_reduce_doubles(T.dist, v, 3, LZ_DIST_SUM)) dist_fail("the validation metrics");
    r->loss = v[2] > 0 ? v[0] / v[2] : NAN;
    r->correct = (int64_t)v[1];
    r->n = (int64_t)v[2];
}
