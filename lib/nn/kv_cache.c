/* Key/value cache for incremental decoding (see kv_cache.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "kv_cache.h"
#include "nn_internal.h"

struct lz_kv_cache {
    int n;
    int64_t len;
    lz_array **k, **v;   /* per layer: [B, H, len', hd] (retained), NULL when empty */
};

lz_kv_cache *lz_kv_cache_new(int n_layers) {
    if (n_layers < 1) return lz_fail("kv_cache: n_layers %d must be >= 1", n_layers);
    lz_kv_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->n = n_layers;
        c->k = calloc((size_t)n_layers, sizeof *c->k);
        c->v = calloc((size_t)n_layers, sizeof *c->v);
    }
    if (!c || !c->k || !c->v) {
        lz_kv_cache_free(c);
        return lz_fail("kv_cache: out of memory");
    }
    return c;
}

void lz_kv_cache_reset(lz_kv_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        lz_release(c->k[i]);
        lz_release(c->v[i]);
        c->k[i] = c->v[i] = NULL;
    }
    c->len = 0;
}

void lz_kv_cache_free(lz_kv_cache *c) {
    if (!c) return;
    if (c->k && c->v) lz_kv_cache_reset(c);
    free(c->k);
    free(c->v);
    free(c);
}

int64_t lz_kv_cache_length(const lz_kv_cache *c) { return c ? c->len : 0; }
void lz_kv_cache_advance(lz_kv_cache *c, int64_t t) { if (c) c->len += t; }

/* [B, T, D] -> [B, H, T, D/H] */
static lz_array *split_heads(lz_array *x, int64_t heads) {
    if (!x) return NULL;
    int64_t shape[4] = {lz_dim(x, 0), lz_dim(x, 1), heads, lz_dim(x, 2) / heads};
    return lz_swapaxes(lz_reshape(x, 4, shape), 1, 2);
}

/* Rotary embedding of x [B, H, T, hd] at positions p0..p0+T-1, with the table formula of
 * lib/nn/attention.c (so cached and full forwards agree): pair i of position p turns by
 * p * theta^(-2i / hd), halves rotated ("rotate half"). */
static lz_array *rope_at(lz_array *x, int64_t p0, double theta) {
    int64_t t = lz_dim(x, 2), hd = lz_dim(x, 3), half = hd / 2, shape[2] = {t, half};
    float *c = malloc((size_t)(t * half + 1) * sizeof *c), *s = malloc((size_t)(t * half + 1) * sizeof *s);
    if (!c || !s) { free(c); free(s); return lz_fail("kv_cache: out of memory"); }
    for (int64_t p = 0; p < t; p++)
        for (int64_t i = 0; i < half; i++) {
            double a = (double)(p0 + p) * pow(theta, -2.0 * (double)i / (double)hd);
            c[p * half + i] = (float)cos(a);
            s[p * half + i] = (float)sin(a);
        }
    lz_array *ca = lz_from_data(c, 2, shape, LZ_F32), *sa = lz_from_data(s, 2, shape, LZ_F32);
    free(c);
    free(s);
    lz_array *x1 = lz_slice_axis(x, -1, 0, half, 1), *x2 = lz_slice_axis(x, -1, half, hd, 1);
    lz_array *parts[2] = {lz_sub(lz_mul(x1, ca), lz_mul(x2, sa)), lz_add(lz_mul(x2, ca), lz_mul(x1, sa))};
    return lz_concatenate(2, parts, -1);
}

static lz_array *attend(lz_module *attn, const lz_kv_attn_opts *o, lz_kv_cache *c, int layer,
                        lz_array *x) {
    int64_t d = lz_dim(x, -1);
    lz_module *qkv_m = lz_module_child(attn, "qkv"), *out_m = lz_module_child(attn, "out");
    if (!qkv_m || !out_m) return NULL;
    lz_array *qkv = lz_module_forward(qkv_m, x, NULL);
    if (!qkv) return NULL;
    lz_array *q = split_heads(lz_slice_axis(qkv, -1, 0, d, 1), o->heads);
    lz_array *k = split_heads(lz_slice_axis(qkv, -1, d, 2 * d, 1), o->heads);
    lz_array *v = split_heads(lz_slice_axis(qkv, -1, 2 * d, 3 * d, 1), o->heads);
    if (o->rope) {
        double theta = o->rope_theta > 0 ? o->rope_theta : 10000;
        q = rope_at(q, c->len, theta);
        k = rope_at(k, c->len, theta);
    }
    if (c->k[layer]) {
        lz_array *kk[2] = {c->k[layer], k}, *vv[2] = {c->v[layer], v};
        k = lz_concatenate(2, kk, 2);
        v = lz_concatenate(2, vv, 2);
    }
    if (!q || !k || !v) return NULL;
    /* causal with offset Tk - Tq: query i (position len+i) sees keys 0..len+i */
    lz_array *y = lz_attention(q, k, v, 0, 1);
    if (!y) return NULL;
    lz_release(c->k[layer]);
    lz_release(c->v[layer]);
    c->k[layer] = lz_retain(k);
    c->v[layer] = lz_retain(v);
    y = lz_reshape(lz_swapaxes(y, 1, 2), 3, lz_shape(x));
    return y ? lz_module_forward(out_m, y, NULL) : NULL;
}

lz_array *lz_kv_block_forward(lz_module *block, const lz_kv_attn_opts *o, lz_kv_cache *c,
                              int layer, lz_array *x) {
    if (!block || !o || !c || !x) return lz_fail("kv_block_forward: NULL argument");
    if (layer < 0 || layer >= c->n)
        return lz_fail("kv_block_forward: layer %d out of range (cache of %d)", layer, c->n);
    if (lz_ndim(x) != 3 || o->heads < 1 || lz_dim(x, 2) % o->heads)
        return lz_fail("kv_block_forward: input %s must be [B, T, D] with D divisible by %lld heads",
                       nn_shape(x), (long long)o->heads);
    lz_module *n1 = lz_module_child(block, "norm1"), *attn = lz_module_child(block, "attn");
    lz_module *n2 = lz_module_child(block, "norm2"), *mlp = lz_module_child(block, "mlp");
    if (!n1 || !attn || !n2 || !mlp) return NULL;
    lz_pool_push();
    lz_array *h = lz_module_forward(n1, x, NULL);
    h = h ? attend(attn, o, c, layer, h) : NULL;
    lz_array *y = h ? lz_add(x, h) : NULL;
    h = y ? lz_module_forward(mlp, lz_module_forward(n2, y, NULL), NULL) : NULL;
    y = h ? lz_add(y, h) : NULL;
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

int lz_kv_cache_eval(lz_kv_cache *c, int n, lz_array *const *extra) {
    lz_array **all = malloc((size_t)(2 * c->n + n + 1) * sizeof *all);
    if (!all) { lz_fail("kv_cache: out of memory"); return -1; }
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->k[i]) all[k++] = c->k[i];
        if (c->v[i]) all[k++] = c->v[i];
    }
    for (int i = 0; i < n; i++) all[k++] = extra[i];
    int rc = lz_eval(k, all);
    free(all);
    return rc;
}
