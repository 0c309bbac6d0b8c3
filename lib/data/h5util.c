/* HDF5 helpers for lib/data: silence, one-line messages, opening files for reading with a
 * diagnosis of what is wrong with them, and string/number attributes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/core.h"
#include "data/h5.h"

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct { char *buf; size_t n; } walk_ctx;

/* Walking upward starts at the innermost frame, where the real cause is described; a
 * message mentioning truncation wins wherever it is. */
static herr_t walk(unsigned n, const H5E_error2_t *e, void *data) {
    walk_ctx *w = data;
    if (!e->desc || !e->desc[0]) return 0;
    int truncated = strstr(e->desc, "truncated") != NULL;
    if (n == 0 || truncated || !w->buf[0]) {
        snprintf(w->buf, w->n, "%s", e->desc);
        if (truncated) return 1;   /* stop */
    }
    return 0;
}

const char *h5_detail(char *buf, size_t n) {
    walk_ctx w = {buf, n};
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &w);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

const char *h5_type_name(hid_t type, char *buf, size_t n) {
    size_t bits = 8 * H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, n, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
    case H5T_ENUM: snprintf(buf, n, "enum"); break;
    case H5T_ARRAY: snprintf(buf, n, "array"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length"); break;
    case H5T_REFERENCE: snprintf(buf, n, "reference"); break;
    case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
    default: snprintf(buf, n, "an unsupported type"); break;
    }
    return buf;
}

/* What a non-HDF5 file looks like, for a message that says what to do. */
static const char *guess_format(const char *path) {
    unsigned char m[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return "";
    size_t got = fread(m, 1, sizeof m, f);
    fclose(f);
    if (got >= 2 && m[0] == 0x1f && m[1] == 0x8b) return " (it is gzip-compressed)";
    if (got >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8)) return " (it is a PNG image)";
    if (got >= 4 && m[0] == 0 && m[1] == 0 && m[2] == 8 && m[3] >= 1 && m[3] <= 4)
        return " (it looks like an IDX file: convert it with lz-data idx)";
    return "";
}

static int has_h5_magic(const char *path) {
    static const unsigned char magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char m[8];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(m, 1, 8, f);
    fclose(f);
    return got == 8 && !memcmp(m, magic, 8);
}

hid_t h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
#if H5_VERSION_GE(1, 10, 7)
    /* We never write a file another process reads (writers rename a finished file into
     * place), and locks fail on some network file systems. */
    H5Pset_file_locking(fapl, 0, 1);
#endif
    /* Close the file even if a handle was leaked on an error path. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

int h5_precheck(const char *path, const char *what, int64_t *size) {
    bool ckpt = !strcmp(what, "checkpoint");
    struct stat st;
    if (stat(path, &st)) {
        lz_fail("%s: cannot open%s: %s", path, ckpt ? " checkpoint" : "", strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        lz_fail("%s: is a folder, not %s file", path, ckpt ? "a checkpoint" : "an HDF5 dataset");
        return -1;
    }
    if (st.st_size == 0) {
        lz_fail("%s: empty file (0 bytes), not %s", path, ckpt ? "a checkpoint" : "an HDF5 dataset");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        lz_fail("%s: cannot open%s: %s", path, ckpt ? " checkpoint" : "", strerror(errno));
        return -1;
    }
    fclose(f);
    *size = (int64_t)st.st_size;
    return 0;
}

int64_t h5_file_size(hid_t obj) {
    hid_t f = H5Iget_file_id(obj);
    hsize_t n = 0;
    if (f < 0 || H5Fget_filesize(f, &n) < 0) n = 0;
    if (f >= 0) H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    return (int64_t)n;
}

hid_t h5_open_file(const char *path, const char *what) {
    bool ckpt = !strcmp(what, "checkpoint");
    struct stat st;
    int64_t size;
    if (h5_precheck(path, what, &size)) return H5I_INVALID_HID;
    st.st_size = (off_t)size;
    h5_quiet();
    char detail[256];
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    if (is <= 0) {
        h5_detail(detail, sizeof detail);
        if (has_h5_magic(path))
            lz_fail("%s: corrupt or truncated HDF5 file (%lld bytes): %s", path,
                    (long long)st.st_size, detail[0] ? detail : "unknown error");
        else
            lz_fail("%s: not an HDF5 file%s%s", path, guess_format(path),
                    ckpt ? ", so not a leibniz checkpoint" : "");
        return H5I_INVALID_HID;
    }
    hid_t fapl = h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (file < 0) h5_detail(detail, sizeof detail);   /* before the next call clears it */
    H5Pclose(fapl);
    if (file >= 0) return file;
    unsigned long long eof = 0, base = 0, stored = 0;
    const char *t = strstr(detail, "truncated file");
    const char *again = ckpt ? "the checkpoint was not written or copied completely"
                             : "it was not written or copied completely; create it again";
    if (t && sscanf(t, "truncated file: eof = %llu, sblock->base_addr = %llu, stored_eof = %llu",
                    &eof, &base, &stored) == 3)
        lz_fail("%s: truncated HDF5 file (%llu of %llu bytes): %s", path, eof, stored, again);
    else if (t)
        lz_fail("%s: truncated HDF5 file: %s", path, again);
    else
        lz_fail("%s: corrupt or truncated HDF5 file (%lld bytes): %s", path,
                (long long)st.st_size, detail[0] ? detail : "unknown error");
    return H5I_INVALID_HID;
}

