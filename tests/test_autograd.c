/* Autograd rules: every rule against finite differences (gradcheck.h), on random shapes with
 * broadcasting and non-contiguous inputs; exact checks where differences cannot see (ties,
 * zeros in a product); and rule coverage. The transforms themselves (gradients of gradients,
 * vjp, stop_gradient, errors, memory, training) are tested in test_autograd_transforms.c. */
#include "gradcheck.h"

/* ---- elementwise ---- */

/* the scalar-parameter forms, with scalars that are not powers of two */
static lz_array *affine_op(lz_array *x) { return lz_affine(x, -1.7, 0.3); }
static lz_array *axpby_op(lz_array *x, lz_array *y) { return lz_axpby(0.9, x, -2.3, y); }

static void test_unary(void **state) {
    (void)state;
    static const struct { const char *name; unary_op op; double lo, hi; int kind; } cases[] = {
        {"neg", lz_neg, -2, 2, GC_PLAIN}, {"abs", lz_abs, -2, 2, GC_KINK},
        {"sign", lz_sign, -2, 2, GC_KINK}, {"exp", lz_exp, -2, 2, GC_PLAIN},
        {"log", lz_log, 0.5, 3, GC_PLAIN}, {"log1p", lz_log1p, -0.5, 2, GC_PLAIN},
        {"expm1", lz_expm1, -2, 2, GC_PLAIN}, {"sqrt", lz_sqrt, 0.5, 3, GC_PLAIN},
        {"rsqrt", lz_rsqrt, 0.5, 3, GC_PLAIN}, {"square", lz_square, -2, 2, GC_PLAIN},
        {"sin", lz_sin, -3, 3, GC_PLAIN}, {"cos", lz_cos, -3, 3, GC_PLAIN},
        {"tanh", lz_tanh, -2, 2, GC_PLAIN}, {"sigmoid", lz_sigmoid, -3, 3, GC_PLAIN},
        {"relu", lz_relu, -2, 2, GC_KINK}, {"gelu", lz_gelu, -3, 3, GC_PLAIN},
        {"gelu_tanh", lz_gelu_tanh, -3, 3, GC_PLAIN}, {"silu", lz_silu, -3, 3, GC_PLAIN},
        {"softplus", lz_softplus, -3, 3, GC_PLAIN}, {"erf", lz_erf, -2, 2, GC_PLAIN},
        {"floor", lz_floor, -3, 3, GC_INT_STEP}, {"ceil", lz_ceil, -3, 3, GC_INT_STEP},
        {"round", lz_round, -3, 3, GC_HALF_STEP}, {"copy", lz_copy, -2, 2, GC_PLAIN},
        {"affine", affine_op, -2, 2, GC_PLAIN},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int k = 0; k < 3; k++) {
            int64_t shape[LZ_MAX_DIMS];
            int nd = gc_rshape(3, shape);
            lz_array *x = gc_rand(nd, shape, cases[c].lo, cases[c].hi, cases[c].kind, gc_layout_of(k));
            unary_op op = cases[c].op;
            gc_check(cases[c].name, unary_fn, &op, 1, &x, NULL);
            lz_release(x);
        }
}

static int binary_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = (*(binary_op *)ctx)(x[0], x[1]);
    return out[0] ? 1 : -1;
}

/* Broadcasting pairs, both operands differentiated. */
static const struct { int na, nb; int64_t a[3], b[3]; } pairs[] = {
    {2, 2, {3, 4}, {3, 4}}, {3, 1, {2, 3, 4}, {4}}, {2, 2, {3, 1}, {1, 4}},
    {0, 2, {0}, {2, 3}}, {3, 2, {2, 1, 3}, {4, 1}}, {1, 3, {1}, {2, 2, 3}},
};

static void test_binary(void **state) {
    (void)state;
    static const struct {
        const char *name; binary_op op; double alo, ahi, blo, bhi; int akind, bkind;
    } cases[] = {
        {"add", lz_add, -2, 2, -2, 2, GC_PLAIN, GC_PLAIN}, {"sub", lz_sub, -2, 2, -2, 2, GC_PLAIN, GC_PLAIN},
        {"mul", lz_mul, -2, 2, -2, 2, GC_PLAIN, GC_PLAIN}, {"div", lz_div, -2, 2, 0.5, 2, GC_PLAIN, GC_PLAIN},
        {"pow", lz_pow, 0.5, 2, -2, 2, GC_PLAIN, GC_PLAIN},
        {"maximum", lz_maximum, -2, 2, -2, 2, GC_GRID_OFF, GC_GRID},
        {"minimum", lz_minimum, -2, 2, -2, 2, GC_GRID, GC_GRID_OFF},
        {"axpby", axpby_op, -2, 2, -2, 2, GC_PLAIN, GC_PLAIN},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
            lz_array *x[2];
            x[0] = gc_rand(pairs[p].na, pairs[p].a, cases[c].alo, cases[c].ahi, cases[c].akind,
                       gc_layout_of((int)(c + p)));
            x[1] = gc_rand(pairs[p].nb, pairs[p].b, cases[c].blo, cases[c].bhi, cases[c].bkind,
                       gc_layout_of((int)(c + p + 1)));
            binary_op op = cases[c].op;
            gc_check(cases[c].name, binary_fn, &op, 2, x, NULL);
            lz_release(x[0]);
            lz_release(x[1]);
        }
}

