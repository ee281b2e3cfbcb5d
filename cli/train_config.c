/*
 * train_config.c - the options of `descent train`: their table (which also makes --help),
 * their checks, and the model and training configurations they resolve to.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_command train_command = {
    "train", "descent train DATA -o MODEL [options]",
    "Train a model on DATA and save it, with its preprocessing and settings, to MODEL.\n"
    "One line per epoch goes to standard error (training loss, validation loss and metric,\n"
    "learning rate, elapsed time) and a summary line to standard output.",
    "The task: a target column of text gives class labels; a numeric target is a\n"
    "regression target unless --model is logistic or softmax or --loss is a classification\n"
    "loss. So `--model mlp --loss softmax` trains an MLP classifier on numeric labels.\n"
    "\n"
    "--schedule SPEC (the clock counts epochs, after --warmup):\n"
    "  constant                     the same rate throughout\n"
    "  step:STEP[:GAMMA]            times GAMMA (0.1) every STEP epochs\n"
    "  multistep:M1,M2,..[:GAMMA]   times GAMMA (0.1) at each milestone epoch\n"
    "  exp[:GAMMA]                  times GAMMA (0.95) every epoch\n"
    "  invscaling[:POWER]           lr / (t + 1)^POWER (0.25)\n"
    "  optimal[:ALPHA]              1 / (ALPHA (t + t0)), scikit-learn's (ALPHA 1e-4)\n"
    "  cosine[:T_MAX[:T_MULT]]      cosine annealing over T_MAX epochs (default: all),\n"
    "                               restarting with periods T_MULT times longer when >= 1\n"
    "  onecycle[:PCT]               one cycle over all epochs, rising for PCT (0.3)\n"
    "  plateau[:FACTOR[:PATIENCE]]  times FACTOR (0.1) after PATIENCE (10) epochs without\n"
    "                               improvement of the validation (or training) loss\n"
    "\n"
    "--val holds out a stratified share of the rows (seeded by --seed); the scaler is\n"
    "fitted on the remaining rows only, training stops early when the validation loss\n"
    "has not improved by --tol for --patience epochs, and the best weights are kept.\n"
    "Without --val, training stops when the training loss stops improving that way.\n",
};

static const char *const kind_names[] = {
    [KIND_AUTO] = "auto", [KIND_LINEAR] = "linear", [KIND_LOGISTIC] = "logistic",
    [KIND_SOFTMAX] = "softmax", [KIND_MLP] = "mlp",
};

const char *train_kind_name(train_kind kind)
{
    return kind_names[kind];
}

int train_given(const train_args *args, const char *name)
{
    for (size_t i = 0; i < args->n_options; i++) {
        if (strcmp(args->table[i].name, name) == 0)
            return args->table[i].given;
    }
    return 0;
}

void train_build_options(train_args *a)
{
    memset(a, 0, sizeof *a);
    a->format_text = "auto";
    a->optimizer_text = "adam";
    a->batch_text = "32";
    a->schedule_text = "constant";
    a->class_weight_text = "none";
    a->init_text = "auto";
    a->missing_text = "error";
    a->epochs = 200;
    a->tol = 1e-4;
    a->patience = 5;
    a->checkpoint_every_text = "1";
    a->on_divergence_text = "backoff";

    const cli_option table[] = {
        CLI_TEXT_OPTION("--output", "MODEL", a->model_path, "the model file to write",
                        "none; required"),
        CLI_TEXT_OPTION("--target", "COL", a->target,
                        "the target column, by name or 1-based index", "the last column"),
        CLI_TEXT_OPTION("--format", "FMT", a->format_text, "auto, csv, libsvm, npy or idx",
                        "auto: from the file name"),
        CLI_TEXT_OPTION("--labels", "FILE", a->labels_path,
                        "the targets (.npy) or labels (IDX) file of npy and idx data", "none"),
        CLI_TEXT_OPTION("--model", "KIND", a->model_text, "linear, logistic, softmax or mlp",
                        "numeric target linear, 2 classes logistic, more softmax; "
                        "mlp with --hidden"),
        CLI_TEXT_OPTION("--hidden", "N,N,..", a->hidden_text,
                        "widths of an mlp's hidden layers, e.g. 64,32", "100"),
        CLI_TEXT_OPTION("--activation", "NAME", a->activation_text,
                        "relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus or identity; "
                        "a comma list gives one per layer; "
                        "leaky_relu:S and elu:A set the slope or alpha", "relu"),
        CLI_TEXT_OPTION("--loss", "NAME", a->loss_text,
                        "squared, huber[:DELTA], epsilon_insensitive[:EPS], log, softmax, "
                        "hinge, squared_hinge or modified_huber",
                        "squared; log for 2 classes; softmax for more"),
        CLI_TEXT_OPTION("--optimizer", "NAME", a->optimizer_text,
                        "sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, "
                        "adamax or nadam", "adam"),
        CLI_TEXT_OPTION("--lr", "X", a->lr_text,
                        "learning rate; auto: the rate that lr-find suggests for these "
                        "settings", "the optimizer's torch default: 0.001 for sgd and adam, "
                        "0.01 for adagrad and rmsprop, 1 for adadelta, "
                        "0.002 for adamax and nadam"),
        CLI_REAL_OPTION("--momentum", "X", a->momentum, 0, 0, 1, 1,
                        "momentum of the sgd kinds and rmsprop",
                        "0.9 for momentum and nesterov, else 0"),
        CLI_REAL_OPTION("--beta1", "X", a->beta1, 0, 0, 1, 1,
                        "first-moment decay of the adam family", "0.9"),
        CLI_REAL_OPTION("--beta2", "X", a->beta2, 0, 0, 1, 1,
                        "second-moment decay of the adam family", "0.999"),
        CLI_REAL_OPTION("--eps", "X", a->eps, 0, 1, INFINITY, 0,
                        "term added to the denominator",
                        "1e-8; 1e-10 for adagrad, 1e-6 for adadelta"),
        CLI_REAL_OPTION("--rho", "X", a->rho, 0, 0, 1, 0,
                        "rmsprop's alpha or adadelta's rho", "0.99 for rmsprop, 0.9 for adadelta"),
        CLI_REAL_OPTION("--weight-decay", "X", a->weight_decay, 0, 0, INFINITY, 0,
                        "the optimizer's weight decay (decoupled for adamw)", "0; 0.01 for adamw"),
        CLI_REAL_OPTION("--l1", "X", a->l1, 0, 0, INFINITY, 0,
                        "adds X * ||w||_1 to the loss", "0"),
        CLI_REAL_OPTION("--l2", "X", a->l2, 0, 0, INFINITY, 0,
                        "adds (X / 2) * ||w||^2 to the loss", "0"),
        CLI_TEXT_OPTION("--batch", "N|full", a->batch_text,
                        "rows per step; 'full' takes every training row", "32"),
        CLI_INT_OPTION("--epochs", "N", a->epochs, 1, 100000000, "most epochs to run", "200"),
        CLI_REAL_OPTION("--tol", "X", a->tol, -INFINITY, 0, INFINITY, 0,
                        "loss improvement that counts; negative: never stop early", "1e-4"),
        CLI_INT_OPTION("--patience", "N", a->patience, 1, INFINITY,
                       "epochs without improvement before stopping", "5"),
        CLI_REAL_OPTION("--val", "FRACTION", a->val, 0, 0, 1, 1,
                        "share of rows held out for validation and early stopping", "0"),
        CLI_TEXT_OPTION("--schedule", "SPEC", a->schedule_text,
                        "learning-rate schedule; see below", "constant"),
        CLI_INT_OPTION("--warmup", "EPOCHS", a->warmup, 0, 100000000,
                       "linear warm-up of the rate from 0", "0"),
        CLI_REAL_OPTION("--clip-norm", "X", a->clip_norm, 0, 0, INFINITY, 0,
                        "clip the gradient's norm to X", "0: off"),
        CLI_TEXT_OPTION("--class-weight", "W", a->class_weight_text,
                        "none, or balanced: n / (classes * count of the class)", "none"),
        CLI_INT_OPTION("--seed", "N", a->seed, 0, INFINITY,
                       "seed of the split, the shuffles and the initial weights", "0"),
        CLI_TEXT_OPTION("--init", "NAME", a->init_text,
                        "auto, zeros, xavier, xavier-normal, he or he-normal",
                        "auto: zeros without hidden layers, else He for the ReLU family "
                        "and Xavier for the others"),
        CLI_FLAG_OPTION("--no-standardize", a->no_standardize,
                        "do not standardise dense features (sparse ones never are)"),
        CLI_FLAG_OPTION("--no-shuffle", a->no_shuffle, "keep the file's row order every epoch"),
        CLI_TEXT_OPTION("--missing", "POLICY", a->missing_text,
                        "missing values: error, or impute the training mean or median",
                        "error"),
        CLI_INT_OPTION("--threads", "N", a->threads, 1, 4096,
                       "threads for training and the matrix products; results do not depend "
                       "on it (builds without OpenMP run on one thread)",
                       "OpenMP's, usually one per core"),
        CLI_FLAG_OPTION("--quiet", a->quiet, "no per-epoch lines on standard error"),
        CLI_TEXT_OPTION("--log", "FILE.csv", a->log_path,
                        "write the per-epoch history as CSV", "none"),
        CLI_TEXT_OPTION("--plot", "FILE.svg", a->plot_path,
                        "draw the training and validation loss and the rate as SVG", "none"),
        CLI_TEXT_OPTION("--on-divergence", "WHAT", a->on_divergence_text,
                        "backoff (roll back, lower the rate, go on) or stop", "backoff"),
        CLI_TEXT_OPTION("--checkpoint", "FILE", a->checkpoint_path,
                        "save the whole training state here, atomically, as training goes "
                        "and on SIGINT or SIGTERM", "none"),
        CLI_TEXT_OPTION("--checkpoint-every", "N[s]", a->checkpoint_every_text,
                        "epochs between checkpoints, or steps with a trailing s (500s)", "1"),
        CLI_TEXT_OPTION("--resume", "FILE", a->resume_path,
                        "continue the run saved in a checkpoint (no other option)", "none"),
    };
    memcpy(a->table, table, sizeof table);
    a->n_options = sizeof table / sizeof table[0];
    a->table[0].alias = "-o";
}

void train_drop_options(train_args *a, const char *const *names, size_t n_names)
{
    size_t kept = 0;

    for (size_t i = 0; i < a->n_options; i++) {
        int drop = 0;
        for (size_t k = 0; k < n_names; k++)
            drop |= strcmp(a->table[i].name, names[k]) == 0;
        if (!drop)
            a->table[kept++] = a->table[i];
    }
    a->n_options = kept;
}

int train_add_option(train_args *a, const cli_option *option)
{
    if (a->n_options == TRAIN_MAX_OPTIONS)
        return -1;
    a->table[a->n_options++] = *option;
    return 0;
}

/* A name of a list, accepting '-' for '_' ("leaky-relu"); -1 when unknown. */
static int lookup_name(int (*from_name)(const char *), const char *text, size_t len)
{
    char name[64];

    if (len == 0 || len >= sizeof name)
        return -1;
    for (size_t i = 0; i < len; i++)
        name[i] = text[i] == '-' ? '_' : text[i];
    name[len] = '\0';
    return from_name(name);
}

