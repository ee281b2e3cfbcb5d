/*
 * model.c - a stack of dense layers over one flat parameter buffer: creation, initialisation,
 * the forward pass, backpropagation of the loss, and prediction.
 *
 * Layer l computes z_l = a_{l-1} W_l + b_l and a_l = f_l(z_l), where a_0 is the input row and
 * the last layer has no activation (its z are the logits the loss takes). W_l is stored
 * input-major, so that a row of W_l is the fan-out of one input: the forward pass and the
 * weight gradient are then sums of contiguous rows scaled by one input value, and a sparse
 * input row only touches the rows of its non-zeros.
 *
 * For the trainer's sparse step (sparse.h) the model also lists the inputs a batch touched
 * (dsc__model_loss_grad_rows), keeps the first layer's dW zero outside them, and may hold
 * its first layer's weights scaled (w = w0_scale * v); the public functions fold the scale
 * back before they expose or use the weights.
 *
 * The loss and gradient of a model without hidden layers on dense rows (linear, logistic and
 * softmax regression) take the one-pass path of linear.c instead of the forward pass, the
 * losses and backpropagation one after the other; every caller of dsc_model_loss_grad gets it.
 */
#include "sparse.h"

#include <math.h>
#include <string.h>

#define MAX_LAYERS (DSC_MAX_HIDDEN + 1)

/* Batches of prediction are cut into chunks of this many rows. */
#define PREDICT_CHUNK 256

/*
 * Sparse rows read weight rows at random places; asking for the row of the non-zero this
 * many places ahead overlaps the cache misses (a hint only: results do not change). The
 * lines are asked into the second-level cache, as in linear.c: an epoch of the benchmark's
 * task 3 on one thread took a median of 116 ms against 121 asked into the first (10 runs).
 */
#define PREFETCH_AHEAD 8
#define PREFETCH(address) DSC_PREFETCH_L2(address)

/*
 * Shuffled sparse rows lie at random places: the forward pass asks for the non-zeros of the
 * rows up to ROWS_AHEAD places on, up to ROW_PREFETCH_MAX of each (see sparse_rows_z). A large
 * batch is shared among threads in blocks of SPARSE_BLOCK rows.
 */
#define ROWS_AHEAD 4
#define ROW_PREFETCH_MAX 256
#define SPARSE_BLOCK 64

/*
 * Packed rows (dsc__model_loss_grad_rows) are kept when their buffers take at most
 * 1 / PACKED_SHARE of the first layer's weights. An input's table entry is found from its
 * number times SLOT_HASH (2^32 divided by the golden ratio), keeping the top bits.
 */
#define PACKED_SHARE 4
#define SLOT_HASH 2654435761u
#define TABLE_SPARE 4

struct dsc_model {
    dsc_model_config cfg;
    size_t n_layers;
    size_t n_logits;
    dsc_layer layers[MAX_LAYERS];
    size_t n_params;
    float *params;
    float *grads;

    /* Work buffers for batches of up to capacity rows (dsc_model_reserve). */
    size_t capacity;
    size_t max_width;          /* widest layer output */
    float *z[MAX_LAYERS];      /* pre-activations, capacity * n_out each */
    float *a[MAX_LAYERS];      /* activations of hidden layers (alias z for identity) */
    float *delta;              /* capacity * max_width: gradient w.r.t. a layer's z */
    float *delta_prev;         /* the same for the layer below */
    float *probs;              /* capacity * n_outputs, for prediction */

    /* The one-pass path of a model without hidden layers on dense rows (linear.c). */
    int linear_allowed;        /* the test hook dsc__model_allow_linear; 1 by default */
    double *row_loss;          /* capacity: each row's share of the batch loss */
    float *partial;            /* the gradients of a batch's chunks beyond the first */
    uint64_t linear_batches;   /* batches computed by the one-pass path */
    const uint32_t *ahead;     /* the trainer's next rows, asked for early (or NULL) */
    size_t n_ahead;
    const float *staged;       /* the trainer's copy of the batch's rows (or NULL) */

    /*
     * The sparse step (sparse.h). The first layer's weights are stored as v with
     * w = w0_scale * v; every public function folds the scale first (see fold_scale).
     */
    double w0_scale;
    uint64_t revision;         /* see dsc__model_revision */
    uint32_t *touched;         /* inputs touched by the latest sparse-step batch */
    size_t n_touched, touched_capacity;
    int grads_dirty;           /* dW of layer 0 may be non-zero outside the touched rows */
    int rows_in_dw;            /* dW holds the touched rows (else dW is all zero) */
    uint64_t *marks;           /* a bit per input: set for the inputs listed in touched */

    /*
     * Packed rows (see dsc__model_loss_grad_rows): a batch's touched rows summed into packed,
     * in list order, instead of into dW, the inputs found through an open-addressing table
     * rather than the marks. Only when the buffers fit in a quarter of the first layer.
     */
    int rows_packed;           /* the latest list was made with the table (else the marks) */
    int packed_pending;        /* its rows are in packed and not in dW */
    float *packed;             /* touched_capacity rows of n_out */
    uint32_t *slot_of;         /* table: an input's place in the list + 1, or 0 for none */
    uint32_t *slot_at;         /* the table entry of each input listed */
    uint32_t table_shift;      /* the table has 2^(32 - table_shift) entries */
};

void dsc_model_config_init(dsc_model_config *cfg, size_t n_inputs, size_t n_outputs,
                           dsc_loss loss)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n_inputs = n_inputs;
    cfg->n_outputs = n_outputs;
    cfg->loss = loss;
    for (size_t i = 0; i < DSC_MAX_HIDDEN; i++)
        cfg->activation[i] = DSC_ACT_RELU;
}

static int check_config(const dsc_model_config *cfg)
{
    if (!cfg)
        return dsc__fail(DSC_EINVAL, "model: configuration is NULL");
    if (cfg->n_inputs == 0)
        return dsc__fail(DSC_EINVAL, "model: n_inputs must be at least 1");
    if ((unsigned)cfg->loss >= DSC_LOSS_COUNT)
        return dsc__fail(DSC_EINVAL, "model: unknown loss %d", (int)cfg->loss);
    if (dsc_loss_is_classification(cfg->loss) && cfg->n_outputs < 2)
        return dsc__fail(DSC_EINVAL, "model: a classifier needs at least 2 classes, got %zu",
                         cfg->n_outputs);
    if (cfg->n_outputs == 0)
        return dsc__fail(DSC_EINVAL, "model: n_outputs must be at least 1");
    if (cfg->n_inputs > UINT32_MAX || cfg->n_outputs > (1u << 24))
        return dsc__fail(DSC_ELIMIT, "model: %zu inputs and %zu outputs are beyond the limits",
                         cfg->n_inputs, cfg->n_outputs);
    if (cfg->n_hidden > DSC_MAX_HIDDEN)
        return dsc__fail(DSC_ELIMIT, "model: at most %d hidden layers, got %zu",
                         DSC_MAX_HIDDEN, cfg->n_hidden);
    for (size_t i = 0; i < cfg->n_hidden; i++) {
        if (cfg->hidden[i] == 0 || cfg->hidden[i] > (1u << 24))
            return dsc__fail(DSC_EINVAL, "model: hidden layer %zu has width %zu", i + 1,
                             cfg->hidden[i]);
        if ((unsigned)cfg->activation[i] >= DSC_ACT_COUNT)
            return dsc__fail(DSC_EINVAL, "model: hidden layer %zu has an unknown activation",
                             i + 1);
    }
    if (!isfinite(cfg->loss_param) || cfg->loss_param < 0.0f)
        return dsc__fail(DSC_EINVAL, "model: loss_param must be finite and >= 0");
    if (!isfinite(cfg->act_param))
        return dsc__fail(DSC_EINVAL, "model: act_param must be finite");
    return DSC_OK;
}

