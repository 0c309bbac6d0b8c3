/* train: the progress display, checkpoints (save and exact resume), curves.png, samples.png. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train.h"

/* ---- progress ---- */

static bool line_open;         /* a progress line without its newline is on the terminal */
static double last_draw;
static int64_t first_step = -1;

void format_duration(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else if (s >= 60) snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    else snprintf(buf, n, "%.1f s", s);
}

void progress_clear(void) {
    if (line_open) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
        line_open = false;
    }
}

/* A bar redrawn in place on a terminal (at most 10 times a second), plain lines at each log
 * interval otherwise. */
void progress_update(double loss, double acc, double lr, bool log_line) {
    if (first_step < 0) first_step = T.step - 1;
    double t = now_s();
    bool epoch_end = T.batch == 0 && T.step > 0;
    if (T.tty ? (t - last_draw < 0.1 && T.step != T.total_steps && !epoch_end) : !log_line) return;
    last_draw = t;
    double el = t - T.t_start;
    int64_t done = T.step - first_step;
    double rate = el > 0 ? (double)T.samples_this_run / el : 0;
    double eta = done > 0 ? el / (double)done * (double)(T.total_steps - T.step) : 0;
    char e[32];
    format_duration(eta, e, sizeof e);
    int64_t ep = T.batch == 0 && T.step > 0 ? T.epoch : T.epoch + 1;
    int64_t bi = T.batch == 0 && T.step > 0 ? T.batches_per_epoch : T.batch;
    int64_t epochs = (T.total_steps + T.steps_per_epoch - 1) / T.steps_per_epoch;
    char head[160];
    if (lz_default_device() == LZ_GPU)   /* the device and its memory lead the line */
        snprintf(head, sizeof head, "cuda %.0f MiB  epoch %lld/%lld",
                 (double)lz_memory_device().active / 1048576.0, (long long)ep, (long long)epochs);
    else
        snprintf(head, sizeof head, "epoch %lld/%lld", (long long)ep, (long long)epochs);
    if (T.tty) {
        char bar[25];
        int fill = (int)(24 * bi / T.batches_per_epoch);
        for (int i = 0; i < 24; i++) bar[i] = i < fill ? '#' : '.';
        bar[24] = 0;
        printf("\r%s [%s] %lld/%lld  step %lld/%lld  loss %.4f  acc %.2f%%  lr %.3g  %.0f %s/s"
               "  ETA %s\033[K", head, bar, (long long)bi, (long long)T.batches_per_epoch,
               (long long)T.step, (long long)T.total_steps, loss, 100 * acc, lr, rate,
               T.text ? "tokens" : "samples", e);
        line_open = true;
        if (epoch_end) {   /* each finished epoch keeps its line */
            fputc('\n', stdout);
            line_open = false;
        }
    } else {
        printf("%s  step %lld/%lld  batch %lld/%lld  loss %.4f  acc %.2f%%  lr %.3g  %.0f %s/s"
               "  ETA %s\n", head, (long long)T.step, (long long)T.total_steps, (long long)bi,
               (long long)T.batches_per_epoch, loss, 100 * acc, lr, rate,
               T.text ? "tokens" : "samples", e);
    }
    fflush(stdout);
}

/* ---- checkpoints ---- */

/* Everything exact resume needs: parameters, buffers, optimizer state (names as lz_optim
 * gives them), the position (step, and the next batch as epoch/batch), the RNG key, the best
 * accuracy so far, and what eval needs to rebuild the model (config, input shape, classes). */
/* Text: the vocabulary travels in the checkpoint as "vocab", each token's text followed by
 * a NUL (a token may be "\n", so no separator character would do); and "context". */
static int save_vocab(lz_ckpt_writer *w) {
    size_t n = 0;
    for (int i = 0; i < T.shape.num_classes; i++) n += strlen(T.classes[i]) + 1;
    char *buf = malloc(n + 1), *p = buf;
    if (!buf) { lz_fail("out of memory"); return -1; }
    for (int i = 0; i < T.shape.num_classes; i++) {
        size_t l = strlen(T.classes[i]) + 1;
        memcpy(p, T.classes[i], l);
        p += l;
    }
    int rc = lz_ckpt_set_bytes(w, "vocab", buf, n);
    free(buf);
    return rc ? rc : lz_ckpt_set_int(w, "context", T.context);
}

/* What eval needs to rebuild and describe the model: the config (cfg_text), the classes or
 * vocabulary, the data, the input shape, the last validation figures, the step. */
