/*
 * test_idx.c - the IDX reader (MNIST's format): images and labels, plain and gzipped, the
 * header and size checks with their exact messages, reading against a trained encoding, and
 * a mutation round.
 */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#ifdef DSC_HAVE_ZLIB
#include <zlib.h>
#endif

/* An IDX file being built in memory. */
typedef struct {
    unsigned char bytes[2048];
    size_t len;
} idx_image;

static void put_be32(idx_image *im, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        im->bytes[im->len++] = (unsigned char)(v >> (8 * i));
}

/* An images file of n images of rows x cols pixels, pixel (i, p) = (7 * i + 3 * p) % 256. */
static void make_images(idx_image *im, uint32_t n, uint32_t rows, uint32_t cols)
{
    im->len = 0;
    put_be32(im, 0x00000803);
    put_be32(im, n);
    put_be32(im, rows);
    put_be32(im, cols);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t p = 0; p < rows * cols; p++)
            im->bytes[im->len++] = (unsigned char)((7 * i + 3 * p) % 256);
    }
}

static void make_labels(idx_image *im, uint32_t n, const unsigned char *labels)
{
    im->len = 0;
    put_be32(im, 0x00000801);
    put_be32(im, n);
    memcpy(im->bytes + im->len, labels, n);
    im->len += n;
}

static void write_idx(const idx_image *im, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(im->bytes, 1, im->len, f);
        fclose(f);
    }
}

static dsc_table *read_idx(const char *images, const char *labels, int classify,
                           const dsc_prep *prep, int *err)
{
    dsc_read_options opts;
    dsc_read_options_default(&opts);
    opts.format = DSC_FORMAT_IDX;
    opts.labels_path = labels;
    opts.classify = classify;
    *err = 0;
    return dsc_table_read(images, &opts, prep, err);
}

static int failed_with(const dsc_table *t, int err, int code, const char *file,
                       const char *what)
{
    char expected[2048];
    snprintf(expected, sizeof expected, "%s: %s", file, what);
    int ok = t == NULL && err == code && strcmp(dsc_last_error(), expected) == 0;
    if (!ok)
        fprintf(stderr, "    got %d \"%s\"\n    expected %d \"%s\"\n", err, dsc_last_error(),
                code, expected);
    return ok;
}

/* Check a table read from make_images(3, 2, 3) and labels {7, 2, 7}. */
static int is_the_small_set(dsc_table *t)
{
    const dsc_data *d = dsc_table_data(t);
    dsc_prep *prep = dsc_table_prep(t);
    int ok = d->n_rows == 3 && d->n_features == 6 && d->x && d->label && !d->y;
    for (size_t i = 0; ok && i < 3; i++) {
        for (size_t p = 0; p < 6; p++)
            ok &= d->x[i * 6 + p] == (float)((7 * i + 3 * p) % 256);
    }
    ok = ok && dsc_prep_n_classes(prep) == 2 && dsc_prep_n_features(prep) == 6;
    ok = ok && strcmp(dsc_prep_class_name(prep, 0), "2") == 0 &&
         strcmp(dsc_prep_class_name(prep, 1), "7") == 0;
    return ok && d->label[0] == 1 && d->label[1] == 0 && d->label[2] == 1;
}

static const unsigned char small_labels[3] = {7, 2, 7};

TEST(idx_reads_images_and_labels)
{
    char images[512], labels[512];
    idx_image im;
    int err;
    make_images(&im, 3, 2, 3);
    write_idx(&im, "images-idx3-ubyte", images, sizeof images);
    make_labels(&im, 3, small_labels);
    write_idx(&im, "labels-idx1-ubyte", labels, sizeof labels);

    dsc_table *t = read_idx(images, labels, -1, NULL, &err);
    REQUIRE(t != NULL);
    CHECK(is_the_small_set(t));
    dsc_table_free(t);

    /* Classes sort numerically, not as text: 10 comes after 9. */
    static const unsigned char many[3] = {10, 9, 200};
    make_labels(&im, 3, many);
    write_idx(&im, "labels-idx1-ubyte", labels, sizeof labels);
    t = read_idx(images, labels, -1, NULL, &err);
    REQUIRE(t != NULL);
    dsc_prep *prep = dsc_table_prep(t);
    REQUIRE(dsc_prep_n_classes(prep) == 3);
    CHECK(strcmp(dsc_prep_class_name(prep, 0), "9") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 1), "10") == 0);
    CHECK(strcmp(dsc_prep_class_name(prep, 2), "200") == 0);
    CHECK(dsc_table_data(t)->label[0] == 1 && dsc_table_data(t)->label[2] == 2);
    dsc_table_free(t);

    /* classify 0: labels as regression targets. */
    t = read_idx(images, labels, 0, NULL, &err);
    REQUIRE(t != NULL);
    REQUIRE(dsc_table_data(t)->y != NULL);
    CHECK(dsc_table_data(t)->y[2] == 200.0f);
    CHECK_EQ_INT(dsc_table_data(t)->n_targets, 1);
    dsc_table_free(t);
}

