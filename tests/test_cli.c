/*
 * test_cli.c - the `descent` command, run as a separate program: usage errors and their exact
 * lines and exit statuses, no output file after a failure, train -> predict -> eval round
 * trips, and held-out quality on the bundled data sets, checked against references computed
 * here (the held-out rows are drawn with dsc_split_rows, as the command draws them).
 *
 * The binary is $DSC_BUILD/descent (DSC_BUILD defaults to "build"); paths are relative to
 * the repository root, where the suite runs.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Running the command                                                                        */
/* ------------------------------------------------------------------------------------------ */

static const char *descent_binary(void)
{
    static char path[512];
    const char *build = getenv("DSC_BUILD");

    snprintf(path, sizeof path, "%s/descent", build && *build ? build : "build");
    return path;
}

/* A path inside the test's folder. */
static const char *tmp_file(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

/*
 * Run "descent ARGS" through the shell with standard input from stdin_path (/dev/null when
 * NULL), standard output and error into the files "stdout" and "stderr" of the test's
 * folder. Returns the exit status, or -1 when the command did not exit normally.
 */
static int run_descent(const char *args, const char *stdin_path)
{
    char command[8192];

    snprintf(command, sizeof command, "%s %s <%s >%s/stdout 2>%s/stderr", descent_binary(),
             args, stdin_path ? stdin_path : "/dev/null", test_tmpdir(), test_tmpdir());
    fflush(NULL);
    int status = system(command);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The whole of a file as a string (empty when it cannot be read); free it. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);

    if (!text)
        abort();
    text[0] = '\0';
    if (!f)
        return text;
    size_t got;
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            text = realloc(text, cap);
            if (!text)
                abort();
        }
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

static char *out_text(void)
{
    char path[512];
    return read_text(tmp_file(path, sizeof path, "stdout"));
}

static char *err_text(void)
{
    char path[512];
    return read_text(tmp_file(path, sizeof path, "stderr"));
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Number of entries of the test's folder other than stdout and stderr (temporaries too). */
static int stray_files(void)
{
    DIR *dir = opendir(test_tmpdir());
    int count = 0;
    struct dirent *e;

    if (!dir)
        return -1;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "stdout") &&
            strcmp(e->d_name, "stderr"))
            count++;
    }
    closedir(dir);
    return count;
}

/* Compare a text with the expected one, showing both when they differ. */
#define CHECK_TEXT(got, want)                                                                 \
    do {                                                                                      \
        const char *check_got_ = (got), *check_want_ = (want);                                \
        if (strcmp(check_got_, check_want_) != 0)                                             \
            test_report(__FILE__, __LINE__, "got \"%s\", expected \"%s\"", check_got_,        \
                        check_want_);                                                         \
    } while (0)

/* Run a command expected to fail with status want_status and exactly the line want_error. */
static void expect_error(const char *args, int want_status, const char *want_error,
                         const char *file, int line)
{
    int status = run_descent(args, NULL);
    char *err = err_text(), *out = out_text();
    char want[1024];

    snprintf(want, sizeof want, "%s\n", want_error);
    if (status != want_status)
        test_report(file, line, "descent %s: exit status %d, expected %d", args, status,
                    want_status);
    if (strcmp(err, want) != 0)
        test_report(file, line, "descent %s: stderr \"%s\", expected \"%s\"", args, err, want);
    if (out[0] != '\0')
        test_report(file, line, "descent %s: unexpected stdout \"%s\"", args, out);
    free(err);
    free(out);
}

#define EXPECT_ERROR(args, status, line) expect_error(args, status, line, __FILE__, __LINE__)

/* ------------------------------------------------------------------------------------------ */
/* The bundled data sets, read here independently of the library                              */
/* ------------------------------------------------------------------------------------------ */

/* A CSV with a header, numeric features and the target last (the form of data/). */
typedef struct dataset {
    char *text;         /* the file, cut into lines in place */
    char *header;
    char **lines;       /* each data line as in the file */
    size_t n_rows, n_features;
    double *x;          /* n_rows * n_features */
    char **target;      /* the last field of each line */
    double *y;          /* the target as a number (regression) */
    int32_t *label;     /* class index: numeric order for numbers, else first appearance */
    size_t n_classes;
} dataset;

