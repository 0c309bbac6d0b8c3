/* Fused backward kernels: packed self-attention (lz_attention_qkv) and its backward
 * (lz_attention_qkv_grad); the layer / RMS norm backward (lz_norm_grad); GELU's derivative
 * node (the GELU primitive with params.i[0] = 1, built by its vjp rule). Values and
 * gradients against naive float64 references written here, finite-difference checks of first
 * and second order (the backward nodes' own rules), layouts, sizes around the kernels' block
 * sizes, errors. */
#include "gradcheck.h"
#include "testutil.h"

static const int layouts[3] = {T_CONTIG, T_STRIDED, T_TRANSPOSED};

typedef struct {
    int nb;              /* batch dims */
    int64_t b[2];        /* their sizes */
    int64_t t, heads, hd;
    int causal;
    double scale;        /* <= 0: 1 / sqrt(hd) */
} qcase;

static int64_t nbatch(const qcase *c) {
    int64_t n = 1;
    for (int d = 0; d < c->nb; d++) n *= c->b[d];
    return n;
}

static int shape_of(const qcase *c, int64_t last, int64_t *s) {
    for (int d = 0; d < c->nb; d++) s[d] = c->b[d];
    s[c->nb] = c->t;
    s[c->nb + 1] = last;
    return c->nb + 2;
}

/* Reference forward and (with dout) backward of one case, in double. y [N, T, H hd],
 * g [N, T, 3 H hd] (g may be NULL). */
static void reference(const qcase *c, const double *qkv, const double *dout, double *y, double *g) {
    int64_t t = c->t, hd = c->hd, w = c->heads * hd, ld = 3 * w;
    double scale = c->scale > 0 ? c->scale : 1 / sqrt((double)hd);
    double *p = malloc((size_t)(t * t + 1) * sizeof *p), *dp = malloc((size_t)(t * t + 1) * sizeof *dp);
    for (int64_t n = 0; n < nbatch(c); n++)
        for (int64_t h = 0; h < c->heads; h++) {
            const double *q = qkv + n * t * ld + h * hd, *k = q + w, *v = q + 2 * w;
            for (int64_t i = 0; i < t; i++) {
                int64_t lim = c->causal ? i + 1 : t;
                double m = -INFINITY, l = 0;
                for (int64_t j = 0; j < t; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < hd; d++) s += q[i * ld + d] * k[j * ld + d];
                    p[i * t + j] = j < lim ? s * scale : -INFINITY;
                    if (j < lim) m = fmax(m, p[i * t + j]);
                }
                for (int64_t j = 0; j < t; j++) l += (p[i * t + j] = j < lim ? exp(p[i * t + j] - m) : 0);
                for (int64_t j = 0; j < t; j++) p[i * t + j] /= l;
                for (int64_t d = 0; d < hd; d++) {
                    double s = 0;
                    for (int64_t j = 0; j < t; j++) s += p[i * t + j] * v[j * ld + d];
                    y[(n * t + i) * w + h * hd + d] = s;
                }
            }
            if (!g) continue;
            const double *dO = dout + n * t * w + h * hd;
            double *dq = g + n * t * ld + h * hd, *dk = dq + w, *dv = dq + 2 * w;
            for (int64_t i = 0; i < t; i++) {     /* dP = dO V^T, dS = P (dP - sum P dP) */
                double dot = 0;
                for (int64_t j = 0; j < t; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < hd; d++) s += dO[i * w + d] * v[j * ld + d];
                    dp[i * t + j] = s;
                    dot += s * p[i * t + j];
                }
                for (int64_t j = 0; j < t; j++) dp[i * t + j] = scale * p[i * t + j] * (dp[i * t + j] - dot);
            }
            for (int64_t j = 0; j < t; j++)
                for (int64_t d = 0; d < hd; d++) {
                    double sq = 0, sk = 0, sv = 0;
                    for (int64_t i = 0; i < t; i++) {
                        sq += dp[j * t + i] * k[i * ld + d];   /* dQ[j] = dS[j, :] K */
                        sk += dp[i * t + j] * q[i * ld + d];   /* dK[j] = dS[:, j]^T Q */
                        sv += p[i * t + j] * dO[i * w + d];    /* dV[j] = P[:, j]^T dO */
                    }
                    dq[j * ld + d] = sq;
                    dk[j * ld + d] = sk;
                    dv[j * ld + d] = sv;
                }
        }
    free(p);
    free(dp);
}

static int attn_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const qcase *c = ctx;
    out[0] = lz_attention_qkv(in[0], c->heads, c->scale, c->causal);
    return out[0] ? 1 : -1;
}

