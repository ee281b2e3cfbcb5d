/*
 * descent_bench.c - the benchmark's driver: trains one task with libdescent through its public
 * API and prints one machine-readable line, and measures the hardware references.
 *
 *   descent_bench train  --data DIR --set NAME [options]   train on DIR/NAME_train_*.npy
 *   descent_bench libsvm --svm FILE --data DIR [options]   read a LIBSVM file, then train
 *   descent_bench membw  --mb N [--threads T]              one pass over N MB of floats
 *   descent_bench gemm   --batch B [--threads T]           dense-layer throughput, 784-256-10
 *   descent_bench write-libsvm --data DIR --set NAME --part P --out FILE
 *
 * Every result is one line "BENCH key=value key=value ...", values without spaces; a run
 * that cannot be done prints "BENCH_NA reason=..." and exits with status 3. Times come from
 * the monotonic clock; peak memory is getrusage's ru_maxrss of this process, so each run
 * is meant to be a fresh process. The .npy files are read by a small loader of our own so
 * that the training tasks measure training; reading speed is task 2's business.
 */
#define _POSIX_C_SOURCE 200809L

#include "descent.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>
#endif

#define MAX_OPTIONS 32
#define EVAL_CHUNK 4096
#define MAX_EPOCHS 1000

/* ---- Small helpers ----------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_mb(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

/* Print "BENCH_NA reason=..." (spaces become underscores) and exit with status 3. */
static void not_available(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *c = text; *c; c++) {
        if (*c == ' ' || *c == '\n' || *c == '\t')
            *c = '_';
    }
    printf("BENCH_NA reason=%s\n", text);
    fflush(stdout);
    exit(3);
}

/* Exit with the library's message when rc is a failure. */
static void check_library(int rc, const char *what)
{
    if (rc < 0)
        not_available("%s failed: %s (%s)", what, dsc_strerror(rc), dsc_last_error());
}

static void *alloc_or_die(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        not_available("out of memory allocating %zu bytes", bytes);
    return p;
}

/* ---- Options: "--name value" pairs ------------------------------------------------------- */

typedef struct options {
    const char *name[MAX_OPTIONS];
    const char *value[MAX_OPTIONS];
    int count;
} options;

static void parse_options(int argc, char **argv, options *opts)
{
    opts->count = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc || opts->count == MAX_OPTIONS)
            not_available("bad argument '%s' (expected --name value)", argv[i]);
        opts->name[opts->count] = argv[i] + 2;
        opts->value[opts->count] = argv[i + 1];
        opts->count++;
        i++;
    }
}

static const char *opt_text(const options *opts, const char *name, const char *fallback)
{
    for (int i = opts->count - 1; i >= 0; i--) {
        if (strcmp(opts->name[i], name) == 0)
            return opts->value[i];
    }
    return fallback;
}

static double opt_real(const options *opts, const char *name, double fallback)
{
    const char *text = opt_text(opts, name, NULL);
    if (!text)
        return fallback;
    char *end;
    double value = strtod(text, &end);
    if (*end != '\0' || end == text)
        not_available("--%s: expected a number, got '%s'", name, text);
    return value;
}

/* ---- .npy files -------------------------------------------------------------------------- */

typedef struct npy_array {
    void *data;
    size_t dims[2]; /* dims[1] is 1 for a vector */
    size_t elem_size;
    size_t bytes;
} npy_array;

/*
 * Read a version 1-3 .npy file whose dtype descriptor is want (such as "<f4"), C order, one
 * or two dimensions, into 64-byte aligned memory.
 */