dsc_model *dsc_model_new(const dsc_model_config *cfg, int *err)
{
    int rc = check_config(cfg);
    if (rc < 0)
        return dsc__fail_null(err, rc);

    dsc_model *m = dsc__calloc(1, sizeof *m);
    if (!m) {
        dsc__fail(DSC_ENOMEM, "model: out of memory");
        return dsc__fail_null(err, DSC_ENOMEM);
    }
    m->cfg = *cfg;
    m->w0_scale = 1.0;
    m->linear_allowed = 1;
    m->n_layers = cfg->n_hidden + 1;
    int binary = dsc_loss_is_classification(cfg->loss) && cfg->loss != DSC_LOSS_SOFTMAX &&
                 cfg->n_outputs == 2;
    m->n_logits = binary ? 1 : cfg->n_outputs;

    /* Lay the layers out one after the other: weights, then biases. */
    size_t n_in = cfg->n_inputs, total = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        int last = l == cfg->n_hidden;
        size_t n_out = last ? m->n_logits : cfg->hidden[l];
        size_t n_weights, count;
        if (dsc__mul_overflows(n_in, n_out, &n_weights) || n_weights > SIZE_MAX / 8 - n_out ||
            total > SIZE_MAX / 8 - n_weights - n_out) {
            dsc_model_free(m);
            dsc__fail(DSC_ELIMIT, "model: too many parameters");
            return dsc__fail_null(err, DSC_ELIMIT);
        }
        count = n_weights + n_out;
        m->layers[l] = (dsc_layer){
            .n_in = n_in,
            .n_out = n_out,
            .activation = last ? DSC_ACT_IDENTITY : cfg->activation[l],
            .first = total,
            .count = count,
        };
        total += count;
        if (n_out > m->max_width)
            m->max_width = n_out;
        n_in = n_out;
    }
    m->n_params = total;

    m->params = dsc__calloc(total, sizeof(float));
    m->grads = dsc__calloc(total, sizeof(float));
    if (!m->params || !m->grads) {
        dsc_model_free(m);
        dsc__fail(DSC_ENOMEM, "model: out of memory for %zu parameters", total);
        return dsc__fail_null(err, DSC_ENOMEM);
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        dsc_layer *layer = &m->layers[l];
        size_t n_weights = layer->n_in * layer->n_out;
        layer->w = m->params + layer->first;
        layer->b = layer->w + n_weights;
        layer->dw = m->grads + layer->first;
        layer->db = layer->dw + n_weights;
    }
    if (err)
        *err = DSC_OK;
    return m;
}

static void free_buffers(dsc_model *m)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        if (m->a[l] != m->z[l])
            dsc__free(m->a[l]);
        dsc__free(m->z[l]);
        m->a[l] = m->z[l] = NULL;
    }
    dsc__free(m->delta);
    dsc__free(m->delta_prev);
    dsc__free(m->probs);
    dsc__free(m->row_loss);
    dsc__free(m->partial);
    m->delta = m->delta_prev = m->probs = m->partial = NULL;
    m->row_loss = NULL;
    m->capacity = 0;
}

void dsc_model_free(dsc_model *m)
{
    if (!m)
        return;
    free_buffers(m);
    dsc__free(m->params);
    dsc__free(m->grads);
    dsc__free(m->marks);
    dsc__free(m->touched);
    dsc__free(m->packed);
    dsc__free(m->slot_of);
    dsc__free(m->slot_at);
    dsc__free(m);
}

/*
 * Fold the first layer's scale into its stored weights: v = scale * v, scale = 1. Called by
 * every public function that exposes or uses the weights, so that only the trainer's sparse
 * step ever sees a scale other than 1. Rounds each weight once.
 */
static void fold_scale(dsc_model *m)
{
    if (m->w0_scale == 1.0)
        return;
    double scale = m->w0_scale;
    float *w = m->layers[0].w;
    size_t n_weights = m->layers[0].n_in * m->layers[0].n_out;
    for (size_t i = 0; i < n_weights; i++)
        w[i] = (float)(scale * (double)w[i]);
    m->w0_scale = 1.0;
    m->revision++;
}

void dsc__model_fold(dsc_model *m)
{
    fold_scale(m);
}

uint64_t dsc__model_revision(const dsc_model *m)
{
    return m->revision;
}

double dsc__model_scale(const dsc_model *m)
{
    return m->w0_scale;
}

void dsc__model_set_scale(dsc_model *m, double scale)
{
    m->w0_scale = scale;
}

float *dsc__model_raw_params(dsc_model *m)
{
    return m->params;
}

void dsc__model_layer_range(const dsc_model *m, size_t i, size_t *first, size_t *count,
                            size_t *n_in, size_t *n_out)
{
    *first = m->layers[i].first;
    *count = m->layers[i].count;
    *n_in = m->layers[i].n_in;
    *n_out = m->layers[i].n_out;
}

const dsc_model_config *dsc_model_config_of(const dsc_model *m)
{
    return &m->cfg;
}

size_t dsc_model_n_params(const dsc_model *m)
{
    return m->n_params;
}

float *dsc_model_params(dsc_model *m)
{
    fold_scale(m);
    m->revision++; /* the caller may write through the pointer */
    return m->params;
}

/* Put the rows of a packed batch into dW, which is zero everywhere until then. */
static void unpack_rows_grad(dsc_model *m)
{
    size_t n_out = m->layers[0].n_out;

    if (!m->packed_pending)
        return;
    for (size_t i = 0; i < m->n_touched; i++)
        memcpy(m->layers[0].dw + (size_t)m->touched[i] * n_out, m->packed + i * n_out,
               n_out * sizeof(float));
    m->packed_pending = 0;
    m->rows_in_dw = 1;
}

float *dsc_model_grads(dsc_model *m)
{
    unpack_rows_grad(m);
    m->grads_dirty = 1; /* the caller may write anywhere in it */
    return m->grads;
}

float *dsc__model_raw_grads(dsc_model *m)
{
    return m->grads;
}

