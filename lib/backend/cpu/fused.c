/* The fused elementwise engine: a tile interpreter. A group's program runs over the index
 * space tile by tile (LZ_TILE elements); each instruction is one vectorised loop over the
 * tile, with its operands in registers that stay in cache. Memory is read once per leaf and
 * written once for the output, however long the chain. Contiguous float32 leaves are read in
 * place (no copy into a register). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"

void cpu_load(const char *base, lz_dtype t, int ndim, const int64_t *shape,
              const int64_t *strides, int64_t start, int64_t n, int rep, void *dst) {
    float *f = dst;
    int64_t *q = dst;
    size_t es = lz_dtype_size(t);
    int64_t idx[LZ_MAX_DIMS], off = 0, rem = start;
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? rem % shape[d] : 0;
        rem = shape[d] ? rem / shape[d] : 0;
        off += idx[d] * strides[d];
    }
    int last = ndim - 1;
    int64_t inner = ndim ? shape[last] : 1, st = ndim ? strides[last] : 0;
    for (int64_t k = 0; k < n;) {
        int64_t run = ndim ? inner - idx[last] : n;
        if (run > n - k) run = n - k;
        const char *p = base + off * (int64_t)es;
        if (t == LZ_F32 && rep == REP_F) {
            const float *s = (const float *)p;
            if (st == 1) memcpy(f + k, s, (size_t)run * 4);
            else for (int64_t j = 0; j < run; j++) f[k + j] = s[j * st];
        } else if (t == LZ_U8 && rep == REP_F) {
            const uint8_t *s = (const uint8_t *)p;
            for (int64_t j = 0; j < run; j++) f[k + j] = s[j * st];
        } else if (rep == REP_F) {
            for (int64_t j = 0; j < run; j++)
                f[k + j] = (float)lz_load_scalar(p + j * st * (int64_t)es, t);
        } else {
            for (int64_t j = 0; j < run; j++) q[k + j] = lz_load_int(p + j * st * (int64_t)es, t);
        }
        k += run;
        if (!ndim) break;
        off += run * st;
        idx[last] += run;
        for (int d = last; d > 0 && idx[d] >= shape[d]; d--) {   /* carry */
            off -= idx[d] * strides[d];
            idx[d] = 0;
            idx[d - 1]++;
            off += strides[d - 1];
        }
    }
}

void cpu_store(void *dst, lz_dtype t, int rep, const void *src, int64_t n) {
    const float *f = src;
    const int64_t *q = src;
    if (rep == REP_F) {
        switch (t) {
        case LZ_F32: if (dst != src) memcpy(dst, src, (size_t)n * 4); return;
        case LZ_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = lz_f32_to_f16(f[i]); return;
        case LZ_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = lz_f32_to_bf16(f[i]); return;
        default: for (int64_t i = 0; i < n; i++) lz_store_scalar((char *)dst + i * (int64_t)lz_dtype_size(t), t, f[i]); return;
        }
    }
    switch (t) {
    case LZ_I64: if (dst != src) memcpy(dst, src, (size_t)n * 8); return;
    case LZ_I32: for (int64_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)q[i]; return;
    case LZ_U8: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)q[i]; return;
    case LZ_BOOL: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = q[i] != 0; return;
    default: for (int64_t i = 0; i < n; i++) lz_store_scalar((char *)dst + i * (int64_t)lz_dtype_size(t), t, (double)q[i]); return;
    }
}

void cpu_program_init(cpu_program *p, const lz_fused *g, const int *perm) {
    const lz_array *out = g->out;
    p->g = g;
    p->ndim = out->ndim;
    for (int d = 0; d < out->ndim; d++) p->shape[d] = out->shape[perm ? perm[d] : d];
    int64_t cs[LZ_MAX_DIMS];
    lz_contiguous_strides(p->ndim, p->shape, cs);
    for (int j = 0; j < g->nleaves; j++) {
        const lz_array *l = g->leaves[j];
        p->leaf[j].base = lz_elem_ptr(l);
        p->leaf[j].dtype = l->dtype;
        bool contig = true;
        for (int d = 0; d < p->ndim; d++) {
            int64_t s = l->strides[perm ? perm[d] : d];
            p->leaf[j].strides[d] = s;
            if (p->shape[d] != 1 && s != cs[d]) contig = false;
        }
        p->leaf[j].contiguous = contig;
    }
    p->nregs = g->nleaves + g->ninstr;
}

size_t cpu_program_scratch(const cpu_program *p) {
    return (size_t)p->nregs * LZ_TILE * 8;
}

static lz_dtype reg_dtype(const lz_fused *g, int r) {
    return r < g->nleaves ? g->leaves[r]->dtype : g->instr[r - g->nleaves].node->dtype;
}

/* Reads leaf j into a register, or returns its memory directly when it already is one. */
static const void *leaf_reg(const cpu_program *p, int j, int rep, int64_t start, int64_t n,
                            void *slot) {
    lz_dtype t = p->leaf[j].dtype;
    size_t es = lz_dtype_size(t);
    if (p->leaf[j].contiguous) {
        const char *src = p->leaf[j].base + start * (int64_t)es;
        if (rep == REP_F && t == LZ_F32) return src;
        if (rep == REP_I && t == LZ_I64) return src;
        int64_t one = n, s1 = 1;
        cpu_load(src, t, 1, &one, &s1, 0, n, rep, slot);
        return slot;
    }
    cpu_load(p->leaf[j].base, t, p->ndim, p->shape, p->leaf[j].strides, start, n, rep, slot);
    return slot;
}

