/*
 * test_modelfile.c - model files: round trips, corruption and truncation, versions, atomic
 * saving, the JSON description and CRC-32.
 *
 * The byte offsets that the tests patch are computed here from the layout documented at the
 * top of src/modelfile.c, and the CRC that they fix up is a bit-by-bit CRC-32 written from
 * its definition, independent of the library's table-driven one.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include "internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Helpers -------------------------------------------------------------------------- */

/* CRC-32 bit by bit: reflected polynomial 0xEDB88320, initial value and final xor ~0. */
static uint32_t reference_crc32(const unsigned char *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
    }
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Rewrite the closing CRC of a file image of size bytes. */
static void fix_crc(unsigned char *bytes, size_t size)
{
    put_u32(bytes + size - 4, reference_crc32(bytes, size - 4));
}

static char *path_in_tmp(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", test_tmpdir(), name);
    return p;
}

static unsigned char *read_bytes(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *size = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    return buf;
}

static int write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t written = fwrite(bytes, 1, size, fp);
    return fclose(fp) == 0 && written == size ? 0 : -1;
}

/* Entries in folder other than . and .. */
static int count_entries(const char *folder)
{
    DIR *dir = opendir(folder);
    int n = 0;
    if (!dir)
        return -1;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(dir);
    return n;
}

/* A string allocated as the library allocates, for the fields of a prep it will free. */
static char *lib_strdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = dsc__alloc(len + 1);
    if (copy)
        memcpy(copy, s, len + 1);
    return copy;
}

static float *lib_floats(const float *values, size_t n)
{
    float *copy = dsc__alloc(n * sizeof *copy);
    if (copy)
        memcpy(copy, values, n * sizeof *copy);
    return copy;
}

/*
 * A 3-class MLP on 5 features (two numeric columns and a one-hot column of 3 levels) with
 * tanh and leaky ReLU hidden layers, and the encoding that goes with it.
 */
static dsc_model *make_classifier(dsc_prep **prep_out)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 5, 3, DSC_LOSS_SOFTMAX);
    cfg.n_hidden = 2;
    cfg.hidden[0] = 7;
    cfg.activation[0] = DSC_ACT_TANH;
    cfg.hidden[1] = 4;
    cfg.activation[1] = DSC_ACT_LEAKY_RELU;
    cfg.act_param = 0.05f;
    dsc_model *m = dsc_model_new(&cfg, NULL);
    if (!m || dsc_model_init_weights(m, DSC_INIT_XAVIER_NORMAL, 7) != DSC_OK)
        return NULL;
    float *params = dsc_model_params(m);
    for (size_t i = 0; i < dsc_model_n_params(m); i++) {
        if (params[i] == 0.0f)
            params[i] = 0.01f * (float)(i % 7) - 0.02f; /* the biases too */
    }

    dsc_prep *p = dsc__prep_new();
    if (!p)
        return NULL;
    static const char *levels[] = {"red", "gr\xc3\xbcn", "bl\"ue"};
    static const char *classes[] = {"setosa", "versi\"color", "v\xc3\xadrginica"};
    static const float mean[] = {1.5f, -2.25f, 0.3f, 0.3f, 0.4f};
    static const float scale[] = {2.0f, 0.125f, 1.0f, 1.0f, 1.0f};
    static const float impute[] = {1.0f, -2.0f, 0.0f, 0.0f, 0.0f};

    p->format = DSC_FORMAT_CSV;
    p->n_columns = 3;
    p->columns = dsc__calloc(3, sizeof *p->columns);
    p->columns[0] = (dsc_column){.name = lib_strdup("sepal length"), .first_feature = 0};
    p->columns[1] = (dsc_column){.name = lib_strdup("colour"), .categorical = 1,
                                 .n_levels = 3, .first_feature = 1};
    p->columns[1].levels = dsc__calloc(3, sizeof(char *));
    for (size_t v = 0; v < 3; v++)
        p->columns[1].levels[v] = lib_strdup(levels[v]);
    p->columns[2] = (dsc_column){.name = lib_strdup("width\\cm"), .first_feature = 4};
    p->n_features = 5;
    p->target_name = lib_strdup("species");
    p->n_targets = 0;
    p->n_classes = 3;
    p->classes = dsc__calloc(3, sizeof(char *));
    for (size_t k = 0; k < 3; k++)
        p->classes[k] = lib_strdup(classes[k]);
    p->missing = DSC_MISSING_MEAN;
    p->impute = lib_floats(impute, 5);
    p->standardized = 1;
    p->mean = lib_floats(mean, 5);
    p->scale = lib_floats(scale, 5);
    *prep_out = p;
    return m;
}

/* A linear regression on 3 inputs with weights 0.5, -1.25, 2 and bias 0.75. */
static dsc_model *make_linear(void)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 3, 1, DSC_LOSS_SQUARED);
    dsc_model *m = dsc_model_new(&cfg, NULL);
    if (!m)
        return NULL;
    static const float weights[] = {0.5f, -1.25f, 2.0f, 0.75f};
    memcpy(dsc_model_params(m), weights, sizeof weights);
    return m;
}

/* The offset of the prep section's first field (after its presence flag). */
static size_t prep_offset(const dsc_model *m)
{
    const dsc_model_config *cfg = dsc_model_config_of(m);
    return 16 + 8 + 8 + 4 + 12 * cfg->n_hidden + 4 + 4 + 4 + 8 + 4 * dsc_model_n_params(m) + 1;
}

