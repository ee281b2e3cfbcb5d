/*
 * eval.c - `descent eval MODEL DATA`: the model's metrics on labelled data, as an aligned
 * plain-text table. Regression: MSE, RMSE, MAE and R^2. Classification: accuracy, log loss,
 * per-class precision, recall, F1 and support with their macro and weighted averages, and the
 * confusion matrix.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows evaluated per library call. */
#define CHUNK_ROWS 1024

/* Probabilities below this count as this in the log loss, as scikit-learn's log_loss does. */
#define LOG_LOSS_FLOOR 1e-15

/* Print MSE, RMSE, MAE and R^2 (averaged over the targets, as scikit-learn's r2_score). */
static int eval_regression(dsc_model *model, const dsc_data *data)
{
    size_t n_targets = dsc_model_n_logits(model);
    size_t n_rows = data->n_rows;
    float *pred = malloc(CHUNK_ROWS * n_targets * sizeof *pred);
    double *sum_y = calloc(n_targets, sizeof *sum_y);
    double *sum_sq_res = calloc(n_targets, sizeof *sum_sq_res);
    double *sum_sq_tot = calloc(n_targets, sizeof *sum_sq_tot);
    double abs_sum = 0.0, sq_sum = 0.0;
    int status = 0;

    if (!pred || !sum_y || !sum_sq_res || !sum_sq_tot) {
        cli_error("eval: out of memory");
        status = EXIT_FAILURE_RUN;
    }

    /* Means of the targets first, for the total sum of squares. */
    for (size_t i = 0; status == 0 && i < n_rows; i++) {
        for (size_t j = 0; j < n_targets; j++)
            sum_y[j] += data->y[i * n_targets + j];
    }
    for (size_t first = 0; status == 0 && first < n_rows; first += CHUNK_ROWS) {
        size_t n = n_rows - first < CHUNK_ROWS ? n_rows - first : CHUNK_ROWS;
        int rc = dsc_model_decision(model, data, first, n, pred);
        if (rc < 0) {
            status = cli_library_error(rc);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n_targets; j++) {
                double y = data->y[(first + i) * n_targets + j];
                double residual = y - (double)pred[i * n_targets + j];
                double deviation = y - sum_y[j] / (double)n_rows;
                abs_sum += fabs(residual);
                sq_sum += residual * residual;
                sum_sq_res[j] += residual * residual;
                sum_sq_tot[j] += deviation * deviation;
            }
        }
    }

    if (status == 0) {
        double r2 = 0.0;
        for (size_t j = 0; j < n_targets; j++) {
            if (sum_sq_tot[j] > 0.0)
                r2 += 1.0 - sum_sq_res[j] / sum_sq_tot[j];
            else
                r2 += sum_sq_res[j] == 0.0 ? 1.0 : 0.0;
        }
        double count = (double)n_rows * (double)n_targets;
        printf("rows      %zu\n", n_rows);
        if (n_targets > 1)
            printf("targets   %zu\n", n_targets);
        printf("mse       %.6g\n", sq_sum / count);
        printf("rmse      %.6g\n", sqrt(sq_sum / count));
        printf("mae       %.6g\n", abs_sum / count);
        printf("r2        %.6f\n", r2 / (double)n_targets);
    }
    free(pred);
    free(sum_y);
    free(sum_sq_res);
    free(sum_sq_tot);
    return status;
}

/* The width of the name column: the longest class name, and at least "weighted avg". */
static int name_width(const dsc_prep *prep, size_t n_classes)
{
    size_t width = strlen("weighted avg");

    for (size_t c = 0; c < n_classes; c++) {
        size_t len = strlen(dsc_prep_class_name(prep, c));
        if (len > width)
            width = len;
    }
    return (int)(width > 60 ? 60 : width);
}

/* Print per-class precision, recall, F1 and support, and their averages. */
static void print_class_report(const dsc_prep *prep, size_t n_classes, const size_t *confusion,
                               size_t n_rows)
{
    int width = name_width(prep, n_classes);
    double macro[3] = {0, 0, 0}, weighted[3] = {0, 0, 0};

    printf("\n%-*s  %9s  %9s  %9s  %9s\n", width, "class", "precision", "recall", "f1-score",
           "support");
    for (size_t c = 0; c < n_classes; c++) {
        size_t true_pos = confusion[c * n_classes + c], predicted = 0, support = 0;
        for (size_t k = 0; k < n_classes; k++) {
            predicted += confusion[k * n_classes + c];
            support += confusion[c * n_classes + k];
        }
        /* An empty denominator gives 0, as scikit-learn's zero_division default does. */
        double precision = predicted ? (double)true_pos / (double)predicted : 0.0;
        double recall = support ? (double)true_pos / (double)support : 0.0;
        double f1 = precision + recall > 0.0
                        ? 2.0 * precision * recall / (precision + recall) : 0.0;
        double scores[3] = {precision, recall, f1};
        for (int s = 0; s < 3; s++) {
            macro[s] += scores[s] / (double)n_classes;
            weighted[s] += scores[s] * (double)support / (double)n_rows;
        }
        printf("%-*s  %9.4f  %9.4f  %9.4f  %9zu\n", width, dsc_prep_class_name(prep, c),
               precision, recall, f1, support);
    }
    printf("%-*s  %9.4f  %9.4f  %9.4f  %9zu\n", width, "macro avg", macro[0], macro[1],
           macro[2], n_rows);
    printf("%-*s  %9.4f  %9.4f  %9.4f  %9zu\n", width, "weighted avg", weighted[0],
           weighted[1], weighted[2], n_rows);
}

