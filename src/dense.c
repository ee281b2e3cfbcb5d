/*
 * dense.c - the matrix products of a dense layer over a batch, written so that the compiler
 * vectorises them and so that every output element is summed in the same order whatever the
 * number of threads: work is split over elements of the output only, never over a sum.
 *
 * Shapes: a batch of n input rows of k values (row i at base + rows[i] * stride, or at
 * base + (first + i) * stride when rows is NULL), weights W of k x m stored input-major,
 * outputs Z of n x m. The forward pass is Z = A W + b, the weight gradient dW += A^T dZ with
 * db += the column sums of dZ, and the input gradient dA = dZ W^T.
 *
 * Each blocked kernel has a plain reference version at the end; the tests compare the two.
 * Builds with OpenBLAS send the products to cblas_sgemm instead (see "The OpenBLAS back end").
 */
#include "internal.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DSC_HAVE_CBLAS
#include <cblas.h>
#include <limits.h>
#endif

/* A tile of the output kept in registers: ROW_BLOCK rows by COL_BLOCK columns. */
#define ROW_BLOCK 4
#define COL_BLOCK 16
/* Below this many multiply-adds a product runs on one thread. */
#define PARALLEL_WORK (1 << 20)
/* Partial sums of a dot product, combined in a fixed order at the end. */
#define LANES 8

#define VECTOR_CLONES DSC_VECTOR_CLONES

static const float *row_of(const dsc_rows *in, size_t i)
{
    size_t r = in->rows ? in->rows[i] : in->first + i;
    return in->base + r * in->stride;
}

#ifdef _OPENMP /* (only the parallel loops' clauses call it) */
static int use_threads(size_t n, size_t k, size_t m)
{
    return (double)n * (double)k * (double)m >= PARALLEL_WORK;
}
#endif

/* dW's rows [p0, p0 + rows) and columns [j0, j0 + cols) set to zero: a task's own outputs. */
static void zero_block(float *dw, size_t m, size_t p0, size_t rows, size_t j0, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        memset(dw + (p0 + r) * m + j0, 0, cols * sizeof(float));
}

/* A dot product of length k with LANES partial sums. */
VECTOR_CLONES
static float dot(const float *x, const float *y, size_t k)
{
    float part[LANES] = {0};
    size_t j = 0;

    for (; j + LANES <= k; j += LANES) {
        for (int l = 0; l < LANES; l++)
            part[l] += x[j + l] * y[j + l];
    }
    for (int l = 0; j < k; j++, l++)
        part[l] += x[j] * y[j];
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += part[l];
    return sum;
}

#if DSC_HAVE_V8F
/* One full tile of Z = A W + b: rows a[0..4), columns [j0, j0 + 16). */
VECTOR_CLONES
static void forward_tile(const float *const a[ROW_BLOCK], size_t k, const float *w,
                         const float *b, size_t m, size_t j0, float *const z[ROW_BLOCK])
{
    dsc__v8f c00 = dsc__load8(b + j0), c01 = dsc__load8(b + j0 + 8);
    dsc__v8f c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;

    for (size_t p = 0; p < k; p++) {
        dsc__v8f w0 = dsc__load8(w + p * m + j0), w1 = dsc__load8(w + p * m + j0 + 8);
        float a0 = a[0][p], a1 = a[1][p], a2 = a[2][p], a3 = a[3][p];
        c00 += a0 * w0;
        c01 += a0 * w1;
        c10 += a1 * w0;
        c11 += a1 * w1;
        c20 += a2 * w0;
        c21 += a2 * w1;
        c30 += a3 * w0;
        c31 += a3 * w1;
    }
    dsc__store8(z[0] + j0, c00);
    dsc__store8(z[0] + j0 + 8, c01);
    dsc__store8(z[1] + j0, c10);
    dsc__store8(z[1] + j0 + 8, c11);
    dsc__store8(z[2] + j0, c20);
    dsc__store8(z[2] + j0 + 8, c21);
    dsc__store8(z[3] + j0, c30);
    dsc__store8(z[3] + j0 + 8, c31);
}

