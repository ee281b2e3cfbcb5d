/*
 * test_npy.c - the NumPy .npy reader: versions 1, 2 and 3, float32 and float64 features,
 * integer and float targets, byte order, the strict header parser, the data size checked
 * against the file, values beyond float or not finite, missing values, reading against a
 * trained encoding, and a mutation round.
 */
#include "test.h"
#include "internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* A .npy image being built in memory. */
typedef struct {
    unsigned char bytes[4096];
    size_t len;
    size_t header_end; /* the file offset where the data starts */
} npy_image;

/*
 * Start a .npy image of the given version with the header dict text, padded with spaces and
 * a newline to a multiple of 64 bytes as NumPy writes it.
 */
static void npy_begin(npy_image *im, int major, const char *dict)
{
    size_t prefix = major == 1 ? 10 : 12;
    size_t dict_len = strlen(dict);
    size_t total = (prefix + dict_len + 1 + 63) / 64 * 64;
    size_t header_len = total - prefix;

    memcpy(im->bytes, "\x93NUMPY", 6);
    im->bytes[6] = (unsigned char)major;
    im->bytes[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++)
        im->bytes[8 + i] = (unsigned char)(header_len >> (8 * i));
    memcpy(im->bytes + prefix, dict, dict_len);
    memset(im->bytes + prefix + dict_len, ' ', header_len - dict_len - 1);
    im->bytes[total - 1] = '\n';
    im->len = total;
    im->header_end = total;
}

/* Append a value as n little-endian (or big-endian) bytes of bits. */
static void put_bits(npy_image *im, uint64_t bits, size_t n, int big_endian)
{
    for (size_t i = 0; i < n; i++)
        im->bytes[im->len + (big_endian ? n - 1 - i : i)] = (unsigned char)(bits >> (8 * i));
    im->len += n;
}

static void put_f32(npy_image *im, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_bits(im, bits, 4, 0);
}

static void put_f64(npy_image *im, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_bits(im, bits, 8, 0);
}

/* Write the image to NAME in the test folder; its path into path. */
static void npy_write(const npy_image *im, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(im->bytes, 1, im->len, f);
        fclose(f);
    }
}

/* A targets file for reads that fail on their features first, before it is opened. */
#define NOT_READ "no-such-targets.npy"

static dsc_table *read_npy(const char *x_path, const char *y_path, int classify,
                           dsc_missing missing, const dsc_prep *prep, int *err)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_NPY;
    opts.labels_path = y_path;
    opts.classify = classify;
    opts.missing = missing;
    *err = 0;
    return dsc_table_read(x_path, &opts, prep, err);
}

/* A features file of 3 x 2 float32 values 1..6, as x.npy; its path into path. */
static void write_plain_features(char *path, size_t size)
{
    npy_image im;
    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
    for (int i = 1; i <= 6; i++)
        put_f32(&im, (float)i);
    npy_write(&im, "x.npy", path, size);
}

/* Check that reading failed with code and the message "FILE: what". */
static int failed_with(const dsc_table *t, int err, int code, const char *file,
                       const char *what)
{
    char expected[2048];
    snprintf(expected, sizeof expected, "%s: %s", file, what);
    int ok = t == NULL && err == code && strcmp(dsc_last_error(), expected) == 0;
    if (!ok)
        fprintf(stderr, "    got %d \"%s\"\n    expected %d \"%s\"\n", err, dsc_last_error(),
                code, expected);
    return ok;
}

TEST(npy_v1_float32_features_and_integer_classes)
{
    char x_path[512], y_path[512];
    int err;
    write_plain_features(x_path, sizeof x_path);

    npy_image im;
    npy_begin(&im, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }");
    put_bits(&im, 7, 8, 0);
    put_bits(&im, (uint64_t)-2, 8, 0); /* -2 in two's complement */
    put_bits(&im, 7, 8, 0);
    npy_write(&im, "y.npy", y_path, sizeof y_path);

    dsc_table *t = read_npy(x_path, y_path, -1, DSC_MISSING_ERROR, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_rows, 3);
    CHECK_EQ_INT(d->n_features, 2);
    REQUIRE(d->x != NULL);
    for (int i = 0; i < 6; i++)
        CHECK(d->x[i] == (float)(i + 1));

    dsc_prep *prep = dsc_table_prep(t);
    REQUIRE(dsc_prep_n_classes(prep) == 2);
    CHECK(strcmp(dsc_prep_class_name(prep, 0), "-2") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 1), "7") == 0);
    REQUIRE(d->label != NULL);
    CHECK(d->label[0] == 1 && d->label[1] == 0 && d->label[2] == 1);
    CHECK(d->y == NULL);
    CHECK_EQ_INT(dsc_prep_n_features(prep), 2);
    dsc_table_free(t);
}

