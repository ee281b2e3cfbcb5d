/*
 * options.c - the table-driven option parser of the `descent` command, the help generated
 * from the same table, and strict number parsing.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Options and their values start in this column of the help when they fit. */
#define HELP_COLUMN 28

/* Help lines end before this column. */
#define HELP_WIDTH 92

int cli_parse_double(const char *text, double *out)
{
    char *end = NULL;

    if (!text || !*text)
        return -1;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(value))
        return -1;
    *out = value;
    return 0;
}

int cli_parse_int64(const char *text, int64_t *out)
{
    char *end = NULL;

    if (!text || !*text)
        return -1;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
        return -1;
    *out = (int64_t)value;
    return 0;
}

int cli_bad_value(const char *name, const char *what, const char *text)
{
    cli_error("%s: expected %s, got '%s'", name, what, text);
    return EXIT_USAGE;
}

/* Describe the accepted values of a numeric option, e.g. "a number in [0, 1)". */
static void describe_range(const cli_option *opt, char *buf, size_t size)
{
    const char *noun = opt->kind == CLI_INT ? "an integer" : "a number";
    int has_min = isfinite(opt->min), has_max = isfinite(opt->max);

    if (has_min && has_max)
        snprintf(buf, size, "%s in %c%.17g, %.17g%c", noun, opt->min_open ? '(' : '[',
                 opt->min, opt->max, opt->max_open ? ')' : ']');
    else if (has_min)
        snprintf(buf, size, "%s %s %.17g", noun, opt->min_open ? ">" : ">=", opt->min);
    else if (has_max)
        snprintf(buf, size, "%s %s %.17g", noun, opt->max_open ? "<" : "<=", opt->max);
    else
        snprintf(buf, size, "%s", noun);
}

/* True when value lies in the option's range. */
static int in_range(const cli_option *opt, double value)
{
    if (opt->min_open ? !(value > opt->min) : !(value >= opt->min))
        return 0;
    if (opt->max_open ? !(value < opt->max) : !(value <= opt->max))
        return 0;
    return 1;
}

/* Store text as the value of opt; 0, or 2 after the error line. */
static int set_value(cli_option *opt, const char *text)
{
    char what[96];

    describe_range(opt, what, sizeof what);
    switch (opt->kind) {
    case CLI_INT: {
        int64_t value;
        if (cli_parse_int64(text, &value) != 0 || !in_range(opt, (double)value))
            return cli_bad_value(opt->name, what, text);
        *(int64_t *)opt->value = value;
        return 0;
    }
    case CLI_REAL: {
        double value;
        if (cli_parse_double(text, &value) != 0 || !in_range(opt, value))
            return cli_bad_value(opt->name, what, text);
        *(double *)opt->value = value;
        return 0;
    }
    case CLI_TEXT:
        if (!*text) {
            cli_error("%s: expected a value, got an empty text", opt->name);
            return EXIT_USAGE;
        }
        *(const char **)opt->value = text;
        return 0;
    case CLI_FLAG:
    default:
        *(int *)opt->value = 1;
        return 0;
    }
}

cli_option *cli_find(cli_option *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0 || (table[i].alias && !strcmp(table[i].alias, name)))
            return &table[i];
    }
    return NULL;
}

/* Handle the option argument argv[*i] (starting with '-'); advances *i past its value. */
static int parse_option(int argc, char **argv, int *i, const cli_command *cmd,
                        cli_option *table, size_t n)
{
    const char *arg = argv[*i];
    char name[128];
    const char *inline_value = NULL;

    /* "--name=value" carries its value; "-o" style short options never do. */
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (len >= sizeof name)
        len = sizeof name - 1;
    memcpy(name, arg, len);
    name[len] = '\0';
    if (eq)
        inline_value = eq + 1;

    cli_option *opt = cli_find(table, n, name);
    if (!opt) {
        cli_error("%s: unknown option (see 'descent %s --help')", name, cmd->name);
        return EXIT_USAGE;
    }
    opt->given = 1;
    if (opt->kind == CLI_FLAG) {
        if (inline_value) {
            cli_error("%s: takes no value, got '%s'", opt->name, inline_value);
            return EXIT_USAGE;
        }
        return set_value(opt, "");
    }
    if (!inline_value) {
        if (*i + 1 >= argc) {
            cli_error("%s: missing value (expected %s)", opt->name, opt->metavar);
            return EXIT_USAGE;
        }
        *i += 1;
        inline_value = argv[*i];
    }
    return set_value(opt, inline_value);
}

