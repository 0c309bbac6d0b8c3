/* Converters from public formats to dataset files: IDX (MNIST and kin), folders of images
 * in class folders, UTF-8 text. Each streams its input in blocks, so inputs larger than
 * memory work, and writes through lz_data_writer (a temporary file renamed at the end). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "data/data.h"
#include "data/h5.h"

#define BLOCK_ROWS 1024

static const lz_convert_options defaults = {0};

/* Per-channel sums of pixels / 255, for the mean/std attributes. */
typedef struct { int c; double sum[16], sq[16]; int64_t n; } stats;

static void stats_add(stats *s, const uint8_t *p, int64_t npix) {
    for (int64_t i = 0; i < npix; i++) {
        int c = (int)(i % s->c);
        double v = p[i] / 255.0;
        s->sum[c] += v;
        s->sq[c] += v * v;
    }
    s->n += npix / s->c;
}

static int stats_write(lz_data_writer *w, const stats *s) {
    double mean[16], sd[16];
    for (int c = 0; c < s->c; c++) {
        mean[c] = s->n ? s->sum[c] / (double)s->n : 0;
        double var = s->n ? s->sq[c] / (double)s->n - mean[c] * mean[c] : 0;
        sd[c] = var > 0 ? sqrt(var) : 1;   /* a constant channel: std 1 keeps x finite */
    }
    return lz_data_writer_attr_doubles(w, "mean", s->c, mean) ||
           lz_data_writer_attr_doubles(w, "std", s->c, sd) ? -1 : 0;
}

static int common_attrs(lz_data_writer *w, const lz_convert_options *o) {
    if (o->name && lz_data_writer_attr_string(w, "name", o->name)) return -1;
    if (o->source && lz_data_writer_attr_string(w, "source", o->source)) return -1;
    return 0;
}

/* ---- IDX ---- */

typedef struct { FILE *f; const char *path; int64_t dims[3], count; } idx_file;

static int idx_open(idx_file *x, const char *path, int ndim) {
    memset(x, 0, sizeof *x);
    x->path = path;
    if (!(x->f = fopen(path, "rb"))) { lz_fail("%s: cannot open: %s", path, strerror(errno)); return -1; }
    unsigned char m[4], d[12];
    if (fread(m, 1, 4, x->f) != 4) { lz_fail("%s: not an IDX file (shorter than its header)", path); return -1; }
    if (m[0] == 0x1f && m[1] == 0x8b) { lz_fail("%s: is gzip-compressed: decompress it first (gunzip)", path); return -1; }
    if (m[0] || m[1] || m[3] < 1 || m[3] > 3) { lz_fail("%s: not an IDX file (bad magic number)", path); return -1; }
    if (m[2] != 0x08) { lz_fail("%s: IDX element type 0x%02x, expected 0x08 (unsigned bytes)", path, m[2]); return -1; }
    if (m[3] != ndim) {
        lz_fail("%s: IDX file with %d dimension%s, expected %d (%s)", path, m[3], m[3] == 1 ? "" : "s",
                ndim, ndim == 1 ? "labels" : "images");
        return -1;
    }
    if (fread(d, 4, (size_t)ndim, x->f) != (size_t)ndim) { lz_fail("%s: truncated IDX header", path); return -1; }
    x->count = 1;
    for (int i = 0; i < ndim; i++) {
        x->dims[i] = (int64_t)d[4 * i] << 24 | d[4 * i + 1] << 16 | d[4 * i + 2] << 8 | d[4 * i + 3];
        x->count *= x->dims[i];
    }
    struct stat st;
    fstat(fileno(x->f), &st);
    int64_t want = 4 + 4 * ndim + x->count, have = (int64_t)st.st_size;
    if (have < want) {
        lz_fail("%s: truncated IDX file (%lld bytes; its header promises %lld)", path,
                (long long)have, (long long)want);
        return -1;
    }
    if (have > want) {
        lz_fail("%s: %lld bytes more than its IDX header describes (not an IDX file?)", path,
                (long long)(have - want));
        return -1;
    }
    if (!x->dims[0]) { lz_fail("%s: IDX file with 0 entries", path); return -1; }
    return 0;
}

static void idx_close(idx_file *x) { if (x->f) fclose(x->f); x->f = NULL; }

static int read_rows(FILE *f, const char *path, void *buf, size_t bytes) {
    if (fread(buf, 1, bytes, f) == bytes) return 0;
    lz_fail("%s: read error: %s", path, ferror(f) ? strerror(errno) : "unexpected end of file");
    return -1;
}

