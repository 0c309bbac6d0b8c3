/* 3x3 stride-1 "same" convolutions (padding 1, no dilation, one group) by Winograd's minimal
 * filtering F(2x2, 3x3): each 2x2 block of the output (a tile) comes from the tile's 4x4
 * input patch d and the 3x3 filter g as
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * so the 9 multiply-adds per output and input channel of the direct form become 16 per 4
 * outputs: 2.25x fewer. Over many channels the products are 16 GEMMs, one per position xi
 * of the 4x4 transformed tile:  M_xi [O, tiles] = U_xi [O, C] @ V_xi [C, tiles].
 * Images go in blocks (their transformed tiles V and products M stay in L2) to OpenMP
 * threads, each with single-threaded GEMMs, as conv.c's im2col path does.
 *
 * Used for FORWARD, for INPUT_GRAD, which is the same convolution of dy with the filters
 * flipped and their in/out channels swapped (`flip`). Rounding differs from the im2col path
 * by a few ulps of the tile's magnitudes (the transforms add and subtract 4 to 16 terms).
 *
 * The weight gradient is the transpose: with U = G g G^T, dU = sum over tiles of
 * (A dY A^T) .* (B^T d B), 16 GEMMs [O, tiles] @ [tiles, C], then dg = G^T dU G.
 *
 * Measured on the MNIST CNN's 128x32x14x14 -> 64 layer, 1 thread, CPU time (im2col + GEMM
 * before): forward 11.6 -> 6.0 ms, input gradient 11.6 -> 6.3 ms, weight gradient 12.3 ->
 * 7.4 ms; the GEMMs are now about half of it, the transforms the rest. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define TILES_TARGET 200   /* tiles per block: V and M of a block stay in L2 */

/* U [16][O][C] = G g G^T of every filter; g(oo, cc) is the 3x3 filter from input channel cc
 * to output channel oo (flip: W[cc][oo] rotated by 180 degrees). */
static void filter_transform(const float *wt, int flip, int64_t o, int64_t c, float *u) {
    for (int64_t oo = 0; oo < o; oo++)
        for (int64_t cc = 0; cc < c; cc++) {
            float g[3][3], t[4][3];
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++)
                    g[r][s] = flip ? wt[((cc * o + oo) * 3 + 2 - r) * 3 + 2 - s]
                                   : wt[((oo * c + cc) * 3 + r) * 3 + s];
            for (int s = 0; s < 3; s++) {   /* t = G g */
                t[0][s] = g[0][s];
                t[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
                t[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
                t[3][s] = g[2][s];
            }
            for (int r = 0; r < 4; r++) {   /* t G^T */
                float v[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]),
                              0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
                for (int s = 0; s < 4; s++) u[((r * 4 + s) * o + oo) * c + cc] = v[s];
            }
        }
}

/* The tiles of one input plane, zero-padded into p [(2 th + 2) x (2 tw + 2)], transformed
 * into v[xi * ld + k] for its tiles k = 0 .. th*tw-1 (row-major over the tiles). */
#ifdef __AVX512F__
static void input_transform_v(const float *p, int64_t pw, int64_t th, int64_t tw, float *v,
                              int64_t ld);
#endif

static void input_transform(const float *src, int64_t h, int64_t w, int64_t sh, int64_t sw,
                            int64_t th, int64_t tw, float *p, float *v, int64_t ld, bool vec) {
    int64_t pw = 2 * tw + 2, ph = 2 * th + 2;
    memset(p, 0, (size_t)(ph * pw) * 4);
    for (int64_t r = 0; r < h; r++) {
        float *row = p + (r + 1) * pw + 1;
        if (sw == 1) memcpy(row, src + r * sh, (size_t)w * 4);
        else for (int64_t s = 0; s < w; s++) row[s] = src[r * sh + s * sw];
    }
#ifdef __AVX512F__
    if (vec) { input_transform_v(p, pw, th, tw, v, ld); return; }
#else
    (void)vec;
#endif
    for (int64_t a = 0; a < th; a++)
        for (int64_t b = 0; b < tw; b++) {
            const float *d = p + 2 * a * pw + 2 * b;
            float t[4][4];
            for (int s = 0; s < 4; s++) {   /* t = B^T d */
                float d0 = d[s], d1 = d[pw + s], d2 = d[2 * pw + s], d3 = d[3 * pw + s];
                t[0][s] = d0 - d2;
                t[1][s] = d1 + d2;
                t[2][s] = d2 - d1;
                t[3][s] = d1 - d3;
            }
            float *out = v + a * tw + b;
            for (int r = 0; r < 4; r++) {   /* t B */
                out[(r * 4 + 0) * ld] = t[r][0] - t[r][2];
                out[(r * 4 + 1) * ld] = t[r][1] + t[r][2];
                out[(r * 4 + 2) * ld] = t[r][2] - t[r][1];
                out[(r * 4 + 3) * ld] = t[r][1] - t[r][3];
            }
        }
}

