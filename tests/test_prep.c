/*
 * test_prep.c - preprocessing: number parsing against the C library in every locale,
 * imputation and standardisation fitted on the given rows only, sparse scaling, classes,
 * and copies of an encoding.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

static int file_counter;

/* Read text as a CSV file (header present, target last) with the given missing policy. */
static dsc_table *read_csv_text(const char *text, dsc_missing missing)
{
    char path[512];
    snprintf(path, sizeof path, "%s/prep%d.csv", test_tmpdir(), file_counter++);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.missing = missing;
    int err = 0;
    dsc_table *t = dsc_table_read(path, &opts, NULL, &err);
    if (!t)
        fprintf(stderr, "    read failed: %s\n", dsc_last_error());
    return t;
}

/* ---- Numbers ----------------------------------------------------------------------------- */

/* The reference: the C library's correctly rounded strtof, in the C locale. */
static void check_against_strtof(const char *file, int line, const char *text)
{
    errno = 0;
    char *end;
    float expected = strtof(text, &end);
    float got = 0.0f;
    int rc = dsc__parse_float(text, strlen(text), &got);
    if (isinf(expected)) {
        if (rc != DSC_ELIMIT)
            test_report(file, line, "\"%s\": code %d, expected DSC_ELIMIT", text, rc);
        return;
    }
    uint32_t a, b;
    memcpy(&a, &got, 4);
    memcpy(&b, &expected, 4);
    if (rc != 0 || a != b)
        test_report(file, line, "\"%s\": code %d, %.9g, expected %.9g", text, rc, (double)got,
                    (double)expected);
}

TEST(prep_parse_float_matches_correct_rounding)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 7);
    char text[1200];

    /* Random decimals: 1 to 25 digits, a point anywhere, exponents either side. */
    for (int i = 0; i < 200000; i++) {
        size_t n = 0, digits = 1 + (size_t)dsc_rng_below(&rng, 25);
        size_t point = (size_t)dsc_rng_below(&rng, digits + 1);
        if (dsc_rng_below(&rng, 2))
            text[n++] = '-';
        for (size_t k = 0; k < digits; k++) {
            if (k == point && k > 0)
                text[n++] = '.';
            text[n++] = (char)('0' + dsc_rng_below(&rng, 10));
        }
        if (dsc_rng_below(&rng, 2))
            n += (size_t)snprintf(text + n, 16, "e%d", (int)dsc_rng_below(&rng, 100) - 50);
        text[n] = '\0';
        check_against_strtof(__FILE__, __LINE__, text);
    }

    /* Exact midpoints between neighbouring floats, and just above and below them. */
    for (int i = 0; i < 20000; i++) {
        float f = (float)ldexp(1.0 + dsc_rng_uniform(&rng), (int)dsc_rng_below(&rng, 40) - 10);
        float g = nextafterf(f, INFINITY);
        double mid = 0.5 * ((double)f + (double)g);
        snprintf(text, sizeof text, "%.60f", mid);
        check_against_strtof(__FILE__, __LINE__, text);
        size_t n = strlen(text);
        strcpy(text + n, "000000000000000000001");
        check_against_strtof(__FILE__, __LINE__, text);
        snprintf(text, sizeof text, "%.17g", mid);
        check_against_strtof(__FILE__, __LINE__, text);
    }

    /* Very long digit strings, where only a sticky digit can decide. */
    memset(text, '0', 1100);
    text[0] = '0';
    text[1] = '.';
    text[2] = '1';
    text[1000] = '1';
    text[1100] = '\0';
    check_against_strtof(__FILE__, __LINE__, text);
    snprintf(text, sizeof text, "%.60f", 0.5 * (1.0 + (double)nextafterf(1.0f, 2.0f)));
    size_t n = strlen(text);
    memset(text + n, '0', 900);
    strcpy(text + n + 900, "1");
    check_against_strtof(__FILE__, __LINE__, text);

    const char *edges[] = {"0",          "-0",          "007",        "1.",
                           ".5",         "1e0",         "1E+3",       "123456789012345678901234",
                           "3.4028234e38", "3.40282357e38", "1e-45",     "7e-46",
                           "1e-50",      "16777217",    "0.1",        "9007199254740993",
                           "1e39",       "-1e39",       "0e999999999", "1e-99999999999"};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
        check_against_strtof(__FILE__, __LINE__, edges[i]);
}

