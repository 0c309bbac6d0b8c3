/* Scaled dot-product attention, fused (flash-attention style).
 *
 * For each (batch, block of BQ query rows) the kernel walks the keys in blocks of BK:
 *     S = scale * Q_blk K_blk^T                    (GEMM, kept transposed: BK x BQ)
 *     per query: m' = max(m, max_key S), P = exp(S - m'), l = l * exp(m - m') + sum_key P,
 *              O *= exp(m - m')                    (online softmax: running max and sum)
 *     O += P V_blk                                 (GEMM, BQ x Dv)
 * and finally writes O / l (and, with the with_lse flag, m + log l in an extra column).
 * No Tq x Tk matrix exists: a thread holds S (BK x BQ), O (BQ x Dv) and four vectors, in
 * one scratch buffer from the allocator (so lz_memory sees it).
 *
 * Causal: query i sees keys j <= i + (Tk - Tq) (the queries are the last Tq positions of
 * the Tk keys, as with a KV cache). Key blocks past the last query row's limit are never
 * visited, and the last visited one is cut at that limit; inside a block a key is skipped
 * for the queries before the first one that sees it. A query that sees no key at all
 * (causal with Tq > Tk, or Tk = 0) gets zeros and a log-sum-exp of -inf, as
 * flash-attention does (a softmax over nothing would be NaN).
 *
 * Work items are (batch, query block), the heaviest causal blocks first, handed out
 * dynamically. OpenBLAS runs single-threaded inside them: nesting its threads under ours
 * would oversubscribe the cores.
 *
 * FLOPs counted: 2 * BQ' * BK' * D for every S block and 2 * BQ' * BK' * Dv for every P V
 * block actually computed (BQ', BK' the block's real extent; masked pairs inside a
 * diagonal block are counted, skipped blocks are not). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "cpu.h"
#include "vmath.h"

/* Block sizes: S is BK x BQ floats (32 KiB), small enough to stay in L1/L2 next to the
 * Q, K, V blocks; measured best of 32..128 x 64..256 on T = 256..1024, D = 32..128. */
#define BQ 64
#define BK 128

typedef struct {
    const float *q, *k, *v;
    float *o;
    int nb;                                /* batch dims */
    int64_t bshape[LZ_MAX_DIMS], qs[LZ_MAX_DIMS], ks[LZ_MAX_DIMS], vs[LZ_MAX_DIMS], os[LZ_MAX_DIMS];
    int64_t tq, tk, d, dv, ldq, ldk, ldv, ldo;
    int64_t nqb, qblk;                     /* query blocks per batch entry, rows per block */
    float scale;
    int causal, lse;
} attn;

/* GEMM leading dimension of an [r, c] matrix whose rows are `sr` apart. */
static int64_t ld_of(int64_t r, int64_t c, int64_t sr) {
    return r <= 1 || sr < 1 ? (c > 1 ? c : 1) : sr;
}

/* First row of a query block (rows i0 + r) that sees key j: rows r >= this, clamped. */
static inline int64_t first_row(const attn *a, int64_t j, int64_t i0, int64_t bq) {
    if (!a->causal) return 0;
    int64_t r = j - (a->tk - a->tq) - i0;
    return r < 0 ? 0 : r > bq ? bq : r;
}

/* One (batch, query block) work item. scratch: BK * BQ + BQ * dv + 4 * BQ floats.
 * The scores are kept transposed, St[c][r] = score of query r against key c, so the
 * softmax bookkeeping (max, exp, sums) runs across the BQ queries: plain vertical vector
 * operations, no per-row horizontal reductions. Returns the FLOPs done. */