/* One output plane [h, w] from its tiles' products m[xi * ld + k]: Y = A^T M A. */
static void output_transform(const float *m, int64_t ld, int64_t h, int64_t w, int64_t th,
                             int64_t tw, float *y) {
    for (int64_t a = 0; a < th; a++)
        for (int64_t b = 0; b < tw; b++) {
            const float *q = m + a * tw + b;
            float t[2][4];
            for (int s = 0; s < 4; s++) {   /* A^T M */
                float m0 = q[s * ld], m1 = q[(4 + s) * ld], m2 = q[(8 + s) * ld],
                      m3 = q[(12 + s) * ld];
                t[0][s] = m0 + m1 + m2;
                t[1][s] = m1 - m2 - m3;
            }
            for (int r = 0; r < 2; r++) {   /* (A^T M) A */
                int64_t yr = 2 * a + r;
                if (yr >= h) break;
                float y0 = t[r][0] + t[r][1] + t[r][2], y1 = t[r][1] - t[r][2] - t[r][3];
                y[yr * w + 2 * b] = y0;
                if (2 * b + 1 < w) y[yr * w + 2 * b + 1] = y1;
            }
        }
}

/* The tiles of one output-gradient plane dy [h, w] (strides sh, sw) as A dY A^T, the
 * cotangent of the product M of each tile, into m[xi * ld + k]; outputs past an odd edge
 * do not exist and count as 0. */
static void grad_transform(const float *dy, int64_t h, int64_t w, int64_t sh, int64_t sw,
                           int64_t th, int64_t tw, float *m, int64_t ld) {
    for (int64_t a = 0; a < th; a++)
        for (int64_t b = 0; b < tw; b++) {
            float d[2][2] = {{0, 0}, {0, 0}};
            for (int r = 0; r < 2; r++)
                for (int s = 0; s < 2; s++)
                    if (2 * a + r < h && 2 * b + s < w)
                        d[r][s] = dy[(2 * a + r) * sh + (2 * b + s) * sw];
            float t[4][2];
            for (int s = 0; s < 2; s++) {   /* A dY */
                t[0][s] = d[0][s];
                t[1][s] = d[0][s] + d[1][s];
                t[2][s] = d[0][s] - d[1][s];
                t[3][s] = -d[1][s];
            }
            float *out = m + a * tw + b;
            for (int r = 0; r < 4; r++) {   /* (A dY) A^T */
                out[(r * 4 + 0) * ld] = t[r][0];
                out[(r * 4 + 1) * ld] = t[r][0] + t[r][1];
                out[(r * 4 + 2) * ld] = t[r][0] - t[r][1];
                out[(r * 4 + 3) * ld] = -t[r][1];
            }
        }
}

#ifdef __AVX512F__
/* The transforms a tile row at a time (up to 15 tiles: images up to 30 wide), its tiles in
 * the lanes of AVX-512 registers: a row of the zero-padded plane is loaded whole and the
 * tiles' 4 columns picked out by permutes; outputs go back in row order the same way.
 * Scalar, the transforms took about as long as the GEMMs (gathers were slower still). */
#define VEC_TW 15

static inline __mmask16 first(int64_t n) {
    return (__mmask16)(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1);
}

/* Lanes b of patch column s: row[2b + s], from a row of up to 32 floats in lo, hi. */
static inline __m512 pick(__m512 lo, __m512 hi, int s) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(lo, _mm512_add_epi32(idx, _mm512_set1_epi32(s)), hi);
}