TEST(prep_parse_float_rejects_what_is_not_a_plain_number)
{
    const char *bad[] = {"",    " 1",  "1 ",  "0x10", "inf", "nan",  "-inf", "1e",
                         "e5",  ".",   "+",   "1.2.3", "1e+", "--1", "1,5",  "1_000",
                         "1e5x", "NaN", "0x1p3", "\t2"};
    float v = 42.0f;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = dsc__parse_float(bad[i], strlen(bad[i]), &v);
        if (rc != DSC_EFORMAT)
            test_report(__FILE__, __LINE__, "\"%s\": code %d, expected DSC_EFORMAT", bad[i], rc);
    }
    CHECK(v == 42.0f);
    CHECK_EQ_INT(dsc__parse_float("1e39", 4, &v), DSC_ELIMIT);
    CHECK_EQ_INT(dsc__parse_float("-4e38", 5, &v), DSC_ELIMIT);
    /* Underflow is fine: a denormal, or zero. */
    CHECK_EQ_INT(dsc__parse_float("1e-40", 5, &v), 0);
    CHECK(v > 0.0f && v < FLT_MIN);
    /* Only len bytes are read. */
    CHECK_EQ_INT(dsc__parse_float("2.5junk", 3, &v), 0);
    CHECK(v == 2.5f);
}

/* Parse, read a CSV and name a number level; all must come out the same in any locale. */
static void check_locale_independent(void)
{
    float v = 0.0f;
    CHECK_EQ_INT(dsc__parse_float("1.5", 3, &v), 0);
    CHECK(v == 1.5f);
    CHECK_EQ_INT(dsc__parse_float("0.12345678901234567890123", 25, &v), 0);
    CHECK(v == 0.12345678901234567890123f);
    CHECK_EQ_INT(dsc__parse_float("1,5", 3, &v), DSC_EFORMAT);

    dsc_table *t = read_csv_text("a,b,y\n1.5,0.25,1\nx,2.5,0\n", DSC_MISSING_ERROR);
    REQUIRE(t);
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(p->columns[0].categorical && p->columns[0].n_levels == 2);
    CHECK(strcmp(p->columns[0].levels[0], "1.5") == 0);
    CHECK(d->x[2] == 0.25f && d->x[5] == 2.5f);
    dsc_table_free(t);
}

TEST(prep_numbers_read_the_same_in_every_locale)
{
    /* A locale with a decimal comma, when the system has one. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (setlocale(LC_NUMERIC, names[i])) {
            CHECK(strtod("1,5", NULL) == 1.5); /* the locale is really in effect */
            check_locale_independent();
            break;
        }
    }
    setlocale(LC_NUMERIC, "C");
    check_locale_independent();
}

/* ---- Imputation and standardisation ------------------------------------------------------ */

/* Row r of feature a and b in the tables below; NaN stands for a missing value. */
static const float fit_a[8] = {1.0f, NAN, 3.0f, 10.0f, NAN, 6.0f, 100.0f, 2.0f};
static const float fit_b[8] = {4.0f, 5.0f, NAN, 8.0f, 1.0f, 1.0f, 2.0f, 7.0f};

static dsc_table *fit_table(dsc_missing missing)
{
    char text[512] = "a,b,y\n";
    for (int r = 0; r < 8; r++) {
        char a[32], b[32];
        snprintf(a, sizeof a, isnan(fit_a[r]) ? "NA" : "%g", (double)fit_a[r]);
        snprintf(b, sizeof b, isnan(fit_b[r]) ? "?" : "%g", (double)fit_b[r]);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s,%s,%d\n", a, b, r % 2);
    }
    return read_csv_text(text, missing);
}

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Reference statistics of values v over rows[0..n), the missing ones taking fill. */
static double ref_mean_present(const float *v, const uint32_t *rows, size_t n)
{
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(v[rows[i]])) {
            sum += v[rows[i]];
            count++;
        }
    }
    return sum / (double)count;
}

