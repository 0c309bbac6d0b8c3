/* A stack of transformer-like blocks for the checkpointing tests: pre-norm causal
 * self-attention and a gelu MLP, each with a residual, on x [B, T, D]. A block's parameters
 * are its inputs (lz_checkpoint needs every differentiated array it reads as an input).
 * The model's inputs are x then TB_NPARAM arrays per block. */
#ifndef LZ_AUTOGRAD_BLOCKS_H
#define LZ_AUTOGRAD_BLOCKS_H

#include <string.h>
#include "leibniz.h"

enum { TB_NPARAM = 8 };   /* ln1 w, b; Wqkv [3D, D]; Wo [D, D]; ln2 w, b; W1 [4D, D]; W2 [D, 4D] */

typedef struct {
    int B, T, D, H, L;   /* batch, sequence, width, heads, blocks */
    int ckpt;            /* run each block through lz_checkpoint */
    int calls;           /* block calls so far (forward and recomputations) */
} tb_model;

static lz_array *tb_linear(lz_array *x, lz_array *w) {
    return lz_matmul(x, lz_swapaxes(w, -1, -2));
}

/* [B, T, D] -> [B, H, T, D/H] */
static lz_array *tb_heads(lz_array *a, const tb_model *m) {
    return lz_swapaxes(lz_reshape(a, 4, (int64_t[]){m->B, m->T, m->H, m->D / m->H}), 1, 2);
}

static int tb_block(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    tb_model *m = ctx;
    int64_t D = m->D;
    m->calls++;
    lz_array *x = in[0];
    lz_array *qkv = tb_linear(lz_layer_norm(x, in[1], in[2], 1e-5), in[3]);
    lz_array *q = tb_heads(lz_slice_axis(qkv, -1, 0, D, 1), m);
    lz_array *k = tb_heads(lz_slice_axis(qkv, -1, D, 2 * D, 1), m);
    lz_array *v = tb_heads(lz_slice_axis(qkv, -1, 2 * D, 3 * D, 1), m);
    lz_array *att = lz_swapaxes(lz_attention(q, k, v, 0, 1), 1, 2);
    lz_array *x2 = lz_add(x, tb_linear(lz_reshape(att, 3, (int64_t[]){m->B, m->T, D}), in[4]));
    lz_array *h = lz_gelu(tb_linear(lz_layer_norm(x2, in[5], in[6], 1e-5), in[7]));
    out[0] = lz_add(x2, tb_linear(h, in[8]));
    return out[0] ? 1 : -1;
}

/* The stack applied to in[0], then mean(y^2). */
static int tb_loss(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    tb_model *m = ctx;
    lz_array *h = in[0];
    for (int l = 0; l < m->L; l++) {
        lz_array *bin[1 + TB_NPARAM] = {h};
        memcpy(bin + 1, in + 1 + TB_NPARAM * l, TB_NPARAM * sizeof *bin);
        int k = m->ckpt ? lz_checkpoint(tb_block, m, 1 + TB_NPARAM, bin, &h)
                        : tb_block(m, 1 + TB_NPARAM, bin, &h);
        if (k != 1) return -1;
    }
    out[0] = lz_mean(lz_square(h), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

/* Evaluated inputs for the model: in[0] = x, then each block's parameters (norm weights
 * around 1, small random matrices). in has 1 + TB_NPARAM * L entries; release them all. */
static void tb_inputs(const tb_model *m, uint64_t seed, lz_array **in) {
    int64_t D = m->D;
    lz_key key = lz_key_new(seed);
    lz_pool_push();
    in[0] = lz_random_normal(key, 3, (int64_t[]){m->B, m->T, D}, 0, 1, LZ_F32);
    for (int l = 0; l < m->L; l++) {
        lz_key k = lz_key_fold(key, (uint64_t)l + 1);
        lz_array **p = in + 1 + TB_NPARAM * l;
        const int64_t rows[TB_NPARAM] = {0, 0, 3 * D, D, 0, 0, 4 * D, D};
        const int64_t cols[TB_NPARAM] = {D, D, D, D, D, D, D, 4 * D};
        for (int i = 0; i < TB_NPARAM; i++) {
            lz_key ki = lz_key_fold(k, (uint64_t)i);
            bool norm_weight = i == 0 || i == 4;
            if (rows[i]) {
                double sd = 1 / sqrt((double)cols[i]);
                p[i] = lz_random_normal(ki, 2, (int64_t[]){rows[i], cols[i]}, 0, sd, LZ_F32);
            } else {
                p[i] = lz_random_normal(ki, 1, (int64_t[]){D}, norm_weight ? 1 : 0, 0.1, LZ_F32);
            }
        }
    }
    int n = 1 + TB_NPARAM * m->L;
    for (int i = 0; i < n; i++) lz_retain(in[i]);
    lz_eval(n, in);
    lz_pool_pop();
}

#endif
