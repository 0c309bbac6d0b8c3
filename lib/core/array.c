/* Array handles: refcounts, autorelease pools, inspection, creation from host data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* ---- dtypes ---- */
static const struct { size_t size; const char *name; } dtypes[LZ_NDTYPES] = {
    [LZ_BOOL] = {1, "bool"}, [LZ_U8] = {1, "uint8"}, [LZ_I32] = {4, "int32"},
    [LZ_I64] = {8, "int64"}, [LZ_F16] = {2, "float16"}, [LZ_BF16] = {2, "bfloat16"},
    [LZ_F32] = {4, "float32"},
};
size_t lz_dtype_size(lz_dtype t) { return (unsigned)t < LZ_NDTYPES ? dtypes[t].size : 0; }
const char *lz_dtype_name(lz_dtype t) { return (unsigned)t < LZ_NDTYPES ? dtypes[t].name : "?"; }
int lz_dtype_is_float(lz_dtype t) { return t == LZ_F32 || t == LZ_F16 || t == LZ_BF16; }

lz_dtype lz_promote_types(lz_dtype a, lz_dtype b) {
    static const int rank[LZ_NDTYPES] = {[LZ_BOOL] = 0, [LZ_U8] = 1, [LZ_I32] = 2,
                                         [LZ_I64] = 3, [LZ_F16] = 4, [LZ_BF16] = 4,
                                         [LZ_F32] = 5};
    if (a == b) return a;
    if (rank[a] == 4 && rank[b] == 4) return LZ_F32;   /* float16 with bfloat16 */
    return rank[a] >= rank[b] ? a : b;
}

/* ---- handles ---- */
lz_array *lz_retain(lz_array *a) {
    if (a) atomic_fetch_add(&a->refs, 1);
    return a;
}

/* Releasing walks an explicit stack, not recursion: a 100,000-node chain dies in a loop. */
void lz_release(lz_array *a) {
    lz_array *stack_small[64], **stack = stack_small;
    size_t n = 0, cap = 64;
    while (a) {
        if (atomic_fetch_sub(&a->refs, 1) == 1) {
            for (int i = 0; i < a->ninputs; i++) {
                if (!a->inputs[i]) continue;
                if (n == cap) {
                    lz_array **s = malloc(2 * cap * sizeof *s);
                    if (!s) abort();   /* cannot leave a half-freed graph; internal invariant */
                    memcpy(s, stack, n * sizeof *s);
                    if (stack != stack_small) free(stack);
                    stack = s;
                    cap *= 2;
                }
                stack[n++] = a->inputs[i];
            }
            free(a->inputs);
            lz_buffer_release(a->buf);
            free(a);
        }
        a = n ? stack[--n] : NULL;
    }
    if (stack != stack_small) free(stack);
}

/* ---- pools ---- */
typedef struct pool { struct pool *up; lz_array **items; size_t n, cap; } pool;
static _Thread_local pool *top;

void lz_pool_push(void) {
    pool *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->up = top;
    top = p;
}

void lz_pool_pop(void) {
    pool *p = top;
    if (!p) return;
    top = p->up;
    for (size_t i = 0; i < p->n; i++) {
        atomic_fetch_sub(&p->items[i]->pool_refs, 1);
        lz_release(p->items[i]);
    }
    free(p->items);
    free(p);
}

lz_array *lz_autorelease(lz_array *a) {
    if (!a || !top) return a;
    if (top->n == top->cap) {
        size_t cap = top->cap ? 2 * top->cap : 256;
        lz_array **items = realloc(top->items, cap * sizeof *items);
        if (!items) abort();
        top->items = items;
        top->cap = cap;
    }
    top->items[top->n++] = a;
    atomic_fetch_add(&a->pool_refs, 1);
    return a;
}