static void check_case(const qcase *c, int layout, uint64_t *seed) {
    int64_t s[4], sd[4], w = c->heads * c->hd;
    int nd = shape_of(c, 3 * w, s);
    shape_of(c, w, sd);
    tarr x = t_rand(nd, s, LZ_F32, -1.5, 1.5, seed, layout);
    tarr dy = t_rand(nd, sd, LZ_F32, -1, 1, seed, layouts[(layout + 1) % 3]);
    int64_t ny = nbatch(c) * c->t * w, ng = 3 * ny;
    double *y = calloc((size_t)ny + 1, sizeof *y), *g = calloc((size_t)ng + 1, sizeof *g);
    reference(c, x.v, dy.v, y, g);
    lz_pool_push();
    lz_array *out = lz_attention_qkv(x.a, c->heads, c->scale, c->causal);
    assert_non_null(out);
    assert_int_equal(lz_ndim(out), nd);
    for (int d = 0; d < nd; d++) assert_int_equal(lz_shape(out)[d], sd[d]);
    t_assert_close(out, y, ny, 1e-4, 2e-5);
    /* the gradient through autograd (the fused backward kernel) */
    lz_array *gr = NULL;
    qcase cc = *c;
    assert_true(lz_vjp(attn_fn, &cc, 1, &x.a, 1, &dy.a, NULL, 0, &gr) >= 0);
    t_assert_close(gr, g, ng, 1e-3, 1e-4);
    /* and the backward op called directly */
    t_assert_close(lz_attention_qkv_grad(x.a, dy.a, c->heads, c->scale, c->causal), g, ng, 1e-3, 1e-4);
    lz_pool_pop();
    free(y);
    free(g);
    t_free(&x);
    t_free(&dy);
}

static void test_values_and_gradients(void **state) {
    (void)state;
    static const qcase cases[] = {
        {1, {2, 0}, 5, 2, 3, 1, 0},        /* small, causal */
        {1, {2, 0}, 5, 2, 3, 0, 0.7},      /* full, explicit scale */
        {2, {2, 3}, 4, 1, 4, 1, 0},        /* two batch dims, one head */
        {0, {0, 0}, 7, 3, 2, 1, 0},        /* no batch dims: [T, 3 H hd] */
        {1, {1, 0}, 1, 2, 5, 1, 0},        /* a single position */
        {1, {2, 0}, 33, 2, 8, 1, 0},       /* past one backward block (32 rows) */
        {1, {1, 0}, 70, 2, 16, 1, 0},      /* past one forward block (64 rows), causal */
        {1, {1, 0}, 70, 1, 16, 0, 0},      /* the same, full */
        {1, {3, 0}, 130, 4, 32, 1, 0},     /* past one key block (128), the GPT's head size */
        {1, {2, 0}, 64, 2, 32, 1, 0},      /* head size 32, T % 16 == 0: register-tiled path */
        {1, {1, 0}, 48, 3, 32, 0, 0.3},    /* the same, full attention, T % 32 != 0 */
        {1, {0, 0}, 6, 2, 3, 1, 0},        /* size-0 batch */
        {1, {2, 0}, 0, 2, 3, 1, 0},        /* no positions */
    };
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int l = 0; l < 3; l++) check_case(&cases[i], layouts[l], &seed);
}

/* float16 input: computed in float32, the result cast back */
static void test_dtype(void **state) {
    (void)state;
    qcase c = {1, {2, 0}, 6, 2, 4, 1, 0};
    uint64_t seed = 3;
    int64_t s[3] = {2, 6, 24};
    tarr x = t_rand(3, s, LZ_F16, -1, 1, &seed, T_CONTIG);
    double y[2 * 6 * 8];
    reference(&c, x.v, NULL, y, NULL);
    lz_array *out = lz_attention_qkv(x.a, 2, 0, 1);
    assert_int_equal(lz_dtype_of(out), LZ_F16);
    t_assert_close(out, y, 96, 2e-3, 2e-3);
    lz_release(out);
    t_free(&x);
}

/* finite differences: the forward's gradient, and the backward's own gradient (second
 * order, through the composite rule of the backward node) w.r.t. qkv and dout */
static int grad_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const qcase *c = ctx;
    out[0] = lz_attention_qkv_grad(in[0], in[1], c->heads, c->scale, c->causal);
    return out[0] ? 1 : -1;
}

