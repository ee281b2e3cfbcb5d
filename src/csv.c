/*
 * csv.c - the CSV reader: one pass over the file in 64 KiB blocks, RFC 4180 quoting, CRLF,
 * a byte-order mark, blank lines skipped, the delimiter and the header detected, numeric
 * columns kept as numbers and the others one-hot encoded, and every malformed input turned
 * into "PATH:LINE:COL: what is wrong".
 *
 * The cells are parsed into a compact row store (one 32-bit cell per field: a float's bits
 * or a level id) held in chunks, and laid out as the encoded dense matrix once the file ends,
 * when the number of levels of every one-hot column is known. The store is proportional to
 * rows x columns, like the result; the file text itself is never held beyond one line.
 *
 * Known limit (speed): the reader runs on one thread, about 250 MB/s of numeric text on the
 * benchmark's 2-core VM, where the LIBSVM reader (libsvm.c) cuts a mapped file into pieces
 * and parses them on every thread at 450 to 700 MB/s. The same could be done here, with
 * one more rule: a cut must not fall inside a quoted field, which a first pass over the
 * quotes can tell. For data read many times, `descent convert` avoids the parse altogether.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE ((size_t)64 << 10)
#define MAX_FIELD ((size_t)1 << 20)      /* bytes in one field */
#define MAX_LINE ((size_t)64 << 20)      /* bytes in one record */
#define MAX_COLUMNS ((size_t)1000000)    /* fields in one record */
#define MAX_CLASSES ((size_t)65536)      /* the limit dsc__prep_class applies too */
#define MAX_ROWS ((size_t)UINT32_MAX)    /* rows are indexed by uint32_t */
#define CHUNK_CELLS ((size_t)1 << 16)    /* cells in one chunk of the row store */
#define SHOWN_BYTES 40                   /* bytes of a value quoted in a message */

/* Level ids of a one-hot column that stand for no level. */
#define CELL_MISSING UINT32_MAX
#define CELL_UNSEEN (UINT32_MAX - 1)

/* ---- Small growable pieces --------------------------------------------------------------- */

/* Make room for need elements of size bytes in *array (capacity *cap), doubling. */
static bool grow(void **array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2)
            return false;
        new_cap *= 2;
    }
    size_t bytes;
    if (dsc__mul_overflows(new_cap, size, &bytes))
        return false;
    void *fresh = dsc__alloc(bytes);
    if (!fresh)
        return false;
    if (*array && *cap)
        memcpy(fresh, *array, *cap * size);
    dsc__free(*array);
    *array = fresh;
    *cap = new_cap;
    return true;
}

static char *copy_text(const char *text, size_t len)
{
    char *s = dsc__alloc(len + 1);

    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

/*
 * A table of distinct strings and their ids (order of insertion), with an open-addressing
 * index. The strings are separate blocks, so that a prep can take them over.
 */
typedef struct strtab {
    char **items;
    size_t *lens;
    size_t n, cap, lens_cap;
    uint32_t *slots; /* id + 1, or 0 for an empty slot */
    size_t n_slots;  /* a power of two, at least twice n */
} strtab;

static uint64_t hash_bytes(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The id of text, or -1. */
static long strtab_find(const strtab *t, const char *text, size_t len)
{
    if (!t->n_slots)
        return -1;
    size_t mask = t->n_slots - 1;
    for (size_t s = (size_t)hash_bytes(text, len) & mask;; s = (s + 1) & mask) {
        uint32_t id = t->slots[s];
        if (!id)
            return -1;
        if (t->lens[id - 1] == len && memcmp(t->items[id - 1], text, len) == 0)
            return (long)(id - 1);
    }
}

static bool strtab_index(strtab *t, size_t n_slots)
{
    uint32_t *slots = dsc__calloc(n_slots, sizeof *slots);

    if (!slots)
        return false;
    dsc__free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    for (size_t id = 0; id < t->n; id++) {
        size_t s = (size_t)hash_bytes(t->items[id], t->lens[id]) & (n_slots - 1);
        while (slots[s])
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)(id + 1);
    }
    return true;
}

/* Add text (not present) and return its id, or -1 when out of memory. */
static long strtab_add(strtab *t, const char *text, size_t len)
{
    if ((t->n + 1) * 2 > t->n_slots && !strtab_index(t, t->n_slots ? t->n_slots * 2 : 16))
        return -1;
    if (!grow((void **)&t->items, &t->cap, t->n + 1, sizeof(char *)) ||
        !grow((void **)&t->lens, &t->lens_cap, t->n + 1, sizeof(size_t)))
        return -1;
    char *copy = copy_text(text, len);
    if (!copy)
        return -1;
    t->items[t->n] = copy;
    t->lens[t->n] = len;
    size_t s = (size_t)hash_bytes(text, len) & (t->n_slots - 1);
    while (t->slots[s])
        s = (s + 1) & (t->n_slots - 1);
    t->slots[s] = (uint32_t)(t->n + 1);
    return (long)t->n++;
}

static void strtab_free(strtab *t)
{
    for (size_t i = 0; t->items && i < t->n; i++)
        dsc__free(t->items[i]);
    dsc__free(t->items);
    dsc__free(t->lens);
    dsc__free(t->slots);
    memset(t, 0, sizeof *t);
}

/* Hand the strings over (to a prep): *items gets them, the table keeps nothing. */
static size_t strtab_release(strtab *t, char ***items)
{
    size_t n = t->n;

    *items = t->items;
    t->items = NULL;
    t->n = 0;
    strtab_free(t);
    return n;
}

/* ---- Cells ------------------------------------------------------------------------------- */

enum cell_kind { KIND_NUMBER, KIND_MISSING, KIND_STRING, KIND_RANGE };

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* true when text[0..len) equals word (lower case) ignoring ASCII case. */
static bool equals_word(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);

    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(text[i]) != word[i])
            return false;
    }
    return true;
}

/* The markers of a missing value: empty, NA, NaN (signed or not, any case) and ?. */
static bool is_missing_marker(const char *text, size_t len)
{
    if (len == 0 || (len == 1 && text[0] == '?'))
        return true;
    if (len > 0 && (text[0] == '+' || text[0] == '-')) {
        text++;
        len--;
        return equals_word(text, len, "nan");
    }
    return equals_word(text, len, "na") || equals_word(text, len, "nan");
}

static bool is_infinity(const char *text, size_t len)
{
    if (len > 0 && (text[0] == '+' || text[0] == '-')) {
        text++;
        len--;
    }
    return equals_word(text, len, "inf") || equals_word(text, len, "infinity");
}

