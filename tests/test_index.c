/* Indexing and joining: take, take_along_axis, scatter_add, one_hot, concatenate, stack,
 * split, pad, tile, repeat. Every op against a naive float64 reference computed here from
 * the logical values of random inputs (all layouts, integer dtypes, size-0 and size-1 dims,
 * negative axes and indices), and every error path with its message. */
#include "testutil.h"

static const lz_dtype DTYPES[] = {LZ_F32, LZ_I32, LZ_I64, LZ_U8, LZ_F16, LZ_BOOL, LZ_BF16};
#define NDT ((int)(sizeof DTYPES / sizeof *DTYPES))

/* Random shape: dims mostly 1..5, sometimes 0 (when zero_ok). */
static void rand_shape(uint64_t *s, int nd, int64_t *shape, int zero_ok) {
    static const int64_t dims[] = {1, 2, 3, 4, 5, 1, 3, 0};
    for (int d = 0; d < nd; d++) shape[d] = dims[t_irand(s, 0, zero_ok ? 8 : 7)];
}

/* Value range that every dtype holds exactly. */
static void range_of(lz_dtype t, double *lo, double *hi) {
    *lo = t == LZ_U8 || t == LZ_BOOL ? 0 : -50;
    *hi = t == LZ_BOOL ? 2 : 50;
}

static tarr rand_arr(uint64_t *s, int nd, const int64_t *shape, lz_dtype t) {
    double lo, hi;
    range_of(t, &lo, &hi);
    return t_rand(nd, shape, t, lo, hi, s, (int)t_irand(s, 0, 3));
}

/* Indices in [-n, n) (uint8: [0, n)) with a random layout and integer dtype. */
static tarr rand_idx(uint64_t *s, int nd, const int64_t *shape, int64_t n) {
    static const lz_dtype it[] = {LZ_I64, LZ_I32, LZ_U8};
    lz_dtype t = it[t_irand(s, 0, 3)];
    tarr r = t_rand(nd, shape, t, t == LZ_U8 ? 0 : (double)-n, (double)n, s, (int)t_irand(s, 0, 3));
    return r;
}

/* Asserts r's dtype, shape and values (exact) against ref. */
static void check(lz_array *r, lz_dtype t, int nd, const int64_t *shape, const double *ref) {
    assert_non_null(r);
    assert_int_equal(lz_dtype_of(r), t);
    assert_int_equal(lz_ndim(r), nd);
    for (int d = 0; d < nd; d++) assert_int_equal(lz_shape(r)[d], shape[d]);
    int64_t n = t_numel(nd, shape);
    if (t == LZ_I64 || t == LZ_I32) {
        int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        assert_int_equal(lz_to_int(r, v, n), 0);
        for (int64_t k = 0; k < n; k++)
            if (v[k] != (int64_t)ref[k])
                fail_msg("element %lld: got %lld, expected %lld", (long long)k, (long long)v[k],
                         (long long)ref[k]);
        free(v);
    } else {
        t_assert_close(r, ref, n, 0, 0);
    }
}

/* ---- take ---- */

static void test_take_random(void **state) {
    (void)state;
    uint64_t s = 11;
    for (int trial = 0; trial < 300; trial++) {
        int nd = (int)t_irand(&s, 1, 5), ni = (int)t_irand(&s, 0, 3);
        int64_t shape[8], ishape[8], oshape[16];
        rand_shape(&s, nd, shape, 1);
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        int64_t n = shape[ax];
        rand_shape(&s, ni, ishape, 1);
        if (n == 0 && ni) ishape[0] = 0;   /* nothing can be taken from an empty axis */
        if (n == 0 && !ni) { ni = 1; ishape[0] = 0; }
        lz_dtype t = DTYPES[trial % NDT];
        tarr a = rand_arr(&s, nd, shape, t), ix = rand_idx(&s, ni, ishape, n);
        int ond = 0;
        for (int d = 0; d < ax; d++) oshape[ond++] = shape[d];
        for (int d = 0; d < ni; d++) oshape[ond++] = ishape[d];
        for (int d = ax + 1; d < nd; d++) oshape[ond++] = shape[d];
        int64_t on = t_numel(ond, oshape);
        double *ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t k = 0; k < on; k++) {
            int64_t oi[16], ai[8];
            t_unravel(k, ond, oshape, oi);
            int64_t j = t_ravel(ni, ishape, oi + ax), v = (int64_t)ix.v[j];
            for (int d = 0; d < ax; d++) ai[d] = oi[d];
            ai[ax] = v < 0 ? v + n : v;
            for (int d = ax + 1; d < nd; d++) ai[d] = oi[d - 1 + ni];
            ref[k] = a.v[t_ravel(nd, shape, ai)];
        }
        lz_array *r = lz_take(a.a, ix.a, axis);
        check(r, t, ond, oshape, ref);
        lz_release(r);
        free(ref);
        t_free(&a);
        t_free(&ix);
    }
}

