/* Training speed against PyTorch on the same models, batches, optimizers and thread count.
 * Each model: leibniz's full training step (forward, backward, optimizer update, one lz_eval)
 * is timed for a few dozen steps after warm-up, then bench/torch_train.py (run with
 * /usr/bin/python3, torch.set_num_threads(lz_threads())) times the same step right after, so
 * both see about the same machine load. Figures are the median step, scaled to an epoch of
 * 60000 images (MNIST) or given per token (GPT). Data: random uint8 images scaled to [0, 1]
 * and random labels/tokens, generated once and held in memory (speed does not depend on the
 * values); a few batches are cycled.
 *
 *   mnist_mlp   784-512-512-10, ReLU, Adam, batch 128, cross-entropy
 *   mnist_cnn   configs/mnist_cnn.yaml's model: conv 32 3x3 pad 1 -> relu -> maxpool 2 ->
 *               conv 64 3x3 pad 1 -> relu -> maxpool 2 -> flatten -> linear 3136-128 -> relu ->
 *               linear 10, Adam, batch 128
 *   gpt_4l_128d 4 pre-norm blocks, 4 heads, D 128, context 128, batch 32, vocab 65, AdamW
 *
 * GFLOP/s figures count the GEMM/conv/attention work of a step (forward 2 flops per
 * multiply-add, backward twice the forward, minus the input gradient of the first layer),
 * and are set against sgemm_peak_GFLOPs, the best 1024^3 cblas_sgemm on the same threads,
 * measured before and after the models (printed last). They are nominal, direct-form
 * counts: leibniz runs the CNN's 32 -> 64 conv by Winograd F(2x2, 3x3), 2.25x fewer
 * multiply-adds, so its mnist_cnn rate can come near or pass the sgemm rate.
 * Without PyTorch (python3-torch missing) only leibniz's figures are printed.
 * Noise: the machine is shared and its speed drifts (for seconds to minutes at a time), so
 * the models are measured in rounds (BENCH_TRAIN_ROUNDS, default 5: mlp, cnn, gpt, then
 * again), each model's leibniz turn followed at once by PyTorch's (one torch_train.py per
 * model, started once and asked for a round at a time), and each side keeps its best round's
 * median.
 *
 * OpenMP wait policy: unless OMP_WAIT_POLICY is set, the bench re-runs itself with
 * OMP_WAIT_POLICY=passive, which the torch child inherits. With libgomp's default (spin a
 * while at every barrier), a 2-thread run on 2 cores that other processes also use loses
 * whole time slices to a spinning thread waiting for a descheduled one: measured here under
 * a load of ~2, leibniz's MLP epoch varied 2.2 s (passive) .. 59 s (default) and torch's
 * 3.3 .. 150 s, which no ratio survives. OMP_WAIT_POLICY=active measures the spinning case.
 *
 * Environment: BENCH_TRAIN_STEPS (timed steps, default 20), BENCH_TRAIN_ROUNDS (default 5),
 * BENCH_TRAIN_TORCH=0 to skip torch,
 * BENCH_TRAIN_MODELS (a subset of "mlp,cnn,gpt", e.g. for profiling one model),
 * BENCH_TRAIN_THREADS (threads of both sides; default all cores: single-thread figures are
 * the steadier ones while other programs share the machine). */
#include <cblas.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "leibniz.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "bench.h"
#include "bench_gpt.h"

#define NBATCH 4   /* distinct batches held in memory and cycled */

/* CPU time of the process (all threads): with passive waiting it counts the work done and
 * little of the waiting, so it is steadier than wall time when other programs share the cores. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_train: %s: %s\n", what, lz_error());
    exit(1);
}

typedef struct {
    lz_module *m;
    lz_named_list l;
    const char **names;
    lz_optim *opt;
    lz_array *x[NBATCH], *y[NBATCH];
    int cur;
    double cpu, build;   /* best medians so far: CPU time and graph-building time of a step */
} model;

static int loss_fn(void *ctx, lz_module *m, lz_array **out) {
    model *b = ctx;
    out[0] = lz_cross_entropy(lz_module_forward(m, b->x[b->cur], NULL), b->y[b->cur], NULL);
    return out[0] ? 1 : -1;
}

