/* Optimizers. Every optimizer is checked over several steps of a fixed problem against a
 * float64 re-implementation, written here, of the rule published in the torch.optim
 * documentation (Lion: its paper), weight decay and momentum variants included; state is
 * checked by name, and must survive a save/restore round trip bit for bit. Schedules and
 * clipping are in test_schedule.c. */
#include "testutil.h"
#include "optim/optim.h"
#include "optim_testutil.h"

/* ---- helpers ---- */

static void readd(lz_array *a, double *out) {
    int64_t n = lz_size(a);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    assert_int_equal(lz_to_float(a, f, n), 0);
    for (int64_t i = 0; i < n; i++) out[i] = f[i];
    free(f);
}

/* New reference to the state entry called name, or NULL. */
static lz_array *state_get(lz_optim *o, const char *name) {
    for (int i = 0; i < lz_optim_state_count(o); i++)
        if (!strcmp(lz_optim_state_name(o, i), name)) return lz_optim_state_array(o, i);
    return NULL;
}

/* ---- the reference: torch.optim's documented algorithms, in double ---- */

static const char *const ref_names[LZ_OPTIM_NKINDS][3] = {
    [LZ_SGD] = {"momentum_buffer"},
    [LZ_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [LZ_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [LZ_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [LZ_ADAGRAD] = {"sum"},
    [LZ_LION] = {"exp_avg"},
};

static bool ref_used(const lz_optim_config *c, int k) {
    switch (c->kind) {
    case LZ_SGD: return k == 0 && c->momentum != 0;
    case LZ_ADAM: case LZ_ADAMW: return k < 2 || (k == 2 && c->amsgrad);
    case LZ_RMSPROP: return k == 0 || (k == 1 && c->momentum > 0) || (k == 2 && c->centered);
    default: return k == 0;
    }
}

typedef struct {
    int64_t n, t;
    double *p, *b[3];     /* buffers named ref_names[kind][k] */
} ref_param;

static void ref_init(ref_param *r, const lz_optim_config *c, const double *p, int64_t n) {
    r->n = n;
    r->t = 0;
    r->p = malloc((size_t)n * sizeof(double));
    memcpy(r->p, p, (size_t)n * sizeof(double));
    for (int k = 0; k < 3; k++) {
        r->b[k] = calloc((size_t)n, sizeof(double));          /* PyTorch: zeros */
        if (c->kind == LZ_ADAGRAD)
            for (int64_t i = 0; i < n; i++) r->b[k][i] = c->initial_accumulator_value;
    }
}

static void ref_free(ref_param *r) {
    free(r->p);
    for (int k = 0; k < 3; k++) free(r->b[k]);
}

static double sgn(double x) { return (x > 0) - (x < 0); }

static void ref_step(const lz_optim_config *c, double lr, ref_param *r, const double *grad) {
    r->t++;
    double t = (double)r->t, wd = c->weight_decay, b1 = c->betas[0], b2 = c->betas[1];
    for (int64_t i = 0; i < r->n; i++) {
        double p = r->p[i], g = grad[i], *m = &r->b[0][i], *v = &r->b[1][i], *w = &r->b[2][i];
        switch (c->kind) {
        case LZ_SGD:
            if (wd) g += wd * p;
            if (c->momentum) {
                *m = r->t > 1 ? c->momentum * *m + (1 - c->dampening) * g : g;
                g = c->nesterov ? g + c->momentum * *m : *m;
            }
            p -= lr * g;
            break;
        case LZ_ADAM: case LZ_ADAMW: {
            if (c->kind == LZ_ADAMW) p -= lr * wd * p;
            else if (wd) g += wd * p;
            *m = b1 * *m + (1 - b1) * g;
            *v = b2 * *v + (1 - b2) * g * g;
            double mhat = *m / (1 - pow(b1, t)), vhat;
            if (c->amsgrad) { *w = fmax(*w, *v); vhat = *w / (1 - pow(b2, t)); }
            else vhat = *v / (1 - pow(b2, t));
            p -= lr * mhat / (sqrt(vhat) + c->eps);
            break;
        }
        case LZ_RMSPROP: {
            double a = c->alpha, *ga = w, *buf = v, *sq = m;
            if (wd) g += wd * p;
            *sq = a * *sq + (1 - a) * g * g;
            double vt = *sq;
            if (c->centered) { *ga = a * *ga + (1 - a) * g; vt -= *ga * *ga; }
            if (c->momentum > 0) { *buf = c->momentum * *buf + g / (sqrt(vt) + c->eps); p -= lr * *buf; }
            else p -= lr * g / (sqrt(vt) + c->eps);
            break;
        }
        case LZ_ADAGRAD: {
            double clr = lr / (1 + (t - 1) * c->lr_decay);
            if (wd) g += wd * p;
            *m += g * g;
            p -= clr * g / (sqrt(*m) + c->eps);
            break;
        }
        case LZ_LION: {
            double cc = b1 * *m + (1 - b1) * g;
            p -= lr * (sgn(cc) + wd * p);
            *m = b2 * *m + (1 - b2) * g;
            break;
        }
        default: fail();
        }
        r->p[i] = p;
    }
}

/* ---- the fixed problem: f(p) = 1/2 sum a (p - c)^2, two parameters ---- */

#define NPARAM 2
static const char *const pnames[NPARAM] = {"layer.weight", "layer.bias"};
static const int64_t pshape[NPARAM][2] = {{3, 5}, {7, 0}};
static const int pndim[NPARAM] = {2, 1};

typedef struct {
    lz_array *p[NPARAM];
    double *a[NPARAM], *c[NPARAM];
    ref_param ref[NPARAM];
} problem;

static int64_t psize(int j) { return pndim[j] == 2 ? pshape[j][0] * pshape[j][1] : pshape[j][0]; }

static void problem_init(problem *pb, const lz_optim_config *c, int layout, uint64_t seed) {
    for (int j = 0; j < NPARAM; j++) {
        int64_t n = psize(j);
        double *p0 = malloc((size_t)n * sizeof(double));
        pb->a[j] = malloc((size_t)n * sizeof(double));
        pb->c[j] = malloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            double mag = t_uniform(&seed, 0.5, 1.5);
            p0[i] = (float)(t_uniform(&seed, 0, 1) < 0.5 ? -mag : mag);
            pb->a[j][i] = t_uniform(&seed, 0.5, 2);
            /* the minimum on the same side of 0: parameters stay O(1), so an elementwise
             * relative tolerance is meaningful (no cancellation to tiny values) */
            pb->c[j][i] = t_uniform(&seed, 0.5, 1.5) * (p0[i] < 0 ? -1 : 1);
        }
        pb->p[j] = mk(p0, pndim[j], pshape[j], layout);
        ref_init(&pb->ref[j], c, p0, n);
        free(p0);
    }
}

static void problem_free(problem *pb) {
    for (int j = 0; j < NPARAM; j++) {
        lz_release(pb->p[j]);
        free(pb->a[j]);
        free(pb->c[j]);
        ref_free(&pb->ref[j]);
    }
}

/* The gradient at the optimizer's current parameters, rounded to float32 (both sides get the
 * same numbers). g must have room for psize(j). */
static void problem_grad(problem *pb, int j, double *g) {
    readd(pb->p[j], g);
    for (int64_t i = 0; i < psize(j); i++) g[i] = (float)(pb->a[j][i] * (g[i] - pb->c[j][i]));
}

/* One step of optimizer and reference on the problem; returns nothing, checks nothing. */
static void problem_step(problem *pb, lz_optim *o, const lz_optim_config *const *cfgs, double lr_now,
                         int layout) {
    lz_array *g[NPARAM], *out[NPARAM];
    double *gv[NPARAM];
    for (int j = 0; j < NPARAM; j++) {
        gv[j] = malloc((size_t)psize(j) * sizeof(double));
        problem_grad(pb, j, gv[j]);
        g[j] = mk(gv[j], pndim[j], pshape[j], layout);
    }
    assert_int_equal(lz_optim_step(o, NPARAM, pnames, pb->p, g, out, lr_now), 0);
    for (int j = 0; j < NPARAM; j++) {
        const lz_optim_config *c = cfgs[j];
        double lr = lr_now < 0 ? c->lr : lr_now * c->lr / cfgs[NPARAM]->lr;
        ref_step(c, lr, &pb->ref[j], gv[j]);
        lz_release(pb->p[j]);
        pb->p[j] = out[j];
        lz_release(g[j]);
        free(gv[j]);
    }
    assert_int_equal(lz_optim_eval(o, NPARAM, pb->p), 0);
}

static double maxabs(const double *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Parameters to 1e-6 relative; state buffers to 1e-6 relative (plus 1e-6 of their largest
 * element, for entries that cancel to near zero); step counters exactly. */
static void problem_check(problem *pb, lz_optim *o, const lz_optim_config *const *cfgs) {
    char name[128];
    for (int j = 0; j < NPARAM; j++) {
        const lz_optim_config *c = cfgs[j];
        ref_param *r = &pb->ref[j];
        t_assert_close(pb->p[j], r->p, r->n, 1e-6, 1e-9);
        snprintf(name, sizeof name, "%s.step", pnames[j]);
        lz_array *s = state_get(o, name);
        assert_non_null(s);
        assert_int_equal(lz_dtype_of(s), LZ_I64);
        assert_true(lz_item(s) == (double)r->t);
        lz_release(s);
        for (int k = 0; k < 3; k++) {
            if (!ref_names[c->kind][k]) continue;
            snprintf(name, sizeof name, "%s.%s", pnames[j], ref_names[c->kind][k]);
            lz_array *b = state_get(o, name);
            if (!ref_used(c, k)) { assert_null(b); continue; }
            if (!b) fail_msg("no state %s", name);
            assert_int_equal(lz_dtype_of(b), LZ_F32);
            assert_int_equal(lz_size(b), r->n);
            t_assert_close(b, r->b[k], r->n, 1e-6, 1e-6 * maxabs(r->b[k], r->n));
            lz_release(b);
        }
    }
}

/* Runs `steps` steps of cfg with a varying lr_now, checking after each. */
static void run_case(const lz_optim_config *cfg, int layout, int steps, uint64_t seed) {
    lz_optim *o = lz_optim_new(cfg);
    assert_non_null(o);
    problem pb;
    problem_init(&pb, cfg, layout, seed);
    const lz_optim_config *cfgs[NPARAM + 1] = {cfg, cfg, cfg};
    for (int s = 0; s < steps; s++) {
        problem_step(&pb, o, cfgs, cfg->lr * (1 - 0.1 * s), s == 0 ? layout : T_CONTIG);
        problem_check(&pb, o, cfgs);
    }
    problem_free(&pb);
    lz_optim_free(o);
}

static lz_optim_config with(lz_optim_kind k, double lr, double wd) {
    lz_optim_config c = lz_optim_defaults(k);
    c.lr = lr;
    c.weight_decay = wd;
    return c;
}

/* ---- one test per optimizer, covering its variants ---- */

static void test_sgd(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_SGD, 0.1, 0);
    run_case(&c, T_CONTIG, 6, 1);
    c.weight_decay = 0.05;
    run_case(&c, T_TRANSPOSED, 6, 2);
    c.momentum = 0.9;
    run_case(&c, T_STRIDED, 6, 3);
    c.dampening = 0.3;
    run_case(&c, T_CONTIG, 6, 4);
    c.dampening = 0;
    c.nesterov = 1;
    run_case(&c, T_CONTIG, 6, 5);
    c.weight_decay = 0;
    run_case(&c, T_TRANSPOSED, 6, 6);
}

static void test_adam(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAM, 0.05, 0);
    run_case(&c, T_CONTIG, 6, 11);
    c.weight_decay = 0.1;
    run_case(&c, T_STRIDED, 6, 12);
    c.amsgrad = 1;
    c.betas[0] = 0.8;
    c.betas[1] = 0.9;
    run_case(&c, T_TRANSPOSED, 6, 13);
    c.betas[0] = 0;       /* no first-moment averaging */
    run_case(&c, T_CONTIG, 4, 14);
}

static void test_adamw(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAMW, 0.05, 0.1);
    run_case(&c, T_CONTIG, 6, 21);
    c.amsgrad = 1;
    c.eps = 1e-3;
    run_case(&c, T_TRANSPOSED, 6, 22);
    c.weight_decay = 0;
    run_case(&c, T_STRIDED, 6, 23);
}

