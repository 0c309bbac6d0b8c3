/* Reading checkpoints: opening with version checks, names by section, arrays read straight
 * into fresh buffers with their CRC checked, and typed root attributes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/internal.h"
#include "io/ckpt_internal.h"
#include "data/h5.h"

typedef struct { char *section; char **names; int64_t n; } name_list;

struct lz_ckpt {
    char *path;
    hid_t file;
    int64_t size;        /* bytes: the bound for what the file can hold */
    name_list *lists;    /* cached lz_ckpt_names results */
    int nlists;
    void **owned;        /* strings and bytes handed out, freed at close */
    int nowned, capowned;
};

static void *own(lz_ckpt *c, void *p) {
    if (!p) return NULL;
    if (c->nowned == c->capowned) {
        int cap = c->capowned ? 2 * c->capowned : 8;
        void **o = realloc(c->owned, (size_t)cap * sizeof *o);
        if (!o) { free(p); return NULL; }
        c->owned = o;
        c->capowned = cap;
    }
    return c->owned[c->nowned++] = p;
}

/* A string attribute (fixed or variable length) as a malloc'd copy; NULL if absent or not
 * a string (no error set: callers word their own). */
static char *read_str_attr(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char *out = NULL;
    if (H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        if (H5Tis_variable_str(t) > 0) {
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            char *s = NULL;
            if (H5Aread(a, mt, &s) < 0) ckpt_h5_save();
            else if (s) {
                out = strdup(s);
                H5free_memory(s);
            }
        } else {
            size_t n = H5Tget_size(t);
            int64_t fbytes = h5_file_size(obj);
            if (fbytes && n > (uint64_t)fbytes) {   /* corrupt: checked before allocating */
                H5Tclose(mt);
                H5Sclose(sp);
                H5Tclose(t);
                H5Aclose(a);
                return NULL;
            }
            H5Tset_size(mt, n + 1);   /* room for the terminator whatever the padding */
            H5Tset_cset(mt, H5Tget_cset(t));
            out = calloc(n + 2, 1);
            if (out && H5Aread(a, mt, out) < 0) {
                ckpt_h5_save();
                free(out);
                out = NULL;
            }
        }
        H5Tclose(mt);
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return out;
}

/* The first element of a numeric attribute as int64 (integer types) or double. */
static int read_num_attr(hid_t obj, const char *name, int want_int, void *out) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    int r = H5Sget_simple_extent_npoints(sp) == 1 &&
            H5Aread(a, want_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, out) >= 0 ? 0 : -1;
    H5Sclose(sp);
    H5Aclose(a);
    return r;
}

static lz_ckpt *open_direct(const char *path) {
    hid_t file = h5_open_file(path, "checkpoint");
    if (file < 0) return NULL;
    int64_t version;
    char *format = read_str_attr(file, "format");
    int has_version = read_num_attr(file, "format_version", 1, &version) == 0;
    const char *bad = NULL;
    char why[160];
    if (!has_version || (format && strcmp(format, CKPT_FORMAT)))
        bad = "an HDF5 file but not a leibniz checkpoint (no format_version attribute)";
    else if (version > LZ_CKPT_FORMAT_VERSION) {
        snprintf(why, sizeof why, "checkpoint format version %lld is newer than this build "
                 "reads (%d): update leibniz", (long long)version, LZ_CKPT_FORMAT_VERSION);
        bad = why;
    } else if (version < 1) {
        snprintf(why, sizeof why, "unknown checkpoint format version %lld", (long long)version);
        bad = why;
    }
    free(format);
    H5Eclear2(H5E_DEFAULT);
    if (bad) {
        H5Fclose(file);
        return lz_fail("%s: %s", path, bad);
    }
    lz_ckpt *c = calloc(1, sizeof *c);
    if (c) c->path = strdup(path);
    if (!c || !c->path) {
        free(c);
        H5Fclose(file);
        return lz_fail("%s: out of memory", path);
    }
    c->file = file;
    c->size = h5_file_size(file);
    return c;
}