static double ref_median_present(const float *v, const uint32_t *rows, size_t n)
{
    double values[8];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(v[rows[i]]))
            values[m++] = v[rows[i]];
    }
    qsort(values, m, sizeof *values, compare_double);
    return m % 2 ? values[m / 2] : 0.5 * (values[m / 2 - 1] + values[m / 2]);
}

static void ref_mean_sd(const float *v, const uint32_t *rows, size_t n, double fill,
                        double *mean, double *sd)
{
    double sum = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += isnan(v[rows[i]]) ? fill : v[rows[i]];
    *mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
        double x = isnan(v[rows[i]]) ? fill : v[rows[i]];
        ss += (x - *mean) * (x - *mean);
    }
    *sd = sqrt(ss / (double)n);
}

TEST(prep_mean_imputation_uses_training_rows_only)
{
    dsc_table *t = fit_table(DSC_MISSING_MEAN);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    const uint32_t rows[5] = {0, 1, 2, 4, 5}; /* row 3 (10) and row 6 (100) left out */
    REQUIRE(dsc_prep_fit(p, t, rows, 5, 0) == 0);
    REQUIRE(p->impute);
    double ma = ref_mean_present(fit_a, rows, 5), mb = ref_mean_present(fit_b, rows, 5);
    CHECK_REL(p->impute[0], ma, 1e-6, 1e-6);
    CHECK_REL(p->impute[1], mb, 1e-6, 1e-6);
    CHECK(p->mean == NULL && p->scale == NULL && !p->standardized);

    REQUIRE(dsc_prep_apply(p, t) == 0);
    const dsc_data *d = dsc_table_data(t);
    for (size_t r = 0; r < 8; r++) {
        CHECK_REL(d->x[r * 2], isnan(fit_a[r]) ? (float)ma : fit_a[r], 1e-6, 1e-6);
        CHECK_REL(d->x[r * 2 + 1], isnan(fit_b[r]) ? (float)mb : fit_b[r], 1e-6, 1e-6);
    }
    CHECK_EQ_INT(t->n_missing, 0);
    dsc_table_free(t);
}

TEST(prep_median_imputation_uses_training_rows_only)
{
    dsc_table *t = fit_table(DSC_MISSING_MEDIAN);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    const uint32_t odd[4] = {0, 2, 3, 4};       /* a: 1, 3, 10 present: odd count */
    const uint32_t even[6] = {0, 2, 3, 5, 6, 7}; /* a: six present, b: five */
    REQUIRE(dsc_prep_fit(p, t, odd, 4, 0) == 0);
    CHECK_REL(p->impute[0], ref_median_present(fit_a, odd, 4), 1e-6, 1e-6);
    CHECK_REL(p->impute[1], ref_median_present(fit_b, odd, 4), 1e-6, 1e-6);
    REQUIRE(dsc_prep_fit(p, t, even, 6, 0) == 0);
    CHECK_REL(p->impute[0], ref_median_present(fit_a, even, 6), 1e-6, 1e-6);
    CHECK_REL(p->impute[1], ref_median_present(fit_b, even, 6), 1e-6, 1e-6);
    /* The medians differ from the means of the same rows: the policy matters. */
    CHECK(fabs(p->impute[0] - ref_mean_present(fit_a, even, 6)) > 1.0);
    dsc_table_free(t);
}

