/* Shared by test_optim.c and test_schedule.c. */
#ifndef LZ_OPTIM_TESTUTIL_H
#define LZ_OPTIM_TESTUTIL_H
#include "testutil.h"

/* A float32 array holding v in a chosen layout (T_CONTIG, T_STRIDED, T_TRANSPOSED for 2-d). */
static inline lz_array *mk(const double *v, int ndim, const int64_t *shape, int layout) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    if (layout == T_TRANSPOSED && ndim == 2) {
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < shape[0]; i++)
            for (int64_t j = 0; j < shape[1]; j++) f[j * shape[0] + i] = (float)v[i * shape[1] + j];
        lz_array *x = lz_from_data(f, 2, (int64_t[]){shape[1], shape[0]}, LZ_F32);
        lz_array *t = lz_transpose(x);
        lz_release(x);
        free(f);
        return t;
    }
    if (layout == T_STRIDED) {          /* every other element of a flat array, reshaped */
        float *f = calloc((size_t)(2 * n + 1), sizeof *f);
        for (int64_t i = 0; i < n; i++) f[2 * i + 1] = (float)v[i];
        int64_t big = 2 * n + 1;
        lz_array *x = lz_from_data(f, 1, &big, LZ_F32);
        lz_array *s = lz_slice_axis(x, 0, 1, big, 2);
        lz_array *r = ndim == 1 ? lz_retain(s) : lz_reshape(s, ndim, shape);
        lz_release(x);
        lz_release(s);
        free(f);
        return r;
    }
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    lz_array *x = lz_from_data(f, ndim, shape, LZ_F32);
    free(f);
    return x;
}

/* Asserts that an int-returning call fails with a message containing needle. */
#define assert_fails(expr, needle) do {                                                \
        lz_error_clear();                                                              \
        assert_int_equal((expr), -1);                                                  \
        if (!strstr(lz_error(), needle))                                               \
            fail_msg("error message \"%s\" lacks \"%s\"", lz_error(), needle);          \
    } while (0)

#endif
