/* The transforms: value_and_grad, grad, vjp, stop_gradient.
 *
 * Each wanted input is replaced by a TRACER, a pending node with the input's value (a VIEW of
 * it with its own layout: no copy), so that everything fn builds from it is pending, even
 * views, which on an evaluated array would be evaluated at once and lose the link. Then:
 *   1. order    depth-first from the outputs over pending nodes, stopping at tracers (they
 *               may sit on an outer transform's graph: gradients of gradients), giving a
 *               topological order;
 *   2. active   which nodes depend on a wanted tracer (only those get cotangents);
 *   3. backward consumers before producers: a node's accumulated cotangent goes through its
 *               primitive's rule to its active float inputs, then is dropped, so the backward
 *               graph keeps only what the rules themselves reference. The outputs of a
 *               checkpointed block (checkpoint.c) are differentiated by running the block
 *               again; parameter gradients are made dependencies of the chain so that lz_eval
 *               frees activations during the backward pass (see "Memory order" below).
 * Nodes are found by an open-addressing table keyed by address (the scheduler's scratch
 * fields belong to lz_eval and are left alone). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "rules.h"

/* ---- registration and counters ---- */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t calls[LZ_NPRIMS];

static void register_all(void) {
    ad_register_elementwise();
    ad_register_view();
    ad_register_reduce();
    ad_register_index();
    ad_register_linalg();
    ad_register_nn();
    ad_register_conv();
}

void lz_autograd_init(void) { pthread_once(&once, register_all); }

uint64_t lz_vjp_rule_calls(int prim) {
    return prim >= 0 && prim < LZ_NPRIMS ? atomic_load(&calls[prim]) : 0;
}

/* ---- layouts ---- */
bool ad_layout_injective(int ndim, const int64_t *shape, const int64_t *strides) {
    /* sort the |strides| of dims of size > 1, largest first; each must exceed the span of
     * all smaller ones (then the layout is a nested, non-overlapping one) */
    int64_t st[LZ_MAX_DIMS], n[LZ_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) return true;
        if (shape[d] == 1) continue;
        int64_t s = strides[d] < 0 ? -strides[d] : strides[d];
        if (s == 0) return false;
        int j = k++;
        while (j > 0 && st[j - 1] < s) { st[j] = st[j - 1]; n[j] = n[j - 1]; j--; }
        st[j] = s;
        n[j] = shape[d];
    }
    int64_t span = 0;
    for (int j = k - 1; j >= 0; j--) {
        if (st[j] <= span) return false;
        span += (n[j] - 1) * st[j];
    }
    return true;
}

/* A pending node with x's value: a view of x with x's own layout (a copy only when x's
 * layout repeats elements, e.g. a broadcast: then its elements would not be independent). */
static lz_array *tracer(lz_array *x) {
    if (!ad_layout_injective(x->ndim, x->shape, x->strides))
        return lz_node(LZ_P_COPY, x->dtype, x->ndim, x->shape, 1, &x, NULL);
    lz_array *t = lz_node(LZ_P_VIEW, x->dtype, x->ndim, x->shape, 1, &x, NULL);
    if (!t) return NULL;
    memcpy(t->strides, x->strides, sizeof t->strides);
    t->offset = x->offset;
    return t;
}

lz_array *ad_mark(lz_array *a, int64_t tag, int nextra, lz_array *const *extra) {
    lz_array *small[8], **in = small;
    if (!a) return NULL;
    if (nextra + 1 > 8 && !(in = malloc((size_t)(nextra + 1) * sizeof *in)))
        return lz_fail("autograd: out of memory");
    in[0] = a;
    for (int i = 0; i < nextra; i++) in[1 + i] = extra[i];
    lz_params p = {0};
    p.i[AD_TAG_SLOT] = tag;
    lz_array *s = lz_node(LZ_P_VIEW, a->dtype, a->ndim, a->shape, 1 + nextra, in, &p);
    if (in != small) free(in);
    if (!s) return NULL;
    memcpy(s->strides, a->strides, sizeof s->strides);
    s->offset = a->offset;
    return s;
}