size_t dsc_model_n_layers(const dsc_model *m)
{
    return m->n_layers;
}

size_t dsc_model_n_logits(const dsc_model *m)
{
    return m->n_logits;
}

int dsc_model_is_classifier(const dsc_model *m)
{
    return dsc_loss_is_classification(m->cfg.loss);
}

int dsc_model_layer(dsc_model *m, size_t i, dsc_layer *out)
{
    if (!m || !out || i >= m->n_layers)
        return dsc__fail(DSC_EINVAL, "model: no layer %zu", i);
    fold_scale(m);
    unpack_rows_grad(m);
    m->revision++; /* the caller may write through the pointers, */
    m->grads_dirty = 1; /* the gradient's too */
    *out = m->layers[i];
    return DSC_OK;
}

int dsc_model_copy_weights(dsc_model *dst, const dsc_model *src)
{
    if (!dst || !src)
        return dsc__fail(DSC_EINVAL, "model: NULL model");
    if (dst->n_params != src->n_params || dst->n_layers != src->n_layers)
        return dsc__fail(DSC_ESHAPE, "model: copying weights between different shapes");
    memcpy(dst->params, src->params, src->n_params * sizeof(float));

    /* A scaled source gives the weights that folding it would give; src is left as it is. */
    if (src->w0_scale != 1.0) {
        size_t n_weights = src->layers[0].n_in * src->layers[0].n_out;
        for (size_t i = 0; i < n_weights; i++)
            dst->params[i] = (float)(src->w0_scale * (double)src->params[i]);
    }
    dst->w0_scale = 1.0;
    dst->revision++;
    return DSC_OK;
}

static int is_relu_family(dsc_activation act)
{
    return act == DSC_ACT_RELU || act == DSC_ACT_LEAKY_RELU || act == DSC_ACT_ELU ||
           act == DSC_ACT_GELU;
}

int dsc_model_init_weights(dsc_model *m, dsc_init init, uint64_t seed)
{
    if (!m || (unsigned)init >= DSC_INIT_COUNT)
        return dsc__fail(DSC_EINVAL, "model: unknown initialisation %d", (int)init);

    dsc_rng rng;
    dsc_rng_seed(&rng, seed);
    memset(m->params, 0, m->n_params * sizeof(float));
    m->w0_scale = 1.0;
    m->revision++;

    for (size_t l = 0; l < m->n_layers; l++) {
        dsc_layer *layer = &m->layers[l];
        dsc_init kind = init;
        if (kind == DSC_INIT_AUTO) {
            if (m->n_layers == 1)
                kind = DSC_INIT_ZEROS;
            else if (is_relu_family(layer->activation))
                kind = DSC_INIT_HE_UNIFORM;
            else
                kind = DSC_INIT_XAVIER_UNIFORM;
        }

        double fan_in = (double)layer->n_in, fan_out = (double)layer->n_out;
        double xavier_var = 2.0 / (fan_in + fan_out), he_var = 2.0 / fan_in;
        size_t n_weights = layer->n_in * layer->n_out;
        for (size_t i = 0; i < n_weights && kind != DSC_INIT_ZEROS; i++) {
            double value;
            switch (kind) {
            case DSC_INIT_XAVIER_UNIFORM: /* U(-a, a) has variance a^2 / 3 */
                value = (2.0 * dsc_rng_uniform(&rng) - 1.0) * sqrt(3.0 * xavier_var);
                break;
            case DSC_INIT_XAVIER_NORMAL:
                value = dsc_rng_normal(&rng) * sqrt(xavier_var);
                break;
            case DSC_INIT_HE_UNIFORM:
                value = (2.0 * dsc_rng_uniform(&rng) - 1.0) * sqrt(3.0 * he_var);
                break;
            default: /* DSC_INIT_HE_NORMAL */
                value = dsc_rng_normal(&rng) * sqrt(he_var);
                break;
            }
            layer->w[i] = (float)value;
        }
    }
    return DSC_OK;
}

/* 1 when the model has no hidden layer and is small enough for the one-pass path. */
static int linear_fits(const dsc_model *m)
{
    return m->n_layers == 1 && dsc__linear_fits(m->layers[0].n_in, m->layers[0].n_out);
}

void dsc__model_allow_linear(dsc_model *m, int allow)
{
    m->linear_allowed = allow;
}

uint64_t dsc__model_linear_batches(const dsc_model *m)
{
    return m->linear_batches;
}

int dsc_model_reserve(dsc_model *m, size_t max_batch)
{
    if (!m || max_batch == 0)
        return dsc__fail(DSC_EINVAL, "model: batch size must be at least 1");
    if (max_batch <= m->capacity)
        return DSC_OK;

    size_t widest = m->max_width > m->cfg.n_outputs ? m->max_width : m->cfg.n_outputs;
    size_t cells;
    if (dsc__mul_overflows(max_batch, widest, &cells) || cells > SIZE_MAX / sizeof(float))
        return dsc__fail(DSC_ELIMIT, "model: a batch of %zu rows is too large", max_batch);

    free_buffers(m);
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t n = max_batch * m->layers[l].n_out;
        m->z[l] = dsc__alloc(n * sizeof(float));
        if (!m->z[l])
            goto out_of_memory;
        if (m->layers[l].activation == DSC_ACT_IDENTITY) {
            m->a[l] = m->z[l];
        } else {
            m->a[l] = dsc__alloc(n * sizeof(float));
            if (!m->a[l])
                goto out_of_memory;
        }
    }
    m->delta = dsc__alloc(cells * sizeof(float));
    m->delta_prev = dsc__alloc(cells * sizeof(float));
    m->probs = dsc__alloc(cells * sizeof(float));
    if (!m->delta || !m->delta_prev || !m->probs)
        goto out_of_memory;

    /* The one-pass path's row losses and chunk gradients, for a model that can take it. */
    if (linear_fits(m)) {
        size_t extra = dsc__linear_chunks(max_batch) - 1;
        m->row_loss = dsc__alloc(dsc__mul(max_batch, sizeof(double)));
        if (!m->row_loss)
            goto out_of_memory;
        if (extra > 0) {
            m->partial = dsc__alloc(dsc__mul(extra * m->n_params, sizeof(float)));
            if (!m->partial)
                goto out_of_memory;
        }
    }
    m->capacity = max_batch;
    return DSC_OK;

out_of_memory:
    free_buffers(m);
    return dsc__fail(DSC_ENOMEM, "model: out of memory for a batch of %zu rows", max_batch);
}

