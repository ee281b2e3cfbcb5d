/*
 * npy.c - the NumPy .npy reader: a features file (rows x columns, float32 or float64, C
 * order) and an optional targets file (opts->labels_path: rows or rows x 1 values).
 *
 * The header (versions 1.0, 2.0 and 3.0) is parsed strictly: a Python dict literal with
 * exactly the keys 'descr', 'fortran_order' and 'shape'. The data is read in blocks and
 * converted to float as it arrives, into an array that grows with what the file really
 * holds, so a header that lies about the shape costs no more memory than the file's size;
 * the data size must match the file size exactly.
 *
 * Features must be finite; NaN is kept as a missing value (counted in table->n_missing)
 * when the missing-value policy is mean or median. Targets may also be integers (int8 to
 * uint64); they are classes when opts->classify is 1, or -1 with every value whole, and
 * regression targets otherwise. Without a targets file the table has no targets, which
 * only prediction accepts.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define NPY_MAX_HEADER (1u << 20)      /* longest header accepted */
#define NPY_MAX_DIMS 8
#define NPY_MAX_ROWS 4294967295u       /* rows < 2^32 */
#define NPY_MAX_COLUMNS 2147483647u    /* columns < 2^31 */
#define NPY_BLOCK 65536                /* bytes read at a time */
#define NPY_FIRST_ALLOC 65536          /* floats allocated before any data is seen */

/* What a .npy header says. */
typedef struct npy_header {
    char descr[24];
    int have_descr, have_fortran, have_shape;
    int fortran_order;
    size_t n_dims;
    uint64_t shape[NPY_MAX_DIMS];
    char kind;          /* 'f', 'i' or 'u' */
    size_t elem_size;   /* bytes per value */
    int big_endian;
    uint64_t data_offset; /* bytes before the data */
} npy_header;

/* The header text being parsed, for messages with the byte offset in the file. */
typedef struct header_parser {
    const char *path;
    const char *text;
    size_t len, pos;
    size_t base;        /* the file offset of text[0] */
} header_parser;

static int header_error(const header_parser *p, int code, const char *what)
{
    return dsc__fail(code, "%s: .npy header at byte %zu: %s", p->path, p->base + p->pos,
                     what);
}

static void skip_spaces(header_parser *p)
{
    while (p->pos < p->len && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t'))
        p->pos++;
}

/* A quoted Python string without escapes into out (size bytes, NUL-terminated). */
static int parse_string(header_parser *p, char *out, size_t size)
{
    if (p->pos >= p->len || (p->text[p->pos] != '\'' && p->text[p->pos] != '"'))
        return header_error(p, DSC_EFORMAT, "expected a quoted string");

    char quote = p->text[p->pos];
    size_t start = ++p->pos;
    while (p->pos < p->len && p->text[p->pos] != quote) {
        if (p->text[p->pos] == '\\' || p->text[p->pos] == '\n')
            return header_error(p, DSC_EFORMAT, "unexpected character in a string");
        p->pos++;
    }
    if (p->pos >= p->len)
        return header_error(p, DSC_EFORMAT, "unterminated string");

    size_t n = p->pos - start;
    if (n >= size) {
        p->pos = start;
        return header_error(p, DSC_EFORMAT, "string too long");
    }
    memcpy(out, p->text + start, n);
    out[n] = '\0';
    p->pos++;
    return DSC_OK;
}

static int parse_bool(header_parser *p, int *out)
{
    if (p->len - p->pos >= 4 && memcmp(p->text + p->pos, "True", 4) == 0) {
        p->pos += 4;
        *out = 1;
    } else if (p->len - p->pos >= 5 && memcmp(p->text + p->pos, "False", 5) == 0) {
        p->pos += 5;
        *out = 0;
    } else {
        return header_error(p, DSC_EFORMAT, "expected True or False");
    }
    return DSC_OK;
}

/* A non-negative integer (an old 'L' suffix allowed). */
static int parse_dim(header_parser *p, uint64_t *out)
{
    uint64_t value = 0;
    size_t start = p->pos;

    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
        unsigned digit = (unsigned)(p->text[p->pos] - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            p->pos = start;
            return header_error(p, DSC_ELIMIT, "shape dimension too large");
        }
        value = value * 10 + digit;
        p->pos++;
    }
    if (p->pos == start)
        return header_error(p, DSC_EFORMAT, "expected a non-negative integer in the shape");
    if (p->pos < p->len && p->text[p->pos] == 'L')
        p->pos++;
    *out = value;
    return DSC_OK;
}

