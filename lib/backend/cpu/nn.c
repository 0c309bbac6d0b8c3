/* Row kernels: softmax, log-softmax (any axis), layer norm and RMS norm (last axis).
 *
 * A row is every element along the axis for one index of the other dims. Rows are
 * independent; the driver (run_rows) picks one of three paths by layout:
 *
 *   direct  the row is contiguous in the input and the output (the axis is last, the input
 *           contiguous along it): a row function makes three passes over it in place
 *           (max / exp and sum / scale; mean / variance / normalise), the row staying in
 *           L1/L2 between passes. No copies.
 *   columns the axis is not last and the rows' innermost other dim is contiguous (a
 *           contiguous array, softmax over axis 0 or 1 of 3): the same passes vectorised
 *           across up to COLS_MAX neighbouring rows, reading whole contiguous runs.
 *   panels  anything else (transposed or strided inputs): PANEL neighbouring rows are
 *           gathered into per-thread scratch, the row function runs there, and the results
 *           are written (scattered if need be) to the output.
 * Rows are visited in the order that reads the input most sequentially (other dims sorted
 * by input stride, smallest innermost), in parallel when the array is large enough.
 *
 * Why not permute the axis last with a contiguous copy, run the direct path and permute
 * back: that costs one more read and write of the whole array through memory (the
 * elementwise engine's transposing copy), and leaves a non-contiguous result.
 * bench/bench_nn.c measures both (softmax_axis0_* lines).
 *
 * Special values (softmax, log-softmax): -inf entries (masks) give exact 0 / -inf; a row
 * holding a NaN or a +inf, or only -inf (fully masked), gives NaN everywhere, as PyTorch
 * and NumPy do. Norms: sums in double, so a mean offset of 1e4 costs no precision. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "vmath.h"

void cpu_register_attention(void);

typedef void (*row_fn)(const float *x, float *y, int64_t n, const lz_params *p,
                       const float *w, const float *b);
typedef void (*col_fn)(const float *x, int64_t sx, float *y, int64_t sy, int64_t n,
                       int64_t c, float *tmp);

/* ---- row functions: x and y may be the same row ---- */

/* Max of a row and whether it holds a NaN. */
static inline float row_max(const float *x, int64_t n, int *nan) {
    float m = -INFINITY;
    int bad = 0;
    #pragma omp simd reduction(max:m) reduction(|:bad)
    for (int64_t i = 0; i < n; i++) {
        m = x[i] > m ? x[i] : m;
        bad |= x[i] != x[i];
    }
    *nan = bad;
    return m;
}

/* A row with a NaN, a +inf, or only -inf: every result is NaN, as in PyTorch and NumPy
 * (x - max is NaN somewhere, and the sum carries it to every element). */
static void fill_nan(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = NAN;
}

static void softmax_row(const float *x, float *y, int64_t n, const lz_params *p,
                        const float *w, const float *b) {
    (void)p; (void)w; (void)b;
    int nan;
    float m = row_max(x, n, &nan);
    if (nan || !isfinite(m)) { fill_nan(y, n); return; }
    float s = 0;
    #pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < n; i++) {
        float e = lz_expf(x[i] - m);
        y[i] = e;
        s += e;
    }
    float r = 1.0f / s;   /* s >= 1: the max contributes exp(0) */
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] *= r;
}

static void log_softmax_row(const float *x, float *y, int64_t n, const lz_params *p,
                            const float *w, const float *b) {
    (void)p; (void)w; (void)b;
    int nan;
    float m = row_max(x, n, &nan);
    if (nan || !isfinite(m)) { fill_nan(y, n); return; }
    float s = 0;
    #pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < n; i++) s += lz_expf(x[i] - m);
    /* (x - m) - log(s), not x - (m + log(s)): near the max, x - m is exact, while m + log(s)
     * would round to the ulp of m (1e-3 for logits of 1e4) */
    float c = logf(s);
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - c;
}

/* ---- column functions: softmax along k of a block x[k * sx + j], j < c unit-stride ----
 * The same three passes, vectorised across the c columns instead of along the row, so a
 * non-last axis is read in whole contiguous runs (no transposition). tmp: 2 * c floats. */

