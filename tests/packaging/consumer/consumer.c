/*
 * consumer.c - a program built against an installed vtmalloc (tests/packaging/consumers.sh
 * builds it with find_package(vtmalloc) and with pkg-config). It checks that it got the
 * vtmalloc it was built for: the version, malloc coming from the same object as vtmalloc's
 * API, malloc's blocks being vtmalloc's, and that object being the installed one.
 *
 * Usage: consumer VERSION shared LIBDIR   (libvtmalloc.so must come from LIBDIR)
 *        consumer VERSION static          (vtmalloc must be in the executable itself)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vtmalloc.h>

static int failed(const char *what)
{
    printf("consumer: FAIL: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return failed("usage: consumer VERSION shared LIBDIR | consumer VERSION static");
    const char *version = argv[1], *mode = argv[2];
    if (strcmp(vt_version(), version) != 0 || strcmp(VTMALLOC_VERSION, version) != 0)
        return failed("vt_version() or VTMALLOC_VERSION is not the expected version");

    /* malloc, as every library of the process finds it, must live where vt_malloc lives. */
    Dl_info m, v;
    void *malloc_addr = dlsym(RTLD_DEFAULT, "malloc");
    if (malloc_addr == NULL || dladdr(malloc_addr, &m) == 0 || dladdr((void *)vt_malloc, &v) == 0)
        return failed("dladdr");
    if (strcmp(m.dli_fname, v.dli_fname) != 0) {
        printf("consumer: malloc is in %s, vt_malloc in %s\n", m.dli_fname, v.dli_fname);
        return failed("malloc is not vtmalloc's");
    }

    char real[PATH_MAX], want[PATH_MAX];
    if (realpath(v.dli_fname, real) == NULL)
        return failed("realpath of the library");
    if (strcmp(mode, "shared") == 0) {
        if (argc < 4 || realpath(argv[3], want) == NULL)
            return failed("LIBDIR");
        size_t n = strlen(want);
        if (strncmp(real, want, n) != 0 || real[n] != '/' || strstr(real + n, "libvtmalloc.so") == NULL) {
            printf("consumer: vtmalloc comes from %s, not from %s\n", real, want);
            return failed("not the installed shared library");
        }
    } else if (strcmp(mode, "static") == 0) {
        if (realpath("/proc/self/exe", want) == NULL || strcmp(real, want) != 0) {
            printf("consumer: vtmalloc comes from %s, not from the executable\n", real);
            return failed("not linked statically");
        }
    } else {
        return failed("mode");
    }

    /* malloc's blocks are vtmalloc's: vtmalloc knows their size and counts their cache. */
    char *p = malloc(1000);
    if (p == NULL)
        return failed("malloc");
    memset(p, 7, 1000);
    size_t usable = vt_malloc_usable_size(p);
    vt_stats_t st;
    vt_stats_get(&st);
    free(p);
    if (usable < 1000 || st.thread_caches_live < 1 || st.spans_mapped < 1)
        return failed("malloc's block is not vtmalloc's");

    printf("consumer: vtmalloc %s %s from %s (usable size of 1000 bytes: %zu)\n", vt_version(),
           mode, real, usable);
    return 0;
}
