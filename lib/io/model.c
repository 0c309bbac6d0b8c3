/* Models from experiment configs (see model.h). */
#include "model.h"
#include "core/strbuf.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building ---- */

typedef struct {
    const lz_config *cfg;
    lz_module *seq;
    lz_array *x;          /* placeholder of the current activation shape (lazy, pooled) */
    int index;            /* next layer index */
    lz_key key;
    const char *where;    /* "model.layers.3" or "model (mlp)" for messages */
    bool named;           /* mlp/cnn: children named conv1, relu1, fc1, head ... (else 0, 1, ...) */
    struct { const char *prefix; int n; } count[8];   /* layers named so far, per prefix */
} builder;

static int fail_layer(builder *b, const char *kind) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", lz_error());
    char shape[64];
    lz_fail("%s (%s) on input %s: %s", b->where, kind, b->x ? lz_shape_str(b->x, shape, sizeof shape) : "?",
            msg);
    return -1;
}

/* The name of the next child with this prefix: "conv1", "conv2"...; "flatten" and "head" as
 * they are (there is one of each). */
static void child_name(builder *b, const char *prefix, char *name, size_t n) {
    if (!strcmp(prefix, "flatten") || !strcmp(prefix, "head")) {
        snprintf(name, n, "%s", prefix);
        return;
    }
    int i = 0;
    while (i < 8 && b->count[i].prefix && strcmp(b->count[i].prefix, prefix)) i++;
    assert(i < 8);
    b->count[i].prefix = prefix;
    snprintf(name, n, "%s%d", prefix, ++b->count[i].n);
}

/* Appends m (owned) and moves the placeholder through it. Named models (mlp, cnn) call the
 * child `prefix` + its number (PyTorch-style conv1, fc2; the names finetune patterns use);
 * model.layers lists are numbered like nn.Sequential. */
static int push_named(builder *b, lz_module *m, const char *kind, const char *prefix) {
    if (!m) return fail_layer(b, kind);
    lz_module_train(m, false);
    char name[32];
    if (b->named) child_name(b, prefix, name, sizeof name);
    if (b->named ? lz_module_add_child(b->seq, name, m) : lz_nn_sequential_append(b->seq, m))
        return fail_layer(b, kind);
    lz_module *child = lz_module_child_at(b->seq, b->index);
    lz_array *y = lz_module_forward(child, b->x, NULL);
    if (!y) return fail_layer(b, kind);
    b->x = y;
    b->index++;
    return 0;
}

static int push(builder *b, lz_module *m, const char *kind) { return push_named(b, m, kind, kind); }

static lz_key next_key(builder *b) { return lz_key_fold(b->key, (uint64_t)b->index); }

static lz_module *activation(const char *name) {
    if (!strcmp(name, "relu")) return lz_nn_relu();
    if (!strcmp(name, "gelu")) return lz_nn_gelu(true);
    if (!strcmp(name, "silu")) return lz_nn_silu();
    if (!strcmp(name, "tanh")) return lz_nn_tanh();
    if (!strcmp(name, "sigmoid")) return lz_nn_sigmoid();
    return NULL;
}

static int64_t last_dim(const lz_array *x) { return lz_shape(x)[lz_ndim(x) - 1]; }

static int cfg_int(const lz_config *cfg, const char *fmt, int i, const char *key, int64_t *out) {
    char path[128];
    snprintf(path, sizeof path, fmt, i, key);
    lz_error_clear();
    *out = lz_config_int(cfg, path);
    return lz_error()[0] ? -1 : 0;
}

