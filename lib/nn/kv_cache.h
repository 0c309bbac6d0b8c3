/* Key/value cache for incremental decoding with lz_nn_transformer_block modules.
 *
 * A transformer block (lib/nn/transformer.c) recomputes every position's keys and values on
 * each call. For generation, lz_kv_block_forward runs the same block (in evaluation mode:
 * no dropout) on the NEW tokens only, at positions len..len+T-1, attending to the keys and
 * values cached for the earlier positions plus their own, and stores the extended keys and
 * values for the next call. Each generated token then costs one position's work per layer
 * (plus copying the cache into its extension), not a forward over the whole context.
 *
 * The block is read through its children ("norm1", "attn" with a fused "qkv" and "out",
 * "norm2", "mlp"), so any LoRA wrapping of the linears is honoured. The attention's head
 * count and RoPE settings are not readable from the module: the caller passes them (the
 * values the block was built with). Cached arrays are pending after a call: evaluate them
 * with the step's output (lz_kv_cache_eval) so the graph does not grow across steps. */
#ifndef LZ_KV_CACHE_H
#define LZ_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "nn.h"

typedef struct lz_kv_cache lz_kv_cache;

typedef struct {
    int64_t heads;
    bool rope;
    double rope_theta;   /* 0: 10000 */
} lz_kv_attn_opts;

/* A cache for n_layers blocks, empty. NULL + error on failure. Free with lz_kv_cache_free. */
lz_kv_cache *lz_kv_cache_new(int n_layers);
void lz_kv_cache_free(lz_kv_cache *c);          /* NULL-safe */
void lz_kv_cache_reset(lz_kv_cache *c);          /* forgets every position */
/* Positions cached (those of the layers run since the last advance are not counted yet). */
int64_t lz_kv_cache_length(const lz_kv_cache *c);
/* After every layer has run on the T new positions: len += T. */
void lz_kv_cache_advance(lz_kv_cache *c, int64_t t);

/* Block `layer` on x [B, T, D], the positions len..len+T-1. Returns [B, T, D] (NEW,
 * autoreleased) or NULL + error; the layer's cache then holds len+T positions. */
lz_array *lz_kv_block_forward(lz_module *block, const lz_kv_attn_opts *o, lz_kv_cache *c,
                              int layer, lz_array *x);

/* Evaluates the cached keys and values of every layer together with the n arrays extra
 * (one lz_eval). 0 or -1. */
int lz_kv_cache_eval(lz_kv_cache *c, int n, lz_array *const *extra);

#endif
