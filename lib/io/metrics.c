/* JSON Lines metric logs: writing, and reading one field back (for plots and resumed runs). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../core/core.h"
#include "metrics.h"

struct lz_metrics { FILE *f; char *path; };

lz_metrics *lz_metrics_open(const char *path, int append) {
    lz_metrics *m = calloc(1, sizeof *m);
    if (!m) return lz_fail("out of memory");
    m->f = fopen(path, append ? "a" : "w");
    m->path = strdup(path);
    if (!m->f || !m->path) {
        lz_fail("%s: cannot open the metric log (%s)", path, strerror(errno));
        if (m->f) fclose(m->f);
        free(m->path);
        free(m);
        return NULL;
    }
    return m;
}

static void put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int lz_metrics_log(lz_metrics *m, const char *kind, int64_t step, int n, const char *const *keys,
                   const double *values) {
    if (!m) { lz_fail("metrics: no log open"); return -1; }
    fputs("{\"kind\":", m->f);
    put_string(m->f, kind);
    fprintf(m->f, ",\"step\":%lld", (long long)step);
    for (int i = 0; i < n; i++) {
        fputc(',', m->f);
        put_string(m->f, keys[i]);
        if (isfinite(values[i])) fprintf(m->f, ":%.9g", values[i]);
        else fputs(":null", m->f);
    }
    fputs("}\n", m->f);
    if (fflush(m->f) || ferror(m->f)) {
        lz_fail("%s: cannot write the metric log (%s)", m->path, strerror(errno));
        return -1;
    }
    return 0;
}

int lz_metrics_close(lz_metrics *m) {
    if (!m) return 0;
    int rc = fclose(m->f) ? -1 : 0;
    if (rc) lz_fail("%s: cannot close the metric log (%s)", m->path, strerror(errno));
    free(m->path);
    free(m);
    return rc;
}

/* ---- reading: flat objects of strings and numbers, as written above ---- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

/* Parses a JSON string at p (after the quote) into buf; returns the position after it. */
static const char *parse_string(const char *p, char *buf, size_t n) {
    size_t k = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            if (!*p) return NULL;
            c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'u' ? '?' : *p;
            if (*p == 'u') {
                for (int i = 0; i < 4; i++) if (!*++p) return NULL;
            }
        }
        if (k + 1 < n) buf[k++] = c;
    }
    if (*p != '"') return NULL;
    buf[k] = 0;
    return p + 1;
}

int64_t lz_metrics_read(const char *path, const char *kind, const char *key, int64_t **steps,
                        double **values) {
    *steps = NULL;
    *values = NULL;
    FILE *f = fopen(path, "r");
    if (!f) { lz_fail("%s: cannot open the metric log (%s)", path, strerror(errno)); return -1; }
    char *line = NULL;
    size_t cap = 0;
    int64_t n = 0, room = 0, lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        const char *p = skip_ws(line);
        if (!*p) continue;
        char k[256], kindv[256] = "", sval[256];
        double step = NAN, val = NAN;
        int have = 0;
        if (*p++ != '{') goto bad;
        for (p = skip_ws(p); *p != '}';) {
            if (*p++ != '"' || !(p = parse_string(p, k, sizeof k))) goto bad;
            p = skip_ws(p);
            if (*p++ != ':') goto bad;
            p = skip_ws(p);
            double v = NAN;
            int is_str = 0;
            if (*p == '"') {
                if (!(p = parse_string(p + 1, sval, sizeof sval))) goto bad;
                is_str = 1;
            } else if (!strncmp(p, "null", 4)) {
                p += 4;
            } else {
                char *end;
                v = strtod(p, &end);
                if (end == p) goto bad;
                p = end;
            }
            if (!strcmp(k, "kind") && is_str) snprintf(kindv, sizeof kindv, "%s", sval);
            else if (!strcmp(k, "step")) step = v;
            else if (!strcmp(k, key) && !is_str) { val = v; have = 1; }
            p = skip_ws(p);
            if (*p == ',') p = skip_ws(p + 1);
            else if (*p != '}') goto bad;
        }
        if (!have || strcmp(kindv, kind)) continue;
        if (n == room) {
            room = room ? 2 * room : 64;
            int64_t *s = realloc(*steps, (size_t)room * sizeof *s);
            if (s) *steps = s;
            double *v = realloc(*values, (size_t)room * sizeof *v);
            if (v) *values = v;
            if (!s || !v) { lz_fail("out of memory"); goto fail; }
        }
        (*steps)[n] = isfinite(step) ? (int64_t)step : -1;
        (*values)[n++] = val;
    }
    free(line);
    fclose(f);
    return n;
bad:
    lz_fail("%s:%lld: malformed metric record", path, (long long)lineno);
fail:
    free(line);
    fclose(f);
    free(*steps);
    free(*values);
    *steps = NULL;
    *values = NULL;
    return -1;
}