/* One item of model.layers. */
static int add_layer(builder *b, int i) {
    const lz_config *cfg = b->cfg;
    char path[128], where[64];
    snprintf(where, sizeof where, "model.layers.%d", i);
    b->where = where;
    snprintf(path, sizeof path, "model.layers.%d.type", i);
    const char *type = lz_config_str(cfg, path);
    if (!type) return -1;
    const char *f = "model.layers.%d.%s";
    int nd = lz_ndim(b->x);
    int64_t out = 0, kernel = 0, stride = 0, padding = 0;
    lz_module *m = NULL;
    if (!strcmp(type, "linear")) {
        snprintf(path, sizeof path, f, i, "bias");
        if (cfg_int(cfg, f, i, "out", &out)) return -1;
        m = lz_nn_linear(last_dim(b->x), out, lz_config_bool(cfg, path), next_key(b));
    } else if (!strcmp(type, "conv2d") || !strcmp(type, "conv1d")) {
        if (cfg_int(cfg, f, i, "out", &out) || cfg_int(cfg, f, i, "kernel", &kernel) ||
            cfg_int(cfg, f, i, "stride", &stride) || cfg_int(cfg, f, i, "padding", &padding))
            return -1;
        snprintf(path, sizeof path, f, i, "bias");
        bool bias = lz_config_bool(cfg, path);
        int want = type[4] == '2' ? 4 : 3;
        if (nd != want) {
            lz_fail("%s expects inputs of %d axes", type, want);
            return fail_layer(b, type);
        }
        if (want == 4) {
            int k[2] = {(int)kernel, (int)kernel}, s[2] = {(int)stride, (int)stride},
                p[2] = {(int)padding, (int)padding};
            m = lz_nn_conv2d(lz_shape(b->x)[1], out, k, s, p, NULL, 1, bias, next_key(b));
        } else {
            m = lz_nn_conv1d(lz_shape(b->x)[1], out, (int)kernel, (int)stride, (int)padding, 1, 1,
                             bias, next_key(b));
        }
    } else if (!strcmp(type, "max_pool2d") || !strcmp(type, "avg_pool2d")) {
        if (cfg_int(cfg, f, i, "kernel", &kernel) || cfg_int(cfg, f, i, "padding", &padding))
            return -1;
        snprintf(path, sizeof path, f, i, "stride");
        stride = lz_config_has(cfg, path) ? lz_config_int(cfg, path) : kernel;
        int k[2] = {(int)kernel, (int)kernel}, s[2] = {(int)stride, (int)stride},
            p[2] = {(int)padding, (int)padding};
        m = type[0] == 'm' ? lz_nn_max_pool2d(k, s, p) : lz_nn_avg_pool2d(k, s, p);
    } else if (!strcmp(type, "flatten")) {
        m = lz_nn_flatten(1, -1);
    } else if (!strcmp(type, "dropout")) {
        snprintf(path, sizeof path, f, i, "p");
        m = lz_nn_dropout(lz_config_float(cfg, path));
    } else if (!strcmp(type, "batch_norm")) {
        snprintf(path, sizeof path, f, i, "eps");
        double eps = lz_config_float(cfg, path);
        snprintf(path, sizeof path, f, i, "momentum");
        double mom = lz_config_float(cfg, path);
        if (nd < 2) { lz_fail("batch_norm needs a channel axis"); return fail_layer(b, type); }
        m = nd == 4 ? lz_nn_batch_norm2d(lz_shape(b->x)[1], eps, mom, true)
                    : lz_nn_batch_norm1d(lz_shape(b->x)[1], eps, mom, true);
    } else if (!strcmp(type, "layer_norm") || !strcmp(type, "rms_norm")) {
        snprintf(path, sizeof path, f, i, "eps");
        double eps = lz_config_float(cfg, path);
        m = type[0] == 'l' ? lz_nn_layer_norm(last_dim(b->x), eps, true, true)
                           : lz_nn_rms_norm(last_dim(b->x), eps, true);
    } else if (!strcmp(type, "embedding")) {
        lz_fail("embedding layers take token ids; image data gives pixels");
        return fail_layer(b, type);
    } else {
        m = activation(type);
        if (!m) { lz_fail("unknown layer type '%s'", type); return fail_layer(b, type); }
    }
    return push(b, m, type);
}

