/* leibniz optim: optimizers with named state, learning-rate schedules, gradient clipping.
 *
 * Optimizers work on NAMED parameters (the dotted names that key checkpoints,
 * "blocks.3.attn.qkv.weight"). Arrays are immutable, so a step does not write into anything:
 * it RETURNS new parameter arrays and replaces the optimizer's state arrays with new ones,
 * all pending. Nothing computes until the caller evaluates, so the backward pass, gradient
 * clipping and the update run as one graph in one lz_eval: the fused elementwise engine makes
 * e.g. an Adam update three passes per parameter (new first moment, new second moment, new
 * parameter), and donation hands the dying old state and parameter buffers to the new ones,
 * so memory does not grow from step to step.
 *
 * A training step (gradients g[] pending, from lz_value_and_grad):
 *     lz_clip_grad_norm(n, g, 1.0, clipped, &norm);                        // lazy
 *     lz_optim_step(opt, n, names, params, clipped, next, lz_schedule_value(sched, step));
 *     for (i = 0; i < n; i++) { lz_release(params[i]); params[i] = next[i]; }
 *     lz_optim_eval(opt, n, params);      // (with the loss and norm too): ONE graph, one eval
 * Releasing the old parameters before the eval lets their buffers be reused in place.
 * Frozen parameters are simply not passed: they get no update and no state.
 *
 * State is named "<param>.<key>", keys as in torch.optim's state dicts: "step" (a 0-d int64,
 * the number of updates this parameter has had; Adam's and Adagrad's bias correction and
 * decay read it) and the buffers of the kind: momentum_buffer (SGD); exp_avg, exp_avg_sq,
 * max_exp_avg_sq (Adam/AdamW, the last with amsgrad); square_avg, momentum_buffer, grad_avg
 * (RMSprop, the last two with momentum > 0 / centered); sum (Adagrad); exp_avg (Lion).
 * Buffers are float32 of the parameter's shape (also for float16/bfloat16 parameters, which
 * are updated in float32 and rounded back). Saving every state array and loading them into a
 * fresh optimizer of the same configuration continues the run bit for bit.
 *
 * Ownership as everywhere in leibniz: functions returning lz_array* (or writing them to an
 * out array) give NEW references, also registered in an open autorelease pool; inputs are
 * borrowed. Errors: -1 or NULL with lz_error() set, naming the function and the parameter. */
#ifndef LZ_OPTIM_H
#define LZ_OPTIM_H

#include <stdint.h>
#include "../core/core.h"

typedef enum { LZ_SGD, LZ_ADAM, LZ_ADAMW, LZ_RMSPROP, LZ_ADAGRAD, LZ_LION, LZ_OPTIM_NKINDS } lz_optim_kind;

/* Hyperparameters. A zero field means zero, so start from lz_optim_defaults(kind) (PyTorch's
 * defaults) and change what you need. Fields a kind does not use are ignored. */
typedef struct {
    lz_optim_kind kind;
    double lr;
    /* SGD, Adam, RMSprop, Adagrad: L2 added to the gradient (g += wd * p).
     * AdamW, Lion: decoupled (p *= 1 - lr * wd before the update). */
    double weight_decay;
    double momentum;        /* SGD, RMSprop */
    double dampening;       /* SGD */
    int nesterov;           /* SGD: needs momentum > 0 and dampening 0 */
    double betas[2];        /* Adam/AdamW: moment decays; Lion: interpolation, momentum decay */
    double eps;             /* Adam/AdamW, RMSprop, Adagrad: added to the denominator (> 0) */
    int amsgrad;            /* Adam/AdamW: divide by the running max of the second moment */
    double alpha;           /* RMSprop: smoothing of the squared-gradient average */
    int centered;           /* RMSprop: subtract the squared mean gradient */
    double lr_decay;        /* Adagrad: lr / (1 + (step - 1) * lr_decay) */
    double initial_accumulator_value;   /* Adagrad */
} lz_optim_config;