static int same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int same_floats(const float *a, const float *b, size_t n)
{
    return (a == NULL && b == NULL) || (a && b && memcmp(a, b, n * sizeof *a) == 0);
}

/* ---- CRC-32 --------------------------------------------------------------------------- */

TEST(modelfile_crc32_check_value)
{
    CHECK(dsc_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(dsc_crc32(0, "", 0) == 0);

    /* Any data, in one call or in pieces, against the bit-by-bit definition. */
    unsigned char data[1000];
    dsc_rng rng;
    dsc_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)dsc_rng_below(&rng, 256);
    uint32_t whole = dsc_crc32(0, data, sizeof data);
    CHECK(whole == reference_crc32(data, sizeof data));
    uint32_t pieces = dsc_crc32(0, data, 1);
    pieces = dsc_crc32(pieces, data + 1, 400);
    pieces = dsc_crc32(pieces, data + 401, sizeof data - 401);
    CHECK(pieces == whole);
}

/* The CRC a byte at a time through a 256-entry table, as dsc_crc32 did before slicing. */
static uint32_t bytewise_crc32(uint32_t crc, const unsigned char *data, size_t len)
{
    uint32_t table[256];
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n; /* the register after the 8 bits of n */
        for (int bit = 0; bit < 8; bit++)
            c = (c >> 1) ^ ((c & 1u) ? 0xEDB88320u : 0u);
        table[n] = c;
    }
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

TEST(modelfile_crc32_slices_match_bytewise_at_any_length_and_alignment)
{
    enum { SIZE = 70000 };
    unsigned char *data = malloc(SIZE);
    REQUIRE(data != NULL);
    dsc_rng rng;
    dsc_rng_seed(&rng, 11);
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (unsigned char)dsc_rng_below(&rng, 256);

    /* The table above must itself be right. */
    CHECK(bytewise_crc32(0, (const unsigned char *)"123456789", 9) == 0xCBF43926u);

    /* Every start within 16 bytes and lengths 0 to 300, each from a random running CRC. */
    int wrong = 0;
    for (size_t start = 0; start < 16; start++) {
        for (size_t len = 0; len <= 300; len++) {
            uint32_t from = (uint32_t)dsc_rng_next(&rng);
            wrong += dsc_crc32(from, data + start, len) !=
                     bytewise_crc32(from, data + start, len);
        }
    }
    CHECK_EQ_INT(wrong, 0);

    /* Long random spans, whole and cut into random pieces. */
    for (int i = 0; i < 50; i++) {
        size_t start = (size_t)dsc_rng_below(&rng, 64);
        size_t len = (size_t)dsc_rng_below(&rng, SIZE - 64);
        uint32_t whole = dsc_crc32(0, data + start, len);
        CHECK(whole == bytewise_crc32(0, data + start, len));
        uint32_t pieces = 0;
        for (size_t done = 0; done < len;) {
            size_t piece = 1 + (size_t)dsc_rng_below(&rng, 1000);
            if (piece > len - done)
                piece = len - done;
            pieces = dsc_crc32(pieces, data + start + done, piece);
            done += piece;
        }
        CHECK(pieces == whole);
    }
    free(data);
}

/* ---- Round trips ---------------------------------------------------------------------- */

