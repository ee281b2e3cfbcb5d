/*
 * modelfile.c - model files (save and load), the JSON description of a model, and CRC-32.
 *
 * The file format, version 1. Every integer and float is written little-endian, byte by
 * byte, so that a file is the same on every machine and every machine reads it the same way.
 * Sizes and counts are u64, enumerations u32, flags u8 (0 or 1), floats IEEE 754 binary32
 * (their bit pattern as a u32). A string is a u32 byte count followed by that many bytes,
 * with no terminating NUL and no NUL inside; the count 0xFFFFFFFF stands for "no string"
 * (NULL), and any other count is at most 1 MiB.
 *
 *   offset  field
 *   0       magic: the 8 bytes "DSCMODEL"
 *   8       format version: u32, 1
 *   12      byte-order mark: u32 0x01020304, that is the bytes 04 03 02 01. It documents that
 *           the file is little-endian; a reader finding 01 02 03 04 rejects the file.
 *   16      model configuration:
 *             n_inputs u64 (1 to 2^32 - 1), n_outputs u64 (1 to 2^24),
 *             n_hidden u32 (at most DSC_MAX_HIDDEN), then for each hidden layer:
 *             width u64 (1 to 2^24), activation u32 (dsc_activation),
 *             then loss u32 (dsc_loss), loss_param f32, act_param f32
 *           parameters:
 *             n_params u64 (must equal what dsc_model_new gives for the configuration),
 *             then n_params f32 values, the flat parameter buffer (each finite)
 *           preprocessing:
 *             present u8; when 1:
 *             format u32 (dsc_format), n_columns u64 (at most 1,000,000), then per column:
 *               name string (may be none), categorical u8, n_levels u64 (at most 1,000,000),
 *               n_levels level strings (each present), first_feature u64
 *             n_features u64 (must equal n_inputs; every column's features lie within it),
 *             target name string (may be none), n_targets u64 (at most 2^24),
 *             n_classes u64 (at most 65536; equal to n_outputs for a classifier),
 *               n_classes class label strings (each present),
 *             missing u32 (dsc_missing),
 *             impute: present u8, then n_features f32 when present,
 *             standardized u8,
 *             mean: present u8, then n_features f32 when present,
 *             scale: present u8, then n_features f32 when present
 *           settings: a string (may be none)
 *   end-4   CRC-32 (dsc_crc32, from 0) of every byte before it: u32
 *
 * Loading reads the whole file into memory (at most 4 GiB) and checks, in this order: the
 * magic (so that a file of another kind is called that rather than corrupted), the CRC, the
 * version, then every field, each read checking the bytes left and each count checked
 * against its limit and against the bytes left before anything is allocated for it.
 *
 * Saving writes to a temporary file next to the target (path.tmp.XXXXXX), flushes and syncs
 * it, and renames it over the target, so that path holds either the old file or the whole
 * new one. Known shortcoming: the umask is not consulted; a new file gets mode 0644 and a
 * replaced file keeps the mode of the file it replaces.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1u
#define BYTE_ORDER_MARK 0x01020304u
#define NO_STRING 0xFFFFFFFFu
#define MAX_STRING (1u << 20)
#define MAX_CLASSES 65536u
#define MAX_COLUMNS 1000000u
#define MAX_LEVELS 1000000u
#define MAX_TARGETS (1u << 24)
#define MAX_FILE_SIZE ((uint64_t)4 << 30)

static const unsigned char magic[8] = {'D', 'S', 'C', 'M', 'O', 'D', 'E', 'L'};

/*
 * A checkpoint is a model file with its own magic and, after the settings text, the
 * trainer's state (dsc_trainer_state_save) as a u64 length and the bytes.
 */
static const unsigned char checkpoint_magic[8] = {'D', 'S', 'C', 'C', 'H', 'K', 'P', 'T'};

/* What a file holds beyond the model: nothing, or a trainer state. */
typedef struct file_extra {
    const unsigned char *magic;
    const void *state;
    size_t state_size;
} file_extra;

/* ---- CRC-32 -------------------------------------------------------------------------- */

/*
 * The reflected CRC-32 of zlib and PNG: polynomial 0xEDB88320, initial value and final xor
 * 0xFFFFFFFF, eight bytes a step ("slicing by 8"). crc_tables[0] is the usual byte table: the
 * CRC of one byte. crc_tables[k][n] is the CRC of byte n followed by k zero bytes, so that the
 * CRC after eight bytes is the xor of eight table entries, one per byte, instead of a chain
 * of eight dependent lookups.
 *
 * The tables are computed by the first call. A thread that finds another thread computing
 * them builds the byte table on its stack and goes a byte at a time instead of waiting, so
 * no thread ever reads a half-written table.
 */
static uint32_t crc_tables[8][256];
static atomic_int crc_table_state; /* 0 not computed, 1 being computed, 2 ready */

static void crc_fill(uint32_t *table)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
        table[n] = c;
    }
}

static void crc_fill_slices(uint32_t tables[8][256])
{
    crc_fill(tables[0]);
    for (int k = 1; k < 8; k++) {
        for (int n = 0; n < 256; n++) {
            uint32_t c = tables[k - 1][n];
            tables[k][n] = (c >> 8) ^ tables[0][c & 0xFFu];
        }
    }
}

