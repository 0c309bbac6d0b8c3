/* Index, join, arg-reduce and scan primitives on the GPU: take, take_along_axis,
 * scatter_add, concatenate, pad (contracts in lib/ops/index.c), argmax / argmin
 * (lib/ops/reduce.c) and cumsum (lib/ops/sort.c). Semantics are the CPU kernels'
 * (lib/backend/cpu/index.c, reduce.c, sort.c); every layout is read in place through its
 * strides, every dtype the CPU takes is taken.
 *
 * Index errors. The CPU fails an eval whose indices are out of range, naming the op, the
 * index and the size. Here the indices are checked on the host, with the same message, when
 * their buffer holds a valid host copy (indices built from host data, the loader's batches):
 * reading them costs no synchronisation. Indices that live only on the device (computed by
 * an earlier GPU kernel: argmax, argsort, topk) are not checked, since that would mean
 * waiting for the stream; there an index still out of range after wrapping reads as 0 (take,
 * take_along_axis) or is dropped (scatter_add).
 *
 * scatter_add is deterministic and equal to the CPU bit for bit: each output element is
 * computed by one thread, which adds its updates in increasing update order (the CPU's
 * order). With up to DIRECT_MAX updates per line the thread scans them all
 * (O(size(out) * cnt)); beyond, (index << 32 | j) keys are sorted (one segment for the take
 * form, one per (outer, inner) column for the along form) and each thread adds its own run:
 * O(P log^2 P) for the sort plus O(size(out) + size(updates)) for the sums. */
#include <string.h>
#include "cuda.h"
#include "index.h"

#define DIRECT_MAX 16

_Static_assert(LZ_BOOL == 0 && LZ_U8 == 1 && LZ_I32 == 2 && LZ_I64 == 3 && LZ_F16 == 4 &&
               LZ_BF16 == 5 && LZ_F32 == 6, "dtype codes as index.cu numbers them");

/* The CPU's index check on a host copy of ix, when there is one (see the header). Dims
 * that broadcast (stride 0) are walked once: the first bad value in row-major order is the
 * same. */
static int check_indices(const char *op, const lz_array *ix, int64_t n, int axis) {
    if (!ix->buf || !ix->buf->data || !(ix->buf->valid & LZ_VALID_HOST) || !lz_size(ix)) return 0;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < ix->ndim; d++)
        if (ix->shape[d] > 1 && ix->strides[d] != 0) {
            shape[nd] = ix->shape[d];
            strides[nd++] = ix->strides[d];
        }
    cuk_lay l;
    cuk_lay_make(&l, nd, shape, strides);
    int64_t cnt = lz_shape_size(l.nd, l.shape);
    const char *base = lz_elem_ptr(ix);
    for (int64_t k = 0; k < cnt; k++) {
        int64_t off = 0, r = k;
        for (int d = l.nd - 1; d >= 0; d--) {
            off += (r % l.shape[d]) * l.strides[d];
            r /= l.shape[d];
        }
        int64_t v;
        switch (ix->dtype) {
        case LZ_U8: v = ((const uint8_t *)base)[off]; break;
        case LZ_I32: v = ((const int32_t *)base)[off]; break;
        default: v = ((const int64_t *)base)[off]; break;
        }
        int64_t x = v < 0 ? v + n : v;
        if (x < 0 || x >= n) {
            lz_fail("%s: index %lld is out of range for axis %d with size %lld", op, (long long)v,
                    axis, (long long)n);
            return -1;
        }
    }
    return 0;
}

/* a seen as [outer, n, ni] around axis ax. */
static void axis_walks(cuk_index_desc *d, const lz_array *a, int ax) {
    cuk_lay_make(&d->ao, ax, a->shape, a->strides);
    cuk_lay_make(&d->ai, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1);
    d->ast = a->strides[ax];
    d->n = a->shape[ax];
    d->outer = lz_shape_size(ax, a->shape);
    d->ni = lz_shape_size(a->ndim - ax - 1, a->shape + ax + 1);
}

/* The walk of ix: all of it (take form), or its dims before / after ax (along form). */
static void index_walks(cuk_index_desc *d, const lz_array *ix, int ax, int along) {
    d->idtype = (int)ix->dtype;
    d->along = along;
    if (along) {
        cuk_lay_make(&d->x1, ax, ix->shape, ix->strides);
        cuk_lay_make(&d->x2, ix->ndim - ax - 1, ix->shape + ax + 1, ix->strides + ax + 1);
        d->xst = ix->strides[ax];
    } else {
        cuk_lay_make(&d->x1, ix->ndim, ix->shape, ix->strides);
        cuk_lay_make(&d->x2, 0, NULL, NULL);
        d->xst = 0;
    }
}