static int where_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = lz_where((lz_array *)ctx, x[0], x[1]);
    return out[0] ? 1 : -1;
}

static void test_where(void **state) {
    (void)state;
    int64_t sc[2] = {3, 4}, sa[1] = {4}, sb[2] = {3, 1};
    lz_array *r = gc_rand(2, sc, -1, 1, GC_PLAIN, T_STRIDED), *zero = lz_scalar(0, LZ_F32);
    lz_array *c = lz_greater(r, zero);
    lz_release(r);
    lz_release(zero);
    lz_array *x[2] = {gc_rand(1, sa, -2, 2, GC_PLAIN, T_CONTIG), gc_rand(2, sb, -2, 2, GC_PLAIN, T_TRANSPOSED)};
    gc_check("where", where_fn, c, 2, x, NULL);
    lz_release(x[0]);
    lz_release(x[1]);
    lz_release(c);
}

/* cast: a float16 input read in float32, and float32 through bfloat16 and back. Values on a
 * 1/64 grid and a step of 1/16 keep every perturbed value exact in the narrow type. */
static int cast_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    lz_array *a = lz_mul_scalar(lz_astype(x[0], LZ_F32), 3);
    lz_array *b = lz_astype(lz_astype(x[1], LZ_BF16), LZ_F32);
    out[0] = lz_add(a, b);
    return out[0] ? 1 : -1;
}

static void test_cast(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3};
    double v[6], w[6];
    for (int i = 0; i < 6; i++) { v[i] = (i - 3) / 64.0 * 7; w[i] = (i + 1) / 64.0 * 5; }
    lz_array *h = gc_array_of(2, shape, LZ_F16, v);
    lz_array *x[2] = {h, gc_layout(w, 2, shape, T_TRANSPOSED)};
    gc_opts o = {.h = 1.0 / 16};
    gc_check("cast", cast_fn, NULL, 2, x, &o);
    /* the gradient of a float16 input is float16 */
    lz_array *g, *ones = lz_ones(2, shape, LZ_F32);
    unary_op ex = lz_exp;
    assert_int_equal(lz_vjp(unary_fn, &ex, 1, &h, 1, &ones, NULL, 0, &g), 1);
    assert_int_equal(lz_dtype_of(g), LZ_F16);
    lz_release(g);
    lz_release(ones);
    lz_release(x[0]);
    lz_release(x[1]);
}

/* ---- views ---- */
enum {
    V_TRANSPOSE, V_PERMUTE, V_RESHAPE, V_RESHAPE_COPY, V_EXPAND_SQUEEZE, V_BROADCAST,
    V_SLICE, V_SLICE_NEG, V_FLIP, V_SLICE_OF_SLICE, V_OF_EXP, V_BROADCAST_SLICE, V_SCALAR,
    V_COLUMN, NVIEWS
};

static int view_fn(void *ctx, int n, lz_array *const *xs, lz_array **out) {
    (void)n;
    lz_array *x = xs[0], *y = NULL;   /* x is [3, 4, 5] */
    int perm[3] = {2, 0, 1};
    int64_t r2[2] = {12, 5}, r3[3] = {5, 3, 4}, b4[4] = {2, 3, 4, 5};
    int64_t st[3] = {0, 1, 4}, sp[3] = {3, 4, 0}, step[3] = {2, 2, -2};
    switch (*(int *)ctx) {
    case V_TRANSPOSE: y = lz_transpose(x); break;
    case V_PERMUTE: y = lz_permute(x, perm); break;
    case V_RESHAPE: y = lz_reshape(x, 2, r2); break;
    case V_RESHAPE_COPY: y = lz_reshape(lz_transpose(x), 3, r3); break;
    case V_EXPAND_SQUEEZE: y = lz_squeeze(lz_expand_dims(lz_expand_dims(x, 1), 0), 0); break;
    case V_BROADCAST: y = lz_broadcast_to(x, 4, b4); break;
    case V_SLICE: y = lz_slice_axis(lz_slice_axis(x, 2, 1, 5, 3), 0, 1, 3, 1); break;
    case V_SLICE_NEG: y = lz_slice(x, st, sp, step); break;
    case V_FLIP: y = lz_flip(lz_flip(x, 1), -1); break;
    case V_SLICE_OF_SLICE: y = lz_slice_axis(lz_swapaxes(lz_slice_axis(x, 1, 1, 4, 1), 0, 2), 1, 2, 0, -1); break;
    case V_OF_EXP: y = lz_slice_axis(lz_transpose(lz_exp(x)), 1, 1, 4, 2); break;
    case V_BROADCAST_SLICE: y = lz_slice_axis(lz_broadcast_to(x, 4, b4), 0, 1, 2, 1); break;
    case V_SCALAR: y = lz_reshape(lz_slice(x, (int64_t[]){2, 3, 4}, (int64_t[]){3, 4, 5}, NULL), 0, NULL); break;
    case V_COLUMN: y = lz_slice_axis(lz_reshape(x, 2, r2), 1, 3, 4, 1); break;
    }
    out[0] = y;
    return y ? 1 : -1;
}

