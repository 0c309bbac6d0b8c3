/* Fused scaled dot-product attention on the GPU (flash-attention style), float32.
 *
 * Forward: one block per (batch entry, tile of BQ query rows). The Q tile sits in shared
 * memory; the key/value tiles (BK rows) are staged there one after the other, and each
 * thread keeps, for its rows, the running max m, the running sum l and its slice of the
 * output O in registers (online softmax in float32):
 *     S = scale Q K^T (masked pairs skipped), m' = max(m, rowmax S), P = exp(S - m'),
 *     l = l exp(m - m') + rowsum P,  O = O exp(m - m') + P V,
 * and writes O / l (and m + log l as the log-sum-exp column). No Tq x Tk matrix exists;
 * under the causal mask the key tiles past the tile's last row are never visited.
 *
 * Backward (dq, dk, dv from q, k, v, dout; the forward's output is not needed), two
 * deterministic kernels, no atomics:
 *   1. per query tile: a first pass over the keys gives each row's log-sum-exp L and
 *      delta = rowsum(P dP) (dP = dO V^T, accumulated online like O); a second pass
 *      recomputes P = exp(S - L), dS = scale P (dP - delta) and dQ = dS K. L and delta go
 *      to the `stats` scratch;
 *   2. per key tile: over the query tiles that see it, recomputes P^T and dS^T from the
 *      stats and accumulates dV = P^T dO and dK = dS^T Q in registers.
 *
 * Thread layout (all kernels): 128 threads as 16 row groups x 8 lanes (ty = tid / 8,
 * tx = tid % 8). A thread owns rows ty + 16 i of its tile and, in a score tile, columns
 * tx + 8 j; in an accumulator (O, dQ, dK, dV), columns tx + 8 c of the head. The 8 lanes of
 * a row group are adjacent in one warp: row reductions are three xor shuffles.
 *
 * Template parameters: DM, the head size bucket (16, 32, 64, 128: tiles are zero-filled up
 * to it, so the accumulators are fixed-size register arrays) and the tile sizes. */
#include <cuda_runtime.h>
#include <stdint.h>
#include "attention.h"

