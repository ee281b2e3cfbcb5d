/*
 * schedule.c - learning-rate schedules: the rate for a step of an epoch, and the plateau
 * schedule's memory of the monitored metric.
 *
 * t, the schedule's clock, is the epoch number (per_step 0) or the optimizer step number
 * (per_step 1), both counted from 0. A negative clock is taken as 0.
 *
 * Warm-up: for t < warmup the rate is
 *     inner(0) * (warmup_start + (1 - warmup_start) * t / warmup),
 * where inner(0) is the wrapped schedule's rate at its own time 0; from t = warmup on the rate
 * is inner(t - warmup), so the wrapped schedule starts where the warm-up ends.
 *
 * The wrapped schedules, with u the clock after warm-up (u = t - warmup):
 * - constant:   base.
 * - step:       base * gamma^floor(u / step_size) (torch.optim.lr_scheduler.StepLR).
 * - multistep:  base * gamma^(number of milestones <= u) (MultiStepLR).
 * - exp:        base * gamma^u (ExponentialLR).
 * - invscaling: base / (u + 1)^power, which is scikit-learn's eta0 / t^power_t with its t
 *               counted from 1.
 * - optimal:    1 / (alpha * (u + t0)), scikit-learn's "optimal" rate (Bottou's heuristic),
 *               whose t counts samples from 1 and uses optimal_init + t - 1; with u from 0
 *               this is the same rate. It does not depend on base_lr at all. When t0 is 0 it
 *               is derived as scikit-learn does for the hinge loss (see optimal_t0 below).
 * - cosine:     eta_min + (base - eta_min) * (1 + cos(pi * u_cur / T_i)) / 2. Without
 *               restarts (t_mult 0), T_i = t_max, u_cur = u, and u >= t_max stays at eta_min.
 *               With warm restarts (SGDR, Loshchilov and Hutter 2017; t_mult >= 1) the
 *               periods are T_0 = t_max, T_{i+1} = T_i * t_mult and u_cur counts from the
 *               start of the current period, so each restart returns to base.
 * - onecycle:   torch's OneCycleLR with anneal_strategy "cos" and three_phase False: the
 *               rate rises from base / div_factor to base, cosine-annealed, until unit
 *               pct_start * total - 1, then falls to base / div_factor / final_div_factor at
 *               unit total - 1, and stays there afterwards.
 * - plateau:    torch's ReduceLROnPlateau in mode "min", threshold_mode "rel": the rate is
 *               max(min_lr, base * scale), with scale multiplied by factor once more than
 *               patience observed epochs in a row fail to improve on the best metric.
 * - callback:   whatever fn returns for (base, step, epoch, metrics); the clock that t counts
 *               is shifted by the warm-up (epoch - warmup, or step - warmup), the other is
 *               passed as it is.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const double pi = 3.14159265358979323846264338327950288;

static const char *const schedule_names[DSC_SCHED_COUNT] = {
    [DSC_SCHED_CONSTANT] = "constant",
    [DSC_SCHED_STEP] = "step",
    [DSC_SCHED_MULTISTEP] = "multistep",
    [DSC_SCHED_EXP] = "exp",
    [DSC_SCHED_INVSCALING] = "invscaling",
    [DSC_SCHED_OPTIMAL] = "optimal",
    [DSC_SCHED_COSINE] = "cosine",
    [DSC_SCHED_ONECYCLE] = "onecycle",
    [DSC_SCHED_PLATEAU] = "plateau",
    [DSC_SCHED_CALLBACK] = "callback",
};

/*
 * Every field gets its default, whatever the kind, so that changing kind afterwards leaves a
 * usable schedule. onecycle's total defaults to 200, the default number of epochs of
 * dsc_train_config; set it to the length of the actual run.
 */
