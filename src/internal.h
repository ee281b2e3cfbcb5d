/*
 * internal.h - what the library's source files share and users never see.
 */
#ifndef DSC_INTERNAL_H
#define DSC_INTERNAL_H

#include "descent.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation through the user's allocator (dsc_set_allocator). Every result must be checked. */
void *dsc__alloc(size_t size);
void *dsc__calloc(size_t count, size_t size);
void dsc__free(void *ptr);

/* count * size, or SIZE_MAX when the product overflows (an allocation of SIZE_MAX fails). */
size_t dsc__mul(size_t count, size_t size);

/* true when a * b overflows size_t; *out gets the product otherwise. */
bool dsc__mul_overflows(size_t a, size_t b, size_t *out);

/*
 * Record the message of a failure for dsc_last_error() and return code, so that a failing
 * function can write: return dsc__fail(DSC_EINVAL, "batch must be at least 1, got %zu", b);
 */
int dsc__fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Store code in *err when err is not NULL; returns NULL for constructors' failure paths. */
void *dsc__fail_null(int *err, int code);

/* Seconds from a monotonic clock. */
double dsc__now(void);

/* 1 when every element of a[0..n) is finite. */
bool dsc__all_finite(const float *a, size_t n);

/* Activations over arrays (activation.c): a = f(z), then delta *= f'(z) given z and a. */
void dsc__act_forward(dsc_activation act, float param, const float *z, float *a, size_t n);
void dsc__act_backward(dsc_activation act, float param, const float *z, const float *a,
                       float *delta, size_t n);

/* The default parameter of an activation or a loss when the configured one is 0. */
float dsc__act_param(dsc_activation act, float param);
float dsc__loss_param(dsc_loss loss, float param);

/*
 * The loss of one sample (loss.c) from its k logits z: label is its class for a classification
 * loss, y its k targets for a regression loss. When dz is not NULL it receives
 * scale * d(loss)/dz. k is 1 for a binary loss on two classes (label 0 or 1).
 */
double dsc__row_loss(dsc_loss loss, float param, const float *z, size_t k, int32_t label,
                     const float *y, float scale, float *dz);

/* The class that logits z (k of them; 1 for a binary model) predict (model.c). */
int32_t dsc__logits_class(const float *z, size_t k);

/* The logits of the rows of the latest forward pass, in batch order (model.c). */
const float *dsc__model_logits(const dsc_model *m);

/*
 * On x86-64 the hot loops are compiled twice, for AVX2 and for the baseline, and the loader
 * picks one for the processor. Both do the same operations in the same order on each
 * element (no fused multiply-add: the build turns contraction off), so results are the same
 * bit for bit on every x86-64 machine. Sanitizer builds keep one version.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) &&             \
    !defined(DSC_NO_CLONES)
#define DSC_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DSC_VECTOR_CLONES
#endif

/* ---- Dense layer kernels (dense.c) ---- */

/* Rows of a matrix: row i is at base + rows[i] * stride, or base + (first + i) * stride. */
typedef struct dsc_rows {
    const float *base;
    const uint32_t *rows;
    size_t first;
    size_t stride;
} dsc_rows;

/* Z (n x m) = A (n x k) W (k x m) + b, row by row. */
void dsc__dense_forward(const dsc_rows *in, size_t n, size_t k, const float *w, const float *b,
                        size_t m, float *z);
/* dW (k x m) += A^T dZ and db (m) += column sums of dZ (n x m). */
void dsc__dense_grad_w(const dsc_rows *in, size_t n, size_t k, const float *dz, size_t m,
                       float *dw, float *db);
/* dA (n x k) = dZ (n x m) W^T. */
void dsc__dense_grad_input(const float *dz, size_t n, size_t m, const float *w, size_t k,
                           float *da);
/* Plain loops computing the same, for the tests. */
void dsc__dense_forward_ref(const dsc_rows *in, size_t n, size_t k, const float *w,
                            const float *b, size_t m, float *z);
void dsc__dense_grad_w_ref(const dsc_rows *in, size_t n, size_t k, const float *dz, size_t m,
                           float *dw, float *db);
