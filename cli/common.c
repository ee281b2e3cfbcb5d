/*
 * common.c - error lines and exit statuses, output files written atomically, and loading a
 * model with the data it is applied to.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list args;

    fflush(stdout);
    fputs("descent: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

int cli_exit_status(int code)
{
    switch (code) {
    case DSC_ENOMEM:
    case DSC_ENONFINITE:
    case DSC_EFROZEN:
    case DSC_ESTATE:
        return EXIT_FAILURE_RUN;
    default:
        return EXIT_USAGE;
    }
}

int cli_library_error(int code)
{
    const char *message = dsc_last_error();

    if (!message || !*message)
        message = dsc_strerror(code);
    cli_error("%s", message);
    return cli_exit_status(code);
}

/* ------------------------------------------------------------------------------------------ */
/* Output files                                                                               */
/* ------------------------------------------------------------------------------------------ */

int cli_output_open(cli_output *out, const char *path)
{
    memset(out, 0, sizeof *out);
    out->path = path;
    if (strcmp(path, "-") == 0) {
        out->fp = stdout;
        return 0;
    }

    /* A temporary file next to the target, so that the final rename stays on one disk. */
    static const char suffix[] = ".tmp-XXXXXX";
    size_t len = strlen(path);
    out->tmp_path = malloc(len + sizeof suffix);
    if (!out->tmp_path) {
        cli_error("%s: out of memory", path);
        return EXIT_FAILURE_RUN;
    }
    memcpy(out->tmp_path, path, len);
    memcpy(out->tmp_path + len, suffix, sizeof suffix);

    int fd = mkstemp(out->tmp_path);
    if (fd < 0) {
        cli_error("%s: cannot create: %s", path, strerror(errno));
        free(out->tmp_path);
        out->tmp_path = NULL;
        return EXIT_FAILURE_RUN;
    }

    /* mkstemp makes the file private; give it the permissions a new file would get. */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);

    out->fp = fdopen(fd, "w");
    if (!out->fp) {
        cli_error("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        unlink(out->tmp_path);
        free(out->tmp_path);
        out->tmp_path = NULL;
        return EXIT_FAILURE_RUN;
    }
    return 0;
}

int cli_output_commit(cli_output *out)
{
    if (!out->tmp_path) {
        if (fflush(out->fp) != 0 || ferror(out->fp)) {
            cli_error("%s: write failed: %s", out->path, strerror(errno));
            return EXIT_FAILURE_RUN;
        }
        return 0;
    }

    int failed = fflush(out->fp) != 0 || ferror(out->fp) || fsync(fileno(out->fp)) != 0;
    int saved_errno = errno;
    if (fclose(out->fp) != 0 && !failed) {
        failed = 1;
        saved_errno = errno;
    }
    out->fp = NULL;
    if (!failed && rename(out->tmp_path, out->path) != 0) {
        failed = 1;
        saved_errno = errno;
    }
    if (failed) {
        cli_error("%s: write failed: %s", out->path, strerror(saved_errno));
        unlink(out->tmp_path);
    }
    free(out->tmp_path);
    out->tmp_path = NULL;
    return failed ? EXIT_FAILURE_RUN : 0;
}

void cli_output_abort(cli_output *out)
{
    if (!out->tmp_path)
        return;
    if (out->fp)
        fclose(out->fp);
    out->fp = NULL;
    unlink(out->tmp_path);
    free(out->tmp_path);
    out->tmp_path = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Models and data                                                                            */
/* ------------------------------------------------------------------------------------------ */

int cli_load_model(const char *path, cli_loaded *loaded)
{
    memset(loaded, 0, sizeof *loaded);
    int rc = dsc_model_load(path, &loaded->model, &loaded->prep, &loaded->settings);
    if (rc < 0)
        return cli_library_error(rc);
    if (!loaded->prep) {
        cli_error("%s: the model file holds no preprocessing; it was not written by "
                  "'descent train'", path);
        cli_loaded_free(loaded);
        return EXIT_USAGE;
    }
    return 0;
}

void cli_loaded_free(cli_loaded *loaded)
{
    dsc_model_free(loaded->model);
    dsc_prep_free(loaded->prep);
    dsc_free(loaded->settings);
    memset(loaded, 0, sizeof *loaded);
}

int cli_setting(const char *settings, const char *key, char *buf, size_t size)
{
    size_t key_len = strlen(key);

    for (const char *line = settings; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > key_len && strncmp(line, key, key_len) == 0 && line[key_len] == '=') {
            size_t value_len = len - key_len - 1;
            if (value_len >= size)
                value_len = size - 1;
            memcpy(buf, line + key_len + 1, value_len);
            buf[value_len] = '\0';
            return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

int cli_parse_format(const char *name, const char *text, dsc_format *out)
{
    if (strcmp(text, "auto") == 0) {
        *out = DSC_FORMAT_AUTO;
        return 0;
    }
    int format = dsc_format_from_name(text);
    if (format < 0)
        return cli_bad_value(name, "auto, csv, libsvm, npy or idx", text);
    *out = (dsc_format)format;
    return 0;
}

int cli_model_read_options(const cli_data_options *how, const cli_loaded *loaded,
                           dsc_read_options *opts, char *target, size_t target_size)
{
    char missing[32];

    /* Read the way the model was trained: same target column, same missing-value policy. */
    dsc_read_options_default(opts);
    int rc = cli_parse_format("--format", how->format_text, &opts->format);
    if (rc != 0)
        return rc;
    opts->labels_path = how->labels_path;
    opts->classify = dsc_model_is_classifier(loaded->model) ? 1 : 0;
    if (cli_setting(loaded->settings, "target", target, target_size))
        opts->target = target;
    if (cli_setting(loaded->settings, "missing", missing, sizeof missing)) {
        int policy = dsc_missing_from_name(missing);
        if (policy >= 0)
            opts->missing = (dsc_missing)policy;
    }
    return 0;
}

int cli_read_for_model(const char *path, const cli_data_options *how, const cli_loaded *loaded,
                       dsc_table **table)
{
    dsc_read_options opts;
    char target[256];
    int err = 0;

    int rc = cli_model_read_options(how, loaded, &opts, target, sizeof target);
    if (rc != 0)
        return rc;

    *table = dsc_table_read(path, &opts, loaded->prep, &err);
    if (!*table)
        return cli_library_error(err);

    size_t n_inputs = dsc_model_config_of(loaded->model)->n_inputs;
    if (dsc_table_data(*table)->n_features != n_inputs) {
        cli_error("%s: the data has %zu features, the model expects %zu", path,
                  dsc_table_data(*table)->n_features, n_inputs);
        dsc_table_free(*table);
        *table = NULL;
        return EXIT_USAGE;
    }

    rc = dsc_prep_apply(loaded->prep, *table);
    if (rc < 0) {
        dsc_table_free(*table);
        *table = NULL;
        return cli_library_error(rc);
    }

    size_t unseen = dsc_table_n_unseen(*table);
    if (unseen > 0)
        fprintf(stderr, "descent: note: %zu value%s of one-hot columns had levels unseen in "
                "training; encoded as all zeros\n", unseen, unseen == 1 ? "" : "s");
    return 0;
}
