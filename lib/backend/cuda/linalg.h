/* Launchers of linalg.cu. */
#ifndef LZ_CUDA_LINALG_H
#define LZ_CUDA_LINALG_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Exact int64 product of nbatch [m,k] x [k,n] matrices, wrapping; element (i, p) of batch b
 * of A is a[aoff[b] + i * ar + p * ac] (likewise B); C is contiguous. aoff/boff: device
 * arrays of nbatch offsets. */
void cuk_matmul_i64(int64_t *c, const int64_t *a, const int64_t *b, const int64_t *aoff,
                    const int64_t *boff, int64_t ar, int64_t ac, int64_t br, int64_t bc,
                    int64_t nbatch, int64_t m, int64_t n, int64_t k, void *stream);
#ifdef __cplusplus
}
#endif
#endif
