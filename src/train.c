/*
 * train.c - the descent loop: batches over a (re)shuffled order, the schedule and the
 * optimizer, validation, convergence and early stopping, and the epoch history.
 *
 * Full-batch, stochastic and mini-batch descent share one code path: an epoch walks the
 * training order in slices of cfg.batch rows (all rows for DSC_FULL_BATCH). Every buffer is
 * allocated by dsc_trainer_new; dsc_trainer_epoch allocates nothing.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* More epochs than this in one run are refused: their history alone would be huge. */
#define MAX_EPOCHS 100000000

/* Streams derived from the seed, so that the split and the shuffles do not share numbers. */
#define SPLIT_STREAM 0x5b1e7a11d00dULL
#define SHUFFLE_STREAM 0x5f0ff1e5eedULL

struct dsc_trainer {
    dsc_model *model;
    dsc_data train;
    dsc_data val;
    const dsc_data *val_data; /* &val, &train (for a split) or NULL */
    dsc_train_config cfg;
    dsc_optim *opt;
    dsc_schedule_state sched_state;
    dsc_rng shuffle_rng;

    uint32_t *order; /* training rows, reshuffled every epoch */
    size_t n_train;
    uint32_t *val_rows;
    size_t n_val;
    size_t batch;

    float *class_weight; /* n_outputs, or NULL */
    float *last_good;    /* the weights before the current step */
    float *best;         /* the weights of the best validation loss (early stopping) */
    double val_target_var; /* sum of squared deviations of the validation targets */

    dsc_epoch_stats *history;
    double *metrics; /* the monitored metric of each epoch, for the schedule */
    size_t n_epochs;

    int64_t steps;
    double best_monitored;
    double best_val;
    int64_t no_improvement;
    dsc_stop stop;
    int64_t failed_step;
    int failed;
    double started;
};

void dsc_train_config_default(dsc_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch = 32;
    cfg->epochs = 200;
    cfg->shuffle = 1;
    cfg->tol = 1e-4;
    cfg->n_iter_no_change = 5;
    cfg->init_weights = 1;
    cfg->init = DSC_INIT_AUTO;
    dsc_optim_config_default(&cfg->optim, DSC_OPT_ADAM);
    dsc_schedule_default(&cfg->schedule, DSC_SCHED_CONSTANT, 0.0);
}

static int check_train_config(const dsc_train_config *cfg)
{
    if (cfg->batch == 0)
        return dsc__fail(DSC_EINVAL, "train: batch must be at least 1 (or DSC_FULL_BATCH)");
    if (cfg->epochs < 1 || cfg->epochs > MAX_EPOCHS)
        return dsc__fail(DSC_EINVAL, "train: epochs must be in 1..%d, got %lld", MAX_EPOCHS,
                         (long long)cfg->epochs);
    if (!(cfg->val_fraction >= 0.0 && cfg->val_fraction < 1.0))
        return dsc__fail(DSC_EINVAL, "train: val_fraction must be in [0, 1), got %g",
                         cfg->val_fraction);
    if (cfg->n_iter_no_change < 1)
        return dsc__fail(DSC_EINVAL, "train: n_iter_no_change must be at least 1");
    if (isnan(cfg->tol))
        return dsc__fail(DSC_EINVAL, "train: tol is not a number");
    if (!(cfg->clip_norm >= 0.0) || !(cfg->clip_value >= 0.0))
        return dsc__fail(DSC_EINVAL, "train: clip_norm and clip_value must be >= 0");
    if ((unsigned)cfg->init >= DSC_INIT_COUNT)
        return dsc__fail(DSC_EINVAL, "train: unknown initialisation %d", (int)cfg->init);
    int rc = dsc_optim_config_check(&cfg->optim);
    if (rc == DSC_OK)
        rc = dsc_schedule_check(&cfg->schedule);
    return rc;
}

