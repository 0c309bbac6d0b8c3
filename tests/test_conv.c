/* conv1d/conv2d, their gradient modes, and pooling against naive float64 loops written here
 * from the definitions: many stride/padding/dilation/groups combinations, odd sizes,
 * strided and transposed operands, float16, FLOP counting, errors. */
#include "testutil.h"
#include "ops/conv.h"

/* ---- naive references over the geometry ---- */

typedef struct {
    int64_t n, c, o, h, w, kh, kw, sh, sw, ph, pw, qh, qw, dh, dw, groups;   /* q = pad after */
} spec;

static int64_t out_len(int64_t in, int64_t p, int64_t q, int64_t k, int64_t d, int64_t s) {
    return (in + p + q - d * (k - 1) - 1) / s + 1;
}

/* mode 0: y = conv(x, w); 1: dx from (dy, w); 2: dw from (x, dy). All row-major float64. */
static void ref_conv(const spec *s, int mode, const double *x, const double *w,
                     const double *dy, double *out) {
    int64_t oh = out_len(s->h, s->ph, s->qh, s->kh, s->dh, s->sh);
    int64_t ow = out_len(s->w, s->pw, s->qw, s->kw, s->dw, s->sw);
    int64_t cg = s->c / s->groups, og = s->o / s->groups;
    int64_t size = mode == 0 ? s->n * s->o * oh * ow : mode == 1 ? s->n * s->c * s->h * s->w
                 : s->o * cg * s->kh * s->kw;
    memset(out, 0, (size_t)size * sizeof *out);
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t o = 0; o < s->o; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++)
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t a = 0; a < s->kh; a++)
                            for (int64_t b = 0; b < s->kw; b++) {
                                int64_t ih = i * s->sh - s->ph + a * s->dh;
                                int64_t iw = j * s->sw - s->pw + b * s->dw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                int64_t ci = (o / og) * cg + c;
                                int64_t xi = ((n * s->c + ci) * s->h + ih) * s->w + iw;
                                int64_t wi = ((o * cg + c) * s->kh + a) * s->kw + b;
                                int64_t yi = ((n * s->o + o) * oh + i) * ow + j;
                                if (mode == 0) out[yi] += x[xi] * w[wi];
                                else if (mode == 1) out[xi] += dy[yi] * w[wi];
                                else out[wi] += x[xi] * dy[yi];
                            }
}

static lz_window window_of(const spec *s, int nsp, int mode) {
    lz_window g = {.mode = mode, .nsp = nsp, .groups = s->groups, .count_pad = 1,
                   .in = {s->h, s->w}, .kernel = {s->kh, s->kw}, .stride = {s->sh, s->sw},
                   .pad_lo = {s->ph, s->pw}, .pad_hi = {s->qh, s->qw},
                   .dilation = {s->dh, s->dw}};
    return g;
}

