/* Multi-head self-attention: projections (children, so LoRA can wrap them), heads as a
 * reshape and a transpose (views), optional rotary embedding, the fused attention op, and the
 * output projection. With a fused qkv projection and no rotary embedding the packed op
 * (lz_attention_qkv) takes the projection's output as it is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "nn_internal.h"

typedef struct {
    int64_t dim, heads;
    bool fused, causal, rope;
    double theta;
    /* RoPE tables for the last sequence length seen: cos and sin [T, head_dim / 2] */
    int64_t rope_t;
    lz_array *cos, *sin;
} attn_state;

static void attn_free(void *p) {
    attn_state *s = p;
    if (!s) return;
    lz_release(s->cos);
    lz_release(s->sin);
    free(s);
}

/* cos/sin of t * theta^(-2i / hd) for t < T, i < hd / 2, computed in double once per T.
 * 0 or -1. */
static int rope_tables(attn_state *s, int64_t t) {
    if (s->cos && s->rope_t == t) return 0;
    int64_t hd = s->dim / s->heads, half = hd / 2, shape[2] = {t, half};
    float *c = malloc((size_t)(t * half + 1) * sizeof *c), *sn = malloc((size_t)(t * half + 1) * sizeof *sn);
    if (!c || !sn) { free(c); free(sn); lz_fail("attention: out of memory"); return -1; }
    for (int64_t p = 0; p < t; p++)
        for (int64_t i = 0; i < half; i++) {
            double a = (double)p * pow(s->theta, -2.0 * (double)i / (double)hd);
            c[p * half + i] = (float)cos(a);
            sn[p * half + i] = (float)sin(a);
        }
    lz_pool_push();
    lz_array *ca = lz_retain(lz_from_data(c, 2, shape, LZ_F32));
    lz_array *sa = lz_retain(lz_from_data(sn, 2, shape, LZ_F32));
    lz_pool_pop();
    free(c);
    free(sn);
    if (!ca || !sa) { lz_release(ca); lz_release(sa); return -1; }
    lz_release(s->cos);
    lz_release(s->sin);
    s->cos = ca;
    s->sin = sa;
    s->rope_t = t;
    return 0;
}

/* x [..., T, hd]: the halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin). */
static lz_array *rope(attn_state *s, lz_array *x) {
    int64_t hd = lz_dim(x, -1), half = hd / 2;
    lz_array *x1 = lz_slice_axis(x, -1, 0, half, 1), *x2 = lz_slice_axis(x, -1, half, hd, 1);
    lz_array *parts[2] = {
        lz_sub(lz_mul(x1, s->cos), lz_mul(x2, s->sin)),
        lz_add(lz_mul(x2, s->cos), lz_mul(x1, s->sin)),
    };
    return lz_concatenate(2, parts, -1);
}

/* [..., T, D] -> [..., H, T, D/H] */
static lz_array *split_heads(lz_array *x, int64_t heads) {
    if (!x) return NULL;
    int nd = lz_ndim(x);
    int64_t shape[LZ_MAX_DIMS];
    for (int d = 0; d < nd - 1; d++) shape[d] = lz_dim(x, d);
    shape[nd - 1] = heads;
    shape[nd] = lz_dim(x, -1) / heads;
    return lz_swapaxes(lz_reshape(x, nd + 1, shape), nd - 2, nd - 1);
}

