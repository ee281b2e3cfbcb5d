/*
 * optim.c - gradient-descent optimizers over a flat float array, per-range learning rates and
 * freezing, a byte image of the optimizer's state, and gradient clipping.
 *
 * Every update rule follows the algorithm documented for torch.optim (SGD with momentum,
 * dampening and Nesterov, Adagrad, RMSprop, Adadelta, Adam, AdamW, Adamax, NAdam), with the
 * same defaults. Moment buffers are float arrays; each element's update is computed in double
 * and the results are stored as float. Scalars shared by a whole step (bias corrections,
 * NAdam's momentum schedule) are computed once per step in double.
 *
 * Known shortcomings:
 * - The step count is global to the optimizer, where torch keeps one per tensor. A parameter
 *   that was frozen while others stepped therefore uses the global step in its bias
 *   corrections, and the SGD momentum buffer is seeded with the raw gradient only on the
 *   optimizer's first step (a parameter frozen then starts from a zero buffer instead).
 * - NAdam's running product of momentum coefficients is likewise global.
 * - Centered RMSprop clamps the variance estimate at 0 before the square root; in exact
 *   arithmetic it is never negative, but float rounding of the stored averages can make it so.
 * - The sparse step (dsc__optim_step_rows, for sparse input) serves only plain SGD and
 *   AdaGrad without weight decay, where a zero gradient leaves a weight unchanged or shrinks
 *   every weight alike. Momentum, Nesterov, RMSprop, Adadelta, Adam, AdamW, Adamax and NAdam
 *   change weights whose gradient is zero (their moments decay and keep moving them), so on
 *   sparse input they still take the dense step: correct, but O(n_params) work per step.
 */
#include "sparse.h"

#include <math.h>
#include <string.h>

/* The most segments of the parameter-group table (DSC_ELIMIT beyond it). */
#define OPT_MAX_SEGMENTS 64

/* "DSCO" read as a little-endian 32-bit word, and the version of the state layout. */
#define OPT_STATE_MAGIC 0x4F435344u
#define OPT_STATE_VERSION 1u

/* Byte sizes of the state image: fixed header, one segment entry, the whole header. */
#define OPT_HEADER_FIXED 56u
#define OPT_SEGMENT_BYTES 24u
#define OPT_HEADER_BYTES (OPT_HEADER_FIXED + OPT_MAX_SEGMENTS * OPT_SEGMENT_BYTES)

/*
 * The buffer slots. Which kind keeps what:
 *   MOMENT1: SGD's momentum buffer, RMSprop's momentum buffer, the Adam family's first moment.
 *   MOMENT2: Adagrad's sum of squares, RMSprop's and Adadelta's square average, the Adam
 *            family's second moment, Adamax's infinity norm.
 *   EXTRA:   AMSGrad's maximum second moment, centered RMSprop's gradient average,
 *            Adadelta's accumulated squared update.
 */
enum { SLOT_MOMENT1, SLOT_MOMENT2, SLOT_EXTRA, SLOT_COUNT };

/* A run of parameters from start to the next segment's start (or n_params). */
typedef struct opt_segment {
    size_t start;
    double lr_scale;
    int frozen;
} opt_segment;

struct dsc_optim {
    dsc_optim_config cfg;
    size_t n_params;
    double lr;
    int64_t steps;
    double mu_product; /* NAdam: product of mu_1..mu_t */
    unsigned buffer_mask;
    float *buf[SLOT_COUNT];
    size_t n_segments;
    opt_segment seg[OPT_MAX_SEGMENTS];
    size_t n_trainable;
    size_t state_bytes;
    uint64_t updated; /* elements updated by every step so far (a test hook) */
};

/* What a step shares between all elements. */
typedef struct step_scalars {
    int64_t t;
    double bias1, bias2;         /* 1 - beta1^t, 1 - beta2^t */
    double adagrad_lr_div;       /* 1 + (t - 1) * lr_decay */
    double nadam_mu, nadam_mu_next;
    double nadam_prod, nadam_prod_next;
} step_scalars;

static const char *const optimizer_names[DSC_OPT_COUNT] = {
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
    "adadelta", "adam", "adamw", "adamax", "nadam",
};

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                              */
/* ------------------------------------------------------------------------------------------ */

void dsc_optim_config_default(dsc_optim_config *cfg, dsc_optimizer kind)
{
    if (!cfg)
        return;

    /* Values every kind shares; fields a kind does not use keep harmless values. */
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->lr = 1e-3;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->eps = 1e-8;
    cfg->rho = 0.99;
    cfg->momentum_decay = 4e-3;

    switch (kind) {
    case DSC_OPT_MOMENTUM:
    case DSC_OPT_NESTEROV:
        cfg->momentum = 0.9;
        break;
    case DSC_OPT_ADAGRAD:
        cfg->lr = 1e-2;
        cfg->eps = 1e-10;
        break;
    case DSC_OPT_RMSPROP:
        cfg->lr = 1e-2;
        cfg->rho = 0.99;
        break;
    case DSC_OPT_ADADELTA:
        cfg->lr = 1.0;
        cfg->rho = 0.9;
        cfg->eps = 1e-6;
        break;
    case DSC_OPT_ADAMW:
        cfg->weight_decay = 1e-2;
        break;
    case DSC_OPT_ADAMAX:
    case DSC_OPT_NADAM:
        cfg->lr = 2e-3;
        break;
    default:
        break;
    }
}

static int check_nonnegative(const char *field, double value)
{
    if (isfinite(value) && value >= 0.0)
        return DSC_OK;
    return dsc__fail(DSC_EINVAL, "optimizer: %s must be a finite number >= 0, got %g", field,
                     value);
}

static int check_positive(const char *field, double value)
{
    if (isfinite(value) && value > 0.0)
        return DSC_OK;
    return dsc__fail(DSC_EINVAL, "optimizer: %s must be a finite number > 0, got %g", field,
                     value);
}

/* value in [0, 1): the decay rates and momentum factors. */
static int check_unit_open(const char *field, double value)
{
    if (value >= 0.0 && value < 1.0)
        return DSC_OK;
    return dsc__fail(DSC_EINVAL, "optimizer: %s must be in [0, 1), got %g", field, value);
}