TEST(modelfile_round_trip_classifier)
{
    dsc_prep *prep = NULL;
    dsc_model *m = make_classifier(&prep);
    REQUIRE(m && prep);
    const char *settings = "optimizer=adam\nlr=0.001\n\"quoted\"\ttab";
    const char *path = path_in_tmp("model.dsc");
    REQUIRE(dsc_model_save(path, m, prep, settings) == DSC_OK);
    CHECK_EQ_INT(count_entries(test_tmpdir()), 1);

    dsc_model *loaded = NULL;
    dsc_prep *lp = NULL;
    char *ls = NULL;
    int rc = dsc_model_load(path, &loaded, &lp, &ls);
    if (rc != DSC_OK)
        fprintf(stderr, "    %s\n", dsc_last_error());
    REQUIRE(rc == DSC_OK && loaded && lp && ls);

    /* The configuration, field by field. */
    const dsc_model_config *a = dsc_model_config_of(m), *b = dsc_model_config_of(loaded);
    CHECK_EQ_INT(b->n_inputs, a->n_inputs);
    CHECK_EQ_INT(b->n_outputs, a->n_outputs);
    CHECK_EQ_INT(b->n_hidden, 2);
    for (size_t l = 0; l < 2; l++) {
        CHECK_EQ_INT(b->hidden[l], a->hidden[l]);
        CHECK_EQ_INT(b->activation[l], a->activation[l]);
    }
    CHECK_EQ_INT(b->loss, DSC_LOSS_SOFTMAX);
    CHECK(b->loss_param == a->loss_param && b->act_param == 0.05f);

    /* Parameters bit for bit. */
    REQUIRE(dsc_model_n_params(loaded) == dsc_model_n_params(m));
    CHECK(memcmp(dsc_model_params(loaded), dsc_model_params(m),
                 dsc_model_n_params(m) * sizeof(float)) == 0);

    /* The encoding. */
    CHECK_EQ_INT(lp->format, DSC_FORMAT_CSV);
    REQUIRE(lp->n_columns == 3 && lp->columns);
    for (size_t c = 0; c < 3; c++) {
        const dsc_column *x = &prep->columns[c], *y = &lp->columns[c];
        CHECK(same_string(x->name, y->name));
        CHECK_EQ_INT(y->categorical, x->categorical);
        CHECK_EQ_INT(y->first_feature, x->first_feature);
        REQUIRE(y->n_levels == x->n_levels);
        for (size_t v = 0; v < x->n_levels; v++)
            CHECK(same_string(x->levels[v], y->levels[v]));
    }
    CHECK_EQ_INT(lp->n_features, 5);
    CHECK(same_string(lp->target_name, "species"));
    CHECK_EQ_INT(lp->n_targets, 0);
    REQUIRE(lp->n_classes == 3);
    for (size_t k = 0; k < 3; k++)
        CHECK(same_string(lp->classes[k], prep->classes[k]));
    CHECK_EQ_INT(lp->missing, DSC_MISSING_MEAN);
    CHECK(same_floats(lp->impute, prep->impute, 5));
    CHECK_EQ_INT(lp->standardized, 1);
    CHECK(same_floats(lp->mean, prep->mean, 5));
    CHECK(same_floats(lp->scale, prep->scale, 5));
    CHECK(strcmp(ls, settings) == 0);

    /* The same predictions, bit for bit, on random rows. */
    enum { N = 50 };
    float x[N * 5], p1[N * 3], p2[N * 3], z1[N * 3], z2[N * 3];
    dsc_rng rng;
    dsc_rng_seed(&rng, 11);
    for (size_t i = 0; i < N * 5; i++)
        x[i] = (float)(4.0 * dsc_rng_uniform(&rng) - 2.0);
    dsc_data d = {.n_rows = N, .n_features = 5, .x = x};
    REQUIRE(dsc_model_predict_proba(m, &d, 0, N, p1) == DSC_OK);
    REQUIRE(dsc_model_predict_proba(loaded, &d, 0, N, p2) == DSC_OK);
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
    REQUIRE(dsc_model_decision(m, &d, 0, N, z1) == DSC_OK);
    REQUIRE(dsc_model_decision(loaded, &d, 0, N, z2) == DSC_OK);
    CHECK(memcmp(z1, z2, sizeof z1) == 0);

    /* Loading without asking for the encoding or the settings. */
    dsc_model *only = NULL;
    CHECK(dsc_model_load(path, &only, NULL, NULL) == DSC_OK && only);

    dsc_model_free(only);
    dsc_free(ls);
    dsc_prep_free(lp);
    dsc_model_free(loaded);
    dsc_prep_free(prep);
    dsc_model_free(m);
}

TEST(modelfile_round_trip_regression_without_prep)
{
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 4, 2, DSC_LOSS_HUBER);
    cfg.loss_param = 0.75f;
    cfg.n_hidden = 1;
    cfg.hidden[0] = 3;
    cfg.activation[0] = DSC_ACT_ELU;
    dsc_model *m = dsc_model_new(&cfg, NULL);
    REQUIRE(m && dsc_model_init_weights(m, DSC_INIT_HE_UNIFORM, 5) == DSC_OK);
    dsc_model_params(m)[dsc_model_n_params(m) - 1] = -0.0f; /* the sign of zero survives */

    const char *path = path_in_tmp("reg.dsc");
    REQUIRE(dsc_model_save(path, m, NULL, NULL) == DSC_OK);
    dsc_model *loaded = NULL;
    dsc_prep *lp = (dsc_prep *)1;
    char *ls = (char *)1;
    REQUIRE(dsc_model_load(path, &loaded, &lp, &ls) == DSC_OK && loaded);
    CHECK(lp == NULL);
    CHECK(ls == NULL);
    const dsc_model_config *b = dsc_model_config_of(loaded);
    CHECK_EQ_INT(b->loss, DSC_LOSS_HUBER);
    CHECK(b->loss_param == 0.75f);
    CHECK_EQ_INT(b->activation[0], DSC_ACT_ELU);
    CHECK(memcmp(dsc_model_params(loaded), dsc_model_params(m),
                 dsc_model_n_params(m) * sizeof(float)) == 0);

    /* An empty settings text is not the same as none. */
    REQUIRE(dsc_model_save(path, m, NULL, "") == DSC_OK);
    dsc_model *again = NULL;
    REQUIRE(dsc_model_load(path, &again, NULL, &ls) == DSC_OK);
    CHECK(ls != NULL && ls[0] == '\0');

    dsc_free(ls);
    dsc_model_free(again);
    dsc_model_free(loaded);
    dsc_model_free(m);
}

/* ---- Corruption and truncation -------------------------------------------------------- */

/* A small classifier file; returns its image (malloc) and size. */
static unsigned char *small_file(const char *path, size_t *size)
{
    dsc_prep *prep = NULL;
    dsc_model *m = make_classifier(&prep);
    if (!m || dsc_model_save(path, m, prep, "epochs=3") != DSC_OK)
        return NULL;
    dsc_prep_free(prep);
    dsc_model_free(m);
    return read_bytes(path, size);
}

static int is_format_error(int rc)
{
    return rc == DSC_EFORMAT || rc == DSC_ECHECKSUM || rc == DSC_EVERSION;
}

