/* Modules as named trees: building, look-up by dotted path, replacing values and children,
 * iteration, freezing by pattern, evaluation, summaries and gradients of a module.
 *
 * Each parameter or buffer lives in its own heap entry, so a slot pointer handed out by
 * lz_module_collect stays put when the module grows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/autograd.h"
#include "core/strbuf.h"
#include "nn_internal.h"

typedef struct {
    char *name;
    lz_array *value;
    bool buffer, frozen;
} entry;

struct lz_module {
    const lz_module_kind *kind;
    void *state;
    char *name;
    lz_module *parent;
    entry **entries;
    int nentries, ecap;
    lz_module **children;
    int nchildren, ccap;
    bool training;
};

/* ---- errors ---- */

/* The message most recently attributed to a module path on this thread: an outer module's
 * forward sees it unchanged and does not prefix it again. */
static _Thread_local char attributed[1024];

static char *path_or_root(const lz_module *m, char *buf, size_t n) {
    lz_module_path(m, buf, n);
    if (!buf[0]) snprintf(buf, n, "(root)");
    return buf;
}

void *nn_fail(const lz_module *m, const char *fmt, ...) {
    char msg[768], path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lz_fail("%s '%s': %s", m->kind->name, path_or_root(m, path, sizeof path), msg);
    snprintf(attributed, sizeof attributed, "%s", lz_error());
    return NULL;
}

const char *nn_shape(const lz_array *x) {
    static _Thread_local char ring[8][160];
    static _Thread_local int next;
    char *b = ring[next++ & 7];
    return x ? lz_shape_str(x, b, 160) : "NULL";
}

/* ---- building ---- */

lz_module *lz_module_new(const lz_module_kind *kind, void *state) {
    if (!kind || !kind->name || !kind->forward) {
        if (kind && kind->free_state) kind->free_state(state);
        else free(state);
        return lz_fail("lz_module_new: a kind needs a name and a forward function");
    }
    lz_module *m = calloc(1, sizeof *m);
    char *name = strdup("");
    if (!m || !name) {
        free(m);
        free(name);
        if (kind->free_state) kind->free_state(state);
        else free(state);
        return lz_fail("lz_module_new: out of memory");
    }
    m->kind = kind;
    m->state = state;
    m->name = name;
    m->training = true;   /* PyTorch's default */
    return m;
}

static void module_free(lz_module *m) {
    for (int i = 0; i < m->nentries; i++) {
        lz_release(m->entries[i]->value);
        free(m->entries[i]->name);
        free(m->entries[i]);
    }
    for (int i = 0; i < m->nchildren; i++) module_free(m->children[i]);
    if (m->kind->free_state) m->kind->free_state(m->state);
    else free(m->state);
    free(m->entries);
    free(m->children);
    free(m->name);
    free(m);
}

void lz_module_free(lz_module *m) {
    if (!m) return;
    lz_module *p = m->parent;
    if (p) {
        int k = 0;
        for (int i = 0; i < p->nchildren; i++)
            if (p->children[i] != m) p->children[k++] = p->children[i];
        p->nchildren = k;
    }
    module_free(m);
}

void *lz_module_state(const lz_module *m) { return m ? m->state : NULL; }
const lz_module_kind *lz_module_kind_of(const lz_module *m) { return m ? m->kind : NULL; }
const char *lz_module_name(const lz_module *m) { return m ? m->name : ""; }
lz_module *lz_module_parent(const lz_module *m) { return m ? m->parent : NULL; }
int lz_module_num_children(const lz_module *m) { return m ? m->nchildren : 0; }
lz_module *lz_module_child_at(const lz_module *m, int i) {
    return m && i >= 0 && i < m->nchildren ? m->children[i] : NULL;
}

char *lz_module_path(const lz_module *m, char *buf, size_t n) {
    const lz_module *chain[64];
    int k = 0;
    for (const lz_module *p = m; p && p->parent && k < 64; p = p->parent) chain[k++] = p;
    size_t at = 0;
    if (n) buf[0] = 0;
    for (int i = k - 1; i >= 0 && at < n; i--)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i == k - 1 ? "" : ".", chain[i]->name);
    return buf;
}

