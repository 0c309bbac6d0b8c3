/* Generated CUDA C for fused elementwise groups and reductions: each group becomes ONE
 * kernel, compiled at run time by NVRTC (fused.c) and cached by its source text (which holds
 * everything that shapes the code: ops, dtypes, leaf kinds, dims, reduction mode; sizes,
 * pointers, strides and scalar parameters are kernel arguments, so a training step's groups
 * compile once and are reused for every step and batch size).
 *
 * Elementwise groups: one thread per element (a grid-stride loop); each leaf is read as
 * contiguous (index i), constant (one value, loaded once) or strided (its offset computed
 * from the index digits); the program is straight-line code on registers (float for the
 * floating dtypes, long long for the others, as the CPU engine); the root and every stored
 * value are written at index i. Values are rounded/wrapped to their dtype after each
 * instruction, as the CPU does, so fused and unfused results agree.
 *
 * Reductions close a group: the index space is split into kept and reduced dims (size-1
 * dims dropped, compatible neighbours merged); float SUM/PROD accumulate in double (as on
 * the CPU), MAX/MIN propagate NaN, integers wrap in 64 bits. Three shapes of kernel:
 *   warp   the innermost dim is reduced and there are many outputs: a warp per output;
 *   block  the innermost dim is reduced and outputs are few: a block per (output, chunk);
 *   column the innermost dim is kept: a thread per output walks the reduced dims, so a warp
 *          reads consecutive elements.
 * When outputs are too few to fill the GPU, the reduced range is split into chunks whose
 * partial results go to scratch, and a second kernel of the same source combines them in
 * order (deterministic). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codegen.h"

/* ---- source text ---- */
typedef struct { char *s; size_t n, cap; int oom; } text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (k < 0) { t->oom = 1; return; }
        if (t->n + (size_t)k < t->cap) { t->n += (size_t)k; return; }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap <= t->n + (size_t)k) cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) { t->oom = 1; return; }
        t->s = s;
        t->cap = cap;
    }
}

static const char prelude[] =
    "typedef long long i64; typedef unsigned long long u64;\n"
    "#define DI static __device__ __forceinline__\n"
    "#ifndef LZ_EMU\n"
    "DI float h2f(unsigned short h) { float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return f; }\n"
    "DI unsigned short f2h(float f) { unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); return h; }\n"
    "#else\n"
    "DI float h2f(unsigned short h) { return emu_h2f(h); }\n"
    "DI unsigned short f2h(float f) { return emu_f2h(f); }\n"
    "#endif\n"
    "DI float b2f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n"
    "DI unsigned short f2b(float f) { unsigned u = __float_as_uint(f);\n"
    "  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);\n"
    "  u += 0x7fffu + ((u >> 16) & 1u); return (unsigned short)(u >> 16); }\n"
    "DI i64 f2i(float a) { return a != a ? 0 : a >= 9.2e18f ? 9223372036854775807LL :\n"
    "  a <= -9.2e18f ? (-9223372036854775807LL - 1) : (i64)a; }\n"
    "DI float fnan() { return __int_as_float(0x7fc00000); }\n"
    "DI float finf() { return __int_as_float(0x7f800000); }\n"
    "DI float sigm(float x) { float e = expf(-fabsf(x)); return (x >= 0.0f ? 1.0f : e) / (1.0f + e); }\n"
    /* e^(-x^2/2) with x^2 = s + lo exactly (rounding x*x would cost about x^2 ulps), and
     * Phi(-|x|) = erfcx(z) e^(-z^2) / 2 with z = |x|/sqrt2: erfcx is gentle, so rounding z
     * costs nothing, where erfc(z) would amplify it 2 z^2 times (20 ulps at x = -7) */
    "DI float gauss(float x) { float s = x * x, lo = fmaf(x, x, -s); return expf(-0.5f * s) * (1.0f - 0.5f * lo); }\n"
    "DI float phi_lo(float x) { float a = fabsf(x); return 0.5f * erfcxf(a * 0.70710678118654752f) * gauss(a); }\n"
    "DI float gelu(float x) { float c = fminf(fmaxf(x, -20.0f), 20.0f);\n"
    "  float g = c * phi_lo(c); return x <= 0.0f ? g : x - g; }\n"
    "DI float gelu_tanh(float x) { float c = x < -20.0f ? -20.0f : x;\n"
    "  float u = 1.5957691216057308f * (0.044715f * c * (c * c) + c); return c * sigm(u); }\n"
    "DI float silu(float x) { float m = x < -120.0f ? -120.0f : x;\n"
    "  if (x < 0.0f) { float e = expf(m); return m * e / (1.0f + e); } return x / (1.0f + expf(-x)); }\n"
    "DI float softplus(float x) { return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x))); }\n"
    "DI float gelu_slope(float x) { float c = fminf(fmaxf(x, -20.0f), 20.0f);\n"
    "  float q = phi_lo(c), cdf = c <= 0.0f ? q : 1.0f - q;\n"
    "  return c * 0.3989422804014327f * gauss(c) + cdf; }\n"
    "DI i64 ipow(i64 x, i64 y) { if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;\n"
    "  u64 r = 1, b = (u64)x; while (y) { if (y & 1) r *= b; b *= b; y >>= 1; } return (i64)r; }\n";