lz_array *lz_stop_gradient(lz_array *a) {
    if (!a) return NULL;
    if (!lz_is_pending(a)) return lz_autorelease(lz_retain(a));   /* already a constant */
    return lz_autorelease(ad_mark(a, AD_STOP_TAG, 0, NULL));
}

/* ---- the tape: nodes in topological order, with a pointer -> index table ---- */
typedef struct {
    lz_array **node;       /* topological order: inputs first */
    lz_array **ct;         /* accumulated cotangent (owned), NULL = zero */
    unsigned char *flags;  /* TRACER, WANTED, ACTIVE */
    size_t n, cap;
    lz_array **key;        /* hash table of node -> index */
    size_t *val, hcap;
} tape;

/* QUEUED: a tracer in the backward's queue; SEEN: walked by reads_outside */
enum { TRACER = 1, WANTED = 2, ACTIVE = 4, QUEUED = 8, SEEN = 16 };

static size_t hash(const lz_array *a, size_t cap) {
    uint64_t h = (uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static long find(const tape *t, const lz_array *a) {
    if (!t->hcap) return -1;
    for (size_t h = hash(a, t->hcap);; h = (h + 1) & (t->hcap - 1)) {
        if (!t->key[h]) return -1;
        if (t->key[h] == a) return (long)t->val[h];
    }
}

static int rehash(tape *t, size_t cap) {
    lz_array **key = calloc(cap, sizeof *key);
    size_t *val = malloc(cap * sizeof *val);
    if (!key || !val) { free(key); free(val); return -1; }
    for (size_t i = 0; i < t->n; i++) {
        size_t h = hash(t->node[i], cap);
        while (key[h]) h = (h + 1) & (cap - 1);
        key[h] = t->node[i];
        val[h] = i;
    }
    free(t->key);
    free(t->val);
    t->key = key;
    t->val = val;
    t->hcap = cap;
    return 0;
}

/* Appends a (not yet on the tape) at the end of the order. */
static int append(tape *t, lz_array *a, unsigned char flags) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        lz_array **node = realloc(t->node, cap * sizeof *node);
        if (node) t->node = node;
        lz_array **ct = realloc(t->ct, cap * sizeof *ct);
        if (ct) t->ct = ct;
        unsigned char *fl = realloc(t->flags, cap);
        if (fl) t->flags = fl;
        if (!node || !ct || !fl) return -1;
        t->cap = cap;
    }
    t->node[t->n] = a;
    t->ct[t->n] = NULL;
    t->flags[t->n] = flags;
    t->n++;
    if (2 * t->n > t->hcap) return rehash(t, t->hcap ? 2 * t->hcap : 128);
    size_t h = hash(a, t->hcap);
    while (t->key[h]) h = (h + 1) & (t->hcap - 1);
    t->key[h] = a;
    t->val[h] = t->n - 1;
    return 0;
}

static void tape_free(tape *t) {
    for (size_t i = 0; i < t->n; i++) lz_release(t->ct[i]);
    free(t->node);
    free(t->ct);
    free(t->flags);
    free(t->key);
    free(t->val);
}

/* 1. Topological order of the pending graph below the roots; tracers are already on the tape
 * and are not entered. A node is appended once all its pending inputs are. */
static int order(tape *t, int nroots, lz_array *const *roots) {
    struct frame { lz_array *a; int next; } *stack = NULL;
    size_t sn = 0, scap = 0;
    /* visited-but-unfinished nodes live only on the stack; a second table would be needed to
     * tell them apart, but a DAG never reaches a node on the current path again, and a node
     * reached twice from different paths is appended at its first finish (checked by find) */
    int rc = 0;
    for (int r = 0; r < nroots && !rc; r++) {
        if (!roots[r] || !lz_is_pending(roots[r]) || find(t, roots[r]) >= 0) continue;
        if (sn == scap) {
            scap = scap ? 2 * scap : 64;
            struct frame *s = realloc(stack, scap * sizeof *s);
            if (!s) { rc = -1; break; }
            stack = s;
        }
        stack[sn++] = (struct frame){roots[r], 0};
        while (sn && !rc) {
            struct frame *f = &stack[sn - 1];
            if (f->next == f->a->ninputs) {
                if (find(t, f->a) < 0) rc = append(t, f->a, 0);
                sn--;
                continue;
            }
            lz_array *in = f->a->inputs[f->next++];
            if (!lz_is_pending(in) || find(t, in) >= 0) continue;
            if (sn == scap) {
                scap *= 2;
                struct frame *s = realloc(stack, scap * sizeof *s);
                if (!s) { rc = -1; break; }
                stack = s;
            }
            stack[sn++] = (struct frame){in, 0};
        }
    }
    free(stack);
    if (rc) lz_fail("autograd: out of memory while ordering the graph");
    return rc;
}

