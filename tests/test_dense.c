/*
 * test_dense.c - the layer products of the back end built in (the blocked, threaded kernels,
 * or cblas_sgemm with OpenBLAS) against their plain references, and results that do not
 * depend on the number of threads.
 */
#include "test.h"
#include "internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#ifdef DSC_HAVE_CBLAS
/* OpenBLAS's own, declared here so that the tests need no BLAS header. */
int openblas_get_num_threads(void);
#endif

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

        /* The built-in kernels sum in the reference's order: bit for bit. OpenBLAS sums in
           its own order (checked within rounding by the next test); one output stays built in. */
        dsc__dense_forward(&in, n, k, w, b, m, z1);
        dsc__dense_forward_ref(&in, n, k, w, b, m, z2);
        dsc__dense_grad_w(&in, n, k, dz, m, dw1, db1);
        dsc__dense_grad_w_ref(&in, n, k, dz, m, dw2, db2);
        CHECK(memcmp(db1, db2, m * sizeof(float)) == 0);
#ifdef DSC_HAVE_CBLAS
        if (m == 1)
#endif
        {
            CHECK(memcmp(z1, z2, n * m * sizeof(float)) == 0);
            CHECK(memcmp(dw1, dw2, k * m * sizeof(float)) == 0);
        }

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

/* Values that are multiples of 1/8 in [-1, 1]: their products and sums here are exact. */
static void fill_eighths(float *v, size_t n, dsc_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((int)dsc_rng_below(rng, 17) - 8) / 8.0f;
}

static float *absolute(const float *v, size_t n)
{
    float *out = malloc(n * sizeof(float));
    for (size_t i = 0; out && i < n; i++)
        out[i] = fabsf(v[i]);
    return out;
}

/*
 * got agrees with want within the rounding of any order of summing terms numbers: for
 * element i, (terms + 2) * FLT_EPSILON * scale[i], where scale holds the sums of the
 * absolute values of the terms (twice the classic bound terms * 2^-24 on each side).
 */
static void check_within_rounding(const float *got, const float *want, const float *scale,
                                  size_t count, size_t terms)
{
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        double tol = (double)(terms + 2) * FLT_EPSILON * scale[i];
        if (!(fabs((double)got[i] - (double)want[i]) <= tol) && bad++ == 0)
            CHECK_NEAR(got[i], want[i], tol);
    }
    CHECK(bad == 0);
}

/*
 * One shape through the back end in use and the references, with the batch's rows taken
 * three ways: evenly spaced (first and a stride wider than k), picked by index in the same
 * order, and picked in a random order. exact: values in eighths, whose sums are exact in
 * float whatever the order, so every result must equal the reference bit for bit; otherwise
 * uniform values, checked within the rounding of the sums.
 */
