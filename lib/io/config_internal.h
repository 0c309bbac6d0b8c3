/* Internals of the config loader, shared by lib/io/config*.c and lib/io/schema.c.
 *
 * A YAML file becomes a small tree of cnodes (maps, sequences, scalars) that remember
 * where they were written (file, 1-based line and column), so every later error can point
 * at the text. The effective config is another cnode tree, in schema order, whose scalars
 * also carry their typed value. All nodes and strings live in an arena freed at once. */
#ifndef LZ_CONFIG_INTERNAL_H
#define LZ_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

/* ---- arena: many small allocations, one free ---- */
typedef struct arena arena;
void *cfg_alloc(arena **a, size_t n);   /* zeroed; NULL when out of memory */
char *cfg_strdup(arena **a, const char *s);
char *cfg_printf(arena **a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  cfg_arena_free(arena *a);

/* ---- nodes ---- */
typedef enum { CN_SCALAR, CN_MAP, CN_SEQ, CN_NULL } cnode_kind;

typedef struct cnode cnode;
struct cnode {
    cnode_kind kind;
    int quoted;              /* scalar written quoted or as a block: always a string */
    const char *text;        /* scalar text (input), canonical text of strings (output) */
    const char *file;        /* where it was written ("default" for defaults) */
    int line, col;           /* 1-based; 0 when the origin has no position (command line) */
    int n, cap;              /* entries of a map / items of a sequence */
    cnode **keys;            /* map keys (scalar nodes, with their own marks) */
    cnode **vals;            /* map values / sequence items */
    /* output tree only: the schema entry and the typed value */
    const lz_config_key *key;
    lz_config_type type;     /* of this value (a list item has its element type) */
    int64_t i;
    double f;
};

cnode *cfg_node(arena **a, cnode_kind k, const char *file, int line, int col);
/* Value for key in map m (NULL when absent); *index gets its slot when index != NULL. */
cnode *cfg_get(const cnode *m, const char *key, int *index);
int    cfg_push(arena **a, cnode *seq_or_map, cnode *key, cnode *val);   /* 0 or -1 (OOM) */
void   cfg_remove(cnode *m, int index);
/* A plain scalar spelling null: "", "~", "null", "Null", "NULL" (a quoted one is a string). */
int    cfg_is_null(const cnode *n);
/* "file:line:col" or "file" when the node has no position. */
const char *cfg_where(const cnode *n, char *buf, size_t size);
/* Sets lz_error to "<where n>: <message>" and returns NULL. */
void  *cfg_fail(const cnode *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- YAML text -> tree (config_yaml.c) ----
 * Parses one YAML document whose root must be a mapping. `file` names it in messages (kept
 * by pointer: it must outlive the tree). An empty document gives an empty map. NULL + lz_error on failure: syntax
 * errors, tabs, duplicate keys, several documents, tags, non-scalar keys. */
cnode *cfg_parse_yaml(arena **a, const char *text, size_t len, const char *file);
/* One YAML value of any kind (a default, or the value of a command-line override); its
 * nodes have no position (line 0) and `origin` as their file. Empty text gives null. */
cnode *cfg_parse_value(arena **a, const char *text, const char *origin);

/* ---- schema helpers (schema.c) ---- */
/* Entry with this exact path in table t of n entries, or NULL. */
const lz_config_key *cfg_find(const lz_config_key *t, int n, const char *path);
/* Does the value `v` appear in the '|'-separated list `choices`? */
int cfg_in_choices(const char *choices, const char *v);
/* Checks the rules that tie several keys together (e.g. mean and std of equal length). */
int cfg_check_rules(const lz_config *cfg);
/* Edit distance (with adjacent swaps, ignoring case and '-' vs '_'), and whether `candidate`
 * is close enough to `typed` to be suggested. */
int cfg_distance(const char *a, const char *b);
int cfg_close(const char *typed, const char *candidate);
const char *cfg_alias(const char *typed);   /* common synonyms: "learning_rate" -> "optimizer.lr" */

/* ---- checking (config_check.c) ---- */
/* The effective tree from a merged input tree; `at` is where missing keys are reported. */
cnode *cfg_build(arena **a, const cnode *in, const cnode *at);
/* "unknown key 'x' in 'sect' (did you mean 'y'?)" into buf. */
void cfg_unknown_key(char *buf, size_t size, const char *sect, const char *typed);
/* "[1, inf)" -> ">= 1", "(0, inf)" -> "> 0", else "in [0, 1)". */
const char *cfg_range_text(const char *range, char *buf, size_t size);

/* ---- the loaded config ---- */
struct lz_config {
    arena *mem;
    cnode *root;             /* effective tree, in schema order */
};
/* Node for a dotted path ("model.layers.2.out"), or NULL. */
cnode *cfg_lookup(const lz_config *cfg, const char *path);

#endif