/* The embedding lookup: a [V, D] table, indices [B, T]: one kernel, rows copied whole. */
static void test_take_embedding(void **state) {
    (void)state;
    uint64_t s = 5;
    int64_t V = 300, D = 96, sh[2] = {V, D}, is[2] = {16, 100};
    tarr w = t_rand(2, sh, LZ_F32, -1, 1, &s, T_CONTIG);
    tarr ix = t_rand(2, is, LZ_I32, 0, (double)V, &s, T_CONTIG);
    lz_array *r = lz_take(w.a, ix.a, 0);
    lz_stats_reset();
    assert_int_equal(lz_eval1(r), 0);
    assert_int_equal(lz_stats().kernels, 1);
    int64_t n = 16 * 100 * D;
    double *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t j = 0; j < 1600; j++)
        for (int64_t d = 0; d < D; d++) ref[j * D + d] = w.v[(int64_t)ix.v[j] * D + d];
    int64_t os[3] = {16, 100, D};
    check(r, LZ_F32, 3, os, ref);
    free(ref);
    lz_release(r);
    t_free(&w);
    t_free(&ix);
}

static void test_take_along_axis_random(void **state) {
    (void)state;
    uint64_t s = 12;
    for (int trial = 0; trial < 300; trial++) {
        int nd = (int)t_irand(&s, 1, 5);
        int64_t shape[8], ishape[8], oshape[8], ashape[8];
        rand_shape(&s, nd, shape, 1);
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        int64_t n = shape[ax];
        for (int d = 0; d < nd; d++) {
            int64_t c = t_irand(&s, 0, 4);   /* same size, 1 (broadcast), or grow a's 1 */
            ishape[d] = c == 0 ? 1 : shape[d] == 1 && c == 3 ? 3 : shape[d];
        }
        ishape[ax] = n ? t_irand(&s, 0, 5) : 0;
        for (int d = 0; d < nd; d++) {
            oshape[d] = d == ax ? ishape[d] : shape[d] == 1 ? ishape[d] : shape[d];
            ashape[d] = d == ax ? n : oshape[d];
        }
        lz_dtype t = DTYPES[trial % NDT];
        tarr a = rand_arr(&s, nd, shape, t), ix = rand_idx(&s, nd, ishape, n);
        int64_t on = t_numel(nd, oshape);
        double *ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t k = 0; k < on; k++) {
            int64_t oi[8], ii[8], ai[8];
            t_unravel(k, nd, oshape, oi);
            for (int d = 0; d < nd; d++) {
                ii[d] = ishape[d] == 1 ? 0 : oi[d];
                ai[d] = shape[d] == 1 ? 0 : oi[d];
            }
            int64_t v = (int64_t)ix.v[t_ravel(nd, ishape, ii)];
            ai[ax] = v < 0 ? v + n : v;
            ref[k] = a.v[t_ravel(nd, shape, ai)];
        }
        (void)ashape;
        lz_array *r = lz_take_along_axis(a.a, ix.a, axis);
        check(r, t, nd, oshape, ref);
        lz_release(r);
        free(ref);
        t_free(&a);
        t_free(&ix);
    }
}

/* ---- scatter_add ---- */

static double wrap(double x, lz_dtype t) {
    if (t == LZ_U8) return (double)((int64_t)x & 255);
    if (t == LZ_BOOL) return x != 0;
    return x;
}

