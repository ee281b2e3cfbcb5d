/*
 * test_sparse.c - training on sparse (CSR) input: the sparse step gives the dense step's
 * results (bit for bit where the arithmetic is the same), keeps frozen layers and rate
 * scales, rolls back like the dense step, and does work and allocates memory in proportion
 * to the non-zeros and the parameters, not to rows times features.
 *
 * Two references: the same rows given as dense data (the dense kernels), and the same CSR
 * data with the sparse step forbidden through a test hook (the dense step on sparse input).
 */
#include "test.h"

#include "sparse.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* A problem given both ways: CSR arrays and the equivalent dense matrix (when small). */
typedef struct {
    size_t n, k;
    uint64_t *row_ptr;
    uint32_t *col;
    float *val;
    float *x;        /* n * k, or NULL for a large k */
    int32_t *label;
    float *y;
    dsc_data csr, dense;
} sparse_set;

/*
 * n rows of k features with nnz distinct non-zeros each (normal values, columns drawn from
 * the first `used` columns), labelled by a hidden linear model: classes when n_classes > 0,
 * one regression target otherwise.
 */
static void make_set(sparse_set *s, size_t n, size_t k, size_t nnz, size_t used,
                     size_t n_classes, int with_dense, uint64_t seed)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    memset(s, 0, sizeof *s);
    s->n = n;
    s->k = k;
    s->row_ptr = malloc((n + 1) * sizeof *s->row_ptr);
    s->col = malloc(n * nnz * sizeof *s->col);
    s->val = malloc(n * nnz * sizeof *s->val);
    s->label = malloc(n * sizeof *s->label);
    s->y = malloc(n * sizeof *s->y);
    s->x = with_dense ? calloc(n * k, sizeof *s->x) : NULL;

    s->row_ptr[0] = 0;
    for (size_t r = 0; r < n; r++) {
        uint32_t *cols = s->col + r * nnz;
        size_t have = 0;
        while (have < nnz) { /* distinct columns, then sorted (insertion) */
            uint32_t c = (uint32_t)dsc_rng_below(&rng, used);
            size_t j = 0;
            while (j < have && cols[j] != c)
                j++;
            if (j < have)
                continue;
            for (j = have; j > 0 && cols[j - 1] > c; j--)
                cols[j] = cols[j - 1];
            cols[j] = c;
            have++;
        }
        double score[8] = {0};
        for (size_t j = 0; j < nnz; j++) {
            float v = (float)dsc_rng_normal(&rng);
            s->val[r * nnz + j] = v;
            if (s->x)
                s->x[r * k + cols[j]] = v;
            for (size_t c = 0; c < 8; c++)
                score[c] += v * (((cols[j] * 7 + c * 13) % 11) / 5.0 - 1.0);
        }
        s->row_ptr[r + 1] = (r + 1) * nnz;
        size_t best = 0;
        for (size_t c = 1; c < n_classes; c++) {
            if (score[c] > score[best])
                best = c;
        }
        if (n_classes == 2)
            best = score[0] > 0.0;
        s->label[r] = (int32_t)best;
        s->y[r] = (float)(score[0] + 0.1 * dsc_rng_normal(&rng));
    }

    dsc_data d = {.n_rows = n, .n_features = k};
    if (n_classes > 0) {
        d.label = s->label;
    } else {
        d.y = s->y;
        d.n_targets = 1;
    }
    s->csr = d;
    s->csr.row_ptr = s->row_ptr;
    s->csr.col = s->col;
    s->csr.val = s->val;
    s->dense = d;
    s->dense.x = s->x;
}

static void free_set(sparse_set *s)
{
    free(s->row_ptr);
    free(s->col);
    free(s->val);
    free(s->x);
    free(s->label);
    free(s->y);
}

/* The optimizer settings the tests compare. */
enum { RUN_SGD, RUN_SGD_L2, RUN_SGD_DECAY, RUN_ADAGRAD, RUN_ADAM, RUN_KINDS };

static void run_config(dsc_train_config *cfg, int kind, size_t batch, int64_t epochs)
{
    dsc_train_config_default(cfg);
    cfg->batch = batch;
    cfg->epochs = epochs;
    cfg->tol = -1.0;
    cfg->seed = 5;
    switch (kind) {
    case RUN_ADAGRAD:
        dsc_optim_config_default(&cfg->optim, DSC_OPT_ADAGRAD);
        cfg->optim.lr = 0.1;
        cfg->optim.lr_decay = 0.01;
        break;
    case RUN_ADAM:
        dsc_optim_config_default(&cfg->optim, DSC_OPT_ADAM);
        cfg->optim.lr = 0.01;
        break;
    default:
        dsc_optim_config_default(&cfg->optim, DSC_OPT_SGD);
        cfg->optim.lr = 0.1;
        if (kind == RUN_SGD_L2)
            cfg->objective.l2 = 0.05;
        if (kind == RUN_SGD_DECAY)
            cfg->optim.weight_decay = 0.02;
        break;
    }
}

/* What a run leaves: the weights, the history's last loss, and the optimizer's work. */
typedef struct {
    float *params;
    size_t n_params;
    double last_loss;
    int64_t steps;
    uint64_t updated;
    double lr_scale;
    int rc;
} run_result;

/* A model of mc trained on d with cfg; allow_sparse 0 forbids the sparse step. */
static run_result train_run(const dsc_model_config *mc, const dsc_data *d,
                            const dsc_train_config *cfg, int allow_sparse, int freeze_layer,
                            double layer_lr)
{
    run_result out = {0};
    dsc_model *m = dsc_model_new(mc, NULL);
    dsc_trainer *t = m ? dsc_trainer_new(m, d, NULL, cfg, &out.rc) : NULL;
    if (!t) {
        out.rc = out.rc ? out.rc : DSC_ENOMEM;
        dsc_model_free(m);
        return out;
    }
    out.rc = dsc__trainer_allow_sparse_step(t, allow_sparse);
    if (freeze_layer >= 0)
        dsc_trainer_freeze_layer(t, (size_t)freeze_layer, 1);
    if (layer_lr > 0.0)
        dsc_trainer_layer_lr(t, 0, layer_lr);
    out.rc = dsc_trainer_run(t);
    size_t n_epochs;
    const dsc_epoch_stats *h = dsc_trainer_history(t, &n_epochs);
    out.last_loss = n_epochs ? h[n_epochs - 1].train_loss : NAN;
    out.steps = dsc_trainer_steps(t);
    out.updated = dsc__optim_elements_updated(dsc_trainer_optim(t));
    out.lr_scale = dsc_trainer_lr_scale(t);
    dsc_trainer_free(t);
    out.n_params = dsc_model_n_params(m);
    out.params = malloc(out.n_params * sizeof(float));
    memcpy(out.params, dsc_model_params(m), out.n_params * sizeof(float));
    dsc_model_free(m);
    return out;
}

