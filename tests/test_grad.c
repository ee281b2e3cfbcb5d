/*
 * test_grad.c - backpropagation against central finite differences.
 *
 * Tolerances. The scalar activation derivatives are checked in double with a step of 1e-5:
 * agreement to 1e-6 relative. The model computes in float, so its finite differences use a
 * step of 1e-3 (linear models) or 3e-3 (networks) on a float weight and the loss accumulated
 * in double; each component must agree to 2 % relative (with an absolute floor of 2e-4), and
 * the whole gradient to 1 % in Euclidean norm. Each check also fails if the backpropagated
 * gradient is all zeros.
 *
 * The log-loss has its own exp and log1p (loss.c); they are checked against the C library's,
 * in double, to 4 units in the last place (2^-50 relative) where the result is a normal
 * number, and to 1e-300 absolute where the C library's result is below that.
 */
#include "test.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* A small data set: n rows of k features in [-1, 1], labels and targets from a formula. */
typedef struct {
    float x[64 * 8];
    int32_t label[64];
    float y[64 * 3];
    float weight[64];
    dsc_data data;
} toy_set;

static void make_toy(toy_set *t, size_t n, size_t k, size_t n_classes, size_t n_targets,
                     uint64_t seed)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    for (size_t i = 0; i < n * k; i++)
        t->x[i] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
    for (size_t r = 0; r < n; r++) {
        t->label[r] = (int32_t)(r % n_classes);
        for (size_t j = 0; j < n_targets; j++)
            t->y[r * n_targets + j] = (float)(t->x[r * k] * (double)(j + 1) - 0.3 * (double)j);
        t->weight[r] = (float)(0.5 + dsc_rng_uniform(&rng));
    }
    t->data = (dsc_data){.n_rows = n, .n_features = k, .x = t->x, .label = t->label,
                         .y = t->y, .n_targets = n_targets};
}

/*
 * Compare the backpropagated gradient of model on data with central differences; returns
 * the number of failed components (each reported) plus 1000 if the norm check fails.
 */
static int check_gradient(dsc_model *m, const dsc_data *d, const dsc_objective *obj, double h)
{
    size_t n = dsc_model_n_params(m), n_rows = d->n_rows;
    uint32_t rows[64];
    for (size_t r = 0; r < n_rows; r++)
        rows[r] = (uint32_t)r;

    double loss;
    if (dsc_model_loss_grad(m, d, rows, n_rows, obj, &loss) != DSC_OK)
        return 10000;
    float *backprop = malloc(n * sizeof(float));
    memcpy(backprop, dsc_model_grads(m), n * sizeof(float));

    float *p = dsc_model_params(m);
    int failures = 0;
    double diff_sq = 0.0, norm_sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        float saved = p[i];
        double plus, minus;
        p[i] = (float)(saved + h);
        double up = p[i];
        dsc_model_loss(m, d, rows, n_rows, obj, &plus);
        p[i] = (float)(saved - h);
        double down = p[i];
        dsc_model_loss(m, d, rows, n_rows, obj, &minus);
        p[i] = saved;

        double fd = (plus - minus) / (up - down), bp = backprop[i];
        double scale = fmax(fabs(fd), fabs(bp));
        diff_sq += (fd - bp) * (fd - bp);
        norm_sq += bp * bp;
        if (fabs(fd - bp) > 2e-2 * scale + 2e-4) {
            if (failures++ < 5)
                fprintf(stderr, "    parameter %zu: backprop %.8g, finite difference %.8g\n", i,
                        bp, fd);
        }
    }
    free(backprop);
    if (norm_sq == 0.0) {
        fprintf(stderr, "    the gradient is all zeros\n");
        return failures + 1000;
    }
    if (sqrt(diff_sq / norm_sq) > 1e-2) {
        fprintf(stderr, "    relative error of the whole gradient %g\n", sqrt(diff_sq / norm_sq));
        failures += 1000;
    }
    return failures;
}

/* Random weights and biases, so that no gradient is zero by symmetry. */
static void randomise(dsc_model *m, uint64_t seed, double scale)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    float *p = dsc_model_params(m);
    for (size_t i = 0; i < dsc_model_n_params(m); i++)
        p[i] = (float)(scale * (2.0 * dsc_rng_uniform(&rng) - 1.0));
}

