/* Launchers of random.cu: the RANDOM_BITS node on the GPU (params and stream layout in
 * lib/ops/random.c). C-compatible. */
#ifndef LZ_CUDA_RANDOM_H
#define LZ_CUDA_RANDOM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A draw, prepared on the host from the node's params exactly as the CPU kernel prepares
 * its job (lib/backend/cpu/random.c). */
typedef struct {
    int dist, wpe, dtype;      /* LZ_RNG_*, words per element, output dtype */
    uint64_t hi, lo;           /* the key */
    double lo_v, width;        /* uniform: f[0], f[1] - f[0] */
    float lo_d, hi_d;          /* uniform, truncated normal: (float)f[2], (float)f[3] */
    double mean, std;          /* normal: f[0], f[1] */
    double pa, pw, a, b;       /* truncated normal: Phi(a), Phi(b) - Phi(a), the bounds */
    int flip;                  /*   worked on the lower-tail side, mirrored */
    uint64_t ilo, span;        /* randint: lo, hi - lo (bits) */
    uint64_t thresh;           /* bernoulli: true when the word < thresh */
} cuk_rng_desc;

/* Every distribution but the permutation: n elements into out (contiguous, d->dtype). One
 * thread per Philox block (every element's words lie in one block). */
void cuk_random(void *out, const cuk_rng_desc *d, int64_t n, void *stream);

/* The permutation (inside-out Fisher-Yates, the CPU's exactly): draws[k] = step k's pick
 * r_k in [0, k] and keys[k] = r_k << 32 | k (k < n; keys[n..P) all ones), then sort keys
 * (cuk_sort_u64_rows, one row of P), then cuk_perm_chain resolves each output in parallel:
 * out[p] is the last step k > p with r_k = p, else, following p -> r_p -> r_{r_p} ..., the
 * last step that wrote there before the chain arrived (or the fixed point itself). n < 2^32. */
void cuk_perm_draws(uint32_t *draws, uint64_t *keys, uint64_t hi, uint64_t lo, int64_t n,
                    int64_t P, void *stream);
void cuk_perm_chain(int64_t *out, const uint32_t *draws, const uint64_t *keys, int64_t n,
                    void *stream);

#ifdef __cplusplus
}
#endif

#endif
