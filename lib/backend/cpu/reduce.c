/* Reductions: SUM, PROD, MAX, MIN over a set of axes, closing a fused elementwise group, and
 * the ARGMAX / ARGMIN kernels.
 *
 * A reduction node (params.i[0] = bitmask of reduced axes, shape = its input's with those
 * axes set to 1; see lib/ops/reduce.c) reads its input through the group's program over a
 * permuted index space [O, R, K]:
 *     O  kept axes, outer     (logical order)
 *     R  the reduced axes     (ordered by decreasing stride of the group's main leaf)
 *     K  kept axes, inner     (logical order; those whose stride is below every reduced one)
 * so the values of output o*K + k are the R values at flat indices (o*R + r)*K + k. Kept axes
 * never change relative order, so o*K + k is also the output's contiguous index. A "line"
 * (o, r) holds K consecutive values:
 *   K == 1         row reduction: each output is R consecutive values (sum of rows, all);
 *   1 < K <= tile  column reduction: lines are added into a vector of K partial outputs, so a
 *                  sum over axis 0 of [4096,1024] reads whole rows, never a column;
 *   K > tile       the same in blocks of columns (each block keeps its own partial vector).
 * Threads split the outputs when there are many, else the lines (each thread keeps partial
 * results for every output, merged in thread order at the end: deterministic for a given
 * thread count).
 *
 * Accuracy: float values accumulate in double (SUM and PROD), so a sum of 16M float32 values
 * keeps float32 accuracy. MAX / MIN propagate NaN. Integers accumulate in int64 with
 * wrap-around (computed unsigned: no UB on overflow). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"

enum { OP_SUM, OP_PROD, OP_MAX, OP_MIN };

/* ---- accumulation, float values into double accumulators ---- */

static double ident_f(int op) {
    return op == OP_SUM ? 0.0 : op == OP_PROD ? 1.0 : op == OP_MAX ? -INFINITY : INFINITY;
}

static double comb_f(int op, double a, double b) {
    switch (op) {
    case OP_SUM: return a + b;
    case OP_PROD: return a * b;
    case OP_MAX: return a != a || b != b ? NAN : a > b ? a : b;
    default: return a != a || b != b ? NAN : a < b ? a : b;
    }
}

/* Reduction of n consecutive values. */
static double seg_f(int op, const float *v, int64_t n) {
    if (op == OP_SUM) {
        double s = 0;
        #pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++) s += v[i];
        return s;
    }
    if (op == OP_PROD) {
        double s = 1;
        #pragma omp simd reduction(* : s)
        for (int64_t i = 0; i < n; i++) s *= v[i];
        return s;
    }
    float m = op == OP_MAX ? -INFINITY : INFINITY;
    int nan = 0;
    if (op == OP_MAX) {
        #pragma omp simd reduction(max : m) reduction(| : nan)
        for (int64_t i = 0; i < n; i++) { m = v[i] > m ? v[i] : m; nan |= v[i] != v[i]; }
    } else {
        #pragma omp simd reduction(min : m) reduction(| : nan)
        for (int64_t i = 0; i < n; i++) { m = v[i] < m ? v[i] : m; nan |= v[i] != v[i]; }
    }
    return nan ? NAN : m;
}

/* acc[k] = acc[k] op v[k], k < n. */
static void line_f(int op, double *acc, const float *v, int64_t n) {
    switch (op) {
    case OP_SUM:
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) acc[k] += v[k];
        break;
    case OP_PROD:
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) acc[k] *= v[k];
        break;
    case OP_MAX:   /* a NaN accumulator stays NaN: neither test replaces it */
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) acc[k] = v[k] > acc[k] || v[k] != v[k] ? v[k] : acc[k];
        break;
    default:
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) acc[k] = v[k] < acc[k] || v[k] != v[k] ? v[k] : acc[k];
        break;
    }
}

/* acc[k] = acc[k] op v[0][k] op ... op v[n-1][k]: n <= 4 lines in one pass over acc (a sum
 * adds the lines pairwise in double first, so acc is read and written once per 4 lines). */
