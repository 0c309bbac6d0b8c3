/* The CUDA backend's speed, with the GPU as the default device, against raw CUDA libraries and
 * PyTorch (bench/torch_cuda.py, run by this program on the same GPU right after leibniz's
 * figures). Without a GPU (or built without CUDA) it says so and exits 0.
 *
 * Timing: every figure comes after warm-up runs (the first runs generate and compile fused
 * kernels with NVRTC and fill the allocator's device cache); a timed region is `inner` runs
 * (build the ops, lz_eval) between two lz_synchronize(), and a figure is the best region of
 * several. Training steps are timed one at a time (each ends in lz_item(loss), which waits for
 * the GPU) and give the median step. Inputs are made once and live on the GPU before timing.
 *
 *   cuda_gemm_<n>_TFLOPs[_cublas], _ratio   lz_matmul vs cublasSgemm, square f32 (2 n^3 flops)
 *   cuda_fused_chain_GBs, cuda_memcpy_d2d_GBs, cuda_fused_chain_ratio, cuda_fused_chain_kernels
 *        an 8-op elementwise chain over 64M f32 (read x once, write y once) vs cudaMemcpy D2D
 *        of the same bytes (read + write bytes / time); the chain must be one kernel
 *   cuda_softmax_GBs, cuda_layer_norm_GBs   [16384, 1024] f32, last axis (read + write bytes)
 *   cuda_attention_fwd[_bwd]_TFLOPs   lz_attention, B 16, H 8, T 1024, D 64, causal; flops
 *        counted over the causal half: forward 2 B H T^2 D, forward + backward 3.5x that
 *        (two matmuls forward, five backward); fwd_bwd = value and d q, d k, d v of
 *        sum(attention) through lz_value_and_grad
 *   cuda_conv_fwd[_bwd]_ms   the MNIST CNN's conv layers, batch 128: conv 1->32 3x3 pad 1 +
 *        bias, relu, maxpool 2, conv 32->64 + bias, relu; fwd_bwd: d w1, b1, w2, b2 of the sum
 *   cuda_{mlp,cnn}_step_ms, cuda_gpt_tokens_per_s   bench_train's three models' full training
 *        step (forward, backward, Adam/AdamW, one lz_eval, loss read back): MNIST MLP
 *        784-512-512-10 and CNN at batch 128, 4-layer GPT D 128, context 128, batch 32;
 *        with per step: graph_build_ms (host time building the graph before lz_eval),
 *        kernels_per_step (GPU launches), cpu_fallbacks_per_step (nodes asked for on the GPU
 *        that ran on the CPU: should be 0), copy_KB_per_step (host <-> device), and
 *        warmup_compiles (NVRTC compiles in the warm-up steps)
 *   *_torch, *_speedup   PyTorch's figure for the same work (eager, TF32 off) and leibniz's
 *        speed over PyTorch's (> 1: leibniz faster); cuda_gpt_speedup_vs_sdpa against a GPT
 *        using F.scaled_dot_product_attention instead of torch_train.py's explicit attention
 *
 * Environment: BENCH_CUDA_TORCH=0 skips PyTorch; BENCH_CUDA_SECTIONS, a subset of
 * "gemm,ew,norm,attn,conv,mlp,cnn,gpt" (default all); BENCH_CUDA_STEPS scales the timed
 * training steps (default 1: 200 MLP, 100 CNN, 40 GPT). LZ_TF32=1 lets both leibniz and the
 * raw cuBLAS handle use TF32 (PyTorch stays without). */
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "leibniz.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "bench.h"
#include "bench_gpt.h"
#ifdef LZ_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#endif

#define NBATCH 4   /* distinct training batches, cycled (as bench_train) */

static int failures;

static void failed(const char *what) {
    printf("bench_cuda: %s failed: %s\n", what, lz_error());
    fflush(stdout);
    lz_error_clear();
    failures++;
}

/* ---- figures: printed, and kept by name for the ratios ---- */
typedef struct { char name[64]; double v; } figure;
static figure figs[128];
static int nfigs;

static void keep(const char *name, double v) {
    if (nfigs < (int)(sizeof figs / sizeof *figs)) {
        snprintf(figs[nfigs].name, sizeof figs[nfigs].name, "%s", name);
        figs[nfigs++].v = v;
    }
}

static double fig(const char *name) {   /* -1: none */
    for (int i = nfigs - 1; i >= 0; i--)
        if (!strcmp(figs[i].name, name)) return figs[i].v;
    return -1;
}

static void bench(const char *name, int digits, double v, const char *unit) {
    printf("BENCH %s %.*f %s\n", name, digits, v, unit);
    fflush(stdout);
    keep(name, v);
}