/* A tuple of dimensions: "()", "(5,)", "(5, 3)"; a one-element tuple needs its comma. */
static int parse_shape(header_parser *p, npy_header *h)
{
    int rc;

    if (p->pos >= p->len || p->text[p->pos] != '(')
        return header_error(p, DSC_EFORMAT, "expected '(' to open the shape");
    p->pos++;
    skip_spaces(p);
    h->n_dims = 0;

    int trailing_comma = 0;
    while (p->pos < p->len && p->text[p->pos] != ')') {
        if (h->n_dims == NPY_MAX_DIMS)
            return header_error(p, DSC_ELIMIT, "more than 8 dimensions");
        rc = parse_dim(p, &h->shape[h->n_dims++]);
        if (rc < 0)
            return rc;
        skip_spaces(p);
        trailing_comma = 0;
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            trailing_comma = 1;
            skip_spaces(p);
        } else if (p->pos < p->len && p->text[p->pos] != ')') {
            return header_error(p, DSC_EFORMAT, "expected ',' or ')' in the shape");
        }
    }
    if (p->pos >= p->len)
        return header_error(p, DSC_EFORMAT, "unterminated shape");
    if (h->n_dims == 1 && !trailing_comma)
        return header_error(p, DSC_EFORMAT, "a one-dimensional shape needs a comma: (n,)");
    p->pos++;
    return DSC_OK;
}

/* Parse the header dict text[0..len) (the '\n' at its end excluded). */
static int parse_dict(header_parser *p, npy_header *h)
{
    int rc;

    skip_spaces(p);
    if (p->pos >= p->len || p->text[p->pos] != '{')
        return header_error(p, DSC_EFORMAT, "expected '{'");
    p->pos++;

    for (;;) {
        skip_spaces(p);
        if (p->pos < p->len && p->text[p->pos] == '}')
            break;

        char key[32];
        size_t key_pos = p->pos;
        rc = parse_string(p, key, sizeof key);
        if (rc < 0)
            return rc;
        skip_spaces(p);
        if (p->pos >= p->len || p->text[p->pos] != ':')
            return header_error(p, DSC_EFORMAT, "expected ':' after a key");
        p->pos++;
        skip_spaces(p);

        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &h->have_descr;
            size_t value_pos = p->pos;
            rc = parse_string(p, h->descr, sizeof h->descr);
            if (rc < 0 && value_pos < p->len && p->text[value_pos] == '[') {
                p->pos = value_pos;
                return header_error(p, DSC_EFORMAT, "structured dtypes are not supported");
            }
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &h->have_fortran;
            rc = parse_bool(p, &h->fortran_order);
        } else if (strcmp(key, "shape") == 0) {
            seen = &h->have_shape;
            rc = parse_shape(p, h);
        } else {
            p->pos = key_pos;
            return header_error(p, DSC_EFORMAT, "unknown key");
        }
        if (rc < 0)
            return rc;
        if (*seen) {
            p->pos = key_pos;
            return header_error(p, DSC_EFORMAT, "repeated key");
        }
        *seen = 1;

        skip_spaces(p);
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->text[p->pos] == '}')
            break;
        return header_error(p, DSC_EFORMAT, "expected ',' or '}'");
    }

    p->pos++; /* the '}' */
    skip_spaces(p);
    if (p->pos != p->len)
        return header_error(p, DSC_EFORMAT, "text after the closing '}'");
    if (!h->have_descr || !h->have_fortran || !h->have_shape) {
        const char *missing = !h->have_descr ? "descr"
                              : !h->have_fortran ? "fortran_order" : "shape";
        return dsc__fail(DSC_EFORMAT, "%s: .npy header has no '%s'", p->path, missing);
    }
    return DSC_OK;
}

