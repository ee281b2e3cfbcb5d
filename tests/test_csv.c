/*
 * test_csv.c - the CSV reader: header and delimiter detection, quoting, line ends, the target,
 * classes, one-hot columns, missing values, prediction with a learned encoding, every kind of
 * malformed input with its exact message, and random bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Helpers ----------------------------------------------------------------------------- */

static int file_counter;

/* Write len bytes to a fresh file in the test folder; path receives its name. */
static void write_bytes(const char *bytes, size_t len, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/data%d.csv", test_tmpdir(), file_counter++);
    FILE *f = fopen(path, "wb");
    if (!f) {
        test_report(__FILE__, __LINE__, "cannot write %s", path);
        return;
    }
    if (len)
        fwrite(bytes, 1, len, f);
    fclose(f);
}

/* Read text (a C string) as a CSV file with opts (NULL: defaults) and prep. */
static dsc_table *read_text(const char *text, const dsc_read_options *opts, const dsc_prep *prep,
                            int *err, char *path, size_t path_size)
{
    write_bytes(text, strlen(text), path, path_size);
    return dsc_table_read(path, opts, prep, err);
}

static dsc_table *read_ok(const char *text, const dsc_read_options *opts)
{
    char path[512];
    int err = 0;
    dsc_table *t = read_text(text, opts, NULL, &err, path, sizeof path);
    if (!t)
        fprintf(stderr, "    unexpected failure: %s\n", dsc_last_error());
    return t;
}

/* Reading len bytes must fail with code and the message "PATH:" followed by what. */
static void check_error_bytes(const char *file, int line, const char *bytes, size_t len,
                              const dsc_read_options *opts, const dsc_prep *prep, int code,
                              const char *what)
{
    char path[512], expected[1024];
    int err = 0;

    write_bytes(bytes, len, path, sizeof path);
    dsc_table *t = dsc_table_read(path, opts, prep, &err);
    snprintf(expected, sizeof expected, "%s:%s", path, what);
    if (t) {
        test_report(file, line, "read succeeded, expected \"%s\"", expected);
        dsc_table_free(t);
        return;
    }
    if (err != code)
        test_report(file, line, "error code %d, expected %d", err, code);
    if (strcmp(dsc_last_error(), expected) != 0)
        test_report(file, line, "message \"%s\", expected \"%s\"", dsc_last_error(), expected);
}

#define CHECK_ERROR(text, opts, code, what)                                                   \
    check_error_bytes(__FILE__, __LINE__, text, strlen(text), opts, NULL, code, what)

static const float *row_of(const dsc_table *t, size_t r)
{
    const dsc_data *d = dsc_table_data(t);
    return d->x + r * d->n_features;
}

/* ---- Headers, delimiters, quoting, line ends --------------------------------------------- */

TEST(csv_header_detected_from_text_over_numbers)
{
    dsc_table *t = read_ok("alpha,beta,y\n1.5,2,3\n4,5,6\n", NULL);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *p = dsc_table_prep(t);
    CHECK_EQ_INT(d->n_rows, 2);
    CHECK_EQ_INT(d->n_features, 2);
    REQUIRE(p->n_columns == 2);
    CHECK(strcmp(p->columns[0].name, "alpha") == 0);
    CHECK(strcmp(p->columns[1].name, "beta") == 0);
    CHECK(p->target_name && strcmp(p->target_name, "y") == 0);
    CHECK(row_of(t, 0)[0] == 1.5f && row_of(t, 0)[1] == 2.0f);
    REQUIRE(d->y);
    CHECK(d->y[0] == 3.0f && d->y[1] == 6.0f);
    dsc_table_free(t);
}

TEST(csv_no_header_detected_when_first_row_is_numeric)
{
    dsc_table *t = read_ok("1,2,3\n4,5,6\n", NULL);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    CHECK(p->target_name == NULL);
    REQUIRE(p->n_columns == 2);
    CHECK(strcmp(p->columns[0].name, "x1") == 0);
    CHECK(strcmp(p->columns[1].name, "x2") == 0);
    CHECK(row_of(t, 0)[0] == 1.0f && row_of(t, 1)[1] == 5.0f);
    dsc_table_free(t);

    /* A text row over a text row is not taken for a header. */
    t = read_ok("red,1\nblue,2\n", NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    dsc_table_free(t);
}

TEST(csv_header_declared_either_way)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.header = 1;
    dsc_table *t = read_ok("7,8,9\n1,2,3\n", &opts);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 1);
    CHECK(strcmp(dsc_table_prep(t)->columns[0].name, "7") == 0);
    CHECK(strcmp(dsc_table_prep(t)->target_name, "9") == 0);
    dsc_table_free(t);

    opts.header = 0;
    t = read_ok("p,2,3\n1,5,6\n", &opts);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    REQUIRE(dsc_table_prep(t)->columns[0].categorical);
    CHECK_EQ_INT(dsc_table_prep(t)->columns[0].n_levels, 2);
    dsc_table_free(t);
}