static void lines4_f(int op, double *acc, const float *const *v, int n, int64_t K) {
    if (op == OP_SUM && n == 4) {
        const float *a = v[0], *b = v[1], *c = v[2], *d = v[3];
        #pragma omp simd
        for (int64_t k = 0; k < K; k++)
            acc[k] += ((double)a[k] + (double)b[k]) + ((double)c[k] + (double)d[k]);
        return;
    }
    for (int j = 0; j < n; j++) line_f(op, acc, v[j], K);
}

/* acc[k] = acc[k] op v[j*K + k] for nl lines of K values. Narrow lines (K < 16) are first
 * folded into L >= 16 lanes (L a multiple of K, so lane t belongs to column t % K): one
 * vector loop instead of a short loop per line. */
static void lines_f(int op, double *acc, const float *v, int64_t nl, int64_t K) {
    if (K < 16 && nl > 1) {
        int64_t L = K * ((16 + K - 1) / K), n = nl * K, j = 0;
        double lane[32];
        for (int64_t t = 0; t < L; t++) lane[t] = ident_f(op);
        for (; j + L <= n; j += L) line_f(op, lane, v + j, L);
        line_f(op, lane, v + j, n - j);
        for (int64_t t = 0; t < L; t++) acc[t % K] = comb_f(op, acc[t % K], lane[t]);
        return;
    }
    int64_t j = 0;
    for (; j + 4 <= nl; j += 4) {
        const float *four[4] = {v + j * K, v + (j + 1) * K, v + (j + 2) * K, v + (j + 3) * K};
        lines4_f(op, acc, four, 4, K);
    }
    for (; j < nl; j++) line_f(op, acc, v + j * K, K);
}

/* ---- integer values (int64 registers) into int64 accumulators ---- */

static int64_t ident_i(int op) {
    return op == OP_SUM ? 0 : op == OP_PROD ? 1 : op == OP_MAX ? INT64_MIN : INT64_MAX;
}