/* The hidden linear layers and the output layer of mlp and cnn. */
static int add_head(builder *b, int64_t out) {
    const lz_config *cfg = b->cfg;
    const char *act = lz_config_str(cfg, "model.activation");
    double p = lz_config_float(cfg, "model.dropout");
    if (!act || isnan(p)) return -1;
    if (push(b, lz_nn_flatten(1, -1), "flatten")) return -1;
    int nh = lz_config_len(cfg, "model.hidden");
    for (int h = 0; h < nh; h++) {
        int64_t w;
        if (cfg_int(cfg, "model.hidden.%d%s", h, "", &w)) return -1;
        if (push_named(b, lz_nn_linear(last_dim(b->x), w, true, next_key(b)), "linear", "fc") ||
            push(b, activation(act), act))
            return -1;
        if (p > 0 && push_named(b, lz_nn_dropout(p), "dropout", "drop")) return -1;
    }
    return push_named(b, lz_nn_linear(last_dim(b->x), out, true, next_key(b)), "linear", "head");
}

lz_module *lz_model_build(const lz_config *cfg, const lz_model_shape *in, lz_key key) {
    const char *type = lz_config_str(cfg, "model.type");
    if (!type) return NULL;
    if (!strcmp(type, "transformer")) {
        if (in->channels || in->height || in->width)
            return lz_fail("model.type 'transformer' takes text (token ids), but the data holds "
                           "%dx%dx%d images", in->channels, in->height, in->width);
        return lz_model_gpt_build(cfg, in->num_classes, key);
    }
    lz_module *seq = lz_nn_sequential(0, NULL);
    if (!seq) return NULL;
    lz_pool_push();
    int64_t shape[4] = {1, in->channels, in->height, in->width};
    builder b = {cfg, seq, lz_zeros(4, shape, LZ_F32), 0, key, "model", strcmp(type, "sequential") != 0, {{0}}};
    char where[64];
    snprintf(where, sizeof where, "model (%s)", type);
    int64_t out = in->num_classes;
    if (strcmp(type, "sequential") && lz_config_has(cfg, "model.out"))
        out = lz_config_int(cfg, "model.out");
    int rc = 0;
    if (!strcmp(type, "sequential")) {
        int n = lz_config_len(cfg, "model.layers");
        for (int i = 0; i < n && rc == 0; i++) rc = add_layer(&b, i);
    } else if (!strcmp(type, "mlp")) {
        b.where = where;
        rc = add_head(&b, out);
    } else {   /* cnn */
        b.where = where;
        int nc = lz_config_len(cfg, "model.channels");
        int k = (int)lz_config_int(cfg, "model.kernel");
        bool bn = lz_config_bool(cfg, "model.batch_norm");
        const char *act = lz_config_str(cfg, "model.activation");
        for (int c = 0; c < nc && rc == 0; c++) {
            int64_t ch;
            int kk[2] = {k, k}, pad[2] = {k / 2, k / 2}, two[2] = {2, 2};
            rc = cfg_int(cfg, "model.channels.%d%s", c, "", &ch);
            if (!rc) rc = push_named(&b, lz_nn_conv2d(lz_shape(b.x)[1], ch, kk, NULL, pad, NULL, 1, !bn,
                                                      next_key(&b)), "conv2d", "conv");
            if (!rc && bn) rc = push_named(&b, lz_nn_batch_norm2d(ch, 1e-5, 0.1, true), "batch_norm", "bn");
            if (!rc) rc = push(&b, activation(act), act);
            if (!rc) rc = push_named(&b, lz_nn_max_pool2d(two, NULL, NULL), "max_pool2d", "pool");
        }
        if (!rc) rc = add_head(&b, out);
    }
    if (!rc) {
        char s[64];
        const int64_t *sh = lz_shape(b.x);
        if (lz_ndim(b.x) != 2 || sh[1] != in->num_classes) {
            lz_fail("the model gives outputs %s per batch of 1, but the data has %d classes "
                    "(expected f32[1,%d]%s)", lz_shape_str(b.x, s, sizeof s), in->num_classes,
                    in->num_classes, lz_ndim(b.x) > 2 ? "; add a flatten layer?" : "");
            rc = -1;
        }
    }
    lz_pool_pop();
    if (rc) { lz_module_free(seq); return NULL; }
    lz_module_train(seq, true);
    return seq;
}

