/* Comparing a checkpoint section with what a model expects, reporting every missing,
 * unexpected and mismatched name in one message. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/strbuf.h"
#include "io/ckpt_internal.h"

/* ---- problems found, by category ---- */
enum { C_MISSING, C_UNEXPECTED, C_SHAPE, C_DTYPE, C_UNREADABLE, NCAT };
static const char *cat_one[NCAT] = {"missing", "unexpected", "shape mismatch", "dtype mismatch",
                                    "unreadable"};
static const char *cat_many[NCAT] = {"missing", "unexpected", "shape mismatches",
                                     "dtype mismatches", "unreadable"};

typedef struct { char **items; int n, cap; } list;

static int add(list *l, char *item) {
    if (!item) return -1;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->items, (size_t)cap * sizeof *v);
        if (!v) { free(item); return -1; }
        l->items = v;
        l->cap = cap;
    }
    l->items[l->n++] = item;
    return 0;
}

/* The report line; each category's names are cut after about `limit` characters
 * (0: never) with "+N more". */
static char *format(const char *path, const char *section, const list *cats, size_t limit) {
    lz_strbuf b = {0};
    lz_strbuf_printf(&b, "%s: %s:", path, section);
    int first = 1;
    for (int k = 0; k < NCAT; k++) {
        const list *l = &cats[k];
        if (!l->n) continue;
        lz_strbuf_printf(&b, "%s %d %s (", first ? "" : ",", l->n, l->n == 1 ? cat_one[k] : cat_many[k]);
        first = 0;
        size_t start = b.len;
        for (int i = 0; i < l->n; i++) {
            if (limit && i && b.len - start + strlen(l->items[i]) > limit) {
                lz_strbuf_printf(&b, ", +%d more", l->n - i);
                break;
            }
            lz_strbuf_printf(&b, "%s%s", i ? ", " : "", l->items[i]);
        }
        lz_strbuf_printf(&b, ")");
    }
    return lz_strbuf_take(&b);
}

static int matches(const char *const *patterns, const char *name) {
    for (int i = 0; patterns && patterns[i]; i++)
        if (fnmatch(patterns[i], name, 0) == 0) return 1;
    return 0;
}

typedef struct { const char *name; int64_t i; } entry;
static int by_name(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}
static const entry *find(const entry *v, int64_t n, const char *name) {
    entry key = {name, 0};
    return n ? bsearch(&key, v, (size_t)n, sizeof *v, by_name) : NULL;
}

static char *mismatch(const char *name, lz_dtype t, int nd, const int64_t *shape,
                      lz_array *like) {
    char a[240], b[240];
    ckpt_shape_str(t, nd, shape, a, sizeof a);
    ckpt_shape_str(lz_dtype_of(like), lz_ndim(like), lz_shape(like), b, sizeof b);
    size_t n = strlen(name) + strlen(a) + strlen(b) + 32;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s: checkpoint %s, model %s", name, a, b);
    return s;
}

int lz_ckpt_check(lz_ckpt *c, const char *section, int n, const char *const *names,
                  lz_array *const *like, const char *const *allow_missing,
                  const char *const *allow_unexpected, char **report) {
    if (report) *report = NULL;
    if (!c) return -1;
    if (n < 0 || (n && !names)) {
        lz_fail("%s: lz_ckpt_check: bad list of %d names", lz_ckpt_path(c), n);
        return -1;
    }
    int64_t m;
    const char *const *have = lz_ckpt_names(c, section, &m);
    if (!have) return -1;
    entry *hv = malloc((size_t)(m + 1) * sizeof *hv);
    entry *want = malloc((size_t)(n + 1) * sizeof *want);
    char *seen = calloc((size_t)m + 1, 1);
    list cats[NCAT] = {{0}};
    int r = 0, oom = !hv || !want || !seen;
    for (int64_t i = 0; !oom && i < m; i++) hv[i] = (entry){have[i], i};
    for (int i = 0; !oom && i < n; i++) want[i] = (entry){names[i], i};
    if (!oom) {
        qsort(hv, (size_t)m, sizeof *hv, by_name);
        qsort(want, (size_t)n, sizeof *want, by_name);
    }
    /* in the model's order, so the report reads like the model */
    for (int i = 0; !oom && i < n; i++) {
        const entry *e = find(hv, m, names[i]);
        if (!e) {
            if (!matches(allow_missing, names[i])) oom |= add(&cats[C_MISSING], strdup(names[i]));
            continue;
        }
        seen[e->i] = 1;
        if (!like || !like[i]) continue;
        lz_dtype t;
        int nd;
        int64_t shape[LZ_MAX_DIMS];
        if (lz_ckpt_info(c, section, names[i], &t, &nd, shape)) {
            oom |= add(&cats[C_UNREADABLE], strdup(names[i]));
            continue;
        }
        int same_shape = nd == lz_ndim(like[i]) &&
                         !memcmp(shape, lz_shape(like[i]), (size_t)nd * sizeof *shape);
        if (!same_shape || t != lz_dtype_of(like[i]))
            oom |= add(&cats[same_shape ? C_DTYPE : C_SHAPE],
                       mismatch(names[i], t, nd, shape, like[i]));
    }
    for (int64_t i = 0; !oom && i < m; i++)
        if (!seen[i] && !find(want, n, have[i]) && !matches(allow_unexpected, have[i]))
            oom |= add(&cats[C_UNEXPECTED], strdup(have[i]));
    int problems = 0;
    for (int k = 0; k < NCAT; k++) problems += cats[k].n;
    if (oom) {
        lz_fail("%s: out of memory checking %s", lz_ckpt_path(c), section);
        r = -1;
    } else if (problems) {
        char *line = format(lz_ckpt_path(c), section, cats, 180);
        lz_fail("%s", line ? line : "checkpoint check failed (out of memory for the report)");
        free(line);
        if (report) *report = format(lz_ckpt_path(c), section, cats, 0);
        r = -1;
    }
    for (int k = 0; k < NCAT; k++) {
        for (int i = 0; i < cats[k].n; i++) free(cats[k].items[i]);
        free(cats[k].items);
    }
    free(hv);
    free(want);
    free(seen);
    return r;
}
