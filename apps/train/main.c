/* train CONFIG.yaml [key=value ...] [--resume RUN_DIR_OR_CHECKPOINT]
 *
 * Trains the model of an experiment config on its data set and writes runs/<name>/:
 * config.yaml (effective), last.h5 and best.h5, metrics.jsonl, curves.png, samples.png.
 * Exit codes: 0 ok, 1 runtime failure (NaN loss, I/O error), 2 bad usage/config/input,
 * 130 interrupted (Ctrl-C: the step finishes, last.h5 is written). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "train.h"
#include "../preflight.h"

trainer T;
volatile sig_atomic_t stop_requested;

double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Under mpirun: a usage error is met by every rank alike, so rank 0 says it and all leave
 * the job together; any other error may be this rank's alone, so it names the rank and ends
 * every rank (the others would wait in the next collective). */
_Noreturn void die(int code, const char *fmt, ...) {
    progress_clear();
    bool quiet = T.dist && code == EXIT_USAGE && T.rank != 0;
    va_list ap;
    va_start(ap, fmt);
    if (T.dist && code != EXIT_USAGE) fprintf(stderr, "train: rank %d: ", T.rank);
    else if (!quiet) fputs("train: ", stderr);
    if (!quiet) { vfprintf(stderr, fmt, ap); fputc('\n', stderr); }
    va_end(ap);
    if (T.dist && code == EXIT_USAGE) dist_end();
    else if (T.dist) { fflush(stderr); lz_dist_abort(T.dist, code); }
    exit(code);
}

static void on_sigint(int sig) {
    (void)sig;
    if (stop_requested) {
        /* a second Ctrl-C: leave now. Checkpoints are written to a temporary file and
         * renamed, so nothing visible is half-written. */
        static const char msg[] = "\ntrain: interrupted again, exiting now\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {}
        _exit(EXIT_INTERRUPTED);
    }
    stop_requested = 1;
    static const char msg[] = "\ntrain: interrupted: finishing the step and writing last.h5 "
                              "(Ctrl-C again to exit at once)\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {}
}

#define USAGE "train CONFIG.yaml [key.sub=value ...] [--resume RUN_DIR_OR_CHECKPOINT]"

static _Noreturn void usage(int code) {
    if (code) {
        fprintf(stderr, "usage: %s (train --help says more)\n", USAGE);
        exit(code);
    }
    printf("usage: %s\n"
           "       train --resume RUN_DIR_OR_CHECKPOINT [key.sub=value ...]\n"
           "Trains the experiment CONFIG (see configs/README.md) and writes <out_dir>/<name>/:\n"
           "config.yaml (effective), last.h5, best.h5, metrics.jsonl, curves.png, samples.png;\n"
           "with finetune.lora, for the best checkpoint also adapter.h5 (the adapters alone)\n"
           "and merged.h5 (the adapters folded into the weights).\n"
           "Overrides are YAML values, e.g. optimizer.lr=3e-4 train.epochs=2.\n"
           "--resume continues a run exactly from a checkpoint (a run folder: its last.h5);\n"
           "without CONFIG it uses the config stored in the checkpoint.\n"
           "Ctrl-C finishes the step, writes last.h5 and exits 130 (twice: exit at once).\n"
           "Exit codes: 0 done, 1 runtime failure (e.g. NaN loss), 2 bad usage, config or input.\n",
           USAGE);
    exit(0);
}

/* ---- setup ---- */

static const char *resume_path(const char *arg, char *buf, size_t n) {
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(buf, n, "%s/last.h5", arg);
        return buf;
    }
    return arg;
}

static void load_config(const char *config, int nover, const char *const *over,
                        const char *resume) {
    if (config) {
        if (access(config, R_OK) != 0)
            die(EXIT_USAGE, "%s: cannot read the config: %s", config, strerror(errno));
        T.cfg = lz_config_load(config, nover, over);
        T.config_name = config;
    } else {
        lz_ckpt *c = lz_ckpt_open(resume);
        if (!c) die(EXIT_USAGE, "%s", lz_error());
        const char *text = lz_ckpt_get_str(c, "config");
        if (!text) die(EXIT_USAGE, "%s: not a checkpoint written by train (no config in it)", resume);
        T.cfg = lz_config_load_string(text, resume, nover, over);
        lz_ckpt_close(c);
        T.config_name = resume;
    }
    if (!T.cfg) die(EXIT_USAGE, "%s", lz_error());
}

/* The repository root (the nearest folder above the executable with datasets/ in it), where
 * the fetch scripts live; "" if not found. */
static const char *repo_root(void) {
    static char root[4096];
    ssize_t n = readlink("/proc/self/exe", root, sizeof root - 1);
    if (n <= 0) return "";
    root[n] = 0;
    char probe[4200];
    for (int up = 0; up < 4; up++) {
        char *s = strrchr(root, '/');
        if (!s || s == root) return "";
        *s = 0;
        /* a script, not the folder: build/<dir>/datasets holds the converter's objects */
        snprintf(probe, sizeof probe, "%s/datasets/common.sh", root);
        if (access(probe, R_OK) == 0) return root;
    }
    return "";
}

