/*
 * libsvm.c - the LIBSVM / svmlight text reader: one pass over the file into a CSR matrix.
 *
 * A line is "LABEL INDEX:VALUE INDEX:VALUE ... # comment": indices are 1-based and increase
 * along a line, "qid:N" tokens are ignored, blank and comment-only lines are skipped and CRLF
 * line ends are accepted. The file is read in blocks and only the current line is buffered,
 * so memory grows with the non-zeros, never with rows x features.
 *
 * Targets: with classify 1 the labels are classes, with 0 regression targets, and with the
 * default -1 they are classes when every label is a whole number, else regression targets.
 * Class labels are kept as normalised number text ("+1" and "1.0" are both "1") and come out
 * in numeric order, so that "-1" and "+1" are classes 0 and 1.
 *
 * This file also holds the class-label helpers that npy.c and idx.c share.
 */
#include "internal.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Known shortcoming: the largest index sets the number of features, and a model holds a
 * weight (and the optimizer its state) for every feature, so "1 268435456:1", a file of 15
 * bytes, makes training use gigabytes (about 27 bytes a feature for logistic regression).
 * That is the price of dense weights, not a leak: reading and fitting cost the entries only.
 * There is no lower limit because real sparse sets (kdd2012) have tens of millions of
 * features; a limit option for untrusted input would be the fix if one is needed.
 *
 * Known shortcoming (speed): the file is parsed on one thread, about 250 to 320 MB/s on the
 * benchmark's machine, and a file in which every row names every feature is still stored as
 * CSR (8 bytes an entry instead of 4) and trained on the sparse path, about 3 times slower an
 * epoch than the same rows stored dense. Parsing blocks of lines on several threads, and
 * storing a dense-enough file dense, are the two steps that would bring LIBLINEAR's
 * end-to-end ratio (3.5x in bench/README.md) towards the 10x we aim at.
 */
#define LIBSVM_MAX_INDEX 2147483647u          /* indices < 2^31 */
#define LIBSVM_MAX_ROWS 4294967295u           /* rows < 2^32 */
#define LIBSVM_MAX_NNZ ((uint64_t)1 << 40)    /* non-zeros < 2^40 */
#define LIBSVM_BLOCK 65536                    /* bytes read at a time */
#define SHOWN_MAX 40                          /* bytes of a bad token quoted in a message */

/* The helpers shared with npy.c and idx.c (see the declarations there). */
size_t dsc__class_text(float value, char *buf, size_t size);
void *dsc__grow(void *array, size_t *capacity, size_t used, size_t need, size_t limit,
                size_t elem_size);
int dsc__learn_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels);
int dsc__map_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels,
                     size_t *bad_row);

/* ---- Shared helpers ---------------------------------------------------------------------- */

/*
 * Make room for need elements of elem_size bytes in array, which holds used of them in
 * *capacity: the capacity at least doubles, so that n appends cost O(n) copies, but never
 * passes limit (the most the array will hold, SIZE_MAX when unknown) unless need does.
 * Returns the array, moved when it grew (the old one is freed), or NULL when the allocation
 * fails or its size overflows; array and *capacity are unchanged then.
 */
void *dsc__grow(void *array, size_t *capacity, size_t used, size_t need, size_t limit,
                size_t elem_size)
{
    if (need <= *capacity && array)
        return array;

    size_t new_capacity = *capacity < 16 ? 16 : *capacity;
    while (new_capacity < need) {
        if (new_capacity > SIZE_MAX / 2) {
            new_capacity = need;
            break;
        }
        new_capacity *= 2;
    }
    if (new_capacity > limit)
        new_capacity = limit > need ? limit : need;

    size_t bytes;
    if (dsc__mul_overflows(new_capacity, elem_size, &bytes))
        return NULL;
    void *grown = dsc__realloc(array, array ? used * elem_size : 0, bytes);
    if (!grown)
        return NULL;
    *capacity = new_capacity;
    return grown;
}

/* Replace the locale's decimal point in buf (when it is not ".") by ".". */
static void fix_decimal_point(char *buf)
{
    const char *point = localeconv()->decimal_point;

    if (!point || !point[0] || strcmp(point, ".") == 0)
        return;

    size_t point_len = strlen(point);
    char *at = strstr(buf, point);
    if (!at)
        return;
    *at = '.';
    memmove(at + 1, at + point_len, strlen(at + point_len) + 1);
}

