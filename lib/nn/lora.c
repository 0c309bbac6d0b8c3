/* LoRA: low-rank adapters on linear layers (Hu et al. 2021), with PEFT's initialisation and
 * names. A wrapped layer is a "lora_linear" module that holds the base layer's weight and
 * bias under their old names plus lora_a [rank, in] and lora_b [out, rank]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn_internal.h"

typedef struct {
    int64_t rank;
    double alpha, dropout;
} lora_state;

static lz_array *lora_forward(lz_module *m, lz_array *x, const lz_key *key) {
    lora_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    lz_array *a = nn_param(m, "lora_a"), *bb = nn_param(m, "lora_b");
    int64_t in = lz_dim(w, 1);
    if (lz_ndim(x) < 1 || lz_dim(x, -1) != in)
        return nn_fail(m, "input %s must end in %lld features (weight %s)", nn_shape(x),
                       (long long)in, nn_shape(w));
    bool drop = lz_module_is_training(m) && s->dropout > 0;
    if (drop && !key)
        return nn_fail(m, "training mode with adapter dropout needs a random key: pass one to "
                          "lz_module_forward");
    lz_pool_push();
    lz_array *y = lz_matmul(x, lz_transpose(w));
    if (b) y = lz_add(y, b);
    lz_array *xa = x;
    if (drop) {
        lz_array *keep = lz_random_bernoulli(*key, lz_ndim(x), lz_shape(x), 1 - s->dropout);
        xa = lz_where(keep, lz_mul_scalar(x, 1 / (1 - s->dropout)), lz_zeros(0, NULL, lz_dtype_of(x)));
    }
    /* (x A^T) B^T: the rank-r bottleneck first, never the [out, in] product */
    lz_array *low = lz_matmul(lz_matmul(xa, lz_transpose(a)), lz_transpose(bb));
    y = lz_add(y, lz_mul_scalar(low, s->alpha / (double)s->rank));
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void lora_describe(const lz_module *m, char *buf, size_t n) {
    lora_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight");
    snprintf(buf, n, "in=%lld, out=%lld%s, rank=%lld, alpha=%g, dropout=%g",
             (long long)lz_dim(w, 1), (long long)lz_dim(w, 0), nn_param(m, "bias") ? ", bias" : "",
             (long long)s->rank, s->alpha, s->dropout);
}

static const lz_module_kind lora_kind = {"lora_linear", lora_forward, lora_describe, NULL};

/* Paths of the modules below m (m itself excluded) for which want(module) holds. */
typedef struct {
    char **paths;
    int n, cap;
} paths;

static void find_modules(lz_module *m, bool (*want)(const lz_module *), paths *out) {
    for (int i = 0; i < lz_module_num_children(m); i++) {
        lz_module *c = lz_module_child_at(m, i);
        char p[512];
        lz_module_path(c, p, sizeof p);
        if (want(c)) {
            if (out->n == out->cap) {
                int cap = out->cap ? 2 * out->cap : 8;
                char **q = realloc(out->paths, (size_t)cap * sizeof *q);
                if (!q) return;
                out->paths = q;
                out->cap = cap;
            }
            char *d = strdup(p);
            if (d) out->paths[out->n++] = d;
        }
        find_modules(c, want, out);
    }
}

static void paths_free(paths *p) {
    for (int i = 0; i < p->n; i++) free(p->paths[i]);
    free(p->paths);
}

static bool is_lora(const lz_module *m) { return lz_module_kind_of(m) == &lora_kind; }

/* A full path made relative to m (m may be below the tree's root). */
static const char *relative(lz_module *m, const char *full) {
    char rp[512];
    lz_module_path(m, rp, sizeof rp);
    size_t n = strlen(rp);
    return n ? full + n + 1 : full;
}