/* One full tile of dW = A^T dZ: rows [p0, p0 + 4) and columns [j0, j0 + 16). */
VECTOR_CLONES
static void grad_w_tile(const dsc_rows *in, size_t n, size_t p0, const float *dz, size_t m,
                        size_t j0, float *dw)
{
    zero_block(dw, m, p0, ROW_BLOCK, j0, COL_BLOCK);
    float *d0 = dw + p0 * m + j0, *d1 = d0 + m, *d2 = d1 + m, *d3 = d2 + m;
    dsc__v8f c00 = dsc__load8(d0), c01 = dsc__load8(d0 + 8);
    dsc__v8f c10 = dsc__load8(d1), c11 = dsc__load8(d1 + 8);
    dsc__v8f c20 = dsc__load8(d2), c21 = dsc__load8(d2 + 8);
    dsc__v8f c30 = dsc__load8(d3), c31 = dsc__load8(d3 + 8);

    for (size_t i = 0; i < n; i++) {
        const float *a = row_of(in, i) + p0;
        dsc__v8f g0 = dsc__load8(dz + i * m + j0), g1 = dsc__load8(dz + i * m + j0 + 8);
        c00 += a[0] * g0;
        c01 += a[0] * g1;
        c10 += a[1] * g0;
        c11 += a[1] * g1;
        c20 += a[2] * g0;
        c21 += a[2] * g1;
        c30 += a[3] * g0;
        c31 += a[3] * g1;
    }
    dsc__store8(d0, c00);
    dsc__store8(d0 + 8, c01);
    dsc__store8(d1, c10);
    dsc__store8(d1 + 8, c11);
    dsc__store8(d2, c20);
    dsc__store8(d2 + 8, c21);
    dsc__store8(d3, c30);
    dsc__store8(d3 + 8, c31);
}

#else /* compilers without vector extensions: the same tiles as arrays */

static void forward_tile(const float *const a[ROW_BLOCK], size_t k, const float *w,
                         const float *b, size_t m, size_t j0, float *const z[ROW_BLOCK])
{
    float acc[ROW_BLOCK][COL_BLOCK];

    for (int r = 0; r < ROW_BLOCK; r++) {
        for (int j = 0; j < COL_BLOCK; j++)
            acc[r][j] = b[j0 + j];
    }
    for (size_t p = 0; p < k; p++) {
        for (int r = 0; r < ROW_BLOCK; r++) {
            for (int j = 0; j < COL_BLOCK; j++)
                acc[r][j] += a[r][p] * w[p * m + j0 + j];
        }
    }
    for (int r = 0; r < ROW_BLOCK; r++) {
        for (int j = 0; j < COL_BLOCK; j++)
            z[r][j0 + j] = acc[r][j];
    }
}

static void grad_w_tile(const dsc_rows *in, size_t n, size_t p0, const float *dz, size_t m,
                        size_t j0, float *dw)
{
    zero_block(dw, m, p0, ROW_BLOCK, j0, COL_BLOCK);
    for (size_t i = 0; i < n; i++) {
        const float *a = row_of(in, i) + p0;
        for (size_t r = 0; r < ROW_BLOCK; r++) {
            for (size_t j = 0; j < COL_BLOCK; j++)
                dw[(p0 + r) * m + j0 + j] += a[r] * dz[i * m + j0 + j];
        }
    }
}
#endif

