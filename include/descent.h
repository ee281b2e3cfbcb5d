/*
 * descent.h - train linear, logistic, softmax and multilayer models by gradient descent.
 *
 * This is the only public header of libdescent. Every name starts with dsc_ or DSC_.
 *
 * Conventions that hold everywhere:
 * - Weights, gradients and data are float (32-bit); losses, norms and other reductions are
 *   accumulated in double.
 * - Functions that can fail return 0 (DSC_OK) or a negative DSC_E... code; constructors return
 *   NULL and store the code in *err when err is not NULL. dsc_strerror() names a code and
 *   dsc_last_error() gives the detailed message of the latest failure in the calling thread.
 * - The library never prints, exits or aborts on bad input or bad parameters.
 * - The same seed and the same build give bit-identical results.
 *
 * Loss conventions:
 * - The loss of a batch is the mean over its samples; with sample weights s_i it is the
 *   weighted mean sum(s_i c_i l_i) / sum(s_i), where c_i is the weight of sample i's class
 *   (1 without class weights), so that class weights scale the loss even in a batch of one.
 * - Squared error is (y - yhat)^2, as PyTorch's MSELoss; with several targets a sample's loss
 *   is the mean over its targets, as are Huber and epsilon-insensitive losses.
 * - Classification losses take logits (the last layer has no activation of its own) and are
 *   computed stably (log-sum-exp, never log(0)). Binary losses (log, hinge, squared hinge,
 *   modified Huber) on K > 2 classes are one-vs-rest: one output per class, summed.
 * - Regularisation adds (l2 / 2) * ||w||^2 + l1 * ||w||_1 to the mean loss; biases are not
 *   regularised.
 * - An optimizer's weight_decay follows torch.optim: added to the gradient (wd * w), or
 *   decoupled from it (w -= lr * wd * w) for AdamW.
 */
#ifndef DESCENT_H
#define DESCENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_VERSION "0.1.0"

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                     */
/* ------------------------------------------------------------------------------------------ */

enum {
    DSC_OK = 0,
    DSC_EINVAL = -1,     /* an argument or parameter out of its domain */
    DSC_ENOMEM = -2,     /* an allocation failed */
    DSC_ESHAPE = -3,     /* sizes that do not fit together */
    DSC_ENONFINITE = -4, /* a loss, gradient or weight stopped being finite */
    DSC_EIO = -5,        /* reading or writing a file failed */
    DSC_EFORMAT = -6,    /* malformed input */
    DSC_ELIMIT = -7,     /* a size beyond a limit or beyond what can be addressed */
    DSC_EVERSION = -8,   /* a file written by a newer version */
    DSC_ECHECKSUM = -9,  /* a file whose checksum does not match */
    DSC_EFROZEN = -10,   /* nothing left to train: every parameter is frozen */
    DSC_ESTATE = -11     /* a call made in the wrong state (for example, after a failure) */
};

/*
 * The optional parts this build was made with, separated by spaces: first the back end of
 * the dense layers' matrix products, "gemm=openblas" or "gemm=built-in", then "openmp" and
 * "zlib" when present, for example "gemm=built-in openmp zlib". Never NULL.
 */
const char *dsc_build_features(void);

/*
 * Use n threads for training and the matrix products (OpenMP builds; other builds run on one
 * thread and accept any n >= 1). Results are bit-identical whatever the number of threads:
 * work is split over independent outputs, or over parts of a sum fixed by its size alone and
 * added in a fixed order. With OpenBLAS, each product runs on one of these threads, and
 * OpenBLAS's own pool of threads is stopped (for the whole process: it starts again for a
 * call of OpenBLAS on more than one thread). dsc_threads() gives the current number.
 */
int dsc_set_threads(int n);
int dsc_threads(void);

/* The name of an error code, for example "out of memory". Never NULL. */
const char *dsc_strerror(int code);

/*
 * The message of the latest failure in the calling thread, with its context (a file, line and
 * column, or the parameter at fault). An empty string when nothing has failed yet.
 */
const char *dsc_last_error(void);

/*
 * Replace the allocator used for every allocation of the library (defaults: malloc and free).
 * alloc returns NULL to signal failure. Passing NULL for both restores the defaults. Not
 * thread-safe: set it before any other call.
 */
void dsc_set_allocator(void *(*alloc)(size_t size, void *ctx),
                       void (*release)(void *ptr, void *ctx), void *ctx);

/* ------------------------------------------------------------------------------------------ */
/* Random numbers: xoshiro256** seeded through splitmix64, the same on every platform          */
/* ------------------------------------------------------------------------------------------ */

typedef struct dsc_rng {
    uint64_t s[4];
} dsc_rng;

/* Seed the generator; every seed, 0 included, gives a valid and distinct stream. */
void dsc_rng_seed(dsc_rng *rng, uint64_t seed);

/* The next 64 random bits. */
uint64_t dsc_rng_next(dsc_rng *rng);

/* A double uniform on [0, 1) with 53 random bits. */
double dsc_rng_uniform(dsc_rng *rng);

/* A standard normal deviate (Box-Muller; the second deviate is not cached). */
double dsc_rng_normal(dsc_rng *rng);

/* An integer uniform on [0, n) without modulo bias; 0 when n is 0. */
uint64_t dsc_rng_below(dsc_rng *rng, uint64_t n);

