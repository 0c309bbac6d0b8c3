/* lib/dist under mpirun (tests/test_dist.sh launches it at 1, 2 and 3 ranks): every
 * collective against a reference computed here from what each rank is known to hold (rank r
 * holds x_r[i] = f(r, i)), and the loader's shards: disjoint slices whose concatenation in rank
 * order is the unsharded batch. Other modes, for the script:
 *   --built          exit 0 when built with MPI
 *   --hang / --die   rank 1 stops answering / dies; rank 0's all-reduce must time out (2 s)
 *   --compare A B T  the parameters of checkpoints A and B agree within T (max |a - b|)
 * Run without mpirun (make test runs every test binary), it is a world of one. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "leibniz.h"
#include "dist/dist.h"
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static int fails, checks, rank;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { fails++; \
    fprintf(stderr, "FAIL rank %d line %d: ", rank, __LINE__); fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, " (%s)\n", lz_error()); } else if (rank == 0) printf("ok   %d\n", __LINE__); } while (0)

static float f(int r, int64_t i) { return (float)(r + 1) * 0.5f + (float)i * 0.25f; }

static lz_array *rank_array(int r, int64_t n) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = f(r, i);
    lz_array *a = lz_from_data(v, 1, &n, LZ_F32);
    free(v);
    return a;
}

static void test_collectives(lz_dist *d) {
    int R = lz_dist_size(d);
    int64_t n = 1000;
    lz_pool_push();
    /* lazy input: x_r = f(r, i), built as an expression, not evaluated yet */
    lz_array *x = lz_add_scalar(lz_mul_scalar(rank_array(rank, n), 1.0), 0.0);
    lz_array *ops[3] = {lz_dist_all_reduce(d, x, LZ_DIST_SUM), lz_dist_all_reduce(d, x, LZ_DIST_MEAN),
                        lz_dist_all_reduce(d, x, LZ_DIST_MAX)};
    for (int k = 0; k < 3; k++) {
        CHECK(ops[k] && lz_size(ops[k]) == n, "all-reduce %d shape", k);
        if (!ops[k]) continue;
        const float *o = lz_data(ops[k]);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double sum = 0, mx = -INFINITY;
            for (int r = 0; r < R; r++) { sum += f(r, i); mx = fmax(mx, f(r, i)); }
            double want = k == 0 ? sum : k == 1 ? sum / R : mx;
            worst = fmax(worst, fabs(o[i] - want) / fmax(1, fabs(want)));
        }
        CHECK(worst < 1e-6, "all-reduce %s: relative error %g", k == 0 ? "sum" : k == 1 ? "mean" : "max", worst);
    }
    /* integers: sums exact */
    int64_t iv[3] = {rank, 100 + rank, -rank}, three = 3;
    lz_array *is = lz_dist_all_reduce(d, lz_from_data(iv, 1, &three, LZ_I64), LZ_DIST_SUM);
    int64_t got[3] = {0};
    CHECK(is && !lz_to_int(is, got, 3) && got[0] == (int64_t)R * (R - 1) / 2 &&
          got[1] == 100 * R + (int64_t)R * (R - 1) / 2 && got[2] == -(int64_t)R * (R - 1) / 2,
          "i64 all-reduce sum: %lld %lld %lld", (long long)got[0], (long long)got[1], (long long)got[2]);
    /* bucketed: arrays of several sizes and two dtypes, buckets smaller than some arrays */
    int64_t sizes[5] = {7, 300, 1, 2048, 33};
    lz_array *xs[6], *outs[6];
    for (int k = 0; k < 5; k++) xs[k] = lz_mul_scalar(rank_array(rank, sizes[k]), (double)(k + 1));
    int32_t one32 = rank + 1;
    xs[5] = lz_from_data(&one32, 0, NULL, LZ_I32);
    for (int bucket = 0; bucket < 3; bucket++) {
        size_t bb = bucket == 0 ? 0 : bucket == 1 ? 1024 : (size_t)1 << 20;
        int rc = lz_dist_all_reduce_many(d, 6, xs, LZ_DIST_SUM, bb, outs);
        CHECK(rc == 0, "all_reduce_many (buckets of %zu bytes)", bb);
        if (rc) continue;
        double worst = 0;
        for (int k = 0; k < 5; k++) {
            const float *o = lz_data(outs[k]);
            for (int64_t i = 0; i < sizes[k]; i++) {
                double want = 0;
                for (int r = 0; r < R; r++) want += (double)f(r, i) * (k + 1);
                worst = fmax(worst, fabs(o[i] - want) / fmax(1, fabs(want)));
            }
        }
        CHECK(worst < 1e-6 && lz_ndim(outs[5]) == 0 && lz_item(outs[5]) == R * (R + 1) / 2,
              "all_reduce_many (buckets of %zu bytes): error %g", bb, worst);
    }
    /* broadcast from the last rank, a 2-d i32 array and a strided (transposed) f32 view */
    int32_t m[6];
    for (int i = 0; i < 6; i++) m[i] = rank * 10 + i;
    lz_array *b = lz_dist_broadcast(d, lz_from_data(m, 2, (int64_t[]){2, 3}, LZ_I32), R - 1);
    int64_t bv[6] = {0};
    CHECK(b && lz_ndim(b) == 2 && lz_dim(b, 1) == 3 && !lz_to_int(b, bv, 6) &&
          bv[0] == (R - 1) * 10 && bv[5] == (R - 1) * 10 + 5, "broadcast i32 [2,3]");
    lz_array *t = lz_transpose(lz_reshape(rank_array(rank, 6), 2, (int64_t[]){2, 3}));
    lz_array *bt = lz_dist_broadcast(d, t, 0);
    float tv[6] = {0};
    CHECK(bt && !lz_to_float(bt, tv, 6) && tv[0] == f(0, 0) && tv[1] == f(0, 3) && tv[5] == f(0, 5),
          "broadcast of a transposed view");
    /* all-gather: [2] per rank -> [2R] in rank order */
    lz_array *g = lz_dist_all_gather(d, rank_array(rank, 2));
    float gv[64] = {0};
    int ok = g && lz_dim(g, 0) == 2 * R && !lz_to_float(g, gv, 2 * R);
    for (int r = 0; ok && r < R; r++) ok = gv[2 * r] == f(r, 0) && gv[2 * r + 1] == f(r, 1);
    CHECK(ok, "all-gather");
    /* reduce-scatter: [3R, 2] -> rank r gets rows 3r..3r+2 of the sum */
    lz_array *rs = lz_dist_reduce_scatter(d, lz_reshape(rank_array(rank, 6 * R), 2, (int64_t[]){3 * R, 2}),
                                          LZ_DIST_SUM);
    float rv[6] = {0};
    ok = rs && lz_dim(rs, 0) == 3 && lz_dim(rs, 1) == 2 && !lz_to_float(rs, rv, 6);
    for (int i = 0; ok && i < 6; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) want += f(r, 6 * rank + i);
        ok = fabs(rv[i] - want) < 1e-5 * fmax(1, want);
    }
    CHECK(ok, "reduce-scatter");
    CHECK(!lz_dist_reduce_scatter(d, rank_array(rank, 3 * R + 1), LZ_DIST_SUM) || R == 1,
          "reduce-scatter of an axis that does not divide fails");
    double dv[2] = {rank, 1};
    CHECK(!lz_dist_all_reduce_doubles(d, dv, 2, LZ_DIST_SUM) && dv[0] == R * (R - 1) / 2.0 && dv[1] == R,
          "all-reduce of host doubles");
    CHECK(!lz_dist_barrier(d), "barrier");
    lz_pool_pop();
}

