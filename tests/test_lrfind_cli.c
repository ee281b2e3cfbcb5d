/*
 * test_lrfind_cli.c - `descent lr-find` and `descent train --lr auto`: the table and the
 * suggested rate agree with each other, the plot is valid SVG that renders, the suggested
 * rate on digits trains at least as fast as the default one, and --lr auto trains exactly
 * as --lr with the printed rate.
 *
 * The runs use --threads 1: results do not depend on the count, and a busy machine makes
 * more threads slower.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "test_png_util.h"

#include <stdlib.h>
#include <string.h>

#define DIGITS_MLP "data/digits.csv --model mlp --loss softmax --hidden 64 --threads 1"

/* The rate of the last line "suggested learning rate: X" of lr-find's output; 0 if none. */
static double suggested_rate(const char *out)
{
    static const char key[] = "suggested learning rate: ";
    const char *at = strstr(out, key);

    if (!at || strchr(at, '\n') != at + strlen(at) - 1)
        return 0.0;
    return strtod(at + strlen(key), NULL);
}

/*
 * Train on digits with options for a number of epochs (never stopping early) and return
 * the training loss of each epoch in losses[0..epochs); 0 on success.
 */
static int train_losses(const char *options, int epochs, double *losses)
{
    char args[2048], model[512], log[512];

    snprintf(args, sizeof args, "train " DIGITS_MLP " -o %s --log %s --epochs %d --tol -1 "
             "--quiet %s", tu_tmp_path(model, sizeof model, "m.dsc"),
             tu_tmp_path(log, sizeof log, "log.csv"), epochs, options);
    if (tu_run_descent(args) != 0)
        return -1;
    char *text = tu_read_text(log), *lines[256];
    size_t n = tu_split_lines(text, lines, 256);
    for (size_t i = 1; i < n && i <= (size_t)epochs; i++) {
        const char *p = lines[i];
        for (int comma = 0; comma < 2 && p; comma++)
            p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        losses[i - 1] = p ? strtod(p, NULL) : NAN;
    }
    free(text);
    return n == (size_t)epochs + 1 ? 0 : -1;
}

/* The first epoch (from 1) whose training loss is at most target; epochs + 1 if none. */
static int epochs_to_reach(const double *losses, int epochs, double target)
{
    for (int e = 0; e < epochs; e++) {
        if (losses[e] <= target)
            return e + 1;
    }
    return epochs + 1;
}

/* The lowest of losses[0..epochs). */
static double lowest_loss(const double *losses, int epochs)
{
    double low = INFINITY;
    for (int e = 0; e < epochs; e++)
        low = losses[e] < low ? losses[e] : low;
    return low;
}

TEST(lrfind_cli_prints_rates_and_the_suggestion)
{
    char args[1024], plot[512];

    snprintf(args, sizeof args, "lr-find " DIGITS_MLP " --plot %s",
             tu_tmp_path(plot, sizeof plot, "lr.svg"));
    REQUIRE(tu_run_descent(args) == 0);
    char *out = tu_stdout_text(), *copy = tu_stdout_text(), *lines[64];
    size_t n = tu_split_lines(copy, lines, 64);
    REQUIRE(n >= 4);

    /* A header, rows of (rate, smoothed loss) with rising rates, the suggestion last. */
    CHECK(strstr(lines[0], "lr") != NULL && strstr(lines[0], "smoothed_loss") != NULL);
    double previous = 0.0, lowest_rate = 0.0, lowest_loss = INFINITY, marked_loss = NAN;
    size_t marked = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char *end;
        double rate = strtod(lines[i], &end), loss = strtod(end, &end);
        CHECK(rate > previous);
        CHECK(isfinite(loss) && loss > 0.0);
        previous = rate;
        if (loss < lowest_loss)
            lowest_loss = loss;
        if (strstr(end, "lowest")) {
            marked++;
            lowest_rate = rate;
            marked_loss = loss;
        }
    }
    CHECK(n - 2 <= 25);
    CHECK_EQ_INT(marked, 1);
    CHECK(marked_loss == lowest_loss);

    /* The suggestion is a tenth of the rate at the lowest loss, to 2 significant digits. */
    double suggested = suggested_rate(out);
    CHECK(strncmp(lines[n - 1], "suggested learning rate: ", 25) == 0);
    CHECK_REL(suggested, lowest_rate / 10.0, 0.05, 0);
    CHECK_SVG(plot, 300);
    char *svg = tu_read_text(plot);
    CHECK(strstr(svg, "log10 learning rate") != NULL);
    free(svg);
    free(out);
    free(copy);
}

