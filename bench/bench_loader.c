/* Loader throughput on MNIST-shaped data (batches of 128, shuffled), preloaded and streamed
 * by hyperslab, and whether the prefetch thread hides loading behind a simulated step.
 * Uses data/mnist.h5 when it exists (make data/mnist.h5), else writes a synthetic file of
 * the same shape (60,000 x 28 x 28 uint8) to /tmp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "data/data.h"
#include "bench.h"

/* A simulated step of `s` seconds: busy (the thread computes, as a CPU step does; needs a
 * free core for the loader to overlap) or asleep (as while a GPU computes). */
static int busy;
static void step_for(double s) {
    if (!busy) {
        struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&t, NULL);
        return;
    }
    double end = now() + s;
    volatile double x = 0;
    while (now() < end) for (int i = 0; i < 1000; i++) x += i;
}

static char synthetic[64];

static const char *dataset(void) {
    if (access("data/mnist.h5", R_OK) == 0) {
        printf("# data/mnist.h5\n");
        return "data/mnist.h5";
    }
    snprintf(synthetic, sizeof synthetic, "/tmp/lz_bench_loader_%ld.h5", (long)getpid());
    printf("# synthetic MNIST-shaped data in %s (make data/mnist.h5 for the real one)\n", synthetic);
    lz_data_writer *w = lz_data_writer_create(synthetic, 0);
    int64_t n = 60000, shape[3] = {n, 28, 28};
    int a = w ? lz_data_writer_array(w, "train", "images", LZ_STORE_U8, 3, shape) : -1;
    int b = w ? lz_data_writer_array(w, "train", "labels", LZ_STORE_U8, 1, &n) : -1;
    uint8_t *img = malloc((size_t)n * 784), *lab = malloc((size_t)n);
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < n * 784; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; img[i] = (uint8_t)s; }
    for (int64_t i = 0; i < n; i++) lab[i] = (uint8_t)(i % 10);
    if (a < 0 || b < 0 || lz_data_writer_put(w, a, 0, n, img) || lz_data_writer_put(w, b, 0, n, lab) ||
        lz_data_writer_close(w, 1)) {
        fprintf(stderr, "bench_loader: %s\n", lz_error());
        exit(1);
    }
    free(img);
    free(lab);
    return synthetic;
}

/* Seconds for `nb` batches (whole epochs as needed), with a step of `step` s after each. */
static double run(const char *path, lz_loader_options o, int64_t nb, double step, int64_t *bytes) {
    lz_loader *l = lz_loader_open(path, "train", &o);
    if (!l) { fprintf(stderr, "bench_loader: %s\n", lz_error()); exit(1); }
    lz_batch b;
    /* the first batch (and a preload) is not part of the steady state */
    if (lz_loader_next(l, &b) != 1) { fprintf(stderr, "bench_loader: %s\n", lz_error()); exit(1); }
    lz_batch_release(&b);
    *bytes = 0;
    double t0 = now();
    for (int64_t k = 0; k < nb;) {
        int r = lz_loader_next(l, &b);
        if (r < 0) { fprintf(stderr, "bench_loader: %s\n", lz_error()); exit(1); }
        if (r == 0) continue;
        *bytes += b.size * 784;
        lz_batch_release(&b);
        if (step > 0) step_for(step);
        k++;
    }
    double t = now() - t0;
    lz_loader_close(l);
    return t;
}

int main(void) {
    const char *path = dataset();
    lz_loader_options o = lz_loader_defaults();
    o.batch_size = 128;
    o.seed = 1;
    int64_t bytes, nb = 400;
    double t;

    o.prefetch = 0;
    t = run(path, o, nb, 0, &bytes);
    printf("BENCH loader_mnist_b128_shuffle_preloaded %.0f batches/s\n", (double)nb / t);
    printf("BENCH loader_mnist_b128_shuffle_preloaded_mb %.0f MB/s\n", (double)bytes / t / 1e6);

    o.preload_bytes = 0;   /* every batch one hyperslab read of 128 scattered rows */
    t = run(path, o, nb, 0, &bytes);

    printf("BENCH loader_mnist_b128_shuffle_streamed %.0f batches/s\n", (double)nb / t);
    printf("BENCH loader_mnist_b128_shuffle_streamed_mb %.0f MB/s\n", (double)bytes / t / 1e6);

    /* prefetching: steps twice as long as the loading, without and with the thread */
    o.crop_padding = 2;   /* augmentation makes loading heavier, as it is in training */
    int64_t ns = 200;
    double load = run(path, o, ns, 0, &bytes) / (double)ns, step = 2 * load;
    printf("BENCH loader_streamed_augmented_load %.3f ms/batch\n", 1e3 * load);
    for (busy = 0; busy < 2; busy++) {
        const char *kind = busy ? "busy" : "sleep";
        double t0 = now();
        for (int64_t k = 0; k < ns; k++) step_for(step);
        double alone = (now() - t0) / (double)ns;   /* sleeps overshoot: measure them */
        o.prefetch = 0;
        double sync = run(path, o, ns, step, &bytes) / (double)ns;
        o.prefetch = 2;
        double pre = run(path, o, ns, step, &bytes) / (double)ns;
        printf("BENCH loader_%s_step_alone %.3f ms/step\n", kind, 1e3 * alone);
        printf("BENCH loader_%s_step_without_prefetch %.3f ms/step\n", kind, 1e3 * sync);
        printf("BENCH loader_%s_step_with_prefetch %.3f ms/step\n", kind, 1e3 * pre);
        /* 100%: a step costs only its compute; 0%: loading adds in full */
        double hidden = sync > alone ? 100.0 * (sync - pre) / (sync - alone) : 0;
        printf("BENCH loader_%s_prefetch_hidden %.0f %%\n", kind, hidden < 0 ? 0 : hidden > 100 ? 100 : hidden);
    }
    if (synthetic[0]) remove(synthetic);
    return 0;
}
