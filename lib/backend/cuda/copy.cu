// Strided copies on the GPU: a view's elements, row-major, into contiguous memory.
#include <cuda_runtime.h>
#include <stdint.h>
#include "kernels.h"

struct layout { int ndim; int64_t shape[8]; int64_t strides[8]; };

template <typename T>
__global__ void strided_copy(T *dst, const T *src, layout l, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, off = 0;
        for (int d = l.ndim - 1; d >= 0; d--) {
            int64_t k = r % l.shape[d];
            r /= l.shape[d];
            off += k * l.strides[d];
        }
        dst[i] = src[off];
    }
}

extern "C" void cuk_strided_copy(void *dst, const void *src, int es, int ndim, const int64_t *shape,
                                 const int64_t *strides, int64_t n, void *stream) {
    if (n <= 0) return;
    layout l;
    l.ndim = ndim;
    for (int d = 0; d < ndim; d++) { l.shape[d] = shape[d]; l.strides[d] = strides[d]; }
    int64_t blocks = (n + 255) / 256;
    int grid = (int)(blocks < 65536 * 8 ? blocks : 65536 * 8);
    cudaStream_t s = (cudaStream_t)stream;
    switch (es) {
    case 1: strided_copy<<<grid, 256, 0, s>>>((uint8_t *)dst, (const uint8_t *)src, l, n); break;
    case 2: strided_copy<<<grid, 256, 0, s>>>((uint16_t *)dst, (const uint16_t *)src, l, n); break;
    case 4: strided_copy<<<grid, 256, 0, s>>>((uint32_t *)dst, (const uint32_t *)src, l, n); break;
    default: strided_copy<<<grid, 256, 0, s>>>((uint64_t *)dst, (const uint64_t *)src, l, n); break;
    }
}