/* The checks of the SGD kinds: momentum, dampening, and Nesterov's conditions. */
static int check_sgd(const dsc_optim_config *cfg)
{
    int rc = check_unit_open("momentum", cfg->momentum);

    if (rc)
        return rc;
    if (!(cfg->dampening >= 0.0 && cfg->dampening <= 1.0))
        return dsc__fail(DSC_EINVAL, "optimizer: dampening must be in [0, 1], got %g",
                         cfg->dampening);
    if (cfg->kind == DSC_OPT_NESTEROV && cfg->momentum <= 0.0)
        return dsc__fail(DSC_EINVAL, "optimizer: nesterov needs momentum > 0, got %g",
                         cfg->momentum);
    if (cfg->kind == DSC_OPT_NESTEROV && cfg->dampening != 0.0)
        return dsc__fail(DSC_EINVAL, "optimizer: nesterov needs dampening 0, got %g",
                         cfg->dampening);
    return DSC_OK;
}

/* beta1, beta2 and eps: the Adam family. */
static int check_betas(const dsc_optim_config *cfg)
{
    int rc = check_unit_open("beta1", cfg->beta1);

    if (!rc)
        rc = check_unit_open("beta2", cfg->beta2);
    if (!rc)
        rc = check_positive("eps", cfg->eps);
    return rc;
}

/* Check the fields the configured kind uses; the others are ignored. */
int dsc_optim_config_check(const dsc_optim_config *cfg)
{
    int rc;

    if (!cfg)
        return dsc__fail(DSC_EINVAL, "optimizer: cfg must not be NULL");
    if ((unsigned)cfg->kind >= DSC_OPT_COUNT)
        return dsc__fail(DSC_EINVAL, "optimizer: kind must be one of the DSC_OPT_ values, got %d",
                         (int)cfg->kind);
    if ((rc = check_nonnegative("lr", cfg->lr)) != 0)
        return rc;
    if ((rc = check_nonnegative("weight_decay", cfg->weight_decay)) != 0)
        return rc;

    switch (cfg->kind) {
    case DSC_OPT_SGD:
    case DSC_OPT_MOMENTUM:
    case DSC_OPT_NESTEROV:
        return check_sgd(cfg);
    case DSC_OPT_ADAGRAD:
        if ((rc = check_nonnegative("lr_decay", cfg->lr_decay)) != 0)
            return rc;
        if ((rc = check_nonnegative("initial_accumulator", cfg->initial_accumulator)) != 0)
            return rc;
        return check_positive("eps", cfg->eps);
    case DSC_OPT_RMSPROP:
        if ((rc = check_unit_open("rho", cfg->rho)) != 0)
            return rc;
        if ((rc = check_unit_open("momentum", cfg->momentum)) != 0)
            return rc;
        return check_positive("eps", cfg->eps);
    case DSC_OPT_ADADELTA:
        if ((rc = check_unit_open("rho", cfg->rho)) != 0)
            return rc;
        return check_positive("eps", cfg->eps);
    case DSC_OPT_ADAM:
    case DSC_OPT_ADAMW:
    case DSC_OPT_ADAMAX:
        return check_betas(cfg);
    case DSC_OPT_NADAM:
        if ((rc = check_betas(cfg)) != 0)
            return rc;
        return check_nonnegative("momentum_decay", cfg->momentum_decay);
    default:
        return DSC_OK;
    }
}

const char *dsc_optimizer_name(dsc_optimizer kind)
{
    if ((unsigned)kind >= DSC_OPT_COUNT)
        return "unknown";
    return optimizer_names[kind];
}

int dsc_optimizer_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        if (strcmp(name, optimizer_names[kind]) == 0)
            return kind;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Construction                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* The set of buffers (1 << SLOT_...) the configuration needs. */
static unsigned buffers_needed(const dsc_optim_config *cfg)
{
    const unsigned m1 = 1u << SLOT_MOMENT1, m2 = 1u << SLOT_MOMENT2, extra = 1u << SLOT_EXTRA;

    switch (cfg->kind) {
    case DSC_OPT_SGD:
    case DSC_OPT_MOMENTUM:
    case DSC_OPT_NESTEROV:
        return cfg->momentum != 0.0 ? m1 : 0u;
    case DSC_OPT_ADAGRAD:
        return m2;
    case DSC_OPT_RMSPROP:
        return m2 | (cfg->centered ? extra : 0u) | (cfg->momentum > 0.0 ? m1 : 0u);
    case DSC_OPT_ADADELTA:
        return m2 | extra;
    case DSC_OPT_ADAM:
    case DSC_OPT_ADAMW:
        return m1 | m2 | (cfg->amsgrad ? extra : 0u);
    case DSC_OPT_ADAMAX:
    case DSC_OPT_NADAM:
        return m1 | m2;
    default:
        return 0u;
    }
}

static size_t count_buffers(unsigned mask)
{
    size_t count = 0;

    for (int slot = 0; slot < SLOT_COUNT; slot++)
        count += (mask >> slot) & 1u;
    return count;
}

/* The zeroed (or, for Adagrad, initial_accumulator-filled) state of a fresh optimizer. */
static void reset_state(dsc_optim *opt)
{
    opt->lr = opt->cfg.lr;
    opt->steps = 0;
    opt->mu_product = 1.0;
    opt->n_segments = 1;
    opt->seg[0].start = 0;
    opt->seg[0].lr_scale = 1.0;
    opt->seg[0].frozen = 0;
    opt->n_trainable = opt->n_params;

    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        float fill = 0.0f;
        if (opt->cfg.kind == DSC_OPT_ADAGRAD && slot == SLOT_MOMENT2)
            fill = (float)opt->cfg.initial_accumulator;
        for (size_t i = 0; i < opt->n_params; i++)
            opt->buf[slot][i] = fill;
    }
}

dsc_optim *dsc_optim_new(const dsc_optim_config *cfg, size_t n_params, int *err)
{
    int rc = dsc_optim_config_check(cfg);

    if (rc)
        return dsc__fail_null(err, rc);
    if (n_params == 0) {
        dsc__fail(DSC_EINVAL, "optimizer: n_params must be at least 1, got 0");
        return dsc__fail_null(err, DSC_EINVAL);
    }

    /* Sizes: each buffer, and the state image, must be addressable. */
    unsigned mask = buffers_needed(cfg);
    size_t buffer_bytes, all_buffers, state_bytes;
    if (dsc__mul_overflows(n_params, sizeof(float), &buffer_bytes) ||
        dsc__mul_overflows(buffer_bytes, count_buffers(mask), &all_buffers) ||
        all_buffers > SIZE_MAX - OPT_HEADER_BYTES) {
        dsc__fail(DSC_ELIMIT, "optimizer: n_params %zu is too large to address", n_params);
        return dsc__fail_null(err, DSC_ELIMIT);
    }
    state_bytes = OPT_HEADER_BYTES + all_buffers;

    dsc_optim *opt = dsc__calloc(1, sizeof *opt);
    if (!opt) {
        dsc__fail(DSC_ENOMEM, "optimizer: out of memory for the optimizer");
        return dsc__fail_null(err, DSC_ENOMEM);
    }
    opt->cfg = *cfg;
    opt->n_params = n_params;
    opt->buffer_mask = mask;
    opt->state_bytes = state_bytes;

    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!(mask & (1u << slot)))
            continue;
        opt->buf[slot] = dsc__alloc(buffer_bytes);
        if (!opt->buf[slot]) {
            dsc_optim_free(opt);
            dsc__fail(DSC_ENOMEM, "optimizer: out of memory for %zu state values", n_params);
            return dsc__fail_null(err, DSC_ENOMEM);
        }
    }

    reset_state(opt);
    if (err)
        *err = DSC_OK;
    return opt;
}