TEST(csv_each_delimiter_detected)
{
    const char delimiters[] = {',', ';', '\t', '|'};
    for (int i = 0; i < 4; i++) {
        char d = delimiters[i], text[128];
        snprintf(text, sizeof text, "a%cb%cc%cy\n1%c2.5%c-3%c4\n5%c6%c7%c8\n", d, d, d, d, d,
                 d, d, d, d);
        dsc_table *t = read_ok(text, NULL);
        REQUIRE(t);
        const dsc_data *data = dsc_table_data(t);
        CHECK_EQ_INT(data->n_features, 3);
        CHECK_EQ_INT(data->n_rows, 2);
        CHECK(row_of(t, 0)[1] == 2.5f && row_of(t, 0)[2] == -3.0f);
        CHECK(data->y[1] == 8.0f);
        dsc_table_free(t);
    }

    /* Commas inside quotes do not count: ';' is the most frequent outside them. */
    dsc_table *t = read_ok("\"a,b,c,d\";e;y\n1;2;3\n", NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_features, 2);
    CHECK(strcmp(dsc_table_prep(t)->columns[0].name, "a,b,c,d") == 0);
    dsc_table_free(t);
}

TEST(csv_delimiter_declared_overrides_detection)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.delimiter = '|';
    dsc_table *t = read_ok("a,1,2|b,3|y\nq,w,e|r|1\n", &opts);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(p->n_columns == 2);
    CHECK(strcmp(p->columns[0].name, "a,1,2") == 0);
    CHECK(strcmp(p->columns[0].levels[0], "q,w,e") == 0);
    dsc_table_free(t);
}

TEST(csv_quoting_keeps_delimiters_quotes_and_newlines)
{
    const char *text = "name,y\n"
                       "\"a,b\",1\n"
                       "\"say \"\"hi\"\"\",2\n"
                       "\"two\nlines\",3\n"
                       "  \"spaced\"  ,4\n"
                       "plain,\n";
    dsc_read_options opts;
    dsc_read_options_default(&opts);

    /* The missing target on the last row is reported at its true line (7), column 7, which
     * also checks that the line inside quotes was counted. */
    CHECK_ERROR(text, &opts, DSC_EFORMAT, "7:7: missing target value in column y");

    const char *good = "name,y\n\"a,b\",1\n\"say \"\"hi\"\"\",2\n\"two\nlines\",3\n"
                       "  \"spaced\"  ,4\n\"\"\"\",5\n";
    dsc_table *t = read_ok(good, NULL);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(p->n_columns == 1 && p->columns[0].n_levels == 5);
    CHECK(strcmp(p->columns[0].levels[0], "a,b") == 0);
    CHECK(strcmp(p->columns[0].levels[1], "say \"hi\"") == 0);
    CHECK(strcmp(p->columns[0].levels[2], "two\nlines") == 0);
    CHECK(strcmp(p->columns[0].levels[3], "spaced") == 0);
    CHECK(strcmp(p->columns[0].levels[4], "\"") == 0);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 5);
    dsc_table_free(t);

    /* A quoted number is a number. */
    t = read_ok("\"a\",\"y\"\n\"1.25\",\"2\"\n", NULL);
    REQUIRE(t);
    CHECK(!dsc_table_prep(t)->columns[0].categorical);
    CHECK(row_of(t, 0)[0] == 1.25f);
    dsc_table_free(t);
}

TEST(csv_spaces_around_fields_trimmed)
{
    dsc_table *t = read_ok(" left , right ,y\n 1.5 ,\t2 , 3 \n", NULL);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    CHECK(strcmp(p->columns[0].name, "left") == 0);
    CHECK(strcmp(p->columns[1].name, "right") == 0);
    CHECK(!p->columns[0].categorical && !p->columns[1].categorical);
    CHECK(row_of(t, 0)[0] == 1.5f && row_of(t, 0)[1] == 2.0f);
    CHECK(dsc_table_data(t)->y[0] == 3.0f);
    dsc_table_free(t);

    /* Inside quotes the spaces stay. */
    t = read_ok("c,y\n\" a \",1\n", NULL);
    REQUIRE(t);
    CHECK(strcmp(dsc_table_prep(t)->columns[0].levels[0], " a ") == 0);
    dsc_table_free(t);
}

