/* The fused elementwise engine (lib/core/eval.c groups, lib/backend/cpu/fused.c runs
 * them): groups mixing register reps, registers reused along long chains, threads and
 * constants, casts of broadcast operands, streaming stores; and groups that store more than
 * their root: inner values held outside the group (an optimizer's new state) written in the
 * same pass, donated buffers, blocked (transposed) walks, narrow dtypes, the bound on stored
 * values, a failed allocation; sibling groups merged into one pass; random graphs against
 * the same ops one at a time. */
#include "ulps.h"

/* ---- fused groups: mixed register reps, reused registers, threads, constants ---- */
static void test_fused_mixed_dtypes(void **state) {
    (void)state;
    uint64_t seed = 8;
    int64_t sh[2] = {37, 65}, n = 37 * 65;
    tarr x = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_STRIDED);
    tarr k = t_rand(2, sh, LZ_I32, -3, 3, &seed, T_TRANSPOSED);
    lz_pool_push();
    lz_array *c = lz_less(x.a, k.a);                                  /* F -> bool */
    lz_array *y = lz_where(c, lz_mul_scalar(x.a, 2), lz_add_scalar(k.a, -1));
    lz_array *w = lz_add(lz_astype(y, LZ_I32), k.a);                  /* F -> I, int add */
    lz_array *r = lz_mul(lz_astype(w, LZ_F32), lz_square(x.a));       /* I -> F */
    r = lz_mul(r, lz_add_scalar(lz_astype(lz_logical_not(c), LZ_F32), 1));   /* bool -> F */
    lz_array *h = lz_astype(lz_exp(lz_mul_scalar(x.a, 0.5)), LZ_F16); /* f16 output */
    lz_array *m = lz_mul(r, lz_exp(r));                               /* r read twice */
    lz_array *e = lz_mul(lz_sqrt(x.a), lz_sqrt(x.a));                 /* same value twice */
    lz_retain(r); lz_retain(h); lz_retain(m); lz_retain(e);
    lz_pool_pop();
    assert_int_equal(LZ_EVAL(r, h, m, e), 0);
    double *rr = malloc(n * 8), *rh = malloc(n * 8), *rm = malloc(n * 8), *re = malloc(n * 8);
    float *rf = malloc(n * sizeof *rf);
    for (int64_t i = 0; i < n; i++) {
        double xv = x.v[i], kv = k.v[i];
        int cv = xv < kv;
        double yv = cv ? xv * 2 : kv - 1;
        double wv = trunc(yv) + kv;
        rr[i] = wv * (double)(float)(xv * xv) * (cv ? 1 : 2);   /* exact, then one rounding */
        rh[i] = exp(xv * 0.5);
        float sq = sqrtf((float)xv);
        re[i] = (double)sq * sq;
    }
    check_ulps(r, rr, NULL, 0.5, "fused mixed reps");
    check_ulps(h, rh, NULL, 1, "fused to float16");
    check_ulps(e, re, NULL, 0.5, "fused, a dying value read twice");
    lz_to_float(r, rf, n);   /* m is checked given the float r it was computed from */
    for (int64_t i = 0; i < n; i++) rm[i] = rf[i] * exp(rf[i]);
    check_ulps(m, rm, NULL, 2, "fused, a live value read again");
    free(rr); free(rh); free(rm); free(re); free(rf);
    lz_release(r); lz_release(h); lz_release(m); lz_release(e);
    t_free(&x); t_free(&k);
}

/* Over 65,536 elements the engine runs on all threads: every thread fills its constant
 * registers itself; a value used many times stays live while others recycle registers. */