/* Check every row of data once, so that the loop can trust it. */
static int check_data(const dsc_model *m, const dsc_data *d, const char *what)
{
    if (d->n_rows == 0)
        return dsc__fail(DSC_EINVAL, "train: the %s data has no rows", what);
    if (d->n_rows > UINT32_MAX)
        return dsc__fail(DSC_ELIMIT, "train: the %s data has %zu rows, more than %u", what,
                         d->n_rows, UINT32_MAX);
    if (d->n_features != dsc_model_config_of(m)->n_inputs)
        return dsc__fail(DSC_ESHAPE, "train: the %s data has %zu features, the model takes %zu",
                         what, d->n_features, dsc_model_config_of(m)->n_inputs);
    size_t n_classes = dsc_model_config_of(m)->n_outputs;
    for (size_t r = 0; dsc_model_is_classifier(m) && d->label && r < d->n_rows; r++) {
        if (d->label[r] < 0 || (size_t)d->label[r] >= n_classes)
            return dsc__fail(DSC_EINVAL, "train: %s row %zu has class %d, outside 0..%zu", what,
                             r + 1, (int)d->label[r], n_classes - 1);
    }
    for (size_t r = 0; d->weight && r < d->n_rows; r++) {
        if (!(d->weight[r] >= 0.0f) || !isfinite(d->weight[r]))
            return dsc__fail(DSC_EINVAL, "train: %s row %zu has sample weight %g", what, r + 1,
                             (double)d->weight[r]);
    }
    return DSC_OK;
}

/*
 * Hold out val_fraction of the rows, chosen by a seeded shuffle, stratified by class for a
 * classifier (each class gives round(fraction * its count) rows). The training rows keep
 * their file order.
 */
static int split_rows(dsc_trainer *t)
{
    size_t n = t->train.n_rows;
    uint32_t *perm = dsc__alloc(n * sizeof *perm);
    unsigned char *held = dsc__calloc(n, 1);
    size_t n_classes = dsc_model_config_of(t->model)->n_outputs;
    int classifier = dsc_model_is_classifier(t->model) && t->train.label;
    size_t *quota = dsc__calloc(classifier ? n_classes : 1, sizeof *quota);
    if (!perm || !held || !quota) {
        dsc__free(perm);
        dsc__free(held);
        dsc__free(quota);
        return dsc__fail(DSC_ENOMEM, "train: out of memory for the validation split");
    }

    dsc_rng rng;
    dsc_rng_seed(&rng, t->cfg.seed ^ SPLIT_STREAM);
    for (size_t r = 0; r < n; r++)
        perm[r] = (uint32_t)r;
    dsc_rng_shuffle(&rng, perm, n);

    if (classifier) {
        for (size_t r = 0; r < n; r++)
            quota[t->train.label[r]]++;
        for (size_t c = 0; c < n_classes; c++)
            quota[c] = (size_t)floor(t->cfg.val_fraction * (double)quota[c] + 0.5);
    } else {
        quota[0] = (size_t)floor(t->cfg.val_fraction * (double)n + 0.5);
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = perm[i];
        size_t *left = &quota[classifier ? (size_t)t->train.label[r] : 0];
        if (*left > 0) {
            held[r] = 1;
            (*left)--;
        }
    }

    t->n_train = t->n_val = 0;
    for (size_t r = 0; r < n; r++) {
        if (held[r])
            t->val_rows[t->n_val++] = (uint32_t)r;
        else
            t->order[t->n_train++] = (uint32_t)r;
    }
    dsc__free(perm);
    dsc__free(held);
    dsc__free(quota);
    if (t->n_train == 0 || t->n_val == 0)
        return dsc__fail(DSC_EINVAL, "train: a validation fraction of %g leaves %zu training "
                         "and %zu validation rows", t->cfg.val_fraction, t->n_train, t->n_val);
    return DSC_OK;
}