/* Both forms, random, with many repeated indices. */
static void test_scatter_add_random(void **state) {
    (void)state;
    uint64_t s = 13;
    static const lz_dtype ts[] = {LZ_F32, LZ_I32, LZ_I64, LZ_U8, LZ_BOOL, LZ_F16};
    for (int trial = 0; trial < 400; trial++) {
        int along = trial & 1;
        int nd = (int)t_irand(&s, 1, 4);
        int64_t shape[8], ishape[8], ushape[16];
        rand_shape(&s, nd, shape, 1);
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        int64_t n = shape[ax];
        int ni, und = 0;
        if (along) {
            ni = nd;
            for (int d = 0; d < nd; d++) ishape[d] = t_irand(&s, 0, 3) == 0 ? 1 : shape[d];
            ishape[ax] = n ? t_irand(&s, 0, 9) : 0;
            for (int d = 0; d < nd; d++) ushape[und++] = d == ax ? ishape[ax] : shape[d];
        } else {
            ni = (int)t_irand(&s, 0, 3);
            rand_shape(&s, ni, ishape, 0);
            if (ni) ishape[0] = t_irand(&s, 0, 9);   /* several hits per row */
            if (n == 0) { ni = 1; ishape[0] = 0; }
            for (int d = 0; d < ax; d++) ushape[und++] = shape[d];
            for (int d = 0; d < ni; d++) ushape[und++] = ishape[d];
            for (int d = ax + 1; d < nd; d++) ushape[und++] = shape[d];
        }
        lz_dtype t = ts[trial % 6];
        tarr a = rand_arr(&s, nd, shape, t), ix = rand_idx(&s, ni, ishape, n);
        tarr up = rand_arr(&s, und, ushape, t);
        int64_t an = t_numel(nd, shape), un = t_numel(und, ushape);
        double *ref = malloc((size_t)(an ? an : 1) * sizeof *ref);
        for (int64_t k = 0; k < an; k++) ref[k] = a.v[k];
        for (int64_t k = 0; k < un; k++) {
            int64_t ui[16], ai[8], ii[8], v;
            t_unravel(k, und, ushape, ui);
            if (along) {
                for (int d = 0; d < nd; d++) ii[d] = ishape[d] == 1 ? 0 : ui[d];
                v = (int64_t)ix.v[t_ravel(nd, ishape, ii)];
                memcpy(ai, ui, sizeof ai);
            } else {
                v = (int64_t)ix.v[t_ravel(ni, ishape, ui + ax)];
                for (int d = 0; d < ax; d++) ai[d] = ui[d];
                for (int d = ax + 1; d < nd; d++) ai[d] = ui[d - 1 + ni];
            }
            ai[ax] = v < 0 ? v + n : v;
            int64_t at = t_ravel(nd, shape, ai);
            ref[at] = t == LZ_BOOL ? (ref[at] != 0 || up.v[k] != 0) : ref[at] + up.v[k];
        }
        for (int64_t k = 0; k < an; k++) ref[k] = wrap(ref[k], t);
        lz_array *r = lz_scatter_add(a.a, ix.a, up.a, axis);
        if (t == LZ_F16 || t == LZ_F32) {   /* float sums: rounding of the order */
            assert_int_equal(lz_dtype_of(r), t);
            t_assert_close(r, ref, an, t == LZ_F16 ? 2e-3 : 1e-6, 1e-4);
        } else {
            check(r, t, nd, shape, ref);
        }
        lz_release(r);
        free(ref);
        t_free(&a);
        t_free(&ix);
        t_free(&up);
    }
}

/* Embedding gradient: zeros [V, D], indices [N] with N >> V, updates [N, D]; also the
 * threaded path over outer rows. Sums are checked against double references. */
static void test_scatter_add_embedding(void **state) {
    (void)state;
    uint64_t s = 14;
    struct { int64_t outer, V, D, N; } cases[] = {{1, 50, 128, 1000}, {8, 10, 1024, 16}, {1, 7, 3, 5000}};
    for (int c = 0; c < 3; c++) {
        int64_t O = cases[c].outer, V = cases[c].V, D = cases[c].D, N = cases[c].N;
        int64_t ash[3] = {O, V, D}, ush[3] = {O, N, D};
        lz_array *z = lz_zeros(3, ash, LZ_F32);
        tarr ix = t_rand(1, &N, LZ_I64, (double)-V, (double)V, &s, T_CONTIG);
        tarr up = t_rand(3, ush, LZ_F32, -1, 1, &s, c == 1 ? T_STRIDED : T_CONTIG);
        double *ref = calloc((size_t)(O * V * D), sizeof *ref);
        for (int64_t o = 0; o < O; o++)
            for (int64_t j = 0; j < N; j++) {
                int64_t v = (int64_t)ix.v[j];
                v = v < 0 ? v + V : v;
                for (int64_t d = 0; d < D; d++) ref[(o * V + v) * D + d] += up.v[(o * N + j) * D + d];
            }
        lz_array *r = lz_scatter_add(z, ix.a, up.a, 1);
        t_assert_close(r, ref, O * V * D, 1e-5, 1e-4);
        lz_release(r);
        lz_release(z);
        free(ref);
        t_free(&ix);
        t_free(&up);
    }
}

