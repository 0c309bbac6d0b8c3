/* Losses, composed of ops (their gradients come from the ops' vjp rules). Stability: the
 * class losses go through the fused log-softmax kernel (max-subtracted), binary cross-entropy
 * uses softplus(x) - x t (softplus is computed as max(x, 0) + log1p(e^-|x|), and its
 * derivative is sigmoid(x): smooth, also at x = 0), and KL never takes the log of 0. */
#include <stdio.h>
#include "nn_internal.h"

static const char *reduction_name(lz_reduction r) {
    switch (r) {
    case LZ_REDUCE_MEAN: return "mean";
    case LZ_REDUCE_SUM: return "sum";
    case LZ_REDUCE_NONE: return "none";
    case LZ_REDUCE_BATCHMEAN: return "batchmean";
    }
    return "?";
}

/* Applies r to the per-element losses. count (may be NULL) replaces the element count of the
 * mean. Runs inside the caller's pool. */
static lz_array *reduce(const char *op, lz_array *loss, lz_reduction r, lz_array *count) {
    if (!loss) return NULL;
    switch (r) {
    case LZ_REDUCE_NONE: return loss;
    case LZ_REDUCE_SUM: return lz_sum(loss, NULL, 0, 0);
    case LZ_REDUCE_MEAN:
        if (count) return lz_div(lz_sum(loss, NULL, 0, 0), lz_maximum(count, lz_ones(0, NULL, LZ_F32)));
        return lz_mean(loss, NULL, 0, 0);
    case LZ_REDUCE_BATCHMEAN: {
        int64_t n = lz_ndim(loss) ? lz_dim(loss, 0) : 1;
        return lz_mul_scalar(lz_sum(loss, NULL, 0, 0), n ? 1.0 / (double)n : 0.0);
    }
    }
    return lz_fail("%s: unknown reduction %d", op, (int)r);
}

/* Finishes a loss built inside a pool: keeps y past the pool. */
static lz_array *finish(lz_array *y) {
    lz_retain(y);
    lz_pool_pop();
    return lz_autorelease(y);
}

/* ---- classification ---- */

static bool is_index(lz_dtype t) { return t == LZ_I32 || t == LZ_I64 || t == LZ_U8; }

static lz_array *nll(const char *op, lz_array *logp, lz_array *targets, const lz_ce_opts *opts,
                     bool from_logits) {
    if (!logp || !targets) return NULL;
    lz_ce_opts o = opts ? *opts : (lz_ce_opts){0};
    char sl[160], st[160];
    lz_shape_str(logp, sl, sizeof sl);
    lz_shape_str(targets, st, sizeof st);
    int nd = lz_ndim(logp);
    if (nd < 1 || lz_ndim(targets) != nd - 1)
        return lz_fail("%s: %s %s must be [..., C] and targets %s the same [...] (class axis "
                       "last)", op, from_logits ? "logits" : "log-probabilities", sl, st);
    for (int d = 0; d < nd - 1; d++)
        if (lz_dim(targets, d) != lz_dim(logp, d))
            return lz_fail("%s: targets %s do not match %s %s on axis %d", op, st,
                           from_logits ? "logits" : "log-probabilities", sl, d);
    if (!is_index(lz_dtype_of(targets)))
        return lz_fail("%s: targets %s must be integer class indices", op, st);
    if (!lz_dtype_is_float(lz_dtype_of(logp)))
        return lz_fail("%s: %s %s must be a float array", op, from_logits ? "logits" : "log-probabilities", sl);
    if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
        return lz_fail("%s: label_smoothing %g is not in [0, 1]", op, o.label_smoothing);
    if (o.reduction == LZ_REDUCE_BATCHMEAN || (unsigned)o.reduction > LZ_REDUCE_BATCHMEAN)
        return lz_fail("%s: reduction %s is not one of mean, sum, none", op, reduction_name(o.reduction));
    int64_t c = lz_dim(logp, -1);
    lz_pool_push();
    if (from_logits) logp = lz_log_softmax(logp, -1);
    lz_array *zero_t = lz_zeros(0, NULL, lz_dtype_of(targets));
    lz_array *mask = o.ignore ? lz_not_equal(targets, lz_astype(lz_scalar((double)o.ignore_index, LZ_I64), lz_dtype_of(targets))) : NULL;
    lz_array *t = mask ? lz_where(mask, targets, zero_t) : targets;
    /* a negative target would count from the end in take_along_axis: send it out of range so
     * that evaluation reports it */
    if (lz_dtype_of(targets) != LZ_U8)
        t = lz_where(lz_less(t, zero_t), lz_astype(lz_scalar((double)c, LZ_I64), lz_dtype_of(targets)), t);
    lz_array *picked = lz_squeeze(lz_take_along_axis(logp, lz_expand_dims(t, -1), -1), -1);
    lz_array *loss = lz_neg(picked);
    if (o.label_smoothing > 0) {
        int ax = -1;
        lz_array *uniform = lz_neg(lz_mean(logp, &ax, 1, 0));
        loss = lz_add(lz_mul_scalar(loss, 1 - o.label_smoothing),
                      lz_mul_scalar(uniform, o.label_smoothing));
    }
    lz_array *count = NULL;
    if (mask) {
        loss = lz_where(mask, loss, lz_zeros(0, NULL, lz_dtype_of(loss)));
        count = lz_sum(lz_astype(mask, LZ_F32), NULL, 0, 0);
    }
    return finish(reduce(op, loss, o.reduction, count));
}