static bool is_f(lz_dtype t) { return t == LZ_F32 || t == LZ_F16 || t == LZ_BF16; }

/* Expression loading element `idx` of leaf pointer word w as its rep. */
static void put_load(text *t, lz_dtype d, int w, const char *idx) {
    switch (d) {
    case LZ_F32: put(t, "((const float *)p.w[%d])[%s]", w, idx); break;
    case LZ_F16: put(t, "h2f(((const unsigned short *)p.w[%d])[%s])", w, idx); break;
    case LZ_BF16: put(t, "b2f(((const unsigned short *)p.w[%d])[%s])", w, idx); break;
    case LZ_I64: put(t, "((const i64 *)p.w[%d])[%s]", w, idx); break;
    case LZ_I32: put(t, "(i64)((const int *)p.w[%d])[%s]", w, idx); break;
    case LZ_U8: put(t, "(i64)((const unsigned char *)p.w[%d])[%s]", w, idx); break;
    default: put(t, "(i64)(((const unsigned char *)p.w[%d])[%s] != 0)", w, idx); break;
    }
}

/* Statement storing value v (already of dtype d's range) at element idx of pointer word w. */
static void put_store(text *t, lz_dtype d, int w, const char *idx, const char *v) {
    switch (d) {
    case LZ_F32: put(t, "((float *)p.w[%d])[%s] = (float)(%s);\n", w, idx, v); break;
    case LZ_F16: put(t, "((unsigned short *)p.w[%d])[%s] = f2h((float)(%s));\n", w, idx, v); break;
    case LZ_BF16: put(t, "((unsigned short *)p.w[%d])[%s] = f2b((float)(%s));\n", w, idx, v); break;
    case LZ_I64: put(t, "((i64 *)p.w[%d])[%s] = (i64)(%s);\n", w, idx, v); break;
    case LZ_I32: put(t, "((int *)p.w[%d])[%s] = (int)(i64)(%s);\n", w, idx, v); break;
    case LZ_U8: put(t, "((unsigned char *)p.w[%d])[%s] = (unsigned char)(i64)(%s);\n", w, idx, v); break;
    default: put(t, "((unsigned char *)p.w[%d])[%s] = (unsigned char)((%s) != 0);\n", w, idx, v); break;
    }
}

/* Rounds/wraps register r to what dtype d holds (the CPU's normalize). */
static void put_normalize(text *t, lz_dtype d, const char *r) {
    switch (d) {
    case LZ_F16: put(t, "%s = h2f(f2h(%s));\n", r, r); break;
    case LZ_BF16: put(t, "%s = b2f(f2b(%s));\n", r, r); break;
    case LZ_I32: put(t, "%s = (i64)(int)(unsigned)(u64)%s;\n", r, r); break;
    case LZ_U8: put(t, "%s = (i64)(unsigned char)%s;\n", r, r); break;
    case LZ_BOOL: put(t, "%s = (i64)(%s != 0);\n", r, r); break;
    default: break;
    }
}