TEST(csv_crlf_line_ends)
{
    dsc_table *t = read_ok("a,b\r\n1,2\r\n3,4\r\n", NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    CHECK(dsc_table_data(t)->y[0] == 2.0f && dsc_table_data(t)->y[1] == 4.0f);
    CHECK(strcmp(dsc_table_prep(t)->target_name, "b") == 0);
    dsc_table_free(t);

    CHECK_ERROR("a,b\r\n1,2\r\n3,\r\n", NULL, DSC_EFORMAT, "3:3: missing target value in column b");
    CHECK_ERROR("a,b\r\n1,2\r\n,4\r\n", NULL, DSC_EFORMAT,
                "3:1: missing value in column a (use --missing mean or median)");
}

TEST(csv_byte_order_mark_skipped)
{
    dsc_table *t = read_ok("\xEF\xBB\xBF" "first,y\n1,2\n", NULL);
    REQUIRE(t);
    CHECK(strcmp(dsc_table_prep(t)->columns[0].name, "first") == 0);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 1);
    dsc_table_free(t);

    /* Without a header, the first cell is still a number. */
    t = read_ok("\xEF\xBB\xBF" "1,2\n3,4\n", NULL);
    REQUIRE(t);
    CHECK(!dsc_table_prep(t)->columns[0].categorical);
    CHECK(row_of(t, 0)[0] == 1.0f);
    dsc_table_free(t);
}

TEST(csv_blank_lines_skipped)
{
    dsc_table *t = read_ok("\n\na,b\n\n1,2\n   \n\r\n3,4\n\n", NULL);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    CHECK(row_of(t, 1)[0] == 3.0f);
    dsc_table_free(t);

    /* Lines are still counted across the blank ones. */
    CHECK_ERROR("a,b\n\n1,2\n\n\nx,\n", NULL, DSC_EFORMAT, "6:3: missing target value in column b");
}

TEST(csv_reads_standard_input)
{
    char path[512];
    const char *text = "a,y\n1,2\n3,4\n";
    write_bytes(text, strlen(text), path, sizeof path);
    REQUIRE(freopen(path, "rb", stdin) != NULL);
    int err = 0;
    dsc_table *t = dsc_table_read("-", NULL, NULL, &err);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    dsc_table_free(t);

    text = "a,y\n1,2\n3\n";
    write_bytes(text, strlen(text), path, sizeof path);
    REQUIRE(freopen(path, "rb", stdin) != NULL);
    t = dsc_table_read("-", NULL, NULL, &err);
    CHECK(t == NULL);
    CHECK(strcmp(dsc_last_error(), "<stdin>:3:2: line 3 has 1 field, expected 2") == 0);
}

/* ---- Targets and classes ----------------------------------------------------------------- */

TEST(csv_target_by_name_and_by_index)
{
    const char *text = "y,a,b\n10,1,2\n20,3,4\n";
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.target = "y";
    dsc_table *t = read_ok(text, &opts);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_features, 2);
    CHECK(d->y[0] == 10.0f && d->y[1] == 20.0f);
    CHECK(row_of(t, 1)[0] == 3.0f && row_of(t, 1)[1] == 4.0f);
    CHECK(strcmp(dsc_table_prep(t)->columns[0].name, "a") == 0);
    dsc_table_free(t);

    opts.target = "2";
    t = read_ok(text, &opts);
    REQUIRE(t);
    d = dsc_table_data(t);
    CHECK(d->y[0] == 1.0f && d->y[1] == 3.0f);
    CHECK(row_of(t, 0)[0] == 10.0f && row_of(t, 0)[1] == 2.0f);
    CHECK(strcmp(dsc_table_prep(t)->target_name, "a") == 0);
    dsc_table_free(t);

    opts.target = "4";
    CHECK_ERROR(text, &opts, DSC_EINVAL, "1:1: target column 4 is not among the 3 columns");
    opts.target = "z";
    CHECK_ERROR(text, &opts, DSC_EINVAL, "1:1: no column named z");
    CHECK_ERROR("1,2\n3,4\n", &opts, DSC_EINVAL, "1:1: no column named z (the file has no header)");
}

TEST(csv_string_labels_in_order_of_first_appearance)
{
    dsc_table *t = read_ok("f,label\n1,cat\n2,dog\n3,cat\n4,bird\n5,dog\n", NULL);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(dsc_prep_n_classes(p) == 3);
    CHECK(strcmp(dsc_prep_class_name(p, 0), "cat") == 0);
    CHECK(strcmp(dsc_prep_class_name(p, 1), "dog") == 0);
    CHECK(strcmp(dsc_prep_class_name(p, 2), "bird") == 0);
    CHECK(dsc_prep_class_name(p, 3) == NULL);
    const int32_t expected[5] = {0, 1, 0, 2, 1};
    REQUIRE(d->label && !d->y);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(d->label[i], expected[i]);
    CHECK_EQ_INT(dsc_prep_n_targets(p), 0);
    dsc_table_free(t);
}

