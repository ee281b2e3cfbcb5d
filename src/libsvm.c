/*
 * libsvm.c - the LIBSVM / svmlight text reader: a regular file is mapped and parsed in pieces
 * on several threads, standard input and pipes are read in blocks on one thread; both give
 * the same table, with features stored dense when that is the smaller storage.
 *
 * A line is "LABEL INDEX:VALUE INDEX:VALUE ... # comment": indices are 1-based and increase
 * along a line, "qid:N" tokens are ignored, blank and comment-only lines are skipped and CRLF
 * line ends are accepted. Memory grows with the non-zeros, never with rows x features: a
 * dense matrix is used only when it is no bigger than the CSR arrays (store_dense).
 *
 * Targets: with classify 1 the labels are classes, with 0 regression targets, and with the
 * default -1 they are classes when every label is a whole number, else regression targets.
 * Class labels are kept as normalised number text ("+1" and "1.0" are both "1") and come out
 * in numeric order, so that "-1" and "+1" are classes 0 and 1.
 *
 * This file also holds the class-label helpers that npy.c and idx.c share.
 */
#define _DEFAULT_SOURCE /* fileno, ftello, mmap, madvise */

#include "internal.h"
#include "libsvm.h"

#include <locale.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(_POSIX_MAPPED_FILES) && _POSIX_MAPPED_FILES > 0
#include <sys/mman.h>
#define HAVE_MMAP 1
#else
#define HAVE_MMAP 0
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/*
 * Known shortcoming: the largest index sets the number of features, and a model holds a
 * weight (and the optimizer its state) for every feature, so "1 268435456:1", a file of 15
 * bytes, makes training use gigabytes (about 27 bytes a feature for logistic regression).
 * That is the price of dense weights, not a leak: reading and fitting cost the entries only.
 * There is no lower limit because real sparse sets (kdd2012) have tens of millions of
 * features; a limit option for untrusted input would be the fix if one is needed.
 *
 * Known shortcoming (speed): on the benchmark's machine (2 shared cores) its 1.04 GB file of
 * 1,000,000 full rows of 100 features reads in about 2.3 s on one thread (450 MB/s) and 1.5 s
 * on two; two thirds of that is parse_line_fast_into, mostly the number scan, and the count
 * pass, which reads the text a second time, about 5 %. Two changes to the scan measured no
 * faster, 17 to 20 ns a number either way, and were left out: a multiplication by a rounded
 * 10^-k instead of the division by 10^k (a profile puts the time after the division, but the
 * division overlaps the next numbers' work), and a sign read without a branch.
 * Standard input and pipes take the stream path, on one thread, and a dense-enough stream
 * is stored as CSR first and copied into the matrix at the end, so its peak memory is both.
 * A file whose entries write out zeros stays CSR however dense (store_dense). Lines that
 * the count misreads (a qid token with two colons) and indices beyond the limit send the
 * file back to the stream path: correct, at the speed of one thread. And a regular file
 * truncated while it is read ends the process (SIGBUS on the mapping), as for data caches.
 */
#define LIBSVM_MAX_INDEX 2147483647u          /* indices < 2^31 */
#define LIBSVM_MAX_ROWS 4294967295u           /* rows < 2^32 */
#define LIBSVM_MAX_NNZ ((uint64_t)1 << 40)    /* non-zeros < 2^40 */
#define LIBSVM_BLOCK 65536                    /* bytes read at a time (stream path) */
#define LIBSVM_PIECE ((size_t)1 << 20)        /* bytes a piece of the mapped path starts in */
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

#define FEW_DISTINCT 64 /* distinct values gathered without sorting every value */

/*
 * The distinct values of values[0..n) (finite), sorted, into *distinct (count *n_distinct).
 * Labels mostly take a handful of values, so they are first gathered in a small sorted set,
 * each value looked up there, which costs a pass over the values rather than a copy and a
 * sort of all of them; beyond FEW_DISTINCT values the copy is sorted. Both give the same
 * set (-0 and 0 are one value; the text of either is "0"). The caller frees *distinct.
 */