/* The dtype of register id s (leaf or instruction). */
static lz_dtype reg_dtype(const lz_fused *g, int s) {
    return s < g->nleaves ? g->leaves[s]->dtype : g->instr[s - g->nleaves].node->dtype;
}

/* One instruction: "T r<k> = expr;" then normalisation. fw: word of its scalar params.
 * Returns -1 for an op the generator does not know (an internal error). */
static int put_instr(text *t, const lz_fused *g, int k, int fw) {
    const lz_array *node = g->instr[k].node;
    const int *src = g->instr[k].src;
    lz_prim_id prim = node->prim;
    bool fin = is_f(reg_dtype(g, src[prim == LZ_P_WHERE ? 1 : 0]));
    bool fout = is_f(node->dtype);
    char a[16], b[16], c[16], r[16];
    snprintf(a, sizeof a, "r%d", src[0]);
    snprintf(b, sizeof b, "r%d", src[1]);
    snprintf(c, sizeof c, "r%d", src[2]);
    snprintf(r, sizeof r, "r%d", g->nleaves + k);
    put(t, "%s %s = ", fout ? "float" : "i64", r);
    const char *e = NULL;
#define U(P, F, I) case LZ_P_##P: e = fin ? F : I; break;
    switch (prim) {
    U(NEG, "-A", "(i64)(0 - (u64)A)")
    U(ABS, "fabsf(A)", "(A < 0 ? (i64)(0 - (u64)A) : A)")
    U(SIGN, "(A > 0.0f ? 1.0f : A < 0.0f ? -1.0f : A)", "(i64)((A > 0) - (A < 0))")
    U(EXP, "expf(A)", NULL) U(LOG, "logf(A)", NULL) U(LOG1P, "log1pf(A)", NULL)
    U(EXPM1, "expm1f(A)", NULL) U(SQRT, "sqrtf(A)", NULL) U(RSQRT, "(1.0f / sqrtf(A))", NULL)
    U(SQUARE, "(A * A)", "(i64)((u64)A * (u64)A)")
    U(SIN, "sinf(A)", NULL) U(COS, "cosf(A)", NULL) U(TANH, "tanhf(A)", NULL)
    U(SIGMOID, "sigm(A)", NULL) U(RELU, "(A <= 0.0f ? 0.0f : A)", NULL)
    U(GELU, "gelu(A)", NULL) U(GELU_TANH, "gelu_tanh(A)", NULL) U(SILU, "silu(A)", NULL)
    U(SOFTPLUS, "softplus(A)", NULL) U(ERF, "erff(A)", NULL)
    U(FLOOR, "floorf(A)", "A") U(CEIL, "ceilf(A)", "A") U(ROUND, "rintf(A)", "A")
    U(AFFINE, "(S0 * A + S1)", NULL)
    U(LOGICAL_NOT, NULL, "(i64)(!A)")
    U(ISNAN, "(i64)(A != A)", "(A * 0)")
    U(ISFINITE, "(i64)(fabsf(A) <= 3.4028234663852886e38f)", "(A * 0 + 1)")
    U(ADD, "(A + B)", "(i64)((u64)A + (u64)B)") U(SUB, "(A - B)", "(i64)((u64)A - (u64)B)")
    U(MUL, "(A * B)", "(i64)((u64)A * (u64)B)") U(DIV, "(A / B)", NULL)
    U(POW, "powf(A, B)", "ipow(A, B)")
    U(MAXIMUM, "((A != A || A > B) ? A : B)", "(A > B ? A : B)")
    U(MINIMUM, "((A != A || A < B) ? A : B)", "(A < B ? A : B)")
    U(AXPBY, "(S0 * A + S1 * B)", NULL) U(GELU_GRAD, "(B * gelu_slope(A))", NULL)
    U(EQ, "(i64)(A == B)", "(i64)(A == B)") U(NE, "(i64)(A != B)", "(i64)(A != B)")
    U(LT, "(i64)(A < B)", "(i64)(A < B)") U(LE, "(i64)(A <= B)", "(i64)(A <= B)")
    U(GT, "(i64)(A > B)", "(i64)(A > B)") U(GE, "(i64)(A >= B)", "(i64)(A >= B)")
    U(LOGICAL_AND, NULL, "(i64)(A && B)") U(LOGICAL_OR, NULL, "(i64)(A || B)")
    U(WHERE, "(A ? B : C)", "(A ? B : C)")
    case LZ_P_CAST:
    case LZ_P_COPY:
        e = fin == fout ? "A" : fout ? "(float)A" : node->dtype == LZ_BOOL ? "(i64)(A != 0.0f)" : "f2i(A)";
        break;
    default: break;
    }
#undef U
    if (!e) {
        lz_fail("%s: no GPU code for this op on %s", lz_prims[prim].name, lz_dtype_name(node->dtype));
        return -1;
    }
    for (const char *q = e; *q; q++) {
        if (*q == 'A') put(t, "%s", a);
        else if (*q == 'B') put(t, "%s", b);
        else if (*q == 'C') put(t, "%s", c);
        else if (*q == 'S' && (q[1] == '0' || q[1] == '1')) {
            put(t, "(float)__longlong_as_double(p.w[%d])", fw + (q[1] - '0'));
            q++;
        } else put(t, "%c", *q);
    }
    put(t, ";\n");
    put_normalize(t, node->dtype, r);
    return 0;
}

