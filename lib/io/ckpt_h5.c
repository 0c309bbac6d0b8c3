/* Checkpoint helpers: the cause of an HDF5 failure kept until it is reported, HDF5 types for
 * our dtypes, CRC-32C, names. Opening and HDF5 messages are shared with lib/data (data/h5.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "core/internal.h"
#include "io/ckpt_internal.h"
#include "data/h5.h"
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#elif defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

/* Every HDF5 call clears the error stack, so the cause of a failure is saved at once. */
static _Thread_local char saved[256];

void ckpt_quiet(void) {
    h5_quiet();
    saved[0] = 0;
}

int ckpt_h5_save(void) {
    if (!saved[0]) h5_detail(saved, sizeof saved);
    return -1;
}

const char *ckpt_h5_detail(char *buf, size_t n) {
    if (saved[0]) {
        snprintf(buf, n, "%s", saved);
        saved[0] = 0;
        H5Eclear2(H5E_DEFAULT);
    } else {
        h5_detail(buf, n);
    }
    if (!buf[0]) snprintf(buf, n, "unknown HDF5 error");
    return buf;
}

/* IEEE half and bfloat16 as HDF5 float types built from float32's (sign bit 15). */
static hid_t half_type(hid_t base, int bf16) {
    hid_t t = H5Tcopy(base);
    if (t < 0) return t;
    if (bf16) H5Tset_fields(t, 15, 7, 8, 0, 7);
    else H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, bf16 ? 127 : 15);
    return t;
}

static hid_t make_type(lz_dtype t, int file) {
    switch (t) {
    case LZ_BOOL:
    case LZ_U8: return H5Tcopy(file ? H5T_STD_U8LE : H5T_NATIVE_UINT8);
    case LZ_I32: return H5Tcopy(file ? H5T_STD_I32LE : H5T_NATIVE_INT32);
    case LZ_I64: return H5Tcopy(file ? H5T_STD_I64LE : H5T_NATIVE_INT64);
    case LZ_F32: return H5Tcopy(file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT);
    case LZ_F16: return half_type(file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT, 0);
    case LZ_BF16: return half_type(file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT, 1);
    default: return H5I_INVALID_HID;
    }
}
hid_t ckpt_file_type(lz_dtype t) { return make_type(t, 1); }
hid_t ckpt_mem_type(lz_dtype t) { return make_type(t, 0); }

/* The dtype an HDF5 type holds exactly, without a "dtype" attribute (files from h5py). */
static int natural_dtype(hid_t type, lz_dtype *out) {
    size_t size = H5Tget_size(type);
    H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_INTEGER) {
        int sign = H5Tget_sign(type) != H5T_SGN_NONE;
        if (size == 1 && !sign) *out = LZ_U8;
        else if (size == 4 && sign) *out = LZ_I32;
        else if (size == 8 && sign) *out = LZ_I64;
        else return -1;
        return 0;
    }
    if (cls == H5T_FLOAT) {
        size_t spos, epos, esize, mpos, msize;
        if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return -1;
        if (size == 4 && esize == 8 && msize == 23) *out = LZ_F32;
        else if (size == 2 && esize == 5 && msize == 10) *out = LZ_F16;
        else if (size == 2 && esize == 8 && msize == 7) *out = LZ_BF16;
        else return -1;
        return 0;
    }
    return -1;
}

int ckpt_dtype_of(hid_t type, const char *dtype_attr, lz_dtype *out, char *why, size_t n) {
    char tn[64];
    lz_dtype nat = LZ_NDTYPES;
    int have_nat = natural_dtype(type, &nat) == 0;
    if (!dtype_attr) {
        if (!have_nat) {
            snprintf(why, n, "HDF5 type %s is not a leibniz dtype", h5_type_name(type, tn, sizeof tn));
            return -1;
        }
        *out = nat;
        return 0;
    }
    for (int t = 0; t < LZ_NDTYPES; t++) {
        if (strcmp(dtype_attr, lz_dtype_name((lz_dtype)t))) continue;
        /* bool is stored as uint8; every other dtype as itself */
        lz_dtype want = t == LZ_BOOL ? LZ_U8 : (lz_dtype)t;
        if (!have_nat || nat != want) {
            snprintf(why, n, "its dtype attribute says %s but it is stored as %s", dtype_attr,
                     h5_type_name(type, tn, sizeof tn));
            return -1;
        }
        *out = (lz_dtype)t;
        return 0;
    }
    snprintf(why, n, "unknown dtype \"%.40s\"", dtype_attr);
    return -1;
}

/* ---- CRC-32C: hardware instructions where the target has them ---- */
#if defined(__SSE4_2__) && defined(__x86_64__)
uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--, s++) c32 = _mm_crc32_u8(c32, *s);
    return ~c32;
}
#elif defined(__ARM_FEATURE_CRC32)
uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n) {
    const unsigned char *s = p;
    uint32_t c = ~crc;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c = __crc32cd(c, w);
    }
    for (; n; n--, s++) c = __crc32cb(c, *s);
    return ~c;
}
#else
static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
}
uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n) {
    const unsigned char *s = p;
    pthread_once(&table_once, make_table);
    uint32_t c = ~crc;
    for (; n; n--, s++) c = table[(c ^ *s) & 0xff] ^ (c >> 8);
    return ~c;
}
#endif

