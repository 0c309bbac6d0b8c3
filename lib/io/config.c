/* Loading configs: files and their `base:` chain, merging, command-line overrides, then the
 * schema check (config_check.c); and reading the effective config by dotted path. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core.h"
#include "config_internal.h"

enum { MAX_BASES = 16, MAX_FILE = 1 << 20 };

typedef struct {
    arena *perm;                        /* the result: effective tree, file names */
    arena *tmp;                         /* parsed input trees */
    const char *ids[MAX_BASES + 1];     /* the chain of files being loaded (real paths) */
    const char *names[MAX_BASES + 1];   /* ... as written, for messages */
    int depth;
} loader;

/* ---- files ---- */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_FILE;
    if (n > MAX_FILE) errno = EFBIG;
    fclose(f);
    if (bad) { free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Why read_file failed: errno's words, or the size limit with the file's size. */
static const char *read_error(const char *path, char *buf, size_t n) {
    struct stat st;
    if (errno != EFBIG) return strerror(errno);
    if (stat(path, &st)) st.st_size = MAX_FILE + 1;
    snprintf(buf, n, "it is %lld bytes, over the limit of %d bytes (1 MiB) for a config file",
             (long long)st.st_size, MAX_FILE);
    return buf;
}

/* Removes "." segments and "dir/.." pairs, so chains in messages stay readable. */
static void normalize(char *p) {
    char *seg[128];
    int n = 0, abs = p[0] == '/';
    char *save = NULL;
    for (char *s = strtok_r(p + abs, "/", &save); s && n < 128; s = strtok_r(NULL, "/", &save)) {
        if (!strcmp(s, ".")) continue;
        if (!strcmp(s, "..") && n > 0 && strcmp(seg[n - 1], "..")) { n--; continue; }
        seg[n++] = s;
    }
    char out[PATH_MAX];
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i || abs ? "/" : "", seg[i]);
    if (!n) snprintf(out, sizeof out, abs ? "/" : ".");
    strcpy(p, out);
}

/* `base` relative to the folder of `from`. */
static char *base_path(arena **a, const char *from, const char *base) {
    const char *slash = strrchr(from, '/');
    char buf[PATH_MAX];
    if (base[0] == '/' || !slash) snprintf(buf, sizeof buf, "%s", base);
    else snprintf(buf, sizeof buf, "%.*s/%s", (int)(slash - from), from, base);
    normalize(buf);
    return cfg_strdup(a, buf);
}

/* ---- merging: the child's keys over the base's ---- */

/* Is `path` the enum that a `when` of the schema depends on (e.g. optimizer.name)? */
static int decides(const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < lz_config_schema_len; i++) {
        const char *w = lz_config_schema[i].when;
        if (w && !strncmp(w, path, n) && w[n] == '=') return 1;
    }
    return 0;
}

/* The section `sect` switches its deciding key `path` to `now`: drop the inherited keys of
 * map m that do not apply any more (adam's betas when the child says sgd). */
static void drop_inapplicable(cnode *m, const char *path, const char *now) {
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    size_t sect = dot ? (size_t)(dot - path) + 1 : 0;
    for (int i = 0; i < m->n;) {
        char full[256];
        snprintf(full, sizeof full, "%.*s%s", (int)sect, path, m->keys[i]->text);
        const lz_config_key *e = cfg_find(lz_config_schema, lz_config_schema_len, full);
        if (e && e->when && !strncmp(e->when, path, n) && e->when[n] == '=' &&
            !cfg_in_choices(e->when + n + 1, now))
            cfg_remove(m, i);
        else
            i++;
    }
}

static void join(char *buf, size_t size, const char *a, const char *b) {
    if (*a) snprintf(buf, size, "%s.%s", a, b);
    else snprintf(buf, size, "%s", b);
}

