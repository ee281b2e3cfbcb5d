/*
 * test_libsvm.c - the LIBSVM / svmlight reader: CSR layout, comments, qid and CRLF, label
 * classes and their normalisation, every malformed token with its exact message, reading
 * against a trained encoding, memory that follows the non-zeros, and a mutation round; the
 * mapped path on one and two threads against the stream path (the same arrays and the same
 * messages, whatever the pieces), dense storage and its rule, and that a dense table is
 * fitted, applied, cached and trained as the same rows in CSR.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "internal.h"
#include "libsvm.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    /* 8 cells against 2 entries and 3 offsets: stored dense (store_dense in libsvm.c). */
    REQUIRE(d->x != NULL);
    static const float want[8] = {3, 0, 0, 0, 0, 5, 0, 0};
    CHECK(memcmp(d->x, want, sizeof want) == 0);
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
    if (d->x) {
        /* Dense: every value finite, none of them zero when stored (the rule's condition
         * means the file named no zero), and half the cells or more named. */
        size_t cells = d->n_rows * d->n_features, named = 0;
        for (size_t i = 0; i < cells; i++) {
            if (!isfinite(d->x[i]))
                return 0;
            named += d->x[i] != 0.0f;
        }
        if (d->row_ptr || d->n_rows == 0 || cells > 2 * (named + d->n_rows + 1))
            return 0;
        for (size_t r = 0; r < d->n_rows; r++) {
            if (d->label && (d->label[r] < 0 ||
                             (size_t)d->label[r] >= dsc_prep_n_classes(prep)))
                return 0;
        }
        return (d->label != NULL) != (d->y != NULL);
    }
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

/* ---- The mapped path against the stream path ---------------------------------------------- */

/* A growing text. */
typedef struct text_buf {
    char *s;
    size_t n, cap;
} text_buf;

static void put(text_buf *t, const char *text)
{
    size_t len = strlen(text);
    if (t->n + len + 1 > t->cap) {
        t->cap = (t->n + len + 1) * 2;
        t->s = realloc(t->s, t->cap);
        if (!t->s)
            abort();
    }
    memcpy(t->s + t->n, text, len + 1);
    t->n += len;
}

static int one_in(dsc_rng *rng, uint64_t n)
{
    return dsc_rng_below(rng, n) == 0;
}

/*
 * A LIBSVM text of n_rows rows over at most max_index features, each index named with
 * probability about density_pct %: comment lines, blank lines, CRLF, tabs, qid tokens,
 * trailing comments, now and then a long line, whole or real labels, and no newline at the
 * end one time in three. zeros: some values are written as zero ("0", "-0", "0.000").
 */
static void make_svm(dsc_rng *rng, text_buf *t, size_t n_rows, size_t max_index,
                     int density_pct, int whole_labels, int zeros)
{
    char token[64];
    const char *eol = one_in(rng, 3) ? "\r\n" : "\n";

    t->n = 0;
    put(t, "");
    for (size_t r = 0; r < n_rows; r++) {
        if (one_in(rng, 20))
            put(t, one_in(rng, 2) ? "# a comment line\n" : " \t\r\n");
        if (one_in(rng, 30))
            put(t, "\n");
        if (whole_labels)
            snprintf(token, sizeof token, "%d", (int)dsc_rng_below(rng, 3) - 1);
        else
            snprintf(token, sizeof token, "%.3f", dsc_rng_uniform(rng) * 4 - 2);
        put(t, token);
        if (one_in(rng, 15))
            put(t, " qid:7");
        int density = one_in(rng, 40) ? 100 : density_pct; /* a long, full line now and then */
        for (size_t j = 1; j <= max_index; j++) {
            if ((int)dsc_rng_below(rng, 100) >= density)
                continue;
            put(t, one_in(rng, 10) ? "\t" : " ");
            if (zeros && one_in(rng, 50)) {
                static const char *const zero_text[] = {"0", "-0", "0.000"};
                snprintf(token, sizeof token, "%zu:%s", j, zero_text[dsc_rng_below(rng, 3)]);
            } else {
                double v = (dsc_rng_uniform(rng) * 2 - 1) * (one_in(rng, 10) ? 1e5 : 1);
                if (v == 0.0)
                    v = 0.5;
                snprintf(token, sizeof token, "%zu:%.*g", j, 1 + (int)dsc_rng_below(rng, 9), v);
            }
            put(t, token);
        }
        if (one_in(rng, 25))
            put(t, " # trailing comment");
        if (r + 1 < n_rows || !one_in(rng, 3))
            put(t, eol);
    }
}

static void write_text(const text_buf *t, const char *name, char *path, size_t size)
{
    write_file(path, size, name, t->s, t->n);
}

/* The ways to read a file: the old reader (stream path, CSR), and the reader as it is. */
enum { OLD_READER, STREAM_PATH, MAPPED_PATH };

/*
 * Read path one way: the old reader, the stream path, or the mapped path on threads
 * threads with pieces of piece bytes. The hooks are put back afterwards.
 */
