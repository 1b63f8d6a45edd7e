/*
 * seam.h - what memtest.c and soak.c share beyond bench.h: the allocator seam (the only place that
 * names the allocator under test), the check that it is the one serving the program, and the
 * options both programs take (-s seed, -a label, -m library, -q, -v, -h).
 *
 * A program defines BENCH_NAME (its name, for messages) and, to measure another allocator than
 * malloc, one of
 *   BENCH_ZIPPY  Tcl_Alloc/Tcl_Realloc/Tcl_Free: Tcl's zippy allocator (-I/usr/include/tcl8.6,
 *                -ltcl8.6)
 *   BENCH_VT     vt_malloc/vt_realloc/vt_free: vtmalloc's own API, linked with -lvtmalloc (the
 *                library also replaces malloc for the process)
 * and then includes this file, which includes bench.h. Everything here is static inline.
 */
#ifndef VT_BENCH_SEAM_H
#define VT_BENCH_SEAM_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The allocator seam: ALLOCATOR_DEFAULT (the label when -a is not given), ALLOCATOR_ENTRY
 * (the function bench.h looks up to tell which library serves the program) and the three calls.
 * ---- */

#if defined(BENCH_ZIPPY)
/*
 * Tcl's own allocator. Debian's libtcl8.6 is built with -DTCL_THREADS=1 -DUSE_THREAD_ALLOC=1 (see
 * TCL_DEFS in /usr/lib/x86_64-linux-gnu/tcl8.6/tclConfig.sh), so Tcl_Alloc -> TclpAlloc is the
 * zippy thread allocator of generic/tclThreadAlloc.c; bench_check_allocator() confirms it at run
 * time, because Tcl_GetMemoryInfo only reports buckets when that allocator is compiled in (it
 * panics otherwise). Requests above 16368 bytes go to the system malloc inside Tcl, as they do in
 * a Tcl server. Tcl_Alloc panics instead of returning NULL; the programs' NULL checks are then
 * simply never taken.
 */
#include <tcl.h>
#define ALLOCATOR_DEFAULT "zippy"
#define ALLOCATOR_ENTRY   Tcl_Alloc
static inline void *bench_malloc(size_t size)
{
    return Tcl_Alloc((unsigned int)size);
}
static inline void *bench_realloc(void *ptr, size_t size)
{
    return Tcl_Realloc(ptr, (unsigned int)size);
}
static inline void bench_free(void *ptr)
{
    Tcl_Free(ptr);
}
#elif defined(BENCH_VT)
#include "vtmalloc.h"
#define ALLOCATOR_DEFAULT "vtmalloc-linked"
#define ALLOCATOR_ENTRY   vt_malloc
static inline void *bench_malloc(size_t size)
{
    return vt_malloc(size);
}
static inline void *bench_realloc(void *ptr, size_t size)
{
    return vt_realloc(ptr, size);
}
static inline void bench_free(void *ptr)
{
    vt_free(ptr);
}
#else
/* Plain malloc/realloc/free: glibc, or whatever LD_PRELOAD puts in front of it. */
#define ALLOCATOR_DEFAULT "malloc"
#define ALLOCATOR_ENTRY   malloc
static inline void *bench_malloc(size_t size)
{
    return malloc(size);
}
static inline void *bench_realloc(void *ptr, size_t size)
{
    return realloc(ptr, size);
}
static inline void bench_free(void *ptr)
{
    free(ptr);
}
#endif

#include "bench.h"

/* ---- The options both programs take. Each program's own options come first in its getopt
 * string, then BENCH_OPTIONS; its switch hands every letter it does not know to bench_option().
 * ---- */

typedef struct {
    uint64_t seed;      /* -s (default 1) */
    const char *label;  /* -a: the allocator's name in the output (default ALLOCATOR_DEFAULT) */
    const char *needle; /* -m: exit 3 unless a library whose name contains it serves the program */
    bool quiet;         /* -q: only the machine-readable lines */
    bool verbose;       /* -v: the program's extra output */
} bench_options_t;

#define BENCH_OPTIONS "s:a:m:qvh"

static inline bench_options_t bench_options_default(void)
{
    return (bench_options_t){.seed = 1, .label = ALLOCATOR_DEFAULT};
}

/* The number an option takes, in [min, max]; exit 2 with a message otherwise. */
static inline uint64_t parse_u64(const char *arg, char opt, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(arg, &end, 0);
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || value < min || value > max) {
        fprintf(stderr, "%s: -%c needs a number in %" PRIu64 "..%" PRIu64 ", not '%s'\n",
                BENCH_NAME, opt, min, max, arg);
        exit(2);
    }
    return value;
}

/*
 * One option letter that getopt returned, with its argument: a shared option is stored, -h prints
 * usage on stdout and exits 0, anything else (an unknown option, getopt's '?') prints usage on
 * stderr and exits 2. The program's switch calls it from its default case.
 */
