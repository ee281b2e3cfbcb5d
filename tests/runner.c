/*
 * runner.c - runs every TEST of the suite, each in a child process with a time limit, and
 * ends with the line "N passed, N failed". Arguments, when given, select the tests whose
 * names contain one of them; an argument -NAME leaves out the tests whose names contain NAME.
 * The time limit (300 s a test) and the waits of tests that time a running command are
 * multiplied by DSC_TEST_TIME_SCALE when it is set (e.g. 30 under valgrind).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "test.h"

#include <ftw.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The list the Makefile generates: one X(name) per TEST(name) in tests/. */
#define X(name) void test_##name(void);
#include "test_list.h"
#undef X

struct test_entry {
    const char *name;
    void (*fn)(void);
};

static const struct test_entry all_tests[] = {
#define X(name) {#name, test_##name},
#include "test_list.h"
#undef X
};

int test_failures;
static char tmpdir[256];

void test_report(const char *file, int line, const char *fmt, ...)
{
    va_list args;

    test_failures++;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

const char *test_tmpdir(void)
{
    return tmpdir;
}

double test_time_scale(void)
{
    const char *text = getenv("DSC_TEST_TIME_SCALE");
    double scale = text ? strtod(text, NULL) : 1.0;

    return scale >= 1.0 && scale <= 1000.0 ? scale : 1.0;
}

test_oom_state test_oom;

/* Each block carries its size in a header of 16 bytes, which keeps malloc's alignment. */
#define OOM_HEADER 16

void *test_oom_alloc(size_t size, void *ctx)
{
    if (++test_oom.calls == test_oom.fail_at)
        return NULL;
    unsigned char *block = malloc(size + OOM_HEADER);
    if (!block)
        return NULL;
    memcpy(block, &size, sizeof size);
    test_oom.live++;
    test_oom.live_bytes += size;
    if (test_oom.live_bytes > test_oom.peak_bytes)
        test_oom.peak_bytes = test_oom.live_bytes;
    return block + OOM_HEADER;
}

void test_oom_free(void *ptr, void *ctx)
{
    if (!ptr)
        return;
    unsigned char *block = (unsigned char *)ptr - OOM_HEADER;
    size_t size;
    memcpy(&size, block, sizeof size);
    test_oom.live--;
    test_oom.live_bytes -= size;
    free(block);
}

/* Whether a test runs: named by an argument (or none given), and by no -NAME argument. */
static int selected(const char *name, int argc, char **argv)
{
    int any_include = 0, included = 0;

    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (strstr(name, argv[i] + 1))
                return 0;
        } else {
            any_include = 1;
            included |= strstr(name, argv[i]) != NULL;
        }
    }
    return !any_include || included;
}

/* Remove one entry of a folder being emptied, deepest first (a callback of nftw). */
static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

/* Run one test in a child; 1 when it passed. */
static int run_one(const struct test_entry *t)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dsc-test-%ld-%s", (long)getpid(), t->name);
    mkdir(tmpdir, 0700);
    fflush(NULL);

    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        alarm((unsigned)(300.0 * test_time_scale()));
        test_failures = 0;
        t->fn();
        fflush(NULL);
        _exit(test_failures ? 1 : 0);
    }

    int status = 0;
    waitpid(pid, &status, 0);
    int passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "    killed by signal %d\n", WTERMSIG(status));
    /* Removed here rather than by "rm -rf", which under valgrind costs a traced shell. */
    if (passed && nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "    could not remove %s\n", tmpdir);
    return passed;
}

int main(int argc, char **argv)
{
    size_t n_tests = sizeof all_tests / sizeof all_tests[0];
    int passed = 0, failed = 0;

    for (size_t i = 0; i < n_tests; i++) {
        if (!selected(all_tests[i].name, argc, argv))
            continue;
        int ok = run_one(&all_tests[i]);
        printf("%s %s\n", ok ? "ok  " : "FAIL", all_tests[i].name);
        fflush(stdout);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