#ifdef DSC_HAVE_CBLAS
/*
 * The OpenBLAS back end (built when pkg-config finds openblas; `make BLAS=no` leaves it out).
 *
 * Threads: OpenBLAS is told to use one thread, and each product is cut into tasks that
 * OpenMP hands out to its threads, each task one or more cblas_sgemm calls that write only
 * the task's own outputs. The cuts depend on the sizes alone, never on the number of
 * threads: tasks BLAS_COLS outputs wide, forward sums added BLAS_DEPTH terms per call,
 * weight-gradient sums BLAS_SCRATCH / BLAS_COLS rows per call. So every output comes from
 * the same calls on the same numbers and the results are bit-identical for any
 * dsc_set_threads count (which thread runs a task does not matter, hence the dynamic
 * schedule, which copes better with a busy machine). Letting OpenBLAS thread each product
 * itself was ruled out: how it cuts a product depends on its thread count, nothing promises
 * the same bits, and its pool of threads would compete with the OpenMP threads (which wait
 * by spinning) for the same cores. The price is smaller calls, each packing its slice of
 * the weights again: about a tenth slower than one call per product at batch 256 on one
 * thread, no slower at batch 32.
 *
 * Rows picked by index (a shuffled batch) are copied, a block of at most BLAS_SCRATCH floats
 * at a time, into a buffer on the stack, as cblas_sgemm needs evenly spaced rows; rows that
 * are already evenly spaced are passed as they are, in blocks of the same shape, so both
 * give the same bits.
 *
 * Known shortcomings: OpenBLAS uses fused multiply-adds and picks its kernels for the
 * processor at run time, so unlike the built-in kernels its results can differ in the last
 * bits between two x86-64 machines. openblas_set_num_threads() is global: it also limits
 * any other use of OpenBLAS in the same process to one thread. One-output layers keep the
 * built-in dot products.
 */

/* Not declared by every cblas.h; part of OpenBLAS's interface. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* The width of a task in outputs (columns of Z and dA, rows of dW). */
#define BLAS_COLS 128
/* The most terms of a forward sum that one call adds (the rest in later calls). */
#define BLAS_DEPTH 256
/* Floats of the stack buffer that gathers picked rows: 64 KiB. */
#define BLAS_SCRATCH (64 * 256)

/* Make OpenBLAS run each call on the calling thread (see above); cheap once set. */
static void blas_one_thread(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

#if defined(__GNUC__) && defined(__ELF__)
/*
 * OpenBLAS's pthread build: stops the threads of its pool, which it starts again for its next
 * call on more than one thread. Weak, as other builds of OpenBLAS do not have it.
 */
void blas_thread_shutdown_(void) __attribute__((weak));
#endif

/* Whether the inputs' rows can go to cblas_sgemm as they are: evenly spaced, int-sized. */
static int rows_in_place(const dsc_rows *in)
{
    return !in->rows && in->stride <= INT_MAX;
}

/*
 * The block A[i0 .. i0 + rows, p0 .. p0 + cols) of the inputs as a matrix for cblas_sgemm:
 * where it is, or copied into buf (rows * cols floats). *ld gets its row spacing.
 */
static const float *input_block(const dsc_rows *in, size_t i0, size_t rows, size_t p0,
                                size_t cols, float *buf, int *ld)
{
    if (rows_in_place(in)) {
        *ld = (int)in->stride;
        return row_of(in, i0) + p0;
    }
    for (size_t r = 0; r < rows; r++)
        memcpy(buf + r * cols, row_of(in, i0 + r) + p0, cols * sizeof(float));
    *ld = (int)cols;
    return buf;
}

/* Z = A W + b: tasks of BLAS_SCRATCH / BLAS_DEPTH rows by BLAS_COLS columns. */
static void blas_forward(const dsc_rows *in, size_t n, size_t k, const float *w,
                         const float *b, size_t m, float *z)
{
    const size_t task_rows = BLAS_SCRATCH / BLAS_DEPTH;
    size_t row_tasks = (n + task_rows - 1) / task_rows;
    size_t col_tasks = (m + BLAS_COLS - 1) / BLAS_COLS;

    blas_one_thread();
#pragma omp parallel for collapse(2) schedule(dynamic) if (use_threads(n, k, m))
    for (size_t rt = 0; rt < row_tasks; rt++) {
        for (size_t ct = 0; ct < col_tasks; ct++) {
            size_t i0 = rt * task_rows, j0 = ct * BLAS_COLS;
            size_t rows = n - i0 < task_rows ? n - i0 : task_rows;
            size_t cols = m - j0 < BLAS_COLS ? m - j0 : BLAS_COLS;
            float buf[BLAS_SCRATCH];

            /* Start from the bias, then add the sum BLAS_DEPTH terms at a time. */
            for (size_t r = 0; r < rows; r++)
                memcpy(z + (i0 + r) * m + j0, b + j0, cols * sizeof(float));
            for (size_t p0 = 0; p0 < k; p0 += BLAS_DEPTH) {
                size_t depth = k - p0 < BLAS_DEPTH ? k - p0 : BLAS_DEPTH;
                int lda;
                const float *a = input_block(in, i0, rows, p0, depth, buf, &lda);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols,
                            (int)depth, 1.0f, a, lda, w + p0 * m + j0, (int)m, 1.0f,
                            z + i0 * m + j0, (int)m);
            }
        }
    }
}