int dsc__model_reserve_rows(dsc_model *m, size_t max_touched)
{
    size_t n_inputs = m->cfg.n_inputs, n_out = m->layers[0].n_out;

    if (max_touched > n_inputs)
        max_touched = n_inputs;
    if (!m->marks) {
        m->marks = dsc__calloc(n_inputs / 64 + 1, sizeof(uint64_t));
        if (!m->marks)
            return dsc__fail(DSC_ENOMEM, "model: out of memory for %zu input marks", n_inputs);
    }
    if (max_touched <= m->touched_capacity)
        return DSC_OK;

    /*
     * Packed rows, when their buffers take at most 1 / PACKED_SHARE of the first layer's
     * weights (a batch touches few of its inputs): the rows, the list's table entries, and
     * a table of at least TABLE_SPARE times the list's length, so that most searches end
     * at the first entry they look at.
     */
    size_t table_size = 2;
    uint32_t shift = 31;
    while (table_size < TABLE_SPARE * max_touched && shift > 2) {
        table_size *= 2;
        shift--;
    }
    double packed_bytes = ((double)max_touched * (double)(n_out + 1) + (double)table_size) *
                          sizeof(float);
    bool with_packed = table_size >= TABLE_SPARE * max_touched &&
                       packed_bytes * PACKED_SHARE <= (double)n_inputs * (double)n_out *
                                                      sizeof(float);

    uint32_t *touched = dsc__alloc(dsc__mul(max_touched, sizeof(uint32_t)));
    float *packed = NULL;
    uint32_t *slot_at = NULL, *slot_of = NULL;
    if (touched && with_packed) {
        packed = dsc__alloc(dsc__mul(max_touched, n_out * sizeof(float)));
        slot_at = packed ? dsc__alloc(dsc__mul(max_touched, sizeof(uint32_t))) : NULL;
        slot_of = slot_at ? dsc__calloc(table_size, sizeof(uint32_t)) : NULL;
    }
    if (!touched || (with_packed && !slot_of)) {
        dsc__free(touched);
        dsc__free(packed);
        dsc__free(slot_at);
        return dsc__fail(DSC_ENOMEM, "model: out of memory for %zu touched inputs",
                         max_touched);
    }
    dsc__free(m->touched);
    dsc__free(m->packed);
    dsc__free(m->slot_at);
    dsc__free(m->slot_of);
    m->touched = touched;
    m->packed = packed;
    m->slot_at = slot_at;
    m->slot_of = slot_of;
    m->table_shift = shift;
    m->touched_capacity = max_touched;

    /* The previous list is forgotten: its rows of dW, its marks, a pending packed batch. */
    m->n_touched = 0;
    m->grads_dirty = 1;
    m->rows_in_dw = 0;
    m->rows_packed = 0;
    m->packed_pending = 0;
    memset(m->marks, 0, (n_inputs / 64 + 1) * sizeof(uint64_t));
    return DSC_OK;
}

/* Row index i of a batch: rows[i], or i itself (offset by first) when rows is NULL. */
static size_t row_at(const uint32_t *rows, size_t first, size_t i)
{
    return rows ? rows[i] : first + i;
}

static int check_data(const dsc_model *m, const dsc_data *d, const uint32_t *rows,
                      size_t first, size_t n, int need_targets, int rows_checked)
{
    if (!d)
        return dsc__fail(DSC_EINVAL, "data: NULL");
    if (d->n_features != m->cfg.n_inputs)
        return dsc__fail(DSC_ESHAPE, "data: %zu features, the model takes %zu", d->n_features,
                         m->cfg.n_inputs);
    if (!d->x && !(d->row_ptr && d->col && d->val))
        return dsc__fail(DSC_EINVAL, "data: neither dense nor sparse features are given");
    if (!rows && (first > d->n_rows || n > d->n_rows - first))
        return dsc__fail(DSC_EINVAL, "data: rows %zu..%zu beyond the %zu rows", first,
                         first + n, d->n_rows);

    for (size_t i = 0; rows && !rows_checked && i < n; i++) {
        if (rows[i] >= d->n_rows)
            return dsc__fail(DSC_EINVAL, "data: row %u beyond the %zu rows", rows[i],
                             d->n_rows);
    }
    if (!need_targets)
        return DSC_OK;

    if (dsc_model_is_classifier(m)) {
        if (!d->label)
            return dsc__fail(DSC_EINVAL, "data: a classifier needs class labels");
        for (size_t i = 0; !rows_checked && i < n; i++) {
            int32_t label = d->label[row_at(rows, first, i)];
            if (label < 0 || (size_t)label >= m->cfg.n_outputs)
                return dsc__fail(DSC_EINVAL, "data: row %zu has class %d, outside 0..%zu",
                                 row_at(rows, first, i) + 1, (int)label,
                                 m->cfg.n_outputs - 1);
        }
    } else if (!d->y || d->n_targets != m->cfg.n_outputs) {
        return dsc__fail(DSC_ESHAPE, "data: the model predicts %zu targets, the data has %zu",
                         m->cfg.n_outputs, d->y ? d->n_targets : 0);
    }
    return DSC_OK;
}

/* out[0..n) += scale * w[0..n) */
static void axpy(float *restrict out, float scale, const float *restrict w, size_t n)
{
    for (size_t j = 0; j < n; j++)
        out[j] += scale * w[j];
}

/*
 * The first layer's z of sparse row r (n_out values): the bias plus the weight row of each
 * non-zero times its value and the layer's scale, added in the order of the non-zeros.
 * A scale of 1 leaves the value as it is, so that multiply is skipped then (same result).
 * A layer with one output (binary and linear regression) keeps its sum in a register.
 */
static void sparse_row_z(const dsc_layer *layer, const dsc_data *d, size_t r, double scale,
                         float *restrict z)
{
    size_t n_out = layer->n_out;
    const float *w = layer->w;
    const uint32_t *col = d->col;
    const float *val = d->val;
    uint64_t p = d->row_ptr[r], end = d->row_ptr[r + 1];
    uint64_t end_prefetch = end > PREFETCH_AHEAD ? end - PREFETCH_AHEAD : 0;

    if (n_out == 1 && scale == 1.0) {
        float sum = layer->b[0];
        for (; p < end_prefetch; p++) {
            PREFETCH(w + col[p + PREFETCH_AHEAD]);
            sum += val[p] * w[col[p]];
        }
        for (; p < end; p++)
            sum += val[p] * w[col[p]];
        z[0] = sum;
        return;
    }

    memcpy(z, layer->b, n_out * sizeof(float));
    for (; p < end; p++) {
        if (p < end_prefetch)
            PREFETCH(w + (size_t)col[p + PREFETCH_AHEAD] * n_out);
        float value = scale == 1.0 ? val[p] : (float)((double)val[p] * scale);
        axpy(z, value, w + (size_t)col[p] * n_out, n_out);
    }
}

/*
 * The first layer's z for rows [begin, end) of a sparse batch (see sparse_row_z), asking
 * for the non-zeros of the rows up to ROWS_AHEAD places on (and for the offsets of the row
 * after those) while it works: shuffled rows lie at random places, so each would otherwise
 * start with cache misses. The requests are hints only; results do not change.
 */