static dsc_table *read_way(const char *path, int way, int threads, size_t piece, int classify,
                           const dsc_prep *prep, int *err)
{
    dsc__libsvm_allow_map(way == MAPPED_PATH);
    dsc__libsvm_allow_dense(way != OLD_READER);
    dsc__libsvm_set_piece_bytes(piece);
    dsc_set_threads(threads);
    dsc_table *t = read_svm(path, classify, prep, err);
    dsc__libsvm_allow_map(1);
    dsc__libsvm_allow_dense(1);
    dsc__libsvm_set_piece_bytes(0);
    dsc_set_threads(1);
    return t;
}

/*
 * 1 when b holds what the old reader's table a (CSR) holds: the same CSR arrays bit for bit,
 * or, stored dense, a matrix whose non-zeros are exactly a's entries (none of them zero);
 * and the same targets and classes.
 */
static int same_as_old(const dsc_table *a, const dsc_table *b)
{
    const dsc_data *x = dsc_table_data(a), *y = dsc_table_data(b);
    dsc_prep *pa = dsc_table_prep((dsc_table *)a), *pb = dsc_table_prep((dsc_table *)b);
    size_t n = x->n_rows, k = x->n_features;

    if (y->n_rows != n || y->n_features != k || !x->row_ptr || !y->row_ptr == !y->x ||
        y->n_targets != x->n_targets || !y->label != !x->label || !y->y != !x->y ||
        dsc_prep_n_classes(pa) != dsc_prep_n_classes(pb) ||
        dsc_prep_n_features(pa) != dsc_prep_n_features(pb))
        return 0;
    for (size_t c = 0; c < dsc_prep_n_classes(pa); c++) {
        if (strcmp(dsc_prep_class_name(pa, c), dsc_prep_class_name(pb, c)) != 0)
            return 0;
    }
    if ((x->label && memcmp(x->label, y->label, n * sizeof *x->label) != 0) ||
        (x->y && memcmp(x->y, y->y, n * sizeof *x->y) != 0))
        return 0;

    uint64_t nnz = x->row_ptr[n];
    if (y->row_ptr) {
        return memcmp(x->row_ptr, y->row_ptr, (n + 1) * sizeof *x->row_ptr) == 0 &&
               memcmp(x->col, y->col, nnz * sizeof *x->col) == 0 &&
               memcmp(x->val, y->val, nnz * sizeof *x->val) == 0;
    }
    size_t named = 0;
    for (size_t r = 0; r < n; r++) {
        for (uint64_t e = x->row_ptr[r]; e < x->row_ptr[r + 1]; e++) {
            float v = y->x[r * k + x->col[e]];
            if (x->val[e] == 0.0f || memcmp(&v, &x->val[e], sizeof v) != 0)
                return 0;
        }
        for (size_t j = 0; j < k; j++)
            named += y->x[r * k + j] != 0.0f;
    }
    return named == nnz;
}

/* 1 when a and b are the same table, storage included, bit for bit. */
static int same_table(const dsc_table *a, const dsc_table *b)
{
    const dsc_data *x = dsc_table_data(a), *y = dsc_table_data(b);
    size_t n = x->n_rows;

    if (y->n_rows != n || y->n_features != x->n_features || !x->x != !y->x ||
        !x->label != !y->label || !x->y != !y->y)
        return 0;
    if (x->x)
        return memcmp(x->x, y->x, n * x->n_features * sizeof(float)) == 0 &&
               (!x->label || memcmp(x->label, y->label, n * sizeof(int32_t)) == 0) &&
               (!x->y || memcmp(x->y, y->y, n * sizeof(float)) == 0);
    return memcmp(x->row_ptr, y->row_ptr, (n + 1) * sizeof(uint64_t)) == 0 &&
           memcmp(x->col, y->col, x->row_ptr[n] * sizeof(uint32_t)) == 0 &&
           memcmp(x->val, y->val, x->row_ptr[n] * sizeof(float)) == 0 &&
           (!x->label || memcmp(x->label, y->label, n * sizeof(int32_t)) == 0) &&
           (!x->y || memcmp(x->y, y->y, n * sizeof(float)) == 0);
}

/* Piece sizes tried: a few bytes (pieces inside lines, many empty), some lines, default. */
static const size_t piece_sizes[] = {7, 61, 500, 0};

/*
 * Read path the old way, then every other way; each must give the old table (CSR or its
 * dense form), every way but the old the same storage. The old table, or NULL with the
 * message in message when every way failed the same.
 */