hid_t h5_open_read(const char *path) { return h5_open_file(path, "dataset"); }

/* ---- parsing unverified files in a child first ---- */
static pthread_rwlock_t fork_lock = PTHREAD_RWLOCK_INITIALIZER;
void h5_use_begin(void) { pthread_rwlock_rdlock(&fork_lock); }
void h5_use_end(void) { pthread_rwlock_unlock(&fork_lock); }

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* The process's address-space size in bytes (VmSize), 0 if unknown. */
static int64_t vm_size(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lld kB", &kb) == 1) break;
    fclose(f);
    return (int64_t)kb * 1024;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* In the child: limits, quiet stderr, fn, then one status byte and fn's message. */
static void run_child(int fd, int (*fn)(void *), void *arg, double seconds, int64_t mem) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    /* ASan reserves terabytes of shadow memory and has its own allocation limits */
    int64_t vm = vm_size();
#ifndef UNDER_ASAN
    if (vm > 0 && mem > 0) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + mem);
        setrlimit(RLIMIT_AS, &rl);
    }
#else
    (void)vm;
    (void)mem;
#endif
    alarm((unsigned)seconds + 2);   /* a backstop should the parent die */
    if (!getenv("LZ_H5_PROBE_STDERR")) {
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) dup2(dn, 2);
    }
    h5_quiet();
    lz_error_clear();
    int r = fn(arg);
    char msg[1100];
    msg[0] = r == 0 ? 'k' : 'e';
    size_t n = (size_t)snprintf(msg + 1, sizeof msg - 1, "%s", r == 0 ? "" : lz_error());
    if (n > sizeof msg - 2) n = sizeof msg - 2;
    ssize_t w = write(fd, msg, n + 1);
    _exit(w == (ssize_t)(n + 1) ? 0 : 1);
}

