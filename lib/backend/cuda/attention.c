/* GPU kernels of the attention family: ATTENTION (with the optional log-sum-exp column),
 * ATTENTION_QKV (packed self-attention) and ATTENTION_QKV_GRAD (its backward). The fused
 * kernels are in attention.cu; this file reads the layouts and launches. Same semantics as
 * lib/backend/cpu/attention.c: float32 only (the constructors cast), head sizes up to
 * CUK_ATTN_MAX_D, rows that see no key give zeros and a log-sum-exp of -inf. FLOPs are
 * counted with the CPU kernel's formula (its query blocks: 32 rows for Tq <= 256, else 64,
 * and 32 in the backward), so lz_stats agree whichever device ran the node. */
#include <string.h>
#include "cuda.h"
#include "attention.h"

/* GEMM leading dimension of an [r, c] matrix whose rows are `sr` apart (as the CPU's). */
static int64_t ld_of(int64_t r, int64_t c, int64_t sr) {
    return r <= 1 || sr < 1 ? (c > 1 ? c : 1) : sr;
}

/* Device address of a's element 0, NULL for an empty array (which has no storage). */
static const float *dev_in(const lz_array *a) {
    return lz_size(a) > 0 && a->buf && a->buf->dev ? (const float *)cu_ptr(a) : NULL;
}

/* The CPU forward's FLOPs: per query block of qblk rows, 2 bq kend (d + dv). */
static uint64_t fwd_flops(int64_t nbatch, int64_t tq, int64_t tk, int64_t d, int64_t dv,
                          int causal) {
    int64_t qblk = tq <= 256 ? 32 : 64;
    uint64_t f = 0;
    for (int64_t i0 = 0; i0 < tq; i0 += qblk) {
        int64_t bq = tq - i0 < qblk ? tq - i0 : qblk, kend = tk;
        if (causal) {
            int64_t lim = i0 + bq + (tk - tq);
            kend = lim < 0 ? 0 : lim < kend ? lim : kend;
        }
        f += 2 * (uint64_t)(bq * kend * d) + 2 * (uint64_t)(bq * kend * dv);
    }
    return f * (uint64_t)nbatch;
}

/* The CPU backward's FLOPs: per block of 32 query rows, 10 bq kend hd. */
static uint64_t bwd_flops(int64_t items, int64_t t, int64_t hd, int causal) {
    uint64_t f = 0;
    for (int64_t i0 = 0; i0 < t; i0 += 32) {
        int64_t bq = t - i0 < 32 ? t - i0 : 32, kend = causal ? i0 + bq : t;
        f += 10 * (uint64_t)(bq * kend * hd);
    }
    return f * (uint64_t)items;
}

static int too_big(const char *op, int64_t d, int64_t dv) {
    lz_fail("%s: head size %lld (values %lld) above %d not supported on the GPU yet", op,
            (long long)d, (long long)dv, CUK_ATTN_MAX_D);
    return -1;
}

static int attention_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *q = in[0], *k = in[1], *v = in[2];
    cuk_attn_args a;
    memset(&a, 0, sizeof a);
    a.nb = out->ndim - 2;
    int64_t nbatch = 1;
    a.ldo = out->shape[a.nb + 1];
    for (int d = a.nb - 1; d >= 0; d--) {
        a.bshape[d] = out->shape[d];
        a.qs[d] = q->strides[d];
        a.ks[d] = k->strides[d];
        a.vs[d] = v->strides[d];
        a.os[d] = nbatch * out->shape[a.nb] * a.ldo;
        nbatch *= out->shape[d];
    }
    a.tq = q->shape[a.nb];
    a.d = q->shape[a.nb + 1];
    a.tk = k->shape[a.nb];
    a.dv = v->shape[a.nb + 1];
    a.ldq = ld_of(a.tq, a.d, q->strides[a.nb]);
    a.ldk = ld_of(a.tk, a.d, k->strides[a.nb]);
    a.ldv = ld_of(a.tk, a.dv, v->strides[a.nb]);
    a.scale = (float)p->f[0];
    a.causal = (int)p->i[0];
    a.lse = (int)p->i[1];
    uint64_t moved = 4 * (uint64_t)(lz_size(q) + lz_size(k) + lz_size(v) + lz_size(out));
    uint64_t flops = fwd_flops(nbatch, a.tq, a.tk, a.d, a.dv, a.causal);
    if (lz_size(out) == 0) return cu_done("attention", out, 0, moved, flops);
    if (a.d > CUK_ATTN_MAX_D || a.dv > CUK_ATTN_MAX_D) return too_big("attention", a.d, a.dv);
    a.q = dev_in(q);
    a.k = dev_in(k);
    a.v = dev_in(v);
    a.o = cu_ptr(out);
    int e = cuk_attention_fwd(&a, nbatch, cu_stream);
    if (e) return cu_fail("attention", out, (cudaError_t)e);
    return cu_done("attention", out, 1, moved, flops);
}

