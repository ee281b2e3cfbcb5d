/*
 * prep.c - the encoding of a data file (columns, one-hot levels, classes), the imputation and
 * standardisation fitted on training rows, and locale-independent number parsing.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The most classes a prep holds; one more is DSC_ELIMIT. */
#define MAX_CLASSES 65536

/* Significant digits kept when parsing a number; the rest only decide a sticky last digit. */
#define MAX_SIG_DIGITS 800

/* ---- Numbers ----------------------------------------------------------------------------- */

const double dsc__pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal number as its significant digits and a power of ten: digits x 10^exp10. */
typedef struct decimal {
    bool negative;
    size_t n_digits;
    int64_t exp10;
    uint64_t mantissa; /* the digits as an integer when they fit (exact_mantissa) */
    bool exact_mantissa;
    char digits[MAX_SIG_DIGITS + 2];
} decimal;

/*
 * Parse text[0..len) as [+-]digits[.digits][(e|E)[+-]digits] into its significant digits
 * (at most MAX_SIG_DIGITS, leading zeros dropped, a final '1' standing for any non-zero digits
 * cut off) and a decimal exponent. Nothing in it depends on the locale. Returns 0, or
 * DSC_EFORMAT when the text is not such a number.
 */
static int parse_decimal(const char *text, size_t len, decimal *d)
{
    const char *p = text, *end = text + len;
    size_t seen_digits = 0;
    bool sticky = false;

    d->negative = false;
    d->n_digits = 0;
    d->exp10 = 0;
    d->mantissa = 0;
    d->exact_mantissa = true;
    if (p < end && (*p == '+' || *p == '-')) {
        d->negative = *p == '-';
        p++;
    }

    /* Integer part, then fraction: every kept fraction digit lowers the exponent by one. */
    for (int part = 0; part < 2; part++) {
        if (part == 1) {
            if (p >= end || *p != '.')
                break;
            p++;
        }
        for (; p < end && is_digit(*p); p++) {
            seen_digits++;
            if (d->n_digits == 0 && *p == '0') {
                if (part == 1)
                    d->exp10--;
                continue;
            }
            if (d->n_digits < MAX_SIG_DIGITS) {
                d->digits[d->n_digits++] = *p;
                if (d->mantissa > (UINT64_MAX - 9) / 10)
                    d->exact_mantissa = false;
                else
                    d->mantissa = d->mantissa * 10 + (uint64_t)(*p - '0');
                if (part == 1)
                    d->exp10--;
            } else {
                sticky |= *p != '0';
                if (part == 0)
                    d->exp10++;
            }
        }
    }
    if (seen_digits == 0)
        return DSC_EFORMAT;

    /* Exponent, clamped far beyond any float so that it cannot overflow. */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool negative_exp = false;
        if (p < end && (*p == '+' || *p == '-')) {
            negative_exp = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p))
            return DSC_EFORMAT;
        int64_t e = 0;
        for (; p < end && is_digit(*p); p++) {
            if (e < 1000000000)
                e = e * 10 + (*p - '0');
        }
        d->exp10 += negative_exp ? -e : e;
    }
    if (p != end)
        return DSC_EFORMAT;

    if (sticky) {
        d->digits[d->n_digits++] = '1';
        d->exp10--;
        d->exact_mantissa = false;
    }
    d->digits[d->n_digits] = '\0';
    return 0;
}

/*
 * The value of a parsed decimal rounded once, correctly, to float (as_float) or double. The
 * common short numbers take Clinger's fast path in double; the rest go through strtof or
 * strtod on text without a radix character, which reads the same in every locale.
 */
static int decimal_value(const decimal *d, bool as_float, double *out)
{
    if (d->n_digits == 0) {
        *out = d->negative ? -0.0 : 0.0;
        return 0;
    }

    if (d->exact_mantissa && d->mantissa <= (UINT64_C(1) << 53) && d->exp10 >= -22 &&
        d->exp10 <= 22 && FLT_EVAL_METHOD == 0) {
        double v = (double)d->mantissa;
        v = d->exp10 < 0 ? v / dsc__pow10_exact[-d->exp10] : v * dsc__pow10_exact[d->exp10];
        /* v is the correctly rounded double; rounding it on to float is correct too unless v
         * lies exactly halfway between two floats. Such values fall through to strtof. */
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        if (!as_float || (bits & 0x1FFFFFFFu) != 0x10000000u) {
            if (as_float)
                v = (double)(float)v;
            *out = d->negative ? -v : v;
            return 0;
        }
    }

    char text[MAX_SIG_DIGITS + 40];
    int n = snprintf(text, sizeof text, "%s%se%lld", d->negative ? "-" : "", d->digits,
                     (long long)d->exp10);
    if (n < 0 || (size_t)n >= sizeof text)
        return DSC_EFORMAT;
    if (as_float) {
        float f = strtof(text, NULL);
        if (isinf(f))
            return DSC_ELIMIT;
        *out = f;
    } else {
        double v = strtod(text, NULL);
        if (isinf(v))
            return DSC_ELIMIT;
        *out = v;
    }
    return 0;
}

