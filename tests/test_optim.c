/*
 * test_optim.c - optimizers, parameter groups, the state image and gradient clipping.
 *
 * The update rules are checked against reference implementations written here, in double,
 * from the algorithms documented for torch.optim, independently of src/optim.c.
 */
#include "test.h"

#include "internal.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_PARAMS 4
#define N_STEPS 5

static const float start_params[N_PARAMS] = {0.5f, -0.25f, 1.0f, -1.5f};

/*
 * The gradient of parameter i at step t (from 1): both signs, several magnitudes, scaled by
 * shrink^(t - 1) so that a test can make gradients fade; rounded to float as the library
 * receives it.
 */
static float grad_at(int t, size_t i, double shrink)
{
    double g = 0.8 * sin(1.3 * t + 0.9 * (double)i + 0.2) + 0.1 * (double)i - 0.15;

    return (float)(g * pow(shrink, t - 1));
}

/* ------------------------------------------------------------------------------------------ */
/* Reference implementations                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Product of NAdam's mu_1 .. mu_t, recomputed from scratch. */
static double nadam_mu(double beta1, double psi, int t)
{
    return beta1 * (1.0 - 0.5 * pow(0.96, t * psi));
}

static double nadam_product(double beta1, double psi, int t)
{
    double product = 1.0;

    for (int i = 1; i <= t; i++)
        product *= nadam_mu(beta1, psi, i);
    return product;
}

/*
 * n_steps updates of start_params with gradients grad_at(t, i, shrink), following the
 * pseudo-code of torch.optim for cfg->kind line by line. Moments are kept in double; the
 * parameters are rounded to float after each step, as the library stores them.
 */
static void reference_run(const dsc_optim_config *cfg, double shrink, int n_steps, double *out)
{
    double theta[N_PARAMS];
    double b[N_PARAMS] = {0}, m[N_PARAMS] = {0}, v[N_PARAMS] = {0}, v_max[N_PARAMS] = {0};
    double g_ave[N_PARAMS] = {0}, u[N_PARAMS] = {0}, state_sum[N_PARAMS];
    const double lr = cfg->lr, wd = cfg->weight_decay, eps = cfg->eps;
    const double b1 = cfg->beta1, b2 = cfg->beta2, mu = cfg->momentum;

    for (size_t i = 0; i < N_PARAMS; i++) {
        theta[i] = start_params[i];
        state_sum[i] = cfg->initial_accumulator;
    }

    for (int t = 1; t <= n_steps; t++) {
        for (size_t i = 0; i < N_PARAMS; i++) {
            double g = grad_at(t, i, shrink);
            double th = theta[i];

            switch (cfg->kind) {
            case DSC_OPT_SGD:
            case DSC_OPT_MOMENTUM:
            case DSC_OPT_NESTEROV:
                if (wd != 0)
                    g = g + wd * th;
                if (mu != 0) {
                    b[i] = t > 1 ? mu * b[i] + (1 - cfg->dampening) * g : g;
                    g = cfg->kind == DSC_OPT_NESTEROV ? g + mu * b[i] : b[i];
                }
                th = th - lr * g;
                break;
            case DSC_OPT_ADAGRAD: {
                if (wd != 0)
                    g = g + wd * th;
                double clr = lr / (1 + (t - 1) * cfg->lr_decay);
                state_sum[i] = state_sum[i] + g * g;
                th = th - clr * g / (sqrt(state_sum[i]) + eps);
                break;
            }
            case DSC_OPT_RMSPROP: {
                double alpha = cfg->rho;
                if (wd != 0)
                    g = g + wd * th;
                v[i] = alpha * v[i] + (1 - alpha) * g * g;
                double v_tilde = v[i];
                if (cfg->centered) {
                    g_ave[i] = g_ave[i] * alpha + (1 - alpha) * g;
                    v_tilde = v_tilde - g_ave[i] * g_ave[i];
                }
                if (mu > 0) {
                    b[i] = mu * b[i] + g / (sqrt(v_tilde) + eps);
                    th = th - lr * b[i];
                } else {
                    th = th - lr * g / (sqrt(v_tilde) + eps);
                }
                break;
            }
            case DSC_OPT_ADADELTA: {
                double rho = cfg->rho;
                if (wd != 0)
                    g = g + wd * th;
                v[i] = v[i] * rho + g * g * (1 - rho);
                double dx = sqrt(u[i] + eps) / sqrt(v[i] + eps) * g;
                u[i] = u[i] * rho + dx * dx * (1 - rho);
                th = th - lr * dx;
                break;
            }
            case DSC_OPT_ADAM:
            case DSC_OPT_ADAMW: {
                if (cfg->kind == DSC_OPT_ADAMW)
                    th = th - lr * wd * th;
                else if (wd != 0)
                    g = g + wd * th;
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double m_hat = m[i] / (1 - pow(b1, t));
                double v_hat;
                if (cfg->amsgrad) {
                    v_max[i] = fmax(v_max[i], v[i]);
                    v_hat = v_max[i] / (1 - pow(b2, t));
                } else {
                    v_hat = v[i] / (1 - pow(b2, t));
                }
                th = th - lr * m_hat / (sqrt(v_hat) + eps);
                break;
            }
            case DSC_OPT_ADAMAX:
                if (wd != 0)
                    g = g + wd * th;
                m[i] = b1 * m[i] + (1 - b1) * g;
                u[i] = fmax(b2 * u[i], fabs(g) + eps);
                th = th - lr * m[i] / ((1 - pow(b1, t)) * u[i]);
                break;
            case DSC_OPT_NADAM: {
                double psi = cfg->momentum_decay;
                if (wd != 0)
                    g = g + wd * th;
                double mu_t = nadam_mu(b1, psi, t), mu_next = nadam_mu(b1, psi, t + 1);
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double m_hat = mu_next * m[i] / (1 - nadam_product(b1, psi, t + 1)) +
                               (1 - mu_t) * g / (1 - nadam_product(b1, psi, t));
                double v_hat = v[i] / (1 - pow(b2, t));
                th = th - lr * m_hat / (sqrt(v_hat) + eps);
                break;
            }
            default:
                break;
            }
            theta[i] = (double)(float)th;
        }
    }
    memcpy(out, theta, sizeof theta);
}

/* The same run through the library; DSC_OK or the first failure. */
static int library_run(const dsc_optim_config *cfg, double shrink, int n_steps, float *out)
{
    int err = 0;
    dsc_optim *opt = dsc_optim_new(cfg, N_PARAMS, &err);
    float grads[N_PARAMS];

    if (!opt)
        return err;
    memcpy(out, start_params, sizeof start_params);
    for (int t = 1; t <= n_steps && err == DSC_OK; t++) {
        for (size_t i = 0; i < N_PARAMS; i++)
            grads[i] = grad_at(t, i, shrink);
        err = dsc_optim_step(opt, out, grads);
    }
    dsc_optim_free(opt);
    return err;
}