TEST(modelfile_every_flipped_bit_rejected)
{
    const char *good = path_in_tmp("good.dsc"), *bad = path_in_tmp("bad.dsc");
    size_t size;
    unsigned char *bytes = small_file(good, &size);
    REQUIRE(bytes && size > 100);

    int accepted = 0;
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            bytes[i] ^= (unsigned char)(1u << bit);
            REQUIRE(write_bytes(bad, bytes, size) == 0);
            dsc_model *m = (dsc_model *)1;
            dsc_prep *p = (dsc_prep *)1;
            char *s = (char *)1;
            int rc = dsc_model_load(bad, &m, &p, &s);
            if (!is_format_error(rc) || m || p || s) {
                if (accepted++ < 5)
                    fprintf(stderr, "    byte %zu bit %d: rc %d\n", i, bit, rc);
                if (rc == DSC_OK) {
                    dsc_model_free(m);
                    dsc_prep_free(p);
                    dsc_free(s);
                }
            }
            bytes[i] ^= (unsigned char)(1u << bit);
        }
    }
    CHECK_EQ_INT(accepted, 0);

    /* The unchanged image still loads: the loop restored every byte. */
    REQUIRE(write_bytes(bad, bytes, size) == 0);
    dsc_model *m = NULL;
    CHECK(dsc_model_load(bad, &m, NULL, NULL) == DSC_OK);
    dsc_model_free(m);
    free(bytes);
}

TEST(modelfile_cut_at_every_length_rejected)
{
    const char *good = path_in_tmp("good.dsc"), *cut = path_in_tmp("cut.dsc");
    size_t size;
    unsigned char *bytes = small_file(good, &size);
    REQUIRE(bytes);

    int accepted = 0;
    for (size_t len = 0; len < size; len++) {
        REQUIRE(write_bytes(cut, bytes, len) == 0);
        dsc_model *m = (dsc_model *)1;
        int rc = dsc_model_load(cut, &m, NULL, NULL);
        if (!is_format_error(rc) || m) {
            accepted++;
            if (rc == DSC_OK)
                dsc_model_free(m);
        }
    }
    CHECK_EQ_INT(accepted, 0);
    free(bytes);
}

/*
 * The same cuts, each closed by a valid CRC of what is left, so that the field checks rather
 * than the checksum must catch every one of them.
 */
TEST(modelfile_cut_with_valid_crc_rejected)
{
    const char *good = path_in_tmp("good.dsc"), *cut = path_in_tmp("cut.dsc");
    size_t size;
    unsigned char *bytes = small_file(good, &size);
    REQUIRE(bytes);
    unsigned char *image = malloc(size);

    int accepted = 0;
    for (size_t len = 0; len + 4 < size; len++) {
        memcpy(image, bytes, len);
        put_u32(image + len, reference_crc32(bytes, len));
        REQUIRE(write_bytes(cut, image, len + 4) == 0);
        dsc_model *m = (dsc_model *)1;
        int rc = dsc_model_load(cut, &m, NULL, NULL);
        if (rc != DSC_EFORMAT || m) {
            if (accepted++ < 5)
                fprintf(stderr, "    cut at %zu: rc %d\n", len, rc);
            if (rc == DSC_OK)
                dsc_model_free(m);
        }
        if (len >= 16 && rc == DSC_EFORMAT)
            CHECK(strstr(dsc_last_error(), "truncated or corrupted at byte") != NULL);
    }
    CHECK_EQ_INT(accepted, 0);
    free(image);
    free(bytes);
}

/*
 * Every byte replaced by a few values, with the CRC fixed up: the loader must either reject
 * the file with a format error or load a consistent model, never crash (the suite also runs
 * under ASan and UBSan).
 */
TEST(modelfile_corrupt_fields_with_valid_crc_never_crash)
{
    const char *good = path_in_tmp("good.dsc"), *bad = path_in_tmp("bad.dsc");
    size_t size;
    unsigned char *bytes = small_file(good, &size);
    REQUIRE(bytes);
    static const unsigned char values[] = {0x00, 0x01, 0x7F, 0x80, 0xFF};

    int wrong = 0, rejected = 0;
    for (size_t i = 0; i + 4 < size; i++) {
        unsigned char saved = bytes[i];
        for (size_t k = 0; k < sizeof values; k++) {
            if (values[k] == saved)
                continue;
            bytes[i] = values[k];
            fix_crc(bytes, size);
            REQUIRE(write_bytes(bad, bytes, size) == 0);
            dsc_model *m = NULL;
            dsc_prep *p = NULL;
            int rc = dsc_model_load(bad, &m, &p, NULL);
            if (rc == DSC_OK) {
                const dsc_model_config *cfg = dsc_model_config_of(m);
                if (!p || p->n_features != cfg->n_inputs || p->n_classes != cfg->n_outputs)
                    wrong++;
            } else if (is_format_error(rc)) {
                rejected++;
            } else {
                wrong++;
            }
            dsc_prep_free(p);
            dsc_model_free(m);
        }
        bytes[i] = saved;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(rejected > 0);
    free(bytes);
}

TEST(modelfile_future_version)
{
    const char *path = path_in_tmp("future.dsc");
    size_t size;
    unsigned char *bytes = small_file(path, &size);
    REQUIRE(bytes);
    put_u32(bytes + 8, 2);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);

    dsc_model *m = (dsc_model *)1;
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_EVERSION);
    CHECK(m == NULL);
    char expected[600];
    snprintf(expected, sizeof expected,
             "%s: written by format version 2; this build reads up to 1", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    /* Without the CRC fix-up, the same change is a checksum error. */
    put_u32(bytes + 8, 7);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_ECHECKSUM);
    snprintf(expected, sizeof expected, "%s: checksum mismatch: the file is corrupted", path);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    free(bytes);
}

