/* Internals shared by lib/core, lib/ops, lib/backend and lib/autograd: the array and node
 * layout, buffers, the primitive table and the backend interface. Not for users. */
#ifndef LZ_INTERNAL_H
#define LZ_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include "core.h"
#include "prims.h"
#include "half.h"

/* ---- buffers: refcounted blocks from the allocator (or adopted from the user) ----
 * A buffer has up to two copies, host (data) and device (dev), each a block of its pool, and
 * `valid` says which hold its current value. Kernels find their inputs valid on their device
 * (eval.c makes them so) and leave their outputs valid there only. */
enum { LZ_VALID_HOST = 1, LZ_VALID_DEV = 2 };
typedef struct lz_buffer {
    void *data;          /* host copy; NULL until one is needed (a buffer made on the GPU) */
    void *dev;           /* device copy; NULL until one is needed */
    size_t nbytes;       /* usable bytes */
    size_t bucket;       /* host block's bucket size, 0 when adopted or none */
    int valid;           /* LZ_VALID_HOST | LZ_VALID_DEV */
    atomic_int refs;
    void (*free_fn)(void *data, void *ctx);   /* adopted buffers only */
    void *free_ctx;
} lz_buffer;

lz_buffer *lz_buffer_alloc(size_t nbytes);           /* host; NULL + error when over the limit */
lz_buffer *lz_buffer_alloc_on(lz_device d, size_t nbytes);   /* valid (uninitialised) on d */
lz_buffer *lz_buffer_adopt(void *data, size_t nbytes, void (*free_fn)(void *, void *), void *ctx);
void       lz_buffer_retain(lz_buffer *b);
void       lz_buffer_release(lz_buffer *b);
/* Makes b's copy on d valid (allocating it, copying from the other: synchronising when that
 * is a read back to the host). 0, or -1 with the error set. */
int        lz_buffer_sync(lz_buffer *b, lz_device d);
/* b was just written on d: the other copy is stale. */
static inline void lz_buffer_wrote(lz_buffer *b, lz_device d) {
    b->valid = d == LZ_GPU ? LZ_VALID_DEV : LZ_VALID_HOST;
}
/* Host address of an evaluated array's element 0, its buffer made valid on the host first;
 * NULL + error on failure. Every host read outside the CPU kernels goes through it. */
const void *lz_host_ptr(lz_array *a);
/* Blocks of a pool (alloc.c): size in *size; NULL + error past the limit. */
void *lz_block_alloc(lz_device d, size_t n, size_t *size);
void  lz_block_free(lz_device d, void *data, size_t n);
/* The GPU backend's device memory: alloc/free functions and the cap below free memory. */
void  lz_memory_install_device(void *(*alloc_fn)(size_t), void (*free_fn)(void *), size_t limit);

/* ---- parameters of a node: each constructor documents which slots it uses ---- */
typedef struct {
    int64_t i[24];
    double f[4];
} lz_params;

/* ---- the array: a handle that is also the graph node ----
 * Layout (shape, strides, offset) is fixed at construction, pending or not: a kernel's output
 * is contiguous from offset 0, a view's layout is derived from its input's. */
struct lz_array {
    atomic_int refs;
    atomic_int pool_refs;           /* how many of refs belong to autorelease pools */
    lz_dtype dtype;
    int ndim;
    int64_t shape[LZ_MAX_DIMS];
    int64_t strides[LZ_MAX_DIMS];   /* elements; 0 for broadcast, negative for flips */
    int64_t offset;                 /* elements from buf->data */
    lz_buffer *buf;                 /* set once evaluated */

    /* pending node (prim == LZ_P_NONE once evaluated) */
    lz_prim_id prim;
    int ninputs;
    lz_array **inputs;              /* owned references */
    lz_params params;
    int64_t depth;                  /* longest pending path below this node */
    lz_device device;               /* where the node runs (the default when it was built) */

