/* The fused elementwise engine: a tile interpreter. A group's program runs over the index
 * space tile by tile (LZ_TILE elements); each instruction is one vectorised loop over the
 * tile, with its operands in registers that stay in cache. Memory is read once per leaf and
 * written once for the output, however long the chain.
 *
 * Registers are scratch slots of one tile. Contiguous leaves already in a register's rep
 * (f32, i64) are read in place; constant leaves (a broadcast scalar) are filled once per
 * thread; an instruction writes over the slot of an operand that dies there (same rep: the
 * kernels allow exact aliasing), so a chain of any length runs in a couple of slots that stay
 * in L1 instead of one slot per instruction.
 *
 * Layouts. A flat tile reads each leaf along its last dimension. For a leaf whose last
 * stride is large (a transposed or permuted view) that is one cache line per element, and
 * with power-of-two strides the lines collide in the same L1 sets: 0.7 GB/s for
 * lz_contiguous of a transposed [4096,1024] float32 matrix, against 23 GB/s for memcpy.
 * So when a leaf is dense along another axis `a` of the index space, the engine walks the
 * output in 2-D blocks of (a, last) instead (run_elementwise picks `a`): a block is one
 * tile, held row-major in the registers; such a leaf is read column by column, each column
 * a dense run along `a` (whole cache lines), into a staging slot that is then transposed
 * in L1 (8x8 in AVX registers for 4-byte values); the other leaves are read row by row; the
 * result is stored row by row. Every line of memory is thus read and written whole, at the
 * cost of one transpose in cache. The instructions do not care: elementwise, a tile is a
 * tile whatever the order of its elements. (Measured on 2 threads: a + b^T over 2048^2
 * float32 1.1 -> 11 GB/s.)
 *
 * Stored values (g->outs: inner values needed outside the group, sibling roots) keep their
 * register for the whole tile and are written after the tile's program, each to its own
 * buffer, the way the root's value is (flat or by rows, streaming when large).
 *
 * A group that only copies one leaf to its own dtype (lz_copy, lz_contiguous, astype to
 * the same type) moves the dtype's bytes (rep RAW) instead of converting through float:
 * faster, and exact (float16 signalling NaNs stay signalling). When that leaf is dense
 * along the block axis (a transpose, any permutation that moves the last axis), each block
 * goes from the leaf to the output through vector registers alone (copy_block): 0.7 ->
 * ~28 GB/s for the [4096,1024] float32 transpose, about memcpy's speed. */
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

/* Elements of es bytes, unconverted (REP_RAW). */
#define RAW(T)                                                                         \
    do {                                                                               \
        const T *s = (const T *)p;                                                     \
        for (int64_t j = 0; j < run; j++) ((T *)d)[j] = s[j * st];                     \
    } while (0)

static void load_run_raw(const char *p, size_t es, int64_t st, int64_t run, char *d) {
    if (st == 1) { memcpy(d, p, (size_t)run * es); return; }
    switch (es) {
    case 1: RAW(uint8_t); return;
    case 2: RAW(uint16_t); return;
    case 4: RAW(uint32_t); return;
    default: RAW(uint64_t); return;
    }
}

static inline int64_t reg_size(int rep, lz_dtype t) {
    return rep == REP_F ? 4 : rep == REP_I ? 8 : (int64_t)lz_dtype_size(t);
}

static void load_run(const char *p, lz_dtype t, int64_t st, int64_t run, int rep, char *d) {
    if (rep == REP_F) load_run_f(p, t, st, run, (float *)d);
    else if (rep == REP_I) load_run_i(p, t, st, run, (int64_t *)d);
    else load_run_raw(p, lz_dtype_size(t), st, run, d);
}

/* Fills n values of rep at d with the one element at p. */
static void fill_run(const char *p, lz_dtype t, int rep, int64_t n, char *d) {
    if (rep == REP_F) {
        float v, *f = (float *)d;
        load_run_f(p, t, 1, 1, &v);
        for (int64_t j = 0; j < n; j++) f[j] = v;
    } else if (rep == REP_I) {
        int64_t v, *q = (int64_t *)d;
        load_run_i(p, t, 1, 1, &v);
        for (int64_t j = 0; j < n; j++) q[j] = v;
    } else {
        size_t es = lz_dtype_size(t);
        for (int64_t j = 0; j < n; j++) memcpy(d + j * (int64_t)es, p, es);
    }
}

