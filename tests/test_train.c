/*
 * test_train.c - the descent loop: convergence to known solutions, batch modes, data order,
 * reproducibility, stopping rules, failures and out-of-memory behaviour.
 */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Linear data y = x . w_true + 0.5 + noise, with n rows of k features uniform on [-1, 1]. */
typedef struct {
    size_t n, k;
    float *x, *y;
    dsc_data data;
} regression_set;

static void make_regression(regression_set *s, size_t n, size_t k, uint64_t seed)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    s->n = n;
    s->k = k;
    s->x = malloc(n * k * sizeof(float));
    s->y = malloc(n * sizeof(float));
    for (size_t r = 0; r < n; r++) {
        double target = 0.5;
        for (size_t j = 0; j < k; j++) {
            s->x[r * k + j] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
            target += (double)s->x[r * k + j] * (0.7 * (double)j - 1.0);
        }
        s->y[r] = (float)(target + 0.1 * dsc_rng_normal(&rng));
    }
    s->data = (dsc_data){.n_rows = n, .n_features = k, .x = s->x, .y = s->y, .n_targets = 1};
}

static void free_regression(regression_set *s)
{
    free(s->x);
    free(s->y);
}

/* Least squares with an intercept, from the normal equations solved in double. */
static void least_squares(const regression_set *s, double *coef /* k + 1, bias last */)
{
    size_t m = s->k + 1;
    double a[16][17] = {{0}};
    for (size_t r = 0; r < s->n; r++) {
        double row[16];
        for (size_t j = 0; j < s->k; j++)
            row[j] = s->x[r * s->k + j];
        row[s->k] = 1.0;
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < m; j++)
                a[i][j] += row[i] * row[j];
            a[i][m] += row[i] * s->y[r];
        }
    }
    for (size_t c = 0; c < m; c++) { /* Gauss-Jordan with partial pivoting */
        size_t pivot = c;
        for (size_t r = c + 1; r < m; r++) {
            if (fabs(a[r][c]) > fabs(a[pivot][c]))
                pivot = r;
        }
        for (size_t j = 0; j <= m; j++) {
            double tmp = a[c][j];
            a[c][j] = a[pivot][j];
            a[pivot][j] = tmp;
        }
        for (size_t r = 0; r < m; r++) {
            if (r == c)
                continue;
            double f = a[r][c] / a[c][c];
            for (size_t j = c; j <= m; j++)
                a[r][j] -= f * a[c][j];
        }
    }
    for (size_t i = 0; i < m; i++)
        coef[i] = a[i][m] / a[i][i];
}

static dsc_model *linear_model(size_t k, dsc_loss loss, size_t outputs)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, k, outputs, loss);
    return dsc_model_new(&cfg, NULL);
}

static void sgd_config(dsc_train_config *cfg, size_t batch, double lr, int64_t epochs)
{
    dsc_train_config_default(cfg);
    dsc_optim_config_default(&cfg->optim, DSC_OPT_SGD);
    cfg->optim.lr = lr;
    cfg->batch = batch;
    cfg->epochs = epochs;
    cfg->tol = -1.0; /* run every epoch */
}