void dsc__dense_grad_input_ref(const float *dz, size_t n, size_t m, const float *w, size_t k,
                               float *da);

/* ---- Data files and preprocessing (prep.c, csv.c, libsvm.c, npy.c, idx.c) ---- */

/* A source column of a CSV file other than the target. */
typedef struct dsc_column {
    char *name;
    int categorical;       /* one-hot encoded: one feature per level */
    size_t n_levels;
    char **levels;         /* in order of first appearance */
    size_t first_feature;  /* its first feature in an encoded row */
} dsc_column;

struct dsc_prep {
    dsc_format format;      /* the format of the training file */
    size_t n_columns;       /* CSV: source columns other than the target; else 0 */
    dsc_column *columns;
    size_t n_features;      /* encoded features */
    char *target_name;      /* NULL when the file had no name for it */
    size_t n_targets;       /* regression targets (1), or 0 for a classifier */
    size_t n_classes;       /* 0 for regression */
    char **classes;         /* class labels as text; the class index is the position */
    dsc_missing missing;
    float *impute;          /* n_features imputation values, or NULL */
    int standardized;
    float *mean, *scale;    /* n_features each, or NULL: x' = (x - mean) / scale */
};

struct dsc_table {
    dsc_data data;          /* the view handed out */
    dsc_prep *prep;         /* owned by the table */
    float *x;               /* dense features, or NULL */
    uint64_t *row_ptr;      /* sparse features, or NULL */
    uint32_t *col;
    float *val;
    int32_t *label;         /* classes, or NULL */
    float *y;               /* regression targets, or NULL */
    size_t n_unseen;        /* values of unseen one-hot levels */
    size_t n_missing;       /* missing cells left as NaN */
    void *mapping;          /* a memory-mapped file the arrays point into, or NULL */
    size_t mapping_size;
};

/* An empty prep and table (prep.c), and the common parts of freeing them. */
dsc_prep *dsc__prep_new(void);
dsc_table *dsc__table_new(void);

/*
 * Find or add class label text (len bytes) in prep's classes (prep.c). learning: add an
 * unknown label; otherwise an unknown label is an error. Returns the class index or a
 * negative code (the caller adds file, line and column to the message).
 */
int dsc__prep_class(dsc_prep *prep, const char *text, size_t len, int learning);

/*
 * Sort the classes of a learned prep numerically when every label is a number, remapping
 * labels[0..n) to match, so that numeric classes come out in numeric order (prep.c).
 */
int dsc__prep_sort_numeric_classes(dsc_prep *prep, int32_t *labels, size_t n);

/* Format-specific readers behind dsc_table_read; each fills table and table->prep. */
int dsc__read_csv(dsc_table *table, FILE *in, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep);
int dsc__read_libsvm(dsc_table *table, FILE *in, const char *path,
                     const dsc_read_options *opts, const dsc_prep *prep);
int dsc__read_npy(dsc_table *table, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep);
int dsc__read_idx(dsc_table *table, const char *path, const dsc_read_options *opts,
                  const dsc_prep *prep);

/*
 * Helpers the LIBSVM, .npy and IDX readers share (libsvm.c): geometric growth of an array
 * with an overflow-checked limit, the text of a numeric class label, and learning or
 * mapping numeric labels to classes.
 */
void *dsc__grow(void *array, size_t *capacity, size_t used, size_t need, size_t limit,
                size_t elem_size);
size_t dsc__class_text(float value, char *buf, size_t size);
int dsc__learn_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels);
int dsc__map_classes(dsc_prep *prep, const float *values, size_t n, int32_t *labels,
                     size_t *bad_row);

/*
 * Parse a number the same way in every locale (prep.c): text[0..len) must be a complete
 * decimal or exponent number (inf and nan are rejected). Returns 0 and *out on success,
 * DSC_EFORMAT for text that is not a number, DSC_ELIMIT for a finite number beyond float.
 */
int dsc__parse_float(const char *text, size_t len, float *out);

#endif /* DSC_INTERNAL_H */