static void test_rmsprop(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_RMSPROP, 0.01, 0);
    run_case(&c, T_CONTIG, 6, 31);
    c.centered = 1;
    run_case(&c, T_STRIDED, 6, 32);
    c.centered = 0;
    c.momentum = 0.9;
    run_case(&c, T_TRANSPOSED, 6, 33);
    c.centered = 1;
    c.weight_decay = 0.1;
    c.alpha = 0.9;
    run_case(&c, T_CONTIG, 6, 34);
}

static void test_adagrad(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAGRAD, 0.1, 0);
    run_case(&c, T_CONTIG, 6, 41);
    c.lr_decay = 0.1;
    c.initial_accumulator_value = 0.5;
    run_case(&c, T_STRIDED, 6, 42);
    c.weight_decay = 0.1;
    c.eps = 1e-6;
    run_case(&c, T_TRANSPOSED, 6, 43);
}

static void test_lion(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_LION, 0.01, 0);
    run_case(&c, T_CONTIG, 6, 51);
    c.weight_decay = 0.5;
    run_case(&c, T_TRANSPOSED, 6, 52);
    c.betas[0] = 0.5;
    c.betas[1] = 0.9;
    run_case(&c, T_STRIDED, 6, 53);
}

/* ---- state round trip: save every entry (copied to the host and back, as a checkpoint does),
 * load it into a fresh optimizer, continue both: identical bits. ---- */

