/*
 * cache.c - data caches: a table saved as a binary file that later runs map into memory and
 * use in place, so that reading it costs no parsing and no copy.
 *
 * The file format, version 1. Numbers are in the byte order of the machine that wrote the
 * file (its arrays are used in place), which the byte-order mark records; a machine of the
 * other order refuses the file. Counts and sizes are u64, enumerations u32, floats IEEE 754
 * binary32. The magic, the byte-order mark and the version keep their places in every
 * version, so that any later file is recognised and refused by its version.
 *
 *   offset  field
 *   0       magic: the 8 bytes "DSCDATA" and a NUL (no CSV or LIBSVM file holds a NUL)
 *   8       byte-order mark: u32 0x01020304
 *   12      format version: u32, 1
 *   16      file size: u64, every byte of the file
 *   24      n_rows (1 to 2^32 - 1), n_features (1 to 2^32 - 1), n_targets (regression
 *           targets per row, 0 with classes or without targets), nnz (stored entries of
 *           sparse features, 0 for dense), n_missing (feature values left as NaN), n_unseen
 *           (one-hot values of levels unknown to the encoding): six u64
 *   72      layout: u32, 1 dense, 2 sparse (CSR)
 *   76      target kind: u32, 0 none, 1 class labels, 2 regression targets
 *   80      eight sections, in this order: the encoding, x, row_ptr, col, val, label, y,
 *           weight; each is offset u64, bytes u64, CRC-32 u32 (dsc_crc32 of its bytes, from
 *           0) and a u32 0. An absent section is all zeros. A present one starts at a
 *           multiple of 64 bytes, at or after the end of the one before it, and its size is
 *           exactly what the counts above give:
 *             x        n_rows * n_features f32, row-major (dense only)
 *             row_ptr  (n_rows + 1) u64, col nnz u32, val nnz f32 (sparse only)
 *             label    n_rows i32 in [0, n_classes) (class labels only)
 *             y        n_rows * n_targets f32, each finite (regression targets only)
 *             weight   n_rows f32, each finite and >= 0 (optional)
 *   272     CRC-32 of bytes 0 to 271: u32
 *   276     zeros up to byte 320, where the sections may begin. The writer fills the gaps
 *           between sections with zeros too (loading does not look at them). The file ends
 *           with its last section.
 *
 *   The encoding section, what dsc_prep holds about the file (strings are a u32 byte count
 *   and the bytes, without NUL; 0xFFFFFFFF is "no string"; at most 1 MiB each):
 *     format u32 (dsc_format of the data file converted), missing u32 (the policy it was
 *     read with), n_columns u64 (CSV source columns other than the target, at most
 *     1,000,000), then per column: name string (may be none), categorical u8 (0 or 1),
 *     n_levels u64, n_levels level strings, first_feature u64 (the columns' features follow
 *     each other from 0 and add up to n_features); then n_features u64, the target's name
 *     string (may be none), target_column u64 (CSV: the target's column in the file, from
 *     1; 0 when unknown), n_classes u64 (at most 65536; at least 1 with class labels, else
 *     0) and n_classes class label strings.
 *
 * Loading maps the file (a private read-only mapping; without mmap, or where mapping fails,
 * the file is read into one 64-byte aligned block) and checks, in this order: the magic, the
 * byte-order mark, the version, the header's CRC, the file size against the header, every
 * count against its limit and every section against the counts (overflow-checked), the
 * encoding's CRC and every field of it. Then the arrays a bad value could turn into a bad
 * memory access: every label within the classes, and for sparse data the row offsets rising
 * to nnz and the columns of each row rising and within the features; and the targets and
 * weights finite. The features of a dense file and the values of a sparse one are used as
 * they are.
 *
 * Choice: loading does not compute the CRC-32 of the data arrays. It would read every byte
 * of the file before the first step, a pass as long as copying the data (about a second per
 * GB), while the point of a cache is to start at once: a mapped file costs only the pages
 * that training touches, when it touches them. What loading checks is enough for a damaged
 * file never to be read out of bounds; a flipped bit in a feature value is then caught by
 * dsc_cache_verify (`descent convert --verify`), which checks every CRC.
 *
 * Known shortcoming: a cache on standard input, or in any file that is not a regular file,
 * is not recognised (peeking at it would consume its first bytes). And a mapped file must
 * not be truncated in place while a table uses it (the reads past its new end would fault);
 * descent itself never does that, since it replaces files by renaming. As for model files,
 * the umask is not consulted: a new cache gets mode 0644, a replaced one keeps its mode.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
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

#define FORMAT_VERSION 1u
#define BYTE_ORDER_MARK 0x01020304u
#define SWAPPED_BYTE_ORDER_MARK 0x04030201u
#define HEADER_SIZE 320u  /* the header and its padding: the first section starts here */
#define HEADER_CRC_AT 272u
#define SECTIONS_AT 80u
#define ALIGNMENT 64u
#define NO_STRING 0xFFFFFFFFu
#define MAX_STRING (1u << 20)
#define MAX_COLUMNS 1000000u
#define MAX_CLASSES 65536u
#define MAX_TARGETS (1u << 24)
#define MAX_ROWS UINT32_MAX
#define MAX_FEATURES UINT32_MAX
#define MAX_ENCODING ((uint64_t)1 << 30) /* bytes of the encoding section */

enum { LAYOUT_DENSE = 1, LAYOUT_SPARSE = 2 };
enum { TARGET_NONE = 0, TARGET_CLASSES = 1, TARGET_NUMBERS = 2 };
enum { SEC_ENCODING, SEC_X, SEC_ROW_PTR, SEC_COL, SEC_VAL, SEC_LABEL, SEC_Y, SEC_WEIGHT,
       N_SECTIONS };

static const unsigned char magic[8] = {'D', 'S', 'C', 'D', 'A', 'T', 'A', '\0'};

static const char *const section_names[N_SECTIONS] = {
    "the encoding", "the feature matrix", "the row offsets", "the column indices",
    "the feature values", "the class labels", "the targets", "the sample weights"};

int dsc__cache_no_mmap;

typedef struct section {
    uint64_t offset, bytes;
    uint32_t crc;
} section;

/* The header's fields. */
typedef struct header {
    uint64_t file_size, n_rows, n_features, n_targets, nnz, n_missing, n_unseen;
    uint32_t layout, target_kind;
    section sec[N_SECTIONS];
} header;

/* ---- Bytes in the machine's order --------------------------------------------------------- */

static uint32_t load_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t load_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

static void store_u64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

/* ---- Saving -------------------------------------------------------------------------------- */

/* A growing image of the encoding section; with data NULL it only counts the bytes. */
typedef struct image {
    unsigned char *data;
    size_t used;
} image;

static void put_bytes(image *b, const void *bytes, size_t n)
{
    if (b->data && n)
        memcpy(b->data + b->used, bytes, n);
    b->used += n;
}

static void put_u8(image *b, unsigned v)
{
    unsigned char byte = (unsigned char)v;
    put_bytes(b, &byte, 1);
}

static void put_u32(image *b, uint32_t v)
{
    put_bytes(b, &v, sizeof v);
}

static void put_u64(image *b, uint64_t v)
{
    put_bytes(b, &v, sizeof v);
}

static void put_string(image *b, const char *s)
{
    if (!s) {
        put_u32(b, NO_STRING);
        return;
    }
    size_t len = strlen(s);
    put_u32(b, (uint32_t)len);
    put_bytes(b, s, len);
}

