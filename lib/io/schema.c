/* The experiment schema: every key a config may set, its type, default, allowed values and
 * one line of documentation. configs/README.md is generated from these tables (a test fails
 * when they disagree), so this is the one place where a key is defined.
 *
 * Order matters: a section comes before its keys, and the enum a `when` refers to comes
 * before the keys that depend on it (the loader resolves it first). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "config_internal.h"

#define NUL LZ_CFG_NULLABLE
#define OPTIM "optimizer.name="
#define SCHED "schedule.name="

const lz_config_key lz_config_schema[] = {
    {"base", LZ_CFG_STR, "null", NUL | LZ_CFG_META, .doc =
        "Config file to inherit from, relative to this file; this file's keys override its "
        "keys. Resolved at load time, so it is not part of the effective config."},
    {"name", LZ_CFG_STR, NULL, .doc = "Experiment name; outputs go to `<train.out_dir>/<name>/`."},
    {"device", LZ_CFG_ENUM, "auto", .choices = "auto|cpu|cuda", .doc =
        "Where the ops run: `cuda` the GPU (an error when there is none), `cpu`, or `auto` the "
        "GPU when one is present. Arrays follow: data is copied once to the device that reads it."},
    {"seed", LZ_CFG_INT, "0", .range = "[0, inf)", .doc =
        "Seed of every random choice: initialisation, shuffling, dropout, augmentation."},

    {"data", LZ_CFG_MAP, .doc = "Dataset and batches."},
    {"data.path", LZ_CFG_STR, NULL, .doc =
        "HDF5 file with one group per split (relative to the working directory)."},
    {"data.train_split", LZ_CFG_STR, "train", .doc = "Group of the file used for training."},
    {"data.val_split", LZ_CFG_STR, "test", NUL, .doc =
        "Group used for validation; null: no validation."},
    {"data.batch_size", LZ_CFG_INT, "64", .range = "[1, inf)", .doc = "Examples per batch."},
    {"data.eval_batch_size", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Batch size for validation; null: `data.batch_size`."},
    {"data.shuffle", LZ_CFG_BOOL, "true", .doc =
        "Shuffle the training examples at every epoch (from `seed`)."},
    {"data.drop_last", LZ_CFG_BOOL, "false", .doc =
        "Skip the last training batch of an epoch when it is not full."},
    {"data.prefetch", LZ_CFG_INT, "2", .range = "[0, inf)", .doc =
        "Batches prepared ahead on a background thread; 0: none."},
    {"data.context", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Text: tokens per training sequence; null: `model.context`."},
    {"data.normalize", LZ_CFG_MAP, .doc = "Images: per-channel normalisation after scaling to [0, 1]."},
    {"data.normalize.mean", LZ_CFG_FLOATS, "[]", .doc =
        "Mean subtracted from each channel; empty: no normalisation."},
    {"data.normalize.std", LZ_CFG_FLOATS, "[]", .range = "(0, inf)", .doc =
        "Standard deviation each channel is divided by; as many values as `mean`."},
    {"data.augment", LZ_CFG_MAP, .doc = "Images: random augmentation of training batches."},
    {"data.augment.random_crop_padding", LZ_CFG_INT, "0", .range = "[0, inf)", .doc =
        "Pad by this many pixels, then crop back to size at a random offset; 0: off."},
    {"data.augment.hflip", LZ_CFG_BOOL, "false", .doc = "Flip images left-right with probability 1/2."},

    {"model", LZ_CFG_MAP, .doc =
        "The network: a list of layers (`sequential`) or a named architecture."},
    {"model.type", LZ_CFG_ENUM, NULL, .choices = "sequential|mlp|cnn|transformer", .doc =
        "`sequential`: `layers` in order; `mlp`: linear layers; `cnn`: conv stages then an mlp "
        "head; `transformer`: a decoder-only language model."},
    {"model.layers", LZ_CFG_LAYERS, NULL, .when = "model.type=sequential", .doc =
        "Layers in order, e.g. `[{type: linear, out: 128}, relu, {type: linear, out: 10}]`; "
        "see *Layer types*. Input sizes are inferred."},
    {"model.channels", LZ_CFG_INTS, "[32, 64]", .range = "[1, inf)", .when = "model.type=cnn",
     .doc = "Output channels of each conv stage (conv, activation, 2x2 max-pool)."},
    {"model.kernel", LZ_CFG_INT, "3", .range = "[1, inf)", .when = "model.type=cnn", .doc =
        "Kernel size of the convolutions (padding keeps the size)."},
    {"model.batch_norm", LZ_CFG_BOOL, "false", .when = "model.type=cnn", .doc =
        "Batch normalisation after each convolution."},
    {"model.hidden", LZ_CFG_INTS, "[256]", .range = "[1, inf)", .when = "model.type=mlp|cnn",
     .doc = "Widths of the hidden linear layers."},
    {"model.activation", LZ_CFG_ENUM, "relu", .choices = "relu|gelu|silu|tanh|sigmoid",
     .when = "model.type=mlp|cnn", .doc = "Activation after each hidden layer."},
    {"model.out", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .when = "model.type=mlp|cnn",
     .doc = "Outputs of the last layer; null: the number of classes of the dataset."},
    {"model.vocab_size", LZ_CFG_INT, "null", NUL, .range = "[1, inf)",
     .when = "model.type=transformer", .doc = "Token vocabulary; null: from the dataset."},
    {"model.n_layers", LZ_CFG_INT, "6", .range = "[1, inf)", .when = "model.type=transformer",
     .doc = "Transformer blocks."},
    {"model.n_heads", LZ_CFG_INT, "8", .range = "[1, inf)", .when = "model.type=transformer",
     .doc = "Attention heads per block; must divide `d_model`."},
    {"model.d_model", LZ_CFG_INT, "512", .range = "[1, inf)", .when = "model.type=transformer",
     .doc = "Width of the residual stream."},
    {"model.d_ff", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .when = "model.type=transformer",
     .doc = "Hidden width of the block MLP; null: 4 x `d_model` (8/3 x for swiglu)."},
    {"model.context", LZ_CFG_INT, "256", .range = "[1, inf)", .when = "model.type=transformer",
     .doc = "Longest sequence the model attends over (causal)."},
    {"model.mlp", LZ_CFG_ENUM, "gelu", .choices = "gelu|swiglu", .when = "model.type=transformer",
     .doc = "Block MLP: linear-gelu-linear, or gated SwiGLU."},
    {"model.norm", LZ_CFG_ENUM, "layer", .choices = "layer|rms", .when = "model.type=transformer",
     .doc = "Pre-norm of each block: LayerNorm or RMSNorm."},
    {"model.positions", LZ_CFG_ENUM, "learned", .choices = "learned|rotary",
     .when = "model.type=transformer", .doc = "Learned position embeddings or RoPE."},
    {"model.rope_theta", LZ_CFG_FLOAT, "10000", .range = "(0, inf)",
     .when = "model.type=transformer", .doc = "RoPE base frequency (with `positions: rotary`)."},
    {"model.tied_embeddings", LZ_CFG_BOOL, "true", .when = "model.type=transformer", .doc =
        "The output projection shares the token embedding matrix."},
    {"model.bias", LZ_CFG_BOOL, "true", .when = "model.type=transformer", .doc =
        "Biases in the linear and norm layers."},
    {"model.checkpoint_blocks", LZ_CFG_BOOL, "false", .when = "model.type=transformer", .doc =
        "Recompute each block's activations in the backward pass (saves memory)."},
    {"model.dropout", LZ_CFG_FLOAT, "0", .range = "[0, 1)", .when = "model.type=mlp|cnn|transformer",
     .doc = "Dropout probability (after hidden layers; in attention and MLP for transformers)."},

    {"loss", LZ_CFG_MAP, .doc = "Training objective."},
    {"loss.name", LZ_CFG_ENUM, "cross_entropy",
     .choices = "cross_entropy|nll|mse|l1|smooth_l1|bce|kl_div", .doc =
        "`cross_entropy` takes logits; `nll` log-probabilities; `bce` logits of independent labels."},
    {"loss.label_smoothing", LZ_CFG_FLOAT, "0", .range = "[0, 1)", .when = "loss.name=cross_entropy",
     .doc = "Share of the target probability spread over all classes."},
    {"loss.ignore_index", LZ_CFG_INT, "null", NUL, .when = "loss.name=cross_entropy|nll", .doc =
        "Targets with this value do not count (e.g. padding); null: all count."},
    {"loss.beta", LZ_CFG_FLOAT, "1", .range = "(0, inf)", .when = "loss.name=smooth_l1", .doc =
        "Error below which smooth L1 is quadratic."},
    {"loss.reduction", LZ_CFG_ENUM, "mean", .choices = "mean|sum", .doc =
        "How per-example losses are combined."},

    {"optimizer", LZ_CFG_MAP, .doc = "Parameter updates."},
    {"optimizer.name", LZ_CFG_ENUM, "adam", .choices = "adam|adamw|sgd|rmsprop|adagrad|lion",
     .doc = "Algorithm (Lion wants a learning rate 3-10x smaller than AdamW)."},
    {"optimizer.lr", LZ_CFG_FLOAT, "1e-3", .range = "(0, inf)", .doc =
        "Learning rate (the peak when a schedule is used)."},
    {"optimizer.weight_decay", LZ_CFG_FLOAT, "0", .range = "[0, inf)", .doc =
        "Decoupled decay for adamw and lion, an L2 term in the gradient for the others."},
    {"optimizer.betas", LZ_CFG_FLOATS, "[0.9, 0.999]", .range = "[0, 1)", .length = 2,
     .when = OPTIM "adam|adamw|lion", .doc = "Decay rates of the first and second moments."},
    {"optimizer.eps", LZ_CFG_FLOAT, "1e-8", .range = "(0, inf)",
     .when = OPTIM "adam|adamw|rmsprop|adagrad", .doc = "Added to the denominator."},
    {"optimizer.momentum", LZ_CFG_FLOAT, "0", .range = "[0, 1)", .when = OPTIM "sgd|rmsprop",
     .doc = "Momentum factor; 0: none."},
    {"optimizer.nesterov", LZ_CFG_BOOL, "false", .when = OPTIM "sgd", .doc =
        "Nesterov momentum (needs momentum > 0)."},
    {"optimizer.alpha", LZ_CFG_FLOAT, "0.99", .range = "[0, 1)", .when = OPTIM "rmsprop", .doc =
        "Decay rate of the squared-gradient average."},

    {"schedule", LZ_CFG_MAP, .doc = "Learning rate over optimizer steps."},
    {"schedule.name", LZ_CFG_ENUM, "constant",
     .choices = "constant|step|multistep|exponential|cosine|warmup_cosine", .doc =
        "`step`: x gamma every step_size steps; `multistep`: x gamma at each milestone; "
        "`exponential`: x gamma^(step/step_size); `cosine`: down to min_lr over total_steps; "
        "`warmup_cosine`: cosine after a warmup (warmup_steps > 0)."},
    {"schedule.warmup_steps", LZ_CFG_INT, "0", .range = "[0, inf)", .doc =
        "Linear warmup from 0 to `optimizer.lr` before the schedule starts; 0: none."},
    {"schedule.step_size", LZ_CFG_INT, "1000", .range = "[1, inf)", .when = SCHED "step|exponential",
     .doc = "Steps per decay by gamma."},
    {"schedule.milestones", LZ_CFG_INTS, NULL, .range = "[1, inf)", .when = SCHED "multistep",
     .doc = "Steps at which the rate is multiplied by gamma, increasing."},
    {"schedule.gamma", LZ_CFG_FLOAT, "0.1", .range = "(0, 1]", .when = SCHED "step|multistep|exponential",
     .doc = "Decay factor."},
    {"schedule.min_lr", LZ_CFG_FLOAT, "0", .range = "[0, inf)", .when = SCHED "cosine|warmup_cosine",
     .doc = "Rate at the end of the cosine."},
    {"schedule.total_steps", LZ_CFG_INT, "null", NUL, .range = "[1, inf)",
     .when = SCHED "cosine|warmup_cosine", .doc =
        "Steps of the cosine including warmup; null: the whole training run."},

    {"train", LZ_CFG_MAP, .doc = "The training loop and its outputs."},
    {"train.epochs", LZ_CFG_INT, "10", .range = "[1, inf)", .doc = "Passes over the training split."},
    {"train.steps", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Optimizer steps to train; when set, `epochs` is ignored."},
    {"train.grad_accum", LZ_CFG_INT, "1", .range = "[1, inf)", .doc =
        "Batches whose gradients are summed into one optimizer step."},
    {"train.clip_grad_norm", LZ_CFG_FLOAT, "null", NUL, .range = "(0, inf)", .doc =
        "Rescale gradients whose global L2 norm exceeds this; null: no clipping."},
    {"train.eval_every", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Steps between validations; null: at the end of every epoch."},
    {"train.checkpoint_every", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Steps between checkpoints; null: at the end of every epoch."},
    {"train.log_every", LZ_CFG_INT, "50", .range = "[1, inf)", .doc =
        "Steps between lines of the metrics log."},
    {"train.log_format", LZ_CFG_ENUM, "jsonl", .choices = "jsonl|csv", .doc =
        "Format of the metrics log."},
    {"train.out_dir", LZ_CFG_STR, "runs", .doc =
        "Folder of the runs; this one writes to `<out_dir>/<name>/`."},
    {"train.threads", LZ_CFG_INT, "0", .range = "[0, inf)", .doc = "CPU threads; 0: all cores."},
    {"train.memory_limit", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Most memory the arrays may hold, in MiB (the host's and, on a GPU, the device's, each); "
        "past it the step fails with a message naming the op. null: no limit (on a GPU, below "
        "what the card has free)."},
    {"train.resume", LZ_CFG_STR, "null", NUL, .doc =
        "Checkpoint to resume from exactly (weights, optimizer, step, RNG); null: start afresh."},

    {"dist", LZ_CFG_MAP, .doc =
        "Data parallelism (`mpirun -np N train ...`): `data.batch_size` is the global batch, "
        "split evenly over the ranks."},
    {"dist.bucket_mb", LZ_CFG_FLOAT, "25", .range = "(0, inf)", .doc =
        "Gradients are averaged over the ranks in all-reduces of about this many MiB each."},
    {"dist.timeout_s", LZ_CFG_FLOAT, "300", .range = "[0, inf)", .doc =
        "Seconds a collective waits for every rank; past it (a rank died or hangs) every rank "
        "stops with an error. 0: wait for ever."},

    {"finetune", LZ_CFG_MAP, .doc = "Starting from trained weights."},
    {"finetune.init_from", LZ_CFG_STR, "null", NUL, .doc =
        "Checkpoint whose parameters are loaded by name; null: random initialisation."},
    {"finetune.strict", LZ_CFG_BOOL, "true", .doc =
        "Missing or unexpected names and shape mismatches are errors (false: reported, skipped)."},
    {"finetune.freeze", LZ_CFG_STRS, "[]", .doc =
        "Glob patterns of parameter names that are not trained, e.g. `conv*`, `blocks.0.*`; "
        "the model summary lists the names."},
    {"finetune.head", LZ_CFG_MAP, .doc = "Replacing the output layer."},
    {"finetune.head.name", LZ_CFG_STR, "null", NUL, .doc =
        "Module re-initialised instead of loaded (`head` in mlp and cnn models, `6` for item 6 "
        "of model.layers); null: keep all."},
    {"finetune.head.out", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Outputs of the new head; null: the number of classes of the dataset."},
    {"finetune.lora", LZ_CFG_MAP, .doc = "Low-rank adapters (LoRA)."},
    {"finetune.lora.rank", LZ_CFG_INT, "0", .range = "[0, inf)", .doc =
        "Rank of the adapters; 0: no LoRA."},
    {"finetune.lora.alpha", LZ_CFG_FLOAT, "16", .range = "(0, inf)", .doc =
        "Scale: the adapter output is multiplied by alpha / rank."},
    {"finetune.lora.dropout", LZ_CFG_FLOAT, "0", .range = "[0, 1)", .doc =
        "Dropout on the adapter input."},
    {"finetune.lora.targets", LZ_CFG_STRS, "[]", .doc =
        "Glob patterns of the linear layers that get adapters; empty: all linear layers."},
};
const int lz_config_schema_len = (int)(sizeof lz_config_schema / sizeof lz_config_schema[0]);

#define CONV(t, doc_) \
    {t, LZ_CFG_MAP, .doc = doc_}, \
    {t ".out", LZ_CFG_INT, NULL, .range = "[1, inf)", .doc = "Output channels."}, \
    {t ".kernel", LZ_CFG_INT, "3", .range = "[1, inf)", .doc = "Kernel size."}, \
    {t ".stride", LZ_CFG_INT, "1", .range = "[1, inf)", .doc = "Stride."}, \
    {t ".padding", LZ_CFG_INT, "0", .range = "[0, inf)", .doc = "Zero padding on each side."}, \
    {t ".bias", LZ_CFG_BOOL, "true", .doc = "Learn a bias per output channel."}
#define POOL(t, doc_) \
    {t, LZ_CFG_MAP, .doc = doc_}, \
    {t ".kernel", LZ_CFG_INT, "2", .range = "[1, inf)", .doc = "Window size."}, \
    {t ".stride", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc = "Stride; null: the kernel size."}, \
    {t ".padding", LZ_CFG_INT, "0", .range = "[0, inf)", .doc = "Padding on each side."}

const lz_config_key lz_config_layers[] = {
    {"linear", LZ_CFG_MAP, .doc = "Fully connected: y = x W^T + b over the last axis."},
    {"linear.out", LZ_CFG_INT, NULL, .range = "[1, inf)", .doc = "Output features."},
    {"linear.bias", LZ_CFG_BOOL, "true", .doc = "Learn a bias."},
    CONV("conv1d", "1-D convolution over [N, C, L]."),
    CONV("conv2d", "2-D convolution over [N, C, H, W]."),
    POOL("max_pool2d", "2-D max pooling."),
    POOL("avg_pool2d", "2-D average pooling."),
    {"flatten", LZ_CFG_MAP, .doc = "Flattens all axes but the first."},
    {"relu", LZ_CFG_MAP, .doc = "max(x, 0)."},
    {"gelu", LZ_CFG_MAP, .doc = "Gaussian error linear unit (tanh approximation)."},
    {"silu", LZ_CFG_MAP, .doc = "x * sigmoid(x)."},
    {"tanh", LZ_CFG_MAP, .doc = "Hyperbolic tangent."},
    {"sigmoid", LZ_CFG_MAP, .doc = "Logistic function."},
    {"dropout", LZ_CFG_MAP, .doc = "Zeroes inputs with probability p while training."},
    {"dropout.p", LZ_CFG_FLOAT, "0.5", .range = "[0, 1)", .doc = "Drop probability."},
    {"batch_norm", LZ_CFG_MAP, .doc = "Batch normalisation over axis 1 (channels/features)."},
    {"batch_norm.momentum", LZ_CFG_FLOAT, "0.1", .range = "[0, 1]", .doc =
        "Weight of the new batch in the running statistics."},
    {"batch_norm.eps", LZ_CFG_FLOAT, "1e-5", .range = "(0, inf)", .doc = "Added to the variance."},
    {"layer_norm", LZ_CFG_MAP, .doc = "Layer normalisation over the last axis."},
    {"layer_norm.eps", LZ_CFG_FLOAT, "1e-5", .range = "(0, inf)", .doc = "Added to the variance."},
    {"rms_norm", LZ_CFG_MAP, .doc = "RMS normalisation over the last axis."},
    {"rms_norm.eps", LZ_CFG_FLOAT, "1e-6", .range = "(0, inf)", .doc = "Added to the mean square."},
    {"embedding", LZ_CFG_MAP, .doc = "Table lookup of integer ids."},
    {"embedding.num", LZ_CFG_INT, "null", NUL, .range = "[1, inf)", .doc =
        "Number of ids; null: the vocabulary of the dataset."},
    {"embedding.dim", LZ_CFG_INT, NULL, .range = "[1, inf)", .doc = "Size of each vector."},
};
const int lz_config_layers_len = (int)(sizeof lz_config_layers / sizeof lz_config_layers[0]);

/* ---- lookups ---- */
const lz_config_key *cfg_find(const lz_config_key *t, int n, const char *path) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].path, path)) return &t[i];
    return NULL;
}