/*
 * Parse a number the same in every locale. Records no message, since readers try every cell
 * as a number first: the caller writes one with the file, line and column. The usual short
 * numbers take the fast path (internal.h), the rest the full parse.
 */
int dsc__parse_float(const char *text, size_t len, float *out)
{
    float v;

    if (!text || !out)
        return DSC_EINVAL;
    if (dsc__scan_float(text, text + len, &v) == text + len) {
        *out = v;
        return 0;
    }
    return dsc__parse_float_slow(text, len, out);
}

/* The full parse: the significant digits, then one correct rounding to float. */
int dsc__parse_float_slow(const char *text, size_t len, float *out)
{
    decimal d;
    double v;
    int rc;

    if (!text || !out)
        return DSC_EINVAL;
    rc = parse_decimal(text, len, &d);
    if (rc == 0)
        rc = decimal_value(&d, true, &v);
    if (rc == 0)
        *out = (float)v;
    return rc;
}

/* The same parse rounded to double, for ordering numeric class labels. */
static int parse_double(const char *text, size_t len, double *out)
{
    decimal d;
    int rc = parse_decimal(text, len, &d);

    return rc ? rc : decimal_value(&d, false, out);
}

/* ---- The prep itself --------------------------------------------------------------------- */

static char *copy_text(const char *text, size_t len)
{
    char *s = dsc__alloc(len + 1);

    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

dsc_prep *dsc__prep_new(void)
{
    dsc_prep *prep = dsc__calloc(1, sizeof *prep);

    if (!prep)
        return NULL;
    prep->format = DSC_FORMAT_AUTO;
    prep->missing = DSC_MISSING_ERROR;
    return prep;
}

static void free_strings(char **strings, size_t n)
{
    if (!strings)
        return;
    for (size_t i = 0; i < n; i++)
        dsc__free(strings[i]);
    dsc__free(strings);
}

/* Every string and array of a prep is a separate dsc__alloc block, which this frees. */
void dsc_prep_free(dsc_prep *prep)
{
    if (!prep)
        return;
    if (prep->columns) {
        for (size_t i = 0; i < prep->n_columns; i++) {
            dsc__free(prep->columns[i].name);
            free_strings(prep->columns[i].levels, prep->columns[i].n_levels);
        }
        dsc__free(prep->columns);
    }
    dsc__free(prep->target_name);
    free_strings(prep->classes, prep->n_classes);
    dsc__free(prep->impute);
    dsc__free(prep->mean);
    dsc__free(prep->scale);
    dsc__free(prep);
}

/* A copy of strings[0..n) in dst (n entries, zeroed on entry). false when out of memory. */
static bool copy_strings(char **dst, char *const *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (src[i] && !(dst[i] = copy_text(src[i], strlen(src[i]))))
            return false;
    }
    return true;
}

static bool copy_floats(float **dst, const float *src, size_t n)
{
    if (!src)
        return true;
    *dst = dsc__alloc(dsc__mul(n, sizeof(float)));
    if (!*dst)
        return false;
    memcpy(*dst, src, n * sizeof(float));
    return true;
}

