/* MATMUL kernel (contract in lib/ops/linalg.c): float32 through OpenBLAS's cblas_sgemm with
 * transposes passed as flags, int64 by a naive exact loop.
 *
 * Threads: a big GEMM is threaded by OpenBLAS itself (its thread count is set once by the
 * backend's set_threads). Many small GEMMs (a batch of attention heads), or a batch that
 * splits evenly over the threads, are spread over OpenMP threads instead, with OpenBLAS held
 * to one thread meanwhile (its OpenMP build does that by itself inside a parallel region),
 * so the two kinds of threads never stack. */
#include <assert.h>
#include <cblas.h>
#include <string.h>
#include "cpu.h"
#include "../gemm.h"

#define SMALL_GEMM (4 * 65536)   /* m*n*k at or below which OpenBLAS stays single-threaded */

static void gemm_f32(lz_array *out, lz_array *a, lz_array *b, int nb, int64_t nbatch,
                     int64_t m, int64_t n, int64_t k) {
    float *c = lz_elem_ptr(out);
    const float *pa = lz_elem_ptr(a), *pb = lz_elem_ptr(b);
    mat_layout la = layout_of(a), lb = layout_of(b);
    CBLAS_TRANSPOSE ta = la.trans ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = lb.trans ? CblasTrans : CblasNoTrans;
    int64_t lda = nbatch > 1 ? folded_lda(a, b, nb, k) : 0;
    if (lda) {   /* one GEMM of nbatch * m rows, A read row by row */
        m *= nbatch;
        nbatch = 1;
        la.trans = false;
        la.ld = lda;
        ta = CblasNoTrans;
    }
    /* A thin product (one dim <= 128, as every GEMM of a width-128 transformer) big enough
     * to share: its rows, or its columns when they are more, split over our threads, one
     * single-threaded GEMM each. Measured on the GPT step, 2 threads: these GEMMs went from
     * 156-172 to 172-188 GFLOP/s (OpenBLAS's own split of them is less even); square ones
     * are left to OpenBLAS (a 256^3 lost 5% this way). */
    int ct0 = cpu_threads();
    bool by_cols = n > m;
    int64_t span = by_cols ? n : m;
    int64_t thin = m < n ? (m < k ? m : k) : (n < k ? n : k);
    if (nbatch == 1 && ct0 > 1 && thin <= 128 && span >= 64 * ct0 && m * n * k >= (1 << 26)) {
        const float *pb0 = pb + batch_offset(b, nb, 0);
        int64_t part = (span / ct0 + 15) / 16 * 16;
        int blas_threads = openblas_get_num_threads();
        if (blas_threads > 1) openblas_set_num_threads(1);
        #pragma omp parallel for num_threads(ct0) schedule(static)
        for (int t = 0; t < ct0; t++) {
            int64_t i0 = t * part, len = span - i0 < part ? span - i0 : part;
            if (len <= 0) continue;
            if (by_cols)
                cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)len, (int)k, 1.0f, pa, la.ld,
                            lb.trans ? pb0 + i0 * lb.ld : pb0 + i0, lb.ld, 0.0f, c + i0, (int)n);
            else
                cblas_sgemm(CblasRowMajor, ta, tb, (int)len, (int)n, (int)k, 1.0f,
                            la.trans ? pa + i0 : pa + i0 * la.ld, la.ld, pb0, lb.ld, 0.0f,
                            c + i0 * n, (int)n);
        }
        if (blas_threads > 1) openblas_set_num_threads(blas_threads);
        return;
    }
    if (lda) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)m, (int)n, (int)k, 1.0f,
                    pa, (int)lda, pb + batch_offset(b, nb, 0), lb.ld, 0.0f, c, (int)n);
        return;
    }
    /* Batches go to OpenMP threads when each GEMM is small, and also when they split evenly
     * (or nearly: at least 4 per thread) over the threads: OpenBLAS 0.3.21 runs GEMMs up to
     * m*n*k = 100^3 with its single-threaded "small matrix" kernels whatever its thread
     * count, so the 128x128x32 head products of an attention backward (above SMALL_GEMM)
     * ran one after another on one core. */
    int ct = cpu_threads();
    bool spread = m * n * k <= SMALL_GEMM || nbatch % ct == 0 || nbatch >= 4 * ct;
    int threads = nbatch > 1 && spread && nbatch * m * n * k >= 65536 ? ct : 1;
