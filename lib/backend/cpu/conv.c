/* Kernels of the window primitives (geometry, modes and params in lib/ops/conv.h).
 *
 * CONV: im2col + GEMM. Images are taken in blocks of nb (a few hundred columns: the patch
 * matrix of a block stays in L2, and im2col writing a large one out to memory was a fifth
 * of the layer); blocks go to OpenMP threads (see conv_kernel).
 *   FORWARD      y_g  = W_g [Og, R] @ cols_g [R, OH*OW] per image, written straight into y
 *                                                              (R = C/groups*KH*KW)
 *   INPUT_GRAD   cols_g = W_g^T @ dy_g per image (dy read in place), then col2im sums the
 *                patches into dx
 *   WEIGHT_GRAD  dW_g += dy_g [Og, ncol] @ cols_g^T          (accumulated over blocks)
 * A 1x1 stride-1 unpadded conv skips im2col when one image is a block: its patch matrix is
 * the image itself. With many groups and tiny GEMMs (depthwise) the groups run on OpenMP
 * threads instead; each GEMM is then below OpenBLAS's threading threshold.
 * Pools are in pool.c. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <string.h>
#define SMALL_GEMM (4 * 65536)        /* m*n*k below which OpenBLAS uses one thread */
#define COLS_TARGET 256               /* columns per block worth batching images for */
#define COLS_BYTES (8 << 20)          /* cap of the patch matrix of one block */
#define WINO_BYTES (2 << 20)          /* cap of one image's Winograd scratch (per thread) */

#include "window.h"

/* Output columns [lo, hi) whose input column ow*sw - pw + k*dw lies inside [0, w). */
static void valid_cols(const geo *g, int64_t k, int64_t *lo, int64_t *hi) {
    int64_t a = g->pw - k * g->dw, b = g->w - 1 + g->pw - k * g->dw;
    *lo = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
    *hi = b < 0 ? 0 : b / g->sw + 1;
    if (*hi > g->ow) *hi = g->ow;
    if (*lo > *hi) *lo = *hi;
}


/* Threads for the copy loops around the GEMMs (im2col, col2im, packing): none while OpenBLAS
 * threads the GEMMs. Measured: alternating OpenMP regions with threaded OpenBLAS calls made
 * this layer 10-20x slower on 2 cores (an idle libgomp worker spins for milliseconds and
 * takes the core OpenBLAS's worker needs); the copies alone cost a fraction of the GEMM. */
static int copy_threads(bool blas_threaded, int64_t work) {
    return blas_threaded ? 1 : threads_for(work);
}

/* Rows of the patch matrix are short (14 or 28 floats for MNIST): a libc memcpy/memset per
 * row cost more than the copying. With stride 1 a row is the input row shifted, zero outside
 * [lo, hi): masked 16-lane loads and stores, one per 16 floats, the zeros included. */
#ifdef __AVX512F__
static inline __mmask16 lanes(int64_t j0, int64_t lo, int64_t hi) {
    int64_t a = lo - j0 < 0 ? 0 : lo - j0, b = hi - j0 > 16 ? 16 : hi - j0;
    return b <= a ? 0 : (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}
#endif

/* dst[j] = src[j] for j in [lo, hi), 0 for the other j < n. src[j] is only read in [lo, hi). */
static inline void row_copy(float *restrict dst, const float *src, int64_t lo, int64_t hi,
                            int64_t n) {
#ifdef __AVX512F__
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        __m512 v = _mm512_maskz_loadu_ps(lanes(j0, lo, hi), (const char *)src + 4 * j0);
        _mm512_mask_storeu_ps(dst + j0, lanes(j0, 0, n), v);
    }
#else
    for (int64_t j = 0; j < n; j++) dst[j] = j >= lo && j < hi ? src[j] : 0.0f;
#endif
}

/* One tap's patch row of a stride-1 "same" conv (output the size of the input, dense plane
 * rows): it is the plane shifted by a constant, so one long copy and then zeros at the
 * border rows and columns, where row by row it took one short copy per output row. */