static int64_t comb_i(int op, int64_t a, int64_t b) {
    switch (op) {
    case OP_SUM: return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_PROD: return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_MAX: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

static int64_t seg_i(int op, const int64_t *v, int64_t n) {
    uint64_t s = op == OP_PROD;
    int64_t m = ident_i(op);
    switch (op) {
    case OP_SUM:
        #pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++) s += (uint64_t)v[i];
        return (int64_t)s;
    case OP_PROD:
        for (int64_t i = 0; i < n; i++) s *= (uint64_t)v[i];
        return (int64_t)s;
    case OP_MAX:
        #pragma omp simd reduction(max : m)
        for (int64_t i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
        return m;
    default:
        #pragma omp simd reduction(min : m)
        for (int64_t i = 0; i < n; i++) m = v[i] < m ? v[i] : m;
        return m;
    }
}

static void lines_i(int op, int64_t *acc, const int64_t *v, int64_t nl, int64_t K) {
    for (int64_t j = 0; j < nl; j++, v += K)
        for (int64_t k = 0; k < K; k++) acc[k] = comb_i(op, acc[k], v[k]);
}

/* ---- the plan ---- */

typedef struct {
    int op, rep;
    lz_dtype out_t;
    char *out;                 /* output buffer */
    int64_t O, R, K;
    cpu_program prog;
} plan;

/* Accumulators are 8 bytes: double for rep F, int64 for rep I. */
static void acc_reset(const plan *p, void *acc, int64_t n) {
    if (p->rep == REP_F) {
        double *a = acc, v = ident_f(p->op);
        for (int64_t i = 0; i < n; i++) a[i] = v;
    } else {
        int64_t *a = acc, v = ident_i(p->op);
        for (int64_t i = 0; i < n; i++) a[i] = v;
    }
}

static void acc_merge(const plan *p, void *acc, const void *x, int64_t n) {
    if (p->rep == REP_F) {
        double *a = acc;
        const double *b = x;
        for (int64_t i = 0; i < n; i++) a[i] = comb_f(p->op, a[i], b[i]);
    } else {
        int64_t *a = acc;
        const int64_t *b = x;
        for (int64_t i = 0; i < n; i++) a[i] = comb_i(p->op, a[i], b[i]);
    }
}

/* Writes n accumulators to outputs [at, at+n). tmp: LZ_TILE floats. */
static void acc_store(const plan *p, int64_t at, const void *acc, int64_t n, float *tmp) {
    size_t es = lz_dtype_size(p->out_t);
    char *dst = p->out + at * (int64_t)es;
    if (p->rep == REP_I) { cpu_store(dst, p->out_t, REP_I, acc, n); return; }
    const double *a = acc;
    if (p->out_t == LZ_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = (float)a[i];
        return;
    }
    for (int64_t i = 0; i < n; i += LZ_TILE) {
        int64_t m = n - i < LZ_TILE ? n - i : LZ_TILE;
        for (int64_t j = 0; j < m; j++) tmp[j] = (float)a[i + j];
        cpu_store(dst + i * (int64_t)es, p->out_t, REP_F, tmp, m);
    }
}

static int64_t iabs(int64_t x) { return x < 0 ? -x : x; }

/* The leaf that decides the walk order: the one reading the most distinct elements. */
static const int64_t *main_strides(const lz_fused *g) {
    int best = 0, score = -1;
    for (int j = 0; j < g->nleaves; j++) {
        const lz_array *l = g->leaves[j];
        int s = 0;
        for (int d = 0; d < l->ndim; d++) s += l->shape[d] > 1 && l->strides[d] != 0;
        s = s * 16 + (int)lz_dtype_size(l->dtype);
        if (s > score) { score = s; best = j; }
    }
    return g->leaves[best]->strides;
}

static void make_plan(plan *p, const lz_fused *g) {
    const lz_array *in = g->out, *node = g->reduce;
    int nd = in->ndim;
    uint64_t mask = (uint64_t)node->params.i[0];
    const int64_t *st = main_strides(g);
    int perm[LZ_MAX_DIMS], np = 0, kept[LZ_MAX_DIMS], nk = 0, red[LZ_MAX_DIMS], nr = 0;
    for (int d = 0; d < nd; d++) {
        if (in->shape[d] == 1) perm[np++] = d;          /* size 1: placement is free */
        else if (mask >> d & 1) red[nr++] = d;
        else kept[nk++] = d;
    }
    /* reduced axes by decreasing stride (insertion sort, stable) */
    for (int i = 1; i < nr; i++)
        for (int j = i; j > 0 && iabs(st[red[j]]) > iabs(st[red[j - 1]]); j--) {
            int t = red[j]; red[j] = red[j - 1]; red[j - 1] = t;
        }
    int64_t smin = INT64_MAX;
    for (int i = 0; i < nr; i++) if (iabs(st[red[i]]) < smin) smin = iabs(st[red[i]]);
    int c = nk;   /* kept[c..] go inside the reduced axes */
    while (c > 0 && iabs(st[kept[c - 1]]) < smin) c--;
    p->O = p->R = p->K = 1;
    for (int i = 0; i < c; i++) { perm[np++] = kept[i]; p->O *= in->shape[kept[i]]; }
    for (int i = 0; i < nr; i++) { perm[np++] = red[i]; p->R *= in->shape[red[i]]; }
    for (int i = c; i < nk; i++) { perm[np++] = kept[i]; p->K *= in->shape[kept[i]]; }
    switch (node->prim) {
    case LZ_P_SUM: p->op = OP_SUM; break;
    case LZ_P_PROD: p->op = OP_PROD; break;
    case LZ_P_MAX: p->op = OP_MAX; break;
    default: p->op = OP_MIN; break;
    }
    p->rep = rep_of(in->dtype);
    p->out_t = node->dtype;
    p->out = node->buf->data;
    cpu_program_init(&p->prog, g, perm);
}

/* Per-thread memory: four program scratches (wide lines are fetched four at a time), a
 * vector of accumulators, staging tiles for stores. */
typedef struct { char *scratch; size_t ssz; void *acc; float *tmp; int64_t *itmp; } work;

static int work_alloc(work *w, const plan *p, int64_t nacc) {
    w->ssz = cpu_program_scratch(&p->prog);
    w->scratch = malloc(4 * w->ssz);
    w->acc = malloc((size_t)(nacc ? nacc : 1) * 8);
    w->tmp = malloc(LZ_TILE * sizeof(float));
    w->itmp = malloc(LZ_TILE * sizeof(int64_t));
    return w->scratch && w->acc && w->tmp && w->itmp ? 0 : -1;
}

static void work_free(work *w) { free(w->scratch); free(w->acc); free(w->tmp); free(w->itmp); }

/* q rows of R < 16 values: too short for a vector loop to pay. A NaN stays: neither test
 * replaces it. */
static void short_rows_f(int op, float *dst, const float *x, int64_t q, int64_t R) {
    for (int64_t j = 0; j < q; j++, x += R) {
        double s = x[0];
        switch (op) {
        case OP_SUM: for (int64_t r = 1; r < R; r++) s += x[r]; break;
        case OP_PROD: for (int64_t r = 1; r < R; r++) s *= x[r]; break;
        case OP_MAX: for (int64_t r = 1; r < R; r++) s = x[r] > s || x[r] != x[r] ? x[r] : s; break;
        default: for (int64_t r = 1; r < R; r++) s = x[r] < s || x[r] != x[r] ? x[r] : s; break;
        }
        dst[j] = (float)s;
    }
}

/* Outputs [o, o+q) from q whole rows of R values at v + i (K == 1), stored directly. */
static void rows_store(const plan *p, const void *v, int64_t i, int64_t q, int64_t o, work *w) {
    int64_t R = p->R;
    size_t es = lz_dtype_size(p->out_t);
    if (p->rep == REP_F) {
        const float *x = (const float *)v + i;
        float *dst = p->out_t == LZ_F32 ? (float *)p->out + o : w->tmp;
        if (R < 16) {
            short_rows_f(p->op, dst, x, q, R);
        } else {
            for (int64_t j = 0; j < q; j++) dst[j] = (float)seg_f(p->op, x + j * R, R);
        }
        if (dst == w->tmp) cpu_store(p->out + o * (int64_t)es, p->out_t, REP_F, w->tmp, q);
    } else {
        const int64_t *x = (const int64_t *)v + i;
        int64_t *dst = p->out_t == LZ_I64 ? (int64_t *)p->out + o : w->itmp;
        for (int64_t j = 0; j < q; j++) dst[j] = seg_i(p->op, x + j * R, R);
        if (dst == w->itmp) cpu_store(p->out + o * (int64_t)es, p->out_t, REP_I, w->itmp, q);
    }
}

/* Accumulates lines [l0, l1) (K <= LZ_TILE). With `part` (split lines) output o accumulates
 * in part + o*K and nothing is stored; otherwise w->acc holds the current output, stored and
 * reset after its last line. */
static void walk_lines(const plan *p, int64_t l0, int64_t l1, work *w, void *part) {
    int64_t K = p->K, R = p->R, lpt = LZ_TILE / K;
    for (int64_t l = l0; l < l1;) {
        if (lpt < 4) {   /* wide lines: one call each, up to four of one output per pass */
            int64_t o = l / R, nl = (o + 1) * R - l;
            if (nl > l1 - l) nl = l1 - l;
            if (nl > 4) nl = 4;
            const void *v[4];
            const float *vf[4];
            for (int j = 0; j < nl; j++)
                vf[j] = v[j] = cpu_program_run(&p->prog, (l + j) * K, K, w->scratch + j * w->ssz, NULL);
            char *acc = part ? (char *)part + o * K * 8 : w->acc;
            if (p->rep == REP_F) lines4_f(p->op, (double *)acc, vf, (int)nl, K);
            else for (int j = 0; j < nl; j++) lines_i(p->op, (int64_t *)acc, v[j], 1, K);
            l += nl;
            if (!part && l == (o + 1) * R) {
                acc_store(p, o * K, w->acc, K, w->tmp);
                acc_reset(p, w->acc, K);
            }
            continue;
        }
        int64_t nl = l1 - l < lpt ? l1 - l : lpt;
        const void *v = cpu_program_run(&p->prog, l * K, nl * K, w->scratch, NULL);
        for (int64_t i = 0; i < nl;) {
            int64_t o = (l + i) / R, end = (o + 1) * R - l;
            if (K == 1 && !part && (l + i) % R == 0 && nl - i >= R) {   /* whole short rows */
                int64_t q = (nl - i) / R;
                rows_store(p, v, i, q, o, w);
                i += q * R;
                continue;
            }
            if (end > nl) end = nl;
            char *acc = part ? (char *)part + o * K * 8 : w->acc;
            if (p->rep == REP_F) {
                const float *x = (const float *)v + i * K;
                if (K == 1) *(double *)acc = comb_f(p->op, *(double *)acc, seg_f(p->op, x, end - i));
                else lines_f(p->op, (double *)acc, x, end - i, K);
            } else {
                const int64_t *x = (const int64_t *)v + i * K;
                if (K == 1) *(int64_t *)acc = comb_i(p->op, *(int64_t *)acc, seg_i(p->op, x, end - i));
                else lines_i(p->op, (int64_t *)acc, x, end - i, K);
            }
            if (!part && l + end == (o + 1) * R) {
                acc_store(p, o * K, w->acc, K, w->tmp);
                acc_reset(p, w->acc, K);
            }
            i = end;
        }
        l += nl;
    }
}

/* Many outputs: threads take chunks of outputs. */
static int run_outputs(const plan *p, int threads) {
    int64_t O = p->O, R = p->R, nchunks = O < (int64_t)threads * 8 ? O : (int64_t)threads * 8;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        work w;
        int ok = work_alloc(&w, p, p->K) == 0;
        if (ok) acc_reset(p, w.acc, p->K);
        else {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            if (!ok) continue;
            int64_t o0 = c * O / nchunks, o1 = (c + 1) * O / nchunks;
            walk_lines(p, o0 * R, o1 * R, &w, NULL);
        }
        work_free(&w);
    }
    return failed ? -1 : 0;
}

/* Few outputs: threads split the lines, each with partial results for all outputs. */
static int run_split(const plan *p, int threads) {
    int64_t nout = p->O * p->K, nlines = p->O * p->R;
    char *parts = malloc((size_t)threads * (size_t)nout * 8);
    if (!parts) return -1;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        char *part = parts + (size_t)t * (size_t)nout * 8;
        acc_reset(p, part, nout);
        work w;
        if (work_alloc(&w, p, 0)) {
            #pragma omp atomic write
            failed = 1;
        } else {
            walk_lines(p, nlines * t / nt, nlines * (t + 1) / nt, &w, part);
        }
        work_free(&w);
        #pragma omp barrier
        #pragma omp single
        if (!failed) {
            for (int u = 1; u < nt; u++) acc_merge(p, parts, parts + (size_t)u * (size_t)nout * 8, nout);
            float tmp[LZ_TILE];
            acc_store(p, 0, parts, nout, tmp);
        }
    }
    free(parts);
    return failed ? -1 : 0;
}

/* K > LZ_TILE: units of (outer o, block of W columns), each summing its R lines. */
static int run_blocks(const plan *p, int threads) {
    int64_t K = p->K, R = p->R, W = LZ_TILE;
    if (p->O * ((K + W - 1) / W) < threads) {
        W = ((K + threads - 1) / threads + 63) / 64 * 64;
        if (W > LZ_TILE) W = LZ_TILE;
    }
    int64_t nkb = (K + W - 1) / W, units = p->O * nkb;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        work w;
        int ok = work_alloc(&w, p, W) == 0;
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            if (!ok) continue;
            int64_t o = u / nkb, k0 = (u % nkb) * W, m = K - k0 < W ? K - k0 : W;
            acc_reset(p, w.acc, m);
            for (int64_t r = 0; r < R; r += 4) {      /* m <= LZ_TILE: one call per row */
                int nr = R - r < 4 ? (int)(R - r) : 4;
                const void *v[4];
                const float *vf[4];
                for (int j = 0; j < nr; j++)
                    vf[j] = v[j] = cpu_program_run(&p->prog, (o * R + r + j) * K + k0, m,
                                                   w.scratch + j * w.ssz, NULL);
                if (p->rep == REP_F) lines4_f(p->op, (double *)w.acc, vf, nr, m);
                else for (int j = 0; j < nr; j++) lines_i(p->op, (int64_t *)w.acc, v[j], 1, m);
            }
            acc_store(p, o * K + k0, w.acc, m, w.tmp);
        }
        work_free(&w);
    }
    return failed ? -1 : 0;
}