/*
 * The text of a numeric class label: a whole number below 1e9 in plain digits ("-1", "7"),
 * any other value in the shortest %g form that reads back to the same float ("0.5",
 * "1e+10"), with "." as the decimal point in every locale. Returns the length.
 */
size_t dsc__class_text(float value, char *buf, size_t size)
{
    value += 0.0f; /* -0 becomes 0 */

    if (value == floorf(value) && fabsf(value) < 1e9f) {
        snprintf(buf, size, "%.0f", (double)value);
        return strlen(buf);
    }

    for (int precision = 6; precision <= 9; precision++) {
        snprintf(buf, size, "%.*g", precision, (double)value);
        fix_decimal_point(buf);
        float back;
        if (dsc__parse_float(buf, strlen(buf), &back) == DSC_OK && back == value)
            break;
    }
    return strlen(buf);
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

/*
 * The distinct values of values[0..n) (finite), sorted, into *distinct (count *n_distinct).
 * The caller frees *distinct.
 */
static int distinct_values(const float *values, size_t n, float **distinct, size_t *n_distinct)
{
    float *sorted = dsc__alloc(dsc__mul(n, sizeof(float)));
    if (!sorted)
        return DSC_ENOMEM;
    if (n)
        memcpy(sorted, values, n * sizeof(float));
    qsort(sorted, n, sizeof(float), compare_floats);

    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || sorted[i] != sorted[m - 1])
            sorted[m++] = sorted[i];
    }
    *distinct = sorted;
    *n_distinct = m;
    return DSC_OK;
}

/* The position of value in sorted[0..n) (it must be there). */
static size_t find_sorted(const float *sorted, size_t n, float value)
{
    size_t lo = 0, hi = n;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= value)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Learn the classes of the numeric labels values[0..n) into prep (each distinct value's
 * dsc__class_text, added in numeric order, then dsc__prep_sort_numeric_classes) and write
 * every row's class into labels. Returns 0 or a negative code; the caller adds the file name.
 */
int dsc__learn_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels)
{
    float *distinct;
    size_t n_distinct;
    int rc = distinct_values(values, n, &distinct, &n_distinct);
    if (rc < 0)
        return rc;

    int32_t *class_of = dsc__alloc(dsc__mul(n_distinct, sizeof(int32_t)));
    if (!class_of) {
        dsc__free(distinct);
        return DSC_ENOMEM;
    }

    for (size_t i = 0; i < n_distinct && rc >= 0; i++) {
        char text[64];
        size_t len = dsc__class_text(distinct[i], text, sizeof text);
        rc = dsc__prep_class(prep, text, len, 1);
        class_of[i] = rc;
    }
    for (size_t r = 0; r < n && rc >= 0; r++)
        labels[r] = class_of[find_sorted(distinct, n_distinct, values[r])];
    if (rc >= 0)
        rc = dsc__prep_sort_numeric_classes(prep, labels, n);

    dsc__free(class_of);
    dsc__free(distinct);
    return rc < 0 ? rc : DSC_OK;
}

/*
 * Map the numeric labels values[0..n) to prep's known classes (by dsc__class_text). A label
 * the prep does not know is DSC_EFORMAT with *bad_row the first row that has it; other
 * failures are passed on. The caller writes the message.
 */
int dsc__map_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels,
                     size_t *bad_row)
{
    float *distinct;
    size_t n_distinct;
    int rc = distinct_values(values, n, &distinct, &n_distinct);
    if (rc < 0)
        return rc;

    int32_t *class_of = dsc__alloc(dsc__mul(n_distinct, sizeof(int32_t)));
    if (!class_of) {
        dsc__free(distinct);
        return DSC_ENOMEM;
    }

    size_t bad = n_distinct;
    for (size_t i = 0; i < n_distinct && rc >= 0; i++) {
        char text[64];
        size_t len = dsc__class_text(distinct[i], text, sizeof text);
        rc = dsc__prep_class(prep, text, len, 0);
        if (rc == DSC_ENOMEM)
            break;
        if (rc < 0) {
            bad = i;
            rc = DSC_EFORMAT;
        }
        class_of[i] = rc;
    }
    for (size_t r = 0; r < n && rc >= 0; r++)
        labels[r] = class_of[find_sorted(distinct, n_distinct, values[r])];
    for (size_t r = 0; bad < n_distinct && r < n; r++) {
        if (values[r] == distinct[bad]) {
            *bad_row = r;
            break;
        }
    }

    dsc__free(class_of);
    dsc__free(distinct);
    return rc < 0 ? rc : DSC_OK;
}

