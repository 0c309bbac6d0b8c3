/* lib/dist internals: the handle and one collective's description, shared by dist.c (the
 * arrays, MPI) and nccl.c (GPU buffers). */
#ifndef LZ_DIST_INTERNAL_H
#define LZ_DIST_INTERNAL_H

#include "dist/dist.h"
#ifdef LZ_MPI
#include <mpi.h>
#endif

struct lz_dist {
    int rank, size, local_rank, local_size;
    double timeout_s;
    int broken;          /* a collective timed out or failed: no further one may start */
    int owns_mpi;        /* lz_dist_init called MPI_Init: finalize calls MPI_Finalize */
#ifdef LZ_MPI
    MPI_Comm comm;       /* a duplicate of MPI_COMM_WORLD, errors returned (not fatal) */
#endif
    void *nccl;          /* nccl.c's state when the device is the GPU; NULL: MPI on the host */
};

typedef enum { COLL_ALL_REDUCE, COLL_BROADCAST, COLL_ALL_GATHER, COLL_REDUCE_SCATTER } coll_kind;

/* One collective over raw buffers. count: elements of send and recv (all-reduce,
 * broadcast: send == recv on the root), of send per rank (all-gather), of recv per rank
 * (reduce-scatter). */
typedef struct {
    coll_kind kind;
    const void *send;
    void *recv;
    int64_t count;
    lz_dtype dtype;
    lz_dist_op op;
    int root;
} dist_coll;

/* nccl.c (stubs without NCCL): opens a communicator over the MPI ranks (the unique id
 * broadcast from rank 0), runs n collectives on device buffers as one group and waits for
 * them within the timeout. 0 or -1 + error. */
int  dist_nccl_open(lz_dist *d);
void dist_nccl_close(lz_dist *d);
int  dist_nccl_run(lz_dist *d, int n, const dist_coll *c, const char *what);
/* Seconds on a monotonic clock. */
double dist_now(void);

#endif