static inline void bench_option(int c, const char *arg, bench_options_t *b, void (*usage)(FILE *))
{
    switch (c) {
    case 's':
        b->seed = parse_u64(arg, 's', 0, UINT64_MAX);
        break;
    case 'a':
        b->label = arg;
        break;
    case 'm':
        b->needle = arg;
        break;
    case 'q':
        b->quiet = true;
        break;
    case 'v':
        b->verbose = true;
        break;
    case 'h':
        usage(stdout);
        exit(0);
    default:
        usage(stderr);
        exit(2);
    }
}

/*
 * After the getopt loop: no operands, and a label that the output's key=value lines can carry,
 * without any of the characters in `forbidden` (a space among them is named "spaces"). Exit 2
 * otherwise.
 */
static inline void bench_options_end(int argc, char **argv, const bench_options_t *b,
                                     const char *forbidden)
{
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", BENCH_NAME, argv[optind]);
        exit(2);
    }
    if (strpbrk(b->label, forbidden) == NULL) {
        return;
    }
    char names[128] = "";
    size_t n = strlen(forbidden), len = 0;
    for (size_t i = 0; i < n && len < sizeof names; i++) {
        const char *sep = i == 0 ? "" : i + 1 < n ? ", " : " or ";
        if (forbidden[i] == ' ') {
            len += (size_t)snprintf(names + len, sizeof names - len, "%sspaces", sep);
        } else {
            len += (size_t)snprintf(names + len, sizeof names - len, "%s'%c'", sep, forbidden[i]);
        }
    }
    fprintf(stderr, "%s: -a label must not contain %s\n", BENCH_NAME, names);
    exit(2);
}

/* ---- Which allocator serves the program ---- */

#if defined(BENCH_ZIPPY)
/*
 * Confirms that Tcl_Alloc is zippy: Tcl_GetMemoryInfo lists a "shared" cache and one entry per
 * bucket ("blocksize free removes inserts assigned locks waits") only in a USE_THREAD_ALLOC build.
 * Prints the buckets' count and sizes when asked to.
 */
static inline void zippy_check(bool quiet, bool show_buckets)
{
    Tcl_DString ds;
    Tcl_Free(Tcl_Alloc(16)); /* make sure this thread has a cache */
    Tcl_DStringInit(&ds);
    Tcl_GetMemoryInfo(&ds);
    const char *info = Tcl_DStringValue(&ds), *shared = strstr(info, "shared");
    if (shared == NULL) {
        die("Tcl_GetMemoryInfo reports no shared cache: Tcl's zippy allocator is not in use");
    }
    unsigned buckets = 0, largest = 0, bsize;
    for (const char *p = strchr(shared, '{'); p != NULL; p = strchr(p + 1, '{')) {
        if (sscanf(p + 1, "%u", &bsize) == 1) {
            buckets++;
            largest = bsize;
        }
    }
    if (!quiet && show_buckets) {
        printf("zippy: Tcl %s thread allocator in use: %u buckets, blocks of %u..%u bytes\n",
               TCL_PATCH_LEVEL, buckets, buckets > 0 ? largest >> (buckets - 1) : 0, largest);
    } else if (!quiet) {
        printf("zippy: Tcl %s thread allocator in use\n", TCL_PATCH_LEVEL);
    }
    Tcl_DStringFree(&ds);
}
#endif

/*
 * Before any work, that the allocator under test is the one the program will measure. Zippy: Tcl
 * is initialised (argv0 is the program's argv[0]) and its thread allocator confirmed, with a line
 * on stdout unless -q (with the buckets when zippy_buckets). -m: the library must be mapped, and
 * it must serve ALLOCATOR_ENTRY (malloc, Tcl_Alloc, vt_malloc); exit 3 otherwise.
 */
static inline void bench_check_allocator(const char *argv0, const bench_options_t *b,
                                         bool zippy_buckets)
{
#if defined(BENCH_ZIPPY)
    Tcl_FindExecutable(argv0);
    zippy_check(b->quiet, zippy_buckets);
#else
    (void)argv0;
    (void)zippy_buckets;
#endif
    if (b->needle != NULL && !maps_contain(b->needle)) {
        fprintf(stderr, "%s: '%s' is not mapped into this process (check LD_PRELOAD)\n", BENCH_NAME,
                b->needle);
        exit(3);
    }
    if (b->needle != NULL && strstr(entry_object(), b->needle) == NULL) {
        fprintf(stderr, "%s: '%s' is mapped, but %s comes from %s\n", BENCH_NAME, b->needle,
                ENTRY_NAME, entry_object());
        exit(3);
    }
}

#endif /* VT_BENCH_SEAM_H */