/* Four bytes as a little-endian number, on any machine. */
static uint32_t crc_word(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The CRC register after bytes[0..len), a byte at a time. */
static uint32_t crc_bytes(const uint32_t *table, uint32_t crc, const unsigned char *bytes,
                          size_t len)
{
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
    return crc;
}

uint32_t dsc_crc32(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *bytes = data;

    if (atomic_load_explicit(&crc_table_state, memory_order_acquire) != 2) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&crc_table_state, &expected, 1)) {
            crc_fill_slices(crc_tables);
            atomic_store_explicit(&crc_table_state, 2, memory_order_release);
        } else if (expected != 2) {
            uint32_t private_table[256];
            crc_fill(private_table);
            return ~crc_bytes(private_table, ~crc, bytes, len);
        }
    }

    const uint32_t(*t)[256] = (const uint32_t(*)[256])crc_tables;
    crc = ~crc;
    for (; len >= 8; len -= 8, bytes += 8) {
        uint32_t low = crc ^ crc_word(bytes), high = crc_word(bytes + 4);
        crc = t[7][low & 0xFFu] ^ t[6][(low >> 8) & 0xFFu] ^ t[5][(low >> 16) & 0xFFu] ^
              t[4][low >> 24] ^ t[3][high & 0xFFu] ^ t[2][(high >> 8) & 0xFFu] ^
              t[1][(high >> 16) & 0xFFu] ^ t[0][high >> 24];
    }
    return ~crc_bytes(t[0], crc, bytes, len);
}

/* ---- Checks shared by saving and loading ---------------------------------------------- */

/* The parameter count dsc_model_new gives cfg (its layout), or 0 when it would overflow. */
static uint64_t expected_n_params(const dsc_model_config *cfg)
{
    int binary = dsc_loss_is_classification(cfg->loss) && cfg->loss != DSC_LOSS_SOFTMAX &&
                 cfg->n_outputs == 2;
    uint64_t n_in = cfg->n_inputs, total = 0;

    for (size_t l = 0; l <= cfg->n_hidden; l++) {
        uint64_t n_out = l == cfg->n_hidden ? (binary ? 1 : cfg->n_outputs) : cfg->hidden[l];
        if (n_out != 0 && n_in > (UINT64_MAX / 2) / n_out)
            return 0;
        uint64_t count = n_in * n_out + n_out;
        if (count > UINT64_MAX / 2 - total)
            return 0;
        total += count;
        n_in = n_out;
    }
    return total;
}

/* Width in features of a column of an encoding. */
static size_t column_width(const dsc_column *col)
{
    return col->categorical ? col->n_levels : 1;
}

/* Length of a string for the file, or NO_STRING for NULL; -1 when it is too long. */
static int64_t string_length(const char *s)
{
    if (!s)
        return NO_STRING;
    size_t len = strlen(s);
    return len > MAX_STRING ? -1 : (int64_t)len;
}

/*
 * Check that prep can be written and read back: every count within its limit, every string
 * at most 1 MiB, and the encoding consistent with the model's configuration.
 */
static int check_prep_for_save(const char *path, const dsc_prep *p, const dsc_model_config *cfg)
{
    if (p->n_columns > MAX_COLUMNS)
        return dsc__fail(DSC_ELIMIT, "%s: prep has %zu columns; a model file holds at most %u",
                         path, p->n_columns, MAX_COLUMNS);
    if ((p->n_columns && !p->columns) || (p->n_classes && !p->classes))
        return dsc__fail(DSC_EINVAL, "%s: prep has counts without their arrays", path);
    if (p->n_features != cfg->n_inputs)
        return dsc__fail(DSC_ESHAPE, "%s: prep encodes %zu features but the model takes %zu",
                         path, p->n_features, cfg->n_inputs);
    if ((unsigned)p->format >= DSC_FORMAT_COUNT || (unsigned)p->missing >= DSC_MISSING_COUNT)
        return dsc__fail(DSC_EINVAL, "%s: prep has an unknown format or missing policy", path);
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        if (string_length(col->name) < 0)
            return dsc__fail(DSC_ELIMIT, "%s: the name of column %zu is over 1 MiB", path,
                             c + 1);
        if (col->n_levels > MAX_LEVELS || (col->n_levels && !col->levels))
            return dsc__fail(DSC_ELIMIT, "%s: column %zu has %zu levels; at most %u", path,
                             c + 1, col->n_levels, MAX_LEVELS);
        for (size_t v = 0; v < col->n_levels; v++) {
            if (string_length(col->levels[v]) < 0 || !col->levels[v])
                return dsc__fail(DSC_EINVAL, "%s: level %zu of column %zu is missing or over "
                                 "1 MiB", path, v + 1, c + 1);
        }
        if (col->first_feature > p->n_features ||
            column_width(col) > p->n_features - col->first_feature)
            return dsc__fail(DSC_ESHAPE, "%s: the features of column %zu lie beyond the %zu "
                             "features", path, c + 1, p->n_features);
    }
    if (string_length(p->target_name) < 0)
        return dsc__fail(DSC_ELIMIT, "%s: the target name is over 1 MiB", path);
    if (p->n_targets > MAX_TARGETS)
        return dsc__fail(DSC_ELIMIT, "%s: prep has %zu targets; at most %u", path, p->n_targets,
                         MAX_TARGETS);
    if (p->n_classes > MAX_CLASSES)
        return dsc__fail(DSC_ELIMIT, "%s: prep has %zu classes; a model file holds at most %u",
                         path, p->n_classes, MAX_CLASSES);
    if (dsc_loss_is_classification(cfg->loss) && p->n_classes != cfg->n_outputs)
        return dsc__fail(DSC_ESHAPE, "%s: prep has %zu classes but the model has %zu outputs",
                         path, p->n_classes, cfg->n_outputs);
    for (size_t k = 0; k < p->n_classes; k++) {
        if (string_length(p->classes[k]) < 0 || !p->classes[k])
            return dsc__fail(DSC_EINVAL, "%s: class label %zu is missing or over 1 MiB", path,
                             k + 1);
    }
    return DSC_OK;
}

/* ---- Writing -------------------------------------------------------------------------- */

/* A buffered writer that keeps the CRC of everything written through it. */
typedef struct writer {
    FILE *fp;
    uint32_t crc;
    int failed_errno; /* errno of the first failed write, or -1 for one without errno */
    size_t used;
    unsigned char buf[16384];
} writer;

