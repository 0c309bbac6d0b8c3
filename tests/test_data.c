/* Data: converters round trip (IDX, PNG folders, UTF-8 text), the loader (every example once
 * per epoch, order from the seed only, last batch, streaming = preloaded, normalisation,
 * augmentation, text windows, prefetch shutdown), and bad files with one-line messages. */
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "data/data.h"
#include "io/image.h"

static char dir[] = "/tmp/lz_data_XXXXXX";

static const char *tpath(const char *name) {
    static char buf[64][512];   /* a ring: paths stay valid for 63 more calls */
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* The error must be one line that starts with the file and contains `needle`. */
#define assert_msg(file, needle) do {                                                   \
        const char *e_ = lz_error();                                                    \
        if (!strstr(e_, needle) || strncmp(e_, file, strlen(file)) || strchr(e_, '\n')) \
            fail_msg("error \"%s\" should start with \"%s\" and contain \"%s\"", e_, file, needle); \
    } while (0)

/* ---- synthetic data: each pixel says which example it belongs to ---- */
static uint8_t pixel(int64_t i, int64_t j) { return (uint8_t)((i * 131 + j * 7 + (j == 0 ? i : 0)) & 255); }
static uint8_t label_of(int64_t i) { return (uint8_t)((i * 7 + 3) % 10); }

static void write_idx(const char *path, int ndim, const int *dims, int64_t (*val)(int64_t)) {
    FILE *f = fopen(path, "wb");
    unsigned char h[4] = {0, 0, 8, (unsigned char)ndim};
    fwrite(h, 1, 4, f);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        unsigned char b[4] = {(unsigned char)(dims[d] >> 24), (unsigned char)(dims[d] >> 16),
                              (unsigned char)(dims[d] >> 8), (unsigned char)dims[d]};
        fwrite(b, 1, 4, f);
        n *= dims[d];
    }
    for (int64_t i = 0; i < n; i++) fputc((int)val(i), f);
    fclose(f);
}

enum { H = 7, W = 5 };
static int64_t img_val(int64_t k) { return pixel(k / (H * W), k % (H * W)); }
static int64_t lab_val(int64_t k) { return label_of(k); }

/* An MNIST-like dataset of n train and m test examples, 7x5 pixels. */
static const char *make_idx_dataset(const char *name, int n, int m) {
    int di[3] = {n, H, W}, dl[1] = {n}, ti[3] = {m, H, W}, tl[1] = {m};
    write_idx(tpath("tr-img"), 3, di, img_val);
    write_idx(tpath("tr-lab"), 1, dl, lab_val);
    write_idx(tpath("te-img"), 3, ti, img_val);
    write_idx(tpath("te-lab"), 1, tl, lab_val);
    const char *splits[2] = {"train", "test"};
    const char *im[2] = {tpath("tr-img"), tpath("te-img")};
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tpath("tr-lab"));
    snprintf(b, sizeof b, "%s", tpath("te-lab"));
    const char *lb[2] = {a, b};
    const char *out = tpath(name);
    lz_convert_options o = {.name = "synthetic"};
    if (lz_convert_idx(out, 2, splits, (const char *const *)im, lb, &o)) fail_msg("%s", lz_error());
    return out;
}

static void test_idx_round_trip(void **state) {
    (void)state;
    int n = 1000, m = 37;
    const char *path = make_idx_dataset("rt.h5", n, m);
    lz_dataset *ds = lz_dataset_open(path, "train");
    assert_non_null(ds);
    const lz_data_info *in = lz_dataset_info(ds);
    assert_int_equal(in->kind, LZ_DATA_IMAGES);
    assert_int_equal(in->length, n);
    assert_int_equal(in->height, H);
    assert_int_equal(in->width, W);
    assert_int_equal(in->channels, 1);
    assert_true(in->has_labels);
    assert_int_equal(in->num_classes, 10);
    assert_string_equal(in->classes[3], "3");
    assert_string_equal(in->name, "synthetic");
    /* mean/std of the train pixels, in double, here */
    double s = 0, sq = 0;
    for (int64_t k = 0; k < (int64_t)n * H * W; k++) { double v = img_val(k) / 255.0; s += v; sq += v * v; }
    double mean = s / ((double)n * H * W), sd = sqrt(sq / ((double)n * H * W) - mean * mean);
    assert_int_equal(in->nstats, 1);
    assert_true(fabs(in->mean[0] - mean) < 1e-9 && fabs(in->std[0] - sd) < 1e-9);
    /* every element, read in a scrambled order with repeats */
    int64_t *idx = malloc((size_t)n * 8);
    for (int i = 0; i < n; i++) idx[i] = (i * 389 + 17) % n;
    idx[5] = idx[6];
    uint8_t *img = malloc((size_t)n * H * W);
    int32_t *lab = malloc((size_t)n * 4);
    assert_int_equal(lz_dataset_read_images(ds, n, idx, img, lab), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(lab[i], label_of(idx[i]));
        for (int j = 0; j < H * W; j++) assert_int_equal(img[i * H * W + j], pixel(idx[i], j));
    }
    /* the same from memory */
    assert_int_equal(lz_dataset_preload(ds), 0);
    memset(img, 0, (size_t)n * H * W);
    assert_int_equal(lz_dataset_read_images(ds, n, idx, img, lab), 0);
    for (int i = 0; i < n; i++) assert_int_equal(img[i * H * W + 1], pixel(idx[i], 1));
    idx[0] = n;
    assert_int_equal(lz_dataset_read_images(ds, 1, idx, img, lab), -1);
    assert_msg(path, "example 1000 is outside split 'train' [0, 1000)");
    lz_dataset_close(ds);
    ds = lz_dataset_open(path, "test");
    assert_int_equal(lz_dataset_info(ds)->length, m);
    lz_dataset_close(ds);
    char **names;
    assert_int_equal(lz_dataset_splits(path, &names), 2);
    assert_string_equal(names[0], "test");
    assert_string_equal(names[1], "train");
    free(names); free(idx); free(img); free(lab);
}