static int distinct_values(const float *values, size_t n, float **distinct, size_t *n_distinct)
{
    float few[FEW_DISTINCT];
    size_t m = 0;
    int many = 0;

    for (size_t i = 0; i < n && !many; i++) {
        float v = values[i];
        if (i > 0 && v == values[i - 1])
            continue;
        size_t lo = 0, hi = m;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (few[mid] < v)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < m && few[lo] == v)
            continue;
        if (m == FEW_DISTINCT) {
            many = 1;
            break;
        }
        memmove(few + lo + 1, few + lo, (m - lo) * sizeof(float));
        few[lo] = v;
        m++;
    }

    size_t count = many ? n : m;
    float *sorted = dsc__alloc(dsc__mul(count, sizeof(float)));
    if (!sorted)
        return DSC_ENOMEM;
    if (!many) {
        if (m)
            memcpy(sorted, few, m * sizeof(float));
        *distinct = sorted;
        *n_distinct = m;
        return DSC_OK;
    }

    memcpy(sorted, values, n * sizeof(float));
    qsort(sorted, n, sizeof(float), compare_floats);
    m = 0;
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

    uint64_t *row_ptr;       /* CSR: n_rows + 1 offsets */
    size_t row_ptr_cap;
    uint32_t *col;           /* CSR: nnz column indices, 0-based */
    float *val;              /* CSR: nnz values */
    size_t col_cap, val_cap;
    float *x;                /* dense storage (the mapped path): width floats a row, or NULL */
    size_t width;
    uint64_t nnz;            /* values stored (INDEX:VALUE tokens), whatever the storage */
    float *target;           /* each row's label as a number */
    size_t target_cap;
    int32_t *label;          /* each row's class, when lookup_classes */
    size_t label_cap;
    size_t n_rows;
    uint32_t max_index;      /* the largest index seen (1-based) */
    int all_whole;           /* every label is a whole number */
    int zero_value;          /* some stored value is zero (a dense matrix could not tell) */
    int fast;                /* parse_line_fast is allowed (dsc__allow_fast_text) */
    size_t n_fast;           /* rows it stored */
    int fixed;               /* the arrays were sized by the count pass and are never grown */
    int recount;             /* ... and a row did not fit them: that count was wrong */

    float *known_value;      /* lookup_classes: label values already mapped, sorted */
    int32_t *known_class;
    size_t n_known;
} libsvm_reader;

/* Room for need elements in an array that holds need - 1 of them (one more appended). */
static void *make_room(void *array, size_t *capacity, size_t need, size_t elem_size)
{
    return dsc__grow(array, capacity, need - 1, need, SIZE_MAX, elem_size);
}

/*
 * Room for need elements of one of the reader's arrays. Arrays that the count pass sized
 * (r->fixed) belong to every piece at once and must never move: one too small means that
 * the count was wrong, which sets r->recount, and the caller's failure sends the whole file
 * to the stream path.
 */
static void *reader_room(libsvm_reader *r, void *array, size_t *capacity, size_t need,
                         size_t elem_size)
{
    if (!r->fixed)
        return make_room(array, capacity, need, elem_size);
    if (array && need <= *capacity)
        return array;
    r->recount = 1;
    return NULL;
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
    if (!r->x) {
        uint64_t *row_ptr = reader_room(r, r->row_ptr, &r->row_ptr_cap, n + 2,
                                        sizeof *row_ptr);
        if (!row_ptr)
            return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu rows", n);
        r->row_ptr = row_ptr;
    }
    float *target = reader_room(r, r->target, &r->target_cap, n + 1, sizeof *target);
    if (!target)
        return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu rows", n);
    r->target = target;
    if (r->lookup_classes) {
        int32_t *label = reader_room(r, r->label, &r->label_cap, n + 1, sizeof *label);
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
    if (!r->x)
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
    if (r->x) {
        /* The row was added by add_row, so it is row n_rows - 1. */
        if (index > r->width) {
            r->recount = 1;
            return fail_at(r, column, DSC_ELIMIT, "index %u beyond the %zu counted", index,
                           r->width);
        }
        r->x[(r->n_rows - 1) * r->width + index - 1] = value;
    } else {
        uint32_t *col = reader_room(r, r->col, &r->col_cap, nnz + 1, sizeof *col);
        if (col)
            r->col = col;
        float *val = col ? reader_room(r, r->val, &r->val_cap, nnz + 1, sizeof *val) : NULL;
        if (!val)
            return fail_at(r, column, DSC_ENOMEM, "out of memory after %zu non-zero values",
                           nnz);
        r->val = val;
        r->col[nnz] = index - 1;
        r->val[nnz] = value;
    }

    r->nnz++;
    if (!r->x)
        r->row_ptr[r->n_rows] = r->nnz;
    if (value == 0.0f)
        r->zero_value = 1;
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
 * then the row is not stored and parse_line reads the line afresh and words any error. A
 * negative code when memory runs out, with parse_line's message (the room is made in the same
 * order). dense (a constant, so that each storage gets its own loop) says whether the values
 * go to the row of r->x; a line given up half way may have written some of them there, which
 * parse_line then writes again with the same values, or the read fails.
 */
static inline int parse_line_fast_into(libsvm_reader *r, const char *text, size_t len,
                                       const int dense)
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
    if (dense && r->width < limit)
        limit = r->width; /* parse_line words the error, or finds the count wrong */
    float *row = dense ? r->x + r->n_rows * r->width : NULL;
    uint32_t previous = 0, max_index = r->max_index;
    size_t nnz = (size_t)r->nnz;
    int zero_value = 0;
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
        if (dense) {
            row[index - 1] = value;
        } else {
            if (nnz + 1 > r->col_cap || nnz + 1 > r->val_cap) {
                size_t column = (size_t)(token - text) + 1;
                uint32_t *col = reader_room(r, r->col, &r->col_cap, nnz + 1, sizeof *col);
                if (col)
                    r->col = col;
                float *val =
                    col ? reader_room(r, r->val, &r->val_cap, nnz + 1, sizeof *val) : NULL;
                if (!val)
                    return fail_at(r, column, DSC_ENOMEM,
                                   "out of memory after %zu non-zero values", nnz);
                r->val = val;
            }
            r->col[nnz] = (uint32_t)index - 1;
            r->val[nnz] = value;
        }
        zero_value |= value == 0.0f;
        nnz++;
        previous = (uint32_t)index;
        if (previous > max_index)
            max_index = previous;
    }

    r->nnz = nnz;
    r->max_index = max_index;
    r->zero_value |= zero_value;
    add_row_now(r, label);
    r->n_fast++;
    return 1;
}