static uint64_t attn_block(const attn *a, int64_t bi, int64_t qb, float *scratch) {
    int64_t qo = 0, ko = 0, vo = 0, oo = 0, rem = bi;
    for (int d = a->nb - 1; d >= 0; d--) {
        int64_t i = rem % a->bshape[d];
        rem /= a->bshape[d];
        qo += i * a->qs[d];
        ko += i * a->ks[d];
        vo += i * a->vs[d];
        oo += i * a->os[d];
    }
    int64_t i0 = qb * a->qblk, bq = a->tq - i0 < a->qblk ? a->tq - i0 : a->qblk;
    int64_t kend = a->tk;
    if (a->causal) {
        int64_t lim = i0 + bq + (a->tk - a->tq);   /* one past the last row's last key */
        kend = lim < 0 ? 0 : lim < kend ? lim : kend;
    }
    const float *q = a->q + qo + i0 * a->ldq;
    float *St = scratch, *O = St + BK * BQ, *m = O + BQ * a->dv, *l = m + BQ;
    float *mx = l + BQ, *alpha = mx + BQ;
    memset(O, 0, (size_t)(bq * a->dv) * 4);
    for (int64_t r = 0; r < bq; r++) { m[r] = -INFINITY; l[r] = 0; }
    uint64_t flops = 0;
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        int64_t bk = kend - j0 < BK ? kend - j0 : BK;
        if (a->d > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bk, (int)bq, (int)a->d,
                        a->scale, a->k + ko + j0 * a->ldk, (int)a->ldk, q, (int)a->ldq,
                        0.0f, St, BQ);
        else
            for (int64_t c = 0; c < bk; c++) memset(St + c * BQ, 0, (size_t)bq * 4);
        flops += 2 * (uint64_t)(bq * bk * a->d);
        /* new running max; masked (query, key) pairs are skipped, not set to -inf */
        memcpy(mx, m, (size_t)bq * 4);
        for (int64_t c = 0; c < bk; c++) {
            const float *s = St + c * BQ;
            #pragma omp simd
            for (int64_t r = first_row(a, j0 + c, i0, bq); r < bq; r++)
                mx[r] = s[r] > mx[r] ? s[r] : mx[r];
        }
        /* alpha rescales what was summed under the old max; a row that has seen no key yet
         * has m = mx = -inf, and alpha 1 keeps it at zero without a NaN */
        #pragma omp simd
        for (int64_t r = 0; r < bq; r++) {
            alpha[r] = m[r] == mx[r] ? 1.0f : lz_expf(m[r] - mx[r]);
            l[r] *= alpha[r];
            m[r] = mx[r];
        }
        for (int64_t c = 0; c < bk; c++) {
            float *s = St + c * BQ;
            int64_t r0 = first_row(a, j0 + c, i0, bq);
            for (int64_t r = 0; r < r0; r++) s[r] = 0;
            #pragma omp simd
            for (int64_t r = r0; r < bq; r++) {
                float p = lz_expf(s[r] - mx[r]);
                s[r] = p;
                l[r] += p;
            }
        }
        for (int64_t r = 0; r < bq; r++) {
            if (alpha[r] == 1.0f) continue;
            float *o = O + r * a->dv, al = alpha[r];
            #pragma omp simd
            for (int64_t c = 0; c < a->dv; c++) o[c] *= al;
        }
        /* O += P V with P = St^T */
        if (a->dv > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)bq, (int)a->dv, (int)bk,
                        1.0f, St, BQ, a->v + vo + j0 * a->ldv, (int)a->ldv, 1.0f, O,
                        (int)a->dv);
        flops += 2 * (uint64_t)(bq * bk * a->dv);
    }
    float *out = a->o + oo + i0 * a->ldo;
    for (int64_t r = 0; r < bq; r++) {
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        const float *o = O + r * a->dv;
        float *y = out + r * a->ldo;
        #pragma omp simd
        for (int64_t c = 0; c < a->dv; c++) y[c] = o[c] * inv;
        if (a->lse) y[a->dv] = l[r] > 0 ? m[r] + logf(l[r]) : -INFINITY;
    }
    return flops;
}