static void test_idx_errors(void **state) {
    (void)state;
    int d[3] = {10, H, W}, dl[1] = {9};
    write_idx(tpath("i10"), 3, d, img_val);
    write_idx(tpath("l9"), 1, dl, lab_val);
    const char *sp[1] = {"train"}, *im[1] = {tpath("i10")}, *lb[1] = {tpath("l9")};
    assert_int_equal(lz_convert_idx(tpath("e.h5"), 1, sp, im, lb, NULL), -1);
    assert_true(strstr(lz_error(), "has 10 images but") && strstr(lz_error(), "has 9 labels"));
    assert_int_equal(access(tpath("e.h5"), F_OK), -1);   /* nothing left behind */
    /* truncated: cut the last byte */
    assert_int_equal(truncate(tpath("i10"), 4 + 12 + 10 * H * W - 1), 0);
    im[0] = tpath("i10");
    assert_int_equal(lz_convert_idx(tpath("e.h5"), 1, sp, im, NULL, NULL), -1);
    assert_msg(tpath("i10"), "truncated IDX file (365 bytes; its header promises 366)");
    FILE *f = fopen(tpath("gz"), "wb");
    fputs("\x1f\x8b\x08rest", f);
    fclose(f);
    im[0] = tpath("gz");
    assert_int_equal(lz_convert_idx(tpath("e.h5"), 1, sp, im, NULL, NULL), -1);
    assert_msg(tpath("gz"), "gzip-compressed");
    im[0] = tpath("l9");   /* labels given as images */
    assert_int_equal(lz_convert_idx(tpath("e.h5"), 1, sp, im, NULL, NULL), -1);
    assert_msg(tpath("l9"), "IDX file with 1 dimension, expected 3 (images)");
}

/* ---- text ---- */
static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_text_round_trip(void **state) {
    (void)state;
    const char *text = "Zoë says: 日本語 ok!\nthe end 😀 é\n";
    write_file(tpath("t.txt"), text, strlen(text));
    lz_convert_options o = {.val_fraction = 0.25, .name = "t"};
    assert_int_equal(lz_convert_text(tpath("t.h5"), tpath("t.txt"), &o), 0);
    char *back = calloc(1, strlen(text) + 1);
    int64_t total = 0;
    int32_t prev_cp = -1;
    for (int s = 0; s < 2; s++) {
        lz_dataset *ds = lz_dataset_open(tpath("t.h5"), s ? "val" : "train");
        assert_non_null(ds);
        const lz_data_info *in = lz_dataset_info(ds);
        assert_int_equal(in->kind, LZ_DATA_TEXT);
        if (!s) {   /* vocabulary sorted by code point, all distinct */
            for (int v = 0; v < in->vocab_size; v++) {
                const unsigned char *c = (const unsigned char *)in->vocab[v];
                int32_t cp = c[0] < 0x80 ? c[0] : c[0] < 0xE0 ? (c[0] & 31) << 6 | (c[1] & 63)
                           : c[0] < 0xF0 ? (c[0] & 15) << 12 | (c[1] & 63) << 6 | (c[2] & 63)
                           : (c[0] & 7) << 18 | (c[1] & 63) << 12 | (c[2] & 63) << 6 | (c[3] & 63);
                assert_true(cp > prev_cp);
                prev_cp = cp;
            }
        }
        int32_t *t = malloc((size_t)in->length * 4);
        assert_int_equal(lz_dataset_read_tokens(ds, 0, in->length, t), 0);
        for (int64_t i = 0; i < in->length; i++) strcat(back, in->vocab[t[i]]);
        total += in->length;
        if (!s) assert_int_equal(in->length, (int64_t)(30 * 0.75));
        free(t);
        lz_dataset_close(ds);
    }
    assert_int_equal(total, 30);   /* characters, not bytes */
    assert_string_equal(back, text);
    free(back);
}