/* The data file is missing: say which command makes it. */
static _Noreturn void missing_data(const char *path) {
    char origin[256];
    lz_config_origin(T.cfg, "data.path", origin, sizeof origin);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char stem[256], script[4400], cwd[4096];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    const char *root = repo_root();
    bool here = getcwd(cwd, sizeof cwd) && !strcmp(cwd, root);
    snprintf(script, sizeof script, "%s%sdatasets/%s.sh", here ? "" : root, here ? "" : "/", stem);
    if (root[0] && access(script, X_OK) == 0) {
        if (here && !strncmp(path, "data/", 5) && !strchr(path + 5, '/'))
            die(EXIT_USAGE, "data file %s (data.path, %s) does not exist; make it with "
                "'make %s' (or '%s %s')", path, origin, path, script, path);
        die(EXIT_USAGE, "data file %s (data.path, %s) does not exist; make it with '%s %s'",
            path, origin, script, path);
    }
    die(EXIT_USAGE, "data file %s (data.path, %s) does not exist (datasets/README.md says how "
        "to convert a data set)", path, origin);
}

static void open_data(void) {
    T.data_path = lz_config_str(T.cfg, "data.path");
    if (access(T.data_path, F_OK) != 0) missing_data(T.data_path);
    lz_model_loader_opts o;
    if (lz_model_loader_options(T.cfg, true, 0, &o)) die(EXIT_USAGE, "%s", lz_error());
    const char *split = lz_config_str(T.cfg, "data.train_split");
    bool lm = !strcmp(lz_config_str(T.cfg, "model.type"), "transformer");
    if (lm) {   /* text windows of the context */
        int64_t mctx = lz_config_int(T.cfg, "model.context");
        T.context = lz_config_has(T.cfg, "data.context") ? lz_config_int(T.cfg, "data.context") : mctx;
        if (T.context > mctx)
            die(EXIT_USAGE, "data.context %lld exceeds model.context %lld", (long long)T.context,
                (long long)mctx);
        o.o.context = T.context;
    }
    o.o.shards = T.world;   /* each rank reads its slice of every batch */
    o.o.shard = T.rank;
    T.train = lz_loader_open(T.data_path, split, &o.o);
    if (!T.train) die(EXIT_USAGE, "%s", lz_error());
    const lz_data_info *in = lz_loader_info(T.train);
    T.text = in->kind == LZ_DATA_TEXT;
    if (T.text != lm)
        die(EXIT_USAGE, "%s: split '%s' holds %s, but model.type '%s' %s", T.data_path, split,
            T.text ? "text" : "images", lz_config_str(T.cfg, "model.type"),
            lm ? "is a language model (it takes text)" : "takes images (use transformer for text)");
    if (T.text) {
        if (in->vocab_size <= 0)
            die(EXIT_USAGE, "%s: no 'vocab' attribute: the vocabulary is unknown", T.data_path);
        T.shape = (lz_model_shape){0, 0, 0, in->vocab_size};
        T.classes = in->vocab;
    } else {
        if (!in->has_labels) die(EXIT_USAGE, "%s: split '%s' has no labels", T.data_path, split);
        if (in->num_classes <= 0)
            die(EXIT_USAGE, "%s: no 'classes' attribute: the number of classes is unknown", T.data_path);
        T.shape = (lz_model_shape){in->channels, in->height, in->width, in->num_classes};
        T.classes = in->classes;
    }
    T.batches_per_epoch = lz_loader_batches(T.train);
    if (T.batches_per_epoch <= 0)
        die(EXIT_USAGE, "%s: split '%s' gives no batch (%lld examples, batch size %lld, drop_last)",
            T.data_path, split, (long long)in->length, (long long)o.o.batch_size);
    if (!lz_config_has(T.cfg, "data.val_split")) return;
    T.val_split = lz_config_str(T.cfg, "data.val_split");
    if (lz_model_loader_options(T.cfg, false, 0, &o)) die(EXIT_USAGE, "%s", lz_error());
    o.o.context = T.context;
    o.o.shards = T.world;
    o.o.shard = T.rank;
    T.val = lz_loader_open(T.data_path, T.val_split, &o.o);
    if (!T.val) die(EXIT_USAGE, "%s (data.val_split)", lz_error());
    const lz_data_info *vi = lz_loader_info(T.val);
    if (T.text) {
        if (vi->kind != LZ_DATA_TEXT || vi->vocab_size != in->vocab_size)
            die(EXIT_USAGE, "%s: split '%s' is not text with the vocabulary of split '%s' (%d tokens)",
                T.data_path, T.val_split, split, in->vocab_size);
        return;
    }
    if (vi->channels != in->channels || vi->height != in->height || vi->width != in->width ||
        !vi->has_labels)
        die(EXIT_USAGE, "%s: split '%s' (%dx%dx%d%s) does not match split '%s' (%dx%dx%d)",
            T.data_path, T.val_split, vi->channels, vi->height, vi->width,
            vi->has_labels ? "" : ", no labels", split, in->channels, in->height, in->width);
    T.val_images = lz_dataset_open(T.data_path, T.val_split);
}