/* ---- one_hot ---- */

static void test_one_hot(void **state) {
    (void)state;
    uint64_t s = 15;
    for (int trial = 0; trial < 40; trial++) {
        int nd = (int)t_irand(&s, 0, 3);
        int64_t shape[8], depth = t_irand(&s, 0, 7);
        rand_shape(&s, nd, shape, 1);
        tarr ix = t_rand(nd, shape, trial & 1 ? LZ_I32 : LZ_I64, -2, (double)depth + 2, &s,
                         (int)t_irand(&s, 0, 3));
        lz_dtype t = trial % 3 == 0 ? LZ_I32 : LZ_F32;
        int64_t oshape[9];
        memcpy(oshape, shape, sizeof shape);
        oshape[nd] = depth;
        int64_t n = t_numel(nd, shape);
        double *ref = malloc((size_t)(n * depth + 1) * sizeof *ref);
        for (int64_t k = 0; k < n; k++)
            for (int64_t c = 0; c < depth; c++) ref[k * depth + c] = ix.v[k] == (double)c;
        lz_array *r = lz_one_hot(ix.a, depth, t);
        check(r, t, nd + 1, oshape, ref);
        lz_release(r);
        free(ref);
        t_free(&ix);
    }
}

/* ---- concatenate, stack, split ---- */

static lz_dtype promoted(lz_dtype a, lz_dtype b) {
    static const int r[LZ_NDTYPES] = {[LZ_BOOL] = 0, [LZ_U8] = 1, [LZ_I32] = 2, [LZ_I64] = 3,
                                      [LZ_F16] = 4, [LZ_BF16] = 4, [LZ_F32] = 5};
    if (a == b) return a;
    if (r[a] == 4 && r[b] == 4) return LZ_F32;
    return r[a] >= r[b] ? a : b;
}

static void test_concatenate_random(void **state) {
    (void)state;
    uint64_t s = 16;
    for (int trial = 0; trial < 200; trial++) {
        int nd = (int)t_irand(&s, 1, 5), n = (int)t_irand(&s, 1, 5);
        int64_t base[8];
        rand_shape(&s, nd, base, 1);
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        tarr parts[4];
        lz_array *arrs[4];
        int64_t sizes[4], oshape[8];
        memcpy(oshape, base, sizeof base);
        oshape[ax] = 0;
        lz_dtype t = DTYPES[t_irand(&s, 0, NDT)];
        lz_dtype want = t;
        for (int k = 0; k < n; k++) {
            int64_t sh[8];
            memcpy(sh, base, sizeof sh);
            sh[ax] = sizes[k] = t_irand(&s, 0, 4);
            lz_dtype tk = trial % 3 ? DTYPES[t_irand(&s, 0, NDT)] : t;   /* mixed dtypes */
            if (k == 0) tk = t;
            want = promoted(want, tk);
            parts[k] = rand_arr(&s, nd, sh, tk);
            arrs[k] = parts[k].a;
            oshape[ax] += sizes[k];
        }
        int64_t on = t_numel(nd, oshape);
        double *ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t q = 0; q < on; q++) {
            int64_t oi[8], k = 0;
            t_unravel(q, nd, oshape, oi);
            while (oi[ax] >= sizes[k]) oi[ax] -= sizes[k++];
            int64_t sh[8];
            memcpy(sh, base, sizeof sh);
            sh[ax] = sizes[k];
            ref[q] = parts[k].v[t_ravel(nd, sh, oi)];
        }
        lz_array *r = lz_concatenate(n, arrs, axis);
        check(r, want, nd, oshape, ref);
        lz_release(r);
        free(ref);
        for (int k = 0; k < n; k++) t_free(&parts[k]);
    }
}

