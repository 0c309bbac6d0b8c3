/* Experiment configs: every key parsed, defaults, each error with its exact place and message,
 * base inheritance, overrides, dump -> load round trips, README in step with the schema.
 * Run from the repository root (fixtures in tests/data/config/).
 * `test_config --write-readme` regenerates the tables of configs/README.md. */
#include <unistd.h>
#include "testutil.h"
#include "io/config.h"

#define DIR "tests/data/config/"
#define README "configs/README.md"
#define BEGIN_MARK "<!-- schema:begin (generated, do not edit) -->\n"
#define END_MARK "<!-- schema:end -->"

/* ---- helpers ---- */

static lz_config *load_ok(const char *path, int n, const char *const *ov) {
    lz_error_clear();
    lz_config *c = lz_config_load(path, n, ov);
    if (!c) fail_msg("%s: %s", path, lz_error());
    return c;
}

static void expect_error(lz_config *c, const char *expected) {
    if (c) { lz_config_free(c); fail_msg("loaded, expected: %s", expected); }
    if (strcmp(lz_error(), expected))
        fail_msg("error\n  got:      %s\n  expected: %s", lz_error(), expected);
}

#define LOAD_ERROR(path, expected) expect_error(lz_config_load(path, 0, NULL), expected)
#define STRING_ERROR(text, expected) expect_error(lz_config_load_string(text, "x.yaml", 0, NULL), expected)
#define OVERRIDE_ERROR(path, arg, expected) \
    expect_error(lz_config_load(path, 1, (const char *const[]){arg}), expected)

/* The schema entry of a getter path: indices dropped, layer keys found by the layer's type. */
static const lz_config_key *entry_of(const lz_config *c, const char *path) {
    if (!strncmp(path, "model.layers.", 13) && strchr(path + 13, '.')) {
        char lp[128], full[128];
        const char *dot = strchr(path + 13, '.');
        snprintf(lp, sizeof lp, "%.*s.type", (int)(dot - path), path);
        snprintf(full, sizeof full, "%s.%s", lz_config_str(c, lp), dot + 1);
        for (int i = 0; i < lz_config_layers_len; i++)
            if (!strcmp(lz_config_layers[i].path, full)) return &lz_config_layers[i];
        return NULL;
    }
    for (int i = 0; i < lz_config_schema_len; i++)
        if (!strcmp(lz_config_schema[i].path, path)) return &lz_config_schema[i];
    return NULL;
}

/* Splits "[a, b, 'c']" into items (quotes dropped); returns the count. */
static int split_list(const char *text, char items[][64], int max) {
    int n = 0;
    const char *p = text + 1;
    while (*p && *p != ']' && n < max) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, ",]");
        while (len && p[len - 1] == ' ') len--;
        const char *s = p;
        if (len >= 2 && (*s == '"' || *s == '\'')) { s++; len -= 2; }
        snprintf(items[n++], 64, "%.*s", (int)len, s);
        p += strcspn(p, ",]");
        if (*p == ',') p++;
    }
    return n;
}

/* Checks the value at `path` against `want` written as YAML ("3", "0.1", "true", "adam",
 * "null", "[0.9, 0.95]"), reading it with the getter of the key's type. */
static void check_value(const lz_config *c, const char *path, const char *want, const char *ctx) {
    size_t len = strlen(path);
    int layer_type = !strncmp(path, "model.layers.", 13) && len > 5 && !strcmp(path + len - 5, ".type");
    const lz_config_key *k = layer_type ? NULL : entry_of(c, path);
    char buf[160];
    lz_error_clear();
    if (!strcmp(want, "null")) {
        if (lz_config_has(c, path) || !lz_config_origin(c, path, buf, sizeof buf)[0])
            fail_msg("%s: %s should be null", ctx, path);
        return;
    }
    lz_config_type t = k ? k->type : LZ_CFG_STR;
    if (t >= LZ_CFG_STRS && t <= LZ_CFG_FLOATS) {
        char items[16][64];
        int n = split_list(want, items, 16);
        if (lz_config_len(c, path) != n) fail_msg("%s: %s has %d items, want %d", ctx, path, lz_config_len(c, path), n);
        for (int i = 0; i < n; i++) {
            char p[160];
            snprintf(p, sizeof p, "%s.%d", path, i);
            if (t == LZ_CFG_INTS && lz_config_int(c, p) != strtoll(items[i], NULL, 10))
                fail_msg("%s: %s = %lld, want %s", ctx, p, (long long)lz_config_int(c, p), items[i]);
            if (t == LZ_CFG_FLOATS && lz_config_float(c, p) != strtod(items[i], NULL))
                fail_msg("%s: %s = %.17g, want %s", ctx, p, lz_config_float(c, p), items[i]);
            if (t == LZ_CFG_STRS && strcmp(lz_config_str(c, p), items[i]))
                fail_msg("%s: %s = '%s', want '%s'", ctx, p, lz_config_str(c, p), items[i]);
        }
        return;
    }
    switch (t) {
    case LZ_CFG_INT:
        if (lz_config_int(c, path) != strtoll(want, NULL, 10))
            fail_msg("%s: %s = %lld, want %s (%s)", ctx, path, (long long)lz_config_int(c, path), want, lz_error());
        break;
    case LZ_CFG_FLOAT:
        if (lz_config_float(c, path) != strtod(want, NULL))
            fail_msg("%s: %s = %.17g, want %s (%s)", ctx, path, lz_config_float(c, path), want, lz_error());
        break;
    case LZ_CFG_BOOL:
        if (lz_config_bool(c, path) != !strcmp(want, "true") || *lz_error())
            fail_msg("%s: %s = %d, want %s (%s)", ctx, path, lz_config_bool(c, path), want, lz_error());
        break;
    default: {
        const char *s = lz_config_str(c, path);
        if (!s || strcmp(s, want)) fail_msg("%s: %s = '%s', want '%s' (%s)", ctx, path, s ? s : "NULL", want, lz_error());
    }
    }
}

typedef struct { const char *path, *want; } kv;

static void check_values(const lz_config *c, const kv *pairs, const char *ctx) {
    for (; pairs->path; pairs++) check_value(c, pairs->path, pairs->want, ctx);
}