static lz_array *host_copy(lz_array *a) {
    int64_t n = lz_size(a);
    if (lz_dtype_of(a) == LZ_I64) {
        int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        assert_int_equal(lz_to_int(a, v, n), 0);
        lz_array *r = lz_from_data(v, lz_ndim(a), lz_shape(a), LZ_I64);
        free(v);
        return r;
    }
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    assert_int_equal(lz_to_float(a, f, n), 0);
    lz_array *r = lz_from_data(f, lz_ndim(a), lz_shape(a), LZ_F32);
    free(f);
    return r;
}

static void assert_same_bits(lz_array *a, lz_array *b) {
    int64_t n = lz_size(a);
    assert_int_equal(n, lz_size(b));
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x), *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    lz_to_float(a, x, n);
    lz_to_float(b, y, n);
    assert_memory_equal(x, y, (size_t)n * sizeof *x);
    free(x);
    free(y);
}

static void round_trip(const lz_optim_config *cfg) {
    lz_optim *o = lz_optim_new(cfg);
    problem pb;
    problem_init(&pb, cfg, T_CONTIG, 99);
    const lz_optim_config *cfgs[NPARAM + 1] = {cfg, cfg, cfg};
    for (int s = 0; s < 3; s++) problem_step(&pb, o, cfgs, -1, T_CONTIG);

    lz_optim *o2 = lz_optim_new(cfg);
    int n = lz_optim_state_count(o);
    assert_true(n >= 2 * NPARAM);
    for (int i = 0; i < n; i++) {
        lz_array *a = lz_optim_state_array(o, i), *h = host_copy(a);
        assert_int_equal(lz_optim_state_load(o2, lz_optim_state_name(o, i), h), 0);
        lz_release(a);
        lz_release(h);
    }
    assert_int_equal(lz_optim_state_count(o2), n);
    /* a second problem with the same parameters continues from the restored state */
    problem pb2;
    problem_init(&pb2, cfg, T_CONTIG, 99);
    for (int j = 0; j < NPARAM; j++) {
        lz_release(pb2.p[j]);
        pb2.p[j] = host_copy(pb.p[j]);
    }
    for (int s = 0; s < 3; s++) {
        problem_step(&pb, o, cfgs, -1, T_CONTIG);
        problem_step(&pb2, o2, cfgs, -1, T_CONTIG);
    }
    for (int j = 0; j < NPARAM; j++) assert_same_bits(pb.p[j], pb2.p[j]);
    for (int i = 0; i < n; i++) {
        assert_string_equal(lz_optim_state_name(o, i), lz_optim_state_name(o2, i));
        lz_array *a = lz_optim_state_array(o, i), *b = lz_optim_state_array(o2, i);
        assert_int_equal(lz_dtype_of(a), lz_dtype_of(b));
        assert_same_bits(a, b);
        if (strstr(lz_optim_state_name(o, i), ".step")) assert_true(lz_item(a) == 6);
        lz_release(a);
        lz_release(b);
    }
    problem_free(&pb);
    problem_free(&pb2);
    lz_optim_free(o);
    lz_optim_free(o2);
}