/* 2. A node is active when a wanted tracer lies below it. */
static void mark_active(tape *t) {
    for (size_t k = 0; k < t->n; k++) {
        lz_array *a = t->node[k];
        if (t->flags[k] & TRACER) {
            if (t->flags[k] & WANTED) t->flags[k] |= ACTIVE;
            continue;
        }
        for (int i = 0; i < a->ninputs; i++) {
            long j = find(t, a->inputs[i]);
            if (j >= 0 && (t->flags[j] & ACTIVE)) { t->flags[k] |= ACTIVE; break; }
        }
    }
}

/* Adds c (borrowed) into the cotangent of tape entry j, in the node's dtype. */
static int accumulate(tape *t, long j, lz_array *c) {
    lz_array *a = t->node[j];
    char sa[160], sc[160];
    if (c->ndim != a->ndim || memcmp(c->shape, a->shape, (size_t)a->ndim * sizeof *a->shape)) {
        lz_fail("autograd: a cotangent %s reached %s (%s): shapes differ",
                lz_shape_str(c, sc, sizeof sc), lz_shape_str(a, sa, sizeof sa),
                lz_is_pending(a) ? lz_prims[a->prim].name : "leaf");
        return -1;
    }
    lz_pool_push();
    lz_array *v = lz_astype(c, a->dtype);
    if (v && t->ct[j]) v = lz_add(t->ct[j], v);
    lz_retain(v);
    lz_pool_pop();
    if (!v) return -1;
    lz_release(t->ct[j]);
    t->ct[j] = v;
    return 0;
}

/* ---- 3. backward ----
 * Memory order. lz_eval orders a graph depth-first from its targets: a node runs when the
 * first target that needs it is reached. A parameter's gradient is needed only by its own
 * target (an optimizer update), usually reached after the whole backward chain; every value
 * its rule references (x in x^T ct) and every cotangent on the chain would then stay alive
 * to the end. So the chain is made to wait for them: the contributions to tracers' gradients
 * made since the last kernel node become dependencies (a DEPENDS view, rules.h) of the
 * cotangent of the next kernel node (matmul, norm, attention...) and of the recomputed inputs
 * of the next checkpointed block. Evaluation then computes each weight gradient as soon as
 * its operands exist and frees them, whatever the order of the targets. Only kernel nodes
 * take them: their cotangents are materialised anyway, while a view inside an elementwise
 * chain would cut a fusion. */
typedef struct { long *v; size_t n, cap; } queue;

/* Adds c to entry j's cotangent; a tracer's joins the queue. */
static int give(tape *t, queue *q, long j, lz_array *c) {
    if (accumulate(t, j, c)) return -1;
    if (!(t->flags[j] & TRACER) || (t->flags[j] & QUEUED)) return 0;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 32;
        long *v = realloc(q->v, cap * sizeof *v);
        if (!v) { lz_fail("autograd: out of memory"); return -1; }
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = j;
    t->flags[j] |= QUEUED;
    return 0;
}

/* a, evaluated only after the queued gradients and extra[0..nextra); empties the queue.
 * New reference. */
static lz_array *after(tape *t, queue *q, lz_array *a, int nextra, lz_array *const *extra) {
    lz_array **deps = malloc((q->n + (size_t)nextra + 1) * sizeof *deps);
    if (!deps) return lz_fail("autograd: out of memory");
    int nd = 0;
    for (int i = 0; i < nextra; i++) deps[nd++] = extra[i];
    for (size_t i = 0; i < q->n; i++) {
        t->flags[q->v[i]] &= (unsigned char)~QUEUED;
        if (t->ct[q->v[i]]) deps[nd++] = t->ct[q->v[i]];
    }
    q->n = 0;
    lz_array *r = ad_mark(a, AD_DEPENDS_TAG, nd, deps);
    free(deps);
    return r;
}

