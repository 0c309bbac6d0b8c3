/* Kernels of the pooling primitives (POOL_MAX, POOL_AVG; geometry and modes in
 * lib/ops/conv.h): direct loops, OpenMP over (image, channel) planes; the common 2x2 stride-2
 * max pool in AVX-512 registers where available. */
#include <math.h>
#include <omp.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include "window.h"

/* Index ih*W + iw of the max of window (oh, ow) in a plane (first max; NaN wins), or -1. */
static int64_t argmax_window(const float *plane, const t4 *x, const geo *g, int64_t oh,
                             int64_t ow) {
    int64_t best_i = -1;
    float best = 0;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        int64_t ih = oh * g->sh - g->ph + kh * g->dh;
        if (ih < 0 || ih >= g->h) continue;
        for (int64_t kw = 0; kw < g->kw; kw++) {
            int64_t iw = ow * g->sw - g->pw + kw * g->dw;
            if (iw < 0 || iw >= g->w) continue;
            float v = plane[ih * x->sh + iw * x->sw];
            if (best_i < 0 || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                best_i = ih * g->w + iw;
            }
        }
    }
    return best_i;
}

/* Sum of window (oh, ow) of a plane (0 when plane is NULL) and the divisor of the average. */
static float window_sum(const float *plane, const t4 *x, const geo *g, int64_t oh, int64_t ow,
                        bool count_pad, float *div) {
    float s = 0;
    int64_t cnt = 0;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        int64_t ih = oh * g->sh - g->ph + kh * g->dh;
        if (ih < 0 || ih >= g->h) continue;
        for (int64_t kw = 0; kw < g->kw; kw++) {
            int64_t iw = ow * g->sw - g->pw + kw * g->dw;
            if (iw < 0 || iw >= g->w) continue;
            if (plane) s += plane[ih * x->sh + iw * x->sw];
            cnt++;
        }
    }
    *div = count_pad ? (float)(g->kh * g->kw) : (float)cnt;
    return s;
}

/* v replaces best as the window's max: greater, or the first NaN. Without branches: on
 * random data the comparisons are coin flips, and mispredicted branches cost more than the
 * pooling itself. */
static inline int beats(float v, float best) { return (v > best) | ((v != v) & (best == best)); }

/* Max of the window at w0 (rows rh apart, columns rw apart) and its position bh * kw + bw. */
static inline float window_max(const float *w0, int64_t rh, int64_t rw, int64_t kh, int64_t kw,
                               int64_t *bh, int64_t *bw) {
    float best = w0[0];
    int64_t h = 0, w = 0;
    if (kh == 2 && kw == 2) {
        float v1 = w0[rw], v2 = w0[rh], v3 = w0[rh + rw];
        int c = beats(v1, best);
        best = c ? v1 : best; w = c ? 1 : w;
        c = beats(v2, best);
        best = c ? v2 : best; h = c ? 1 : h; w = c ? 0 : w;
        c = beats(v3, best);
        best = c ? v3 : best; h = c ? 1 : h; w = c ? 1 : w;
    } else {
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) {
                float v = w0[i * rh + j * rw];
                int c = beats(v, best);
                best = c ? v : best; h = c ? i : h; w = c ? j : w;
            }
    }
    *bh = h;
    *bw = w;
    return best;
}

/* Max and position (0..3, row-major) of n 2x2 windows whose values are u[0..3][o], as
 * straight-line selects the compiler vectorises. The rule of beats(). */
static void max4(float (*restrict u)[64], int n, float *restrict best, int *restrict pos) {
    for (int o = 0; o < n; o++) {
        float v1 = u[1][o], v2 = u[2][o], v3 = u[3][o], m = u[0][o];
        int k = 0;
        bool c;   /* this spelling of beats() is the one gcc 12 vectorises */
        c = v1 > m || (isnan(v1) && !isnan(m)); m = c ? v1 : m; k = c ? 1 : k;
        c = v2 > m || (isnan(v2) && !isnan(m)); m = c ? v2 : m; k = c ? 2 : k;
        c = v3 > m || (isnan(v3) && !isnan(m)); m = c ? v3 : m; k = c ? 3 : k;
        best[o] = m;
        pos[o] = k;
    }
}

/* The 2x2 stride-2 max pool of one plane, the common case, in chunks of 64 windows taken
 * in output order across rows: the windows' values are first copied to four arrays so that
 * max4 runs on full vectors (a row of an MNIST map has only 13 or 5 windows, too few for
 * the vector loop, and scalar a window cost ~20 cycles of mispredicted compares). Windows
 * do not overlap and cover the plane but for an odd last row or column, so INPUT_GRAD
 * writes each window whole (the gradient at its max, zeros around) and zeros the rest: dx
 * is written once, not zeroed and then scattered into. `positive`: windows whose max is not
 * > 0 give 0 (see conv.h). */