static void test_stack_and_split(void **state) {
    (void)state;
    uint64_t s = 17;
    for (int trial = 0; trial < 100; trial++) {
        int nd = (int)t_irand(&s, 0, 4), n = (int)t_irand(&s, 1, 5);
        int64_t shape[8], oshape[9];
        rand_shape(&s, nd, shape, 1);
        int axis = (int)t_irand(&s, -nd - 1, nd + 1), ax = axis < 0 ? axis + nd + 1 : axis;
        lz_dtype t = DTYPES[trial % NDT];
        tarr parts[4];
        lz_array *arrs[4];
        for (int k = 0; k < n; k++) { parts[k] = rand_arr(&s, nd, shape, t); arrs[k] = parts[k].a; }
        for (int d = 0, j = 0; d <= nd; d++) oshape[d] = d == ax ? n : shape[j++];
        int64_t on = t_numel(nd + 1, oshape);
        double *ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t q = 0; q < on; q++) {
            int64_t oi[9] = {0}, pi[8] = {0};
            t_unravel(q, nd + 1, oshape, oi);
            for (int d = 0, j = 0; d <= nd; d++) if (d != ax) pi[j++] = oi[d];
            ref[q] = parts[oi[ax]].v[t_ravel(nd, shape, pi)];
        }
        lz_array *st = lz_stack(n, arrs, axis);
        check(st, t, nd + 1, oshape, ref);
        /* split the stack back along the same axis: views equal to the parts */
        lz_array *pieces[4];
        lz_eval1(st);
        lz_stats_reset();
        assert_int_equal(lz_split(st, n, axis, pieces), 0);
        assert_int_equal(lz_stats().buffers, 0);
        for (int k = 0; k < n; k++) {
            lz_array *sq = lz_squeeze(pieces[k], ax);
            check(sq, t, nd, shape, parts[k].v);
            lz_release(sq);
            lz_release(pieces[k]);
        }
        lz_release(st);
        free(ref);
        for (int k = 0; k < n; k++) t_free(&parts[k]);
    }
}

/* ---- pad, tile, repeat ---- */

static void test_pad_random(void **state) {
    (void)state;
    uint64_t s = 18;
    for (int trial = 0; trial < 200; trial++) {
        int nd = (int)t_irand(&s, 0, 5);
        int64_t shape[8], oshape[8], pads[16];
        rand_shape(&s, nd, shape, 1);
        for (int d = 0; d < nd; d++) {
            pads[2 * d] = t_irand(&s, 0, 3);
            pads[2 * d + 1] = t_irand(&s, 0, 3);
            oshape[d] = shape[d] + pads[2 * d] + pads[2 * d + 1];
        }
        lz_dtype t = DTYPES[trial % NDT];
        double value = t == LZ_BOOL ? 1 : t == LZ_U8 ? 7 : -3;
        tarr a = rand_arr(&s, nd, shape, t);
        int64_t on = t_numel(nd, oshape);
        double *ref = malloc((size_t)on * sizeof *ref);
        for (int64_t q = 0; q < on; q++) {
            int64_t oi[8];
            t_unravel(q, nd, oshape, oi);
            int in = 1;
            for (int d = 0; d < nd; d++) {
                oi[d] -= pads[2 * d];
                in = in && oi[d] >= 0 && oi[d] < shape[d];
            }
            ref[q] = in ? a.v[t_ravel(nd, shape, oi)] : value;
        }
        lz_array *r = lz_pad(a.a, pads, value);
        check(r, t, nd, oshape, ref);
        lz_release(r);
        free(ref);
        t_free(&a);
    }
}

