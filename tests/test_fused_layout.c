/* The fused elementwise engine over non-contiguous layouts (lib/backend/cpu/fused.c):
 * copies of permuted views (every permutation of ranks 2, 3 and 4, combined with flips,
 * stepped slices with offsets and broadcast zero strides), in every dtype, checked byte for
 * byte (a same-dtype copy must move bytes exactly: float16/bfloat16 signalling NaNs
 * included); elementwise ops that mix a contiguous operand with permuted ones, checked
 * against float64 references; a reduction of such a group; sizes that fill several 2-D
 * blocks partly and sizes large enough to run on several threads.
 *
 * References: each view is also described here naively, as an offset and strides over its
 * base's row-major elements, and every expected element is read from the base's own bytes
 * (or values) through that description. */
#include "testutil.h"

static const lz_dtype ALL[] = {LZ_F32, LZ_F16, LZ_BF16, LZ_I32, LZ_I64, LZ_U8, LZ_BOOL};
#define NALL (int)(sizeof ALL / sizeof ALL[0])

/* A view of a contiguous base array, and where its elements lie in the base. */
typedef struct {
    lz_array *a;   /* autoreleased in the test's pool */
    int ndim;
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS], offset;
} view;

static view v_base(lz_array *base) {
    view v = {.a = base, .ndim = lz_ndim(base), .offset = 0};
    int64_t s = 1;
    for (int d = v.ndim - 1; d >= 0; d--) {
        v.shape[d] = lz_dim(base, d);
        v.strides[d] = s;
        s *= v.shape[d];
    }
    return v;
}

static view v_permute(view v, const int *axes) {
    view w = v;
    w.a = lz_permute(v.a, axes);
    for (int d = 0; d < v.ndim; d++) {
        w.shape[d] = v.shape[axes[d]];
        w.strides[d] = v.strides[axes[d]];
    }
    return w;
}

static view v_flip(view v, int axis) {
    view w = v;
    w.a = lz_flip(v.a, axis);
    w.offset += (v.shape[axis] - 1) * v.strides[axis];
    w.strides[axis] = -v.strides[axis];
    return w;
}

/* [start, stop) by step > 0 along axis. */
static view v_slice(view v, int axis, int64_t start, int64_t stop, int64_t step) {
    view w = v;
    w.a = lz_slice_axis(v.a, axis, start, stop, step);
    w.offset += start * v.strides[axis];
    w.shape[axis] = (stop - start + step - 1) / step;
    w.strides[axis] = v.strides[axis] * step;
    return w;
}

/* Prepends an axis of size n (stride 0). */
static view v_expand(view v, int64_t n) {
    view w = {.ndim = v.ndim + 1, .offset = v.offset};
    w.shape[0] = n;
    w.strides[0] = 0;
    for (int d = 0; d < v.ndim; d++) {
        w.shape[d + 1] = v.shape[d];
        w.strides[d + 1] = v.strides[d];
    }
    w.a = lz_broadcast_to(v.a, w.ndim, w.shape);
    return w;
}

/* Appends two axes of sizes n1, n2 (stride 0) and prepends one of n0: a per-channel value
 * broadcast over [N, C, H, W], as a bias is. */
static view v_around(view v, int64_t n0, int64_t n1, int64_t n2) {
    view w = {.ndim = v.ndim + 3, .offset = v.offset};
    w.shape[0] = n0;
    w.strides[0] = 0;
    for (int d = 0; d < v.ndim; d++) {
        w.shape[d + 1] = v.shape[d];
        w.strides[d + 1] = v.strides[d];
    }
    w.shape[v.ndim + 1] = n1;
    w.shape[v.ndim + 2] = n2;
    w.strides[v.ndim + 1] = w.strides[v.ndim + 2] = 0;
    w.a = lz_broadcast_to(lz_expand_dims(lz_expand_dims(v.a, -1), -1), w.ndim, w.shape);
    return w;
}

static int64_t v_size(const view *v) {
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    return n;
}

/* Base element of the view's row-major element k. */
static int64_t v_at(const view *v, int64_t k) {
    int64_t off = v->offset;
    for (int d = v->ndim - 1; d >= 0; d--) {
        off += k % v->shape[d] * v->strides[d];
        k /= v->shape[d];
    }
    return off;
}

/* A contiguous base of `shape` in dtype t from raw random bits (any pattern: NaN payloads,
 * denormals; bool: 0 or 1). *raw receives its bytes (free it). */
