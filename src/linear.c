/*
 * linear.c - the loss and gradient of a model without hidden layers (linear, logistic and
 * softmax regression) on dense rows, in one pass over the batch, a block of rows at a time:
 * the rows' scores, their losses and the losses' gradients with respect to the scores, and
 * their shares of the weight and bias gradients, all while the block's rows are in cache.
 * The general path (model.c) instead computes the scores of the whole batch, then the
 * losses, then reads every row again for the weight gradient; for a large batch the rows
 * have left the cache by then.
 *
 * Rows come from memory in a shuffled order, so the hardware cannot guess the next one: the
 * loop asks for the rows a few places ahead of the one it works on (a hint only), and near
 * the end of a batch for the first rows of the next one, which the trainer passes (without
 * that, a quarter of a 32-row batch waited for memory). One-score models compute the scores
 * of four rows together: their sums are independent, so their latencies overlap.
 *
 * Arithmetic. Each value is computed with the operations of the library's own kernels in
 * the same order: a score is the bias plus the products summed in input order, or in eight
 * partial sums for a model with one score (as dense.c's dot product); each row's loss and
 * score gradient come from dsc__row_loss (or for the log-loss from the function it calls,
 * several rows at once); each gradient element adds its rows' products in
 * row order. A batch of up to CHUNK_ROWS rows therefore gives, bit for bit, what the built-in
 * kernels of dense.c give, and with several scores what the sparse kernels of model.c give
 * for the same rows (OpenBLAS, when dense.c uses it, sums in an order of its own). A larger
 * batch is cut into chunks whose bounds depend on its size alone, never on the number of
 * threads; each chunk sums its rows into a gradient of its own and the chunks' gradients are
 * added in chunk order. That can differ from one sum over all rows in the last bits, and is
 * the same for any number of threads.
 *
 * Known limits: the work of a batch is split over threads only by chunks, so a batch of up
 * to CHUNK_ROWS rows (or below PARALLEL_WORK multiply-adds) runs on one thread; and models
 * beyond MAX_WEIGHTS weights take the general path, whose blocked kernels suit them better.
 * Sharing one chunk was tried and measured (rows split for the scores and losses, then the
 * inputs split for the gradient, which keeps every sum's order): on the 2-core machine
 * described at PARALLEL_WORK it made 32 and 64 rows of 100 inputs slower (0.6 to 0.8 times
 * the speed of one thread, whose 32 rows take ~3 us) and 128 to 1024 rows only 1.0 to 1.3
 * times faster, as each thread's gradient reads half its rows from the other core's cache,
 * and starting the threads and the barrier between the steps cost 1.5 to 2.5 us a batch.
 * So a small batch (the default of 32) is computed on one thread; during training, a second
 * thread instead copies the rows that come next into a ring that the batch is then read from
 * (train.c, warming; job->staged), which does not change the arithmetic.
 *
 * Known limit (speed): rows read in a shuffled order cost the latency of memory, not its
 * bandwidth. On the benchmark's virtual machine an epoch over 1,000,000 rows of 100 floats
 * takes about 4 times a sequential pass over them; a profile puts most of the pass on the
 * prefetch instructions themselves, which wait while the processor has as many lines in
 * flight as it can track (each row is about 7 lines on a page of its own, so address
 * translation misses too). Backing the rows with huge pages was tried: about 7 % faster,
 * and only when the whole array gets them, which a reader that grows its array cannot
 * promise; it was left out. Asking further ahead (16 or 32 rows, or 32 rows into the outer
 * caches and 4 into the first) measured no better than 8 rows within that machine's noise.
 * Without memory waits a row cost about 75 to 90 ns there (in cache: the log-loss's exp and
 * log1p in double were a third of it; loss.c now computes four rows' at once, which took a
 * row from 48 to 46 ns in cache on a faster host), against about 140 to 200 ns from memory.
 * Given two threads, the trainer has a second one load the rows ahead of it (train.c): an
 * epoch of the benchmark's 1,000,000 rows then took about 105 ms against 140 on one thread
 * (medians of 6 runs), and a profile still put most of this loop's time on the prefetch
 * instructions: the rows came from the other core's cache, and not much faster than from
 * memory. The second thread now copies the rows into a ring in the batch's order, which
 * the loop reads in order (66 against 78 ms an epoch on the Zen 4 VM of bench/README.md).
 */
