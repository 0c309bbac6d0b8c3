/* Writing dataset files: arrays chunked along their first axis, root attributes, and a
 * temporary file that only becomes the real one, by rename, once complete. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/data.h"
#include "data/h5.h"

#define MAX_ARRAYS 32
#define CHUNK_BYTES (64 << 10)

typedef struct {
    hid_t dset;
    int ndim;
    hsize_t dims[8];
    lz_store_type t;
    char name[96];
} warray;

struct lz_data_writer {
    char *path, *tmp;
    hid_t file;
    int gzip, n, failed;
    char err[256];   /* HDF5's reason, kept right after the failing call */
    warray a[MAX_ARRAYS];
};

static hid_t file_type(lz_store_type t) {
    return t == LZ_STORE_U8 ? H5T_STD_U8LE : t == LZ_STORE_U16 ? H5T_STD_U16LE : H5T_STD_I32LE;
}
static hid_t mem_type(lz_store_type t) {
    return t == LZ_STORE_U8 ? H5T_NATIVE_UINT8 : t == LZ_STORE_U16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_INT32;
}
static size_t type_size(lz_store_type t) { return t == LZ_STORE_U8 ? 1 : t == LZ_STORE_U16 ? 2 : 4; }

/* HDF5 clears its error stack at every call: keep the reason before closing anything. */
static long long keep(lz_data_writer *w, long long st) {
    if (st < 0 && !w->err[0]) h5_detail(w->err, sizeof w->err);
    return st;
}

static int wfail(lz_data_writer *w, const char *what) {
    keep(w, -1);
    w->failed = 1;
    lz_fail("%s: %s%s%s", w->path, what, w->err[0] ? ": " : "", w->err);
    w->err[0] = 0;
    return -1;
}

static int put_attr(lz_data_writer *w, const char *name, hid_t type, hid_t space, const void *v) {
    h5_quiet();
    if (H5Aexists(w->file, name) > 0) H5Adelete(w->file, name);
    hid_t at = keep(w, H5Acreate2(w->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
    herr_t st = at < 0 ? -1 : (herr_t)keep(w, H5Awrite(at, type, v));
    if (at >= 0) H5Aclose(at);
    H5Sclose(space);
    H5Tclose(type);
    return st < 0 ? wfail(w, "cannot write an attribute") : 0;
}

static hid_t utf8_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

lz_data_writer *lz_data_writer_create(const char *path, int gzip) {
    if (gzip < 0 || gzip > 9) return lz_fail("%s: gzip level %d is outside 0..9", path, gzip);
    h5_quiet();
    lz_data_writer *w = calloc(1, sizeof *w);
    if (!w) return lz_fail("%s: out of memory", path);
    w->path = strdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = malloc(n);
    snprintf(w->tmp, n, "%s.tmp-%ld", path, (long)getpid());
    w->gzip = gzip;
    /* A plain open first, for a message that says why (no folder, no permission). */
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        lz_fail("%s: cannot create: %s", path, strerror(errno));
        free(w->path); free(w->tmp); free(w);
        return NULL;
    }
    close(fd);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        wfail(w, "cannot create as HDF5");
        unlink(w->tmp);
        free(w->path); free(w->tmp); free(w);
        return NULL;
    }
    int version = 1;
    if (lz_data_writer_attr_string(w, "format", "leibniz-dataset") ||
        put_attr(w, "version", H5Tcopy(H5T_NATIVE_INT), H5Screate(H5S_SCALAR), &version)) {
        lz_data_writer_close(w, 0);
        return NULL;
    }
    return w;
}

