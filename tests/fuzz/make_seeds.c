/*
 * make_seeds.c - writes the seed corpora of the model and checkpoint harnesses:
 *   make_seeds MODEL_DIR CHECKPOINT_DIR
 * Each seed is a file written by the library with its closing CRC-32 removed (the harnesses
 * append the right one). Build it against the library, e.g.
 *   cc -Iinclude -Itests/fuzz tests/fuzz/make_seeds.c build/libdescent.a -lm -lz -fopenmp
 * The corpus in tests/fuzz/corpus is its output and is committed; rerun it after a change
 * of the file format.
 */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copy path to dir/name without its last 4 bytes, then remove path. */
static void strip_crc(const char *path, const char *dir, const char *name)
{
    static unsigned char buf[1 << 20];
    char out[512];
    FILE *in = fopen(path, "rb");
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;

    if (in)
        fclose(in);
    if (n < 4) {
        fprintf(stderr, "make_seeds: cannot read %s\n", path);
        exit(1);
    }
    snprintf(out, sizeof out, "%s/%s", dir, name);
    FILE *fp = fopen(out, "wb");
    if (!fp || fwrite(buf, 1, n - 4, fp) != n - 4 || fclose(fp) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", out);
        exit(1);
    }
    unlink(path);
}

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, dsc_last_error());
        exit(1);
    }
}

/* A model file of cfg with weights from seed, the prep of csv_text (when given), settings. */
static void model_seed(const char *dir, const char *name, const dsc_model_config *cfg,
                       const char *csv_text, const dsc_read_options *opts,
                       const char *settings)
{
    const char *tmp = "/tmp/make_seeds.model", *csv_path = "/tmp/make_seeds.csv";
    dsc_table *table = NULL;
    dsc_model_config local = *cfg;

    if (csv_text) {
        FILE *fp = fopen(csv_path, "w");
        fputs(csv_text, fp);
        fclose(fp);
        table = dsc_table_read(csv_path, opts, NULL, NULL);
        if (!table)
            check(-1, "dsc_table_read");
        check(dsc_prep_fit(dsc_table_prep(table), table, NULL, 0, 1), "dsc_prep_fit");
        dsc_prep *prep = dsc_table_prep(table);
        local.n_inputs = dsc_prep_n_features(prep);
        if (dsc_prep_n_classes(prep))
            local.n_outputs = dsc_prep_n_classes(prep);
        unlink(csv_path);
    }
    dsc_model *model = dsc_model_new(&local, NULL);
    if (!model)
        check(-1, "dsc_model_new");
    check(dsc_model_init_weights(model, DSC_INIT_XAVIER_UNIFORM, 3), "init");
    check(dsc_model_save(tmp, model, table ? dsc_table_prep(table) : NULL, settings), "save");
    strip_crc(tmp, dir, name);
    dsc_model_free(model);
    dsc_table_free(table);
}

/* A checkpoint of the harness's trainer after steps steps, on a model of cfg. */
static void checkpoint_seed(const char *dir, const char *name, const dsc_model_config *cfg,
                            int steps)
{
    const char *tmp = "/tmp/make_seeds.ckpt";
    static fuzz_train_data d;
    dsc_train_config tc;

    fuzz_train_data_fill(&d);
    dsc_model *model = dsc_model_new(cfg, NULL);
    if (!model)
        check(-1, "dsc_model_new");
    dsc_data data = fuzz_train_view(&d, dsc_model_is_classifier(model), cfg->n_outputs);
    fuzz_train_config(&tc);
    dsc_trainer *t = dsc_trainer_new(model, &data, NULL, &tc, NULL);
    if (!t)
        check(-1, "dsc_trainer_new");
    for (int i = 0; i < steps; i++)
        dsc_trainer_step(t);
    check(dsc_checkpoint_save(tmp, model, t, NULL, "optimizer=adam\nbatch=4\n"), "checkpoint");
    strip_crc(tmp, dir, name);
    dsc_trainer_free(t);
    dsc_model_free(model);
}

int main(int argc, char **argv)
{
    dsc_model_config cfg;
    dsc_read_options opts;

    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds MODEL_DIR CHECKPOINT_DIR\n");
        return 2;
    }
    const char *mdir = argv[1], *cdir = argv[2];
    dsc_read_options_default(&opts);

    dsc_model_config_init(&cfg, 3, 1, DSC_LOSS_SQUARED);
    model_seed(mdir, "linear", &cfg, NULL, &opts, NULL);
    model_seed(mdir, "linear_settings", &cfg, NULL, &opts, "model=linear\nlr=0.1\n");
    dsc_model_config_init(&cfg, 2, 2, DSC_LOSS_LOG);
    model_seed(mdir, "logistic", &cfg, NULL, &opts, "model=logistic\n");
    dsc_model_config_init(&cfg, 4, 3, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = 2;
    cfg.hidden[0] = 3;
    cfg.hidden[1] = 2;
    cfg.activation[0] = DSC_ACT_TANH;
    cfg.activation[1] = DSC_ACT_LEAKY_RELU;
    cfg.act_param = 0.2f;
    model_seed(mdir, "mlp", &cfg, NULL, &opts, NULL);
    dsc_model_config_init(&cfg, 1, 1, DSC_LOSS_HUBER);
    cfg.loss_param = 2.0f;
    model_seed(mdir, "csv_regression", &cfg, "a,b,y\n1,2,3\n4,5,6\n7,8,10\n", &opts,
               "format=csv\n");
    dsc_model_config_init(&cfg, 1, 2, DSC_LOSS_SOFTMAX);
    model_seed(mdir, "csv_classes", &cfg,
               "color,size,label\nred,1,cat\nblue,2,dog\ngreen,3,bird\nred,4,cat\n", &opts,
               "model=softmax\n");
    opts.missing = DSC_MISSING_MEDIAN;
    opts.classify = 1;
    dsc_model_config_init(&cfg, 1, 2, DSC_LOSS_HINGE);
    model_seed(mdir, "csv_missing", &cfg, "x,k,t\n1,a,0\n,b,1\n3,,0\n4,a,1\n", &opts, NULL);

    dsc_model_config_init(&cfg, FUZZ_FEATURES, 2, DSC_LOSS_LOG);
    checkpoint_seed(cdir, "logistic_0", &cfg, 0);
    checkpoint_seed(cdir, "logistic_5", &cfg, 5);
    dsc_model_config_init(&cfg, FUZZ_FEATURES, 3, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = 1;
    cfg.hidden[0] = 2;
    checkpoint_seed(cdir, "mlp_3", &cfg, 3);
    dsc_model_config_init(&cfg, FUZZ_FEATURES, 2, DSC_LOSS_SQUARED);
    checkpoint_seed(cdir, "regression_7", &cfg, 7);
    return 0;
}
