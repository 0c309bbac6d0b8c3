/* lz-data: converts public formats to leibniz dataset files and describes them.
 * Exit codes: 0 success, 1 the conversion or check failed, 2 bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "io/image.h"

static const char *usage =
    "usage:\n"
    "  lz-data idx OUT.h5 --split NAME IMAGES_IDX LABELS_IDX|- [--split ...] [--classes A,B,...]\n"
    "  lz-data images OUT.h5 DIR [--split NAME] [--channels 0|1|3]\n"
    "  lz-data text OUT.h5 FILE [--val-fraction F] [--vocab-from FILE.h5] [--map FROM=TO ...]\n"
    "  lz-data info FILE.h5 [--head K] [--check]\n"
    "options of the converters: --name NAME --source TEXT --gzip LEVEL (0..9, default 0)\n"
    "IDX files must be uncompressed; DIR holds CLASS/*.png or train|val|test/CLASS/*.png.\n"
    "text: --vocab-from takes the vocabulary of a dataset or checkpoint (characters outside it\n"
    "are mapped to a near one or dropped); --map FROM=TO turns each character of FROM into TO\n"
    "(one character; empty: dropped) before that.\n";

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "lz-data: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int failed(void) {
    fprintf(stderr, "lz-data: %s\n", lz_error());
    return 1;
}

static int png_reader(const char *path, int *w, int *h, int *c, uint8_t **pixels) {
    lz_image img;
    if (lz_png_read(path, &img)) return -1;
    *w = img.width;
    *h = img.height;
    *c = img.channels;
    *pixels = img.pixels;   /* ours now: the converter frees it */
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Splits "a,b,c" in place into v (at most max); returns the count. */
static int split_list(char *s, char **v, int max) {
    int n = 0;
    for (char *p = s; n < max;) {
        v[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    long head = 0;
    int check = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--head") && i + 1 < argc) {
            if (parse_int(argv[++i], 0, 1000000, &head)) return bad_usage("bad --head value '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--check")) check = 1;
        else if (argv[i][0] == '-') return bad_usage("unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return bad_usage("unexpected argument '%s'", argv[i]);
    }
    if (!path) return bad_usage("%s", "info needs a file");
    char **splits;
    int ns = lz_dataset_splits(path, &splits);
    if (ns < 0) return failed();
    if (!ns) { free(splits); fprintf(stderr, "lz-data: %s: no splits (groups) in the file\n", path); return 1; }
    int ret = 0;
    for (int s = 0; s < ns && !ret; s++) {
        lz_dataset *ds = lz_dataset_open(path, splits[s]);
        if (!ds) { ret = failed(); break; }
        const lz_data_info *in = lz_dataset_info(ds);
        if (s == 0) {
            printf("%s%s%s\n", path, in->name[0] ? ": " : "", in->name);
            if (in->num_classes) {
                printf("  classes (%d):", in->num_classes);
                for (int c = 0; c < in->num_classes; c++) printf("%s %s", c ? "," : "", in->classes[c]);
                printf("\n");
            }
            if (in->vocab_size) printf("  vocabulary: %d tokens\n", in->vocab_size);
            for (int c = 0; c < in->nstats; c++)
                printf("  channel %d: mean %.4f std %.4f\n", c, in->mean[c], in->std[c]);
        }
        if (in->kind == LZ_DATA_IMAGES)
            printf("  %s: %lld images %dx%dx%d%s\n", in->split, (long long)in->length, in->height,
                   in->width, in->channels, in->has_labels ? ", labels" : "");
        else
            printf("  %s: %lld tokens\n", in->split, (long long)in->length);
        int64_t k = head < in->length ? head : in->length;
        if (k && in->kind == LZ_DATA_IMAGES && in->has_labels) {
            int64_t *idx = malloc((size_t)k * 8);
            int32_t *lab = malloc((size_t)k * 4);
            uint8_t *img = malloc((size_t)(k * in->height * in->width * in->channels));
            for (int64_t i = 0; i < k; i++) idx[i] = i;
            if (lz_dataset_read_images(ds, k, idx, img, lab)) ret = failed();
            else {
                printf("    first labels:");
                for (int64_t i = 0; i < k; i++) printf(" %d", lab[i]);
                printf("\n");
            }
            free(idx); free(lab); free(img);
        } else if (k && in->kind == LZ_DATA_TEXT) {
            int32_t *t = malloc((size_t)k * 4);
            if (lz_dataset_read_tokens(ds, 0, k, t)) ret = failed();
            else {
                printf("    first tokens:");
                for (int64_t i = 0; i < k; i++) printf(" %d", t[i]);
                printf("\n");
            }
            free(t);
        }
        if (check && !ret) {   /* every element, in blocks: labels/tokens are range-checked */
            int64_t block = 4096, n = in->length;
            int64_t row = in->kind == LZ_DATA_IMAGES ? (int64_t)in->height * in->width * in->channels : 4;
            uint8_t *buf = malloc((size_t)(block * row));
            int32_t *lab = malloc((size_t)block * 4);
            int64_t *idx = malloc((size_t)block * 8);
            for (int64_t r = 0; r < n && !ret; r += block) {
                int64_t m = n - r < block ? n - r : block;
                for (int64_t i = 0; i < m; i++) idx[i] = r + i;
                int st = in->kind == LZ_DATA_IMAGES
                             ? lz_dataset_read_images(ds, m, idx, buf, in->has_labels ? lab : NULL)
                             : lz_dataset_read_tokens(ds, r, m, lab);
                if (st) ret = failed();
            }
            if (!ret) printf("    checked all %lld %s\n", (long long)n,
                             in->kind == LZ_DATA_IMAGES ? "examples" : "tokens");
            free(buf); free(lab); free(idx);
        }
        lz_dataset_close(ds);
    }
    free(splits);
    return ret;
}

/* 1234567 as "1,234,567" (into one of 4 rotating buffers). */
static const char *commas(int64_t v) {
    static char bufs[4][32];
    static int k;
    char tmp[32], *b = bufs[k++ & 3];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v)), o = 0;
    if (v < 0) b[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) b[o++] = ',';
        b[o++] = tmp[i];
    }
    b[o] = 0;
    return b;
}

