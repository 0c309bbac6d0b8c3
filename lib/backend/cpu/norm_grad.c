/* NORM_GRAD, the backward of LAYER_NORM and RMS_NORM in one pass (the nodes lz_norm_grad
 * builds: inputs x [R, D], ct [R, D] (both contiguous float32) and the weight [D] when
 * params.i[0]; i[2] = 1 for RMS). Per row, with xhat = (x - mean) rstd (layer) or
 * x rstd (RMS) recomputed as the forward computes it, and g = ct w:
 *     dx = rstd (g - mean(g) - xhat mean(g xhat))      (RMS: without the mean(g) term)
 * and over all rows  d weight = sum ct xhat,  d bias = sum ct.
 * The output is [R + 2, D]: dx, then the weight and bias rows (zeros when the norm has no
 * such parameter), so that one kernel writes all three (the views are taken by the vjp).
 *
 * The column sums are taken per block of BLOCK rows and the blocks added in order: the
 * result does not depend on the thread count. Composing this from elementwise ops and
 * reductions took ten kernels and ~2 ms per [4096, 128] norm on one core; this is one. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "cpu.h"

#define BLOCK 64

/* One block of rows; dw and db receive the block's column sums. */
static void rows_grad(const float *x, const float *ct, const float *w, float *dx, float *dw,
                      float *db, int64_t rows, int64_t n, double eps, bool layer) {
    memset(dw, 0, (size_t)n * 4);
    memset(db, 0, (size_t)n * 4);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n, *cr = ct + r * n;
        float *dr = dx + r * n;
        /* mean and variance in double, as the forward kernel (lib/backend/cpu/nn.c) */
        double s = 0, q = 0, mean = 0;
        if (layer) {
            #pragma omp simd reduction(+:s)
            for (int64_t i = 0; i < n; i++) s += xr[i];
            mean = s / (double)n;
            #pragma omp simd reduction(+:q)
            for (int64_t i = 0; i < n; i++) {
                double d = xr[i] - mean;
                q += d * d;
            }
        } else {
            #pragma omp simd reduction(+:q)
            for (int64_t i = 0; i < n; i++) q += (double)xr[i] * xr[i];
        }
        float rs = (float)(1.0 / sqrt(q / (double)n + eps));
        float mh = (float)mean, ml = (float)(mean - (double)mh);
        float m1 = 0, m2 = 0;
        #pragma omp simd reduction(+:m1, m2)
        for (int64_t i = 0; i < n; i++) {
            float xh = ((xr[i] - mh) - ml) * rs, g = w ? cr[i] * w[i] : cr[i];
            m1 += g;
            m2 += g * xh;
            dw[i] += cr[i] * xh;
            db[i] += cr[i];
        }
        m1 = layer ? m1 / (float)n : 0;
        m2 /= (float)n;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float xh = ((xr[i] - mh) - ml) * rs, g = w ? cr[i] * w[i] : cr[i];
            dr[i] = rs * (g - m1 - xh * m2);
        }
    }
}

int cpu_norm_grad(lz_array *out, lz_array *const *in, const lz_params *p) {
    int64_t n = out->shape[1], rows = out->shape[0] - 2;
    bool layer = !p->i[2];
    const float *x = lz_elem_ptr(in[0]), *ct = lz_elem_ptr(in[1]);
    const float *w = p->i[0] ? lz_elem_ptr(in[2]) : NULL;
    float *dx = lz_elem_ptr(out), *dw = dx + rows * n, *db = dw + n;
    lz_stats_add(1, 4 * (uint64_t)(3 * rows * n + 3 * n), 0);
    int64_t nblocks = (rows + BLOCK - 1) / BLOCK;
    memset(dw, 0, (size_t)(2 * n) * 4);
    if (nblocks == 0 || n == 0) return 0;
    lz_buffer *part = lz_buffer_alloc((size_t)(nblocks * 2 * n) * 4);
    if (!part) return -1;
    float *ps = (float *)part->data;
    int threads = rows * n >= 32768 ? cpu_threads() : 1;
    if (threads > nblocks) threads = (int)nblocks;
    #pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t r0 = b * BLOCK, nr = rows - r0 < BLOCK ? rows - r0 : BLOCK;
        rows_grad(x + r0 * n, ct + r0 * n, w, dx + r0 * n, ps + b * 2 * n, ps + b * 2 * n + n,
                  nr, n, p->f[0], layer);
    }
    for (int64_t b = 0; b < nblocks; b++) {
        const float *pw = ps + b * 2 * n, *pb = pw + n;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
    if (!layer || !p->i[1]) memset(db, 0, (size_t)n * 4);
    if (!p->i[0]) memset(dw, 0, (size_t)n * 4);
    lz_buffer_release(part);
    return 0;
}
