/*
 * test_linear.c - the one-pass loss and gradient of models without hidden layers
 * (src/linear.c): against the general path (forward pass, losses, backpropagation) for every
 * loss with sample weights, class weights, L1 and L2; against a plain reference summed in
 * double; against central differences of the loss; bit for bit against the sparse kernels,
 * which sum in the same order; the same bits for any number of threads; and taken exactly
 * where it applies.
 *
 * Tolerances. Both paths sum each gradient element in float, the one-pass path in chunks of
 * the batch for more than 256 rows, so the two agree to a few float roundings of the largest
 * gradient element: 1e-5 of it is checked. The double reference gets the same bound.
 */
#include "test.h"
#include "internal.h"
#include "sparse.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 1100
#define MAX_FEATURES 41
#define MAX_OUTPUTS 3

/* Rows of features in [-1, 1] with classes, targets and sample weights; and a row order. */
typedef struct {
    float x[MAX_ROWS * MAX_FEATURES];
    int32_t label[MAX_ROWS];
    float y[MAX_ROWS * MAX_OUTPUTS];
    float weight[MAX_ROWS];
    uint32_t order[MAX_ROWS];
    dsc_data data;
} linear_set;

static void make_set(linear_set *s, size_t n, size_t k, size_t n_classes, size_t n_targets,
                     uint64_t seed)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    for (size_t i = 0; i < n * k; i++)
        s->x[i] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
    for (size_t r = 0; r < n; r++) {
        s->label[r] = n_classes ? (int32_t)dsc_rng_below(&rng, n_classes) : 0;
        for (size_t j = 0; j < n_targets; j++)
            s->y[r * n_targets + j] = (float)(2.0 * dsc_rng_normal(&rng));
        s->weight[r] = (float)(0.25 + 1.5 * dsc_rng_uniform(&rng));
        s->order[r] = (uint32_t)r;
    }
    dsc_rng_shuffle(&rng, s->order, n);
    s->data = (dsc_data){.n_rows = n, .n_features = k, .x = s->x, .label = s->label,
                         .y = s->y, .n_targets = n_targets};
}

/* Random weights and biases in [-scale, scale]. */
static void randomise(dsc_model *m, uint64_t seed, double scale)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    float *p = dsc_model_params(m);
    for (size_t i = 0; i < dsc_model_n_params(m); i++)
        p[i] = (float)(scale * (2.0 * dsc_rng_uniform(&rng) - 1.0));
}

static double max_abs(const float *v, size_t n)
{
    double top = 0.0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs((double)v[i]));
    return top;
}

/* Elements of a and b further apart than rel times the largest |b| (each reported). */
static int count_far(const float *a, const float *b, size_t n, double rel, const char *what)
{
    double limit = rel * max_abs(b, n);
    int far = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - (double)b[i]) <= limit) && far++ < 3)
            fprintf(stderr, "    %s %zu: %.9g against %.9g (limit %g)\n", what, i, a[i], b[i],
                    limit);
    }
    return far;
}

/* The model configurations of a loss: one logit or several, one target or several. */
static size_t loss_outputs(dsc_loss loss, size_t variant)
{
    if (loss == DSC_LOSS_SOFTMAX)
        return variant == 0 ? 2 : 3;
    if (dsc_loss_is_classification(loss))
        return variant == 0 ? 2 : 3; /* 2 classes: one logit; 3: one-vs-rest */
    return variant == 0 ? 1 : 3;
}

static dsc_model *new_model(dsc_loss loss, size_t n_inputs, size_t outputs, uint64_t seed)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, n_inputs, outputs, loss);
    dsc_model *m = dsc_model_new(&cfg, NULL);
    if (m)
        randomise(m, seed, 1.0);
    return m;
}

/*
 * For every loss, both output shapes, odd feature counts, batches of 1, 5, 256, 300 and 1000
 * rows (one chunk and several), with and without sample and class weights and penalties:
 * the one-pass path gives the general path's loss, logits and gradient.
 */