int lz_data_writer_array(lz_data_writer *w, const char *split, const char *name,
                         lz_store_type t, int ndim, const int64_t *shape) {
    if (w->failed) return -1;
    if (w->n == MAX_ARRAYS) { w->failed = 1; lz_fail("%s: too many arrays", w->path); return -1; }
    if (ndim < 1 || ndim > 8) { w->failed = 1; lz_fail("%s: bad rank %d", w->path, ndim); return -1; }
    h5_quiet();
    htri_t ex = H5Lexists(w->file, split, H5P_DEFAULT);
    hid_t g = ex > 0 ? H5Gopen2(w->file, split, H5P_DEFAULT)
                     : H5Gcreate2(w->file, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return wfail(w, "cannot create the split group");
    warray *a = &w->a[w->n];
    a->ndim = ndim;
    a->t = t;
    snprintf(a->name, sizeof a->name, "/%s/%s", split, name);
    hsize_t maxd[8], chunk[8];
    size_t row = type_size(t);
    for (int d = 0; d < ndim; d++) {
        a->dims[d] = (hsize_t)shape[d];
        maxd[d] = d ? a->dims[d] : H5S_UNLIMITED;   /* unlimited: any chunk length is legal */
        chunk[d] = a->dims[d] ? a->dims[d] : 1;
        if (d) row *= a->dims[d];
    }
    /* Chunks of whole rows, about 64 KiB: a batch of scattered rows touches little else. */
    hsize_t rows = row >= CHUNK_BYTES ? 1 : CHUNK_BYTES / row;
    chunk[0] = rows < chunk[0] ? rows : chunk[0];
    hid_t space = H5Screate_simple(ndim, a->dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    if (w->gzip) {
        if (type_size(t) > 1) H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)w->gzip);
    }
    a->dset = keep(w, H5Dcreate2(g, name, file_type(t), space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Gclose(g);
    if (a->dset < 0) return wfail(w, "cannot create an array");
    return w->n++;
}

int lz_data_writer_put(lz_data_writer *w, int id, int64_t row0, int64_t nrows, const void *data) {
    if (w->failed) return -1;
    if (id < 0 || id >= w->n) { lz_fail("%s: bad array id %d", w->path, id); return -1; }
    warray *a = &w->a[id];
    if (row0 < 0 || nrows < 0 || (hsize_t)(row0 + nrows) > a->dims[0]) {
        w->failed = 1;
        lz_fail("%s: rows [%lld, %lld) are outside %s (%llu rows)", w->path, (long long)row0,
                (long long)(row0 + nrows), a->name, (unsigned long long)a->dims[0]);
        return -1;
    }
    if (!nrows) return 0;
    h5_quiet();
    hsize_t start[8] = {0}, count[8];
    memcpy(count, a->dims, sizeof count);
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)nrows;
    hid_t fspace = H5Dget_space(a->dset);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mspace = H5Screate_simple(a->ndim, count, NULL);
    herr_t st = (herr_t)keep(w, H5Dwrite(a->dset, mem_type(a->t), mspace, fspace, H5P_DEFAULT, data));
    H5Sclose(mspace);
    H5Sclose(fspace);
    return st < 0 ? wfail(w, "write failed (disk full?)") : 0;
}

int lz_data_writer_attr_string(lz_data_writer *w, const char *name, const char *value) {
    if (w->failed) return -1;
    return put_attr(w, name, utf8_type(), H5Screate(H5S_SCALAR), &value);
}

int lz_data_writer_attr_strings(lz_data_writer *w, const char *name, int n, const char *const *v) {
    if (w->failed) return -1;
    hsize_t d[1] = {(hsize_t)n};
    return put_attr(w, name, utf8_type(), H5Screate_simple(1, d, NULL), v);
}

int lz_data_writer_attr_doubles(lz_data_writer *w, const char *name, int n, const double *v) {
    if (w->failed) return -1;
    hsize_t d[1] = {(hsize_t)n};
    return put_attr(w, name, H5Tcopy(H5T_NATIVE_DOUBLE), H5Screate_simple(1, d, NULL), v);
}

/* The data must be on disk before the rename makes it the file others open. */
static int sync_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int lz_data_writer_close(lz_data_writer *w, int commit) {
    if (!w) return -1;
    h5_quiet();
    int ok = commit && !w->failed;
    for (int i = 0; i < w->n; i++) H5Dclose(w->a[i].dset);
    if (H5Fclose(w->file) < 0 && ok) { wfail(w, "cannot finish the file (disk full?)"); ok = 0; }
    if (ok && sync_file(w->tmp)) { lz_fail("%s: cannot sync: %s", w->path, strerror(errno)); ok = 0; }
    if (ok && rename(w->tmp, w->path)) {
        lz_fail("%s: cannot move the finished file into place: %s", w->path, strerror(errno));
        ok = 0;
    }
    if (!ok) unlink(w->tmp);
    int ret = ok ? 0 : -1;
    if (!commit && !w->failed) ret = 0;   /* a discard asked for is not an error */
    free(w->path);
    free(w->tmp);
    free(w);
    return ret;
}