int h5_probe(const char *path, const char *what, int (*fn)(void *), void *arg, double seconds,
             int64_t mem_bytes) {
    const char *env = getenv("LZ_H5_TIMEOUT");
    if (env && atof(env) > 0) seconds = atof(env);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        lz_fail("%s: cannot check the %s: %s", path, what, strerror(errno));
        return -1;
    }
    pthread_rwlock_wrlock(&fork_lock);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        run_child(fds[1], fn, arg, seconds, mem_bytes);
    }
    int err = errno;
    pthread_rwlock_unlock(&fork_lock);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        lz_fail("%s: cannot check the %s: fork: %s", path, what, strerror(err));
        return -1;
    }
    char msg[1100];
    size_t got = 0;
    int timed_out = 0;
    double end = now_s() + seconds;
    for (;;) {
        double left = end - now_s();
        if (left <= 0) { timed_out = 1; break; }
        struct pollfd p = {fds[0], POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue;   /* the loop head decides */
        if (r < 0) break;
        ssize_t n = read(fds[0], msg + got, sizeof msg - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;      /* end of file: the child is gone */
        got += (size_t)n;
        if (got == sizeof msg - 1) break;
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    msg[got] = 0;
    if (timed_out) {
        lz_fail("%s: corrupt or hostile HDF5 file: libhdf5 did not finish reading it within "
                "%.1f s (stopped)", path, seconds);
        return -1;
    }
    if (got >= 1 && msg[0] == 'k' && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (got >= 1 && msg[0] == 'e') {
        lz_fail("%s", msg + 1);
        return -1;
    }
    if (WIFSIGNALED(status))
        lz_fail("%s: corrupt HDF5 file: libhdf5 crashed reading it (%s); the %s is not used",
                path, strsignal(WTERMSIG(status)), what);
    else
        lz_fail("%s: corrupt HDF5 file: libhdf5 failed reading it (exit %d); the %s is not used",
                path, WIFEXITED(status) ? WEXITSTATUS(status) : -1, what);
    return -1;
}

/* Opens attribute `name` of obj: 0 absent, 1 opened (*attr, *type, *n set), -1 error. */
static int open_attr(const char *path, hid_t obj, const char *name, hid_t *attr, hid_t *type,
                     hssize_t *n) {
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0) return 0;
    char d[256];
    if (ex < 0 || (*attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0) {
        lz_fail("%s: cannot read attribute '%s': %s", path, name, h5_detail(d, sizeof d));
        return -1;
    }
    *type = H5Aget_type(*attr);
    hid_t space = H5Aget_space(*attr);
    *n = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    return 1;
}

int h5_read_strings(const char *path, hid_t obj, const char *name, char ***out) {
    hid_t attr, type;
    hssize_t n;
    *out = NULL;
    int r = open_attr(path, obj, name, &attr, &type, &n);
    if (r <= 0) return r;
    char tn[32], d[256];
    int ret = -1;
    char **tmp = NULL, *fixed = NULL;
    hid_t mem = H5I_INVALID_HID, space = H5Aget_space(attr);
    if (H5Tget_class(type) != H5T_STRING) {
        lz_fail("%s: attribute '%s' has type %s, expected a list of strings", path, name,
                h5_type_name(type, tn, sizeof tn));
        goto done;
    }
    if (n <= 0) { ret = 0; goto done; }
    size_t total = 0, fsize = H5Tget_size(type);
    /* sizes from the file are checked against it before anything is allocated */
    int64_t fbytes = h5_file_size(obj);
    if (n > INT32_MAX || fsize == 0 || (fbytes && (uint64_t)n > (uint64_t)fbytes / fsize)) {
        lz_fail("%s: attribute '%s' claims %lld strings of %zu bytes, more than the file holds: "
                "the file is corrupt", path, name, (long long)n, fsize);
        goto done;
    }
    int vlen = H5Tis_variable_str(type) > 0;
    mem = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mem, H5Tget_cset(type));
    if (vlen) {
        H5Tset_size(mem, H5T_VARIABLE);
        tmp = calloc((size_t)n, sizeof *tmp);
        if (!tmp || H5Aread(attr, mem, tmp) < 0) goto read_error;
        for (hssize_t i = 0; i < n; i++) total += (tmp[i] ? strlen(tmp[i]) : 0) + 1;
    } else {
        H5Tset_size(mem, fsize);
        H5Tset_strpad(mem, H5Tget_strpad(type));
        fixed = malloc((size_t)n * fsize);
        if (!fixed || H5Aread(attr, mem, fixed) < 0) goto read_error;
        total = (size_t)n * (fsize + 1);
    }
    char **block = malloc((size_t)n * sizeof(char *) + total);
    if (!block) { lz_fail("%s: out of memory reading attribute '%s'", path, name); goto done; }
    char *p = (char *)(block + n);
    for (hssize_t i = 0; i < n; i++) {
        block[i] = p;
        if (vlen) {
            size_t len = tmp[i] ? strlen(tmp[i]) : 0;
            memcpy(p, tmp[i] ? tmp[i] : "", len);
            p[len] = 0;
            p += len + 1;
        } else {
            size_t len = strnlen(fixed + (size_t)i * fsize, fsize);
            memcpy(p, fixed + (size_t)i * fsize, len);
            if (H5Tget_strpad(type) == H5T_STR_SPACEPAD) while (len && p[len - 1] == ' ') len--;
            p[len] = 0;
            p += fsize + 1;
        }
    }
    *out = block;
    ret = (int)n;
    goto done;
read_error:
    lz_fail("%s: cannot read attribute '%s': %s", path, name, h5_detail(d, sizeof d));
done:
    if (tmp) { H5Dvlen_reclaim(mem, space, H5P_DEFAULT, tmp); free(tmp); }
    free(fixed);
    if (mem >= 0) H5Tclose(mem);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    return ret;
}

int h5_read_doubles(const char *path, hid_t obj, const char *name, double **out) {
    hid_t attr, type;
    hssize_t n;
    *out = NULL;
    int r = open_attr(path, obj, name, &attr, &type, &n);
    if (r <= 0) return r;
    char tn[32], d[256];
    int ret = -1;
    H5T_class_t c = H5Tget_class(type);
    if (c != H5T_INTEGER && c != H5T_FLOAT) {
        lz_fail("%s: attribute '%s' has type %s, expected numbers", path, name,
                h5_type_name(type, tn, sizeof tn));
    } else if (n <= 0) {
        ret = 0;
    } else if (n > INT32_MAX || (uint64_t)n > (uint64_t)h5_file_size(obj)) {
        lz_fail("%s: attribute '%s' claims %lld numbers, more than the file holds: the file is "
                "corrupt", path, name, (long long)n);
    } else if (!(*out = malloc((size_t)n * sizeof(double)))) {
        lz_fail("%s: out of memory reading attribute '%s'", path, name);
    } else if (H5Aread(attr, H5T_NATIVE_DOUBLE, *out) < 0) {
        lz_fail("%s: cannot read attribute '%s': %s", path, name, h5_detail(d, sizeof d));
        free(*out);
        *out = NULL;
    } else {
        ret = (int)n;
    }
    H5Tclose(type);
    H5Aclose(attr);
    return ret;
}