static entry *find_entry(const lz_module *m, const char *name) {
    for (int i = 0; i < m->nentries; i++)
        if (!strcmp(m->entries[i]->name, name)) return m->entries[i];
    return NULL;
}

static lz_module *find_child(const lz_module *m, const char *name) {
    for (int i = 0; i < m->nchildren; i++)
        if (!strcmp(m->children[i]->name, name)) return m->children[i];
    return NULL;
}

static int check_name(lz_module *m, const char *what, const char *name) {
    if (!name || !name[0] || strchr(name, '.')) {
        nn_fail(m, "%s name \"%s\" must be non-empty and have no '.'", what, name ? name : "");
        return -1;
    }
    if (find_entry(m, name) || find_child(m, name)) {
        nn_fail(m, "the name \"%s\" is taken (by a %s)", name,
                find_entry(m, name) ? "parameter or buffer" : "child");
        return -1;
    }
    return 0;
}

static int add_entry(lz_module *m, const char *name, lz_array *value, bool buffer) {
    if (!m) return -1;
    if (!value) {
        if (!lz_error()[0]) nn_fail(m, "%s \"%s\" is NULL", buffer ? "buffer" : "parameter", name);
        return -1;
    }
    if (check_name(m, buffer ? "buffer" : "parameter", name)) return -1;
    if (!buffer && !lz_dtype_is_float(lz_dtype_of(value))) {
        nn_fail(m, "parameter \"%s\" is %s: parameters are float arrays", name, nn_shape(value));
        return -1;
    }
    if (m->nentries == m->ecap) {
        int cap = m->ecap ? 2 * m->ecap : 4;
        entry **e = realloc(m->entries, (size_t)cap * sizeof *e);
        if (!e) { nn_fail(m, "out of memory"); return -1; }
        m->entries = e;
        m->ecap = cap;
    }
    entry *e = calloc(1, sizeof *e);
    char *s = strdup(name);
    if (!e || !s) { free(e); free(s); nn_fail(m, "out of memory"); return -1; }
    e->name = s;
    e->value = lz_retain(value);
    e->buffer = buffer;
    m->entries[m->nentries++] = e;
    return 0;
}

int lz_module_add_param(lz_module *m, const char *name, lz_array *value) {
    return add_entry(m, name, value, false);
}

int lz_module_add_buffer(lz_module *m, const char *name, lz_array *value) {
    return add_entry(m, name, value, true);
}

int lz_module_add_child(lz_module *m, const char *name, lz_module *child) {
    if (!m || !child) { lz_module_free(child); return -1; }
    if (child->parent) {
        /* not ours to free: it belongs to another tree */
        nn_fail(m, "child \"%s\" already belongs to a parent", name ? name : "");
        return -1;
    }
    char *s = name ? strdup(name) : NULL;
    if (check_name(m, "child", name) || !s) {
        if (!s && name) nn_fail(m, "out of memory");
        free(s);
        lz_module_free(child);
        return -1;
    }
    if (m->nchildren == m->ccap) {
        int cap = m->ccap ? 2 * m->ccap : 4;
        lz_module **c = realloc(m->children, (size_t)cap * sizeof *c);
        if (!c) { free(s); lz_module_free(child); nn_fail(m, "out of memory"); return -1; }
        m->children = c;
        m->ccap = cap;
    }
    free(child->name);
    child->name = s;
    child->parent = m;
    m->children[m->nchildren++] = child;
    return 0;
}

/* ---- internal accessors ---- */

lz_array *nn_param(const lz_module *m, const char *name) {
    entry *e = find_entry(m, name);
    return e ? e->value : NULL;
}

lz_module *nn_child(const lz_module *m, const char *name) { return find_child(m, name); }

bool nn_frozen(const lz_module *m, const char *name) {
    entry *e = find_entry(m, name);
    return e && e->frozen;
}

void nn_set_frozen(lz_module *m, const char *name, bool frozen) {
    entry *e = find_entry(m, name);
    if (e && !e->buffer) e->frozen = frozen;
}

void nn_set_buffer(lz_module *m, const char *name, lz_array *value) {
    entry *e = find_entry(m, name);
    if (!e || !value) return;
    lz_retain(value);
    lz_release(e->value);
    e->value = value;
}