TEST(prep_standardisation_fitted_on_given_rows_and_applied_to_all)
{
    dsc_table *t = fit_table(DSC_MISSING_MEAN);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    const uint32_t rows[6] = {7, 0, 1, 2, 4, 5};
    REQUIRE(dsc_prep_fit(p, t, rows, 6, 1) == 0);
    REQUIRE(p->mean && p->scale && p->standardized);

    double mean[2], sd[2], fill[2];
    fill[0] = ref_mean_present(fit_a, rows, 6);
    fill[1] = ref_mean_present(fit_b, rows, 6);
    ref_mean_sd(fit_a, rows, 6, fill[0], &mean[0], &sd[0]);
    ref_mean_sd(fit_b, rows, 6, fill[1], &mean[1], &sd[1]);
    for (int j = 0; j < 2; j++) {
        CHECK_REL(p->mean[j], mean[j], 1e-6, 1e-6);
        CHECK_REL(p->scale[j], sd[j], 1e-6, 1e-6);
    }

    REQUIRE(dsc_prep_apply(p, t) == 0);
    const dsc_data *d = dsc_table_data(t);
    const float *cols[2] = {fit_a, fit_b};
    for (size_t r = 0; r < 8; r++) {
        for (int j = 0; j < 2; j++) {
            double x = isnan(cols[j][r]) ? fill[j] : cols[j][r];
            CHECK_NEAR(d->x[r * 2 + (size_t)j], (x - mean[j]) / sd[j], 1e-5);
        }
    }

    /* Another table through the same prep gets the same transform. */
    dsc_table *other = read_csv_text("a,b,y\n10,1,0\n", DSC_MISSING_MEAN);
    REQUIRE(other);
    REQUIRE(dsc_prep_apply(p, other) == 0);
    CHECK_NEAR(dsc_table_data(other)->x[0], (10.0 - mean[0]) / sd[0], 1e-5);
    dsc_table_free(other);
    dsc_table_free(t);
}

TEST(prep_constant_feature_left_unscaled)
{
    dsc_table *t = read_csv_text("a,b,y\n0.1,1,0\n0.1,2,1\n0.1,4,0\n", DSC_MISSING_ERROR);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(dsc_prep_fit(p, t, NULL, 0, 1) == 0);
    CHECK(p->scale[0] == 1.0f);
    CHECK(p->mean[0] == 0.1f);
    CHECK(p->scale[1] != 1.0f);
    CHECK(p->impute == NULL);
    REQUIRE(dsc_prep_apply(p, t) == 0);
    CHECK(dsc_table_data(t)->x[0] == 0.0f);
    dsc_table_free(t);
}

/* A sparse table built by hand from CSR arrays (copied): n_rows rows, n_features features. */
static dsc_table *csr_table(size_t n_rows, size_t n_features, const uint64_t *row_ptr,
                            const uint32_t *col, const float *val)
{
    size_t n_entries = (size_t)row_ptr[n_rows];
    dsc_table *t = dsc__table_new();
    if (!t)
        return NULL;
    t->prep = dsc__prep_new();
    t->row_ptr = dsc__alloc((n_rows + 1) * sizeof *row_ptr);
    t->col = dsc__alloc(n_entries * sizeof *col);
    t->val = dsc__alloc(n_entries * sizeof *val);
    if (!t->prep || !t->row_ptr || !t->col || !t->val) {
        dsc_table_free(t);
        return NULL;
    }
    memcpy(t->row_ptr, row_ptr, (n_rows + 1) * sizeof *row_ptr);
    memcpy(t->col, col, n_entries * sizeof *col);
    memcpy(t->val, val, n_entries * sizeof *val);
    t->prep->n_features = n_features;
    t->data = (dsc_data){.n_rows = n_rows, .n_features = n_features, .row_ptr = t->row_ptr,
                         .col = t->col, .val = t->val};
    return t;
}

/* 4 rows, 3 features. */
static dsc_table *sparse_table(void)
{
    static const uint64_t row_ptr[5] = {0, 2, 3, 3, 5};
    static const uint32_t col[5] = {0, 2, 0, 0, 2};
    static const float val[5] = {2.0f, -1.0f, 4.0f, 6.0f, 3.0f};
    return csr_table(4, 3, row_ptr, col, val);
}

