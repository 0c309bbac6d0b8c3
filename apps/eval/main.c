/* eval CHECKPOINT [--data FILE] [--split NAME] [--batch-size N] [--out PATH] [--json]
 *      [--config FILE] [--image FILE.png]
 *      [--prompt TEXT [--tokens N] [--temperature T] [--top-k K] [--seed S] [--no-cache]]
 *
 * Language models (model.type transformer, trained on text): without --prompt, the loss on a
 * split in nats per token, its perplexity and bits per character; with --prompt, generated
 * text after the prompt (key/value cache: one position's work per token), then the speed on
 * stderr. The vocabulary comes from the checkpoint.
 *
 * Rebuilds the model from the config stored in a checkpoint written by train (or from
 * --config), loads its parameters and evaluates it on a split of its data set: loss,
 * accuracy, per-class precision/recall/F1, the confusion matrix (printed, and drawn into
 * confusion.png beside the checkpoint or at --out). --image classifies one PNG and prints
 * the top 3 classes. --json prints the metrics as one JSON object.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage/input. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "leibniz.h"
#include "../preflight.h"
#include "io/model.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static struct {
    const char *ckpt_path, *data, *split, *out, *config, *image;
    const char *base;      /* a LoRA adapter checkpoint: its base (--base, or as stored) */
    int64_t batch_size;
    bool json;
    /* text */
    const char *prompt;
    const char *device;
    int64_t tokens;
    double temperature;
    int64_t top_k, seed;
    bool no_cache, text;
    int vocab_size;
    const char **vocab;
    lz_ckpt *ckpt, *base_ckpt;
    lz_config *cfg;
    lz_module *model;
    lz_model_shape shape;
    char **classes;    /* from the checkpoint (names for --image) */
    char *classes_text;
} E;

static _Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("eval: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

#define USAGE "eval CHECKPOINT [--data FILE] [--split NAME] [--batch-size N] [--out PATH] " \
              "[--json] [--config FILE] [--base FILE] [--image FILE.png] [--device D] " \
              "[--prompt TEXT [--tokens N] " \
              "[--temperature T] [--top-k K] [--seed S] [--no-cache]]"

static _Noreturn void usage(int code) {
    if (code) {
        fprintf(stderr, "usage: %s (eval --help says more)\n", USAGE);
        exit(code);
    }
    printf("usage: %s\n", USAGE);
    printf("Evaluates a checkpoint written by train (a run folder means its best.h5).\n"
            "  --data FILE      data set (default: the config's data.path)\n"
            "  --split NAME     split (default: the config's data.val_split, else test)\n"
            "  --batch-size N   examples per batch\n"
            "  --out PATH       where confusion.png goes (a folder, or a .png path)\n"
            "  --json           print the metrics as one JSON object\n"
            "  --config FILE    rebuild the model from FILE instead of the checkpoint's config\n"
            "  --base FILE      for a LoRA adapter checkpoint (adapter.h5): the base checkpoint\n"
            "                   (default: the one it was trained from, finetune.init_from)\n"
            "  --image FILE     classify one PNG (resized to the model's input) and print the top 3\n"
            "  --device D       cuda, cpu or auto (default: the GPU when there is one)\n"
            "Language models: without --prompt, the loss (nats/token), perplexity and bits per\n"
            "character on the split; with --prompt, the prompt and generated text:\n"
            "  --prompt TEXT    text to continue (characters of the model's vocabulary)\n"
            "  --tokens N       tokens to generate (default 500)\n"
            "  --temperature T  logits / T before sampling; 0: always the likeliest (default 0.8)\n"
            "  --top-k K        sample among the K likeliest tokens; 0: all (default 40)\n"
            "  --seed S         the same seed gives the same text (default 1)\n"
            "  --no-cache       recompute the whole window for every token (slow; for checking)\n");
    exit(0);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
        else if (!strcmp(a, "--json")) E.json = true;
        else if (!strcmp(a, "--data")) val = &E.data;
        else if (!strcmp(a, "--split")) val = &E.split;
        else if (!strcmp(a, "--out")) val = &E.out;
        else if (!strcmp(a, "--config")) val = &E.config;
        else if (!strcmp(a, "--base")) val = &E.base;
        else if (!strcmp(a, "--image")) val = &E.image;
        else if (!strcmp(a, "--prompt")) val = &E.prompt;
        else if (!strcmp(a, "--device")) val = &E.device;
        else if (!strcmp(a, "--no-cache")) E.no_cache = true;
        else if (!strcmp(a, "--batch-size") || !strcmp(a, "--tokens") || !strcmp(a, "--top-k") ||
                 !strcmp(a, "--seed")) {
            if (++i == argc) die(EXIT_USAGE, "%s needs a number", a);
            char *end;
            errno = 0;
            long long v = strtoll(argv[i], &end, 10);
            bool pos = !strcmp(a, "--batch-size") || !strcmp(a, "--tokens");
            if (*end || end == argv[i] || errno || v < (pos ? 1 : 0))
                die(EXIT_USAGE, "%s: expected a %s integer, got '%s'", a,
                    pos ? "positive" : "non-negative", argv[i]);
            if (!strcmp(a, "--batch-size")) E.batch_size = v;
            else if (!strcmp(a, "--tokens")) E.tokens = v;
            else if (!strcmp(a, "--seed")) E.seed = v;
            else E.top_k = v;
        } else if (!strcmp(a, "--temperature")) {
            if (++i == argc) die(EXIT_USAGE, "--temperature needs a number");
            char *end;
            errno = 0;
            double v = strtod(argv[i], &end);
            if (*end || end == argv[i] || errno || !(v >= 0) || !isfinite(v))
                die(EXIT_USAGE, "--temperature: expected a number >= 0, got '%s'", argv[i]);
            E.temperature = v;
        } else if (a[0] == '-' && a[1]) die(EXIT_USAGE, "unknown option '%s' (see eval --help)", a);
        else if (!E.ckpt_path) E.ckpt_path = a;
        else die(EXIT_USAGE, "more than one checkpoint given ('%s' and '%s')", E.ckpt_path, a);
        if (val) {
            if (++i == argc) die(EXIT_USAGE, "%s needs a value", a);
            *val = argv[i];
        }
    }
    if (!E.ckpt_path) usage(EXIT_USAGE);
}

