/* leibniz dist: collectives over lazy arrays for data-parallel training, one process per
 * rank: MPI between CPU processes, NCCL between GPUs (its id exchanged through MPI).
 *
 *     lz_dist *d = lz_dist_init(&(lz_dist_options){.timeout_s = 60});
 *     lz_array *g = lz_dist_all_reduce(d, grad, LZ_DIST_MEAN);   // the ranks' mean
 *     ...
 *     lz_dist_finalize(d);
 *
 * Every collective must be called by every rank in the same order with arrays of the same
 * shape and dtype (broadcast: the root's gives the value, the others' only the shape). Inputs
 * are evaluated as needed; results are new evaluated arrays (the caller releases them).
 * Nothing here knows about models: lib/dist is usable from a user's own training loop.
 *
 * A rank that dies or stops answering: each collective waits at most timeout_s, then fails
 * with an error naming the operation. The collective is then left half-done: the only thing
 * to do is lz_dist_abort, which ends every rank of the job (the library itself never exits;
 * the program decides). Built without MPI, lz_dist_init fails with "built without MPI" and
 * lz_dist_launched tells a program that it was started under mpirun all the same. */
#ifndef LZ_DIST_H
#define LZ_DIST_H

#include <stddef.h>
#include "core/core.h"

typedef struct lz_dist lz_dist;
typedef enum { LZ_DIST_SUM, LZ_DIST_MEAN, LZ_DIST_MAX } lz_dist_op;

typedef struct {
    double timeout_s;   /* per collective; 0: wait for ever */
    /* LZ_GPU: collectives run through NCCL on device buffers (needs a build with NCCL);
     * LZ_CPU (or unset): MPI on host buffers */
    lz_device device;
} lz_dist_options;

/* 1 when built with MPI; 2 when with NCCL too; 0 without MPI. */
int lz_dist_built(void);
/* The world size the launcher announces in the environment (Open MPI's
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE of MPICH/Slurm), 1 when there is none. Works without MPI. */
int lz_dist_launched(void);

/* Joins the job (MPI_Init unless the program did it already). Returns a handle, freed by
 * lz_dist_finalize, or NULL + error. A process started without mpirun is a world of one. */
lz_dist *lz_dist_init(const lz_dist_options *o);
/* Leaves the job (MPI_Finalize when lz_dist_init started MPI). Every rank must call it.
 * NULL-safe. */
void lz_dist_finalize(lz_dist *d);
/* Ends every rank of the job with exit code `code` (MPI_Abort): for a program after a
 * collective failed; returns only without MPI. */
void lz_dist_abort(lz_dist *d, int code);

int lz_dist_rank(const lz_dist *d);
int lz_dist_size(const lz_dist *d);
int lz_dist_local_rank(const lz_dist *d);   /* among the ranks of this host */
int lz_dist_local_size(const lz_dist *d);
const char *lz_dist_backend(const lz_dist *d);   /* "mpi" or "nccl" */

/* ---- collectives (new references, or NULL + error) ---- */
/* Elementwise over the ranks: sum, mean (floating dtypes only), max. Dtypes: f32, i32, i64,
 * u8 (sum, max), bool (max: any); NCCL also f16 and bf16. */
lz_array *lz_dist_all_reduce(lz_dist *d, lz_array *x, lz_dist_op op);
/* The same for n arrays at once, packed into buckets of about bucket_bytes (0: one per
 * array; an array larger than a bucket is a bucket of its own): every bucket is started
 * before the first is waited for, so packing and unpacking overlap the transfers. out[i]
 * gets a new reference for xs[i]. Returns 0, or -1 + error with out all NULL. */
int lz_dist_all_reduce_many(lz_dist *d, int n, lz_array *const *xs, lz_dist_op op,
                            size_t bucket_bytes, lz_array **out);
/* Rank root's x on every rank (any dtype). */
lz_array *lz_dist_broadcast(lz_dist *d, lz_array *x, int root);
/* The ranks' x concatenated along axis 0, in rank order: [size * d0, ...]. A 0-d x gives [size]. */
lz_array *lz_dist_all_gather(lz_dist *d, lz_array *x);
/* Reduces x over the ranks and gives rank r its slice r of axis 0: x [size * k, ...] ->
 * [k, ...] (d0 must divide by size). */
lz_array *lz_dist_reduce_scatter(lz_dist *d, lz_array *x, lz_dist_op op);
/* Host values (metrics, counters): v[0..n) reduced over the ranks in place. 0 or -1. */
int lz_dist_all_reduce_doubles(lz_dist *d, double *v, int n, lz_dist_op op);
/* Waits until every rank arrives (within the timeout). 0 or -1. */
int lz_dist_barrier(lz_dist *d);

#endif