/* ---- The LIBSVM reader ------------------------------------------------------------------- */

typedef struct libsvm_reader {
    const char *path;
    dsc_prep *prep;          /* the table's: learned, or a copy of the one given */
    int learning;            /* no prep was given */
    int lookup_classes;      /* prediction with a classifier's prep: labels mapped per line */
    size_t line;             /* the line being parsed, 1-based */

    uint64_t *row_ptr;       /* n_rows + 1 offsets */
    size_t row_ptr_cap;
    uint32_t *col;           /* nnz column indices, 0-based */
    float *val;              /* nnz values */
    size_t col_cap, val_cap;
    uint64_t nnz;
    float *target;           /* each row's label as a number */
    size_t target_cap;
    int32_t *label;          /* each row's class, when lookup_classes */
    size_t label_cap;
    size_t n_rows;
    uint32_t max_index;      /* the largest index seen (1-based) */
    int all_whole;           /* every label is a whole number */
    int fast;                /* parse_line_fast is allowed (dsc__allow_fast_text) */
    size_t n_fast;           /* rows it stored */

    float *known_value;      /* lookup_classes: label values already mapped, sorted */
    int32_t *known_class;
    size_t n_known;
} libsvm_reader;

/* Room for need elements in an array that holds need - 1 of them (one more appended). */
static void *make_room(void *array, size_t *capacity, size_t need, size_t elem_size)
{
    return dsc__grow(array, capacity, need - 1, need, SIZE_MAX, elem_size);
}

/* Copy up to SHOWN_MAX bytes of a token into buf for a message, '?' for unprintable bytes. */
static const char *shown(const char *text, size_t len, char *buf)
{
    size_t n = len < SHOWN_MAX ? len : SHOWN_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > n) {
        memcpy(buf + n, "...", 4);
    } else {
        buf[n] = '\0';
    }
    return buf;
}