TEST(npy_v2_float64_and_v3_headers_with_regression_targets)
{
    char x_path[512], y_path[512];
    int err;
    npy_image im;

    /* float64 features are rounded to float once. */
    static const double xs[4] = {0.1, -2.5, 1e-3, 123456789.123};
    npy_begin(&im, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }");
    for (int i = 0; i < 4; i++)
        put_f64(&im, xs[i]);
    npy_write(&im, "x.npy", x_path, sizeof x_path);

    npy_begin(&im, 3, "{\"shape\": (2, 1), \"fortran_order\": False, \"descr\": \"<f4\"}");
    put_f32(&im, 0.25f);
    put_f32(&im, 3.0f);
    npy_write(&im, "y.npy", y_path, sizeof y_path);

    dsc_table *t = read_npy(x_path, y_path, -1, DSC_MISSING_ERROR, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->n_rows, 2);
    for (int i = 0; i < 4; i++)
        CHECK(d->x[i] == (float)xs[i]);
    REQUIRE(d->y != NULL);
    CHECK(d->label == NULL);
    CHECK_EQ_INT(d->n_targets, 1);
    CHECK(d->y[0] == 0.25f && d->y[1] == 3.0f);
    CHECK_EQ_INT(dsc_prep_n_targets(dsc_table_prep(t)), 1);
    dsc_table_free(t);

    /* classify 1 makes classes of them anyway. */
    t = read_npy(x_path, y_path, 1, DSC_MISSING_ERROR, NULL, &err);
    REQUIRE(t != NULL);
    REQUIRE(dsc_prep_n_classes(dsc_table_prep(t)) == 2);
    CHECK(strcmp(dsc_prep_class_name(dsc_table_prep(t), 0), "0.25") == 0);
    dsc_table_free(t);
}

TEST(npy_big_endian_and_small_integer_targets)
{
    char x_path[512], y_path[512];
    int err;
    npy_image im;

    npy_begin(&im, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 1), }");
    float a = -1.5f, b = 1e30f;
    uint32_t bits;
    memcpy(&bits, &a, 4);
    put_bits(&im, bits, 4, 1);
    memcpy(&bits, &b, 4);
    put_bits(&im, bits, 4, 1);
    npy_write(&im, "x.npy", x_path, sizeof x_path);

    npy_begin(&im, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }");
    im.bytes[im.len++] = 200;
    im.bytes[im.len++] = 9;
    npy_write(&im, "y.npy", y_path, sizeof y_path);

    dsc_table *t = read_npy(x_path, y_path, 0, DSC_MISSING_ERROR, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK(d->x[0] == a && d->x[1] == b);
    REQUIRE(d->y != NULL);
    CHECK(d->y[0] == 200.0f && d->y[1] == 9.0f);
    dsc_table_free(t);
}

/* Write a float32 file with the given header dict and n values; read it; check the error. */
static int header_fails(int major, const char *dict, size_t n_values, int code,
                        const char *what)
{
    char path[512];
    int err;
    npy_image im;
    npy_begin(&im, major, dict);
    for (size_t i = 0; i < n_values; i++)
        put_f32(&im, 1.0f);
    npy_write(&im, "h.npy", path, sizeof path);
    dsc_table *t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    int ok = failed_with(t, err, code, path, what);
    dsc_table_free(t);
    return ok;
}

/* "…header at byte N: what" with N the offset of marker in dict, for a version 1 header. */
static const char *at_marker(const char *dict, const char *marker, const char *what)
{
    static char text[256];
    snprintf(text, sizeof text, ".npy header at byte %zu: %s",
             10 + (size_t)(strstr(dict, marker) - dict), what);
    return text;
}