static void npy_load(const char *path, const char *want, npy_array *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        not_available("%s: %s", path, strerror(errno));

    unsigned char lead[10];
    if (fread(lead, 1, 10, f) != 10 || memcmp(lead, "\x93NUMPY", 6) != 0)
        not_available("%s: not a .npy file", path);
    size_t header_len = (size_t)lead[8] | (size_t)lead[9] << 8;
    if (lead[6] >= 2) {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2)
            not_available("%s: truncated header", path);
        header_len |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    char *header = alloc_or_die(header_len + 1);
    if (fread(header, 1, header_len, f) != header_len)
        not_available("%s: truncated header", path);
    header[header_len] = '\0';

    char descr[16] = "";
    const char *d = strstr(header, "'descr':");
    if (d && sscanf(d, "'descr': '%15[^']'", descr) != 1)
        descr[0] = '\0';
    if (strcmp(descr, want) != 0)
        not_available("%s: dtype '%s', expected '%s'", path, descr, want);
    if (!strstr(header, "'fortran_order': False"))
        not_available("%s: not in C order", path);
    const char *s = strstr(header, "'shape': (");
    if (!s)
        not_available("%s: no shape", path);
    s += strlen("'shape': (");
    out->dims[0] = strtoull(s, (char **)&s, 10);
    out->dims[1] = 1;
    if (*s == ',' && s[1] == ' ' && s[2] >= '0' && s[2] <= '9')
        out->dims[1] = strtoull(s + 2, (char **)&s, 10);
    free(header);

    out->elem_size = (size_t)(want[2] - '0');
    out->bytes = out->dims[0] * out->dims[1] * out->elem_size;
    out->data = alloc_or_die(out->bytes);
    if (fread(out->data, 1, out->bytes, f) != out->bytes)
        not_available("%s: truncated data", path);
    fclose(f);
}

/* ---- Data sets --------------------------------------------------------------------------- */

typedef struct bench_set {
    dsc_data data;
    npy_array parts[4];
    size_t n_parts;
    size_t bytes; /* features and labels as stored in memory */
    size_t n_classes;
} bench_set;

static void set_path(char *buf, size_t size, const char *dir, const char *name,
                     const char *part, const char *what)
{
    snprintf(buf, size, "%s/%s_%s_%s.npy", dir, name, part, what);
}

static size_t count_classes(const int32_t *label, size_t n)
{
    int32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        if (label[i] < 0)
            not_available("negative label %d in row %zu", (int)label[i], i);
        if (label[i] > top)
            top = label[i];
    }
    return (size_t)top + 1;
}

/*
 * Load DIR/NAME_PART_x.npy and _y.npy (dense), or _indptr, _indices, _data and _y (CSR,
 * when n_sparse_features is not 0).
 */
static void load_set(const char *dir, const char *name, const char *part,
                     size_t n_sparse_features, bench_set *set)
{
    char path[4096];
    memset(set, 0, sizeof *set);

    if (n_sparse_features == 0) {
        set_path(path, sizeof path, dir, name, part, "x");
        npy_load(path, "<f4", &set->parts[0]);
        set->data.x = set->parts[0].data;
        set->data.n_rows = set->parts[0].dims[0];
        set->data.n_features = set->parts[0].dims[1];
        set->n_parts = 1;
    } else {
        set_path(path, sizeof path, dir, name, part, "indptr");
        npy_load(path, "<i8", &set->parts[0]);
        set_path(path, sizeof path, dir, name, part, "indices");
        npy_load(path, "<u4", &set->parts[1]);
        set_path(path, sizeof path, dir, name, part, "data");
        npy_load(path, "<f4", &set->parts[2]);
        set->data.row_ptr = set->parts[0].data; /* int64 offsets, all non-negative */
        set->data.col = set->parts[1].data;
        set->data.val = set->parts[2].data;
        set->data.n_rows = set->parts[0].dims[0] - 1;
        set->data.n_features = n_sparse_features;
        set->n_parts = 3;
    }

    set_path(path, sizeof path, dir, name, part, "y");
    npy_load(path, "<i4", &set->parts[set->n_parts]);
    set->data.label = set->parts[set->n_parts].data;
    if (set->parts[set->n_parts].dims[0] != set->data.n_rows)
        not_available("%s: %zu labels for %zu rows", path, set->parts[set->n_parts].dims[0],
                      set->data.n_rows);
    set->n_parts++;

    for (size_t i = 0; i < set->n_parts; i++)
        set->bytes += set->parts[i].bytes;
    set->n_classes = count_classes(set->data.label, set->data.n_rows);
}

static void free_set(bench_set *set)
{
    for (size_t i = 0; i < set->n_parts; i++)
        free(set->parts[i].data);
    memset(set, 0, sizeof *set);
}