/* Shuffle idx[0..n) in place (Fisher-Yates). */
void dsc_rng_shuffle(dsc_rng *rng, uint32_t *idx, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Data: a borrowed view of features and targets                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * Features are either dense (x: n_rows * n_features floats, row-major) or sparse CSR
 * (row_ptr: n_rows + 1 offsets; col and val: row_ptr[n_rows] entries, columns 0-based and
 * increasing within a row). Targets are either class labels (label, each in [0, n_classes))
 * or regression targets (y: n_rows * n_targets floats, row-major). weight optionally gives a
 * non-negative weight per sample. The library never frees or changes what these point to.
 */
typedef struct dsc_data {
    size_t n_rows;
    size_t n_features;
    const float *x;
    const uint64_t *row_ptr;
    const uint32_t *col;
    const float *val;
    const int32_t *label;
    const float *y;
    size_t n_targets;
    const float *weight;
} dsc_data;

/* ------------------------------------------------------------------------------------------ */
/* Models: a stack of dense layers over one flat weight buffer                                */
/* ------------------------------------------------------------------------------------------ */

#define DSC_MAX_HIDDEN 16

typedef enum dsc_activation {
    DSC_ACT_IDENTITY,
    DSC_ACT_SIGMOID,
    DSC_ACT_TANH,
    DSC_ACT_RELU,
    DSC_ACT_LEAKY_RELU, /* slope act_param for x < 0 (default 0.01) */
    DSC_ACT_ELU,        /* alpha act_param (default 1) */
    DSC_ACT_GELU,       /* the exact form x * Phi(x), with erf */
    DSC_ACT_SOFTPLUS,
    DSC_ACT_COUNT
} dsc_activation;

typedef enum dsc_loss {
    DSC_LOSS_SQUARED,         /* regression: (y - z)^2 */
    DSC_LOSS_HUBER,           /* regression: delta loss_param (default 1) */
    DSC_LOSS_EPS_INSENSITIVE, /* regression: max(0, |y - z| - eps), eps loss_param (0.1) */
    DSC_LOSS_LOG,             /* classification: logistic loss on a logit */
    DSC_LOSS_SOFTMAX,         /* classification: cross-entropy of the softmax of K logits */
    DSC_LOSS_HINGE,           /* classification: max(0, 1 - t z), t = +-1 */
    DSC_LOSS_SQUARED_HINGE,   /* classification: max(0, 1 - t z)^2 */
    DSC_LOSS_MODIFIED_HUBER,  /* classification: squared hinge, linear (-4 t z) below -1 */
    DSC_LOSS_COUNT
} dsc_loss;

typedef enum dsc_init {
    DSC_INIT_AUTO,           /* zeros without hidden layers; else He for the ReLU family */
    DSC_INIT_ZEROS,
    DSC_INIT_XAVIER_UNIFORM, /* U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
    DSC_INIT_XAVIER_NORMAL,  /* N(0, 2 / (fan_in + fan_out)) */
    DSC_INIT_HE_UNIFORM,     /* U(-a, a), a = sqrt(6 / fan_in) */
    DSC_INIT_HE_NORMAL,      /* N(0, 2 / fan_in) */
    DSC_INIT_COUNT
} dsc_init;

/*
 * The shape of a model. n_outputs is the number of regression targets for a regression loss
 * and the number of classes (>= 2) for a classification loss. A model with n_hidden == 0 is a
 * linear model: linear regression with DSC_LOSS_SQUARED, logistic regression with
 * DSC_LOSS_LOG and 2 classes, softmax regression with DSC_LOSS_SOFTMAX.
 */
typedef struct dsc_model_config {
    size_t n_inputs;
    size_t n_outputs;
    size_t n_hidden;
    size_t hidden[DSC_MAX_HIDDEN];             /* width of each hidden layer */
    dsc_activation activation[DSC_MAX_HIDDEN]; /* activation of each hidden layer */
    dsc_loss loss;
    float loss_param; /* Huber's delta or the insensitive zone; 0 takes the default */
    float act_param;  /* leaky ReLU's slope or ELU's alpha; 0 takes the default */
} dsc_model_config;

/* Fill cfg for a model with no hidden layer; add hidden layers by setting n_hidden, etc. */
void dsc_model_config_init(dsc_model_config *cfg, size_t n_inputs, size_t n_outputs,
                           dsc_loss loss);

typedef struct dsc_model dsc_model;

/*
 * A view of one dense layer. w holds n_in * n_out weights stored input-major (w[i * n_out + o]
 * connects input i to output o), b holds n_out biases; dw and db are the matching gradients.
 * first and count locate the layer's weights and biases in the flat parameter buffer.
 */
typedef struct dsc_layer {
    size_t n_in, n_out;
    dsc_activation activation;
    float *w, *b, *dw, *db;
    size_t first, count;
} dsc_layer;

/* Create a model with zero weights. NULL on failure, with the code in *err. */
dsc_model *dsc_model_new(const dsc_model_config *cfg, int *err);

/* Free a model and everything it owns. NULL is allowed. */
void dsc_model_free(dsc_model *model);

/* The configuration the model was created with. */
const dsc_model_config *dsc_model_config_of(const dsc_model *model);

/*
 * Initialise all weights with init from a generator seeded with seed; biases become 0.
 * DSC_INIT_AUTO gives zeros to a model without hidden layers and, layer by layer, He uniform
 * to layers with a ReLU-family activation (ReLU, leaky ReLU, ELU, GELU) and Xavier uniform
 * to the others.
 */
int dsc_model_init_weights(dsc_model *model, dsc_init init, uint64_t seed);

/* Number of parameters, and the flat parameter and gradient buffers of that length. */
size_t dsc_model_n_params(const dsc_model *model);
float *dsc_model_params(dsc_model *model);
float *dsc_model_grads(dsc_model *model);

/* Number of dense layers (hidden layers + 1), and a view of layer i (0 is the first). */
size_t dsc_model_n_layers(const dsc_model *model);
int dsc_model_layer(dsc_model *model, size_t i, dsc_layer *out);

/* Number of units of the last layer: 1 for a binary loss on 2 classes, n_outputs otherwise. */
size_t dsc_model_n_logits(const dsc_model *model);

/* True when the model's loss is a classification loss. */
int dsc_model_is_classifier(const dsc_model *model);

/* Copy the weights of src into dst; both must have the same configuration. */
int dsc_model_copy_weights(dsc_model *dst, const dsc_model *src);

/*
 * Size the model's work buffers for batches of up to max_batch rows. The training loop calls
 * this before its first step so that no step allocates; other calls grow the buffers on
 * demand.
 */
int dsc_model_reserve(dsc_model *model, size_t max_batch);

/* What is added to the data loss, and how classes are weighted. */
typedef struct dsc_objective {
    double l1;                 /* l1 * ||w||_1 */
    double l2;                 /* (l2 / 2) * ||w||^2 */
    const float *class_weight; /* n_outputs weights, or NULL for 1 each */
} dsc_objective;

/*
 * The loss of the n rows rows[0..n) of data (rows NULL means rows 0..n-1), and its gradient
 * with respect to every parameter, written into dsc_model_grads(). obj may be NULL.
 */
int dsc_model_loss_grad(dsc_model *model, const dsc_data *data, const uint32_t *rows,
                        size_t n, const dsc_objective *obj, double *loss);

/* The same loss without the gradient (and without changing the gradient buffer). */
int dsc_model_loss(dsc_model *model, const dsc_data *data, const uint32_t *rows, size_t n,
                   const dsc_objective *obj, double *loss);

/*
 * Raw outputs of rows first..first+n-1 into out (n * dsc_model_n_logits() floats): the
 * predicted targets of a regression model, the logits of a classifier.
 */
int dsc_model_decision(dsc_model *model, const dsc_data *data, size_t first, size_t n,
                       float *out);

/*
 * Class probabilities of rows first..first+n-1 into out (n * n_outputs floats). For the log
 * and softmax losses they are the sigmoid and softmax; for modified Huber (clip(z) + 1) / 2,
 * normalised. DSC_EINVAL for regression and for the hinge losses, which give no probability.
 */
int dsc_model_predict_proba(dsc_model *model, const dsc_data *data, size_t first, size_t n,
                            float *out);

/* Predicted class of rows first..first+n-1 into out; DSC_EINVAL for a regression model. */
int dsc_model_predict_class(dsc_model *model, const dsc_data *data, size_t first, size_t n,
                            int32_t *out);

/* Value and exact derivative of an activation at x (param as act_param); for tests and users. */
double dsc_activation_value(dsc_activation act, double param, double x);
double dsc_activation_derivative(dsc_activation act, double param, double x);

/* Names used by the command line and in files, and the reverse look-up (-1 if unknown). */
const char *dsc_activation_name(dsc_activation act);
int dsc_activation_from_name(const char *name);
const char *dsc_loss_name(dsc_loss loss);
int dsc_loss_from_name(const char *name);
/* True for DSC_LOSS_LOG and the other classification losses. */
int dsc_loss_is_classification(dsc_loss loss);

/* ------------------------------------------------------------------------------------------ */
/* Optimizers over any flat float array                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum dsc_optimizer {
    DSC_OPT_SGD,
    DSC_OPT_MOMENTUM, /* heavy ball: SGD with momentum and dampening */
    DSC_OPT_NESTEROV, /* SGD with Nesterov momentum */
    DSC_OPT_ADAGRAD,
    DSC_OPT_RMSPROP,
    DSC_OPT_ADADELTA,
    DSC_OPT_ADAM,
    DSC_OPT_ADAMW,
    DSC_OPT_ADAMAX,
    DSC_OPT_NADAM,
    DSC_OPT_COUNT
} dsc_optimizer;