static void test_views(void **state) {
    (void)state;
    int64_t shape[3] = {3, 4, 5};
    for (int v = 0; v < NVIEWS; v++)
        for (int k = 0; k < 3; k++) {
            lz_array *x = gc_rand(3, shape, -1, 1, GC_PLAIN, gc_layout_of(k));
            char name[32];
            snprintf(name, sizeof name, "view case %d", v);
            gc_check(name, view_fn, &v, 1, &x, &(gc_opts){.max_elems = 16});
            lz_release(x);
        }
}

/* Random chains of view ops (a small program replayed on the traced input). */
enum { R_PERMUTE, R_SLICE, R_FLIP, R_EXPAND_BROADCAST, R_SPLIT, R_MERGE, R_SQUEEZE, NR };
typedef struct { int n; struct { int op, axis; int64_t a, b, c; int perm[LZ_MAX_DIMS]; } s[6]; } view_prog;

static lz_array *view_step(lz_array *y, int k, const view_prog *p) {
    int ax = p->s[k].axis, nd = lz_ndim(y);
    int64_t shape[LZ_MAX_DIMS];
    memcpy(shape, lz_shape(y), (size_t)nd * sizeof *shape);
    switch (p->s[k].op) {
    case R_PERMUTE: return lz_permute(y, p->s[k].perm);
    case R_SLICE: return lz_slice_axis(y, ax, p->s[k].a, p->s[k].b, p->s[k].c);
    case R_FLIP: return lz_flip(y, ax);
    case R_EXPAND_BROADCAST: {
        lz_array *e = lz_expand_dims(y, ax);
        int64_t bs[LZ_MAX_DIMS];
        memcpy(bs, lz_shape(e), sizeof bs);
        bs[ax] = p->s[k].a;
        return lz_broadcast_to(e, nd + 1, bs);
    }
    case R_SPLIT: {   /* axis of size a*b into (a, b) */
        int64_t ns[LZ_MAX_DIMS];
        int j = 0;
        for (int d = 0; d < nd; d++) {
            if (d == ax) { ns[j++] = p->s[k].a; ns[j++] = shape[d] / p->s[k].a; }
            else ns[j++] = shape[d];
        }
        return lz_reshape(y, nd + 1, ns);
    }
    case R_MERGE: return lz_flatten(y, ax, ax + 1);
    default: return lz_squeeze(y, ax);
    }
}

static int view_prog_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    const view_prog *p = ctx;
    lz_array *y = x[0];
    for (int k = 0; k < p->n && y; k++) y = view_step(y, k, p);
    out[0] = y;
    return y ? 1 : -1;
}

/* Draws a valid step for an array of shape (nd, shape); returns 0 if none fits. */
static int draw_step(view_prog *p, int k, int nd, const int64_t *shape) {
    for (int tries = 0; tries < 20; tries++) {
        int op = (int)t_uniform(&gc_seed_state, 0, NR);
        int ax = nd ? (int)t_uniform(&gc_seed_state, 0, nd) : 0;
        p->s[k].op = op;
        p->s[k].axis = ax;
        switch (op) {
        case R_PERMUTE:
            if (nd < 2) continue;
            for (int d = 0; d < nd; d++) p->s[k].perm[d] = d;
            for (int d = nd - 1; d > 0; d--) {
                int j = (int)t_uniform(&gc_seed_state, 0, d + 1), t = p->s[k].perm[d];
                p->s[k].perm[d] = p->s[k].perm[j];
                p->s[k].perm[j] = t;
            }
            return 1;
        case R_SLICE: {
            if (!nd || shape[ax] < 2) continue;
            static const int64_t steps[] = {1, 2, 3, -1, -2};
            int64_t st = steps[(int)t_uniform(&gc_seed_state, 0, 5)];
            int64_t a = (int64_t)t_uniform(&gc_seed_state, 0, (double)shape[ax]);
            p->s[k].a = a;
            p->s[k].b = st > 0 ? shape[ax] : (a > 0 ? a - shape[ax] - 1 : INT64_MIN);
            if (st < 0) p->s[k].b = INT64_MIN;
            p->s[k].c = st;
            return 1;
        }
        case R_FLIP: if (!nd) continue; return 1;
        case R_EXPAND_BROADCAST:
            if (nd >= 5) continue;
            p->s[k].axis = (int)t_uniform(&gc_seed_state, 0, nd + 1);
            p->s[k].a = 1 + (int64_t)t_uniform(&gc_seed_state, 0, 3);
            return 1;
        case R_SPLIT:
            if (!nd || nd >= 5 || shape[ax] < 4 || shape[ax] % 2) continue;
            p->s[k].a = 2;
            return 1;
        case R_MERGE: if (nd < 2 || ax == nd - 1) continue; return 1;
        default: if (!nd || shape[ax] != 1) continue; return 1;
        }
    }
    return 0;
}

