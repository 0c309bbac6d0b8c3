/* Creation ops. full/zeros/ones are lazy (a broadcast scalar copied when evaluated, so they
 * fuse); arange/linspace/eye fill host memory directly: they are small and built once. */
#include <math.h>
#include "../core/internal.h"
#include "ops.h"

lz_array *lz_full(int ndim, const int64_t *shape, double v, lz_dtype t) {
    if (ndim < 0 || ndim > LZ_MAX_DIMS)
        return lz_fail("full: arrays have at most %d dimensions, got %d", LZ_MAX_DIMS, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) return lz_fail("full: negative dimension %lld", (long long)shape[d]);
    lz_pool_push();
    lz_array *s = lz_scalar(v, t);
    lz_array *b = lz_broadcast_to(s, ndim, shape);
    lz_array *r = b ? lz_node(LZ_P_COPY, t, ndim, shape, 1, &b, NULL) : NULL;
    lz_pool_pop();
    return lz_autorelease(r);
}

lz_array *lz_zeros(int ndim, const int64_t *shape, lz_dtype t) { return lz_full(ndim, shape, 0, t); }
lz_array *lz_ones(int ndim, const int64_t *shape, lz_dtype t) { return lz_full(ndim, shape, 1, t); }
lz_array *lz_zeros_like(lz_array *a) { return a ? lz_full(a->ndim, a->shape, 0, a->dtype) : NULL; }
lz_array *lz_ones_like(lz_array *a) { return a ? lz_full(a->ndim, a->shape, 1, a->dtype) : NULL; }
lz_array *lz_full_like(lz_array *a, double v) { return a ? lz_full(a->ndim, a->shape, v, a->dtype) : NULL; }

lz_array *lz_arange(double start, double stop, double step, lz_dtype t) {
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return lz_fail("arange: start %g, stop %g, step %g do not make a finite range", start,
                       stop, step);
    double c = ceil((stop - start) / step);
    int64_t n = c > 0 ? (int64_t)c : 0;
    lz_array *a = lz_empty(1, &n, t);
    if (!a) return NULL;
    size_t es = lz_dtype_size(t);
    for (int64_t i = 0; i < n; i++)
        lz_store_scalar((char *)a->buf->data + i * (int64_t)es, t, start + (double)i * step);
    return a;
}

lz_array *lz_linspace(double start, double stop, int64_t n, lz_dtype t) {
    if (n < 0) return lz_fail("linspace: negative count %lld", (long long)n);
    lz_array *a = lz_empty(1, &n, t);
    if (!a) return NULL;
    size_t es = lz_dtype_size(t);
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0;
    for (int64_t i = 0; i < n; i++)
        lz_store_scalar((char *)a->buf->data + i * (int64_t)es, t,
                        i == n - 1 && n > 1 ? stop : start + (double)i * step);
    return a;
}

lz_array *lz_eye(int64_t n, int64_t m, int64_t k, lz_dtype t) {
    if (m < 0) m = n;
    if (n < 0) return lz_fail("eye: negative size %lld", (long long)n);
    int64_t shape[2] = {n, m};
    lz_array *a = lz_empty(2, shape, t);
    if (!a) return NULL;
    size_t es = lz_dtype_size(t);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            lz_store_scalar((char *)a->buf->data + (i * m + j) * (int64_t)es, t, j - i == k);
    return a;
}