static int same_bits(const run_result *a, const run_result *b)
{
    return a->n_params == b->n_params && a->params && b->params &&
           memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0;
}

/* The largest difference of two runs' weights relative to the largest weight. */
static double weight_gap(const run_result *a, const run_result *b)
{
    double gap = 0.0, top = 1e-30;
    for (size_t i = 0; i < a->n_params; i++) {
        gap = fmax(gap, fabs((double)a->params[i] - (double)b->params[i]));
        top = fmax(top, fabs((double)b->params[i]));
    }
    return gap / top;
}

static void free_result(run_result *r)
{
    free(r->params);
    r->params = NULL;
}

/*
 * The same linear problem, three ways: dense data, CSR data with the sparse step, CSR data
 * with the dense step. With CSR input the two steps do the same arithmetic except where the
 * scaled first layer (SGD with l2 or weight decay) rounds differently, so they agree bit
 * for bit elsewhere. Dense and CSR input agree bit for bit when the layer has several
 * outputs (both sum each output in input order); with one output the dense kernel sums a
 * dot product in eight partial sums, so the two agree within 1e-6 only.
 */
static void compare_linear(dsc_loss loss, size_t n_classes, size_t outputs)
{
    sparse_set s;
    make_set(&s, 96, 40, 6, 40, n_classes, 1, 11 + outputs);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 40, outputs, loss);
    const size_t batches[] = {1, 32, DSC_FULL_BATCH};

    for (int kind = 0; kind < RUN_KINDS; kind++) {
        for (size_t b = 0; b < 3; b++) {
            dsc_train_config cfg;
            run_config(&cfg, kind, batches[b], 4);
            run_result on_dense = train_run(&mc, &s.dense, &cfg, 1, -1, 0.0);
            run_result sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
            run_result reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
            REQUIRE(on_dense.rc == DSC_OK && sparse.rc == DSC_OK && reference.rc == DSC_OK);
            CHECK_EQ_INT(sparse.steps, reference.steps);

            /* The reference took the dense step: every parameter, every step. */
            CHECK(reference.updated == (uint64_t)reference.steps * reference.n_params);
            int scaled = kind == RUN_SGD_L2 || kind == RUN_SGD_DECAY;
            if (kind == RUN_ADAM) {
                CHECK(sparse.updated == reference.updated); /* the dense fallback */
                CHECK(same_bits(&sparse, &reference));
            } else {
                /* At most 6 * batch rows of width outputs plus the tail, per step. */
                size_t width = sparse.n_params / 41; /* 40 rows of weights, the biases */
                size_t tail = width;
                size_t batch = batches[b] > s.n ? s.n : batches[b];
                size_t rows = 6 * batch < 40 ? 6 * batch : 40;
                CHECK(sparse.updated <= (uint64_t)sparse.steps * (rows * width + tail));
                if (batch < 4)
                    CHECK(sparse.updated < reference.updated / 2);
                if (scaled)
                    CHECK(weight_gap(&sparse, &reference) < 2e-6);
                else
                    CHECK(same_bits(&sparse, &reference));
            }

            /* Dense input against the CSR reference: the same dense step. */
            if (sparse.n_params / 41 > 1) /* several outputs (a binary model has one) */
                CHECK(same_bits(&on_dense, &reference));
            else
                CHECK(weight_gap(&on_dense, &reference) < 1e-6);
            CHECK(fabs(sparse.last_loss - reference.last_loss) <=
                  1e-6 * fmax(1.0, fabs(reference.last_loss)));
            free_result(&on_dense);
            free_result(&sparse);
            free_result(&reference);
        }
    }
    free_set(&s);
}

TEST(sparse_softmax_regression_matches_dense_step)
{
    compare_linear(DSC_LOSS_SOFTMAX, 3, 3);
}

TEST(sparse_logistic_regression_matches_dense_step)
{
    compare_linear(DSC_LOSS_LOG, 2, 2);
}

TEST(sparse_linear_regression_matches_dense_step)
{
    compare_linear(DSC_LOSS_SQUARED, 0, 1);
}

/* Clipping by value and by norm on the touched rows gives the dense clipping's result. */
TEST(sparse_clipping_matches_dense_step)
{
    sparse_set s;
    make_set(&s, 80, 600, 5, 600, 3, 0, 3);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 600, 3, DSC_LOSS_SOFTMAX);
    for (int variant = 0; variant < 3; variant++) {
        dsc_train_config cfg;
        run_config(&cfg, variant == 2 ? RUN_ADAGRAD : RUN_SGD, 8, 3);
        cfg.clip_norm = variant != 1 ? 0.05 : 0.0; /* far below the gradients' norms */
        cfg.clip_value = variant == 1 ? 0.01 : 0.0;
        run_result sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
        run_result reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
        REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
        CHECK(sparse.updated < reference.updated / 2);
        CHECK(same_bits(&sparse, &reference));

        /* Without clipping the weights end elsewhere: the clipping did act. */
        cfg.clip_norm = cfg.clip_value = 0.0;
        run_result unclipped = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
        CHECK(weight_gap(&unclipped, &reference) > 1e-3);
        free_result(&sparse);
        free_result(&reference);
        free_result(&unclipped);
    }
    free_set(&s);
}