    /* scratch owned by lz_eval while it runs */
    int64_t mark;
    int uses;                       /* edges from pending nodes of this eval */
    lz_array *consumer;             /* the single consumer, or NULL if several */
    lz_array *group;                /* root of the fused group it belongs to (itself if root) */
    int group_size;                 /* on a root: nodes + leaves so far (bounded by LZ_FUSE_MAX) */
    int group_outs;                 /* on a root: values its group stores besides its own */
    bool store;                     /* fused into a group, and its value is needed outside it */
    lz_array *siblings;             /* on a root: roots merged into its group (a list through */
    lz_array *next_sibling;         /*   next_sibling), computed in its pass */
};

/* Element address of a flat row-major index is not needed by kernels: they walk strides. */
static inline void *lz_elem_ptr(const lz_array *a) {
    return (char *)a->buf->data + a->offset * (int64_t)lz_dtype_size(a->dtype);
}
static inline bool lz_is_pending(const lz_array *a) { return a->prim != LZ_P_NONE; }

/* A leaf of a fused group that is one value (every dim of size 1 or stride 0: a scalar
 * constant, a broadcast) valid on the host: a GPU group takes it as an argument of its
 * kernel instead of reading it from device memory, so eval does not copy it to the device
 * (a training step's many scalar constants would each be a small synchronous upload). */
static inline bool lz_is_host_scalar(const lz_array *l) {
    if (!l->buf || !(l->buf->valid & LZ_VALID_HOST)) return false;
    for (int d = 0; d < l->ndim; d++)
        if (l->shape[d] != 1 && l->strides[d] != 0) return false;
    return true;
}

/* A VIEW node may carry inputs beyond input 0 (autograd uses them as ordering dependencies
 * and to attach records): eval orders the node after ALL its inputs but runs it from
 * input 0 only. */

/* ---- construction helpers for lib/ops ---- */
/* A pending node with a contiguous layout of `shape`. Takes new references to inputs.
 * Returns NULL (error set) if any input is NULL or the graph guard trips. */
lz_array *lz_node(lz_prim_id p, lz_dtype t, int ndim, const int64_t *shape,
                  int ninputs, lz_array *const *inputs, const lz_params *params);
/* A view of `in` with the given layout (relative to in's buffer): evaluated at once when
 * `in` is evaluated, else a pending LZ_P_VIEW node. */
lz_array *lz_view_of(lz_array *in, int ndim, const int64_t *shape, const int64_t *strides,
                     int64_t offset);
/* Registers a freshly returned handle in the open pool (if any); returns a. Every public
 * function that returns a new array ends with it. */
lz_array *lz_autorelease(lz_array *a);
void lz_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
int64_t lz_shape_size(int ndim, const int64_t *shape);
void lz_format_shape(int ndim, const int64_t *shape, char *buf, size_t n);
/* Normalises a possibly negative axis; -1 with error naming op when out of range. */
int lz_axis(const char *op, int axis, int ndim);

/* ---- the primitive table ---- */
enum { LZ_KIND_EW, LZ_KIND_REDUCE, LZ_KIND_VIEW, LZ_KIND_KERNEL };
enum { LZ_FLAG_DIFF = 1 };

/* A kernel computes out (already given a contiguous buffer) from evaluated inputs. */
typedef int (*lz_kernel_fn)(lz_array *out, lz_array *const *in, const lz_params *p);
/* A vjp rule: given the node (whose own value is the primal output), its output cotangent and
 * which inputs want one (wanted[i]), set input_cotangents[i] for those (NULL = zero; the
 * others are NULL on entry and ignored). Written with public lazy ops; the caller holds an
 * autorelease pool open around the call. Returns 0 or -1. */
typedef int (*lz_vjp_fn)(lz_array *node, lz_array *cotangent, const bool *wanted,
                         lz_array **input_cotangents);

typedef struct {
    const char *name;
    int kind;
    int flags;
    lz_kernel_fn cpu;      /* filled by lib/backend/cpu (KERNEL kinds) */
    lz_kernel_fn gpu;      /* filled by lib/backend/cuda when a GPU is found (KERNEL kinds) */
    lz_vjp_fn vjp;         /* filled by lib/autograd */
} lz_prim_info;