TEST(train_full_batch_reaches_least_squares)
{
    regression_set s;
    make_regression(&s, 200, 5, 1);
    double coef[6];
    least_squares(&s, coef);

    dsc_model *m = linear_model(5, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    sgd_config(&cfg, DSC_FULL_BATCH, 0.3, 3000);
    REQUIRE(dsc_train(m, &s.data, NULL, &cfg) == DSC_OK);

    const float *p = dsc_model_params(m); /* 5 weights, then the bias */
    for (size_t j = 0; j < 6; j++)
        CHECK_REL(p[j], coef[j], 1e-4, 1e-3);
    dsc_model_free(m);
    free_regression(&s);
}

/* The mean squared error of a regression model over all rows. */
static double mse(dsc_model *m, const dsc_data *d)
{
    double loss;
    if (dsc_model_loss(m, d, NULL, d->n_rows, NULL, &loss) != DSC_OK)
        return INFINITY;
    return loss;
}

TEST(train_stochastic_minibatch_and_full_batch_all_converge)
{
    regression_set s;
    make_regression(&s, 300, 4, 2);
    double coef[5];
    least_squares(&s, coef);
    dsc_model *best = linear_model(4, DSC_LOSS_SQUARED, 1);
    for (size_t j = 0; j < 5; j++)
        dsc_model_params(best)[j] = (float)coef[j];
    double optimum = mse(best, &s.data);

    const size_t batches[] = {1, 32, DSC_FULL_BATCH};
    const double rates[] = {0.01, 0.1, 0.3};
    for (size_t i = 0; i < 3; i++) {
        dsc_model *m = linear_model(4, DSC_LOSS_SQUARED, 1);
        dsc_train_config cfg;
        sgd_config(&cfg, batches[i], rates[i], i == 2 ? 2000 : 100);
        REQUIRE(dsc_train(m, &s.data, NULL, &cfg) == DSC_OK);
        double final = mse(m, &s.data);
        if (!(final < optimum * 1.02))
            fprintf(stderr, "    batch %zu: loss %g, optimum %g\n", batches[i], final, optimum);
        CHECK(final < optimum * 1.02);
        dsc_model_free(m);
    }
    dsc_model_free(best);
    free_regression(&s);
}

TEST(train_without_shuffle_visits_rows_in_file_order)
{
    regression_set s;
    make_regression(&s, 50, 3, 3);

    /* One epoch of SGD with batch 1, computed here in double in file order. */
    double w[4] = {0, 0, 0, 0}, lr = 0.05;
    for (size_t r = 0; r < s.n; r++) {
        double z = w[3], g;
        for (size_t j = 0; j < 3; j++)
            z += w[j] * s.x[r * 3 + j];
        g = 2.0 * (z - s.y[r]);
        for (size_t j = 0; j < 3; j++)
            w[j] -= lr * g * s.x[r * 3 + j];
        w[3] -= lr * g;
    }

    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        dsc_model *m = linear_model(3, DSC_LOSS_SQUARED, 1);
        dsc_train_config cfg;
        sgd_config(&cfg, 1, lr, 1);
        cfg.shuffle = shuffle;
        REQUIRE(dsc_train(m, &s.data, NULL, &cfg) == DSC_OK);
        double max_diff = 0.0;
        for (size_t j = 0; j < 4; j++)
            max_diff = fmax(max_diff, fabs(dsc_model_params(m)[j] - w[j]));
        if (shuffle)
            CHECK(max_diff > 1e-3); /* another order gives other weights */
        else
            CHECK(max_diff < 1e-5);
        dsc_model_free(m);
    }
    free_regression(&s);
}

/* Two linearly separable blobs in 2-D with a margin. */
TEST(train_logistic_separates_a_separable_set)
{
    enum { N = 200 };
    float x[N * 2];
    int32_t label[N];
    dsc_rng rng;
    dsc_rng_seed(&rng, 4);
    for (size_t r = 0; r < N; r++) {
        double a = 4.0 * dsc_rng_uniform(&rng) - 2.0, b = 4.0 * dsc_rng_uniform(&rng) - 2.0;
        double side = a + 0.5 * b;
        if (fabs(side) < 0.2)
            a += side > 0 ? 0.4 : -0.4;
        x[2 * r] = (float)a;
        x[2 * r + 1] = (float)b;
        label[r] = a + 0.5 * b > 0.0;
    }
    dsc_data d = {.n_rows = N, .n_features = 2, .x = x, .label = label};
    dsc_model *m = linear_model(2, DSC_LOSS_LOG, 2);
    dsc_train_config cfg;
    sgd_config(&cfg, 16, 0.5, 200);
    REQUIRE(dsc_train(m, &d, NULL, &cfg) == DSC_OK);

    int32_t pred[N];
    REQUIRE(dsc_model_predict_class(m, &d, 0, N, pred) == DSC_OK);
    int hits = 0;
    for (size_t r = 0; r < N; r++)
        hits += pred[r] == label[r];
    CHECK_EQ_INT(hits, N);
    dsc_model_free(m);
}

static dsc_model *mlp(size_t inputs, size_t classes, size_t h1, size_t h2, dsc_activation act)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, inputs, classes, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = h2 ? 2 : 1;
    cfg.hidden[0] = h1;
    cfg.hidden[1] = h2;
    cfg.activation[0] = cfg.activation[1] = act;
    return dsc_model_new(&cfg, NULL);
}

static int accuracy_hits(dsc_model *m, const dsc_data *d)
{
    int32_t pred[1024];
    int hits = 0;
    if (dsc_model_predict_class(m, d, 0, d->n_rows, pred) != DSC_OK)
        return -1;
    for (size_t r = 0; r < d->n_rows; r++)
        hits += pred[r] == d->label[r];
    return hits;
}

TEST(train_mlp_learns_xor)
{
    float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int32_t label[4] = {0, 1, 1, 0};
    dsc_data d = {.n_rows = 4, .n_features = 2, .x = x, .label = label};
    dsc_model *m = mlp(2, 2, 8, 0, DSC_ACT_TANH);
    REQUIRE(m);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.optim.lr = 0.05;
    cfg.batch = DSC_FULL_BATCH;
    cfg.epochs = 500;
    cfg.tol = -1;
    cfg.seed = 7;
    REQUIRE(dsc_train(m, &d, NULL, &cfg) == DSC_OK);
    CHECK_EQ_INT(accuracy_hits(m, &d), 4);
    /* a linear model cannot: its best is 3 of 4 */
    dsc_model *lin = linear_model(2, DSC_LOSS_SOFTMAX, 2);
    REQUIRE(dsc_train(lin, &d, NULL, &cfg) == DSC_OK);
    CHECK(accuracy_hits(lin, &d) < 4);
    dsc_model_free(lin);
    dsc_model_free(m);
}