/* A two-layer network: frozen layers and per-layer rates hold in the sparse step. */
TEST(sparse_step_keeps_frozen_layers_and_layer_rates)
{
    sparse_set s;
    make_set(&s, 64, 500, 4, 500, 3, 0, 8);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 500, 3, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 1;
    mc.hidden[0] = 6;
    mc.activation[0] = DSC_ACT_TANH;
    size_t first_count = 500 * 6 + 6, n_params = first_count + 6 * 3 + 3;

    /* The initial weights, for the frozen checks. */
    dsc_model *init = dsc_model_new(&mc, NULL);
    REQUIRE(init);
    dsc_model_init_weights(init, DSC_INIT_AUTO, 5);
    const float *w0 = dsc_model_params(init);

    /* Layer 0 frozen, Adam: the rows are never written; only the tail moves. */
    dsc_train_config cfg;
    run_config(&cfg, RUN_ADAM, 8, 3);
    run_result sparse = train_run(&mc, &s.csr, &cfg, 1, 0, 0.0);
    run_result reference = train_run(&mc, &s.csr, &cfg, 0, 0, 0.0);
    REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
    CHECK(same_bits(&sparse, &reference));
    CHECK(memcmp(sparse.params, w0, first_count * sizeof(float)) == 0);
    CHECK(memcmp(sparse.params + first_count, w0 + first_count,
                 (n_params - first_count) * sizeof(float)) != 0);
    CHECK(sparse.updated == (uint64_t)sparse.steps * (n_params - first_count));
    free_result(&sparse);
    free_result(&reference);

    /* The last layer frozen, SGD: the touched rows move, the frozen layer stays. */
    run_config(&cfg, RUN_SGD, 8, 3);
    sparse = train_run(&mc, &s.csr, &cfg, 1, 1, 0.0);
    reference = train_run(&mc, &s.csr, &cfg, 0, 1, 0.0);
    REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
    CHECK(same_bits(&sparse, &reference));
    CHECK(memcmp(sparse.params + first_count, w0 + first_count,
                 (n_params - first_count) * sizeof(float)) == 0);
    CHECK(memcmp(sparse.params, w0, first_count * sizeof(float)) != 0);
    CHECK(sparse.updated < reference.updated / 2);
    free_result(&sparse);
    free_result(&reference);

    /* A rate scale on layer 0, with and without weight decay (the scaled first layer). */
    for (int kind = RUN_SGD; kind <= RUN_SGD_DECAY; kind += RUN_SGD_DECAY - RUN_SGD) {
        run_config(&cfg, kind, 8, 3);
        cfg.optim.weight_decay = kind == RUN_SGD_DECAY ? 0.2 : 0.0;
        sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.25);
        reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.25);
        run_result unscaled = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
        REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK && unscaled.rc == DSC_OK);
        CHECK(sparse.updated < reference.updated / 2);
        if (kind == RUN_SGD)
            CHECK(same_bits(&sparse, &reference));
        else
            CHECK(weight_gap(&sparse, &reference) < 2e-6);
        CHECK(weight_gap(&unscaled, &reference) > 1e-3);
        free_result(&sparse);
        free_result(&reference);
        free_result(&unscaled);
    }
    dsc_model_free(init);
    free_set(&s);
}

/* A schedule with a huge rate once, at one step: the guard must roll that step back. */
typedef struct {
    int64_t at_step;
    double huge;
    int fired;
} spike;

static double spike_lr(void *user, double base_lr, int64_t step, int64_t epoch,
                       const double *metrics, size_t n_metrics)
{
    spike *sp = user;
    if (step != sp->at_step || sp->fired)
        return base_lr;
    sp->fired = 1;
    return sp->huge;
}

/*
 * The divergence guard with sparse input: a loss jump after a huge step rolls that step
 * back (the jump check needs 20 steps first), and a step that makes a weight infinite is
 * undone at once; both lower the rate by the back-off and training goes on.
 */
TEST(sparse_divergence_guard_rolls_back_like_the_dense_step)
{
    sparse_set s;
    make_set(&s, 64, 300, 5, 300, 2, 0, 4);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 300, 2, DSC_LOSS_LOG);

    /* Steps 0-7 are epoch 1, and so on: step 23 ends epoch 3, step 20 is inside it. */
    spike spikes[] = {{20, 1e5, 0}, {23, 1e5, 0}, {12, 1e45, 0}};
    for (int kind = RUN_SGD; kind <= RUN_ADAGRAD; kind++) {
        for (size_t i = 0; i < 3; i++) {
            dsc_train_config cfg;
            run_config(&cfg, kind, 8, 6);
            if (kind == RUN_SGD_L2)
                cfg.objective.l2 = 1e-7; /* the huge step shrinks the weights by 1 - 0.01 */
            if (kind == RUN_SGD_DECAY)
                cfg.optim.weight_decay = 1e-6; /* ... and here by 1 - 0.1 */
            if (kind == RUN_ADAGRAD)
                cfg.optim.lr_decay = 0.0;
            cfg.schedule.kind = DSC_SCHED_CALLBACK;
            cfg.schedule.per_step = 1;
            cfg.schedule.fn = spike_lr;
            cfg.schedule.user = &spikes[i];
            spikes[i].fired = 0;
            run_result sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
            spikes[i].fired = 0;
            run_result reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
            REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);

            /* One back-off, and one batch dropped, in both. */
            CHECK(reference.lr_scale == cfg.backoff);
            CHECK(sparse.lr_scale == reference.lr_scale);
            CHECK_EQ_INT(reference.steps, 6 * 8 - 1);
            CHECK_EQ_INT(sparse.steps, reference.steps);
            CHECK(sparse.updated < reference.updated / 2);
            if (kind == RUN_SGD || kind == RUN_ADAGRAD)
                CHECK(same_bits(&sparse, &reference));
            else
                CHECK(weight_gap(&sparse, &reference) < 2e-6);
            for (size_t j = 0; j < sparse.n_params; j++)
                CHECK(isfinite(sparse.params[j]) && fabsf(sparse.params[j]) < 100.0f);

            /* Without the roll-back the huge step would have stayed. */
            cfg.on_divergence = DSC_DIVERGE_STOP;
            spikes[i].fired = 0;
            run_result stopped = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
            CHECK_EQ_INT(stopped.rc, DSC_ENONFINITE);
            free_result(&sparse);
            free_result(&reference);
            free_result(&stopped);
        }
    }
    free_set(&s);
}


/*
 * A million features and a few hundred rows: the sparse step updates only the batch's rows
 * plus the bias (counted by the optimizer), never touches the other weights (they keep
 * their initial zeros, bit for bit), and the library's memory is a few times the parameters
 * plus the non-zeros, nowhere near rows times features.
 */
