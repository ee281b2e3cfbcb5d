/*
 * idx.c - the IDX reader (the format of MNIST and Fashion-MNIST): an images file of unsigned
 * bytes (magic 0x00000803, dimensions count x rows x columns, big-endian) and a labels file
 * (magic 0x00000801, one byte per image) given by opts->labels_path.
 *
 * Each image becomes one row of rows * columns features holding the raw pixel values 0..255
 * as floats; scaling is left to standardisation (dsc_prep_fit). Labels are classes, their
 * text the decimal value ("0".."9") in numeric order, unless opts->classify is 0, which makes
 * them regression targets. Either file may be gzipped: gzip is detected by its magic bytes
 * and read through zlib when the library is built with it (DSC_HAVE_ZLIB). The pixels are
 * read in blocks into an array that grows with what the file really holds, so a header that
 * lies about the count costs no more memory than the file's contents.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <string.h>

#ifdef DSC_HAVE_ZLIB
#include <unistd.h>
#include <zlib.h>
#endif

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_FEATURES 2147483647u  /* features per image < 2^31 */
#define IDX_BLOCK 65536               /* bytes read at a time */

/* The name of a file in messages: "<stdin>" for "-". */
static const char *shown_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* An open IDX file, plain or gzipped. */
typedef struct idx_file {
    const char *path;
#ifdef DSC_HAVE_ZLIB
    const char *open_name; /* the name given to zlib */
    gzFile gz;             /* reads plain files too, unchanged */
#else
    FILE *file;
#endif
} idx_file;

#ifdef DSC_HAVE_ZLIB

/* zlib's message without the "NAME: " it starts with (NAME the path, or "<fd:N>"). */
static const char *gz_message(const idx_file *f, const char *message)
{
    size_t len = strlen(f->open_name);

    if (strncmp(message, f->open_name, len) == 0 && strncmp(message + len, ": ", 2) == 0)
        return message + len + 2;
    if (strncmp(message, "<fd:", 4) == 0 && strstr(message, ">: "))
        return strstr(message, ">: ") + 3;
    return message;
}

static int idx_open(idx_file *f, const char *path)
{
    f->path = shown_name(path);
    f->open_name = path;
    errno = 0;
    if (strcmp(path, "-") == 0) {
        int fd = dup(STDIN_FILENO);
        f->gz = fd < 0 ? NULL : gzdopen(fd, "rb");
        if (!f->gz && fd >= 0)
            close(fd);
    } else {
        f->gz = gzopen(path, "rb");
    }
    if (!f->gz)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", f->path,
                         errno ? strerror(errno) : "out of memory");
    return DSC_OK;
}

/* Read up to n bytes into buf; *got is short only at the end of the data. */
static int idx_read(idx_file *f, void *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_BLOCK ? n - *got : IDX_BLOCK;
        int r = gzread(f->gz, (char *)buf + *got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *why = gzerror(f->gz, &zerr);
            if (zerr == Z_ERRNO)
                return dsc__fail(DSC_EIO, "%s: read error: %s", f->path, strerror(errno));
            return dsc__fail(DSC_EFORMAT, "%s: corrupt gzip data (%s)", f->path,
                             gz_message(f, why));
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }

    /* A gzip stream cut short reads as a short file; zlib reports it as an error. */
    int zerr;
    const char *why = gzerror(f->gz, &zerr);
    if (*got < n && zerr != Z_OK)
        return dsc__fail(DSC_EFORMAT, "%s: corrupt gzip data (%s)", f->path,
                         gz_message(f, why));
    return DSC_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

#else

static int idx_open(idx_file *f, const char *path)
{
    f->path = shown_name(path);
    f->file = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f->file)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", f->path, strerror(errno));

    return DSC_OK;
}

static int idx_read(idx_file *f, void *buf, size_t n, size_t *got)
{
    *got = fread(buf, 1, n, f->file);
    if (*got < n && ferror(f->file))
        return dsc__fail(DSC_EIO, "%s: read error", f->path);
    return DSC_OK;
}

static void idx_close(idx_file *f)
{
    if (f->file && f->file != stdin)
        fclose(f->file);
    f->file = NULL;
}

#endif

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Read the magic and the n_dims dimensions of an IDX header into dims; what names the
 * expected contents in messages ("images", "labels").
 */