/* ---- shapes ---- */
int64_t lz_shape_size(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void lz_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

void lz_format_shape(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

char *lz_shape_str(const lz_array *a, char *buf, size_t n) {
    if (!a) { snprintf(buf, n, "(null)"); return buf; }
    char s[160];
    lz_format_shape(a->ndim, a->shape, s, sizeof s);
    snprintf(buf, n, "%s%s", lz_dtype_name(a->dtype), s);
    return buf;
}

int lz_axis(const char *op, int axis, int ndim) {
    if (ndim == 0 && (axis == 0 || axis == -1)) return 0;   /* a 0-d array's only "axis" */
    int ax = axis < 0 ? axis + ndim : axis;
    if (ax < 0 || ax >= ndim) {
        lz_fail("%s: axis %d is out of range for an array of %d dimensions", op, axis, ndim);
        return -1;
    }
    return ax;
}

/* ---- inspection ---- */
lz_dtype lz_dtype_of(const lz_array *a) { return a->dtype; }
int lz_ndim(const lz_array *a) { return a->ndim; }
const int64_t *lz_shape(const lz_array *a) { return a->shape; }
int64_t lz_dim(const lz_array *a, int axis) {
    int ax = axis < 0 ? axis + a->ndim : axis;
    return ax >= 0 && ax < a->ndim ? a->shape[ax] : -1;
}
int64_t lz_size(const lz_array *a) { return lz_shape_size(a->ndim, a->shape); }
const int64_t *lz_strides(const lz_array *a) { return a->strides; }
int lz_is_evaluated(const lz_array *a) { return a->buf != NULL && a->prim == LZ_P_NONE; }

int lz_is_contiguous(const lz_array *a) {
    if (lz_size(a) == 0) return 1;   /* nothing to lay out */
    int64_t s = 1;
    for (int i = a->ndim - 1; i >= 0; i--) {
        if (a->shape[i] != 1 && a->strides[i] != s) return 0;
        s *= a->shape[i];
    }
    return 1;
}

/* ---- construction ---- */
static int64_t graph_limit = 1000000;
static int graph_mode = LZ_GRAPH_ERROR;
void lz_set_graph_limit(int64_t depth, int mode) { graph_limit = depth; graph_mode = mode; }

static lz_array *new_array(lz_dtype t, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > LZ_MAX_DIMS)
        return lz_fail("arrays have at most %d dimensions, got %d", LZ_MAX_DIMS, ndim);
    if ((unsigned)t >= LZ_NDTYPES) return lz_fail("unknown dtype %d", (int)t);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return lz_fail("negative dimension %lld", (long long)shape[i]);
    lz_array *a = calloc(1, sizeof *a);
    if (!a) return lz_fail("out of memory");
    atomic_init(&a->refs, 1);
    a->dtype = t;
    a->ndim = ndim;
    if (ndim) memcpy(a->shape, shape, (size_t)ndim * sizeof *shape);
    lz_contiguous_strides(ndim, shape, a->strides);
    a->prim = LZ_P_NONE;
    return a;
}

lz_array *lz_node(lz_prim_id p, lz_dtype t, int ndim, const int64_t *shape, int ninputs,
                  lz_array *const *inputs, const lz_params *params) {
    int64_t depth = 0;
    for (int i = 0; i < ninputs; i++) {
        if (!inputs[i]) return NULL;   /* keep the first error */
        if (inputs[i]->depth > depth) depth = inputs[i]->depth;
    }
    if (depth + 1 > graph_limit) {
        if (graph_mode == LZ_GRAPH_EVAL) {
            if (lz_eval(ninputs, inputs)) return NULL;
            depth = 0;
        } else {
            return lz_fail("%s: the pending graph is %lld nodes deep; a value is being "
                           "accumulated without lz_eval (see lz_set_graph_limit)",
                           lz_prims[p].name, (long long)depth);
        }
    }
    lz_array *a = new_array(t, ndim, shape);
    if (!a) return NULL;
    a->prim = p;
    a->device = lz_default_device();   /* ops run where they were built */
    a->depth = depth + 1;
    a->ninputs = ninputs;
    if (ninputs) {
        a->inputs = malloc((size_t)ninputs * sizeof *a->inputs);
        if (!a->inputs) { free(a); return lz_fail("out of memory"); }
        for (int i = 0; i < ninputs; i++) a->inputs[i] = lz_retain(inputs[i]);
    }
    if (params) a->params = *params;
    return a;
}

lz_array *lz_view_of(lz_array *in, int ndim, const int64_t *shape, const int64_t *strides,
                     int64_t offset) {
    if (!in) return NULL;
    lz_array *a;
    if (lz_is_evaluated(in)) {
        a = new_array(in->dtype, ndim, shape);
        if (!a) return NULL;
        a->buf = in->buf;
        lz_buffer_retain(in->buf);
    } else {
        a = lz_node(LZ_P_VIEW, in->dtype, ndim, shape, 1, &in, NULL);
        if (!a) return NULL;
    }
    if (ndim) memcpy(a->strides, strides, (size_t)ndim * sizeof *strides);
    a->offset = offset;
    return a;
}

static lz_array *evaluated(lz_dtype t, int ndim, const int64_t *shape) {
    lz_array *a = new_array(t, ndim, shape);
    if (!a) return NULL;
    size_t n = (size_t)lz_shape_size(ndim, shape) * lz_dtype_size(t);
    a->buf = lz_buffer_alloc(n ? n : 1);
    if (!a->buf) { free(a); return NULL; }
    return a;
}

lz_array *lz_empty(int ndim, const int64_t *shape, lz_dtype t) {
    return lz_autorelease(evaluated(t, ndim, shape));
}

lz_array *lz_from_data(const void *data, int ndim, const int64_t *shape, lz_dtype t) {
    lz_array *a = evaluated(t, ndim, shape);
    if (!a) return NULL;
    size_t n = (size_t)lz_shape_size(ndim, shape) * lz_dtype_size(t);
    if (n) memcpy(a->buf->data, data, n);
    return lz_autorelease(a);
}

lz_array *lz_from_buffer(void *data, int ndim, const int64_t *shape, lz_dtype t,
                         void (*free_fn)(void *, void *), void *ctx) {
    lz_array *a = new_array(t, ndim, shape);
    if (!a) return NULL;
    a->buf = lz_buffer_adopt(data, (size_t)lz_shape_size(ndim, shape) * lz_dtype_size(t),
                             free_fn, ctx);
    if (!a->buf) { free(a); return NULL; }
    return lz_autorelease(a);
}

void *lz_data_mut(lz_array *a) {
    if (!a || !lz_is_evaluated(a)) return lz_fail("lz_data_mut: array is not evaluated");
    if (lz_buffer_sync(a->buf, LZ_CPU)) return NULL;
    lz_buffer_wrote(a->buf, LZ_CPU);   /* the caller writes: a device copy is stale */
    return lz_elem_ptr(a);
}
