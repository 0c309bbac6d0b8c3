/* Launchers of sort.cu (SORT, ARGSORT) and the strided-walk descriptor that the index,
 * sort and random families pass to their kernels. C-compatible: included by sort.c,
 * index.c, random.c (gcc) and by sort.cu, index.cu (nvcc). */
#ifndef LZ_CUDA_SORT_H
#define LZ_CUDA_SORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A strided walk over a block of dims: row-major flat index k over shape[0..nd) goes to
 * sum(coordinate[d] * strides[d]) elements. Passed to kernels by value. */
typedef struct {
    int nd;
    int64_t shape[8];
    int64_t strides[8];
} cuk_lay;

/* The walk of dims [0, nd) of (shape, strides): size-1 dims dropped, dims that continue
 * each other merged (the flat-index -> offset map is unchanged, only cheaper). */
static inline void cuk_lay_make(cuk_lay *l, int nd, const int64_t *shape, const int64_t *strides) {
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (m && l->strides[m - 1] == strides[d] * shape[d]) {
            l->shape[m - 1] *= shape[d];
            l->strides[m - 1] = strides[d];
        } else {
            l->shape[m] = shape[d];
            l->strides[m++] = strides[d];
        }
    }
    for (int d = m; d < 8; d++) { l->shape[d] = 1; l->strides[d] = 0; }
    l->nd = m;
}

/* Sorts each of `rows` consecutive segments of P uint64 keys (P a power of two) in place,
 * ascending: a bitonic network, in shared memory for segments of up to 4096 keys, else
 * global passes for the long strides and shared ones for the rest. */
void cuk_sort_u64_rows(uint64_t *keys, int64_t rows, int64_t P, void *stream);

/* SORT (argsort 0: out gets the values, src's dtype) or ARGSORT (argsort 1: out int64
 * positions) of src seen as [outer, n, ni] (rows = outer * ni): row r = o * ni + i starts at
 * offset lay_off(outer, o) + lay_off(inner, i) and steps by st; out is contiguous
 * [outer, n, ni]. Stable, NaNs last, -0 == +0, descending by complemented keys (the CPU's
 * order exactly). scratch: rows * P * (8 for dtypes of <= 4 bytes, else 16) bytes, where P
 * is the power of two >= n. */
void cuk_sort(void *out, const void *src, int dtype, const cuk_lay *outer, const cuk_lay *inner,
              int64_t st, int64_t n, int64_t ni, int64_t rows, int64_t P, int descending,
              int argsort, void *scratch, void *stream);

#ifdef __cplusplus
}
#endif

#endif