static void test_gradcheck(void **state) {
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        qcase c = {1, {2, 0}, 4, 2, 3, causal, 0};
        int64_t s[3] = {2, 4, 18}, sd[3] = {2, 4, 6};
        lz_array *x = gc_rand(3, s, -1, 1, GC_PLAIN, layouts[causal]);
        lz_array *dy = gc_rand(3, sd, -1, 1, GC_PLAIN, T_CONTIG);
        gc_check("attention_qkv", attn_fn, &c, 1, &x, NULL);
        lz_array *in[2] = {x, dy};
        gc_check("attention_qkv_grad", grad_fn, &c, 2, in, NULL);
        lz_release(x);
        lz_release(dy);
    }
}

/* The module's packed path against its separate-head path: same weights, same values. */
static void test_matches_split_heads(void **state) {
    (void)state;
    uint64_t seed = 11;
    int64_t s[3] = {2, 9, 36};
    tarr x = t_rand(3, s, LZ_F32, -1, 1, &seed, T_CONTIG);
    lz_pool_push();
    lz_array *q = lz_slice_axis(x.a, -1, 0, 12, 1), *k = lz_slice_axis(x.a, -1, 12, 24, 1);
    lz_array *v = lz_slice_axis(x.a, -1, 24, 36, 1);
    int64_t hs[4] = {2, 9, 3, 4};
    lz_array *parts[3] = {q, k, v};
    for (int i = 0; i < 3; i++) parts[i] = lz_swapaxes(lz_reshape(parts[i], 4, hs), 1, 2);
    lz_array *ref = lz_reshape(lz_swapaxes(lz_attention(parts[0], parts[1], parts[2], 0, 1), 1, 2), 3, (int64_t[]){2, 9, 12});
    float a[216], b[216];
    assert_int_equal(lz_to_float(ref, a, 216), 0);
    assert_int_equal(lz_to_float(lz_attention_qkv(x.a, 3, 0, 1), b, 216), 0);
    for (int i = 0; i < 216; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-6f + 1e-5f * fabsf(a[i]));
    lz_pool_pop();
    t_free(&x);
}

static void test_errors(void **state) {
    (void)state;
    lz_pool_push();
    lz_array *x = lz_zeros(3, (int64_t[]){2, 3, 12}, LZ_F32);
    t_assert_error(lz_attention_qkv(x, 5, 0, 1),
                   "attention_qkv: the last dimension of qkv float32[2,3,12] is not 3 x heads (5)");
    t_assert_error(lz_attention_qkv(x, 0, 0, 1), "is not 3 x heads (0)");
    t_assert_error(lz_attention_qkv(lz_zeros(1, (int64_t[]){12}, LZ_F32), 1, 0, 1),
                   "attention_qkv: qkv float32[12] needs at least 2 dimensions");
    t_assert_error(lz_attention_qkv(x, 2, NAN, 1), "attention_qkv: scale must be finite");
    t_assert_error(lz_attention_qkv_grad(x, lz_zeros(3, (int64_t[]){2, 3, 5}, LZ_F32), 2, 0, 1),
                   "attention_qkv_grad: d out float32[2,3,5] does not match qkv float32[2,3,12]");
    assert_null(lz_attention_qkv(NULL, 2, 0, 1));
    lz_pool_pop();
}

/* ---- layer / RMS norm backward ---- */

/* Reference gradients of y = norm(x) w + b for cotangent c: dx [R, N], dw [N], db [N]. */
static void ref_norm_grad(const double *x, const double *c, const double *w, int64_t rows,
                          int64_t n, double eps, int rms, double *dx, double *dw, double *db) {
    for (int64_t i = 0; i < n; i++) dw[i] = db[i] = 0;
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * n, *cr = c + r * n;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t i = 0; i < n; i++) mean += xr[i] / (double)n;
        }
        for (int64_t i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean) / (double)n;
        double rs = 1 / sqrt(var + eps), m1 = 0, m2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double xh = (xr[i] - mean) * rs, g = cr[i] * (w ? w[i] : 1);
            m1 += g / (double)n;
            m2 += g * xh / (double)n;
            dw[i] += cr[i] * xh;
            db[i] += cr[i];
        }
        for (int64_t i = 0; i < n; i++) {
            double xh = (xr[i] - mean) * rs, g = cr[i] * (w ? w[i] : 1);
            dx[r * n + i] = rs * (g - (rms ? 0 : m1) - xh * m2);
        }
    }
}

typedef struct { int rms, has_w, has_b; double eps; } ncase;

static int norm_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const ncase *c = ctx;
    lz_array *w = c->has_w ? in[1] : NULL, *b = c->has_b ? in[1 + c->has_w] : NULL;
    out[0] = c->rms ? lz_rms_norm(in[0], w, c->eps) : lz_layer_norm(in[0], w, b, c->eps);
    return out[0] ? 1 : -1;
}