/* A character for a message: 'x', '\n', U+00A0 (into one of 4 rotating buffers). */
static const char *show(int32_t c) {
    static char bufs[4][16];
    static int k;
    char *b = bufs[k++ & 3];
    if (c == '\n') snprintf(b, 16, "'\\n'");
    else if (c == '\t') snprintf(b, 16, "'\\t'");
    else if (c == '\r') snprintf(b, 16, "'\\r'");
    else if (c < 0x20 || c == 0x7F || c > 0x7E) snprintf(b, 16, "U+%04X", (unsigned)c);
    else snprintf(b, 16, "'%c'", (char)c);
    return b;
}

/* What the text conversion did to the characters: counts, and the most frequent cases. */
static void print_text_stats(const lz_text_stats *st, const char *vocab_from, int vocab_size) {
    if (vocab_from)
        printf("vocabulary: the %d characters of %s\n", vocab_size, vocab_from);
    printf("characters: %s read, %s written", commas(st->chars), commas(st->tokens));
    printf("; %s mapped, %s dropped (%.2f%%)\n", commas(st->mapped), commas(st->dropped),
           st->chars ? 100.0 * (double)st->dropped / (double)st->chars : 0.0);
    for (int pass = 0; pass < 2; pass++) {
        int shown = 0;
        for (int i = 0; i < st->n; i++) {
            const lz_text_map_entry *e = &st->entries[i];
            if ((e->to < 0) != pass) continue;
            if (!shown) printf("  %s:", pass ? "dropped" : "mapped");
            if (shown == 24) { printf(" ..."); shown++; continue; }
            if (shown > 24) continue;
            if (pass) printf("%s %s %s", shown ? "," : "", show(e->from), commas(e->count));
            else printf("%s %s->%s %s", shown ? "," : "", show(e->from), show(e->to), commas(e->count));
            shown++;
        }
        if (shown) printf("\n");
    }
    if (st->others) printf("  and %s more of other characters\n", commas(st->others));
    if (st->spaces_removed)
        printf("  spaces left out (doubled by a dropped or mapped character): %s\n",
               commas(st->spaces_removed));
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    int is_idx = !strcmp(cmd, "idx"), is_images = !strcmp(cmd, "images"), is_text = !strcmp(cmd, "text");
    if (!is_idx && !is_images && !is_text) return bad_usage("unknown command '%s'", cmd);
    lz_convert_options o = {.read_image = png_reader};
    const char *out = NULL, *in = NULL;
    enum { MAXS = 8, MAXC = 4096 };
    const char *sname[MAXS], *simg[MAXS], *slab[MAXS];
    char *classes[MAXC];
    const char *maps[64];
    const char *vocab_from = NULL;
    char **vocab = NULL;
    lz_text_stats st;
    int nsplit = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        long v;
        if (!strcmp(a, "--name") && more) o.name = argv[++i];
        else if (!strcmp(a, "--source") && more) o.source = argv[++i];
        else if (!strcmp(a, "--gzip") && more) {
            if (parse_int(argv[++i], 0, 9, &v)) return bad_usage("--gzip takes 0..9, not '%s'", argv[i]);
            o.gzip = (int)v;
        } else if (is_idx && !strcmp(a, "--split") && i + 3 < argc) {
            if (nsplit == MAXS) return bad_usage("%s", "too many splits");
            sname[nsplit] = argv[i + 1];
            simg[nsplit] = argv[i + 2];
            slab[nsplit] = strcmp(argv[i + 3], "-") ? argv[i + 3] : NULL;
            nsplit++;
            i += 3;
        } else if (is_idx && !strcmp(a, "--classes") && more) {
            o.num_classes = split_list(argv[++i], classes, MAXC);
            o.classes = (const char *const *)classes;
        } else if (is_images && !strcmp(a, "--split") && more) o.split = argv[++i];
        else if (is_images && !strcmp(a, "--channels") && more) {
            if (parse_int(argv[++i], 0, 3, &v) || v == 2) return bad_usage("--channels takes 0, 1 or 3, not '%s'", argv[i]);
            o.channels = (int)v;
        } else if (is_text && !strcmp(a, "--val-fraction") && more) {
            char *end;
            o.val_fraction = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(o.val_fraction >= 0 && o.val_fraction < 1))
                return bad_usage("--val-fraction takes a number in [0, 1), not '%s'", argv[i]);
        } else if (is_text && !strcmp(a, "--vocab-from") && more) vocab_from = argv[++i];
        else if (is_text && !strcmp(a, "--map") && more) {
            if (o.nmaps == 64) return bad_usage("%s", "more than 64 --map rules");
            const char *eq = strrchr(argv[i + 1], '=');
            if (!eq || eq == argv[i + 1])
                return bad_usage("--map takes FROM=TO (the characters FROM become the character "
                                 "TO, or are dropped when TO is empty), not '%s'", argv[i + 1]);
            maps[o.nmaps++] = argv[++i];
            o.maps = maps;
        } else if (a[0] == '-' && a[1]) return bad_usage("unknown or incomplete option '%s'", a);
        else if (!out) out = a;
        else if (!in && !is_idx) in = a;
        else return bad_usage("unexpected argument '%s'", a);
    }
    if (!out) return bad_usage("%s needs an output file", cmd);
    int r;
    if (is_idx) {
        if (!nsplit) return bad_usage("%s", "idx needs at least one --split NAME IMAGES LABELS");
        r = lz_convert_idx(out, nsplit, sname, simg, slab, &o);
    } else {
        if (!in) return bad_usage("%s needs an input", cmd);
        if (vocab_from) {
            o.vocab_size = lz_text_vocab_read(vocab_from, &vocab);
            if (o.vocab_size < 0) return failed();
            o.vocab = (const char *const *)vocab;
        }
        o.stats = &st;
        r = is_images ? lz_convert_images(out, in, &o) : lz_convert_text(out, in, &o);
    }
    if (!r && is_text) print_text_stats(&st, vocab_from, o.vocab_size);
    free(vocab);
    if (r) return failed();
    printf("wrote %s\n", out);
    return 0;
}