/* Decode the dtype string: byte order, kind ('f', 'i', 'u') and size. */
static int parse_descr(const char *path, npy_header *h)
{
    const char *d = h->descr;
    size_t len = strlen(d);

    if (len == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|') &&
        (d[1] == 'f' || d[1] == 'i' || d[1] == 'u') && d[2] >= '1' && d[2] <= '8') {
        size_t size = (size_t)(d[2] - '0');
        int ok = d[1] == 'f' ? (size == 4 || size == 8)
                             : (size == 1 || size == 2 || size == 4 || size == 8);
        if (ok && (d[0] != '|' || size == 1)) {
            h->kind = d[1];
            h->elem_size = size;
            h->big_endian = d[0] == '>';
            return DSC_OK;
        }
    }
    return dsc__fail(DSC_EFORMAT, "%s: dtype '%s' not supported: use float32 or float64",
                     path, d);
}

/* "float32", "int64", ... */
static const char *dtype_name(const npy_header *h)
{
    static const char *const floats[] = {"float32", "float64"};
    static const char *const ints[] = {"int8", "int16", "int32", "int64"};
    static const char *const uints[] = {"uint8", "uint16", "uint32", "uint64"};
    int slot = h->elem_size == 1 ? 0 : h->elem_size == 2 ? 1 : h->elem_size == 4 ? 2 : 3;

    if (h->kind == 'f')
        return floats[h->elem_size == 8];
    return h->kind == 'i' ? ints[slot] : uints[slot];
}

/* Read up to n bytes; the count read, or DSC_EIO (message set) on a read error. */
static int read_bytes(FILE *in, const char *path, void *buf, size_t n, size_t *got)
{
    *got = fread(buf, 1, n, in);
    if (*got < n && ferror(in))
        return dsc__fail(DSC_EIO, "%s: read error", path);
    return DSC_OK;
}

static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Read and check the magic, version and header of an open .npy file. */
static int read_header(FILE *in, const char *path, npy_header *h)
{
    unsigned char start[12];
    size_t got;
    int rc;

    memset(h, 0, sizeof *h);
    rc = read_bytes(in, path, start, 10, &got);
    if (rc < 0)
        return rc;
    if (got < 8 || memcmp(start, "\x93NUMPY", 6) != 0)
        return dsc__fail(DSC_EFORMAT, "%s: not a .npy file (bad magic)", path);

    unsigned major = start[6], minor = start[7];
    if (major < 1 || major > 3 || minor != 0)
        return dsc__fail(DSC_EFORMAT, "%s: .npy version %u.%u not supported", path, major,
                         minor);

    size_t len_bytes = major == 1 ? 2 : 4;
    if (major > 1 && got == 10) {
        rc = read_bytes(in, path, start + 10, 2, &got);
        if (rc < 0)
            return rc;
        got += 10;
    }
    if (got < 8 + len_bytes)
        return dsc__fail(DSC_EFORMAT, "%s: file ends inside the .npy header", path);

    uint64_t header_len = load_le(start + 8, len_bytes);
    if (header_len == 0)
        return dsc__fail(DSC_EFORMAT, "%s: empty .npy header", path);
    if (header_len > NPY_MAX_HEADER)
        return dsc__fail(DSC_ELIMIT, "%s: .npy header of %llu bytes, more than %u", path,
                         (unsigned long long)header_len, NPY_MAX_HEADER);

    char *text = dsc__alloc((size_t)header_len);
    if (!text)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    rc = read_bytes(in, path, text, (size_t)header_len, &got);
    if (rc >= 0 && got < header_len)
        rc = dsc__fail(DSC_EFORMAT, "%s: file ends inside the .npy header", path);
    if (rc >= 0 && text[header_len - 1] != '\n')
        rc = dsc__fail(DSC_EFORMAT, "%s: .npy header does not end with a newline", path);

    if (rc >= 0) {
        header_parser parser = {path, text, (size_t)header_len - 1, 0, 8 + len_bytes};
        rc = parse_dict(&parser, h);
    }
    dsc__free(text);
    if (rc < 0)
        return rc;

    if (h->fortran_order)
        return dsc__fail(DSC_EFORMAT, "%s: Fortran order not supported", path);
    h->data_offset = 8 + len_bytes + header_len;
    return parse_descr(path, h);
}

