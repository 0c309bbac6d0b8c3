/* The CUDA backend's runtime: the device, its stream and cuBLAS handle, the device pool's
 * system functions, copies between a buffer's host and device copies, and the helpers every
 * kernel family uses (cuda.h). lz_cuda_start is called once, the first time a GPU is asked
 * for; a machine without a driver or a device gets NULL and the reason. */
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda.h"

cudaStream_t cu_stream;
struct cudaDeviceProp cu_props;
static cublasHandle_t blas;
static char name[320];

void *cu_blas(void) { return blas; }

int cu_fail(const char *op, const lz_array *out, cudaError_t e) {
    char s[160] = "";
    if (out) lz_shape_str(out, s, sizeof s);
    lz_fail("%s%s%s: CUDA error: %s", op, out ? " -> " : "", s, cudaGetErrorString(e));
    return -1;
}

/* A node counts as one kernel in lz_stats whatever it launched (none for an empty array,
 * several for a two-pass backward), as on the CPU: the counters describe the graph's
 * execution (groups and kernel nodes), the same on both devices. */
int cu_done(const char *op, const lz_array *out, int n, uint64_t bytes, uint64_t flops) {
    (void)n;
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cu_fail(op, out, e);
    lz_stats_add(1, bytes, flops);
    lz_stats_add_gpu(1);
    return 0;
}

lz_buffer *cu_scratch(size_t nbytes) { return lz_buffer_alloc_on(LZ_GPU, nbytes ? nbytes : 1); }

const void *cu_contiguous(lz_array *a, lz_buffer **tmp) {
    *tmp = NULL;
    if (lz_is_contiguous(a)) return cu_ptr(a);
    int64_t n = lz_size(a);
    int es = (int)lz_dtype_size(a->dtype);
    if (!(*tmp = cu_scratch((size_t)n * (size_t)es))) return NULL;
    cuk_strided_copy((*tmp)->dev, cu_ptr(a), es, a->ndim, a->shape, a->strides, n, cu_stream);
    cudaError_t e = cudaGetLastError();   /* part of the kernel node that asked: not counted */
    if (e != cudaSuccess) {
        cu_fail("contiguous copy", a, e);
        lz_buffer_release(*tmp);
        *tmp = NULL;
        return NULL;
    }
    return (*tmp)->dev;
}

/* ---- the device pool's system functions ---- */
static void *dev_alloc(size_t n) {
    void *p = NULL;
    return cudaMalloc(&p, n) == cudaSuccess ? p : (cudaGetLastError(), NULL);
}
static void dev_free(void *p) { cudaFree(p); }

/* ---- moving copies ---- */
static int to_device(lz_buffer *b) {
    /* from pageable host memory the copy is staged before the call returns, so the host
     * block may be reused at once; the stream orders it before the kernels that read it */
    cudaError_t e = cudaMemcpyAsync(b->dev, b->data, b->nbytes, cudaMemcpyHostToDevice, cu_stream);
    if (e != cudaSuccess) return cu_fail("copy to the GPU", NULL, e);
    return 0;
}

static int to_host(lz_buffer *b) {
    cudaError_t e = cudaMemcpyAsync(b->data, b->dev, b->nbytes, cudaMemcpyDeviceToHost, cu_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cu_stream);
    if (e != cudaSuccess) {
        /* an asynchronous error of any earlier kernel surfaces here */
        lz_fail("reading a result from the GPU: CUDA error: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

static void synchronize(void) { cudaStreamSynchronize(cu_stream); }

static const lz_gpu_backend backend = {
    .name = name, .run_fused = cu_run_fused, .to_device = to_device, .to_host = to_host,
    .synchronize = synchronize,
};

const lz_gpu_backend *lz_cuda_start(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        if (e == cudaErrorInsufficientDriver)   /* also what the runtime says without any driver */
            return lz_fail("no usable NVIDIA driver (libcuda.so.1 is missing, or older than CUDA %d.%d needs)",
                           CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
        return lz_fail("no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaGetDeviceProperties(&cu_props, 0)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&cu_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cu_fail("starting the GPU", NULL, e);
        return NULL;
    }
    size_t free_b = 0, total = 0;
    if ((e = cudaMemGetInfo(&free_b, &total)) != cudaSuccess) {
        cu_fail("starting the GPU", NULL, e);
        return NULL;
    }
    /* the pool may grow to what is free now, less a margin for cuBLAS, NVRTC modules and
     * other processes: never more than the card has */
    size_t margin = free_b / 16 > ((size_t)1 << 30) ? free_b / 16 : ((size_t)1 << 30);
    size_t cap = free_b > 2 * margin ? free_b - margin : free_b / 2;
    if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(blas, cu_stream) != CUBLAS_STATUS_SUCCESS) {
        lz_fail("starting the GPU: cuBLAS could not start");
        return NULL;
    }
    /* TF32 stays off unless asked for (LZ_TF32=1): float32 products as on the CPU */
    const char *tf32 = getenv("LZ_TF32");
    cublasSetMathMode(blas, tf32 && !strcmp(tf32, "1") ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH);
    if (cu_fused_init()) return NULL;
    lz_memory_install_device(dev_alloc, dev_free, cap);
    snprintf(name, sizeof name, "%s (%.1f GiB, sm_%d%d)", cu_props.name,
             (double)total / (1 << 30), cu_props.major, cu_props.minor);
    cuda_register_linalg();
    cuda_register_nn();
    cuda_register_attention();
    cuda_register_conv();
    cuda_register_index();
    cuda_register_sort();
    cuda_register_random();
    return &backend;
}
