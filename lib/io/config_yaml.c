/* YAML text -> a tree of nodes that remember their file, line and column (libyaml events).
 * libyaml checks the syntax; this file adds what YAML allows but a config must not have:
 * duplicate keys, several documents, tags, non-scalar keys. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "core/core.h"
#include "config_internal.h"

/* ---- arena ---- */
struct arena { struct arena *next; size_t used, size; _Alignas(16) unsigned char data[]; };

void *cfg_alloc(arena **a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!*a || (*a)->used + n > (*a)->size) {
        size_t size = n > 16384 ? n : 16384;
        arena *b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->next = *a;
        b->used = 0;
        b->size = size;
        *a = b;
    }
    void *p = (*a)->data + (*a)->used;
    (*a)->used += n;
    memset(p, 0, n);
    return p;
}

char *cfg_strdup(arena **a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = cfg_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

char *cfg_printf(arena **a, const char *fmt, ...) {
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n < 0 ? NULL : cfg_alloc(a, (size_t)n + 1);
    if (p) vsnprintf(p, (size_t)n + 1, fmt, aq);
    va_end(aq);
    return p;
}

void cfg_arena_free(arena *a) {
    while (a) { arena *next = a->next; free(a); a = next; }
}

/* ---- nodes ---- */
cnode *cfg_node(arena **a, cnode_kind k, const char *file, int line, int col) {
    cnode *n = cfg_alloc(a, sizeof *n);
    if (!n) return NULL;
    n->kind = k;
    n->file = file;
    n->line = line;
    n->col = col;
    n->text = "";
    return n;
}

cnode *cfg_get(const cnode *m, const char *key, int *index) {
    if (!m || m->kind != CN_MAP) return NULL;
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i]->text, key)) {
            if (index) *index = i;
            return m->vals[i];
        }
    return NULL;
}

int cfg_push(arena **a, cnode *c, cnode *key, cnode *val) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 8;
        cnode **k = cfg_alloc(a, (size_t)cap * sizeof *k);
        cnode **v = cfg_alloc(a, (size_t)cap * sizeof *v);
        if (!k || !v) return -1;
        if (c->n) {
            memcpy(k, c->keys, (size_t)c->n * sizeof *k);
            memcpy(v, c->vals, (size_t)c->n * sizeof *v);
        }
        c->keys = k;
        c->vals = v;
        c->cap = cap;
    }
    c->keys[c->n] = key;
    c->vals[c->n] = val;
    c->n++;
    return 0;
}

void cfg_remove(cnode *m, int i) {
    memmove(m->keys + i, m->keys + i + 1, (size_t)(m->n - i - 1) * sizeof *m->keys);
    memmove(m->vals + i, m->vals + i + 1, (size_t)(m->n - i - 1) * sizeof *m->vals);
    m->n--;
}