/* The padded plane p (rows of pw floats) into v[xi * ld + k]. */
static void input_transform_v(const float *p, int64_t pw, int64_t th, int64_t tw, float *v,
                              int64_t ld) {
    __mmask16 km = first(tw), ma = first(pw), mb = first(pw - 16);
    for (int64_t a = 0; a < th; a++) {
        __m512 d[4][4];
        for (int r = 0; r < 4; r++) {
            const float *row = p + (2 * a + r) * pw;
            __m512 lo = _mm512_maskz_loadu_ps(ma, row), hi = _mm512_maskz_loadu_ps(mb, row + 16);
            for (int c = 0; c < 4; c++) d[r][c] = pick(lo, hi, c);
        }
        for (int c = 0; c < 4; c++) {   /* B^T d */
            __m512 d0 = d[0][c], d1 = d[1][c], d2 = d[2][c], d3 = d[3][c];
            d[0][c] = _mm512_sub_ps(d0, d2);
            d[1][c] = _mm512_add_ps(d1, d2);
            d[2][c] = _mm512_sub_ps(d2, d1);
            d[3][c] = _mm512_sub_ps(d1, d3);
        }
        float *out = v + a * tw;
        for (int r = 0; r < 4; r++) {   /* (B^T d) B */
            _mm512_mask_storeu_ps(out + (r * 4 + 0) * ld, km, _mm512_sub_ps(d[r][0], d[r][2]));
            _mm512_mask_storeu_ps(out + (r * 4 + 1) * ld, km, _mm512_add_ps(d[r][1], d[r][2]));
            _mm512_mask_storeu_ps(out + (r * 4 + 2) * ld, km, _mm512_sub_ps(d[r][2], d[r][1]));
            _mm512_mask_storeu_ps(out + (r * 4 + 3) * ld, km, _mm512_sub_ps(d[r][1], d[r][3]));
        }
    }
}

/* A plane y [h, w] (w <= 2 tw) from its tiles' products. */
static void output_transform_v(const float *m, int64_t ld, int64_t h, int64_t w, int64_t th,
                               int64_t tw, float *y) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    __mmask16 km = first(tw), ma = first(w), mb = first(w - 16);
    for (int64_t a = 0; a < th; a++) {
        const float *q = m + a * tw;
        __m512 t[2][4];
        for (int c = 0; c < 4; c++) {   /* A^T M */
            __m512 m0 = _mm512_maskz_loadu_ps(km, q + c * ld);
            __m512 m1 = _mm512_maskz_loadu_ps(km, q + (4 + c) * ld);
            __m512 m2 = _mm512_maskz_loadu_ps(km, q + (8 + c) * ld);
            __m512 m3 = _mm512_maskz_loadu_ps(km, q + (12 + c) * ld);
            t[0][c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            t[1][c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        for (int r = 0; r < 2 && 2 * a + r < h; r++) {   /* (A^T M) A, columns interleaved */
            __m512 y0 = _mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2]);
            __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(t[r][1], t[r][2]), t[r][3]);
            float *row = y + (2 * a + r) * w;
            _mm512_mask_storeu_ps(row, ma, _mm512_permutex2var_ps(y0, lo, y1));
            _mm512_mask_storeu_ps(row + 16, mb, _mm512_permutex2var_ps(y0, hi, y1));
        }
    }
}

/* A dY A^T of a plane dy [h, w] with dense rows (row stride sh) into m[xi * ld + k]. */
static void grad_transform_v(const float *dy, int64_t h, int64_t w, int64_t sh, int64_t th,
                             int64_t tw, float *m, int64_t ld) {
    __mmask16 km = first(tw), ma = first(w), mb = first(w - 16);
    for (int64_t a = 0; a < th; a++) {
        __m512 d[2][2];
        for (int r = 0; r < 2; r++) {
            if (2 * a + r >= h) { d[r][0] = d[r][1] = _mm512_setzero_ps(); continue; }
            const float *row = dy + (2 * a + r) * sh;
            __m512 lo = _mm512_maskz_loadu_ps(ma, row), hi = _mm512_maskz_loadu_ps(mb, row + 16);
            d[r][0] = pick(lo, hi, 0);   /* lanes past w are 0: the missing outputs */
            d[r][1] = pick(lo, hi, 1);
        }
        __m512 t[4][2];
        for (int c = 0; c < 2; c++) {   /* A dY */
            t[0][c] = d[0][c];
            t[1][c] = _mm512_add_ps(d[0][c], d[1][c]);
            t[2][c] = _mm512_sub_ps(d[0][c], d[1][c]);
            t[3][c] = _mm512_sub_ps(_mm512_setzero_ps(), d[1][c]);
        }
        float *out = m + a * tw;
        for (int r = 0; r < 4; r++) {   /* (A dY) A^T */
            _mm512_mask_storeu_ps(out + (r * 4 + 0) * ld, km, t[r][0]);
            _mm512_mask_storeu_ps(out + (r * 4 + 1) * ld, km, _mm512_add_ps(t[r][0], t[r][1]));
            _mm512_mask_storeu_ps(out + (r * 4 + 2) * ld, km, _mm512_sub_ps(t[r][0], t[r][1]));
            _mm512_mask_storeu_ps(out + (r * 4 + 3) * ld, km,
                                  _mm512_sub_ps(_mm512_setzero_ps(), t[r][1]));
        }
    }
}
#endif

