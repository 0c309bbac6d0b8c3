/* lz_eval: the scheduler. It never computes anything itself: it orders the pending graph,
 * groups elementwise trees for fusion, hands each group or node to the backend, and frees
 * as it goes.
 *
 *   1. collect   depth-first walk (explicit stack) from the targets over pending nodes,
 *                producing a topological order (inputs before consumers);
 *   2. count     for each node, how many edges of this graph use it and whether a single
 *                node consumes it; an array with more references than uses (pools aside) is
 *                held from outside (a target, a user handle) and must keep its value;
 *   3. group     walking consumers before producers, an elementwise node joins its
 *                consumer's group when that consumer is elementwise of the same shape, or a
 *                reduction of it, and no other node of the graph needs its value. If nobody
 *                outside needs it either, it will never own memory; if someone does (a
 *                target, a user handle: an optimizer's new moment read by the new
 *                parameter), the group stores it too, as it goes (elementwise groups only);
 *                Then an elementwise root that nothing in the graph consumes joins the next
 *                elementwise group of its shape that reads one of its leaves, as a stored
 *                value (sibling fusion: the shared leaves are read once); it runs at that
 *                group's place in the order, after all its own inputs;
 *   4. run       each group root in order: allocate the output (taking over a dying input's
 *                buffer when sizes match: donation), run the group or kernel, then detach the
 *                node from its inputs. Detaching drops references, so an intermediate's buffer
 *                goes back to the allocator the moment its last consumer has run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

lz_prim_info lz_prims[LZ_NPRIMS] = {
#define LZ_X(e, nm, k, f) [LZ_P_##e] = {.name = nm, .kind = LZ_KIND_##k, .flags = f},
#define D LZ_FLAG_DIFF
    LZ_PRIM_LIST(LZ_X)
#undef D
#undef LZ_X
};

static pthread_once_t registered = PTHREAD_ONCE_INIT;
static pthread_mutex_t eval_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t epoch;

typedef struct { lz_array **v; size_t n, cap; } list;

static int push(list *l, lz_array *a) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        lz_array **v = realloc(l->v, cap * sizeof *v);
        if (!v) { lz_fail("out of memory while scheduling"); return -1; }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = a;
    return 0;
}

/* 1. Topological order of the pending nodes reachable from the targets. A node is pushed
 * to `order` after all its pending inputs; `stack` holds (node, next input) pairs. */