static void tap_same(const float *plane, const geo *g, int64_t kh, int64_t kw, int64_t lo,
                     int64_t hi, float *dst) {
    int64_t w = g->w, hw = g->h * w;
    int64_t dh = kh * g->dh - g->ph, shift = dh * w + kw * g->dw - g->pw;
    int64_t r0 = dh < 0 ? -dh : 0, r1 = g->h - (dh > 0 ? dh : 0);   /* valid output rows */
    if (r1 < r0) r1 = r0;
    int64_t q0 = r0 * w, q1 = r1 * w;
    int64_t a = q0 > -shift ? q0 : -shift, b = q1 < hw - shift ? q1 : hw - shift;
    if (b <= a) {   /* the tap sees only padding (a kernel wider than the image) */
        memset(dst, 0, (size_t)hw * 4);
        return;
    }
    memset(dst, 0, (size_t)a * 4);
    memcpy(dst + a, plane + a + shift, (size_t)(b - a) * 4);
    memset(dst + b, 0, (size_t)(hw - b) * 4);
    if (lo == 0 && hi == w) return;
    for (int64_t r = r0; r < r1; r++) {   /* columns that wrapped round from the next row */
        for (int64_t j = 0; j < lo; j++) dst[r * w + j] = 0;
        for (int64_t j = hi; j < w; j++) dst[r * w + j] = 0;
    }
}

/* Patches of images [n0, n0+nb) of x into cols [C*KH*KW, nb*OH*OW]. */
static void im2col(const t4 *x, const geo *g, int64_t n0, int64_t nb, float *cols, bool bt) {
    int64_t ohw = g->oh * g->ow, ncol = nb * ohw, kk = g->kh * g->kw, tasks = nb * x->c;
    bool same = g->sh == 1 && g->sw == 1 && g->oh == g->h && g->ow == g->w && x->sw == 1 &&
                x->sh == g->w;
    #pragma omp parallel for num_threads(copy_threads(bt, tasks * kk * ohw)) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i = t / x->c, c = t % x->c;
        const float *src = x->p + (n0 + i) * x->sn + c * x->sc;
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                float *dst = cols + (c * kk + kh * g->kw + kw) * ncol + i * ohw;
                int64_t lo, hi;
                valid_cols(g, kw, &lo, &hi);
                if (same) {
                    tap_same(src, g, kh, kw, lo, hi, dst);
                    continue;
                }
                int64_t iw0 = lo * g->sw - g->pw + kw * g->dw;
                for (int64_t oh = 0; oh < g->oh; oh++, dst += g->ow) {
                    int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) { memset(dst, 0, (size_t)g->ow * 4); continue; }
                    const float *row = src + ih * x->sh + iw0 * x->sw;
                    if (g->sw == 1 && x->sw == 1) {
                        /* address arithmetic only: row - lo may lie before the array, but
                         * only [lo, hi) is read */
                        row_copy(dst, (const float *)((uintptr_t)row - 4 * (uintptr_t)lo), lo, hi, g->ow);
                        continue;
                    }
                    for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;
                    int64_t step = g->sw * x->sw;
                    for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[(ow - lo) * step];
                    for (int64_t ow = hi; ow < g->ow; ow++) dst[ow] = 0;
                }
            }
    }
}

/* Stride 1: each row of dx is the sum of the patch rows that cover it, shifted. It is
 * summed in registers and stored once: adding the patch rows into dx one by one (the general
 * path) made every 16-float read wait on the overlapping store just before it, and cost a
 * third of the input gradient of a 14x14 layer. src(kh, kw) is the first patch row of tap
 * (kh, kw) for this image and channel. */
static void col2im_plane_s1(const float *cols, int64_t tap_ld, const geo *g, float *plane) {
    for (int64_t ih = 0; ih < g->h; ih++) {
        float *dst = plane + ih * g->w;
#ifdef __AVX512F__
        for (int64_t j0 = 0; j0 < g->w; j0 += 16) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t kh = 0; kh < g->kh; kh++) {
                int64_t oh = ih + g->ph - kh * g->dh;
                if (oh < 0 || oh >= g->oh) continue;
                for (int64_t kw = 0; kw < g->kw; kw++) {
                    /* output column ow = iw + off feeds input column iw */
                    int64_t off = g->pw - kw * g->dw;
                    const float *src = cols + (kh * g->kw + kw) * tap_ld + oh * g->ow + off;
                    __mmask16 m = lanes(j0, -off, g->ow - off) & lanes(j0, 0, g->w);
                    acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, (const char *)src + 4 * j0));
                }
            }
            _mm512_mask_storeu_ps(dst + j0, lanes(j0, 0, g->w), acc);
        }