/* ---- index space: dims after dropping size 1 and merging what every leaf allows ---- */
typedef struct {
    int nd;
    int64_t shape[LZ_MAX_DIMS];
    bool red[LZ_MAX_DIMS];                 /* reduced (reductions only) */
    int64_t st[LZ_FUSE_MAX][LZ_MAX_DIMS];  /* per leaf */
    int kind[LZ_FUSE_MAX];                 /* 0 contiguous, 1 constant, 2 strided */
} space;

static void make_space(space *s, const lz_fused *g) {
    const lz_array *o = g->out;
    int64_t mask = g->reduce ? g->reduce->params.i[0] : 0;
    s->nd = 0;
    for (int d = 0; d < o->ndim; d++) {
        if (o->shape[d] == 1) continue;
        int k = s->nd;
        s->shape[k] = o->shape[d];
        s->red[k] = mask >> d & 1;
        for (int j = 0; j < g->nleaves; j++) s->st[j][k] = g->leaves[j]->strides[d];
        /* merge into the previous dim when every leaf continues its run */
        bool merge = k > 0 && s->red[k - 1] == s->red[k];
        for (int j = 0; j < g->nleaves && merge; j++)
            merge = s->st[j][k - 1] == s->st[j][k] * s->shape[k];
        if (merge) {
            s->shape[k - 1] *= s->shape[k];
            for (int j = 0; j < g->nleaves; j++) s->st[j][k - 1] = s->st[j][k];
        } else {
            s->nd++;
        }
    }
    for (int j = 0; j < g->nleaves; j++) {
        bool zero = true, contig = true;
        int64_t expect = 1;
        for (int d = s->nd - 1; d >= 0; d--) {
            zero &= s->st[j][d] == 0;
            contig &= s->st[j][d] == expect;
            expect *= s->shape[d];
        }
        s->kind[j] = zero ? (lz_is_host_scalar(g->leaves[j]) ? 3 : 1) : contig && !g->reduce ? 0 : 2;
    }
}

/* ---- argument words ---- */
typedef struct { int64_t *w; int n; } words;
static int word(words *a, int64_t v) { a->w[a->n] = v; return a->n++; }
static int word_ptr(words *a, const void *p) { return word(a, (int64_t)(intptr_t)p); }
static int word_f(words *a, double f) { int64_t v; memcpy(&v, &f, 8); return word(a, v); }

static const void *leaf_ptr(const lz_array *l) {
    return (const char *)l->buf->dev + l->offset * (int64_t)lz_dtype_size(l->dtype);
}