/* ---- take: out[o, j, i] = a[o, idx[j], i] ---- */

static int take_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    lz_array *a = in[0], *ix = in[1];
    int ax = (int)p->i[0];
    size_t es = lz_dtype_size(a->dtype);
    if (check_indices("take", ix, a->shape[ax], ax)) return -1;
    cuk_index_desc d;
    axis_walks(&d, a, ax);
    index_walks(&d, ix, ax, 0);
    d.cnt = lz_size(ix);
    cuk_gather(cu_ptr(out), cu_ptr(a), cu_ptr(ix), (int)es, &d, cu_stream);
    return cu_done("take", out, 1,
                   (uint64_t)lz_size(out) * 2 * es + (uint64_t)d.cnt * lz_dtype_size(ix->dtype), 0);
}

/* ---- take_along_axis: out[o, j, i] = a[o, idx[o, j, i], i] (idx has out's shape) ---- */

static int take_along_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    lz_array *a = in[0], *ix = in[1];
    int ax = (int)p->i[0];
    size_t es = lz_dtype_size(a->dtype);
    if (check_indices("take_along_axis", ix, a->shape[ax], ax)) return -1;
    cuk_index_desc d;
    axis_walks(&d, a, ax);
    index_walks(&d, ix, ax, 1);
    d.cnt = out->shape[ax];
    cuk_gather(cu_ptr(out), cu_ptr(a), cu_ptr(ix), (int)es, &d, cu_stream);
    return cu_done("take_along_axis", out, 1, (uint64_t)lz_size(out) * (2 * es + 8), 0);
}

/* ---- scatter_add (both forms) ---- */

static int scatter_add_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    lz_array *a = in[0], *ix = in[1], *up = in[2];
    int ax = (int)p->i[0], along = (int)p->i[1];
    lz_dtype t = out->dtype;
    if (t != LZ_F32 && t != LZ_I32 && t != LZ_I64 && t != LZ_U8 && t != LZ_BOOL) {
        lz_fail("scatter_add: %s is not supported on the GPU", lz_dtype_name(t));
        return -1;
    }
    if (lz_size(up) && !lz_is_contiguous(up)) {   /* made so by the constructor */
        lz_fail("scatter_add: non-contiguous updates are not supported on the GPU");
        return -1;
    }
    size_t es = lz_dtype_size(t);
    uint64_t bytes = (uint64_t)(lz_size(out) * 2 + lz_size(up) * 2) * es + (uint64_t)lz_size(ix) * 8;
    if (check_indices("scatter_add", ix, a->shape[ax], ax)) return -1;
    cuk_index_desc d;
    axis_walks(&d, a, ax);
    index_walks(&d, ix, ax, along);
    d.cnt = along ? up->shape[ax] : lz_size(ix);
    if (!lz_size(out)) return cu_done("scatter_add", out, 1, bytes, 0);
    if (d.cnt <= DIRECT_MAX) {
        cuk_scatter_add_direct(cu_ptr(out), cu_ptr(a), cu_ptr(up), cu_ptr(ix), (int)t, &d, cu_stream);
        return cu_done("scatter_add", out, 1, bytes, 0);
    }
    if (d.n >= ((int64_t)1 << 31) || d.cnt >= ((int64_t)1 << 31)) {
        lz_fail("scatter_add: axes of 2^31 elements or more are not supported on the GPU yet");
        return -1;
    }
    int64_t P = 1;
    while (P < d.cnt) P <<= 1;
    int64_t rows = along ? d.outer * d.ni : 1;
    size_t kbytes = (size_t)rows * (size_t)P * 8, rbytes = along ? 0 : (size_t)d.n * 16;
    lz_buffer *scratch = cu_scratch(kbytes + rbytes);
    if (!scratch) return -1;
    uint64_t *keys = scratch->dev;
    int64_t *rng = along ? NULL : (int64_t *)((char *)scratch->dev + kbytes);
    cuk_scatter_keys(keys, cu_ptr(ix), &d, P, cu_stream);
    cuk_sort_u64_rows(keys, rows, P, cu_stream);
    if (!along) cuk_scatter_ranges(rng, keys, P, d.n, cu_stream);
    cuk_scatter_add_sorted(cu_ptr(out), cu_ptr(a), cu_ptr(up), (int)t, &d, keys, rng, P, cu_stream);
    int rc = cu_done("scatter_add", out, 1, bytes, 0);
    lz_buffer_release(scratch);
    return rc;
}

/* ---- concatenate: each input copied into its slab of the output ---- */