TEST(modelfile_bad_magic)
{
    const char *path = path_in_tmp("magic.dsc");
    size_t size;
    unsigned char *bytes = small_file(path, &size);
    REQUIRE(bytes);
    char expected[600];
    snprintf(expected, sizeof expected, "%s: not a descent model file", path);

    bytes[3] = 'X';
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    dsc_model *m = (dsc_model *)1;
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_EFORMAT);
    CHECK(m == NULL);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    /* A file of another kind, and an empty one. */
    const char *csv = "a,b,target\n1,2,3\n4,5,6\n";
    REQUIRE(write_bytes(path, csv, strlen(csv)) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_EFORMAT);
    CHECK(strcmp(dsc_last_error(), expected) == 0);
    REQUIRE(write_bytes(path, "", 0) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_EFORMAT);

    /* A file that is not there. */
    CHECK_EQ_INT(dsc_model_load(path_in_tmp("absent.dsc"), &m, NULL, NULL), DSC_EIO);
    free(bytes);
}

/* The byte-order mark is the bytes 04 03 02 01; the reverse order is refused. */
TEST(modelfile_byte_order_mark)
{
    const char *path = path_in_tmp("order.dsc");
    size_t size;
    unsigned char *bytes = small_file(path, &size);
    REQUIRE(bytes);
    CHECK(bytes[12] == 4 && bytes[13] == 3 && bytes[14] == 2 && bytes[15] == 1);
    /* Integers are little-endian whatever the machine: the version is 01 00 00 00. */
    CHECK(bytes[8] == 1 && bytes[9] == 0 && bytes[10] == 0 && bytes[11] == 0);

    for (int i = 0; i < 4; i++)
        bytes[12 + i] = (unsigned char)(i + 1);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    dsc_model *m = NULL;
    CHECK_EQ_INT(dsc_model_load(path, &m, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "at byte 12") != NULL);
    free(bytes);
}

/* Fields patched with a valid CRC: each consistency check names the byte at fault. */
TEST(modelfile_prep_consistency_checked_on_load)
{
    /* A logistic model on 2 features with an encoding that has no columns. */
    dsc_model_config cfg;
    dsc_model_config_init(&cfg, 2, 2, DSC_LOSS_LOG);
    dsc_model *m = dsc_model_new(&cfg, NULL);
    REQUIRE(m);
    dsc_prep *p = dsc__prep_new();
    REQUIRE(p);
    p->format = DSC_FORMAT_LIBSVM;
    p->n_features = 2;
    p->n_classes = 2;
    p->classes = dsc__calloc(2, sizeof(char *));
    p->classes[0] = lib_strdup("-1");
    p->classes[1] = lib_strdup("+1");
    const char *path = path_in_tmp("consistency.dsc");
    REQUIRE(dsc_model_save(path, m, p, NULL) == DSC_OK);
    size_t size;
    unsigned char *good = read_bytes(path, &size);
    REQUIRE(good);
    unsigned char *bytes = malloc(size);
    char expected[700];

    /* Offsets: format u32, n_columns u64 (0), n_features u64, target (none), n_targets. */
    size_t at_features = prep_offset(m) + 4 + 8;
    size_t at_classes = at_features + 8 + 4 + 8;
    REQUIRE(get_u64(good + at_features) == 2 && get_u64(good + at_classes) == 2);

    memcpy(bytes, good, size);
    put_u64(bytes + at_features, 3);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    dsc_model *lm = NULL;
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    snprintf(expected, sizeof expected, "%s: truncated or corrupted at byte %zu (as many "
             "features as the model's 2 inputs, found 3)", path, at_features);
    CHECK(strcmp(dsc_last_error(), expected) == 0);

    memcpy(bytes, good, size);
    put_u64(bytes + at_classes, 1);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "as many classes as the model's 2 outputs") != NULL);

    /* A NUL inside a class label: the label "-1" starts after its u32 length. */
    memcpy(bytes, good, size);
    REQUIRE(bytes[at_classes + 8 + 4] == '-');
    bytes[at_classes + 8 + 4] = '\0';
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "without a NUL byte") != NULL);

    /* Saving refuses an encoding that does not fit the model. */
    p->n_features = 3;
    CHECK_EQ_INT(dsc_model_save(path_in_tmp("mismatch.dsc"), m, p, NULL), DSC_ESHAPE);
    p->n_features = 2;
    p->n_classes = 1;
    CHECK_EQ_INT(dsc_model_save(path_in_tmp("mismatch.dsc"), m, p, NULL), DSC_ESHAPE);
    p->n_classes = 2;
    CHECK(access(path_in_tmp("mismatch.dsc"), F_OK) != 0);

    free(bytes);
    free(good);
    dsc_prep_free(p);
    dsc_model_free(m);
}

/* An allocator that remembers the largest request. */
static void *counting_alloc(size_t size, void *ctx)
{
    size_t *largest = ctx;
    if (size > *largest)
        *largest = size;
    return malloc(size);
}

static void counting_release(void *ptr, void *ctx)
{
    free(ptr);
}