static int idx_split(lz_data_writer *w, const char *split, const char *images, const char *labels,
                     stats *st, int *max_label) {
    idx_file im, lb = {0};
    int ret = -1;
    uint8_t *buf = NULL;
    if (idx_open(&im, images, 3) || (labels && idx_open(&lb, labels, 1))) goto done;
    int64_t N = im.dims[0], row = im.dims[1] * im.dims[2];
    if (labels && lb.dims[0] != N) {
        lz_fail("%s has %lld images but %s has %lld labels", images, (long long)N, labels,
                (long long)lb.dims[0]);
        goto done;
    }
    int ai = lz_data_writer_array(w, split, "images", LZ_STORE_U8, 3, im.dims);
    int al = labels ? lz_data_writer_array(w, split, "labels", LZ_STORE_U8, 1, lb.dims) : 0;
    if (ai < 0 || al < 0 || !(buf = malloc((size_t)(BLOCK_ROWS * row)))) goto done;
    for (int64_t r = 0; r < N; r += BLOCK_ROWS) {
        int64_t n = N - r < BLOCK_ROWS ? N - r : BLOCK_ROWS;
        if (read_rows(im.f, images, buf, (size_t)(n * row)) ||
            lz_data_writer_put(w, ai, r, n, buf))
            goto done;
        if (st) stats_add(st, buf, n * row);
        if (labels) {
            if (read_rows(lb.f, labels, buf, (size_t)n) || lz_data_writer_put(w, al, r, n, buf)) goto done;
            for (int64_t i = 0; i < n; i++) if (buf[i] > *max_label) *max_label = buf[i];
        }
    }
    ret = 0;
done:
    free(buf);
    idx_close(&im);
    idx_close(&lb);
    return ret;
}

/* Class names "0".."k-1". */
static int digit_classes(lz_data_writer *w, int k) {
    char *names = malloc((size_t)k * 12);
    const char **v = malloc((size_t)k * sizeof *v);
    int r = -1;
    if (names && v) {
        for (int i = 0; i < k; i++) { snprintf(names + 12 * i, 12, "%d", i); v[i] = names + 12 * i; }
        r = lz_data_writer_attr_strings(w, "classes", k, v);
    }
    free(names);
    free(v);
    return r;
}

int lz_convert_idx(const char *out, int nsplits, const char *const *splits,
                   const char *const *images_idx, const char *const *labels_idx,
                   const lz_convert_options *o) {
    if (!o) o = &defaults;
    lz_data_writer *w = lz_data_writer_create(out, o->gzip);
    if (!w) return -1;
    stats st = {.c = 1};
    int max_label = -1;
    for (int s = 0; s < nsplits; s++)
        if (idx_split(w, splits[s], images_idx[s], labels_idx ? labels_idx[s] : NULL,
                      s == 0 ? &st : NULL, &max_label))
            goto fail;
    if (o->classes && max_label >= o->num_classes) {
        lz_fail("%s: a label is %d but only %d class names were given", out, max_label, o->num_classes);
        goto fail;
    }
    if (o->classes ? lz_data_writer_attr_strings(w, "classes", o->num_classes, o->classes)
                   : (max_label >= 0 && digit_classes(w, max_label + 1)))
        goto fail;
    if (stats_write(w, &st) || common_attrs(w, o)) goto fail;
    return lz_data_writer_close(w, 1);
fail:
    lz_data_writer_close(w, 0);
    return -1;
}

/* ---- folders of images ---- */

typedef struct { char **v; int n, cap; } strlist;

static int sl_add(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    return (l->v[l->n++] = strdup(s)) ? 0 : -1;
}
static void sl_free(strlist *l) { for (int i = 0; i < l->n; i++) free(l->v[i]); free(l->v); memset(l, 0, sizeof *l); }
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int sl_find(const strlist *l, const char *s) {
    for (int i = 0; i < l->n; i++) if (!strcmp(l->v[i], s)) return i;
    return -1;
}

/* a, a/b or a/b/c into out (4096 bytes); -1 when too long. */
static int join(char *out, const char *a, const char *b, const char *c) {
    int k = c ? snprintf(out, 4096, "%s/%s/%s", a, b, c)
              : b ? snprintf(out, 4096, "%s/%s", a, b) : snprintf(out, 4096, "%s", a);
    if (k < 0 || k >= 4096) { lz_fail("%s: path too long", a); return -1; }
    return 0;
}

