/*
 * fuzz_common.h - what the libFuzzer harnesses share: the readers take a path, so each
 * harness writes its input to an in-memory file (memfd_create) and hands the readers its
 * /dev/fd/N name. Opening /dev/fd/N opens the memory file afresh at offset 0, and mmap works
 * on it, so every reader sees an ordinary regular file. Nothing touches the disk.
 */
#ifndef DSC_FUZZ_COMMON_H
#define DSC_FUZZ_COMMON_H

#define _GNU_SOURCE
#include "descent.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An in-memory file and the path that names it. */
typedef struct fuzz_file {
    int fd;
    char path[32];
} fuzz_file;

/* Create the memory file once per process; abort (a harness bug, not a finding) on failure. */
static inline void fuzz_file_init(fuzz_file *f, const char *name)
{
    f->fd = memfd_create(name, 0);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/dev/fd/%d", f->fd);
}

/* Replace the file's contents with data[0..size). */
static inline void fuzz_file_set(fuzz_file *f, const void *data, size_t size)
{
    const unsigned char *bytes = data;
    size_t done = 0;

    if (ftruncate(f->fd, 0) != 0) {
        perror("ftruncate");
        abort();
    }
    while (done < size) {
        ssize_t n = pwrite(f->fd, bytes + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("pwrite");
            abort();
        }
        done += (size_t)n;
    }
}

/*
 * Replace the file's contents with data[0..size) closed by its CRC-32 (little-endian), as the
 * model and checkpoint files are, so that the fuzzer reaches the checks behind the checksum.
 * -1 when the copy cannot be allocated.
 */
static inline int fuzz_file_set_with_crc(fuzz_file *f, const uint8_t *data, size_t size)
{
    unsigned char *image = malloc(size + 4);

    if (!image)
        return -1;
    memcpy(image, data, size);
    uint32_t crc = dsc_crc32(0, data, size);
    for (int i = 0; i < 4; i++)
        image[size + (size_t)i] = (unsigned char)(crc >> (8 * i));
    fuzz_file_set(f, image, size + 4);
    free(image);
    return 0;
}

/* Little-endian u16 at p. */
static inline size_t fuzz_u16(const uint8_t *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

/*
 * The path of train then predict: read path (with opts->labels_path as the targets file, if
 * any), fit the preprocessing and apply it; then read path again with the encoding it taught,
 * with labels_again as the targets file (NULL: the features alone, as predict reads them).
 * Tables wider than max_features are not fitted (0: no limit). Nothing is returned: the
 * harness looks for crashes, leaks and undefined behaviour, not for answers.
 */
static inline void fuzz_read_fit_reread(const char *path, dsc_read_options *opts,
                                        int standardize, const char *labels_again,
                                        size_t max_features)
{
    int err;
    dsc_table *table = dsc_table_read(path, opts, NULL, &err);

    if (!table)
        return;
    if (max_features && dsc_table_data(table)->n_features > max_features) {
        dsc_table_free(table);
        return;
    }
    dsc_prep *prep = dsc_table_prep(table);
    if (dsc_prep_fit(prep, table, NULL, 0, standardize) == 0)
        dsc_prep_apply(prep, table);

    opts->labels_path = labels_again;
    dsc_table *again = dsc_table_read(path, opts, prep, &err);
    if (again)
        dsc_prep_apply(dsc_table_prep(again), again);
    dsc_table_free(again);
    dsc_table_free(table);
}

/*
 * A harness for a reader of two files (features and targets, as .npy and IDX are): an option
 * byte, a little-endian u16 length L, then L bytes of the features file and the rest as the
 * targets file.
 */
static inline int fuzz_two_file_reader(const uint8_t *data, size_t size, dsc_format format,
                                       fuzz_file *features, fuzz_file *targets)
{
    dsc_read_options opts;

    if (size < 3)
        return 0;
    size_t split = fuzz_u16(data + 1);
    if (split > size - 3)
        split = size - 3;
    dsc_read_options_default(&opts);
    opts.format = format;
    opts.classify = data[0] % 3 - 1;
    opts.missing = (dsc_missing)((data[0] / 3) % 3);
    int standardize = (data[0] / 9) & 1;
    opts.labels_path = targets->path;
    fuzz_file_set(features, data + 3, split);
    fuzz_file_set(targets, data + 3 + split, size - 3 - split);

    fuzz_read_fit_reread(features->path, &opts, standardize,
                         (data[0] / 18) & 1 ? targets->path : NULL, 0);
    return 0;
}

#endif /* DSC_FUZZ_COMMON_H */