void dsc_schedule_default(dsc_schedule *s, dsc_schedule_kind kind, double base_lr)
{
    if (!s)
        return;

    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->per_step = 0;
    s->base_lr = base_lr;

    s->warmup = 0;
    s->warmup_start = 0.0;

    s->step_size = 10;
    s->gamma = kind == DSC_SCHED_EXP ? 0.95 : 0.1;
    s->n_milestones = 0;
    s->power = 0.25;
    s->alpha = 1e-4;
    s->t0 = 0.0; /* derived from alpha */

    s->t_max = 50;
    s->t_mult = 0.0;
    s->eta_min = 0.0;

    s->total = 200;
    s->pct_start = 0.3;
    s->div_factor = 25.0;
    s->final_div_factor = 1e4;

    s->factor = 0.1;
    s->patience = 10;
    s->threshold = 1e-4;
    s->cooldown = 0;
    s->min_lr = 0.0;

    s->fn = NULL;
    s->user = NULL;
}

/* A field that must be finite and at least lo (above lo when lo_open). */
static int check_finite_min(const char *field, double v, double lo, int lo_open)
{
    if (!isfinite(v) || v < lo || (lo_open && v == lo))
        return dsc__fail(DSC_EINVAL, "schedule: %s must be finite and %s %g, got %g", field,
                         lo_open ? ">" : ">=", lo, v);
    return DSC_OK;
}

static int check_gamma(const dsc_schedule *s)
{
    if (!(s->gamma > 0.0 && s->gamma <= 1.0))
        return dsc__fail(DSC_EINVAL, "schedule: gamma must be in (0, 1], got %g", s->gamma);
    return DSC_OK;
}

static int check_milestones(const dsc_schedule *s)
{
    if (s->n_milestones > 16)
        return dsc__fail(DSC_EINVAL, "schedule: n_milestones must be at most 16, got %zu",
                         s->n_milestones);

    for (size_t i = 0; i < s->n_milestones; i++) {
        if (s->milestones[i] < 0)
            return dsc__fail(DSC_EINVAL, "schedule: milestones[%zu] must be >= 0, got %lld",
                             i, (long long)s->milestones[i]);
        if (i > 0 && s->milestones[i] <= s->milestones[i - 1])
            return dsc__fail(DSC_EINVAL,
                             "schedule: milestones must be increasing, got %lld after %lld",
                             (long long)s->milestones[i], (long long)s->milestones[i - 1]);
    }
    return DSC_OK;
}

static int check_cosine(const dsc_schedule *s)
{
    if (s->t_max < 1)
        return dsc__fail(DSC_EINVAL, "schedule: t_max must be at least 1, got %lld",
                         (long long)s->t_max);
    if (!(s->t_mult == 0.0 || (s->t_mult >= 1.0 && isfinite(s->t_mult))))
        return dsc__fail(DSC_EINVAL,
                         "schedule: t_mult must be 0 (no restarts) or finite and >= 1, got %g",
                         s->t_mult);
    return check_finite_min("eta_min", s->eta_min, 0.0, 0);
}

static int check_onecycle(const dsc_schedule *s)
{
    int rc;

    if (s->total < 1)
        return dsc__fail(DSC_EINVAL, "schedule: total must be at least 1, got %lld",
                         (long long)s->total);
    if (!(s->pct_start > 0.0 && s->pct_start < 1.0))
        return dsc__fail(DSC_EINVAL, "schedule: pct_start must be in (0, 1), got %g",
                         s->pct_start);
    if ((rc = check_finite_min("div_factor", s->div_factor, 0.0, 1)) < 0)
        return rc;
    return check_finite_min("final_div_factor", s->final_div_factor, 0.0, 1);
}

static int check_plateau(const dsc_schedule *s)
{
    if (!(s->factor > 0.0 && s->factor < 1.0))
        return dsc__fail(DSC_EINVAL, "schedule: factor must be in (0, 1), got %g", s->factor);
    if (s->patience < 0)
        return dsc__fail(DSC_EINVAL, "schedule: patience must be >= 0, got %lld",
                         (long long)s->patience);
    if (!(s->threshold >= 0.0 && s->threshold < 1.0))
        return dsc__fail(DSC_EINVAL, "schedule: threshold must be in [0, 1), got %g",
                         s->threshold);
    if (s->cooldown < 0)
        return dsc__fail(DSC_EINVAL, "schedule: cooldown must be >= 0, got %lld",
                         (long long)s->cooldown);
    return check_finite_min("min_lr", s->min_lr, 0.0, 0);
}

