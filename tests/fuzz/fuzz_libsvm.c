/*
 * fuzz_libsvm.c - libFuzzer harness for the LIBSVM reader.
 *
 * Input: one option byte (task and scaling), then the file. A file that reads is fitted and
 * read a second time with the encoding it taught (the path of predict). A file whose largest
 * index is beyond 2^20 stops after the read: fitting allocates a few floats per feature, so
 * "1 2000000000:1" legitimately asks for gigabytes, which only slows the fuzzer down.
 */
#include "fuzz_common.h"

static fuzz_file file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dsc_read_options opts;
    int err;

    if (!file.path[0])
        fuzz_file_init(&file, "fuzz.svm");
    if (size < 1)
        return 0;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_LIBSVM;
    opts.classify = data[0] % 3 - 1;
    opts.missing = (dsc_missing)((data[0] / 3) % 3);
    int standardize = (data[0] / 9) & 1;
    fuzz_file_set(&file, data + 1, size - 1);

    dsc_table *table = dsc_table_read(file.path, &opts, NULL, &err);
    if (!table)
        return 0;
    if (dsc_table_data(table)->n_features > ((size_t)1 << 20)) {
        dsc_table_free(table);
        return 0;
    }
    dsc_prep *prep = dsc_table_prep(table);
    if (dsc_prep_fit(prep, table, NULL, 0, standardize) == 0)
        dsc_prep_apply(prep, table);

    dsc_table *again = dsc_table_read(file.path, &opts, prep, &err);
    if (again)
        dsc_prep_apply(dsc_table_prep(again), again);
    dsc_table_free(again);
    dsc_table_free(table);
    return 0;
}