/* The encoding of p; the class labels only when the table has labels (with_classes). */
static void put_encoding(image *b, const dsc_prep *p, uint64_t target_column,
                         bool with_classes)
{
    size_t n_classes = with_classes ? p->n_classes : 0;

    put_u32(b, (uint32_t)p->format);
    put_u32(b, (uint32_t)p->missing);
    put_u64(b, p->n_columns);
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        put_string(b, col->name);
        put_u8(b, col->categorical != 0);
        put_u64(b, col->categorical ? col->n_levels : 0);
        for (size_t v = 0; col->categorical && v < col->n_levels; v++)
            put_string(b, col->levels[v]);
        put_u64(b, col->first_feature);
    }
    put_u64(b, p->n_features);
    put_string(b, p->target_name);
    put_u64(b, target_column);
    put_u64(b, n_classes);
    for (size_t k = 0; k < n_classes; k++)
        put_string(b, p->classes[k]);
}

/* true when s is none, or a string the format can hold (at most 1 MiB). */
static bool string_fits(const char *s)
{
    return !s || strlen(s) <= MAX_STRING;
}

/* Check that the table's encoding can be written and read back as it is. */
static int check_encoding(const char *path, const dsc_prep *p, const dsc_data *d)
{
    if ((unsigned)p->format >= DSC_FORMAT_COUNT || (unsigned)p->missing >= DSC_MISSING_COUNT)
        return dsc__fail(DSC_EINVAL, "%s: the table has an unknown format or missing policy",
                         path);
    if (p->n_columns > MAX_COLUMNS || (p->n_columns && !p->columns))
        return dsc__fail(DSC_ELIMIT, "%s: the table has %zu columns; a cache holds at most %u",
                         path, p->n_columns, MAX_COLUMNS);
    size_t next_feature = 0;
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        size_t width = col->categorical ? col->n_levels : 1;
        if (!string_fits(col->name) || col->first_feature != next_feature ||
            (col->categorical && col->n_levels && !col->levels))
            return dsc__fail(DSC_EINVAL, "%s: column %zu of the encoding cannot be saved",
                             path, c + 1);
        for (size_t v = 0; col->categorical && v < col->n_levels; v++) {
            if (!col->levels[v] || !string_fits(col->levels[v]))
                return dsc__fail(DSC_EINVAL, "%s: level %zu of column %zu is missing or over "
                                 "1 MiB", path, v + 1, c + 1);
        }
        next_feature += width;
    }
    if ((p->n_columns && next_feature != d->n_features) || p->n_features != d->n_features)
        return dsc__fail(DSC_ESHAPE, "%s: the encoding gives %zu features, the data has %zu",
                         path, p->n_columns ? next_feature : p->n_features, d->n_features);
    if (!string_fits(p->target_name))
        return dsc__fail(DSC_ELIMIT, "%s: the target name is over 1 MiB", path);
    if (p->n_classes > MAX_CLASSES || (p->n_classes && !p->classes))
        return dsc__fail(DSC_ELIMIT, "%s: %zu classes; a cache holds at most %u", path,
                         p->n_classes, MAX_CLASSES);
    for (size_t k = 0; k < p->n_classes; k++) {
        if (!p->classes[k] || !string_fits(p->classes[k]))
            return dsc__fail(DSC_EINVAL, "%s: class label %zu is missing or over 1 MiB", path,
                             k + 1);
    }
    return DSC_OK;
}

/* Check the arrays of the table against its counts, as loading will. */
static int check_arrays(const char *path, const dsc_table *t, const dsc_data *d)
{
    const dsc_prep *p = t->prep;

    if (d->n_rows < 1 || d->n_rows > MAX_ROWS || d->n_features < 1 ||
        d->n_features > MAX_FEATURES)
        return dsc__fail(DSC_ELIMIT, "%s: a cache holds 1 to %u rows of 1 to %u features, "
                         "the table has %zu of %zu", path, MAX_ROWS, MAX_FEATURES, d->n_rows,
                         d->n_features);
    if (!d->x == !d->row_ptr || (d->row_ptr && (!d->col || !d->val)))
        return dsc__fail(DSC_EINVAL, "%s: the table has neither dense nor sparse features",
                         path);
    if (d->label && d->y)
        return dsc__fail(DSC_EINVAL, "%s: the table has both class labels and targets", path);
    if (d->label && (p->n_classes < 1 || p->n_classes > MAX_CLASSES))
        return dsc__fail(DSC_EINVAL, "%s: class labels without classes", path);
    if (d->y && (d->n_targets < 1 || d->n_targets > MAX_TARGETS))
        return dsc__fail(DSC_ELIMIT, "%s: %zu targets per row; a cache holds 1 to %u", path,
                         d->n_targets, MAX_TARGETS);
    for (size_t r = 0; d->label && r < d->n_rows; r++) {
        if (d->label[r] < 0 || (size_t)d->label[r] >= p->n_classes)
            return dsc__fail(DSC_EINVAL, "%s: row %zu has class %ld of %zu", path, r + 1,
                             (long)d->label[r], p->n_classes);
    }
    if (d->row_ptr) {
        if (d->row_ptr[0] != 0)
            return dsc__fail(DSC_EINVAL, "%s: the row offsets do not start at 0", path);
        for (size_t r = 0; r < d->n_rows; r++) {
            if (d->row_ptr[r + 1] < d->row_ptr[r])
                return dsc__fail(DSC_EINVAL, "%s: the offsets of row %zu fall", path, r + 1);
            for (uint64_t e = d->row_ptr[r]; e < d->row_ptr[r + 1]; e++) {
                if (d->col[e] >= d->n_features || (e > d->row_ptr[r] && d->col[e] <= d->col[e - 1]))
                    return dsc__fail(DSC_EINVAL, "%s: row %zu has a column out of order or "
                                     "beyond the features", path, r + 1);
            }
        }
    }
    return DSC_OK;
}