/*
 * The suggested rate trains an MLP on digits at least as fast as Adam's default rate: a
 * lowest training loss over 10 epochs no higher, and the loss 0.2 reached in no more epochs.
 * (Not the loss of the 10th epoch alone: at the suggested rate it jumps from epoch to epoch
 * by amounts that change with the last bits of the products, OpenBLAS's or the built-in.)
 */
TEST(lrfind_cli_suggested_rate_trains_at_least_as_fast_as_the_default)
{
    REQUIRE(tu_run_descent("lr-find " DIGITS_MLP) == 0);
    char *out = tu_stdout_text();
    double rate = suggested_rate(out);
    free(out);
    REQUIRE(rate > 0.0);

    char options[128];
    double found[10], fixed[10];
    snprintf(options, sizeof options, "--lr %.17g", rate);
    REQUIRE(train_losses(options, 10, found) == 0);
    REQUIRE(train_losses("", 10, fixed) == 0);
    CHECK(lowest_loss(found, 10) <= lowest_loss(fixed, 10));
    CHECK(epochs_to_reach(found, 10, 0.2) <= epochs_to_reach(fixed, 10, 0.2));
}

/* train --lr auto names the rate on stderr, records it, and trains exactly as --lr RATE. */
TEST(lrfind_cli_train_lr_auto_uses_the_suggested_rate)
{
    char args[2048], model[512], log_auto[512], log_rate[512];

    REQUIRE(tu_run_descent("lr-find " DIGITS_MLP " --batch 64") == 0);
    char *out = tu_stdout_text();
    double rate = suggested_rate(out);
    free(out);
    REQUIRE(rate > 0.0);

    tu_tmp_path(model, sizeof model, "m.dsc");
    snprintf(args, sizeof args, "train " DIGITS_MLP " --batch 64 -o %s --epochs 3 --quiet "
             "--lr auto --log %s", model, tu_tmp_path(log_auto, sizeof log_auto, "auto.csv"));
    REQUIRE(tu_run_descent(args) == 0);
    char *err = tu_stderr_text(), want[128];
    snprintf(want, sizeof want, "lr-find: suggested learning rate %g\n", rate);
    CHECK(strcmp(err, want) == 0);
    free(err);

    snprintf(args, sizeof args, "inspect %s", model);
    REQUIRE(tu_run_descent(args) == 0);
    char *json = tu_stdout_text();
    const char *lr = strstr(json, "\\u000alr="); /* the settings' line break, escaped */
    REQUIRE(lr);
    CHECK(strtod(lr + 10, NULL) == rate);
    free(json);

    snprintf(args, sizeof args, "train " DIGITS_MLP " --batch 64 -o %s --epochs 3 --quiet "
             "--lr %g --log %s", model, rate, tu_tmp_path(log_rate, sizeof log_rate, "r.csv"));
    REQUIRE(tu_run_descent(args) == 0);

    /* The same lines, but for the time in the last column. */
    char *a = tu_read_text(log_auto), *b = tu_read_text(log_rate), *la[16], *lb[16];
    size_t na = tu_split_lines(a, la, 16), nb = tu_split_lines(b, lb, 16);
    CHECK_EQ_INT(na, 4);
    CHECK_EQ_INT(nb, na);
    for (size_t i = 0; i < na && i < nb; i++) {
        char *ta = strrchr(la[i], ','), *tb = strrchr(lb[i], ',');
        REQUIRE(ta && tb);
        *ta = *tb = '\0';
        if (strcmp(la[i], lb[i]) != 0)
            test_report(__FILE__, __LINE__, "--lr auto: %s; --lr %g: %s", la[i], rate, lb[i]);
    }
    free(a);
    free(b);
}

TEST(lrfind_cli_usage_errors_are_one_line)
{
    static const char *const cases[][2] = {
        {"lr-find data/iris.csv --max 1e-8", "descent: --max: must be above --min (1e-07), "
                                             "got 1e-08\n"},
        {"lr-find data/iris.csv --steps 1", "descent: --steps: expected an integer in [2, "
                                            "1000000], got '1'\n"},
        {"lr-find data/iris.csv --lr 0.1", "descent: --lr: unknown option (see 'descent "
                                           "lr-find --help')\n"},
        {"lr-find", "descent: lr-find: expected a data file (usage: descent lr-find DATA "
                    "[--plot FILE.svg] [options])\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = tu_run_descent(cases[i][0]);
        char *err = tu_stderr_text(), *out = tu_stdout_text();
        if (status != 2 || strcmp(err, cases[i][1]) != 0 || *out)
            test_report(__FILE__, __LINE__, "descent %s: status %d, stderr \"%s\"", cases[i][0],
                        status, err);
        free(err);
        free(out);
    }
}