/* q, k, v of packed qkv [N, T, 3 W] (W = heads hd) as batch (N, heads) of [T, hd] views. */
static void packed_layout(cuk_attn_args *a, int64_t n, int64_t heads, int64_t hd, int64_t t) {
    int64_t w = heads * hd;
    a->nb = 2;
    a->bshape[0] = n;
    a->bshape[1] = heads;
    a->qs[0] = a->ks[0] = a->vs[0] = t * 3 * w;
    a->qs[1] = a->ks[1] = a->vs[1] = hd;
    a->tq = a->tk = t;
    a->d = a->dv = hd;
    a->ldq = a->ldk = a->ldv = 3 * w;
}

static int attention_qkv_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *qkv = in[0];
    int nd = out->ndim;
    int64_t heads = p->i[2], w = out->shape[nd - 1], hd = w / heads, t = out->shape[nd - 2];
    int64_t n = lz_shape_size(nd - 2, out->shape);
    cuk_attn_args a;
    memset(&a, 0, sizeof a);
    packed_layout(&a, n, heads, hd, t);
    a.os[0] = t * w;
    a.os[1] = hd;
    a.ldo = w;
    a.scale = (float)p->f[0];
    a.causal = (int)p->i[0];
    uint64_t moved = 4 * (uint64_t)(lz_size(qkv) + lz_size(out));
    uint64_t flops = fwd_flops(n * heads, t, t, hd, hd, a.causal);
    if (lz_size(out) == 0) return cu_done("attention_qkv", out, 0, moved, flops);
    if (hd > CUK_ATTN_MAX_D) return too_big("attention_qkv", hd, hd);
    a.q = dev_in(qkv);
    a.k = a.q + w;
    a.v = a.q + 2 * w;
    a.o = cu_ptr(out);
    int e = cuk_attention_fwd(&a, n * heads, cu_stream);
    if (e) return cu_fail("attention_qkv", out, (cudaError_t)e);
    return cu_done("attention_qkv", out, 1, moved, flops);
}

static int attention_qkv_grad_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *qkv = in[0], *dout = in[1];
    int nd = out->ndim;
    int64_t t = out->shape[nd - 2], heads = p->i[2], hd = out->shape[nd - 1] / (3 * heads);
    int64_t n = lz_shape_size(nd - 2, out->shape), w = heads * hd;
    uint64_t moved = 4 * (uint64_t)(lz_size(qkv) + lz_size(dout) + lz_size(out));
    uint64_t flops = bwd_flops(n * heads, t, hd, (int)p->i[0]);
    if (lz_size(out) == 0) return cu_done("attention_qkv_grad", out, 0, moved, flops);
    if (hd > CUK_ATTN_MAX_D) return too_big("attention_qkv_grad", hd, hd);
    cuk_attn_args a;
    memset(&a, 0, sizeof a);
    packed_layout(&a, n, heads, hd, t);
    a.scale = (float)p->f[0];
    a.causal = (int)p->i[0];
    a.q = dev_in(qkv);
    a.k = a.q + w;
    a.v = a.q + 2 * w;
    a.dout = dev_in(dout);
    a.dos[0] = t * w;
    a.dos[1] = hd;
    a.lddo = w;
    a.dq = cu_ptr(out);
    a.dk = a.dq + w;
    a.dvv = a.dq + 2 * w;
    a.dqs[0] = a.dks[0] = a.dvs[0] = t * 3 * w;
    a.dqs[1] = a.dks[1] = a.dvs[1] = hd;
    a.lddq = a.lddk = a.lddv = 3 * w;
    /* each row's log-sum-exp and rowsum(P dP), from the dq kernel to the dk/dv kernel */
    lz_buffer *stats = cu_scratch((size_t)(2 * n * heads * t) * sizeof(float));
    if (!stats) return -1;
    int e = cuk_attention_bwd(&a, n * heads, (float *)stats->dev, cu_stream);
    lz_buffer_release(stats);
    if (e) return cu_fail("attention_qkv_grad", out, (cudaError_t)e);
    return cu_done("attention_qkv_grad", out, 2, moved, flops);
}

void cuda_register_attention(void) {
    lz_prims[LZ_P_ATTENTION].gpu = attention_gpu;
    lz_prims[LZ_P_ATTENTION_QKV].gpu = attention_qkv_gpu;
    lz_prims[LZ_P_ATTENTION_QKV_GRAD].gpu = attention_qkv_grad_gpu;
}
