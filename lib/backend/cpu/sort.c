/* Sorting and scans (CPU): sort / argsort (stable, NaNs last) and cumsum.
 *
 * Sorting maps each element to an unsigned key whose integer order is the element order
 * (floats: flip the sign bit or all bits; NaN -> the largest key; -0 -> +0 so they tie as in
 * NumPy), then sorts (key, position) with an LSD radix sort, 8 bits a pass, skipping passes
 * where every key has the same digit. LSD radix is stable, so equal keys keep their order
 * without comparing positions. Keys of at most 4 bytes are packed with the position into one
 * uint64 (key << 32 | position) and sorted as such: half the memory traffic. Rows up to 32
 * elements use insertion sort. Rows run in parallel; each thread owns its scratch.
 * Descending order (for topk) complements the key, so ties still keep increasing positions
 * and NaNs come first. Params layouts are documented in lib/ops/sort.c. */
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "layout.h"

#define PAR_MIN 16384   /* elements before a second thread pays for itself */
#define SMALL 32        /* rows this short: insertion sort */

typedef struct { uint64_t key; int64_t pos; } pair;

static int key_bytes(lz_dtype t) {
    switch (t) {
    case LZ_BOOL: case LZ_U8: return 1;
    case LZ_F16: case LZ_BF16: return 2;
    case LZ_I32: case LZ_F32: return 4;
    default: return 8;
    }
}

/* Float bits u of a format with sign bit `sign`, +inf bits `inf`, all-ones `all`. */
static inline uint64_t float_key(uint64_t u, uint64_t sign, uint64_t inf, uint64_t all) {
    if ((u & ~sign & all) > inf) return all;      /* any NaN: after everything */
    if (u == sign) u = 0;                         /* -0 ties with +0 */
    return u & sign ? ~u & all : u | sign;
}

/* The key of the element at p (callers xor it with all ones of its width to reverse order). */
static inline uint64_t key_at(const char *p, lz_dtype t) {
    uint16_t h;
    uint32_t w;
    uint64_t q;
    switch (t) {
    case LZ_BOOL: return *(const uint8_t *)p != 0;
    case LZ_U8: return *(const uint8_t *)p;
    case LZ_F16: memcpy(&h, p, 2); return float_key(h, 0x8000u, 0x7c00u, 0xffffu);
    case LZ_BF16: memcpy(&h, p, 2); return float_key(h, 0x8000u, 0x7f80u, 0xffffu);
    case LZ_I32: memcpy(&w, p, 4); return w ^ 0x80000000u;
    case LZ_F32: memcpy(&w, p, 4); return float_key(w, 0x80000000u, 0x7f800000u, 0xffffffffu);
    default: memcpy(&q, p, 8); return q ^ 0x8000000000000000ull;
    }
}

/* LSD radix sort over bytes [b0, b1) of KEY(element); tmp has room for n elements. The
 * result ends in a (copied back when an odd number of passes ran). */