/* Leaf j's word: its device address, or its value (kind 3: a host scalar). */
static int leaf_word(words *a, const space *s, const lz_array *l, int j) {
    if (s->kind[j] != 3) return word_ptr(a, leaf_ptr(l));
    const void *p = (const char *)l->buf->data + l->offset * (int64_t)lz_dtype_size(l->dtype);
    return is_f(l->dtype) ? word_f(a, lz_load_scalar(p, l->dtype)) : word(a, lz_load_int(p, l->dtype));
}

/* Emits the group's program for the element whose leaf offsets are o<j> (strided leaves) or
 * the index `idx` (contiguous ones). Scalars' words are in fw[]. */
static int put_program(text *t, const lz_fused *g, const space *s, const int *lw, const int *fw,
                       const char *idx) {
    for (int j = 0; j < g->nleaves; j++) {
        lz_dtype d = g->leaves[j]->dtype;
        put(t, "%s r%d = ", is_f(d) ? "float" : "i64", j);
        if (s->kind[j] == 3) {   /* its value is the word itself */
            put(t, is_f(d) ? "(float)__longlong_as_double(p.w[%d]);\n" : "p.w[%d];\n", lw[j]);
            continue;
        }
        char ix[24];
        if (s->kind[j] == 1) snprintf(ix, sizeof ix, "0");
        else if (s->kind[j] == 0) snprintf(ix, sizeof ix, "%s", idx);
        else snprintf(ix, sizeof ix, "o%d", j);
        put_load(t, d, lw[j], ix);
        put(t, ";\n");
    }
    for (int k = 0; k < g->ninstr; k++)
        if (put_instr(t, g, k, fw[k])) return -1;
    return 0;
}

static int64_t blocks_for(int64_t work, int threads, int sms) {
    int64_t b = (work + threads - 1) / threads, cap = (int64_t)sms * 32;
    return b < 1 ? 1 : b > cap ? cap : b;
}


/* Words of the scalar params of each instruction (AFFINE, AXPBY: two each). */
static void param_words(words *a, const lz_fused *g, int *fw) {
    for (int k = 0; k < g->ninstr; k++) {
        const lz_array *n = g->instr[k].node;
        fw[k] = -1;
        if (n->prim == LZ_P_AFFINE || n->prim == LZ_P_AXPBY) {
            fw[k] = word_f(a, n->params.f[0]);
            word_f(a, n->params.f[1]);
        }
    }
}

static int gen_elementwise(const lz_fused *g, const space *s, int64_t n, int sms, cg_plan *pl) {
    text t = {0};
    words a = {.w = pl->w, .n = 0};
    int lw[LZ_FUSE_MAX], fw[LZ_FUSE_MAX], sw[LZ_MAX_DIMS], stw[LZ_FUSE_MAX], ow[LZ_FUSE_OUTS + 1];
    int wn = word(&a, n);
    for (int d = 0; d < s->nd; d++) sw[d] = word(&a, s->shape[d]);
    for (int j = 0; j < g->nleaves; j++) {
        lw[j] = leaf_word(&a, s, g->leaves[j], j);
        stw[j] = -1;
        if (s->kind[j] == 2) {
            stw[j] = a.n;
            for (int d = 0; d < s->nd; d++) word(&a, s->st[j][d]);
        }
    }
    ow[0] = word_ptr(&a, g->out->buf->dev);
    for (int o = 0; o < g->nouts; o++) ow[1 + o] = word_ptr(&a, g->outs[o].node->buf->dev);
    param_words(&a, g, fw);
    put(&t, "%sstruct P { i64 w[%d]; };\n", prelude, a.n);
    put(&t, "extern \"C\" __global__ void __launch_bounds__(256) k(const P p) {\n");
    put(&t, "const i64 n = p.w[%d];\n", wn);
    put(&t, "for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {\n");
    bool strided = false;
    for (int j = 0; j < g->nleaves; j++) strided |= s->kind[j] == 2;
    if (strided) {
        for (int j = 0; j < g->nleaves; j++)
            if (s->kind[j] == 2) put(&t, "i64 o%d = 0;\n", j);
        put(&t, "{ i64 r = i, q;\n");
        for (int d = s->nd - 1; d >= 0; d--) {
            put(&t, "q = r %% p.w[%d]; r /= p.w[%d];\n", sw[d], sw[d]);
            for (int j = 0; j < g->nleaves; j++)
                if (s->kind[j] == 2) put(&t, "o%d += q * p.w[%d];\n", j, stw[j] + d);
        }
        put(&t, "}\n");
    }
    int rc = put_program(&t, g, s, lw, fw, "i");
    char v[16];
    snprintf(v, sizeof v, "r%d", g->ninstr ? g->nleaves + g->ninstr - 1 : 0);
    put_store(&t, g->out->dtype, ow[0], "i", v);
    for (int o = 0; o < g->nouts; o++) {
        snprintf(v, sizeof v, "r%d", g->nleaves + g->outs[o].instr);
        put_store(&t, g->outs[o].node->dtype, ow[1 + o], "i", v);
    }
    put(&t, "}\n}\n");
    if (t.oom) { free(t.s); lz_fail("fused kernel: out of memory"); return -1; }
    if (rc) { free(t.s); return -1; }
    pl->src = t.s;
    pl->nw = a.n;
    pl->threads = 256;
    pl->grid = (cg_dim){(unsigned)blocks_for(n, 256, sms), 1};
    pl->empty = n == 0;
    return 0;
}