/* ---- Training ---------------------------------------------------------------------------- */

typedef struct run_settings {
    const char *task;
    const char *setting;
    const char *model_kind; /* "logistic" or "mlp" */
    size_t hidden;
    dsc_optimizer optimizer;
    double lr;
    size_t batch;
    int64_t epochs;
    int threads;
    uint64_t seed;
} run_settings;

/* The training settings from the options; also sets the library's thread count. */
static void read_settings(const options *opts, run_settings *rs)
{
    rs->task = opt_text(opts, "task", "task");
    static char setting[128];
    snprintf(setting, sizeof setting, "%s", opt_text(opts, "setting", "default"));
    for (char *c = setting; *c; c++) {
        if (*c == ' ')
            *c = '_'; /* one token in the result line */
    }
    rs->setting = setting;
    rs->model_kind = opt_text(opts, "model", "logistic");
    rs->hidden = (size_t)opt_real(opts, "hidden", 256);
    const char *opt_name = opt_text(opts, "opt", "sgd");
    int kind = dsc_optimizer_from_name(opt_name);
    if (kind < 0)
        not_available("--opt: unknown optimizer '%s'", opt_name);
    rs->optimizer = (dsc_optimizer)kind;
    rs->lr = opt_real(opts, "lr", 0.1);
    rs->batch = (size_t)opt_real(opts, "batch", 32);
    rs->epochs = (int64_t)opt_real(opts, "epochs", 5);
    rs->threads = (int)opt_real(opts, "threads", 1);
    rs->seed = (uint64_t)opt_real(opts, "seed", 1);
    if (rs->epochs < 1 || rs->epochs > MAX_EPOCHS)
        not_available("--epochs: expected 1 to %d", MAX_EPOCHS);
    if (rs->threads < 1 || rs->batch < 1)
        not_available("--threads and --batch must be at least 1");
    check_library(dsc_set_threads(rs->threads), "dsc_set_threads");
}

/* Logistic regression, or an MLP with one ReLU hidden layer and a softmax output. */
static dsc_model *make_model(const run_settings *rs, size_t n_features, size_t n_classes)
{
    dsc_model_config cfg;
    int err = 0;

    if (strcmp(rs->model_kind, "logistic") == 0) {
        if (n_classes != 2)
            not_available("logistic regression needs 2 classes, the data has %zu", n_classes);
        dsc_model_config_init(&cfg, n_features, 2, DSC_LOSS_LOG);
    } else if (strcmp(rs->model_kind, "mlp") == 0) {
        dsc_model_config_init(&cfg, n_features, n_classes, DSC_LOSS_SOFTMAX);
        cfg.n_hidden = 1;
        cfg.hidden[0] = rs->hidden;
        cfg.activation[0] = DSC_ACT_RELU;
    } else {
        not_available("--model: expected logistic or mlp, got '%s'", rs->model_kind);
    }
    dsc_model *model = dsc_model_new(&cfg, &err);
    check_library(err, "dsc_model_new");
    return model;
}

/*
 * The mean training loss over the first n_rows rows of data (0: all of them), in chunks,
 * without regularisation.
 */
static double full_loss(dsc_model *model, const dsc_data *data, size_t n_rows)
{
    uint32_t *rows = alloc_or_die(EVAL_CHUNK * sizeof *rows);
    double sum = 0.0;
    if (n_rows == 0 || n_rows > data->n_rows)
        n_rows = data->n_rows;

    for (size_t first = 0; first < n_rows; first += EVAL_CHUNK) {
        size_t n = n_rows - first < EVAL_CHUNK ? n_rows - first : EVAL_CHUNK;
        for (size_t i = 0; i < n; i++)
            rows[i] = (uint32_t)(first + i);
        double loss = 0.0;
        check_library(dsc_model_loss(model, data, rows, n, NULL, &loss), "dsc_model_loss");
        sum += loss * (double)n;
    }

    free(rows);
    return sum / (double)n_rows;
}