#define RADIX(name, T, KEY)                                                              \
    static void name(T *a, T *tmp, int64_t n, int b0, int b1) {                          \
        if (n <= SMALL) {                                                                \
            for (int64_t i = 1; i < n; i++) {                                            \
                T x = a[i];                                                              \
                int64_t j = i;                                                           \
                for (; j > 0 && KEY(a[j - 1]) > KEY(x); j--) a[j] = a[j - 1];            \
                a[j] = x;                                                                \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        int64_t cnt[8][256];                                                             \
        memset(cnt, 0, sizeof cnt);                                                      \
        for (int64_t i = 0; i < n; i++) {                                                \
            uint64_t k = KEY(a[i]);                                                      \
            for (int b = b0; b < b1; b++) cnt[b][(k >> (8 * b)) & 255]++;                \
        }                                                                                \
        T *src = a, *dst = tmp;                                                          \
        for (int b = b0; b < b1; b++) {                                                  \
            if (cnt[b][(KEY(a[0]) >> (8 * b)) & 255] == n) continue;  /* one digit */    \
            int64_t at = 0;                                                              \
            for (int d = 0; d < 256; d++) { int64_t c = cnt[b][d]; cnt[b][d] = at; at += c; } \
            for (int64_t i = 0; i < n; i++) dst[cnt[b][(KEY(src[i]) >> (8 * b)) & 255]++] = src[i]; \
            T *s = src; src = dst; dst = s;                                              \
        }                                                                                \
        if (src != a) memcpy(a, src, (size_t)n * sizeof *a);                             \
    }
#define PACKED_KEY(x) (x)
#define PAIR_KEY(x) ((x).key)
RADIX(sort_packed, uint64_t, PACKED_KEY)
RADIX(sort_pairs, pair, PAIR_KEY)

/* One row: n elements from src at stride st (elements of size es), results to dst at
 * stride ds: values (argsort == 0) or int64 positions. */
static void sort_row(const char *src, int64_t st, int64_t n, lz_dtype t, uint64_t flip,
                     int argsort, char *dst, int64_t ds, void *buf) {
    size_t es = lz_dtype_size(t);
    int kb = key_bytes(t);
    if (kb <= 4) {
        uint64_t *a = buf, *tmp = a + n;
        for (int64_t j = 0; j < n; j++)
            a[j] = (key_at(src + j * st * (int64_t)es, t) ^ flip) << 32 | (uint64_t)j;
        sort_packed(a, tmp, n, 4, 4 + kb);
        if (argsort) {
            for (int64_t j = 0; j < n; j++) {
                int64_t pos = (int64_t)(a[j] & 0xffffffffu);
                memcpy(dst + j * ds * 8, &pos, 8);
            }
            return;
        }
        /* a constant width per loop, so each memcpy is one move */
#define GATHER_VALUES(W)                                                                  \
        for (int64_t j = 0; j < n; j++)                                                   \
            memcpy(dst + j * ds * W, src + (int64_t)(a[j] & 0xffffffffu) * st * W, W);
        switch (es) {
        case 1: GATHER_VALUES(1) break;
        case 2: GATHER_VALUES(2) break;
        default: GATHER_VALUES(4) break;
        }
#undef GATHER_VALUES
    } else {
        pair *a = buf, *tmp = a + n;
        for (int64_t j = 0; j < n; j++) a[j] = (pair){key_at(src + j * st * 8, t) ^ flip, j};
        sort_pairs(a, tmp, n, 0, 8);
        for (int64_t j = 0; j < n; j++) {
            if (argsort) memcpy(dst + j * ds * 8, &a[j].pos, 8);
            else memcpy(dst + j * ds * 8, src + a[j].pos * st * 8, 8);
        }
    }
}

static int sort_common(lz_array *out, const lz_array *a, const lz_params *p, int argsort) {
    int ax = (int)p->i[0];
    lz_dtype t = a->dtype;
    int kb = key_bytes(t);
    uint64_t flip = p->i[1] ? (kb == 8 ? ~0ull : (1ull << (8 * kb)) - 1) : 0;
    int64_t n = a->shape[ax], outer = prod(ax, a->shape);
    int64_t ni = prod(a->ndim - ax - 1, a->shape + ax + 1), rows = outer * ni;
    if (kb <= 4 && n > 0xffffffffll) {
        lz_fail("%s: rows of %lld elements are too long", argsort ? "argsort" : "sort",
                (long long)n);
        return -1;
    }
    size_t es = lz_dtype_size(t), oes = lz_dtype_size(out->dtype);
    size_t need = (size_t)(n ? n : 1) * 2 * (kb <= 4 ? sizeof(uint64_t) : sizeof(pair));
    const char *base = lz_elem_ptr(a);
    char *dst = lz_elem_ptr(out);
    int failed = 0;
    #pragma omp parallel num_threads(cpu_threads()) if (rows > 1 && rows * n >= PAR_MIN)
    {
        void *buf = rows ? malloc(need) : NULL;
        if (rows && !buf) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            int64_t o = r / ni, i = r % ni;
            int64_t off = offset_of(o, ax, a->shape, a->strides) +
                          offset_of(i, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1);
            sort_row(base + off * (int64_t)es, a->strides[ax], n, t, flip, argsort,
                     dst + (o * n * ni + i) * (int64_t)oes, ni, buf);
        }
        free(buf);
    }
    if (failed) {
        lz_fail("%s: out of memory for %zu bytes of scratch", argsort ? "argsort" : "sort", need);
        return -1;
    }
    lz_stats_add(1, (uint64_t)lz_size(a) * (es + oes), 0);
    return 0;
}

static int sort_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return sort_common(out, in[0], p, 0);
}

