/* Linear and embedding layers. Their sizes are read from the weight's shape, so a module
 * made around existing arrays (LoRA merge, checkpoints) needs no other state. */
#include <stdio.h>
#include "nn_internal.h"

/* ---- linear ---- */

static lz_array *linear_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    lz_array *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    int64_t in = lz_dim(w, 1);
    if (lz_ndim(x) < 1 || lz_dim(x, -1) != in)
        return nn_fail(m, "input %s must end in %lld features (weight %s)", nn_shape(x),
                       (long long)in, nn_shape(w));
    lz_pool_push();
    lz_array *y = lz_matmul(x, lz_transpose(w));
    if (b) y = lz_add(y, b);
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void linear_describe(const lz_module *m, char *buf, size_t n) {
    lz_array *w = nn_param(m, "weight");
    snprintf(buf, n, "in=%lld, out=%lld%s", (long long)lz_dim(w, 1), (long long)lz_dim(w, 0),
             nn_param(m, "bias") ? ", bias" : "");
}

static const lz_module_kind linear_kind = {"linear", linear_forward, linear_describe, NULL};

bool nn_is_linear(const lz_module *m) { return m && lz_module_kind_of(m) == &linear_kind; }

lz_module *nn_linear_from(lz_array *weight, lz_array *bias) {
    lz_module *m = lz_module_new(&linear_kind, NULL);
    if (!m) return NULL;
    if (lz_module_add_param(m, "weight", weight) || (bias && lz_module_add_param(m, "bias", bias))) {
        lz_module_free(m);
        return NULL;
    }
    return m;
}

lz_module *lz_nn_linear(int64_t in, int64_t out, bool bias, lz_key key) {
    if (in < 1 || out < 1)
        return lz_fail("linear: in (%lld) and out (%lld) must be >= 1", (long long)in, (long long)out);
    lz_key k[2];
    lz_key_split(key, 2, k);
    int64_t ws[2] = {out, in}, bs[1] = {out};
    lz_pool_push();
    lz_array *w = nn_default_uniform(k[0], 2, ws, (double)in);
    lz_array *b = bias ? nn_default_uniform(k[1], 1, bs, (double)in) : NULL;
    lz_module *m = w && (!bias || b) && !(bias ? LZ_EVAL(w, b) : lz_eval1(w))
                       ? nn_linear_from(w, b) : NULL;
    lz_pool_pop();
    return m;
}

/* ---- embedding ---- */

static lz_array *embedding_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    lz_array *w = nn_param(m, "weight");
    lz_dtype t = lz_dtype_of(x);
    if (t != LZ_I32 && t != LZ_I64 && t != LZ_U8)
        return nn_fail(m, "input %s must hold integer indices (int32, int64, uint8)", nn_shape(x));
    return lz_take(w, x, 0);
}

static void embedding_describe(const lz_module *m, char *buf, size_t n) {
    lz_array *w = nn_param(m, "weight");
    snprintf(buf, n, "num=%lld, dim=%lld", (long long)lz_dim(w, 0), (long long)lz_dim(w, 1));
}

static const lz_module_kind embedding_kind = {"embedding", embedding_forward, embedding_describe, NULL};

lz_module *lz_nn_embedding(int64_t num, int64_t dim, lz_key key) {
    if (num < 1 || dim < 1)
        return lz_fail("embedding: num (%lld) and dim (%lld) must be >= 1", (long long)num, (long long)dim);
    int64_t ws[2] = {num, dim};
    lz_module *m = NULL;
    lz_pool_push();
    lz_array *w = lz_init_normal(key, 2, ws, 0, 1, LZ_F32);
    if (w && !lz_eval1(w)) {
        m = lz_module_new(&embedding_kind, NULL);
        if (m && lz_module_add_param(m, "weight", w)) { lz_module_free(m); m = NULL; }
    }
    lz_pool_pop();
    return m;
}
