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

/* Little-endian u16 at p. */
static inline size_t fuzz_u16(const uint8_t *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

#endif /* DSC_FUZZ_COMMON_H */