/* One node's rule: its cotangent goes to its active float inputs, then is dropped, so the
 * backward graph keeps only what the rules themselves reference. */
static int node_vjp(tape *t, queue *q, size_t k) {
    lz_array *a = t->node[k], *ct = t->ct[k];
    t->ct[k] = NULL;
    const lz_prim_info *p = &lz_prims[a->prim];
    bool wanted_small[8];
    lz_array *in_ct_small[8];
    bool *wanted = wanted_small;
    lz_array **in_ct = in_ct_small;
    int any = 0, rc = 0;
    if (a->ninputs > 8) {   /* concatenate of many arrays */
        wanted = malloc((size_t)a->ninputs * sizeof *wanted);
        in_ct = malloc((size_t)a->ninputs * sizeof *in_ct);
        if (!wanted || !in_ct) {
            free(wanted);
            free(in_ct);
            lz_release(ct);
            lz_fail("autograd: out of memory");
            return -1;
        }
    }
    for (int i = 0; i < a->ninputs; i++) in_ct[i] = NULL;
    for (int i = 0; i < a->ninputs; i++) {
        long j = find(t, a->inputs[i]);
        wanted[i] = j >= 0 && (t->flags[j] & ACTIVE) && lz_dtype_is_float(a->inputs[i]->dtype);
        any |= wanted[i];
    }
    if (any && (p->flags & LZ_FLAG_DIFF)) {   /* else: nothing to pass on, or a constant */
        if (p->vjp) {
            if (p->kind == LZ_KIND_KERNEL && q->n) {
                lz_array *w = after(t, q, ct, 0, NULL);
                lz_release(ct);
                ct = w;
            }
            lz_pool_push();
            atomic_fetch_add(&calls[a->prim], 1);
            rc = ct ? p->vjp(a, ct, wanted, in_ct) : -1;
            for (int i = 0; i < a->ninputs && !rc; i++)
                if (wanted[i] && in_ct[i]) rc = give(t, q, find(t, a->inputs[i]), in_ct[i]);
            lz_pool_pop();
        } else {
            lz_fail("autograd: no vjp rule for primitive %s yet", p->name);
            rc = -1;
        }
    }
    lz_release(ct);
    if (wanted != wanted_small) { free(wanted); free(in_ct); }
    return rc;
}

/* Whether a checkpointed block's outputs reach a wanted tracer other than through the
 * block's inputs (BLOCK_IN views of its record): the block read a differentiated array
 * that it was not given, whose gradient recomputation from the inputs cannot see. Walks
 * active nodes only, so a correct block is walked once, inside itself. */
static int reads_outside(tape *t, const lz_array *c, const long *idx, int nout) {
    const lz_array *rec = c->inputs[c->ninputs - 1];
    size_t n = 0, cap = 64;
    lz_array **stack = malloc(cap * sizeof *stack);
    int found = 0;
    if (!stack) return -1;
    for (int j = 0; j < nout; j++)
        if (idx[j] >= 0) stack[n++] = t->node[idx[j]]->inputs[0];
    while (n && !found) {
        lz_array *a = stack[--n];
        long j = find(t, a);
        if (j < 0 || !(t->flags[j] & ACTIVE) || (t->flags[j] & SEEN)) continue;
        t->flags[j] |= SEEN;
        if (t->flags[j] & TRACER) { found = 1; break; }
        if (ad_tag(a) == AD_BLOCK_IN_TAG && a->inputs[1] == rec) continue;
        if (n + (size_t)a->ninputs > cap) {
            cap = 2 * (n + (size_t)a->ninputs);
            lz_array **s = realloc(stack, cap * sizeof *s);
            if (!s) { found = -1; break; }
            stack = s;
        }
        for (int i = 0; i < a->ninputs; i++) stack[n++] = a->inputs[i];
    }
    free(stack);
    return found;
}

