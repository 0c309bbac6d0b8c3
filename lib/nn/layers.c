/* Layers without parameters: activations, dropout, flatten, a function as a module, and the
 * sequential container. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn_internal.h"

/* ---- activations ---- */

typedef struct {
    int op;
    double param;   /* leaky slope, or the axis of softmax / log_softmax */
    lz_array *(*fn)(lz_array *);
} act_state;

enum { A_RELU, A_LEAKY, A_GELU, A_GELU_TANH, A_SILU, A_TANH, A_SIGMOID, A_SOFTMAX, A_LOG_SOFTMAX, A_FN };

static lz_array *leaky(lz_array *x, double slope) {
    lz_pool_push();
    lz_array *zero = lz_zeros(0, NULL, lz_dtype_of(x));
    lz_array *y = lz_retain(lz_where(lz_greater(x, zero), x, lz_mul_scalar(x, slope)));
    lz_pool_pop();
    return lz_autorelease(y);
}

static lz_array *act_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    act_state *s = lz_module_state(m);
    switch (s->op) {
    case A_RELU: return lz_relu(x);
    case A_LEAKY: return leaky(x, s->param);
    case A_GELU: return lz_gelu(x);
    case A_GELU_TANH: return lz_gelu_tanh(x);
    case A_SILU: return lz_silu(x);
    case A_TANH: return lz_tanh(x);
    case A_SIGMOID: return lz_sigmoid(x);
    case A_SOFTMAX: return lz_softmax(x, (int)s->param);
    case A_LOG_SOFTMAX: return lz_log_softmax(x, (int)s->param);
    default: return s->fn(x);
    }
}

static void act_describe(const lz_module *m, char *buf, size_t n) {
    act_state *s = lz_module_state(m);
    if (s->op == A_LEAKY) snprintf(buf, n, "negative_slope=%g", s->param);
    else if (s->op == A_GELU_TANH) snprintf(buf, n, "tanh approximation");
    else if (s->op == A_SOFTMAX || s->op == A_LOG_SOFTMAX) snprintf(buf, n, "axis=%d", (int)s->param);
    else if (n) buf[0] = 0;
}

static const lz_module_kind act_kinds[] = {
    {"relu", act_forward, act_describe, NULL},       {"leaky_relu", act_forward, act_describe, NULL},
    {"gelu", act_forward, act_describe, NULL},       {"gelu", act_forward, act_describe, NULL},
    {"silu", act_forward, act_describe, NULL},       {"tanh", act_forward, act_describe, NULL},
    {"sigmoid", act_forward, act_describe, NULL},    {"softmax", act_forward, act_describe, NULL},
    {"log_softmax", act_forward, act_describe, NULL},
};

static lz_module *act(int op, double param) {
    act_state *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("activation: out of memory");
    s->op = op;
    s->param = param;
    return lz_module_new(&act_kinds[op], s);
}

lz_module *lz_nn_relu(void) { return act(A_RELU, 0); }
lz_module *lz_nn_leaky_relu(double slope) { return act(A_LEAKY, slope); }
lz_module *lz_nn_gelu(bool tanh_approx) { return act(tanh_approx ? A_GELU_TANH : A_GELU, 0); }
lz_module *lz_nn_silu(void) { return act(A_SILU, 0); }
lz_module *lz_nn_tanh(void) { return act(A_TANH, 0); }
lz_module *lz_nn_sigmoid(void) { return act(A_SIGMOID, 0); }
lz_module *lz_nn_softmax(int axis) { return act(A_SOFTMAX, axis); }
lz_module *lz_nn_log_softmax(int axis) { return act(A_LOG_SOFTMAX, axis); }

/* A function as a module: the kind's name is the caller's, so it lives in the state. */
typedef struct {
    act_state a;
    lz_module_kind kind;
    char name[48];
} lambda_state;

lz_module *lz_nn_lambda(const char *name, lz_array *(*fn)(lz_array *)) {
    if (!fn) return lz_fail("lambda: fn is NULL");
    lambda_state *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("lambda: out of memory");
    s->a.op = A_FN;
    s->a.fn = fn;
    snprintf(s->name, sizeof s->name, "%s", name && name[0] ? name : "lambda");
    s->kind = (lz_module_kind){s->name, act_forward, NULL, NULL};
    return lz_module_new(&s->kind, s);
}

/* ---- dropout ---- */

typedef struct { double p; } dropout_state;