static int concat_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    int ax = (int)p->i[0];
    size_t es = lz_dtype_size(out->dtype);
    int64_t at = 0;
    for (int64_t k = 0; k < p->i[1]; k++) {
        const lz_array *x = in[k];
        int64_t nx = lz_size(x);
        if (nx) {
            cuk_lay dl, sl;
            cuk_lay_make(&dl, out->ndim, x->shape, out->strides);
            cuk_lay_make(&sl, x->ndim, x->shape, x->strides);
            char *dst = (char *)cu_ptr(out) + at * out->strides[ax] * (int64_t)es;
            cuk_index_copy(dst, &dl, cu_ptr(x), &sl, (int)es, nx, cu_stream);
        }
        at += x->shape[ax];
    }
    return cu_done("concatenate", out, 1, (uint64_t)lz_size(out) * 2 * es, 0);
}

/* ---- pad: the value outside, the input inside (one pass over the output) ---- */

static int pad_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0];
    size_t es = lz_dtype_size(out->dtype);
    int64_t n = lz_size(out);
    unsigned char v[8] = {0};
    lz_store_scalar(v, out->dtype, p->f[0]);
    uint64_t fill;
    memcpy(&fill, v, 8);
    cuk_pad_desc d;
    memset(&d, 0, sizeof d);
    d.nd = a->ndim;
    for (int k = 0; k < a->ndim; k++) {
        d.oshape[k] = out->shape[k];
        d.before[k] = p->i[2 * k];
        d.ashape[k] = a->shape[k];
        d.astrides[k] = a->strides[k];
    }
    cuk_pad(cu_ptr(out), cu_ptr(a), (int)es, &d, fill, n, cu_stream);
    return cu_done("pad", out, 1, (uint64_t)(n + lz_size(a)) * es, 0);
}

/* ---- argmax / argmin: params.i[0] = axis; first index wins ties, the first NaN wins ---- */

static int arg_gpu(lz_array *out, lz_array *in, int axis, int is_max) {
    const char *op = is_max ? "argmax" : "argmin";
    int64_t nout = lz_size(out);
    if (in->ndim == 0 || nout == 0) {
        if (nout) cudaMemsetAsync(cu_ptr(out), 0, 8, cu_stream);
        return cu_done(op, out, 1, 8, 0);
    }
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, in->shape, sizeof shape);
    shape[axis] = 1;
    cuk_lay lines;
    cuk_lay_make(&lines, in->ndim, shape, in->strides);
    cuk_arg_reduce(cu_ptr(out), cu_ptr(in), (int)in->dtype, &lines, in->strides[axis],
                   in->shape[axis], nout, is_max, cu_stream);
    return cu_done(op, out, 1, (uint64_t)lz_size(in) * lz_dtype_size(in->dtype) + (uint64_t)nout * 8, 0);
}

static int argmax_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return arg_gpu(out, in[0], (int)p->i[0], 1);
}

static int argmin_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return arg_gpu(out, in[0], (int)p->i[0], 0);
}

/* ---- cumsum: i[0] = axis, i[1] = reverse; floats in double, integers in int64 ---- */

static int cumsum_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    const lz_array *a = in[0];
    int ax = (int)p->i[0], reverse = (int)p->i[1];
    cuk_lay lo, li;
    cuk_lay_make(&lo, ax, a->shape, a->strides);
    cuk_lay_make(&li, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1);
    cuk_cumsum(cu_ptr(out), (int)out->dtype, cu_ptr(a), (int)a->dtype, &lo, &li, a->strides[ax],
               a->shape[ax], lz_shape_size(ax, a->shape),
               lz_shape_size(a->ndim - ax - 1, a->shape + ax + 1), reverse, cu_stream);
    return cu_done("cumsum", out, 1,
                   (uint64_t)lz_size(a) * (lz_dtype_size(a->dtype) + lz_dtype_size(out->dtype)), 0);
}

void cuda_register_index(void) {
    lz_prims[LZ_P_GATHER].gpu = take_gpu;
    lz_prims[LZ_P_TAKE_ALONG].gpu = take_along_gpu;
    lz_prims[LZ_P_SCATTER_ADD].gpu = scatter_add_gpu;
    lz_prims[LZ_P_CONCAT].gpu = concat_gpu;
    lz_prims[LZ_P_PAD].gpu = pad_gpu;
    lz_prims[LZ_P_ARGMAX].gpu = argmax_gpu;
    lz_prims[LZ_P_ARGMIN].gpu = argmin_gpu;
    lz_prims[LZ_P_CUMSUM].gpu = cumsum_gpu;
}