/* The fields every kind uses, then those of s->kind only; other kinds' fields are ignored. */
int dsc_schedule_check(const dsc_schedule *s)
{
    int rc;

    if (!s)
        return dsc__fail(DSC_EINVAL, "schedule: s is NULL");
    if ((int)s->kind < 0 || (int)s->kind >= DSC_SCHED_COUNT)
        return dsc__fail(DSC_EINVAL, "schedule: kind must be in [0, %d), got %d",
                         DSC_SCHED_COUNT, (int)s->kind);
    if (s->per_step != 0 && s->per_step != 1)
        return dsc__fail(DSC_EINVAL, "schedule: per_step must be 0 or 1, got %d", s->per_step);
    if ((rc = check_finite_min("base_lr", s->base_lr, 0.0, 0)) < 0)
        return rc;
    if (s->warmup < 0)
        return dsc__fail(DSC_EINVAL, "schedule: warmup must be >= 0, got %lld",
                         (long long)s->warmup);
    if (!(s->warmup_start >= 0.0 && s->warmup_start <= 1.0))
        return dsc__fail(DSC_EINVAL, "schedule: warmup_start must be in [0, 1], got %g",
                         s->warmup_start);

    switch (s->kind) {
    case DSC_SCHED_CONSTANT:
        return DSC_OK;
    case DSC_SCHED_STEP:
        if (s->step_size < 1)
            return dsc__fail(DSC_EINVAL, "schedule: step_size must be at least 1, got %lld",
                             (long long)s->step_size);
        return check_gamma(s);
    case DSC_SCHED_MULTISTEP:
        if ((rc = check_milestones(s)) < 0)
            return rc;
        return check_gamma(s);
    case DSC_SCHED_EXP:
        return check_gamma(s);
    case DSC_SCHED_INVSCALING:
        /* scikit-learn accepts any real power_t; a negative one makes the rate grow. */
        if (!isfinite(s->power))
            return dsc__fail(DSC_EINVAL, "schedule: power must be finite, got %g", s->power);
        return DSC_OK;
    case DSC_SCHED_OPTIMAL:
        if ((rc = check_finite_min("alpha", s->alpha, 0.0, 1)) < 0)
            return rc;
        return check_finite_min("t0", s->t0, 0.0, 0);
    case DSC_SCHED_COSINE:
        return check_cosine(s);
    case DSC_SCHED_ONECYCLE:
        return check_onecycle(s);
    case DSC_SCHED_PLATEAU:
        return check_plateau(s);
    case DSC_SCHED_CALLBACK:
        if (!s->fn)
            return dsc__fail(DSC_EINVAL, "schedule: fn must be set for a callback schedule");
        return DSC_OK;
    default:
        return DSC_OK; /* not reached: kind was checked above */
    }
}

/* No reduction yet, no metric seen: the best so far is +infinity, which any number beats. */
void dsc_schedule_state_init(const dsc_schedule *s, dsc_schedule_state *st)
{
    (void)s;
    if (!st)
        return;

    memset(st, 0, sizeof *st);
    st->scale = 1.0;
    st->best = INFINITY;
    st->bad_epochs = 0;
    st->cooldown_left = 0;
    st->n_observed = 0;
}

/* scikit-learn's derivative of the hinge loss (threshold 1) at prediction p, label y. */
static double hinge_dloss(double p, double y)
{
    return p * y <= 1.0 ? -y : 0.0;
}

/*
 * t0 of the "optimal" rate when the schedule leaves it 0: scikit-learn's heuristic with the
 * hinge loss, its SGDClassifier default. typical = sqrt(1 / sqrt(alpha)) is a typical weight
 * size, eta0 = typical / max(1, dloss(-typical, 1)) the first rate, and t0 = 1 / (eta0 *
 * alpha) makes the rate at t = 0 equal eta0. The hinge's dloss there is -1, so eta0 = typical
 * and t0 = alpha^(-3/4) (1000 for the default alpha 1e-4, a first rate of 10).
 */
