/*
 * predict.c - `descent predict MODEL DATA [-o OUT] [--proba]`: one CSV line per row of DATA,
 * the predicted class label or value, or with --proba a header of class names and one
 * probability column per class.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Rows predicted per library call. */
#define CHUNK_ROWS 1024

/* Write text as one CSV field, quoted (RFC 4180) when it holds a delimiter or a quote. */
static void write_field(FILE *out, const char *text)
{
    if (strpbrk(text, ",\"\r\n") == NULL && text[0] != ' ' && *text != '\0') {
        fputs(text, out);
        return;
    }
    fputc('"', out);
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

/* The header of --proba: the class names. */
static void write_proba_header(FILE *out, const dsc_prep *prep, size_t n_classes)
{
    for (size_t c = 0; c < n_classes; c++) {
        if (c > 0)
            fputc(',', out);
        write_field(out, dsc_prep_class_name(prep, c));
    }
    fputc('\n', out);
}

/* Predict rows first..first+n-1 and write them; 0 or a library error code. */
static int write_chunk(FILE *out, dsc_model *model, const dsc_prep *prep, const dsc_data *data,
                       size_t first, size_t n, int proba, float *values, int32_t *classes)
{
    int rc;
    size_t width;

    if (proba) {
        width = dsc_model_config_of(model)->n_outputs;
        rc = dsc_model_predict_proba(model, data, first, n, values);
    } else if (dsc_model_is_classifier(model)) {
        width = 1;
        rc = dsc_model_predict_class(model, data, first, n, classes);
    } else {
        width = dsc_model_n_logits(model);
        rc = dsc_model_decision(model, data, first, n, values);
    }
    if (rc < 0)
        return rc;

    for (size_t i = 0; i < n; i++) {
        if (!proba && dsc_model_is_classifier(model)) {
            write_field(out, dsc_prep_class_name(prep, (size_t)classes[i]));
        } else {
            for (size_t j = 0; j < width; j++)
                fprintf(out, j > 0 ? ",%.9g" : "%.9g", (double)values[i * width + j]);
        }
        fputc('\n', out);
    }
    return DSC_OK;
}

/* Write the predictions of every row of data to out; 0 or an exit status after the error. */
static int write_predictions(FILE *out, const cli_loaded *loaded, const dsc_data *data,
                             int proba)
{
    size_t n_outputs = dsc_model_config_of(loaded->model)->n_outputs;
    size_t width = proba ? n_outputs : dsc_model_n_logits(loaded->model);
    float *values = malloc(CHUNK_ROWS * (width > 0 ? width : 1) * sizeof *values);
    int32_t *classes = malloc(CHUNK_ROWS * sizeof *classes);
    int status = 0;

    if (!values || !classes) {
        cli_error("predict: out of memory");
        status = EXIT_FAILURE_RUN;
    }
    if (status == 0 && proba)
        write_proba_header(out, loaded->prep, n_outputs);
    for (size_t first = 0; status == 0 && first < data->n_rows; first += CHUNK_ROWS) {
        size_t n = data->n_rows - first < CHUNK_ROWS ? data->n_rows - first : CHUNK_ROWS;
        int rc = write_chunk(out, loaded->model, loaded->prep, data, first, n, proba, values,
                             classes);
        if (rc < 0)
            status = cli_library_error(rc);
    }
    free(values);
    free(classes);
    return status;
}

int cmd_predict(int argc, char **argv)
{
    static const cli_command cmd = {
        "predict", "descent predict MODEL DATA [-o OUT] [--proba]",
        "Write one CSV line per row of DATA: the predicted class label of a classifier, or\n"
        "the predicted value (values, comma-separated, for several targets) of a\n"
        "regression model. DATA is read with the model's preprocessing: the same columns,\n"
        "one-hot levels, imputation values and standardisation as in training.",
        "DATA holds the same columns as the training file. For CSV, the target column may\n"
        "be present (its values are checked and ignored) or left out.\n",
    };
    const char *out_path = "-";
    cli_data_options how = {"auto", NULL};
    int proba = 0;
    cli_option table[] = {
        CLI_TEXT_OPTION("--output", "OUT", out_path,
                        "where to write the predictions; '-' is standard output", "-"),
        CLI_FLAG_OPTION("--proba", proba,
                        "write class probabilities: a header of class names, a column per class"),
        CLI_TEXT_OPTION("--format", "FMT", how.format_text, "auto, csv, libsvm, npy or idx",
                        "auto: from the file name"),
        CLI_TEXT_OPTION("--labels", "FILE", how.labels_path,
                        "the targets (.npy) or labels (IDX) file of npy and idx data", "none"),
    };
    const size_t n_options = sizeof table / sizeof table[0];
    table[0].alias = "-o";
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
    if (proba && !dsc_model_is_classifier(loaded.model)) {
        cli_error("--proba: %s is a regression model; it gives no probabilities",
                  positional[0]);
        cli_loaded_free(&loaded);
        return EXIT_USAGE;
    }
    if (proba) {
        dsc_loss loss = dsc_model_config_of(loaded.model)->loss;
        if (loss == DSC_LOSS_HINGE || loss == DSC_LOSS_SQUARED_HINGE) {
            cli_error("--proba: the model's loss (%s) gives no probabilities",
                      dsc_loss_name(loss));
            cli_loaded_free(&loaded);
            return EXIT_USAGE;
        }
    }

    dsc_table *data_table = NULL;
    if ((rc = cli_read_for_model(positional[1], &how, &loaded, &data_table)) != 0) {
        cli_loaded_free(&loaded);
        return rc;
    }

    cli_output out;
    rc = cli_output_open(&out, out_path);
    if (rc == 0) {
        rc = write_predictions(out.fp, &loaded, dsc_table_data(data_table), proba);
        if (rc == 0)
            rc = cli_output_commit(&out);
        else
            cli_output_abort(&out);
    }
    dsc_table_free(data_table);
    cli_loaded_free(&loaded);
    return rc;
}