/* Does the schema's `when` of k hold in c? */
static int applies(const lz_config *c, const lz_config_key *k) {
    if (!k->when) return 1;
    const char *eq = strchr(k->when, '=');
    char disc[64], one[64];
    snprintf(disc, sizeof disc, "%.*s", (int)(eq - k->when), k->when);
    const char *v = lz_config_str(c, disc);
    for (const char *p = eq + 1; *p;) {
        size_t n = strcspn(p, "|");
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        if (v && !strcmp(one, v)) return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    s[n] = 0;
    fclose(f);
    return s;
}

/* ---- the schema ---- */

static void test_schema_is_consistent(void **state) {
    (void)state;
    if (lz_config_schema_check()) fail_msg("%s", lz_error());
}

/* Every default of the table is what a config that sets nothing gets. */
static void test_defaults_applied(void **state) {
    (void)state;
    lz_config *c = load_ok(DIR "minimal.yaml", 0, NULL);
    int checked = 0;
    for (int i = 0; i < lz_config_schema_len; i++) {
        const lz_config_key *k = &lz_config_schema[i];
        if (k->type == LZ_CFG_MAP || (k->flags & LZ_CFG_META) || !k->def) continue;
        char where[128];
        if (!applies(c, k)) {
            assert_false(lz_config_has(c, k->path));
            assert_string_equal(lz_config_origin(c, k->path, where, sizeof where), "");
            continue;
        }
        lz_config_origin(c, k->path, where, sizeof where);
        if (strcmp(where, "default")) continue;   /* set by the file */
        check_value(c, k->path, k->def, "defaults");
        checked++;
    }
    assert_true(checked > 40);
    check_values(c, (kv[]){{"name", "mnist_mlp"}, {"data.path", "data/mnist.h5"},
                           {"model.type", "mlp"}, {"seed", "0"}, {"optimizer.betas", "[0.9, 0.999]"},
                           {"data.val_split", "test"}, {"train.steps", "null"}, {0}}, "minimal");
    char where[128];
    assert_string_equal(lz_config_origin(c, "model.type", where, sizeof where), DIR "minimal.yaml:5:9");
    assert_string_equal(lz_config_origin(c, "train.epochs", where, sizeof where), "default");
    lz_config_free(c);
}

/* ---- every key, parsed from the full_*.yaml fixtures ---- */

static const kv transformer_values[] = {
    {"name", "shakespeare_gpt"}, {"seed", "1234"},
    {"data.path", "data/shakespeare.h5"}, {"data.train_split", "train_tokens"},
    {"data.val_split", "val_tokens"}, {"data.batch_size", "32"}, {"data.eval_batch_size", "128"},
    {"data.shuffle", "false"}, {"data.drop_last", "true"}, {"data.prefetch", "4"},
    {"data.context", "128"}, {"data.normalize.mean", "[0.5, 0.25, 0.125]"},
    {"data.normalize.std", "[2, 4, 8]"}, {"data.augment.random_crop_padding", "4"},
    {"data.augment.hflip", "true"},
    {"model.type", "transformer"}, {"model.vocab_size", "65"}, {"model.n_layers", "4"},
    {"model.n_heads", "4"}, {"model.d_model", "128"}, {"model.d_ff", "384"},
    {"model.context", "256"}, {"model.mlp", "swiglu"}, {"model.norm", "rms"},
    {"model.positions", "rotary"}, {"model.rope_theta", "500000"},
    {"model.tied_embeddings", "false"}, {"model.bias", "false"},
    {"model.checkpoint_blocks", "true"}, {"model.dropout", "0.2"},
    {"loss.name", "cross_entropy"}, {"loss.label_smoothing", "0.1"}, {"loss.ignore_index", "-100"},
    {"loss.reduction", "sum"},
    {"optimizer.name", "adamw"}, {"optimizer.lr", "3e-4"}, {"optimizer.weight_decay", "0.1"},
    {"optimizer.betas", "[0.9, 0.95]"}, {"optimizer.eps", "1e-6"},
    {"schedule.name", "warmup_cosine"}, {"schedule.warmup_steps", "100"},
    {"schedule.min_lr", "3e-5"}, {"schedule.total_steps", "5000"},
    {"train.epochs", "3"}, {"train.steps", "5000"}, {"train.grad_accum", "4"},
    {"train.clip_grad_norm", "1"}, {"train.eval_every", "250"}, {"train.checkpoint_every", "1000"},
    {"train.log_every", "10"}, {"train.log_format", "csv"}, {"train.out_dir", "/tmp/leibniz-runs"},
    {"train.threads", "2"}, {"train.resume", "runs/shakespeare_gpt/last.h5"},
    {"finetune.init_from", "runs/pretrain/best.h5"}, {"finetune.strict", "false"},
    {"finetune.freeze", "[embed.*, blocks.0.*]"}, {"finetune.head.name", "head"},
    {"finetune.head.out", "65"}, {"finetune.lora.rank", "8"}, {"finetune.lora.alpha", "32"},
    {"finetune.lora.dropout", "0.05"}, {"finetune.lora.targets", "[*.attn.qkv, *.attn.proj]"},
    {0}};

static const kv cnn_values[] = {
    {"model.type", "cnn"}, {"model.channels", "[16, 32, 64]"}, {"model.kernel", "5"},
    {"model.batch_norm", "true"}, {"model.hidden", "[128, 64]"}, {"model.activation", "gelu"},
    {"model.out", "10"}, {"model.dropout", "0.25"},
    {"loss.name", "smooth_l1"}, {"loss.beta", "0.5"},
    {"optimizer.name", "sgd"}, {"optimizer.lr", "0.1"}, {"optimizer.weight_decay", "5e-4"},
    {"optimizer.momentum", "0.9"}, {"optimizer.nesterov", "true"},
    {"schedule.name", "step"}, {"schedule.warmup_steps", "0"}, {"schedule.step_size", "30"},
    {"schedule.gamma", "0.5"}, {0}};

static const kv sequential_values[] = {
    {"model.type", "sequential"},
    {"model.layers.0.type", "embedding"}, {"model.layers.0.num", "1000"}, {"model.layers.0.dim", "16"},
    {"model.layers.1.type", "conv1d"}, {"model.layers.1.out", "8"}, {"model.layers.1.kernel", "5"},
    {"model.layers.1.stride", "2"}, {"model.layers.1.padding", "2"}, {"model.layers.1.bias", "false"},
    {"model.layers.2.type", "conv2d"}, {"model.layers.2.out", "16"}, {"model.layers.2.kernel", "3"},
    {"model.layers.2.stride", "1"}, {"model.layers.2.padding", "1"}, {"model.layers.2.bias", "true"},
    {"model.layers.3.type", "batch_norm"}, {"model.layers.3.momentum", "0.05"},
    {"model.layers.3.eps", "1e-3"}, {"model.layers.4.type", "relu"},
    {"model.layers.5.type", "max_pool2d"}, {"model.layers.5.kernel", "3"},
    {"model.layers.5.stride", "2"}, {"model.layers.5.padding", "1"},
    {"model.layers.6.type", "avg_pool2d"}, {"model.layers.6.kernel", "2"},
    {"model.layers.6.stride", "null"}, {"model.layers.6.padding", "0"},
    {"model.layers.7.type", "flatten"}, {"model.layers.8.type", "linear"},
    {"model.layers.8.out", "64"}, {"model.layers.8.bias", "false"},
    {"model.layers.9.type", "layer_norm"}, {"model.layers.9.eps", "1e-6"},
    {"model.layers.10.type", "gelu"}, {"model.layers.11.type", "rms_norm"},
    {"model.layers.11.eps", "1e-8"}, {"model.layers.12.type", "silu"},
    {"model.layers.13.type", "dropout"}, {"model.layers.13.p", "0.3"},
    {"model.layers.14.type", "tanh"}, {"model.layers.15.type", "sigmoid"},
    {"model.layers.16.type", "linear"}, {"model.layers.16.out", "10"},
    {"model.layers.16.bias", "true"},   /* a default inside a layer */
    {"loss.name", "nll"}, {"loss.ignore_index", "0"},
    {"optimizer.name", "rmsprop"}, {"optimizer.lr", "1e-2"}, {"optimizer.momentum", "0.5"},
    {"optimizer.alpha", "0.9"}, {"optimizer.eps", "1e-7"},
    {"schedule.name", "multistep"}, {"schedule.milestones", "[100, 200, 300]"},
    {"schedule.gamma", "0.2"}, {0}};

static const kv misc_values[] = {
    {"loss.name", "mse"}, {"optimizer.name", "lion"}, {"optimizer.lr", "1e-4"},
    {"optimizer.betas", "[0.95, 0.98]"}, {"schedule.name", "exponential"},
    {"schedule.step_size", "10"}, {"schedule.gamma", "0.99"}, {0}};

static const kv misc_cosine_values[] = {
    {"loss.name", "bce"}, {"optimizer.name", "adagrad"}, {"optimizer.eps", "1e-10"},
    {"schedule.name", "cosine"}, {"schedule.min_lr", "0"}, {"schedule.total_steps", "1000"}, {0}};

static const char *const full_files[] = {"full_transformer", "full_cnn", "full_sequential",
                                         "full_misc", "full_misc_cosine"};
static const kv *const full_values[] = {transformer_values, cnn_values, sequential_values,
                                        misc_values, misc_cosine_values};

static void test_every_key_parsed(void **state) {
    (void)state;
    lz_config *c[5];
    for (int f = 0; f < 5; f++) {
        char path[128];
        snprintf(path, sizeof path, DIR "%s.yaml", full_files[f]);
        c[f] = load_ok(path, 0, NULL);
        check_values(c[f], full_values[f], full_files[f]);
    }
    /* coverage: each key of the schema is written in at least one fixture */
    for (int i = 0; i < lz_config_schema_len; i++) {
        const lz_config_key *k = &lz_config_schema[i];
        if (k->type == LZ_CFG_MAP || (k->flags & LZ_CFG_META) || k->type == LZ_CFG_LAYERS) continue;
        int set = 0;
        for (int f = 0; f < 5 && !set; f++) {
            char where[160];
            lz_config_origin(c[f], k->path, where, sizeof where);
            set = !strncmp(where, DIR "full_", strlen(DIR "full_"));
        }
        if (!set) fail_msg("no full_*.yaml fixture sets '%s'", k->path);
    }
    /* ... and each key of each layer type, in full_sequential.yaml */
    const lz_config *s = c[2];
    for (int i = 0; i < lz_config_layers_len; i++) {
        const char *dot = strchr(lz_config_layers[i].path, '.');
        int found = 0;
        for (int l = 0; l < lz_config_len(s, "model.layers") && !found; l++) {
            char p[128], where[160];
            snprintf(p, sizeof p, "model.layers.%d.type", l);
            const char *type = lz_config_str(s, p);
            if (strncmp(type, lz_config_layers[i].path, dot ? (size_t)(dot - lz_config_layers[i].path)
                                                            : strlen(lz_config_layers[i].path) + 1))
                continue;
            if (!dot) { found = 1; break; }
            snprintf(p, sizeof p, "model.layers.%d.%s", l, dot + 1);
            found = !strncmp(lz_config_origin(s, p, where, sizeof where), DIR, strlen(DIR));
        }
        if (!found) fail_msg("full_sequential.yaml never sets layer key '%s'", lz_config_layers[i].path);
    }
    for (int f = 0; f < 5; f++) lz_config_free(c[f]);
}

/* ---- bad files: one clear line each, with libyaml's position ---- */

static void test_bad_files(void **state) {
    (void)state;
    LOAD_ERROR(DIR "bad_tab.yaml", DIR "bad_tab.yaml:3:1: tab character (YAML indents with spaces only)");
    LOAD_ERROR(DIR "bad_syntax.yaml", DIR "bad_syntax.yaml:5:6: YAML syntax error: did not find "
               "expected ',' or ']' (while parsing a flow sequence at line 4, column 15)");
    LOAD_ERROR(DIR "bad_indent.yaml", DIR "bad_indent.yaml:4:2: YAML syntax error: did not find "
               "expected key (while parsing a block mapping at line 1, column 1)");
    LOAD_ERROR(DIR "bad_duplicate.yaml", DIR "bad_duplicate.yaml:7:3: duplicate key 'lr' (first at "
               "line 5, column 3)");
    LOAD_ERROR(DIR "bad_unknown_key.yaml", DIR "bad_unknown_key.yaml:8:3: unknown key 'optimiser' in "
               "'train' (did you mean the top-level key 'optimizer'?)");
    LOAD_ERROR(DIR "bad_int.yaml", DIR "bad_int.yaml:7:11: expected an integer for 'train.epochs', got '3.5'");
    LOAD_ERROR(DIR "bad_missing.yaml", DIR "bad_missing.yaml:2:1: missing required key 'data.path'");
    LOAD_ERROR(DIR "no_such_file.yaml", "cannot read config '" DIR "no_such_file.yaml': No such file or directory");
    for (const char *const *p = (const char *const[]){"bad_tab", "bad_syntax", "bad_indent", "bad_duplicate",
                                                      "bad_unknown_key", "bad_int", "bad_missing", NULL}; *p; p++) {
        char path[128];
        snprintf(path, sizeof path, DIR "%s.yaml", *p);
        lz_error_clear();
        assert_null(lz_config_load(path, 0, NULL));
        assert_null(strchr(lz_error(), '\n'));   /* one line */
    }
}

/* ---- schema errors, from text (name "x.yaml") ---- */
#define HEAD "name: x\ndata:\n  path: d.h5\n"
#define MLP HEAD "model:\n  type: mlp\n"
#define SEQ HEAD "model:\n  type: sequential\n  layers:\n"

/* A config over the size limit: the message says the limit and the file's size. */
static void test_size_limit(void **state) {
    (void)state;
    char path[] = "/tmp/lz_config_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("name: big\n", f);
    for (int i = 0; i < (1 << 20) / 64 + 1; i++) fprintf(f, "# %061d\n", i);
    fclose(f);
    lz_error_clear();
    assert_null(lz_config_load(path, 0, NULL));
    if (!strstr(lz_error(), "over the limit of 1048576 bytes (1 MiB) for a config file") ||
        !strstr(lz_error(), path) || !strstr(lz_error(), "it is 1048650 bytes"))
        fail_msg("error \"%s\"", lz_error());
    unlink(path);
}

static void test_type_errors(void **state) {
    (void)state;
    STRING_ERROR(MLP "seed: 1.0\n", "x.yaml:6:7: expected an integer for 'seed', got '1.0'");
    STRING_ERROR(MLP "seed: 1e3\n", "x.yaml:6:7: expected an integer for 'seed', got '1e3'");
    STRING_ERROR(MLP "seed: \"5\"\n", "x.yaml:6:7: expected an integer for 'seed', got the string \"5\"");
    STRING_ERROR(MLP "seed: 99999999999999999999\n",
                 "x.yaml:6:7: expected an integer for 'seed', got '99999999999999999999'");
    STRING_ERROR(MLP "optimizer:\n  lr: fast\n", "x.yaml:7:7: expected a number for 'optimizer.lr', got 'fast'");
    STRING_ERROR(MLP "optimizer:\n  lr: .inf\n", "x.yaml:7:7: expected a number for 'optimizer.lr', got '.inf'");
    STRING_ERROR(MLP "optimizer:\n  lr: 0x10\n", "x.yaml:7:7: expected a number for 'optimizer.lr', got '0x10'");
    STRING_ERROR(MLP "optimizer:\n  lr: [1]\n", "x.yaml:7:7: expected a number for 'optimizer.lr', got a list");
    STRING_ERROR(HEAD "  shuffle: yes\nmodel:\n  type: mlp\n",
                 "x.yaml:4:12: expected true or false for 'data.shuffle', got 'yes'");
    STRING_ERROR(MLP "name2: x\n", "x.yaml:6:1: unknown top-level key 'name2' (did you mean 'name'?)");
    STRING_ERROR("name: {a: 1}\ndata:\n  path: d\nmodel:\n  type: mlp\n",
                 "x.yaml:1:7: expected a string for 'name', got a mapping");
    STRING_ERROR(HEAD "model:\n  type: mpl\n",
                 "x.yaml:5:9: unknown model.type 'mpl' (did you mean 'mlp'? choices: sequential, mlp, cnn, transformer)");
    STRING_ERROR(HEAD "model:\n  type: resnet\n",
                 "x.yaml:5:9: unknown model.type 'resnet' (choices: sequential, mlp, cnn, transformer)");
    STRING_ERROR(MLP "  hidden: 128\n", "x.yaml:6:11: expected a list for 'model.hidden', got '128'");
    STRING_ERROR(MLP "  hidden: [128, 6.5]\n", "x.yaml:6:17: expected an integer for 'model.hidden.1', got '6.5'");
    STRING_ERROR(MLP "  hidden: [128, 0]\n", "x.yaml:6:17: 'model.hidden.1' must be >= 1, got 0");
    STRING_ERROR(MLP "optimizer:\n  betas: [0.9, 0.99, 0.999]\n", "x.yaml:7:10: 'optimizer.betas' takes 2 values, got 3");
    STRING_ERROR(MLP "optimizer:\n  betas: [0.9, 1]\n", "x.yaml:7:16: 'optimizer.betas.1' must be in [0, 1), got 1");
    STRING_ERROR(MLP "optimizer:\n  lr: 0\n", "x.yaml:7:7: 'optimizer.lr' must be > 0, got 0");
    STRING_ERROR(MLP "optimizer:\n  lr: ~\n", "x.yaml:7:7: 'optimizer.lr' cannot be null (expected a number)");
    STRING_ERROR(MLP "optimizer:\n  lr:\n", "x.yaml:7:6: 'optimizer.lr' cannot be null (expected a number)");
    STRING_ERROR(MLP "train: 3\n", "x.yaml:6:8: expected a mapping for 'train', got '3'");
    STRING_ERROR(MLP "finetune:\n  freeze: [a, {b: 1}]\n",
                 "x.yaml:7:15: expected a string for 'finetune.freeze.1', got a mapping");
    STRING_ERROR(MLP "finetune:\n  freeze: [a, ~]\n",
                 "x.yaml:7:15: expected a string for 'finetune.freeze.1', got null");
    STRING_ERROR(MLP "  hidden: [4, ~]\n", "x.yaml:6:15: expected an integer for 'model.hidden.1', got null");
    STRING_ERROR(HEAD "  shuffle: \"true\"\nmodel:\n  type: mlp\n",
                 "x.yaml:4:12: expected true or false for 'data.shuffle', got the string \"true\"");
    STRING_ERROR(MLP "lr: 0.1\n", "x.yaml:6:1: unknown top-level key 'lr' (did you mean 'optimizer.lr'?)");
    STRING_ERROR(MLP "learning_rate: 0.1\n",
                 "x.yaml:6:1: unknown top-level key 'learning_rate' (did you mean 'optimizer.lr'?)");
    STRING_ERROR(MLP "train:\n  lr: 0.1\n", "x.yaml:7:3: unknown key 'lr' in 'train' (did you mean 'optimizer.lr'?)");
    STRING_ERROR(MLP "train:\n  epoch: 1\n", "x.yaml:7:3: unknown key 'epoch' in 'train' (did you mean 'epochs'?)");
    /* a top-level key inside a section is not suggested as if it were one of its keys */
    STRING_ERROR(MLP "train:\n  model: 1\n",
                 "x.yaml:7:3: unknown key 'model' in 'train' ('model' is a top-level key, not a key of 'train')");
    STRING_ERROR(HEAD "  augment:\n    zoom: 2\nmodel:\n  type: mlp\n",
                 "x.yaml:5:5: unknown key 'zoom' in 'data.augment' (keys here: random_crop_padding, hflip)");
    STRING_ERROR(MLP "optimizer:\n  name: sgd\n  betas: [0.9, 0.99]\n",
                 "x.yaml:8:3: 'optimizer.betas' does not apply when optimizer.name is 'sgd' (only with adam/adamw/lion)");
    STRING_ERROR(MLP "  n_heads: 4\n", "x.yaml:6:3: 'model.n_heads' does not apply when model.type is 'mlp' (only with transformer)");
    STRING_ERROR(MLP "schedule:\n  name: multistep\n", "x.yaml:6:1: missing required key 'schedule.milestones'");
    STRING_ERROR("name: x\nmodel:\n  type: mlp\n", "x.yaml:1:1: missing required key 'data.path'");
    STRING_ERROR("data:\n  path: d\nmodel:\n  type: mlp\n", "x.yaml:1:1: missing required key 'name'");
    STRING_ERROR(HEAD "model: {}\n", "x.yaml:4:1: missing required key 'model.type'");
    STRING_ERROR(HEAD "model:\n  type: sequential\n", "x.yaml:4:1: missing required key 'model.layers'");
}

static void test_layer_errors(void **state) {
    (void)state;
    STRING_ERROR(SEQ "    - {type: lineer, out: 3}\n",
                 "x.yaml:7:14: unknown layer type 'lineer' in 'model.layers.0' (did you mean 'linear'?)");
    STRING_ERROR(SEQ "    - conv3d\n", "x.yaml:7:7: unknown layer type 'conv3d' in 'model.layers.0' (did you mean 'conv1d'?)");
    STRING_ERROR(SEQ "    - softplus\n", "x.yaml:7:7: unknown layer type 'softplus' in 'model.layers.0' (see configs/README.md)");
    STRING_ERROR(SEQ "    - relu\n    - {type: linear}\n",
                 "x.yaml:8:7: missing required key 'out' for layer 'linear' in 'model.layers.1'");
    STRING_ERROR(SEQ "    - {type: linear, out: 3, kernel: 3}\n",
                 "x.yaml:7:30: unknown key 'kernel' for layer 'linear' in 'model.layers.0' (keys here: out, bias)");
    STRING_ERROR(SEQ "    - {type: conv2d, out: 3, kernal: 3}\n",
                 "x.yaml:7:30: unknown key 'kernal' for layer 'conv2d' in 'model.layers.0' (did you mean 'kernel'?)");
    STRING_ERROR(SEQ "    - {type: relu, inplace: true}\n",
                 "x.yaml:7:20: unknown key 'inplace' for layer 'relu' in 'model.layers.0' (relu takes no keys)");
    STRING_ERROR(SEQ "    - {out: 3}\n", "x.yaml:7:7: layer 'model.layers.0' has no 'type'");
    STRING_ERROR(SEQ "    - [linear]\n", "x.yaml:7:7: expected a layer type for 'model.layers.0', got a list");
    STRING_ERROR(SEQ "    - {type: dropout, p: 1}\n", "x.yaml:7:26: 'model.layers.0.p' must be in [0, 1), got 1");
    STRING_ERROR(SEQ "    - {type: conv2d, out: 3, stride: 1.5}\n",
                 "x.yaml:7:38: expected an integer for 'model.layers.0.stride', got '1.5'");
    STRING_ERROR(HEAD "model:\n  type: sequential\n  layers: relu\n",
                 "x.yaml:6:11: expected a list of layers for 'model.layers', got 'relu'");
}

static void test_rules_and_yaml_features(void **state) {
    (void)state;
    STRING_ERROR(HEAD "  normalize: {mean: [0.5, 0.5], std: [0.2]}\nmodel:\n  type: mlp\n",
                 "x.yaml:4:38: data.normalize.std has 1 value but data.normalize.mean has 2");
    STRING_ERROR(MLP "schedule:\n  name: multistep\n  milestones: [10, 30, 20]\n",
                 "x.yaml:8:24: schedule.milestones must increase: 20 after 30");
    STRING_ERROR(MLP "schedule:\n  name: warmup_cosine\n",
                 "x.yaml:7:9: schedule 'warmup_cosine' needs schedule.warmup_steps > 0");
    STRING_ERROR(HEAD "model:\n  type: transformer\n  n_heads: 3\n",
                 "x.yaml:6:12: model.n_heads (3) must divide model.d_model (512)");
    STRING_ERROR(HEAD "model:\n  type: transformer\n  n_heads: 8\n  d_model: 8\n  positions: rotary\n",
                 "x.yaml:8:14: rotary positions need an even head size (d_model / n_heads = 1)");
    STRING_ERROR(MLP "optimizer:\n  name: sgd\n  nesterov: true\n",
                 "x.yaml:8:13: optimizer.nesterov needs optimizer.momentum > 0");
    STRING_ERROR(MLP "seed: !!int 3\n", "x.yaml:6:7: YAML tags such as 'tag:yaml.org,2002:int' are not supported");
    STRING_ERROR(MLP "---\nname: y\n", "x.yaml:6:1: a second YAML document (one config per file)");
    STRING_ERROR("- a\n- b\n", "x.yaml:1:1: a config is a mapping of keys to values, not a list");
    STRING_ERROR("just words\n", "x.yaml:1:1: a config is a mapping of keys to values, not a single value");
    STRING_ERROR(MLP "? [a, b]\n: 1\n", "x.yaml:6:3: keys must be plain words, not sequences");
    STRING_ERROR(MLP "seed: *nothing\n", "x.yaml:6:7: unknown alias '*nothing'");
    STRING_ERROR("", "x.yaml:1:1: missing required key 'name'");
    /* anchors and aliases, !!str, quoted keys, a null section, empty lists */
    lz_config *c = lz_config_load_string(
        "name: !!str 123\n\"data\":\n  path: &p 'd.h5'\n  train_split: *p\n  augment:\n"
        "model: &m\n  type: mlp\n  hidden: &h [64, 32]\nfinetune:\n  freeze: []\n  lora:\n"
        "    targets: [\"*.qkv\"]\ntrain: {epochs: 2, out_dir: *p}\n", "x.yaml", 0, NULL);
    if (!c) fail_msg("%s", lz_error());
    check_values(c, (kv[]){{"name", "123"}, {"data.path", "d.h5"}, {"data.train_split", "d.h5"},
                           {"train.out_dir", "d.h5"}, {"model.hidden", "[64, 32]"},
                           {"data.augment.hflip", "false"}, {"finetune.freeze", "[]"},
                           {"finetune.lora.targets", "[*.qkv]"}, {"train.epochs", "2"}, {0}}, "yaml");
    lz_config_free(c);
}

/* ---- inheritance and overrides ---- */

static void test_base_inheritance(void **state) {
    (void)state;
    lz_config *c = load_ok(DIR "inherit/child.yaml", 0, NULL);
    /* optimizer switched adam -> sgd: betas dropped, lr and weight_decay inherited */
    check_values(c, (kv[]){{"name", "child"}, {"seed", "7"}, {"data.batch_size", "128"},
                           {"data.normalize.mean", "[0.1307]"}, {"optimizer.name", "sgd"},
                           {"optimizer.lr", "1e-3"}, {"optimizer.weight_decay", "0.01"},
                           {"optimizer.momentum", "0.9"}, {"train.epochs", "7"},
                           {"train.log_every", "20"}, {"model.hidden", "[64]"}, {0}}, "child");
    assert_false(lz_config_has(c, "optimizer.betas"));
    char where[160];
    assert_string_equal(lz_config_origin(c, "data.batch_size", where, sizeof where),
                        DIR "inherit/common.yaml:6:15");
    assert_string_equal(lz_config_origin(c, "train.epochs", where, sizeof where), DIR "inherit/child.yaml:10:11");
    lz_config_free(c);

    /* two levels, the base path relative to the including file; then overrides in order */
    const char *ov[] = {"train.epochs=2", "data.batch_size=16", "train.epochs=3"};
    c = load_ok(DIR "inherit/sub/grandchild.yaml", 3, ov);
    check_values(c, (kv[]){{"name", "grandchild"}, {"seed", "7"}, {"data.batch_size", "16"},
                           {"data.path", "data/mnist.h5"}, {"model.hidden", "[32, 16]"},
                           {"optimizer.name", "sgd"}, {"optimizer.momentum", "0.9"},
                           {"train.epochs", "3"}, {"train.log_every", "20"}, {0}}, "grandchild");
    assert_string_equal(lz_config_origin(c, "train.epochs", where, sizeof where),
                        "command line 'train.epochs=3'");
    assert_string_equal(lz_config_origin(c, "model.hidden", where, sizeof where),
                        DIR "inherit/sub/grandchild.yaml:6:11");
    assert_string_equal(lz_config_origin(c, "model.type", where, sizeof where),
                        DIR "inherit/child.yaml:4:9");
    lz_config_free(c);

    /* switching back on the command line drops momentum; a key set in the same file is an error */
    c = load_ok(DIR "inherit/child.yaml", 1, (const char *const[]){"optimizer.name=adamw"});
    assert_false(lz_config_has(c, "optimizer.momentum"));
    check_value(c, "optimizer.betas", "[0.9, 0.999]", "switch back");
    check_value(c, "optimizer.lr", "0.001", "switch back");
    lz_config_free(c);
    LOAD_ERROR(DIR "inherit/bad_after_switch.yaml", DIR "inherit/bad_after_switch.yaml:6:3: 'optimizer.betas' "
               "does not apply when optimizer.name is 'sgd' (only with adam/adamw/lion)");
    LOAD_ERROR(DIR "inherit/common.yaml", DIR "inherit/common.yaml:1:1: missing required key 'model.type'");
}

static void test_base_errors(void **state) {
    (void)state;
    LOAD_ERROR(DIR "inherit/cycle_a.yaml", DIR "inherit/cycle_b.yaml:2:7: base cycle: " DIR "inherit/cycle_a.yaml"
               " -> " DIR "inherit/cycle_b.yaml -> " DIR "inherit/cycle_a.yaml");
    LOAD_ERROR(DIR "inherit/self.yaml", DIR "inherit/self.yaml:1:7: base cycle: " DIR "inherit/self.yaml -> "
               DIR "inherit/self.yaml");
    LOAD_ERROR(DIR "inherit/missing_base.yaml", DIR "inherit/missing_base.yaml:2:7: cannot read base config "
               "'nowhere.yaml' (" DIR "inherit/nowhere.yaml): No such file or directory");
    STRING_ERROR("base: [a.yaml]\n", "x.yaml:1:7: 'base' must name a config file");
    /* from a string: base relative to the name's folder */
    lz_config *c = lz_config_load_string("base: child.yaml\nname: s\n", DIR "inherit/mem.yaml", 0, NULL);
    if (!c) fail_msg("%s", lz_error());
    check_value(c, "optimizer.momentum", "0.9", "string base");
    check_value(c, "name", "s", "string base");
    lz_config_free(c);
}

static void test_overrides(void **state) {
    (void)state;
    const char *ov[] = {
        "seed=42", "optimizer.lr=3e-4", "data.shuffle=false", "name=run 7", "model.activation=gelu",
        "model.hidden=[512, 256]", "data.normalize.mean=[0.5]", "data.normalize.std=[0.25]",
        "finetune.freeze=[\"layers.0.*\"]", "train.steps=100", "train.steps=200", "data.val_split=null",
        "train.clip_grad_norm=1", "finetune.lora={rank: 4, alpha: 8}", "finetune.head.name=fc",
    };
    lz_config *c = load_ok(DIR "minimal.yaml", (int)(sizeof ov / sizeof *ov), ov);
    check_values(c, (kv[]){{"seed", "42"}, {"optimizer.lr", "0.0003"}, {"data.shuffle", "false"},
                           {"name", "run 7"}, {"model.activation", "gelu"}, {"model.hidden", "[512, 256]"},
                           {"data.normalize.mean", "[0.5]"}, {"data.normalize.std", "[0.25]"},
                           {"finetune.freeze", "[layers.0.*]"}, {"train.steps", "200"},
                           {"data.val_split", "null"}, {"train.clip_grad_norm", "1"},
                           {"finetune.lora.rank", "4"}, {"finetune.lora.alpha", "8"},
                           {"finetune.lora.dropout", "0"}, {"finetune.head.name", "fc"}, {0}}, "overrides");
    lz_config_free(c);

    /* layers: replace the list, or one item by index (a shorthand item becomes a map) */
    const char *lov[] = {"model.layers.16.out=5", "model.layers.4.type=gelu", "model.layers.13={type: dropout, p: 0.1}"};
    c = load_ok(DIR "full_sequential.yaml", 3, lov);
    check_values(c, (kv[]){{"model.layers.16.out", "5"}, {"model.layers.4.type", "gelu"},
                           {"model.layers.13.p", "0.1"}, {0}}, "layer overrides");
    lz_config_free(c);
    c = load_ok(DIR "full_sequential.yaml", 1, (const char *const[]){"model.layers=[flatten, {type: linear, out: 3}]"});
    assert_int_equal(lz_config_len(c, "model.layers"), 2);
    check_value(c, "model.layers.1.out", "3", "layers list");
    lz_config_free(c);
    c = load_ok(DIR "minimal.yaml", 2, (const char *const[]){"model.type=sequential", "model.layers=[relu]"});
    check_value(c, "model.layers.0.type", "relu", "layers on mlp");
    lz_config_free(c);

    const char *m = DIR "minimal.yaml";
    OVERRIDE_ERROR(m, "optimizer.lrr=1", "command line 'optimizer.lrr=1': unknown key 'lrr' in 'optimizer' (did you mean 'lr'?)");
    OVERRIDE_ERROR(m, "optimiser.lr=1", "command line 'optimiser.lr=1': unknown top-level key 'optimiser' (did you mean 'optimizer'?)");
    OVERRIDE_ERROR(m, "train.lr=1", "command line 'train.lr=1': unknown key 'lr' in 'train' (did you mean 'optimizer.lr'?)");
    OVERRIDE_ERROR(m, "optimizer.lr=fast", "command line 'optimizer.lr=fast': expected a number for 'optimizer.lr', got 'fast'");
    OVERRIDE_ERROR(m, "train.epochs=3.5", "command line 'train.epochs=3.5': expected an integer for 'train.epochs', got '3.5'");
    OVERRIDE_ERROR(m, "data.shuffle=1", "command line 'data.shuffle=1': expected true or false for 'data.shuffle', got '1'");
    OVERRIDE_ERROR(m, "model.hidden=[1,x]", "command line 'model.hidden=[1,x]': expected an integer for 'model.hidden.1', got 'x'");
    OVERRIDE_ERROR(m, "optimizer.betas=[0.9,", "command line 'optimizer.betas=[0.9,': YAML syntax error: did not find expected node content");
    OVERRIDE_ERROR(m, "optimizer.name=sgdd", "command line 'optimizer.name=sgdd': unknown optimizer.name 'sgdd' (did you mean 'sgd'? choices: adam, adamw, sgd, rmsprop, adagrad, lion)");
    OVERRIDE_ERROR(m, "optimizer.momentum=0.9", "command line 'optimizer.momentum=0.9': 'optimizer.momentum' does not apply when optimizer.name is 'adam' (only with sgd/rmsprop)");
    OVERRIDE_ERROR(m, "optimizer.lr", "command line 'optimizer.lr': expected key=value");
    OVERRIDE_ERROR(m, "=3", "command line '=3': expected key=value");
    OVERRIDE_ERROR(m, "optimizer..lr=3", "command line 'optimizer..lr=3': empty key segment in 'optimizer..lr'");
    OVERRIDE_ERROR(m, "optimizer.lr.x=3", "command line 'optimizer.lr.x=3': 'optimizer.lr' is a value, not a section");
    OVERRIDE_ERROR(m, "base=other.yaml", "command line 'base=other.yaml': 'base' can only be set in a file");
    OVERRIDE_ERROR(m, "model.layers.0.out=3", "command line 'model.layers.0.out=3': 'model.layers' has no items to index");
    OVERRIDE_ERROR(m, "optimizer.lr=", "command line 'optimizer.lr=': 'optimizer.lr' cannot be null (expected a number)");
    OVERRIDE_ERROR(m, "train.epochs=0", "command line 'train.epochs=0': 'train.epochs' must be >= 1, got 0");
    const char *s = DIR "full_sequential.yaml";
    OVERRIDE_ERROR(s, "model.layers.17.out=3", "command line 'model.layers.17.out=3': 'model.layers' has no item 17 (17 items)");
    OVERRIDE_ERROR(s, "model.layers.x.out=3", "command line 'model.layers.x.out=3': 'model.layers' has no item x (17 items)");
    OVERRIDE_ERROR(s, "model.layers.16.outt=3", "command line 'model.layers.16.outt=3': unknown key 'outt' for layer 'linear' in 'model.layers.16' (did you mean 'out'?)");
    OVERRIDE_ERROR(s, "model.layers.16.out=-3", "command line 'model.layers.16.out=-3': 'model.layers.16.out' must be >= 1, got -3");
    lz_error_clear();
    assert_null(lz_config_load(m, 1, (const char *const[]){NULL}));
    assert_string_equal(lz_error(), "command line: NULL override");
}

/* ---- the effective config as YAML ---- */

/* Same keys, same typed values, same origins aside. */
static void assert_same(const lz_config *a, const lz_config *b, const char *ctx) {
    char *da = lz_config_dump_string(a), *db = lz_config_dump_string(b);
    assert_non_null(da);
    assert_non_null(db);
    if (strcmp(da, db)) fail_msg("%s: dumps differ:\n%s\n----\n%s", ctx, da, db);
    free(da);
    free(db);
    for (int i = 0; i < lz_config_schema_len; i++) {
        const lz_config_key *k = &lz_config_schema[i];
        if (k->type == LZ_CFG_MAP || (k->flags & LZ_CFG_META)) continue;
        assert_int_equal(lz_config_has(a, k->path), lz_config_has(b, k->path));
        if (!lz_config_has(a, k->path)) continue;
        switch (k->type) {
        case LZ_CFG_INT: assert_true(lz_config_int(a, k->path) == lz_config_int(b, k->path)); break;
        case LZ_CFG_FLOAT: assert_true(lz_config_float(a, k->path) == lz_config_float(b, k->path)); break;
        case LZ_CFG_BOOL: assert_int_equal(lz_config_bool(a, k->path), lz_config_bool(b, k->path)); break;
        case LZ_CFG_STR: case LZ_CFG_ENUM:
            assert_string_equal(lz_config_str(a, k->path), lz_config_str(b, k->path)); break;
        default: {
            int n = lz_config_len(a, k->path);
            assert_int_equal(n, lz_config_len(b, k->path));
            for (int j = 0; j < n; j++) {
                char p[128];
                snprintf(p, sizeof p, "%s.%d", k->path, j);
                if (k->type == LZ_CFG_FLOATS) assert_true(lz_config_float(a, p) == lz_config_float(b, p));
                if (k->type == LZ_CFG_INTS) assert_true(lz_config_int(a, p) == lz_config_int(b, p));
                if (k->type == LZ_CFG_STRS) assert_string_equal(lz_config_str(a, p), lz_config_str(b, p));
            }
        }
        }
    }
}

static void round_trip(lz_config *c, const char *ctx) {
    char *text = lz_config_dump_string(c);
    assert_non_null(text);
    lz_config *back = lz_config_load_string(text, "dump.yaml", 0, NULL);
    if (!back) fail_msg("%s: the dump does not load: %s\n%s", ctx, lz_error(), text);
    assert_same(c, back, ctx);
    /* through a file, with lz_config_dump */
    char path[] = "/tmp/lz_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(lz_config_dump(c, f), 0);
    fclose(f);
    lz_config *again = lz_config_load(path, 0, NULL);
    unlink(path);
    if (!again) fail_msg("%s: %s", ctx, lz_error());
    assert_same(back, again, ctx);
    lz_config_free(again);
    lz_config_free(back);
    free(text);
}

static void test_dump_round_trip(void **state) {
    (void)state;
    const char *files[] = {"minimal", "full_transformer", "full_cnn", "full_sequential", "full_misc",
                           "full_misc_cosine", "inherit/child", "inherit/sub/grandchild"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[128];
        snprintf(path, sizeof path, DIR "%s.yaml", files[i]);
        lz_config *c = load_ok(path, 0, NULL);
        round_trip(c, files[i]);
        lz_config_free(c);
    }
    /* strings that need quotes, floats that need all their digits */
    const char *ov[] = {"name='true'", "data.path='123'", "data.train_split='null'", "data.val_split='~'",
                        "train.out_dir=\"a: b # c\"", "finetune.init_from='-x'",
                        "finetune.freeze=['*.bias', '[x]', 'é/ü', '', 'yes', \"it's\", \"tab\\there\"]",
                        "optimizer.lr=0.1", "optimizer.weight_decay=0.30000000000000004",
                        "optimizer.eps=5e-324", "finetune.lora.alpha=1e300", "model.dropout=0.3333333333333333"};
    lz_config *c = load_ok(DIR "minimal.yaml", (int)(sizeof ov / sizeof *ov), ov);
    check_values(c, (kv[]){{"name", "true"}, {"data.path", "123"},
                           {"data.val_split", "~"}, {"train.out_dir", "a: b # c"},
                           {"finetune.init_from", "-x"}, {"optimizer.weight_decay", "0.30000000000000004"},
                           {0}}, "quoting");
    assert_string_equal(lz_config_str(c, "data.train_split"), "null");   /* a string, not null */
    assert_string_equal(lz_config_str(c, "finetune.freeze.6"), "tab\there");
    assert_true(lz_config_float(c, "optimizer.eps") == 5e-324);
    round_trip(c, "quoting");
    char *text = lz_config_dump_string(c);
    assert_non_null(strstr(text, "  lr: 0.1\n"));
    assert_non_null(strstr(text, "  eps: 5.0e-324\n"));
    assert_non_null(strstr(text, "  alpha: 1.0e+300\n"));
    assert_non_null(strstr(text, "name: \"true\"\n"));
    assert_non_null(strstr(text, "  val_split: \"~\"\n"));
    free(text);
    lz_config_free(c);
}

/* ---- getters ---- */

static void test_getters(void **state) {
    (void)state;
    lz_config *c = load_ok(DIR "full_sequential.yaml", 0, NULL);
    assert_int_equal(lz_config_int(c, "model.layers.1.out"), 8);
    assert_true(lz_config_float(c, "model.layers.1.out") == 8.0);   /* ints read as floats too */
    assert_int_equal(lz_config_len(c, "model.layers"), 17);
    assert_int_equal(lz_config_len(c, "schedule.milestones"), 3);
    assert_true(lz_config_has(c, "model.layers.5.stride"));
    assert_false(lz_config_has(c, "model.layers.6.stride"));
    assert_false(lz_config_has(c, "optimizer.betas"));
    char where[128];
    assert_string_equal(lz_config_origin(c, "model.layers.2.kernel", where, sizeof where),
                        DIR "full_sequential.yaml:12:15");
    assert_string_equal(lz_config_origin(c, "nope", where, sizeof where), "");
    t_assert_error(lz_config_str(c, "optimizer.betas"), "config: no value at 'optimizer.betas' (unknown key, or it does not apply)");
    t_assert_error(lz_config_str(c, "model.layers.6.stride"), "config: 'model.layers.6.stride' is null");
    t_assert_error(lz_config_str(c, "optimizer.lr"), "config: 'optimizer.lr' is not a string");
    t_assert_error(lz_config_str(c, "model.layers.99"), "config: no value at 'model.layers.99'");
    t_assert_error(lz_config_str(c, "data"), "config: 'data' is not a string");
    lz_error_clear();
    assert_int_equal(lz_config_int(c, "optimizer.lr"), 0);
    assert_string_equal(lz_error(), "config: 'optimizer.lr' is not an integer");
    assert_true(isnan(lz_config_float(c, "data.shuffle")));
    assert_string_equal(lz_error(), "config: 'data.shuffle' is not a number");
    assert_int_equal(lz_config_bool(c, "seed"), 0);
    assert_string_equal(lz_error(), "config: 'seed' is not a bool");
    assert_int_equal(lz_config_len(c, "seed"), -1);
    assert_string_equal(lz_error(), "config: 'seed' is not a list");
    lz_config_free(c);
    lz_config_free(NULL);
    t_assert_error(lz_config_load(NULL, 0, NULL), "lz_config_load: no path");
    t_assert_error(lz_config_dump_string(NULL), "lz_config_dump: no config");
}

/* ---- documentation ---- */

static void test_readme_matches_schema(void **state) {
    (void)state;
    char *readme = read_all(README), *md = lz_config_schema_markdown();
    assert_non_null(readme);
    assert_non_null(md);
    char *begin = strstr(readme, BEGIN_MARK), *end = begin ? strstr(begin, END_MARK) : NULL;
    if (!begin || !end) fail_msg(README " lacks the markers %s ... %s", BEGIN_MARK, END_MARK);
    begin += strlen(BEGIN_MARK);
    size_t n = (size_t)(end - begin), m = strlen(md);
    if (n != m || memcmp(begin, md, n)) {
        size_t i = 0;
        while (i < n && i < m && begin[i] == md[i]) i++;
        fail_msg(README " differs from the schema at byte %zu (\"%.60s\" vs \"%.60s\"); run "
                 "`build/<dir>/tests/test_config --write-readme` from the repository root", i, begin + i, md + i);
    }
    /* every key of the schema is in the reference, every layer type too */
    for (int i = 0; i < lz_config_schema_len; i++) {
        char k[128];
        snprintf(k, sizeof k, lz_config_schema[i].type == LZ_CFG_MAP ? "### `%s`" : "| `%s` |", lz_config_schema[i].path);
        if (!strstr(md, k)) fail_msg("'%s' is not documented", lz_config_schema[i].path);
    }
    free(md);
    free(readme);
}

static int write_readme(void) {
    char *readme = read_all(README), *md = lz_config_schema_markdown();
    char *begin = readme ? strstr(readme, BEGIN_MARK) : NULL, *end = begin ? strstr(begin, END_MARK) : NULL;
    if (!begin || !end || !md) { fprintf(stderr, README ": cannot find the markers\n"); return 2; }
    FILE *f = fopen(README, "w");
    if (!f) { perror(README); return 1; }
    fprintf(f, "%.*s%s%s", (int)(begin + strlen(BEGIN_MARK) - readme), readme, md, end);
    fclose(f);
    free(md);
    free(readme);
    printf("wrote " README "\n");
    return 0;
}

/* Recipes in configs/ must load (their data need not exist). */
static void test_recipes_load(void **state) {
    (void)state;
    FILE *p = popen("ls configs/*.yaml 2>/dev/null", "r");
    assert_non_null(p);
    char line[512];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        lz_config *c = lz_config_load(line, 0, NULL);
        if (!c) { pclose(p); fail_msg("%s", lz_error()); }
        round_trip(c, line);
        lz_config_free(c);
    }
    pclose(p);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--write-readme")) return write_readme();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_consistent),
        cmocka_unit_test(test_defaults_applied),
        cmocka_unit_test(test_every_key_parsed),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_layer_errors),
        cmocka_unit_test(test_rules_and_yaml_features),
        cmocka_unit_test(test_base_inheritance),
        cmocka_unit_test(test_base_errors),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_readme_matches_schema),
        cmocka_unit_test(test_recipes_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