/*
 * Settings of an optimizer. dsc_optim_config_default() fills the defaults of torch.optim for
 * each kind (momentum 0.9 for the momentum and Nesterov kinds, where torch has no default).
 */
typedef struct dsc_optim_config {
    dsc_optimizer kind;
    double lr;
    double momentum;     /* SGD kinds and RMSProp */
    double dampening;    /* SGD with momentum: buf = momentum * buf + (1 - dampening) * g */
    double weight_decay; /* L2 added to the gradient; decoupled for AdamW */
    double beta1, beta2; /* Adam family */
    double eps;
    double rho;          /* RMSProp's alpha, Adadelta's rho */
    double lr_decay;     /* AdaGrad: lr / (1 + (t - 1) * lr_decay) */
    double initial_accumulator; /* AdaGrad */
    double momentum_decay;      /* NAdam's psi */
    int amsgrad;         /* Adam, AdamW: keep the maximum of the second moment */
    int centered;        /* RMSProp: divide by the variance estimate instead */
} dsc_optim_config;

/* Fill cfg with the defaults of kind. */
void dsc_optim_config_default(dsc_optim_config *cfg, dsc_optimizer kind);

/* Check a configuration: DSC_EINVAL with a message naming the field at fault. */
int dsc_optim_config_check(const dsc_optim_config *cfg);