static void check_back_end_shape(size_t n, size_t k, size_t m, int exact, dsc_rng *rng)
{
    size_t stride = k + 3, rows_total = n + 7;
    void (*fill_values)(float *, size_t, dsc_rng *) = exact ? fill_eighths : fill;
    float *a = malloc(rows_total * stride * sizeof(float)), *w = malloc(k * m * sizeof(float));
    float *b = malloc(m * sizeof(float)), *dz = malloc(n * m * sizeof(float));
    float *dw0 = malloc(k * m * sizeof(float)), *db0 = malloc(m * sizeof(float));
    float *z[2], *dw[2], *db[2], *da[2];
    uint32_t *same = malloc(n * sizeof(uint32_t)), *shuffled = malloc(n * sizeof(uint32_t));
    REQUIRE(a && w && b && dz && dw0 && db0 && same && shuffled);
    for (int v = 0; v < 2; v++) {
        z[v] = malloc(n * m * sizeof(float));
        dw[v] = malloc(k * m * sizeof(float));
        db[v] = malloc(m * sizeof(float));
        da[v] = malloc(n * k * sizeof(float));
        REQUIRE(z[v] && dw[v] && db[v] && da[v]);
    }
    fill_values(a, rows_total * stride, rng);
    fill_values(w, k * m, rng);
    fill_values(b, m, rng);
    fill_values(dz, n * m, rng);
    fill_values(dw0, k * m, rng);
    fill_values(db0, m, rng);
    for (size_t i = 0; i < n; i++) {
        same[i] = (uint32_t)(2 + i);
        shuffled[i] = (uint32_t)dsc_rng_below(rng, rows_total);
    }
    const dsc_rows views[3] = {{.base = a, .first = 2, .stride = stride},
                               {.base = a, .rows = same, .stride = stride},
                               {.base = a, .rows = shuffled, .stride = stride}};

    /* Bounds on the rounding: the references run on absolute values. */
    float *abs_a = absolute(a, rows_total * stride), *abs_w = absolute(w, k * m);
    float *abs_b = absolute(b, m), *abs_dz = absolute(dz, n * m);
    float *z_scale = malloc(n * m * sizeof(float)), *dw_scale = absolute(dw0, k * m);
    float *db_scale = absolute(db0, m), *da_scale = malloc(n * k * sizeof(float));
    REQUIRE(abs_a && abs_w && abs_b && abs_dz && z_scale && dw_scale && db_scale && da_scale);

    float *first_z = malloc(n * m * sizeof(float)), *first_dw = malloc(k * m * sizeof(float));
    REQUIRE(first_z && first_dw);
    for (int view = 0; view < 3; view++) {
        const dsc_rows *in = &views[view];
        dsc_rows abs_in = *in;
        abs_in.base = abs_a;
        dsc__dense_forward(in, n, k, w, b, m, z[0]);
        dsc__dense_forward_ref(in, n, k, w, b, m, z[1]);
        for (int v = 0; v < 2; v++) {
            memcpy(dw[v], dw0, k * m * sizeof(float));
            memcpy(db[v], db0, m * sizeof(float));
        }
        dsc__dense_grad_w(in, n, k, dz, m, dw[0], db[0]);
        dsc__dense_grad_w_ref(in, n, k, dz, m, dw[1], db[1]);
        dsc__dense_grad_input(dz, n, m, w, k, da[0]);
        dsc__dense_grad_input_ref(dz, n, m, w, k, da[1]);

        if (exact) {
            CHECK(memcmp(z[0], z[1], n * m * sizeof(float)) == 0);
            CHECK(memcmp(dw[0], dw[1], k * m * sizeof(float)) == 0);
            CHECK(memcmp(da[0], da[1], n * k * sizeof(float)) == 0);
        } else {
            dsc__dense_forward_ref(&abs_in, n, k, abs_w, abs_b, m, z_scale);
            for (size_t i = 0; i < k * m; i++)
                dw_scale[i] = fabsf(dw0[i]);
            dsc__dense_grad_w_ref(&abs_in, n, k, abs_dz, m, dw_scale, db_scale);
            dsc__dense_grad_input_ref(abs_dz, n, m, abs_w, k, da_scale);
            check_within_rounding(z[0], z[1], z_scale, n * m, k + 1);
            check_within_rounding(dw[0], dw[1], dw_scale, k * m, n + 1);
            check_within_rounding(da[0], da[1], da_scale, n * k, m);
        }
        CHECK(memcmp(db[0], db[1], m * sizeof(float)) == 0);

        /* Evenly spaced rows and the same rows picked by index: the same bits. */
        if (view == 0) {
            memcpy(first_z, z[0], n * m * sizeof(float));
            memcpy(first_dw, dw[0], k * m * sizeof(float));
        } else if (view == 1) {
            CHECK(memcmp(first_z, z[0], n * m * sizeof(float)) == 0);
            CHECK(memcmp(first_dw, dw[0], k * m * sizeof(float)) == 0);
        }
    }

    free(a), free(w), free(b), free(dz), free(dw0), free(db0), free(same), free(shuffled);
    for (int v = 0; v < 2; v++)
        free(z[v]), free(dw[v]), free(db[v]), free(da[v]);
    free(abs_a), free(abs_w), free(abs_b), free(abs_dz), free(z_scale), free(dw_scale);
    free(db_scale), free(da_scale), free(first_z), free(first_dw);
}

/*
 * The back end in use (OpenBLAS when built with it) against the plain references on shapes
 * that cross every size where the products are cut up (dense.c cuts OpenBLAS's into tasks
 * 128 outputs wide, of 64 rows, sums of 256 terms in the forward pass and of 128 rows in the
 * weight gradient): one row, one input, one or two outputs, widths around 128 and 256, more
 * rows than 64 and 128, long sums.
 */
TEST(dense_back_end_matches_the_reference_on_odd_shapes)
{
    const size_t shapes[][3] = {{1, 1, 1},      {1, 1, 2},     {2, 1, 3},       {1, 5, 128},
                                {3, 7, 129},    {65, 127, 127}, {64, 256, 128}, {150, 260, 140},
                                {5, 3000, 66},  {257, 3, 2},   {7, 300, 1},     {70, 129, 257}};
    dsc_rng rng;
    dsc_rng_seed(&rng, 21);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int exact = 0; exact < 2; exact++)
            check_back_end_shape(shapes[s][0], shapes[s][1], shapes[s][2], exact, &rng);
    }
}