void dsc_optim_free(dsc_optim *opt)
{
    if (!opt)
        return;
    for (int slot = 0; slot < SLOT_COUNT; slot++)
        dsc__free(opt->buf[slot]);
    dsc__free(opt);
}

void dsc_optim_set_lr(dsc_optim *opt, double lr)
{
    if (opt)
        opt->lr = lr;
}

double dsc_optim_lr(const dsc_optim *opt)
{
    return opt ? opt->lr : 0.0;
}

int64_t dsc_optim_steps(const dsc_optim *opt)
{
    return opt ? opt->steps : 0;
}

size_t dsc_optim_n_trainable(const dsc_optim *opt)
{
    return opt ? opt->n_trainable : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Parameter groups                                                                           */
/* ------------------------------------------------------------------------------------------ */

static size_t segment_end(const dsc_optim *opt, size_t k)
{
    return k + 1 < opt->n_segments ? opt->seg[k + 1].start : opt->n_params;
}

static size_t count_trainable(const dsc_optim *opt)
{
    size_t total = 0;

    for (size_t k = 0; k < opt->n_segments; k++) {
        if (!opt->seg[k].frozen)
            total += segment_end(opt, k) - opt->seg[k].start;
    }
    return total;
}

/* Append [start, ...) with the given settings to list, merging it into an equal neighbour. */
static void append_segment(opt_segment *list, size_t *n, size_t start, double lr_scale,
                           int frozen)
{
    if (*n > 0 && list[*n - 1].lr_scale == lr_scale && list[*n - 1].frozen == frozen)
        return;
    list[*n].start = start;
    list[*n].lr_scale = lr_scale;
    list[*n].frozen = frozen;
    (*n)++;
}

/*
 * Rebuild the segment table with [first, first + count) overriding what it covered: the
 * pieces of old segments before it, the new segment, then the pieces after it. Neighbours
 * with equal settings merge, so the table stays as small as the settings allow.
 */
int dsc_optim_set_range(dsc_optim *opt, size_t first, size_t count, double lr_scale,
                        int frozen)
{
    if (!opt)
        return dsc__fail(DSC_EINVAL, "optimizer: opt must not be NULL");
    if (first > opt->n_params || count > opt->n_params - first)
        return dsc__fail(DSC_EINVAL,
                         "optimizer: range of %zu parameters from %zu is beyond the %zu "
                         "parameters", count, first, opt->n_params);
    if (!(isfinite(lr_scale) && lr_scale >= 0.0))
        return dsc__fail(DSC_EINVAL, "optimizer: lr_scale must be a finite number >= 0, got %g",
                         lr_scale);
    if (count == 0)
        return DSC_OK;

    /* Up to two old pieces per old segment plus the new one, before merging. */
    opt_segment list[2 * OPT_MAX_SEGMENTS + 1];
    size_t n = 0, end = first + count;
    int is_frozen = frozen != 0;
    int placed = 0;

    for (size_t k = 0; k < opt->n_segments; k++) {
        size_t s = opt->seg[k].start, e = segment_end(opt, k);
        if (s < first)
            append_segment(list, &n, s, opt->seg[k].lr_scale, opt->seg[k].frozen);
        if (!placed && e >= first) {
            append_segment(list, &n, first, lr_scale, is_frozen);
            placed = 1;
        }
        if (e > end)
            append_segment(list, &n, s > end ? s : end, opt->seg[k].lr_scale,
                           opt->seg[k].frozen);
    }

    if (n > OPT_MAX_SEGMENTS)
        return dsc__fail(DSC_ELIMIT,
                         "optimizer: ranges would need %zu segments, more than the %d allowed",
                         n, OPT_MAX_SEGMENTS);
    memcpy(opt->seg, list, n * sizeof list[0]);
    opt->n_segments = n;
    opt->n_trainable = count_trainable(opt);
    return DSC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The update rules, each over params [begin, end) with learning rate lr                     */
/* ------------------------------------------------------------------------------------------ */

/* SGD, heavy-ball momentum with dampening, and Nesterov momentum. */
static void update_sgd(dsc_optim *opt, float *params, const float *grads, size_t begin,
                       size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, mu = opt->cfg.momentum;
    const double damp = opt->cfg.dampening;
    const int nesterov = opt->cfg.kind == DSC_OPT_NESTEROV;
    float *buf = opt->buf[SLOT_MOMENT1];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        if (buf) {
            /* The first step seeds the buffer with the gradient itself, as torch does. */
            double b = s->t == 1 ? g : mu * buf[i] + (1.0 - damp) * g;
            buf[i] = (float)b;
            g = nesterov ? g + mu * b : b;
        }
        params[i] = (float)(w - lr * g);
    }
}

static void update_adagrad(dsc_optim *opt, float *params, const float *grads, size_t begin,
                           size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps;
    const double clr = lr / s->adagrad_lr_div;
    float *sum = opt->buf[SLOT_MOMENT2];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        double acc = sum[i] + g * g;
        sum[i] = (float)acc;
        params[i] = (float)(w - clr * g / (sqrt(acc) + eps));
    }
}

static void update_rmsprop(dsc_optim *opt, float *params, const float *grads, size_t begin,
                           size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps;
    const double alpha = opt->cfg.rho, mu = opt->cfg.momentum;
    float *square_avg = opt->buf[SLOT_MOMENT2];
    float *grad_avg = opt->buf[SLOT_EXTRA];
    float *mom = opt->buf[SLOT_MOMENT1];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        double v = alpha * square_avg[i] + (1.0 - alpha) * g * g;
        square_avg[i] = (float)v;
        if (grad_avg) {
            double a = alpha * grad_avg[i] + (1.0 - alpha) * g;
            grad_avg[i] = (float)a;
            v -= a * a;
            if (v < 0.0)
                v = 0.0; /* only float rounding of the stored averages gets here */
        }
        double delta = g / (sqrt(v) + eps);
        if (mom) {
            double b = mu * mom[i] + delta;
            mom[i] = (float)b;
            delta = b;
        }
        params[i] = (float)(w - lr * delta);
    }
}