static lz_optim *make_optimizer(void) {
    const lz_config *c = T.cfg;
    const char *name = lz_config_str(c, "optimizer.name");
    lz_optim_kind kind = LZ_OPTIM_NKINDS;
    for (int k = 0; k < LZ_OPTIM_NKINDS; k++)
        if (!strcmp(name, lz_optim_kind_name((lz_optim_kind)k))) kind = (lz_optim_kind)k;
    if (kind == LZ_OPTIM_NKINDS) die(EXIT_USAGE, "optimizer '%s' is not available", name);
    lz_optim_config o = lz_optim_defaults(kind);
    o.lr = lz_config_float(c, "optimizer.lr");
    o.weight_decay = lz_config_float(c, "optimizer.weight_decay");
    if (kind == LZ_ADAM || kind == LZ_ADAMW || kind == LZ_LION) {
        o.betas[0] = lz_config_float(c, "optimizer.betas.0");
        o.betas[1] = lz_config_float(c, "optimizer.betas.1");
    }
    if (kind != LZ_SGD && kind != LZ_LION) o.eps = lz_config_float(c, "optimizer.eps");
    if (kind == LZ_SGD || kind == LZ_RMSPROP) o.momentum = lz_config_float(c, "optimizer.momentum");
    if (kind == LZ_SGD) o.nesterov = lz_config_bool(c, "optimizer.nesterov");
    if (kind == LZ_RMSPROP) o.alpha = lz_config_float(c, "optimizer.alpha");
    lz_optim *opt = lz_optim_new(&o);
    if (!opt) die(EXIT_USAGE, "optimizer: %s", lz_error());
    /* language models: weight decay on the matrices only (GPT-2 / nanoGPT), not on biases and
     * norm gains, which decay would pull towards 0 rather than towards "no change" */
    if (!strcmp(lz_config_str(c, "model.type"), "transformer") && o.weight_decay > 0) {
        lz_optim_config g = o;
        g.weight_decay = 0;
        if (lz_optim_add_group(opt, "*.bias,*norm*", &g) < 0) die(EXIT_USAGE, "optimizer: %s", lz_error());
    }
    return opt;
}

static lz_schedule *make_schedule(void) {
    const lz_config *c = T.cfg;
    const char *name = lz_config_str(c, "schedule.name");
    double lr = lz_config_float(c, "optimizer.lr");
    int64_t warm = lz_config_int(c, "schedule.warmup_steps");
    lz_schedule *s = NULL;
    if (!strcmp(name, "constant")) s = lz_schedule_constant(lr);
    else if (!strcmp(name, "step"))
        s = lz_schedule_step(lr, lz_config_int(c, "schedule.step_size"),
                             lz_config_float(c, "schedule.gamma"));
    else if (!strcmp(name, "exponential"))
        s = lz_schedule_exponential(lr, pow(lz_config_float(c, "schedule.gamma"),
                                            1.0 / (double)lz_config_int(c, "schedule.step_size")));
    else if (!strcmp(name, "multistep")) {
        int n = lz_config_len(c, "schedule.milestones");
        int64_t ms[256];
        char p[64];
        if (n > 256) die(EXIT_USAGE, "schedule.milestones: more than 256");
        for (int i = 0; i < n; i++) {
            snprintf(p, sizeof p, "schedule.milestones.%d", i);
            ms[i] = lz_config_int(c, p);
        }
        s = lz_schedule_multistep(lr, n, ms, lz_config_float(c, "schedule.gamma"));
    } else {   /* cosine, warmup_cosine */
        int64_t total = lz_config_has(c, "schedule.total_steps")
                            ? lz_config_int(c, "schedule.total_steps") : T.total_steps;
        double min_lr = lz_config_float(c, "schedule.min_lr");
        if (total <= warm)
            die(EXIT_USAGE, "schedule: total_steps (%lld) must exceed warmup_steps (%lld)",
                (long long)total, (long long)warm);
        if (!strcmp(name, "warmup_cosine")) {
            if (warm <= 0) die(EXIT_USAGE, "schedule.name warmup_cosine needs warmup_steps > 0");
            s = lz_schedule_warmup_cosine(lr, warm, total, min_lr);
            warm = 0;
        } else {
            s = lz_schedule_cosine(lr, total - warm, min_lr);
        }
    }
    if (s && warm > 0) {
        lz_schedule *parts[2] = {lz_schedule_linear(0, lr, warm), s};
        s = lz_schedule_join(2, parts, &warm);
    }
    if (!s) die(EXIT_USAGE, "schedule: %s", lz_error());
    return s;
}