/* Maps merge key by key (recursively); anything else is replaced. */
static cnode *merge(arena **a, cnode *base, cnode *child, const char *sect) {
    if (base->kind != CN_MAP || child->kind != CN_MAP) return child;
    char path[256];
    for (int i = 0; i < child->n; i++) {
        join(path, sizeof path, sect, child->keys[i]->text);
        const cnode *now = child->vals[i];
        if (now->kind != CN_SCALAR || !decides(path)) continue;
        const cnode *was = cfg_get(base, child->keys[i]->text, NULL);
        const char *before = was && was->kind == CN_SCALAR ? was->text
                           : cfg_find(lz_config_schema, lz_config_schema_len, path)->def;
        if (before && strcmp(before, now->text)) drop_inapplicable(base, path, now->text);
    }
    for (int i = 0; i < child->n; i++) {
        int idx;
        cnode *b = cfg_get(base, child->keys[i]->text, &idx);
        if (!b) {
            if (cfg_push(a, base, child->keys[i], child->vals[i])) return lz_fail("out of memory");
            continue;
        }
        join(path, sizeof path, sect, child->keys[i]->text);
        if (!(base->vals[idx] = merge(a, b, child->vals[i], path))) return NULL;
        base->keys[idx] = child->keys[i];   /* messages point at the key that won */
    }
    return base;
}

/* ---- a file and its bases ---- */
static cnode *load_tree(loader *L, const char *text, size_t len, const char *name, const char *id) {
    cnode *root = cfg_parse_yaml(&L->tmp, text, len, name);
    if (!root) return NULL;
    int idx;
    cnode *b = cfg_get(root, "base", &idx);
    if (!b) return root;
    cnode *key = root->keys[idx];
    cfg_remove(root, idx);
    if (b->kind != CN_SCALAR || cfg_is_null(b) || !*b->text)
        return cfg_fail(b, "'base' must name a config file");
    L->ids[L->depth] = id;
    L->names[L->depth] = name;
    L->depth++;
    cnode *merged = NULL;
    char *path = base_path(&L->perm, name, b->text), *real = NULL, *btext = NULL;
    if (!path) { lz_fail("out of memory"); goto out; }
    size_t blen;
    if (!(btext = read_file(path, &blen))) {
        char why[128];
        cfg_fail(b, "cannot read base config '%s' (%s): %s", b->text, path,
                 read_error(path, why, sizeof why));
        goto out;
    }
    real = realpath(path, NULL);
    const char *bid = real ? cfg_strdup(&L->perm, real) : path;
    for (int i = 0; i < L->depth; i++)
        if (!strcmp(L->ids[i], bid)) {
            char chain[1024];
            size_t n = 0;
            for (int j = i; j < L->depth; j++)
                n += (size_t)snprintf(chain + n, n < sizeof chain ? sizeof chain - n : 0, "%s -> ",
                                      L->names[j]);
            if (n < sizeof chain) snprintf(chain + n, sizeof chain - n, "%s", path);
            cfg_fail(b, "base cycle: %s", chain);
            goto out;
        }
    if (L->depth > MAX_BASES) {
        cfg_fail(key, "more than %d levels of 'base'", MAX_BASES);
        goto out;
    }
    cnode *parent = load_tree(L, btext, blen, path, bid);
    if (parent) merged = merge(&L->tmp, parent, root, "");
out:
    L->depth--;
    free(real);
    free(btext);
    return merged;
}