/* Names used by the command line ("sgd", "adam", ...) and the reverse look-up (-1). */
const char *dsc_optimizer_name(dsc_optimizer kind);
int dsc_optimizer_from_name(const char *name);

typedef struct dsc_optim dsc_optim;

/* An optimizer for n_params parameters, with its state zeroed. NULL on failure. */
dsc_optim *dsc_optim_new(const dsc_optim_config *cfg, size_t n_params, int *err);

/* Free an optimizer. NULL is allowed. */
void dsc_optim_free(dsc_optim *opt);

/* The learning rate of the next step (a schedule sets it before each step), and its getter. */
void dsc_optim_set_lr(dsc_optim *opt, double lr);
double dsc_optim_lr(const dsc_optim *opt);

/*
 * Give parameters first..first+count-1 their own learning-rate multiplier, or freeze them:
 * a frozen parameter is never written (no weight decay, no momentum) and its state stays as
 * it is. Ranges may be set in any order; a later setting overrides an earlier one.
 */
int dsc_optim_set_range(dsc_optim *opt, size_t first, size_t count, double lr_scale,
                        int frozen);

/* Number of parameters that are not frozen. */
size_t dsc_optim_n_trainable(const dsc_optim *opt);

/* One update of params by grads (both of n_params floats). grads is not modified. */
int dsc_optim_step(dsc_optim *opt, float *params, const float *grads);

/* Number of steps taken so far. */
int64_t dsc_optim_steps(const dsc_optim *opt);

/*
 * The complete state (step count, learning rate and every moment buffer) as bytes, so that a
 * restored optimizer continues bit for bit. state_size gives the size to pass to save and load.
 */
size_t dsc_optim_state_size(const dsc_optim *opt);
int dsc_optim_state_save(const dsc_optim *opt, void *buf, size_t size);
int dsc_optim_state_load(dsc_optim *opt, const void *buf, size_t size);

/* Scale g so that its Euclidean norm is at most max_norm; returns the norm before clipping. */
double dsc_clip_norm(float *g, size_t n, double max_norm);

/* Clamp every g[i] to [-limit, limit]. */
void dsc_clip_value(float *g, size_t n, float limit);

/* ------------------------------------------------------------------------------------------ */
/* Learning-rate schedules                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef enum dsc_schedule_kind {
    DSC_SCHED_CONSTANT,
    DSC_SCHED_STEP,       /* base * gamma^floor(t / step_size) */
    DSC_SCHED_MULTISTEP,  /* base * gamma^(number of milestones <= t) */
    DSC_SCHED_EXP,        /* base * gamma^t */
    DSC_SCHED_INVSCALING, /* base / (t + 1)^power */
    DSC_SCHED_OPTIMAL,    /* 1 / (alpha * (t + t0)), scikit-learn's "optimal" */
    DSC_SCHED_COSINE,     /* cosine annealing over t_max, restarts when t_mult >= 1 */
    DSC_SCHED_ONECYCLE,   /* one cycle over total units, peak base */
    DSC_SCHED_PLATEAU,    /* multiply by factor when the metric stops improving */
    DSC_SCHED_CALLBACK,   /* fn decides */
    DSC_SCHED_COUNT
} dsc_schedule_kind;

/* A user schedule: the rate at (step, epoch), given the metrics of finished epochs. */
typedef double (*dsc_schedule_fn)(void *user, double base_lr, int64_t step, int64_t epoch,
                                  const double *metrics, size_t n_metrics);

/*
 * A schedule. t, the schedule's clock, counts epochs (per_step 0, the default) or optimizer
 * steps (per_step 1), from 0. A linear warm-up of warmup units goes from warmup_start * base
 * to the schedule's value at its own t = 0, and the schedule runs on t - warmup after it.
 */
typedef struct dsc_schedule {
    dsc_schedule_kind kind;
    int per_step;
    double base_lr;
    int64_t warmup;
    double warmup_start;        /* default 0 */
    int64_t step_size;          /* step */
    double gamma;               /* step, multistep, exp */
    int64_t milestones[16];     /* multistep, increasing */
    size_t n_milestones;
    double power;               /* invscaling (default 0.25, scikit-learn's power_t) */
    double alpha, t0;           /* optimal */
    int64_t t_max;              /* cosine: units of the first period */
    double t_mult;              /* cosine: 0 no restart; >= 1 restart, each period t_mult times */
    double eta_min;             /* cosine */
    int64_t total;              /* onecycle: units in the whole cycle */
    double pct_start;           /* onecycle: share of the rise (0.3) */
    double div_factor;          /* onecycle: start at base / div_factor (25) */
    double final_div_factor;    /* onecycle: end at start / final_div_factor (1e4) */
    double factor;              /* plateau: multiplier (0.1) */
    int64_t patience;           /* plateau: epochs without improvement tolerated (10) */
    double threshold;           /* plateau: relative improvement that counts (1e-4) */
    int64_t cooldown;           /* plateau */
    double min_lr;              /* plateau */
    dsc_schedule_fn fn;         /* callback */
    void *user;                 /* callback */
} dsc_schedule;