int cpu_reduce(const lz_fused *g) {
    plan p;
    make_plan(&p, g);
    int64_t nout = p.O * p.K, n = nout * p.R;
    int rc = 0;
    if (nout == 0) {
        /* nothing to write */
    } else if (p.R == 0) {       /* empty reduction: the identity (constructors refuse MAX/MIN) */
        void *buf = malloc(LZ_TILE * 8);
        float tmp[LZ_TILE];
        if (!buf) rc = -1;
        else acc_reset(&p, buf, LZ_TILE);
        for (int64_t i = 0; i < nout && buf; i += LZ_TILE)
            acc_store(&p, i, buf, nout - i < LZ_TILE ? nout - i : LZ_TILE, tmp);
        free(buf);
    } else {
        int threads = cpu_group_threads(g, n);
        if (p.K > LZ_TILE) rc = run_blocks(&p, threads);
        else if (threads > 1 && p.O < 4 * (int64_t)threads) rc = run_split(&p, threads);
        else rc = run_outputs(&p, threads);
    }
    if (rc) {
        lz_fail("%s: out of memory in the reduction engine", lz_prims[g->reduce->prim].name);
        return -1;
    }
    uint64_t moved = (uint64_t)nout * lz_dtype_size(p.out_t);
    for (int j = 0; j < g->nleaves; j++) {       /* a broadcast scalar is read once */
        const lz_array *l = g->leaves[j];
        bool constant = true;
        for (int d = 0; d < l->ndim; d++) constant &= l->shape[d] == 1 || l->strides[d] == 0;
        moved += (uint64_t)(constant ? 1 : n) * lz_dtype_size(l->dtype);
    }
    lz_stats_add(1, moved, 0);
    lz_stats_add_fused((uint64_t)g->ninstr);
    return 0;
}