static void make_run_dir(void) {
    const char *out = lz_config_str(T.cfg, "train.out_dir"), *name = lz_config_str(T.cfg, "name");
    snprintf(T.run_dir, sizeof T.run_dir, "%s/%s", out, name);
    snprintf(T.last_path, sizeof T.last_path, "%s/last.h5", T.run_dir);
    snprintf(T.best_path, sizeof T.best_path, "%s/best.h5", T.run_dir);
    snprintf(T.metrics_path, sizeof T.metrics_path, "%s/metrics.jsonl", T.run_dir);
    if (T.rank != 0) return;   /* rank 0 alone writes files */
    /* mkdir -p */
    char path[4096];
    snprintf(path, sizeof path, "%s", T.run_dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char keep = *p;
            *p = 0;
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                die(EXIT_USAGE, "cannot create the output folder %s: %s (train.out_dir)", path,
                    strerror(errno));
            *p = keep;
            if (!keep) break;
        }
    }
    struct stat st;
    if (stat(T.run_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die(EXIT_USAGE, "the output folder %s is not a folder (train.out_dir)", T.run_dir);
    if (access(T.run_dir, W_OK) != 0)
        die(EXIT_USAGE, "cannot write to the output folder %s: %s (train.out_dir)", T.run_dir,
            strerror(errno));
}

/* A resumed run continues metrics.jsonl from the checkpoint's step: records of later steps
 * (written by the run after that checkpoint) are dropped, so the log and curves.png tell one
 * history. */
static void trim_metrics(int64_t max_step) {
    if (T.rank != 0) return;
    FILE *in = fopen(T.metrics_path, "r");
    if (!in) return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", T.metrics_path, (int)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) { fclose(in); die(EXIT_USAGE, "cannot write %s: %s", tmp, strerror(errno)); }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        const char *st = strstr(line, "\"step\":");
        if (st && strtoll(st + 7, NULL, 10) > max_step) continue;
        fputs(line, out);
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, T.metrics_path) != 0) {
        unlink(tmp);
        die(EXIT_RUNTIME, "cannot rewrite %s: %s", T.metrics_path, strerror(errno));
    }
}

static void write_config(void) {
    if (T.rank != 0) return;
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/config.yaml", T.run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) die(EXIT_USAGE, "cannot write %s: %s", path, strerror(errno));
    int bad = lz_config_dump(T.cfg, f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        die(EXIT_RUNTIME, "cannot write %s: %s", path, bad ? lz_error() : strerror(errno));
    }
}

/* ---- the step ---- */

typedef struct {
    lz_array *x, *y;
    lz_key key;
} step_ctx;

static int loss_fn(void *p, lz_module *m, lz_array **out) {
    step_ctx *c = p;
    lz_array *logits = lz_module_forward(m, c->x, &c->key);
    out[0] = lz_model_loss(T.cfg, logits, c->y);
    out[1] = lz_sum(lz_astype(lz_equal(lz_argmax(logits, -1, 0), c->y), LZ_I32), NULL, 0, 0);
    return out[0] && out[1] ? 2 : -1;
}

/* Micro-batch `micro` of `nmicro` of one optimizer step on batch b. The gradients of the
 * micro-batches are averaged (kept evaluated in T.accum between them); the last one clips,
 * updates and evaluates everything in one lz_eval: the model's parameters and buffers, the
 * optimizer state, loss and hits. With nmicro 1 (no accumulation) that is the whole step in
 * one graph. Returns the micro-batch's loss; *correct gets its number of right predictions. */
static double train_micro(lz_batch *b, double lr, int micro, int nmicro, int64_t *correct) {
    int n = T.params.n;
    bool last = micro == nmicro - 1;
    lz_array *loss = NULL, *hits = NULL;
    lz_pool_push();
    lz_key key = lz_key_fold(T.key, (uint64_t)T.step);
    if (micro > 0) key = lz_key_fold(key, (uint64_t)micro);
    step_ctx ctx = {b->x, b->y, key};
    lz_array *outs[2] = {NULL, NULL};
    lz_array **grads = T.next;   /* reused below for the new parameters */
    int rc = lz_module_value_and_grad(T.model, &T.params, loss_fn, &ctx, outs, 2, grads);
    for (int i = 0; i < n && rc >= 0 && nmicro > 1; i++) {
        grads[i] = lz_mul_scalar(grads[i], 1.0 / nmicro);
        if (micro > 0) grads[i] = lz_add(T.accum[i], grads[i]);
        if (!grads[i]) rc = -1;
    }
    if (rc >= 0 && !last) {
        for (int i = 0; i < n; i++) {
            lz_release(T.accum[i]);
            T.accum[i] = lz_retain(grads[i]);
        }
    }
    if (rc >= 0 && last && T.dist) {
        /* data parallel: the gradients are computed (with the loss and hits) before they
         * travel, then replaced by their mean over the ranks; the update that follows is the
         * same on every rank */
        int k = 0;
        for (int i = 0; i < n; i++) T.evals[k++] = grads[i];
        T.evals[k++] = outs[0];
        T.evals[k++] = outs[1];
        if (lz_eval(k, T.evals)) rc = -1;
        else dist_average_grads(n, grads, b->size, b->total);
    }
    if (rc >= 0 && last && T.clip > 0) {
        lz_array **clipped = T.evals;
        rc = lz_clip_grad_norm(n, grads, T.clip, clipped, NULL);
        for (int i = 0; i < n && rc >= 0; i++) grads[i] = clipped[i];
    }
    for (int i = 0; i < n; i++) T.cur[i] = *T.params.items[i].slot;
    lz_array **next = T.evals;   /* the step does not read grads after writing next */
    if (rc >= 0 && last) rc = lz_optim_step(T.opt, n, T.names, T.cur, grads, next, lr);
    for (int i = 0; i < n && rc >= 0 && last; i++) rc = lz_param_set(&T.params.items[i], next[i]);
    if (rc >= 0) {
        loss = lz_retain(outs[0]);
        hits = lz_retain(outs[1]);
    }
    lz_pool_pop();
    if (rc < 0) die(EXIT_RUNTIME, "step %lld: %s", (long long)T.step + 1, lz_error());
    /* one graph: every parameter and buffer of the model (and the accumulated gradients, or
     * the optimizer state), loss, hits */
    int k = 0;
    for (int i = 0; i < T.all.n; i++) T.evals[k++] = *T.all.items[i].slot;
    if (!last)
        for (int i = 0; i < n; i++) T.evals[k++] = T.accum[i];
    T.evals[k++] = loss;
    T.evals[k++] = hits;
    if (last ? lz_optim_eval(T.opt, k, T.evals) : lz_eval(k, T.evals))
        die(EXIT_RUNTIME, "step %lld: %s", (long long)T.step + 1, lz_error());
    if (last)
        for (int i = 0; i < n; i++) { lz_release(T.accum[i]); T.accum[i] = NULL; }
    double l = lz_item(loss);
    *correct = (int64_t)lz_item(hits);
    lz_release(loss);
    lz_release(hits);
    return l;
}

