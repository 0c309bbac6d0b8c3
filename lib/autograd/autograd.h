/* leibniz autograd: reverse-mode differentiation over the lazy graph.
 *
 * The transforms call a function on the inputs, walk the PENDING graph it built back from
 * the output and apply each primitive's vjp rule (lib/autograd/vjp_*.c). The rules are lazy
 * ops themselves, so the gradients they return are pending arrays: one lz_eval of the value,
 * the gradients and whatever the caller builds from them (an optimizer update) runs forward
 * and backward as one fused graph. Because the backward graph is made of ordinary ops, it can
 * be differentiated again (gradients of gradients, Hessian-vector products).
 *
 * The contract a function must keep: it must not EVALUATE anything that depends on its
 * inputs (no lz_eval, lz_item, lz_to_float, lz_data... inside fn). Evaluation detaches an
 * array from its inputs (that is how graphs stay small across steps), so there would be no
 * graph left to walk. The transforms detect it and fail with a message; evaluate the results
 * after the transform returns. Evaluating arrays that do not depend on the inputs (data,
 * constants) inside fn is fine.
 *
 * Gradients w.r.t. an input the value does not depend on are zeros (a pending zeros array of
 * the input's shape and dtype), not an error: a frozen branch or an unused parameter is
 * normal. Gradients are computed for float inputs only (asking for one of an integer input is
 * an error), flow only through float values (integer intermediates, comparisons and indices
 * carry none), and have the dtype and shape of their input.
 *
 * Ties in max/min (reductions and maximum/minimum) share the cotangent equally between the
 * tied elements. Primitives whose derivative is zero almost everywhere (sign, floor, ceil,
 * round) give zero gradients.
 *
 * Memory: the backward graph references only what the rules need (a node's value, some of
 * its inputs), and it is ordered so that lz_eval computes each parameter's gradient as soon as
 * its operands exist, whatever order the caller's targets come in: the activations and
 * cotangents of a layer die during the backward pass instead of waiting for the gradients'
 * consumers (transform.c). Evaluate a step with the graph's builders' pools popped (keep the
 * outputs with lz_retain): an autorelease pool's reference keeps an intermediate's buffer
 * alive until the pool pops. lz_checkpoint trades recomputation for activation memory.
 *
 * Ownership (as everywhere in leibniz): arrays written to `outputs` and `grads` are NEW
 * references, also registered in the caller's open autorelease pool if there is one. */
#ifndef LZ_AUTOGRAD_H
#define LZ_AUTOGRAD_H

#include <stdbool.h>
#include <stdint.h>
#include "../core/core.h"

/* The most outputs a differentiated function may write. */
#define LZ_FN_MAX_OUTPUTS 16

/* A function to differentiate. It reads inputs[0..n) (borrowed), writes its outputs to
 * outputs[0..k) and returns k (1 <= k <= LZ_FN_MAX_OUTPUTS), or -1 with lz_error() set.
 * outputs[0] is the value differentiated (lz_vjp: the outputs given cotangents); the others
 * are auxiliary results (metrics, new state) returned as they are. Outputs follow the usual
 * rule for returned arrays: plain op results are right, since the transforms hold an
 * autorelease pool open around the call. ctx is passed through untouched. */
typedef int (*lz_fn)(void *ctx, int n, lz_array *const *inputs, lz_array **outputs);

/* Calls fn on inputs and returns its value and the gradient of its value (a float scalar:
 * one element, any number of size-1 dims) w.r.t. each input i with wrt[i] (wrt NULL: all
 * inputs). outputs[0..max_outputs) receive fn's outputs (value first; extra ones beyond
 * max_outputs are dropped; outputs may be NULL when max_outputs is 0); grads[0..n) receives
 * the gradient for each chosen input, NULL for the others. Returns the number of outputs fn wrote, or -1 (nothing is written then) when fn
 * fails, its value is not a float scalar, a chosen input is not float, fn evaluated its
 * graph, or a primitive on the path has no vjp rule yet. */
int lz_value_and_grad(lz_fn fn, void *ctx, int n, lz_array *const *inputs, const bool *wrt,
                      lz_array **outputs, int max_outputs, lz_array **grads);

/* lz_value_and_grad without the outputs. Returns 0 or -1. */
int lz_grad(lz_fn fn, void *ctx, int n, lz_array *const *inputs, const bool *wrt,
            lz_array **grads);

/* Vector-Jacobian product for functions with any outputs: calls fn on primals and returns
 * in grads[i] (for every primal) the sum over outputs j < ncot of cotangents[j]^T d out_j /
 * d primal_i. cotangents[j] must have out_j's shape (it is cast to out_j's dtype); a NULL
 * cotangent means zero. Outputs as in lz_value_and_grad. Returns the number of outputs fn
 * wrote, or -1. */
int lz_vjp(lz_fn fn, void *ctx, int n, lz_array *const *primals, int ncot,
           lz_array *const *cotangents, lz_array **outputs, int max_outputs, lz_array **grads);

/* The same values as a, through which no gradient flows (a constant for the transforms).
 * No copy: a view of a. New reference. */
lz_array *lz_stop_gradient(lz_array *a);

/* Gradient checkpointing: calls block(ctx, n, inputs, outputs) and returns its k outputs in
 * outputs[0..k) (room for as many as the block writes), with the same values, but marked so
 * that the transforms differentiate them by RUNNING THE BLOCK AGAIN on its inputs during the
 * backward pass instead of keeping its intermediate values: the backward graph references
 * the block's inputs, not its activations, which lz_eval frees once the forward has used them
 * (memory of one block's activations at a time, for about one extra forward of the block).
 * Outside a transform it costs nothing (the outputs are views of the block's results).
 *
 * The block follows lz_fn's contract and, because it is run again:
 *   - it must be a deterministic function of its inputs (random ops with keys from ctx
 *     are fine: the same key gives the same bits);
 *   - every array it reads that gradients must flow to (its parameters included) must be
 *     one of its inputs: the transforms fail with a message when the block's outputs depend
 *     on a differentiated array by another path (e.g. a weight taken from ctx);
 *   - block and ctx must stay valid until the transform differentiating through it returns
 *     (the backward is built, not evaluated, inside lz_value_and_grad / lz_grad / lz_vjp).
 * Gradients of gradients work: the recomputed block is made of ordinary ops. Checkpoints
 * may nest (a block that checkpoints sub-blocks). Returns k, or -1 with lz_error() set
 * (nothing written). Outputs are new references, registered in the open pool if any. */
int lz_checkpoint(lz_fn block, void *ctx, int n, lz_array *const *inputs, lz_array **outputs);

/* Fills the vjp slots of the primitive table. The transforms call it (once); call it yourself
 * only to inspect the table. Idempotent and thread-safe. */
void lz_autograd_init(void);

/* For coverage tests: how many times the vjp rule of primitive `prim` (an index into the
 * primitive table) has run in this process. */
uint64_t lz_vjp_rule_calls(int prim);

#endif