static void w_flush(writer *w)
{
    if (w->used == 0 || w->failed_errno)
        return;
    w->crc = dsc_crc32(w->crc, w->buf, w->used);
    errno = 0;
    if (fwrite(w->buf, 1, w->used, w->fp) != w->used)
        w->failed_errno = errno ? errno : -1;
    w->used = 0;
}

static void w_bytes(writer *w, const void *data, size_t len)
{
    const unsigned char *bytes = data;

    while (len > 0) {
        if (w->used == sizeof w->buf)
            w_flush(w);
        size_t room = sizeof w->buf - w->used, n = len < room ? len : room;
        memcpy(w->buf + w->used, bytes, n);
        w->used += n;
        bytes += n;
        len -= n;
    }
}

static void w_u8(writer *w, unsigned value)
{
    unsigned char byte = (unsigned char)value;
    w_bytes(w, &byte, 1);
}

static void put_le32(unsigned char *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(value >> (8 * i));
}

static void w_u32(writer *w, uint32_t value)
{
    unsigned char bytes[4];
    put_le32(bytes, value);
    w_bytes(w, bytes, 4);
}

static void w_u64(writer *w, uint64_t value)
{
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    w_bytes(w, bytes, 8);
}

static void w_f32(writer *w, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    w_u32(w, bits);
}

static void w_floats(writer *w, const float *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w_f32(w, values[i]);
}

/* A string (its length already checked by the caller), or the "no string" count. */
static void w_string(writer *w, const char *s)
{
    if (!s) {
        w_u32(w, NO_STRING);
        return;
    }
    size_t len = strlen(s);
    w_u32(w, (uint32_t)len);
    w_bytes(w, s, len);
}

/* An optional array of n floats: a presence flag, then the values. */
static void w_optional_floats(writer *w, const float *values, size_t n)
{
    w_u8(w, values != NULL);
    if (values)
        w_floats(w, values, n);
}

static void write_prep(writer *w, const dsc_prep *p)
{
    w_u32(w, (uint32_t)p->format);
    w_u64(w, p->n_columns);
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        w_string(w, col->name);
        w_u8(w, col->categorical != 0);
        w_u64(w, col->n_levels);
        for (size_t v = 0; v < col->n_levels; v++)
            w_string(w, col->levels[v]);
        w_u64(w, col->first_feature);
    }
    w_u64(w, p->n_features);
    w_string(w, p->target_name);
    w_u64(w, p->n_targets);
    w_u64(w, p->n_classes);
    for (size_t k = 0; k < p->n_classes; k++)
        w_string(w, p->classes[k]);
    w_u32(w, (uint32_t)p->missing);
    w_optional_floats(w, p->impute, p->n_features);
    w_u8(w, p->standardized != 0);
    w_optional_floats(w, p->mean, p->n_features);
    w_optional_floats(w, p->scale, p->n_features);
}

/* Everything but the closing CRC, which the caller writes after w_flush. */
static void write_model(writer *w, const dsc_model *model, const dsc_prep *prep,
                        const char *settings, const file_extra *extra)
{
    const dsc_model_config *cfg = dsc_model_config_of(model);
    /* Read only: dsc_model_params takes a non-const model. */
    const float *params = dsc_model_params((dsc_model *)model);

    w_bytes(w, extra->magic, sizeof magic);
    w_u32(w, FORMAT_VERSION);
    w_u32(w, BYTE_ORDER_MARK);

    w_u64(w, cfg->n_inputs);
    w_u64(w, cfg->n_outputs);
    w_u32(w, (uint32_t)cfg->n_hidden);
    for (size_t l = 0; l < cfg->n_hidden; l++) {
        w_u64(w, cfg->hidden[l]);
        w_u32(w, (uint32_t)cfg->activation[l]);
    }
    w_u32(w, (uint32_t)cfg->loss);
    w_f32(w, cfg->loss_param);
    w_f32(w, cfg->act_param);

    w_u64(w, dsc_model_n_params(model));
    w_floats(w, params, dsc_model_n_params(model));

    w_u8(w, prep != NULL);
    if (prep)
        write_prep(w, prep);

    w_string(w, settings);
    if (extra->magic == checkpoint_magic) {
        w_u64(w, extra->state_size);
        w_bytes(w, extra->state, extra->state_size);
    }
}

/*
 * Check everything that could make the file unreadable, then write it to a temporary file,
 * sync it and rename it over path; on failure the temporary file is removed.
 */
static int save_file(const char *path, const dsc_model *model, const dsc_prep *prep,
                     const char *settings, const file_extra *extra)
{
    if (!path || !*path)
        return dsc__fail(DSC_EINVAL, "model file: path is NULL or empty");
    if (!model)
        return dsc__fail(DSC_EINVAL, "%s: model is NULL", path);

    const dsc_model_config *cfg = dsc_model_config_of(model);
    const float *params = dsc_model_params((dsc_model *)model);
    size_t n_params = dsc_model_n_params(model);
    for (size_t i = 0; i < n_params; i++) {
        if (!isfinite(params[i]))
            return dsc__fail(DSC_ENONFINITE, "%s: refusing to save a model with a non-finite "
                             "weight (parameter %zu)", path, i);
    }
    if (prep) {
        int rc = check_prep_for_save(path, prep, cfg);
        if (rc < 0)
            return rc;
    }
    if (string_length(settings) < 0)
        return dsc__fail(DSC_ELIMIT, "%s: the settings text is over 1 MiB", path);

    /* The temporary file, next to the target so that the rename stays in one file system. */
    dsc__atomic_file out;
    int rc = dsc__atomic_open(&out, path);
    if (rc < 0)
        return rc;

    /* The writer's buffer is 16 KiB: allocated rather than put on the stack. */
    writer *w = dsc__alloc(sizeof *w);
    if (!w) {
        dsc__atomic_close(&out, ENOMEM, "model");
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    }
    w->fp = out.fp;
    w->crc = 0;
    w->failed_errno = 0;
    w->used = 0;
    write_model(w, model, prep, settings, extra);
    w_flush(w);
    unsigned char crc_bytes[4];
    put_le32(crc_bytes, w->crc);
    if (!w->failed_errno && fwrite(crc_bytes, 1, 4, out.fp) != 4)
        w->failed_errno = errno ? errno : -1;
    int failed_errno = w->failed_errno;
    dsc__free(w);

    /* Flush, sync and close; then the rename makes the new file visible at once. */
    rc = dsc__atomic_close(&out, failed_errno, "model");
    if (rc < 0)
        return rc;
    return DSC_OK;
}

