/* The collectives over lazy arrays (dist.h): inputs are evaluated and made contiguous, the
 * bytes go through MPI's non-blocking collectives (host memory) or NCCL (device memory,
 * nccl.c), polled against the deadline, and the results are new evaluated arrays from the
 * allocator. Without MPI every entry fails with "built without MPI". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/internal.h"
#include "dist/dist_internal.h"
#include "ops/ops.h"

double dist_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int env_int(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : 0;
}

int lz_dist_launched(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (n <= 0) n = env_int("PMI_SIZE");
    if (n <= 0) n = env_int("PMIX_SIZE");
    return n > 0 ? n : 1;
}

int lz_dist_rank(const lz_dist *d) { return d ? d->rank : 0; }
int lz_dist_size(const lz_dist *d) { return d ? d->size : 1; }
int lz_dist_local_rank(const lz_dist *d) { return d ? d->local_rank : 0; }
int lz_dist_local_size(const lz_dist *d) { return d ? d->local_size : 1; }
const char *lz_dist_backend(const lz_dist *d) { return d && d->nccl ? "nccl" : "mpi"; }

#ifndef LZ_MPI

int lz_dist_built(void) { return 0; }
lz_dist *lz_dist_init(const lz_dist_options *o) {
    (void)o;
    return lz_fail("dist: built without MPI (install Open MPI's libopenmpi-dev and rebuild)");
}
void lz_dist_finalize(lz_dist *d) { free(d); }
void lz_dist_abort(lz_dist *d, int code) { (void)d; (void)code; }
static int run(lz_dist *d, int n, const dist_coll *c, const char *what) {
    (void)d; (void)n; (void)c;
    lz_fail("%s: built without MPI", what);
    return -1;
}

#else

int lz_dist_built(void) {
#ifdef LZ_NCCL
    return 2;
#else
    return 1;
#endif
}

static const char *op_name(lz_dist_op op) {
    return op == LZ_DIST_SUM ? "sum" : op == LZ_DIST_MEAN ? "mean" : "max";
}

static int mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    lz_fail("%s: MPI: %s", what, msg);
    return -1;
}

lz_dist *lz_dist_init(const lz_dist_options *o) {
    lz_dist_options opt = o ? *o : (lz_dist_options){0};
    lz_dist *d = calloc(1, sizeof *d);
    if (!d) return lz_fail("dist: out of memory");
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        /* FUNNELED: only the thread that called init talks to MPI (the loader's and
         * OpenMP's threads never do) */
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) { free(d); mpi_fail(rc, "dist: MPI_Init"); return NULL; }
        d->owns_mpi = 1;
    }
    d->timeout_s = opt.timeout_s;
    MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(local, &d->local_rank);
        MPI_Comm_size(local, &d->local_size);
        MPI_Comm_free(&local);
    } else {
        d->local_rank = d->rank;
        d->local_size = d->size;
    }
    if (opt.device == LZ_GPU && dist_nccl_open(d)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lz_error());
        lz_dist_finalize(d);
        return lz_fail("%s", msg);
    }
    return d;
}

void lz_dist_finalize(lz_dist *d) {
    if (!d) return;
    dist_nccl_close(d);
    if (!d->broken) MPI_Comm_free(&d->comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (d->owns_mpi && !finalized) MPI_Finalize();
    free(d);
}

void lz_dist_abort(lz_dist *d, int code) {
    MPI_Abort(d ? d->comm : MPI_COMM_WORLD, code);
}

/* The MPI type of dtype t; a reduction also needs its op to apply (mean: f32 only; bool: max
 * only); others are moved as bytes. MPI_DATATYPE_NULL + error when unsupported. */
static MPI_Datatype mpi_type(lz_dtype t, lz_dist_op op, int reduce, const char *what) {
    MPI_Datatype m = t == LZ_F32 ? MPI_FLOAT : t == LZ_I32 ? MPI_INT32_T : t == LZ_I64 ? MPI_INT64_T
                   : t == LZ_U8 || t == LZ_BOOL ? MPI_UINT8_T : MPI_DATATYPE_NULL;
    if (!reduce) return m == MPI_DATATYPE_NULL ? MPI_BYTE : m;
    if (m == MPI_DATATYPE_NULL || (op == LZ_DIST_MEAN && t != LZ_F32) ||
        (t == LZ_BOOL && op != LZ_DIST_MAX)) {
        lz_fail("%s: %s of %s arrays is not supported over MPI", what, op_name(op), lz_dtype_name(t));
        return MPI_DATATYPE_NULL;
    }
    return m;
}

/* Polls the requests until all are done or the deadline passes. A short spin keeps the
 * latency of small collectives low; after it the waiting rank sleeps between polls, so that
 * a rank sharing a core with another (more ranks than cores) does not take its time. */
static int wait_all(lz_dist *d, int n, MPI_Request *r, const char *what) {
    double t0 = dist_now();
    for (long spin = 0;; spin++) {
        int done = 0;
        int rc = MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) { d->broken = 1; return mpi_fail(rc, what); }
        if (done) return 0;
        if (d->timeout_s > 0 && dist_now() - t0 > d->timeout_s) {
            d->broken = 1;
            lz_fail("%s: not every rank took part within %g s (dist timeout): a rank died, "
                    "hangs or is elsewhere in the program", what, d->timeout_s);
            return -1;
        }
        if (spin > 200) nanosleep(&(struct timespec){0, spin > 20000 ? 1000000 : 50000}, NULL);
    }
}