/* leibniz / torch (higher is better) or torch / leibniz (times), when both exist */
static void speedup(const char *name, const char *ours, const char *theirs, bool times) {
    double a = fig(ours), b = fig(theirs);
    if (a > 0 && b > 0) bench(name, 2, times ? b / a : a / b, "x");
}

static bool wanted(const char *sec) {
    const char *e = getenv("BENCH_CUDA_SECTIONS");
    if (!e || !*e) return true;
    size_t n = strlen(sec);
    for (const char *p = e; (p = strstr(p, sec)); p += n)
        if ((p == e || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

/* Counters over a section: warns about nodes that fell back to the CPU. */
static lz_stats_t sec0;
static void section_begin(void) { sec0 = lz_stats(); }
static void section_end(const char *name) {
    lz_stats_t s = lz_stats();
    if (s.cpu_fallbacks > sec0.cpu_fallbacks)
        printf("bench_cuda: %s: %llu nodes ran on the CPU instead of the GPU\n", name,
               (unsigned long long)(s.cpu_fallbacks - sec0.cpu_fallbacks));
    printf("bench_cuda: %s: %llu kernels compiled\n", name, (unsigned long long)(s.compiles - sec0.compiles));
    fflush(stdout);
}

/* The best time of one body run (s) over `reps` regions of `inner` runs, after `warm`
 * untimed runs; -1 when a run fails. */
static double gpu_time(int (*body)(void *), void *ctx, int warm, int inner, int reps) {
    for (int i = 0; i < warm; i++)
        if (body(ctx)) return -1;
    lz_synchronize();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < inner; i++)
            if (body(ctx)) return -1;
        lz_synchronize();
        double t = (now() - t0) / inner;
        if (t < best) best = t;
    }
    return best;
}

/* Reads a result back (surfacing any asynchronous error) and checks it is finite. */
static int check_finite(lz_array *a, const char *what) {
    lz_pool_push();
    double s = lz_item(lz_sum(a, NULL, 0, 0));
    lz_pool_pop();
    if (!isfinite(s)) {
        if (!*lz_error()) lz_fail("%s: result is not finite", what);
        return -1;
    }
    return 0;
}

static lz_array *randn(uint64_t seed, int nd, const int64_t *shape) {
    lz_array *a = lz_random_normal(lz_key_new(seed), nd, shape, 0, 1, LZ_F32);
    if (a && lz_eval1(a)) {
        lz_release(a);
        return NULL;
    }
    return a;
}

/* ======================= 1. GEMM ======================= */
typedef struct { lz_array *a, *b; } pair_ctx;

static int matmul_body(void *p) {
    pair_ctx *c = p;
    lz_array *r = lz_matmul(c->a, c->b);
    int rc = r ? lz_eval1(r) : -1;
    lz_release(r);
    return rc;
}

#ifdef LZ_CUDA
/* cublasSgemm on its own handle and buffers (the legacy default stream), timed by events;
 * *maxdiff gets max |C - ref| when ref is given. TFLOP/s, or -1. */
static double cublas_tflops(int n, const float *ha, const float *hb, const float *ref, double *maxdiff) {
    cublasHandle_t h = NULL;
    float *a = NULL, *b = NULL, *c = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    size_t bytes = (size_t)n * n * sizeof(float);
    double best = -1;
    const char *tf32 = getenv("LZ_TF32");
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        printf("bench_cuda: cublasCreate failed\n");
        return -1;
    }
    cublasSetMathMode(h, tf32 && !strcmp(tf32, "1") ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (cudaMalloc((void **)&a, bytes) || cudaMalloc((void **)&b, bytes) || cudaMalloc((void **)&c, bytes) ||
        cudaMemcpy(a, ha, bytes, cudaMemcpyHostToDevice) || cudaMemcpy(b, hb, bytes, cudaMemcpyHostToDevice) ||
        cudaEventCreate(&e0) || cudaEventCreate(&e1)) {
        printf("bench_cuda: cuBLAS side: %s\n", cudaGetErrorString(cudaGetLastError()));
        goto done;
    }
    const float one = 1, zero = 0;
    /* row-major C = A B is column-major C^T = B^T A^T */
#define SGEMM() cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, b, n, a, n, &zero, c, n)
    if (SGEMM() != CUBLAS_STATUS_SUCCESS || SGEMM() != CUBLAS_STATUS_SUCCESS) {
        printf("bench_cuda: cublasSgemm failed\n");
        goto done;
    }
    cudaDeviceSynchronize();
    double flops = 2.0 * n * n * n;
    int inner = (int)(5e11 / flops) + 1;
    if (inner < 2) inner = 2;
    if (inner > 300) inner = 300;
    float best_ms = 1e30f;
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(e0, 0);
        for (int i = 0; i < inner; i++) SGEMM();
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        if (ms < best_ms) best_ms = ms;
    }
#undef SGEMM
    best = flops / (best_ms * 1e-3 / inner) * 1e-12;
    if (ref) {
        float *hc = malloc(bytes);
        if (hc && cudaMemcpy(hc, c, bytes, cudaMemcpyDeviceToHost) == cudaSuccess) {
            double m = 0;
            for (size_t i = 0; i < (size_t)n * n; i++) m = fmax(m, fabs((double)hc[i] - ref[i]));
            *maxdiff = m;
        }
        free(hc);
    }
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cublasDestroy(h);
    return best;
}

