/* SORT and ARGSORT on the GPU (contract in lib/ops/sort.c; the order is the CPU's,
 * lib/backend/cpu/sort.c: stable, NaNs last, -0 == +0, descending for topk by complemented
 * keys). Every dtype, any input layout (read through its strides in place). The rows are
 * sorted as (key, position) values in a bitonic network (sort.cu). CUMSUM, which the CPU
 * registers next to these, is in index.c. */
#include "cuda.h"
#include "sort.h"

_Static_assert(LZ_BOOL == 0 && LZ_U8 == 1 && LZ_I32 == 2 && LZ_I64 == 3 && LZ_F16 == 4 &&
               LZ_BF16 == 5 && LZ_F32 == 6, "dtype codes as sort.cu numbers them");

static int sort_common(lz_array *out, lz_array *a, const lz_params *p, int argsort) {
    const char *op = argsort ? "argsort" : "sort";
    int ax = (int)p->i[0];
    int kb = (int)lz_dtype_size(a->dtype);
    int64_t n = a->shape[ax], outer = lz_shape_size(ax, a->shape);
    int64_t ni = lz_shape_size(a->ndim - ax - 1, a->shape + ax + 1), rows = outer * ni;
    if (kb <= 4 && n > 0xffffffffll) {
        lz_fail("%s: rows of %lld elements are too long", op, (long long)n);
        return -1;
    }
    size_t es = lz_dtype_size(a->dtype), oes = lz_dtype_size(out->dtype);
    uint64_t bytes = (uint64_t)lz_size(a) * (es + oes);
    if (rows == 0 || n == 0) return cu_done(op, out, 1, bytes, 0);
    int64_t P = 1;
    while (P < n) P <<= 1;
    cuk_lay lo, li;
    cuk_lay_make(&lo, ax, a->shape, a->strides);
    cuk_lay_make(&li, a->ndim - ax - 1, a->shape + ax + 1, a->strides + ax + 1);
    lz_buffer *scratch = cu_scratch((size_t)rows * (size_t)P * (kb <= 4 ? 8 : 16));
    if (!scratch) return -1;
    cuk_sort(cu_ptr(out), cu_ptr(a), (int)a->dtype, &lo, &li, a->strides[ax], n, ni, rows, P,
             (int)p->i[1], argsort, scratch->dev, cu_stream);
    int rc = cu_done(op, out, 1, bytes, 0);
    lz_buffer_release(scratch);
    return rc;
}

static int sort_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return sort_common(out, in[0], p, 0);
}

static int argsort_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    return sort_common(out, in[0], p, 1);
}

void cuda_register_sort(void) {
    lz_prims[LZ_P_SORT].gpu = sort_gpu;
    lz_prims[LZ_P_ARGSORT].gpu = argsort_gpu;
}
