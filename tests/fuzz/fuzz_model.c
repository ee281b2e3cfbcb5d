/*
 * fuzz_model.c - libFuzzer harness for the model file loader (dsc_model_load).
 *
 * Input: a model file without its closing CRC-32; the harness appends the right one, so that
 * mutations reach the fields behind the checksum instead of stopping at it. The corpus files
 * are model files with their last 4 bytes removed. A model that loads is described as JSON
 * (with weights) and asked for a prediction on a row of zeros.
 */
#include "fuzz_common.h"

static fuzz_file file;
static FILE *sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file.path[0]) {
        fuzz_file_init(&file, "fuzz.model");
        sink = fopen("/dev/null", "w");
        if (!sink)
            abort();
    }
    if (fuzz_file_set_with_crc(&file, data, size) != 0)
        return 0;

    dsc_model *model = NULL;
    dsc_prep *prep = NULL;
    char *settings = NULL;
    if (dsc_model_load(file.path, &model, &prep, &settings) != 0)
        return 0;
    dsc_model_write_json(sink, model, prep, settings, 1);

    const dsc_model_config *cfg = dsc_model_config_of(model);
    if (cfg->n_inputs <= 4096) {
        float *row = calloc(cfg->n_inputs, sizeof *row);
        float *out = calloc(dsc_model_n_logits(model) + cfg->n_outputs, sizeof *out);
        int32_t label;
        dsc_data one = {.n_rows = 1, .n_features = cfg->n_inputs, .x = row};
        if (row && out) {
            dsc_model_decision(model, &one, 0, 1, out);
            if (dsc_model_is_classifier(model)) {
                dsc_model_predict_class(model, &one, 0, 1, &label);
                dsc_model_predict_proba(model, &one, 0, 1, out);
            }
        }
        free(row);
        free(out);
    }
    dsc_prep *copy = prep ? dsc_prep_copy(prep, NULL) : NULL;
    dsc_prep_free(copy);
    dsc_model_free(model);
    dsc_prep_free(prep);
    dsc_free(settings);
    return 0;
}