TEST(linear_one_pass_matches_the_general_path)
{
    static linear_set s;
    const size_t features[] = {1, 7, 13, 41};
    const size_t batches[] = {1, 5, 256, 300, 1000};
    const float class_weight[MAX_OUTPUTS] = {0.5f, 2.0f, 1.25f};
    const dsc_objective objectives[] = {
        {0}, {.l1 = 0.01, .l2 = 0.1}, {.class_weight = class_weight},
        {.l1 = 0.02, .l2 = 0.05, .class_weight = class_weight},
    };
    int cases = 0;

    for (int loss = 0; loss < DSC_LOSS_COUNT; loss++) {
        int classifier = dsc_loss_is_classification(loss);
        for (size_t variant = 0; variant < 2; variant++) {
            size_t outputs = loss_outputs(loss, variant);
            for (size_t f = 0; f < sizeof features / sizeof features[0]; f++) {
                size_t k = features[f];
                make_set(&s, MAX_ROWS, k, classifier ? outputs : 0, classifier ? 0 : outputs,
                         100 + 10 * (uint64_t)loss + variant);
                dsc_model *fused = new_model(loss, k, outputs, 7 + f);
                dsc_model *general = new_model(loss, k, outputs, 7 + f);
                REQUIRE(fused && general);
                dsc__model_allow_linear(general, 0);
                size_t n_params = dsc_model_n_params(fused);
                size_t n_logits = dsc_model_n_logits(fused);

                for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                    for (size_t o = 0; o < sizeof objectives / sizeof objectives[0]; o++) {
                        size_t n = batches[b];
                        const dsc_objective *obj = &objectives[o];
                        /* sample weights with the class weights; rows 0..n-1 for batch 5 */
                        s.data.weight = obj->class_weight ? s.weight : NULL;
                        const uint32_t *rows = n == 5 ? NULL : s.order;

                        uint64_t before = dsc__model_linear_batches(fused);
                        double loss_f, loss_g;
                        REQUIRE(dsc_model_loss_grad(fused, &s.data, rows, n, obj, &loss_f) ==
                                DSC_OK);
                        REQUIRE(dsc_model_loss_grad(general, &s.data, rows, n, obj, &loss_g) ==
                                DSC_OK);
                        CHECK(dsc__model_linear_batches(fused) == before + 1);
                        CHECK(dsc__model_linear_batches(general) == 0);

                        CHECK_REL(loss_f, loss_g, 1e-6, 1e-12);
                        const float *gf = dsc_model_grads(fused);
                        const float *gg = dsc_model_grads(general);
                        if (n >= 256) /* one row can sit where its loss is flat */
                            CHECK(max_abs(gg, n_params) > 0.0);
                        int far = count_far(gf, gg, n_params, 1e-5, "gradient");
                        far += count_far(dsc__model_logits(fused), dsc__model_logits(general),
                                         n * n_logits, 1e-6, "logit");
                        if (far)
                            fprintf(stderr, "    loss %s, %zu outputs, %zu features, batch %zu,"
                                    " objective %zu\n", dsc_loss_name(loss), outputs, k, n, o);
                        CHECK_EQ_INT(far, 0);
                        cases++;
                    }
                }
                dsc_model_free(fused);
                dsc_model_free(general);
            }
        }
    }
    CHECK_EQ_INT(cases, DSC_LOSS_COUNT * 2 * 4 * 5 * 4);
}

/*
 * A plain reference of the batch gradient: each row's score gradient from the per-row loss
 * (itself checked against central differences in test_grad.c), its share from the sample and
 * class weights, the products summed in double over the rows, and the penalty's gradient.
 */
static void reference_gradient(const dsc_model *m, const dsc_data *d, const uint32_t *rows,
                               size_t n, const dsc_objective *obj, double *grad, double *loss)
{
    const dsc_model_config *cfg = dsc_model_config_of(m);
    size_t n_in = cfg->n_inputs, k = dsc_model_n_logits(m), n_weights = n_in * k;
    const float *w = dsc_model_params((dsc_model *)m), *b = w + n_weights;
    int classifier = dsc_loss_is_classification(cfg->loss);
    float param = dsc__loss_param(cfg->loss, cfg->loss_param);
    double weight_sum = 0.0, total = 0.0;

    for (size_t i = 0; i < n; i++)
        weight_sum += d->weight ? d->weight[rows[i]] : 1.0;
    memset(grad, 0, (n_weights + k) * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        const float *x = d->x + r * n_in;
        float z[MAX_OUTPUTS], dz[MAX_OUTPUTS];
        for (size_t j = 0; j < k; j++) {
            double sum = b[j];
            for (size_t p = 0; p < n_in; p++)
                sum += (double)x[p] * w[p * k + j];
            z[j] = (float)sum;
        }
        int32_t label = classifier ? d->label[r] : 0;
        double share = d->weight ? d->weight[r] : 1.0;
        if (classifier && obj->class_weight)
            share *= obj->class_weight[label];
        share /= weight_sum;
        total += share * dsc__row_loss(cfg->loss, param, z, k, label,
                                       classifier ? NULL : d->y + r * d->n_targets,
                                       (float)share, dz);
        for (size_t j = 0; j < k; j++) {
            grad[n_weights + j] += dz[j];
            for (size_t p = 0; p < n_in; p++)
                grad[p * k + j] += (double)x[p] * dz[j];
        }
    }
    for (size_t i = 0; i < n_weights; i++) {
        double sign = w[i] > 0.0f ? 1.0 : (w[i] < 0.0f ? -1.0 : 0.0);
        grad[i] += obj->l2 * w[i] + obj->l1 * sign;
        total += obj->l1 * fabs((double)w[i]) + 0.5 * obj->l2 * (double)w[i] * w[i];
    }
    *loss = total;
}

