/* leibniz nn: modules (named trees of parameters), layers, losses, initializers, LoRA.
 *
 * MODULES. A module is a small object: a kind (its forward, describe and free functions),
 * the layer's own state struct, its parameters and buffers by local name, its children by
 * local name, a training flag. Full names are dotted paths from the root
 * ("blocks.3.attn.qkv.weight"): they are stable and are the keys of checkpoints. Iteration
 * order is PyTorch's: a module's own entries in the order they were added, then each child's,
 * depth first.
 *
 * Parameters and buffers are lz_array handles OWNED by their module. Arrays are immutable, so
 * training REPLACES them: an optimizer computes new (lazy) arrays and installs them with
 * lz_param_set / lz_module_set_param (which check shape and dtype); lz_module_eval then
 * evaluates every parameter and buffer of the tree together with the loss in one graph.
 *
 * Forward functions only build lazy graphs. Training mode (lz_module_train) changes dropout
 * (active) and batch norm (batch statistics; running statistics updated). Randomness is
 * explicit: lz_module_forward takes a key (NULL when nothing random runs); each module derives
 * its own key from its parent's and its local name, so two dropouts never share a mask. A
 * dropout in training mode without a key is an error, not a silently repeated mask: pass a
 * fresh key each step (e.g. lz_key_fold(base, step)).
 *
 * Batch norm in training mode installs NEW LAZY VALUES of its buffers running_mean and
 * running_var at each forward (the momentum update, built from the batch statistics with no
 * gradient). They are pending until evaluated: evaluate them along with the step, best with
 * lz_module_eval(model, n, {loss, ...}), which evaluates the whole tree's parameters and
 * buffers and the given arrays in one lz_eval. A forward repeated without evaluating chains the
 * updates (correct, but the graph grows).
 *
 * A training step (lib/optim does the update):
 *     lz_module_collect(model, LZ_TRAINABLE, &params);                    once
 *     lz_module_value_and_grad(model, &params, loss_fn, ctx, &loss, 1, grads);
 *     lz_optim_step(opt, params.n, names, values, grads, next, lr);      values = *slot
 *     for (i...) lz_param_set(&params.items[i], next[i]);
 *     lz_module_eval(model, 1, &loss);    parameters, buffers and loss: one graph, one eval
 * (lz_optim_eval(opt, ...) also evaluates optimizer state that no parameter reads.)
 *
 * Modules are not thread-safe: one thread builds a module's graphs at a time (attention
 * caches its RoPE tables in its state).
 *
 * Errors. Functions return NULL / -1 and set lz_error(). Messages name the module by kind and
 * path ("linear 'blocks.3.attn.qkv': ...") and the shapes involved; an error raised by an op
 * inside a forward is prefixed with the path of the innermost module that ran it. Errors found
 * only at evaluation (an embedding index out of range) come from the kernel and name no module.
 *
 * Ownership. lz_module_* functions that return an lz_array* return a BORROWED reference
 * (owned by the module) unless they say NEW. Forward functions and losses return NEW
 * references (autoreleased into the open pool, like ops). Constructors return a new module
 * that the caller frees with lz_module_free, unless it is handed to a parent (lz_module_add_child,
 * lz_nn_sequential, lz_module_replace), which then owns it. Functions taking child modules
 * take ownership even when they fail (so nested constructor calls never leak).
 *
 * Default initialisations follow PyTorch (torch.nn, 2.x): each constructor says which. */
#ifndef LZ_NN_H
#define LZ_NN_H

#include <stdbool.h>
#include <stddef.h>
#include "../core/core.h"
#include "../ops/ops.h"

typedef struct lz_module lz_module;

/* ======================= modules ======================= */

/* What a module does. forward gets the module, the input and the module's own key (NULL when
 * the caller gave none) and returns the output or NULL with an error. It runs inside an
 * autorelease pool that lz_module_forward opens around it, so it builds its graph with plain
 * op calls (no release needed) and returns any op result, or x itself. describe writes a
 * one-line summary of the configuration ("in=8, out=16, bias") and may be NULL. free_state
 * frees the state pointer given to lz_module_new (NULL: free()). */
typedef struct {
    const char *name;   /* "linear", "conv2d", ... */
    lz_array *(*forward)(lz_module *m, lz_array *x, const lz_key *key);
    void (*describe)(const lz_module *m, char *buf, size_t n);
    void (*free_state)(void *state);
} lz_module_kind;