int dsc_model_save(const char *path, const dsc_model *model, const dsc_prep *prep,
                   const char *settings)
{
    file_extra plain = {.magic = magic};

    return save_file(path, model, prep, settings, &plain);
}

int dsc_checkpoint_save(const char *path, const dsc_model *model, const dsc_trainer *trainer,
                        const dsc_prep *prep, const char *settings)
{
    if (!path || !model || !trainer)
        return dsc__fail(DSC_EINVAL, "checkpoint: NULL argument");
    size_t size = dsc_trainer_state_size(trainer);
    void *state = dsc__alloc(size);
    if (!state)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for the trainer state", path);
    int rc = dsc_trainer_state_save(trainer, state, size);
    if (rc == DSC_OK) {
        file_extra extra = {.magic = checkpoint_magic, .state = state, .state_size = size};
        rc = save_file(path, model, prep, settings, &extra);
    }
    dsc__free(state);
    return rc;
}

/* ---- Reading -------------------------------------------------------------------------- */

/* A cursor over the bytes of a file held in memory. */
typedef struct reader {
    const char *path;
    const unsigned char *data;
    size_t size; /* the bytes before the CRC */
    size_t pos;
} reader;

/* Fail with "PATH: truncated or corrupted at byte N (what was expected)". */
static int corrupt_at(const reader *r, size_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int corrupt_at(const reader *r, size_t offset, const char *fmt, ...)
{
    char expected[256];
    va_list args;

    va_start(args, fmt);
    vsnprintf(expected, sizeof expected, fmt, args);
    va_end(args);
    return dsc__fail(DSC_EFORMAT, "%s: truncated or corrupted at byte %zu (%s)", r->path,
                     offset, expected);
}

/* 0 when n bytes are left at the cursor; otherwise the failure, naming what. */
static int need(const reader *r, uint64_t n, const char *what)
{
    if (n > r->size - r->pos)
        return corrupt_at(r, r->pos, "%s", what);
    return DSC_OK;
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int r_u8(reader *r, const char *what, unsigned *out)
{
    int rc = need(r, 1, what);
    if (rc < 0)
        return rc;
    *out = r->data[r->pos++];
    return DSC_OK;
}

/* A flag byte: 0 or 1. */
static int r_flag(reader *r, const char *what, int *out)
{
    size_t at = r->pos;
    unsigned byte;
    int rc = r_u8(r, what, &byte);
    if (rc < 0)
        return rc;
    if (byte > 1)
        return corrupt_at(r, at, "%s: 0 or 1, found %u", what, byte);
    *out = (int)byte;
    return DSC_OK;
}

static int r_u32(reader *r, const char *what, uint32_t *out)
{
    int rc = need(r, 4, what);
    if (rc < 0)
        return rc;
    *out = get_le32(r->data + r->pos);
    r->pos += 4;
    return DSC_OK;
}

static int r_u64(reader *r, const char *what, uint64_t *out)
{
    int rc = need(r, 8, what);
    if (rc < 0)
        return rc;
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = value << 8 | r->data[r->pos + (size_t)i];
    r->pos += 8;
    *out = value;
    return DSC_OK;
}

/* A u64 count or size in [lo, hi]. */
static int r_size(reader *r, const char *what, uint64_t lo, uint64_t hi, size_t *out)
{
    size_t at = r->pos;
    uint64_t value;
    int rc = r_u64(r, what, &value);
    if (rc < 0)
        return rc;
    if (value < lo || value > hi || value > SIZE_MAX)
        return corrupt_at(r, at, "%s from %llu to %llu, found %llu", what,
                          (unsigned long long)lo, (unsigned long long)hi,
                          (unsigned long long)value);
    *out = (size_t)value;
    return DSC_OK;
}

/* A u32 enumeration value below count. */
static int r_enum(reader *r, const char *what, unsigned count, unsigned *out)
{
    size_t at = r->pos;
    uint32_t value;
    int rc = r_u32(r, what, &value);
    if (rc < 0)
        return rc;
    if (value >= count)
        return corrupt_at(r, at, "%s below %u, found %u", what, count, (unsigned)value);
    *out = value;
    return DSC_OK;
}

static float bits_to_float(uint32_t bits)
{
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static int r_f32(reader *r, const char *what, float *out)
{
    uint32_t bits;
    int rc = r_u32(r, what, &bits);
    if (rc < 0)
        return rc;
    *out = bits_to_float(bits);
    return DSC_OK;
}

/*
 * A string into *out (allocated, NUL-terminated), or NULL for "no string"; optional says
 * whether "no string" is allowed.
 */
static int r_string(reader *r, const char *what, int optional, char **out)
{
    size_t at = r->pos;
    uint32_t len;
    int rc = r_u32(r, what, &len);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (len == NO_STRING && optional)
        return DSC_OK;
    if (len > MAX_STRING)
        return corrupt_at(r, at, "%s: a length of at most 1 MiB, found %u", what,
                          (unsigned)len);
    rc = need(r, len, what);
    if (rc < 0)
        return rc;
    if (memchr(r->data + r->pos, '\0', len))
        return corrupt_at(r, r->pos, "%s without a NUL byte", what);
    char *s = dsc__alloc((size_t)len + 1);
    if (!s)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", r->path);
    memcpy(s, r->data + r->pos, len);
    s[len] = '\0';
    r->pos += len;
    *out = s;
    return DSC_OK;
}

/* An optional array of n floats into *out (NULL when absent). */
static int r_optional_floats(reader *r, const char *what, size_t n, float **out)
{
    int present = 0, rc = r_flag(r, what, &present);

    *out = NULL;
    if (rc < 0 || !present)
        return rc;
    rc = need(r, (uint64_t)n * 4, what);
    if (rc < 0)
        return rc;
    float *values = dsc__calloc(n, sizeof *values);
    if (!values)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu values", r->path, n);
    for (size_t i = 0; i < n; i++)
        values[i] = bits_to_float(get_le32(r->data + r->pos + 4 * i));
    r->pos += 4 * n;
    *out = values;
    return DSC_OK;
}

/* The model configuration, then the parameters, into a new model. */
static int read_model(reader *r, dsc_model **out)
{
    dsc_model_config cfg;
    size_t config_at = r->pos;
    unsigned value = 0;
    uint32_t n_hidden;
    int rc;

    *out = NULL;
    dsc_model_config_init(&cfg, 1, 1, DSC_LOSS_SQUARED);
    if ((rc = r_size(r, "the number of inputs", 1, UINT32_MAX, &cfg.n_inputs)) < 0 ||
        (rc = r_size(r, "the number of outputs", 1, 1u << 24, &cfg.n_outputs)) < 0)
        return rc;
    size_t hidden_at = r->pos;
    if ((rc = r_u32(r, "the number of hidden layers", &n_hidden)) < 0)
        return rc;
    if (n_hidden > DSC_MAX_HIDDEN)
        return corrupt_at(r, hidden_at, "at most %d hidden layers, found %u", DSC_MAX_HIDDEN,
                          (unsigned)n_hidden);
    cfg.n_hidden = n_hidden;
    for (size_t l = 0; l < cfg.n_hidden; l++) {
        if ((rc = r_size(r, "a hidden layer's width", 1, 1u << 24, &cfg.hidden[l])) < 0 ||
            (rc = r_enum(r, "a hidden layer's activation", DSC_ACT_COUNT, &value)) < 0)
            return rc;
        cfg.activation[l] = (dsc_activation)value;
    }
    if ((rc = r_enum(r, "the loss", DSC_LOSS_COUNT, &value)) < 0)
        return rc;
    cfg.loss = (dsc_loss)value;
    if ((rc = r_f32(r, "the loss parameter", &cfg.loss_param)) < 0 ||
        (rc = r_f32(r, "the activation parameter", &cfg.act_param)) < 0)
        return rc;

    /* The parameter count must match the configuration and fit in the file. */
    size_t params_at = r->pos;
    uint64_t n_params, expected = expected_n_params(&cfg);
    if ((rc = r_u64(r, "the number of parameters", &n_params)) < 0)
        return rc;
    if (n_params != expected)
        return corrupt_at(r, params_at, "%llu parameters, as the configuration gives, found "
                          "%llu", (unsigned long long)expected, (unsigned long long)n_params);
    if (n_params > (r->size - r->pos) / 4)
        return corrupt_at(r, r->pos, "%llu parameter values", (unsigned long long)n_params);

    int err;
    dsc_model *model = dsc_model_new(&cfg, &err);
    if (!model) {
        if (err == DSC_ENOMEM)
            return err;
        char why[256];
        snprintf(why, sizeof why, "%s", dsc_last_error());
        return corrupt_at(r, config_at, "a valid model configuration: %s", why);
    }
    if (dsc_model_n_params(model) != n_params) {
        dsc_model_free(model);
        return corrupt_at(r, params_at, "a parameter count that matches the model");
    }
    float *params = dsc_model_params(model);
    for (size_t i = 0; i < n_params; i++) {
        params[i] = bits_to_float(get_le32(r->data + r->pos));
        if (!isfinite(params[i])) {
            dsc_model_free(model);
            return corrupt_at(r, r->pos, "a finite value of parameter %zu", i);
        }
        r->pos += 4;
    }
    *out = model;
    return DSC_OK;
}

/* The columns of an encoding, into p (whose n_columns grows as they are read). */
static int read_columns(reader *r, dsc_prep *p)
{
    size_t n_columns;
    int rc;

    /* A column takes at least 21 bytes: name length, flag, level count, first feature. */
    if ((rc = r_size(r, "the number of columns", 0, MAX_COLUMNS, &n_columns)) < 0 ||
        (rc = need(r, (uint64_t)n_columns * 21, "the columns")) < 0)
        return rc;
    if (n_columns == 0)
        return DSC_OK;
    p->columns = dsc__calloc(n_columns, sizeof *p->columns);
    if (!p->columns)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu columns", r->path, n_columns);
    p->n_columns = n_columns;

    for (size_t c = 0; c < n_columns; c++) {
        dsc_column *col = &p->columns[c];
        size_t n_levels;
        if ((rc = r_string(r, "a column name", 1, &col->name)) < 0 ||
            (rc = r_flag(r, "a column's categorical flag", &col->categorical)) < 0 ||
            (rc = r_size(r, "a column's number of levels", 0, MAX_LEVELS, &n_levels)) < 0 ||
            (rc = need(r, (uint64_t)n_levels * 4, "a column's levels")) < 0)
            return rc;
        if (n_levels > 0) {
            col->levels = dsc__calloc(n_levels, sizeof *col->levels);
            if (!col->levels)
                return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu levels", r->path,
                                 n_levels);
            col->n_levels = n_levels;
        }
        for (size_t v = 0; v < n_levels; v++) {
            if ((rc = r_string(r, "a level", 0, &col->levels[v])) < 0)
                return rc;
        }
        if ((rc = r_size(r, "a column's first feature", 0, UINT32_MAX,
                         &col->first_feature)) < 0)
            return rc;
    }
    return DSC_OK;
}

/* An encoding, checked against the model's configuration, into p. */
static int read_prep(reader *r, dsc_prep *p, const dsc_model_config *cfg)
{
    unsigned value = 0;
    size_t at;
    int rc;

    if ((rc = r_enum(r, "the data format", DSC_FORMAT_COUNT, &value)) < 0)
        return rc;
    p->format = (dsc_format)value;
    if ((rc = read_columns(r, p)) < 0)
        return rc;

    at = r->pos;
    if ((rc = r_size(r, "the number of features", 0, UINT32_MAX, &p->n_features)) < 0)
        return rc;
    if (p->n_features != cfg->n_inputs)
        return corrupt_at(r, at, "as many features as the model's %zu inputs, found %zu",
                          cfg->n_inputs, p->n_features);
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        if (col->first_feature > p->n_features ||
            column_width(col) > p->n_features - col->first_feature)
            return corrupt_at(r, at, "a feature count covering column %zu, found %zu", c + 1,
                              p->n_features);
    }

    if ((rc = r_string(r, "the target name", 1, &p->target_name)) < 0 ||
        (rc = r_size(r, "the number of targets", 0, MAX_TARGETS, &p->n_targets)) < 0)
        return rc;

    at = r->pos;
    size_t n_classes;
    if ((rc = r_size(r, "the number of classes", 0, MAX_CLASSES, &n_classes)) < 0)
        return rc;
    if (dsc_loss_is_classification(cfg->loss) && n_classes != cfg->n_outputs)
        return corrupt_at(r, at, "as many classes as the model's %zu outputs, found %zu",
                          cfg->n_outputs, n_classes);
    if ((rc = need(r, (uint64_t)n_classes * 4, "the class labels")) < 0)
        return rc;
    if (n_classes > 0) {
        p->classes = dsc__calloc(n_classes, sizeof *p->classes);
        if (!p->classes)
            return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu classes", r->path,
                             n_classes);
        p->n_classes = n_classes;
    }
    for (size_t k = 0; k < n_classes; k++) {
        if ((rc = r_string(r, "a class label", 0, &p->classes[k])) < 0)
            return rc;
    }

    if ((rc = r_enum(r, "the missing-value policy", DSC_MISSING_COUNT, &value)) < 0)
        return rc;
    p->missing = (dsc_missing)value;
    if ((rc = r_optional_floats(r, "the imputation values", p->n_features, &p->impute)) < 0 ||
        (rc = r_flag(r, "the standardization flag", &p->standardized)) < 0 ||
        (rc = r_optional_floats(r, "the feature means", p->n_features, &p->mean)) < 0 ||
        (rc = r_optional_floats(r, "the feature scales", p->n_features, &p->scale)) < 0)
        return rc;
    return DSC_OK;
}