/*
 * The library against the reference: final parameters within 1e-6 relative, and the
 * distance each parameter travelled within 1e-4 relative, give or take two float steps of
 * the parameter (the library keeps its moments in float, the reference in double).
 */
static void check_reference(const dsc_optim_config *cfg, double shrink, const char *what)
{
    double expected[N_PARAMS];
    float got[N_PARAMS];
    int failures_before = test_failures;

    reference_run(cfg, shrink, N_STEPS, expected);
    CHECK_EQ_INT(library_run(cfg, shrink, N_STEPS, got), DSC_OK);
    for (size_t i = 0; i < N_PARAMS; i++) {
        CHECK_REL(got[i], expected[i], 1e-6, 1e-3);
        double moved = expected[i] - start_params[i];
        CHECK_NEAR(got[i] - start_params[i], moved,
                   1e-4 * fabs(moved) + 2 * FLT_EPSILON * fabs(expected[i]));
    }
    if (test_failures != failures_before)
        fprintf(stderr, "    (in the case: %s)\n", what);
}

/*
 * How far apart the references of two settings end, relative to the distance travelled: a
 * test of a setting asserts this is large, so that ignoring the setting could not pass.
 */
static double reference_gap(const dsc_optim_config *a, const dsc_optim_config *b,
                            double shrink)
{
    double pa[N_PARAMS], pb[N_PARAMS], gap = 0.0;

    reference_run(a, shrink, N_STEPS, pa);
    reference_run(b, shrink, N_STEPS, pb);
    for (size_t i = 0; i < N_PARAMS; i++) {
        double travelled = fmax(fabs(pa[i] - start_params[i]), 1e-12);
        gap = fmax(gap, fabs(pa[i] - pb[i]) / travelled);
    }
    return gap;
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                              */
/* ------------------------------------------------------------------------------------------ */

TEST(optim_defaults_follow_torch)
{
    dsc_optim_config c;

    dsc_optim_config_default(&c, DSC_OPT_SGD);
    CHECK(c.lr == 1e-3 && c.momentum == 0 && c.dampening == 0 && c.weight_decay == 0);
    dsc_optim_config_default(&c, DSC_OPT_MOMENTUM);
    CHECK(c.lr == 1e-3 && c.momentum == 0.9 && c.dampening == 0);
    dsc_optim_config_default(&c, DSC_OPT_NESTEROV);
    CHECK(c.lr == 1e-3 && c.momentum == 0.9 && c.dampening == 0);
    dsc_optim_config_default(&c, DSC_OPT_ADAGRAD);
    CHECK(c.lr == 1e-2 && c.lr_decay == 0 && c.initial_accumulator == 0 && c.eps == 1e-10);
    dsc_optim_config_default(&c, DSC_OPT_RMSPROP);
    CHECK(c.lr == 1e-2 && c.rho == 0.99 && c.eps == 1e-8 && c.momentum == 0 && !c.centered);
    dsc_optim_config_default(&c, DSC_OPT_ADADELTA);
    CHECK(c.lr == 1.0 && c.rho == 0.9 && c.eps == 1e-6);
    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    CHECK(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
    CHECK(c.weight_decay == 0 && !c.amsgrad);
    dsc_optim_config_default(&c, DSC_OPT_ADAMW);
    CHECK(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.weight_decay == 1e-2);
    dsc_optim_config_default(&c, DSC_OPT_ADAMAX);
    CHECK(c.lr == 2e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
    dsc_optim_config_default(&c, DSC_OPT_NADAM);
    CHECK(c.lr == 2e-3 && c.momentum_decay == 4e-3 && c.eps == 1e-8);

    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        dsc_optim_config_default(&c, (dsc_optimizer)kind);
        CHECK_EQ_INT(c.kind, kind);
        CHECK_EQ_INT(dsc_optim_config_check(&c), DSC_OK);
    }
}

TEST(optim_names_round_trip)
{
    static const char *const names[DSC_OPT_COUNT] = {
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
        "adadelta", "adam", "adamw", "adamax", "nadam",
    };

    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        CHECK(strcmp(dsc_optimizer_name((dsc_optimizer)kind), names[kind]) == 0);
        CHECK_EQ_INT(dsc_optimizer_from_name(names[kind]), kind);
    }
    CHECK_EQ_INT(dsc_optimizer_from_name("adamm"), -1);
    CHECK_EQ_INT(dsc_optimizer_from_name(""), -1);
    CHECK_EQ_INT(dsc_optimizer_from_name(NULL), -1);
    CHECK(dsc_optimizer_name(DSC_OPT_COUNT) != NULL);
}

/* cfg must fail the check with DSC_EINVAL and a message containing expected. */
static void check_rejected(const dsc_optim_config *cfg, const char *expected)
{
    int rc = dsc_optim_config_check(cfg);

    CHECK_EQ_INT(rc, DSC_EINVAL);
    if (!strstr(dsc_last_error(), expected)) {
        test_report(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", dsc_last_error(),
                    expected);
    }
}

TEST(optim_config_check_names_the_field)
{
    dsc_optim_config c;

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    c.lr = -1;
    check_rejected(&c, "optimizer: lr must be a finite number >= 0, got -1");
    c.lr = NAN;
    check_rejected(&c, "lr");
    c.lr = INFINITY;
    check_rejected(&c, "lr");

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    c.beta1 = 1.0;
    check_rejected(&c, "beta1");
    dsc_optim_config_default(&c, DSC_OPT_NADAM);
    c.beta2 = -0.1;
    check_rejected(&c, "beta2");
    dsc_optim_config_default(&c, DSC_OPT_ADAMAX);
    c.beta2 = 1.0;
    check_rejected(&c, "beta2");
    dsc_optim_config_default(&c, DSC_OPT_ADAMW);
    c.eps = 0;
    check_rejected(&c, "eps");
    dsc_optim_config_default(&c, DSC_OPT_ADAGRAD);
    c.eps = -1e-10;
    check_rejected(&c, "eps");
    dsc_optim_config_default(&c, DSC_OPT_ADAGRAD);
    c.lr_decay = -0.5;
    check_rejected(&c, "lr_decay");
    dsc_optim_config_default(&c, DSC_OPT_ADAGRAD);
    c.initial_accumulator = -1;
    check_rejected(&c, "initial_accumulator");
    dsc_optim_config_default(&c, DSC_OPT_RMSPROP);
    c.rho = 1.0;
    check_rejected(&c, "rho");
    dsc_optim_config_default(&c, DSC_OPT_RMSPROP);
    c.momentum = -0.1;
    check_rejected(&c, "momentum");
    dsc_optim_config_default(&c, DSC_OPT_ADADELTA);
    c.rho = -0.1;
    check_rejected(&c, "rho");
    dsc_optim_config_default(&c, DSC_OPT_MOMENTUM);
    c.momentum = 1.0;
    check_rejected(&c, "momentum");
    dsc_optim_config_default(&c, DSC_OPT_MOMENTUM);
    c.dampening = 1.5;
    check_rejected(&c, "dampening");
    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.weight_decay = -1;
    check_rejected(&c, "weight_decay");
    dsc_optim_config_default(&c, DSC_OPT_NESTEROV);
    c.momentum = 0;
    check_rejected(&c, "nesterov");
    dsc_optim_config_default(&c, DSC_OPT_NESTEROV);
    c.dampening = 0.5;
    check_rejected(&c, "dampening");
    dsc_optim_config_default(&c, DSC_OPT_NADAM);
    c.momentum_decay = -1;
    check_rejected(&c, "momentum_decay");
    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.kind = DSC_OPT_COUNT;
    check_rejected(&c, "kind");
    CHECK_EQ_INT(dsc_optim_config_check(NULL), DSC_EINVAL);

    /* The same settings on a kind that does not use them are not errors. */
    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.beta1 = 1.0;
    c.rho = 2.0;
    CHECK_EQ_INT(dsc_optim_config_check(&c), DSC_OK);
}

TEST(optim_new_rejects_bad_config)
{
    dsc_optim_config c;
    int err = 0;

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    c.lr = -1;
    CHECK(dsc_optim_new(&c, N_PARAMS, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "lr must be a finite number >= 0, got -1") != NULL);

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    err = 0;
    CHECK(dsc_optim_new(&c, 0, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "n_params") != NULL);
    CHECK(dsc_optim_new(NULL, N_PARAMS, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* Update rules against the references                                                       */
/* ------------------------------------------------------------------------------------------ */

TEST(optim_every_kind_matches_reference_at_defaults)
{
    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        dsc_optim_config c;
        dsc_optim_config_default(&c, (dsc_optimizer)kind);
        check_reference(&c, 1.0, dsc_optimizer_name((dsc_optimizer)kind));
    }
}

TEST(optim_sgd_momentum_dampening_matches_reference)
{
    dsc_optim_config c, plain;

    dsc_optim_config_default(&c, DSC_OPT_MOMENTUM);
    c.lr = 0.05;
    c.dampening = 0.5;
    c.weight_decay = 0.1;
    check_reference(&c, 1.0, "momentum 0.9, dampening 0.5, weight decay 0.1");
    plain = c;
    plain.dampening = 0;
    CHECK(reference_gap(&c, &plain, 1.0) > 0.05);

    /* Plain SGD with weight decay, and the SGD kind given a momentum. */
    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.lr = 0.1;
    c.weight_decay = 0.2;
    check_reference(&c, 1.0, "sgd, weight decay 0.2");
    c.momentum = 0.5;
    check_reference(&c, 1.0, "sgd, momentum 0.5");
}

TEST(optim_nesterov_matches_reference)
{
    dsc_optim_config c, heavy_ball;

    dsc_optim_config_default(&c, DSC_OPT_NESTEROV);
    c.lr = 0.05;
    c.momentum = 0.8;
    c.weight_decay = 0.01;
    check_reference(&c, 1.0, "nesterov 0.8");
    heavy_ball = c;
    heavy_ball.kind = DSC_OPT_MOMENTUM;
    CHECK(reference_gap(&c, &heavy_ball, 1.0) > 0.05);
}

TEST(optim_amsgrad_matches_reference)
{
    /* Fading gradients and a short beta2 make the second moment fall, where AMSGrad acts. */
    for (int kind = DSC_OPT_ADAM; kind <= DSC_OPT_ADAMW; kind++) {
        dsc_optim_config c, plain;
        dsc_optim_config_default(&c, (dsc_optimizer)kind);
        c.lr = 0.05;
        c.beta2 = 0.5;
        c.amsgrad = 1;
        check_reference(&c, 0.3, kind == DSC_OPT_ADAM ? "adam amsgrad" : "adamw amsgrad");
        plain = c;
        plain.amsgrad = 0;
        CHECK(reference_gap(&c, &plain, 0.3) > 0.05);
    }
}

TEST(optim_centered_rmsprop_with_momentum_matches_reference)
{
    dsc_optim_config c, other;

    dsc_optim_config_default(&c, DSC_OPT_RMSPROP);
    c.lr = 0.01;
    c.rho = 0.9;
    c.momentum = 0.5;
    c.centered = 1;
    c.weight_decay = 0.05;
    check_reference(&c, 1.0, "centered rmsprop, momentum 0.5");
    other = c;
    other.centered = 0;
    CHECK(reference_gap(&c, &other, 1.0) > 0.05);
    other = c;
    other.momentum = 0;
    CHECK(reference_gap(&c, &other, 1.0) > 0.05);

    c.centered = 0;
    check_reference(&c, 1.0, "rmsprop, momentum 0.5");
    c.momentum = 0;
    c.centered = 1;
    check_reference(&c, 1.0, "centered rmsprop");
}

TEST(optim_adagrad_lr_decay_matches_reference)
{
    dsc_optim_config c, other;

    dsc_optim_config_default(&c, DSC_OPT_ADAGRAD);
    c.lr = 0.1;
    c.lr_decay = 0.1;
    c.initial_accumulator = 0.1;
    c.weight_decay = 0.05;
    check_reference(&c, 1.0, "adagrad, lr_decay 0.1, initial accumulator 0.1");
    other = c;
    other.lr_decay = 0;
    CHECK(reference_gap(&c, &other, 1.0) > 0.05);
    other = c;
    other.initial_accumulator = 0;
    CHECK(reference_gap(&c, &other, 1.0) > 0.05);
}

TEST(optim_weight_decay_and_settings_match_reference)
{
    dsc_optim_config c;

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    c.lr = 0.01;
    c.weight_decay = 0.1;
    c.beta1 = 0.8;
    check_reference(&c, 1.0, "adam, weight decay 0.1, beta1 0.8");
    dsc_optim_config_default(&c, DSC_OPT_ADAMW);
    c.lr = 0.01;
    c.weight_decay = 0.5;
    check_reference(&c, 1.0, "adamw, weight decay 0.5");
    dsc_optim_config_default(&c, DSC_OPT_ADAMAX);
    c.weight_decay = 0.1;
    c.beta2 = 0.6;
    check_reference(&c, 0.5, "adamax, weight decay 0.1, beta2 0.6");
    dsc_optim_config_default(&c, DSC_OPT_NADAM);
    c.lr = 0.01;
    c.weight_decay = 0.1;
    c.momentum_decay = 0.5;
    check_reference(&c, 1.0, "nadam, weight decay 0.1, momentum decay 0.5");
    dsc_optim_config_default(&c, DSC_OPT_ADADELTA);
    c.rho = 0.8;
    c.eps = 1e-4;
    c.weight_decay = 0.1;
    check_reference(&c, 1.0, "adadelta, rho 0.8, eps 1e-4, weight decay 0.1");
    dsc_optim_config_default(&c, DSC_OPT_RMSPROP);
    c.weight_decay = 0.1;
    check_reference(&c, 1.0, "rmsprop, weight decay 0.1");
}

/* A large eps makes where each rule adds it (inside or outside the root, to |g|) visible. */
TEST(optim_eps_placement_matches_reference)
{
    static const dsc_optimizer kinds[] = {
        DSC_OPT_ADAGRAD, DSC_OPT_RMSPROP, DSC_OPT_ADADELTA, DSC_OPT_ADAM,
        DSC_OPT_ADAMW,   DSC_OPT_ADAMAX,  DSC_OPT_NADAM,
    };

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        dsc_optim_config c, small;
        dsc_optim_config_default(&c, kinds[k]);
        c.eps = 0.1;
        check_reference(&c, 1.0, dsc_optimizer_name(kinds[k]));
        small = c;
        small.eps = 1e-8;
        CHECK(reference_gap(&c, &small, 1.0) > 0.05);
    }
}

/*
 * With zero gradients, Adam's L2 term is the whole gradient and is normalised by its own
 * scale, so each step moves about lr toward 0 whatever the decay; AdamW's moments stay zero
 * and only the decoupled decay acts: w_t = w_0 (1 - lr wd)^t.
 */
TEST(optim_adam_l2_differs_from_adamw_decay)
{
    const double lr = 0.01, wd = 0.1;
    const float zero[N_PARAMS] = {0};
    float adam[N_PARAMS], adamw[N_PARAMS];
    dsc_optim_config c;

    memcpy(adam, start_params, sizeof adam);
    memcpy(adamw, start_params, sizeof adamw);
    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    c.lr = lr;
    c.weight_decay = wd;
    dsc_optim *opt_adam = dsc_optim_new(&c, N_PARAMS, NULL);
    c.kind = DSC_OPT_ADAMW;
    dsc_optim *opt_adamw = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt_adam && opt_adamw);

    for (int t = 0; t < N_STEPS; t++) {
        CHECK_EQ_INT(dsc_optim_step(opt_adam, adam, zero), DSC_OK);
        CHECK_EQ_INT(dsc_optim_step(opt_adamw, adamw, zero), DSC_OK);
    }

    for (size_t i = 0; i < N_PARAMS; i++) {
        double w0 = start_params[i];
        double decayed = w0;
        for (int t = 0; t < N_STEPS; t++)
            decayed = (double)(float)(decayed * (1 - lr * wd));
        CHECK_REL(adamw[i], decayed, 1e-6, 1e-6);

        double moved = fabs(adam[i] - w0);
        CHECK(fabs(adam[i]) < fabs(w0)); /* toward zero */
        CHECK(moved > 0.97 * N_STEPS * lr && moved < 1.001 * N_STEPS * lr);
        CHECK(moved > 5 * fabs(adamw[i] - w0));
    }
    dsc_optim_free(opt_adam);
    dsc_optim_free(opt_adamw);
}

/* ------------------------------------------------------------------------------------------ */
/* Parameter groups                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* A configuration of kind with weight decay and every buffer its kind can have. */
static void full_config(dsc_optim_config *c, dsc_optimizer kind)
{
    dsc_optim_config_default(c, kind);
    c->weight_decay = 0.1;
    if (kind == DSC_OPT_SGD || kind == DSC_OPT_MOMENTUM) {
        c->momentum = 0.9;
        c->dampening = kind == DSC_OPT_MOMENTUM ? 0.3 : 0.0;
    }
    if (kind == DSC_OPT_RMSPROP) {
        c->momentum = 0.5;
        c->centered = 1;
    }
    if (kind == DSC_OPT_ADAM || kind == DSC_OPT_ADAMW)
        c->amsgrad = 1;
    if (kind == DSC_OPT_ADAGRAD)
        c->lr_decay = 0.05;
}

TEST(optim_frozen_params_stay_bit_identical)
{
    float grads[N_PARAMS];

    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        dsc_optim_config c;
        float frozen_run[N_PARAMS], free_run[N_PARAMS];
        full_config(&c, (dsc_optimizer)kind);
        dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
        dsc_optim *ref = dsc_optim_new(&c, N_PARAMS, NULL);
        REQUIRE(opt && ref);
        CHECK_EQ_INT(dsc_optim_set_range(opt, 1, 2, 1.0, 1), DSC_OK);
        CHECK_EQ_INT(dsc_optim_n_trainable(opt), 2);
        memcpy(frozen_run, start_params, sizeof frozen_run);
        memcpy(free_run, start_params, sizeof free_run);

        for (int t = 1; t <= N_STEPS; t++) {
            for (size_t i = 0; i < N_PARAMS; i++)
                grads[i] = grad_at(t, i, 1.0);
            CHECK_EQ_INT(dsc_optim_step(opt, frozen_run, grads), DSC_OK);
            CHECK_EQ_INT(dsc_optim_step(ref, free_run, grads), DSC_OK);
        }

        /* Frozen: untouched to the bit. The others: moved, exactly as without the freeze. */
        CHECK(memcmp(&frozen_run[1], &start_params[1], 2 * sizeof(float)) == 0);
        CHECK(frozen_run[0] != start_params[0] && frozen_run[3] != start_params[3]);
        CHECK(memcmp(&frozen_run[0], &free_run[0], sizeof(float)) == 0);
        CHECK(memcmp(&frozen_run[3], &free_run[3], sizeof(float)) == 0);
        CHECK(free_run[1] != start_params[1] && free_run[2] != start_params[2]);
        if (test_failures)
            fprintf(stderr, "    (in the case: %s)\n", dsc_optimizer_name((dsc_optimizer)kind));
        dsc_optim_free(opt);
        dsc_optim_free(ref);
    }
}

