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

#endif /* DSC_INTERNAL_H */