/* cudaMemcpy device to device of `bytes`: (read + write) GB/s, or -1. */
static double memcpy_gbs(size_t bytes) {
    void *s = NULL, *d = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = -1;
    if (cudaMalloc(&s, bytes) || cudaMalloc(&d, bytes) || cudaMemset(s, 0, bytes) ||
        cudaEventCreate(&e0) || cudaEventCreate(&e1)) {
        printf("bench_cuda: memcpy: %s\n", cudaGetErrorString(cudaGetLastError()));
        goto done;
    }
    cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, 0);
    cudaDeviceSynchronize();
    float best_ms = 1e30f;
    const int inner = 10;
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(e0, 0);
        for (int i = 0; i < inner; i++) cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        if (ms < best_ms) best_ms = ms;
    }
    if (cudaGetLastError() == cudaSuccess) best = 2.0 * (double)bytes / (best_ms * 1e-3 / inner) * 1e-9;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(s);
    cudaFree(d);
    return best;
}
#endif

static void bench_gemm(void) {
    static const int sizes[] = {1024, 2048, 4096, 8192};
    section_begin();
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        size_t nn = (size_t)n * n;
        int64_t shape[2] = {n, n};
        float *ha = malloc(nn * sizeof *ha), *hb = malloc(nn * sizeof *hb);
        if (!ha || !hb) {
            free(ha);
            free(hb);
            printf("bench_cuda: gemm %d: out of host memory\n", n);
            failures++;
            continue;
        }
        uint32_t st = 12345u + (uint32_t)n;   /* the same values on both sides, in [-1, 1) */
        for (size_t i = 0; i < nn; i++) {
            st = st * 1664525u + 1013904223u;
            ha[i] = (float)(st >> 8) * (2.0f / 16777216.0f) - 1.0f;
            st = st * 1664525u + 1013904223u;
            hb[i] = (float)(st >> 8) * (2.0f / 16777216.0f) - 1.0f;
        }
        pair_ctx c = {lz_from_data(ha, 2, shape, LZ_F32), lz_from_data(hb, 2, shape, LZ_F32)};
        double flops = 2.0 * n * n * n;
        int inner = (int)(5e11 / flops) + 1;
        if (inner < 2) inner = 2;
        if (inner > 300) inner = 300;
        double t = c.a && c.b ? gpu_time(matmul_body, &c, 2, inner, 5) : -1;
        char name[64];
        float *ref = NULL;
        if (t < 0) {
            char what[32];
            snprintf(what, sizeof what, "gemm %d", n);
            failed(what);
        } else {
            snprintf(name, sizeof name, "cuda_gemm_%d_TFLOPs", n);
            bench(name, 2, flops / t * 1e-12, "TFLOP/s");
            if (n == 1024) {   /* leibniz's product, to check against cuBLAS's */
                lz_array *r = lz_matmul(c.a, c.b);
                ref = malloc(nn * sizeof *ref);
                if (!r || !ref || lz_to_float(r, ref, (int64_t)nn)) {
                    free(ref);
                    ref = NULL;
                    failed("gemm 1024 read back");
                }
                lz_release(r);
            }
        }
        lz_release(c.a);
        lz_release(c.b);
        lz_memory_clear_cache();   /* leave the card to the raw side */
#ifdef LZ_CUDA
        double diff = -1, tc = cublas_tflops(n, ha, hb, ref, &diff);
        if (tc > 0) {
            snprintf(name, sizeof name, "cuda_gemm_%d_TFLOPs_cublas", n);
            bench(name, 2, tc, "TFLOP/s");
            if (t > 0) {
                snprintf(name, sizeof name, "cuda_gemm_%d_ratio", n);
                bench(name, 1, 100.0 * flops / t * 1e-12 / tc, "%");
            }
        } else {
            failures++;
        }
        if (ref && diff >= 0) {
            printf("bench_cuda: gemm %d: max |leibniz - cublas| = %.3g\n", n, diff);
            if (diff > 1e-2) {
                printf("bench_cuda: gemm %d: leibniz and cuBLAS disagree\n", n);
                failures++;
            }
        }
#endif
        free(ref);
        free(ha);
        free(hb);
    }
    section_end("gemm");
}