/*
 * Read the whole of path into *data (allocated; *size bytes). A file over 4 GiB is refused
 * before anything is read.
 */
static int read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;

    *data = NULL;
    *size = 0;
    if (!fp)
        return dsc__fail(DSC_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) != 0) {
        int saved = errno;
        fclose(fp);
        return dsc__fail(DSC_EIO, "%s: cannot read: %s", path, strerror(saved));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(fp);
        return dsc__fail(DSC_EIO, "%s: is a folder, not a model file", path);
    }
    uint64_t limit = MAX_FILE_SIZE < SIZE_MAX - 1 ? MAX_FILE_SIZE : SIZE_MAX - 1;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > limit) {
        fclose(fp);
        return dsc__fail(DSC_ELIMIT, "%s: %llu bytes; a model file is at most %llu bytes",
                         path, (unsigned long long)st.st_size, (unsigned long long)limit);
    }

    /* Read to the end, growing the buffer for a file whose size was not known. */
    size_t capacity = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, used = 0;
    unsigned char *buf = dsc__alloc(capacity);
    if (!buf) {
        fclose(fp);
        return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu bytes", path, capacity);
    }
    for (;;) {
        if (used == capacity) {
            if (capacity > limit) {
                dsc__free(buf);
                fclose(fp);
                return dsc__fail(DSC_ELIMIT, "%s: a model file is at most %llu bytes", path,
                                 (unsigned long long)limit);
            }
            size_t grown = capacity > limit / 2 ? (size_t)limit + 1 : capacity * 2;
            unsigned char *bigger = dsc__alloc(grown);
            if (!bigger) {
                dsc__free(buf);
                fclose(fp);
                return dsc__fail(DSC_ENOMEM, "%s: out of memory for %zu bytes", path, grown);
            }
            memcpy(bigger, buf, used);
            dsc__free(buf);
            buf = bigger;
            capacity = grown;
        }
        size_t got = fread(buf + used, 1, capacity - used, fp);
        used += got;
        if (got == 0)
            break;
    }
    int failed = ferror(fp);
    fclose(fp);
    if (failed) {
        dsc__free(buf);
        return dsc__fail(DSC_EIO, "%s: reading failed", path);
    }
    if (used > limit) {
        dsc__free(buf);
        return dsc__fail(DSC_ELIMIT, "%s: a model file is at most %llu bytes", path,
                         (unsigned long long)limit);
    }
    *data = buf;
    *size = used;
    return DSC_OK;
}

