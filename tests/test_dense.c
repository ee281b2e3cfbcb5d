/*
 * test_dense.c - the blocked, threaded layer kernels against their plain references, and
 * results that do not depend on the number of threads.
 */
#include "test.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void fill(float *v, size_t n, dsc_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * dsc_rng_uniform(rng) - 1.0);
}

TEST(dense_kernels_match_the_reference_on_every_shape)
{
    const size_t shapes[][3] = {{1, 1, 1},  {3, 5, 1},   {7, 13, 3},    {32, 100, 1},
                                {33, 64, 65}, {64, 784, 10}, {5, 9, 130}, {17, 3, 64}};
    dsc_rng rng;
    dsc_rng_seed(&rng, 1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = shapes[s][0], k = shapes[s][1], m = shapes[s][2], rows_total = n + 5;
        float *a = malloc(rows_total * k * sizeof(float)), *w = malloc(k * m * sizeof(float));
        float *b = malloc(m * sizeof(float)), *dz = malloc(n * m * sizeof(float));
        float *z1 = malloc(n * m * sizeof(float)), *z2 = malloc(n * m * sizeof(float));
        float *dw1 = calloc(k * m, sizeof(float)), *dw2 = calloc(k * m, sizeof(float));
        float *db1 = calloc(m, sizeof(float)), *db2 = calloc(m, sizeof(float));
        float *da1 = malloc(n * k * sizeof(float)), *da2 = malloc(n * k * sizeof(float));
        uint32_t *rows = malloc(n * sizeof(uint32_t));
        fill(a, rows_total * k, &rng);
        fill(w, k * m, &rng);
        fill(b, m, &rng);
        fill(dz, n * m, &rng);
        for (size_t i = 0; i < n; i++)
            rows[i] = (uint32_t)dsc_rng_below(&rng, rows_total);
        dsc_rows in = {.base = a, .rows = rows, .stride = k};

        /* Same summation order: bit for bit. */
        dsc__dense_forward(&in, n, k, w, b, m, z1);
        dsc__dense_forward_ref(&in, n, k, w, b, m, z2);
        CHECK(memcmp(z1, z2, n * m * sizeof(float)) == 0);
        dsc__dense_grad_w(&in, n, k, dz, m, dw1, db1);
        dsc__dense_grad_w_ref(&in, n, k, dz, m, dw2, db2);
        CHECK(memcmp(dw1, dw2, k * m * sizeof(float)) == 0);
        CHECK(memcmp(db1, db2, m * sizeof(float)) == 0);

        /* The input gradient sums in lanes: close to the double reference. */
        dsc__dense_grad_input(dz, n, m, w, k, da1);
        dsc__dense_grad_input_ref(dz, n, m, w, k, da2);
        for (size_t i = 0; i < n * k; i++)
            CHECK_NEAR(da1[i], da2[i], 1e-5 * (double)m);

        /* And the forward pass does what it says: one element by hand. */
        double z00 = b[m - 1];
        for (size_t p = 0; p < k; p++)
            z00 += (double)a[rows[n - 1] * k + p] * w[p * m + m - 1];
        CHECK_NEAR(z1[(n - 1) * m + m - 1], z00, 1e-5 * (double)k);

        free(a), free(w), free(b), free(dz), free(z1), free(z2), free(dw1), free(dw2);
        free(db1), free(db2), free(da1), free(da2), free(rows);
    }
}

/* Train an MLP on a synthetic set with the given number of threads. */
static float *train_with_threads(int threads, size_t *n_params)
{
    enum { N = 600, K = 40 };
    static float x[N * K];
    static int32_t label[N];
    dsc_rng rng;
    dsc_rng_seed(&rng, 5);
    for (size_t r = 0; r < N; r++) {
        label[r] = (int32_t)(r % 4);
        for (size_t j = 0; j < K; j++)
            x[r * K + j] = (float)(dsc_rng_normal(&rng) + (j % 4 == (size_t)label[r]));
    }
    dsc_data d = {.n_rows = N, .n_features = K, .x = x, .label = label};
    dsc_model_config mc;
    dsc_model_config_init(&mc, K, 4, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 2;
    mc.hidden[0] = 96;
    mc.hidden[1] = 33;
    dsc_model *m = dsc_model_new(&mc, NULL);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.batch = 128;
    cfg.epochs = 3;
    if (!m || dsc_set_threads(threads) != DSC_OK || dsc_train(m, &d, NULL, &cfg) != DSC_OK) {
        dsc_model_free(m);
        return NULL;
    }
    *n_params = dsc_model_n_params(m);
    float *out = malloc(*n_params * sizeof(float));
    memcpy(out, dsc_model_params(m), *n_params * sizeof(float));
    dsc_model_free(m);
    return out;
}

TEST(dense_results_do_not_depend_on_the_thread_count)
{
    size_t n1 = 0, n2 = 0, n3 = 0;
    float *one = train_with_threads(1, &n1);
    float *two = train_with_threads(2, &n2);
    float *three = train_with_threads(3, &n3);
    REQUIRE(one && two && three);
    CHECK(memcmp(one, two, n1 * sizeof(float)) == 0);
    CHECK(memcmp(one, three, n1 * sizeof(float)) == 0);
    CHECK_EQ_INT(dsc_set_threads(0), DSC_EINVAL);
    free(one);
    free(two);
    free(three);
}