TEST(linear_one_pass_matches_a_double_reference)
{
    static linear_set s;
    static double grad[MAX_FEATURES * MAX_OUTPUTS + MAX_OUTPUTS];
    static float as_float[MAX_FEATURES * MAX_OUTPUTS + MAX_OUTPUTS];
    const float class_weight[MAX_OUTPUTS] = {1.5f, 0.25f, 1.0f};
    const size_t batches[] = {1, 3, 257, 1000};

    for (int loss = 0; loss < DSC_LOSS_COUNT; loss++) {
        int classifier = dsc_loss_is_classification(loss);
        for (size_t variant = 0; variant < 2; variant++) {
            size_t outputs = loss_outputs(loss, variant);
            make_set(&s, MAX_ROWS, 11, classifier ? outputs : 0, classifier ? 0 : outputs,
                     300 + (uint64_t)loss);
            s.data.weight = s.weight;
            dsc_model *m = new_model(loss, 11, outputs, 40 + (uint64_t)loss);
            REQUIRE(m);
            dsc_objective obj = {.l1 = 0.03, .l2 = 0.2, .class_weight = class_weight};
            size_t n_params = dsc_model_n_params(m);

            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                double loss_f, loss_ref;
                REQUIRE(dsc_model_loss_grad(m, &s.data, s.order, batches[b], &obj, &loss_f) ==
                        DSC_OK);
                CHECK(dsc__model_linear_batches(m) == b + 1);
                reference_gradient(m, &s.data, s.order, batches[b], &obj, grad, &loss_ref);
                for (size_t i = 0; i < n_params; i++)
                    as_float[i] = (float)grad[i];
                CHECK_REL(loss_f, loss_ref, 1e-5, 1e-9);
                int far = count_far(dsc_model_grads(m), as_float, n_params, 1e-5, "gradient");
                if (far)
                    fprintf(stderr, "    loss %s, %zu outputs, batch %zu\n",
                            dsc_loss_name(loss), outputs, batches[b]);
                CHECK_EQ_INT(far, 0);
            }
            dsc_model_free(m);
        }
    }
}

/*
 * Central differences of the loss (the general forward pass of dsc_model_loss) for the smooth
 * losses, on a batch of several chunks with sample and class weights and an L2 penalty.
 */
TEST(linear_one_pass_matches_finite_differences)
{
    static linear_set s;
    const dsc_loss losses[] = {DSC_LOSS_SQUARED, DSC_LOSS_LOG, DSC_LOSS_SOFTMAX};
    const float class_weight[MAX_OUTPUTS] = {0.75f, 1.5f, 1.0f};

    for (size_t l = 0; l < sizeof losses / sizeof losses[0]; l++) {
        dsc_loss loss = losses[l];
        int classifier = dsc_loss_is_classification(loss);
        size_t outputs = 3;
        make_set(&s, 700, 5, classifier ? outputs : 0, classifier ? 0 : outputs, 50 + l);
        s.data.weight = s.weight;
        dsc_model *m = new_model(loss, 5, outputs, 60 + l);
        REQUIRE(m);
        dsc_objective obj = {.l2 = 0.3, .class_weight = class_weight};
        size_t n_params = dsc_model_n_params(m);
        double value;
        REQUIRE(dsc_model_loss_grad(m, &s.data, s.order, 700, &obj, &value) == DSC_OK);
        CHECK(dsc__model_linear_batches(m) == 1);
        float one_pass[MAX_FEATURES * MAX_OUTPUTS + MAX_OUTPUTS];
        memcpy(one_pass, dsc_model_grads(m), n_params * sizeof(float));

        float *p = dsc_model_params(m);
        int far = 0;
        for (size_t i = 0; i < n_params; i++) {
            float saved = p[i];
            double plus, minus;
            p[i] = saved + 1e-3f;
            double up = p[i];
            REQUIRE(dsc_model_loss(m, &s.data, s.order, 700, &obj, &plus) == DSC_OK);
            p[i] = saved - 1e-3f;
            double down = p[i];
            REQUIRE(dsc_model_loss(m, &s.data, s.order, 700, &obj, &minus) == DSC_OK);
            p[i] = saved;
            double fd = (plus - minus) / (up - down);
            if (fabs(fd - one_pass[i]) > 1e-2 * fabs(fd) + 1e-4 && far++ < 3)
                fprintf(stderr, "    %s parameter %zu: one pass %.8g, difference %.8g\n",
                        dsc_loss_name(loss), i, one_pass[i], fd);
        }
        CHECK(max_abs(one_pass, n_params) > 1e-3);
        CHECK_EQ_INT(far, 0);
        dsc_model_free(m);
    }
}

/*
 * With several scores, the one-pass path does the arithmetic of the sparse kernels given
 * every value of the rows as a non-zero: each score sums its products in input order, each
 * gradient element its rows in row order. Up to 256 rows (one chunk) the two agree bit for
 * bit, whatever kernels dense.c uses.
 */
TEST(linear_one_pass_sums_as_the_sparse_kernels)
{
    static linear_set s;
    static uint64_t row_ptr[MAX_ROWS + 1];
    static uint32_t col[MAX_ROWS * MAX_FEATURES];
    const dsc_loss losses[] = {DSC_LOSS_SOFTMAX, DSC_LOSS_LOG, DSC_LOSS_HUBER};
    const size_t features[] = {1, 7, 13};
    const size_t batches[] = {1, 3, 4, 5, 6, 7, 256};
    const float class_weight[MAX_OUTPUTS] = {0.5f, 2.0f, 1.25f};
    dsc_objective obj = {.l1 = 0.01, .l2 = 0.1, .class_weight = class_weight};

    for (size_t l = 0; l < sizeof losses / sizeof losses[0]; l++) {
        int classifier = dsc_loss_is_classification(losses[l]);
        for (size_t f = 0; f < sizeof features / sizeof features[0]; f++) {
            size_t k = features[f];
            make_set(&s, MAX_ROWS, k, classifier ? 3 : 0, classifier ? 0 : 3, 20 + l);
            s.data.weight = s.weight;
            for (size_t r = 0; r <= MAX_ROWS; r++)
                row_ptr[r] = r * k;
            for (size_t i = 0; i < MAX_ROWS * k; i++)
                col[i] = (uint32_t)(i % k);
            dsc_data csr = s.data;
            csr.x = NULL;
            csr.row_ptr = row_ptr;
            csr.col = col;
            csr.val = s.x;

            dsc_model *fused = new_model(losses[l], k, 3, 30 + f);
            dsc_model *sparse = new_model(losses[l], k, 3, 30 + f);
            REQUIRE(fused && sparse);
            size_t n_params = dsc_model_n_params(fused);
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                size_t n = batches[b];
                double loss_f, loss_s;
                REQUIRE(dsc_model_loss_grad(fused, &s.data, s.order, n, &obj, &loss_f) ==
                        DSC_OK);
                REQUIRE(dsc_model_loss_grad(sparse, &csr, s.order, n, &obj, &loss_s) ==
                        DSC_OK);
                CHECK(dsc__model_linear_batches(fused) == b + 1);
                CHECK(memcmp(&loss_f, &loss_s, sizeof loss_f) == 0);
                CHECK(memcmp(dsc__model_logits(fused), dsc__model_logits(sparse),
                             n * 3 * sizeof(float)) == 0);
                CHECK(memcmp(dsc_model_grads(fused), dsc_model_grads(sparse),
                             n_params * sizeof(float)) == 0);
            }
            dsc_model_free(fused);
            dsc_model_free(sparse);
        }
    }
}

