/* Experiment configs: YAML files (libyaml) checked against one typed schema.
 *
 * Every key of an experiment is an entry of the table in lib/io/schema.c (path, type,
 * default, allowed values or range, one line of documentation); configs/README.md is
 * generated from it. Loading a file:
 *   1. parses it (and, through `base: other.yaml`, the files it inherits from, relative to
 *      the including file; a cycle is an error that shows the chain);
 *   2. merges them, the including file over its base: maps merge key by key, lists and
 *      scalars are replaced; a section that switches its `name`/`type` (e.g. optimizer
 *      adam -> sgd) drops the inherited keys that do not apply to the new one;
 *   3. applies command-line overrides `key.sub=value` (values are YAML: `3e-4`, `[0.9, 0.95]`,
 *      `model.layers.1.out=64` indexes a list), in order, with the same merge rule;
 *   4. checks every key: unknown keys (with the closest valid key suggested), wrong types,
 *      values out of range, keys that do not apply (`momentum` with adam), missing required
 *      keys; then fills in the defaults.
 * Errors name the place: "configs/x.yaml:12:5: unknown key 'optimiser' in 'train' (did you
 * mean 'optimizer'?)", or "command line 'optimizer.lr=fast': ..." for an override.
 *
 * Types: ints must be written as integers (3.5 or 1e3 for an int is an error); floats accept
 * integers and forms like 3e-4 (finite only); bools are true/false; a quoted scalar is always
 * a string; null (`~`, `null` or nothing) is allowed only where the schema says so.
 *
 * The effective config is a tree with every applicable key present, in schema order. Read it
 * with the getters below by dotted path; list items by index ("optimizer.betas.0",
 * "model.layers.2.out"). It prints as YAML that loads back to the same config. */
#ifndef LZ_CONFIG_H
#define LZ_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef struct lz_config lz_config;

/* Loads a config file and applies n overrides ("key.sub=value"). Returns a new config that
 * the caller frees with lz_config_free, or NULL with lz_error() set (one line, with file,
 * line and column). */
lz_config *lz_config_load(const char *path, int noverrides, const char *const *overrides);
/* The same from text in memory (e.g. the config stored in a checkpoint). `name` is used in
 * messages and `base:` paths are relative to its folder. Caller frees the result. */
lz_config *lz_config_load_string(const char *text, const char *name, int noverrides,
                                 const char *const *overrides);
void lz_config_free(lz_config *cfg);   /* NULL-safe */

/* ---- reading the effective config (paths like "optimizer.lr", "model.layers.0.type") ----
 * A path that is unknown, does not apply (optimizer.momentum with adam), holds null, or has
 * another type makes the getter return 0 / NaN / NULL with lz_error() set. */
int         lz_config_has(const lz_config *cfg, const char *path); /* 1: present, not null */
int64_t     lz_config_int(const lz_config *cfg, const char *path);
double      lz_config_float(const lz_config *cfg, const char *path);   /* floats and ints */
int         lz_config_bool(const lz_config *cfg, const char *path);
const char *lz_config_str(const lz_config *cfg, const char *path);    /* strings, enums; owned
                                                                          by cfg */
int         lz_config_len(const lz_config *cfg, const char *path);    /* list length, -1 */
/* Where the value came from: "configs/x.yaml:12:5", "command line 'train.epochs=3'" or
 * "default", written into buf; returns buf ("" when the path is unknown). */
const char *lz_config_origin(const lz_config *cfg, const char *path, char *buf, size_t n);

/* The effective config as YAML (it loads back to the same config). 0 or -1. */
int   lz_config_dump(const lz_config *cfg, FILE *f);
/* The same as a string the caller frees with free(); NULL with lz_error() on failure. */
char *lz_config_dump_string(const lz_config *cfg);

/* ---- the schema (lib/io/schema.c) ---- */
typedef enum {
    LZ_CFG_MAP,       /* a section: its keys are the entries below it */
    LZ_CFG_STR, LZ_CFG_INT, LZ_CFG_FLOAT, LZ_CFG_BOOL,
    LZ_CFG_ENUM,      /* a string among `choices` */
    LZ_CFG_STRS, LZ_CFG_INTS, LZ_CFG_FLOATS,   /* lists */
    LZ_CFG_LAYERS     /* a list of layer maps, each checked against lz_config_layers */
} lz_config_type;

enum {
    LZ_CFG_NULLABLE = 1,   /* null is a valid value (meaning given in the doc) */
    LZ_CFG_META = 2        /* read while loading, not part of the effective config (base) */
};

typedef struct {
    const char *path;     /* dotted: "optimizer.lr"; in lz_config_layers "conv2d.kernel" */
    lz_config_type type;
    const char *def;      /* default, as YAML text ("1e-3", "[0.9, 0.999]", "null");
                             NULL: the key is required (where it applies) */
    unsigned flags;
    const char *choices;  /* LZ_CFG_ENUM: "adam|adamw|sgd" */
    const char *range;    /* numbers and number lists: "[0, 1)", "(0, inf)"; NULL: any */
    int length;           /* lists: exact number of items; 0: any */
    const char *when;     /* "optimizer.name=sgd|rmsprop": the key exists only then; the
                             named key is an enum of the same section, listed before */
    const char *doc;
} lz_config_key;

/* The experiment schema, sections before their keys. */
extern const lz_config_key lz_config_schema[];
extern const int lz_config_schema_len;
/* Layer types for model.layers: an entry "linear" (LZ_CFG_MAP, doc of the layer) followed by
 * its keys "linear.out", ... A layer is written `{type: linear, out: 10}` or just `relu`. */
extern const lz_config_key lz_config_layers[];
extern const int lz_config_layers_len;

/* Checks the tables themselves (defaults valid for their type and range, `when` names an
 * earlier enum, sections exist, no duplicates). 0, or -1 with lz_error() set. */
int   lz_config_schema_check(void);
/* The reference part of configs/README.md (Markdown tables), generated from the tables.
 * Caller frees with free(). */
char *lz_config_schema_markdown(void);

#endif