static void test_tile_repeat_random(void **state) {
    (void)state;
    uint64_t s = 19;
    for (int trial = 0; trial < 200; trial++) {
        int nd = (int)t_irand(&s, 1, 7);
        int64_t shape[8], oshape[8], reps[8];
        rand_shape(&s, nd, shape, trial % 4 == 0);
        for (int d = 0; d < nd; d++) {
            reps[d] = nd >= 5 ? 2 : t_irand(&s, 0, 4);   /* nd >= 5: the axis-at-a-time path */
            oshape[d] = shape[d] * reps[d];
        }
        lz_dtype t = DTYPES[trial % NDT];
        tarr a = rand_arr(&s, nd, shape, t);
        int64_t on = t_numel(nd, oshape);
        double *ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t q = 0; q < on; q++) {
            int64_t oi[8];
            t_unravel(q, nd, oshape, oi);
            for (int d = 0; d < nd; d++) oi[d] %= shape[d];
            ref[q] = a.v[t_ravel(nd, shape, oi)];
        }
        lz_array *r = lz_tile(a.a, reps);
        check(r, t, nd, oshape, ref);
        lz_release(r);
        /* repeat along one axis */
        int axis = (int)t_irand(&s, -nd, nd), ax = axis < 0 ? axis + nd : axis;
        int64_t rp = t_irand(&s, 0, 4);
        memcpy(oshape, shape, sizeof shape);
        oshape[ax] *= rp;
        on = t_numel(nd, oshape);
        free(ref);
        ref = malloc((size_t)(on ? on : 1) * sizeof *ref);
        for (int64_t q = 0; q < on; q++) {
            int64_t oi[8];
            t_unravel(q, nd, oshape, oi);
            oi[ax] /= rp;
            ref[q] = a.v[t_ravel(nd, shape, oi)];
        }
        r = lz_repeat(a.a, rp, axis);
        check(r, t, nd, oshape, ref);
        lz_release(r);
        free(ref);
        t_free(&a);
    }
    /* a 0-d array repeats into a vector */
    lz_array *x = lz_scalar(4, LZ_I32), *r = lz_repeat(x, 3, 0);
    double ref[3] = {4, 4, 4};
    int64_t three = 3;
    check(r, LZ_I32, 1, &three, ref);
    lz_release(r);
    lz_release(x);
}

/* Sizes past the threading threshold for the copy, gather and scatter loops, with strided
 * inputs: concatenate, pad, take_along_axis and both scatter_add forms. */
static void test_large_threaded(void **state) {
    (void)state;
    uint64_t s = 20;
    int64_t sh[2] = {300, 250}, n = 300 * 250;
    tarr a = t_rand(2, sh, LZ_F32, -1, 1, &s, T_TRANSPOSED), b = t_rand(2, sh, LZ_I32, -9, 9, &s, T_STRIDED);
    /* concatenate along 1: the int32 part is cast (one fused kernel), then one copy kernel */
    lz_array *ab[2] = {a.a, b.a}, *c = lz_concatenate(2, ab, 1);
    double *ref = malloc((size_t)(4 * n) * sizeof *ref);
    for (int64_t i = 0; i < 300; i++)
        for (int64_t j = 0; j < 500; j++) ref[i * 500 + j] = j < 250 ? a.v[i * 250 + j] : b.v[i * 250 + j - 250];
    lz_stats_reset();
    assert_int_equal(lz_eval1(c), 0);
    assert_int_equal(lz_stats().kernels, 2);
    int64_t cs[2] = {300, 500};
    check(c, LZ_F32, 2, cs, ref);
    lz_release(c);
    /* pad */
    int64_t pads[4] = {3, 1, 0, 7}, ps[2] = {304, 257};
    for (int64_t i = 0; i < 304; i++)
        for (int64_t j = 0; j < 257; j++)
            ref[i * 257 + j] = i >= 3 && i < 303 && j < 250 ? a.v[(i - 3) * 250 + j] : 0.5;
    c = lz_pad(a.a, pads, 0.5);
    check(c, LZ_F32, 2, ps, ref);
    lz_release(c);
    /* take_along_axis on axis 0 and scatter_add (along form) back */
    tarr ix = t_rand(2, sh, LZ_I64, -300, 300, &s, T_STRIDED);
    for (int64_t i = 0; i < 300; i++)
        for (int64_t j = 0; j < 250; j++) {
            int64_t v = (int64_t)ix.v[i * 250 + j];
            ref[i * 250 + j] = a.v[(v < 0 ? v + 300 : v) * 250 + j];
        }
    c = lz_take_along_axis(a.a, ix.a, 0);
    check(c, LZ_F32, 2, sh, ref);
    for (int64_t k = 0; k < n; k++) ref[k] = b.v[k];
    for (int64_t i = 0; i < 300; i++)
        for (int64_t j = 0; j < 250; j++) {
            int64_t v = (int64_t)ix.v[i * 250 + j];
            ref[(v < 0 ? v + 300 : v) * 250 + j] += b.v[i * 250 + j];
        }
    lz_release(c);
    c = lz_scatter_add(b.a, ix.a, b.a, 0);
    check(c, LZ_I32, 2, sh, ref);
    lz_release(c);
    /* take form over many outer rows: [300, 250] scattered on axis 1 by 40 indices */
    int64_t is = 40, us[2] = {300, 40};
    tarr ix1 = t_rand(1, &is, LZ_I32, 0, 250, &s, T_CONTIG);
    tarr up = t_rand(2, us, LZ_I32, -9, 9, &s, T_TRANSPOSED);
    for (int64_t k = 0; k < n; k++) ref[k] = b.v[k];
    for (int64_t i = 0; i < 300; i++)
        for (int64_t j = 0; j < 40; j++) ref[i * 250 + (int64_t)ix1.v[j]] += up.v[i * 40 + j];
    c = lz_scatter_add(b.a, ix1.a, up.a, -1);
    check(c, LZ_I32, 2, sh, ref);
    lz_release(c);
    free(ref);
    t_free(&a); t_free(&b); t_free(&ix); t_free(&ix1); t_free(&up);
}