static double optimal_t0(const dsc_schedule *s)
{
    if (s->t0 > 0.0)
        return s->t0;

    double typical = sqrt(1.0 / sqrt(s->alpha));
    double eta0 = typical / fmax(1.0, hinge_dloss(-typical, 1.0));
    return 1.0 / (eta0 * s->alpha);
}

/*
 * The cosine schedule's position u_cur inside its current period, and that period's length.
 * With restarts, period n (from 0) starts at t_max * (t_mult^n - 1) / (t_mult - 1); n comes
 * from the closed form and is then corrected by a step either way against rounding.
 */
static void cosine_period(const dsc_schedule *s, int64_t u, double *u_cur, double *period)
{
    double t_max = (double)s->t_max;
    double m = s->t_mult;

    if (m == 0.0 || u < s->t_max) {
        *u_cur = (double)u;
        *period = t_max;
        return;
    }
    if (m == 1.0) {
        *u_cur = (double)(u % s->t_max);
        *period = t_max;
        return;
    }

    double x = (double)u;
    double n = floor(log1p(x / t_max * (m - 1.0)) / log(m));
    while (n > 0.0 && x < t_max * (pow(m, n) - 1.0) / (m - 1.0))
        n -= 1.0;
    while (x >= t_max * (pow(m, n + 1.0) - 1.0) / (m - 1.0))
        n += 1.0;

    *u_cur = x - t_max * (pow(m, n) - 1.0) / (m - 1.0);
    *period = t_max * pow(m, n);
}

/* Cosine interpolation from start (pct 0) to end (pct 1), as torch's OneCycleLR. */
static double anneal_cos(double start, double end, double pct)
{
    return end + (start - end) / 2.0 * (cos(pi * pct) + 1.0);
}

/*
 * OneCycleLR's phases: the rise ends at unit pct_start * total - 1, the fall at total - 1.
 * Where torch would divide by zero (pct_start * total exactly 1, at u = 0) the rate is the
 * start of the rise, base / div_factor.
 */
static double onecycle_lr(const dsc_schedule *s, int64_t u)
{
    double peak = s->base_lr;
    double initial = peak / s->div_factor;
    double lowest = initial / s->final_div_factor;
    double rise_end = s->pct_start * (double)s->total - 1.0;
    double last = (double)s->total - 1.0;
    double x = (double)u;

    if (x >= last)
        return lowest;
    if (x <= rise_end) {
        double pct = rise_end > 0.0 ? x / rise_end : 0.0;
        return anneal_cos(initial, peak, pct);
    }
    return anneal_cos(peak, lowest, (x - rise_end) / (last - rise_end));
}

/* The wrapped schedule's rate at its own clock u (u >= 0). */
static double inner_lr(const dsc_schedule *s, const dsc_schedule_state *st, int64_t u,
                       int64_t step, int64_t epoch, const double *metrics, size_t n_metrics)
{
    double base = s->base_lr;

    switch (s->kind) {
    case DSC_SCHED_CONSTANT:
        return base;
    case DSC_SCHED_STEP:
        return base * pow(s->gamma, (double)(u / s->step_size));
    case DSC_SCHED_MULTISTEP: {
        size_t passed = 0;
        size_t n = s->n_milestones < 16 ? s->n_milestones : 16;
        for (size_t i = 0; i < n; i++)
            passed += s->milestones[i] <= u;
        return base * pow(s->gamma, (double)passed);
    }
    case DSC_SCHED_EXP:
        return base * pow(s->gamma, (double)u);
    case DSC_SCHED_INVSCALING:
        return base / pow((double)u + 1.0, s->power);
    case DSC_SCHED_OPTIMAL:
        return 1.0 / (s->alpha * ((double)u + optimal_t0(s)));
    case DSC_SCHED_COSINE: {
        double u_cur, period;
        if (s->t_mult == 0.0 && u >= s->t_max)
            return s->eta_min;
        cosine_period(s, u, &u_cur, &period);
        return s->eta_min + (base - s->eta_min) * (1.0 + cos(pi * u_cur / period)) / 2.0;
    }
    case DSC_SCHED_ONECYCLE:
        return onecycle_lr(s, u);
    case DSC_SCHED_PLATEAU:
        return fmax(s->min_lr, base * (st ? st->scale : 1.0));
    case DSC_SCHED_CALLBACK:
        if (!s->fn)
            return base;
        if (s->per_step)
            step = u;
        else
            epoch = u;
        return s->fn(s->user, base, step, epoch, metrics, n_metrics);
    default:
        return base;
    }
}