static lz_module *wrap(lz_module *lin, int64_t rank, double alpha, double dropout, lz_key key) {
    lz_array *w = nn_param(lin, "weight"), *b = nn_param(lin, "bias");
    int64_t in = lz_dim(w, 1), out = lz_dim(w, 0);
    lora_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("lora: out of memory");
    *s = (lora_state){rank, alpha, dropout};
    lz_module *m = lz_module_new(&lora_kind, s);
    if (!m) return NULL;
    int64_t as[2] = {rank, in}, bs[2] = {out, rank};
    int rc;
    lz_pool_push();
    /* PEFT: A ~ kaiming_uniform(a = sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
    lz_array *a = nn_default_uniform(key, 2, as, (double)in), *z = lz_zeros(2, bs, LZ_F32);
    rc = !a || !z || LZ_EVAL(a, z) || lz_module_add_param(m, "weight", w) ||
         (b && lz_module_add_param(m, "bias", b)) || lz_module_add_param(m, "lora_a", a) ||
         lz_module_add_param(m, "lora_b", z);
    lz_pool_pop();
    if (rc) { lz_module_free(m); return NULL; }
    return m;
}

int lz_lora_apply(lz_module *m, const char *pattern, int64_t rank, double alpha, double dropout,
                  lz_key key) {
    if (!m) return -1;
    if (!pattern) { nn_fail(m, "lora: pattern is NULL"); return -1; }
    if (rank < 1) { nn_fail(m, "lora: rank %lld must be >= 1", (long long)rank); return -1; }
    if (!(alpha > 0)) { nn_fail(m, "lora: alpha %g must be > 0", alpha); return -1; }
    if (!(dropout >= 0 && dropout < 1)) { nn_fail(m, "lora: dropout %g is not in [0, 1)", dropout); return -1; }
    paths ps = {0};
    /* patterns are relative to m: match against the path below m */
    paths all = {0};
    find_modules(m, nn_is_linear, &all);
    for (int i = 0; i < all.n; i++)
        if (lz_name_match(pattern, relative(m, all.paths[i]))) {
            if (ps.n == ps.cap) {
                int cap = ps.cap ? 2 * ps.cap : 8;
                char **q = realloc(ps.paths, (size_t)cap * sizeof *q);
                if (!q) break;
                ps.paths = q;
                ps.cap = cap;
            }
            ps.paths[ps.n++] = all.paths[i];
            all.paths[i] = NULL;
        }
    paths_free(&all);
    if (ps.n == 0) {
        nn_fail(m, "lora: no linear layer matches \"%s\"", pattern);
        paths_free(&ps);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < ps.n && !rc; i++) {
        const char *rel = relative(m, ps.paths[i]);
        lz_module *lin = lz_module_child(m, rel);
        rc = !lin || lz_module_replace(m, rel, wrap(lin, rank, alpha, dropout,
                                                    lz_key_fold(key, (uint64_t)i)));
    }
    int n = ps.n;
    paths_free(&ps);
    if (rc) return -1;
    /* train only the adapters */
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS, &l)) return -1;
    for (int i = 0; i < l.n; i++) {
        const char *dot = strrchr(l.items[i].name, '.'), *local = dot ? dot + 1 : l.items[i].name;
        bool adapter = is_lora(l.items[i].module) && !strncmp(local, "lora_", 5);
        nn_set_frozen(l.items[i].module, local, !adapter);
    }
    lz_named_list_free(&l);
    return n;
}

bool lz_lora_is(const lz_module *m) { return m && is_lora(m); }

lz_array *lz_lora_merged_weight(lz_module *m) {
    if (!m) return NULL;
    if (!is_lora(m)) return nn_fail(m, "lora: not a LoRA adapter (a %s module)", lz_module_kind_of(m)->name);
    lora_state *s = lz_module_state(m);
    lz_array *w = nn_param(m, "weight");
    lz_pool_push();
    lz_array *delta = lz_matmul(nn_param(m, "lora_b"), nn_param(m, "lora_a"));
    lz_array *merged = lz_astype(lz_add(w, lz_mul_scalar(delta, s->alpha / (double)s->rank)),
                                 lz_dtype_of(w));
    lz_retain(merged);
    lz_pool_pop();
    return lz_autorelease(merged);
}

int lz_lora_merge(lz_module *m) {
    if (!m) return -1;
    paths ps = {0};
    find_modules(m, is_lora, &ps);
    int rc = 0;
    for (int i = 0; i < ps.n && !rc; i++) {
        const char *rel = relative(m, ps.paths[i]);
        lz_module *l = lz_module_child(m, rel);
        if (!l) { rc = -1; break; }
        lz_array *b = nn_param(l, "bias");
        bool wf = nn_frozen(l, "weight"), bf = nn_frozen(l, "bias");
        lz_pool_push();
        lz_array *merged = lz_lora_merged_weight(l);
        lz_module *lin = merged && !lz_eval1(merged) ? nn_linear_from(merged, b) : NULL;
        lz_pool_pop();
        if (lin) {
            nn_set_frozen(lin, "weight", wf);
            nn_set_frozen(lin, "bias", bf);
        }
        rc = lz_module_replace(m, rel, lin);
    }
    int n = ps.n;
    paths_free(&ps);
    return rc ? -1 : n;
}