extern lz_prim_info lz_prims[LZ_NPRIMS];

/* ---- fused groups: what the scheduler hands to the elementwise engine ----
 * A group is a tree of elementwise nodes of one shape, evaluated as a small program over
 * tiles: leaves are loaded (with their strides, broadcasting included), instructions run in
 * order on tile registers, the last instruction is the group's value. If `reduce` is set,
 * the value is not stored but reduced by that node (a REDUCE primitive).
 *
 * An elementwise group may store more values than its root's: an inner node whose value is
 * held outside the group (an optimizer's new moment, read by the new parameter in the same
 * pass), or the root of a sibling group of the same shape that reads a leaf of this one and
 * that nothing in the graph consumes (Lion's new moment beside its new parameter), is one of
 * `outs`, written to its own buffer (given by the scheduler) as the tiles go. So an update
 * that writes a parameter and its state is one pass over memory, not one per array written. */
#define LZ_FUSE_MAX 64
#define LZ_FUSE_OUTS 8
typedef struct {
    int nleaves;
    lz_array *leaves[LZ_FUSE_MAX];
    int ninstr;
    struct {
        lz_array *node;     /* prim, dtype and params come from here */
        int src[3];         /* register ids: 0..nleaves-1 = leaves, nleaves+k = instr k */
    } instr[LZ_FUSE_MAX];
    lz_array *out;          /* the elementwise root (its shape is the group's index space) */
    lz_array *reduce;       /* optional closing reduction node (its input is `out`) */
    int nouts;              /* inner values also stored (elementwise groups only) */
    struct {
        lz_array *node;     /* has its buffer (contiguous) before the group runs */
        int instr;          /* the instruction computing it */
    } outs[LZ_FUSE_OUTS];
} lz_fused;

/* ---- backend interface (lib/backend/<device> implements it) ---- */
typedef struct {
    const char *name;
    /* runs a fused group (or a single elementwise node as a group of one) */
    int (*run_fused)(const lz_fused *g);
    void (*set_threads)(int n);
} lz_backend;

extern const lz_backend lz_cpu_backend;
/* Called once before the first eval: fills lz_prims[].cpu. */
void lz_cpu_register(void);

/* A GPU backend: besides running groups and kernels (lz_prims[].gpu), it moves buffers
 * between the copies (to_device may be asynchronous on the compute stream; to_host
 * synchronises) and allocates from the device pool it installed. */
typedef struct {
    const char *name;      /* the device, for messages */
    int (*run_fused)(const lz_fused *g);
    int (*to_device)(lz_buffer *b);   /* b->dev allocated; copy host -> device */
    int (*to_host)(lz_buffer *b);     /* b->data allocated; copy device -> host */
    void (*synchronize)(void);
} lz_gpu_backend;
/* Starts the GPU backend (lib/backend/cuda, or its stand-in in a build without CUDA): fills
 * lz_prims[].gpu and returns the backend, or NULL with the reason in lz_error(). Called once,
 * by device.c, the first time a GPU is asked for. */
const lz_gpu_backend *lz_cuda_start(void);
/* The running GPU backend, or NULL (device.c). */
const lz_gpu_backend *lz_gpu(void);
/* Runs b as the GPU backend instead (tests: an emulated GPU on a machine without one). */
void lz_gpu_install(const lz_gpu_backend *b);

/* ---- counters (atomic adds; lib/core/stats.c) ---- */
void lz_stats_add(uint64_t kernels, uint64_t bytes_moved, uint64_t flops);
void lz_stats_add_fused(uint64_t ops);
void lz_stats_add_alloc(uint64_t bytes);
void lz_stats_add_nodes(uint64_t n);
void lz_stats_add_gpu(uint64_t kernels);
void lz_stats_add_copy(lz_device to, uint64_t bytes);
void lz_stats_add_fallback(void);
void lz_stats_add_compile(void);

#endif