#else
        for (int64_t iw = 0; iw < g->w; iw++) {
            float acc = 0;
            for (int64_t kh = 0; kh < g->kh; kh++) {
                int64_t oh = ih + g->ph - kh * g->dh;
                if (oh < 0 || oh >= g->oh) continue;
                for (int64_t kw = 0; kw < g->kw; kw++) {
                    int64_t ow = iw + g->pw - kw * g->dw;
                    if (ow >= 0 && ow < g->ow) acc += cols[(kh * g->kw + kw) * tap_ld + oh * g->ow + ow];
                }
            }
            dst[iw] = acc;
        }
#endif
    }
}

/* Adds the patches cols [C*KH*KW, nb*OH*OW] back into dx (contiguous [N, C, H, W]): each
 * plane is written whole (stride 1) or zeroed first, here while it is in cache. */
static void col2im(const float *cols, const geo *g, int64_t c_all, int64_t n0, int64_t nb,
                   float *dx, bool bt) {
    int64_t ohw = g->oh * g->ow, ncol = nb * ohw, kk = g->kh * g->kw, tasks = nb * c_all;
    #pragma omp parallel for num_threads(copy_threads(bt, tasks * kk * ohw)) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i = t / c_all, c = t % c_all;
        float *plane = dx + ((n0 + i) * c_all + c) * g->h * g->w;
        if (g->sh == 1 && g->sw == 1) {
            col2im_plane_s1(cols + c * kk * ncol + i * ohw, ncol, g, plane);
            continue;
        }
        memset(plane, 0, (size_t)(g->h * g->w) * 4);
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                const float *src = cols + (c * kk + kh * g->kw + kw) * ncol + i * ohw;
                int64_t lo, hi;
                valid_cols(g, kw, &lo, &hi);
                int64_t iw0 = lo * g->sw - g->pw + kw * g->dw;
                for (int64_t oh = 0; oh < g->oh; oh++, src += g->ow) {
                    int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    float *row = plane + ih * g->w + iw0;
                    for (int64_t ow = lo; ow < hi; ow++) row[(ow - lo) * g->sw] += src[ow];
                }
            }
    }
}

/* Copies images [n0, n0+nb) of dy (strided [N, O, OH, OW]) into dyp [O, nb*OH*OW]. */
static void pack(const t4 *dy, int64_t n0, int64_t nb, float *dyp, bool bt) {
    int64_t ohw = dy->h * dy->w, ncol = nb * ohw, tasks = nb * dy->c;
    #pragma omp parallel for num_threads(copy_threads(bt, tasks * ohw)) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i = t / dy->c, o = t % dy->c;
        const float *src = dy->p + (n0 + i) * dy->sn + o * dy->sc;
        float *dst = dyp + o * ncol + i * ohw;
        if (plane_dense(dy)) { memcpy(dst, src, (size_t)ohw * 4); continue; }
        for (int64_t h = 0; h < dy->h; h++)
            for (int64_t w = 0; w < dy->w; w++) dst[h * dy->w + w] = src[h * dy->sh + w * dy->sw];
    }
}

/* A matrix operand of a GEMM: base and leading dimension. */
typedef struct { float *p; int64_t ld; } mat;

/* Per-group GEMMs: C_g = op(A_g) @ op(B_g) (+ beta C_g), group g's blocks at the given
 * element offsets. Tiny GEMMs of many groups go to OpenMP threads. */
static void group_gemm(int64_t groups, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                       mat a, int64_t a_step, mat b, int64_t b_step, float beta, mat c,
                       int64_t c_step) {
    int threads = groups > 1 && m * n * k <= SMALL_GEMM ? threads_for(groups * m * n * k) : 1;
#define GROUP_GEMM(g)                                                                   \
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, \
                (int)m, (int)n, (int)k, 1.0f, a.p + (g) * a_step, (int)a.ld,             \
                b.p + (g) * b_step, (int)b.ld, beta, c.p + (g) * c_step, (int)c.ld)
    if (threads == 1) {   /* no one-thread OpenMP region around OpenBLAS: see linalg.c */
        for (int64_t g = 0; g < groups; g++) GROUP_GEMM(g);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t g = 0; g < groups; g++) GROUP_GEMM(g);
#undef GROUP_GEMM
}