TEST(prep_sparse_data_is_scaled_not_centred)
{
    dsc_table *t = sparse_table();
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(dsc_prep_fit(p, t, NULL, 0, 1) == 0);

    /* Dense view of the same data: feature 0 = 2, 4, 0, 6; feature 1 all zero; 2 = -1, 0,
     * 0, 3. The population standard deviation over all four rows. */
    const float dense[3][4] = {{2, 4, 0, 6}, {0, 0, 0, 0}, {-1, 0, 0, 3}};
    const uint32_t all[4] = {0, 1, 2, 3};
    for (int j = 0; j < 3; j++) {
        double mean, sd;
        ref_mean_sd(dense[j], all, 4, 0.0, &mean, &sd);
        CHECK(p->mean[j] == 0.0f);
        CHECK_REL(p->scale[j], sd > 0 ? sd : 1.0, 1e-6, 1e-6);
    }
    REQUIRE(dsc_prep_apply(p, t) == 0);
    const dsc_data *d = dsc_table_data(t);
    CHECK_EQ_INT(d->row_ptr[4], 5); /* still sparse: no entry added */
    double mean0, sd0;
    ref_mean_sd(dense[0], all, 4, 0.0, &mean0, &sd0);
    CHECK_NEAR(d->val[0], 2.0 / sd0, 1e-6);
    dsc_table_free(t);
}


/*
 * A sparse table by hand: 5 rows over features 0, 1 and 3 (a NaN among them), and
 * n_features as given, so that the same entries can sit in a narrow or a very wide table.
 */
static dsc_table *sparse_table_of_width(size_t n_features)
{
    static const uint64_t row_ptr[6] = {0, 2, 4, 5, 5, 8};
    static const uint32_t col[8] = {0, 3, 1, 3, 0, 0, 1, 3};
    const float val[8] = {2.0f, -1.5f, NAN, 0.25f, 4.0f, -3.0f, 7.0f, 5.0f};
    dsc_table *t = csr_table(5, n_features, row_ptr, col, val);
    if (t)
        t->n_missing = 1;
    return t;
}