/* Starts n collectives on host buffers, then waits for all of them. */
static int host_run(lz_dist *d, int n, const dist_coll *c, const char *what) {
    MPI_Request stack[64], *r = n <= 64 ? stack : malloc((size_t)n * sizeof *r);
    if (!r) { lz_fail("%s: out of memory", what); return -1; }
    int started = 0, rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int reduce = c[i].kind == COLL_ALL_REDUCE || c[i].kind == COLL_REDUCE_SCATTER;
        MPI_Datatype t = mpi_type(c[i].dtype, c[i].op, reduce, what);
        if (t == MPI_DATATYPE_NULL) { rc = -1; break; }
        int64_t count = t == MPI_BYTE ? c[i].count * (int64_t)lz_dtype_size(c[i].dtype) : c[i].count;
        if (count > 0x7fffffff) { lz_fail("%s: %lld elements: too many for one MPI call", what,
                                          (long long)count); rc = -1; break; }
        MPI_Op op = c[i].op == LZ_DIST_MAX ? MPI_MAX : MPI_SUM;
        int k = (int)count, e;
        switch (c[i].kind) {
        case COLL_ALL_REDUCE:
            e = MPI_Iallreduce(c[i].send == c[i].recv ? MPI_IN_PLACE : c[i].send, c[i].recv, k, t,
                               op, d->comm, &r[started]);
            break;
        case COLL_BROADCAST:
            e = MPI_Ibcast(c[i].recv, k, t, c[i].root, d->comm, &r[started]);
            break;
        case COLL_ALL_GATHER:
            e = MPI_Iallgather(c[i].send, k, t, c[i].recv, k, t, d->comm, &r[started]);
            break;
        default:
            e = MPI_Ireduce_scatter_block(c[i].send, c[i].recv, k, t, op, d->comm, &r[started]);
            break;
        }
        if (e != MPI_SUCCESS) { rc = mpi_fail(e, what); d->broken = 1; break; }
        started++;
    }
    /* what was started must finish (or time out) before its buffers may go */
    if (started && wait_all(d, started, r, what)) rc = -1;
    if (r != stack) free(r);
    if (rc) return -1;
    for (int i = 0; i < n; i++) {   /* the mean: the sum divided, on the host */
        if (c[i].op != LZ_DIST_MEAN || (c[i].kind != COLL_ALL_REDUCE && c[i].kind != COLL_REDUCE_SCATTER))
            continue;
        float *v = c[i].recv, s = 1.0f / (float)d->size;
        for (int64_t j = 0; j < c[i].count; j++) v[j] *= s;
    }
    return 0;
}

static int run(lz_dist *d, int n, const dist_coll *c, const char *what) {
    if (d->broken) {
        lz_fail("%s: an earlier collective failed; the job must end (lz_dist_abort)", what);
        return -1;
    }
    return d->nccl ? dist_nccl_run(d, n, c, what) : host_run(d, n, c, what);
}

#endif

/* ---- the arrays ---- */

/* Reference counting: each public entry works inside a pool of its own, so that what it
 * makes on the way (contiguous copies, buckets) goes at its end; results are retained past
 * that pool and handed over with lz_autorelease (into the caller's pool, if one is open). */

/* x evaluated and contiguous where the collective reads it: host memory (MPI) or device
 * memory (NCCL). *keep: a contiguous copy when one was made (the entry's pool frees it).
 * NULL + error on failure. */
static const void *input_ptr(lz_dist *d, lz_array *x, lz_array **keep, const char *what) {
    *keep = NULL;
    if (!x) return lz_fail("%s: NULL input (%s)", what, lz_error());
    if (!d) return lz_fail("%s: no lz_dist (lz_dist_init)", what);
    if (!d->nccl) {
        const void *p = lz_data(x);
        return p ? p : lz_fail("%s: %s", what, lz_error());
    }
    lz_array *c = lz_contiguous(x);
    if (!c || lz_eval1(c) || lz_buffer_sync(c->buf, LZ_GPU))
        return lz_fail("%s: %s", what, lz_error());
    *keep = c;
    return (char *)c->buf->dev + c->offset * (int64_t)lz_dtype_size(c->dtype);
}

