/*
 * internal.h - what the library's source files share and users never see.
 */
#ifndef DSC_INTERNAL_H
#define DSC_INTERNAL_H

#include "descent.h"

#include <float.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Allocation through the user's allocator (dsc_set_allocator). Every result must be checked. */
void *dsc__alloc(size_t size);
void *dsc__calloc(size_t count, size_t size);
void dsc__free(void *ptr);

/*
 * Resize the block ptr (NULL for none), of which the first used bytes matter, to size bytes:
 * the new block, or NULL with ptr untouched. Without a user allocator this is realloc, which
 * can move a large block's pages instead of copying them; with one, a new block and a copy.
 */
void *dsc__realloc(void *ptr, size_t used, size_t size);

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

/*
 * A file that replaces path whole or not at all (atomicfile.c). dsc__atomic_open creates a
 * temporary file beside path and opens fp on it: 0, or a DSC_E code with a message.
 * dsc__atomic_close takes the first errno of the writes (0 when they all went well); it
 * flushes, syncs, closes and renames the file over path, or removes it when anything failed,
 * which gives DSC_EIO and the message "PATH: writing the WHAT failed: REASON".
 */
typedef struct dsc__atomic_file {
    FILE *fp;
    const char *path;
    char *tmp_path;
} dsc__atomic_file;

int dsc__atomic_open(dsc__atomic_file *f, const char *path);
int dsc__atomic_close(dsc__atomic_file *f, int failed_errno, const char *what);

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
 * The log-loss log(1 + e^-m) of n margins into loss and its derivative -1 / (1 + e^m) into
 * grad, in double, with the library's own exp and log1p (loss.c). Each margin's results are
 * the same whatever n and its place among them.
 */
void dsc__log_loss_margins(const double *margin, size_t n, double *loss, double *grad);

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

/*
 * Ask the processor to start loading the cache line at address (a hint: nothing changes):
 * DSC_PREFETCH into every level of cache, DSC_PREFETCH_L2 into the second level and beyond.
 */
#if defined(__GNUC__)
#define DSC_PREFETCH(address) __builtin_prefetch(address)
#define DSC_PREFETCH_L2(address) __builtin_prefetch(address, 0, 1)
#else
#define DSC_PREFETCH(address) ((void)(address))
#define DSC_PREFETCH_L2(address) ((void)(address))
#endif

/*
 * Eight floats as one value (GCC and Clang), so that accumulators stay in registers: an
 * array of accumulators gets spilled to memory. Lane by lane this is the arithmetic of the
 * scalar loops, in the same order, so both give the same bits.
 */
#if defined(__GNUC__)
#define DSC_HAVE_V8F 1
typedef float dsc__v8f __attribute__((vector_size(32)));