/* ---- names: walking, listing, suggesting ---- */

typedef struct {
    char **names;
    int n, cap;
} namelist;

static void names_push(namelist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->names, (size_t)cap * sizeof *p);
        if (!p) return;
        l->names = p;
        l->cap = cap;
    }
    char *d = strdup(s);
    if (d) l->names[l->n++] = d;
}

static void names_free(namelist *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
}

/* Full names below m, prefixed: entries (want_entries) or module paths. */
static void list_names(const lz_module *m, const char *prefix, bool want_entries, namelist *l) {
    char buf[512];
    if (want_entries)
        for (int i = 0; i < m->nentries; i++) {
            snprintf(buf, sizeof buf, "%s%s%s", prefix, prefix[0] ? "." : "", m->entries[i]->name);
            names_push(l, buf);
        }
    for (int i = 0; i < m->nchildren; i++) {
        snprintf(buf, sizeof buf, "%s%s%s", prefix, prefix[0] ? "." : "", m->children[i]->name);
        if (!want_entries) names_push(l, buf);
        list_names(m->children[i], buf, want_entries, l);
    }
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 255 || lb > 255) return 1 << 20;
    int row[256];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* Fails naming `what` `path` in m, with the closest existing name when one is near. */
static void *unknown(const lz_module *m, const char *what, const char *path, bool entries) {
    namelist l = {0};
    list_names(m, "", entries, &l);
    int best = -1, bd = 1 << 20;
    for (int i = 0; i < l.n; i++) {
        int d = edit_distance(path, l.names[i]);
        if (d < bd) { bd = d; best = i; }
    }
    int limit = (int)strlen(path) / 3 > 3 ? (int)strlen(path) / 3 : 3;
    if (best >= 0 && bd <= limit)
        nn_fail(m, "no %s named \"%s\" (did you mean \"%s\"?)", what, path, l.names[best]);
    else if (l.n == 0)
        nn_fail(m, "no %s named \"%s\" (it has none)", what, path);
    else
        nn_fail(m, "no %s named \"%s\" (%d exist, e.g. \"%s\")", what, path, l.n, l.names[0]);
    names_free(&l);
    return NULL;
}

/* Walks the dotted path: *owner gets the module holding the last component, *last points
 * into path at that component. NULL-free walk; returns 0, or -1 (no error set) when an
 * intermediate component is not a child. */
static int walk(lz_module *m, const char *path, lz_module **owner, const char **last) {
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        if (!dot) { *owner = m; *last = p; return 0; }
        char comp[256];
        size_t len = (size_t)(dot - p);
        if (len >= sizeof comp) return -1;
        memcpy(comp, p, len);
        comp[len] = 0;
        m = find_child(m, comp);
        if (!m) return -1;
        p = dot + 1;
    }
}

static entry *find_path(lz_module *m, const char *path, lz_module **owner) {
    lz_module *o;
    const char *last;
    if (!path || walk(m, path, &o, &last)) return NULL;
    if (owner) *owner = o;
    return find_entry(o, last);
}

lz_array *lz_module_param(lz_module *m, const char *path) {
    if (!m) return NULL;
    entry *e = find_path(m, path, NULL);
    if (!e) return unknown(m, "parameter or buffer", path ? path : "", true);
    return e->value;
}

lz_module *lz_module_child(lz_module *m, const char *path) {
    if (!m) return NULL;
    lz_module *o;
    const char *last;
    lz_module *c = path && !walk(m, path, &o, &last) ? find_child(o, last) : NULL;
    if (!c) return unknown(m, "module", path ? path : "", false);
    return c;
}

/* ---- replacing ---- */

static int check_same(const lz_module *owner, const char *name, const lz_array *old,
                      const lz_array *v) {
    if (!v) {
        if (!lz_error()[0]) nn_fail(owner, "new value of \"%s\" is NULL", name);
        return -1;
    }
    if (lz_dtype_of(v) != lz_dtype_of(old) || lz_ndim(v) != lz_ndim(old) ||
        memcmp(lz_shape(v), lz_shape(old), (size_t)lz_ndim(v) * sizeof(int64_t))) {
        nn_fail(owner, "new value of \"%s\" is %s but the %s is %s", name, nn_shape(v),
                "current value", nn_shape(old));
        return -1;
    }
    return 0;
}