/* s as a JSON string (quotes and escapes) into a static buffer of 4 rotating slots. */
static const char *js(const char *s) {
    static char bufs[4][8192];
    static int k;
    char *b = bufs[k++ & 3], *o = b;
    *o++ = '"';
    for (; *s && o < b + sizeof bufs[0] - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
        else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
        else *o++ = (char)c;
    }
    *o++ = '"';
    *o = 0;
    return b;
}

/* A number for JSON: null when not finite. Static buffer of 4 rotating slots. */
static const char *num(double v) {
    static char bufs[4][32];
    static int k;
    char *b = bufs[k++ & 3];
    if (isfinite(v)) snprintf(b, sizeof bufs[0], "%.9g", v);
    else snprintf(b, sizeof bufs[0], "null");
    return b;
}

static int64_t ckpt_int(const char *key) {
    int64_t v;
    if (lz_ckpt_get_int(E.ckpt, key, &v))
        die(EXIT_USAGE, "%s: not a checkpoint written by train (%s)", E.ckpt_path, lz_error());
    return v;
}

/* Opens the checkpoint, rebuilds its model and loads the parameters. */
static void load_model(void) {
    static char buf[4200];
    struct stat st;
    if (stat(E.ckpt_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(buf, sizeof buf, "%s/best.h5", E.ckpt_path);
        E.ckpt_path = buf;
    }
    E.ckpt = lz_ckpt_open(E.ckpt_path);
    if (!E.ckpt) die(EXIT_USAGE, "%s", lz_error());
    if (E.config) {
        if (access(E.config, R_OK) != 0)
            die(EXIT_USAGE, "%s: cannot read the config: %s", E.config, strerror(errno));
        E.cfg = lz_config_load(E.config, 0, NULL);
    } else {
        const char *text = lz_ckpt_get_str(E.ckpt, "config");
        if (!text)
            die(EXIT_USAGE, "%s: not a checkpoint written by train (no config in it; give one "
                "with --config)", E.ckpt_path);
        E.cfg = lz_config_load_string(text, E.ckpt_path, 0, NULL);
    }
    if (!E.cfg) die(EXIT_USAGE, "%s", lz_error());
    E.shape = (lz_model_shape){(int)ckpt_int("input_channels"), (int)ckpt_int("input_height"),
                               (int)ckpt_int("input_width"), (int)ckpt_int("num_classes")};
    size_t vn = 0;
    const char *vb = lz_ckpt_has(E.ckpt, "vocab") ? lz_ckpt_get_bytes(E.ckpt, "vocab", &vn) : NULL;
    if (vb) {   /* a language model: token texts, each followed by a NUL */
        E.text = true;
        E.vocab_size = E.shape.num_classes;
        E.vocab = calloc((size_t)E.vocab_size + 1, sizeof *E.vocab);
        size_t at = 0;
        for (int i = 0; i < E.vocab_size; i++) {
            if (at >= vn) die(EXIT_USAGE, "%s: the vocabulary is truncated", E.ckpt_path);
            E.vocab[i] = vb + at;
            at += strnlen(vb + at, vn - at) + 1;
        }
    }
    const char *cl = E.text ? NULL : lz_ckpt_get_str(E.ckpt, "classes");
    E.classes = calloc((size_t)E.shape.num_classes, sizeof *E.classes);
    E.classes_text = strdup(cl ? cl : "");
    char *p = E.classes_text;
    for (int i = 0; i < E.shape.num_classes; i++) {
        E.classes[i] = p && *p ? p : NULL;
        char *nl = p ? strchr(p, '\n') : NULL;
        if (nl) *nl = 0;
        p = nl ? nl + 1 : NULL;
    }
    E.model = lz_model_build(E.cfg, &E.shape, lz_key_new(0));
    if (!E.model || lz_model_apply_lora(E.model, E.cfg, lz_key_new(0)))
        die(EXIT_USAGE, "%s: cannot rebuild the model: %s", E.ckpt_path, lz_error());
    if (lz_ckpt_has(E.ckpt, "lora_base")) {   /* adapters only (train's adapter.h5): on its base */
        if (!E.base) E.base = lz_ckpt_get_str(E.ckpt, "lora_base");
        if (!E.base || access(E.base, F_OK) != 0)
            die(EXIT_USAGE, "%s holds LoRA adapters only; their base checkpoint %s does not exist "
                "(give it with --base FILE)", E.ckpt_path, E.base ? E.base : "(not recorded)");
        E.base_ckpt = lz_ckpt_open(E.base);
        if (!E.base_ckpt) die(EXIT_USAGE, "--base: %s", lz_error());
        /* the adapters were trained on the base's token ids: the vocabularies must agree */
        size_t bn = 0;
        const char *bv = lz_ckpt_has(E.base_ckpt, "vocab") ? lz_ckpt_get_bytes(E.base_ckpt, "vocab", &bn) : NULL;
        if (E.text != (bv != NULL) || (bv && (bn != vn || memcmp(bv, vb, vn))))
            die(EXIT_USAGE, "%s: the base checkpoint %s has another vocabulary than its adapters",
                E.ckpt_path, E.base);
        if (lz_model_load_adapted(E.model, E.base_ckpt, E.ckpt)) die(EXIT_USAGE, "%s", lz_error());
    } else if (E.base) {
        die(EXIT_USAGE, "--base: %s is not a LoRA adapter checkpoint (train's adapter.h5)", E.ckpt_path);
    } else if (lz_model_load(E.model, E.ckpt))
        die(EXIT_USAGE, "the checkpoint does not match the model of %s: %s",
            E.config ? E.config : "its config", lz_error());
    lz_module_train(E.model, false);
}

static const char *class_name(int i, char *buf, size_t n) {
    if (i >= 0 && i < E.shape.num_classes && E.classes[i]) return E.classes[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

/* ---- one image ---- */

static int classify_image(void) {
    lz_image img;
    if (access(E.image, R_OK) != 0)
        die(EXIT_USAGE, "%s: cannot read the image: %s", E.image, strerror(errno));
    if (lz_png_read(E.image, &img)) die(EXIT_USAGE, "%s", lz_error());
    int C = E.shape.channels, H = E.shape.height, W = E.shape.width;
    if (C != 1 && C != 3) die(EXIT_USAGE, "the model takes %d channels; --image needs 1 or 3", C);
    lz_model_loader_opts lo;
    if (lz_model_loader_options(E.cfg, false, 1, &lo)) die(EXIT_USAGE, "%s", lz_error());
    float *x = malloc((size_t)C * H * W * sizeof *x);
    /* bilinear resize (pixel centres aligned), gray <-> RGB as the model needs */
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                double sy = ((double)y + 0.5) * img.height / H - 0.5, sx = ((double)xx + 0.5) * img.width / W - 0.5;
                int y0 = (int)floor(sy), x0 = (int)floor(sx);
                double fy = sy - y0, fx = sx - x0, v = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int py = y0 + dy < 0 ? 0 : y0 + dy >= img.height ? img.height - 1 : y0 + dy;
                        int px = x0 + dx < 0 ? 0 : x0 + dx >= img.width ? img.width - 1 : x0 + dx;
                        const uint8_t *q = img.pixels + ((size_t)py * img.width + px) * img.channels;
                        double g = img.channels == 1 ? q[0]
                                 : C == 1 ? 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2] : q[c];
                        v += g * (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
                    }
                v /= 255.0;
                if (lo.o.nnorm) {
                    int k = lo.o.nnorm == 1 ? 0 : c;
                    v = (v - lo.mean[k]) / lo.std[k];
                }
                x[((size_t)c * H + y) * W + xx] = (float)v;
            }
    lz_image_free(&img);
    lz_pool_push();
    int64_t shape[4] = {1, C, H, W};
    lz_array *in = lz_from_data(x, 4, shape, LZ_F32);
    free(x);
    lz_array *p = lz_softmax(lz_module_forward(E.model, in, NULL), -1), *vals = NULL, *idx = NULL;
    int k = E.shape.num_classes < 3 ? E.shape.num_classes : 3;
    if (!p || lz_topk(p, k, -1, &vals, &idx) || LZ_EVAL(vals, idx))
        die(EXIT_RUNTIME, "%s: %s", E.image, lz_error());
    float pv[3];
    int64_t iv[3];
    lz_to_float(vals, pv, k);
    lz_to_int(idx, iv, k);
    char b[32];
    if (E.json) {
        printf("{\"image\":%s,\"top\":[", js(E.image));
        for (int i = 0; i < k; i++)
            printf("%s{\"class\":%lld,\"name\":%s,\"probability\":%.6f}", i ? "," : "",
                   (long long)iv[i], js(class_name((int)iv[i], b, sizeof b)), pv[i]);
        printf("]}\n");
    } else {
        printf("%s:\n", E.image);
        for (int i = 0; i < k; i++)
            printf("  %d. %-12s %6.2f%%\n", i + 1, class_name((int)iv[i], b, sizeof b), 100 * pv[i]);
    }
    lz_pool_pop();
    return 0;
}

/* ---- language models ---- */

/* The prompt as token ids: at each point the longest vocabulary entry that matches. */
static int64_t encode(const char *text, int32_t *out) {
    int64_t n = 0;
    for (const char *p = text; *p;) {
        int best = -1;
        size_t bl = 0;
        for (int i = 0; i < E.vocab_size; i++) {
            size_t l = strlen(E.vocab[i]);
            if (l > bl && !strncmp(p, E.vocab[i], l)) { best = i; bl = l; }
        }
        if (best < 0) {
            int cl = 1;
            while (p[cl] && ((unsigned char)p[cl] & 0xC0) == 0x80) cl++;
            die(EXIT_USAGE, "--prompt: the character '%.*s' (at byte %lld) is not in the model's "
                "vocabulary of %d characters", cl, p, (long long)(p - text), E.vocab_size);
        }
        out[n++] = best;
        p += bl;
    }
    return n;
}

static int generate(void) {
    if (!E.prompt[0]) die(EXIT_USAGE, "--prompt: give at least one character");
    int32_t *ids = malloc((strlen(E.prompt) + 1) * sizeof *ids);
    int32_t *out = malloc((size_t)E.tokens * sizeof *out);
    if (!ids || !out) die(EXIT_RUNTIME, "out of memory");
    int64_t n = encode(E.prompt, ids);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lz_model_generate(E.model, ids, n, E.tokens, E.temperature, (int)E.top_k,
                          (uint64_t)E.seed, !E.no_cache, out))
        die(EXIT_RUNTIME, "%s", lz_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (E.json) {
        size_t len = strlen(E.prompt) + 1;
        for (int64_t i = 0; i < E.tokens; i++) len += strlen(E.vocab[out[i]]);
        char *text = calloc(len, 1);
        strcpy(text, E.prompt);
        for (int64_t i = 0; i < E.tokens; i++) strcat(text, E.vocab[out[i]]);
        printf("{\"checkpoint\":%s,\"prompt\":%s,\"tokens\":%lld,\"seconds\":%s,"
               "\"tokens_per_s\":%s,\"kv_cache\":%s,\"text\":", js(E.ckpt_path), js(E.prompt),
               (long long)E.tokens, num(dt), num(dt > 0 ? (double)E.tokens / dt : 0),
               E.no_cache ? "false" : "true");
        /* the text may exceed js's buffer: write it escaped here */
        putchar('"');
        for (const char *p = text; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '"' || c == '\\') printf("\\%c", c);
            else if (c < 0x20) printf("\\u%04x", c);
            else putchar(c);
        }
        printf("\"}\n");
        free(text);
    } else {
        fputs(E.prompt, stdout);
        for (int64_t i = 0; i < E.tokens; i++) fputs(E.vocab[out[i]], stdout);
        putchar('\n');
        fflush(stdout);
        fprintf(stderr, "eval: %lld tokens in %.2f s: %.1f tokens/s (%s)\n", (long long)E.tokens,
                dt, dt > 0 ? (double)E.tokens / dt : 0.0,
                E.no_cache ? "whole window recomputed per token" : "key/value cache");
    }
    free(ids);
    free(out);
    return 0;
}