/* A new evaluated array for a result (a reference of ours, past the entry's pool), with its
 * buffer where the collective writes it; *ptr gets that address. */
static lz_array *output(lz_dist *d, int ndim, const int64_t *shape, lz_dtype t, void **ptr) {
    lz_array *a = lz_empty(ndim, shape, t);
    if (!a) return NULL;
    lz_retain(a);   /* the entry's pool holds the other reference */
    if (d->nccl) {
        /* the result lives on the GPU only: a device buffer replaces the host one */
        lz_buffer *b = lz_buffer_alloc_on(LZ_GPU, a->buf->nbytes);
        if (!b) { lz_release(a); return NULL; }
        lz_buffer_release(a->buf);
        a->buf = b;
        *ptr = b->dev;
    } else *ptr = lz_data_mut(a);
    return a;
}

/* The collective wrote out on the device (NCCL) or the host. */
static void finish(lz_dist *d, lz_array *out) {
    if (d->nccl) lz_buffer_wrote(out->buf, LZ_GPU);
}

static lz_array *one_in_pool(lz_dist *d, coll_kind kind, lz_array *x, lz_dist_op op, int root,
                             const char *what) {
    lz_array *keep;
    const void *in = input_ptr(d, x, &keep, what);
    if (!in) return NULL;
    int nd = lz_ndim(x);
    int64_t shape[LZ_MAX_DIMS + 1], count = lz_size(x);
    memcpy(shape, lz_shape(x), (size_t)nd * sizeof *shape);
    if (kind == COLL_ALL_GATHER) {
        if (nd == 0) shape[nd++] = 1;
        shape[0] *= d->size;
    } else if (kind == COLL_REDUCE_SCATTER) {
        if (nd == 0 || shape[0] % d->size) {
            return lz_fail("%s: axis 0 of %lld does not divide over %d ranks", what,
                           nd ? (long long)shape[0] : 0LL, d->size);
        }
        shape[0] /= d->size;
        count /= d->size;
    }
    void *ptr;
    lz_array *out = output(d, nd, shape, lz_dtype_of(x), &ptr);
    if (!out) return NULL;
    size_t bytes = (size_t)lz_size(x) * lz_dtype_size(lz_dtype_of(x));
    if (kind == COLL_BROADCAST && d->rank == root && !d->nccl) memcpy(ptr, in, bytes);
    dist_coll c = {kind, in, ptr, count, lz_dtype_of(x), op, root};
    if (kind == COLL_BROADCAST && d->nccl) c.send = in;   /* ncclBroadcast: send -> recv */
    if (run(d, 1, &c, what)) { lz_release(out); return NULL; }
    finish(d, out);
    return out;
}

static lz_array *one(lz_dist *d, coll_kind kind, lz_array *x, lz_dist_op op, int root,
                     const char *what) {
    lz_pool_push();
    lz_array *out = one_in_pool(d, kind, x, op, root, what);
    lz_pool_pop();
    return out ? lz_autorelease(out) : NULL;
}

lz_array *lz_dist_all_reduce(lz_dist *d, lz_array *x, lz_dist_op op) {
    return one(d, COLL_ALL_REDUCE, x, op, 0, "dist all-reduce");
}

lz_array *lz_dist_broadcast(lz_dist *d, lz_array *x, int root) {
    if (d && (root < 0 || root >= d->size))
        return lz_fail("dist broadcast: root %d of %d ranks", root, d->size);
    return one(d, COLL_BROADCAST, x, LZ_DIST_SUM, root, "dist broadcast");
}

lz_array *lz_dist_all_gather(lz_dist *d, lz_array *x) {
    return one(d, COLL_ALL_GATHER, x, LZ_DIST_SUM, 0, "dist all-gather");
}

lz_array *lz_dist_reduce_scatter(lz_dist *d, lz_array *x, lz_dist_op op) {
    return one(d, COLL_REDUCE_SCATTER, x, op, 0, "dist reduce-scatter");
}