static int64_t block_images(int64_t n, int64_t ohw, int64_t rows) {
    int64_t nb = (COLS_TARGET + ohw - 1) / (ohw ? ohw : 1);
    if (nb > n) nb = n;
    int64_t per_image = rows * ohw > 0 ? rows * ohw : 1;
    int64_t cap = COLS_BYTES / (4 * per_image);
    if (nb > cap) nb = cap;
    return nb < 1 ? 1 : nb;
}

static lz_buffer *scratch(int64_t floats, int *failed) {
    if (*failed || floats <= 0) return NULL;
    lz_buffer *b = lz_buffer_alloc((size_t)floats * 4);
    if (!b) *failed = 1;
    return b;
}

/* What every image block of one conv call shares. */
typedef struct {
    geo g;
    int mode;
    t4 x, dy;
    const float *w;
    float *y;
    int64_t n, c, o, groups, og, r, ohw, hw, nb;
    bool direct_cols, direct_dy, dy_planes, bt;
    int64_t x_ld, dy_ld;
} conv_job;

/* Block of images [n0, n0+b) with this thread's scratch (cols, dy: NULL where the job reads
 * or writes the arrays directly). FORWARD writes each image's output straight into y with
 * one GEMM per image over the block's patch matrix (as fast as one GEMM over the block on
 * these shapes, and it saves moving the block's output into place); INPUT_GRAD likewise
 * reads each image's dy in place when its planes are dense. WEIGHT_GRAD needs the long
 * inner dimension of the whole block (per-image GEMMs of K = OH*OW ran ~15% slower), so it
 * packs dy, and accumulates into dw (beta 0 on the thread's first block). */
static void conv_block(const conv_job *j, int64_t n0, int64_t b, float *cols_p, float *dy_p,
                       float *dw, bool first) {
    int64_t ncol = b * j->ohw, o = j->o, og = j->og, r = j->r, c = j->c, groups = j->groups;
    int64_t ohw = j->ohw;
    int mode = j->mode;
    mat cols = {cols_p, ncol};
    if (j->direct_cols && mode == LZ_WIN_INPUT_GRAD) cols = (mat){j->y + n0 * c * j->hw, j->hw};
    else if (j->direct_cols) cols = (mat){(float *)j->x.p + n0 * j->x.sn, j->x_ld};
    else if (mode != LZ_WIN_INPUT_GRAD) im2col(&j->x, &j->g, n0, b, cols.p, j->bt);
    mat wm = {(float *)j->w, r};
    if (mode == LZ_WIN_FORWARD) {
        for (int64_t i = 0; i < b; i++) {
            mat ym = {j->y + (n0 + i) * o * ohw, ohw}, ci = {cols.p + i * ohw, cols.ld};
            group_gemm(groups, false, false, og, ohw, r, wm, og * r, ci, r * ci.ld, 0.0f,
                       ym, og * ohw);
        }
    } else if (mode == LZ_WIN_INPUT_GRAD) {
        if (j->dy_planes && !j->direct_cols) {
            /* image by image: its patch matrix [R, OH*OW] stays in cache for col2im */
            for (int64_t i = 0; i < b; i++) {
                mat di = {(float *)j->dy.p + (n0 + i) * j->dy.sn, j->dy_ld};
                mat ci = {cols.p, ohw};
                group_gemm(groups, true, false, r, ohw, og, wm, og * r, di, og * di.ld, 0.0f,
                           ci, r * ci.ld);
                col2im(cols.p, &j->g, c, n0 + i, 1, j->y, j->bt);
            }
            return;
        } else {
            mat dym = {dy_p, ncol};
            if (j->direct_dy) dym = (mat){(float *)j->dy.p + n0 * j->dy.sn, j->dy_ld};
            else pack(&j->dy, n0, b, dym.p, j->bt);
            group_gemm(groups, true, false, r, ncol, og, wm, og * r, dym, og * dym.ld, 0.0f,
                       cols, r * cols.ld);
        }
        if (!j->direct_cols) col2im(cols.p, &j->g, c, n0, b, j->y, j->bt);
    } else {
        mat dym = {dy_p, ncol};
        if (j->direct_dy) dym = (mat){(float *)j->dy.p + n0 * j->dy.sn, j->dy_ld};
        else pack(&j->dy, n0, b, dym.p, j->bt);
        group_gemm(groups, false, true, og, r, ncol, dym, og * dym.ld, cols, r * cols.ld,
                   first ? 0.0f : 1.0f, (mat){dw, r}, og * r);
    }
}

