/* Shared by test_checkpoint.c and test_checkpoint_faults.c: the scratch folder (made by
 * ckpt_setup, removed by ckpt_teardown), a deterministic byte stream, byte-exact checks. */
#ifndef LZ_CKPT_TESTUTIL_H
#define LZ_CKPT_TESTUTIL_H
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hdf5.h>
#include "testutil.h"
#include "io/checkpoint.h"

static char dir[] = "/tmp/lz_ckpt_XXXXXX";
static uint64_t seed = 0x9e3779b97f4a7c15ull;

static inline uint64_t next(void) {
    seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27;
    return seed * 2685821657736338717ull;
}

static inline char *path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* Random bytes valid for dtype t (bool: 0/1; floats: any bit pattern, NaNs included). */
static inline void *random_bytes(lz_dtype t, int64_t n) {
    size_t es = lz_dtype_size(t);
    unsigned char *p = malloc((size_t)n * es + 1);
    for (int64_t i = 0; i < n * (int64_t)es; i++) p[i] = (unsigned char)(next() >> 56);
    if (t == LZ_BOOL) for (int64_t i = 0; i < n; i++) p[i] &= 1;
    return p;
}

/* Fails unless a has dtype t, the given shape and exactly these row-major bytes. */
static inline void expect_bytes(const char *name, lz_array *a, lz_dtype t, int ndim,
                         const int64_t *shape, const void *bytes) {
    if (!a) fail_msg("%s: array is NULL: %s", name, lz_error());
    assert_int_equal(lz_dtype_of(a), t);
    assert_int_equal(lz_ndim(a), ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(lz_shape(a)[d], shape[d]);
    assert_true(lz_is_contiguous(a));
    size_t nbytes = (size_t)lz_size(a) * lz_dtype_size(t);
    if (nbytes && memcmp(lz_data(a), bytes, nbytes)) {
        const unsigned char *x = lz_data(a), *y = bytes;
        size_t i = 0;
        while (x[i] == y[i]) i++;
        fail_msg("%s: byte %zu differs: 0x%02x, expected 0x%02x", name, i, x[i], y[i]);
    }
}

static inline long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

static inline char *slurp(const char *path, long *size) {
    *size = file_size(path);
    char *b = malloc((size_t)*size + 1);
    FILE *f = fopen(path, "rb");
    assert_int_equal(fread(b, 1, (size_t)*size, f), *size);
    fclose(f);
    return b;
}

static inline int rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    struct dirent *e;
    char sub[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) continue;
        rm_tree(sub);
    }
    closedir(d);
    return rmdir(path);
}

static inline int ckpt_setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    chmod(dir, 0755);   /* the unwritable-folder test runs as nobody */
    return 0;
}

static inline int ckpt_teardown(void **state) {
    (void)state;
    return rm_tree(dir);
}

static inline void write_model(const char *path) {
    lz_ckpt_writer *w = lz_ckpt_create(path);
    assert_non_null(w);
    lz_pool_push();
    lz_ckpt_put(w, "params", "conv1.weight", lz_zeros(4, (int64_t[]){32, 1, 3, 3}, LZ_F32));
    lz_ckpt_put(w, "params", "conv1.bias", lz_zeros(1, (int64_t[]){32}, LZ_F32));
    lz_ckpt_put(w, "params", "fc.weight", lz_zeros(2, (int64_t[]){10, 5}, LZ_F32));
    lz_ckpt_put(w, "params", "norm.scale", lz_zeros(1, (int64_t[]){4}, LZ_BF16));
    lz_pool_pop();
    assert_int_equal(lz_ckpt_commit(w), 0);
}

#endif
