/*
 * fuzz_csv.c - libFuzzer harness for the CSV reader.
 *
 * Input: two option bytes, then the file. The options pick the delimiter, header, task,
 * missing-value policy, target column and level limit. A file that reads is then fitted and
 * standardised, and read a second time with the encoding it taught (the path of predict).
 */
#include "fuzz_common.h"

static fuzz_file file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delimiters[] = {0, ',', ';', '\t', '|'};
    static const char *const targets[] = {NULL, "1", "2", "y", "label"};
    static const size_t max_levels[] = {1000, 1, 3};
    dsc_read_options opts;
    int err;

    if (!file.path[0])
        fuzz_file_init(&file, "fuzz.csv");
    if (size < 2)
        return 0;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_CSV;
    opts.delimiter = delimiters[data[0] % 5];
    opts.header = (data[0] / 5) % 3 - 1;
    opts.classify = (data[0] / 15) % 3 - 1;
    opts.missing = (dsc_missing)(data[1] % 3);
    opts.target = targets[(data[1] / 3) % 5];
    opts.max_levels = max_levels[(data[1] / 15) % 3];
    int standardize = (data[1] / 45) & 1;
    fuzz_file_set(&file, data + 2, size - 2);

    dsc_table *table = dsc_table_read(file.path, &opts, NULL, &err);
    if (!table)
        return 0;
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
