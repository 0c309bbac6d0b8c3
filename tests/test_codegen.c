/* The GPU's generated kernels, checked where there is no GPU: this test installs a stand-in
 * GPU backend whose device memory is host memory and whose fused groups run the source that
 * lib/backend/cuda/codegen.c writes for the GPU, compiled with g++ against tests/cuda_emu.h
 * (an emulation of threads, blocks, __syncthreads and warp shuffles). Ops are then built with
 * the GPU as the thread's device, so eval's GPU path runs too: placement, copies between a
 * buffer's host and device copies, donation, stored values, CPU fallbacks for kernel nodes.
 * Every result is compared with the same graph on the CPU.
 *
 * It checks the generator (index arithmetic, dtypes and their rounding, scalar parameters,
 * each reduction mode and its partials), not CUDA itself: NVRTC, the launches and the real
 * math library are tested by make test-cuda on a GPU. Skips without g++. */
#include "testutil.h"
#include "emu_gpu.h"

/* ---- comparing a graph built on the emulated GPU with the same graph on the CPU ---- */
typedef lz_array *(*graph_fn)(lz_array *const *in, int variant);

static void compare(const char *what, lz_array *cpu, lz_array *gpu, double tol) {
    assert_int_equal(lz_dtype_of(cpu), lz_dtype_of(gpu));
    int64_t n = lz_size(cpu);
    assert_int_equal(n, lz_size(gpu));
    double *a = malloc((size_t)(n ? n : 1) * sizeof *a), *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    float *fa = malloc((size_t)(n ? n : 1) * 4), *fb = malloc((size_t)(n ? n : 1) * 4);
    int64_t *ia = malloc((size_t)(n ? n : 1) * 8), *ib = malloc((size_t)(n ? n : 1) * 8);
    bool fl = lz_dtype_is_float(lz_dtype_of(cpu));
    if (fl) {
        assert_int_equal(lz_to_float(cpu, fa, n), 0);
        assert_int_equal(lz_to_float(gpu, fb, n), 0);
        for (int64_t i = 0; i < n; i++) { a[i] = fa[i]; b[i] = fb[i]; }
    } else {
        assert_int_equal(lz_to_int(cpu, ia, n), 0);
        assert_int_equal(lz_to_int(gpu, ib, n), 0);
    }
    for (int64_t i = 0; i < n; i++) {
        bool ok = fl ? (isnan(a[i]) ? isnan(b[i]) : a[i] == b[i] || fabs(a[i] - b[i]) <= tol * (1e-6 + fabs(a[i])))
                     : ia[i] == ib[i];
        if (!ok) {
            if (fl) fail_msg("%s: element %lld: CPU %.9g, generated GPU code %.9g", what, (long long)i, a[i], b[i]);
            else fail_msg("%s: element %lld: CPU %lld, generated GPU code %lld", what, (long long)i,
                          (long long)ia[i], (long long)ib[i]);
        }
    }
    free(a); free(b); free(fa); free(fb); free(ia); free(ib);
}

/* Runs fn on both devices (the GPU graph reads the same host inputs) and compares its
 * outputs (fn returns up to 4 through out[], in a NULL-terminated array). */
static void both(const char *what, int nin, lz_array *const *in, int nout,
                 void (*fn)(lz_array *const *in, lz_array **out), double tol) {
    lz_array *c[4] = {NULL}, *g[4] = {NULL};
    lz_pool_push();
    lz_set_thread_device(LZ_CPU);
    fn(in, c);
    for (int o = 0; o < nout; o++) lz_retain(c[o]);   /* held: stored by their groups */
    assert_int_equal(lz_eval(nout, c), 0);
    lz_set_thread_device(LZ_GPU);
    uint64_t fb = lz_stats().cpu_fallbacks, gk = lz_stats().gpu_kernels;
    fn(in, g);
    for (int o = 0; o < nout; o++) lz_retain(g[o]);
    if (lz_eval(nout, g)) fail_msg("%s: %s", what, lz_error());
    assert_true(lz_stats().gpu_kernels > gk);
    (void)fb;
    lz_set_thread_device(LZ_DEVICE_UNSET);
    for (int o = 0; o < nout; o++) compare(what, c[o], g[o], tol);
    for (int o = 0; o < nout; o++) { lz_release(c[o]); lz_release(g[o]); }
    lz_pool_pop();
    (void)nin;
}

