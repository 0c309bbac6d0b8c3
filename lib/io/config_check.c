/* Checking a merged config tree against the schema and building the effective tree:
 * unknown keys (with a suggestion), types, ranges, choices, keys that do not apply, missing
 * required keys, defaults. Also checks the schema tables themselves. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "config_internal.h"

#define SCHEMA lz_config_schema, lz_config_schema_len
#define LAYERS lz_config_layers, lz_config_layers_len

/* ---- paths ---- */

/* The last segment of path when path is a direct child of section sect ("" = top), or NULL. */
static const char *child_leaf(const char *path, const char *sect) {
    size_t n = strlen(sect);
    if (n) {
        if (strncmp(path, sect, n) || path[n] != '.') return NULL;
        path += n + 1;
    }
    return strchr(path, '.') ? NULL : path;
}

static void join(char *buf, size_t size, const char *a, const char *b) {
    if (*a) snprintf(buf, size, "%s.%s", a, b);
    else snprintf(buf, size, "%s", b);
}

/* ---- suggestions ---- */

/* " (did you mean 'x'?)", or a list of the valid keys when there are few and none is close. */
static void suggestion(char *buf, size_t size, const lz_config_key *t, int nt, const char *sect,
                       const char *typed, int anywhere) {
    const char *best = NULL;
    int bestd = 1 << 30;
    for (int i = 0; i < nt; i++) {
        const char *leaf = child_leaf(t[i].path, sect);
        if (leaf && cfg_close(typed, leaf) && cfg_distance(typed, leaf) < bestd) {
            best = leaf;
            bestd = cfg_distance(typed, leaf);
        }
    }
    int elsewhere = !best && anywhere;
    if (elsewhere) {   /* the right key in the wrong section, or a known synonym */
        best = cfg_alias(typed);
        int limit = strlen(typed) > 3;   /* stricter than among siblings: far keys mislead */
        for (int i = 0; i < nt && !best; i++) {
            const char *dot = strrchr(t[i].path, '.'), *leaf = dot ? dot + 1 : t[i].path;
            if (cfg_distance(typed, leaf) <= limit && cfg_distance(typed, leaf) < bestd) {
                bestd = cfg_distance(typed, leaf);
                best = t[i].path;
            }
        }
        for (int i = 0; i < nt && best && bestd; i++) {   /* an exact leaf name wins */
            const char *dot = strrchr(t[i].path, '.');
            if (dot && !strcmp(dot + 1, typed)) best = t[i].path, bestd = 0;
        }
    }
    /* a key found in another section is named with its section; a top-level one as such */
    if (best && elsewhere && *sect && !strchr(best, '.')) {
        if (!strcmp(best, typed))
            snprintf(buf, size, " ('%s' is a top-level key, not a key of '%s')", best, sect);
        else snprintf(buf, size, " (did you mean the top-level key '%s'?)", best);
        return;
    }
    if (best) { snprintf(buf, size, " (did you mean '%s'?)", best); return; }
    size_t len = 0;
    int count = 0;
    buf[0] = 0;
    for (int i = 0; i < nt; i++) {
        const char *leaf = child_leaf(t[i].path, sect);
        if (!leaf || (t[i].flags & LZ_CFG_META)) continue;
        if (++count > 8) { snprintf(buf, size, "%s", ""); return; }
        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                                count == 1 ? " (keys here: " : ", ", leaf);
    }
    if (count && len < size) snprintf(buf + len, size - len, ")");
    if (!count && *sect && !anywhere) snprintf(buf, size, " (%s takes no keys)", sect);
}

void cfg_unknown_key(char *buf, size_t size, const char *sect, const char *typed) {
    char hint[256];
    suggestion(hint, sizeof hint, SCHEMA, sect, typed, 1);
    if (*sect) snprintf(buf, size, "unknown key '%s' in '%s'%s", typed, sect, hint);
    else snprintf(buf, size, "unknown top-level key '%s'%s", typed, hint);
}

/* ---- scalars ---- */

static const char *describe(const cnode *v, char *buf, size_t size) {
    if (v->kind == CN_MAP) return "a mapping";
    if (v->kind == CN_SEQ) return "a list";
    if (cfg_is_null(v)) return "null";
    snprintf(buf, size, v->quoted ? "the string \"%.60s\"" : "'%.60s'", v->text);
    return buf;
}

