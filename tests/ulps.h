/* Comparison in ulps for tests of float results: naive rounding to float32, float16 and
 * bfloat16, the distance of a value from a float64 reference in ulps of the result's format,
 * and checks that print the first element out of tolerance. An ulp is the spacing of the
 * format in the binade of the exact value (2^-149 below FLT_MIN for float32); NaN must give
 * NaN, an exact value that rounds to +-inf that inf, and a zero the reference's sign. */
#ifndef LZ_ULPS_H
#define LZ_ULPS_H

#include "testutil.h"

/* ---- formats, rounding and comparison ---- */
typedef struct { int mant, emin; double max; } fmt;
static const fmt F32 = {23, -126, 0x1.fffffep127}, F16 = {10, -14, 65504.0},
                 BF16 = {7, -126, 0x1.fep127};

static inline fmt fmt_of(lz_dtype t) { return t == LZ_F16 ? F16 : t == LZ_BF16 ? BF16 : F32; }

/* x rounded to nearest, ties to even, in format f (naive: scale to an integer and rint). */
static inline double round_to(double x, fmt f) {
    if (isnan(x) || isinf(x) || x == 0) return x;
    int e;
    frexp(fabs(x), &e);
    int ex = e - 1 < f.emin ? f.emin : e - 1;
    double q = ldexp(1.0, ex - f.mant), r = nearbyint(x / q) * q;
    return fabs(r) > f.max ? copysign(INFINITY, x) : r;
}

/* |got - ref| in ulps of f at ref. */
static inline double ulps(double got, double ref, fmt f) {
    if (isnan(ref) || isnan(got)) return isnan(ref) && isnan(got) ? 0 : INFINITY;
    double rr = round_to(ref, f);
    if (isinf(rr) || isinf(got)) return got == rr ? 0 : INFINITY;
    if (ref == 0) return got == 0 && signbit(got) == signbit(ref) ? 0 : INFINITY;
    int e;
    frexp(fabs(ref), &e);
    return fabs(got - ref) / ldexp(1.0, (e - 1 < f.emin ? f.emin : e - 1) - f.mant);
}

/* Checks a (any float dtype) against ref within tol[i] ulps (or max_ulp when tol is NULL). */
static inline void check_ulps_(lz_array *a, const double *ref, const double *tol, double max_ulp,
                        const char *what, const char *file, int line) {
    if (!a) fail_msg("%s:%d: %s: NULL: %s", file, line, what, lz_error());
    int64_t n = lz_size(a);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (lz_to_float(a, f, n)) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
    fmt fm = fmt_of(lz_dtype_of(a));
    for (int64_t i = 0; i < n; i++) {
        double u = ulps(f[i], ref[i], fm), t = tol ? tol[i] : max_ulp;
        if (u != 0 && !(u <= t)) {
            double g = f[i];
            free(f);
            fail_msg("%s:%d: %s %s: element %lld: got %.9g, expected %.12g (%.3g ulp > %g)",
                     file, line, what, lz_dtype_name(lz_dtype_of(a)), (long long)i, g, ref[i], u, t);
        }
    }
    free(f);
}
#define check_ulps(a, ref, tol, max_ulp, what) check_ulps_(a, ref, tol, max_ulp, what, __FILE__, __LINE__)

/* Checks an integer or bool array exactly. */
static inline void check_ints_(lz_array *a, const int64_t *ref, const char *what, const char *file, int line) {
    if (!a) fail_msg("%s:%d: %s: NULL: %s", file, line, what, lz_error());
    int64_t n = lz_size(a);
    int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (lz_to_int(a, v, n)) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
    for (int64_t i = 0; i < n; i++)
        if (v[i] != ref[i]) {
            long long g = v[i];
            free(v);
            fail_msg("%s:%d: %s %s: element %lld: got %lld, expected %lld", file, line, what,
                     lz_dtype_name(lz_dtype_of(a)), (long long)i, g, (long long)ref[i]);
        }
    free(v);
}
#define check_ints(a, ref, what) check_ints_(a, ref, what, __FILE__, __LINE__)

#endif