/* A new module of `kind` owning `state` (may be NULL). Custom modules (a model with its own
 * forward) are made this way; add parameters, buffers and children next. */
lz_module *lz_module_new(const lz_module_kind *kind, void *state);
/* Frees m, its children, its state and its references to parameters and buffers; a child is
 * first removed from its parent. NULL-safe. */
void lz_module_free(lz_module *m);

void *lz_module_state(const lz_module *m);
const lz_module_kind *lz_module_kind_of(const lz_module *m);
const char *lz_module_name(const lz_module *m);          /* local name, "" for a root */
lz_module *lz_module_parent(const lz_module *m);         /* NULL for a root */
/* Full dotted path of m from its root into buf ("" for the root); returns buf. */
char *lz_module_path(const lz_module *m, char *buf, size_t n);

/* Building a module. Names are non-empty, without '.', unique among m's parameters, buffers
 * and children. add_param / add_buffer retain `value` (parameters must be float arrays);
 * add_child takes ownership of `child` (freed on failure, except a child that already has a
 * parent, which is refused and left to its tree). Return 0 or -1. */
int lz_module_add_param(lz_module *m, const char *name, lz_array *value);
int lz_module_add_buffer(lz_module *m, const char *name, lz_array *value);
int lz_module_add_child(lz_module *m, const char *name, lz_module *child);

/* Look-ups by dotted path relative to m ("attn.qkv.weight", or a local name). Borrowed;
 * NULL with an error that names the path and suggests the closest existing name. */
lz_array  *lz_module_param(lz_module *m, const char *path);    /* parameter or buffer */
lz_module *lz_module_child(lz_module *m, const char *path);    /* a descendant module */
/* m's children in order (borrowed; NULL past the end, no error): for forward functions. */
lz_module *lz_module_child_at(const lz_module *m, int index);
int lz_module_num_children(const lz_module *m);

/* Replaces the parameter or buffer at `path` by value (retained), which must have the old
 * value's shape and dtype. 0 or -1 (unknown name, mismatched shape: named in the error). */
int lz_module_set_param(lz_module *m, const char *path, lz_array *value);
/* Replaces the descendant at `path` ("head", "blocks.0.mlp") by `child` (owned; freed on
 * failure unless it belongs to another parent), which takes the old one's name and its
 * parent's training mode; the old module is freed. Entries collected before are invalid
 * afterwards (collect again). 0 or -1. */
int lz_module_replace(lz_module *m, const char *path, lz_module *child);

/* Calls m's forward with a key derived from (key, m's name); NULL key: none. NEW reference.
 * This is also how a module's forward calls its children. */
lz_array *lz_module_forward(lz_module *m, lz_array *x, const lz_key *key);

/* Training (true) or evaluation (false) mode, for m and all its descendants. */
void lz_module_train(lz_module *m, bool training);
bool lz_module_is_training(const lz_module *m);

/* ---- iteration ---- */
enum {
    LZ_PARAMS = 1,      /* parameters (frozen or not) */
    LZ_BUFFERS = 2,     /* buffers (running statistics) */
    LZ_TRAINABLE = 4,   /* parameters that are not frozen */
};

/* One parameter or buffer of a tree. `slot` points at the module's own slot: *slot is the
 * current value (borrowed). Replace it with lz_param_set. Entries stay valid until a module
 * holding them is freed or replaced (lz_module_replace, LoRA apply/merge, lz_module_free);
 * values may change freely. */
typedef struct {
    char *name;            /* full dotted name from the root given to lz_module_collect */
    lz_array **slot;
    lz_module *module;     /* the module owning the slot */
    bool buffer;
    bool frozen;           /* a copy of the flag at collection time */
} lz_named_array;

typedef struct {
    int n;
    lz_named_array *items;
} lz_named_list;

/* Collects the entries of m's tree selected by `what` (an | of LZ_PARAMS, LZ_BUFFERS,
 * LZ_TRAINABLE) into out (free with lz_named_list_free). 0 or -1. LZ_TRAINABLE alone on a
 * tree that has parameters but all frozen is an error ("every parameter is frozen"). */
int  lz_module_collect(lz_module *m, int what, lz_named_list *out);
void lz_named_list_free(lz_named_list *l);
/* Installs value (retained) in p's slot after checking shape and dtype; 0 or -1. */
int  lz_param_set(const lz_named_array *p, lz_array *value);

/* Number of parameter elements (trainable only when trainable_only). */
int64_t lz_module_num_params(lz_module *m, bool trainable_only);