/* PyTorch's defaults for kind: lr 1e-3 (SGD and Adagrad 1e-2, Lion 1e-4), betas (0.9, 0.999)
 * (Lion (0.9, 0.99)), eps 1e-8 (Adagrad 1e-10), alpha 0.99, AdamW weight_decay 1e-2, the
 * rest 0. */
lz_optim_config lz_optim_defaults(lz_optim_kind kind);
const char *lz_optim_kind_name(lz_optim_kind kind);   /* "sgd", "adam", ... ; NULL if unknown */

typedef struct lz_optim lz_optim;

/* A new optimizer whose default group has cfg (copied). Free with lz_optim_free. NULL + error
 * on an invalid configuration (negative lr, betas outside [0, 1), eps <= 0, nesterov without
 * momentum, ...). */
lz_optim *lz_optim_new(const lz_optim_config *cfg);
void      lz_optim_free(lz_optim *o);                         /* NULL-safe */
/* The default group's configuration (a copy to start a group's from). */
lz_optim_config lz_optim_get_config(const lz_optim *o);

/* ---- parameter groups ----
 * A group gives the parameters whose names match `patterns` their own hyperparameters (e.g.
 * no weight decay on biases and norms). patterns: comma-separated fnmatch(3) globs, where '*'
 * also matches dots ("*.bias,*norm*.weight"); a plain name matches itself. A parameter
 * belongs to the FIRST group (in the order added) that matches, else to the default group.
 * cfg->kind must be the optimizer's. Returns the group's index (1, 2, ...; 0 is the default
 * group) or -1. Groups may be added at any time; a name's group is looked up at each step. */
int lz_optim_add_group(lz_optim *o, const char *patterns, const lz_optim_config *cfg);
/* The group index a parameter name belongs to. */
int lz_optim_group_of(const lz_optim *o, const char *name);

/* ---- the step ----
 * Builds the update of n parameters: names[i] (unique), params_in[i] (float, any layout),
 * grads[i] (same shape, any float dtype). params_out[i] receives the new parameter (a NEW
 * pending reference, the dtype of params_in[i]); the state of those parameters is replaced by
 * pending arrays and their step counters advance. Parameters not passed are untouched.
 *
 * lr_now: the default group's learning rate for this step (from a schedule). Every group's rate
 * is scaled by the same factor lr_now / default lr (as PyTorch's schedulers scale each group's
 * initial rate); when the default lr is 0, every group gets lr_now. A negative lr_now uses the
 * configured rates.
 *
 * Returns 0, or -1 with an error and nothing changed (params_out[i] all NULL, no state created
 * or advanced): unknown/duplicate/invalid names, shape or dtype mismatch, incomplete restored
 * state, a NULL input (keeping the first error). Never evaluates. */
int lz_optim_step(lz_optim *o, int n, const char *const *names, lz_array *const *params_in,
                  lz_array *const *grads, lz_array **params_out, double lr_now);

/* Evaluates arrays[0..n) (the new parameters, the loss, ...) together with all pending state in
 * ONE lz_eval, so the whole step is one graph. Evaluating only the parameters also works (the
 * state they read is computed along), but a buffer no parameter reads (Lion's next momentum)
 * would stay pending; this call is the simple, complete way. Returns 0 or -1. */
int lz_optim_eval(lz_optim *o, int n, lz_array *const *arrays);

/* ---- named state (for checkpoints) ----
 * Entries are ordered by first appearance of the parameter, "step" first, then the buffers. */
int lz_optim_state_count(const lz_optim *o);
/* Name of entry i ("fc.weight.exp_avg"); owned by o, valid until an entry is added or removed
 * (a parameter's first step, a load of a new entry, a drop). NULL + error if out of range. */
const char *lz_optim_state_name(lz_optim *o, int i);
/* Array of entry i: a NEW reference (possibly pending; a 0-d int64 for "step"), NULL + error if
 * i is out of range. */
