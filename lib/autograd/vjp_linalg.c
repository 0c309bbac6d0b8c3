/* vjp rule of MATMUL. The node's operands already have the output's batch shape (broadcast
 * batch dims are stride-0 views, lib/ops/linalg.c), so each cotangent is one matmul with the
 * other operand's transpose (a view: no copy), and the sum over a broadcast batch dim is the
 * broadcasting view's own rule.
 *
 * Layout: an operand read transposed (a column-major view, as W in x @ W^T) gets its
 * cotangent computed as the transposed product and viewed back, so that after the operand's
 * own view rule the gradient lands in the memory order of the parameter it came from: the
 * optimizer's update then reads it contiguously instead of through a transposed view. */
#include "rules.h"

static bool column_major(const lz_array *a) {
    int nd = a->ndim;
    return a->shape[nd - 2] > 1 && a->shape[nd - 1] > 1 && a->strides[nd - 2] == 1 &&
           a->strides[nd - 1] != 1;
}

static lz_array *t(lz_array *a) { return lz_swapaxes(a, -1, -2); }

static int matmul_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    lz_array *a = node->inputs[0], *b = node->inputs[1];
    if (w[0]) {   /* ct b^T, or (b ct^T)^T */
        g[0] = column_major(a) ? t(lz_matmul(b, t(ct))) : lz_matmul(ct, t(b));
        if (!g[0]) return -1;
    }
    if (w[1]) {   /* a^T ct, or (ct^T a)^T */
        g[1] = column_major(b) ? t(lz_matmul(t(ct), a)) : lz_matmul(t(a), ct);
        if (!g[1]) return -1;
    }
    return 0;
}

void ad_register_linalg(void) { lz_prims[LZ_P_MATMUL].vjp = matmul_vjp; }