/* Checks the three modes of one conv spec (nsp 1: h = kh = 1) with given layouts. */
static void check_conv(const spec *s, int nsp, int lx, int lw, lz_dtype t, double tol,
                       uint64_t *seed) {
    int64_t oh = out_len(s->h, s->ph, s->qh, s->kh, s->dh, s->sh);
    int64_t ow = out_len(s->w, s->pw, s->qw, s->kw, s->dw, s->sw);
    int64_t cg = s->c / s->groups;
    int64_t xs[4] = {s->n, s->c, s->h, s->w}, ws[4] = {s->o, cg, s->kh, s->kw};
    int64_t ys[4] = {s->n, s->o, oh, ow};
    if (nsp == 1) { xs[2] = s->w; ws[2] = s->kw; ys[2] = ow; }
    tarr x = t_rand(nsp + 2, xs, t, -1, 1, seed, lx);
    tarr w = t_rand(nsp + 2, ws, t, -1, 1, seed, lw);
    tarr dy = t_rand(nsp + 2, ys, t, -1, 1, seed, lx);
    int64_t sizes[3] = {x.n, w.n, dy.n};
    double *ref = malloc((size_t)(sizes[0] + sizes[1] + sizes[2] + 1) * sizeof *ref);
    lz_window g = window_of(s, nsp, 0);
    double atol = tol * sqrt((double)(cg * s->kh * s->kw + s->n * oh * ow + 1));
    /* forward, through the public constructor when the padding is symmetric */
    lz_array *y;
    if (s->ph == s->qh && s->pw == s->qw) {
        int st[2] = {(int)s->sh, (int)s->sw}, pd[2] = {(int)s->ph, (int)s->pw};
        int dl[2] = {(int)s->dh, (int)s->dw};
        y = nsp == 2 ? lz_conv2d(x.a, w.a, st, pd, dl, (int)s->groups)
                     : lz_conv1d(x.a, w.a, st[1], pd[1], dl[1], (int)s->groups);
    } else {
        y = lz_window_node(LZ_P_CONV, &g, x.a, w.a);
    }
    if (!y) fail_msg("conv failed: %s", lz_error());
    assert_int_equal(lz_dtype_of(y), t);
    assert_memory_equal(lz_shape(y), ys, (size_t)(nsp + 2) * sizeof *ys);
    ref_conv(s, 0, x.v, w.v, NULL, ref);
    lz_stats_reset();
    assert_int_equal(lz_eval1(y), 0);
    if (t == LZ_F32)
        assert_int_equal(lz_stats().flops, (uint64_t)(2 * s->n * s->o * oh * ow * cg * s->kh * s->kw));
    t_assert_close(y, ref, dy.n, tol, atol);
    lz_release(y);
    /* input gradient (transposed convolution) */
    g.mode = LZ_WIN_INPUT_GRAD;
    lz_array *dx = lz_window_node(LZ_P_CONV, &g, dy.a, w.a);
    if (!dx) fail_msg("conv input grad failed: %s", lz_error());
    assert_memory_equal(lz_shape(dx), xs, (size_t)(nsp + 2) * sizeof *xs);
    ref_conv(s, 1, NULL, w.v, dy.v, ref);
    t_assert_close(dx, ref, x.n, tol, atol);
    lz_release(dx);
    /* weight gradient */
    g.mode = LZ_WIN_WEIGHT_GRAD;
    lz_array *dw = lz_window_node(LZ_P_CONV, &g, x.a, dy.a);
    if (!dw) fail_msg("conv weight grad failed: %s", lz_error());
    assert_memory_equal(lz_shape(dw), ws, (size_t)(nsp + 2) * sizeof *ws);
    ref_conv(s, 2, x.v, NULL, dy.v, ref);
    t_assert_close(dw, ref, w.n, tol, atol);
    lz_release(dw);
    free(ref);
    t_free(&x);
    t_free(&w);
    t_free(&dy);
}