#ifdef __AVX512F__
/* The forward pass of one-input-channel 3x3 stride-1 "same" convs (the first layer of an
 * image model: MNIST's 1 -> 32 on 28x28) runs directly: per image the plane is copied once
 * into a zero-padded buffer, the 9 shifted rows of a 16-wide output segment are loaded into
 * registers once, and every filter's output is made from them (1.40 -> 1.11 ms for the
 * MNIST layer, 1 thread). As a GEMM (K = 9) it went through im2col and a GEMM too thin for
 * the BLAS kernels. (The weight gradient done the same way, dy times the shifted rows into
 * 2 or 3 filters' 9 accumulators, was slower than the GEMM: gcc spilled the accumulators.) */
typedef struct { int64_t hp, wp, off[9]; } padded;

static padded padded_of(const geo *g) {
    padded q = {.hp = g->h + 2 * g->dh, .wp = g->w + 2 * g->dw};
    for (int t = 0; t < 9; t++) q.off[t] = t / 3 * g->dh * q.wp + t % 3 * g->dw;
    return q;
}

/* The plane at src into buf [hp, wp] with its padding zeroed (buf's tail of 16 stays 0). */
static void pad_plane(const float *src, const t4 *x, const geo *g, const padded *q, float *buf) {
    memset(buf, 0, (size_t)(q->hp * q->wp) * 4);
    for (int64_t ih = 0; ih < g->h; ih++) {
        float *row = buf + (ih + g->ph) * q->wp + g->pw;
        const float *s = src + ih * x->sh;
        if (x->sw == 1) memcpy(row, s, (size_t)g->w * 4);
        else for (int64_t iw = 0; iw < g->w; iw++) row[iw] = s[iw * x->sw];
    }
}

static bool one_channel_direct(const conv_job *j, const geo *g, int64_t groups) {
    return j->mode == LZ_WIN_FORWARD && groups == 1 && j->c == 1 && g->kh == 3 &&
           g->kw == 3 && g->sh == 1 && g->sw == 1 && g->oh == g->h && g->ow == g->w &&
           g->h > 0 && g->w > 0;
}

static void one_forward(const conv_job *j, const geo *g, const padded *q, const float *buf,
                        int64_t i, int64_t o) {
    for (int64_t r = 0; r < g->oh; r++)
        for (int64_t j0 = 0; j0 < g->ow; j0 += 16) {
            __mmask16 m = lanes(j0, 0, g->ow);
            const float *src = buf + r * q->wp + j0;
            __m512 v[9];
            for (int t = 0; t < 9; t++) v[t] = _mm512_loadu_ps(src + q->off[t]);
            float *y = j->y + (i * o * g->oh + r) * g->ow + j0;
            for (int64_t f = 0; f < o; f++, y += g->oh * g->ow) {
                const float *w = j->w + f * 9;
                __m512 s = _mm512_mul_ps(_mm512_set1_ps(w[0]), v[0]);
                for (int t = 1; t < 9; t++) s = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), v[t], s);
                _mm512_mask_storeu_ps(y, m, s);
            }
        }
}

/* y [N, O, H, W] contiguous. */
static int one_channel_conv(const conv_job *j, const geo *g, int64_t n, int64_t o) {
    padded q = padded_of(g);
    int64_t bufn = q.hp * q.wp + 16;
    int failed = 0;
    #pragma omp parallel num_threads(threads_for(n * o * g->oh * g->ow * 9))
    {
        float *buf = calloc((size_t)bufn, 4);
        if (!buf) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!buf) continue;
            pad_plane(j->x.p + i * j->x.sn, &j->x, g, &q, buf);
            one_forward(j, g, &q, buf, i, o);
        }
        free(buf);
    }
    if (failed) { lz_fail("conv: out of memory"); return -1; }
    return 0;
}
#endif

