/* NCCL between GPUs, one process per GPU (dist_internal.h): the communicator's unique id
 * goes from rank 0 to the others through MPI (as llm.c does), the communicator is
 * non-blocking so that every wait can be polled against the deadline and, past it, aborted
 * (ncclCommAbort) instead of hanging for ever.
 *
 * The collectives run on a stream of their own. The compute stream belongs to the CUDA
 * backend, so before a group starts the device is synchronised (the inputs are written), and
 * the group is waited for before returning (the results are complete before any kernel reads
 * them). That costs the overlap of communication with computation on the GPU, which a later
 * version can win back with an event on the backend's stream. */
#include <stdlib.h>
#include <time.h>
#include "core/internal.h"
#include "dist/dist_internal.h"

#ifndef LZ_NCCL

int dist_nccl_open(lz_dist *d) {
    (void)d;
    lz_fail("dist: device cuda needs NCCL, and this build has none (CUDA with nccl.h and MPI)");
    return -1;
}
void dist_nccl_close(lz_dist *d) { (void)d; }
int dist_nccl_run(lz_dist *d, int n, const dist_coll *c, const char *what) {
    (void)d; (void)n; (void)c;
    lz_fail("%s: built without NCCL", what);
    return -1;
}

#else

#include <cuda_runtime_api.h>
#include <nccl.h>

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
} nccl_state;

static int nccl_fail(ncclResult_t r, const char *what) {
    lz_fail("%s: NCCL: %s", what, ncclGetErrorString(r));
    return -1;
}

/* Waits for the communicator's pending work (init, a group) and, with done_stream, for the
 * stream; past the deadline the communicator is aborted. */
static int nccl_wait(lz_dist *d, nccl_state *s, int with_stream, const char *what) {
    double t0 = dist_now();
    for (long spin = 0;; spin++) {
        ncclResult_t st;
        ncclResult_t r = ncclCommGetAsyncError(s->comm, &st);
        if (r != ncclSuccess) { d->broken = 1; return nccl_fail(r, what); }
        if (st != ncclSuccess && st != ncclInProgress) { d->broken = 1; return nccl_fail(st, what); }
        if (st == ncclSuccess) {
            if (!with_stream) return 0;
            cudaError_t e = cudaStreamQuery(s->stream);
            if (e == cudaSuccess) return 0;
            if (e != cudaErrorNotReady) {
                d->broken = 1;
                lz_fail("%s: CUDA: %s", what, cudaGetErrorString(e));
                return -1;
            }
        }
        if (d->timeout_s > 0 && dist_now() - t0 > d->timeout_s) {
            d->broken = 1;
            ncclCommAbort(s->comm);
            s->comm = NULL;
            lz_fail("%s: not every rank took part within %g s (dist timeout): a rank died, "
                    "hangs or is elsewhere in the program", what, d->timeout_s);
            return -1;
        }
        if (spin > 200) nanosleep(&(struct timespec){0, 50000}, NULL);
    }
}

int dist_nccl_open(lz_dist *d) {
    if (!lz_gpu_available()) {
        lz_fail("dist: device cuda, but there is no GPU: %s", lz_gpu_status());
        return -1;
    }
    ncclUniqueId id;
    ncclResult_t r;
    if (d->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) return nccl_fail(r, "dist: NCCL id");
    if (MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, d->comm) != MPI_SUCCESS) {
        lz_fail("dist: could not send the NCCL id through MPI");
        return -1;
    }
    nccl_state *s = calloc(1, sizeof *s);
    if (!s) { lz_fail("dist: out of memory"); return -1; }
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(s);
        lz_fail("dist: CUDA stream: %s", cudaGetErrorString(e));
        return -1;
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    r = ncclCommInitRankConfig(&s->comm, d->size, id, d->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        cudaStreamDestroy(s->stream);
        free(s);
        return nccl_fail(r, "dist: NCCL init");
    }
    d->nccl = s;
    if (nccl_wait(d, s, 0, "dist: NCCL init")) { dist_nccl_close(d); return -1; }
    return 0;
}

void dist_nccl_close(lz_dist *d) {
    nccl_state *s = d->nccl;
    if (!s) return;
    if (s->comm) {
        if (d->broken) ncclCommAbort(s->comm);
        else ncclCommDestroy(s->comm);
    }
    cudaStreamDestroy(s->stream);
    free(s);
    d->nccl = NULL;
}

static int nccl_type(lz_dtype t, int reduce, ncclDataType_t *out) {
    switch (t) {
    case LZ_F32: *out = ncclFloat32; return 0;
    case LZ_F16: *out = ncclFloat16; return 0;
    case LZ_BF16: *out = ncclBfloat16; return 0;
    case LZ_I32: *out = ncclInt32; return 0;
    case LZ_I64: *out = ncclInt64; return 0;
    case LZ_U8: case LZ_BOOL: *out = ncclUint8; return 0;
    default: *out = ncclUint8; return reduce ? -1 : 0;
    }
}

int dist_nccl_run(lz_dist *d, int n, const dist_coll *c, const char *what) {
    nccl_state *s = d->nccl;
    cudaError_t e = cudaDeviceSynchronize();   /* the inputs, written on the compute stream */
    if (e != cudaSuccess) { lz_fail("%s: CUDA: %s", what, cudaGetErrorString(e)); return -1; }
    ncclResult_t r = ncclGroupStart();
    for (int i = 0; i < n && (r == ncclSuccess || r == ncclInProgress); i++) {
        int reduce = c[i].kind == COLL_ALL_REDUCE || c[i].kind == COLL_REDUCE_SCATTER;
        ncclDataType_t t;
        if (nccl_type(c[i].dtype, reduce, &t) || (c[i].op == LZ_DIST_MEAN && !lz_dtype_is_float(c[i].dtype))) {
            ncclGroupEnd();
            lz_fail("%s: this reduction of %s arrays is not supported", what, lz_dtype_name(c[i].dtype));
            return -1;
        }
        size_t count = (size_t)c[i].count;
        if (!reduce && t == ncclUint8) count *= lz_dtype_size(c[i].dtype);
        ncclRedOp_t op = c[i].op == LZ_DIST_SUM ? ncclSum : c[i].op == LZ_DIST_MEAN ? ncclAvg : ncclMax;
        switch (c[i].kind) {
        case COLL_ALL_REDUCE: r = ncclAllReduce(c[i].send, c[i].recv, count, t, op, s->comm, s->stream); break;
        case COLL_BROADCAST: r = ncclBroadcast(c[i].send, c[i].recv, count, t, c[i].root, s->comm, s->stream); break;
        case COLL_ALL_GATHER: r = ncclAllGather(c[i].send, c[i].recv, count, t, s->comm, s->stream); break;
        default: r = ncclReduceScatter(c[i].send, c[i].recv, count, t, op, s->comm, s->stream); break;
        }
    }
    ncclResult_t g = ncclGroupEnd();
    if (r == ncclSuccess || r == ncclInProgress) r = g;
    if (r != ncclSuccess && r != ncclInProgress) { d->broken = 1; return nccl_fail(r, what); }
    return nccl_wait(d, s, 1, what);
}

#endif