static dsc_table *read_all_ways(const char *path, int classify, const dsc_prep *prep,
                                const char *what, char *message, size_t message_size)
{
    int err_old;
    dsc_table *old = read_way(path, OLD_READER, 1, 0, classify, prep, &err_old);
    snprintf(message, message_size, "%s", old ? "" : dsc_last_error());
    dsc_table *stream = read_way(path, STREAM_PATH, 1, 0, classify, prep, &err_old);
    int all_right = (old != NULL) == (stream != NULL);
    if (old && stream)
        all_right &= same_as_old(old, stream);

    for (size_t p = 0; p < sizeof piece_sizes / sizeof *piece_sizes; p++) {
        for (int threads = 1; threads <= 2; threads++) {
            int err;
            dsc_table *t = read_way(path, MAPPED_PATH, threads, piece_sizes[p], classify,
                                    prep, &err);
            int right = (t != NULL) == (old != NULL);
            if (t && old)
                right = same_as_old(old, t) && same_table(stream, t);
            if (!t && !old)
                right = err == err_old && strcmp(dsc_last_error(), message) == 0;
            if (!right)
                fprintf(stderr, "    %s: pieces of %zu, %d threads: %s\n", what,
                        piece_sizes[p], threads, t ? "another table" : dsc_last_error());
            all_right &= right;
            dsc_table_free(t);
        }
    }
    dsc_table_free(stream);
    CHECK(all_right);
    return old;
}

TEST(libsvm_threads_and_pieces_read_the_stream_table)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 4242);
    text_buf t = {NULL, 0, 0};
    char path[512], what[96], message[512];
    size_t mapped_before, recounted_before, mapped_after, recounted_after;
    size_t n_dense = 0, n_csr = 0, n_read = 0;
    dsc__libsvm_path_counts(&mapped_before, &recounted_before);

    for (int i = 0; i < 24; i++) {
        int classify = (int)dsc_rng_below(&rng, 3) - 1;
        int whole = !one_in(&rng, 3);
        int density = i % 3 == 0 ? 20 : 90;
        size_t max_index = 3 + (size_t)dsc_rng_below(&rng, 30);
        make_svm(&rng, &t, 20 + (size_t)dsc_rng_below(&rng, 80), max_index, density, whole,
                 i % 4 == 1);
        write_text(&t, "train.svm", path, sizeof path);
        snprintf(what, sizeof what, "file %d", i);
        dsc_table *trained = read_all_ways(path, classify, NULL, what, message,
                                           sizeof message);
        REQUIRE(trained != NULL);
        n_read++;

        /* How the reader stores it, and prediction against its encoding. */
        int err;
        dsc_table *now = read_svm(path, classify, NULL, &err);
        REQUIRE(now != NULL);
        n_dense += dsc_table_data(now)->x != NULL;
        n_csr += dsc_table_data(now)->x == NULL;
        dsc_table_free(now);
        make_svm(&rng, &t, 10 + (size_t)dsc_rng_below(&rng, 40), max_index, density, whole,
                 0);
        write_text(&t, "predict.svm", path, sizeof path);
        snprintf(what, sizeof what, "file %d, prediction", i);
        dsc_table *predicted = read_all_ways(path, classify, dsc_table_prep(trained), what,
                                             message, sizeof message);
        n_read += predicted != NULL;
        dsc_table_free(predicted);
        dsc_table_free(trained);
    }
    free(t.s);

    /* Both storages came up, and the mapped path read every file itself (8 ways each). */
    CHECK(n_dense > 3 && n_csr > 3);
    dsc__libsvm_path_counts(&mapped_after, &recounted_after);
    CHECK_EQ_INT(recounted_after - recounted_before, 0);
    CHECK(mapped_after - mapped_before >= 8 * n_read);
}

/* Write lines 1..n_lines: each good, except those listed in bad (line numbers) with text. */
static void write_lines(char *path, size_t size, size_t n_lines, const size_t *bad_line,
                        const char *const *bad_text, size_t n_bad)
{
    text_buf t = {NULL, 0, 0};
    char line[128];

    put(&t, "");
    for (size_t i = 1; i <= n_lines; i++) {
        const char *text = NULL;
        for (size_t b = 0; b < n_bad; b++) {
            if (bad_line[b] == i)
                text = bad_text[b];
        }
        if (!text) {
            snprintf(line, sizeof line, "%d 1:%zu.5 2:-0.25 %zu:3\n", i % 3 ? 1 : -1, i % 7,
                     3 + i % 5);
            text = line;
        }
        put(&t, text);
    }
    write_file(path, size, "late.svm", t.s, t.n);
    free(t.s);
}