/* Check the magic, CRC, version and byte-order mark of a file image; the cursor follows. */
static int read_header(reader *r, size_t file_size, const unsigned char *expected)
{
    if (file_size >= sizeof magic && expected == magic &&
        memcmp(r->data, checkpoint_magic, sizeof magic) == 0)
        return dsc__fail(DSC_EFORMAT, "%s: a training checkpoint, not a model file (resume "
                         "it with train --resume)", r->path);
    if (file_size < sizeof magic || memcmp(r->data, expected, sizeof magic) != 0)
        return dsc__fail(DSC_EFORMAT, "%s: not a descent %s file", r->path,
                         expected == magic ? "model" : "checkpoint");
    if (file_size < sizeof magic + 4 ||
        get_le32(r->data + file_size - 4) != dsc_crc32(0, r->data, file_size - 4))
        return dsc__fail(DSC_ECHECKSUM, "%s: checksum mismatch: the file is corrupted",
                         r->path);
    r->size = file_size - 4;
    r->pos = sizeof magic;

    uint32_t version, mark;
    int rc = r_u32(r, "the format version", &version);
    if (rc < 0)
        return rc;
    if (version > FORMAT_VERSION)
        return dsc__fail(DSC_EVERSION, "%s: written by format version %u; this build reads up "
                         "to %u", r->path, (unsigned)version, FORMAT_VERSION);
    if (version == 0)
        return corrupt_at(r, sizeof magic, "a format version from 1 to %u, found 0",
                          FORMAT_VERSION);
    if ((rc = r_u32(r, "the byte-order mark", &mark)) < 0)
        return rc;
    if (mark == 0x04030201u)
        return corrupt_at(r, r->pos - 4, "the byte-order mark 04 03 02 01 of a little-endian "
                          "file; this one claims to be big-endian, which descent never "
                          "writes");
    if (mark != BYTE_ORDER_MARK)
        return corrupt_at(r, r->pos - 4, "the byte-order mark 04 03 02 01");
    return DSC_OK;
}