/* What a schedule remembers between epochs: plain data, saved and restored by copying. */
typedef struct dsc_schedule_state {
    double scale;          /* plateau: product of the reductions so far */
    double best;           /* plateau: best metric seen */
    int64_t bad_epochs;    /* plateau */
    int64_t cooldown_left; /* plateau */
    int64_t n_observed;    /* metrics observed */
} dsc_schedule_state;

/* Fill s with kind's defaults and base_lr. */
void dsc_schedule_default(dsc_schedule *s, dsc_schedule_kind kind, double base_lr);

/* Check a schedule: DSC_EINVAL with a message naming the field at fault. */
int dsc_schedule_check(const dsc_schedule *s);

/* The state at the start of training. */
void dsc_schedule_state_init(const dsc_schedule *s, dsc_schedule_state *st);

/*
 * The learning rate for the step numbered step (from 0) in epoch epoch (from 0). metrics are
 * the monitored metrics of the finished epochs, passed on to a callback; may be NULL.
 */
double dsc_schedule_lr(const dsc_schedule *s, const dsc_schedule_state *st, int64_t step,
                       int64_t epoch, const double *metrics, size_t n_metrics);

/* Tell the schedule the monitored metric (lower is better) at the end of an epoch. */
void dsc_schedule_observe(const dsc_schedule *s, dsc_schedule_state *st, double metric);

/* Names used by the command line ("constant", "step", ...) and the reverse look-up (-1). */
const char *dsc_schedule_name(dsc_schedule_kind kind);
int dsc_schedule_from_name(const char *name);

/* ------------------------------------------------------------------------------------------ */
/* The descent loop                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* What happened in one epoch. val_loss and val_metric are NAN without validation data. */
typedef struct dsc_epoch_stats {
    int64_t epoch;     /* from 1 */
    int64_t steps;     /* optimizer steps so far */
    double train_loss; /* mean of the batch losses of the epoch, weighted by batch size */
    double val_loss;
    double val_metric; /* accuracy for a classifier, R^2 for regression */
    double lr;         /* the rate of the epoch's last step */
    double seconds;    /* elapsed since training started */
} dsc_epoch_stats;

/* Called after every epoch; return non-zero to stop training. */
typedef int (*dsc_epoch_fn)(void *user, const dsc_epoch_stats *stats);

/* A batch size that means: every training row in one step (full-batch descent). */
#define DSC_FULL_BATCH SIZE_MAX

typedef enum dsc_stop {
    DSC_STOP_NONE,        /* still running */
    DSC_STOP_EPOCHS,      /* ran every epoch asked for */
    DSC_STOP_CONVERGED,   /* training loss stopped improving by tol */
    DSC_STOP_EARLY,       /* validation loss stopped improving; best weights restored */
    DSC_STOP_CALLBACK,    /* the epoch callback asked to stop */
    DSC_STOP_NONFINITE    /* training diverged; weights at their last good values */
} dsc_stop;

/* What the trainer does when training diverges (see dsc_train_config). */
typedef enum dsc_divergence {
    DSC_DIVERGE_BACKOFF, /* roll back one step, multiply the rate by backoff, go on */
    DSC_DIVERGE_STOP     /* stop at once with DSC_ENONFINITE */
} dsc_divergence;

typedef struct dsc_train_config {
    size_t batch;              /* rows per step (32); 1 is stochastic; or DSC_FULL_BATCH */
    int64_t epochs;            /* at most this many epochs (200) */
    int shuffle;               /* reshuffle the order every epoch (1); 0 keeps file order */
    uint64_t seed;             /* shuffling, validation split and initialisation */
    double tol;                /* improvement that counts (1e-4); negative disables stopping */
    int64_t n_iter_no_change;  /* epochs without improvement before stopping (5) */
    double val_fraction;       /* share of rows held out when no validation data is given */
    int early_stopping;        /* monitor the validation loss and restore the best weights */
    int init_weights;          /* initialise with init (1); 0 keeps the model's weights */
    dsc_init init;             /* DSC_INIT_AUTO, see dsc_model_init_weights */
    dsc_optim_config optim;
    dsc_schedule schedule;     /* base_lr 0 means optim.lr */
    dsc_objective objective;
    int balanced;              /* class weights n / (K * count of the class), on training rows */
    double clip_norm;          /* clip the gradient's norm to this (0: off) */
    double clip_value;         /* clip each gradient to [-v, v] (0: off) */
    /*
     * Divergence: a loss, gradient or weight that is not finite, or a batch loss above
     * jump_factor times its recent average (an exponential average over about 100 steps,
     * checked from the 20th step; 0 turns the check off). With DSC_DIVERGE_BACKOFF the
     * weights and optimizer state go back to before the previous step, the rate is multiplied
     * by backoff and training goes on; after max_retries such events it stops as with
     * DSC_DIVERGE_STOP: DSC_ENONFINITE and a message naming the epoch, step and rate.
     */
    dsc_divergence on_divergence; /* DSC_DIVERGE_BACKOFF */
    double jump_factor;        /* 1000 */
    double backoff;            /* 0.1 */
    int max_retries;           /* 5 */
    dsc_epoch_fn on_epoch;
    void *user;
} dsc_train_config;

/* Defaults as documented above; the optimizer is Adam (lr 0.001) with a constant rate. */
void dsc_train_config_default(dsc_train_config *cfg);

typedef struct dsc_trainer dsc_trainer;