TEST(optim_lr_scale_half_moves_half_as_far)
{
    dsc_optim_config c;
    float scaled[N_PARAMS], full[N_PARAMS], grads[N_PARAMS];

    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.lr = 0.5;
    dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
    dsc_optim *ref = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt && ref);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 2, 2, 0.5, 0), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), N_PARAMS);
    memcpy(scaled, start_params, sizeof scaled);
    memcpy(full, start_params, sizeof full);

    for (int t = 1; t <= N_STEPS; t++) {
        for (size_t i = 0; i < N_PARAMS; i++)
            grads[i] = grad_at(t, i, 1.0);
        CHECK_EQ_INT(dsc_optim_step(opt, scaled, grads), DSC_OK);
        CHECK_EQ_INT(dsc_optim_step(ref, full, grads), DSC_OK);
    }

    CHECK(memcmp(scaled, full, 2 * sizeof(float)) == 0);
    for (size_t i = 2; i < N_PARAMS; i++) {
        double full_move = full[i] - start_params[i];
        CHECK(fabs(full_move) > 0.1);
        CHECK_REL(scaled[i] - start_params[i], 0.5 * full_move, 1e-5, 1e-6);
    }
    dsc_optim_free(opt);
    dsc_optim_free(ref);
}

TEST(optim_later_range_overrides_earlier)
{
    dsc_optim_config c;
    float params[N_PARAMS], grads[N_PARAMS] = {1, 1, 1, 1};

    dsc_optim_config_default(&c, DSC_OPT_SGD);
    c.lr = 0.5;
    dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt);
    memcpy(params, start_params, sizeof params);

    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, N_PARAMS, 1.0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 1, 1, 2.0, 0), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), 1);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
    CHECK(params[0] == start_params[0] && params[2] == start_params[2]);
    CHECK(params[3] == start_params[3]);
    CHECK_NEAR(params[1], start_params[1] - 0.5 * 2.0, 1e-7);

    /* Thaw [2, 4) with scale 1 over part of nothing frozen earlier; then freeze param 1. */
    CHECK_EQ_INT(dsc_optim_set_range(opt, 2, 2, 1.0, 0), DSC_OK);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 1, 1, 1.0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), 2);
    float before[N_PARAMS];
    memcpy(before, params, sizeof before);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
    CHECK(params[0] == before[0] && params[1] == before[1]);
    CHECK_NEAR(params[2], before[2] - 0.5, 1e-7);
    CHECK_NEAR(params[3], before[3] - 0.5, 1e-7);
    dsc_optim_free(opt);
}