static void setup(model *b, lz_module *m, lz_optim_kind kind) {
    b->m = m;
    b->cur = 0;
    b->cpu = b->build = 1e30;
    if (!m || lz_module_collect(m, LZ_TRAINABLE, &b->l)) die("model");
    b->names = malloc((size_t)b->l.n * sizeof *b->names);
    for (int i = 0; i < b->l.n; i++) b->names[i] = b->l.items[i].name;
    lz_optim_config c = lz_optim_defaults(kind);
    b->opt = lz_optim_new(&c);
    if (!b->opt) die("optimizer");
}

static void teardown(model *b) {
    lz_optim_free(b->opt);
    free(b->names);
    lz_named_list_free(&b->l);
    lz_module_free(b->m);
    for (int i = 0; i < NBATCH; i++) {
        lz_release(b->x[i]);
        lz_release(b->y[i]);
    }
}

/* One training step as an application runs it: the whole step is built in a pool (the
 * pending new parameters and optimizer state are retained by the module and the optimizer),
 * and evaluated as one graph. Returns its wall time. */
static double step(model *b, double *cpu, double *build) {
    int n = b->l.n;
    lz_array *loss, *g[128], *p[128], *next[129];
    if (n > 128) die("too many parameters for the bench");
    double t0 = now(), c0 = cpu_now();
    lz_pool_push();
    if (lz_module_value_and_grad(b->m, &b->l, loss_fn, b, &loss, 1, g) < 1) die("value_and_grad");
    for (int i = 0; i < n; i++) p[i] = *b->l.items[i].slot;
    if (lz_optim_step(b->opt, n, b->names, p, g, next, -1)) die("optim");
    for (int i = 0; i < n; i++) lz_param_set(&b->l.items[i], next[i]);
    next[n] = loss;
    *build = now() - t0;
    if (lz_optim_eval(b->opt, n + 1, next)) die("eval");
    double l = lz_item(loss);
    if (!isfinite(l)) die("loss is not finite");
    lz_pool_pop();
    b->cur = (b->cur + 1) % NBATCH;
    *cpu = cpu_now() - c0;
    return now() - t0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp);
    return t[n / 2];
}

/* The median wall time of reps steps after warmup ones; b->cpu and b->build keep the best
 * medians of the CPU and graph-building times over the calls. */
static double median_step(model *b, int warmup, int reps) {
    double t[256], c[256], g[256];
    if (reps > 256) reps = 256;
    for (int r = 0; r < warmup; r++) step(b, c, g);
    for (int r = 0; r < reps; r++) t[r] = step(b, c + r, g + r);
    double mc = median(c, reps), mg = median(g, reps);
    if (mc < b->cpu) b->cpu = mc;
    if (mg < b->build) b->build = mg;
    return median(t, reps);
}

/* Random uint8 pixels scaled to [0, 1], as a data loader would hand them over. */
static lz_array *images(int nd, const int64_t *s, unsigned seed) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    float *h = malloc((size_t)n * sizeof *h);
    srand(seed);
    for (int64_t i = 0; i < n; i++) h[i] = (float)(rand() & 255) / 255.0f;
    lz_array *a = lz_from_data(h, nd, s, LZ_F32);
    free(h);
    if (!a) die("data");
    return a;
}

static lz_array *labels(int nd, const int64_t *s, int64_t hi, unsigned seed) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    int64_t *h = malloc((size_t)n * sizeof *h);
    srand(seed);
    for (int64_t i = 0; i < n; i++) h[i] = rand() % hi;
    lz_array *a = lz_from_data(h, nd, s, LZ_I64);
    free(h);
    if (!a) die("data");
    return a;
}

/* ---- PyTorch side ---- */
static int torch_ok = -1;   /* unknown, 0 missing, 1 present */

static int wanted(const char *name) {
    const char *e = getenv("BENCH_TRAIN_MODELS");
    return !e || strstr(e, name) != NULL;
}

static int have_torch(void) {
    if (torch_ok < 0) {
        const char *e = getenv("BENCH_TRAIN_TORCH");
        if (e && !strcmp(e, "0")) torch_ok = 0;
        else torch_ok = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
        if (!torch_ok)
            printf("bench_train: PyTorch (python3-torch for /usr/bin/python3) not available: "
                   "leibniz figures only\n");
    }
    return torch_ok;
}