TEST(csv_numeric_classes_sorted_numerically)
{
    const char *values[6] = {"10", "2", "-1", "2", "1e1", "0.5"};
    char text[256] = "f,y\n";
    for (int i = 0; i < 6; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%d,%s\n", i, values[i]);
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.classify = 1;
    dsc_table *t = read_ok(text, &opts);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    const dsc_data *d = dsc_table_data(t);

    /* The reference order: distinct texts sorted by value, ties by first appearance. */
    const char *distinct[6];
    double value[6];
    int n = 0;
    for (int i = 0; i < 6; i++) {
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen |= strcmp(distinct[k], values[i]) == 0;
        if (!seen) {
            distinct[n] = values[i];
            value[n++] = strtod(values[i], NULL);
        }
    }
    for (int a = 1; a < n; a++) { /* insertion sort: stable */
        for (int b = a; b > 0 && value[b - 1] > value[b]; b--) {
            double v = value[b];
            value[b] = value[b - 1];
            value[b - 1] = v;
            const char *s = distinct[b];
            distinct[b] = distinct[b - 1];
            distinct[b - 1] = s;
        }
    }
    REQUIRE(dsc_prep_n_classes(p) == (size_t)n);
    for (int k = 0; k < n; k++)
        CHECK(strcmp(dsc_prep_class_name(p, (size_t)k), distinct[k]) == 0);
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(dsc_prep_class_name(p, (size_t)d->label[i]), values[i]) == 0);
    dsc_table_free(t);
}

TEST(csv_numeric_target_is_regression_unless_classify)
{
    dsc_table *t = read_ok("f,y\n1,0.25\n2,1\n", NULL);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    CHECK(d->y && !d->label);
    CHECK_EQ_INT(d->n_targets, 1);
    CHECK_EQ_INT(dsc_prep_n_classes(dsc_table_prep(t)), 0);
    CHECK_EQ_INT(dsc_prep_n_targets(dsc_table_prep(t)), 1);
    CHECK(d->y[0] == 0.25f);
    dsc_table_free(t);

    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.classify = 0;
    CHECK_ERROR("f,y\n1,2\n2,yes\n", &opts, DSC_EFORMAT, "3:3: target 'yes' is not a number");
}

TEST(csv_too_many_classes_is_an_error)
{
    size_t n = 65537, cap = n * 16 + 16, len = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    len += (size_t)snprintf(text + len, cap - len, "f,y\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "1,c%zu\n", i);
    char what[128];
    snprintf(what, sizeof what, "%zu:3: more than 65536 classes", n + 1);
    check_error_bytes(__FILE__, __LINE__, text, len, NULL, NULL, DSC_ELIMIT, what);
    free(text);
}

/* ---- One-hot columns --------------------------------------------------------------------- */

TEST(csv_one_hot_levels_and_layout)
{
    const char *text = "num,color,num2,size,y\n"
                       "1,red,10,S,0\n"
                       "2,green,20,L,1\n"
                       "3,red,30,L,0\n"
                       "4,blue,40,S,1\n";
    dsc_table *t = read_ok(text, NULL);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *p = dsc_table_prep(t);
    CHECK_EQ_INT(d->n_features, 1 + 3 + 1 + 2);
    REQUIRE(p->n_columns == 4);
    CHECK(!p->columns[0].categorical && p->columns[0].first_feature == 0);
    CHECK(p->columns[1].categorical && p->columns[1].first_feature == 1);
    CHECK(!p->columns[2].categorical && p->columns[2].first_feature == 4);
    CHECK(p->columns[3].categorical && p->columns[3].first_feature == 5);
    REQUIRE(p->columns[1].n_levels == 3 && p->columns[3].n_levels == 2);
    CHECK(strcmp(p->columns[1].levels[0], "red") == 0);
    CHECK(strcmp(p->columns[1].levels[1], "green") == 0);
    CHECK(strcmp(p->columns[1].levels[2], "blue") == 0);
    CHECK(strcmp(p->columns[3].levels[0], "S") == 0);

    const float expected[4][7] = {{1, 1, 0, 0, 10, 1, 0},
                                  {2, 0, 1, 0, 20, 0, 1},
                                  {3, 1, 0, 0, 30, 0, 1},
                                  {4, 0, 0, 1, 40, 1, 0}};
    for (size_t r = 0; r < 4; r++) {
        for (size_t j = 0; j < 7; j++)
            CHECK(row_of(t, r)[j] == expected[r][j]);
    }
    dsc_table_free(t);
}

TEST(csv_mixed_column_becomes_one_hot_with_number_levels)
{
    dsc_table *t = read_ok("code,y\n1,0\n2.50,1\nA7,0\n1,1\n3,0\n", NULL);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(p->columns[0].categorical && p->columns[0].n_levels == 4);
    CHECK(strcmp(p->columns[0].levels[0], "1") == 0);
    CHECK(strcmp(p->columns[0].levels[1], "2.5") == 0);
    CHECK(strcmp(p->columns[0].levels[2], "A7") == 0);
    CHECK(strcmp(p->columns[0].levels[3], "3") == 0);
    CHECK(row_of(t, 3)[0] == 1.0f && row_of(t, 3)[1] == 0.0f);
    CHECK(row_of(t, 4)[3] == 1.0f);
    dsc_table_free(t);
}

TEST(csv_max_levels_error_names_the_column)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.max_levels = 3;
    const char *text = "n,shade,y\n1,a,0\n2,b,1\n3,c,0\n4,a,1\n5,d,0\n";
    CHECK_ERROR(text, &opts, DSC_ELIMIT, "6:3: column shade has more than 3 levels");
    opts.max_levels = 4;
    dsc_table *t = read_ok(text, &opts);
    CHECK(t != NULL);
    dsc_table_free(t);

    /* The default is 1000. */
    size_t cap = 1100 * 16, len = 0;
    char *big = malloc(cap);
    REQUIRE(big);
    len += (size_t)snprintf(big + len, cap - len, "v,y\n");
    for (int i = 0; i < 1001; i++)
        len += (size_t)snprintf(big + len, cap - len, "L%d,1\n", i);
    check_error_bytes(__FILE__, __LINE__, big, len, NULL, NULL, DSC_ELIMIT,
                      "1002:1: column v has more than 1000 levels");
    free(big);
}