dsc_prep *dsc_prep_copy(const dsc_prep *prep, int *err)
{
    if (!prep) {
        dsc__fail(DSC_EINVAL, "dsc_prep_copy: prep is NULL");
        return dsc__fail_null(err, DSC_EINVAL);
    }
    dsc_prep *copy = dsc__prep_new();
    if (!copy)
        goto out_of_memory;
    *copy = *prep;
    copy->columns = NULL;
    copy->target_name = NULL;
    copy->classes = NULL;
    copy->impute = copy->mean = copy->scale = NULL;
    copy->n_columns = 0;
    copy->n_classes = 0;

    if (prep->n_columns) {
        copy->columns = dsc__calloc(prep->n_columns, sizeof *copy->columns);
        if (!copy->columns)
            goto out_of_memory;
        copy->n_columns = prep->n_columns;
        for (size_t i = 0; i < prep->n_columns; i++) {
            const dsc_column *src = &prep->columns[i];
            dsc_column *dst = &copy->columns[i];
            dst->categorical = src->categorical;
            dst->first_feature = src->first_feature;
            if (src->name && !(dst->name = copy_text(src->name, strlen(src->name))))
                goto out_of_memory;
            if (src->n_levels) {
                dst->levels = dsc__calloc(src->n_levels, sizeof(char *));
                if (!dst->levels)
                    goto out_of_memory;
                dst->n_levels = src->n_levels;
                if (!copy_strings(dst->levels, src->levels, src->n_levels))
                    goto out_of_memory;
            }
        }
    }
    if (prep->target_name &&
        !(copy->target_name = copy_text(prep->target_name, strlen(prep->target_name))))
        goto out_of_memory;
    if (prep->n_classes) {
        copy->classes = dsc__calloc(prep->n_classes, sizeof(char *));
        if (!copy->classes)
            goto out_of_memory;
        copy->n_classes = prep->n_classes;
        if (!copy_strings(copy->classes, prep->classes, prep->n_classes))
            goto out_of_memory;
    }
    if (!copy_floats(&copy->impute, prep->impute, prep->n_features) ||
        !copy_floats(&copy->mean, prep->mean, prep->n_features) ||
        !copy_floats(&copy->scale, prep->scale, prep->n_features))
        goto out_of_memory;
    return copy;

out_of_memory:
    dsc_prep_free(copy);
    dsc__fail(DSC_ENOMEM, "dsc_prep_copy: out of memory");
    return dsc__fail_null(err, DSC_ENOMEM);
}

dsc_format dsc_prep_format(const dsc_prep *prep)
{
    return prep ? prep->format : DSC_FORMAT_AUTO;
}

size_t dsc_prep_n_features(const dsc_prep *prep)
{
    return prep ? prep->n_features : 0;
}

size_t dsc_prep_n_classes(const dsc_prep *prep)
{
    return prep ? prep->n_classes : 0;
}

const char *dsc_prep_class_name(const dsc_prep *prep, size_t class_index)
{
    if (!prep || class_index >= prep->n_classes)
        return NULL;
    return prep->classes[class_index];
}

size_t dsc_prep_n_targets(const dsc_prep *prep)
{
    return prep ? prep->n_targets : 0;
}

const char *dsc_prep_target_name(const dsc_prep *prep)
{
    return prep ? prep->target_name : NULL;
}

/*
 * Find label text among the classes by exact bytes, adding it when learning. A linear search:
 * the readers that call it per row have few classes (the CSV reader keeps its own index).
 */
int dsc__prep_class(dsc_prep *prep, const char *text, size_t len, int learning)
{
    if (!prep || (!text && len))
        return dsc__fail(DSC_EINVAL, "dsc__prep_class: prep or text is NULL");
    for (size_t i = 0; i < prep->n_classes; i++) {
        const char *name = prep->classes[i];
        if (strncmp(name, text, len) == 0 && name[len] == '\0')
            return (int)i;
    }
    if (!learning) {
        int shown = len > 60 ? 60 : (int)len;
        return dsc__fail(DSC_EFORMAT, "class '%.*s%s' was not seen in training", shown, text,
                         len > 60 ? "..." : "");
    }
    if (prep->n_classes >= MAX_CLASSES)
        return dsc__fail(DSC_ELIMIT, "more than %d classes", MAX_CLASSES);

    /* The array is reallocated at each new class, so that a prep from any source (a model
     * file, a copy) can grow; the search above is linear anyway. */
    char **classes = dsc__alloc(dsc__mul(prep->n_classes + 1, sizeof(char *)));
    char *name = copy_text(text ? text : "", len);
    if (!classes || !name) {
        dsc__free(classes);
        dsc__free(name);
        return dsc__fail(DSC_ENOMEM, "out of memory adding class %zu", prep->n_classes + 1);
    }
    if (prep->n_classes)
        memcpy(classes, prep->classes, prep->n_classes * sizeof(char *));
    classes[prep->n_classes] = name;
    dsc__free(prep->classes);
    prep->classes = classes;
    return (int)prep->n_classes++;
}

typedef struct numeric_class {
    double value;
    size_t index; /* the class's position before sorting */
} numeric_class;