/* Loss, perplexity and bits per character of a text split. */
static int evaluate_text(const char *data, const char *split) {
    lz_model_loader_opts lo;
    if (lz_model_loader_options(E.cfg, false, E.batch_size, &lo)) die(EXIT_USAGE, "%s", lz_error());
    lo.o.prefetch = 1;
    int64_t ctx = 0;
    if (lz_ckpt_get_int(E.ckpt, "context", &ctx)) ctx = lz_model_gpt(E.model)->context;
    lo.o.context = ctx;
    lz_loader *l = lz_loader_open(data, split, &lo.o);
    if (!l) die(EXIT_USAGE, "%s", lz_error());
    const lz_data_info *in = lz_loader_info(l);
    if (in->kind != LZ_DATA_TEXT || in->vocab_size != E.vocab_size)
        die(EXIT_USAGE, "%s: split '%s' is not text with the model's vocabulary of %d tokens",
            data, split, E.vocab_size);
    for (int i = 0; i < E.vocab_size; i++)
        if (strcmp(in->vocab[i], E.vocab[i]))
            die(EXIT_USAGE, "%s: the vocabulary differs from the model's at token %d", data, i);
    lz_model_metrics r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lz_model_evaluate(E.model, E.cfg, l, E.vocab_size, 0, NULL, &r) < 0)
        die(EXIT_RUNTIME, "%s", lz_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    lz_loader_close(l);
    double bpc = r.loss / log(2.0), ppl = exp(r.loss), acc = r.n ? (double)r.correct / (double)r.n : NAN;
    if (E.json) {
        printf("{\"checkpoint\":%s,", js(E.ckpt_path));
        if (E.base_ckpt) printf("\"lora_base\":%s,", js(E.base));
        printf("\"data\":%s,\"split\":%s,\"tokens\":%lld,\"loss\":%s,"
               "\"perplexity\":%s,\"bits_per_char\":%s,\"accuracy\":%s,\"tokens_per_s\":%s}\n",
               js(data), js(split), (long long)r.n, num(r.loss), num(ppl), num(bpc),
               num(acc), num(dt > 0 ? (double)r.n / dt : 0));
    } else {
        printf("checkpoint %s\n", E.ckpt_path);
        if (E.base_ckpt) printf("LoRA adapters on the base checkpoint %s\n", E.base);
        printf("data %s, split %s: %lld tokens (windows of %lld)\n"
               "loss %.4f nats/char\nperplexity %.3f\nbits per character %.4f\n"
               "next-character accuracy %.2f%%\n(%.0f tokens/s)\n", data, split,
               (long long)r.n, (long long)ctx, r.loss, ppl, bpc, 100 * acc,
               dt > 0 ? (double)r.n / dt : 0.0);
        double rep;
        if (lz_ckpt_has(E.ckpt, "val_loss") && !lz_ckpt_get_float(E.ckpt, "val_loss", &rep))
            printf("(train reported loss %.4f for this checkpoint on its validation split)\n", rep);
    }
    lz_model_metrics_free(&r);
    return 0;
}

