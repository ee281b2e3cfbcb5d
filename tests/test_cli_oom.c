/*
 * test_cli_oom.c - whole command-line runs under failing allocations.
 *
 * `descent train`, `predict` and `eval` run in this process (cmd_train and the others, from
 * the command's objects linked into the runner) on a small CSV, with the library's allocator
 * replaced by one that fails its N-th call, for N = 1, 2, ... until a run makes fewer than N
 * calls. Each run is a child process of its own. A run that met the failure must exit with
 * status 1 after exactly one line "descent: ... out of memory ...", free every block it got
 * from the allocator (the count of live blocks back to 0 when the command returns) and leave
 * no file behind (the test's folder holds what it held before). The command's own malloc
 * calls are not counted.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "../cli/cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Running a command in a child                                                               */
/* ------------------------------------------------------------------------------------------ */

/* What a child reports about its run. */
typedef struct run_result {
    int status;       /* the command's exit status; -1 when the child died */
    long calls;       /* allocator calls made */
    long live;        /* blocks still live after the command returned */
} run_result;

/*
 * Run command (a NULL-terminated argv, argv[0] the command's name) in a child with the
 * allocator failing at call fail_at (0: never), standard output to /dev/null and standard
 * error into the file stderr of the test's folder.
 */
static run_result run_command(int (*command)(int, char **), char **argv, long fail_at)
{
    run_result result = {-1, 0, 0};
    char err_path[512];
    int fds[2];

    snprintf(err_path, sizeof err_path, "%s/stderr", test_tmpdir());
    if (pipe(fds) != 0)
        return result;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(99);
        close(fds[0]);
        int argc = 0;
        while (argv[argc])
            argc++;
        dsc_set_threads(1); /* one thread: the allocation order is the same every run */
        test_oom.calls = test_oom.live = 0;
        test_oom.fail_at = fail_at;
        dsc_set_allocator(test_oom_alloc, test_oom_free, NULL);
        run_result r;
        memset(&r, 0, sizeof r); /* the padding goes down the pipe too */
        r.status = command(argc, argv);
        dsc_set_allocator(NULL, NULL, NULL);
        r.calls = test_oom.calls;
        r.live = test_oom.live;
        fflush(NULL);
        if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(98);
        _exit(0);
    }
    close(fds[1]);
    if (pid > 0) {
        int status = 0;
        if (read(fds[0], &result, sizeof result) != (ssize_t)sizeof result)
            result.status = -1;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            result.status = -1;
    }
    close(fds[0]);
    return result;
}

/* The whole of a small file as a string; free it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = calloc(1, 65536);
    size_t n = 0;

    if (!text)
        abort();
    if (f) {
        n = fread(text, 1, 65535, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

/* The sorted names in the test's folder as one text ("a/b/c/"); free it. */
static char *listing(void)
{
    char *names[64], *text = calloc(1, 8192);
    size_t n = 0;
    DIR *dir = opendir(test_tmpdir());
    struct dirent *e;

    if (!text)
        abort();
    while (dir && (e = readdir(dir)) != NULL && n < 64) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    }
    if (dir)
        closedir(dir);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (strlen(text) + strlen(names[i]) + 2 < 8192)
            strcat(strcat(text, names[i]), "/");
        free(names[i]);
    }
    return text;
}

/* True when text is exactly one line "descent: ... out of memory ...". */
static int one_oom_line(const char *text)
{
    const char *newline = strchr(text, '\n');

    return strncmp(text, "descent: ", 9) == 0 && newline && newline[1] == '\0' &&
           strstr(text, "out of memory") && strstr(text, "out of memory") < newline;
}

/*
 * Run command with the N-th allocation failing for N = 1, 2, ... until a run makes fewer
 * than N calls (and so succeeds untouched); check every failing run. Returns the number of
 * allocator calls of the complete run.
 */