TEST(train_mlp_learns_two_spirals)
{
    enum { PER = 150, N = 2 * PER };
    float x[N * 2];
    int32_t label[N];
    for (size_t i = 0; i < PER; i++) {
        double t = 0.25 + 3.0 * 3.14159265358979 * (double)i / PER, r = t / 10.0;
        for (int c = 0; c < 2; c++) {
            size_t row = 2 * i + (size_t)c;
            double sign = c ? -1.0 : 1.0;
            x[2 * row] = (float)(sign * r * cos(t));
            x[2 * row + 1] = (float)(sign * r * sin(t));
            label[row] = c;
        }
    }
    dsc_data d = {.n_rows = N, .n_features = 2, .x = x, .label = label};
    dsc_model *m = mlp(2, 2, 32, 32, DSC_ACT_RELU);
    REQUIRE(m);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.optim.lr = 0.01;
    cfg.batch = 16;
    cfg.epochs = 600;
    cfg.tol = -1;
    cfg.seed = 3;
    REQUIRE(dsc_train(m, &d, NULL, &cfg) == DSC_OK);
    int hits = accuracy_hits(m, &d);
    if (hits < N * 97 / 100)
        fprintf(stderr, "    %d of %d right\n", hits, N);
    CHECK(hits >= N * 97 / 100);
    dsc_model_free(m);
}

/* Train a small MLP with shuffling and a validation split; return its weights (malloc). */
static float *train_once(uint64_t seed, size_t *n_params)
{
    regression_set s;
    make_regression(&s, 120, 3, 9);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 3, 1, DSC_LOSS_SQUARED);
    mc.n_hidden = 1;
    mc.hidden[0] = 10;
    dsc_model *m = dsc_model_new(&mc, NULL);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.epochs = 20;
    cfg.val_fraction = 0.2;
    cfg.seed = seed;
    float *out = NULL;
    if (m && dsc_train(m, &s.data, NULL, &cfg) == DSC_OK) {
        *n_params = dsc_model_n_params(m);
        out = malloc(*n_params * sizeof(float));
        memcpy(out, dsc_model_params(m), *n_params * sizeof(float));
    }
    dsc_model_free(m);
    free_regression(&s);
    return out;
}

