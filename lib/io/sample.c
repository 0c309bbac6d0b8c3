/* Sampling text from a transformer language model (see model.h, lz_model_generate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

/* splitmix64: a small generator whose whole state is the seed, so runs repeat exactly */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One token from logits[0..v): temperature, top-k, then inverse-CDF sampling in double. */
static int32_t pick(const float *logits, int64_t v, double temperature, int top_k, uint64_t *rng,
                    double *w) {
    int64_t best = 0;
    for (int64_t i = 1; i < v; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return (int32_t)best;
    double cut = -INFINITY;
    if (top_k > 0 && top_k < v) {
        /* the k-th largest value: logits at or above it stay (ties may keep a few more) */
        for (int64_t i = 0; i < v; i++) w[i] = logits[i];
        for (int k = 0; k < top_k; k++) {
            int64_t m = k;
            for (int64_t i = k + 1; i < v; i++)
                if (w[i] > w[m]) m = i;
            double t = w[k]; w[k] = w[m]; w[m] = t;
        }
        cut = w[top_k - 1];
    }
    double mx = logits[best] / temperature, sum = 0;
    for (int64_t i = 0; i < v; i++) {
        w[i] = logits[i] >= cut ? exp(logits[i] / temperature - mx) : 0;
        sum += w[i];
    }
    double u = (double)(next_u64(rng) >> 11) * 0x1p-53 * sum, acc = 0;
    for (int64_t i = 0; i < v; i++) {
        acc += w[i];
        if (u < acc && w[i] > 0) return (int32_t)i;
    }
    return (int32_t)best;
}

int lz_model_generate(lz_module *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                      double temperature, int top_k, uint64_t seed, bool use_cache, int32_t *out) {
    const lz_model_gpt_info *g = lz_model_gpt(m);
    if (!g) { lz_fail("generate: not a transformer model"); return -1; }
    if (n_prompt < 1 || n_new < 0) { lz_fail("generate: need a prompt of at least one token"); return -1; }
    int64_t ctx = g->context, v = g->vocab, n = n_prompt;
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= v) {
            lz_fail("generate: prompt token %lld is %d, outside the vocabulary of %lld",
                    (long long)i, prompt[i], (long long)v);
            return -1;
        }
    int32_t *seq = malloc((size_t)(n_prompt + n_new) * sizeof *seq);
    float *logits = malloc((size_t)v * sizeof *logits);
    double *w = malloc((size_t)v * sizeof *w);
    if (!seq || !logits || !w) {
        free(seq); free(logits); free(w);
        lz_fail("generate: out of memory");
        return -1;
    }
    memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
    lz_module_train(m, false);
    lz_kv_cache *cache = use_cache ? lz_model_gpt_cache(m) : NULL;
    int rc = use_cache && !cache ? -1 : 0;
    /* the window is seq[start..n); a prompt longer than the context keeps its end */
    int64_t start = n > ctx ? n - ctx : 0, fed = start;   /* fed: seq[start..fed) is cached */
    if (cache) lz_kv_cache_reset(cache);
    uint64_t rng = seed;
    for (int64_t step = 0; step < n_new && !rc; step++) {
        if (n - start > ctx) {
            start = n - (ctx / 2 > 0 ? ctx / 2 : 1);
            if (cache) { lz_kv_cache_reset(cache); fed = start; }
        }
        lz_pool_push();
        lz_array *y;
        if (cache) {
            int64_t shape[2] = {1, n - fed};
            y = lz_model_gpt_forward_cached(m, lz_from_data(seq + fed, 2, shape, LZ_I32));
            if (!y || lz_kv_cache_eval(cache, 1, &y)) rc = -1;
            else fed = n;
        } else {
            int64_t shape[2] = {1, n - start};
            y = lz_module_forward(m, lz_from_data(seq + start, 2, shape, LZ_I32), NULL);
            y = y ? lz_slice_axis(y, 1, n - start - 1, n - start, 1) : NULL;
            if (!y || lz_eval1(y)) rc = -1;
        }
        if (!rc && lz_to_float(y, logits, v)) rc = -1;
        lz_pool_pop();
        if (rc) break;
        seq[n] = pick(logits, v, temperature, top_k, &rng, w);
        out[step] = seq[n++];
    }
    if (cache) lz_kv_cache_reset(cache);
    free(seq); free(logits); free(w);
    return rc;
}