static void test_views_random(void **state) {
    (void)state;
    int64_t shape[3] = {4, 3, 6};
    for (int trial = 0; trial < 40; trial++) {
        lz_array *x = gc_rand(3, shape, -1, 1, GC_PLAIN, gc_layout_of(trial));
        view_prog p = {0};
        lz_array *y = lz_retain(x);
        while (p.n < 4) {
            if (!draw_step(&p, p.n, lz_ndim(y), lz_shape(y))) break;
            lz_pool_push();
            lz_array *z = lz_retain(view_step(y, p.n, &p));
            lz_pool_pop();
            assert_non_null(z);
            lz_release(y);
            y = z;
            p.n++;
        }
        lz_release(y);
        char name[32];
        snprintf(name, sizeof name, "view program %d", trial);
        gc_check(name, view_prog_fn, &p, 1, &x, &(gc_opts){.max_elems = 12});
        lz_release(x);
    }
}

/* A broadcast (stride 0) input: its elements are still independent variables. */
static int weighted_sum(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = lz_sum(lz_mul(x[0], (lz_array *)ctx), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static void test_broadcast_input(void **state) {
    (void)state;
    int64_t s1[2] = {1, 3}, s2[2] = {4, 3};
    double v[3] = {1, 2, 3}, w[12];
    for (int i = 0; i < 12; i++) w[i] = i - 5.5;
    lz_array *base = gc_layout(v, 2, s1, T_CONTIG), *x = lz_broadcast_to(base, 2, s2);
    lz_array *c = gc_layout(w, 2, s2, T_CONTIG), *g;
    assert_int_equal(lz_grad(weighted_sum, c, 1, &x, NULL, &g), 0);
    t_assert_close(g, w, 12, 0, 0);
    lz_release(g);
    lz_release(x);
    lz_release(base);
    lz_release(c);
}

/* ---- reductions ---- */
typedef struct { int prim; int axes[3]; int naxes, keepdims; } red_case;

static int reduce_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    red_case *r = ctx;
    lz_array *(*f[])(lz_array *, const int *, int, int) = {lz_sum, lz_prod, lz_max, lz_min,
                                                           lz_mean, lz_logsumexp};
    if (r->prim < 6) out[0] = f[r->prim](x[0], r->axes, r->naxes, r->keepdims);
    else out[0] = lz_var(x[0], r->axes, r->naxes, r->keepdims, 1);
    return out[0] ? 1 : -1;
}

static void test_reductions(void **state) {
    (void)state;
    static const char *names[] = {"sum", "prod", "max", "min", "mean", "logsumexp", "var"};
    int64_t shape[3] = {3, 4, 2};
    const red_case axes[] = {{0, {0}, 0, 0}, {0, {1}, 1, 0}, {0, {0, 2}, 2, 1}, {0, {-1}, 1, 1}};
    for (int p = 0; p < 7; p++)
        for (size_t a = 0; a < sizeof axes / sizeof *axes; a++) {
            red_case r = axes[a];
            r.prim = p;
            int kind = p == 2 || p == 3 ? GC_DISTINCT : p == 1 ? GC_KINK : GC_PLAIN;
            lz_array *x = gc_rand(3, shape, p == 1 ? 0.5 : -1.2, p == 1 ? 1.5 : 1.2, kind,
                              gc_layout_of(p + (int)a));
            gc_check(names[p], reduce_fn, &r, 1, &x, &(gc_opts){.max_elems = 24});
            lz_release(x);
        }
}

/* Ties and zeros, where finite differences cannot tell: exact expected gradients. */
static void test_ties_and_zeros(void **state) {
    (void)state;
    int64_t s[2] = {2, 3};
    red_case r = {2, {1}, 1, 0};   /* max over axis 1 */
    double v[6] = {1, 3, 3, 2, 2, 2}, gmax[6] = {0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    lz_array *x = gc_layout(v, 2, s, T_STRIDED);
    lz_array *cts = lz_ones(1, (int64_t[]){2}, LZ_F32);
    lz_array *gv[1], *outs[1];
    assert_int_equal(lz_vjp(reduce_fn, &r, 1, &x, 1, &cts, outs, 1, gv), 1);
    t_assert_close(gv[0], gmax, 6, 1e-6, 1e-7);
    lz_release(gv[0]);
    lz_release(outs[0]);
    /* maximum(a, b) with a == b: half each */
    binary_op mx = lz_maximum;
    lz_array *ab[2] = {x, x}, *g2[2], *ones6 = lz_ones(2, s, LZ_F32);
    assert_int_equal(lz_vjp(binary_fn, &mx, 2, ab, 1, &ones6, NULL, 0, g2), 1);
    double half[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    t_assert_close(g2[0], half, 6, 0, 0);
    t_assert_close(g2[1], half, 6, 0, 0);
    lz_release(g2[0]);
    lz_release(g2[1]);
    /* prod with one zero and with two zeros in a row */
    red_case pr = {1, {1}, 1, 0};
    double z[6] = {2, 0, 5, 0, 3, 0}, gz[6] = {0, 10, 0, 0, 0, 0};
    lz_array *xz = gc_layout(z, 2, s, T_TRANSPOSED), *gp[1];
    assert_int_equal(lz_vjp(reduce_fn, &pr, 1, &xz, 1, &cts, NULL, 0, gp), 1);
    t_assert_close(gp[0], gz, 6, 0, 0);
    lz_release(gp[0]);
    lz_release(xz);
    lz_release(ones6);
    lz_release(cts);
    lz_release(x);
}

/* ---- indexing, joining, sorting, scans ---- */
enum { I_TAKE0, I_TAKE1, I_ALONG, I_ALONG_BCAST, I_SCATTER, I_SCATTER_ALONG, I_CONCAT, I_PAD,
       I_SORT, I_SORT0, I_CUMSUM, I_CUMSUM_REV, I_TILE, I_REPEAT, I_STACK, I_TOPK, NINDEX };

typedef struct { int which; lz_array *i5, *i22, *i32; } index_ctx;

static int index_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    index_ctx *c = ctx;
    lz_array *y = NULL;
    switch (c->which) {
    case I_TAKE0: y = lz_take(x[0], c->i5, 0); break;                      /* [4,3] -> [5,3] */
    case I_TAKE1: y = lz_take(x[0], c->i22, 1); break;                     /* -> [4,2,2] */
    case I_ALONG: y = lz_take_along_axis(lz_transpose(x[0]), c->i32, 1); break;   /* [3,4] */
    case I_ALONG_BCAST: y = lz_take_along_axis(lz_slice_axis(lz_transpose(x[0]), 0, 1, 2, 1), c->i32, 1); break;
    case I_SCATTER: y = lz_scatter_add(x[0], c->i5, x[1], 0); break;       /* u [5,3] */
    case I_SCATTER_ALONG: y = lz_scatter_add(lz_transpose(x[0]), c->i32, x[2], 1); break;
    case I_CONCAT: y = lz_concatenate(3, x, 1); break;                     /* [4,3],[4,1],[4,2] */
    case I_PAD: y = lz_pad(x[0], (int64_t[]){1, 0, 2, 1}, 0.5); break;
    case I_SORT: y = lz_sort(x[0], -1); break;
    case I_SORT0: y = lz_sort(lz_transpose(x[0]), 0); break;
    case I_CUMSUM: y = lz_cumsum(x[0], 1, 0); break;
    case I_CUMSUM_REV: y = lz_cumsum(x[0], 0, 1); break;
    case I_TILE: y = lz_tile(x[0], (int64_t[]){2, 3}); break;
    case I_REPEAT: y = lz_repeat(lz_transpose(x[0]), 2, 1); break;
    case I_STACK: y = lz_stack(2, (lz_array *[]){x[0], lz_exp(x[0])}, 1); break;
    case I_TOPK: if (lz_topk(x[0], 2, 1, &y, NULL)) y = NULL; break;
    }
    out[0] = y;
    return y ? 1 : -1;
}

static lz_array *ints(int ndim, const int64_t *shape, const int64_t *v) {
    return lz_from_data(v, ndim, shape, LZ_I64);
}

static void test_index_rules(void **state) {
    (void)state;
    index_ctx c;
    c.i5 = ints(1, (int64_t[]){5}, (int64_t[]){0, 3, -1, 1, 0});      /* repeats, negative */
    c.i22 = ints(2, (int64_t[]){2, 2}, (int64_t[]){2, 0, 0, -2});
    c.i32 = ints(2, (int64_t[]){3, 2}, (int64_t[]){3, 0, 1, 1, -1, 2});
    int64_t s43[2] = {4, 3}, s53[2] = {5, 3}, s32[2] = {3, 2}, s41[2] = {4, 1}, s42[2] = {4, 2};
    for (int k = 0; k < NINDEX; k++)
        for (int l = 0; l < 2; l++) {
            int sorted = k == I_SORT || k == I_SORT0 || k == I_TOPK;
            lz_array *x[3] = {gc_rand(2, s43, -1, 1, sorted ? GC_DISTINCT : GC_PLAIN, gc_layout_of(k + l)),
                              NULL, NULL};
            int n = 1;
            if (k == I_SCATTER) { x[1] = gc_rand(2, s53, -1, 1, GC_PLAIN, gc_layout_of(l + 1)); n = 2; }
            if (k == I_SCATTER_ALONG) { x[1] = lz_zeros(0, NULL, LZ_F32); x[2] = gc_rand(2, s32, -1, 1, GC_PLAIN, gc_layout_of(l)); n = 3; }
            if (k == I_CONCAT) {
                x[1] = gc_rand(2, s41, -1, 1, GC_PLAIN, gc_layout_of(l + 1));
                x[2] = gc_rand(2, s42, -1, 1, GC_PLAIN, gc_layout_of(l + 2));
                n = 3;
            }
            c.which = k;
            char name[32];
            snprintf(name, sizeof name, "index case %d", k);
            gc_check(name, index_fn, &c, n, x, NULL);
            for (int i = 0; i < 3; i++) lz_release(x[i]);
        }
    lz_release(c.i5);
    lz_release(c.i22);
    lz_release(c.i32);
}

/* ---- matmul, nn kernels, convolution and pooling ---- */

enum { K_MATMUL, K_MATMUL_BATCH, K_VEC_MAT, K_MATMUL_T, K_MAT_VEC, K_SOFTMAX, K_SOFTMAX0, K_LOG_SOFTMAX,
       K_LAYER_NORM, K_LAYER_NORM_PLAIN, K_RMS_NORM, K_RMS_NORM_PLAIN, K_ATTENTION,
       K_ATTENTION_CAUSAL, K_ATTENTION_NO_KEYS, K_ATTENTION_LSE, K_CONV1D, K_CONV2D,
       K_CONV2D_GROUPS, K_MAX_POOL2D, K_AVG_POOL2D, K_MAX_POOL1D, K_AVG_POOL1D, NKERNELS };

static const struct { int n; int nd[3]; int64_t s[3][4]; int kind; } kernel_inputs[NKERNELS] = {
    [K_MATMUL] = {2, {2, 2}, {{3, 4}, {4, 2}}},
    [K_MATMUL_BATCH] = {2, {3, 2}, {{2, 3, 4}, {4, 5}}},
    [K_VEC_MAT] = {2, {1, 3}, {{4}, {2, 4, 3}}},
    [K_MAT_VEC] = {2, {2, 1}, {{3, 4}, {4}}},
    [K_MATMUL_T] = {2, {3, 2}, {{2, 4, 3}, {4, 5}}},
    [K_SOFTMAX] = {1, {2}, {{3, 5}}}, [K_SOFTMAX0] = {1, {3}, {{3, 2, 2}}},
    [K_LOG_SOFTMAX] = {1, {2}, {{4, 3}}},
    [K_LAYER_NORM] = {3, {2, 1, 1}, {{3, 5}, {5}, {5}}},
    [K_LAYER_NORM_PLAIN] = {1, {3}, {{2, 2, 4}}},
    [K_RMS_NORM] = {2, {2, 1}, {{3, 5}, {5}}}, [K_RMS_NORM_PLAIN] = {1, {1}, {{6}}},
    [K_ATTENTION] = {3, {3, 3, 2}, {{2, 3, 4}, {2, 5, 4}, {5, 3}}},
    [K_ATTENTION_CAUSAL] = {3, {3, 3, 3}, {{2, 4, 3}, {1, 5, 3}, {2, 5, 2}}},
    [K_ATTENTION_NO_KEYS] = {3, {2, 2, 2}, {{5, 3}, {3, 3}, {3, 2}}},
    [K_ATTENTION_LSE] = {3, {2, 2, 2}, {{3, 4}, {4, 4}, {4, 2}}},
    [K_CONV1D] = {2, {3, 3}, {{2, 3, 7}, {4, 3, 3}}},
    [K_CONV2D] = {2, {4, 4}, {{1, 2, 5, 6}, {3, 2, 3, 2}}},
    [K_CONV2D_GROUPS] = {2, {4, 4}, {{2, 4, 4, 4}, {2, 2, 2, 2}}},
    [K_MAX_POOL2D] = {1, {4}, {{1, 2, 5, 4}}, GC_DISTINCT},
    [K_AVG_POOL2D] = {1, {4}, {{2, 1, 5, 4}}},
    [K_MAX_POOL1D] = {1, {3}, {{2, 2, 7}}, GC_DISTINCT},
    [K_AVG_POOL1D] = {1, {3}, {{1, 3, 6}}},
};

static int kernel_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    lz_array *y = NULL;
    switch (*(int *)ctx) {
    case K_MATMUL: case K_MATMUL_BATCH: case K_VEC_MAT: case K_MAT_VEC: y = lz_matmul(x[0], x[1]); break;
    case K_MATMUL_T: y = lz_matmul(lz_swapaxes(x[0], -1, -2), x[1]); break;   /* a read transposed */
    case K_SOFTMAX: y = lz_softmax(x[0], -1); break;
    case K_SOFTMAX0: y = lz_softmax(x[0], 0); break;
    case K_LOG_SOFTMAX: y = lz_log_softmax(x[0], 1); break;
    case K_LAYER_NORM: y = lz_layer_norm(x[0], x[1], x[2], 1e-5); break;
    case K_LAYER_NORM_PLAIN: y = lz_layer_norm(x[0], NULL, NULL, 1e-5); break;
    case K_RMS_NORM: y = lz_rms_norm(x[0], x[1], 1e-5); break;
    case K_RMS_NORM_PLAIN: y = lz_rms_norm(x[0], NULL, 1e-5); break;
    case K_ATTENTION: y = lz_attention(x[0], x[1], x[2], 0, 0); break;
    case K_ATTENTION_CAUSAL: y = lz_attention(x[0], x[1], x[2], 0.7, 1); break;
    case K_ATTENTION_NO_KEYS: y = lz_attention(x[0], x[1], x[2], 0, 1); break;
    case K_ATTENTION_LSE: y = lz_attention_lse(x[0], x[1], x[2], 0, 1); break;
    case K_CONV1D: y = lz_conv1d(x[0], x[1], 2, 1, 2, 1); break;
    case K_CONV2D: y = lz_conv2d(x[0], x[1], (int[]){1, 2}, (int[]){1, 0}, (int[]){2, 1}, 1); break;
    case K_CONV2D_GROUPS: y = lz_conv2d(x[0], x[1], NULL, (int[]){1, 1}, NULL, 2); break;
    case K_MAX_POOL2D: y = lz_max_pool2d(x[0], (int[]){2, 3}, (int[]){2, 1}, (int[]){1, 1}); break;
    case K_AVG_POOL2D: y = lz_avg_pool2d(x[0], (int[]){3, 2}, NULL, (int[]){1, 0}); break;
    case K_MAX_POOL1D: y = lz_max_pool1d(x[0], 3, 2, 1); break;
    case K_AVG_POOL1D: y = lz_avg_pool1d(x[0], 2, 1, 1); break;
    }
    out[0] = y;
    return y ? 1 : -1;
}

/* The gradient of an inner function w.r.t. its input `which`, under a fixed cotangent: its
 * gradcheck exercises the rules of the backward nodes (gradients of gradients). */
typedef struct { lz_fn f; void *ctx; lz_array *ct; int which; } second;

static int grad_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    second *s = ctx;
    lz_array *g[3] = {NULL, NULL, NULL};
    if (lz_vjp(s->f, s->ctx, n, x, 1, &s->ct, NULL, 0, g) < 0) return -1;
    out[0] = g[s->which];
    return 1;
}