TEST(sparse_million_features_cost_only_the_batch)
{
    enum { K = 1000000, N = 300, NNZ = 20, BATCH = 32 };
    sparse_set s;
    make_set(&s, N, K, NNZ, K, 2, 0, 77);
    dsc_model_config mc;
    dsc_model_config_init(&mc, K, 2, DSC_LOSS_LOG);
    unsigned char *used = calloc(K, 1);
    for (size_t p = 0; p < N * NNZ; p++)
        used[s.col[p]] = 1;

    for (int kind = RUN_SGD; kind <= RUN_ADAGRAD; kind++) {
        dsc_train_config cfg;
        run_config(&cfg, kind, BATCH, 3);
        test_oom.live_bytes = test_oom.peak_bytes = 0;
        test_oom.calls = test_oom.fail_at = 0;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        run_result sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
        dsc_set_allocator(NULL, NULL, NULL);
        REQUIRE(sparse.rc == DSC_OK);
        CHECK_EQ_INT(test_oom.live_bytes, 0);

        /* Work: each step's rows (at most its non-zeros) and the bias. */
        CHECK_EQ_INT(sparse.steps, 3 * ((N + BATCH - 1) / BATCH));
        CHECK(sparse.updated <= (uint64_t)sparse.steps * (BATCH * NNZ + 1));
        CHECK(sparse.updated >= (uint64_t)sparse.steps * (NNZ + 1));

        /* Memory: the parameters, the gradient, and the optimizer's sum (AdaGrad) or the
         * dense step's snapshot (SGD with decay), plus what the batch's rows need. */
        size_t params_bytes = (K + 1) * sizeof(float);
        CHECK(test_oom.peak_bytes <= 3 * params_bytes + 64 * (size_t)(N * NNZ) + (1u << 20));

        /* Untouched inputs keep their initial zero, touched ones (nearly all) moved. */
        size_t moved = 0, untouched_nonzero = 0;
        for (size_t j = 0; j < K; j++) {
            uint32_t bits;
            memcpy(&bits, &sparse.params[j], 4);
            if (!used[j])
                untouched_nonzero += bits != 0;
            moved += used[j] && bits != 0;
        }
        CHECK_EQ_INT(untouched_nonzero, 0);
        CHECK(moved > (size_t)(N * NNZ) * 9 / 10);

        /* The dense step on the same data agrees (exactly, or to rounding when scaled). */
        if (kind == RUN_SGD_L2 || kind == RUN_ADAGRAD) {
            run_result reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
            REQUIRE(reference.rc == DSC_OK);
            CHECK(reference.updated == (uint64_t)reference.steps * (K + 1));
            if (kind == RUN_ADAGRAD)
                CHECK(same_bits(&sparse, &reference));
            else
                CHECK(weight_gap(&sparse, &reference) < 2e-6);
            free_result(&reference);
        }
        free_result(&sparse);
    }
    free(used);
    free_set(&s);
}

/*
 * The scaled first layer never shows: a public read of the weights between steps gives w
 * (the dense step's weights to rounding), and a state saved mid-epoch holds w, so that a
 * trainer loading it continues bit for bit as the one that saved it.
 */
TEST(sparse_scaled_weights_fold_before_reads_and_saves)
{
    sparse_set s;
    make_set(&s, 60, 250, 4, 250, 3, 0, 31);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 250, 3, DSC_LOSS_SOFTMAX);
    dsc_train_config cfg;
    run_config(&cfg, RUN_SGD_DECAY, 6, 4);
    cfg.optim.weight_decay = 0.5; /* the scale falls to about 0.6 within an epoch */

    dsc_model *a = dsc_model_new(&mc, NULL), *b = dsc_model_new(&mc, NULL);
    REQUIRE(a && b);
    dsc_trainer *ta = dsc_trainer_new(a, &s.csr, NULL, &cfg, NULL);
    dsc_trainer *tb = dsc_trainer_new(b, &s.csr, NULL, &cfg, NULL);
    REQUIRE(ta && tb);
    REQUIRE(dsc__trainer_allow_sparse_step(tb, 0) == DSC_OK);
    for (int i = 0; i < 7; i++) {
        REQUIRE(dsc_trainer_step(ta) == 1);
        REQUIRE(dsc_trainer_step(tb) == 1);
    }
    CHECK(dsc__model_scale(a) < 0.8); /* the first layer is held scaled ... */
    const float *wa = dsc_model_params(a), *wb = dsc_model_params(b);
    CHECK(dsc__model_scale(a) == 1.0); /* ... until the weights are read */
    for (size_t j = 0; j < dsc_model_n_params(a); j++)
        CHECK_NEAR(wa[j], wb[j], 1e-6);
    dsc_trainer_free(tb);
    dsc_model_free(b);

    /* Save two steps later (scaled again), then continue in both trainers. */
    REQUIRE(dsc_trainer_step(ta) == 1 && dsc_trainer_step(ta) == 1);
    CHECK(dsc__model_scale(a) < 1.0);
    size_t size = dsc_trainer_state_size(ta);
    unsigned char *state = malloc(size);
    REQUIRE(dsc_trainer_state_save(ta, state, size) == DSC_OK);
    CHECK(dsc__model_scale(a) == 1.0);
    dsc_model *c = dsc_model_new(&mc, NULL);
    REQUIRE(c);
    dsc_trainer *tc = dsc_trainer_new(c, &s.csr, NULL, &cfg, NULL);
    REQUIRE(tc);
    REQUIRE(dsc_trainer_state_load(tc, state, size) == DSC_OK);
    REQUIRE(dsc_trainer_epoch(ta) == 1); /* its last step, then the epoch's end: folded */
    CHECK(dsc__model_scale(a) == 1.0);
    REQUIRE(dsc_trainer_step(ta) == 1);
    CHECK(dsc__model_scale(a) < 1.0);
    REQUIRE(dsc_trainer_run(ta) == DSC_OK);
    REQUIRE(dsc_trainer_run(tc) == DSC_OK);
    CHECK(dsc__model_scale(a) == 1.0);
    CHECK(memcmp(dsc_model_params(a), dsc_model_params(c),
                 dsc_model_n_params(a) * sizeof(float)) == 0);
    CHECK(dsc__optim_elements_updated(dsc_trainer_optim(tc)) <
          (uint64_t)dsc_trainer_steps(tc) * dsc_model_n_params(c) / 2);

    /* Prediction after training uses w as well: the same as a copy of the weights. */
    float za[60 * 3], zc[60 * 3];
    REQUIRE(dsc_model_decision(a, &s.csr, 0, 60, za) == DSC_OK);
    REQUIRE(dsc_model_decision(c, &s.csr, 0, 60, zc) == DSC_OK);
    CHECK(memcmp(za, zc, sizeof za) == 0);
    free(state);
    dsc_trainer_free(ta);
    dsc_trainer_free(tc);
    dsc_model_free(a);
    dsc_model_free(c);
    free_set(&s);
}