/* One line: the fast scan when it can, else parse_line. */
static int parse_any_line(libsvm_reader *r, const char *text, size_t len)
{
    int rc = 0;

    if (r->fast)
        rc = r->x ? parse_line_fast_into(r, text, len, 1) : parse_line_fast_into(r, text, len, 0);
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

/* Free the CSR arrays of r. */
static void free_csr(libsvm_reader *r)
{
    dsc__free(r->row_ptr);
    dsc__free(r->col);
    dsc__free(r->val);
    r->row_ptr = NULL;
    r->col = NULL;
    r->val = NULL;
}

/* The arrays of the rows read so far (the caches of known classes stay). */
static void free_rows(libsvm_reader *r)
{
    free_csr(r);
    dsc__free(r->x);
    dsc__free(r->target);
    dsc__free(r->label);
    r->x = NULL;
    r->target = NULL;
    r->label = NULL;
    r->row_ptr_cap = r->col_cap = r->val_cap = r->target_cap = r->label_cap = 0;
}

static void reader_free(libsvm_reader *r)
{
    free_rows(r);
    dsc__free(r->known_value);
    dsc__free(r->known_class);
}

/* ---- Dense or CSR storage ---------------------------------------------------------------- */

/* Test hooks (libsvm.h): dense storage allowed, the mapped path allowed, its piece size. */
static atomic_int dense_allowed = 1;
static atomic_int map_allowed = 1;
static atomic_size_t piece_bytes = LIBSVM_PIECE;
static atomic_size_t mapped_reads, recounted_reads;

void dsc__libsvm_allow_dense(int allow)
{
    atomic_store(&dense_allowed, allow != 0);
}

void dsc__libsvm_allow_map(int allow)
{
    atomic_store(&map_allowed, allow != 0);
}

void dsc__libsvm_set_piece_bytes(size_t bytes)
{
    atomic_store(&piece_bytes, bytes ? bytes : LIBSVM_PIECE);
}

void dsc__libsvm_path_counts(size_t *mapped, size_t *recounted)
{
    *mapped = atomic_load(&mapped_reads);
    *recounted = atomic_load(&recounted_reads);
}

/*
 * Whether the encoding a file is read against lets its rows be stored dense: one learned
 * from a LIBSVM file (so that dsc_prep_fit treats the table as sparse, see below) that does
 * not centre, so that dsc_prep_apply changes a dense value exactly as it changes the same
 * value in CSR (it divides by the scale and never subtracts a mean from sparse data).
 */
static bool encoding_allows_dense(const libsvm_reader *r)
{
    const dsc_prep *prep = r->prep;

    if (r->learning)
        return true;
    if (prep->format != DSC_FORMAT_LIBSVM)
        return false;
    for (size_t j = 0; prep->standardized && prep->mean && j < prep->n_features; j++) {
        if (prep->mean[j] != 0.0f)
            return false;
    }
    return true;
}

/*
 * The rule for storing rows dense: a dense matrix of n_rows x width floats (4 bytes a cell)
 * must take no more memory than the CSR arrays (8 bytes an entry and 8 a row offset), that
 * is, at least about half the cells are named by the file. And no stored value may be zero
 * (zero_value, learned while parsing): then the non-zeros of the matrix are exactly the
 * file's entries, in the same order, so that whatever treats a dense table read from LIBSVM
 * as the sparse rows it holds (dsc_prep_fit fits it as sparse data, dsc_prep_apply never
 * centres it) gives the same bits as with CSR. Files that write their zeros out stay CSR.
 */
static bool store_dense(const libsvm_reader *r, size_t width)
{
    if (!atomic_load(&dense_allowed) || r->zero_value || r->n_rows == 0 || width == 0 ||
        width > LIBSVM_MAX_INDEX || r->n_rows >= LIBSVM_MAX_ROWS || !encoding_allows_dense(r))
        return false;

    /* n_rows < 2^32 and width < 2^31: the product and the sum fit in 64 bits. */
    uint64_t cells = (uint64_t)r->n_rows * width;
    return cells <= 2 * (r->nnz + r->n_rows + 1);
}

/* Move the CSR rows of the stream path into a dense matrix of width floats a row. */
static int csr_to_dense(libsvm_reader *r, size_t width)
{
    float *x = dsc__calloc(r->n_rows, dsc__mul(width, sizeof(float)));
    if (!x)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu rows of %zu features",
                         r->path, r->n_rows, width);

    for (size_t i = 0; i < r->n_rows; i++) {
        float *row = x + i * width;
        for (uint64_t e = r->row_ptr[i]; e < r->row_ptr[i + 1]; e++)
            row[r->col[e]] = r->val[e];
    }
    free_csr(r);
    r->x = x;
    r->width = width;
    return DSC_OK;
}

