/*
 * train.c - `descent train DATA -o MODEL [options]`: read the data, fit the preprocessing on
 * the training rows, train with one line per epoch on standard error, and save the model
 * with its preprocessing and the settings used.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Width of the progress bar drawn on a terminal. */
#define BAR_WIDTH 30

/* Set by SIGINT and SIGTERM: stop after the current step (writing a checkpoint if asked). */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Everything one training run holds, freed by run_free. */
typedef struct train_run {
    train_args args;
    train_plan plan;
    train_data input;
    dsc_model *model;
    dsc_trainer *trainer;
    cli_output log;
    char *settings;
    int progress;         /* draw a progress bar (standard error is a terminal) */
    int bar_drawn;        /* a bar is on the screen and must be cleared */
    int bar_percent;      /* the percentage last drawn */
    double last_lr_scale; /* to notice the trainer's back-offs */
    dsc_train_config cfg;
    int argc;             /* the arguments of the run, kept in its settings for --resume */
    char **argv;
    char *resume_argv;    /* the buffer argv points into after --resume */
    char **resume_args;   /* the array argv is after --resume */
    const char *resume_path;
    void *resume_state;   /* the trainer state of the checkpoint being resumed */
    size_t resume_size;
} train_run;

/* Arguments are kept in the settings text joined by this byte, which no argument may hold. */
#define ARG_SEPARATOR '\x1f'

static void run_free(train_run *run)
{
    dsc_trainer_free(run->trainer);
    dsc_model_free(run->model);
    train_data_free(&run->input);
    free(run->settings);
    free(run->resume_argv);
    free(run->resume_args);
    dsc_free(run->resume_state);
    cli_output_abort(&run->log);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading and preparing the data                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Fail early, before any training, when the model's folder cannot take a new file. */
static int check_model_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char folder[4096];

    if (!slash)
        snprintf(folder, sizeof folder, ".");
    else if (slash == path)
        snprintf(folder, sizeof folder, "/");
    else
        snprintf(folder, sizeof folder, "%.*s", (int)(slash - path), path);
    if (access(folder, W_OK | X_OK) != 0) {
        cli_error("-o: cannot write into the folder '%s' of %s", folder, path);
        return EXIT_USAGE;
    }
    return 0;
}

void train_data_free(train_data *data)
{
    dsc_table_free(data->table);
    free(data->train_rows);
    free(data->val_rows);
    memset(data, 0, sizeof *data);
}

static int read_data(const train_args *args, const train_plan *plan, train_data *input)
{
    dsc_read_options opts;
    int err = 0;

    dsc_read_options_default(&opts);
    opts.format = plan->format;
    opts.target = args->target;
    opts.classify = plan->classify;
    opts.missing = plan->missing;
    opts.labels_path = args->labels_path;
    input->table = dsc_table_read(args->data_path, &opts, NULL, &err);
    if (!input->table)
        return cli_library_error(err);
    if (dsc_table_data(input->table)->n_rows == 0) {
        cli_error("%s: no data rows", args->data_path);
        return EXIT_USAGE;
    }
    return 0;
}

/*
 * Whether the features are standardised: dense ones unless --no-standardize, sparse ones
 * never (centring would make them dense). Features read from LIBSVM are sparse even when
 * the table stores them dense.
 */
static int train_standardizes(const train_args *args, dsc_table *table)
{
    return !args->no_standardize && dsc_table_data(table)->x != NULL &&
           dsc_prep_format(dsc_table_prep(table)) != DSC_FORMAT_LIBSVM;
}

/*
 * Hold out the validation rows exactly as the trainer will (same fraction, seed and
 * stratification), fit the preprocessing on the other rows, and apply it to all.
 */
