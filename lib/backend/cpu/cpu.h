/* CPU backend internals: the fused elementwise program, the elementwise kernel table, and
 * helpers shared by kernels (threading, strided walks). */
#ifndef LZ_CPU_H
#define LZ_CPU_H

#include "../../core/internal.h"

#define LZ_TILE 1024

/* Registers hold float (rep F) for floating dtypes, int64 (rep I) for the others. Rep RAW
 * is the dtype's own bytes, unconverted: same-dtype copies move them (cpu_load/cpu_store). */
enum { REP_F, REP_I, REP_RAW };
static inline int rep_of(lz_dtype t) { return t == LZ_F32 || t == LZ_F16 || t == LZ_BF16 ? REP_F : REP_I; }

/* An elementwise kernel over n elements. Inputs are in the rep of the kernel's variant,
 * out in the rep of the node's dtype (comparisons: F in, I out). out may alias an input
 * exactly (same index), never partially. */
typedef void (*ew_fn)(int64_t n, void *out, const void *a, const void *b, const void *c,
                      const lz_params *p);
typedef struct { ew_fn f; ew_fn i; } ew_kernels;
/* Indexed by primitive; filled in ew_ops.c. */
extern const ew_kernels cpu_ew[LZ_NPRIMS];

/* A fused group ready to run over an index space. The reduction engine passes a permuted
 * index space (reduced axes last) through `perm`. */
typedef struct {
    const lz_fused *g;
    int ndim;
    int64_t shape[LZ_MAX_DIMS];
    struct {
        const char *base;        /* element 0 of the leaf */
        lz_dtype dtype;
        int64_t strides[LZ_MAX_DIMS];
        bool contiguous;         /* flat index i is element i */
        bool constant;           /* one value everywhere (all strides 0): filled once */
    } leaf[LZ_FUSE_MAX];
    int block_axis;              /* -1: flat tiles; else 2-D blocks over (block_axis, last) */
    int nregs;                   /* scratch slots (LZ_TILE * 8 bytes each) */
    int16_t slot[2 * LZ_FUSE_MAX];   /* value -> scratch slot, -1: read in place (fused.c) */
    struct {
        ew_fn f;                 /* the kernel; NULL for CAST and COPY */
        bool normalize;          /* wrap/round the result to its dtype (fused.c) */
    } op[LZ_FUSE_MAX];
} cpu_program;

/* perm: perm[d] is the axis of g->out that becomes axis d of the index space (NULL: same).
 * The program runs on flat tiles (block_axis -1). */
void cpu_program_init(cpu_program *p, const lz_fused *g, const int *perm);
/* Bytes of scratch one thread needs to run p. */
size_t cpu_program_scratch(const cpu_program *p);
/* Evaluates the group's value at flat indices [start, start+n) (n <= LZ_TILE) of the index
 * space. Returns float* (rep F of g->out's dtype) or int64_t* (rep I), pointing into scratch
 * or straight at leaf memory: read-only. If `dst` is non-NULL and the value's rep matches
 * the output dtype's storage exactly (f32, i64), the last instruction writes to dst. */
const void *cpu_program_run(const cpu_program *p, int64_t start, int64_t n, void *scratch,
                            void *dst);

/* Loads n elements of a strided array starting at flat row-major index `start` into dst as
 * rep (float, int64, or the dtype's raw bytes). */
void cpu_load(const char *base, lz_dtype t, int ndim, const int64_t *shape,
              const int64_t *strides, int64_t start, int64_t n, int rep, void *dst);
/* Stores n values of rep into contiguous memory of dtype t (REP_RAW: t's own bytes). */
void cpu_store(void *dst, lz_dtype t, int rep, const void *src, int64_t n);

/* Element (r, c) of a rows x cols block, src[c * scs + r], to dst[r * drs + c] (strides in
 * elements of es = 1, 2, 4 or 8 bytes): a transpose in cache, bits only (transpose.c). */
void cpu_transpose(const char *src, int64_t scs, char *dst, int64_t drs, int64_t rows,
                   int64_t cols, int64_t es);

/* Reduction of a fused group (reduce.c). */
int cpu_reduce(const lz_fused *g);

/* The backward node of LAYER_NORM / RMS_NORM (params.i[2] = 1; norm_grad.c). */
int cpu_norm_grad(lz_array *out, lz_array *const *in, const lz_params *p);

/* Threads for our loops (OpenMP); OpenBLAS gets the same count. */
int cpu_threads(void);

/* Threads for a fused group over n elements: all of them once the group's work (elements
 * times the values it loads, computes and stores) passes a bound, else one. Waking a sleeping
 * OpenMP worker (OMP_WAIT_POLICY=passive, as train and the benches run) costs 20-40 us on
 * this 2-core machine, about what one core takes for relu(x + b) over 100K floats: measured
 * there, [128,512] relu(x + b) took 22 us on one thread and 55-68 us on two, a sum over its
 * rows 8 and 39-42 us; at 2M elements two threads won (1.5x). */
#define CPU_PAR_WORK ((int64_t)1 << 20)
static inline int cpu_group_threads(const lz_fused *g, int64_t n) {
    int64_t per = 1 + g->ninstr + g->nleaves + g->nouts;
    return n * per >= CPU_PAR_WORK ? cpu_threads() : 1;
}

/* Winograd F(2x2, 3x3) for 3x3 stride-1 padding-1 convolutions (winograd.c): the forward
 * (flip: the input gradient as the conv with the filters turned) and the weight gradient.
 * 0, or -1 when out of memory (no error set: the caller reports it). */
int cpu_winograd_3x3(const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                     const int64_t *xs, const float *wt, int flip, int64_t o, float *y,
                     int threads);
int cpu_winograd_3x3_wgrad(const float *x, const int64_t *xs, const float *dy,
                           const int64_t *dys, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t o, float *dw, int threads);

void cpu_register_pool(void);   /* pool.c; called by cpu_register_conv */

#endif