/* The value of one element at p as a double. */
static double decode(const npy_header *h, const unsigned char *p)
{
    unsigned char le[8];
    size_t n = h->elem_size;

    for (size_t i = 0; i < n; i++)
        le[i] = h->big_endian ? p[n - 1 - i] : p[i];
    uint64_t bits = load_le(le, n);

    if (h->kind == 'f') {
        if (n == 4) {
            uint32_t bits32 = (uint32_t)bits;
            float f;
            memcpy(&f, &bits32, 4);
            return (double)f;
        }
        double d;
        memcpy(&d, &bits, 8);
        return d;
    }
    if (h->kind == 'u')
        return (double)bits;

    /* Two's complement: subtract 2^(8n) when the sign bit is set. */
    if (bits >> (8 * n - 1)) {
        uint64_t magnitude = n == 8 ? ~bits + 1 : (((uint64_t)1 << (8 * n)) - bits);
        return -(double)magnitude;
    }
    return (double)bits;
}

/* What read_values reads: an array's role and its size. */
typedef struct npy_array {
    const char *path;
    const npy_header *h;
    uint64_t rows, columns;  /* columns is 1 for a targets vector */
    int is_target;
    int allow_nan;           /* features under a mean or median missing-value policy */
    float *values;           /* out: rows * columns floats */
    size_t n_missing;        /* out: NaN kept */
    int all_whole;           /* out: every value is a whole number */
} npy_array;

static int value_error(const npy_array *a, uint64_t index, const char *what, double v)
{
    uint64_t row = index / a->columns + 1, column = index % a->columns + 1;
    unsigned long long byte = (unsigned long long)(a->h->data_offset + index * a->h->elem_size);

    if (a->is_target)
        return dsc__fail(DSC_EFORMAT, "%s: row %llu (byte %llu): target %g %s", a->path,
                         (unsigned long long)row, byte, v, what);
    return dsc__fail(DSC_EFORMAT, "%s: row %llu, column %llu (byte %llu): value %g %s",
                     a->path, (unsigned long long)row, (unsigned long long)column, byte, v,
                     what);
}

/* Convert one decoded element to float into a->values[index]. */
static int store_value(npy_array *a, uint64_t index, double v)
{
    if (isnan(v)) {
        if (!a->allow_nan)
            return value_error(a, index, "is not allowed (a missing value)", v);
        a->values[index] = NAN;
        a->n_missing++;
        return DSC_OK;
    }
    if (isinf(v))
        return value_error(a, index, "is not finite", v);

    /* Values below 2^128 - 2^104 round to FLT_MAX at most; beyond they would be infinite. */
    if (fabs(v) >= 0x1.ffffffp127)
        return value_error(a, index, "is beyond float range", v);
    float f = (float)v;
    if (f != floorf(f))
        a->all_whole = 0;
    a->values[index] = f;
    return DSC_OK;
}

/*
 * Read the data of a->rows x a->columns elements into a->values, converting as it arrives,
 * then check that the file ends exactly where the data does.
 */