static lz_array *dropout_forward(lz_module *m, lz_array *x, const lz_key *key) {
    double p = ((dropout_state *)lz_module_state(m))->p;
    if (!lz_module_is_training(m) || p == 0) return lz_autorelease(lz_retain(x));
    if (!lz_dtype_is_float(lz_dtype_of(x)))
        return nn_fail(m, "input %s must be a float array", nn_shape(x));
    if (!key)
        return nn_fail(m, "training mode needs a random key: pass one to lz_module_forward "
                          "(a fresh one each step), or call lz_module_train(model, false)");
    lz_pool_push();
    lz_array *y;
    if (p >= 1) {
        y = lz_zeros_like(x);
    } else {
        lz_array *keep = lz_random_bernoulli(*key, lz_ndim(x), lz_shape(x), 1 - p);
        y = lz_where(keep, lz_mul_scalar(x, 1 / (1 - p)), lz_zeros(0, NULL, lz_dtype_of(x)));
    }
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void dropout_describe(const lz_module *m, char *buf, size_t n) {
    snprintf(buf, n, "p=%g", ((dropout_state *)lz_module_state(m))->p);
}

static const lz_module_kind dropout_kind = {"dropout", dropout_forward, dropout_describe, NULL};

lz_module *lz_nn_dropout(double p) {
    if (!(p >= 0 && p <= 1)) return lz_fail("dropout: p = %g is not in [0, 1]", p);
    dropout_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("dropout: out of memory");
    s->p = p;
    return lz_module_new(&dropout_kind, s);
}

/* ---- flatten ---- */

typedef struct { int start, end; } flatten_state;

static lz_array *flatten_forward(lz_module *m, lz_array *x, const lz_key *key) {
    (void)key;
    flatten_state *s = lz_module_state(m);
    int nd = lz_ndim(x);
    int a = s->start < 0 ? s->start + nd : s->start, b = s->end < 0 ? s->end + nd : s->end;
    if (a < 0 || b >= nd || a > b)
        return nn_fail(m, "cannot flatten axes %d..%d of input %s", s->start, s->end, nn_shape(x));
    return lz_flatten(x, a, b);
}

static void flatten_describe(const lz_module *m, char *buf, size_t n) {
    flatten_state *s = lz_module_state(m);
    snprintf(buf, n, "start=%d, end=%d", s->start, s->end);
}

static const lz_module_kind flatten_kind = {"flatten", flatten_forward, flatten_describe, NULL};

lz_module *lz_nn_flatten(int start_axis, int end_axis) {
    flatten_state *s = malloc(sizeof *s);
    if (!s) return lz_fail("flatten: out of memory");
    s->start = start_axis;
    s->end = end_axis;
    return lz_module_new(&flatten_kind, s);
}

/* ---- sequential ---- */

static lz_array *sequential_forward(lz_module *m, lz_array *x, const lz_key *key) {
    int n = lz_module_num_children(m);
    lz_pool_push();
    lz_array *y = x;
    for (int i = 0; i < n && y; i++) y = lz_module_forward(lz_module_child_at(m, i), y, key);
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

static void sequential_describe(const lz_module *m, char *buf, size_t n) {
    snprintf(buf, n, "%d layers", lz_module_num_children(m));
}

static const lz_module_kind sequential_kind = {"sequential", sequential_forward, sequential_describe, NULL};

int lz_nn_sequential_append(lz_module *seq, lz_module *child) {
    if (!seq || lz_module_kind_of(seq) != &sequential_kind) {
        lz_module_free(child);
        if (seq) nn_fail(seq, "lz_nn_sequential_append needs a sequential module");
        return -1;
    }
    char name[24];
    snprintf(name, sizeof name, "%d", lz_module_num_children(seq));
    return lz_module_add_child(seq, name, child);
}

lz_module *lz_nn_sequential(int n, lz_module *const *mods) {
    bool ok = n >= 0 && (n == 0 || mods);
    for (int i = 0; ok && i < n; i++) ok = mods[i] != NULL;
    if (!ok) {
        for (int i = 0; mods && i < n; i++) lz_module_free(mods[i]);
        if (!lz_error()[0]) lz_fail("sequential: a layer is NULL");
        return NULL;
    }
    lz_module *seq = lz_module_new(&sequential_kind, NULL);
    int i = 0;
    for (; seq && i < n; i++)
        if (lz_nn_sequential_append(seq, mods[i])) {
            lz_module_free(seq);
            seq = NULL;
        }
    for (; i < n; i++) lz_module_free(mods[i]);   /* those not handed over yet */
    return seq;
}