/* ---- a split ---- */

static void confusion_path(char *buf, size_t n) {
    if (E.out) {
        size_t l = strlen(E.out);
        if (l > 4 && !strcmp(E.out + l - 4, ".png")) snprintf(buf, n, "%s", E.out);
        else snprintf(buf, n, "%s/confusion.png", E.out);
        return;
    }
    const char *slash = strrchr(E.ckpt_path, '/');
    if (slash) snprintf(buf, n, "%.*s/confusion.png", (int)(slash - E.ckpt_path), E.ckpt_path);
    else snprintf(buf, n, "confusion.png");
}

/* The validation accuracy train stored with the checkpoint: 1 measured at the checkpoint's
 * own step, 2 measured at an earlier step (a checkpoint written between validations), 0 none.
 * Checkpoints without "accuracy_step" (older ones) count as 1. */
static int reported_accuracy(double *acc) {
    if (lz_ckpt_get_float(E.ckpt, "accuracy", acc) || !isfinite(*acc)) { lz_error_clear(); return 0; }
    int64_t at, step;
    if (!lz_ckpt_has(E.ckpt, "accuracy_step")) return 1;
    if (lz_ckpt_get_int(E.ckpt, "accuracy_step", &at) || lz_ckpt_get_int(E.ckpt, "step", &step)) {
        lz_error_clear();
        return 0;
    }
    return at < 0 ? 0 : at == step ? 1 : 2;
}