/* ---- ARGMAX / ARGMIN: params.i[0] = axis; out is int64 with the input's shape, that axis
 * set to 1. Inputs may have any layout. The first index wins ties and the first NaN wins
 * (NumPy's rule, for both). ---- */

typedef struct { float f; int64_t i; int64_t at; } pick;

static int better(int rep, int is_max, float xf, int64_t xi, const pick *b) {
    if (rep == REP_I) return is_max ? xi > b->i : xi < b->i;
    return (is_max ? xf > b->f : xf < b->f) || (xf != xf && b->f == b->f);
}

/* First k < n with x[k] == m, found with a vector loop (32-bit indices: n <= LZ_TILE). */
static int first_equal_f(const float *x, int n, float m) {
    int i = n;
    #pragma omp simd reduction(min : i)
    for (int k = 0; k < n; k++) i = x[k] == m && k < i ? k : i;
    return i;
}

static int first_equal_i(const int64_t *x, int n, int64_t m) {
    int i = n;
    #pragma omp simd reduction(min : i)
    for (int k = 0; k < n; k++) i = x[k] == m && k < i ? k : i;
    return i;
}

/* The pick of elements [a0, a1) of the line at base (stride sa); tmp holds LZ_TILE values.
 * Each tile is reduced with a vector loop first; only a tile that improves on the best so far
 * is searched for the first position of its best value. */