/*
 * After a sparse step the gradient buffer holds that batch's gradient, zero outside its
 * rows, as dsc_model_loss_grad computes it (the rows of earlier batches are cleared).
 */
TEST(sparse_gradient_buffer_holds_the_latest_batch)
{
    sparse_set s;
    make_set(&s, 40, 200, 3, 200, 3, 0, 12);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 200, 3, DSC_LOSS_SOFTMAX);
    dsc_train_config cfg;
    run_config(&cfg, RUN_SGD, 5, 2);
    cfg.shuffle = 0; /* step i takes rows 5i .. 5i + 4 */
    dsc_model *m = dsc_model_new(&mc, NULL), *ref = dsc_model_new(&mc, NULL);
    REQUIRE(m && ref);
    dsc_trainer *t = dsc_trainer_new(m, &s.csr, NULL, &cfg, NULL);
    REQUIRE(t);
    size_t n_params = dsc_model_n_params(m);
    float *expected = malloc(n_params * sizeof(float));

    for (uint32_t step = 0; step < 4; step++) {
        REQUIRE(dsc_model_copy_weights(ref, m) == DSC_OK);
        uint32_t rows[5];
        for (uint32_t i = 0; i < 5; i++)
            rows[i] = 5 * step + i;
        double loss;
        REQUIRE(dsc_model_loss_grad(ref, &s.csr, rows, 5, NULL, &loss) == DSC_OK);
        memcpy(expected, dsc_model_grads(ref), n_params * sizeof(float));
        REQUIRE(dsc_trainer_step(t) == 1);
        CHECK(memcmp(dsc_model_grads(m), expected, n_params * sizeof(float)) == 0);
    }
    CHECK(dsc__optim_elements_updated(dsc_trainer_optim(t)) < 4 * n_params / 2);
    free(expected);
    dsc_trainer_free(t);
    dsc_model_free(m);
    dsc_model_free(ref);
    free_set(&s);
}

/*
 * A decay of half the weight per step: the scale passes 1e-9 every 30 steps and is folded
 * then, long before the stored values could overflow (2^-128 would overflow float). A decay
 * factor of 0 (lr * decay = 1) cannot be a scale: those steps are dense, bit for bit.
 */
TEST(sparse_strong_decay_folds_the_scale_in_time)
{
    sparse_set s;
    make_set(&s, 300, 400, 3, 400, 3, 0, 41);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 400, 3, DSC_LOSS_SOFTMAX);
    dsc_train_config cfg;
    run_config(&cfg, RUN_SGD_DECAY, 1, 1);
    cfg.optim.weight_decay = 5.0; /* 1 - 0.1 * 5 = 0.5 a step */
    run_result sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
    run_result reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
    REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
    CHECK(sparse.lr_scale == 1.0); /* nothing diverged */
    CHECK(sparse.updated < reference.updated / 10);
    CHECK(weight_gap(&sparse, &reference) < 2e-6);
    free_result(&sparse);
    free_result(&reference);

    cfg.optim.weight_decay = 10.0; /* 1 - 0.1 * 10 = 0 */
    sparse = train_run(&mc, &s.csr, &cfg, 1, -1, 0.0);
    reference = train_run(&mc, &s.csr, &cfg, 0, -1, 0.0);
    REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
    CHECK(sparse.updated == reference.updated);
    CHECK(same_bits(&sparse, &reference));
    free_result(&sparse);
    free_result(&reference);
    free_set(&s);
}

/*
 * A weight row's gradient that overflows while the loss and the bias's gradient are finite
 * is caught before the update, as the dense step catches it.
 */
TEST(sparse_non_finite_gradient_is_caught_before_the_update)
{
    sparse_set s;
    make_set(&s, 16, 100, 3, 100, 0, 0, 9);
    s.y[0] = 1e38f; /* d(loss)/dz = -2e38 for row 0: finite, and so is its loss (double) */
    for (size_t j = 0; j < 3; j++)
        s.val[j] = 10.0f; /* its weight rows' gradient: -2e39, beyond float */
    dsc_model_config mc;
    dsc_model_config_init(&mc, 100, 1, DSC_LOSS_SQUARED);
    for (int allow = 0; allow <= 1; allow++) {
        for (int kind = RUN_SGD; kind <= RUN_ADAGRAD; kind += RUN_ADAGRAD - RUN_SGD) {
            dsc_train_config cfg;
            run_config(&cfg, kind, 1, 1);
            cfg.shuffle = 0;
            cfg.on_divergence = DSC_DIVERGE_STOP;
            run_result r = train_run(&mc, &s.csr, &cfg, allow, -1, 0.0);
            CHECK_EQ_INT(r.rc, DSC_ENONFINITE);
            CHECK(strstr(dsc_last_error(), "the gradient diverged at epoch 1, step 1") != NULL);
            CHECK_EQ_INT(r.updated, 0);
            free_result(&r);
        }
    }
    free_set(&s);
}

/*
 * The model's sparse gradient: the touched rows are the batch's distinct columns, in order
 * of first use or sorted, with the same loss and gradient as dsc_model_loss_grad; and the
 * norm over sorted rows is summed in the dense order (here the order changes the sum).
 */
