/* Gradient clipping, lazy: the norm and the clipped gradients are pending arrays that the
 * caller evaluates together with the step, so clipping costs one reduction pass per gradient
 * and fuses its scaling into whatever consumes the clipped gradient. */
#include <math.h>
#include <stdbool.h>
#include "../core/internal.h"   /* lz_autorelease */
#include "../ops/ops.h"
#include "optim.h"

static int check(const char *fn, int n, lz_array *const *grads, lz_array **out, double c,
                 bool positive) {
    for (int i = 0; out && i < n; i++) out[i] = NULL;
    if (n < 0 || (n > 0 && (!grads || !out)))
        return lz_fail("%s: bad arguments (n = %d, NULL list)", fn, n), -1;
    if (!isfinite(c) || c < 0 || (positive && c == 0))
        return lz_fail("%s: the bound must be finite and %s, got %g", fn,
                       positive ? "> 0" : ">= 0", c), -1;
    for (int i = 0; i < n; i++) {
        if (!grads[i]) {
            if (!lz_error()[0]) lz_fail("%s: gradient %d is NULL", fn, i);
            return -1;
        }
        if (!lz_dtype_is_float(lz_dtype_of(grads[i]))) {
            char s[160];
            return lz_fail("%s: gradient %d is %s, not float", fn, i,
                           lz_shape_str(grads[i], s, sizeof s)), -1;
        }
    }
    return 0;
}

static lz_array *as_f32(lz_array *a) {
    return lz_dtype_of(a) == LZ_F32 ? a : lz_astype(a, LZ_F32);
}

/* torch.nn.utils.clip_grad_norm_ (norm_type 2): total = ||(||g_1||, ..., ||g_n||)||,
 * coef = min(max_norm / (total + 1e-6), 1), g_i <- g_i * coef. The sum of squares is one
 * reduction per gradient (square fused into it, double accumulation inside). */
int lz_clip_grad_norm(int n, lz_array *const *grads, double max_norm, lz_array **grads_out,
                      lz_array **norm_out) {
    const char *fn = "lz_clip_grad_norm";
    if (norm_out) *norm_out = NULL;
    if (check(fn, n, grads, grads_out, max_norm, true)) return -1;
    int rc = 0;
    lz_pool_push();
    lz_array *sq = lz_scalar(0, LZ_F32);
    for (int i = 0; i < n; i++) sq = lz_add(sq, lz_sum(lz_square(as_f32(grads[i])), NULL, 0, 0));
    lz_array *norm = lz_sqrt(sq);
    lz_array *coef = lz_minimum(lz_div(lz_scalar(max_norm, LZ_F32), lz_add_scalar(norm, 1e-6)),
                                lz_scalar(1, LZ_F32));
    for (int i = 0; i < n && !rc; i++) {
        lz_dtype t = lz_dtype_of(grads[i]);
        lz_array *g = lz_mul(grads[i], coef);
        if (t != LZ_F32) g = lz_astype(g, t);
        grads_out[i] = lz_retain(g);
        rc = g ? 0 : -1;
    }
    if (!norm) rc = -1;
    if (!rc && norm_out) *norm_out = lz_retain(norm);
    lz_pool_pop();
    for (int i = 0; i < n; i++) {
        if (rc) lz_release(grads_out[i]), grads_out[i] = NULL;
        else lz_autorelease(grads_out[i]);
    }
    if (!rc && norm_out) lz_autorelease(*norm_out);
    return rc;
}

/* torch.nn.utils.clip_grad_value_: g <- clamp(g, -clip_value, clip_value). */
int lz_clip_grad_value(int n, lz_array *const *grads, double clip_value, lz_array **grads_out) {
    if (check("lz_clip_grad_value", n, grads, grads_out, clip_value, false)) return -1;
    int rc = 0;
    lz_pool_push();
    for (int i = 0; i < n && !rc; i++) {
        lz_dtype t = lz_dtype_of(grads[i]);
        lz_array *g = lz_minimum(lz_maximum(grads[i], lz_scalar(-clip_value, t)),
                                 lz_scalar(clip_value, t));
        grads_out[i] = lz_retain(g);
        rc = g ? 0 : -1;
    }
    lz_pool_pop();
    for (int i = 0; i < n; i++) {
        if (rc) lz_release(grads_out[i]), grads_out[i] = NULL;
        else lz_autorelease(grads_out[i]);
    }
    return rc;
}
