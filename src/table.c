/*
 * table.c - read options, format names, and dsc_table_read, which opens a data file and
 * hands it to the reader of its format.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

void dsc_read_options_default(dsc_read_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->format = DSC_FORMAT_AUTO;
    opts->delimiter = 0;
    opts->header = -1;
    opts->target = NULL;
    opts->classify = -1;
    opts->max_levels = 1000;
    opts->missing = DSC_MISSING_ERROR;
    opts->labels_path = NULL;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* true when name ends with suffix, ignoring ASCII case. */
static bool ends_with(const char *name, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);

    if (n > len)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(name[len - n + i]) != suffix[i])
            return false;
    }
    return true;
}

/* true when name contains part, ignoring ASCII case. */
static bool contains(const char *name, size_t len, const char *part)
{
    size_t n = strlen(part);

    for (size_t start = 0; start + n <= len; start++) {
        size_t i = 0;
        while (i < n && lower(name[start + i]) == part[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

dsc_format dsc_format_from_path(const char *path)
{
    if (!path)
        return DSC_FORMAT_CSV;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t len = strlen(name);

    if (ends_with(name, len, ".svm") || ends_with(name, len, ".libsvm") ||
        ends_with(name, len, ".svmlight"))
        return DSC_FORMAT_LIBSVM;
    if (ends_with(name, len, ".npy"))
        return DSC_FORMAT_NPY;
    if (contains(name, len, "-idx") || ends_with(name, len, "ubyte") ||
        ends_with(name, len, "ubyte.gz"))
        return DSC_FORMAT_IDX;
    return DSC_FORMAT_CSV; /* .csv, .tsv, .txt, .data and anything else */
}

static const char *const format_names[DSC_FORMAT_COUNT] = {"auto", "csv", "libsvm", "npy",
                                                           "idx"};
static const char *const missing_names[DSC_MISSING_COUNT] = {"error", "mean", "median"};

const char *dsc_format_name(dsc_format format)
{
    return (unsigned)format < DSC_FORMAT_COUNT ? format_names[format] : "unknown";
}

int dsc_format_from_name(const char *name)
{
    for (int i = 0; name && i < DSC_FORMAT_COUNT; i++) {
        if (strcmp(name, format_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *dsc_missing_name(dsc_missing missing)
{
    return (unsigned)missing < DSC_MISSING_COUNT ? missing_names[missing] : "unknown";
}

int dsc_missing_from_name(const char *name)
{
    for (int i = 0; name && i < DSC_MISSING_COUNT; i++) {
        if (strcmp(name, missing_names[i]) == 0)
            return i;
    }
    return -1;
}

/* Test hooks (internal.h): the text readers' fast path, and the rows it has read. */
static atomic_int fast_text = 1;
static atomic_size_t fast_text_rows;

void dsc__allow_fast_text(int allow)
{
    atomic_store(&fast_text, allow != 0);
}

int dsc__fast_text_allowed(void)
{
    return atomic_load(&fast_text);
}

void dsc__add_fast_text_rows(size_t n)
{
    if (n)
        atomic_fetch_add(&fast_text_rows, n);
}

size_t dsc__fast_text_rows(void)
{
    return atomic_load(&fast_text_rows);
}

dsc_table *dsc__table_new(void)
{
    return dsc__calloc(1, sizeof(dsc_table));
}

/* true when p lies inside the table's memory-mapped file (and so is not a separate block). */
static bool in_mapping(const dsc_table *table, const void *p)
{
    const char *base = table->mapping, *q = p;

    return base && q && q >= base && q < base + table->mapping_size;
}

static void free_owned(dsc_table *table, void *p)
{
    if (!in_mapping(table, p))
        dsc__free(p);
}

void dsc_table_free(dsc_table *table)
{
    if (!table)
        return;
    free_owned(table, table->x);
    free_owned(table, table->row_ptr);
    free_owned(table, table->col);
    free_owned(table, table->val);
    free_owned(table, table->label);
    free_owned(table, table->y);
    free_owned(table, table->weight);
    if (table->mapping)
        dsc__cache_release(table);
    dsc_prep_free(table->prep);
    dsc__free(table);
}

const dsc_data *dsc_table_data(const dsc_table *table)
{
    return table ? &table->data : NULL;
}

dsc_prep *dsc_table_prep(dsc_table *table)
{
    return table ? table->prep : NULL;
}

size_t dsc_table_n_unseen(const dsc_table *table)
{
    return table ? table->n_unseen : 0;
}

/* Check the options a reader relies on; 0 or DSC_EINVAL with a message. */
static int check_options(const dsc_read_options *opts)
{
    if ((unsigned)opts->format >= DSC_FORMAT_COUNT)
        return dsc__fail(DSC_EINVAL, "format: unknown format %d", (int)opts->format);
    if (opts->delimiter && !strchr(",;\t|", opts->delimiter))
        return dsc__fail(DSC_EINVAL, "delimiter: must be ',', ';', tab or '|'");
    if (opts->header < -1 || opts->header > 1)
        return dsc__fail(DSC_EINVAL, "header: must be 1, 0 or -1, got %d", opts->header);
    if (opts->classify < -1 || opts->classify > 1)
        return dsc__fail(DSC_EINVAL, "classify: must be 1, 0 or -1, got %d", opts->classify);
    if ((unsigned)opts->missing >= DSC_MISSING_COUNT)
        return dsc__fail(DSC_EINVAL, "missing: unknown policy %d", (int)opts->missing);
    if (opts->target && !opts->target[0])
        return dsc__fail(DSC_EINVAL, "target: empty column name");
    return 0;
}

/* Point the view at the arrays the reader filled. */
static void set_view(dsc_table *table)
{
    dsc_data *data = &table->data;

    data->x = table->x;
    data->row_ptr = table->row_ptr;
    data->col = table->col;
    data->val = table->val;
    data->label = table->label;
    data->y = table->y;
    data->weight = table->weight;
    if (!data->n_features)
        data->n_features = table->prep->n_features;
    if (!table->prep->n_features)
        table->prep->n_features = data->n_features;
    if (table->y && !data->n_targets)
        data->n_targets = table->prep->n_targets ? table->prep->n_targets : 1;
    if (!table->y)
        data->n_targets = 0;
}

/*
 * Read a data file. The table gets its prep before the reader runs: a copy of the given one
 * (prediction) or an empty one to learn into (training); a reader fills table->data.n_rows,
 * the arrays and, when learning, table->prep.
 */
dsc_table *dsc_table_read(const char *path, const dsc_read_options *opts, const dsc_prep *prep,
                          int *err)
{
    dsc_read_options defaults;
    int rc;

    if (!opts) {
        dsc_read_options_default(&defaults);
        opts = &defaults;
    }
    if (!path) {
        dsc__fail(DSC_EINVAL, "path: NULL");
        return dsc__fail_null(err, DSC_EINVAL);
    }
    if ((rc = check_options(opts)) != 0)
        return dsc__fail_null(err, rc);

    bool is_stdin = strcmp(path, "-") == 0;
    const char *shown = is_stdin ? "<stdin>" : path;
    dsc_format format = opts->format;
    if (format == DSC_FORMAT_AUTO)
        format = is_stdin ? DSC_FORMAT_CSV : dsc_format_from_path(path);

    dsc_table *table = dsc__table_new();
    if (!table) {
        dsc__fail(DSC_ENOMEM, "%s: out of memory", shown);
        return dsc__fail_null(err, DSC_ENOMEM);
    }
    if (prep) {
        table->prep = dsc_prep_copy(prep, &rc);
    } else {
        rc = DSC_ENOMEM;
        table->prep = dsc__prep_new();
        if (table->prep) {
            table->prep->format = format;
            table->prep->missing = opts->missing;
        }
    }
    if (!table->prep) {
        dsc__fail(rc, "%s: out of memory", shown);
        goto fail;
    }

    /* A data cache is known by its first bytes, whatever the name or the format asked for. */
    bool cache = !is_stdin && dsc__is_cache(path);
    FILE *in = NULL;
    if (!cache && (format == DSC_FORMAT_CSV || format == DSC_FORMAT_LIBSVM)) {
        in = is_stdin ? stdin : fopen(path, "rb");
        if (!in) {
            rc = dsc__fail(DSC_EIO, "%s: cannot open: %s", path, strerror(errno));
            goto fail;
        }
    }

    if (cache) {
        rc = dsc__read_cache(table, path, opts, prep);
    } else {
        switch (format) {
        case DSC_FORMAT_CSV: rc = dsc__read_csv(table, in, shown, opts, prep); break;
        case DSC_FORMAT_LIBSVM: rc = dsc__read_libsvm(table, in, shown, opts, prep); break;
        case DSC_FORMAT_NPY: rc = dsc__read_npy(table, path, opts, prep); break;
        case DSC_FORMAT_IDX: rc = dsc__read_idx(table, path, opts, prep); break;
        default: rc = dsc__fail(DSC_EINVAL, "format: unknown format %d", (int)format); break;
        }
    }
    if (in && in != stdin)
        fclose(in);
    if (rc < 0)
        goto fail;
    if (!table->prep) {
        rc = dsc__fail(DSC_EFORMAT, "%s: the reader gave no encoding", shown);
        goto fail;
    }

    set_view(table);
    if (prep && table->data.n_features != prep->n_features) {
        rc = dsc__fail(DSC_ESHAPE, "%s: %zu features, but the model expects %zu", shown,
                       table->data.n_features, prep->n_features);
        goto fail;
    }
    return table;

fail:
    dsc_table_free(table);
    return dsc__fail_null(err, rc < 0 ? rc : DSC_EFORMAT);
}