int ckpt_check_name(const char *path, const char *what, const char *name) {
    if (!name || !name[0]) {
        lz_fail("%s: empty %s name", path, what);
        return -1;
    }
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
        lz_fail("%s: %s name \"%s\" is not allowed ('/', \".\" and \"..\" are reserved)", path,
                what, name);
        return -1;
    }
    return 0;
}

void ckpt_shape_str(lz_dtype t, int ndim, const int64_t *shape, char *buf, size_t n) {
    char s[200];
    lz_format_shape(ndim, shape, s, sizeof s);
    snprintf(buf, n, "%s%s", lz_dtype_name(t), s);
}

/* ---- the checksum header ---- */
static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* CRC-32C of bytes [off, off + n) of fd; -1 on a read error or a short file. */
static int crc_range(int fd, int64_t off, uint64_t n, uint32_t *crc) {
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) return -1;
    uint32_t c = 0;
    while (n) {
        size_t want = n < CHUNK ? (size_t)n : CHUNK;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { free(buf); return -1; }
        c = ckpt_crc32c(c, buf, (size_t)got);
        off += got;
        n -= (uint64_t)got;
    }
    free(buf);
    *crc = c;
    return 0;
}

int ckpt_seal(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    unsigned char h[CKPT_HEADER] = {0};
    uint32_t crc;
    int r = fstat(fd, &st) || st.st_size < CKPT_HEADER ? -1 : 0;
    if (r && !errno) errno = EIO;
    uint64_t n = r ? 0 : (uint64_t)st.st_size - CKPT_HEADER;
    if (!r && crc_range(fd, CKPT_HEADER, n, &crc)) r = -1;
    if (!r) {
        memcpy(h, CKPT_MAGIC, 8);
        put_u32(h + 8, 1);
        put_u32(h + 12, CKPT_HEADER);
        put_u64(h + 16, n);
        put_u32(h + 24, crc);
        put_u32(h + 28, ckpt_crc32c(0, h, 28));
        snprintf((char *)h + 32, CKPT_HEADER - 32, "\nleibniz checkpoint: HDF5 from byte 512, "
                 "checked by the CRC-32C above before it is parsed\n");
        r = pwrite(fd, h, CKPT_HEADER, 0) == CKPT_HEADER ? 0 : -1;
    }
    int err = errno;
    close(fd);
    errno = err;
    return r;
}

int ckpt_verify(const char *path, int fd, int64_t size) {
    static const unsigned char h5sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char h[CKPT_HEADER], sig[8];
    ssize_t got = pread(fd, h, CKPT_HEADER, 0);
    if (got < 0) {
        lz_fail("%s: cannot read checkpoint: %s", path, strerror(errno));
        return -1;
    }
    if (got < 8 || memcmp(h, CKPT_MAGIC, 8)) {
        /* ours start with the magic; a damaged header before HDF5 data at 512 is ours too */
        if (size > CKPT_HEADER + 8 && pread(fd, sig, 8, CKPT_HEADER) == 8 &&
            !memcmp(sig, h5sig, 8) && (got < 8 || memcmp(h, h5sig, 8))) {
            lz_fail("%s: corrupt checkpoint: its checksum header (the first 512 bytes) is "
                    "damaged", path);
            return -1;
        }
        return 0;
    }
    if (got < CKPT_HEADER) {
        lz_fail("%s: truncated HDF5 file (%lld bytes, less than its header): the checkpoint "
                "was not written or copied completely", path, (long long)size);
        return -1;
    }
    if (get_u32(h + 28) != ckpt_crc32c(0, h, 28) || get_u32(h + 8) != 1 ||
        get_u32(h + 12) != CKPT_HEADER) {
        lz_fail("%s: corrupt checkpoint: its checksum header is damaged (or from a newer "
                "leibniz)", path);
        return -1;
    }
    uint64_t n = get_u64(h + 16), have = (uint64_t)size - CKPT_HEADER;
    if (have < n) {
        lz_fail("%s: truncated HDF5 file (%llu of %llu bytes): the checkpoint was not written "
                "or copied completely", path, (unsigned long long)size,
                (unsigned long long)(n + CKPT_HEADER));
        return -1;
    }
    if (have > n) {
        lz_fail("%s: checksum mismatch: the file is corrupt, or another tool changed it "
                "(%llu bytes, its header says %llu; LZ_CKPT_UNVERIFIED=1 reads it unverified)",
                path, (unsigned long long)size, (unsigned long long)(n + CKPT_HEADER));
        return -1;
    }
    uint32_t crc;
    if (crc_range(fd, CKPT_HEADER, n, &crc)) {
        lz_fail("%s: cannot read checkpoint: %s", path, errno ? strerror(errno) : "short read");
        return -1;
    }
    if (crc != get_u32(h + 24)) {
        lz_fail("%s: checksum mismatch: the file is corrupt, or another tool changed it "
                "(CRC-32C of its %llu bytes of HDF5 data is %08x, its header says %08x; "
                "LZ_CKPT_UNVERIFIED=1 reads it unverified)", path, (unsigned long long)n, crc,
                get_u32(h + 24));
        return -1;
    }
    return 1;
}