/* Parse "NAME[:PARAM]" into a name found by from_name and an optional positive parameter. */
static int parse_named_param(const char *option, const char *text, const char *expected,
                             int (*from_name)(const char *), int *id, float *param)
{
    const char *colon = strchr(text, ':');
    size_t len = colon ? (size_t)(colon - text) : strlen(text);

    *id = lookup_name(from_name, text, len);
    if (*id < 0)
        return cli_bad_value(option, expected, text);
    *param = 0.0f;
    if (colon) {
        double value;
        if (cli_parse_double(colon + 1, &value) != 0 || !(value > 0.0) || value > 1e30)
            return cli_bad_value(option, "a positive number after ':'", text);
        *param = (float)value;
    }
    return 0;
}

/* --hidden: 1 to DSC_MAX_HIDDEN positive widths separated by commas. */
static int parse_hidden(const char *text, train_plan *plan)
{
    const char *p = text;

    plan->n_hidden = 0;
    while (1) {
        char *end = NULL;
        if (*p < '0' || *p > '9' || plan->n_hidden == DSC_MAX_HIDDEN)
            break;
        unsigned long long width = strtoull(p, &end, 10);
        if (width < 1 || width > 1000000)
            break;
        plan->hidden[plan->n_hidden++] = (size_t)width;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            break;
        p = end + 1;
    }
    cli_error("--hidden: expected 1 to %d widths in 1..1000000 separated by commas, got '%s'",
              DSC_MAX_HIDDEN, text);
    return EXIT_USAGE;
}