static int read_idx_header(idx_file *f, uint32_t magic, size_t n_dims, uint32_t *dims,
                           const char *what)
{
    unsigned char header[16];
    size_t need = 4 + 4 * n_dims, got;
    int rc = idx_read(f, header, need, &got);

    if (rc < 0)
        return rc;
#ifndef DSC_HAVE_ZLIB
    if (got >= 2 && header[0] == 0x1f && header[1] == 0x8b)
        return dsc__fail(DSC_EFORMAT, "%s: gzip-compressed, and descent was compiled without "
                         "zlib; gunzip the file first", f->path);
#endif
    if (got >= 4 && load_be32(header) != magic)
        return dsc__fail(DSC_EFORMAT, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)",
                         f->path, what, load_be32(header), magic);
    if (got < need)
        return dsc__fail(DSC_EFORMAT, "%s: file ends inside the IDX header (%zu of %zu bytes)",
                         f->path, got, need);
    for (size_t i = 0; i < n_dims; i++)
        dims[i] = load_be32(header + 4 + 4 * i);
    return DSC_OK;
}

/* Read whatever follows the declared data; an error when there is anything. */
static int check_end(idx_file *f, uint32_t count, const char *what)
{
    unsigned char byte;
    size_t got;
    int rc = idx_read(f, &byte, 1, &got);

    if (rc < 0)
        return rc;
    if (got > 0)
        return dsc__fail(DSC_EFORMAT, "%s: data goes on after the %u %s the header declares",
                         f->path, count, what);
    return DSC_OK;
}

/* Read the images file into table->x: *n_images rows of *n_features pixel values. */
static int read_images(dsc_table *table, const char *path, const dsc_prep *prep,
                       size_t *n_images, size_t *n_features)
{
    idx_file f;
    uint32_t dims[3] = {0, 0, 0};
    int rc = idx_open(&f, path);
    if (rc < 0)
        return rc;
    path = f.path;

    rc = read_idx_header(&f, IDX_IMAGES_MAGIC, 3, dims, "images");
    size_t features = 0;
    if (rc >= 0 && (dims[0] == 0 || dims[1] == 0 || dims[2] == 0))
        rc = dsc__fail(DSC_EFORMAT, "%s: header says %u images of %u x %u pixels: nothing to "
                       "read", path, dims[0], dims[1], dims[2]);
    if (rc >= 0 && ((uint64_t)dims[1] * dims[2] > IDX_MAX_FEATURES ||
                    dsc__mul_overflows(dims[1], dims[2], &features)))
        rc = dsc__fail(DSC_ELIMIT, "%s: images of %u x %u pixels: more than %u features",
                       path, dims[1], dims[2], IDX_MAX_FEATURES);
    if (rc >= 0 && prep && features != prep->n_features)
        rc = dsc__fail(DSC_EFORMAT, "%s: images of %u x %u = %zu pixels but the training data "
                       "had %zu features", path, dims[1], dims[2], features, prep->n_features);
    size_t total = 0;
    if (rc >= 0 && dsc__mul_overflows(dims[0], features, &total))
        rc = dsc__fail(DSC_ELIMIT, "%s: %u images of %zu pixels do not fit in memory", path,
                       dims[0], features);

    /* Whole images at a time, converted as they come, into an array that grows with them. */
    float *x = NULL;
    size_t capacity = 0, done = 0;
    unsigned char *block = NULL;
    size_t block_size = IDX_BLOCK;
    if (rc >= 0) {
        block = dsc__alloc(block_size);
        if (!block)
            rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    }
    while (rc >= 0 && done < total) {
        size_t want = total - done < block_size ? total - done : block_size;
        size_t got;
        rc = idx_read(&f, block, want, &got);
        if (rc < 0)
            break;
        float *grown = dsc__grow(x, &capacity, done, done + got, total, sizeof(float));
        if (!grown) {
            rc = dsc__fail(DSC_ENOMEM, "%s: out of memory after %zu images", path,
                           done / features);
            break;
        }
        x = grown;
        for (size_t i = 0; i < got; i++)
            x[done + i] = (float)block[i];
        done += got;
        if (got < want)
            rc = dsc__fail(DSC_EFORMAT, "%s: file ends after %zu images, header says %u",
                           path, done / features, dims[0]);
    }
    dsc__free(block);
    if (rc >= 0)
        rc = check_end(&f, dims[0], "images");
    idx_close(&f);

    if (rc < 0) {
        dsc__free(x);
        return rc;
    }
    table->x = x;
    *n_images = dims[0];
    *n_features = features;
    return DSC_OK;
}

