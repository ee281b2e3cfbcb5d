/*
 * compare.c - `descent compare DATA`: train the same model from the same initial weights on
 * the same data order with several optimizers, batch sizes or learning rates, rank the runs
 * in a table, and draw every curve in one plot.
 *
 * Each run is built the way `descent train` builds its one (train_setup, train_make_config,
 * dsc_trainer_new, dsc_trainer_step), so that it gives the same losses bit for bit as the
 * train command with the same options.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The most runs of one race. */
#define MAX_RUNS 32

/* The race when no list is given: the optimizers of the issue, at their torch defaults. */
static const char default_optimizers[] = "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw";

static const cli_command compare_command = {
    "compare", "descent compare DATA [--optimizers A,B,..] [--lr X,..] [--batch N,..] [options]",
    "Train the same model on DATA several times, from the same initial weights and in the\n"
    "same data order (both drawn from --seed), changing one thing between the runs: the\n"
    "optimizer (--optimizers), the batch size (--batch 1,32,full) or the learning rate\n"
    "(--lr 0.001,0.01,0.1). Then print the runs ranked by their best validation loss (with\n"
    "--val) or else their final training loss, and with --plot draw every curve in one SVG.",
    "Exactly one of --optimizers, --batch and --lr may list several values; --lr may also\n"
    "give one rate per optimizer. Without a list, the optimizers race:\n"
    "  sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw\n"
    "each at its own default rate unless --lr is given. --lr auto runs lr-find before each\n"
    "run and trains at the rate it suggests.\n"
    "\n"
    "Table columns: the final training loss; the best validation loss and the best validation\n"
    "metric (accuracy or R^2) over the epochs; the first epoch whose monitored loss\n"
    "(validation with --val, else training) came within 1 % of its best; the epochs run; the\n"
    "training time in seconds; why the run stopped. Each run of the race gives the same\n"
    "losses as `descent train` with the same options.\n",
};

typedef enum race_kind {
    RACE_OPTIMIZERS,
    RACE_BATCH,
    RACE_LR
} race_kind;

/* One run of the race: its options, then what it did. */
typedef struct compare_run {
    char name[64];
    const char *optimizer_text;
    const char *batch_text;
    const char *lr_text;        /* NULL: the optimizer's default rate */
    dsc_optimizer optimizer;
    size_t batch;
    double lr;                  /* the rate used */
    dsc_epoch_stats *history;
    size_t n_epochs;
    dsc_stop stop;
    int diverged;               /* stopped by a non-finite loss after the back-offs */
} compare_run;

/* What one run's history says, for the table. */
typedef struct run_summary {
    double final_loss;  /* training loss of the last epoch */
    double best_val;    /* lowest validation loss; NAN without validation */
    double best_metric; /* highest validation metric; NAN without validation */
    int64_t near_epoch; /* first epoch within 1 % of the best monitored loss; 0 if none */
    double seconds;
    double key;         /* what the ranking sorts by, lowest first */
} run_summary;

typedef struct compare_cmd {
    train_args args;
    const char *optimizers_text;
    race_kind race;
    compare_run runs[MAX_RUNS];
    size_t n_runs;
    char *list_text[3];         /* copies of the lists, cut into items */
    train_data input;
    cli_output log;
} compare_cmd;

static void compare_free(compare_cmd *c)
{
    for (size_t i = 0; i < c->n_runs; i++)
        free(c->runs[i].history);
    for (int i = 0; i < 3; i++)
        free(c->list_text[i]);
    train_data_free(&c->input);
    cli_output_abort(&c->log);
}

