/* vjp rules of the window primitives CONV, POOL_MAX, POOL_AVG. The family is closed under
 * differentiation (lib/ops/conv.h): every node is one mode of one forward geometry, and each
 * mode's cotangents are other modes of the same geometry, built with lz_window_node. So
 * gradients of gradients need nothing more. */
#include "../ops/conv.h"
#include "rules.h"

/* Sets g[i] to the cotangent built by mode m of the same geometry; -1 on failure. */
static int put(lz_array **g, int i, lz_prim_id prim, lz_window geo, int m, lz_array *a,
               lz_array *b) {
    geo.mode = m;
    g[i] = lz_window_node(prim, &geo, a, b);
    return g[i] ? 0 : -1;
}

static int window_vjp(lz_array *node, lz_array *ct, const bool *w, lz_array **g) {
    lz_window geo = lz_window_of(&node->params);
    lz_prim_id p = node->prim;
    lz_array *a = node->inputs[0], *b = node->ninputs > 1 ? node->inputs[1] : NULL;
    enum { F = LZ_WIN_FORWARD, I = LZ_WIN_INPUT_GRAD, W = LZ_WIN_WEIGHT_GRAD };
    int rc = 0;
    if (p == LZ_P_CONV) {
        switch (geo.mode) {
        case F:   /* (x, w) -> y */
            if (w[0]) rc |= put(g, 0, p, geo, I, ct, b);
            if (w[1]) rc |= put(g, 1, p, geo, W, a, ct);
            break;
        case I:   /* (dy, w) -> dx */
            if (w[0]) rc |= put(g, 0, p, geo, F, ct, b);
            if (w[1]) rc |= put(g, 1, p, geo, W, ct, a);
            break;
        default:  /* (x, dy) -> dw */
            if (w[0]) rc |= put(g, 0, p, geo, I, b, ct);
            if (w[1]) rc |= put(g, 1, p, geo, F, a, ct);
            break;
        }
    } else if (p == LZ_P_POOL_MAX) {
        /* the argmax positions are piecewise constant in x: x gets nothing in the
         * INPUT_GRAD and GATHER modes */
        if (geo.mode == F) { if (w[0]) rc |= put(g, 0, p, geo, I, a, ct); }
        else if (w[1]) rc |= put(g, 1, p, geo, geo.mode == I ? LZ_WIN_GATHER : I, a, ct);
    } else if (w[0]) {
        rc |= put(g, 0, p, geo, geo.mode == F ? I : F, ct, NULL);
    }
    return rc ? -1 : 0;
}

void ad_register_conv(void) {
    lz_prims[LZ_P_CONV].vjp = window_vjp;
    lz_prims[LZ_P_POOL_MAX].vjp = window_vjp;
    lz_prims[LZ_P_POOL_AVG].vjp = window_vjp;
}