#define GEMM_BATCH(i)                                                                  \
    cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f,                   \
                pa + batch_offset(a, nb, i), la.ld, pb + batch_offset(b, nb, i), lb.ld, \
                0.0f, c + (i) * m * n, (int)n)
    if (threads == 1) {
        /* No OpenMP region around it, not even a one-thread one: OpenBLAS's OpenMP build
         * would open a NESTED team whose threads compete with the idle, still spinning
         * workers of the main team (measured: a 1024 GEMM at 70% of raw cblas_sgemm). */
        for (int64_t i = 0; i < nbatch; i++) GEMM_BATCH(i);
        return;
    }
    int blas_threads = openblas_get_num_threads();
    if (blas_threads > 1) openblas_set_num_threads(1);   /* never stack them */
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < nbatch; i++) GEMM_BATCH(i);
    if (blas_threads > 1) openblas_set_num_threads(blas_threads);
#undef GEMM_BATCH
}

/* Exact integer product: int64 accumulation, wrapping on overflow like NumPy. */
static void gemm_i64(lz_array *out, lz_array *a, lz_array *b, int nb, int64_t nbatch,
                     int64_t m, int64_t n, int64_t k) {
    uint64_t *c = lz_elem_ptr(out);
    const int64_t *pa = lz_elem_ptr(a), *pb = lz_elem_ptr(b);
    int64_t ar = a->strides[nb], ac = a->strides[nb + 1];
    int64_t br = b->strides[nb], bc = b->strides[nb + 1];
    int threads = nbatch * m * n * k >= 65536 ? cpu_threads() : 1;
    #pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t r = 0; r < nbatch * m; r++) {
        int64_t bi = r / m, i = r % m;
        const int64_t *x = pa + batch_offset(a, nb, bi) + i * ar;
        const int64_t *y = pb + batch_offset(b, nb, bi);
        uint64_t *row = c + r * n;
        memset(row, 0, (size_t)n * sizeof *row);
        for (int64_t p = 0; p < k; p++) {
            uint64_t v = (uint64_t)x[p * ac];
            const int64_t *yr = y + p * br;
            for (int64_t j = 0; j < n; j++) row[j] += v * (uint64_t)yr[j * bc];
        }
    }
}

static int matmul_kernel(lz_array *out, lz_array *const *in, const lz_params *p) {
    (void)p;
    lz_array *a = in[0], *b = in[1];
    int nb = out->ndim - 2;
    int64_t m = out->shape[nb], n = out->shape[nb + 1], k = a->shape[nb + 1];
    int64_t nbatch = lz_shape_size(nb, out->shape);
    size_t es = lz_dtype_size(out->dtype);
    if (nbatch * m * n == 0) return 0;
    if (k == 0) {
        memset(lz_elem_ptr(out), 0, (size_t)(nbatch * m * n) * es);
    } else if (out->dtype == LZ_F32) {
        gemm_f32(out, a, b, nb, nbatch, m, n, k);
    } else {
        assert(out->dtype == LZ_I64);
        gemm_i64(out, a, b, nb, nbatch, m, n, k);
    }
    lz_stats_add(1, (uint64_t)(nbatch * (m * k + k * n + m * n)) * es,
                 (uint64_t)(2 * nbatch * m * n * k));
    return 0;
}

void cpu_register_linalg(void) { lz_prims[LZ_P_MATMUL].cpu = matmul_kernel; }