int cfg_is_null(const cnode *n) {
    if (!n || n->kind == CN_NULL) return 1;
    if (n->kind != CN_SCALAR || n->quoted) return 0;
    const char *t = n->text;
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

const char *cfg_where(const cnode *n, char *buf, size_t size) {
    if (n->line > 0) snprintf(buf, size, "%s:%d:%d", n->file, n->line, n->col);
    else snprintf(buf, size, "%s", n->file);
    return buf;
}

void *cfg_fail(const cnode *n, const char *fmt, ...) {
    char where[512], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lz_fail("%s: %s", cfg_where(n, where, sizeof where), msg);
}

/* ---- parser ---- */
enum { MAX_DEPTH = 64, MAX_NODES = 100000 };

typedef struct { const char *name; cnode *node; } anchor;

typedef struct {
    arena **a;
    const char *file, *text;
    size_t len;
    cnode *stack[MAX_DEPTH];
    cnode *pending_key[MAX_DEPTH];   /* for maps: the key waiting for its value */
    int depth, nodes;
    int positions;                   /* 0: a command-line value, whose lines mean nothing */
    anchor *anchors;
    int nanchors;
    cnode *root;
} parser;

static void *syntax_error(parser *p, yaml_parser_t *y) {
    yaml_mark_t m = y->problem ? y->problem_mark : y->context_mark;
    const char *problem = y->problem ? y->problem : "invalid YAML";
    cnode at = {.file = p->file};
    if (p->positions) at.line = (int)m.line + 1, at.col = (int)m.column + 1;
    if (y->error == YAML_READER_ERROR)   /* reader errors have an offset, not a mark */
        return lz_fail("%s: YAML: %s (at byte %zu)", p->file, problem, y->problem_offset);
    /* libyaml says "found character that cannot start any token" for a tab; be plainer */
    if (m.index < p->len && p->text[m.index] == '\t')
        return cfg_fail(&at, "tab character (YAML indents with spaces only)");
    if (y->context && y->problem && p->positions)
        return cfg_fail(&at, "YAML syntax error: %s (%s at line %zu, column %zu)", problem,
                          y->context, y->context_mark.line + 1, y->context_mark.column + 1);
    return cfg_fail(&at, "YAML syntax error: %s", problem);
}

static cnode *copy_tree(parser *p, const cnode *n) {
    if (++p->nodes > MAX_NODES) return NULL;
    cnode *c = cfg_node(p->a, n->kind, n->file, n->line, n->col);
    if (!c) return NULL;
    c->quoted = n->quoted;
    c->text = n->text;
    for (int i = 0; i < n->n; i++) {
        cnode *v = copy_tree(p, n->vals[i]);
        if (!v || cfg_push(p->a, c, n->keys[i], v)) return NULL;
    }
    return c;
}

/* Places a finished node (scalar, alias copy, or a container just opened) in its parent. */
static int attach(parser *p, cnode *n) {
    if (p->depth == 0) { p->root = n; return 0; }
    cnode *top = p->stack[p->depth - 1];
    if (top->kind == CN_SEQ) return cfg_push(p->a, top, NULL, n) ? (lz_fail("out of memory"), -1) : 0;
    cnode **key = &p->pending_key[p->depth - 1];
    if (!*key) {
        if (n->kind != CN_SCALAR) {
            cfg_fail(n, "keys must be plain words, not %s",
                       n->kind == CN_MAP ? "mappings" : "sequences");
            return -1;
        }
        int first;
        if (cfg_get(top, n->text, &first)) {
            const cnode *f = top->keys[first];
            if (f->line) cfg_fail(n, "duplicate key '%s' (first at line %d, column %d)",
                                    n->text, f->line, f->col);
            else cfg_fail(n, "duplicate key '%s'", n->text);
            return -1;
        }
        *key = n;
        return 0;
    }
    int r = cfg_push(p->a, top, *key, n);
    *key = NULL;
    return r ? (lz_fail("out of memory"), -1) : 0;
}

static int remember_anchor(parser *p, const yaml_char_t *name, cnode *n) {
    if (!name) return 0;
    anchor *a = cfg_alloc(p->a, (size_t)(p->nanchors + 1) * sizeof *a);
    if (!a) return -1;
    if (p->nanchors) memcpy(a, p->anchors, (size_t)p->nanchors * sizeof *a);
    a[p->nanchors].name = cfg_strdup(p->a, (const char *)name);
    a[p->nanchors].node = n;
    p->anchors = a;
    p->nanchors++;
    return 0;
}

static int is_str_tag(const yaml_char_t *tag) {
    return tag && (!strcmp((const char *)tag, "tag:yaml.org,2002:str") ||
                   !strcmp((const char *)tag, "!!str"));
}

static void fail_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_at(parser *p, int line, int col, const char *fmt, ...) {
    cnode at = {.file = p->file, .line = line, .col = col};
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_fail(&at, "%s", msg);
}

/* One event; 1 to continue, 0 at the end of the stream, -1 on error. */
static int on_event(parser *p, yaml_event_t *e, int *documents) {
    int line = p->positions ? (int)e->start_mark.line + 1 : 0;
    int col = p->positions ? (int)e->start_mark.column + 1 : 0;
    cnode *n = NULL;
    switch (e->type) {
    case YAML_STREAM_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1) {
            fail_at(p, line, col, "a second YAML document (one config per file)");
            return -1;
        }
        return 1;
    case YAML_SCALAR_EVENT:
        if (e->data.scalar.tag && !is_str_tag(e->data.scalar.tag)) {
            fail_at(p, line, col, "YAML tags such as '%s' are not supported",
                    (const char *)e->data.scalar.tag);
            return -1;
        }
        if (!(n = cfg_node(p->a, CN_SCALAR, p->file, line, col))) break;
        n->text = cfg_strdup(p->a, (const char *)e->data.scalar.value);
        n->quoted = e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || e->data.scalar.tag;
        if (!n->text || remember_anchor(p, e->data.scalar.anchor, n)) { n = NULL; break; }
        if (++p->nodes > MAX_NODES) goto too_big;
        return attach(p, n) ? -1 : 1;
    case YAML_ALIAS_EVENT:
        for (int i = p->nanchors - 1; i >= 0; i--)
            if (!strcmp(p->anchors[i].name, (const char *)e->data.alias.anchor)) {
                /* a copy, so that merging into one use never changes the other */
                if (!(n = copy_tree(p, p->anchors[i].node))) goto too_big;
                return attach(p, n) ? -1 : 1;
            }
        fail_at(p, line, col, "unknown alias '*%s'",
                (const char *)e->data.alias.anchor);
        return -1;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int map = e->type == YAML_MAPPING_START_EVENT;
        const yaml_char_t *tag = map ? e->data.mapping_start.tag : e->data.sequence_start.tag;
        if (tag) {
            fail_at(p, line, col, "YAML tags such as '%s' are not supported",
                    (const char *)tag);
            return -1;
        }
        if (p->depth == MAX_DEPTH) {
            fail_at(p, line, col, "nested deeper than %d levels", MAX_DEPTH);
            return -1;
        }
        if (!(n = cfg_node(p->a, map ? CN_MAP : CN_SEQ, p->file, line, col))) break;
        if (remember_anchor(p, map ? e->data.mapping_start.anchor : e->data.sequence_start.anchor, n))
            break;
        if (++p->nodes > MAX_NODES) goto too_big;
        if (attach(p, n)) return -1;
        p->stack[p->depth] = n;
        p->pending_key[p->depth] = NULL;
        p->depth++;
        return 1;
    }
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        p->depth--;
        return 1;
    default:
        return 1;
    }
    lz_fail("out of memory");
    return -1;