static lz_array *raw_base(int ndim, const int64_t *shape, lz_dtype t, uint64_t *seed, char **raw) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    size_t es = lz_dtype_size(t);
    *raw = malloc((size_t)(n ? n : 1) * es);
    for (int64_t i = 0; i < n * (int64_t)es; i++)
        (*raw)[i] = (char)(int)t_uniform(seed, 0, 256);
    if (t == LZ_BOOL)
        for (int64_t i = 0; i < n; i++) (*raw)[i] &= 1;
    return lz_from_data(*raw, ndim, shape, t);
}

/* Copies v by lz_copy and lz_contiguous and checks every byte against the base's. */
static void check_copy_(const view *v, const char *raw, lz_dtype t, const char *what,
                        const char *file, int line) {
    size_t es = lz_dtype_size(t);
    lz_array *c[2] = {lz_copy(v->a), lz_contiguous(v->a)};
    for (int i = 0; i < 2; i++) {
        if (!c[i] || lz_eval1(c[i])) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
        const char *got = lz_data(c[i]);
        for (int64_t k = 0; k < v_size(v); k++)
            if (memcmp(got + k * (int64_t)es, raw + v_at(v, k) * (int64_t)es, es))
                fail_msg("%s:%d: %s %s (%s): element %lld differs", file, line, what,
                         lz_dtype_name(t), i ? "contiguous" : "copy", (long long)k);
    }
}
#define check_copy(v, raw, t, what) check_copy_(v, raw, t, what, __FILE__, __LINE__)

/* Steps perm to the next permutation of n axes in lexicographic order (start from the
 * identity); returns 0 after the last. */
static int next_perm(int n, int *perm) {
    int i = n - 2;
    while (i >= 0 && perm[i] > perm[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (perm[j] < perm[i]) j--;
    int x = perm[i]; perm[i] = perm[j]; perm[j] = x;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) { x = perm[a]; perm[a] = perm[b]; perm[b] = x; }
    return 1;
}

static void test_copy_permutations(void **state) {
    (void)state;
    static const struct { int ndim; int64_t shape[4]; } cases[] = {
        {2, {37, 45}}, {2, {70, 33}}, {2, {1, 70}}, {2, {16, 17}}, {2, {5, 300}},
        {3, {5, 19, 33}}, {3, {1, 40, 17}}, {3, {33, 2, 18}},
        {4, {3, 1, 17, 20}}, {4, {2, 5, 3, 33}},
    };
    uint64_t seed = 11;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int ti = 0; ti < NALL; ti++) {
            lz_dtype t = ALL[ti];
            int nd = cases[c].ndim, perm[4] = {0, 1, 2, 3};
            char *raw;
            lz_pool_push();
            view b = v_base(raw_base(nd, cases[c].shape, t, &seed, &raw));
            do {
                char what[96];
                snprintf(what, sizeof what, "case %zu perm %d%d%d%d", c, perm[0], perm[1],
                         nd > 2 ? perm[2] : 9, nd > 3 ? perm[3] : 9);   /* 9: no such axis */
                view p = v_permute(b, perm);
                check_copy(&p, raw, t, what);
                view f = p;   /* negative strides on every axis */
                for (int d = 0; d < nd; d++) f = v_flip(f, d);
                check_copy(&f, raw, t, what);
                /* an offset, and a step along the base's last axis (dense no more) */
                view s = v_slice(b, nd - 1, 1, b.shape[nd - 1], 2);
                s = v_slice(s, 0, b.shape[0] > 1, b.shape[0], 1);
                s = v_permute(s, perm);
                check_copy(&s, raw, t, what);
            } while (next_perm(nd, perm));
            lz_pool_pop();
            free(raw);
        }
}

/* Broadcast zero strides in front of a transposed operand, and a large transposed copy that
 * runs on several threads. */
static void test_copy_broadcast_and_large(void **state) {
    (void)state;
    uint64_t seed = 12;
    for (int ti = 0; ti < NALL; ti++) {
        lz_dtype t = ALL[ti];
        char *raw;
        lz_pool_push();
        view b = v_base(raw_base(2, (int64_t[]){37, 40}, t, &seed, &raw));
        int tr[2] = {1, 0};
        view e = v_expand(v_permute(b, tr), 3);
        check_copy(&e, raw, t, "broadcast of a transpose");
        view f = v_flip(v_expand(v_flip(b, 1), 2), 0);
        check_copy(&f, raw, t, "broadcast of a flip");
        /* broadcast along the trailing axes: runs of one value crossing tiles */
        view g = v_around(v_slice(b, 0, 2, 7, 2), 3, 5, 23);
        check_copy(&g, raw, t, "broadcast over trailing axes");
        view h = v_around(v_flip(v_slice(b, 1, 1, 4, 1), 1), 2, 1, 300);
        check_copy(&h, raw, t, "broadcast over a long trailing axis");
        lz_pool_pop();
        free(raw);
    }
    for (int ti = 0; ti < 3; ti++) {
        lz_dtype t = ALL[ti];
        char *raw;
        lz_pool_push();
        view b = v_base(raw_base(2, (int64_t[]){300, 257}, t, &seed, &raw));
        int tr[2] = {1, 0};
        view p = v_permute(b, tr);
        check_copy(&p, raw, t, "large transpose");
        view s = v_permute(v_slice(b, 1, 3, 250, 1), tr);
        check_copy(&s, raw, t, "large transpose of a slice");
        lz_pool_pop();
        free(raw);
    }
}

