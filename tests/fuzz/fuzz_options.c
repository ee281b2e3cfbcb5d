/*
 * fuzz_options.c - libFuzzer harness for the command line's option parser.
 *
 * Input: the arguments of `descent train`, separated by NUL bytes. They go through
 * train_parse (cli_parse on the train option table, then the checks of every choice) and,
 * when accepted, through the model and training configuration they resolve to, for a
 * regression target and for 2 and 5 classes. No file is opened. Run with -close_fd_mask=3:
 * the parser prints its error lines and --help.
 */
#include "fuzz_common.h"
#include "train.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t classes[] = {0, 2, 5};
    static train_args args;
    char *argv[MAX_ARGS + 2];
    int argc = 0;

    /* A private, NUL-terminated copy: the parser keeps pointers into it. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    argv[argc++] = "train";
    for (size_t start = 0; start <= size && argc < MAX_ARGS + 1;) {
        size_t len = strlen(text + start);
        argv[argc++] = text + start;
        start += len + 1;
    }
    argv[argc] = NULL;

    train_plan plan;
    int help_shown = 0;
    if (train_parse(argc, argv, &args, &plan, &help_shown) == 0 && !help_shown &&
        !args.resume_path) {
        for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
            train_plan resolved = plan;
            dsc_model_config model_cfg;
            dsc_train_config cfg;
            if (train_resolve_model(&args, &resolved, 4, classes[i], 1, &model_cfg) == 0)
                train_make_config(&args, &resolved, classes[i] > 0, &cfg);
        }
    }
    free(text);
    return 0;
}