#include "internal.h"

#include <string.h>

/* Rows whose scores are computed together and whose gradients update dW in one sweep. */
#define GROUP 4 /* dot_group is written out for four */
/* Rows whose log-losses are computed in one call (their computations overlap). */
#define LOSS_BLOCK 32 /* a multiple of GROUP */
/* A block of rows is at most this large (or one group), so that it stays in cache. */
#define BLOCK_BYTES (64 * 1024)
/* A batch is cut into chunks of about this many rows (at most MAX_CHUNKS of them). */
#define CHUNK_ROWS 256
#define MAX_CHUNKS 16
/* Above this many weights the blocked kernels of the general path are faster. */
#define MAX_WEIGHTS (1 << 16)
/* Rows are requested this many places ahead, up to PREFETCH_BYTES of each. */
#define PREFETCH_ROWS 8
#define PREFETCH_BYTES 2048
#define CACHE_LINE 64
/*
 * Below this many multiply-adds (rows x weights) a batch runs on one thread; above it a
 * batch of two or more chunks shares its chunks among the threads. Measured on a 2-core
 * KVM guest (AMD EPYC) with rows read in shuffled order from 400 MB: a parallel region of
 * two threads costs 1.2 to 2 us to start and join (a cache line takes ~490 ns to go to the
 * other core and back), while a chunk of 129 to 256 rows takes 8 to 37 us. Two threads ran
 * 257 to 1024 rows of 25 to 100 inputs mostly 1.2 to 1.9 times as fast as one (the runs
 * vary; a few came out even); below ~4,000 multiply-adds (1 input, or 4 inputs and up to
 * 300 rows) they gained nothing reliable. A busy machine gains less.
 */
#define PARALLEL_WORK 4096
/* Partial sums of a one-score model's dot product, as in dense.c. */
#define LANES 8

#define VECTOR_CLONES DSC_VECTOR_CLONES

int dsc__linear_fits(size_t n_inputs, size_t k)
{
    return k > 0 && n_inputs <= MAX_WEIGHTS / k;
}

size_t dsc__linear_chunks(size_t n)
{
    size_t chunks = (n + CHUNK_ROWS - 1) / CHUNK_ROWS;

    if (chunks < 1)
        return 1;
    return chunks < MAX_CHUNKS ? chunks : MAX_CHUNKS;
}

static size_t row_index(const dsc_linear_batch *job, size_t i)
{
    return job->rows ? job->rows[i] : i;
}

/* Row i of the batch: the trainer's copy when it staged the batch, else the data's row. */
static const float *row_of(const dsc_linear_batch *job, size_t i)
{
    if (job->staged)
        return job->staged + i * job->data->n_features;
    return job->data->x + row_index(job, i) * job->data->n_features;
}

/* Row i of the batch, or for i >= n row i - n of the next batch (job->ahead). */
static size_t row_index_ahead(const dsc_linear_batch *job, size_t i)
{
    return i < job->n ? row_index(job, i) : job->ahead[i - job->n];
}

/* A dot product of length n in LANES partial sums, added in lane order at the end. */
VECTOR_CLONES
static float dot(const float *x, const float *y, size_t n)
{
    float part[LANES] = {0};
    size_t p = 0;

    for (; p + LANES <= n; p += LANES) {
        for (int l = 0; l < LANES; l++)
            part[l] += x[p + l] * y[p + l];
    }
    for (int l = 0; p < n; p++, l++)
        part[l] += x[p] * y[p];
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += part[l];
    return sum;
}