/* What a cell holds; *value gets the number of a KIND_NUMBER cell. */
static enum cell_kind cell_kind(const char *text, size_t len, float *value)
{
    if (len == 0)
        return KIND_MISSING;
    int rc = dsc__parse_float(text, len, value);
    if (rc == 0)
        return KIND_NUMBER;
    if (rc == DSC_ELIMIT)
        return KIND_RANGE;
    if (is_missing_marker(text, len))
        return KIND_MISSING;
    if (is_infinity(text, len))
        return KIND_RANGE;
    return KIND_STRING;
}

static uint32_t float_bits(float v)
{
    uint32_t bits;

    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static float bits_float(uint32_t bits)
{
    float v;

    memcpy(&v, &bits, sizeof v);
    return v;
}

/*
 * The shortest decimal text that reads back as v ("3", "0.25", "1.5e+20"), the same in every
 * locale: the level name of a number in a one-hot column. The digits come from "%.*e", whose
 * radix character (the only locale-dependent part) is skipped.
 */
static size_t number_text(float v, char out[48])
{
    if (v == 0.0f) {
        strcpy(out, "0");
        return 1;
    }
    size_t n = 0;
    for (int precision = 1; precision <= 9; precision++) {
        char printed[64], digits[16];
        snprintf(printed, sizeof printed, "%.*e", precision - 1, (double)v);
        const char *p = printed;
        size_t n_digits = 0;
        while (*p && *p != 'e') {
            if (*p >= '0' && *p <= '9' && n_digits < sizeof digits - 1)
                digits[n_digits++] = *p;
            p++;
        }
        int exponent = *p == 'e' ? atoi(p + 1) : 0;
        while (n_digits > 1 && digits[n_digits - 1] == '0')
            n_digits--;
        digits[n_digits] = '\0';

        n = 0;
        if (v < 0)
            out[n++] = '-';
        if (exponent >= 0 && exponent < 10) {
            for (int i = 0; i <= exponent; i++)
                out[n++] = (size_t)i < n_digits ? digits[i] : '0';
            if ((size_t)exponent + 1 < n_digits) {
                out[n++] = '.';
                for (size_t i = (size_t)exponent + 1; i < n_digits; i++)
                    out[n++] = digits[i];
            }
        } else if (exponent < 0 && exponent >= -5) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -exponent - 1; i++)
                out[n++] = '0';
            for (size_t i = 0; i < n_digits; i++)
                out[n++] = digits[i];
        } else {
            out[n++] = digits[0];
            if (n_digits > 1) {
                out[n++] = '.';
                for (size_t i = 1; i < n_digits; i++)
                    out[n++] = digits[i];
            }
            n += (size_t)snprintf(out + n, 48 - n, "e%+d", exponent);
        }
        out[n] = '\0';
        float back;
        if (dsc__parse_float(out, n, &back) == 0 && back == v)
            break;
    }
    return n;
}

/* ---- The reader -------------------------------------------------------------------------- */

typedef struct field {
    size_t off, len; /* in the record's text, unquoted and trimmed */
    uint64_t line;   /* where the field starts */
    size_t col;
    bool quoted;
} field;

typedef struct record {
    char *text;
    size_t text_len, text_cap;
    field *fields;
    size_t n, cap;
    uint64_t line;      /* the line the record starts on */
    uint64_t end_line;  /* the line it ends on, and the column of its end */
    size_t end_col;
} record;

/* The state of one file column. */
typedef struct column {
    bool categorical;
    strtab levels;
    size_t first_feature;
} column;

enum target_kind { TARGET_NONE, TARGET_NUMBER, TARGET_CLASS };

typedef struct csv {
    FILE *in;
    const char *path;
    unsigned char *buf;
    size_t cap, pos, len;
    bool eof, skip_lf;
    uint64_t base;       /* file offset of buf[0] */
    uint64_t line;       /* line of the byte at pos */
    uint64_t line_start; /* file offset of that line's first byte */
    char delim;
    bool stop[256];      /* bytes that end a run of an unquoted field */
    bool blank[256];     /* spaces and tabs that are not the delimiter */
    bool fast_stop[256]; /* bytes read_row_fast leaves to read_record: delimiter " CR NUL */

    bool learning;
    const dsc_prep *prep;
    dsc_missing missing;
    size_t max_levels;
    int classify;

    record rec[2];
    size_t n_fields;
    bool header;
    char **names;        /* n_fields column names */
    column *cols;        /* n_fields */
    size_t target;       /* its file column, valid when target_kind != TARGET_NONE */
    enum target_kind target_kind;
    strtab classes;
    float *class_values; /* prediction: each class label's number, or NaN */

    uint32_t **chunks;   /* the row store */
    size_t n_chunks, chunks_cap, rows_per_chunk, n_rows;
    size_t n_missing, n_unseen;

    /* read_row_fast: a record whose text is the line in buf, the fields it leaves to
     * feature_cell and target_cell, and cells for a row whose chunk is not yet made. */
    bool fast;           /* read_row_fast is allowed (dsc__allow_fast_text) */
    size_t n_fast;       /* rows it stored */
    record view;
    struct slow_field *slow;
    uint32_t *scratch;
} csv;

