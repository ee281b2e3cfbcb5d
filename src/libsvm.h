/*
 * libsvm.h - test hooks of the LIBSVM reader (libsvm.c), so that tests can compare its two
 * paths and its two storages on small files.
 */
#ifndef DSC_LIBSVM_H
#define DSC_LIBSVM_H

#include <stddef.h>

/* Allow (1, the default) or forbid (0) dense storage; forbidden, every table is CSR. */
void dsc__libsvm_allow_dense(int allow);

/* Allow (1, the default) or forbid (0) the mapped path; forbidden, every file is streamed. */
void dsc__libsvm_allow_map(int allow);

/* The bytes a piece of the mapped path starts in (0: the default, 1 MiB). */
void dsc__libsvm_set_piece_bytes(size_t bytes);

/* Reads (so far, in this process) that the mapped path completed, and that it handed to the
 * stream path because a count was wrong. */
void dsc__libsvm_path_counts(size_t *mapped, size_t *recounted);

#endif /* DSC_LIBSVM_H */