/*
 * dW = A^T dZ: tasks of BLAS_COLS rows of dW, each summing the batch in slices of rows; the
 * first slice overwrites the task's rows (beta 0), so nothing needs zeroing beforehand.
 */
static void blas_grad_w(const dsc_rows *in, size_t n, size_t k, const float *dz, size_t m,
                        float *dw)
{
    const size_t slice_rows = BLAS_SCRATCH / BLAS_COLS;
    size_t tasks = (k + BLAS_COLS - 1) / BLAS_COLS;

    blas_one_thread();
#pragma omp parallel for schedule(dynamic) if (use_threads(n, k, m))
    for (size_t t = 0; t < tasks; t++) {
        size_t p0 = t * BLAS_COLS;
        size_t cols = k - p0 < BLAS_COLS ? k - p0 : BLAS_COLS;
        float buf[BLAS_SCRATCH];

        for (size_t i0 = 0; i0 < n; i0 += slice_rows) {
            size_t rows = n - i0 < slice_rows ? n - i0 : slice_rows;
            int lda;
            const float *a = input_block(in, i0, rows, p0, cols, buf, &lda);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, (int)m, (int)rows,
                        1.0f, a, lda, dz + i0 * m, (int)m, i0 == 0 ? 0.0f : 1.0f, dw + p0 * m,
                        (int)m);
        }
    }
}

/* dA = dZ W^T: tasks of BLAS_SCRATCH / BLAS_DEPTH rows by BLAS_COLS columns of dA. */
static void blas_grad_input(const float *dz, size_t n, size_t m, const float *w, size_t k,
                            float *da)
{
    const size_t task_rows = BLAS_SCRATCH / BLAS_DEPTH;
    size_t row_tasks = (n + task_rows - 1) / task_rows;
    size_t col_tasks = (k + BLAS_COLS - 1) / BLAS_COLS;

    blas_one_thread();
#pragma omp parallel for collapse(2) schedule(dynamic) if (use_threads(n, k, m))
    for (size_t rt = 0; rt < row_tasks; rt++) {
        for (size_t ct = 0; ct < col_tasks; ct++) {
            size_t i0 = rt * task_rows, p0 = ct * BLAS_COLS;
            size_t rows = n - i0 < task_rows ? n - i0 : task_rows;
            size_t cols = k - p0 < BLAS_COLS ? k - p0 : BLAS_COLS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)m,
                        1.0f, dz + i0 * m, (int)m, w + p0 * m, (int)m, 0.0f, da + i0 * k + p0,
                        (int)k);
        }
    }
}

/* Whether a product goes to OpenBLAS: every size above 0, more than one output, int-sized. */
static int blas_takes(size_t n, size_t k, size_t m)
{
    return n > 0 && k > 0 && m > 1 && k <= INT_MAX && m <= INT_MAX;
}
#endif /* DSC_HAVE_CBLAS */

/* A partial tile at the edges: rows < ROW_BLOCK or cols < COL_BLOCK. */
static void forward_edge(const float *const a[ROW_BLOCK], size_t rows, size_t k,
                         const float *w, const float *b, size_t m, size_t j0, size_t cols,
                         float *const z[ROW_BLOCK])
{
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = j0; j < j0 + cols; j++) {
            float sum = b[j];
            for (size_t p = 0; p < k; p++)
                sum += a[r][p] * w[p * m + j];
            z[r][j] = sum;
        }
    }
}

