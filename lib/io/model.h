/* Models from experiment configs: the network of a config's `model:` section, its loss, its
 * summary, and one evaluation pass over a data split. train and eval share these, so a
 * checkpoint is rebuilt exactly as it was trained and eval reproduces train's figures.
 *
 * Supported: model.type sequential (image inputs), mlp and cnn, for image classification
 * (inputs [N, C, H, W] from lib/data's loader, integer labels). Every model is an
 * lz_nn_sequential whose children "0", "1", ... are the layers, so parameter (and checkpoint)
 * names are "<index>.weight", "<index>.bias":
 *   mlp:  flatten, then for each hidden width: linear, activation, [dropout]; linear out
 *   cnn:  for each channel count: conv2d (kernel, padding kernel/2), [batch_norm], activation,
 *         max_pool2d 2; then the mlp above (flatten, hidden layers, output)
 * Input sizes of every layer are inferred by running each layer's forward lazily on a
 * placeholder of the current shape (nothing is evaluated), which also gives the summary's
 * output shapes.
 *
 * model.type transformer (model_gpt.c) is a decoder-only language model over integer tokens
 * [B, T] (T <= model.context) giving logits [B, T, vocab]. Its children: "tok_emb"
 * (embedding, N(0, 0.02)), "pos_emb" (learned positions only, N(0, 0.02)), "drop" (dropout >
 * 0), "blocks" (a sequential of lz_nn_transformer_block: pre-norm, causal, GELU or SwiGLU,
 * layer or RMS norm, RoPE with positions: rotary), "norm_f", and "head" (linear, no bias)
 * unless the embeddings are tied (logits = h tok_emb.weight^T). With checkpoint_blocks each
 * block runs under lz_checkpoint: its activations are recomputed in the backward pass. */
#ifndef LZ_MODEL_H
#define LZ_MODEL_H

#include <stdint.h>
#include "../core/core.h"
#include "../nn/nn.h"
#include "../data/data.h"
#include "config.h"
#include "checkpoint.h"

/* What the data gives the model: image inputs [N, channels, height, width], num_classes
 * classes (the labels' range and, unless model.out says otherwise, the outputs). */
typedef struct {
    int channels, height, width;
    int num_classes;   /* text: the vocabulary size */
} lz_model_shape;

/* Builds the network of cfg for inputs of `in`, parameters initialised from key. Checks that
 * the output is [N, classes] logits for the data. Returns a NEW module (free with
 * lz_module_free) or NULL + lz_error() naming the layer ("model.layers.3 (linear): ..."). */
lz_module *lz_model_build(const lz_config *cfg, const lz_model_shape *in, lz_key key);

/* Applies cfg's finetune.lora section to m: low-rank adapters on the linear layers whose paths
 * match finetune.lora.targets (all linear layers when empty), every other parameter frozen.
 * Nothing when finetune.lora.rank is 0. A structural change: train applies it after loading
 * finetune.init_from, eval right after lz_model_build, so checkpoints of adapted models load.
 * 0 or -1 + error. */
int lz_model_apply_lora(lz_module *m, const lz_config *cfg, lz_key key);

/* A table of the layers: index, kind, configuration, output shape, parameter count; then the
 * totals. malloc'd (free()), NULL + error on failure. */
char *lz_model_summary(lz_module *m, const lz_model_shape *in);

/* The loss of cfg's `loss:` section between logits [N, K] and integer labels [N]
 * (mse/l1/smooth_l1/bce/kl_div compare with one-hot labels; nll takes log-softmax of the
 * logits; kl_div compares log-softmax with one-hot). Call it inside an lz_pool (its
 * intermediates are pooled); the result is pooled like an op's. */
lz_array *lz_model_loss(const lz_config *cfg, lz_array *logits, lz_array *labels);

/* One pass over a loader (from its first batch) in evaluation mode. */
typedef struct {
    int64_t n, correct;
    double loss;            /* mean per example (the config's reduction per batch, averaged) */
    int num_classes;
    int64_t *confusion;     /* [num_classes x num_classes]: rows true, columns predicted */
    int64_t nkept;          /* the first `keep` examples' predictions and labels */
    int32_t *pred, *label;
    float *prob;            /* their predicted class's probability */
} lz_model_metrics;

/* Evaluates m on every batch of l (lz_loader_seek'd to epoch 0, batch 0 first), keeping the
 * first `keep` predictions. Stops early, returning 1, when *stop becomes non-zero (NULL:
 * never). The module is left in evaluation mode. Returns 0 (or 1), or -1 + error. Free the
 * result with lz_model_metrics_free. */
