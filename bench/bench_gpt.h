/* The GPT of the bench programs (bench_train, bench_module), the same model bench/torch_train.py
 * builds: token + learned position embeddings, pre-norm transformer blocks (fused qkv with
 * bias, causal, GELU MLP of 4 D), final layer norm, untied linear head. */
#ifndef LZ_BENCH_GPT_H
#define LZ_BENCH_GPT_H

#include "leibniz.h"
#include "nn/nn.h"

static lz_array *bench_gpt_forward(lz_module *m, lz_array *tokens, const lz_key *key) {
    lz_array *pos = lz_slice_axis(lz_module_param(m, "pos"), 0, 0, lz_dim(tokens, -1), 1);
    lz_array *h = lz_add(lz_module_forward(lz_module_child(m, "embed"), tokens, key), pos);
    h = lz_module_forward(lz_module_child(m, "blocks"), h, key);
    h = lz_module_forward(lz_module_child(m, "norm"), h, key);
    return lz_module_forward(lz_module_child(m, "head"), h, key);
}

static const lz_module_kind bench_gpt_kind = {"gpt", bench_gpt_forward, NULL, NULL};

/* The model, or NULL with the error set. */
static inline lz_module *bench_gpt_new(int64_t vocab, int64_t d, int64_t ctx, int layers, int heads) {
    lz_module *m = lz_module_new(&bench_gpt_kind, NULL);
    int64_t ps[2] = {ctx, d};
    lz_array *pos = lz_init_normal(lz_key_new(1), 2, ps, 0, 0.02, LZ_F32);
    lz_module *blocks = lz_nn_sequential(0, NULL);
    lz_block_opts o = {.bias = true, .causal = true};
    int rc = 0;
    for (int i = 0; i < layers && !rc; i++)
        rc = lz_nn_sequential_append(blocks, lz_nn_transformer_block(d, heads, &o, lz_key_new(10 + (uint64_t)i)));
    if (rc) lz_module_free(blocks);   /* not handed to m: ours to free */
    rc = rc || lz_module_add_param(m, "pos", pos) ||
         lz_module_add_child(m, "embed", lz_nn_embedding(vocab, d, lz_key_new(2))) ||
         lz_module_add_child(m, "blocks", blocks) ||
         lz_module_add_child(m, "norm", lz_nn_layer_norm(d, 1e-5, true, true)) ||
         lz_module_add_child(m, "head", lz_nn_linear(d, vocab, true, lz_key_new(3)));
    lz_release(pos);
    if (rc) { lz_module_free(m); return NULL; }
    return m;
}

#endif