/*
 * The dot products of GROUP rows with the same y, each summed exactly as dot() sums it; the
 * rows' sums are independent, so the processor works on all four at once.
 */
VECTOR_CLONES
static void dot_group(const float *const x[GROUP], const float *y, size_t n, float out[GROUP])
{
    float part[GROUP][LANES] = {{0}};
    size_t p = 0;

#if DSC_HAVE_V8F
    /* The same sums with the partial sums in registers (1.7 times as fast on 100 inputs). */
    dsc__v8f sum0 = {0}, sum1 = {0}, sum2 = {0}, sum3 = {0};
    for (; p + LANES <= n; p += LANES) {
        dsc__v8f yp = dsc__load8(y + p);
        sum0 += dsc__load8(x[0] + p) * yp;
        sum1 += dsc__load8(x[1] + p) * yp;
        sum2 += dsc__load8(x[2] + p) * yp;
        sum3 += dsc__load8(x[3] + p) * yp;
    }
    dsc__store8(part[0], sum0);
    dsc__store8(part[1], sum1);
    dsc__store8(part[2], sum2);
    dsc__store8(part[3], sum3);
#else
    for (; p + LANES <= n; p += LANES) {
        for (int r = 0; r < GROUP; r++) {
            for (int l = 0; l < LANES; l++)
                part[r][l] += x[r][p + l] * y[p + l];
        }
    }
#endif
    for (int l = 0; p < n; p++, l++) {
        for (int r = 0; r < GROUP; r++)
            part[r][l] += x[r][p] * y[p];
    }
    for (int r = 0; r < GROUP; r++) {
        float sum = 0.0f;
        for (int l = 0; l < LANES; l++)
            sum += part[r][l];
        out[r] = sum;
    }
}

/* Scores of count rows (k of each, k > 1): z_r = b + sum over p of x_r[p] W[p], in order. */
VECTOR_CLONES
static void scores_wide(const float *const x[GROUP], size_t count, size_t n_inputs,
                        const float *w, const float *b, size_t k, float *restrict z)
{
    for (size_t r = 0; r < count; r++)
        memcpy(z + r * k, b, k * sizeof(float));

    if (count == GROUP) {
        float *restrict z0 = z, *restrict z1 = z + k, *restrict z2 = z + 2 * k;
        float *restrict z3 = z + 3 * k;
        for (size_t p = 0; p < n_inputs; p++) {
            const float *restrict wp = w + p * k;
            float v0 = x[0][p], v1 = x[1][p], v2 = x[2][p], v3 = x[3][p];
            for (size_t j = 0; j < k; j++) {
                z0[j] += v0 * wp[j];
                z1[j] += v1 * wp[j];
                z2[j] += v2 * wp[j];
                z3[j] += v3 * wp[j];
            }
        }
        return;
    }
    for (size_t r = 0; r < count; r++) {
        float *restrict zr = z + r * k;
        for (size_t p = 0; p < n_inputs; p++) {
            const float *restrict wp = w + p * k;
            float v = x[r][p];
            for (size_t j = 0; j < k; j++)
                zr[j] += v * wp[j];
        }
    }
}

/* dW += x_r^T g_r for count rows in row order (k == 1: g_r is one number per row). */
VECTOR_CLONES
static void grad_narrow(const float *const x[GROUP], size_t count, size_t n_inputs,
                        const float *g, float *restrict dw)
{
    if (count == GROUP) {
        const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2];
        const float *restrict x3 = x[3];
        float g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
        for (size_t p = 0; p < n_inputs; p++) {
            float sum = dw[p];
            sum += x0[p] * g0;
            sum += x1[p] * g1;
            sum += x2[p] * g2;
            sum += x3[p] * g3;
            dw[p] = sum;
        }
        return;
    }
    for (size_t r = 0; r < count; r++) {
        const float *restrict xr = x[r];
        float gr = g[r];
        for (size_t p = 0; p < n_inputs; p++)
            dw[p] += xr[p] * gr;
    }
}