/* ======================= 2. fused elementwise chain ======================= */
static lz_array *chain(lz_array *x) {   /* 8 elementwise ops: x -> y */
    lz_array *t = lz_add_scalar(x, 0.5);
    t = lz_neg(lz_square(lz_sin(t)));
    t = lz_tanh(lz_mul_scalar(lz_exp(t), 3.0));
    return lz_add(t, x);
}

static int chain_body(void *p) {
    lz_pool_push();
    int rc = lz_eval1(chain(p));
    lz_pool_pop();
    return rc;
}

static void bench_elementwise(void) {
    const int64_t n = (int64_t)64 << 20;
    section_begin();
    lz_array *x = lz_random_uniform(lz_key_new(7), 1, &n, -1, 1, LZ_F32);
    if (!x || lz_eval1(x)) {
        failed("fused chain input");
        lz_release(x);
        return;
    }
    double t = gpu_time(chain_body, x, 2, 20, 5);
    if (t < 0) {
        failed("fused chain");
    } else {
        lz_pool_push();
        lz_array *y = chain(x);
        lz_stats_t s0 = lz_stats();
        int rc = lz_eval1(y);
        lz_stats_t s1 = lz_stats();
        if (rc || check_finite(y, "fused chain")) failed("fused chain");
        lz_pool_pop();
        bench("cuda_fused_chain_GBs", 0, 2.0 * (double)n * 4 / t * 1e-9, "GB/s");
        uint64_t k = s1.kernels - s0.kernels, g = s1.gpu_kernels - s0.gpu_kernels;
        bench("cuda_fused_chain_kernels", 0, (double)k, "kernels");
        if (k != 1 || g != 1) {
            printf("bench_cuda: the 8-op chain ran as %llu kernels (%llu on the GPU), not one\n",
                   (unsigned long long)k, (unsigned long long)g);
            failures++;
        }
    }
    lz_release(x);
    lz_memory_clear_cache();
#ifdef LZ_CUDA
    double m = memcpy_gbs((size_t)n * 4);
    if (m > 0) {
        bench("cuda_memcpy_d2d_GBs", 0, m, "GB/s");
        if (t > 0) bench("cuda_fused_chain_ratio", 1, 100.0 * fig("cuda_fused_chain_GBs") / m, "%");
    } else {
        failures++;
    }
#endif
    section_end("fused chain");
}

/* ======================= 3. softmax, layer norm ======================= */
typedef struct { lz_array *x, *w, *b; int which; } norm_ctx;

static lz_array *norm_op(norm_ctx *c) {
    return c->which ? lz_layer_norm(c->x, c->w, c->b, 1e-5) : lz_softmax(c->x, -1);
}

static int norm_body(void *p) {
    lz_pool_push();
    int rc = lz_eval1(norm_op(p));
    lz_pool_pop();
    return rc;
}

static void bench_norm(void) {
    int64_t shape[2] = {16384, 1024}, d = 1024;
    section_begin();
    norm_ctx c = {randn(11, 2, shape), lz_ones(1, &d, LZ_F32), lz_zeros(1, &d, LZ_F32), 0};
    if (!c.x || !c.w || !c.b || LZ_EVAL(c.w, c.b)) {
        failed("norm inputs");
    } else {
        static const char *const names[2] = {"cuda_softmax_GBs", "cuda_layer_norm_GBs"};
        for (c.which = 0; c.which < 2; c.which++) {
            double t = gpu_time(norm_body, &c, 2, 50, 5);
            lz_pool_push();
            if (t < 0 || check_finite(norm_op(&c), names[c.which])) failed(names[c.which]);
            else bench(names[c.which], 0, 2.0 * 16384 * 1024 * 4 / t * 1e-9, "GB/s");
            lz_pool_pop();
        }
    }
    lz_release(c.x);
    lz_release(c.w);
    lz_release(c.b);
    section_end("softmax/layer_norm");
}

/* ======================= 4. attention ======================= */
typedef struct { lz_array *in[3]; int grad; } attn_ctx;

