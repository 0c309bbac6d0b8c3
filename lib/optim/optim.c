/* The optimizer object: configuration and groups, per-parameter state by name, the step
 * driver (validate everything, build every update, then commit, so a failed step changes
 * nothing), and the named-state interface checkpoints use. The update rules are in rules.c. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../core/internal.h"   /* lz_autorelease */
#include "../ops/ops.h"
#include "rules.h"

/* One parameter's state. */
typedef struct {
    char *name;
    int64_t step;                   /* updates applied */
    lz_array *buf[OPTIM_MAXBUF];    /* owned; NULL until the first step or a restore */
    int group, group_seen;          /* cached group index, valid while ngroups == group_seen */
    uint64_t mark;                  /* step call that last named it (finds duplicates) */
} slot;

typedef struct {
    char **patterns;
    int npatterns;
    lz_optim_config cfg;
} group;

typedef struct { int slot, key; } entry;   /* key -1: "step" */

struct lz_optim {
    lz_optim_config cfg;            /* the default group */
    group *groups;                  /* added groups: index g is groups[g - 1] */
    int ngroups;
    slot *slots;
    int nslots, slots_cap;
    int *table;                     /* open addressing: slot index + 1, 0 empty */
    int table_cap;                  /* power of two, > 2 * nslots */
    uint64_t calls;
    /* named-state listing, rebuilt when `version` moves */
    uint64_t version, listed;
    entry *entries;
    char **entry_names;
    int nentries;
    /* per-step scratch, kept to avoid a malloc per step */
    void *scratch;
    size_t scratch_cap;
};

/* ---- configuration ---- */

static const char *const kind_names[LZ_OPTIM_NKINDS] = {
    [LZ_SGD] = "sgd", [LZ_ADAM] = "adam", [LZ_ADAMW] = "adamw",
    [LZ_RMSPROP] = "rmsprop", [LZ_ADAGRAD] = "adagrad", [LZ_LION] = "lion",
};

const char *lz_optim_kind_name(lz_optim_kind kind) {
    return (unsigned)kind < LZ_OPTIM_NKINDS ? kind_names[kind] : NULL;
}

lz_optim_config lz_optim_defaults(lz_optim_kind kind) {
    lz_optim_config c = {.kind = kind, .lr = 1e-3, .betas = {0.9, 0.999}, .eps = 1e-8,
                         .alpha = 0.99};
    if (kind == LZ_SGD || kind == LZ_ADAGRAD) c.lr = 1e-2;
    if (kind == LZ_ADAGRAD) c.eps = 1e-10;
    if (kind == LZ_ADAMW) c.weight_decay = 1e-2;
    if (kind == LZ_LION) { c.lr = 1e-4; c.betas[1] = 0.99; }
    return c;
}

static int bad(const char *fn, const char *what, double v) {
    lz_fail("%s: %s must be %s, got %g", fn, what,
            !strcmp(what, "eps") ? "> 0 (start from lz_optim_defaults)" :
            !strncmp(what, "beta", 4) || !strcmp(what, "alpha") ? "in [0, 1)" : ">= 0", v);
    return -1;
}

static int validate(const char *fn, const lz_optim_config *c) {
    if (!c) return lz_fail("%s: config is NULL", fn), -1;
    if ((unsigned)c->kind >= LZ_OPTIM_NKINDS)
        return lz_fail("%s: unknown optimizer kind %d", fn, (int)c->kind), -1;
    const double f[] = {c->lr, c->weight_decay, c->momentum, c->dampening, c->betas[0],
                        c->betas[1], c->eps, c->alpha, c->lr_decay, c->initial_accumulator_value};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (!isfinite(f[i])) return lz_fail("%s: hyperparameters must be finite", fn), -1;
    if (c->lr < 0) return bad(fn, "lr", c->lr);
    if (c->weight_decay < 0) return bad(fn, "weight_decay", c->weight_decay);
    if (c->momentum < 0) return bad(fn, "momentum", c->momentum);
    switch (c->kind) {
    case LZ_SGD:
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return lz_fail("%s: nesterov needs momentum > 0 and dampening 0", fn), -1;
        break;
    case LZ_ADAM: case LZ_ADAMW: case LZ_LION:
        if (!(c->betas[0] >= 0 && c->betas[0] < 1)) return bad(fn, "betas[0]", c->betas[0]);
        if (!(c->betas[1] >= 0 && c->betas[1] < 1)) return bad(fn, "betas[1]", c->betas[1]);
        if (c->kind != LZ_LION && c->eps <= 0) return bad(fn, "eps", c->eps);
        break;
    case LZ_RMSPROP:
        if (!(c->alpha >= 0 && c->alpha < 1)) return bad(fn, "alpha", c->alpha);
        if (c->eps <= 0) return bad(fn, "eps", c->eps);
        break;
    case LZ_ADAGRAD:
        if (c->eps <= 0) return bad(fn, "eps", c->eps);
        if (c->lr_decay < 0) return bad(fn, "lr_decay", c->lr_decay);
        if (c->initial_accumulator_value < 0)
            return bad(fn, "initial_accumulator_value", c->initial_accumulator_value);
        break;
    default: break;
    }
    return 0;
}