/* New references (the caller releases them). */
static lz_array *rand_f(uint64_t *s, int nd, const int64_t *shape, double lo, double hi, lz_dtype t) {
    int64_t n = t_numel(nd, shape);
    float *v = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) v[i] = (float)t_uniform(s, lo, hi);
    lz_pool_push();
    lz_array *a = lz_from_data(v, nd, shape, LZ_F32);
    free(v);
    lz_array *r = lz_retain(t == LZ_F32 ? a : lz_astype(a, t));
    lz_pool_pop();
    lz_eval1(r);
    return r;
}

static lz_array *rand_i(uint64_t *s, int nd, const int64_t *shape, int64_t lo, int64_t hi, lz_dtype t) {
    int64_t n = t_numel(nd, shape);
    int64_t *v = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) v[i] = t_irand(s, lo, hi);
    lz_pool_push();
    lz_array *a = lz_retain(lz_astype(lz_from_data(v, nd, shape, LZ_I64), t));
    lz_pool_pop();
    free(v);
    lz_eval1(a);
    return a;
}

/* ---- elementwise ---- */
static void f_unary(lz_array *const *in, lz_array **out) {
    lz_array *x = in[0];
    lz_array *y = lz_add(lz_exp(lz_neg(lz_square(x))), lz_log1p(lz_abs(x)));
    y = lz_add(y, lz_mul(lz_tanh(x), lz_sigmoid(x)));
    y = lz_add(y, lz_add(lz_gelu(x), lz_gelu_tanh(x)));
    y = lz_add(y, lz_sub(lz_silu(x), lz_softplus(x)));
    y = lz_add(y, lz_mul(lz_erf(x), lz_sin(lz_mul_scalar(x, 3.0))));
    y = lz_add(y, lz_add(lz_cos(x), lz_sign(x)));
    y = lz_add(y, lz_add(lz_floor(lz_mul_scalar(x, 2.5)), lz_ceil(x)));
    y = lz_add(y, lz_add(lz_round(lz_mul_scalar(x, 1.5)), lz_relu(x)));
    y = lz_add(y, lz_div(lz_sqrt(lz_abs(x)), lz_add_scalar(lz_rsqrt(lz_add_scalar(lz_abs(x), 1.0)), 0.5)));
    y = lz_add(y, lz_expm1(lz_mul_scalar(x, 0.5)));
    out[0] = y;
    out[1] = lz_log(x);                                   /* NaN for x < 0, as on the CPU */
}

static void f_binary(lz_array *const *in, lz_array **out) {
    lz_array *x = in[0], *t = in[1], *r = in[2], *h = in[3];
    lz_array *y = lz_maximum(x, t), *z = lz_minimum(lz_pow(lz_abs(x), r), h);
    y = lz_axpby(0.75, y, -1.25, lz_affine(z, 2.0, 0.125));
    lz_array *c = lz_logical_and(lz_greater(x, t), lz_not_equal(r, h));
    c = lz_logical_or(c, lz_less_equal(x, lz_scalar(-0.5, LZ_F32)));
    y = lz_where(lz_logical_not(c), y, lz_div(x, lz_add_scalar(lz_abs(t), 0.5)));
    out[0] = y;
    out[1] = lz_add(lz_astype(lz_equal(x, x), LZ_I32), lz_astype(lz_greater_equal(x, t), LZ_I32));
    out[2] = lz_astype(lz_mul(lz_add(x, h), t), LZ_F16);   /* rounded to float16 */
    out[3] = lz_astype(lz_add(x, h), LZ_BF16);
}

static void f_ints(lz_array *const *in, lz_array **out) {
    lz_array *i = in[0], *u = in[1], *x = in[2];
    lz_array *a = lz_add(lz_mul(i, i), lz_astype(u, LZ_I32));      /* int32 wraps */
    a = lz_sub(lz_maximum(a, lz_neg(i)), lz_minimum(lz_abs(i), lz_square(lz_astype(u, LZ_I32))));
    out[0] = lz_add(a, lz_pow(lz_astype(u, LZ_I32), lz_full(0, NULL, 3, LZ_I32)));
    out[1] = lz_astype(lz_mul_scalar(x, 1000.0), LZ_I32);          /* float -> int truncation */
    out[2] = lz_astype(lz_add(u, u), LZ_U8);                       /* uint8 wraps */
    out[3] = lz_isfinite(lz_div(x, lz_astype(u, LZ_F32)));         /* x / 0 */
}