static int evaluate_split(void) {
    const char *data = E.data ? E.data : lz_config_str(E.cfg, "data.path");
    const char *split = E.split ? E.split
                      : lz_config_has(E.cfg, "data.val_split") ? lz_config_str(E.cfg, "data.val_split")
                                                               : "test";
    if (access(data, F_OK) != 0)
        die(EXIT_USAGE, "data file %s%s does not exist", data, E.data ? "" : " (the config's data.path)");
    if (E.text) return evaluate_text(data, split);
    lz_model_loader_opts lo;
    if (lz_model_loader_options(E.cfg, false, E.batch_size, &lo)) die(EXIT_USAGE, "%s", lz_error());
    lo.o.prefetch = 1;
    lz_loader *l = lz_loader_open(data, split, &lo.o);
    if (!l) die(EXIT_USAGE, "%s", lz_error());
    const lz_data_info *in = lz_loader_info(l);
    if (in->kind != LZ_DATA_IMAGES || !in->has_labels)
        die(EXIT_USAGE, "%s: split '%s' is not a labelled image split", data, split);
    if (in->channels != E.shape.channels || in->height != E.shape.height ||
        in->width != E.shape.width || in->num_classes != E.shape.num_classes)
        die(EXIT_USAGE, "%s: split '%s' has %dx%dx%d images with %d classes, but the model of %s "
            "takes %dx%dx%d images with %d classes", data, split, in->channels, in->height,
            in->width, in->num_classes, E.ckpt_path, E.shape.channels, E.shape.height,
            E.shape.width, E.shape.num_classes);
    char png0[4300], dir[4300];
    confusion_path(png0, sizeof png0);
    /* a folder that cannot take the file is the user's to fix (exit 2), found before the work */
    snprintf(dir, sizeof dir, "%s", png0);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0)
        die(EXIT_USAGE, "cannot write %s: the folder %s %s%s", png0, dir,
            stat(dir, &st) != 0 ? "does not exist" : !S_ISDIR(st.st_mode) ? "is not a folder"
                                                   : "is not writable",
            E.out ? " (--out)" : "");
    lz_model_metrics r;
    if (lz_model_evaluate(E.model, E.cfg, l, E.shape.num_classes, 0, NULL, &r) < 0)
        die(EXIT_RUNTIME, "%s", lz_error());
    lz_loader_close(l);
    int K = r.num_classes;
    double acc = r.n ? (double)r.correct / (double)r.n : NAN;
    double *prec = calloc((size_t)K, sizeof *prec), *rec = calloc((size_t)K, sizeof *rec),
           *f1 = calloc((size_t)K, sizeof *f1);
    int64_t *support = calloc((size_t)K, sizeof *support);
    for (int c = 0; c < K; c++) {
        int64_t tp = r.confusion[c * K + c], pred = 0, truth = 0;
        for (int j = 0; j < K; j++) { pred += r.confusion[j * K + c]; truth += r.confusion[c * K + j]; }
        prec[c] = pred ? (double)tp / (double)pred : 0;
        rec[c] = truth ? (double)tp / (double)truth : 0;
        f1[c] = prec[c] + rec[c] > 0 ? 2 * prec[c] * rec[c] / (prec[c] + rec[c]) : 0;
        support[c] = truth;
    }
    char png[4300], b[32];
    confusion_path(png, sizeof png);
    lz_image img = {0};
    const char **labels = calloc((size_t)K, sizeof *labels);
    char (*lb)[32] = calloc((size_t)K, sizeof *lb);
    for (int c = 0; c < K; c++) labels[c] = class_name(c, lb[c], sizeof lb[c]);
    char title[256];
    snprintf(title, sizeof title, "confusion (%s, %.2f%%)", split, 100 * acc);
    int prc = lz_plot_heatmap(&img, title, K, r.confusion, labels);
    if (!prc) prc = lz_png_write(png, &img);
    lz_image_free(&img);
    if (prc) die(EXIT_RUNTIME, "cannot write %s: %s", png, lz_error());
    if (E.json) {
        printf("{\"checkpoint\":%s,\"data\":%s,\"split\":%s,\"examples\":%lld,"
               "\"correct\":%lld,\"loss\":%s,\"accuracy\":%.9g,", js(E.ckpt_path), js(data),
               js(split), (long long)r.n, (long long)r.correct, num(r.loss), acc);
        double rep;
        if (reported_accuracy(&rep) == 1) printf("\"reported_accuracy\":%s,", num(rep));
        printf("\"classes\":[");
        for (int c = 0; c < K; c++)
            printf("%s{\"name\":%s,\"precision\":%.6f,\"recall\":%.6f,\"f1\":%.6f,\"support\":%lld}",
                   c ? "," : "", js(labels[c]), prec[c], rec[c], f1[c], (long long)support[c]);
        printf("],\"confusion\":[");
        for (int i = 0; i < K; i++) {
            printf("%s[", i ? "," : "");
            for (int j = 0; j < K; j++) printf("%s%lld", j ? "," : "", (long long)r.confusion[i * K + j]);
            printf("]");
        }
        /* a digest of the parameters and buffers, so scripts can tell identical models apart */
        uint64_t h = 1469598103934665603ull;
        lz_named_list pl;
        if (!lz_module_collect(E.model, LZ_PARAMS | LZ_BUFFERS, &pl)) {
            for (int i = 0; i < pl.n; i++) {
                const uint8_t *d = lz_data(*pl.items[i].slot);
                size_t nb = (size_t)lz_size(*pl.items[i].slot) * lz_dtype_size(lz_dtype_of(*pl.items[i].slot));
                for (size_t j = 0; d && j < nb; j++) h = (h ^ d[j]) * 1099511628211ull;
            }
            lz_named_list_free(&pl);
        }
        printf("],\"params_digest\":\"%016llx\",\"confusion_png\":%s}\n", (unsigned long long)h, js(png));
    } else {
        printf("checkpoint %s\ndata %s, split %s: %lld examples\n", E.ckpt_path, data, split,
               (long long)r.n);
        printf("loss %.4f\naccuracy %.2f%% (%lld/%lld)\n", r.loss, 100 * acc,
               (long long)r.correct, (long long)r.n);
        double rep;
        int64_t at = -1;
        int kind = reported_accuracy(&rep);
        if (kind == 1) printf("(train reported %.2f%% for this checkpoint)\n", 100 * rep);
        else if (kind == 2 && !lz_ckpt_get_int(E.ckpt, "accuracy_step", &at))
            printf("(train's last validation before this checkpoint, at step %lld, gave %.2f%%)\n",
                   (long long)at, 100 * rep);
        printf("\n");
        printf("%-14s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
        for (int c = 0; c < K; c++)
            printf("%-14.14s %9.4f %9.4f %9.4f %9lld\n", labels[c], prec[c], rec[c], f1[c],
                   (long long)support[c]);
        printf("\nconfusion matrix (rows: true class, columns: predicted)\n%-10s", "");
        for (int j = 0; j < K; j++) printf(" %6.6s", labels[j]);
        printf("\n");
        for (int i = 0; i < K; i++) {
            printf("%-10.10s", labels[i]);
            for (int j = 0; j < K; j++) printf(" %6lld", (long long)r.confusion[i * K + j]);
            printf("\n");
        }
        printf("\nwrote %s\n", png);
    }
    (void)b;
    free(prec); free(rec); free(f1); free(support); free(labels); free(lb);
    lz_model_metrics_free(&r);
    return 0;
}

