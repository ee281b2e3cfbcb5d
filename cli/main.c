/*
 * main.c - the `descent` command: picks the subcommand and hands it the arguments.
 */
#include "cli.h"

#include <string.h>

static const char overview[] =
    "usage: descent COMMAND [arguments]\n"
    "\n"
    "Train linear, logistic, softmax and multilayer models by gradient descent.\n"
    "\n"
    "commands:\n"
    "  train DATA -o MODEL [options]          train a model on DATA and save it to MODEL\n"
    "  predict MODEL DATA [-o OUT] [--proba]  write a prediction for every row of DATA\n"
    "  eval MODEL DATA                        print the model's metrics on DATA\n"
    "  inspect MODEL [--weights]              print the model as JSON\n"
    "  compare DATA [--optimizers A,B,..]     race optimizers, batch sizes (--batch 1,32,full)\n"
    "                                         or rates (--lr 0.001,0.01) on DATA\n"
    "  lr-find DATA [--plot FILE.svg]         suggest a learning rate by a range test\n"
    "  convert DATA -o FILE.dscd [options]    parse DATA once into a data cache, which every\n"
    "                                         command then maps instead of parsing\n"
    "\n"
    "  descent COMMAND --help                 the options of a command\n"
    "  descent --version                      the version and the optional parts built in\n"
    "\n"
    "'-' stands for standard input or standard output. Results go to standard output and\n"
    "messages to standard error. Exit status: 0 on success, 2 for bad input or usage,\n"
    "1 for a failure while running.\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"train", cmd_train},
        {"predict", cmd_predict},
        {"eval", cmd_eval},
        {"inspect", cmd_inspect},
        {"compare", cmd_compare},
        {"lr-find", cmd_lr_find},
        {"convert", cmd_convert},
    };

    if (argc < 2) {
        fputs(overview, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        fputs(overview, stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("descent %s (features: %s)\n", DSC_VERSION, dsc_build_features());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    if (name[0] == '-')
        cli_error("%s: unknown option (see 'descent --help')", name);
    else
        cli_error("%s: unknown command (see 'descent --help')", name);
    return EXIT_USAGE;
}