void dsc__dense_forward(const dsc_rows *in, size_t n, size_t k, const float *w, const float *b,
                        size_t m, float *z)
{
#ifdef DSC_HAVE_CBLAS
    if (blas_takes(n, k, m)) {
        blas_forward(in, n, k, w, b, m, z);
        return;
    }
#endif
    if (m == 1) {
        /* One output: a dot product per row (linear and logistic regression). */
#pragma omp parallel for schedule(static) if (use_threads(n, k, m))
        for (size_t i = 0; i < n; i++)
            z[i] = b[0] + dot(row_of(in, i), w, k);
        return;
    }

    /* Column tiles outside, row tiles inside: a slice of W stays in cache across rows. */
    size_t row_tiles = (n + ROW_BLOCK - 1) / ROW_BLOCK;
    size_t col_tiles = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if (use_threads(n, k, m))
    for (size_t ct = 0; ct < col_tiles; ct++) {
        for (size_t rt = 0; rt < row_tiles; rt++) {
            size_t i0 = rt * ROW_BLOCK, j0 = ct * COL_BLOCK;
            size_t rows = n - i0 < ROW_BLOCK ? n - i0 : ROW_BLOCK;
            size_t cols = m - j0 < COL_BLOCK ? m - j0 : COL_BLOCK;
            const float *a[ROW_BLOCK];
            float *out[ROW_BLOCK];
            for (size_t r = 0; r < ROW_BLOCK; r++) {
                size_t row = i0 + (r < rows ? r : 0);
                a[r] = row_of(in, row);
                out[r] = z + row * m;
            }
            if (rows == ROW_BLOCK && cols == COL_BLOCK)
                forward_tile(a, k, w, b, m, j0, out);
            else
                forward_edge(a, rows, k, w, b, m, j0, cols, out);
        }
    }
}

/* A partial tile of dW, element by element in row order. */
static void grad_w_edge(const dsc_rows *in, size_t n, size_t p0, size_t rows,
                        const float *dz, size_t m, size_t j0, size_t cols, float *dw)
{
    zero_block(dw, m, p0, rows, j0, cols);
    for (size_t i = 0; i < n; i++) {
        const float *a = row_of(in, i) + p0;
        const float *g = dz + i * m + j0;
        for (size_t r = 0; r < rows; r++) {
            float *out = dw + (p0 + r) * m + j0;
            for (size_t j = 0; j < cols; j++)
                out[j] += a[r] * g[j];
        }
    }
}

/* dW of a one-output layer: dw[p] = sum of a_i[p] * dz_i over contiguous p, row by row. */
VECTOR_CLONES
static void grad_w_column(const dsc_rows *in, size_t n, size_t p0, size_t len,
                          const float *dz, float *dw)
{
    memset(dw + p0, 0, len * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        const float *a = row_of(in, i) + p0;
        float g = dz[i];
        for (size_t p = 0; p < len; p++)
            dw[p0 + p] += a[p] * g;
    }
}

void dsc__dense_grad_w(const dsc_rows *in, size_t n, size_t k, const float *dz, size_t m,
                       float *dw, float *db)
{
    /* db: each column summed over the rows in order. */
    memset(db, 0, m * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < m; j++)
            db[j] += dz[i * m + j];
    }

#ifdef DSC_HAVE_CBLAS
    if (blas_takes(n, k, m)) {
        blas_grad_w(in, n, k, dz, m, dw);
        return;
    }
#endif
    if (m == 1) {
        /* Stretches of the inputs; each element still sums over the rows in order. */
        size_t stretch = 256, stretches = (k + stretch - 1) / stretch;
#pragma omp parallel for schedule(static) if (use_threads(n, k, m))
        for (size_t s = 0; s < stretches; s++) {
            size_t p0 = s * stretch;
            grad_w_column(in, n, p0, k - p0 < stretch ? k - p0 : stretch, dz, dw);
        }
        return;
    }

    size_t row_tiles = (k + ROW_BLOCK - 1) / ROW_BLOCK;
    size_t col_tiles = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if (use_threads(n, k, m))
    for (size_t rt = 0; rt < row_tiles; rt++) {
        for (size_t ct = 0; ct < col_tiles; ct++) {
            size_t p0 = rt * ROW_BLOCK, j0 = ct * COL_BLOCK;
            size_t rows = k - p0 < ROW_BLOCK ? k - p0 : ROW_BLOCK;
            size_t cols = m - j0 < COL_BLOCK ? m - j0 : COL_BLOCK;
            if (rows == ROW_BLOCK && cols == COL_BLOCK)
                grad_w_tile(in, n, p0, dz, m, j0, dw);
            else
                grad_w_edge(in, n, p0, rows, dz, m, j0, cols, dw);
        }
    }
}