/* Balanced class weights n / (K * count of the class) over the training rows. */
static void balance_classes(dsc_trainer *t)
{
    size_t n_classes = dsc_model_config_of(t->model)->n_outputs;

    for (size_t c = 0; c < n_classes; c++)
        t->class_weight[c] = 0.0f;
    for (size_t i = 0; i < t->n_train; i++)
        t->class_weight[t->train.label[t->order[i]]] += 1.0f;
    for (size_t c = 0; c < n_classes; c++) {
        double count = t->class_weight[c];
        t->class_weight[c] =
            count > 0.0 ? (float)((double)t->n_train / ((double)n_classes * count)) : 1.0f;
    }
}

/* Allocate the trainer's buffers; false when one allocation failed. */
static bool allocate(dsc_trainer *t, size_t n_params, size_t n_classes, size_t n_val_rows)
{
    size_t n_rows = t->train.n_rows;
    size_t n_epochs = (size_t)t->cfg.epochs;

    t->order = dsc__alloc(dsc__mul(n_rows, sizeof(uint32_t)));
    t->val_rows = dsc__alloc(dsc__mul(n_val_rows, sizeof(uint32_t)));
    t->last_good = dsc__alloc(dsc__mul(n_params, sizeof(float)));
    t->history = dsc__calloc(n_epochs, sizeof(dsc_epoch_stats));
    t->metrics = dsc__calloc(n_epochs, sizeof(double));
    if (!t->order || !t->val_rows || !t->last_good || !t->history || !t->metrics)
        return false;
    if (t->cfg.early_stopping) {
        t->best = dsc__alloc(dsc__mul(n_params, sizeof(float)));
        if (!t->best)
            return false;
    }
    if (t->cfg.balanced) {
        t->class_weight = dsc__alloc(dsc__mul(n_classes, sizeof(float)));
        if (!t->class_weight)
            return false;
    }
    return true;
}

/* Sum of squared deviations of the validation targets from their mean, for R^2. */
static double target_variation(const dsc_data *d, const uint32_t *rows, size_t n)
{
    double total = 0.0;

    for (size_t j = 0; j < d->n_targets; j++) {
        double mean = 0.0, sum_sq = 0.0;
        for (size_t i = 0; i < n; i++)
            mean += d->y[rows[i] * d->n_targets + j];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double dev = d->y[rows[i] * d->n_targets + j] - mean;
            sum_sq += dev * dev;
        }
        total += sum_sq;
    }
    return total;
}

