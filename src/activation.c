/*
 * activation.c - the hidden-layer activations and their exact derivatives.
 *
 * Each activation has a scalar form in double (public, used by the tests) and an array form
 * in float used by the network. Both are written from the same formulas below.
 *
 * Known limit (reproducibility): sigmoid, tanh, ELU, GELU and softplus call the C library's
 * exp, expm1, tanh, erf and log1p. glibc picks a version of some of these by processor (with
 * or without fused multiply-add), and the versions can differ in the last bit, so a network
 * with these activations trains to the same bits only on machines where the C library makes
 * the same choice. The log-loss has functions of its own for this reason (loss.c); the
 * activations do not yet.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const activation_names[DSC_ACT_COUNT] = {
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus",
};

const char *dsc_activation_name(dsc_activation act)
{
    return (unsigned)act < DSC_ACT_COUNT ? activation_names[act] : "unknown";
}

int dsc_activation_from_name(const char *name)
{
    for (int i = 0; name && i < DSC_ACT_COUNT; i++) {
        if (strcmp(name, activation_names[i]) == 0)
            return i;
    }
    return -1;
}

float dsc__act_param(dsc_activation act, float param)
{
    if (param != 0.0f)
        return param;
    if (act == DSC_ACT_LEAKY_RELU)
        return 0.01f;
    if (act == DSC_ACT_ELU)
        return 1.0f;
    return 0.0f;
}

/* 1 / (1 + e^-x) without overflow for either sign of x. */
static double sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */
static double softplus(double x)
{
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

static const double inv_sqrt2 = 0.70710678118654752440;
static const double inv_sqrt_2pi = 0.39894228040143267794;

/* The scalar forms keep a given parameter in double; 0 takes the same defaults. */
static double scalar_param(dsc_activation act, double param)
{
    if (param != 0.0)
        return param;
    return act == DSC_ACT_LEAKY_RELU ? 0.01 : (act == DSC_ACT_ELU ? 1.0 : 0.0);
}

double dsc_activation_value(dsc_activation act, double param, double x)
{
    param = scalar_param(act, param);
    switch (act) {
    case DSC_ACT_IDENTITY: return x;
    case DSC_ACT_SIGMOID: return sigmoid(x);
    case DSC_ACT_TANH: return tanh(x);
    case DSC_ACT_RELU: return x > 0.0 ? x : 0.0;
    case DSC_ACT_LEAKY_RELU: return x > 0.0 ? x : param * x;
    case DSC_ACT_ELU: return x > 0.0 ? x : param * expm1(x);
    case DSC_ACT_GELU: return 0.5 * x * (1.0 + erf(x * inv_sqrt2));
    case DSC_ACT_SOFTPLUS: return softplus(x);
    default: return NAN;
    }
}

double dsc_activation_derivative(dsc_activation act, double param, double x)
{
    param = scalar_param(act, param);
    switch (act) {
    case DSC_ACT_IDENTITY: return 1.0;
    case DSC_ACT_SIGMOID: {
        double s = sigmoid(x);
        return s * (1.0 - s);
    }
    case DSC_ACT_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case DSC_ACT_RELU: return x > 0.0 ? 1.0 : 0.0;
    case DSC_ACT_LEAKY_RELU: return x > 0.0 ? 1.0 : param;
    case DSC_ACT_ELU: return x > 0.0 ? 1.0 : param * exp(x);
    case DSC_ACT_GELU:
        /* d/dx x Phi(x) = Phi(x) + x phi(x) */
        return 0.5 * (1.0 + erf(x * inv_sqrt2)) + x * inv_sqrt_2pi * exp(-0.5 * x * x);
    case DSC_ACT_SOFTPLUS: return sigmoid(x);
    default: return NAN;
    }
}

static float sigmoidf(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void dsc__act_forward(dsc_activation act, float param, const float *z, float *a, size_t n)
{
    param = dsc__act_param(act, param);
    switch (act) {
    case DSC_ACT_IDENTITY:
        if (a != z)
            memcpy(a, z, n * sizeof *a);
        break;
    case DSC_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            a[i] = sigmoidf(z[i]);
        break;
    case DSC_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            a[i] = tanhf(z[i]);
        break;
    case DSC_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0.0f ? z[i] : 0.0f;
        break;
    case DSC_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0.0f ? z[i] : param * z[i];
        break;
    case DSC_ACT_ELU:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0.0f ? z[i] : param * expm1f(z[i]);
        break;
    case DSC_ACT_GELU:
        for (size_t i = 0; i < n; i++)
            a[i] = 0.5f * z[i] * (1.0f + erff(z[i] * (float)inv_sqrt2));
        break;
    case DSC_ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            a[i] = fmaxf(z[i], 0.0f) + log1pf(expf(-fabsf(z[i])));
        break;
    default:
        break;
    }
}

void dsc__act_backward(dsc_activation act, float param, const float *z, const float *a,
                       float *delta, size_t n)
{
    param = dsc__act_param(act, param);
    switch (act) {
    case DSC_ACT_IDENTITY:
        break;
    case DSC_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            delta[i] *= a[i] * (1.0f - a[i]);
        break;
    case DSC_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            delta[i] *= 1.0f - a[i] * a[i];
        break;
    case DSC_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            delta[i] = z[i] > 0.0f ? delta[i] : 0.0f;
        break;
    case DSC_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            delta[i] *= z[i] > 0.0f ? 1.0f : param;
        break;
    case DSC_ACT_ELU:
        /* below 0, f(z) = alpha (e^z - 1), so f'(z) = f(z) + alpha */
        for (size_t i = 0; i < n; i++)
            delta[i] *= z[i] > 0.0f ? 1.0f : a[i] + param;
        break;
    case DSC_ACT_GELU:
        for (size_t i = 0; i < n; i++) {
            float x = z[i];
            float cdf = 0.5f * (1.0f + erff(x * (float)inv_sqrt2));
            float pdf = (float)inv_sqrt_2pi * expf(-0.5f * x * x);
            delta[i] *= cdf + x * pdf;
        }
        break;
    case DSC_ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            delta[i] *= sigmoidf(z[i]);
        break;
    default:
        break;
    }
}