static int is_png(const char *name) {
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

/* Entries of dir (no dot files) that are folders (want_dirs) or PNG files, sorted. */
static int list_dir(const char *dir, int want_dirs, strlist *out) {
    DIR *d = opendir(dir);
    if (!d) { lz_fail("%s: cannot open folder: %s", dir, strerror(errno)); return -1; }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        struct stat st;
        if (join(path, dir, e->d_name, NULL) || stat(path, &st)) continue;
        int take = want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && is_png(e->d_name);
        if (take && sl_add(out, e->d_name)) { closedir(d); lz_fail("%s: out of memory", dir); return -1; }
    }
    closedir(d);
    if (out->n) qsort(out->v, (size_t)out->n, sizeof(char *), cmp_str);
    return 0;
}

typedef struct {
    const lz_convert_options *o;
    int H, W, C;
    char first[4096];
} img_shape;

/* Reads one image and brings it to the dataset's shape (the first image sets it). */
static int load_image(img_shape *s, const char *path, uint8_t *dst) {
    int w, h, c;
    uint8_t *px = NULL;
    if (s->o->read_image(path, &w, &h, &c, &px)) return -1;
    int ret = -1;
    if (c != 1 && c != 3) { lz_fail("%s: %d channels, expected gray or RGB", path, c); goto done; }
    if (!s->H) {
        s->H = h; s->W = w;
        s->C = s->o->channels ? s->o->channels : c;
        if (snprintf(s->first, sizeof s->first, "%s", path) < 0) s->first[0] = 0;
    }
    if (h != s->H || w != s->W) {
        lz_fail("%s: %dx%d pixels, but %s is %dx%d (all images must have one size)", path, w, h,
                s->first, s->W, s->H);
        goto done;
    }
    int64_t n = (int64_t)w * h;
    if (c == s->C) memcpy(dst, px, (size_t)(n * c));
    else if (c == 1)   /* gray into RGB: lossless */
        for (int64_t i = 0; i < n; i++) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = px[i];
    else if (s->o->channels == 1)   /* RGB into gray only when asked: it loses colour */
        for (int64_t i = 0; i < n; i++)
            dst[i] = (uint8_t)lround(0.299 * px[3 * i] + 0.587 * px[3 * i + 1] + 0.114 * px[3 * i + 2]);
    else {
        lz_fail("%s: RGB, but %s is gray: choose the channels (1 or 3) for all images", path, s->first);
        goto done;
    }
    ret = 0;
done:
    free(px);
    return ret;
}

static int image_split(lz_data_writer *w, img_shape *s, const char *dir, const char *split,
                       const strlist *classes, stats *st) {
    strlist files = {0}, cls = {0};
    int64_t *label = NULL;
    uint8_t *buf = NULL;
    int ret = -1;
    char path[4096];
    if (list_dir(dir, 1, &cls)) goto done;
    for (int k = 0; k < cls.n; k++) {
        strlist f = {0};
        if (join(path, dir, cls.v[k], NULL) || list_dir(path, 0, &f)) { sl_free(&f); goto done; }
        int64_t *nl = realloc(label, (size_t)(files.n + f.n + 1) * sizeof *nl);
        if (!nl) { sl_free(&f); lz_fail("%s: out of memory", dir); goto done; }
        label = nl;
        for (int i = 0; i < f.n; i++) {
            if (join(path, dir, cls.v[k], f.v[i])) { sl_free(&f); goto done; }
            label[files.n] = sl_find(classes, cls.v[k]);
            if (sl_add(&files, path)) { sl_free(&f); lz_fail("%s: out of memory", dir); goto done; }
        }
        sl_free(&f);
    }
    if (!files.n) { lz_fail("%s: no .png images in its class folders", dir); goto done; }
    /* The first image fixes the shape before the arrays exist. */
    if (!s->H) {
        uint8_t *probe;
        int pw, ph, pc;
        if (s->o->read_image(files.v[0], &pw, &ph, &pc, &probe)) goto done;
        free(probe);
        s->H = ph; s->W = pw;
        s->C = s->o->channels ? s->o->channels : pc;
        if (snprintf(s->first, sizeof s->first, "%s", files.v[0]) < 0) s->first[0] = 0;
    }
    if (st) st->c = s->C;
    int64_t N = files.n, row = (int64_t)s->H * s->W * s->C;
    int64_t ishape[4] = {N, s->H, s->W, s->C}, lshape[1] = {N};
    lz_store_type lt = classes->n <= 256 ? LZ_STORE_U8 : LZ_STORE_I32;
    int ai = lz_data_writer_array(w, split, "images", LZ_STORE_U8, s->C == 1 ? 3 : 4, ishape);
    int al = lz_data_writer_array(w, split, "labels", lt, 1, lshape);
    if (ai < 0 || al < 0) goto done;
    int64_t block = (int64_t)(16 << 20) / row;   /* about 16 MiB of pixels per write */
    if (block < 1) block = 1;
    if (block > N) block = N;
    if (!(buf = malloc((size_t)(block * (row > 4 ? row : 4))))) { lz_fail("%s: out of memory", dir); goto done; }
    for (int64_t r = 0; r < N; r += block) {
        int64_t n = N - r < block ? N - r : block;
        for (int64_t i = 0; i < n; i++)
            if (load_image(s, files.v[r + i], buf + i * row)) goto done;
        if (lz_data_writer_put(w, ai, r, n, buf)) goto done;
        if (st) stats_add(st, buf, n * row);
    }
    /* labels last, through the same buffer */
    for (int64_t r = 0; r < N; r += block) {
        int64_t n = N - r < block ? N - r : block;
        for (int64_t i = 0; i < n; i++) {
            if (lt == LZ_STORE_U8) buf[i] = (uint8_t)label[r + i];
            else ((int32_t *)(void *)buf)[i] = (int32_t)label[r + i];
        }
        if (lz_data_writer_put(w, al, r, n, buf)) goto done;
    }
    ret = 0;
done:
    free(buf);
    free(label);
    sl_free(&files);
    sl_free(&cls);
    return ret;
}

