/* The transformer language model of model.type transformer (see model.h): token (and
 * learned position) embeddings, pre-norm blocks from lib/nn, a final norm and the output
 * projection (tied to the token embedding or its own), with optional per-block gradient
 * checkpointing and a key/value-cached forward for generation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "core/strbuf.h"
#include "../autograd/autograd.h"

/* What lz_checkpoint needs to run one block again: the block, its parameter slots (swapped
 * for the block function's inputs, so gradients flow through those inputs), the key. */
typedef struct {
    lz_module *block;
    lz_named_list params;
    lz_key key;
    bool has_key;
} block_ctx;

typedef struct {
    lz_model_gpt_info info;
    block_ctx *ck;        /* [n_layers], refreshed by each checkpointed forward */
    lz_kv_cache *cache;   /* made on first use by lz_model_gpt_forward_cached */
} gpt_state;

static void gpt_free(void *p) {
    gpt_state *s = p;
    if (!s) return;
    for (int i = 0; s->ck && i < s->info.n_layers; i++) lz_named_list_free(&s->ck[i].params);
    free(s->ck);
    lz_kv_cache_free(s->cache);
    free(s);
}

static lz_module *child(lz_module *m, const char *name) {
    return lz_module_child(m, name);
}

static int block_fn(void *p, int n, lz_array *const *in, lz_array **out) {
    block_ctx *c = p;
    if (n != c->params.n + 1) { lz_fail("transformer: checkpointed block got %d inputs", n); return -1; }
    lz_array **saved = malloc((size_t)(c->params.n + 1) * sizeof *saved);
    if (!saved) { lz_fail("transformer: out of memory"); return -1; }
    /* the slots keep borrowed pointers only while the forward builds its graph */
    for (int i = 0; i < c->params.n; i++) {
        saved[i] = *c->params.items[i].slot;
        *c->params.items[i].slot = in[1 + i];
    }
    out[0] = lz_module_forward(c->block, in[0], c->has_key ? &c->key : NULL);
    for (int i = 0; i < c->params.n; i++) *c->params.items[i].slot = saved[i];
    free(saved);
    return out[0] ? 1 : -1;
}

/* Embeddings of tokens x [B, T] at positions p0..p0+T-1: [B, T, D]. */
static lz_array *embed(lz_module *m, lz_array *x, int64_t p0, const lz_key *key) {
    gpt_state *s = lz_module_state(m);
    lz_array *h = lz_module_forward(child(m, "tok_emb"), x, key);
    if (h && s->info.learned_positions) {
        lz_array *pos = lz_arange((double)p0, (double)(p0 + lz_dim(x, 1)), 1, LZ_I32);
        h = lz_add(h, lz_module_forward(child(m, "pos_emb"), pos, key));
    }
    return h;
}

static lz_array *head(lz_module *m, lz_array *h, const lz_key *key) {
    gpt_state *s = lz_module_state(m);
    h = lz_module_forward(child(m, "norm_f"), h, key);
    if (!h) return NULL;
    if (s->info.tied)
        return lz_matmul(h, lz_transpose(lz_module_param(m, "tok_emb.weight")));
    return lz_module_forward(child(m, "head"), h, key);
}

static lz_array *gpt_forward(lz_module *m, lz_array *x, const lz_key *key) {
    gpt_state *s = lz_module_state(m);
    if (lz_ndim(x) != 2 || (lz_dtype_of(x) != LZ_I32 && lz_dtype_of(x) != LZ_I64))
        return lz_fail("transformer: input must be integer tokens [B, T]");
    if (lz_dim(x, 1) > s->info.context)
        return lz_fail("transformer: %lld tokens exceed the context of %lld", (long long)lz_dim(x, 1),
                       (long long)s->info.context);
    lz_array *h = embed(m, x, 0, key);
    if (h && s->info.dropout > 0)
        h = lz_module_forward(child(m, "drop"), h, key);
    lz_module *blocks = child(m, "blocks");
    for (int i = 0; i < s->info.n_layers && h; i++) {
        lz_module *b = lz_module_child_at(blocks, i);
        if (!s->info.checkpoint_blocks) {
            h = lz_module_forward(b, h, key);
            continue;
        }
        block_ctx *c = &s->ck[i];
        lz_named_list_free(&c->params);
        if (lz_module_collect(b, LZ_PARAMS, &c->params)) return NULL;
        c->block = b;
        c->has_key = key != NULL;
        if (key) c->key = *key;
        lz_array **in = malloc((size_t)(c->params.n + 1) * sizeof *in);
        if (!in) return lz_fail("transformer: out of memory");
        in[0] = h;
        for (int j = 0; j < c->params.n; j++) in[1 + j] = *c->params.items[j].slot;
        lz_array *out[1] = {NULL};
        int k = lz_checkpoint(block_fn, c, c->params.n + 1, in, out);
        free(in);
        h = k == 1 ? out[0] : NULL;
    }
    return h ? head(m, h, key) : NULL;
}