/* ---- reductions ---- */
enum { M_WARP, M_BLOCK, M_COL };

static int gen_reduce(const lz_fused *g, const space *s, int sms, cg_plan *pl) {
    const lz_array *red = g->reduce;
    lz_dtype vt = g->ninstr ? g->instr[g->ninstr - 1].node->dtype : g->leaves[0]->dtype;
    lz_dtype ot = red->dtype;
    bool fv = is_f(vt);
    int op = red->prim == LZ_P_SUM ? 0 : red->prim == LZ_P_PROD ? 1 : red->prim == LZ_P_MAX ? 2 : 3;
    const char *acc = fv ? (op < 2 ? "double" : "float") : (op < 2 ? "u64" : "i64");
    const char *ident[2][4] = {{"0", "1", "(-9223372036854775807LL - 1)", "9223372036854775807LL"},
                               {"0.0", "1.0", "-finf()", "finf()"}};
    const char *comb[2][4] = {{"(a + b)", "(a * b)", "(a > b ? a : b)", "(a < b ? a : b)"},
                              {"(a + b)", "(a * b)", "((a != a || b != b) ? fnan() : a > b ? a : b)",
                               "((a != a || b != b) ? fnan() : a < b ? a : b)"}};
    int64_t O = 1, R = 1;
    int nk = 0, nr = 0, kd[LZ_MAX_DIMS], rd[LZ_MAX_DIMS];
    for (int d = 0; d < s->nd; d++) {
        if (s->red[d]) { R *= s->shape[d]; rd[nr++] = d; }
        else { O *= s->shape[d]; kd[nk++] = d; }
    }
    int mode = nk && !s->red[s->nd - 1] ? M_COL : (O >= 8LL * sms * 8 || R <= 256) ? M_WARP : M_BLOCK;
    int64_t P = 1;
    if (mode == M_BLOCK && O < 2LL * sms && R >= 32768) {
        P = (4LL * sms + O - 1) / O;
        if (P > R / 8192) P = R / 8192;
    } else if (mode == M_COL && O < 256LL * sms && R >= 64) {
        P = (512LL * sms + O - 1) / O;
        if (P > R / 32) P = R / 32;
    }
    if (P < 1) P = 1;
    if (P > 65535) P = 65535;
    int64_t chunk = (R + P - 1) / P;

    text t = {0};
    words a = {.w = pl->w, .n = 0};
    int lw[LZ_FUSE_MAX], fw[LZ_FUSE_MAX], ksw[LZ_MAX_DIMS], rsw[LZ_MAX_DIMS];
    int kst[LZ_FUSE_MAX], rst[LZ_FUSE_MAX];
    int wO = word(&a, O), wR = word(&a, R), wc = word(&a, chunk), wP = word(&a, P);
    for (int i = 0; i < nk; i++) ksw[i] = word(&a, s->shape[kd[i]]);
    for (int i = 0; i < nr; i++) rsw[i] = word(&a, s->shape[rd[i]]);
    for (int j = 0; j < g->nleaves; j++) {
        lw[j] = leaf_word(&a, s, g->leaves[j], j);
        kst[j] = rst[j] = -1;
        if (s->kind[j] == 2) {
            kst[j] = a.n;
            for (int i = 0; i < nk; i++) word(&a, s->st[j][kd[i]]);
            rst[j] = a.n;
            for (int i = 0; i < nr; i++) word(&a, s->st[j][rd[i]]);
        }
    }
    int wout = word_ptr(&a, red->buf->dev), wpart = word(&a, 0);
    param_words(&a, g, fw);
    put(&t, "%sstruct P { i64 w[%d]; };\n", prelude, a.n);
    put(&t, "typedef %s ACC;\n", acc);
    put(&t, "DI ACC cmb(ACC a, ACC b) { return %s; }\n", comb[fv][op]);
    /* the value at (kept offsets b<j>, reduced flat index r) */
    put(&t, "DI ACC val(const P &p, const i64 *b, i64 r) {\n");
    for (int j = 0; j < g->nleaves; j++)
        if (s->kind[j] == 2) put(&t, "i64 o%d = b[%d];\n", j, j);
    put(&t, "{ i64 q; (void)q;\n");
    for (int i = nr - 1; i >= 0; i--) {
        put(&t, "q = r %% p.w[%d]; r /= p.w[%d];\n", rsw[i], rsw[i]);
        for (int j = 0; j < g->nleaves; j++)
            if (s->kind[j] == 2) put(&t, "o%d += q * p.w[%d];\n", j, rst[j] + i);
    }
    put(&t, "}\n");
    int rc = put_program(&t, g, s, lw, fw, "0");
    put(&t, "return (ACC)r%d;\n}\n", g->ninstr ? g->nleaves + g->ninstr - 1 : 0);
    /* kept offsets of output o */
    put(&t, "DI void base(const P &p, i64 o, i64 *b) {\n");
    for (int j = 0; j < g->nleaves; j++) put(&t, "b[%d] = 0;\n", j);
    put(&t, "i64 q; (void)q;\n");
    for (int i = nk - 1; i >= 0; i--) {
        put(&t, "q = o %% p.w[%d]; o /= p.w[%d];\n", ksw[i], ksw[i]);
        for (int j = 0; j < g->nleaves; j++)
            if (s->kind[j] == 2) put(&t, "b[%d] += q * p.w[%d];\n", j, kst[j] + i);
    }
    put(&t, "}\n");
    put(&t, "DI void fin(const P &p, i64 o, i64 c, ACC v) {\n");
    put(&t, "if (p.w[%d] > 1) { ((ACC *)p.w[%d])[o * p.w[%d] + c] = v; return; }\n", wP, wpart, wP);
    put_store(&t, ot, wout, "o", "v");
    put(&t, "}\n");
    put(&t, "DI ACC wsum(ACC v) { for (int s = 16; s > 0; s >>= 1) v = cmb(v, __shfl_down_sync(0xffffffffu, v, s)); return v; }\n");
    put(&t, "extern \"C\" __global__ void __launch_bounds__(256) k(const P p) {\n");
    put(&t, "const i64 O = p.w[%d], R = p.w[%d], chunk = p.w[%d];\ni64 b[%d];\n", wO, wR, wc,
        g->nleaves ? g->nleaves : 1);
    if (mode == M_WARP) {
        put(&t, "const int lane = threadIdx.x & 31;\n"
                "const i64 w0 = (blockIdx.x * (i64)blockDim.x + threadIdx.x) >> 5, nw = ((i64)gridDim.x * blockDim.x) >> 5;\n"
                "for (i64 o = w0; o < O; o += nw) {\n  base(p, o, b);\n  ACC acc = %s;\n"
                "  for (i64 r = lane; r < R; r += 32) acc = cmb(acc, val(p, b, r));\n"
                "  acc = wsum(acc);\n  if (lane == 0) fin(p, o, 0, acc);\n}\n", ident[fv][op]);
    } else if (mode == M_BLOCK) {
        put(&t, "__shared__ ACC sh[32];\n"
                "const i64 c = blockIdx.y, r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;\n"
                "for (i64 o = blockIdx.x; o < O; o += gridDim.x) {\n  base(p, o, b);\n  ACC acc = %s;\n"
                "  for (i64 r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc = cmb(acc, val(p, b, r));\n"
                "  acc = wsum(acc);\n"
                "  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;\n  __syncthreads();\n"
                "  if (threadIdx.x < 32) {\n    acc = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : (ACC)%s;\n"
                "    acc = wsum(acc);\n    if (threadIdx.x == 0) fin(p, o, c, acc);\n  }\n  __syncthreads();\n}\n",
            ident[fv][op], ident[fv][op]);
    } else {
        put(&t, "const i64 c = blockIdx.y, r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;\n"
                "for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < O; o += (i64)gridDim.x * blockDim.x) {\n"
                "  base(p, o, b);\n  ACC acc = %s;\n"
                "  for (i64 r = r0; r < r1; r++) acc = cmb(acc, val(p, b, r));\n"
                "  fin(p, o, c, acc);\n}\n", ident[fv][op]);
    }
    put(&t, "}\n");
    put(&t, "extern \"C\" __global__ void comb(const P p) {\n"
            "const i64 O = p.w[%d], np = p.w[%d];\n"
            "for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < O; o += (i64)gridDim.x * blockDim.x) {\n"
            "  ACC v = %s;\n  for (i64 c = 0; c < np; c++) v = cmb(v, ((const ACC *)p.w[%d])[o * np + c]);\n",
        wO, wP, ident[fv][op], wpart);
    put_store(&t, ot, wout, "o", "v");
    put(&t, "}\n}\n");
    if (t.oom) { free(t.s); lz_fail("fused kernel: out of memory"); return -1; }
    if (rc) { free(t.s); return -1; }
    pl->src = t.s;
    pl->nw = a.n;
    pl->threads = 256;
    pl->comb = P > 1;
    pl->wpart = P > 1 ? wpart : -1;
    pl->part_bytes = P > 1 ? (size_t)(O * P) * 8 : 0;
    pl->empty = O == 0;
    if (mode == M_WARP) pl->grid = (cg_dim){(unsigned)blocks_for(O * 32, 256, sms), 1};
    else if (mode == M_BLOCK) pl->grid = (cg_dim){(unsigned)(O < 65535 ? O : 65535), (unsigned)P};
    else pl->grid = (cg_dim){(unsigned)((O + 255) / 256 < 65535 ? (O + 255) / 256 : 65535), (unsigned)P};
    pl->comb_grid = (cg_dim){(unsigned)blocks_for(O, 256, sms), 1};
    return 0;
}

