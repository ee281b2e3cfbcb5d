/*
 * lrfind.c - `descent lr-find DATA`: the learning-rate range test with train's model,
 * optimizer and batch options: a table of the smoothed loss against the rate, the suggested
 * rate, and a plot. Also `descent train --lr auto`, which runs the same test first.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The range the test sweeps and its number of mini-batches, unless told otherwise. */
#define DEFAULT_LR_MIN 1e-7
#define DEFAULT_LR_MAX 10.0
#define DEFAULT_STEPS 100

/* Rows of the printed table, at most (the lowest loss is always one of them). */
#define TABLE_ROWS 25

static const cli_command lrfind_command = {
    "lr-find", "descent lr-find DATA [--plot FILE.svg] [options]",
    "Run a learning-rate range test on DATA: from the initial weights, take up to --steps\n"
    "mini-batches while the rate rises exponentially from --min to --max, record an\n"
    "exponential average of the batch losses, and stop once it exceeds 4 times its lowest\n"
    "value. Prints the smoothed loss at a sample of the rates, then the suggested rate (a\n"
    "tenth of the rate at the lowest smoothed loss) as the last line.",
    "The model, optimizer and batch options are those of `descent train`, so that\n"
    "`descent train --lr auto` with the same options trains at the rate suggested here.\n"
    "With --val the test sees only the training rows.\n",
};

/* The options of lr-find: train's, less those about epochs, rates and outputs. */
typedef struct lrfind_args {
    train_args train;
    double lr_min, lr_max;
    int64_t steps;
} lrfind_args;

static int build_options(lrfind_args *a)
{
    static const char *const dropped[] = {
        "--output", "--lr", "--epochs", "--tol", "--patience", "--schedule", "--warmup",
        "--no-shuffle", "--quiet", "--log", "--on-divergence", "--checkpoint",
        "--checkpoint-every", "--resume",
    };
    train_build_options(&a->train);
    train_drop_options(&a->train, dropped, sizeof dropped / sizeof dropped[0]);
    a->lr_min = DEFAULT_LR_MIN;
    a->lr_max = DEFAULT_LR_MAX;
    a->steps = DEFAULT_STEPS;

    const cli_option added[] = {
        CLI_REAL_OPTION("--min", "X", a->lr_min, 0, 1, INFINITY, 0,
                        "the rate of the first mini-batch", "1e-7"),
        CLI_REAL_OPTION("--max", "X", a->lr_max, 0, 1, INFINITY, 0,
                        "the rate of the last mini-batch", "10"),
        CLI_INT_OPTION("--steps", "N", a->steps, 2, 1000000,
                       "most mini-batches of the test", "100"),
    };
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
        if (train_add_option(&a->train, &added[i]) != 0)
            return -1;
    }
    cli_find(a->train.table, a->train.n_options, "--plot")->help =
        "draw the smoothed loss against log10 of the rate as SVG";
    cli_find(a->train.table, a->train.n_options, "--val")->help =
        "share of rows held out as `descent train --val` holds them out; the test sees the "
        "others";
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The test                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * Balanced class weights of the rows of d, as the trainer computes them: n / (K * count of
 * the class), 1 for a class without rows. weights holds n_classes floats.
 */
static void balanced_weights(const dsc_data *d, size_t n_classes, float *weights)
{
    for (size_t c = 0; c < n_classes; c++)
        weights[c] = 0.0f;
    for (size_t i = 0; i < d->n_rows; i++)
        weights[d->label[i]] += 1.0f;
    for (size_t c = 0; c < n_classes; c++) {
        double count = weights[c];
        weights[c] = count > 0.0 ? (float)((double)d->n_rows / ((double)n_classes * count))
                                 : 1.0f;
    }
}

/*
 * Run dsc_lr_find with the settings of cfg on the training rows of input (every row without
 * --val). 0, or an exit status after the error line.
 */