int cfg_in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *c = choices; c && *c;) {
        const char *e = strchr(c, '|');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == n && !strncmp(c, v, n)) return 1;
        c = e ? e + 1 : c + len;
    }
    return 0;
}

/* Optimal string alignment distance (edits, adjacent swaps), ignoring case and '-' vs '_'. */
int cfg_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            if (ca == '-') ca = '_';
            if (cb == '-') cb = '_';
            int c = ca != cb;
            int v = d[i - 1][j - 1] + c;
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* Close enough to suggest: a few edits for the length, or one a prefix of the other. */
int cfg_close(const char *typed, const char *cand) {
    size_t n = strlen(typed), m = strlen(cand);
    int limit = n <= 3 ? 1 : n <= 6 ? 2 : 3;
    if (cfg_distance(typed, cand) <= limit) return 1;
    if (n >= 4 && m >= 4 && (!strncmp(typed, cand, m < n ? m : n))) return 1;
    return 0;
}

const char *cfg_alias(const char *typed) {
    static const char *const pairs[][2] = {
        {"learning_rate", "optimizer.lr"}, {"lr", "optimizer.lr"},
        {"max_epochs", "train.epochs"}, {"num_epochs", "train.epochs"},
        {"max_steps", "train.steps"}, {"num_steps", "train.steps"},
        {"scheduler", "schedule"}, {"lr_scheduler", "schedule"}, {"lr_schedule", "schedule"},
        {"optim", "optimizer"}, {"criterion", "loss"}, {"dataset", "data"},
        {"arch", "model.type"}, {"architecture", "model.type"},
        {"gradient_clip_val", "train.clip_grad_norm"}, {"grad_clip", "train.clip_grad_norm"},
        {"clip_grad", "train.clip_grad_norm"}, {"accumulate_grad_batches", "train.grad_accum"},
        {"num_threads", "train.threads"}, {"output_dir", "train.out_dir"},
        {"checkpoint", "finetune.init_from"}, {"pretrained", "finetune.init_from"},
        {"random_seed", "seed"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (!strcmp(typed, pairs[i][0])) return pairs[i][1];
    return NULL;
}

/* ---- rules tying several keys together ---- */
int cfg_check_rules(const lz_config *cfg) {
    cnode *mean = cfg_lookup(cfg, "data.normalize.mean"), *std = cfg_lookup(cfg, "data.normalize.std");
    if (mean->n != std->n) {
        cfg_fail(std->line ? std : mean, "data.normalize.std has %d value%s but data.normalize.mean "
                   "has %d", std->n, std->n == 1 ? "" : "s", mean->n);
        return -1;
    }
    cnode *ms = cfg_lookup(cfg, "schedule.milestones");
    for (int i = 1; ms && i < ms->n; i++)
        if (ms->vals[i]->i <= ms->vals[i - 1]->i) {
            cfg_fail(ms->vals[i], "schedule.milestones must increase: %lld after %lld",
                       (long long)ms->vals[i]->i, (long long)ms->vals[i - 1]->i);
            return -1;
        }
    cnode *warm = cfg_lookup(cfg, "schedule.warmup_steps");
    if (!strcmp(lz_config_str(cfg, "schedule.name"), "warmup_cosine") && warm->i == 0) {
        cfg_fail(cfg_lookup(cfg, "schedule.name"),
                   "schedule 'warmup_cosine' needs schedule.warmup_steps > 0");
        return -1;
    }
    cnode *heads = cfg_lookup(cfg, "model.n_heads"), *width = cfg_lookup(cfg, "model.d_model");
    if (heads && width->i % heads->i) {
        cfg_fail(heads->line ? heads : width, "model.n_heads (%lld) must divide model.d_model (%lld)",
                   (long long)heads->i, (long long)width->i);
        return -1;
    }
    if (heads && !strcmp(lz_config_str(cfg, "model.positions"), "rotary") && (width->i / heads->i) % 2) {
        cfg_fail(cfg_lookup(cfg, "model.positions"),
                   "rotary positions need an even head size (d_model / n_heads = %lld)",
                   (long long)(width->i / heads->i));
        return -1;
    }
    cnode *nest = cfg_lookup(cfg, "optimizer.nesterov");
    if (nest && nest->i && cfg_lookup(cfg, "optimizer.momentum")->f == 0) {
        cfg_fail(nest, "optimizer.nesterov needs optimizer.momentum > 0");
        return -1;
    }
    return 0;
}