/*
 * The rate for step step of epoch epoch. st may be NULL, which stands for the initial state.
 * s is expected to have passed dsc_schedule_check; a NULL s gives 0.
 */
double dsc_schedule_lr(const dsc_schedule *s, const dsc_schedule_state *st, int64_t step,
                       int64_t epoch, const double *metrics, size_t n_metrics)
{
    if (!s)
        return 0.0;

    int64_t t = s->per_step ? step : epoch;
    if (t < 0)
        t = 0;

    if (t >= s->warmup)
        return inner_lr(s, st, t - s->warmup, step, epoch, metrics, n_metrics);

    /* Warm-up: a straight line from warmup_start * inner(0) to inner(0). */
    double target = inner_lr(s, st, 0, step, epoch, metrics, n_metrics);
    double share = (double)t / (double)s->warmup;
    return target * (s->warmup_start + (1.0 - s->warmup_start) * share);
}

/*
 * Record an epoch's metric (lower is better). Only the plateau schedule acts on it; every
 * kind counts it in n_observed. As torch's ReduceLROnPlateau: a metric improves when it is
 * below best * (1 - threshold), and a NaN never improves; during a cooldown bad epochs are
 * not counted; more than patience bad epochs in a row multiply scale by factor and start a
 * cooldown. (torch also skips a reduction smaller than eps = 1e-8; here scale always shrinks
 * and the rate is held at min_lr by dsc_schedule_lr.)
 *
 * Warm-up: with per_step 0, the metric of an epoch of the warm-up (n_observed < warmup when
 * it arrives) is ignored altogether, neither a best nor a bad epoch, so the plateau watch
 * starts with the first epoch after warm-up. With per_step 1 the warm-up counts steps, which
 * this function does not see, so every metric counts, including those of epochs within a
 * warm-up; a reduction then lowers the value the warm-up climbs to.
 */
void dsc_schedule_observe(const dsc_schedule *s, dsc_schedule_state *st, double metric)
{
    if (!s || !st)
        return;

    int64_t epoch_index = st->n_observed;
    st->n_observed++;

    if (s->kind != DSC_SCHED_PLATEAU)
        return;
    if (!s->per_step && epoch_index < s->warmup)
        return;

    if (metric < st->best * (1.0 - s->threshold)) {
        st->best = metric;
        st->bad_epochs = 0;
    } else {
        st->bad_epochs++;
    }

    if (st->cooldown_left > 0) {
        st->cooldown_left--;
        st->bad_epochs = 0;
    }

    if (st->bad_epochs > s->patience) {
        st->scale *= s->factor;
        st->cooldown_left = s->cooldown;
        st->bad_epochs = 0;
    }
}

/* The command-line name of kind, or "unknown" for a value outside the enum. */
const char *dsc_schedule_name(dsc_schedule_kind kind)
{
    if ((int)kind < 0 || (int)kind >= DSC_SCHED_COUNT)
        return "unknown";
    return schedule_names[kind];
}

/* The kind named name (exact, case-sensitive), or -1. */
int dsc_schedule_from_name(const char *name)
{
    if (!name)
        return -1;

    for (int k = 0; k < DSC_SCHED_COUNT; k++) {
        if (strcmp(name, schedule_names[k]) == 0)
            return k;
    }
    return -1;
}
