/* leibniz core: lazy arrays in unified memory.
 *
 * An lz_array is a refcounted handle. It is either evaluated (it owns a view on a buffer)
 * or pending (a node: a primitive, its inputs and parameters). Ops only build nodes; data
 * is computed by lz_eval, or implicitly by anything that reads it (lz_item, lz_to_*).
 *
 * Ownership: every function returning lz_array* returns a NEW reference. The caller
 * releases it with lz_release(), or, while an lz_pool is open on the calling thread, the
 * pool releases it at lz_pool_pop() (so code inside a pool never calls lz_release on op
 * results). Inputs are always borrowed. Functions that fail return NULL (or a negative
 * status) and set a thread-local message read with lz_error(); passing NULL as an input
 * returns NULL and keeps the first message, so chains fail once, cleanly. */
#ifndef LZ_CORE_H
#define LZ_CORE_H

#include <stddef.h>
#include <stdint.h>

#define LZ_MAX_DIMS 8

typedef enum {
    LZ_BOOL, LZ_U8, LZ_I32, LZ_I64, LZ_F16, LZ_BF16, LZ_F32,
    LZ_NDTYPES
} lz_dtype;

typedef struct lz_array lz_array;

/* ---- dtypes ---- */
size_t      lz_dtype_size(lz_dtype t);
const char *lz_dtype_name(lz_dtype t);
int         lz_dtype_is_float(lz_dtype t);   /* f16, bf16, f32 */
/* The dtype two operands are computed in (NumPy-style): bool < uint8 < int32 < int64 <
 * float16/bfloat16 < float32, and float16 with bfloat16 gives float32. */
lz_dtype    lz_promote_types(lz_dtype a, lz_dtype b);

/* ---- errors (thread-local) ---- */
const char *lz_error(void);          /* last message, "" when none */
void        lz_error_clear(void);
/* Sets the message (printf-style) and returns NULL, so constructors can `return lz_fail(...)`. */
void       *lz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- handles ---- */
lz_array *lz_retain(lz_array *a);    /* returns a; NULL-safe */
void      lz_release(lz_array *a);   /* NULL-safe */

/* Autorelease pools (per thread, nestable): while one is open, every array a function
 * returns is also registered in it, and lz_pool_pop releases those references. Keep an
 * array past the pool with lz_retain (then it is yours to release). */
void lz_pool_push(void);
void lz_pool_pop(void);

/* ---- inspection (never evaluates) ---- */
lz_dtype       lz_dtype_of(const lz_array *a);
int            lz_ndim(const lz_array *a);
const int64_t *lz_shape(const lz_array *a);
int64_t        lz_dim(const lz_array *a, int axis);   /* negative axis counts from the end */
int64_t        lz_size(const lz_array *a);            /* number of elements */
const int64_t *lz_strides(const lz_array *a);         /* in elements; 0 = broadcast */
int            lz_is_evaluated(const lz_array *a);
int            lz_is_contiguous(const lz_array *a);   /* row-major, offset irrelevant */
/* "f32[2,3]" into buf; returns buf. */
char          *lz_shape_str(const lz_array *a, char *buf, size_t n);

/* ---- creation ---- */
/* Copies n = prod(shape) elements of dtype t from data. */
lz_array *lz_from_data(const void *data, int ndim, const int64_t *shape, lz_dtype t);
/* Adopts data without copying: free_fn(data, ctx) is called when the last view dies.
 * data must stay valid until then and be aligned to the dtype size. */
lz_array *lz_from_buffer(void *data, int ndim, const int64_t *shape, lz_dtype t,
                         void (*free_fn)(void *data, void *ctx), void *ctx);
/* An uninitialised evaluated array from the allocator, for producers (loaders) that fill it
 * through lz_data_mut before anyone reads it. */
lz_array *lz_empty(int ndim, const int64_t *shape, lz_dtype t);
lz_array *lz_scalar(double v, lz_dtype t);                        /* 0-d */
/* zeros, ones, full, arange, linspace, eye: lib/ops/ops.h (they build lazy nodes) */

/* ---- evaluation ---- */
/* Evaluates the union of the graphs of n arrays (NULL entries are an error). Returns 0, or
 * -1 with lz_error() set (e.g. over the memory limit); on failure no array is left
 * half-written: those not computed stay pending. */
int lz_eval(int n, lz_array *const *arrays);
int lz_eval1(lz_array *a);
#define LZ_EVAL(...) lz_eval((int)(sizeof((lz_array *[]){__VA_ARGS__}) / sizeof(lz_array *)), \
                             (lz_array *[]){__VA_ARGS__})