int lz_model_apply_lora(lz_module *m, const lz_config *cfg, lz_key key) {
    lz_error_clear();
    int64_t rank = lz_config_int(cfg, "finetune.lora.rank");
    if (lz_error()[0]) return -1;
    if (rank == 0) return 0;
    double alpha = lz_config_float(cfg, "finetune.lora.alpha");
    double dropout = lz_config_float(cfg, "finetune.lora.dropout");
    int n = lz_config_len(cfg, "finetune.lora.targets");
    if (n < 0) return -1;
    char path[64];
    for (int i = 0; i < (n ? n : 1); i++) {
        snprintf(path, sizeof path, "finetune.lora.targets.%d", i);
        const char *pattern = n ? lz_config_str(cfg, path) : "*";
        if (!pattern) return -1;
        if (lz_lora_apply(m, pattern, rank, alpha, dropout, lz_key_fold(key, (uint64_t)i)) < 0) {
            char msg[768];
            snprintf(msg, sizeof msg, "%s", lz_error());
            lz_fail("finetune.lora.targets: %s", msg);
            return -1;
        }
    }
    return 0;
}

/* ---- summary ---- */

char *lz_model_summary(lz_module *m, const lz_model_shape *in) {
    if (lz_model_gpt(m)) return lz_model_gpt_summary(m);
    lz_strbuf b = {0};
    bool training = lz_module_is_training(m);
    lz_module_train(m, false);
    lz_pool_push();
    int64_t shape[4] = {1, in->channels, in->height, in->width};
    lz_array *x = lz_zeros(4, shape, LZ_F32);
    char sh[64], desc[160], name[64];
    const char *row = "  %-8s %-12s %-44s %-18s %10s\n";
    lz_strbuf_printf(&b, row, "layer", "kind", "configuration", "output", "params");
    lz_strbuf_printf(&b, row, "", "input", "", lz_shape_str(x, sh, sizeof sh), "");
    int n = lz_module_num_children(m);
    for (int i = 0; i < n && x; i++) {
        lz_module *c = lz_module_child_at(m, i);
        desc[0] = 0;
        const lz_module_kind *k = lz_module_kind_of(c);
        if (k->describe) k->describe(c, desc, sizeof desc);
        /* the usual defaults only make the table wide */
        static const char *const noise[] = {", stride=1x1", ", dilation=1x1", ", groups=1", ", padding=0x0",
                                            "start=1, end=-1"};
        for (size_t j = 0; j < sizeof noise / sizeof *noise; j++) {
            char *at = strstr(desc, noise[j]);
            if (at) memmove(at, at + strlen(noise[j]), strlen(at + strlen(noise[j])) + 1);
        }
        x = lz_module_forward(c, x, NULL);
        lz_strbuf_printf(&b, "  %-8s %-12s %-44s %-18s %10lld\n", lz_module_path(c, name, sizeof name),
                         k->name, desc, x ? lz_shape_str(x, sh, sizeof sh) : "?",
                         (long long)lz_module_num_params(c, false));
    }
    lz_pool_pop();
    lz_module_train(m, training);
    lz_strbuf_printf(&b, "  parameters: %lld (%lld trainable)\n",
                     (long long)lz_module_num_params(m, false), (long long)lz_module_num_params(m, true));
    char *s = lz_strbuf_take(&b);
    return s ? s : lz_fail("model summary: out of memory");
}

/* ---- loss ---- */

lz_array *lz_model_loss(const lz_config *cfg, lz_array *logits, lz_array *labels) {
    const char *name = lz_config_str(cfg, "loss.name");
    const char *red = lz_config_str(cfg, "loss.reduction");
    if (!name || !red || !logits || !labels) return NULL;
    lz_reduction r = strcmp(red, "sum") ? LZ_REDUCE_MEAN : LZ_REDUCE_SUM;
    if (!strcmp(name, "cross_entropy") || !strcmp(name, "nll")) {
        lz_ce_opts o = {.reduction = r};
        if (!strcmp(name, "cross_entropy"))
            o.label_smoothing = lz_config_float(cfg, "loss.label_smoothing");
        if (lz_config_has(cfg, "loss.ignore_index")) {
            o.ignore = true;
            o.ignore_index = lz_config_int(cfg, "loss.ignore_index");
        }
        return name[0] == 'c' ? lz_cross_entropy(logits, labels, &o)
                              : lz_nll_loss(lz_log_softmax(logits, -1), labels, &o);
    }
    lz_array *hot = lz_one_hot(labels, lz_dim(logits, -1), LZ_F32), *y = NULL;
    if (!strcmp(name, "mse")) y = lz_mse_loss(logits, hot, r);
    else if (!strcmp(name, "l1")) y = lz_l1_loss(logits, hot, r);
    else if (!strcmp(name, "smooth_l1"))
        y = lz_smooth_l1_loss(logits, hot, lz_config_float(cfg, "loss.beta"), r);
    else if (!strcmp(name, "bce")) y = lz_binary_cross_entropy_with_logits(logits, hot, r);
    else if (!strcmp(name, "kl_div")) y = lz_kl_div(lz_log_softmax(logits, -1), hot, r, false);
    else lz_fail("loss.name '%s' is not supported", name);
    return y;
}