static int is_split_name(const char *s) {
    return !strcmp(s, "train") || !strcmp(s, "val") || !strcmp(s, "test");
}

int lz_convert_images(const char *out, const char *dir, const lz_convert_options *o) {
    if (!o) o = &defaults;
    if (!o->read_image) { lz_fail("lz_convert_images: no image reader given"); return -1; }
    if (o->channels != 0 && o->channels != 1 && o->channels != 3) {
        lz_fail("lz_convert_images: channels %d, expected 0, 1 or 3", o->channels);
        return -1;
    }
    strlist top = {0}, splits = {0}, classes = {0}, files = {0};
    lz_data_writer *w = NULL;
    int ret = -1, nsplit_dirs = 0;
    char path[4096];
    if (list_dir(dir, 1, &top) || list_dir(dir, 0, &files)) goto done;
    for (int i = 0; i < top.n; i++) nsplit_dirs += is_split_name(top.v[i]);
    if (nsplit_dirs) {
        for (int i = 0; i < top.n; i++) {
            if (!is_split_name(top.v[i])) {
                lz_fail("%s: has split folders and also '%s'; expected only train, val, test", dir, top.v[i]);
                goto done;
            }
        }
        /* train first: its statistics become the dataset's mean/std */
        const char *order[3] = {"train", "val", "test"};
        for (int k = 0; k < 3; k++) if (sl_find(&top, order[k]) >= 0) sl_add(&splits, order[k]);
    } else {
        if (!top.n) {
            lz_fail("%s: no class folders (expected %s/CLASS/IMAGE.png)%s", dir, dir,
                    files.n ? "; the PNG files here must go into one folder per class" : "");
            goto done;
        }
        sl_add(&splits, o->split ? o->split : "train");
    }
    /* classes: the union of the class folders of all splits, sorted */
    for (int s = 0; s < splits.n; s++) {
        strlist c = {0};
        if (nsplit_dirs ? join(path, dir, splits.v[s], NULL) : join(path, dir, NULL, NULL)) goto done;
        if (list_dir(path, 1, &c)) { sl_free(&c); goto done; }
        for (int i = 0; i < c.n; i++) if (sl_find(&classes, c.v[i]) < 0) sl_add(&classes, c.v[i]);
        sl_free(&c);
    }
    if (!classes.n) { lz_fail("%s: no class folders", dir); goto done; }
    qsort(classes.v, (size_t)classes.n, sizeof(char *), cmp_str);
    if (!(w = lz_data_writer_create(out, o->gzip))) goto done;
    img_shape shape = {.o = o};
    stats st = {.c = 1};
    for (int s = 0; s < splits.n; s++) {
        if (nsplit_dirs ? join(path, dir, splits.v[s], NULL) : join(path, dir, NULL, NULL)) goto done;
        if (image_split(w, &shape, path, splits.v[s], &classes, s == 0 ? &st : NULL)) goto done;
    }
    if (lz_data_writer_attr_strings(w, "classes", classes.n, (const char *const *)classes.v) ||
        stats_write(w, &st) || common_attrs(w, o))
        goto done;
    ret = lz_data_writer_close(w, 1);
    w = NULL;
done:
    if (w) lz_data_writer_close(w, 0);
    sl_free(&top); sl_free(&splits); sl_free(&classes); sl_free(&files);
    return ret;
}