/* Freezes / unfreezes every parameter whose full name matches the glob `pattern`: '*'
 * matches any run of characters (dots included), '?' one character; a pattern that matches
 * a module's path ("blocks.0", "head") covers everything below it. Returns how many
 * parameters matched, or -1 with an error when none did. */
int lz_module_freeze(lz_module *m, const char *pattern);
int lz_module_unfreeze(lz_module *m, const char *pattern);
/* Whether the parameter at path is frozen (false, with an error, for an unknown name). */
bool lz_module_is_frozen(lz_module *m, const char *path);
/* Does `name` match `pattern` in the sense of lz_module_freeze? */
bool lz_name_match(const char *pattern, const char *name);

/* Evaluates every parameter and buffer of m's tree and the n arrays `extra` (loss, metrics)
 * in ONE lz_eval, so an optimizer step, batch-norm statistics and the loss share a graph.
 * 0 or -1. */
int lz_module_eval(lz_module *m, int n, lz_array *const *extra);

/* Loads named arrays (e.g. a checkpoint's, or a pretrained model's) into m's parameters and
 * buffers by full name. Shapes must match; float values are cast to the entry's dtype. The
 * report (if report is not NULL: malloc'ed text the caller frees, NULL when all fit) lists one
 * line per problem: "unexpected: NAME SHAPE" (the model has no such entry), "missing: NAME
 * SHAPE" (an entry nobody gave; it keeps its value), "mismatch: NAME is SHAPE in the model but
 * SHAPE given", "duplicate: NAME given twice". strict: any problem is an error and nothing is
 * loaded; otherwise the entries that fit are loaded (fine-tuning with a new head). Returns the
 * number of entries loaded, or -1. */
int lz_module_load(lz_module *m, int n, const char *const *names, lz_array *const *arrays,
                   bool strict, char **report);

/* A text summary of the tree: one line per module (path, kind, describe, parameter shapes)
 * and the totals. malloc'ed: the caller free()s it. NULL on allocation failure. */
char *lz_module_summary(lz_module *m);

/* ---- gradients of a module ----
 * fn builds the loss from the module (calling lz_module_forward on it with its own inputs)
 * and writes outputs[0] = a float scalar (the value differentiated) and optionally auxiliary
 * outputs; it returns how many it wrote, or -1. It must not evaluate anything depending on
 * the parameters (see lib/autograd/autograd.h). */
typedef int (*lz_module_loss_fn)(void *ctx, lz_module *m, lz_array **outputs);
/* Runs fn with the parameters of `params` (a list collected from m, typically LZ_TRAINABLE)
 * traced, restores them, and returns in grads[i] the gradient for params->items[i] (NEW,
 * pending) and in outputs[0..max_outputs) fn's outputs (NEW). Returns the number of outputs
 * fn wrote, or -1. An empty list is an error. */
int lz_module_value_and_grad(lz_module *m, const lz_named_list *params, lz_module_loss_fn fn,
                             void *ctx, lz_array **outputs, int max_outputs, lz_array **grads);

/* ======================= layers =======================
 * Every constructor returns a new module or NULL with an error. Parameters are float32 and
 * evaluated on return. Inputs are batched (a leading batch axis) unless said otherwise. */

/* y = x W^T + b. x [..., in] -> [..., out]. weight [out, in], bias [out].
 * Init (PyTorch nn.Linear): weight and bias U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with
 * a = sqrt(5) for the weight). */
lz_module *lz_nn_linear(int64_t in, int64_t out, bool bias, lz_key key);

/* Convolutions: x [N, C, L] / [N, C, H, W]; weight [O, C/groups, K] / [O, C/groups, KH, KW];
 * bias [O]. Init (PyTorch nn.ConvNd): weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * fan_in = C/groups * prod(kernel). */
lz_module *lz_nn_conv1d(int64_t in_ch, int64_t out_ch, int kernel, int stride, int padding,
                        int dilation, int groups, bool bias, lz_key key);
lz_module *lz_nn_conv2d(int64_t in_ch, int64_t out_ch, const int kernel[2], const int stride[2],
                        const int padding[2], const int dilation[2], int groups, bool bias,
                        lz_key key);   /* stride/padding/dilation NULL: 1/0/1 */