/* Whether the vector transforms apply: AVX-512 and tile rows of at most VEC_TW tiles. */
static bool vec_ok(int64_t tw) {
#ifdef __AVX512F__
    return tw <= VEC_TW;
#else
    (void)tw;
    return false;
#endif
}

/* A plane's tiles transformed into v (through the padded copy pad). */
static void in_tiles(const float *src, int64_t h, int64_t w, int64_t sh, int64_t sw, int64_t th,
                     int64_t tw, float *pad, float *v, int64_t ld) {
    input_transform(src, h, w, sh, sw, th, tw, pad, v, ld, vec_ok(tw));
}

static void out_tiles(const float *m, int64_t ld, int64_t h, int64_t w, int64_t th, int64_t tw,
                      float *y) {
#ifdef __AVX512F__
    if (vec_ok(tw)) { output_transform_v(m, ld, h, w, th, tw, y); return; }
#endif
    output_transform(m, ld, h, w, th, tw, y);
}

static void grad_tiles(const float *dy, int64_t h, int64_t w, int64_t sh, int64_t sw,
                       int64_t th, int64_t tw, float *m, int64_t ld) {
#ifdef __AVX512F__
    if (vec_ok(tw) && sw == 1) { grad_transform_v(dy, h, w, sh, th, tw, m, ld); return; }
#endif
    grad_transform(dy, h, w, sh, sw, th, tw, m, ld);
}

/* Images per block (*nb, about TILES_TARGET tiles, at least one block per thread when
 * there are images enough), the number of blocks, and the threads that get one. */
static int plan_blocks(int64_t n, int64_t tpi, int threads, int64_t *nb, int64_t *nblocks) {
    *nb = (TILES_TARGET + tpi - 1) / tpi;
    if (*nb > n) *nb = n;
    *nblocks = (n + *nb - 1) / *nb;
    if (*nblocks < threads && n >= threads) {
        *nb = (n + threads - 1) / threads;
        *nblocks = (n + *nb - 1) / *nb;
    }
    return (int)(*nblocks < threads ? *nblocks : threads);
}

/* y [N, O, H, W] (contiguous) = the "same" 3x3 convolution of x [N, C, H, W] (strides xs)
 * with the filters wt (see filter_transform). Returns 0, or -1 out of memory (no error set). */