/*
 * A set large enough for the one-pass path to use threads (a batch of more than 2^20
 * multiply-adds): 2,000 rows of 200 features, 3 classes and 3 targets, sample weights.
 */
#define BIG_ROWS 2000
#define BIG_FEATURES 200

typedef struct {
    float *x, *y, *weight;
    int32_t *label;
    uint32_t *order;
    dsc_data data;
} big_set;

static int make_big(big_set *s, uint64_t seed)
{
    s->x = malloc(BIG_ROWS * BIG_FEATURES * sizeof(float));
    s->y = malloc(BIG_ROWS * 3 * sizeof(float));
    s->weight = malloc(BIG_ROWS * sizeof(float));
    s->label = malloc(BIG_ROWS * sizeof(int32_t));
    s->order = malloc(BIG_ROWS * sizeof(uint32_t));
    if (!s->x || !s->y || !s->weight || !s->label || !s->order)
        return 0;
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    for (size_t i = 0; i < BIG_ROWS * BIG_FEATURES; i++)
        s->x[i] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
    for (size_t r = 0; r < BIG_ROWS; r++) {
        s->label[r] = (int32_t)dsc_rng_below(&rng, 3);
        for (size_t j = 0; j < 3; j++)
            s->y[r * 3 + j] = (float)dsc_rng_normal(&rng);
        s->weight[r] = (float)(0.5 + dsc_rng_uniform(&rng));
        s->order[r] = (uint32_t)r;
    }
    dsc_rng_shuffle(&rng, s->order, BIG_ROWS);
    s->data = (dsc_data){.n_rows = BIG_ROWS, .n_features = BIG_FEATURES, .x = s->x,
                         .label = s->label, .y = s->y, .n_targets = 3, .weight = s->weight};
    return 1;
}

static void free_big(big_set *s)
{
    free(s->x), free(s->y), free(s->weight), free(s->label), free(s->order);
}

/* The loss and gradient of the first n rows of s's order at a number of threads. */
static float *gradient_at(const big_set *s, int threads, dsc_loss loss, size_t n,
                          double *value)
{
    const float class_weight[3] = {2.0f, 0.5f, 1.0f};
    dsc_objective obj = {.l1 = 0.01, .l2 = 0.01, .class_weight = class_weight};
    dsc_model *m = new_model(loss, BIG_FEATURES, 3, 5);
    float *grad = NULL;

    if (m && dsc_set_threads(threads) == DSC_OK &&
        dsc_model_loss_grad(m, &s->data, s->order, n, &obj, value) == DSC_OK &&
        dsc__model_linear_batches(m) == 1) {
        grad = malloc(dsc_model_n_params(m) * sizeof(float));
        if (grad)
            memcpy(grad, dsc_model_grads(m), dsc_model_n_params(m) * sizeof(float));
    }
    dsc_model_free(m);
    return grad;
}

TEST(linear_one_pass_is_the_same_for_any_number_of_threads)
{
    const dsc_loss losses[] = {DSC_LOSS_LOG, DSC_LOSS_SOFTMAX, DSC_LOSS_HUBER};
    const size_t batches[] = {300, 1777, BIG_ROWS};
    big_set s;
    REQUIRE(make_big(&s, 77));

    for (size_t l = 0; l < sizeof losses / sizeof losses[0]; l++) {
        size_t n_params = BIG_FEATURES * 3 + 3;
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            double loss_one = NAN, loss_more = NAN;
            float *one = gradient_at(&s, 1, losses[l], batches[b], &loss_one);
            REQUIRE(one);
            for (int threads = 2; threads <= 4; threads++) {
                float *more = gradient_at(&s, threads, losses[l], batches[b], &loss_more);
                REQUIRE(more);
                CHECK(memcmp(&loss_one, &loss_more, sizeof loss_one) == 0);
                CHECK(memcmp(one, more, n_params * sizeof(float)) == 0);
                free(more);
            }
            free(one);
        }
    }
    free_big(&s);
}

