/* lz_matmul: NumPy's matmul built as one MATMUL node.
 *
 * The MATMUL node (no params) multiplies A [..., m, k] by B [..., k, n] into a contiguous
 * [..., m, n]. Its contract, which the constructor establishes and the kernel trusts:
 *   - both inputs have ndim >= 2 and the SAME batch shape as the output (broadcast batch
 *     dims are views with stride 0, so a broadcast matrix is read, never copied);
 *   - the last two dims of each input are a layout GEMM can read: strides (ld, 1) (no
 *     transpose) or (1, ld) (transposed), ld >= the row length; an operand with any other
 *     matrix layout (a slice with step, a flip) is made contiguous here, by a COPY node;
 *   - dtype float32 (float16/bfloat16 are cast to float32 and the result cast back) or
 *     int64 (integer and bool operands: exact int64 accumulation by a naive kernel, the
 *     result cast back to the promoted integer dtype, wrapping like NumPy; bool @ bool is
 *     "any(a and b)", as in NumPy).
 * 1-d operands follow NumPy: a vector on the left is a row [1, k], on the right a column
 * [k, 1], and that dimension is dropped from the result (vector @ vector is 0-d).
 * For autograd: dA = dC @ swapaxes(B), dB = swapaxes(A) @ dC (the transposes are views, so
 * no copies), summed over the broadcast batch dims by the vjp of the broadcasting view;
 * except that [..., m, k] @ [k, n] whose rows fold into one run is built as a 2-D product
 * (see build), whose dB is one GEMM. */
#include <string.h>
#include "../core/internal.h"
#include "ops.h"

/* Whether the last two dims (rows, cols) can be handed to GEMM as they are. */
static bool gemm_layout(const lz_array *x) {
    int nd = x->ndim;
    int64_t r = x->shape[nd - 2], c = x->shape[nd - 1];
    int64_t sr = x->strides[nd - 2], sc = x->strides[nd - 1];
    int64_t rmin = r > 1 ? r : 1, cmin = c > 1 ? c : 1;   /* a size-1 dim's stride is free */
    return ((c <= 1 || sc == 1) && (r <= 1 || sr >= cmin)) ||
           ((r <= 1 || sr == 1) && (c <= 1 || sc >= rmin));
}

/* View of x with batch dims broadcast to `batch` (nb dims) and its own last two dims. */
static lz_array *batch_view(lz_array *x, int nb, const int64_t *batch) {
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    int xb = x->ndim - 2;
    for (int d = 0; d < nb; d++) {
        int k = d - (nb - xb);
        shape[d] = batch[d];
        strides[d] = k < 0 || x->shape[k] == 1 ? 0 : x->strides[k];
    }
    for (int d = 0; d < 2; d++) {
        shape[nb + d] = x->shape[xb + d];
        strides[nb + d] = x->strides[xb + d];
    }
    if (nb == xb && !memcmp(shape, x->shape, (size_t)x->ndim * sizeof *shape))
        return lz_retain(x);
    return lz_view_of(x, nb + 2, shape, strides, x->offset);
}

/* Whether the batch dims and rows of x (not transposed) are one strided run of rows, so
 * that x reshapes to [rows, k] as a view. */
static bool rows_fold(const lz_array *x) {
    int nd = x->ndim;
    if (x->shape[nd - 1] > 1 && x->strides[nd - 1] != 1) return false;
    int64_t expect = -1;
    for (int d = nd - 2; d >= 0; d--) {
        if (x->shape[d] == 1) continue;
        if (expect >= 0 && x->strides[d] != expect) return false;
        expect = x->strides[d] * x->shape[d];
    }
    return true;
}