/* --activation: one name (every layer) or a comma list, one per hidden layer. */
static int parse_activations(const char *text, train_plan *plan)
{
    static const char expected[] =
        "relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus or identity";
    const char *p = text;

    plan->n_activations = 0;
    plan->act_param = 0.0f;
    while (plan->n_activations < DSC_MAX_HIDDEN) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        int act = lookup_name(dsc_activation_from_name, p, colon ? (size_t)(colon - p) : len);
        if (act < 0)
            return cli_bad_value("--activation", expected, text);
        if (colon) {
            char number[64];
            double value;
            size_t n = len - (size_t)(colon - p) - 1;
            if (n >= sizeof number)
                n = sizeof number - 1;
            memcpy(number, colon + 1, n);
            number[n] = '\0';
            if (cli_parse_double(number, &value) != 0 || !(value > 0.0) || value > 1e30)
                return cli_bad_value("--activation", "a positive number after ':'", text);
            plan->act_param = (float)value;
        }
        plan->activation[plan->n_activations++] = (dsc_activation)act;
        if (!comma)
            return 0;
        p = comma + 1;
    }
    return cli_bad_value("--activation", "at most 16 names", text);
}

/* --init names. */
static int parse_init(const char *text, dsc_init *init)
{
    static const struct {
        const char *name;
        dsc_init init;
    } names[] = {
        {"auto", DSC_INIT_AUTO},
        {"zeros", DSC_INIT_ZEROS},
        {"xavier", DSC_INIT_XAVIER_UNIFORM},
        {"xavier-uniform", DSC_INIT_XAVIER_UNIFORM},
        {"xavier-normal", DSC_INIT_XAVIER_NORMAL},
        {"he", DSC_INIT_HE_UNIFORM},
        {"he-uniform", DSC_INIT_HE_UNIFORM},
        {"he-normal", DSC_INIT_HE_NORMAL},
    };
    char name[32];
    size_t len = strlen(text);

    for (size_t i = 0; i < len && i + 1 < sizeof name; i++)
        name[i] = text[i] == '_' ? '-' : text[i];
    name[len < sizeof name ? len : sizeof name - 1] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *init = names[i].init;
            return 0;
        }
    }
    return cli_bad_value("--init", "auto, zeros, xavier, xavier-normal, he or he-normal", text);
}

