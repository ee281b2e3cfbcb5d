/*
 * test_cache.c - data caches (dsc_table_save_cache, and dsc_table_read on a cache): round
 * trips equal to the parsed table (dense, sparse, string classes, one-hot columns, missing
 * values, weights), mapped in place or read without mmap, matched to a model's encoding as
 * the CSV reader would, training on a cache giving the same model bytes as on the CSV, and
 * truncated, bit-flipped, crafted and future-version files refused with an error; every
 * failed allocation a clean DSC_ENOMEM; and `descent convert` from the command line.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Offsets of the version 1 header that the tests change (see cache.c). */
#define AT_VERSION 12
#define AT_N_ROWS 24
#define AT_SECTIONS 80
#define AT_HEADER_CRC 272
#define HEADER_END 276
enum { SEC_ENCODING, SEC_X, SEC_ROW_PTR, SEC_COL, SEC_VAL, SEC_LABEL, SEC_Y, SEC_WEIGHT };

/* ---- Files -------------------------------------------------------------------------------- */

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(bytes, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

/* The bytes of a file (free them); *n their count. */
static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, len = 0, got;
    unsigned char *bytes = malloc(cap);

    if (!f || !bytes)
        abort();
    while ((got = fread(bytes + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap && !(bytes = realloc(bytes, cap *= 2)))
            abort();
    }
    fclose(f);
    *n = len;
    return bytes;
}

static uint64_t get_u64_at(const unsigned char *b, size_t at)
{
    uint64_t v;
    memcpy(&v, b + at, sizeof v);
    return v;
}

static void put_u32_at(unsigned char *b, size_t at, uint32_t v)
{
    memcpy(b + at, &v, sizeof v);
}

static void put_u64_at(unsigned char *b, size_t at, uint64_t v)
{
    memcpy(b + at, &v, sizeof v);
}

/* The offset and size of section s in a cache image. */
static size_t section_offset(const unsigned char *b, int s)
{
    return (size_t)get_u64_at(b, AT_SECTIONS + 24 * (size_t)s);
}

static size_t section_bytes(const unsigned char *b, int s)
{
    return (size_t)get_u64_at(b, AT_SECTIONS + 24 * (size_t)s + 8);
}

/* Recompute the header's CRC after changing a field, so that the checks behind it run. */
static void fix_header_crc(unsigned char *b)
{
    put_u32_at(b, AT_HEADER_CRC, dsc_crc32(0, b, AT_HEADER_CRC));
}

/* ---- Data --------------------------------------------------------------------------------- */

/* A classification CSV: numeric size, one-hot color, numeric weight with gaps, text class. */
static void write_pets(const char *path, int rows, int test_variant)
{
    static const char *const colors[] = {"red", "green", "blue", "purple"};
    static const char *const kinds[] = {"cat", "dog", "bird"};
    FILE *f = fopen(path, "w");

    if (!f)
        abort();
    fprintf(f, "size,color,weight,species\n");
    for (int i = 0; i < rows; i++) {
        /* The test variant starts with other colors and classes, and has an unseen color. */
        int k = test_variant ? (i + 1) % 3 : i % 3;
        int c = test_variant ? (i % 5 == 4 ? 3 : (i + 2) % 3) : (i / 2) % 3;
        fprintf(f, "%.2f,%s,", 1.0 + k + 0.13 * (i % 7), colors[c]);
        if (i % 7 != 3)
            fprintf(f, "%.2f", 0.5 * k - 0.03 * i);
        fprintf(f, ",%s\n", kinds[k]);
    }
    if (fclose(f) != 0)
        abort();
}

/* A regression CSV of n rows and k features, with numeric targets. */
static void write_numbers(const char *path, int rows, int k, int whole_targets)
{
    FILE *f = fopen(path, "w");
    uint64_t s = 12345;

    if (!f)
        abort();
    for (int j = 0; j < k; j++)
        fprintf(f, "x%d,", j + 1);
    fprintf(f, "y\n");
    for (int i = 0; i < rows; i++) {
        double y = 0.0;
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double v = (double)(s >> 40) / (double)(1 << 24) * 4.0 - 2.0;
            y += (j + 1) * v;
            fprintf(f, "%.4f,", v);
        }
        if (whole_targets)
            fprintf(f, "%d\n", (i * 7) % 4);
        else
            fprintf(f, "%.5f\n", y);
    }
    if (fclose(f) != 0)
        abort();
}

