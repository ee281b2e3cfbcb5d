/*
 * test_textread.c - the fast paths of the text readers against the careful ones: the short
 * number parse against the full parse on generated numbers and near-numbers, and whole CSV
 * and LIBSVM files, generated with the usual and the unusual mixed, read with the fast path
 * and without it, which must give the same tables, or the same error, bit for bit.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* ---- Numbers ----------------------------------------------------------------------------- */

typedef struct number_counts {
    long strings, fast; /* strings tried, and those the fast path decided */
} number_counts;

static uint32_t bits_of(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/*
 * Compare the fast path with the full parse on text[0..len), held in a block of exactly len
 * bytes so that the address sanitizer sees any read beyond the end. The fast path may decline
 * (NULL) or stop early; where it takes the whole text, it must give the full parse's float.
 * dsc__parse_float, which combines the two, must agree with the full parse everywhere.
 */
static void check_number(const char *file, int line, const char *text, size_t len,
                         number_counts *counts)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        test_report(file, line, "out of memory");
        return;
    }
    memcpy(copy, text, len);
    float slow = 0.0f, fast = 0.0f, combined = 0.0f;
    int slow_rc = dsc__parse_float_slow(copy, len, &slow);
    const char *end = dsc__scan_float(copy, copy + len, &fast);
    int combined_rc = dsc__parse_float(copy, len, &combined);

    counts->strings++;
    if (end == copy + len) {
        counts->fast++;
        if (slow_rc != 0 || bits_of(fast) != bits_of(slow))
            test_report(file, line, "\"%.*s\": fast %.9g (0x%08x), full parse code %d, %.9g "
                        "(0x%08x)", (int)len, text, (double)fast, (unsigned)bits_of(fast),
                        slow_rc, (double)slow, (unsigned)bits_of(slow));
    }
    if (end && (end < copy || end > copy + len))
        test_report(file, line, "\"%.*s\": the fast path stopped outside the text", (int)len,
                    text);
    if (combined_rc != slow_rc || (slow_rc == 0 && bits_of(combined) != bits_of(slow)))
        test_report(file, line, "\"%.*s\": dsc__parse_float code %d, %.9g; full parse code "
                    "%d, %.9g", (int)len, text, combined_rc, (double)combined, slow_rc,
                    (double)slow);
    free(copy);
}

#define CHECK_NUMBER(text, counts) check_number(__FILE__, __LINE__, text, strlen(text), counts)

/* Append count random digits to text at n; returns the new length. */
static size_t put_digits(dsc_rng *rng, char *text, size_t n, size_t count)
{
    for (size_t k = 0; k < count; k++)
        text[n++] = (char)('0' + dsc_rng_below(rng, 10));
    return n;
}