/* Same-dtype copies keep float16/bfloat16 signalling NaNs (and every other pattern) as
 * they are, flat and blocked. */
static void test_copy_keeps_half_nan_bits(void **state) {
    (void)state;
    uint16_t h[40 * 33];
    static const uint16_t pat[] = {0x7c01, 0xfc01, 0x7d55, 0x7f81, 0xff81, 0x7fbf, 0x0001, 0x8000};
    for (int i = 0; i < 40 * 33; i++) h[i] = pat[i % 8];
    lz_dtype types[2] = {LZ_F16, LZ_BF16};
    for (int ti = 0; ti < 2; ti++) {
        lz_pool_push();
        lz_array *x = lz_from_data(h, 2, (int64_t[]){40, 33}, types[ti]);
        lz_array *outs[3] = {lz_contiguous(lz_transpose(x)), lz_copy(lz_flip(x, 1)),
                             lz_astype(lz_copy(lz_transpose(x)), types[ti])};
        for (int o = 0; o < 3; o++) {
            assert_int_equal(lz_eval1(outs[o]), 0);
            const uint16_t *got = lz_data(outs[o]);
            for (int i = 0; i < 40; i++)
                for (int j = 0; j < 33; j++) {
                    int k = o == 1 ? i * 33 + j : j * 40 + i;
                    uint16_t want = o == 1 ? h[i * 33 + 32 - j] : h[i * 33 + j];
                    if (got[k] != want)
                        fail_msg("%s output %d element %d: 0x%04x, expected 0x%04x",
                                 lz_dtype_name(types[ti]), o, k, got[k], want);
                }
        }
        lz_pool_pop();
    }
}

/* An evaluated contiguous base of shape with integer values in [lo, hi] (exact in every
 * dtype here), made by casting float32; *vals receives them (free it). */
static lz_array *int_base(int ndim, const int64_t *shape, lz_dtype t, double lo, double hi,
                          uint64_t *seed, double **vals) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    *vals = malloc((size_t)(n ? n : 1) * sizeof **vals);
    for (int64_t i = 0; i < n; i++) f[i] = (float)((*vals)[i] = floor(t_uniform(seed, lo, hi + 1)));
    lz_array *a = lz_astype(lz_from_data(f, ndim, shape, LZ_F32), t);
    assert_int_equal(lz_eval1(a), 0);
    free(f);
    return a;
}

static void check_values_(lz_array *a, const double *ref, int64_t n, const char *what,
                          const char *file, int line) {
    if (!a) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
    double *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    int64_t *q = malloc((size_t)(n ? n : 1) * sizeof *q);
    if (lz_dtype_is_float(lz_dtype_of(a))) {
        if (lz_to_float(a, f, n)) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
        for (int64_t k = 0; k < n; k++) got[k] = f[k];
    } else {
        if (lz_to_int(a, q, n)) fail_msg("%s:%d: %s: %s", file, line, what, lz_error());
        for (int64_t k = 0; k < n; k++) got[k] = (double)q[k];
    }
    for (int64_t k = 0; k < n; k++)
        if (got[k] != ref[k]) {
            double g = got[k];
            free(got), free(f), free(q);
            fail_msg("%s:%d: %s %s: element %lld: got %g, expected %g", file, line, what,
                     lz_dtype_name(lz_dtype_of(a)), (long long)k, g, ref[k]);
        }
    free(got), free(f), free(q);
}
#define check_values(a, ref, n, what) check_values_(a, ref, n, what, __FILE__, __LINE__)

/* a * p + c over every permutation p of a base, a contiguous, c a broadcast row; and the
 * same with p flipped. Values stay small integers, exact in every dtype. */
