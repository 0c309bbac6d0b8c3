/* Writing checkpoints: a temporary HDF5 file in the target's folder, filled array by array,
 * then flushed, fsynced and renamed over the target (see checkpoint.h for the guarantees). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/internal.h"
#include "io/ckpt_internal.h"
#include "data/h5.h"

typedef struct { char *name; hid_t id; } section;

struct lz_ckpt_writer {
    char *path;      /* the checkpoint it will replace */
    char *dir;       /* its folder ("." when the path has none) */
    char *tmp;       /* the temporary file: "<path>.tmp-<pid>-<n>" */
    hid_t file;
    section *sec;
    int nsec, cap;
    int failed;      /* sticky: the message is in err */
    char err[1024];
};

static atomic_uint tmp_counter;

/* Records the current lz_error() as the writer's sticky failure; returns -1. */
static int fail_w(lz_ckpt_writer *w) {
    if (!w->failed) snprintf(w->err, sizeof w->err, "%s", lz_error());
    w->failed = 1;
    return -1;
}
#define FAIL(w, ...) (lz_fail(__VA_ARGS__), fail_w(w))

static void split_path(const char *path, char **dir, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) { *dir = strdup("."); *base = path; return; }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    *dir = strndup(path, n);
    *base = slash + 1;
}

/* Removes "<base>.tmp-<pid>-<n>" files left in dir by writers that were killed: their
 * process no longer exists (files of live processes, this one included, are left alone). */
static void remove_stale(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (strncmp(s, base, bl) || strncmp(s + bl, ".tmp-", 5)) continue;
        char *end;
        long pid = strtol(s + bl + 5, &end, 10);
        if (end == s + bl + 5 || *end != '-' || pid <= 0) continue;
        const char *q = end + 1;
        if (!*q || strspn(q, "0123456789") != strlen(q)) continue;
        if (pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        unlinkat(dirfd(d), s, 0);
    }
    closedir(d);
}

lz_ckpt_writer *lz_ckpt_create(const char *path) {
    if (!path || !path[0]) return lz_fail("lz_ckpt_create: empty checkpoint path");
    ckpt_quiet();
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return lz_fail("%s: cannot write checkpoint: it is a folder", path);
    lz_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return lz_fail("%s: out of memory", path);
    w->file = H5I_INVALID_HID;
    const char *base;
    split_path(path, &w->dir, &base);
    w->path = strdup(path);
    if (!w->dir || !w->path) {
        lz_ckpt_abort(w);
        return lz_fail("%s: out of memory", path);
    }
    if (!base[0]) {
        lz_ckpt_abort(w);
        return lz_fail("%s: cannot write checkpoint: the path names a folder", path);
    }
    int bad = stat(w->dir, &st) ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (bad) {
        if (bad == ENOENT)
            lz_fail("%s: cannot write checkpoint: folder %s does not exist", path, w->dir);
        else
            lz_fail("%s: cannot write checkpoint: folder %s: %s", path, w->dir, strerror(bad));
        lz_ckpt_abort(w);
        return NULL;
    }
    remove_stale(w->dir, base);
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp) {
        lz_ckpt_abort(w);
        return lz_fail("%s: out of memory", path);
    }
    snprintf(tmp, n, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
    /* Create it ourselves first: errno says why a folder is not writable, HDF5 would not. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        lz_fail("%s: cannot write checkpoint in %s: %s", path, w->dir, strerror(errno));
        free(tmp);
        lz_ckpt_abort(w);
        return NULL;
    }
    close(fd);
    w->tmp = tmp;   /* from here on, ours to remove on failure */
    hid_t fapl = h5_fapl(), fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, CKPT_HEADER);   /* room for the checksum header */
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) ckpt_h5_save();
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (w->file < 0) {
        char d[256];
        lz_fail("%s: cannot create HDF5 file %s: %s", path, w->tmp,
                ckpt_h5_detail(d, sizeof d));
        lz_ckpt_abort(w);
        return NULL;
    }
    return w;
}