static pick scan_line(const lz_array *in, int is_max, const char *base, int64_t sa, int64_t a0,
                      int64_t a1, void *tmp) {
    int rep = rep_of(in->dtype), op = is_max ? OP_MAX : OP_MIN;
    pick b = {0, 0, -1};
    for (int64_t a = a0; a < a1; a += LZ_TILE) {
        int64_t n = a1 - a < LZ_TILE ? a1 - a : LZ_TILE, i = 0;
        const void *v = tmp;
        if (in->dtype == LZ_F32 && sa == 1) v = (const float *)base + a;
        else cpu_load(base, in->dtype, 1, &a1, &sa, a, n, rep, tmp);
        if (rep == REP_F) {
            const float *x = v;
            float m = (float)seg_f(op, x, n);
            if (m != m) {                       /* the first NaN wins: nothing can beat it */
                while (x[i] == x[i]) i++;
                b = (pick){m, 0, a + i};
                return b;
            }
            if (b.at >= 0 && !(is_max ? m > b.f : m < b.f)) continue;
            i = first_equal_f(x, (int)n, m);
            b = (pick){m, 0, a + i};
        } else {
            const int64_t *x = v;
            int64_t m = seg_i(op, x, n);
            if (b.at >= 0 && !(is_max ? m > b.i : m < b.i)) continue;
            i = first_equal_i(x, (int)n, m);
            b = (pick){0, m, a + i};
        }
    }
    return b;
}