/* ---- evaluation ---- */

void lz_model_metrics_free(lz_model_metrics *r) {
    if (!r) return;
    free(r->confusion);
    free(r->pred);
    free(r->label);
    free(r->prob);
    memset(r, 0, sizeof *r);
}

int lz_model_evaluate(lz_module *m, const lz_config *cfg, lz_loader *l, int num_classes,
                      int keep, volatile const int *stop, lz_model_metrics *out) {
    memset(out, 0, sizeof *out);
    out->num_classes = num_classes;
    out->confusion = calloc((size_t)num_classes * (size_t)num_classes, sizeof *out->confusion);
    out->pred = calloc((size_t)(keep > 0 ? keep : 1), sizeof *out->pred);
    out->label = calloc((size_t)(keep > 0 ? keep : 1), sizeof *out->label);
    out->prob = calloc((size_t)(keep > 0 ? keep : 1), sizeof *out->prob);
    if (!out->confusion || !out->pred || !out->label || !out->prob) {
        lz_model_metrics_free(out);
        lz_fail("evaluate: out of memory");
        return -1;
    }
    const char *red = lz_config_str(cfg, "loss.reduction");
    bool mean = !red || strcmp(red, "sum");
    lz_module_train(m, false);
    if (lz_loader_seek(l, 0, 0)) { lz_model_metrics_free(out); return -1; }
    double loss_sum = 0;
    int64_t *pred = NULL, cap = 0;
    int rc = 0;
    for (;;) {
        if (stop && *stop) { rc = 1; break; }
        lz_batch b;
        int got = lz_loader_next(l, &b);
        if (got <= 0) { rc = got; break; }
        if (!b.y) {
            lz_batch_release(&b);
            lz_fail("evaluate: the split has no labels");
            rc = -1;
            break;
        }
        lz_pool_push();
        lz_array *logits = lz_module_forward(m, b.x, NULL);
        lz_array *loss = lz_model_loss(cfg, logits, b.y);
        lz_array *am = lz_argmax(logits, -1, 0);
        lz_array *pmax = lz_max(lz_softmax(logits, -1), (int[]){-1}, 1, 0);
        int64_t bs = lz_size(b.y);   /* examples, or tokens for text */
        if (!loss || !am || !pmax || LZ_EVAL(loss, am, pmax)) rc = -1;
        if (!rc && bs > cap) {
            free(pred);
            cap = bs;
            pred = malloc((size_t)cap * sizeof *pred);
            if (!pred) { lz_fail("evaluate: out of memory"); rc = -1; }
        }
        if (!rc && lz_to_int(am, pred, bs)) rc = -1;
        if (!rc) {
            double lv = lz_item(loss);
            loss_sum += mean ? lv * (double)bs : lv;
            const int32_t *y = lz_data(b.y);
            const float *pm = lz_data(pmax);
            for (int64_t i = 0; i < bs; i++) {
                int64_t t = y[i], p = pred[i];
                out->correct += p == t;
                if (t >= 0 && t < num_classes && p >= 0 && p < num_classes)
                    out->confusion[t * num_classes + p]++;
                if (out->nkept < keep) {
                    out->pred[out->nkept] = (int32_t)p;
                    out->label[out->nkept] = (int32_t)t;
                    out->prob[out->nkept] = pm[i];
                    out->nkept++;
                }
            }
            out->n += bs;
        }
        lz_pool_pop();
        lz_batch_release(&b);
        if (rc) break;
    }
    free(pred);
    if (rc < 0) { lz_model_metrics_free(out); return -1; }
    out->loss = out->n ? loss_sum / (double)out->n : NAN;
    return rc;
}

