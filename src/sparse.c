/*
 * sparse.c - the checks, clipping and copies of the training step restricted to a row set
 * (see sparse.h): the touched rows of the first layer's weights and the dense tail.
 *
 * Every element outside a set has a zero gradient, so these give the dense results: the
 * finite checks and value clipping element by element, and the norm summed in the dense
 * order when the rows come in increasing order (a skipped zero adds nothing to a sum).
 */
#include "sparse.h"

#include <math.h>
#include <string.h>

size_t dsc__rows_count(const dsc_row_set *set)
{
    return set->n_rows * set->width + (set->tail_end - set->tail_begin);
}

bool dsc__rows_all_finite(const float *a, const dsc_row_set *set)
{
    /*
     * The rows lie at scattered places, so this is a walk of loads: an OR of integer tests
     * keeps the loads independent (a running float sum would chain them one after another).
     */
    uint32_t bad = 0;
    size_t width = set->width;

    if (width == 1) {
        for (size_t i = 0; i < set->n_rows; i++)
            bad |= dsc__not_finite(a[set->rows[i]]);
    } else {
        for (size_t i = 0; i < set->n_rows; i++) {
            const float *row = a + (size_t)set->rows[i] * width;
            for (size_t j = 0; j < width; j++)
                bad |= dsc__not_finite(row[j]);
        }
    }
    return !bad && dsc__all_finite(a + set->tail_begin, set->tail_end - set->tail_begin);
}

void dsc__rows_clip_value(float *g, const dsc_row_set *set, float limit)
{
    for (size_t i = 0; i < set->n_rows; i++)
        dsc_clip_value(g + (size_t)set->rows[i] * set->width, set->width, limit);
    dsc_clip_value(g + set->tail_begin, set->tail_end - set->tail_begin, limit);
}

/* sum += the squares of a[0..n) in double, in order. */
static double add_squares(double sum, const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sum += (double)a[i] * (double)a[i];
    return sum;
}

/* a[0..n) *= scale, in double, as dsc_clip_norm scales. */
static void scale_in_double(float *a, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)((double)a[i] * scale);
}

double dsc__rows_clip_norm(float *g, const dsc_row_set *set, double max_norm)
{
    double sum = 0.0;

    for (size_t i = 0; i < set->n_rows; i++)
        sum = add_squares(sum, g + (size_t)set->rows[i] * set->width, set->width);
    sum = add_squares(sum, g + set->tail_begin, set->tail_end - set->tail_begin);
    double norm = sqrt(sum);

    if (isfinite(max_norm) && max_norm > 0.0 && isfinite(norm) && norm > max_norm) {
        double scale = max_norm / norm;
        for (size_t i = 0; i < set->n_rows; i++)
            scale_in_double(g + (size_t)set->rows[i] * set->width, set->width, scale);
        scale_in_double(g + set->tail_begin, set->tail_end - set->tail_begin, scale);
    }
    return norm;
}

double dsc__rows_sum_sq(const float *a, const dsc_row_set *set)
{
    double sum = 0.0;

    for (size_t i = 0; i < set->n_rows; i++)
        sum = add_squares(sum, a + (size_t)set->rows[i] * set->width, set->width);
    return sum;
}

void dsc__rows_gather(const float *a, const dsc_row_set *set, float *out)
{
    size_t width = set->width;

    if (width == 1) {
        for (size_t i = 0; i < set->n_rows; i++)
            out[i] = a[set->rows[i]];
        out += set->n_rows;
    }
    for (size_t i = 0; width > 1 && i < set->n_rows; i++, out += width)
        memcpy(out, a + (size_t)set->rows[i] * width, width * sizeof(float));
    memcpy(out, a + set->tail_begin, (set->tail_end - set->tail_begin) * sizeof(float));
}

void dsc__rows_scatter(float *a, const dsc_row_set *set, const float *in)
{
    size_t width = set->width;

    if (width == 1) {
        for (size_t i = 0; i < set->n_rows; i++)
            a[set->rows[i]] = in[i];
        in += set->n_rows;
    }
    for (size_t i = 0; width > 1 && i < set->n_rows; i++, in += width)
        memcpy(a + (size_t)set->rows[i] * width, in, width * sizeof(float));
    memcpy(a + set->tail_begin, in, (set->tail_end - set->tail_begin) * sizeof(float));
}

/* Move a[i] down the max-heap a[0..n) until both children are no larger. */
static void sift_down(uint32_t *a, size_t i, size_t n)
{
    uint32_t value = a[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && a[child + 1] > a[child])
            child++;
        if (a[child] <= value)
            break;
        a[i] = a[child];
        i = child;
    }
    a[i] = value;
}

void dsc__sort_u32(uint32_t *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end > 1; end--) {
        uint32_t top = a[0];
        a[0] = a[end - 1];
        a[end - 1] = top;
        sift_down(a, 0, end - 1);
    }
}
