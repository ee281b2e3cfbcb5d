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

    fuzz_read_fit_reread(file.path, &opts, standardize, NULL, 0);
    return 0;
}