static int save_meta(lz_ckpt_writer *w, const char *cfg_text, bool val_loss) {
    int rc = lz_ckpt_set_str(w, "config", cfg_text);
    size_t len = 1;
    for (int i = 0; i < T.shape.num_classes; i++) len += strlen(T.classes[i]) + 1;
    char *classes = calloc(len, 1);
    for (int i = 0; i < T.shape.num_classes && classes; i++) {
        strcat(classes, T.classes[i]);
        if (i + 1 < T.shape.num_classes) strcat(classes, "\n");
    }
    if (!rc) rc = lz_ckpt_set_str(w, "classes", classes ? classes : "");
    free(classes);
    if (!rc) rc = lz_ckpt_set_str(w, "data_path", T.data_path);
    if (!rc) rc = lz_ckpt_set_int(w, "step", T.step);
    if (!rc) rc = lz_ckpt_set_float(w, "accuracy", T.last_val_acc);
    /* the step those figures were measured at: eval reports them as this checkpoint's only
     * when it is the checkpoint's own step */
    if (!rc) rc = lz_ckpt_set_int(w, "accuracy_step", T.last_val_step);
    /* best.h5 (and its LoRA exports) are written right after the validation that made them
     * best; other checkpoints may come steps after the last validation */
    if (!rc && val_loss && T.text && isfinite(T.last_val_loss))
        rc = lz_ckpt_set_float(w, "val_loss", T.last_val_loss);
    if (!rc) rc = lz_ckpt_set_int(w, "input_channels", T.shape.channels);
    if (!rc) rc = lz_ckpt_set_int(w, "input_height", T.shape.height);
    if (!rc) rc = lz_ckpt_set_int(w, "input_width", T.shape.width);
    if (!rc) rc = lz_ckpt_set_int(w, "num_classes", T.shape.num_classes);
    if (!rc && T.text) rc = save_vocab(w);
    return rc;
}

static bool lora_active(void) { return lz_config_int(T.cfg, "finetune.lora.rank") > 0; }

void export_paths(char *adapter, char *merged, size_t n) {
    snprintf(adapter, n, "%s/adapter.h5", T.run_dir);
    snprintf(merged, n, "%s/merged.h5", T.run_dir);
}

/* Beside best.h5 of a LoRA run: adapter.h5, the adapters alone with the config (whose
 * finetune.init_from names the base checkpoint, also stored as "lora_base"), and merged.h5,
 * the adapters folded into the weights with a config whose finetune.lora section is back to
 * its defaults (no LoRA): a plain checkpoint of the base architecture. */
static int save_exports(void) {
    char apath[4300], mpath[4300];
    export_paths(apath, mpath, sizeof apath);
    char *cfg = lz_config_dump_string(T.cfg);
    if (!cfg) return -1;
    lz_ckpt_writer *w = lz_ckpt_create(apath);
    int rc = w ? lz_model_save_adapters(T.model, w) : -1;
    if (!rc) rc = save_meta(w, cfg, true);
    if (!rc && lz_config_has(T.cfg, "finetune.init_from"))
        rc = lz_ckpt_set_str(w, "lora_base", lz_config_str(T.cfg, "finetune.init_from"));
    if (!rc) rc = lz_ckpt_set_int(w, "lora_rank", lz_config_int(T.cfg, "finetune.lora.rank"));
    if (w && rc) lz_ckpt_abort(w);
    else if (w) rc = lz_ckpt_commit(w);
    const char *no_lora[1] = {"finetune.lora=null"};
    lz_config *plain = rc ? NULL : lz_config_load_string(cfg, T.config_name, 1, no_lora);
    free(cfg);
    cfg = plain ? lz_config_dump_string(plain) : NULL;
    lz_config_free(plain);
    if (!rc && !cfg) rc = -1;
    w = rc ? NULL : lz_ckpt_create(mpath);
    if (!rc) rc = w ? lz_model_save_merged(T.model, w) : -1;
    if (!rc) rc = save_meta(w, cfg, true);
    if (w && rc) lz_ckpt_abort(w);
    else if (w) rc = lz_ckpt_commit(w);
    free(cfg);
    return rc;
}