/* ---- reading (evaluates first) ---- */
/* The first element as double (NaN with lz_error set on failure). */
double lz_item(lz_array *a);
/* Copies all elements, row-major, converted to float / int64, into out (n >= lz_size). */
int lz_to_float(lz_array *a, float *out, int64_t n);
int lz_to_int(lz_array *a, int64_t *out, int64_t n);
/* Pointer to the first element of an evaluated, contiguous array (evaluates; makes the array
 * contiguous in place when needed). Valid while a is alive. */
const void *lz_data(lz_array *a);
/* Mutable pointer: only for arrays made by lz_empty/lz_from_data not yet shared. */
void *lz_data_mut(lz_array *a);

/* ---- memory (the one allocator) ---- */
typedef struct {
    size_t active;     /* bytes in live buffers */
    size_t peak;       /* max of active since the last reset */
    size_t cached;     /* bytes held in the free cache */
    size_t limit;      /* 0 = none */
    size_t cache_limit;
} lz_memory_info;
lz_memory_info lz_memory(void);
void lz_memory_set_limit(size_t bytes);        /* allocations past it fail with an error */
void lz_memory_set_cache_limit(size_t bytes);  /* default: 1/8 of physical RAM */
void lz_memory_reset_peak(void);
void lz_memory_clear_cache(void);
/* Replaces where the allocator gets its blocks (default: 64-byte aligned host memory); a GPU
 * backend installs memory both devices address. alloc_fn must return 64-byte aligned memory.
 * Only while no buffer is live (at start-up): returns 0, or -1 with lz_error() otherwise.
 * NULL functions restore the default. */
int lz_memory_set_system_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *));

/* ---- devices ----
 * Arrays do not belong to a device; operations do. An op runs on the device that was the
 * default when it was built (this thread's if set, else the process's), and reads its inputs
 * wherever they are: the allocator keeps a host and a device copy of each buffer and knows
 * which are valid, copying once when the other side reads. The process default starts as
 * $LZ_DEVICE (cpu, cuda/gpu, auto) or the CPU. */
typedef enum { LZ_CPU, LZ_GPU, LZ_DEVICE_UNSET = -1 } lz_device;
/* 1 if a GPU backend is built in and a device answers; 0 otherwise (lz_gpu_status says why). */
int         lz_gpu_available(void);
/* "NVIDIA H100 80GB HBM3", or why there is none ("built without CUDA", "no CUDA device"). */
const char *lz_gpu_status(void);
/* Sets the process default (0), or -1 with lz_error() when d is LZ_GPU and there is none. */
int         lz_set_default_device(lz_device d);
/* This thread's default (LZ_DEVICE_UNSET: follow the process's); -1 as above. */
int         lz_set_thread_device(lz_device d);
lz_device   lz_default_device(void);
const char *lz_device_name(lz_device d);          /* "cpu", "cuda" */
/* Waits until the GPU has finished everything queued (a no-op without one): for timing. */
void        lz_synchronize(void);
/* Device memory (the GPU pool of the same allocator; zeros without a GPU). The limit starts
 * below what the card reports free at start-up. */
lz_memory_info lz_memory_device(void);
void lz_memory_device_set_limit(size_t bytes);
void lz_memory_device_reset_peak(void);
void lz_memory_device_set_cache_limit(size_t bytes);   /* default: no bound below the limit */

/* ---- counters ---- */
typedef struct {
    uint64_t kernels;        /* kernel launches (a fused group counts once) */
    uint64_t fused_ops;      /* elementwise ops executed inside fused groups */
    uint64_t buffers;        /* buffers handed out by the allocator */
    uint64_t bytes_alloc;    /* bytes handed out */
    uint64_t bytes_moved;    /* bytes read + written by kernels (estimate) */
    uint64_t flops;          /* counted by matmul, conv, attention */
    uint64_t nodes_evaluated;
    uint64_t gpu_kernels;    /* of `kernels`, those that ran on the GPU */
    uint64_t to_device;      /* bytes copied host -> device */
    uint64_t to_host;        /* bytes copied device -> host */
    uint64_t cpu_fallbacks;  /* nodes asked for on the GPU that ran on the CPU (no kernel) */
    uint64_t compiles;       /* GPU kernels generated and compiled (NVRTC), not found cached */
} lz_stats_t;
lz_stats_t lz_stats(void);
void       lz_stats_reset(void);

/* ---- threads: one knob for our kernels and OpenBLAS (default: number of cores) ---- */
void lz_set_threads(int n);
int  lz_threads(void);

/* ---- graph growth guard ----
 * A pending graph deeper than `depth` nodes is usually a value accumulated across steps and
 * never evaluated. mode LZ_GRAPH_ERROR makes the op that passes the bound fail, naming it;
 * LZ_GRAPH_EVAL evaluates the input instead. Default: 1,000,000, LZ_GRAPH_ERROR. */
enum { LZ_GRAPH_ERROR, LZ_GRAPH_EVAL };
void lz_set_graph_limit(int64_t depth, int mode);

#endif
