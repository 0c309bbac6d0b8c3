/* Launchers of index.cu: take, take_along_axis, scatter_add, concatenate, pad, argmax /
 * argmin and cumsum. C-compatible; dtype codes are lz_dtype's values. Each launches on
 * `stream` and returns at once (errors are read by cu_done). */
#ifndef LZ_CUDA_INDEX_H
#define LZ_CUDA_INDEX_H

#include <stdint.h>
#include "sort.h"   /* cuk_lay, cuk_lay_make, cuk_sort_u64_rows */

#ifdef __cplusplus
extern "C" {
#endif

/* An indexed op seen as [outer, n, ni] for `a` (n = a's size on the axis) and
 * [outer, cnt, ni] for the indices' side (take's output, the updates). Element (o, t, i) of
 * a is at lay_off(ao, o) + t * ast + lay_off(ai, i). The index of (o, j, i) is read at
 * lay_off(x1, j) (take form: along 0) or lay_off(x1, o) + j * xst + lay_off(x2, i) (along
 * form: along 1); index dtype uint8, int32 or int64, negative ones counted from n. */
typedef struct {
    cuk_lay ao, ai;
    int64_t ast;
    cuk_lay x1, x2;
    int64_t xst;
    int idtype, along;
    int64_t n, outer, cnt, ni;
} cuk_index_desc;

/* take / take_along_axis: out (contiguous [outer, cnt, ni], es-byte elements) gets
 * a[o, index(o, j, i), i]; an index still out of range after wrapping gives 0 bits (the
 * caller checks indices it can see on the host). */
void cuk_gather(void *out, const void *a, const void *ix, int es, const cuk_index_desc *d,
                void *stream);

/* scatter_add, out contiguous [outer, n, ni] of dtype (float32, int32, int64, uint8, bool):
 * out[o, t, i] = a[o, t, i] + the updates (contiguous [outer, cnt, ni]) whose index is t,
 * added in increasing j (bool: or), exactly the CPU's sums. Out-of-range indices are
 * dropped. The direct form loops over all cnt updates per output element: O(size(out) * cnt),
 * for small cnt. */
void cuk_scatter_add_direct(void *out, const void *a, const void *upd, const void *ix, int dtype,
                            const cuk_index_desc *d, void *stream);
/* The sorted form: keys (rows * P, rows = along ? outer * ni : 1, P a power of two >= cnt)
 * filled with index << 32 | j per row (out of range and padding: all ones), then sorted with
 * cuk_sort_u64_rows; for the take form rng (2 * n int64) gets each target's range of keys;
 * then each output element adds its own run of updates in j order. */
void cuk_scatter_keys(uint64_t *keys, const void *ix, const cuk_index_desc *d, int64_t P,
                      void *stream);
void cuk_scatter_ranges(int64_t *rng, const uint64_t *keys, int64_t P, int64_t n, void *stream);
void cuk_scatter_add_sorted(void *out, const void *a, const void *upd, int dtype,
                            const cuk_index_desc *d, const uint64_t *keys, const int64_t *rng,
                            int64_t P, void *stream);

/* dst[lay_off(dl, k)] = src[lay_off(sl, k)] for k < n, es-byte elements (concatenate). */
void cuk_index_copy(void *dst, const cuk_lay *dl, const void *src, const cuk_lay *sl, int es,
                    int64_t n, void *stream);

/* pad: out (contiguous, oshape) is a where the coordinate minus `before` lies inside
 * ashape (read with astrides), else the es bytes of fill. */
typedef struct {
    int nd;
    int64_t oshape[8], before[8], ashape[8], astrides[8];
} cuk_pad_desc;
void cuk_pad(void *out, const void *a, int es, const cuk_pad_desc *d, uint64_t fill,
             int64_t total, void *stream);

/* argmax (is_max 1) / argmin over lines: line q starts at lay_off(lines, q) and has A
 * elements at stride sa; out[q] = the position of its best (first index wins ties, the
 * first NaN wins). Float dtypes compare as float, the others as int64. */
void cuk_arg_reduce(int64_t *out, const void *in, int dtype, const cuk_lay *lines, int64_t sa,
                    int64_t A, int64_t nout, int is_max, void *stream);

/* cumsum along [outer, n, ni] (a at lay_off(lo, o) + j * st + lay_off(li, i)) into out
 * (contiguous, odtype: the float dtype of in, or int64): floats in double, integers in
 * wrapping 64 bits; reverse: sums of j..n-1. */
void cuk_cumsum(void *out, int odtype, const void *in, int dtype, const cuk_lay *lo,
                const cuk_lay *li, int64_t st, int64_t n, int64_t outer, int64_t ni, int reverse,
                void *stream);

#ifdef __cplusplus
}
#endif

#endif