static void test_fused_threads_constants_and_reuse(void **state) {
    (void)state;
    int64_t n = 200003;
    lz_array *x = lz_linspace(-3, 3, n, LZ_F32), *ih = lz_arange(0, (double)n, 1, LZ_I64);
    lz_pool_push();
    lz_array *y = lz_mul_scalar(x, 0.25);
    for (int i = 0; i < 12; i++) y = lz_add(lz_mul(y, x), lz_mul_scalar(x, 0.125));
    lz_array *h = lz_mul_scalar(lz_astype(x, LZ_F16), 0.25);   /* a float16 constant leaf */
    lz_array *q = lz_add_scalar(lz_mul_scalar(ih, 3), 7);       /* int64 constants */
    lz_array *sl = lz_exp(lz_slice_axis(x, 0, 1, n, 2));        /* strided leaf */
    lz_retain(y); lz_retain(h); lz_retain(q); lz_retain(sl);
    lz_pool_pop();
    assert_int_equal(LZ_EVAL(y, h, q, sl), 0);
    float *xs = malloc(n * sizeof *xs), *ys = malloc(n * sizeof *ys);
    int64_t *qs = malloc(n * sizeof *qs), ns = lz_size(sl);
    double *rh = malloc(n * sizeof *rh), *rs = malloc(n * sizeof *rs);
    assert_true(!lz_to_float(x, xs, n) && !lz_to_float(y, ys, n) && !lz_to_int(q, qs, n));
    for (int64_t i = 0; i < n; i++) {
        float v = xs[i] * 0.25f;   /* the same float32 operations, in order */
        for (int j = 0; j < 12; j++) v = v * xs[i] + xs[i] * 0.125f;
        if (ys[i] != v) fail_msg("element %lld: got %.9g, expected %.9g", (long long)i, ys[i], v);
        if (qs[i] != 3 * i + 7) fail_msg("int element %lld: got %lld", (long long)i, (long long)qs[i]);
        rh[i] = round_to(round_to(xs[i], F16) * 0.25, F16);
    }
    check_ulps(h, rh, NULL, 0, "float16 with a constant");
    assert_int_equal(ns, (n - 1) / 2);
    for (int64_t i = 0; i < ns; i++) rs[i] = exp(xs[1 + 2 * i]);
    check_ulps(sl, rs, NULL, 1, "strided leaf");
    free(xs); free(ys); free(qs); free(rh); free(rs);
    lz_release(y); lz_release(h); lz_release(q); lz_release(sl); lz_release(x); lz_release(ih);
}

/* A broadcast operand of another dtype is cast inside the consumer's kernel, not apart. */
static void test_fused_cast_of_broadcast(void **state) {
    (void)state;
    uint64_t seed = 9;
    int64_t sx[2] = {40, 33}, sb[1] = {33};
    tarr x = t_rand(2, sx, LZ_F32, -1, 1, &seed, T_CONTIG), b = t_rand(1, sb, LZ_I32, -9, 9, &seed, T_STRIDED);
    lz_pool_push();
    lz_array *y = lz_mul(lz_add(x.a, b.a), lz_scalar(3, LZ_I64));
    lz_stats_reset();
    assert_int_equal(lz_eval1(y), 0);
    assert_int_equal(lz_stats().kernels, 1);
    double ref[40 * 33];
    for (int i = 0; i < 40 * 33; i++) ref[i] = (double)(float)(x.v[i] + b.v[i % 33]) * 3;
    check_ulps(y, ref, NULL, 0.5, "cast of broadcast operands");
    lz_pool_pop();
    t_free(&x); t_free(&b);
}

/* Outputs of 32 MiB and more are written with streaming stores; an odd size checks the tail. */
static void test_fused_large_output(void **state) {
    (void)state;
    int64_t n = (8 << 20) + 37;
    lz_array *x = lz_linspace(-1, 1, n, LZ_F32);
    assert_int_equal(lz_eval1(x), 0);
    lz_pool_push();
    lz_array *y = lz_retain(lz_add_scalar(lz_mul_scalar(x, 3), 1));   /* held: stored too */
    lz_array *z = lz_retain(lz_neg(y));
    lz_pool_pop();
    float *xs = malloc(n * sizeof *xs), *ys = malloc(n * sizeof *ys), *zs = malloc(n * sizeof *zs);
    lz_stats_reset();
    assert_true(!lz_to_float(x, xs, n) && !lz_to_float(z, zs, n) && !lz_to_float(y, ys, n));
    assert_int_equal(lz_stats().kernels, 1);
    for (int64_t i = 0; i < n; i++) {
        if (ys[i] != xs[i] * 3.0f + 1.0f) fail_msg("y element %lld: got %g", (long long)i, ys[i]);
        if (zs[i] != -ys[i]) fail_msg("z element %lld: got %g", (long long)i, zs[i]);
    }
    free(xs); free(ys); free(zs);
    lz_release(z); lz_release(y); lz_release(x);
}

/* ---- groups that store inner values ---- */

/* An Adam-like update: the new moments are held (by the optimizer) and read by the new
 * parameter. One kernel writes all three, two of them into the old moments' buffers (their
 * last references die here): the update needs one new buffer, for the parameter that is
 * still held. */
