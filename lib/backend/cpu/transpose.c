/* Transposes of small blocks in cache, for the elementwise engine's blocked walks (fused.c):
 * reading a transposed or permuted leaf column by column and copying a block of a transpose
 * straight from leaf to output. */
#include <stdint.h>
#include "cpu.h"
#ifdef __AVX__
#include <immintrin.h>
#endif

/* Transposes in cache: element (r, c) of a rows x cols block is src[c * scs + r] and goes
 * to dst[r * drs + c] (strides in elements of es bytes). Square sub-blocks go through
 * vector registers (8x8 of 4 or 2 bytes, 4x4 of 8 bytes), the edges element by element.
 * Only moves bits: NaN payloads pass unchanged. */
#ifdef __AVX__
static inline void transpose_8x8x4(const char *src, int64_t scs, char *dst, int64_t drs) {
    const float *s = (const float *)src;
    float *d = (float *)dst;
    __m256 r[8], t[8], u[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(s + k * scs);
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(d + k * drs, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(d + (k + 4) * drs, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}

static inline void transpose_4x4x8(const char *src, int64_t scs, char *dst, int64_t drs) {
    const double *s = (const double *)src;
    double *d = (double *)dst;
    __m256d r[4], t[4];
    for (int k = 0; k < 4; k++) r[k] = _mm256_loadu_pd(s + k * scs);
    for (int k = 0; k < 4; k += 2) {
        t[k] = _mm256_unpacklo_pd(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_pd(r[k], r[k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        _mm256_storeu_pd(d + k * drs, _mm256_permute2f128_pd(t[k], t[k + 2], 0x20));
        _mm256_storeu_pd(d + (k + 2) * drs, _mm256_permute2f128_pd(t[k], t[k + 2], 0x31));
    }
}

static inline void transpose_8x8x2(const char *src, int64_t scs, char *dst, int64_t drs) {
    const uint16_t *s = (const uint16_t *)src;
    uint16_t *d = (uint16_t *)dst;
    __m128i r[8], a[8], b[8];
    for (int k = 0; k < 8; k++) r[k] = _mm_loadu_si128((const __m128i *)(s + k * scs));
    for (int k = 0; k < 8; k += 2) {
        a[k] = _mm_unpacklo_epi16(r[k], r[k + 1]);
        a[k + 1] = _mm_unpackhi_epi16(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        b[k] = _mm_unpacklo_epi32(a[k], a[k + 2]);
        b[k + 1] = _mm_unpackhi_epi32(a[k], a[k + 2]);
        b[k + 2] = _mm_unpacklo_epi32(a[k + 1], a[k + 3]);
        b[k + 3] = _mm_unpackhi_epi32(a[k + 1], a[k + 3]);
    }
    for (int k = 0; k < 4; k++) {
        _mm_storeu_si128((__m128i *)(d + 2 * k * drs), _mm_unpacklo_epi64(b[k], b[k + 4]));
        _mm_storeu_si128((__m128i *)(d + (2 * k + 1) * drs), _mm_unpackhi_epi64(b[k], b[k + 4]));
    }
}
#endif

#define TRANSPOSE(T)                                                                   \
    do {                                                                               \
        const T *s = (const T *)src;                                                   \
        T *d = (T *)dst;                                                               \
        for (int64_t r = r0; r < rows; r++)                                            \
            for (int64_t c = 0; c < cols; c++) d[r * drs + c] = s[c * scs + r];        \
        for (int64_t r = 0; r < r0; r++)                                               \
            for (int64_t c = c0; c < cols; c++) d[r * drs + c] = s[c * scs + r];       \
    } while (0)

void cpu_transpose(const char *src, int64_t scs, char *dst, int64_t drs, int64_t rows,
                   int64_t cols, int64_t es) {
    int64_t r0 = 0, c0 = 0;   /* [0, r0) x [0, c0) goes by vector sub-blocks */
#ifdef __AVX__
    int64_t k = es == 8 ? 4 : es == 4 || es == 2 ? 8 : 0;
    if (k) {
        r0 = rows / k * k;
        c0 = cols / k * k;
        for (int64_t c = 0; c < c0; c += k)
            for (int64_t r = 0; r < r0; r += k) {
                const char *s = src + (c * scs + r) * es;
                char *d = dst + (r * drs + c) * es;
                if (es == 4) transpose_8x8x4(s, scs, d, drs);
                else if (es == 8) transpose_4x4x8(s, scs, d, drs);
                else transpose_8x8x2(s, scs, d, drs);
            }
    }
#endif
    switch (es) {
    case 1: TRANSPOSE(uint8_t); return;
    case 2: TRANSPOSE(uint16_t); return;
    case 4: TRANSPOSE(uint32_t); return;
    default: TRANSPOSE(uint64_t); return;
    }
}