TEST(libsvm_errors_in_later_pieces_name_the_stream_line_and_column)
{
    char path[512], expected[1024], message[512];

    /* Line 301 is in a late piece for every piece size tried (lines are ~20 bytes). */
    static const char *const bad[] = {
        "1 3:1 2:5\n", "1 1:1 x:2\n", "1 1:abc\n", "yes 1:1\n", "1 1:1e39\n",
        "1 2147483648:1\n", "1 1:1 1:2\r\n", "1 0:1\n", "1 4:\n", "1 1:1\x01 2:2\n",
    };
    static const char *const said[] = {
        "301:7: index 2 after index 3: indices must increase along a line",
        "301:7: index 'x' is not a whole number",
        "301:5: value 'abc' of index 1 is not a finite number",
        "301:1: label 'yes' is not a number",
        "301:5: value '1e39' of index 1 is beyond float range",
        "301:3: index 2147483648 is beyond the limit of 2147483647",
        "301:7: index 1 repeated",
        "301:3: index 0: indices start at 1",
        "301:5: missing value after index 4",
        "301:5: value '1?' of index 1 is not a finite number",
    };
    size_t mapped, recounted_before, recounted_after;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t line = 301;
        write_lines(path, sizeof path, 400, &line, &bad[i], 1);
        for (int fast = 0; fast < 2; fast++) {
            dsc__libsvm_path_counts(&mapped, &recounted_before);
            dsc__allow_fast_text(fast);
            dsc_table *t = read_all_ways(path, -1, NULL, bad[i], message, sizeof message);
            dsc__allow_fast_text(1);
            dsc__libsvm_path_counts(&mapped, &recounted_after);
            CHECK(t == NULL);
            dsc_table_free(t);
            snprintf(expected, sizeof expected, "%s:%s", path, said[i]);
            if (strcmp(message, expected) != 0)
                fprintf(stderr, "    got \"%s\"\n    expected \"%s\"\n", message, expected);
            CHECK(strcmp(message, expected) == 0);

            /* The pieces word the error themselves, except for an index beyond the limit,
             * which the count already sees and leaves to the stream path. */
            CHECK_EQ_INT(recounted_after - recounted_before, i == 5 ? 8 : 0);
        }
    }

    /* Two bad lines far apart: the first is reported, on any number of threads. */
    size_t lines[2] = {150, 380};
    const char *texts[2] = {"1 5:1 5:2\n", "1 0:1\n"};
    write_lines(path, sizeof path, 400, lines, texts, 2);
    dsc_table *t = read_all_ways(path, -1, NULL, "two bad lines", message, sizeof message);
    CHECK(t == NULL);
    snprintf(expected, sizeof expected, "%s:150:7: index 5 repeated", path);
    CHECK(strcmp(message, expected) == 0);

    /* A long bad line last in the first piece, a short one first in the next: on two
     * threads the second piece fails long before the first, yet the first piece's error is
     * the one reported. */
    text_buf long_line = {NULL, 0, 0};
    char token[32];
    put(&long_line, "1");
    for (int j = 1; j <= 100000; j++) {
        snprintf(token, sizeof token, " %d:1", j);
        put(&long_line, token);
    }
    size_t column = long_line.n + 2;
    put(&long_line, " 100000:2\n");
    lines[0] = 23;
    lines[1] = 24;
    texts[0] = long_line.s;
    texts[1] = "1 1:1 x:2\n";
    write_lines(path, sizeof path, 60, lines, texts, 2);
    free(long_line.s);
    snprintf(expected, sizeof expected, "%s:23:%zu: index 100000 repeated", path, column);
    for (int round = 0; round < 5; round++) {
        int err;
        t = read_way(path, MAPPED_PATH, 2, 500, -1, NULL, &err);
        CHECK(t == NULL);
        CHECK(strcmp(dsc_last_error(), expected) == 0);
    }

    /* A class unseen in training, late in a prediction file. */
    write_lines(path, sizeof path, 400, NULL, NULL, 0);
    t = read_all_ways(path, -1, NULL, "training", message, sizeof message);
    REQUIRE(t != NULL);
    size_t line = 350;
    const char *unseen = "  7 1:1\n";
    write_lines(path, sizeof path, 400, &line, &unseen, 1);
    dsc_table *u = read_all_ways(path, -1, dsc_table_prep(t), "unseen class", message,
                                 sizeof message);
    CHECK(u == NULL);
    snprintf(expected, sizeof expected, "%s:350:3: class '7' was not seen in training", path);
    CHECK(strcmp(message, expected) == 0);
    dsc_table_free(t);
}

TEST(libsvm_lines_the_count_misreads_go_to_the_stream_path)
{
    /* A qid token with a second colon is ignored by the parser but counted as an entry. */
    const char *text = "1 qid:1:2 3:4\n-1 1:1 2:2 3:3\n1 1:5 2:6 3:7\n";
    char path[512], message[512];
    size_t mapped_before, recounted_before, mapped_after, recounted_after;
    write_file(path, sizeof path, "qid.svm", text, strlen(text));

    dsc__libsvm_path_counts(&mapped_before, &recounted_before);
    dsc_table *t = read_all_ways(path, -1, NULL, "qid with two colons", message,
                                 sizeof message);
    dsc__libsvm_path_counts(&mapped_after, &recounted_after);
    REQUIRE(t != NULL);
    CHECK_EQ_INT(dsc_table_data(t)->row_ptr[3], 7);
    CHECK_EQ_INT(recounted_after - recounted_before, 8);
    CHECK_EQ_INT(mapped_after - mapped_before, 0);
    dsc_table_free(t);
}

/* ---- Dense storage ------------------------------------------------------------------------ */