static int compare_numeric_class(const void *a, const void *b)
{
    const numeric_class *x = a, *y = b;

    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

int dsc__prep_sort_numeric_classes(dsc_prep *prep, int32_t *labels, size_t n)
{
    if (!prep || (n && !labels))
        return dsc__fail(DSC_EINVAL, "dsc__prep_sort_numeric_classes: prep or labels NULL");
    size_t k = prep->n_classes;
    if (k < 2)
        return 0;

    numeric_class *order = dsc__alloc(dsc__mul(k, sizeof *order));
    int32_t *new_index = dsc__alloc(dsc__mul(k, sizeof *new_index));
    char **sorted = dsc__alloc(dsc__mul(k, sizeof *sorted));
    int rc = 0;
    if (!order || !new_index || !sorted) {
        rc = dsc__fail(DSC_ENOMEM, "out of memory sorting %zu classes", k);
        goto done;
    }
    for (size_t i = 0; i < k; i++) {
        order[i].index = i;
        if (parse_double(prep->classes[i], strlen(prep->classes[i]), &order[i].value) != 0)
            goto done; /* a label that is not a number: keep the order of first appearance */
    }

    /* Ties ("1" and "1.0") keep their order of appearance through the index. */
    qsort(order, k, sizeof *order, compare_numeric_class);
    for (size_t i = 0; i < k; i++) {
        sorted[i] = prep->classes[order[i].index];
        new_index[order[i].index] = (int32_t)i;
    }
    for (size_t r = 0; r < n; r++) {
        if (labels[r] >= 0 && (size_t)labels[r] < k)
            labels[r] = new_index[labels[r]];
    }
    memcpy(prep->classes, sorted, k * sizeof(char *));

done:
    dsc__free(order);
    dsc__free(new_index);
    dsc__free(sorted);
    return rc;
}

/* ---- Fitting and applying the transform -------------------------------------------------- */

static int compare_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

/* The median of values[0..n) (sorted in place), the mean of the middle two for even n. */
static double median_of(float *values, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(values, n, sizeof *values, compare_float);
    if (n % 2)
        return values[n / 2];
    return 0.5 * ((double)values[n / 2 - 1] + (double)values[n / 2]);
}

/* The row index of the i-th fitted row. */
static size_t fit_row(const uint32_t *rows, size_t i)
{
    return rows ? rows[i] : i;
}

/*
 * Dense fit. Pass 1 sums and counts the present values of each feature, giving the
 * imputation means; medians gather each feature's present values in turn. Pass 2 takes the
 * mean and the population variance of the imputed values, as an imputer followed by a
 * scaler would see them.
 */
static int fit_dense(dsc_prep *prep, const dsc_data *data, const uint32_t *rows, size_t n,
                     bool impute, bool standardize)
{
    size_t k = data->n_features;
    double *sum = dsc__calloc(k, sizeof(double));
    double *m2 = dsc__calloc(k, sizeof(double));
    size_t *count = dsc__calloc(k, sizeof(size_t));
    float *column = NULL;
    int rc = 0;

    if (!sum || !m2 || !count) {
        rc = dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for %zu features", k);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = data->x + fit_row(rows, i) * k;
        for (size_t j = 0; j < k; j++) {
            if (!isnan(x[j])) {
                sum[j] += x[j];
                count[j]++;
            }
        }
    }

    if (impute) {
        if (prep->missing == DSC_MISSING_MEDIAN &&
            !(column = dsc__alloc(dsc__mul(n, sizeof(float))))) {
            rc = dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for %zu rows", n);
            goto done;
        }
        for (size_t j = 0; j < k; j++) {
            double value = 0.0; /* a feature missing in every fitted row imputes 0 */
            if (prep->missing == DSC_MISSING_MEDIAN) {
                size_t m = 0;
                for (size_t i = 0; i < n; i++) {
                    float v = data->x[fit_row(rows, i) * k + j];
                    if (!isnan(v))
                        column[m++] = v;
                }
                value = median_of(column, m);
            } else if (count[j]) {
                value = sum[j] / (double)count[j];
            }
            prep->impute[j] = (float)value;
        }
    }
    if (!standardize)
        goto done;

    for (size_t j = 0; j < k; j++) {
        double fill = impute ? prep->impute[j] : 0.0;
        sum[j] = (sum[j] + (double)(n - count[j]) * fill) / (double)n; /* now the mean */
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = data->x + fit_row(rows, i) * k;
        for (size_t j = 0; j < k; j++) {
            double v = isnan(x[j]) ? (impute ? prep->impute[j] : 0.0) : x[j];
            m2[j] += (v - sum[j]) * (v - sum[j]);
        }
    }
    for (size_t j = 0; j < k; j++) {
        double sd = sqrt(m2[j] / (double)n);
        prep->mean[j] = (float)sum[j];
        /* A constant feature (no spread beyond rounding) is left unscaled. */
        prep->scale[j] = (sd > 0.0 && sd > 10.0 * DBL_EPSILON * fabs(sum[j])) ? (float)sd : 1.0f;
        if (prep->scale[j] == 0.0f || !isfinite(prep->scale[j]))
            prep->scale[j] = 1.0f;
    }

done:
    dsc__free(sum);
    dsc__free(m2);
    dsc__free(count);
    dsc__free(column);
    return rc;
}

/*
 * The stored entries of a row for a sparse fit: its CSR entries, or, for a LIBSVM file that
 * the reader stored dense, the non-zeros of its dense row gathered into col_buf and val_buf
 * (n_features each). The reader stores a file dense only when none of its values is zero,
 * so these are the file's entries in its order, and the fit gives the bits it gives on CSR.
 */
typedef struct row_entries {
    const uint32_t *col;
    const float *val;
    size_t n;
} row_entries;

static row_entries entries_of(const dsc_data *data, size_t r, uint32_t *col_buf,
                              float *val_buf)
{
    row_entries row;

    if (!data->x) {
        uint64_t first = data->row_ptr[r];
        row.col = data->col + first;
        row.val = data->val + first;
        row.n = (size_t)(data->row_ptr[r + 1] - first);
        return row;
    }
    const float *x = data->x + r * data->n_features;
    size_t n = 0;
    for (size_t j = 0; j < data->n_features; j++) {
        if (x[j] != 0.0f) {
            col_buf[n] = (uint32_t)j;
            val_buf[n] = x[j];
            n++;
        }
    }
    row.col = col_buf;
    row.val = val_buf;
    row.n = n;
    return row;
}

/*
 * The slots of a sparse fit: its statistics are kept per slot, one slot for each feature
 * that has a stored entry in the fitted rows. A LIBSVM file that names feature 2^30 once
 * has 2^30 features; arrays of per-feature sums would cost gigabytes for one entry, so when
 * the features far outnumber the entries a hash table gives the features seen their slots,
 * and the scratch memory grows with the entries. Otherwise slot j is simply feature j.
 * Each slot sees its entries in row order either way, so both give the same bits.
 */
typedef struct fit_slots {
    size_t n_slots;    /* slots in use (k when direct) */
    bool direct;       /* slot j is feature j, no table */
    uint32_t *keys;    /* hash table: feature + 1, 0 for an empty cell */
    uint32_t *values;  /* hash table: the slot of keys[i] - 1 */
    size_t mask;       /* cells - 1 (a power of two) */
    uint32_t *feature; /* slot -> feature (table only) */
} fit_slots;

/* The cell of feature j: where it is, or the empty cell where it would go. */
static size_t slot_cell(const fit_slots *s, uint32_t j)
{
    size_t cell = (size_t)((j * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & s->mask;

    while (s->keys[cell] != 0 && s->keys[cell] != j + 1)
        cell = (cell + 1) & s->mask;
    return cell;
}

/* The slot of feature j, which must have one. */
static size_t slot_of(const fit_slots *s, uint32_t j)
{
    return s->direct ? j : s->values[slot_cell(s, j)];
}

static void slots_free(fit_slots *s)
{
    dsc__free(s->keys);
    dsc__free(s->values);
    dsc__free(s->feature);
}

/* Give a slot to every feature with a stored entry in the n fitted rows. 0 or DSC_ENOMEM. */
static int slots_build(fit_slots *s, const dsc_data *data, const uint32_t *rows, size_t n)
{
    size_t k = data->n_features, entries = 0;

    memset(s, 0, sizeof *s);
    for (size_t i = 0; !data->x && i < n; i++) {
        size_t r = fit_row(rows, i);
        entries += (size_t)(data->row_ptr[r + 1] - data->row_ptr[r]);
    }
    /* Arrays of k are no bigger than a table of the entries (or than a dense row). */
    if (data->x || k / 4 <= entries) {
        s->direct = true;
        s->n_slots = k;
        return 0;
    }

    size_t cells = 16;
    while (cells < 2 * entries)
        cells *= 2;
    s->mask = cells - 1;
    s->keys = dsc__calloc(cells, sizeof(uint32_t));
    s->values = dsc__alloc(dsc__mul(cells, sizeof(uint32_t)));
    s->feature = dsc__alloc(dsc__mul(entries + 1, sizeof(uint32_t)));
    if (!s->keys || !s->values || !s->feature) {
        slots_free(s);
        return DSC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = fit_row(rows, i);
        for (uint64_t e = data->row_ptr[r]; e < data->row_ptr[r + 1]; e++) {
            uint32_t j = data->col[e];
            size_t cell = j < k ? slot_cell(s, j) : 0;
            if (j >= k || s->keys[cell] != 0)
                continue;
            s->keys[cell] = j + 1;
            s->values[cell] = (uint32_t)s->n_slots;
            s->feature[s->n_slots++] = j;
        }
    }
    return 0;
}

/*
 * Sparse fit over the stored entries plus the implicit zeros: a missing (NaN) entry is left
 * out of its feature's statistics. Medians count the implicit zeros among the values.
 * Standardisation only scales, by the population standard deviation. A feature with no
 * stored entry in the fitted rows is all zeros: it imputes 0 and keeps a scale of 1.
 */
static int fit_sparse(dsc_prep *prep, const dsc_data *data, const uint32_t *rows, size_t n,
                      bool impute, bool standardize)
{
    size_t k = data->n_features;
    fit_slots slots;

    if (slots_build(&slots, data, rows, n) != 0)
        return dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for %zu features", k);

    size_t n_slots = slots.n_slots;
    double *sum = dsc__calloc(n_slots, sizeof(double));
    double *sumsq = dsc__calloc(n_slots, sizeof(double));
    size_t *stored = dsc__calloc(n_slots, sizeof(size_t));  /* non-missing stored entries */
    size_t *missing = dsc__calloc(n_slots, sizeof(size_t)); /* NaN entries */
    float *values = NULL;
    size_t *start = NULL;
    uint32_t *col_buf = data->x ? dsc__alloc(dsc__mul(k, sizeof(uint32_t))) : NULL;
    float *val_buf = data->x ? dsc__alloc(dsc__mul(k, sizeof(float))) : NULL;
    int rc = 0;

    if (!sum || !sumsq || !stored || !missing || (data->x && (!col_buf || !val_buf))) {
        rc = dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for %zu features", k);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        row_entries row = entries_of(data, fit_row(rows, i), col_buf, val_buf);
        for (size_t e = 0; e < row.n; e++) {
            float v = row.val[e];
            if (row.col[e] >= k)
                continue;
            size_t s = slot_of(&slots, row.col[e]);
            if (isnan(v)) {
                missing[s]++;
            } else {
                sum[s] += v;
                sumsq[s] += (double)v * v;
                stored[s]++;
            }
        }
    }

    /* The features without a slot: impute 0 (already, from calloc) and a scale of 1. */
    if (!slots.direct && standardize) {
        for (size_t j = 0; j < k; j++)
            prep->scale[j] = 1.0f;
    }

    if (impute && prep->missing == DSC_MISSING_MEDIAN) {
        /* Gather each slot's stored values slot by slot (a counting sort). */
        size_t total = 0;
        start = dsc__alloc(dsc__mul(n_slots + 1, sizeof(size_t)));
        for (size_t s = 0; start && s < n_slots; s++) {
            start[s] = total;
            total += stored[s];
        }
        values = dsc__alloc(dsc__mul(total, sizeof(float)));
        if (!start || !values) {
            rc = dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for the medians");
            goto done;
        }
        start[n_slots] = total;
        for (size_t i = 0; i < n; i++) {
            row_entries row = entries_of(data, fit_row(rows, i), col_buf, val_buf);
            for (size_t e = 0; e < row.n; e++) {
                if (row.col[e] < k && !isnan(row.val[e]))
                    values[start[slot_of(&slots, row.col[e])]++] = row.val[e];
            }
        }
        for (size_t s = 0; s < n_slots; s++) {
            size_t first = start[s] - stored[s], m = stored[s];
            size_t zeros = n - m - missing[s], present = m + zeros;
            float *v = values + first;
            qsort(v, m, sizeof *v, compare_float);
            size_t negatives = 0;
            while (negatives < m && v[negatives] < 0.0f)
                negatives++;
            /* The value of rank r among the sorted stored values with the zeros inserted. */
            double lo = 0.0, hi = 0.0;
            if (present) {
                size_t ranks[2] = {(present - 1) / 2, present / 2};
                double got[2];
                for (int t = 0; t < 2; t++) {
                    size_t rank = ranks[t];
                    got[t] = rank < negatives ? v[rank]
                             : rank < negatives + zeros ? 0.0 : v[rank - zeros];
                }
                lo = got[0];
                hi = got[1];
            }
            prep->impute[slots.direct ? s : slots.feature[s]] = (float)(0.5 * (lo + hi));
        }
    } else if (impute) {
        for (size_t s = 0; s < n_slots; s++) {
            size_t present = n - missing[s];
            prep->impute[slots.direct ? s : slots.feature[s]] =
                present ? (float)(sum[s] / (double)present) : 0.0f;
        }
    }
    if (!standardize)
        goto done;

    /* Mean over all n rows (implicit zeros included), then a second pass for the spread. */
    for (size_t s = 0; s < n_slots; s++) {
        double fill = impute ? prep->impute[slots.direct ? s : slots.feature[s]] : 0.0;
        sum[s] = (sum[s] + (double)missing[s] * fill) / (double)n;
        sumsq[s] = 0.0;
    }
    for (size_t i = 0; i < n; i++) {
        row_entries row = entries_of(data, fit_row(rows, i), col_buf, val_buf);
        for (size_t e = 0; e < row.n; e++) {
            uint32_t j = row.col[e];
            if (j >= k)
                continue;
            size_t s = slot_of(&slots, j);
            double v = isnan(row.val[e]) ? (impute ? prep->impute[j] : 0.0) : row.val[e];
            sumsq[s] += (v - sum[s]) * (v - sum[s]);
        }
    }
    for (size_t s = 0; s < n_slots; s++) {
        size_t j = slots.direct ? s : slots.feature[s];
        double zeros = (double)(n - stored[s] - missing[s]);
        double m2 = sumsq[s] + zeros * sum[s] * sum[s];
        double sd = m2 > 0.0 ? sqrt(m2 / (double)n) : 0.0;
        prep->mean[j] = 0.0f;
        prep->scale[j] = (sd > 0.0 && sd > 10.0 * DBL_EPSILON * fabs(sum[s])) ? (float)sd : 1.0f;
        if (prep->scale[j] == 0.0f || !isfinite(prep->scale[j]))
            prep->scale[j] = 1.0f;
    }

done:
    dsc__free(sum);
    dsc__free(sumsq);
    dsc__free(stored);
    dsc__free(missing);
    dsc__free(values);
    dsc__free(start);
    dsc__free(col_buf);
    dsc__free(val_buf);
    slots_free(&slots);
    return rc;
}

int dsc_prep_fit(dsc_prep *prep, const dsc_table *table, const uint32_t *rows, size_t n,
                 int standardize)
{
    if (!prep || !table)
        return dsc__fail(DSC_EINVAL, "dsc_prep_fit: prep or table is NULL");
    const dsc_data *data = &table->data;
    if (!rows)
        n = data->n_rows;
    if (n == 0)
        return dsc__fail(DSC_EINVAL, "dsc_prep_fit: no rows to fit on");
    if (prep->n_features == 0)
        prep->n_features = data->n_features;
    if (prep->n_features != data->n_features)
        return dsc__fail(DSC_ESHAPE, "dsc_prep_fit: the table has %zu features, prep %zu",
                         data->n_features, prep->n_features);
    if (!data->x && !data->row_ptr)
        return dsc__fail(DSC_EINVAL, "dsc_prep_fit: the table has no features");
    for (size_t i = 0; rows && i < n; i++) {
        if (rows[i] >= data->n_rows)
            return dsc__fail(DSC_EINVAL, "dsc_prep_fit: rows[%zu] = %u is beyond the %zu rows",
                             i, rows[i], data->n_rows);
    }
    if ((unsigned)prep->missing >= DSC_MISSING_COUNT)
        return dsc__fail(DSC_EINVAL, "dsc_prep_fit: prep has an unknown missing policy");

    size_t k = prep->n_features;
    bool impute = prep->missing != DSC_MISSING_ERROR;
    float *new_impute = NULL, *new_mean = NULL, *new_scale = NULL;
    if (impute && !(new_impute = dsc__calloc(k, sizeof(float))))
        goto out_of_memory;
    if (standardize && (!(new_mean = dsc__calloc(k, sizeof(float))) ||
                        !(new_scale = dsc__calloc(k, sizeof(float)))))
        goto out_of_memory;

    /* Fit into a scratch prep, so that prep is unchanged on failure. */
    dsc_prep scratch = *prep;
    scratch.impute = new_impute;
    scratch.mean = new_mean;
    scratch.scale = new_scale;
    int rc = 0; /* with neither imputation nor scaling there is nothing to learn */
    /* A LIBSVM file holds sparse data even when the reader stored it dense. */
    bool sparse = !data->x || (table->prep && table->prep->format == DSC_FORMAT_LIBSVM);
    if (impute || standardize)
        rc = sparse ? fit_sparse(&scratch, data, rows, n, impute, standardize != 0)
                    : fit_dense(&scratch, data, rows, n, impute, standardize != 0);
    if (rc) {
        dsc__free(new_impute);
        dsc__free(new_mean);
        dsc__free(new_scale);
        return rc;
    }
    dsc__free(prep->impute);
    dsc__free(prep->mean);
    dsc__free(prep->scale);
    prep->impute = new_impute;
    prep->mean = new_mean;
    prep->scale = new_scale;
    prep->standardized = standardize != 0;
    return 0;

out_of_memory:
    dsc__free(new_impute);
    dsc__free(new_mean);
    dsc__free(new_scale);
    return dsc__fail(DSC_ENOMEM, "dsc_prep_fit: out of memory for %zu features", k);
}

/* true when p lies in the table's memory-mapped file. */
static bool in_mapping(const dsc_table *table, const void *p)
{
    const char *base = table->mapping, *q = p;

    return base && q && q >= base && q < base + table->mapping_size;
}

/* Give the table its own copy of an array that points into its mapped file. */
static float *own_floats(dsc_table *table, float **array, size_t n)
{
    if (!in_mapping(table, *array))
        return *array;
    float *copy = dsc__alloc(dsc__mul(n, sizeof(float)));
    if (copy) {
        memcpy(copy, *array, n * sizeof(float));
        *array = copy;
    }
    return copy;
}

int dsc_prep_apply(const dsc_prep *prep, dsc_table *table)
{
    if (!prep || !table)
        return dsc__fail(DSC_EINVAL, "dsc_prep_apply: prep or table is NULL");
    dsc_data *data = &table->data;
    size_t k = data->n_features;
    if (prep->n_features != k)
        return dsc__fail(DSC_ESHAPE, "dsc_prep_apply: the table has %zu features, prep %zu",
                         k, prep->n_features);
    if (table->n_missing && !prep->impute)
        return dsc__fail(DSC_EINVAL,
                         "dsc_prep_apply: %zu missing values and no imputation values "
                         "(fit with a missing policy of mean or median)",
                         table->n_missing);
    if (prep->standardized && (!prep->mean || !prep->scale))
        return dsc__fail(DSC_EINVAL, "dsc_prep_apply: prep is standardised but not fitted");
    if (!prep->impute && !prep->standardized)
        return 0;
    table->applied = true; /* the values are no longer as read (dsc_table_save_cache) */

    if (table->x) {
        size_t total = dsc__mul(data->n_rows, k);
        if (!own_floats(table, &table->x, total))
            return dsc__fail(DSC_ENOMEM, "dsc_prep_apply: out of memory copying the data");
        data->x = table->x;
        for (size_t r = 0; r < data->n_rows; r++) {
            float *x = table->x + r * k;
            for (size_t j = 0; j < k; j++) {
                double v = x[j];
                if (isnan(x[j]) && prep->impute)
                    v = prep->impute[j];
                if (prep->standardized)
                    v = (v - (double)prep->mean[j]) / (double)prep->scale[j];
                x[j] = (float)v;
            }
        }
    } else if (table->val) {
        size_t nnz = (size_t)table->row_ptr[data->n_rows];
        if (!own_floats(table, &table->val, nnz))
            return dsc__fail(DSC_ENOMEM, "dsc_prep_apply: out of memory copying the data");
        data->val = table->val;
        for (size_t e = 0; e < nnz; e++) {
            uint32_t j = table->col[e];
            double v = table->val[e];
            if (j >= k)
                continue;
            if (isnan(table->val[e]) && prep->impute)
                v = prep->impute[j];
            if (prep->standardized)
                v = v / (double)prep->scale[j]; /* sparse data is never centred */
            table->val[e] = (float)v;
        }
    }
    if (prep->impute)
        table->n_missing = 0;
    return 0;
}
