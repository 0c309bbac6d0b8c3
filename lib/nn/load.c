/* Loading named arrays (a checkpoint's parameters and buffers) into a module tree, with a
 * report of what did not fit: names the model lacks, entries nobody gave, shape mismatches. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/strbuf.h"
#include "nn_internal.h"

static bool same_shape(const lz_array *a, const lz_array *b) {
    return lz_ndim(a) == lz_ndim(b) &&
           !memcmp(lz_shape(a), lz_shape(b), (size_t)lz_ndim(a) * sizeof(int64_t));
}

int lz_module_load(lz_module *m, int n, const char *const *names, lz_array *const *arrays,
                   bool strict, char **report) {
    if (report) *report = NULL;
    if (!m) return -1;
    if (n < 0 || (n && (!names || !arrays))) { nn_fail(m, "load: %d arrays without names", n); return -1; }
    lz_named_list l;
    if (lz_module_collect(m, LZ_PARAMS | LZ_BUFFERS, &l)) return -1;
    int *match = malloc((size_t)(n + 1) * sizeof *match);   /* entry index per given name */
    bool *given = calloc((size_t)l.n + 1, sizeof *given);
    if (!match || !given) {
        free(match); free(given); lz_named_list_free(&l);
        nn_fail(m, "load: out of memory");
        return -1;
    }
    lz_strbuf t = {0};
    int unexpected = 0, missing = 0, mismatched = 0, assigned = 0;
    for (int i = 0; i < n; i++) {
        match[i] = -1;
        if (!names[i] || !arrays[i]) {
            lz_strbuf_printf(&t, "entry %d: %s is NULL\n", i, names[i] ? "the array" : "the name");
            mismatched++;
            continue;
        }
        for (int j = 0; j < l.n && match[i] < 0; j++)
            if (!strcmp(names[i], l.items[j].name)) match[i] = j;
        if (match[i] < 0) {
            lz_strbuf_printf(&t, "unexpected: %s %s (the model has no such entry)\n", names[i], nn_shape(arrays[i]));
            unexpected++;
            continue;
        }
        if (given[match[i]]) {
            lz_strbuf_printf(&t, "duplicate: %s given twice\n", names[i]);
            mismatched++;
            match[i] = -1;
            continue;
        }
        given[match[i]] = true;
        lz_array *cur = *l.items[match[i]].slot;
        bool fl = lz_dtype_is_float(lz_dtype_of(cur)), fa = lz_dtype_is_float(lz_dtype_of(arrays[i]));
        if (!same_shape(cur, arrays[i]) || fl != fa) {
            lz_strbuf_printf(&t, "mismatch: %s is %s in the model but %s given\n", names[i], nn_shape(cur),
                nn_shape(arrays[i]));
            mismatched++;
            match[i] = -1;
        }
    }
    for (int j = 0; j < l.n; j++)
        if (!given[j]) {
            lz_strbuf_printf(&t, "missing: %s %s (not given; keeps its value)\n", l.items[j].name, nn_shape(*l.items[j].slot));
            missing++;
        }
    int rc = 0;
    if (strict && (unexpected || missing || mismatched)) {
        /* the first problem in the message, all of them in the report */
        char first[400] = "";
        if (t.s) {
            snprintf(first, sizeof first, "%s", t.s);
            char *nl = strchr(first, '\n');
            if (nl) *nl = 0;
        }
        nn_fail(m, "load: %d unexpected, %d missing, %d mismatched entries; nothing loaded "
                "(first: %s)", unexpected, missing, mismatched, first);
        rc = -1;
    } else {
        lz_pool_push();
        for (int i = 0; i < n && !rc; i++) {
            if (match[i] < 0) continue;
            const lz_named_array *e = &l.items[match[i]];
            /* floats convert (a float16 checkpoint into a float32 model) */
            lz_array *v = lz_astype(arrays[i], lz_dtype_of(*e->slot));
            if (!v || lz_param_set(e, v)) rc = -1;
            else assigned++;
        }
        lz_pool_pop();
    }
    if (report && !t.oom) *report = t.s;   /* NULL when there is nothing to report */
    else free(t.s);
    free(match);
    free(given);
    lz_named_list_free(&l);
    return rc ? -1 : assigned;
}