TEST(sparse_touched_rows_are_the_batch_columns)
{
    static const uint64_t row_ptr[] = {0, 3, 5, 8};
    static const uint32_t col[] = {7, 2, 9, 2, 5, 9, 1, 7};
    static const float val[] = {1, -2, 0.5f, 3, 1, -1, 2, 0.25f};
    static const int32_t label[] = {0, 2, 1};
    dsc_data d = {.n_rows = 3, .n_features = 10, .row_ptr = row_ptr, .col = col, .val = val,
                  .label = label};
    dsc_model_config mc;
    dsc_model_config_init(&mc, 10, 3, DSC_LOSS_SOFTMAX);
    dsc_model *m = dsc_model_new(&mc, NULL), *ref = dsc_model_new(&mc, NULL);
    REQUIRE(m && ref);
    dsc_model_init_weights(m, DSC_INIT_XAVIER_UNIFORM, 3);
    dsc_model_copy_weights(ref, m);
    REQUIRE(dsc__model_reserve_rows(m, 8) == DSC_OK);
    size_t n_params = dsc_model_n_params(m);
    double loss, ref_loss;
    REQUIRE(dsc_model_loss_grad(ref, &d, NULL, 3, NULL, &ref_loss) == DSC_OK);

    static const uint32_t first_use[] = {7, 2, 9, 5, 1}, sorted[] = {1, 2, 5, 7, 9};
    for (int sort = 0; sort <= 1; sort++) {
        dsc_row_set set;
        bool rows_finite = false;
        REQUIRE(dsc__model_loss_grad_rows(m, &d, NULL, 3, NULL, 0.0, sort, 1, &loss, &set,
                                          &rows_finite) == DSC_OK);
        CHECK(set.packed_grads == NULL); /* no room: packed rows would outweigh dW here */
        CHECK(rows_finite);
        CHECK(loss == ref_loss);
        CHECK(memcmp(dsc_model_grads(m), dsc_model_grads(ref), n_params * sizeof(float)) == 0);
        REQUIRE(set.n_rows == 5);
        CHECK(memcmp(set.rows, sort ? sorted : first_use, sizeof sorted) == 0);
        CHECK_EQ_INT(set.width, 3);
        CHECK_EQ_INT(set.tail_begin, 30);
        CHECK_EQ_INT(set.tail_end, n_params);
    }

    /* 1e16 + 1 + 1 rounds to 1e16 in double, 1 + 1 + 1e16 does not. */
    float g[4] = {1e8f, 1.0f, 1.0f, 0.0f}, h[4];
    memcpy(h, g, sizeof g);
    uint32_t in_order[3] = {0, 1, 2}, out_of_order[3] = {1, 2, 0};
    dsc_row_set rows = {.rows = in_order, .n_rows = 3, .width = 1, .tail_begin = 3,
                        .tail_end = 4};
    double dense_norm = dsc_clip_norm(h, 4, 1.0);
    CHECK(dsc__rows_clip_norm(g, &rows, 1.0) == dense_norm);
    CHECK(memcmp(g, h, sizeof g) == 0);
    memcpy(g, (float[4]){1e8f, 1.0f, 1.0f, 0.0f}, sizeof g);
    rows.rows = out_of_order;
    CHECK(dsc__rows_clip_norm(g, &rows, 1.0) != dense_norm);

    /* The sort itself, on a shuffled permutation with repeats. */
    uint32_t keys[200];
    dsc_rng rng;
    dsc_rng_seed(&rng, 1);
    for (size_t i = 0; i < 200; i++)
        keys[i] = (uint32_t)dsc_rng_below(&rng, 50);
    dsc__sort_u32(keys, 200);
    for (size_t i = 1; i < 200; i++)
        CHECK(keys[i - 1] <= keys[i]);
    dsc_model_free(m);
    dsc_model_free(ref);
}

/* 1 when the first layer's dW, as the gradient buffer holds it, is all zero. */
static int dw_is_zero(dsc_model *m)
{
    size_t first, count, n_in, n_out;
    dsc__model_layer_range(m, 0, &first, &count, &n_in, &n_out);
    const float *dw = dsc__model_raw_grads(m) + first;
    for (size_t i = 0; i < n_in * n_out; i++) {
        if (dw[i] != 0.0f)
            return 0;
    }
    return 1;
}

/*
 * Packed rows: with many inputs and few touched, the touched rows' gradient is summed into
 * the packed buffer, in list order, and equals dsc_model_loss_grad's rows bit for bit; dW
 * stays zero until dsc_model_grads copies the rows in. Batches alternate between packed and
 * not, with and without that copy, so that each must forget the other's list; a sorted list
 * is never packed.
 */
TEST(sparse_packed_rows_hold_the_batch_gradient)
{
    sparse_set s;
    make_set(&s, 64, 5000, 6, 400, 3, 0, 21); /* 400 columns used: batches share some */
    for (size_t outputs = 2; outputs <= 3; outputs++) {
        dsc_model_config mc;
        dsc_model_config_init(&mc, 5000, outputs, outputs == 2 ? DSC_LOSS_LOG :
                                                                 DSC_LOSS_SOFTMAX);
        dsc_model *m = dsc_model_new(&mc, NULL), *ref = dsc_model_new(&mc, NULL);
        REQUIRE(m && ref);
        dsc_model_init_weights(m, DSC_INIT_XAVIER_UNIFORM, 5);
        dsc_model_copy_weights(ref, m);
        REQUIRE(dsc__model_reserve_rows(m, 8 * 6) == DSC_OK);
        size_t n_params = dsc_model_n_params(m), width = outputs == 2 ? 1 : 3;
        int32_t labels[64];
        for (size_t r = 0; r < 64; r++)
            labels[r] = s.label[r] % (int32_t)outputs;
        dsc_data d = s.csr;
        d.label = labels;

        for (uint32_t batch = 0; batch < 8; batch++) {
            uint32_t rows[8];
            for (uint32_t i = 0; i < 8; i++)
                rows[i] = 8 * batch + i;
            int packed = batch % 4 != 1, sort = batch == 6, unpack = batch % 3 == 0;
            double loss, ref_loss;
            dsc_row_set set;
            bool rows_finite = false;
            REQUIRE(dsc__model_loss_grad_rows(m, &d, rows, 8, NULL, 0.0, sort, packed, &loss,
                                              &set, &rows_finite) == DSC_OK);
            REQUIRE(dsc_model_loss_grad(ref, &d, rows, 8, NULL, &ref_loss) == DSC_OK);
            const float *expected = dsc_model_grads(ref);
            CHECK(rows_finite);
            CHECK(loss == ref_loss);
            CHECK(set.n_rows > 8 && set.n_rows <= 48);
            CHECK((set.packed_grads != NULL) == (packed && !sort));
            if (set.packed_grads) {
                for (size_t i = 0; i < set.n_rows; i++)
                    CHECK(memcmp(set.packed_grads + i * width,
                                 expected + (size_t)set.rows[i] * width,
                                 width * sizeof(float)) == 0);
                CHECK(dw_is_zero(m));
                /* The tail is in the buffer either way. */
                CHECK(memcmp(dsc__model_raw_grads(m) + set.tail_begin,
                             expected + set.tail_begin,
                             (n_params - set.tail_begin) * sizeof(float)) == 0);
            }
            if (unpack || !set.packed_grads)
                CHECK(memcmp(dsc_model_grads(m), expected, n_params * sizeof(float)) == 0);
        }
        dsc_model_free(m);
        dsc_model_free(ref);
    }
    free_set(&s);
}

