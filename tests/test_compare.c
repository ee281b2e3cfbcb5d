/*
 * test_compare.c - `descent compare`: every run of an optimizer, batch-size or rate race
 * gives the same per-epoch history, bit for bit at the printed precision, as `descent train`
 * with the same options; the table's columns and ranking follow from those train histories;
 * the plots (compare's and train's) are valid SVG that renders; bad races are usage errors.
 *
 * The runs use --threads 1: results do not depend on the count, and a busy machine makes
 * more threads slower.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "test_png_util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LINES 4096
#define MAX_FIELDS 8

/* ------------------------------------------------------------------------------------------ */
/* Histories and tables as text                                                               */
/* ------------------------------------------------------------------------------------------ */

/* A CSV file cut into lines and fields, in place. */
typedef struct csv {
    char *text;
    size_t n_lines;
    char *field[MAX_LINES][MAX_FIELDS];
    size_t n_fields[MAX_LINES];
} csv;

static csv *csv_read(const char *path)
{
    csv *c = calloc(1, sizeof *c);
    char *lines[MAX_LINES];

    if (!c)
        abort();
    c->text = tu_read_text(path);
    c->n_lines = tu_split_lines(c->text, lines, MAX_LINES);
    for (size_t i = 0; i < c->n_lines; i++) {
        char *p = lines[i];
        while (c->n_fields[i] < MAX_FIELDS) {
            char *comma = strchr(p, ',');
            c->field[i][c->n_fields[i]++] = p;
            if (!comma)
                break;
            *comma = '\0';
            p = comma + 1;
        }
    }
    return c;
}

static void csv_free(csv *c)
{
    if (c)
        free(c->text);
    free(c);
}

/* One row of compare's table, its cells as printed. */
typedef struct table_row {
    int rank;
    char lr[32], final_loss[32], best_val[32], best_metric[32], near_epoch[32];
    int epochs;
    char seconds[32], stop[32];
} table_row;

/*
 * The row of the run named name in compare's standard output; 0 when there is none. Rows
 * are "RANK  NAME  CELLS..." with NAME padded to the longest name.
 */
static int find_row(const char *out, const char *name, table_row *row)
{
    size_t len = strlen(name);

    for (const char *line = out; *line; line += strcspn(line, "\n")) {
        line += *line == '\n';
        char *after;
        long rank = strtol(line, &after, 10);
        if (after == line || strncmp(after, "  ", 2) != 0 ||
            strncmp(after + 2, name, len) != 0 || after[2 + len] != ' ')
            continue;
        row->rank = (int)rank;
        int n = sscanf(after + 2 + len, "%31s %31s %31s %31s %31s %d %31s %31s", row->lr,
                       row->final_loss, row->best_val, row->best_metric, row->near_epoch,
                       &row->epochs, row->seconds, row->stop);
        return n == 8;
    }
    return 0;
}

/* What the table must say of a run, worked out from its `descent train` history. */
typedef struct expected_row {
    const char *final_loss;  /* the last epoch's train_loss, as logged */
    const char *best_val;    /* the lowest val_loss, as logged; NULL without validation */
    double best_metric;      /* the highest val_metric; NAN without validation */
    long near_epoch;         /* the first epoch within 1 % of the best monitored loss */
    size_t epochs;
    double key;              /* what the ranking sorts by */
} expected_row;