/* Three epochs of batch rows, no validation, no stopping rule, the default optimizer. */
static void three_epochs_config(dsc_train_config *cfg, size_t batch, uint64_t seed)
{
    dsc_train_config_default(cfg);
    cfg->batch = batch;
    cfg->epochs = 3;
    cfg->tol = -1.0;
    cfg->val_fraction = 0.0;
    cfg->early_stopping = 0;
    cfg->seed = seed;
}

/* Softmax regression trained on s at a number of threads; returns its weights. */
static float *train_at(const big_set *s, int threads, size_t batch, size_t *n_params)
{
    dsc_model_config mc;
    dsc_model_config_init(&mc, BIG_FEATURES, 3, DSC_LOSS_SOFTMAX);
    dsc_model *m = dsc_model_new(&mc, NULL);
    dsc_train_config cfg;
    three_epochs_config(&cfg, batch, 4);
    float *out = NULL;
    if (m && dsc_set_threads(threads) == DSC_OK && dsc_train(m, &s->data, NULL, &cfg) == DSC_OK &&
        dsc__model_linear_batches(m) > 0) {
        *n_params = dsc_model_n_params(m);
        out = malloc(*n_params * sizeof(float));
        if (out)
            memcpy(out, dsc_model_params(m), *n_params * sizeof(float));
    }
    dsc_model_free(m);
    return out;
}

TEST(linear_training_is_the_same_for_any_number_of_threads)
{
    const size_t batches[] = {32, 1800};
    big_set s;
    REQUIRE(make_big(&s, 91));
    for (size_t b = 0; b < 2; b++) {
        size_t n1 = 0, n2 = 0;
        float *one = train_at(&s, 1, batches[b], &n1), *two = train_at(&s, 2, batches[b], &n2);
        REQUIRE(one && two && n1 == n2);
        CHECK(memcmp(one, two, n1 * sizeof(float)) == 0);
        CHECK(max_abs(one, n1) > 0.0);
        free(one);
        free(two);
    }
    free_big(&s);
}

/*
 * The one-pass path is taken for dense rows of models without hidden layers that fit its
 * limit, and not for a network, for sparse rows, for a model beyond the limit, or for the
 * loss alone.
 */
TEST(linear_one_pass_is_taken_where_it_applies)
{
    static linear_set s;
    make_set(&s, 40, 7, 3, 0, 12);
    double loss;

    dsc_model *linear = new_model(DSC_LOSS_SOFTMAX, 7, 3, 1);
    REQUIRE(linear);
    REQUIRE(dsc_model_loss_grad(linear, &s.data, NULL, 40, NULL, &loss) == DSC_OK);
    CHECK(dsc__model_linear_batches(linear) == 1);
    REQUIRE(dsc_model_loss(linear, &s.data, NULL, 40, NULL, &loss) == DSC_OK);
    CHECK(dsc__model_linear_batches(linear) == 1);

    /* The same rows as CSR: the sparse kernels. */
    uint64_t row_ptr[41];
    uint32_t col[40 * 7];
    for (size_t r = 0; r <= 40; r++)
        row_ptr[r] = r * 7;
    for (size_t i = 0; i < 40 * 7; i++)
        col[i] = (uint32_t)(i % 7);
    dsc_data csr = s.data;
    csr.x = NULL;
    csr.row_ptr = row_ptr;
    csr.col = col;
    csr.val = s.x;
    REQUIRE(dsc_model_loss_grad(linear, &csr, NULL, 40, NULL, &loss) == DSC_OK);
    CHECK(dsc__model_linear_batches(linear) == 1);
    dsc_model_free(linear);

    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 7, 3, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = 1;
    cfg.hidden[0] = 4;
    dsc_model *network = dsc_model_new(&cfg, NULL);
    REQUIRE(network);
    REQUIRE(dsc_model_loss_grad(network, &s.data, NULL, 40, NULL, &loss) == DSC_OK);
    CHECK(dsc__model_linear_batches(network) == 0);
    dsc_model_free(network);

    /* 70,000 inputs by 1 score is beyond the limit: the blocked kernels do better. */
    CHECK(dsc__linear_fits(7, 3));
    CHECK(!dsc__linear_fits(70000, 1));
    CHECK(!dsc__linear_fits(7000, 10));
    /* Chunks depend on the batch alone, never on more than 16. */
    CHECK(dsc__linear_chunks(1) == 1 && dsc__linear_chunks(256) == 1);
    CHECK(dsc__linear_chunks(257) == 2 && dsc__linear_chunks(1000000) == 16);
}

/*
 * One thread against two on a set shaped as the benchmark's (100 features) for one score,
 * and with 37 features for three.
 */
#define PAIR_ROWS 1200
#define PAIR_FEATURES 100

/* The threads the library takes when set to two or three: one in a build without OpenMP. */
#ifdef _OPENMP
#define TWO_THREADS 2
#define THREE_THREADS 3
#else
#define TWO_THREADS 1
#define THREE_THREADS 1
#endif

typedef struct {
    float x[PAIR_ROWS * PAIR_FEATURES];
    int32_t label[PAIR_ROWS];
    float weight[PAIR_ROWS];
    uint32_t order[PAIR_ROWS];
    dsc_data data;
} pair_set;