dsc_trainer *dsc_trainer_new(dsc_model *model, const dsc_data *train, const dsc_data *val,
                             const dsc_train_config *cfg, int *err)
{
    if (!model || !train || !cfg) {
        dsc__fail(DSC_EINVAL, "train: model, data and configuration are required");
        return dsc__fail_null(err, DSC_EINVAL);
    }
    int rc = check_train_config(cfg);
    if (rc == DSC_OK)
        rc = check_data(model, train, "training");
    if (rc == DSC_OK && val)
        rc = check_data(model, val, "validation");
    if (rc == DSC_OK && cfg->balanced && !dsc_model_is_classifier(model))
        rc = dsc__fail(DSC_EINVAL, "train: balanced class weights need a classifier");
    if (rc < 0)
        return dsc__fail_null(err, rc);

    dsc_trainer *t = dsc__calloc(1, sizeof *t);
    if (!t) {
        dsc__fail(DSC_ENOMEM, "train: out of memory");
        return dsc__fail_null(err, DSC_ENOMEM);
    }
    t->model = model;
    t->train = *train;
    t->cfg = *cfg;
    if (t->cfg.schedule.base_lr == 0.0)
        t->cfg.schedule.base_lr = cfg->optim.lr;
    t->batch = cfg->batch > train->n_rows ? train->n_rows : cfg->batch;

    size_t n_params = dsc_model_n_params(model);
    size_t n_classes = dsc_model_config_of(model)->n_outputs;
    if (!allocate(t, n_params, n_classes, val ? val->n_rows : train->n_rows)) {
        dsc_trainer_free(t);
        dsc__fail(DSC_ENOMEM, "train: out of memory for the training buffers");
        return dsc__fail_null(err, DSC_ENOMEM);
    }

    /* The training rows and the validation rows. */
    if (val) {
        t->val = *val;
        t->val_data = &t->val;
        t->n_val = val->n_rows;
        for (size_t r = 0; r < val->n_rows; r++)
            t->val_rows[r] = (uint32_t)r;
    }
    if (!val && cfg->val_fraction > 0.0) {
        rc = split_rows(t);
        t->val_data = &t->train;
    } else {
        t->n_train = train->n_rows;
        for (size_t r = 0; r < train->n_rows; r++)
            t->order[r] = (uint32_t)r;
    }
    if (rc == DSC_OK && t->n_val > 0 && !dsc_model_is_classifier(model))
        t->val_target_var = target_variation(t->val_data, t->val_rows, t->n_val);
    if (rc == DSC_OK && t->batch > t->n_train)
        t->batch = t->n_train;
    if (rc == DSC_OK && cfg->early_stopping && t->n_val == 0)
        rc = dsc__fail(DSC_EINVAL, "train: early stopping needs validation data or a "
                       "validation fraction");

    /* The class weights, the optimizer, the schedule, the weights and the work buffers. */
    if (rc == DSC_OK && cfg->balanced) {
        balance_classes(t);
        t->cfg.objective.class_weight = t->class_weight;
    }
    if (rc == DSC_OK) {
        t->opt = dsc_optim_new(&cfg->optim, n_params, &rc);
        if (t->opt)
            dsc_optim_set_lr(t->opt, t->cfg.schedule.base_lr);
    }
    if (rc == DSC_OK && cfg->init_weights)
        rc = dsc_model_init_weights(model, cfg->init, cfg->seed);
    if (rc == DSC_OK)
        rc = dsc_model_reserve(model, t->batch);
    if (rc < 0) {
        dsc_trainer_free(t);
        return dsc__fail_null(err, rc);
    }
    dsc_schedule_state_init(&t->cfg.schedule, &t->sched_state);
    dsc_rng_seed(&t->shuffle_rng, cfg->seed ^ SHUFFLE_STREAM);
    t->best_monitored = INFINITY;
    t->best_val = INFINITY;
    t->stop = DSC_STOP_NONE;
    t->started = dsc__now();
    if (err)
        *err = DSC_OK;
    return t;
}

void dsc_trainer_free(dsc_trainer *t)
{
    if (!t)
        return;
    dsc_optim_free(t->opt);
    dsc__free(t->order);
    dsc__free(t->val_rows);
    dsc__free(t->class_weight);
    dsc__free(t->last_good);
    dsc__free(t->best);
    dsc__free(t->history);
    dsc__free(t->metrics);
    dsc__free(t);
}

dsc_optim *dsc_trainer_optim(dsc_trainer *t)
{
    return t ? t->opt : NULL;
}

int dsc_trainer_freeze_layer(dsc_trainer *t, size_t layer, int frozen)
{
    dsc_layer view;
    int rc = t ? dsc_model_layer(t->model, layer, &view) : DSC_EINVAL;

    if (rc < 0)
        return rc;
    return dsc_optim_set_range(t->opt, view.first, view.count, 1.0, frozen);
}

int dsc_trainer_layer_lr(dsc_trainer *t, size_t layer, double lr_scale)
{
    dsc_layer view;
    int rc = t ? dsc_model_layer(t->model, layer, &view) : DSC_EINVAL;

    if (rc < 0)
        return rc;
    return dsc_optim_set_range(t->opt, view.first, view.count, lr_scale, 0);
}

/* Record a failure at the current step; the weights are left as they were before it. */
static int fail_nonfinite(dsc_trainer *t, const char *what, double lr)
{
    t->failed = 1;
    t->failed_step = t->steps + 1;
    t->stop = DSC_STOP_NONFINITE;
    return dsc__fail(DSC_ENONFINITE,
                     "train: the %s stopped being finite at step %lld (epoch %zu, learning "
                     "rate %g); the weights are those before that step",
                     what, (long long)t->failed_step, t->n_epochs + 1, lr);
}