/* dW (n_inputs x k) += x_r^T g_r for count rows in row order, g_r being k numbers. */
VECTOR_CLONES
static void grad_wide(const float *const x[GROUP], size_t count, size_t n_inputs,
                      const float *g, size_t k, float *restrict dw)
{
    if (count == GROUP) {
        const float *restrict g0 = g, *restrict g1 = g + k, *restrict g2 = g + 2 * k;
        const float *restrict g3 = g + 3 * k;
        for (size_t p = 0; p < n_inputs; p++) {
            float *restrict dp = dw + p * k;
            float v0 = x[0][p], v1 = x[1][p], v2 = x[2][p], v3 = x[3][p];
            for (size_t j = 0; j < k; j++) {
                float sum = dp[j];
                sum += v0 * g0[j];
                sum += v1 * g1[j];
                sum += v2 * g2[j];
                sum += v3 * g3[j];
                dp[j] = sum;
            }
        }
        return;
    }
    for (size_t r = 0; r < count; r++) {
        const float *restrict gr = g + r * k;
        for (size_t p = 0; p < n_inputs; p++) {
            float *restrict dp = dw + p * k;
            float v = x[r][p];
            for (size_t j = 0; j < k; j++)
                dp[j] += v * gr[j];
        }
    }
}

/*
 * The weight of data row r (class label) in the batch loss: its sample weight times its
 * class weight over the batch's weight sum, or unweighted_share without either.
 */
static double row_share(const dsc_linear_batch *job, size_t r, int32_t label, int weighted,
                        double unweighted_share)
{
    const dsc_data *d = job->data;

    if (!weighted)
        return unweighted_share;
    double share = d->weight ? (double)d->weight[r] : 1.0;
    if (job->classifier && job->class_weight)
        share *= job->class_weight[label];
    return share / job->weight_sum;
}

/*
 * The loss of rows [first, first + count): each row's share of the batch loss into
 * row_loss, its share of the loss's gradient with respect to its scores into dz.
 */
static void row_losses(const dsc_linear_batch *job, size_t first, size_t count)
{
    const dsc_data *d = job->data;
    size_t k = job->k;
    /* Without row or class weights every row has the share 1 / weight_sum (one division). */
    int weighted = d->weight || (job->classifier && job->class_weight);
    double unweighted_share = 1.0 / job->weight_sum;

    /*
     * Binary log-loss, the common case: the rows' margins go through the loss LOSS_BLOCK at a
     * time, which computes several at once; the results are those dsc__row_loss gives row by
     * row.
     */
    if (job->loss == DSC_LOSS_LOG && k == 1 && job->classifier) {
        double margin[LOSS_BLOCK], loss[LOSS_BLOCK], grad[LOSS_BLOCK];
        double sign[LOSS_BLOCK], share[LOSS_BLOCK];
        for (size_t i = first; i < first + count; i += LOSS_BLOCK) {
            size_t block = first + count - i < LOSS_BLOCK ? first + count - i : LOSS_BLOCK;
            for (size_t g = 0; g < block; g++) {
                size_t r = row_index(job, i + g);
                int32_t label = d->label[r];
                share[g] = row_share(job, r, label, weighted, unweighted_share);
                sign[g] = label == 1 ? 1.0 : -1.0;
                margin[g] = sign[g] * (double)job->z[i + g];
            }
            dsc__log_loss_margins(margin, block, loss, grad);
            for (size_t g = 0; g < block; g++) {
                job->dz[i + g] = (float)((double)(float)share[g] * sign[g] * grad[g]);
                job->row_loss[i + g] = share[g] * loss[g];
            }
        }
        return;
    }

    for (size_t i = first; i < first + count; i++) {
        size_t r = row_index(job, i);
        int32_t label = job->classifier ? d->label[r] : 0;
        double share = row_share(job, r, label, weighted, unweighted_share);
        const float *y = job->classifier ? NULL : d->y + r * d->n_targets;
        job->row_loss[i] = share * dsc__row_loss(job->loss, job->loss_param, job->z + i * k, k,
                                                 label, y, (float)share, job->dz + i * k);
    }
}