TEST(npy_header_is_parsed_strictly)
{
    const char *fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
    const char *unknown = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'x': 1}";
    const char *repeated = "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                           "'shape': (1, 1)}";
    const char *no_comma = "{'descr': '<f4', 'fortran_order': False, 'shape': (1)}";
    const char *no_colon = "{'descr' '<f4', 'fortran_order': False, 'shape': (1, 1)}";
    const char *bad_bool = "{'descr': '<f4', 'fortran_order': false, 'shape': (1, 1)}";
    const char *trailing = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1)} x";
    const char *structured = "{'descr': [('a', '<f4')], 'fortran_order': False, "
                             "'shape': (1, 1)}";

    CHECK(header_fails(1, fortran, 4, DSC_EFORMAT, "Fortran order not supported"));
    CHECK(header_fails(1, unknown, 1, DSC_EFORMAT, at_marker(unknown, "'x'", "unknown key")));
    CHECK(header_fails(1, repeated, 1, DSC_EFORMAT,
                       at_marker(repeated, "'descr': '<f4', 'f", "repeated key")));
    CHECK(header_fails(1, no_comma, 1, DSC_EFORMAT,
                       at_marker(no_comma, ")}", "a one-dimensional shape needs a comma: "
                                                 "(n,)")));
    CHECK(header_fails(1, no_colon, 1, DSC_EFORMAT,
                       at_marker(no_colon, "'<f4'", "expected ':' after a key")));
    CHECK(header_fails(1, bad_bool, 1, DSC_EFORMAT,
                       at_marker(bad_bool, "false", "expected True or False")));
    CHECK(header_fails(1, trailing, 1, DSC_EFORMAT,
                       at_marker(trailing, "x", "text after the closing '}'")));
    CHECK(header_fails(1, structured, 1, DSC_EFORMAT,
                       at_marker(structured, "[", "structured dtypes are not supported")));
    CHECK(header_fails(1, "{'descr': '<f4', 'shape': (1, 1)}", 1, DSC_EFORMAT,
                       ".npy header has no 'fortran_order'"));
    CHECK(header_fails(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1)}", 1,
                       DSC_EFORMAT, "features of dtype '<i4' not supported: use float32 or "
                                    "float64"));
    CHECK(header_fails(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 1)}", 2,
                       DSC_EFORMAT, "dtype '<c8' not supported: use float32 or float64"));
    CHECK(header_fails(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1)}", 1,
                       DSC_EFORMAT, "features need a shape of two dimensions (rows, columns), "
                                    "the file has 3"));
    CHECK(header_fails(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}", 0,
                       DSC_EFORMAT, "no data rows"));
    CHECK(header_fails(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5000000000, 1)}",
                       0, DSC_ELIMIT, "5000000000 rows, beyond the limit of 4294967295"));
}

TEST(npy_magic_version_and_truncated_header)
{
    char path[512];
    int err;
    npy_image im;
    dsc_table *t;

    write_plain_features(path, sizeof path);
    FILE *f = fopen(path, "r+b");
    REQUIRE(f != NULL);
    fputc('X', f); /* the first magic byte */
    fclose(f);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, "not a .npy file (bad magic)"));

    npy_begin(&im, 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }");
    npy_write(&im, "v4.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, ".npy version 4.0 not supported"));

    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }");
    im.len = 40; /* cut inside the header text */
    npy_write(&im, "cut.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, "file ends inside the .npy header"));

    im.len = 9; /* cut inside the header length */
    npy_write(&im, "cut.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, "file ends inside the .npy header"));

    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }");
    im.bytes[im.header_end - 1] = ' '; /* no newline at the end */
    put_f32(&im, 1.0f);
    npy_write(&im, "nl.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, ".npy header does not end with a newline"));

    snprintf(path, sizeof path, "%s/none.npy", test_tmpdir());
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(t == NULL && err == DSC_EIO);
    CHECK(strstr(dsc_last_error(), "cannot open") != NULL);
}

TEST(npy_data_size_must_match_the_header)
{
    char path[512], what[256];
    int err;
    npy_image im;
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }";

    /* A header that promises 4 x 2 over 3 x 2 values. */
    npy_begin(&im, 1, dict);
    for (int i = 0; i < 6; i++)
        put_f32(&im, 1.0f);
    npy_write(&im, "short.npy", path, sizeof path);
    dsc_table *t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "header says 4 x 2 float32 (32 bytes) but the file holds 24 "
             "after the %zu-byte header", im.header_end);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    /* Cut inside a value, and one value too many. */
    im.len -= 1;
    npy_write(&im, "short.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "header says 4 x 2 float32 (32 bytes) but the file holds 23 "
             "after the %zu-byte header", im.header_end);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    npy_begin(&im, 1, dict);
    for (int i = 0; i < 9; i++)
        put_f32(&im, 1.0f);
    npy_write(&im, "long.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "header says 4 x 2 float32 (32 bytes) but the file holds 36 "
             "after the %zu-byte header", im.header_end);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    /* A header that claims terabytes costs only what the file holds. */
    npy_begin(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000, 500), }");
    put_f64(&im, 1.0);
    npy_write(&im, "huge.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "header says 4000000000 x 500 float64 (16000000000000 bytes) "
             "but the file holds 8 after the %zu-byte header", im.header_end);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    /* A product beyond size_t is a limit, not a wrap-around. */
    npy_begin(&im, 1, "{'descr': '<f8', 'fortran_order': False, "
                      "'shape': (4294967295, 2147483647), }");
    npy_write(&im, "wrap.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_ELIMIT, path,
                      "4294967295 x 2147483647 values do not fit in memory"));
}