TEST(optim_set_range_rejects_bad_ranges)
{
    dsc_optim_config c;

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 3, 2, 1.0, 1), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 5, 0, 1.0, 1), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 1, SIZE_MAX, 1.0, 1), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, 1, -1.0, 0), DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "lr_scale") != NULL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, 1, NAN, 0), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, 1, INFINITY, 0), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(NULL, 0, 1, 1.0, 0), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), N_PARAMS);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 4, 0, 1.0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), N_PARAMS);
    dsc_optim_free(opt);
}

TEST(optim_segment_table_has_a_limit)
{
    const size_t n = 300;
    dsc_optim_config c;
    int rc = DSC_OK;
    size_t calls = 0, trainable_before = 0;

    dsc_optim_config_default(&c, DSC_OPT_SGD);
    dsc_optim *opt = dsc_optim_new(&c, n, NULL);
    REQUIRE(opt);

    /* Every other parameter frozen: two segments per call, until the table is full. */
    for (calls = 0; calls < n / 2; calls++) {
        trainable_before = dsc_optim_n_trainable(opt);
        rc = dsc_optim_set_range(opt, 2 * calls, 1, 1.0, 1);
        if (rc != DSC_OK)
            break;
    }
    CHECK_EQ_INT(rc, DSC_ELIMIT);
    CHECK(calls >= 16 && calls < 100);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), trainable_before);
    CHECK_EQ_INT(trainable_before, n - calls);

    /* Covering everything with one setting merges the table back into one segment. */
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, n, 1.0, 0), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), n);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 2 * calls, 1, 1.0, 1), DSC_OK);
    dsc_optim_free(opt);
}