TEST(grad_activation_derivatives_match_finite_differences)
{
    const double points[] = {-3.1, -1.3, -0.4, -0.05, 0.07, 0.6, 1.7, 4.2};
    for (int act = 0; act < DSC_ACT_COUNT; act++) {
        for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
            double x = points[i], h = 1e-5;
            double fd = (dsc_activation_value(act, 0, x + h) -
                         dsc_activation_value(act, 0, x - h)) / (2 * h);
            double exact = dsc_activation_derivative(act, 0, x);
            CHECK_REL(exact, fd, 1e-6, 1e-9);
        }
    }
}

TEST(grad_activation_values_at_known_points)
{
    CHECK_NEAR(dsc_activation_value(DSC_ACT_SIGMOID, 0, 0.0), 0.5, 1e-15);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_SIGMOID, 0, -800.0), 0.0, 1e-300);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_LEAKY_RELU, 0, -2.0), -0.02, 1e-15);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_ELU, 0, -1.0), exp(-1.0) - 1.0, 1e-15);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_GELU, 0, 1.0), 0.8413447460685429, 1e-12);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_SOFTPLUS, 0, 800.0), 800.0, 1e-9);
    CHECK_NEAR(dsc_activation_value(DSC_ACT_SOFTPLUS, 0, 0.0), log(2.0), 1e-15);
    /* Each derivative is its own: no activation borrows another's. */
    for (int a = 0; a < DSC_ACT_COUNT; a++) {
        for (int b = a + 1; b < DSC_ACT_COUNT; b++) {
            double da = dsc_activation_derivative(a, 0, -0.7);
            double db = dsc_activation_derivative(b, 0, -0.7);
            CHECK(fabs(da - db) > 1e-6);
        }
    }
}

TEST(grad_every_activation_in_a_two_hidden_layer_network)
{
    toy_set t;
    make_toy(&t, 12, 4, 3, 1, 1);
    for (int act = 0; act < DSC_ACT_COUNT; act++) {
        dsc_model_config cfg;
        dsc_model_config_init(&cfg, 4, 3, DSC_LOSS_SOFTMAX);
        cfg.n_hidden = 2;
        cfg.hidden[0] = 6;
        cfg.hidden[1] = 3;
        cfg.activation[0] = act;
        cfg.activation[1] = act;
        dsc_model *m = dsc_model_new(&cfg, NULL);
        REQUIRE(m);
        randomise(m, 10 + (uint64_t)act, 0.8);
        int failures = check_gradient(m, &t.data, NULL, 3e-3);
        if (failures)
            fprintf(stderr, "    activation %s\n", dsc_activation_name(act));
        CHECK_EQ_INT(failures, 0);
        dsc_model_free(m);
    }
}

TEST(grad_every_loss_on_a_linear_model)
{
    toy_set t;
    for (int loss = 0; loss < DSC_LOSS_COUNT; loss++) {
        int classifier = dsc_loss_is_classification(loss);
        /* classification losses on 2 classes (one logit) and on 3 (one-vs-rest or softmax) */
        for (size_t outputs = classifier ? 2 : 1; outputs <= 3; outputs++) {
            make_toy(&t, 16, 5, outputs, outputs, 2);
            dsc_model_config cfg;
            dsc_model_config_init(&cfg, 5, outputs, loss);
            dsc_model *m = dsc_model_new(&cfg, NULL);
            REQUIRE(m);
            randomise(m, 3, 1.5);
            int failures = check_gradient(m, &t.data, NULL, 1e-3);
            if (failures)
                fprintf(stderr, "    loss %s, %zu outputs\n", dsc_loss_name(loss), outputs);
            CHECK_EQ_INT(failures, 0);
            dsc_model_free(m);
        }
    }
}

TEST(grad_regularisation_and_weights)
{
    toy_set t;
    make_toy(&t, 16, 5, 3, 1, 4);
    const dsc_objective objectives[] = {
        {.l2 = 0.3}, {.l1 = 0.2}, {.l1 = 0.1, .l2 = 0.2} /* elastic net */,
    };
    const float class_weight[3] = {0.5f, 2.0f, 1.25f};

    for (size_t i = 0; i < 4; i++) {
        dsc_model_config cfg;
        dsc_model_config_init(&cfg, 5, 3, DSC_LOSS_SOFTMAX);
        cfg.n_hidden = 1;
        cfg.hidden[0] = 4;
        cfg.activation[0] = DSC_ACT_TANH;
        dsc_model *m = dsc_model_new(&cfg, NULL);
        REQUIRE(m);
        randomise(m, 5 + i, 1.0);
        dsc_objective obj = {0};
        if (i < 3) {
            obj = objectives[i];
        } else { /* sample weights and class weights together */
            obj.class_weight = class_weight;
            t.data.weight = t.weight;
        }
        CHECK_EQ_INT(check_gradient(m, &t.data, &obj, 3e-3), 0);
        dsc_model_free(m);
    }
}