/* One optimizer step on rows[0..n); *loss gets the batch loss. */
static int take_step(dsc_trainer *t, const uint32_t *rows, size_t n, double *loss)
{
    dsc_model *m = t->model;
    size_t n_params = dsc_model_n_params(m);
    float *params = dsc_model_params(m);
    float *grads = dsc_model_grads(m);
    double lr = dsc_schedule_lr(&t->cfg.schedule, &t->sched_state, t->steps,
                                (int64_t)t->n_epochs, t->metrics, t->n_epochs);

    dsc_optim_set_lr(t->opt, lr);
    int rc = dsc_model_loss_grad(m, &t->train, rows, n, &t->cfg.objective, loss);
    if (rc < 0)
        return rc;
    if (!isfinite(*loss))
        return fail_nonfinite(t, "loss", lr);
    if (!dsc__all_finite(grads, n_params))
        return fail_nonfinite(t, "gradient", lr);

    if (t->cfg.clip_value > 0.0)
        dsc_clip_value(grads, n_params, (float)t->cfg.clip_value);
    if (t->cfg.clip_norm > 0.0)
        dsc_clip_norm(grads, n_params, t->cfg.clip_norm);

    memcpy(t->last_good, params, n_params * sizeof(float));
    rc = dsc_optim_step(t->opt, params, grads);
    if (rc < 0)
        return rc;
    if (!dsc__all_finite(params, n_params)) {
        memcpy(params, t->last_good, n_params * sizeof(float));
        return fail_nonfinite(t, "weights", lr);
    }
    t->steps++;
    return DSC_OK;
}

/* The validation loss (without the penalty) and metric: accuracy, or R^2 for regression. */
static int validate(dsc_trainer *t, double *val_loss, double *val_metric)
{
    dsc_model *m = t->model;
    const dsc_data *d = t->val_data;
    double loss_sum = 0.0, weight_sum = 0.0, hits = 0.0, sq_error = 0.0;
    dsc_objective class_weights = {.class_weight = t->cfg.objective.class_weight};
    size_t k = dsc_model_n_logits(m);

    for (size_t done = 0; done < t->n_val;) {
        size_t n = t->n_val - done < t->batch ? t->n_val - done : t->batch;
        const uint32_t *rows = t->val_rows + done;
        double loss, chunk_weight = 0.0;
        int rc = dsc_model_loss(m, d, rows, n, &class_weights, &loss);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            chunk_weight += d->weight ? d->weight[rows[i]] : 1.0;
        loss_sum += loss * chunk_weight;
        weight_sum += chunk_weight;

        const float *logits = dsc__model_logits(m);
        for (size_t i = 0; i < n; i++) {
            size_t r = rows[i];
            const float *z = logits + i * k;
            if (dsc_model_is_classifier(m)) {
                hits += dsc__logits_class(z, k) == d->label[r];
                continue;
            }
            for (size_t j = 0; j < k; j++) {
                double e = (double)z[j] - d->y[r * d->n_targets + j];
                sq_error += e * e;
            }
        }
        done += n;
    }
    *val_loss = loss_sum / weight_sum;
    if (dsc_model_is_classifier(m))
        *val_metric = hits / (double)t->n_val;
    else
        *val_metric = t->val_target_var > 0.0 ? 1.0 - sq_error / t->val_target_var : NAN;
    return DSC_OK;
}

/* scikit-learn's rule: improvement means beating the best by more than tol. */
static void update_convergence(dsc_trainer *t, double monitored)
{
    if (monitored > t->best_monitored - t->cfg.tol)
        t->no_improvement++;
    else
        t->no_improvement = 0;
    if (monitored < t->best_monitored)
        t->best_monitored = monitored;
}