static void test_state_round_trip(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_SGD, 0.1, 0.01);
    c.momentum = 0.9;
    c.nesterov = 1;
    round_trip(&c);
    c = with(LZ_ADAM, 0.01, 0.01);
    c.amsgrad = 1;
    round_trip(&c);
    c = with(LZ_ADAMW, 0.01, 0.1);
    round_trip(&c);
    c = with(LZ_RMSPROP, 0.01, 0);
    c.centered = 1;
    c.momentum = 0.5;
    round_trip(&c);
    c = with(LZ_ADAGRAD, 0.1, 0);
    c.lr_decay = 0.01;
    round_trip(&c);
    c = with(LZ_LION, 0.01, 0.1);
    round_trip(&c);
}

/* ---- groups: per-group hyperparameters, first match wins, rates scale with lr_now ---- */

static void test_groups(void **state) {
    (void)state;
    lz_optim_config def = with(LZ_ADAMW, 0.02, 0.1);
    lz_optim *o = lz_optim_new(&def);
    lz_optim_config nodecay = lz_optim_get_config(o);
    nodecay.weight_decay = 0;
    nodecay.lr = 0.04;                       /* twice the default rate */
    assert_int_equal(lz_optim_add_group(o, " *.bias , *norm*", &nodecay), 1);
    lz_optim_config other = def;
    other.betas[1] = 0.9;
    assert_int_equal(lz_optim_add_group(o, "layer.*", &other), 2);
    assert_int_equal(lz_optim_group_of(o, "layer.bias"), 1);       /* first match wins */
    assert_int_equal(lz_optim_group_of(o, "layer.weight"), 2);
    assert_int_equal(lz_optim_group_of(o, "blocks.3.norm1.weight"), 1);
    assert_int_equal(lz_optim_group_of(o, "head.weight"), 0);
    problem pb;
    problem_init(&pb, &def, T_CONTIG, 7);
    const lz_optim_config *cfgs[NPARAM + 1] = {&other, &nodecay, &def};
    for (int s = 0; s < 4; s++) {
        problem_step(&pb, o, cfgs, 0.01 * (s + 1), T_CONTIG);    /* a schedule's rates */
        problem_check(&pb, o, cfgs);
    }
    problem_free(&pb);
    lz_optim_config bad = lz_optim_defaults(LZ_SGD);
    assert_fails(lz_optim_add_group(o, "x", &bad), "group of kind sgd in a adamw optimizer");
    assert_fails(lz_optim_add_group(o, " , ", &def), "no pattern");
    lz_optim_free(o);
}

