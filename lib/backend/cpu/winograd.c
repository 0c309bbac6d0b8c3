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
 * Used for FORWARD, and for INPUT_GRAD, which is the same convolution of dy with the filters
 * flipped and their in/out channels swapped (`flip`). Rounding differs from the im2col path
 * by a few ulps of the tile's magnitudes (the transforms add and subtract 4 to 16 terms).
 *
 * Measured on the MNIST CNN's 128x32x14x14 -> 64 layer, 1 thread, CPU time: forward
 * 11.6 -> 7.3 ms, input gradient 11.6 -> 7.8 ms (im2col + GEMM before). The weight gradient
 * stays im2col + GEMM (its Winograd form transforms dy and x and sums over tiles: not done). */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

int cpu_winograd_3x3(const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                     const int64_t *xs, const float *wt, int flip, int64_t o, float *y,
                     int threads);

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
static void input_transform(const float *src, int64_t h, int64_t w, int64_t sh, int64_t sw,
                            int64_t th, int64_t tw, float *p, float *v, int64_t ld) {
    int64_t pw = 2 * tw + 2, ph = 2 * th + 2;
    memset(p, 0, (size_t)(ph * pw) * 4);
    for (int64_t r = 0; r < h; r++) {
        float *row = p + (r + 1) * pw + 1;
        if (sw == 1) memcpy(row, src + r * sh, (size_t)w * 4);
        else for (int64_t s = 0; s < w; s++) row[s] = src[r * sh + s * sw];
    }
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

/* y [N, O, H, W] (contiguous) = the "same" 3x3 convolution of x [N, C, H, W] (strides xs)
 * with the filters wt (see filter_transform). Returns 0, or -1 out of memory (no error set). */
int cpu_winograd_3x3(const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                     const int64_t *xs, const float *wt, int flip, int64_t o, float *y,
                     int threads) {
    int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tpi = th * tw;   /* tiles per image */
    int64_t nb = (TILES_TARGET + tpi - 1) / tpi;
    if (nb > n) nb = n;
    int64_t nblocks = (n + nb - 1) / nb;
    if (nblocks < threads && n >= threads) {   /* a block per thread at least */
        nb = (n + threads - 1) / threads;
        nblocks = (n + nb - 1) / nb;
    }
    int par = (int)(nblocks < threads ? nblocks : threads);
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
                    input_transform(x + (n0 + i) * xs[0] + cc * xs[1], h, w, xs[2], xs[3], th,
                                    tw, pad, v + cc * ld + i * tpi, c * ld);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o, (int)nt, (int)c,
                            1.0f, u + xi * o * c, (int)c, v + xi * c * ld, (int)ld, 0.0f,
                            m + xi * o * ld, (int)ld);
            for (int64_t i = 0; i < b; i++)
                for (int64_t oo = 0; oo < o; oo++)
                    output_transform(m + oo * ld + i * tpi, o * ld, h, w, th, tw,
                                     y + ((n0 + i) * o + oo) * h * w);
        }
        free(v);
    }
    free(u);
    return failed ? -1 : 0;
}