static void update_adadelta(dsc_optim *opt, float *params, const float *grads, size_t begin,
                            size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps, rho = opt->cfg.rho;
    float *square_avg = opt->buf[SLOT_MOMENT2];
    float *acc_delta = opt->buf[SLOT_EXTRA];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        double v = rho * square_avg[i] + (1.0 - rho) * g * g;
        square_avg[i] = (float)v;
        double u = acc_delta[i];
        double delta = sqrt(u + eps) / sqrt(v + eps) * g;
        acc_delta[i] = (float)(rho * u + (1.0 - rho) * delta * delta);
        params[i] = (float)(w - lr * delta);
    }
}

/* Adam, and AdamW (the weight shrunk by lr * weight_decay before the Adam update). */
/*
 * Adam and AdamW without AMSGrad, in float arithmetic as torch computes them, with every
 * per-step constant hoisted, so that the loop vectorises: this is the hot loop of most runs.
 */
DSC_VECTOR_CLONES
static void update_adam_float(dsc_optim *opt, float *params, const float *grads,
                              size_t begin, size_t end, double lr, const step_scalars *s)
{
    const int decoupled = opt->cfg.kind == DSC_OPT_ADAMW;
    const float beta1 = (float)opt->cfg.beta1, beta2 = (float)opt->cfg.beta2;
    const float keep1 = (float)(1.0 - opt->cfg.beta1), keep2 = (float)(1.0 - opt->cfg.beta2);
    const float step = (float)(lr / s->bias1);
    const float root_bias2 = (float)sqrt(s->bias2);
    const float eps = (float)opt->cfg.eps;
    const float l2 = decoupled ? 0.0f : (float)opt->cfg.weight_decay;
    const float shrink = decoupled ? (float)(1.0 - lr * opt->cfg.weight_decay) : 1.0f;
    float *restrict m1 = opt->buf[SLOT_MOMENT1], *restrict m2 = opt->buf[SLOT_MOMENT2];
    float *restrict w = params;
    const float *restrict g = grads;

    for (size_t i = begin; i < end; i++) {
        float gi = g[i] + l2 * w[i];
        float m = beta1 * m1[i] + keep1 * gi;
        float v = beta2 * m2[i] + keep2 * gi * gi;
        m1[i] = m;
        m2[i] = v;
        w[i] = w[i] * shrink - step * m / (sqrtf(v) / root_bias2 + eps);
    }
}

static void update_adam(dsc_optim *opt, float *params, const float *grads, size_t begin,
                        size_t end, double lr, const step_scalars *s)
{
    if (!opt->cfg.amsgrad) {
        update_adam_float(opt, params, grads, begin, end, lr, s);
        return;
    }

    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps;
    const double beta1 = opt->cfg.beta1, beta2 = opt->cfg.beta2;
    const int decoupled = opt->cfg.kind == DSC_OPT_ADAMW;
    const double shrink = 1.0 - lr * wd;
    float *m1 = opt->buf[SLOT_MOMENT1], *m2 = opt->buf[SLOT_MOMENT2];
    float *v_max = opt->buf[SLOT_EXTRA];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (decoupled)
            w *= shrink;
        else if (wd != 0.0)
            g += wd * w;
        double m = beta1 * m1[i] + (1.0 - beta1) * g;
        double v = beta2 * m2[i] + (1.0 - beta2) * g * g;
        m1[i] = (float)m;
        m2[i] = (float)v;
        if (v_max) {
            if (v_max[i] > v)
                v = v_max[i];
            v_max[i] = (float)v;
        }
        double denom = sqrt(v / s->bias2) + eps;
        params[i] = (float)(w - lr * (m / s->bias1) / denom);
    }
}

static void update_adamax(dsc_optim *opt, float *params, const float *grads, size_t begin,
                          size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps;
    const double beta1 = opt->cfg.beta1, beta2 = opt->cfg.beta2;
    float *m1 = opt->buf[SLOT_MOMENT1], *inf_norm = opt->buf[SLOT_MOMENT2];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        double m = beta1 * m1[i] + (1.0 - beta1) * g;
        double u = fmax(beta2 * inf_norm[i], fabs(g) + eps);
        m1[i] = (float)m;
        inf_norm[i] = (float)u;
        params[i] = (float)(w - lr * m / (s->bias1 * u));
    }
}

static void update_nadam(dsc_optim *opt, float *params, const float *grads, size_t begin,
                         size_t end, double lr, const step_scalars *s)
{
    const double wd = opt->cfg.weight_decay, eps = opt->cfg.eps;
    const double beta1 = opt->cfg.beta1, beta2 = opt->cfg.beta2;
    const double grad_coef = lr * (1.0 - s->nadam_mu) / (1.0 - s->nadam_prod);
    const double moment_coef = lr * s->nadam_mu_next / (1.0 - s->nadam_prod_next);
    float *m1 = opt->buf[SLOT_MOMENT1], *m2 = opt->buf[SLOT_MOMENT2];

    for (size_t i = begin; i < end; i++) {
        double w = params[i], g = grads[i];
        if (wd != 0.0)
            g += wd * w;
        double m = beta1 * m1[i] + (1.0 - beta1) * g;
        double v = beta2 * m2[i] + (1.0 - beta2) * g * g;
        m1[i] = (float)m;
        m2[i] = (float)v;
        double denom = sqrt(v / s->bias2) + eps;
        params[i] = (float)(w - grad_coef * g / denom - moment_coef * m / denom);
    }
}

typedef void (*update_fn)(dsc_optim *opt, float *params, const float *grads, size_t begin,
                          size_t end, double lr, const step_scalars *s);

static update_fn update_of(dsc_optimizer kind)
{
    switch (kind) {
    case DSC_OPT_ADAGRAD: return update_adagrad;
    case DSC_OPT_RMSPROP: return update_rmsprop;
    case DSC_OPT_ADADELTA: return update_adadelta;
    case DSC_OPT_ADAM:
    case DSC_OPT_ADAMW: return update_adam;
    case DSC_OPT_ADAMAX: return update_adamax;
    case DSC_OPT_NADAM: return update_nadam;
    default: return update_sgd;
    }
}

/*
 * The per-step scalars of step t (from 1). The powers only for the kinds that use them: four
 * pow calls were 4 % of a step of logistic regression at batch 32.
 *
 * Known limit (reproducibility): pow is the C library's, which glibc may pick by processor;
 * see activation.c.
 */
