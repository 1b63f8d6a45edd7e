/*
 * probe.c - a small program that the packaging tests run under the launcher, preloaded, linked
 * and under valgrind. It finds out for itself whether vtmalloc serves its malloc, instead of
 * the tests assuming it.
 *
 * Usage: probe MODE
 *   vtmalloc   exit 0 if malloc is vtmalloc's (its blocks are vtmalloc's, by vt_* calls found
 *              at run time), 3 if it is another allocator's
 *   work       allocate, resize and free in several threads, blocks crossing threads; frees
 *              everything (valgrind must find nothing)
 *   overflow   read one byte past the end of a block (valgrind must report it)
 *   leak       lose a block (valgrind's leak check must report it)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vtmalloc.h>

typedef size_t (*usable_fn)(void *);
typedef void (*stats_fn)(vt_stats_t *);

static int check_vtmalloc(void)
{
    /* Looked up at run time: the probe is built without vtmalloc, and may or may not run
     * with it. RTLD_DEFAULT finds a preloaded or linked libvtmalloc; a static one is in the
     * executable, which the default scope covers too when it exports its symbols. */
    usable_fn usable = (usable_fn)dlsym(RTLD_DEFAULT, "vt_malloc_usable_size");
    stats_fn stats = (stats_fn)dlsym(RTLD_DEFAULT, "vt_stats_get");
    void *malloc_addr = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    const char *where = "?", *vt_where = "?";
    if (malloc_addr != NULL && dladdr(malloc_addr, &info) != 0 && info.dli_fname != NULL)
        where = info.dli_fname;
    if (usable == NULL || stats == NULL) {
        printf("probe: vtmalloc is not loaded; malloc comes from %s\n", where);
        return 3;
    }
    /* malloc must come from the object that holds vtmalloc: libvtmalloc.so, or the
     * executable itself when it was linked with libvtmalloc.a. */
    if (dladdr((void *)stats, &info) != 0 && info.dli_fname != NULL)
        vt_where = info.dli_fname;
    if (strcmp(where, vt_where) != 0) {
        printf("probe: vtmalloc is in %s but malloc comes from %s\n", vt_where, where);
        return 3;
    }
    /* A block from malloc must be a live vtmalloc block: vtmalloc would abort on a foreign
     * pointer, and its counters must show the thread cache that served it. */
    char *p = malloc(100);
    if (p == NULL)
        return 1;
    memset(p, 1, 100);
    size_t size = usable(p);
    vt_stats_t st;
    stats(&st);
    free(p);
    if (size < 100 || st.thread_caches_live < 1 || st.spans_mapped < 1) {
        printf("probe: malloc's block is not vtmalloc's (usable %zu, caches %llu, spans %llu)\n",
               size, (unsigned long long)st.thread_caches_live,
               (unsigned long long)st.spans_mapped);
        return 3;
    }
    printf("probe: malloc is vtmalloc's, from %s (usable size of 100 bytes: %zu)\n", where,
           size);
    return 0;
}

#define THREADS 4
#define ROUNDS 2000

static void *handoff[THREADS][64];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        size_t size = (size_t)(r * 37 % 3000) + 1;
        char *a = malloc(size);
        char *b = calloc(3, size);
        if (a == NULL || b == NULL)
            abort();
        memset(a, 'a', size);
        a = realloc(a, size * 2);
        if (a == NULL || b[size - 1] != 0)
            abort();
        free(b);
        void *aligned = NULL;
        if (posix_memalign(&aligned, 256, size) != 0)
            abort();
        free(aligned);
        free(a);
        char *s = strdup("the quick brown fox");
        /* Every so often a block crosses to the next thread, which frees it. */
        void **slot = &handoff[(id + 1) % THREADS][r % 64];
        void *old = __atomic_exchange_n(slot, s, __ATOMIC_ACQ_REL);
        free(old);
    }
    return NULL;
}

static int work(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < 64; j++)
            free(handoff[i][j]);
    void *big = malloc(1 << 20); /* a large block: a mapping of its own */
    if (big == NULL)
        return 1;
    memset(big, 0, 1 << 20);
    free(big);
    puts("probe: work done");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "vtmalloc") == 0)
        return check_vtmalloc();
    if (strcmp(mode, "work") == 0)
        return work();
    if (strcmp(mode, "overflow") == 0) {
        char *p = malloc(24);
        if (p == NULL)
            return 1;
        memset(p, 0, 24);
        volatile char *v = p;
        char past = v[24];
        free(p);
        printf("probe: read %d past the end\n", past);
        return 0;
    }
    if (strcmp(mode, "leak") == 0) {
        void *volatile lost = malloc(1000);
        memset(lost, 0, 1000);
        lost = NULL;
        puts("probe: lost a block");
        return 0;
    }
    fprintf(stderr, "usage: probe vtmalloc|work|overflow|leak\n");
    return 2;
}
