/* The fused elementwise engine: a tile interpreter. A group's program runs over the index
 * space tile by tile (LZ_TILE elements); each instruction is one vectorised loop over the
 * tile, with its operands in registers that stay in cache. Memory is read once per leaf and
 * written once for the output, however long the chain.
 *
 * Registers are scratch slots of one tile. Contiguous leaves already in a register's rep
 * (f32, i64) are read in place; constant leaves (a broadcast scalar) are filled once per
 * thread; an instruction writes over the slot of an operand that dies there (same rep: the
 * kernels allow exact aliasing), so a chain of any length runs in a couple of slots that stay
 * in L1 instead of one slot per instruction. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#ifdef __AVX__
#include <immintrin.h>
#endif

/* float16 <-> float32 in integer arithmetic that gcc vectorises (it does not vectorise
 * _Float16 conversions without AVX512-FP16); bit-identical to half.h's for every input,
 * NaN payloads included (checked exhaustively when written; tests/test_elementwise.c checks
 * all 65536 halves and the rounding cases). */
static inline uint32_t fbits(float x) { union { float f; uint32_t u; } v = {.f = x}; return v.u; }
static inline float bitsf(uint32_t u) { union { uint32_t u; float f; } v = {.u = u}; return v.f; }

static inline float f16_to_f32(uint16_t h) {
    uint32_t em = h & 0x7fffu, sign = (uint32_t)(h & 0x8000u) << 16;
    /* exponent rebias by a multiply, which also normalises denormals; inf and NaN by hand */
    uint32_t u = em >= 0x7c00u ? (em << 13) | 0x7f800000u : fbits(bitsf(em << 13) * 0x1p112f);
    return bitsf(u | sign);
}

static inline uint16_t f32_to_f16(float f) {
    uint32_t x = fbits(f), a = x & 0x7fffffffu;
    /* normal: rebias (-112 << 23) and round the 13 dropped bits to nearest even (a carry
     * into the exponent is right, up to inf); denormal: adding 0.5 rounds to a multiple of
     * 2^-24 in float's own rounding; NaN stays quiet NaN with its high payload bits */
    uint32_t nrm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    uint32_t den = fbits(bitsf(a) + 0.5f) - 0x3f000000u;
    uint32_t big = a > 0x7f800000u ? 0x7e00u | ((a >> 13) & 0x3ffu) : 0x7c00u;
    uint32_t r = a < 0x38800000u ? den : a < 0x47800000u ? nrm : big;
    return (uint16_t)(r | ((x >> 16) & 0x8000u));
}

/* f rounded to float16 precision, staying a float: f16_to_f32(f32_to_f16(f)) for every f
 * (checked exhaustively) at half the cost, all in 32-bit lanes. */
static inline float f16_round(float f) {
    uint32_t x = fbits(f), a = x & 0x7fffffffu;
    uint32_t nrm = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;   /* 10 mantissa bits, RNE */
    nrm = nrm >= 0x47800000u ? 0x7f800000u : nrm;                /* past 65504: inf */
    uint32_t den = fbits((bitsf(a) + 0.5f) - 0.5f);              /* a multiple of 2^-24 */
    uint32_t r = a < 0x38800000u ? den : a < 0x7f800000u ? nrm : a > 0x7f800000u ? a | 0x400000u : a;
    return bitsf(r | (x & 0x80000000u));
}

/* Converts `run` elements of type t at p (element stride st) to rep at d. The st == 1
 * loops are separate so that they vectorise. */
#define RUN(T, expr)                                                                   \
    do {                                                                               \
        const T *s = (const T *)p;                                                     \
        if (st == 1) for (int64_t j = 0; j < run; j++) { T v = s[j]; d[j] = (expr); }  \
        else for (int64_t j = 0; j < run; j++) { T v = s[j * st]; d[j] = (expr); }     \
    } while (0)

static void load_run_f(const char *p, lz_dtype t, int64_t st, int64_t run, float *d) {
    switch (t) {
    case LZ_F32: if (st == 1) memcpy(d, p, (size_t)run * 4); else RUN(float, v); return;
    case LZ_F16: RUN(uint16_t, f16_to_f32(v)); return;
    case LZ_BF16: RUN(uint16_t, lz_bf16_to_f32(v)); return;
    case LZ_I32: RUN(int32_t, (float)v); return;
    case LZ_I64: RUN(int64_t, (float)v); return;
    case LZ_U8: RUN(uint8_t, (float)v); return;
    case LZ_BOOL: RUN(uint8_t, v != 0); return;
    default: return;
    }
}

