/*
 * inspect.c - `descent inspect MODEL [--weights]`: the model as JSON on standard output.
 */
#include "cli.h"

int cmd_inspect(int argc, char **argv)
{
    static const cli_command cmd = {
        "inspect", "descent inspect MODEL [--weights]",
        "Print MODEL as one JSON object: the architecture, the preprocessing (columns,\n"
        "levels, scaler, imputation values), the classes and the training settings.",
        NULL,
    };
    int with_weights = 0;
    cli_option table[] = {
        CLI_FLAG_OPTION("--weights", with_weights, "add every layer's weights and biases"),
    };
    const size_t n_options = sizeof table / sizeof table[0];
    const char *positional[1];
    int help_shown;

    int rc = cli_parse_exact(argc, argv, &cmd, table, n_options, positional, 1,
                             "a model file", &help_shown);
    if (rc != 0 || help_shown)
        return rc;

    cli_loaded loaded;
    rc = cli_load_model(positional[0], &loaded);
    if (rc != 0)
        return rc;

    rc = dsc_model_write_json(stdout, loaded.model, loaded.prep, loaded.settings,
                              with_weights);
    int status = rc < 0 ? cli_library_error(rc) : 0;
    if (status == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        cli_error("-: write failed");
        status = EXIT_FAILURE_RUN;
    }
    cli_loaded_free(&loaded);
    return status == 0 ? 0 : EXIT_FAILURE_RUN;
}