/* ---- errors ---- */

static void test_index_errors(void **state) {
    (void)state;
    lz_pool_push();
    int64_t s23[2] = {2, 3}, s24[2] = {2, 4}, s33[2] = {3, 3}, s2 = 2;
    lz_array *a = lz_zeros(2, s23, LZ_F32), *v = lz_arange(0, 5, 1, LZ_F32);
    int64_t bad[2] = {1, 5};
    lz_array *ib = lz_from_data(bad, 1, &s2, LZ_I64);
    /* out of range: found when evaluated */
    lz_array *r = lz_take(v, ib, 0);
    assert_non_null(r);
    lz_error_clear();
    assert_int_equal(lz_eval1(r), -1);
    assert_non_null(strstr(lz_error(), "take: index 5 is out of range for axis 0 with size 5"));
    int64_t neg[2] = {-6, 0};
    r = lz_take(v, lz_from_data(neg, 1, &s2, LZ_I64), -1);
    assert_int_equal(lz_eval1(r), -1);
    assert_non_null(strstr(lz_error(), "take: index -6 is out of range for axis 0 with size 5"));
    int64_t i23[6] = {0, 1, 2, 0, 3, 1};
    lz_array *ia = lz_from_data(i23, 2, s23, LZ_I64);
    r = lz_take_along_axis(a, ia, 1);
    assert_int_equal(lz_eval1(r), -1);
    assert_non_null(strstr(lz_error(), "take_along_axis: index 3 is out of range for axis 1 with size 3"));
    r = lz_scatter_add(v, ib, lz_ones(1, &s2, LZ_F32), 0);
    assert_int_equal(lz_eval1(r), -1);
    assert_non_null(strstr(lz_error(), "scatter_add: index 5 is out of range for axis 0 with size 5"));
    /* non-integer indices, bad axes, 0-d arrays */
    t_assert_error(lz_take(v, v, 0), "take: indices must be an integer array (uint8, int32, int64), got float32[5]");
    t_assert_error(lz_take(v, lz_astype(ib, LZ_BOOL), 0), "take: indices must be an integer array");
    t_assert_error(lz_take_along_axis(a, lz_astype(ia, LZ_F32), 0), "take_along_axis: indices must be an integer");
    t_assert_error(lz_scatter_add(a, a, a, 0), "scatter_add: indices must be an integer");
    t_assert_error(lz_one_hot(v, 3, LZ_F32), "one_hot: indices must be an integer");
    t_assert_error(lz_take(a, ib, 2), "take: axis 2 is out of range for an array of 2 dimensions");
    t_assert_error(lz_take(a, ib, -3), "take: axis -3 is out of range");
    t_assert_error(lz_take(lz_scalar(1, LZ_F32), ib, 0), "take: cannot index a 0-d array");
    t_assert_error(lz_take_along_axis(a, ib, 0), "take_along_axis: indices int64[2] must have as many dimensions as the array float32[2,3]");
    int64_t s32[2] = {3, 2};
    t_assert_error(lz_take_along_axis(a, lz_zeros(2, s32, LZ_I64), 1),
                   "take_along_axis: indices int64[3,2] do not broadcast against the array float32[2,3] on axis 0");
    /* scatter_add shapes */
    t_assert_error(lz_scatter_add(a, ib, lz_zeros(2, s33, LZ_F32), 0),
                   "scatter_add: updates float32[3,3] do not fit indices int64[2] on axis 0 of float32[2,3] (expected updates of shape [2,3])");
    t_assert_error(lz_scatter_add(a, ia, lz_zeros(2, s32, LZ_F32), 1),
                   "scatter_add: updates float32[3,2] do not fit indices int64[2,3] on axis 1 of float32[2,3] (expected updates of shape [2,3])");
    /* one_hot */
    t_assert_error(lz_one_hot(ib, -3, LZ_F32), "one_hot: negative depth -3");
    /* concatenate */
    lz_array *c3[3] = {a, lz_zeros(2, s24, LZ_I32), lz_zeros(2, s33, LZ_F32)};
    t_assert_error(lz_concatenate(3, c3, 1),
                   "concatenate: array 2 has shape float32[3,3], which does not match array 0's float32[2,3] outside axis 1");
    lz_array *c2[2] = {a, v};
    t_assert_error(lz_concatenate(2, c2, 0),
                   "concatenate: array 1 has shape float32[5], which does not match array 0's float32[2,3]");
    t_assert_error(lz_concatenate(2, c3, 2), "concatenate: axis 2 is out of range for an array of 2 dimensions");
    t_assert_error(lz_concatenate(0, c3, 0), "concatenate: needs at least one array, got 0");
    lz_array *sc[2] = {lz_scalar(1, LZ_F32), lz_scalar(2, LZ_F32)};
    t_assert_error(lz_concatenate(2, sc, 0), "concatenate: zero-dimensional arrays cannot be concatenated");
    lz_array *c1[2] = {a, c3[1]};
    t_assert_error(lz_stack(2, c1, 0), "stack: array 1 has shape int32[2,4], array 0 has float32[2,3]; all must be equal");
    t_assert_error(lz_stack(2, c2, 3), "stack: array 1 has shape float32[5]");
    lz_array *aa[2] = {a, a};
    t_assert_error(lz_stack(2, aa, 3), "stack: axis 3 is out of range for an array of 3 dimensions");
    /* split */
    lz_array *out[4];
    lz_error_clear();
    assert_int_equal(lz_split(v, 2, 0, out), -1);
    assert_non_null(strstr(lz_error(), "split: axis 0 of float32[5] (size 5) cannot be split into 2 equal sections"));
    assert_int_equal(lz_split(v, 0, 0, out), -1);
    assert_non_null(strstr(lz_error(), "split: 0 sections"));
    assert_int_equal(lz_split(a, 1, 2, out), -1);
    assert_non_null(strstr(lz_error(), "split: axis 2 is out of range"));
    /* pad, tile, repeat */
    int64_t pn[4] = {0, 1, -1, 0};
    t_assert_error(lz_pad(a, pn, 0), "pad: negative padding (-1, 0) on axis 1 of float32[2,3]");
    int64_t rn[2] = {1, -2};
    t_assert_error(lz_tile(a, rn), "tile: negative repetition -2 on axis 1");
    t_assert_error(lz_repeat(a, -1, 0), "repeat: negative repetition count -1");
    t_assert_error(lz_repeat(a, 2, 2), "repeat: axis 2 is out of range");
    /* NULL inputs propagate the first error */
    lz_error_clear();
    lz_fail("first");
    assert_null(lz_take(NULL, ib, 0));
    assert_null(lz_concatenate(2, (lz_array *[]){a, NULL}, 0));
    assert_null(lz_pad(NULL, pn, 0));
    assert_string_equal(lz_error(), "first");
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_random),
        cmocka_unit_test(test_take_embedding),
        cmocka_unit_test(test_take_along_axis_random),
        cmocka_unit_test(test_scatter_add_random),
        cmocka_unit_test(test_scatter_add_embedding),
        cmocka_unit_test(test_one_hot),
        cmocka_unit_test(test_concatenate_random),
        cmocka_unit_test(test_stack_and_split),
        cmocka_unit_test(test_pad_random),
        cmocka_unit_test(test_tile_repeat_random),
        cmocka_unit_test(test_large_threaded),
        cmocka_unit_test(test_index_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