static void load_run_i(const char *p, lz_dtype t, int64_t st, int64_t run, int64_t *d) {
    switch (t) {
    case LZ_I64: if (st == 1) memcpy(d, p, (size_t)run * 8); else RUN(int64_t, v); return;
    case LZ_I32: RUN(int32_t, v); return;
    case LZ_U8: RUN(uint8_t, v); return;
    case LZ_BOOL: RUN(uint8_t, v != 0); return;
    default:
        for (int64_t j = 0; j < run; j++) d[j] = lz_load_int(p + j * st * (int64_t)lz_dtype_size(t), t);
        return;
    }
}

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
        if (rep == REP_F) load_run_f(p, t, ndim ? st : 0, run, f + k);
        else load_run_i(p, t, ndim ? st : 0, run, q + k);
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
        case LZ_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_f16(f[i]); return;
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

static lz_dtype reg_dtype(const lz_fused *g, int r) {
    return r < g->nleaves ? g->leaves[r]->dtype : g->instr[r - g->nleaves].node->dtype;
}

static bool in_place(const cpu_program *p, int j) {
    lz_dtype t = p->leaf[j].dtype;
    return p->leaf[j].contiguous && (t == LZ_F32 || t == LZ_I64);
}

/* Register allocation over the program (a tree in post-order): leaves that are not read in
 * place keep a slot for the whole run; an instruction takes the slot of an operand whose last
 * use it is when the reps match (exact aliasing), else a freed or new slot. */
static void plan_slots(cpu_program *p) {
    const lz_fused *g = p->g;
    int nl = g->nleaves, last[2 * LZ_FUSE_MAX], freed[2 * LZ_FUSE_MAX], nfree = 0, ns = 0;
    for (int v = 0; v < nl + g->ninstr; v++) last[v] = -1;
    for (int k = 0; k < g->ninstr; k++)
        for (int i = 0; i < g->instr[k].node->ninputs; i++) last[g->instr[k].src[i]] = k;
    for (int j = 0; j < nl; j++) p->slot[j] = (int16_t)(in_place(p, j) ? -1 : ns++);
    for (int k = 0; k < g->ninstr; k++) {
        const lz_array *node = g->instr[k].node;
        int out = -1, dying[3], nd = 0;
        for (int i = 0; i < node->ninputs; i++) {
            int v = g->instr[k].src[i];
            bool seen = false;
            for (int e = 0; e < nd; e++) seen |= dying[e] == v;
            if (v >= nl && last[v] == k && !seen) dying[nd++] = v;
        }
        for (int e = 0; e < nd && out < 0; e++)
            if (rep_of(reg_dtype(g, dying[e])) == rep_of(node->dtype)) {
                out = p->slot[dying[e]];
                dying[e] = -1;
            }
        if (out < 0) out = nfree ? freed[--nfree] : ns++;
        for (int e = 0; e < nd; e++)
            if (dying[e] >= 0) freed[nfree++] = p->slot[dying[e]];
        p->slot[nl + k] = (int16_t)out;
    }
    p->nregs = ns;
}

/* Ops whose bool result is 0 or 1 already. */
static bool gives_bool(lz_prim_id p) {
    return (p >= LZ_P_EQ && p <= LZ_P_LOGICAL_OR) || p == LZ_P_LOGICAL_NOT || p == LZ_P_ISNAN ||
           p == LZ_P_ISFINITE;
}

/* Resolves each instruction's kernel once, not per tile. */
static void plan_ops(cpu_program *p) {
    const lz_fused *g = p->g;
    for (int k = 0; k < g->ninstr; k++) {
        const lz_array *node = g->instr[k].node;
        const int *src = g->instr[k].src;
        lz_prim_id prim = node->prim;
        int vrep = rep_of(reg_dtype(g, src[prim == LZ_P_WHERE ? 1 : 0]));
        bool cast = prim == LZ_P_CAST || prim == LZ_P_COPY;
        p->op[k].f = cast ? NULL : vrep == REP_F ? cpu_ew[prim].f : cpu_ew[prim].i;
        p->op[k].normalize = node->dtype != LZ_F32 && node->dtype != LZ_I64 &&
                             !(node->dtype == LZ_BOOL && gives_bool(prim));
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
        bool contig = true, constant = true;
        for (int d = 0; d < p->ndim; d++) {
            int64_t s = l->strides[perm ? perm[d] : d];
            p->leaf[j].strides[d] = s;
            if (p->shape[d] != 1 && s != cs[d]) contig = false;
            if (p->shape[d] != 1 && s != 0) constant = false;
        }
        p->leaf[j].contiguous = contig;
        p->leaf[j].constant = constant && !contig;
    }
    plan_slots(p);
    plan_ops(p);
}