TEST(optim_all_frozen_returns_efrozen)
{
    dsc_optim_config c;
    float params[N_PARAMS], grads[N_PARAMS] = {1, -1, 2, -2};

    dsc_optim_config_default(&c, DSC_OPT_ADAMW);
    dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt);
    memcpy(params, start_params, sizeof params);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, 2, 1.0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 2, 2, 0.5, 1), DSC_OK);
    CHECK_EQ_INT(dsc_optim_n_trainable(opt), 0);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_EFROZEN);
    CHECK(strstr(dsc_last_error(), "frozen") != NULL);
    CHECK(memcmp(params, start_params, sizeof params) == 0);
    CHECK_EQ_INT(dsc_optim_steps(opt), 0);

    CHECK_EQ_INT(dsc_optim_step(NULL, params, grads), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_set_range(opt, 0, N_PARAMS, 1.0, 0), DSC_OK);
    CHECK_EQ_INT(dsc_optim_step(opt, NULL, grads), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_step(opt, params, NULL), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
    CHECK_EQ_INT(dsc_optim_steps(opt), 1);
    dsc_optim_free(opt);
}

TEST(optim_set_lr_drives_the_step)
{
    dsc_optim_config c;
    float params[N_PARAMS], grads[N_PARAMS] = {1, -1, 2, -2};

    dsc_optim_config_default(&c, DSC_OPT_SGD);
    dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(opt);
    CHECK(dsc_optim_lr(opt) == 1e-3);
    dsc_optim_set_lr(opt, 0.25);
    CHECK(dsc_optim_lr(opt) == 0.25);
    memcpy(params, start_params, sizeof params);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
    for (size_t i = 0; i < N_PARAMS; i++)
        CHECK(params[i] == (float)(start_params[i] - 0.25 * grads[i]));

    dsc_optim_set_lr(opt, -1.0);
    CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_EINVAL);
    CHECK_EQ_INT(dsc_optim_steps(opt), 1);
    dsc_optim_free(opt);
}

/* ------------------------------------------------------------------------------------------ */
/* State image                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void fill_grads(float *grads, int t)
{
    for (size_t i = 0; i < N_PARAMS; i++)
        grads[i] = grad_at(t, i, 0.9);
}

/* A new optimizer of cfg with a changed rate and parameter groups, as a restore must bring. */
static dsc_optim *grouped_optim(const dsc_optim_config *cfg)
{
    dsc_optim *opt = dsc_optim_new(cfg, N_PARAMS, NULL);

    if (!opt)
        return NULL;
    dsc_optim_set_lr(opt, cfg->lr * 1.5);
    dsc_optim_set_range(opt, 1, 1, 0.5, 0);
    dsc_optim_set_range(opt, 3, 1, 1.0, 1);
    return opt;
}

