/*
 * train.c - the descent loop: batches over a (re)shuffled order, the schedule and the
 * optimizer, validation, convergence and early stopping, and the epoch history.
 *
 * Full-batch, stochastic and mini-batch descent share one code path: an epoch walks the
 * training order in slices of cfg.batch rows (all rows for DSC_FULL_BATCH). Every buffer is
 * allocated by dsc_trainer_new; dsc_trainer_epoch allocates nothing.
 *
 * Sparse input takes the sparse step (sparse.h) wherever it gives the dense step's result:
 * the gradient, the finite checks, the clipping, the update and the divergence guard's
 * snapshot then cover only the first-layer rows of the batch's features plus the tail (the
 * first layer's biases and the later layers), so a step costs O(batch non-zeros * width +
 * tail) instead of O(n_params). choose_step decides before each step:
 * - plain SGD, and AdaGrad without weight decay or l2: exact, only the touched rows change;
 * - plain SGD with l2 or weight decay: the first layer is kept as w = scale * v (sparse.h),
 *   so the decay of every weight is one multiply of the scale and only the touched rows of
 *   v move. The results equal the dense step's up to float rounding (the dense step rounds
 *   each decayed weight every step; the scaled form rounds once when the scale is folded).
 *   The scale is folded back into the weights at the end of every epoch (before validation,
 *   the best-weights copy and the stopping rules), before the state is saved, when it
 *   leaves [1e-9, 1e9], before any dense step, when the trainer is freed, and by every
 *   public function of the model that exposes or uses the weights;
 * - a first layer frozen in full: any optimizer, the frozen rows are never written;
 * - everything else takes the dense step: L1 (its subgradient moves every non-zero weight;
 *   the cumulative-penalty method would give different results, so it is not used), clipping
 *   together with l2 (the clipped quantity includes l2 * w of every weight), momentum and the
 *   adaptive optimizers other than AdaGrad (optim.c: known limitation, O(n_params) a step),
 *   and a decay factor 1 - lr * decay below 1e-6.
 */
#include "sparse.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* More epochs than this in one run are refused: their history alone would be huge. */
#define MAX_EPOCHS 100000000

/* Streams derived from the seed, so that the split and the shuffles do not share numbers. */
#define SPLIT_STREAM 0x5b1e7a11d00dULL
#define SHUFFLE_STREAM 0x5f0ff1e5eedULL

/*
 * Warming (see warmed_epoch): the second thread keeps up to WARM_BYTES of the rows that come
 * next loaded, for training sets of at least WARM_MIN_BYTES (a smaller one stays in the
 * cache). The trainer tells its position every WARM_SLICE rows; the warming thread, once
 * ahead, pauses WARM_WAIT times between looks at it.
 */
#define WARM_BYTES (128 * 1024)
#define WARM_SLICE 64
#define WARM_WAIT 64
#define WARM_MIN_BYTES (16 * 1024 * 1024)
/*
 * Staging (see stage_rows): the warming thread copies the rows that come next, in the order
 * of the epoch, into a ring of about STAGE_BYTES (at most STAGE_MAX_BYTES), asking for them
 * STAGE_AHEAD rows before it copies them and telling its progress every STAGE_SLICE rows.
 */
#define STAGE_BYTES (256 * 1024)
#define STAGE_MAX_BYTES (1024 * 1024)
#define STAGE_AHEAD 64
#define STAGE_SLICE 16

/*
 * What the trainer and the warming thread tell each other, each on a cache line of its own:
 * every write by one thread to a line the other reads sends the line across, and a store
 * waiting for its line holds up the stores behind it.
 */
typedef struct warm_signal {
    /*
     * The trainer's position in the order, stored with release order: the staging thread
     * reuses the ring slots of the rows before it, whose reads must be done by then.
     */
    _Alignas(64) atomic_size_t progress;
    int finished;                 /* the trainer is done with the warmed steps */
    _Alignas(64) atomic_size_t staged_to; /* positions before this are in the stage ring */
} warm_signal;

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
    float *best;         /* the weights of the best validation loss (early stopping) */
    double val_target_var; /* sum of squared deviations of the validation targets */

    dsc_epoch_stats *history;
    double *metrics; /* the monitored metric of each epoch, for the schedule */
    size_t n_epochs;

    /* Where the current epoch is. */
    size_t pos;            /* next row of the order to use */
    int shuffled;          /* the order of this epoch has been drawn */
    double epoch_loss_sum; /* sum of batch loss * batch rows so far */
    size_t epoch_rows;     /* rows whose loss counted (skipped batches do not) */

    /*
     * The divergence guard: a copy of the weights (and, to back off, the optimizer state)
     * before each step, taken by the dense step itself (dsc__optim_step_kept).
     */
    dsc_optim_keep kept;
    size_t opt_state_size;
    int have_snapshot;
    double lr_scale;       /* product of the back-offs so far */
    int retries;
    double loss_average;   /* exponential average of the batch losses */
    int64_t losses_seen;

    /*
     * The sparse step (see the top of the file). Its snapshot holds what one sparse step
     * changes: the touched rows, the tail, their optimizer state and the first layer's scale.
     * The dense snapshot above is allocated only when a dense step can happen.
     */
    int rows_ready;          /* the buffers below exist, so the sparse step may be taken */
    int rows_allowed;        /* 1 unless a test forbids the sparse step */
    size_t first_weights;    /* the first layer's weights: parameters [0, first_weights) */
    size_t row_width;        /* the first layer's outputs: the length of a row */
    int snap_sparse;         /* the snapshot is a sparse step's */
    uint32_t *snap_rows;     /* its rows */
    size_t snap_n_rows;
    float *snap_values;      /* its rows' values, then the tail's */
    unsigned char *snap_opt; /* the optimizer's state at those elements (backoff only) */
    double snap_scale_before, snap_scale_after;
    uint64_t snap_revision;  /* the model's revision when it was taken */
    double snap_first_sq;
    int snap_first_sq_ok;
    double first_sq;         /* sum of squares of the stored first-layer weights (for l2) */
    int first_sq_ok;
    uint64_t first_sq_revision; /* valid while the model's revision is this */

    int warming;            /* 1 (the default): warm the rows on a second thread when it pays */
    size_t warm_min_bytes;  /* the smallest training set warmed (a test hook lowers it) */
    uint64_t warmed_epochs; /* epochs whose batches ran with a warming thread */
    float *stage;           /* the ring the warming thread copies rows into, or NULL */
    size_t stage_rows;      /* its rows: a multiple of the batch */
    const warm_signal *staging; /* while a warming thread stages rows, its signal */
    int stage_wait;         /* a test hook: wait for every batch to be staged */
    uint64_t staged_batches; /* batches read from the ring */

    int64_t steps;
    double best_monitored;
    double best_val;
    int64_t no_improvement;
    dsc_stop stop;
    int64_t failed_step;
    int failed;
    double started;
    double seconds_before; /* training time of the run a resumed trainer continues */
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
    cfg->on_divergence = DSC_DIVERGE_BACKOFF;
    cfg->jump_factor = 1000.0;
    cfg->backoff = 0.1;
    cfg->max_retries = 5;
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
    if ((unsigned)cfg->on_divergence > DSC_DIVERGE_STOP)
        return dsc__fail(DSC_EINVAL, "train: unknown divergence policy %d",
                         (int)cfg->on_divergence);
    if (!(cfg->jump_factor == 0.0 || cfg->jump_factor > 1.0) || !isfinite(cfg->jump_factor))
        return dsc__fail(DSC_EINVAL, "train: jump_factor must be 0 (off) or above 1, got %g",
                         cfg->jump_factor);
    if (!(cfg->backoff > 0.0 && cfg->backoff < 1.0))
        return dsc__fail(DSC_EINVAL, "train: backoff must be in (0, 1), got %g", cfg->backoff);
    if (cfg->max_retries < 0)
        return dsc__fail(DSC_EINVAL, "train: max_retries must be >= 0, got %d",
                         cfg->max_retries);
    if ((unsigned)cfg->init >= DSC_INIT_COUNT)
        return dsc__fail(DSC_EINVAL, "train: unknown initialisation %d", (int)cfg->init);
    int rc = dsc_optim_config_check(&cfg->optim);
    if (rc == DSC_OK)
        rc = dsc_schedule_check(&cfg->schedule);
    return rc;
}