#ifdef DSC_HAVE_ZLIB
static void write_gz(const idx_image *im, size_t len, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", test_tmpdir(), name);
    gzFile gz = gzopen(path, "wb");
    if (gz) {
        gzwrite(gz, im->bytes, (unsigned)len);
        gzclose(gz);
    }
}
#endif

TEST(idx_reads_gzipped_files)
{
#ifdef DSC_HAVE_ZLIB
    char images[512], labels[512];
    idx_image im;
    int err;
    make_images(&im, 3, 2, 3);
    write_gz(&im, im.len, "images-idx3-ubyte.gz", images, sizeof images);
    make_labels(&im, 3, small_labels);
    write_gz(&im, im.len, "labels-idx1-ubyte.gz", labels, sizeof labels);

    dsc_table *t = read_idx(images, labels, -1, NULL, &err);
    REQUIRE(t != NULL);
    CHECK(is_the_small_set(t));
    dsc_table_free(t);

    /* A gzip stream cut short, and one whose checksum does not match. */
    FILE *f = fopen(images, "rb");
    REQUIRE(f != NULL);
    unsigned char gz[512];
    size_t gz_len = fread(gz, 1, sizeof gz, f);
    fclose(f);
    f = fopen(images, "wb");
    REQUIRE(f != NULL);
    fwrite(gz, 1, gz_len - 12, f);
    fclose(f);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "corrupt gzip data (unexpected end of file)"));

    gz[gz_len - 8] ^= 0x01; /* the CRC-32 of the data */
    f = fopen(images, "wb");
    REQUIRE(f != NULL);
    fwrite(gz, 1, gz_len, f);
    fclose(f);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images, "corrupt gzip data (incorrect data check)"));
#else
    /* Without zlib a gzipped file is refused with advice. */
    char images[512], labels[512];
    idx_image im;
    int err;
    im.len = 0;
    static const unsigned char gz_start[20] = {0x1f, 0x8b, 8, 0};
    memcpy(im.bytes, gz_start, sizeof gz_start);
    im.len = sizeof gz_start;
    write_idx(&im, "images-idx3-ubyte.gz", images, sizeof images);
    make_labels(&im, 3, small_labels);
    write_idx(&im, "labels-idx1-ubyte", labels, sizeof labels);
    dsc_table *t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images, "gzip-compressed, and descent was compiled "
                                                   "without zlib; gunzip the file first"));
#endif
}

TEST(idx_bad_headers_and_sizes)
{
    char images[512], labels[512], what[1200];
    idx_image im;
    int err;
    dsc_table *t;
    make_labels(&im, 3, small_labels);
    write_idx(&im, "labels", labels, sizeof labels);

    /* The labels file given as images, and the other way round. */
    t = read_idx(labels, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, labels,
                      "not an IDX images file (magic 0x00000801, expected 0x00000803)"));
    make_images(&im, 3, 2, 3);
    write_idx(&im, "images", images, sizeof images);
    t = read_idx(images, images, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "not an IDX labels file (magic 0x00000803, expected 0x00000801)"));

    /* Counts that disagree. */
    make_labels(&im, 2, small_labels);
    write_idx(&im, "labels2", labels, sizeof labels);
    t = read_idx(images, labels, -1, NULL, &err);
    snprintf(what, sizeof what, "2 labels but %s has 3 images", images);
    CHECK(failed_with(t, err, DSC_EFORMAT, labels, what));

    /* Files that end early or go on too long. */
    make_labels(&im, 3, small_labels);
    im.len -= 2;
    write_idx(&im, "labels3", labels, sizeof labels);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, labels, "file ends after 1 labels, header says 3"));

    make_images(&im, 3, 2, 3);
    im.len -= 7;
    write_idx(&im, "images2", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images, "file ends after 1 images, header says 3"));

    make_images(&im, 3, 2, 3);
    im.bytes[im.len++] = 0;
    write_idx(&im, "images3", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "data goes on after the 3 images the header declares"));

    make_images(&im, 3, 2, 3);
    im.len = 10;
    write_idx(&im, "images4", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "file ends inside the IDX header (10 of 16 bytes)"));

    make_images(&im, 0, 2, 3);
    write_idx(&im, "images5", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "header says 0 images of 2 x 3 pixels: nothing to read"));

    im.len = 0;
    put_be32(&im, 0x00000803);
    put_be32(&im, 1);
    put_be32(&im, 65536);
    put_be32(&im, 65536);
    write_idx(&im, "images6", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_ELIMIT, images,
                      "images of 65536 x 65536 pixels: more than 2147483647 features"));

    /* A header that claims four billion images over two costs only what the file holds. */
    make_images(&im, 2, 28, 28);
    im.bytes[4] = 0xee;
    write_idx(&im, "images7", images, sizeof images);
    t = read_idx(images, labels, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, images,
                      "file ends after 2 images, header says 3992977410"));

    /* Learning needs the labels. */
    make_images(&im, 3, 2, 3);
    write_idx(&im, "images8", images, sizeof images);
    t = read_idx(images, NULL, -1, NULL, &err);
    CHECK(failed_with(t, err, DSC_EINVAL, images,
                      "no labels file: give labels_path to learn from IDX images"));
}

