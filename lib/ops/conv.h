/* Sliding-window primitives (CONV, POOL_MAX, POOL_AVG): their geometry, their modes, and the
 * general constructor that lib/autograd uses to write their vjps. Internal, not for users
 * (users call lz_conv1d/2d and the pools in ops.h).
 *
 * Every node of these primitives describes a FORWARD window operation
 *     x [N, C, H, W] (or [N, C, W] when nsp == 1)  ->  y [N, O, OH, OW]
 * by one geometry, and says in `mode` which of the related linear maps it computes:
 *
 *   CONV      FORWARD     (x, w)  -> y     y = conv(x, w), w [O, C/groups, KH, KW]
 *             INPUT_GRAD  (dy, w) -> dx    transposed convolution (col2im), shape of x
 *             WEIGHT_GRAD (x, dy) -> dw    shape of w
 *   POOL_MAX  FORWARD     (x)     -> y     max over each window (padding never wins)
 *             INPUT_GRAD  (x, dy) -> dx    dy[w] added at the argmax of window w in x
 *             GATHER      (x, h)  -> [y]   h (shape of x) read at the argmax of each window
 *   POOL_AVG  FORWARD     (x)     -> y     mean over each window
 *             INPUT_GRAD  (dy)    -> dx    dy[w] / count[w] spread over window w
 *
 * The family is closed under differentiation, so grads of grads need nothing new. With g the
 * cotangent of the node's output, the vjp rules are:
 *   CONV FORWARD(x, w):      dx = CONV INPUT_GRAD(g, w)    dw  = CONV WEIGHT_GRAD(x, g)
 *   CONV INPUT_GRAD(dy, w):  ddy = CONV FORWARD(g, w)      dw  = CONV WEIGHT_GRAD(g, dy)
 *   CONV WEIGHT_GRAD(x, dy): dx = CONV INPUT_GRAD(dy, g)   ddy = CONV FORWARD(x, g)
 *   POOL_MAX FORWARD(x):     dx = POOL_MAX INPUT_GRAD(x, g)
 *   POOL_MAX INPUT_GRAD(x, dy): dx = none (piecewise constant in x), ddy = POOL_MAX GATHER(x, g)
 *   POOL_MAX GATHER(x, h):   dx = none,                    dh  = POOL_MAX INPUT_GRAD(x, g)
 *   POOL_AVG FORWARD(x):     dx = POOL_AVG INPUT_GRAD(g)
 *   POOL_AVG INPUT_GRAD(dy): ddy = POOL_AVG FORWARD(g)
 * each built with lz_window_node(prim, mode, &geometry_of_the_node, a, b).
 *
 * Max pool ties go to the first position of the window in row-major order; a NaN wins (it
 * propagates, as in PyTorch). POOL_MAX INPUT_GRAD and GATHER with `positive` set count only
 * windows whose max is > 0 (the others give 0): the gradient of max_pool(relu(.)) through
 * the relu in one pass, which relu's vjp builds when its cotangent is the pool's INPUT_GRAD
 * of its own output (x > 0 at the argmax exactly where the relu passes). The two flagged
 * modes are each other's transposes, as the unflagged ones, and inherit the flag. Avg pool divides by KH*KW (count_pad = 1, PyTorch's default
 * count_include_pad=True) or by the number of non-padding positions (count_pad = 0).
 *
 * Params layout (lz_params.i), the same for the three primitives:
 *   i[0] mode          i[1] nsp (1 or 2)   i[2] groups (CONV)   i[3] count_pad (POOL_AVG)
 *   i[4..5]   input size H, W of the forward x     i[6..7]   kernel size KH, KW
 *   i[8..9]   stride      i[10..11] padding before (top, left)
 *   i[12..13] padding after (bottom, right)        i[14..15] dilation
 *   i[16] positive (POOL_MAX INPUT_GRAD / GATHER)
 * In 1-d (nsp == 1) the H entries are H = KH = stride = dilation = 1, padding 0. */
#ifndef LZ_CONV_H
#define LZ_CONV_H

#include <string.h>
#include "../core/internal.h"

enum { LZ_WIN_FORWARD, LZ_WIN_INPUT_GRAD, LZ_WIN_WEIGHT_GRAD, LZ_WIN_GATHER = LZ_WIN_WEIGHT_GRAD };

typedef struct {
    int mode, nsp;
    int64_t groups, count_pad, positive;
    int64_t in[2], kernel[2], stride[2], pad_lo[2], pad_hi[2], dilation[2];
} lz_window;

static inline void lz_window_to_params(const lz_window *g, lz_params *p) {
    memset(p, 0, sizeof *p);
    p->i[0] = g->mode; p->i[1] = g->nsp; p->i[2] = g->groups; p->i[3] = g->count_pad;
    p->i[16] = g->positive;
    for (int d = 0; d < 2; d++) {
        p->i[4 + d] = g->in[d];       p->i[6 + d] = g->kernel[d];
        p->i[8 + d] = g->stride[d];   p->i[10 + d] = g->pad_lo[d];
        p->i[12 + d] = g->pad_hi[d];  p->i[14 + d] = g->dilation[d];
    }
}

static inline lz_window lz_window_of(const lz_params *p) {
    lz_window g = {.mode = (int)p->i[0], .nsp = (int)p->i[1], .groups = p->i[2],
                   .count_pad = p->i[3], .positive = p->i[16]};
    for (int d = 0; d < 2; d++) {
        g.in[d] = p->i[4 + d];       g.kernel[d] = p->i[6 + d];
        g.stride[d] = p->i[8 + d];   g.pad_lo[d] = p->i[10 + d];
        g.pad_hi[d] = p->i[12 + d];  g.dilation[d] = p->i[14 + d];
    }
    return g;
}

/* Output size of the forward window operation along spatial axis d (0 = H, 1 = W). */
static inline int64_t lz_window_out(const lz_window *g, int d) {
    int64_t extent = g->dilation[d] * (g->kernel[d] - 1) + 1;
    return (g->in[d] + g->pad_lo[d] + g->pad_hi[d] - extent) / g->stride[d] + 1;
}

/* A node of prim (LZ_P_CONV, LZ_P_POOL_MAX, LZ_P_POOL_AVG) in g->mode with inputs a and b
 * (b NULL where the mode takes one input), checked against g. Float inputs only (float16 and
 * bfloat16 computed in float32 and cast back). A NEW reference (or pooled); NULL + error. */
lz_array *lz_window_node(lz_prim_id prim, const lz_window *g, lz_array *a, lz_array *b);

#endif