static void sparse_rows_z(const dsc_layer *layer, const dsc_data *d, const uint32_t *rows,
                          size_t first, size_t begin, size_t end, double scale, float *z)
{
    size_t next = begin + 1; /* the next row to ask for */

    for (size_t i = begin; i < end; i++) {
        /* Written out here: GCC takes a function that only prefetches for one without
         * effects and drops the calls. */
        for (; next < end && next <= i + ROWS_AHEAD; next++) {
            size_t r = row_at(rows, first, next);
            uint64_t from = d->row_ptr[r], to = d->row_ptr[r + 1];
            if (to - from > ROW_PREFETCH_MAX)
                to = from + ROW_PREFETCH_MAX;
            for (uint64_t p = from; p < to; p += 64 / sizeof(float)) {
                PREFETCH(d->col + p);
                PREFETCH(d->val + p);
            }
            if (to > from) { /* the last line, when the row does not start one */
                PREFETCH(d->col + to - 1);
                PREFETCH(d->val + to - 1);
            }
            if (next + 1 < end)
                PREFETCH(d->row_ptr + row_at(rows, first, next + 1));
        }
        sparse_row_z(layer, d, row_at(rows, first, i), scale, z + i * layer->n_out);
    }
}

/*
 * The first layer's z for sparse input rows. Rows are independent, so a large batch is
 * shared among threads in blocks; a small one stays on this thread, which spares starting a
 * parallel region for a few microseconds of work.
 */
static void forward_sparse(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t first,
                           size_t n)
{
    const dsc_layer *layer = &m->layers[0];
    double scale = m->w0_scale;

    if (n * layer->n_out < 4096) {
        sparse_rows_z(layer, d, rows, first, 0, n, scale, m->z[0]);
        return;
    }
    size_t n_blocks = (n + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < n_blocks; b++) {
        size_t end = (b + 1) * SPARSE_BLOCK < n ? (b + 1) * SPARSE_BLOCK : n;
        sparse_rows_z(layer, d, rows, first, b * SPARSE_BLOCK, end, scale, m->z[0]);
    }
}

/* The input of layer l as rows of a matrix. */
static dsc_rows layer_input(const dsc_model *m, size_t l, const dsc_data *d,
                            const uint32_t *rows, size_t first)
{
    if (l > 0)
        return (dsc_rows){.base = m->a[l - 1], .stride = m->layers[l].n_in};
    return (dsc_rows){.base = d->x, .rows = rows, .first = first, .stride = d->n_features};
}

/* The forward pass of every layer; the logits end in m->z[last]. */
static void forward(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t first,
                    size_t n)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        const dsc_layer *layer = &m->layers[l];
        if (l == 0 && !d->x) {
            forward_sparse(m, d, rows, first, n);
        } else {
            if (l == 0)
                fold_scale(m); /* the dense kernels take the weights as they are */
            dsc_rows in = layer_input(m, l, d, rows, first);
            dsc__dense_forward(&in, n, layer->n_in, layer->w, layer->b, layer->n_out, m->z[l]);
        }
        dsc__act_forward(layer->activation, m->cfg.act_param, m->z[l], m->a[l],
                         n * layer->n_out);
    }
}

/* axpy, telling whether any result is an infinity or a NaN (1) or none is (0). */
static uint32_t axpy_not_finite(float *restrict out, float scale, const float *restrict w,
                                size_t n)
{
    uint32_t bad = 0;

    for (size_t j = 0; j < n; j++) {
        out[j] += scale * w[j];
        bad |= dsc__not_finite(out[j]);
    }
    return bad;
}

/*
 * The place in the list of input c, listed (with a zero row of n_out values in packed) when
 * it is met for the first time: its table entry is the first of SLOT_HASH * c's top bits and
 * the entries after it that is free or holds c.
 */
static inline size_t packed_slot(dsc_model *restrict m, uint32_t c, size_t n_out,
                                 size_t *restrict listed)
{
    uint32_t shift = m->table_shift, mask = (UINT32_C(1) << (32 - shift)) - 1;
    uint32_t at = (uint32_t)(c * SLOT_HASH) >> shift, slot;

    while ((slot = m->slot_of[at]) != 0 && m->touched[slot - 1] != c)
        at = (at + 1) & mask;
    if (slot != 0)
        return slot - 1;
    size_t place = (*listed)++;
    m->touched[place] = c;
    m->slot_at[place] = at;
    m->slot_of[at] = (uint32_t)place + 1;
    for (size_t j = 0; j < n_out; j++)
        m->packed[place * n_out + j] = 0.0f;
    return place;
}

/*
 * The first layer's gradient for a batch of sparse rows with packed rows (see
 * backward_sparse): the bias gradient, and each non-zero's share summed into the packed row
 * of its input. Returns 1 when a value written is not finite.
 */
static uint32_t backward_packed(dsc_model *m, const dsc_data *d, const uint32_t *rows,
                                const float *delta, size_t n)
{
    dsc_layer *layer = &m->layers[0];
    size_t n_out = layer->n_out, listed = m->n_touched;
    const uint32_t *col = d->col;
    const float *val = d->val;
    float *packed = m->packed;
    uint32_t bad = 0;

    for (size_t i = 0; i < n; i++) {
        size_t r = row_at(rows, 0, i);
        const float *dz = delta + i * n_out;
        uint64_t p = d->row_ptr[r], end = d->row_ptr[r + 1];
        axpy(layer->db, 1.0f, dz, n_out);
        if (n_out == 1) { /* a loop of its own, with the sum in registers */
            float dz0 = dz[0];
            for (; p < end; p++) {
                size_t place = packed_slot(m, col[p], 1, &listed);
                float sum = packed[place] + val[p] * dz0; /* as axpy computes it */
                packed[place] = sum;
                bad |= dsc__not_finite(sum);
            }
            continue;
        }
        for (; p < end; p++) {
            size_t place = packed_slot(m, col[p], n_out, &listed);
            bad |= axpy_not_finite(packed + place * n_out, val[p], dz, n_out);
        }
    }
    m->n_touched = listed;
    return bad;
}

/*
 * The first layer's gradient for sparse input: the bias gradient, and the weight rows of
 * the non-zeros. Rows of the batch can share a feature, so the batch is walked in order.
 *
 * With collect, every input used is listed once in m->touched (the caller has checked that
 * the list has room), found through the marks and its row summed into dW or, when
 * m->rows_packed, found through the table and its row summed into m->packed; and the result
 * says whether every value written into those rows is finite. That is whether the rows end
 * finite, without reading them again: they start at zero, and a sum that has reached an
 * infinity or a NaN never comes back to a finite value. clear_rows_grad clears the marks or
 * the table through the list. Without collect the result is 1.
 */