TEST(train_same_seed_gives_bit_identical_weights)
{
    size_t n1 = 0, n2 = 0, n3 = 0;
    float *a = train_once(42, &n1), *b = train_once(42, &n2), *c = train_once(43, &n3);
    REQUIRE(a && b && c);
    CHECK(n1 == n2 && memcmp(a, b, n1 * sizeof(float)) == 0);
    CHECK(memcmp(a, c, n1 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
}

TEST(train_stops_when_loss_stops_improving)
{
    regression_set s;
    make_regression(&s, 200, 3, 5);
    dsc_model *m = linear_model(3, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    sgd_config(&cfg, 32, 0.05, 1000);
    cfg.tol = 1e-3;
    cfg.n_iter_no_change = 4;
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    REQUIRE(dsc_trainer_run(t) == DSC_OK);
    CHECK_EQ_INT(dsc_trainer_stop_reason(t), DSC_STOP_CONVERGED);

    /* Replay scikit-learn's rule over the history: it must fire at the last epoch only. */
    size_t n;
    const dsc_epoch_stats *h = dsc_trainer_history(t, &n);
    CHECK(n > 5 && n < 1000);
    double best = INFINITY;
    int64_t count = 0;
    for (size_t e = 0; e < n; e++) {
        count = h[e].train_loss > best - cfg.tol ? count + 1 : 0;
        best = fmin(best, h[e].train_loss);
        CHECK((count >= 4) == (e == n - 1));
        CHECK_EQ_INT(h[e].epoch, (int64_t)e + 1);
    }
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
}

TEST(train_early_stopping_restores_the_best_weights)
{
    /* Few noisy rows and a wide network: the validation loss turns up while training goes on. */
    regression_set s, v;
    make_regression(&s, 30, 3, 11);
    make_regression(&v, 60, 3, 12);
    for (size_t r = 0; r < 30; r++)
        s.y[r] += (float)(r % 2 ? 0.8 : -0.8);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 3, 1, DSC_LOSS_SQUARED);
    mc.n_hidden = 1;
    mc.hidden[0] = 64;
    dsc_model *m = dsc_model_new(&mc, NULL);
    REQUIRE(m);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.optim.lr = 0.01;
    cfg.epochs = 2000;
    cfg.early_stopping = 1;
    cfg.tol = 0.0;
    cfg.n_iter_no_change = 20;
    dsc_trainer *t = dsc_trainer_new(m, &s.data, &v.data, &cfg, NULL);
    REQUIRE(t);
    int rc = dsc_trainer_run(t);
    if (rc != DSC_OK)
        fprintf(stderr, "    %s\n", dsc_last_error());
    REQUIRE(rc == DSC_OK);
    CHECK_EQ_INT(dsc_trainer_stop_reason(t), DSC_STOP_EARLY);

    size_t n;
    const dsc_epoch_stats *h = dsc_trainer_history(t, &n);
    double best = INFINITY;
    for (size_t e = 0; e < n; e++)
        best = fmin(best, h[e].val_loss);
    CHECK(best < h[n - 1].val_loss);
    CHECK_REL(mse(m, &v.data), best, 1e-5, 1e-9);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
    free_regression(&v);
}

static int stop_at_three(void *user, const dsc_epoch_stats *stats)
{
    int *calls = user;
    (*calls)++;
    return stats->epoch == 3;
}

TEST(train_callback_sees_every_epoch_and_can_stop)
{
    regression_set s;
    make_regression(&s, 64, 2, 13);
    dsc_model *m = linear_model(2, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    sgd_config(&cfg, 8, 0.1, 50);
    int calls = 0;
    cfg.on_epoch = stop_at_three;
    cfg.user = &calls;
    cfg.val_fraction = 0.25;
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    REQUIRE(dsc_trainer_run(t) == DSC_OK);
    CHECK_EQ_INT(calls, 3);
    CHECK_EQ_INT(dsc_trainer_stop_reason(t), DSC_STOP_CALLBACK);
    size_t n;
    const dsc_epoch_stats *h = dsc_trainer_history(t, &n);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(h[2].steps, 3 * 6); /* 48 training rows in batches of 8 */
    CHECK(isfinite(h[2].val_loss) && isfinite(h[2].val_metric));
    CHECK(h[2].val_metric > 0.0 && h[2].val_metric <= 1.0); /* R^2 of a fitting model */
    CHECK_NEAR(h[2].lr, 0.1, 1e-15);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
}

TEST(train_reports_a_non_finite_loss_and_keeps_finite_weights)
{
    regression_set s;
    make_regression(&s, 64, 3, 14);
    for (size_t r = 0; r < 64; r++)
        s.y[r] *= 1e3f;
    dsc_model *m = linear_model(3, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    sgd_config(&cfg, 8, 1e3, 100);
    cfg.on_divergence = DSC_DIVERGE_STOP;
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_trainer_run(t), DSC_ENONFINITE);
    CHECK_EQ_INT(dsc_trainer_stop_reason(t), DSC_STOP_NONFINITE);
    CHECK(dsc_trainer_failed_step(t) > 1);
    CHECK(strstr(dsc_last_error(), "step") != NULL);
    const float *p = dsc_model_params(m);
    for (size_t j = 0; j < 4; j++)
        CHECK(isfinite(p[j]));
    CHECK_EQ_INT(dsc_trainer_epoch(t), DSC_ESTATE);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
}

TEST(train_rejects_bad_parameters_with_codes)
{
    regression_set s;
    make_regression(&s, 20, 2, 15);
    dsc_model *m = linear_model(2, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    int err = 0;

    sgd_config(&cfg, 4, -1.0, 5);
    CHECK(dsc_trainer_new(m, &s.data, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "lr") != NULL);

    sgd_config(&cfg, 0, 0.1, 5);
    CHECK(dsc_trainer_new(m, &s.data, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);

    sgd_config(&cfg, 4, 0.1, 0);
    CHECK(dsc_trainer_new(m, &s.data, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);

    dsc_model *wrong = linear_model(3, DSC_LOSS_SQUARED, 1);
    sgd_config(&cfg, 4, 0.1, 5);
    CHECK(dsc_trainer_new(wrong, &s.data, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_ESHAPE);

    dsc_model_config mc;
    dsc_model_config_init(&mc, 2, 1, DSC_LOSS_LOG);
    CHECK(dsc_model_new(&mc, &err) == NULL); /* one class */
    CHECK_EQ_INT(err, DSC_EINVAL);

    /* A network whose every layer is frozen has nothing to train. */
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, &err);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_trainer_freeze_layer(t, 0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_trainer_epoch(t), DSC_EFROZEN);
    CHECK_EQ_INT(dsc_trainer_freeze_layer(t, 5, 1), DSC_EINVAL);
    dsc_trainer_free(t);
    dsc_model_free(wrong);
    dsc_model_free(m);
    free_regression(&s);
}

TEST(train_frozen_layer_stays_bit_identical_while_others_learn)
{
    regression_set s;
    make_regression(&s, 64, 3, 16);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 3, 1, DSC_LOSS_SQUARED);
    mc.n_hidden = 2;
    mc.hidden[0] = 8;
    mc.hidden[1] = 4;
    dsc_model *m = dsc_model_new(&mc, NULL);
    REQUIRE(m);
    dsc_model_init_weights(m, DSC_INIT_HE_NORMAL, 1);

    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    dsc_optim_config_default(&cfg.optim, DSC_OPT_ADAMW); /* decoupled weight decay on */
    cfg.init_weights = 0; /* fine-tune the weights as they are */
    cfg.epochs = 5;
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    dsc_layer first, last;
    dsc_model_layer(m, 0, &first);
    dsc_model_layer(m, 2, &last);
    float before_first[3 * 8 + 8], before_last[4 + 1];
    memcpy(before_first, first.w, sizeof before_first);
    memcpy(before_last, last.w, sizeof before_last);
    REQUIRE(dsc_trainer_freeze_layer(t, 0, 1) == DSC_OK);
    REQUIRE(dsc_trainer_run(t) == DSC_OK);
    CHECK(memcmp(before_first, first.w, sizeof before_first) == 0);
    CHECK(memcmp(before_last, last.w, sizeof before_last) != 0);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
}

TEST(train_balanced_class_weights_lift_the_rare_class)
{
    /* 90 % of one class, overlapping classes: balanced weights shift predictions to class 1. */
    enum { N = 400 };
    float x[N];
    int32_t label[N];
    dsc_rng rng;
    dsc_rng_seed(&rng, 17);
    for (size_t r = 0; r < N; r++) {
        label[r] = r % 10 == 0;
        x[r] = (float)(dsc_rng_normal(&rng) + (label[r] ? 1.0 : 0.0));
    }
    dsc_data d = {.n_rows = N, .n_features = 1, .x = x, .label = label};
    int predicted_rare[2];
    for (int balanced = 0; balanced <= 1; balanced++) {
        dsc_model *m = linear_model(1, DSC_LOSS_LOG, 2);
        dsc_train_config cfg;
        sgd_config(&cfg, 32, 0.1, 50);
        cfg.balanced = balanced;
        REQUIRE(dsc_train(m, &d, NULL, &cfg) == DSC_OK);
        int32_t pred[N];
        REQUIRE(dsc_model_predict_class(m, &d, 0, N, pred) == DSC_OK);
        predicted_rare[balanced] = 0;
        for (size_t r = 0; r < N; r++)
            predicted_rare[balanced] += pred[r];
        dsc_model_free(m);
    }
    CHECK(predicted_rare[0] < 20);
    CHECK(predicted_rare[1] > 100);
}


/* A whole small run: model, trainer with a split, training, prediction. */
static int small_run(void)
{
    enum { N = 40 };
    float x[N * 2];
    int32_t label[N];
    for (size_t r = 0; r < N; r++) {
        x[2 * r] = (float)r / N;
        x[2 * r + 1] = (float)(r % 3);
        label[r] = (int32_t)(r % 3);
    }
    dsc_data d = {.n_rows = N, .n_features = 2, .x = x, .label = label};
    int err = DSC_OK;
    dsc_model_config mc;
    dsc_model_config_init(&mc, 2, 3, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 1;
    mc.hidden[0] = 5;
    dsc_model *m = dsc_model_new(&mc, &err);
    if (!m)
        return err;
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.epochs = 3;
    cfg.val_fraction = 0.25;
    cfg.early_stopping = 1;
    cfg.balanced = 1;
    int rc = dsc_train(m, &d, NULL, &cfg);
    float proba[N * 3];
    if (rc == DSC_OK)
        rc = dsc_model_predict_proba(m, &d, 0, N, proba);
    dsc_model_free(m);
    return rc;
}

TEST(train_every_failed_allocation_is_a_clean_enomem)
{
    dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
    int failures_seen = 0;
    for (test_oom.fail_at = 1;; test_oom.fail_at++) {
        test_oom.calls = test_oom.live = 0;
        int rc = small_run();
        CHECK_EQ_INT(test_oom.live, 0);
        if (rc == DSC_OK && test_oom.calls < test_oom.fail_at)
            break; /* every allocation has been failed once */
        CHECK_EQ_INT(rc, DSC_ENOMEM);
        failures_seen++;
    }
    dsc_set_allocator(NULL, NULL, NULL);
    CHECK(failures_seen >= 8);
}

/* The allocator's call count at each epoch's end (the first MAX_EPOCHS epochs). */
enum { MAX_EPOCHS = 16 };
static long calls_at_epoch[MAX_EPOCHS];

static int record_calls(void *user, const dsc_epoch_stats *stats)
{
    if (stats->epoch >= 1 && stats->epoch <= MAX_EPOCHS)
        calls_at_epoch[stats->epoch - 1] = test_oom.calls;
    return 0;
}

/*
 * Nothing is allocated inside the training loop: from the end of the first epoch to the end
 * of the last, the allocator is not called once, for the fused linear path, an MLP with a
 * validation split, early stopping, a plateau schedule after warm-up and clipping, and
 * sparse rows with AdaGrad.
 */
TEST(train_loop_allocates_nothing_after_the_first_epoch)
{
    enum { N = 200, K = 6, EPOCHS = 12 };
    static float x[N * K];
    static int32_t label[N];
    static uint64_t row_ptr[N + 1];
    static uint32_t col[N * 2];
    static float val[N * 2];
    dsc_rng rng;
    dsc_rng_seed(&rng, 99);
    for (size_t r = 0; r < N; r++) {
        for (size_t j = 0; j < K; j++)
            x[r * K + j] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
        label[r] = x[r * K] + x[r * K + 1] > 0.0f ? 1 : 0;
        row_ptr[r + 1] = row_ptr[r] + 2;
        col[2 * r] = (uint32_t)(r % 3);
        col[2 * r + 1] = (uint32_t)(3 + r % 3);
        val[2 * r] = x[r * K];
        val[2 * r + 1] = x[r * K + 1];
    }
    dsc_data dense = {.n_rows = N, .n_features = K, .x = x, .label = label};
    dsc_data sparse = {.n_rows = N, .n_features = K, .row_ptr = row_ptr, .col = col,
                       .val = val, .label = label};

    for (int run = 0; run < 3; run++) {
        dsc_model_config mc;
        dsc_model_config_init(&mc, K, 2, DSC_LOSS_LOG);
        if (run == 1) {
            mc.n_hidden = 2;
            mc.hidden[0] = 8;
            mc.hidden[1] = 5;
        }
        memset(calls_at_epoch, 0, sizeof calls_at_epoch);
        test_oom.calls = test_oom.fail_at = 0;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        int err = 0;
        dsc_model *m = dsc_model_new(&mc, &err);
        REQUIRE(m);
        dsc_train_config cfg;
        dsc_train_config_default(&cfg);
        cfg.epochs = EPOCHS;
        cfg.tol = -1.0;
        cfg.batch = 16;
        cfg.on_epoch = record_calls;
        if (run == 1) {
            cfg.val_fraction = 0.2;
            cfg.early_stopping = 1;
            cfg.n_iter_no_change = EPOCHS;
            cfg.clip_norm = 1.0;
            dsc_schedule_default(&cfg.schedule, DSC_SCHED_PLATEAU, 0.0);
            cfg.schedule.warmup = 2;
        }
        if (run == 2)
            dsc_optim_config_default(&cfg.optim, DSC_OPT_ADAGRAD);

        int rc = dsc_train(m, run == 2 ? &sparse : &dense, NULL, &cfg);
        CHECK_EQ_INT(rc, DSC_OK);
        CHECK(calls_at_epoch[0] > 0); /* the set-up allocates, and was counted */
        for (int e = 1; e < EPOCHS; e++) {
            if (calls_at_epoch[e] != calls_at_epoch[0])
                test_report(__FILE__, __LINE__, "run %d: %ld allocations by epoch %d, %ld by "
                            "epoch 1", run, calls_at_epoch[e], e + 1, calls_at_epoch[0]);
        }
        dsc_model_free(m);
        dsc_set_allocator(NULL, NULL, NULL);
        CHECK_EQ_INT(test_oom.live, 0);
    }
}

/* An allocator whose fresh blocks hold garbage_byte everywhere, as a reused block may. */
static unsigned char garbage_byte;

static void *garbage_alloc(size_t size, void *ctx)
{
    void *p = malloc(size);
    if (p)
        memset(p, garbage_byte, size);
    return p;
}

static void garbage_free(void *ptr, void *ctx)
{
    free(ptr);
}

/*
 * The trainer's saved state holds no byte that was never set: built and stepped the same
 * way under allocators that hand out blocks of 0x00 and of 0xFF, before and after its
 * first epoch, it saves the same bytes but for the times. (A checkpoint written before the
 * first validation once held the never-set "best weights" of early stopping; valgrind
 * found it.)
 */
TEST(train_state_holds_no_unset_bytes)
{
    regression_set s;
    make_regression(&s, 64, 3, 21);
    unsigned char *states[2][2] = {{NULL, NULL}, {NULL, NULL}};
    size_t sizes[2][2] = {{0, 0}, {0, 0}};

    for (int g = 0; g < 2; g++) {
        garbage_byte = g ? 0xFF : 0x00;
        dsc_set_allocator(garbage_alloc, garbage_free, NULL);
        dsc_model_config mc;
        dsc_model_config_init(&mc, 3, 1, DSC_LOSS_SQUARED);
        mc.n_hidden = 1;
        mc.hidden[0] = 4;
        dsc_model *m = dsc_model_new(&mc, NULL);
        REQUIRE(m);
        dsc_train_config cfg;
        dsc_train_config_default(&cfg);
        cfg.epochs = 3;
        cfg.batch = 8;
        cfg.val_fraction = 0.25;
        cfg.early_stopping = 1;
        dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
        REQUIRE(t);
        for (int moment = 0; moment < 2; moment++) {
            if (moment == 1) {
                while (dsc_trainer_epochs_done(t) < 1)
                    REQUIRE(dsc_trainer_step(t) >= 0);
            }
            sizes[g][moment] = dsc_trainer_state_size(t);
            states[g][moment] = malloc(sizes[g][moment]);
            REQUIRE(states[g][moment]);
            CHECK_EQ_INT(dsc_trainer_state_save(t, states[g][moment], sizes[g][moment]),
                         DSC_OK);
        }
        dsc_trainer_free(t);
        dsc_model_free(m);
        dsc_set_allocator(NULL, NULL, NULL);
    }
    /*
     * The states may differ only in the elapsed seconds they record (the run's and each
     * epoch's): a field of 8 bytes holding a small positive double. A byte never set would
     * be 0x00 in one and 0xFF in the other, which no such pair of fields can hold.
     */
    for (int moment = 0; moment < 2; moment++) {
        CHECK_EQ_INT(sizes[0][moment], sizes[1][moment]);
        int time_fields = 0;
        for (size_t at = 0; at + 8 <= sizes[0][moment]; at += 8) {
            if (memcmp(states[0][moment] + at, states[1][moment] + at, 8) == 0)
                continue;
            double a, b;
            memcpy(&a, states[0][moment] + at, 8);
            memcpy(&b, states[1][moment] + at, 8);
            if (!(a >= 0.0 && a < 3600.0 && b >= 0.0 && b < 3600.0))
                test_report(__FILE__, __LINE__, "state byte %zu differs: not a time", at);
            time_fields++;
        }
        CHECK(time_fields <= 1 + moment); /* the run's time, and the first epoch's */
        free(states[0][moment]);
        free(states[1][moment]);
    }
    free_regression(&s);
}

TEST(train_divergence_backs_off_and_finishes_finite)
{
    regression_set s;
    make_regression(&s, 64, 3, 14);
    for (size_t r = 0; r < 64; r++)
        s.y[r] *= 1e3f;
    dsc_model *m = linear_model(3, DSC_LOSS_SQUARED, 1);
    dsc_train_config cfg;
    sgd_config(&cfg, 8, 20.0, 40); /* far too large: diverges within a few steps */
    dsc_trainer *t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_trainer_run(t), DSC_OK);
    CHECK_EQ_INT(dsc_trainer_stop_reason(t), DSC_STOP_EPOCHS);
    CHECK(dsc_trainer_lr_scale(t) < 1.0);  /* the rate was lowered */
    CHECK(dsc_trainer_lr_scale(t) >= 1e-5); /* by at most the five retries */
    size_t n;
    const dsc_epoch_stats *h = dsc_trainer_history(t, &n);
    CHECK(isfinite(h[n - 1].train_loss));
    CHECK(h[n - 1].lr < 20.0);
    for (size_t j = 0; j < 4; j++)
        CHECK(isfinite(dsc_model_params(m)[j]));
    dsc_trainer_free(t);

    /* With no retries left the guard stops and says what to try. */
    cfg.max_retries = 0;
    t = dsc_trainer_new(m, &s.data, NULL, &cfg, NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_trainer_run(t), DSC_ENONFINITE);
    CHECK(strstr(dsc_last_error(), "try a learning rate of") != NULL);
    CHECK(strstr(dsc_last_error(), "diverged at epoch") != NULL);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_regression(&s);
}

/* A classifier with a validation split; the settings vary by case. */
static dsc_trainer *resume_trainer(dsc_model **m, const dsc_data *d, int variant)
{
    dsc_model_config mc;
    dsc_model_config_init(&mc, 3, 3, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 1;
    mc.hidden[0] = 6;
    *m = dsc_model_new(&mc, NULL);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.epochs = 12;
    cfg.batch = 10;
    cfg.seed = 99;
    cfg.val_fraction = 0.2;
    cfg.tol = -1;
    const dsc_optimizer kinds[] = {DSC_OPT_SGD, DSC_OPT_MOMENTUM, DSC_OPT_ADAM, DSC_OPT_ADAM};
    dsc_optim_config_default(&cfg.optim, kinds[variant]);
    cfg.optim.lr = 0.05;
    if (variant == 3) { /* cosine annealing behind a linear warm-up, per step */
        dsc_schedule_default(&cfg.schedule, DSC_SCHED_COSINE, 0.0);
        cfg.schedule.per_step = 1;
        cfg.schedule.warmup = 15;
        cfg.schedule.t_max = 60;
        cfg.early_stopping = 1;
        cfg.n_iter_no_change = 100;
        cfg.tol = 0;
    }
    return *m ? dsc_trainer_new(*m, d, NULL, &cfg, NULL) : NULL;
}

TEST(train_state_restored_mid_run_continues_bit_for_bit)
{
    enum { N = 90 };
    float x[N * 3];
    int32_t label[N];
    dsc_rng rng;
    dsc_rng_seed(&rng, 21);
    for (size_t r = 0; r < N; r++) {
        label[r] = (int32_t)(r % 3);
        for (size_t j = 0; j < 3; j++)
            x[r * 3 + j] = (float)(dsc_rng_normal(&rng) + (j == (size_t)label[r] ? 1.5 : 0));
    }
    dsc_data d = {.n_rows = N, .n_features = 3, .x = x, .label = label};

    for (int variant = 0; variant < 4; variant++) {
        dsc_model *whole_model, *first_model, *second_model;
        dsc_trainer *whole = resume_trainer(&whole_model, &d, variant);
        REQUIRE(whole);
        REQUIRE(dsc_trainer_run(whole) == DSC_OK);

        /* Stop after a seeded number of steps, save, and continue in a fresh trainer. */
        for (int cut = 0; cut < 5; cut++) {
            int64_t stop_after = 1 + (int64_t)dsc_rng_below(&rng, 12 * 8 - 2);
            dsc_trainer *first = resume_trainer(&first_model, &d, variant);
            REQUIRE(first);
            while (dsc_trainer_steps(first) < stop_after)
                REQUIRE(dsc_trainer_step(first) == 1);
            size_t size = dsc_trainer_state_size(first);
            unsigned char *state = malloc(size);
            REQUIRE(dsc_trainer_state_save(first, state, size) == DSC_OK);
            dsc_trainer_free(first);
            dsc_model_free(first_model);

            dsc_trainer *second = resume_trainer(&second_model, &d, variant);
            REQUIRE(second);
            REQUIRE(dsc_trainer_state_load(second, state, size) == DSC_OK);
            REQUIRE(dsc_trainer_run(second) == DSC_OK);
            CHECK_EQ_INT(dsc_trainer_steps(second), dsc_trainer_steps(whole));
            CHECK(memcmp(dsc_model_params(second_model), dsc_model_params(whole_model),
                         dsc_model_n_params(whole_model) * sizeof(float)) == 0);
            size_t n1, n2;
            const dsc_epoch_stats *h1 = dsc_trainer_history(whole, &n1);
            const dsc_epoch_stats *h2 = dsc_trainer_history(second, &n2);
            CHECK(n1 == n2 && h1[n1 - 1].train_loss == h2[n2 - 1].train_loss);

            /* A corrupted or truncated state is refused. */
            CHECK(dsc_trainer_state_load(second, state, size - 1) < 0);
            state[0] ^= 1;
            CHECK_EQ_INT(dsc_trainer_state_load(second, state, size), DSC_EFORMAT);
            free(state);
            dsc_trainer_free(second);
            dsc_model_free(second_model);
        }
        dsc_trainer_free(whole);
        dsc_model_free(whole_model);
    }
}

/*
 * dsc_rng_below keeps a draw without computing the rejection bound when the draw is far from
 * the top of the range: the numbers must be those of always computing it, for small bounds
 * and for bounds near 2^64, where draws are rejected.
 */
TEST(rng_below_gives_the_draws_of_the_plain_rejection_rule)
{
    const uint64_t bounds[] = {1, 2, 3, 10, 1000003, (uint64_t)1 << 32, UINT64_MAX / 3 * 2,
                               ((uint64_t)1 << 63) + 1, UINT64_MAX - 5, UINT64_MAX};
    size_t rejected = 0;

    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        uint64_t n = bounds[b];
        dsc_rng fast, plain;
        dsc_rng_seed(&fast, 77 + b);
        dsc_rng_seed(&plain, 77 + b);
        for (int i = 0; i < 2000; i++) {
            uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
            do {
                r = dsc_rng_next(&plain);
                rejected += r >= limit;
            } while (r >= limit);
            uint64_t got = dsc_rng_below(&fast, n);
            if (got != r % n) {
                fprintf(stderr, "    bound %llu, draw %d: %llu, expected %llu\n",
                        (unsigned long long)n, i, (unsigned long long)got,
                        (unsigned long long)(r % n));
                CHECK(got == r % n);
                break;
            }
        }
    }
    CHECK(rejected > 100); /* the bounds near 2^64 did exercise the rejection */
}