static lz_array *attn_forward(lz_module *m, lz_array *x, const lz_key *key) {
    attn_state *s = lz_module_state(m);
    int nd = lz_ndim(x);
    if (nd < 2 || nd + 1 > LZ_MAX_DIMS || lz_dim(x, -1) != s->dim)
        return nn_fail(m, "input %s must be [B, T, %lld] or [T, %lld]", nn_shape(x),
                       (long long)s->dim, (long long)s->dim);
    if (!lz_dtype_is_float(lz_dtype_of(x)))
        return nn_fail(m, "input %s must be a float array", nn_shape(x));
    if (s->rope && rope_tables(s, lz_dim(x, -2))) return NULL;
    lz_pool_push();
    lz_array *q, *k, *v;
    if (s->fused && !s->rope) {
        /* packed: heads split and merged inside the kernels, one fused backward writing the
         * qkv gradient (no per-head copies, no padding of the q, k, v gradients) */
        lz_array *qkv = lz_module_forward(nn_child(m, "qkv"), x, key);
        lz_array *y = lz_attention_qkv(qkv, s->heads, 0, s->causal);
        y = y ? lz_module_forward(nn_child(m, "out"), y, key) : NULL;
        lz_retain(y);
        lz_pool_pop();
        return lz_autorelease(y);
    }
    if (s->fused) {
        lz_array *qkv = lz_module_forward(nn_child(m, "qkv"), x, key);
        int64_t d = s->dim;
        q = lz_slice_axis(qkv, -1, 0, d, 1);
        k = lz_slice_axis(qkv, -1, d, 2 * d, 1);
        v = lz_slice_axis(qkv, -1, 2 * d, 3 * d, 1);
    } else {
        q = lz_module_forward(nn_child(m, "q"), x, key);
        k = q ? lz_module_forward(nn_child(m, "k"), x, key) : NULL;
        v = k ? lz_module_forward(nn_child(m, "v"), x, key) : NULL;
    }
    q = split_heads(q, s->heads);
    k = split_heads(k, s->heads);
    v = split_heads(v, s->heads);
    if (s->rope && q && k) {
        q = rope(s, q);
        k = rope(s, k);
    }
    lz_array *y = lz_attention(q, k, v, 0, s->causal);   /* [..., H, T, hd] */
    if (y) {
        y = lz_swapaxes(y, nd - 2, nd - 1);                  /* [..., T, H, hd] */
        y = lz_reshape(y, nd, lz_shape(x));
    }
    y = y ? lz_module_forward(nn_child(m, "out"), y, key) : NULL;
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void attn_describe(const lz_module *m, char *buf, size_t n) {
    attn_state *s = lz_module_state(m);
    snprintf(buf, n, "dim=%lld, heads=%lld%s%s%s", (long long)s->dim, (long long)s->heads,
             s->fused ? ", fused qkv" : "", s->causal ? ", causal" : "",
             s->rope ? ", rope" : "");
}

static const lz_module_kind attn_kind = {"attention", attn_forward, attn_describe, attn_free};

/* A linear child around fresh arrays: weight from w_init, bias zeros or nn.Linear's. */
static int add_linear(lz_module *m, const char *name, lz_array *w, bool bias, bool zero_bias,
                      lz_key key) {
    if (!w) return -1;
    int64_t out = lz_dim(w, 0), in = lz_dim(w, 1);
    int rc = -1;
    lz_pool_push();
    lz_array *b = !bias ? NULL : zero_bias ? lz_zeros(1, &out, LZ_F32)
                                           : nn_default_uniform(key, 1, &out, (double)in);
    if (!bias || b) {
        if (!(b ? LZ_EVAL(w, b) : lz_eval1(w))) rc = lz_module_add_child(m, name, nn_linear_from(w, b));
    }
    lz_pool_pop();
    return rc;
}

lz_module *lz_nn_attention(int64_t dim, int64_t heads, const lz_attention_opts *opts, lz_key key) {
    lz_attention_opts o = opts ? *opts : (lz_attention_opts){.bias = true, .fused_qkv = true};
    if (dim < 1 || heads < 1 || dim % heads)
        return lz_fail("attention: heads (%lld) must divide dim (%lld)", (long long)heads, (long long)dim);
    if (o.rope && (dim / heads) % 2)
        return lz_fail("attention: rope needs an even head size, dim %lld / heads %lld = %lld",
                       (long long)dim, (long long)heads, (long long)(dim / heads));
    if (o.rope_theta < 0) return lz_fail("attention: rope_theta %g must be > 0", o.rope_theta);
    attn_state *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("attention: out of memory");
    *s = (attn_state){.dim = dim, .heads = heads, .fused = o.fused_qkv, .causal = o.causal,
                      .rope = o.rope, .theta = o.rope_theta > 0 ? o.rope_theta : 10000};
    lz_module *m = lz_module_new(&attn_kind, s);
    if (!m) return NULL;
    lz_key k[8];
    lz_key_split(key, 8, k);
    int64_t sq[2] = {dim, dim}, s3[2] = {3 * dim, dim};
    int rc = 0;
    lz_pool_push();
    if (o.fused_qkv) {
        rc = add_linear(m, "qkv", lz_init_xavier_uniform(k[0], 2, s3, 1, LZ_F32), o.bias, true, k[1]);
    } else {
        const char *names[3] = {"q", "k", "v"};
        for (int i = 0; i < 3 && !rc; i++)
            rc = add_linear(m, names[i], lz_init_xavier_uniform(k[i], 2, sq, 1, LZ_F32), o.bias,
                            true, k[4]);
    }
    if (!rc)
        rc = add_linear(m, "out", nn_default_uniform(k[5], 2, sq, (double)dim), o.bias, true, k[6]);
    lz_pool_pop();
    if (rc) { lz_module_free(m); return NULL; }
    return m;
}
