/* Learning-rate schedules: small immutable objects, pure functions of the step. The formulas
 * are PyTorch's closed forms (StepLR, MultiStepLR, ExponentialLR) and MLX's (cosine_decay,
 * linear_schedule, join_schedules), written in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optim.h"

enum { CONSTANT, STEP, MULTISTEP, EXPONENTIAL, COSINE, LINEAR, JOIN };

struct lz_schedule {
    int kind;
    double value, gamma, final_value;   /* value: the start; LINEAR: from, final_value: to */
    int64_t steps;                      /* STEP: step_size; COSINE, LINEAR: length */
    int n;                              /* MULTISTEP milestones / JOIN parts */
    int64_t *marks;                     /* milestones, or the n - 1 join boundaries */
    lz_schedule **parts;                /* JOIN, owned */
};

static lz_schedule *make(int kind, double value) {
    if (!isfinite(value)) return lz_fail("lz_schedule: value %g is not finite", value);
    lz_schedule *s = calloc(1, sizeof *s);
    if (!s) return lz_fail("lz_schedule: out of memory");
    s->kind = kind;
    s->value = value;
    return s;
}

lz_schedule *lz_schedule_constant(double value) { return make(CONSTANT, value); }

lz_schedule *lz_schedule_step(double value, int64_t step_size, double gamma) {
    if (step_size <= 0 || !isfinite(gamma))
        return lz_fail("lz_schedule_step: step_size %lld must be > 0 and gamma %g finite",
                       (long long)step_size, gamma);
    lz_schedule *s = make(STEP, value);
    if (s) { s->steps = step_size; s->gamma = gamma; }
    return s;
}

lz_schedule *lz_schedule_multistep(double value, int n, const int64_t *milestones, double gamma) {
    if (n < 0 || (n && !milestones) || !isfinite(gamma))
        return lz_fail("lz_schedule_multistep: bad milestones (n = %d) or gamma %g", n, gamma);
    for (int i = 1; i < n; i++)
        if (milestones[i] <= milestones[i - 1])
            return lz_fail("lz_schedule_multistep: milestones must increase (%lld after %lld)",
                           (long long)milestones[i], (long long)milestones[i - 1]);
    lz_schedule *s = make(MULTISTEP, value);
    if (!s) return NULL;
    s->gamma = gamma;
    s->n = n;
    if (n && !(s->marks = malloc((size_t)n * sizeof *s->marks))) {
        free(s);
        return lz_fail("lz_schedule: out of memory");
    }
    if (n) memcpy(s->marks, milestones, (size_t)n * sizeof *s->marks);
    return s;
}

lz_schedule *lz_schedule_exponential(double value, double gamma) {
    if (!isfinite(gamma)) return lz_fail("lz_schedule_exponential: gamma %g is not finite", gamma);
    lz_schedule *s = make(EXPONENTIAL, value);
    if (s) s->gamma = gamma;
    return s;
}

lz_schedule *lz_schedule_cosine(double value, int64_t steps, double final_value) {
    if (steps <= 0 || !isfinite(final_value))
        return lz_fail("lz_schedule_cosine: steps %lld must be > 0 and final value %g finite",
                       (long long)steps, final_value);
    lz_schedule *s = make(COSINE, value);
    if (s) { s->steps = steps; s->final_value = final_value; }
    return s;
}

lz_schedule *lz_schedule_linear(double from, double to, int64_t steps) {
    if (steps < 0 || !isfinite(to))
        return lz_fail("lz_schedule_linear: steps %lld must be >= 0 and the end %g finite",
                       (long long)steps, to);
    lz_schedule *s = make(LINEAR, from);
    if (s) { s->steps = steps; s->final_value = to; }
    return s;
}

lz_schedule *lz_schedule_join(int n, lz_schedule **parts, const int64_t *boundaries) {
    const char *err = NULL;
    if (n < 1 || !parts) err = "needs at least one part";
    else if (n > 1 && !boundaries) err = "needs n - 1 boundaries";
    for (int i = 0; !err && i < n; i++) if (!parts[i]) err = "";     /* keep that part's error */
    for (int i = 0; !err && i + 1 < n; i++)
        if (boundaries[i] <= 0 || (i && boundaries[i] <= boundaries[i - 1]))
            err = "boundaries must be positive and increasing";
    lz_schedule *s = err ? NULL : make(JOIN, 0);
    if (!err && !s) err = "";                                     /* make's error */
    int64_t *marks = s && n > 1 ? malloc((size_t)(n - 1) * sizeof *marks) : NULL;
    lz_schedule **own = s ? malloc((size_t)n * sizeof *own) : NULL;
    if (s && (!own || (n > 1 && !marks))) err = "out of memory";
    if (err) {
        if (err[0]) lz_fail("lz_schedule_join: %s", err);
        else if (!lz_error()[0]) lz_fail("lz_schedule_join: a part is NULL");
        for (int i = 0; parts && i < n; i++) lz_schedule_free(parts[i]);
        free(marks);
        free(own);
        free(s);
        return NULL;
    }
    memcpy(own, parts, (size_t)n * sizeof *own);
    if (n > 1) memcpy(marks, boundaries, (size_t)(n - 1) * sizeof *marks);
    s->n = n;
    s->parts = own;
    s->marks = marks;
    return s;
}

lz_schedule *lz_schedule_warmup_cosine(double peak, int64_t warmup, int64_t total,
                                       double final_value) {
    if (warmup < 0 || total <= warmup)
        return lz_fail("lz_schedule_warmup_cosine: need 0 <= warmup (%lld) < total (%lld)",
                       (long long)warmup, (long long)total);
    if (warmup == 0) return lz_schedule_cosine(peak, total, final_value);
    lz_schedule *parts[2] = {lz_schedule_linear(0, peak, warmup),
                             lz_schedule_cosine(peak, total - warmup, final_value)};
    return lz_schedule_join(2, parts, &warmup);
}

double lz_schedule_value(const lz_schedule *s, int64_t step) {
    if (!s) return NAN;
    if (step < 0) step = 0;
    switch (s->kind) {
    case CONSTANT: return s->value;
    case STEP: return s->value * pow(s->gamma, (double)(step / s->steps));
    case MULTISTEP: {
        int k = 0;
        while (k < s->n && s->marks[k] <= step) k++;
        return s->value * pow(s->gamma, k);
    }
    case EXPONENTIAL: return s->value * pow(s->gamma, (double)step);
    case COSINE: {
        double x = (double)(step < s->steps ? step : s->steps) / (double)s->steps;
        return s->final_value + (s->value - s->final_value) * 0.5 * (1 + cos(M_PI * x));
    }
    case LINEAR:
        if (step >= s->steps) return s->final_value;
        return s->value + (s->final_value - s->value) * (double)step / (double)s->steps;
    case JOIN: {
        int k = 0;
        while (k + 1 < s->n && step >= s->marks[k]) k++;
        return lz_schedule_value(s->parts[k], k ? step - s->marks[k - 1] : step);
    }
    }
    return NAN;
}

void lz_schedule_free(lz_schedule *s) {
    if (!s) return;
    for (int i = 0; s->kind == JOIN && i < s->n; i++) lz_schedule_free(s->parts[i]);
    free(s->parts);
    free(s->marks);
    free(s);
}