static int build_options(compare_cmd *c)
{
    static const char *const dropped[] = {
        "--output", "--optimizer", "--checkpoint", "--checkpoint-every", "--resume",
    };
    train_args *a = &c->args;

    train_build_options(a);
    train_drop_options(a, dropped, sizeof dropped / sizeof dropped[0]);
    const cli_option optimizers = CLI_TEXT_OPTION(
        "--optimizers", "A,B,..", c->optimizers_text,
        "the optimizers to race (sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, "
        "adamw, adamax, nadam)", "these seven: sgd,momentum,nesterov,adagrad,rmsprop,adam,"
        "adamw; adam when --batch or --lr is the race");
    if (train_add_option(a, &optimizers) != 0)
        return -1;
    memmove(&a->table[1], &a->table[0], (a->n_options - 1) * sizeof a->table[0]);
    a->table[0] = optimizers; /* first in the help: it is what the command is about */

    cli_option *opt = cli_find(a->table, a->n_options, "--lr");
    opt->metavar = "X,..";
    opt->help = "learning rate: one for every run, one per optimizer, or a list to race; "
                "auto runs lr-find before each run";
    opt = cli_find(a->table, a->n_options, "--batch");
    opt->metavar = "N,..";
    opt->help = "rows per step ('full': every training row), or a list to race, "
                "e.g. 1,32,full";
    opt = cli_find(a->table, a->n_options, "--log");
    opt->help = "write every run's per-epoch history as CSV, with the run in a first column";
    opt = cli_find(a->table, a->n_options, "--plot");
    opt->help = "draw every run's training and validation loss as SVG";
    opt = cli_find(a->table, a->n_options, "--schedule");
    opt->help = "learning-rate schedule of every run, as in 'descent train --help'";
    opt = cli_find(a->table, a->n_options, "--quiet");
    opt->help = "no line per finished run on standard error";
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The runs of the race                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * Cut a copy of text (kept in *copy) at its commas into items[0..max). The count, or 0
 * after the error line when an item is empty or there are too many.
 */
static size_t split_list(const char *option, const char *text, char **copy,
                         const char **items, size_t max)
{
    size_t n = 0;

    *copy = malloc(strlen(text) + 1);
    if (!*copy) {
        cli_error("compare: out of memory");
        return 0;
    }
    strcpy(*copy, text);
    for (char *p = *copy;; p++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p || n == max) {
            char what[64];
            snprintf(what, sizeof what, "a comma list of 1 to %zu values", max);
            cli_bad_value(option, what, text);
            return 0;
        }
        items[n++] = p;
        if (!comma)
            return n;
        p = comma;
    }
}

/* Set the options of run r in the train arguments, as if given on the command line. */
static void select_run(train_args *a, const compare_run *r)
{
    a->optimizer_text = r->optimizer_text;
    a->batch_text = r->batch_text;
    a->lr_text = r->lr_text;
    cli_find(a->table, a->n_options, "--lr")->given = r->lr_text != NULL;
}

/* Name each run after what changes between them. */
static void name_runs(compare_cmd *c)
{
    for (size_t i = 0; i < c->n_runs; i++) {
        compare_run *r = &c->runs[i];
        const char *opt = dsc_optimizer_name(r->optimizer);
        int repeated = 0;
        for (size_t k = 0; k < c->n_runs; k++)
            repeated |= k != i && c->runs[k].optimizer == r->optimizer;
        if (c->race == RACE_BATCH)
            snprintf(r->name, sizeof r->name, "batch %s", r->batch_text);
        else if (c->race == RACE_LR)
            snprintf(r->name, sizeof r->name, "lr %s", r->lr_text);
        else if (repeated && r->lr_text)
            snprintf(r->name, sizeof r->name, "%s lr %s", opt, r->lr_text);
        else
            snprintf(r->name, sizeof r->name, "%s", opt);
    }
}

/*
 * Work out the race from the lists and check every run's options before reading the data.
 * 0, or 2 after the error line.
 */