namespace {

constexpr int NT = 128, TX = 8, TY = NT / TX;
constexpr int64_t MAX_GRID = 1 << 20;   /* blocks; a grid-stride loop covers the rest */

/* Offset of batch entry bi under the strides st (row-major index over a.bshape). */
__device__ __forceinline__ int64_t boff(const cuk_attn_args &a, int64_t bi, const int64_t *st) {
    int64_t off = 0;
    for (int d = a.nb - 1; d >= 0; d--) {
        int64_t n = a.bshape[d];
        off += (bi % n) * st[d];
        bi /= n;
    }
    return off;
}

/* Max and sum over the 8 lanes of a row group. NaN never enters a max (it is only
 * compared with `>`), as on the CPU: a NaN score shows up through exp instead. */
__device__ __forceinline__ float grp_max(float x) {
#pragma unroll
    for (int o = 1; o < TX; o <<= 1) {
        float y = __shfl_xor_sync(0xffffffffu, x, o);
        x = y > x ? y : x;
    }
    return x;
}
__device__ __forceinline__ float grp_sum(float x) {
#pragma unroll
    for (int o = 1; o < TX; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* rows x DM tile from global (row r at src + (r0 + r) * ld, n valid columns, nr valid rows)
 * into shared memory with row pitch `pitch`, zero-filled up to DM columns and `rows` rows. */
template <int DM>
__device__ __forceinline__ void load_tile(float *dst, int pitch, int rows, const float *src,
                                          int64_t base, int64_t r0, int64_t ld, int nr, int n) {
    for (int e = threadIdx.x; e < rows * DM; e += NT) {
        int r = e / DM, c = e % DM;
        dst[r * pitch + c] = r < nr && c < n ? src[base + (r0 + r) * ld + c] : 0.0f;
    }
}

/* acc[i][j] += sum_{d < n4} A[(ty + TY i) * PD + d] B[(tx + TX j) * PD + d], n4 a multiple
 * of 4 (the tiles are zero past the real head size). */
template <int RR, int CC, int PD>
__device__ __forceinline__ void tile_nt(float (&acc)[RR][CC], const float *A, const float *B,
                                        int n4, int ty, int tx) {
    for (int d0 = 0; d0 < n4; d0 += 4) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float av[RR], bv[CC];
#pragma unroll
            for (int i = 0; i < RR; i++) av[i] = A[(ty + TY * i) * PD + d0 + u];
#pragma unroll
            for (int j = 0; j < CC; j++) bv[j] = B[(tx + TX * j) * PD + d0 + u];
#pragma unroll
            for (int i = 0; i < RR; i++)
#pragma unroll
                for (int j = 0; j < CC; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
    }
}

/* acc[i][c] += sum_{kk < K} P[(ty + TY i) * PP + kk] X[kk * PX + tx + TX c] */
template <int RR, int DC, int K, int PP, int PX>
__device__ __forceinline__ void tile_nn(float (&acc)[RR][DC], const float *P, const float *X,
                                        int ty, int tx) {
#pragma unroll 4
    for (int kk = 0; kk < K; kk++) {
        float pv[RR], xv[DC];
#pragma unroll
        for (int i = 0; i < RR; i++) pv[i] = P[(ty + TY * i) * PP + kk];
#pragma unroll
        for (int c = 0; c < DC; c++) xv[c] = X[kk * PX + tx + TX * c];
#pragma unroll
        for (int i = 0; i < RR; i++)
#pragma unroll
            for (int c = 0; c < DC; c++) acc[i][c] = fmaf(pv[i], xv[c], acc[i][c]);
    }
}

/* One past the last key a query tile [i0, i0 + bq) sees. */
__device__ __forceinline__ int64_t key_end(const cuk_attn_args &a, int64_t i0, int bq) {
    int64_t kend = a.tk;
    if (a.causal) {
        int64_t lim = i0 + bq + (a.tk - a.tq);
        kend = lim < 0 ? 0 : lim < kend ? lim : kend;
    }
    return kend;
}

/* ---------------------------------- forward ---------------------------------- */

template <int DM, int BQ, int BK>
constexpr size_t fwd_smem() {
    return sizeof(float) * (size_t)(BQ * (DM + 1) + BK * (DM + 1) + BK * DM + BQ * (BK + 8));
}

template <int DM, int BQ, int BK>
__global__ void __launch_bounds__(NT) fwd_kernel(const __grid_constant__ cuk_attn_args a,
                                                 int64_t nbatch, int64_t nqb) {
    constexpr int RR = BQ / TY, CC = BK / TX, DC = DM / TX, PD = DM + 1, PP = BK + 8;
    extern __shared__ float sm[];
    float *Qs = sm, *Ks = Qs + BQ * PD, *Vs = Ks + BK * PD, *Ps = Vs + BK * DM;
    const int tid = threadIdx.x, ty = tid / TX, tx = tid % TX;
    const int D = (int)a.d, Dv = (int)a.dv, D4 = (D + 3) & ~3;
    const int64_t off = a.tk - a.tq, items = nbatch * nqb;
    for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
        /* causal: the last query tiles see the most keys, so they go first */
        const int64_t bi = it % nbatch, i0 = (nqb - 1 - it / nbatch) * BQ;
        const int bq = (int)(a.tq - i0 < BQ ? a.tq - i0 : BQ);
        const int64_t qo = boff(a, bi, a.qs), ko = boff(a, bi, a.ks), vo = boff(a, bi, a.vs);
        const int64_t oo = boff(a, bi, a.os), kend = key_end(a, i0, bq);
        __syncthreads();   /* the previous item is done with the tiles */
        load_tile<DM>(Qs, PD, BQ, a.q, qo, i0, a.ldq, bq, D);
        float O[RR][DC], m[RR], l[RR];
#pragma unroll
        for (int i = 0; i < RR; i++) {
            m[i] = -INFINITY;
            l[i] = 0.0f;
#pragma unroll
            for (int c = 0; c < DC; c++) O[i][c] = 0.0f;
        }
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {
            const int bk = (int)(kend - j0 < BK ? kend - j0 : BK);
            __syncthreads();   /* the last tile's P V is done */
            load_tile<DM>(Ks, PD, BK, a.k, ko, j0, a.ldk, bk, D);
            load_tile<DM>(Vs, DM, BK, a.v, vo, j0, a.ldv, bk, Dv);
            __syncthreads();
            float s[RR][CC];
#pragma unroll
            for (int i = 0; i < RR; i++)
#pragma unroll
                for (int j = 0; j < CC; j++) s[i][j] = 0.0f;
            tile_nt<RR, CC, PD>(s, Qs, Ks, D4, ty, tx);
#pragma unroll
            for (int i = 0; i < RR; i++) {
                const int64_t row = i0 + ty + TY * i;
                float mx = m[i];
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    const int64_t col = j0 + tx + TX * j;
                    bool ok = col < j0 + bk && (!a.causal || col <= row + off);
                    s[i][j] = ok ? s[i][j] * a.scale : -INFINITY;   /* -inf: skipped */
                    mx = s[i][j] > mx ? s[i][j] : mx;
                }
                mx = grp_max(mx);
                /* a row that has seen no key yet keeps m = -inf, alpha 1, P 0 (no NaN) */
                const float alpha = m[i] == mx ? 1.0f : expf(m[i] - mx);
                m[i] = mx;
#pragma unroll
                for (int c = 0; c < DC; c++) O[i][c] *= alpha;
                float ls = 0.0f;
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    float p = mx == -INFINITY ? 0.0f : expf(s[i][j] - mx);
                    Ps[(ty + TY * i) * PP + tx + TX * j] = p;
                    ls += p;
                }
                l[i] = l[i] * alpha + ls;   /* this lane's share; summed at the end */
            }
            __syncthreads();
            tile_nn<RR, DC, BK, PP, DM>(O, Ps, Vs, ty, tx);
        }
#pragma unroll
        for (int i = 0; i < RR; i++) {
            const float lt = grp_sum(l[i]);
            const int r = ty + TY * i;
            if (r >= bq) continue;
            const float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
            float *y = a.o + oo + (i0 + r) * a.ldo;
#pragma unroll
            for (int c = 0; c < DC; c++)
                if (tx + TX * c < Dv) y[tx + TX * c] = O[i][c] * inv;
            if (a.lse && tx == 0) y[Dv] = lt > 0.0f ? m[i] + logf(lt) : -INFINITY;
        }
    }
}