void lz_ckpt_close(lz_ckpt *c) {
    if (!c) return;
    ckpt_quiet();
    H5Fclose(c->file);
    for (int i = 0; i < c->nlists; i++) {
        for (int64_t k = 0; k < c->lists[i].n; k++) free(c->lists[i].names[k]);
        free(c->lists[i].names);
        free(c->lists[i].section);
    }
    free(c->lists);
    for (int i = 0; i < c->nowned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->path);
    free(c);
}

const char *lz_ckpt_path(const lz_ckpt *c) { return c ? c->path : NULL; }

/* ---- names ---- */
typedef struct { char **v; int64_t n, cap; int oom; } collect;

#if H5_VERSION_GE(1, 12, 0)
static herr_t add_name(hid_t g, const char *name, const H5L_info2_t *info, void *data) {
#else
static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *data) {
#endif
    (void)g;
    (void)info;
    collect *cl = data;
    if (cl->n == cl->cap) {
        int64_t cap = cl->cap ? 2 * cl->cap : 64;
        char **v = realloc(cl->v, (size_t)cap * sizeof *v);
        if (!v) { cl->oom = 1; return -1; }
        cl->v = v;
        cl->cap = cap;
    }
    if (!(cl->v[cl->n] = strdup(name))) { cl->oom = 1; return -1; }
    cl->n++;
    return 0;
}

static void free_collect(collect *cl) {
    for (int64_t i = 0; i < cl->n; i++) free(cl->v[i]);
    free(cl->v);
    *cl = (collect){0};
}

const char *const *lz_ckpt_names(lz_ckpt *c, const char *section, int64_t *n) {
    static const char *const none[1] = {NULL};
    if (!c) return NULL;
    ckpt_quiet();
    *n = 0;
    if (ckpt_check_name(c->path, "section", section)) return NULL;
    for (int i = 0; i < c->nlists; i++)
        if (!strcmp(c->lists[i].section, section)) {
            *n = c->lists[i].n;
            return (const char *const *)c->lists[i].names;
        }
    if (H5Lexists(c->file, section, H5P_DEFAULT) <= 0) return none;
    hid_t g = H5Gopen2(c->file, section, H5P_DEFAULT);
    if (g < 0) return lz_fail("%s: %s is not a section of arrays", c->path, section);
    collect cl = {0};
    hsize_t idx = 0;
    /* creation order (ours are written so); files from elsewhere may only index by name */
    if (H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, add_name, &cl) < 0 && !cl.oom) {
        free_collect(&cl);
        idx = 0;
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, add_name, &cl);
    }
    H5Gclose(g);
    H5Eclear2(H5E_DEFAULT);
    name_list *l = cl.oom ? NULL : realloc(c->lists, (size_t)(c->nlists + 1) * sizeof *l);
    char *sec = l ? strdup(section) : NULL;
    if (!sec) {
        if (l) c->lists = l;
        free_collect(&cl);
        return lz_fail("%s: out of memory listing %s", c->path, section);
    }
    c->lists = l;
    c->lists[c->nlists++] = (name_list){sec, cl.v, cl.n};
    *n = cl.n;
    return cl.n ? (const char *const *)cl.v : none;
}