TEST(textread_fast_number_path_matches_the_full_parse)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 2024);
    char text[256];
    number_counts counts = {0, 0}, plain = {0, 0};

    /* Plain decimals: signs, a leading zero, 0 to 22 digits around a point (none, or
     * nothing on one side of it, now and then), exponents of one to five digits. */
    for (int i = 0; i < 200000; i++) {
        size_t n = 0;
        uint64_t sign = dsc_rng_below(&rng, 3);
        if (sign)
            text[n++] = sign == 1 ? '-' : '+';
        if (dsc_rng_below(&rng, 4) == 0)
            text[n++] = '0'; /* a leading zero */
        n = put_digits(&rng, text, n, (size_t)dsc_rng_below(&rng, 12));
        if (dsc_rng_below(&rng, 4) != 0) {
            text[n++] = '.';
            n = put_digits(&rng, text, n, (size_t)dsc_rng_below(&rng, 11));
        }
        if (dsc_rng_below(&rng, 3) == 0) {
            text[n++] = dsc_rng_below(&rng, 2) ? 'e' : 'E';
            uint64_t exp_sign = dsc_rng_below(&rng, 3);
            if (exp_sign)
                text[n++] = exp_sign == 1 ? '-' : '+';
            n = put_digits(&rng, text, n, 1 + (size_t)dsc_rng_below(&rng, 5));
        }
        check_number(__FILE__, __LINE__, text, n, &plain);
    }
    /* Most of them are short enough for the fast path, which must then really take them. */
    CHECK(plain.fast > plain.strings / 2);
    counts.strings += plain.strings;
    counts.fast += plain.fast;

    /* Many digits: 17 to 25, where the 64-bit mantissa and the 19-digit limit matter. */
    for (int i = 0; i < 30000; i++) {
        size_t n = 0;
        text[n++] = (char)('1' + dsc_rng_below(&rng, 9));
        n = put_digits(&rng, text, n, 16 + (size_t)dsc_rng_below(&rng, 9));
        if (dsc_rng_below(&rng, 2)) {
            size_t point = 1 + (size_t)dsc_rng_below(&rng, n - 1);
            memmove(text + point + 1, text + point, n - point);
            text[point] = '.';
            n++;
        }
        n += (size_t)snprintf(text + n, 16, "e%d", (int)dsc_rng_below(&rng, 61) - 30);
        check_number(__FILE__, __LINE__, text, n, &counts);
    }

    /* Floats, the midpoints between neighbours and their integer neighbours: as exact
     * integers (the fast path's exact midpoints) and in 9 and 17 significant digits. */
    for (int i = 0; i < 20000; i++) {
        float f = (float)ldexp(1.0 + dsc_rng_uniform(&rng), (int)dsc_rng_below(&rng, 100) - 30);
        float g = nextafterf(f, INFINITY);
        double mid = 0.5 * ((double)f + (double)g);
        if (mid < 1e19 && mid == floor(mid)) {
            for (int d = -1; d <= 1; d++) {
                snprintf(text, sizeof text, "%.0f", mid + d);
                CHECK_NUMBER(text, &counts);
            }
        }
        snprintf(text, sizeof text, "%.9g", (double)f);
        CHECK_NUMBER(text, &counts);
        snprintf(text, sizeof text, "%.17g", mid);
        CHECK_NUMBER(text, &counts);
        snprintf(text, sizeof text, "%.16e", mid);
        CHECK_NUMBER(text, &counts);
    }

    /* Near the top of float: 19-digit mantissas times 10^20 around FLT_MAX and around the
     * point where rounding goes to infinity (FLT_MAX plus half its last place). */
    const double tops[2] = {(double)FLT_MAX, (double)FLT_MAX + ldexp(1.0, 103)};
    for (int k = 0; k < 2; k++) {
        uint64_t centre = (uint64_t)(tops[k] / 1e20);
        for (int i = 0; i < 4000; i++) {
            uint64_t m = centre - 2000000 + dsc_rng_below(&rng, 4000000);
            snprintf(text, sizeof text, "%llue20", (unsigned long long)m);
            CHECK_NUMBER(text, &counts);
            snprintf(text, sizeof text, "-%llu.%llue19", (unsigned long long)(m / 10),
                     (unsigned long long)(m % 10));
            CHECK_NUMBER(text, &counts);
        }
    }

    /* Near the bottom: the fast path leaves these to the full parse, which must still agree. */
    const char *edges[] = {"1e-45", "1.4e-45", "1.401298464e-45", "7e-46", "7.1e-46", "1e-38",
                           "1.17549435e-38", "1.1754942e-38", "1e-50", "-1e-40", "1e-22",
                           "1e22", "1e23", "9999999999999999999e22", "0e9999", "-0.0e-9999",
                           "3.4028234e38", "3.40282357e38", "1e39", "1e400", "-1e400",
                           "1e-400", "16777217", "9007199254740993", "0.1", "5e-324"};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
        CHECK_NUMBER(edges[i], &counts);

    /* Near-numbers and garbage: hex forms, doubled signs and points, words, spaces, and
     * random strings over the characters numbers are made of. */
    const char *bad[] = {"",     "+",     "-",    ".",     "e5",    "1e",     "1e+",
                         "1e-",  "--1",   "+-1",  "1.2.3", "1..2",  "0x10",   "0X1p3",
                         "0x1p-2", "1e5x", "1 ",  " 1",    "1,5",   "1_000",  "inf",
                         "-inf", "nan",   "NaN",  "Infinity", "1e+-5", "\t2", "2\n",
                         "1e99999", "1e0000005", "00000000000000000000001", ".e1", "-.5",
                         "5.", "+.5e-3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_NUMBER(bad[i], &counts);
    static const char alphabet[] = "0123456789.eE+-x \t";
    for (int i = 0; i < 60000; i++) {
        size_t n = 1 + (size_t)dsc_rng_below(&rng, 14);
        for (size_t k = 0; k < n; k++)
            text[k] = alphabet[dsc_rng_below(&rng, sizeof alphabet - 1)];
        check_number(__FILE__, __LINE__, text, n, &counts);
    }
    CHECK(counts.strings + plain.strings > 300000);
}

