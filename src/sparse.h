/*
 * sparse.h - the sparse step: training on CSR input without O(n_params) work per step.
 *
 * Shared by model.c, optim.c, train.c and sparse.c. (These declarations belong in internal.h;
 * they live here while internal.h is closed to this change.)
 *
 * A batch of sparse rows touches only a few rows of the first layer's weight matrix (one row
 * per distinct input feature of the batch). The sparse step computes, checks, clips, updates
 * and snapshots only those rows plus the "tail": the first layer's biases and every later
 * layer, which come after the first layer's weights in the flat parameter buffer. It is used
 * only where it gives the dense step's result (see dsc__optim_rows_mode and train.c).
 *
 * The scaled first layer. Plain SGD with L2 (the objective's l2 or the optimizer's
 * weight_decay) shrinks every weight each step, touched or not. The model can therefore keep
 * its first layer's weights as w = scale * v: the stored values are v, and a step multiplies
 * scale by (1 - lr * decay) and moves only the touched rows' v. Any public function of the
 * model that exposes or uses the weights (dsc_model_params, dsc_model_layer, the losses,
 * prediction, copying) first folds the scale into the stored values (v = scale * v,
 * scale = 1), so the scale is never seen outside the library. dsc__model_revision counts the
 * folds, so that the trainer can tell that a snapshot taken before one is in other units.
 */
#ifndef DSC_SPARSE_H
#define DSC_SPARSE_H

#include "internal.h"

#include <string.h>

/*
 * A set of parameters: rows of the first layer's weight matrix (row r is the parameters
 * [r * width, (r + 1) * width)), then the dense range [tail_begin, tail_end).
 * row_scale is 0 when the rows update like any other parameter; otherwise the rows hold
 * v = w / row_scale of a plain SGD step whose decay the caller has folded into row_scale.
 * packed_grads is NULL when the rows' gradient is in the gradient buffer like the tail's;
 * otherwise the gradient of rows[i] is packed_grads[i * width, (i + 1) * width) (see
 * dsc__model_loss_grad_rows), which only plain SGD in one walk takes (dsc__optim_step_rows).
 */
typedef struct dsc_row_set {
    const uint32_t *rows;
    size_t n_rows;
    size_t width;
    size_t tail_begin, tail_end;
    double row_scale;
    const float *packed_grads;
} dsc_row_set;

/* 1 when x is an infinity or a NaN (its exponent bits are all ones), 0 otherwise. Integer
 * work only, so that OR-ing it over many values chains no floating-point latency. */
static inline uint32_t dsc__not_finite(float x)
{
    uint32_t bits;

    memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7f800000u) == 0x7f800000u;
}

/* ---- model.c ---- */

/*
 * Buffers of the sparse step for batches that touch up to max_touched distinct inputs,
 * including those of packed rows when they take at most a quarter of the first layer.
 */
int dsc__model_reserve_rows(dsc_model *m, size_t max_touched);

/*
 * The loss of a batch of sparse rows and its gradient, for the sparse step: the touched rows
 * of the first layer's dW and the whole tail are computed, every other element of the
 * gradient buffer is zero. The penalty's gradient is added to the tail's weights only;
 * first_sq is the sum of squares of the first layer's weights, which the caller tracks, for
 * the penalty's value. obj->l1 must be 0. With sort_rows the touched rows come in increasing
 * order (the order of the dense sums), otherwise in order of first use. set receives the
 * touched rows and the tail (row_scale 0); its rows stay valid until the next call.
 * *rows_finite tells whether every element of the touched rows' gradient is finite (checked
 * while they are summed; the tail is left to the caller).
 *
 * Packed rows. With packed (and not sort_rows) the touched rows' gradient is summed into a
 * buffer of the model, row after row in list order, that set->packed_grads points to,
 * instead of into dW: a small table in cache finds an input's row, where dW's rows lie far
 * apart. dW is then zero there until dsc_model_grads or dsc_model_layer copies the rows in.
 * The sums are the same. The model declines (set->packed_grads NULL) when it reserved no
 * room for packed rows.
 */
int dsc__model_loss_grad_rows(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                              const dsc_objective *obj, double first_sq, int sort_rows,
                              int packed, double *loss, dsc_row_set *set, bool *rows_finite);

/*
 * The parameter buffer as stored (the first layer may be scaled), without folding, and the
 * gradient buffer without marking it written (dsc_model_grads makes the next sparse-step
 * batch clear all of the first layer's dW, since the caller may have written anywhere) and
 * without the rows of a packed batch (dsc_model_grads copies them in).
 */
float *dsc__model_raw_params(dsc_model *m);
float *dsc__model_raw_grads(dsc_model *m);

/* The first layer's scale, and setting it without changing the stored values. */
double dsc__model_scale(const dsc_model *m);
void dsc__model_set_scale(dsc_model *m, double scale);

/* Multiply the stored first-layer weights by the scale and set the scale to 1. */
void dsc__model_fold(dsc_model *m);

/*
 * A count of the changes that the sparse step's bookkeeping cannot follow: folds of the
 * scale, weights rewritten in place, and every hand-out of the weights through a public
 * function (which may write them). A snapshot or a sum of squares taken at one revision is
 * in the units of the stored values only while the revision stays the same.
 */