/* ---- names, patterns, the slot table ---- */

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;     /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The table position holding name, or the empty position where it would go. */
static int *probe(const lz_optim *o, const char *name) {
    size_t mask = (size_t)o->table_cap - 1, i = hash(name) & mask;
    for (;; i = (i + 1) & mask) {
        int *t = &o->table[i];
        if (!*t || !strcmp(o->slots[*t - 1].name, name)) return t;
    }
}

static int rehash(lz_optim *o, int cap) {
    int *t = calloc((size_t)cap, sizeof *t);
    if (!t) return lz_fail("lz_optim: out of memory"), -1;
    free(o->table);
    o->table = t;
    o->table_cap = cap;
    for (int s = 0; s < o->nslots; s++) *probe(o, o->slots[s].name) = s + 1;
    return 0;
}

static slot *find(const lz_optim *o, const char *name) {
    int *t = o->table_cap ? probe(o, name) : NULL;
    return t && *t ? &o->slots[*t - 1] : NULL;
}

static slot *find_or_add(lz_optim *o, const char *name) {
    slot *s = find(o, name);
    if (s) return s;
    if (2 * (o->nslots + 1) >= o->table_cap && rehash(o, o->table_cap ? 2 * o->table_cap : 64))
        return NULL;
    if (o->nslots == o->slots_cap) {
        int cap = o->slots_cap ? 2 * o->slots_cap : 16;
        slot *v = realloc(o->slots, (size_t)cap * sizeof *v);
        if (!v) return lz_fail("lz_optim: out of memory");
        o->slots = v;
        o->slots_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return lz_fail("lz_optim: out of memory");
    s = &o->slots[o->nslots];
    *s = (slot){.name = copy, .group = -1};
    *probe(o, name) = ++o->nslots;
    o->version++;
    return s;
}

static void slot_clear(slot *s) {
    free(s->name);
    for (int k = 0; k < OPTIM_MAXBUF; k++) lz_release(s->buf[k]);
}

/* Drops slots [from, nslots) (a failed step's new names) or those flagged in `drop`. */
static void remove_slots(lz_optim *o, int from, const bool *drop) {
    int w = 0;
    for (int s = 0; s < o->nslots; s++) {
        if (s >= from || (drop && drop[s])) slot_clear(&o->slots[s]);
        else o->slots[w++] = o->slots[s];
    }
    o->nslots = w;
    o->version++;
    memset(o->table, 0, (size_t)o->table_cap * sizeof *o->table);
    for (int s = 0; s < o->nslots; s++) *probe(o, o->slots[s].name) = s + 1;
}

/* Splits "a, b,c" into trimmed, non-empty globs. */
static int split_patterns(const char *fn, const char *patterns, char ***out, int *n) {
    if (!patterns) return lz_fail("%s: patterns is NULL", fn), -1;
    *out = NULL;
    *n = 0;
    for (const char *p = patterns; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ') len--;
        if (len) {
            char **v = realloc(*out, (size_t)(*n + 1) * sizeof *v);
            char *s = v ? strndup(p, len) : NULL;
            if (v) *out = v;
            if (!s) return lz_fail("%s: out of memory", fn), -1;
            (*out)[(*n)++] = s;
        }
        p += strcspn(p, ",");
    }
    if (!*n) return lz_fail("%s: no pattern in \"%s\"", fn, patterns), -1;
    return 0;
}

static void free_patterns(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static bool matches(char *const *patterns, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!fnmatch(patterns[i], name, 0)) return true;
    return false;
}

/* ---- lifetime, groups ---- */

lz_optim *lz_optim_new(const lz_optim_config *cfg) {
    if (validate("lz_optim_new", cfg)) return NULL;
    lz_optim *o = calloc(1, sizeof *o);
    if (!o) return lz_fail("lz_optim_new: out of memory");
    o->cfg = *cfg;
    o->version = 1;
    return o;
}

void lz_optim_free(lz_optim *o) {
    if (!o) return;
    for (int s = 0; s < o->nslots; s++) slot_clear(&o->slots[s]);
    for (int g = 0; g < o->ngroups; g++) free_patterns(o->groups[g].patterns, o->groups[g].npatterns);
    for (int e = 0; e < o->nentries; e++) free(o->entry_names[e]);
    free(o->slots);
    free(o->table);
    free(o->groups);
    free(o->entries);
    free(o->entry_names);
    free(o->scratch);
    free(o);
}

lz_optim_config lz_optim_get_config(const lz_optim *o) {
    return o ? o->cfg : (lz_optim_config){0};
}

int lz_optim_add_group(lz_optim *o, const char *patterns, const lz_optim_config *cfg) {
    const char *fn = "lz_optim_add_group";
    if (!o) return lz_fail("%s: optimizer is NULL", fn), -1;
    if (validate(fn, cfg)) return -1;
    if (cfg->kind != o->cfg.kind)
        return lz_fail("%s: group of kind %s in a %s optimizer", fn, lz_optim_kind_name(cfg->kind),
                       lz_optim_kind_name(o->cfg.kind)), -1;
    group g = {.cfg = *cfg};
    if (split_patterns(fn, patterns, &g.patterns, &g.npatterns)) {
        free_patterns(g.patterns, g.npatterns);
        return -1;
    }
    group *v = realloc(o->groups, (size_t)(o->ngroups + 1) * sizeof *v);
    if (!v) {
        free_patterns(g.patterns, g.npatterns);
        return lz_fail("%s: out of memory", fn), -1;
    }
    o->groups = v;
    o->groups[o->ngroups++] = g;
    return o->ngroups;
}

int lz_optim_group_of(const lz_optim *o, const char *name) {
    if (!o || !name) return 0;
    for (int g = 0; g < o->ngroups; g++)
        if (matches(o->groups[g].patterns, o->groups[g].npatterns, name)) return g + 1;
    return 0;
}

static const lz_optim_config *config_of(lz_optim *o, slot *s) {
    if (s->group_seen != o->ngroups || s->group < 0) {
        s->group = lz_optim_group_of(o, s->name);
        s->group_seen = o->ngroups;
    }
    return s->group ? &o->groups[s->group - 1].cfg : &o->cfg;
}

/* ---- the step ---- */

static void *scratch(lz_optim *o, size_t bytes) {
    if (bytes > o->scratch_cap) {
        void *p = realloc(o->scratch, bytes);
        if (!p) return lz_fail("lz_optim: out of memory");
        o->scratch = p;
        o->scratch_cap = bytes;
    }
    return o->scratch;
}

static bool same_shape(lz_array *a, lz_array *b) {
    return lz_ndim(a) == lz_ndim(b) &&
           !memcmp(lz_shape(a), lz_shape(b), (size_t)lz_ndim(a) * sizeof(int64_t));
}

/* Checks one parameter's inputs and state before anything is built. */
static int check(lz_optim *o, slot *s, lz_array *p, lz_array *g) {
    const char *fn = "lz_optim_step";
    char sp[160], sg[160];
    if (!lz_dtype_is_float(lz_dtype_of(p)) || !lz_dtype_is_float(lz_dtype_of(g)))
        return lz_fail("%s: '%s': parameter %s and gradient %s must be float", fn, s->name,
                       lz_shape_str(p, sp, sizeof sp), lz_shape_str(g, sg, sizeof sg)), -1;
    if (!same_shape(p, g))
        return lz_fail("%s: '%s': gradient %s does not match parameter %s", fn, s->name,
                       lz_shape_str(g, sg, sizeof sg), lz_shape_str(p, sp, sizeof sp)), -1;
    const lz_optim_config *c = config_of(o, s);
    bool started = s->step > 0;
    for (int k = 0; k < OPTIM_MAXBUF; k++) started |= s->buf[k] && optim_buf_needed(c, k);
    for (int k = 0; k < OPTIM_MAXBUF; k++) {
        if (!optim_buf_needed(c, k)) continue;
        if (!s->buf[k] && started)
            return lz_fail("%s: '%s': state lacks %s.%s (step %lld): incomplete restore?", fn,
                           s->name, s->name, optim_buf_name(c->kind, k), (long long)s->step), -1;
        if (s->buf[k] && !same_shape(s->buf[k], p))
            return lz_fail("%s: '%s': state %s.%s is %s but the parameter is %s", fn, s->name,
                           s->name, optim_buf_name(c->kind, k),
                           lz_shape_str(s->buf[k], sg, sizeof sg), lz_shape_str(p, sp, sizeof sp)), -1;
    }
    return 0;
}

static double group_lr(const lz_optim *o, const lz_optim_config *c, double lr_now) {
    if (lr_now < 0) return c->lr;
    return o->cfg.lr > 0 ? lr_now * (c->lr / o->cfg.lr) : lr_now;
}

int lz_optim_step(lz_optim *o, int n, const char *const *names, lz_array *const *params_in,
                  lz_array *const *grads, lz_array **params_out, double lr_now) {
    const char *fn = "lz_optim_step";
    for (int i = 0; params_out && i < n; i++) params_out[i] = NULL;
    if (!o) return lz_fail("%s: optimizer is NULL", fn), -1;
    if (n < 0 || (n > 0 && (!names || !params_in || !grads || !params_out)))
        return lz_fail("%s: bad arguments (n = %d, NULL list)", fn, n), -1;
    if (!isfinite(lr_now)) return lz_fail("%s: lr_now is %g", fn, lr_now), -1;
    for (int i = 0; i < n; i++) {
        if (!params_in[i] || !grads[i]) {
            if (!lz_error()[0])
                lz_fail("%s: %s %d is NULL", fn, params_in[i] ? "gradient" : "parameter", i);
            return -1;
        }
        if (!names[i] || !names[i][0] || strchr(names[i], '/'))
            return lz_fail("%s: parameter %d: name \"%s\" must be non-empty, without '/'", fn, i,
                           names[i] ? names[i] : "(null)"), -1;
    }
    /* Scratch: the new parameter and buffers of each, its slot, the slot's index. */
    size_t nmade = (size_t)n * (1 + OPTIM_MAXBUF);
    char *mem = scratch(o, nmade * sizeof(lz_array *) + (size_t)n * (sizeof(slot *) + sizeof(int)) + 1);
    if (!mem) return -1;
    lz_array **made = (lz_array **)mem;
    slot **slots = (slot **)(made + nmade);
    int *index = (int *)(slots + n);
    memset(made, 0, nmade * sizeof *made);

    int before = o->nslots, rc = 0, i;
    uint64_t mark = ++o->calls;
    for (i = 0; i < n && !rc; i++) {
        slot *s = find_or_add(o, names[i]);
        if (!s) { rc = -1; break; }
        if (s->mark == mark) {
            lz_fail("%s: parameter '%s' is passed twice", fn, names[i]);
            rc = -1;
            break;
        }
        s->mark = mark;
        index[i] = (int)(s - o->slots);   /* o->slots may move while names are added */
    }
    for (i = 0; i < n && !rc; i++) {
        slots[i] = &o->slots[index[i]];
        rc = check(o, slots[i], params_in[i], grads[i]);
    }
    for (i = 0; i < n && !rc; i++) {
        slot *s = slots[i];
        lz_array *p = params_in[i], **out = &made[i * (1 + OPTIM_MAXBUF)];
        const lz_optim_config *c = config_of(o, s);
        lz_pool_push();
        lz_dtype t = lz_dtype_of(p);
        optim_rule_in in = {.cfg = c, .lr = group_lr(o, c, lr_now), .t = s->step + 1,
                            .p = t == LZ_F32 ? p : lz_astype(p, LZ_F32),
                            .g = lz_dtype_of(grads[i]) == LZ_F32 ? grads[i] : lz_astype(grads[i], LZ_F32)};
        for (int k = 0; k < OPTIM_MAXBUF; k++) in.buf[k] = optim_buf_needed(c, k) ? s->buf[k] : NULL;
        lz_array *np = NULL;
        rc = in.p && in.g ? optim_rule(&in, &np, out + 1) : -1;
        if (!rc && t != LZ_F32) {
            lz_array *cast = lz_retain(lz_astype(np, t));
            lz_release(np);
            np = cast;
            if (!np) rc = -1;
        }
        out[0] = np;
        lz_pool_pop();
    }
    if (rc) {
        for (i = 0; i < n * (1 + OPTIM_MAXBUF); i++) lz_release(made[i]);
        if (o->nslots > before) remove_slots(o, before, NULL);
        return -1;
    }
    /* Commit: from here nothing fails. Releasing the old buffers now leaves the new nodes
     * their only owners, so the eval can donate them to the new state. */
    for (i = 0; i < n; i++) {
        slot *s = slots[i];
        lz_array **out = &made[i * (1 + OPTIM_MAXBUF)];
        for (int k = 0; k < OPTIM_MAXBUF; k++) {
            if (!out[1 + k]) continue;           /* unused buffers stay as they are */
            if (!s->buf[k]) o->version++;        /* a new state entry */
            lz_release(s->buf[k]);
            s->buf[k] = out[1 + k];
        }
        s->step++;
        params_out[i] = lz_autorelease(out[0]);
    }
    return 0;
}

int lz_optim_eval(lz_optim *o, int n, lz_array *const *arrays) {
    if (!o) return lz_fail("lz_optim_eval: optimizer is NULL"), -1;
    if (n < 0 || (n > 0 && !arrays)) return lz_fail("lz_optim_eval: bad arguments"), -1;
    size_t cap = (size_t)n + (size_t)o->nslots * OPTIM_MAXBUF;
    lz_array **all = scratch(o, cap * sizeof *all + 1);
    if (!all) return -1;
    int m = 0;
    for (int i = 0; i < n; i++) all[m++] = arrays[i];
    for (int s = 0; s < o->nslots; s++)
        for (int k = 0; k < OPTIM_MAXBUF; k++)
            if (o->slots[s].buf[k] && !lz_is_evaluated(o->slots[s].buf[k])) all[m++] = o->slots[s].buf[k];
    return m ? lz_eval(m, all) : 0;
}

/* ---- named state ---- */

static int relist(lz_optim *o) {
    if (o->listed == o->version) return 0;
    for (int e = 0; e < o->nentries; e++) free(o->entry_names[e]);
    o->nentries = 0;
    int cap = o->nslots * (1 + OPTIM_MAXBUF) + 1;
    entry *en = realloc(o->entries, (size_t)cap * sizeof *en);
    if (en) o->entries = en;
    char **nm = en ? realloc(o->entry_names, (size_t)cap * sizeof *nm) : NULL;
    if (nm) o->entry_names = nm;
    if (!en || !nm) return lz_fail("lz_optim: out of memory"), -1;
    for (int s = 0; s < o->nslots; s++)
        for (int k = -1; k < OPTIM_MAXBUF; k++) {
            if (k >= 0 && !o->slots[s].buf[k]) continue;
            const char *key = k < 0 ? "step" : optim_buf_name(o->cfg.kind, k);
            size_t len = strlen(o->slots[s].name) + strlen(key) + 2;
            char *name = malloc(len);
            if (!name) return lz_fail("lz_optim: out of memory"), -1;
            snprintf(name, len, "%s.%s", o->slots[s].name, key);
            o->entries[o->nentries] = (entry){s, k};
            o->entry_names[o->nentries++] = name;
        }
    o->listed = o->version;
    return 0;
}

int lz_optim_state_count(const lz_optim *o) {
    int n = 0;
    for (int s = 0; o && s < o->nslots; s++) {
        n++;
        for (int k = 0; k < OPTIM_MAXBUF; k++) n += o->slots[s].buf[k] != NULL;
    }
    return n;
}

const char *lz_optim_state_name(lz_optim *o, int i) {
    if (!o || relist(o)) return NULL;
    if (i < 0 || i >= o->nentries)
        return lz_fail("lz_optim_state_name: entry %d of %d", i, o->nentries);
    return o->entry_names[i];
}

lz_array *lz_optim_state_array(lz_optim *o, int i) {
    if (!o || relist(o)) return NULL;
    if (i < 0 || i >= o->nentries)
        return lz_fail("lz_optim_state_array: entry %d of %d", i, o->nentries);
    slot *s = &o->slots[o->entries[i].slot];
    int k = o->entries[i].key;
    if (k < 0) return lz_scalar((double)s->step, LZ_I64);
    return lz_autorelease(lz_retain(s->buf[k]));
}

int lz_optim_state_load(lz_optim *o, const char *name, lz_array *a) {
    const char *fn = "lz_optim_state_load";
    if (!o || !name) return lz_fail("%s: NULL optimizer or name", fn), -1;
    if (!a) {
        if (!lz_error()[0]) lz_fail("%s: '%s': array is NULL", fn, name);
        return -1;
    }
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || strchr(name, '/'))
        return lz_fail("%s: '%s' is not <parameter>.<key>", fn, name), -1;
    const char *key = dot + 1;
    int k = -2;
    if (!strcmp(key, "step")) k = -1;
    for (int j = 0; j < OPTIM_MAXBUF && k == -2; j++) {
        const char *b = optim_buf_name(o->cfg.kind, j);
        if (b && !strcmp(b, key)) k = j;
    }
    if (k == -2)
        return lz_fail("%s: '%s': %s has no state '%s'", fn, name,
                       lz_optim_kind_name(o->cfg.kind), key), -1;
    char sa[160];
    int64_t step = 0;
    lz_array *buf = NULL;
    if (k < 0) {
        double v = lz_size(a) == 1 ? lz_item(a) : NAN;
        if (!(v >= 0 && v < 0x1p53 && v == floor(v)))
            return lz_fail("%s: '%s': a step must be one non-negative integer, got %s", fn,
                           name, lz_shape_str(a, sa, sizeof sa)), -1;
        step = (int64_t)v;
    } else {
        if (!lz_dtype_is_float(lz_dtype_of(a)))
            return lz_fail("%s: '%s': state must be float, got %s", fn, name,
                           lz_shape_str(a, sa, sizeof sa)), -1;
        buf = lz_dtype_of(a) == LZ_F32 ? lz_retain(a) : lz_retain(lz_astype(a, LZ_F32));
        if (!buf) return -1;
    }
    char *pname = strndup(name, (size_t)(dot - name));
    slot *s = pname ? find_or_add(o, pname) : NULL;
    free(pname);
    if (!s) {
        lz_release(buf);
        if (!lz_error()[0]) lz_fail("%s: out of memory", fn);
        return -1;
    }
    if (k < 0) {
        s->step = step;
    } else {
        if (!s->buf[k]) o->version++;
        lz_release(s->buf[k]);
        s->buf[k] = buf;
    }
    return 0;
}

int lz_optim_state_drop(lz_optim *o, const char *patterns) {
    char **pats;
    int np;
    if (!o) return lz_fail("lz_optim_state_drop: optimizer is NULL"), -1;
    if (split_patterns("lz_optim_state_drop", patterns, &pats, &np)) {
        free_patterns(pats, np);
        return -1;
    }
    bool *drop = calloc((size_t)o->nslots + 1, sizeof *drop);
    if (!drop) {
        free_patterns(pats, np);
        return lz_fail("lz_optim_state_drop: out of memory"), -1;
    }
    int count = 0;
    for (int s = 0; s < o->nslots; s++) count += drop[s] = matches(pats, np, o->slots[s].name);
    if (count) remove_slots(o, o->nslots, drop);
    free(drop);
    free_patterns(pats, np);
    return count;
}