/* A value made safe for a one-line message: control bytes as '?', cut at SHOWN_BYTES. */
static const char *shown(const char *text, size_t len, char out[SHOWN_BYTES + 4])
{
    size_t n = len > SHOWN_BYTES ? SHOWN_BYTES : len;

    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    if (len > n) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Record "PATH:LINE:COL: message" and return code. */
static int fail_at(const csv *c, int code, uint64_t line, size_t col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static int fail_at(const csv *c, int code, uint64_t line, size_t col, const char *fmt, ...)
{
    char message[400];
    va_list args;

    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return dsc__fail(code, "%s:%llu:%zu: %s", c->path, (unsigned long long)line, col, message);
}

/* The 1-based column of buf[index] in its line. */
static size_t col_at(const csv *c, size_t index)
{
    return (size_t)(c->base + index - c->line_start) + 1;
}

/*
 * Read more input behind the unconsumed bytes buf[pos..len), moving them to the front and
 * growing the buffer when they fill it. The number of bytes read, 0 at the end, or DSC_EIO.
 */
static long refill(csv *c)
{
    if (c->eof)
        return 0;
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->base += c->pos;
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->len == c->cap) {
        void *buf = c->buf;
        size_t cap = c->cap;
        if (!grow(&buf, &cap, c->cap * 2, 1))
            return dsc__fail(DSC_ENOMEM, "%s: out of memory for a line of %zu bytes", c->path,
                             c->len);
        c->buf = buf;
        c->cap = cap;
    }
    size_t got = fread(c->buf + c->len, 1, c->cap - c->len, c->in);
    if (got == 0) {
        if (ferror(c->in))
            return dsc__fail(DSC_EIO, "%s: read error: %s", c->path, strerror(errno));
        c->eof = true;
        return 0;
    }
    c->len += got;
    return (long)got;
}

/*
 * The delimiter of the first non-blank line: the most frequent of , ; tab | outside quotes
 * (in that order on a tie), or ',' when it has none. Looks ahead without consuming.
 */
static int detect_delimiter(csv *c)
{
    static const char candidates[4] = {',', ';', '\t', '|'};
    size_t counts[4] = {0};
    bool in_quotes = false, content = false;
    size_t i = c->pos;

    for (;;) {
        if (i == c->len) {
            size_t offset = i - c->pos;
            if (offset >= MAX_LINE)
                break;
            long got = refill(c);
            if (got < 0)
                return (int)got;
            if (got == 0)
                break;
            i = c->pos + offset;
            continue;
        }
        unsigned char ch = c->buf[i++];
        if (ch == '"') {
            in_quotes = !in_quotes;
            content = true;
        } else if (in_quotes) {
            continue;
        } else if (ch == '\n' || ch == '\r') {
            if (content)
                break;
        } else if (ch != ' ') {
            content = true;
            for (int k = 0; k < 4; k++)
                counts[k] += ch == (unsigned char)candidates[k];
        }
    }
    int best = 0;
    for (int k = 1; k < 4; k++) {
        if (counts[k] > counts[best])
            best = k;
    }
    c->delim = counts[best] ? candidates[best] : ',';
    return 0;
}

/* Append bytes to the current (last) field of r, within the field and line limits. */
static int append(csv *c, record *r, const void *bytes, size_t n)
{
    field *f = &r->fields[r->n - 1];

    if (r->text_len - f->off + n > MAX_FIELD)
        return fail_at(c, DSC_ELIMIT, f->line, f->col, "field longer than 1 MiB");
    if (r->text_len + n > MAX_LINE)
        return fail_at(c, DSC_ELIMIT, r->line, 1, "line longer than 64 MiB");
    if (r->text_len + n > r->text_cap &&
        !grow((void **)&r->text, &r->text_cap, r->text_len + n, 1))
        return fail_at(c, DSC_ENOMEM, f->line, f->col, "out of memory");
    memcpy(r->text + r->text_len, bytes, n);
    r->text_len += n;
    return 0;
}

/* Start a field at buf[index]. */
static int begin_field(csv *c, record *r, size_t index)
{
    if (r->n == MAX_COLUMNS)
        return fail_at(c, DSC_ELIMIT, c->line, col_at(c, index), "more than %zu columns",
                       MAX_COLUMNS);
    if (r->n == r->cap && !grow((void **)&r->fields, &r->cap, r->n + 1, sizeof(field)))
        return fail_at(c, DSC_ENOMEM, c->line, col_at(c, index), "out of memory");
    r->fields[r->n++] = (field){r->text_len, 0, c->line, col_at(c, index), false};
    return 0;
}

/* Close the current field; an unquoted one loses its trailing spaces and tabs. */
static void end_field(record *r)
{
    field *f = &r->fields[r->n - 1];

    if (!f->quoted) {
        while (r->text_len > f->off &&
               (r->text[r->text_len - 1] == ' ' || r->text[r->text_len - 1] == '\t'))
            r->text_len--;
    }
    f->len = r->text_len - f->off;
}

/* Consume the line end at pos (ch, '\n' or '\r') that closes a record. */
static void end_line(csv *c, record *r, unsigned char ch)
{
    r->end_line = c->line;
    r->end_col = col_at(c, c->pos);
    c->pos++;
    c->line++;
    c->line_start = c->base + c->pos;
    c->skip_lf = ch == '\r';
}

enum { S_START, S_UNQUOTED, S_QUOTED, S_QUOTE_SEEN, S_AFTER_QUOTE };

/*
 * Read the next record into r, skipping blank lines. 1 for a record, 0 at the end of the
 * input, or a negative code.
 */
static int read_record(csv *c, record *r)
{
    int state, rc;

next_line:
    r->n = 0;
    r->text_len = 0;
    r->line = c->line;
    state = S_START;
    bool at_line_start = true;
    for (;;) {
        if (c->pos == c->len) {
            long got = refill(c);
            if (got < 0)
                return (int)got;
            if (got == 0) {
                if (at_line_start)
                    return 0;
                if (state == S_QUOTED) {
                    field *f = &r->fields[r->n - 1];
                    return fail_at(c, DSC_EFORMAT, f->line, f->col, "unterminated quote");
                }
                end_field(r);
                r->end_line = c->line;
                r->end_col = col_at(c, c->pos);
                if (r->n == 1 && r->fields[0].len == 0 && !r->fields[0].quoted)
                    return 0; /* trailing spaces without a line end */
                return 1;
            }
        }
        unsigned char *buf = c->buf;
        unsigned char ch = buf[c->pos];

        if (c->skip_lf) { /* the '\n' of a "\r\n" line end */
            c->skip_lf = false;
            if (ch == '\n') {
                c->pos++;
                c->line_start = c->base + c->pos;
                r->line = c->line;
                continue;
            }
        }
        if (at_line_start) {
            at_line_start = false;
            if ((rc = begin_field(c, r, c->pos)) != 0)
                return rc;
        }
        if (ch == 0)
            return fail_at(c, DSC_EFORMAT, c->line, col_at(c, c->pos), "binary data");

        switch (state) {
        case S_START:
            if (ch == (unsigned char)c->delim) {
                end_field(r);
                c->pos++;
                if ((rc = begin_field(c, r, c->pos)) != 0)
                    return rc;
            } else if (ch == ' ' || ch == '\t') {
                c->pos++;
            } else if (ch == '"') {
                r->fields[r->n - 1].quoted = true;
                c->pos++;
                state = S_QUOTED;
            } else if (ch == '\n' || ch == '\r') {
                end_field(r);
                end_line(c, r, ch);
                if (r->n == 1 && r->fields[0].len == 0 && !r->fields[0].quoted)
                    goto next_line; /* a blank line */
                return 1;
            } else {
                state = S_UNQUOTED;
            }
            break;

        case S_UNQUOTED: {
            size_t end = c->pos;
            while (end < c->len && !c->stop[buf[end]])
                end++;
            if (end > c->pos && (rc = append(c, r, buf + c->pos, end - c->pos)) != 0)
                return rc;
            c->pos = end;
            if (end == c->len)
                break;
            ch = buf[end];
            if (ch == (unsigned char)c->delim) {
                end_field(r);
                c->pos++;
                if ((rc = begin_field(c, r, c->pos)) != 0)
                    return rc;
                state = S_START;
            } else if (ch == '\n' || ch == '\r') {
                end_field(r);
                end_line(c, r, ch);
                return 1;
            }
            break; /* a NUL byte: reported at the top of the loop */
        }

        case S_QUOTED: {
            size_t end = c->pos;
            while (end < c->len && buf[end] != '"' && buf[end] != '\n' && buf[end] != 0)
                end++;
            if (end > c->pos && (rc = append(c, r, buf + c->pos, end - c->pos)) != 0)
                return rc;
            c->pos = end;
            if (end == c->len || buf[end] == 0)
                break;
            if (buf[end] == '"') {
                state = S_QUOTE_SEEN;
            } else { /* a line end inside quotes belongs to the field */
                if ((rc = append(c, r, "\n", 1)) != 0)
                    return rc;
                c->line++;
                c->line_start = c->base + end + 1;
            }
            c->pos++;
            break;
        }

        case S_QUOTE_SEEN:
        case S_AFTER_QUOTE:
            if (ch == '"' && state == S_QUOTE_SEEN) { /* a doubled quote */
                if ((rc = append(c, r, "\"", 1)) != 0)
                    return rc;
                c->pos++;
                state = S_QUOTED;
            } else if (ch == (unsigned char)c->delim) {
                end_field(r);
                c->pos++;
                if ((rc = begin_field(c, r, c->pos)) != 0)
                    return rc;
                state = S_START;
            } else if (ch == '\n' || ch == '\r') {
                end_field(r);
                end_line(c, r, ch);
                return 1;
            } else if (ch == ' ' || ch == '\t') {
                c->pos++;
                state = S_AFTER_QUOTE;
            } else {
                return fail_at(c, DSC_EFORMAT, c->line, col_at(c, c->pos),
                               "text after a closing quote");
            }
            break;
        }
    }
}

static const char *field_text(const record *r, size_t j)
{
    return r->text ? r->text + r->fields[j].off : ""; /* no text yet: only empty fields */
}

/* ---- Columns, levels and targets --------------------------------------------------------- */

static const char *column_name(const csv *c, size_t j)
{
    return c->names[j];
}

/* The row store's cells of row i. */
static uint32_t *row_cells(const csv *c, size_t i)
{
    return c->chunks[i / c->rows_per_chunk] + (i % c->rows_per_chunk) * c->n_fields;
}

/* The level id of text in column j, adding it when learning; CELL_UNSEEN for an unknown
 * level at prediction. Negative on failure. */
static int64_t level_of(csv *c, size_t j, const char *text, size_t len, const field *f)
{
    column *col = &c->cols[j];
    int64_t id = strtab_find(&col->levels, text, len);
    char name[SHOWN_BYTES + 4];

    if (id >= 0)
        return id;
    if (!c->learning)
        return CELL_UNSEEN;
    if (col->levels.n >= c->max_levels) {
        const char *cname = column_name(c, j);
        return fail_at(c, DSC_ELIMIT, f->line, f->col, "column %s has more than %zu levels",
                       shown(cname, strlen(cname), name), c->max_levels);
    }
    id = strtab_add(&col->levels, text, len);
    if (id < 0)
        return fail_at(c, DSC_ENOMEM, f->line, f->col, "out of memory");
    return id;
}

/* The level of a number in a one-hot column: its exact text, else its shortest text. */
static int64_t number_level(csv *c, size_t j, const char *text, size_t len, float v,
                            const field *f)
{
    char canonical[48];

    if (!c->learning) {
        int64_t id = strtab_find(&c->cols[j].levels, text, len);
        if (id >= 0)
            return id;
    }
    size_t n = number_text(v, canonical);
    return level_of(c, j, canonical, n, f);
}

/*
 * Column j turned out not to be numeric: give the numbers stored so far their levels, in
 * order of appearance. (A known simplification: a number's level is its shortest text, so
 * "1" and "1.0" in one column are the same level.)
 */
static int make_categorical(csv *c, size_t j, const field *f)
{
    enum { CACHE = 1024 };
    uint32_t cached_bits[CACHE], cached_id[CACHE];
    bool cached[CACHE] = {false};

    c->cols[j].categorical = true;
    for (size_t i = 0; i < c->n_rows; i++) {
        uint32_t *cell = &row_cells(c, i)[j];
        float v = bits_float(*cell);
        if (isnan(v)) {
            *cell = CELL_MISSING;
            continue;
        }
        size_t slot = (*cell * 2654435761u) >> 22 & (CACHE - 1);
        if (cached[slot] && cached_bits[slot] == *cell) {
            *cell = cached_id[slot];
            continue;
        }
        char text[48];
        size_t n = number_text(v, text);
        int64_t id = level_of(c, j, text, n, f);
        if (id < 0)
            return (int)id;
        cached[slot] = true;
        cached_bits[slot] = *cell;
        cached_id[slot] = (uint32_t)id;
        *cell = (uint32_t)id;
    }
    return 0;
}

/* The class of a target text, adding it when learning. Negative on failure. */
static int64_t class_of(csv *c, const char *text, size_t len, const field *f, bool is_number,
                        float v)
{
    char value[SHOWN_BYTES + 4];
    int64_t id = strtab_find(&c->classes, text, len);

    if (id >= 0)
        return id;
    if (!c->learning) {
        for (size_t k = 0; is_number && k < c->classes.n; k++) {
            if (c->class_values[k] == v)
                return (int64_t)k;
        }
        return fail_at(c, DSC_EFORMAT, f->line, f->col, "class '%s' was not seen in training",
                       shown(text, len, value));
    }
    if (c->classes.n >= MAX_CLASSES)
        return fail_at(c, DSC_ELIMIT, f->line, f->col, "more than %zu classes", MAX_CLASSES);
    id = strtab_add(&c->classes, text, len);
    if (id < 0)
        return fail_at(c, DSC_ENOMEM, f->line, f->col, "out of memory");
    return id;
}

/* The target turned out to hold text: the numbers stored so far become classes. */
static int make_target_classes(csv *c, const field *f)
{
    c->target_kind = TARGET_CLASS;
    for (size_t i = 0; i < c->n_rows; i++) {
        uint32_t *cell = &row_cells(c, i)[c->target];
        char text[48];
        size_t n = number_text(bits_float(*cell), text);
        int64_t id = class_of(c, text, n, f, false, 0.0f);
        if (id < 0)
            return (int)id;
        *cell = (uint32_t)id;
    }
    return 0;
}

static int target_cell(csv *c, const record *r, uint32_t *cell)
{
    const field *f = &r->fields[c->target];
    const char *text = field_text(r, c->target);
    char value[SHOWN_BYTES + 4], name[SHOWN_BYTES + 4];
    const char *tname = column_name(c, c->target);
    float v = 0.0f;
    enum cell_kind kind = cell_kind(text, f->len, &v);
    int64_t id;

    if (kind == KIND_MISSING)
        return fail_at(c, DSC_EFORMAT, f->line, f->col, "missing target value in column %s",
                       shown(tname, strlen(tname), name));
    if (kind == KIND_RANGE)
        return fail_at(c, DSC_EFORMAT, f->line, f->col, "value out of range");
    if (c->target_kind == TARGET_NUMBER && kind == KIND_NUMBER) {
        *cell = float_bits(v);
        return 0;
    }
    if (c->target_kind == TARGET_NUMBER && (!c->learning || c->classify == 0))
        return fail_at(c, DSC_EFORMAT, f->line, f->col, "target '%s' is not a number",
                       shown(text, f->len, value));
    if (c->target_kind == TARGET_NUMBER) {
        int rc = make_target_classes(c, f);
        if (rc)
            return rc;
    }
    if (kind == KIND_NUMBER && c->learning && c->classify != 1) {
        /* A number among text labels (classify -1): its shortest text, as stored so far. */
        char canonical[48];
        size_t n = number_text(v, canonical);
        id = class_of(c, canonical, n, f, true, v);
    } else {
        id = class_of(c, text, f->len, f, kind == KIND_NUMBER, v);
    }
    if (id < 0)
        return (int)id;
    *cell = (uint32_t)id;
    return 0;
}

static int feature_cell(csv *c, const record *r, size_t j, uint32_t *cell)
{
    const field *f = &r->fields[j];
    const char *text = field_text(r, j);
    column *col = &c->cols[j];
    char value[SHOWN_BYTES + 4], name[SHOWN_BYTES + 4];
    float v = 0.0f;
    int64_t id;

    switch (cell_kind(text, f->len, &v)) {
    case KIND_NUMBER:
        if (!col->categorical) {
            *cell = float_bits(v);
            return 0;
        }
        id = number_level(c, j, text, f->len, v, f);
        break;
    case KIND_MISSING:
        if (c->missing == DSC_MISSING_ERROR)
            return fail_at(c, DSC_EFORMAT, f->line, f->col,
                           "missing value in column %s (use --missing mean or median)",
                           shown(column_name(c, j), strlen(column_name(c, j)), name));
        c->n_missing++;
        *cell = col->categorical ? CELL_MISSING : float_bits(NAN);
        return 0;
    case KIND_RANGE:
        return fail_at(c, DSC_EFORMAT, f->line, f->col, "value out of range");
    default:
        if (!col->categorical) {
            if (!c->learning)
                return fail_at(c, DSC_EFORMAT, f->line, f->col,
                               "'%s' is not a number, and column %s was numeric in training",
                               shown(text, f->len, value),
                               shown(column_name(c, j), strlen(column_name(c, j)), name));
            int rc = make_categorical(c, j, f);
            if (rc)
                return rc;
        }
        id = level_of(c, j, text, f->len, f);
        break;
    }
    if (id < 0)
        return (int)id;
    if (id == CELL_UNSEEN)
        c->n_unseen++;
    *cell = (uint32_t)id;
    return 0;
}

/* Make the row store's chunk for row n_rows when it has none (line is for the message). */
static int make_chunk(csv *c, uint64_t line)
{
    if (c->n_rows / c->rows_per_chunk < c->n_chunks)
        return 0;
    if (!grow((void **)&c->chunks, &c->chunks_cap, c->n_chunks + 1, sizeof(uint32_t *)))
        return fail_at(c, DSC_ENOMEM, line, 1, "out of memory");
    c->chunks[c->n_chunks] = dsc__alloc(dsc__mul(c->rows_per_chunk * c->n_fields, 4));
    if (!c->chunks[c->n_chunks])
        return fail_at(c, DSC_ENOMEM, line, 1, "out of memory");
    c->n_chunks++;
    return 0;
}

/* Store one data record as row n_rows. */
static int add_row(csv *c, const record *r)
{
    if (r->n != c->n_fields) {
        uint64_t line = r->n > c->n_fields ? r->fields[c->n_fields].line : r->end_line;
        size_t col = r->n > c->n_fields ? r->fields[c->n_fields].col : r->end_col;
        return fail_at(c, DSC_EFORMAT, line, col, "line %llu has %zu field%s, expected %zu",
                       (unsigned long long)r->line, r->n, r->n == 1 ? "" : "s", c->n_fields);
    }
    if (c->n_rows == MAX_ROWS)
        return fail_at(c, DSC_ELIMIT, r->line, 1, "more than %zu data rows", MAX_ROWS - 1);

    int rc = make_chunk(c, r->line);
    if (rc)
        return rc;
    uint32_t *cells = row_cells(c, c->n_rows);
    for (size_t j = 0; j < c->n_fields; j++) {
        if (c->target_kind != TARGET_NONE && j == c->target)
            rc = target_cell(c, r, &cells[j]);
        else
            rc = feature_cell(c, r, j, &cells[j]);
        if (rc)
            return rc;
    }
    c->n_rows++;
    return 0;
}

/* ---- The usual record, read in place ------------------------------------------------------ */

/*
 * Lines at most this long (in bytes) may take read_row_fast. Below MAX_COLUMNS, such a line
 * cannot reach the field, line or column limits that read_record enforces.
 */
#define FAST_LINE_MAX (MAX_COLUMNS - 1)

/* A field read_row_fast hands to feature_cell or target_cell: its column and text. */
struct slow_field {
    size_t j;
    uint32_t start, off, len; /* from the line's start: the field, its trimmed text, length */
};

/* Whether a number in file column j is stored as its float as it stands. */
static bool stored_as_number(const csv *c, size_t j)
{
    return !c->cols[j].categorical && !(j == c->target && c->target_kind == TARGET_CLASS);
}

/*
 * The usual data record straight from the buffer, without copying it: one line complete in
 * the buffer, without quotes, NUL bytes or lone CRs, no longer than FAST_LINE_MAX, with the
 * expected number of fields. Numbers take the fast path of dsc__parse_float as the fields are
 * split; any other field goes through feature_cell or target_cell as add_row does, with the
 * same line and column. Returns 1 when the record was stored (as add_row would), 0 when
 * read_record and add_row must take it (nothing was stored, nothing consumed but the LF of a
 * CRLF), or a negative code.
 */
static int read_row_fast(csv *c)
{
    if (c->skip_lf && c->pos < c->len) { /* the '\n' of a "\r\n" line end */
        c->skip_lf = false;
        if (c->buf[c->pos] == '\n') {
            c->pos++;
            c->line_start = c->base + c->pos;
        }
    }
    if (c->skip_lf)
        return 0;

    /* The line end, reading on (and growing the buffer) for a line that is not all in. */
    unsigned char *newline;
    while (!(newline = memchr(c->buf + c->pos, '\n', c->len - c->pos))) {
        if (c->len - c->pos > FAST_LINE_MAX)
            return 0;
        long got = refill(c);
        if (got <= 0)
            return (int)got;
    }
    const unsigned char *line = c->buf + c->pos, *end = newline;
    if (end > line && end[-1] == '\r')
        end--;
    if ((size_t)(end - line) > FAST_LINE_MAX)
        return 0;

    /* Split and read the fields: numbers into their cells, the rest listed for later. */
    uint32_t *cells = c->n_rows / c->rows_per_chunk < c->n_chunks ? row_cells(c, c->n_rows)
                                                                   : c->scratch;
    const unsigned char *p = line;
    size_t n_slow = 0, last = c->n_fields - 1;
    for (size_t j = 0;; j++) {
        const unsigned char *start = p;
        while (p < end && c->blank[*p])
            p++;
        float v;
        const unsigned char *after = (const unsigned char *)dsc__scan_float(
            (const char *)p, (const char *)end, &v);
        const unsigned char *next = after;
        while (next && next < end && c->blank[*next])
            next++;
        if (next && (next == end || *next == (unsigned char)c->delim) && stored_as_number(c, j)) {
            cells[j] = float_bits(v);
        } else {
            const unsigned char *text = p;
            while (p < end && !c->fast_stop[*p])
                p++;
            if (p < end && *p != (unsigned char)c->delim)
                return 0; /* a quote, NUL or lone CR */
            next = p;
            while (p > text && c->blank[p[-1]])
                p--;
            c->slow[n_slow++] = (struct slow_field){j, (uint32_t)(start - line),
                                                    (uint32_t)(text - line), (uint32_t)(p - text)};
        }
        if ((next == end) != (j == last))
            return 0; /* too few or too many fields: add_row says so */
        if (j == last)
            break;
        p = next + 1;
    }
    if (c->n_fields == 1 && n_slow == 1 && c->slow[0].len == 0)
        return 0; /* a blank line, which read_record skips */
    if (c->n_rows == MAX_ROWS)
        return 0;

    /* The record is well formed: store it as add_row does. */
    int rc = make_chunk(c, c->line);
    if (rc)
        return rc;
    if (cells == c->scratch) {
        cells = row_cells(c, c->n_rows);
        memcpy(cells, c->scratch, c->n_fields * sizeof *cells);
    }
    record *view = &c->view;
    view->text = (char *)line;
    view->line = view->end_line = c->line;
    view->end_col = (size_t)(end - line) + 1;
    view->n = c->n_fields;
    for (size_t k = 0; k < n_slow; k++) {
        const struct slow_field *s = &c->slow[k];
        size_t j = s->j;
        view->fields[j] = (field){s->off, s->len, c->line, (size_t)s->start + 1, false};
        if (c->target_kind != TARGET_NONE && j == c->target)
            rc = target_cell(c, view, &cells[j]);
        else
            rc = feature_cell(c, view, j, &cells[j]);
        if (rc)
            return rc;
    }
    c->n_rows++;
    c->n_fast++;

    c->pos = (size_t)(newline - c->buf) + 1;
    c->line++;
    c->line_start = c->base + c->pos;
    return 1;
}

/* Room for read_row_fast once the number of fields is known. */
static int fast_setup(csv *c)
{
    c->view.fields = dsc__alloc(dsc__mul(c->n_fields, sizeof(field)));
    c->view.cap = c->n_fields;
    c->slow = dsc__alloc(dsc__mul(c->n_fields, sizeof(struct slow_field)));
    c->scratch = dsc__alloc(dsc__mul(c->n_fields, sizeof(uint32_t)));
    if (!c->view.fields || !c->slow || !c->scratch)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    return 0;
}

/* ---- Setting up from the first records --------------------------------------------------- */

/* Prediction: whether file column j is (by position) a numeric column of the model. */
static bool model_column_numeric(const csv *c, size_t j)
{
    const dsc_prep *prep = c->prep;

    if (!prep->n_columns)
        return j < prep->n_features;
    return j < prep->n_columns && !prep->columns[j].categorical;
}

/*
 * Whether the first record is a header: it has a text cell where the second record has a
 * number, or, with one record only, any text cell (at prediction: in a numeric column of the
 * model); at prediction also when it holds every column name of the model.
 */
static bool looks_like_header(const csv *c, const record *r1, const record *r2, bool have_r2)
{
    float v;

    for (size_t j = 0; j < r1->n; j++) {
        if (cell_kind(field_text(r1, j), r1->fields[j].len, &v) != KIND_STRING)
            continue;
        if (!have_r2 && (c->learning || model_column_numeric(c, j)))
            return true;
        if (j < r2->n && cell_kind(field_text(r2, j), r2->fields[j].len, &v) == KIND_NUMBER)
            return true;
    }
    if (c->learning || c->prep->n_columns == 0)
        return false;
    for (size_t i = 0; i < c->prep->n_columns; i++) {
        const char *name = c->prep->columns[i].name;
        bool found = false;
        for (size_t j = 0; name && j < r1->n && !found; j++)
            found = r1->fields[j].len == strlen(name) &&
                    memcmp(field_text(r1, j), name, r1->fields[j].len) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* The file column of a header name, or n_fields. */
static size_t find_column(const csv *c, const record *header, const char *name)
{
    size_t len = strlen(name);

    for (size_t j = 0; header && j < header->n; j++) {
        if (header->fields[j].len == len && memcmp(field_text(header, j), name, len) == 0)
            return j;
    }
    return c->n_fields;
}

/* The target column opts->target names (a header name or a 1-based index). */
static int resolve_target(csv *c, const record *header, const char *target, uint64_t line,
                          size_t *out)
{
    char name[SHOWN_BYTES + 4];
    size_t len = strlen(target), index = 0, digits = 0;

    while (digits < len && target[digits] >= '0' && target[digits] <= '9') {
        if (index < 100000000)
            index = index * 10 + (size_t)(target[digits] - '0');
        digits++;
    }
    if (digits == len) {
        if (index < 1 || index > c->n_fields)
            return fail_at(c, DSC_EINVAL, line, 1, "target column %s is not among the %zu columns",
                           shown(target, len, name), c->n_fields);
        *out = index - 1;
        return 0;
    }
    *out = find_column(c, header, target);
    if (*out == c->n_fields)
        return fail_at(c, DSC_EINVAL, line, 1, "no column named %s%s", shown(target, len, name),
                       header ? "" : " (the file has no header)");
    return 0;
}

/* Column names from the header, or x1, x2, ... by file column. */
static int set_names(csv *c, const record *header)
{
    c->names = dsc__calloc(c->n_fields, sizeof(char *));
    if (!c->names)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    for (size_t j = 0; j < c->n_fields; j++) {
        char generated[32];
        const char *name = generated;
        size_t len;
        if (header && header->fields[j].len) {
            name = field_text(header, j);
            len = header->fields[j].len;
        } else {
            len = (size_t)snprintf(generated, sizeof generated, "x%zu", j + 1);
        }
        if (!(c->names[j] = copy_text(name, len)))
            return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    }
    return 0;
}

/* Learning: the target column and every other column numeric until shown otherwise. */
static int setup_learning(csv *c, const dsc_read_options *opts, const record *header,
                          uint64_t line)
{
    c->target = c->n_fields - 1;
    if (opts->target) {
        int rc = resolve_target(c, header, opts->target, line, &c->target);
        if (rc)
            return rc;
    }
    if (c->n_fields < 2)
        return fail_at(c, DSC_EFORMAT, line, 1, "no feature columns besides the target");
    c->target_kind = opts->classify == 1 ? TARGET_CLASS : TARGET_NUMBER;
    return 0;
}

/* Prediction: columns and levels as the model says; the target is optional. */
static int setup_prediction(csv *c, const dsc_read_options *opts, const record *header,
                            uint64_t line)
{
    const dsc_prep *prep = c->prep;
    size_t n_columns = prep->n_columns ? prep->n_columns : prep->n_features;
    char levels_text[SHOWN_BYTES + 4];

    if (c->n_fields != n_columns && c->n_fields != n_columns + 1)
        return fail_at(c, DSC_EFORMAT, line, 1, "line %llu has %zu field%s, expected %zu",
                       (unsigned long long)line, c->n_fields, c->n_fields == 1 ? "" : "s",
                       n_columns + 1);
    if (c->n_fields == n_columns + 1) {
        c->target = c->n_fields - 1;
        if (opts->target) {
            int rc = resolve_target(c, header, opts->target, line, &c->target);
            if (rc)
                return rc;
        } else if (header && prep->target_name) {
            size_t j = find_column(c, header, prep->target_name);
            if (j < c->n_fields)
                c->target = j;
        }
        c->target_kind = prep->n_classes ? TARGET_CLASS : TARGET_NUMBER;
    }

    /* Known classes, and their values as numbers for labels written differently. */
    if (c->target_kind == TARGET_CLASS) {
        c->class_values = dsc__alloc(dsc__mul(prep->n_classes, sizeof(float)));
        if (!c->class_values)
            return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
        for (size_t k = 0; k < prep->n_classes; k++) {
            const char *label = prep->classes[k];
            if (strtab_add(&c->classes, label, strlen(label)) < 0)
                return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
            if (dsc__parse_float(label, strlen(label), &c->class_values[k]) != 0)
                c->class_values[k] = NAN;
        }
    }

    size_t i = 0, next_feature = 0;
    for (size_t j = 0; j < c->n_fields; j++) {
        if (c->target_kind != TARGET_NONE && j == c->target)
            continue;
        column *col = &c->cols[j];
        if (prep->n_columns) {
            const dsc_column *src = &prep->columns[i];
            if (src->name) {
                dsc__free(c->names[j]);
                if (!(c->names[j] = copy_text(src->name, strlen(src->name))))
                    return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
            }
            col->categorical = src->categorical != 0;
            for (size_t k = 0; col->categorical && k < src->n_levels; k++) {
                const char *level = src->levels[k];
                if (strtab_find(&col->levels, level, strlen(level)) >= 0)
                    return dsc__fail(DSC_EFORMAT, "%s: the model repeats level %s", c->path,
                                     shown(level, strlen(level), levels_text));
                if (strtab_add(&col->levels, level, strlen(level)) < 0)
                    return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
            }
        }
        col->first_feature = next_feature;
        next_feature += col->categorical ? col->levels.n : 1;
        i++;
    }
    if (next_feature != prep->n_features)
        return dsc__fail(DSC_EFORMAT, "%s: the model's columns give %zu features, not %zu",
                         c->path, next_feature, prep->n_features);
    return 0;
}

/* ---- The result -------------------------------------------------------------------------- */

/* Lay out the encoded matrix and the targets, freeing the row store as it goes. */
static int lay_out(csv *c, dsc_table *table)
{
    size_t n_features = 0;

    for (size_t j = 0; j < c->n_fields; j++) {
        if (c->target_kind != TARGET_NONE && j == c->target)
            continue;
        c->cols[j].first_feature = n_features;
        n_features += c->cols[j].categorical ? c->cols[j].levels.n : 1;
    }
    size_t total;
    if (dsc__mul_overflows(c->n_rows, n_features, &total) || total > SIZE_MAX / sizeof(float))
        return dsc__fail(DSC_ELIMIT, "%s: %zu rows of %zu features are too many", c->path,
                         c->n_rows, n_features);
    table->x = dsc__alloc(total * sizeof(float));
    if (c->target_kind == TARGET_CLASS)
        table->label = dsc__alloc(dsc__mul(c->n_rows, sizeof(int32_t)));
    else if (c->target_kind == TARGET_NUMBER)
        table->y = dsc__alloc(dsc__mul(c->n_rows, sizeof(float)));
    if (!table->x || (c->target_kind == TARGET_CLASS && !table->label) ||
        (c->target_kind == TARGET_NUMBER && !table->y))
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu rows of %zu features", c->path,
                         c->n_rows, n_features);

    for (size_t i = 0; i < c->n_rows; i++) {
        const uint32_t *cells = row_cells(c, i);
        float *x = table->x + i * n_features;
        for (size_t j = 0; j < c->n_fields; j++) {
            const column *col = &c->cols[j];
            if (c->target_kind != TARGET_NONE && j == c->target) {
                if (c->target_kind == TARGET_CLASS)
                    table->label[i] = (int32_t)cells[j];
                else
                    table->y[i] = bits_float(cells[j]);
            } else if (!col->categorical) {
                x[col->first_feature] = bits_float(cells[j]);
            } else {
                float *onehot = x + col->first_feature;
                float fill = cells[j] == CELL_MISSING ? NAN : 0.0f;
                for (size_t k = 0; k < col->levels.n; k++)
                    onehot[k] = fill;
                if (cells[j] < col->levels.n)
                    onehot[cells[j]] = 1.0f;
            }
        }
        if ((i + 1) % c->rows_per_chunk == 0 || i + 1 == c->n_rows) {
            dsc__free(c->chunks[i / c->rows_per_chunk]);
            c->chunks[i / c->rows_per_chunk] = NULL;
        }
    }
    table->data.n_rows = c->n_rows;
    table->data.n_features = n_features;
    table->data.n_targets = c->target_kind == TARGET_NUMBER ? 1 : 0;
    table->n_missing = c->n_missing;
    table->n_unseen = c->n_unseen;
    table->target_column = c->target_kind != TARGET_NONE ? c->target + 1 : 0;
    return 0;
}

/* Learning: move the names, levels and classes into the table's prep. */
static int fill_prep(csv *c, dsc_table *table, const dsc_read_options *opts)
{
    dsc_prep *prep = table->prep;

    prep->format = DSC_FORMAT_CSV;
    prep->missing = opts->missing;
    prep->n_features = table->data.n_features;
    prep->columns = dsc__calloc(c->n_fields - 1, sizeof(dsc_column));
    if (!prep->columns)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    prep->n_columns = c->n_fields - 1;
    for (size_t j = 0, i = 0; j < c->n_fields; j++) {
        if (j == c->target)
            continue;
        dsc_column *dst = &prep->columns[i++];
        dst->name = c->names[j];
        c->names[j] = NULL;
        dst->categorical = c->cols[j].categorical;
        dst->first_feature = c->cols[j].first_feature;
        dst->n_levels = strtab_release(&c->cols[j].levels, &dst->levels);
    }
    if (c->header) {
        prep->target_name = c->names[c->target];
        c->names[c->target] = NULL;
    }
    if (c->target_kind == TARGET_CLASS) {
        prep->n_targets = 0;
        prep->n_classes = strtab_release(&c->classes, &prep->classes);
        if (opts->classify == 1)
            return dsc__prep_sort_numeric_classes(prep, table->label, c->n_rows);
    } else {
        prep->n_targets = 1;
    }
    return 0;
}

static void csv_free(csv *c)
{
    dsc__free(c->buf);
    for (int i = 0; i < 2; i++) {
        dsc__free(c->rec[i].text);
        dsc__free(c->rec[i].fields);
    }
    dsc__free(c->view.fields);
    dsc__free(c->slow);
    dsc__free(c->scratch);
    for (size_t j = 0; c->names && j < c->n_fields; j++)
        dsc__free(c->names[j]);
    dsc__free(c->names);
    for (size_t j = 0; c->cols && j < c->n_fields; j++)
        strtab_free(&c->cols[j].levels);
    dsc__free(c->cols);
    strtab_free(&c->classes);
    dsc__free(c->class_values);
    for (size_t i = 0; i < c->n_chunks; i++)
        dsc__free(c->chunks[i]);
    dsc__free(c->chunks);
}

static int read_all(csv *c, dsc_table *table, const dsc_read_options *opts)
{
    int rc;

    /* A UTF-8 byte-order mark is not part of the first line. */
    c->buf = dsc__alloc(BLOCK_SIZE);
    if (!c->buf)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    c->cap = BLOCK_SIZE;
    while (c->len < 3 && !c->eof) {
        long got = refill(c);
        if (got < 0)
            return (int)got;
    }
    if (c->len >= 3 && memcmp(c->buf, "\xEF\xBB\xBF", 3) == 0) {
        c->pos = 3;
        c->line_start = 3;
    }

    if (opts->delimiter)
        c->delim = opts->delimiter;
    else if ((rc = detect_delimiter(c)) != 0)
        return rc;
    c->stop[(unsigned char)c->delim] = c->stop['\n'] = c->stop['\r'] = c->stop[0] = true;
    c->blank[' '] = c->blank['\t'] = true;
    c->blank[(unsigned char)c->delim] = false;
    c->fast_stop[(unsigned char)c->delim] = c->fast_stop['"'] = true;
    c->fast_stop['\r'] = c->fast_stop[0] = true;

    /* The first two records decide the header; the target and columns follow. */
    record *r1 = &c->rec[0], *r2 = &c->rec[1];
    int got1 = read_record(c, r1);
    if (got1 < 0)
        return got1;
    if (got1 == 0)
        return fail_at(c, DSC_EFORMAT, c->line, 1, "no data");
    int got2 = read_record(c, r2);
    if (got2 < 0)
        return got2;
    c->n_fields = r1->n;
    c->header = opts->header == 1 || (opts->header == -1 && looks_like_header(c, r1, r2, got2));
    const record *header = c->header ? r1 : NULL;

    c->cols = dsc__calloc(c->n_fields, sizeof(column));
    if (!c->cols || (rc = set_names(c, header)) != 0)
        return c->cols ? rc : dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    rc = c->learning ? setup_learning(c, opts, header, r1->line)
                     : setup_prediction(c, opts, header, r1->line);
    if (rc)
        return rc;
    c->rows_per_chunk = CHUNK_CELLS / c->n_fields ? CHUNK_CELLS / c->n_fields : 1;
    if ((rc = fast_setup(c)) != 0)
        return rc;

    /* The data records, streamed. */
    if (!c->header && (rc = add_row(c, r1)) != 0)
        return rc;
    if (got2 && (rc = add_row(c, r2)) != 0)
        return rc;
    for (;;) {
        int got = c->fast ? read_row_fast(c) : 0;
        if (got < 0)
            return got;
        if (got > 0)
            continue;
        got = read_record(c, r1);
        if (got < 0)
            return got;
        if (got == 0)
            break;
        if ((rc = add_row(c, r1)) != 0)
            return rc;
    }
    if (c->n_rows == 0)
        return fail_at(c, DSC_EFORMAT, c->line, 1, "no data rows");

    if ((rc = lay_out(c, table)) != 0)
        return rc;
    if (c->learning && table->data.n_features == 0)
        return fail_at(c, DSC_EFORMAT, r1->line, 1, "no feature columns besides the target");
    return c->learning ? fill_prep(c, table, opts) : 0;
}

int dsc__read_csv(dsc_table *table, FILE *in, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep)
{
    if (!table || !in || !path || !opts || !table->prep)
        return dsc__fail(DSC_EINVAL, "dsc__read_csv: table, in, path, opts or prep is NULL");

    csv c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.path = path;
    c.line = 1;
    c.learning = prep == NULL;
    c.prep = prep;
    c.missing = prep ? prep->missing : opts->missing;
    c.max_levels = opts->max_levels ? opts->max_levels : 1000;
    c.classify = opts->classify;
    c.fast = dsc__fast_text_allowed();
    if ((unsigned)c.missing >= DSC_MISSING_COUNT)
        return dsc__fail(DSC_EINVAL, "%s: unknown missing-value policy", path);

    int rc = read_all(&c, table, opts);
    dsc__add_fast_text_rows(c.n_fast);
    csv_free(&c);
    return rc;
}
