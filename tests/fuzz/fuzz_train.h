/*
 * fuzz_train.h - the fixed data and training settings of the checkpoint harness, shared with
 * make_seeds.c, which writes the corpus: a checkpoint's trainer state only loads into a
 * trainer built the same way, so both must build it from here.
 */
#ifndef DSC_FUZZ_TRAIN_H
#define DSC_FUZZ_TRAIN_H

#include "descent.h"

#define FUZZ_ROWS 12
#define FUZZ_FEATURES 3
#define FUZZ_TARGETS 4

/* Twelve rows of three features, labels 0 and 1, and regression targets for 1 to 4 outputs. */
typedef struct fuzz_train_data {
    float x[FUZZ_ROWS * FUZZ_FEATURES];
    int32_t label[FUZZ_ROWS];
    float y[FUZZ_ROWS * FUZZ_TARGETS];
} fuzz_train_data;

static inline void fuzz_train_data_fill(fuzz_train_data *d)
{
    for (int i = 0; i < FUZZ_ROWS; i++) {
        for (int j = 0; j < FUZZ_FEATURES; j++)
            d->x[i * FUZZ_FEATURES + j] = (float)((i * 7 + j * 3) % 5) - 2.0f;
        d->label[i] = i % 2;
        for (int k = 0; k < FUZZ_TARGETS; k++)
            d->y[i * FUZZ_TARGETS + k] = (float)(i - 6 + k) * 0.5f;
    }
}

/* The view of the data a model of n_outputs outputs trains on (features must be 3). */
static inline dsc_data fuzz_train_view(const fuzz_train_data *d, int classifier, size_t n_outputs)
{
    dsc_data data = {.n_rows = FUZZ_ROWS, .n_features = FUZZ_FEATURES, .x = d->x};

    if (classifier) {
        data.label = d->label;
    } else {
        data.y = d->y;
        data.n_targets = n_outputs;
    }
    return data;
}

/* Adam with a cosine schedule, batches of 4, 25% held out with early stopping. */
static inline void fuzz_train_config(dsc_train_config *cfg)
{
    dsc_train_config_default(cfg);
    cfg->batch = 4;
    cfg->epochs = 6;
    cfg->seed = 7;
    cfg->val_fraction = 0.25;
    cfg->early_stopping = 1;
    cfg->schedule.kind = DSC_SCHED_COSINE;
    cfg->schedule.t_max = 6;
}

#endif /* DSC_FUZZ_TRAIN_H */