static void test_stored_values_one_pass_and_donation(void **state) {
    (void)state;
    uint64_t seed = 21;
    int64_t sh[2] = {300, 257}, n = 300 * 257;   /* over the threading threshold */
    tarr p = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_CONTIG), g = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_CONTIG);
    tarr m0 = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_CONTIG), v0 = t_rand(2, sh, LZ_F32, 0, 1, &seed, T_CONTIG);
    assert_int_equal(LZ_EVAL(p.a, g.a, m0.a, v0.a), 0);
    const void *mbuf = lz_data(m0.a), *vbuf = lz_data(v0.a);
    lz_pool_push();
    lz_array *m = lz_retain(lz_axpby(0.9, m0.a, 0.1, g.a));
    lz_array *v = lz_retain(lz_axpby(0.999, v0.a, 0.001, lz_square(g.a)));
    lz_array *q = lz_retain(lz_axpby(1, p.a, -0.01, lz_div(m, lz_affine(lz_sqrt(v), 3, 1e-8))));
    lz_pool_pop();
    lz_release(m0.a);   /* the old state's last handles: the graph holds them now */
    lz_release(v0.a);
    m0.a = v0.a = NULL;
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(q, m, v), 0);
    assert_int_equal(lz_stats().kernels, 1);
    assert_true(lz_is_evaluated(m) && lz_is_evaluated(v));
    const void *outs[3] = {lz_data(q), lz_data(m), lz_data(v)};
    int donated = 0;
    for (int i = 0; i < 3; i++) donated += (outs[i] == mbuf) + (outs[i] == vbuf);
    assert_int_equal(donated, 2);   /* p is still held: one new buffer for the three */
    double *rm = malloc(n * 8), *rv = malloc(n * 8), *rq = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) {
        float gi = (float)g.v[i], mi = 0.9f * (float)m0.v[i] + 0.1f * gi;
        float vi = 0.999f * (float)v0.v[i] + 0.001f * (gi * gi);
        float d = mi / (3.0f * sqrtf(vi) + 1e-8f);
        rm[i] = mi;
        rv[i] = vi;
        rq[i] = 1.0f * (float)p.v[i] + -0.01f * d;
    }
    check_ulps(m, rm, NULL, 0, "stored first moment");
    check_ulps(v, rv, NULL, 0, "stored second moment");
    check_ulps(q, rq, NULL, 0, "new parameter");
    free(rm); free(rv); free(rq);
    lz_release(m); lz_release(v); lz_release(q);
    t_free(&p); t_free(&g); t_free(&m0); t_free(&v0);
}

/* A stored value in a blocked walk (a transposed leaf): its rows are stored apart, as the
 * root's; a stored float16 value is rounded where it is stored and inside the group alike. */
static void test_stored_values_blocked_and_float16(void **state) {
    (void)state;
    uint64_t seed = 22;
    int64_t sh[2] = {70, 90}, n = 70 * 90;
    tarr x = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_TRANSPOSED), b = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *y = lz_retain(lz_mul_scalar(x.a, 3));                    /* stored, blocked */
    lz_array *h = lz_retain(lz_astype(lz_add(y, b.a), LZ_F16));        /* stored, float16 */
    lz_array *z = lz_retain(lz_add_scalar(lz_astype(h, LZ_F32), 0.5));
    lz_pool_pop();
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(z), 0);
    assert_int_equal(lz_stats().kernels, 1);
    assert_true(lz_is_evaluated(y) && lz_is_evaluated(h));
    double *ry = malloc(n * 8), *rh = malloc(n * 8), *rz = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) {
        float yi = (float)x.v[i] * 3.0f;
        ry[i] = yi;
        rh[i] = round_to((double)(yi + (float)b.v[i]), F16);
        rz[i] = (float)rh[i] + 0.5f;
    }
    check_ulps(y, ry, NULL, 0, "stored value of a blocked group");
    check_ulps(h, rh, NULL, 0, "stored float16 value");
    check_ulps(z, rz, NULL, 0, "root after a float16 value");
    free(ry); free(rh); free(rz);
    lz_release(y); lz_release(h); lz_release(z);
    t_free(&x); t_free(&b);
}

/* A group stores at most LZ_FUSE_OUTS (8) values besides its root: a chain of twelve held
 * values runs as two groups; held values under a reduction are their own kernels. */