/* The stream path: the file read block by block on one thread, into arrays that grow. */
static int read_stream(libsvm_reader *r, FILE *in)
{
    /* row_ptr[0] = 0 exists even for an empty file; col and val are never NULL. */
    r->row_ptr = make_room(NULL, &r->row_ptr_cap, 1, sizeof *r->row_ptr);
    r->col = make_room(NULL, &r->col_cap, 1, sizeof *r->col);
    r->val = make_room(NULL, &r->val_cap, 1, sizeof *r->val);
    if (!r->row_ptr || !r->col || !r->val)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", r->path);
    r->row_ptr[0] = 0;
    return parse_stream(r, in);
}

/* ---- The mapped path: a regular file counted, then parsed, piece by piece ----------------- */

/*
 * A regular file is mapped and cut into pieces of whole lines: piece k holds the lines that
 * start in bytes [k P, (k + 1) P) for a fixed P (piece_bytes), so that the pieces depend on
 * the file alone, never on the number of threads. A first pass counts each piece's lines,
 * rows, entries and largest index; their running sums tell every piece where its rows,
 * entries and first line go, the storage is chosen, and the table's arrays are allocated
 * once, at their final size. A second pass parses each piece with the line parser above,
 * straight into those arrays, from a copy of the reader set to the piece's first line, row
 * and entry: what it stores and every message it writes are the stream path's. Pieces run
 * on dsc_threads() threads in any order; each only writes its own rows.
 *
 * The first piece (in file order) that fails gives the error, with the message its thread
 * wrote. A count that turns out wrong (a line the count misread; never for a well-formed
 * line) sends the whole file to the stream path, as does anything the mapping cannot do.
 * Pages of the file are released once a piece is done, so that the process never holds
 * more than a few pieces of the text besides the table (the page cache keeps the file).
 */
typedef struct piece {
    size_t start, end;       /* its bytes: whole lines, the last one ended by '\n' or EOF */
    size_t lines;            /* counted: its lines (what the parser numbers) */
    size_t rows;             /* counted: lines with a label */
    uint64_t nnz;            /* counted: INDEX:VALUE tokens (':' bytes less qid tokens) */
    uint64_t max_index;      /* counted: the largest last index of its lines */
    size_t first_line;       /* lines, rows and entries before the piece */
    size_t first_row;
    uint64_t first_nnz;
} piece;

/* What a thread keeps while it parses pieces (it parses several, in any order). */
typedef struct piece_worker {
    libsvm_reader r;         /* a copy of the reader, set to each piece in turn */
    size_t failed;           /* the first piece (in file order) that failed here, or SIZE_MAX */
    int code;                /* its code, 0 when it was a wrong count */
    char message[512];       /* its message, as dsc_last_error() gave it in this thread */
    size_t n_fast;
    int all_whole, zero_value;
    uint32_t max_index;
} piece_worker;

typedef struct mapped_job {
    const char *text;        /* the mapped file */
    size_t size, page;
    piece *pieces;
    size_t n_pieces;
    int team;                /* threads */
    atomic_size_t first_failed; /* the first failed piece known so far (later ones are skipped) */
} mapped_job;