static int attn_loss(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)ctx;
    (void)n;
    out[0] = lz_sum(lz_attention(in[0], in[1], in[2], 0, 1), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

static int attn_body(void *p) {
    attn_ctx *c = p;
    lz_pool_push();
    int rc;
    if (!c->grad) {
        rc = lz_eval1(lz_attention(c->in[0], c->in[1], c->in[2], 0, 1));
    } else {
        lz_array *v, *g[3];
        rc = lz_value_and_grad(attn_loss, NULL, 3, c->in, NULL, &v, 1, g) < 1 ? -1 : LZ_EVAL(v, g[0], g[1], g[2]);
    }
    lz_pool_pop();
    return rc;
}

static void bench_attention(void) {
    const int64_t B = 16, H = 8, T = 1024, D = 64, shape[4] = {B, H, T, D};
    section_begin();
    attn_ctx c = {{randn(21, 4, shape), randn(22, 4, shape), randn(23, 4, shape)}, 0};
    double fwd = 2.0 * B * H * T * T * D;   /* causal half of 4 B H T^2 D */
    if (!c.in[0] || !c.in[1] || !c.in[2]) {
        failed("attention inputs");
    } else {
        for (c.grad = 0; c.grad < 2; c.grad++) {
            const char *name = c.grad ? "cuda_attention_fwd_bwd_TFLOPs" : "cuda_attention_fwd_TFLOPs";
            double t = gpu_time(attn_body, &c, 2, c.grad ? 3 : 5, 5);
            if (t < 0) failed(name);
            else bench(name, 2, (c.grad ? 3.5 : 1.0) * fwd / t * 1e-12, "TFLOP/s");
        }
        lz_pool_push();
        if (check_finite(lz_attention(c.in[0], c.in[1], c.in[2], 0, 1), "attention")) failed("attention check");
        lz_pool_pop();
    }
    for (int i = 0; i < 3; i++) lz_release(c.in[i]);
    section_end("attention");
}

/* ======================= 5. the CNN's conv layers ======================= */
static lz_array *cnn_front(lz_array *const *in) {   /* x, w1, b1, w2, b2 */
    int k2[2] = {2, 2}, p1[2] = {1, 1};
    lz_array *h = lz_conv2d(in[0], in[1], NULL, p1, NULL, 1);
    h = lz_relu(lz_add(h, lz_reshape(in[2], 4, (int64_t[]){1, 32, 1, 1})));
    h = lz_max_pool2d(h, k2, NULL, NULL);
    h = lz_conv2d(h, in[3], NULL, p1, NULL, 1);
    return lz_relu(lz_add(h, lz_reshape(in[4], 4, (int64_t[]){1, 64, 1, 1})));
}

static int conv_loss(void *ctx, int n, lz_array *const *in, lz_array **out) {
    (void)ctx;
    (void)n;
    out[0] = lz_sum(cnn_front(in), NULL, 0, 0);
    return out[0] ? 1 : -1;
}

typedef struct { lz_array *in[5]; int grad; } conv_ctx;

static int conv_body(void *p) {
    conv_ctx *c = p;
    lz_pool_push();
    int rc;
    if (!c->grad) {
        rc = lz_eval1(cnn_front(c->in));
    } else {
        static const bool wrt[5] = {false, true, true, true, true};
        lz_array *v, *g[5];
        rc = lz_value_and_grad(conv_loss, NULL, 5, c->in, wrt, &v, 1, g) < 1 ? -1
             : LZ_EVAL(v, g[1], g[2], g[3], g[4]);
    }
    lz_pool_pop();
    return rc;
}

static void bench_conv(void) {
    int64_t xs[4] = {128, 1, 28, 28}, w1s[4] = {32, 1, 3, 3}, w2s[4] = {64, 32, 3, 3}, b1 = 32, b2 = 64;
    section_begin();
    conv_ctx c = {{lz_random_uniform(lz_key_new(31), 4, xs, 0, 1, LZ_F32),
                   lz_random_uniform(lz_key_new(32), 4, w1s, -1.0 / 3, 1.0 / 3, LZ_F32),
                   lz_random_uniform(lz_key_new(33), 1, &b1, -1.0 / 3, 1.0 / 3, LZ_F32),
                   lz_random_uniform(lz_key_new(34), 4, w2s, -1.0 / 17, 1.0 / 17, LZ_F32),
                   lz_random_uniform(lz_key_new(35), 1, &b2, -1.0 / 17, 1.0 / 17, LZ_F32)}, 0};
    if (lz_eval(5, c.in)) {
        failed("conv inputs");
    } else {
        for (c.grad = 0; c.grad < 2; c.grad++) {
            const char *name = c.grad ? "cuda_conv_fwd_bwd_ms" : "cuda_conv_fwd_ms";
            double t = gpu_time(conv_body, &c, 3, 20, 5);
            if (t < 0) failed(name);
            else bench(name, 3, t * 1e3, "ms");
        }
        lz_pool_push();
        if (check_finite(cnn_front(c.in), "conv")) failed("conv check");
        lz_pool_pop();
    }
    for (int i = 0; i < 5; i++) lz_release(c.in[i]);
    section_end("conv");
}

/* ======================= 6. training steps =======================
 * bench_train.c's model, setup, step, images and labels (static there), copied: the same
 * models and step, failing softly (a model that fails is reported and skipped). */
typedef struct {
    lz_module *m;
    lz_named_list l;
    const char **names;
    lz_optim *opt;
    lz_array *x[NBATCH], *y[NBATCH];
    int cur;
} model;

static int loss_fn(void *ctx, lz_module *m, lz_array **out) {
    model *b = ctx;
    out[0] = lz_cross_entropy(lz_module_forward(m, b->x[b->cur], NULL), b->y[b->cur], NULL);
    return out[0] ? 1 : -1;
}

static int setup(model *b, lz_module *m, lz_optim_kind kind) {
    *b = (model){.m = m};
    if (!m || lz_module_collect(m, LZ_TRAINABLE, &b->l)) return -1;
    b->names = malloc((size_t)b->l.n * sizeof *b->names);
    for (int i = 0; i < b->l.n; i++) b->names[i] = b->l.items[i].name;
    lz_optim_config c = lz_optim_defaults(kind);
    b->opt = lz_optim_new(&c);
    return b->opt ? 0 : -1;
}

static void teardown(model *b) {
    lz_optim_free(b->opt);
    free(b->names);
    if (b->m) lz_named_list_free(&b->l);
    lz_module_free(b->m);
    for (int i = 0; i < NBATCH; i++) {
        lz_release(b->x[i]);
        lz_release(b->y[i]);
    }
}

/* One training step as bench_train times it; its wall time, or -1. */
static double step(model *b, double *build) {
    int n = b->l.n;
    lz_array *loss, *g[128], *p[128], *next[129];
    if (n > 128) {
        lz_fail("too many parameters for the bench");
        return -1;
    }
    double t0 = now();
    lz_pool_push();
    int rc = lz_module_value_and_grad(b->m, &b->l, loss_fn, b, &loss, 1, g) < 1 ? -1 : 0;
    if (!rc) {
        for (int i = 0; i < n; i++) p[i] = *b->l.items[i].slot;
        rc = lz_optim_step(b->opt, n, b->names, p, g, next, -1);
    }
    if (!rc) {
        for (int i = 0; i < n; i++) lz_param_set(&b->l.items[i], next[i]);
        next[n] = loss;
        *build = now() - t0;
        rc = lz_optim_eval(b->opt, n + 1, next);
    }
    if (!rc && !isfinite(lz_item(loss))) {
        if (!*lz_error()) lz_fail("loss is not finite");
        rc = -1;
    }
    lz_pool_pop();
    b->cur = (b->cur + 1) % NBATCH;
    return rc ? -1 : now() - t0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp);
    return t[n / 2];
}