/* ---- command-line overrides ---- */
static int is_index(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* "key.sub=value" applied to the merged tree `root`. */
static int apply_override(loader *L, cnode *root, const char *arg) {
    const char *origin = cfg_printf(&L->perm, "command line '%s'", arg);
    cnode at = {.file = origin};
    const char *eq = strchr(arg, '=');
    if (!origin) { lz_fail("out of memory"); return -1; }
    if (!eq || eq == arg) { cfg_fail(&at, "expected key=value"); return -1; }
    char key[256], sect[256] = "", path[256], msg[512];
    if ((size_t)(eq - arg) >= sizeof key) { cfg_fail(&at, "key too long"); return -1; }
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    cnode *val = cfg_parse_value(&L->tmp, eq + 1, origin);
    if (!val) return -1;
    /* the segments of the key; empty ones ("a..b", "a.") are mistakes */
    char *segs[32];
    int nseg = 0;
    for (char *s = key;; s++) {
        if (nseg == 32) { cfg_fail(&at, "key too deep"); return -1; }
        segs[nseg++] = s;
        if (!(s = strchr(s, '.'))) break;
        *s = 0;
    }
    for (int i = 0; i < nseg; i++)
        if (!*segs[i]) { cfg_fail(&at, "empty key segment in '%.*s'", (int)(eq - arg), arg); return -1; }
    /* walk down, checking keys against the schema until inside a layer of model.layers */
    cnode *node = root, *layer = NULL;
    for (int si = 0; si < nseg; si++) {
        char *s = segs[si];
        int last = si == nseg - 1;
        if (node->kind == CN_SEQ) {
            int i = is_index(s) ? atoi(s) : -1;
            if (i < 0 || i >= node->n) {
                cfg_fail(&at, "'%s' has no item %s (%d item%s)", sect, s, node->n, node->n == 1 ? "" : "s");
                return -1;
            }
            if (last) { node->vals[i] = val; return 0; }
            layer = node->vals[i];
            if (layer->kind == CN_SCALAR) {   /* shorthand `relu` -> {type: relu} */
                cnode *m = cfg_node(&L->tmp, CN_MAP, layer->file, layer->line, layer->col);
                cnode *k = cfg_node(&L->tmp, CN_SCALAR, origin, 0, 0);
                if (!m || !k || cfg_push(&L->tmp, m, k, layer)) { lz_fail("out of memory"); return -1; }
                k->text = "type";
                node->vals[i] = layer = m;
            }
            node = layer;
            continue;
        }
        join(path, sizeof path, sect, s);
        const lz_config_key *e = layer ? NULL : cfg_find(lz_config_schema, lz_config_schema_len, path);
        if (!layer && (!e || (e->flags & LZ_CFG_META))) {
            if (e) snprintf(msg, sizeof msg, "'%s' can only be set in a file", path);
            else cfg_unknown_key(msg, sizeof msg, sect, s);
            cfg_fail(&at, "%s", msg);
            return -1;
        }
        if (!last && !layer && e->type != LZ_CFG_MAP && e->type != LZ_CFG_LAYERS) {
            cfg_fail(&at, "'%s' is a value, not a section", path);
            return -1;
        }
        if (node->kind != CN_MAP) { cfg_fail(&at, "'%s' is not a mapping", sect); return -1; }
        int idx = -1;
        cnode *child = cfg_get(node, s, &idx);
        cnode *k = cfg_node(&L->tmp, CN_SCALAR, origin, 0, 0);
        if (!k || !(k->text = cfg_strdup(&L->tmp, s))) { lz_fail("out of memory"); return -1; }
        if (last) {
            /* through merge, so that switching optimizer.name drops keys that no longer apply */
            cnode *one = cfg_node(&L->tmp, CN_MAP, origin, 0, 0);
            if (!one || cfg_push(&L->tmp, one, k, val)) { lz_fail("out of memory"); return -1; }
            /* ("-": a layer's keys decide nothing) */
            return merge(&L->tmp, node, one, layer ? "-" : sect) ? 0 : -1;
        }
        if (!child || (child->kind != CN_MAP && child->kind != CN_SEQ)) {
            if (e && e->type == LZ_CFG_LAYERS) {
                cfg_fail(&at, "'%s' has no items to index", path);
                return -1;
            }
            cnode *m = cfg_node(&L->tmp, CN_MAP, origin, 0, 0);
            if (!m) { lz_fail("out of memory"); return -1; }
            if (idx >= 0) node->vals[idx] = m, node->keys[idx] = k;
            else if (cfg_push(&L->tmp, node, k, m)) { lz_fail("out of memory"); return -1; }
            child = m;
        }
        node = child;
        snprintf(sect, sizeof sect, "%s", path);
    }
    return 0;
}

/* ---- load ---- */
static lz_config *load(const char *text, size_t len, const char *name, int nov,
                       const char *const *ov) {
    loader L = {0};
    lz_config *cfg = calloc(1, sizeof *cfg);
    const char *file = cfg_strdup(&L.perm, name);
    if (!cfg || !file) { lz_fail("out of memory"); goto fail; }
    char *real = realpath(name, NULL);
    const char *id = real ? cfg_strdup(&L.perm, real) : file;
    free(real);
    cnode *root = load_tree(&L, text, len, file, id);
    if (!root) goto fail;
    for (int i = 0; i < nov; i++) {
        if (!ov[i]) { lz_fail("command line: NULL override"); goto fail; }
        if (apply_override(&L, root, ov[i])) goto fail;
    }
    cnode at = {.file = file, .line = 1, .col = 1};
    cfg->root = cfg_build(&L.perm, root, &at);
    if (!cfg->root) goto fail;
    cfg->mem = L.perm;
    cfg_arena_free(L.tmp);
    if (cfg_check_rules(cfg)) { lz_config_free(cfg); return NULL; }
    return cfg;
fail:
    cfg_arena_free(L.tmp);
    cfg_arena_free(L.perm);
    free(cfg);
    return NULL;
}

lz_config *lz_config_load(const char *path, int nov, const char *const *ov) {
    if (!path) return lz_fail("lz_config_load: no path");
    size_t len;
    char *text = read_file(path, &len);
    char why[128];
    if (!text) return lz_fail("cannot read config '%s': %s", path, read_error(path, why, sizeof why));
    lz_config *cfg = load(text, len, path, nov, ov);
    free(text);
    return cfg;
}

lz_config *lz_config_load_string(const char *text, const char *name, int nov,
                                 const char *const *ov) {
    if (!text) return lz_fail("lz_config_load_string: no text");
    return load(text, strlen(text), name ? name : "<string>", nov, ov);
}

void lz_config_free(lz_config *cfg) {
    if (!cfg) return;
    cfg_arena_free(cfg->mem);
    free(cfg);
}

/* ---- reading ---- */
cnode *cfg_lookup(const lz_config *cfg, const char *path) {
    if (!cfg || !path) return NULL;
    cnode *n = cfg->root;
    char seg[128];
    for (const char *p = path; n && *p;) {
        size_t len = strcspn(p, ".");
        if (!len || len >= sizeof seg) return NULL;
        memcpy(seg, p, len);
        seg[len] = 0;
        if (n->kind == CN_SEQ) {
            int i = is_index(seg) ? atoi(seg) : -1;
            n = i >= 0 && i < n->n ? n->vals[i] : NULL;
        } else {
            n = cfg_get(n, seg, NULL);
        }
        p += len + (p[len] == '.');
    }
    return n;
}

/* The node for a getter, or NULL with a message naming what is wrong. */
static const cnode *get(const lz_config *cfg, const char *path, const char *want, int ok1, int ok2) {
    const cnode *n = cfg_lookup(cfg, path);
    if (!n) return lz_fail("config: no value at '%s' (unknown key, or it does not apply)", path ? path : "");
    if (n->kind == CN_NULL) return lz_fail("config: '%s' is null", path);
    if (n->kind != CN_SCALAR || (n->type != (lz_config_type)ok1 && n->type != (lz_config_type)ok2))
        return lz_fail("config: '%s' is not %s", path, want);
    return n;
}

int lz_config_has(const lz_config *cfg, const char *path) {
    const cnode *n = cfg_lookup(cfg, path);
    return n && n->kind != CN_NULL;
}

int64_t lz_config_int(const lz_config *cfg, const char *path) {
    const cnode *n = get(cfg, path, "an integer", LZ_CFG_INT, LZ_CFG_INT);
    return n ? n->i : 0;
}

double lz_config_float(const lz_config *cfg, const char *path) {
    const cnode *n = get(cfg, path, "a number", LZ_CFG_FLOAT, LZ_CFG_INT);
    return n ? n->f : NAN;
}

int lz_config_bool(const lz_config *cfg, const char *path) {
    const cnode *n = get(cfg, path, "a bool", LZ_CFG_BOOL, LZ_CFG_BOOL);
    return n ? (int)n->i : 0;
}

const char *lz_config_str(const lz_config *cfg, const char *path) {
    const cnode *n = get(cfg, path, "a string", LZ_CFG_STR, LZ_CFG_ENUM);
    return n ? n->text : NULL;
}

int lz_config_len(const lz_config *cfg, const char *path) {
    const cnode *n = cfg_lookup(cfg, path);
    if (!n || n->kind != CN_SEQ) {
        lz_fail("config: '%s' is not a list", path ? path : "");
        return -1;
    }
    return n->n;
}

const char *lz_config_origin(const lz_config *cfg, const char *path, char *buf, size_t n) {
    const cnode *v = cfg_lookup(cfg, path);
    if (!n) return buf;
    if (!v) buf[0] = 0;
    else cfg_where(v, buf, n);
    return buf;
}