/* The sizes and CRCs of the sections of table t, laid out from HEADER_SIZE. */
static int lay_out_sections(const char *path, const dsc_table *t, size_t encoding_bytes,
                            header *h, const void *arrays[N_SECTIONS])
{
    const dsc_data *d = &t->data;
    uint64_t nnz = d->row_ptr ? d->row_ptr[d->n_rows] : 0;
    size_t sizes[N_SECTIONS] = {0}, n_values;

    memset(h, 0, sizeof *h);
    memset(arrays, 0, N_SECTIONS * sizeof arrays[0]);
    h->n_rows = d->n_rows;
    h->n_features = d->n_features;
    h->layout = d->x ? LAYOUT_DENSE : LAYOUT_SPARSE;
    h->target_kind = d->label ? TARGET_CLASSES : d->y ? TARGET_NUMBERS : TARGET_NONE;
    h->n_targets = d->y ? d->n_targets : 0;
    h->nnz = nnz;
    h->n_missing = t->n_missing;
    h->n_unseen = t->n_unseen;

    sizes[SEC_ENCODING] = encoding_bytes;
    if (d->x && (dsc__mul_overflows(d->n_rows, d->n_features, &n_values) ||
                 dsc__mul_overflows(n_values, sizeof(float), &sizes[SEC_X])))
        return dsc__fail(DSC_ELIMIT, "%s: the table is too large", path);
    if (d->row_ptr) {
        if (nnz > SIZE_MAX / sizeof(uint64_t))
            return dsc__fail(DSC_ELIMIT, "%s: the table is too large", path);
        sizes[SEC_ROW_PTR] = (d->n_rows + 1) * sizeof(uint64_t);
        sizes[SEC_COL] = (size_t)nnz * sizeof(uint32_t);
        sizes[SEC_VAL] = (size_t)nnz * sizeof(float);
    }
    if (d->label)
        sizes[SEC_LABEL] = d->n_rows * sizeof(int32_t);
    if (d->y && (dsc__mul_overflows(d->n_rows, d->n_targets, &n_values) ||
                 dsc__mul_overflows(n_values, sizeof(float), &sizes[SEC_Y])))
        return dsc__fail(DSC_ELIMIT, "%s: the table is too large", path);
    if (d->weight)
        sizes[SEC_WEIGHT] = d->n_rows * sizeof(float);
    arrays[SEC_X] = d->x;
    arrays[SEC_ROW_PTR] = d->row_ptr;
    arrays[SEC_COL] = d->col;
    arrays[SEC_VAL] = d->val;
    arrays[SEC_LABEL] = d->label;
    arrays[SEC_Y] = d->y;
    arrays[SEC_WEIGHT] = d->weight;

    uint64_t at = HEADER_SIZE;
    for (int s = 0; s < N_SECTIONS; s++) {
        if (sizes[s] == 0)
            continue;
        at = (at + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        if (at > UINT64_MAX - sizes[s])
            return dsc__fail(DSC_ELIMIT, "%s: the table is too large", path);
        h->sec[s].offset = at;
        h->sec[s].bytes = sizes[s];
        if (arrays[s])
            h->sec[s].crc = dsc_crc32(0, arrays[s], sizes[s]);
        at += sizes[s];
    }
    h->file_size = at;
    return DSC_OK;
}

static void encode_header(const header *h, unsigned char out[HEADER_SIZE])
{
    memset(out, 0, HEADER_SIZE);
    memcpy(out, magic, sizeof magic);
    store_u32(out + 8, BYTE_ORDER_MARK);
    store_u32(out + 12, FORMAT_VERSION);
    const uint64_t counts[7] = {h->file_size, h->n_rows,    h->n_features, h->n_targets,
                                h->nnz,       h->n_missing, h->n_unseen};
    for (int i = 0; i < 7; i++)
        store_u64(out + 16 + 8 * i, counts[i]);
    store_u32(out + 72, h->layout);
    store_u32(out + 76, h->target_kind);
    for (int s = 0; s < N_SECTIONS; s++) {
        unsigned char *e = out + SECTIONS_AT + 24 * s;
        store_u64(e, h->sec[s].offset);
        store_u64(e + 8, h->sec[s].bytes);
        store_u32(e + 16, h->sec[s].crc);
    }
    store_u32(out + HEADER_CRC_AT, dsc_crc32(0, out, HEADER_CRC_AT));
}

/* Write n bytes, or zeros when bytes is NULL; 0 or the errno of the failure (-1 unknown). */
static int write_bytes(FILE *fp, const void *bytes, uint64_t n)
{
    static const unsigned char zeros[ALIGNMENT];

    errno = 0;
    if (!bytes) {
        for (; n > 0; n -= n < ALIGNMENT ? n : ALIGNMENT) {
            size_t chunk = n < ALIGNMENT ? (size_t)n : ALIGNMENT;
            if (fwrite(zeros, 1, chunk, fp) != chunk)
                return errno ? errno : -1;
        }
        return 0;
    }
    if (n && fwrite(bytes, 1, (size_t)n, fp) != n)
        return errno ? errno : -1;
    return 0;
}

/* Write the header and the sections to fp; 0 or an errno (-1 unknown). */
static int write_cache(FILE *fp, const header *h, const void *const arrays[N_SECTIONS])
{
    unsigned char head[HEADER_SIZE];
    uint64_t at = HEADER_SIZE;
    int failed;

    encode_header(h, head);
    errno = 0;
    if ((failed = write_bytes(fp, head, HEADER_SIZE)) != 0)
        return failed;
    for (int s = 0; s < N_SECTIONS; s++) {
        if (h->sec[s].bytes == 0)
            continue;
        if ((failed = write_bytes(fp, NULL, h->sec[s].offset - at)) != 0 ||
            (failed = write_bytes(fp, arrays[s], h->sec[s].bytes)) != 0)
            return failed;
        at = h->sec[s].offset + h->sec[s].bytes;
    }
    return 0;
}

int dsc_table_save_cache(const char *path, const dsc_table *table)
{
    if (!path || !*path)
        return dsc__fail(DSC_EINVAL, "data cache: path is NULL or empty");
    if (!table || !table->prep)
        return dsc__fail(DSC_EINVAL, "%s: table is NULL", path);
    if (table->applied)
        return dsc__fail(DSC_ESTATE, "%s: the table was imputed or standardised "
                         "(dsc_prep_apply); save it as dsc_table_read gave it", path);
    const dsc_data *d = &table->data;
    int rc = check_arrays(path, table, d);
    if (rc == DSC_OK)
        rc = check_encoding(path, table->prep, d);
    if (rc < 0)
        return rc;

    image enc = {NULL, 0};
    put_encoding(&enc, table->prep, table->target_column, d->label != NULL);
    if (enc.used > MAX_ENCODING)
        return dsc__fail(DSC_ELIMIT, "%s: the encoding takes over 1 GiB", path);
    size_t encoding_bytes = enc.used;
    enc.data = dsc__alloc(encoding_bytes);
    if (!enc.data)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    enc.used = 0;
    put_encoding(&enc, table->prep, table->target_column, d->label != NULL);

    header h;
    const void *arrays[N_SECTIONS];
    rc = lay_out_sections(path, table, encoding_bytes, &h, arrays);
    if (rc < 0) {
        dsc__free(enc.data);
        return rc;
    }
    arrays[SEC_ENCODING] = enc.data;
    h.sec[SEC_ENCODING].crc = dsc_crc32(0, enc.data, encoding_bytes);

    /* A temporary file next to the target, synced and renamed over it. */
    dsc__atomic_file out;
    rc = dsc__atomic_open(&out, path);
    if (rc < 0) {
        dsc__free(enc.data);
        return rc;
    }
    int failed = write_cache(out.fp, &h, arrays);
    dsc__free(enc.data);
    rc = dsc__atomic_close(&out, failed, "data cache");
    if (rc < 0)
        return rc;
    return DSC_OK;
}

/* ---- The file in memory ------------------------------------------------------------------- */

/* A cache file's bytes: mapped, or read into a block. */
typedef struct file_bytes {
    const unsigned char *data;
    size_t size;
    void *block; /* the allocation holding data when it was read rather than mapped */
} file_bytes;

/* Read the whole of fd (size bytes) into a 64-byte aligned block. */
static int read_into_block(const char *path, int fd, size_t size, file_bytes *out)
{
    if (size > SIZE_MAX - ALIGNMENT)
        return dsc__fail(DSC_ELIMIT, "%s: too large to read", path);
    unsigned char *block = dsc__alloc(size + ALIGNMENT);
    if (!block)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    unsigned char *data = block + (ALIGNMENT - (uintptr_t)block % ALIGNMENT) % ALIGNMENT;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = errno;
            dsc__free(block);
            return dsc__fail(DSC_EIO, "%s: read failed: %s", path,
                             n < 0 ? strerror(saved) : "the file shrank while being read");
        }
        got += (size_t)n;
    }
    out->data = data;
    out->size = size;
    out->block = block;
    return DSC_OK;
}

/* Map (or read) the file at path. */
static int open_bytes(const char *path, file_bytes *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return dsc__fail(DSC_EIO, "%s: cannot read: %s", path, strerror(saved));
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return dsc__fail(DSC_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    int rc = DSC_OK;

#if HAVE_MMAP
    if (!dsc__cache_no_mmap && size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            out->data = p;
            out->size = size;
            close(fd);
            return DSC_OK;
        }
    }
#endif
    rc = read_into_block(path, fd, size, out);
    close(fd);
    return rc;
}