static int conv_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    lz_window win = lz_window_of(p);
    conv_job j = {.g = geo_of(&win), .mode = win.mode, .y = lz_elem_ptr(out)};
    const geo g = j.g;
    int mode = j.mode;
    /* x: the forward input (FORWARD, WEIGHT_GRAD); dy: the forward output's cotangent */
    if (mode == LZ_WIN_FORWARD) { j.x = t4_of(in[0]); j.w = lz_elem_ptr(in[1]); }
    if (mode == LZ_WIN_INPUT_GRAD) { j.dy = t4_of(in[0]); j.w = lz_elem_ptr(in[1]); }
    if (mode == LZ_WIN_WEIGHT_GRAD) { j.x = t4_of(in[0]); j.dy = t4_of(in[1]); }
    int64_t n = out->shape[0];
    int64_t c = mode == LZ_WIN_FORWARD || mode == LZ_WIN_WEIGHT_GRAD ? j.x.c
              : out->shape[1];
    int64_t o = mode == LZ_WIN_FORWARD ? out->shape[1] : mode == LZ_WIN_INPUT_GRAD ? j.dy.c
              : out->shape[0];
    if (mode == LZ_WIN_WEIGHT_GRAD) n = j.x.n;
    int64_t groups = win.groups, cg = c / groups, og = o / groups;
    int64_t kk = g.kh * g.kw, r = cg * kk, ohw = g.oh * g.ow, hw = g.h * g.w;
    float *y = j.y;
    int64_t out_size = lz_size(out);
    uint64_t flops = (uint64_t)(2 * n * o * ohw * r);
    lz_stats_add(1, (uint64_t)(n * c * hw + o * r + n * o * ohw) * 4, flops);
    if (!out_size) return 0;
    if (!flops) { memset(y, 0, (size_t)out_size * 4); return 0; }

#ifdef __AVX512F__
    j.c = c;
    if (one_channel_direct(&j, &g, groups)) return one_channel_conv(&j, &g, n, o);