/* ---- evaluation ---- */

static int validate(bool samples) {
    if (!T.val) return 0;
    lz_model_metrics r;
    int rc = lz_model_evaluate(T.model, T.cfg, T.val, T.shape.num_classes, samples ? 32 : 0,
                               (volatile const int *)&stop_requested, &r);
    lz_module_train(T.model, true);
    if (rc < 0) die(EXIT_RUNTIME, "validation: %s", lz_error());
    if (rc == 1) return 1;   /* interrupted */
    if (T.dist) dist_reduce_metrics(&r);
    double acc = (double)r.correct / (double)r.n;
    /* text: the best checkpoint is the lowest loss (kept as its negative in best_acc) */
    double score = T.text ? -r.loss : acc;
    T.last_val_loss = r.loss;
    T.last_val_acc = acc;
    T.last_val_step = T.step;
    const char *keys[] = {"epoch", "loss", "accuracy"};
    double vals[] = {(double)T.epoch + (double)T.batch / (double)T.batches_per_epoch, r.loss, acc};
    if (T.metrics && lz_metrics_log(T.metrics, "eval", T.step, 3, keys, vals))
        die(EXIT_RUNTIME, "%s", lz_error());
    bool best = score > T.best_acc || T.best_step < 0;
    progress_clear();
    if (T.text)
        printf("eval  step %lld  epoch %.2f  %s: loss %.4f nats/token (%.3f bits, perplexity %.2f)  "
               "next-token accuracy %.2f%%%s\n", (long long)T.step, vals[0], T.val_split, r.loss,
               r.loss / log(2.0), exp(r.loss), 100 * acc, best ? "  best so far" : "");
    else
    printf("eval  step %lld  epoch %.2f  %s: loss %.4f  accuracy %.2f%% (%lld/%lld)%s\n",
           (long long)T.step, vals[0], T.val_split, r.loss, 100 * acc, (long long)r.correct,
           (long long)r.n, best ? "  best so far" : "");
    fflush(stdout);
    if (best) {
        T.best_acc = score;
        T.best_step = T.step;
        if (save_checkpoint(T.best_path)) die(EXIT_RUNTIME, "%s", lz_error());
    }
    if (samples && write_samples(&r)) fprintf(stderr, "train: samples.png: %s\n", lz_error());
    lz_model_metrics_free(&r);
    return 0;
}

/* ---- main ---- */

static void cleanup(void) {
    for (int i = 0; T.accum && i < T.params.n; i++) { lz_release(T.accum[i]); T.accum[i] = NULL; }
    lz_schedule_free(T.sched);
    lz_optim_free(T.opt);
    lz_named_list_free(&T.params);
    lz_named_list_free(&T.all);
    lz_module_free(T.model);
    lz_loader_close(T.train);
    lz_loader_close(T.val);
    lz_dataset_close(T.val_images);
    lz_config_free(T.cfg);
    for (int i = 0; T.accum && i < T.params.n; i++) lz_release(T.accum[i]);
    free(T.names); free(T.cur); free(T.next); free(T.evals); free(T.accum);
}

/* OpenMP threads that wait by spinning (libgomp's default) stall whenever another process
 * holds a core: on a 2-core machine with a load of ~1, the MNIST MLP step measured 3.5x
 * slower than with passive waiting (and up to 25x at higher loads), which the kernels here do
 * not need. libgomp reads OMP_WAIT_POLICY when it starts, so set it and run again, unless the
 * user chose a policy. */
static void passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);   /* returns only on failure: then go on as we are */
}