/* --lr: a finite number >= 0 (the optimizer's check rejects 0), or "auto". */
static int parse_lr(train_args *a)
{
    a->lr_auto = 0;
    if (!a->lr_text)
        return 0;
    if (strcmp(a->lr_text, "auto") == 0) {
        a->lr_auto = 1;
        return 0;
    }
    if (cli_parse_double(a->lr_text, &a->lr) != 0 || !(a->lr >= 0.0))
        return cli_bad_value("--lr", "a number >= 0", a->lr_text);
    return 0;
}

/* Check the options that name a choice, before any data is read. */
static int check_choices(train_args *a, train_plan *plan)
{
    int rc, id;

    if ((rc = cli_parse_format("--format", a->format_text, &plan->format)) != 0)
        return rc;
    if ((id = dsc_missing_from_name(a->missing_text)) < 0)
        return cli_bad_value("--missing", "error, mean or median", a->missing_text);
    plan->missing = (dsc_missing)id;

    plan->kind = KIND_AUTO;
    if (a->model_text) {
        for (int k = KIND_LINEAR; k <= KIND_MLP; k++) {
            if (strcmp(a->model_text, kind_names[k]) == 0)
                plan->kind = (train_kind)k;
        }
        if (plan->kind == KIND_AUTO)
            return cli_bad_value("--model", "linear, logistic, softmax or mlp", a->model_text);
    }

    if (a->loss_text) {
        rc = parse_named_param("--loss", a->loss_text,
                               "squared, huber, epsilon_insensitive, log, softmax, hinge, "
                               "squared_hinge or modified_huber",
                               dsc_loss_from_name, &id, &plan->loss_param);
        if (rc != 0)
            return rc;
        plan->loss = (dsc_loss)id;
        plan->loss_given = 1;
    }

    if (a->hidden_text && (rc = parse_hidden(a->hidden_text, plan)) != 0)
        return rc;
    if (a->activation_text && (rc = parse_activations(a->activation_text, plan)) != 0)
        return rc;

    if ((id = dsc_optimizer_from_name(a->optimizer_text)) < 0)
        return cli_bad_value("--optimizer", "sgd, momentum, nesterov, adagrad, rmsprop, "
                             "adadelta, adam, adamw, adamax or nadam", a->optimizer_text);
    plan->optimizer = (dsc_optimizer)id;

    if (strcmp(a->batch_text, "full") == 0) {
        plan->batch = DSC_FULL_BATCH;
    } else {
        int64_t batch;
        if (cli_parse_int64(a->batch_text, &batch) != 0 || batch < 1 || batch > 1000000000)
            return cli_bad_value("--batch", "an integer in [1, 1000000000] or 'full'",
                                 a->batch_text);
        plan->batch = (size_t)batch;
    }

    if ((rc = parse_lr(a)) != 0 || (rc = parse_init(a->init_text, &plan->init)) != 0)
        return rc;
    if (strcmp(a->class_weight_text, "balanced") == 0)
        plan->balanced = 1;
    else if (strcmp(a->class_weight_text, "none") != 0)
        return cli_bad_value("--class-weight", "none or balanced", a->class_weight_text);
    return 0;
}