/* Read the labels file: one byte per image, into classes or regression targets. */
static int read_labels(dsc_table *table, const char *path, const char *images_path,
                       const dsc_read_options *opts, int learning, size_t n_images)
{
    idx_file f;
    uint32_t count = 0;
    int rc = idx_open(&f, path);
    if (rc < 0)
        return rc;
    path = f.path;

    rc = read_idx_header(&f, IDX_LABELS_MAGIC, 1, &count, "labels");
    if (rc >= 0 && count != n_images)
        rc = dsc__fail(DSC_EFORMAT, "%s: %u labels but %s has %zu images", path, count,
                       images_path, n_images);

    float *values = NULL;
    unsigned char *bytes = NULL;
    if (rc >= 0) {
        values = dsc__alloc(dsc__mul(n_images, sizeof(float)));
        bytes = dsc__alloc(IDX_BLOCK);
        if (!values || !bytes)
            rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    }
    for (size_t done = 0; rc >= 0 && done < n_images;) {
        size_t want = n_images - done < IDX_BLOCK ? n_images - done : IDX_BLOCK;
        size_t got;
        rc = idx_read(&f, bytes, want, &got);
        if (rc < 0)
            break;
        for (size_t i = 0; i < got; i++)
            values[done + i] = (float)bytes[i];
        done += got;
        if (got < want)
            rc = dsc__fail(DSC_EFORMAT, "%s: file ends after %zu labels, header says %u",
                           path, done, count);
    }
    dsc__free(bytes);
    if (rc >= 0)
        rc = check_end(&f, count, "labels");
    idx_close(&f);
    if (rc < 0) {
        dsc__free(values);
        return rc;
    }

    /* Classes unless asked for regression, or as the given prep says. */
    dsc_prep *prep = table->prep;
    int classify = learning ? opts->classify != 0 : prep->n_classes > 0;
    if (!classify) {
        if (learning || prep->n_targets == 1) {
            table->y = values;
            if (learning)
                prep->n_targets = 1;
        } else {
            dsc__free(values);
        }
        return DSC_OK;
    }

    int32_t *label = dsc__alloc(dsc__mul(n_images, sizeof(int32_t)));
    size_t bad_row = 0;
    rc = DSC_ENOMEM;
    if (label)
        rc = learning ? dsc__learn_classes(prep, values, n_images, label)
                      : dsc__map_classes(prep, values, n_images, label, &bad_row);
    if (rc == DSC_EFORMAT && !learning) {
        rc = dsc__fail(DSC_EFORMAT, "%s: label %u of image %zu was not seen in training",
                       path, (unsigned)values[bad_row], bad_row + 1);
    } else if (rc < 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", rc == DSC_ENOMEM ? "out of memory"
                                                               : dsc_last_error());
        rc = dsc__fail(rc, "%s: class labels: %s", path, reason);
    }
    dsc__free(values);
    if (rc < 0) {
        dsc__free(label);
        return rc;
    }
    table->label = label;
    return DSC_OK;
}

/*
 * Read an IDX images file at path, and the labels file opts->labels_path when given, into
 * table. With prep NULL the encoding is learned (a labels file is then required).
 */
int dsc__read_idx(dsc_table *table, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep)
{
    dsc_read_options defaults;
    int rc;

    if (!opts) {
        dsc_read_options_default(&defaults);
        opts = &defaults;
    }
    if (!prep && !opts->labels_path)
        return dsc__fail(DSC_EINVAL, "%s: no labels file: give labels_path to learn from IDX "
                         "images", shown_name(path));

    /* dsc_table_read gives the table its prep: a copy of the given one, or a new one. */
    if (!table->prep)
        return dsc__fail(DSC_EINVAL, "%s: internal: the table has no preprocessing", path);

    size_t n_images = 0, n_features = 0;
    rc = read_images(table, path, prep, &n_images, &n_features);
    if (rc < 0)
        return rc;
    if (!prep)
        table->prep->n_features = n_features;
    if (opts->labels_path) {
        rc = read_labels(table, opts->labels_path, shown_name(path), opts, prep == NULL,
                         n_images);
        if (rc < 0)
            return rc;
    }

    memset(&table->data, 0, sizeof table->data);
    table->data.n_rows = n_images;
    table->data.n_features = n_features;
    table->data.x = table->x;
    table->data.label = table->label;
    table->data.y = table->y;
    table->data.n_targets = table->y ? 1 : 0;
    return DSC_OK;
}
