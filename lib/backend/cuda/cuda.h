/* CUDA backend internals, shared by its C files (compiled by gcc: they unpack arrays and
 * launch) and visible to nothing outside lib/backend/cuda. The kernels themselves live in
 * .cu files (compiled by nvcc) behind plain C launchers declared in kernels.h: the .cu side
 * never sees an lz_array, only device pointers, sizes and the stream.
 *
 * Conventions for a GPU kernel entry (lz_prims[P].gpu, same signature as the CPU's):
 *   - every input's buffer is valid on the device when it is called (eval.c made it so),
 *     out has a fresh contiguous device buffer; read inputs through cu_ptr (their layout:
 *     strides and offset, as on the CPU), or cu_contiguous when a kernel wants row-major;
 *   - launch on cu_stream only and never synchronise (the host waits only where it reads);
 *   - end with cu_done(name, out, nlaunches, bytes, flops): it checks the launches, counts
 *     the node as one kernel in lz_stats (as the CPU does) and names the op and shapes in
 *     the error;
 *   - launchers of each family are declared in its own header (<family>.h); kernels.h
 *     holds the shared ones (strided copy). */
#ifndef LZ_CUDA_H
#define LZ_CUDA_H

#include <cuda_runtime_api.h>
#include "../../core/internal.h"
#include "kernels.h"

extern cudaStream_t cu_stream;       /* the compute stream */
extern struct cudaDeviceProp cu_props;      /* the device's properties */

/* Device address of a's element 0 (a's buffer valid on the device). */
static inline void *cu_ptr(const lz_array *a) {
    return (char *)a->buf->dev + a->offset * (int64_t)lz_dtype_size(a->dtype);
}

/* A row-major device copy of a when a is not contiguous (a strided copy on the stream into
 * a pool buffer put in *tmp, which the caller releases after launching its kernel: the
 * stream orders the reuse), else cu_ptr(a) with *tmp NULL. NULL + error on failure. */
const void *cu_contiguous(lz_array *a, lz_buffer **tmp);

/* Scratch device memory from the pool (release after the launches that use it). */
lz_buffer *cu_scratch(size_t nbytes);

/* Checks the last launches: 0, or -1 with "op -> f32[2,3]: CUDA error ...". Counts one
 * kernel (the node), bytes moved and flops. */
int cu_done(const char *op, const lz_array *out, int n, uint64_t bytes, uint64_t flops);
/* An error from a CUDA call: -1 with the message (op, shapes, the CUDA error string). */
int cu_fail(const char *op, const lz_array *out, cudaError_t e);
/* The cuBLAS handle (on cu_stream), created at start. */
void *cu_blas(void);

/* Kernel families: each fills lz_prims[].gpu for its primitives (called from start.c). */
void cuda_register_linalg(void);   /* matmul (linalg.c) */
void cuda_register_nn(void);       /* softmax, log-softmax, layer/RMS norm, norm_grad (nn.c) */
void cuda_register_attention(void);/* attention, attention_qkv(_grad) (attention.c) */
void cuda_register_conv(void);     /* conv, max/avg pool (conv.c) */
void cuda_register_index(void);    /* take, take_along_axis, scatter_add, concat, pad,
                                      argmax/argmin, cumsum (index.c) */
void cuda_register_sort(void);     /* sort, argsort (sort.c) */
void cuda_register_random(void);   /* random_bits (random.c) */

/* The fused elementwise groups and reductions (fused.c: NVRTC-generated kernels). */
int cu_run_fused(const lz_fused *g);
int cu_fused_init(void);

#endif