int lz_dist_all_reduce_many(lz_dist *d, int n, lz_array *const *xs, lz_dist_op op,
                            size_t bucket_bytes, lz_array **out) {
    const char *what = "dist all-reduce (bucketed)";
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!d) { lz_fail("%s: no lz_dist (lz_dist_init)", what); return -1; }
    if (n <= 0) return 0;
    int rc = 0;
    lz_pool_push();
    lz_array **keep = calloc((size_t)n, sizeof *keep), **bucket = calloc((size_t)n, sizeof *bucket);
    const void **in = calloc((size_t)n, sizeof *in);
    dist_coll *c = calloc((size_t)n, sizeof *c);
    int *first = calloc((size_t)n + 1, sizeof *first);
    void **ptr = calloc((size_t)n, sizeof *ptr);
    if (!keep || !bucket || !in || !c || !first || !ptr) { lz_fail("%s: out of memory", what); rc = -1; }
    for (int i = 0; i < n && !rc; i++) {
        in[i] = input_ptr(d, xs[i], &keep[i], what);
        if (!in[i]) rc = -1;
    }
    int nb = 0;
    if (!rc && d->nccl) {
        /* NCCL: one call per array, in one group (NCCL fuses small ones itself) */
        for (int i = 0; i < n && !rc; i++) {
            out[i] = output(d, lz_ndim(xs[i]), lz_shape(xs[i]), lz_dtype_of(xs[i]), &ptr[i]);
            if (!out[i]) { rc = -1; break; }
            c[i] = (dist_coll){COLL_ALL_REDUCE, in[i], ptr[i], lz_size(xs[i]), lz_dtype_of(xs[i]), op, 0};
        }
        if (!rc) rc = run(d, n, c, what);
        for (int i = 0; i < n && !rc; i++) finish(d, out[i]);
    } else if (!rc) {
        /* MPI: consecutive arrays of one dtype packed into buckets (allocator memory, reused
         * step after step), each reduced in place */
        for (int i = 0; i < n && !rc;) {
            lz_dtype t = lz_dtype_of(xs[i]);
            size_t es = lz_dtype_size(t), bytes = 0;
            int j = i;
            do bytes += (size_t)lz_size(xs[j]) * es, j++;
            while (j < n && lz_dtype_of(xs[j]) == t &&
                   bytes + (size_t)lz_size(xs[j]) * es <= bucket_bytes);
            int64_t count = (int64_t)(bytes / es);
            bucket[nb] = lz_empty(1, &count, t);   /* the pool frees it */
            if (!bucket[nb]) { rc = -1; break; }
            char *p = lz_data_mut(bucket[nb]);
            for (int k = i; k < j; k++) {
                size_t b = (size_t)lz_size(xs[k]) * es;
                memcpy(p, in[k], b);
                p += b;
            }
            first[nb] = i;
            c[nb] = (dist_coll){COLL_ALL_REDUCE, lz_data_mut(bucket[nb]), lz_data_mut(bucket[nb]),
                                count, t, op, 0};
            nb++;
            i = j;
        }
        first[nb] = n;
        if (!rc) rc = run(d, nb, c, what);
        for (int b = 0; b < nb && !rc; b++) {
            const char *p = c[b].recv;
            for (int k = first[b]; k < first[b + 1] && !rc; k++) {
                void *o;
                out[k] = output(d, lz_ndim(xs[k]), lz_shape(xs[k]), lz_dtype_of(xs[k]), &o);
                if (!out[k]) { rc = -1; break; }
                size_t bb = (size_t)lz_size(xs[k]) * lz_dtype_size(lz_dtype_of(xs[k]));
                memcpy(o, p, bb);
                p += bb;
                finish(d, out[k]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (rc) lz_release(out[i]);
        out[i] = rc ? NULL : out[i];
    }
    lz_pool_pop();
    for (int i = 0; i < n && !rc; i++) lz_autorelease(out[i]);
    free(keep); free(bucket); free(in); free(c); free(first); free(ptr);
    return rc;
}

int lz_dist_all_reduce_doubles(lz_dist *d, double *v, int n, lz_dist_op op) {
    if (!d) { lz_fail("dist all-reduce: no lz_dist (lz_dist_init)"); return -1; }
#ifdef LZ_MPI
    if (d->broken) { lz_fail("dist all-reduce: an earlier collective failed"); return -1; }
    MPI_Request r;
    int e = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, op == LZ_DIST_MAX ? MPI_MAX : MPI_SUM,
                           d->comm, &r);
    if (e != MPI_SUCCESS) return mpi_fail(e, "dist all-reduce");
    if (wait_all(d, 1, &r, "dist all-reduce")) return -1;
    for (int i = 0; i < n && op == LZ_DIST_MEAN; i++) v[i] /= d->size;
    return 0;
#else
    (void)v; (void)n; (void)op;
    lz_fail("dist all-reduce: built without MPI");
    return -1;
#endif
}

int lz_dist_barrier(lz_dist *d) {
    if (!d) { lz_fail("dist barrier: no lz_dist (lz_dist_init)"); return -1; }
#ifdef LZ_MPI
    if (d->broken) { lz_fail("dist barrier: an earlier collective failed"); return -1; }
    MPI_Request r;
    int e = MPI_Ibarrier(d->comm, &r);
    if (e != MPI_SUCCESS) return mpi_fail(e, "dist barrier");
    return wait_all(d, 1, &r, "dist barrier");
#else
    lz_fail("dist barrier: built without MPI");
    return -1;
#endif
}
