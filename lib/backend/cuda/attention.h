/* Launchers of attention.cu: fused (flash-attention style) scaled dot-product attention on
 * float32, forward and backward. Plain C: device pointers, int64 sizes and strides, the
 * stream as void *. Each launches on `stream` and returns without waiting: 0, or the
 * cudaError_t (as an int) of a failed launch-side call; launch errors are also left for the
 * caller's cudaGetLastError (cu_done).
 *
 * Layout, as the CPU kernel reads it: batch entry b (row-major index over bshape[0..nb))
 * of x starts at x + sum_d idx_d * xs[d] (any strides: 0 broadcasts, negative flips);
 * inside it, row r (a query or key position) starts at r * ldx, its D elements contiguous.
 * Head sizes: d, dv <= CUK_ATTN_MAX_D (the caller checks). */
#ifndef LZ_CUDA_ATTENTION_H
#define LZ_CUDA_ATTENTION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUK_ATTN_MAX_D 128
#define CUK_ATTN_MAX_NB 8

typedef struct {
    const float *q, *k, *v;      /* [.., tq, d], [.., tk, d], [.., tk, dv] (NULL when empty) */
    float *o;                    /* forward output [.., tq, dv (+1 with lse)] */
    int nb;                      /* batch dims */
    int64_t bshape[CUK_ATTN_MAX_NB];
    int64_t qs[CUK_ATTN_MAX_NB], ks[CUK_ATTN_MAX_NB], vs[CUK_ATTN_MAX_NB], os[CUK_ATTN_MAX_NB];
    int64_t tq, tk, d, dv, ldq, ldk, ldv, ldo;
    float scale;
    int causal;                  /* query i sees key j <= i + (tk - tq) */
    int lse;                     /* forward: write the row's log-sum-exp at column dv */
    /* backward only (q, k, v as above): dout [.., tq, dv] in, dq, dk, dv out */
    const float *dout;
    float *dq, *dk, *dvv;
    int64_t dos[CUK_ATTN_MAX_NB], dqs[CUK_ATTN_MAX_NB], dks[CUK_ATTN_MAX_NB], dvs[CUK_ATTN_MAX_NB];
    int64_t lddo, lddq, lddk, lddv;
} cuk_attn_args;

/* Forward: o (and the lse column) for all nbatch = prod(bshape) entries. One kernel. */
int cuk_attention_fwd(const cuk_attn_args *a, int64_t nbatch, void *stream);

/* Backward: dq, dk, dv from q, k, v, dout. stats: device scratch of 2 * nbatch * tq floats
 * (each row's log-sum-exp and rowsum(P dP), written by the first kernel, read by the
 * second). Two kernels: dq per query tile, then dk and dv per key tile. */
int cuk_attention_bwd(const cuk_attn_args *a, int64_t nbatch, float *stats, void *stream);

#ifdef __cplusplus
}
#endif

#endif
