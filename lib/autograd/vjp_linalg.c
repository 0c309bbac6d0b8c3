/* vjp rule of MATMUL. The node's operands already have the output's batch shape (broadcast
 * batch dims are stride-0 views, lib/ops/linalg.c), so each cotangent is one matmul with the
 * other operand's transpose (a view: no copy), and the sum over a broadcast batch dim is the
 * broadcasting view's own rule. */
#include "rules.h"

static int matmul_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    lz_array *a = node->inputs[0], *b = node->inputs[1];
    if (w[0] && !(g[0] = lz_matmul(ct, lz_swapaxes(b, -1, -2)))) return -1;
    if (w[1] && !(g[1] = lz_matmul(lz_swapaxes(a, -1, -2), ct))) return -1;
    return 0;
}

void ad_register_linalg(void) { lz_prims[LZ_P_MATMUL].vjp = matmul_vjp; }