lz_array *lz_optim_state_array(lz_optim *o, int i);
/* Restores one entry "<param>.<key>" (key one of this kind's, see above): the array is retained
 * (buffers are cast to float32 if needed; their shape is checked against the parameter at its
 * next step); "step" must hold a non-negative integer value. Loading does not need the
 * parameter to have been seen. Returns 0 or -1. */
int lz_optim_state_load(lz_optim *o, const char *name, lz_array *a);
/* Forgets the state of every parameter matching patterns (as in lz_optim_add_group), e.g. a
 * replaced head: its next step starts fresh. Returns how many parameters were forgotten. */
int lz_optim_state_drop(lz_optim *o, const char *patterns);

/* ---- gradient clipping (lazy: nothing is evaluated) ----
 * By global norm, as torch.nn.utils.clip_grad_norm_: norm = sqrt(sum over all grads of g^2),
 * computed in float32 with double accumulation; every grad is multiplied by
 * min(1, max_norm / (norm + 1e-6)). grads_out[i] get NEW references of grads[i]'s dtype and
 * shape; *norm_out (if not NULL) a NEW 0-d float32 array holding the norm BEFORE clipping, to be
 * evaluated with the step. A NaN/inf norm propagates to the grads: check the reported norm.
 * Returns 0 or -1 (max_norm must be > 0). */
int lz_clip_grad_norm(int n, lz_array *const *grads, double max_norm, lz_array **grads_out,
                      lz_array **norm_out);
/* Clamps each element to [-clip_value, clip_value] (NaN stays NaN). Returns 0 or -1. */
int lz_clip_grad_value(int n, lz_array *const *grads, double clip_value, lz_array **grads_out);

/* ---- learning-rate schedules: pure functions of the step (0 = the first step) ----
 * Each constructor returns a new schedule (free with lz_schedule_free) or NULL + error on bad
 * arguments. Steps before 0 count as 0. */
typedef struct lz_schedule lz_schedule;
lz_schedule *lz_schedule_constant(double value);
/* value * gamma^floor(step / step_size)  (PyTorch StepLR) */
lz_schedule *lz_schedule_step(double value, int64_t step_size, double gamma);
/* value * gamma^(number of milestones <= step); milestones increasing  (MultiStepLR) */
lz_schedule *lz_schedule_multistep(double value, int n, const int64_t *milestones, double gamma);
/* value * gamma^step  (ExponentialLR) */
lz_schedule *lz_schedule_exponential(double value, double gamma);
/* final + (value - final) * (1 + cos(pi * min(step, steps) / steps)) / 2: from value at step
 * 0 to final at step `steps`, then final  (CosineAnnealingLR's first half-period, MLX
 * cosine_decay) */
lz_schedule *lz_schedule_cosine(double value, int64_t steps, double final_value);
/* from + (to - from) * min(step, steps) / steps: a linear warmup from `from` to `to` over
 * `steps` steps, then `to` (MLX linear_schedule) */
lz_schedule *lz_schedule_linear(double from, double to, int64_t steps);
/* Joins n schedules: parts[0] until boundaries[0], then parts[i] counted from boundaries[i-1]
 * (so each part starts at its own step 0), boundaries strictly increasing, n - 1 of them.
 * Takes ownership of the parts, also on failure (a NULL part fails the join, freeing the
 * others, keeping the first error). */
lz_schedule *lz_schedule_join(int n, lz_schedule **parts, const int64_t *boundaries);
/* The usual transformer recipe: linear warmup from 0 to peak over `warmup` steps, then cosine
 * decay to final_value at step `total` (a join of the two). */
lz_schedule *lz_schedule_warmup_cosine(double peak, int64_t warmup, int64_t total,
                                       double final_value);
double lz_schedule_value(const lz_schedule *s, int64_t step);
void   lz_schedule_free(lz_schedule *s);                      /* NULL-safe */

#endif