/* --------------------------- backward 1: dq (and the stats) --------------------------- */

template <int DM, int BQ, int BK>
constexpr size_t dq_smem() {
    return sizeof(float) * (size_t)(2 * BQ * (DM + 1) + 2 * BK * (DM + 1) + BQ * (BK + 8));
}

template <int DM, int BQ, int BK>
__global__ void __launch_bounds__(NT) dq_kernel(const __grid_constant__ cuk_attn_args a,
                                                int64_t nbatch, int64_t nqb, float *stats) {
    constexpr int RR = BQ / TY, CC = BK / TX, DC = DM / TX, PD = DM + 1, PP = BK + 8;
    extern __shared__ float sm[];
    float *Qs = sm, *Gs = Qs + BQ * PD, *Ks = Gs + BQ * PD, *Vs = Ks + BK * PD;
    float *Ss = Vs + BK * PD;
    const int tid = threadIdx.x, ty = tid / TX, tx = tid % TX;
    const int D = (int)a.d, Dv = (int)a.dv, D4 = (D + 3) & ~3, Dv4 = (Dv + 3) & ~3;
    const int64_t off = a.tk - a.tq, items = nbatch * nqb;
    for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
        const int64_t bi = it % nbatch, i0 = (nqb - 1 - it / nbatch) * BQ;
        const int bq = (int)(a.tq - i0 < BQ ? a.tq - i0 : BQ);
        const int64_t qo = boff(a, bi, a.qs), ko = boff(a, bi, a.ks), vo = boff(a, bi, a.vs);
        const int64_t go = boff(a, bi, a.dos), dqo = boff(a, bi, a.dqs);
        const int64_t kend = key_end(a, i0, bq);
        __syncthreads();
        load_tile<DM>(Qs, PD, BQ, a.q, qo, i0, a.ldq, bq, D);
        load_tile<DM>(Gs, PD, BQ, a.dout, go, i0, a.lddo, bq, Dv);
        float m[RR], l[RR], acc[RR];
#pragma unroll
        for (int i = 0; i < RR; i++) {
            m[i] = -INFINITY;
            l[i] = acc[i] = 0.0f;
        }
        /* pass 1: L = m + log l and delta = sum_j P_ij dP_ij, online */
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {
            const int bk = (int)(kend - j0 < BK ? kend - j0 : BK);
            __syncthreads();
            load_tile<DM>(Ks, PD, BK, a.k, ko, j0, a.ldk, bk, D);
            load_tile<DM>(Vs, PD, BK, a.v, vo, j0, a.ldv, bk, Dv);
            __syncthreads();
            float s[RR][CC], dp[RR][CC];
#pragma unroll
            for (int i = 0; i < RR; i++)
#pragma unroll
                for (int j = 0; j < CC; j++) s[i][j] = dp[i][j] = 0.0f;
            tile_nt<RR, CC, PD>(s, Qs, Ks, D4, ty, tx);
            tile_nt<RR, CC, PD>(dp, Gs, Vs, Dv4, ty, tx);
#pragma unroll
            for (int i = 0; i < RR; i++) {
                const int64_t row = i0 + ty + TY * i;
                float mx = m[i];
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    const int64_t col = j0 + tx + TX * j;
                    bool ok = col < j0 + bk && (!a.causal || col <= row + off);
                    s[i][j] = ok ? s[i][j] * a.scale : -INFINITY;
                    mx = s[i][j] > mx ? s[i][j] : mx;
                }
                mx = grp_max(mx);
                const float alpha = m[i] == mx ? 1.0f : expf(m[i] - mx);
                m[i] = mx;
                float ls = 0.0f, as = 0.0f;
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    float p = mx == -INFINITY ? 0.0f : expf(s[i][j] - mx);
                    ls += p;
                    as = fmaf(p, dp[i][j], as);
                }
                l[i] = l[i] * alpha + ls;
                acc[i] = acc[i] * alpha + as;
            }
        }
        float L[RR], dl[RR];
