/*
 * fuzz_libsvm.c - libFuzzer harness for the LIBSVM reader.
 *
 * Input: one option byte (task and scaling), then the file. A file that reads is fitted and
 * read a second time with the encoding it taught (the path of predict). A file whose largest
 * index is beyond 2^20 stops after the read: the fit's statistics cost only the entries, but
 * the imputation and scaling values it learns are a float per feature each, so
 * "1 2000000000:1" legitimately asks for gigabytes, which only slows the fuzzer down.
 */
#include "fuzz_common.h"

static fuzz_file file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dsc_read_options opts;

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

    fuzz_read_fit_reread(file.path, &opts, standardize, NULL, (size_t)1 << 20);
    return 0;
}