static void test_text_errors(void **state) {
    (void)state;
    struct { const char *bytes; const char *msg; } bad[] = {
        {"ab\xC3\x28", "invalid UTF-8 at byte 2"},       /* bad continuation */
        {"\xC0\x80", "invalid UTF-8 at byte 0"},          /* overlong NUL */
        {"x\xED\xA0\x80", "invalid UTF-8 at byte 1"},     /* surrogate */
        {"abc\xE6\x97", "invalid UTF-8 at byte 3"},       /* cut short at the end */
        {"", "empty text file"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        write_file(tpath("bad.txt"), bad[k].bytes, strlen(bad[k].bytes));
        assert_int_equal(lz_convert_text(tpath("bad.h5"), tpath("bad.txt"), NULL), -1);
        assert_msg(tpath("bad.txt"), bad[k].msg);
        assert_int_equal(access(tpath("bad.h5"), F_OK), -1);
    }
}

/* ---- PNG folders ---- */
static int png_reader(const char *path, int *w, int *h, int *c, uint8_t **px) {
    lz_image img;
    if (lz_png_read(path, &img)) return -1;
    *w = img.width; *h = img.height; *c = img.channels; *px = img.pixels;
    return 0;
}

static void put_png(const char *rel, int w, int h, int c, int seed) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) { *s = 0; mkdir(p, 0755); *s = '/'; }
    lz_image img;
    lz_image_new(&img, w, h, c);
    for (int i = 0; i < w * h * c; i++) img.pixels[i] = (uint8_t)(seed * 29 + i * 3);
    assert_int_equal(lz_png_write(p, &img), 0);
    lz_image_free(&img);
}