static int prepare_data(const train_args *args, train_data *input, int classifier,
                        size_t n_classes)
{
    const dsc_data *data = dsc_table_data(input->table);
    dsc_prep *prep = dsc_table_prep(input->table);
    size_t n_rows = data->n_rows;
    int rc;

    input->n_train = n_rows;
    if (args->val > 0.0) {
        input->train_rows = malloc(n_rows * sizeof *input->train_rows);
        input->val_rows = malloc(n_rows * sizeof *input->val_rows);
        if (!input->train_rows || !input->val_rows) {
            cli_error("train: out of memory");
            return EXIT_FAILURE_RUN;
        }
        rc = dsc_split_rows(n_rows, classifier ? data->label : NULL, n_classes, args->val,
                            (uint64_t)args->seed, input->train_rows, &input->n_train,
                            input->val_rows, &input->n_val);
        if (rc < 0)
            return cli_library_error(rc);
        if (input->n_train == 0 || input->n_val == 0) {
            cli_error("--val: %g of %zu rows leaves %zu training and %zu validation rows",
                      args->val, n_rows, input->n_train, input->n_val);
            return EXIT_USAGE;
        }
    }

    int standardize = train_standardizes(args, input->table);
    rc = dsc_prep_fit(prep, input->table, input->train_rows, input->n_train, standardize);
    if (rc >= 0)
        rc = dsc_prep_apply(prep, input->table);
    return rc < 0 ? cli_library_error(rc) : 0;
}

int train_setup(const train_args *args, train_plan *plan, train_data *input,
                dsc_model_config *model_cfg, dsc_train_config *cfg)
{
    int rc = read_data(args, plan, input);
    if (rc != 0)
        return rc;

    const dsc_data *data = dsc_table_data(input->table);
    size_t n_classes = dsc_prep_n_classes(dsc_table_prep(input->table));
    size_t n_targets = data->n_targets > 0 ? data->n_targets : 1;
    rc = train_resolve_model(args, plan, data->n_features, n_classes, n_targets, model_cfg);
    if (rc != 0)
        return rc;
    int classifier = dsc_loss_is_classification(model_cfg->loss);
    if ((rc = train_make_config(args, plan, classifier, cfg)) != 0)
        return rc;
    return prepare_data(args, input, classifier, n_classes);
}

/* ------------------------------------------------------------------------------------------ */
/* Progress on standard error and the history file                                            */
/* ------------------------------------------------------------------------------------------ */

static void clear_bar(train_run *run)
{
    if (run->bar_drawn)
        fputs("\r\033[K", stderr);
    run->bar_drawn = 0;
}

/* Redraw the bar of the current epoch when its percentage changed. */
static void draw_bar(train_run *run, int64_t epoch, int64_t step_in_epoch, int64_t steps)
{
    int percent = steps > 0 ? (int)(100 * step_in_epoch / steps) : 0;

    if (run->bar_drawn && percent == run->bar_percent)
        return;
    int filled = percent * BAR_WIDTH / 100;
    fprintf(stderr, "\repoch %lld/%lld [%.*s%*s] %3d%%", (long long)epoch,
            (long long)run->args.epochs, filled, "##############################",
            BAR_WIDTH - filled, "", percent);
    fflush(stderr);
    run->bar_drawn = 1;
    run->bar_percent = percent;
}

/* One line per epoch on standard error. */
static void print_epoch(train_run *run, const dsc_epoch_stats *s, int classifier)
{
    clear_bar(run);
    fprintf(stderr, "epoch %4lld  loss %-10.6g", (long long)s->epoch, s->train_loss);
    if (!isnan(s->val_loss))
        fprintf(stderr, "  val_loss %-10.6g  %s %.4f", s->val_loss,
                classifier ? "val_acc" : "val_r2", s->val_metric);
    fprintf(stderr, "  lr %-9.3g  %.2fs\n", s->lr, s->seconds);
}

/* A number for the history file: empty when there is none (no validation data). */
static void log_number(FILE *out, double value, int last)
{
    if (!isnan(value))
        fprintf(out, "%.9g", value);
    fputc(last ? '\n' : ',', out);
}

static void log_epoch(train_run *run, const dsc_epoch_stats *s)
{
    if (run->log.fp)
        train_log_line(run->log.fp, s);
}