static void max_plane_2x2(const float *pa, const t4 *a, const float *pb, const t4 *b,
                          const geo *g, int mode, bool positive, float *py) {
    enum { CH = 64 };
    float u[4][CH], m[CH];
    int k[CH];
    int64_t nq = g->oh * g->ow, oh = 0, ow = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += CH) {
        int n = (int)(nq - q0 < CH ? nq - q0 : CH);
        int64_t oh0 = oh, ow0 = ow;
        for (int j = 0; j < n; j++) {
            const float *r0 = pa + 2 * oh * a->sh + 2 * ow * a->sw, *r1 = r0 + a->sh;
            u[0][j] = r0[0]; u[1][j] = r0[a->sw]; u[2][j] = r1[0]; u[3][j] = r1[a->sw];
            if (++ow == g->ow) { ow = 0; oh++; }
        }
        max4(u, n, m, k);
        if (mode == LZ_WIN_FORWARD) {
            memcpy(py + q0, m, (size_t)n * sizeof *m);
            continue;
        }
        oh = oh0;
        ow = ow0;
        for (int j = 0; j < n; j++) {
            int64_t ih = 2 * oh + (k[j] >> 1), iw = 2 * ow + (k[j] & 1);
            bool on = !positive || m[j] > 0;
            if (mode == LZ_WIN_GATHER) {
                py[q0 + j] = on ? pb[ih * b->sh + iw * b->sw] : 0.0f;
            } else {
                float v = on ? pb[oh * b->sh + ow * b->sw] : 0.0f;
                float *d0 = py + 2 * oh * g->w + 2 * ow, *d1 = d0 + g->w;
                d0[0] = k[j] == 0 ? v : 0.0f;
                d0[1] = k[j] == 1 ? v : 0.0f;
                d1[0] = k[j] == 2 ? v : 0.0f;
                d1[1] = k[j] == 3 ? v : 0.0f;
            }
            if (++ow == g->ow) { ow = 0; oh++; }
        }
    }
    if (mode != LZ_WIN_INPUT_GRAD) return;
    for (int64_t ih = 0; ih < 2 * g->oh && g->w > 2 * g->ow; ih++)   /* odd last column */
        for (int64_t iw = 2 * g->ow; iw < g->w; iw++) py[ih * g->w + iw] = 0;
    for (int64_t ih = 2 * g->oh; ih < g->h; ih++)                      /* odd last row */
        memset(py + ih * g->w, 0, (size_t)g->w * 4);
}

#ifdef __AVX512F__
/* The 2x2 stride-2 pool of one plane with dense rows (x, and dy or h, with unit column
 * strides), 16 windows at a time in AVX-512 registers: a window row pair is loaded as it
 * lies, split into the windows' four corners by permutes, and INPUT_GRAD's two dx rows are
 * put back together the same way, so every load and store is a whole vector (the chunked
 * version above stores dx four floats a window, which cost more than the rest of a CNN's
 * pooling). Same rule as max4: first max in row-major order, a NaN wins. */
