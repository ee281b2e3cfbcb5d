/*
 * test_libsvm.c - the LIBSVM / svmlight reader: CSR layout, comments, qid and CRLF, label
 * classes and their normalisation, every malformed token with its exact message, reading
 * against a trained encoding, memory that follows the non-zeros, and a mutation round.
 */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Write len bytes of text to NAME in the test's folder; the path goes to path. */
static void write_file(char *path, size_t size, const char *name, const char *text, size_t len)
{
    snprintf(path, size, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

/* Read path as LIBSVM with the given classify setting and encoding. */
static dsc_table *read_svm(const char *path, int classify, const dsc_prep *prep, int *err)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_LIBSVM;
    opts.classify = classify;
    *err = 0;
    return dsc_table_read(path, &opts, prep, err);
}

/*
 * Write text to a file, read it, and check that reading fails with code and the message
 * "PATH:" followed by where_what. Returns 1 when it did.
 */
static int fails_with(const char *text, const dsc_prep *prep, int code, const char *where_what)
{
    char path[512], expected[1024];
    int err;

    write_file(path, sizeof path, "bad.svm", text, strlen(text));
    dsc_table *t = read_svm(path, -1, prep, &err);
    snprintf(expected, sizeof expected, "%s:%s", path, where_what);
    int ok = t == NULL && err == code && strcmp(dsc_last_error(), expected) == 0;
    if (!ok)
        fprintf(stderr, "    got %d \"%s\"\n    expected %d \"%s\"\n", err, dsc_last_error(),
                code, expected);
    dsc_table_free(t);
    return ok;
}

TEST(libsvm_reads_csr_with_comments_qid_and_crlf)
{
    const char *text = "# a comment line\n"
                       "1 qid:3 1:0.5 3:-2 # trailing comment\r\n"
                       "\n"
                       "   \t\n"
                       "-1 2:4e1 7:1.25\r\n"
                       "1\n"
                       "-1 1:1 2:2 3:3 7:7";
    char path[512];
    int err;
    write_file(path, sizeof path, "a.svm", text, strlen(text));

    dsc_table *t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_rows, 4);
    CHECK_EQ_INT(d->n_features, 7);
    CHECK(d->x == NULL);

    static const uint64_t row_ptr[] = {0, 2, 4, 4, 8};
    static const uint32_t col[] = {0, 2, 1, 6, 0, 1, 2, 6};
    static const float val[] = {0.5f, -2.0f, 40.0f, 1.25f, 1.0f, 2.0f, 3.0f, 7.0f};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(d->row_ptr[i], row_ptr[i]);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(d->col[i], col[i]);
        CHECK(d->val[i] == val[i]);
    }

    /* Whole-number labels make classes, in numeric order: -1 is class 0, 1 is class 1. */
    dsc_prep *prep = dsc_table_prep(t);
    REQUIRE(d->label != NULL);
    CHECK(d->y == NULL);
    CHECK_EQ_INT(dsc_prep_n_classes(prep), 2);
    CHECK(strcmp(dsc_prep_class_name(prep, 0), "-1") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 1), "1") == 0);
    static const int32_t labels[] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(d->label[i], labels[i]);
    CHECK_EQ_INT(dsc_prep_n_features(prep), 7);
    dsc_table_free(t);
}

