/* train: shared state of the training program (main.c: setup and the loop; output.c:
 * progress, checkpoints, plots). */
#ifndef TRAIN_H
#define TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "leibniz.h"
#include "io/model.h"
#include "dist/dist.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 bad usage/config/input, 130 interrupted. */
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

typedef struct {
    lz_config *cfg;
    const char *config_name;     /* the file given, or the checkpoint's name */
    char run_dir[4096];
    char last_path[4200], best_path[4200], metrics_path[4200];
    const char *data_path, *val_split;
    lz_loader *train, *val;
    lz_dataset *val_images;      /* raw pixels for samples.png */
    lz_model_shape shape;
    const char *const *classes;  /* text: the vocabulary (token id -> its text) */
    bool text;                   /* a language model over a text split */
    int64_t context;             /* text: tokens per training sequence */
    lz_module *model;
    lz_named_list params;        /* trainable parameters */
    lz_named_list all;           /* parameters and buffers (evaluated with each step) */
    const char **names;          /* params' names */
    lz_array **cur, **next, **evals;
    lz_array **accum;            /* gradients summed over the micro-batches of a step */
    lz_optim *opt;
    lz_schedule *sched;
    lz_metrics *metrics;
    lz_key key;                  /* base key; dropout at step s uses lz_key_fold(key, s) */
    double clip;                 /* 0: none */

    /* position: step = optimizer steps done; the next batch is (epoch, batch) */
    int64_t step, total_steps, epoch, batch, batches_per_epoch, epochs;
    int64_t grad_accum, steps_per_epoch;   /* batches per optimizer step; steps per epoch */
    int64_t eval_every, ckpt_every, log_every;
    double best_acc;
    int64_t best_step, last_ckpt_step;
    double elapsed_before;       /* seconds trained by the runs this one resumes */
    double t_start;
    int64_t samples_this_run;
    double last_val_loss, last_val_acc;
    int64_t last_val_step;   /* the step of those figures; -1: no validation yet */

    /* interval statistics for logs and the progress bar */
    double iv_loss;
    int64_t iv_correct, iv_samples, iv_steps;
    double iv_t0;
    double smooth_rate;          /* samples/s, smoothed */
    bool tty;

    /* data parallelism (dist.c): dist NULL in a single process (rank 0 of a world of 1) */
    lz_dist *dist;
    int rank, world;
    size_t bucket_bytes;
} trainer;

extern trainer T;
extern volatile sig_atomic_t stop_requested;

/* main.c */
double now_s(void);
_Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* finetune.c: applies the finetune section to T.model (before the trainable list is made) */
void finetune(lz_key key);

/* dist.c */
void dist_start(void);
void dist_end(void);
_Noreturn void dist_fail(const char *what);
void dist_sync_state(void);
void dist_average_grads(int n, lz_array **grads, int64_t local, int64_t total);
void dist_step_stats(double *loss, int64_t *correct, int64_t *examples);
void dist_reduce_metrics(lz_model_metrics *r);

/* output.c */
void progress_update(double loss, double acc, double lr, bool final_line);
void progress_clear(void);
int  save_checkpoint(const char *path);   /* best.h5 of a LoRA run: also adapter.h5, merged.h5 */
void export_paths(char *adapter, char *merged, size_t n);
int  load_checkpoint(const char *path, bool *config_from_ckpt);
int  write_curves(void);
int  write_samples(const lz_model_metrics *r);
void format_duration(double s, char *buf, size_t n);

#endif