static inline dsc__v8f dsc__load8(const float *p)
{
    dsc__v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dsc__store8(float *p, dsc__v8f v)
{
    memcpy(p, &v, sizeof v);
}
#else
#define DSC_HAVE_V8F 0
#endif

/* ---- Linear models in one pass (linear.c) ---- */

/*
 * A batch of dense rows for a model without hidden layers: n_inputs features in, k scores
 * out (k is the model's number of logits). Every pointer is filled by the caller; z, dz and
 * row_loss hold n entries per row (k, k and 1), partial (dsc__linear_chunks(n) - 1) gradients
 * of n_inputs * k + k floats, and dw and db must be zero.
 */
typedef struct dsc_linear_batch {
    const dsc_data *data;
    const uint32_t *rows;      /* the batch's rows, or NULL for rows 0..n-1 */
    size_t n;
    dsc_loss loss;
    float loss_param;          /* as dsc__loss_param gives it */
    int classifier;
    const float *class_weight; /* NULL for 1 each */
    double weight_sum;         /* the sum of the rows' sample weights (n without them) */
    size_t n_inputs, k;
    const float *w, *b;        /* weights (n_inputs x k, input-major) and biases */
    float *z, *dz;             /* out: each row's scores, and the gradient w.r.t. them */
    double *row_loss;          /* out: each row's share of the batch loss */
    float *dw, *db;            /* out: the gradient of the data loss */
    float *partial;            /* work space of the chunks beyond the first */
    const uint32_t *ahead;     /* rows of the next batch, to ask for early (or NULL) */
    size_t n_ahead;
    const float *staged;       /* the batch's rows copied in batch order, or NULL (train.c) */
} dsc_linear_batch;

/* Keep OpenBLAS to one thread a call and stop its idle pool (dense.c; nothing without it). */
void dsc__blas_stop_pool(void);

/* 1 when a model of n_inputs x k weights takes the one-pass path (small enough to stay in
 * cache while a chunk of rows streams past). */
int dsc__linear_fits(size_t n_inputs, size_t k);

/* Chunks a batch of n rows is cut into: fixed by n alone, so results do not depend on threads. */
size_t dsc__linear_chunks(size_t n);

/*
 * Threads that share the chunks of a batch of n rows of n_inputs x k weights at the
 * library's thread count: 1 for a batch of one chunk or too little work. Any number gives
 * the same bits.
 */
int dsc__linear_team(size_t n, size_t n_inputs, size_t k);

/* Scores, losses and gradient of a batch in one pass; returns the data loss (no penalty). */
double dsc__linear_loss_grad(const dsc_linear_batch *job);

/*
 * Test hooks (model.c): allow (1, the default) or forbid (0) the one-pass path for m, and the
 * number of batches it has computed so far.
 */
void dsc__model_allow_linear(dsc_model *m, int allow);

/*
 * dsc_model_loss_grad for the trainer, which checked every row and label of d when it
 * started: the batch's rows are not checked again. ahead[0..n_ahead) are the rows of the
 * next batch (NULL for none); the one-pass path asks for them while it ends this batch.
 * staged (or NULL) holds copies of the batch's rows of d->x, one after another in batch
 * order; the one-pass path reads them there (the same numbers, so the same results).
 */
int dsc__model_loss_grad_checked(dsc_model *m, const dsc_data *d, const uint32_t *rows,
                                 size_t n, const dsc_objective *obj, const uint32_t *ahead,
                                 size_t n_ahead, const float *staged, double *loss);
uint64_t dsc__model_linear_batches(const dsc_model *m);

/*
 * 1 when a batch of `batch` rows of d takes the one-pass path on the calling thread alone (a
 * batch of one chunk, or too little work to share), which leaves the other threads idle.
 */
int dsc__model_one_pass_alone(const dsc_model *m, const dsc_data *d, size_t batch);

/* ---- The optimizer's step with an undo (optim.c) ---- */

/*
 * What a dense step changes, kept so that the divergence guard can undo it: the weights
 * and, with state 1, every moment buffer (values holds dsc__optim_keep_floats(opt, state)
 * floats: the weights, then each buffer) and the step count, rate and NAdam product.
 */
typedef struct dsc_optim_keep {
    float *values;
    int state;
    int64_t steps;
    double lr, mu_product;
} dsc_optim_keep;

/* Floats of keep->values for opt (SIZE_MAX when that overflows). */
size_t dsc__optim_keep_floats(const dsc_optim *opt, int state);

/*
 * dsc_optim_step (arguments checked by the caller) that first copies what it changes into
 * keep, and sets *finite to whether every weight is finite after it. Each block of weights
 * is copied, updated and checked while it is in cache.
 */
int dsc__optim_step_kept(dsc_optim *opt, float *params, const float *grads,
                         dsc_optim_keep *keep, bool *finite);

/* Put back what keep holds: the weights and optimizer state before that step. */
void dsc__optim_undo(dsc_optim *opt, float *params, const dsc_optim_keep *keep);

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
/*
 * dW (k x m) = A^T dZ and db (m) = the column sums of dZ (n x m): both overwritten, each
 * task zeroing only the outputs it writes (so no pass over dW is needed beforehand).
 */
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
    float *weight;          /* sample weights, or NULL (only a data cache holds them) */
    size_t n_unseen;        /* values of unseen one-hot levels */
    size_t n_missing;       /* missing cells left as NaN */
    size_t target_column;   /* CSV: the target's column in the file, from 1; 0 if none */
    bool applied;           /* dsc_prep_apply changed the values: no longer as read */
    void *mapping;          /* a memory-mapped file the arrays point into, or NULL */
    size_t mapping_size;
    void *mapping_block;    /* the allocation holding mapping when it was read, not mapped */
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
 * Test hooks (table.c): allow (1, the default) or forbid (0) the CSV and LIBSVM readers their
 * fast path for usual lines, so that tests can compare it with the line-by-line reading, and
 * count the rows that path has read (so far, in this process).
 */
void dsc__allow_fast_text(int allow);
int dsc__fast_text_allowed(void);
void dsc__add_fast_text_rows(size_t n);
size_t dsc__fast_text_rows(void);

/*
 * Data caches (cache.c): whether path is a regular file that starts with the cache's magic,
 * the reader behind dsc_table_read, and the release of a table's mapped or read file.
 * dsc__cache_no_mmap, set by the tests, makes the reader read the file instead of mapping it.
 */
bool dsc__is_cache(const char *path);
int dsc__read_cache(dsc_table *table, const char *path, const dsc_read_options *opts,
                    const dsc_prep *prep);
void dsc__cache_release(dsc_table *table);
extern int dsc__cache_no_mmap;

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

/* The full parse behind dsc__parse_float, without the fast path (for tests of the fast path). */
int dsc__parse_float_slow(const char *text, size_t len, float *out);

/* 10^0 .. 10^22, every one exact in double (prep.c). */
extern const double dsc__pow10_exact[23];

/*
 * The fast path of dsc__parse_float, inlined into the readers: the usual short number
 * ("-0.125", "3.5e-3": [+-]digits[.digits][(e|E)[+-]digits] with at most 19 digits and an
 * exponent of at most 4 digits) scanned from p, never reading at or beyond end. Returns where
 * the number stops and its value in *out, or NULL when the fast path cannot decide (too many
 * digits, a large exponent, no digits, a value close to a rounding midpoint or beyond float):
 * the caller then takes the full parse. What follows the number is the caller's to check; a
 * text is the number only when the result is its end.
 *
 * The value is the one correctly rounded float. The digits are read as a 64-bit integer m and
 * the exponent e as a power of ten exact in double (|e| <= 22), so m * 10^e or m / 10^-e in
 * double is within 2 units in the last place of double of the exact value: one rounding of
 * m when it is beyond 2^53, one of the product or quotient. Rounding on to float only changes
 * at the midpoints between floats, so when no midpoint lies within 4 units of that double,
 * it and the exact value round to the same float; otherwise the full parse decides.
 */
static inline const char *dsc__scan_float(const char *p, const char *end, float *out)
{
    bool negative = false;
    uint64_t mantissa = 0; /* wraps harmlessly past 19 digits, which are refused */
    long digits, fraction = 0;
    int exponent = 0;

    if (p < end && (*p == '+' || *p == '-')) {
        negative = *p == '-';
        p++;
    }
    const char *first = p;
    for (; p < end && (unsigned char)(*p - '0') < 10; p++)
        mantissa = mantissa * 10 + (uint64_t)(*p - '0');
    digits = p - first;
    if (p < end && *p == '.') {
        const char *point = ++p;
        for (; p < end && (unsigned char)(*p - '0') < 10; p++)
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        fraction = p - point;
        digits += fraction;
    }
    if (digits == 0 || digits > 19)
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool negative_exp = false;
        int exp_digits = 0;
        if (++p < end && (*p == '+' || *p == '-'))
            negative_exp = *p++ == '-';
        for (; p < end && (unsigned char)(*p - '0') < 10 && exp_digits < 4; p++, exp_digits++)
            exponent = exponent * 10 + (*p - '0');
        if (exp_digits == 0 || (p < end && (unsigned char)(*p - '0') < 10))
            return NULL;
        if (negative_exp)
            exponent = -exponent;
    }
    exponent -= (int)fraction;

    if (mantissa == 0) {
        *out = negative ? -0.0f : 0.0f;
        return p;
    }
    if (exponent < -22 || exponent > 22 || FLT_EVAL_METHOD != 0)
        return NULL; /* (the error bound needs plain double arithmetic) */
    double v = (double)mantissa;
    v = exponent < 0 ? v / dsc__pow10_exact[-exponent] : v * dsc__pow10_exact[exponent];
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t below_float = (uint32_t)(bits & 0x1FFFFFFFu); /* the bits float drops */
    if (below_float >= 0x10000000u - 4 && below_float <= 0x10000000u + 4)
        return NULL;
    float f = (float)v;
    if (f > FLT_MAX)
        return NULL; /* beyond float: the full parse reports the range */
    *out = negative ? -f : f;
    return p;
}

#endif /* DSC_INTERNAL_H */