static void prepare_step(const dsc_optim *opt, int64_t t, step_scalars *s)
{
    const dsc_optim_config *cfg = &opt->cfg;
    double td = (double)t;

    memset(s, 0, sizeof *s);
    s->t = t;
    s->adagrad_lr_div = 1.0 + (td - 1.0) * cfg->lr_decay;
    if (cfg->kind == DSC_OPT_ADAM || cfg->kind == DSC_OPT_ADAMW || cfg->kind == DSC_OPT_ADAMAX ||
        cfg->kind == DSC_OPT_NADAM) {
        s->bias1 = 1.0 - pow(cfg->beta1, td);
        s->bias2 = 1.0 - pow(cfg->beta2, td);
    }
    if (cfg->kind == DSC_OPT_NADAM) {
        s->nadam_mu = cfg->beta1 * (1.0 - 0.5 * pow(0.96, td * cfg->momentum_decay));
        s->nadam_mu_next =
            cfg->beta1 * (1.0 - 0.5 * pow(0.96, (td + 1.0) * cfg->momentum_decay));
        s->nadam_prod = opt->mu_product * s->nadam_mu;
        s->nadam_prod_next = s->nadam_prod * s->nadam_mu_next;
    }
}

/* Whether a step may run: something to update and a usable learning rate. */
static int check_can_step(const dsc_optim *opt)
{
    if (opt->n_trainable == 0)
        return dsc__fail(DSC_EFROZEN, "optimizer: all %zu parameters are frozen, nothing to "
                         "update", opt->n_params);
    if (!(isfinite(opt->lr) && opt->lr >= 0.0))
        return dsc__fail(DSC_EINVAL, "optimizer: lr must be a finite number >= 0, got %g",
                         opt->lr);
    return DSC_OK;
}

/*
 * The dense step walks the parameters in blocks of STEP_BLOCK, each updated by one thread.
 * Every rule updates each element from that element's values alone, so how the blocks are
 * shared among threads does not change a bit. Below STEP_PARALLEL parameters one thread does
 * all: starting and joining a parallel region costs 1 to 3 us on a 2-core machine, more than
 * the update of ~50,000 parameters saves. A block's copy for dsc__optim_step_kept is taken
 * just before its update, so the update finds the block in cache.
 */
#define STEP_BLOCK 8192
#define STEP_PARALLEL 65536

/* Update [begin, end) of every segment that is not frozen. */
static void update_block(dsc_optim *opt, update_fn update, float *params, const float *grads,
                         size_t begin, size_t end, const step_scalars *s)
{
    for (size_t k = 0; k < opt->n_segments; k++) {
        size_t from = opt->seg[k].start > begin ? opt->seg[k].start : begin;
        size_t to = segment_end(opt, k) < end ? segment_end(opt, k) : end;
        if (!opt->seg[k].frozen && from < to)
            update(opt, params, grads, from, to, opt->lr * opt->seg[k].lr_scale, s);
    }
}

/* Copy [begin, end) of the weights (and, with keep->state, of every buffer) into keep. */
static void keep_block(const dsc_optim *opt, const float *params, dsc_optim_keep *keep,
                       size_t begin, size_t end)
{
    size_t n = opt->n_params, bytes = (end - begin) * sizeof(float);
    float *at = keep->values;

    memcpy(at + begin, params + begin, bytes);
    for (int slot = 0; keep->state && slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        at += n;
        memcpy(at + begin, opt->buf[slot] + begin, bytes);
    }
}

/*
 * Block b of a step: kept first when keep is given, then updated; returns 1 when check asks
 * for the finiteness of the new weights and one of the block's is not finite.
 */
static int step_block(dsc_optim *opt, update_fn update, float *params, const float *grads,
                      const step_scalars *s, dsc_optim_keep *keep, bool check, size_t b)
{
    size_t begin = b * STEP_BLOCK;
    size_t end = opt->n_params - begin < STEP_BLOCK ? opt->n_params : begin + STEP_BLOCK;

    if (keep)
        keep_block(opt, params, keep, begin, end);
    update_block(opt, update, params, grads, begin, end, s);
    return check && !dsc__all_finite(params + begin, end - begin);
}

/* One step over every block; returns 1 when check found a weight that is not finite. */
static int step_all(dsc_optim *opt, float *params, const float *grads, dsc_optim_keep *keep,
                    bool check)
{
    step_scalars s;
    prepare_step(opt, opt->steps + 1, &s);

    update_fn update = update_of(opt->cfg.kind);
    size_t blocks = (opt->n_params + STEP_BLOCK - 1) / STEP_BLOCK;
    int threads = opt->n_params >= STEP_PARALLEL ? dsc_threads() : 1;
    int bad = 0;
    if (threads > 1) {
#pragma omp parallel for schedule(static) num_threads(threads) reduction(| : bad)
        for (size_t b = 0; b < blocks; b++)
            bad |= step_block(opt, update, params, grads, &s, keep, check, b);
    } else {
        for (size_t b = 0; b < blocks; b++)
            bad |= step_block(opt, update, params, grads, &s, keep, check, b);
    }

    opt->updated += opt->n_trainable;
    opt->steps = s.t;
    if (opt->cfg.kind == DSC_OPT_NADAM)
        opt->mu_product = s.nadam_prod;
    return bad;
}

/* One update of every parameter that is not frozen; nothing is allocated. */
int dsc_optim_step(dsc_optim *opt, float *params, const float *grads)
{
    if (!opt || !params || !grads)
        return dsc__fail(DSC_EINVAL, "optimizer: %s must not be NULL",
                         !opt ? "opt" : !params ? "params" : "grads");
    int err = check_can_step(opt);
    if (err)
        return err;

    step_all(opt, params, grads, NULL, false);
    return DSC_OK;
}

size_t dsc__optim_keep_floats(const dsc_optim *opt, int state)
{
    size_t copies = 1;

    for (int slot = 0; state && slot < SLOT_COUNT; slot++)
        copies += opt->buf[slot] != NULL;
    return dsc__mul(copies, opt->n_params);
}

int dsc__optim_step_kept(dsc_optim *opt, float *params, const float *grads,
                         dsc_optim_keep *keep, bool *finite)
{
    int err = check_can_step(opt);
    if (err)
        return err;

    keep->steps = opt->steps;
    keep->lr = opt->lr;
    keep->mu_product = opt->mu_product;
    *finite = !step_all(opt, params, grads, keep, true);
    return DSC_OK;
}