/* Offsets in `in` and in the output of flat index j of `shape` (row-major). */
static void offsets(const lz_array *in, const int64_t *shape, const int64_t *ostr, int64_t j,
                    int64_t *ioff, int64_t *ooff) {
    int64_t io = 0, oo = 0;
    for (int d = in->ndim - 1; d >= 0; d--) {
        int64_t x = j % shape[d];
        j /= shape[d];
        io += x * in->strides[d];
        oo += x * ostr[d];
    }
    *ioff = io;
    *ooff = oo;
}

static int arg_reduce(lz_array *out, lz_array *in, int axis, int is_max) {
    int64_t *dst = lz_elem_ptr(out), nout = lz_size(out);
    if (in->ndim == 0 || nout == 0) {
        if (nout) dst[0] = 0;
        lz_stats_add(1, 8, 0);
        return 0;
    }
    const char *base = lz_elem_ptr(in);
    int64_t es = (int64_t)lz_dtype_size(in->dtype), A = in->shape[axis], sa = in->strides[axis];
    int64_t ostr[LZ_MAX_DIMS];
    lz_contiguous_strides(out->ndim, out->shape, ostr);
    int threads = lz_size(in) >= 65536 ? cpu_threads() : 1;
    /* the other axis with the smallest stride: walk it inside when it beats `axis` */
    int q = -1;
    for (int d = 0; d < in->ndim; d++)
        if (d != axis && in->shape[d] > 1 && (q < 0 || iabs(in->strides[d]) < iabs(in->strides[q])))
            q = d;
    int failed = 0;
    if (q >= 0 && iabs(in->strides[q]) < iabs(sa)) {
        /* columns: blocks of QB outputs along q advance together, one value of `axis` at a time */
        enum { QB = 1024 };   /* wide blocks read whole rows; narrower only to feed threads */
        int64_t Q = in->shape[q], sq = in->strides[q], oshape[LZ_MAX_DIMS];
        memcpy(oshape, out->shape, sizeof oshape);
        oshape[q] = 1;
        int64_t nouter = lz_shape_size(out->ndim, oshape), qb = QB;
        if (nouter * ((Q + qb - 1) / qb) < 2 * threads) {
            int64_t want = (2 * threads + nouter - 1) / nouter;
            qb = ((Q + want - 1) / want + 15) / 16 * 16;
            qb = qb < 64 ? 64 : qb > QB ? QB : qb;
        }
        int64_t nqb = (Q + qb - 1) / qb, units = nouter * nqb;
        int rep = rep_of(in->dtype);
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t u = 0; u < units; u++) {
            int64_t ti[QB], bi[QB], at[QB];
            float tf[QB], bf[QB];
            int64_t io, oo, t0 = (u % nqb) * qb, w = Q - t0 < qb ? Q - t0 : qb;
            offsets(in, oshape, ostr, u / nqb, &io, &oo);
            io += t0 * sq;
            for (int64_t a = 0; a < A; a++) {
                const char *src = base + (io + a * sa) * es;
                const float *x = tf;
                if (in->dtype == LZ_F32 && sq == 1) x = (const float *)src;
                else cpu_load(src, in->dtype, 1, &w, &sq, 0, w, rep, rep == REP_F ? (void *)tf : (void *)ti);
                if (!a) {
                    for (int64_t t = 0; t < w; t++) {
                        if (rep == REP_F) bf[t] = x[t];
                        else bi[t] = ti[t];
                        at[t] = 0;
                    }
                } else if (rep == REP_F) {   /* branch-free: a vector loop */
                    #pragma omp simd
                    for (int64_t t = 0; t < w; t++) {
                        float y = x[t], c = bf[t];
                        int take = (is_max ? y > c : y < c) | (y != y && c == c);
                        bf[t] = take ? y : c;
                        at[t] = take ? a : at[t];
                    }
                } else {
                    #pragma omp simd
                    for (int64_t t = 0; t < w; t++) {
                        int take = is_max ? ti[t] > bi[t] : ti[t] < bi[t];
                        bi[t] = take ? ti[t] : bi[t];
                        at[t] = take ? a : at[t];
                    }
                }
            }
            for (int64_t t = 0; t < w; t++) dst[oo + (t0 + t) * ostr[q]] = at[t];
        }
    } else if (nout < threads && A >= 65536) {
        /* few long lines: threads split each line, picks merged in order (first wins) */
        for (int64_t j = 0; j < nout; j++) {
            int64_t io, oo;
            offsets(in, out->shape, ostr, j, &io, &oo);
            pick picks[256];
            int nt = threads < 256 ? threads : 256;
            #pragma omp parallel num_threads(nt)
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                void *tmp = malloc(LZ_TILE * 8);
                if (!tmp) {
                    #pragma omp atomic write
                    failed = 1;
                    picks[t].at = -1;
                } else {
                    picks[t] = scan_line(in, is_max, base + io * es, sa, A * t / n, A * (t + 1) / n, tmp);
                }
                free(tmp);
                #pragma omp single
                nt = n;
            }
            pick b = picks[0];
            for (int t = 1; t < nt; t++)
                if (picks[t].at >= 0 && (b.at < 0 || better(rep_of(in->dtype), is_max, picks[t].f, picks[t].i, &b)))
                    b = picks[t];
            dst[oo] = b.at;
        }
    } else {
        /* rows: each output scans its own line */
        #pragma omp parallel num_threads(threads)
        {
            void *tmp = malloc(LZ_TILE * 8);
            if (!tmp) {
                #pragma omp atomic write
                failed = 1;
            }
            #pragma omp for schedule(static)
            for (int64_t j = 0; j < nout; j++) {
                if (!tmp) continue;
                int64_t io, oo;
                offsets(in, out->shape, ostr, j, &io, &oo);
                dst[oo] = scan_line(in, is_max, base + io * es, sa, 0, A, tmp).at;
            }
            free(tmp);
        }
    }
    if (failed) { lz_fail("%s: out of memory", is_max ? "argmax" : "argmin"); return -1; }
    lz_stats_add(1, (uint64_t)lz_size(in) * (uint64_t)es + (uint64_t)nout * 8, 0);
    return 0;
}

static int argmax_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return arg_reduce(out, in[0], (int)p->i[0], 1);
}

static int argmin_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return arg_reduce(out, in[0], (int)p->i[0], 0);
}

void cpu_register_reduce(void) {
    lz_prims[LZ_P_ARGMAX].cpu = argmax_kernel;
    lz_prims[LZ_P_ARGMIN].cpu = argmin_kernel;
}