static int collect(int n, lz_array *const *targets, list *order) {
    struct frame { lz_array *a; int next; } *stack = NULL;
    size_t sn = 0, scap = 0;
    int rc = 0;
    for (int t = 0; t < n && !rc; t++) {
        if (!lz_is_pending(targets[t]) || targets[t]->mark == epoch) continue;
        targets[t]->mark = epoch;
        if (sn == scap) {
            scap = scap ? 2 * scap : 64;
            struct frame *s = realloc(stack, scap * sizeof *s);
            if (!s) { rc = -1; break; }
            stack = s;
        }
        stack[sn++] = (struct frame){targets[t], 0};
        while (sn && !rc) {
            struct frame *f = &stack[sn - 1];
            if (f->next == f->a->ninputs) {
                rc = push(order, f->a);
                sn--;
                continue;
            }
            lz_array *in = f->a->inputs[f->next++];
            if (!lz_is_pending(in) || in->mark == epoch) continue;
            in->mark = epoch;
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
    if (rc) lz_fail("out of memory while scheduling");
    return rc;
}

/* 2. Uses and single consumers. */
static void count(const list *order) {
    for (size_t k = 0; k < order->n; k++) {
        lz_array *a = order->v[k];
        a->uses = 0;
        a->consumer = NULL;
        a->group = a;
        a->group_size = 1 + a->ninputs;
        a->group_outs = 0;
        a->store = false;
        a->siblings = a->next_sibling = NULL;
    }
    for (size_t k = 0; k < order->n; k++) {
        lz_array *a = order->v[k];
        for (int i = 0; i < a->ninputs; i++) {
            lz_array *in = a->inputs[i];
            if (!lz_is_pending(in)) continue;
            in->consumer = (in->uses == 0 || in->consumer == a) ? a : NULL;
            in->uses++;
        }
    }
}

static bool same_shape(const lz_array *a, const lz_array *b) {
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape);
}

/* 3. Fusion groups, consumers first. */
static void group(const list *order) {
    for (size_t k = order->n; k-- > 0;) {
        lz_array *a = order->v[k], *c = a->consumer;
        if (lz_prims[a->prim].kind != LZ_KIND_EW || !c) continue;
        /* Someone outside this graph holds it: the group must store its value. References
         * held only by autorelease pools do not count: code that evaluates inside a pool
         * still fuses, and a fused node stays pending, so reading it later recomputes it
         * from its inputs. */
        bool held = atomic_load(&a->refs) - atomic_load(&a->pool_refs) != a->uses;
        int ck = lz_prims[c->prim].kind;
        bool ok = (ck == LZ_KIND_EW && same_shape(a, c)) ||
                  (ck == LZ_KIND_REDUCE && c->inputs[0] == a);
        lz_array *root = c->group;
        if (!ok || root->group_size + a->ninputs + 1 > LZ_FUSE_MAX) continue;
        if (held && (lz_prims[root->prim].kind != LZ_KIND_EW || root->group_outs == LZ_FUSE_OUTS))
            continue;
        a->group = root;
        a->store = held;
        root->group_size += a->ninputs + 1;
        root->group_outs += held;
    }
}

/* The leaves of a's group below a (distinct, at most LZ_FUSE_MAX). */
static void group_leaves(lz_array *a, lz_array *root, lz_array **leaves, int *n) {
    if (a->group != root || !lz_is_pending(a) || lz_prims[a->prim].kind != LZ_KIND_EW) {
        for (int j = 0; j < *n; j++)
            if (leaves[j] == a) return;
        if (*n < LZ_FUSE_MAX) leaves[(*n)++] = a;
        return;
    }
    for (int i = 0; i < a->ninputs; i++) group_leaves(a->inputs[i], root, leaves, n);
}

/* Whether the part of root's group under a reads one of leaves[0..n). */
static bool reads_any(lz_array *a, lz_array *root, lz_array *const *leaves, int n) {
    if (a->group != root || !lz_is_pending(a) || lz_prims[a->prim].kind != LZ_KIND_EW) {
        for (int j = 0; j < n; j++)
            if (leaves[j] == a) return true;
        return false;
    }
    for (int i = 0; i < a->ninputs; i++)
        if (reads_any(a->inputs[i], root, leaves, n)) return true;
    return false;
}

static void regroup(lz_array *a, lz_array *from, lz_array *to) {
    if (a->group != from || !lz_is_pending(a) || lz_prims[a->prim].kind != LZ_KIND_EW) return;
    for (int i = 0; i < a->ninputs; i++) regroup(a->inputs[i], from, to);
    a->group = to;
}

/* 3b. Sibling roots (see the top of the file). The next few groups after r are looked at:
 * a graph's independent updates are collected one after the other. */
static void merge_siblings(const list *order) {
    enum { LOOK = 8 };
    lz_array *mine[LZ_FUSE_MAX];
    for (size_t k = 0; k < order->n; k++) {
        lz_array *r = order->v[k];
        if (r->group != r || r->uses || lz_prims[r->prim].kind != LZ_KIND_EW) continue;
        int nm = 0, seen = 0;
        group_leaves(r, r, mine, &nm);
        for (size_t j = k + 1; j < order->n && seen < LOOK; j++) {
            lz_array *R = order->v[j];
            if (R->group != R) continue;
            seen++;
            if (lz_prims[R->prim].kind != LZ_KIND_EW || !same_shape(r, R) ||
                R->group_size + r->group_size > LZ_FUSE_MAX ||
                R->group_outs + r->group_outs + 1 > LZ_FUSE_OUTS)
                continue;
            bool shared = reads_any(R, R, mine, nm);
            for (lz_array *s = R->siblings; s && !shared; s = s->next_sibling)
                shared = reads_any(s, R, mine, nm);
            if (!shared) continue;
            regroup(r, r, R);
            for (lz_array *s = r->siblings; s; s = s->next_sibling) regroup(s, r, R);
            r->store = true;
            r->next_sibling = R->siblings;
            R->siblings = r;
            for (lz_array *s = r->siblings, *next; s; s = next) {   /* r's own siblings too */
                next = s->next_sibling;
                s->next_sibling = R->siblings;
                R->siblings = s;
            }
            r->siblings = NULL;
            R->group_size += r->group_size;
            R->group_outs += r->group_outs + 1;
            break;
        }
    }
}

/* Builds the program of a group: post-order from the elementwise root. Leaves get negative
 * provisional ids (-1 - leaf index), instructions their index; fixed up at the end. */
static int emit(lz_fused *g, lz_array *a, lz_array *root) {
    if (a->group != root || !lz_is_pending(a) || lz_prims[a->prim].kind != LZ_KIND_EW) {
        for (int j = 0; j < g->nleaves; j++)
            if (g->leaves[j] == a) return -1 - j;
        g->leaves[g->nleaves] = a;
        return -1 - g->nleaves++;
    }
    for (int k = 0; k < g->ninstr; k++)   /* read twice by its consumer (x * x): once */
        if (g->instr[k].node == a) return k;
    int src[3] = {0, 0, 0};
    for (int i = 0; i < a->ninputs; i++) src[i] = emit(g, a->inputs[i], root);
    int k = g->ninstr++;
    g->instr[k].node = a;
    memcpy(g->instr[k].src, src, sizeof src);
    if (a->store && a != root) {
        g->outs[g->nouts].node = a;
        g->outs[g->nouts++].instr = k;
    }
    return k;
}

static void build(lz_fused *g, lz_array *root) {
    memset(g, 0, sizeof *g);
    bool reduce = lz_prims[root->prim].kind == LZ_KIND_REDUCE;
    g->reduce = reduce ? root : NULL;
    lz_array *top = reduce ? root->inputs[0] : root;
    if (reduce && top->group != root) {     /* a reduction of a materialised array */
        g->leaves[g->nleaves++] = top;
    } else {
        for (lz_array *s = root->siblings; s; s = s->next_sibling) emit(g, s, root);
        emit(g, top, root);                 /* last: its value is the group's */
    }
    g->out = top;
    for (int k = 0; k < g->ninstr; k++)
        for (int i = 0; i < 3; i++) {
            int s = g->instr[k].src[i];
            g->instr[k].src[i] = s < 0 ? -1 - s : g->nleaves + s;
        }
}

static size_t nbytes_of(const lz_array *a) {
    size_t n = (size_t)lz_size(a) * lz_dtype_size(a->dtype);
    return n ? n : 1;
}

/* Donation: an elementwise group may write a value into a leaf's buffer if that leaf dies
 * here (only this group references it), nobody else shares the buffer, and its layout is
 * exactly the value's (so tile i of the output only overwrites tile i of the input after
 * reading it: every stored value is written after its tile's program has run). `taken`
 * marks the leaves already given to another value of the group. */
static lz_buffer *donor(const lz_fused *g, const lz_array *out, bool *taken, lz_device d) {
    size_t need = nbytes_of(out);
    int here = d == LZ_GPU ? LZ_VALID_DEV : LZ_VALID_HOST;
    for (int j = 0; j < g->nleaves; j++) {
        lz_array *l = g->leaves[j];
        if (taken[j]) continue;
        if (!(l->buf->valid & here)) continue;   /* a host scalar a GPU kernel takes by value */
        int edges = 0;
        for (int k = 0; k < g->ninstr; k++)
            for (int i = 0; i < g->instr[k].node->ninputs; i++)
                edges += g->instr[k].node->inputs[i] == l;
        if (atomic_load(&l->refs) != edges || atomic_load(&l->buf->refs) != 1) continue;
        if (l->offset || !lz_is_contiguous(l) || !same_shape(l, out)) continue;
        if (lz_dtype_size(l->dtype) != lz_dtype_size(out->dtype) || l->buf->nbytes < need)
            continue;
        taken[j] = true;
        lz_buffer_retain(l->buf);
        return l->buf;
    }
    return NULL;
}

static void detach(lz_array *a) {
    for (int i = 0; i < a->ninputs; i++) lz_release(a->inputs[i]);
    free(a->inputs);
    a->inputs = NULL;
    a->ninputs = 0;
    a->prim = LZ_P_NONE;
    a->depth = 0;
}

/* Where a node runs: the device it was built for, if that device's backend runs it (a
 * primitive without a GPU kernel runs on the CPU, counted in lz_stats). */
static lz_device placement(const lz_array *a) {
    if (a->device != LZ_GPU || !lz_gpu()) return LZ_CPU;
    const lz_prim_info *p = &lz_prims[a->prim];
    if (p->kind == LZ_KIND_KERNEL && !p->gpu) {
        lz_stats_add_fallback();
        return LZ_CPU;
    }
    return LZ_GPU;
}

/* The output buffer of node a on d; a failure names the op and its shape after the
 * allocator's reason ("out of memory (device): ..., for exp -> float32[1024]"). */
static lz_buffer *alloc_for(lz_array *a, lz_device d) {
    lz_buffer *b = lz_buffer_alloc_on(d, nbytes_of(a));
    if (!b) {
        char why[400], s[160];
        snprintf(why, sizeof why, "%s", lz_error());
        lz_fail("%s, for %s -> %s", why, lz_prims[a->prim].name, lz_shape_str(a, s, sizeof s));
    }
    return b;
}

/* Makes the inputs' buffers valid on d; a fused group on the GPU takes a host scalar as a
 * kernel argument instead (lz_is_host_scalar). */
static int sync_all(int n, lz_array *const *xs, lz_device d, bool fused) {
    for (int i = 0; i < n; i++) {
        if (!xs[i]->buf || (fused && d == LZ_GPU && lz_is_host_scalar(xs[i]))) continue;
        if (lz_buffer_sync(xs[i]->buf, d)) return -1;
    }
    return 0;
}

/* 4. Runs one group root or kernel node. */
static int run(lz_array *a) {
    const lz_prim_info *p = &lz_prims[a->prim];
    if (p->kind == LZ_KIND_VIEW) {
        a->buf = a->inputs[0]->buf;
        lz_buffer_retain(a->buf);
        return 0;
    }
    lz_device d = placement(a);
    if (p->kind == LZ_KIND_EW || p->kind == LZ_KIND_REDUCE) {
        lz_fused g;
        build(&g, a);
        if (sync_all(g.nleaves, g.leaves, d, true)) return -1;
        bool taken[LZ_FUSE_MAX] = {false};
        a->buf = p->kind == LZ_KIND_EW ? donor(&g, a, taken, d) : NULL;
        int rc = !a->buf && !(a->buf = alloc_for(a, d)) ? -1 : 0;
        for (int o = 0; o < g.nouts && !rc; o++) {
            lz_array *x = g.outs[o].node;
            if (!(x->buf = donor(&g, x, taken, d)) && !(x->buf = alloc_for(x, d)))
                rc = -1;
        }
        lz_stats_add_nodes((uint64_t)g.ninstr + (g.reduce != NULL));
        if (!rc) rc = d == LZ_GPU ? lz_gpu()->run_fused(&g) : lz_cpu_backend.run_fused(&g);
        if (!rc) lz_buffer_wrote(a->buf, d);
        for (int o = 0; o < g.nouts; o++) {   /* stored values are evaluated arrays now */
            lz_array *x = g.outs[o].node;
            if (!rc) {
                lz_buffer_wrote(x->buf, d);
                detach(x);
            } else {
                lz_buffer_release(x->buf);
                x->buf = NULL;
            }
        }
        return rc;
    }
    lz_kernel_fn k = d == LZ_GPU ? p->gpu : p->cpu;
    if (!k) {
        lz_fail("%s: no CPU kernel", p->name);
        return -1;
    }
    if (sync_all(a->ninputs, a->inputs, d, false)) return -1;
    if (!(a->buf = alloc_for(a, d))) return -1;
    lz_stats_add_nodes(1);
    int rc = k(a, a->inputs, &a->params);
    if (!rc) lz_buffer_wrote(a->buf, d);
    return rc;
}

int lz_eval(int n, lz_array *const *arrays) {
    for (int i = 0; i < n; i++)
        if (!arrays[i]) {
            if (!lz_error()[0]) lz_fail("lz_eval: array %d is NULL", i);
            return -1;
        }
    pthread_once(&registered, lz_cpu_register);
    pthread_mutex_lock(&eval_lock);
    epoch++;
    list order = {0};
    int rc = collect(n, arrays, &order);
    if (!rc) {
        count(&order);
        group(&order);
        merge_siblings(&order);
        for (size_t k = 0; k < order.n && !rc; k++) {
            lz_array *a = order.v[k];
            if (a->group != a) continue;          /* computed inside its group */
            rc = run(a);
            if (rc) {
                lz_buffer_release(a->buf);
                a->buf = NULL;
            } else {
                detach(a);
            }
        }
    }
    free(order.v);
    pthread_mutex_unlock(&eval_lock);
    return rc;
}

int lz_eval1(lz_array *a) { return lz_eval(1, &a); }

/* ---- threads ---- */
static int nthreads;
static int cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
void lz_set_threads(int n) {
    pthread_once(&registered, lz_cpu_register);
    nthreads = n > 0 ? n : cores();
    lz_cpu_backend.set_threads(nthreads);
}
int lz_threads(void) { return nthreads > 0 ? nthreads : cores(); }
