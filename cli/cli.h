/*
 * cli.h - what the files of the `descent` command share: the option table, the error and
 * exit conventions, output files written atomically, and the helpers that load a model and
 * read data the way it was trained.
 *
 * The command uses only the public header descent.h.
 */
#ifndef DSC_CLI_H
#define DSC_CLI_H

#include "descent.h"

#include <stdarg.h>
#include <stdio.h>

/* Exit statuses: bad input or usage, and a failure while running. */
#define EXIT_USAGE 2
#define EXIT_FAILURE_RUN 1

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Print "descent: <message>" as one line on standard error. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Print "descent: <the library's last error>" and return the exit status that code means. */
int cli_library_error(int code);

/* The exit status for a library error code: 1 for memory and running failures, else 2. */
int cli_exit_status(int code);

/* ------------------------------------------------------------------------------------------ */
/* Options: one table drives both parsing and --help                                          */
/* ------------------------------------------------------------------------------------------ */

typedef enum cli_kind {
    CLI_FLAG,    /* no value; sets an int to 1 */
    CLI_INT,     /* an int64_t within [min, max] */
    CLI_REAL,    /* a finite double within the range */
    CLI_TEXT     /* any non-empty text; const char *, checked by the command */
} cli_kind;

typedef struct cli_option {
    const char *name;      /* "--lr" */
    const char *alias;     /* "-o", or NULL */
    const char *metavar;   /* "X" in the help; NULL for a flag */
    cli_kind kind;
    void *value;           /* int * (flag), int64_t *, double * or const char ** */
    double min, max;       /* the accepted range of a number */
    int min_open;          /* min itself is excluded */
    int max_open;          /* max itself is excluded */
    const char *help;      /* one line of help */
    const char *default_text; /* shown as "(default: ...)", or NULL */
    int given;             /* set by cli_parse when the option was on the command line */
} cli_option;

/* Table entries. Ranges use INFINITY (math.h) for "no bound". */
#define CLI_FLAG_OPTION(opt_name, var, help_text)                                             \
    {.name = (opt_name), .kind = CLI_FLAG, .value = &(var), .help = (help_text)}
#define CLI_TEXT_OPTION(opt_name, meta, var, help_text, def)                                  \
    {.name = (opt_name), .metavar = (meta), .kind = CLI_TEXT, .value = &(var),              \
     .help = (help_text), .default_text = (def)}
#define CLI_REAL_OPTION(opt_name, meta, var, lo, lo_excl, hi, hi_excl, help_text, def)        \
    {.name = (opt_name), .metavar = (meta), .kind = CLI_REAL, .value = &(var), .min = (lo),  \
     .min_open = (lo_excl), .max = (hi), .max_open = (hi_excl), .help = (help_text),         \
     .default_text = (def)}
#define CLI_INT_OPTION(opt_name, meta, var, lo, hi, help_text, def)                           \
    {.name = (opt_name), .metavar = (meta), .kind = CLI_INT, .value = &(var), .min = (lo),   \
     .max = (hi), .help = (help_text), .default_text = (def)}

/* What the help of a command shows besides its options. */
typedef struct cli_command {
    const char *name;  /* "train" */
    const char *usage; /* "descent train DATA -o MODEL [options]" */
    const char *about; /* a paragraph under the usage line */
    const char *notes; /* text after the options, or NULL */
} cli_command;

/*
 * Parse argv[first..argc) against the table (n entries). Arguments that are not options go
 * into positional (at most max_positional; "-" counts as one). "--name=value" and
 * "--name value" are both accepted, and "--" ends the options. When --help or -h is seen,
 * the help is printed to stdout and *help_shown is set. Returns 0, or 2 after printing the
 * error line.
 */
int cli_parse(int argc, char **argv, int first, const cli_command *cmd, cli_option *table,
              size_t n, const char **positional, size_t max_positional, size_t *n_positional,
              int *help_shown);