static long fail_each_allocation(const char *name, int (*command)(int, char **), char **argv)
{
    char *before = listing();
    long n;

    for (n = 1;; n++) {
        run_result r = run_command(command, argv, n);
        if (r.status == -1) {
            test_report(__FILE__, __LINE__, "%s, allocation %ld failing: the child died", name,
                        n);
            break;
        }
        if (r.calls < n) { /* the failure was never reached: a complete run */
            if (r.status != 0)
                test_report(__FILE__, __LINE__, "%s: exit status %d without a failure", name,
                            r.status);
            break;
        }
        char err_path[512];
        snprintf(err_path, sizeof err_path, "%s/stderr", test_tmpdir());
        char *err = slurp(err_path), *after = listing();
        if (r.status != 1 || !one_oom_line(err))
            test_report(__FILE__, __LINE__, "%s, allocation %ld of %ld failing: status %d, "
                        "stderr \"%s\"", name, n, r.calls, r.status, err);
        if (r.live != 0)
            test_report(__FILE__, __LINE__, "%s, allocation %ld failing: %ld blocks leaked",
                        name, n, r.live);
        if (strcmp(before, after) != 0)
            test_report(__FILE__, __LINE__, "%s, allocation %ld failing: the folder held %s "
                        "before and %s after", name, n, before, after);
        free(err);
        free(after);
        if (test_failures > 20)
            break;
    }
    free(before);
    return n - 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The runs                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* A small CSV: a numeric, a categorical and a gappy column, and three string classes. */
static void write_data(char *path, size_t size)
{
    static const char *const colors[] = {"red", "green", "blue"};
    static const char *const kinds[] = {"setosa", "versicolor", "virginica"};

    snprintf(path, size, "%s/data.csv", test_tmpdir());
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fprintf(f, "length,color,width,species\n");
    for (int i = 0; i < 24; i++) {
        int k = i % 3;
        if (i % 7 == 3)
            fprintf(f, "%.1f,%s,,%s\n", 1.0 + k + 0.1 * (i % 5), colors[(i / 2) % 3], kinds[k]);
        else
            fprintf(f, "%.1f,%s,%.2f,%s\n", 1.0 + k + 0.1 * (i % 5), colors[(i / 2) % 3],
                    0.5 * k - 0.03 * i, kinds[k]);
    }
    if (fclose(f) != 0)
        abort();
}

TEST(cli_oom_train_predict_eval_fail_cleanly_at_every_allocation)
{
    char data[512], model[512], out_model[512], log[512], plot[512], pred[512];

    write_data(data, sizeof data);
    snprintf(model, sizeof model, "%s/ref.model", test_tmpdir());
    snprintf(out_model, sizeof out_model, "%s/out.model", test_tmpdir());
    snprintf(log, sizeof log, "%s/history.csv", test_tmpdir());
    snprintf(plot, sizeof plot, "%s/loss.svg", test_tmpdir());
    snprintf(pred, sizeof pred, "%s/pred.csv", test_tmpdir());

    /* The model predict and eval load, trained without a failure. */
    char *train_ref[] = {"train", data, "-o", model, "--model", "mlp", "--hidden", "4",
                         "--missing", "mean", "--epochs", "3", "--batch", "8", "--quiet",
                         NULL};
    run_result ref = run_command(cmd_train, train_ref, 0);
    REQUIRE(ref.status == 0);
    CHECK_EQ_INT(ref.live, 0);
    CHECK(ref.calls > 10);

    char *train_args[] = {"train", data, "-o", out_model, "--model", "mlp", "--hidden", "4",
                          "--missing", "mean", "--epochs", "3", "--batch", "8", "--val",
                          "0.25", "--log", log, "--plot", plot, "--quiet", NULL};
    long calls = fail_each_allocation("train", cmd_train, train_args);
    CHECK(calls > 10);
    unlink(out_model);
    unlink(log);
    unlink(plot);

    char *predict_args[] = {"predict", model, data, "-o", pred, "--proba", NULL};
    calls = fail_each_allocation("predict", cmd_predict, predict_args);
    CHECK(calls > 5);
    unlink(pred);

    char *eval_args[] = {"eval", model, data, NULL};
    calls = fail_each_allocation("eval", cmd_eval, eval_args);
    CHECK(calls > 5);
}

TEST(cli_oom_sparse_regression_fails_cleanly_at_every_allocation)
{
    char data[512], model[512], out_model[512], pred[512];

    snprintf(data, sizeof data, "%s/data.svm", test_tmpdir());
    FILE *f = fopen(data, "w");
    REQUIRE(f != NULL);
    for (int i = 0; i < 20; i++)
        fprintf(f, "%.2f 1:%d %d:0.5 7:%.1f\n", 0.1 * i - 1.0, i % 4, 2 + i % 4, 0.2 * i);
    REQUIRE(fclose(f) == 0);
    snprintf(model, sizeof model, "%s/ref.model", test_tmpdir());
    snprintf(out_model, sizeof out_model, "%s/out.model", test_tmpdir());
    snprintf(pred, sizeof pred, "%s/pred.csv", test_tmpdir());

    char *train_ref[] = {"train", data, "-o", model, "--epochs", "2", "--quiet", NULL};
    run_result ref = run_command(cmd_train, train_ref, 0);
    REQUIRE(ref.status == 0);

    char *train_args[] = {"train", data, "-o", out_model, "--optimizer", "sgd", "--epochs",
                          "3", "--schedule", "cosine", "--quiet", NULL};
    CHECK(fail_each_allocation("train", cmd_train, train_args) > 10);
    unlink(out_model);

    char *predict_args[] = {"predict", model, data, "-o", pred, NULL};
    CHECK(fail_each_allocation("predict", cmd_predict, predict_args) > 5);
    unlink(pred);

    char *eval_args[] = {"eval", model, data, NULL};
    CHECK(fail_each_allocation("eval", cmd_eval, eval_args) > 5);
}

TEST(cli_oom_data_cache_fails_cleanly_at_every_allocation)
{
    char data[512], cache[512], out_cache[512], model[512], out_model[512], pred[512];

    write_data(data, sizeof data);
    snprintf(cache, sizeof cache, "%s/data.dscd", test_tmpdir());
    snprintf(out_cache, sizeof out_cache, "%s/out.dscd", test_tmpdir());
    snprintf(model, sizeof model, "%s/ref.model", test_tmpdir());
    snprintf(out_model, sizeof out_model, "%s/out.model", test_tmpdir());
    snprintf(pred, sizeof pred, "%s/pred.csv", test_tmpdir());

    char *convert_ref[] = {"convert", data, "-o", cache, "--missing", "mean", NULL};
    REQUIRE(run_command(cmd_convert, convert_ref, 0).status == 0);
    char *train_ref[] = {"train", cache, "-o", model, "--missing", "mean", "--epochs", "2",
                         "--quiet", NULL};
    REQUIRE(run_command(cmd_train, train_ref, 0).status == 0);

    char *convert_args[] = {"convert", data, "-o", out_cache, "--missing", "mean", NULL};
    CHECK(fail_each_allocation("convert", cmd_convert, convert_args) > 10);
    unlink(out_cache);

    char *train_args[] = {"train", cache, "-o", out_model, "--missing", "mean", "--epochs",
                          "2", "--val", "0.25", "--quiet", NULL};
    CHECK(fail_each_allocation("train", cmd_train, train_args) > 10);
    unlink(out_model);

    char *predict_args[] = {"predict", model, cache, "-o", pred, "--proba", NULL};
    CHECK(fail_each_allocation("predict", cmd_predict, predict_args) > 5);
    unlink(pred);
}