/* Whether the target is read as classes: from --model, else from --loss, else its text. */
static int decide_task(const train_args *a, train_plan *plan)
{
    int by_model = plan->kind == KIND_LINEAR ? 0
                   : plan->kind == KIND_LOGISTIC || plan->kind == KIND_SOFTMAX ? 1 : -1;
    int by_loss = plan->loss_given ? (dsc_loss_is_classification(plan->loss) ? 1 : 0) : -1;

    if (by_model >= 0 && by_loss >= 0 && by_model != by_loss) {
        cli_error("--loss: %s is a %s loss, but a %s model is a %s", a->loss_text,
                  by_loss ? "classification" : "regression", a->model_text,
                  by_model ? "classifier" : "regression model");
        return EXIT_USAGE;
    }
    plan->classify = by_model >= 0 ? by_model : by_loss;
    return 0;
}

/* --checkpoint-every N[s] and --on-divergence. */
static int parse_run_control(const train_args *args, train_plan *plan)
{
    const char *every = args->checkpoint_every_text;
    size_t len = strlen(every);
    char number[32];
    int64_t n;

    plan->checkpoint_in_steps = len > 1 && every[len - 1] == 's';
    if (len == 0 || len >= sizeof number)
        return cli_bad_value("--checkpoint-every", "a positive count of epochs, or of steps "
                             "with a trailing s", every);
    memcpy(number, every, len - (size_t)plan->checkpoint_in_steps);
    number[len - (size_t)plan->checkpoint_in_steps] = '\0';
    if (cli_parse_int64(number, &n) != 0 || n < 1)
        return cli_bad_value("--checkpoint-every", "a positive count of epochs, or of steps "
                             "with a trailing s", every);
    plan->checkpoint_every = n;

    if (strcmp(args->on_divergence_text, "backoff") == 0)
        plan->on_divergence = DSC_DIVERGE_BACKOFF;
    else if (strcmp(args->on_divergence_text, "stop") == 0)
        plan->on_divergence = DSC_DIVERGE_STOP;
    else
        return cli_bad_value("--on-divergence", "backoff or stop", args->on_divergence_text);
    return 0;
}