static void gpt_describe(const lz_module *m, char *buf, size_t n) {
    const lz_model_gpt_info *i = &((gpt_state *)lz_module_state(m))->info;
    snprintf(buf, n, "layers=%d, heads=%lld, d_model=%lld, context=%lld, vocab=%lld", i->n_layers,
             (long long)i->n_heads, (long long)i->d_model, (long long)i->context, (long long)i->vocab);
}

static const lz_module_kind gpt_kind = {"transformer", gpt_forward, gpt_describe, gpt_free};

const lz_model_gpt_info *lz_model_gpt(const lz_module *m) {
    if (!m || lz_module_kind_of(m) != &gpt_kind) return NULL;
    return &((gpt_state *)lz_module_state(m))->info;
}

static lz_module *reinit(lz_module *e, lz_key key) {
    if (!e) return NULL;
    lz_pool_push();
    lz_array *w = lz_module_param(e, "weight");
    lz_array *nw = lz_init_normal(key, 2, lz_shape(w), 0, 0.02, LZ_F32);
    int rc = nw && !lz_eval1(nw) ? lz_module_set_param(e, "weight", nw) : -1;
    lz_pool_pop();
    if (rc) { lz_module_free(e); return NULL; }
    return e;
}

lz_module *lz_model_gpt_build(const lz_config *cfg, int64_t data_vocab, lz_key key) {
    lz_error_clear();
    lz_model_gpt_info i = {0};
    i.vocab = lz_config_has(cfg, "model.vocab_size") ? lz_config_int(cfg, "model.vocab_size") : data_vocab;
    i.n_layers = (int)lz_config_int(cfg, "model.n_layers");
    i.n_heads = lz_config_int(cfg, "model.n_heads");
    i.d_model = lz_config_int(cfg, "model.d_model");
    i.context = lz_config_int(cfg, "model.context");
    const char *mlp = lz_config_str(cfg, "model.mlp"), *norm = lz_config_str(cfg, "model.norm");
    const char *pos = lz_config_str(cfg, "model.positions");
    i.tied = lz_config_bool(cfg, "model.tied_embeddings");
    i.checkpoint_blocks = lz_config_bool(cfg, "model.checkpoint_blocks");
    i.dropout = lz_config_float(cfg, "model.dropout");
    bool bias = lz_config_bool(cfg, "model.bias");
    double theta = lz_config_float(cfg, "model.rope_theta");
    int64_t d_ff = lz_config_has(cfg, "model.d_ff") ? lz_config_int(cfg, "model.d_ff") : 0;
    if (lz_error()[0] || !mlp || !norm || !pos) return NULL;
    i.learned_positions = !strcmp(pos, "learned");
    i.attn = (lz_kv_attn_opts){.heads = i.n_heads, .rope = !i.learned_positions, .rope_theta = theta};
    if (data_vocab > i.vocab)
        return lz_fail("model (transformer): model.vocab_size %lld is smaller than the data's "
                       "vocabulary of %lld tokens", (long long)i.vocab, (long long)data_vocab);
    if (i.d_model % i.n_heads)
        return lz_fail("model (transformer): n_heads %lld must divide d_model %lld",
                       (long long)i.n_heads, (long long)i.d_model);
    gpt_state *s = calloc(1, sizeof *s);
    if (s) s->ck = calloc((size_t)i.n_layers, sizeof *s->ck);
    if (!s || !s->ck) { if (s) free(s); return lz_fail("transformer: out of memory"); }
    s->info = i;
    lz_module *m = lz_module_new(&gpt_kind, s);
    if (!m) { free(s->ck); free(s); return NULL; }
    lz_block_opts bo = {.d_ff = d_ff, .norm = strcmp(norm, "rms") ? LZ_NORM_LAYER : LZ_NORM_RMS,
                        .mlp = strcmp(mlp, "swiglu") ? LZ_MLP_GELU : LZ_MLP_SWIGLU, .bias = bias,
                        .causal = true, .rope = !i.learned_positions, .rope_theta = theta,
                        .dropout = i.dropout};
    int rc = lz_module_add_child(m, "tok_emb", reinit(lz_nn_embedding(i.vocab, i.d_model, lz_key_fold(key, 1)),
                                                      lz_key_fold(key, 2)));
    if (!rc && i.learned_positions)
        rc = lz_module_add_child(m, "pos_emb", reinit(lz_nn_embedding(i.context, i.d_model, lz_key_fold(key, 3)),
                                                      lz_key_fold(key, 4)));
    if (!rc && i.dropout > 0) rc = lz_module_add_child(m, "drop", lz_nn_dropout(i.dropout));
    lz_module *blocks = rc ? NULL : lz_nn_sequential(0, NULL);
    for (int b = 0; !rc && b < i.n_layers; b++)
        rc = lz_nn_sequential_append(blocks, lz_nn_transformer_block(i.d_model, i.n_heads, &bo,
                                                                     lz_key_fold(key, 100 + (uint64_t)b)));
    if (!rc) rc = lz_module_add_child(m, "blocks", blocks);
    else lz_module_free(blocks);
    lz_module *nf = bo.norm == LZ_NORM_RMS ? lz_nn_rms_norm(i.d_model, 1e-6, true)
                                           : lz_nn_layer_norm(i.d_model, 1e-5, true, bias);
    if (!rc) rc = lz_module_add_child(m, "norm_f", nf);
    else lz_module_free(nf);
    if (!rc && !i.tied)
        rc = lz_module_add_child(m, "head", lz_nn_linear(i.d_model, i.vocab, false, lz_key_fold(key, 5)));
    if (rc) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", lz_error());
        lz_module_free(m);
        return lz_fail("model (transformer): %s", msg);
    }
    lz_module_train(m, true);
    return m;
}