static void test_norm_grad_values(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {{2, 3, 5}, {1, 1, 1}, {3, 70, 33}, {65, 1, 128},
                                        {2, 0, 4}, {1, 200, 7}};
    uint64_t seed = 5;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int v = 0; v < 6; v++) {
            ncase c = {v % 2, v != 2 && v != 3, v < 2 || v == 3, v == 4 ? 0.5 : 1e-5};
            if (c.rms) c.has_b = 0;
            const int64_t *s = shapes[si];
            int64_t n = s[2], rows = s[0] * s[1];
            tarr x = t_rand(3, s, LZ_F32, -2, 2, &seed, layouts[v % 3]);
            tarr ct = t_rand(3, s, LZ_F32, -1, 1, &seed, layouts[(v + 1) % 3]);
            tarr w = t_rand(1, &n, LZ_F32, 0.5, 1.5, &seed, T_CONTIG);
            tarr b = t_rand(1, &n, LZ_F32, -1, 1, &seed, T_CONTIG);
            double *dx = calloc((size_t)(rows * n + 1), sizeof *dx), dw[128], db[128];
            ref_norm_grad(x.v, ct.v, c.has_w ? w.v : NULL, rows, n, c.eps, c.rms, dx, dw, db);
            lz_pool_push();
            lz_array *in[3] = {x.a, c.has_w ? w.a : b.a, b.a}, *g[3] = {NULL, NULL, NULL};
            int nin = 1 + c.has_w + c.has_b;
            assert_true(lz_vjp(norm_fn, &c, nin, in, 1, &ct.a, NULL, 0, g) >= 0);
            t_assert_close(g[0], dx, rows * n, 1e-4, 1e-4);
            if (c.has_w) t_assert_close(g[1], dw, n, 1e-4, 1e-4);
            if (c.has_b) t_assert_close(g[1 + c.has_w], db, n, 1e-4, 1e-4);
            /* the packed node itself: dx rows, then the weight and bias rows (or zeros) */
            lz_array *r = lz_norm_grad(x.a, c.has_w ? w.a : NULL, ct.a, c.eps, c.rms, c.has_b);
            assert_int_equal(lz_dim(r, 0), rows + 2);
            double *all = calloc((size_t)((rows + 2) * n + 1), sizeof *all);
            memcpy(all, dx, (size_t)(rows * n) * sizeof *all);
            for (int64_t i = 0; i < n; i++) {
                all[rows * n + i] = c.has_w ? dw[i] : 0;
                all[(rows + 1) * n + i] = c.has_b ? db[i] : 0;
            }
            t_assert_close(r, all, (rows + 2) * n, 1e-4, 1e-4);
            free(all);
            lz_pool_pop();
            free(dx);
            t_free(&x);
            t_free(&ct);
            t_free(&w);
            t_free(&b);
        }
}

/* second order: the backward node's own gradient against finite differences */
static int norm_grad_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)n;
    const ncase *c = ctx;
    out[0] = lz_norm_grad(in[0], c->has_w ? in[2] : NULL, in[1], c->eps, c->rms, c->has_b);
    return out[0] ? 1 : -1;
}

static void test_norm_gradcheck(void **state) {
    (void)state;
    for (int v = 0; v < 3; v++) {
        ncase c = {v == 2, v != 1, v == 0, 1e-5};
        int64_t s[2] = {3, 5}, n = 5;
        lz_array *in[4] = {gc_rand(2, s, -2, 2, GC_PLAIN, layouts[v]),
                           gc_rand(2, s, -1, 1, GC_PLAIN, T_CONTIG),
                           gc_rand(1, &n, 0.5, 1.5, GC_PLAIN, T_CONTIG),
                           gc_rand(1, &n, -1, 1, GC_PLAIN, T_CONTIG)};
        lz_array *fin[3] = {in[0], c.has_w ? in[2] : in[3], in[3]};
        gc_check("norm", norm_fn, &c, 1 + c.has_w + c.has_b, fin, NULL);
        gc_check("norm_grad", norm_grad_fn, &c, 2 + c.has_w, in, NULL);
        for (int i = 0; i < 4; i++) lz_release(in[i]);
    }
}