TEST(idx_reads_against_a_trained_encoding)
{
    char images[512], labels[512], path[512];
    idx_image im;
    int err;
    make_images(&im, 3, 2, 3);
    write_idx(&im, "images", images, sizeof images);
    make_labels(&im, 3, small_labels);
    write_idx(&im, "labels", labels, sizeof labels);
    dsc_table *train = read_idx(images, labels, -1, NULL, &err);
    REQUIRE(train != NULL);
    dsc_prep *prep = dsc_table_prep(train);

    /* Without labels, and with known labels in another order. */
    dsc_table *t = read_idx(images, NULL, -1, prep, &err);
    REQUIRE(t != NULL);
    CHECK(dsc_table_data(t)->label == NULL && dsc_table_data(t)->n_rows == 3);
    dsc_table_free(t);

    static const unsigned char other[3] = {2, 2, 7};
    make_labels(&im, 3, other);
    write_idx(&im, "labels2", path, sizeof path);
    t = read_idx(images, path, -1, prep, &err);
    REQUIRE(t != NULL);
    const dsc_data *d = dsc_table_data(t);
    CHECK(d->label[0] == 0 && d->label[1] == 0 && d->label[2] == 1);
    dsc_table_free(t);

    static const unsigned char unseen[3] = {2, 9, 7};
    make_labels(&im, 3, unseen);
    write_idx(&im, "labels3", path, sizeof path);
    t = read_idx(images, path, -1, prep, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path, "label 9 of image 2 was not seen in training"));

    make_images(&im, 1, 4, 4);
    write_idx(&im, "images2", path, sizeof path);
    t = read_idx(path, NULL, -1, prep, &err);
    CHECK(failed_with(t, err, DSC_EFORMAT, path,
                      "images of 4 x 4 = 16 pixels but the training data had 6 features"));
    dsc_table_free(train);
}

TEST(idx_mutated_files_fail_cleanly)
{
    char images[512], labels[512], path[512];
    idx_image images_seed, labels_seed;
    make_images(&images_seed, 6, 3, 4);
    make_labels(&labels_seed, 6, (const unsigned char *)"\1\2\3\1\2\3");
    write_idx(&images_seed, "images", images, sizeof images);
    write_idx(&labels_seed, "labels", labels, sizeof labels);

    dsc_rng rng;
    dsc_rng_seed(&rng, 1998);
    int n_tables = 0, n_errors = 0, all_sound = 1;
    for (int round = 0; round < 3000; round++) {
        int mutate_labels = dsc_rng_below(&rng, 3) == 0;
        idx_image im = mutate_labels ? labels_seed : images_seed;
        int n_edits = 1 + (int)dsc_rng_below(&rng, 3);
        for (int e = 0; e < n_edits && im.len > 0; e++) {
            /* Most edits hit the header, where the sizes live. */
            size_t span = dsc_rng_below(&rng, 2) ? 16 : im.len;
            size_t at = (size_t)dsc_rng_below(&rng, span < im.len ? span : im.len);
            switch (dsc_rng_below(&rng, 3)) {
            case 0: im.bytes[at] = (unsigned char)dsc_rng_below(&rng, 256); break;
            case 1: im.bytes[at] ^= (unsigned char)(1u << dsc_rng_below(&rng, 8)); break;
            default: im.len = at; break;
            }
        }
#ifdef DSC_HAVE_ZLIB
        if (dsc_rng_below(&rng, 4) == 0)
            write_gz(&im, im.len, "m.gz", path, sizeof path);
        else
#endif
            write_idx(&im, "m", path, sizeof path);

        int err;
        dsc_table *t = mutate_labels ? read_idx(images, path, -1, NULL, &err)
                                     : read_idx(path, labels, -1, NULL, &err);
        if (t) {
            const dsc_data *d = dsc_table_data(t);
            n_tables++;
            all_sound &= d->x && d->label && d->n_rows == 6;
            for (size_t r = 0; all_sound && r < d->n_rows; r++)
                all_sound &= d->label[r] >= 0 &&
                             (size_t)d->label[r] < dsc_prep_n_classes(dsc_table_prep(t));
            for (size_t i = 0; all_sound && i < d->n_rows * d->n_features; i++)
                all_sound &= d->x[i] >= 0.0f && d->x[i] <= 255.0f;
        } else {
            n_errors++;
            all_sound &= err < 0 && dsc_last_error()[0] != '\0';
        }
        dsc_table_free(t);
    }
    CHECK(all_sound);
    CHECK(n_tables > 100);
    CHECK(n_errors > 1000);
}