/* The share of rows of data whose predicted class is the label. */
static double accuracy(dsc_model *model, const dsc_data *data)
{
    int32_t *predicted = alloc_or_die(EVAL_CHUNK * sizeof *predicted);
    size_t right = 0;

    for (size_t first = 0; first < data->n_rows; first += EVAL_CHUNK) {
        size_t n = data->n_rows - first < EVAL_CHUNK ? data->n_rows - first : EVAL_CHUNK;
        check_library(dsc_model_predict_class(model, data, first, n, predicted),
                      "dsc_model_predict_class");
        for (size_t i = 0; i < n; i++)
            right += predicted[i] == data->label[first + i];
    }

    free(predicted);
    return (double)right / (double)data->n_rows;
}

typedef struct train_result {
    double setup_s;
    double epoch_s[MAX_EPOCHS];
    int64_t epochs_done;
    double train_s;
    double state_mb;
} train_result;

/* Train model on train for rs->epochs epochs, timing each epoch. */
static void train_timed(dsc_model *model, const dsc_data *train, const run_settings *rs,
                        train_result *res)
{
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.batch = rs->batch;
    cfg.epochs = rs->epochs;
    cfg.shuffle = 1;
    cfg.seed = rs->seed;
    cfg.tol = -1.0; /* run every epoch */
    cfg.val_fraction = 0.0;
    cfg.early_stopping = 0;
    cfg.init_weights = 1;
    cfg.init = DSC_INIT_AUTO;
    dsc_optim_config_default(&cfg.optim, rs->optimizer);
    cfg.optim.lr = rs->lr;
    dsc_schedule_default(&cfg.schedule, DSC_SCHED_CONSTANT, rs->lr);

    int err = 0;
    double start = now_seconds();
    dsc_trainer *trainer = dsc_trainer_new(model, train, NULL, &cfg, &err);
    check_library(err, "dsc_trainer_new");
    res->setup_s = now_seconds() - start;

    res->train_s = 0.0;
    res->epochs_done = 0;
    for (int64_t e = 0; e < rs->epochs; e++) {
        double t0 = now_seconds();
        int rc = dsc_trainer_epoch(trainer);
        res->epoch_s[e] = now_seconds() - t0;
        check_library(rc, "dsc_trainer_epoch");
        res->train_s += res->epoch_s[e];
        res->epochs_done = e + 1;
        if (rc == 0)
            break;
    }

    res->state_mb = (double)(dsc_model_n_params(model) * sizeof(float) +
                             dsc_optim_state_size(dsc_trainer_optim(trainer))) / 1e6;
    dsc_trainer_free(trainer);
}

/* Print the common fields of a training result (without the newline). */
static void print_train_line(const run_settings *rs, const dsc_data *train,
                             const train_result *res, double loss, double acc, double data_mb)
{
    printf("BENCH tool=descent task=%s setting=%s threads=%d batch=%zu epochs=%lld rows=%zu "
           "epoch_s=%.6g samples_s=%.6g loss=%.6f acc=%.6f peak_mb=%.1f data_mb=%.1f "
           "state_mb=%.3f setup_s=%.4g train_s=%.6g epoch_times=",
           rs->task, rs->setting, rs->threads, rs->batch, (long long)res->epochs_done,
           train->n_rows, res->train_s / (double)res->epochs_done,
           (double)train->n_rows * (double)res->epochs_done / res->train_s, loss, acc,
           peak_mb(), data_mb, res->state_mb, res->setup_s, res->train_s);
    for (int64_t e = 0; e < res->epochs_done; e++)
        printf("%s%.4f", e ? "," : "", res->epoch_s[e]);
}