int lz_module_set_param(lz_module *m, const char *path, lz_array *value) {
    if (!m) return -1;
    lz_module *owner;
    entry *e = find_path(m, path, &owner);
    if (!e) { unknown(m, "parameter or buffer", path ? path : "", true); return -1; }
    if (check_same(owner, e->name, e->value, value)) return -1;
    lz_retain(value);
    lz_release(e->value);
    e->value = value;
    return 0;
}

int lz_param_set(const lz_named_array *p, lz_array *value) {
    if (!p || !p->slot) { lz_fail("lz_param_set: no parameter given"); return -1; }
    if (check_same(p->module, p->name, *p->slot, value)) return -1;
    lz_retain(value);
    lz_release(*p->slot);
    *p->slot = value;
    return 0;
}

static void set_training(lz_module *m, bool t) {
    m->training = t;
    for (int i = 0; i < m->nchildren; i++) set_training(m->children[i], t);
}

int lz_module_replace(lz_module *m, const char *path, lz_module *child) {
    if (!m || !child) { lz_module_free(child); return -1; }
    lz_module *o;
    const char *last;
    lz_module *old = path && !walk(m, path, &o, &last) ? find_child(o, last) : NULL;
    if (!old) {
        unknown(m, "module", path ? path : "", false);
        lz_module_free(child);
        return -1;
    }
    if (child->parent) {
        nn_fail(m, "the replacement for \"%s\" already belongs to a parent", path);
        return -1;
    }
    char *s = strdup(old->name);
    if (!s) { lz_module_free(child); nn_fail(m, "out of memory"); return -1; }
    for (int i = 0; i < o->nchildren; i++)
        if (o->children[i] == old) o->children[i] = child;
    free(child->name);
    child->name = s;
    child->parent = o;
    set_training(child, o->training);
    module_free(old);
    return 0;
}

/* ---- forward and modes ---- */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

lz_array *lz_module_forward(lz_module *m, lz_array *x, const lz_key *key) {
    if (!m) return NULL;
    if (!x) {
        if (!lz_error()[0]) nn_fail(m, "input is NULL");
        return NULL;
    }
    lz_key k = {0, 0};
    if (key) k = lz_key_fold(*key, fnv1a(m->name));
    /* the forward runs in a pool of its own: its temporaries need no care */
    lz_pool_push();
    lz_array *y = lz_retain(m->kind->forward(m, x, key ? &k : NULL));
    lz_pool_pop();
    if (!y && strcmp(lz_error(), attributed)) {
        /* an op failed inside this module: say where */
        char msg[768];
        snprintf(msg, sizeof msg, "%s", lz_error()[0] ? lz_error() : "forward failed");
        nn_fail(m, "%s", msg);
    }
    return lz_autorelease(y);
}

void lz_module_train(lz_module *m, bool training) {
    if (m) set_training(m, training);
}

bool lz_module_is_training(const lz_module *m) { return m && m->training; }

/* ---- iteration ---- */

typedef struct {
    lz_named_list *out;
    int cap, what, failed;
} collector;

static void collect(lz_module *m, const char *prefix, collector *c) {
    char buf[512];
    for (int i = 0; i < m->nentries && !c->failed; i++) {
        entry *e = m->entries[i];
        bool take = e->buffer ? (c->what & LZ_BUFFERS)
                              : (c->what & LZ_PARAMS) || ((c->what & LZ_TRAINABLE) && !e->frozen);
        if (!take) continue;
        if (c->out->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 16;
            lz_named_array *p = realloc(c->out->items, (size_t)cap * sizeof *p);
            if (!p) { c->failed = 1; return; }
            c->out->items = p;
            c->cap = cap;
        }
        snprintf(buf, sizeof buf, "%s%s%s", prefix, prefix[0] ? "." : "", e->name);
        lz_named_array *it = &c->out->items[c->out->n];
        it->name = strdup(buf);
        if (!it->name) { c->failed = 1; return; }
        it->slot = &e->value;
        it->module = m;
        it->buffer = e->buffer;
        it->frozen = e->frozen;
        c->out->n++;
    }
    for (int i = 0; i < m->nchildren && !c->failed; i++) {
        snprintf(buf, sizeof buf, "%s%s%s", prefix, prefix[0] ? "." : "", m->children[i]->name);
        collect(m->children[i], buf, c);
    }
}