/* Runs the block again on its inputs, each made to wait for `gate` (the output cotangents
 * and the queued gradients, so that the recomputation happens during the backward pass and
 * not with the forward), and differentiates that copy with a nested vjp. */
static int recompute(tape *t, queue *q, lz_array *c, const ad_block *b, const long *idx,
                     lz_array *const *cts, int nd, lz_array *const *deps) {
    int n = b->n, rc = 0, any = 0;
    bool *wrt = calloc((size_t)n + 1, sizeof *wrt);
    lz_array **xr = calloc((size_t)n + 1, sizeof *xr), **g = calloc((size_t)n + 1, sizeof *g);
    if (!wrt || !xr || !g) {
        free(wrt);
        free(xr);
        free(g);
        lz_fail("checkpoint: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        lz_array *x = c->inputs[1 + i];
        long j = find(t, x);
        wrt[i] = j >= 0 && (t->flags[j] & ACTIVE) && lz_dtype_is_float(x->dtype);
        any |= wrt[i];
    }
    int outside = any ? reads_outside(t, c, idx, b->nout) : 0;
    if (outside) {
        lz_fail(outside < 0 ? "checkpoint: out of memory" :
                "checkpoint: the block reads an array that depends on a differentiated input "
                "but is not one of the block's inputs (a parameter taken from ctx?); pass it "
                "as an input so that its gradient can be computed");
        rc = -1;
    }
    if (any && !rc) {
        lz_pool_push();
        lz_array *gate = lz_autorelease(after(t, q, deps[0], nd - 1, deps + 1));
        rc = gate ? 0 : -1;
        for (int i = 0; i < n && !rc; i++)
            if (!(xr[i] = lz_autorelease(ad_mark(c->inputs[1 + i], AD_DEPENDS_TAG, 1, &gate))))
                rc = -1;
        int nout = rc ? -1 : ad_vjp_masked("checkpoint", b->fn, b->ctx, n, xr, wrt, b->nout,
                                           cts, g);
        if (nout >= 0 && nout != b->nout) {
            lz_fail("checkpoint: the block returned %d outputs when run again, %d the first "
                    "time: a block must be a deterministic function of its inputs",
                    nout, b->nout);
            nout = -1;
        }
        rc = nout < 0 ? -1 : 0;
        for (int i = 0; i < n && !rc; i++)
            if (wrt[i] && g[i]) rc = give(t, q, find(t, c->inputs[1 + i]), g[i]);
        lz_pool_pop();
    }
    free(wrt);
    free(xr);
    free(g);
    return rc;
}

/* The outputs of a checkpointed block are differentiated together, at the earliest of them
 * on the tape: by then every consumer of every output has given its cotangent. The block's
 * own forward graph (their input 0) gets nothing, so the backward never references it. */
static int block_vjp(tape *t, queue *q, size_t k) {
    lz_array *c = t->node[k];
    const ad_block *b = ad_block_of(c);
    long idx[LZ_FN_MAX_OUTPUTS];
    size_t first = k;
    for (int j = 0; j < b->nout; j++) {
        idx[j] = find(t, b->out[j]);
        if (idx[j] >= 0 && !ad_block_sibling(t->node[idx[j]], c, j)) idx[j] = -1;
        if (idx[j] >= 0 && (size_t)idx[j] < first) first = (size_t)idx[j];
    }
    if (first != k) return 0;   /* its cotangent waits for the earliest output */
    lz_array *cts[LZ_FN_MAX_OUTPUTS] = {NULL}, *deps[LZ_FN_MAX_OUTPUTS];
    int nd = 0, rc = 0;
    for (int j = 0; j < b->nout; j++) {
        if (idx[j] < 0) continue;
        cts[j] = t->ct[idx[j]];
        t->ct[idx[j]] = NULL;
        if (cts[j]) deps[nd++] = cts[j];
    }
    if (nd) rc = recompute(t, q, c, b, idx, cts, nd, deps);
    for (int j = 0; j < b->nout; j++) lz_release(cts[j]);
    return rc;
}

/* Runs the rules, consumers first. Tracers keep their cotangents (the results). */
static int backward(tape *t) {
    queue q = {0};
    int rc = 0;
    for (size_t k = t->n; k-- > 0 && !rc;) {
        if (t->flags[k] & TRACER) continue;
        if (ad_tag(t->node[k]) == AD_BLOCK_OUT_TAG) rc = block_vjp(t, &q, k);
        else if (t->ct[k]) rc = node_vjp(t, &q, k);
    }
    for (size_t i = 0; i < q.n; i++) t->flags[q.v[i]] &= (unsigned char)~QUEUED;
    free(q.v);
    return rc;
}

/* ---- the shared driver ---- */

/* Calls fn on tracers of the wanted inputs and differentiates outputs[j] (j < ncot) with
 * seed cotangents seeds[j] (NULL: none; for grad, the caller passes ones). Writes outputs and
 * grads. `op` names the transform in messages. */
static int run(const char *op, lz_fn fn, void *ctx, int n, lz_array *const *inputs,
               const bool *wrt, int ncot, lz_array *const *seeds, bool scalar_value,
               lz_array **outputs, int max_outputs, lz_array **grads) {
    lz_autograd_init();
    if (!fn) { lz_fail("%s: fn is NULL", op); return -1; }
    if (n < 0 || (n && !inputs)) { lz_fail("%s: %d inputs", op, n); return -1; }
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) {
            if (!lz_error()[0]) lz_fail("%s: input %d is NULL", op, i);
            return -1;
        }
        char s[160];
        if ((!wrt || wrt[i]) && !lz_dtype_is_float(inputs[i]->dtype)) {
            lz_fail("%s: input %d is %s: gradients are only taken w.r.t. float arrays", op, i,
                    lz_shape_str(inputs[i], s, sizeof s));
            return -1;
        }
    }
    lz_array **xs = calloc((size_t)n + 1, sizeof *xs);
    lz_array *outs[LZ_FN_MAX_OUTPUTS] = {NULL};
    tape t = {0};
    int nout = -1, rc = -1;
    if (!xs) { lz_fail("%s: out of memory", op); return -1; }
    for (int i = 0; i < n; i++) {
        xs[i] = (!wrt || wrt[i]) ? tracer(inputs[i]) : lz_retain(inputs[i]);
        if (!xs[i]) goto done;
        if (find(&t, xs[i]) < 0 && (!wrt || wrt[i]) &&
            append(&t, xs[i], TRACER | WANTED)) { lz_fail("%s: out of memory", op); goto done; }
    }

    lz_pool_push();
    nout = fn(ctx, n, xs, outs);
    if (nout > LZ_FN_MAX_OUTPUTS) {
        lz_fail("%s: fn returned %d outputs, more than LZ_FN_MAX_OUTPUTS", op, nout);
        nout = -1;
    }
    for (int j = 0; j < nout; j++) {
        if (!outs[j]) {
            if (!lz_error()[0]) lz_fail("%s: fn's output %d is NULL", op, j);
            nout = -1;
            break;
        }
    }
    if (nout == 0) { lz_fail("%s: fn returned no outputs", op); nout = -1; }
    for (int j = 0; j < LZ_FN_MAX_OUTPUTS; j++)   /* owned from here: the first nout */
        outs[j] = j < nout ? lz_retain(outs[j]) : NULL;
    lz_pool_pop();
    if (nout < 0) goto done;

    for (int i = 0; i < n; i++)
        if ((!wrt || wrt[i]) && !lz_is_pending(xs[i])) {
            lz_fail("%s: fn evaluated an array that depends on input %d (lz_eval, lz_item, "
                    "lz_to_float, lz_data... inside fn); the graph to differentiate is gone: "
                    "evaluate after the transform returns", op, i);
            goto done;
        }
    if (ncot > nout) {
        lz_fail("%s: %d cotangents for %d outputs", op, ncot, nout);
        goto done;
    }

    /* check and seed the differentiated outputs (grad: a ones seed for the scalar value) */
    lz_array *roots[LZ_FN_MAX_OUTPUTS], *seed[LZ_FN_MAX_OUTPUTS] = {NULL};
    for (int j = 0; j < ncot; j++) {
        char so[160], sc[160];
        lz_array *o = outs[j], *c = scalar_value ? o : seeds[j];
        roots[j] = o;
        lz_shape_str(o, so, sizeof so);
        if (scalar_value && lz_size(o) != 1) {
            lz_fail("%s: fn's value is %s, not a scalar: give a cotangent (lz_vjp) to "
                    "differentiate a non-scalar", op, so);
            goto done;
        }
        if (!c) continue;
        if (!lz_dtype_is_float(o->dtype)) {
            lz_fail("%s: output %d is %s: integer and bool outputs have no gradient", op, j, so);
            goto done;
        }
        if (c->ndim != o->ndim || memcmp(c->shape, o->shape, (size_t)o->ndim * sizeof *o->shape)) {
            lz_fail("%s: cotangent %d is %s but output %d is %s", op, j,
                    lz_shape_str(c, sc, sizeof sc), j, so);
            goto done;
        }
        seed[j] = c;
    }
    if (order(&t, ncot, roots)) goto done;
    mark_active(&t);
    for (int j = 0; j < ncot; j++) {
        long k = find(&t, outs[j]);
        if (!seed[j] || k < 0 || !(t.flags[k] & ACTIVE)) continue;
        int bad;
        if (scalar_value) {
            lz_pool_push();
            bad = accumulate(&t, k, lz_ones(outs[j]->ndim, outs[j]->shape, outs[j]->dtype));
            lz_pool_pop();
        } else {
            bad = accumulate(&t, k, seed[j]);
        }
        if (bad) goto done;
    }
    if (backward(&t)) goto done;

    /* gradients: the tracers' cotangents, or zeros */
    for (int i = 0; i < n; i++) {
        if (wrt && !wrt[i]) { grads[i] = NULL; continue; }
        long k = find(&t, xs[i]);
        lz_array *g = k >= 0 ? t.ct[k] : NULL;
        if (g) {
            t.ct[k] = NULL;
        } else {
            lz_pool_push();
            g = lz_retain(lz_zeros(inputs[i]->ndim, inputs[i]->shape, inputs[i]->dtype));
            lz_pool_pop();
        }
        grads[i] = g;
    }
    rc = 0;