TEST(modelfile_counts_checked_before_allocating)
{
    dsc_model *m = make_linear();
    REQUIRE(m);
    const char *path = path_in_tmp("linear.dsc");
    REQUIRE(dsc_model_save(path, m, NULL, NULL) == DSC_OK);
    size_t size;
    unsigned char *good = read_bytes(path, &size);
    REQUIRE(good && size == 16 + 32 + 8 + 16 + 1 + 4 + 4);
    unsigned char *bytes = malloc(size);
    size_t largest = 0;
    dsc_set_allocator(counting_alloc, counting_release, &largest);

    /* 100 million inputs and the matching parameter count, in a 90-byte file. */
    memcpy(bytes, good, size);
    put_u64(bytes + 16, 100000000);
    put_u64(bytes + 48, 100000001);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    dsc_model *lm = NULL;
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "parameter values") != NULL);

    /* A parameter count that does not match the configuration. */
    memcpy(bytes, good, size);
    put_u64(bytes + 48, 5);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "at byte 48 (4 parameters") != NULL);

    /* More hidden layers than a model can have. */
    memcpy(bytes, good, size);
    put_u32(bytes + 32, DSC_MAX_HIDDEN + 1);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "at byte 32") != NULL);

    /* A settings text that claims a million bytes. */
    memcpy(bytes, good, size);
    put_u32(bytes + size - 8, 1000000);
    fix_crc(bytes, size);
    REQUIRE(write_bytes(path, bytes, size) == 0);
    CHECK_EQ_INT(dsc_model_load(path, &lm, NULL, NULL), DSC_EFORMAT);

    dsc_set_allocator(NULL, NULL, NULL);
    CHECK(lm == NULL);
    CHECK(largest < 4096);
    free(bytes);
    free(good);
    dsc_model_free(m);
}

/* ---- Saving --------------------------------------------------------------------------- */

TEST(modelfile_nonfinite_weight_refused)
{
    dsc_model *m = make_linear();
    REQUIRE(m);
    const char *path = path_in_tmp("nan.dsc");
    dsc_model_params(m)[2] = NAN;
    CHECK_EQ_INT(dsc_model_save(path, m, NULL, NULL), DSC_ENONFINITE);
    CHECK(strstr(dsc_last_error(), "refusing to save a model with a non-finite weight"));
    CHECK_EQ_INT(count_entries(test_tmpdir()), 0);

    /* An existing file at the path is left as it was. */
    const char *old = "the previous model";
    REQUIRE(write_bytes(path, old, strlen(old)) == 0);
    dsc_model_params(m)[2] = 2.0f;
    dsc_model_params(m)[3] = -INFINITY;
    CHECK_EQ_INT(dsc_model_save(path, m, NULL, NULL), DSC_ENONFINITE);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    REQUIRE(bytes);
    CHECK(size == strlen(old) && memcmp(bytes, old, size) == 0);
    CHECK_EQ_INT(count_entries(test_tmpdir()), 1);

    /* With finite weights it is replaced. */
    dsc_model_params(m)[3] = 0.75f;
    CHECK_EQ_INT(dsc_model_save(path, m, NULL, NULL), DSC_OK);
    dsc_model *lm = NULL;
    CHECK(dsc_model_load(path, &lm, NULL, NULL) == DSC_OK);
    CHECK_EQ_INT(count_entries(test_tmpdir()), 1);
    dsc_model_free(lm);
    free(bytes);
    dsc_model_free(m);
}

TEST(modelfile_failed_save_leaves_nothing_behind)
{
    dsc_model *m = make_linear();
    REQUIRE(m);

    /* A folder that does not exist. */
    const char *missing = path_in_tmp("no/such/folder/model.dsc");
    CHECK_EQ_INT(dsc_model_save(missing, m, NULL, NULL), DSC_EIO);
    CHECK(strstr(dsc_last_error(), missing) != NULL);
    CHECK_EQ_INT(count_entries(test_tmpdir()), 0);

    /* A failure at the last step: the path is a folder, so the rename fails. */
    const char *folder = path_in_tmp("a folder");
    REQUIRE(mkdir(folder, 0700) == 0);
    CHECK_EQ_INT(dsc_model_save(folder, m, NULL, NULL), DSC_EIO);
    CHECK_EQ_INT(count_entries(test_tmpdir()), 1);
    CHECK_EQ_INT(count_entries(folder), 0);
    dsc_model_free(m);
}

/* ---- JSON ----------------------------------------------------------------------------- */

/*
 * A small JSON validator (RFC 8259): returns the position after the value at s, or NULL if
 * there is no valid value there.
 */
static const char *json_ws(const char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    return s;
}

static const char *json_value(const char *s, int depth);

static const char *json_str(const char *s)
{
    if (*s++ != '"')
        return NULL;
    while (*s != '"') {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            s++;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++) {
                    char h = s[i];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return NULL;
                }
                s += 5;
            } else if (*s && strchr("\"\\/bfnrt", *s)) {
                s++;
            } else {
                return NULL;
            }
        } else {
            s++;
        }
    }
    return s + 1;
}

static const char *json_num(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return NULL;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return NULL;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return NULL;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return s;
}