/* OpenMP threads that wait by spinning (libgomp's default) stall whenever another process
 * holds a core: on a 2-core machine with a load of ~1, the MNIST MLP step measured 3.5x
 * slower than with passive waiting (and up to 25x at higher loads), which the kernels here do
 * not need. libgomp reads OMP_WAIT_POLICY when it starts, so set it and run again, unless the
 * user chose a policy. */
static void passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);   /* returns only on failure: then go on as we are */
}

int main(int argc, char **argv) {
    passive_openmp(argv);
    E.tokens = 500;
    E.temperature = 0.8;
    E.top_k = 40;
    E.seed = 1;
    parse_args(argc, argv);
    const char *dev = E.device ? E.device : "auto";
    if (strcmp(dev, "auto") && strcmp(dev, "cpu") && strcmp(dev, "cuda"))
        die(EXIT_USAGE, "--device: expected auto, cpu or cuda, got '%s'", dev);
    bool gpu = !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && lz_gpu_available());
    if (gpu && lz_set_default_device(LZ_GPU))
        die(EXIT_USAGE, "--device cuda: there is no GPU: %s", lz_gpu_status());
    if (!gpu) lz_set_default_device(LZ_CPU);
    load_model();
    if (E.prompt && !E.text) die(EXIT_USAGE, "--prompt needs a language model; %s is not one", E.ckpt_path);
    if (E.image && E.text) die(EXIT_USAGE, "--image needs an image classifier; %s is a language model", E.ckpt_path);
    int rc = E.prompt ? generate() : E.image ? classify_image() : evaluate_split();
    lz_module_free(E.model);
    lz_config_free(E.cfg);
    lz_ckpt_close(E.ckpt);
    lz_ckpt_close(E.base_ckpt);
    free(E.classes);
    free(E.classes_text);
    free(E.vocab);
    return rc;
}