TEST(libsvm_label_text_is_normalised)
{
    const char *text = "+1 1:1\n1 1:2\n-1 1:3\n1.0 1:4\n10 1:5\n2e0 1:6\n-0 1:7\n";
    char path[512];
    int err;
    write_file(path, sizeof path, "labels.svm", text, strlen(text));

    dsc_table *t = read_svm(path, 1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *prep = dsc_table_prep(t);

    /* "+1", "1" and "1.0" are one class; "-0" is 0; order is numeric, not textual. */
    static const char *const names[] = {"-1", "0", "1", "2", "10"};
    REQUIRE(dsc_prep_n_classes(prep) == 5);
    for (size_t i = 0; i < 5; i++)
        CHECK(strcmp(dsc_prep_class_name(prep, i), names[i]) == 0);
    static const int32_t labels[] = {2, 2, 0, 2, 4, 3, 1};
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(d->label[i], labels[i]);
    dsc_table_free(t);
}

TEST(libsvm_targets_classes_or_regression)
{
    char path[512];
    int err;

    /* Default (-1): a label that is not whole makes every label a regression target. */
    const char *real = "1 1:1\n0.5 2:1\n-3 1:2\n";
    write_file(path, sizeof path, "real.svm", real, strlen(real));
    dsc_table *t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    REQUIRE(d->y != NULL);
    CHECK(d->label == NULL);
    CHECK_EQ_INT(d->n_targets, 1);
    CHECK(d->y[0] == 1.0f && d->y[1] == 0.5f && d->y[2] == -3.0f);
    CHECK_EQ_INT(dsc_prep_n_classes(dsc_table_prep(t)), 0);
    CHECK_EQ_INT(dsc_prep_n_targets(dsc_table_prep(t)), 1);
    dsc_table_free(t);

    /* classify 0 keeps whole numbers as regression targets. */
    const char *whole = "3 1:1\n7 1:2\n";
    write_file(path, sizeof path, "whole.svm", whole, strlen(whole));
    t = read_svm(path, 0, NULL, &err);
    REQUIRE(t != NULL);
    d = dsc_table_data(t);
    REQUIRE(d->y != NULL);
    CHECK(d->y[0] == 3.0f && d->y[1] == 7.0f);
    dsc_table_free(t);

    /* classify 1 makes classes of any numbers, named by their shortest text. */
    write_file(path, sizeof path, "real.svm", real, strlen(real));
    t = read_svm(path, 1, NULL, &err);
    REQUIRE(t != NULL);
    dsc_prep *prep = dsc_table_prep(t);
    REQUIRE(dsc_prep_n_classes(prep) == 3);
    CHECK(strcmp(dsc_prep_class_name(prep, 0), "-3") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 1), "0.5") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 2), "1") == 0);
    d = dsc_table_data(t);
    CHECK(d->label[0] == 2 && d->label[1] == 1 && d->label[2] == 0);
    dsc_table_free(t);
}

TEST(libsvm_bad_indices_name_line_and_column)
{
    CHECK(fails_with("1 1:1\n1 0:3\n", NULL, DSC_EFORMAT, "2:3: index 0: indices start at 1"));
    CHECK(fails_with("1 1:1 -4:2\n", NULL, DSC_EFORMAT, "1:7: index -4 is negative"));
    CHECK(fails_with("# c\n\n1 2:1 5:1 5:2\n", NULL, DSC_EFORMAT, "3:11: index 5 repeated"));
    CHECK(fails_with("1 2:1 5:1 3:2\n", NULL, DSC_EFORMAT,
                     "1:11: index 3 after index 5: indices must increase along a line"));
    CHECK(fails_with("1 x:1\n", NULL, DSC_EFORMAT, "1:3: index 'x' is not a whole number"));
    CHECK(fails_with("1 +2:1\n", NULL, DSC_EFORMAT, "1:3: index '+2' is not a whole number"));
    CHECK(fails_with("1 :1\n", NULL, DSC_EFORMAT, "1:3: missing index before ':'"));
    CHECK(fails_with("1 1:1 7\n", NULL, DSC_EFORMAT, "1:7: expected INDEX:VALUE, got '7'"));
    CHECK(fails_with("1 2147483648:1\n", NULL, DSC_ELIMIT,
                     "1:3: index 2147483648 is beyond the limit of 2147483647"));
    CHECK(fails_with("1 99999999999999999999999:1\n", NULL, DSC_ELIMIT,
                     "1:3: index 99999999999999999999999 is beyond the limit of 2147483647"));
}