/*
 * Prepare to train model on train, validating on val (may be NULL; then val_fraction of the
 * training rows are held out, stratified for classifiers). Allocates every buffer the loop
 * needs; the data must outlive the trainer. NULL on failure, with the code in *err.
 */
dsc_trainer *dsc_trainer_new(dsc_model *model, const dsc_data *train, const dsc_data *val,
                             const dsc_train_config *cfg, int *err);

/* Free a trainer (not its model). NULL is allowed. */
void dsc_trainer_free(dsc_trainer *t);

/* The trainer's optimizer, to set per-range rates or to freeze before training starts. */
dsc_optim *dsc_trainer_optim(dsc_trainer *t);

/* Freeze (or thaw) dense layer i, or scale its learning rate, through the optimizer. */
int dsc_trainer_freeze_layer(dsc_trainer *t, size_t layer, int frozen);
int dsc_trainer_layer_lr(dsc_trainer *t, size_t layer, double lr_scale);

/*
 * Take one optimizer step (the next batch of the epoch), finishing the epoch after its last
 * batch (statistics, validation, stopping rules, callback). Returns 1 while training should
 * go on, 0 once it has stopped, or a negative code as dsc_trainer_epoch.
 */
int dsc_trainer_step(dsc_trainer *t);

/* Optimizer steps taken so far, and the epochs finished. */
int64_t dsc_trainer_steps(const dsc_trainer *t);
int64_t dsc_trainer_epochs_done(const dsc_trainer *t);

/* The learning-rate multiplier left by divergence back-offs (1 when none happened). */
double dsc_trainer_lr_scale(const dsc_trainer *t);

/*
 * The trainer's complete state as bytes: weights, optimizer state, schedule state, the
 * shuffling generator, the epoch, the step, the position in the shuffled order, the history
 * and the stopping rules' memory. A trainer built the same way (same model shape, data and
 * configuration) that loads it continues bit for bit as the one that saved it.
 */
size_t dsc_trainer_state_size(const dsc_trainer *t);
int dsc_trainer_state_save(const dsc_trainer *t, void *buf, size_t size);
int dsc_trainer_state_load(dsc_trainer *t, const void *buf, size_t size);

/*
 * Run one epoch. Returns 1 while training should go on, 0 once it has stopped (see
 * dsc_trainer_stop_reason), or a negative code on failure (DSC_ENONFINITE at the step named
 * by dsc_trainer_failed_step, with the weights left at their last finite values).
 */
int dsc_trainer_epoch(dsc_trainer *t);

/* Run epochs until training stops. DSC_OK, or a negative code as dsc_trainer_epoch. */
int dsc_trainer_run(dsc_trainer *t);

/* Why training stopped, the step (from 1) at which it failed, and the epochs run so far. */
dsc_stop dsc_trainer_stop_reason(const dsc_trainer *t);
int64_t dsc_trainer_failed_step(const dsc_trainer *t);
const dsc_epoch_stats *dsc_trainer_history(const dsc_trainer *t, size_t *n_epochs);

/* Train in one call: dsc_trainer_new, dsc_trainer_run and dsc_trainer_free. */
int dsc_train(dsc_model *model, const dsc_data *train, const dsc_data *val,
              const dsc_train_config *cfg);

/*
 * The training and validation rows that a validation fraction gives, as dsc_trainer_new
 * draws them: a seeded shuffle picks round(fraction * count) rows of each class (labels not
 * NULL, n_classes of them) or of all rows (labels NULL). Both lists come out in increasing
 * order. train_rows and val_rows must hold n_rows entries each.
 */
int dsc_split_rows(size_t n_rows, const int32_t *labels, size_t n_classes, double fraction,
                   uint64_t seed, uint32_t *train_rows, size_t *n_train, uint32_t *val_rows,
                   size_t *n_val);

/* ------------------------------------------------------------------------------------------ */
/* Data files: CSV, LIBSVM, NumPy .npy and IDX readers, and preprocessing                     */
/* ------------------------------------------------------------------------------------------ */

typedef enum dsc_format {
    DSC_FORMAT_AUTO,   /* from the file name: .csv/.tsv/.txt, .svm/.libsvm, .npy, idx */
    DSC_FORMAT_CSV,
    DSC_FORMAT_LIBSVM,
    DSC_FORMAT_NPY,
    DSC_FORMAT_IDX,
    DSC_FORMAT_COUNT
} dsc_format;

typedef enum dsc_missing {
    DSC_MISSING_ERROR,  /* a missing value (empty, NA, NaN, ?) is an error */
    DSC_MISSING_MEAN,   /* replaced by the training mean of its column */
    DSC_MISSING_MEDIAN, /* replaced by the training median of its column */
    DSC_MISSING_COUNT
} dsc_missing;

/* How to read a data file. dsc_read_options_default() gives the defaults in brackets. */
typedef struct dsc_read_options {
    dsc_format format;       /* [DSC_FORMAT_AUTO] */
    char delimiter;          /* CSV: ',', ';', '\t' or '|'; [0] detects it */
    int header;              /* CSV: 1 present, 0 absent, [-1] detect */
    const char *target;      /* CSV: column name or 1-based index; [NULL] the last column */
    /* 1 targets are classes, 0 regression; [-1]: text targets (CSV), whole-number targets
     * (LIBSVM, .npy) and IDX labels are classes */
    int classify;
    size_t max_levels;       /* CSV: most levels of a one-hot encoded column [1000] */
    dsc_missing missing;     /* [DSC_MISSING_ERROR] */
    const char *labels_path; /* .npy targets, or the IDX labels file; [NULL] none */
} dsc_read_options;