/* Per column max (m) and a flag (bad: 1 for a NaN, +inf, or only -inf: NaN results). */
static void cols_max(const float *x, int64_t sx, int64_t n, int64_t c, float *m, float *bad) {
    for (int64_t j = 0; j < c; j++) { m[j] = -INFINITY; bad[j] = 0; }
    for (int64_t k = 0; k < n; k++) {
        const float *xk = x + k * sx;
        #pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float v = xk[j];
            m[j] = v > m[j] ? v : m[j];
            bad[j] = v != v ? 1.0f : bad[j];
        }
    }
    for (int64_t j = 0; j < c; j++) if (!isfinite(m[j])) bad[j] = 1;
}

static void softmax_cols(const float *x, int64_t sx, float *y, int64_t sy, int64_t n,
                         int64_t c, float *tmp) {
    float *m = tmp, *s = tmp + c;
    cols_max(x, sx, n, c, m, s);
    for (int64_t j = 0; j < c; j++) s[j] = s[j] ? NAN : 0.0f;   /* NaN sums poison bad columns */
    for (int64_t k = 0; k < n; k++) {
        const float *xk = x + k * sx;
        float *yk = y + k * sy;
        #pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float e = lz_expf(xk[j] - m[j]);
            yk[j] = e;
            s[j] += e;
        }
    }
    for (int64_t j = 0; j < c; j++) s[j] = 1.0f / s[j];
    for (int64_t k = 0; k < n; k++) {
        float *yk = y + k * sy;
        #pragma omp simd
        for (int64_t j = 0; j < c; j++) yk[j] *= s[j];
    }
}

static void log_softmax_cols(const float *x, int64_t sx, float *y, int64_t sy, int64_t n,
                             int64_t c, float *tmp) {
    float *m = tmp, *s = tmp + c;
    cols_max(x, sx, n, c, m, s);
    for (int64_t j = 0; j < c; j++) s[j] = s[j] ? NAN : 0.0f;
    for (int64_t k = 0; k < n; k++) {
        const float *xk = x + k * sx;
        #pragma omp simd
        for (int64_t j = 0; j < c; j++) s[j] += lz_expf(xk[j] - m[j]);
    }
    for (int64_t j = 0; j < c; j++) s[j] = logf(s[j]);
    for (int64_t k = 0; k < n; k++) {
        const float *xk = x + k * sx;
        float *yk = y + k * sy;
        #pragma omp simd
        for (int64_t j = 0; j < c; j++) yk[j] = (xk[j] - m[j]) - s[j];
    }
}

/* Sums in double: a mean of 1e4-sized values stays exact to float precision, and the
 * second pass over (x - mean) gives the variance without cancellation. */
static void layer_norm_row(const float *x, float *y, int64_t n, const lz_params *p,
                           const float *w, const float *b) {
    double s = 0;
    #pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n, q = 0;
    #pragma omp simd reduction(+:q)
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        q += d * d;
    }
    float r = (float)(1.0 / sqrt(q / (double)n + p->f[0]));
    /* x - mean in float: mean split into hi + lo so that the subtraction keeps the bits a
     * single float mean would lose (x near 1e4 has an ulp of 1e-3) */
    float mh = (float)mean, ml = (float)(mean - (double)mh);
    if (w && b) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - mh) - ml) * r * w[i] + b[i];
    } else if (w) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - mh) - ml) * r * w[i];
    } else if (b) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - mh) - ml) * r + b[i];
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - mh) - ml) * r;
    }
}

static void rms_norm_row(const float *x, float *y, int64_t n, const lz_params *p,
                         const float *w, const float *b) {
    (void)b;
    double q = 0;
    #pragma omp simd reduction(+:q)
    for (int64_t i = 0; i < n; i++) q += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(q / (double)n + p->f[0]));
    if (w) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * r;
    }
}

/* ---- the driver ---- */

/* Rows per panel, and the scratch of a panel (floats). A transposing gather reads PANEL
 * neighbouring floats per element of the row; when rows are far apart in memory every such
 * read is on a new page, so wide panels (256 bytes) cut the TLB misses that bound it. */
#define PANEL 64
#define PANEL_FLOATS (1 << 20)

/* The rows of an array: every index of the dims other than `axis`. */
typedef struct {
    int64_t n, s_in, s_out;        /* row length and strides along the axis */
    int nd;                        /* other dims (size > 1), largest input stride first */
    int64_t size[LZ_MAX_DIMS], in_st[LZ_MAX_DIMS], out_st[LZ_MAX_DIMS];
    int64_t rows;
} rows_layout;