/* A PyTorch side kept running for one model (torch_train.py ... serve): built once, it
 * times a round each time it is asked, so rounds alternate with leibniz's without paying
 * Python's start-up in between. */
typedef struct {
    pid_t pid;
    FILE *to, *from;
} torch_proc;

static int torch_start(torch_proc *p, const char *which, int steps) {
    *p = (torch_proc){.pid = -1};
    if (!have_torch()) return -1;
    /* the script: bench/ of the working directory (make runs from the root), else of the
     * tree the binary was built in (build/<variant>/bench/bench_train) */
    char script[400] = "bench/torch_train.py", exe[300];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (access(script, R_OK) && len > 0) {
        exe[len] = 0;
        snprintf(script, sizeof script, "%s/../../../bench/torch_train.py", dirname(exe));
    }
    char threads[16], nsteps[16];
    snprintf(threads, sizeof threads, "%d", lz_threads());
    snprintf(nsteps, sizeof nsteps, "%d", steps);
    int in[2], out[2];   /* close-on-exec: another model's child must not hold them open */
    if (pipe2(in, O_CLOEXEC)) return -1;
    if (pipe2(out, O_CLOEXEC)) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execl("/usr/bin/python3", "python3", script, which, threads, nsteps, "serve", (char *)NULL);
        perror("bench_train: /usr/bin/python3");
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return -1;
    }
    p->pid = pid;
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    return p->to && p->from ? 0 : -1;
}

/* One round of the torch side: its median step time in seconds (or -1); *cpu keeps the best
 * median CPU time of a step over the rounds. */
static double torch_round(torch_proc *p, const char *which, double *cpu) {
    if (p->pid < 0) return -1;
    if (fputs("go\n", p->to) == EOF || fflush(p->to)) return -1;
    char line[512];
    while (fgets(line, sizeof line, p->from)) {
        double t, c;
        char name[64];
        if (sscanf(line, "TORCH %63s %lf %lf", name, &t, &c) == 3 && !strcmp(name, which)) {
            if (c < *cpu) *cpu = c;
            return t;
        }
        fprintf(stderr, "torch_train.py: %s", line);
    }
    printf("bench_train: torch_train.py %s failed: no PyTorch figure\n", which);
    return -1;
}

static void torch_stop(torch_proc *p) {
    if (p->to) fclose(p->to);      /* end of input: the script returns */
    if (p->from) fclose(p->from);
    if (p->pid > 0) waitpid(p->pid, NULL, 0);
    *p = (torch_proc){.pid = -1};
}

/* An MNIST model's epoch figures (tts <= 0: no PyTorch figure); returns its GFLOP/s. */
static double report_epoch(const char *name, double ts, double tts, double flops) {
    printf("BENCH %s_epoch_s %.2f s\n", name, ts);
    if (tts > 0) printf("BENCH %s_epoch_torch_s %.2f s\n", name, tts);
    if (tts > 0) printf("BENCH %s_speedup %.2f x\n", name, tts / ts);
    printf("BENCH %s_GFLOPs %.1f GFLOP/s\n", name, flops / ts * 1e-9);
    if (tts > 0) printf("BENCH %s_GFLOPs_torch %.1f GFLOP/s\n", name, flops / tts * 1e-9);
    return flops / ts * 1e-9;
}

/* The noise-robust companions of a model's figures: CPU time per step on each side and their
 * ratio, and the time leibniz spends building a step's graph (forward, autograd, optimizer)
 * before evaluating it. */
static void report_cpu(const char *name, const model *b, double torch_cpu) {
    printf("BENCH %s_step_cpu_ms %.1f ms\n", name, 1e3 * b->cpu);
    if (torch_cpu < 1e30) {
        printf("BENCH %s_step_cpu_ms_torch %.1f ms\n", name, 1e3 * torch_cpu);
        printf("BENCH %s_cpu_speedup %.2f x\n", name, torch_cpu / b->cpu);
    }
    printf("BENCH %s_graph_build_ms %.2f ms\n", name, 1e3 * b->build);
    fflush(stdout);
}