/* ---- freezing: a parameter not passed gets no update and no state ---- */

static void test_freezing(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAM, 0.1, 0);
    lz_optim *o = lz_optim_new(&c);
    double v[4] = {1, 2, 3, 4};
    lz_array *w = mk(v, 1, (int64_t[]){4}, T_CONTIG), *frozen = mk(v, 1, (int64_t[]){4}, T_CONTIG);
    lz_array *g = mk((double[]){1, 1, 1, 1}, 1, (int64_t[]){4}, T_CONTIG), *out;
    const char *name = "trained.weight";
    for (int s = 0; s < 3; s++) {
        assert_int_equal(lz_optim_step(o, 1, &name, &w, &g, &out, -1), 0);
        lz_release(w);
        w = out;
        assert_int_equal(lz_optim_eval(o, 1, &w), 0);
    }
    assert_int_equal(lz_optim_state_count(o), 3);               /* step, exp_avg, exp_avg_sq */
    for (int i = 0; i < 3; i++) assert_non_null(strstr(lz_optim_state_name(o, i), "trained.weight."));
    t_assert_close(frozen, v, 4, 0, 0);
    /* freezing a trained parameter leaves its state as it was */
    lz_array *m = state_get(o, "trained.weight.exp_avg");
    const char *other = "other";
    assert_int_equal(lz_optim_step(o, 1, &other, &frozen, &g, &out, -1), 0);
    lz_array *m2 = state_get(o, "trained.weight.exp_avg");
    assert_ptr_equal(m, m2);
    lz_array *st = state_get(o, "trained.weight.step");
    assert_true(lz_item(st) == 3);
    /* dropping state by pattern: the next step starts fresh */
    assert_int_equal(lz_optim_state_drop(o, "trained.*"), 1);
    assert_null(state_get(o, "trained.weight.step"));
    assert_int_equal(lz_optim_state_count(o), 3);               /* other's */
    lz_release(m);
    lz_release(m2);
    lz_release(st);
    lz_release(out);
    lz_release(w);
    lz_release(frozen);
    lz_release(g);
    lz_optim_free(o);
}

/* ---- fusion and memory: a parameter's update is one kernel that also stores the new
 * state (Lion's new moment, read by nothing in the step, joins as a sibling), and the old
 * state buffers are given to the new ones: memory after 100 steps equals memory after 1 ---- */

