/* Writing: the effective config as YAML (libyaml's emitter does the quoting), and the
 * reference tables of configs/README.md generated from the schema. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "core/core.h"
#include "core/strbuf.h"
#include "config_internal.h"

/* ---- YAML ---- */

/* The shortest text that reads back to exactly x, always with a '.' (1.0, 3.0e-04) so that
 * other YAML readers see a float too. */
static void float_text(double x, char *buf, size_t size) {
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* room for ".0": %.17g is at most 24 characters */
    char *e = strchr(tmp, 'e');
    if (!strchr(tmp, '.')) {
        size_t at = e ? (size_t)(e - tmp) : strlen(tmp);
        memmove(tmp + at + 2, tmp + at, strlen(tmp + at) + 1);
        memcpy(tmp + at, ".0", 2);
    }
    snprintf(buf, size, "%s", tmp);
}

/* Words that read back as the same string in any YAML reader: no quoting needed. */
static int plain_safe(const char *s) {
    static const char *const special[] = {"null", "Null", "NULL", "~", "true", "True", "TRUE",
        "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON",
        "off", "Off", "OFF", "y", "Y", "n", "N"};
    if (!*s) return 0;
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (!strcmp(s, special[i])) return 0;
    if ((*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '+') {
        /* anything number-like stays quoted; plain paths like ./data.h5 too, to be safe */
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.' || *p == '/' || *p >= 0x80))
            return 0;
    return 1;
}

typedef struct { yaml_emitter_t em; int failed; } emitter;

static void emit(emitter *e, yaml_event_t *ev, int ok) {
    if (e->failed) { if (ok) yaml_event_delete(ev); return; }
    if (!ok || !yaml_emitter_emit(&e->em, ev)) e->failed = 1;
}

static void emit_scalar(emitter *e, const char *text, int quoted) {
    yaml_event_t ev;
    int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
                                          !quoted, quoted,
                                          quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE);
    emit(e, &ev, ok);
}

static void emit_node(emitter *e, const cnode *n, int flow) {
    yaml_event_t ev;
    char buf[64];
    switch (n->kind) {
    case CN_MAP:
        emit(e, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                     flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
        for (int i = 0; i < n->n; i++) {
            emit_scalar(e, n->keys[i]->text, 0);
            emit_node(e, n->vals[i], flow);
        }
        emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
        break;
    case CN_SEQ: {
        int layers = n->type == LZ_CFG_LAYERS && n->n;   /* one layer per line, each inline */
        emit(e, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                     layers ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE));
        for (int i = 0; i < n->n; i++) emit_node(e, n->vals[i], 1);
        emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
        break;
    }
    case CN_NULL:
        emit_scalar(e, "null", 0);
        break;
    case CN_SCALAR:
        switch (n->type) {
        case LZ_CFG_INT: snprintf(buf, sizeof buf, "%lld", (long long)n->i); emit_scalar(e, buf, 0); break;
        case LZ_CFG_FLOAT: float_text(n->f, buf, sizeof buf); emit_scalar(e, buf, 0); break;
        case LZ_CFG_BOOL: emit_scalar(e, n->i ? "true" : "false", 0); break;
        default: emit_scalar(e, n->text, !plain_safe(n->text)); break;
        }
        break;
    }
}

static int write_strbuf(void *data, unsigned char *buffer, size_t size) {
    lz_strbuf *b = data;
    lz_strbuf_add(b, (const char *)buffer, size);
    return !b->oom;
}

char *lz_config_dump_string(const lz_config *cfg) {
    if (!cfg) return lz_fail("lz_config_dump: no config");
    lz_strbuf b = {0};
    emitter e = {0};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e.em)) return lz_fail("out of memory");
    yaml_emitter_set_output(&e.em, write_strbuf, &b);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, -1);   /* never fold long strings */
    yaml_emitter_set_indent(&e.em, 2);
    emit(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    emit_node(&e, cfg->root, 0);
    emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&e, &ev, yaml_stream_end_event_initialize(&ev));
    int failed = e.failed || b.oom;
    yaml_emitter_delete(&e.em);
    if (failed) {
        free(b.s);
        return lz_fail("lz_config_dump: cannot write YAML (%s)", e.em.problem ? e.em.problem : "out of memory");
    }
    return b.s;
}

int lz_config_dump(const lz_config *cfg, FILE *f) {
    char *s = lz_config_dump_string(cfg);
    if (!s) return -1;
    size_t n = strlen(s);
    int r = fwrite(s, 1, n, f) == n ? 0 : -1;
    free(s);
    if (r) lz_fail("lz_config_dump: write failed");
    return r;
}

/* ---- Markdown reference ---- */

/* Text for a table cell: '|' would end the cell. */
static void cell(lz_strbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') lz_strbuf_add(b, "\\|", 2);
        else lz_strbuf_add(b, s, 1);
    }
}