static void rows_init(rows_layout *r, const lz_array *in, const lz_array *out, int axis) {
    memset(r, 0, sizeof *r);
    r->n = in->ndim ? in->shape[axis] : 1;
    r->s_in = in->ndim && r->n > 1 ? in->strides[axis] : 1;   /* a row of 1 is contiguous */
    r->s_out = out->ndim && r->n > 1 ? out->strides[axis] : 1;
    r->rows = 1;
    for (int d = 0; d < in->ndim; d++) {
        if (d == axis || in->shape[d] == 1) continue;
        /* insertion by decreasing |input stride| */
        int64_t st = in->strides[d], ast = st < 0 ? -st : st;
        int k = r->nd++;
        while (k > 0 && llabs(r->in_st[k - 1]) < ast) {
            r->size[k] = r->size[k - 1];
            r->in_st[k] = r->in_st[k - 1];
            r->out_st[k] = r->out_st[k - 1];
            k--;
        }
        r->size[k] = in->shape[d];
        r->in_st[k] = st;
        r->out_st[k] = out->strides[d];
        r->rows *= in->shape[d];
    }
}

/* Input and output offsets of rows [r0, r0 + w). */
static void rows_offsets(const rows_layout *r, int64_t r0, int64_t w, int64_t *in_off,
                         int64_t *out_off) {
    int64_t idx[LZ_MAX_DIMS], io = 0, oo = 0, rem = r0;
    for (int d = r->nd - 1; d >= 0; d--) {
        idx[d] = rem % r->size[d];
        rem /= r->size[d];
        io += idx[d] * r->in_st[d];
        oo += idx[d] * r->out_st[d];
    }
    for (int64_t j = 0; j < w; j++) {
        in_off[j] = io;
        out_off[j] = oo;
        for (int d = r->nd - 1; d >= 0; d--) {   /* next index, with carries */
            io += r->in_st[d];
            oo += r->out_st[d];
            if (++idx[d] < r->size[d]) break;
            io -= idx[d] * r->in_st[d];
            oo -= idx[d] * r->out_st[d];
            idx[d] = 0;
        }
    }
}

/* Scratch rows are ld floats apart, ld = n rounded up to a cache line plus one line: rows
 * a power of two apart would all fall in the same L1 set and evict each other at every
 * element of the transposing gather/scatter. */
static int64_t scratch_ld(int64_t n) { return (n + 15) / 16 * 16 + 16; }

/* Rows of w floats at x + off[j] with stride s -> scratch rows of n floats, ld apart. */
static void gather(float *buf, int64_t ld, const float *x, const int64_t *off, int64_t w,
                   int64_t n, int64_t s) {
    if (s == 1) {
        for (int64_t j = 0; j < w; j++) memcpy(buf + j * ld, x + off[j], (size_t)n * 4);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < w; j++) buf[j * ld + k] = x[off[j] + k * s];
}

static void scatter(float *y, const int64_t *off, int64_t s, const float *buf, int64_t ld,
                    int64_t w, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < w; j++) y[off[j] + k * s] = buf[j * ld + k];
}

#define COLS_MAX 2048

/* The column path: rows whose innermost other dim is unit-stride in the input and the
 * output (a contiguous array, axis not last). Blocks of up to COLS_MAX such rows go to a
 * col_fn. */
static void run_cols(const rows_layout *r, const float *x, float *y, col_fn f, int threads) {
    int64_t inner = r->size[r->nd - 1], outer = r->rows / inner;
    /* enough blocks for the threads, none narrower than 64 columns (whole cache lines) */
    int64_t want = (threads + outer - 1) / outer, cw = (inner + want - 1) / want;
    cw = (cw + 15) / 16 * 16;
    cw = cw < 64 ? 64 : cw > COLS_MAX ? COLS_MAX : cw;
    cw = cw > inner ? inner : cw;
    int64_t nchunks = (inner + cw - 1) / cw, tasks = outer * nchunks;
    if (threads > tasks) threads = (int)tasks;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        float tmp[2 * COLS_MAX];
        int64_t o = t / nchunks, c0 = t % nchunks * cw, io, oo;
        int64_t c = inner - c0 < cw ? inner - c0 : cw;
        rows_offsets(r, o * inner, 1, &io, &oo);
        f(x + io + c0, r->s_in, y + oo + c0, r->s_out, r->n, c, tmp);
    }
}