/*
 * cli_parse for a command that takes exactly count positional arguments, described by what
 * in the error ("a model file and a data file"): 2 after printing the error line when
 * there are more or fewer. The help, as with cli_parse, sets *help_shown and returns 0.
 */
int cli_parse_exact(int argc, char **argv, const cli_command *cmd, cli_option *table, size_t n,
                    const char **positional, size_t count, const char *what, int *help_shown);

/* Print the usage line, the description and the options of the table with their defaults. */
void cli_print_help(FILE *out, const cli_command *cmd, const cli_option *table, size_t n);

/* Find an entry of the table by name; NULL when none. */
cli_option *cli_find(cli_option *table, size_t n, const char *name);

/*
 * Parse a number the way every option does: the whole text must be consumed and the value
 * finite. 0 on success; -1 otherwise.
 */
int cli_parse_double(const char *text, double *out);
int cli_parse_int64(const char *text, int64_t *out);

/* Report "descent: NAME: expected WHAT, got 'TEXT'" and return 2. */
int cli_bad_value(const char *name, const char *what, const char *text);

/* ------------------------------------------------------------------------------------------ */
/* Output files written atomically                                                            */
/* ------------------------------------------------------------------------------------------ */

/*
 * An output: standard output for "-", otherwise a temporary file in the same folder as path,
 * renamed over path by cli_output_commit and removed by cli_output_abort.
 */
typedef struct cli_output {
    FILE *fp;
    const char *path;
    char *tmp_path; /* NULL for standard output */
} cli_output;

/* Open out for path; 0, or 1 after printing the error line. */
int cli_output_open(cli_output *out, const char *path);

/* Flush, close and rename into place; 0, or 1 after printing the error line (file removed). */
int cli_output_commit(cli_output *out);

/* Close and remove the temporary file, if any. */
void cli_output_abort(cli_output *out);

/* ------------------------------------------------------------------------------------------ */
/* Models and data                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* A model file's contents. */
typedef struct cli_loaded {
    dsc_model *model;
    dsc_prep *prep;
    char *settings;
} cli_loaded;

/* Load a model file; 0, or an exit status after printing the error line. */
int cli_load_model(const char *path, cli_loaded *loaded);
void cli_loaded_free(cli_loaded *loaded);

/*
 * The value of key in a settings text of "key=value" lines, copied into buf (size bytes).
 * 1 when found, 0 when not.
 */
int cli_setting(const char *settings, const char *key, char *buf, size_t size);

/* The options of predict and eval that say how to read DATA. */
typedef struct cli_data_options {
    const char *format_text; /* "auto" or a format name */
    const char *labels_path; /* targets or labels file of npy and idx data, or NULL */
} cli_data_options;

/*
 * The options that read data the way the model was trained: the same target column (copied
 * into target, target_size bytes), missing-value policy and task. 0, or 2 after the error.
 */
int cli_model_read_options(const cli_data_options *how, const cli_loaded *loaded,
                           dsc_read_options *opts, char *target, size_t target_size);

/*
 * Read a data file for a trained model: encoded with the model's preprocessing, with the
 * training's target column and missing-value policy, then imputed and standardised.
 * 0, or an exit status after the error line.
 */
int cli_read_for_model(const char *path, const cli_data_options *how, const cli_loaded *loaded,
                       dsc_table **table);

/* Parse a --format value ("auto", "csv", ...) into *out; 0, or 2 after the error line. */
int cli_parse_format(const char *name, const char *text, dsc_format *out);

/* One run's per-epoch history, named for a legend. */
typedef struct cli_curve {
    const char *name;
    const dsc_epoch_stats *history;
    size_t n_epochs;
} cli_curve;

/*
 * Draw the training (and, where there is one, validation) loss of each run per epoch, with
 * the learning rate on a right axis when with_lr, as an SVG file at path (written
 * atomically). 0, or an exit status after the error line.
 */
int cli_plot_curves(const char *path, const char *title, const cli_curve *curves, size_t n,
                    int with_lr);

/* The commands; each returns the exit status. argv[0] is the command's name. */
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_lr_find(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif /* DSC_CLI_H */
