/*
 * loss.c - the losses of one sample and their gradients with respect to the logits.
 *
 * Everything is computed in double from the float logits. Classification losses are written
 * in terms of the margin m = t * z with t = +1 for the sample's class and -1 otherwise, so
 * that binary and one-vs-rest models share one formula per loss.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const loss_names[DSC_LOSS_COUNT] = {
    "squared", "huber", "epsilon_insensitive", "log",
    "softmax", "hinge", "squared_hinge",       "modified_huber",
};

const char *dsc_loss_name(dsc_loss loss)
{
    return (unsigned)loss < DSC_LOSS_COUNT ? loss_names[loss] : "unknown";
}

int dsc_loss_from_name(const char *name)
{
    for (int i = 0; name && i < DSC_LOSS_COUNT; i++) {
        if (strcmp(name, loss_names[i]) == 0)
            return i;
    }
    return -1;
}

int dsc_loss_is_classification(dsc_loss loss)
{
    return loss != DSC_LOSS_SQUARED && loss != DSC_LOSS_HUBER &&
           loss != DSC_LOSS_EPS_INSENSITIVE;
}

float dsc__loss_param(dsc_loss loss, float param)
{
    if (param != 0.0f)
        return param;
    if (loss == DSC_LOSS_HUBER)
        return 1.0f;
    if (loss == DSC_LOSS_EPS_INSENSITIVE)
        return 0.1f;
    return 0.0f;
}

/* A regression loss of the residual r = z - y; *grad receives its derivative in r. */
static double residual_loss(dsc_loss loss, double param, double r, double *grad)
{
    switch (loss) {
    case DSC_LOSS_SQUARED:
        *grad = 2.0 * r;
        return r * r;
    case DSC_LOSS_HUBER:
        if (fabs(r) <= param) {
            *grad = r;
            return 0.5 * r * r;
        }
        *grad = r > 0.0 ? param : -param;
        return param * (fabs(r) - 0.5 * param);
    default: /* DSC_LOSS_EPS_INSENSITIVE */
        if (fabs(r) <= param) {
            *grad = 0.0;
            return 0.0;
        }
        *grad = r > 0.0 ? 1.0 : -1.0;
        return fabs(r) - param;
    }
}

/* A binary classification loss of the margin m; *grad receives its derivative in m. */
static double margin_loss(dsc_loss loss, double m, double *grad)
{
    double gap = 1.0 - m;

    switch (loss) {
    case DSC_LOSS_LOG:
        /* log(1 + e^-m), and its derivative -1 / (1 + e^m), both without overflow */
        if (m > 0.0) {
            double e = exp(-m);
            *grad = -e / (1.0 + e);
            return log1p(e);
        } else {
            double e = exp(m);
            *grad = -1.0 / (1.0 + e);
            return -m + log1p(e);
        }
    case DSC_LOSS_HINGE:
        *grad = gap > 0.0 ? -1.0 : 0.0;
        return gap > 0.0 ? gap : 0.0;
    case DSC_LOSS_SQUARED_HINGE:
        *grad = gap > 0.0 ? -2.0 * gap : 0.0;
        return gap > 0.0 ? gap * gap : 0.0;
    default: /* DSC_LOSS_MODIFIED_HUBER */
        if (m < -1.0) {
            *grad = -4.0;
            return -4.0 * m;
        }
        *grad = gap > 0.0 ? -2.0 * gap : 0.0;
        return gap > 0.0 ? gap * gap : 0.0;
    }
}

/* Cross-entropy of softmax(z) against class label, with log-sum-exp shifted by max(z). */
static double softmax_loss(const float *z, size_t k, int32_t label, float scale, float *dz)
{
    double top = z[0];
    for (size_t c = 1; c < k; c++)
        top = fmax(top, (double)z[c]);

    double sum = 0.0;
    for (size_t c = 0; c < k; c++)
        sum += exp((double)z[c] - top);
    double log_sum = log(sum);

    if (dz) {
        for (size_t c = 0; c < k; c++) {
            double p = exp((double)z[c] - top - log_sum);
            dz[c] = (float)(scale * (p - (c == (size_t)label ? 1.0 : 0.0)));
        }
    }
    return top + log_sum - (double)z[label];
}

double dsc__row_loss(dsc_loss loss, float param, const float *z, size_t k, int32_t label,
                     const float *y, float scale, float *dz)
{
    double total = 0.0, grad;

    if (loss == DSC_LOSS_SOFTMAX)
        return softmax_loss(z, k, label, scale, dz);

    /* Binary logistic regression, the common case: the loop below for one score. */
    if (loss == DSC_LOSS_LOG && k == 1) {
        double t = label == 1 ? 1.0 : -1.0;
        total = margin_loss(DSC_LOSS_LOG, t * (double)z[0], &grad);
        if (dz)
            dz[0] = (float)(scale * t * grad);
        return total;
    }

    if (!dsc_loss_is_classification(loss)) {
        double share = 1.0 / (double)k; /* the mean over the targets */
        for (size_t j = 0; j < k; j++) {
            total += residual_loss(loss, param, (double)z[j] - (double)y[j], &grad);
            if (dz)
                dz[j] = (float)(scale * share * grad);
        }
        return total * share;
    }

    for (size_t c = 0; c < k; c++) {
        int positive = k == 1 ? label == 1 : (size_t)label == c;
        double t = positive ? 1.0 : -1.0;
        total += margin_loss(loss, t * (double)z[c], &grad);
        if (dz)
            dz[c] = (float)(scale * t * grad);
    }
    return total;
}
