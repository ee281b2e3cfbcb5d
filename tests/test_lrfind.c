/*
 * test_lrfind.c - the learning-rate range test.
 */
#include "test.h"

#include <stdlib.h>

TEST(lrfind_rates_rise_and_the_test_stops_when_the_loss_explodes)
{
    enum { N = 400 };
    static float x[N * 4];
    static float y[N];
    dsc_rng rng;
    dsc_rng_seed(&rng, 3);
    for (size_t r = 0; r < N; r++) {
        double t = 0.0;
        for (size_t j = 0; j < 4; j++) {
            x[r * 4 + j] = (float)dsc_rng_normal(&rng);
            t += x[r * 4 + j] * (double)(j + 1);
        }
        y[r] = (float)t;
    }
    dsc_data d = {.n_rows = N, .n_features = 4, .x = x, .y = y, .n_targets = 1};
    dsc_model_config mc;
    dsc_model_config_init(&mc, 4, 1, DSC_LOSS_SQUARED);
    dsc_model *m = dsc_model_new(&mc, NULL);
    REQUIRE(m);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    dsc_optim_config_default(&cfg.optim, DSC_OPT_SGD);
    cfg.batch = 16;

    dsc_lr_find_result res;
    REQUIRE(dsc_lr_find(m, &d, &cfg, 1e-5, 100.0, 200, &res) == DSC_OK);
    /* Plain SGD on this problem diverges above a rate of about 1: the test must stop early. */
    CHECK(res.n > 20 && res.n < 200);
    for (size_t i = 1; i < res.n; i++)
        CHECK(res.lr[i] > res.lr[i - 1]);
    CHECK_REL(res.lr[0], 1e-5, 1e-12, 0);
    CHECK_REL(res.lr[1] / res.lr[0], pow(1e7, 1.0 / 199.0), 1e-9, 0);
    CHECK(res.loss[res.best] < 0.2 * res.loss[0]);
    CHECK(res.lr[res.n - 1] > 0.1 && res.lr[res.n - 1] < 10.0);
    CHECK_REL(res.suggested, res.lr[res.best] / 10.0, 1e-15, 0);

    /* The suggested rate trains: a few epochs bring the loss near zero. */
    cfg.optim.lr = res.suggested;
    cfg.epochs = 20;
    cfg.tol = -1;
    REQUIRE(dsc_train(m, &d, NULL, &cfg) == DSC_OK);
    double loss;
    REQUIRE(dsc_model_loss(m, &d, NULL, N, NULL, &loss) == DSC_OK);
    CHECK(loss < 1e-2);
    dsc_lr_find_free(&res);
    CHECK(res.lr == NULL && res.n == 0);

    CHECK_EQ_INT(dsc_lr_find(m, &d, &cfg, 1.0, 0.5, 100, &res), DSC_EINVAL);
    dsc_model_free(m);
}