/* The device the ops run on: the config's `device` (overridable as device=cpu). */
static void choose_device(void) {
    const char *d = lz_config_str(T.cfg, "device");
    bool gpu = !strcmp(d, "cuda") || (!strcmp(d, "auto") && lz_gpu_available());
    if (gpu && lz_set_default_device(LZ_GPU))
        die(EXIT_USAGE, "%s: device: cuda, but there is no GPU: %s", T.config_name, lz_gpu_status());
    if (!gpu) lz_set_default_device(LZ_CPU);
    if (gpu) printf("device cuda: %s\n", lz_gpu_status());
    else printf("device cpu: %d threads\n", lz_threads());
}

int main(int argc, char **argv) {
    passive_openmp(argv);
    const char *config = NULL, *resume = NULL;
    const char **over = calloc((size_t)argc + 1, sizeof *over);
    int nover = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
        else if (!strcmp(a, "--resume")) {
            if (++i == argc) die(EXIT_USAGE, "--resume needs a run folder or checkpoint");
            resume = argv[i];
        } else if (!strncmp(a, "--resume=", 9)) resume = a + 9;
        else if (a[0] == '-' && a[1]) die(EXIT_USAGE, "unknown option '%s' (see train --help)", a);
        else if (strchr(a, '=')) over[nover++] = a;
        else if (!config) config = a;
        else die(EXIT_USAGE, "more than one config given ('%s' and '%s')", config, a);
    }
    if (!config && !resume) usage(EXIT_USAGE);
    char rbuf[4200];
    if (resume) resume = resume_path(resume, rbuf, sizeof rbuf);
    if (resume && access(resume, F_OK) != 0)
        die(EXIT_USAGE, "--resume: %s does not exist", resume);
    load_config(config, nover, over, resume);
    if (!resume && lz_config_has(T.cfg, "train.resume"))
        resume = resume_path(lz_config_str(T.cfg, "train.resume"), rbuf, sizeof rbuf);
    dist_start();
    T.tty = isatty(STDOUT_FILENO) && T.rank == 0;

    if (strcmp(lz_config_str(T.cfg, "train.log_format"), "jsonl"))
        die(EXIT_USAGE, "train.log_format '%s' is not supported yet (only jsonl)",
            lz_config_str(T.cfg, "train.log_format"));
    int threads = (int)lz_config_int(T.cfg, "train.threads");
    if (threads > 0) lz_set_threads(threads);
    choose_device();
    if (lz_config_has(T.cfg, "train.memory_limit")) {
        size_t cap = (size_t)lz_config_int(T.cfg, "train.memory_limit") << 20;
        lz_memory_set_limit(cap);
        if (lz_default_device() == LZ_GPU && cap < lz_memory_device().limit) lz_memory_device_set_limit(cap);
    }

    open_data();
    printf("config %s (effective):\n", T.config_name);
    lz_config_dump(T.cfg, stdout);
    const lz_data_info *info = lz_loader_info(T.train);
    if (T.text)
        printf("data %s: %s %lld tokens, vocabulary of %d, windows of %lld; %s: %lld tokens\n",
               T.data_path, lz_config_str(T.cfg, "data.train_split"), (long long)info->length,
               info->vocab_size, (long long)T.context, T.val ? T.val_split : "no validation",
               T.val ? (long long)lz_loader_info(T.val)->length : 0LL);
    else
    printf("data %s: %s %lld images %dx%dx%d, %d classes; %s: %lld images\n", T.data_path,
           lz_config_str(T.cfg, "data.train_split"), (long long)info->length, info->channels,
           info->height, info->width, info->num_classes, T.val ? T.val_split : "no validation",
           T.val ? (long long)lz_loader_info(T.val)->length : 0LL);

    uint64_t seed = (uint64_t)lz_config_int(T.cfg, "seed");
    T.key = lz_key_fold(lz_key_new(seed), 2);
    T.model = lz_model_build(T.cfg, &T.shape, lz_key_fold(lz_key_new(seed), 1));
    if (!T.model && strstr(lz_error(), "out of memory"))   /* not the config's fault */
        die(EXIT_RUNTIME, "building the model: %s", lz_error());
    if (!T.model && T.text)
        die(EXIT_USAGE, "the model does not fit the data %s (a vocabulary of %d): %s", T.data_path,
            T.shape.num_classes, lz_error());
    if (!T.model) die(EXIT_USAGE, "the model does not fit the data %s (%dx%dx%d images, %d classes): %s",
                      T.data_path, T.shape.channels, T.shape.height, T.shape.width,
                      T.shape.num_classes, lz_error());
    finetune(lz_key_fold(lz_key_new(seed), 3));
    char *summary = lz_model_summary(T.model, &T.shape);
    printf("model (%s):\n%s", lz_config_str(T.cfg, "model.type"), summary ? summary : "?\n");
    free(summary);
    if (lz_module_collect(T.model, LZ_TRAINABLE, &T.params) ||
        lz_module_collect(T.model, LZ_PARAMS | LZ_BUFFERS, &T.all))
        die(EXIT_USAGE, "model: %s", lz_error());
    int n = T.params.n, cap = T.all.n + n + 4;
    T.names = calloc((size_t)n + 1, sizeof *T.names);
    T.cur = calloc((size_t)cap, sizeof *T.cur);
    T.next = calloc((size_t)cap, sizeof *T.next);
    T.evals = calloc((size_t)cap + (size_t)n, sizeof *T.evals);
    T.accum = calloc((size_t)n + 1, sizeof *T.accum);
    for (int i = 0; i < n; i++) T.names[i] = T.params.items[i].name;

    T.epochs = lz_config_int(T.cfg, "train.epochs");
    T.grad_accum = lz_config_int(T.cfg, "train.grad_accum");
    /* an epoch ends with a step over the batches left when they do not fill grad_accum */
    T.steps_per_epoch = (T.batches_per_epoch + T.grad_accum - 1) / T.grad_accum;
    T.total_steps = lz_config_has(T.cfg, "train.steps") ? lz_config_int(T.cfg, "train.steps")
                                                        : T.epochs * T.steps_per_epoch;
    T.eval_every = lz_config_has(T.cfg, "train.eval_every") ? lz_config_int(T.cfg, "train.eval_every") : 0;
    T.ckpt_every = lz_config_has(T.cfg, "train.checkpoint_every")
                       ? lz_config_int(T.cfg, "train.checkpoint_every") : 0;
    T.log_every = lz_config_int(T.cfg, "train.log_every");
    T.clip = lz_config_has(T.cfg, "train.clip_grad_norm") ? lz_config_float(T.cfg, "train.clip_grad_norm") : 0;
    T.opt = make_optimizer();
    T.sched = make_schedule();
    T.best_step = -1;
    T.last_ckpt_step = -1;
    T.last_val_acc = T.last_val_loss = NAN;   /* no validation yet (or none configured) */
    T.last_val_step = -1;
    make_run_dir();
    if (resume) {
        if (load_checkpoint(resume, NULL)) die(EXIT_USAGE, "--resume: %s", lz_error());
        printf("resumed from %s: step %lld, epoch %lld, batch %lld\n", resume, (long long)T.step,
               (long long)T.epoch + 1, (long long)T.batch);
    }
    write_config();
    if (resume) trim_metrics(T.step);
    dist_sync_state();   /* every rank from rank 0's parameters and optimizer state */
    if (T.rank == 0) {
        T.metrics = lz_metrics_open(T.metrics_path, resume != NULL);
        if (!T.metrics) die(EXIT_USAGE, "%s", lz_error());
    }
    printf("run folder %s: %lld steps (%lld batches of %lld per epoch)\n", T.run_dir,
           (long long)T.total_steps, (long long)T.batches_per_epoch,
           (long long)lz_config_int(T.cfg, "data.batch_size"));
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    if (lz_loader_seek(T.train, T.epoch, T.batch)) die(EXIT_RUNTIME, "%s", lz_error());
    T.t_start = T.iv_t0 = now_s();
    /* fine-tuning: the starting point's validation figures, so the change is visible */
    if (!resume && T.val && lz_config_has(T.cfg, "finetune.init_from")) {
        printf("before training (finetune.init_from %s):\n", lz_config_str(T.cfg, "finetune.init_from"));
        if (validate(false)) stop_requested = 1;
    }
    double lr = 0, last_loss = NAN;
    bool evaluated_last = false;
    while (T.step < T.total_steps && !stop_requested) {
        lz_batch b;
        int got = lz_loader_next(T.train, &b);
        if (got < 0) die(EXIT_RUNTIME, "%s", lz_error());
        if (got == 0) continue;   /* the epoch ended; the next call starts the next one */
        lr = lz_schedule_value(T.sched, T.step);
        int64_t remaining = T.batches_per_epoch - b.index;
        int nmicro = (int)(remaining < T.grad_accum ? remaining : T.grad_accum);
        int64_t correct = 0, bs = 0;
        double loss = 0;
        for (int micro = 0;; micro++) {
            int64_t c;
            double l = train_micro(&b, lr, micro, nmicro, &c);
            loss += l / nmicro;
            correct += c;
            bs += T.text ? b.size * T.context : b.size;   /* text: tokens */
            T.epoch = b.epoch;
            T.batch = b.index + 1;
            lz_batch_release(&b);
            /* data parallel: every rank takes the same micro-batches (the step's collectives
             * pair up); a NaN shows in the reduced loss below */
            if ((!isfinite(l) && !T.dist) || micro == nmicro - 1) break;
            if (lz_loader_next(T.train, &b) != 1)
                die(EXIT_RUNTIME, "%s", lz_error()[0] ? lz_error() : "the loader ended an epoch early");
        }
        if (T.dist) dist_step_stats(&loss, &correct, &bs);
        if (!isfinite(loss)) {
            progress_clear();
            if (T.last_ckpt_step >= 0)
                die(EXIT_RUNTIME, "the loss is %s at step %lld (epoch %lld, batch %lld); stopped. "
                    "The last good checkpoint is %s (step %lld); try a smaller optimizer.lr",
                    isnan(loss) ? "NaN" : "infinite", (long long)T.step + 1, (long long)T.epoch + 1,
                    (long long)T.batch, T.last_path, (long long)T.last_ckpt_step);
            die(EXIT_RUNTIME, "the loss is %s at step %lld (epoch %lld, batch %lld); stopped before "
                "any checkpoint was written; try a smaller optimizer.lr",
                isnan(loss) ? "NaN" : "infinite", (long long)T.step + 1, (long long)T.epoch + 1,
                (long long)T.batch);
        }
        T.step++;
        last_loss = loss;
        bool epoch_end = T.batch == T.batches_per_epoch;
        if (epoch_end) { T.epoch++; T.batch = 0; }
        T.samples_this_run += bs;
        T.iv_loss += loss;
        T.iv_correct += correct;
        T.iv_samples += bs;
        T.iv_steps++;
        bool final = T.step == T.total_steps;
        bool log = T.step % T.log_every == 0 || final;
        if (log) {
            double dt = now_s() - T.iv_t0;
            const char *keys[] = {"epoch", "loss", "accuracy", "lr", "samples_per_s"};
            double vals[] = {(double)T.epoch + (double)T.batch / (double)T.batches_per_epoch,
                             T.iv_loss / (double)T.iv_steps,
                             (double)T.iv_correct / (double)T.iv_samples, lr,
                             dt > 0 ? (double)T.iv_samples / dt : 0};
            if (T.metrics && lz_metrics_log(T.metrics, "train", T.step, 5, keys, vals))
                die(EXIT_RUNTIME, "%s", lz_error());
        }
        progress_update(T.iv_loss / (double)T.iv_steps, (double)T.iv_correct / (double)T.iv_samples,
                        lr, log);
        if (log) {
            T.iv_loss = 0;
            T.iv_correct = T.iv_samples = T.iv_steps = 0;
            T.iv_t0 = now_s();
        }
        evaluated_last = false;
        if (T.eval_every ? T.step % T.eval_every == 0 || final : epoch_end || final) {
            if (validate(final)) break;
            evaluated_last = true;
            write_curves();
        }
        if (T.ckpt_every ? T.step % T.ckpt_every == 0 || final : epoch_end || final) {
            if (save_checkpoint(T.last_path)) die(EXIT_RUNTIME, "%s", lz_error());
            T.last_ckpt_step = T.step;
            if (!T.val && save_checkpoint(T.best_path)) die(EXIT_RUNTIME, "%s", lz_error());
        }
    }
    (void)evaluated_last;
    progress_clear();
    if (stop_requested) {
        if (T.last_ckpt_step != T.step && save_checkpoint(T.last_path))
            die(EXIT_RUNTIME, "%s", lz_error());
        if (T.metrics) lz_metrics_close(T.metrics);
        write_curves();
        fprintf(stderr, "train: interrupted at step %lld (epoch %lld, batch %lld); %s written. "
                "Resume with: train %s%s--resume %s\n", (long long)T.step, (long long)T.epoch + 1,
                (long long)T.batch, T.last_path, config ? config : "", config ? " " : "", T.run_dir);
        cleanup();
        free(over);
        dist_end();
        return EXIT_INTERRUPTED;
    }
    if (T.last_ckpt_step != T.step && save_checkpoint(T.last_path)) die(EXIT_RUNTIME, "%s", lz_error());
    if (T.metrics && lz_metrics_close(T.metrics)) die(EXIT_RUNTIME, "%s", lz_error());
    T.metrics = NULL;
    write_curves();
    double t = now_s() - T.t_start;
    char dur[64], total[64];
    format_duration(t, dur, sizeof dur);
    format_duration(t + T.elapsed_before, total, sizeof total);
    printf("done: %lld steps, final train loss %.4f\n", (long long)T.step, last_loss);
    if (T.val && T.best_step >= 0 && T.text)
        printf("best %s loss %.4f at step %lld (%s); last %.4f\n", T.val_split, -T.best_acc,
               (long long)T.best_step, T.best_path, T.last_val_loss);
    else if (T.val && T.best_step >= 0)
        printf("best %s accuracy %.2f%% at step %lld (%s); last %.2f%%\n", T.val_split,
               100 * T.best_acc, (long long)T.best_step, T.best_path, 100 * T.last_val_acc);
    if (lz_config_int(T.cfg, "finetune.lora.rank") > 0 && T.best_step >= 0) {
        char ap[4300], mp[4300];
        export_paths(ap, mp, sizeof ap);
        printf("LoRA of the best checkpoint (step %lld): adapters only %s, merged into the weights %s\n",
               (long long)T.best_step, ap, mp);
    }
    printf("time %s this run (%s in all), %.0f %s/s\n", dur, total,
           t > 0 ? (double)T.samples_this_run / t : 0.0, T.text ? "tokens" : "samples");
    printf("peak memory %.1f MiB (arrays)%s\n", (double)lz_memory().peak / 1048576.0,
           T.text && lz_config_bool(T.cfg, "model.checkpoint_blocks") ? ", blocks checkpointed" : "");
    if (lz_default_device() == LZ_GPU)
        printf("peak GPU memory %.1f MiB (arrays), %.1f MiB cached\n",
               (double)lz_memory_device().peak / 1048576.0, (double)lz_memory_device().cached / 1048576.0);
    printf("run folder %s\n", T.run_dir);

    cleanup();
    free(over);
    dist_end();
    return 0;
}