/* Runs f (or fc, when not NULL and the layout suits it) over every row of in along axis
 * into out (contiguous). extra: bytes of weights, for the counters. */
static int run_rows(lz_array *out, lz_array *in, int axis, row_fn f, col_fn fc,
                    const lz_params *p, const float *w, const float *b, uint64_t extra) {
    rows_layout r;
    rows_init(&r, in, out, axis);
    int64_t total = r.rows * r.n;
    lz_stats_add(1, 2 * (uint64_t)total * 4 + extra, 0);
    if (!total) return 0;
    const float *x = lz_elem_ptr(in);
    float *y = lz_elem_ptr(out);
    int threads = total >= 32768 ? cpu_threads() : 1;
    bool direct = r.s_in == 1 && r.s_out == 1;
    if (!direct && fc && r.nd && r.in_st[r.nd - 1] == 1 && r.out_st[r.nd - 1] == 1) {
        run_cols(&r, x, y, fc, threads);
        return 0;
    }
    int64_t ld = scratch_ld(r.n);
    int64_t pw = direct ? PANEL : PANEL_FLOATS / ld;
    pw = pw < 1 ? 1 : pw > PANEL ? PANEL : pw > 16 ? pw / 16 * 16 : pw;   /* whole lines */
    int64_t fair = (r.rows + 4 * threads - 1) / (4 * threads);   /* few long rows: split */
    if (threads > 1 && pw > fair) pw = fair;
    int64_t npanels = (r.rows + pw - 1) / pw;
    if (threads > npanels) threads = (int)npanels;
    lz_buffer *scratch = NULL;
    if (!direct && !(scratch = lz_buffer_alloc((size_t)threads * (size_t)(pw * ld) * 4)))
        return -1;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t pi = 0; pi < npanels; pi++) {
        int64_t r0 = pi * pw, nw = r.rows - r0 < pw ? r.rows - r0 : pw;
        int64_t in_off[PANEL], out_off[PANEL];
        rows_offsets(&r, r0, nw, in_off, out_off);
        if (direct) {
            for (int64_t j = 0; j < nw; j++) f(x + in_off[j], y + out_off[j], r.n, p, w, b);
            continue;
        }
        float *buf = (float *)scratch->data + (int64_t)omp_get_thread_num() * pw * ld;
        gather(buf, ld, x, in_off, nw, r.n, r.s_in);
        for (int64_t j = 0; j < nw; j++) {
            float *row = buf + j * ld;
            f(row, r.s_out == 1 ? y + out_off[j] : row, r.n, p, w, b);
        }
        if (r.s_out != 1) scatter(y, out_off, r.s_out, buf, ld, nw, r.n);
    }
    lz_buffer_release(scratch);
    return 0;
}

/* ---- kernels ---- */

static int softmax_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return run_rows(out, in[0], (int)p->i[0], softmax_row, softmax_cols, p, NULL, NULL, 0);
}

static int log_softmax_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return run_rows(out, in[0], (int)p->i[0], log_softmax_row, log_softmax_cols, p, NULL, NULL, 0);
}

static int layer_norm_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    int k = 1;
    const float *w = p->i[0] ? lz_elem_ptr(in[k++]) : NULL;
    const float *b = p->i[1] ? lz_elem_ptr(in[k++]) : NULL;
    uint64_t extra = (uint64_t)(k - 1) * (uint64_t)out->shape[out->ndim - 1] * 4;
    return run_rows(out, in[0], out->ndim - 1, layer_norm_row, NULL, p, w, b, extra);
}

static int rms_norm_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const float *w = p->i[0] ? lz_elem_ptr(in[1]) : NULL;
    uint64_t extra = p->i[0] ? (uint64_t)out->shape[out->ndim - 1] * 4 : 0;
    return run_rows(out, in[0], out->ndim - 1, rms_norm_row, NULL, p, w, NULL, extra);
}

void cpu_register_nn(void) {
    lz_prims[LZ_P_SOFTMAX].cpu = softmax_kernel;
    lz_prims[LZ_P_LOG_SOFTMAX].cpu = log_softmax_kernel;
    lz_prims[LZ_P_LAYER_NORM].cpu = layer_norm_kernel;
    lz_prims[LZ_P_RMS_NORM].cpu = rms_norm_kernel;
    lz_prims[LZ_P_NORM_GRAD].cpu = cpu_norm_grad;   /* norm_grad.c */
    cpu_register_attention();
}
