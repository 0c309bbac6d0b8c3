/* Inside lib/autograd: how rule files register themselves, and the stop-gradient marker. */
#ifndef LZ_AUTOGRAD_RULES_H
#define LZ_AUTOGRAD_RULES_H

#include "../core/internal.h"
#include "../ops/ops.h"
#include "autograd.h"

/* Marked views. The transforms make VIEW nodes with their input's own layout (the same
 * value, no copy), marked in a params slot that view constructors leave zero:
 *   STOP       lz_stop_gradient: the view rule gives it no cotangent;
 *   DEPENDS    inputs [a, dep...]: a's value, evaluated only once the deps are (the
 *              scheduler orders a node after all its inputs; a VIEW kernel reads input 0 only).
 *              It orders the backward for memory (transform.c) and the recomputation of a
 *              checkpointed block after its cotangents exist (checkpoint.c). Cotangent: to a.
 *   BLOCK_IN   inputs [x, record]: an input of a checkpointed block as the block sees it in
 *              the forward; it bounds the block's graph. Cotangent: to x.
 *   BLOCK_OUT  inputs [y, x_0..x_{n-1}, record]: output AD_INDEX_SLOT of a checkpointed block
 *              (y, the block's own result, has the value; the x are its inputs). The transforms
 *              differentiate it by recomputing the block (checkpoint.c), never through y. */
#define AD_TAG_SLOT 23
#define AD_INDEX_SLOT 22
#define AD_STOP_TAG 0x73746f70       /* "stop" */
#define AD_DEPENDS_TAG 0x64657073    /* "deps" */
#define AD_BLOCK_IN_TAG 0x626b696e   /* "bkin" */
#define AD_BLOCK_OUT_TAG 0x626b6f75  /* "bkou" */

static inline int64_t ad_tag(const lz_array *a) {
    return a->prim == LZ_P_VIEW ? a->params.i[AD_TAG_SLOT] : 0;
}

/* A marked view of a with a's layout and inputs [a, extra...]: always a pending node, even
 * of an evaluated a. New reference (not autoreleased). */
lz_array *ad_mark(lz_array *a, int64_t tag, int nextra, lz_array *const *extra);

/* ---- checkpointing (checkpoint.c): what the transforms need from a BLOCK_OUT node ---- */
typedef struct {
    lz_fn fn;
    void *ctx;
    int n;                                   /* inputs */
    int nout;                                /* outputs */
    lz_array *out[LZ_FN_MAX_OUTPUTS];        /* its BLOCK_OUT nodes, NOT owned: ad_block_sibling */
} ad_block;

/* The block record of a BLOCK_OUT node (its last input holds it). */
ad_block *ad_block_of(const lz_array *out_node);
/* Whether a, a node found at the address the record gives for output j, really is that
 * output: the record does not own its outputs (they own it), so the address may be stale. */
bool ad_block_sibling(const lz_array *a, const lz_array *out_node, int j);

/* vjp with a mask of inputs (transform.c): lz_vjp restricted to inputs with wrt[i]. */
int ad_vjp_masked(const char *op, lz_fn fn, void *ctx, int n, lz_array *const *primals,
                  const bool *wrt, int ncot, lz_array *const *cotangents, lz_array **grads);

/* Each rule file fills lz_prims[].vjp for its family; lz_autograd_init calls them once. */
void ad_register_elementwise(void);
void ad_register_view(void);
void ad_register_reduce(void);
void ad_register_index(void);
void ad_register_linalg(void);
void ad_register_nn(void);
void ad_register_conv(void);

/* Layout helper shared by the transforms and the view rule: whether distinct indices of a
 * layout always address distinct elements (no broadcast dims, no overlap). */
bool ad_layout_injective(int ndim, const int64_t *shape, const int64_t *strides);

#endif
