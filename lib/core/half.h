/* float16 / bfloat16 storage conversions (round to nearest even), and a generic scalar
 * load/store by dtype used by readers and the elementwise engine's slow paths. */
#ifndef LZ_HALF_H
#define LZ_HALF_H

#include <stdint.h>
#include <string.h>
#include "core.h"

static inline float lz_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t lz_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float lz_f16_to_f32(uint16_t h) {
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}

static inline uint16_t lz_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
}

static inline double lz_load_scalar(const void *p, lz_dtype t) {
    switch (t) {
    case LZ_BOOL: return *(const uint8_t *)p != 0;
    case LZ_U8: return *(const uint8_t *)p;
    case LZ_I32: return *(const int32_t *)p;
    case LZ_I64: return (double)*(const int64_t *)p;
    case LZ_F16: return lz_f16_to_f32(*(const uint16_t *)p);
    case LZ_BF16: return lz_bf16_to_f32(*(const uint16_t *)p);
    case LZ_F32: return *(const float *)p;
    default: return 0;
    }
}

/* double -> int64 without undefined behaviour: NaN gives 0, out of range saturates
 * (what the elementwise engine's float-to-int cast does too). */
static inline int64_t lz_double_to_int(double v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

static inline int64_t lz_load_int(const void *p, lz_dtype t) {
    switch (t) {
    case LZ_BOOL: return *(const uint8_t *)p != 0;
    case LZ_U8: return *(const uint8_t *)p;
    case LZ_I32: return *(const int32_t *)p;
    case LZ_I64: return *(const int64_t *)p;
    default: return lz_double_to_int(lz_load_scalar(p, t));
    }
}

static inline void lz_store_scalar(void *p, lz_dtype t, double v) {
    switch (t) {
    case LZ_BOOL: *(uint8_t *)p = v != 0; break;
    case LZ_U8: *(uint8_t *)p = (uint8_t)lz_double_to_int(v); break;
    case LZ_I32: *(int32_t *)p = (int32_t)lz_double_to_int(v); break;
    case LZ_I64: *(int64_t *)p = lz_double_to_int(v); break;
    case LZ_F16: *(uint16_t *)p = lz_f32_to_f16((float)v); break;
    case LZ_BF16: *(uint16_t *)p = lz_f32_to_bf16((float)v); break;
    case LZ_F32: *(float *)p = (float)v; break;
    default: break;
    }
}

#endif