/*
 * Training with packed rows gives the dense step's weights (bit for bit, or within the
 * scaled form's rounding), with logistic and softmax regression, and the trainer's steps
 * did take them: dW reads zero after a step until dsc_model_grads copies the batch in.
 */
TEST(sparse_packed_rows_train_like_the_dense_step)
{
    sparse_set s;
    make_set(&s, 96, 4000, 6, 4000, 3, 0, 17);
    for (size_t outputs = 2; outputs <= 3; outputs++) {
        dsc_model_config mc;
        dsc_model_config_init(&mc, 4000, outputs, outputs == 2 ? DSC_LOSS_LOG :
                                                                 DSC_LOSS_SOFTMAX);
        int32_t labels[96];
        for (size_t r = 0; r < 96; r++)
            labels[r] = s.label[r] % (int32_t)outputs;
        dsc_data d = s.csr;
        d.label = labels;
        for (int kind = RUN_SGD; kind <= RUN_SGD_DECAY; kind++) {
            dsc_train_config cfg;
            run_config(&cfg, kind, 8, 3);
            run_result sparse = train_run(&mc, &d, &cfg, 1, -1, 0.0);
            run_result reference = train_run(&mc, &d, &cfg, 0, -1, 0.0);
            REQUIRE(sparse.rc == DSC_OK && reference.rc == DSC_OK);
            CHECK(sparse.updated < reference.updated / 10);
            if (kind == RUN_SGD)
                CHECK(same_bits(&sparse, &reference));
            else
                CHECK(weight_gap(&sparse, &reference) < 2e-6);
            free_result(&sparse);
            free_result(&reference);

            /* One step by hand: packed, then copied in on request. */
            dsc_model *m = dsc_model_new(&mc, NULL);
            dsc_trainer *t = m ? dsc_trainer_new(m, &d, NULL, &cfg, NULL) : NULL;
            REQUIRE(t);
            REQUIRE(dsc_trainer_step(t) == 1);
            CHECK(dw_is_zero(m));
            REQUIRE(dsc_model_grads(m) != NULL);
            CHECK(!dw_is_zero(m));
            dsc_trainer_free(t);
            dsc_model_free(m);
        }
    }
    free_set(&s);
}

/*
 * The check of the gradient's touched rows made while they are summed agrees with a check
 * of the rows afterwards, for rows of one weight and of two: a batch whose sums stay
 * finite, one where a single term overflows, and one where two finite terms add up to an
 * infinity that a later term of the other sign cannot bring back.
 */
TEST(sparse_gradient_rows_are_checked_as_they_are_summed)
{
    static const uint64_t row_ptr[] = {0, 2, 4, 6, 7};
    static const uint32_t col[] = {1, 2, 2, 4, 2, 5, 0};
    float val[7], y[8];
    static const int expect_finite[] = {1, 0, 0};

    for (size_t outputs = 1; outputs <= 2; outputs++) {
        dsc_model_config mc;
        dsc_model_config_init(&mc, 6, outputs, DSC_LOSS_SQUARED);
        dsc_model *m = dsc_model_new(&mc, NULL), *ref = dsc_model_new(&mc, NULL);
        REQUIRE(m && ref);
        REQUIRE(dsc_model_init_weights(m, DSC_INIT_ZEROS, 1) == DSC_OK);
        REQUIRE(dsc_model_init_weights(ref, DSC_INIT_ZEROS, 1) == DSC_OK);
        REQUIRE(dsc__model_reserve_rows(m, 7) == DSC_OK);
        size_t n_params = dsc_model_n_params(m);
        dsc_data d = {.n_rows = 4, .n_features = 6, .row_ptr = row_ptr, .col = col,
                      .val = val, .y = y, .n_targets = outputs};

        for (int scenario = 0; scenario < 3; scenario++) {
            for (size_t i = 0; i < 7; i++)
                val[i] = 1.0f;
            for (size_t i = 0; i < 8; i++)
                y[i] = 0.5f;
            /* A row's share of the loss's gradient is 2 * (z - y) / 4 / outputs. */
            if (scenario == 1) { /* row 3: 10 * 5e37 on column 0 */
                y[3 * outputs] = y[3 * outputs + outputs - 1] = -1e38f;
                val[6] = 10.0f * (float)outputs;
            }
            if (scenario == 2) { /* column 2: 2.5e38 + 2.5e38 - 5e37 */
                for (size_t r = 0; r < 2; r++)
                    y[r * outputs] = y[r * outputs + outputs - 1] = -1e38f;
                y[2 * outputs] = y[2 * outputs + outputs - 1] = 1e38f;
                val[1] = val[2] = 5.0f * (float)outputs;
                val[4] = (float)outputs;
            }
            double loss, ref_loss;
            dsc_row_set set;
            bool rows_finite = !expect_finite[scenario];
            REQUIRE(dsc__model_loss_grad_rows(m, &d, NULL, 4, NULL, 0.0, 0, 0, &loss, &set,
                                              &rows_finite) == DSC_OK);
            REQUIRE(dsc_model_loss_grad(ref, &d, NULL, 4, NULL, &ref_loss) == DSC_OK);
            CHECK(memcmp(dsc__model_raw_grads(m), dsc_model_grads(ref),
                         n_params * sizeof(float)) == 0);
            dsc_row_set rows_only = set;
            rows_only.tail_end = rows_only.tail_begin;
            CHECK_EQ_INT(set.n_rows, 5);
            CHECK(rows_finite == dsc__rows_all_finite(dsc__model_raw_grads(m), &rows_only));
            CHECK_EQ_INT(rows_finite, expect_finite[scenario]);
        }
        dsc_model_free(m);
        dsc_model_free(ref);
    }
}

