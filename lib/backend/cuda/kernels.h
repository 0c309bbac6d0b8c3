/* Launchers of the .cu kernels: plain C (no lz types beyond int64_t and the dtype code),
 * callable from the backend's C files. Each launches on `stream` (a cudaStream_t) and
 * returns without waiting; errors are read by the caller (cu_done). Dtype codes are
 * lz_dtype's values (LZ_F32 = 6, LZ_F16 = 4, LZ_BF16 = 5, ...). This header holds the shared
 * launchers; each kernel family declares its own in <family>.h. */
#ifndef LZ_CUDA_KERNELS_H
#define LZ_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- copy.cu: strided copy to row-major (the bytes of es-byte elements) ---- */
void cuk_strided_copy(void *dst, const void *src, int es, int ndim, const int64_t *shape,
                      const int64_t *strides, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
