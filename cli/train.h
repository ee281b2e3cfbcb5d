/*
 * train.h - what the two files of `descent train` share: the options as given, and the
 * choices resolved from them before and after the data is read.
 */
#ifndef DSC_CLI_TRAIN_H
#define DSC_CLI_TRAIN_H

#include "cli.h"

/* Room for the train option table. */
#define TRAIN_MAX_OPTIONS 48

/* The default width of an mlp's one hidden layer, scikit-learn's MLP default. */
#define TRAIN_DEFAULT_HIDDEN 100

typedef enum train_kind {
    KIND_AUTO,
    KIND_LINEAR,
    KIND_LOGISTIC,
    KIND_SOFTMAX,
    KIND_MLP
} train_kind;

/* The options of `descent train` as given on the command line. */
typedef struct train_args {
    const char *data_path;
    const char *model_path;
    const char *target;
    const char *format_text;
    const char *model_text;
    const char *hidden_text;
    const char *activation_text;
    const char *loss_text;
    const char *optimizer_text;
    const char *batch_text;
    const char *schedule_text;
    const char *class_weight_text;
    const char *init_text;
    const char *missing_text;
    const char *log_path;
    const char *labels_path;
    const char *checkpoint_path;
    const char *checkpoint_every_text;
    const char *resume_path;
    const char *on_divergence_text;
    const char *plot_path;
    const char *lr_text; /* --lr as given: a number, or "auto" */
    int lr_auto;         /* --lr auto: the rate comes from a range test before training */
    double lr, momentum, beta1, beta2, eps, rho, weight_decay, l1, l2;
    double tol, val, clip_norm;
    int64_t epochs, patience, warmup, seed, threads;
    int no_standardize, no_shuffle, quiet;

    cli_option table[TRAIN_MAX_OPTIONS];
    size_t n_options;
} train_args;

/* What the options mean once checked, completed after the data is read. */
typedef struct train_plan {
    dsc_format format;
    dsc_missing missing;
    int classify; /* for dsc_read_options: 1 classes, 0 regression, -1 by the target's text */
    train_kind kind;
    int loss_given;
    dsc_loss loss;
    float loss_param;
    size_t n_hidden;
    size_t hidden[DSC_MAX_HIDDEN];
    size_t n_activations; /* 0: the default for every layer */
    dsc_activation activation[DSC_MAX_HIDDEN];
    float act_param;
    dsc_optimizer optimizer;
    size_t batch;
    dsc_init init;
    int balanced;
    int64_t checkpoint_every;  /* epochs or steps between checkpoints */
    int checkpoint_in_steps;   /* checkpoint_every counts steps rather than epochs */
    dsc_divergence on_divergence;
} train_plan;

/* The data of a run, read and prepared as `descent train` does (see train_setup). */
typedef struct train_data {
    dsc_table *table;              /* every row, imputed and standardised */
    uint32_t *train_rows, *val_rows; /* with --val: the rows of each side; else NULL */
    size_t n_train, n_val;
} train_data;

/* Fill args->table with the train options and every value with its default. */
void train_build_options(train_args *args);

/*
 * For the commands that take most of train's options: remove the options named
 * names[0..n_names) from args->table, or add one (-1 when the table is full).
 */
void train_drop_options(train_args *args, const char *const *names, size_t n_names);
int train_add_option(train_args *args, const cli_option *option);

/*
 * Check the options that need no data (names of choices, --lr, --batch, the run control)
 * and fill plan from them. 0, or 2 after the error line.
 */
int train_check_options(train_args *args, train_plan *plan);

/*
 * Parse and check the options (argv[0] is "train"). Fills args and the part of plan that
 * needs no data. 0; or the exit status after the error line (or 0 with *help_shown set).
 */
int train_parse(int argc, char **argv, train_args *args, train_plan *plan, int *help_shown);

/*
 * Choose the model from the data's target (n_classes 0 for regression) and fill the model
 * configuration. 0, or 2 after the error line.
 */
int train_resolve_model(const train_args *args, train_plan *plan, size_t n_features,
                        size_t n_classes, size_t n_targets, dsc_model_config *model_cfg);

/* Fill the training configuration: optimizer, schedule, stopping rules. 0, or 2. */
int train_make_config(const train_args *args, const train_plan *plan, int classifier,
                      dsc_train_config *cfg);

/*
 * Read args->data_path, choose the model, make the training configuration and prepare the
 * data exactly as `descent train` does: the validation rows held out as the trainer will
 * hold them out, the preprocessing fitted on the training rows and applied to all. Free
 * data with train_data_free. 0, or an exit status after the error line.
 */
int train_setup(const train_args *args, train_plan *plan, train_data *data,
                dsc_model_config *model_cfg, dsc_train_config *cfg);
void train_data_free(train_data *data);

/*
 * Copy rows[0..n) of d into a data set of their own (*out); the buffers go to owned[0..4),
 * freed by the caller whatever the result. 0, or -1 when out of memory.
 */
int train_gather_rows(const dsc_data *d, const uint32_t *rows, size_t n, dsc_data *out,
                      void *owned[4]);

/* The header of the per-epoch history file (--log), and one epoch's line of it. */
#define TRAIN_LOG_HEADER "epoch,steps,train_loss,val_loss,val_metric,lr,seconds"
void train_log_line(FILE *out, const dsc_epoch_stats *s);

/*
 * --lr auto: run the learning-rate range test (lr-find's defaults) with the settings of cfg
 * on the training rows of data, print the suggested rate on standard error, and remake cfg
 * with it (args->lr becomes the rate). Leaves model's weights changed: the trainer
 * initialises them again. 0, or an exit status after the error line.
 */
int train_find_rate(train_args *args, const train_plan *plan, const train_data *data,
                    dsc_model *model, dsc_train_config *cfg);

/* The name of a model kind, for messages and the settings text. */
const char *train_kind_name(train_kind kind);

/* True when the option named name was given on the command line. */
int train_given(const train_args *args, const char *name);

#endif /* DSC_CLI_TRAIN_H */