int dsc_trainer_epoch(dsc_trainer *t)
{
    if (!t)
        return dsc__fail(DSC_EINVAL, "train: NULL trainer");
    if (t->failed)
        return dsc__fail(DSC_ESTATE, "train: training already failed at step %lld",
                         (long long)t->failed_step);
    if (t->stop != DSC_STOP_NONE)
        return 0;
    if (dsc_optim_n_trainable(t->opt) == 0)
        return dsc__fail(DSC_EFROZEN, "train: every layer is frozen; nothing to train");

    /* The steps of the epoch. */
    if (t->cfg.shuffle)
        dsc_rng_shuffle(&t->shuffle_rng, t->order, t->n_train);
    double loss_sum = 0.0;
    for (size_t start = 0; start < t->n_train; start += t->batch) {
        size_t n = t->n_train - start < t->batch ? t->n_train - start : t->batch;
        double loss;
        int rc = take_step(t, t->order + start, n, &loss);
        if (rc < 0)
            return rc;
        loss_sum += loss * (double)n;
    }

    /* The epoch's statistics. */
    dsc_epoch_stats *stats = &t->history[t->n_epochs];
    stats->epoch = (int64_t)t->n_epochs + 1;
    stats->steps = t->steps;
    stats->train_loss = loss_sum / (double)t->n_train;
    stats->lr = dsc_optim_lr(t->opt);
    stats->val_loss = stats->val_metric = NAN;
    if (t->n_val > 0) {
        int rc = validate(t, &stats->val_loss, &stats->val_metric);
        if (rc < 0)
            return rc;
    }
    stats->seconds = dsc__now() - t->started;

    double monitored = t->n_val > 0 ? stats->val_loss : stats->train_loss;
    t->metrics[t->n_epochs] = monitored;
    t->n_epochs++;
    dsc_schedule_observe(&t->cfg.schedule, &t->sched_state, monitored);

    /* Keep the best weights for early stopping, then decide whether to go on. */
    if (t->best && stats->val_loss < t->best_val) {
        t->best_val = stats->val_loss;
        memcpy(t->best, dsc_model_params(t->model),
               dsc_model_n_params(t->model) * sizeof(float));
    }
    if (t->cfg.tol >= 0.0)
        update_convergence(t, t->cfg.early_stopping ? stats->val_loss : stats->train_loss);
    if (t->cfg.tol >= 0.0 && t->no_improvement >= t->cfg.n_iter_no_change)
        t->stop = t->cfg.early_stopping ? DSC_STOP_EARLY : DSC_STOP_CONVERGED;
    else if (t->cfg.on_epoch && t->cfg.on_epoch(t->cfg.user, stats) != 0)
        t->stop = DSC_STOP_CALLBACK;
    else if ((int64_t)t->n_epochs >= t->cfg.epochs)
        t->stop = DSC_STOP_EPOCHS;

    if (t->stop != DSC_STOP_NONE && t->best)
        memcpy(dsc_model_params(t->model), t->best,
               dsc_model_n_params(t->model) * sizeof(float));
    return t->stop == DSC_STOP_NONE ? 1 : 0;
}

int dsc_trainer_run(dsc_trainer *t)
{
    int rc;

    do {
        rc = dsc_trainer_epoch(t);
    } while (rc == 1);
    return rc;
}

dsc_stop dsc_trainer_stop_reason(const dsc_trainer *t)
{
    return t->stop;
}

int64_t dsc_trainer_failed_step(const dsc_trainer *t)
{
    return t->failed_step;
}

const dsc_epoch_stats *dsc_trainer_history(const dsc_trainer *t, size_t *n_epochs)
{
    if (n_epochs)
        *n_epochs = t->n_epochs;
    return t->history;
}

int dsc_train(dsc_model *model, const dsc_data *train, const dsc_data *val,
              const dsc_train_config *cfg)
{
    int rc;
    dsc_trainer *t = dsc_trainer_new(model, train, val, cfg, &rc);

    if (!t)
        return rc;
    rc = dsc_trainer_run(t);
    dsc_trainer_free(t);
    return rc;
}