/* ---- Prediction with a learned encoding -------------------------------------------------- */

static dsc_table *train_table(void)
{
    return read_ok("size,color,label\n1,red,yes\n2,green,no\n3,red,yes\n", NULL);
}

TEST(csv_prediction_unseen_level_is_zeros_and_counted)
{
    dsc_table *train = train_table();
    REQUIRE(train);
    dsc_prep *prep = dsc_table_prep(train);
    char path[512];
    int err = 0;
    dsc_table *t = read_text("size,color,label\n5,blue,no\n6,green,yes\n7,pink,yes\n", NULL,
                             prep, &err, path, sizeof path);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_features, 3);
    CHECK_EQ_INT(dsc_table_n_unseen(t), 2);
    CHECK(row_of(t, 0)[0] == 5.0f && row_of(t, 0)[1] == 0.0f && row_of(t, 0)[2] == 0.0f);
    CHECK(row_of(t, 1)[1] == 0.0f && row_of(t, 1)[2] == 1.0f);
    REQUIRE(d->label);
    CHECK_EQ_INT(d->label[0], 1); /* "no" was the second class */
    CHECK_EQ_INT(d->label[1], 0);
    /* The table's prep is its own copy of the one given. */
    CHECK(dsc_table_prep(t) != prep);
    CHECK_EQ_INT(dsc_prep_n_classes(dsc_table_prep(t)), 2);
    dsc_table_free(t);

    /* Without the target column: features only. */
    t = read_text("4,green\n5,red\n", NULL, prep, &err, path, sizeof path);
    REQUIRE(t);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 2);
    CHECK(dsc_table_data(t)->label == NULL);
    CHECK(row_of(t, 0)[2] == 1.0f && row_of(t, 1)[1] == 1.0f);
    dsc_table_free(t);

    /* An unknown class, a text in a numeric column, and a wrong count of fields. */
    check_error_bytes(__FILE__, __LINE__, "1,red,maybe\n", 12, NULL, prep, DSC_EFORMAT,
                      "1:7: class 'maybe' was not seen in training");
    check_error_bytes(__FILE__, __LINE__, "1,red,yes\nx,red,no\n", 19, NULL, prep, DSC_EFORMAT,
                      "2:1: 'x' is not a number, and column size was numeric in training");
    check_error_bytes(__FILE__, __LINE__, "1,red,yes,4\n", 12, NULL, prep, DSC_EFORMAT,
                      "1:1: line 1 has 4 fields, expected 3");
    dsc_table_free(train);
}

/* ---- Missing values ---------------------------------------------------------------------- */