/* Train on NAME_train_*.npy, evaluate on NAME_test_*.npy, print one result line. */
static int cmd_train(const options *opts)
{
    run_settings rs;
    read_settings(opts, &rs);
    const char *dir = opt_text(opts, "data", "bench/out/data");
    const char *name = opt_text(opts, "set", "dense");
    size_t sparse_features = (size_t)opt_real(opts, "sparse-features", 0);

    bench_set train, test;
    load_set(dir, name, "train", sparse_features, &train);
    load_set(dir, name, "test", sparse_features, &test);

    dsc_model *model = make_model(&rs, train.data.n_features, train.n_classes);
    static train_result res;
    train_timed(model, &train.data, &rs, &res);

    double loss = full_loss(model, &train.data, (size_t)opt_real(opts, "loss-rows", 0));
    double acc = accuracy(model, &test.data);
    /* data_mb counts what the process holds: the training and the test parts. */
    print_train_line(&rs, &train.data, &res, loss, acc,
                     (double)(train.bytes + test.bytes) / 1e6);
    printf("\n");

    dsc_model_free(model);
    free_set(&train);
    free_set(&test);
    return 0;
}

/* ---- Task 2: read a LIBSVM file, then train ---------------------------------------------- */

/*
 * Read a LIBSVM file with dsc_table_read, train on it, and print the read, train and total
 * times. Test accuracy comes from the dense test part and is left out (nan) when the file's
 * classes or columns do not line up with it.
 */
static int cmd_libsvm(const options *opts)
{
    run_settings rs;
    read_settings(opts, &rs);
    const char *path = opt_text(opts, "svm", NULL);
    if (!path)
        not_available("libsvm: --svm FILE is required");
    struct stat st;
    if (stat(path, &st) != 0)
        not_available("%s: %s", path, strerror(errno));

    dsc_read_options ro;
    dsc_read_options_default(&ro);
    ro.format = DSC_FORMAT_LIBSVM;
    ro.classify = 1;
    int err = 0;
    double start = now_seconds();
    dsc_table *table = dsc_table_read(path, &ro, NULL, &err);
    check_library(err, "dsc_table_read");
    double read_s = now_seconds() - start;
    double after_read_mb = peak_mb();

    const dsc_data *train = dsc_table_data(table);
    const dsc_prep *prep = dsc_table_prep(table);
    size_t n_classes = dsc_prep_n_classes(prep);
    dsc_model *model = make_model(&rs, train->n_features, n_classes);
    static train_result res;
    train_timed(model, train, &rs, &res);
    double total_s = now_seconds() - start;

    /* Accuracy on the dense test part, when the classes and columns line up with it. */
    double loss = full_loss(model, train, (size_t)opt_real(opts, "loss-rows", 0));
    double acc = NAN;
    const char *dir = opt_text(opts, "data", NULL);
    const char *name = opt_text(opts, "set", "dense");
    if (dir) {
        bench_set test;
        load_set(dir, name, "test", 0, &test);
        int same_classes = n_classes == 2 && strcmp(dsc_prep_class_name(prep, 0), "0") == 0 &&
                           strcmp(dsc_prep_class_name(prep, 1), "1") == 0;
        if (same_classes && test.data.n_features == train->n_features)
            acc = accuracy(model, &test.data);
        free_set(&test);
    }

    size_t bytes = train->row_ptr ? (size_t)train->row_ptr[train->n_rows] * 8 +
                                        (train->n_rows + 1) * 8
                                  : train->n_rows * train->n_features * 4;
    print_train_line(&rs, train, &res, loss, acc, (double)(bytes + train->n_rows * 4) / 1e6);
    printf(" read_s=%.6g read_mbs=%.1f file_mb=%.1f total_s=%.6g read_peak_mb=%.1f "
           "storage=%s\n",
           read_s, (double)st.st_size / 1e6 / read_s, (double)st.st_size / 1e6, total_s,
           after_read_mb, train->row_ptr ? "csr" : "dense");

    dsc_model_free(model);
    dsc_table_free(table);
    return 0;
}

/* ---- Hardware reference: one pass over the data at memory bandwidth ---------------------- */

/* The sum of n floats with 8 double partial sums per thread, combined in a fixed order. */
static double sum_floats(const float *x, size_t n, int threads)
{
    enum { MAX_THREADS = 256 };
    double part[MAX_THREADS] = {0};
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;

#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (int t = 0; t < threads; t++) {
        size_t first = n / (size_t)threads * (size_t)t;
        size_t last = t == threads - 1 ? n : n / (size_t)threads * (size_t)(t + 1);
        double lane[8] = {0};
        size_t i = first;
        for (; i + 8 <= last; i += 8) {
            for (int j = 0; j < 8; j++)
                lane[j] += x[i + (size_t)j];
        }
        for (; i < last; i++)
            lane[0] += x[i];
        part[t] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                  ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }

    double total = 0.0;
    for (int t = 0; t < threads; t++)
        total += part[t];
    return total;
}