int cg_plan_group(const lz_fused *g, int sms, cg_plan *pl) {
    memset(pl, 0, sizeof *pl);
    pl->wpart = -1;
    int64_t n = lz_size(g->out);
    space s;
    make_space(&s, g);
    int need = 8 + 2 * s.nd + g->nleaves * (1 + s.nd) + 1 + g->nouts + 2 * g->ninstr;
    if (need > CG_MAXW) {
        lz_fail("fused kernel: group too large (%d argument words)", need);
        return -1;
    }
    int rc = g->reduce ? gen_reduce(g, &s, sms, pl) : gen_elementwise(g, &s, n, sms, pl);
    if (rc) return -1;
    uint64_t moved = (uint64_t)(g->reduce ? lz_size(g->reduce) : n) *
                     lz_dtype_size(g->reduce ? g->reduce->dtype : g->out->dtype);
    for (int o = 0; o < g->nouts; o++) moved += (uint64_t)n * lz_dtype_size(g->outs[o].node->dtype);
    for (int j = 0; j < g->nleaves; j++)
        moved += (uint64_t)(s.kind[j] == 1 ? 1 : s.kind[j] == 3 ? 0 : n) * lz_dtype_size(g->leaves[j]->dtype);
    pl->moved = moved;
    return 0;
}

void cg_plan_free(cg_plan *p) {
    free(p->src);
    p->src = NULL;
}