/* Pooling over [N, C, H, W]; stride NULL (or 0s) = kernel, padding NULL = 0 (PyTorch). */
lz_module *lz_nn_max_pool2d(const int kernel[2], const int stride[2], const int padding[2]);
lz_module *lz_nn_avg_pool2d(const int kernel[2], const int stride[2], const int padding[2]);
/* [N, C, H, W] -> [N, C, oh, ow], window i spanning [floor(i H/oh), ceil((i+1) H/oh)) as in
 * PyTorch's AdaptiveAvgPool2d. (1, 1) is global average pooling. */
lz_module *lz_nn_adaptive_avg_pool2d(int64_t oh, int64_t ow);
/* Flattens axes start..end (inclusive, negative from the end). PyTorch default: 1, -1. */
lz_module *lz_nn_flatten(int start_axis, int end_axis);

/* Training: zeroes each element with probability p and scales the others by 1/(1-p) (the
 * mask from lz_random_bernoulli with the module's key); evaluation: identity. 0 <= p <= 1. */
lz_module *lz_nn_dropout(double p);

/* Integer indices [...] -> [..., dim]. weight [num, dim]. Init (PyTorch nn.Embedding):
 * N(0, 1). */
lz_module *lz_nn_embedding(int64_t num, int64_t dim, lz_key key);

/* Batch norm over the channel axis 1: batch_norm1d takes [N, C] or [N, C, L], batch_norm2d
 * [N, C, H, W]. Parameters weight [C] (ones), bias [C] (zeros) when affine; buffers
 * running_mean [C] (zeros), running_var [C] (ones). Training: normalises with the batch's mean
 * and biased variance, and installs running = (1 - momentum) running + momentum batch (the
 * unbiased variance), as PyTorch (default momentum 0.1, eps 1e-5). Evaluation: uses the running
 * statistics. */
lz_module *lz_nn_batch_norm1d(int64_t channels, double eps, double momentum, bool affine);
lz_module *lz_nn_batch_norm2d(int64_t channels, double eps, double momentum, bool affine);
/* Over the last axis of size dim; weight ones, bias zeros (PyTorch); eps e.g. 1e-5. */
lz_module *lz_nn_layer_norm(int64_t dim, double eps, bool affine, bool bias);
/* x / sqrt(mean(x^2) + eps) * weight over the last axis; weight ones. */
lz_module *lz_nn_rms_norm(int64_t dim, double eps, bool affine);
/* [N, C, ...] in `groups` groups of C/groups channels; weight ones, bias zeros [C]. */
lz_module *lz_nn_group_norm(int64_t groups, int64_t channels, double eps, bool affine);

/* Activations as modules. gelu: the erf form, or the tanh approximation when `tanh_approx`. */
lz_module *lz_nn_relu(void);
lz_module *lz_nn_leaky_relu(double negative_slope);   /* PyTorch default 0.01 */
lz_module *lz_nn_gelu(bool tanh_approx);
lz_module *lz_nn_silu(void);
lz_module *lz_nn_tanh(void);
lz_module *lz_nn_sigmoid(void);
lz_module *lz_nn_softmax(int axis);
lz_module *lz_nn_log_softmax(int axis);
/* A function as a module: y = fn(x) (e.g. an ops.h unary). */
lz_module *lz_nn_lambda(const char *name, lz_array *(*fn)(lz_array *));

/* Children "0".."n-1" applied in order; takes ownership of mods (all freed if one is NULL:
 * the error of the failed constructor is kept). */
lz_module *lz_nn_sequential(int n, lz_module *const *mods);
/* Appends child under the next index name; owned (freed on failure). 0 or -1. */
int lz_nn_sequential_append(lz_module *seq, lz_module *child);

/* ---- attention and transformer ---- */
typedef struct {
    bool bias;          /* biases on the projections */
    bool fused_qkv;     /* one "qkv" linear [3D, D] instead of "q", "k", "v" */
    bool causal;
    bool rope;          /* rotary position embedding on q and k */
    double rope_theta;  /* 0: 10000 */
} lz_attention_opts;

/* Self-attention: x [B, T, D] (or [T, D]) -> same shape. opts NULL: biases, fused qkv, not
 * causal, no rope. Children: "qkv" or "q", "k", "v"
 * (linear D -> 3D or D -> D) and "out" (D -> D). heads must divide D; rope needs an even head
 * size. RoPE rotates the two halves of each head (the GPT-NeoX / LLaMA "rotate half" layout),
 * frequency of pair i: theta^(-2i / head_dim), positions 0..T-1. Init (PyTorch
 * nn.MultiheadAttention): the qkv weight [3D, D] (or each of q, k, v [D, D]) xavier_uniform,
 * their biases zeros; out like nn.Linear with a zero bias. Attention dropout is not provided (the fused
 * kernel has none); the transformer block drops out after attention and after the MLP. */