static void test_stored_values_bound_and_reductions(void **state) {
    (void)state;
    int64_t n = 1000;
    lz_array *x = lz_linspace(-1, 1, n, LZ_F32), *ys[12];
    assert_int_equal(lz_eval1(x), 0);
    lz_pool_push();
    lz_array *y = x;
    for (int i = 0; i < 12; i++) y = ys[i] = lz_retain(lz_axpby(0.5, y, 0.25, x));
    lz_array *z = lz_retain(lz_neg(y));
    lz_array *s = lz_retain(lz_sum(lz_square(z), NULL, 0, false));
    lz_pool_pop();
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(s), 0);
    assert_int_equal(lz_stats().kernels, 3);   /* ys[0..2] + ys[3]; ys[4..11] + z; the sum */
    float *xs = malloc(n * sizeof *xs), *got = malloc(n * sizeof *got), *ref = malloc(n * sizeof *ref);
    assert_int_equal(lz_to_float(x, xs, n), 0);
    for (int64_t i = 0; i < n; i++) ref[i] = xs[i];
    for (int k = 0; k < 12; k++) {
        assert_true(lz_is_evaluated(ys[k]));
        assert_int_equal(lz_to_float(ys[k], got, n), 0);
        for (int64_t i = 0; i < n; i++) {
            ref[i] = 0.5f * ref[i] + 0.25f * xs[i];
            if (got[i] != ref[i]) fail_msg("value %d element %lld: got %g, expected %g", k, (long long)i, got[i], ref[i]);
        }
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)ref[i] * ref[i];
    float sv;
    assert_int_equal(lz_to_float(s, &sv, 1), 0);
    assert_true(fabs(sv - sum) <= 1e-5 * sum);
    free(xs); free(got); free(ref);
    for (int k = 0; k < 12; k++) lz_release(ys[k]);
    lz_release(z); lz_release(s); lz_release(x);
}

/* A stored value whose buffer cannot be had: the eval fails with the allocator's message,
 * nothing is left half-evaluated, and the same graph evaluates once memory is there. */
static void test_stored_values_failed_allocation(void **state) {
    (void)state;
    int64_t n = 1 << 20;   /* 4 MiB each */
    lz_array *x = lz_linspace(0, 1, n, LZ_F32);
    assert_int_equal(lz_eval1(x), 0);
    lz_pool_push();
    lz_array *y = lz_retain(lz_affine(x, 2, 1));
    lz_array *z = lz_retain(lz_mul(y, x));
    lz_pool_pop();
    lz_memory_clear_cache();
    t_mem_set_limit(t_mem().active + ((size_t)6 << 20));   /* room for one of the two */
    assert_int_equal(lz_eval1(z), -1);
    assert_non_null(strstr(lz_error(), "limit"));
    assert_false(lz_is_evaluated(y));
    assert_false(lz_is_evaluated(z));
    t_mem_set_limit(0);
    assert_int_equal(lz_eval1(z), 0);
    float got[2];
    lz_pool_push();
    assert_int_equal(lz_to_float(lz_slice_axis(y, 0, n - 2, n, 1), got, 2), 0);
    assert_true(got[1] == 3.0f);
    assert_int_equal(lz_to_float(lz_slice_axis(z, 0, n - 2, n, 1), got, 2), 0);
    assert_true(got[1] == 3.0f);
    lz_pool_pop();
    lz_release(y); lz_release(z); lz_release(x);
}

/* Sibling groups: roots that nothing in the graph consumes join a later group of their
 * shape that reads one of their leaves (one pass reads the shared leaves once); groups of
 * another shape, or that share no leaf, stay apart; a root's inputs computed by a kernel
 * between the two groups are ready when the merged group runs. */
