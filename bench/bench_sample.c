/* Generation speed of the character-level GPT of configs/shakespeare_char.yaml (4 blocks,
 * width 128, context 128, vocabulary 65; random weights: speed does not depend on them):
 * tokens per second with the key/value cache (one position per token per layer) and with
 * the whole window recomputed for every token, the same sampler (temperature 0.8, top-k 40),
 * 256 tokens after a 6-token prompt (the window restarts once past 128 tokens). Also the
 * peak array memory of one training step's gradients with and without checkpointed blocks
 * (batch 32 x 128 tokens).
 * The achieved rate of the cached generation is the FLOPs its kernels report (lz_stats: the
 * matmuls and attention; the re-feeding of half a window after each restart included) over
 * its time, set against the best 1024^3 cblas_sgemm measured here on the same threads
 * (before and after the generation: the better of the two, as bench_train does).
 *   BENCH gpt_sample_kv_cache <x> tokens/s
 *   BENCH gpt_sample_kv_cache_GFLOPs <x> GFLOP/s
 *   BENCH sgemm_peak_GFLOPs <x> GFLOP/s
 *   BENCH gpt_sample_kv_cache_of_peak <x> %
 *   BENCH gpt_sample_recompute <x> tokens/s
 *   BENCH gpt_step_peak_plain <x> MiB
 *   BENCH gpt_step_peak_checkpointed <x> MiB */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "leibniz.h"
#include "io/model.h"
#include "bench.h"

static lz_module *build(const char *ckpt) {
    const char *text = "name: b\ndata: {path: x.h5}\n"
                       "model: {type: transformer, n_layers: 4, n_heads: 4, d_model: 128, context: 128}\n";
    const char *over[1] = {ckpt};
    lz_config *c = lz_config_load_string(text, "bench.yaml", 1, over);
    lz_model_shape sh = {0, 0, 0, 65};
    lz_module *m = c ? lz_model_build(c, &sh, lz_key_new(1)) : NULL;
    lz_config_free(c);
    if (!m) { fprintf(stderr, "bench_sample: %s\n", lz_error()); exit(1); }
    return m;
}

typedef struct { lz_array *x, *y; } ctx;
static int loss_fn(void *p, lz_module *m, lz_array **out) {
    ctx *c = p;
    out[0] = lz_cross_entropy(lz_module_forward(m, c->x, NULL), c->y, NULL);
    return out[0] ? 1 : -1;
}

static double step_peak(const char *ckpt) {
    lz_module *m = build(ckpt);
    int32_t *v = malloc(32 * 128 * sizeof *v);
    for (int i = 0; i < 32 * 128; i++) v[i] = (i * 31 + 7) % 65;
    int64_t shape[2] = {32, 128};
    lz_array *x = lz_from_data(v, 2, shape, LZ_I32);
    free(v);
    lz_named_list l;
    lz_module_collect(m, LZ_TRAINABLE, &l);
    lz_array **g = calloc((size_t)l.n, sizeof *g), *loss = NULL;
    ctx c = {x, x};
    lz_memory_reset_peak();
    size_t base = lz_memory().active;
    lz_pool_push();
    int rc = lz_module_value_and_grad(m, &l, loss_fn, &c, &loss, 1, g);
    for (int i = 0; rc >= 0 && i < l.n; i++) lz_retain(g[i]);
    lz_pool_pop();
    if (rc < 0 || lz_eval(l.n, g)) { fprintf(stderr, "bench_sample: %s\n", lz_error()); exit(1); }
    double mib = (double)(lz_memory().peak - base) / 1048576.0;
    for (int i = 0; i < l.n; i++) lz_release(g[i]);
    free(g);
    lz_named_list_free(&l);
    lz_release(x);
    lz_module_free(m);
    return mib;
}

static double sgemm_peak(void) { return sgemm_peak_reps(8); }

int main(int argc, char **argv) {
    (void)argc;
    /* spinning OpenMP waits stall on a shared 2-core machine (see bench_train.c) */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    double peak = sgemm_peak();
    lz_module *m = build("model.checkpoint_blocks=false");
    int32_t prompt[6] = {30, 27, 25, 17, 27, 10}, out[256];
    const char *names[2] = {"gpt_sample_kv_cache", "gpt_sample_recompute"};
    for (int k = 0; k < 2; k++) {
        int n = k ? 64 : 256;   /* recomputation is slow: fewer tokens */
        lz_model_generate(m, prompt, 6, 16, 0.8, 40, 1, k == 0, out);   /* warm-up */
        uint64_t f0 = lz_stats().flops;
        double t0 = now();
        if (lz_model_generate(m, prompt, 6, n, 0.8, 40, 1, k == 0, out)) {
            fprintf(stderr, "bench_sample: %s\n", lz_error());
            return 1;
        }
        double t = now() - t0, gf = (double)(lz_stats().flops - f0) / t * 1e-9;
        printf("BENCH %s %.1f tokens/s\n", names[k], n / t);
        if (k == 0) {
            double again = sgemm_peak();
            if (again > peak) peak = again;
            printf("BENCH gpt_sample_kv_cache_GFLOPs %.2f GFLOP/s\n", gf);
            printf("BENCH sgemm_peak_GFLOPs %.1f GFLOP/s\n", peak);
            printf("BENCH gpt_sample_kv_cache_of_peak %.1f %%\n", 100.0 * gf / peak);
        }
        fflush(stdout);
    }
    lz_module_free(m);
    printf("BENCH gpt_step_peak_plain %.1f MiB\n", step_peak("model.checkpoint_blocks=false"));
    printf("BENCH gpt_step_peak_checkpointed %.1f MiB\n", step_peak("model.checkpoint_blocks=true"));
    return 0;
}