void dsc__dense_grad_input(const float *dz, size_t n, size_t m, const float *w, size_t k,
                           float *da)
{
#ifdef DSC_HAVE_CBLAS
    if (blas_takes(n, k, m)) {
        blas_grad_input(dz, n, m, w, k, da);
        return;
    }
#endif
#pragma omp parallel for schedule(static) if (use_threads(n, k, m))
    for (size_t i = 0; i < n; i++) {
        const float *g = dz + i * m;
        for (size_t p = 0; p < k; p++)
            da[i * k + p] = dot(w + p * m, g, m);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* References: the definitions, plainly                                                       */
/* ------------------------------------------------------------------------------------------ */

void dsc__dense_forward_ref(const dsc_rows *in, size_t n, size_t k, const float *w,
                            const float *b, size_t m, float *z)
{
    for (size_t i = 0; i < n; i++) {
        const float *a = row_of(in, i);
        for (size_t j = 0; j < m; j++) {
            float sum = b[j];
            if (m == 1) {
                sum += dot(a, w, k); /* one output sums in lanes, as the fast path */
            } else {
                for (size_t p = 0; p < k; p++)
                    sum += a[p] * w[p * m + j];
            }
            z[i * m + j] = sum;
        }
    }
}

void dsc__dense_grad_w_ref(const dsc_rows *in, size_t n, size_t k, const float *dz, size_t m,
                           float *dw, float *db)
{
    for (size_t j = 0; j < m; j++) {
        db[j] = 0.0f;
        for (size_t i = 0; i < n; i++)
            db[j] += dz[i * m + j];
    }
    for (size_t p = 0; p < k; p++) {
        for (size_t j = 0; j < m; j++) {
            float sum = 0.0f;
            for (size_t i = 0; i < n; i++)
                sum += row_of(in, i)[p] * dz[i * m + j];
            dw[p * m + j] = sum;
        }
    }
}

void dsc__dense_grad_input_ref(const float *dz, size_t n, size_t m, const float *w, size_t k,
                               float *da)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t p = 0; p < k; p++) {
            double sum = 0.0;
            for (size_t j = 0; j < m; j++)
                sum += (double)w[p * m + j] * (double)dz[i * m + j];
            da[i * k + p] = (float)sum;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * OpenBLAS (pthread build) starts a pool of threads when the program loads, and an idle
 * thread of that pool keeps polling for work, yielding, for about a tenth of a second after
 * its start or its last task before it sleeps. The library runs OpenBLAS on one thread per
 * call, so the pool only takes a core from the library's own threads: on the benchmark's
 * 2-core machine, two threads ran the first epochs of a short run (100,000 rows) 1.5 to 3
 * times slower than one until the pool slept. Stopping it costs nothing when it is stopped.
 *
 * Known shortcoming: like openblas_set_num_threads(), this reaches the whole process; a
 * program that runs OpenBLAS on several threads of its own at the same moment should set
 * the library's threads before it starts that work.
 */
void dsc__blas_stop_pool(void)
{
#ifdef DSC_HAVE_CBLAS
    blas_one_thread();
#if defined(__GNUC__) && defined(__ELF__)
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
#endif
#endif
}

int dsc_set_threads(int n)
{
    if (n < 1)
        return dsc__fail(DSC_EINVAL, "threads: need at least 1, got %d", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    dsc__blas_stop_pool();
    return DSC_OK;
}

int dsc_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