#pragma unroll
        for (int i = 0; i < RR; i++) {
            const float lt = grp_sum(l[i]), at = grp_sum(acc[i]);
            L[i] = lt > 0.0f ? m[i] + logf(lt) : -INFINITY;
            dl[i] = lt > 0.0f ? at / lt : 0.0f;
        }
        /* pass 2: dQ = dS K with dS = scale P (dP - delta), P = exp(S - L) */
        float G[RR][DC];
#pragma unroll
        for (int i = 0; i < RR; i++)
#pragma unroll
            for (int c = 0; c < DC; c++) G[i][c] = 0.0f;
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {
            const int bk = (int)(kend - j0 < BK ? kend - j0 : BK);
            __syncthreads();
            load_tile<DM>(Ks, PD, BK, a.k, ko, j0, a.ldk, bk, D);
            load_tile<DM>(Vs, PD, BK, a.v, vo, j0, a.ldv, bk, Dv);
            __syncthreads();
            float s[RR][CC], dp[RR][CC];
#pragma unroll
            for (int i = 0; i < RR; i++)
#pragma unroll
                for (int j = 0; j < CC; j++) s[i][j] = dp[i][j] = 0.0f;
            tile_nt<RR, CC, PD>(s, Qs, Ks, D4, ty, tx);
            tile_nt<RR, CC, PD>(dp, Gs, Vs, Dv4, ty, tx);
#pragma unroll
            for (int i = 0; i < RR; i++) {
                const int64_t row = i0 + ty + TY * i;
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    const int64_t col = j0 + tx + TX * j;
                    bool ok = col < j0 + bk && (!a.causal || col <= row + off) &&
                              L[i] != -INFINITY;
                    float p = ok ? expf(s[i][j] * a.scale - L[i]) : 0.0f;
                    Ss[(ty + TY * i) * PP + tx + TX * j] = a.scale * p * (dp[i][j] - dl[i]);
                }
            }
            __syncthreads();
            tile_nn<RR, DC, BK, PP, PD>(G, Ss, Ks, ty, tx);
        }
        const int64_t n = a.tq * nbatch;
#pragma unroll
        for (int i = 0; i < RR; i++) {
            const int r = ty + TY * i;
            if (r >= bq) continue;
            float *y = a.dq + dqo + (i0 + r) * a.lddq;
#pragma unroll
            for (int c = 0; c < DC; c++)
                if (tx + TX * c < D) y[tx + TX * c] = G[i][c];
            if (tx == 0) {
                stats[bi * a.tq + i0 + r] = L[i];
                stats[n + bi * a.tq + i0 + r] = dl[i];
            }
        }
    }
}

/* ----------------------------- backward 2: dk and dv ----------------------------- */

