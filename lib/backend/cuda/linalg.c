/* MATMUL on the GPU (contract in lib/ops/linalg.c): float32 through cuBLAS with transposes
 * passed as flags, batches as one strided-batched call when each operand's batch offsets
 * are a single stride (broadcast operands have stride 0), else one call per batch; int64 by
 * an exact naive kernel. cuBLAS is column-major: row-major C = A B is C^T = B^T A^T, so the
 * operands are passed swapped. TF32 is off unless LZ_TF32=1 (start.c). */
#include <cublas_v2.h>
#include <stdlib.h>
#include <string.h>
#include "cuda.h"
#include "linalg.h"
#include "../gemm.h"

/* The stride between consecutive batches if offsets are b * stride for all b, else -1. */
static int64_t batch_stride(const lz_array *x, int nb, int64_t nbatch) {
    if (nbatch <= 1) return 0;
    int64_t s = batch_offset(x, nb, 1);
    for (int d = 0; d < nb; d++) {   /* every non-trivial dim must continue the same run */
        int64_t expect = s;
        for (int e = d + 1; e < nb; e++) expect *= x->shape[e];
        if (x->shape[d] > 1 && x->strides[d] != expect) return -1;
    }
    return s;
}

static int blas_fail(const lz_array *out, cublasStatus_t st) {
    char s[160];
    lz_fail("matmul -> %s: cuBLAS error %d", lz_shape_str(out, s, sizeof s), (int)st);
    return -1;
}

static int gemm_f32(lz_array *out, lz_array *a, lz_array *b, int nb, int64_t nbatch, int64_t m,
                    int64_t n, int64_t k) {
    cublasHandle_t h = cu_blas();
    const float one = 1.0f, zero = 0.0f;
    float *c = cu_ptr(out);
    const float *pa = cu_ptr(a), *pb = cu_ptr(b);
    mat_layout la = layout_of(a), lb = layout_of(b);
    int64_t lda = nbatch > 1 ? folded_lda(a, b, nb, k) : 0;
    if (lda) {
        m *= nbatch;
        nbatch = 1;
        la = (mat_layout){false, lda};
    }
    cublasOperation_t ta = la.trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t st;
    int64_t sa = batch_stride(a, nb, nbatch), sb = batch_stride(b, nb, nbatch);
    if (nbatch == 1) {
        st = cublasSgemm(h, tb, ta, (int)n, (int)m, (int)k, &one, pb + batch_offset(b, nb, 0),
                         (int)lb.ld, pa + batch_offset(a, nb, 0), (int)la.ld, &zero, c, (int)n);
    } else if (sa >= 0 && sb >= 0) {
        st = cublasSgemmStridedBatched(h, tb, ta, (int)n, (int)m, (int)k, &one, pb, (int)lb.ld, sb,
                                       pa, (int)la.ld, sa, &zero, c, (int)n, m * n, (int)nbatch);
    } else {
        st = CUBLAS_STATUS_SUCCESS;
        for (int64_t i = 0; i < nbatch && st == CUBLAS_STATUS_SUCCESS; i++)
            st = cublasSgemm(h, tb, ta, (int)n, (int)m, (int)k, &one, pb + batch_offset(b, nb, i),
                             (int)lb.ld, pa + batch_offset(a, nb, i), (int)la.ld, &zero,
                             c + i * m * n, (int)n);
    }
    return st == CUBLAS_STATUS_SUCCESS ? 0 : blas_fail(out, st);
}

static int gemm_i64(lz_array *out, lz_array *a, lz_array *b, int nb, int64_t nbatch, int64_t m,
                    int64_t n, int64_t k) {
    int64_t *offs = malloc((size_t)(2 * nbatch) * sizeof *offs);
    if (!offs) { lz_fail("matmul: out of memory"); return -1; }
    for (int64_t i = 0; i < nbatch; i++) {
        offs[i] = batch_offset(a, nb, i);
        offs[nbatch + i] = batch_offset(b, nb, i);
    }
    lz_buffer *t = cu_scratch((size_t)(2 * nbatch) * sizeof *offs);
    int rc = -1;
    if (t) {
        cudaError_t e = cudaMemcpyAsync(t->dev, offs, (size_t)(2 * nbatch) * sizeof *offs,
                                        cudaMemcpyHostToDevice, cu_stream);
        if (e != cudaSuccess) {
            rc = cu_fail("matmul", out, e);
        } else {
            const int64_t *d = t->dev;
            cuk_matmul_i64(cu_ptr(out), cu_ptr(a), cu_ptr(b), d, d + nbatch, a->strides[nb],
                           a->strides[nb + 1], b->strides[nb], b->strides[nb + 1], nbatch, m, n, k,
                           cu_stream);
            rc = 0;
        }
        lz_buffer_release(t);
    }
    free(offs);
    return rc;
}

static int matmul_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    (void)p;
    lz_array *a = in[0], *b = in[1];
    int nb = out->ndim - 2;
    int64_t m = out->shape[nb], n = out->shape[nb + 1], k = a->shape[nb + 1];
    int64_t nbatch = lz_shape_size(nb, out->shape);
    size_t es = lz_dtype_size(out->dtype);
    if (nbatch * m * n == 0) return 0;
    int rc;
    if (k == 0) {
        cudaError_t e = cudaMemsetAsync(cu_ptr(out), 0, (size_t)(nbatch * m * n) * es, cu_stream);
        rc = e == cudaSuccess ? 0 : cu_fail("matmul", out, e);
    } else if (out->dtype == LZ_F32) {
        rc = gemm_f32(out, a, b, nb, nbatch, m, n, k);
    } else {
        rc = gemm_i64(out, a, b, nb, nbatch, m, n, k);
    }
    if (rc) return rc;
    return cu_done("matmul", out, 1, (uint64_t)(nbatch * (m * k + k * n + m * n)) * es,
                   (uint64_t)(2 * nbatch * m * n * k));
}

void cuda_register_linalg(void) { lz_prims[LZ_P_MATMUL].gpu = matmul_gpu; }