static int parse_int(const char *s, int64_t *out) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) return -1;
    for (; *p; p++) if (*p < '0' || *p > '9') return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) return -1;
    *out = v;
    return 0;
}

/* Decimal forms only: 3, -0.5, .5, 3e-4, 1.5E+3 (no hex, inf or nan). */
static int parse_float(const char *s, double *out) {
    const char *p = s + (*s == '-' || *s == '+');
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') for (p++; *p >= '0' && *p <= '9'; p++) digits++;
    if (!digits) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '-' || *p == '+';
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Ranges are written "[lo, hi)" with inf allowed; returns 1 inside, 0 outside. */
static int in_range(const char *range, double x) {
    if (!range) return 1;
    char *end;
    double lo = strtod(range + 1, &end);
    const char *h = end + strspn(end, ", ");
    double hi = strncmp(h, "inf", 3) ? strtod(h, &end) : INFINITY;
    char close = range[strlen(range) - 1];
    return (range[0] == '[' ? x >= lo : x > lo) && (close == ']' ? x <= hi : x < hi);
}

/* "[1, inf)" -> ">= 1", "(0, inf)" -> "> 0", else the interval. */
const char *cfg_range_text(const char *range, char *buf, size_t size) {
    size_t n = strlen(range);
    if (n > 6 && !strcmp(range + n - 4, "inf)")) {
        const char *comma = strchr(range, ',');
        snprintf(buf, size, "%s %.*s", range[0] == '[' ? ">=" : ">", (int)(comma - range - 1), range + 1);
    } else {
        snprintf(buf, size, "in %s", range);
    }
    return buf;
}

static const char *type_name(lz_config_type t) {
    switch (t) {
    case LZ_CFG_INT: case LZ_CFG_INTS: return "an integer";
    case LZ_CFG_FLOAT: case LZ_CFG_FLOATS: return "a number";
    case LZ_CFG_BOOL: return "true or false";
    case LZ_CFG_MAP: return "a mapping";
    case LZ_CFG_LAYERS: return "a list of layers";
    default: return "a string";
    }
}

/* One scalar of type t (an element type for lists) into a new output node. */
static cnode *scalar(arena **a, const lz_config_key *k, lz_config_type t, const cnode *v,
                     const char *disp) {
    char got[128], rb[64];
    if (v->kind != CN_SCALAR || cfg_is_null(v) || (v->quoted && t != LZ_CFG_STR && t != LZ_CFG_ENUM))
        return cfg_fail(v, "expected %s for '%s', got %s", type_name(t), disp,
                          describe(v, got, sizeof got));
    cnode *o = cfg_node(a, CN_SCALAR, v->file, v->line, v->col);
    if (!o) return lz_fail("out of memory");
    o->key = k;
    o->type = t;
    o->text = cfg_strdup(a, v->text);
    switch (t) {
    case LZ_CFG_INT:
        if (parse_int(v->text, &o->i))
            return cfg_fail(v, "expected an integer for '%s', got %s", disp,
                              describe(v, got, sizeof got));
        o->f = (double)o->i;
        if (!in_range(k->range, o->f)) goto out_of_range;
        break;
    case LZ_CFG_FLOAT:
        if (parse_float(v->text, &o->f))
            return cfg_fail(v, "expected a number for '%s', got %s", disp,
                              describe(v, got, sizeof got));
        if (!in_range(k->range, o->f)) goto out_of_range;
        break;
    case LZ_CFG_BOOL:
        if (!strcmp(v->text, "true") || !strcmp(v->text, "True") || !strcmp(v->text, "TRUE"))
            o->i = 1;
        else if (strcmp(v->text, "false") && strcmp(v->text, "False") && strcmp(v->text, "FALSE"))
            return cfg_fail(v, "expected true or false for '%s', got %s", disp,
                              describe(v, got, sizeof got));
        break;
    case LZ_CFG_ENUM:
        if (!cfg_in_choices(k->choices, v->text)) {
            const char *best = NULL;
            char list[256] = "";
            size_t len = 0;
            for (const char *c = k->choices; *c;) {
                const char *e = strchr(c, '|');
                int n = e ? (int)(e - c) : (int)strlen(c);
                char one[64];
                snprintf(one, sizeof one, "%.*s", n, c);
                if (!best && cfg_close(v->text, one)) best = strstr(k->choices, one);
                len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0,
                                        "%s%s", len ? ", " : "", one);
                c = e ? e + 1 : c + n;
            }
            if (best) {
                const char *e = strchr(best, '|');
                return cfg_fail(v, "unknown %s '%s' (did you mean '%.*s'? choices: %s)", disp,
                                  v->text, e ? (int)(e - best) : (int)strlen(best), best, list);
            }
            return cfg_fail(v, "unknown %s '%s' (choices: %s)", disp, v->text, list);
        }
        break;
    default:
        break;
    }
    return o;
out_of_range:
    return cfg_fail(v, "'%s' must be %s, got %s", disp, cfg_range_text(k->range, rb, sizeof rb),
                      v->text);
}