lz_module *lz_nn_attention(int64_t dim, int64_t heads, const lz_attention_opts *opts, lz_key key);
enum { LZ_NORM_LAYER, LZ_NORM_RMS };
enum { LZ_MLP_GELU, LZ_MLP_SWIGLU };
typedef struct {
    int64_t d_ff;       /* 0: 4 D (gelu), or 8/3 D rounded up to a multiple of 8 (swiglu) */
    int norm;           /* LZ_NORM_LAYER (eps 1e-5) or LZ_NORM_RMS (eps 1e-6) */
    int mlp;            /* LZ_MLP_GELU: fc2(gelu(fc1 x)); LZ_MLP_SWIGLU: down(silu(gate x) * up x) */
    bool bias;          /* on the linear layers and the layer-norm */
    bool causal;
    bool rope;
    double rope_theta;
    double dropout;     /* after attention and after the MLP, in training */
} lz_block_opts;

/* Pre-norm block: x + drop(attn(norm1(x))), then x + drop(mlp(norm2(x))). Children "norm1",
 * "attn" (fused qkv), "norm2", "mlp" (whose children are "fc1", "fc2" or "gate", "up",
 * "down"), and "dropout1", "dropout2" when dropout > 0. GELU is the erf form (nn.GELU's
 * default). opts NULL: layer norm, GELU MLP of 4 D, biases, causal, no rope, no dropout. */
lz_module *lz_nn_transformer_block(int64_t dim, int64_t heads, const lz_block_opts *opts,
                                   lz_key key);

/* ======================= losses =======================
 * Losses return NEW references: a scalar (mean, sum, batchmean) or the per-element losses
 * (none). They are stable for extreme inputs (logits of +-1e4 give finite values and
 * gradients). */
typedef enum { LZ_REDUCE_MEAN, LZ_REDUCE_SUM, LZ_REDUCE_NONE, LZ_REDUCE_BATCHMEAN } lz_reduction;

typedef struct {
    lz_reduction reduction;   /* mean (default: zero-initialised) */
    double label_smoothing;   /* in [0, 1] */
    bool ignore;              /* skip targets equal to ignore_index (loss 0; not counted) */
    int64_t ignore_index;
} lz_ce_opts;

/* logits [..., C] (class axis LAST, unlike PyTorch's axis 1) and integer targets [...] in
 * [0, C). loss = (1 - s) (-log p[target]) + s mean_c(-log p[c]); mean divides by the number
 * of targets not ignored (0 when every target is ignored). opts NULL: defaults. */
lz_array *lz_cross_entropy(lz_array *logits, lz_array *targets, const lz_ce_opts *opts);
/* The same over log-probabilities [..., C]. */
lz_array *lz_nll_loss(lz_array *logp, lz_array *targets, const lz_ce_opts *opts);
/* Elementwise losses between pred and target (broadcast together). */
lz_array *lz_mse_loss(lz_array *pred, lz_array *target, lz_reduction r);
lz_array *lz_l1_loss(lz_array *pred, lz_array *target, lz_reduction r);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (PyTorch smooth_l1_loss; beta > 0). */
lz_array *lz_smooth_l1_loss(lz_array *pred, lz_array *target, double beta, lz_reduction r);
/* 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (PyTorch huber_loss; delta > 0). */
lz_array *lz_huber_loss(lz_array *pred, lz_array *target, double delta, lz_reduction r);
/* -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed as
 * max(x, 0) - x t + log1p(exp(-|x|)). targets in [0, 1], same shape as logits (broadcast). */
lz_array *lz_binary_cross_entropy_with_logits(lz_array *logits, lz_array *targets, lz_reduction r);
/* KL(target || exp(input)) elementwise: target (log target - input), 0 where target = 0;
 * input holds log-probabilities; target probabilities, or log-probabilities when log_target.
 * Use LZ_REDUCE_BATCHMEAN (sum / size of axis 0) for the mathematical KL per sample. */
lz_array *lz_kl_div(lz_array *input, lz_array *target, lz_reduction r, bool log_target);

/* ======================= initializers =======================
 * New lazy arrays (NEW references) of the given shape and float dtype. Fans follow PyTorch:
 * for shape [out, in, k...], fan_in = in * prod(k), fan_out = out * prod(k); a 1-d shape has
 * fan_in = fan_out = its size. */