/* (x, c) -> the vjp of the one-input function in->f at x with cotangent c */
typedef struct { lz_fn f; void *ctx; } inner;

static int vjp_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    const inner *in = ctx;
    lz_array *g;
    if (lz_vjp(in->f, in->ctx, 1, x, 1, &x[1], NULL, 0, &g) < 0) return -1;
    out[0] = g;
    return 1;
}

/* gelu's float32 vjp is one GELU_GRAD node (x, c) -> c gelu'(x): its own rule, checked
 * through that vjp */
static int gelu_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)ctx; (void)n;
    out[0] = lz_gelu(x[0]);
    return out[0] ? 1 : -1;
}

/* packed self-attention (ATTENTION_QKV) and its fused backward (ATTENTION_QKV_GRAD),
 * checked through the vjp as gelu's: 2 heads of size 3, causal or not */
static int qkv_attention_fn(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    out[0] = lz_attention_qkv(x[0], 2, 0, *(const int *)ctx);
    return out[0] ? 1 : -1;
}

static void test_packed_attention_nodes(void **state) {
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        int64_t s[3] = {2, 4, 18}, sd[3] = {2, 4, 6};
        lz_array *x[2] = {gc_rand(3, s, -1, 1, GC_PLAIN, causal ? T_TRANSPOSED : T_CONTIG),
                          gc_rand(3, sd, -1, 1, GC_PLAIN, T_STRIDED)};
        gc_check("attention_qkv", qkv_attention_fn, &causal, 1, x, NULL);
        inner in = {qkv_attention_fn, &causal};
        gc_check("attention_qkv_grad", vjp_fn, &in, 2, x, NULL);
        lz_release(x[0]);
        lz_release(x[1]);
    }
}