/* ---- Whole files ------------------------------------------------------------------------- */

typedef struct text_buf {
    char *s;
    size_t n, cap;
} text_buf;

static void put_bytes(text_buf *t, const char *bytes, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (t->n + n + 1 > cap)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s)
            abort();
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->n, bytes, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static void put_text(text_buf *t, const char *s)
{
    put_bytes(t, s, strlen(s));
}

static bool one_in(dsc_rng *rng, uint64_t n)
{
    return dsc_rng_below(rng, n) == 0;
}

static const char *pick(dsc_rng *rng, const char *const *items, size_t n)
{
    return items[dsc_rng_below(rng, n)];
}
#define PICK(rng, items) pick(rng, items, sizeof items / sizeof *items)

/* A usual number, in one of the forms data files hold. */
static void put_number(dsc_rng *rng, text_buf *t)
{
    char number[64];
    double v = dsc_rng_normal(rng) * (one_in(rng, 4) ? 1000.0 : 1.0);

    switch (dsc_rng_below(rng, 5)) {
    case 0: snprintf(number, sizeof number, "%.6g", v); break;
    case 1: snprintf(number, sizeof number, "%.4f", v); break;
    case 2: snprintf(number, sizeof number, "%d", (int)dsc_rng_below(rng, 7) - 3); break;
    case 3: snprintf(number, sizeof number, "%.9g", v); break;
    default: snprintf(number, sizeof number, "%.3e", v); break;
    }
    put_text(t, number);
}

/* Two tables read from the same file must hold the same bits. */
static void compare_tables(const char *file, int line, const char *what, dsc_table *a,
                           dsc_table *b)
{
    const dsc_data *da = dsc_table_data(a), *db = dsc_table_data(b);
    dsc_prep *pa = dsc_table_prep(a), *pb = dsc_table_prep(b);
    bool same = da->n_rows == db->n_rows && da->n_features == db->n_features &&
                da->n_targets == db->n_targets && a->n_missing == b->n_missing &&
                a->n_unseen == b->n_unseen && a->target_column == b->target_column &&
                !da->x == !db->x && !da->label == !db->label && !da->y == !db->y &&
                !da->row_ptr == !db->row_ptr;
    if (same && da->x)
        same = memcmp(da->x, db->x, da->n_rows * da->n_features * sizeof(float)) == 0;
    if (same && da->label)
        same = memcmp(da->label, db->label, da->n_rows * sizeof(int32_t)) == 0;
    if (same && da->y)
        same = memcmp(da->y, db->y, da->n_rows * sizeof(float)) == 0;
    if (same && da->row_ptr) {
        size_t nnz = (size_t)da->row_ptr[da->n_rows];
        same = memcmp(da->row_ptr, db->row_ptr, (da->n_rows + 1) * sizeof(uint64_t)) == 0 &&
               memcmp(da->col, db->col, nnz * sizeof(uint32_t)) == 0 &&
               memcmp(da->val, db->val, nnz * sizeof(float)) == 0;
    }
    same = same && pa->n_features == pb->n_features && pa->n_targets == pb->n_targets &&
           pa->n_classes == pb->n_classes && pa->n_columns == pb->n_columns &&
           !pa->target_name == !pb->target_name &&
           (!pa->target_name || strcmp(pa->target_name, pb->target_name) == 0);
    for (size_t k = 0; same && k < pa->n_classes; k++)
        same = strcmp(pa->classes[k], pb->classes[k]) == 0;
    for (size_t i = 0; same && i < pa->n_columns; i++) {
        const dsc_column *ca = &pa->columns[i], *cb = &pb->columns[i];
        same = ca->categorical == cb->categorical && ca->n_levels == cb->n_levels &&
               ca->first_feature == cb->first_feature && strcmp(ca->name, cb->name) == 0;
        for (size_t k = 0; same && k < ca->n_levels; k++)
            same = strcmp(ca->levels[k], cb->levels[k]) == 0;
    }
    if (!same)
        test_report(file, line, "%s: the fast path read a different table", what);
}

