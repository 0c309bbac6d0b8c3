// Integer matrix products (float32 ones go to cuBLAS from linalg.c).
#include <cuda_runtime.h>
#include <stdint.h>
#include "linalg.h"

__global__ void matmul_i64(int64_t *c, const int64_t *a, const int64_t *b, const int64_t *aoff,
                           const int64_t *boff, int64_t ar, int64_t ac, int64_t br, int64_t bc,
                           int64_t nbatch, int64_t m, int64_t n, int64_t k) {
    int64_t total = nbatch * m * n;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = t % n, i = (t / n) % m, bi = t / (m * n);
        const int64_t *x = a + aoff[bi] + i * ar, *y = b + boff[bi] + j * bc;
        uint64_t s = 0;
        for (int64_t p = 0; p < k; p++) s += (uint64_t)x[p * ac] * (uint64_t)y[p * br];
        c[t] = (int64_t)s;
    }
}

extern "C" void cuk_matmul_i64(int64_t *c, const int64_t *a, const int64_t *b, const int64_t *aoff,
                               const int64_t *boff, int64_t ar, int64_t ac, int64_t br, int64_t bc,
                               int64_t nbatch, int64_t m, int64_t n, int64_t k, void *stream) {
    int64_t total = nbatch * m * n, blocks = (total + 255) / 256;
    int grid = (int)(blocks < 65536 ? blocks : 65536);
    matmul_i64<<<grid, 256, 0, (cudaStream_t)stream>>>(c, a, b, aoff, boff, ar, ac, br, bc, nbatch,
                                                         m, n, k);
}