done:
    if (rc) {
        for (int i = 0; i < n && grads; i++) grads[i] = NULL;
        for (int j = 0; j < LZ_FN_MAX_OUTPUTS; j++) lz_release(outs[j]);
        nout = -1;
    } else {
        for (int i = 0; i < n; i++) lz_autorelease(grads[i]);
        for (int j = 0; j < nout; j++) {
            if (j < max_outputs) outputs[j] = lz_autorelease(outs[j]);
            else lz_release(outs[j]);
        }
        for (int j = nout; j < max_outputs; j++) outputs[j] = NULL;
    }
    tape_free(&t);
    for (int i = 0; i < n; i++) lz_release(xs[i]);
    free(xs);
    return nout;
}

int lz_value_and_grad(lz_fn fn, void *ctx, int n, lz_array *const *inputs, const bool *wrt,
                      lz_array **outputs, int max_outputs, lz_array **grads) {
    return run("value_and_grad", fn, ctx, n, inputs, wrt, 1, NULL, true, outputs, max_outputs,
               grads);
}

int lz_grad(lz_fn fn, void *ctx, int n, lz_array *const *inputs, const bool *wrt,
            lz_array **grads) {
    return run("grad", fn, ctx, n, inputs, wrt, 1, NULL, true, NULL, 0, grads) < 0 ? -1 : 0;
}

int ad_vjp_masked(const char *op, lz_fn fn, void *ctx, int n, lz_array *const *primals,
                  const bool *wrt, int ncot, lz_array *const *cotangents, lz_array **grads) {
    return run(op, fn, ctx, n, primals, wrt, ncot, cotangents, false, NULL, 0, grads);
}

int lz_vjp(lz_fn fn, void *ctx, int n, lz_array *const *primals, int ncot,
           lz_array *const *cotangents, lz_array **outputs, int max_outputs, lz_array **grads) {
    if (ncot < 0 || (ncot && !cotangents)) { lz_fail("vjp: %d cotangents", ncot); return -1; }
    return run("vjp", fn, ctx, n, primals, NULL, ncot, cotangents, false, outputs, max_outputs,
               grads);
}