TEST(libsvm_bad_values_and_labels_name_line_and_column)
{
    CHECK(fails_with("1 1:abc\n", NULL, DSC_EFORMAT,
                     "1:5: value 'abc' of index 1 is not a finite number"));
    CHECK(fails_with("1 1:1\r\n0 3:nan\r\n", NULL, DSC_EFORMAT,
                     "2:5: value 'nan' of index 3 is not a finite number"));
    CHECK(fails_with("1 12:inf\n", NULL, DSC_EFORMAT,
                     "1:6: value 'inf' of index 12 is not a finite number"));
    CHECK(fails_with("1 1:1e39\n", NULL, DSC_EFORMAT,
                     "1:5: value '1e39' of index 1 is beyond float range"));
    CHECK(fails_with("1 4:\n", NULL, DSC_EFORMAT, "1:5: missing value after index 4"));
    CHECK(fails_with("1 1:1\n  yes 1:1\n", NULL, DSC_EFORMAT, "2:3: label 'yes' is not a number"));
    CHECK(fails_with("1:1 2:1\n", NULL, DSC_EFORMAT, "1:1: label '1:1' is not a number"));
    CHECK(fails_with("1e40 1:1\n", NULL, DSC_EFORMAT, "1:1: label '1e40' is beyond float range"));

    /* A long token is quoted up to 40 bytes; a byte that cannot be shown becomes '?'. */
    CHECK(fails_with("1 1:1\x01xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", NULL,
                     DSC_EFORMAT, "1:5: value '1?xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' "
                     "of index 1 is not a finite number"));

    char path[512], expected[600];
    int err;
    write_file(path, sizeof path, "empty.svm", "# only a comment\n\n", 18);
    CHECK(read_svm(path, -1, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: no data rows", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    write_file(path, sizeof path, "nofeat.svm", "1\n-1\n", 5);
    CHECK(read_svm(path, -1, NULL, &err) == NULL);
    snprintf(expected, sizeof expected, "%s: no features: every row is empty", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
}

TEST(libsvm_reads_against_a_trained_encoding)
{
    char path[512];
    int err;
    const char *train = "-1 1:1 4:2\n1 2:1\n1 3:1\n";
    write_file(path, sizeof path, "train.svm", train, strlen(train));
    dsc_table *t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    dsc_prep *prep = dsc_table_prep(t);
    REQUIRE(dsc_prep_n_features(prep) == 4);

    /* Fewer features and the known classes in another spelling read fine. */
    const char *test = "+1 1:3\n-1.0 2:5\n";
    write_file(path, sizeof path, "test.svm", test, strlen(test));
    dsc_table *u = read_svm(path, 0, prep, &err);
    REQUIRE(u != NULL);
    const dsc_data *d = dsc_table_data(u);
    CHECK_EQ_INT(d->n_features, 4);
    CHECK_EQ_INT(d->n_rows, 2);
    REQUIRE(d->label != NULL);
    CHECK(d->label[0] == 1 && d->label[1] == 0);
    CHECK_EQ_INT(d->row_ptr[2], 2);
    dsc_table_free(u);

    CHECK(fails_with("1 1:1\n1 5:1\n", prep, DSC_EFORMAT,
                     "2:3: index 5 is beyond the 4 features of the training data"));
    CHECK(fails_with("1 1:1\n\n  3 2:1\n", prep, DSC_EFORMAT,
                     "3:3: class '3' was not seen in training"));
    dsc_table_free(t);

    /* A regression encoding reads labels as targets, whole or not. */
    const char *reg = "0.5 1:1\n2 2:1\n";
    write_file(path, sizeof path, "reg.svm", reg, strlen(reg));
    t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    write_file(path, sizeof path, "reg2.svm", "7 2:1\n", 6);
    u = read_svm(path, -1, dsc_table_prep(t), &err);
    REQUIRE(u != NULL);
    REQUIRE(dsc_table_data(u)->y != NULL);
    CHECK(dsc_table_data(u)->y[0] == 7.0f);
    CHECK(dsc_table_data(u)->label == NULL);
    dsc_table_free(u);
    dsc_table_free(t);
}

TEST(libsvm_long_lines_span_read_blocks)
{
    /* One line of 30000 features (about 300 KB) crosses several 64 KB read blocks, and the
     * last line has no newline. */
    size_t n_feat = 30000, cap = n_feat * 16 + 64, len = 0;
    char *text = malloc(cap);
    REQUIRE(text != NULL);
    len += (size_t)snprintf(text + len, cap - len, "2");
    for (size_t j = 1; j <= n_feat; j++)
        len += (size_t)snprintf(text + len, cap - len, " %zu:%zu.5", j * 2, j % 1000);
    len += (size_t)snprintf(text + len, cap - len, "\n3 1:1");
    char path[512];
    int err;
    write_file(path, sizeof path, "long.svm", text, len);
    free(text);

    dsc_table *t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    REQUIRE(d->n_rows == 2);
    CHECK_EQ_INT(d->n_features, 2 * n_feat);
    CHECK_EQ_INT(d->row_ptr[1], n_feat);
    CHECK_EQ_INT(d->row_ptr[2], n_feat + 1);
    int all_right = 1;
    for (size_t j = 1; j <= n_feat; j++) {
        all_right &= d->col[j - 1] == 2 * j - 1;
        all_right &= d->val[j - 1] == (float)(j % 1000) + 0.5f;
    }
    CHECK(all_right);
    CHECK(d->col[n_feat] == 0 && d->val[n_feat] == 1.0f);
    dsc_table_free(t);
}

/* An allocator that counts the bytes live and their peak. */
typedef struct {
    size_t live, peak;
} alloc_count;

static void *counting_alloc(size_t size, void *ctx)
{
    alloc_count *c = ctx;
    size_t *block = malloc(size + sizeof(size_t) * 2);
    if (!block)
        return NULL;
    block[0] = size;
    c->live += size;
    if (c->live > c->peak)
        c->peak = c->live;
    return block + 2;
}

static void counting_release(void *ptr, void *ctx)
{
    alloc_count *c = ctx;
    size_t *block = (size_t *)ptr - 2;
    c->live -= block[0];
    free(block);
}

/*
 * Write wide.svm: n_rows rows with 3 non-zeros each over a million features. Row r has label
 * -1 or 1 by its parity, and its first index 1 + (37 r mod 1000) has the same parity as r,
 * so the classes are separable by the weights of the first 1000 features.
 */
static void write_wide(char *path, size_t size, size_t n_rows)
{
    size_t cap = n_rows * 48, len = 0;
    char *text = malloc(cap);
    if (!text)
        return;
    for (size_t r = 0; r < n_rows; r++) {
        size_t a = 1 + r * 37 % 1000, b = 1000 + r * 491 % 998000;
        len += (size_t)snprintf(text + len, cap - len, "%d %zu:1 %zu:0.5 1000000:2\n",
                                r % 2 ? 1 : -1, a, b);
    }
    snprintf(path, size, "%s/wide.svm", test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
    free(text);
}

TEST(libsvm_million_features_use_memory_of_the_nonzeros)
{
    /* A dense copy would take 8 GB; the reader must stay within a few hundred KB. */
    size_t n_rows = 2000;
    char path[512];
    int err;
    write_wide(path, sizeof path, n_rows);

    alloc_count count = {0, 0};
    dsc_set_allocator(counting_alloc, counting_release, &count);
    dsc_table *t = read_svm(path, -1, NULL, &err);
    size_t peak = count.peak;
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_features, 1000000);
    CHECK_EQ_INT(d->n_rows, n_rows);
    CHECK_EQ_INT(d->row_ptr[n_rows], 3 * n_rows);
    CHECK_EQ_INT(d->col[2], 999999);
    CHECK(peak < 600000);
    dsc_table_free(t);
    dsc_set_allocator(NULL, NULL, NULL);
}

TEST(libsvm_million_features_train_a_logistic_model)
{
    size_t n_rows = 2000;
    char path[512];
    int err;
    write_wide(path, sizeof path, n_rows);
    dsc_table *t = read_svm(path, -1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);

    /* Logistic regression straight on the CSR rows, full batch. */
    dsc_model_config mc;
    dsc_model_config_init(&mc, d->n_features, 2, DSC_LOSS_LOG);
    dsc_model *m = dsc_model_new(&mc, &err);
    REQUIRE(m != NULL);
    dsc_train_config tc;
    dsc_train_config_default(&tc);
    tc.batch = DSC_FULL_BATCH;
    tc.epochs = 60;
    tc.tol = -1.0;
    tc.optim.lr = 0.2;
    CHECK_EQ_INT(dsc_train(m, d, NULL, &tc), DSC_OK);

    int32_t *pred = malloc(n_rows * sizeof *pred);
    REQUIRE(pred != NULL);
    CHECK_EQ_INT(dsc_model_predict_class(m, d, 0, n_rows, pred), DSC_OK);
    size_t right = 0;
    for (size_t r = 0; r < n_rows; r++)
        right += pred[r] == d->label[r];
    CHECK(right == n_rows);
    free(pred);
    dsc_model_free(m);
    dsc_table_free(t);
}

/* Check the invariants of a table read from LIBSVM text; 1 when they hold. */
static int table_is_sound(const dsc_table *t)
{
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *prep = dsc_table_prep((dsc_table *)t);
    if (!d->row_ptr || !d->col || !d->val || d->row_ptr[0] != 0 || d->n_rows == 0)
        return 0;
    for (size_t r = 0; r < d->n_rows; r++) {
        if (d->row_ptr[r + 1] < d->row_ptr[r])
            return 0;
        for (uint64_t p = d->row_ptr[r]; p < d->row_ptr[r + 1]; p++) {
            if (d->col[p] >= d->n_features || (p > d->row_ptr[r] && d->col[p] <= d->col[p - 1]))
                return 0;
            if (!isfinite(d->val[p]))
                return 0;
        }
        if (d->label && (d->label[r] < 0 || (size_t)d->label[r] >= dsc_prep_n_classes(prep)))
            return 0;
    }
    return (d->label != NULL) != (d->y != NULL);
}

TEST(libsvm_mutated_files_fail_cleanly)
{
    const char *seed_text = "# header\n+1 qid:2 1:0.5 3:-1.5e2 10:7 # c\r\n-1 2:1 4:.25\n\n"
                            "1 1:1 2:2 3:3 4:4 5:5\n0 7:1e-3\n";
    size_t seed_len = strlen(seed_text);
    static const char alphabet[] = "0123456789:. -+e#\n\r\tqid\x00\xff";
    dsc_rng rng;
    dsc_rng_seed(&rng, 20240611);
    char path[512];
    snprintf(path, sizeof path, "%s/mut.svm", test_tmpdir());

    int n_tables = 0, n_errors = 0, all_sound = 1;
    for (int round = 0; round < 3000; round++) {
        char buf[256];
        size_t len = seed_len;
        memcpy(buf, seed_text, len);
        int n_edits = 1 + (int)dsc_rng_below(&rng, 6);
        for (int e = 0; e < n_edits; e++) {
            size_t at = len ? (size_t)dsc_rng_below(&rng, len) : 0;
            switch (dsc_rng_below(&rng, 4)) {
            case 0: /* replace a byte */
                if (len)
                    buf[at] = alphabet[dsc_rng_below(&rng, sizeof alphabet - 1)];
                break;
            case 1: /* random byte */
                if (len)
                    buf[at] = (char)dsc_rng_below(&rng, 256);
                break;
            case 2: /* delete */
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: /* insert */
                if (len < sizeof buf - 1) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = alphabet[dsc_rng_below(&rng, sizeof alphabet - 1)];
                    len++;
                }
                break;
            }
        }
        FILE *f = fopen(path, "wb");
        REQUIRE(f != NULL);
        fwrite(buf, 1, len, f);
        fclose(f);

        int err;
        dsc_table *t = read_svm(path, (int)dsc_rng_below(&rng, 3) - 1, NULL, &err);
        if (t) {
            n_tables++;
            all_sound &= table_is_sound(t);
        } else {
            n_errors++;
            all_sound &= err < 0 && dsc_last_error()[0] != '\0';
        }
        dsc_table_free(t);
    }
    CHECK(all_sound);
    CHECK(n_tables > 100);
    CHECK(n_errors > 100);
}
