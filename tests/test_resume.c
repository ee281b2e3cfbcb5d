/*
 * test_resume.c - never lose work: a training run killed with SIGKILL at seeded random
 * moments and resumed from its last checkpoint ends with a model file byte-identical to the
 * run that was never interrupted; SIGTERM and SIGINT write a final checkpoint; the guard
 * against divergence from the command line.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *binary(void)
{
    static char path[512];
    const char *build = getenv("DSC_BUILD");

    snprintf(path, sizeof path, "%s/descent", build && *build ? build : "build");
    return path;
}

/* Start "descent ARGS..." (argv[0] is the command) with its output silenced; its pid. */
static pid_t start(char *const *args)
{
    char *argv[64];
    int n = 0;

    argv[n++] = (char *)binary();
    while (args[n - 1] && n < 63) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Run to the end; the exit status, or -1. */
static int run(char *const *args)
{
    int status;
    pid_t pid = start(args);

    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The bytes of a file (malloc), or NULL; *size gets their count. */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *size = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(resume_after_sigkill_gives_a_byte_identical_model)
{
    char model[512], ckpt[512];
    snprintf(model, sizeof model, "%s/model.dsc", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", test_tmpdir());
    const char *settings[][6] = {
        {"--optimizer", "sgd", "--lr", "0.05", NULL, NULL},
        {"--optimizer", "momentum", "--lr", "0.02", NULL, NULL},
        {"--optimizer", "adam", "--lr", "0.01", NULL, NULL},
        {"--schedule", "cosine", "--warmup", "3", "--lr", "0.01"},
    };
    dsc_rng rng;
    dsc_rng_seed(&rng, 2026);
    int kills = 0, resumed = 0;

    for (size_t s = 0; s < 4; s++) {
        char *args[40] = {"train", "data/iris.csv", "-o", model, "--model", "mlp",
                          "--hidden", "16", "--epochs", "40", "--batch", "4", "--tol", "-1",
                          "--val", "0.2", "--checkpoint", ckpt, "--checkpoint-every", "7s",
                          "--threads", "1", "--quiet"};
        int n = 23;
        for (int i = 0; i < 6 && settings[s][i]; i++)
            args[n++] = (char *)settings[s][i];
        args[n] = NULL;

        /* The uninterrupted run, and how long it takes. */
        unlink(model);
        unlink(ckpt);
        double began = now();
        REQUIRE(run(args) == 0);
        double took = now() - began;
        size_t ref_size;
        unsigned char *reference = slurp(model, &ref_size);
        REQUIRE(reference);

        /* Five kills at seeded moments of the run; resume each from its last checkpoint. */
        for (int k = 0; k < 5; k++) {
            unlink(model);
            unlink(ckpt);
            pid_t pid = start(args);
            REQUIRE(pid > 0);
            sleep_seconds(took * (0.05 + 0.9 * dsc_rng_uniform(&rng)));
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            kills++;

            if (!exists(model)) {
                if (exists(ckpt)) {
                    char *resume[] = {"train", "--resume", ckpt, NULL};
                    CHECK_EQ_INT(run(resume), 0);
                    resumed++;
                } else {
                    CHECK_EQ_INT(run(args), 0); /* killed before the first checkpoint */
                }
            }
            size_t size;
            unsigned char *bytes = slurp(model, &size);
            CHECK(bytes && size == ref_size && memcmp(bytes, reference, size) == 0);
            free(bytes);
        }
        free(reference);
    }
    CHECK_EQ_INT(kills, 20);
    if (resumed < 10)
        fprintf(stderr, "    only %d of 20 kills found a checkpoint to resume\n", resumed);
    CHECK(resumed >= 10);
}

TEST(resume_sigterm_and_sigint_write_a_final_checkpoint)
{
    char model[512], ckpt[512];
    snprintf(model, sizeof model, "%s/model.dsc", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", test_tmpdir());
    char *args[] = {"train", "data/digits.csv", "-o", model, "--model", "mlp", "--loss",
                    "softmax", "--epochs", "100000", "--tol", "-1", "--checkpoint", ckpt,
                    "--checkpoint-every", "100000", "--quiet", NULL};
    const int signals[2] = {SIGTERM, SIGINT};

    for (int i = 0; i < 2; i++) {
        unlink(ckpt);
        pid_t pid = start(args);
        REQUIRE(pid > 0);
        sleep_seconds(1.0 * test_time_scale()); /* past the start, well before the end */
        kill(pid, signals[i]);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        CHECK(exists(ckpt));   /* written on the signal, not by the schedule */
        CHECK(!exists(model)); /* no model from an unfinished run */

        /* The checkpoint loads and holds the arguments of the run. */
        dsc_model *m = NULL;
        char *settings = NULL;
        void *state = NULL;
        size_t size = 0;
        REQUIRE(dsc_checkpoint_load(ckpt, &m, NULL, &settings, &state, &size) == DSC_OK);
        CHECK(strstr(settings, "argv=train") != NULL);
        CHECK(size > 0);
        dsc_model_free(m);
        dsc_free(settings);
        dsc_free(state);
    }
}

TEST(resume_divergence_backs_off_or_stops_without_a_model)
{
    char model[512], err_path[512], command[2048];
    snprintf(model, sizeof model, "%s/model.dsc", test_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/stderr", test_tmpdir());

    /* Backing off: the run finishes, finite, and says the rate was lowered. */
    snprintf(command, sizeof command, "%s train data/diabetes.csv -o %s --optimizer sgd "
             "--lr 20 --epochs 20 --tol -1 2>%s >/dev/null", binary(), model, err_path);
    CHECK_EQ_INT(WEXITSTATUS(system(command)), 0);
    CHECK(exists(model));
    size_t size;
    char *err = (char *)slurp(err_path, &size);
    REQUIRE(err);
    err[size] = '\0';
    CHECK(strstr(err, "training diverged; the learning rate is now") != NULL);
    free(err);
    dsc_model *m = NULL;
    REQUIRE(dsc_model_load(model, &m, NULL, NULL) == DSC_OK); /* loading checks finiteness */
    dsc_model_free(m);

    /* Stopping: exit status 1, one line naming epoch, step and rate, and no model. */
    unlink(model);
    snprintf(command, sizeof command, "%s train data/diabetes.csv -o %s --optimizer sgd "
             "--lr 20 --epochs 20 --tol -1 --on-divergence stop --quiet 2>%s >/dev/null", binary(),
             model, err_path);
    CHECK_EQ_INT(WEXITSTATUS(system(command)), 1);
    CHECK(!exists(model));
    err = (char *)slurp(err_path, &size);
    REQUIRE(err);
    err[size] = '\0';
    CHECK(strncmp(err, "descent: train: the ", 20) == 0);
    CHECK(strstr(err, " diverged at epoch ") != NULL && strstr(err, ", step ") != NULL);
    CHECK(strstr(err, "learning rate 20; try a learning rate of 2 or less") != NULL);
    CHECK(strchr(err, '\n') == err + size - 1); /* one line */
    free(err);
}