static lz_config_type element(lz_config_type t) {
    return t == LZ_CFG_INTS ? LZ_CFG_INT : t == LZ_CFG_FLOATS ? LZ_CFG_FLOAT : LZ_CFG_STR;
}

static cnode *build_layers(arena **a, const lz_config_key *k, const cnode *v, const char *disp);
static int build_map(arena **a, const lz_config_key *t, int nt, const char *sect,
                     const char *disp, const cnode *in, const cnode *at, cnode *out);

/* A leaf value (scalar or list) of entry k from input node v. */
static cnode *value(arena **a, const lz_config_key *k, const cnode *v, const char *disp) {
    char got[128];
    if (cfg_is_null(v)) {
        if (!(k->flags & LZ_CFG_NULLABLE))
            return cfg_fail(v, "'%s' cannot be null (expected %s)", disp, type_name(k->type));
        cnode *o = cfg_node(a, CN_NULL, v->file, v->line, v->col);
        if (o) o->key = k, o->type = k->type;
        return o;
    }
    if (k->type == LZ_CFG_LAYERS) return build_layers(a, k, v, disp);
    if (k->type < LZ_CFG_STRS) return scalar(a, k, k->type, v, disp);
    if (v->kind != CN_SEQ)
        return cfg_fail(v, "expected a list for '%s', got %s", disp, describe(v, got, sizeof got));
    if (k->length && v->n != k->length)
        return cfg_fail(v, "'%s' takes %d values, got %d", disp, k->length, v->n);
    cnode *o = cfg_node(a, CN_SEQ, v->file, v->line, v->col);
    if (!o) return lz_fail("out of memory");
    o->key = k;
    o->type = k->type;
    for (int i = 0; i < v->n; i++) {
        char d[256];
        snprintf(d, sizeof d, "%s.%d", disp, i);
        cnode *item = scalar(a, k, element(k->type), v->vals[i], d);
        if (!item || cfg_push(a, o, NULL, item)) return NULL;
    }
    return o;
}

/* The value of a default, parsed and checked like a value written in a file. */
static cnode *default_value(arena **a, const lz_config_key *k, const char *disp) {
    cnode *v = cfg_parse_value(a, k->def, "default");
    return v ? value(a, k, v, disp) : NULL;
}

static cnode *build_layers(arena **a, const lz_config_key *k, const cnode *v, const char *disp) {
    char got[128];
    if (v->kind != CN_SEQ)
        return cfg_fail(v, "expected a list of layers for '%s', got %s", disp,
                          describe(v, got, sizeof got));
    cnode *o = cfg_node(a, CN_SEQ, v->file, v->line, v->col);
    if (!o) return lz_fail("out of memory");
    o->key = k;
    o->type = k->type;
    for (int i = 0; i < v->n; i++) {
        const cnode *item = v->vals[i], *type = item;
        char d[256];
        snprintf(d, sizeof d, "%s.%d", disp, i);
        if (item->kind == CN_MAP && !(type = cfg_get(item, "type", NULL)))
            return cfg_fail(item, "layer '%s' has no 'type'", d);
        if (type->kind != CN_SCALAR || cfg_is_null(type))
            return cfg_fail(type, "expected a layer type for '%s', got %s", d,
                              describe(type, got, sizeof got));
        const lz_config_key *lk = cfg_find(LAYERS, type->text);
        if (!lk || lk->type != LZ_CFG_MAP) {
            char hint[256];
            suggestion(hint, sizeof hint, LAYERS, "", type->text, 0);
            if (!strstr(hint, "mean")) snprintf(hint, sizeof hint, " (see configs/README.md)");
            return cfg_fail(type, "unknown layer type '%s' in '%s'%s", type->text, d, hint);
        }
        cnode *m = cfg_node(a, CN_MAP, item->file, item->line, item->col);
        cnode *tk = cfg_node(a, CN_SCALAR, "", 0, 0), *tv = cfg_node(a, CN_SCALAR, type->file,
                                                                        type->line, type->col);
        if (!m || !tk || !tv) return lz_fail("out of memory");
        tk->text = "type";
        tv->text = lk->path;
        tv->type = LZ_CFG_STR;
        if (cfg_push(a, m, tk, tv) ||
            build_map(a, LAYERS, lk->path, d, item->kind == CN_MAP ? item : NULL, item, m) ||
            cfg_push(a, o, NULL, m))
            return NULL;
    }
    return o;
}