int save_checkpoint(const char *path) {
    if (T.rank != 0) return 0;   /* rank 0 alone writes files */
    lz_ckpt_writer *w = lz_ckpt_create(path);
    if (!w) return -1;
    int rc = lz_model_save(T.model, w);
    lz_pool_push();
    int ns = lz_optim_state_count(T.opt);
    for (int i = 0; i < ns && !rc; i++) {
        const char *name = lz_optim_state_name(T.opt, i);
        lz_array *a = lz_optim_state_array(T.opt, i);
        rc = name && a ? lz_ckpt_put(w, "optim", name, a) : -1;
    }
    lz_pool_pop();
    char *cfg = rc ? NULL : lz_config_dump_string(T.cfg);
    if (!rc && !cfg) rc = -1;
    if (!rc) rc = save_meta(w, cfg, path == T.best_path);
    free(cfg);
    double elapsed = T.elapsed_before + (T.t_start > 0 ? now_s() - T.t_start : 0);
    if (!rc) rc = lz_ckpt_set_int(w, "epoch", T.epoch);
    if (!rc) rc = lz_ckpt_set_int(w, "batch", T.batch);
    if (!rc) rc = lz_ckpt_set_keys(w, "key", 1, &T.key);
    if (!rc) rc = lz_ckpt_set_float(w, "best_accuracy", T.best_acc);
    if (!rc) rc = lz_ckpt_set_int(w, "best_step", T.best_step);
    if (!rc) rc = lz_ckpt_set_float(w, "elapsed_s", elapsed);
    if (rc) { lz_ckpt_abort(w); return -1; }
    if (lz_ckpt_commit(w)) return -1;
    return path == T.best_path && lora_active() ? save_exports() : 0;
}

int load_checkpoint(const char *path, bool *config_from_ckpt) {
    (void)config_from_ckpt;
    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) return -1;
    int64_t ch = 0, h = 0, wd = 0, k = 0;
    int rc = lz_ckpt_get_int(c, "input_channels", &ch) || lz_ckpt_get_int(c, "input_height", &h) ||
             lz_ckpt_get_int(c, "input_width", &wd) || lz_ckpt_get_int(c, "num_classes", &k) ? -1 : 0;
    if (rc) {
        lz_fail("%s: not a checkpoint written by train (%s)", path, lz_error());
    } else if (ch != T.shape.channels || h != T.shape.height || wd != T.shape.width ||
               k != T.shape.num_classes) {
        lz_fail("%s was trained on %lldx%lldx%lld images with %lld classes, but %s has %dx%dx%d "
                "images with %d classes", path, (long long)ch, (long long)h, (long long)wd,
                (long long)k, T.data_path, T.shape.channels, T.shape.height, T.shape.width,
                T.shape.num_classes);
        rc = -1;
    }
    if (!rc && lz_model_load(T.model, c)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", lz_error());
        lz_fail("the checkpoint is from another model: %s", msg);
        rc = -1;
    }
    int64_t n = 0;
    const char *const *names = rc ? NULL : lz_ckpt_names(c, "optim", &n);
    if (!rc && !names) rc = -1;
    lz_pool_push();
    for (int64_t i = 0; i < n && !rc; i++) {
        lz_array *a = lz_ckpt_get(c, "optim", names[i]);
        if (!a || lz_optim_state_load(T.opt, names[i], a)) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s", lz_error());
            lz_fail("%s: optimizer state '%s' does not fit the optimizer of the config (%s): %s",
                    path, names[i], lz_config_str(T.cfg, "optimizer.name"), msg);
            rc = -1;
        }
    }
    lz_pool_pop();
    if (!rc && (lz_ckpt_get_int(c, "step", &T.step) || lz_ckpt_get_int(c, "epoch", &T.epoch) ||
                lz_ckpt_get_int(c, "batch", &T.batch) || lz_ckpt_get_keys(c, "key", &T.key, 1) != 1 ||
                lz_ckpt_get_float(c, "best_accuracy", &T.best_acc) ||
                lz_ckpt_get_int(c, "best_step", &T.best_step) ||
                lz_ckpt_get_float(c, "accuracy", &T.last_val_acc) ||
                lz_ckpt_get_float(c, "elapsed_s", &T.elapsed_before)))
        rc = -1;
    /* checkpoints from before accuracy_step existed: the figures' step is unknown */
    if (!rc && (!lz_ckpt_has(c, "accuracy_step") || lz_ckpt_get_int(c, "accuracy_step", &T.last_val_step)))
        T.last_val_step = -1;
    if (!rc && T.batch >= T.batches_per_epoch) {
        lz_fail("%s: stopped at batch %lld of an epoch that now has %lld batches (was "
                "data.batch_size changed?)", path, (long long)T.batch, (long long)T.batches_per_epoch);
        rc = -1;
    }
    T.last_ckpt_step = T.step;
    lz_ckpt_close(c);
    return rc;
}

/* ---- plots ---- */

/* Pastes src into dst at (x, y); both RGB. */
static void paste(lz_image *dst, const lz_image *src, int x, int y) {
    for (int r = 0; r < src->height && y + r < dst->height; r++)
        memcpy(dst->pixels + ((size_t)(y + r) * (size_t)dst->width + (size_t)x) * 3,
               src->pixels + (size_t)r * (size_t)src->width * 3,
               (size_t)(src->width < dst->width - x ? src->width : dst->width - x) * 3);
}

/* curves.png: loss (left) and accuracy (right) against the step, training and validation,
 * from metrics.jsonl (so a resumed run shows its whole history). */