static lz_array *images(int nd, const int64_t *s, unsigned seed) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    float *h = malloc((size_t)n * sizeof *h);
    srand(seed);
    for (int64_t i = 0; i < n; i++) h[i] = (float)(rand() & 255) / 255.0f;
    lz_array *a = lz_from_data(h, nd, s, LZ_F32);
    free(h);
    return a;
}

static lz_array *labels(int nd, const int64_t *s, int64_t hi, unsigned seed) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    int64_t *h = malloc((size_t)n * sizeof *h);
    srand(seed);
    for (int64_t i = 0; i < n; i++) h[i] = rand() % hi;
    lz_array *a = lz_from_data(h, nd, s, LZ_I64);
    free(h);
    return a;
}

/* Builds model k (0 mlp, 1 cnn, 2 gpt) with its batches; 0 or -1. */
static int build_model(int k, model *b) {
    int rc;
    if (k == 0) {
        rc = setup(b, lz_nn_sequential(5, (lz_module *[]){lz_nn_linear(784, 512, true, lz_key_new(1)), lz_nn_relu(),
                                                          lz_nn_linear(512, 512, true, lz_key_new(2)), lz_nn_relu(),
                                                          lz_nn_linear(512, 10, true, lz_key_new(3))}),
                   LZ_ADAM);
        int64_t xs[2] = {128, 784}, ys = 128;
        for (int i = 0; i < NBATCH && !rc; i++) {
            b->x[i] = images(2, xs, 100 + i);
            b->y[i] = labels(1, &ys, 10, 200 + i);
        }
    } else if (k == 1) {
        int k3[2] = {3, 3}, k2[2] = {2, 2}, p1[2] = {1, 1};
        rc = setup(b, lz_nn_sequential(10, (lz_module *[]){
                          lz_nn_conv2d(1, 32, k3, NULL, p1, NULL, 1, true, lz_key_new(1)), lz_nn_relu(),
                          lz_nn_max_pool2d(k2, NULL, NULL),
                          lz_nn_conv2d(32, 64, k3, NULL, p1, NULL, 1, true, lz_key_new(2)), lz_nn_relu(),
                          lz_nn_max_pool2d(k2, NULL, NULL), lz_nn_flatten(1, -1),
                          lz_nn_linear(64 * 7 * 7, 128, true, lz_key_new(3)), lz_nn_relu(),
                          lz_nn_linear(128, 10, true, lz_key_new(4))}),
                   LZ_ADAM);
        int64_t xs[4] = {128, 1, 28, 28}, ys = 128;
        for (int i = 0; i < NBATCH && !rc; i++) {
            b->x[i] = images(4, xs, 300 + i);
            b->y[i] = labels(1, &ys, 10, 400 + i);
        }
    } else {
        rc = setup(b, bench_gpt_new(65, 128, 128, 4, 4), LZ_ADAMW);
        int64_t ts[2] = {32, 128};
        for (int i = 0; i < NBATCH && !rc; i++) {
            b->x[i] = labels(2, ts, 65, 500 + i);
            b->y[i] = labels(2, ts, 65, 600 + i);
        }
    }
    for (int i = 0; i < NBATCH && !rc; i++)
        if (!b->x[i] || !b->y[i]) rc = -1;
    return rc;
}