/* Fail with "PATH:LINE:COL: message". */
static int fail_at(const libsvm_reader *r, size_t column, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int fail_at(const libsvm_reader *r, size_t column, int code, const char *fmt, ...)
{
    char message[400];
    va_list args;

    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return dsc__fail(code, "%s:%zu:%zu: %s", r->path, r->line, column, message);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Parse the index of an INDEX:VALUE token (text[0..len), before the colon) into *index.
 * column is the token's column, for messages.
 */
static int parse_index(const libsvm_reader *r, const char *text, size_t len, size_t column,
                       uint32_t *index)
{
    char buf[SHOWN_MAX + 4];
    int negative = len > 1 && text[0] == '-';
    size_t start = negative ? 1 : 0;
    uint64_t value = 0;
    int too_big = 0;

    if (len == 0)
        return fail_at(r, column, DSC_EFORMAT, "missing index before ':'");
    for (size_t i = start; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return fail_at(r, column, DSC_EFORMAT, "index '%s' is not a whole number",
                           shown(text, len, buf));
        value = value * 10 + (uint64_t)(text[i] - '0');
        if (value > LIBSVM_MAX_INDEX) {
            too_big = 1;
            value = LIBSVM_MAX_INDEX + 1ull; /* stays bounded while the digits are checked */
        }
    }
    if (negative)
        return fail_at(r, column, DSC_EFORMAT, "index %s is negative", shown(text, len, buf));
    if (too_big)
        return fail_at(r, column, DSC_ELIMIT, "index %s is beyond the limit of %u",
                       shown(text, len, buf), LIBSVM_MAX_INDEX);
    if (value == 0)
        return fail_at(r, column, DSC_EFORMAT, "index 0: indices start at 1");
    *index = (uint32_t)value;
    return DSC_OK;
}

/* The class of a label value for prediction, through a sorted cache of those seen. */
static int lookup_class(libsvm_reader *r, float value, size_t column, int32_t *cls)
{
    size_t lo = 0, hi = r->n_known;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->known_value[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->n_known && r->known_value[lo] == value) {
        *cls = r->known_class[lo];
        return DSC_OK;
    }

    char text[64];
    size_t len = dsc__class_text(value, text, sizeof text);
    int rc = dsc__prep_class(r->prep, text, len, 0);
    if (rc == DSC_ENOMEM)
        return fail_at(r, column, rc, "out of memory");
    if (rc < 0)
        return fail_at(r, column, DSC_EFORMAT, "class '%s' was not seen in training", text);

    /* Each known class enters the cache once, so it never holds more than n_classes. */
    *cls = rc;
    if (r->n_known >= r->prep->n_classes)
        return DSC_OK;
    memmove(r->known_value + lo + 1, r->known_value + lo, (r->n_known - lo) * sizeof(float));
    memmove(r->known_class + lo + 1, r->known_class + lo, (r->n_known - lo) * sizeof(int32_t));
    r->known_value[lo] = value;
    r->known_class[lo] = rc;
    r->n_known++;
    return DSC_OK;
}

/*
 * Make room for row n_rows (its offset, label value and class) and, with lookup_classes, set
 * its class from the label value. Stores no row: add_row_now does.
 */
static int make_row_room(libsvm_reader *r, float value, size_t column)
{
    size_t n = r->n_rows;
    uint64_t *row_ptr = make_room(r->row_ptr, &r->row_ptr_cap, n + 2, sizeof *row_ptr);
    if (!row_ptr)
        return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu rows", n);
    r->row_ptr = row_ptr;
    float *target = make_room(r->target, &r->target_cap, n + 1, sizeof *target);
    if (!target)
        return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu rows", n);
    r->target = target;
    if (r->lookup_classes) {
        int32_t *label = make_room(r->label, &r->label_cap, n + 1, sizeof *label);
        if (!label)
            return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu rows", n);
        r->label = label;
        int rc = lookup_class(r, value, column, &r->label[n]);
        if (rc < 0)
            return rc;
    }
    return DSC_OK;
}

/* Store row n_rows (room made) with the non-zeros up to r->nnz. */
static void add_row_now(libsvm_reader *r, float value)
{
    size_t n = r->n_rows;

    r->target[n] = value;
    if (value != floorf(value))
        r->all_whole = 0;
    r->row_ptr[n + 1] = r->nnz;
    r->n_rows++;
}

/* Append one row's label; the row's features follow through add_feature. */
static int add_row(libsvm_reader *r, const char *text, size_t len, size_t column)
{
    char buf[SHOWN_MAX + 4];
    float value;
    int rc = dsc__parse_float(text, len, &value);

    if (rc == DSC_ELIMIT)
        return fail_at(r, column, DSC_EFORMAT, "label '%s' is beyond float range",
                       shown(text, len, buf));
    if (rc < 0 || !isfinite(value))
        return fail_at(r, column, DSC_EFORMAT, "label '%s' is not a number",
                       shown(text, len, buf));
    if (r->n_rows >= LIBSVM_MAX_ROWS)
        return fail_at(r, column, DSC_ELIMIT, "more than %u rows", LIBSVM_MAX_ROWS);

    rc = make_row_room(r, value, column);
    if (rc < 0)
        return rc;
    add_row_now(r, value);
    return DSC_OK;
}

/* Parse an INDEX:VALUE token of the current row (text[0..len), at column). */
static int add_feature(libsvm_reader *r, const char *text, size_t len, size_t column,
                       uint32_t *previous)
{
    char buf[SHOWN_MAX + 4];
    const char *colon = memchr(text, ':', len);

    if (!colon)
        return fail_at(r, column, DSC_EFORMAT, "expected INDEX:VALUE, got '%s'",
                       shown(text, len, buf));

    uint32_t index = 0;
    size_t index_len = (size_t)(colon - text);
    int rc = parse_index(r, text, index_len, column, &index);
    if (rc < 0)
        return rc;
    if (index == *previous)
        return fail_at(r, column, DSC_EFORMAT, "index %u repeated", index);
    if (index < *previous)
        return fail_at(r, column, DSC_EFORMAT,
                       "index %u after index %u: indices must increase along a line", index,
                       *previous);
    if (!r->learning && index > r->prep->n_features)
        return fail_at(r, column, DSC_EFORMAT,
                       "index %u is beyond the %zu features of the training data", index,
                       r->prep->n_features);

    const char *value_text = colon + 1;
    size_t value_len = len - index_len - 1;
    size_t value_column = column + index_len + 1;
    float value;
    if (value_len == 0)
        return fail_at(r, value_column, DSC_EFORMAT, "missing value after index %u", index);
    rc = dsc__parse_float(value_text, value_len, &value);
    if (rc == DSC_ELIMIT)
        return fail_at(r, value_column, DSC_EFORMAT,
                       "value '%s' of index %u is beyond float range",
                       shown(value_text, value_len, buf), index);
    if (rc < 0 || !isfinite(value))
        return fail_at(r, value_column, DSC_EFORMAT,
                       "value '%s' of index %u is not a finite number",
                       shown(value_text, value_len, buf), index);

    if (r->nnz + 1 >= LIBSVM_MAX_NNZ)
        return fail_at(r, column, DSC_ELIMIT, "more than %llu non-zero values",
                       (unsigned long long)(LIBSVM_MAX_NNZ - 1));
    if ((uint64_t)(size_t)(r->nnz + 1) != r->nnz + 1)
        return fail_at(r, column, DSC_ENOMEM, "too many non-zero values for memory");
    size_t nnz = (size_t)r->nnz;
    uint32_t *col = make_room(r->col, &r->col_cap, nnz + 1, sizeof *col);
    if (col)
        r->col = col;
    float *val = col ? make_room(r->val, &r->val_cap, nnz + 1, sizeof *val) : NULL;
    if (!val)
        return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu non-zero values", nnz);
    r->val = val;

    r->col[nnz] = index - 1;
    r->val[nnz] = value;
    r->nnz++;
    r->row_ptr[r->n_rows] = r->nnz;
    if (index > r->max_index)
        r->max_index = index;
    *previous = index;
    return DSC_OK;
}

/* Parse one line (text[0..len), without its '\n'): a row, or nothing when blank. */
static int parse_line(libsvm_reader *r, const char *text, size_t len)
{
    const char *comment = memchr(text, '#', len);
    if (comment)
        len = (size_t)(comment - text);

    size_t pos = 0;
    int have_label = 0;
    uint32_t previous = 0;

    while (pos < len) {
        while (pos < len && is_space(text[pos]))
            pos++;
        if (pos == len)
            break;
        size_t start = pos;
        while (pos < len && !is_space(text[pos]))
            pos++;

        const char *token = text + start;
        size_t token_len = pos - start;
        int rc;
        if (!have_label) {
            /* The row's label; its features go after the current last offset. */
            rc = add_row(r, token, token_len, start + 1);
            have_label = 1;
        } else if (token_len >= 4 && memcmp(token, "qid:", 4) == 0) {
            rc = DSC_OK;
        } else {
            rc = add_feature(r, token, token_len, start + 1, &previous);
        }
        if (rc < 0)
            return rc;
    }
    return DSC_OK;
}

/*
 * The usual line in one scan, without the token-by-token work of parse_line: a label and
 * INDEX:VALUE tokens whose numbers the fast path of dsc__parse_float reads (internal.h), the
 * indices rising within the limits, maybe qid tokens and a comment. Returns 1 when the row is
 * stored, 0 when the line is anything else (blank, malformed, a long number, a limit reached):
 * then nothing is stored and parse_line reads the line afresh and words any error. A negative
 * code when memory runs out, with parse_line's message (the room is made in the same order).
 */
static int parse_line_fast(libsvm_reader *r, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    float label;

    while (p < end && is_space(*p))
        p++;
    size_t label_column = (size_t)(p - text) + 1;
    p = dsc__scan_float(p, end, &label);
    if (!p || (p < end && !is_space(*p) && *p != '#') || r->n_rows >= LIBSVM_MAX_ROWS)
        return 0;
    int rc = make_row_room(r, label, label_column);
    if (rc < 0)
        return rc;

    /* The non-zeros go after r->nnz and count only once the whole line has been read. */
    uint64_t limit = LIBSVM_MAX_INDEX;
    if (!r->learning && r->prep->n_features < limit)
        limit = r->prep->n_features;
    uint32_t previous = 0, max_index = r->max_index;
    size_t nnz = (size_t)r->nnz;
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end || *p == '#')
            break;
        const char *token = p;
        if (*p == 'q' && end - p >= 4 && memcmp(p, "qid:", 4) == 0) {
            while (p < end && !is_space(*p) && *p != '#')
                p++;
            continue;
        }
        uint64_t index = 0;
        for (; p < end && (unsigned char)(*p - '0') < 10 && p - token < 10; p++)
            index = index * 10 + (uint64_t)(*p - '0');
        if (p == token || p == end || *p != ':' || index <= previous || index > limit)
            return 0;
        float value;
        p = dsc__scan_float(p + 1, end, &value);
        if (!p || (p < end && !is_space(*p) && *p != '#') || nnz + 1 >= LIBSVM_MAX_NNZ)
            return 0;
        if (nnz + 1 > r->col_cap || nnz + 1 > r->val_cap) {
            size_t column = (size_t)(token - text) + 1;
            uint32_t *col = make_room(r->col, &r->col_cap, nnz + 1, sizeof *col);
            if (col)
                r->col = col;
            float *val = col ? make_room(r->val, &r->val_cap, nnz + 1, sizeof *val) : NULL;
            if (!val)
                return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu non-zero values",
                               nnz);
            r->val = val;
        }
        r->col[nnz] = (uint32_t)index - 1;
        r->val[nnz] = value;
        nnz++;
        previous = (uint32_t)index;
        if (previous > max_index)
            max_index = previous;
    }

    r->nnz = nnz;
    r->max_index = max_index;
    add_row_now(r, label);
    r->n_fast++;
    return 1;
}