/*        n  c  o  h  w  kh kw sh sw ph pw qh qw dh dw groups */
static const spec specs2[] = {
    {2, 3, 4, 7, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {2, 3, 4, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},     /* stride 2, padding 1 */
    {1, 2, 3, 9, 8, 3, 2, 1, 2, 0, 1, 0, 1, 2, 1, 1},     /* dilation, uneven kernel */
    {2, 6, 9, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3},     /* groups 3 */
    {3, 4, 4, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4},     /* depthwise */
    {2, 4, 8, 5, 5, 3, 3, 2, 1, 1, 2, 1, 2, 1, 2, 4},     /* depthwise x2, mixed */
    {4, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16}, /* depthwise: groups on threads */
    {9, 8, 16, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},  /* Winograd (forward, input grad) */
    {3, 9, 10, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* Winograd, odd sizes */
    {37, 8, 9, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* Winograd, blocks and a rest */
    {2, 8, 8, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},     /* Winograd, one pixel */
    {2, 8, 8, 3, 29, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* Winograd, 15 tiles a row */
    {2, 8, 8, 5, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* Winograd, rows past a vector */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* all ones */
    {2, 5, 3, 4, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* pointwise, small: im2col */
    {1, 3, 2, 48, 50, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},   /* pointwise, big: read directly */
    {2, 2, 3, 50, 45, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* one image per block */
    {37, 3, 5, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* 32 images per block + rest */
    {2, 3, 2, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1},     /* kernel 4 stride 3 */
    {2, 2, 2, 4, 4, 5, 5, 1, 1, 1, 1, 0, 2, 1, 1, 1},     /* kernel > input, asymmetric pad */
    {5, 1, 4, 10, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* one channel, "same" (MNIST conv1) */
    {2, 1, 3, 7, 37, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},    /* one channel: dilation, rows > 16 */
    {3, 1, 2, 6, 19, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1},    /* one channel 5x5 */
    {3, 2, 3, 9, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},     /* "same" with dilation 2 */
    {2, 3, 2, 6, 5, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1},     /* "same" 5x5 */
    {2, 3, 2, 6, 5, 2, 2, 1, 1, 0, 0, 1, 1, 1, 1, 1},     /* "same" by padding after only */
    {0, 2, 3, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* empty batch */
    {2, 0, 3, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* no input channels */
    {2, 3, 0, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* no filters */
};

static const spec specs1[] = {
    {2, 3, 4, 1, 11, 1, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {2, 3, 4, 1, 11, 1, 3, 1, 2, 0, 1, 0, 1, 1, 2, 1},
    {3, 6, 4, 1, 10, 1, 5, 1, 3, 0, 2, 0, 2, 1, 1, 2},
    {2, 4, 4, 1, 9, 1, 3, 1, 1, 0, 1, 0, 1, 1, 1, 4},     /* depthwise */
    {40, 2, 3, 1, 30, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
};

static void test_conv2d(void **state) {
    (void)state;
    uint64_t seed = 5;
    for (size_t i = 0; i < sizeof specs2 / sizeof *specs2; i++)
        for (int lx = T_CONTIG; lx <= T_TRANSPOSED; lx++)
            check_conv(&specs2[i], 2, lx, (lx + 1) % 3, LZ_F32, 1e-5, &seed);
}

static void test_conv1d(void **state) {
    (void)state;
    uint64_t seed = 6;
    for (size_t i = 0; i < sizeof specs1 / sizeof *specs1; i++)
        for (int lx = T_CONTIG; lx <= T_TRANSPOSED; lx++)
            check_conv(&specs1[i], 1, lx, (lx + 2) % 3, LZ_F32, 1e-5, &seed);
}

static void test_conv_half(void **state) {
    (void)state;
    uint64_t seed = 8;
    check_conv(&specs2[1], 2, T_CONTIG, T_CONTIG, LZ_F16, 1e-2, &seed);
    check_conv(&specs2[3], 2, T_STRIDED, T_CONTIG, LZ_BF16, 2e-2, &seed);
    check_conv(&specs1[1], 1, T_CONTIG, T_CONTIG, LZ_F16, 1e-2, &seed);
}

/* ---- pooling ---- */

typedef struct { int64_t n, c, h, w, kh, kw, sh, sw, ph, pw; } pspec;

/* mode 0: forward; 1: input gradient (max: dy at the argmax, avg: spread); 2 (max): gather. */
/* positive: max pool gradients (modes 1, 2) only through windows whose max is > 0 */
static void ref_pool(const pspec *s, int is_max, int mode, int count_pad, int positive,
                     const double *x, const double *v, double *out) {
    int64_t oh = out_len(s->h, s->ph, s->ph, s->kh, 1, s->sh);
    int64_t ow = out_len(s->w, s->pw, s->pw, s->kw, 1, s->sw);
    if (mode == 1) memset(out, 0, (size_t)(s->n * s->c * s->h * s->w) * sizeof *out);
    for (int64_t p = 0; p < s->n * s->c; p++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                double best = 0, sum = 0;
                int64_t arg = -1, cnt = 0;
                for (int64_t a = 0; a < s->kh; a++)
                    for (int64_t b = 0; b < s->kw; b++) {
                        int64_t ih = i * s->sh - s->ph + a, iw = j * s->sw - s->pw + b;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                        int64_t xi = (p * s->h + ih) * s->w + iw;
                        if (arg < 0 || x[xi] > best || (isnan(x[xi]) && !isnan(best))) {
                            best = x[xi];
                            arg = xi;
                        }
                        sum += x[xi];
                        cnt++;
                    }
                int64_t yi = (p * oh + i) * ow + j;
                double div = count_pad ? (double)(s->kh * s->kw) : (double)cnt;
                if (mode == 0) { out[yi] = is_max ? best : sum / div; continue; }
                bool on = !positive || best > 0;
                if (is_max && mode == 2) { out[yi] = on ? v[arg] : 0; continue; }
                if (is_max) { if (on) out[arg] += v[yi]; continue; }
                for (int64_t a = 0; a < s->kh; a++)
                    for (int64_t b = 0; b < s->kw; b++) {
                        int64_t ih = i * s->sh - s->ph + a, iw = j * s->sw - s->pw + b;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                        out[(p * s->h + ih) * s->w + iw] += v[yi] / div;
                    }
            }
}

static void check_pool(const pspec *s, int nsp, int layout, uint64_t *seed, int ties) {
    int64_t oh = out_len(s->h, s->ph, s->ph, s->kh, 1, s->sh);
    int64_t ow = out_len(s->w, s->pw, s->pw, s->kw, 1, s->sw);
    int64_t xs[4] = {s->n, s->c, s->h, s->w}, ys[4] = {s->n, s->c, oh, ow};
    if (nsp == 1) { xs[2] = s->w; ys[2] = ow; }
    /* ties: small integers make equal values in a window (the first must win) */
    tarr x = t_rand(nsp + 2, xs, LZ_F32, ties ? -2 : -1, ties ? 2 : 1, seed, layout);
    if (ties) {
        lz_array *f = lz_floor(x.a);
        lz_release(x.a);
        x.a = f;
        for (int64_t i = 0; i < x.n; i++) x.v[i] = floor(x.v[i]);
    }
    tarr dy = t_rand(nsp + 2, ys, LZ_F32, -1, 1, seed, layout);
    tarr h = t_rand(nsp + 2, xs, LZ_F32, -1, 1, seed, T_CONTIG);
    double *ref = malloc((size_t)(x.n + dy.n + 1) * sizeof *ref);
    int k[2] = {(int)s->kh, (int)s->kw}, st[2] = {(int)s->sh, (int)s->sw};
    int pd[2] = {(int)s->ph, (int)s->pw};
    for (int is_max = 0; is_max < 2; is_max++) {
        lz_array *y = nsp == 2 ? (is_max ? lz_max_pool2d : lz_avg_pool2d)(x.a, k, st, pd)
                               : (is_max ? lz_max_pool1d : lz_avg_pool1d)(x.a, k[1], st[1], pd[1]);
        if (!y) fail_msg("pool failed: %s", lz_error());
        assert_memory_equal(lz_shape(y), ys, (size_t)(nsp + 2) * sizeof *ys);
        ref_pool(s, is_max, 0, 1, 0, x.v, NULL, ref);
        t_assert_close(y, ref, dy.n, 1e-6, 1e-6);
        lz_release(y);
        lz_prim_id prim = is_max ? LZ_P_POOL_MAX : LZ_P_POOL_AVG;
        for (int count_pad = 0; count_pad < 2; count_pad++) {
            spec cs = {.n = s->n, .c = s->c, .o = s->c, .h = s->h, .w = s->w, .kh = s->kh,
                       .kw = s->kw, .sh = s->sh, .sw = s->sw, .ph = s->ph, .pw = s->pw,
                       .qh = s->ph, .qw = s->pw, .dh = 1, .dw = 1, .groups = 1};
            lz_window g = window_of(&cs, nsp, LZ_WIN_FORWARD);
            g.count_pad = count_pad;
            if (!is_max) {
                y = lz_window_node(prim, &g, x.a, NULL);
                ref_pool(s, 0, 0, count_pad, 0, x.v, NULL, ref);
                t_assert_close(y, ref, dy.n, 1e-6, 1e-6);
                lz_release(y);
            }
            g.mode = LZ_WIN_INPUT_GRAD;
            lz_array *dx = is_max ? lz_window_node(prim, &g, x.a, dy.a)
                                  : lz_window_node(prim, &g, dy.a, NULL);
            if (!dx) fail_msg("pool grad failed: %s", lz_error());
            assert_memory_equal(lz_shape(dx), xs, (size_t)(nsp + 2) * sizeof *xs);
            ref_pool(s, is_max, 1, count_pad, 0, x.v, dy.v, ref);
            t_assert_close(dx, ref, x.n, 1e-6, 1e-6);
            lz_release(dx);
            if (is_max) {
                g.mode = LZ_WIN_GATHER;
                lz_array *gh = lz_window_node(prim, &g, x.a, h.a);
                ref_pool(s, 1, 2, 1, 0, x.v, h.v, ref);
                t_assert_close(gh, ref, dy.n, 0, 0);
                lz_release(gh);
                /* through a relu: only windows whose max is > 0 */
                g.positive = 1;
                gh = lz_window_node(prim, &g, x.a, h.a);
                ref_pool(s, 1, 2, 1, 1, x.v, h.v, ref);
                t_assert_close(gh, ref, dy.n, 0, 0);
                lz_release(gh);
                g.mode = LZ_WIN_INPUT_GRAD;
                dx = lz_window_node(prim, &g, x.a, dy.a);
                ref_pool(s, 1, 1, 1, 1, x.v, dy.v, ref);
                t_assert_close(dx, ref, x.n, 1e-6, 1e-6);
                lz_release(dx);
            }
        }
    }
    free(ref);
    t_free(&x);
    t_free(&dy);
    t_free(&h);
}

static void test_pool(void **state) {
    (void)state;
    uint64_t seed = 9;
    static const pspec p2[] = {
        {2, 3, 6, 6, 2, 2, 2, 2, 0, 0},
        {2, 2, 7, 5, 2, 2, 2, 2, 0, 0},   /* 2x2 windows leave a row and a column out */
        {3, 4, 5, 6, 2, 2, 2, 2, 0, 0},
        {1, 2, 5, 37, 2, 2, 2, 2, 0, 0},  /* rows of 18 windows: more than a vector */
        {1, 2, 4, 64, 2, 2, 2, 2, 0, 0},  /* two full vectors */
        {2, 3, 7, 5, 3, 3, 2, 2, 1, 1},
        {1, 2, 5, 8, 3, 2, 1, 2, 1, 1},   /* overlapping windows */
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
        {2, 2, 9, 9, 3, 3, 3, 3, 0, 0},
        {0, 2, 4, 4, 2, 2, 2, 2, 0, 0},
    };
    static const pspec p1[] = {
        {2, 3, 1, 9, 1, 3, 1, 2, 0, 1},
        {2, 2, 1, 8, 1, 2, 1, 2, 0, 0},
        {1, 3, 1, 7, 1, 4, 1, 1, 0, 2},
    };
    for (size_t i = 0; i < sizeof p2 / sizeof *p2; i++)
        for (int l = T_CONTIG; l <= T_TRANSPOSED; l++) {
            check_pool(&p2[i], 2, l, &seed, 0);
            check_pool(&p2[i], 2, l, &seed, 1);
        }
    for (size_t i = 0; i < sizeof p1 / sizeof *p1; i++)
        for (int l = T_CONTIG; l <= T_TRANSPOSED; l++) check_pool(&p1[i], 1, l, &seed, 1);
    /* default stride (NULL / 0 = kernel) and NaN propagation */
    float v[8] = {1, NAN, 3, 4, 5, 6, 7, -8};
    lz_array *x = lz_from_data(v, 3, (int64_t[]){1, 1, 8}, LZ_F32);
    lz_array *y = lz_max_pool1d(x, 2, 0, 0);
    double r[4] = {NAN, 4, 6, 7};
    t_assert_close(y, r, 4, 0, 0);
    lz_release(y);
    lz_array *x2 = lz_reshape(x, 4, (int64_t[]){1, 1, 2, 4});
    y = lz_avg_pool2d(x2, (int[]){2, 2}, NULL, NULL);
    double r2[2] = {NAN, (3 + 4 + 7 - 8) / 4.0};
    t_assert_close(y, r2, 2, 1e-6, 1e-6);
    lz_release(y);
    lz_release(x2);
    lz_release(x);
}

/* The gradient of max_pool(relu(x)): relu's vjp folds its mask into the pool's input
 * gradient (the pool's `positive` mode). Checked against the chain written out here: the
 * cotangent goes to the first max of each window of relu(x), and only where x > 0 there. */
typedef struct { int k, st, pad; } relu_pool;

static int relu_pool_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    const relu_pool *c = ctx;
    int k[2] = {c->k, c->k}, st[2] = {c->st, c->st}, pd[2] = {c->pad, c->pad};
    out[0] = lz_max_pool2d(lz_relu(x[0]), k, st, pd);
    return out[0] ? 1 : -1;
}

static void test_relu_pool_grad(void **state) {
    (void)state;
    uint64_t seed = 13;
    static const relu_pool cases[] = {{2, 2, 0}, {3, 2, 1}, {3, 3, 0}};
    int64_t xs[4] = {2, 3, 9, 11};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int l = T_CONTIG; l <= T_TRANSPOSED; l++)
            for (int ties = 0; ties < 2; ties++) {
                const relu_pool *c = &cases[ci];
                pspec s = {2, 3, 9, 11, c->k, c->k, c->st, c->st, c->pad, c->pad};
                int64_t oh = out_len(9, c->pad, c->pad, c->k, 1, c->st);
                int64_t ow = out_len(11, c->pad, c->pad, c->k, 1, c->st);
                int64_t ys[4] = {2, 3, oh, ow};
                tarr x = t_rand(4, xs, LZ_F32, ties ? -2 : -1, ties ? 2 : 1, &seed, l);
                if (ties) {   /* whole numbers: zeros and equal values in windows */
                    lz_array *f = lz_floor(x.a);
                    lz_release(x.a);
                    x.a = f;
                    for (int64_t i = 0; i < x.n; i++) x.v[i] = floor(x.v[i]);
                }
                tarr r = t_rand(4, ys, LZ_F32, -1, 1, &seed, T_CONTIG);
                double *rx = malloc((size_t)x.n * sizeof *rx), *ref = malloc((size_t)x.n * sizeof *ref);
                for (int64_t i = 0; i < x.n; i++) rx[i] = x.v[i] > 0 ? x.v[i] : 0;
                ref_pool(&s, 1, 1, 1, 1, rx, r.v, ref);   /* into windows whose max is > 0 */
                lz_array *g = NULL;
                assert_int_equal(lz_vjp(relu_pool_fn, (void *)c, 1, &x.a, 1, &r.a, NULL, 0, &g), 1);
                t_assert_close(g, ref, x.n, 1e-6, 1e-6);
                lz_release(g);
                free(rx);
                free(ref);
                t_free(&x);
                t_free(&r);
            }
}

static void test_errors(void **state) {
    (void)state;
    lz_pool_push();
    lz_array *x = lz_zeros(4, (int64_t[]){2, 6, 5, 5}, LZ_F32);
    lz_array *w = lz_zeros(4, (int64_t[]){4, 3, 3, 3}, LZ_F32);
    lz_array *x3 = lz_zeros(3, (int64_t[]){2, 6, 5}, LZ_F32);
    lz_array *xi = lz_zeros(4, (int64_t[]){2, 6, 5, 5}, LZ_I32);
    int one[2] = {1, 1}, zero[2] = {0, 0}, two[2] = {2, 2};
    t_assert_error(lz_conv2d(x3, w, one, zero, one, 2), "conv2d: input must be [N, C, H, W], got float32[2,6,5]");
    t_assert_error(lz_conv2d(x, x3, one, zero, one, 2), "conv2d: weight must be [O, C/groups, kH, kW], got float32[2,6,5]");
    t_assert_error(lz_conv2d(x, w, one, zero, one, 4), "conv2d: input channels 6 are not divisible by groups 4");
    t_assert_error(lz_conv2d(x, lz_zeros(4, (int64_t[]){3, 3, 3, 3}, LZ_F32), one, zero, one, 3),
                   "conv2d: input float32[2,6,5,5] has 6 channels but weight float32[3,3,3,3] expects 3 * groups 3");
    t_assert_error(lz_conv2d(x, lz_zeros(4, (int64_t[]){4, 2, 3, 3}, LZ_F32), one, zero, one, 3),
                   "conv2d: output channels 4 are not divisible by groups 3");
    lz_array *wbig = lz_zeros(4, (int64_t[]){4, 3, 7, 3}, LZ_F32);
    t_assert_error(lz_conv2d(x, wbig, one, zero, one, 2), "conv2d: kernel extent 7 is larger than the padded input 5 along H");
    t_assert_error(lz_conv2d(x, w, one, zero, (int[]){1, 3}, 2), "conv2d: kernel extent 7 is larger than the padded input 5 along W");
    t_assert_error(lz_conv2d(x, w, zero, zero, one, 2), "conv2d: along H: kernel 3, stride 0");
    t_assert_error(lz_conv2d(x, w, one, zero, one, 0), "conv2d: groups must be >= 1");
    t_assert_error(lz_conv2d(xi, w, one, zero, one, 2), "conv2d: input must be a float array, got int32[2,6,5,5]");
    t_assert_error(lz_conv1d(x, w, 1, 0, 1, 1), "conv1d: input must be [N, C, W], got float32[2,6,5,5]");
    t_assert_error(lz_conv1d(x3, lz_zeros(3, (int64_t[]){4, 6, 9}, LZ_F32), 1, 1, 1, 1),
                   "conv1d: kernel extent 9 is larger than the padded input 7 along W");
    t_assert_error(lz_max_pool2d(x, (int[]){3, 3}, one, two), "max_pool2d: padding 2 is more than half the kernel 3 along H");
    t_assert_error(lz_avg_pool2d(x, (int[]){7, 1}, one, one), "avg_pool2d: padding 1 is more than half the kernel 1 along W");
    t_assert_error(lz_avg_pool2d(x, (int[]){8, 2}, one, one), "avg_pool2d: kernel extent 8 is larger than the padded input 7 along H");
    t_assert_error(lz_max_pool2d(x3, (int[]){2, 2}, NULL, NULL), "max_pool2d: input must be [N, C, H, W], got float32[2,6,5]");
    t_assert_error(lz_max_pool1d(x3, 9, 1, 1), "max_pool1d: kernel extent 9 is larger than the padded input 7 along W");
    t_assert_error(lz_max_pool2d(xi, (int[]){2, 2}, NULL, NULL), "max_pool2d: input must be a float array");
    t_assert_error(lz_max_pool2d(x, NULL, NULL, NULL), "max_pool2d: kernel size is NULL");
    t_assert_error(lz_conv2d(NULL, w, one, zero, one, 1), "");
    /* the patch matrix comes from the allocator: past the memory limit, eval fails cleanly */
    lz_array *xb = lz_ones(4, (int64_t[]){8, 4, 16, 16}, LZ_F32);
    lz_array *wb = lz_ones(4, (int64_t[]){8, 4, 3, 3}, LZ_F32);
    assert_int_equal(LZ_EVAL(xb, wb), 0);
    lz_array *yb = lz_conv2d(xb, wb, one, one, one, 1);
    lz_memory_clear_cache();
    t_mem_set_limit(t_mem().active + 100000);   /* the output fits, the patches not */
    assert_int_equal(lz_eval1(yb), -1);
    assert_non_null(strstr(lz_error(), "out of memory"));
    t_mem_set_limit(0);
    assert_int_equal(lz_eval1(yb), 0);
    assert_true(lz_item(yb) == 4 * 4);                   /* corner: 2x2 of 4 channels */
    lz_pool_pop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_conv_half),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_relu_pool_grad),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
