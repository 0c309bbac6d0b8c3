/* Optimizer step: AdamW (weight decay, bias correction) on 1M float32 parameters split in four
 * named tensors, step built and evaluated (one fused pass per tensor, writing the parameter
 * and both moments), against a plain C loop doing the same update. Median of several steps
 * after warm-up, all cores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "leibniz.h"
#include "optim/optim.h"
#include "bench.h"

#define NT 4
#define PER (256 * 1024)
#define STEPS 30

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(void) {
    fprintf(stderr, "bench_optim: %s\n", lz_error());
    exit(1);
}

/* The reference: torch's AdamW for one tensor, one pass, float32. */
static void adamw_loop(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                       double wd, double b1, double b2, double eps, int64_t t) {
    float bc1 = (float)(lr / (1 - pow(b1, (double)t))), rbc2 = (float)(1 / sqrt(1 - pow(b2, (double)t)));
    float dec = (float)(1 - lr * wd), fb1 = (float)b1, fb2 = (float)b2, fe = (float)eps;
    #pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        float mi = fb1 * m[i] + (1 - fb1) * g[i];
        float vi = fb2 * v[i] + (1 - fb2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * dec - bc1 * mi / (sqrtf(vi) * rbc2 + fe);
    }
}

int main(void) {
    lz_optim_config c = lz_optim_defaults(LZ_ADAMW);
    lz_optim *o = lz_optim_new(&c);
    if (!o) die();
    const char *names[NT] = {"blocks.0.w", "blocks.1.w", "blocks.2.w", "head.w"};
    lz_array *p[NT], *g[NT], *next[NT];
    int64_t n = PER;
    for (int i = 0; i < NT; i++) {
        p[i] = lz_random_normal(lz_key_new((uint64_t)i), 1, &n, 0, 1, LZ_F32);
        g[i] = lz_random_normal(lz_key_new(100 + (uint64_t)i), 1, &n, 0, 1, LZ_F32);
        if (lz_eval1(p[i]) || lz_eval1(g[i])) die();
    }
    double t[STEPS];
    uint64_t kernels = 0;
    for (int s = 0; s < STEPS + 3; s++) {
        lz_stats_reset();
        double t0 = now();
        if (lz_optim_step(o, NT, names, p, g, next, -1)) die();
        for (int i = 0; i < NT; i++) { lz_release(p[i]); p[i] = next[i]; }
        if (lz_optim_eval(o, NT, p)) die();
        if (s >= 3) t[s - 3] = now() - t0;
        kernels = lz_stats().kernels;
    }
    qsort(t, STEPS, sizeof *t, cmp);
    double ms = 1e3 * t[STEPS / 2];
    printf("BENCH adamw_step_1M_params_ms %.3f ms\n", ms);
    printf("BENCH adamw_step_1M_params_kernels %llu kernels\n", (unsigned long long)kernels);
    /* bytes the one pass must move: read p, g, m, v; write p, m, v */
    printf("BENCH adamw_step_1M_params_bandwidth %.2f GB/s\n",
           28.0 * NT * PER / (ms * 1e-3) / 1e9);

    float *fp = malloc(NT * PER * sizeof *fp), *fg = malloc(NT * PER * sizeof *fg);
    float *fm = calloc(NT * PER, sizeof *fm), *fv = calloc(NT * PER, sizeof *fv);
    for (int64_t i = 0; i < (int64_t)NT * PER; i++) { fp[i] = 0.001f * (float)(i % 1000); fg[i] = 0.01f; }
    for (int s = 0; s < STEPS + 3; s++) {
        double t0 = now();
        for (int i = 0; i < NT; i++)
            adamw_loop(fp + i * PER, fg + i * PER, fm + i * PER, fv + i * PER, PER, c.lr,
                       c.weight_decay, c.betas[0], c.betas[1], c.eps, s + 1);
        if (s >= 3) t[s - 3] = now() - t0;
    }
    qsort(t, STEPS, sizeof *t, cmp);
    printf("BENCH adamw_step_1M_params_c_loop_ms %.3f ms\n", 1e3 * t[STEPS / 2]);
    free(fp);
    free(fg);
    free(fm);
    free(fv);
    for (int i = 0; i < NT; i++) { lz_release(p[i]); lz_release(g[i]); }
    lz_optim_free(o);
    return 0;
}
