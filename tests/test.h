/*
 * test.h - the few macros every test file uses.
 *
 * A test is a function written as TEST(name) { ... }. The Makefile collects every TEST(name)
 * from the tests/test_*.c files into the runner, which runs each in a child process of its
 * own, so a crash fails one test rather than the suite. A failed CHECK reports its file and
 * line and lets the test go on; REQUIRE returns from the test at once.
 */
#ifndef DSC_TEST_H
#define DSC_TEST_H

#include "descent.h"

#include <math.h>
#include <stdio.h>

#define TEST(name) void test_##name(void)

/* Failures counted by the checks of the running test. */
extern int test_failures;

void test_report(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond))                                                                          \
            test_report(__FILE__, __LINE__, "%s", #cond);                                     \
    } while (0)

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            test_report(__FILE__, __LINE__, "required: %s", #cond);                           \
            return;                                                                           \
        }                                                                                     \
    } while (0)

/* |a - b| <= tol, reporting both values when not. */
#define CHECK_NEAR(a, b, tol)                                                                 \
    do {                                                                                      \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                \
        if (!(fabs(check_a_ - check_b_) <= (double)(tol)))                                    \
            test_report(__FILE__, __LINE__, "%s = %.17g, %s = %.17g, tolerance %g", #a,       \
                        check_a_, #b, check_b_, (double)(tol));                               \
    } while (0)

/* |a - b| <= rel * max(|a|, |b|, floor). */
#define CHECK_REL(a, b, rel, floor)                                                           \
    do {                                                                                      \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                \
        double check_s_ = fmax(fmax(fabs(check_a_), fabs(check_b_)), (double)(floor));        \
        if (!(fabs(check_a_ - check_b_) <= (double)(rel) * check_s_))                         \
            test_report(__FILE__, __LINE__, "%s = %.17g, %s = %.17g, relative %g", #a,        \
                        check_a_, #b, check_b_, (double)(rel));                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                       \
        if (check_a_ != check_b_)                                                             \
            test_report(__FILE__, __LINE__, "%s = %lld, expected %s = %lld", #a, check_a_,    \
                        #b, check_b_);                                                        \
    } while (0)

/* A folder for the test's files, made fresh for each test and removed after a pass. */
const char *test_tmpdir(void);

/* How much slower than usual the suite runs: DSC_TEST_TIME_SCALE (e.g. under valgrind), 1. */
double test_time_scale(void);

/*
 * An allocator for dsc_set_allocator(test_oom_alloc, test_oom_free, NULL) that fails the
 * call numbered test_oom.fail_at (counting from 1; 0 fails none) and counts the calls, the
 * blocks and bytes handed out and not yet freed, and the peak of those bytes: a test can
 * fail each allocation in turn, or bound the memory a call takes.
 */
typedef struct test_oom_state {
    long calls;        /* calls so far */
    long fail_at;      /* the call that fails */
    long live;         /* blocks not yet freed */
    size_t live_bytes; /* their bytes */
    size_t peak_bytes; /* the most live_bytes has been */
} test_oom_state;

extern test_oom_state test_oom;
void *test_oom_alloc(size_t size, void *ctx);
void test_oom_free(void *ptr, void *ctx);

#endif /* DSC_TEST_H */