/* The value of row r, feature j (1-based) of a grid file: never zero, 4 decimals. */
static double grid_value(size_t r, size_t j)
{
    double v = (double)((r * 31 + j * 17) % 200) / 50.0 - 1.99;
    return r % 2 ? v + 0.3 * (double)(j % 3) : v;
}

/*
 * Write n_rows rows of n_features features: row r names feature j (1-based) when
 * (r * 7 + j) % 3 < thirds, so 3 names them all, 2 two thirds, 1 a third. Values are never
 * zero, except feature 2 of row zero_row (when >= 0), written as zero.
 */
static void write_grid(char *path, size_t size, const char *name, size_t n_rows,
                       size_t n_features, size_t thirds, long zero_row, const char *zero)
{
    text_buf t = {NULL, 0, 0};
    char token[64];

    put(&t, "");
    for (size_t r = 0; r < n_rows; r++) {
        snprintf(token, sizeof token, "%d", r % 2 ? 1 : 0);
        put(&t, token);
        for (size_t j = 1; j <= n_features; j++) {
            if ((r * 7 + j) % 3 >= thirds)
                continue;
            if ((long)r == zero_row && j == 2)
                snprintf(token, sizeof token, " %zu:%s", j, zero);
            else
                snprintf(token, sizeof token, " %zu:%.4f", j, grid_value(r, j));
            put(&t, token);
        }
        put(&t, "\n");
    }
    write_file(path, size, name, t.s, t.n);
    free(t.s);
}

/* Read path (classify 1) and say whether it came out dense; -1 when it did not read. */
static int reads_dense(const char *path, const dsc_prep *prep)
{
    int err;
    dsc_table *t = read_svm(path, 1, prep, &err);
    int dense = t ? dsc_table_data(t)->x != NULL : -1;
    dsc_table_free(t);
    return dense;
}