static void test_sibling_groups(void **state) {
    (void)state;
    uint64_t seed = 23;
    int64_t sh[2] = {33, 40}, sw[2] = {40, 40}, n = 33 * 40;
    tarr x = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_CONTIG), y = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_STRIDED);
    tarr z = t_rand(2, sh, LZ_F32, -2, 2, &seed, T_CONTIG), w = t_rand(2, sw, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *a = lz_axpby(2, x.a, 1, y.a), *b = lz_sub(x.a, y.a), *c = lz_mul(lz_exp(y.a), x.a);
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(a, b, c), 0);
    assert_int_equal(lz_stats().kernels, 1);                      /* three siblings, one pass */
    double *ra = malloc(n * 8), *rb = malloc(n * 8), *rc = malloc(n * 8), *rd = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) {
        float xi = (float)x.v[i], yi = (float)y.v[i];
        ra[i] = 2.0f * xi + 1.0f * yi;
        rb[i] = xi - yi;
        rc[i] = (double)expf(yi) * xi;   /* within the exp's 1-ulp error */
    }
    check_ulps(a, ra, NULL, 0, "first sibling");
    check_ulps(b, rb, NULL, 0, "second sibling");
    check_ulps(c, rc, NULL, 2, "third sibling");
    lz_array *d = lz_neg(z.a), *e = lz_neg(x.a);                  /* no shared leaf */
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(d, e), 0);
    assert_int_equal(lz_stats().kernels, 2);
    lz_array *f = lz_mul_scalar(x.a, 3), *k = lz_matmul(x.a, w.a);   /* [33,40] kernel */
    lz_array *h = lz_add(k, x.a);                                  /* reads x and the kernel */
    lz_array *v = lz_neg(lz_sum(x.a, NULL, 0, false));            /* another shape */
    lz_stats_reset();
    assert_int_equal(LZ_EVAL(f, h, v), 0);
    assert_int_equal(lz_stats().kernels, 4);   /* matmul; f + h; the sum; its negation */
    float *kv = malloc(n * sizeof *kv);
    assert_int_equal(lz_to_float(k, kv, n), 0);
    for (int64_t i = 0; i < n; i++) {
        ra[i] = (float)x.v[i] * 3.0f;
        rd[i] = kv[i] + (float)x.v[i];
    }
    check_ulps(f, ra, NULL, 0, "sibling of a group reading a kernel");
    check_ulps(h, rd, NULL, 0, "group reading a kernel");
    free(ra); free(rb); free(rc); free(rd); free(kv);
    lz_pool_pop();
    t_free(&x); t_free(&y); t_free(&z); t_free(&w);
}

/* A value its consumer reads twice (y * y) is computed once in the group: a 30-op chain
 * squared is 31 instructions, not 61; held, it is stored once (stored twice, a group of
 * LZ_FUSE_OUTS held values overflowed its list of stored values). */
static void test_value_read_twice(void **state) {
    (void)state;
    int64_t n = 1000;
    lz_array *x = lz_linspace(-1, 1, n, LZ_F32);
    assert_int_equal(lz_eval1(x), 0);
    for (int keep = 0; keep < 2; keep++) {
        lz_pool_push();
        lz_array *y = x;
        for (int i = 0; i < 30; i++) y = lz_affine(y, 0.99, 0.01);
        if (keep) lz_retain(y);
        lz_array *z = lz_mul(y, y);
        lz_stats_reset();
        assert_int_equal(lz_eval1(z), 0);
        assert_int_equal(lz_stats().kernels, 1);
        assert_int_equal(lz_stats().fused_ops, 31);
        float xs[1000], zs[1000], ys[1000];
        assert_int_equal(lz_to_float(x, xs, n), 0);
        assert_int_equal(lz_to_float(z, zs, n), 0);
        for (int64_t i = 0; i < n; i++) {
            float v = xs[i];
            for (int k = 0; k < 30; k++) v = 0.99f * v + 0.01f;
            ys[i] = v;
            if (zs[i] != v * v) fail_msg("element %lld: got %g, expected %g", (long long)i, zs[i], v * v);
        }
        if (keep) {
            float got[1000];
            assert_true(lz_is_evaluated(y));
            assert_int_equal(lz_to_float(y, got, n), 0);
            assert_memory_equal(got, ys, sizeof got);
            lz_release(y);
        }
        lz_pool_pop();
    }
    lz_release(x);
}

/* Random graphs: elementwise DAGs (float32 and float16) over a few leaves (one broadcast,
 * one transposed), some values held by the caller (stored values), a few of them and the
 * last node evaluated at once (siblings), against the same ops evaluated one at a time (each
 * its own kernel). The kernels do the same float32 arithmetic fused or not, so every held
 * value must match to the bit, and so must the values read afterwards from nodes that were
 * fused away. */
enum { RG_NODES = 24, RG_LEAVES = 4 };

static lz_array *rg_op(int op, lz_array *a, lz_array *b) {
    switch (op) {
    case 0: return lz_add(a, b);
    case 1: return lz_sub(a, b);
    case 2: return lz_mul(a, b);
    case 3: return lz_axpby(0.5, a, -0.75, b);
    case 4: return lz_affine(a, 0.9, 0.1);
    case 5: return lz_tanh(a);
    case 6: return lz_maximum(a, b);
    case 7: return lz_sigmoid(a);
    case 8: return lz_astype(a, LZ_F16);   /* float16 values, held or fused, rounded alike */
    default: return lz_neg(a);
    }
}