static void test_gelu_grad_node(void **state) {
    (void)state;
    int64_t s[2] = {5, 7};
    lz_array *x[2] = {gc_rand(2, s, -3, 3, GC_PLAIN, T_STRIDED), gc_rand(2, s, -2, 2, GC_PLAIN, T_CONTIG)};
    inner in = {gelu_fn, NULL};
    gc_check("gelu_grad", vjp_fn, &in, 2, x, NULL);
    lz_release(x[0]);
    lz_release(x[1]);
}

static void test_kernel_rules(void **state) {
    (void)state;
    for (int k = 0; k < NKERNELS; k++) {
        lz_array *x[3] = {NULL, NULL, NULL};
        for (int i = 0; i < kernel_inputs[k].n; i++)
            x[i] = gc_rand(kernel_inputs[k].nd[i], kernel_inputs[k].s[i], -1.5, 1.5,
                           kernel_inputs[k].kind, gc_layout_of(k + i));
        char name[48];
        snprintf(name, sizeof name, "kernel case %d", k);
        gc_check(name, kernel_fn, &k, kernel_inputs[k].n, x, &(gc_opts){.max_elems = 24});
        /* second order: the vjp itself, w.r.t. every input (conv: its two other modes) */
        lz_array *y;
        lz_pool_push();
        assert_int_equal(kernel_fn(&k, kernel_inputs[k].n, x, &y), 1);
        lz_array *ct = gc_rand(lz_ndim(y), lz_shape(y), -1, 1, GC_PLAIN, T_CONTIG);
        lz_pool_pop();
        bool smooth = kernel_inputs[k].kind != GC_DISTINCT;   /* max pool: piecewise linear */
        for (int i = 0; i < kernel_inputs[k].n && smooth; i++) {
            second s = {kernel_fn, &k, ct, i};
            snprintf(name, sizeof name, "kernel case %d, d/d input %d", k, i);
            gc_check(name, grad_fn, &s, kernel_inputs[k].n, x, &(gc_opts){.h = 2e-3, .max_elems = 12});
        }
        if (!smooth) {   /* max pool's INPUT_GRAD and GATHER modes, through the cotangent */
            lz_array *xc[2] = {x[0], ct}, *ct2 = gc_rand(lz_ndim(x[0]), lz_shape(x[0]), -1, 1,
                                                         GC_PLAIN, T_CONTIG);
            snprintf(name, sizeof name, "kernel case %d, vjp", k);
            inner in = {kernel_fn, &k};
            gc_check(name, vjp_fn, &in, 2, xc, NULL);
            second s = {vjp_fn, &in, ct2, 1};
            snprintf(name, sizeof name, "kernel case %d, vjp of vjp", k);
            gc_check(name, grad_fn, &s, 2, xc, NULL);
            lz_release(ct2);
        }
        lz_release(ct);
        for (int i = 0; i < 3; i++) lz_release(x[i]);
    }
}

