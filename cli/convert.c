/*
 * convert.c - `descent convert DATA -o FILE.dscd [options]`: read a data file once and save
 * it as a data cache, which every command then maps instead of parsing; and
 * `descent convert --verify FILE.dscd`, which checks every checksum of a cache.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --delimiter: a character, or the word "tab". */
static int parse_delimiter(const char *text, char *out)
{
    if (strcmp(text, "tab") == 0 || strcmp(text, "\\t") == 0) {
        *out = '\t';
        return 0;
    }
    if (strlen(text) == 1 && strchr(",;|\t", text[0])) {
        *out = text[0];
        return 0;
    }
    return cli_bad_value("--delimiter", "',', ';', '|' or tab", text);
}

/* An option that is auto, yes or no: -1, 1 or 0. */
static int parse_yes_no(const char *name, const char *text, int *out)
{
    if (strcmp(text, "auto") == 0)
        *out = -1;
    else if (strcmp(text, "yes") == 0)
        *out = 1;
    else if (strcmp(text, "no") == 0)
        *out = 0;
    else
        return cli_bad_value(name, "auto, yes or no", text);
    return 0;
}

/* One line about the cache written. */
static void print_summary(const char *path, const dsc_table *table)
{
    const dsc_data *d = dsc_table_data(table);
    size_t n_classes = dsc_prep_n_classes(dsc_table_prep((dsc_table *)table));
    struct stat st;
    long long bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;

    printf("%s: %zu row%s, %zu feature%s (%s), ", path, d->n_rows, d->n_rows == 1 ? "" : "s",
           d->n_features, d->n_features == 1 ? "" : "s", d->x ? "dense" : "sparse");
    if (d->label)
        printf("%zu class%s", n_classes, n_classes == 1 ? "" : "es");
    else if (d->y)
        printf("%zu target%s", d->n_targets, d->n_targets == 1 ? "" : "s");
    else
        printf("no targets");
    printf(", %lld bytes\n", bytes);
}

int cmd_convert(int argc, char **argv)
{
    static const cli_command cmd = {
        "convert", "descent convert DATA -o FILE.dscd [options]",
        "Read DATA once and save it as a data cache: a binary file of the parsed table\n"
        "(features, targets, columns, one-hot levels and classes) that train, predict,\n"
        "eval, compare and lr-find accept as DATA and map into memory instead of parsing,\n"
        "so that later runs start at once. The reading options are those of train; they\n"
        "are applied now and recorded in the cache. With --model, DATA is encoded the way\n"
        "that model reads data (for predict and eval), which also reads a file without a\n"
        "target column.",
        "descent convert --verify FILE.dscd checks a cache completely, every checksum\n"
        "included (loading checks the structure but skips the data's checksums).\n",
    };
    const char *out_path = NULL, *delimiter_text = NULL, *header_text = "auto";
    const char *classify_text = "auto", *missing_text = "error", *model_path = NULL;
    const char *target = NULL;
    cli_data_options how = {"auto", NULL};
    int64_t max_levels = 1000;
    int verify = 0;
    cli_option table[] = {
        CLI_TEXT_OPTION("--output", "FILE.dscd", out_path, "the data cache to write", NULL),
        CLI_TEXT_OPTION("--target", "COL", target,
                        "CSV: the target column, by header name or 1-based index",
                        "the last column"),
        CLI_TEXT_OPTION("--format", "FMT", how.format_text, "auto, csv, libsvm, npy or idx",
                        "auto: from the file name"),
        CLI_TEXT_OPTION("--labels", "FILE", how.labels_path,
                        "the targets (.npy) or labels (IDX) file of npy and idx data", "none"),
        CLI_TEXT_OPTION("--missing", "POLICY",
                        missing_text, "missing values: error, or keep them for train's "
                        "--missing mean or median", "error"),
        CLI_TEXT_OPTION("--classify", "WHEN", classify_text,
                        "targets are classes: auto (text targets), yes or no", "auto"),
        CLI_TEXT_OPTION("--delimiter", "C", delimiter_text, "CSV: ',', ';', '|' or tab",
                        "detected"),
        CLI_TEXT_OPTION("--header", "WHEN", header_text, "CSV: auto, yes or no", "auto"),
        CLI_INT_OPTION("--max-levels", "N", max_levels, 1, 1000000,
                       "CSV: most levels of a one-hot encoded column", "1000"),
        CLI_TEXT_OPTION("--model", "MODEL", model_path,
                        "encode DATA as this model reads data (for predict and eval)", "none"),
        CLI_FLAG_OPTION("--verify", verify,
                        "check the cache given as DATA, every checksum included; write nothing"),
    };
    const size_t n_options = sizeof table / sizeof table[0];
    table[0].alias = "-o";
    const char *positional[1];
    int help_shown;

    int rc = cli_parse_exact(argc, argv, &cmd, table, n_options, positional, 1,
                             "one data file", &help_shown);
    if (rc != 0 || help_shown)
        return rc;
    const char *data_path = positional[0];

    if (verify) {
        if (out_path) {
            cli_error("--verify: checks %s and writes nothing; leave out -o", data_path);
            return EXIT_USAGE;
        }
        rc = dsc_cache_verify(data_path);
        if (rc < 0)
            return cli_library_error(rc);
        printf("%s: the data cache is intact\n", data_path);
        return 0;
    }
    if (!out_path || strcmp(out_path, "-") == 0) {
        cli_error("-o: %s; give the data cache to write (usage: %s)",
                  out_path ? "a data cache cannot go to standard output" : "missing",
                  cmd.usage);
        return EXIT_USAGE;
    }

    dsc_read_options opts;
    char model_target[256];
    cli_loaded loaded;
    memset(&loaded, 0, sizeof loaded);
    if (model_path) {
        if ((rc = cli_load_model(model_path, &loaded)) != 0)
            return rc;
        rc = cli_model_read_options(&how, &loaded, &opts, model_target, sizeof model_target);
        if (rc == 0 && target)
            opts.target = target;
    } else {
        dsc_read_options_default(&opts);
        rc = cli_parse_format("--format", how.format_text, &opts.format);
        opts.labels_path = how.labels_path;
        opts.target = target;
        if (rc == 0 && (rc = parse_yes_no("--classify", classify_text, &opts.classify)) == 0) {
            int policy = dsc_missing_from_name(missing_text);
            if (policy < 0)
                rc = cli_bad_value("--missing", "error, mean or median", missing_text);
            else
                opts.missing = (dsc_missing)policy;
        }
    }
    if (rc == 0 && delimiter_text)
        rc = parse_delimiter(delimiter_text, &opts.delimiter);
    if (rc == 0)
        rc = parse_yes_no("--header", header_text, &opts.header);
    opts.max_levels = (size_t)max_levels;
    if (rc != 0) {
        cli_loaded_free(&loaded);
        return rc;
    }

    int err = 0;
    dsc_table *data = dsc_table_read(data_path, &opts, loaded.prep, &err);
    if (!data) {
        cli_loaded_free(&loaded);
        return cli_library_error(err);
    }
    rc = dsc_table_save_cache(out_path, data);
    if (rc < 0) {
        rc = cli_library_error(rc);
    } else {
        print_summary(out_path, data);
        rc = 0;
    }
    dsc_table_free(data);
    cli_loaded_free(&loaded);
    return rc;
}