/* Is entry e in force, given the values of its section built so far? Sets *disc to the
 * deciding node when it is not. */
static int applies(const lz_config_key *e, const cnode *out, const cnode **disc) {
    if (!e->when) return 1;
    const char *eq = strchr(e->when, '='), *dot = memchr(e->when, '.', (size_t)(eq - e->when));
    const char *leaf = dot ? dot + 1 : e->when;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(eq - leaf), leaf);
    const cnode *d = cfg_get(out, name, NULL);
    if (!d) return 0;   /* the deciding key failed or does not apply itself */
    *disc = d;
    return cfg_in_choices(eq + 1, d->text);
}

/* Fills `out` with the keys of section `sect` of table t: those written in `in` (checked),
 * the defaults of the others. `at` is where a missing required key is reported. */
static int build_map(arena **a, const lz_config_key *t, int nt, const char *sect,
                     const char *disp, const cnode *in, const cnode *at, cnode *out) {
    int layer = t == lz_config_layers;
    char path[256], d[256], hint[256];
    for (int i = 0; in && i < in->n; i++) {
        const char *k = in->keys[i]->text;
        if (layer && !strcmp(k, "type")) continue;
        join(path, sizeof path, sect, k);
        const lz_config_key *e = cfg_find(t, nt, path);
        if (e && !(e->flags & LZ_CFG_META)) continue;
        if (layer) {
            suggestion(hint, sizeof hint, t, nt, sect, k, 0);
            cfg_fail(in->keys[i], "unknown key '%s' for layer '%s' in '%s'%s", k, sect, disp, hint);
        } else {
            char msg[512];
            cfg_unknown_key(msg, sizeof msg, sect, k);
            cfg_fail(in->keys[i], "%s", msg);
        }
        return -1;
    }
    for (int j = 0; j < nt; j++) {
        const lz_config_key *e = &t[j];
        const char *leaf = child_leaf(e->path, sect);
        if (!leaf || (e->flags & LZ_CFG_META)) continue;
        int idx = -1;
        const cnode *v = cfg_get(in, leaf, &idx), *disc = NULL;
        const cnode *keynode = idx >= 0 ? in->keys[idx] : NULL;
        join(d, sizeof d, disp, leaf);
        if (!applies(e, out, &disc)) {
            if (!v) continue;
            const char *eq = strchr(e->when, '=');
            snprintf(hint, sizeof hint, "%s", eq + 1);
            for (char *p = hint; *p; p++) if (*p == '|') *p = '/';
            cfg_fail(keynode, "'%s' does not apply when %.*s is '%s' (only with %s)", d,
                       (int)(eq - e->when), e->when, disc ? disc->text : "?", hint);
            return -1;
        }
        cnode *o;
        if (e->type == LZ_CFG_MAP) {
            char got[128];
            if (v && !cfg_is_null(v) && v->kind != CN_MAP) {
                cfg_fail(v, "expected a mapping for '%s', got %s", d, describe(v, got, sizeof got));
                return -1;
            }
            const cnode *sub = v && v->kind == CN_MAP ? v : NULL;
            o = cfg_node(a, CN_MAP, sub ? sub->file : at->file, sub ? sub->line : at->line,
                          sub ? sub->col : at->col);
            if (!o) { lz_fail("out of memory"); return -1; }
            o->key = e;
            if (build_map(a, t, nt, e->path, d, sub, keynode ? keynode : at, o)) return -1;
        } else if (v) {
            if (!(o = value(a, e, v, d))) return -1;
        } else if (!e->def) {
            if (layer) cfg_fail(at, "missing required key '%s' for layer '%s' in '%s'", leaf, sect, disp);
            else cfg_fail(at, "missing required key '%s'", d);
            return -1;
        } else if (!(o = default_value(a, e, d))) {
            return -1;
        }
        cnode *k = cfg_node(a, CN_SCALAR, keynode ? keynode->file : "default",
                             keynode ? keynode->line : 0, keynode ? keynode->col : 0);
        if (!k || cfg_push(a, out, k, o)) { lz_fail("out of memory"); return -1; }
        k->text = leaf;
    }
    return 0;
}