/* ---- coverage: every differentiable primitive has a rule that passed a gradient check ---- */
static void test_rule_coverage(void **state) {
    (void)state;
    lz_autograd_init();
    int missing = 0;
    for (int p = 0; p < LZ_NPRIMS; p++)
        if ((lz_prims[p].flags & LZ_FLAG_DIFF) && !lz_prims[p].vjp) {
            printf("differentiable primitive %s has no vjp rule\n", lz_prims[p].name);
            missing++;
        }
    for (int p = 0; p < LZ_NPRIMS; p++) {
        if (!(lz_prims[p].flags & LZ_FLAG_DIFF) || !lz_prims[p].vjp || gc_covered[p]) continue;
        printf("primitive %s has a vjp rule but no gradient check\n", lz_prims[p].name);
        missing++;
    }
    for (int p = 0; p < LZ_NPRIMS; p++)   /* rules only on differentiable primitives */
        if (!(lz_prims[p].flags & LZ_FLAG_DIFF) && lz_prims[p].vjp) {
            printf("primitive %s is not differentiable but has a rule\n", lz_prims[p].name);
            missing++;
        }
    printf("%d gradient checks passed\n", gc_checks_run);
    assert_int_equal(missing, 0);
}

/* Each test draws from its own fixed stream (gc_reseed; GC_SEED in the environment picks
 * another), so adding a test does not change the data of the others. */
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unary, gc_reseed),
        cmocka_unit_test_setup(test_binary, gc_reseed),
        cmocka_unit_test_setup(test_where, gc_reseed),
        cmocka_unit_test_setup(test_gelu_grad_node, gc_reseed),
        cmocka_unit_test_setup(test_packed_attention_nodes, gc_reseed),
        cmocka_unit_test_setup(test_cast, gc_reseed),
        cmocka_unit_test_setup(test_views, gc_reseed),
        cmocka_unit_test_setup(test_views_random, gc_reseed),
        cmocka_unit_test_setup(test_broadcast_input, gc_reseed),
        cmocka_unit_test_setup(test_reductions, gc_reseed),
        cmocka_unit_test_setup(test_ties_and_zeros, gc_reseed),
        cmocka_unit_test_setup(test_index_rules, gc_reseed),
        cmocka_unit_test_setup(test_kernel_rules, gc_reseed),
        cmocka_unit_test_setup(test_rule_coverage, gc_reseed),   /* last: reads what the others covered */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