int lz_model_evaluate(lz_module *m, const lz_config *cfg, lz_loader *l, int num_classes,
                      int keep, volatile const int *stop, lz_model_metrics *out);
void lz_model_metrics_free(lz_model_metrics *r);

/* Loader options from cfg's data section: batch size, shuffle (seed), drop_last, prefetch,
 * normalisation, augmentation for the training split (train true); for evaluation: no
 * shuffle, no augmentation, eval_batch_size (or batch_size) unless batch_size > 0 is given.
 * The mean/std pointers point into *out. Returns 0, or -1 + error. */
typedef struct {
    lz_loader_options o;
    double mean[16], std[16];
} lz_model_loader_opts;
int lz_model_loader_options(const lz_config *cfg, bool train, int64_t batch_size,
                            lz_model_loader_opts *out);

/* Writes m's parameters to section "params" and its buffers to "buffers" of w, by full
 * name. 0 or -1. */
int lz_model_save(lz_module *m, lz_ckpt_writer *w);
/* Checks that c's "params" and "buffers" sections hold exactly m's names, shapes and dtypes
 * (one message listing every difference, prefixed by the checkpoint's path) and loads them
 * into m. 0 or -1 + error. */
int lz_model_load(lz_module *m, lz_ckpt *c);

/* LoRA (after lz_model_apply_lora). save_adapters: only the adapters (every lora_a and
 * lora_b) into "params"; save_merged: the parameters with each adapter folded into its
 * weight (lz_lora_merged_weight; the model is not changed) and no adapters, and the buffers:
 * what the same model without LoRA loads. load_adapted: the parameters and buffers of base
 * and the adapters of adapter, checked together (strict: one message listing every
 * missing, unexpected or mis-shaped name). 0 or -1 + error. */
int lz_model_save_adapters(lz_module *m, lz_ckpt_writer *w);
int lz_model_save_merged(lz_module *m, lz_ckpt_writer *w);
int lz_model_load_adapted(lz_module *m, lz_ckpt *base, lz_ckpt *adapter);

/* ---- transformer language models (model_gpt.c) ---- */
#include "../nn/kv_cache.h"

typedef struct {
    int64_t vocab, n_heads, d_model, context;
    int n_layers;
    bool learned_positions, tied, checkpoint_blocks;
    double dropout;
    lz_kv_attn_opts attn;   /* for the blocks' key/value-cached forward */
} lz_model_gpt_info;

/* The transformer of cfg for a data vocabulary of data_vocab tokens (model.vocab_size, when
 * given, must be at least that). NEW module in training mode, or NULL + error. lz_model_build
 * calls it for model.type transformer (with the shape's num_classes as the vocabulary). */
lz_module *lz_model_gpt_build(const lz_config *cfg, int64_t data_vocab, lz_key key);
/* m's settings when it is a transformer built here, else NULL. */
const lz_model_gpt_info *lz_model_gpt(const lz_module *m);
/* A table with one row per part (embeddings, each block, final norm, head) and its
 * parameter count; malloc'd. */
char *lz_model_gpt_summary(lz_module *m);
/* Generation: runs the NEW tokens x [B, T] at positions len..len+T-1 of m's key/value cache
 * (evaluation-mode blocks, no dropout) and returns the logits of the last one [B, 1, vocab]
 * (NEW, pending; evaluate with lz_kv_cache_eval(lz_model_gpt_cache(m), ...)). len + T must
 * not exceed the context. Reset the cache (lz_kv_cache_reset) to start a new sequence. */
lz_array *lz_model_gpt_forward_cached(lz_module *m, lz_array *x);
lz_kv_cache *lz_model_gpt_cache(lz_module *m);   /* borrowed; made on first use */

/* Sampling (sample.c). Generates n_new tokens after prompt[0..n_prompt) (n_prompt >= 1) into
 * out[0..n_new). Each step divides the last position's logits by temperature (<= 0: greedy),
 * keeps the top_k largest (0: all) and draws from their softmax with a generator seeded by
 * seed (the same seed gives the same tokens). The model sees a window of at most `context`
 * tokens: when it is full, it restarts with the last context/2 tokens. use_cache: one
 * cached position per token (a new prefill of the window when it restarts); otherwise the
 * whole window is run again for every token (the reference the cache must match). m is put
 * in evaluation mode. Returns 0, or -1 + error. */
int lz_model_generate(lz_module *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                      double temperature, int top_k, uint64_t seed, bool use_cache, int32_t *out);

#endif