cnode *cfg_build(arena **a, const cnode *in, const cnode *at) {
    cnode *root = cfg_node(a, CN_MAP, at->file, at->line, at->col);
    if (!root) return lz_fail("out of memory");
    return build_map(a, SCHEMA, "", "", in, at, root) ? NULL : root;
}

/* ---- the tables themselves ---- */
static int check_table(const lz_config_key *t, int nt, int layers) {
    arena *a = NULL;
    int r = -1;
    for (int i = 0; i < nt; i++) {
        const lz_config_key *e = &t[i];
        const char *dot = strrchr(e->path, '.');
        for (int j = 0; j < i; j++)
            if (!strcmp(t[j].path, e->path)) { lz_fail("schema: '%s' twice", e->path); goto out; }
        if (dot) {   /* its section comes first */
            char sect[128];
            snprintf(sect, sizeof sect, "%.*s", (int)(dot - e->path), e->path);
            const lz_config_key *s = cfg_find(t, i, sect);
            if (!s || s->type != LZ_CFG_MAP) { lz_fail("schema: '%s' before its section", e->path); goto out; }
        }
        if (e->type == LZ_CFG_MAP) {
            if (e->def || (layers && dot)) { lz_fail("schema: section '%s' has a default", e->path); goto out; }
            continue;
        }
        if (layers && !dot) { lz_fail("schema: layer '%s' must be a section", e->path); goto out; }
        if (!e->doc || !*e->doc) { lz_fail("schema: '%s' has no doc", e->path); goto out; }
        if ((e->type == LZ_CFG_ENUM) != (e->choices != NULL)) {
            lz_fail("schema: '%s': choices go with enums", e->path);
            goto out;
        }
        if (e->range) {
            size_t n = strlen(e->range);
            if ((e->range[0] != '[' && e->range[0] != '(') || !strchr(e->range, ',') ||
                (e->range[n - 1] != ']' && e->range[n - 1] != ')')) {
                lz_fail("schema: '%s': bad range '%s'", e->path, e->range);
                goto out;
            }
        }
        if (e->when) {
            const char *eq = strchr(e->when, '=');
            char disc[128];
            snprintf(disc, sizeof disc, "%.*s", eq ? (int)(eq - e->when) : 0, e->when);
            const lz_config_key *d = eq ? cfg_find(t, i, disc) : NULL;
            const char *ddot = strrchr(disc, '.');
            if (layers || !d || d->type != LZ_CFG_ENUM || (ddot == NULL) != (dot == NULL) ||
                (dot && strncmp(disc, e->path, (size_t)(dot - e->path) + 1))) {
                lz_fail("schema: '%s': when '%s' needs an earlier enum of its section", e->path, e->when);
                goto out;
            }
            for (const char *c = eq + 1; *c;) {
                const char *bar = strchr(c, '|');
                char one[64];
                snprintf(one, sizeof one, "%.*s", bar ? (int)(bar - c) : (int)strlen(c), c);
                if (!cfg_in_choices(d->choices, one)) {
                    lz_fail("schema: '%s': '%s' is not a choice of '%s'", e->path, one, disc);
                    goto out;
                }
                c = bar ? bar + 1 : c + strlen(c);
            }
        }
        if (e->def && !default_value(&a, e, e->path)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", lz_error());
            lz_fail("schema: bad default for '%s': %s", e->path, msg);
            goto out;
        }
    }
    r = 0;
out:
    cfg_arena_free(a);
    return r;
}

int lz_config_schema_check(void) {
    return check_table(SCHEMA, 0) || check_table(LAYERS, 1) ? -1 : 0;
}