const void *cpu_program_run(const cpu_program *p, int64_t start, int64_t n, void *scratch,
                            void *dst) {
    const lz_fused *g = p->g;
    const void *regs[2 * LZ_FUSE_MAX];
    char *slot = scratch;
    for (int j = 0; j < g->nleaves; j++, slot += LZ_TILE * 8)
        regs[j] = leaf_reg(p, j, rep_of(g->leaves[j]->dtype), start, n, slot);
    if (!g->ninstr) return regs[0];
    for (int k = 0; k < g->ninstr; k++, slot += LZ_TILE * 8) {
        const lz_array *node = g->instr[k].node;
        const int *src = g->instr[k].src;
        void *out = slot;
        if (k == g->ninstr - 1 && dst &&
            ((rep_of(node->dtype) == REP_F && node->dtype == LZ_F32) || node->dtype == LZ_I64))
            out = dst;
        const void *in[3] = {NULL, NULL, NULL};
        for (int i = 0; i < node->ninputs; i++) in[i] = regs[src[i]];
        if (node->prim == LZ_P_CAST || node->prim == LZ_P_COPY) {
            int from = rep_of(reg_dtype(g, src[0])), to = rep_of(node->dtype);
            if (from == to) {
                if (to == REP_F || node->dtype == LZ_I64 || node->dtype == LZ_I32 ||
                    reg_dtype(g, src[0]) == node->dtype) {
                    if (out != in[0]) memcpy(out, in[0], (size_t)n * 8 / (to == REP_F ? 2 : 1));
                } else {   /* narrowing between integer types: wrap like the stored dtype */
                    const int64_t *a = in[0];
                    int64_t *o = out;
                    for (int64_t i = 0; i < n; i++)
                        o[i] = node->dtype == LZ_BOOL ? a[i] != 0 : (int64_t)(uint8_t)a[i];
                }
            } else if (to == REP_F) {
                const int64_t *a = in[0];
                float *o = out;
                for (int64_t i = 0; i < n; i++) o[i] = (float)a[i];
            } else {
                const float *a = in[0];
                int64_t *o = out;
                if (node->dtype == LZ_BOOL)
                    for (int64_t i = 0; i < n; i++) o[i] = a[i] != 0;
                else
                    for (int64_t i = 0; i < n; i++)
                        o[i] = a[i] != a[i] ? 0 : a[i] >= 9.2e18f ? INT64_MAX
                             : a[i] <= -9.2e18f ? INT64_MIN : (int64_t)a[i];
            }
        } else {
            int vrep = rep_of(reg_dtype(g, src[node->prim == LZ_P_WHERE ? 1 : 0]));
            ew_fn f = vrep == REP_F ? cpu_ew[node->prim].f : cpu_ew[node->prim].i;
            f(n, out, in[0], in[1], in[2], &node->params);
        }
        regs[g->nleaves + k] = out;
    }
    return regs[g->nleaves + g->ninstr - 1];
}

static int run_elementwise(const lz_fused *g) {
    cpu_program p;
    cpu_program_init(&p, g, NULL);
    lz_array *out = g->out;
    int64_t n = lz_size(out), ntiles = (n + LZ_TILE - 1) / LZ_TILE;
    size_t es = lz_dtype_size(out->dtype), scratch = cpu_program_scratch(&p);
    int rep = rep_of(out->dtype);
    char *dst0 = out->buf->data;
    int threads = n >= 65536 ? cpu_threads() : 1;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        void *s = malloc(scratch);
        if (!s) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < ntiles; t++) {
            if (!s) continue;
            int64_t start = t * LZ_TILE, m = n - start < LZ_TILE ? n - start : LZ_TILE;
            char *dst = dst0 + start * (int64_t)es;
            const void *v = cpu_program_run(&p, start, m, s, dst);
            if (v != dst) cpu_store(dst, out->dtype, rep, v, m);
        }
        free(s);
    }
    if (failed) { lz_fail("out of memory in the elementwise engine"); return -1; }
    uint64_t moved = (uint64_t)n * es;
    for (int j = 0; j < g->nleaves; j++) moved += (uint64_t)n * lz_dtype_size(g->leaves[j]->dtype);
    lz_stats_add(1, moved, 0);
    lz_stats_add_fused((uint64_t)g->ninstr);
    return 0;
}

static int run_fused(const lz_fused *g) {
    return g->reduce ? cpu_reduce(g) : run_elementwise(g);
}

static int threads;
int cpu_threads(void) { return threads > 0 ? threads : omp_get_num_procs(); }

void openblas_set_num_threads(int);
static void set_threads(int n) {
    threads = n > 0 ? n : omp_get_num_procs();
    openblas_set_num_threads(threads);
}

const lz_backend lz_cpu_backend = {"cpu", run_fused, set_threads};