static int range_test(const train_data *input, dsc_model *model, const dsc_train_config *cfg,
                      double lr_min, double lr_max, size_t steps, dsc_lr_find_result *result)
{
    const dsc_data *rows = dsc_table_data(input->table);
    dsc_data subset;
    void *owned[4] = {NULL, NULL, NULL, NULL};
    dsc_train_config test_cfg = *cfg;
    float *weights = NULL;
    int rc = 0;

    if (input->train_rows) {
        rc = train_gather_rows(rows, input->train_rows, input->n_train, &subset, owned);
        rows = &subset;
    }

    /* dsc_lr_find applies the objective as given: the balanced weights are made here. */
    size_t n_classes = dsc_model_config_of(model)->n_outputs;
    if (rc == 0 && cfg->balanced) {
        weights = malloc(n_classes * sizeof *weights);
        if (weights) {
            balanced_weights(rows, n_classes, weights);
            test_cfg.objective.class_weight = weights;
        } else {
            rc = -1;
        }
    }

    if (rc == 0) {
        int err = dsc_lr_find(model, rows, &test_cfg, lr_min, lr_max, steps, result);
        rc = err < 0 ? cli_library_error(err) : 0;
    } else {
        cli_error("lr-find: out of memory");
        rc = EXIT_FAILURE_RUN;
    }
    free(weights);
    for (int i = 0; i < 4; i++)
        free(owned[i]);
    return rc;
}

/* The suggested rate rounded to 2 significant digits, as a person would type it. */
static double round_rate(double rate)
{
    char text[32];
    double rounded;

    snprintf(text, sizeof text, "%.2g", rate);
    return cli_parse_double(text, &rounded) == 0 && rounded > 0.0 ? rounded : rate;
}