/*
 * Read path with the fast path forbidden, then allowed: the same table, or the same code and
 * message. Returns the table read with the fast path (NULL on an error), for prediction.
 */
static dsc_table *read_both_ways(const char *file, int line, const char *what,
                                 const char *path, const dsc_read_options *opts,
                                 const dsc_prep *prep)
{
    char careful_message[1024];
    int careful_err = 0, fast_err = 0;

    dsc__allow_fast_text(0);
    dsc_table *careful = dsc_table_read(path, opts, prep, &careful_err);
    snprintf(careful_message, sizeof careful_message, "%s", dsc_last_error());
    dsc__allow_fast_text(1);
    dsc_table *fast = dsc_table_read(path, opts, prep, &fast_err);

    if (!careful != !fast || careful_err != fast_err)
        test_report(file, line, "%s: careful read gave code %d (%s), fast read code %d (%s)",
                    what, careful_err, careful ? "a table" : careful_message, fast_err,
                    fast ? "a table" : dsc_last_error());
    else if (!careful && strcmp(careful_message, dsc_last_error()) != 0)
        test_report(file, line, "%s: careful read said \"%s\", fast read \"%s\"", what,
                    careful_message, dsc_last_error());
    else if (careful)
        compare_tables(file, line, what, careful, fast);
    dsc_table_free(careful);
    return fast;
}

/* Write t to NAME in the test's folder; the path goes to path. */
static void write_text(const text_buf *t, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(t->s, 1, t->n, f);
        fclose(f);
    }
}

/* One CSV field: mostly numbers (or levels in a text column), now and then anything. */
static void put_csv_field(dsc_rng *rng, text_buf *t, bool text_column)
{
    static const char *const levels[] = {"red", "green", "blue", "7", "2.50"};
    static const char *const odd[] = {
        "",        "NA",      "nan",         "?",        "-NaN",       "inf",
        "1e400",   "-1e-400", "12345678901234567890123", "0x10",     "1 2",
        "word",    "\"7\"",   "\"a\"\"b\"",  "\"\"",     "\"open",     "\"q\" x",
        "3.5\r",   "007",     ".5",          "5.",       "+2",         "1e",
        "1.2.3"};
    static const char *const pads[] = {" ", "  ", "\t", " \t "};

    bool pad_before = one_in(rng, 12), pad_after = one_in(rng, 12);
    if (pad_before)
        put_text(t, PICK(rng, pads));
    if (one_in(rng, 500)) {
        put_text(t, PICK(rng, odd));
    } else if (one_in(rng, 5000)) {
        put_bytes(t, "4\0", 2); /* a NUL byte */
    } else if (text_column && !one_in(rng, 8)) {
        put_text(t, PICK(rng, levels));
    } else {
        put_number(rng, t);
    }
    if (pad_after)
        put_text(t, PICK(rng, pads));
}