/*
 * Read the file into memory, check its header, then parse and check every field. With a
 * checkpoint magic, the trainer state is returned in *state_out and *state_size.
 */
static int load_file(const char *path, const unsigned char *expected, dsc_model **model_out,
                     dsc_prep **prep_out, char **settings_out, void **state_out,
                     size_t *state_size)
{
    if (model_out)
        *model_out = NULL;
    if (prep_out)
        *prep_out = NULL;
    if (settings_out)
        *settings_out = NULL;
    if (!path || !*path)
        return dsc__fail(DSC_EINVAL, "model file: path is NULL or empty");

    unsigned char *data;
    size_t file_size;
    int rc = read_whole_file(path, &data, &file_size);
    if (rc < 0)
        return rc;

    reader r = {.path = path, .data = data, .size = file_size, .pos = 0};
    dsc_model *model = NULL;
    dsc_prep *prep = NULL;
    char *settings = NULL;
    int has_prep = 0;

    void *state = NULL;
    uint64_t n_state = 0;
    rc = read_header(&r, file_size, expected);
    if (rc == DSC_OK)
        rc = read_model(&r, &model);
    if (rc == DSC_OK)
        rc = r_flag(&r, "the preprocessing flag", &has_prep);
    if (rc == DSC_OK && has_prep) {
        prep = dsc__prep_new();
        rc = prep ? read_prep(&r, prep, dsc_model_config_of(model))
                  : dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    }
    if (rc == DSC_OK)
        rc = r_string(&r, "the settings text", 1, &settings);
    if (rc == DSC_OK && expected == checkpoint_magic) {
        rc = r_u64(&r, "the size of the trainer state", &n_state);
        if (rc == DSC_OK)
            rc = need(&r, n_state, "the trainer state");
        if (rc == DSC_OK && !(state = dsc__alloc((size_t)n_state)))
            rc = dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
        if (rc == DSC_OK) {
            memcpy(state, r.data + r.pos, (size_t)n_state);
            r.pos += (size_t)n_state;
        }
    }
    if (rc == DSC_OK && r.pos != r.size)
        rc = corrupt_at(&r, r.pos, "the checksum after the settings text, found %zu more "
                        "bytes", r.size - r.pos);
    dsc__free(data);

    if (rc < 0) {
        dsc_model_free(model);
        dsc_prep_free(prep);
        dsc__free(settings);
        dsc__free(state);
        return rc;
    }
    if (state_out) {
        *state_out = state;
        *state_size = (size_t)n_state;
    }
    if (model_out)
        *model_out = model;
    else
        dsc_model_free(model);
    if (prep_out)
        *prep_out = prep;
    else
        dsc_prep_free(prep);
    if (settings_out)
        *settings_out = settings;
    else
        dsc__free(settings);
    return DSC_OK;
}

int dsc_model_load(const char *path, dsc_model **model_out, dsc_prep **prep_out,
                   char **settings_out)
{
    return load_file(path, magic, model_out, prep_out, settings_out, NULL, NULL);
}

int dsc_checkpoint_load(const char *path, dsc_model **model, dsc_prep **prep,
                        char **settings, void **state, size_t *state_size)
{
    if (!state || !state_size)
        return dsc__fail(DSC_EINVAL, "checkpoint: state and state_size are required");
    *state = NULL;
    *state_size = 0;
    return load_file(path, checkpoint_magic, model, prep, settings, state, state_size);
}

/* ---- JSON ----------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not valid. */
static size_t utf8_length(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * A JSON string: quotes and backslashes escaped, control characters as \u00XX, bytes that
 * are not valid UTF-8 replaced by U+FFFD so that the output stays valid JSON; NULL as null.
 */
static void json_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", (unsigned)c);
            i++;
        } else {
            size_t len = utf8_length(p + i, n - i);
            if (len == 0) {
                fputs("\\ufffd", out);
                len = 1;
            } else {
                fwrite(p + i, 1, len, out);
            }
            i += len;
        }
    }
    fputc('"', out);
}

/*
 * A float with 9 significant digits (enough to read back the same float), or null when it is
 * not finite. The decimal point is written as '.' whatever the locale.
 */
static void json_float(FILE *out, float value)
{
    char text[64], clean[64];
    size_t j = 0;
    int in_point = 0;

    if (!isfinite(value)) {
        fputs("null", out);
        return;
    }
    snprintf(text, sizeof text, "%.9g", (double)value);
    for (size_t i = 0; text[i] && j + 1 < sizeof clean; i++) {
        char c = text[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
            clean[j++] = c;
            in_point = 0;
        } else if (!in_point) {
            clean[j++] = '.';
            in_point = 1;
        }
    }
    clean[j] = '\0';
    fputs(clean, out);
}