static void bench_train_model(int k, double scale) {
    static const char *const key[3] = {"mlp", "cnn", "gpt"};
    static const int base_steps[3] = {200, 100, 40};
    char name[64], what[64];
    snprintf(what, sizeof what, "training step (%s)", key[k]);
    section_begin();
    model b;
    if (build_model(k, &b)) {
        failed(what);
        teardown(&b);
        return;
    }
    int steps = (int)(base_steps[k] * scale + 0.5);
    if (steps < 5) steps = 5;
    double *t = malloc((size_t)steps * sizeof *t), *g = malloc((size_t)steps * sizeof *g), build = 0;
    lz_stats_t w0 = lz_stats();
    int ok = 1;
    for (int i = 0; i < NBATCH + 4 && ok; i++) ok = step(&b, &build) > 0;   /* every batch on the GPU */
    lz_stats_t s0 = lz_stats();
    for (int i = 0; i < steps && ok; i++) ok = (t[i] = step(&b, g + i)) > 0;
    lz_stats_t s1 = lz_stats();
    if (!ok) {
        failed(what);
    } else {
        double med = median(t, steps), n = steps;
        if (k < 2) {
            snprintf(name, sizeof name, "cuda_%s_step_ms", key[k]);
            bench(name, 3, med * 1e3, "ms");
        } else {
            bench("cuda_gpt_tokens_per_s", 0, 32.0 * 128 / med, "tokens/s");
        }
        snprintf(name, sizeof name, "cuda_%s_graph_build_ms", key[k]);
        bench(name, 3, median(g, steps) * 1e3, "ms");
        snprintf(name, sizeof name, "cuda_%s_kernels_per_step", key[k]);
        bench(name, 1, (double)(s1.gpu_kernels - s0.gpu_kernels) / n, "kernels");
        snprintf(name, sizeof name, "cuda_%s_cpu_fallbacks_per_step", key[k]);
        bench(name, 1, (double)(s1.cpu_fallbacks - s0.cpu_fallbacks) / n, "nodes");
        snprintf(name, sizeof name, "cuda_%s_copy_KB_per_step", key[k]);
        bench(name, 1, (double)(s1.to_device - s0.to_device + s1.to_host - s0.to_host) / n / 1024, "KB");
        snprintf(name, sizeof name, "cuda_%s_warmup_compiles", key[k]);
        bench(name, 0, (double)(s0.compiles - w0.compiles), "kernels");
        if (s1.compiles != s0.compiles)
            printf("bench_cuda: %s: %llu kernels compiled during the timed steps\n", key[k],
                   (unsigned long long)(s1.compiles - s0.compiles));
    }
    free(t);
    free(g);
    teardown(&b);
    lz_memory_clear_cache();
    section_end(what);
}

