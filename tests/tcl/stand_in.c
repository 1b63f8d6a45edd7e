/*
 * stand_in.c - test-only stand-ins for vt_stats_dump, vt_prof_dump and vt_prof_sample_bytes,
 * which include/vtmalloc.h declares and src/ does not implement yet. Linked into a copy of
 * libvtmalloc.so (tests/tcl.cmake: vt_tcl_stand_in) so that the Tcl package's tests can check
 * the commands' real behaviour, not only their "this vtmalloc has no ..." error: a file
 * written, errno turned into the error message, ENOTSUP when profiling is off.
 *
 * They are weak: once src/ defines the real functions, the real ones win at link time and the
 * same tests run against them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vtmalloc.h>

#define VT_STAND_IN __attribute__((weak, visibility("default")))

/* Writes text to path (created or truncated): 0, or -1 with errno set. */
static int write_file(const char *path, const char *text)
{
    if (path == NULL) {
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int err = errno;
    close(fd);
    if (n != (ssize_t)len) {
        errno = n < 0 ? err : EIO;
        return -1;
    }
    return 0;
}

VT_STAND_IN size_t vt_prof_sample_bytes(void)
{
    const char *value = getenv("VTMALLOC_PROF_SAMPLE");
    return value != NULL ? (size_t)strtoul(value, NULL, 10) : 0;
}

VT_STAND_IN int vt_stats_dump(const char *path)
{
    return write_file(path, "vtmalloc statistics (test stand-in for vt_stats_dump)\n");
}

VT_STAND_IN int vt_prof_dump(const char *path)
{
    if (vt_prof_sample_bytes() == 0) {
        errno = ENOTSUP;
        return -1;
    }
    return write_file(path, "heap profile:    0:        0 [     0:        0] @ heap_v2/65536\n");
}
