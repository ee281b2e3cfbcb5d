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

/*
 * The log-loss of margins, log(1 + e^-m), and its derivative -1 / (1 + e^m), four margins
 * at a time. A model with one score spends most of its time here when its rows are in
 * cache, and the C library's exp and log1p take one number at a time (log1p alone took a
 * fifth of a training run of 100-input logistic regression). So the two functions are our
 * own, on the ranges the loss needs, with e = e^-|m| in (0, 1]:
 *
 * - e^x for x <= 0: x = k ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts, so that k ln 2
 *   is exact), e^r by its Taylor series to r^13 (the next term is below 1e-17 of the sum),
 *   then 2^k put into the exponent bits. Below -708 the result would leave the normal
 *   range; it is 0 there (the gradient, a float, is 0 long before).
 * - log(1 + e) for e in [0, 1]: u = 1 + e rounded, then log u = j ln 2 + log(1 + g) with
 *   j = 1 and g = u / 2 - 1 when u >= sqrt 2, else j = 0 and g = u - 1 (both exact), and
 *   log(1 + g) = 2 atanh(s) with s = g / (2 + g), |s| <= 0.172, by its series to s^19,
 *   written as g minus small terms (2 s = g - s g), so that the rounding of s hardly shows.
 *   The rounding of u is given back by c = (e - (u - 1)) / u, so that a tiny e gives e.
 *
 * Both stay within a few units in the last place of the C library's results (test_grad
 * checks 2 x 10^5 margins). Every lane does the same operations, with vectors where the
 * compiler has them and one number at a time otherwise, so a margin's result does not
 * depend on its place in a group, and with contraction off not on the machine either: the
 * loss no longer depends on which C library, or which of its versions, a program runs on.
 * NaN margins give NaN; m = +inf gives a loss of 0 and m = -inf a loss of +inf.
 */
#define LN2_HI 6.93147180369123816490e-01 /* ln 2 to 32 bits: k * LN2_HI is exact */
#define LN2_LO 1.90821492927058770002e-10 /* ln 2 - LN2_HI */
#define INV_LN2 1.44269504088896338700e+00
#define ROUNDER 6755399441055744.0 /* 1.5 * 2^52: x + ROUNDER - ROUNDER rounds x to an integer */
#define SQRT2 1.41421356237309504880
#define EXP_FLOOR (-708.0) /* e^x below this is set to 0 */

/*
 * The helpers below take and give vectors, and log_loss_lanes is compiled once for AVX2 and
 * once for the baseline, which pass vectors differently: the helpers are always inlined, so
 * that no vector crosses a call.
 */
#if defined(__GNUC__)
#define LANE_FN static inline __attribute__((always_inline))
typedef double lanes __attribute__((vector_size(4 * sizeof(double))));
typedef uint64_t lane_bits __attribute__((vector_size(4 * sizeof(double))));
#define LANES_PER_CALL 4
/* A comparison of vectors gives all bits set or none, per lane. */
#define LANE_LESS(a, b) ((lane_bits)((a) < (b)))
LANE_FN lane_bits bits_of(lanes v)
{
    return (lane_bits)v;
}
LANE_FN lanes lanes_of(lane_bits b)
{
    return (lanes)b;
}
#else
#define LANE_FN static inline
typedef double lanes;
typedef uint64_t lane_bits;
#define LANES_PER_CALL 1
#define LANE_LESS(a, b) (-(lane_bits)((a) < (b)))
LANE_FN lane_bits bits_of(lanes v)
{
    lane_bits b;
    memcpy(&b, &v, sizeof b);
    return b;
}
LANE_FN lanes lanes_of(lane_bits b)
{
    lanes v;
    memcpy(&v, &b, sizeof v);
    return v;
}
#endif

/* c in every lane. */
LANE_FN lanes splat(double c)
{
    return (lanes){0} + c;
}

/* Per lane, a where mask is set, b elsewhere. */
LANE_FN lanes select_lanes(lane_bits mask, lanes a, lanes b)
{
    return lanes_of((mask & bits_of(a)) | (~mask & bits_of(b)));
}