static bool backward_sparse(dsc_model *m, const dsc_data *d, const uint32_t *rows,
                            const float *delta, size_t n, int collect)
{
    dsc_layer *layer = &m->layers[0];
    size_t n_out = layer->n_out;
    const uint32_t *restrict col = d->col;
    const float *restrict val = d->val;
    float *restrict dw = layer->dw;
    uint64_t *restrict marks = m->marks;
    uint32_t *restrict touched = m->touched;
    size_t n_touched = m->n_touched;
    uint32_t bad = 0;

    if (collect && m->rows_packed)
        return !backward_packed(m, d, rows, delta, n);
    for (size_t i = 0; i < n; i++) {
        size_t r = row_at(rows, 0, i);
        const float *dz = delta + i * n_out;
        axpy(layer->db, 1.0f, dz, n_out);
        uint64_t p = d->row_ptr[r], end = d->row_ptr[r + 1];
        uint64_t end_prefetch = end > PREFETCH_AHEAD ? end - PREFETCH_AHEAD : 0;

        if (!collect) {
            for (; p < end; p++) {
                if (p < end_prefetch)
                    PREFETCH(dw + (size_t)col[p + PREFETCH_AHEAD] * n_out);
                axpy(dw + (size_t)col[p] * n_out, val[p], dz, n_out);
            }
            continue;
        }
        /* Each input is listed the first time it is met (a branch, not a blind write of the
         * mark word: that would chain every input of a word through memory). */
        if (n_out == 1) {
            float g = dz[0];
            for (; p < end; p++) {
                if (p < end_prefetch)
                    PREFETCH(dw + col[p + PREFETCH_AHEAD]);
                uint32_t c = col[p];
                uint64_t bit = (uint64_t)1 << (c % 64);
                if (!(marks[c / 64] & bit)) {
                    marks[c / 64] |= bit;
                    touched[n_touched++] = c;
                }
                float sum = dw[c] + val[p] * g; /* as axpy computes it */
                dw[c] = sum;
                bad |= dsc__not_finite(sum);
            }
            continue;
        }
        for (; p < end; p++) {
            if (p < end_prefetch)
                PREFETCH(dw + (size_t)col[p + PREFETCH_AHEAD] * n_out);
            uint32_t c = col[p];
            uint64_t bit = (uint64_t)1 << (c % 64);
            if (!(marks[c / 64] & bit)) {
                marks[c / 64] |= bit;
                touched[n_touched++] = c;
            }
            bad |= axpy_not_finite(dw + (size_t)c * n_out, val[p], dz, n_out);
        }
    }
    m->n_touched = n_touched;
    return !bad;
}

/*
 * Backpropagate m->delta (the gradient w.r.t. the logits, already scaled by each sample's
 * share of the batch loss) down to the first layer, summing into the gradient buffer.
 * Returns backward_sparse's result for sparse input, 1 otherwise.
 */
static bool backward(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                     int collect)
{
    for (size_t l = m->n_layers; l-- > 0;) {
        dsc_layer *layer = &m->layers[l];
        size_t n_in = layer->n_in, n_out = layer->n_out;

        if (l == 0 && !d->x)
            return backward_sparse(m, d, rows, m->delta, n, collect);
        dsc_rows in = layer_input(m, l, d, rows, 0);
        dsc__dense_grad_w(&in, n, n_in, m->delta, n_out, layer->dw, layer->db);
        if (l == 0)
            break;

        /* delta_{l-1} = (delta W^T) * f'(z_{l-1}) */
        dsc__dense_grad_input(m->delta, n, n_out, layer->w, n_in, m->delta_prev);
        dsc__act_backward(m->layers[l - 1].activation, m->cfg.act_param, m->z[l - 1],
                          m->a[l - 1], m->delta_prev, n * n_in);

        float *swap = m->delta;
        m->delta = m->delta_prev;
        m->delta_prev = swap;
    }
    return true;
}

/*
 * Add the penalty on the weights (not the biases) of layers from_layer and up to *loss and,
 * when grad, to their gradient. sum_sq starts at first_sq, the sum of squares of the layers
 * below from_layer (0 when from_layer is 0).
 */
static void add_penalty(dsc_model *m, const dsc_objective *obj, int grad, size_t from_layer,
                        double first_sq, double *loss)
{
    if (!obj || (obj->l1 == 0.0 && obj->l2 == 0.0))
        return;

    double sum_abs = 0.0, sum_sq = first_sq;
    float l1 = (float)obj->l1, l2 = (float)obj->l2;
    for (size_t l = from_layer; l < m->n_layers; l++) {
        dsc_layer *layer = &m->layers[l];
        size_t n_weights = layer->n_in * layer->n_out;
        for (size_t i = 0; i < n_weights; i++) {
            float w = layer->w[i];
            sum_abs += fabs((double)w);
            sum_sq += (double)w * (double)w;
            if (grad) {
                float sign = w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f);
                layer->dw[i] += l2 * w + l1 * sign;
            }
        }
    }
    *loss += obj->l1 * sum_abs + 0.5 * obj->l2 * sum_sq;
}

static int check_objective(const dsc_model *m, const dsc_objective *obj)
{
    if (!obj)
        return DSC_OK;
    if (!(obj->l1 >= 0.0) || !(obj->l2 >= 0.0) || !isfinite(obj->l1) || !isfinite(obj->l2))
        return dsc__fail(DSC_EINVAL, "objective: l1 and l2 must be finite and >= 0");
    for (size_t c = 0; obj->class_weight && c < m->cfg.n_outputs; c++) {
        if (!(obj->class_weight[c] >= 0.0f) || !isfinite(obj->class_weight[c]))
            return dsc__fail(DSC_EINVAL, "objective: class weight %zu must be finite and >= 0",
                             c);
    }
    return DSC_OK;
}

/* Check a batch and size the work buffers for it. */
static int check_batch(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                       const dsc_objective *obj, int rows_checked, const double *loss)
{
    if (!m || !loss)
        return dsc__fail(DSC_EINVAL, "model: NULL argument");
    if (n == 0)
        return dsc__fail(DSC_EINVAL, "model: a batch needs at least one row");
    int rc = check_data(m, d, rows, 0, n, 1, rows_checked);
    if (rc == DSC_OK)
        rc = check_objective(m, obj);
    if (rc == DSC_OK)
        rc = dsc_model_reserve(m, n);
    return rc;
}

/*
 * The sum of the sample weights of a batch. The batch loss is sum(s_i c_i l_i) / sum(s_i)
 * with s_i the sample weights and c_i the class weights: each row's share is
 * s_i c_i / sum(s_i).
 */
static int batch_weight_sum(const dsc_data *d, const uint32_t *rows, size_t n, double *sum)
{
    double weight_sum = 0.0;
    for (size_t i = 0; i < n; i++)
        weight_sum += d->weight ? (double)d->weight[row_at(rows, 0, i)] : 1.0;
    if (!(weight_sum > 0.0))
        return dsc__fail(DSC_EINVAL, "data: the sample weights of a batch sum to %g",
                         weight_sum);
    *sum = weight_sum;
    return DSC_OK;
}