/* The group of a section, created on first use; it keeps names in the order written. */
static hid_t section_id(lz_ckpt_writer *w, const char *name) {
    for (int i = 0; i < w->nsec; i++)
        if (!strcmp(w->sec[i].name, name)) return w->sec[i].id;
    if (w->nsec == w->cap) {
        int cap = w->cap ? 2 * w->cap : 4;
        section *s = realloc(w->sec, (size_t)cap * sizeof *s);
        if (!s) return H5I_INVALID_HID;
        w->sec = s;
        w->cap = cap;
    }
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(w->file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) return g;
    char *copy = strdup(name);
    if (!copy) { H5Gclose(g); return H5I_INVALID_HID; }
    w->sec[w->nsec++] = (section){copy, g};
    return g;
}

/* Fixed-length strings only: libhdf5 reads variable-length ones through its global heap,
 * where corrupted files made it overflow buffers (issue 20). */
static int put_str_attr(hid_t obj, const char *key, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    H5Tset_size(t, strlen(s) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, key, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, t, s);
    if (r < 0) ckpt_h5_save();
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return r < 0 ? -1 : 0;
}

/* An attribute from ndim dims (0: scalar, NULL dims with ndim 1: an empty vector). */
static int put_attr(hid_t obj, const char *key, hid_t ftype, hid_t mtype, int ndim,
                    const hsize_t *dims, const void *data) {
    hid_t sp = ndim == 0 ? H5Screate(H5S_SCALAR) : !dims ? H5Screate(H5S_NULL)
                         : H5Screate_simple(ndim, dims, NULL);
    hid_t a = H5Acreate2(obj, key, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : dims || ndim == 0 ? H5Awrite(a, mtype, data) : 0;
    if (r < 0) ckpt_h5_save();
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return r < 0 ? -1 : 0;
}

/* Copies the elements of an evaluated array in row-major order, as bytes: the copy kernels
 * go through float for float16 and would quiet signalling NaNs. */
static void gather(const lz_array *a, char *out) {
    size_t es = lz_dtype_size(a->dtype);
    int nd = a->ndim;
    const char *base = lz_elem_ptr(a);
    if (nd == 0) { memcpy(out, base, es); return; }
    int64_t inner = a->shape[nd - 1], step = a->strides[nd - 1] * (int64_t)es;
    int64_t rows = lz_size(a) / inner, idx[LZ_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * a->strides[d];
        const char *p = base + off * (int64_t)es;
        switch (es) {
        case 1: for (int64_t i = 0; i < inner; i++) out[i] = p[i * step]; break;
        case 2: for (int64_t i = 0; i < inner; i++) memcpy(out + 2 * i, p + i * step, 2); break;
        case 4: for (int64_t i = 0; i < inner; i++) memcpy(out + 4 * i, p + i * step, 4); break;
        default: for (int64_t i = 0; i < inner; i++) memcpy(out + es * i, p + i * step, es); break;
        }
        out += inner * (int64_t)es;
        for (int d = nd - 2; d >= 0 && ++idx[d] == a->shape[d]; d--) idx[d] = 0;
    }
}

static int write_dataset(lz_ckpt_writer *w, hid_t g, const char *section, const char *name,
                         lz_array *a) {
    lz_dtype t = lz_dtype_of(a);
    int ndim = lz_ndim(a);
    hsize_t dims[LZ_MAX_DIMS];
    for (int d = 0; d < ndim; d++) dims[d] = (hsize_t)lz_shape(a)[d];
    size_t nbytes = (size_t)lz_size(a) * lz_dtype_size(t);
    const void *data = NULL;
    if (nbytes && lz_is_contiguous(a)) {
        data = lz_elem_ptr(a);
    } else if (nbytes) {
        lz_array *c = lz_empty(ndim, lz_shape(a), t);   /* pooled by the caller */
        if (!c) return -1;
        gather(a, lz_data_mut(c));
        data = lz_data_mut(c);
    }
    uint32_t crc = ckpt_crc32c(0, data, nbytes);
    hid_t ft = ckpt_file_type(t), mt = ckpt_mem_type(t);
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_char_encoding(lcpl, H5T_CSET_UTF8);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);   /* same content, same bytes */
    hid_t ds = H5Dcreate2(g, name, ft, sp, lcpl, dcpl, H5P_DEFAULT);
    int r = ds < 0 ? ckpt_h5_save() : 0;
    if (!r && nbytes && H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        r = ckpt_h5_save();
    if (!r) r = put_str_attr(ds, "dtype", lz_dtype_name(t));
    if (!r) r = put_attr(ds, "crc32c", H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, NULL, &crc);
    if (ds >= 0 && H5Dclose(ds) < 0) r = ckpt_h5_save();
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Tclose(mt);
    if (r) {
        char d[256];
        lz_fail("%s: cannot write %s/%s: %s", w->path, section, name,
                ckpt_h5_detail(d, sizeof d));
    }
    return r;
}

int lz_ckpt_put(lz_ckpt_writer *w, const char *section, const char *name, lz_array *a) {
    if (!w) return -1;
    ckpt_quiet();
    if (w->failed) return lz_fail("%s", w->err), -1;
    if (ckpt_check_name(w->path, "section", section) || ckpt_check_name(w->path, "array", name))
        return fail_w(w);
    char why[1024];
    if (!a) {
        snprintf(why, sizeof why, "%s", lz_error());
        return FAIL(w, "%s: %s/%s: no array to write (%s)", w->path, section, name, why);
    }
    hid_t g = section_id(w, section);
    if (g < 0) return FAIL(w, "%s: cannot create section %s", w->path, section);
    if (H5Lexists(g, name, H5P_DEFAULT) > 0)
        return FAIL(w, "%s: %s/%s written twice", w->path, section, name);
    lz_pool_push();
    int r = lz_eval1(a) == 0 && lz_host_ptr(a) ? write_dataset(w, g, section, name, a) : -1;
    lz_pool_pop();
    if (r && !strstr(lz_error(), w->path)) {
        snprintf(why, sizeof why, "%s", lz_error());
        return FAIL(w, "%s: %s/%s: %s", w->path, section, name, why);
    }
    return r ? fail_w(w) : 0;
}

/* Checks a root attribute key; returns 0 or the writer's failure. */
static int key_ok(lz_ckpt_writer *w, const char *key) {
    if (ckpt_check_name(w->path, "key", key)) return fail_w(w);
    if (!strcmp(key, "format") || !strcmp(key, "format_version"))
        return FAIL(w, "%s: key \"%s\" is reserved", w->path, key);
    if (H5Aexists(w->file, key) > 0) return FAIL(w, "%s: key \"%s\" set twice", w->path, key);
    return 0;
}

static int attr_done(lz_ckpt_writer *w, const char *key, int r) {
    if (!r) return 0;
    char d[256];
    return FAIL(w, "%s: cannot write key \"%s\": %s", w->path, key, ckpt_h5_detail(d, sizeof d));
}

#define BEGIN_SET(w, key)                                        \
    if (!(w)) return -1;                                         \
    ckpt_quiet();                                                \
    if ((w)->failed) return lz_fail("%s", (w)->err), -1;         \
    if (key_ok(w, key)) return -1

int lz_ckpt_set_int(lz_ckpt_writer *w, const char *key, int64_t v) {
    BEGIN_SET(w, key);
    return attr_done(w, key, put_attr(w->file, key, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &v));
}

int lz_ckpt_set_float(lz_ckpt_writer *w, const char *key, double v) {
    BEGIN_SET(w, key);
    return attr_done(w, key, put_attr(w->file, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &v));
}

int lz_ckpt_set_str(lz_ckpt_writer *w, const char *key, const char *s) {
    BEGIN_SET(w, key);
    if (!s) return FAIL(w, "%s: key \"%s\": NULL string", w->path, key);
    return attr_done(w, key, put_str_attr(w->file, key, s));
}

int lz_ckpt_set_bytes(lz_ckpt_writer *w, const char *key, const void *p, size_t n) {
    BEGIN_SET(w, key);
    if (!p && n) return FAIL(w, "%s: key \"%s\": NULL data", w->path, key);
    hsize_t dims[1] = {n};
    return attr_done(w, key, put_attr(w->file, key, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1,
                                      n ? dims : NULL, p));
}

int lz_ckpt_set_keys(lz_ckpt_writer *w, const char *key, int n, const lz_key *keys) {
    BEGIN_SET(w, key);
    if (n < 0 || (n && !keys)) return FAIL(w, "%s: key \"%s\": bad key list", w->path, key);
    uint64_t *v = malloc(2 * (size_t)(n ? n : 1) * sizeof *v);
    if (!v) return FAIL(w, "%s: out of memory", w->path);
    for (int i = 0; i < n; i++) { v[2 * i] = keys[i].hi; v[2 * i + 1] = keys[i].lo; }
    hsize_t dims[2] = {(hsize_t)n, 2};
    int r = put_attr(w->file, key, H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, dims, v);
    free(v);
    return attr_done(w, key, r);
}

/* Closes the HDF5 side; returns 0 when the file was written completely. */
static int close_file(lz_ckpt_writer *w) {
    int r = 0;
    for (int i = 0; i < w->nsec; i++) {
        if (H5Gclose(w->sec[i].id) < 0) r = ckpt_h5_save();
        free(w->sec[i].name);
    }
    w->nsec = 0;
    if (w->file >= 0) {
        if (H5Fclose(w->file) < 0) r = ckpt_h5_save();
        w->file = H5I_INVALID_HID;
    }
    return r;
}

static void free_writer(lz_ckpt_writer *w) {
    free(w->sec);
    free(w->path);
    free(w->dir);
    free(w->tmp);
    free(w);
}

void lz_ckpt_abort(lz_ckpt_writer *w) {
    if (!w) return;
    ckpt_quiet();
    close_file(w);
    if (w->tmp) unlink(w->tmp);
    H5Eclear2(H5E_DEFAULT);
    free_writer(w);
}

static int fsync_path(const char *p, int flags) {
    int fd = open(p, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0) return -1;
    int r = fsync(fd), err = errno;
    close(fd);
    errno = err;
    return r;
}

int lz_ckpt_commit(lz_ckpt_writer *w) {
    if (!w) return -1;
    ckpt_quiet();
    if (!w->failed) {
        int32_t version = LZ_CKPT_FORMAT_VERSION;
        if (put_str_attr(w->file, "format", CKPT_FORMAT) ||
            put_attr(w->file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, NULL,
                     &version)) {
            char d[256];
            FAIL(w, "%s: cannot write the format attributes: %s", w->path,
                 ckpt_h5_detail(d, sizeof d));
        }
    }
    if (!w->failed && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
        char d[256];
        FAIL(w, "%s: cannot write checkpoint: %s", w->path, ckpt_h5_detail(d, sizeof d));
    }
    if (close_file(w) < 0 && !w->failed) {
        char d[256];
        FAIL(w, "%s: cannot finish checkpoint: %s", w->path, ckpt_h5_detail(d, sizeof d));
    }
    if (!w->failed && ckpt_seal(w->tmp))
        FAIL(w, "%s: cannot write the checksum header: %s", w->path, strerror(errno));
    if (!w->failed && fsync_path(w->tmp, 0))
        FAIL(w, "%s: cannot sync checkpoint to disk: %s", w->path, strerror(errno));
    if (!w->failed && rename(w->tmp, w->path))
        FAIL(w, "%s: cannot move checkpoint into place: %s", w->path, strerror(errno));
    if (w->failed) {
        unlink(w->tmp);
        lz_fail("%s", w->err);
        free_writer(w);
        return -1;
    }
    /* The rename is done: the new checkpoint is in place. Syncing the folder makes the
     * rename survive a power loss; a file system that fails it leaves nothing to undo. */
    fsync_path(w->dir, O_DIRECTORY);
    free_writer(w);
    return 0;
}