static void dataset_free(dataset *d)
{
    free(d->text);
    free(d->lines);
    free(d->x);
    free(d->target);
    free(d->y);
    free(d->label);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Number the classes as the reader does: numerically when every label is a number. */
static void number_classes(dataset *d)
{
    char **names = malloc(d->n_rows * sizeof *names);
    int all_numeric = 1;

    d->label = malloc(d->n_rows * sizeof *d->label);
    if (!names || !d->label)
        abort();
    for (size_t i = 0; i < d->n_rows; i++) {
        char *end;
        strtod(d->target[i], &end);
        all_numeric &= end != d->target[i] && *end == '\0';
    }
    if (all_numeric) {
        double *sorted = malloc(d->n_rows * sizeof *sorted);
        size_t n = 0;
        if (!sorted)
            abort();
        memcpy(sorted, d->y, d->n_rows * sizeof *sorted);
        qsort(sorted, d->n_rows, sizeof *sorted, compare_double);
        for (size_t i = 0; i < d->n_rows; i++) {
            if (n == 0 || sorted[i] != sorted[n - 1])
                sorted[n++] = sorted[i];
        }
        d->n_classes = n;
        for (size_t i = 0; i < d->n_rows; i++) {
            for (size_t c = 0; c < n; c++) {
                if (sorted[c] == d->y[i])
                    d->label[i] = (int32_t)c;
            }
        }
        free(sorted);
    } else {
        d->n_classes = 0;
        for (size_t i = 0; i < d->n_rows; i++) {
            size_t c = 0;
            while (c < d->n_classes && strcmp(names[c], d->target[i]) != 0)
                c++;
            if (c == d->n_classes)
                names[d->n_classes++] = d->target[i];
            d->label[i] = (int32_t)c;
        }
    }
    free(names);
}

static int dataset_read(const char *path, dataset *d)
{
    memset(d, 0, sizeof *d);
    d->text = read_text(path);
    size_t n_lines = 0;
    for (char *c = d->text; *c; c++)
        n_lines += *c == '\n';
    if (n_lines < 2)
        return -1;

    d->lines = malloc(n_lines * sizeof *d->lines);
    d->target = malloc(n_lines * sizeof *d->target);
    d->y = malloc(n_lines * sizeof *d->y);
    if (!d->lines || !d->target || !d->y)
        abort();
    d->header = strtok(d->text, "\n");
    for (char *c = d->header; *c; c++)
        d->n_features += *c == ',';
    for (char *line; (line = strtok(NULL, "\n")) != NULL;)
        d->lines[d->n_rows++] = line;

    d->x = malloc(d->n_rows * d->n_features * sizeof *d->x);
    if (!d->x)
        abort();
    for (size_t i = 0; i < d->n_rows; i++) {
        char *p = d->lines[i];
        for (size_t j = 0; j < d->n_features; j++) {
            d->x[i * d->n_features + j] = strtod(p, &p);
            if (*p != ',')
                return -1;
            p++;
        }
        d->target[i] = p;
        d->y[i] = strtod(p, NULL);
    }
    number_classes(d);
    return 0;
}

/* Write the header and rows[0..n) of d, as in the file. */
static void dataset_write_rows(const dataset *d, const uint32_t *rows, size_t n,
                               const char *path)
{
    FILE *f = fopen(path, "w");

    if (!f)
        abort();
    fprintf(f, "%s\n", d->header);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", d->lines[rows[i]]);
    fclose(f);
}

/* The held-out split that --val fraction --seed seed draws (stratified for classifiers). */
static void split(const dataset *d, int classifier, double fraction, uint64_t seed,
                  uint32_t *train_rows, size_t *n_train, uint32_t *val_rows, size_t *n_val)
{
    int rc = dsc_split_rows(d->n_rows, classifier ? d->label : NULL,
                            classifier ? d->n_classes : 0, fraction, seed, train_rows, n_train,
                            val_rows, n_val);
    if (rc != 0)
        abort();
}

/* The lines of a text, cut in place; returns the count. */
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;

    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n"))
        lines[n++] = line;
    return n;
}

/* R^2 of predictions p against targets y over n rows. */
static double r_squared(const double *y, const double *p, size_t n)
{
    double mean = 0.0, res = 0.0, tot = 0.0;

    for (size_t i = 0; i < n; i++)
        mean += y[i] / (double)n;
    for (size_t i = 0; i < n; i++) {
        res += (y[i] - p[i]) * (y[i] - p[i]);
        tot += (y[i] - mean) * (y[i] - mean);
    }
    return 1.0 - res / tot;
}