void dsc__optim_undo(dsc_optim *opt, float *params, const dsc_optim_keep *keep)
{
    size_t n = opt->n_params;
    const float *at = keep->values;

    memcpy(params, at, n * sizeof(float));
    if (!keep->state)
        return;
    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        at += n;
        memcpy(opt->buf[slot], at, n * sizeof(float));
    }
    opt->steps = keep->steps;
    opt->lr = keep->lr;
    opt->mu_product = keep->mu_product;
}

/* ------------------------------------------------------------------------------------------ */
/* The sparse step (sparse.h)                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The smallest shrink factor of a scaled step; below it the dense step is taken. */
#define MIN_ROW_FACTOR 1e-6

/* True for SGD without a momentum buffer: w -= lr * (g + weight_decay * w). */
static bool plain_sgd(const dsc_optim *opt)
{
    dsc_optimizer kind = opt->cfg.kind;

    return (kind == DSC_OPT_SGD || kind == DSC_OPT_MOMENTUM) && !opt->buf[SLOT_MOMENT1];
}

/*
 * Which rule gives the dense result for the weights [0, count) when most of them have a zero
 * gradient (the objective's l2 * w left out of it):
 * - frozen weights are never written, whatever the optimizer;
 * - plain SGD and AdaGrad move a weight by a multiple of its gradient and AdaGrad adds the
 *   gradient's square to its sum, so a zero gradient changes nothing (AdaGrad's lr_decay
 *   only changes the multiple, the same for every weight);
 * - plain SGD with decay shrinks every weight by 1 - lr * (l2 + weight_decay) and then moves
 *   it by -lr * g: one factor for the whole range when it lies in one parameter range;
 * - anything else (weight decay or l2 with AdaGrad, momentum, the adaptive kinds) does not.
 */
int dsc__optim_rows_mode(const dsc_optim *opt, size_t count, double l2, double *factor)
{
    *factor = 1.0;

    size_t last = 0; /* the segment holding the range's last element */
    bool all_frozen = true;
    for (size_t k = 0; k < opt->n_segments && opt->seg[k].start < count; k++) {
        last = k;
        all_frozen = all_frozen && opt->seg[k].frozen;
    }
    if (all_frozen)
        return DSC_ROWS_EXACT;

    if (plain_sgd(opt)) {
        double decay = l2 + opt->cfg.weight_decay;
        if (decay == 0.0)
            return DSC_ROWS_EXACT;
        if (last != 0)
            return DSC_ROWS_DENSE;
        double shrink = 1.0 - opt->lr * opt->seg[0].lr_scale * decay;
        if (!(shrink >= MIN_ROW_FACTOR && shrink <= 1.0))
            return DSC_ROWS_DENSE;
        *factor = shrink;
        return DSC_ROWS_SCALED;
    }
    if (opt->cfg.kind == DSC_OPT_ADAGRAD && opt->cfg.weight_decay == 0.0 && l2 == 0.0)
        return DSC_ROWS_EXACT;
    return DSC_ROWS_DENSE;
}

/*
 * Plain SGD without decay, w -= step * g, as update_sgd computes it when weight_decay is 0;
 * on scaled weights v = w / scale the step is lr / scale.
 */
static inline void update_scaled_sgd(float *params, const float *grads, size_t begin, size_t end,
                              double step)
{
    for (size_t i = begin; i < end; i++)
        params[i] = (float)((double)params[i] - step * (double)grads[i]);
}

/* Update params [begin, end) clipped to the segment [seg_begin, seg_end). */
static void update_part(dsc_optim *opt, update_fn update, float *params, const float *grads,
                        size_t begin, size_t end, size_t seg_begin, size_t seg_end,
                        double lr, double row_scale, const step_scalars *s)
{
    if (begin < seg_begin)
        begin = seg_begin;
    if (end > seg_end)
        end = seg_end;
    if (begin >= end)
        return;
    if (row_scale != 0.0)
        update_scaled_sgd(params, grads, begin, end, lr / row_scale);
    else
        update(opt, params, grads, begin, end, lr, s);
    opt->updated += end - begin;
}

/* Update the rows of set, each clipped to the segment [seg_begin, seg_end). */
static void update_rows(dsc_optim *opt, update_fn update, float *params, const float *grads,
                        const dsc_row_set *set, size_t seg_begin, size_t seg_end, double lr,
                        const step_scalars *s)
{
    size_t width = set->width;

    if (seg_begin >= set->tail_begin)
        return; /* the rows all lie before the segment */
    for (size_t i = 0; i < set->n_rows; i++) {
        size_t row_begin = (size_t)set->rows[i] * width;
        update_part(opt, update, params, grads, row_begin, row_begin + width, seg_begin,
                    seg_end, lr, set->row_scale, s);
    }
}

/*
 * Plain SGD moves every row alike, w -= step * g, when the first segment holds all the rows
 * and is not frozen, and the rows have no decay of their own (none, or folded into a
 * row_scale).
 */
bool dsc__optim_rows_one_walk(const dsc_optim *opt, size_t rows_end, bool scaled)
{
    return plain_sgd(opt) && !opt->seg[0].frozen && segment_end(opt, 0) >= rows_end &&
           (scaled || opt->cfg.weight_decay == 0.0);
}

/*
 * The rows of set under plain SGD (see dsc__optim_rows_one_walk), in one walk that also keeps
 * their values before the step in kept (when not NULL) and returns 1 when a new value is not
 * finite (0 otherwise): the rows lie at scattered places, so each is fetched once for all
 * three. The gradient comes from grads, or packed in set->packed_grads. The arithmetic is
 * update_scaled_sgd's.
 */
static uint32_t update_sgd_rows(float *params, const float *grads, const dsc_row_set *set,
                                double step, float *kept)
{
    size_t width = set->width;
    const float *packed = set->packed_grads;
    uint32_t bad = 0;

    for (size_t i = 0; width == 1 && i < set->n_rows; i++) {
        size_t at = set->rows[i]; /* one weight a row: no inner loop */
        float old = params[at];
        float moved = (float)((double)old - step * (double)(packed ? packed[i] : grads[at]));
        if (kept)
            kept[i] = old;
        params[at] = moved;
        bad |= dsc__not_finite(moved);
    }
    for (size_t i = 0; width > 1 && i < set->n_rows; i++) {
        float *row = params + (size_t)set->rows[i] * width;
        const float *grad = packed ? packed + i * width : grads + (size_t)set->rows[i] * width;
        if (kept)
            memcpy(kept + i * width, row, width * sizeof(float));
        for (size_t j = 0; j < width; j++) {
            row[j] = (float)((double)row[j] - step * (double)grad[j]);
            bad |= dsc__not_finite(row[j]);
        }
    }
    return bad;
}