/* Sparse features: offsets that never go back, and every column within the features. */
static int check_csr(const dsc_data *d, const char *what)
{
    if (!d->row_ptr || !d->col || !d->val)
        return dsc__fail(DSC_EINVAL, "train: the %s data has neither dense nor sparse "
                         "features", what);
    for (size_t r = 0; r < d->n_rows; r++) {
        if (d->row_ptr[r + 1] < d->row_ptr[r])
            return dsc__fail(DSC_EINVAL, "train: %s row %zu ends before it starts (row_ptr)",
                             what, r + 1);
    }
    for (uint64_t p = d->row_ptr[0]; p < d->row_ptr[d->n_rows]; p++) {
        if (d->col[p] >= d->n_features)
            return dsc__fail(DSC_EINVAL, "train: %s non-zero %llu is in column %u, beyond the "
                             "%zu features", what, (unsigned long long)p, d->col[p],
                             d->n_features);
    }
    return DSC_OK;
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
    if (!d->x) {
        int rc = check_csr(d, what);
        if (rc < 0)
            return rc;
    }
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

int dsc_split_rows(size_t n_rows, const int32_t *labels, size_t n_classes, double fraction,
                   uint64_t seed, uint32_t *train_rows, size_t *n_train, uint32_t *val_rows,
                   size_t *n_val)
{
    if (!train_rows || !val_rows || !n_train || !n_val || n_rows > UINT32_MAX)
        return dsc__fail(DSC_EINVAL, "split: bad arguments");
    if (!(fraction >= 0.0 && fraction < 1.0))
        return dsc__fail(DSC_EINVAL, "split: the fraction must be in [0, 1), got %g", fraction);
    size_t n_groups = labels ? n_classes : 1;
    uint32_t *perm = dsc__alloc(dsc__mul(n_rows, sizeof *perm));
    unsigned char *held = dsc__calloc(n_rows, 1);
    size_t *quota = dsc__calloc(n_groups ? n_groups : 1, sizeof *quota);
    if (!perm || !held || !quota) {
        dsc__free(perm);
        dsc__free(held);
        dsc__free(quota);
        return dsc__fail(DSC_ENOMEM, "split: out of memory");
    }

    /* Each group (class) gives round(fraction * its count) rows, in a seeded random order. */
    dsc_rng rng;
    dsc_rng_seed(&rng, seed ^ SPLIT_STREAM);
    for (size_t r = 0; r < n_rows; r++)
        perm[r] = (uint32_t)r;
    dsc_rng_shuffle(&rng, perm, n_rows);
    int rc = DSC_OK;
    for (size_t r = 0; r < n_rows && rc == DSC_OK; r++) {
        if (labels && (labels[r] < 0 || (size_t)labels[r] >= n_classes))
            rc = dsc__fail(DSC_EINVAL, "split: row %zu has class %d", r + 1, (int)labels[r]);
        else
            quota[labels ? (size_t)labels[r] : 0]++;
    }
    for (size_t g = 0; g < n_groups; g++)
        quota[g] = (size_t)floor(fraction * (double)quota[g] + 0.5);
    for (size_t i = 0; i < n_rows && rc == DSC_OK; i++) {
        size_t r = perm[i];
        size_t *left = &quota[labels ? (size_t)labels[r] : 0];
        if (*left > 0) {
            held[r] = 1;
            (*left)--;
        }
    }

    *n_train = *n_val = 0;
    for (size_t r = 0; r < n_rows && rc == DSC_OK; r++) {
        if (held[r])
            val_rows[(*n_val)++] = (uint32_t)r;
        else
            train_rows[(*n_train)++] = (uint32_t)r;
    }
    dsc__free(perm);
    dsc__free(held);
    dsc__free(quota);
    return rc;
}

/* Hold out val_fraction of the rows (see dsc_split_rows); training rows keep file order. */
static int split_rows(dsc_trainer *t)
{
    int stratify = dsc_model_is_classifier(t->model) && t->train.label;
    int rc = dsc_split_rows(t->train.n_rows, stratify ? t->train.label : NULL,
                            dsc_model_config_of(t->model)->n_outputs, t->cfg.val_fraction,
                            t->cfg.seed, t->order, &t->n_train, t->val_rows, &t->n_val);
    if (rc < 0)
        return rc;
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

/*
 * True when every step will be a sparse one whatever the rate and the frozen ranges: sparse
 * data without L1, and plain SGD or AdaGrad without l2 or weight decay (choose_step). Such a
 * trainer needs no dense snapshot.
 */
static bool never_dense(const dsc_train_config *cfg, const dsc_data *train)
{
    const dsc_optim_config *o = &cfg->optim;
    bool plain_sgd = (o->kind == DSC_OPT_SGD || o->kind == DSC_OPT_MOMENTUM) &&
                     o->momentum == 0.0;

    return !train->x && cfg->objective.l1 == 0.0 && cfg->objective.l2 == 0.0 &&
           o->weight_decay == 0.0 && (plain_sgd || o->kind == DSC_OPT_ADAGRAD);
}

/* The dense step's snapshot of every weight and of the optimizer's state (for the guard). */
static bool allocate_dense_snapshot(dsc_trainer *t)
{
    if (!t->kept.values) {
        t->kept.state = t->cfg.on_divergence == DSC_DIVERGE_BACKOFF;
        size_t floats = dsc__optim_keep_floats(t->opt, t->kept.state);
        t->kept.values = dsc__alloc(dsc__mul(floats, sizeof(float)));
    }
    return t->kept.values != NULL;
}

/* Allocate the trainer's buffers; false when one allocation failed. */
static bool allocate(dsc_trainer *t, size_t n_params, size_t n_classes, size_t n_val_rows)
{
    size_t n_rows = t->train.n_rows;
    size_t n_epochs = (size_t)t->cfg.epochs;

    t->order = dsc__alloc(dsc__mul(n_rows, sizeof(uint32_t)));
    t->val_rows = dsc__alloc(dsc__mul(n_val_rows, sizeof(uint32_t)));
    t->history = dsc__calloc(n_epochs, sizeof(dsc_epoch_stats));
    t->metrics = dsc__calloc(n_epochs, sizeof(double));
    if (!t->order || !t->val_rows || !t->history || !t->metrics)
        return false;
    if (!never_dense(&t->cfg, &t->train) && !allocate_dense_snapshot(t))
        return false;
    if (t->cfg.early_stopping) {
        /* Zeroed: a checkpoint taken before the first validation holds it too, and must not
         * write bytes that were never set (they would differ from run to run). */
        t->best = dsc__calloc(n_params, sizeof(float));
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

/*
 * The sparse step's buffers, for sparse training data without L1: the model's list of
 * touched inputs and the snapshot, sized by the most inputs a batch can touch (the largest
 * row's non-zeros times the batch, at most the inputs and the data's non-zeros).
 */
static int prepare_sparse_step(dsc_trainer *t)
{
    const dsc_data *d = &t->train;
    dsc_model *m = t->model;

    t->rows_allowed = 1;
    t->warming = 1;
    t->warm_min_bytes = WARM_MIN_BYTES;
    if (d->x || t->cfg.objective.l1 != 0.0)
        return DSC_OK;

    uint64_t max_nnz = 0;
    for (size_t r = 0; r < d->n_rows; r++) {
        uint64_t nnz = d->row_ptr[r + 1] - d->row_ptr[r];
        if (nnz > max_nnz)
            max_nnz = nnz;
    }
    uint64_t total_nnz = d->row_ptr[d->n_rows] - d->row_ptr[0];
    size_t capacity = dsc_model_config_of(m)->n_inputs, batch_nnz;
    if (max_nnz <= SIZE_MAX && !dsc__mul_overflows((size_t)max_nnz, t->batch, &batch_nnz) &&
        batch_nnz < capacity)
        capacity = batch_nnz;
    if (total_nnz < capacity)
        capacity = (size_t)total_nnz;
    if (capacity == 0)
        capacity = 1;
    int rc = dsc__model_reserve_rows(m, capacity);
    if (rc < 0)
        return rc;

    size_t first, count, n_in, n_out;
    dsc__model_layer_range(m, 0, &first, &count, &n_in, &n_out);
    size_t n_params = dsc_model_n_params(m);
    t->first_weights = n_in * n_out;
    t->row_width = n_out;
    size_t elements = capacity * n_out + (n_params - t->first_weights);
    t->snap_rows = dsc__alloc(dsc__mul(capacity, sizeof(uint32_t)));
    t->snap_values = dsc__alloc(dsc__mul(elements, sizeof(float)));
    if (t->snap_rows && t->snap_values && t->cfg.on_divergence == DSC_DIVERGE_BACKOFF)
        t->snap_opt = dsc__alloc(dsc__optim_rows_state_size(t->opt, elements));
    if (!t->snap_rows || !t->snap_values ||
        (t->cfg.on_divergence == DSC_DIVERGE_BACKOFF && !t->snap_opt))
        return dsc__fail(DSC_ENOMEM, "train: out of memory for the sparse step's buffers");
    t->rows_ready = 1;
    return DSC_OK;
}

/*
 * The ring of staged rows, for a shuffled dense set large enough to be warmed: a multiple of
 * the batch, at least the batch twice and WARM_SLICE rows more (the warming thread learns
 * the trainer's position WARM_SLICE rows late), about STAGE_BYTES; none above
 * STAGE_MAX_BYTES.
 */
static int allocate_stage(dsc_trainer *t)
{
#ifndef _OPENMP
    (void)t;
    return DSC_OK; /* no warming thread to stage the rows */
#else
    size_t row_bytes = t->train.n_features * sizeof(float);
    double bytes = (double)t->n_train * (double)row_bytes;

    if (t->stage || !t->warming || !t->cfg.shuffle || !t->train.x || t->batch == 0 ||
        bytes < (double)t->warm_min_bytes)
        return DSC_OK;
    size_t batches = (WARM_SLICE + 2 * t->batch + t->batch - 1) / t->batch;
    size_t batch_bytes = t->batch * row_bytes;
    if (batch_bytes > 0 && STAGE_BYTES / batch_bytes > batches)
        batches = STAGE_BYTES / batch_bytes;
    if ((double)batches * (double)batch_bytes > STAGE_MAX_BYTES)
        return DSC_OK;
    t->stage_rows = batches * t->batch;
    t->stage = dsc__alloc(t->stage_rows * row_bytes);
    if (!t->stage)
        return dsc__fail(DSC_ENOMEM, "train: out of memory for the staged rows");
    return DSC_OK;
#endif
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
    dsc__blas_stop_pool(); /* its idle threads would poll on the cores the trainer uses */
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
    t->opt = dsc_optim_new(&cfg->optim, n_params, &rc);
    if (!t->opt) {
        dsc_trainer_free(t);
        return dsc__fail_null(err, rc);
    }
    dsc_optim_set_lr(t->opt, t->cfg.schedule.base_lr);
    t->opt_state_size = dsc_optim_state_size(t->opt);
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

    /* The class weights, the schedule, the weights and the work buffers. */
    if (rc == DSC_OK && cfg->balanced) {
        balance_classes(t);
        t->cfg.objective.class_weight = t->class_weight;
    }
    if (rc == DSC_OK && cfg->init_weights)
        rc = dsc_model_init_weights(model, cfg->init, cfg->seed);
    if (rc == DSC_OK)
        rc = dsc_model_reserve(model, t->batch);
    if (rc == DSC_OK)
        rc = prepare_sparse_step(t);
    if (rc == DSC_OK)
        rc = allocate_stage(t);
    if (rc < 0) {
        dsc_trainer_free(t);
        return dsc__fail_null(err, rc);
    }
    dsc_schedule_state_init(&t->cfg.schedule, &t->sched_state);
    dsc_rng_seed(&t->shuffle_rng, cfg->seed ^ SHUFFLE_STREAM);
    t->best_monitored = INFINITY;
    t->best_val = INFINITY;
    t->stop = DSC_STOP_NONE;
    t->lr_scale = 1.0;
    t->started = dsc__now();
    if (err)
        *err = DSC_OK;
    return t;
}

void dsc_trainer_free(dsc_trainer *t)
{
    if (!t)
        return;
    if (t->model)
        dsc__model_fold(t->model);
    dsc_optim_free(t->opt);
    dsc__free(t->snap_rows);
    dsc__free(t->snap_values);
    dsc__free(t->snap_opt);
    dsc__free(t->order);
    dsc__free(t->stage);
    dsc__free(t->val_rows);
    dsc__free(t->class_weight);
    dsc__free(t->kept.values);
    dsc__free(t->best);
    dsc__free(t->history);
    dsc__free(t->metrics);
    dsc__free(t);
}

dsc_optim *dsc_trainer_optim(dsc_trainer *t)
{
    return t ? t->opt : NULL;
}

int dsc__trainer_allow_sparse_step(dsc_trainer *t, int allow)
{
    if (!allow && !allocate_dense_snapshot(t))
        return dsc__fail(DSC_ENOMEM, "train: out of memory for the dense step's snapshot");
    t->rows_allowed = allow != 0;
    return DSC_OK;
}

/* The parameters of a layer, looked up without handing the weights out (no fold). */
static int layer_params(const dsc_trainer *t, size_t layer, size_t *first, size_t *count)
{
    size_t n_in, n_out;

    if (!t)
        return dsc__fail(DSC_EINVAL, "train: NULL trainer");
    if (layer >= dsc_model_n_layers(t->model))
        return dsc__fail(DSC_EINVAL, "model: no layer %zu", layer);
    dsc__model_layer_range(t->model, layer, first, count, &n_in, &n_out);
    return DSC_OK;
}

int dsc_trainer_freeze_layer(dsc_trainer *t, size_t layer, int frozen)
{
    size_t first, count;
    int rc = layer_params(t, layer, &first, &count);

    if (rc < 0)
        return rc;
    return dsc_optim_set_range(t->opt, first, count, 1.0, frozen);
}

int dsc_trainer_layer_lr(dsc_trainer *t, size_t layer, double lr_scale)
{
    size_t first, count;
    int rc = layer_params(t, layer, &first, &count);

    if (rc < 0)
        return rc;
    return dsc_optim_set_range(t->opt, first, count, lr_scale, 0);
}

/* Stop for good at the current step; the weights are left at their last good values. */
static int fail_diverged(dsc_trainer *t, const char *what, double lr)
{
    t->failed = 1;
    t->failed_step = t->steps + 1;
    t->stop = DSC_STOP_NONFINITE;
    return dsc__fail(DSC_ENONFINITE,
                     "train: the %s diverged at epoch %zu, step %lld, learning rate %g%s; "
                     "try a learning rate of %g or less",
                     what, t->n_epochs + 1, (long long)t->failed_step, lr,
                     t->retries ? " after lowering it" : "", lr * t->cfg.backoff);
}

/* The rows and tail of the sparse snapshot. */
static dsc_row_set snapshot_set(const dsc_trainer *t)
{
    return (dsc_row_set){
        .rows = t->snap_rows,
        .n_rows = t->snap_n_rows,
        .width = t->row_width,
        .tail_begin = t->first_weights,
        .tail_end = dsc_model_n_params(t->model),
    };
}

/*
 * Put a sparse step's snapshot back. When the model's revision is still the snapshot's, the
 * stored values are in the same units: the rows, the tail and the scale go back as they were,
 * exactly. Otherwise the scale was folded (or the weights handed out) since: every untouched
 * row then holds the step's result, which differs from the weight before the step only by
 * the step's shrink (scale_after / scale_before), so all rows are divided by it and the
 * touched rows are written in weight units; this is exact up to one rounding per weight.
 */
static void restore_sparse_snapshot(dsc_trainer *t)
{
    dsc_model *m = t->model;
    float *params = dsc__model_raw_params(m);
    dsc_row_set set = snapshot_set(t);

    if (dsc__model_revision(m) == t->snap_revision) {
        dsc__rows_scatter(params, &set, t->snap_values);
        dsc__model_set_scale(m, t->snap_scale_before);
        t->first_sq = t->snap_first_sq;
        t->first_sq_ok = t->snap_first_sq_ok;
        t->first_sq_revision = t->snap_revision;
    } else {
        double ratio = dsc__model_scale(m) * (t->snap_scale_before / t->snap_scale_after);
        for (size_t i = 0; ratio != 1.0 && i < t->first_weights; i++)
            params[i] = (float)(ratio * (double)params[i]);
        dsc__rows_scatter(params, &set, t->snap_values);
        double before = t->snap_scale_before;
        for (size_t i = 0; before != 1.0 && i < set.n_rows; i++) {
            float *row = params + (size_t)set.rows[i] * set.width;
            for (size_t j = 0; j < set.width; j++)
                row[j] = (float)(before * (double)row[j]);
        }
        dsc__model_set_scale(m, 1.0);
        t->first_sq_ok = 0;
    }
    if (t->snap_opt)
        dsc__optim_rows_state_load(t->opt, &set, t->snap_opt);
}

/* Put the snapshot's weights (and, for the guard, the optimizer state) back. */
static int restore_snapshot(dsc_trainer *t)
{
    if (t->snap_sparse) {
        restore_sparse_snapshot(t);
        return DSC_OK;
    }

    /* A dense step's snapshot: taken with the scale folded. */
    dsc_model *m = t->model;
    dsc__optim_undo(t->opt, dsc__model_raw_params(m), &t->kept);
    dsc__model_set_scale(m, 1.0);
    t->first_sq_ok = 0;
    return DSC_OK;
}

/*
 * The step diverged: stop (DSC_DIVERGE_STOP, or no retries left), or go back to the weights
 * and optimizer state before the previous step, lower the rate and go on. Returns 0 when
 * training goes on, a negative code when it stops.
 */
static int diverged(dsc_trainer *t, const char *what, double lr)
{
    if (t->cfg.on_divergence == DSC_DIVERGE_STOP || t->retries >= t->cfg.max_retries)
        return fail_diverged(t, what, lr);

    if (t->have_snapshot) {
        int rc = restore_snapshot(t);
        if (rc < 0)
            return rc;
    }
    t->retries++;
    t->lr_scale *= t->cfg.backoff;
    return DSC_OK;
}

/* Keep what a sparse update of set changes: its elements, their optimizer state, the scale. */
static void take_sparse_snapshot(dsc_trainer *t, const dsc_row_set *set, double scale_before)
{
    dsc_model *m = t->model;
    size_t row_values = set->n_rows * set->width;

    /* The rows' values (the first row_values of snap_values) are kept by the update itself
     * (dsc__optim_step_rows), which reads each row once; the tail's are copied here. */
    memcpy(t->snap_rows, set->rows, set->n_rows * sizeof(uint32_t));
    t->snap_n_rows = set->n_rows;
    memcpy(t->snap_values + row_values, dsc__model_raw_params(m) + set->tail_begin,
           (set->tail_end - set->tail_begin) * sizeof(float));
    if (t->snap_opt)
        dsc__optim_rows_state_save(t->opt, set, t->snap_opt);
    t->snap_scale_before = scale_before;
    t->snap_scale_after = set->row_scale != 0.0 ? set->row_scale : scale_before;
    t->snap_revision = dsc__model_revision(m);
    t->snap_first_sq = t->first_sq;
    t->snap_first_sq_ok = t->first_sq_ok && t->first_sq_revision == t->snap_revision;
    t->snap_sparse = 1;
    t->have_snapshot = 1;
}

/* True when a batch loss is far above its recent average. */
static bool loss_jumped(const dsc_trainer *t, double loss)
{
    return t->cfg.jump_factor > 0.0 && t->losses_seen >= 20 &&
           loss > t->cfg.jump_factor * t->loss_average;
}

/* A step went through: feed the loss average and count it. */
static void count_step(dsc_trainer *t, double loss, int *counted)
{
    t->loss_average = t->losses_seen == 0 ? loss : 0.99 * t->loss_average + 0.01 * loss;
    t->losses_seen++;
    t->steps++;
    *counted = 1;
}

/*
 * Which step the next batch takes (the optimizer's rate set): DSC_ROWS_DENSE, or the rule of
 * the sparse step for the first layer with its shrink factor (see the top of the file).
 */
static int choose_step(const dsc_trainer *t, double *factor)
{
    *factor = 1.0;
    if (!t->rows_ready || !t->rows_allowed)
        return DSC_ROWS_DENSE;

    /* Clipping acts on the l2 * w of every weight, which the sparse step leaves out. */
    double l2 = t->cfg.objective.l2;
    if (l2 != 0.0 && (t->cfg.clip_norm > 0.0 || t->cfg.clip_value > 0.0))
        return DSC_ROWS_DENSE;
    return dsc__optim_rows_mode(t->opt, t->first_weights, l2, factor);
}

/* The sum of squares of the stored first-layer weights, recomputed when it may be stale. */
static double first_layer_sq(dsc_trainer *t)
{
    dsc_model *m = t->model;
    uint64_t revision = dsc__model_revision(m);

    if (!t->first_sq_ok || t->first_sq_revision != revision) {
        const float *w = dsc__model_raw_params(m);
        double sum = 0.0;
        for (size_t i = 0; i < t->first_weights; i++)
            sum += (double)w[i] * (double)w[i];
        t->first_sq = sum;
        t->first_sq_ok = 1;
        t->first_sq_revision = revision;
    }
    return t->first_sq;
}

/* The scale is folded once it leaves this range, long before float precision suffers. */
#define MIN_SCALE 1e-9
#define MAX_SCALE 1e9

/*
 * The sparse step on rows[0..n): the dense step below restricted to the touched rows and
 * the tail, with mode and factor from choose_step.
 */
static int take_sparse_step(dsc_trainer *t, const uint32_t *rows, size_t n, double lr,
                            int mode, double factor, double *loss, int *counted)
{
    dsc_model *m = t->model;
    float *params = dsc__model_raw_params(m);
    float *grads = dsc__model_raw_grads(m);
    const dsc_objective *obj = &t->cfg.objective;
    int with_l2 = obj->l2 != 0.0;
    double scale = dsc__model_scale(m);
    double first_sq = with_l2 ? scale * scale * first_layer_sq(t) : 0.0;
    dsc_row_set set;
    bool rows_finite;

    /* Packed rows suit an update that takes them in one walk, and no clipping. */
    bool clipping = t->cfg.clip_norm > 0.0 || t->cfg.clip_value > 0.0;
    int packed = !clipping && dsc__optim_rows_one_walk(t->opt, t->first_weights,
                                                        mode == DSC_ROWS_SCALED);
    int rc = dsc__model_loss_grad_rows(m, &t->train, rows, n, obj, first_sq,
                                       t->cfg.clip_norm > 0.0, packed, loss, &set,
                                       &rows_finite);
    if (rc < 0)
        return rc;
    if (!isfinite(*loss))
        return diverged(t, "loss", lr);
    if (!rows_finite || !dsc__all_finite(grads + set.tail_begin, set.tail_end - set.tail_begin))
        return diverged(t, "gradient", lr);
    if (loss_jumped(t, *loss))
        return diverged(t, "loss", lr);

    if (t->cfg.clip_value > 0.0)
        dsc__rows_clip_value(grads, &set, (float)t->cfg.clip_value);
    if (t->cfg.clip_norm > 0.0)
        dsc__rows_clip_norm(grads, &set, t->cfg.clip_norm);

    /* The update; a scaled step shrinks every weight through the scale. */
    set.row_scale = mode == DSC_ROWS_SCALED ? scale * factor : 0.0;
    take_sparse_snapshot(t, &set, scale);
    bool params_finite;
    rc = dsc__optim_step_rows(t->opt, params, grads, &set, t->snap_values, &params_finite);
    if (rc < 0) {
        t->have_snapshot = 0; /* its rows were not kept; nothing was changed either */
        return rc;
    }
    double old_sq = 0.0; /* the rows' sum of squares before the step, from their copy */
    for (size_t i = 0; with_l2 && i < set.n_rows * set.width; i++)
        old_sq += (double)t->snap_values[i] * (double)t->snap_values[i];
    if (mode == DSC_ROWS_SCALED)
        dsc__model_set_scale(m, set.row_scale);
    if (!params_finite) {
        /* Undo this update at once: the snapshot holds what it changed. */
        restore_snapshot(t);
        t->have_snapshot = 0;
        return diverged(t, "weights", lr);
    }
    if (with_l2)
        t->first_sq += dsc__rows_sum_sq(params, &set) - old_sq;

    double now = dsc__model_scale(m);
    if (!(now >= MIN_SCALE && now <= MAX_SCALE))
        dsc__model_fold(m);
    count_step(t, *loss, counted);
    return DSC_OK;
}

/* A hint to the core that this thread is waiting for another. */
static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/*
 * The rows of the batch at t->pos (n of them) in the stage ring, or NULL when the warming
 * thread has not copied them all yet (the trainer then reads them from the data: the same
 * numbers, so the same results). With the test hook stage_wait it waits for them.
 */
static const float *staged_batch(dsc_trainer *t, size_t n)
{
    const warm_signal *signal = t->staging;
    size_t slot = t->stage_rows ? t->pos % t->stage_rows : 0;

    if (!signal || slot + n > t->stage_rows)
        return NULL;
    size_t ready = atomic_load_explicit(&signal->staged_to, memory_order_acquire);
    while (t->stage_wait && ready < t->pos + n) {
        spin_pause();
        ready = atomic_load_explicit(&signal->staged_to, memory_order_acquire);
    }
    if (ready < t->pos + n)
        return NULL;
    t->staged_batches++;
    return t->stage + slot * t->train.n_features;
}

/*
 * One optimizer step on rows[0..n). *loss gets the batch loss; *counted is 0 when the batch
 * was dropped by the divergence guard.
 */
static int take_step(dsc_trainer *t, const uint32_t *rows, size_t n, double *loss,
                     int *counted)
{
    dsc_model *m = t->model;
    size_t n_params = dsc_model_n_params(m);
    float *params = dsc__model_raw_params(m);
    float *grads = dsc__model_raw_grads(m);
    double lr = t->lr_scale * dsc_schedule_lr(&t->cfg.schedule, &t->sched_state, t->steps,
                                              (int64_t)t->n_epochs, t->metrics, t->n_epochs);

    *counted = 0;
    dsc_optim_set_lr(t->opt, lr);
    double factor;
    int mode = choose_step(t, &factor);
    if (mode != DSC_ROWS_DENSE)
        return take_sparse_step(t, rows, n, lr, mode, factor, loss, counted);

    /* The dense step, on the weights as they are (the scale folded). */
    dsc__model_fold(m);
    size_t after = t->pos + n; /* rows is the order from t->pos */
    const float *staged = staged_batch(t, n);
    int rc = dsc__model_loss_grad_checked(m, &t->train, rows, n, &t->cfg.objective,
                                          staged ? NULL : t->order + after,
                                          staged ? 0 : t->n_train - after, staged, loss);
    if (rc < 0)
        return rc;
    if (!isfinite(*loss))
        return diverged(t, "loss", lr);
    if (!dsc__all_finite(grads, n_params))
        return diverged(t, "gradient", lr);
    if (loss_jumped(t, *loss))
        return diverged(t, "loss", lr);

    if (t->cfg.clip_value > 0.0)
        dsc_clip_value(grads, n_params, (float)t->cfg.clip_value);
    if (t->cfg.clip_norm > 0.0)
        dsc_clip_norm(grads, n_params, t->cfg.clip_norm);

    bool params_finite;
    rc = dsc__optim_step_kept(t->opt, params, grads, &t->kept, &params_finite);
    if (rc < 0)
        return rc;
    t->snap_sparse = 0;
    t->have_snapshot = 1;
    t->first_sq_ok = 0;
    if (!params_finite) {
        /* Undo this update at once: the snapshot holds the weights just before it. */
        restore_snapshot(t);
        t->have_snapshot = 0;
        return diverged(t, "weights", lr);
    }
    count_step(t, *loss, counted);
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

/* Statistics, validation, the schedule's metric and the stopping rules after an epoch. */
static int finish_epoch(dsc_trainer *t)
{
    dsc_epoch_stats *stats = &t->history[t->n_epochs];
    dsc__model_fold(t->model); /* validation, the best weights and the caller see w */
    stats->epoch = (int64_t)t->n_epochs + 1;
    stats->steps = t->steps;
    stats->train_loss = t->epoch_rows ? t->epoch_loss_sum / (double)t->epoch_rows : NAN;
    stats->lr = dsc_optim_lr(t->opt);
    stats->val_loss = stats->val_metric = NAN;
    if (t->n_val > 0) {
        int rc = validate(t, &stats->val_loss, &stats->val_metric);
        if (rc < 0)
            return rc;
    }
    stats->seconds = t->seconds_before + dsc__now() - t->started;

    double monitored = t->n_val > 0 ? stats->val_loss : stats->train_loss;
    t->metrics[t->n_epochs] = monitored;
    t->n_epochs++;
    t->pos = 0;
    t->shuffled = 0;
    t->epoch_loss_sum = 0.0;
    t->epoch_rows = 0;
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

/* The epoch's order, shuffled before its first step. */
static void draw_order(dsc_trainer *t)
{
    if (t->pos == 0 && !t->shuffled && t->cfg.shuffle)
        dsc_rng_shuffle(&t->shuffle_rng, t->order, t->n_train);
    t->shuffled = 1;
}

int dsc_trainer_step(dsc_trainer *t)
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

    draw_order(t);

    size_t n = t->n_train - t->pos < t->batch ? t->n_train - t->pos : t->batch;
    double loss;
    int counted;
    int rc = take_step(t, t->order + t->pos, n, &loss, &counted);
    if (rc < 0)
        return rc;
    if (counted) {
        t->epoch_loss_sum += loss * (double)n;
        t->epoch_rows += n;
    }
    t->pos += n;
    return t->pos >= t->n_train ? finish_epoch(t) : 1;
}

/*
 * Warming. A batch of a model without hidden layers that fits one chunk (linear.c; the default
 * batch of 32) runs on one thread, and on a large shuffled set most of its time waits for rows
 * to come from memory. Given two or more threads, a second thread then walks the epoch's
 * order ahead of the trainer. Where the trainer has a stage ring (allocate_stage), the
 * second thread copies the rows into it in the epoch's order (stage_rows) and the trainer
 * reads each batch there, one row after the other, when the whole batch has been copied
 * (staged_batch), or else from the data; otherwise the second thread loads the rows into the
 * caches (warm_rows). Either way the trainer computes on the same numbers in the same order:
 * the results are the same bits as on one thread. The trainer tells its position every
 * WARM_SLICE rows. On the benchmark's first 2-core VM an epoch of 1,000,000 shuffled rows of
 * 100 floats at batch 32 went from about 140 ms on one thread to 95 to 105 ms with the rows
 * loaded (medians of runs; 32 KiB to 1 MiB ahead did as well as 128 KiB, 4 MiB worse). On the
 * Zen 4 VM of bench/README.md, staging took it from 78 to 66 ms (medians of 9, alternating;
 * one thread: about 95 ms); asking for the rows 32 to 128 places before copying them did
 * alike, 16 worse.
 *
 * The warming thread runs while the trainer takes the steps of the epoch but the last; the
 * last step (validation, the stopping rules, the caller's epoch function) runs after it has
 * stopped, with every thread free again. dsc_trainer_step alone never warms.
 *
 * Known limits: the waiting thread spins, so on a machine with fewer free cores than threads
 * it takes time from other work. Only the one-pass path is warmed, although a small
 * multilayer batch, or a sparse one, waits for its rows in the same way. The staged rows
 * still come from the other core's cache at a cost: a row took about 57 to 60 ns on two
 * threads against 44 ns when the whole set fits in one core's cache (and 51 ns read in
 * order from memory on one thread).
 */
#ifdef _OPENMP
static int warming_pays(const dsc_trainer *t)
{
    double bytes = (double)t->n_train * (double)t->train.n_features * sizeof(float);

    return t->warming && t->train.x && t->cfg.shuffle && dsc_threads() >= 2 &&
           omp_get_num_procs() >= 2 && !omp_in_parallel() && bytes >= (double)t->warm_min_bytes &&
           t->n_train - t->pos > t->batch && t->stop == DSC_STOP_NONE && !t->failed &&
           dsc__model_one_pass_alone(t->model, &t->train, t->batch);
}

/* The trainer's position as it last told it, into *at; 1 once it is done with the steps. */
static int read_signal(const warm_signal *signal, size_t *at)
{
    size_t position;
    int done;

    position = atomic_load_explicit(&signal->progress, memory_order_acquire);
#pragma omp atomic read
    done = signal->finished;
    *at = position;
    return done;
}

/*
 * The warming thread: loads every cache line of the rows order[at, at + ahead) while the
 * trainer is at `at`, until the trainer has finished. The loads are volatile so that they
 * are made. Once ahead, it looks at the trainer's position only every WARM_WAIT pauses.
 */
static void warm_rows(const float *x, size_t width, const uint32_t *order, size_t n,
                      size_t ahead, const warm_signal *signal)
{
    const size_t line_floats = 64 / sizeof(float);
    size_t next = 0;

    for (;;) {
        size_t at;
        if (read_signal(signal, &at))
            return;

        size_t from = next > at ? next : at;
        size_t to = n - at > ahead ? at + ahead : n;
        if (from >= to) {
            for (int i = 0; i < WARM_WAIT; i++)
                spin_pause();
            continue;
        }
        for (size_t i = from; i < to; i++) {
            const volatile float *row = x + (size_t)order[i] * width;
            for (size_t j = 0; j < width; j += line_floats)
                (void)row[j];
            (void)row[width - 1];
        }
        next = to;
    }
}

/*
 * The warming thread when there is a stage ring: it asks for the rows of the order
 * STAGE_AHEAD places before it copies them into the ring (position p at slot p modulo
 * stage_rows), and publishes how far it got every STAGE_SLICE rows. It copies position q
 * only once the trainer is past q - stage_rows, whose slot it takes; the trainer's position
 * arrives late, which only holds the copies back. The trainer then reads its batch from the
 * ring, one row after the other, instead of from random places in memory.
 */
static void stage_rows(dsc_trainer *t, warm_signal *signal)
{
    const float *x = t->train.x;
    const uint32_t *order = t->order;
    size_t width = t->train.n_features, n = t->n_train, ring = t->stage_rows;
    const size_t line_floats = 64 / sizeof(float);
    size_t copied = atomic_load_explicit(&signal->staged_to, memory_order_relaxed);
    size_t asked = copied;

    for (;;) {
        size_t at;
        if (read_signal(signal, &at))
            return;

        size_t limit = n - at > ring ? at + ring : n;
        if (copied >= limit) {
            for (int i = 0; i < WARM_WAIT; i++)
                spin_pause();
            continue;
        }
        size_t ask_to = n - copied > STAGE_AHEAD ? copied + STAGE_AHEAD : n;
        for (; asked < ask_to; asked++) {
            const float *row = x + (size_t)order[asked] * width;
            for (size_t j = 0; j < width; j += line_floats)
                DSC_PREFETCH_L2(row + j);
            DSC_PREFETCH_L2(row + width - 1);
        }
        size_t end = limit - copied > STAGE_SLICE ? copied + STAGE_SLICE : limit;
        for (; copied < end; copied++)
            memcpy(t->stage + (copied % ring) * width, x + (size_t)order[copied] * width,
                   width * sizeof(float));
        atomic_store_explicit(&signal->staged_to, copied, memory_order_release);
    }
}

/*
 * The steps of the epoch but its last, with a second thread warming the rows. The trainer
 * tells its position after every WARM_SLICE rows' worth of steps (at least one step).
 */
static int warmed_epoch(dsc_trainer *t)
{
    size_t row_bytes = t->train.n_features * sizeof(float);
    size_t ahead = WARM_BYTES / row_bytes > WARM_SLICE ? WARM_BYTES / row_bytes : WARM_SLICE;
    warm_signal signal = {.finished = 0};
    int rc = 1, warmers = 0;

    atomic_init(&signal.progress, t->pos);
    atomic_init(&signal.staged_to, t->pos);
    draw_order(t);
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0) {
            int step_rc = 1;
            size_t told = t->pos;
            if (t->stage && omp_get_num_threads() == 2)
                t->staging = &signal;
            while (step_rc == 1 && t->n_train - t->pos > t->batch) {
                step_rc = dsc_trainer_step(t);
                if (t->pos - told >= WARM_SLICE) {
                    told = t->pos;
                    atomic_store_explicit(&signal.progress, told, memory_order_release);
                }
            }
            t->staging = NULL;
#pragma omp atomic write
            signal.finished = 1;
            rc = step_rc;
            warmers = omp_get_num_threads() - 1;
        } else {
            if (t->stage)
                stage_rows(t, &signal);
            else
                warm_rows(t->train.x, t->train.n_features, t->order, t->n_train, ahead, &signal);
        }
    }
    if (warmers > 0)
        t->warmed_epochs++;
    return rc;
}
#endif

int dsc__trainer_set_warming(dsc_trainer *t, int warming, size_t min_bytes)
{
    if (!t)
        return dsc__fail(DSC_EINVAL, "train: NULL trainer");
    t->warming = warming != 0;
    t->warm_min_bytes = min_bytes;
    return allocate_stage(t);
}

int dsc__trainer_wait_for_stage(dsc_trainer *t, int wait)
{
    if (!t)
        return dsc__fail(DSC_EINVAL, "train: NULL trainer");
    t->stage_wait = wait != 0;
    return DSC_OK;
}

uint64_t dsc__trainer_staged_batches(const dsc_trainer *t)
{
    return t->staged_batches;
}

uint64_t dsc__trainer_warmed_epochs(const dsc_trainer *t)
{
    return t->warmed_epochs;
}

int dsc_trainer_epoch(dsc_trainer *t)
{
    if (!t)
        return dsc__fail(DSC_EINVAL, "train: NULL trainer");
    size_t epochs_before = t->n_epochs;
    int rc = 1;

#ifdef _OPENMP
    if (t->pos == 0 && warming_pays(t)) {
        rc = warmed_epoch(t);
        if (rc != 1)
            return rc;
    }
#endif
    do {
        rc = dsc_trainer_step(t);
    } while (rc == 1 && t->n_epochs == epochs_before);
    return rc;
}

int64_t dsc_trainer_steps(const dsc_trainer *t)
{
    return t->steps;
}

int64_t dsc_trainer_epochs_done(const dsc_trainer *t)
{
    return (int64_t)t->n_epochs;
}

double dsc_trainer_lr_scale(const dsc_trainer *t)
{
    return t->lr_scale;
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

/*
 * Trainer state as bytes. Every number is written little-endian, byte by byte, so the image
 * is the same on every machine: the magic "DSCTRST1", then the sizes that must match the
 * loading trainer (parameters, optimizer state, training and validation rows, epochs), the
 * counters, the schedule state, the generator, the training order, the history, the weights,
 * the best weights (early stopping) and the optimizer state.
 */
typedef struct {
    unsigned char *at, *end; /* writing: NULL at to only count */
    size_t size;
    int bad;
} byte_cursor;

static void put_bytes(byte_cursor *c, const void *src, size_t n)
{
    if (c->at) {
        if ((size_t)(c->end - c->at) < n) {
            c->bad = 1;
            return;
        }
        memcpy(c->at, src, n);
        c->at += n;
    }
    c->size += n;
}

static void put_u64(byte_cursor *c, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(c, b, 8);
}

static void put_f64(byte_cursor *c, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_u64(c, bits);
}

static void put_f32s(byte_cursor *c, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        unsigned char b[4];
        memcpy(&bits, &v[i], 4);
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)(bits >> (8 * k));
        put_bytes(c, b, 4);
    }
}

static void get_bytes(byte_cursor *c, void *dst, size_t n)
{
    if (c->bad || (size_t)(c->end - c->at) < n) {
        c->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, c->at, n);
    c->at += n;
}

static uint64_t get_u64(byte_cursor *c)
{
    unsigned char b[8];
    uint64_t v = 0;
    get_bytes(c, b, 8);
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static double get_f64(byte_cursor *c)
{
    uint64_t bits = get_u64(c);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

static void get_f32s(byte_cursor *c, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        uint32_t bits = 0;
        get_bytes(c, b, 4);
        for (int k = 0; k < 4; k++)
            bits |= (uint32_t)b[k] << (8 * k);
        memcpy(&v[i], &bits, 4);
    }
}

static const char state_magic[8] = {'D', 'S', 'C', 'T', 'R', 'S', 'T', '1'};

/* Write (or with c->at NULL, count) the whole state; the optimizer state comes last. */
static int write_state(const dsc_trainer *t, byte_cursor *c)
{
    size_t n_params = dsc_model_n_params(t->model);

    put_bytes(c, state_magic, sizeof state_magic);
    put_u64(c, n_params);
    put_u64(c, t->opt_state_size);
    put_u64(c, t->n_train);
    put_u64(c, t->n_val);
    put_u64(c, t->n_epochs);
    put_u64(c, t->best != NULL);

    put_u64(c, t->pos);
    put_u64(c, (uint64_t)t->shuffled);
    put_f64(c, t->epoch_loss_sum);
    put_u64(c, t->epoch_rows);
    put_f64(c, t->lr_scale);
    put_u64(c, (uint64_t)t->retries);
    put_f64(c, t->loss_average);
    put_u64(c, (uint64_t)t->losses_seen);
    put_u64(c, (uint64_t)t->steps);
    put_f64(c, t->best_monitored);
    put_f64(c, t->best_val);
    put_u64(c, (uint64_t)t->no_improvement);
    put_u64(c, (uint64_t)t->stop);
    put_f64(c, t->seconds_before + dsc__now() - t->started);

    put_f64(c, t->sched_state.scale);
    put_f64(c, t->sched_state.best);
    put_u64(c, (uint64_t)t->sched_state.bad_epochs);
    put_u64(c, (uint64_t)t->sched_state.cooldown_left);
    put_u64(c, (uint64_t)t->sched_state.n_observed);
    for (int i = 0; i < 4; i++)
        put_u64(c, t->shuffle_rng.s[i]);

    for (size_t i = 0; i < t->n_train; i++)
        put_u64(c, t->order[i]);
    for (size_t e = 0; e < t->n_epochs; e++) {
        const dsc_epoch_stats *h = &t->history[e];
        put_u64(c, (uint64_t)h->epoch);
        put_u64(c, (uint64_t)h->steps);
        put_f64(c, h->train_loss);
        put_f64(c, h->val_loss);
        put_f64(c, h->val_metric);
        put_f64(c, h->lr);
        put_f64(c, h->seconds);
        put_f64(c, t->metrics[e]);
    }
    put_f32s(c, dsc_model_params(t->model), n_params);
    if (t->best)
        put_f32s(c, t->best, n_params);

    if (!c->at) {
        c->size += t->opt_state_size;
        return DSC_OK;
    }
    if ((size_t)(c->end - c->at) != t->opt_state_size)
        return dsc__fail(DSC_EINVAL, "train: the state buffer has the wrong size");
    int rc = dsc_optim_state_save(t->opt, c->at, t->opt_state_size);
    c->at += t->opt_state_size;
    return rc;
}

size_t dsc_trainer_state_size(const dsc_trainer *t)
{
    byte_cursor counter = {0};

    write_state(t, &counter);
    return counter.size;
}

int dsc_trainer_state_save(const dsc_trainer *t, void *buf, size_t size)
{
    if (!t || !buf)
        return dsc__fail(DSC_EINVAL, "train: NULL argument");
    if (t->failed)
        return dsc__fail(DSC_ESTATE, "train: a failed run has no state to save");
    if (size != dsc_trainer_state_size(t))
        return dsc__fail(DSC_EINVAL, "train: the state takes %zu bytes, not %zu",
                         dsc_trainer_state_size(t), size);
    dsc__model_fold(t->model); /* the state holds the weights themselves */

    byte_cursor c = {.at = buf, .end = (unsigned char *)buf + size};
    int rc = write_state(t, &c);
    return rc < 0 ? rc : (c.bad ? dsc__fail(DSC_EINVAL, "train: state buffer too small") : 0);
}

int dsc_trainer_state_load(dsc_trainer *t, const void *buf, size_t size)
{
    if (!t || !buf)
        return dsc__fail(DSC_EINVAL, "train: NULL argument");
    byte_cursor c = {.at = (unsigned char *)buf, .end = (unsigned char *)buf + size};
    size_t n_params = dsc_model_n_params(t->model);

    /* The sizes first: the state must come from a trainer built the same way. */
    char magic[8];
    get_bytes(&c, magic, sizeof magic);
    if (c.bad || memcmp(magic, state_magic, sizeof magic) != 0)
        return dsc__fail(DSC_EFORMAT, "train: not a trainer state");
    uint64_t saved_params = get_u64(&c), saved_opt = get_u64(&c);
    uint64_t saved_train = get_u64(&c), saved_val = get_u64(&c);
    uint64_t saved_epochs = get_u64(&c), saved_best = get_u64(&c);
    if (c.bad || saved_params != n_params || saved_opt != t->opt_state_size ||
        saved_train != t->n_train || saved_val != t->n_val || saved_best != (t->best != NULL))
        return dsc__fail(DSC_ESHAPE, "train: the state was saved by a trainer of another "
                         "shape (parameters, rows or settings differ)");
    if (saved_epochs > (uint64_t)t->cfg.epochs)
        return dsc__fail(DSC_ESHAPE, "train: the state has %llu epochs, more than the %lld "
                         "asked for", (unsigned long long)saved_epochs,
                         (long long)t->cfg.epochs);
    size_t expected = dsc_trainer_state_size(t) - t->n_epochs * 64 + (size_t)saved_epochs * 64;
    if (size != expected)
        return dsc__fail(DSC_EFORMAT, "train: the state is %zu bytes, expected %zu", size,
                         expected);

    /* Then everything else; the size check above guarantees every read is in bounds. */
    t->n_epochs = (size_t)saved_epochs;
    t->pos = (size_t)get_u64(&c);
    t->shuffled = (int)get_u64(&c);
    t->epoch_loss_sum = get_f64(&c);
    t->epoch_rows = (size_t)get_u64(&c);
    t->lr_scale = get_f64(&c);
    t->retries = (int)get_u64(&c);
    t->loss_average = get_f64(&c);
    t->losses_seen = (int64_t)get_u64(&c);
    t->steps = (int64_t)get_u64(&c);
    t->best_monitored = get_f64(&c);
    t->best_val = get_f64(&c);
    t->no_improvement = (int64_t)get_u64(&c);
    t->stop = (dsc_stop)get_u64(&c);
    t->seconds_before = get_f64(&c);
    t->started = dsc__now();

    t->sched_state.scale = get_f64(&c);
    t->sched_state.best = get_f64(&c);
    t->sched_state.bad_epochs = (int64_t)get_u64(&c);
    t->sched_state.cooldown_left = (int64_t)get_u64(&c);
    t->sched_state.n_observed = (int64_t)get_u64(&c);
    for (int i = 0; i < 4; i++)
        t->shuffle_rng.s[i] = get_u64(&c);

    for (size_t i = 0; i < t->n_train; i++) {
        uint64_t row = get_u64(&c);
        if (row >= t->train.n_rows)
            return dsc__fail(DSC_EFORMAT, "train: the state names row %llu of %zu",
                             (unsigned long long)row, t->train.n_rows);
        t->order[i] = (uint32_t)row;
    }
    for (size_t e = 0; e < t->n_epochs; e++) {
        dsc_epoch_stats *h = &t->history[e];
        h->epoch = (int64_t)get_u64(&c);
        h->steps = (int64_t)get_u64(&c);
        h->train_loss = get_f64(&c);
        h->val_loss = get_f64(&c);
        h->val_metric = get_f64(&c);
        h->lr = get_f64(&c);
        h->seconds = get_f64(&c);
        t->metrics[e] = get_f64(&c);
    }
    get_f32s(&c, dsc_model_params(t->model), n_params);
    if (t->best)
        get_f32s(&c, t->best, n_params);
    t->have_snapshot = 0;
    t->failed = 0;
    if (t->pos > t->n_train || t->stop > DSC_STOP_NONFINITE)
        return dsc__fail(DSC_EFORMAT, "train: the state is inconsistent");
    return dsc_optim_state_load(t->opt, c.at, t->opt_state_size);
}