void lz_named_list_free(lz_named_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->items[i].name);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int count_entries(const lz_module *m, bool buffers) {
    int n = 0;
    for (int i = 0; i < m->nentries; i++) n += m->entries[i]->buffer == buffers;
    for (int i = 0; i < m->nchildren; i++) n += count_entries(m->children[i], buffers);
    return n;
}

int lz_module_collect(lz_module *m, int what, lz_named_list *out) {
    if (!out) { lz_fail("lz_module_collect: out is NULL"); return -1; }
    out->n = 0;
    out->items = NULL;
    if (!m) return -1;
    collector c = {out, 0, what, 0};
    collect(m, "", &c);
    if (c.failed) {
        lz_named_list_free(out);
        nn_fail(m, "out of memory while listing parameters");
        return -1;
    }
    if (what == LZ_TRAINABLE && out->n == 0 && count_entries(m, false) > 0) {
        nn_fail(m, "every parameter is frozen (%d parameters): nothing to train; unfreeze some "
                "with lz_module_unfreeze", count_entries(m, false));
        return -1;
    }
    return 0;
}

static int64_t count_params(const lz_module *m, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < m->nentries; i++) {
        entry *e = m->entries[i];
        if (!e->buffer && !(trainable_only && e->frozen)) n += lz_size(e->value);
    }
    for (int i = 0; i < m->nchildren; i++) n += count_params(m->children[i], trainable_only);
    return n;
}

int64_t lz_module_num_params(lz_module *m, bool trainable_only) {
    return m ? count_params(m, trainable_only) : 0;
}

/* ---- patterns and freezing ---- */

/* Does p match the first n characters of s? One backtrack point (the last '*') suffices for
 * globs of '*' and '?'. */
static bool glob(const char *p, const char *s, size_t n) {
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;
    while (i < n) {
        if (p[j] == '*') { star = j++; mark = i; }
        else if (p[j] && (p[j] == '?' || p[j] == s[i])) { i++; j++; }
        else if (star != (size_t)-1) { j = star + 1; i = ++mark; }
        else return false;
    }
    while (p[j] == '*') j++;
    return !p[j];
}

bool lz_name_match(const char *pattern, const char *name) {
    if (!pattern || !name) return false;
    size_t n = strlen(name);
    if (glob(pattern, name, n)) return true;
    /* a module path: any prefix that ends before a '.' */
    for (size_t k = 0; k < n; k++)
        if (name[k] == '.' && glob(pattern, name, k)) return true;
    return false;
}

static int set_frozen(lz_module *m, const char *pattern, bool frozen) {
    if (!m) return -1;
    if (!pattern) { nn_fail(m, "pattern is NULL"); return -1; }
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS, &l)) return -1;
    int hits = 0;
    for (int i = 0; i < l.n; i++)
        if (lz_name_match(pattern, l.items[i].name)) {
            /* the slot is the entry's first field after the name: recover the entry */
            entry *e = (entry *)((char *)l.items[i].slot - offsetof(entry, value));
            e->frozen = frozen;
            hits++;
        }
    int total = l.n;
    lz_named_list_free(&l);
    if (!hits) {
        nn_fail(m, "%s: no parameter matches \"%s\" (of %d parameters)",
                frozen ? "freeze" : "unfreeze", pattern, total);
        return -1;
    }
    return hits;
}

int lz_module_freeze(lz_module *m, const char *pattern) { return set_frozen(m, pattern, true); }
int lz_module_unfreeze(lz_module *m, const char *pattern) { return set_frozen(m, pattern, false); }

bool lz_module_is_frozen(lz_module *m, const char *path) {
    if (!m) return false;
    entry *e = find_path(m, path, NULL);
    if (!e || e->buffer) {
        unknown(m, "parameter", path ? path : "", true);
        return false;
    }
    return e->frozen;
}

