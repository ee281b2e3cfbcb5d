/*
 * fuzz_checkpoint.c - libFuzzer harness for the checkpoint loader (dsc_checkpoint_load) and
 * the trainer state it carries (dsc_trainer_state_load).
 *
 * Input: a checkpoint file without its closing CRC-32, which the harness appends (see
 * fuzz_model.c). When the checkpoint loads and its model takes 3 features with at most 4
 * outputs, a trainer is built on the fixed data of fuzz_train.h, the state is loaded into it
 * and, when accepted, training goes on for a few steps and the state is saved again.
 */
#include "fuzz_common.h"
#include "fuzz_train.h"

static fuzz_file file;

/* Resume from state as `descent train --resume` would, for a few steps. */
static void resume(dsc_model *model, const void *state, size_t state_size)
{
    static fuzz_train_data d;
    const dsc_model_config *mc = dsc_model_config_of(model);
    dsc_train_config cfg;

    if (mc->n_inputs != FUZZ_FEATURES || mc->n_outputs > FUZZ_TARGETS)
        return;
    fuzz_train_data_fill(&d);
    dsc_data data = fuzz_train_view(&d, dsc_model_is_classifier(model), mc->n_outputs);
    fuzz_train_config(&cfg);
    cfg.init_weights = 0;
    dsc_trainer *t = dsc_trainer_new(model, &data, NULL, &cfg, NULL);
    if (!t)
        return;
    if (dsc_trainer_state_load(t, state, state_size) == 0) {
        for (int i = 0; i < 4 && dsc_trainer_step(t) == 1; i++)
            continue;
        size_t n = dsc_trainer_state_size(t);
        void *again = malloc(n);
        if (again)
            dsc_trainer_state_save(t, again, n);
        free(again);
    }
    dsc_trainer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file.path[0])
        fuzz_file_init(&file, "fuzz.ckpt");
    if (fuzz_file_set_with_crc(&file, data, size) != 0)
        return 0;

    dsc_model *model = NULL;
    dsc_prep *prep = NULL;
    char *settings = NULL;
    void *state = NULL;
    size_t state_size = 0;
    if (dsc_checkpoint_load(file.path, &model, &prep, &settings, &state, &state_size) != 0)
        return 0;
    resume(model, state, state_size);
    dsc_model_free(model);
    dsc_prep_free(prep);
    dsc_free(settings);
    dsc_free(state);
    return 0;
}