static int kernels_per_step(const lz_optim_config *c, int64_t n, int warm) {
    lz_optim *o = lz_optim_new(c);
    lz_array *w = lz_random_normal(lz_key_new(1), 1, &n, 0, 1, LZ_F32);
    lz_array *g = lz_random_normal(lz_key_new(2), 1, &n, 0, 1, LZ_F32), *out;
    lz_eval1(w);
    lz_eval1(g);
    const char *name = "w";
    uint64_t k = 0;
    for (int s = 0; s <= warm; s++) {
        assert_int_equal(lz_optim_step(o, 1, &name, &w, &g, &out, -1), 0);
        lz_release(w);
        w = out;
        lz_stats_reset();
        assert_int_equal(lz_optim_eval(o, 1, &w), 0);
        k = lz_stats().kernels;
    }
    lz_release(w);
    lz_release(g);
    lz_optim_free(o);
    return (int)k;
}

static void test_fusion_kernel_counts(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAM, 1e-3, 0);
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);           /* p, storing m and v */
    c.weight_decay = 0.1;                                          /* L2 fused in both */
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c = with(LZ_ADAMW, 1e-3, 0.1);
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c.amsgrad = 1;
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c = with(LZ_SGD, 0.1, 0.01);
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c.momentum = 0.9;
    c.nesterov = 1;
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c = with(LZ_LION, 1e-4, 0.1);
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c = with(LZ_RMSPROP, 0.01, 0.1);
    c.centered = 1;
    c.momentum = 0.9;
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
    c = with(LZ_ADAGRAD, 0.01, 0);
    assert_int_equal(kernels_per_step(&c, 4099, 2), 1);
}

static void test_memory_steady(void **state) {
    (void)state;
    int64_t n = 1 << 16;
    lz_optim_config c = with(LZ_ADAMW, 1e-3, 0.01);
    lz_optim *o = lz_optim_new(&c);
    lz_array *w = lz_random_normal(lz_key_new(3), 1, &n, 0, 1, LZ_F32);
    lz_array *g = lz_random_normal(lz_key_new(4), 1, &n, 0, 1, LZ_F32), *out;
    lz_eval1(w);
    lz_eval1(g);
    const char *name = "w";
    size_t after1 = 0;
    for (int s = 1; s <= 100; s++) {
        assert_int_equal(lz_optim_step(o, 1, &name, &w, &g, &out, -1), 0);
        lz_release(w);
        w = out;
        lz_stats_reset();
        assert_int_equal(lz_optim_eval(o, 1, &w), 0);
        if (s == 1) after1 = t_mem().active;
        /* from step 2 on, no full-size buffer is allocated: m, v and w are donated */
        if (s > 1) assert_true(lz_stats().bytes_alloc < (uint64_t)n * 4);
    }
    assert_int_equal(t_mem().active, after1);
    assert_int_equal(lz_optim_state_count(o), 3);
    lz_release(w);
    lz_release(g);
    lz_optim_free(o);
}

/* ---- backward + clipping + update as one graph, one eval ---- */

typedef struct { lz_array *a, *c; } quad;

static int quad_loss(void *ctx, int n, lz_array *const *x, lz_array **out) {
    (void)n;
    quad *q = ctx;
    lz_array *d = lz_sub(x[0], q->c);
    out[0] = lz_mul_scalar(lz_sum(lz_mul(q->a, lz_square(d)), NULL, 0, 0), 0.5);
    return 1;
}