template <int DM, int BK, int BQ>
constexpr size_t dkv_smem() {
    return sizeof(float) *
           (size_t)(2 * BK * (DM + 1) + 2 * BQ * (DM + 1) + 2 * BK * (BQ + 8) + 2 * BQ);
}

/* BK keys per block (the rows here), the queries in tiles of BQ (the columns). */
template <int DM, int BK, int BQ>
__global__ void __launch_bounds__(NT) dkv_kernel(const __grid_constant__ cuk_attn_args a,
                                                 int64_t nbatch, int64_t nkb,
                                                 const float *stats) {
    constexpr int RR = BK / TY, CC = BQ / TX, DC = DM / TX, PD = DM + 1, PP = BQ + 8;
    extern __shared__ float sm[];
    float *Ks = sm, *Vs = Ks + BK * PD, *Qs = Vs + BK * PD, *Gs = Qs + BQ * PD;
    float *Pt = Gs + BQ * PD, *St = Pt + BK * PP, *Ls = St + BK * PP, *Dl = Ls + BQ;
    const int tid = threadIdx.x, ty = tid / TX, tx = tid % TX;
    const int D = (int)a.d, Dv = (int)a.dv, D4 = (D + 3) & ~3, Dv4 = (Dv + 3) & ~3;
    const int64_t off = a.tk - a.tq, items = nbatch * nkb, n = a.tq * nbatch;
    for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
        /* causal: the first key tiles are seen by the most queries, so they go first */
        const int64_t bi = it % nbatch, j0 = (it / nbatch) * BK;
        const int bk = (int)(a.tk - j0 < BK ? a.tk - j0 : BK);
        const int64_t qo = boff(a, bi, a.qs), ko = boff(a, bi, a.ks), vo = boff(a, bi, a.vs);
        const int64_t go = boff(a, bi, a.dos), dko = boff(a, bi, a.dks);
        const int64_t dvo = boff(a, bi, a.dvs);
        __syncthreads();
        load_tile<DM>(Ks, PD, BK, a.k, ko, j0, a.ldk, bk, D);
        load_tile<DM>(Vs, PD, BK, a.v, vo, j0, a.ldv, bk, Dv);
        float dK[RR][DC], dV[RR][DC];
#pragma unroll
        for (int i = 0; i < RR; i++)
#pragma unroll
            for (int c = 0; c < DC; c++) dK[i][c] = dV[i][c] = 0.0f;
        /* the first query that sees key j0 is j0 - off */
        int64_t qstart = a.causal ? j0 - off : 0;
        qstart = qstart < 0 ? 0 : qstart / BQ * BQ;
        for (int64_t i0 = qstart; i0 < a.tq; i0 += BQ) {
            const int bq = (int)(a.tq - i0 < BQ ? a.tq - i0 : BQ);
            __syncthreads();
            load_tile<DM>(Qs, PD, BQ, a.q, qo, i0, a.ldq, bq, D);
            load_tile<DM>(Gs, PD, BQ, a.dout, go, i0, a.lddo, bq, Dv);
            if (tid < BQ) {
                Ls[tid] = tid < bq ? stats[bi * a.tq + i0 + tid] : -INFINITY;
                Dl[tid] = tid < bq ? stats[n + bi * a.tq + i0 + tid] : 0.0f;
            }
            __syncthreads();
            float s[RR][CC], dp[RR][CC];
#pragma unroll
            for (int i = 0; i < RR; i++)
#pragma unroll
                for (int j = 0; j < CC; j++) s[i][j] = dp[i][j] = 0.0f;
            tile_nt<RR, CC, PD>(s, Ks, Qs, D4, ty, tx);
            tile_nt<RR, CC, PD>(dp, Vs, Gs, Dv4, ty, tx);
#pragma unroll
            for (int i = 0; i < RR; i++) {
                const int64_t key = j0 + ty + TY * i;
#pragma unroll
                for (int j = 0; j < CC; j++) {
                    const int qc = tx + TX * j;
                    const float Lq = Ls[qc];
                    bool ok = key < a.tk && qc < bq && (!a.causal || key <= i0 + qc + off) &&
                              Lq != -INFINITY;
                    float p = ok ? expf(s[i][j] * a.scale - Lq) : 0.0f;
                    Pt[(ty + TY * i) * PP + qc] = p;
                    St[(ty + TY * i) * PP + qc] = a.scale * p * (dp[i][j] - Dl[qc]);
                }
            }
            __syncthreads();
            tile_nn<RR, DC, BQ, PP, PD>(dV, Pt, Gs, ty, tx);
            tile_nn<RR, DC, BQ, PP, PD>(dK, St, Qs, ty, tx);
        }
#pragma unroll
        for (int i = 0; i < RR; i++) {
            const int r = ty + TY * i;
            if (r >= bk) continue;
            float *yk = a.dk + dko + (j0 + r) * a.lddk, *yv = a.dvv + dvo + (j0 + r) * a.lddv;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                if (tx + TX * c < D) yk[tx + TX * c] = dK[i][c];
                if (tx + TX * c < Dv) yv[tx + TX * c] = dV[i][c];
            }
        }
    }
}