/* Builds the node inside the caller's pool; returns a pooled array or NULL. */
static lz_array *build(lz_array *a, lz_array *b) {
    char sa[160], sb[160];
    if (a->ndim < 1 || b->ndim < 1)
        return lz_fail("matmul: operands must have at least 1 dimension, got %s @ %s",
                       lz_shape_str(a, sa, sizeof sa), lz_shape_str(b, sb, sizeof sb));
    lz_dtype rt = lz_promote_types(a->dtype, b->dtype);
    lz_dtype ct = lz_dtype_is_float(rt) ? LZ_F32 : LZ_I64;
    int a_vec = a->ndim == 1, b_vec = b->ndim == 1;
    lz_array *x = a_vec ? lz_expand_dims(a, 0) : a;
    lz_array *y = b_vec ? lz_expand_dims(b, 1) : b;
    if (!x || !y) return NULL;
    int64_t k = x->shape[x->ndim - 1];
    if (y->shape[y->ndim - 2] != k)
        return lz_fail("matmul: inner dimensions differ: %s @ %s (%lld != %lld)",
                       lz_shape_str(a, sa, sizeof sa), lz_shape_str(b, sb, sizeof sb),
                       (long long)k, (long long)y->shape[y->ndim - 2]);
    /* broadcast batch shape */
    int xb = x->ndim - 2, yb = y->ndim - 2, nb = xb > yb ? xb : yb;
    int64_t batch[LZ_MAX_DIMS];
    for (int d = 0; d < nb; d++) {
        int i = d - (nb - xb), j = d - (nb - yb);
        int64_t p = i < 0 ? 1 : x->shape[i], q = j < 0 ? 1 : y->shape[j];
        if (p != q && p != 1 && q != 1)
            return lz_fail("matmul: batch dimensions of %s and %s cannot be broadcast together",
                           lz_shape_str(a, sa, sizeof sa), lz_shape_str(b, sb, sizeof sb));
        batch[d] = p == 1 ? q : p;
    }
    /* cast, then copy only what GEMM cannot read, then broadcast (a view: never a copy) */
    x = lz_astype(x, ct);
    y = lz_astype(y, ct);
    if (x && !gemm_layout(x)) x = lz_copy(x);
    if (y && !gemm_layout(y)) y = lz_copy(y);
    if (!x || !y) return NULL;
    /* [..., m, k] @ [k, n] (a linear layer on a batch of sequences) as ONE 2-D product of
     * all the rows, reshaped back. The kernel folds such a batch into one GEMM anyway; this
     * is for the gradients: the matrix's is then one GEMM over all the rows instead of a
     * batched product [..., k, n] summed over the batch (in a GPT's backward: 32x the
     * memory traffic and a strided reduction, ~8% of the step). */
    if (yb == 0 && xb > 0 && !b_vec && lz_size(x) > 0 && rows_fold(x)) {
        int64_t rows = lz_size(x) / k, shape[LZ_MAX_DIMS];
        lz_array *x2 = lz_reshape(x, 2, (int64_t[]){rows, k});
        lz_array *out = x2 ? build(x2, y) : NULL;
        if (!out) return NULL;
        memcpy(shape, x->shape, (size_t)(xb + 1) * sizeof *shape);
        shape[xb + 1] = y->shape[1];
        out = lz_reshape(out, xb + 2, shape);
        return ct != rt ? lz_astype(out, rt) : out;
    }
    lz_array *in[2] = {lz_autorelease(batch_view(x, nb, batch)),
                       lz_autorelease(batch_view(y, nb, batch))};
    if (!in[0] || !in[1]) return NULL;
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, batch, (size_t)nb * sizeof *batch);
    shape[nb] = x->shape[xb];
    shape[nb + 1] = y->shape[yb + 1];
    lz_array *out = lz_autorelease(lz_node(LZ_P_MATMUL, ct, nb + 2, shape, 2, in, NULL));
    if (ct != rt) out = lz_astype(out, rt);
    if (a_vec || b_vec) {       /* drop the dims the vectors were given */
        int nd = nb;
        if (!a_vec) shape[nd++] = x->shape[xb];
        if (!b_vec) shape[nd++] = y->shape[yb + 1];
        out = lz_reshape(out, nd, shape);
    }
    return out;
}

lz_array *lz_matmul(lz_array *a, lz_array *b) {
    if (!a || !b) return NULL;
    lz_pool_push();
    lz_array *r = lz_retain(build(a, b));
    lz_pool_pop();
    return lz_autorelease(r);
}