int dsc__optim_step_rows(dsc_optim *opt, float *params, const float *grads,
                         const dsc_row_set *set, float *kept, bool *finite)
{
    if (!opt || !params || !grads || !set)
        return dsc__fail(DSC_EINVAL, "optimizer: NULL argument to the sparse step");
    int err = check_can_step(opt);
    if (err)
        return err;
    if (set->row_scale != 0.0 && !plain_sgd(opt))
        return dsc__fail(DSC_EINVAL, "optimizer: scaled rows need plain SGD");
    bool one_walk = dsc__optim_rows_one_walk(opt, set->tail_begin, set->row_scale != 0.0);
    if (set->packed_grads && !one_walk)
        return dsc__fail(DSC_EINVAL, "optimizer: packed rows need plain SGD in one walk");

    step_scalars s;
    prepare_step(opt, opt->steps + 1, &s);

    /* Plain SGD takes the rows in one walk; any other rule keeps and checks them apart. */
    uint32_t bad = 0;
    if (kept && !one_walk) {
        dsc_row_set rows_only = *set;
        rows_only.tail_end = rows_only.tail_begin;
        dsc__rows_gather(params, &rows_only, kept);
    }
    update_fn update = update_of(opt->cfg.kind);
    for (size_t k = 0; k < opt->n_segments; k++) {
        if (opt->seg[k].frozen)
            continue;
        size_t seg_begin = opt->seg[k].start, seg_end = segment_end(opt, k);
        double lr = opt->lr * opt->seg[k].lr_scale;
        if (!one_walk) {
            update_rows(opt, update, params, grads, set, seg_begin, seg_end, lr, &s);
        } else if (k == 0) {
            bad |= update_sgd_rows(params, grads, set,
                                   set->row_scale != 0.0 ? lr / set->row_scale : lr, kept);
            opt->updated += set->n_rows * set->width;
        }
        update_part(opt, update, params, grads, set->tail_begin, set->tail_end, seg_begin,
                    seg_end, lr, 0.0, &s);
    }
    if (finite) {
        size_t tail = set->tail_end - set->tail_begin;
        if (one_walk) {
            *finite = !bad && dsc__all_finite(params + set->tail_begin, tail);
        } else {
            *finite = dsc__rows_all_finite(params, set);
        }
    }

    opt->steps = s.t;
    if (opt->cfg.kind == DSC_OPT_NADAM)
        opt->mu_product = s.nadam_prod;
    return DSC_OK;
}

/* The scalars of the state: what a step or dsc_optim_set_range changes besides buffers. */
typedef struct opt_scalars {
    int64_t steps;
    double lr;
    double mu_product;
    size_t n_segments;
    size_t n_trainable;
    opt_segment seg[OPT_MAX_SEGMENTS];
} opt_scalars;

size_t dsc__optim_rows_state_size(const dsc_optim *opt, size_t n_elements)
{
    size_t per_buffer, all;

    if (dsc__mul_overflows(n_elements, sizeof(float), &per_buffer) ||
        dsc__mul_overflows(per_buffer, count_buffers(opt->buffer_mask), &all) ||
        all > SIZE_MAX - sizeof(opt_scalars))
        return SIZE_MAX;
    return sizeof(opt_scalars) + all;
}

void dsc__optim_rows_state_save(const dsc_optim *opt, const dsc_row_set *set, void *buf)
{
    opt_scalars head = {
        .steps = opt->steps,
        .lr = opt->lr,
        .mu_product = opt->mu_product,
        .n_segments = opt->n_segments,
        .n_trainable = opt->n_trainable,
    };
    memcpy(head.seg, opt->seg, sizeof head.seg);
    memcpy(buf, &head, sizeof head);

    float *values = (float *)((unsigned char *)buf + sizeof head);
    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        dsc__rows_gather(opt->buf[slot], set, values);
        values += dsc__rows_count(set);
    }
}

void dsc__optim_rows_state_load(dsc_optim *opt, const dsc_row_set *set, const void *buf)
{
    opt_scalars head;
    memcpy(&head, buf, sizeof head);
    opt->steps = head.steps;
    opt->lr = head.lr;
    opt->mu_product = head.mu_product;
    opt->n_segments = head.n_segments;
    opt->n_trainable = head.n_trainable;
    memcpy(opt->seg, head.seg, sizeof head.seg);

    const float *values = (const float *)((const unsigned char *)buf + sizeof head);
    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        dsc__rows_scatter(opt->buf[slot], set, values);
        values += dsc__rows_count(set);
    }
}

uint64_t dsc__optim_elements_updated(const dsc_optim *opt)
{
    return opt->updated;
}

/* ------------------------------------------------------------------------------------------ */
/* State image                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * Layout, every number little-endian:
 *   0 u32 magic "DSCO"     4 u32 version        8 u32 kind         12 u32 buffer mask
 *  16 u64 n_params        24 i64 steps         32 f64 lr          40 f64 NAdam mu product
 *  48 u32 n_segments      52 u32 zero
 *  56 OPT_MAX_SEGMENTS entries of { u64 start, f64 lr_scale, u32 frozen, u32 zero }
 *  then each buffer present in the mask, in slot order, as n_params f32.
 */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static void put_f64(unsigned char *p, double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof bits);
    put_u64(p, bits);
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int k = 0; k < 4; k++)
        v |= (uint32_t)p[k] << (8 * k);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int k = 0; k < 8; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

static double get_f64(const unsigned char *p)
{
    uint64_t bits = get_u64(p);
    double v;

    memcpy(&v, &bits, sizeof v);
    return v;
}

size_t dsc_optim_state_size(const dsc_optim *opt)
{
    return opt ? opt->state_bytes : 0;
}

int dsc_optim_state_save(const dsc_optim *opt, void *buf, size_t size)
{
    if (!opt || !buf)
        return dsc__fail(DSC_EINVAL, "optimizer state: %s must not be NULL",
                         !opt ? "opt" : "buf");
    if (size != opt->state_bytes)
        return dsc__fail(DSC_ESHAPE, "optimizer state: size must be %zu bytes, got %zu",
                         opt->state_bytes, size);

    unsigned char *out = buf;
    memset(out, 0, OPT_HEADER_BYTES);
    put_u32(out + 0, OPT_STATE_MAGIC);
    put_u32(out + 4, OPT_STATE_VERSION);
    put_u32(out + 8, (uint32_t)opt->cfg.kind);
    put_u32(out + 12, opt->buffer_mask);
    put_u64(out + 16, (uint64_t)opt->n_params);
    put_u64(out + 24, (uint64_t)opt->steps);
    put_f64(out + 32, opt->lr);
    put_f64(out + 40, opt->mu_product);
    put_u32(out + 48, (uint32_t)opt->n_segments);
    for (size_t k = 0; k < opt->n_segments; k++) {
        unsigned char *entry = out + OPT_HEADER_FIXED + k * OPT_SEGMENT_BYTES;
        put_u64(entry, (uint64_t)opt->seg[k].start);
        put_f64(entry + 8, opt->seg[k].lr_scale);
        put_u32(entry + 16, (uint32_t)opt->seg[k].frozen);
    }

    unsigned char *p = out + OPT_HEADER_BYTES;
    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        for (size_t i = 0; i < opt->n_params; i++, p += 4) {
            uint32_t bits;
            memcpy(&bits, &opt->buf[slot][i], sizeof bits);
            put_u32(p, bits);
        }
    }
    return DSC_OK;
}

