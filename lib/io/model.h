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
 * output shapes. transformer models (text) are not built here yet. */
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
    int num_classes;
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

#endif