static int read_values(FILE *in, npy_array *a)
{
    const npy_header *h = a->h;
    size_t count, bytes;

    if (dsc__mul_overflows((size_t)a->rows, (size_t)a->columns, &count) ||
        dsc__mul_overflows(count, h->elem_size, &bytes))
        return dsc__fail(DSC_ELIMIT, "%s: %llu x %llu values do not fit in memory", a->path,
                         (unsigned long long)a->rows, (unsigned long long)a->columns);

    size_t capacity = 0;
    size_t first = count < NPY_FIRST_ALLOC ? count : NPY_FIRST_ALLOC;
    a->values = dsc__grow(NULL, &capacity, 0, first, count, sizeof(float));
    if (!a->values)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", a->path);

    unsigned char block[NPY_BLOCK];
    size_t per_block = NPY_BLOCK / h->elem_size;
    size_t done = 0;
    uint64_t held = 0; /* bytes of data the file holds */
    int rc = DSC_OK;
    a->all_whole = 1;

    while (done < count) {
        size_t want = count - done < per_block ? count - done : per_block;
        size_t got;
        rc = read_bytes(in, a->path, block, want * h->elem_size, &got);
        if (rc < 0)
            return rc;
        held += got;
        size_t whole = got / h->elem_size;
        float *grown = dsc__grow(a->values, &capacity, done, done + whole, count,
                                 sizeof(float));
        if (!grown)
            return dsc__fail(DSC_ENOMEM, "%s: out of memory after %zu values", a->path, done);
        a->values = grown;
        for (size_t i = 0; i < whole; i++) {
            rc = store_value(a, done + i, decode(h, block + i * h->elem_size));
            if (rc < 0)
                return rc;
        }
        done += whole;
        if (got < want * h->elem_size)
            break;
    }

    /* Count what follows the data, if anything, to report the true size. */
    for (size_t got = 1; done == count && got > 0;) {
        rc = read_bytes(in, a->path, block, sizeof block, &got);
        if (rc < 0)
            return rc;
        held += got;
    }
    uint64_t expected = (uint64_t)count * h->elem_size;
    if (held == expected)
        return DSC_OK;

    char shape[64];
    if (a->is_target && h->n_dims == 1)
        snprintf(shape, sizeof shape, "%llu", (unsigned long long)a->rows);
    else
        snprintf(shape, sizeof shape, "%llu x %llu", (unsigned long long)a->rows,
                 (unsigned long long)a->columns);
    return dsc__fail(DSC_EFORMAT,
                     "%s: header says %s %s (%llu bytes) but the file holds %llu after the "
                     "%llu-byte header",
                     a->path, shape, dtype_name(h), (unsigned long long)expected,
                     (unsigned long long)held, (unsigned long long)h->data_offset);
}

/* The name of a file in messages: "<stdin>" for "-". */
static const char *shown_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

static FILE *open_input(const char *path)
{
    if (strcmp(path, "-") == 0)
        return stdin;
    return fopen(path, "rb");
}

static void close_input(FILE *in)
{
    if (in && in != stdin)
        fclose(in);
}