int write_curves(void) {
    if (T.rank != 0) return 0;   /* rank 0 alone writes files */
    int64_t *st[4] = {0};
    double *v[4] = {0};
    int64_t n[4];
    const char *kinds[4] = {"train", "eval", "train", "eval"};
    const char *keys[4] = {"loss", "loss", "accuracy", "accuracy"};
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        n[i] = lz_metrics_read(T.metrics_path, kinds[i], keys[i], &st[i], &v[i]);
        if (n[i] < 0) { rc = -1; n[i] = 0; }
    }
    double *x[4];
    for (int i = 0; i < 4; i++) {
        x[i] = malloc((size_t)(n[i] + 1) * sizeof *x[i]);
        for (int64_t j = 0; x[i] && j < n[i]; j++) x[i][j] = (double)st[i][j];
        if (i >= 2)
            for (int64_t j = 0; j < n[i]; j++) v[i][j] *= 100;
    }
    const lz_rgb blue = {31, 119, 180}, orange = {255, 127, 14};
    char vname[64];
    snprintf(vname, sizeof vname, "validation (%s)", T.val_split ? T.val_split : "none");
    lz_series loss[2] = {{"train", x[0], v[0], (int)n[0], blue}, {vname, x[1], v[1], (int)n[1], orange}};
    lz_series acc[2] = {{"train", x[2], v[2], (int)n[2], blue}, {vname, x[3], v[3], (int)n[3], orange}};
    lz_image a = {0}, b = {0}, out = {0};
    if (!rc && (lz_plot_lines(&a, 640, 420, "loss", "step", 2, loss) ||
                lz_plot_lines(&b, 640, 420, "accuracy (%)", "step", 2, acc) ||
                lz_image_new(&out, 1280, 420, 3)))
        rc = -1;
    if (!rc) {
        paste(&out, &a, 0, 0);
        paste(&out, &b, 640, 0);
        char path[4200];
        snprintf(path, sizeof path, "%s/curves.png", T.run_dir);
        rc = lz_png_write(path, &out);
    }
    lz_image_free(&a);
    lz_image_free(&b);
    lz_image_free(&out);
    for (int i = 0; i < 4; i++) { free(st[i]); free(v[i]); free(x[i]); }
    if (rc) fprintf(stderr, "train: curves.png: %s\n", lz_error());
    return rc;
}

/* samples.png: the first validation images, each with its predicted label (green when right,
 * red when wrong, with the true label then). */
int write_samples(const lz_model_metrics *r) {
    if (T.rank != 0) return 0;   /* rank 0 alone writes files */
    if (!T.val_images || r->nkept == 0) return 0;
    const lz_data_info *in = lz_dataset_info(T.val_images);
    int n = (int)r->nkept;
    int scale = in->height <= 32 ? 3 : in->height <= 64 ? 2 : 1;
    size_t px = (size_t)in->height * (size_t)in->width * (size_t)in->channels;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    uint8_t *pix = malloc((size_t)n * px);
    char (*t1)[64] = malloc((size_t)n * sizeof *t1), (*t2)[64] = malloc((size_t)n * sizeof *t2);
    const char **c1 = malloc((size_t)n * sizeof *c1), **c2 = malloc((size_t)n * sizeof *c2);
    lz_rgb *color = malloc((size_t)n * sizeof *color);
    lz_image img = {0};
    int rc = idx && pix && t1 && t2 && c1 && c2 && color ? 0 : -1;
    if (rc) lz_fail("out of memory");
    for (int i = 0; i < n && !rc; i++) idx[i] = i;
    if (!rc) rc = lz_dataset_read_images(T.val_images, n, idx, pix, NULL);
    for (int i = 0; i < n && !rc; i++) {
        bool ok = r->pred[i] == r->label[i];
        color[i] = ok ? (lz_rgb){0, 130, 0} : (lz_rgb){200, 0, 0};
        snprintf(t1[i], sizeof t1[i], "%.12s %.0f%%", T.classes[r->pred[i]], 100.0 * r->prob[i]);
        snprintf(t2[i], sizeof t2[i], "true %.11s", T.classes[r->label[i]]);
        c1[i] = t1[i];
        c2[i] = ok ? NULL : t2[i];
    }
    if (!rc) rc = lz_plot_image_grid(&img, n, (int)in->height, (int)in->width, (int)in->channels,
                                     pix, 8, scale, c1, c2, color);
    if (!rc) {
        char path[4200];
        snprintf(path, sizeof path, "%s/samples.png", T.run_dir);
        rc = lz_png_write(path, &img);
    }
    lz_image_free(&img);
    free(idx); free(pix); free(t1); free(t2); free(c1); free(c2); free(color);
    return rc;
}