TEST(npy_values_beyond_float_or_not_finite)
{
    char path[512], what[256];
    int err;
    npy_image im;
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";

    npy_begin(&im, 1, dict);
    put_f64(&im, 1.0);
    put_f64(&im, 2.0);
    put_f64(&im, 1e300);
    put_f64(&im, 3.0);
    npy_write(&im, "big.npy", path, sizeof path);
    dsc_table *t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "row 2, column 1 (byte %zu): value 1e+300 is beyond float range",
             im.header_end + 16);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    npy_begin(&im, 1, dict);
    put_f64(&im, 1.0);
    put_f64(&im, -INFINITY);
    put_f64(&im, 1.0);
    put_f64(&im, 1.0);
    npy_write(&im, "inf.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "row 1, column 2 (byte %zu): value -inf is not finite",
             im.header_end + 8);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    /* Just above FLT_MAX still rounds to FLT_MAX; the smallest doubles round to zero. */
    npy_begin(&im, 1, dict);
    put_f64(&im, 3.4028235e38);
    put_f64(&im, -3.4028235e38);
    put_f64(&im, 1e-320);
    put_f64(&im, NAN);
    npy_write(&im, "edge.npy", path, sizeof path);
    t = read_npy(path, NOT_READ, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "row 2, column 2 (byte %zu): value nan is not allowed "
             "(a missing value)", im.header_end + 24);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, what));

    /* Under a mean (or median) policy NaN stays, counted as missing; the rest converts. */
    char y_path[512];
    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }");
    put_f32(&im, 0.0f);
    put_f32(&im, 1.0f);
    npy_write(&im, "y.npy", y_path, sizeof y_path);
    t = read_npy(path, y_path, -1, DSC_MISSING_MEDIAN, NULL, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK(d->x[0] == FLT_MAX && d->x[1] == -FLT_MAX);
    CHECK(d->x[2] == (float)1e-320);
    CHECK(isnan(d->x[3]));
    CHECK_EQ_INT(t->n_missing, 1);
    dsc_table_free(t);
}

TEST(npy_targets_file_checks)
{
    char x_path[512], y_path[512], what[600];
    int err;
    npy_image im;
    write_plain_features(x_path, sizeof x_path);

    /* Learning needs a targets file. */
    dsc_table *t = read_npy(x_path, NULL, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EINVAL, x_path,
                      "no targets file: give labels_path to learn from .npy features"));

    npy_begin(&im, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }");
    put_bits(&im, 1, 4, 0);
    put_bits(&im, 2, 4, 0);
    npy_write(&im, "y.npy", y_path, sizeof y_path);
    t = read_npy(x_path, y_path, -1, DSC_MISSING_ERROR, NULL, &err);
    snprintf(what, sizeof what, "2 targets but %s has 3 rows", x_path);
    CHECK(failed_with(t, err, DSC_EFORMAT, y_path, what));

    npy_begin(&im, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }");
    for (int i = 0; i < 6; i++)
        put_bits(&im, 1, 4, 0);
    npy_write(&im, "y.npy", y_path, sizeof y_path);
    t = read_npy(x_path, y_path, -1, DSC_MISSING_ERROR, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, y_path, "targets need a shape (rows,) or (rows, 1)"));

    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    put_f32(&im, 1.0f);
    put_f32(&im, NAN);
    put_f32(&im, 1.0f);
    npy_write(&im, "y.npy", y_path, sizeof y_path);
    t = read_npy(x_path, y_path, -1, DSC_MISSING_MEAN, NULL, &err);
    snprintf(what, sizeof what, "row 2 (byte %zu): target nan is not allowed (a missing value)",
             im.header_end + 4);
    CHECK(failed_with(t, err, DSC_EFORMAT, y_path, what));
}