/* Floats as one line: [a, b, c]; null for a NULL array. */
static void json_float_array(FILE *out, const float *values, size_t n)
{
    if (!values) {
        fputs("null", out);
        return;
    }
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        json_float(out, values[i]);
    }
    fputc(']', out);
}

static void json_indent(FILE *out, int level)
{
    for (int i = 0; i < level; i++)
        fputs("  ", out);
}

static void json_string_array(FILE *out, char *const *strings, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        json_string(out, strings[i]);
    }
    fputc(']', out);
}

static void json_columns(FILE *out, const dsc_prep *p)
{
    if (p->n_columns == 0 || !p->columns) {
        fputs("[]", out);
        return;
    }
    fputs("[\n", out);
    for (size_t c = 0; c < p->n_columns; c++) {
        const dsc_column *col = &p->columns[c];
        json_indent(out, 3);
        fputs("{\"name\": ", out);
        json_string(out, col->name);
        fprintf(out, ", \"kind\": \"%s\"", col->categorical ? "one-hot" : "numeric");
        if (col->categorical) {
            fputs(", \"levels\": ", out);
            json_string_array(out, col->levels, col->levels ? col->n_levels : 0);
        }
        fprintf(out, "}%s\n", c + 1 < p->n_columns ? "," : "");
    }
    json_indent(out, 2);
    fputc(']', out);
}

static void json_prep(FILE *out, const dsc_prep *p)
{
    const char *format = dsc_format_name(p->format);
    const char *missing = dsc_missing_name(p->missing);

    fputs("{\n", out);
    json_indent(out, 2);
    fputs("\"format\": ", out);
    json_string(out, format);
    fprintf(out, ",\n    \"features\": %zu,\n    \"columns\": ", p->n_features);
    json_columns(out, p);
    fputs(",\n    \"missing\": ", out);
    json_string(out, missing);
    fputs(",\n    \"impute\": ", out);
    json_float_array(out, p->impute, p->n_features);
    fprintf(out, ",\n    \"standardized\": %s", p->standardized ? "true" : "false");
    fputs(",\n    \"mean\": ", out);
    json_float_array(out, p->mean, p->n_features);
    fputs(",\n    \"scale\": ", out);
    json_float_array(out, p->scale, p->n_features);
    fputs("\n  }", out);
}

static void json_weights(FILE *out, const dsc_model *model)
{
    /* Read only: dsc_model_layer takes a non-const model. */
    dsc_model *m = (dsc_model *)model;
    size_t n_layers = dsc_model_n_layers(model);

    fputs(",\n  \"weights\": [\n", out);
    for (size_t l = 0; l < n_layers; l++) {
        dsc_layer layer;
        if (dsc_model_layer(m, l, &layer) < 0)
            break;
        json_indent(out, 2);
        fprintf(out, "{\n      \"layer\": %zu,\n      \"w\": [\n", l);
        for (size_t i = 0; i < layer.n_in; i++) {
            json_indent(out, 4);
            json_float_array(out, layer.w + i * layer.n_out, layer.n_out);
            fputs(i + 1 < layer.n_in ? ",\n" : "\n", out);
        }
        fputs("      ],\n      \"b\": ", out);
        json_float_array(out, layer.b, layer.n_out);
        fprintf(out, "\n    }%s\n", l + 1 < n_layers ? "," : "");
    }
    fputs("  ]", out);
}

/* The JSON description: checked for write errors only once, at the end (ferror). */
int dsc_model_write_json(FILE *out, const dsc_model *model, const dsc_prep *prep,
                         const char *settings, int with_weights)
{
    if (!out || !model)
        return dsc__fail(DSC_EINVAL, "model description: %s is NULL", out ? "model" : "out");

    const dsc_model_config *cfg = dsc_model_config_of(model);
    size_t n_layers = dsc_model_n_layers(model);

    fprintf(out, "{\n  \"format_version\": %u,\n", FORMAT_VERSION);
    fprintf(out, "  \"architecture\": {\n    \"inputs\": %zu,\n    \"outputs\": %zu,\n",
            cfg->n_inputs, cfg->n_outputs);
    fputs("    \"loss\": ", out);
    json_string(out, dsc_loss_name(cfg->loss));
    fputs(",\n    \"loss_param\": ", out);
    json_float(out, cfg->loss_param);
    fputs(",\n    \"act_param\": ", out);
    json_float(out, cfg->act_param);
    fputs(",\n    \"layers\": [\n", out);
    for (size_t l = 0; l < n_layers; l++) {
        dsc_layer layer;
        if (dsc_model_layer((dsc_model *)model, l, &layer) < 0)
            break;
        fprintf(out, "      {\"inputs\": %zu, \"outputs\": %zu, \"activation\": ", layer.n_in,
                layer.n_out);
        json_string(out, dsc_activation_name(layer.activation));
        fprintf(out, "}%s\n", l + 1 < n_layers ? "," : "");
    }
    fputs("    ]\n  },\n", out);
    fprintf(out, "  \"parameters\": %zu,\n  \"preprocessing\": ", dsc_model_n_params(model));
    if (prep)
        json_prep(out, prep);
    else
        fputs("null", out);

    fputs(",\n  \"target\": ", out);
    json_string(out, prep ? prep->target_name : NULL);
    fputs(",\n  \"classes\": ", out);
    if (prep && prep->n_classes > 0 && prep->classes)
        json_string_array(out, prep->classes, prep->n_classes);
    else
        fputs("null", out);
    fputs(",\n  \"settings\": ", out);
    json_string(out, settings);
    if (with_weights)
        json_weights(out, model);
    fputs("\n}\n", out);

    if (fflush(out) != 0 || ferror(out))
        return dsc__fail(DSC_EIO, "model description: writing failed: %s", strerror(errno));
    return DSC_OK;
}