/* The shards of a loader: 37 examples, batches of 8 (the last of 5), shuffled. */
static void test_shards(lz_dist *d) {
    int R = lz_dist_size(d);
    char path[64];
    snprintf(path, sizeof path, "/tmp/lz_test_dist_%d.h5", (int)getppid());
    int64_t N = 37, shape[4] = {N, 2, 2, 1};
    if (rank == 0) {
        lz_data_writer *w = lz_data_writer_create(path, 0);
        int a = lz_data_writer_array(w, "train", "images", LZ_STORE_U8, 4, shape);
        int b = lz_data_writer_array(w, "train", "labels", LZ_STORE_I32, 1, &N);
        uint8_t img[37 * 4];
        int32_t lab[37];
        for (int i = 0; i < N * 4; i++) img[i] = (uint8_t)i;
        for (int i = 0; i < N; i++) lab[i] = i;
        CHECK(w && !lz_data_writer_put(w, a, 0, N, img) && !lz_data_writer_put(w, b, 0, N, lab) &&
              !lz_data_writer_close(w, 1), "writing the dataset");
    }
    lz_dist_barrier(d);
    lz_loader_options o = lz_loader_defaults();
    o.batch_size = 8;
    o.seed = 11;
    o.prefetch = 0;
    lz_loader *whole = lz_loader_open(path, "train", &o);
    o.shards = R;
    o.shard = rank;
    lz_loader *mine = lz_loader_open(path, "train", &o);
    CHECK(whole && mine && lz_loader_batches(mine) == lz_loader_batches(whole), "sharded loader opens");
    if (!whole || !mine) return;
    int seen[37] = {0}, ok = 1;
    for (int epoch = 0; epoch < 2; epoch++) {
        lz_batch wb, mb;
        while (lz_loader_next(whole, &wb) == 1) {
            ok &= lz_loader_next(mine, &mb) == 1 && mb.total == wb.size;
            /* every rank's ids, padded to 8 with -1, gathered in rank order */
            int64_t pad[8];
            for (int i = 0; i < 8; i++) pad[i] = i < mb.size ? ((const int64_t *)lz_data(mb.ids))[i] : -1;
            lz_pool_push();
            lz_array *all = lz_dist_all_gather(d, lz_from_data(pad, 1, (int64_t[]){8}, LZ_I64));
            int64_t ids[8 * 64];
            ok &= all && !lz_to_int(all, ids, 8 * R);
            const int64_t *w = lz_data(wb.ids);
            int k = 0;   /* the concatenation of the slices is the whole batch */
            for (int r = 0; r < R; r++)
                for (int i = 0; i < 8 && ids[8 * r + i] >= 0; i++, k++) {
                    ok &= k < wb.size && ids[8 * r + i] == w[k];
                    if (epoch == 0 && ids[8 * r + i] < N) seen[ids[8 * r + i]]++;
                }
            ok &= k == wb.size;
            /* and this rank's labels match its ids */
            const int32_t *y = lz_data(mb.y);
            for (int i = 0; i < mb.size; i++) ok &= y[i] == ((const int64_t *)lz_data(mb.ids))[i];
            lz_pool_pop();
            lz_batch_release(&wb);
            lz_batch_release(&mb);
        }
        ok &= lz_loader_next(mine, &mb) == 0;   /* the epochs end together */
    }
    int once = 1;
    for (int i = 0; i < N; i++) once &= seen[i] == 1;
    CHECK(ok, "shards: slices of the unsharded batches, in rank order");
    CHECK(once, "shards: disjoint, every example exactly once per epoch");
    lz_loader_close(whole);
    lz_loader_close(mine);
    lz_dist_barrier(d);
    if (rank == 0) unlink(path);
}