void cpu_load(const char *base, lz_dtype t, int ndim, const int64_t *shape0,
              const int64_t *strides0, int64_t start, int64_t n, int rep, void *dst) {
    char *d0 = dst;
    size_t es = lz_dtype_size(t);
    /* Trailing axes that lie one after the other in memory (H and W of a plane read in
     * [C, N, H, W] order by a per-channel sum) are one axis: runs of H*W, not of W. */
    int64_t shape[LZ_MAX_DIMS], strides[LZ_MAX_DIMS];
    for (int d = 0; d < ndim; d++) { shape[d] = shape0[d]; strides[d] = strides0[d]; }
    while (ndim > 1 && strides[ndim - 1] != 0 &&
           strides[ndim - 2] == shape[ndim - 1] * strides[ndim - 1]) {
        shape[ndim - 2] *= shape[ndim - 1];
        strides[ndim - 2] = strides[ndim - 1];
        ndim--;
    }
    /* Broadcast along the trailing axes (a bias [C] over [N, C, H, W]): runs of one value,
     * `same` long. Walked run by run below, that was a call per H*W/W-long stride-0 row. */
    int k = ndim;
    int64_t same = 1;
    while (k > 0 && (strides[k - 1] == 0 || shape[k - 1] == 1)) same *= shape[--k];
    if (k > 0 && k < ndim && same > 1) {
        for (int64_t i = start, e = start + n; i < e;) {
            int64_t o = i / same, run = same - i % same, off = 0;
            if (run > e - i) run = e - i;
            for (int d = k - 1; d >= 0; d--) {
                off += o % shape[d] * strides[d];
                o /= shape[d];
            }
            fill_run(base + off * (int64_t)es, t, rep, run, d0 + (i - start) * reg_size(rep, t));
            i += run;
        }
        return;
    }
    int64_t rs = reg_size(rep, t), idx[LZ_MAX_DIMS], off = 0, rem = start;
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
        load_run(p, t, ndim ? st : 0, run, rep, d0 + k * rs);
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
    if (rep == REP_RAW) {
        if (dst != src) memcpy(dst, src, (size_t)n * lz_dtype_size(t));
        return;
    }
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
    lz_dtype t = p->leaf[j].dtype;   /* a block of a contiguous leaf is not contiguous */
    return p->leaf[j].contiguous && p->block_axis < 0 && (t == LZ_F32 || t == LZ_I64);
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
    for (int o = 0; o < g->nouts; o++)   /* stored after the tile's program: never dies */
        last[nl + g->outs[o].instr] = g->ninstr;
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

static void program_init(cpu_program *p, const lz_fused *g, const int *perm, int block_axis) {
    const lz_array *out = g->out;
    p->g = g;
    p->block_axis = block_axis;
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

void cpu_program_init(cpu_program *p, const lz_fused *g, const int *perm) {
    program_init(p, g, perm, -1);
}

size_t cpu_program_scratch(const cpu_program *p) {
    return (size_t)(p->nregs ? p->nregs : 1) * LZ_TILE * 8;
}

/* A tile of the index space: flat indices [start, start+n), or (blocked programs) the
 * rows x cols block whose first element has multi-index idx, rows along block_axis and
 * cols along the last axis, held row-major (n = rows * cols). */
typedef struct {
    int64_t start, n, rows, cols, idx[LZ_MAX_DIMS];
} tile;

/* Leaves of a blocked program that are read column by column: dense along the block axis,
 * sparse along the last. */
static bool by_column(int64_t sa, int64_t sc) {
    return llabs(sc) > 1 && llabs(sa) < llabs(sc);
}

/* Loads leaf j's block t into dst (rows x cols of rep), through tmp (a slot) when it is read
 * by column. */
static void load_block(const cpu_program *p, int j, const tile *t, int rep, char *dst, char *tmp) {
    const int64_t *st = p->leaf[j].strides;
    lz_dtype ty = p->leaf[j].dtype;
    int64_t es = (int64_t)lz_dtype_size(ty), rs = reg_size(rep, ty), off = 0;
    for (int d = 0; d < p->ndim; d++) off += t->idx[d] * st[d];
    const char *base = p->leaf[j].base + off * es;
    int64_t sa = st[p->block_axis], sc = st[p->ndim - 1];
    if (by_column(sa, sc) && t->rows > 1) {
        for (int64_t c = 0; c < t->cols; c++)
            load_run(base + c * sc * es, ty, sa, t->rows, rep, tmp + c * t->rows * rs);
        cpu_transpose(tmp, t->rows, dst, t->cols, t->rows, t->cols, rs);
    } else {
        for (int64_t r = 0; r < t->rows; r++)
            load_run(base + r * sa * es, ty, sc, t->cols, rep, dst + r * t->cols * rs);
    }
}

/* Register of leaf j for tile t: its memory when read in place, else its slot, loaded
 * (tmp: a spare slot). A constant's slot is its own for the whole run: it is filled with
 * `fill` values (0: already there from an earlier tile of this thread). */
static const void *leaf_reg(const cpu_program *p, int j, const tile *tl, void *slot, char *tmp,
                            int64_t fill) {
    static const int8_t size[LZ_NDTYPES] = {[LZ_BOOL] = 1, [LZ_U8] = 1, [LZ_I32] = 4,
                                            [LZ_I64] = 8, [LZ_F16] = 2, [LZ_BF16] = 2, [LZ_F32] = 4};
    lz_dtype t = p->leaf[j].dtype;
    int rep = rep_of(t);
    int64_t es = size[t];
    int64_t start = tl->start, n = tl->n;
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
    if (p->block_axis >= 0) {
        load_block(p, j, tl, rep, slot, tmp);
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

/* Runs p's program over tile t; scratch has p->nregs slots, and one more (a staging slot
 * for load_block) when p is blocked. */
static const void *run_tile(const cpu_program *p, const tile *t, void *scratch, void *dst,
                            int64_t fill) {
    const lz_fused *g = p->g;
    const void *regs[2 * LZ_FUSE_MAX];
    char *slots = scratch, *tmp = slots + (int64_t)p->nregs * LZ_TILE * 8;
    int nl = g->nleaves;
    int64_t n = t->n;
    for (int j = 0; j < nl; j++)
        regs[j] = leaf_reg(p, j, t, slots + (int64_t)p->slot[j] * LZ_TILE * 8, tmp, fill);
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
    tile t = {.start = start, .n = n};
    return run_tile(p, &t, scratch, dst, n);
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

/* Blocks are BLOCK rows (along the block axis) by LZ_TILE / BLOCK columns: a column of a
 * transposed float32 leaf is then 128 bytes, two whole cache lines. An exact copy of a leaf
 * dense along the block axis is transposed straight from the leaf into the output, without
 * registers, in COPY_ROWS x COPY_COLS blocks (measured on 2 threads, [4096,1024] float32:
 * 16x64 28 GB/s, 32x32 20, 8x128 21; float16 and 3-D permutes alike or better). */
#define BLOCK 32
#define COPY_ROWS 16
#define COPY_COLS 64

/* The block axis for g (see the top of the file): an axis, not the last, along which a
 * leaf that is sparse along the last axis is dense; -1 when every leaf reads well flat. */
static int pick_block_axis(const lz_fused *g) {
    const lz_array *out = g->out;
    int last = out->ndim - 1;
    if (out->ndim < 2 || out->shape[last] < 16) return -1;   /* few runs: flat reads well */
    for (int j = 0; j < g->nleaves; j++) {
        const int64_t *st = g->leaves[j]->strides;
        int64_t es = (int64_t)lz_dtype_size(g->leaves[j]->dtype);
        if (llabs(st[last]) * es <= 16) continue;
        int best = -1;
        for (int d = 0; d < last; d++)
            if (out->shape[d] > 1 && st[d] && by_column(st[d], st[last]) &&
                (best < 0 || llabs(st[d]) < llabs(st[best])))
                best = d;
        if (best >= 0 && llabs(st[best]) * es <= 8) return best;
    }
    return -1;
}

/* Tile number k of a blocked walk: blocks along the last axis first, then along the block
 * axis, then over the other axes, row-major. */
static void block_at(const cpu_program *p, int64_t k, int64_t rows, int64_t cols, tile *t) {
    int a = p->block_axis, last = p->ndim - 1;
    int64_t nc = (p->shape[last] + cols - 1) / cols, nr = (p->shape[a] + rows - 1) / rows;
    int64_t o = k / nc / nr;
    for (int d = last; d >= 0; d--) {
        if (d == a || d == last) continue;
        t->idx[d] = o % p->shape[d];
        o /= p->shape[d];
    }
    t->idx[a] = k / nc % nr * rows;
    t->idx[last] = k % nc * cols;
    t->rows = p->shape[a] - t->idx[a] < rows ? p->shape[a] - t->idx[a] : rows;
    t->cols = p->shape[last] - t->idx[last] < cols ? p->shape[last] - t->idx[last] : cols;
    t->start = 0;
    t->n = t->rows * t->cols;
}

/* Block k of a direct copy (see COPY_ROWS): from the leaf straight to the output. */
static void copy_block(const cpu_program *p, int64_t k, int64_t rows, int64_t cols,
                       const int64_t *cs, char *dst0) {
    tile t;
    block_at(p, k, rows, cols, &t);
    const int64_t *st = p->leaf[0].strides;
    int64_t es = (int64_t)lz_dtype_size(p->leaf[0].dtype), o = 0, lo = 0;
    for (int d = 0; d < p->ndim; d++) {
        o += t.idx[d] * cs[d];
        lo += t.idx[d] * st[d];
    }
    cpu_transpose(p->leaf[0].base + lo * es, st[p->ndim - 1], dst0 + o * es, cs[p->block_axis],
              t.rows, t.cols, es);
}

/* A group that only copies its one leaf to the leaf's own dtype: its bytes can move as
 * they are (rep RAW). */
static bool copies_exactly(const lz_fused *g) {
    if (g->nleaves != 1 || g->out->dtype != g->leaves[0]->dtype || g->ninstr > 1) return false;
    return !g->ninstr || g->instr[0].node->prim == LZ_P_COPY || g->instr[0].node->prim == LZ_P_CAST;
}

/* The value of an exact copy over tile t, raw: the leaf's memory when contiguous, else
 * loaded into dst (when given, flat tiles only) or the scratch s (two slots). */
static const void *copy_tile(const cpu_program *p, const tile *t, char *s, void *dst) {
    lz_dtype ty = p->leaf[0].dtype;
    if (p->block_axis >= 0) {
        load_block(p, 0, t, REP_RAW, s, s + LZ_TILE * 8);
        return s;
    }
    if (p->leaf[0].contiguous) return p->leaf[0].base + t->start * (int64_t)lz_dtype_size(ty);
    void *d = dst ? dst : s;
    cpu_load(p->leaf[0].base, ty, p->ndim, p->shape, p->leaf[0].strides, t->start, t->n, REP_RAW, d);
    return d;
}

/* Where a group's stored values go and how: the root's, then each of g->outs. */
typedef struct {
    char *base;
    lz_dtype dtype;
    int rep;
    int reg;                 /* register of an inner value (-1: the root's) */
} target;

/* Stores tile t's value v of target o (the index space's contiguous strides cs). */
static void store_tile(const cpu_program *p, const tile *t, const target *o, const void *v,
                       const int64_t *cs, bool stream) {
    int64_t es = (int64_t)lz_dtype_size(o->dtype), rs = reg_size(o->rep, o->dtype);
    if (p->block_axis >= 0) {
        int64_t off = 0;
        for (int d = 0; d < p->ndim; d++) off += t->idx[d] * cs[d];
        for (int64_t r = 0; r < t->rows; r++)   /* the block's rows lie apart in out */
            cpu_store(o->base + (off + r * cs[p->block_axis]) * es, o->dtype, o->rep,
                      (const char *)v + r * t->cols * rs, t->cols);
        return;
    }
    char *dst = o->base + t->start * es;
    if (stream) stream_copy(dst, v, (size_t)(t->n * es));
    else if (v != dst) cpu_store(dst, o->dtype, o->rep, v, t->n);
}

static int run_elementwise(const lz_fused *g) {
    cpu_program p;
    program_init(&p, g, NULL, pick_block_axis(g));
    lz_array *out = g->out;
    bool raw = copies_exactly(g), blocked = p.block_axis >= 0;
    int a = p.block_axis, last = p.ndim - 1;
    int64_t n = lz_size(out), rows = 1, cols = EW_TILE, ntiles = (n + EW_TILE - 1) / EW_TILE;
    bool direct = raw && blocked && p.leaf[0].strides[a] == 1;
    if (blocked) {
        int64_t br = direct ? COPY_ROWS : BLOCK, bc = direct ? COPY_COLS : LZ_TILE / BLOCK;
        rows = p.shape[a] < br ? p.shape[a] : br;
        cols = p.shape[last] < bc ? p.shape[last] : bc;
        ntiles = n / (p.shape[a] * p.shape[last]) * ((p.shape[a] + rows - 1) / rows) *
                 ((p.shape[last] + cols - 1) / cols);
    }
    int64_t cs[LZ_MAX_DIMS];
    lz_contiguous_strides(p.ndim, p.shape, cs);
    size_t es = lz_dtype_size(out->dtype), scratch = cpu_program_scratch(&p) + LZ_TILE * 8;
    target tg[1 + LZ_FUSE_OUTS];
    tg[0] = (target){out->buf->data, out->dtype, raw ? REP_RAW : rep_of(out->dtype), -1};
    for (int o = 0; o < g->nouts; o++) {
        const lz_array *x = g->outs[o].node;
        tg[1 + o] = (target){x->buf->data, x->dtype, rep_of(x->dtype),
                             p.slot[g->nleaves + g->outs[o].instr]};
    }
    int threads = cpu_group_threads(g, n);
    /* streaming stores: flat tiles, and 1 KiB tiles stay 32-byte aligned from the base */
    bool stream[1 + LZ_FUSE_OUTS];
    for (int o = 0; o <= g->nouts; o++)
        stream[o] = !blocked && (tg[o].dtype == LZ_F32 || tg[o].dtype == LZ_I64) &&
                    n * (int64_t)lz_dtype_size(tg[o].dtype) >= STREAM_MIN &&
                    (uintptr_t)tg[o].base % 32 == 0;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        char *s = malloc(scratch);
        int64_t fill = rows * cols;   /* the first tile of each thread fills the constants */
        if (!s) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic, 32)   /* balances a core that another process takes */
        for (int64_t k = 0; k < ntiles; k++) {
            if (!s) continue;
            tile t;
            if (direct) {
                copy_block(&p, k, rows, cols, cs, tg[0].base);
                continue;
            }
            char *dst = NULL;
            if (blocked) {
                block_at(&p, k, rows, cols, &t);
            } else {
                t.start = k * EW_TILE;
                t.n = n - t.start < EW_TILE ? n - t.start : EW_TILE;
                dst = stream[0] ? NULL : tg[0].base + t.start * (int64_t)es;
            }
            const void *v = raw ? copy_tile(&p, &t, s, dst) : run_tile(&p, &t, s, dst, fill);
            store_tile(&p, &t, &tg[0], v, cs, stream[0]);
            for (int o = 1; o <= g->nouts; o++)
                store_tile(&p, &t, &tg[o], s + (int64_t)tg[o].reg * LZ_TILE * 8, cs, stream[o]);
            fill = 0;
        }
#ifdef __AVX__
        for (int o = 0; o <= g->nouts; o++)
            if (stream[o]) { _mm_sfence(); break; }   /* streaming stores are weakly ordered */
#endif
        free(s);
    }
    if (failed) { lz_fail("out of memory in the elementwise engine"); return -1; }
    uint64_t moved = (uint64_t)n * es;
    for (int o = 0; o < g->nouts; o++) moved += (uint64_t)n * lz_dtype_size(tg[1 + o].dtype);
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