static void close_bytes(file_bytes *f)
{
    if (f->block) {
        dsc__free(f->block);
    } else if (f->data) {
#if HAVE_MMAP
        munmap((void *)f->data, f->size);
#endif
    }
    memset(f, 0, sizeof *f);
}

void dsc__cache_release(dsc_table *table)
{
    file_bytes f = {table->mapping, table->mapping_size, table->mapping_block};

    close_bytes(&f);
    table->mapping = NULL;
    table->mapping_size = 0;
    table->mapping_block = NULL;
}

bool dsc__is_cache(const char *path)
{
    struct stat st;
    unsigned char head[sizeof magic];

    /* Only a regular file: peeking at a pipe would consume what its reader needs. */
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    return got == (ssize_t)sizeof head && memcmp(head, magic, sizeof magic) == 0;
}

/* ---- Checking the header ------------------------------------------------------------------ */

static int corrupt(const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Fail with "PATH: corrupted data cache: what is wrong". */
static int corrupt(const char *path, const char *fmt, ...)
{
    char what[256];
    va_list args;

    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    return dsc__fail(DSC_EFORMAT, "%s: corrupted data cache: %s", path, what);
}

/* The size a section must have given the header's counts (overflow-checked: false). */
static bool expected_bytes(const header *h, int s, uint64_t *out)
{
    uint64_t n = 0;
    bool ok = true;

    switch (s) {
    case SEC_X:
        if (h->layout == LAYOUT_DENSE)
            ok = !dsc__mul_overflows(h->n_rows, h->n_features, &n) &&
                 !dsc__mul_overflows(n, sizeof(float), &n);
        break;
    case SEC_ROW_PTR: n = h->layout == LAYOUT_SPARSE ? (h->n_rows + 1) * 8 : 0; break;
    case SEC_COL:
    case SEC_VAL:
        ok = h->nnz <= UINT64_MAX / 4;
        n = h->layout == LAYOUT_SPARSE ? h->nnz * 4 : 0;
        break;
    case SEC_LABEL: n = h->target_kind == TARGET_CLASSES ? h->n_rows * 4 : 0; break;
    case SEC_Y:
        if (h->target_kind == TARGET_NUMBERS)
            ok = !dsc__mul_overflows(h->n_rows, h->n_targets, &n) &&
                 !dsc__mul_overflows(n, sizeof(float), &n);
        break;
    default: break;
    }
    *out = n;
    return ok;
}

/* Decode and check the header of the file's bytes. */
static int check_header(const char *path, const file_bytes *f, header *h)
{
    const unsigned char *b = f->data;

    memset(h, 0, sizeof *h);
    if (f->size < sizeof magic || memcmp(b, magic, sizeof magic) != 0)
        return dsc__fail(DSC_EFORMAT, "%s: not a descent data cache", path);
    if (f->size < 16)
        return dsc__fail(DSC_EFORMAT, "%s: truncated: the file has %zu bytes, less than the "
                         "%u-byte header", path, f->size, HEADER_SIZE);
    uint32_t mark = load_u32(b + 8), version = load_u32(b + 12);
    if (mark == SWAPPED_BYTE_ORDER_MARK)
        return dsc__fail(DSC_EFORMAT, "%s: written on a machine of the other byte order; "
                         "convert the data again on this one", path);
    if (mark != BYTE_ORDER_MARK)
        return corrupt(path, "byte-order mark 0x%08x", (unsigned)mark);
    if (version > FORMAT_VERSION)
        return dsc__fail(DSC_EVERSION, "%s: written by format version %u; this build reads up "
                         "to %u", path, (unsigned)version, FORMAT_VERSION);
    if (version == 0)
        return corrupt(path, "format version 0");
    if (f->size < HEADER_SIZE)
        return dsc__fail(DSC_EFORMAT, "%s: truncated: the file has %zu bytes, less than the "
                         "%u-byte header", path, f->size, HEADER_SIZE);
    if (load_u32(b + HEADER_CRC_AT) != dsc_crc32(0, b, HEADER_CRC_AT))
        return dsc__fail(DSC_ECHECKSUM, "%s: checksum mismatch in the header: the file is "
                         "corrupted", path);
    for (size_t i = HEADER_CRC_AT + 4; i < HEADER_SIZE; i++) {
        if (b[i] != 0)
            return corrupt(path, "byte %zu of the header's padding is not zero", i);
    }

    h->file_size = load_u64(b + 16);
    h->n_rows = load_u64(b + 24);
    h->n_features = load_u64(b + 32);
    h->n_targets = load_u64(b + 40);
    h->nnz = load_u64(b + 48);
    h->n_missing = load_u64(b + 56);
    h->n_unseen = load_u64(b + 64);
    h->layout = load_u32(b + 72);
    h->target_kind = load_u32(b + 76);
    if (h->file_size != f->size)
        return dsc__fail(DSC_EFORMAT, "%s: %s: the file has %zu bytes, its header says %llu",
                         path, h->file_size > f->size ? "truncated" : "corrupted data cache",
                         f->size, (unsigned long long)h->file_size);

    if (h->n_rows < 1 || h->n_rows > MAX_ROWS)
        return corrupt(path, "%llu rows", (unsigned long long)h->n_rows);
    if (h->n_features < 1 || h->n_features > MAX_FEATURES)
        return corrupt(path, "%llu features", (unsigned long long)h->n_features);
    if (h->layout != LAYOUT_DENSE && h->layout != LAYOUT_SPARSE)
        return corrupt(path, "layout %u", (unsigned)h->layout);
    if (h->target_kind > TARGET_NUMBERS)
        return corrupt(path, "target kind %u", (unsigned)h->target_kind);
    if ((h->target_kind == TARGET_NUMBERS) != (h->n_targets > 0) || h->n_targets > MAX_TARGETS)
        return corrupt(path, "%llu targets per row", (unsigned long long)h->n_targets);
    if (h->layout == LAYOUT_DENSE && h->nnz != 0)
        return corrupt(path, "%llu sparse entries in dense data", (unsigned long long)h->nnz);

    /* Each section where the counts say, within the file and after the one before. */
    uint64_t end = HEADER_SIZE;
    for (int s = 0; s < N_SECTIONS; s++) {
        const unsigned char *e = b + SECTIONS_AT + 24 * s;
        section *sec = &h->sec[s];
        sec->offset = load_u64(e);
        sec->bytes = load_u64(e + 8);
        sec->crc = load_u32(e + 16);
        uint64_t want = 0;
        bool known = s == SEC_ENCODING || s == SEC_WEIGHT || expected_bytes(h, s, &want);
        if (s == SEC_WEIGHT && sec->bytes)
            want = h->n_rows * 4;
        if (s == SEC_ENCODING)
            want = sec->bytes >= 44 && sec->bytes <= MAX_ENCODING ? sec->bytes : 0;
        if (!known || sec->bytes != want || load_u32(e + 20) != 0 ||
            (s == SEC_ENCODING && want == 0))
            return corrupt(path, "%s has %llu bytes", section_names[s],
                           (unsigned long long)sec->bytes);
        if (sec->bytes == 0) {
            if (sec->offset != 0 || sec->crc != 0)
                return corrupt(path, "%s is absent but has an offset", section_names[s]);
            continue;
        }
        if (sec->offset % ALIGNMENT != 0 || sec->offset < end || sec->offset > f->size ||
            sec->bytes > f->size - sec->offset)
            return corrupt(path, "%s at byte %llu", section_names[s],
                           (unsigned long long)sec->offset);
        end = sec->offset + sec->bytes;
    }
    if (end != f->size)
        return corrupt(path, "%zu bytes after the last section", f->size - (size_t)end);
    if (h->n_missing > h->n_rows * h->n_features || h->n_unseen > h->n_rows * h->n_features)
        return corrupt(path, "%llu missing and %llu unseen values",
                       (unsigned long long)h->n_missing, (unsigned long long)h->n_unseen);
    return DSC_OK;
}

/* ---- Reading the encoding ----------------------------------------------------------------- */

typedef struct cursor {
    const char *path;
    const unsigned char *data;
    size_t size, pos;
    uint64_t base; /* the section's offset in the file, for messages */
} cursor;

static int cut_short(const cursor *c, const char *what)
{
    return corrupt(c->path, "%s at byte %llu", what, (unsigned long long)(c->base + c->pos));
}

static int get_u32(cursor *c, const char *what, uint32_t *out)
{
    *out = 0;
    if (c->size - c->pos < 4)
        return cut_short(c, what);
    *out = load_u32(c->data + c->pos);
    c->pos += 4;
    return DSC_OK;
}

static int get_u64(cursor *c, const char *what, uint64_t *out)
{
    *out = 0;
    if (c->size - c->pos < 8)
        return cut_short(c, what);
    *out = load_u64(c->data + c->pos);
    c->pos += 8;
    return DSC_OK;
}

/* A count of items of at least min_bytes each, at most limit and within the bytes left. */
static int get_count(cursor *c, const char *what, uint64_t limit, size_t min_bytes,
                     size_t *out)
{
    uint64_t n;
    int rc = get_u64(c, what, &n);

    *out = 0;
    if (rc < 0)
        return rc;
    if (n > limit || n > (c->size - c->pos) / min_bytes)
        return corrupt(c->path, "%s: %llu", what, (unsigned long long)n);
    *out = (size_t)n;
    return DSC_OK;
}

/* A string into *out (allocated), or NULL for "no string" when optional. */
static int get_string(cursor *c, const char *what, bool optional, char **out)
{
    uint32_t len;
    int rc = get_u32(c, what, &len);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (len == NO_STRING && optional)
        return DSC_OK;
    if (len > MAX_STRING || len > c->size - c->pos ||
        memchr(c->data + c->pos, '\0', len) != NULL)
        return cut_short(c, what);
    char *s = dsc__alloc((size_t)len + 1);
    if (!s)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", c->path);
    memcpy(s, c->data + c->pos, len);
    s[len] = '\0';
    c->pos += len;
    *out = s;
    return DSC_OK;
}

/* The encoding section as a prep (the caller frees it), checked against the header. */
static int read_encoding(const char *path, const file_bytes *f, const header *h,
                         dsc_prep **out, uint64_t *target_column)
{
    const section *sec = &h->sec[SEC_ENCODING];
    cursor c = {path, f->data + sec->offset, (size_t)sec->bytes, 0, sec->offset};
    uint32_t format, missing;
    uint64_t n_features;
    int rc;

    *out = NULL;
    if (dsc_crc32(0, c.data, c.size) != sec->crc)
        return dsc__fail(DSC_ECHECKSUM, "%s: checksum mismatch in the encoding: the file is "
                         "corrupted", path);
    dsc_prep *p = dsc__prep_new();
    if (!p)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", path);

    if ((rc = get_u32(&c, "the format", &format)) < 0 ||
        (rc = get_u32(&c, "the missing policy", &missing)) < 0)
        goto fail;
    if (format >= DSC_FORMAT_COUNT || missing >= DSC_MISSING_COUNT) {
        rc = corrupt(path, "format %u, missing policy %u", (unsigned)format, (unsigned)missing);
        goto fail;
    }
    p->format = (dsc_format)format;
    p->missing = (dsc_missing)missing;

    size_t n_columns;
    if ((rc = get_count(&c, "the number of columns", MAX_COLUMNS, 21, &n_columns)) < 0)
        goto fail;
    if (n_columns && !(p->columns = dsc__calloc(n_columns, sizeof *p->columns))) {
        rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    p->n_columns = n_columns;
    uint64_t next_feature = 0;
    for (size_t j = 0; j < n_columns; j++) {
        dsc_column *col = &p->columns[j];
        uint32_t flag;
        uint64_t first;
        if ((rc = get_string(&c, "a column name", true, &col->name)) < 0)
            goto fail;
        if (c.pos >= c.size) {
            rc = cut_short(&c, "a column");
            goto fail;
        }
        flag = c.data[c.pos++];
        size_t n_levels;
        if (flag > 1 || (rc = get_count(&c, "a number of levels", UINT32_MAX, 4, &n_levels)) < 0) {
            rc = flag > 1 ? cut_short(&c, "a column's kind") : rc;
            goto fail;
        }
        col->categorical = (int)flag;
        if (!flag && n_levels) {
            rc = corrupt(path, "numeric column %zu has levels", j + 1);
            goto fail;
        }
        if (n_levels && !(col->levels = dsc__calloc(n_levels, sizeof(char *)))) {
            rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        col->n_levels = n_levels;
        for (size_t v = 0; v < n_levels; v++) {
            if ((rc = get_string(&c, "a level", false, &col->levels[v])) < 0)
                goto fail;
        }
        if ((rc = get_u64(&c, "a column's first feature", &first)) < 0)
            goto fail;
        if (first != next_feature) {
            rc = corrupt(path, "column %zu starts at feature %llu", j + 1,
                         (unsigned long long)first);
            goto fail;
        }
        col->first_feature = (size_t)first;
        next_feature += flag ? n_levels : 1;
    }
    if ((rc = get_u64(&c, "the number of features", &n_features)) < 0 ||
        (rc = get_string(&c, "the target's name", true, &p->target_name)) < 0 ||
        (rc = get_u64(&c, "the target's column", target_column)) < 0)
        goto fail;
    if (n_features != h->n_features || (n_columns && next_feature != n_features)) {
        rc = corrupt(path, "the encoding has %llu features, the header %llu",
                     (unsigned long long)(n_columns ? next_feature : n_features),
                     (unsigned long long)h->n_features);
        goto fail;
    }
    p->n_features = (size_t)n_features;

    size_t n_classes;
    if ((rc = get_count(&c, "the number of classes", MAX_CLASSES, 4, &n_classes)) < 0)
        goto fail;
    if ((n_classes > 0) != (h->target_kind == TARGET_CLASSES)) {
        rc = corrupt(path, "%zu classes", n_classes);
        goto fail;
    }
    if (n_classes && !(p->classes = dsc__calloc(n_classes, sizeof(char *)))) {
        rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    p->n_classes = n_classes;
    for (size_t k = 0; k < n_classes; k++) {
        if ((rc = get_string(&c, "a class label", false, &p->classes[k])) < 0)
            goto fail;
    }
    if (c.pos != c.size) {
        rc = corrupt(path, "%zu bytes after the encoding", c.size - c.pos);
        goto fail;
    }
    p->n_targets = (size_t)h->n_targets;
    *out = p;
    return DSC_OK;

fail:
    dsc_prep_free(p);
    return rc;
}

/* ---- Checking the arrays ------------------------------------------------------------------ */

/* The arrays as they lie in the file. */
typedef struct arrays {
    const float *x;
    const uint64_t *row_ptr;
    const uint32_t *col;
    const float *val;
    const int32_t *label;
    const float *y;
    const float *weight;
} arrays;

static const void *at(const file_bytes *f, const header *h, int s)
{
    return h->sec[s].bytes ? f->data + h->sec[s].offset : NULL;
}

/* Point into the file and check what could lead a reader out of bounds, or is not finite. */
static int check_file_arrays(const char *path, const file_bytes *f, const header *h,
                             size_t n_classes, arrays *a)
{
    size_t n = (size_t)h->n_rows;

    a->x = at(f, h, SEC_X);
    a->row_ptr = at(f, h, SEC_ROW_PTR);
    a->col = at(f, h, SEC_COL);
    a->val = at(f, h, SEC_VAL);
    a->label = at(f, h, SEC_LABEL);
    a->y = at(f, h, SEC_Y);
    a->weight = at(f, h, SEC_WEIGHT);

    for (size_t r = 0; a->label && r < n; r++) {
        if (a->label[r] < 0 || (size_t)a->label[r] >= n_classes)
            return corrupt(path, "row %zu has class %ld of %zu", r + 1, (long)a->label[r],
                           n_classes);
    }
    size_t n_targets = (size_t)h->n_targets;
    for (size_t i = 0; a->y && i < n * n_targets; i++) {
        if (!isfinite(a->y[i]))
            return corrupt(path, "row %zu has a target that is not finite", i / n_targets + 1);
    }
    for (size_t r = 0; a->weight && r < n; r++) {
        if (!(a->weight[r] >= 0.0f) || !isfinite(a->weight[r]))
            return corrupt(path, "row %zu has a weight that is not finite and >= 0", r + 1);
    }
    if (a->row_ptr) {
        if (a->row_ptr[0] != 0 || a->row_ptr[n] != h->nnz)
            return corrupt(path, "the row offsets run from %llu to %llu, not 0 to %llu",
                           (unsigned long long)a->row_ptr[0],
                           (unsigned long long)a->row_ptr[n], (unsigned long long)h->nnz);
        for (size_t r = 0; r < n; r++) {
            uint64_t start = a->row_ptr[r], stop = a->row_ptr[r + 1];
            if (stop < start || stop > h->nnz)
                return corrupt(path, "the offsets of row %zu", r + 1);
            for (uint64_t e = start; e < stop; e++) {
                if (a->col[e] >= h->n_features || (e > start && a->col[e] <= a->col[e - 1]))
                    return corrupt(path, "row %zu has column %lu out of order or beyond the "
                                   "%llu features", r + 1, (unsigned long)a->col[e],
                                   (unsigned long long)h->n_features);
            }
        }
    }
    return DSC_OK;
}

/* ---- Fitting the cache to the read ---------------------------------------------------------- */

/* Names sorted for look-up: each name with its index, in strcmp order. */
typedef struct named {
    const char *name;
    uint32_t index;
} named;

typedef struct name_index {
    named *entries;
    size_t n;
} name_index;

static int compare_named(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static int index_names(name_index *ix, char *const *names, size_t n)
{
    ix->n = n;
    ix->entries = dsc__alloc(dsc__mul(n ? n : 1, sizeof(named)));
    if (!ix->entries)
        return DSC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ix->entries[i] = (named){names[i], (uint32_t)i};
    qsort(ix->entries, n, sizeof(named), compare_named);
    return DSC_OK;
}

/* The index of name, or -1. */
static long find_name(const name_index *ix, const char *name)
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, ix->entries[mid].name);
        if (cmp == 0)
            return (long)ix->entries[mid].index;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* Class labels that are numbers, sorted by value, for labels written differently. */
typedef struct valued {
    float value;
    uint32_t index;
} valued;

typedef struct value_index {
    valued *entries;
    size_t n;
} value_index;

static int compare_valued(const void *a, const void *b)
{
    float x = ((const valued *)a)->value, y = ((const valued *)b)->value;
    return (x > y) - (x < y);
}

static int index_values(value_index *vx, char *const *names, size_t n)
{
    vx->n = 0;
    vx->entries = dsc__alloc(dsc__mul(n ? n : 1, sizeof(valued)));
    if (!vx->entries)
        return DSC_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        float v;
        if (dsc__parse_float(names[k], strlen(names[k]), &v) == DSC_OK)
            vx->entries[vx->n++] = (valued){v, (uint32_t)k};
    }
    qsort(vx->entries, vx->n, sizeof(valued), compare_valued);
    return DSC_OK;
}

/* The class whose label is the number v, or -1. */
static long find_value(const value_index *vx, float v)
{
    size_t lo = 0, hi = vx->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vx->entries[mid].value == v)
            return (long)vx->entries[mid].index;
        if (v < vx->entries[mid].value)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* What one read of a cache works with. */
typedef struct cache_read {
    const char *path;
    dsc_table *table;
    const dsc_prep *model; /* the encoding asked for, or NULL when learning */
    dsc_prep *enc;         /* the file's own encoding */
    header h;
    arrays a;
} cache_read;

static int out_of_memory(const cache_read *r)
{
    return dsc__fail(DSC_ENOMEM, "%s: out of memory", r->path);
}

/* The name of feature j in the encoding, into buf. */
static const char *feature_name(const dsc_prep *enc, size_t j, char *buf, size_t size)
{
    for (size_t c = 0; c < enc->n_columns; c++) {
        const dsc_column *col = &enc->columns[c];
        size_t width = col->categorical ? col->n_levels : 1;
        if (j >= col->first_feature && j < col->first_feature + width && col->name)
            return col->name;
    }
    snprintf(buf, size, "%zu", j + 1);
    return buf;
}

/* A missing value is an error under the policy "error": name the first one. */
static int check_missing(cache_read *r, dsc_missing policy)
{
    const header *h = &r->h;

    if (h->n_missing == 0 || policy != DSC_MISSING_ERROR)
        return DSC_OK;
    size_t n = (size_t)h->n_rows, k = (size_t)h->n_features;
    for (size_t i = 0; r->a.x && i < n * k; i++) {
        if (isnan(r->a.x[i])) {
            char buf[32];
            return dsc__fail(DSC_EFORMAT, "%s: row %zu: missing value in column %s (use "
                             "--missing mean or median)", r->path, i / k + 1,
                             feature_name(r->enc, i % k, buf, sizeof buf));
        }
    }
    for (size_t e = 0; r->a.val && e < h->nnz; e++) {
        if (isnan(r->a.val[e])) {
            size_t row = 0;
            while (r->a.row_ptr[row + 1] <= e)
                row++;
            return dsc__fail(DSC_EFORMAT, "%s: row %zu: missing value in column %lu (use "
                             "--missing mean or median)", r->path, row + 1,
                             (unsigned long)r->a.col[e] + 1);
        }
    }
    return dsc__fail(DSC_EFORMAT, "%s: missing values (use --missing mean or median)", r->path);
}

/* A target option must name the column the cache was converted with. */
static int check_target(cache_read *r, const char *target, uint64_t target_column)
{
    const dsc_prep *enc = r->enc;
    size_t len = target ? strlen(target) : 0, digits = 0;
    uint64_t index = 0;

    if (!target || r->h.target_kind == TARGET_NONE || enc->format != DSC_FORMAT_CSV)
        return DSC_OK;
    while (digits < len && target[digits] >= '0' && target[digits] <= '9') {
        if (index < 100000000)
            index = index * 10 + (uint64_t)(target[digits] - '0');
        digits++;
    }
    if (digits == len ? index >= 1 && index == target_column
                      : enc->target_name && strcmp(target, enc->target_name) == 0)
        return DSC_OK;
    return dsc__fail(DSC_EINVAL, "%s: target %.40s: the data cache was converted with the "
                     "target column %.40s (column %llu); convert the data again for this target",
                     r->path, target, enc->target_name ? enc->target_name : "without a name",
                     (unsigned long long)target_column);
}

/* Regression targets from class labels that are numbers. */
static int classes_to_targets(cache_read *r, char *const *names, size_t n_classes)
{
    size_t n = (size_t)r->h.n_rows;
    float *value = dsc__alloc(dsc__mul(n_classes, sizeof(float)));
    float *y = dsc__alloc(dsc__mul(n, sizeof(float)));

    if (!value || !y) {
        dsc__free(value);
        dsc__free(y);
        return out_of_memory(r);
    }
    for (size_t k = 0; k < n_classes; k++) {
        if (dsc__parse_float(names[k], strlen(names[k]), &value[k]) != DSC_OK) {
            size_t row = 0;
            while (row < n && (size_t)r->a.label[row] != k)
                row++;
            dsc__free(value);
            dsc__free(y);
            return dsc__fail(DSC_EFORMAT, "%s: row %zu: target '%.40s' is not a number, and "
                             "the targets are numeric", r->path, row + 1, names[k]);
        }
    }
    for (size_t i = 0; i < n; i++)
        y[i] = value[r->a.label[i]];
    dsc__free(value);
    r->table->y = y;
    r->table->label = NULL;
    r->table->data.n_targets = 1;
    return DSC_OK;
}

/* Learning: the file's encoding becomes the table's; targets follow opts->classify. */
static int fit_learning(cache_read *r, const dsc_read_options *opts)
{
    dsc_table *t = r->table;
    dsc_prep *enc = r->enc;
    int rc;

    enc->missing = opts->missing;
    dsc_prep_free(t->prep);
    t->prep = enc;
    r->enc = NULL;

    if (opts->classify == 1 && r->h.target_kind == TARGET_NUMBERS) {
        if (r->h.n_targets != 1)
            return dsc__fail(DSC_EINVAL, "%s: %llu targets per row cannot be class labels",
                             r->path, (unsigned long long)r->h.n_targets);
        int32_t *label = dsc__alloc(dsc__mul((size_t)r->h.n_rows, sizeof(int32_t)));
        if (!label)
            return out_of_memory(r);
        rc = dsc__learn_classes(t->prep, r->a.y, (size_t)r->h.n_rows, label);
        if (rc < 0) {
            char reason[256];
            snprintf(reason, sizeof reason, "%s", dsc_last_error());
            dsc__free(label);
            return rc == DSC_ENOMEM ? out_of_memory(r)
                                    : dsc__fail(rc, "%s: class labels: %s", r->path, reason);
        }
        t->label = label;
        t->y = NULL;
        t->prep->n_targets = 0;
        t->data.n_targets = 0;
    } else if (opts->classify == 0 && r->h.target_kind == TARGET_CLASSES) {
        if ((rc = classes_to_targets(r, t->prep->classes, t->prep->n_classes)) < 0)
            return rc;
        for (size_t k = 0; k < t->prep->n_classes; k++)
            dsc__free(t->prep->classes[k]);
        dsc__free(t->prep->classes);
        t->prep->classes = NULL;
        t->prep->n_classes = 0;
        t->prep->n_targets = 1;
    }
    return DSC_OK;
}

/* Prediction: class labels or targets as the model's encoding says. */
static int fit_targets(cache_read *r)
{
    const dsc_prep *m = r->model;
    dsc_table *t = r->table;
    size_t n = (size_t)r->h.n_rows;
    int rc = DSC_OK;

    if (r->h.target_kind == TARGET_NONE)
        return DSC_OK;
    if (m->n_classes == 0) {
        if (r->h.target_kind == TARGET_CLASSES)
            return classes_to_targets(r, r->enc->classes, r->enc->n_classes);
        size_t want = m->n_targets ? m->n_targets : 1;
        if (r->h.n_targets != want)
            return dsc__fail(DSC_ESHAPE, "%s: %llu targets per row, the model has %zu",
                             r->path, (unsigned long long)r->h.n_targets, want);
        return DSC_OK;
    }

    /* A classifier: the same classes in the same order are used as they are. */
    const dsc_prep *e = r->enc;
    if (r->h.target_kind == TARGET_CLASSES && e->n_classes == m->n_classes) {
        size_t k = 0;
        while (k < m->n_classes && strcmp(e->classes[k], m->classes[k]) == 0)
            k++;
        if (k == m->n_classes)
            return DSC_OK;
    }
    if (r->h.target_kind == TARGET_NUMBERS && r->h.n_targets != 1)
        return dsc__fail(DSC_ESHAPE, "%s: %llu targets per row; a classifier takes one label",
                         r->path, (unsigned long long)r->h.n_targets);

    name_index names = {0};
    value_index values = {0};
    int32_t *label = dsc__alloc(dsc__mul(n, sizeof(int32_t)));
    int32_t *class_map = NULL;
    if (!label || index_names(&names, m->classes, m->n_classes) < 0 ||
        index_values(&values, m->classes, m->n_classes) < 0) {
        rc = out_of_memory(r);
        goto done;
    }
    if (r->h.target_kind == TARGET_CLASSES) {
        /* Each of the file's classes by its text, else by its value. */
        class_map = dsc__alloc(dsc__mul(e->n_classes, sizeof(int32_t)));
        if (!class_map) {
            rc = out_of_memory(r);
            goto done;
        }
        for (size_t k = 0; k < e->n_classes; k++) {
            long found = find_name(&names, e->classes[k]);
            float v;
            if (found < 0 && dsc__parse_float(e->classes[k], strlen(e->classes[k]), &v) == 0)
                found = find_value(&values, v);
            class_map[k] = (int32_t)found;
        }
        for (size_t i = 0; i < n; i++) {
            label[i] = class_map[r->a.label[i]];
            if (label[i] < 0) {
                rc = dsc__fail(DSC_EFORMAT, "%s: row %zu: class '%.40s' was not seen in "
                               "training", r->path, i + 1, e->classes[r->a.label[i]]);
                goto done;
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            char text[64];
            dsc__class_text(r->a.y[i], text, sizeof text);
            long found = find_name(&names, text);
            if (found < 0)
                found = find_value(&values, r->a.y[i]);
            if (found < 0) {
                rc = dsc__fail(DSC_EFORMAT, "%s: row %zu: class '%s' was not seen in "
                               "training", r->path, i + 1, text);
                goto done;
            }
            label[i] = (int32_t)found;
        }
    }
    t->label = label;
    t->y = NULL;
    t->data.n_targets = 0;
    label = NULL;

done:
    dsc__free(label);
    dsc__free(class_map);
    dsc__free(names.entries);
    dsc__free(values.entries);
    return rc;
}

/* true when the file's columns and levels are the model's, in the same order. */
static int same_columns(cache_read *r, bool *same)
{
    const dsc_prep *m = r->model, *e = r->enc;

    *same = true;
    if (!m->n_columns || !e->n_columns)
        return DSC_OK; /* features by position: the counts are compared by the caller */
    if (e->n_columns != m->n_columns)
        return dsc__fail(DSC_ESHAPE, "%s: the data cache has %zu columns besides the target, "
                         "the model %zu", r->path, e->n_columns, m->n_columns);
    for (size_t c = 0; c < m->n_columns; c++) {
        const dsc_column *ec = &e->columns[c], *mc = &m->columns[c];
        char buf[32];
        if (ec->categorical != mc->categorical)
            return dsc__fail(DSC_EFORMAT, "%s: column %s is %s in the data cache but %s in "
                             "the model; convert the data with the model", r->path,
                             mc->name ? mc->name : (snprintf(buf, sizeof buf, "%zu", c + 1), buf),
                             ec->categorical ? "one-hot encoded" : "numeric",
                             mc->categorical ? "one-hot encoded" : "numeric");
        if (!ec->categorical)
            continue;
        if (ec->n_levels != mc->n_levels) {
            *same = false;
            continue;
        }
        for (size_t v = 0; v < ec->n_levels && *same; v++)
            *same = strcmp(ec->levels[v], mc->levels[v]) == 0;
    }
    return DSC_OK;
}

/*
 * Re-encode the dense features with the model's one-hot levels (a copy): a level the model
 * does not know becomes all zeros and is counted as unseen, a missing value stays NaN.
 */
static int remap_levels(cache_read *r)
{
    const dsc_prep *m = r->model, *e = r->enc;
    size_t n = (size_t)r->h.n_rows, k_in = e->n_features, k_out = m->n_features;
    int rc = DSC_OK;

    if (!r->a.x)
        return dsc__fail(DSC_EFORMAT, "%s: sparse data with one-hot columns", r->path);
    float *x = dsc__alloc(dsc__mul(dsc__mul(n, k_out), sizeof(float)));
    int32_t **level_map = dsc__calloc(m->n_columns, sizeof(int32_t *));
    if (!x || !level_map) {
        rc = out_of_memory(r);
        goto done;
    }
    for (size_t c = 0; c < m->n_columns; c++) {
        const dsc_column *ec = &e->columns[c], *mc = &m->columns[c];
        if (!mc->categorical)
            continue;
        name_index names;
        level_map[c] = dsc__alloc(dsc__mul(ec->n_levels ? ec->n_levels : 1, sizeof(int32_t)));
        if (!level_map[c] || index_names(&names, mc->levels, mc->n_levels) < 0) {
            rc = out_of_memory(r);
            goto done;
        }
        for (size_t v = 0; v < ec->n_levels; v++)
            level_map[c][v] = (int32_t)find_name(&names, ec->levels[v]);
        dsc__free(names.entries);
    }

    size_t unseen = 0;
    for (size_t i = 0; i < n; i++) {
        const float *in = r->a.x + i * k_in;
        float *out = x + i * k_out;
        for (size_t c = 0; c < m->n_columns; c++) {
            const dsc_column *ec = &e->columns[c], *mc = &m->columns[c];
            const float *slots = in + ec->first_feature;
            float *dst = out + mc->first_feature;
            if (!mc->categorical) {
                dst[0] = slots[0];
                continue;
            }
            bool missing = ec->n_levels > 0 && isnan(slots[0]);
            for (size_t v = 0; v < mc->n_levels; v++)
                dst[v] = missing ? NAN : 0.0f;
            for (size_t v = 0; !missing && v < ec->n_levels; v++) {
                if (slots[v] != 1.0f)
                    continue;
                if (level_map[c][v] >= 0)
                    dst[level_map[c][v]] = 1.0f;
                else
                    unseen++;
                break;
            }
        }
    }
    r->table->x = x;
    r->table->n_unseen += unseen;
    x = NULL;

done:
    for (size_t c = 0; level_map && c < m->n_columns; c++)
        dsc__free(level_map[c]);
    dsc__free(level_map);
    dsc__free(x);
    return rc;
}

/* Prediction: features and targets encoded as the model's encoding says. */
static int fit_prediction(cache_read *r)
{
    const dsc_prep *m = r->model;
    dsc_table *t = r->table;
    bool same;
    int rc = same_columns(r, &same);

    if (rc < 0)
        return rc;
    if (!same) {
        if ((rc = remap_levels(r)) < 0)
            return rc;
        t->data.n_features = m->n_features;
    } else if (r->a.row_ptr && r->h.n_features <= m->n_features) {
        t->data.n_features = m->n_features; /* CSR columns within fewer features fit */
    } else if (r->a.row_ptr) {
        return dsc__fail(DSC_ESHAPE, "%s: %llu features, beyond the %zu features of the "
                         "training data", r->path, (unsigned long long)r->h.n_features,
                         m->n_features);
    }
    return fit_targets(r);
}

/*
 * Point the table at the arrays in the file. Known shortcoming: when dsc_prep_apply copies
 * an array out of the mapping to change it, the mapped pages stay mapped until the table is
 * freed; they are clean file pages the kernel can drop, but count in the resident size.
 */
static void use_in_place(cache_read *r)
{
    dsc_table *t = r->table;

    /* The mapping is read-only: dsc_prep_apply copies an array before changing it. */
    t->x = (float *)r->a.x;
    t->row_ptr = (uint64_t *)r->a.row_ptr;
    t->col = (uint32_t *)r->a.col;
    t->val = (float *)r->a.val;
    t->label = (int32_t *)r->a.label;
    t->y = (float *)r->a.y;
    t->weight = (float *)r->a.weight;
    memset(&t->data, 0, sizeof t->data);
    t->data.n_rows = (size_t)r->h.n_rows;
    t->data.n_features = (size_t)r->h.n_features;
    t->data.n_targets = (size_t)r->h.n_targets;
    t->n_missing = (size_t)r->h.n_missing;
    t->n_unseen = (size_t)r->h.n_unseen;
}

/* Map the file, check it, and read its encoding: what a read and a verification share. */
static int open_cache(const char *path, file_bytes *f, header *h, dsc_prep **enc,
                      uint64_t *target_column, arrays *a)
{
    int rc = check_header(path, f, h);

    if (rc == DSC_OK)
        rc = read_encoding(path, f, h, enc, target_column);
    if (rc == DSC_OK && (rc = check_file_arrays(path, f, h, (*enc)->n_classes, a)) < 0) {
        dsc_prep_free(*enc);
        *enc = NULL;
    }
    return rc;
}

int dsc__read_cache(dsc_table *table, const char *path, const dsc_read_options *opts,
                    const dsc_prep *prep)
{
    cache_read r;
    file_bytes f;
    uint64_t target_column = 0;

    memset(&r, 0, sizeof r);
    r.path = path;
    r.table = table;
    r.model = prep;
    int rc = open_bytes(path, &f);
    if (rc < 0)
        return rc;
    /* The table owns the bytes from here: dsc_table_free releases them. */
    table->mapping = (void *)f.data;
    table->mapping_size = f.size;
    table->mapping_block = f.block;

    if ((rc = open_cache(path, &f, &r.h, &r.enc, &target_column, &r.a)) < 0)
        return rc;
    use_in_place(&r);
    table->target_column = (size_t)target_column;
    if ((rc = check_target(&r, opts->target, target_column)) == DSC_OK &&
        (rc = check_missing(&r, prep ? prep->missing : opts->missing)) == DSC_OK)
        rc = prep ? fit_prediction(&r) : fit_learning(&r, opts);
    dsc_prep_free(r.enc);
    return rc;
}

int dsc_cache_verify(const char *path)
{
    file_bytes f;
    header h;
    dsc_prep *enc = NULL;
    arrays a;
    uint64_t target_column;

    if (!path || !*path)
        return dsc__fail(DSC_EINVAL, "data cache: path is NULL or empty");
    int rc = open_bytes(path, &f);
    if (rc < 0)
        return rc;
    rc = open_cache(path, &f, &h, &enc, &target_column, &a);
    for (int s = SEC_X; rc == DSC_OK && s < N_SECTIONS; s++) {
        if (h.sec[s].bytes &&
            dsc_crc32(0, f.data + h.sec[s].offset, (size_t)h.sec[s].bytes) != h.sec[s].crc)
            rc = dsc__fail(DSC_ECHECKSUM, "%s: checksum mismatch in %s: the file is corrupted",
                           path, section_names[s]);
    }
    dsc_prep_free(enc);
    close_bytes(&f);
    return rc;
}