/*
 * Train on a bundled set with --val 0.2 and the given options, then predict the held-out
 * rows (drawn here with dsc_split_rows) and score the predictions here: accuracy for a
 * classifier, R^2 otherwise. *reported is the held-out score the summary line printed.
 * With ols_r2 not NULL, also the held-out R^2 of the least-squares fit on the training rows.
 */
static int heldout_score(const char *data_path, int classifier, uint64_t seed,
                         const char *options, double *score, double *reported, double *ols_r2)
{
    dataset d;
    char model[512], heldout[512], pred[512], args[4096];

    if (dataset_read(data_path, &d) != 0)
        return -1;
    uint32_t *train_rows = malloc(d.n_rows * sizeof *train_rows);
    uint32_t *val_rows = malloc(d.n_rows * sizeof *val_rows);
    char **lines = malloc(d.n_rows * sizeof *lines);
    double *y = malloc(d.n_rows * sizeof *y), *p = malloc(d.n_rows * sizeof *p);
    size_t n_train, n_val;
    int result = -1;
    if (!train_rows || !val_rows || !lines || !y || !p)
        abort();
    split(&d, classifier, 0.2, seed, train_rows, &n_train, val_rows, &n_val);
    dataset_write_rows(&d, val_rows, n_val, tmp_file(heldout, sizeof heldout, "heldout.csv"));

    snprintf(args, sizeof args, "train %s -o %s --val 0.2 --seed %llu --quiet %s", data_path,
             tmp_file(model, sizeof model, "model.dsc"), (unsigned long long)seed, options);
    int status = run_descent(args, NULL);
    char *summary = out_text();
    char *metric = strstr(summary, classifier ? "held-out accuracy " : "held-out R^2 ");
    if (status != 0 || !metric) {
        char *err = err_text();
        fprintf(stderr, "    descent %s: status %d: %s%s", args, status, summary, err);
        free(err);
        goto done;
    }
    *reported = strtod(strchr(metric + 9, ' ') + 1, NULL);

    snprintf(args, sizeof args, "predict %s %s -o %s", model, heldout,
             tmp_file(pred, sizeof pred, "pred.csv"));
    if (run_descent(args, NULL) != 0)
        goto done;
    char *predictions = read_text(pred);
    size_t n_lines = split_lines(predictions, lines, d.n_rows);
    if (n_lines == n_val) {
        size_t correct = 0;
        for (size_t i = 0; i < n_val; i++) {
            correct += strcmp(lines[i], d.target[val_rows[i]]) == 0;
            y[i] = d.y[val_rows[i]];
            p[i] = strtod(lines[i], NULL);
        }
        *score = classifier ? (double)correct / (double)n_val : r_squared(y, p, n_val);
        result = 0;
    }
    free(predictions);

    /* The least-squares reference: normal equations on [1, x] over the training rows. */
    if (ols_r2 && result == 0) {
        size_t k = d.n_features + 1;
        double *a = calloc(k * (k + 1), sizeof *a); /* the augmented system [X'X | X'y] */
        if (!a)
            abort();
        for (size_t r = 0; r < n_train; r++) {
            const double *x = d.x + (size_t)train_rows[r] * d.n_features;
            for (size_t i = 0; i < k; i++) {
                double xi = i == 0 ? 1.0 : x[i - 1];
                for (size_t j = 0; j < k; j++)
                    a[i * (k + 1) + j] += xi * (j == 0 ? 1.0 : x[j - 1]);
                a[i * (k + 1) + k] += xi * d.y[train_rows[r]];
            }
        }
        /* Gaussian elimination with partial pivoting, then back substitution. */
        for (size_t c = 0; c < k; c++) {
            size_t pivot = c;
            for (size_t r = c + 1; r < k; r++) {
                if (fabs(a[r * (k + 1) + c]) > fabs(a[pivot * (k + 1) + c]))
                    pivot = r;
            }
            for (size_t j = 0; j <= k; j++) {
                double t = a[c * (k + 1) + j];
                a[c * (k + 1) + j] = a[pivot * (k + 1) + j];
                a[pivot * (k + 1) + j] = t;
            }
            for (size_t r = c + 1; r < k; r++) {
                double f = a[r * (k + 1) + c] / a[c * (k + 1) + c];
                for (size_t j = c; j <= k; j++)
                    a[r * (k + 1) + j] -= f * a[c * (k + 1) + j];
            }
        }
        double *beta = calloc(k, sizeof *beta);
        if (!beta)
            abort();
        for (size_t c = k; c-- > 0;) {
            double s = a[c * (k + 1) + k];
            for (size_t j = c + 1; j < k; j++)
                s -= a[c * (k + 1) + j] * beta[j];
            beta[c] = s / a[c * (k + 1) + c];
        }
        for (size_t i = 0; i < n_val; i++) {
            const double *x = d.x + (size_t)val_rows[i] * d.n_features;
            p[i] = beta[0];
            for (size_t j = 1; j < k; j++)
                p[i] += beta[j] * x[j - 1];
        }
        *ols_r2 = r_squared(y, p, n_val);
        free(beta);
        free(a);
    }

done:
    free(summary);
    free(train_rows);
    free(val_rows);
    free(lines);
    free(y);
    free(p);
    dataset_free(&d);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Usage and errors                                                                           */
/* ------------------------------------------------------------------------------------------ */

TEST(cli_version_names_the_build_features)
{
    char want[256];

    REQUIRE(access(descent_binary(), X_OK) == 0);
    CHECK_EQ_INT(run_descent("--version", NULL), 0);
    snprintf(want, sizeof want, "descent %s (features: %s)\n", DSC_VERSION,
             dsc_build_features());
    char *out = out_text();
    CHECK_TEXT(out, want);
    free(out);
}

TEST(cli_train_help_shows_every_option_with_its_default)
{
    static const char *const options[] = {
        "--target COL", "--format FMT", "--model KIND", "--hidden", "--activation NAME",
        "--loss NAME", "--optimizer NAME", "--lr X", "--momentum X", "--beta1 X", "--beta2 X",
        "--eps X", "--rho X", "--weight-decay X", "--l1 X", "--l2 X", "--batch N|full",
        "--epochs N", "--tol X", "--patience N", "--val FRACTION", "--schedule SPEC",
        "--warmup EPOCHS", "--clip-norm X", "--class-weight", "--seed N", "--init NAME",
        "--no-standardize", "--no-shuffle", "--missing POLICY", "--threads N", "--quiet",
        "--log FILE.csv", "-o, --output MODEL",
    };

    CHECK_EQ_INT(run_descent("train --help", NULL), 0);
    char *out = out_text();
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (!strstr(out, options[i]))
            test_report(__FILE__, __LINE__, "train --help lacks %s", options[i]);
    }
    /* The defaults stated in the issue, each on its option's line. */
    static const char *const defaults[][2] = {
        {"--epochs N", "(default: 200)"}, {"--batch N|full", "(default: 32)"},
        {"--optimizer NAME", "(default: adam)"}, {"--tol X", "(default: 1e-4)"},
        {"--patience N", "(default: 5)"}, {"--seed N", "(default: 0)"},
        {"--val FRACTION", "(default: 0)"}, {"--missing POLICY", "(default: error)"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        const char *at = strstr(out, defaults[i][0]);
        const char *end = at ? strstr(at, "\n  -") : NULL;
        const char *found = at ? strstr(at, defaults[i][1]) : NULL;
        if (!found || (end && found > end))
            test_report(__FILE__, __LINE__, "%s does not show %s", defaults[i][0],
                        defaults[i][1]);
    }
    free(out);
}

TEST(cli_usage_errors_are_one_line_with_status_2)
{
    char model[512], args[1024];

    tmp_file(model, sizeof model, "m.dsc");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --bogus", model);
    EXPECT_ERROR(args, 2, "descent: --bogus: unknown option (see 'descent train --help')");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --lr abc", model);
    EXPECT_ERROR(args, 2, "descent: --lr: expected a number >= 0, got 'abc'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --lr 1e999", model);
    EXPECT_ERROR(args, 2, "descent: --lr: expected a number >= 0, got '1e999'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --lr=0.1x", model);
    EXPECT_ERROR(args, 2, "descent: --lr: expected a number >= 0, got '0.1x'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --epochs 0", model);
    EXPECT_ERROR(args, 2, "descent: --epochs: expected an integer in [1, 100000000], got '0'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --val 1", model);
    EXPECT_ERROR(args, 2, "descent: --val: expected a number in [0, 1), got '1'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --batch half", model);
    EXPECT_ERROR(args, 2,
                 "descent: --batch: expected an integer in [1, 1000000000] or 'full', "
                 "got 'half'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --schedule step:x", model);
    EXPECT_ERROR(args, 2, "descent: --schedule: expected step:STEP[:GAMMA], got 'step:x'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --optimizer adamm", model);
    EXPECT_ERROR(args, 2,
                 "descent: --optimizer: expected sgd, momentum, nesterov, adagrad, rmsprop, "
                 "adadelta, adam, adamw, adamax or nadam, got 'adamm'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --threads 0", model);
    EXPECT_ERROR(args, 2, "descent: --threads: expected an integer in [1, 4096], got '0'");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --optimizer adadelta --rho 1", model);
    EXPECT_ERROR(args, 2, "descent: --rho: must be in [0, 1), got 1");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --lr", model);
    EXPECT_ERROR(args, 2, "descent: --lr: missing value (expected X)");
    snprintf(args, sizeof args, "train data/iris.csv -o %s --quiet=yes", model);
    EXPECT_ERROR(args, 2, "descent: --quiet: takes no value, got 'yes'");
    EXPECT_ERROR("train data/iris.csv", 2,
                 "descent: -o: missing; give the model file to write "
                 "(usage: descent train DATA -o MODEL [options])");
    EXPECT_ERROR("frobnicate", 2, "descent: frobnicate: unknown command (see 'descent --help')");
    CHECK(!file_exists(model));
    CHECK_EQ_INT(stray_files(), 0);
}

TEST(cli_missing_data_file_is_an_input_error)
{
    char model[512], args[1024];

    snprintf(args, sizeof args, "train %s/absent.csv -o %s", test_tmpdir(),
             tmp_file(model, sizeof model, "m.dsc"));
    int status = run_descent(args, NULL);
    char *err = err_text(), want[1024];
    snprintf(want, sizeof want, "descent: %s/absent.csv: cannot open: No such file or directory\n",
             test_tmpdir());
    CHECK_EQ_INT(status, 2);
    CHECK_TEXT(err, want);
    CHECK(!file_exists(model));
    CHECK_EQ_INT(stray_files(), 0);
    free(err);
}

TEST(cli_ragged_csv_names_file_line_and_column)
{
    char model[512], args[1024];

    snprintf(args, sizeof args, "train tests/data/cli/ragged.csv -o %s",
             tmp_file(model, sizeof model, "m.dsc"));
    EXPECT_ERROR(args, 2,
                 "descent: tests/data/cli/ragged.csv:3:4: line 3 has 2 fields, expected 3");
    CHECK(!file_exists(model));
    CHECK_EQ_INT(stray_files(), 0);
}

TEST(cli_a_failed_training_run_leaves_no_model_or_log)
{
    char model[512], log[512], args[2048];

    /* Plain SGD at an absurd rate diverges even after the trainer's back-offs. */
    snprintf(args, sizeof args,
             "train data/diabetes.csv -o %s --log %s --optimizer sgd --lr 1e30 --batch full "
             "--quiet", tmp_file(model, sizeof model, "m.dsc"), tmp_file(log, sizeof log,
                                                                         "log.csv"));
    int status = run_descent(args, NULL);
    char *err = err_text();
    CHECK_EQ_INT(status, 1);
    CHECK(strncmp(err, "descent: ", 9) == 0);
    CHECK(strchr(err, '\n') == err + strlen(err) - 1); /* exactly one line */
    CHECK(!file_exists(model));
    CHECK(!file_exists(log));
    CHECK_EQ_INT(stray_files(), 0);
    free(err);
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Train a quick model on path into the test's m.dsc; 0 on success. */
static int train_quick(const char *path, const char *options)
{
    char model[512], args[2048];

    snprintf(args, sizeof args, "train %s -o %s --quiet %s", path,
             tmp_file(model, sizeof model, "m.dsc"), options);
    int status = run_descent(args, NULL);
    if (status != 0) {
        char *err = err_text();
        fprintf(stderr, "    descent %s: status %d: %s", args, status, err);
        free(err);
    }
    return status;
}

TEST(cli_eval_accuracy_matches_the_predicted_labels)
{
    char model[512], pred[512], args[2048];
    dataset d;

    REQUIRE(dataset_read("data/iris.csv", &d) == 0);
    REQUIRE(train_quick("data/iris.csv", "--epochs 30") == 0);
    tmp_file(model, sizeof model, "m.dsc");

    /* predict writes one class name per row. */
    snprintf(args, sizeof args, "predict %s data/iris.csv -o %s", model,
             tmp_file(pred, sizeof pred, "pred.csv"));
    REQUIRE(run_descent(args, NULL) == 0);
    char *predictions = read_text(pred);
    char **lines = malloc((d.n_rows + 1) * sizeof *lines);
    REQUIRE(lines != NULL);
    size_t n = split_lines(predictions, lines, d.n_rows + 1);
    CHECK_EQ_INT(n, d.n_rows);
    size_t correct = 0;
    for (size_t i = 0; i < n && i < d.n_rows; i++) {
        CHECK(!strcmp(lines[i], "setosa") || !strcmp(lines[i], "versicolor") ||
              !strcmp(lines[i], "virginica"));
        correct += strcmp(lines[i], d.target[i]) == 0;
    }

    /* eval's accuracy is the share of those labels that match the file's. */
    snprintf(args, sizeof args, "eval %s data/iris.csv", model);
    REQUIRE(run_descent(args, NULL) == 0);
    char *report = out_text();
    char *accuracy = strstr(report, "accuracy");
    REQUIRE(accuracy != NULL);
    CHECK_NEAR(strtod(accuracy + 8, NULL), (double)correct / (double)d.n_rows, 5e-7);
    CHECK(strstr(report, "log loss") != NULL);
    CHECK(strstr(report, "confusion matrix") != NULL);

    /* The confusion matrix counts every row once, with the correct ones on the diagonal. */
    char *matrix = strstr(report, "confusion matrix");
    size_t total = 0, diagonal = 0;
    static const char *const names[] = {"setosa", "versicolor", "virginica"};
    for (int t = 0; matrix && t < 3; t++) {
        char *row = strstr(matrix, "\n");
        for (int k = 0; k <= t && row; k++)
            row = strstr(row + 1, "\n");
        REQUIRE(row != NULL);
        row++;
        CHECK(strncmp(row, names[t], strlen(names[t])) == 0);
        char *p = row + strlen(names[t]);
        for (int c = 0; c < 3; c++) {
            long count = strtol(p, &p, 10);
            total += (size_t)count;
            if (c == t)
                diagonal += (size_t)count;
        }
    }
    CHECK_EQ_INT(total, d.n_rows);
    CHECK_EQ_INT(diagonal, correct);

    free(report);
    free(lines);
    free(predictions);
    dataset_free(&d);
}

TEST(cli_predict_writes_string_labels_back_and_proba_columns)
{
    char model[512], args[2048];
    static const char *const names[] = {"apple", "\"banana, ripe\"", "\"cherry \"\"sweet\"\"\""};

    REQUIRE(train_quick("tests/data/cli/fruit.csv", "--epochs 200 --lr 0.05") == 0);
    tmp_file(model, sizeof model, "m.dsc");

    /* Labels come back exactly as written in the CSV, quoted where they need it. */
    snprintf(args, sizeof args, "predict %s tests/data/cli/fruit.csv", model);
    REQUIRE(run_descent(args, NULL) == 0);
    char *labels = out_text();
    char *lines[64];
    size_t n = split_lines(labels, lines, 64);
    REQUIRE(n == 36);
    for (size_t i = 0; i < n; i++)
        CHECK(!strcmp(lines[i], names[0]) || !strcmp(lines[i], names[1]) ||
              !strcmp(lines[i], names[2]));
    CHECK_TEXT(lines[0], names[0]);
    CHECK_TEXT(lines[1], names[1]);
    CHECK_TEXT(lines[2], names[2]);

    /* --proba: a header of the class names, then probabilities that sum to 1 per row and
     * whose largest is the predicted class. */
    snprintf(args, sizeof args, "predict %s - --proba", model);
    REQUIRE(run_descent(args, "tests/data/cli/fruit.csv") == 0);
    char *proba = out_text();
    char *rows[64];
    size_t m = split_lines(proba, rows, 64);
    REQUIRE(m == 37);
    CHECK_TEXT(rows[0], "apple,\"banana, ripe\",\"cherry \"\"sweet\"\"\"");
    for (size_t i = 1; i < m && i <= n; i++) {
        char *p = rows[i];
        double v[3], sum = 0.0;
        int best = 0;
        for (int c = 0; c < 3; c++) {
            v[c] = strtod(p, &p);
            p += *p == ',';
            sum += v[c];
            CHECK(v[c] >= 0.0 && v[c] <= 1.0);
            if (v[c] > v[best])
                best = c;
        }
        CHECK(*p == '\0');
        CHECK_NEAR(sum, 1.0, 1e-5);
        CHECK_TEXT(lines[i - 1], names[best]);
    }
    free(proba);
    free(labels);
}

TEST(cli_predict_failure_leaves_no_output_file)
{
    char model[512], out[512], args[2048];

    REQUIRE(train_quick("data/iris.csv", "--epochs 5") == 0);
    tmp_file(model, sizeof model, "m.dsc");

    /* A file with other columns cannot be encoded for the model. */
    snprintf(args, sizeof args, "predict %s tests/data/cli/fruit.csv -o %s", model,
             tmp_file(out, sizeof out, "pred.csv"));
    int status = run_descent(args, NULL);
    char *err = err_text();
    CHECK_EQ_INT(status, 2);
    CHECK(strncmp(err, "descent: ", 9) == 0);
    CHECK(strchr(err, '\n') == err + strlen(err) - 1);
    CHECK(!file_exists(out));
    CHECK_EQ_INT(stray_files(), 1); /* only the model */
    free(err);

    /* --proba on a regression model is a usage error. */
    REQUIRE(train_quick("data/diabetes.csv", "--epochs 2") == 0);
    snprintf(args, sizeof args, "predict %s data/diabetes.csv --proba -o %s", model, out);
    char want[1024];
    snprintf(want, sizeof want,
             "descent: --proba: %s is a regression model; it gives no probabilities", model);
    EXPECT_ERROR(args, 2, want);
    CHECK(!file_exists(out));
}

TEST(cli_eval_regression_metrics_match_the_predictions)
{
    char model[512], args[2048];
    dataset d;

    REQUIRE(dataset_read("data/diabetes.csv", &d) == 0);
    REQUIRE(train_quick("data/diabetes.csv", "--optimizer adam --lr 1 --epochs 40") == 0);
    tmp_file(model, sizeof model, "m.dsc");

    snprintf(args, sizeof args, "predict %s data/diabetes.csv", model);
    REQUIRE(run_descent(args, NULL) == 0);
    char *text = out_text();
    char **lines = malloc(d.n_rows * sizeof *lines);
    double *p = malloc(d.n_rows * sizeof *p);
    REQUIRE(lines && p);
    REQUIRE(split_lines(text, lines, d.n_rows) == d.n_rows);
    double mse = 0.0, mae = 0.0;
    for (size_t i = 0; i < d.n_rows; i++) {
        p[i] = strtod(lines[i], NULL);
        mse += (d.y[i] - p[i]) * (d.y[i] - p[i]) / (double)d.n_rows;
        mae += fabs(d.y[i] - p[i]) / (double)d.n_rows;
    }

    snprintf(args, sizeof args, "eval %s data/diabetes.csv", model);
    REQUIRE(run_descent(args, NULL) == 0);
    char *report = out_text();
    char *at;
    REQUIRE((at = strstr(report, "\nmse")) != NULL);
    CHECK_REL(strtod(at + 4, NULL), mse, 1e-5, 1e-9);
    REQUIRE((at = strstr(report, "\nrmse")) != NULL);
    CHECK_REL(strtod(at + 5, NULL), sqrt(mse), 1e-5, 1e-9);
    REQUIRE((at = strstr(report, "\nmae")) != NULL);
    CHECK_REL(strtod(at + 4, NULL), mae, 1e-5, 1e-9);
    REQUIRE((at = strstr(report, "\nr2")) != NULL);
    CHECK_NEAR(strtod(at + 3, NULL), r_squared(d.y, p, d.n_rows), 2e-6);

    free(report);
    free(text);
    free(lines);
    free(p);
    dataset_free(&d);
}

TEST(cli_inspect_prints_json)
{
    char model[512], args[2048], json[512];

    REQUIRE(train_quick("data/iris.csv", "--epochs 3 --hidden 4") == 0);
    snprintf(args, sizeof args, "inspect %s --weights", tmp_file(model, sizeof model, "m.dsc"));
    REQUIRE(run_descent(args, NULL) == 0);
    char *out = out_text();
    size_t len = strlen(out);
    REQUIRE(len > 2);
    CHECK(out[0] == '{');
    CHECK(strstr(out, "setosa") != NULL);
    CHECK(strstr(out, "optimizer=adam") != NULL); /* the settings text is carried along */
    free(out);

    /* A strict JSON parser must accept it, when python3 is there to be one. */
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        snprintf(args, sizeof args, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "
                 "%s 2>/dev/null", tmp_file(json, sizeof json, "stdout"));
        CHECK_EQ_INT(system(args), 0);
    }
}

TEST(cli_log_has_a_header_and_a_line_per_epoch)
{
    char log[512], model[512], args[2048];

    snprintf(args, sizeof args, "train data/iris.csv -o %s --epochs 7 --tol -1 --val 0.2 "
             "--log %s", tmp_file(model, sizeof model, "m.dsc"),
             tmp_file(log, sizeof log, "log.csv"));
    REQUIRE(run_descent(args, NULL) == 0);
    char *text = read_text(log);
    char *lines[16];
    size_t n = split_lines(text, lines, 16);
    REQUIRE(n == 8);
    CHECK_TEXT(lines[0], "epoch,steps,train_loss,val_loss,val_metric,lr,seconds");
    for (size_t i = 1; i < n; i++) {
        char *p = lines[i];
        CHECK_EQ_INT(strtol(p, &p, 10), (long)i);
        int fields = 1;
        for (; *p; p++)
            fields += *p == ',';
        CHECK_EQ_INT(fields, 7);
    }

    /* One line per epoch on standard error too, and the summary on standard output. */
    char *err = err_text(), *out = out_text();
    size_t epoch_lines = 0;
    for (char *at = err; (at = strstr(at, "epoch ")) != NULL; at++)
        epoch_lines += at == err || at[-1] == '\n';
    CHECK_EQ_INT(epoch_lines, 7);
    CHECK(strncmp(out, "trained softmax on 120 rows, 4 features; held-out accuracy ", 59) == 0);
    free(out);
    free(err);
    free(text);
}

/* ------------------------------------------------------------------------------------------ */
/* Held-out quality on the bundled data                                                       */
/* ------------------------------------------------------------------------------------------ */

TEST(cli_breast_cancer_logistic_reaches_95_percent)
{
    double accuracy = 0.0, reported = -1.0;

    REQUIRE(heldout_score("data/breast_cancer.csv", 1, 1, "--model logistic", &accuracy,
                          &reported, NULL) == 0);
    CHECK(accuracy >= 0.95);
    CHECK_NEAR(reported, accuracy, 5e-5);
}

TEST(cli_iris_softmax_reaches_93_percent)
{
    double accuracy = 0.0, reported = -1.0;

    REQUIRE(heldout_score("data/iris.csv", 1, 1, "--model softmax --lr 0.05 --epochs 500 --tol -1",
                          &accuracy, &reported, NULL) == 0);
    CHECK(accuracy >= 0.93);
    CHECK_NEAR(reported, accuracy, 5e-5);
}

/* One thread: results do not depend on the count, and a busy machine makes more slower. */
TEST(cli_digits_mlp_reaches_97_percent)
{
    double accuracy = 0.0, reported = -1.0;

    REQUIRE(heldout_score("data/digits.csv", 1, 1,
                          "--model mlp --loss softmax --hidden 128 --epochs 60 --lr 0.001 "
                          "--batch 32 --threads 1", &accuracy, &reported, NULL) == 0);
    CHECK(accuracy >= 0.97);
    CHECK_NEAR(reported, accuracy, 5e-5);
}

TEST(cli_diabetes_linear_matches_least_squares)
{
    double r2 = 0.0, reported = -1.0, ols = 0.0;

    REQUIRE(heldout_score("data/diabetes.csv", 0, 1,
                          "--model linear --lr 1 --batch full --epochs 1000 --tol -1",
                          &r2, &reported, &ols) == 0);
    CHECK_NEAR(r2, ols, 0.01);
    CHECK_NEAR(reported, r2, 5e-5);
}