too_big:
    fail_at(p, line, col, "more than %d values (aliases expanding too far?)",
            MAX_NODES);
    return -1;
}

static cnode *parse(arena **a, const char *text, size_t len, const char *file, int positions) {
    parser p = {.a = a, .file = file, .text = text, .len = len, .positions = positions};
    yaml_parser_t y;
    if (!yaml_parser_initialize(&y)) return lz_fail("out of memory");
    yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
    int documents = 0, r = 1;
    while (r == 1) {
        yaml_event_t e;
        if (!yaml_parser_parse(&y, &e)) {
            syntax_error(&p, &y);
            r = -1;
            break;
        }
        r = on_event(&p, &e, &documents);
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&y);
    if (r < 0) return NULL;
    if (!p.root) p.root = cfg_node(a, CN_SCALAR, file, positions, positions);   /* empty: null */
    return p.root;
}

cnode *cfg_parse_yaml(arena **a, const char *text, size_t len, const char *file) {
    cnode *root = parse(a, text, len, file, 1);
    if (!root) return NULL;
    if (cfg_is_null(root)) return cfg_node(a, CN_MAP, file, 1, 1);
    if (root->kind != CN_MAP)
        return cfg_fail(root, "a config is a mapping of keys to values, not a %s",
                          root->kind == CN_SEQ ? "list" : "single value");
    return root;
}

cnode *cfg_parse_value(arena **a, const char *text, const char *origin) {
    return parse(a, text, strlen(text), origin, 0);
}