/* ---- loaders and checkpoints ---- */

int lz_model_loader_options(const lz_config *cfg, bool train, int64_t batch_size,
                            lz_model_loader_opts *out) {
    memset(out, 0, sizeof *out);
    lz_loader_options *o = &out->o;
    *o = lz_loader_defaults();
    lz_error_clear();
    o->batch_size = lz_config_int(cfg, "data.batch_size");
    if (!train && lz_config_has(cfg, "data.eval_batch_size"))
        o->batch_size = lz_config_int(cfg, "data.eval_batch_size");
    if (batch_size > 0) o->batch_size = batch_size;
    o->seed = (uint64_t)lz_config_int(cfg, "seed");
    o->prefetch = (int)lz_config_int(cfg, "data.prefetch");
    o->shuffle = train && lz_config_bool(cfg, "data.shuffle");
    o->drop_last = train && lz_config_bool(cfg, "data.drop_last");
    if (train) {
        o->crop_padding = (int)lz_config_int(cfg, "data.augment.random_crop_padding");
        o->hflip = lz_config_bool(cfg, "data.augment.hflip");
    }
    int nm = lz_config_len(cfg, "data.normalize.mean"), ns = lz_config_len(cfg, "data.normalize.std");
    if (lz_error()[0]) return -1;
    if (nm != ns) {
        lz_fail("data.normalize: %d means but %d standard deviations", nm, ns);
        return -1;
    }
    if (nm > 16) { lz_fail("data.normalize: more than 16 channels"); return -1; }
    char path[64];
    for (int i = 0; i < nm; i++) {
        snprintf(path, sizeof path, "data.normalize.mean.%d", i);
        out->mean[i] = lz_config_float(cfg, path);
        snprintf(path, sizeof path, "data.normalize.std.%d", i);
        out->std[i] = lz_config_float(cfg, path);
    }
    o->nnorm = nm;
    o->mean = out->mean;
    o->std = out->std;
    return lz_error()[0] ? -1 : 0;
}

static int save_section(lz_ckpt_writer *w, lz_module *m, int what, const char *section) {
    lz_named_list l;
    if (lz_module_collect(m, what, &l)) return -1;
    int rc = 0;
    for (int i = 0; i < l.n && !rc; i++)
        if (l.items[i].buffer == (what == LZ_BUFFERS))
            rc = lz_ckpt_put(w, section, l.items[i].name, *l.items[i].slot);
    lz_named_list_free(&l);
    return rc;
}

int lz_model_save(lz_module *m, lz_ckpt_writer *w) {
    if (save_section(w, m, LZ_PARAMS, "params")) return -1;
    return save_section(w, m, LZ_BUFFERS, "buffers");
}

static int load_section(lz_ckpt *c, lz_module *m, int what, const char *section) {
    lz_named_list l;
    if (lz_module_collect(m, what, &l)) return -1;
    const char **names = malloc((size_t)(l.n + 1) * sizeof *names);
    lz_array **like = malloc((size_t)(l.n + 1) * sizeof *like);
    int n = 0, rc = 0;
    if (!names || !like) { lz_fail("out of memory"); rc = -1; }
    for (int i = 0; i < l.n && !rc; i++)
        if (l.items[i].buffer == (what == LZ_BUFFERS)) {
            names[n] = l.items[i].name;
            like[n++] = *l.items[i].slot;
        }
    if (!rc) rc = lz_ckpt_check(c, section, n, names, like, NULL, NULL, NULL);
    lz_pool_push();   /* the arrays read are pooled; the module retains what it keeps */
    for (int i = 0; i < l.n && !rc; i++) {
        if (l.items[i].buffer != (what == LZ_BUFFERS)) continue;
        lz_array *a = lz_ckpt_get(c, section, l.items[i].name);
        rc = a ? lz_param_set(&l.items[i], a) : -1;
    }
    lz_pool_pop();
    free(names);
    free(like);
    lz_named_list_free(&l);
    return rc;
}