/* ---- arrays ---- */
/* Opens section/name as a dataset and reads its dtype and shape. */
static hid_t open_array(lz_ckpt *c, const char *section, const char *name, lz_dtype *dtype,
                        int *ndim, int64_t *shape) {
    if (ckpt_check_name(c->path, "section", section) ||
        ckpt_check_name(c->path, "array", name))
        return H5I_INVALID_HID;
    size_t len = strlen(section) + strlen(name) + 2;
    char *p = malloc(len);
    if (!p) { lz_fail("%s: out of memory", c->path); return H5I_INVALID_HID; }
    snprintf(p, len, "%s/%s", section, name);
    hid_t ds = H5I_INVALID_HID;
    if (H5Lexists(c->file, section, H5P_DEFAULT) > 0 && H5Lexists(c->file, p, H5P_DEFAULT) > 0)
        ds = H5Dopen2(c->file, p, H5P_DEFAULT);
    free(p);
    H5Eclear2(H5E_DEFAULT);
    if (ds < 0) {
        lz_fail("%s: no array %s/%s in the checkpoint", c->path, section, name);
        return H5I_INVALID_HID;
    }
    char *dt = read_str_attr(ds, "dtype");
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    char why[160];
    int r = ckpt_dtype_of(t, dt, dtype, why, sizeof why);
    if (r) lz_fail("%s: %s/%s: %s", c->path, section, name, why);
    H5S_class_t cls = H5Sget_simple_extent_type(sp);
    int nd = cls == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(sp);
    if (!r && (cls == H5S_NULL || nd < 0 || nd > LZ_MAX_DIMS)) {
        lz_fail("%s: %s/%s: unsupported dataspace (%d dimensions)", c->path, section, name, nd);
        r = -1;
    }
    if (!r) {
        hsize_t dims[LZ_MAX_DIMS];
        H5Sget_simple_extent_dims(sp, dims, NULL);
        *ndim = nd;
        /* sizes from the file are checked against it before anyone allocates them:
         * uncompressed data cannot exceed the file, compressed ~1000x at most (deflate) */
        hid_t dcpl = H5Dget_create_plist(ds);
        int filtered = dcpl >= 0 && H5Pget_nfilters(dcpl) > 0;
        if (dcpl >= 0) H5Pclose(dcpl);
        uint64_t bound = (uint64_t)c->size * (filtered ? 1100 : 1), bytes = lz_dtype_size(*dtype);
        for (int d = 0; d < nd && !r; d++) {
            shape[d] = (int64_t)dims[d];
            if (dims[d] > INT64_MAX || (dims[d] && bytes > bound / dims[d])) r = -1;
            else bytes *= dims[d];
        }
        if (r) lz_fail("%s: %s/%s claims more data than the file holds (%lld bytes): the file "
                       "is corrupt", c->path, section, name, (long long)c->size);
    }
    free(dt);
    H5Sclose(sp);
    H5Tclose(t);
    if (r) { H5Dclose(ds); return H5I_INVALID_HID; }
    return ds;
}

int lz_ckpt_info(lz_ckpt *c, const char *section, const char *name, lz_dtype *dtype,
                 int *ndim, int64_t *shape) {
    if (!c) return -1;
    ckpt_quiet();
    hid_t ds = open_array(c, section, name, dtype, ndim, shape);
    if (ds < 0) return -1;
    H5Dclose(ds);
    return 0;
}

lz_array *lz_ckpt_get(lz_ckpt *c, const char *section, const char *name) {
    if (!c) return NULL;
    ckpt_quiet();
    lz_dtype t;
    int ndim;
    int64_t shape[LZ_MAX_DIMS];
    hid_t ds = open_array(c, section, name, &t, &ndim, shape);
    if (ds < 0) return NULL;
    /* Our own reference, independent of any pool the caller has open. */
    lz_pool_push();
    lz_array *a = lz_retain(lz_empty(ndim, shape, t));
    lz_pool_pop();
    int r = 0;
    if (!a) {
        char why[1024];
        snprintf(why, sizeof why, "%s", lz_error());
        lz_fail("%s: %s/%s: %s", c->path, section, name, why);
        r = -1;
    }
    size_t nbytes = a ? (size_t)lz_size(a) * lz_dtype_size(t) : 0;
    if (a && nbytes) {
        hid_t mt = ckpt_mem_type(t);
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, lz_data_mut(a)) < 0) {
            char d[256];
            lz_fail("%s: cannot read %s/%s: %s", c->path, section, name,
                    ckpt_h5_detail(d, sizeof d));
            r = -1;
        }
        H5Tclose(mt);
    }
    int64_t stored;
    if (!r && read_num_attr(ds, "crc32c", 1, &stored) == 0 &&
        (uint32_t)stored != ckpt_crc32c(0, lz_data_mut(a), nbytes)) {
        lz_fail("%s: %s/%s: checksum mismatch: the file is corrupt", c->path, section, name);
        r = -1;
    }
    H5Eclear2(H5E_DEFAULT);
    H5Dclose(ds);
    if (r) { lz_release(a); return NULL; }
    return lz_autorelease(a);
}