/* Read the features file into table->x; its shape into *rows and *columns. */
static int read_features(dsc_table *table, const char *path, const dsc_prep *prep,
                         dsc_missing missing, size_t *rows, size_t *columns)
{
    FILE *in = open_input(path);
    if (!in)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", path, strerror(errno));
    path = shown_name(path);

    npy_header h;
    int rc = read_header(in, path, &h);
    if (rc >= 0 && h.kind != 'f')
        rc = dsc__fail(DSC_EFORMAT, "%s: features of dtype '%s' not supported: use float32 "
                       "or float64", path, h.descr);
    if (rc >= 0 && h.n_dims != 2)
        rc = dsc__fail(DSC_EFORMAT, "%s: features need a shape of two dimensions (rows, "
                       "columns), the file has %zu", path, h.n_dims);
    if (rc >= 0 && h.shape[0] > NPY_MAX_ROWS)
        rc = dsc__fail(DSC_ELIMIT, "%s: %llu rows, beyond the limit of %u", path,
                       (unsigned long long)h.shape[0], NPY_MAX_ROWS);
    if (rc >= 0 && h.shape[1] > NPY_MAX_COLUMNS)
        rc = dsc__fail(DSC_ELIMIT, "%s: %llu columns, beyond the limit of %u", path,
                       (unsigned long long)h.shape[1], NPY_MAX_COLUMNS);
    if (rc >= 0 && h.shape[0] == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no data rows", path);
    if (rc >= 0 && h.shape[1] == 0)
        rc = dsc__fail(DSC_EFORMAT, "%s: no features (0 columns)", path);
    if (rc >= 0 && prep && h.shape[1] != prep->n_features)
        rc = dsc__fail(DSC_EFORMAT, "%s: %llu columns but the training data had %zu features",
                       path, (unsigned long long)h.shape[1], prep->n_features);

    if (rc >= 0) {
        npy_array a = {path, &h, h.shape[0], h.shape[1], 0, missing != DSC_MISSING_ERROR,
                       NULL, 0, 1};
        rc = read_values(in, &a);
        if (rc >= 0) {
            table->x = a.values;
            table->n_missing = a.n_missing;
            *rows = (size_t)h.shape[0];
            *columns = (size_t)h.shape[1];
        } else {
            dsc__free(a.values);
        }
    }
    close_input(in);
    return rc;
}

/* Read the targets file (rows values) into classes or regression targets of table. */
static int read_targets(dsc_table *table, const char *path, const char *features_path,
                        const dsc_read_options *opts, int learning, size_t rows)
{
    FILE *in = open_input(path);
    if (!in)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", path, strerror(errno));
    path = shown_name(path);

    npy_header h;
    int rc = read_header(in, path, &h);
    if (rc >= 0 && !(h.n_dims == 1 || (h.n_dims == 2 && h.shape[1] == 1)))
        rc = dsc__fail(DSC_EFORMAT, "%s: targets need a shape (rows,) or (rows, 1)", path);
    if (rc >= 0 && h.shape[0] != rows)
        rc = dsc__fail(DSC_EFORMAT, "%s: %llu targets but %s has %zu rows", path,
                       (unsigned long long)h.shape[0], features_path, rows);

    npy_array a = {path, &h, h.shape[0], 1, 1, 0, NULL, 0, 1};
    if (rc >= 0)
        rc = read_values(in, &a);
    close_input(in);
    if (rc < 0) {
        dsc__free(a.values);
        return rc;
    }

    dsc_prep *prep = table->prep;
    int classify = learning ? opts->classify == 1 || (opts->classify < 0 && a.all_whole)
                            : prep->n_classes > 0;
    if (!classify && (learning || prep->n_targets == 1)) {
        table->y = a.values;
        if (learning)
            prep->n_targets = 1;
        return DSC_OK;
    }
    if (!classify) {
        dsc__free(a.values);
        if (prep->n_targets > 1)
            return dsc__fail(DSC_EFORMAT, "%s: the training data had %zu targets, the file "
                             "has one", path, prep->n_targets);
        return DSC_OK; /* the prep has no targets: nothing to read them into */
    }

    int32_t *label = dsc__alloc(dsc__mul(rows, sizeof(int32_t)));
    size_t bad_row = 0;
    rc = DSC_ENOMEM;
    if (label)
        rc = learning ? dsc__learn_classes(prep, a.values, rows, label)
                      : dsc__map_classes(prep, a.values, rows, label, &bad_row);
    if (rc == DSC_EFORMAT && !learning) {
        char text[64];
        dsc__class_text(a.values[bad_row], text, sizeof text);
        rc = dsc__fail(DSC_EFORMAT, "%s: row %zu: class '%s' was not seen in training", path,
                       bad_row + 1, text);
    } else if (rc < 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", rc == DSC_ENOMEM ? "out of memory"
                                                               : dsc_last_error());
        rc = dsc__fail(rc, "%s: class labels: %s", path, reason);
    }
    dsc__free(a.values);
    if (rc < 0) {
        dsc__free(label);
        return rc;
    }
    table->label = label;
    return DSC_OK;
}

/*
 * Read a .npy features file at path, and the targets file opts->labels_path when given, into
 * table. With prep NULL the encoding is learned (a targets file is then required).
 */
int dsc__read_npy(dsc_table *table, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep)
{
    dsc_read_options defaults;
    int rc;

    if (!opts) {
        dsc_read_options_default(&defaults);
        opts = &defaults;
    }
    if (!prep && !opts->labels_path)
        return dsc__fail(DSC_EINVAL, "%s: no targets file: give labels_path to learn from "
                         ".npy features", shown_name(path));

    /* dsc_table_read gives the table its prep: a copy of the given one, or a new one. */
    if (!table->prep)
        return dsc__fail(DSC_EINVAL, "%s: internal: the table has no preprocessing", path);

    size_t rows = 0, columns = 0;
    dsc_missing missing = prep ? prep->missing : opts->missing;
    rc = read_features(table, path, prep, missing, &rows, &columns);
    if (rc < 0)
        return rc;
    if (!prep)
        table->prep->n_features = columns;
    if (opts->labels_path) {
        rc = read_targets(table, opts->labels_path, shown_name(path), opts, prep == NULL,
                          rows);
        if (rc < 0)
            return rc;
    }

    memset(&table->data, 0, sizeof table->data);
    table->data.n_rows = rows;
    table->data.n_features = columns;
    table->data.x = table->x;
    table->data.label = table->label;
    table->data.y = table->y;
    table->data.n_targets = table->y ? 1 : 0;
    return DSC_OK;
}
