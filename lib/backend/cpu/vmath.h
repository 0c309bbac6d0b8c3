/* Vectorisable float math for the elementwise kernels. These first versions call libm;
 * replacing them with polynomial forms the compiler vectorises is a measured optimisation
 * (bench/bench_core.c), with accuracy checked in tests/test_elementwise.c. */
#ifndef LZ_VMATH_H
#define LZ_VMATH_H
#include <math.h>

static inline float lz_expf(float x) { return expf(x); }
static inline float lz_logf(float x) { return logf(x); }
static inline float lz_tanhf(float x) { return tanhf(x); }
static inline float lz_erff(float x) { return erff(x); }
static inline float lz_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