static int plan_runs(compare_cmd *c)
{
    train_args *a = &c->args;
    const char *opts[MAX_RUNS], *lrs[MAX_RUNS], *batches[MAX_RUNS];
    size_t n_opt, n_lr = 0, n_batch;
    int lr_given = train_given(a, "--lr");

    if (lr_given && !(n_lr = split_list("--lr", a->lr_text, &c->list_text[1], lrs, MAX_RUNS)))
        return EXIT_USAGE;
    if (!(n_batch = split_list("--batch", a->batch_text, &c->list_text[2], batches, MAX_RUNS)))
        return EXIT_USAGE;
    if (n_lr > 1 && n_batch > 1) {
        cli_error("compare: --lr and --batch both list several values; race one at a time");
        return EXIT_USAGE;
    }
    const char *opt_text = c->optimizers_text ? c->optimizers_text
                           : n_lr > 1 || n_batch > 1 ? "adam" : default_optimizers;
    if (!(n_opt = split_list("--optimizers", opt_text, &c->list_text[0], opts, MAX_RUNS)))
        return EXIT_USAGE;
    if (n_opt > 1 && n_batch > 1) {
        cli_error("compare: --optimizers and --batch both list several values; race one at "
                  "a time");
        return EXIT_USAGE;
    }
    if (n_opt > 1 && n_lr > 1 && n_lr != n_opt) {
        cli_error("--lr: %zu rates for %zu optimizers; give one rate, or one per optimizer",
                  n_lr, n_opt);
        return EXIT_USAGE;
    }

    c->race = n_batch > 1 ? RACE_BATCH : n_opt == 1 && n_lr > 1 ? RACE_LR : RACE_OPTIMIZERS;
    c->n_runs = n_batch > 1 ? n_batch : n_opt > 1 ? n_opt : n_lr > 1 ? n_lr : 1;
    for (size_t i = 0; i < c->n_runs; i++) {
        compare_run *r = &c->runs[i];
        r->optimizer_text = opts[n_opt > 1 ? i : 0];
        r->batch_text = batches[n_batch > 1 ? i : 0];
        r->lr_text = n_lr == 0 ? NULL : lrs[n_lr > 1 ? i : 0];

        /* The same checks as train's, with this run's optimizer, batch and rate. */
        if (dsc_optimizer_from_name(r->optimizer_text) < 0)
            return cli_bad_value("--optimizers", "names among sgd, momentum, nesterov, "
                                 "adagrad, rmsprop, adadelta, adam, adamw, adamax and nadam",
                                 r->optimizer_text);
        train_plan scratch;
        memset(&scratch, 0, sizeof scratch);
        select_run(a, r);
        int rc = train_check_options(a, &scratch);
        if (rc != 0)
            return rc;
        r->optimizer = scratch.optimizer;
        r->batch = scratch.batch;
    }
    name_runs(c);
    return 0;
}

/* The training configuration of run r, made as train makes it. 0, or 2 after the error. */
static int configure_run(compare_cmd *c, const compare_run *r, train_plan *plan,
                         int classifier, dsc_train_config *cfg)
{
    train_plan scratch;
    int rc;

    select_run(&c->args, r);
    plan->optimizer = r->optimizer;
    plan->batch = r->batch;
    memset(&scratch, 0, sizeof scratch);
    if ((rc = train_check_options(&c->args, &scratch)) != 0) /* sets args.lr and lr_auto */
        return rc;
    return train_make_config(&c->args, plan, classifier, cfg);
}

/*
 * Train run r as `descent train` would with its options: a fresh model, the trainer over the
 * prepared data, step by step until it stops. A run that diverges is kept, marked. 0, or
 * an exit status after the error line.
 */