/* ---- root attributes ---- */
enum { K_INT, K_FLOAT, K_STR, K_BYTES, K_KEYS, K_OTHER };
static const char *kind_name[] = {"an integer", "a float", "a string", "bytes", "RNG keys",
                                  "of an unsupported type"};

/* Opens attribute key and classifies it; *n gets its element count. */
static hid_t open_key(lz_ckpt *c, const char *key, int *kind, hssize_t *n) {
    if (!key || !key[0] || H5Aexists(c->file, key) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        lz_fail("%s: no key \"%s\" in the checkpoint", c->path, key ? key : "");
        return H5I_INVALID_HID;
    }
    hid_t a = H5Aopen(c->file, key, H5P_DEFAULT);
    if (a < 0) {
        lz_fail("%s: cannot read key \"%s\"", c->path, key);
        return a;
    }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cls = H5Tget_class(t);
    H5S_class_t scls = H5Sget_simple_extent_type(sp);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[2] = {0, 0};
    if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    *n = scls == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(sp);
    int scalar = scls == H5S_SCALAR;
    if (cls == H5T_INTEGER && scalar) *kind = K_INT;
    else if (cls == H5T_FLOAT && scalar) *kind = K_FLOAT;
    else if (cls == H5T_STRING && scalar) *kind = K_STR;
    else if (cls == H5T_INTEGER && H5Tget_size(t) == 1 && (scls == H5S_NULL || nd == 1))
        *kind = K_BYTES;
    else if (cls == H5T_INTEGER && H5Tget_size(t) == 8 && nd == 2 && dims[1] == 2)
        *kind = K_KEYS;
    else *kind = K_OTHER;
    H5Sclose(sp);
    H5Tclose(t);
    return a;
}

static hid_t open_kind(lz_ckpt *c, const char *key, int want, int also, hssize_t *n) {
    int kind;
    hid_t a = open_key(c, key, &kind, n);
    if (a < 0) return a;
    if (kind != want && kind != also) {
        H5Aclose(a);
        lz_fail("%s: key \"%s\" is %s, not %s", c->path, key, kind_name[kind], kind_name[want]);
        return H5I_INVALID_HID;
    }
    return a;
}

static int read_failed(lz_ckpt *c, const char *key) {
    char d[256];
    lz_fail("%s: cannot read key \"%s\": %s", c->path, key, ckpt_h5_detail(d, sizeof d));
    return -1;
}

int lz_ckpt_has(lz_ckpt *c, const char *key) {
    if (!c || !key || !key[0]) return 0;
    ckpt_quiet();
    int r = H5Aexists(c->file, key) > 0;
    H5Eclear2(H5E_DEFAULT);
    return r;
}

int lz_ckpt_get_int(lz_ckpt *c, const char *key, int64_t *out) {
    if (!c) return -1;
    ckpt_quiet();
    hssize_t n;
    hid_t a = open_kind(c, key, K_INT, K_INT, &n);
    if (a < 0) return -1;
    int r = H5Aread(a, H5T_NATIVE_INT64, out) < 0 ? read_failed(c, key) : 0;
    H5Aclose(a);
    return r;
}

int lz_ckpt_get_float(lz_ckpt *c, const char *key, double *out) {
    if (!c) return -1;
    ckpt_quiet();
    hssize_t n;
    hid_t a = open_kind(c, key, K_FLOAT, K_INT, &n);
    if (a < 0) return -1;
    int r = H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0 ? read_failed(c, key) : 0;
    H5Aclose(a);
    return r;
}

const char *lz_ckpt_get_str(lz_ckpt *c, const char *key) {
    if (!c) return NULL;
    ckpt_quiet();
    hssize_t n;
    hid_t a = open_kind(c, key, K_STR, K_STR, &n);
    if (a < 0) return NULL;
    H5Aclose(a);
    char *s = own(c, read_str_attr(c->file, key));
    if (!s) read_failed(c, key);
    return s;
}