static void test_fused_with_backward(void **state) {
    (void)state;
    int64_t n = 257;
    uint64_t seed = 5;
    double *w0 = malloc(n * sizeof(double)), *a = malloc(n * sizeof(double)),
           *cc = malloc(n * sizeof(double)), *g = malloc(n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        w0[i] = (float)t_uniform(&seed, -2, 2);
        a[i] = (float)t_uniform(&seed, 0.5, 2);
        cc[i] = (float)t_uniform(&seed, -1, 1);
    }
    quad q = {mk(a, 1, &n, T_CONTIG), mk(cc, 1, &n, T_CONTIG)};
    lz_array *w = mk(w0, 1, &n, T_CONTIG);
    lz_optim_config c = with(LZ_ADAM, 0.01, 0);
    lz_optim *o = lz_optim_new(&c);
    ref_param r;
    ref_init(&r, &c, w0, n);
    const char *name = "w";
    for (int s = 0; s < 3; s++) {
        lz_array *loss, *grad, *clipped, *norm, *next;
        lz_pool_push();
        assert_int_equal(lz_value_and_grad(quad_loss, &q, 1, &w, NULL, &loss, 1, &grad), 1);
        assert_int_equal(lz_clip_grad_norm(1, &grad, 1.0, &clipped, &norm), 0);
        assert_int_equal(lz_optim_step(o, 1, &name, &w, &clipped, &next, -1), 0);
        assert_false(lz_is_evaluated(next));
        assert_false(lz_is_evaluated(norm));
        lz_retain(next);
        assert_int_equal(lz_optim_eval(o, 3, (lz_array *[]){next, loss, norm}), 0);
        /* reference: gradient from the current parameters, clipped, then Adam */
        double cur[257], sq = 0, l = 0;
        readd(w, cur);
        for (int64_t i = 0; i < n; i++) {
            g[i] = a[i] * (cur[i] - cc[i]);
            sq += g[i] * g[i];
            l += 0.5 * a[i] * (cur[i] - cc[i]) * (cur[i] - cc[i]);
        }
        double coef = fmin(1.0, 1.0 / (sqrt(sq) + 1e-6));
        for (int64_t i = 0; i < n; i++) g[i] *= coef;
        assert_true(fabs(lz_item(norm) - sqrt(sq)) <= 1e-5 * sqrt(sq));
        assert_true(fabs(lz_item(loss) - l) <= 1e-5 * l);
        ref_step(&c, c.lr, &r, g);
        lz_pool_pop();
        lz_release(w);
        w = next;
        t_assert_close(w, r.p, n, 1e-5, 1e-7);
    }
    ref_free(&r);
    lz_release(w);
    lz_release(q.a);
    lz_release(q.c);
    lz_optim_free(o);
    free(w0);
    free(a);
    free(cc);
    free(g);
}

/* ---- half-precision parameters: updated in float32, rounded back; state is float32 ---- */

static void test_bf16_params(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAM, 0.1, 0);
    lz_optim *o = lz_optim_new(&c);
    double v[3] = {1, -2, 0.5};
    lz_array *w32 = mk(v, 1, (int64_t[]){3}, T_CONTIG), *w = lz_astype(w32, LZ_BF16);
    lz_array *g = mk((double[]){0.5, -1, 2}, 1, (int64_t[]){3}, T_CONTIG), *out;
    const char *name = "w";
    assert_int_equal(lz_optim_step(o, 1, &name, &w, &g, &out, -1), 0);
    assert_int_equal(lz_dtype_of(out), LZ_BF16);
    assert_int_equal(lz_optim_eval(o, 1, &out), 0);
    /* Adam's first step moves each element by lr * sign(g) (up to eps) */
    double want[3] = {0.9, -1.9, 0.4};
    t_assert_close(out, want, 3, 1e-2, 0);
    lz_array *m = state_get(o, "w.exp_avg");
    assert_int_equal(lz_dtype_of(m), LZ_F32);
    lz_release(m);
    lz_release(out);
    lz_release(w);
    lz_release(w32);
    lz_release(g);
    lz_optim_free(o);
}

/* ---- errors: messages, and a failed step changes nothing ---- */