/* A random CSV file of about rows records over n_columns columns. */
static void make_csv(dsc_rng *rng, text_buf *t, char delim, size_t n_columns, size_t rows,
                     bool header, const bool *text_column)
{
    static const char *const ends[] = {"\n", "\n", "\n", "\n", "\r\n", "\r"};
    const char *usual_end = one_in(rng, 3) ? "\r\n" : "\n";
    char d[2] = {delim, '\0'};

    t->n = 0;
    if (one_in(rng, 20))
        put_text(t, "\xEF\xBB\xBF");
    if (header) {
        for (size_t j = 0; j < n_columns; j++) {
            char name[32];
            snprintf(name, sizeof name, "%sc%zu", j ? d : "", j);
            put_text(t, name);
        }
        put_text(t, usual_end);
    }
    for (size_t r = 0; r < rows; r++) {
        if (one_in(rng, 30))
            put_text(t, one_in(rng, 2) ? "\n" : " \t\r\n"); /* a blank line */
        size_t n = n_columns;
        if (one_in(rng, 800))
            n += one_in(rng, 2) ? 1 : (size_t)-1;
        for (size_t j = 0; j < n; j++) {
            if (j)
                put_text(t, d);
            put_csv_field(rng, t, j < n_columns && text_column[j]);
        }
        if (r + 1 < rows || !one_in(rng, 4))
            put_text(t, one_in(rng, 100) ? PICK(rng, ends) : usual_end);
    }
}

TEST(textread_csv_fast_rows_read_like_the_careful_reader)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 77);
    text_buf t = {NULL, 0, 0};
    char path[512], what[64];
    static const char delims[] = {',', ';', '\t', '|'};
    size_t fast_rows_before = dsc__fast_text_rows();
    size_t tables = 0;

    for (int i = 0; i < 300; i++) {
        char delim = delims[dsc_rng_below(&rng, 4)];
        size_t n_columns = 2 + (size_t)dsc_rng_below(&rng, 4);
        bool text_column[8] = {false};
        for (size_t j = 0; j < n_columns; j++)
            text_column[j] = one_in(&rng, 4);
        bool header = !one_in(&rng, 3);

        dsc_read_options opts;
        dsc_read_options_default(&opts);
        if (one_in(&rng, 2))
            opts.delimiter = delim;
        opts.header = (int)dsc_rng_below(&rng, 3) - 1;
        opts.classify = (int)dsc_rng_below(&rng, 3) - 1;
        opts.missing = (dsc_missing)dsc_rng_below(&rng, 3);
        if (one_in(&rng, 4))
            opts.target = header && opts.header != 0 ? "c0" : "1";

        make_csv(&rng, &t, delim, n_columns, 5 + (size_t)dsc_rng_below(&rng, 60), header,
                 text_column);
        write_text(&t, "train.csv", path, sizeof path);
        snprintf(what, sizeof what, "CSV file %d", i);
        dsc_table *trained = read_both_ways(__FILE__, __LINE__, what, path, &opts, NULL);
        if (!trained)
            continue;
        tables++;

        /* Prediction with the encoding learned, on another file of the same shape. */
        for (int k = 0; k < 2; k++) {
            make_csv(&rng, &t, delim, n_columns - (size_t)dsc_rng_below(&rng, 2),
                     3 + (size_t)dsc_rng_below(&rng, 30), header, text_column);
            write_text(&t, "predict.csv", path, sizeof path);
            snprintf(what, sizeof what, "CSV file %d, prediction %d", i, k);
            dsc_read_options popts = opts;
            popts.target = NULL;
            dsc_table_free(read_both_ways(__FILE__, __LINE__, what, path, &popts,
                                          dsc_table_prep(trained)));
        }
        dsc_table_free(trained);
    }
    free(t.s);
    /* Enough files read, and the fast path really took most of their rows. */
    CHECK(tables > 100);
    CHECK(dsc__fast_text_rows() - fast_rows_before > 3000);
}

