/* Shared by the window kernels (conv.c, pool.c): strided [N, C, H, W] operands and the
 * geometry of a window primitive (lib/ops/conv.h). */
#ifndef LZ_CPU_WINDOW_H
#define LZ_CPU_WINDOW_H

#include <stdbool.h>
#include <stdint.h>
#include "cpu.h"
#include "../../ops/conv.h"

/* A strided float32 [N, C, H, W] operand (3-d operands have H = 1). */
typedef struct { const float *p; int64_t n, c, h, w, sn, sc, sh, sw; } t4;

static inline t4 t4_of(const lz_array *a) {
    t4 t = {.p = lz_elem_ptr(a), .n = a->shape[0], .c = a->shape[1],
            .sn = a->strides[0], .sc = a->strides[1]};
    if (a->ndim == 4) {
        t.h = a->shape[2]; t.w = a->shape[3]; t.sh = a->strides[2]; t.sw = a->strides[3];
    } else {
        t.h = 1; t.w = a->shape[2]; t.sh = 0; t.sw = a->strides[2];
    }
    return t;
}

/* Plane (h, w) of an operand laid out as one dense [H*W] row? */
static inline bool plane_dense(const t4 *t) {
    return (t->w <= 1 || t->sw == 1) && (t->h <= 1 || t->sh == t->w);
}

typedef struct {
    int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} geo;

static inline geo geo_of(const lz_window *g) {
    return (geo){.h = g->in[0], .w = g->in[1], .oh = lz_window_out(g, 0),
                 .ow = lz_window_out(g, 1), .kh = g->kernel[0], .kw = g->kernel[1],
                 .sh = g->stride[0], .sw = g->stride[1], .ph = g->pad_lo[0],
                 .pw = g->pad_lo[1], .dh = g->dilation[0], .dw = g->dilation[1]};
}

/* OpenMP threads for a loop over `work` elements: one below 64 Ki. */
static inline int threads_for(int64_t work) { return work >= 65536 ? cpu_threads() : 1; }

#endif