TEST(csv_missing_value_is_an_error_naming_the_column)
{
    const char *markers[] = {"", "NA", "NaN", "?", "nan", "na"};
    for (size_t i = 0; i < sizeof markers / sizeof *markers; i++) {
        char text[128];
        snprintf(text, sizeof text, "a,bee,y\n1,2,3\n4,%s,6\n", markers[i]);
        CHECK_ERROR(text, NULL, DSC_EFORMAT,
                    "3:3: missing value in column bee (use --missing mean or median)");
    }
    /* Without a header the column is named by its position. */
    CHECK_ERROR("1,2,3\n4,5,6\n7,8,9\n1,NA,3\n", NULL, DSC_EFORMAT,
                "4:3: missing value in column x2 (use --missing mean or median)");

    /* A missing target is an error whatever the policy. */
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEAN;
    CHECK_ERROR("a,y\n1,2\n3,?\n", &opts, DSC_EFORMAT, "3:3: missing target value in column y");
}

TEST(csv_missing_values_allowed_are_nan_and_counted)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEDIAN;
    dsc_table *t = read_ok("a,c,y\n1,r,0\nNA,?,1\n3,g,0\n,r,1\n", &opts);
    REQUIRE(t);
    CHECK_EQ_INT(t->n_missing, 3);
    CHECK(isnan(row_of(t, 1)[0]) && isnan(row_of(t, 3)[0]));
    /* A missing one-hot cell is missing in each of its features. */
    CHECK(isnan(row_of(t, 1)[1]) && isnan(row_of(t, 1)[2]));
    CHECK(row_of(t, 2)[2] == 1.0f);
    CHECK(dsc_table_prep(t)->missing == DSC_MISSING_MEDIAN);
    dsc_table_free(t);
}

/* ---- Malformed input, each with its exact message ---------------------------------------- */

TEST(csv_ragged_rows)
{
    CHECK_ERROR("a,b,c\n1,2,3\n4,5,6,7\n", NULL, DSC_EFORMAT,
                "3:7: line 3 has 4 fields, expected 3");
    CHECK_ERROR("a,b,c\n1,2,3\n4,5\n", NULL, DSC_EFORMAT, "3:4: line 3 has 2 fields, expected 3");
}

TEST(csv_bad_quotes)
{
    CHECK_ERROR("a,b\n1,2\n3,\"4\n", NULL, DSC_EFORMAT, "3:3: unterminated quote");
    CHECK_ERROR("a,b\n1,2\n\"3\"x,4\n", NULL, DSC_EFORMAT, "3:4: text after a closing quote");
}

TEST(csv_infinite_and_out_of_range_numbers)
{
    const char *values[] = {"inf", "-Inf", "Infinity", "1e400", "-3.5e38"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char text[128];
        snprintf(text, sizeof text, "a,b\n1,2\n%s,3\n", values[i]);
        CHECK_ERROR(text, NULL, DSC_EFORMAT, "3:1: value out of range");
    }
    /* The largest float itself is fine. */
    dsc_table *t = read_ok("a,b\n3.4028234e38,1\n", NULL);
    REQUIRE(t);
    CHECK(row_of(t, 0)[0] == 3.4028234e38f);
    dsc_table_free(t);
}

TEST(csv_empty_file_header_only_and_binary)
{
    CHECK_ERROR("", NULL, DSC_EFORMAT, "1:1: no data");
    CHECK_ERROR("\n\n", NULL, DSC_EFORMAT, "3:1: no data");
    CHECK_ERROR("x,y\n", NULL, DSC_EFORMAT, "2:1: no data rows");
    check_error_bytes(__FILE__, __LINE__, "a,b\n1,2\n3,\0\n", 12, NULL, NULL, DSC_EFORMAT,
                      "3:3: binary data");
    CHECK_ERROR("only\n1\n2\n", NULL, DSC_EFORMAT, "1:1: no feature columns besides the target");
}

TEST(csv_field_line_and_column_limits)
{
    /* A field over 1 MiB. */
    size_t n = ((size_t)1 << 20) + 10;
    char *text = malloc(n + 32);
    REQUIRE(text);
    memcpy(text, "a,b\n1,", 6);
    memset(text + 6, '7', n);
    memcpy(text + 6 + n, "\n", 1);
    check_error_bytes(__FILE__, __LINE__, text, n + 7, NULL, NULL, DSC_ELIMIT,
                      "2:3: field longer than 1 MiB");
    free(text);

    /* A line over 64 MiB, of fields under 1 MiB. */
    size_t field = 1000000, fields = 68, len = 0;
    text = malloc(fields * (field + 1) + 16);
    REQUIRE(text);
    for (size_t i = 0; i < fields; i++) {
        memset(text + len, 'q', field);
        len += field;
        text[len++] = i + 1 < fields ? ',' : '\n';
    }
    check_error_bytes(__FILE__, __LINE__, text, len, NULL, NULL, DSC_ELIMIT,
                      "1:1: line longer than 64 MiB");
    free(text);

    /* More than a million columns. */
    n = 1000001;
    text = malloc(2 * n + 4);
    REQUIRE(text);
    for (size_t i = 0; i < n; i++) {
        text[2 * i] = '1';
        text[2 * i + 1] = i + 1 < n ? ',' : '\n';
    }
    check_error_bytes(__FILE__, __LINE__, text, 2 * n, NULL, NULL, DSC_ELIMIT,
                      "1:2000001: more than 1000000 columns");
    free(text);
}