TEST(libsvm_dense_storage_follows_its_rule)
{
    char path[512];

    /* Every row names every feature: dense, the values where the file puts them. */
    write_grid(path, sizeof path, "full.svm", 50, 8, 3, -1, NULL);
    int err;
    dsc_table *t = read_svm(path, 1, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    REQUIRE(d->x != NULL);
    CHECK(d->row_ptr == NULL && d->col == NULL && d->val == NULL);
    CHECK_EQ_INT(d->n_features, 8);
    char text[32];
    snprintf(text, sizeof text, "%.4f", grid_value(3, 5));
    CHECK(d->x[3 * 8 + 4] == strtof(text, NULL));
    CHECK(d->label[3] == 1 && d->label[4] == 0);
    dsc_table_free(t);

    /* A value written as zero, either sign: CSR, so that the entry is kept. */
    write_grid(path, sizeof path, "zero.svm", 50, 8, 3, 37, "0");
    CHECK_EQ_INT(reads_dense(path, NULL), 0);
    write_grid(path, sizeof path, "zero.svm", 50, 8, 3, 37, "-0.0000");
    CHECK_EQ_INT(reads_dense(path, NULL), 0);
    write_grid(path, sizeof path, "zero.svm", 50, 8, 3, 37, "1e-60"); /* rounds to 0 */
    CHECK_EQ_INT(reads_dense(path, NULL), 0);

    /* The boundary: 4 rows of 10 features take 40 cells, CSR 2 (nnz + 5) words of 4 bytes:
     * 15 entries or more are dense, 14 are not. */
    const char *at_15 = "1 1:1 2:1 3:1 10:1\n0 1:1 2:1 3:1 4:1\n1 1:1 2:1 3:1 4:1\n"
                        "0 5:1 6:1 7:1\n";
    const char *at_14 = "1 1:1 2:1 3:1 10:1\n0 1:1 2:1 3:1 4:1\n1 1:1 2:1 3:1 4:1\n"
                        "0 5:1 6:1\n";
    write_file(path, sizeof path, "15.svm", at_15, strlen(at_15));
    CHECK_EQ_INT(reads_dense(path, NULL), 1);
    write_file(path, sizeof path, "14.svm", at_14, strlen(at_14));
    CHECK_EQ_INT(reads_dense(path, NULL), 0);

    /* Two thirds of the cells named: dense; a third: CSR. */
    write_grid(path, sizeof path, "two_thirds.svm", 60, 9, 2, -1, NULL);
    CHECK_EQ_INT(reads_dense(path, NULL), 1);
    write_grid(path, sizeof path, "a_third.svm", 60, 9, 1, -1, NULL);
    CHECK_EQ_INT(reads_dense(path, NULL), 0);

    /* Prediction: dense against a LIBSVM encoding, whatever the path; CSR against a CSV one,
     * whose dsc_prep_apply would centre dense values. */
    write_grid(path, sizeof path, "full.svm", 50, 8, 3, -1, NULL);
    t = read_svm(path, 1, NULL, &err);
    REQUIRE(t != NULL);
    char test_path[512];
    write_grid(test_path, sizeof test_path, "test.svm", 30, 8, 3, -1, NULL);
    CHECK_EQ_INT(reads_dense(test_path, dsc_table_prep(t)), 1);
    dsc__libsvm_allow_map(0);
    CHECK_EQ_INT(reads_dense(test_path, dsc_table_prep(t)), 1);
    CHECK_EQ_INT(reads_dense(path, NULL), 1);
    dsc__libsvm_allow_map(1);
    dsc_table_free(t);

    char csv[512];
    const char *csv_text = "a,b,c,d,e,f,g,h,y\n1,2,3,4,5,6,7,8,0\n2,3,4,5,6,7,8,9,1\n"
                           "3,1,4,1,5,9,2,6,1\n";
    write_file(csv, sizeof csv, "train.csv", csv_text, strlen(csv_text));
    dsc_table *c = dsc_table_read(csv, NULL, NULL, &err);
    REQUIRE(c != NULL);
    REQUIRE(dsc_prep_fit(dsc_table_prep(c), c, NULL, 0, 1) == DSC_OK);
    CHECK_EQ_INT(reads_dense(test_path, dsc_table_prep(c)), 0);
    dsc_table_free(c);

    /* The test hook keeps every table CSR. */
    dsc__libsvm_allow_dense(0);
    CHECK_EQ_INT(reads_dense(path, NULL), 0);
    dsc__libsvm_allow_dense(1);
}

/* Read path with dense storage allowed or not; the caller checks which it got. */
static dsc_table *read_storage(const char *path, int dense)
{
    int err;
    dsc__libsvm_allow_dense(dense);
    dsc_table *t = read_svm(path, 1, NULL, &err);
    dsc__libsvm_allow_dense(1);
    return t;
}

/* Train logistic regression on table's rows with SGD, batch 8, a fixed seed. */
static dsc_model *train_logistic(const dsc_table *table)
{
    const dsc_data *d = dsc_table_data(table);
    int err;
    dsc_model_config mc;
    dsc_model_config_init(&mc, d->n_features, 2, DSC_LOSS_LOG);
    dsc_model *m = dsc_model_new(&mc, &err);
    if (!m)
        return NULL;
    dsc_train_config tc;
    dsc_train_config_default(&tc);
    tc.batch = 8;
    tc.epochs = 4;
    tc.tol = -1.0;
    tc.seed = 5;
    tc.optim.lr = 0.05;
    if (dsc_train(m, d, NULL, &tc) != DSC_OK) {
        dsc_model_free(m);
        return NULL;
    }
    return m;
}

TEST(libsvm_dense_table_fits_applies_caches_and_trains_like_csr)
{
    char path[512], cache[512];
    write_grid(path, sizeof path, "grid.svm", 300, 12, 2, -1, NULL);
    dsc_table *csr = read_storage(path, 0);
    dsc_table *dense = read_storage(path, 1);
    REQUIRE(csr != NULL && dense != NULL);
    REQUIRE(dsc_table_data(csr)->row_ptr != NULL);
    REQUIRE(dsc_table_data(dense)->x != NULL);
    CHECK(same_as_old(csr, dense));
    CHECK_EQ_INT(dsc_prep_format(dsc_table_prep(dense)), DSC_FORMAT_LIBSVM);

    /* A data cache keeps the dense storage and the format; it reads back the same. */
    snprintf(cache, sizeof cache, "%s/grid.dscd", test_tmpdir());
    REQUIRE(dsc_table_save_cache(cache, dense) == DSC_OK);
    int err;
    dsc_table *cached = dsc_table_read(cache, NULL, NULL, &err);
    REQUIRE(cached != NULL);
    CHECK(same_table(dense, cached));
    CHECK_EQ_INT(dsc_prep_format(dsc_table_prep(cached)), DSC_FORMAT_LIBSVM);

    /* The fit is the sparse one, bit for bit: scaled, never centred, on every fitted row set
     * and with imputation asked for. The cached table fits the same. */
    uint32_t rows[100];
    for (uint32_t i = 0; i < 100; i++)
        rows[i] = i * 3 + 1;
    dsc_table *tables[3] = {csr, dense, cached};
    dsc_prep *preps[3];
    for (int i = 0; i < 3; i++) {
        preps[i] = dsc_table_prep(tables[i]);
        preps[i]->missing = DSC_MISSING_MEDIAN;
        REQUIRE(dsc_prep_fit(preps[i], tables[i], rows, 100, 1) == DSC_OK);
    }
    int fits_alike = 1, any_scaled = 0;
    for (int i = 1; i < 3; i++) {
        fits_alike &= memcmp(preps[0]->mean, preps[i]->mean, 12 * sizeof(float)) == 0;
        fits_alike &= memcmp(preps[0]->scale, preps[i]->scale, 12 * sizeof(float)) == 0;
        fits_alike &= memcmp(preps[0]->impute, preps[i]->impute, 12 * sizeof(float)) == 0;
    }
    for (int j = 0; j < 12; j++) {
        fits_alike &= preps[1]->mean[j] == 0.0f;
        any_scaled |= preps[1]->scale[j] != 1.0f;
    }
    CHECK(fits_alike);
    CHECK(any_scaled);

    /* Applied, the values stay those of the CSR rows, now scaled alike. */
    for (int i = 0; i < 3; i++)
        REQUIRE(dsc_prep_apply(preps[i], tables[i]) == DSC_OK);
    CHECK(same_as_old(csr, dense));
    CHECK(same_table(dense, cached));

    /* Trained the same way, the two storages make models of the same meaning. */
    dsc_model *from_csr = train_logistic(csr), *from_dense = train_logistic(dense);
    REQUIRE(from_csr != NULL && from_dense != NULL);
    size_t n_params = dsc_model_n_params(from_csr);
    REQUIRE(n_params == dsc_model_n_params(from_dense));
    const float *w_csr = dsc_model_params(from_csr), *w_dense = dsc_model_params(from_dense);
    double largest = 0.0, apart = 0.0;
    for (size_t i = 0; i < n_params; i++) {
        largest = fmax(largest, fabs(w_csr[i]));
        apart = fmax(apart, fabs((double)w_csr[i] - w_dense[i]));
    }
    CHECK(largest > 0.01);
    CHECK(apart <= 1e-5 * largest);

    /* And they predict the same classes for every row, from either storage. */
    const dsc_data *dc = dsc_table_data(csr), *dd = dsc_table_data(dense);
    int32_t a[300], b[300];
    REQUIRE(dsc_model_predict_class(from_csr, dc, 0, 300, a) == DSC_OK);
    REQUIRE(dsc_model_predict_class(from_csr, dd, 0, 300, b) == DSC_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    REQUIRE(dsc_model_predict_class(from_dense, dd, 0, 300, b) == DSC_OK);
    size_t agree = 0;
    for (int i = 0; i < 300; i++)
        agree += a[i] == b[i];
    CHECK(agree >= 298);

    dsc_model_free(from_csr);
    dsc_model_free(from_dense);
    dsc_table_free(cached);
    dsc_table_free(dense);
    dsc_table_free(csr);
}

/* Run "descent ARGS" (the binary of $DSC_BUILD, default build), input from in_path. */
static int run_descent(const char *args, const char *in_path)
{
    const char *build = getenv("DSC_BUILD");
    char command[4096];
    snprintf(command, sizeof command, "%s/descent %s <%s >%s/stdout 2>%s/stderr",
             build && *build ? build : "build", args, in_path ? in_path : "/dev/null",
             test_tmpdir(), test_tmpdir());
    fflush(NULL);
    int status = system(command);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(libsvm_cli_trains_dense_libsvm_as_sparse_from_a_file_or_standard_input)
{
    char path[512], args[2048], model[2][512], pred[2][512];
    const char *dir = test_tmpdir();
    write_grid(path, sizeof path, "grid.svm", 200, 6, 3, -1, NULL);
    REQUIRE(reads_dense(path, NULL) == 1);

    /* The same file by name (mapped) and on standard input (streamed). */
    for (int i = 0; i < 2; i++) {
        snprintf(model[i], sizeof model[i], "%s/m%d.model", dir, i);
        snprintf(pred[i], sizeof pred[i], "%s/p%d.csv", dir, i);
        snprintf(args, sizeof args, "train %s --format libsvm -o %s --epochs 3 --seed 1 "
                 "--quiet", i ? "-" : path, model[i]);
        CHECK_EQ_INT(run_descent(args, i ? path : NULL), 0);
        snprintf(args, sizeof args, "predict %s %s --proba -o %s", model[i], path, pred[i]);
        CHECK_EQ_INT(run_descent(args, NULL), 0);
    }

    /* Sparse features are not standardised, dense-stored or not. */
    for (int i = 0; i < 2; i++) {
        dsc_model *m = NULL;
        dsc_prep *prep = NULL;
        char *settings = NULL;
        REQUIRE(dsc_model_load(model[i], &m, &prep, &settings) == DSC_OK);
        CHECK(prep != NULL && !prep->standardized);
        CHECK(settings != NULL && strstr(settings, "standardize=0") != NULL);
        dsc_model_free(m);
        dsc_prep_free(prep);
        dsc_free(settings);
    }

    /* Both runs trained on the same table: the same probabilities. */
    FILE *f0 = fopen(pred[0], "rb"), *f1 = fopen(pred[1], "rb");
    REQUIRE(f0 != NULL && f1 != NULL);
    int same = 1, c0, c1;
    do {
        c0 = fgetc(f0);
        c1 = fgetc(f1);
        same &= c0 == c1;
    } while (c0 != EOF && c1 != EOF);
    fclose(f0);
    fclose(f1);
    CHECK(same);
}

/*
 * Read path (2 threads, small pieces) with the allocator failing each call in turn: every
 * failure is DSC_ENOMEM with nothing left allocated, until a read makes fewer calls.
 */
static long fails_cleanly(const char *path, const dsc_prep *prep)
{
    long fail_at;
    int all_clean = 1;

    dsc__libsvm_set_piece_bytes(64);
    dsc_set_threads(2);
    for (fail_at = 1;; fail_at++) {
        test_oom.calls = test_oom.live = 0;
        test_oom.fail_at = fail_at;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        int err;
        dsc_table *t = read_svm(path, -1, prep, &err);
        dsc_table_free(t);
        dsc_set_allocator(NULL, NULL, NULL);
        all_clean &= test_oom.live == 0;
        if (!t && err != DSC_ENOMEM) {
            fprintf(stderr, "    allocation %ld: %s\n", fail_at, dsc_last_error());
            all_clean = 0;
        }
        if (t && test_oom.calls < fail_at)
            break;
    }
    dsc__libsvm_set_piece_bytes(0);
    dsc_set_threads(1);
    CHECK(all_clean);
    return fail_at;
}

TEST(libsvm_mapped_read_fails_cleanly_at_every_allocation)
{
    char dense[512], zero[512], sparse[512];
    int err;
    write_grid(dense, sizeof dense, "dense.svm", 40, 6, 3, -1, NULL);
    write_grid(zero, sizeof zero, "zero.svm", 40, 6, 3, 30, "0"); /* dense, then CSR */
    write_grid(sparse, sizeof sparse, "sparse.svm", 40, 6, 1, -1, NULL);
    CHECK(fails_cleanly(dense, NULL) > 5);
    CHECK(fails_cleanly(zero, NULL) > 5);
    CHECK(fails_cleanly(sparse, NULL) > 5);

    dsc_table *t = read_svm(dense, -1, NULL, &err);
    REQUIRE(t != NULL);
    CHECK(fails_cleanly(dense, dsc_table_prep(t)) > 5);
    dsc_table_free(t);
}

TEST(libsvm_dense_read_holds_little_more_than_its_matrix)
{
    /* 3000 rows of 40 features: a 480 KB matrix; its CSR arrays would take 984 KB. */
    char path[512];
    write_grid(path, sizeof path, "grid.svm", 3000, 40, 3, -1, NULL);
    for (int threads = 1; threads <= 2; threads++) {
        dsc_set_threads(threads);
        test_oom.fail_at = 0;
        test_oom.live_bytes = test_oom.peak_bytes = 0;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        int err;
        dsc_table *t = read_svm(path, 1, NULL, &err);
        dsc_set_allocator(NULL, NULL, NULL);
        REQUIRE(t != NULL);
        CHECK(dsc_table_data(t)->x != NULL);
        size_t matrix = 3000 * 40 * sizeof(float), labels = 3000 * 2 * sizeof(float);
        CHECK(test_oom.peak_bytes <= matrix + labels + 16384);
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        dsc_table_free(t);
        dsc_set_allocator(NULL, NULL, NULL);
    }
    dsc_set_threads(1);
}

/* A line of /proc/self/status in kB ("VmHWM", "VmRSS"), or -1 where there is none. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t len = strlen(field);

    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            kb = strtol(line + len + 1, NULL, 10);
    }
    if (f)
        fclose(f);
    return kb;
}

/* Set the process's peak resident size back to its current size (Linux); 0 when it could. */
static int reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

TEST(libsvm_mapped_read_does_not_hold_the_file)
{
    /*
     * 120,000 rows of 40 features: a file of about 43 MB read in pieces of 256 KiB into a
     * 19 MB matrix. The mapped pages go back as each piece is cut, counted and parsed, so
     * the peak rises by the matrix, the labels and a few MB, never by the file (read with
     * the cuts holding their pages, it rose by about the file and the matrix together).
     */
    char path[512];
    write_grid(path, sizeof path, "big.svm", 120000, 40, 3, -1, NULL);
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    REQUIRE(fseek(f, 0, SEEK_END) == 0);
    long file_kb = ftell(f) / 1024;
    fclose(f);
    REQUIRE(file_kb > 36 * 1024);

    if (reset_peak() != 0 || status_kb("VmHWM") < 0) {
        fprintf(stderr, "    no /proc/self/clear_refs here: the peak is not checked\n");
        return;
    }
    for (int threads = 1; threads <= 2; threads++) {
        dsc_set_threads(threads);
        dsc__libsvm_set_piece_bytes((size_t)256 << 10);
        REQUIRE(reset_peak() == 0);
        long before_kb = status_kb("VmRSS");
        int err;
        dsc_table *t = read_svm(path, 1, NULL, &err);
        long peak_kb = status_kb("VmHWM");
        dsc__libsvm_set_piece_bytes(0);
        REQUIRE(t != NULL);
        CHECK(dsc_table_data(t)->x != NULL);
        long data_kb = 120000L * (40 + 2) * 4 / 1024;
        long rise_kb = peak_kb - before_kb;
        if (rise_kb > data_kb + file_kb / 2)
            fprintf(stderr, "    %d threads: the peak rose by %ld kB for %ld kB of data\n",
                    threads, rise_kb, data_kb);
        CHECK(rise_kb <= data_kb + file_kb / 2);
        dsc_table_free(t);
    }
    dsc_set_threads(1);
}