TEST(npy_reads_against_a_trained_encoding)
{
    char x_path[512], y_path[512], path[512];
    int err;
    npy_image im;
    write_plain_features(x_path, sizeof x_path);
    npy_begin(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }");
    put_f64(&im, 4.0);
    put_f64(&im, 8.0);
    put_f64(&im, 4.0);
    npy_write(&im, "y.npy", y_path, sizeof y_path);
    dsc_table *train = read_npy(x_path, y_path, -1, DSC_MISSING_ERROR, NULL, &err);
    REQUIRE(train != NULL);
    dsc_prep *prep = dsc_table_prep(train);
    REQUIRE(dsc_prep_n_classes(prep) == 2);

    /* Without targets: features only. */
    dsc_table *t = read_npy(x_path, NULL, -1, DSC_MISSING_ERROR, prep, &err);
    REQUIRE(t != NULL);
    CHECK(dsc_table_data(t)->label == NULL && dsc_table_data(t)->y == NULL);
    CHECK_EQ_INT(dsc_table_data(t)->n_rows, 3);
    dsc_table_free(t);

    /* Known classes map to the trained indices, in any dtype. */
    npy_begin(&im, 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }");
    im.bytes[im.len++] = 8;
    im.bytes[im.len++] = 8;
    im.bytes[im.len++] = 4;
    npy_write(&im, "y2.npy", path, sizeof path);
    t = read_npy(x_path, path, -1, DSC_MISSING_ERROR, prep, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    REQUIRE(d->label != NULL);
    CHECK(d->label[0] == 1 && d->label[1] == 1 && d->label[2] == 0);
    dsc_table_free(t);

    im.bytes[im.len - 2] = 5;
    npy_write(&im, "y2.npy", path, sizeof path);
    t = read_npy(x_path, path, -1, DSC_MISSING_ERROR, prep, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, "row 2: class '5' was not seen in training"));

    /* A different number of columns. */
    npy_begin(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }");
    for (int i = 0; i < 3; i++)
        put_f32(&im, 1.0f);
    npy_write(&im, "x3.npy", path, sizeof path);
    t = read_npy(path, NULL, -1, DSC_MISSING_ERROR, prep, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path,
                      "3 columns but the training data had 2 features"));
    dsc_table_free(train);
}

TEST(npy_mutated_files_fail_cleanly)
{
    char x_path[512], y_path[512], path[512];
    npy_image x_seed, y_seed;
    npy_begin(&x_seed, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
    for (int i = 0; i < 6; i++)
        put_f32(&x_seed, 0.5f * (float)i);
    npy_begin(&y_seed, 2, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }");
    for (int i = 0; i < 3; i++)
        put_bits(&y_seed, (uint64_t)(i % 2), 8, 0);
    npy_write(&x_seed, "x.npy", x_path, sizeof x_path);
    npy_write(&y_seed, "y.npy", y_path, sizeof y_path);

    dsc_rng rng;
    dsc_rng_seed(&rng, 77);
    static const char interesting[] = "0123456789(),: '<>|fiuTF{}\n\x93";
    const size_t n_interesting = sizeof interesting - 1;
    int n_tables = 0, n_errors = 0, all_sound = 1;
    for (int round = 0; round < 3000; round++) {
        int mutate_y = (int)dsc_rng_below(&rng, 4) == 0;
        npy_image im = mutate_y ? y_seed : x_seed;
        int n_edits = 1 + (int)dsc_rng_below(&rng, 4);
        for (int e = 0; e < n_edits; e++) {
            size_t at = (size_t)dsc_rng_below(&rng, im.len);
            switch (dsc_rng_below(&rng, 4)) {
            case 0: im.bytes[at] = (unsigned char)dsc_rng_below(&rng, 256); break;
            case 1:
                im.bytes[at] = (unsigned char)interesting[dsc_rng_below(&rng, n_interesting)];
                break;
            case 2: im.len = at; break;
            default: im.bytes[at] ^= (unsigned char)(1u << dsc_rng_below(&rng, 8)); break;
            }
            if (im.len == 0)
                break;
        }
        npy_write(&im, "m.npy", path, sizeof path);

        int err;
        dsc_missing missing = (dsc_missing)dsc_rng_below(&rng, 2);
        dsc_table *t = mutate_y ? read_npy(x_path, path, -1, missing, NULL, &err)
                                : read_npy(path, y_path, -1, missing, NULL, &err);
        if (t) {
            const dsc_data *d = dsc_table_data(t);
            n_tables++;
            all_sound &= d->x != NULL && d->n_rows > 0 && d->n_features > 0;
            for (size_t r = 0; d->label && r < d->n_rows; r++)
                all_sound &= d->label[r] >= 0 &&
                             (size_t)d->label[r] < dsc_prep_n_classes(dsc_table_prep(t));
            size_t n_nan = 0;
            for (size_t i = 0; i < d->n_rows * d->n_features; i++)
                n_nan += isnan(d->x[i]) != 0;
            all_sound &= n_nan == t->n_missing && (missing || n_nan == 0);
        } else {
            n_errors++;
            all_sound &= err < 0 && dsc_last_error()[0] != '\0';
        }
        dsc_table_free(t);
    }
    CHECK(all_sound);
    CHECK(n_tables > 50);
    CHECK(n_errors > 1000);
}
