/* train: fine-tuning setup (the finetune section): weights from finetune.init_from by name,
 * a re-initialised head, LoRA adapters, frozen parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train.h"

/* A token for a message: a newline as \n. */
static const char *shown(const char *tok) { return strcmp(tok, "\n") ? tok : "\\n"; }

/* Text: the data must be in the checkpoint's vocabulary, token for token (the embedding rows
 * are the checkpoint's tokens). */
static void check_vocab(lz_ckpt *c, const char *path) {
    if (!T.text) return;
    size_t nb = 0;
    const char *vb = lz_ckpt_has(c, "vocab") ? lz_ckpt_get_bytes(c, "vocab", &nb) : NULL;
    if (!vb)
        die(EXIT_USAGE, "finetune.init_from %s is not a language model's checkpoint (it has no "
            "vocabulary), but %s is text", path, T.data_path);
    int n = 0;
    for (size_t i = 0; i < nb; i++) n += !vb[i];
    int first = -1;
    size_t at = 0;
    for (int i = 0; i < n && i < T.shape.num_classes && first < 0; i++) {
        if (strcmp(vb + at, T.classes[i])) first = i;
        at += strlen(vb + at) + 1;
    }
    if (first < 0 && n == T.shape.num_classes) return;
    char diff[160] = "";
    if (first >= 0) {
        const char *a = vb;
        for (int i = 0; i < first; i++) a += strlen(a) + 1;
        snprintf(diff, sizeof diff, ", first at token %d ('%s' in the checkpoint, '%s' in the data)",
                 first, shown(a), shown(T.classes[first]));
    }
    die(EXIT_USAGE, "%s has a vocabulary of %d tokens that differs from the %d of "
        "finetune.init_from %s%s; convert the text into the checkpoint's vocabulary with "
        "'lz-data text OUT.h5 TEXT --vocab-from %s'", T.data_path, T.shape.num_classes, n, path,
        diff, path);
}

/* Loads the parameters and buffers of finetune.init_from by name, except those of the module
 * finetune.head.name, which keep their fresh initialisation. */
static void init_from(const char *path) {
    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) die(EXIT_USAGE, "finetune.init_from: %s", lz_error());
    check_vocab(c, path);
    const char *head = lz_config_has(T.cfg, "finetune.head.name") ? lz_config_str(T.cfg, "finetune.head.name")
                                                                   : NULL;
    bool strict = lz_config_bool(T.cfg, "finetune.strict");
    lz_named_list own;
    if (lz_module_collect(T.model, LZ_PARAMS | LZ_BUFFERS, &own)) die(EXIT_USAGE, "%s", lz_error());
    int64_t np = 0, nb = 0;
    const char *const *pn = lz_ckpt_names(c, "params", &np);
    const char *const *bn = pn ? lz_ckpt_names(c, "buffers", &nb) : NULL;
    if (!pn || !bn) die(EXIT_USAGE, "finetune.init_from: %s", lz_error());
    int cap = (int)(np + nb) + own.n + 1, n = 0, headn = 0;
    const char **names = calloc((size_t)cap, sizeof *names);
    lz_array **arrays = calloc((size_t)cap, sizeof *arrays);
    lz_pool_push();
    for (int64_t i = 0; i < np + nb; i++) {
        const char *name = i < np ? pn[i] : bn[i - np];
        if (head && lz_name_match(head, name)) continue;
        names[n] = name;
        arrays[n] = lz_ckpt_get(c, i < np ? "params" : "buffers", name);
        if (!arrays[n++]) die(EXIT_USAGE, "finetune.init_from: %s", lz_error());
    }
    /* the head "loads" its own fresh values, so a strict load does not miss them */
    for (int i = 0; head && i < own.n; i++)
        if (lz_name_match(head, own.items[i].name)) {
            names[n] = own.items[i].name;
            arrays[n++] = *own.items[i].slot;
            headn++;
        }
    if (head && headn == 0)
        die(EXIT_USAGE, "finetune.head.name '%s' matches no parameter of the model", head);
    char *report = NULL;
    int loaded = lz_module_load(T.model, n, names, arrays, strict, &report);
    lz_pool_pop();
    if (loaded < 0) {
        /* one line: the report's lines joined by "; " */
        char *joined = report ? malloc(2 * strlen(report) + 1) : NULL, *o = joined;
        for (const char *p = report; joined && *p; p++) {
            if (*p != '\n') *o++ = *p;
            else if (p[1]) { *o++ = ';'; *o++ = ' '; }
        }
        if (o) *o = 0;
        report = joined;
        die(EXIT_USAGE, "finetune.init_from %s does not fit the model (finetune.strict): %s", path,
            report && report[0] ? report : lz_error());
    }
    printf("finetune: loaded %d arrays from %s%s%s\n", loaded - headn, path,
           head ? "; re-initialised " : "", head ? head : "");
    if (report) printf("finetune: not loaded (finetune.strict is false):\n%s", report);
    free(report);
    free(names);
    free(arrays);
    lz_named_list_free(&own);
    lz_ckpt_close(c);
}

/* 1234567 as "1,234,567". */
static const char *group_digits(int64_t v, char *buf, size_t n) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    size_t o = 0;
    for (int i = 0; i < k && o + 2 < n; i++) {
        if (i && tmp[i - 1] != '-' && (k - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

void finetune(lz_key key) {
    if (lz_config_has(T.cfg, "finetune.head.out") &&
        lz_config_int(T.cfg, "finetune.head.out") != T.shape.num_classes)
        die(EXIT_USAGE, "finetune.head.out is %lld but %s has %d classes",
            (long long)lz_config_int(T.cfg, "finetune.head.out"), T.data_path, T.shape.num_classes);
    if (lz_config_has(T.cfg, "finetune.init_from")) init_from(lz_config_str(T.cfg, "finetune.init_from"));
    if (lz_model_apply_lora(T.model, T.cfg, key)) die(EXIT_USAGE, "%s", lz_error());
    int n = lz_config_len(T.cfg, "finetune.freeze");
    char p[64];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "finetune.freeze.%d", i);
        const char *pattern = lz_config_str(T.cfg, p);
        if (lz_module_freeze(T.model, pattern) < 0)
            die(EXIT_USAGE, "finetune.freeze: '%s' matches no parameter of the model", pattern);
    }
    int64_t all = lz_module_num_params(T.model, false), trainable = lz_module_num_params(T.model, true);
    if (trainable == 0) die(EXIT_USAGE, "finetune: every parameter is frozen; nothing to train");
    if (trainable < all || lz_config_has(T.cfg, "finetune.init_from")) {
        char a[32], t[32];
        printf("trainable: %s of %s parameters (%.2f%%)\n", group_digits(trainable, t, sizeof t),
               group_digits(all, a, sizeof a), 100.0 * (double)trainable / (double)all);
    }
}