lz_array *lz_cross_entropy(lz_array *logits, lz_array *targets, const lz_ce_opts *opts) {
    return nll("cross_entropy", logits, targets, opts, true);
}

lz_array *lz_nll_loss(lz_array *logp, lz_array *targets, const lz_ce_opts *opts) {
    return nll("nll_loss", logp, targets, opts, false);
}

/* ---- elementwise losses ---- */

/* pred - target, checked; inside the caller's pool. */
static lz_array *diff(const char *op, lz_array *pred, lz_array *target, lz_reduction r) {
    if (!pred || !target) return NULL;
    if ((unsigned)r > LZ_REDUCE_BATCHMEAN) return lz_fail("%s: unknown reduction %d", op, (int)r);
    if (!lz_dtype_is_float(lz_dtype_of(pred)))
        return lz_fail("%s: predictions %s must be a float array", op, nn_shape(pred));
    lz_array *d = lz_sub(pred, target);
    if (!d) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", lz_error());
        return lz_fail("%s: predictions %s and targets %s: %s", op, nn_shape(pred), nn_shape(target), msg);
    }
    return d;
}

lz_array *lz_mse_loss(lz_array *pred, lz_array *target, lz_reduction r) {
    lz_pool_push();
    return finish(reduce("mse_loss", lz_square(diff("mse_loss", pred, target, r)), r, NULL));
}

lz_array *lz_l1_loss(lz_array *pred, lz_array *target, lz_reduction r) {
    lz_pool_push();
    return finish(reduce("l1_loss", lz_abs(diff("l1_loss", pred, target, r)), r, NULL));
}

/* where(|d| < k, a d^2, b |d| - c): smooth_l1 (a = 0.5/beta, b = 1, c = beta/2) and huber
 * (a = 0.5, b = delta, c = delta^2/2) */
static lz_array *quad_lin(const char *op, lz_array *pred, lz_array *target, double k, double a,
                          double b, double c, lz_reduction r) {
    if (!(k > 0)) return lz_fail("%s: the threshold %g must be > 0", op, k);
    lz_pool_push();
    lz_array *d = diff(op, pred, target, r);
    lz_array *ad = lz_abs(d);
    lz_array *y = lz_where(lz_less(ad, lz_full_like(ad, k)), lz_mul_scalar(lz_square(d), a),
                           lz_add_scalar(lz_mul_scalar(ad, b), -c));
    return finish(reduce(op, y, r, NULL));
}

lz_array *lz_smooth_l1_loss(lz_array *pred, lz_array *target, double beta, lz_reduction r) {
    return quad_lin("smooth_l1_loss", pred, target, beta, 0.5 / beta, 1, 0.5 * beta, r);
}

lz_array *lz_huber_loss(lz_array *pred, lz_array *target, double delta, lz_reduction r) {
    return quad_lin("huber_loss", pred, target, delta, 0.5, delta, 0.5 * delta * delta, r);
}

lz_array *lz_binary_cross_entropy_with_logits(lz_array *logits, lz_array *targets, lz_reduction r) {
    const char *op = "binary_cross_entropy_with_logits";
    lz_pool_push();
    lz_array *d = diff(op, logits, targets, r);   /* checks shapes and dtypes */
    lz_array *y = d ? lz_sub(lz_softplus(logits), lz_mul(logits, targets)) : NULL;
    return finish(reduce(op, y, r, NULL));
}

lz_array *lz_kl_div(lz_array *input, lz_array *target, lz_reduction r, bool log_target) {
    const char *op = "kl_div";
    lz_pool_push();
    lz_array *d = diff(op, input, target, r);
    lz_array *y = NULL;
    if (d && log_target) {
        /* a target of log 0 = -inf contributes 0 (not 0 * -inf) */
        lz_array *p = lz_exp(target), *zero = lz_zeros(0, NULL, lz_dtype_of(d));
        y = lz_where(lz_greater(p, zero), lz_mul(p, lz_sub(target, input)), zero);
    } else if (d) {
        /* 0 log 0 = 0; the log never sees a 0 (its gradient would be NaN times 0) */
        lz_array *zero = lz_zeros(0, NULL, lz_dtype_of(d));
        lz_array *pos = lz_greater(target, zero);
        lz_array *safe = lz_where(pos, target, lz_ones(0, NULL, lz_dtype_of(d)));
        y = lz_where(pos, lz_mul(target, lz_sub(lz_log(safe), input)), zero);
    }
    return finish(reduce(op, y, r, NULL));
}