static int train_run(compare_cmd *c, compare_run *r, train_plan *plan,
                     const dsc_model_config *model_cfg)
{
    train_args *a = &c->args;
    const dsc_data *data = dsc_table_data(c->input.table);
    dsc_train_config cfg;
    int err = 0;
    int rc = configure_run(c, r, plan, dsc_loss_is_classification(model_cfg->loss), &cfg);

    if (rc != 0)
        return rc;
    dsc_model *model = dsc_model_new(model_cfg, &err);
    if (!model)
        return cli_library_error(err);
    if (a->lr_auto && (rc = train_find_rate(a, plan, &c->input, model, &cfg)) != 0) {
        dsc_model_free(model);
        return rc;
    }
    r->lr = cfg.optim.lr;
    dsc_trainer *trainer = dsc_trainer_new(model, data, NULL, &cfg, &err);
    if (!trainer) {
        dsc_model_free(model);
        return cli_library_error(err);
    }

    do {
        rc = dsc_trainer_step(trainer);
    } while (rc == 1);
    if (rc == DSC_ENONFINITE) {
        r->diverged = 1;
        if (!a->quiet)
            cli_error("note: %s diverged: %s", r->name, dsc_last_error());
        rc = 0;
    } else if (rc < 0) {
        rc = cli_library_error(rc);
    }

    size_t n_epochs = 0;
    const dsc_epoch_stats *history = dsc_trainer_history(trainer, &n_epochs);
    r->history = malloc((n_epochs + 1) * sizeof *r->history);
    if (rc == 0 && !r->history) {
        cli_error("compare: out of memory");
        rc = EXIT_FAILURE_RUN;
    } else if (rc == 0) {
        memcpy(r->history, history, n_epochs * sizeof *history);
        r->n_epochs = n_epochs;
        r->stop = dsc_trainer_stop_reason(trainer);
    }
    dsc_trainer_free(trainer);
    dsc_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The table, the history file and the plot                                                   */
/* ------------------------------------------------------------------------------------------ */

static run_summary summarise(const compare_run *r, int have_val)
{
    run_summary s = {NAN, NAN, NAN, 0, 0.0, INFINITY};
    double best_monitored = INFINITY;

    if (r->n_epochs == 0)
        return s;
    s.final_loss = r->history[r->n_epochs - 1].train_loss;
    s.seconds = r->history[r->n_epochs - 1].seconds;
    for (size_t i = 0; i < r->n_epochs; i++) {
        const dsc_epoch_stats *e = &r->history[i];
        if (isfinite(e->val_loss) && !(e->val_loss >= s.best_val))
            s.best_val = e->val_loss;
        if (isfinite(e->val_metric) && !(e->val_metric <= s.best_metric))
            s.best_metric = e->val_metric;
        double monitored = have_val ? e->val_loss : e->train_loss;
        if (isfinite(monitored) && monitored < best_monitored)
            best_monitored = monitored;
    }
    for (size_t i = 0; i < r->n_epochs && s.near_epoch == 0; i++) {
        double monitored = have_val ? r->history[i].val_loss : r->history[i].train_loss;
        if (monitored <= best_monitored + 0.01 * fabs(best_monitored))
            s.near_epoch = r->history[i].epoch;
    }
    double key = have_val ? s.best_val : s.final_loss;
    s.key = r->diverged || !isfinite(key) ? INFINITY : key;
    return s;
}

/* A number of the table, or "-" when there is none. */
static void put_cell(double value, const char *format, int width)
{
    char text[64];

    if (isnan(value))
        snprintf(text, sizeof text, "-");
    else
        snprintf(text, sizeof text, format, value);
    printf("  %*s", width, text);
}

/* The runs, best first, one line each (losses with 9 significant digits). */
static void print_table(const compare_cmd *c, int have_val, int classifier)
{
    static const char *const stops[] = {"running", "epochs", "converged", "early", "callback",
                                        "diverged"};
    run_summary sums[MAX_RUNS];
    size_t order[MAX_RUNS];
    int name_width = 3;

    for (size_t i = 0; i < c->n_runs; i++) {
        sums[i] = summarise(&c->runs[i], have_val);
        order[i] = i;
        int len = (int)strlen(c->runs[i].name);
        name_width = len > name_width ? len : name_width;
    }
    /* Insertion sort: stable, so that ties keep the order of the command line. */
    for (size_t i = 1; i < c->n_runs; i++) {
        size_t k = i, moving = order[i];
        while (k > 0 && sums[moving].key < sums[order[k - 1]].key) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = moving;
    }

    const char *metric = classifier ? "best_val_acc" : "best_val_r2";
    printf("%4s  %-*s  %10s  %16s  %16s  %12s  %9s  %6s  %8s  %s\n", "rank", name_width,
           "run", "lr", "final_train_loss", "best_val_loss", metric, "epoch_1%", "epochs",
           "seconds", "stop");
    for (size_t k = 0; k < c->n_runs; k++) {
        const compare_run *r = &c->runs[order[k]];
        const run_summary *s = &sums[order[k]];
        printf("%4zu  %-*s", k + 1, name_width, r->name);
        put_cell(r->lr, "%.4g", 10);
        put_cell(s->final_loss, "%.9g", 16);
        put_cell(s->best_val, "%.9g", 16);
        put_cell(s->best_metric, "%.4f", 12);
        put_cell(s->near_epoch > 0 ? (double)s->near_epoch : NAN, "%.0f", 9);
        printf("  %6zu", r->n_epochs);
        put_cell(s->seconds, "%.2f", 8);
        printf("  %s\n", r->diverged ? "diverged" : stops[r->stop]);
    }
}

/* Every run's history in one CSV: train's columns after a first column, the run. */
static void log_runs(const compare_cmd *c)
{
    FILE *out = c->log.fp;

    fprintf(out, "run,%s\n", TRAIN_LOG_HEADER);
    for (size_t i = 0; i < c->n_runs; i++) {
        for (size_t e = 0; e < c->runs[i].n_epochs; e++) {
            fprintf(out, "%s,", c->runs[i].name);
            train_log_line(out, &c->runs[i].history[e]);
        }
    }
}

/* The title of the table and the plot: what races, and what stays the same. */
static void describe(const compare_cmd *c, const train_plan *plan, char *buf, size_t size)
{
    const char *path = c->args.data_path, *slash = strrchr(path, '/');
    const char *file = slash ? slash + 1 : path;
    const char *model = train_kind_name(plan->kind);
    const compare_run *first = &c->runs[0];

    if (c->race == RACE_BATCH)
        snprintf(buf, size, "batch sizes: %s, %s on %s", model,
                 dsc_optimizer_name(first->optimizer), file);
    else if (c->race == RACE_LR)
        snprintf(buf, size, "learning rates: %s, %s, batch %s on %s", model,
                 dsc_optimizer_name(first->optimizer), first->batch_text, file);
    else
        snprintf(buf, size, "optimizers: %s, batch %s on %s", model, first->batch_text, file);
}

static int plot_runs(const compare_cmd *c, const char *title)
{
    cli_curve curves[MAX_RUNS];
    int with_lr = strcmp(c->args.schedule_text, "constant") != 0 || c->args.warmup > 0;

    for (size_t i = 0; i < c->n_runs; i++)
        curves[i] = (cli_curve){c->runs[i].name, c->runs[i].history, c->runs[i].n_epochs};
    return cli_plot_curves(c->args.plot_path, title, curves, c->n_runs, with_lr);
}

/* ------------------------------------------------------------------------------------------ */
/* The command                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The race after the options are parsed; 0 or an exit status. */
static int race(compare_cmd *c)
{
    train_args *a = &c->args;
    train_plan plan;
    dsc_model_config model_cfg;
    dsc_train_config cfg;
    int rc;

    if ((rc = plan_runs(c)) != 0)
        return rc;
    if (train_given(a, "--threads") && dsc_set_threads((int)a->threads) < 0)
        return cli_library_error(DSC_EINVAL);

    /* The data and the model, prepared once as train prepares them. */
    memset(&plan, 0, sizeof plan);
    select_run(a, &c->runs[0]);
    if ((rc = train_check_options(a, &plan)) != 0 ||
        (rc = train_setup(a, &plan, &c->input, &model_cfg, &cfg)) != 0)
        return rc;
    for (size_t i = 0; i < c->n_runs; i++) {
        int classifier = dsc_loss_is_classification(model_cfg.loss);
        if ((rc = configure_run(c, &c->runs[i], &plan, classifier, &cfg)) != 0)
            return rc; /* before any run trains */
    }
    if (a->log_path && (rc = cli_output_open(&c->log, a->log_path)) != 0)
        return rc;

    for (size_t i = 0; i < c->n_runs; i++) {
        compare_run *r = &c->runs[i];
        if ((rc = train_run(c, r, &plan, &model_cfg)) != 0)
            return rc;
        if (!a->quiet && r->n_epochs > 0)
            fprintf(stderr, "run %zu/%zu %s: %zu epochs, training loss %.6g, %.2fs\n", i + 1,
                    c->n_runs, r->name, r->n_epochs, r->history[r->n_epochs - 1].train_loss,
                    r->history[r->n_epochs - 1].seconds);
    }

    char title[512];
    int have_val = c->input.n_val > 0;
    describe(c, &plan, title, sizeof title);
    printf("%s; ranked by %s\n", title, have_val ? "best validation loss"
                                                 : "final training loss");
    print_table(c, have_val, dsc_loss_is_classification(model_cfg.loss));
    if (c->log.fp) {
        log_runs(c);
        if ((rc = cli_output_commit(&c->log)) != 0)
            return rc;
    }
    if (a->plot_path && (rc = plot_runs(c, title)) != 0)
        return rc;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("-: write failed");
        return EXIT_FAILURE_RUN;
    }
    return 0;
}

int cmd_compare(int argc, char **argv)
{
    compare_cmd *c = calloc(1, sizeof *c);
    const char *positional[1];
    int help_shown = 0;

    if (!c || build_options(c) != 0) {
        free(c);
        cli_error("compare: out of memory");
        return EXIT_FAILURE_RUN;
    }
    int rc = cli_parse_exact(argc, argv, &compare_command, c->args.table, c->args.n_options,
                             positional, 1, "a data file", &help_shown);
    if (rc == 0 && !help_shown) {
        c->args.data_path = positional[0];
        rc = race(c);
    }
    compare_free(c);
    free(c);
    return rc;
}