TEST(grad_penalty_leaves_biases_alone)
{
    toy_set t;
    make_toy(&t, 8, 3, 2, 1, 6);
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 3, 1, DSC_LOSS_SQUARED);
    dsc_model *m = dsc_model_new(&cfg, NULL);
    REQUIRE(m);
    randomise(m, 7, 1.0);
    uint32_t rows[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    double plain, penalised;
    dsc_objective obj = {.l1 = 0.5, .l2 = 2.0};
    REQUIRE(dsc_model_loss(m, &t.data, rows, 8, NULL, &plain) == DSC_OK);
    REQUIRE(dsc_model_loss(m, &t.data, rows, 8, &obj, &penalised) == DSC_OK);

    const float *w = dsc_model_params(m); /* 3 weights, then the bias */
    double l1 = 0.0, l2 = 0.0;
    for (int i = 0; i < 3; i++) {
        l1 += fabs(w[i]);
        l2 += (double)w[i] * w[i];
    }
    CHECK_REL(penalised - plain, 0.5 * l1 + 0.5 * 2.0 * l2, 1e-12, 1e-12);
    dsc_model_free(m);
}

TEST(grad_losses_have_stated_values)
{
    /* One row, one logit: check the documented formulas directly. */
    float x[1] = {1.0f}, y[1] = {0.5f};
    int32_t label[1] = {1};
    dsc_data d = {.n_rows = 1, .n_features = 1, .x = x, .y = y, .n_targets = 1,
                  .label = label};
    struct {
        dsc_loss loss;
        size_t outputs;
        float z;
        double expected;
    } cases[] = {
        {DSC_LOSS_SQUARED, 1, 2.0f, 2.25},          /* (0.5 - 2)^2 */
        {DSC_LOSS_HUBER, 1, 3.0f, 2.0},             /* delta (|r| - delta / 2) */
        {DSC_LOSS_EPS_INSENSITIVE, 1, 1.0f, 0.4},   /* |r| - 0.1 */
        {DSC_LOSS_LOG, 2, -1000.0f, 1000.0},        /* log(1 + e^1000), no overflow */
        {DSC_LOSS_LOG, 2, 0.0f, log(2.0)},
        {DSC_LOSS_HINGE, 2, 0.25f, 0.75},
        {DSC_LOSS_SQUARED_HINGE, 2, 0.25f, 0.5625},
        {DSC_LOSS_MODIFIED_HUBER, 2, -3.0f, 12.0},  /* -4 t z below -1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsc_model_config cfg;
        dsc_model_config_init(&cfg, 1, cases[i].outputs, cases[i].loss);
        dsc_model *m = dsc_model_new(&cfg, NULL);
        REQUIRE(m);
        dsc_model_params(m)[1] = cases[i].z; /* weight 0, bias z */
        double loss;
        REQUIRE(dsc_model_loss(m, &d, NULL, 1, NULL, &loss) == DSC_OK);
        CHECK_REL(loss, cases[i].expected, 1e-6, 1e-12);
        dsc_model_free(m);
    }
}

TEST(grad_softmax_is_stable_for_huge_logits)
{
    float x[1] = {1.0f};
    int32_t label[1] = {2};
    dsc_data d = {.n_rows = 1, .n_features = 1, .x = x, .label = label};
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 1, 3, DSC_LOSS_SOFTMAX);
    dsc_model *m = dsc_model_new(&cfg, NULL);
    REQUIRE(m);
    float *p = dsc_model_params(m); /* 3 weights, then 3 biases */
    p[3] = 1e30f;
    p[4] = 0.0f;
    p[5] = 1e30f - 1e24f;
    double loss;
    REQUIRE(dsc_model_loss_grad(m, &d, NULL, 1, NULL, &loss) == DSC_OK);
    CHECK(isfinite(loss));
    CHECK(loss > 0.0);
    dsc_model_free(m);
}

/* The log-loss and its derivative by the C library's exp and log1p. */
static double libm_log_loss(double m, double *grad)
{
    if (m > 0.0) {
        double e = exp(-m);
        *grad = -e / (1.0 + e);
        return log1p(e);
    }
    double e = exp(m);
    *grad = -1.0 / (1.0 + e);
    return -m + log1p(e);
}