/*
 * The sparse optimizer step keeps the rows' values from before it and checks the values
 * after it: in one walk for plain SGD, apart for AdaGrad and for SGD whose first rows are
 * frozen. The weights are the dense step's, bit for bit; the kept values are the rows' old
 * ones in set order; a rate that sends the rows to infinity is reported.
 */
TEST(sparse_optimizer_step_keeps_and_checks_the_rows)
{
    enum { ROWS = 6, TAIL = 2, MAX_WIDTH = 3 };
    static const uint32_t rows[] = {4, 1, 3};

    for (size_t width = 1; width <= MAX_WIDTH; width += 2) {
        size_t n_params = ROWS * width + TAIL;
        for (int variant = 0; variant < 3; variant++) {
            float before[ROWS * MAX_WIDTH + TAIL], params[ROWS * MAX_WIDTH + TAIL];
            float dense[ROWS * MAX_WIDTH + TAIL], grads[ROWS * MAX_WIDTH + TAIL];
            float kept[3 * MAX_WIDTH];
            for (size_t i = 0; i < n_params; i++) {
                before[i] = params[i] = dense[i] = 0.25f * (float)i - 1.0f;
                grads[i] = i >= ROWS * width ? 1.5f : 0.0f;
            }
            for (size_t i = 0; i < 3; i++) {
                for (size_t j = 0; j < width; j++)
                    grads[rows[i] * width + j] = j % 2 ? 1.5f : -2.5f;
            }
            dsc_optim_config oc;
            dsc_optim_config_default(&oc, variant == 2 ? DSC_OPT_ADAGRAD : DSC_OPT_SGD);
            oc.lr = 0.1;
            dsc_optim *sparse = dsc_optim_new(&oc, n_params, NULL);
            dsc_optim *ref = dsc_optim_new(&oc, n_params, NULL);
            REQUIRE(sparse && ref);
            if (variant == 1) { /* rows 0 and 1 frozen: row 1 of the set stays as it is */
                REQUIRE(dsc_optim_set_range(sparse, 0, 2 * width, 1.0, 1) == DSC_OK);
                REQUIRE(dsc_optim_set_range(ref, 0, 2 * width, 1.0, 1) == DSC_OK);
            }
            dsc_row_set set = {.rows = rows, .n_rows = 3, .width = width,
                               .tail_begin = ROWS * width, .tail_end = n_params};

            bool finite = false;
            REQUIRE(dsc__optim_step_rows(sparse, params, grads, &set, kept, &finite) ==
                    DSC_OK);
            REQUIRE(dsc_optim_step(ref, dense, grads) == DSC_OK);
            CHECK(finite);
            CHECK(memcmp(params, dense, n_params * sizeof(float)) == 0);
            CHECK(memcmp(params, before, n_params * sizeof(float)) != 0);
            for (size_t i = 0; i < 3; i++) {
                for (size_t j = 0; j < width; j++)
                    CHECK(kept[i * width + j] == before[rows[i] * width + j]);
            }

            dsc_optim_set_lr(sparse, 1e39); /* every step of a row is beyond float */
            REQUIRE(dsc__optim_step_rows(sparse, params, grads, &set, kept, &finite) ==
                    DSC_OK);
            CHECK(!finite);
            dsc_optim_free(sparse);
            dsc_optim_free(ref);
        }
    }
}

TEST(sparse_trainer_rejects_malformed_csr)
{
    sparse_set s;
    make_set(&s, 10, 20, 3, 20, 2, 0, 2);
    dsc_model_config mc;
    dsc_model_config_init(&mc, 20, 2, DSC_LOSS_LOG);
    dsc_model *m = dsc_model_new(&mc, NULL);
    REQUIRE(m);
    dsc_train_config cfg;
    run_config(&cfg, RUN_SGD, 4, 1);
    int err = DSC_OK;

    s.col[7] = 20; /* beyond the features */
    CHECK(dsc_trainer_new(m, &s.csr, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "column 20") != NULL);
    s.col[7] = 19;
    s.row_ptr[4] = 2; /* row 4 ends before it starts */
    CHECK(dsc_trainer_new(m, &s.csr, NULL, &cfg, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    s.row_ptr[4] = 12;
    dsc_trainer *t = dsc_trainer_new(m, &s.csr, NULL, &cfg, &err);
    CHECK(t != NULL);
    dsc_trainer_free(t);
    dsc_model_free(m);
    free_set(&s);
}

/* A whole run on sparse data with the scaled first layer, failing one allocation. */
static int small_sparse_run(const sparse_set *s)
{
    dsc_model_config mc;
    dsc_model_config_init(&mc, s->k, 3, DSC_LOSS_SOFTMAX);
    mc.n_hidden = 1;
    mc.hidden[0] = 4;
    int err = DSC_OK;
    dsc_model *m = dsc_model_new(&mc, &err);
    if (!m)
        return err;
    dsc_train_config cfg;
    run_config(&cfg, RUN_SGD_L2, 8, 2);
    cfg.val_fraction = 0.25;
    int rc = dsc_train(m, &s->csr, NULL, &cfg);
    float proba[40 * 3];
    if (rc == DSC_OK)
        rc = dsc_model_predict_proba(m, &s->csr, 0, 40, proba);
    dsc_model_free(m);
    return rc;
}

TEST(sparse_every_failed_allocation_is_a_clean_enomem)
{
    sparse_set s;
    make_set(&s, 40, 30, 4, 30, 3, 0, 6);
    dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
    int failures_seen = 0;
    for (test_oom.fail_at = 1;; test_oom.fail_at++) {
        test_oom.calls = 0;
        test_oom.live_bytes = 0;
        int rc = small_sparse_run(&s);
        CHECK_EQ_INT(test_oom.live_bytes, 0);
        if (rc == DSC_OK && test_oom.calls < test_oom.fail_at)
            break; /* every allocation has been failed once */
        CHECK_EQ_INT(rc, DSC_ENOMEM);
        failures_seen++;
    }
    dsc_set_allocator(NULL, NULL, NULL);
    CHECK(failures_seen >= 10);
    free_set(&s);
}