/* Train an MLP wide enough that its products are split over threads (784-like sizes). */
static float *train_wide_with_threads(int threads, size_t *n_params)
{
    enum { N = 768, K = 300 };
    float *x = malloc((size_t)N * K * sizeof(float));
    int32_t *label = malloc(N * sizeof(int32_t));
    if (!x || !label) {
        free(x), free(label);
        return NULL;
    }
    dsc_rng rng;
    dsc_rng_seed(&rng, 8);
    for (size_t r = 0; r < N; r++) {
        label[r] = (int32_t)(r % 5);
        for (size_t j = 0; j < K; j++)
            x[r * K + j] = (float)(dsc_rng_normal(&rng) + 0.5 * (j % 5 == (size_t)label[r]));
    }
    dsc_data d = {.n_rows = N, .n_features = K, .x = x, .label = label};
    dsc_model_config mc;
    dsc_model_config_init(&mc, K, 5, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 2;
    mc.hidden[0] = 256;
    mc.hidden[1] = 70;
    dsc_model *m = dsc_model_new(&mc, NULL);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.batch = 256;
    cfg.epochs = 2;
    float *out = NULL;
    if (m && dsc_set_threads(threads) == DSC_OK && dsc_train(m, &d, NULL, &cfg) == DSC_OK) {
        *n_params = dsc_model_n_params(m);
        out = malloc(*n_params * sizeof(float));
        if (out)
            memcpy(out, dsc_model_params(m), *n_params * sizeof(float));
    }
    dsc_model_free(m);
    free(x), free(label);
    return out;
}

/*
 * Training with products big enough to be split over threads (batch 256, 300 -> 256 -> 70
 * -> 5) gives the same weights bit for bit on 1, 2 and 3 threads, with either back end;
 * OpenBLAS is kept to one thread of its own.
 */
TEST(dense_wide_training_is_bit_identical_for_any_thread_count)
{
    size_t n1 = 0, n2 = 0, n3 = 0;
    float *one = train_wide_with_threads(1, &n1);
    float *two = train_wide_with_threads(2, &n2);
#ifdef _OPENMP
    CHECK_EQ_INT(dsc_threads(), 2);
#endif
    float *three = train_wide_with_threads(3, &n3);
    REQUIRE(one && two && three);
    REQUIRE(n1 == n2 && n1 == n3);
    CHECK(memcmp(one, two, n1 * sizeof(float)) == 0);
    CHECK(memcmp(one, three, n1 * sizeof(float)) == 0);
#ifdef DSC_HAVE_CBLAS
    CHECK_EQ_INT(openblas_get_num_threads(), 1);
#endif

    /* Training did something: the weights moved away from a fresh model's. */
    dsc_model_config mc;
    dsc_model_config_init(&mc, 300, 5, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 2;
    mc.hidden[0] = 256;
    mc.hidden[1] = 70;
    dsc_model *fresh = dsc_model_new(&mc, NULL);
    REQUIRE(fresh && dsc_model_n_params(fresh) == n1);
    CHECK(memcmp(dsc_model_params(fresh), one, n1 * sizeof(float)) != 0);
    dsc_model_free(fresh);
    free(one), free(two), free(three);
}

/* The build names its matrix-product back end first among its features. */
TEST(dense_build_features_name_the_gemm_back_end)
{
    const char *features = dsc_build_features();
#ifdef DSC_HAVE_CBLAS
    const char *want = "gemm=openblas";
#else
    const char *want = "gemm=built-in";
#endif
    CHECK(strncmp(features, want, strlen(want)) == 0);
    CHECK(features[strlen(want)] == '\0' || features[strlen(want)] == ' ');
}

#if defined(DSC_HAVE_CBLAS) && defined(__GNUC__) && defined(__linux__)
#define CHECK_POOL 1
#include <dirent.h>

/* OpenBLAS's own, declared here with plain ints for its enums (row major 101, no trans 111). */
void openblas_set_num_threads(int num_threads);
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);

/* Threads of this process, from /proc/self/task; -1 when it cannot be read. */
static int thread_count(void)
{
    DIR *dir = opendir("/proc/self/task");
    int count = 0;
    if (!dir)
        return -1;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        count += e->d_name[0] != '.';
    closedir(dir);
    return count;
}
#else
#define CHECK_POOL 0
#endif

/*
 * With OpenBLAS (Linux): its pool, started by a product on two of its threads, is stopped by
 * dsc_set_threads (its idle threads would poll on the cores the library's threads use), and
 * OpenBLAS is left on one thread a call. Other builds have no pool to stop.
 */
TEST(dense_set_threads_stops_the_openblas_pool)
{
#if CHECK_POOL
    enum { S = 384 };
    float *a = calloc(S * S, sizeof(float)), *c = calloc(S * S, sizeof(float));
    REQUIRE(a && c);
    int before = thread_count();
    REQUIRE(before > 0);

    openblas_set_num_threads(2);
    cblas_sgemm(101, 111, 111, S, S, S, 1.0f, a, S, a, S, 0.0f, c, S);
    int running = thread_count();
    REQUIRE(dsc_set_threads(2) == DSC_OK);
    int after = thread_count();

    if (running <= before)
        fprintf(stderr, "    this OpenBLAS started no pool (%d threads)\n", running);
    CHECK(running > before); /* the product did start the pool */
    CHECK_EQ_INT(after, before);
    CHECK_EQ_INT(openblas_get_num_threads(), 1);
    free(a);
    free(c);
#elif defined(DSC_HAVE_CBLAS)
    CHECK_EQ_INT(dsc_set_threads(2), DSC_OK);
    CHECK_EQ_INT(openblas_get_num_threads(), 1);
#else
    CHECK_EQ_INT(dsc_set_threads(2), DSC_OK);
    CHECK(strstr(dsc_build_features(), "gemm=built-in") != NULL); /* no OpenBLAS, no pool */
#endif
    REQUIRE(dsc_set_threads(1) == DSC_OK);
}