/* How far a is from b, in units of 2^-52 of |b|; or 0 when both are below 1e-300 apart. */
static double relative_units(double a, double b)
{
    if (fabs(b) < 1e-300)
        return fabs(a - b) <= 1e-300 ? 0.0 : INFINITY;
    return fabs(a - b) / (fabs(b) * DBL_EPSILON);
}

TEST(grad_log_loss_margins_agree_with_the_c_library)
{
    /* 100,000 margins evenly over [-750, 750], then 100,000 of magnitudes 1e-20 to 1e5. */
    enum { N = 200000 };
    static double margin[N], loss[N], grad[N];
    for (size_t i = 0; i < N / 2; i++)
        margin[i] = -750.0 + 1500.0 * (double)i / (N / 2);
    for (size_t i = 0; i < N / 2; i++)
        margin[N / 2 + i] = (i % 2 ? 1.0 : -1.0) * pow(10.0, -20.0 + 25.0 * (double)i / (N / 2));
    dsc__log_loss_margins(margin, N, loss, grad);

    double worst_loss = 0.0, worst_grad = 0.0, worst_loss_at = 0.0, worst_grad_at = 0.0;
    for (size_t i = 0; i < N; i++) {
        double want_grad, want_loss = libm_log_loss(margin[i], &want_grad);
        double loss_units = relative_units(loss[i], want_loss);
        double grad_units = relative_units(grad[i], want_grad);
        if (!(loss_units <= worst_loss)) {
            worst_loss = loss_units;
            worst_loss_at = margin[i];
        }
        if (!(grad_units <= worst_grad)) {
            worst_grad = grad_units;
            worst_grad_at = margin[i];
        }
    }
    if (!(worst_loss <= 4.0 && worst_grad <= 4.0))
        test_report(__FILE__, __LINE__, "worst loss %g units at m = %.17g, grad %g at %.17g",
                    worst_loss, worst_loss_at, worst_grad, worst_grad_at);

    /* The ends: no overflow, and NaN stays NaN. */
    const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e-300, -1e-300};
    double l[7], g[7];
    dsc__log_loss_margins(special, 7, l, g);
    CHECK_NEAR(l[0], log(2.0), 1e-16);
    CHECK_NEAR(g[0], -0.5, 0.0);
    CHECK_NEAR(l[1], log(2.0), 1e-16);
    CHECK(l[2] == 0.0 && g[2] == 0.0);
    CHECK(l[3] == INFINITY && g[3] == -1.0);
    CHECK(isnan(l[4]) && isnan(g[4]));
    CHECK_NEAR(l[5], log(2.0), 1e-16);
    CHECK_NEAR(l[6], log(2.0), 1e-16);
}

TEST(grad_log_loss_gives_a_margin_the_same_bits_wherever_it_stands)
{
    /* Margins computed in one call of 37, and one by one, and from every offset of 4. */
    double margin[37], loss[37], grad[37];
    for (size_t i = 0; i < 37; i++)
        margin[i] = 12.0 * sin(1.7 * (double)i + 0.3);
    dsc__log_loss_margins(margin, 37, loss, grad);

    for (size_t i = 0; i < 37; i++) {
        double one_loss, one_grad;
        dsc__log_loss_margins(margin + i, 1, &one_loss, &one_grad);
        CHECK(memcmp(&one_loss, &loss[i], sizeof one_loss) == 0);
        CHECK(memcmp(&one_grad, &grad[i], sizeof one_grad) == 0);
    }
    for (size_t offset = 1; offset < 4; offset++) {
        double part_loss[37], part_grad[37];
        dsc__log_loss_margins(margin + offset, 37 - offset, part_loss, part_grad);
        CHECK(memcmp(part_loss, loss + offset, (37 - offset) * sizeof(double)) == 0);
        CHECK(memcmp(part_grad, grad + offset, (37 - offset) * sizeof(double)) == 0);
    }

    /* And the loss of a model row goes through the same function. */
    float z = 2.5f, dz;
    double m = -2.5, want_loss, want_grad;
    dsc__log_loss_margins(&m, 1, &want_loss, &want_grad);
    double row = dsc__row_loss(DSC_LOSS_LOG, 0.0f, &z, 1, 0, NULL, 1.0f, &dz);
    CHECK(memcmp(&row, &want_loss, sizeof row) == 0);
    CHECK(dz == (float)(-1.0 * want_grad));
}