int lz_model_load(lz_module *m, lz_ckpt *c) {
    if (load_section(c, m, LZ_PARAMS, "params")) return -1;
    return load_section(c, m, LZ_BUFFERS, "buffers");
}

/* ---- LoRA exports ---- */

static bool is_adapter(const lz_named_array *p) {
    const char *dot = strrchr(p->name, '.'), *local = dot ? dot + 1 : p->name;
    return !p->buffer && lz_lora_is(p->module) && !strncmp(local, "lora_", 5);
}

int lz_model_save_adapters(lz_module *m, lz_ckpt_writer *w) {
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS, &l)) return -1;
    int rc = 0, n = 0;
    for (int i = 0; i < l.n && !rc; i++)
        if (is_adapter(&l.items[i])) {
            rc = lz_ckpt_put(w, "params", l.items[i].name, *l.items[i].slot);
            n++;
        }
    lz_named_list_free(&l);
    if (!rc && !n) { lz_fail("the model has no LoRA adapters to save"); rc = -1; }
    return rc;
}

int lz_model_save_merged(lz_module *m, lz_ckpt_writer *w) {
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS, &l)) return -1;
    int rc = 0;
    for (int i = 0; i < l.n && !rc; i++) {
        const lz_named_array *p = &l.items[i];
        if (is_adapter(p)) continue;
        const char *dot = strrchr(p->name, '.');
        lz_pool_push();
        lz_array *a = lz_lora_is(p->module) && !strcmp(dot ? dot + 1 : p->name, "weight")
                          ? lz_lora_merged_weight(p->module) : *p->slot;
        rc = a ? lz_ckpt_put(w, "params", p->name, a) : -1;
        lz_pool_pop();
    }
    lz_named_list_free(&l);
    return rc ? -1 : save_section(w, m, LZ_BUFFERS, "buffers");
}

/* Appends the arrays of section of c to names/arrays (read into the current pool). */
static int gather(lz_ckpt *c, const char *section, const char ***names, lz_array ***arrays,
                  int *n, int *cap) {
    int64_t k = 0;
    const char *const *nm = lz_ckpt_names(c, section, &k);
    if (!nm) return -1;
    if (*n + k > *cap) {
        *cap = (int)(*n + k) * 2;
        const char **a = realloc(*names, (size_t)*cap * sizeof *a);
        if (a) *names = a;
        lz_array **b = realloc(*arrays, (size_t)*cap * sizeof *b);
        if (b) *arrays = b;
        if (!a || !b) { lz_fail("out of memory"); return -1; }
    }
    for (int64_t i = 0; i < k; i++) {
        (*names)[*n] = nm[i];
        if (!((*arrays)[(*n)++] = lz_ckpt_get(c, section, nm[i]))) return -1;
    }
    return 0;
}

int lz_model_load_adapted(lz_module *m, lz_ckpt *base, lz_ckpt *adapter) {
    const char **names = NULL;
    lz_array **arrays = NULL;
    int n = 0, cap = 0, rc = 0;
    char *report = NULL;
    lz_pool_push();
    if (gather(base, "params", &names, &arrays, &n, &cap) ||
        gather(base, "buffers", &names, &arrays, &n, &cap) ||
        gather(adapter, "params", &names, &arrays, &n, &cap))
        rc = -1;
    if (!rc && lz_module_load(m, n, names, arrays, true, &report) < 0) {
        /* one line: the report's lines joined by "; " */
        char *one = report ? malloc(2 * strlen(report) + 1) : NULL, *o = one;
        for (const char *p = report; one && *p; p++) {
            if (*p != '\n') *o++ = *p;
            else if (p[1]) { *o++ = ';'; *o++ = ' '; }
        }
        if (o) *o = 0;
        free(report);
        report = one;
        lz_fail("%s with the adapters of %s does not fit the model: %s", lz_ckpt_path(base),
                lz_ckpt_path(adapter), report && report[0] ? report : lz_error());
        rc = -1;
    }
    lz_pool_pop();
    free(report);
    free(names);
    free(arrays);
    return rc;
}
