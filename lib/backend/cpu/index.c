/* Gather, scatter-add, concatenation and padding kernels (CPU).
 *
 * These kernels move elements rather than compute on them, so they work on raw element bytes
 * (1, 2, 4 or 8 wide) whatever the dtype, and read their inputs through their strides (zero,
 * negative, offset) instead of asking for contiguous copies. Every op is seen as
 * [outer, axis, inner]: outer offsets are computed per row by div/mod (one row amortises
 * them), inner offsets come from a `span` (one stride when the inner dims collapse, else a
 * table). Index errors are found in a serial pass before any threads start, because the error
 * message is thread-local. Params layouts are documented in lib/ops/index.c. */
#include <assert.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "layout.h"

#define PAR_MIN 65536   /* elements moved before a second thread pays for itself */

/* Runs BODY with W a compile-time element width, so memcpy(.., W) becomes one move. */
#define BY_WIDTH(es, ...)                                                      \
    switch (es) {                                                              \
    case 1: { enum { W = 1 }; __VA_ARGS__; } break;                            \
    case 2: { enum { W = 2 }; __VA_ARGS__; } break;                            \
    case 4: { enum { W = 4 }; __VA_ARGS__; } break;                            \
    default: { enum { W = 8 }; __VA_ARGS__; } break;                           \
    }

/* dst[k * ds] = src[span k] for the span's n elements. */
static void move(char *dst, int64_t ds, const char *src, const span *s, size_t es) {
    int64_t n = s->n;
    if (!s->tab && s->stride == 1 && ds == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    if (s->tab) {
        const int64_t *t = s->tab;
        BY_WIDTH(es, for (int64_t k = 0; k < n; k++) memcpy(dst + k * ds * W, src + t[k] * W, W))
    } else {
        int64_t ss = s->stride;
        BY_WIDTH(es, for (int64_t k = 0; k < n; k++) memcpy(dst + k * ds * W, src + k * ss * W, W))
    }
}

/* Copies an nd block (shape) from src (src_strides) to dst (dst_strides), both in elements.
 * Dims that are contiguous in both are merged first, so a plain copy is one memcpy. */
static void copy_nd(char *dst, const int64_t *dst_strides, const char *src,
                    const int64_t *src_strides, int nd, const int64_t *shape, size_t es) {
    int64_t sh[LZ_MAX_DIMS], ds[LZ_MAX_DIMS], ss[LZ_MAX_DIMS];
    int m = 0;
    int64_t n = prod(nd, shape);
    if (!n) return;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (m && ds[m - 1] == dst_strides[d] * shape[d] && ss[m - 1] == src_strides[d] * shape[d]) {
            sh[m - 1] *= shape[d];
            ds[m - 1] = dst_strides[d];
            ss[m - 1] = src_strides[d];
        } else {
            sh[m] = shape[d];
            ds[m] = dst_strides[d];
            ss[m++] = src_strides[d];
        }
    }
    if (!m) { memcpy(dst, src, es); return; }
    int64_t last = sh[m - 1], rows = n / last;
    span row = {last, ss[m - 1], NULL};
    #pragma omp parallel for num_threads(cpu_threads()) if (n >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++)
        move(dst + offset_of(r, m - 1, sh, ds) * (int64_t)es, ds[m - 1],
             src + offset_of(r, m - 1, sh, ss) * (int64_t)es, &row, es);
}

/* The indices of ix (any layout, integer dtype) as a fresh int64 array, negative ones
 * counted from the end; NULL with "op: index v is out of range for axis a with size n". */
static int64_t *load_indices(const char *op, const lz_array *ix, int64_t n, int axis) {
    int64_t cnt = lz_size(ix);
    int64_t *v = malloc((size_t)(cnt ? cnt : 1) * sizeof *v);
    if (!v) return lz_fail("%s: out of memory loading indices", op);
    if (cnt)
        cpu_load(lz_elem_ptr(ix), ix->dtype, ix->ndim, ix->shape, ix->strides, 0, cnt, REP_I, v);
    for (int64_t k = 0; k < cnt; k++) {
        int64_t x = v[k];
        if (x < 0) x += n;
        if (x < 0 || x >= n) {
            lz_fail("%s: index %lld is out of range for axis %d with size %lld", op,
                    (long long)v[k], axis, (long long)n);
            free(v);
            return NULL;
        }
        v[k] = x;
    }
    return v;
}

/* ---- take: out[o, j, i] = a[o, idx[j], i] ---- */

static int take_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0], *ix = in[1];
    int ax = (int)p->i[0];
    int64_t n = a->shape[ax], outer = prod(ax, a->shape), cnt = lz_size(ix);
    size_t es = lz_dtype_size(a->dtype);
    int64_t *idx = load_indices("take", ix, n, ax);   /* checked even when out is empty */
    if (!idx) return -1;
    span inner;
    if (span_init(&inner, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1)) {
        free(idx);
        return -1;
    }
    const char *base = lz_elem_ptr(a);
    char *dst = lz_elem_ptr(out);
    int64_t rows = outer * cnt, st = a->strides[ax];
    #pragma omp parallel for num_threads(cpu_threads()) if (rows * inner.n >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / cnt, j = r % cnt;
        int64_t off = offset_of(o, ax, a->shape, a->strides) + idx[j] * st;
        move(dst + r * inner.n * (int64_t)es, 1, base + off * (int64_t)es, &inner, es);
    }
    free(inner.tab);
    free(idx);
    lz_stats_add(1, (uint64_t)lz_size(out) * 2 * es + (uint64_t)cnt * lz_dtype_size(ix->dtype), 0);
    return 0;
}