TEST(optim_state_restore_continues_bit_for_bit)
{
    const int total = 8, saved_at = 4;
    float grads[N_PARAMS];

    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        dsc_optim_config c;
        float straight[N_PARAMS], resumed[N_PARAMS], fresh[N_PARAMS];
        full_config(&c, (dsc_optimizer)kind);

        /* Uninterrupted. */
        dsc_optim *a = grouped_optim(&c);
        REQUIRE(a);
        memcpy(straight, start_params, sizeof straight);
        for (int t = 1; t <= total; t++) {
            fill_grads(grads, t);
            CHECK_EQ_INT(dsc_optim_step(a, straight, grads), DSC_OK);
        }

        /* Interrupted: save after saved_at steps, restore into a plain new optimizer. */
        dsc_optim *b = grouped_optim(&c);
        REQUIRE(b);
        memcpy(resumed, start_params, sizeof resumed);
        for (int t = 1; t <= saved_at; t++) {
            fill_grads(grads, t);
            CHECK_EQ_INT(dsc_optim_step(b, resumed, grads), DSC_OK);
        }
        size_t size = dsc_optim_state_size(b);
        unsigned char *image = malloc(size);
        REQUIRE(image);
        CHECK_EQ_INT(dsc_optim_state_save(b, image, size), DSC_OK);
        dsc_optim_free(b);

        dsc_optim *restored = dsc_optim_new(&c, N_PARAMS, NULL);
        dsc_optim *unrestored = dsc_optim_new(&c, N_PARAMS, NULL);
        REQUIRE(restored && unrestored);
        CHECK_EQ_INT(dsc_optim_state_size(restored), size);
        CHECK_EQ_INT(dsc_optim_state_load(restored, image, size), DSC_OK);
        CHECK_EQ_INT(dsc_optim_steps(restored), saved_at);
        CHECK(dsc_optim_lr(restored) == c.lr * 1.5);
        CHECK_EQ_INT(dsc_optim_n_trainable(restored), N_PARAMS - 1);
        memcpy(fresh, resumed, sizeof fresh);
        for (int t = saved_at + 1; t <= total; t++) {
            fill_grads(grads, t);
            CHECK_EQ_INT(dsc_optim_step(restored, resumed, grads), DSC_OK);
            CHECK_EQ_INT(dsc_optim_step(unrestored, fresh, grads), DSC_OK);
        }

        CHECK(memcmp(resumed, straight, sizeof straight) == 0);
        CHECK_EQ_INT(dsc_optim_steps(restored), total);
        /* Without the restore the continuation differs: the image carried what mattered. */
        CHECK(memcmp(fresh, straight, sizeof straight) != 0);
        if (test_failures)
            fprintf(stderr, "    (in the case: %s)\n", dsc_optimizer_name((dsc_optimizer)kind));

        free(image);
        dsc_optim_free(a);
        dsc_optim_free(restored);
        dsc_optim_free(unrestored);
    }
}

TEST(optim_state_load_rejects_bad_images)
{
    dsc_optim_config c;
    float params[N_PARAMS], grads[N_PARAMS];

    dsc_optim_config_default(&c, DSC_OPT_ADAM);
    dsc_optim *src = dsc_optim_new(&c, N_PARAMS, NULL);
    dsc_optim *dst = dsc_optim_new(&c, N_PARAMS, NULL);
    REQUIRE(src && dst);
    memcpy(params, start_params, sizeof params);
    for (int t = 1; t <= 3; t++) {
        fill_grads(grads, t);
        CHECK_EQ_INT(dsc_optim_step(src, params, grads), DSC_OK);
    }

    size_t size = dsc_optim_state_size(src);
    unsigned char *image = calloc(1, size + 1);
    unsigned char *before = malloc(size);
    unsigned char *after = malloc(size);
    REQUIRE(image && before && after);
    CHECK_EQ_INT(dsc_optim_state_save(src, image, size - 1), DSC_ESHAPE);
    CHECK_EQ_INT(dsc_optim_state_save(src, image, size), DSC_OK);
    CHECK_EQ_INT(dsc_optim_state_save(dst, before, size), DSC_OK);

    /* Wrong sizes. */
    CHECK_EQ_INT(dsc_optim_state_load(dst, image, size - 1), DSC_ESHAPE);
    CHECK_EQ_INT(dsc_optim_state_load(dst, image, size + 1), DSC_ESHAPE);
    CHECK(dsc_optim_state_load(dst, image, 10) < 0);
    CHECK_EQ_INT(dsc_optim_state_load(dst, NULL, size), DSC_EINVAL);

    /* A corrupted magic number. */
    image[0] ^= 0x40;
    CHECK_EQ_INT(dsc_optim_state_load(dst, image, size), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "magic") != NULL);
    image[0] ^= 0x40;

    /* The same buffers but another kind, another parameter count, other buffers. */
    dsc_optim_config other = c;
    other.kind = DSC_OPT_NADAM;
    dsc_optim *nadam = dsc_optim_new(&other, N_PARAMS, NULL);
    other = c;
    other.amsgrad = 1;
    dsc_optim *amsgrad = dsc_optim_new(&other, N_PARAMS, NULL);
    dsc_optim *larger = dsc_optim_new(&c, N_PARAMS + 1, NULL);
    REQUIRE(nadam && amsgrad && larger);
    CHECK_EQ_INT(dsc_optim_state_size(nadam), size);
    CHECK_EQ_INT(dsc_optim_state_load(nadam, image, size), DSC_EFORMAT);
    CHECK_EQ_INT(dsc_optim_state_load(amsgrad, image, size), DSC_ESHAPE);
    CHECK_EQ_INT(dsc_optim_state_load(larger, image, size), DSC_ESHAPE);
    CHECK_EQ_INT(dsc_optim_steps(nadam) + dsc_optim_steps(amsgrad) + dsc_optim_steps(larger), 0);

    /* Every rejection left dst as it was; the intact image still loads. */
    CHECK_EQ_INT(dsc_optim_state_save(dst, after, size), DSC_OK);
    CHECK(memcmp(before, after, size) == 0);
    CHECK_EQ_INT(dsc_optim_state_load(dst, image, size), DSC_OK);
    CHECK_EQ_INT(dsc_optim_steps(dst), 3);

    free(image);
    free(before);
    free(after);
    dsc_optim_free(src);
    dsc_optim_free(dst);
    dsc_optim_free(nadam);
    dsc_optim_free(amsgrad);
    dsc_optim_free(larger);
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static long alloc_count;
static long alloc_budget = -1; /* allocations allowed before failing; -1: unlimited */

static void *counting_alloc(size_t size, void *ctx)
{
    (void)ctx;
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    alloc_count++;
    return malloc(size);
}

static void counting_release(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

TEST(optim_step_never_allocates)
{
    float params[N_PARAMS], grads[N_PARAMS];

    dsc_set_allocator(counting_alloc, counting_release, NULL);
    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        dsc_optim_config c;
        full_config(&c, (dsc_optimizer)kind);
        dsc_optim *opt = dsc_optim_new(&c, N_PARAMS, NULL);
        REQUIRE(opt);
        CHECK(alloc_count > 0);
        memcpy(params, start_params, sizeof params);
        alloc_count = 0;
        CHECK_EQ_INT(dsc_optim_set_range(opt, 0, 1, 0.5, 0), DSC_OK);
        for (int t = 1; t <= N_STEPS; t++) {
            fill_grads(grads, t);
            CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
        }
        CHECK_EQ_INT(alloc_count, 0);
        dsc_optim_free(opt);
    }
    dsc_set_allocator(NULL, NULL, NULL);
}