int train_check_options(train_args *args, train_plan *plan)
{
    int rc;

    if ((rc = check_choices(args, plan)) != 0 || (rc = parse_run_control(args, plan)) != 0)
        return rc;
    return decide_task(args, plan);
}

int train_parse(int argc, char **argv, train_args *args, train_plan *plan, int *help_shown)
{
    const char *positional[1];
    size_t n_positional;

    train_build_options(args);
    memset(plan, 0, sizeof *plan);
    int rc = cli_parse(argc, argv, 1, &train_command, args->table, args->n_options, positional,
                       1, &n_positional, help_shown);
    if (rc != 0 || *help_shown)
        return rc;
    if (args->resume_path)
        return 0; /* the rest comes from the checkpoint: see cmd_train */
    if (n_positional != 1) {
        cli_error("train: expected a data file (usage: %s)", train_command.usage);
        return EXIT_USAGE;
    }
    args->data_path = positional[0];
    if (!args->model_path) {
        cli_error("-o: missing; give the model file to write (usage: %s)",
                  train_command.usage);
        return EXIT_USAGE;
    }
    if (strcmp(args->model_path, "-") == 0) {
        cli_error("-o: the model must go to a file, not to standard output");
        return EXIT_USAGE;
    }
    return train_check_options(args, plan);
}

int train_resolve_model(const train_args *args, train_plan *plan, size_t n_features,
                        size_t n_classes, size_t n_targets, dsc_model_config *model_cfg)
{
    /* The kind: as given, else an mlp when --hidden is given, else from the target. */
    if (plan->kind == KIND_AUTO) {
        if (args->hidden_text)
            plan->kind = KIND_MLP;
        else
            plan->kind = n_classes == 0 ? KIND_LINEAR
                         : n_classes == 2 ? KIND_LOGISTIC : KIND_SOFTMAX;
    }
    if (n_classes == 1) {
        cli_error("%s: the target has a single class; a classifier needs at least 2",
                  args->data_path);
        return EXIT_USAGE;
    }
    if (plan->kind != KIND_MLP && (args->hidden_text || args->activation_text)) {
        cli_error("%s: a %s model has no hidden layers; use --model mlp",
                  args->hidden_text ? "--hidden" : "--activation", kind_names[plan->kind]);
        return EXIT_USAGE;
    }

    /* The loss: as given, else the one that goes with the kind and the target. */
    if (!plan->loss_given) {
        if (n_classes == 0)
            plan->loss = DSC_LOSS_SQUARED;
        else if (plan->kind == KIND_SOFTMAX || (plan->kind != KIND_LOGISTIC && n_classes > 2))
            plan->loss = DSC_LOSS_SOFTMAX;
        else
            plan->loss = DSC_LOSS_LOG;
    }
    if (dsc_loss_is_classification(plan->loss) != (n_classes > 0)) {
        cli_error("--loss: %s is a %s loss, but the target of %s is %s",
                  dsc_loss_name(plan->loss),
                  n_classes > 0 ? "regression" : "classification", args->data_path,
                  n_classes > 0 ? "class labels" : "numeric");
        return EXIT_USAGE;
    }

    size_t n_outputs = n_classes > 0 ? n_classes : n_targets;
    dsc_model_config_init(model_cfg, n_features, n_outputs, plan->loss);
    model_cfg->loss_param = plan->loss_param;
    if (plan->kind == KIND_MLP) {
        if (plan->n_hidden == 0) {
            plan->n_hidden = 1;
            plan->hidden[0] = TRAIN_DEFAULT_HIDDEN;
        }
        if (plan->n_activations > 1 && plan->n_activations != plan->n_hidden) {
            cli_error("--activation: %zu names for %zu hidden layers; give one or %zu",
                      plan->n_activations, plan->n_hidden, plan->n_hidden);
            return EXIT_USAGE;
        }
        model_cfg->n_hidden = plan->n_hidden;
        for (size_t i = 0; i < plan->n_hidden; i++) {
            model_cfg->hidden[i] = plan->hidden[i];
            model_cfg->activation[i] = plan->n_activations == 0 ? DSC_ACT_RELU
                                       : plan->activation[plan->n_activations == 1 ? 0 : i];
        }
        model_cfg->act_param = plan->act_param;
    }
    return 0;
}

