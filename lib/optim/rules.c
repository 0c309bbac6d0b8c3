/* The update rules, one function per kind, each a lazy graph over one parameter. Each follows
 * the algorithm published in the torch.optim documentation (PyTorch 2.x) line by line, except
 * Lion, which follows its paper (Chen et al. 2023, "Symbolic Discovery of Optimization
 * Algorithms", Algorithm 2). PyTorch starts its buffers at zero (or at the gradient, for SGD's
 * momentum); starting from zero is written here as the same expression with the zero term
 * dropped, which gives the same floats (b * 0 + x == x) without allocating a zeros array.
 *
 * Fusion: every expression below is elementwise over one shape, so the scheduler runs a
 * parameter's whole update (new parameter and new buffers, which the group also stores) as
 * one pass over memory. Scalings and sums are written with lz_axpby / lz_affine, one
 * instruction each where mul_scalar + add took three (and gave the same floats). The gradient
 * with L2 decay (g + wd * p) is rebuilt for each use instead of shared: a shared node would
 * be computed once and read twice, which a fused group (a tree) cannot do without storing it. */
#include <math.h>
#include "../ops/ops.h"
#include "rules.h"

static const char *const buf_names[LZ_OPTIM_NKINDS][OPTIM_MAXBUF] = {
    [LZ_SGD] = {"momentum_buffer"},
    [LZ_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [LZ_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [LZ_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [LZ_ADAGRAD] = {"sum"},
    [LZ_LION] = {"exp_avg"},
};

const char *optim_buf_name(lz_optim_kind kind, int k) {
    if ((unsigned)kind >= LZ_OPTIM_NKINDS || k < 0 || k >= OPTIM_MAXBUF) return NULL;
    return buf_names[kind][k];
}

bool optim_buf_needed(const lz_optim_config *c, int k) {
    switch (c->kind) {
    case LZ_SGD: return k == 0 && c->momentum != 0;
    case LZ_ADAM:
    case LZ_ADAMW: return k < 2 || (k == 2 && c->amsgrad);
    case LZ_RMSPROP: return k == 0 || (k == 1 && c->momentum > 0) || (k == 2 && c->centered);
    case LZ_ADAGRAD:
    case LZ_LION: return k == 0;
    default: return false;
    }
}

/* a * x + b * y, one elementwise instruction */
static lz_array *lin(double a, lz_array *x, double b, lz_array *y) {
    return lz_axpby(a, x, b, y);
}

/* A running average: b * old + (1 - b) * x, or (1 - b) * x when old is none (zero). */
static lz_array *ema(lz_array *old, double b, lz_array *x) {
    return old ? lin(b, old, 1 - b, x) : lz_mul_scalar(x, 1 - b);
}

/* The gradient with coupled (L2) weight decay, g + wd * p, for the kinds that couple it.
 * A fresh node per call: see the file comment. */
static lz_array *grad(const optim_rule_in *in) {
    double wd = in->cfg->weight_decay;
    bool coupled = in->cfg->kind != LZ_ADAMW && in->cfg->kind != LZ_LION;
    return coupled && wd != 0 ? lin(1, in->g, wd, in->p) : in->g;
}

/* The factor of decoupled weight decay, p * (1 - lr * wd) (AdamW, Lion); 1 for the others. */
static double decay(const optim_rule_in *in) {
    bool decoupled = in->cfg->kind == LZ_ADAMW || in->cfg->kind == LZ_LION;
    return decoupled ? 1 - in->lr * in->cfg->weight_decay : 1;
}

/* p * k - s * d (k = 1 multiplies exactly) */
static lz_array *descend(lz_array *p, double k, double s, lz_array *d) {
    return lin(k, p, -s, d);
}

/* torch.optim.SGD:
 *   g <- g + wd p
 *   if momentum != 0:  b <- g on the first step, else momentum b + (1 - dampening) g
 *                      g <- g + momentum b (nesterov), else g <- b
 *   p <- p - lr g */
static void sgd(const optim_rule_in *in, lz_array **p_out, lz_array **buf) {
    const lz_optim_config *c = in->cfg;
    lz_array *d = grad(in);
    if (c->momentum != 0) {
        buf[0] = in->buf[0] ? lin(c->momentum, in->buf[0], 1 - c->dampening, grad(in)) : grad(in);
        d = c->nesterov ? lz_add(grad(in), lz_mul_scalar(buf[0], c->momentum)) : buf[0];
    }
    *p_out = descend(in->p, 1, in->lr, d);
}

/* torch.optim.Adam / torch.optim.AdamW:
 *   Adam: g <- g + wd p            AdamW: p <- p (1 - lr wd)
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   amsgrad: vmax <- max(vmax, v), used in place of v below
 *   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
static void adam(const optim_rule_in *in, lz_array **p_out, lz_array **buf) {
    const lz_optim_config *c = in->cfg;
    double b1 = c->betas[0], b2 = c->betas[1], t = (double)in->t;
    buf[0] = ema(in->buf[0], b1, grad(in));
    buf[1] = ema(in->buf[1], b2, lz_square(grad(in)));
    lz_array *v = buf[1];
    if (c->amsgrad) v = buf[2] = in->buf[2] ? lz_maximum(in->buf[2], buf[1]) : buf[1];
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    lz_array *denom = lz_affine(lz_sqrt(v), 1 / sqrt(bc2), c->eps);
    *p_out = descend(in->p, decay(in), in->lr / bc1, lz_div(buf[0], denom));
}

/* torch.optim.RMSprop:
 *   g <- g + wd p
 *   v <- alpha v + (1 - alpha) g^2
 *   centered: ga <- alpha ga + (1 - alpha) g;  avg <- sqrt(v - ga^2) + eps
 *   else:     avg <- sqrt(v) + eps
 *   momentum > 0: b <- momentum b + g / avg;  p <- p - lr b
 *   else:         p <- p - lr g / avg
 * The centered variance is clamped at 0 before the root: v - ga^2 >= 0 in exact arithmetic,
 * but rounding can make it -1e-12 where PyTorch would return NaN. */
static void rmsprop(const optim_rule_in *in, lz_array **p_out, lz_array **buf) {
    const lz_optim_config *c = in->cfg;
    double a = c->alpha;
    buf[0] = ema(in->buf[0], a, lz_square(grad(in)));
    lz_array *var = buf[0];
    if (c->centered) {
        buf[2] = ema(in->buf[2], a, grad(in));
        var = lz_maximum(lz_sub(buf[0], lz_square(buf[2])), lz_scalar(0, LZ_F32));
    }
    lz_array *step = lz_div(grad(in), lz_affine(lz_sqrt(var), 1, c->eps));
    if (c->momentum > 0) {
        buf[1] = in->buf[1] ? lin(c->momentum, in->buf[1], 1, step) : step;
        step = buf[1];
    }
    *p_out = descend(in->p, 1, in->lr, step);
}

/* torch.optim.Adagrad:
 *   lr_t <- lr / (1 + (t - 1) lr_decay)
 *   g <- g + wd p
 *   s <- s + g^2             (s starts at initial_accumulator_value)
 *   p <- p - lr_t g / (sqrt(s) + eps) */
static void adagrad(const optim_rule_in *in, lz_array **p_out, lz_array **buf) {
    const lz_optim_config *c = in->cfg;
    double lr = in->lr / (1 + (double)(in->t - 1) * c->lr_decay);
    lz_array *g2 = lz_square(grad(in));
    buf[0] = in->buf[0] ? lz_add(in->buf[0], g2)
                        : c->initial_accumulator_value != 0
                              ? lz_add_scalar(g2, c->initial_accumulator_value) : g2;
    lz_array *std = lz_affine(lz_sqrt(buf[0]), 1, c->eps);
    *p_out = descend(in->p, 1, lr, lz_div(grad(in), std));
}

/* Lion (paper, Algorithm 2, decoupled weight decay):
 *   c <- b1 m + (1 - b1) g
 *   p <- p - lr (sign(c) + wd p)   ==  p (1 - lr wd) - lr sign(c)
 *   m <- b2 m + (1 - b2) g */
static void lion(const optim_rule_in *in, lz_array **p_out, lz_array **buf) {
    const lz_optim_config *c = in->cfg;
    lz_array *interp = ema(in->buf[0], c->betas[0], in->g);
    *p_out = descend(in->p, decay(in), in->lr, lz_sign(interp));
    buf[0] = ema(in->buf[0], c->betas[1], in->g);
}

int optim_rule(const optim_rule_in *in, lz_array **p_out, lz_array **buf_out) {
    static void (*const rules[LZ_OPTIM_NKINDS])(const optim_rule_in *, lz_array **, lz_array **) = {
        [LZ_SGD] = sgd, [LZ_ADAM] = adam, [LZ_ADAMW] = adam,
        [LZ_RMSPROP] = rmsprop, [LZ_ADAGRAD] = adagrad, [LZ_LION] = lion,
    };
    lz_array *p = NULL, *buf[OPTIM_MAXBUF] = {NULL};
    lz_pool_push();
    rules[in->cfg->kind](in, &p, buf);
    int rc = p ? 0 : -1;
    for (int k = 0; k < OPTIM_MAXBUF; k++)
        if (optim_buf_needed(in->cfg, k) && !buf[k]) rc = -1;
    if (!rc) {
        *p_out = lz_retain(p);
        for (int k = 0; k < OPTIM_MAXBUF; k++) buf_out[k] = lz_retain(buf[k]);
    }
    lz_pool_pop();
    return rc;
}