size_t cpu_program_scratch(const cpu_program *p) {
    return (size_t)(p->nregs ? p->nregs : 1) * LZ_TILE * 8;
}

/* Register of leaf j for [start, start+n): its memory when read in place, else its slot,
 * loaded. A constant's slot is its own for the whole run: it is filled with `fill` values
 * (0: already there from an earlier tile of this thread). */
static const void *leaf_reg(const cpu_program *p, int j, int64_t start, int64_t n, void *slot,
                            int64_t fill) {
    static const int8_t size[LZ_NDTYPES] = {[LZ_BOOL] = 1, [LZ_U8] = 1, [LZ_I32] = 4,
                                            [LZ_I64] = 8, [LZ_F16] = 2, [LZ_BF16] = 2, [LZ_F32] = 4};
    lz_dtype t = p->leaf[j].dtype;
    int rep = rep_of(t);
    int64_t es = size[t];
    if (p->slot[j] < 0) return p->leaf[j].base + start * es;   /* read in place */
    if (p->leaf[j].constant) {
        if (fill) {
            if (rep == REP_F) {
                float v, *f = slot;
                load_run_f(p->leaf[j].base, t, 1, 1, &v);
                for (int64_t i = 0; i < fill; i++) f[i] = v;
            } else {
                int64_t v, *q = slot;
                load_run_i(p->leaf[j].base, t, 1, 1, &v);
                for (int64_t i = 0; i < fill; i++) q[i] = v;
            }
        }
        return slot;
    }
    if (p->leaf[j].contiguous) {
        const char *src = p->leaf[j].base + start * es;
        if (rep == REP_F) load_run_f(src, t, 1, n, slot);
        else load_run_i(src, t, 1, n, slot);
        return slot;
    }
    cpu_load(p->leaf[j].base, t, p->ndim, p->shape, p->leaf[j].strides, start, n, rep, slot);
    return slot;
}

/* CAST and COPY between registers (the result is normalized to its dtype afterwards). */
static void convert(const lz_array *node, lz_dtype from_t, int64_t n, void *out, const void *in) {
    int from = rep_of(from_t), to = rep_of(node->dtype);
    if (from == to) {   /* narrowing (int32 -> uint8, float32 -> float16) is normalize()'s */
        if (out != in) memcpy(out, in, (size_t)n * (to == REP_F ? 4 : 8));
    } else if (to == REP_F) {
        const int64_t *a = in;
        float *o = out;
        for (int64_t i = 0; i < n; i++) o[i] = (float)a[i];
    } else {
        const float *a = in;
        int64_t *o = out;
        if (node->dtype == LZ_BOOL)
            for (int64_t i = 0; i < n; i++) o[i] = a[i] != 0;
        else
            for (int64_t i = 0; i < n; i++)
                o[i] = a[i] != a[i] ? 0 : a[i] >= 9.2e18f ? INT64_MAX
                     : a[i] <= -9.2e18f ? INT64_MIN : (int64_t)a[i];
    }
}

/* Brings a register to what its dtype can hold, as storing and reloading would: inside a
 * group an int32 sum must wrap and an astype to float16 must round before the next op reads
 * it, or fused and unfused evaluation would disagree. float32 and int64 need nothing. */
static void normalize(lz_dtype t, int64_t n, void *reg) {
    float *f = reg;
    int64_t *q = reg;
    switch (t) {
    case LZ_F16: for (int64_t i = 0; i < n; i++) f[i] = f16_round(f[i]); return;
    case LZ_BF16: for (int64_t i = 0; i < n; i++) f[i] = lz_bf16_to_f32(lz_f32_to_bf16(f[i])); return;
    case LZ_I32: for (int64_t i = 0; i < n; i++) q[i] = (int32_t)(uint32_t)q[i]; return;
    case LZ_U8: for (int64_t i = 0; i < n; i++) q[i] = (uint8_t)q[i]; return;
    case LZ_BOOL: for (int64_t i = 0; i < n; i++) q[i] = q[i] != 0; return;
    default: return;
    }
}

