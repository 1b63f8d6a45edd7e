/*
 * bench.h - what the benchmarks share (memtest.c and soak.c; server.c and patterns.c in part):
 * failing loudly without stdio, bookkeeping memory that never passes through the allocator under
 * test, the random numbers (rand.h, which the tests use too), the /proc readers and the proof that
 * the allocator under test is the one serving the program.
 *
 * Included once ALLOCATOR_ENTRY (the function that serves the benchmark's allocations) and
 * BENCH_NAME (the program's name, for messages) are defined: by the program and seam.h (memtest,
 * soak: the allocator seam), or by the program alone (server, patterns: malloc). Everything here
 * is static inline: each program uses what it needs. Nothing here allocates.
 */
#ifndef VT_BENCH_H
#define VT_BENCH_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rand.h" /* the random numbers: splitmix64, shared with the tests */

/* ---- Failure: formatted on the stack and written with write(2), because a failure may come from
 * the allocator under test and stdio may need that allocator. ---- */

static inline void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static inline void die(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int len = snprintf(buf, sizeof buf, "%s: ", BENCH_NAME);
    va_start(ap, fmt);
    len += vsnprintf(buf + len, sizeof buf - (size_t)len, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof buf - 2) {
        len = (int)sizeof buf - 2;
    }
    buf[len++] = '\n';
    if (write(2, buf, (size_t)len) < 0) {
        /* Nothing left to report to. */
    }
    _exit(2);
}

/*
 * ---- Bookkeeping memory. The benchmarks' tables come from mmap so that they never pass through
 * the allocator under test. Every mapping is recorded, so that bk_resident_kb() can tell how much
 * of the process's RSS is the benchmark's own: that part is the same for every allocator and is
 * subtracted when RSS is compared. ----
 */
#define BK_MAX_REGIONS 8192

static struct {
    void *ptr;
    size_t bytes;
} bk_regions[BK_MAX_REGIONS];
static size_t bk_nregions;

static inline void *bk_map(size_t bytes)
{
    if (bytes == 0) {
        bytes = 1;
    }
    void *ptr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptr == MAP_FAILED) {
        die("mmap of %zu bytes for bookkeeping failed: %s", bytes, strerror(errno));
    }
    if (bk_nregions == BK_MAX_REGIONS) {
        die("internal: more than %d bookkeeping mappings", BK_MAX_REGIONS);
    }
    bk_regions[bk_nregions].ptr = ptr;
    bk_regions[bk_nregions].bytes = bytes;
    bk_nregions++;
    return ptr;
}

static inline void bk_unmap(void *ptr, size_t bytes)
{
    if (ptr == NULL) {
        return;
    }
    for (size_t i = 0; i < bk_nregions; i++) {
        if (bk_regions[i].ptr == ptr) {
            bk_regions[i] = bk_regions[--bk_nregions];
            break;
        }
    }
    munmap(ptr, bytes == 0 ? 1 : bytes);
}

/* Resident kB of all bookkeeping mappings, counted page by page with mincore(2). */
static inline long bk_resident_kb(void)
{
    static unsigned char vec[4096];
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = 0;
    for (size_t i = 0; i < bk_nregions; i++) {
        char *base = bk_regions[i].ptr;
        size_t npages = (bk_regions[i].bytes + page - 1) / page;
        for (size_t done = 0; done < npages;) {
            size_t chunk = npages - done < sizeof vec ? npages - done : sizeof vec;
            if (mincore(base + done * page, chunk * page, vec) != 0) {
                return -1;
            }
            for (size_t k = 0; k < chunk; k++) {
                pages += vec[k] & 1;
            }
            done += chunk;
        }
    }
    return (long)(pages * page / 1024);
}

/* ---- /proc readers: open/read into stack buffers, so that they allocate nothing. ---- */

/* One "Name:   123 kB" field of /proc/self/status, in kB; -1 when it cannot be read. */
static inline long status_kb(const char *field)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) {
        return -1;
    }
    buf[len] = '\0';
    size_t flen = strlen(field);
    for (char *line = buf; line != NULL && *line != '\0';) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            return strtol(line + flen + 1, NULL, 10);
        }
        line = strchr(line, '\n');
        if (line != NULL) {
            line++;
        }
    }
    return -1;
}

/* Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0, "5" in
 * clear_refs), so that the peak reported belongs to the timed work, not to its preparation. */
static inline bool reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

/* Whether /proc/self/maps mentions needle: proof that a preloaded library is really mapped. */
static inline bool maps_contain(const char *needle)
{
    char buf[65536];
    size_t nlen = strlen(needle), keep = 0;
    if (nlen == 0 || nlen >= sizeof buf / 2) {
        return false;
    }
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    for (;;) {
        ssize_t got = read(fd, buf + keep, sizeof buf - 1 - keep);
        if (got <= 0) {
            break;
        }
        size_t have = keep + (size_t)got;
        buf[have] = '\0';
        if (strstr(buf, needle) != NULL) {
            close(fd);
            return true;
        }
        keep = nlen - 1; /* a name split across two reads is still found */
        memmove(buf, buf + have - keep, keep);
    }
    close(fd);
    return false;
}

/* ---- Which allocator serves the program. ---- */

/*
 * The file of the shared object whose function serves bench_malloc (malloc, Tcl_Alloc or
 * vt_malloc), as the dynamic linker bound it for this executable: with a working LD_PRELOAD that is
 * the preloaded library, not libc. "?" when dladdr cannot tell.
 */
static inline const char *entry_object(void)
{
    __typeof__(&ALLOCATOR_ENTRY) entry = &ALLOCATOR_ENTRY;
    void *addr;
    Dl_info info;
    _Static_assert(sizeof entry == sizeof addr, "function and data pointers differ in size");
    memcpy(&addr, &entry, sizeof addr); /* ISO C has no cast from function to data pointer */
    if (dladdr(addr, &info) == 0 || info.dli_fname == NULL) {
        return "?";
    }
    return info.dli_fname;
}

#define BENCH_STR2(x) #x
#define BENCH_STR(x)  BENCH_STR2(x)
#define ENTRY_NAME    BENCH_STR(ALLOCATOR_ENTRY)

static inline const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

#endif /* VT_BENCH_H */