/* ---------------------------------- launchers ---------------------------------- */

/* Opts a kernel into `smem` bytes of dynamic shared memory (once per instantiation; a
 * repeated call is harmless). 0 or the error, cleared from the last-error slot. */
template <typename K>
int allow_smem(K kernel, size_t smem, bool *done) {
    if (*done || smem <= 48 * 1024) return 0;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return (int)e;
    }
    *done = true;
    return 0;
}

unsigned grid_of(int64_t items) { return (unsigned)(items < MAX_GRID ? items : MAX_GRID); }

template <int DM, int BQ, int BK>
int launch_fwd(const cuk_attn_args *a, int64_t nbatch, cudaStream_t st) {
    static bool done = false;
    constexpr size_t smem = fwd_smem<DM, BQ, BK>();
    int e = allow_smem(fwd_kernel<DM, BQ, BK>, smem, &done);
    if (e) return e;
    int64_t nqb = (a->tq + BQ - 1) / BQ, items = nbatch * nqb;
    if (items <= 0) return 0;
    fwd_kernel<DM, BQ, BK><<<grid_of(items), NT, smem, st>>>(*a, nbatch, nqb);
    return 0;
}

template <int DM, int BQ, int BK, int BKB, int BQB>
int launch_bwd(const cuk_attn_args *a, int64_t nbatch, float *stats, cudaStream_t st) {
    static bool done1 = false, done2 = false;
    constexpr size_t s1 = dq_smem<DM, BQ, BK>(), s2 = dkv_smem<DM, BKB, BQB>();
    int e = allow_smem(dq_kernel<DM, BQ, BK>, s1, &done1);
    if (!e) e = allow_smem(dkv_kernel<DM, BKB, BQB>, s2, &done2);
    if (e) return e;
    int64_t nqb = (a->tq + BQ - 1) / BQ, items = nbatch * nqb;
    if (items > 0) dq_kernel<DM, BQ, BK><<<grid_of(items), NT, s1, st>>>(*a, nbatch, nqb, stats);
    int64_t nkb = (a->tk + BKB - 1) / BKB;
    items = nbatch * nkb;
    if (items > 0)
        dkv_kernel<DM, BKB, BQB><<<grid_of(items), NT, s2, st>>>(*a, nbatch, nkb, stats);
    return 0;
}

int bucket(const cuk_attn_args *a) {
    int64_t d = a->d > a->dv ? a->d : a->dv;
    return d <= 16 ? 16 : d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 0;
}

}  // namespace

extern "C" int cuk_attention_fwd(const cuk_attn_args *a, int64_t nbatch, void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    switch (bucket(a)) {
    case 16: return launch_fwd<16, 64, 64>(a, nbatch, st);
    case 32: return launch_fwd<32, 64, 64>(a, nbatch, st);
    case 64: return launch_fwd<64, 64, 64>(a, nbatch, st);
    case 128: return launch_fwd<128, 64, 32>(a, nbatch, st);
    default: return (int)cudaErrorInvalidValue;
    }
}

extern "C" int cuk_attention_bwd(const cuk_attn_args *a, int64_t nbatch, float *stats,
                                 void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    switch (bucket(a)) {
    case 16: return launch_bwd<16, 64, 64, 64, 64>(a, nbatch, stats, st);
    case 32: return launch_bwd<32, 64, 64, 64, 64>(a, nbatch, stats, st);
    case 64: return launch_bwd<64, 64, 64, 32, 64>(a, nbatch, stats, st);
    case 128: return launch_bwd<128, 64, 32, 32, 64>(a, nbatch, stats, st);
    default: return (int)cudaErrorInvalidValue;
    }
}