TEST(prep_sparse_fit_costs_the_entries_not_the_features)
{
    /*
     * fuzz_libsvm: "1 1073741824:1" has 2^30 features, and the sparse fit kept four
     * per-feature sums and counts (32 bytes a feature) however few the entries. It now keeps
     * them for the features that have entries, and gives the same bits as the narrow table.
     */
    const size_t narrow = 4, wide = (size_t)1 << 22;
    const uint32_t rows[4] = {0, 1, 3, 4};
    for (int policy = DSC_MISSING_MEAN; policy <= DSC_MISSING_MEDIAN; policy++) {
        for (int with_rows = 0; with_rows < 2; with_rows++) {
            dsc_table *a = sparse_table_of_width(narrow), *b = sparse_table_of_width(wide);
            REQUIRE(a && b);
            dsc_prep *pa = dsc_table_prep(a), *pb = dsc_table_prep(b);
            pa->missing = pb->missing = (dsc_missing)policy;
            const uint32_t *fit_rows = with_rows ? rows : NULL;
            CHECK_EQ_INT(dsc_prep_fit(pa, a, fit_rows, 4, 1), 0);
            test_oom.live_bytes = test_oom.peak_bytes = 0;
            dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
            int rc = dsc_prep_fit(pb, b, fit_rows, 4, 1);
            dsc_set_allocator(NULL, NULL, NULL);
            CHECK_EQ_INT(rc, 0);
            /* The imputation, mean and scale arrays (12 bytes a feature) and a little more. */
            CHECK(test_oom.peak_bytes < 12 * wide + 4096);
            CHECK_EQ_INT(test_oom.live_bytes, 12 * wide);
            CHECK(memcmp(pa->impute, pb->impute, narrow * sizeof(float)) == 0);
            CHECK(memcmp(pa->scale, pb->scale, narrow * sizeof(float)) == 0);
            CHECK(memcmp(pa->mean, pb->mean, narrow * sizeof(float)) == 0);
            CHECK(pa->scale[0] != 1.0f && pa->scale[3] != 1.0f);
            CHECK(policy == DSC_MISSING_MEDIAN || pa->impute[1] != 0.0f);
            /* Feature 2 and those past 3 have no entry: all zeros, left as they are. */
            size_t odd = 0;
            for (size_t j = 4; j < wide; j++)
                odd += pb->impute[j] != 0.0f || pb->mean[j] != 0.0f || pb->scale[j] != 1.0f;
            CHECK_EQ_INT(odd, 0);
            CHECK(pb->impute[2] == 0.0f && pb->scale[2] == 1.0f);
            dsc_table_free(a);
            dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
            dsc__free(pb->impute); /* what the counting allocator gave, back to it */
            dsc__free(pb->mean);
            dsc__free(pb->scale);
            pb->impute = pb->mean = pb->scale = NULL;
            dsc_set_allocator(NULL, NULL, NULL);
            CHECK_EQ_INT(test_oom.live_bytes, 0);
            dsc_table_free(b);
        }
    }

    /* 2^31 - 1 features, nothing to impute or scale: nothing is allocated at all. */
    dsc_table *huge = sparse_table_of_width(((size_t)1 << 31) - 1);
    REQUIRE(huge);
    huge->n_missing = 0;
    huge->val[2] = 1.0f;
    test_oom.live_bytes = test_oom.peak_bytes = 0;
    dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
    int rc = dsc_prep_fit(dsc_table_prep(huge), huge, NULL, 0, 0);
    dsc_set_allocator(NULL, NULL, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(test_oom.peak_bytes, 0);
    CHECK_EQ_INT(dsc_prep_apply(dsc_table_prep(huge), huge), 0);
    CHECK(huge->val[2] == 1.0f);
    dsc_table_free(huge);
}

TEST(prep_apply_checks_its_inputs)
{
    dsc_table *t = read_csv_text("a,y\nNA,1\n2,0\n", DSC_MISSING_MEAN);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    /* Not fitted: missing values cannot be imputed. */
    CHECK_EQ_INT(dsc_prep_apply(p, t), DSC_EINVAL);
    CHECK_EQ_INT(dsc_prep_fit(p, t, NULL, 0, 1), 0);
    const uint32_t beyond[1] = {2};
    CHECK_EQ_INT(dsc_prep_fit(p, t, beyond, 1, 1), DSC_EINVAL);
    CHECK_EQ_INT(dsc_prep_fit(NULL, t, NULL, 0, 1), DSC_EINVAL);
    CHECK_EQ_INT(dsc_prep_apply(p, t), 0);
    CHECK(dsc_table_data(t)->x[0] == dsc_table_data(t)->x[0]); /* no NaN left */

    dsc_table *wide = read_csv_text("a,b,y\n1,2,3\n", DSC_MISSING_MEAN);
    REQUIRE(wide);
    CHECK_EQ_INT(dsc_prep_apply(p, wide), DSC_ESHAPE);
    dsc_table_free(wide);
    dsc_table_free(t);
}

/* ---- Classes and copies ------------------------------------------------------------------ */

TEST(prep_class_lookup_by_exact_bytes)
{
    dsc_prep *p = dsc__prep_new();
    REQUIRE(p);
    CHECK_EQ_INT(dsc__prep_class(p, "cat", 3, 1), 0);
    CHECK_EQ_INT(dsc__prep_class(p, "dog", 3, 1), 1);
    CHECK_EQ_INT(dsc__prep_class(p, "cat", 3, 1), 0);
    CHECK_EQ_INT(dsc__prep_class(p, "cat ", 4, 1), 2);
    CHECK_EQ_INT(dsc__prep_class(p, "catfish", 2, 1), 3); /* "ca" */
    CHECK_EQ_INT(dsc__prep_class(p, "dog", 3, 0), 1);
    CHECK_EQ_INT(dsc__prep_class(p, "Dog", 3, 0), DSC_EFORMAT);
    CHECK(strcmp(dsc_last_error(), "class 'Dog' was not seen in training") == 0);
    CHECK_EQ_INT(dsc_prep_n_classes(p), 4);
    dsc_prep_free(p);
}

TEST(prep_numeric_classes_sorted_and_labels_remapped)
{
    dsc_prep *p = dsc__prep_new();
    REQUIRE(p);
    const char *labels_text[6] = {"3", "-2", "10", "3", "0.5", "-2"};
    int32_t labels[6];
    for (int i = 0; i < 6; i++)
        labels[i] = dsc__prep_class(p, labels_text[i], strlen(labels_text[i]), 1);
    REQUIRE(dsc__prep_sort_numeric_classes(p, labels, 6) == 0);
    const char *sorted[4] = {"-2", "0.5", "3", "10"};
    REQUIRE(dsc_prep_n_classes(p) == 4);
    for (int k = 0; k < 4; k++)
        CHECK(strcmp(dsc_prep_class_name(p, (size_t)k), sorted[k]) == 0);
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(dsc_prep_class_name(p, (size_t)labels[i]), labels_text[i]) == 0);

    /* A label that is not a number keeps the order of first appearance. */
    dsc_prep *q = dsc__prep_new();
    REQUIRE(q);
    int32_t l2[2] = {dsc__prep_class(q, "b", 1, 1), dsc__prep_class(q, "1", 1, 1)};
    REQUIRE(dsc__prep_sort_numeric_classes(q, l2, 2) == 0);
    CHECK(strcmp(dsc_prep_class_name(q, 0), "b") == 0);
    CHECK_EQ_INT(l2[0], 0);
    dsc_prep_free(q);
    dsc_prep_free(p);
}