const void *lz_ckpt_get_bytes(lz_ckpt *c, const char *key, size_t *n) {
    static const unsigned char empty[1];
    if (!c) return NULL;
    ckpt_quiet();
    hssize_t count;
    hid_t a = open_kind(c, key, K_BYTES, K_BYTES, &count);
    if (a < 0) return NULL;
    if (count > c->size) {
        H5Aclose(a);
        lz_fail("%s: key \"%s\" claims %lld bytes, more than the file holds: the file is "
                "corrupt", c->path, key, (long long)count);
        return NULL;
    }
    void *p = count ? malloc((size_t)count) : NULL;
    if (count && (!p || H5Aread(a, H5T_NATIVE_UINT8, p) < 0)) {
        free(p);
        H5Aclose(a);
        read_failed(c, key);
        return NULL;
    }
    H5Aclose(a);
    *n = (size_t)count;
    return count ? own(c, p) : empty;
}

int lz_ckpt_get_keys(lz_ckpt *c, const char *key, lz_key *out, int max) {
    if (!c) return -1;
    ckpt_quiet();
    hssize_t count;
    hid_t a = open_kind(c, key, K_KEYS, K_KEYS, &count);
    if (a < 0) return -1;
    int64_t nk = count / 2;
    if (nk > max) {
        H5Aclose(a);
        lz_fail("%s: key \"%s\" holds %lld RNG keys, room for %d", c->path, key,
                (long long)nk, max);
        return -1;
    }
    uint64_t *v = malloc((size_t)(count ? count : 1) * sizeof *v);
    int r = v && H5Aread(a, H5T_NATIVE_UINT64, v) >= 0 ? 0 : read_failed(c, key);
    H5Aclose(a);
    for (int64_t i = 0; !r && i < nk; i++) out[i] = (lz_key){v[2 * i], v[2 * i + 1]};
    free(v);
    return r ? -1 : (int)nk;
}

/* ---- opening: verify, or parse in a child first ---- */
typedef struct { char **v; int n, cap; } names;

static int add_to(names *l, const char *name) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    return (l->v[l->n] = strdup(name)) ? (l->n++, 0) : -1;
}

static void free_names(names *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc; (void)info;
    return add_to(data, name) ? -1 : 0;
}

#if H5_VERSION_GE(1, 12, 0)
static herr_t link_cb(hid_t g, const char *name, const H5L_info2_t *info, void *data) {
#else
static herr_t link_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
#endif
    (void)g; (void)info;
    return add_to(data, name) ? -1 : 0;
}

/* Everything a program may ask of the checkpoint: every root key read as its kind, every
 * array of every section opened, read and its CRC checked. In the child of h5_probe: what
 * matters there is that libhdf5 comes back; errors it reports cleanly (a CRC mismatch, a
 * foreign dtype) are left for the program to meet when it asks for that item. */