typedef enum { LZ_FAN_IN, LZ_FAN_OUT } lz_fan_mode;
void lz_init_fans(int ndim, const int64_t *shape, double *fan_in, double *fan_out);
/* torch.nn.init.calculate_gain: "linear", "conv", "sigmoid" (1), "tanh" (5/3), "relu"
 * (sqrt 2), "leaky_relu" (sqrt(2 / (1 + param^2)), param = slope), "selu" (3/4). -1 + error
 * for an unknown name. */
double lz_init_gain(const char *nonlinearity, double param);

lz_array *lz_init_zeros(int ndim, const int64_t *shape, lz_dtype t);
lz_array *lz_init_ones(int ndim, const int64_t *shape, lz_dtype t);
lz_array *lz_init_constant(int ndim, const int64_t *shape, double v, lz_dtype t);
lz_array *lz_init_uniform(lz_key key, int ndim, const int64_t *shape, double lo, double hi, lz_dtype t);
lz_array *lz_init_normal(lz_key key, int ndim, const int64_t *shape, double mean, double std, lz_dtype t);
/* N(mean, std) restricted to [lo, hi] (absolute bounds, like torch.nn.init.trunc_normal_,
 * whose defaults are lo = -2, hi = 2). */
lz_array *lz_init_truncated_normal(lz_key key, int ndim, const int64_t *shape, double mean,
                                   double std, double lo, double hi, lz_dtype t);
/* Glorot: U(-b, b), b = gain sqrt(6 / (fan_in + fan_out)); N(0, gain sqrt(2 / (fan_in + fan_out))). */
lz_array *lz_init_xavier_uniform(lz_key key, int ndim, const int64_t *shape, double gain, lz_dtype t);
lz_array *lz_init_xavier_normal(lz_key key, int ndim, const int64_t *shape, double gain, lz_dtype t);
/* He: std = gain / sqrt(fan) (fan from mode); uniform bound sqrt(3) std. gain e.g.
 * lz_init_gain("relu", 0). */
lz_array *lz_init_kaiming_uniform(lz_key key, int ndim, const int64_t *shape, double gain,
                                  lz_fan_mode mode, lz_dtype t);
lz_array *lz_init_kaiming_normal(lz_key key, int ndim, const int64_t *shape, double gain,
                                 lz_fan_mode mode, lz_dtype t);
/* A (semi-)orthogonal matrix of shape [rows, prod(rest)] (reshaped back), times gain: QR of a
 * normal matrix with R's diagonal signs folded in (torch.nn.init.orthogonal_). Computed at once
 * (returns an evaluated array). */
lz_array *lz_init_orthogonal(lz_key key, int ndim, const int64_t *shape, double gain, lz_dtype t);

/* ======================= LoRA ======================= */
/* Wraps every linear module below m whose path (relative to m) matches `pattern` (as in
 * lz_module_freeze: "blocks.*.attn.*", "head", "*") with a low-rank adapter (training mode:
 * dropout active, needs a key): y = x W^T + b + (alpha / rank) dropout(x) A^T B^T, A [rank, in]
 * (kaiming_uniform with a = sqrt(5), as PEFT), B [out, rank] (zeros, so the model is unchanged
 * at first). The wrapper keeps the layer's path and its "weight"/"bias" names (checkpoints of
 * the base model still load) and adds "lora_a", "lora_b". Then every parameter of m's tree that
 * is not an adapter is frozen. Returns the number of layers wrapped, or -1 (none matched). */
int lz_lora_apply(lz_module *m, const char *pattern, int64_t rank, double alpha, double dropout,
                  lz_key key);
/* Merges each adapter of m's tree into its weight (W + (alpha / rank) B A, evaluated), turning
 * the wrappers back into plain linear modules with the same names; weight and bias keep their
 * frozen flags, and the rest of the tree stays as lz_lora_apply left it (frozen): call
 * lz_module_unfreeze(m, "*") to train everything again. Returns the number merged (0 when
 * there are none), or -1. */
int lz_lora_merge(lz_module *m);
/* Whether m is a LoRA wrapper made by lz_lora_apply. */
bool lz_lora_is(const lz_module *m);
/* The weight of the LoRA wrapper m with its adapter folded in, W + (alpha / rank) B A, in W's
 * dtype (pooled, lazy), leaving m as it is: what lz_lora_merge would install. NULL + error
 * when m is not a LoRA wrapper. */
lz_array *lz_lora_merged_weight(lz_module *m);

#endif