void dsc_read_options_default(dsc_read_options *opts);

/* The format a file name suggests (DSC_FORMAT_CSV when nothing matches). */
dsc_format dsc_format_from_path(const char *path);

/* Names used by the command line ("csv", "libsvm", "npy", "idx") and the reverse (-1). */
const char *dsc_format_name(dsc_format format);
int dsc_format_from_name(const char *name);
const char *dsc_missing_name(dsc_missing missing);
int dsc_missing_from_name(const char *name);

/*
 * What turns a file's rows into features and targets: the columns and their one-hot levels,
 * the class labels, the imputation values and the standardisation. Learned from the training
 * file, stored in the model file, and applied unchanged to the files given to predict.
 */
typedef struct dsc_prep dsc_prep;

/* Data read from a file: it owns its storage, and dsc_table_data() is a view of it. */
typedef struct dsc_table dsc_table;

/*
 * Read a data file. With prep NULL the encoding (columns, levels, classes) is learned
 * from the file, as for training; with prep given, the file is encoded the way prep
 * says, as for prediction: a level unseen in training becomes all zeros (counted by
 * dsc_table_n_unseen) and a class unseen in training is an error. "-" reads standard input.
 * Missing values, when allowed, are left as NaN until dsc_prep_apply. Every malformed input
 * is an error whose message names the file, line and column.
 *
 * LIBSVM features are sparse data (see dsc_prep_fit), stored as CSR, or as a dense x when
 * that takes no more memory (about half the cells named or more) and no value is zero. A
 * LIBSVM regular file is parsed on dsc_threads() threads, with the same table on any number.
 *
 * A data cache (dsc_table_save_cache) is recognised by its first bytes, whatever its name or
 * opts->format, and memory-mapped: the table's arrays point into the file, nothing is parsed
 * or copied, and dsc_table_free unmaps it. The options that shaped the parsing (format,
 * delimiter, header, max_levels, labels_path) were applied at conversion and are ignored;
 * opts->target, when given, must name the target column the cache was converted with;
 * opts->missing applies as to a data file (a cache holding missing values read with the
 * policy "error" is an error naming the first); opts->classify 1 learns classes from
 * numeric targets and 0 reads numeric class labels as targets. With prep given, the cache's
 * columns, one-hot levels and classes are matched to prep's (a copy is made only where they
 * differ). A truncated, corrupted or newer cache is an error (DSC_EFORMAT, DSC_ECHECKSUM,
 * DSC_EVERSION), never a crash. A cache is not recognised on standard input.
 */
dsc_table *dsc_table_read(const char *path, const dsc_read_options *opts,
                          const dsc_prep *prep, int *err);

/* Free a table. NULL is allowed. */
void dsc_table_free(dsc_table *table);

/* The features and targets, valid until the table is freed. */
const dsc_data *dsc_table_data(const dsc_table *table);

/* The encoding the table was read with: its own (learned) or a copy of the one given. */
dsc_prep *dsc_table_prep(dsc_table *table);

/* Number of values of a one-hot column whose level was unseen in training. */
size_t dsc_table_n_unseen(const dsc_table *table);

/*
 * Save table, as dsc_table_read gave it (before dsc_prep_apply), as a data cache at path
 * (by convention FILE.dscd), which dsc_table_read later maps instead of parsing: a binary
 * file with a magic number, a format version and the byte order, the features (dense or
 * CSR), the class labels or targets, the sample weights if any and the encoding (columns,
 * one-hot levels, class names), each array 64-byte aligned so that it is used in place, and
 * CRC-32 checksums. It is written to a temporary file in the same folder, synced and renamed,
 * so that a failure never leaves a partial file at path. DSC_ESTATE for a table that
 * dsc_prep_apply has changed.
 */
int dsc_table_save_cache(const char *path, const dsc_table *table);

/*
 * Check a data cache completely: what dsc_table_read checks (the header and its checksum,
 * every size, the encoding and its checksum, labels and sparse indices within bounds) and
 * also the checksum of every data array, which dsc_table_read skips so that loading costs
 * no pass over the data. DSC_OK, or the error naming what is wrong.
 */
int dsc_cache_verify(const char *path);

/*
 * Learn the imputation values of the missing-value policy and, when standardize is set, each
 * feature's mean and standard deviation, from rows[0..n) of table (rows NULL: every row).
 * Sparse data is scaled but not centred, so that it stays sparse: CSR data, and data read
 * from a LIBSVM file, which dsc_table_read stores dense when that takes less memory (then
 * none of its values is zero, and the fit is the one of the same rows in CSR). A constant
 * feature is left unscaled.
 */
int dsc_prep_fit(dsc_prep *prep, const dsc_table *table, const uint32_t *rows, size_t n,
                 int standardize);

/* Replace missing values by the imputation values and standardise, in place. */
int dsc_prep_apply(const dsc_prep *prep, dsc_table *table);

/* Free an encoding that the caller owns (from dsc_model_load or dsc_prep_copy). */
void dsc_prep_free(dsc_prep *prep);

/* A copy of prep that the caller owns. */
dsc_prep *dsc_prep_copy(const dsc_prep *prep, int *err);