/*
 * The forward pass of a batch and its data loss (the mean over its rows, without the
 * penalty) into *total; when grad, m->delta receives each row's share of the gradient with
 * respect to the logits.
 */
static int data_loss(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                     const dsc_objective *obj, int grad, double *total)
{
    double weight_sum = 0.0;
    int rc = batch_weight_sum(d, rows, n, &weight_sum);
    if (rc < 0)
        return rc;

    forward(m, d, rows, 0, n);

    int classifier = dsc_model_is_classifier(m);
    float param = dsc__loss_param(m->cfg.loss, m->cfg.loss_param);
    size_t k = m->n_logits;
    const float *logits = m->z[m->n_layers - 1];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        size_t r = row_at(rows, 0, i);
        int32_t label = classifier ? d->label[r] : 0;
        double share = d->weight ? (double)d->weight[r] : 1.0;
        if (classifier && obj && obj->class_weight)
            share *= obj->class_weight[label];
        share /= weight_sum;
        const float *y = classifier ? NULL : d->y + r * d->n_targets;
        float *dz = grad ? m->delta + i * k : NULL;
        sum += share * dsc__row_loss(m->cfg.loss, param, logits + i * k, k, label, y,
                                     (float)share, dz);
    }
    *total = sum;
    return DSC_OK;
}

/* 1 when the loss and gradient of a batch of d take the one-pass path of linear.c. */
static int takes_one_pass(const dsc_model *m, const dsc_data *d)
{
    return d->x && m->linear_allowed && linear_fits(m);
}

int dsc__model_one_pass_alone(const dsc_model *m, const dsc_data *d, size_t batch)
{
    return takes_one_pass(m, d) &&
           dsc__linear_team(batch, m->layers[0].n_in, m->layers[0].n_out) == 1;
}

/*
 * The data loss and its gradient in one pass over the rows (linear.c), for a model without
 * hidden layers on dense rows: the same values as data_loss and backward together.
 */
static int one_pass_loss_grad(dsc_model *m, const dsc_data *d, const uint32_t *rows,
                              size_t n, const dsc_objective *obj, double *total)
{
    double weight_sum = 0.0;
    int rc = batch_weight_sum(d, rows, n, &weight_sum);
    if (rc < 0)
        return rc;

    memset(m->grads, 0, m->n_params * sizeof(float));
    dsc_layer *layer = &m->layers[0];
    dsc_linear_batch job = {
        .data = d,
        .rows = rows,
        .n = n,
        .loss = m->cfg.loss,
        .loss_param = dsc__loss_param(m->cfg.loss, m->cfg.loss_param),
        .classifier = dsc_model_is_classifier(m),
        .class_weight = obj ? obj->class_weight : NULL,
        .weight_sum = weight_sum,
        .n_inputs = layer->n_in,
        .k = layer->n_out,
        .w = layer->w,
        .b = layer->b,
        .z = m->z[0],
        .dz = m->delta,
        .row_loss = m->row_loss,
        .dw = layer->dw,
        .db = layer->db,
        .partial = m->partial,
        .ahead = m->ahead,
        .n_ahead = m->n_ahead,
        .staged = m->staged,
    };
    *total = dsc__linear_loss_grad(&job);
    m->linear_batches++;
    return DSC_OK;
}

/* The loss (and, when grad, the gradient) of a batch; see dsc_model_loss_grad. */
static int batch_loss(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                      const dsc_objective *obj, int grad, int rows_checked, double *loss)
{
    int rc = check_batch(m, d, rows, n, obj, rows_checked, loss);
    if (rc < 0)
        return rc;
    fold_scale(m);

    double total;
    if (grad && takes_one_pass(m, d)) {
        rc = one_pass_loss_grad(m, d, rows, n, obj, &total);
        if (rc < 0)
            return rc;
        m->grads_dirty = 1;
        m->packed_pending = 0; /* the whole gradient is in the buffer now */
    } else {
        rc = data_loss(m, d, rows, n, obj, grad, &total);
        if (rc < 0)
            return rc;
        if (grad) {
            /* Dense layers overwrite their gradient (dense.c); sparse rows add into it. */
            if (!d->x)
                memset(m->grads, 0, m->n_params * sizeof(float));
            backward(m, d, rows, n, 0);
            m->grads_dirty = 1;
            m->packed_pending = 0;
        }
    }
    add_penalty(m, obj, grad, 0, 0.0, &total);
    *loss = total;
    return DSC_OK;
}

/*
 * Zero the gradient for a sparse-step batch and forget the previous batch's list: its marks
 * or table entries, and its rows of dW when they hold anything (every other row of dW is
 * zero already), or all of dW after a full gradient; and the tail.
 */
static void clear_rows_grad(dsc_model *m)
{
    dsc_layer *first = &m->layers[0];
    size_t n_out = first->n_out, n_weights = first->n_in * n_out;
    const uint32_t *touched = m->touched;
    size_t n_touched = m->n_touched;
    uint64_t *marks = m->marks;

    if (m->rows_packed) {
        for (size_t i = 0; i < n_touched; i++)
            m->slot_of[m->slot_at[i]] = 0;
    } else {
        for (size_t i = 0; i < n_touched; i++)
            marks[touched[i] / 64] = 0;
    }
    if (m->grads_dirty) {
        memset(m->grads, 0, n_weights * sizeof(float));
    } else if (m->rows_in_dw && n_out == 1) {
        for (size_t i = 0; i < n_touched; i++)
            first->dw[touched[i]] = 0.0f;
    } else if (m->rows_in_dw) {
        for (size_t i = 0; i < n_touched; i++)
            memset(first->dw + (size_t)touched[i] * n_out, 0, n_out * sizeof(float));
    }
    memset(m->grads + n_weights, 0, (m->n_params - n_weights) * sizeof(float));
    m->grads_dirty = 0;
    m->rows_in_dw = 0;
    m->packed_pending = 0;
    m->n_touched = 0;
}