/*
 * The scores of rows [begin, end) (a whole number of groups, or the chunk's last rows), as
 * dense.c computes them, asking for the cache lines of the rows up to PREFETCH_ROWS past
 * each group, and their labels, into the second-level cache: asked into the first level, one
 * thread took 112 to 150 ns a row, against 86 to 107 (medians 118 and 92 over 9 runs, the AMD
 * Zen 4 VM of bench/README.md). *next is the next row to ask for, ask_end the end of those.
 */
static void block_scores(const dsc_linear_batch *job, size_t begin, size_t end, size_t *next,
                         size_t ask_end)
{
    size_t n_inputs = job->n_inputs, k = job->k;
    size_t ahead_bytes = n_inputs * sizeof(float);
    size_t ask = *next;

    if (ahead_bytes > PREFETCH_BYTES)
        ahead_bytes = PREFETCH_BYTES;
    for (size_t i = begin; i < end; i += GROUP) {
        size_t count = end - i < GROUP ? end - i : GROUP;

        /*
         * (Written out here: GCC takes a function that only prefetches for one without
         * effects and drops the calls.)
         */
        for (; ask < ask_end && ask < i + count + PREFETCH_ROWS; ask++) {
            size_t r = row_index_ahead(job, ask);
            const char *ahead = ask < job->n ? (const char *)row_of(job, ask)
                                             : (const char *)(job->data->x + r * n_inputs);
            for (size_t offset = 0; offset < ahead_bytes; offset += CACHE_LINE)
                DSC_PREFETCH_L2(ahead + offset);
            DSC_PREFETCH_L2(ahead + ahead_bytes - 1); /* a row need not start on a line */
            if (job->classifier)
                DSC_PREFETCH_L2(job->data->label + r);
        }

        const float *x[GROUP];
        for (size_t r = 0; r < count; r++)
            x[r] = row_of(job, i + r);

        float *z = job->z + i * k;
        if (k == 1 && count == GROUP) {
            float sums[GROUP];
            dot_group(x, job->w, n_inputs, sums);
            for (size_t r = 0; r < count; r++)
                z[r] = job->b[0] + sums[r];
        } else if (k == 1) {
            for (size_t r = 0; r < count; r++)
                z[r] = job->b[0] + dot(x[r], job->w, n_inputs);
        } else {
            scores_wide(x, count, n_inputs, job->w, job->b, k, z);
        }
    }
    *next = ask;
}

/* The gradient of rows [begin, end): db and dW each add the rows in order. */
static void block_grad(const dsc_linear_batch *job, size_t begin, size_t end, float *dw,
                       float *db)
{
    size_t n_inputs = job->n_inputs, k = job->k;

    for (size_t i = begin; i < end; i += GROUP) {
        size_t count = end - i < GROUP ? end - i : GROUP;
        const float *x[GROUP];
        for (size_t r = 0; r < count; r++)
            x[r] = row_of(job, i + r);

        const float *dz = job->dz + i * k;
        for (size_t r = 0; r < count; r++) {
            for (size_t j = 0; j < k; j++)
                db[j] += dz[r * k + j];
        }
        if (k == 1)
            grad_narrow(x, count, n_inputs, dz, dw);
        else
            grad_wide(x, count, n_inputs, dz, k, dw);
    }
}

/*
 * Rows [begin, end) of the batch, their gradient summed into dw and db in row order. The
 * rows go in blocks of up to LOSS_BLOCK rows and BLOCK_BYTES: the scores of the block, then
 * the losses of all its rows together (each is a long chain of dependent steps, and the
 * chains of different rows overlap only when nothing stands between them), then its
 * gradient, while its rows are still in cache. Against the earlier groups of 4 rows, on
 * 1,000,000 rows of 100 floats at batch 32, a row took 44 ns instead of 48 in cache, and 66
 * instead of 70 to 73 from memory on two threads (medians of 7 to 13 runs).
 */
