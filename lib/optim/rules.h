/* Private to lib/optim: the update rules (rules.c) and what the driver (optim.c) needs to
 * know about each kind's state buffers. */
#ifndef LZ_OPTIM_RULES_H
#define LZ_OPTIM_RULES_H

#include <stdbool.h>
#include "optim.h"

#define OPTIM_MAXBUF 3

/* Name of buffer k of a kind ("exp_avg"), NULL past the kind's last one. */
const char *optim_buf_name(lz_optim_kind kind, int k);
/* Whether a parameter of a group with this configuration uses buffer k. */
bool optim_buf_needed(const lz_optim_config *cfg, int k);

/* One parameter's update. p and g are float32 and of one shape; buf[k] is the state buffer k
 * (NULL: none yet, the rule starts it as PyTorch does from zeros/the gradient); t is this
 * update's number (1 for the first). The rule writes the new parameter (float32) to *p_out
 * and each buffer it uses to buf_out[k], all NEW references; it leaves the others NULL.
 * Returns 0 or -1. */
typedef struct {
    const lz_optim_config *cfg;
    double lr;
    int64_t t;
    lz_array *p, *g;
    lz_array *buf[OPTIM_MAXBUF];
} optim_rule_in;

int optim_rule(const optim_rule_in *in, lz_array **p_out, lz_array **buf_out);

#endif