/* Print the confusion matrix: a row per true class, a column per predicted class. */
static void print_confusion(const dsc_prep *prep, size_t n_classes, const size_t *confusion)
{
    int width = name_width(prep, n_classes);
    int cell = 7;

    for (size_t c = 0; c < n_classes; c++) {
        int len = (int)strlen(dsc_prep_class_name(prep, c));
        if (len > cell)
            cell = len > 40 ? 40 : len;
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n");
    printf("%-*s", width, "");
    for (size_t c = 0; c < n_classes; c++)
        printf("  %*.*s", cell, cell, dsc_prep_class_name(prep, c));
    fputc('\n', stdout);
    for (size_t t = 0; t < n_classes; t++) {
        printf("%-*s", width, dsc_prep_class_name(prep, t));
        for (size_t p = 0; p < n_classes; p++)
            printf("  %*zu", cell, confusion[t * n_classes + p]);
        fputc('\n', stdout);
    }
}

/* Print accuracy, log loss (when the loss gives probabilities), the report and the matrix. */
static int eval_classifier(dsc_model *model, const dsc_prep *prep, const dsc_data *data)
{
    size_t n_classes = dsc_model_config_of(model)->n_outputs;
    size_t n_rows = data->n_rows;
    dsc_loss loss = dsc_model_config_of(model)->loss;
    int has_proba = loss != DSC_LOSS_HINGE && loss != DSC_LOSS_SQUARED_HINGE;
    int32_t *pred = malloc(CHUNK_ROWS * sizeof *pred);
    float *proba = malloc(CHUNK_ROWS * n_classes * sizeof *proba);
    size_t *confusion = calloc(n_classes * n_classes, sizeof *confusion);
    double log_loss = 0.0;
    size_t correct = 0;
    int status = 0;

    if (!pred || !proba || !confusion) {
        cli_error("eval: out of memory");
        status = EXIT_FAILURE_RUN;
    }
    for (size_t first = 0; status == 0 && first < n_rows; first += CHUNK_ROWS) {
        size_t n = n_rows - first < CHUNK_ROWS ? n_rows - first : CHUNK_ROWS;
        int rc = dsc_model_predict_class(model, data, first, n, pred);
        if (rc >= 0 && has_proba)
            rc = dsc_model_predict_proba(model, data, first, n, proba);
        if (rc < 0) {
            status = cli_library_error(rc);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            size_t truth = (size_t)data->label[first + i];
            confusion[truth * n_classes + (size_t)pred[i]]++;
            correct += (size_t)pred[i] == truth;
            if (has_proba) {
                double p = proba[i * n_classes + truth];
                log_loss -= log(p > LOG_LOSS_FLOOR ? p : LOG_LOSS_FLOOR);
            }
        }
    }

    if (status == 0) {
        printf("rows      %zu\n", n_rows);
        printf("accuracy  %.6f\n", n_rows ? (double)correct / (double)n_rows : 0.0);
        if (has_proba)
            printf("log loss  %.6f\n", n_rows ? log_loss / (double)n_rows : 0.0);
        else
            printf("log loss  n/a (the %s loss gives no probabilities)\n", dsc_loss_name(loss));
        print_class_report(prep, n_classes, confusion, n_rows);
        print_confusion(prep, n_classes, confusion);
    }
    free(pred);
    free(proba);
    free(confusion);
    return status;
}

int cmd_eval(int argc, char **argv)
{
    static const cli_command cmd = {
        "eval", "descent eval MODEL DATA",
        "Print the metrics of MODEL on DATA, which must hold the target column.\n"
        "Regression: MSE, RMSE, MAE and R^2. Classification: accuracy, log loss, per-class\n"
        "precision, recall, F1 and support, their macro and weighted averages, and the\n"
        "confusion matrix.",
        NULL,
    };
    cli_data_options how = {"auto", NULL};
    cli_option table[] = {
        CLI_TEXT_OPTION("--format", "FMT", how.format_text, "auto, csv, libsvm, npy or idx",
                        "auto: from the file name"),
        CLI_TEXT_OPTION("--labels", "FILE", how.labels_path,
                        "the targets (.npy) or labels (IDX) file of npy and idx data", "none"),
    };
    const size_t n_options = sizeof table / sizeof table[0];
    const char *positional[2];
    int help_shown;
    dsc_format format;

    int rc = cli_parse_exact(argc, argv, &cmd, table, n_options, positional, 2,
                             "a model file and a data file", &help_shown);
    if (rc != 0 || help_shown)
        return rc;
    if ((rc = cli_parse_format("--format", how.format_text, &format)) != 0)
        return rc;

    cli_loaded loaded;
    if ((rc = cli_load_model(positional[0], &loaded)) != 0)
        return rc;
    dsc_table *data_table = NULL;
    if ((rc = cli_read_for_model(positional[1], &how, &loaded, &data_table)) != 0) {
        cli_loaded_free(&loaded);
        return rc;
    }

    const dsc_data *data = dsc_table_data(data_table);
    int classifier = dsc_model_is_classifier(loaded.model);
    if ((classifier && !data->label) || (!classifier && !data->y)) {
        cli_error("%s: the data has no target column; eval needs the true values",
                  positional[1]);
        rc = EXIT_USAGE;
    } else if (!classifier && data->n_targets != dsc_model_n_logits(loaded.model)) {
        cli_error("%s: the data has %zu targets, the model predicts %zu", positional[1],
                  data->n_targets, dsc_model_n_logits(loaded.model));
        rc = EXIT_USAGE;
    } else if (classifier) {
        rc = eval_classifier(loaded.model, loaded.prep, data);
    } else {
        rc = eval_regression(loaded.model, data);
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        cli_error("-: write failed");
        rc = EXIT_FAILURE_RUN;
    }
    dsc_table_free(data_table);
    cli_loaded_free(&loaded);
    return rc;
}