static double sgemm_peak(void) { return sgemm_peak_reps(11); }

/* min of two measurements, ignoring failed (<= 0) ones */
static double best2(double a, double b) {
    if (a <= 0) return b;
    if (b <= 0) return a;
    return a < b ? a : b;
}

int main(int argc, char **argv) {
    (void)argc;
    if (!getenv("OMP_WAIT_POLICY")) {   /* libgomp reads it at start-up: run again with it */
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        perror("bench_train: re-exec");   /* carry on with the default policy */
    }
    const char *e = getenv("BENCH_TRAIN_THREADS");
    if (e && atoi(e) > 0) lz_set_threads(atoi(e));
    e = getenv("BENCH_TRAIN_STEPS");
    int steps = e && atoi(e) > 0 ? atoi(e) : 20, threads = lz_threads();
    double epoch_steps = 60000.0 / 128.0;
    printf("bench_train: %d threads (leibniz and torch), %d timed steps per model, OMP_WAIT_POLICY=%s\n",
           threads, steps, getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(default)");
    printf("bench_train: leibniz BLAS: %s\n", openblas_get_config());
    double peak = sgemm_peak(), achieved[3] = {0, 0, 0};
    e = getenv("BENCH_TRAIN_ROUNDS");
    int rounds = e && atoi(e) > 0 ? atoi(e) : 5;

    static const char *const key[3] = {"mlp", "cnn", "gpt"};
    static const char *const torch_name[3] = {"mnist_mlp", "mnist_cnn", "gpt"};
    model b[3];
    bool on[3];
    int reps[3] = {steps * 2, steps, steps / 2 > 5 ? steps / 2 : 5};
    double t[3], tt[3], tc[3];
    for (int k = 0; k < 3; k++) {
        on[k] = wanted(key[k]);
        t[k] = tt[k] = -1;
        tc[k] = 1e30;
    }
    if (on[0]) {   /* MNIST MLP */
        setup(&b[0], lz_nn_sequential(5, (lz_module *[]){lz_nn_linear(784, 512, true, lz_key_new(1)), lz_nn_relu(),
                                                         lz_nn_linear(512, 512, true, lz_key_new(2)), lz_nn_relu(),
                                                         lz_nn_linear(512, 10, true, lz_key_new(3))}),
              LZ_ADAM);
        int64_t xs[2] = {128, 784}, ys = 128;
        for (int i = 0; i < NBATCH; i++) {
            b[0].x[i] = images(2, xs, 100 + i);
            b[0].y[i] = labels(1, &ys, 10, 200 + i);
        }
    }
    if (on[1]) {   /* MNIST CNN */
        int k3[2] = {3, 3}, k2[2] = {2, 2}, p1[2] = {1, 1};
        setup(&b[1], lz_nn_sequential(10, (lz_module *[]){
                         lz_nn_conv2d(1, 32, k3, NULL, p1, NULL, 1, true, lz_key_new(1)), lz_nn_relu(),
                         lz_nn_max_pool2d(k2, NULL, NULL),
                         lz_nn_conv2d(32, 64, k3, NULL, p1, NULL, 1, true, lz_key_new(2)), lz_nn_relu(),
                         lz_nn_max_pool2d(k2, NULL, NULL), lz_nn_flatten(1, -1),
                         lz_nn_linear(64 * 7 * 7, 128, true, lz_key_new(3)), lz_nn_relu(),
                         lz_nn_linear(128, 10, true, lz_key_new(4))}),
              LZ_ADAM);
        int64_t xs[4] = {128, 1, 28, 28}, ys = 128;
        for (int i = 0; i < NBATCH; i++) {
            b[1].x[i] = images(4, xs, 300 + i);
            b[1].y[i] = labels(1, &ys, 10, 400 + i);
        }
    }
    const int64_t V = 65, D = 128, T = 128, B = 32, L = 4;
    if (on[2]) {   /* character-level GPT */
        setup(&b[2], bench_gpt_new(V, D, T, (int)L, 4), LZ_ADAMW);
        int64_t ts[2] = {B, T};
        for (int i = 0; i < NBATCH; i++) {
            b[2].x[i] = labels(2, ts, V, 500 + i);
            b[2].y[i] = labels(2, ts, V, 600 + i);
        }
    }
    /* Rounds spread each model's measurements over the whole run: the host's speed drifts
     * for tens of seconds at a time, and a model measured in one stretch could fall wholly
     * inside a slow one while PyTorch's turn did not (or the reverse). Each side keeps its
     * best round. */
    torch_proc tp[3];
    for (int k = 0; k < 3; k++)
        if (!on[k] || torch_start(&tp[k], torch_name[k], reps[k])) tp[k] = (torch_proc){.pid = -1};
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            if (!on[k]) continue;
            t[k] = best2(t[k], median_step(&b[k], r == 0 ? 5 : 1, reps[k]));
            tt[k] = best2(tt[k], torch_round(&tp[k], torch_name[k], &tc[k]));
        }
    for (int k = 0; k < 3; k++) torch_stop(&tp[k]);

    if (on[0]) {
        double ts = t[0] * epoch_steps, tts = tt[0] > 0 ? tt[0] * epoch_steps : -1;
        /* forward 2 (784*512 + 512*512 + 512*10) per sample; backward: weight gradients of all
         * layers and input gradients of the last two */
        double fwd = 2.0 * (784 * 512 + 512 * 512 + 512 * 10);
        double flops = 60000.0 * (fwd + fwd + 2.0 * (512 * 512 + 512 * 10));
        achieved[0] = report_epoch("mnist_mlp", ts, tts, flops);
        report_cpu("mnist_mlp", &b[0], tc[0]);
        teardown(&b[0]);
    }
    if (on[1]) {
        double ts = t[1] * epoch_steps, tts = tt[1] > 0 ? tt[1] * epoch_steps : -1;
        double c1 = 2.0 * 28 * 28 * 32 * 9, c2 = 2.0 * 14 * 14 * 64 * 32 * 9;
        double l1 = 2.0 * 3136 * 128, l2 = 2.0 * 128 * 10;
        /* conv1 has no input gradient */
        double flops = 60000.0 * (2 * c1 + 3 * (c2 + l1 + l2));
        achieved[1] = report_epoch("mnist_cnn", ts, tts, flops);
        report_cpu("mnist_cnn", &b[1], tc[1]);
        teardown(&b[1]);
    }
    if (on[2]) {
        double tok = (double)(B * T);
        /* per token: linear layers 6 flops per weight (forward, both gradients), attention
         * scores and values 2 * 2 T D forward per layer, three times that with backward,
         * counted over the full T x T as PyTorch's masked step computes them (leibniz's
         * kernels skip most of the causal half, so its own count is lower) */
        double weights = (double)L * 12 * D * D + D * V;
        double flops = tok * (6 * weights + 3 * L * 4.0 * T * D);
        printf("BENCH gpt_4l_128d_tokens_per_s %.0f tokens/s\n", tok / t[2]);
        if (tt[2] > 0) printf("BENCH gpt_4l_128d_tokens_per_s_torch %.0f tokens/s\n", tok / tt[2]);
        if (tt[2] > 0) printf("BENCH gpt_speedup %.2f x\n", tt[2] / t[2]);
        printf("BENCH gpt_4l_128d_GFLOPs %.1f GFLOP/s\n", flops / t[2] * 1e-9);
        if (tt[2] > 0) printf("BENCH gpt_4l_128d_GFLOPs_torch %.1f GFLOP/s\n", flops / tt[2] * 1e-9);
        achieved[2] = flops / t[2] * 1e-9;
        report_cpu("gpt_4l_128d", &b[2], tc[2]);
        teardown(&b[2]);
    }
    double again = sgemm_peak();
    if (again > peak) peak = again;
    printf("BENCH sgemm_peak_GFLOPs %.1f GFLOP/s\n", peak);
    static const char *names[3] = {"mnist_mlp", "mnist_cnn", "gpt_4l_128d"};
    for (int i = 0; i < 3; i++)
        if (achieved[i] > 0) printf("BENCH %s_of_peak %.0f %%\n", names[i], 100.0 * achieved[i] / peak);
    return 0;
}
