/* The pre-norm transformer block and its MLP (GELU or SwiGLU). */
#include <stdio.h>
#include <stdlib.h>
#include "nn_internal.h"

/* ---- MLP ---- */

typedef struct { int type; } mlp_state;

static lz_array *mlp_forward(lz_module *m, lz_array *x, const lz_key *key) {
    int type = ((mlp_state *)lz_module_state(m))->type;
    lz_pool_push();
    lz_array *y;
    if (type == LZ_MLP_SWIGLU) {
        lz_array *g = lz_module_forward(nn_child(m, "gate"), x, key);
        lz_array *u = g ? lz_module_forward(nn_child(m, "up"), x, key) : NULL;
        y = u ? lz_module_forward(nn_child(m, "down"), lz_mul(lz_silu(g), u), key) : NULL;
    } else {
        lz_array *h = lz_module_forward(nn_child(m, "fc1"), x, key);
        y = h ? lz_module_forward(nn_child(m, "fc2"), lz_gelu(h), key) : NULL;
    }
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void mlp_describe(const lz_module *m, char *buf, size_t n) {
    snprintf(buf, n, "%s", ((mlp_state *)lz_module_state(m))->type == LZ_MLP_SWIGLU ? "swiglu" : "gelu");
}

static const lz_module_kind mlp_kind = {"mlp", mlp_forward, mlp_describe, NULL};

static lz_module *mlp_new(int type, int64_t dim, int64_t hidden, bool bias, lz_key key) {
    mlp_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("mlp: out of memory");
    s->type = type;
    lz_module *m = lz_module_new(&mlp_kind, s);
    lz_key k[3];
    lz_key_split(key, 3, k);
    if (type == LZ_MLP_SWIGLU) {
        if (lz_module_add_child(m, "gate", lz_nn_linear(dim, hidden, bias, k[0])) ||
            lz_module_add_child(m, "up", lz_nn_linear(dim, hidden, bias, k[1])) ||
            lz_module_add_child(m, "down", lz_nn_linear(hidden, dim, bias, k[2]))) {
            lz_module_free(m);
            return NULL;
        }
    } else if (lz_module_add_child(m, "fc1", lz_nn_linear(dim, hidden, bias, k[0])) ||
               lz_module_add_child(m, "fc2", lz_nn_linear(hidden, dim, bias, k[1]))) {
        lz_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- block ---- */

static lz_array *block_forward(lz_module *m, lz_array *x, const lz_key *key) {
    lz_module *d1 = nn_child(m, "dropout1"), *d2 = nn_child(m, "dropout2");
    lz_pool_push();
    lz_array *h = lz_module_forward(nn_child(m, "attn"), lz_module_forward(nn_child(m, "norm1"), x, key), key);
    if (h && d1) h = lz_module_forward(d1, h, key);
    lz_array *y = h ? lz_add(x, h) : NULL;
    h = y ? lz_module_forward(nn_child(m, "mlp"), lz_module_forward(nn_child(m, "norm2"), y, key), key) : NULL;
    if (h && d2) h = lz_module_forward(d2, h, key);
    y = h ? lz_add(y, h) : NULL;
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static const lz_module_kind block_kind = {"transformer_block", block_forward, NULL, NULL};

static lz_module *norm_new(int kind, int64_t dim, bool bias) {
    return kind == LZ_NORM_RMS ? lz_nn_rms_norm(dim, 1e-6, true) : lz_nn_layer_norm(dim, 1e-5, true, bias);
}

lz_module *lz_nn_transformer_block(int64_t dim, int64_t heads, const lz_block_opts *opts,
                                   lz_key key) {
    lz_block_opts o = opts ? *opts : (lz_block_opts){.bias = true, .causal = true};
    if (o.norm != LZ_NORM_LAYER && o.norm != LZ_NORM_RMS)
        return lz_fail("transformer_block: unknown norm %d", o.norm);
    if (o.mlp != LZ_MLP_GELU && o.mlp != LZ_MLP_SWIGLU)
        return lz_fail("transformer_block: unknown mlp %d", o.mlp);
    if (!(o.dropout >= 0 && o.dropout < 1))
        return lz_fail("transformer_block: dropout %g is not in [0, 1)", o.dropout);
    if (o.d_ff < 0) return lz_fail("transformer_block: d_ff %lld < 0", (long long)o.d_ff);
    int64_t hidden = o.d_ff;
    if (!hidden) hidden = o.mlp == LZ_MLP_SWIGLU ? ((8 * dim + 2) / 3 + 7) / 8 * 8 : 4 * dim;
    lz_attention_opts ao = {.bias = o.bias, .fused_qkv = true, .causal = o.causal,
                            .rope = o.rope, .rope_theta = o.rope_theta};
    lz_key k[2];
    lz_key_split(key, 2, k);
    lz_module *m = lz_module_new(&block_kind, NULL);
    /* each add takes its child (NULL when a constructor failed: its error is kept) */
    int rc = lz_module_add_child(m, "norm1", norm_new(o.norm, dim, o.bias)) ||
             lz_module_add_child(m, "attn", lz_nn_attention(dim, heads, &ao, k[0])) ||
             lz_module_add_child(m, "norm2", norm_new(o.norm, dim, o.bias)) ||
             lz_module_add_child(m, "mlp", mlp_new(o.mlp, dim, hidden, o.bias, k[1]));
    if (!rc && o.dropout > 0)
        rc = lz_module_add_child(m, "dropout1", lz_nn_dropout(o.dropout)) ||
             lz_module_add_child(m, "dropout2", lz_nn_dropout(o.dropout));
    if (rc) {
        lz_module_free(m);
        return NULL;
    }
    return m;
}