/* e^x for x <= 0 (or NaN, which stays NaN). */
LANE_FN lanes exp_nonpositive(lanes x)
{
    lane_bits too_small = LANE_LESS(x, splat(EXP_FLOOR));
    lanes xc = select_lanes(too_small, splat(EXP_FLOOR), x);
    lanes shifted = xc * INV_LN2 + ROUNDER;
    lanes k = shifted - ROUNDER;
    lanes r = (xc - k * LN2_HI) - k * LN2_LO;

    /*
     * 1 + r + r^2 (1/2! + r/3! + ... + r^11/13!): the bracket in pairs of terms combined by
     * powers of r (Estrin's scheme), five steps deep instead of Horner's eleven, which the
     * processor would have to take one after another; the two leading terms are added last,
     * so that the bracket's rounding hardly shows.
     */
    lanes r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    lanes t23 = 1.0 / 2.0 + r * (1.0 / 6.0), t45 = 1.0 / 24.0 + r * (1.0 / 120.0);
    lanes t67 = 1.0 / 720.0 + r * (1.0 / 5040.0), t89 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
    lanes t1011 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
    lanes t1213 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
    lanes t2to5 = t23 + r2 * t45, t6to9 = t67 + r2 * t89, t10to13 = t1011 + r2 * t1213;
    lanes bracket = (t2to5 + r4 * t6to9) + r8 * t10to13;
    lanes p = 1.0 + (r + r2 * bracket);

    /* The low bits of `shifted` hold k; moved into the exponent field, they make 2^k. */
    lane_bits two_to_k = (bits_of(shifted) << 52) + ((uint64_t)1023 << 52);
    return select_lanes(too_small, splat(0.0), p * lanes_of(two_to_k));
}

/* log(1 + e) for e in [0, 1] (or NaN). */
LANE_FN lanes log1p_unit(lanes e)
{
    lanes u = 1.0 + e;
    lane_bits above = ~LANE_LESS(u, splat(SQRT2)); /* u >= sqrt 2 (or NaN) */
    lanes j = select_lanes(above, splat(1.0), splat(0.0));
    lanes g = select_lanes(above, u * 0.5, u) - 1.0;
    lanes c = (e - (u - 1.0)) / u;
    lanes s = g / (2.0 + g);
    lanes z = s * s;

    /* 2 atanh(s) = 2 s + s z (2/3 + 2/5 z + ... + 2/19 z^8), the sum as for e^r above */
    lanes z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    lanes q01 = 2.0 / 3.0 + z * (2.0 / 5.0), q23 = 2.0 / 7.0 + z * (2.0 / 9.0);
    lanes q45 = 2.0 / 11.0 + z * (2.0 / 13.0), q67 = 2.0 / 15.0 + z * (2.0 / 17.0);
    lanes q = ((q01 + z2 * q23) + z4 * (q45 + z2 * q67)) + z8 * (2.0 / 19.0);
    lanes half_g2 = 0.5 * g * g;
    lanes log1p_g = g - (half_g2 - s * (half_g2 + z * q)); /* = 2 s + s z q, g exact */
    return j * LN2_HI + (log1p_g + (c + j * LN2_LO));
}

/* The loss and gradient of LANES_PER_CALL margins. */
DSC_VECTOR_CLONES
static void log_loss_lanes(const double *margin, double *loss, double *grad)
{
    lanes m;
    memcpy(&m, margin, sizeof m);

    lane_bits positive = LANE_LESS(splat(0.0), m); /* m > 0 */
    lanes abs_m = lanes_of(bits_of(m) & ~((uint64_t)1 << 63));
    lanes e = exp_nonpositive(-abs_m); /* e^-m for m > 0, e^m otherwise */
    lanes u = 1.0 + e;
    lanes numerator = select_lanes(positive, e, splat(1.0));
    lanes result_grad = -numerator / u;
    lanes result_loss = select_lanes(positive, splat(0.0), -m) + log1p_unit(e);

    memcpy(grad, &result_grad, sizeof result_grad);
    memcpy(loss, &result_loss, sizeof result_loss);
}

void dsc__log_loss_margins(const double *margin, size_t n, double *loss, double *grad)
{
    double m[LANES_PER_CALL], l[LANES_PER_CALL], g[LANES_PER_CALL];

    for (size_t i = 0; i < n; i += LANES_PER_CALL) {
        size_t count = n - i < LANES_PER_CALL ? n - i : LANES_PER_CALL;
        for (size_t p = 0; p < LANES_PER_CALL; p++)
            m[p] = p < count ? margin[i + p] : 0.0;
        log_loss_lanes(m, l, g);
        memcpy(loss + i, l, count * sizeof(double));
        memcpy(grad + i, g, count * sizeof(double));
    }
}

/* A binary classification loss of the margin m; *grad receives its derivative in m. */
static double margin_loss(dsc_loss loss, double m, double *grad)
{
    double gap = 1.0 - m;

    switch (loss) {
    case DSC_LOSS_LOG: {
        double value;
        dsc__log_loss_margins(&m, 1, &value, grad);
        return value;
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

/*
 * Cross-entropy of softmax(z) against class label, with log-sum-exp shifted by max(z).
 * Known limit (reproducibility): exp and log here are the C library's, which glibc may pick
 * by processor (see activation.c), unlike the log-loss's above.
 */
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
