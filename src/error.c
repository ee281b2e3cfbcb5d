/*
 * error.c - error codes, the per-thread message of the latest failure, and the allocator.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static _Thread_local char last_message[512];

const char *dsc_strerror(int code)
{
    switch (code) {
    case DSC_OK: return "success";
    case DSC_EINVAL: return "invalid argument";
    case DSC_ENOMEM: return "out of memory";
    case DSC_ESHAPE: return "sizes do not match";
    case DSC_ENONFINITE: return "loss or gradient is not finite";
    case DSC_EIO: return "input/output error";
    case DSC_EFORMAT: return "malformed input";
    case DSC_ELIMIT: return "size beyond a limit";
    case DSC_EVERSION: return "written by a newer version";
    case DSC_ECHECKSUM: return "checksum mismatch";
    case DSC_EFROZEN: return "every parameter is frozen";
    case DSC_ESTATE: return "call made in the wrong state";
    default: return "unknown error";
    }
}

/* The optional parts, named in a fixed order; "" where absent. */
#ifdef DSC_HAVE_ZLIB
#define FEATURE_ZLIB " zlib"
#else
#define FEATURE_ZLIB ""
#endif
#ifdef _OPENMP
#define FEATURE_OPENMP " openmp"
#else
#define FEATURE_OPENMP ""
#endif
/* The matrix products of the dense layers: cblas_sgemm or the kernels of dense.c. */
#ifdef DSC_HAVE_CBLAS
#define FEATURE_GEMM "gemm=openblas"
#else
#define FEATURE_GEMM "gemm=built-in"
#endif

const char *dsc_build_features(void)
{
    static const char features[] = FEATURE_GEMM FEATURE_OPENMP FEATURE_ZLIB;

    return features;
}

void dsc_free(void *ptr)
{
    dsc__free(ptr);
}

const char *dsc_last_error(void)
{
    return last_message;
}

int dsc__fail(int code, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, args);
    va_end(args);
    return code;
}

void *dsc__fail_null(int *err, int code)
{
    if (err)
        *err = code;
    return NULL;
}

/* The allocator: malloc and free unless the user installed their own. */
static void *(*user_alloc)(size_t, void *);
static void (*user_release)(void *, void *);
static void *user_ctx;

void dsc_set_allocator(void *(*alloc)(size_t size, void *ctx),
                       void (*release)(void *ptr, void *ctx), void *ctx)
{
    user_alloc = alloc;
    user_release = release;
    user_ctx = ctx;
}

void *dsc__alloc(size_t size)
{
    if (size == 0)
        size = 1;
    if (size == SIZE_MAX)
        return NULL;
    return user_alloc ? user_alloc(size, user_ctx) : malloc(size);
}

void *dsc__calloc(size_t count, size_t size)
{
    size_t total = dsc__mul(count, size);
    unsigned char *ptr = dsc__alloc(total);

    if (ptr) {
        for (size_t i = 0; i < total; i++)
            ptr[i] = 0;
    }
    return ptr;
}

void dsc__free(void *ptr)
{
    if (!ptr)
        return;
    if (user_release)
        user_release(ptr, user_ctx);
    else
        free(ptr);
}

void *dsc__realloc(void *ptr, size_t used, size_t size)
{
    if (size == 0)
        size = 1;
    if (size == SIZE_MAX || used > size)
        return NULL;
    if (!user_alloc && !user_release)
        return realloc(ptr, size); /* may move the pages of a large block instead of copying */

    unsigned char *fresh = dsc__alloc(size);
    if (fresh && ptr && used)
        memcpy(fresh, ptr, used);
    if (fresh)
        dsc__free(ptr);
    return fresh;
}

bool dsc__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return true;
    *out = a * b;
    return false;
}

size_t dsc__mul(size_t count, size_t size)
{
    size_t total;

    return dsc__mul_overflows(count, size, &total) ? SIZE_MAX : total;
}
