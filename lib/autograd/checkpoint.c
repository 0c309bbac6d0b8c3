/* lz_checkpoint: gradient checkpointing of a block of computation.
 *
 * In the forward the block runs as usual, on BLOCK_IN views of its inputs (rules.h), and each
 * of its outputs is wrapped in a BLOCK_OUT view whose inputs are the block's own result, the
 * block's inputs and a record (the block function, its ctx, its arity). Evaluating the graph
 * just reads the views: no copy, nothing recomputed. The transforms never walk into the
 * block's graph for gradients: at the block's outputs they run the block again on its inputs
 * and differentiate that copy (transform.c, recompute), so the backward graph references the
 * block's inputs but none of its intermediates, which lz_eval frees as soon as the forward
 * has used them. The recomputed copy is made to wait for the outputs' cotangents, so it runs
 * during the backward pass, one block at a time.
 *
 * The record is an lz_array that adopts a malloc'd struct: being an input of every node that
 * needs it, it lives exactly as long as they do, with no destructor hook in the core. It
 * lists the BLOCK_OUT nodes without owning them (they own it), so the transforms check that
 * a node found at a recorded address is still that output (ad_block_sibling). */
#include <stdlib.h>
#include <string.h>
#include "rules.h"

static void free_record(void *data, void *ctx) {
    (void)ctx;
    free(data);
}

ad_block *ad_block_of(const lz_array *out_node) {
    return (ad_block *)lz_elem_ptr(out_node->inputs[out_node->ninputs - 1]);
}

bool ad_block_sibling(const lz_array *a, const lz_array *out_node, int j) {
    return ad_tag(a) == AD_BLOCK_OUT_TAG && a->params.i[AD_INDEX_SLOT] == j &&
           a->ninputs == out_node->ninputs &&
           a->inputs[a->ninputs - 1] == out_node->inputs[out_node->ninputs - 1];
}

int lz_checkpoint(lz_fn block, void *ctx, int n, lz_array *const *inputs, lz_array **outputs) {
    if (!block) { lz_fail("checkpoint: block is NULL"); return -1; }
    if (n < 0 || (n && !inputs)) { lz_fail("checkpoint: %d inputs", n); return -1; }
    if (!outputs) { lz_fail("checkpoint: outputs is NULL"); return -1; }
    for (int i = 0; i < n; i++)
        if (!inputs[i]) {
            if (!lz_error()[0]) lz_fail("checkpoint: input %d is NULL", i);
            return -1;
        }
    ad_block *b = calloc(1, sizeof *b);
    lz_array **xs = calloc((size_t)n + 1, sizeof *xs);
    lz_array **wrapped = calloc((size_t)n + 2, sizeof *wrapped);   /* a BLOCK_OUT's inputs */
    lz_array *ys[LZ_FN_MAX_OUTPUTS] = {NULL}, *rec = NULL;
    int k = -1;
    if (!b || !xs || !wrapped) { free(b); lz_fail("checkpoint: out of memory"); goto done; }
    *b = (ad_block){.fn = block, .ctx = ctx, .n = n};
    lz_pool_push();
    rec = lz_retain(lz_from_buffer(b, 1, (int64_t[]){sizeof *b}, LZ_U8, free_record, NULL));
    lz_pool_pop();
    if (!rec) { free(b); goto done; }
    for (int i = 0; i < n; i++)
        if (!(xs[i] = ad_mark(inputs[i], AD_BLOCK_IN_TAG, 1, &rec))) goto done;

    lz_pool_push();   /* only the outputs survive it: the block's intermediates stay unowned */
    k = block(ctx, n, xs, ys);
    if (k > LZ_FN_MAX_OUTPUTS) {
        lz_fail("checkpoint: the block returned %d outputs, more than LZ_FN_MAX_OUTPUTS", k);
        k = -1;
    } else if (k == 0) {
        lz_fail("checkpoint: the block returned no outputs");
        k = -1;
    }
    for (int j = 0; j < k; j++)
        if (!ys[j]) {
            if (!lz_error()[0]) lz_fail("checkpoint: the block's output %d is NULL", j);
            k = -1;
        }
    for (int j = 0; j < LZ_FN_MAX_OUTPUTS; j++)   /* owned from here: the first k */
        ys[j] = j < k ? lz_retain(ys[j]) : NULL;
    lz_pool_pop();
    if (k < 0) goto done;

    /* each output: a view of the block's result that also holds the inputs and the record */
    for (int i = 0; i < n; i++) wrapped[1 + i] = inputs[i];
    wrapped[n + 1] = rec;
    lz_array *outs[LZ_FN_MAX_OUTPUTS] = {NULL};
    for (int j = 0; j < k; j++) {
        lz_array *y = ys[j];
        lz_params p = {0};
        p.i[AD_TAG_SLOT] = AD_BLOCK_OUT_TAG;
        p.i[AD_INDEX_SLOT] = j;
        wrapped[0] = y;
        outs[j] = lz_node(LZ_P_VIEW, y->dtype, y->ndim, y->shape, n + 2, wrapped, &p);
        if (!outs[j]) {
            for (int i = 0; i < j; i++) lz_release(outs[i]);
            k = -1;
            goto done;
        }
        memcpy(outs[j]->strides, y->strides, sizeof y->strides);
        outs[j]->offset = y->offset;
        b->out[j] = outs[j];
    }
    b->nout = k;
    for (int j = 0; j < k; j++) outputs[j] = lz_autorelease(outs[j]);
done:
    for (int j = 0; j < LZ_FN_MAX_OUTPUTS; j++) lz_release(ys[j]);
    for (int i = 0; i < n && xs; i++) lz_release(xs[i]);
    free(xs);
    free(wrapped);
    lz_release(rec);
    return k;
}