int cpu_winograd_3x3(const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                     const int64_t *xs, const float *wt, int flip, int64_t o, float *y,
                     int threads) {
    int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tpi = th * tw;   /* tiles per image */
    int64_t nb, nblocks;
    int par = plan_blocks(n, tpi, threads, &nb, &nblocks);
    int64_t ld = nb * tpi;   /* tiles of a block */
    float *u = malloc((size_t)(16 * o * c) * 4);
    if (!u) return -1;
    filter_transform(wt, flip, o, c, u);
    int failed = 0;
    #pragma omp parallel num_threads(par) if (par > 1)
    {
        float *v = malloc((size_t)(16 * c * ld + 16 * o * ld + (2 * th + 2) * (2 * tw + 2)) * 4);
        float *m = v ? v + 16 * c * ld : NULL, *pad = m ? m + 16 * o * ld : NULL;
        if (!v) {
            #pragma omp atomic write
            failed = 1;
        }
        int t = par > 1 ? omp_get_thread_num() : 0;
        for (int64_t blk = t; blk < nblocks && v; blk += par) {
            int64_t n0 = blk * nb, b = n - n0 < nb ? n - n0 : nb, nt = b * tpi;
            for (int64_t i = 0; i < b; i++)
                for (int64_t cc = 0; cc < c; cc++)
                    in_tiles(x + (n0 + i) * xs[0] + cc * xs[1], h, w, xs[2], xs[3], th, tw,
                             pad, v + cc * ld + i * tpi, c * ld);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o, (int)nt, (int)c,
                            1.0f, u + xi * o * c, (int)c, v + xi * c * ld, (int)ld, 0.0f,
                            m + xi * o * ld, (int)ld);
            for (int64_t i = 0; i < b; i++)
                for (int64_t oo = 0; oo < o; oo++)
                    out_tiles(m + oo * ld + i * tpi, o * ld, h, w, th, tw,
                              y + ((n0 + i) * o + oo) * h * w);
        }
        free(v);
    }
    free(u);
    return failed ? -1 : 0;
}


/* dw [O, C, 3, 3] of the "same" 3x3 convolution y = conv(x, w), from x [N, C, H, W] and
 * dy [N, O, H, W] (strides xs, dys): with U = G g G^T, dU_xi = sum over tiles of
 * (A dY A^T)_xi (B^T d B)_xi, 16 GEMMs [O, tiles] @ [tiles, C] per block accumulated (per
 * thread, summed in thread order), then dg = G^T dU G. Returns 0, or -1 out of memory. */
int cpu_winograd_3x3_wgrad(const float *x, const int64_t *xs, const float *dy,
                           const int64_t *dys, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t o, float *dw, int threads) {
    int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tpi = th * tw;
    int64_t nb, nblocks;
    int par = plan_blocks(n, tpi, threads, &nb, &nblocks);
    int64_t ld = nb * tpi, usz = 16 * o * c;
    float *du = calloc((size_t)(par * usz), 4);
    if (!du) return -1;
    int failed = 0;
    #pragma omp parallel num_threads(par) if (par > 1)
    {
        float *v = malloc((size_t)(16 * c * ld + 16 * o * ld + (2 * th + 2) * (2 * tw + 2)) * 4);
        float *m = v ? v + 16 * c * ld : NULL, *pad = m ? m + 16 * o * ld : NULL;
        if (!v) {
            #pragma omp atomic write
            failed = 1;
        }
        int t = par > 1 ? omp_get_thread_num() : 0;
        float *part = du + t * usz;
        for (int64_t blk = t; blk < nblocks && v; blk += par) {
            int64_t n0 = blk * nb, b = n - n0 < nb ? n - n0 : nb, nt = b * tpi;
            for (int64_t i = 0; i < b; i++) {
                for (int64_t cc = 0; cc < c; cc++)
                    in_tiles(x + (n0 + i) * xs[0] + cc * xs[1], h, w, xs[2], xs[3], th, tw,
                             pad, v + cc * ld + i * tpi, c * ld);
                for (int64_t oo = 0; oo < o; oo++)
                    grad_tiles(dy + (n0 + i) * dys[0] + oo * dys[1], h, w, dys[2], dys[3], th,
                               tw, m + oo * ld + i * tpi, o * ld);
            }
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)o, (int)c, (int)nt,
                            1.0f, m + xi * o * ld, (int)ld, v + xi * c * ld, (int)ld, 1.0f,
                            part + xi * o * c, (int)c);
        }
        free(v);
    }
    for (int t = 1; t < par; t++)
        for (int64_t k = 0; k < usz; k++) du[k] += du[t * usz + k];
    for (int64_t oo = 0; oo < o; oo++)
        for (int64_t cc = 0; cc < c; cc++) {
            float u[4][4], t[3][4];
            for (int i = 0; i < 16; i++) u[i / 4][i % 4] = du[(i * o + oo) * c + cc];
            for (int j = 0; j < 4; j++) {   /* G^T dU */
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            float *g = dw + (oo * c + cc) * 9;
            for (int r = 0; r < 3; r++) {   /* (G^T dU) G */
                g[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                g[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
                g[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
    free(du);
    return failed ? -1 : 0;
}