/*
 * The format of the file the encoding was learned from (DSC_FORMAT_AUTO for none). Features
 * from DSC_FORMAT_LIBSVM are sparse data, however the table stores them (dsc_prep_fit).
 */
dsc_format dsc_prep_format(const dsc_prep *prep);

/* Encoded features, classes (0 for regression) and their names. */
size_t dsc_prep_n_features(const dsc_prep *prep);
size_t dsc_prep_n_classes(const dsc_prep *prep);
const char *dsc_prep_class_name(const dsc_prep *prep, size_t class_index);
size_t dsc_prep_n_targets(const dsc_prep *prep);
const char *dsc_prep_target_name(const dsc_prep *prep);

/* ------------------------------------------------------------------------------------------ */
/* Model files                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * Write model, its encoding (may be NULL) and a free-form settings text (may be NULL) to
 * path: a binary format with a magic number, a version, the byte order and a closing CRC-32,
 * written to a temporary file in the same folder, flushed and renamed, so that a failure
 * never leaves a partial file at path. Refuses a model with a non-finite weight.
 */
int dsc_model_save(const char *path, const dsc_model *model, const dsc_prep *prep,
                   const char *settings);

/*
 * Read a model file, validating every field: a truncated, corrupted or newer file is an
 * error (DSC_EFORMAT, DSC_ECHECKSUM, DSC_EVERSION), never a crash. *prep and *settings may
 * be NULL when the file has none; pass NULL for what you do not want. Free the results with
 * dsc_model_free, dsc_prep_free and dsc_free.
 */
int dsc_model_load(const char *path, dsc_model **model, dsc_prep **prep, char **settings);

/*
 * Describe a model as one JSON object on out: the architecture, the preprocessing (columns,
 * levels, scaler, imputation values), the classes and the settings text, and with
 * with_weights every layer's weights and biases. prep and settings may be NULL.
 */
int dsc_model_write_json(FILE *out, const dsc_model *model, const dsc_prep *prep,
                         const char *settings, int with_weights);

/*
 * A training checkpoint: the model file of model, prep and settings, followed by the
 * trainer's whole state (dsc_trainer_state_save), written atomically with a checksum.
 */
int dsc_checkpoint_save(const char *path, const dsc_model *model, const dsc_trainer *trainer,
                        const dsc_prep *prep, const char *settings);

/*
 * Read a checkpoint, validated as dsc_model_load does. The state goes to a trainer built
 * with the same settings on the same data through dsc_trainer_state_load. Free *state with
 * dsc_free.
 */
int dsc_checkpoint_load(const char *path, dsc_model **model, dsc_prep **prep, char **settings,
                        void **state, size_t *state_size);

/* Free memory that the library handed to the caller (such as a settings text). */
void dsc_free(void *ptr);

/* CRC-32 (the ISO-HDLC polynomial of zlib and PNG) of len bytes, continuing from crc. */
uint32_t dsc_crc32(uint32_t crc, const void *data, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Plots: loss curves as self-contained SVG                                                   */
/* ------------------------------------------------------------------------------------------ */

/* One curve: n points (x[i], y[i]); non-finite y values leave a gap. */
typedef struct dsc_series {
    const char *name;
    const double *x;
    const double *y;
    size_t n;
} dsc_series;

/*
 * A chart: curves on a left axis (log scale when log_y is 1, or with log_y -1 when the
 * positive values span more than a factor of 50), and optional curves on a right axis (such
 * as the learning rate), each with a legend entry.
 */
typedef struct dsc_plot {
    const char *title;
    const char *x_label;
    const char *y_label;
    int log_y;
    const dsc_series *series;
    size_t n_series;
    const char *y2_label;
    int log_y2;
    const dsc_series *series2;
    size_t n_series2;
} dsc_plot;

/*
 * Write plot as a standalone SVG 1.1 document to out: axes with readable ticks and labels,
 * a title and a legend. Any input gives valid SVG, including one point, constant values, and
 * series with no finite value. DSC_EIO if writing fails.
 */
int dsc_plot_write_svg(FILE *out, const dsc_plot *plot);

/* ------------------------------------------------------------------------------------------ */
/* Learning-rate range test                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* What dsc_lr_find recorded: n rates and their smoothed losses, and the rate it suggests. */
typedef struct dsc_lr_find_result {
    size_t n;
    double *lr;       /* n rates, rising exponentially */
    double *loss;     /* n smoothed, bias-corrected batch losses */
    double suggested; /* the rate at the lowest smoothed loss, divided by 10 */
    size_t best;      /* index of the lowest smoothed loss */
} dsc_lr_find_result;

/*
 * A learning-rate range test: from the weights cfg->init gives (seed cfg->seed), take up to
 * max_steps mini-batches of cfg->batch shuffled rows with cfg->optim, raising the rate
 * exponentially from lr_min to lr_max, recording an exponential average of the batch losses
 * (factor 0.98, bias-corrected), and stop once it exceeds 4 times its lowest value or stops
 * being finite. The model's weights are left as the test left them: reinitialise them before
 * training. Fills *result; free it with dsc_lr_find_free.
 */
int dsc_lr_find(dsc_model *model, const dsc_data *data, const dsc_train_config *cfg,
                double lr_min, double lr_max, size_t max_steps, dsc_lr_find_result *result);

/* Free the arrays of a result. */
void dsc_lr_find_free(dsc_lr_find_result *result);

#ifdef __cplusplus
}
#endif

#endif /* DESCENT_H */