static void test_png_folder_round_trip(void **state) {
    (void)state;
    /* train/{cat,dog}, test/{cat,eel}: classes are the sorted union cat, dog, eel */
    put_png("pf/train/dog/b.png", 6, 4, 3, 1);
    put_png("pf/train/dog/a.png", 6, 4, 3, 2);
    put_png("pf/train/cat/z.png", 6, 4, 3, 3);
    put_png("pf/test/eel/x.png", 6, 4, 1, 4);   /* gray into an RGB dataset: replicated */
    put_png("pf/test/cat/y.png", 6, 4, 3, 5);
    write_file(tpath("pf/train/dog/notes.txt"), "ignored", 7);
    lz_convert_options o = {.read_image = png_reader};
    if (lz_convert_images(tpath("pf.h5"), tpath("pf"), &o)) fail_msg("%s", lz_error());
    lz_dataset *ds = lz_dataset_open(tpath("pf.h5"), "train");
    assert_non_null(ds);
    const lz_data_info *in = lz_dataset_info(ds);
    assert_int_equal(in->num_classes, 3);
    assert_string_equal(in->classes[0], "cat");
    assert_string_equal(in->classes[2], "eel");
    assert_int_equal(in->length, 3);
    assert_int_equal(in->channels, 3);
    uint8_t img[3 * 72];
    int32_t lab[3];
    int64_t idx[3] = {0, 1, 2};
    assert_int_equal(lz_dataset_read_images(ds, 3, idx, img, lab), 0);
    int seeds[3] = {3, 2, 1}, labels[3] = {0, 1, 1};   /* cat/z, dog/a, dog/b */
    for (int e = 0; e < 3; e++) {
        assert_int_equal(lab[e], labels[e]);
        for (int i = 0; i < 72; i++) assert_int_equal(img[e * 72 + i], (uint8_t)(seeds[e] * 29 + i * 3));
    }
    lz_dataset_close(ds);
    ds = lz_dataset_open(tpath("pf.h5"), "test");
    assert_int_equal(lz_dataset_read_images(ds, 2, idx, img, lab), 0);
    assert_int_equal(lab[0], 0);
    assert_int_equal(lab[1], 2);
    for (int i = 0; i < 24; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(img[72 + 3 * i + c], (uint8_t)(4 * 29 + i * 3));
    lz_dataset_close(ds);
    /* one size for all; gray first then RGB needs a choice */
    put_png("mix/a/1.png", 6, 4, 1, 1);
    put_png("mix/b/2.png", 6, 4, 3, 1);
    assert_int_equal(lz_convert_images(tpath("mix.h5"), tpath("mix"), &o), -1);
    assert_msg(tpath("mix/b/2.png"), "RGB, but");
    o.channels = 1;
    o.split = "val";
    assert_int_equal(lz_convert_images(tpath("mix.h5"), tpath("mix"), &o), 0);
    ds = lz_dataset_open(tpath("mix.h5"), "val");
    assert_non_null(ds);
    assert_int_equal(lz_dataset_info(ds)->channels, 1);
    lz_dataset_close(ds);
    put_png("size/a/1.png", 6, 4, 1, 1);
    put_png("size/a/2.png", 5, 4, 1, 1);
    assert_int_equal(lz_convert_images(tpath("size.h5"), tpath("size"), &o), -1);
    assert_msg(tpath("size/a/2.png"), "5x4 pixels, but");
    put_png("flat/1.png", 6, 4, 1, 1);
    assert_int_equal(lz_convert_images(tpath("flat.h5"), tpath("flat"), &o), -1);
    assert_msg(tpath("flat"), "one folder per class");
}

/* ---- the loader ---- */

/* Runs one epoch; checks every batch's content against the source; returns the ids. */
static int64_t *epoch_ids(lz_loader *l, int64_t n, int64_t bs, int drop_last, int64_t *count) {
    int64_t *ids = malloc((size_t)n * 8), k = 0, nb = 0;
    lz_batch b;
    int r;
    while ((r = lz_loader_next(l, &b)) == 1) {
        int64_t want = drop_last || nb < n / bs ? bs : n % bs;
        assert_int_equal(b.size, want);
        assert_int_equal(b.index, nb);
        assert_int_equal(lz_dim(b.x, 0), want);
        assert_int_equal(lz_dtype_of(b.x), LZ_F32);
        assert_int_equal(lz_dim(b.x, 1), 1);
        const float *x = lz_data(b.x);
        const int32_t *y = lz_data(b.y);
        const int64_t *id = lz_data(b.ids);
        for (int64_t i = 0; i < b.size; i++) {
            ids[k++] = id[i];
            assert_int_equal(y[i], label_of(id[i]));
            for (int j = 0; j < H * W; j++)
                if (x[i * H * W + j] != (float)(pixel(id[i], j) * (1.0f / 255)))
                    fail_msg("example %lld pixel %d: %g", (long long)id[i], j, x[i * H * W + j]);
        }
        lz_batch_release(&b);
        nb++;
    }
    assert_int_equal(r, 0);
    *count = k;
    return ids;
}

static void assert_each_once(const int64_t *ids, int64_t k, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    for (int64_t i = 0; i < k; i++) {
        assert_true(ids[i] >= 0 && ids[i] < n);
        assert_false(seen[ids[i]]);
        seen[ids[i]] = 1;
    }
    free(seen);
}

static void test_loader_epochs(void **state) {
    (void)state;
    int n = 1000;
    const char *path = make_idx_dataset("ld.h5", n, 10);
    for (int drop = 0; drop < 2; drop++) {
        lz_loader_options o = lz_loader_defaults();
        o.seed = 7;
        o.drop_last = drop;
        lz_loader *l = lz_loader_open(path, "train", &o);
        assert_non_null(l);
        assert_int_equal(lz_loader_batches(l), drop ? 15 : 16);
        int64_t k0, k1;
        int64_t *e0 = epoch_ids(l, n, 64, drop, &k0);
        int64_t *e1 = epoch_ids(l, n, 64, drop, &k1);
        assert_int_equal(k0, drop ? 960 : 1000);
        assert_each_once(e0, k0, n);
        assert_each_once(e1, k1, n);
        assert_true(memcmp(e0, e1, (size_t)k0 * 8) != 0);   /* a new order every epoch */
        if (!drop) {   /* the order is lz_data_permutation's */
            int64_t *p = malloc((size_t)n * 8);
            lz_data_permutation(7, 1, n, p);
            assert_memory_equal(p, e1, (size_t)n * 8);
            free(p);
        }
        free(e0); free(e1);
        lz_loader_close(l);
    }
    /* no shuffle: file order */
    lz_loader_options o = lz_loader_defaults();
    o.shuffle = 0;
    o.batch_size = 300;
    lz_loader *l = lz_loader_open(path, "train", &o);
    int64_t k, *e = epoch_ids(l, n, 300, 0, &k);
    for (int i = 0; i < n; i++) assert_int_equal(e[i], i);
    free(e);
    lz_loader_close(l);
}

/* The id sequence of two epochs under the given settings. */
static int64_t *order_of(const char *path, uint64_t seed, int prefetch, int threads, int64_t preload) {
    lz_set_threads(threads);
    lz_loader_options o = lz_loader_defaults();
    o.seed = seed;
    o.batch_size = 50;
    o.prefetch = prefetch;
    o.preload_bytes = preload;
    lz_loader *l = lz_loader_open(path, "train", &o);
    assert_non_null(l);
    int64_t *ids = malloc(2000 * 8), k = 0;
    lz_batch b;
    for (int e = 0; e < 2; e++) {
        while (lz_loader_next(l, &b) == 1) {
            memcpy(ids + k, lz_data(b.ids), (size_t)b.size * 8);
            k += b.size;
            lz_batch_release(&b);
        }
    }
    assert_int_equal(k, 2000);
    lz_loader_close(l);
    return ids;
}

static void test_loader_order_from_seed_only(void **state) {
    (void)state;
    const char *path = make_idx_dataset("seed.h5", 1000, 10);
    int threads = lz_threads();
    int64_t *a = order_of(path, 3, 0, 1, 1 << 30);
    int64_t *b = order_of(path, 3, 3, 2, 1 << 30);
    int64_t *c = order_of(path, 3, 1, 2, 0);         /* streamed by hyperslab */
    int64_t *d = order_of(path, 4, 2, 2, 1 << 30);
    assert_memory_equal(a, b, 2000 * 8);
    assert_memory_equal(a, c, 2000 * 8);
    assert_true(memcmp(a, d, 2000 * 8) != 0);
    lz_set_threads(threads);
    free(a); free(b); free(c); free(d);
}

static void test_loader_streaming_reads_batches(void **state) {
    (void)state;
    int n = 1000;
    const char *path = make_idx_dataset("st.h5", n, 10);
    lz_loader_options o = lz_loader_defaults();
    o.preload_bytes = 0;   /* every batch a hyperslab read */
    o.batch_size = 128;
    lz_loader *l = lz_loader_open(path, "train", &o);
    int64_t k, *e = epoch_ids(l, n, 128, 0, &k);
    assert_each_once(e, k, n);
    free(e);
    /* seek: resume at epoch 3, batch 5 gives what a fresh run gives there */
    assert_int_equal(lz_loader_seek(l, 3, 5), 0);
    lz_batch b1, b2;
    assert_int_equal(lz_loader_next(l, &b1), 1);
    assert_int_equal(b1.epoch, 3);
    assert_int_equal(b1.index, 5);
    int64_t *p = malloc((size_t)n * 8);
    lz_data_permutation(o.seed, 3, n, p);
    assert_memory_equal(lz_data(b1.ids), p + 5 * 128, 128 * 8);
    assert_int_equal(lz_loader_seek(l, 0, 9), -1);
    assert_msg(tpath("st.h5"), "cannot seek to epoch 0 batch 9 (an epoch has 8 batches)");
    assert_int_equal(lz_loader_next(l, &b2), 1);
    assert_int_equal(b2.index, 6);
    lz_batch_release(&b1);
    lz_batch_release(&b2);
    free(p);
    lz_loader_close(l);
}

/* Three channels, 4x6: pixel (i, y, x, c). Written through the writer. */
static uint8_t px3(int64_t i, int y, int x, int c) { return (uint8_t)(i * 17 + y * 40 + x * 9 + c * 80); }

static const char *make_rgb(int n) {
    const char *path = tpath("rgb.h5");
    lz_data_writer *w = lz_data_writer_create(path, 1);
    int64_t shape[4] = {n, 4, 6, 3}, ls[1] = {n};
    int a = lz_data_writer_array(w, "train", "images", LZ_STORE_U8, 4, shape);
    int b = lz_data_writer_array(w, "train", "labels", LZ_STORE_I32, 1, ls);
    uint8_t *img = malloc((size_t)n * 72);
    int32_t *lab = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        lab[i] = i % 2;
        for (int y = 0; y < 4; y++) for (int x = 0; x < 6; x++) for (int c = 0; c < 3; c++)
            img[i * 72 + (y * 6 + x) * 3 + c] = px3(i, y, x, c);
    }
    assert_int_equal(lz_data_writer_put(w, a, 0, n, img), 0);
    assert_int_equal(lz_data_writer_put(w, b, 0, n, lab), 0);
    assert_int_equal(lz_data_writer_close(w, 1), 0);
    free(img); free(lab);
    return path;
}