int train_find_rate(train_args *args, const train_plan *plan, const train_data *data,
                    dsc_model *model, dsc_train_config *cfg)
{
    dsc_lr_find_result result;
    int rc = range_test(data, model, cfg, DEFAULT_LR_MIN, DEFAULT_LR_MAX, DEFAULT_STEPS,
                        &result);
    if (rc != 0)
        return rc;

    double rate = round_rate(result.suggested);
    dsc_lr_find_free(&result);
    fprintf(stderr, "lr-find: suggested learning rate %g\n", rate);
    args->lr = rate;
    args->lr_auto = 0;
    return train_make_config(args, plan, dsc_model_is_classifier(model), cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* The table and the plot                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* TABLE_ROWS rates spread evenly over the recorded ones; the lowest loss replaces the nearest. */
static void print_table(const dsc_lr_find_result *r)
{
    size_t rows = r->n < TABLE_ROWS ? r->n : TABLE_ROWS;
    size_t pick[TABLE_ROWS], nearest = 0;

    for (size_t k = 0; k < rows; k++) {
        pick[k] = rows > 1 ? (size_t)llround((double)k * (double)(r->n - 1) /
                                             (double)(rows - 1)) : 0;
        size_t d = pick[k] > r->best ? pick[k] - r->best : r->best - pick[k];
        size_t d_nearest = pick[nearest] > r->best ? pick[nearest] - r->best
                                                   : r->best - pick[nearest];
        if (d < d_nearest)
            nearest = k;
    }
    pick[nearest] = r->best;

    printf("%12s  %14s\n", "lr", "smoothed_loss");
    for (size_t k = 0; k < rows; k++)
        printf("%12.4g  %14.6g%s\n", r->lr[pick[k]], r->loss[pick[k]],
               pick[k] == r->best ? "  lowest" : "");
}

/* The smoothed loss against log10 of the rate, the lowest point, and the suggested rate. */
static int plot_test(const char *path, const char *title, const dsc_lr_find_result *r,
                     double suggested)
{
    double *x = malloc(r->n * sizeof *x);
    if (!x) {
        cli_error("%s: out of memory", path);
        return EXIT_FAILURE_RUN;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < r->n; i++) {
        x[i] = log10(r->lr[i]);
        lo = fmin(lo, r->loss[i]);
        hi = fmax(hi, r->loss[i]);
    }
    double best_x = x[r->best], best_y = r->loss[r->best];
    double mark_x[2] = {log10(suggested), log10(suggested)}, mark_y[2] = {lo, hi};
    char best_name[64], mark_name[64];
    snprintf(best_name, sizeof best_name, "lowest loss at %.2g", r->lr[r->best]);
    snprintf(mark_name, sizeof mark_name, "suggested rate %g", suggested);
    dsc_series series[3] = {
        {"smoothed loss", x, r->loss, r->n},
        {best_name, &best_x, &best_y, 1},
        {mark_name, mark_x, mark_y, 2},
    };
    dsc_plot plot = {
        .title = title,
        .x_label = "log10 learning rate",
        .y_label = "smoothed loss",
        .log_y = -1,
        .series = series,
        .n_series = 3,
    };

    cli_output out;
    int rc = cli_output_open(&out, path);
    if (rc == 0) {
        int err = dsc_plot_write_svg(out.fp, &plot);
        if (err < 0) {
            cli_library_error(err);
            cli_output_abort(&out);
            rc = EXIT_FAILURE_RUN;
        } else {
            rc = cli_output_commit(&out);
        }
    }
    free(x);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The command                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The test after the options are parsed; 0 or an exit status. */
static int find(lrfind_args *a)
{
    train_args *args = &a->train;
    train_plan plan;
    train_data input;
    dsc_model_config model_cfg;
    dsc_train_config cfg;
    dsc_lr_find_result result;
    int rc, err = 0;

    memset(&plan, 0, sizeof plan);
    memset(&input, 0, sizeof input);
    memset(&result, 0, sizeof result);
    if ((rc = train_check_options(args, &plan)) != 0)
        return rc;
    if (!(a->lr_max > a->lr_min)) {
        cli_error("--max: must be above --min (%g), got %g", a->lr_min, a->lr_max);
        return EXIT_USAGE;
    }
    if (train_given(args, "--threads") && dsc_set_threads((int)args->threads) < 0)
        return cli_library_error(DSC_EINVAL);
    if ((rc = train_setup(args, &plan, &input, &model_cfg, &cfg)) != 0) {
        train_data_free(&input);
        return rc;
    }

    dsc_model *model = dsc_model_new(&model_cfg, &err);
    if (!model)
        rc = cli_library_error(err);
    if (rc == 0)
        rc = range_test(&input, model, &cfg, a->lr_min, a->lr_max, (size_t)a->steps, &result);
    if (rc == 0) {
        double suggested = round_rate(result.suggested);
        const char *slash = strrchr(args->data_path, '/');
        char title[512];
        snprintf(title, sizeof title, "lr-find: %s, %s, batch %s on %s",
                 train_kind_name(plan.kind), dsc_optimizer_name(cfg.optim.kind),
                 args->batch_text, slash ? slash + 1 : args->data_path);
        if (result.n < (size_t)a->steps)
            fprintf(stderr, "lr-find: stopped after %zu of %lld steps at rate %.3g: the "
                    "smoothed loss rose above 4 times its lowest\n", result.n + 1,
                    (long long)a->steps, result.lr[result.n - 1]);
        print_table(&result);
        printf("suggested learning rate: %g\n", suggested);
        if (args->plot_path)
            rc = plot_test(args->plot_path, title, &result, suggested);
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        cli_error("-: write failed");
        rc = EXIT_FAILURE_RUN;
    }
    dsc_lr_find_free(&result);
    dsc_model_free(model);
    train_data_free(&input);
    return rc;
}

int cmd_lr_find(int argc, char **argv)
{
    lrfind_args *a = calloc(1, sizeof *a);
    const char *positional[1];
    int help_shown = 0;

    if (!a || build_options(a) != 0) {
        free(a);
        cli_error("lr-find: out of memory");
        return EXIT_FAILURE_RUN;
    }
    int rc = cli_parse_exact(argc, argv, &lrfind_command, a->train.table, a->train.n_options,
                             positional, 1, "a data file", &help_shown);
    if (rc == 0 && !help_shown) {
        a->train.data_path = positional[0];
        rc = find(a);
    }
    free(a);
    return rc;
}