static int argsort_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    return sort_common(out, in[0], p, 1);
}

/* ---- cumsum ----
 * Tasks are (outer row, block of inner columns): each walks the axis once keeping one running
 * sum per column, so when the axis is not the last, reads stay along rows of memory. Floats
 * accumulate in double, integers in (wrapping) 64-bit. */

#define COLS 64

static inline double load_f(const char *p, lz_dtype t) {
    switch (t) {
    case LZ_F32: { float f; memcpy(&f, p, 4); return f; }
    case LZ_F16: { uint16_t h; memcpy(&h, p, 2); return lz_f16_to_f32(h); }
    default: { uint16_t h; memcpy(&h, p, 2); return lz_bf16_to_f32(h); }
    }
}

static void cumsum_task(const lz_array *a, lz_array *out, int ax, int reverse, const span *in,
                        int64_t o, int64_t i0, int64_t i1) {
    int64_t n = a->shape[ax], ni = in->n, st = a->strides[ax];
    size_t es = lz_dtype_size(a->dtype);
    const char *src = (const char *)lz_elem_ptr(a) + offset_of(o, ax, a->shape, a->strides) * (int64_t)es;
    char *dst = (char *)lz_elem_ptr(out);
    lz_dtype t = a->dtype, ot = out->dtype;
    if (i1 - i0 == 1 && t == LZ_F32 && ot == LZ_F32) {   /* one column (axis last): plain scan */
        const float *x = (const float *)src + span_at(in, i0);
        float *d = (float *)dst + o * n * ni + i0;
        double acc = 0;
        for (int64_t s = 0; s < n; s++) {
            int64_t j = reverse ? n - 1 - s : s;
            acc += x[j * st];
            d[j * ni] = (float)acc;
        }
        return;
    }
    double accf[COLS] = {0};
    uint64_t acci[COLS] = {0};
    int isf = lz_dtype_is_float(t);
    for (int64_t s = 0; s < n; s++) {
        int64_t j = reverse ? n - 1 - s : s;
        const char *row = src + j * st * (int64_t)es;
        int64_t at = (o * n + j) * ni;
        if (t == LZ_F32 && ot == LZ_F32) {
            float *d = (float *)dst + at;
            for (int64_t i = i0; i < i1; i++) {
                float x;
                memcpy(&x, row + span_at(in, i) * 4, 4);
                accf[i - i0] += x;
                d[i] = (float)accf[i - i0];
            }
        } else if (isf) {
            for (int64_t i = i0; i < i1; i++) {
                accf[i - i0] += load_f(row + span_at(in, i) * (int64_t)es, t);
                lz_store_scalar(dst + (at + i) * (int64_t)lz_dtype_size(ot), ot, accf[i - i0]);
            }
        } else {
            int64_t *d = (int64_t *)dst + at;
            for (int64_t i = i0; i < i1; i++) {
                acci[i - i0] += (uint64_t)lz_load_int(row + span_at(in, i) * (int64_t)es, t);
                d[i] = (int64_t)acci[i - i0];
            }
        }
    }
}

static int cumsum_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0];
    int ax = (int)p->i[0], reverse = (int)p->i[1];
    span inner;
    if (span_init(&inner, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1)) return -1;
    int64_t outer = prod(ax, a->shape), nb = (inner.n + COLS - 1) / COLS, tasks = outer * nb;
    #pragma omp parallel for num_threads(cpu_threads()) if (tasks > 1 && lz_size(a) >= PAR_MIN)
    for (int64_t k = 0; k < tasks; k++) {
        int64_t o = k / nb, i0 = (k % nb) * COLS;
        cumsum_task(a, out, ax, reverse, &inner, o, i0, i0 + COLS < inner.n ? i0 + COLS : inner.n);
    }
    free(inner.tab);
    lz_stats_add(1, (uint64_t)lz_size(a) * (lz_dtype_size(a->dtype) + lz_dtype_size(out->dtype)), 0);
    return 0;
}

void cpu_register_sort(void) {
    lz_prims[LZ_P_SORT].cpu = sort_kernel;
    lz_prims[LZ_P_ARGSORT].cpu = argsort_kernel;
    lz_prims[LZ_P_CUMSUM].cpu = cumsum_kernel;
}