static const void *run_tile(const cpu_program *p, int64_t start, int64_t n, void *scratch,
                            void *dst, int64_t fill) {
    const lz_fused *g = p->g;
    const void *regs[2 * LZ_FUSE_MAX];
    char *slots = scratch;
    int nl = g->nleaves;
    for (int j = 0; j < nl; j++)
        regs[j] = leaf_reg(p, j, start, n, slots + (int64_t)p->slot[j] * LZ_TILE * 8, fill);
    if (!g->ninstr) return regs[0];
    for (int k = 0; k < g->ninstr; k++) {
        const lz_array *node = g->instr[k].node;
        const int *src = g->instr[k].src;
        void *out = slots + (int64_t)p->slot[nl + k] * LZ_TILE * 8;
        if (k == g->ninstr - 1 && dst && (node->dtype == LZ_F32 || node->dtype == LZ_I64))
            out = dst;
        const void *in[3] = {NULL, NULL, NULL};
        for (int i = 0; i < node->ninputs; i++) in[i] = regs[src[i]];
        if (p->op[k].f) p->op[k].f(n, out, in[0], in[1], in[2], &node->params);
        else convert(node, reg_dtype(g, src[0]), n, out, in[0]);
        if (p->op[k].normalize && !(dst && k == g->ninstr - 1))   /* else storing rounds it */
            normalize(node->dtype, n, out);
        regs[nl + k] = out;
    }
    return regs[nl + g->ninstr - 1];
}

const void *cpu_program_run(const cpu_program *p, int64_t start, int64_t n, void *scratch,
                            void *dst) {
    return run_tile(p, start, n, scratch, dst, n);
}

/* Tile of the elementwise engine (at most LZ_TILE, the register size). Shorter tiles than
 * the register size measured faster on long arrays: each tile reads its leaves in one burst
 * and writes its output in another, and shorter bursts spread over the compute leave the
 * hardware prefetcher less to catch up with (see bench/bench_elementwise.c). */
#ifndef EW_TILE
#define EW_TILE 256
#endif

/* Outputs past this size are written with streaming (non-temporal) stores: they cannot stay
 * in cache, and a normal store first reads every line it writes, a third more memory traffic.
 * Measured on the 8-op chain over 16M floats: fused and unfused both about 8% faster. */
#define STREAM_MIN ((int64_t)32 << 20)

/* Copies a tile's value to dst (32-byte aligned) with streaming stores. */
static void stream_copy(char *dst, const char *src, size_t bytes) {
    size_t k = 0;
#ifdef __AVX__
    for (; k + 32 <= bytes; k += 32)
        _mm256_stream_ps((float *)(dst + k), _mm256_loadu_ps((const float *)(src + k)));
#endif
    memcpy(dst + k, src + k, bytes - k);
}

static int run_elementwise(const lz_fused *g) {
    cpu_program p;
    cpu_program_init(&p, g, NULL);
    lz_array *out = g->out;
    int64_t n = lz_size(out), ntiles = (n + EW_TILE - 1) / EW_TILE;
    size_t es = lz_dtype_size(out->dtype), scratch = cpu_program_scratch(&p);
    int rep = rep_of(out->dtype);
    char *dst0 = out->buf->data;
    int threads = n >= 65536 ? cpu_threads() : 1;
    bool stream = (out->dtype == LZ_F32 || out->dtype == LZ_I64) && n * (int64_t)es >= STREAM_MIN &&
                  (uintptr_t)dst0 % 32 == 0;   /* tiles are 1 KiB multiples from dst0 */
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        void *s = malloc(scratch);
        int64_t fill = EW_TILE;   /* the first tile of each thread fills the constants */
        if (!s) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic, 32)   /* balances a core that another process takes */
        for (int64_t t = 0; t < ntiles; t++) {
            if (!s) continue;
            int64_t start = t * EW_TILE, m = n - start < EW_TILE ? n - start : EW_TILE;
            char *dst = dst0 + start * (int64_t)es;
            const void *v = run_tile(&p, start, m, s, stream ? NULL : dst, fill);
            fill = 0;
            if (stream) stream_copy(dst, v, (size_t)m * es);
            else if (v != dst) cpu_store(dst, out->dtype, rep, v, m);
        }
#ifdef __AVX__
        if (stream) _mm_sfence();   /* streaming stores are weakly ordered */
#endif
        free(s);
    }
    if (failed) { lz_fail("out of memory in the elementwise engine"); return -1; }
    uint64_t moved = (uint64_t)n * es;
    for (int j = 0; j < g->nleaves; j++)
        if (!p.leaf[j].constant) moved += (uint64_t)n * lz_dtype_size(g->leaves[j]->dtype);
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