/* ---- text ---- */

typedef struct {
    FILE *f;
    const char *path;
    unsigned char buf[1 << 16];
    size_t n, i;
    int64_t off;   /* offset of buf[0] in the file */
} reader;

static int next_byte(reader *r) {
    if (r->i == r->n) {
        r->off += (int64_t)r->n;
        r->n = fread(r->buf, 1, sizeof r->buf, r->f);
        r->i = 0;
        if (!r->n) return -1;
    }
    return r->buf[r->i++];
}

/* The next code point; -1 at the end; -2 for invalid UTF-8 (overlong forms, surrogates,
 * beyond U+10FFFF, a sequence cut short), with lz_error() giving the byte offset. */
static int32_t next_char(reader *r) {
    int64_t at = r->off + (int64_t)r->i;
    int b = next_byte(r);
    if (b < 0) return ferror(r->f) ? (lz_fail("%s: read error: %s", r->path, strerror(errno)), -2) : -1;
    if (b < 0x80) return b;
    int len = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? (b <= 0xEF ? 3 : 0) : b >= 0xC2 ? 2 : 0;
    int32_t cp = len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
    for (int k = 1; k < len; k++) {
        int c = next_byte(r);
        if (c < 0 || (c & 0xC0) != 0x80) { len = 0; break; }
        cp = cp << 6 | (c & 0x3F);
    }
    static const int32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (!len || cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        lz_fail("%s: invalid UTF-8 at byte %lld", r->path, (long long)at);
        return -2;
    }
    return cp;
}