static void test_loader_layouts_and_normalisation(void **state) {
    (void)state;
    int n = 20;
    const char *path = make_rgb(n);
    double mean[3] = {0.5, 0.25, 0.125}, sd[3] = {0.5, 2, 0.25};
    for (int mode = 0; mode < 3; mode++) {   /* NCHW normalised, NHWC, raw */
        lz_loader_options o = lz_loader_defaults();
        o.shuffle = 0;
        o.batch_size = n;
        o.nnorm = mode == 0 ? 3 : 0;
        o.mean = mean;
        o.std = sd;
        o.channels_last = mode == 1;
        o.raw = mode == 2;
        lz_loader *l = lz_loader_open(path, "train", &o);
        assert_non_null(l);
        lz_batch b;
        assert_int_equal(lz_loader_next(l, &b), 1);
        const int64_t *s = lz_shape(b.x);
        if (mode == 0) { assert_int_equal(s[1], 3); assert_int_equal(s[2], 4); assert_int_equal(s[3], 6); }
        else { assert_int_equal(s[1], 4); assert_int_equal(s[2], 6); assert_int_equal(s[3], 3); }
        assert_int_equal(lz_dtype_of(b.x), mode == 2 ? LZ_U8 : LZ_F32);
        double *ref = malloc((size_t)n * 72 * sizeof(double));
        for (int i = 0; i < n; i++) for (int y = 0; y < 4; y++) for (int x = 0; x < 6; x++)
            for (int c = 0; c < 3; c++) {
                double v = px3(i, y, x, c);
                if (mode != 2) v /= 255;
                if (mode == 0) v = (v - mean[c]) / sd[c];
                int64_t at = mode == 0 ? i * 72 + c * 24 + y * 6 + x : i * 72 + (y * 6 + x) * 3 + c;
                ref[at] = v;
            }
        t_assert_close(b.x, ref, n * 72, 1e-6, 1e-6);
        free(ref);
        lz_batch_release(&b);
        lz_loader_close(l);
    }
    lz_loader_options o = lz_loader_defaults();
    o.nnorm = 2;
    o.mean = mean;
    o.std = sd;
    assert_null(lz_loader_open(path, "train", &o));
    assert_msg(path, "2 normalisation values for images with 3 channels");
}