TEST(prep_copy_is_deep)
{
    dsc_table *t = read_csv_text("n,c,y\n1,red,a\nNA,blue,b\n3,red,a\n", DSC_MISSING_MEAN);
    REQUIRE(t);
    dsc_prep *p = dsc_table_prep(t);
    REQUIRE(dsc_prep_fit(p, t, NULL, 0, 1) == 0);
    int err = 0;
    dsc_prep *copy = dsc_prep_copy(p, &err);
    REQUIRE(copy);
    CHECK(copy->columns != p->columns && copy->classes != p->classes);
    CHECK(copy->columns[1].levels != p->columns[1].levels);
    CHECK(copy->impute != p->impute && copy->mean != p->mean && copy->scale != p->scale);
    float mean0 = p->mean[0], scale2 = p->scale[2], impute0 = p->impute[0];
    dsc_table_free(t); /* the original goes */

    CHECK_EQ_INT(dsc_prep_n_features(copy), 3);
    CHECK_EQ_INT(dsc_prep_n_classes(copy), 2);
    CHECK(strcmp(dsc_prep_class_name(copy, 1), "b") == 0);
    CHECK(strcmp(dsc_prep_target_name(copy), "y") == 0);
    CHECK_EQ_INT(dsc_prep_n_targets(copy), 0);
    CHECK(strcmp(copy->columns[0].name, "n") == 0);
    CHECK(copy->columns[1].categorical && copy->columns[1].n_levels == 2);
    CHECK(strcmp(copy->columns[1].levels[1], "blue") == 0);
    CHECK(copy->mean[0] == mean0 && copy->scale[2] == scale2 && copy->impute[0] == impute0);
    CHECK(copy->missing == DSC_MISSING_MEAN && copy->standardized);
    dsc_prep_free(copy);

    CHECK(dsc_prep_copy(NULL, &err) == NULL);
    CHECK_EQ_INT(err, DSC_EINVAL);
    CHECK_EQ_INT(dsc_prep_n_features(NULL), 0);
    CHECK(dsc_prep_class_name(NULL, 0) == NULL);
    CHECK(dsc_prep_target_name(NULL) == NULL);
}