TEST(csv_missing_file_is_an_io_error)
{
    char path[512];
    int err = 0;
    snprintf(path, sizeof path, "%s/absent.csv", test_tmpdir());
    CHECK(dsc_table_read(path, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EIO);
    CHECK(strncmp(dsc_last_error(), path, strlen(path)) == 0);
}

/* ---- Formats, names and options ---------------------------------------------------------- */

TEST(csv_formats_and_names)
{
    CHECK(dsc_format_from_path("a/b.csv") == DSC_FORMAT_CSV);
    CHECK(dsc_format_from_path("b.TSV") == DSC_FORMAT_CSV);
    CHECK(dsc_format_from_path("b.txt") == DSC_FORMAT_CSV);
    CHECK(dsc_format_from_path("b.data") == DSC_FORMAT_CSV);
    CHECK(dsc_format_from_path("b.svm") == DSC_FORMAT_LIBSVM);
    CHECK(dsc_format_from_path("b.libsvm") == DSC_FORMAT_LIBSVM);
    CHECK(dsc_format_from_path("b.svmlight") == DSC_FORMAT_LIBSVM);
    CHECK(dsc_format_from_path("x.npy") == DSC_FORMAT_NPY);
    CHECK(dsc_format_from_path("train-images-idx3-ubyte") == DSC_FORMAT_IDX);
    CHECK(dsc_format_from_path("d/t10k-labels-idx1-ubyte.gz") == DSC_FORMAT_IDX);
    CHECK(dsc_format_from_path("noextension") == DSC_FORMAT_CSV);
    CHECK(dsc_format_from_path("svm.dir/file.csv") == DSC_FORMAT_CSV);

    for (int f = 0; f < DSC_FORMAT_COUNT; f++)
        CHECK_EQ_INT(dsc_format_from_name(dsc_format_name((dsc_format)f)), f);
    CHECK(strcmp(dsc_format_name(DSC_FORMAT_LIBSVM), "libsvm") == 0);
    CHECK_EQ_INT(dsc_format_from_name("parquet"), -1);
    CHECK_EQ_INT(dsc_format_from_name(NULL), -1);
    for (int m = 0; m < DSC_MISSING_COUNT; m++)
        CHECK_EQ_INT(dsc_missing_from_name(dsc_missing_name((dsc_missing)m)), m);
    CHECK(strcmp(dsc_missing_name(DSC_MISSING_MEDIAN), "median") == 0);
    CHECK_EQ_INT(dsc_missing_from_name("zero"), -1);

    dsc_read_options opts;
    dsc_read_options_default(&opts);
    CHECK(opts.format == DSC_FORMAT_AUTO && opts.delimiter == 0 && opts.header == -1);
    CHECK(opts.target == NULL && opts.classify == -1 && opts.max_levels == 1000);
    CHECK(opts.missing == DSC_MISSING_ERROR && opts.labels_path == NULL);

    int err = 0;
    opts.delimiter = ':';
    CHECK(dsc_table_read("x.csv", &opts, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK(dsc_table_read(NULL, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
}

/* ---- Random bytes ------------------------------------------------------------------------ */

/* Every read of random bytes ends in a table that holds together or in an error code. */
static void check_random_read(const char *path, const dsc_read_options *opts,
                              const dsc_prep *prep)
{
    int err = 0;
    dsc_table *t = dsc_table_read(path, opts, prep, &err);
    if (!t) {
        CHECK(err < 0);
        CHECK(dsc_last_error()[0] != '\0');
        return;
    }
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *p = dsc_table_prep(t);
    CHECK(d->n_rows > 0);
    CHECK(d->n_features == dsc_prep_n_features(p));
    for (size_t r = 0; d->label && r < d->n_rows; r++)
        CHECK(d->label[r] >= 0 && (size_t)d->label[r] < dsc_prep_n_classes(p));
    size_t n_nan = 0;
    for (size_t i = 0; i < d->n_rows * d->n_features; i++)
        n_nan += isnan(d->x[i]);
    CHECK((n_nan > 0) == (t->n_missing > 0));
    if (!prep) {
        CHECK(dsc_prep_fit(p, t, NULL, 0, 1) == 0);
        CHECK(dsc_prep_apply(p, t) == 0);
        CHECK(dsc__all_finite(d->x, d->n_rows * d->n_features));
    }
    dsc_table_free(t);
}

TEST(csv_random_bytes_never_crash)
{
    static const char alphabet[] = "0123456789.,;|\t\"\n\r -+eE?NAab";
    static const char valid[] = "a,b,c\n1,x,p\n2,\"y,z\",q\r\n\n-3.5e2,x,p\n4,w,r\n";
    dsc_rng rng;
    dsc_rng_seed(&rng, 20240601);
    char path[512];
    unsigned char buf[256];
    dsc_read_options variants[4];
    for (int v = 0; v < 4; v++)
        dsc_read_options_default(&variants[v]);
    variants[1].missing = DSC_MISSING_MEAN;
    variants[1].header = 0;
    variants[2].missing = DSC_MISSING_MEDIAN;
    variants[2].classify = 1;
    variants[2].max_levels = 2;
    variants[3].header = 1;
    variants[3].target = "1";
    variants[3].classify = 0;

    dsc_table *trained = read_ok("a,b,c\n1,x,p\n2,y,q\n", NULL);
    REQUIRE(trained);
    for (int i = 0; i < 3000; i++) {
        size_t len = (size_t)dsc_rng_below(&rng, sizeof buf);
        int mode = (int)dsc_rng_below(&rng, 4);
        for (size_t k = 0; k < len; k++) {
            if (mode == 0)
                buf[k] = (unsigned char)dsc_rng_below(&rng, 256);
            else
                buf[k] = (unsigned char)alphabet[dsc_rng_below(&rng, sizeof alphabet - 1)];
        }
        if (mode == 2 && len > 3) /* sometimes a byte-order mark */
            memcpy(buf, "\xEF\xBB\xBF", 3);
        if (mode == 3) { /* a valid file with a few bytes changed */
            len = strlen(valid);
            memcpy(buf, valid, len);
            for (int k = (int)dsc_rng_below(&rng, 4); k >= 0; k--)
                buf[dsc_rng_below(&rng, len)] = (unsigned char)dsc_rng_below(&rng, 256);
        }
        write_bytes((const char *)buf, len, path, sizeof path);
        file_counter--; /* reuse the name */
        check_random_read(path, &variants[i % 4], NULL);
        check_random_read(path, &variants[0], dsc_table_prep(trained));
    }
    dsc_table_free(trained);
}

/* ---- Out of memory ----------------------------------------------------------------------- */

static long oom_calls, oom_fail_at, oom_live;

static void *oom_alloc(size_t size, void *ctx)
{
    (void)ctx;
    if (++oom_calls == oom_fail_at)
        return NULL;
    void *p = malloc(size);
    oom_live += p != NULL;
    return p;
}

static void oom_release(void *ptr, void *ctx)
{
    (void)ctx;
    oom_live--;
    free(ptr);
}

/* Read, fit and apply; with the N-th allocation failing, the result is DSC_ENOMEM. */
static int read_fit_apply(const char *path, const char *predict_path)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = DSC_MISSING_MEDIAN;
    int err = 0, rc;
    dsc_table *t = dsc_table_read(path, &opts, NULL, &err);
    if (!t)
        return err;
    dsc_prep *prep = dsc_table_prep(t);
    if ((rc = dsc_prep_fit(prep, t, NULL, 0, 1)) == 0 && (rc = dsc_prep_apply(prep, t)) == 0) {
        dsc_table *p = dsc_table_read(predict_path, NULL, prep, &err);
        rc = p ? dsc_prep_apply(prep, p) : err;
        dsc_table_free(p);
    }
    dsc_table_free(t);
    return rc;
}

TEST(csv_out_of_memory_at_every_allocation_fails_cleanly)
{
    const char *train = "n,color,code,y\n1,red,7,a\nNA,green,x,b\n3,red,8,a\n4,blue,7,c\n";
    const char *predict = "n,color,code,y\n2,red,7,b\n5,pink,x,c\n";
    char train_path[512], predict_path[512];
    write_bytes(train, strlen(train), train_path, sizeof train_path);
    write_bytes(predict, strlen(predict), predict_path, sizeof predict_path);

    dsc_set_allocator(oom_alloc, oom_release, NULL);
    oom_fail_at = 0;
    oom_calls = oom_live = 0;
    int rc = read_fit_apply(train_path, predict_path);
    long total = oom_calls;
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(oom_live, 0);
    for (long n = 1; n <= total; n++) {
        oom_calls = oom_live = 0;
        oom_fail_at = n;
        rc = read_fit_apply(train_path, predict_path);
        if (rc != DSC_ENOMEM || oom_live != 0)
            test_report(__FILE__, __LINE__, "allocation %ld of %ld failing: code %d, %ld live",
                        n, total, rc, oom_live);
    }
    dsc_set_allocator(NULL, NULL, NULL);
}