void train_log_line(FILE *out, const dsc_epoch_stats *s)
{
    fprintf(out, "%lld,%lld,", (long long)s->epoch, (long long)s->steps);
    log_number(out, s->train_loss, 0);
    log_number(out, s->val_loss, 0);
    log_number(out, s->val_metric, 0);
    log_number(out, s->lr, 0);
    log_number(out, s->seconds, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static char *settings_text(const train_run *run, const dsc_train_config *cfg);

/* Write the checkpoint of the run as it stands; 0, or an exit status after the error. */
static int save_checkpoint(train_run *run)
{
    free(run->settings);
    run->settings = settings_text(run, &run->cfg);
    if (!run->settings) {
        cli_error("train: out of memory");
        return EXIT_FAILURE_RUN;
    }
    int rc = dsc_checkpoint_save(run->args.checkpoint_path, run->model, run->trainer,
                                 dsc_table_prep(run->input.table), run->settings);
    if (rc < 0) {
        cli_library_error(rc);
        return EXIT_FAILURE_RUN;
    }
    return 0;
}

/* True when a checkpoint is due after the step just taken. */
static int checkpoint_due(const train_run *run, int epoch_finished)
{
    if (!run->args.checkpoint_path)
        return 0;
    if (run->plan.checkpoint_in_steps)
        return dsc_trainer_steps(run->trainer) % run->plan.checkpoint_every == 0;
    return epoch_finished &&
           dsc_trainer_epochs_done(run->trainer) % run->plan.checkpoint_every == 0;
}

/* Step until training stops, reporting every finished epoch; 0 or an exit status. */
static int run_epochs(train_run *run, int classifier, size_t batch)
{
    size_t per_step = batch < run->input.n_train ? batch : run->input.n_train;
    int64_t steps_per_epoch = (int64_t)((run->input.n_train + per_step - 1) / per_step);
    int64_t reported = 0, epoch_first_step = 0;
    int rc;

    run->last_lr_scale = dsc_trainer_lr_scale(run->trainer);
    reported = dsc_trainer_epochs_done(run->trainer);
    epoch_first_step = reported > 0 ? dsc_trainer_history(run->trainer, NULL)[reported - 1].steps
                                    : 0;
    do {
        rc = dsc_trainer_step(run->trainer);
        if (rc < 0) {
            clear_bar(run);
            cli_library_error(rc);
            return EXIT_FAILURE_RUN;
        }

        int64_t done = dsc_trainer_epochs_done(run->trainer);
        int epoch_finished = done > reported;
        if (epoch_finished) {
            size_t n_epochs;
            const dsc_epoch_stats *history = dsc_trainer_history(run->trainer, &n_epochs);
            const dsc_epoch_stats *s = &history[n_epochs - 1];
            log_epoch(run, s);
            if (!run->args.quiet)
                print_epoch(run, s, classifier);
            double scale = dsc_trainer_lr_scale(run->trainer);
            if (scale != run->last_lr_scale && !run->args.quiet)
                fprintf(stderr, "descent: note: training diverged; the learning rate is now "
                        "%g times the one asked for\n", scale);
            run->last_lr_scale = scale;
            reported = done;
            epoch_first_step = dsc_trainer_steps(run->trainer);
        } else if (run->progress) {
            int64_t in_epoch = dsc_trainer_steps(run->trainer) - epoch_first_step;
            draw_bar(run, reported + 1, in_epoch, steps_per_epoch);
        }

        if (rc == 1 && (checkpoint_due(run, epoch_finished) || interrupted) &&
            run->args.checkpoint_path) {
            int saved = save_checkpoint(run);
            if (saved != 0)
                return saved;
        }
        if (interrupted) {
            clear_bar(run);
            if (run->args.checkpoint_path)
                cli_error("interrupted; checkpoint written to %s (continue with: descent "
                          "train --resume %s)", run->args.checkpoint_path,
                          run->args.checkpoint_path);
            else
                cli_error("interrupted; no model written");
            return EXIT_FAILURE_RUN;
        }
    } while (rc == 1);
    clear_bar(run);
    return 0;
}

/* Why training stopped, in words, on standard error. */
static void print_stop(const train_run *run)
{
    size_t n_epochs;
    const dsc_epoch_stats *history = dsc_trainer_history(run->trainer, &n_epochs);

    switch (dsc_trainer_stop_reason(run->trainer)) {
    case DSC_STOP_CONVERGED:
        fprintf(stderr, "stopped after %zu epochs: the training loss improved by less than "
                "%g for %lld epochs\n", n_epochs, run->args.tol, (long long)run->args.patience);
        break;
    case DSC_STOP_EARLY: {
        size_t best = 0;
        for (size_t i = 1; i < n_epochs; i++) {
            if (history[i].val_loss < history[best].val_loss)
                best = i;
        }
        fprintf(stderr, "stopped after %zu epochs: the validation loss improved by less than "
                "%g for %lld epochs; kept the weights of epoch %zu\n", n_epochs,
                run->args.tol, (long long)run->args.patience, best + 1);
        break;
    }
    default:
        fprintf(stderr, "stopped after %zu epochs\n", n_epochs);
        break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The held-out metric                                                                        */
/* ------------------------------------------------------------------------------------------ */

/*
 * The held-out rows as a data set of their own (copied), so that the model's prediction
 * functions, which take a contiguous range of rows, can run on them. Buffers go to *owned
 * (at most 4), freed by the caller.
 */
int train_gather_rows(const dsc_data *d, const uint32_t *rows, size_t n, dsc_data *out,
                      void *owned[4])
{
    memset(out, 0, sizeof *out);
    out->n_rows = n;
    out->n_features = d->n_features;
    out->n_targets = d->n_targets;

    if (d->x) {
        float *x = malloc(n * d->n_features * sizeof *x + 1);
        owned[0] = x;
        if (!x)
            return -1;
        for (size_t i = 0; i < n; i++)
            memcpy(x + i * d->n_features, d->x + (size_t)rows[i] * d->n_features,
                   d->n_features * sizeof *x);
        out->x = x;
    } else {
        uint64_t *row_ptr = malloc((n + 1) * sizeof *row_ptr);
        owned[0] = row_ptr;
        if (!row_ptr)
            return -1;
        row_ptr[0] = 0;
        for (size_t i = 0; i < n; i++)
            row_ptr[i + 1] = row_ptr[i] + d->row_ptr[rows[i] + 1] - d->row_ptr[rows[i]];
        uint32_t *col = malloc(row_ptr[n] * sizeof *col + 1);
        float *val = malloc(row_ptr[n] * sizeof *val + 1);
        owned[1] = col;
        owned[2] = val;
        if (!col || !val)
            return -1;
        for (size_t i = 0; i < n; i++) {
            uint64_t from = d->row_ptr[rows[i]], count = row_ptr[i + 1] - row_ptr[i];
            memcpy(col + row_ptr[i], d->col + from, count * sizeof *col);
            memcpy(val + row_ptr[i], d->val + from, count * sizeof *val);
        }
        out->row_ptr = row_ptr;
        out->col = col;
        out->val = val;
    }

    if (d->label) {
        int32_t *label = malloc(n * sizeof *label + 1);
        owned[3] = label;
        if (!label)
            return -1;
        for (size_t i = 0; i < n; i++)
            label[i] = d->label[rows[i]];
        out->label = label;
    } else {
        float *y = malloc(n * d->n_targets * sizeof *y + 1);
        owned[3] = y;
        if (!y)
            return -1;
        for (size_t i = 0; i < n; i++)
            memcpy(y + i * d->n_targets, d->y + (size_t)rows[i] * d->n_targets,
                   d->n_targets * sizeof *y);
        out->y = y;
    }
    return 0;
}

/* Accuracy of a classifier, or R^2 (averaged over targets) of a regression model. */
static int score(dsc_model *model, const dsc_data *d, double *metric)
{
    size_t n = d->n_rows, width = dsc_model_n_logits(model);
    int classifier = dsc_model_is_classifier(model);
    void *out = malloc(n * (classifier ? sizeof(int32_t) : width * sizeof(float)) + 1);
    int rc;

    if (!out)
        return DSC_ENOMEM;
    if (classifier) {
        int32_t *pred = out;
        size_t correct = 0;
        rc = dsc_model_predict_class(model, d, 0, n, pred);
        for (size_t i = 0; rc >= 0 && i < n; i++)
            correct += pred[i] == d->label[i];
        *metric = (double)correct / (double)n;
    } else {
        float *pred = out;
        rc = dsc_model_decision(model, d, 0, n, pred);
        double r2 = 0.0;
        for (size_t j = 0; rc >= 0 && j < width; j++) {
            double mean = 0.0, res = 0.0, tot = 0.0;
            for (size_t i = 0; i < n; i++)
                mean += d->y[i * width + j] / (double)n;
            for (size_t i = 0; i < n; i++) {
                double y = d->y[i * width + j];
                res += (y - pred[i * width + j]) * (y - pred[i * width + j]);
                tot += (y - mean) * (y - mean);
            }
            r2 += tot > 0.0 ? 1.0 - res / tot : (res == 0.0 ? 1.0 : 0.0);
        }
        *metric = r2 / (double)width;
    }
    free(out);
    return rc < 0 ? rc : DSC_OK;
}

/* The metric of the final weights on the held-out rows. */
static int held_out_metric(train_run *run, double *metric)
{
    dsc_data subset;
    void *owned[4] = {NULL, NULL, NULL, NULL};
    int rc = train_gather_rows(dsc_table_data(run->input.table), run->input.val_rows,
                               run->input.n_val, &subset, owned);

    if (rc == 0) {
        rc = score(run->model, &subset, metric);
        if (rc < 0)
            rc = cli_library_error(rc);
    } else {
        cli_error("train: out of memory");
        rc = EXIT_FAILURE_RUN;
    }
    for (int i = 0; i < 4; i++)
        free(owned[i]);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The settings text and the command                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Append one "key=value" line to the growing text *buf; line breaks in value become spaces. */
static int add_setting(char **buf, size_t *len, size_t *cap, const char *key, const char *fmt,
                       ...)
{
    char value[1024];
    va_list args;

    va_start(args, fmt);
    vsnprintf(value, sizeof value, fmt, args);
    va_end(args);
    for (char *c = value; *c; c++) {
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    }
    size_t need = *len + strlen(key) + strlen(value) + 3;
    if (need > *cap) {
        size_t cap2 = need * 2;
        char *grown = realloc(*buf, cap2);
        if (!grown)
            return -1;
        *buf = grown;
        *cap = cap2;
    }
    *len += (size_t)sprintf(*buf + *len, "%s=%s\n", key, value);
    return 0;
}

/* The line "argv=" with the run's arguments joined by ARG_SEPARATOR. */
static int add_argv_setting(char **buf, size_t *len, size_t *cap, const train_run *run)
{
    size_t need = *len + 8;
    for (int i = 0; i < run->argc; i++)
        need += strlen(run->argv[i]) + 1;
    if (need > *cap) {
        char *grown = realloc(*buf, need * 2);
        if (!grown)
            return -1;
        *buf = grown;
        *cap = need * 2;
    }
    *len += (size_t)sprintf(*buf + *len, "argv=");
    for (int i = 0; i < run->argc; i++)
        *len += (size_t)sprintf(*buf + *len, "%s%s", i ? "\x1f" : "", run->argv[i]);
    *len += (size_t)sprintf(*buf + *len, "\n");
    return 0;
}

/* The options used, as "key=value" lines stored in the model file. */
static char *settings_text(const train_run *run, const dsc_train_config *cfg)
{
    const train_args *a = &run->args;
    const train_plan *p = &run->plan;
    const dsc_model_config *mc = dsc_model_config_of(run->model);
    const dsc_optim_config *o = &cfg->optim;
    dsc_prep *prep = dsc_table_prep(run->input.table);
    char hidden[256] = "", activation[256] = "", loss[64];
    size_t len = 0, cap = 0, used = 0;
    char *buf = NULL;
    int bad = 0;

    for (size_t i = 0; i < mc->n_hidden; i++) {
        used += (size_t)snprintf(hidden + used, sizeof hidden - used, "%s%zu", i ? "," : "",
                                 mc->hidden[i]);
        if (used >= sizeof hidden)
            break;
    }
    for (size_t i = 0, at = 0; i < mc->n_hidden && at < sizeof activation; i++)
        at += (size_t)snprintf(activation + at, sizeof activation - at, "%s%s", i ? "," : "",
                               dsc_activation_name(mc->activation[i]));
    if (mc->loss_param > 0.0f)
        snprintf(loss, sizeof loss, "%s:%g", dsc_loss_name(mc->loss), (double)mc->loss_param);
    else
        snprintf(loss, sizeof loss, "%s", dsc_loss_name(mc->loss));

    size_t n_epochs;
    dsc_trainer_history(run->trainer, &n_epochs);
    static const char *const stops[] = {"none", "epochs", "converged", "early", "callback",
                                        "nonfinite"};
    dsc_stop stop = dsc_trainer_stop_reason(run->trainer);

    bad |= add_setting(&buf, &len, &cap, "descent", "%s", DSC_VERSION);
    bad |= add_argv_setting(&buf, &len, &cap, run);
    bad |= add_setting(&buf, &len, &cap, "data", "%s", a->data_path);
    if (a->target)
        bad |= add_setting(&buf, &len, &cap, "target", "%s", a->target);
    if (dsc_prep_target_name(prep))
        bad |= add_setting(&buf, &len, &cap, "target_name", "%s", dsc_prep_target_name(prep));
    bad |= add_setting(&buf, &len, &cap, "format", "%s", a->format_text);
    if (a->labels_path)
        bad |= add_setting(&buf, &len, &cap, "labels", "%s", a->labels_path);
    bad |= add_setting(&buf, &len, &cap, "missing", "%s", dsc_missing_name(p->missing));
    bad |= add_setting(&buf, &len, &cap, "model", "%s", train_kind_name(p->kind));
    bad |= add_setting(&buf, &len, &cap, "loss", "%s", loss);
    if (mc->n_hidden > 0) {
        bad |= add_setting(&buf, &len, &cap, "hidden", "%s", hidden);
        bad |= add_setting(&buf, &len, &cap, "activation", "%s", activation);
    }
    bad |= add_setting(&buf, &len, &cap, "optimizer", "%s", dsc_optimizer_name(o->kind));
    bad |= add_setting(&buf, &len, &cap, "lr", "%.15g", o->lr);
    bad |= add_setting(&buf, &len, &cap, "momentum", "%.15g", o->momentum);
    bad |= add_setting(&buf, &len, &cap, "beta1", "%.15g", o->beta1);
    bad |= add_setting(&buf, &len, &cap, "beta2", "%.15g", o->beta2);
    bad |= add_setting(&buf, &len, &cap, "eps", "%.15g", o->eps);
    bad |= add_setting(&buf, &len, &cap, "rho", "%.15g", o->rho);
    bad |= add_setting(&buf, &len, &cap, "weight_decay", "%.15g", o->weight_decay);
    bad |= add_setting(&buf, &len, &cap, "l1", "%.15g", cfg->objective.l1);
    bad |= add_setting(&buf, &len, &cap, "l2", "%.15g", cfg->objective.l2);
    bad |= add_setting(&buf, &len, &cap, "batch", "%s", a->batch_text);
    bad |= add_setting(&buf, &len, &cap, "epochs", "%lld", (long long)a->epochs);
    bad |= add_setting(&buf, &len, &cap, "tol", "%.15g", a->tol);
    bad |= add_setting(&buf, &len, &cap, "patience", "%lld", (long long)a->patience);
    bad |= add_setting(&buf, &len, &cap, "val", "%.15g", a->val);
    bad |= add_setting(&buf, &len, &cap, "schedule", "%s", a->schedule_text);
    bad |= add_setting(&buf, &len, &cap, "warmup", "%lld", (long long)a->warmup);
    bad |= add_setting(&buf, &len, &cap, "clip_norm", "%.15g", a->clip_norm);
    bad |= add_setting(&buf, &len, &cap, "class_weight", "%s", a->class_weight_text);
    bad |= add_setting(&buf, &len, &cap, "seed", "%lld", (long long)a->seed);
    bad |= add_setting(&buf, &len, &cap, "init", "%s", a->init_text);
    bad |= add_setting(&buf, &len, &cap, "standardize", "%d",
                       train_standardizes(a, run->input.table));
    bad |= add_setting(&buf, &len, &cap, "shuffle", "%d", !a->no_shuffle);
    bad |= add_setting(&buf, &len, &cap, "threads", "%d", dsc_threads());
    bad |= add_setting(&buf, &len, &cap, "epochs_run", "%zu", n_epochs);
    bad |= add_setting(&buf, &len, &cap, "stop", "%s", stops[stop]);
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The summary line on standard output. */
static void print_summary(const train_run *run, int have_metric, double metric, int classifier)
{
    const dsc_data *data = dsc_table_data(run->input.table);
    size_t n_epochs;
    const dsc_epoch_stats *history = dsc_trainer_history(run->trainer, &n_epochs);

    printf("trained %s on %zu rows, %zu features", train_kind_name(run->plan.kind),
           run->input.n_train, data->n_features);
    if (have_metric)
        printf("; held-out %s %.4f on %zu rows", classifier ? "accuracy" : "R^2", metric,
               run->input.n_val);
    else if (n_epochs > 0)
        printf("; training loss %.6g", history[n_epochs - 1].train_loss);
    printf("; saved %s\n", run->args.model_path);
}

/*
 * Open the history file (written to a temporary file, renamed once the model is saved), with
 * the epochs a resumed run had already finished.
 */
static int open_log(train_run *run)
{
    if (!run->args.log_path)
        return 0;
    int rc = cli_output_open(&run->log, run->args.log_path);
    if (rc != 0)
        return rc;
    fprintf(run->log.fp, "%s\n", TRAIN_LOG_HEADER);
    size_t n_epochs;
    const dsc_epoch_stats *history = dsc_trainer_history(run->trainer, &n_epochs);
    for (size_t i = 0; i < n_epochs; i++)
        log_epoch(run, &history[i]);
    return 0;
}

/* The loss curves and the rate of the run, as SVG. */
static int plot_run(const train_run *run)
{
    char title[512];
    size_t n_epochs;
    const dsc_epoch_stats *history = dsc_trainer_history(run->trainer, &n_epochs);
    const char *slash = strrchr(run->args.data_path, '/');

    snprintf(title, sizeof title, "%s, %s, batch %s on %s", train_kind_name(run->plan.kind),
             dsc_optimizer_name(run->cfg.optim.kind), run->args.batch_text,
             slash ? slash + 1 : run->args.data_path);
    cli_curve curve = {"run", history, n_epochs};
    return cli_plot_curves(run->args.plot_path, title, &curve, 1, 1);
}

/* Train after the options are parsed; 0 or an exit status. */
static int train(train_run *run)
{
    dsc_model_config model_cfg;
    dsc_train_config cfg;
    int rc, err = 0;

    if ((rc = check_model_folder(run->args.model_path)) != 0 ||
        (rc = train_setup(&run->args, &run->plan, &run->input, &model_cfg, &cfg)) != 0)
        return rc;

    const dsc_data *data = dsc_table_data(run->input.table);
    dsc_prep *prep = dsc_table_prep(run->input.table);
    int classifier = dsc_loss_is_classification(model_cfg.loss);
    run->model = dsc_model_new(&model_cfg, &err);
    if (!run->model)
        return cli_library_error(err);
    if (run->args.lr_auto &&
        (rc = train_find_rate(&run->args, &run->plan, &run->input, run->model, &cfg)) != 0)
        return rc;
    run->trainer = dsc_trainer_new(run->model, data, NULL, &cfg, &err);
    if (!run->trainer)
        return cli_library_error(err);
    run->cfg = cfg;
    if (run->resume_state) {
        rc = dsc_trainer_state_load(run->trainer, run->resume_state, run->resume_size);
        if (rc < 0) {
            cli_error("--resume: %s: %s", run->resume_path, dsc_last_error());
            return EXIT_USAGE;
        }
        if (!run->args.quiet)
            fprintf(stderr, "resumed at epoch %lld, step %lld\n",
                    (long long)dsc_trainer_epochs_done(run->trainer) + 1,
                    (long long)dsc_trainer_steps(run->trainer) + 1);
    }
    if ((rc = open_log(run)) != 0)
        return rc;

    run->progress = !run->args.quiet && isatty(STDERR_FILENO);
    if ((rc = run_epochs(run, classifier, cfg.batch)) != 0)
        return rc;
    if (!run->args.quiet)
        print_stop(run);

    double metric = 0.0;
    if (run->input.n_val > 0 && (rc = held_out_metric(run, &metric)) != 0)
        return rc;

    /* Save the model, then put the history in place; a failure leaves neither behind. */
    free(run->settings);
    run->settings = settings_text(run, &cfg);
    if (!run->settings) {
        cli_error("train: out of memory");
        return EXIT_FAILURE_RUN;
    }
    rc = dsc_model_save(run->args.model_path, run->model, prep, run->settings);
    if (rc < 0) {
        cli_library_error(rc);
        return EXIT_FAILURE_RUN;
    }
    if (run->log.fp && (rc = cli_output_commit(&run->log)) != 0) {
        unlink(run->args.model_path);
        return rc;
    }
    if (run->args.plot_path && (rc = plot_run(run)) != 0)
        return rc;
    print_summary(run, run->input.n_val > 0, metric, classifier);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("-: write failed");
        return EXIT_FAILURE_RUN;
    }
    return 0;
}

/*
 * --resume FILE: load the checkpoint, and parse the arguments of the run it saved in place
 * of the command line. 0, or an exit status after the error line.
 */
static int load_resume(train_run *run, int *argc, char ***argv)
{
    const char *path = run->resume_path = run->args.resume_path;
    size_t given = 0;

    for (size_t i = 0; i < run->args.n_options; i++)
        given += (size_t)run->args.table[i].given;
    if (given != 1 || *argc != 3) {
        cli_error("--resume: takes no other argument; the run's own come from the checkpoint");
        return EXIT_USAGE;
    }

    char *settings = NULL;
    int rc = dsc_checkpoint_load(path, NULL, NULL, &settings, &run->resume_state,
                                 &run->resume_size);
    if (rc < 0)
        return cli_library_error(rc);
    const char *line = settings ? strstr(settings, "argv=") : NULL;
    if (!line || (line != settings && line[-1] != '\n')) {
        dsc_free(settings);
        cli_error("--resume: %s: the checkpoint does not record its arguments", path);
        return EXIT_USAGE;
    }

    /* Split the arguments of the run out of their line. */
    line += strlen("argv=");
    size_t len = strcspn(line, "\n");
    run->resume_argv = malloc(len + 1);
    run->resume_args = malloc((len + 2) * sizeof *run->resume_args);
    if (!run->resume_argv || !run->resume_args) {
        dsc_free(settings);
        cli_error("train: out of memory");
        return EXIT_FAILURE_RUN;
    }
    memcpy(run->resume_argv, line, len);
    run->resume_argv[len] = '\0';
    dsc_free(settings);
    int n = 0;
    for (char *p = run->resume_argv;; p++) {
        char *end = strchr(p, ARG_SEPARATOR);
        run->resume_args[n++] = p;
        if (!end)
            break;
        *end = '\0';
        p = end;
    }
    run->resume_args[n] = NULL;
    *argc = n;
    *argv = run->resume_args;
    return 0;
}

/* The arguments of a checkpointed run must survive being joined into one settings line. */
static int check_arguments(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strchr(argv[i], ARG_SEPARATOR) || strchr(argv[i], '\n')) {
            cli_error("--checkpoint: argument %d holds a line break or a 0x1f byte, which a "
                      "checkpoint cannot record", i);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_run *run = calloc(1, sizeof *run);
    int help_shown = 0;

    if (!run) {
        cli_error("train: out of memory");
        return EXIT_FAILURE_RUN;
    }
    int rc = train_parse(argc, argv, &run->args, &run->plan, &help_shown);
    if (rc == 0 && !help_shown && run->args.resume_path) {
        rc = load_resume(run, &argc, &argv);
        if (rc == 0)
            rc = train_parse(argc, argv, &run->args, &run->plan, &help_shown);
        if (rc == 0 && run->args.resume_path) {
            cli_error("--resume: the checkpoint's own arguments hold --resume");
            rc = EXIT_USAGE;
        }
    }
    if (rc == 0 && run->args.checkpoint_path)
        rc = check_arguments(argc, argv);
    run->argc = argc;
    run->argv = argv;
    if (rc == 0 && !help_shown) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, NULL);
        sigaction(SIGTERM, &action, NULL);
        if (train_given(&run->args, "--threads"))
            rc = dsc_set_threads((int)run->args.threads) < 0 ? cli_library_error(DSC_EINVAL) : 0;
        if (rc == 0)
            rc = train(run);
    }
    run_free(run);
    free(run);
    return rc;
}