/*
 * Report the library's "AREA: FIELD must ..." check message as "--FIELD: must ..." when
 * FIELD is an option that was given, else as "OPTION: FIELD must ...". Returns 2.
 */
static int report_check(const train_args *a, const char *option, const char *area)
{
    const char *message = dsc_last_error();
    size_t area_len = strlen(area);
    char field[64] = "--";

    if (strncmp(message, area, area_len) == 0 && strncmp(message + area_len, ": ", 2) == 0)
        message += area_len + 2;
    size_t word = strcspn(message, " ");
    if (word > 0 && word + 3 < sizeof field && message[word] == ' ') {
        for (size_t i = 0; i < word; i++)
            field[2 + i] = message[i] == '_' ? '-' : message[i];
        field[2 + word] = '\0';
        if (train_given(a, field)) {
            cli_error("%s: %s", field, message + word + 1);
            return EXIT_USAGE;
        }
    }
    cli_error("%s: %s", option, message);
    return EXIT_USAGE;
}

/* Parse the optional fields of a --schedule spec; count of fields, or -1 when malformed. */
static int split_fields(const char *text, char fields[4][64])
{
    int n = 0;

    for (const char *p = text; n < 4;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len >= 64)
            return -1;
        memcpy(fields[n], p, len);
        fields[n][len] = '\0';
        n++;
        if (!colon)
            return n;
        p = colon + 1;
    }
    return -1;
}