static const char *json_value(const char *s, int depth)
{
    if (depth > 64)
        return NULL;
    s = json_ws(s);
    if (*s == '{' || *s == '[') {
        char close = *s == '{' ? '}' : ']';
        int object = *s == '{';
        s = json_ws(s + 1);
        if (*s == close)
            return s + 1;
        for (;;) {
            if (object) {
                s = json_str(json_ws(s));
                if (!s)
                    return NULL;
                s = json_ws(s);
                if (*s++ != ':')
                    return NULL;
            }
            s = json_value(s, depth + 1);
            if (!s)
                return NULL;
            s = json_ws(s);
            if (*s == close)
                return s + 1;
            if (*s++ != ',')
                return NULL;
        }
    }
    if (*s == '"')
        return json_str(s);
    if (strncmp(s, "true", 4) == 0 || strncmp(s, "null", 4) == 0)
        return s + 4;
    if (strncmp(s, "false", 5) == 0)
        return s + 5;
    return json_num(s);
}

static int json_valid(const char *text)
{
    const char *end = json_value(text, 0);
    return end && *json_ws(end) == '\0';
}

TEST(modelfile_json_validator_self_check)
{
    CHECK(json_valid("{\"a\": [1, -2.5e3, true, null, \"x\\u0001\"], \"b\": {}}"));
    CHECK(!json_valid("{\"a\": [1, 2,]}"));
    CHECK(!json_valid("{\"a\": nan}"));
    CHECK(!json_valid("{\"a\": \"tab\there\"}"));
    CHECK(!json_valid("[1.]"));
    CHECK(!json_valid("{\"a\": 1} x"));
}

/* The JSON that model and prep give, as a string (malloc). */
static char *json_of(const dsc_model *m, const dsc_prep *p, const char *settings, int weights)
{
    const char *path = path_in_tmp("model.json");
    FILE *out = fopen(path, "w");
    if (!out)
        return NULL;
    int rc = dsc_model_write_json(out, m, p, settings, weights);
    fclose(out);
    if (rc != DSC_OK)
        return NULL;
    size_t size;
    char *text = (char *)read_bytes(path, &size);
    if (text)
        text[size] = '\0';
    return text;
}

TEST(modelfile_json_valid_with_expected_values)
{
    dsc_prep *prep = NULL;
    dsc_model *m = make_classifier(&prep);
    REQUIRE(m && prep);
    prep->impute[4] = NAN;
    char *text = json_of(m, prep, "lr=0.1\x01\n", 1);
    REQUIRE(text);
    CHECK(json_valid(text));

    static const char *expected[] = {
        "{\n  \"format_version\": 1,\n  \"architecture\": {\n    \"inputs\": 5,\n",
        "    \"outputs\": 3,\n    \"loss\": \"softmax\",\n",
        "      {\"inputs\": 5, \"outputs\": 7, \"activation\": \"tanh\"},\n",
        "      {\"inputs\": 7, \"outputs\": 4, \"activation\": \"leaky_relu\"},\n",
        "      {\"inputs\": 4, \"outputs\": 3, \"activation\": \"identity\"}\n",
        "  \"parameters\": 89,\n",
        "\"features\": 5,",
        "{\"name\": \"sepal length\", \"kind\": \"numeric\"}",
        "{\"name\": \"colour\", \"kind\": \"one-hot\", \"levels\": [\"red\", \"gr\xc3\xbcn\", "
        "\"bl\\\"ue\"]}",
        "{\"name\": \"width\\\\cm\", \"kind\": \"numeric\"}",
        "\"impute\": [1, -2, 0, 0, null]",
        "\"standardized\": true",
        "\"mean\": [1.5, -2.25, 0.300000012, 0.300000012, 0.400000006]",
        "\"scale\": [2, 0.125, 1, 1, 1]",
        "\"target\": \"species\"",
        "\"classes\": [\"setosa\", \"versi\\\"color\", \"v\xc3\xadrginica\"]",
        "\"settings\": \"lr=0.1\\u0001\\u000a\"",
        "\"weights\": [\n",
        "\"layer\": 0,",
        "\"layer\": 2,",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        if (!strstr(text, expected[i])) {
            test_report(__FILE__, __LINE__, "missing from the JSON: %s", expected[i]);
        }
    }
    CHECK(strstr(text, "\"missing\": \"mean\"") != NULL);

    /* Layer 1's weights, one row per input, read back to the same floats. */
    dsc_layer layer;
    REQUIRE(dsc_model_layer(m, 1, &layer) == DSC_OK);
    const char *s = strstr(text, "\"layer\": 1,");
    REQUIRE(s);
    s = strstr(s, "\"w\": [");
    REQUIRE(s);
    s += 6;
    int mismatches = 0;
    for (size_t i = 0; i < layer.n_in; i++) {
        s = strchr(s, '[');
        REQUIRE(s);
        s++;
        for (size_t o = 0; o < layer.n_out; o++) {
            char *end;
            float v = strtof(s, &end);
            REQUIRE(end != s);
            if (v != layer.w[i * layer.n_out + o])
                mismatches++;
            s = end + strspn(end, ", ");
        }
        REQUIRE(*s == ']');
    }
    CHECK_EQ_INT(mismatches, 0);
    s = strstr(s, "\"b\": [");
    REQUIRE(s);
    CHECK(strtof(s + 6, NULL) == layer.b[0]);

    /* Python's parser agrees, where it is installed. */
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\"));"
                 " a=d[\"architecture\"]; assert a[\"inputs\"]==5 and len(a[\"layers\"])==3;"
                 " assert d[\"classes\"][1]==\"versi\\\"color\";"
                 " assert d[\"preprocessing\"][\"impute\"][4] is None;"
                 " assert len(d[\"weights\"][0][\"w\"])==5 and len(d[\"weights\"][0][\"w\"][0])==7'"
                 " '%s'", path_in_tmp("model.json"));
        CHECK_EQ_INT(system(cmd), 0);
    }

    /* Without weights there is no weights key. */
    char *plain = json_of(m, prep, NULL, 0);
    REQUIRE(plain);
    CHECK(json_valid(plain));
    CHECK(strstr(plain, "\"weights\"") == NULL);
    CHECK(strstr(plain, "\"settings\": null") != NULL);

    free(plain);
    free(text);
    dsc_prep_free(prep);
    dsc_model_free(m);
}