/* Runs the forward work items (batch entry, query block) of a set up `a` over threads. */
static int run_forward(attn *a, int64_t nbatch, uint64_t moved) {
    /* short sequences: blocks of 32 rows skip more of the causal half (T = 128: 17 -> 14 ms
     * per GPT step on one core); longer ones keep BQ */
    a->qblk = a->tq <= 256 ? 32 : BQ;
    a->nqb = (a->tq + a->qblk - 1) / a->qblk;
    int64_t items = nbatch * a->nqb;
    if (items == 0) { lz_stats_add(1, moved, 0); return 0; }

    /* threads only when there is enough work: ~tq * tk * (d + dv) multiply-adds */
    double work = (double)nbatch * (double)a->tq * (double)a->tk * (double)(a->d + a->dv);
    int threads = work >= 1e6 ? cpu_threads() : 1;
    if (threads > items) threads = (int)items;
    int64_t per = BK * BQ + BQ * a->dv + 4 * BQ;
    lz_buffer *scratch = lz_buffer_alloc((size_t)(threads * per) * 4);
    if (!scratch) return -1;
    /* The block products are small: OpenBLAS stays on the calling thread, also when this
     * region has one thread (else its OpenMP build opens a nested team; see linalg.c). */
    int blas_threads = openblas_get_num_threads();
    if (blas_threads > 1) openblas_set_num_threads(1);
    uint64_t flops = 0;
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(+:flops)
    for (int64_t t = 0; t < items; t++) {
        /* causal: the last query blocks see the most keys, so they go first */
        int64_t bi = t % nbatch, qb = a->nqb - 1 - t / nbatch;
        float *s = (float *)scratch->data + (int64_t)omp_get_thread_num() * per;
        flops += attn_block(a, bi, qb, s);
    }
    if (blas_threads > 1) openblas_set_num_threads(blas_threads);
    lz_buffer_release(scratch);
    lz_stats_add(1, moved, flops);
    return 0;
}

static int attention_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *q = in[0], *k = in[1], *v = in[2];
    attn a;
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
    a.q = lz_elem_ptr(q);
    a.k = lz_elem_ptr(k);
    a.v = lz_elem_ptr(v);
    a.o = lz_elem_ptr(out);
    a.scale = (float)p->f[0];
    a.causal = (int)p->i[0];
    a.lse = (int)p->i[1];
    uint64_t moved = 4 * (uint64_t)(lz_size(q) + lz_size(k) + lz_size(v) + lz_size(out));
    return run_forward(&a, nbatch, moved);
}

/* ---- packed self-attention: qkv [N, T, 3 H hd] (q, k, v on the last axis, heads contiguous
 * within each), contiguous float32; the forward writes [N, T, H hd] with the heads merged,
 * the backward writes d qkv [N, T, 3 H hd] from qkv and d out [N, T, H hd]. ---- */

/* Small products of the backward for a head size of 32 (two 16-float vectors a row), with
 * register tiles of 8 rows: OpenBLAS's small-matrix kernels ran these 32 x 128 x 32 shapes at
 * ~60 GFLOP/s on one core, with a call's overhead per product; these run at 75-115, and the
 * GPT's attention backward went from 32.7 to 30.4 ms a step on one core (~3 ms of it the
 * transposed copies of K and V that the first two products read). GCC's vector extension keeps
 * it portable (AVX-512 with -march=native here). Sizes: multiples of 8 (rows) and 16
 * (columns), which qkv_grad_item guarantees before taking this path. */
typedef float v16 __attribute__((vector_size(64)));
/* Without AVX-512 (OPT=-march=x86-64-v3) gcc warns that passing v16 by value has another ABI
 * there; these helpers are static, so no ABI is crossed. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* -std=c11 turns gcc's fp-contract off: without this a += x * b is a multiply and an add */
