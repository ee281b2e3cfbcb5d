/* quickstart.c - logistic regression on the bundled breast-cancer set through descent.h. */
#include <descent.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "quickstart: %s: %s\n", what, dsc_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "data/breast_cancer.csv";
    dsc_read_options read;
    dsc_read_options_default(&read);
    dsc_table *table = dsc_table_read(path, &read, NULL, NULL);
    if (!table)
        return fail(path);
    const dsc_data *data = dsc_table_data(table);
    dsc_prep *prep = dsc_table_prep(table);

    /* Hold out 20 % of the rows; standardise with the statistics of the other 80 %. */
    uint32_t *train_rows = malloc(data->n_rows * sizeof *train_rows);
    uint32_t *val_rows = malloc(data->n_rows * sizeof *val_rows);
    size_t n_train, n_val;
    if (!train_rows || !val_rows ||
        dsc_split_rows(data->n_rows, data->label, dsc_prep_n_classes(prep), 0.2, 1, train_rows,
                       &n_train, val_rows, &n_val) != DSC_OK ||
        dsc_prep_fit(prep, table, train_rows, n_train, 1) != DSC_OK ||
        dsc_prep_apply(prep, table) != DSC_OK)
        return fail("preprocessing");

    /* Logistic regression, mini-batch SGD with momentum; the trainer draws the same split. */
    dsc_model_config model_cfg;
    dsc_model_config_init(&model_cfg, data->n_features, 2, DSC_LOSS_LOG);
    dsc_model *model = dsc_model_new(&model_cfg, NULL);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    dsc_optim_config_default(&cfg.optim, DSC_OPT_MOMENTUM);
    cfg.optim.lr = 0.01;
    cfg.epochs = 50;
    cfg.val_fraction = 0.2;
    cfg.seed = 1;
    dsc_trainer *trainer = model ? dsc_trainer_new(model, data, NULL, &cfg, NULL) : NULL;
    if (!trainer || dsc_trainer_run(trainer) != DSC_OK)
        return fail("training");

    size_t n_epochs;
    const dsc_epoch_stats *last = dsc_trainer_history(trainer, &n_epochs) + n_epochs - 1;
    printf("%zu epochs: training loss %.4f, held-out loss %.4f, held-out accuracy %.4f\n",
           n_epochs, last->train_loss, last->val_loss, last->val_metric);
    dsc_trainer_free(trainer);
    dsc_model_free(model);
    dsc_table_free(table);
    free(train_rows);
    free(val_rows);
    return 0;
}