static void test_loader_augmentation(void **state) {
    (void)state;
    int n = 64, P = 2;
    const char *path = make_rgb(n);
    lz_loader_options o = lz_loader_defaults();
    o.batch_size = n;
    o.crop_padding = P;
    o.hflip = 1;
    o.channels_last = 1;
    o.seed = 11;
    lz_loader *l = lz_loader_open(path, "train", &o);
    lz_batch b;
    assert_int_equal(lz_loader_next(l, &b), 1);
    const float *x = lz_data(b.x);
    const int64_t *id = lz_data(b.ids);
    int flips = 0, shifted = 0;
    for (int i = 0; i < n; i++) {
        /* exactly one (dy, dx, flip) must explain the output, with black outside */
        int found = 0;
        for (int dy = -P; dy <= P; dy++) for (int dx = -P; dx <= P; dx++) for (int f = 0; f < 2; f++) {
            int ok = 1;
            for (int y = 0; y < 4 && ok; y++) for (int xx = 0; xx < 6 && ok; xx++) for (int c = 0; c < 3 && ok; c++) {
                int sy = y + dy, sx = (f ? 5 - xx : xx) + dx;
                double v = sy >= 0 && sy < 4 && sx >= 0 && sx < 6 ? px3(id[i], sy, sx, c) / 255.0 : 0;
                ok = fabs(x[i * 72 + (y * 6 + xx) * 3 + c] - v) < 1e-6;
            }
            if (ok) { found++; flips += f; shifted += dy || dx; }
        }
        assert_int_equal(found, 1);
    }
    assert_true(flips > 16 && flips < 48);   /* about half */
    assert_true(shifted > 40);               /* 24 of 25 offsets move the image */
    lz_batch_release(&b);
    lz_loader_close(l);
}

static void test_loader_text_windows(void **state) {
    (void)state;
    int64_t T = 1001, ctx = 8, V = 50;
    const char *path = tpath("tok.h5");
    lz_data_writer *w = lz_data_writer_create(path, 0);
    int a = lz_data_writer_array(w, "train", "tokens", LZ_STORE_U16, 1, &T);
    uint16_t *t = malloc((size_t)T * 2);
    for (int64_t i = 0; i < T; i++) t[i] = (uint16_t)((i * 7) % V);
    lz_data_writer_put(w, a, 0, T, t);
    lz_data_writer_close(w, 1);
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        lz_loader_options o = lz_loader_defaults();
        o.context = ctx;
        o.batch_size = 16;
        o.shuffle = shuffle;
        lz_loader *l = lz_loader_open(path, "train", &o);
        assert_non_null(l);
        assert_int_equal(lz_loader_batches(l), 8);   /* 125 windows of 8 */
        lz_batch b;
        int64_t nwin = 0;
        while (lz_loader_next(l, &b) == 1) {
            assert_int_equal(lz_dim(b.x, 1), ctx);
            const int32_t *x = lz_data(b.x), *y = lz_data(b.y);
            const int64_t *s = lz_data(b.ids);
            for (int64_t i = 0; i < b.size; i++, nwin++) {
                if (!shuffle) assert_int_equal(s[i], nwin * ctx);
                assert_true(s[i] >= 0 && s[i] + ctx + 1 <= T);
                for (int64_t j = 0; j < ctx; j++) {
                    assert_int_equal(x[i * ctx + j], t[s[i] + j]);
                    assert_int_equal(y[i * ctx + j], t[s[i] + j + 1]);
                }
            }
            lz_batch_release(&b);
        }
        assert_int_equal(nwin, 125);
        lz_loader_close(l);
    }
    lz_loader_options o = lz_loader_defaults();
    o.context = 1001;
    assert_null(lz_loader_open(path, "train", &o));
    assert_msg(path, "has 1001 tokens, fewer than context + 1 = 1002");
    o.context = 8;
    o.hflip = 1;
    assert_null(lz_loader_open(path, "train", &o));
    assert_msg(path, "holds text");
    free(t);
}