static void make_pair_set(pair_set *s, size_t n_features, size_t n_classes, uint64_t seed)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    for (size_t i = 0; i < PAIR_ROWS * n_features; i++)
        s->x[i] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
    for (size_t r = 0; r < PAIR_ROWS; r++) {
        s->label[r] = (int32_t)dsc_rng_below(&rng, n_classes);
        s->weight[r] = (float)(0.25 + 1.5 * dsc_rng_uniform(&rng));
        s->order[r] = (uint32_t)r;
    }
    dsc_rng_shuffle(&rng, s->order, PAIR_ROWS);
    s->data = (dsc_data){.n_rows = PAIR_ROWS, .n_features = n_features, .x = s->x,
                         .label = s->label};
}

/*
 * At a number of threads: the loss and gradient of the batch (rows, n) for a fresh model,
 * then the weights after steps of plain gradient descent on it, copied into grad and params.
 * Returns 0 when a call fails.
 */
static int steps_at(const pair_set *s, int threads, dsc_loss loss, size_t classes,
                    const uint32_t *rows, size_t n, double *value, float *grad, float *params)
{
    const size_t steps = 4;
    dsc_model *m = new_model(loss, s->data.n_features, classes, 8);
    int ok = m && dsc_set_threads(threads) == DSC_OK;

    for (size_t step = 0; ok && step < steps; step++) {
        double step_loss;
        ok = dsc_model_loss_grad(m, &s->data, rows, n, NULL, &step_loss) == DSC_OK;
        if (!ok)
            break;
        float *p = dsc_model_params(m);
        const float *g = dsc_model_grads(m);
        if (step == 0) {
            *value = step_loss;
            memcpy(grad, g, dsc_model_n_params(m) * sizeof(float));
        }
        for (size_t i = 0; i < dsc_model_n_params(m); i++)
            p[i] -= 0.5f * g[i];
    }
    ok = ok && dsc__model_linear_batches(m) == steps;
    if (ok)
        memcpy(params, dsc_model_params(m), dsc_model_n_params(m) * sizeof(float));
    dsc_model_free(m);
    return ok;
}

/*
 * One score (logistic loss) and three (softmax); batches of 1 to 1000 rows, of one chunk
 * and of several (those the threads share); rows 0..n-1 and a shuffled order; with and
 * without sample weights: one thread and two give the same loss, gradient and weights after
 * several steps, bit for bit.
 */
TEST(linear_batch_is_the_same_on_one_thread_and_two)
{
    static pair_set s;
    static float grad_one[PAIR_FEATURES * 3 + 3], grad_two[PAIR_FEATURES * 3 + 3];
    static float params_one[PAIR_FEATURES * 3 + 3], params_two[PAIR_FEATURES * 3 + 3];
    const size_t batches[] = {1, 7, 32, 33, 256, 300, 1000};
    const struct {
        dsc_loss loss;
        size_t classes, features;
    } shapes[] = {
        {DSC_LOSS_LOG, 2, PAIR_FEATURES},
        {DSC_LOSS_SOFTMAX, 3, 37},
    };
    int shared = 0, cases = 0;

    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        size_t k = shapes[sh].classes == 2 ? 1 : shapes[sh].classes;
        size_t n_params = (shapes[sh].features + 1) * k;
        make_pair_set(&s, shapes[sh].features, shapes[sh].classes, 60 + sh);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            size_t n = batches[b];
            REQUIRE(dsc_set_threads(2) == DSC_OK);
            shared += dsc__linear_team(n, shapes[sh].features, k) == 2;
            for (int ordered = 0; ordered < 2; ordered++) {
                for (int weighted = 0; weighted < 2; weighted++) {
                    const uint32_t *rows = ordered ? s.order : NULL;
                    s.data.weight = weighted ? s.weight : NULL;
                    double loss_one = NAN, loss_two = NAN;
                    REQUIRE(steps_at(&s, 1, shapes[sh].loss, shapes[sh].classes, rows, n,
                                     &loss_one, grad_one, params_one));
                    REQUIRE(steps_at(&s, 2, shapes[sh].loss, shapes[sh].classes, rows, n,
                                     &loss_two, grad_two, params_two));
                    int same = memcmp(&loss_one, &loss_two, sizeof loss_one) == 0 &&
                               memcmp(grad_one, grad_two, n_params * sizeof(float)) == 0 &&
                               memcmp(params_one, params_two, n_params * sizeof(float)) == 0;
                    if (!same)
                        fprintf(stderr, "    %s, batch %zu, %s, %s\n",
                                dsc_loss_name(shapes[sh].loss), n,
                                ordered ? "shuffled rows" : "rows 0..n-1",
                                weighted ? "sample weights" : "no sample weights");
                    CHECK(same);
                    CHECK(max_abs(grad_one, n_params) > 0.0);
                    cases++;
                }
            }
        }
    }
    CHECK_EQ_INT(cases, 2 * 7 * 2 * 2);
    /* The batches of several chunks (300 and 1000 rows) are shared by two threads. */
    CHECK_EQ_INT(shared, TWO_THREADS == 2 ? 2 * 2 : 0);
}

/*
 * Threads share the chunks of a batch when the library may use several: the benchmark's
 * 1024 rows of 100 features (4 chunks) on as many as it is set to, 300 rows (2 chunks) on
 * at most two; never when set to one; and a batch of one chunk, or of too little work,
 * stays on one thread (measured: starting threads costs more than they save there).
 */