/* The best of several summing passes and memcpy copies over an array of --mb megabytes. */
static int cmd_membw(const options *opts)
{
    double mb = opt_real(opts, "mb", 400);
    int threads = (int)opt_real(opts, "threads", 1);
    int repeats = (int)opt_real(opts, "repeats", 7);
    size_t n = (size_t)(mb * 1e6 / sizeof(float));
    float *x = alloc_or_die(n * sizeof *x);
    float *copy = alloc_or_die(n * sizeof *copy);

    for (size_t i = 0; i < n; i++)
        x[i] = (float)(i & 1023) * 0.001f;
    memset(copy, 0, n * sizeof *copy);

    double best_sum = INFINITY, best_copy = INFINITY, check = 0.0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_seconds();
        check += sum_floats(x, n, threads);
        double t1 = now_seconds();
        memcpy(copy, x, n * sizeof *x);
        double t2 = now_seconds();
        best_sum = t1 - t0 < best_sum ? t1 - t0 : best_sum;
        best_copy = t2 - t1 < best_copy ? t2 - t1 : best_copy;
    }

    double bytes = (double)(n * sizeof *x);
    printf("BENCH tool=hardware task=membw setting=sum threads=%d mb=%.1f pass_s=%.6g "
           "gbs=%.3f copy_s=%.6g copy_gbs=%.3f check=%.3g\n",
           threads, bytes / 1e6, best_sum, bytes / best_sum / 1e9, best_copy,
           2.0 * bytes / best_copy / 1e9, check + copy[n / 2]);
    free(x);
    free(copy);
    return 0;
}

/* ---- Hardware reference: dense-layer throughput ------------------------------------------ */

#define GEMM_IN 784
#define GEMM_HIDDEN 256
#define GEMM_OUT 10

/* Multiply-adds times 2 of a forward and backward pass of the 784-256-10 MLP on b rows. */
static double mlp_flops(size_t b)
{
    double fwd = 2.0 * (double)b * (GEMM_IN * GEMM_HIDDEN + GEMM_HIDDEN * GEMM_OUT);
    double dw = fwd;                                                /* both weight gradients */
    double dx = 2.0 * (double)b * GEMM_HIDDEN * GEMM_OUT;           /* hidden layer's input */
    return fwd + dw + dx;
}

/* Run fn(arg) repeatedly for at least min_s seconds; the best time of one call. */
static double best_time(void (*fn)(void *), void *arg, double min_s)
{
    fn(arg); /* warm up */
    double best = INFINITY, spent = 0.0;
    int calls = 0;
    while (spent < min_s || calls < 5) {
        double t0 = now_seconds();
        fn(arg);
        double dt = now_seconds() - t0;
        best = dt < best ? dt : best;
        spent += dt;
        calls++;
    }
    return best;
}

typedef struct descent_pass {
    dsc_model *model;
    dsc_data data;
    size_t batch;
} descent_pass;

static void run_descent_pass(void *arg)
{
    descent_pass *p = arg;
    double loss;
    check_library(dsc_model_loss_grad(p->model, &p->data, NULL, p->batch, NULL, &loss),
                  "dsc_model_loss_grad");
}

#ifdef BENCH_HAVE_CBLAS
typedef struct blas_pass {
    size_t b;
    float *x, *w1, *h, *w2, *z, *dz, *dh, *dw1, *dw2;
} blas_pass;