static void test_norm_grad_errors(void **state) {
    (void)state;
    lz_pool_push();
    lz_array *x = lz_zeros(2, (int64_t[]){3, 4}, LZ_F32);
    t_assert_error(lz_norm_grad(x, NULL, lz_zeros(2, (int64_t[]){3, 5}, LZ_F32), 1e-5, 0, 0),
                   "layer_norm_grad: cotangent float32[3,5] does not match x float32[3,4]");
    t_assert_error(lz_norm_grad(x, lz_zeros(1, (int64_t[]){3}, LZ_F32), x, 1e-5, 1, 0),
                   "rms_norm_grad: weight float32[3] does not match the last axis of x");
    lz_pool_pop();
}

/* ---- GELU's derivative node ---- */

static int gelu_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_gelu(in[0]);
    return out[0] ? 1 : -1;
}

/* (x, c) -> c gelu'(x) through autograd: the fused derivative node for float32 */
static int gelu_grad_fn(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)ctx; (void)n;
    lz_array *g = NULL;
    if (lz_vjp(gelu_fn, NULL, 1, in, 1, &in[1], NULL, 0, &g) < 0) return -1;
    out[0] = g;
    return 1;
}

static void test_gelu_grad(void **state) {
    (void)state;
    static const double special[] = {-30, -20.5, -9, -5, -1e-3, 0, 1e-3, 0.5, 5, 9, 20.5, 30};
    uint64_t seed = 21;
    for (int l = 0; l < 3; l++) {
        int64_t s[2] = {37, 41};
        tarr x = t_rand(2, s, LZ_F32, -6, 6, &seed, layouts[l]);
        tarr c = t_rand(2, s, LZ_F32, -2, 2, &seed, layouts[(l + 1) % 3]);
        lz_pool_push();
        lz_array *xs = x.a;
        double *xv = x.v;
        if (l == 0) {   /* the special values in place of the first ones */
            float f[37 * 41];
            for (int i = 0; i < 37 * 41; i++) f[i] = (float)x.v[i];
            for (size_t i = 0; i < sizeof special / sizeof *special; i++) f[i] = (float)(xv[i] = special[i]);
            xs = lz_from_data(f, 2, s, LZ_F32);
        }
        double *ref = malloc(37 * 41 * sizeof *ref);
        for (int i = 0; i < 37 * 41; i++) {
            double v = xv[i];
            ref[i] = c.v[i] * (0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) / sqrt(2 * M_PI));
        }
        lz_array *in[2] = {xs, c.a}, *out[1] = {NULL};
        assert_int_equal(gelu_grad_fn(NULL, 2, in, out), 1);
        t_assert_close(out[0], ref, 37 * 41, 2e-6, 1e-6);
        free(ref);
        lz_pool_pop();
        t_free(&x);
        t_free(&c);
    }
    /* float16 takes the composite rule: the same values to float16 precision */
    lz_pool_push();
    int64_t n = 5;
    float xf[5] = {-3, -0.5f, 0, 0.75f, 2.5f};
    lz_array *in[2] = {lz_astype(lz_from_data(xf, 1, &n, LZ_F32), LZ_F16), lz_ones(1, &n, LZ_F16)};
    lz_array *out[1] = {NULL};
    double ref[5];
    for (int i = 0; i < 5; i++)
        ref[i] = 0.5 * erfc(-xf[i] / sqrt(2.0)) + xf[i] * exp(-0.5 * xf[i] * xf[i]) / sqrt(2 * M_PI);
    assert_int_equal(gelu_grad_fn(NULL, 2, in, out), 1);
    assert_int_equal(lz_dtype_of(out[0]), LZ_F16);
    t_assert_close(out[0], ref, 5, 2e-3, 2e-3);
    lz_pool_pop();
}

/* first order (the fused node against finite differences of gelu) and second order (the
 * fused node's own rule against finite differences of the node) */
static void test_gelu_gradcheck(void **state) {
    (void)state;
    int64_t s[2] = {3, 7};
    for (int l = 0; l < 3; l++) {
        lz_array *in[2] = {gc_rand(2, s, -3, 3, GC_PLAIN, layouts[l]),
                           gc_rand(2, s, -1, 1, GC_PLAIN, T_CONTIG)};
        gc_check("gelu", gelu_fn, NULL, 1, in, NULL);
        gc_check("gelu derivative node", gelu_grad_fn, NULL, 2, in, NULL);
        lz_release(in[0]);
        lz_release(in[1]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_gradients),
        cmocka_unit_test(test_dtype),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_matches_split_heads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_norm_grad_values),
        cmocka_unit_test(test_norm_gradcheck),
        cmocka_unit_test(test_norm_grad_errors),
        cmocka_unit_test(test_gelu_grad),
        cmocka_unit_test(test_gelu_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