static void test_elementwise(void **state) {
    (void)state;
    uint64_t s = 11;
    int64_t sh[2] = {37, 129}, tsh[2] = {129, 37}, row[1] = {129};
    lz_array *x = rand_f(&s, 2, sh, -3, 3, LZ_F32);
    lz_array *tb = rand_f(&s, 2, tsh, -2, 2, LZ_F32);
    lz_array *t = lz_transpose(tb);                           /* a strided leaf */
    lz_array *r = rand_f(&s, 1, row, 0.5, 2, LZ_F32);         /* broadcast along rows */
    lz_array *h = rand_f(&s, 2, sh, -1, 1, LZ_F16);
    both("unary ops", 1, (lz_array *[]){x}, 2, f_unary, 2e-5);
    both("binary ops, broadcasting, transposed leaf, casts", 4, (lz_array *[]){x, t, r, h}, 4, f_binary, 2e-5);
    lz_array *i = rand_i(&s, 2, sh, -70000, 70000, LZ_I32), *u = rand_i(&s, 2, sh, 0, 256, LZ_U8);
    both("integer ops and casts", 3, (lz_array *[]){i, u, x}, 4, f_ints, 0);
    lz_release(x); lz_release(tb); lz_release(t); lz_release(r); lz_release(h);
    lz_release(i); lz_release(u);
}

/* ---- an optimizer update: one group storing three values ---- */
static void f_adam(lz_array *const *in, lz_array **out) {
    lz_array *p = in[0], *g = in[1], *m = in[2], *v = in[3];
    lz_array *m2 = lz_axpby(0.9, m, 0.1, g);
    lz_array *v2 = lz_axpby(0.999, v, 0.001, lz_square(g));
    out[0] = lz_sub(p, lz_mul_scalar(lz_div(m2, lz_add_scalar(lz_sqrt(v2), 1e-8)), 1e-3));
    out[1] = m2;
    out[2] = v2;
}

static void test_stored_values(void **state) {
    (void)state;
    uint64_t s = 5;
    int64_t sh[1] = {100003};
    lz_array *p = rand_f(&s, 1, sh, -1, 1, LZ_F32), *g = rand_f(&s, 1, sh, -1, 1, LZ_F32);
    lz_array *m = rand_f(&s, 1, sh, -0.1, 0.1, LZ_F32), *v = rand_f(&s, 1, sh, 0, 0.1, LZ_F32);
    lz_stats_reset();
    both("adam update", 4, (lz_array *[]){p, g, m, v}, 3, f_adam, 1e-6);
    assert_int_equal(lz_stats().gpu_kernels, 1);   /* three values stored by one pass */
    lz_release(p); lz_release(g); lz_release(m); lz_release(v);
}

/* ---- reductions, one shape per mode of the generator ---- */
static int red_axis;
static lz_prim_id red_prim;
static void f_reduce(lz_array *const *in, lz_array **out) {
    lz_array *x = lz_add_scalar(lz_mul(in[0], in[0]), -0.25);   /* a fused expression */
    int ax[1] = {red_axis};
    int n = red_axis < 0 ? 0 : 1;
    switch (red_prim) {
    case LZ_P_SUM: out[0] = lz_sum(x, n ? ax : NULL, n, 1); break;
    case LZ_P_PROD: out[0] = lz_prod(lz_add_scalar(x, 1.0), n ? ax : NULL, n, 0); break;
    case LZ_P_MAX: out[0] = lz_max(x, n ? ax : NULL, n, 0); break;
    default: out[0] = lz_min(lz_astype(x, LZ_F16), n ? ax : NULL, n, 0); break;
    }
}

/* Several reduced and kept dims over a permuted (strided) leaf. */
static void f_reduce_dims(lz_array *const *in, lz_array **out) {
    lz_array *x = lz_permute(in[0], (int[]){2, 0, 1});        /* [40, 6, 50], strided */
    out[0] = lz_sum(lz_mul(x, x), (int[]){0, 2}, 2, 0);       /* two reduced dims */
    out[1] = lz_max(x, (int[]){1}, 1, 1);                     /* two kept dims */
    out[2] = lz_sum(lz_add_scalar(x, 1.0), (int[]){0, 1}, 2, 0);
}

static void f_reduce_int(lz_array *const *in, lz_array **out) {
    int ax[1] = {red_axis};
    out[0] = lz_sum(in[0], ax, 1, 0);                 /* int32 -> int64 */
    out[1] = lz_max(lz_neg(in[0]), ax, 1, 0);
}