static void max_plane_2x2_v(const float *pa, const t4 *a, const float *pb, const t4 *b,
                            const geo *g, int mode, bool positive, float *py) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const float *r0 = pa + 2 * oh * a->sh, *r1 = r0 + a->sh;
        for (int64_t ow = 0; ow < g->ow; ow += 16) {
            int64_t cnt = g->ow - ow < 16 ? g->ow - ow : 16, nin = 2 * cnt;
            __mmask16 ma = (__mmask16)(nin >= 16 ? 0xffff : (1u << nin) - 1);
            __mmask16 mb = (__mmask16)(nin <= 16 ? 0 : (1u << (nin - 16)) - 1);
            __mmask16 mo = (__mmask16)((1u << cnt) - 1);
            const float *p0 = r0 + 2 * ow, *p1 = r1 + 2 * ow;
            __m512 x0 = _mm512_maskz_loadu_ps(ma, p0), x1 = _mm512_maskz_loadu_ps(mb, p0 + 16);
            __m512 y0 = _mm512_maskz_loadu_ps(ma, p1), y1 = _mm512_maskz_loadu_ps(mb, p1 + 16);
            __m512 u[4] = {_mm512_permutex2var_ps(x0, even, x1), _mm512_permutex2var_ps(x0, odd, x1),
                           _mm512_permutex2var_ps(y0, even, y1), _mm512_permutex2var_ps(y0, odd, y1)};
            __m512 m = u[0];
            __m512i k = _mm512_setzero_si512();
            for (int c = 1; c < 4; c++) {
                __mmask16 nan_m = _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
                __mmask16 win = _mm512_cmp_ps_mask(u[c], m, _CMP_GT_OQ) |
                                (_mm512_cmp_ps_mask(u[c], u[c], _CMP_UNORD_Q) & (__mmask16)~nan_m);
                m = _mm512_mask_mov_ps(m, win, u[c]);
                k = _mm512_mask_mov_epi32(k, win, _mm512_set1_epi32(c));
            }
            if (mode == LZ_WIN_FORWARD) {
                _mm512_mask_storeu_ps(py + oh * g->ow + ow, mo, m);
                continue;
            }
            __mmask16 on = positive ? _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ) : 0xffff;
            __mmask16 at[4];
            for (int c = 0; c < 4; c++)
                at[c] = _mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(c)) & on;
            if (mode == LZ_WIN_GATHER) {   /* h at the argmax, from h's own row pair */
                const float *h0 = pb + 2 * oh * b->sh + 2 * ow, *h1 = h0 + b->sh;
                __m512 a0 = _mm512_maskz_loadu_ps(ma, h0), a1 = _mm512_maskz_loadu_ps(mb, h0 + 16);
                __m512 c0 = _mm512_maskz_loadu_ps(ma, h1), c1 = _mm512_maskz_loadu_ps(mb, h1 + 16);
                __m512 v = _mm512_maskz_mov_ps(at[0], _mm512_permutex2var_ps(a0, even, a1));
                v = _mm512_mask_mov_ps(v, at[1], _mm512_permutex2var_ps(a0, odd, a1));
                v = _mm512_mask_mov_ps(v, at[2], _mm512_permutex2var_ps(c0, even, c1));
                v = _mm512_mask_mov_ps(v, at[3], _mm512_permutex2var_ps(c0, odd, c1));
                _mm512_mask_storeu_ps(py + oh * g->ow + ow, mo, v);
                continue;
            }
            __m512 v = _mm512_maskz_loadu_ps(mo, pb + oh * b->sh + ow);
            __m512 e[4];
            for (int c = 0; c < 4; c++) e[c] = _mm512_maskz_mov_ps(at[c], v);
            float *d0 = py + 2 * oh * g->w + 2 * ow, *d1 = d0 + g->w;
            _mm512_mask_storeu_ps(d0, ma, _mm512_permutex2var_ps(e[0], lo, e[1]));
            _mm512_mask_storeu_ps(d0 + 16, mb, _mm512_permutex2var_ps(e[0], hi, e[1]));
            _mm512_mask_storeu_ps(d1, ma, _mm512_permutex2var_ps(e[2], lo, e[3]));
            _mm512_mask_storeu_ps(d1 + 16, mb, _mm512_permutex2var_ps(e[2], hi, e[3]));
        }
    }
    if (mode != LZ_WIN_INPUT_GRAD) return;
    for (int64_t ih = 0; ih < 2 * g->oh && g->w > 2 * g->ow; ih++)   /* odd last column */
        for (int64_t iw = 2 * g->ow; iw < g->w; iw++) py[ih * g->w + iw] = 0;
    for (int64_t ih = 2 * g->oh; ih < g->h; ih++)                      /* odd last row */
        memset(py + ih * g->w, 0, (size_t)g->w * 4);
}
#endif

/* Max pooling of one plane when every window lies inside it (no padding): the generic loop's
 * bounds checks, branches and division of the flat argmax back into (ih, iw) per window made
 * the pools of an MNIST CNN cost about a third of its training step. The same first-max /
 * NaN-wins rule as argmax_window. Modes as in pool_kernel; py is the plane's output. */
static void max_plane_inside(const float *pa, const t4 *a, const float *pb, const t4 *b,
                             const geo *g, int mode, bool positive, float *py) {
    int64_t rh = g->dh * a->sh, rw = g->dw * a->sw, bh, bw;
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const float *row = pa + oh * g->sh * a->sh;
        float *yr = py + oh * g->ow;
        int64_t step = g->sw * a->sw;
        if (mode == LZ_WIN_FORWARD) {
            for (int64_t ow = 0; ow < g->ow; ow++)
                yr[ow] = window_max(row + ow * step, rh, rw, g->kh, g->kw, &bh, &bw);
        } else {
            for (int64_t ow = 0; ow < g->ow; ow++) {
                float mx = window_max(row + ow * step, rh, rw, g->kh, g->kw, &bh, &bw);
                bool on = !positive || mx > 0;
                int64_t ih = oh * g->sh + bh * g->dh, iw = ow * g->sw + bw * g->dw;
                if (mode == LZ_WIN_GATHER) yr[ow] = on ? pb[ih * b->sh + iw * b->sw] : 0.0f;
                else if (on) py[ih * g->w + iw] += pb[oh * b->sh + ow * b->sw];
            }
        }
    }
}

