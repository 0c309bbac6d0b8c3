/* Strided-layout helpers shared by the index and sort kernels: they read their inputs in
 * place (any strides: zero, negative, an offset) instead of asking for contiguous copies.
 * A kernel sees its array as [outer, axis, inner]: an outer row's offset is computed by
 * div/mod (the row amortises it), inner offsets come from a `span`. */
#ifndef LZ_CPU_LAYOUT_H
#define LZ_CPU_LAYOUT_H

#include <stdlib.h>
#include "cpu.h"

static inline int64_t prod(int n, const int64_t *shape) { return lz_shape_size(n, shape); }

/* Offset in elements of row-major index k over the dims shape[0..nd). */
static inline int64_t offset_of(int64_t k, int nd, const int64_t *shape, const int64_t *strides) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0 && k; d--) {
        off += (k % shape[d]) * strides[d];
        k /= shape[d];
    }
    return off;
}

/* Offsets of the n elements of a block of dims, row-major: one stride when the dims collapse
 * into one (the usual case), else a table (free tab). */
typedef struct { int64_t n, stride; int64_t *tab; } span;

static inline int span_init(span *s, int nd, const int64_t *shape, const int64_t *strides) {
    int64_t sh[LZ_MAX_DIMS], st[LZ_MAX_DIMS];
    int m = 0;
    s->n = prod(nd, shape);
    s->stride = 0;
    s->tab = NULL;
    if (!s->n) return 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (m && st[m - 1] == strides[d] * shape[d]) {
            sh[m - 1] *= shape[d];
            st[m - 1] = strides[d];
        } else {
            sh[m] = shape[d];
            st[m++] = strides[d];
        }
    }
    if (m <= 1) {
        s->stride = m ? st[0] : 0;
        return 0;
    }
    if (!(s->tab = malloc((size_t)s->n * sizeof *s->tab))) {
        lz_fail("out of memory in a kernel's offset table");
        return -1;
    }
    for (int64_t k = 0; k < s->n; k++) s->tab[k] = offset_of(k, m, sh, st);
    return 0;
}

static inline int64_t span_at(const span *s, int64_t k) {
    return s->tab ? s->tab[k] : k * s->stride;
}

#endif
