/*
 * atomicfile.c - files that appear whole or not at all: written to a temporary file in the
 * target's folder, flushed, synced and renamed over the target. A crash, a full disk or a
 * failed allocation never leaves a half-written model or data cache under the target's name.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dsc__atomic_open(dsc__atomic_file *f, const char *path)
{
    static const char suffix[] = ".tmp.XXXXXX";
    size_t path_len = strlen(path);

    f->fp = NULL;
    f->path = path;
    f->tmp_path = dsc__alloc(path_len + sizeof suffix);
    if (!f->tmp_path)
        return dsc__fail(DSC_ENOMEM, "%s: out of memory", path);
    memcpy(f->tmp_path, path, path_len);
    memcpy(f->tmp_path + path_len, suffix, sizeof suffix);

    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        int saved = errno;
        dsc__free(f->tmp_path);
        f->tmp_path = NULL;
        return dsc__fail(DSC_EIO, "%s: cannot create a temporary file next to it: %s", path,
                         strerror(saved));
    }

    /* mkstemp makes the file private: give it the target's permissions, or a new file's. */
    struct stat existing;
    fchmod(fd, stat(path, &existing) == 0 ? (existing.st_mode & 0777) : 0644);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int saved = errno;
        close(fd);
        unlink(f->tmp_path);
        dsc__free(f->tmp_path);
        f->tmp_path = NULL;
        return dsc__fail(DSC_EIO, "%s: cannot open a temporary file: %s", path,
                         strerror(saved));
    }
    return DSC_OK;
}

/* Make the rename durable: sync the folder of path, which is cut at its last '/' here. */
static void sync_folder(char *path)
{
    char *slash = strrchr(path, '/');
    const char *folder = path;

    if (!slash)
        folder = ".";
    else
        slash[slash == path ? 1 : 0] = '\0';
    int fd = open(folder, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int dsc__atomic_close(dsc__atomic_file *f, int failed_errno, const char *what)
{
    FILE *fp = f->fp;

    if (!failed_errno && fflush(fp) != 0)
        failed_errno = errno ? errno : -1;
    if (!failed_errno && fsync(fileno(fp)) != 0)
        failed_errno = errno ? errno : -1;
    if (fclose(fp) != 0 && !failed_errno)
        failed_errno = errno ? errno : -1;
    if (!failed_errno && rename(f->tmp_path, f->path) != 0)
        failed_errno = errno ? errno : -1;
    f->fp = NULL;

    if (failed_errno) {
        unlink(f->tmp_path);
        dsc__free(f->tmp_path);
        f->tmp_path = NULL;
        return dsc__fail(DSC_EIO, "%s: writing the %s failed: %s", f->path, what,
                         failed_errno > 0 ? strerror(failed_errno) : "unknown error");
    }
    sync_folder(f->tmp_path); /* best effort: the file is in place whatever this gives */
    dsc__free(f->tmp_path);
    f->tmp_path = NULL;
    return DSC_OK;
}