/* multistep milestones: increasing positive epochs separated by commas. */
static int parse_milestones(const char *text, dsc_schedule *s)
{
    const char *p = text;

    s->n_milestones = 0;
    while (s->n_milestones < sizeof s->milestones / sizeof s->milestones[0]) {
        char *end = NULL;
        if (*p < '0' || *p > '9')
            return -1;
        long long m = strtoll(p, &end, 10);
        if (m < 1 || (s->n_milestones > 0 && m <= s->milestones[s->n_milestones - 1]))
            return -1;
        s->milestones[s->n_milestones++] = m;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
    return -1;
}

/* --schedule SPEC into s (see the help); 0, or 2 after the error line. */
static int parse_schedule(const train_args *a, double base_lr, dsc_schedule *s)
{
    static const char *const forms[DSC_SCHED_COUNT] = {
        [DSC_SCHED_CONSTANT] = "constant",
        [DSC_SCHED_STEP] = "step:STEP[:GAMMA]",
        [DSC_SCHED_MULTISTEP] = "multistep:M1,M2,..[:GAMMA]",
        [DSC_SCHED_EXP] = "exp[:GAMMA]",
        [DSC_SCHED_INVSCALING] = "invscaling[:POWER]",
        [DSC_SCHED_OPTIMAL] = "optimal[:ALPHA]",
        [DSC_SCHED_COSINE] = "cosine[:T_MAX[:T_MULT]]",
        [DSC_SCHED_ONECYCLE] = "onecycle[:PCT]",
        [DSC_SCHED_PLATEAU] = "plateau[:FACTOR[:PATIENCE]]",
    };
    const char *text = a->schedule_text;
    int64_t epochs = a->epochs, warmup = a->warmup;
    char f[4][64];
    int n = split_fields(text, f);
    int kind = n > 0 ? dsc_schedule_from_name(f[0]) : -1;

    if (kind < 0 || kind == DSC_SCHED_CALLBACK)
        return cli_bad_value("--schedule", "constant, step, multistep, exp, invscaling, "
                             "optimal, cosine, onecycle or plateau", text);

    /* The clock runs over the epochs after the warm-up. */
    int64_t span = epochs - warmup > 1 ? epochs - warmup : 1;
    dsc_schedule_default(s, (dsc_schedule_kind)kind, base_lr);
    s->warmup = warmup;
    s->t_max = span;
    s->total = span;

    int ok = 1;
    double x = 0.0;
    int64_t k = 0;
    switch (kind) {
    case DSC_SCHED_CONSTANT:
        ok = n == 1;
        break;
    case DSC_SCHED_STEP:
        ok = n >= 2 && n <= 3 && cli_parse_int64(f[1], &k) == 0 && k >= 1;
        s->step_size = k;
        if (ok && n == 3)
            ok = cli_parse_double(f[2], &s->gamma) == 0;
        break;
    case DSC_SCHED_MULTISTEP:
        ok = n >= 2 && n <= 3 && parse_milestones(f[1], s) == 0;
        if (ok && n == 3)
            ok = cli_parse_double(f[2], &s->gamma) == 0;
        break;
    case DSC_SCHED_EXP:
    case DSC_SCHED_INVSCALING:
    case DSC_SCHED_OPTIMAL:
    case DSC_SCHED_ONECYCLE:
        ok = n <= 2 && (n == 1 || cli_parse_double(f[1], &x) == 0);
        if (ok && n == 2) {
            double *field = kind == DSC_SCHED_EXP ? &s->gamma
                            : kind == DSC_SCHED_INVSCALING ? &s->power
                            : kind == DSC_SCHED_OPTIMAL ? &s->alpha : &s->pct_start;
            *field = x;
        }
        break;
    case DSC_SCHED_COSINE:
        ok = n <= 3;
        if (ok && n >= 2)
            ok = cli_parse_int64(f[1], &s->t_max) == 0 && s->t_max >= 1;
        if (ok && n == 3)
            ok = cli_parse_double(f[2], &s->t_mult) == 0;
        break;
    case DSC_SCHED_PLATEAU:
        ok = n <= 3;
        if (ok && n >= 2)
            ok = cli_parse_double(f[1], &s->factor) == 0;
        if (ok && n == 3)
            ok = cli_parse_int64(f[2], &s->patience) == 0 && s->patience >= 0;
        break;
    default:
        ok = 0;
        break;
    }
    if (!ok) {
        char expected[96];
        snprintf(expected, sizeof expected, "%s", forms[kind]);
        return cli_bad_value("--schedule", expected, text);
    }
    if (dsc_schedule_check(s) < 0)
        return report_check(a, "--schedule", "schedule");
    return 0;
}

int train_make_config(const train_args *a, const train_plan *plan, int classifier,
                      dsc_train_config *cfg)
{
    dsc_train_config_default(cfg);
    cfg->batch = plan->batch;
    cfg->epochs = a->epochs;
    cfg->shuffle = !a->no_shuffle;
    cfg->seed = (uint64_t)a->seed;
    cfg->tol = a->tol;
    cfg->n_iter_no_change = a->patience;
    cfg->val_fraction = a->val;
    cfg->early_stopping = a->val > 0.0;
    cfg->init = plan->init;
    cfg->clip_norm = a->clip_norm;
    cfg->objective.l1 = a->l1;
    cfg->objective.l2 = a->l2;
    cfg->on_divergence = plan->on_divergence;

    if (plan->balanced && !classifier) {
        cli_error("--class-weight: balanced weights need a classifier; the target is numeric");
        return EXIT_USAGE;
    }
    cfg->balanced = plan->balanced;

    /* The optimizer: torch's defaults for its kind, then what was given. */
    dsc_optim_config *o = &cfg->optim;
    dsc_optim_config_default(o, plan->optimizer);
    if (train_given(a, "--lr") && !a->lr_auto)
        o->lr = a->lr;
    if (train_given(a, "--momentum"))
        o->momentum = a->momentum;
    if (train_given(a, "--beta1"))
        o->beta1 = a->beta1;
    if (train_given(a, "--beta2"))
        o->beta2 = a->beta2;
    if (train_given(a, "--eps"))
        o->eps = a->eps;
    if (train_given(a, "--rho"))
        o->rho = a->rho;
    if (train_given(a, "--weight-decay"))
        o->weight_decay = a->weight_decay;
    if (dsc_optim_config_check(o) < 0)
        return report_check(a, "--optimizer", "optimizer");

    return parse_schedule(a, o->lr, &cfg->schedule);
}