static void test_reductions(void **state) {
    (void)state;
    uint64_t s = 7;
    struct { int64_t shape[2]; int nd, axis; const char *mode; } cases[] = {
        {{300, 70}, 2, 1, "a warp per output"},
        {{50, 1000}, 2, 1, "a block per output"},
        {{3, 40000}, 2, 1, "a block per chunk, partials combined"},
        {{20000, 3}, 2, 0, "a thread per output, partials combined"},
        {{40, 3}, 2, 0, "a thread per output"},
        {{70000, 1}, 1, -1, "everything"},
        {{0, 5}, 2, 0, "an empty axis"},
    };
    lz_prim_id prims[4] = {LZ_P_SUM, LZ_P_PROD, LZ_P_MAX, LZ_P_MIN};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        lz_array *x = rand_f(&s, cases[c].nd, cases[c].shape, -1, 1, LZ_F32);
        lz_pool_push();
        lz_array *xt = lz_retain(cases[c].nd == 2 ? lz_transpose(lz_transpose(x)) : x);
        lz_pool_pop();
        for (int p = 0; p < 4; p++) {
            if (cases[c].shape[0] == 0 && (prims[p] == LZ_P_MAX || prims[p] == LZ_P_MIN)) continue;
            if (prims[p] == LZ_P_PROD && cases[c].shape[0] * cases[c].shape[1] > 2000) continue;
            red_axis = cases[c].axis;
            red_prim = prims[p];
            char what[160];
            snprintf(what, sizeof what, "%s over %s", lz_prims[prims[p]].name, cases[c].mode);
            both(what, 1, &xt, 1, f_reduce, prims[p] == LZ_P_SUM ? 1e-5 : 1e-6);
        }
        lz_release(xt);
        lz_release(x);
    }
    int64_t s3[3] = {6, 50, 40};
    lz_array *x3 = rand_f(&s, 3, s3, -1, 1, LZ_F32);
    both("reductions over several dims of a permuted leaf", 1, &x3, 3, f_reduce_dims, 1e-5);
    lz_release(x3);
    /* NaN propagates through max, whichever lane holds it */
    int64_t sh[2] = {4, 1000};
    lz_array *x = rand_f(&s, 2, sh, -1, 1, LZ_F32);
    float *v = (float *)lz_data_mut(x);
    v[1234] = NAN;
    red_axis = 1;
    red_prim = LZ_P_MAX;
    both("max with a NaN", 1, &x, 1, f_reduce, 0);
    lz_release(x);
    int64_t si[2] = {257, 300};
    lz_array *i = rand_i(&s, 2, si, -2000000000, 2000000000, LZ_I32);
    red_axis = 0;
    both("int32 sum and max", 1, &i, 2, f_reduce_int, 0);
    red_axis = 1;
    both("int32 sum and max, rows", 1, &i, 2, f_reduce_int, 0);
    lz_release(i);
}

/* ---- unified memory through eval's GPU path ---- */
static void test_copies(void **state) {
    (void)state;
    lz_pool_push();
    int64_t n = 4096;
    uint64_t seed = 3;
    lz_array *r = rand_f(&seed, 1, &n, 0, 1, LZ_F32);
    lz_array *x = lz_add_scalar(lz_mul_scalar(r, 0.0), 1.0);   /* pooled */
    lz_release(r);   /* x's graph holds it */
    assert_int_equal(lz_eval1(x), 0);           /* on the CPU: a host buffer of n ones */
    lz_set_thread_device(LZ_GPU);
    lz_stats_reset();
    lz_array *y = lz_mul_scalar(x, 3.0);
    assert_int_equal(lz_eval1(y), 0);
    uint64_t up = lz_stats().to_device;         /* x; the scalar 3 is a kernel argument */
    assert_int_equal(up, (uint64_t)n * 4);
    lz_array *z = lz_add(y, x);                 /* y is on the device, x already copied */
    assert_int_equal(lz_eval1(z), 0);
    assert_int_equal(lz_stats().to_device, up);
    assert_int_equal(lz_stats().to_host, 0);
    assert_true(lz_item(z) == 4.0);
    assert_int_equal(lz_stats().to_host, (uint64_t)n * 4);
    /* a kernel node without a GPU kernel here runs on the CPU, reading z back */
    lz_array *w = lz_matmul(lz_reshape(z, 2, (int64_t[]){64, 64}), lz_reshape(z, 2, (int64_t[]){64, 64}));
    assert_int_equal(lz_eval1(w), 0);
    assert_true(lz_stats().cpu_fallbacks >= 1);
    assert_true(lz_item(w) == 64.0 * 16.0);
    lz_set_thread_device(LZ_DEVICE_UNSET);
    lz_pool_pop();
}

int main(void) {
    if (lz_gpu_available() && lz_gpu()->run_fused != emu_run_fused) {   /* make test-cuda tests the real thing */
        printf("skip test_codegen: a GPU is present (%s)\n", lz_gpu_status());
        return 0;
    }
    if (emu_gpu_install()) {
        printf("skip test_codegen: no g++ to compile the generated kernels\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_stored_values),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_copies),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("test_codegen: %d kernels generated and compiled with g++ (emulated GPU)\n", emu_compiled);
    emu_gpu_cleanup();
    return rc;
}