/* The row a train history (log lines 1..n of t) calls for. */
static expected_row expect_from_log(const csv *t, int have_val)
{
    expected_row e = {NULL, NULL, NAN, 0, 0, INFINITY};
    double best_val = INFINITY, best_monitored = INFINITY;

    e.epochs = t->n_lines - 1;
    if (e.epochs == 0)
        return e;
    e.final_loss = t->field[t->n_lines - 1][2];
    for (size_t i = 1; i < t->n_lines; i++) {
        double loss = strtod(t->field[i][2], NULL);
        double val = have_val ? strtod(t->field[i][3], NULL) : NAN;
        double metric = have_val ? strtod(t->field[i][4], NULL) : NAN;
        if (have_val && val < best_val) {
            best_val = val;
            e.best_val = t->field[i][3];
        }
        if (have_val && !(metric <= e.best_metric))
            e.best_metric = metric;
        double monitored = have_val ? val : loss;
        best_monitored = monitored < best_monitored ? monitored : best_monitored;
    }
    for (size_t i = 1; i < t->n_lines && e.near_epoch == 0; i++) {
        double monitored = strtod(t->field[i][have_val ? 3 : 2], NULL);
        if (monitored <= best_monitored + 0.01 * fabs(best_monitored))
            e.near_epoch = strtol(t->field[i][0], NULL, 10);
    }
    e.key = have_val ? best_val : strtod(e.final_loss, NULL);
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* A race checked against the train runs                                                      */
/* ------------------------------------------------------------------------------------------ */

/* One run of a race: its name in the table and the train options that reproduce it. */
typedef struct race_run {
    const char *name;
    const char *train_options;
} race_run;

/*
 * Run `descent compare DATA COMMON RACE --log --plot`, then `descent train DATA COMMON
 * RUN_OPTIONS --log` for each run, and check that compare's history of each run is the
 * train history line for line (every column but the time), that the table's cells and
 * ranking follow from the train histories, and that the plot renders.
 */
static void check_race(const char *data, const char *common, const char *race,
                       const race_run *runs, size_t n_runs, int have_val)
{
    char args[4096], log[512], plot[512], model[512], train_log[512];
    expected_row want[16];
    int ranks[16] = {0};

    REQUIRE(n_runs <= 16);
    tu_tmp_path(log, sizeof log, "compare.csv");
    tu_tmp_path(plot, sizeof plot, "compare.svg");
    tu_tmp_path(model, sizeof model, "m.dsc");
    snprintf(args, sizeof args, "compare %s %s %s --threads 1 --quiet --log %s --plot %s",
             data, common, race, log, plot);
    int status = tu_run_descent(args);
    char *err = tu_stderr_text();
    if (status != 0)
        test_report(__FILE__, __LINE__, "descent %s: status %d: %s", args, status, err);
    free(err);
    REQUIRE(status == 0);
    char *out = tu_stdout_text();
    csv *compared = csv_read(log);
    REQUIRE(compared->n_lines > 1);
    CHECK(strcmp(compared->field[0][0], "run") == 0);
    CHECK_EQ_INT(compared->n_fields[0], 8);

    for (size_t r = 0; r < n_runs; r++) {
        snprintf(train_log, sizeof train_log, "%s/train%zu.csv", test_tmpdir(), r);
        snprintf(args, sizeof args, "train %s -o %s --threads 1 --quiet --log %s %s %s", data,
                 model, train_log, common, runs[r].train_options);
        REQUIRE(tu_run_descent(args) == 0);
        csv *trained = csv_read(train_log);
        REQUIRE(trained->n_lines > 1);

        /* compare's log holds the same lines after the run's name, but for the time. */
        size_t at = 1;
        for (size_t i = 1; i < compared->n_lines; i++) {
            if (strcmp(compared->field[i][0], runs[r].name) != 0)
                continue;
            REQUIRE(at < trained->n_lines);
            for (size_t f = 0; f < 6; f++) {
                if (strcmp(compared->field[i][f + 1], trained->field[at][f]) != 0)
                    test_report(__FILE__, __LINE__, "%s epoch %zu column %zu: compare %s, "
                                "train %s", runs[r].name, at, f, compared->field[i][f + 1],
                                trained->field[at][f]);
            }
            at++;
        }
        CHECK_EQ_INT(at, trained->n_lines);

        /* The table's cells, from the train history. */
        table_row row;
        want[r] = expect_from_log(trained, have_val);
        if (!find_row(out, runs[r].name, &row)) {
            test_report(__FILE__, __LINE__, "no row for %s in:\n%s", runs[r].name, out);
            csv_free(trained);
            continue;
        }
        CHECK(strcmp(row.final_loss, want[r].final_loss) == 0);
        if (have_val) {
            CHECK(strcmp(row.best_val, want[r].best_val) == 0);
            CHECK_NEAR(strtod(row.best_metric, NULL), want[r].best_metric, 5e-5);
        } else {
            CHECK(strcmp(row.best_val, "-") == 0 && strcmp(row.best_metric, "-") == 0);
        }
        CHECK_EQ_INT(strtol(row.near_epoch, NULL, 10), want[r].near_epoch);
        CHECK_EQ_INT(row.epochs, want[r].epochs);
        CHECK(strtod(row.seconds, NULL) >= 0.0);

        ranks[r] = row.rank;
        csv_free(trained);
    }

    /* The rank: one plus the runs with a lower key, or an equal one given earlier. */
    for (size_t r = 0; r < n_runs; r++) {
        int expected_rank = 1;
        for (size_t k = 0; k < n_runs; k++)
            expected_rank += want[k].key < want[r].key || (want[k].key == want[r].key && k < r);
        if (ranks[r] != expected_rank)
            test_report(__FILE__, __LINE__, "%s: rank %d, expected %d", runs[r].name, ranks[r],
                        expected_rank);
    }
    CHECK_SVG(plot, 400);
    csv_free(compared);
    free(out);
}

/* ------------------------------------------------------------------------------------------ */
/* The races                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static const race_run every_optimizer[] = {
    {"sgd", "--optimizer sgd"},         {"momentum", "--optimizer momentum"},
    {"nesterov", "--optimizer nesterov"}, {"adagrad", "--optimizer adagrad"},
    {"rmsprop", "--optimizer rmsprop"}, {"adam", "--optimizer adam"},
    {"adamw", "--optimizer adamw"},
};
#define N_OPTIMIZERS (sizeof every_optimizer / sizeof every_optimizer[0])

/* An MLP with validation: ranked by the best validation loss, two charts in the plot. */
TEST(compare_optimizers_on_digits_match_train_runs)
{
    check_race("data/digits.csv",
               "--model mlp --loss softmax --hidden 32 --batch 64 --epochs 5 --val 0.2 "
               "--seed 3", "", every_optimizer, N_OPTIMIZERS, 1);
}

/* Logistic regression without validation: ranked by the final training loss. */
TEST(compare_optimizers_on_breast_cancer_match_train_runs)
{
    check_race("data/breast_cancer.csv", "--epochs 5 --seed 2",
               "--optimizers sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw", every_optimizer,
               N_OPTIMIZERS, 0);
}

/* One rate per optimizer, aligned with the list. */
TEST(compare_optimizers_take_one_rate_each)
{
    static const race_run runs[] = {
        {"sgd", "--optimizer sgd --lr 0.1"},
        {"adam", "--optimizer adam --lr 0.003"},
    };
    check_race("data/breast_cancer.csv", "--epochs 4 --seed 5 --val 0.25",
               "--optimizers sgd,adam --lr 0.1,0.003", runs, 2, 1);
}

/*
 * Stochastic, mini-batch and full-batch descent, with epochs of as many steps as rows,
 * ceil(rows / 32) and 1.
 */
TEST(compare_races_batch_sizes)
{
    static const race_run runs[] = {
        {"batch 1", "--optimizer sgd --lr 0.01 --batch 1"},
        {"batch 32", "--optimizer sgd --lr 0.01 --batch 32"},
        {"batch full", "--optimizer sgd --lr 0.01 --batch full"},
    };
    check_race("data/breast_cancer.csv", "--epochs 3 --seed 1",
               "--optimizers sgd --lr 0.01 --batch 1,32,full", runs, 3, 0);

    /* The rows of the file, counted here. */
    char *text = tu_read_text("data/breast_cancer.csv"), *lines[MAX_LINES], log[512];
    size_t rows = tu_split_lines(text, lines, MAX_LINES) - 1;
    free(text);
    csv *c = csv_read(tu_tmp_path(log, sizeof log, "compare.csv"));
    const char *names[3] = {"batch 1", "batch 32", "batch full"};
    size_t steps[3] = {rows, (rows + 31) / 32, 1};
    for (size_t r = 0; r < 3; r++) {
        int found = 0;
        for (size_t i = 1; i < c->n_lines; i++) {
            if (strcmp(c->field[i][0], names[r]) == 0 && strcmp(c->field[i][1], "1") == 0) {
                CHECK_EQ_INT(strtol(c->field[i][2], NULL, 10), steps[r]);
                found = 1;
            }
        }
        CHECK(found);
    }
    csv_free(c);
}

/* A race of rates; the one that diverges is kept, marked and ranked last. */
TEST(compare_races_learning_rates)
{
    static const race_run runs[] = {
        {"lr 0.001", "--lr 0.001"},
        {"lr 0.01", "--lr 0.01"},
        {"lr 0.1", "--lr 0.1"},
    };
    check_race("data/breast_cancer.csv", "--epochs 4 --seed 4 --val 0.2",
               "--lr 0.001,0.01,0.1", runs, 3, 1);

    /* The rate of every logged epoch is the run's. */
    char log[512];
    csv *c = csv_read(tu_tmp_path(log, sizeof log, "compare.csv"));
    REQUIRE(c->n_lines == 13);
    for (size_t i = 1; i < c->n_lines; i++)
        CHECK(strcmp(c->field[i][0] + 3, c->field[i][6]) == 0);
    csv_free(c);

    REQUIRE(tu_run_descent("compare data/diabetes.csv --optimizers sgd --lr 1e30,0.01 "
                           "--batch full --epochs 20 --threads 1 --quiet") == 0);
    char *out = tu_stdout_text();
    table_row bad, good;
    REQUIRE(find_row(out, "lr 1e30", &bad) && find_row(out, "lr 0.01", &good));
    CHECK_EQ_INT(bad.rank, 2);
    CHECK_EQ_INT(good.rank, 1);
    CHECK(strcmp(bad.stop, "diverged") == 0);
    free(out);
}

/* With --lr auto, each run trains at the rate lr-find suggests for its optimizer. */
TEST(compare_lr_auto_uses_each_suggested_rate)
{
    REQUIRE(tu_run_descent("compare data/breast_cancer.csv --optimizers sgd,adam --lr auto "
                           "--epochs 2 --threads 1") == 0);
    char *out = tu_stdout_text(), *err = tu_stderr_text();
    table_row rows[2];
    REQUIRE(find_row(out, "sgd", &rows[0]) && find_row(out, "adam", &rows[1]));

    /* One "lr-find: suggested learning rate X" line per run, in the order of the runs. */
    const char *at = err;
    for (int r = 0; r < 2; r++) {
        at = strstr(at, "lr-find: suggested learning rate ");
        REQUIRE(at);
        at += strlen("lr-find: suggested learning rate ");
        CHECK_REL(strtod(at, NULL), strtod(rows[r].lr, NULL), 1e-3, 0);
    }
    free(out);
    free(err);
}

/* The chart of one training run (train --plot), with validation and a schedule. */
TEST(compare_train_plot_renders)
{
    char plot[512], model[512], args[2048];

    snprintf(args, sizeof args, "train data/iris.csv -o %s --plot %s --epochs 12 --val 0.2 "
             "--schedule cosine --quiet --threads 1", tu_tmp_path(model, sizeof model, "m.dsc"),
             tu_tmp_path(plot, sizeof plot, "train.svg"));
    REQUIRE(tu_run_descent(args) == 0);
    CHECK_SVG(plot, 200);
}

/* Without validation, a race's plot is one chart of the training losses. */
TEST(compare_plot_without_validation_is_one_chart)
{
    char plot[512], args[2048];

    snprintf(args, sizeof args, "compare data/iris.csv --optimizers sgd,adam --epochs 6 "
             "--plot %s --quiet --threads 1", tu_tmp_path(plot, sizeof plot, "c.svg"));
    REQUIRE(tu_run_descent(args) == 0);
    CHECK_SVG(plot, 200);
    char *svg = tu_read_text(plot);
    CHECK(strstr(svg, "height=\"500\"") != NULL);
    CHECK(strstr(svg, "validation") == NULL);
    free(svg);
}

/* Run a command expected to fail with status 2 and exactly the line want on stderr. */
static void expect_usage_error(const char *args, const char *want, const char *file, int line)
{
    int status = tu_run_descent(args);
    char *err = tu_stderr_text(), *out = tu_stdout_text();
    char want_line[1024];

    snprintf(want_line, sizeof want_line, "descent: %s\n", want);
    if (status != 2 || strcmp(err, want_line) != 0 || *out)
        test_report(file, line, "descent %s: status %d, stderr \"%s\", stdout \"%s\"; expected "
                    "status 2 and \"%s\"", args, status, err, out, want_line);
    free(err);
    free(out);
}

#define EXPECT_USAGE(args, want) expect_usage_error(args, want, __FILE__, __LINE__)

TEST(compare_rejects_two_races_at_once)
{
    EXPECT_USAGE("compare data/iris.csv --optimizers sgd,adam --batch 1,32",
                 "compare: --optimizers and --batch both list several values; race one at a "
                 "time");
    EXPECT_USAGE("compare data/iris.csv --lr 0.1,0.2 --batch 1,32",
                 "compare: --lr and --batch both list several values; race one at a time");
    EXPECT_USAGE("compare data/iris.csv --optimizers sgd,adam,rmsprop --lr 0.1,0.2",
                 "--lr: 2 rates for 3 optimizers; give one rate, or one per optimizer");
    EXPECT_USAGE("compare data/iris.csv --optimizers sgd,,adam",
                 "--optimizers: expected a comma list of 1 to 32 values, got 'sgd,,adam'");
    EXPECT_USAGE("compare data/iris.csv --optimizers sgd,adamm",
                 "--optimizers: expected names among sgd, momentum, nesterov, adagrad, rmsprop, "
                 "adadelta, adam, adamw, adamax and nadam, got 'adamm'");
    EXPECT_USAGE("compare data/iris.csv --lr 0.1,abc",
                 "--lr: expected a number >= 0, got 'abc'");
    EXPECT_USAGE("compare data/iris.csv --batch 1,0",
                 "--batch: expected an integer in [1, 1000000000] or 'full', got '0'");
    EXPECT_USAGE("compare data/iris.csv -o m.dsc",
                 "-o: unknown option (see 'descent compare --help')");
    EXPECT_USAGE("compare", "compare: expected a data file (usage: descent compare DATA "
                 "[--optimizers A,B,..] [--lr X,..] [--batch N,..] [options])");
}