TEST(linear_threads_follow_the_thread_count)
{
    REQUIRE(dsc_set_threads(2) == DSC_OK);
    CHECK_EQ_INT(dsc__linear_team(1024, 100, 1), TWO_THREADS);
    CHECK_EQ_INT(dsc__linear_team(300, 37, 3), TWO_THREADS);
    CHECK_EQ_INT(dsc__linear_team(32, 100, 1), 1);
    CHECK_EQ_INT(dsc__linear_team(256, 100, 10), 1);
    CHECK_EQ_INT(dsc__linear_team(1000, 1, 1), 1);
    REQUIRE(dsc_set_threads(1) == DSC_OK);
    CHECK_EQ_INT(dsc__linear_team(1024, 100, 1), 1);
    REQUIRE(dsc_set_threads(3) == DSC_OK);
    CHECK_EQ_INT(dsc__linear_team(1024, 100, 1), THREE_THREADS);
    CHECK_EQ_INT(dsc__linear_team(300, 100, 1), TWO_THREADS);
}

/*
 * A model with one score (binary logistic, one-target regression) sums each row's score in
 * eight partial sums as dense.c's dot product does, four rows at a time, and its gradient in
 * row order: up to one chunk of rows, the one-pass loss, scores and gradient equal the
 * general path's bit for bit (which keeps the built-in dot products for one output even
 * with OpenBLAS), for feature counts around multiples of eight and batches around groups of
 * four.
 */
TEST(linear_one_score_sums_as_the_dense_kernels)
{
    static linear_set s;
    size_t features[] = {1, 7, 8, 9, 13, 16, 41};
    size_t batches[] = {1, 3, 4, 5, 8, 31, 32, 256};
    dsc_loss losses[] = {DSC_LOSS_LOG, DSC_LOSS_SQUARED};

    for (size_t f = 0; f < sizeof features / sizeof features[0]; f++) {
        make_set(&s, MAX_ROWS, features[f], 2, 1, 900 + f);
        for (size_t l = 0; l < 2; l++) {
            dsc_model *fused = new_model(losses[l], features[f], l == 0 ? 2 : 1, 17 + f);
            dsc_model *general = new_model(losses[l], features[f], l == 0 ? 2 : 1, 17 + f);
            REQUIRE(fused && general);
            REQUIRE(dsc_model_n_logits(fused) == 1);
            dsc__model_allow_linear(general, 0);
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                double loss_fused = 0.0, loss_general = 1.0;
                CHECK_EQ_INT(dsc_model_loss_grad(fused, &s.data, s.order + 7, batches[b], NULL,
                                                 &loss_fused), DSC_OK);
                CHECK_EQ_INT(dsc_model_loss_grad(general, &s.data, s.order + 7, batches[b],
                                                 NULL, &loss_general), DSC_OK);
                size_t n = dsc_model_n_params(fused);
                CHECK(loss_fused == loss_general);
                CHECK(memcmp(dsc_model_grads(fused), dsc_model_grads(general),
                             n * sizeof(float)) == 0);
                CHECK(memcmp(dsc__model_logits(fused), dsc__model_logits(general),
                             batches[b] * sizeof(float)) == 0);
                if (test_failures) {
                    fprintf(stderr, "    (%zu features, %s, batch %zu)\n", features[f],
                            dsc_loss_name(losses[l]), batches[b]);
                    break;
                }
            }
            CHECK(dsc__model_linear_batches(fused) > 0);
            CHECK(dsc__model_linear_batches(general) == 0);
            dsc_model_free(fused);
            dsc_model_free(general);
        }
    }
}

/* The outcome of training on s at a number of threads, warming allowed at any size. */
typedef struct {
    int rc;
    int64_t failed_step;
    uint64_t warmed;
    uint64_t staged;  /* batches read from the warming thread's copies */
    int64_t steps;
    size_t n_epochs;
    double losses[4];
    float params[PAIR_FEATURES + 1];
} warm_run;

static int warm_run_at(const pair_set *s, int threads, size_t batch, double lr, int wait,
                       warm_run *out)
{
    dsc_model *m = new_model(DSC_LOSS_LOG, s->data.n_features, 2, 8);
    dsc_train_config cfg;
    three_epochs_config(&cfg, batch, 12);
    cfg.optim.kind = DSC_OPT_SGD;
    cfg.optim.lr = lr;
    cfg.on_divergence = DSC_DIVERGE_STOP;
    dsc_trainer *t = m && dsc_set_threads(threads) == DSC_OK
                         ? dsc_trainer_new(m, &s->data, NULL, &cfg, NULL)
                         : NULL;
    int ok = t && dsc__trainer_set_warming(t, 1, 0) == DSC_OK &&
             dsc__trainer_wait_for_stage(t, wait) == DSC_OK;

    if (ok) {
        memset(out, 0, sizeof *out);
        out->rc = dsc_trainer_run(t);
        out->failed_step = dsc_trainer_failed_step(t);
        out->warmed = dsc__trainer_warmed_epochs(t);
        out->staged = dsc__trainer_staged_batches(t);
        out->steps = dsc_trainer_steps(t);
        const dsc_epoch_stats *history = dsc_trainer_history(t, &out->n_epochs);
        for (size_t e = 0; e < out->n_epochs && e < 4; e++)
            out->losses[e] = history[e].train_loss;
        memcpy(out->params, dsc_model_params(m), dsc_model_n_params(m) * sizeof(float));
    }
    dsc_trainer_free(t);
    dsc_model_free(m);
    return ok;
}