/* ---- evaluation ---- */

int lz_module_eval(lz_module *m, int n, lz_array *const *extra) {
    if (!m) return -1;
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS | LZ_BUFFERS, &l)) return -1;
    lz_array **all = malloc((size_t)(l.n + n + 1) * sizeof *all);
    if (!all) { lz_named_list_free(&l); nn_fail(m, "out of memory"); return -1; }
    int k = 0;
    for (int i = 0; i < l.n; i++) all[k++] = *l.items[i].slot;
    for (int i = 0; i < n; i++) {
        if (!extra[i]) {
            free(all);
            lz_named_list_free(&l);
            if (!lz_error()[0]) nn_fail(m, "lz_module_eval: extra array %d is NULL", i);
            return -1;
        }
        all[k++] = extra[i];
    }
    int rc = k ? lz_eval(k, all) : 0;
    free(all);
    lz_named_list_free(&l);
    return rc;
}

/* ---- summary ---- */

static void summarise(const lz_module *m, int depth, lz_strbuf *b) {
    char desc[256] = "";
    if (m->kind->describe) m->kind->describe(m, desc, sizeof desc);
    lz_strbuf_printf(b, "%*s%s%s%s(%s)", 2 * depth, "", m->parent ? m->name : "", m->parent ? ": " : "",
              m->kind->name, desc);
    for (int i = 0; i < m->nentries; i++) {
        entry *e = m->entries[i];
        lz_strbuf_printf(b, " %s%s %s", e->name, e->buffer ? " (buffer)" : e->frozen ? " (frozen)" : "",
                  nn_shape(e->value));
    }
    lz_strbuf_printf(b, "\n");
    for (int i = 0; i < m->nchildren; i++) summarise(m->children[i], depth + 1, b);
}

char *lz_module_summary(lz_module *m) {
    if (!m) return NULL;
    lz_strbuf b = {0};
    summarise(m, 0, &b);
    lz_strbuf_printf(&b, "parameters: %lld (%lld trainable)\n", (long long)count_params(m, false),
              (long long)count_params(m, true));
    char *s = lz_strbuf_take(&b);
    return s ? s : lz_fail("module summary: out of memory");
}

/* ---- gradients ---- */

typedef struct {
    lz_module *m;
    const lz_named_list *params;
    lz_module_loss_fn fn;
    void *ctx;
} vg_ctx;

/* Installs the transform's tracers in the parameter slots while the user's fn builds its
 * graph, then puts the real values back. */
static int vg_fn(void *p, int n, lz_array *const *in, lz_array **out) {
    vg_ctx *c = p;
    lz_array **saved = malloc((size_t)(n ? n : 1) * sizeof *saved);
    if (!saved) { lz_fail("lz_module_value_and_grad: out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        lz_array **slot = c->params->items[i].slot;
        saved[i] = *slot;
        *slot = lz_retain(in[i]);
    }
    int k = c->fn(c->ctx, c->m, out);
    for (int i = n - 1; i >= 0; i--) {
        lz_array **slot = c->params->items[i].slot;
        lz_release(*slot);
        *slot = saved[i];
    }
    free(saved);
    return k;
}

int lz_module_value_and_grad(lz_module *m, const lz_named_list *params, lz_module_loss_fn fn,
                             void *ctx, lz_array **outputs, int max_outputs, lz_array **grads) {
    if (!m) return -1;
    if (!params || params->n == 0) {
        nn_fail(m, "value_and_grad: no parameters to differentiate (all frozen, or an empty list)");
        return -1;
    }
    if (!fn || !grads) { nn_fail(m, "value_and_grad: fn and grads are required"); return -1; }
    lz_array **xs = malloc((size_t)params->n * sizeof *xs);
    if (!xs) { nn_fail(m, "out of memory"); return -1; }
    for (int i = 0; i < params->n; i++) xs[i] = *params->items[i].slot;
    vg_ctx c = {m, params, fn, ctx};
    int rc = lz_value_and_grad(vg_fn, &c, params->n, xs, NULL, outputs, max_outputs, grads);
    free(xs);
    return rc;
}