static int pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p, bool is_max) {
    lz_window win = lz_window_of(p);
    geo g = geo_of(&win);
    int mode = win.mode;
    bool count_pad = win.count_pad != 0;
    t4 a = t4_of(in[0]), b = mode != LZ_WIN_FORWARD && is_max ? t4_of(in[1]) : (t4){0};
    float *y = lz_elem_ptr(out);
    int64_t planes = out->shape[0] * out->shape[1], ohw = g.oh * g.ow, hw = g.h * g.w;
    int64_t kk = g.kh * g.kw;
    lz_stats_add(1, (uint64_t)(planes * (2 * hw + ohw)) * 4, 0);
    bool scatter = mode == LZ_WIN_INPUT_GRAD;
    bool positive = is_max && win.positive && mode != LZ_WIN_FORWARD;
    bool inside = is_max && !g.ph && !g.pw && !win.pad_hi[0] && !win.pad_hi[1] && g.kh > 0 &&
                  g.kw > 0;
    bool two = inside && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.dh == 1 &&
               g.dw == 1;
    if (scatter && !two) memset(y, 0, (size_t)(planes * hw) * 4);   /* 2x2 writes dx whole */
    if (inside) {
        #pragma omp parallel for num_threads(threads_for(planes * ohw * kk)) schedule(static)
        for (int64_t t = 0; t < planes; t++) {
            int64_t n = t / out->shape[1], c = t % out->shape[1];
            const float *pa = a.p + n * a.sn + c * a.sc, *pb = b.p ? b.p + n * b.sn + c * b.sc : NULL;
            float *py = y + t * (scatter ? hw : ohw);
#ifdef __AVX512F__
            if (two && a.sw == 1 && (mode == LZ_WIN_FORWARD || b.sw == 1)) {
                max_plane_2x2_v(pa, &a, pb, &b, &g, mode, positive, py);
                continue;
            }
#endif
            if (two) max_plane_2x2(pa, &a, pb, &b, &g, mode, positive, py);
            else max_plane_inside(pa, &a, pb, &b, &g, mode, positive, py);
        }
        return 0;
    }
    #pragma omp parallel for num_threads(threads_for(planes * ohw * kk)) schedule(static)
    for (int64_t t = 0; t < planes; t++) {
        int64_t n = t / out->shape[1], c = t % out->shape[1];
        const float *pa = a.p + n * a.sn + c * a.sc;
        const float *pb = b.p ? b.p + n * b.sn + c * b.sc : NULL;
        float *py = y + t * (scatter ? hw : ohw);
        for (int64_t oh = 0; oh < g.oh; oh++)
            for (int64_t ow = 0; ow < g.ow; ow++) {
                int64_t k = oh * g.ow + ow;
                if (is_max) {
                    int64_t i = argmax_window(pa, &a, &g, oh, ow);
                    int64_t ih = i / (g.w ? g.w : 1), iw = i - ih * g.w;
                    if (i >= 0 && positive && !(pa[ih * a.sh + iw * a.sw] > 0)) i = -1;
                    if (mode == LZ_WIN_FORWARD)
                        py[k] = i < 0 ? -INFINITY : pa[ih * a.sh + iw * a.sw];
                    else if (mode == LZ_WIN_GATHER)
                        py[k] = i < 0 ? 0 : pb[ih * b.sh + iw * b.sw];
                    else if (i >= 0)
                        py[i] += pb[oh * b.sh + ow * b.sw];
                } else if (mode == LZ_WIN_FORWARD) {
                    float div;
                    float s = window_sum(pa, &a, &g, oh, ow, count_pad, &div);
                    py[k] = div > 0 ? s / div : 0;
                } else {        /* dx[i] += dy[k] / the window's divisor */
                    float div, d = pa[oh * a.sh + ow * a.sw];
                    window_sum(NULL, &a, &g, oh, ow, count_pad, &div);
                    if (!(div > 0)) continue;
                    d /= div;
                    for (int64_t kh = 0; kh < g.kh; kh++) {
                        int64_t ih = oh * g.sh - g.ph + kh * g.dh;
                        if (ih < 0 || ih >= g.h) continue;
                        for (int64_t kw = 0; kw < g.kw; kw++) {
                            int64_t iw = ow * g.sw - g.pw + kw * g.dw;
                            if (iw >= 0 && iw < g.w) py[ih * g.w + iw] += d;
                        }
                    }
                }
            }
    }
    return 0;
}

static int max_pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return pool_kernel(out, in, p, true);
}

static int avg_pool_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return pool_kernel(out, in, p, false);
}

void cpu_register_pool(void) {
    lz_prims[LZ_P_POOL_MAX].cpu = max_pool_kernel;
    lz_prims[LZ_P_POOL_AVG].cpu = avg_pool_kernel;
}