static void test_mixed_layouts(void **state) {
    (void)state;
    static const struct { int ndim; int64_t shape[4]; } cases[] = {
        {2, {37, 45}}, {2, {70, 33}}, {2, {1, 20}}, {3, {5, 19, 33}}, {3, {17, 1, 40}},
        {4, {3, 2, 17, 20}},
    };
    lz_dtype types[] = {LZ_F32, LZ_F16, LZ_BF16, LZ_I32, LZ_I64, LZ_U8};
    uint64_t seed = 13;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            lz_dtype t = types[ti];
            double lo = t == LZ_U8 ? 0 : -15, hi = 15;
            int nd = cases[c].ndim, perm[4] = {0, 1, 2, 3};
            double *bv;
            lz_pool_push();
            view b = v_base(int_base(nd, cases[c].shape, t, lo, hi, &seed, &bv));
            do {
                view p = v_permute(b, perm);
                view f = v_flip(v_flip(p, 0), nd - 1);
                int64_t n = v_size(&p), row[1] = {p.shape[nd - 1]};
                double *av, *cv, *ref = malloc((size_t)n * sizeof *ref);
                lz_array *a = int_base(nd, p.shape, t, lo, hi, &seed, &av);
                lz_array *cr = int_base(1, row, t, lo, hi, &seed, &cv);
                const view *ops[2] = {&p, &f};
                for (int o = 0; o < 2; o++) {
                    lz_array *y = lz_add(lz_mul(a, ops[o]->a), cr);
                    for (int64_t k = 0; k < n; k++)
                        ref[k] = av[k] * bv[v_at(ops[o], k)] + cv[k % row[0]];
                    char what[64];
                    snprintf(what, sizeof what, "case %zu perm %d%d%d%d%s", c, perm[0], perm[1],
                             nd > 2 ? perm[2] : 9, nd > 3 ? perm[3] : 9, o ? " flipped" : "");
                    check_values(y, ref, n, what);
                }
                free(ref), free(av), free(cv);
            } while (next_perm(nd, perm));
            lz_pool_pop();
            free(bv);
        }
}

/* Groups of several permuted leaves with different dtypes and a cast in between, a large
 * threaded one, and a reduction closing a group with a transposed leaf. */
static void test_mixed_dtypes_threads_and_reduce(void **state) {
    (void)state;
    uint64_t seed = 14;
    lz_pool_push();
    double *xv, *yv, *zv;
    int64_t n0 = 300, n1 = 257;
    view x = v_base(int_base(2, (int64_t[]){n1, n0}, LZ_I32, -15, 15, &seed, &xv));
    view y = v_base(int_base(2, (int64_t[]){n0, n1}, LZ_F16, -15, 15, &seed, &yv));
    view z = v_base(int_base(3, (int64_t[]){n1, 1, n0}, LZ_U8, 0, 15, &seed, &zv));
    int tr[2] = {1, 0};
    view xt = v_permute(x, tr), zt = v_permute(v_slice(z, 0, 0, n1, 1), (int[]){2, 1, 0});
    /* zt is [n0, 1, n1]; make it 2-D */
    lz_array *z2 = lz_reshape(zt.a, 2, (int64_t[]){n0, n1});
    /* (float(x^T) - y) * z^T, float32 */
    lz_array *r = lz_mul(lz_sub(lz_astype(xt.a, LZ_F32), y.a), lz_astype(z2, LZ_F32));
    int64_t n = n0 * n1;
    double *ref = malloc((size_t)n * sizeof *ref), *rs = malloc((size_t)n0 * sizeof *rs);
    for (int64_t k = 0; k < n; k++) {
        int64_t i = k / n1, j = k % n1;
        ref[k] = (xv[j * n0 + i] - yv[k]) * zv[j * n0 + i];
    }
    check_values(r, ref, n, "three leaves, two transposed");
    /* row sums of x^T + y: every partial sum is an integer well below 2^24, exact */
    lz_array *s = lz_sum(lz_add(lz_astype(xt.a, LZ_F32), lz_astype(y.a, LZ_F32)), (int[]){1}, 1, 0);
    for (int64_t i = 0; i < n0; i++) {
        rs[i] = 0;
        for (int64_t j = 0; j < n1; j++) rs[i] += xv[j * n0 + i] + yv[i * n1 + j];
    }
    check_values(s, rs, n0, "sum over a transposed leaf");
    free(ref), free(rs), free(xv), free(yv), free(zv);
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_permutations),
        cmocka_unit_test(test_copy_broadcast_and_large),
        cmocka_unit_test(test_copy_keeps_half_nan_bits),
        cmocka_unit_test(test_mixed_layouts),
        cmocka_unit_test(test_mixed_dtypes_threads_and_reduce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