/* ---- take_along_axis: out[o, j, i] = a[o, idx[o, j, i], i] (idx has out's shape) ---- */

static int take_along_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0], *ix = in[1];
    int ax = (int)p->i[0];
    int64_t n = a->shape[ax], outer = prod(ax, a->shape), cnt = out->shape[ax];
    size_t es = lz_dtype_size(a->dtype);
    int64_t *idx = load_indices("take_along_axis", ix, n, ax);
    if (!idx) return -1;
    span inner;
    if (span_init(&inner, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1)) {
        free(idx);
        return -1;
    }
    const char *base = lz_elem_ptr(a);
    char *dst = lz_elem_ptr(out);
    int64_t rows = outer * cnt, ni = inner.n, st = a->strides[ax];
    #pragma omp parallel for num_threads(cpu_threads()) if (rows * ni >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const char *row = base + offset_of(r / cnt, ax, a->shape, a->strides) * (int64_t)es;
        const int64_t *q = idx + r * ni;
        char *d = dst + r * ni * (int64_t)es;
        BY_WIDTH(es, for (int64_t i = 0; i < ni; i++)
                         memcpy(d + i * W, row + (q[i] * st + span_at(&inner, i)) * W, W))
    }
    free(inner.tab);
    free(idx);
    lz_stats_add(1, (uint64_t)lz_size(out) * (2 * es + 8), 0);
    return 0;
}

/* ---- scatter_add ---- */

/* Accumulation per dtype. Integers wrap (unsigned arithmetic: no signed overflow), bool ORs;
 * float16/bfloat16 never get here (the constructor computes them in float32). */
#define ACCUMULATORS(X) X(f32, float, x + y) X(u32, uint32_t, x + y) \
    X(u64, uint64_t, x + y) X(u8, uint8_t, (uint8_t)(x + y)) X(b8, uint8_t, (uint8_t)(x | y))

#define X(name, T, EXPR)                                                                    \
    static void add_row_##name(void *dst, const void *src, int64_t n) {                    \
        T *d = dst;                                                                        \
        const T *s = src;                                                                  \
        for (int64_t k = 0; k < n; k++) { T x = d[k], y = s[k]; d[k] = EXPR; }             \
    }                                                                                      \
    /* out[o, idx[o,j,i], i] += upd[o, j, i] for j < cnt and i in [i0, i1) */              \
    static void add_along_##name(void *out, const void *upd, const int64_t *idx,           \
                                 int64_t n, int64_t cnt, int64_t ni, int64_t o,            \
                                 int64_t i0, int64_t i1) {                                 \
        T *d = (T *)out + o * n * ni;                                                      \
        for (int64_t j = 0; j < cnt; j++) {                                                \
            const T *s = (const T *)upd + (o * cnt + j) * ni;                              \
            const int64_t *q = idx + (o * cnt + j) * ni;                                   \
            for (int64_t i = i0; i < i1; i++) {                                            \
                T x = d[q[i] * ni + i], y = s[i];                                          \
                d[q[i] * ni + i] = EXPR;                                                   \
            }                                                                              \
        }                                                                                  \
    }
ACCUMULATORS(X)
#undef X

typedef void (*add_row_fn)(void *, const void *, int64_t);
typedef void (*add_along_fn)(void *, const void *, const int64_t *, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t);

static int accumulator(lz_dtype t, add_row_fn *row, add_along_fn *along) {
    switch (t) {
    case LZ_F32: *row = add_row_f32; *along = add_along_f32; return 0;
    case LZ_I32: *row = add_row_u32; *along = add_along_u32; return 0;
    case LZ_I64: *row = add_row_u64; *along = add_along_u64; return 0;
    case LZ_U8: *row = add_row_u8; *along = add_along_u8; return 0;
    case LZ_BOOL: *row = add_row_b8; *along = add_along_b8; return 0;
    default: lz_fail("scatter_add: no CPU kernel for %s", lz_dtype_name(t)); return -1;
    }
}

/* Take form: out[o, idx[j], i] += upd[o, j, i]. Each output row is owned by one thread and
 * receives its updates in index order, so duplicates accumulate in the same order whatever
 * the thread count: results are deterministic. With few outer rows (the embedding case,
 * outer = 1) the threads split the axis; otherwise they split the outer rows. */