/* The five products of the pass, as a BLAS-based layer does them (row-major). */
static void run_blas_pass(void *arg)
{
    blas_pass *p = arg;
    int b = (int)p->b;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, GEMM_HIDDEN, GEMM_IN, 1.0f, p->x,
                GEMM_IN, p->w1, GEMM_HIDDEN, 0.0f, p->h, GEMM_HIDDEN);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, GEMM_OUT, GEMM_HIDDEN, 1.0f,
                p->h, GEMM_HIDDEN, p->w2, GEMM_OUT, 0.0f, p->z, GEMM_OUT);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, GEMM_HIDDEN, GEMM_OUT, b, 1.0f, p->h,
                GEMM_HIDDEN, p->dz, GEMM_OUT, 0.0f, p->dw2, GEMM_OUT);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, GEMM_HIDDEN, GEMM_OUT, 1.0f, p->dz,
                GEMM_OUT, p->w2, GEMM_OUT, 0.0f, p->dh, GEMM_HIDDEN);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, GEMM_IN, GEMM_HIDDEN, b, 1.0f, p->x,
                GEMM_IN, p->dh, GEMM_HIDDEN, 0.0f, p->dw1, GEMM_HIDDEN);
}

static float *random_floats(size_t n, dsc_rng *rng)
{
    float *v = alloc_or_die(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(dsc_rng_uniform(rng) - 0.5);
    return v;
}

static void measure_blas(size_t b, int threads, double min_s)
{
    dsc_rng rng;
    dsc_rng_seed(&rng, 7);
    blas_pass p = {.b = b};
    p.x = random_floats(b * GEMM_IN, &rng);
    p.w1 = random_floats(GEMM_IN * GEMM_HIDDEN, &rng);
    p.h = random_floats(b * GEMM_HIDDEN, &rng);
    p.w2 = random_floats(GEMM_HIDDEN * GEMM_OUT, &rng);
    p.z = random_floats(b * GEMM_OUT, &rng);
    p.dz = random_floats(b * GEMM_OUT, &rng);
    p.dh = random_floats(b * GEMM_HIDDEN, &rng);
    p.dw1 = random_floats(GEMM_IN * GEMM_HIDDEN, &rng);
    p.dw2 = random_floats(GEMM_HIDDEN * GEMM_OUT, &rng);
    openblas_set_num_threads(threads);

    double best = best_time(run_blas_pass, &p, min_s);
    printf("BENCH tool=openblas task=gemm setting=batch%zu threads=%d batch=%zu pass_s=%.6g "
           "gflops=%.3f\n",
           b, threads, b, best, mlp_flops(b) / best / 1e9);
    float *all[] = {p.x, p.w1, p.h, p.w2, p.z, p.dz, p.dh, p.dw1, p.dw2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}
#endif

/*
 * The forward and backward pass of a 784-256-10 MLP: cblas_sgemm's, on OpenBLAS's own
 * threads, then descent's (dsc_set_threads stops OpenBLAS's pool, which would then have to
 * start again for the reference).
 */
static int cmd_gemm(const options *opts)
{
    size_t b = (size_t)opt_real(opts, "batch", 256);
    int threads = (int)opt_real(opts, "threads", 1);
    double min_s = opt_real(opts, "min-seconds", 1.0);

#ifdef BENCH_HAVE_CBLAS
    measure_blas(b, threads, min_s);
    fflush(stdout);
#else
    printf("BENCH_NA tool=openblas task=gemm setting=batch%zu threads=%d "
           "reason=OpenBLAS_not_installed\n", b, threads);
#endif
    check_library(dsc_set_threads(threads), "dsc_set_threads");

    /* descent: one forward and backward pass of the MLP through the public API. */
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, GEMM_IN, GEMM_OUT, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = 1;
    cfg.hidden[0] = GEMM_HIDDEN;
    cfg.activation[0] = DSC_ACT_RELU;
    int err = 0;
    descent_pass p = {.batch = b};
    p.model = dsc_model_new(&cfg, &err);
    check_library(err, "dsc_model_new");
    check_library(dsc_model_init_weights(p.model, DSC_INIT_AUTO, 3), "dsc_model_init_weights");
    check_library(dsc_model_reserve(p.model, b), "dsc_model_reserve");

    dsc_rng rng;
    dsc_rng_seed(&rng, 11);
    float *x = alloc_or_die(b * GEMM_IN * sizeof *x);
    int32_t *label = alloc_or_die(b * sizeof *label);
    for (size_t i = 0; i < b * GEMM_IN; i++)
        x[i] = (float)dsc_rng_uniform(&rng);
    for (size_t i = 0; i < b; i++)
        label[i] = (int32_t)dsc_rng_below(&rng, GEMM_OUT);
    p.data.n_rows = b;
    p.data.n_features = GEMM_IN;
    p.data.x = x;
    p.data.label = label;

    double best = best_time(run_descent_pass, &p, min_s);
    printf("BENCH tool=descent task=gemm setting=batch%zu threads=%d batch=%zu pass_s=%.6g "
           "gflops=%.3f\n",
           b, threads, b, best, mlp_flops(b) / best / 1e9);
    fflush(stdout);
    dsc_model_free(p.model);
    free(x);
    free(label);
    return 0;
}

/* ---- Writing the LIBSVM text of a dense set ---------------------------------------------- */

/* Append the decimal text of index and a colon to p. */
static char *put_index(char *p, size_t index)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + index % 10);
        index /= 10;
    } while (index > 0);
    while (n > 0)
        *p++ = digits[--n];
    *p++ = ':';
    return p;
}