#define FMA_CONTRACT __attribute__((optimize("fp-contract=fast")))
static inline v16 vld(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void vst(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* C[i][j] = alpha sum_d A[i][d] Bt[d][j]: i < m, j < n, d < 32 (Bt: B transposed) */
FMA_CONTRACT static void nt32(int64_t m, int64_t n, float alpha, const float *A, int64_t lda,
                 const float *Bt, int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i += 8) {
        int64_t j = 0;
        for (; j + 32 <= n; j += 32) {   /* 8 x 32 tiles: 16 FMAs per 2 loads, 8 broadcasts */
            v16 c0[8] = {0}, c1[8] = {0};
            for (int d = 0; d < 32; d++) {
                v16 b0 = vld(Bt + d * ldb + j), b1 = vld(Bt + d * ldb + j + 16);
                for (int r = 0; r < 8; r++) {
                    float x = A[(i + r) * lda + d];
                    c0[r] += x * b0;
                    c1[r] += x * b1;
                }
            }
            for (int r = 0; r < 8; r++) {
                vst(C + (i + r) * ldc + j, c0[r] * alpha);
                vst(C + (i + r) * ldc + j + 16, c1[r] * alpha);
            }
        }
        for (; j < n; j += 16) {
            v16 acc[8] = {0};
            for (int d = 0; d < 32; d++) {
                v16 b = vld(Bt + d * ldb + j);
                for (int r = 0; r < 8; r++) acc[r] += A[(i + r) * lda + d] * b;
            }
            for (int r = 0; r < 8; r++) vst(C + (i + r) * ldc + j, acc[r] * alpha);
        }
    }
}

/* C[i][0..32) = sum_j A[i][j] B[j][0..32): i < m, j < k */
FMA_CONTRACT static void nn32(int64_t m, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i += 8) {
        v16 c0[8] = {0}, c1[8] = {0};
        for (int64_t j = 0; j < k; j++) {
            v16 b0 = vld(B + j * ldb), b1 = vld(B + j * ldb + 16);
            for (int r = 0; r < 8; r++) {
                float x = A[(i + r) * lda + j];
                c0[r] += x * b0;
                c1[r] += x * b1;
            }
        }
        for (int r = 0; r < 8; r++) {
            vst(C + (i + r) * ldc, c0[r]);
            vst(C + (i + r) * ldc + 16, c1[r]);
        }
    }
}

/* C[j][0..32) = (add ? C : 0) + sum_i A[i][j] X[i][0..32): j < n, i < k */
FMA_CONTRACT static void tn32(int64_t n, int64_t k, const float *A, int64_t lda, const float *X, int64_t ldx,
                 bool add, float *C, int64_t ldc) {
    for (int64_t j = 0; j < n; j += 8) {
        v16 c0[8], c1[8];
        for (int r = 0; r < 8; r++) {
            c0[r] = add ? vld(C + (j + r) * ldc) : (v16){0};
            c1[r] = add ? vld(C + (j + r) * ldc + 16) : (v16){0};
        }
        for (int64_t i = 0; i < k; i++) {
            v16 x0 = vld(X + i * ldx), x1 = vld(X + i * ldx + 16);
            const float *a = A + i * lda + j;
            for (int r = 0; r < 8; r++) {
                c0[r] += a[r] * x0;
                c1[r] += a[r] * x1;
            }
        }
        for (int r = 0; r < 8; r++) {
            vst(C + (j + r) * ldc, c0[r]);
            vst(C + (j + r) * ldc + 16, c1[r]);
        }
    }
}

/* Backward of one (batch entry, head): queries in blocks of BQB rows, each block against all
 * the keys it sees (whole rows: the softmax is exact, no log-sum-exp needed), recomputed:
 *     S = scale Q K^T,  P = softmax(S) (masked),  dP = dO V^T,
 *     dS = scale P (dP - rowsum(P dP)),  dQ = dS K,  dK += dS^T Q,  dV += P^T dO.
 * rowsum(P dP) equals rowsum(O dO), so the forward output is not needed. dK and dV
 * accumulate in the output itself; the item owns its head, so no races.
 * scratch: 2 * BQB * T + 64 * T floats (P and dP of a block, K and V transposed for the
 * register-tiled products). Returns the FLOPs done. */
