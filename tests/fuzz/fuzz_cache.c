/*
 * fuzz_cache.c - libFuzzer harness for data caches (dsc_table_read on a cache, and
 * dsc_cache_verify).
 *
 * Input: an option byte, then a cache file. The harness writes the right CRC-32 into the
 * header and, when the header places it within the input, into the encoding's entry, so that
 * mutations reach the checks behind the checksums. The option byte picks mapping or reading,
 * the task (classify -1, 0, 1), the missing-value policy, and learning or reading with the
 * encoding of a small training file (the path of predict, with levels and classes matched).
 * A table that reads is fitted, standardised and applied (the arrays it changes are copied
 * out of the mapping first); then the file is verified. The corpus files are caches written
 * by `descent convert`, each behind an option byte.
 */
#include "fuzz_common.h"
#include "internal.h"

#define HEADER_CRC_AT 272
#define SECTIONS_AT 80
#define MAX_FEATURES_FITTED 4096

static fuzz_file file, train_file;
static dsc_prep *model;

/* The fitted encoding of a small training file with a one-hot column and text classes. */
static void make_model(void)
{
    static const char text[] = "a,color,b,label\n1,red,2,cat\n3,blue,,dog\n5,green,6,cat\n"
                               "7,red,8,bird\n";
    dsc_read_options opts;
    int err;

    fuzz_file_init(&train_file, "train.csv");
    fuzz_file_set(&train_file, text, sizeof text - 1);
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_CSV;
    opts.missing = DSC_MISSING_MEAN;
    dsc_table *t = dsc_table_read(train_file.path, &opts, NULL, &err);
    if (!t || dsc_prep_fit(dsc_table_prep(t), t, NULL, 0, 1) != 0 ||
        !(model = dsc_prep_copy(dsc_table_prep(t), &err)))
        abort();
    dsc_table_free(t);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file.path[0]) {
        fuzz_file_init(&file, "fuzz.dscd");
        make_model();
    }
    if (size < 1)
        return 0;
    unsigned options = data[0];
    size_t n = size - 1;
    uint8_t *image = malloc(n ? n : 1);
    if (!image)
        return 0;
    memcpy(image, data + 1, n);

    /* The encoding's CRC, then the header's, which covers the encoding's entry. */
    if (n >= HEADER_CRC_AT + 4) {
        uint64_t offset = get_u64(image + SECTIONS_AT), bytes = get_u64(image + SECTIONS_AT + 8);
        if (offset <= n && bytes <= n - offset) {
            uint32_t crc = dsc_crc32(0, image + offset, (size_t)bytes);
            memcpy(image + SECTIONS_AT + 16, &crc, sizeof crc);
        }
        uint32_t crc = dsc_crc32(0, image, HEADER_CRC_AT);
        memcpy(image + HEADER_CRC_AT, &crc, sizeof crc);
    }
    fuzz_file_set(&file, image, n);
    free(image);

    dsc_read_options opts;
    dsc_read_options_default(&opts);
    dsc__cache_no_mmap = options & 1;
    opts.classify = (int)((options >> 1) % 3) - 1;
    opts.missing = (options >> 3) & 1 ? DSC_MISSING_MEAN : DSC_MISSING_ERROR;
    int for_model = (options >> 4) & 1;
    opts.target = (options >> 5) & 1 ? "label" : NULL;

    int err;
    dsc_table *table = dsc_table_read(file.path, &opts, for_model ? model : NULL, &err);
    if (table && dsc_table_data(table)->n_features <= MAX_FEATURES_FITTED) {
        if (!for_model)
            dsc_prep_fit(dsc_table_prep(table), table, NULL, 0, 1);
        dsc_prep_apply(dsc_table_prep(table), table);
    }
    dsc_table_free(table);
    dsc_cache_verify(file.path);
    dsc__cache_no_mmap = 0;
    return 0;
}