static void type_text(lz_strbuf *b, const lz_config_key *k) {
    static const char *const names[] = {"section", "string", "int", "float", "bool", "enum",
                                        "strings", "ints", "floats", "layers"};
    char r[64];
    switch (k->type) {
    case LZ_CFG_ENUM:
        lz_strbuf_printf(b, "one of ");
        for (const char *c = k->choices; *c;) {
            const char *bar = strchr(c, '|');
            int n = bar ? (int)(bar - c) : (int)strlen(c);
            lz_strbuf_printf(b, "%s`%.*s`", c == k->choices ? "" : ", ", n, c);
            c += n + (bar != NULL);
        }
        break;
    case LZ_CFG_STRS: case LZ_CFG_INTS: case LZ_CFG_FLOATS:
        if (k->length) lz_strbuf_printf(b, "%d %s", k->length, names[k->type]);
        else lz_strbuf_printf(b, "list of %s", names[k->type]);
        break;
    case LZ_CFG_LAYERS: lz_strbuf_printf(b, "list of layers"); break;
    default: lz_strbuf_printf(b, "%s", names[k->type]); break;
    }
    if (k->range) lz_strbuf_printf(b, " %s", cfg_range_text(k->range, r, sizeof r));
    if (k->flags & LZ_CFG_NULLABLE) lz_strbuf_printf(b, " or null");
}

static void when_text(lz_strbuf *b, const char *when) {
    const char *eq = strchr(when, '=');
    lz_strbuf_printf(b, " *Only when `%.*s` is ", (int)(eq - when), when);
    for (const char *c = eq + 1; *c;) {
        const char *bar = strchr(c, '|');
        int n = bar ? (int)(bar - c) : (int)strlen(c);
        lz_strbuf_printf(b, "%s`%.*s`", c == eq + 1 ? "" : bar ? ", " : " or ", n, c);
        c += n + (bar != NULL);
    }
    lz_strbuf_printf(b, ".*");
}

static void key_table(lz_strbuf *b, const char *sect) {
    lz_strbuf_printf(b, "| key | type | default | meaning |\n|---|---|---|---|\n");
    size_t n = strlen(sect);
    for (int i = 0; i < lz_config_schema_len; i++) {
        const lz_config_key *k = &lz_config_schema[i];
        const char *dot = strrchr(k->path, '.');
        int mine = n ? dot && (size_t)(dot - k->path) == n && !strncmp(k->path, sect, n) : !dot;
        if (!mine || k->type == LZ_CFG_MAP) continue;
        lz_strbuf_printf(b, "| `%s` | ", k->path);
        type_text(b, k);
        lz_strbuf_printf(b, " | ");
        if (k->def) { lz_strbuf_printf(b, "`"); cell(b, k->def); lz_strbuf_printf(b, "`"); }
        else lz_strbuf_printf(b, "**required**");
        lz_strbuf_printf(b, " | ");
        cell(b, k->doc);
        if (k->when) when_text(b, k->when);
        lz_strbuf_printf(b, " |\n");
    }
}

char *lz_config_schema_markdown(void) {
    lz_strbuf b = {0};
    lz_strbuf_printf(&b, "## Keys\n\n### Top level\n\n");
    key_table(&b, "");
    for (int i = 0; i < lz_config_schema_len; i++) {
        const lz_config_key *k = &lz_config_schema[i];
        if (k->type != LZ_CFG_MAP) continue;
        lz_strbuf_printf(&b, "\n### `%s`\n\n", k->path);
        cell(&b, k->doc);
        lz_strbuf_printf(&b, "\n\n");
        key_table(&b, k->path);
    }
    lz_strbuf_printf(&b, "\n## Layer types\n\nItems of `model.layers`: `{type: NAME, key: value, ...}`, "
                  "or just `NAME` when the defaults suit.\n\n| type | keys | meaning |\n|---|---|---|\n");
    for (int i = 0; i < lz_config_layers_len; i++) {
        const lz_config_key *t = &lz_config_layers[i];
        if (strchr(t->path, '.')) continue;
        lz_strbuf_printf(&b, "| `%s` | ", t->path);
        size_t n = strlen(t->path);
        int any = 0;
        for (int j = i + 1; j < lz_config_layers_len; j++) {
            const lz_config_key *k = &lz_config_layers[j];
            if (strncmp(k->path, t->path, n) || k->path[n] != '.') continue;
            lz_strbuf_printf(&b, "%s`%s`: ", any++ ? "; " : "", k->path + n + 1);
            type_text(&b, k);
            if (k->def) { lz_strbuf_printf(&b, ", default `"); cell(&b, k->def); lz_strbuf_printf(&b, "`"); }
            else lz_strbuf_printf(&b, ", **required**");
            lz_strbuf_printf(&b, " (");
            cell(&b, k->doc);
            lz_strbuf_printf(&b, ")");
        }
        if (!any) lz_strbuf_printf(&b, "none");
        lz_strbuf_printf(&b, " | ");
        cell(&b, t->doc);
        lz_strbuf_printf(&b, " |\n");
    }
    if (b.oom) { free(b.s); return lz_fail("out of memory"); }
    return b.s;
}