static void test_errors(void **state) {
    (void)state;
    lz_optim_config c = with(LZ_ADAM, -1, 0);
    t_assert_error(lz_optim_new(&c), "lz_optim_new: lr must be >= 0, got -1");
    c = with(LZ_ADAM, 1e-3, 0);
    c.betas[1] = 1;
    t_assert_error(lz_optim_new(&c), "betas[1] must be in [0, 1), got 1");
    c = (lz_optim_config){.kind = LZ_ADAM, .lr = 1e-3};      /* forgot the defaults */
    t_assert_error(lz_optim_new(&c), "eps must be > 0 (start from lz_optim_defaults)");
    c = with(LZ_SGD, 0.1, 0);
    c.nesterov = 1;
    t_assert_error(lz_optim_new(&c), "nesterov needs momentum > 0 and dampening 0");
    c.kind = (lz_optim_kind)42;
    t_assert_error(lz_optim_new(&c), "unknown optimizer kind 42");
    c = with(LZ_RMSPROP, INFINITY, 0);
    t_assert_error(lz_optim_new(&c), "must be finite");
    t_assert_error(lz_optim_new(NULL), "config is NULL");

    c = with(LZ_ADAM, 0.1, 0);
    lz_optim *o = lz_optim_new(&c);
    lz_array *w = mk((double[]){1, 2, 3}, 1, (int64_t[]){3}, T_CONTIG);
    lz_array *g = mk((double[]){1, 1, 1}, 1, (int64_t[]){3}, T_CONTIG);
    lz_array *g2 = mk((double[]){1, 1}, 1, (int64_t[]){2}, T_CONTIG);
    lz_array *ints = lz_arange(0, 3, 1, LZ_I32);
    lz_array *out[2] = {(lz_array *)1, (lz_array *)1};
    const char *names[2] = {"a", "a"};
    assert_fails(lz_optim_step(o, 1, names, &w, &g2, out, -1),
                 "lz_optim_step: 'a': gradient float32[2] does not match parameter float32[3]");
    assert_null(out[0]);
    assert_fails(lz_optim_step(o, 1, names, &ints, &g, out, -1), "'a': parameter int32[3] and gradient float32[3] must be float");
    assert_fails(lz_optim_step(o, 2, names, (lz_array *[]){w, w}, (lz_array *[]){g, g}, out, -1),
                 "parameter 'a' is passed twice");
    assert_fails(lz_optim_step(o, 1, (const char *[]){"x/y"}, &w, &g, out, -1), "without '/'");
    assert_fails(lz_optim_step(o, 1, names, &w, (lz_array *[]){NULL}, out, -1), "gradient 0 is NULL");
    assert_fails(lz_optim_step(o, 1, names, &w, &g, out, NAN), "lr_now is nan");
    assert_int_equal(lz_optim_state_count(o), 0);          /* failed steps created nothing */
    /* a good name with a bad one after it: still nothing */
    assert_fails(lz_optim_step(o, 2, (const char *[]){"b", "c"}, (lz_array *[]){w, w},
                               (lz_array *[]){g, g2}, out, -1), "'c': gradient");
    assert_int_equal(lz_optim_state_count(o), 0);
    assert_null(out[0]);
    assert_null(out[1]);

    /* restores: unknown keys, bad steps, incomplete or mis-shaped state */
    lz_array *three = lz_scalar(3, LZ_I64), *half = lz_scalar(2.5, LZ_F32);
    assert_fails(lz_optim_state_load(o, "a.momentum_buffer", g), "adam has no state 'momentum_buffer'");
    assert_fails(lz_optim_state_load(o, "nodot", g), "is not <parameter>.<key>");
    assert_fails(lz_optim_state_load(o, "a.step", half), "a step must be one non-negative integer");
    assert_fails(lz_optim_state_load(o, "a.exp_avg", ints), "state must be float");
    assert_int_equal(lz_optim_state_load(o, "a.step", three), 0);
    assert_fails(lz_optim_step(o, 1, names, &w, &g, out, -1), "state lacks a.exp_avg (step 3)");
    assert_int_equal(lz_optim_state_load(o, "a.exp_avg", g2), 0);
    assert_int_equal(lz_optim_state_load(o, "a.exp_avg_sq", g), 0);
    assert_fails(lz_optim_step(o, 1, names, &w, &g, out, -1), "state a.exp_avg is float32[2] but the parameter is float32[3]");
    assert_int_equal(lz_optim_state_load(o, "a.exp_avg", g), 0);
    assert_int_equal(lz_optim_step(o, 1, names, &w, &g, out, -1), 0);   /* complete now */
    lz_array *st = state_get(o, "a.step");
    assert_true(lz_item(st) == 4);
    lz_release(st);
    lz_release(out[0]);
    t_assert_error(lz_optim_state_name(o, 99), "lz_optim_state_name: entry 99 of 3");
    t_assert_error(lz_optim_state_array(o, -1), "entry -1 of 3");

    lz_release(three);
    lz_release(half);
    lz_release(w);
    lz_release(g);
    lz_release(g2);
    lz_release(ints);
    lz_optim_free(o);
    lz_optim_free(NULL);
    assert_string_equal(lz_optim_kind_name(LZ_RMSPROP), "rmsprop");
    assert_null(lz_optim_kind_name((lz_optim_kind)-1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_rmsprop),
        cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_lion),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_freezing),
        cmocka_unit_test(test_fusion_kernel_counts),
        cmocka_unit_test(test_memory_steady),
        cmocka_unit_test(test_fused_with_backward),
        cmocka_unit_test(test_bf16_params),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