/* One line: the fast scan when it can, else parse_line. */
static int parse_any_line(libsvm_reader *r, const char *text, size_t len)
{
    int rc = r->fast ? parse_line_fast(r, text, len) : 0;

    return rc == 0 ? parse_line(r, text, len) : (rc < 0 ? rc : DSC_OK);
}

/* Read the whole stream block by block, handing each complete line to parse_any_line. */
static int parse_stream(libsvm_reader *r, FILE *in)
{
    size_t cap = LIBSVM_BLOCK, len = 0, start = 0, scanned = 0;
    char *buf = dsc__alloc(cap);
    int at_eof = 0, rc = DSC_OK;

    if (!buf)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", r->path);

    while (rc >= 0) {
        char *newline = memchr(buf + scanned, '\n', len - scanned);
        if (newline) {
            r->line++;
            rc = parse_any_line(r, buf + start, (size_t)(newline - buf) - start);
            start = scanned = (size_t)(newline - buf) + 1;
            continue;
        }
        if (at_eof) {
            if (start < len) {
                r->line++;
                rc = parse_any_line(r, buf + start, len - start);
            }
            break;
        }

        /* Keep the unfinished line at the front, grow the buffer for a long one, read on. */
        memmove(buf, buf + start, len - start);
        len -= start;
        scanned = len;
        start = 0;
        if (len == cap) {
            char *grown = make_room(buf, &cap, cap + 1, 1);
            if (!grown) {
                rc = dsc__fail(DSC_ENOMEM, "%s:%zu: out of memory for a line of %zu bytes",
                               r->path, r->line + 1, len);
                break;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, in);
        len += got;
        if (got == 0) {
            if (ferror(in)) {
                rc = dsc__fail(DSC_EIO, "%s:%zu: read error", r->path, r->line + 1);
                break;
            }
            at_eof = 1;
        }
    }
    dsc__free(buf);
    return rc;
}

static void reader_free(libsvm_reader *r)
{
    dsc__free(r->row_ptr);
    dsc__free(r->col);
    dsc__free(r->val);
    dsc__free(r->target);
    dsc__free(r->label);
    dsc__free(r->known_value);
    dsc__free(r->known_class);
}

/*
 * Turn the label values into the table's targets: classes or regression targets, learned
 * or as the given prep says.
 */
static int finish_targets(libsvm_reader *r, dsc_table *table, const dsc_read_options *opts)
{
    dsc_prep *prep = r->prep;
    int rc;

    if (r->learning) {
        int classify = opts->classify == 1 || (opts->classify < 0 && r->all_whole);
        if (!classify) {
            prep->n_targets = 1;
            table->y = r->target;
            r->target = NULL;
            return DSC_OK;
        }
        int32_t *label = dsc__alloc(dsc__mul(r->n_rows, sizeof(int32_t)));
        if (!label)
            return dsc__fail(DSC_ENOMEM, "%s: out of memory for the labels", r->path);
        rc = dsc__learn_classes(prep, r->target, r->n_rows, label);
        if (rc < 0) {
            char reason[256];
            snprintf(reason, sizeof reason, "%s", dsc_last_error());
            dsc__free(label);
            return dsc__fail(rc, "%s: class labels: %s", r->path, reason);
        }
        prep->n_targets = 0;
        table->label = label;
        return DSC_OK;
    }

    if (r->lookup_classes) {
        table->label = r->label;
        r->label = NULL;
    } else if (prep->n_targets == 1) {
        table->y = r->target;
        r->target = NULL;
    } else if (prep->n_targets > 1) {
        return dsc__fail(DSC_EFORMAT, "%s: the training data had %zu targets, a LIBSVM row "
                         "has one", r->path, prep->n_targets);
    }
    return DSC_OK;
}

/*
 * Read a LIBSVM / svmlight file from in (path names it in messages) into table: CSR features,
 * and classes or regression targets. With prep given the rows are checked against it.
 */
int dsc__read_libsvm(dsc_table *table, FILE *in, const char *path,
                     const dsc_read_options *opts, const dsc_prep *prep)
{
    dsc_read_options defaults;
    libsvm_reader r;
    int rc;

    if (!opts) {
        dsc_read_options_default(&defaults);
        opts = &defaults;
    }
    memset(&r, 0, sizeof r);
    r.path = path ? path : "-";
    r.learning = prep == NULL;
    r.all_whole = 1;
    r.fast = dsc__fast_text_allowed();

    /* dsc_table_read gives the table its prep: a copy of the given one, or a new one. */
    if (!table->prep)
        return dsc__fail(DSC_EINVAL, "%s: internal: the table has no preprocessing", r.path);
    r.prep = table->prep;

    if (prep && r.prep->n_classes > 0) {
        r.lookup_classes = 1;
        r.known_value = dsc__alloc(dsc__mul(r.prep->n_classes, sizeof(float)));
        r.known_class = dsc__alloc(dsc__mul(r.prep->n_classes, sizeof(int32_t)));
        if (!r.known_value || !r.known_class) {
            reader_free(&r);
            return dsc__fail(DSC_ENOMEM, "%s: out of memory", r.path);
        }
    }

    /* row_ptr[0] = 0 exists even for an empty file; col and val are never NULL. */
    r.row_ptr = make_room(NULL, &r.row_ptr_cap, 1, sizeof *r.row_ptr);
    r.col = make_room(NULL, &r.col_cap, 1, sizeof *r.col);
    r.val = make_room(NULL, &r.val_cap, 1, sizeof *r.val);
    if (!r.row_ptr || !r.col || !r.val) {
        reader_free(&r);
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", r.path);
    }
    r.row_ptr[0] = 0;

    rc = parse_stream(&r, in);
    dsc__add_fast_text_rows(r.n_fast);
    if (rc >= 0 && r.n_rows == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no data rows", r.path);
    if (rc >= 0 && r.learning && r.max_index == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no features: every row is empty", r.path);
    if (rc >= 0 && r.learning)
        r.prep->n_features = r.max_index;
    if (rc >= 0)
        rc = finish_targets(&r, table, opts);
    if (rc < 0) {
        reader_free(&r);
        return rc;
    }

    table->row_ptr = r.row_ptr;
    table->col = r.col;
    table->val = r.val;
    r.row_ptr = NULL;
    r.col = NULL;
    r.val = NULL;
    reader_free(&r);

    table->x = NULL;
    memset(&table->data, 0, sizeof table->data);
    table->data.n_rows = r.n_rows;
    table->data.n_features = table->prep->n_features;
    table->data.row_ptr = table->row_ptr;
    table->data.col = table->col;
    table->data.val = table->val;
    table->data.label = table->label;
    table->data.y = table->y;
    table->data.n_targets = table->y ? 1 : 0;
    return DSC_OK;
}