uint64_t dsc__model_revision(const dsc_model *m);

/* The first and count of layer i (as dsc_model_layer) without folding; i must exist. */
void dsc__model_layer_range(const dsc_model *m, size_t i, size_t *first, size_t *count,
                            size_t *n_in, size_t *n_out);

/* ---- optim.c ---- */

enum {
    DSC_ROWS_DENSE,  /* the sparse step would differ from the dense one: use the dense step */
    DSC_ROWS_EXACT,  /* a weight with zero gradient is left unchanged: rows update as usual */
    DSC_ROWS_SCALED  /* plain SGD with decay: every weight shrinks by the same factor */
};

/*
 * How the next step (at the optimizer's current rate) may treat the first layer's weights,
 * parameters [0, count), whose untouched elements have a zero gradient: l2 is the objective's
 * L2 coefficient, whose gradient l2 * w the sparse step leaves out. For DSC_ROWS_SCALED
 * *factor receives 1 - lr * lr_scale * (l2 + weight_decay), the shrink of this step.
 */
int dsc__optim_rows_mode(const dsc_optim *opt, size_t count, double l2, double *factor);

/*
 * True when dsc__optim_step_rows takes the rows of a set whose rows lie in [0, rows_end) in
 * one walk: plain SGD, the first parameter range holding the rows and not frozen, and no
 * decay of the rows' own (none, or folded into a row_scale: scaled).
 */
bool dsc__optim_rows_one_walk(const dsc_optim *opt, size_t rows_end, bool scaled);

/*
 * One optimizer step over the parameters of set only, with the frozen ranges and rate scales
 * of dsc_optim_set_range; the step count advances as in dsc_optim_step. Rows of a set with a
 * row_scale update as v -= lr * g / row_scale, with no decay of their own. When not NULL,
 * kept receives the rows' values before the step (packed row after row, as the first part
 * of dsc__rows_gather's output) and *finite whether every element of set is finite after
 * it; plain SGD does the three in one walk of the rows. Packed rows (set->packed_grads) need
 * that walk (DSC_EINVAL otherwise). On an error nothing is changed and kept may be
 * incomplete.
 */
int dsc__optim_step_rows(dsc_optim *opt, float *params, const float *grads,
                         const dsc_row_set *set, float *kept, bool *finite);

/*
 * The optimizer's state restricted to a set: its scalars (step count, rate, parameter
 * ranges) and its buffers' values at the set's elements. size is for sets of up to
 * n_elements elements (SIZE_MAX when that overflows).
 */
size_t dsc__optim_rows_state_size(const dsc_optim *opt, size_t n_elements);
void dsc__optim_rows_state_save(const dsc_optim *opt, const dsc_row_set *set, void *buf);
void dsc__optim_rows_state_load(dsc_optim *opt, const dsc_row_set *set, const void *buf);

/* Test hook: parameter elements updated by every step so far, dense or sparse. */
uint64_t dsc__optim_elements_updated(const dsc_optim *opt);

/* ---- train.c ---- */

/*
 * Test hook: allow (1, the default) or forbid (0) the sparse step; forbidding it allocates
 * the dense step's snapshot when the trainer had none. Call it between steps.
 */
int dsc__trainer_allow_sparse_step(dsc_trainer *t, int allow);

/*
 * Test hook: warm the rows on a second thread (1, the default) or never (0), for training sets
 * of at least min_bytes; and the number of epochs that ran with a warming thread.
 */
int dsc__trainer_set_warming(dsc_trainer *t, int warming, size_t min_bytes);
uint64_t dsc__trainer_warmed_epochs(const dsc_trainer *t);

/*
 * Test hook: make the trainer wait for the warming thread to stage each warmed batch (1), or
 * read the rows from the data when it has not (0, the default); and the number of batches
 * read from the stage ring.
 */
int dsc__trainer_wait_for_stage(dsc_trainer *t, int wait);
uint64_t dsc__trainer_staged_batches(const dsc_trainer *t);

/* ---- sparse.c: the dense helpers restricted to a set ---- */

/* Number of elements in set. */
size_t dsc__rows_count(const dsc_row_set *set);

/* 1 when every element of a in set is finite. */
bool dsc__rows_all_finite(const float *a, const dsc_row_set *set);

/* dsc_clip_value and dsc_clip_norm over the elements of set (rows in increasing order for
 * the norm to be summed in the dense order). */
void dsc__rows_clip_value(float *g, const dsc_row_set *set, float limit);
double dsc__rows_clip_norm(float *g, const dsc_row_set *set, double max_norm);

/* Sum of squares, in double, of the rows of set (not its tail). */
double dsc__rows_sum_sq(const float *a, const dsc_row_set *set);

/* Copy the elements of set from a to out (packed: rows, then the tail), and back. */
void dsc__rows_gather(const float *a, const dsc_row_set *set, float *out);
void dsc__rows_scatter(float *a, const dsc_row_set *set, const float *in);

/* Sort a[0..n) in increasing order, in place, without allocating (heap sort). */
void dsc__sort_u32(uint32_t *a, size_t n);

#endif /* DSC_SPARSE_H */