static void test_loader_shutdown(void **state) {
    (void)state;
    const char *path = make_idx_dataset("sd.h5", 500, 10);
    lz_loader_options o = lz_loader_defaults();
    o.prefetch = 4;
    o.batch_size = 10;
    for (int take = 0; take < 3; take++) {   /* close with the ring full, mid-epoch */
        lz_loader *l = lz_loader_open(path, "train", &o);
        lz_batch b;
        for (int i = 0; i < take; i++) { assert_int_equal(lz_loader_next(l, &b), 1); lz_batch_release(&b); }
        usleep(20000);   /* let the producer fill the ring and block */
        lz_loader_close(l);
    }
    lz_loader_close(NULL);
    /* batches outlive the loader; in a pool, a batch is still ours to release */
    lz_loader *l = lz_loader_open(path, "train", &o);
    lz_batch b;
    lz_pool_push();
    assert_int_equal(lz_loader_next(l, &b), 1);
    lz_pool_pop();
    lz_loader_close(l);
    assert_true(lz_is_evaluated(b.x));
    assert_true(lz_item(b.x) >= 0);
    lz_batch_release(&b);
}

/* ---- bad files ---- */

/* A file with one split holding one array /train/name of the given type and shape. */
static const char *make_h5(const char *file, const char *split, const char *name, hid_t type,
                           int rank, const hsize_t *dims) {
    const char *path = tpath(file);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (name) {
        hid_t s = H5Screate_simple(rank, dims, NULL);
        hid_t d = H5Dcreate2(g, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(s);
    }
    H5Gclose(g);
    H5Fclose(f);
    return path;
}

/* Adds /split/name to an existing file. */
static void add_h5(const char *path, const char *split, const char *name, hid_t type, int rank,
                   const hsize_t *dims, const void *data) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, split, H5P_DEFAULT);
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (data) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d); H5Sclose(s); H5Gclose(g); H5Fclose(f);
}

static void expect_open_error(const char *path, const char *split, const char *needle) {
    lz_error_clear();
    lz_loader *l = lz_loader_open(path, split, NULL);
    if (l) { lz_loader_close(l); fail_msg("%s /%s opened; expected \"%s\"", path, split, needle); }
    assert_msg(path, needle);
}

static void test_bad_files(void **state) {
    (void)state;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hsize_t img[3] = {10, 4, 4}, flat[2] = {10, 16}, n10[1] = {10}, n9[1] = {9}, col[2] = {10, 1};
    hsize_t zero[3] = {0, 4, 4}, t0[1] = {0};
    expect_open_error(tpath("nothing.h5"), "train", "cannot open: No such file or directory");
    expect_open_error(dir, "train", "is a folder");
    write_file(tpath("text.h5"), "just some text, not HDF5\n", 25);
    expect_open_error(tpath("text.h5"), "train", "not an HDF5 file");
    write_file(tpath("gz.h5"), "\x1f\x8b\x08\x00", 4);
    expect_open_error(tpath("gz.h5"), "train", "not an HDF5 file (it is gzip-compressed)");
    write_file(tpath("empty.h5"), "", 0);
    expect_open_error(tpath("empty.h5"), "train", "empty file (0 bytes)");
    /* truncated: the first half of a good file */
    const char *good = make_idx_dataset("good.h5", 1000, 10);
    struct stat st;
    stat(good, &st);
    FILE *in = fopen(good, "rb"), *out = fopen(tpath("trunc.h5"), "wb");
    char *buf = malloc((size_t)st.st_size);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, in), (size_t)st.st_size);
    fwrite(buf, 1, (size_t)st.st_size / 2, out);
    fclose(in); fclose(out); free(buf);
    expect_open_error(tpath("trunc.h5"), "train", "truncated HDF5 file");
    expect_open_error(good, "val", "no split 'val' (the file has: test, train)");
    expect_open_error(good, "a/b", "bad split name");
    /* wrong dtypes and ranks */
    expect_open_error(make_h5("f32.h5", "train", "images", H5T_NATIVE_FLOAT, 3, img), "train",
                      "/train/images has dtype float32, expected uint8");
    expect_open_error(make_h5("rank.h5", "train", "images", H5T_NATIVE_UINT8, 2, flat), "train",
                      "/train/images has rank 2 (shape [10,16]), expected [N,H,W] or [N,H,W,C]");
    const char *p = make_h5("lab.h5", "train", "images", H5T_NATIVE_UINT8, 3, img);
    add_h5(p, "train", "labels", H5T_NATIVE_DOUBLE, 1, n10, NULL);
    expect_open_error(p, "train", "/train/labels has dtype float64, expected an integer type");
    p = make_h5("lab2.h5", "train", "images", H5T_NATIVE_UINT8, 3, img);
    add_h5(p, "train", "labels", H5T_NATIVE_UINT8, 2, col, NULL);
    expect_open_error(p, "train", "/train/labels has rank 2 (shape [10,1]), expected [N]");
    p = make_h5("lab3.h5", "train", "images", H5T_NATIVE_UINT8, 3, img);
    add_h5(p, "train", "labels", H5T_NATIVE_UINT8, 1, n9, NULL);
    expect_open_error(p, "train", "/train/labels has 9 entries but images has 10");
    expect_open_error(make_h5("tok.h5", "train", "tokens", H5T_NATIVE_INT64, 1, n10), "train",
                      "/train/tokens has dtype int64, expected uint16 or int32");
    expect_open_error(make_h5("tok2.h5", "train", "tokens", H5T_NATIVE_INT32, 2, col), "train",
                      "/train/tokens has rank 2");
    /* empty splits */
    expect_open_error(make_h5("e1.h5", "train", "images", H5T_NATIVE_UINT8, 3, zero), "train",
                      "split 'train' is empty (0 images)");
    expect_open_error(make_h5("e2.h5", "train", "tokens", H5T_NATIVE_UINT16, 1, t0), "train",
                      "split 'train' is empty (0 tokens)");
    expect_open_error(make_h5("e3.h5", "train", NULL, 0, 0, NULL), "train",
                      "split 'train' is empty (no arrays in /train)");
    expect_open_error(make_h5("e4.h5", "train", "pixels", H5T_NATIVE_UINT8, 3, img), "train",
                      "has neither 'images' nor 'tokens' (it has: pixels)");
    /* a label outside the classes: at open when preloaded, at the batch when streamed */
    lz_data_writer *w = lz_data_writer_create(tpath("cls.h5"), 0);
    int64_t shp[3] = {10, 4, 4}, ln = 10;
    int a = lz_data_writer_array(w, "train", "images", LZ_STORE_U8, 3, shp);
    int b = lz_data_writer_array(w, "train", "labels", LZ_STORE_U8, 1, &ln);
    uint8_t zeros[160] = {0}, labs[10] = {0, 1, 2, 0, 1, 2, 0, 5, 1, 2};
    lz_data_writer_put(w, a, 0, 10, zeros);
    lz_data_writer_put(w, b, 0, 10, labs);
    lz_data_writer_attr_strings(w, "classes", 3, (const char *[]){"a", "b", "c"});
    assert_int_equal(lz_data_writer_close(w, 1), 0);
    expect_open_error(tpath("cls.h5"), "train", "label 5 of example 7 in split 'train' is outside [0, 3)");
    lz_loader_options o = lz_loader_defaults();
    o.preload_bytes = 0;
    o.shuffle = 0;
    o.batch_size = 4;
    lz_loader *l = lz_loader_open(tpath("cls.h5"), "train", &o);
    assert_non_null(l);
    lz_batch bt;
    assert_int_equal(lz_loader_next(l, &bt), 1);
    lz_batch_release(&bt);
    assert_int_equal(lz_loader_next(l, &bt), -1);
    assert_msg(tpath("cls.h5"), "label 5 of example 7");
    assert_int_equal(lz_loader_next(l, &bt), -1);   /* stays stopped, says why */
    assert_msg(tpath("cls.h5"), "lz_loader_seek restarts it");
    assert_int_equal(lz_loader_seek(l, 0, 0), 0);
    assert_int_equal(lz_loader_next(l, &bt), 1);
    lz_batch_release(&bt);
    lz_loader_close(l);
}