/* A LIBSVM file: whole labels (classes) or real ones (regression), indices to max_index. */
static void write_svm(const char *path, int rows, int real_labels, int shift, int max_index)
{
    FILE *f = fopen(path, "w");

    if (!f)
        abort();
    for (int i = 0; i < rows; i++) {
        if (real_labels)
            fprintf(f, "%.3f", 0.25 * i - 1.0);
        else
            fprintf(f, "%d", 1 + (i + shift) % 3);
        for (int j = 1; j <= max_index; j++) {
            if ((i + j) % 4 == 0)
                fprintf(f, " %d:%.3f", j, 0.1 * j - 0.07 * i);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        abort();
}

static dsc_table *read_with(const char *path, const dsc_read_options *opts,
                            const dsc_prep *prep)
{
    int err = 0;
    dsc_table *t = dsc_table_read(path, opts, prep, &err);
    if (!t)
        fprintf(stderr, "    reading %s failed: %s\n", path, dsc_last_error());
    return t;
}

static dsc_table *read_csv(const char *path, dsc_missing missing, int classify)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = missing;
    opts.classify = classify;
    return read_with(path, &opts, NULL);
}

/* ---- Comparing tables --------------------------------------------------------------------- */

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_bytes(const void *a, const void *b, size_t n)
{
    return (!a && !b) || (a && b && memcmp(a, b, n) == 0);
}

/* The encodings are the same (the fitted parts aside: neither table has been fitted). */
static void check_same_prep(const dsc_prep *a, const dsc_prep *b, int line)
{
    bool same = a->format == b->format && a->missing == b->missing &&
                a->n_columns == b->n_columns && a->n_features == b->n_features &&
                same_text(a->target_name, b->target_name) && a->n_targets == b->n_targets &&
                a->n_classes == b->n_classes;
    for (size_t c = 0; same && c < a->n_columns; c++) {
        const dsc_column *x = &a->columns[c], *y = &b->columns[c];
        same = same_text(x->name, y->name) && x->categorical == y->categorical &&
               x->n_levels == y->n_levels && x->first_feature == y->first_feature;
        for (size_t v = 0; same && v < x->n_levels; v++)
            same = strcmp(x->levels[v], y->levels[v]) == 0;
    }
    for (size_t k = 0; same && k < a->n_classes; k++)
        same = strcmp(a->classes[k], b->classes[k]) == 0;
    if (!same)
        test_report(__FILE__, line, "the encodings differ");
}

/* Every array and count of the tables is the same, bit for bit (NaN included). */
static void check_same_table(const dsc_table *a, const dsc_table *b, int line)
{
    const dsc_data *x = dsc_table_data(a), *y = dsc_table_data(b);

    if (x->n_rows != y->n_rows || x->n_features != y->n_features ||
        x->n_targets != y->n_targets) {
        test_report(__FILE__, line, "shapes %zu x %zu (%zu targets) and %zu x %zu (%zu)",
                    x->n_rows, x->n_features, x->n_targets, y->n_rows, y->n_features,
                    y->n_targets);
        return;
    }
    size_t n = x->n_rows, nnz = x->row_ptr ? (size_t)x->row_ptr[n] : 0;
    if (!same_bytes(x->x, y->x, n * x->n_features * sizeof(float)))
        test_report(__FILE__, line, "the feature matrices differ");
    if (!same_bytes(x->row_ptr, y->row_ptr, (n + 1) * sizeof(uint64_t)) ||
        !same_bytes(x->col, y->col, nnz * sizeof(uint32_t)) ||
        !same_bytes(x->val, y->val, nnz * sizeof(float)))
        test_report(__FILE__, line, "the sparse features differ");
    if (!same_bytes(x->label, y->label, n * sizeof(int32_t)))
        test_report(__FILE__, line, "the class labels differ");
    if (!same_bytes(x->y, y->y, n * x->n_targets * sizeof(float)))
        test_report(__FILE__, line, "the targets differ");
    if (!same_bytes(x->weight, y->weight, n * sizeof(float)))
        test_report(__FILE__, line, "the weights differ");
    if (a->n_missing != b->n_missing || a->n_unseen != b->n_unseen)
        test_report(__FILE__, line, "missing %zu and %zu, unseen %zu and %zu", a->n_missing,
                    b->n_missing, a->n_unseen, b->n_unseen);
    check_same_prep(a->prep, b->prep, line);
}

#define CHECK_SAME_TABLE(a, b) check_same_table(a, b, __LINE__)

/* p lies in the table's mapped file, at a multiple of 64 bytes. */
static bool in_place(const dsc_table *t, const void *p)
{
    const char *base = t->mapping, *q = p;
    return base && q >= base && q < base + t->mapping_size && (uintptr_t)q % 64 == 0;
}

/* Save table as a cache at path and read it back with opts and prep. */
static dsc_table *round_trip(const dsc_table *table, const char *path,
                             const dsc_read_options *opts, const dsc_prep *prep)
{
    int rc = dsc_table_save_cache(path, table);
    if (rc != DSC_OK) {
        fprintf(stderr, "    saving %s failed: %s\n", path, dsc_last_error());
        return NULL;
    }
    return read_with(path, opts, prep);
}

/* ---- Round trips -------------------------------------------------------------------------- */

TEST(cache_round_trip_dense_regression_is_mapped_in_place)
{
    char csv[512], cache[512];
    tmp_path(csv, sizeof csv, "numbers.csv");
    tmp_path(cache, sizeof cache, "numbers.dscd");
    write_numbers(csv, 57, 5, 0);

    dsc_table *parsed = read_csv(csv, DSC_MISSING_ERROR, -1);
    REQUIRE(parsed);
    dsc_table *cached = round_trip(parsed, cache, NULL, NULL);
    REQUIRE(cached);
    CHECK_SAME_TABLE(parsed, cached);
    const dsc_data *d = dsc_table_data(cached);
    CHECK(d->y != NULL && d->label == NULL && d->n_targets == 1);
    CHECK(in_place(cached, d->x));
    CHECK(in_place(cached, d->y));
    CHECK(cached->mapping_block == NULL); /* mapped, not read */
    CHECK_EQ_INT(dsc_cache_verify(cache), DSC_OK);

    /* The name does not matter, nor the format asked for: the magic decides. */
    char other[512];
    tmp_path(other, sizeof other, "numbers.svm");
    REQUIRE(rename(cache, other) == 0);
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_LIBSVM;
    dsc_table *again = read_with(other, &opts, NULL);
    REQUIRE(again);
    CHECK_SAME_TABLE(parsed, again);
    dsc_table_free(again);
    dsc_table_free(cached);
    dsc_table_free(parsed);
}

TEST(cache_round_trip_sparse_classes_and_targets)
{
    char svm[512], cache[512];
    tmp_path(svm, sizeof svm, "data.svm");
    tmp_path(cache, sizeof cache, "data.dscd");

    for (int real = 0; real < 2; real++) {
        write_svm(svm, 31, real, 0, 12);
        dsc_table *parsed = read_with(svm, NULL, NULL);
        REQUIRE(parsed);
        dsc_table *cached = round_trip(parsed, cache, NULL, NULL);
        REQUIRE(cached);
        CHECK_SAME_TABLE(parsed, cached);
        const dsc_data *d = dsc_table_data(cached);
        CHECK(d->x == NULL && d->row_ptr != NULL);
        CHECK(real ? d->y != NULL : d->label != NULL);
        CHECK(in_place(cached, d->row_ptr) && in_place(cached, d->col) &&
              in_place(cached, d->val));
        CHECK_EQ_INT(dsc_cache_verify(cache), DSC_OK);
        dsc_table_free(cached);
        dsc_table_free(parsed);
    }
}

TEST(cache_round_trip_string_classes_one_hot_and_missing_values)
{
    char csv[512], cache[512];
    tmp_path(csv, sizeof csv, "pets.csv");
    tmp_path(cache, sizeof cache, "pets.dscd");
    write_pets(csv, 40, 0);

    dsc_table *parsed = read_csv(csv, DSC_MISSING_MEAN, -1);
    REQUIRE(parsed);
    CHECK(parsed->n_missing > 0);
    CHECK_EQ_INT(dsc_prep_n_classes(parsed->prep), 3);
    CHECK(parsed->prep->columns[1].categorical);

    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEAN;
    dsc_table *cached = round_trip(parsed, cache, &opts, NULL);
    REQUIRE(cached);
    CHECK_SAME_TABLE(parsed, cached);
    CHECK(in_place(cached, dsc_table_data(cached)->label));
    CHECK(strcmp(dsc_prep_class_name(cached->prep, 0), "cat") == 0);
    CHECK(strcmp(cached->prep->columns[1].levels[2], "blue") == 0);

    /* Fitting and applying copies what it changes: the mapped file stays as it was. */
    dsc_prep *prep = dsc_table_prep(cached);
    CHECK_EQ_INT(dsc_prep_fit(prep, cached, NULL, 0, 1), DSC_OK);
    CHECK_EQ_INT(dsc_prep_apply(prep, cached), DSC_OK);
    CHECK(!in_place(cached, dsc_table_data(cached)->x));
    CHECK_EQ_INT(dsc_cache_verify(cache), DSC_OK);

    /* ... and such a table cannot be saved as if it were as read. */
    char again[512];
    CHECK_EQ_INT(dsc_table_save_cache(tmp_path(again, sizeof again, "again.dscd"), cached),
                 DSC_ESTATE);
    CHECK(access(again, F_OK) != 0);
    dsc_table_free(cached);
    dsc_table_free(parsed);
}

TEST(cache_read_without_mmap_gives_the_same_table)
{
    char csv[512], cache[512];
    tmp_path(csv, sizeof csv, "pets.csv");
    tmp_path(cache, sizeof cache, "pets.dscd");
    write_pets(csv, 25, 0);
    dsc_table *parsed = read_csv(csv, DSC_MISSING_MEDIAN, -1);
    REQUIRE(parsed);
    REQUIRE(dsc_table_save_cache(cache, parsed) == DSC_OK);

    dsc__cache_no_mmap = 1;
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEDIAN;
    dsc_table *cached = read_with(cache, &opts, NULL);
    int verified = dsc_cache_verify(cache);
    dsc__cache_no_mmap = 0;
    REQUIRE(cached);
    CHECK(cached->mapping_block != NULL); /* read into a block, used in place all the same */
    CHECK(in_place(cached, dsc_table_data(cached)->x));
    CHECK_SAME_TABLE(parsed, cached);
    CHECK_EQ_INT(verified, DSC_OK);

    /* The policy of the read applies, not the one of the conversion. */
    opts.missing = DSC_MISSING_MEAN;
    dsc_table *mean = read_with(cache, &opts, NULL);
    REQUIRE(mean);
    CHECK_EQ_INT(mean->prep->missing, DSC_MISSING_MEAN);
    dsc_table_free(mean);
    dsc_table_free(cached);
    dsc_table_free(parsed);
}

TEST(cache_keeps_sample_weights)
{
    char csv[512], cache[512];
    tmp_path(csv, sizeof csv, "numbers.csv");
    tmp_path(cache, sizeof cache, "numbers.dscd");
    write_numbers(csv, 9, 2, 0);
    dsc_table *parsed = read_csv(csv, DSC_MISSING_ERROR, -1);
    REQUIRE(parsed);

    /* Tables from data files have no weights yet; give this one some, as a caller could. */
    float weights[9] = {1, 0.5f, 2, 0, 1, 3, 0.25f, 1, 1};
    parsed->data.weight = weights;
    dsc_table *cached = round_trip(parsed, cache, NULL, NULL);
    parsed->data.weight = NULL;
    REQUIRE(cached);
    const float *w = dsc_table_data(cached)->weight;
    REQUIRE(w != NULL);
    CHECK(in_place(cached, w));
    CHECK(memcmp(w, weights, sizeof weights) == 0);

    /* A negative weight in the file is refused on loading. */
    size_t n;
    unsigned char *b = read_file(cache, &n);
    float bad = -1.0f;
    memcpy(b + section_offset(b, SEC_WEIGHT) + 4, &bad, sizeof bad);
    write_file(cache, b, n);
    free(b);
    int err = 0;
    CHECK(dsc_table_read(cache, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "row 2 has a weight that is not finite and >= 0") != NULL);
    dsc_table_free(cached);
    dsc_table_free(parsed);
}

/* ---- Matched to a model's encoding -------------------------------------------------------- */

TEST(cache_read_for_a_model_matches_the_csv_read_for_it)
{
    char train_csv[512], test_csv[512], cache[512], encoded[512];
    tmp_path(train_csv, sizeof train_csv, "train.csv");
    tmp_path(test_csv, sizeof test_csv, "test.csv");
    tmp_path(cache, sizeof cache, "test.dscd");
    tmp_path(encoded, sizeof encoded, "test-encoded.dscd");
    write_pets(train_csv, 30, 0);
    write_pets(test_csv, 17, 1); /* other level and class order, an unseen color */

    dsc_table *train = read_csv(train_csv, DSC_MISSING_MEAN, -1);
    REQUIRE(train);
    const dsc_prep *model = train->prep;
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.classify = 1;
    dsc_table *want = read_with(test_csv, &opts, model);
    REQUIRE(want);
    CHECK(want->n_unseen > 0);

    /* The test file converted on its own: its levels and classes are re-mapped. */
    dsc_table *own = read_csv(test_csv, DSC_MISSING_MEAN, -1);
    REQUIRE(own);
    CHECK(strcmp(own->prep->classes[0], "dog") == 0); /* its own order differs */
    dsc_table *got = round_trip(own, cache, &opts, model);
    REQUIRE(got);
    CHECK_SAME_TABLE(want, got);
    CHECK(!in_place(got, dsc_table_data(got)->x));
    CHECK(!in_place(got, dsc_table_data(got)->label));

    /* Converted with the model's encoding (convert --model): used in place. */
    dsc_table *as_model = round_trip(want, encoded, &opts, model);
    REQUIRE(as_model);
    CHECK_SAME_TABLE(want, as_model);
    CHECK(in_place(as_model, dsc_table_data(as_model)->x));
    CHECK(in_place(as_model, dsc_table_data(as_model)->label));

    /* A class the model does not know is an error naming the row, as in a CSV file. */
    FILE *f = fopen(test_csv, "a");
    REQUIRE(f);
    fprintf(f, "1.0,red,0.5,fish\n");
    fclose(f);
    dsc_table *fishy = read_csv(test_csv, DSC_MISSING_MEAN, -1);
    REQUIRE(fishy);
    REQUIRE(dsc_table_save_cache(cache, fishy) == DSC_OK);
    int err = 0;
    CHECK(dsc_table_read(cache, &opts, model, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EFORMAT);
    char expected[700];
    snprintf(expected, sizeof expected, "%s: row 18: class 'fish' was not seen in training",
             cache);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    dsc_table_free(fishy);
    dsc_table_free(as_model);
    dsc_table_free(got);
    dsc_table_free(own);
    dsc_table_free(want);
    dsc_table_free(train);
}

TEST(cache_numeric_targets_match_a_classifier_and_sparse_features_fit)
{
    char train_svm[512], test_svm[512], cache[512];
    tmp_path(train_svm, sizeof train_svm, "train.svm");
    tmp_path(test_svm, sizeof test_svm, "test.svm");
    tmp_path(cache, sizeof cache, "test.dscd");
    write_svm(train_svm, 30, 0, 0, 12);
    write_svm(test_svm, 7, 0, 2, 9); /* fewer features than in training: they fit */

    dsc_table *train = read_with(train_svm, NULL, NULL);
    REQUIRE(train);
    dsc_table *want = read_with(test_svm, NULL, train->prep);
    REQUIRE(want);

    /* The test file converted as regression (classify 0): its numbers become the classes. */
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.classify = 0;
    dsc_table *own = read_with(test_svm, &opts, NULL);
    REQUIRE(own);
    CHECK(dsc_table_data(own)->y != NULL);
    CHECK_EQ_INT(dsc_table_data(own)->n_features, 9);
    dsc_table *got = round_trip(own, cache, NULL, train->prep);
    REQUIRE(got);
    CHECK_SAME_TABLE(want, got);
    CHECK_EQ_INT(dsc_table_data(got)->n_features, 12);
    dsc_table_free(got);
    dsc_table_free(own);
    dsc_table_free(want);
    dsc_table_free(train);
}

/* ---- Reading options ---------------------------------------------------------------------- */

TEST(cache_reading_options_target_classify_and_missing)
{
    char csv[512], cache[512], expected[1024];
    int err = 0;
    tmp_path(csv, sizeof csv, "numbers.csv");
    tmp_path(cache, sizeof cache, "numbers.dscd");
    write_numbers(csv, 20, 3, 1); /* whole-number targets 0..3: regression unless asked */

    dsc_table *parsed = read_csv(csv, DSC_MISSING_ERROR, -1);
    REQUIRE(parsed && dsc_table_data(parsed)->y);
    REQUIRE(dsc_table_save_cache(cache, parsed) == DSC_OK);

    /* classify 1 learns the classes from the numbers, as the CSV reader does. */
    dsc_table *classes_csv = read_csv(csv, DSC_MISSING_ERROR, 1);
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.classify = 1;
    dsc_table *classes_cache = read_with(cache, &opts, NULL);
    REQUIRE(classes_csv && classes_cache);
    CHECK_SAME_TABLE(classes_csv, classes_cache);

    /* ... and classify 0 turns numeric class labels back into targets. */
    char cache2[512];
    tmp_path(cache2, sizeof cache2, "classes.dscd");
    REQUIRE(dsc_table_save_cache(cache2, classes_csv) == DSC_OK);
    opts.classify = 0;
    dsc_table *numbers = read_with(cache2, &opts, NULL);
    REQUIRE(numbers);
    CHECK_SAME_TABLE(parsed, numbers);

    /* The target named by header name or by position, but no other column. */
    opts.classify = -1;
    opts.target = "y";
    dsc_table *t = read_with(cache, &opts, NULL);
    CHECK(t != NULL);
    dsc_table_free(t);
    opts.target = "4";
    t = read_with(cache, &opts, NULL);
    CHECK(t != NULL);
    dsc_table_free(t);
    opts.target = "x2";
    CHECK(dsc_table_read(cache, &opts, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    snprintf(expected, sizeof expected, "%s: target x2: the data cache was converted with the "
             "target column y (column 4); convert the data again for this target", cache);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    opts.target = "2";
    CHECK(dsc_table_read(cache, &opts, NULL, &err) == NULL);

    /* Text classes cannot become targets. */
    char pets[512], pets_cache[512];
    tmp_path(pets, sizeof pets, "pets.csv");
    tmp_path(pets_cache, sizeof pets_cache, "pets.dscd");
    write_pets(pets, 12, 0);
    dsc_table *p = read_csv(pets, DSC_MISSING_MEAN, -1);
    REQUIRE(p);
    REQUIRE(dsc_table_save_cache(pets_cache, p) == DSC_OK);
    dsc_read_options_default(&opts);
    opts.classify = 0;
    opts.missing = DSC_MISSING_MEAN;
    CHECK(dsc_table_read(pets_cache, &opts, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: row 1: target 'cat' is not a number, and the "
             "targets are numeric", pets_cache);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    /* Missing values under the policy "error": the first one is named. */
    opts.classify = -1;
    opts.missing = DSC_MISSING_ERROR;
    CHECK(dsc_table_read(pets_cache, &opts, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: row 4: missing value in column weight (use "
             "--missing mean or median)", pets_cache);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    dsc_table_free(p);
    dsc_table_free(numbers);
    dsc_table_free(classes_cache);
    dsc_table_free(classes_csv);
    dsc_table_free(parsed);
}

/* ---- Training on a cache ------------------------------------------------------------------ */

/* Fit, standardise, train an MLP classifier and save it with its encoding at path. */
static int train_and_save(dsc_table *t, const char *path)
{
    dsc_prep *prep = dsc_table_prep(t);
    const dsc_data *d = dsc_table_data(t);
    int rc = dsc_prep_fit(prep, t, NULL, 0, 1);
    if (rc == DSC_OK)
        rc = dsc_prep_apply(prep, t);
    if (rc != DSC_OK)
        return rc;

    dsc_model_config mc;
    dsc_model_config_init(&mc, d->n_features, dsc_prep_n_classes(prep), DSC_LOSS_SOFTMAX);
    mc.n_hidden = 1;
    mc.hidden[0] = 6;
    mc.activation[0] = DSC_ACT_TANH;
    dsc_model *m = dsc_model_new(&mc, &rc);
    if (!m)
        return rc;
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.epochs = 6;
    cfg.batch = 8;
    cfg.seed = 11;
    cfg.val_fraction = 0.2;
    rc = dsc_train(m, d, NULL, &cfg);
    if (rc == DSC_OK)
        rc = dsc_model_save(path, m, prep, "data=same\n");
    dsc_model_free(m);
    return rc;
}

TEST(cache_training_gives_the_same_model_bytes_as_the_csv)
{
    char csv[512], cache[512], from_csv[512], from_cache[512];
    tmp_path(csv, sizeof csv, "pets.csv");
    tmp_path(cache, sizeof cache, "pets.dscd");
    tmp_path(from_csv, sizeof from_csv, "csv.model");
    tmp_path(from_cache, sizeof from_cache, "cache.model");
    write_pets(csv, 60, 0);

    dsc_table *parsed = read_csv(csv, DSC_MISSING_MEAN, -1);
    REQUIRE(parsed);
    REQUIRE(dsc_table_save_cache(cache, parsed) == DSC_OK);
    CHECK_EQ_INT(train_and_save(parsed, from_csv), DSC_OK);
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEAN;
    dsc_table *cached = read_with(cache, &opts, NULL);
    REQUIRE(cached);
    CHECK_EQ_INT(train_and_save(cached, from_cache), DSC_OK);

    size_t n1, n2;
    unsigned char *a = read_file(from_csv, &n1), *b = read_file(from_cache, &n2);
    CHECK(n1 > 100);
    CHECK(n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    dsc_table_free(cached);
    dsc_table_free(parsed);
}

/* ---- Damaged files ------------------------------------------------------------------------ */

/* A small cache of the pets data at path; its bytes (free them) and count. */
static unsigned char *make_cache(const char *path, size_t *n)
{
    char csv[512];
    tmp_path(csv, sizeof csv, "source.csv");
    write_pets(csv, 12, 0);
    dsc_table *t = read_csv(csv, DSC_MISSING_MEAN, -1);
    if (!t || dsc_table_save_cache(path, t) != DSC_OK)
        abort();
    dsc_table_free(t);
    return read_file(path, n);
}

/* Reading path (missing values allowed) must fail; returns the code. */
static int read_fails(const char *path, int line)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEAN;
    int err = 0;
    dsc_table *t = dsc_table_read(path, &opts, NULL, &err);
    if (t) {
        test_report(__FILE__, line, "%s was read, expected an error", path);
        dsc_table_free(t);
    }
    return err;
}

TEST(cache_truncated_files_are_errors)
{
    char path[512], cut[512], expected[700];
    size_t n;
    tmp_path(path, sizeof path, "whole.dscd");
    tmp_path(cut, sizeof cut, "cut.dscd");
    unsigned char *b = make_cache(path, &n);

    for (size_t len = 8; len < n; len += len < 400 ? 1 : 97) {
        write_file(cut, b, len);
        int err = read_fails(cut, __LINE__);
        CHECK_EQ_INT(err, DSC_EFORMAT);
        if (len >= 16 && len < 320)
            snprintf(expected, sizeof expected, "%s: truncated: the file has %zu bytes, less "
                     "than the 320-byte header", cut, len);
        else if (len >= 320)
            snprintf(expected, sizeof expected, "%s: truncated: the file has %zu bytes, its "
                     "header says %zu", cut, len, n);
        if (len >= 16 && strcmp(dsc_last_error(), expected) != 0)
            test_report(__FILE__, __LINE__, "length %zu: \"%s\"", len, dsc_last_error());
        CHECK(dsc_cache_verify(cut) == DSC_EFORMAT);
        if (test_failures > 10)
            break;
    }
    free(b);
}

TEST(cache_bit_flips_are_errors)
{
    char path[512], flipped[512];
    size_t n;
    tmp_path(path, sizeof path, "whole.dscd");
    tmp_path(flipped, sizeof flipped, "flipped.dscd");
    unsigned char *b = make_cache(path, &n);
    size_t enc_at = section_offset(b, SEC_ENCODING);
    size_t enc_end = enc_at + section_bytes(b, SEC_ENCODING);

    /* Every byte of the header, its padding and the encoding: loading refuses each flip. */
    for (size_t i = 0; i < enc_end; i++) {
        if (i >= 320 && i < enc_at)
            continue;
        b[i] ^= (unsigned char)(1u << (i % 8));
        write_file(flipped, b, n);
        int err = read_fails(flipped, __LINE__);
        if (i >= 8 && err != DSC_ECHECKSUM && err != DSC_EFORMAT && err != DSC_EVERSION)
            test_report(__FILE__, __LINE__, "byte %zu: code %d (%s)", i, err, dsc_last_error());
        if (i >= 16 && i < HEADER_END && err == DSC_EFORMAT &&
            !strstr(dsc_last_error(), "checksum") && !strstr(dsc_last_error(), "version"))
            test_report(__FILE__, __LINE__, "byte %zu: \"%s\"", i, dsc_last_error());
        b[i] ^= (unsigned char)(1u << (i % 8));
        if (test_failures > 10)
            break;
    }

    /* A flip in the features is left to dsc_cache_verify, which names the array. */
    char expected[700];
    b[section_offset(b, SEC_X) + 5] ^= 0x10;
    write_file(flipped, b, n);
    CHECK_EQ_INT(dsc_cache_verify(flipped), DSC_ECHECKSUM);
    snprintf(expected, sizeof expected, "%s: checksum mismatch in the feature matrix: the file "
             "is corrupted", flipped);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    free(b);
}

TEST(cache_future_version_and_other_byte_order_are_refused)
{
    char path[512], expected[700];
    size_t n;
    tmp_path(path, sizeof path, "whole.dscd");
    unsigned char *b = make_cache(path, &n);

    put_u32_at(b, AT_VERSION, 2);
    write_file(path, b, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EVERSION);
    snprintf(expected, sizeof expected, "%s: written by format version 2; this build reads up "
             "to 1", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    put_u32_at(b, AT_VERSION, 1);
    put_u32_at(b, 8, 0x04030201u);
    write_file(path, b, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: written on a machine of the other byte order; "
             "convert the data again on this one", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    free(b);
}

TEST(cache_crafted_headers_and_arrays_are_refused)
{
    char path[512], svm[512], expected[700];
    size_t n;
    tmp_path(path, sizeof path, "whole.dscd");
    unsigned char *b = make_cache(path, &n), *copy = malloc(n);
    REQUIRE(copy);

    /* Counts that do not fit the sections, behind a correct header checksum. */
    memcpy(copy, b, n);
    put_u64_at(copy, AT_N_ROWS, (uint64_t)1 << 40);
    fix_header_crc(copy);
    write_file(path, copy, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: corrupted data cache: 1099511627776 rows", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    memcpy(copy, b, n);
    put_u64_at(copy, AT_N_ROWS, 13);
    fix_header_crc(copy);
    write_file(path, copy, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: corrupted data cache: the feature matrix has %zu "
             "bytes", path, section_bytes(b, SEC_X));
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    /* A section moved off its 64-byte boundary. */
    memcpy(copy, b, n);
    put_u64_at(copy, AT_SECTIONS + 24 * SEC_LABEL, section_offset(b, SEC_LABEL) + 4);
    fix_header_crc(copy);
    write_file(path, copy, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);

    /* A class label out of range: the arrays are checked, not only their checksums. */
    memcpy(copy, b, n);
    int32_t bad_class = 99;
    memcpy(copy + section_offset(b, SEC_LABEL) + 8, &bad_class, sizeof bad_class);
    write_file(path, copy, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: corrupted data cache: row 3 has class 99 of 3",
             path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    free(copy);
    free(b);

    /* Sparse: a column beyond the features, and falling row offsets. */
    tmp_path(svm, sizeof svm, "data.svm");
    write_svm(svm, 10, 0, 0, 12);
    dsc_table *t = read_with(svm, NULL, NULL);
    REQUIRE(t);
    REQUIRE(dsc_table_save_cache(path, t) == DSC_OK);
    size_t n_features = dsc_table_data(t)->n_features;
    dsc_table_free(t);
    b = read_file(path, &n);
    uint32_t col = (uint32_t)n_features;
    memcpy(b + section_offset(b, SEC_COL), &col, sizeof col);
    write_file(path, b, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "beyond the 12 features") != NULL);
    CHECK(dsc_cache_verify(path) == DSC_EFORMAT);
    free(b);

    t = read_with(svm, NULL, NULL);
    REQUIRE(t && dsc_table_save_cache(path, t) == DSC_OK);
    dsc_table_free(t);
    b = read_file(path, &n);
    uint64_t offset = 1000;
    unsigned char *row_ptr = b + section_offset(b, SEC_ROW_PTR);
    memcpy(row_ptr + 8 * 3, &offset, sizeof offset);
    write_file(path, b, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "the offsets of row 3") != NULL);
    memcpy(row_ptr, row_ptr + 8 * 2, sizeof offset); /* the first offset no longer 0 */
    write_file(path, b, n);
    CHECK_EQ_INT(read_fails(path, __LINE__), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "the row offsets run from ") != NULL);
    free(b);
}

/* ---- Failed allocations (test_oom_alloc, in the runner) ------------------------------------ */

/*
 * Save a cache of table, read the cache given for learning and for the model's encoding
 * (with levels and classes re-mapped), and verify it; the first failure's code.
 */
static int cache_cycle(const dsc_table *table, const char *out, const char *cache,
                       const dsc_prep *model)
{
    dsc_read_options opts;
    int err = DSC_OK;

    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEAN;
    int rc = dsc_table_save_cache(out, table);
    if (rc != DSC_OK)
        return rc;
    dsc_table *learned = dsc_table_read(cache, &opts, NULL, &err);
    if (!learned)
        return err;
    dsc_table_free(learned);
    opts.classify = 1;
    dsc_table *mapped = dsc_table_read(cache, &opts, model, &err);
    if (!mapped)
        return err;
    dsc_table_free(mapped);
    return dsc_cache_verify(cache);
}

TEST(cache_every_failed_allocation_is_a_clean_enomem)
{
    char train_csv[512], test_csv[512], out[512], cache[512];
    tmp_path(train_csv, sizeof train_csv, "train.csv");
    tmp_path(test_csv, sizeof test_csv, "test.csv");
    tmp_path(out, sizeof out, "out.dscd");
    tmp_path(cache, sizeof cache, "test.dscd");
    write_pets(train_csv, 20, 0);
    write_pets(test_csv, 15, 1);
    dsc_table *train = read_csv(train_csv, DSC_MISSING_MEAN, -1);
    dsc_table *test = read_csv(test_csv, DSC_MISSING_MEAN, -1);
    REQUIRE(train && test);
    REQUIRE(dsc_table_save_cache(cache, test) == DSC_OK);

    for (int no_mmap = 0; no_mmap < 2; no_mmap++) {
        int failures_seen = 0;
        dsc__cache_no_mmap = no_mmap;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        for (test_oom.fail_at = 1;; test_oom.fail_at++) {
            test_oom.calls = test_oom.live = 0;
            int rc = cache_cycle(test, out, cache, train->prep);
            CHECK_EQ_INT(test_oom.live, 0);
            if (rc == DSC_OK && test_oom.calls < test_oom.fail_at)
                break; /* every allocation has been failed once */
            CHECK_EQ_INT(rc, DSC_ENOMEM);
            if (rc != DSC_ENOMEM)
                fprintf(stderr, "    allocation %ld: %s\n", test_oom.fail_at, dsc_last_error());
            failures_seen++;
            if (test_failures > 10)
                break;
        }
        dsc_set_allocator(NULL, NULL, NULL);
        dsc__cache_no_mmap = 0;
        CHECK(failures_seen >= 20);
    }
    dsc_table_free(test);
    dsc_table_free(train);
}

/* ---- The command -------------------------------------------------------------------------- */

static const char *descent_binary(void)
{
    static char path[512];
    const char *build = getenv("DSC_BUILD");

    snprintf(path, sizeof path, "%s/descent", build && *build ? build : "build");
    return path;
}

/* Run "descent ARGS" with output into the files out and err of the test's folder. */
static int run_descent(const char *args)
{
    char command[4096];
    const char *dir = test_tmpdir();

    snprintf(command, sizeof command, "%s %s </dev/null >%s/out 2>%s/err", descent_binary(),
             args, dir, dir);
    fflush(NULL);
    int status = system(command);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The text of a file of the test's folder (free it). */
static char *tmp_text(const char *name)
{
    char path[512];
    size_t n;
    unsigned char *b = read_file(tmp_path(path, sizeof path, name), &n);
    char *text = realloc(b, n + 1);
    if (!text)
        abort();
    text[n] = '\0';
    return text;
}

static bool same_files(const char *a, const char *b)
{
    char pa[512], pb[512];
    size_t na, nb;
    unsigned char *x = read_file(tmp_path(pa, sizeof pa, a), &na);
    unsigned char *y = read_file(tmp_path(pb, sizeof pb, b), &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

TEST(cli_convert_then_train_predict_eval_as_on_the_csv)
{
    const char *dir = test_tmpdir();
    char args[2048], link[512], cwd[1024];
    tmp_path(link, sizeof link, "data");

    snprintf(args, sizeof args, "convert data/iris.csv -o %s/iris.dscd", dir);
    REQUIRE(run_descent(args) == 0);
    char *out = tmp_text("out");
    CHECK(strstr(out, "iris.dscd: 150 rows, 4 features (dense), 3 classes, ") != NULL);
    free(out);

    /* The same command line on the CSV and on the cache (through one link): the same bytes. */
    const char *sources[2] = {"data/iris.csv", "iris.dscd"};
    const char *models[2] = {"csv.model", "cache.model"};
    for (int i = 0; i < 2; i++) {
        char target[512];
        if (i == 0)
            snprintf(target, sizeof target, "%s/%s", getcwd(cwd, sizeof cwd), sources[0]);
        else
            tmp_path(target, sizeof target, sources[1]);
        unlink(link);
        REQUIRE(symlink(target, link) == 0);
        snprintf(args, sizeof args, "train %s -o %s/m.model --model mlp --hidden 5 --epochs 4 "
                 "--val 0.2 --seed 5 --quiet", link, dir);
        REQUIRE(run_descent(args) == 0);
        char from[512], to[512];
        REQUIRE(rename(tmp_path(from, sizeof from, "m.model"),
                       tmp_path(to, sizeof to, models[i])) == 0);
    }
    CHECK(same_files("csv.model", "cache.model"));

    /* predict and eval print the same on either. */
    snprintf(args, sizeof args, "predict %s/csv.model data/iris.csv --proba -o %s/p1.csv", dir,
             dir);
    CHECK(run_descent(args) == 0);
    snprintf(args, sizeof args, "predict %s/csv.model %s/iris.dscd --proba -o %s/p2.csv", dir,
             dir, dir);
    CHECK(run_descent(args) == 0);
    CHECK(same_files("p1.csv", "p2.csv"));
    snprintf(args, sizeof args, "eval %s/csv.model data/iris.csv", dir);
    CHECK(run_descent(args) == 0);
    char *eval_csv = tmp_text("out");
    snprintf(args, sizeof args, "eval %s/csv.model %s/iris.dscd", dir, dir);
    CHECK(run_descent(args) == 0);
    char *eval_cache = tmp_text("out");
    CHECK(strstr(eval_csv, "accuracy") != NULL && strcmp(eval_csv, eval_cache) == 0);
    free(eval_csv);
    free(eval_cache);

    /* lr-find and compare take it as DATA too. */
    snprintf(args, sizeof args, "lr-find %s/iris.dscd --model softmax", dir);
    CHECK(run_descent(args) == 0);
    snprintf(args, sizeof args, "compare %s/iris.dscd --optimizers sgd,adam --epochs 2", dir);
    CHECK(run_descent(args) == 0);

    /* --verify: intact, then a flipped bit in the features. */
    snprintf(args, sizeof args, "convert --verify %s/iris.dscd", dir);
    CHECK(run_descent(args) == 0);
    char path[512];
    size_t n;
    unsigned char *b = read_file(tmp_path(path, sizeof path, "iris.dscd"), &n);
    b[section_offset(b, SEC_X) + 100] ^= 1;
    write_file(path, b, n);
    free(b);
    CHECK(run_descent(args) == 2);
    char *err = tmp_text("err"), expected[700];
    snprintf(expected, sizeof expected, "descent: %s: checksum mismatch in the feature matrix: "
             "the file is corrupted\n", path);
    CHECK(strcmp(err, expected) == 0);
    free(err);
}

TEST(cli_convert_with_a_model_reads_a_file_without_targets)
{
    const char *dir = test_tmpdir();
    char args[2048], train_csv[512], test_csv[512];
    tmp_path(train_csv, sizeof train_csv, "train.csv");
    write_pets(train_csv, 30, 0);

    /* The test rows without their target column. */
    write_pets(tmp_path(test_csv, sizeof test_csv, "full.csv"), 11, 1);
    char *full = tmp_text("full.csv");
    FILE *f = fopen(tmp_path(test_csv, sizeof test_csv, "features.csv"), "w");
    REQUIRE(f);
    for (char *line = strtok(full, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(f, "%.*s\n", (int)(strrchr(line, ',') - line), line);
    fclose(f);
    free(full);

    snprintf(args, sizeof args, "train %s -o %s/m.model --missing mean --epochs 3 --quiet",
             train_csv, dir);
    REQUIRE(run_descent(args) == 0);
    snprintf(args, sizeof args, "convert %s --model %s/m.model -o %s/f.dscd", test_csv, dir,
             dir);
    REQUIRE(run_descent(args) == 0);
    snprintf(args, sizeof args, "predict %s/m.model %s -o %s/p1.csv --proba", dir, test_csv,
             dir);
    CHECK(run_descent(args) == 0);
    snprintf(args, sizeof args, "predict %s/m.model %s/f.dscd -o %s/p2.csv --proba", dir, dir,
             dir);
    CHECK(run_descent(args) == 0);
    CHECK(same_files("p1.csv", "p2.csv"));
    char *err = tmp_text("err");
    CHECK(strstr(err, "unseen in training") != NULL); /* the purple rows, noted as for a CSV */
    free(err);
}

TEST(cli_convert_usage_errors)
{
    char args[1024];

    CHECK(run_descent("convert data/iris.csv") == 2);
    char *err = tmp_text("err");
    CHECK(strcmp(err, "descent: -o: missing; give the data cache to write (usage: descent "
                      "convert DATA -o FILE.dscd [options])\n") == 0);
    free(err);

    CHECK(run_descent("convert data/iris.csv -o -") == 2);
    CHECK(run_descent("convert data/iris.csv -o x.dscd --classify maybe") == 2);
    err = tmp_text("err");
    CHECK(strstr(err, "--classify") != NULL);
    free(err);
    snprintf(args, sizeof args, "convert --verify data/iris.csv -o %s/x.dscd", test_tmpdir());
    CHECK(run_descent(args) == 2);
    CHECK(run_descent("convert --verify data/iris.csv") == 2);
    err = tmp_text("err");
    CHECK(strcmp(err, "descent: data/iris.csv: not a descent data cache\n") == 0);
    free(err);
    CHECK(access("x.dscd", F_OK) != 0);
}