/* Let the pages of text[start, end) go from the process (the file stays in the page cache). */
static void release_pages(const mapped_job *job, size_t start, size_t end)
{
#if HAVE_MMAP && defined(MADV_DONTNEED)
    uintptr_t begin = (uintptr_t)(job->text + start) & ~(uintptr_t)(job->page - 1);
    uintptr_t finish = ((uintptr_t)(job->text + end) + job->page - 1) & ~(uintptr_t)(job->page - 1);
    if (finish > begin)
        (void)madvise((void *)begin, (size_t)(finish - begin), MADV_DONTNEED);
#else
    (void)job;
    (void)start;
    (void)end;
#endif
}

/* ':' bytes of text[0..len): the entries of a well-formed line, with its qid tokens. */
static uint64_t count_colons(const char *text, size_t len)
{
    uint64_t total = 0;

    /* Byte counters in blocks of 255, so that the compiler can add 16 or 32 at a time. */
    while (len > 0) {
        size_t block = len < 255 ? len : 255;
        unsigned char count = 0;
        for (size_t i = 0; i < block; i++)
            count += (unsigned char)(text[i] == ':');
        total += count;
        text += block;
        len -= block;
    }
    return total;
}

/* The qid tokens of a line's content text[0..len) after its label. */
static uint64_t count_qids(const char *text, size_t len)
{
    uint64_t count = 0;
    const char *p = text, *end = text + len;

    while ((p = memchr(p, 'q', (size_t)(end - p))) != NULL) {
        if (p > text && is_space(p[-1]) && end - p >= 4 && memcmp(p, "qid:", 4) == 0)
            count++;
        p++;
    }
    return count;
}

/*
 * The index of the last INDEX:VALUE token of a line's content [label, end), where label is
 * its first byte that is not a space: the line's largest index when it is well formed (they
 * rise). 0 when it has none; a misread of a malformed line is caught by the parse pass.
 */
static uint64_t last_index(const char *label, const char *end)
{
    const char *p = end;

    for (;;) {
        while (p > label && is_space(p[-1]))
            p--;
        const char *token_end = p;
        while (p > label && !is_space(p[-1]))
            p--;
        if (p == label)
            return 0;
        if (token_end - p >= 4 && memcmp(p, "qid:", 4) == 0)
            continue;
        uint64_t index = 0;
        for (const char *d = p; d < token_end && (unsigned char)(*d - '0') < 10; d++) {
            index = index * 10 + (uint64_t)(*d - '0');
            if (index > LIBSVM_MAX_INDEX)
                return LIBSVM_MAX_INDEX + 1ull;
        }
        return index;
    }
}

/* The count pass over one piece (the parse pass numbers the same lines). */
static void count_piece(const mapped_job *job, piece *pc)
{
    const char *p = job->text + pc->start, *stop = job->text + pc->end;
    size_t lines = 0, rows = 0;
    uint64_t nnz = 0, max_index = 0;

    while (p < stop) {
        const char *newline = memchr(p, '\n', (size_t)(stop - p));
        const char *line_end = newline ? newline : stop;
        const char *comment = memchr(p, '#', (size_t)(line_end - p));
        const char *end = comment ? comment : line_end;

        lines++;
        while (p < end && is_space(*p))
            p++;
        if (p < end) {
            rows++;
            nnz += count_colons(p, (size_t)(end - p));
            if (memchr(p, 'q', (size_t)(end - p)))
                nnz -= count_qids(p, (size_t)(end - p));
            uint64_t index = last_index(p, end);
            if (index > max_index)
                max_index = index;
        }
        p = newline ? newline + 1 : stop;
    }
    pc->lines = lines;
    pc->rows = rows;
    pc->nnz = nnz;
    pc->max_index = max_index;
}

/* Note that piece k failed in worker w (code 0: a wrong count), keeping the first one. */
static void piece_failed(mapped_job *job, piece_worker *w, size_t k, int code)
{
    if (k < w->failed) {
        w->failed = k;
        w->code = code;
        snprintf(w->message, sizeof w->message, "%s", code ? dsc_last_error() : "");
    }

    size_t first = atomic_load(&job->first_failed);
    while (k < first && !atomic_compare_exchange_weak(&job->first_failed, &first, k)) {
    }
}