lz_array *lz_model_gpt_forward_cached(lz_module *m, lz_array *x) {
    gpt_state *s = lz_module_state(m);
    if (!lz_model_gpt(m)) return lz_fail("forward_cached: not a transformer model");
    if (!s->cache && !(s->cache = lz_kv_cache_new(s->info.n_layers))) return NULL;
    int64_t p0 = lz_kv_cache_length(s->cache), t = lz_dim(x, 1);
    if (p0 + t > s->info.context)
        return lz_fail("forward_cached: %lld cached + %lld new tokens exceed the context of %lld",
                       (long long)p0, (long long)t, (long long)s->info.context);
    /* built in the caller's pool, like an op's intermediates */
    lz_array *h = embed(m, x, p0, NULL);
    lz_module *blocks = child(m, "blocks");
    for (int i = 0; i < s->info.n_layers && h; i++)
        h = lz_kv_block_forward(lz_module_child_at(blocks, i), &s->info.attn, s->cache, i, h);
    if (h) h = lz_slice_axis(h, 1, t - 1, t, 1);   /* only the last position's logits */
    lz_array *y = h ? head(m, h, NULL) : NULL;
    if (y) lz_kv_cache_advance(s->cache, t);
    return y;
}

lz_kv_cache *lz_model_gpt_cache(lz_module *m) {
    gpt_state *s = lz_module_state(m);
    if (!lz_model_gpt(m)) return NULL;
    if (!s->cache) s->cache = lz_kv_cache_new(s->info.n_layers);
    return s->cache;
}

char *lz_model_gpt_summary(lz_module *m) {
    const lz_model_gpt_info *i = lz_model_gpt(m);
    if (!i) return lz_fail("summary: not a transformer model");
    lz_strbuf s = {0};
    char desc[200], out[64];
    int64_t D = i->d_model, T = i->context;
#define ROW(name, kind, d, o, p) \
    lz_strbuf_printf(&s, "  %-10s %-18s %-44s %-14s %10lld\n", name, kind, d, o, (long long)(p))
    lz_strbuf_printf(&s, "  %-10s %-18s %-44s %-14s %10s\n", "part", "kind", "configuration", "output",
                     "params");
    snprintf(out, sizeof out, "[B,%lld,%lld]", (long long)T, (long long)D);
    snprintf(desc, sizeof desc, "vocab=%lld, dim=%lld", (long long)i->vocab, (long long)D);
    ROW("tok_emb", "embedding", desc, out, lz_module_num_params(child(m, "tok_emb"), false));
    if (i->learned_positions) {
        snprintf(desc, sizeof desc, "positions=%lld, dim=%lld", (long long)T, (long long)D);
        ROW("pos_emb", "embedding", desc, out, lz_module_num_params(child(m, "pos_emb"), false));
    }
    lz_module *blocks = child(m, "blocks");
    for (int b = 0; b < i->n_layers; b++) {
        lz_module *blk = lz_module_child_at(blocks, b);
        lz_module *mlp = lz_module_child(blk, "mlp");
        const char *mk = lz_module_child(mlp, "gate") ? "swiglu" : "gelu";
        lz_module *fc = lz_module_child(mlp, mk[0] == 's' ? "up" : "fc1");
        lz_error_clear();
        char name[32];
        snprintf(name, sizeof name, "blocks.%d", b);
        snprintf(desc, sizeof desc, "heads=%lld, mlp=%s %lld, %s%s%s", (long long)i->n_heads, mk,
                 (long long)lz_dim(lz_module_param(fc, "weight"), 0),
                 strcmp(lz_module_kind_of(lz_module_child(blk, "norm1"))->name, "rms_norm") ? "layernorm" : "rmsnorm",
                 i->attn.rope ? ", rope" : "", i->checkpoint_blocks ? ", ckpt" : "");
        ROW(name, "transformer_block", desc, out, lz_module_num_params(blk, false));
    }
    ROW("norm_f", lz_module_kind_of(child(m, "norm_f"))->name, "", out,
        lz_module_num_params(child(m, "norm_f"), false));
    snprintf(out, sizeof out, "[B,%lld,%lld]", (long long)T, (long long)i->vocab);
    if (i->tied) ROW("head", "tied", "tok_emb.weight^T", out, 0LL);
    else ROW("head", "linear", "no bias", out, lz_module_num_params(child(m, "head"), false));
#undef ROW
    lz_strbuf_printf(&s, "  parameters: %lld (%lld trainable)\n", (long long)lz_module_num_params(m, false),
                     (long long)lz_module_num_params(m, true));
    char *text = lz_strbuf_take(&s);
    return text ? text : lz_fail("model summary: out of memory");
}