/*
 * Append the decimal text of v, which holds at most 4 decimals (the generator rounds to
 * them), to p: the same digits as printf's "%.4f" gives, several times faster.
 */
static char *put_value(char *p, float v)
{
    long long k = llround((double)v * 1e4);
    if (k < 0) {
        *p++ = '-';
        k = -k;
    }
    long long whole = k / 10000, frac = k % 10000;
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole > 0);
    while (n > 0)
        *p++ = digits[--n];
    *p++ = '.';
    p[0] = (char)('0' + frac / 1000);
    p[1] = (char)('0' + frac / 100 % 10);
    p[2] = (char)('0' + frac / 10 % 10);
    p[3] = (char)('0' + frac % 10);
    return p + 4;
}

/* Write a dense set as LIBSVM text (1-based indices, zeros left out), renamed into place. */
static int cmd_write_libsvm(const options *opts)
{
    const char *dir = opt_text(opts, "data", "bench/out/data");
    const char *name = opt_text(opts, "set", "dense");
    const char *part = opt_text(opts, "part", "train");
    const char *out_path = opt_text(opts, "out", NULL);
    if (!out_path)
        not_available("write-libsvm: --out FILE is required");

    bench_set set;
    load_set(dir, name, part, 0, &set);
    size_t d = set.data.n_features;
    char *line = alloc_or_die(32 + d * 40);
    char tmp_path[4096];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", out_path);
    FILE *f = fopen(tmp_path, "wb");
    if (!f)
        not_available("%s: %s", tmp_path, strerror(errno));
    static char buffer[1 << 20];
    setvbuf(f, buffer, _IOFBF, sizeof buffer);

    for (size_t i = 0; i < set.data.n_rows; i++) {
        char *p = line + sprintf(line, "%d", (int)set.data.label[i]);
        const float *row = set.data.x + i * d;
        for (size_t j = 0; j < d; j++) {
            if (row[j] == 0.0f)
                continue;
            *p++ = ' ';
            p = put_index(p, j + 1);
            p = put_value(p, row[j]);
        }
        *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), f);
    }

    if (fclose(f) != 0 || rename(tmp_path, out_path) != 0)
        not_available("%s: %s", out_path, strerror(errno));
    free(line);
    free_set(&set);
    return 0;
}

/* ---- Main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: descent_bench train|libsvm|membw|gemm|write-libsvm "
                        "[--name value ...] (see bench/README.md)\n");
        return 2;
    }

    options opts;
    parse_options(argc - 2, argv + 2, &opts);
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return cmd_train(&opts);
    if (strcmp(cmd, "libsvm") == 0)
        return cmd_libsvm(&opts);
    if (strcmp(cmd, "membw") == 0)
        return cmd_membw(&opts);
    if (strcmp(cmd, "gemm") == 0)
        return cmd_gemm(&opts);
    if (strcmp(cmd, "write-libsvm") == 0)
        return cmd_write_libsvm(&opts);
    fprintf(stderr, "descent_bench: unknown command '%s'\n", cmd);
    return 2;
}