/* The parse pass over piece k, with the worker's reader. */
static void parse_piece(mapped_job *job, piece_worker *w, size_t k)
{
    const piece *pc = &job->pieces[k];
    libsvm_reader *r = &w->r;

    /* The reader as the stream path would have it at the piece's first line. */
    r->line = pc->first_line;
    r->n_rows = pc->first_row;
    r->nnz = pc->first_nnz;
    r->max_index = 0;
    r->all_whole = 1;
    r->zero_value = 0;
    r->n_fast = 0;
    r->recount = 0;
    r->row_ptr_cap = pc->first_row + pc->rows + 1;
    r->target_cap = r->label_cap = pc->first_row + pc->rows;
    r->col_cap = r->val_cap = (size_t)(pc->first_nnz + pc->nnz);
    if (r->x)
        memset(r->x + pc->first_row * r->width, 0, pc->rows * r->width * sizeof(float));

    const char *p = job->text + pc->start, *stop = job->text + pc->end;
    int rc = DSC_OK;
    while (rc >= 0 && p < stop) {
        const char *newline = memchr(p, '\n', (size_t)(stop - p));
        const char *line_end = newline ? newline : stop;
        r->line++;
        rc = parse_any_line(r, p, (size_t)(line_end - p));
        p = newline ? newline + 1 : stop;
    }
    release_pages(job, pc->start, pc->end);

    if (rc < 0) {
        piece_failed(job, w, k, r->recount ? 0 : rc);
        return;
    }
    if (r->line != pc->first_line + pc->lines || r->n_rows != pc->first_row + pc->rows ||
        r->nnz != pc->first_nnz + pc->nnz) {
        piece_failed(job, w, k, 0);
        return;
    }
    w->n_fast += r->n_fast;
    w->all_whole &= r->all_whole;
    w->zero_value |= r->zero_value;
    if (r->max_index > w->max_index)
        w->max_index = r->max_index;
}

/* The number of the calling thread in the team. */
static int thread_number(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The count pass over every piece. */
static void count_pieces(mapped_job *job)
{
    int team = job->team;
    (void)team;

#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (team > 1)
#endif
    for (size_t k = 0; k < job->n_pieces; k++) {
        count_piece(job, &job->pieces[k]);
        release_pages(job, job->pieces[k].start, job->pieces[k].end);
    }
}

/* The parse pass over every piece, each worker w[t] serving thread t. */
static void parse_pieces(mapped_job *job, piece_worker *workers)
{
    int team = job->team;
    (void)team;

    atomic_store(&job->first_failed, SIZE_MAX);
    for (int t = 0; t < job->team; t++) {
        workers[t].failed = SIZE_MAX;
        workers[t].n_fast = 0;
        workers[t].all_whole = 1;
        workers[t].zero_value = 0;
        workers[t].max_index = 0;
    }

#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (team > 1)
#endif
    for (size_t k = 0; k < job->n_pieces; k++) {
        if (k < atomic_load(&job->first_failed))
            parse_piece(job, &workers[thread_number()], k);
    }
}

/*
 * Cut the file into pieces and count them, on the main thread as to the cuts (a line longer
 * than a piece then costs one scan, not one per piece it crosses), in parallel as to the
 * counts; then set each piece's first line, row and entry. Returns 0, DSC_ENOMEM (message
 * written), or 1 when the totals reach a limit of the reader, which the stream path words.
 */
static int cut_and_count(libsvm_reader *r, mapped_job *job)
{
    size_t step = atomic_load(&piece_bytes);

    job->n_pieces = job->size / step + (job->size % step != 0);
    job->pieces = dsc__calloc(job->n_pieces, sizeof(piece));
    if (!job->pieces)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu pieces", r->path,
                         job->n_pieces);

    /* Piece k ends where the first line starting at or after (k + 1) P starts. */
    size_t start = 0;
    for (size_t k = 0; k < job->n_pieces; k++) {
        size_t end = job->size, at = (k + 1) * step;
        if (k + 1 < job->n_pieces) {
            if (at <= start) {
                end = start; /* inside a long line that an earlier piece holds */
            } else if (job->text[at - 1] == '\n') {
                end = at;
            } else {
                const char *newline = memchr(job->text + at, '\n', job->size - at);
                end = newline ? (size_t)(newline - job->text) + 1 : job->size;
            }
        }
        job->pieces[k].start = start;
        job->pieces[k].end = end;
        /*
         * Looking at the cut faults in the pages around it, and a kernel may map a whole
         * large page-cache folio on such a fault: without this, the cuts alone held most of
         * a 1 GB file in the process's memory at once.
         */
        release_pages(job, start, end);
        start = end;
    }

    int threads = dsc_threads();
    job->team = threads < 1 ? 1 : ((size_t)threads > job->n_pieces ? (int)job->n_pieces : threads);
    count_pieces(job);

    size_t lines = 0, rows = 0;
    uint64_t nnz = 0;
    for (size_t k = 0; k < job->n_pieces; k++) {
        piece *pc = &job->pieces[k];
        pc->first_line = lines;
        pc->first_row = rows;
        pc->first_nnz = nnz;
        lines += pc->lines;
        rows += pc->rows;
        nnz += pc->nnz;
        if (rows >= LIBSVM_MAX_ROWS || nnz >= LIBSVM_MAX_NNZ || (uint64_t)(size_t)nnz != nnz)
            return 1;
    }
    return 0;
}