/* One LIBSVM line: a label and rising INDEX:VALUE pairs, now and then anything. */
static void make_libsvm(dsc_rng *rng, text_buf *t, size_t rows, size_t max_index,
                        bool whole_labels)
{
    static const char *const odd_labels[] = {"x", "nan", "1e400", "+1", "-0", "2.0", "1e0",
                                             "12345678901234567890123", ""};
    static const char *const odd_tokens[] = {"qid:7", "# comment", "5", ":1", "0:1", "-3:1",
                                             "3:", "3:x", "3:1e400", "3:nan", "3:inf",
                                             "99999999999:1", "3:1:2", "qid:", "#", "3:1#c",
                                             "0003:2", "3:0x1", "3:1.2.3", "3:+.5"};
    static const char *const spaces[] = {" ", " ", " ", "  ", "\t", " \t"};
    const char *usual_end = one_in(rng, 3) ? "\r\n" : "\n";
    char token[64];

    t->n = 0;
    for (size_t r = 0; r < rows; r++) {
        if (one_in(rng, 30))
            put_text(t, one_in(rng, 2) ? "# a comment line\n" : " \t\r\n");
        if (one_in(rng, 10))
            put_text(t, " ");
        if (one_in(rng, 500))
            put_text(t, PICK(rng, odd_labels));
        else if (whole_labels)
            put_text(t, one_in(rng, 2) ? "1" : (one_in(rng, 2) ? "-1" : "0"));
        else
            put_number(rng, t);
        size_t index = 0;
        while (index < max_index && !one_in(rng, 8)) {
            put_text(t, PICK(rng, spaces));
            if (one_in(rng, 1000)) {
                put_text(t, PICK(rng, odd_tokens));
                continue;
            }
            index += 1 + (size_t)dsc_rng_below(rng, 4);
            if (one_in(rng, 1500) && index > 2)
                index -= 2; /* repeated or falling */
            snprintf(token, sizeof token, "%zu:", index);
            put_text(t, token);
            if (one_in(rng, 8000))
                put_bytes(t, "1\0", 2);
            else
                put_number(rng, t);
        }
        if (one_in(rng, 25))
            put_text(t, " # trailing comment");
        if (r + 1 < rows || !one_in(rng, 4))
            put_text(t, one_in(rng, 400) ? "\r" : usual_end);
    }
}

TEST(textread_libsvm_fast_lines_read_like_the_careful_reader)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 91);
    text_buf t = {NULL, 0, 0};
    char path[512], what[64];
    size_t fast_rows_before = dsc__fast_text_rows();
    size_t tables = 0;

    for (int i = 0; i < 300; i++) {
        dsc_read_options opts;
        dsc_read_options_default(&opts);
        opts.format = DSC_FORMAT_LIBSVM;
        opts.classify = (int)dsc_rng_below(&rng, 3) - 1;
        bool whole = !one_in(&rng, 3);
        size_t max_index = 3 + (size_t)dsc_rng_below(&rng, 40);

        make_libsvm(&rng, &t, 5 + (size_t)dsc_rng_below(&rng, 60), max_index, whole);
        write_text(&t, "train.svm", path, sizeof path);
        snprintf(what, sizeof what, "LIBSVM file %d", i);
        dsc_table *trained = read_both_ways(__FILE__, __LINE__, what, path, &opts, NULL);
        if (!trained)
            continue;
        tables++;

        for (int k = 0; k < 2; k++) {
            make_libsvm(&rng, &t, 3 + (size_t)dsc_rng_below(&rng, 30),
                        max_index + (one_in(&rng, 4) ? 2 : 0), whole);
            write_text(&t, "predict.svm", path, sizeof path);
            snprintf(what, sizeof what, "LIBSVM file %d, prediction %d", i, k);
            dsc_table_free(read_both_ways(__FILE__, __LINE__, what, path, &opts,
                                          dsc_table_prep(trained)));
        }
        dsc_table_free(trained);
    }
    free(t.s);
    CHECK(tables > 100);
    CHECK(dsc__fast_text_rows() - fast_rows_before > 3000);
}
