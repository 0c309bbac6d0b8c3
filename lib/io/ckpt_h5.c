/* Checkpoint helpers: the cause of an HDF5 failure kept until it is reported, HDF5 types for
 * our dtypes, CRC-32C, names. Opening and HDF5 messages are shared with lib/data (data/h5.h). */
#include <errno.h>
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