static void run_chunk(const dsc_linear_batch *job, size_t begin, size_t end, float *dw,
                      float *db)
{
    size_t row_bytes = job->n_inputs * sizeof(float);
    size_t block_rows = LOSS_BLOCK;
    size_t next = begin; /* the next row to ask for */
    size_t ask_end = end; /* the last chunk also asks for the next batch's first rows */

    while (block_rows > GROUP && block_rows * row_bytes > BLOCK_BYTES)
        block_rows /= 2;
    if (end == job->n)
        ask_end += job->n_ahead < PREFETCH_ROWS ? job->n_ahead : PREFETCH_ROWS;
    for (size_t i = begin; i < end; i += block_rows) {
        size_t block_end = end - i < block_rows ? end : i + block_rows;
        block_scores(job, i, block_end, &next, ask_end);
        row_losses(job, i, block_end - i);
        block_grad(job, i, block_end, dw, db);
    }
}

/* Rows of chunk c of the batch, summed into the gradient (c == 0) or partial (c - 1). */
static void run_chunk_number(const dsc_linear_batch *job, size_t c, size_t chunk_rows)
{
    size_t n = job->n, n_weights = job->n_inputs * job->k, stride = n_weights + job->k;
    size_t begin = c * chunk_rows < n ? c * chunk_rows : n;
    size_t end = n - begin < chunk_rows ? n : begin + chunk_rows;
    float *dw = c == 0 ? job->dw : job->partial + (c - 1) * stride;
    float *db = c == 0 ? job->db : job->partial + (c - 1) * stride + n_weights;

    run_chunk(job, begin, end, dw, db);
}

int dsc__linear_team(size_t n, size_t n_inputs, size_t k)
{
    size_t chunks = dsc__linear_chunks(n);
    int threads = dsc_threads();

    if (chunks < 2 || (double)n * (double)n_inputs * (double)k < PARALLEL_WORK)
        return 1;
    return (size_t)threads < chunks ? threads : (int)chunks;
}

double dsc__linear_loss_grad(const dsc_linear_batch *job)
{
    size_t n = job->n, k = job->k;
    size_t n_weights = job->n_inputs * k, stride = n_weights + k;
    size_t chunks = dsc__linear_chunks(n), chunk_rows = (n + chunks - 1) / chunks;
    int team = dsc__linear_team(n, job->n_inputs, k);

    /*
     * Chunk 0 sums into the gradient itself, chunk c > 0 into partial (c - 1). Which thread
     * runs a chunk does not change its sums, so threads take chunks as they come free (a
     * busy machine may hold one back). One thread runs them without a parallel region:
     * starting even a region of one thread took 0.6 us on the machine described at
     * PARALLEL_WORK.
     */
    if (chunks > 1)
        memset(job->partial, 0, (chunks - 1) * stride * sizeof(float));
    if (team > 1) {
#pragma omp parallel for schedule(dynamic) num_threads(team)
        for (size_t c = 0; c < chunks; c++)
            run_chunk_number(job, c, chunk_rows);
    } else {
        for (size_t c = 0; c < chunks; c++)
            run_chunk_number(job, c, chunk_rows);
    }

    /* The chunks' gradients, added in chunk order. */
    if (chunks > 1) {
        for (size_t j = 0; j < n_weights; j++) {
            float sum = job->dw[j];
            for (size_t c = 1; c < chunks; c++)
                sum += job->partial[(c - 1) * stride + j];
            job->dw[j] = sum;
        }
        for (size_t j = 0; j < k; j++) {
            for (size_t c = 1; c < chunks; c++)
                job->db[j] += job->partial[(c - 1) * stride + n_weights + j];
        }
    }

    /* The batch loss, summed over the rows in order as the general path sums it. */
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += job->row_loss[i];
    return total;
}