/* ======================= PyTorch ======================= */
static void run_torch(const char *sections, double scale) {
    const char *e = getenv("BENCH_CUDA_TORCH");
    if (e && !strcmp(e, "0")) {
        printf("bench_cuda: BENCH_CUDA_TORCH=0: PyTorch skipped\n");
        return;
    }
    if (!*sections) return;
    /* bench/ of the working directory (make runs from the root), else of the tree the
     * binary was built in (build/<variant>/bench/bench_cuda) */
    char script[400] = "bench/torch_cuda.py", exe[300], cmd[1024];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (access(script, R_OK) && len > 0) {
        exe[len] = 0;
        snprintf(script, sizeof script, "%s/../../../bench/torch_cuda.py", dirname(exe));
    }
    snprintf(cmd, sizeof cmd, "python3 '%s' %d %d %d %s 2>&1", script, (int)(200 * scale + 0.5),
             (int)(100 * scale + 0.5), (int)(40 * scale + 0.5), sections);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("bench_cuda: could not run %s: no PyTorch figures\n", script);
        return;
    }
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        char name[64], unit[32];
        double v;
        fputs(line, stdout);
        fflush(stdout);
        if (sscanf(line, "BENCH %63s %lf %31s", name, &v, unit) == 3) {
            keep(name, v);
            got++;
        }
    }
    int st = pclose(p);
    if (st) printf("bench_cuda: torch_cuda.py exited with status %d\n", st);
    if (!got) printf("bench_cuda: no PyTorch figures\n");
}

int main(void) {
    if (!lz_gpu_available()) {
        printf("bench_cuda: no GPU (%s), skipped\n", lz_gpu_status());
        return 0;
    }
    if (lz_set_default_device(LZ_GPU)) {
        printf("bench_cuda: %s\n", lz_error());
        return 1;
    }
    const char *e = getenv("BENCH_CUDA_STEPS");
    double scale = e && atof(e) > 0 ? atof(e) : 1.0;
    printf("bench_cuda: %s, default device %s\n", lz_gpu_status(), lz_device_name(lz_default_device()));
    fflush(stdout);
    double t0 = now();

    if (wanted("gemm")) bench_gemm();
    if (wanted("ew")) bench_elementwise();
    if (wanted("norm")) bench_norm();
    if (wanted("attn")) bench_attention();
    if (wanted("conv")) bench_conv();
    static const char *const key[3] = {"mlp", "cnn", "gpt"};
    for (int k = 0; k < 3; k++)
        if (wanted(key[k])) bench_train_model(k, scale);
    printf("bench_cuda: leibniz side took %.1f s\n", now() - t0);

    char sections[128] = "";
    static const char *const torch_sec[] = {"norm", "attn", "conv", "mlp", "cnn", "gpt"};
    for (size_t i = 0; i < sizeof torch_sec / sizeof *torch_sec; i++)
        if (wanted(torch_sec[i])) {
            if (*sections) strcat(sections, ",");
            strcat(sections, torch_sec[i]);
        }
    lz_memory_clear_cache();   /* leave the card's memory to PyTorch */
    run_torch(sections, scale);

    speedup("cuda_softmax_speedup", "cuda_softmax_GBs", "cuda_softmax_GBs_torch", false);
    speedup("cuda_layer_norm_speedup", "cuda_layer_norm_GBs", "cuda_layer_norm_GBs_torch", false);
    speedup("cuda_attention_fwd_speedup", "cuda_attention_fwd_TFLOPs", "cuda_attention_fwd_TFLOPs_torch", false);
    speedup("cuda_attention_fwd_bwd_speedup", "cuda_attention_fwd_bwd_TFLOPs",
            "cuda_attention_fwd_bwd_TFLOPs_torch", false);
    speedup("cuda_conv_fwd_speedup", "cuda_conv_fwd_ms", "cuda_conv_fwd_ms_torch", true);
    speedup("cuda_conv_fwd_bwd_speedup", "cuda_conv_fwd_bwd_ms", "cuda_conv_fwd_bwd_ms_torch", true);
    speedup("cuda_mlp_speedup", "cuda_mlp_step_ms", "cuda_mlp_step_ms_torch", true);
    speedup("cuda_cnn_speedup", "cuda_cnn_step_ms", "cuda_cnn_step_ms_torch", true);
    speedup("cuda_gpt_speedup", "cuda_gpt_tokens_per_s", "cuda_gpt_tokens_per_s_torch", false);
    speedup("cuda_gpt_speedup_vs_sdpa", "cuda_gpt_tokens_per_s", "cuda_gpt_tokens_per_s_torch_sdpa", false);
    printf("bench_cuda: %.1f s in all%s\n", now() - t0, failures ? ", with failures (above)" : "");
    return failures ? 1 : 0;
}