TEST(optim_new_survives_allocation_failure)
{
    dsc_optim_config c;
    int err = 0;
    dsc_optim *opt = NULL;
    long budget;

    full_config(&c, DSC_OPT_ADAM);
    dsc_set_allocator(counting_alloc, counting_release, NULL);
    for (budget = 0; budget < 20 && !opt; budget++) {
        alloc_budget = budget;
        opt = dsc_optim_new(&c, N_PARAMS, &err);
        if (!opt)
            CHECK_EQ_INT(err, DSC_ENOMEM);
    }
    alloc_budget = -1;
    CHECK(opt != NULL);
    CHECK(budget > 1); /* the optimizer and its buffers: several allocations to fail */
    dsc_optim_free(opt);
    dsc_set_allocator(NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Clipping                                                                                   */
/* ------------------------------------------------------------------------------------------ */

TEST(optim_clip_norm_scales_only_above_max)
{
    float g[3] = {3.0f, -4.0f, 0.0f};

    CHECK_NEAR(dsc_clip_norm(g, 3, 10.0), 5.0, 1e-12);
    CHECK(g[0] == 3.0f && g[1] == -4.0f && g[2] == 0.0f);
    CHECK_NEAR(dsc_clip_norm(g, 3, 5.0), 5.0, 1e-12);
    CHECK(g[0] == 3.0f && g[1] == -4.0f);

    CHECK_NEAR(dsc_clip_norm(g, 3, 1.0), 5.0, 1e-12);
    CHECK_NEAR(g[0], 0.6, 1e-7);
    CHECK_NEAR(g[1], -0.8, 1e-7);
    CHECK(g[2] == 0.0f);
    CHECK_NEAR(dsc_clip_norm(g, 3, 100.0), 1.0, 1e-7);
}

TEST(optim_clip_norm_leaves_disabled_and_nonfinite_alone)
{
    float g[2] = {3.0f, 4.0f};

    CHECK_NEAR(dsc_clip_norm(g, 2, 0.0), 5.0, 1e-12);
    CHECK_NEAR(dsc_clip_norm(g, 2, -1.0), 5.0, 1e-12);
    CHECK_NEAR(dsc_clip_norm(g, 2, NAN), 5.0, 1e-12);
    CHECK_NEAR(dsc_clip_norm(g, 2, INFINITY), 5.0, 1e-12);
    CHECK(g[0] == 3.0f && g[1] == 4.0f);

    float h[2] = {INFINITY, 1.0f};
    CHECK(isinf(dsc_clip_norm(h, 2, 1.0)));
    CHECK(isinf(h[0]) && h[1] == 1.0f);
    CHECK(dsc_clip_norm(NULL, 0, 1.0) == 0.0);
}

/* Many small terms: a float accumulator drifts far from the double norm, which is exact here. */
TEST(optim_clip_norm_accumulates_in_double)
{
    const size_t n = (size_t)1 << 22;
    float *g = malloc(n * sizeof *g);
    double sum = 0.0;

    REQUIRE(g);
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)(0.01 + 1e-3 * (double)(i % 7));
        sum += (double)g[i] * (double)g[i];
    }
    CHECK_REL(dsc_clip_norm(g, n, 0.0), sqrt(sum), 1e-12, 0.0);

    double max_norm = 0.5 * sqrt(sum);
    CHECK_REL(dsc_clip_norm(g, n, max_norm), sqrt(sum), 1e-12, 0.0);
    CHECK_REL(dsc_clip_norm(g, n, 0.0), max_norm, 1e-6, 0.0);
    free(g);
}

TEST(optim_clip_value_clamps)
{
    float g[6] = {-3.0f, -0.5f, 0.0f, 0.75f, 2.0f, NAN};

    dsc_clip_value(g, 6, 1.0f);
    CHECK(g[0] == -1.0f && g[1] == -0.5f && g[2] == 0.0f && g[3] == 0.75f && g[4] == 1.0f);
    CHECK(isnan(g[5]));

    dsc_clip_value(g, 5, 0.6f);
    CHECK(g[0] == -0.6f && g[1] == -0.5f && g[3] == 0.6f && g[4] == 0.6f);

    dsc_clip_value(g, 5, -1.0f); /* a negative limit leaves g alone */
    CHECK(g[0] == -0.6f && g[4] == 0.6f);
    dsc_clip_value(g, 5, 0.0f);
    CHECK(g[0] == 0.0f && g[1] == 0.0f && g[4] == 0.0f);
}

/* ------------------------------------------------------------------------------------------ */
/* Large steps: blocks shared among threads, and the undo of the divergence guard             */
/* ------------------------------------------------------------------------------------------ */

/* Enough parameters for the dense step to share its blocks among threads; not a round size. */
#define BIG_PARAMS 200003
/* The serial copies: each updates a slice of this many parameters on its own. */
#define SLICE_PARAMS 1000

/* Threads the library takes when asked for two: one in a build without OpenMP. */
#ifdef _OPENMP
#define TWO_THREADS 2
#else
#define TWO_THREADS 1
#endif

static float big_grad(int t, size_t i)
{
    return grad_at(t, i % 17, 1.0) * (float)(1.0 + (double)(i % 1013) / 1013.0);
}

/* The weights after 3 steps of kind over BIG_PARAMS parameters at a number of threads. */
static float *big_run(dsc_optimizer kind, int threads)
{
    dsc_optim_config c;
    full_config(&c, kind);
    dsc_optim *opt = dsc_optim_new(&c, BIG_PARAMS, NULL);
    float *params = malloc(BIG_PARAMS * sizeof(float));
    float *grads = malloc(BIG_PARAMS * sizeof(float));
    int ok = opt && params && grads && dsc_set_threads(threads) == DSC_OK;

    for (size_t i = 0; ok && i < BIG_PARAMS; i++)
        params[i] = start_params[i % N_PARAMS];
    for (int t = 1; ok && t <= 3; t++) {
        for (size_t i = 0; i < BIG_PARAMS; i++)
            grads[i] = big_grad(t, i);
        ok = dsc_optim_step(opt, params, grads) == DSC_OK;
    }
    dsc_set_threads(1);
    dsc_optim_free(opt);
    free(grads);
    if (!ok) {
        free(params);
        return NULL;
    }
    return params;
}