#define BQB 32   /* measured 16..128 on T = 128, hd = 32: flat; 32 skips most of the causal half */
static uint64_t qkv_grad_item(const float *qkv, const float *dout, float *dqkv, int64_t t,
                              int64_t heads, int64_t hd, float scale, int causal, int64_t n,
                              int64_t h, float *scratch) {
    int64_t w = heads * hd, ld = 3 * w;
    const float *Q = qkv + n * t * ld + h * hd, *K = Q + w, *V = Q + 2 * w;
    const float *dO = dout + n * t * w + h * hd;
    float *dQ = dqkv + n * t * ld + h * hd, *dK = dQ + w, *dV = dQ + 2 * w;
    float *P = scratch, *dP = scratch + BQB * t, *Kt = dP + BQB * t, *Vt = Kt + 32 * t;
    bool small = hd == 32 && t % 16 == 0;   /* the register-tiled products apply */
    if (small)
        for (int64_t d = 0; d < 32; d++)   /* contiguous stores: strided ones stalled */
            for (int64_t j = 0; j < t; j++) {
                Kt[d * t + j] = K[j * ld + d];
                Vt[d * t + j] = V[j * ld + d];
            }
    uint64_t flops = 0;
    /* the last block first: it sees every key, so its products initialise dK and dV (beta 0)
     * and the others add to them */
    for (int64_t i0 = (t - 1) / BQB * BQB; i0 >= 0; i0 -= BQB) {
        int64_t bq = t - i0 < BQB ? t - i0 : BQB, kend = causal ? i0 + bq : t;
        float beta = i0 + bq == t ? 0.0f : 1.0f;
        /* P = softmax(scale Q K^T) over the keys each row sees; the rest is zero */
        if (small) {
            nt32(bq, kend, scale, Q + i0 * ld, ld, Kt, t, P, kend);
            nt32(bq, kend, 1.0f, dO + i0 * w, w, Vt, t, dP, kend);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)kend, (int)hd,
                        scale, Q + i0 * ld, (int)ld, K, (int)ld, 0.0f, P, (int)kend);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)kend, (int)hd,
                        1.0f, dO + i0 * w, (int)w, V, (int)ld, 0.0f, dP, (int)kend);
        }
        for (int64_t r = 0; r < bq; r++) {
            float *p = P + r * kend, *dp = dP + r * kend;
            int64_t lim = causal ? i0 + r + 1 : kend;
            float mx = -INFINITY, sum = 0, dot = 0;
            #pragma omp simd reduction(max:mx)
            for (int64_t j = 0; j < lim; j++) mx = p[j] > mx ? p[j] : mx;
            /* exp, its sum and sum(e dP) in one pass: rowsum(P dP) = sum(e dP) / sum(e) */
            #pragma omp simd reduction(+:sum, dot)
            for (int64_t j = 0; j < lim; j++) {
                float e = lz_expf(p[j] - mx);
                p[j] = e;
                sum += e;
                dot += e * dp[j];
            }
            float inv = 1.0f / sum;
            dot *= inv;
            #pragma omp simd
            for (int64_t j = 0; j < lim; j++) {
                float pj = p[j] * inv;
                p[j] = pj;
                dp[j] = scale * pj * (dp[j] - dot);
            }
            if (lim < kend) {
                memset(p + lim, 0, (size_t)(kend - lim) * 4);
                memset(dp + lim, 0, (size_t)(kend - lim) * 4);
            }
        }
        /* dV += P^T dO, dQ = dS K, dK += dS^T Q */
        if (small) {
            tn32(kend, bq, P, kend, dO + i0 * w, w, beta != 0, dV, ld);
            nn32(bq, kend, dP, kend, K, ld, dQ + i0 * ld, ld);
            tn32(kend, bq, dP, kend, Q + i0 * ld, ld, beta != 0, dK, ld);
            flops += 10 * (uint64_t)(bq * kend * hd);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kend, (int)hd, (int)bq, 1.0f,
                    P, (int)kend, dO + i0 * w, (int)w, beta, dV, (int)ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bq, (int)hd, (int)kend, 1.0f,
                    dP, (int)kend, K, (int)ld, 0.0f, dQ + i0 * ld, (int)ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kend, (int)hd, (int)bq, 1.0f,
                    dP, (int)kend, Q + i0 * ld, (int)ld, beta, dK, (int)ld);
        flops += 10 * (uint64_t)(bq * kend * hd);
    }
    return flops;
}