/* Check the segment table of an image: starts from 0, increasing, below n_params. */
static int check_segments(const unsigned char *in, size_t n_params, size_t n_segments)
{
    if (n_segments < 1 || n_segments > OPT_MAX_SEGMENTS)
        return dsc__fail(DSC_EFORMAT, "optimizer state: %zu segments, expected 1 to %d",
                         n_segments, OPT_MAX_SEGMENTS);

    uint64_t previous = 0;
    for (size_t k = 0; k < n_segments; k++) {
        const unsigned char *entry = in + OPT_HEADER_FIXED + k * OPT_SEGMENT_BYTES;
        uint64_t start = get_u64(entry);
        double lr_scale = get_f64(entry + 8);
        uint32_t frozen = get_u32(entry + 16);
        int ordered = k == 0 ? start == 0 : start > previous && start < (uint64_t)n_params;
        if (!ordered || !(isfinite(lr_scale) && lr_scale >= 0.0) || frozen > 1)
            return dsc__fail(DSC_EFORMAT, "optimizer state: segment %zu is malformed", k);
        previous = start;
    }
    return DSC_OK;
}

/* Validate the whole image first, so that a rejected image leaves opt as it was. */
int dsc_optim_state_load(dsc_optim *opt, const void *buf, size_t size)
{
    if (!opt || !buf)
        return dsc__fail(DSC_EINVAL, "optimizer state: %s must not be NULL",
                         !opt ? "opt" : "buf");

    const unsigned char *in = buf;
    if (size < OPT_HEADER_FIXED)
        return dsc__fail(DSC_EFORMAT, "optimizer state: %zu bytes is shorter than the header",
                         size);
    if (get_u32(in) != OPT_STATE_MAGIC)
        return dsc__fail(DSC_EFORMAT, "optimizer state: bad magic number 0x%08x",
                         (unsigned)get_u32(in));
    uint32_t version = get_u32(in + 4);
    if (version > OPT_STATE_VERSION)
        return dsc__fail(DSC_EVERSION, "optimizer state: version %u is newer than %u",
                         (unsigned)version, OPT_STATE_VERSION);
    if (version != OPT_STATE_VERSION)
        return dsc__fail(DSC_EFORMAT, "optimizer state: unknown version %u", (unsigned)version);
    uint32_t kind = get_u32(in + 8);
    if (kind != (uint32_t)opt->cfg.kind)
        return dsc__fail(DSC_EFORMAT, "optimizer state: saved by %s, loading into %s",
                         dsc_optimizer_name((dsc_optimizer)kind),
                         dsc_optimizer_name(opt->cfg.kind));
    uint64_t n_params = get_u64(in + 16);
    if (n_params != (uint64_t)opt->n_params)
        return dsc__fail(DSC_ESHAPE, "optimizer state: %llu parameters, the optimizer has %zu",
                         (unsigned long long)n_params, opt->n_params);
    if (get_u32(in + 12) != opt->buffer_mask)
        return dsc__fail(DSC_ESHAPE, "optimizer state: its buffers differ from this "
                         "optimizer's (momentum, centered or amsgrad settings differ)");
    if (size != opt->state_bytes)
        return dsc__fail(DSC_ESHAPE, "optimizer state: size must be %zu bytes, got %zu",
                         opt->state_bytes, size);

    int64_t steps = (int64_t)get_u64(in + 24);
    double lr = get_f64(in + 32), mu_product = get_f64(in + 40);
    size_t n_segments = get_u32(in + 48);
    if (steps < 0 || !isfinite(lr) || !isfinite(mu_product))
        return dsc__fail(DSC_EFORMAT, "optimizer state: step count, lr or NAdam product is "
                         "malformed");
    int rc = check_segments(in, opt->n_params, n_segments);
    if (rc)
        return rc;

    /* Everything checked: take it. */
    opt->steps = steps;
    opt->lr = lr;
    opt->mu_product = mu_product;
    opt->n_segments = n_segments;
    for (size_t k = 0; k < n_segments; k++) {
        const unsigned char *entry = in + OPT_HEADER_FIXED + k * OPT_SEGMENT_BYTES;
        opt->seg[k].start = (size_t)get_u64(entry);
        opt->seg[k].lr_scale = get_f64(entry + 8);
        opt->seg[k].frozen = (int)get_u32(entry + 16);
    }
    opt->n_trainable = count_trainable(opt);

    const unsigned char *p = in + OPT_HEADER_BYTES;
    for (int slot = 0; slot < SLOT_COUNT; slot++) {
        if (!opt->buf[slot])
            continue;
        for (size_t i = 0; i < opt->n_params; i++, p += 4) {
            uint32_t bits = get_u32(p);
            memcpy(&opt->buf[slot][i], &bits, sizeof bits);
        }
    }
    return DSC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Clipping                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * The Euclidean norm, accumulated in double. g is scaled by max_norm / norm only when the
 * norm is finite and above a finite, positive max_norm; otherwise it is left as it is.
 */
double dsc_clip_norm(float *g, size_t n, double max_norm)
{
    if (!g)
        return 0.0;

    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)g[i] * (double)g[i];
    double norm = sqrt(sum);

    if (isfinite(max_norm) && max_norm > 0.0 && isfinite(norm) && norm > max_norm) {
        double scale = max_norm / norm;
        for (size_t i = 0; i < n; i++)
            g[i] = (float)((double)g[i] * scale);
    }
    return norm;
}

/* Clamp to [-limit, limit]; a negative or NaN limit leaves g as it is, NaNs stay NaN. */
void dsc_clip_value(float *g, size_t n, float limit)
{
    if (!g || !(limit >= 0.0f))
        return;
    for (size_t i = 0; i < n; i++) {
        if (g[i] > limit)
            g[i] = limit;
        else if (g[i] < -limit)
            g[i] = -limit;
    }
}