static void scatter_take(char *out, const char *upd, const int64_t *idx, int64_t outer,
                         int64_t n, int64_t cnt, int64_t ni, size_t es, add_row_fn add) {
    int64_t rb = ni * (int64_t)es;
    int threads = outer * cnt * ni >= PAR_MIN ? cpu_threads() : 1;
    if (outer >= 2 * threads || threads == 1) {
        #pragma omp parallel for num_threads(threads) if (threads > 1)
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < cnt; j++)
                add(out + (o * n + idx[j]) * rb, upd + (o * cnt + j) * rb, ni);
        return;
    }
    #pragma omp parallel num_threads(threads)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < cnt; j++)
                if (idx[j] >= lo && idx[j] < hi)
                    add(out + (o * n + idx[j]) * rb, upd + (o * cnt + j) * rb, ni);
    }
}

/* Along form: tasks are (outer row, block of inner columns); two tasks never touch the same
 * output element, and each element sums its updates in j order. */
static void scatter_along(char *out, const char *upd, const int64_t *idx, int64_t outer,
                          int64_t n, int64_t cnt, int64_t ni, add_along_fn add) {
    const int64_t blk = 256;
    int64_t nb = (ni + blk - 1) / blk, tasks = outer * nb;
    #pragma omp parallel for num_threads(cpu_threads()) if (outer * cnt * ni >= PAR_MIN && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / nb, i0 = (t % nb) * blk, i1 = i0 + blk < ni ? i0 + blk : ni;
        add(out, upd, idx, n, cnt, ni, o, i0, i1);
    }
}

static int scatter_add_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0], *ix = in[1], *up = in[2];
    int ax = (int)p->i[0], along = (int)p->i[1];
    size_t es = lz_dtype_size(out->dtype);
    add_row_fn row;
    add_along_fn alg;
    if (accumulator(out->dtype, &row, &alg)) return -1;
    assert(!lz_size(up) || lz_is_contiguous(up));   /* made so by the constructor */
    char *dst = lz_elem_ptr(out);
    int64_t n = a->shape[ax], outer = prod(ax, a->shape), ni = prod(a->ndim - ax - 1, a->shape + ax + 1);
    int64_t *idx = load_indices("scatter_add", ix, n, ax);
    if (!idx) return -1;
    copy_nd(dst, out->strides, lz_elem_ptr(a), a->strides, a->ndim, a->shape, es);
    if (along) scatter_along(dst, lz_elem_ptr(up), idx, outer, n, up->shape[ax], ni, alg);
    else scatter_take(dst, lz_elem_ptr(up), idx, outer, n, lz_size(ix), ni, es, row);
    free(idx);
    lz_stats_add(1, (uint64_t)(lz_size(out) * 2 + lz_size(up) * 2) * es + (uint64_t)lz_size(ix) * 8, 0);
    return 0;
}

/* ---- concatenate: each input copied into its slab of the output ---- */

static int concat_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    int ax = (int)p->i[0];
    size_t es = lz_dtype_size(out->dtype);
    char *dst = lz_elem_ptr(out);
    int64_t at = 0;
    for (int64_t k = 0; k < p->i[1]; k++) {
        const lz_array *x = in[k];
        copy_nd(dst + at * out->strides[ax] * (int64_t)es, out->strides, lz_elem_ptr(x),
                x->strides, out->ndim, x->shape, es);
        at += x->shape[ax];
    }
    lz_stats_add(1, (uint64_t)lz_size(out) * 2 * es, 0);
    return 0;
}

/* dst[0..n) = the element at v. */
static void fill(char *dst, int64_t n, const unsigned char *v, size_t es) {
    const int64_t blk = 4096;
    #pragma omp parallel for num_threads(cpu_threads()) if (n >= PAR_MIN)
    for (int64_t b = 0; b < (n + blk - 1) / blk; b++) {
        int64_t k1 = (b + 1) * blk < n ? (b + 1) * blk : n;
        BY_WIDTH(es, for (int64_t k = b * blk; k < k1; k++) memcpy(dst + k * W, v, W))
    }
}

/* ---- pad: fill with the value, then copy the input into the interior ---- */

static int pad_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0];
    size_t es = lz_dtype_size(out->dtype);
    int64_t n = lz_size(out);
    char *dst = lz_elem_ptr(out);
    unsigned char v[8];
    lz_store_scalar(v, out->dtype, p->f[0]);
    fill(dst, n, v, es);
    int64_t off = 0;
    for (int d = 0; d < a->ndim; d++) off += p->i[2 * d] * out->strides[d];
    copy_nd(dst + off * (int64_t)es, out->strides, lz_elem_ptr(a), a->strides, a->ndim,
            a->shape, es);
    lz_stats_add(1, (uint64_t)(n + lz_size(a)) * es, 0);
    return 0;
}

void cpu_register_index(void) {
    lz_prims[LZ_P_GATHER].cpu = take_kernel;
    lz_prims[LZ_P_TAKE_ALONG].cpu = take_along_kernel;
    lz_prims[LZ_P_SCATTER_ADD].cpu = scatter_add_kernel;
    lz_prims[LZ_P_CONCAT].cpu = concat_kernel;
    lz_prims[LZ_P_PAD].cpu = pad_kernel;
}