static void rg_build(uint64_t seed, lz_array *const *leaves, bool eager, lz_array **nodes,
                     bool *held) {
    lz_array *all[RG_LEAVES + RG_NODES];
    for (int i = 0; i < RG_LEAVES; i++) all[i] = leaves[i];
    for (int i = 0; i < RG_NODES; i++) {
        int n = RG_LEAVES + i;
        int op = (int)t_irand(&seed, 0, 10);
        lz_array *a = all[t_irand(&seed, n > 6 ? n - 6 : 0, n)], *b = all[t_irand(&seed, 0, n)];
        held[i] = t_uniform(&seed, 0, 1) < 0.3 || i == RG_NODES - 1;
        lz_array *v = rg_op(op, a, b);
        if (eager) assert_int_equal(lz_eval1(v), 0);
        nodes[i] = all[n] = held[i] ? lz_retain(v) : v;
    }
}

static void test_random_graphs(void **state) {
    (void)state;
    uint64_t seed = 31, kernels = 0, nodes = 0;
    for (int size = 0; size < 2; size++) {
        int64_t sh[2] = {size ? 300 : 37, size ? 701 : 129}, row = sh[1], n = sh[0] * sh[1];
        tarr l0 = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_CONTIG), l1 = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_STRIDED);
        tarr l2 = t_rand(2, sh, LZ_F32, -1, 1, &seed, T_TRANSPOSED), l3 = t_rand(1, &row, LZ_F32, -1, 1, &seed, T_CONTIG);
        lz_array *leaves[RG_LEAVES] = {l0.a, l1.a, l2.a, l3.a};
        float *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
        for (int g = 0; g < (size ? 12 : 60); g++) {
            uint64_t gs = 1000 + (uint64_t)g;
            lz_array *fused[RG_NODES], *ref[RG_NODES], *targets[RG_NODES];
            bool held[RG_NODES], held2[RG_NODES];
            lz_pool_push();
            rg_build(gs, leaves, false, fused, held);
            rg_build(gs, leaves, true, ref, held2);
            int nt = 0;
            for (int i = 0; i < RG_NODES; i++)
                if (held[i] && (i == RG_NODES - 1 || t_uniform(&gs, 0, 1) < 0.5)) targets[nt++] = fused[i];
            lz_stats_reset();
            assert_int_equal(lz_eval(nt, targets), 0);
            kernels += lz_stats().kernels;
            nodes += RG_NODES;
            for (int i = 0; i < RG_NODES; i++) {
                int64_t m = lz_size(fused[i]);
                assert_int_equal(lz_to_float(fused[i], got, m), 0);
                assert_int_equal(lz_to_float(ref[i], want, m), 0);
                if (memcmp(got, want, (size_t)m * sizeof *got))
                    fail_msg("graph %d (size %d), node %d (%s): fused and one-at-a-time differ",
                             g, size, i, held[i] ? "held" : "fused away");
            }
            for (int i = 0; i < RG_NODES; i++) {
                if (held[i]) lz_release(fused[i]);
                if (held2[i]) lz_release(ref[i]);
            }
            lz_pool_pop();
        }
        free(got); free(want);
        t_free(&l0); t_free(&l1); t_free(&l2); t_free(&l3);
    }
    printf("random graphs: %llu kernels for %llu nodes\n", (unsigned long long)kernels,
           (unsigned long long)nodes);
    assert_true(kernels * 3 < nodes);   /* fusion happened: fewer than one kernel in three */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_mixed_dtypes),
        cmocka_unit_test(test_fused_threads_constants_and_reuse),
        cmocka_unit_test(test_fused_cast_of_broadcast), cmocka_unit_test(test_fused_large_output),
        cmocka_unit_test(test_stored_values_one_pass_and_donation),
        cmocka_unit_test(test_stored_values_blocked_and_float16),
        cmocka_unit_test(test_stored_values_bound_and_reductions),
        cmocka_unit_test(test_stored_values_failed_allocation), cmocka_unit_test(test_sibling_groups),
        cmocka_unit_test(test_value_read_twice), cmocka_unit_test(test_random_graphs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
