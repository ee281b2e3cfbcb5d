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

/*
 * A set of parameters: rows of the first layer's weight matrix (row r is the parameters
 * [r * width, (r + 1) * width)), then the dense range [tail_begin, tail_end).
 * row_scale is 0 when the rows update like any other parameter; otherwise the rows hold
 * v = w / row_scale of a plain SGD step whose decay the caller has folded into row_scale.
 */
typedef struct dsc_row_set {
    const uint32_t *rows;
    size_t n_rows;
    size_t width;
    size_t tail_begin, tail_end;
    double row_scale;
} dsc_row_set;

/* ---- model.c ---- */

/* Buffers of the sparse step for batches that touch up to max_touched distinct inputs. */
int dsc__model_reserve_rows(dsc_model *m, size_t max_touched);

/*
 * The loss of a batch of sparse rows and its gradient, for the sparse step: the touched rows
 * of the first layer's dW and the whole tail are computed, every other element of the
 * gradient buffer is zero. The penalty's gradient is added to the tail's weights only;
 * first_sq is the sum of squares of the first layer's weights, which the caller tracks, for
 * the penalty's value. obj->l1 must be 0. With sort_rows the touched rows come in increasing
 * order (the order of the dense sums), otherwise in order of first use. set receives the
 * touched rows and the tail (row_scale 0); its rows stay valid until the next call.
 */
int dsc__model_loss_grad_rows(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                              const dsc_objective *obj, double first_sq, int sort_rows,
                              double *loss, dsc_row_set *set);

/*
 * The parameter buffer as stored (the first layer may be scaled), without folding, and the
 * gradient buffer without marking it written (dsc_model_grads makes the next sparse-step
 * batch clear all of the first layer's dW, since the caller may have written anywhere).
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
 * One optimizer step over the parameters of set only, with the frozen ranges and rate scales
 * of dsc_optim_set_range; the step count advances as in dsc_optim_step. Rows of a set with a
 * row_scale update as v -= lr * g / row_scale, with no decay of their own.
 */
int dsc__optim_step_rows(dsc_optim *opt, float *params, const float *grads,
                         const dsc_row_set *set);

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