/*
 * Given two threads, a batch of one chunk runs on one while the other copies the rows that
 * come next into a ring, from which the trainer reads them (train.c, warming and staging):
 * the losses and weights are those of one thread, bit for bit, every epoch ran warmed and,
 * when the trainer waits for the copies, every warmed batch came from them (none in a build
 * without OpenMP). A run that fails in the middle
 * of a warmed epoch returns its error at the same step (the warming thread stops with it).
 */
TEST(linear_warmed_epochs_give_the_bits_of_one_thread)
{
    static pair_set s;
    static warm_run one, two;
    const size_t batches[] = {32, 7};

    /* Read from the copies where the warming thread made them in time, then always. */
    make_pair_set(&s, PAIR_FEATURES, 2, 81);
    for (int wait = 0; wait < 2; wait++) {
        for (size_t b = 0; b < 2; b++) {
            REQUIRE(warm_run_at(&s, 1, batches[b], 0.05, wait, &one));
            REQUIRE(warm_run_at(&s, 2, batches[b], 0.05, wait, &two));
            CHECK_EQ_INT(one.rc, DSC_OK);
            CHECK_EQ_INT(two.rc, DSC_OK);
            CHECK(one.n_epochs == 3 && two.n_epochs == 3);
            CHECK(memcmp(one.losses, two.losses, sizeof one.losses) == 0);
            CHECK(memcmp(one.params, two.params, sizeof one.params) == 0);
            CHECK(one.warmed == 0 && one.staged == 0);
            CHECK(two.warmed == (TWO_THREADS == 2 ? 3 : 0));
            /* Every step of an epoch but its last runs warmed, and waiting, from the copies. */
            if (wait)
                CHECK(two.staged == (TWO_THREADS == 2 ? (uint64_t)two.steps - 3 : 0));
            CHECK(one.losses[2] < one.losses[0]);
        }
    }

    /* A feature of 1e30 in every row: the second step's scores overflow. */
    for (size_t r = 0; r < PAIR_ROWS; r++)
        s.x[r * PAIR_FEATURES] = 1e30f;
    for (int wait = 0; wait < 2; wait++) {
        REQUIRE(warm_run_at(&s, 1, 32, 0.05, wait, &one));
        REQUIRE(warm_run_at(&s, 2, 32, 0.05, wait, &two));
        CHECK_EQ_INT(one.rc, DSC_ENONFINITE);
        CHECK_EQ_INT(two.rc, DSC_ENONFINITE);
        CHECK(one.failed_step > 1 && one.failed_step == two.failed_step);
        CHECK(two.warmed == (TWO_THREADS == 2 ? 1 : 0)); /* it failed in a warmed epoch */
    }
    REQUIRE(dsc_set_threads(1) == DSC_OK);
}

/*
 * Rows wider than 2 KiB go through the one-pass path in blocks of fewer rows (16 for 600
 * inputs, 4 for 3,000): the loss, logits and gradient are still the general path's bits.
 */
TEST(linear_wide_rows_sum_as_the_dense_kernels)
{
    enum { ROWS = 200 };
    size_t widths[] = {600, 3000};
    size_t batches[] = {3, 5, 32, 37, 200};
    float *x = malloc(ROWS * 3000 * sizeof(float));
    int32_t *label = malloc(ROWS * sizeof(int32_t));
    uint32_t *order = malloc(ROWS * sizeof(uint32_t));
    REQUIRE(x && label && order);

    dsc_rng rng;
    dsc_rng_seed(&rng, 41);
    for (size_t w = 0; w < 2; w++) {
        size_t width = widths[w];
        for (size_t i = 0; i < ROWS * width; i++)
            x[i] = (float)(2.0 * dsc_rng_uniform(&rng) - 1.0);
        for (size_t i = 0; i < ROWS; i++) {
            label[i] = (int32_t)dsc_rng_below(&rng, 2);
            order[i] = (uint32_t)i;
        }
        dsc_rng_shuffle(&rng, order, ROWS);
        dsc_data data = {.n_rows = ROWS, .n_features = width, .x = x, .label = label};

        dsc_model *fused = new_model(DSC_LOSS_LOG, width, 2, 70 + w);
        dsc_model *general = new_model(DSC_LOSS_LOG, width, 2, 70 + w);
        REQUIRE(fused && general);
        dsc__model_allow_linear(general, 0);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            double loss_fused = 0.0, loss_general = 1.0;
            CHECK_EQ_INT(dsc_model_loss_grad(fused, &data, order, batches[b], NULL,
                                             &loss_fused), DSC_OK);
            CHECK_EQ_INT(dsc_model_loss_grad(general, &data, order, batches[b], NULL,
                                             &loss_general), DSC_OK);
            CHECK(loss_fused == loss_general);
            CHECK(memcmp(dsc_model_grads(fused), dsc_model_grads(general),
                         dsc_model_n_params(fused) * sizeof(float)) == 0);
            CHECK(memcmp(dsc__model_logits(fused), dsc__model_logits(general),
                         batches[b] * sizeof(float)) == 0);
            if (test_failures) {
                fprintf(stderr, "    (%zu inputs, batch %zu)\n", width, batches[b]);
                break;
            }
        }
        CHECK(dsc__model_linear_batches(fused) > 0);
        dsc_model_free(fused);
        dsc_model_free(general);
    }
    free(x);
    free(label);
    free(order);
}