#endif
    /* 3x3 stride-1 "same" convs over enough channels: Winograd F(2x2, 3x3) (winograd.c),
     * all three modes, while one image's transformed tiles (16 (C + O) floats a tile) stay
     * under WINO_BYTES, about L2: a block is at least an image, and past that it lost to
     * im2col (1 thread CPU, 128 images, 3x3 "same": 14x14 32->64 11.6 -> 6.0 ms forward,
     * 14x14 128->128 82 -> 42, 28x28 64->64 83 -> 46, 56x56 16->16 29 -> 27, but 56x56
     * 64->64 (6.4 MB an image) 329 -> 524) */
    int64_t tiles = ((g.h + 1) / 2) * ((g.w + 1) / 2);
    if (groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 &&
        g.dw == 1 && g.ph == 1 && g.pw == 1 && win.pad_hi[0] == 1 && win.pad_hi[1] == 1 &&
        c >= 8 && o >= 8 && 64 * (c + o) * tiles <= WINO_BYTES) {
        const t4 *src = mode == LZ_WIN_INPUT_GRAD ? &j.dy : &j.x;
        int64_t xs[4] = {src->sn, src->sc, src->sh, src->sw};
        int64_t dys[4] = {j.dy.sn, j.dy.sc, j.dy.sh, j.dy.sw};
        int threads = cpu_threads(), blas = threads > 1 ? openblas_get_num_threads() : 1;
        if (blas > 1) openblas_set_num_threads(1);   /* for a pthread OpenBLAS */
        int rc = mode == LZ_WIN_FORWARD
            ? cpu_winograd_3x3(src->p, n, c, g.h, g.w, xs, j.w, 0, o, y, threads)
            : mode == LZ_WIN_INPUT_GRAD
            ? cpu_winograd_3x3(src->p, n, o, g.h, g.w, xs, j.w, 1, c, y, threads)
            : cpu_winograd_3x3_wgrad(src->p, xs, j.dy.p, dys, n, c, g.h, g.w, o, y, threads);
        if (blas > 1) openblas_set_num_threads(blas);
        if (rc) lz_fail("conv: out of memory");
        return rc;
    }
    bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && !g.ph && !g.pw &&
                     !win.pad_hi[0] && !win.pad_hi[1];
    int64_t nb = block_images(n, ohw, c * kk), nblocks = (n + nb - 1) / nb;
    /* at least a block per thread when there are images enough: a lone block's per-image
     * GEMMs would be threaded by OpenBLAS, which small GEMMs do not pay for */
    if (nblocks < cpu_threads() && n >= cpu_threads()) {
        nb = (n + cpu_threads() - 1) / cpu_threads();
        nblocks = (n + nb - 1) / nb;
    }
    /* Blocks go to OpenMP threads, each with its own scratch, single-threaded copies and
     * GEMMs (OpenBLAS's OpenMP build keeps to one thread inside a parallel region): all of a
     * block's work scales with the threads, where OpenBLAS threading the GEMMs of a block
     * left the copies serial and used the second core poorly on the thin GEMMs of small
     * convs (measured on an MNIST CNN: ~20% of the samples on the second thread). Blocks
     * write disjoint images of y; WEIGHT_GRAD sums per-thread partial gradients. */
    int par = (int)(nblocks < cpu_threads() ? nblocks : cpu_threads());
    if (flops < (uint64_t)4 * SMALL_GEMM) par = 1;
    bool bt = par > 1 || og * r * nb * ohw > SMALL_GEMM;     /* copies single-threaded */
    bool direct_cols = nb == 1 && pointwise &&
                       (mode == LZ_WIN_INPUT_GRAD || (plane_dense(&j.x) && (c <= 1 || j.x.sc >= hw)));
    /* dy's planes as GEMM operands in place: dense planes, channels at least a plane apart */
    bool dy_planes = mode != LZ_WIN_FORWARD && plane_dense(&j.dy) && (o <= 1 || j.dy.sc >= ohw);
    bool direct_dy = nb == 1 && dy_planes;
    j.n = n; j.c = c; j.o = o; j.groups = groups; j.og = og; j.r = r; j.ohw = ohw; j.hw = hw;
    j.nb = nb; j.direct_cols = direct_cols; j.direct_dy = direct_dy; j.bt = bt;
    j.dy_planes = dy_planes;
    j.x_ld = c <= 1 ? hw : j.x.sc;      /* GEMM wants ld >= cols */
    j.dy_ld = o <= 1 ? ohw : j.dy.sc;
    int64_t cols_n = direct_cols ? 0 : c * kk * nb * ohw;
    int64_t dy_n = mode == LZ_WIN_FORWARD || direct_dy ||
                   (mode == LZ_WIN_INPUT_GRAD && dy_planes && !direct_cols) ? 0 : o * nb * ohw;
    int64_t dw_n = mode == LZ_WIN_WEIGHT_GRAD ? out_size : 0;   /* partials of threads 1.. */
    int failed = 0;
    lz_buffer *cols_buf = scratch(cols_n * par, &failed);
    lz_buffer *dy_buf = scratch(dy_n * par, &failed);
    lz_buffer *dw_buf = scratch(dw_n * (par - 1), &failed);
    if (failed) {
        lz_buffer_release(cols_buf);
        lz_buffer_release(dy_buf);
        lz_buffer_release(dw_buf);
        return -1;
    }
    int blas_threads = par > 1 ? openblas_get_num_threads() : 1;
    if (blas_threads > 1) openblas_set_num_threads(1);   /* for a pthread OpenBLAS */
    #pragma omp parallel num_threads(par) if (par > 1)
    {
        int t = par > 1 ? omp_get_thread_num() : 0;
        float *cp = cols_buf ? (float *)cols_buf->data + t * cols_n : NULL;
        float *dp = dy_buf ? (float *)dy_buf->data + t * dy_n : NULL;
        /* thread t has block t (par <= nblocks), so each partial is written */
        float *dw = t == 0 ? y : dw_buf ? (float *)dw_buf->data + (t - 1) * dw_n : NULL;
        bool first = true;
        for (int64_t blk = t; blk < nblocks; blk += par) {
            int64_t n0 = blk * nb, b = n - n0 < nb ? n - n0 : nb;
            conv_block(&j, n0, b, cp, dp, dw, first);
            first = false;
        }
    }
    if (blas_threads > 1) openblas_set_num_threads(blas_threads);
    for (int t = 1; t < par && dw_n; t++) {
        const float *part = (const float *)dw_buf->data + (t - 1) * dw_n;
        for (int64_t i = 0; i < dw_n; i++) y[i] += part[i];
    }
    lz_buffer_release(cols_buf);
    lz_buffer_release(dy_buf);
    lz_buffer_release(dw_buf);
    return 0;
}

void cpu_register_conv(void) {
    lz_prims[LZ_P_CONV].cpu = conv_kernel;
    cpu_register_pool();
}