static int qkv_grad(lz_array *out, const lz_array *qkv, const lz_array *dout, const lz_params *p) {
    int nd = out->ndim;
    int64_t t = out->shape[nd - 2], heads = p->i[2], hd = out->shape[nd - 1] / (3 * heads);
    int64_t nbatch = lz_shape_size(nd - 2, out->shape), items = nbatch * heads;
    uint64_t moved = 4 * (uint64_t)(lz_size(qkv) + lz_size(dout) + lz_size(out));
    if (items == 0 || t == 0 || hd == 0) { lz_stats_add(1, moved, 0); return 0; }
    const float *pq = lz_elem_ptr(qkv), *pd = lz_elem_ptr(dout);
    float *po = lz_elem_ptr(out);
    double work = (double)items * (double)t * (double)t * (double)hd;
    int threads = work >= 1e6 ? cpu_threads() : 1;
    if (threads > items) threads = (int)items;
    int64_t per = 2 * BQB * t + 2 * 32 * t;
    lz_buffer *scratch = lz_buffer_alloc((size_t)(threads * per) * 4);
    if (!scratch) return -1;
    int blas_threads = openblas_get_num_threads();
    if (blas_threads > 1) openblas_set_num_threads(1);
    uint64_t flops = 0;
    float scale = (float)p->f[0];
    int causal = (int)p->i[0];
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(+:flops) if (threads > 1)
    for (int64_t it = 0; it < items; it++) {
        float *s = (float *)scratch->data + (int64_t)omp_get_thread_num() * per;
        flops += qkv_grad_item(pq, pd, po, t, heads, hd, scale, causal, it / heads, it % heads, s);
    }
    if (blas_threads > 1) openblas_set_num_threads(blas_threads);
    lz_buffer_release(scratch);
    lz_stats_add(1, moved, flops);
    return 0;
}

static int attention_qkv_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *qkv = in[0];
    int nd = out->ndim;
    int64_t heads = p->i[2], w = out->shape[nd - 1], hd = w / heads, t = out->shape[nd - 2];
    attn a;
    memset(&a, 0, sizeof a);
    a.nb = 2;   /* (batch entry, head) */
    a.bshape[0] = lz_shape_size(nd - 2, out->shape);
    a.bshape[1] = heads;
    a.qs[0] = a.ks[0] = a.vs[0] = t * 3 * w;
    a.qs[1] = a.ks[1] = a.vs[1] = hd;
    a.os[0] = t * w;
    a.os[1] = hd;
    a.tq = a.tk = t;
    a.d = a.dv = hd;
    a.ldq = a.ldk = a.ldv = 3 * w;
    a.ldo = w;
    a.q = lz_elem_ptr(qkv);
    a.k = a.q + w;
    a.v = a.q + 2 * w;
    a.o = lz_elem_ptr(out);
    a.scale = (float)p->f[0];
    a.causal = (int)p->i[0];
    uint64_t moved = 4 * (uint64_t)(lz_size(qkv) + lz_size(out));
    if (hd == 0) { lz_stats_add(1, moved, 0); return 0; }
    return run_forward(&a, a.bshape[0] * heads, moved);
}

static int attention_qkv_grad_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return qkv_grad(out, in[0], in[1], p);
}

void cpu_register_attention(void) {
    lz_prims[LZ_P_ATTENTION].cpu = attention_kernel;
    lz_prims[LZ_P_ATTENTION_QKV].cpu = attention_qkv_kernel;
    lz_prims[LZ_P_ATTENTION_QKV_GRAD].cpu = attention_qkv_grad_kernel;
}