static int utf8_encode(int32_t cp, char *s) {
    if (cp < 0x80) { s[0] = (char)cp; return 1; }
    if (cp < 0x800) { s[0] = (char)(0xC0 | cp >> 6); s[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        s[0] = (char)(0xE0 | cp >> 12); s[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | cp >> 18); s[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    s[2] = (char)(0x80 | (cp >> 6 & 0x3F)); s[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#define NCP 0x110000

/* ---- mapping characters into a vocabulary ---- */

/* Near characters, tried in order, for a character outside a given vocabulary. */
static const struct { int32_t from; const char *to; } near[] = {
    {'"', "'"}, {'`', "'"}, {0xB4, "'"}, {0x2018, "'"}, {0x2019, "'"}, {0x201A, "'"},
    {0x201B, "'"}, {0x2032, "'"}, {0x201C, "\"'"}, {0x201D, "\"'"}, {0x201E, "\"'"},
    {0x201F, "\"'"}, {0x2033, "\"'"}, {0xAB, "\"'"}, {0xBB, "\"'"},
    {'(', "[{"}, {')', "]}"}, {'[', "({"}, {']', ")}"}, {'{', "(["}, {'}', ")]"},
    {'<', "(["}, {'>', ")]"},
    {0x2010, "- "}, {0x2011, "- "}, {0x2012, "- "}, {0x2013, "- "}, {0x2014, "- "},
    {0x2015, "- "}, {0x2212, "- "}, {'-', " "}, {'_', "- "}, {0x2026, "."}, {';', ","}, {':', ","}, {'!', "."}, {'?', "."},
    {'\t', " "}, {0xA0, " "}, {0x202F, " "}, {0x3000, " "},
};

/* U+00C0..U+00FF without their accents ('\0': none). */
static const char latin1[] = "AAAAAA\0CEEEEIIIIDNOOOOO\0OUUUUY\0\0aaaaaa\0ceeeeiiiidnooooo\0ouuuuy\0y";

static int32_t decode1(const char *s, int *len);   /* below */

/* The code point c becomes, in the vocabulary `in` (in[cp] >= 0 when cp is in it): itself, a
 * near character, or -1 (dropped). */
static int32_t nearest(int32_t c, const int32_t *in) {
    if (in[c] >= 0) return c;
    for (size_t i = 0; i < sizeof near / sizeof *near; i++)
        if (near[i].from == c)
            for (const char *t = near[i].to; *t; t++)
                if (in[(unsigned char)*t] >= 0) return (unsigned char)*t;
    if (c >= 0x2000 && c <= 0x200A) return in[' '] >= 0 ? ' ' : -1;   /* typographic spaces */
    if (c >= 0xC0 && c <= 0xFF && latin1[c - 0xC0]) c = (unsigned char)latin1[c - 0xC0];
    if (in[c] >= 0) return c;
    if (c >= 'a' && c <= 'z' && in[c - 32] >= 0) return c - 32;
    if (c >= 'A' && c <= 'Z' && in[c + 32] >= 0) return c + 32;
    return -1;
}

static void stats_count(lz_text_stats *st, int32_t from, int32_t to) {
    for (int i = 0; i < st->n; i++)
        if (st->entries[i].from == from) {
            st->entries[i].count++;
            /* keep the entries sorted by count: bubble this one up */
            for (; i > 0 && st->entries[i].count > st->entries[i - 1].count; i--) {
                lz_text_map_entry t = st->entries[i];
                st->entries[i] = st->entries[i - 1];
                st->entries[i - 1] = t;
            }
            return;
        }
    if (st->n < (int)(sizeof st->entries / sizeof *st->entries)) {
        st->entries[st->n].from = from;
        st->entries[st->n].to = to;
        st->entries[st->n++].count = 1;
    } else st->others++;
}

/* The stream of output characters: the file's characters through dest (code point -> output
 * code point, -1 dropped), with the spaces around dropped characters, and those made by the
 * mapping, tidied (see data.h). */
typedef struct {
    reader *r;
    const int32_t *dest;
    lz_text_stats *st;     /* counts (NULL: not counted) */
    int32_t last;          /* the last character given out ('\n' at the start) */
    int32_t queued;        /* given out next (-1: none) */
    int held;              /* a space read but not given out yet */
    int dropped;           /* a character was dropped since the last one given out / held */
} text_stream;

static int is_closer(int32_t c) {
    return c == ',' || c == '.' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\n';
}

/* The next output character, -1 at the end, -2 on an error. */
static int32_t stream_next(text_stream *s) {
    int32_t c;
    if (s->queued >= 0) {
        c = s->queued;
        s->queued = -1;
        return s->last = c;
    }
    for (;;) {
        int32_t cp = next_char(s->r);
        if (cp == -2) return -2;
        if (cp == -1) {
            if (!s->held) return -1;
            s->held = 0;
            if (s->dropped) { if (s->st) s->st->spaces_removed++; return -1; }
            return s->last = ' ';
        }
        if (s->st) s->st->chars++;
        c = s->dest[cp];
        if (c != cp && s->st) {
            if (c < 0) s->st->dropped++;
            else s->st->mapped++;
            stats_count(s->st, cp, c);
        }
        if (c < 0) { s->dropped = 1; continue; }
        if (c == ' ') {
            /* a space that would double: after a dropped character, or one that a mapping made
             * (a dash between words) next to another */
            if ((s->dropped || cp != ' ') && (s->held || s->last == '\n' || (cp != ' ' && s->last == ' '))) {
                if (s->st) s->st->spaces_removed++;
                s->dropped = 1;   /* a space of the text after it merges too */
                continue;
            }
            if (s->held) return s->last = ' ';   /* two spaces in the text: give one, hold one */
            s->held = 1;
            s->dropped = 0;
            continue;
        }
        int dropped = s->dropped;
        s->dropped = 0;
        if (s->held) {
            s->held = 0;
            if (dropped && is_closer(c)) { if (s->st) s->st->spaces_removed++; }
            else { s->queued = c; return s->last = ' '; }
        }
        return s->last = c;
    }
}

static int32_t decode1(const char *s, int *len) {
    const unsigned char *u = (const unsigned char *)s;
    int n = u[0] < 0x80 ? 1 : u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 0;
    int32_t cp = n == 1 ? u[0] : n == 2 ? u[0] & 0x1F : n == 3 ? u[0] & 0x0F : u[0] & 0x07;
    for (int k = 1; k < n; k++) {
        if ((u[k] & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    *len = n;
    return n && cp < NCP ? cp : -1;
}

/* One code point of a "FROM=TO" rule's TO, -1 for none; -2 when it is not one character. */
static int32_t rule_target(const char *to) {
    if (!*to) return -1;
    int len;
    int32_t cp = decode1(to, &len);
    return cp < 0 || to[len] ? -2 : cp;
}

/* dest[cp] for every code point: the rules, then (with a vocabulary) the near characters. */
static int make_dest(int32_t *dest, int32_t *in, const lz_convert_options *o, const char *path) {
    for (int32_t c = 0; c < NCP; c++) dest[c] = c;
    for (int i = 0; i < o->nmaps; i++) {
        const char *rule = o->maps[i], *eq = strrchr(rule, '=');
        int32_t to = eq ? rule_target(eq + 1) : -2;
        if (!eq || eq == rule || to == -2) {
            lz_fail("%s: bad character rule '%s' (expected FROM=TO: the characters FROM become "
                    "the one character TO, or are dropped when TO is empty)", path, rule);
            return -1;
        }
        if (to >= 0 && o->vocab && in[to] < 0) {
            lz_fail("%s: the rule '%s' maps to a character that is not in the vocabulary", path, rule);
            return -1;
        }
        for (const char *p = rule; p < eq;) {
            int len;
            int32_t from = decode1(p, &len);
            if (from < 0) { lz_fail("%s: the rule '%s' is not valid UTF-8", path, rule); return -1; }
            dest[from] = to;
            p += len;
        }
    }
    if (o->vocab)
        for (int32_t c = 0; c < NCP; c++)
            if (dest[c] >= 0) dest[c] = nearest(dest[c], in);
    return 0;
}

int lz_text_vocab_read(const char *path, char ***vocab) {
    h5_quiet();
    *vocab = NULL;
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    int n = -1;
    htri_t ex = H5Aexists(f, "vocab");
    hid_t attr = ex > 0 ? H5Aopen(f, "vocab", H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    if (ex <= 0) {
        lz_fail("%s: no vocabulary (no 'vocab' attribute: neither a text dataset nor a language "
                "model's checkpoint)", path);
    } else if (type >= 0 && H5Tget_class(type) == H5T_STRING) {
        n = h5_read_strings(path, f, "vocab", vocab);
    } else if (type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1) {
        /* a checkpoint: the token texts, each followed by a NUL */
        hid_t space = H5Aget_space(attr);
        hssize_t nb = H5Sget_simple_extent_npoints(space);
        H5Sclose(space);
        char *bytes = nb > 0 ? malloc((size_t)nb + 1) : NULL;
        if (!bytes || H5Aread(attr, H5T_NATIVE_UCHAR, bytes) < 0) {
            lz_fail("%s: cannot read the vocabulary", path);
        } else {
            bytes[nb] = 0;
            int k = 0;
            for (hssize_t i = 0; i < nb; i++) k += !bytes[i];
            char **v = malloc((size_t)k * sizeof *v + (size_t)nb + 1);
            if (!v) lz_fail("%s: out of memory", path);
            else {
                char *p = memcpy((char *)(v + k), bytes, (size_t)nb + 1);
                for (int i = 0; i < k; i++) { v[i] = p; p += strlen(p) + 1; }
                *vocab = v;
                n = k;
            }
        }
        free(bytes);
    } else {
        char tn[32];
        lz_fail("%s: attribute 'vocab' has type %s, expected strings or bytes", path,
                type >= 0 ? h5_type_name(type, tn, sizeof tn) : "?");
    }
    if (n == 0) { lz_fail("%s: the vocabulary is empty", path); n = -1; }
    if (n < 0) { free(*vocab); *vocab = NULL; }
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    H5Fclose(f);
    return n;
}

int lz_convert_text(const char *out, const char *text_file, const lz_convert_options *o) {
    if (!o) o = &defaults;
    if (!(o->val_fraction >= 0 && o->val_fraction < 1)) {
        lz_fail("lz_convert_text: val_fraction %g is outside [0, 1)", o->val_fraction);
        return -1;
    }
    reader *r = calloc(1, sizeof *r);
    int32_t *id = malloc(NCP * sizeof(int32_t));     /* output code point -> token id, -1: none */
    int32_t *dest = malloc(NCP * sizeof(int32_t));   /* code point -> output code point, -1 */
    char *names = NULL;
    const char **vocab = NULL;
    void *buf = NULL;
    lz_data_writer *w = NULL;
    int ret = -1, V = 0;
    if (!r || !id || !dest) { lz_fail("%s: out of memory", text_file); goto done; }
    for (int32_t c = 0; c < NCP; c++) id[c] = -1;
    if (o->vocab) {   /* the given vocabulary: one character per entry, no repeats */
        if (o->vocab_size < 1) { lz_fail("%s: the given vocabulary is empty", text_file); goto done; }
        for (int i = 0; i < o->vocab_size; i++) {
            int len;
            int32_t cp = o->vocab[i][0] ? decode1(o->vocab[i], &len) : -1;
            if (cp < 0 || o->vocab[i][len]) {
                lz_fail("%s: entry %d ('%s') of the given vocabulary is not one character (a "
                        "character-level vocabulary is needed)", text_file, i, o->vocab[i]);
                goto done;
            }
            if (id[cp] >= 0) {
                lz_fail("%s: the given vocabulary has '%s' twice (entries %d and %d)", text_file,
                        o->vocab[i], id[cp], i);
                goto done;
            }
            id[cp] = i;
        }
        V = o->vocab_size;
    }
    if (make_dest(dest, id, o, text_file)) goto done;
    r->path = text_file;
    if (!(r->f = fopen(text_file, "rb"))) { lz_fail("%s: cannot open: %s", text_file, strerror(errno)); goto done; }
    lz_text_stats st0;
    memset(&st0, 0, sizeof st0);
    text_stream s = {r, dest, &st0, '\n', -1, 0, 0};
    /* pass 1: the vocabulary (unless given) and the length */
    int64_t T = 0;
    int32_t cp;
    while ((cp = stream_next(&s)) >= 0) {
        if (!o->vocab) id[cp] = 0;
        T++;
    }
    if (cp == -2) goto done;
    if (!T) {
        lz_fail("%s: %s", text_file, st0.chars ? "no character is left after the mapping"
                                               : "empty text file (no characters)");
        goto done;
    }
    st0.tokens = T;
    if (o->stats) *o->stats = st0;
    if (!o->vocab)
        for (int32_t c = 0; c < NCP; c++) if (id[c] >= 0) id[c] = V++;
    if (o->vocab) vocab = malloc((size_t)V * sizeof *vocab);
    else if ((names = malloc((size_t)V * 5))) vocab = malloc((size_t)V * sizeof *vocab);
    if (!vocab) { lz_fail("%s: out of memory", text_file); goto done; }
    if (o->vocab) memcpy(vocab, o->vocab, (size_t)V * sizeof *vocab);
    else
        for (int32_t c = 0; c < NCP; c++)
            if (id[c] >= 0) {
                char *p = names + 5 * id[c];
                p[utf8_encode(c, p)] = 0;
                vocab[id[c]] = p;
            }
    int64_t ntrain = (int64_t)((double)T * (1 - o->val_fraction)), nval = T - ntrain;
    if (!ntrain) { lz_fail("%s: too short for a train split (%lld characters)", text_file, (long long)T); goto done; }
    lz_store_type t = V <= 65536 ? LZ_STORE_U16 : LZ_STORE_I32;
    if (!(w = lz_data_writer_create(out, o->gzip))) goto done;
    int at = lz_data_writer_array(w, "train", "tokens", t, 1, &ntrain);
    int av = nval ? lz_data_writer_array(w, "val", "tokens", t, 1, &nval) : 0;
    if (at < 0 || av < 0) goto done;
    /* pass 2: the tokens */
    rewind(r->f);
    r->n = r->i = 0;
    r->off = 0;
    s = (text_stream){r, dest, NULL, '\n', -1, 0, 0};
    enum { CHUNK = 1 << 16 };
    if (!(buf = malloc(CHUNK * 4))) { lz_fail("%s: out of memory", text_file); goto done; }
    int64_t pos = 0, k = 0;
    while (pos < T) {
        if ((cp = stream_next(&s)) < 0 || id[cp] < 0) {
            if (cp != -2) lz_fail("%s: the file changed while it was read", text_file);
            goto done;
        }
        if (t == LZ_STORE_U16) ((uint16_t *)buf)[k] = (uint16_t)id[cp];
        else ((int32_t *)buf)[k] = id[cp];
        k++, pos++;
        /* flush at a full buffer and at the train/val boundary */
        if (k == CHUNK || pos == ntrain || pos == T) {
            int in_train = pos <= ntrain;
            int64_t row0 = in_train ? pos - k : pos - k - ntrain;
            if (lz_data_writer_put(w, in_train ? at : av, row0, k, buf)) goto done;
            k = 0;
        }
    }
    if (stream_next(&s) != -1) { lz_fail("%s: the file changed while it was read", text_file); goto done; }
    if (lz_data_writer_attr_strings(w, "vocab", V, vocab) || common_attrs(w, o)) goto done;
    ret = lz_data_writer_close(w, 1);
    w = NULL;
done:
    if (w) lz_data_writer_close(w, 0);
    if (r && r->f) fclose(r->f);
    free(r); free(id); free(dest); free(names); free(vocab); free(buf);
    return ret;
}