/*
 * Allocate the table's arrays for the counted rows (dense or CSR) into r and aim every
 * worker's reader at them. The stored values are r->nnz (the count's).
 */
static int allocate_rows(libsvm_reader *r, int dense, size_t width)
{
    size_t n = r->n_rows;

    r->target = dsc__alloc(dsc__mul(n, sizeof(float)));
    if (r->target && r->lookup_classes)
        r->label = dsc__alloc(dsc__mul(n, sizeof(int32_t)));
    if (r->target && (r->label || !r->lookup_classes)) {
        if (dense) {
            r->x = dsc__alloc(dsc__mul(n, dsc__mul(width, sizeof(float))));
            r->width = width;
        } else {
            r->row_ptr = dsc__alloc(dsc__mul(n + 1, sizeof(uint64_t)));
            r->col = dsc__alloc(dsc__mul((size_t)r->nnz, sizeof(uint32_t)));
            r->val = dsc__alloc(dsc__mul((size_t)r->nnz, sizeof(float)));
            if (r->row_ptr)
                r->row_ptr[0] = 0;
        }
    }
    if (!r->target || (r->lookup_classes && !r->label) ||
        (dense ? !r->x : !r->row_ptr || !r->col || !r->val)) {
        free_rows(r);
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu rows and %llu values", r->path,
                         n, (unsigned long long)r->nnz);
    }
    return DSC_OK;
}

/* Workers for the team: copies of r, with their own caches of known classes. */
static piece_worker *new_workers(const libsvm_reader *r, int team)
{
    piece_worker *workers = dsc__calloc((size_t)team, sizeof(piece_worker));
    int ok = workers != NULL;

    for (int t = 0; ok && t < team; t++) {
        workers[t].r = *r;
        workers[t].r.known_value = NULL;
        workers[t].r.known_class = NULL;
        workers[t].r.n_known = 0;
        if (r->lookup_classes) {
            workers[t].r.known_value = dsc__alloc(dsc__mul(r->prep->n_classes, sizeof(float)));
            workers[t].r.known_class =
                dsc__alloc(dsc__mul(r->prep->n_classes, sizeof(int32_t)));
            ok = workers[t].r.known_value && workers[t].r.known_class;
        }
    }
    if (!ok && workers) {
        for (int t = 0; t < team; t++) {
            dsc__free(workers[t].r.known_value);
            dsc__free(workers[t].r.known_class);
        }
        dsc__free(workers);
        workers = NULL;
    }
    return workers;
}

static void free_workers(piece_worker *workers, int team)
{
    for (int t = 0; workers && t < team; t++) {
        dsc__free(workers[t].r.known_value);
        dsc__free(workers[t].r.known_class);
    }
    dsc__free(workers);
}

/*
 * Parse the counted pieces into arrays allocated for them, dense when store_dense allows it
 * on the counts; if a stored value then proves to be zero, again into CSR. Returns 0, a
 * negative code with the message of the first piece that failed, or 1 for a wrong count.
 */
static int parse_counted(libsvm_reader *r, mapped_job *job, size_t width)
{
    int dense = store_dense(r, width);

    for (;;) {
        int rc = allocate_rows(r, dense, width);
        if (rc < 0)
            return rc;
        piece_worker *workers = new_workers(r, job->team);
        if (!workers)
            return dsc__fail(DSC_ENOMEM, "%s: out of memory for %d threads", r->path,
                             job->team);
        for (int t = 0; t < job->team; t++)
            workers[t].r.fixed = 1;
        parse_pieces(job, workers);

        /* The first failure in file order, and what the pieces found. */
        piece_worker *first = NULL;
        uint32_t max_index = 0;
        int all_whole = 1, zero_value = 0;
        size_t n_fast = 0;
        for (int t = 0; t < job->team; t++) {
            piece_worker *w = &workers[t];
            if (w->failed != SIZE_MAX && (!first || w->failed < first->failed))
                first = w;
            if (w->max_index > max_index)
                max_index = w->max_index;
            all_whole &= w->all_whole;
            zero_value |= w->zero_value;
            n_fast += w->n_fast;
        }
        if (first) {
            rc = first->code ? dsc__fail(first->code, "%s", first->message) : 1;
        } else if (r->learning && max_index != width) {
            rc = 1; /* the count misread a largest index */
        }
        free_workers(workers, job->team);
        if (rc != 0)
            return rc;

        r->max_index = max_index;
        r->all_whole = all_whole;
        r->zero_value = zero_value;
        r->n_fast = n_fast;
        r->line = job->n_pieces ? job->pieces[job->n_pieces - 1].first_line +
                                      job->pieces[job->n_pieces - 1].lines
                                : 0;
        if (!dense || !zero_value)
            return DSC_OK;
        free_rows(r);
        r->zero_value = 0;
        dense = 0;
    }
}