static void walk(lz_ckpt *c) {
    names keys = {0}, secs = {0};
    H5Aiterate2(c->file, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_cb, &keys);
    H5Literate(c->file, H5_INDEX_NAME, H5_ITER_INC, NULL, link_cb, &secs);
    H5Eclear2(H5E_DEFAULT);
    for (int i = 0; i < keys.n; i++) {
        const char *k = keys.v[i];
        int kind;
        hssize_t n;
        lz_ckpt_has(c, k);
        hid_t a = open_key(c, k, &kind, &n);
        if (a < 0) continue;
        H5Aclose(a);
        union { int64_t i; double f; } v;
        size_t nb;
        lz_key keys1[64];
        switch (kind) {
        case K_INT: lz_ckpt_get_int(c, k, &v.i); break;
        case K_FLOAT: lz_ckpt_get_float(c, k, &v.f); break;
        case K_STR: lz_ckpt_get_str(c, k); break;
        case K_BYTES: lz_ckpt_get_bytes(c, k, &nb); break;
        case K_KEYS: if (n / 2 <= 64) lz_ckpt_get_keys(c, k, keys1, 64); break;
        default: break;
        }
    }
    for (int i = 0; i < secs.n; i++) {
        hid_t o = H5Oopen(c->file, secs.v[i], H5P_DEFAULT);
        int group = o >= 0 && H5Iget_type(o) == H5I_GROUP;
        if (o >= 0) H5Oclose(o);
        H5Eclear2(H5E_DEFAULT);
        if (!group || ckpt_check_name(c->path, "section", secs.v[i])) continue;
        int64_t n;
        const char *const *nm = lz_ckpt_names(c, secs.v[i], &n);
        for (int64_t k = 0; nm && k < n; k++) {
            /* lz_ckpt_get without lz arrays: the child of a GPU process must not touch it */
            lz_dtype t;
            int nd;
            int64_t shape[LZ_MAX_DIMS];
            hid_t ds = open_array(c, secs.v[i], nm[k], &t, &nd, shape);
            if (ds < 0) continue;
            size_t bytes = lz_dtype_size(t);
            for (int d = 0; d < nd; d++) bytes *= (size_t)shape[d];
            void *buf = malloc(bytes ? bytes : 1);
            hid_t mt = ckpt_mem_type(t);
            int64_t stored;
            if (buf && (!bytes || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0))
                read_num_attr(ds, "crc32c", 1, &stored);
            free(buf);
            H5Tclose(mt);
            H5Dclose(ds);
            H5Eclear2(H5E_DEFAULT);
        }
    }
    free_names(&keys);
    free_names(&secs);
}

static int probe_walk(void *arg) {
    lz_ckpt *c = open_direct(arg);
    if (!c) return -1;
    walk(c);
    lz_ckpt_close(c);
    return 0;
}

lz_ckpt *lz_ckpt_open(const char *path) {
    if (!path || !path[0]) return lz_fail("lz_ckpt_open: empty checkpoint path");
    ckpt_quiet();
    /* Verified bytes are only worth something if libhdf5 parses those same bytes: a file
     * renamed over path in between (a train writing it) is verified again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        int64_t size;
        if (h5_precheck(path, "checkpoint", &size)) return NULL;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st)) {
            lz_fail("%s: cannot open checkpoint: %s", path, strerror(errno));
            if (fd >= 0) close(fd);
            return NULL;
        }
        /* LZ_CKPT_UNVERIFIED=1: a checkpoint another tool changed is read as unverified */
        const char *unv = getenv("LZ_CKPT_UNVERIFIED");
        int v = unv && strcmp(unv, "0") && strcmp(unv, "") ? 0
                : ckpt_verify(path, fd, (int64_t)st.st_size);
        close(fd);
        if (v < 0) return NULL;
        if (v == 0) {
            const char *strict = getenv("LZ_CKPT_STRICT");
            if (strict && strcmp(strict, "0") && strcmp(strict, ""))
                return lz_fail("%s: the checkpoint has no checksum header (an older leibniz or "
                               "another tool wrote it) and LZ_CKPT_STRICT is set", path);
            /* every byte is read once by the walk; 50 MB/s is a slow disk */
            double seconds = 5 + (double)st.st_size / 50e6;
            if (h5_probe(path, "checkpoint", probe_walk, (void *)path, seconds,
                         ((int64_t)2 << 30) + 2 * (int64_t)st.st_size))
                return NULL;
        }
        lz_ckpt *c = open_direct(path);
        if (!c || v == 0) return c;
        int *fh = NULL;
        struct stat now;
        if (H5Fget_vfd_handle(c->file, H5P_DEFAULT, (void **)&fh) >= 0 && fh &&
            fstat(*fh, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev &&
            now.st_size == st.st_size && now.st_mtim.tv_sec == st.st_mtim.tv_sec &&
            now.st_mtim.tv_nsec == st.st_mtim.tv_nsec)
            return c;
        H5Eclear2(H5E_DEFAULT);
        lz_ckpt_close(c);
    }
    return lz_fail("%s: the checkpoint kept changing while it was opened", path);
}