static void test_writer_never_loses_data(void **state) {
    (void)state;
    const char *good = make_idx_dataset("keep.h5", 100, 10);
    struct stat before, after;
    stat(good, &before);
    /* a conversion abandoned halfway leaves the old file as it was, and no temporary file */
    lz_data_writer *w = lz_data_writer_create(good, 0);
    int64_t shp[3] = {10, 4, 4};
    int a = lz_data_writer_array(w, "train", "images", LZ_STORE_U8, 3, shp);
    assert_int_equal(lz_data_writer_put(w, a, 8, 5, NULL), -1);   /* past the end */
    assert_msg(good, "rows [8, 13) are outside /train/images (10 rows)");
    assert_int_equal(lz_data_writer_close(w, 1), -1);             /* a failed writer never commits */
    stat(good, &after);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_ino, after.st_ino);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", good, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    lz_dataset *ds = lz_dataset_open(good, "train");
    assert_non_null(ds);
    lz_dataset_close(ds);
    assert_null(lz_data_writer_create(tpath("no/such/dir/x.h5"), 0));
    assert_msg(tpath("no/such/dir/x.h5"), "cannot create: No such file or directory");
    /* a failed conversion does not touch an existing output either */
    write_file(tpath("bad.txt"), "\xff", 1);
    assert_int_equal(lz_convert_text(good, tpath("bad.txt"), NULL), -1);
    stat(good, &after);
    assert_int_equal(before.st_ino, after.st_ino);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_round_trip),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_text_errors),
        cmocka_unit_test(test_png_folder_round_trip),
        cmocka_unit_test(test_loader_epochs),
        cmocka_unit_test(test_loader_order_from_seed_only),
        cmocka_unit_test(test_loader_streaming_reads_batches),
        cmocka_unit_test(test_loader_layouts_and_normalisation),
        cmocka_unit_test(test_loader_augmentation),
        cmocka_unit_test(test_loader_text_windows),
        cmocka_unit_test(test_loader_shutdown),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_writer_never_loses_data),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    return r;
}
