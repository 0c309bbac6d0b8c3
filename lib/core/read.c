/* Reading data back: every path evaluates first (the only implicit evaluation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Calls visit(element pointer, flat index) for each element in row-major order. */
static void walk(const lz_array *a, void (*visit)(const void *p, int64_t i, void *ctx),
                 void *ctx) {
    int64_t n = lz_size(a), idx[LZ_MAX_DIMS] = {0};
    size_t es = lz_dtype_size(a->dtype);
    const char *base = lz_elem_ptr(a);
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        visit(base + off * (int64_t)es, i, ctx);
        for (int d = a->ndim - 1; d >= 0; d--) {
            off += a->strides[d];
            if (++idx[d] < a->shape[d]) break;
            off -= a->strides[d] * a->shape[d];
            idx[d] = 0;
        }
    }
}

typedef struct { lz_dtype t; float *f; int64_t *i; } sink;
static void to_float(const void *p, int64_t i, void *ctx) {
    sink *s = ctx;
    s->f[i] = (float)lz_load_scalar(p, s->t);
}
static void to_int(const void *p, int64_t i, void *ctx) {
    sink *s = ctx;
    s->i[i] = lz_load_int(p, s->t);
}

static int ready(lz_array *a, const char *fn) {
    if (!a) return -1;
    if (lz_eval1(a)) return -1;
    if (!a->buf) { lz_fail("%s: array has no data", fn); return -1; }
    return lz_buffer_sync(a->buf, LZ_CPU);
}

int lz_to_float(lz_array *a, float *out, int64_t n) {
    if (ready(a, "lz_to_float")) return -1;
    if (n < lz_size(a)) {
        lz_fail("lz_to_float: room for %lld elements, the array has %lld", (long long)n,
                (long long)lz_size(a));
        return -1;
    }
    if (a->dtype == LZ_F32 && lz_is_contiguous(a)) {
        memcpy(out, lz_elem_ptr(a), (size_t)lz_size(a) * sizeof(float));
        return 0;
    }
    sink s = {a->dtype, out, NULL};
    walk(a, to_float, &s);
    return 0;
}

int lz_to_int(lz_array *a, int64_t *out, int64_t n) {
    if (ready(a, "lz_to_int")) return -1;
    if (n < lz_size(a)) {
        lz_fail("lz_to_int: room for %lld elements, the array has %lld", (long long)n,
                (long long)lz_size(a));
        return -1;
    }
    sink s = {a->dtype, NULL, out};
    walk(a, to_int, &s);
    return 0;
}

double lz_item(lz_array *a) {
    if (ready(a, "lz_item")) return NAN;
    if (lz_size(a) == 0) { lz_fail("lz_item: the array is empty"); return NAN; }
    return lz_load_scalar(lz_elem_ptr(a), a->dtype);
}

const void *lz_data(lz_array *a) {
    if (ready(a, "lz_data")) return NULL;
    if (!lz_is_contiguous(a)) {
        /* make it contiguous in place: evaluate a copy node and take its buffer */
        lz_array *c = lz_node(LZ_P_COPY, a->dtype, a->ndim, a->shape, 1, &a, NULL);
        if (!c || lz_eval1(c)) { lz_release(c); return NULL; }
        lz_buffer_release(a->buf);
        a->buf = c->buf;
        lz_buffer_retain(a->buf);
        a->offset = 0;
        memcpy(a->strides, c->strides, sizeof a->strides);
        lz_release(c);
    }
    return lz_host_ptr(a);
}

lz_array *lz_scalar(double v, lz_dtype t) {
    lz_array *a = lz_empty(0, NULL, t);
    if (a) lz_store_scalar(a->buf->data, t, v);
    return a;
}