int cli_parse(int argc, char **argv, int first, const cli_command *cmd, cli_option *table,
              size_t n, const char **positional, size_t max_positional, size_t *n_positional,
              int *help_shown)
{
    int options_done = 0;

    *n_positional = 0;
    *help_shown = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        int is_option = !options_done && arg[0] == '-' && arg[1] != '\0';

        if (is_option && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (is_option && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            cli_print_help(stdout, cmd, table, n);
            *help_shown = 1;
            return 0;
        }
        if (is_option) {
            int rc = parse_option(argc, argv, &i, cmd, table, n);
            if (rc != 0)
                return rc;
            continue;
        }
        if (*n_positional >= max_positional) {
            cli_error("%s: unexpected argument '%s' (usage: %s)", cmd->name, arg, cmd->usage);
            return EXIT_USAGE;
        }
        positional[(*n_positional)++] = arg;
    }
    return 0;
}

int cli_parse_exact(int argc, char **argv, const cli_command *cmd, cli_option *table, size_t n,
                    const char **positional, size_t count, const char *what, int *help_shown)
{
    size_t n_positional;
    int rc = cli_parse(argc, argv, 1, cmd, table, n, positional, count, &n_positional,
                       help_shown);

    if (rc != 0 || *help_shown)
        return rc;
    if (n_positional != count) {
        cli_error("%s: expected %s (usage: %s)", cmd->name, what, cmd->usage);
        return EXIT_USAGE;
    }
    return 0;
}

/* Print text from column HELP_COLUMN, wrapped at word boundaries before HELP_WIDTH. */
static void print_wrapped(FILE *out, const char *text)
{
    int column = HELP_COLUMN;

    while (*text) {
        size_t word = strcspn(text, " ");
        if (column > HELP_COLUMN && column + 1 + (int)word > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_COLUMN, "");
            column = HELP_COLUMN;
        } else if (column > HELP_COLUMN) {
            fputc(' ', out);
            column++;
        }
        fwrite(text, 1, word, out);
        column += (int)word;
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void cli_print_help(FILE *out, const cli_command *cmd, const cli_option *table, size_t n)
{
    fprintf(out, "usage: %s\n\n%s\n", cmd->usage, cmd->about);
    if (n > 0)
        fprintf(out, "\noptions:\n");

    for (size_t i = 0; i < n; i++) {
        const cli_option *opt = &table[i];
        char left[96], text[512];

        /* The left column: "  -o, --output MODEL" or "  --quiet". */
        snprintf(left, sizeof left, "  %s%s%s%s%s", opt->alias ? opt->alias : "",
                 opt->alias ? ", " : "", opt->name, opt->metavar ? " " : "",
                 opt->metavar ? opt->metavar : "");
        int width = (int)strlen(left);
        if (width + 2 > HELP_COLUMN)
            fprintf(out, "%s\n%*s", left, HELP_COLUMN, "");
        else
            fprintf(out, "%-*s", HELP_COLUMN, left);
        if (opt->default_text)
            snprintf(text, sizeof text, "%s (default: %s)", opt->help, opt->default_text);
        else
            snprintf(text, sizeof text, "%s", opt->help);
        print_wrapped(out, text);
    }
    fprintf(out, "  -h, --help%*sshow this help and exit\n", HELP_COLUMN - 12, "");
    if (cmd->notes)
        fprintf(out, "\n%s", cmd->notes);
}
