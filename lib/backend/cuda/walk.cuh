// Device helpers shared by the .cu files that walk strided layouts (index.cu, sort.cu): the
// element offset of flat index k in a cuk_lay (sort.h), and a grid for n work items.
#ifndef LZ_CUDA_WALK_CUH
#define LZ_CUDA_WALK_CUH

#include <stdint.h>
#include "sort.h"

static __device__ __forceinline__ int64_t lay_off(const cuk_lay &l, int64_t k) {
    int64_t off = 0;
#pragma unroll
    for (int d = 7; d >= 0; d--) {
        if (d < l.nd) {
            int64_t s = l.shape[d];
            off += (k % s) * l.strides[d];
            k /= s;
        }
    }
    return off;
}

static inline int grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (int)(b < 65536 * 8 ? (b > 0 ? b : 1) : 65536 * 8);
}

#endif
