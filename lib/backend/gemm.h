/* The MATMUL node's operand layouts (contract in lib/ops/linalg.c), read the same way by
 * every backend's GEMM: whether the last two dims go to GEMM transposed, with which leading
 * dimension, where a batch starts, and when a broadcast right operand lets the whole batch
 * be one GEMM. */
#ifndef LZ_BACKEND_GEMM_H
#define LZ_BACKEND_GEMM_H

#include <assert.h>
#include "../core/internal.h"

/* How GEMM reads the last two dims (rows r, cols c) of x: transposed or not, and the leading
 * dimension. The constructor guaranteed that one of the two works. */
typedef struct { bool trans; int64_t ld; } mat_layout;

static inline mat_layout layout_of(const lz_array *x) {
    int nd = x->ndim;
    int64_t r = x->shape[nd - 2], c = x->shape[nd - 1];
    int64_t sr = x->strides[nd - 2], sc = x->strides[nd - 1];
    int64_t rmin = r > 1 ? r : 1, cmin = c > 1 ? c : 1;
    if ((c <= 1 || sc == 1) && (r <= 1 || sr >= cmin))
        return (mat_layout){false, r <= 1 ? cmin : sr};
    assert((r <= 1 || sr == 1) && (c <= 1 || sc >= rmin));
    return (mat_layout){true, c <= 1 ? rmin : sc};
}

/* Element offset of batch b (flat index over the nb batch dims) in x. */
static inline int64_t batch_offset(const lz_array *x, int nb, int64_t b) {
    int64_t off = 0;
    for (int d = nb - 1; d >= 0; d--) {
        int64_t n = x->shape[d];
        off += (b % n) * x->strides[d];
        b /= n;
    }
    return off;
}

/* [B..., m, k] @ [k, n]-broadcast with A's batch dims and rows forming one strided run of
 * rows: the whole product is one GEMM of M = B*m rows. Returns the row stride or 0. */
static inline int64_t folded_lda(const lz_array *a, const lz_array *b, int nb, int64_t k) {
    for (int d = 0; d < nb; d++)
        if (b->shape[d] != 1 && b->strides[d] != 0) return 0;
    if (k > 1 && a->strides[nb + 1] != 1) return 0;
    int64_t row = 0, expect = 0;
    for (int d = nb; d >= 0; d--) {         /* rows dim first, then batch dims outwards */
        if (a->shape[d] == 1) continue;
        if (!row) row = expect = a->strides[d];
        else if (a->strides[d] != expect) return 0;
        expect *= a->shape[d];
    }
    if (!row) row = k > 1 ? k : 1;          /* a single row */
    return row >= (k > 1 ? k : 1) ? row : 0;
}

#endif