TEST(modelfile_json_without_prep)
{
    dsc_model *m = make_linear();
    REQUIRE(m);
    char *text = json_of(m, NULL, NULL, 1);
    REQUIRE(text);
    CHECK(json_valid(text));
    CHECK(strstr(text, "\"preprocessing\": null") != NULL);
    CHECK(strstr(text, "\"target\": null") != NULL);
    CHECK(strstr(text, "\"classes\": null") != NULL);
    CHECK(strstr(text, "\"loss\": \"squared\"") != NULL);
    CHECK(strstr(text, "\"w\": [\n        [0.5],\n        [-1.25],\n        [2]\n      ],") !=
          NULL);
    CHECK(strstr(text, "\"b\": [0.75]") != NULL);

    /* A stream that cannot be written. */
    FILE *ro = fopen(path_in_tmp("ro.json"), "w");
    REQUIRE(ro);
    fclose(ro);
    ro = fopen(path_in_tmp("ro.json"), "r");
    REQUIRE(ro);
    CHECK_EQ_INT(dsc_model_write_json(ro, m, NULL, NULL, 1), DSC_EIO);
    fclose(ro);
    free(text);
    dsc_model_free(m);
}

TEST(modelfile_checkpoint_round_trip_resumes_bit_for_bit)
{
    enum { N = 60 };
    float x[N * 2];
    int32_t label[N];
    for (size_t r = 0; r < N; r++) {
        label[r] = (int32_t)(r % 2);
        x[2 * r] = (float)r / N + (float)label[r];
        x[2 * r + 1] = (float)((r * 7) % 5);
    }
    dsc_data d = {.n_rows = N, .n_features = 2, .x = x, .label = label};
    dsc_model_config mc;
    dsc_model_config_init(&mc, 2, 2, DSC_LOSS_LOG);
    dsc_train_config cfg;
    dsc_train_config_default(&cfg);
    cfg.epochs = 6;
    cfg.batch = 8;
    cfg.tol = -1;

    dsc_model *whole = dsc_model_new(&mc, NULL), *part = dsc_model_new(&mc, NULL);
    REQUIRE(whole && part);
    REQUIRE(dsc_train(whole, &d, NULL, &cfg) == DSC_OK);
    dsc_trainer *t = dsc_trainer_new(part, &d, NULL, &cfg, NULL);
    REQUIRE(t);
    for (int i = 0; i < 13; i++)
        REQUIRE(dsc_trainer_step(t) == 1);
    char path[512];
    snprintf(path, sizeof path, "%s/run.ckpt", test_tmpdir());
    REQUIRE(dsc_checkpoint_save(path, part, t, NULL, "epochs=6") == DSC_OK);
    dsc_trainer_free(t);

    /* A checkpoint is not a model file, and the other way round. */
    dsc_model *loaded = NULL;
    CHECK_EQ_INT(dsc_model_load(path, &loaded, NULL, NULL), DSC_EFORMAT);
    CHECK(strstr(dsc_last_error(), "checkpoint") != NULL);

    void *state = NULL;
    size_t size = 0;
    char *settings = NULL;
    REQUIRE(dsc_checkpoint_load(path, &loaded, NULL, &settings, &state, &size) == DSC_OK);
    CHECK(settings && strcmp(settings, "epochs=6") == 0);
    cfg.init_weights = 0;
    t = dsc_trainer_new(loaded, &d, NULL, &cfg, NULL);
    REQUIRE(t);
    REQUIRE(dsc_trainer_state_load(t, state, size) == DSC_OK);
    REQUIRE(dsc_trainer_run(t) == DSC_OK);
    CHECK(memcmp(dsc_model_params(loaded), dsc_model_params(whole),
                 dsc_model_n_params(whole) * sizeof(float)) == 0);

    /* Every cut of the checkpoint is refused. */
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    unsigned char bytes[8192];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    char cut_path[600];
    snprintf(cut_path, sizeof cut_path, "%s/cut.ckpt", test_tmpdir());
    for (size_t len = 0; len < n; len += 7) {
        f = fopen(cut_path, "wb");
        fwrite(bytes, 1, len, f);
        fclose(f);
        dsc_model *m = NULL;
        void *st = NULL;
        size_t sz;
        CHECK(dsc_checkpoint_load(cut_path, &m, NULL, NULL, &st, &sz) < 0);
        CHECK(m == NULL && st == NULL);
    }
    dsc_free(state);
    dsc_free(settings);
    dsc_trainer_free(t);
    dsc_model_free(loaded);
    dsc_model_free(part);
    dsc_model_free(whole);
}