static int compare(const char *a, const char *b, double tol) {
    lz_ckpt *ca = lz_ckpt_open(a), *cb = lz_ckpt_open(b);
    if (!ca || !cb) { fprintf(stderr, "%s\n", lz_error()); return 1; }
    int64_t n = 0;
    const char *const *names = lz_ckpt_names(ca, "params", &n);
    double worst = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        lz_array *x = lz_ckpt_get(ca, "params", names[i]), *y = lz_ckpt_get(cb, "params", names[i]);
        if (!x || !y || lz_size(x) != lz_size(y)) { fprintf(stderr, "%s: missing in %s\n", names[i], b); return 1; }
        int64_t m = lz_size(x);
        float *u = malloc((size_t)m * 4), *v = malloc((size_t)m * 4);
        lz_to_float(x, u, m);
        lz_to_float(y, v, m);
        for (int64_t j = 0; j < m; j++) worst = fmax(worst, fabs((double)u[j] - v[j]));
        count += m;
        free(u); free(v);
        lz_release(x); lz_release(y);
    }
    lz_ckpt_close(ca);
    lz_ckpt_close(cb);
    printf("%lld parameters, max |diff| %.2g\n", (long long)count, worst);
    return !(n > 0 && worst <= tol);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--built")) return lz_dist_built() ? 0 : 1;
    if (argc > 4 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3], atof(argv[4]));
    if (!lz_dist_built()) { puts("skip test_dist: built without MPI"); return 0; }
#ifdef __SANITIZE_ADDRESS__
    /* Open MPI keeps what MPI_Init and its plugins allocate (some from plugins it has unloaded
     * by exit, so no suppression can name them): leak checking stops here for this binary;
     * ASan's memory-error checks stay on */
    __lsan_disable();
#endif
    int hang = argc > 1 && !strcmp(argv[1], "--hang"), die = argc > 1 && !strcmp(argv[1], "--die");
    lz_dist *d = lz_dist_init(&(lz_dist_options){.timeout_s = hang || die ? 2 : 60});
    if (!d) { fprintf(stderr, "test_dist: %s\n", lz_error()); return 1; }
    rank = lz_dist_rank(d);
    if (hang || die) {
        if (rank == 1) {
            if (die) _exit(9);
            sleep(60);   /* never joins: rank 0 times out and aborts the job (which kills this) */
        }
        lz_array *x = lz_dist_all_reduce(d, rank_array(rank, 4), LZ_DIST_SUM);
        if (!x) {
            fprintf(stderr, "test_dist: rank %d: %s\n", rank, lz_error());
            lz_dist_abort(d, 3);
        }
        lz_dist_finalize(d);
        return 0;
    }
    test_collectives(d);
    test_shards(d);
    double bad[1] = {fails};
    lz_dist_all_reduce_doubles(d, bad, 1, LZ_DIST_SUM);
    if (rank == 0 && bad[0]) printf("test_dist: %g failed\n", bad[0]);
    if (rank == 0 && !bad[0]) printf("test_dist: all passed (%d checks, %d ranks)\n", checks, lz_dist_size(d));
    lz_dist_finalize(d);
    return bad[0] > 0;
}