/*
 * Read a regular file through the mapped path. *done is 0 when the file must go to the
 * stream path instead (not a regular file, mapping failed, a wrong count); then nothing is
 * kept. Otherwise the rows are in r, or the return is the error.
 */
static int read_mapped(libsvm_reader *r, FILE *in, int *done)
{
    *done = 0;
#if HAVE_MMAP
    struct stat st;
    int fd = fileno(in);

    if (!atomic_load(&map_allowed) || in == stdin || fd < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX ||
        ftello(in) != 0)
        return DSC_OK;

    mapped_job job;
    memset(&job, 0, sizeof job);
    atomic_init(&job.first_failed, SIZE_MAX);
    job.size = (size_t)st.st_size;
    long page = sysconf(_SC_PAGESIZE);
    job.page = page > 0 ? (size_t)page : 4096;
    void *text = mmap(NULL, job.size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (text == MAP_FAILED)
        return DSC_OK;
    job.text = text;

    int rc = cut_and_count(r, &job);
    if (rc == 0) {
        size_t width = LIBSVM_MAX_INDEX + (size_t)1;
        r->n_rows = job.n_pieces ? job.pieces[job.n_pieces - 1].first_row +
                                       job.pieces[job.n_pieces - 1].rows
                                 : 0;
        r->nnz = job.n_pieces ? job.pieces[job.n_pieces - 1].first_nnz +
                                    job.pieces[job.n_pieces - 1].nnz
                              : 0;
        uint64_t max_index = 0;
        for (size_t k = 0; k < job.n_pieces; k++) {
            if (job.pieces[k].max_index > max_index)
                max_index = job.pieces[k].max_index;
        }
        if (!r->learning)
            width = r->prep->n_features;
        else if (max_index <= LIBSVM_MAX_INDEX)
            width = (size_t)max_index;

        if (r->n_rows == 0)
            rc = DSC_OK; /* only blank and comment lines: "no data rows" */
        else if (width > LIBSVM_MAX_INDEX)
            rc = 1; /* a malformed index: the stream path words it */
        else
            rc = parse_counted(r, &job, width);
    }
    munmap(text, job.size);
    dsc__free(job.pieces);

    if (rc == 1) {
        free_rows(r);
        r->n_rows = 0;
        r->nnz = 0;
        r->max_index = 0;
        r->all_whole = 1;
        r->zero_value = 0;
        r->n_fast = 0;
        r->line = 0;
        r->n_known = 0;
        atomic_fetch_add(&recounted_reads, 1);
        return DSC_OK;
    }
    *done = 1;
    if (rc >= 0)
        atomic_fetch_add(&mapped_reads, 1);
    return rc;
#else
    (void)r;
    (void)in;
    return DSC_OK;
#endif
}

/* ---- The reader behind dsc_table_read ----------------------------------------------------- */

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
 * Read a LIBSVM / svmlight file from in (path names it in messages) into table: features
 * dense or CSR (store_dense), and classes or regression targets. With prep given the rows
 * are checked against it. A regular file takes the mapped path, anything else (standard
 * input, a pipe) the stream path; both give the same table and the same messages.
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

    int mapped = 0;
    rc = read_mapped(&r, in, &mapped);
    if (rc >= 0 && !mapped)
        rc = read_stream(&r, in);
    dsc__add_fast_text_rows(r.n_fast);
    if (rc >= 0 && r.n_rows == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no data rows", r.path);
    if (rc >= 0 && r.learning && r.max_index == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no features: every row is empty", r.path);
    if (rc >= 0 && r.learning)
        r.prep->n_features = r.max_index;
    if (rc >= 0 && !r.x && store_dense(&r, r.prep->n_features))
        rc = csr_to_dense(&r, r.prep->n_features);
    if (rc >= 0)
        rc = finish_targets(&r, table, opts);
    if (rc < 0) {
        reader_free(&r);
        return rc;
    }

    table->x = r.x;
    table->row_ptr = r.row_ptr;
    table->col = r.col;
    table->val = r.val;
    r.x = NULL;
    r.row_ptr = NULL;
    r.col = NULL;
    r.val = NULL;
    reader_free(&r);

    memset(&table->data, 0, sizeof table->data);
    table->data.n_rows = r.n_rows;
    table->data.n_features = table->prep->n_features;
    table->data.x = table->x;
    table->data.row_ptr = table->row_ptr;
    table->data.col = table->col;
    table->data.val = table->val;
    table->data.label = table->label;
    table->data.y = table->y;
    table->data.n_targets = table->y ? 1 : 0;
    return DSC_OK;
}
