/*
 * fuzz_idx.c - libFuzzer harness for the IDX reader (images and labels files).
 *
 * Input: an option byte, a little-endian u16 length L, then L bytes of the features file and
 * the rest as the labels file. A pair that reads is fitted and its features file read again
 * with the encoding it taught (the path of predict, which needs no labels).
 */
#include "fuzz_common.h"

static fuzz_file features, targets;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dsc_read_options opts;
    int err;

    if (!features.path[0]) {
        fuzz_file_init(&features, "fuzz-images-idx3-ubyte");
        fuzz_file_init(&targets, "fuzz-labels-idx1-ubyte");
    }
    if (size < 3)
        return 0;
    size_t split = fuzz_u16(data + 1);
    if (split > size - 3)
        split = size - 3;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_IDX;
    opts.classify = data[0] % 3 - 1;
    opts.missing = (dsc_missing)((data[0] / 3) % 3);
    int standardize = (data[0] / 9) & 1;
    opts.labels_path = targets.path;
    fuzz_file_set(&features, data + 3, split);
    fuzz_file_set(&targets, data + 3 + split, size - 3 - split);

    dsc_table *table = dsc_table_read(features.path, &opts, NULL, &err);
    if (!table)
        return 0;
    dsc_prep *prep = dsc_table_prep(table);
    if (dsc_prep_fit(prep, table, NULL, 0, standardize) == 0)
        dsc_prep_apply(prep, table);

    opts.labels_path = (data[0] / 18) & 1 ? targets.path : NULL;
    dsc_table *again = dsc_table_read(features.path, &opts, prep, &err);
    if (again)
        dsc_prep_apply(dsc_table_prep(again), again);
    dsc_table_free(again);
    dsc_table_free(table);
    return 0;
}
