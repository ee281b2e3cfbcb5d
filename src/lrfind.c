/*
 * lrfind.c - the learning-rate range test: train for a bounded number of mini-batches while
 * the rate rises exponentially, and watch where the smoothed loss is lowest and where it
 * explodes.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* The smoothing of the recorded losses, and the rise above the best that ends the test. */
#define SMOOTHING 0.98
#define EXPLOSION 4.0

void dsc_lr_find_free(dsc_lr_find_result *result)
{
    if (!result)
        return;
    dsc__free(result->lr);
    dsc__free(result->loss);
    memset(result, 0, sizeof *result);
}

static int check_arguments(const dsc_model *model, const dsc_data *data,
                           const dsc_train_config *cfg, double lr_min, double lr_max,
                           size_t max_steps, const dsc_lr_find_result *result)
{
    if (!model || !data || !cfg || !result)
        return dsc__fail(DSC_EINVAL, "lr-find: NULL argument");
    if (!(lr_min > 0.0) || !(lr_max > lr_min) || !isfinite(lr_max))
        return dsc__fail(DSC_EINVAL, "lr-find: need 0 < lr_min < lr_max, got %g and %g",
                         lr_min, lr_max);
    if (max_steps < 2 || max_steps > 1000000)
        return dsc__fail(DSC_EINVAL, "lr-find: max_steps must be in 2..1000000, got %zu",
                         max_steps);
    if (data->n_rows == 0 || data->n_rows > UINT32_MAX)
        return dsc__fail(DSC_EINVAL, "lr-find: the data has %zu rows", data->n_rows);
    if (cfg->batch == 0)
        return dsc__fail(DSC_EINVAL, "lr-find: batch must be at least 1");
    return DSC_OK;
}

int dsc_lr_find(dsc_model *model, const dsc_data *data, const dsc_train_config *cfg,
                double lr_min, double lr_max, size_t max_steps, dsc_lr_find_result *result)
{
    int rc = check_arguments(model, data, cfg, lr_min, lr_max, max_steps, result);
    if (rc < 0)
        return rc;
    memset(result, 0, sizeof *result);

    /* Everything the loop needs, before the loop. */
    size_t n_rows = data->n_rows;
    size_t batch = cfg->batch > n_rows ? n_rows : cfg->batch;
    uint32_t *order = dsc__alloc(dsc__mul(n_rows, sizeof *order));
    result->lr = dsc__alloc(dsc__mul(max_steps, sizeof(double)));
    result->loss = dsc__alloc(dsc__mul(max_steps, sizeof(double)));
    dsc_optim *opt = dsc_optim_new(&cfg->optim, dsc_model_n_params(model), &rc);
    if (!order || !result->lr || !result->loss || !opt) {
        dsc__free(order);
        dsc_optim_free(opt);
        dsc_lr_find_free(result);
        return opt ? dsc__fail(DSC_ENOMEM, "lr-find: out of memory") : rc;
    }
    rc = dsc_model_init_weights(model, cfg->init, cfg->seed);
    if (rc == DSC_OK)
        rc = dsc_model_reserve(model, batch);

    dsc_rng rng;
    dsc_rng_seed(&rng, cfg->seed);
    for (size_t r = 0; r < n_rows; r++)
        order[r] = (uint32_t)r;
    dsc_rng_shuffle(&rng, order, n_rows);

    /* Raise the rate step by step; stop when the smoothed loss explodes. */
    double average = 0.0, best = INFINITY, growth = log(lr_max / lr_min);
    size_t pos = 0;
    for (size_t step = 0; step < max_steps && rc == DSC_OK; step++) {
        if (pos + batch > n_rows) {
            dsc_rng_shuffle(&rng, order, n_rows);
            pos = 0;
        }
        double lr = lr_min * exp(growth * (double)step / (double)(max_steps - 1)), loss;
        rc = dsc_model_loss_grad(model, data, order + pos, batch, &cfg->objective, &loss);
        if (rc < 0)
            break;
        pos += batch;

        average = SMOOTHING * average + (1.0 - SMOOTHING) * loss;
        double smoothed = average / (1.0 - pow(SMOOTHING, (double)(step + 1)));
        if (!isfinite(smoothed) || smoothed > EXPLOSION * best)
            break;
        result->lr[result->n] = lr;
        result->loss[result->n] = smoothed;
        if (smoothed < best) {
            best = smoothed;
            result->best = result->n;
        }
        result->n++;

        if (cfg->clip_norm > 0.0)
            dsc_clip_norm(dsc_model_grads(model), dsc_model_n_params(model), cfg->clip_norm);
        dsc_optim_set_lr(opt, lr);
        rc = dsc_optim_step(opt, dsc_model_params(model), dsc_model_grads(model));
    }

    dsc__free(order);
    dsc_optim_free(opt);
    if (rc == DSC_OK && result->n == 0)
        rc = dsc__fail(DSC_ENONFINITE, "lr-find: the loss was not finite at the first step");
    if (rc < 0) {
        dsc_lr_find_free(result);
        return rc;
    }
    result->suggested = result->lr[result->best] / 10.0;
    return DSC_OK;
}