int dsc__model_loss_grad_rows(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                              const dsc_objective *obj, double first_sq, int sort_rows,
                              int packed, double *loss, dsc_row_set *set, bool *rows_finite)
{
    int rc = check_batch(m, d, rows, n, obj, 0, loss);
    if (rc < 0)
        return rc;
    if (d->x || !m->marks || (obj && obj->l1 != 0.0))
        return dsc__fail(DSC_EINVAL, "model: the sparse step needs sparse rows, reserved "
                         "buffers and no L1 penalty");

    /* The batch's non-zeros bound the inputs it touches; the trainer reserved room. */
    uint64_t batch_nnz = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = row_at(rows, 0, i);
        batch_nnz += d->row_ptr[r + 1] - d->row_ptr[r];
    }
    if (batch_nnz > m->touched_capacity && m->cfg.n_inputs > m->touched_capacity)
        return dsc__fail(DSC_ELIMIT, "model: a batch with %llu non-zeros is beyond the %zu "
                         "inputs reserved", (unsigned long long)batch_nnz,
                         m->touched_capacity);

    double total;
    rc = data_loss(m, d, rows, n, obj, 1, &total);
    if (rc < 0)
        return rc;

    /* Collect the batch's inputs while summing their rows, packed when asked and possible
     * (a sorted list would no longer match the packed rows). */
    clear_rows_grad(m);
    m->rows_packed = packed && !sort_rows && m->slot_of;
    *rows_finite = backward(m, d, rows, n, 1);
    m->packed_pending = m->rows_packed;
    m->rows_in_dw = !m->rows_packed;
    if (sort_rows)
        dsc__sort_u32(m->touched, m->n_touched);

    /* The first layer's penalty: its value from first_sq, its gradient left to the step. */
    add_penalty(m, obj, 1, 1, first_sq, &total);
    *loss = total;
    *set = (dsc_row_set){
        .rows = m->touched,
        .n_rows = m->n_touched,
        .width = m->layers[0].n_out,
        .tail_begin = m->layers[0].n_in * m->layers[0].n_out,
        .tail_end = m->n_params,
        .packed_grads = m->rows_packed ? m->packed : NULL,
    };
    return DSC_OK;
}

int dsc_model_loss_grad(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                        const dsc_objective *obj, double *loss)
{
    return batch_loss(m, d, rows, n, obj, 1, 0, loss);
}

int dsc__model_loss_grad_checked(dsc_model *m, const dsc_data *d, const uint32_t *rows,
                                 size_t n, const dsc_objective *obj, const uint32_t *ahead,
                                 size_t n_ahead, const float *staged, double *loss)
{
    m->ahead = ahead;
    m->n_ahead = n_ahead;
    m->staged = staged;
    int rc = batch_loss(m, d, rows, n, obj, 1, 1, loss);
    m->ahead = NULL;
    m->n_ahead = 0;
    m->staged = NULL;
    return rc;
}

int dsc_model_loss(dsc_model *m, const dsc_data *d, const uint32_t *rows, size_t n,
                   const dsc_objective *obj, double *loss)
{
    return batch_loss(m, d, rows, n, obj, 0, 0, loss);
}

int dsc_model_decision(dsc_model *m, const dsc_data *d, size_t first, size_t n, float *out)
{
    if (!m || !out)
        return dsc__fail(DSC_EINVAL, "model: NULL argument");
    int rc = check_data(m, d, NULL, first, n, 0, 0);
    if (rc == DSC_OK && n > 0)
        rc = dsc_model_reserve(m, n < PREDICT_CHUNK ? n : PREDICT_CHUNK);
    if (rc < 0)
        return rc;

    fold_scale(m);
    size_t k = m->n_logits;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < m->capacity ? n - done : m->capacity;
        forward(m, d, NULL, first + done, chunk);
        memcpy(out + done * k, m->z[m->n_layers - 1], chunk * k * sizeof(float));
        done += chunk;
    }
    return DSC_OK;
}

/* Class probabilities of one row from its logits z; see dsc_model_predict_proba. */
static void row_proba(dsc_loss loss, const float *z, size_t k, size_t n_classes, float *p)
{
    if (k == 1) {
        double p1 = loss == DSC_LOSS_LOG ? dsc_activation_value(DSC_ACT_SIGMOID, 0, z[0])
                                         : (fmin(fmax(z[0], -1.0), 1.0) + 1.0) / 2.0;
        p[0] = (float)(1.0 - p1);
        p[1] = (float)p1;
        return;
    }

    double top = z[0], sum = 0.0;
    for (size_t c = 1; c < k; c++)
        top = fmax(top, (double)z[c]);
    for (size_t c = 0; c < n_classes; c++) {
        double v;
        if (loss == DSC_LOSS_SOFTMAX)
            v = exp((double)z[c] - top);
        else if (loss == DSC_LOSS_LOG)
            v = dsc_activation_value(DSC_ACT_SIGMOID, 0, z[c]);
        else
            v = (fmin(fmax(z[c], -1.0), 1.0) + 1.0) / 2.0;
        p[c] = (float)v;
        sum += v;
    }
    for (size_t c = 0; c < n_classes; c++)
        p[c] = sum > 0.0 ? (float)(p[c] / sum) : (float)(1.0 / (double)n_classes);
}

int dsc_model_predict_proba(dsc_model *m, const dsc_data *d, size_t first, size_t n,
                            float *out)
{
    if (!m || !out)
        return dsc__fail(DSC_EINVAL, "model: NULL argument");
    dsc_loss loss = m->cfg.loss;
    if (loss != DSC_LOSS_LOG && loss != DSC_LOSS_SOFTMAX && loss != DSC_LOSS_MODIFIED_HUBER)
        return dsc__fail(DSC_EINVAL, "model: the %s loss gives no probabilities",
                         dsc_loss_name(loss));
    int rc = check_data(m, d, NULL, first, n, 0, 0);
    if (rc == DSC_OK && n > 0)
        rc = dsc_model_reserve(m, n < PREDICT_CHUNK ? n : PREDICT_CHUNK);
    if (rc < 0)
        return rc;

    fold_scale(m);
    size_t k = m->n_logits, n_classes = m->cfg.n_outputs;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < m->capacity ? n - done : m->capacity;
        forward(m, d, NULL, first + done, chunk);
        const float *logits = m->z[m->n_layers - 1];
        for (size_t i = 0; i < chunk; i++)
            row_proba(loss, logits + i * k, k, n_classes, out + (done + i) * n_classes);
        done += chunk;
    }
    return DSC_OK;
}

int32_t dsc__logits_class(const float *z, size_t k)
{
    size_t best = 0;

    if (k == 1)
        return z[0] > 0.0f;
    for (size_t c = 1; c < k; c++) {
        if (z[c] > z[best])
            best = c;
    }
    return (int32_t)best;
}

const float *dsc__model_logits(const dsc_model *m)
{
    return m->z[m->n_layers - 1];
}

int dsc_model_predict_class(dsc_model *m, const dsc_data *d, size_t first, size_t n,
                            int32_t *out)
{
    if (!m || !out)
        return dsc__fail(DSC_EINVAL, "model: NULL argument");
    if (!dsc_model_is_classifier(m))
        return dsc__fail(DSC_EINVAL, "model: a regression model predicts no class");
    int rc = check_data(m, d, NULL, first, n, 0, 0);
    if (rc == DSC_OK && n > 0)
        rc = dsc_model_reserve(m, n < PREDICT_CHUNK ? n : PREDICT_CHUNK);
    if (rc < 0)
        return rc;

    fold_scale(m);
    size_t k = m->n_logits;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < m->capacity ? n - done : m->capacity;
        forward(m, d, NULL, first + done, chunk);
        const float *logits = m->z[m->n_layers - 1];
        for (size_t i = 0; i < chunk; i++)
            out[done + i] = dsc__logits_class(logits + i * k, k);
        done += chunk;
    }
    return DSC_OK;
}