/* The same 3 steps, each slice of SLICE_PARAMS parameters by an optimizer of its own. */
static float *sliced_run(dsc_optimizer kind)
{
    dsc_optim_config c;
    full_config(&c, kind);
    float *params = malloc(BIG_PARAMS * sizeof(float));
    float *grads = malloc(BIG_PARAMS * sizeof(float));
    int ok = params && grads;

    for (size_t i = 0; ok && i < BIG_PARAMS; i++)
        params[i] = start_params[i % N_PARAMS];
    for (size_t first = 0; ok && first < BIG_PARAMS; first += SLICE_PARAMS) {
        size_t n = BIG_PARAMS - first < SLICE_PARAMS ? BIG_PARAMS - first : SLICE_PARAMS;
        dsc_optim *opt = dsc_optim_new(&c, n, NULL);
        ok = opt != NULL;
        for (int t = 1; ok && t <= 3; t++) {
            for (size_t i = 0; i < n; i++)
                grads[first + i] = big_grad(t, first + i);
            ok = dsc_optim_step(opt, params + first, grads + first) == DSC_OK;
        }
        dsc_optim_free(opt);
    }
    free(grads);
    if (!ok) {
        free(params);
        return NULL;
    }
    return params;
}

/*
 * Every rule updates each parameter from its own values only, so a step of 200,003
 * parameters shared among threads in blocks gives, bit for bit, what one thread gives and
 * what small optimizers stepping one slice each give.
 */
TEST(optim_large_step_is_the_same_on_any_number_of_threads)
{
    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        float *one = big_run((dsc_optimizer)kind, 1);
        float *two = big_run((dsc_optimizer)kind, TWO_THREADS);
        float *sliced = sliced_run((dsc_optimizer)kind);
        REQUIRE(one && two && sliced);

        CHECK(memcmp(one, two, BIG_PARAMS * sizeof(float)) == 0);
        CHECK(memcmp(one, sliced, BIG_PARAMS * sizeof(float)) == 0);
        CHECK(one[BIG_PARAMS - 1] != start_params[(BIG_PARAMS - 1) % N_PARAMS]);
        if (test_failures)
            fprintf(stderr, "    (in the case: %s)\n", dsc_optimizer_name((dsc_optimizer)kind));
        free(one);
        free(two);
        free(sliced);
    }
}

/* A step of opt kept in keep, then undone: the weights and the state image as before. */
static void check_undo(dsc_optim *opt, float *params, float *grads, size_t n, int state)
{
    size_t image_size = dsc_optim_state_size(opt);
    unsigned char *before = malloc(image_size), *after = malloc(image_size);
    float *start = malloc(n * sizeof(float));
    dsc_optim_keep keep = {.state = state};
    keep.values = malloc(dsc__optim_keep_floats(opt, state) * sizeof(float));
    REQUIRE(before && after && start && keep.values);

    CHECK_EQ_INT(dsc_optim_state_save(opt, before, image_size), DSC_OK);
    memcpy(start, params, n * sizeof(float));
    bool finite = false;
    CHECK_EQ_INT(dsc__optim_step_kept(opt, params, grads, &keep, &finite), DSC_OK);
    CHECK(finite);
    CHECK(memcmp(start, params, n * sizeof(float)) != 0);
    CHECK_EQ_INT(dsc_optim_state_save(opt, after, image_size), DSC_OK);
    CHECK(memcmp(before, after, image_size) != 0);

    dsc__optim_undo(opt, params, &keep);
    CHECK(memcmp(start, params, n * sizeof(float)) == 0);
    CHECK_EQ_INT(dsc_optim_state_save(opt, after, image_size), DSC_OK);
    if (state)
        CHECK(memcmp(before, after, image_size) == 0);

    /* An infinite gradient at the last parameter: the step says its weights are not all
     * finite, and the undo still brings everything back. */
    grads[n - 1] = INFINITY;
    CHECK_EQ_INT(dsc__optim_step_kept(opt, params, grads, &keep, &finite), DSC_OK);
    CHECK(!finite);
    dsc__optim_undo(opt, params, &keep);
    CHECK(memcmp(start, params, n * sizeof(float)) == 0);
    grads[n - 1] = 0.5f;

    free(keep.values);
    free(start);
    free(before);
    free(after);
}

/*
 * dsc__optim_step_kept, the divergence guard's step, keeps what it changes: the undo puts
 * back the weights and (with state) the whole optimizer state to the bit, for every rule,
 * on one thread and shared among two, and it reports a weight that is not finite.
 */
TEST(optim_kept_step_is_undone_to_the_bit)
{
    size_t sizes[] = {N_PARAMS, BIG_PARAMS};

    for (int kind = 0; kind < DSC_OPT_COUNT; kind++) {
        for (size_t s = 0; s < 2; s++) {
            for (int state = 0; state <= 1; state++) {
                size_t n = sizes[s];
                dsc_optim_config c;
                full_config(&c, (dsc_optimizer)kind);
                dsc_optim *opt = dsc_optim_new(&c, n, NULL);
                float *params = malloc(n * sizeof(float));
                float *grads = malloc(n * sizeof(float));
                REQUIRE(opt && params && grads);
                REQUIRE(dsc_set_threads(TWO_THREADS) == DSC_OK);
                for (size_t i = 0; i < n; i++) {
                    params[i] = start_params[i % N_PARAMS];
                    grads[i] = big_grad(1, i);
                }
                /* One step first, so that the moments are not all zero. */
                CHECK_EQ_INT(dsc_optim_step(opt, params, grads), DSC_OK);
                for (size_t i = 0; i < n; i++)
                    grads[i] = big_grad(2, i);
                check_undo(opt, params, grads, n, state);
                dsc_set_threads(1);
                if (test_failures)
                    fprintf(stderr, "    (in the case: %s, %zu parameters, state %d)\n",
                            dsc_optimizer_name((dsc_optimizer)kind), n, state);
                dsc_optim_free(opt);
                free(params);
                free(grads);
            }
        }
    }
}

/* A value that is not finite is found wherever it is, on one thread and on two. */
TEST(optim_all_finite_finds_one_bad_value_anywhere)
{
    float *a = calloc(BIG_PARAMS, sizeof(float));
    size_t places[] = {0, 8191, 8192, 100000, BIG_PARAMS - 1};
    float bad[] = {NAN, INFINITY, -INFINITY};
    REQUIRE(a);

    for (int threads = 1; threads <= TWO_THREADS; threads++) {
        REQUIRE(dsc_set_threads(threads) == DSC_OK);
        CHECK(dsc__all_finite(a, BIG_PARAMS));
        for (size_t p = 0; p < sizeof places / sizeof places[0]; p++) {
            for (size_t b = 0; b < 3; b++) {
                a[places[p]] = bad[b];
                CHECK(!dsc__all_finite(a, BIG_PARAMS));
                a[places[p]] = FLT_MAX;
                CHECK(dsc__all_finite(a, BIG_PARAMS));
                a[places[p]] = 0.0f;
            }
        }
    }
    dsc_set_threads(1);
    free(a);
}
