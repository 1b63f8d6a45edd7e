/*
 * prof_programs.c - programs with known allocation sites for the heap profiler's tests
 * (tests/prof.sh reads their profiles with google-pprof). Linked with libvtmalloc, built
 * without optimisation and without the compiler's malloc builtins, so that every call site
 * below stays a call site in the profile.
 *
 *   prof_programs leak      leaking_site keeps LEAK_BLOCKS blocks; freeing_site frees all
 *   prof_programs threads   threads allocate, exit, and other threads free half of it later
 *   prof_programs remote DIR  a thread allocates and keeps half; another frees the other half
 *                           meanwhile; a profile is written while the first still runs
 *   prof_programs signal    threads allocate while the program signals itself three times
 *   prof_programs fork      the parent and the child each keep blocks of their own site
 *   prof_programs fork-same the parent and then the child keep blocks of one call stack
 *   prof_programs api       vt_prof_dump and vt_stats_dump, their results and errno
 *   prof_programs quiet     blocks of every large class, most of them sampled, freed; then
 *                           quiet: RSS must come back down (the profiler's pages too)
 */
#define _GNU_SOURCE
#include "vtmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEAK_BLOCKS 20000
#define LEAK_SIZE   1000 /* bytes: 20,000,000 live at exit from leaking_site */
#define THREADS     4
#define PER_THREAD  5000
#define THREAD_SIZE 2000 /* bytes: 40,000,000 from thread_site, half freed */

static void *kept[LEAK_BLOCKS];
static void *handed[THREADS][PER_THREAD];

static void touch(void *p, size_t size)
{
    memset(p, 0x5a, size < 64 ? size : 64);
}

__attribute__((noinline)) static void leaking_site(void)
{
    for (int i = 0; i < LEAK_BLOCKS; i++) {
        kept[i] = malloc(LEAK_SIZE);
        touch(kept[i], LEAK_SIZE);
    }
}

__attribute__((noinline)) static void freeing_site(void)
{
    for (int i = 0; i < 2 * LEAK_BLOCKS; i++) {
        void *p = malloc(LEAK_SIZE);
        touch(p, LEAK_SIZE);
        free(p);
    }
}

__attribute__((noinline)) static void *thread_site(void *arg)
{
    void **mine = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        mine[i] = malloc(THREAD_SIZE);
        touch(mine[i], THREAD_SIZE);
    }
    return NULL;
}

static void *free_half(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < PER_THREAD; i += 2)
        free(blocks[i]);
    return NULL;
}

/* Allocating threads exit first; then other threads free every second block they made. */
static int run_threads(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, thread_site, handed[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, free_half, handed[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* remote: remote_site allocates 2 * LEAK_BLOCKS blocks, keeps the even ones (20,000,000
 * bytes) and hands the odd ones over one at a time to a thread that frees them: the first half
 * at once, while remote_site goes on (the freed blocks are taken again), the second half once
 * it is done (they stay free): frees by another thread into the pages of a thread that samples
 * often (profown.c). A profile is written while remote_site's thread is still alive, and one
 * at exit, after it left. */
static void *remote_kept[LEAK_BLOCKS];
static void *remote_handed[LEAK_BLOCKS];
static _Atomic int remote_count, remote_freed;
static _Atomic int remote_may_exit;

__attribute__((noinline)) static void *remote_site(void *arg)
{
    (void)arg;
    for (int i = 0; i < LEAK_BLOCKS; i++) {
        remote_kept[i] = malloc(LEAK_SIZE);
        touch(remote_kept[i], LEAK_SIZE);
        remote_handed[i] = malloc(LEAK_SIZE);
        touch(remote_handed[i], LEAK_SIZE);
        atomic_store_explicit(&remote_count, i + 1, memory_order_release);
    }
    while (!atomic_load(&remote_may_exit))
        sched_yield();
    return NULL;
}

static void *remote_freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < LEAK_BLOCKS; i++) {
        int wait_for = i < LEAK_BLOCKS / 2 ? i + 1 : LEAK_BLOCKS;
        while (atomic_load_explicit(&remote_count, memory_order_acquire) < wait_for)
            sched_yield();
        free(remote_handed[i]);
    }
    atomic_store(&remote_freed, 1);
    return NULL;
}

static int run_remote(const char *dir)
{
    pthread_t owner, freer;
    pthread_create(&owner, NULL, remote_site, NULL);
    pthread_create(&freer, NULL, remote_freer, NULL);
    pthread_join(freer, NULL);
    char path[4096];
    snprintf(path, sizeof(path), "%s/remote-live.heap", dir);
    int rc = vt_prof_dump(path); /* remote_site's thread holds its pages still */
    atomic_store(&remote_may_exit, 1);
    pthread_join(owner, NULL);
    return rc == 0 ? 0 : 1;
}

static volatile int stop;

__attribute__((noinline)) static void *churn_site(void *arg)
{
    (void)arg;
    void *ring[64] = {0};
    for (unsigned i = 0; !stop; i++) {
        free(ring[i % 64]);
        ring[i % 64] = malloc(100 + (i % 4000));
        touch(ring[i % 64], 100);
    }
    for (int i = 0; i < 64; i++)
        free(ring[i]);
    return NULL;
}

/* Three signals while two threads allocate; each is answered by a dump (PROF_SIGNAL). */
static int run_signal(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn_site, NULL);
    for (int k = 0; k < 3; k++) {
        usleep(150 * 1000);
        raise(SIGUSR2);
    }
    usleep(150 * 1000);
    stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}

__attribute__((noinline)) static void parent_site(void)
{
    for (int i = 0; i < LEAK_BLOCKS / 2; i++)
        kept[i] = malloc(LEAK_SIZE);
}

__attribute__((noinline)) static void child_site(void)
{
    for (int i = LEAK_BLOCKS / 2; i < LEAK_BLOCKS; i++)
        kept[i] = malloc(LEAK_SIZE);
}

/* 0 when the child ended with status 0, 1 otherwise (or when pid is not a child). */
static int child_ended_well(pid_t pid)
{
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* Each process writes its own profile at exit (%p in the name): the child's starts clean. */
static int run_fork(void)
{
    parent_site();
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        child_site();
        exit(0);
    }
    return child_ended_well(pid);
}

/* A site the parent and the child both allocate from, by the very same call (below). */
__attribute__((noinline)) static void *shared_site(void)
{
    return malloc(LEAK_SIZE);
}

/* The parent keeps half of `kept` from shared_site, forks, and the child keeps the other half
 * from the same call: it samples the stack the parent sampled last, which the thread cache's
 * memo (unwind.c) may still hold with its index in the parent's tables, which the child's
 * clean profile does not have (the tables' generation, tests/test_sampling.c, keeps that index
 * from being used). The child's profile must show its own half. One call site for both: the
 * loop runs twice, and its count is hidden from the compiler. */
static int run_fork_same(void)
{
    /* On one CPU, so that the child's samples go to the profiler shard (prof.c: by CPU) where
     * the parent's last one went, whose index the memo names. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0)
        return 1;
    static volatile int rounds = 2;
    pid_t pid = 1;
    for (int round = 0; round < rounds; round++) {
        if (round == 1 && (pid = fork()) != 0)
            break; /* the parent (or a failed fork) waits */
        for (int i = 0; i < LEAK_BLOCKS / 2; i++)
            kept[round * (LEAK_BLOCKS / 2) + i] = shared_site();
    }
    if (pid == 0)
        exit(0);
    return child_ended_well(pid);
}

static int check(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    return ok ? 0 : 1;
}

/* argv[2]: a directory to write into. Profiling on or off as the environment says. */
static long rss_kib(void)
{
    long pages_total = 0, pages_rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2)
        pages_rss = -1;
    if (f != NULL)
        fclose(f);
    return pages_rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 600 blocks of 4 KiB to 256 KiB (every class from there up, most blocks sampled at 64 KiB),
 * written and freed; then the process goes quiet while the purge thread runs its passes
 * (prof.sh sets VTMALLOC_PURGE_MS and VTMALLOC_PURGE_THREAD). What the blocks took must go
 * back, the profiler's own pages included: RSS within 4 MiB of where it started (the
 * profiler's empty pages, were they kept, would be 7 MiB more). */
static int run_quiet(void)
{
    enum { BLOCKS = 600 };
    static void *b[BLOCKS];
    long before = rss_kib();
    for (int i = 0; i < BLOCKS; i++) {
        size_t size = 4096 + (size_t)i * 430;
        b[i] = malloc(size);
        if (b[i] == NULL)
            return 2;
        memset(b[i], 1, size);
    }
    long peak = rss_kib();
    for (int i = 0; i < BLOCKS; i++)
        free(b[i]);
    usleep(1500 * 1000);
    long after = rss_kib();
    printf("quiet: RSS %ld KiB before, %ld KiB with the blocks, %ld KiB after\n", before, peak,
           after);
    return after - before <= 4096 ? 0 : 1;
}

static int run_api(const char *dir)
{
    char path[4096];
    int failures = 0;
    void *p = malloc(12345);
    snprintf(path, sizeof(path), "%s/api.stats", dir);
    failures += check(vt_stats_dump(path) == 0, "vt_stats_dump writes a file");
    FILE *f = fopen(path, "r");
    char text[65536] = "";
    if (f != NULL) {
        text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
        fclose(f);
    }
    failures += check(strstr(text, "statistics (pid") != NULL, "the file has the table");
    failures += check(strstr(text, "<malloc version=\"vtmalloc-") != NULL, "and the XML");
    errno = 0;
    failures += check(vt_stats_dump(NULL) == -1 && errno == EINVAL, "vt_stats_dump(NULL): EINVAL");
    snprintf(path, sizeof(path), "%s/no/such/dir/api.heap", dir);
    errno = 0;
    failures += check(vt_stats_dump(path) == -1 && errno == ENOENT,
                      "vt_stats_dump into a missing directory: ENOENT");
    snprintf(path, sizeof(path), "%s/api.heap", dir);
    errno = 0;
    if (vt_prof_sample_bytes() == 0) {
        failures += check(vt_prof_dump(path) == -1 && errno == ENOTSUP,
                          "profiling off: vt_prof_dump fails with ENOTSUP");
    } else {
        failures += check(vt_prof_dump(path) == 0, "profiling on: vt_prof_dump writes a file");
        f = fopen(path, "r");
        text[0] = '\0';
        if (f != NULL) {
            text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
            fclose(f);
        }
        char want[64];
        snprintf(want, sizeof(want), "@ heap_v2/%zu\n", vt_prof_sample_bytes());
        failures += check(strncmp(text, "heap profile:", 13) == 0 && strstr(text, want) != NULL,
                          "the profile's header names the sampling rate");
        failures += check(strstr(text, "\nMAPPED_LIBRARIES:\n") != NULL, "and the memory map");
        errno = 0;
        failures += check(vt_prof_dump(NULL) == -1 && errno == EINVAL, "vt_prof_dump(NULL)");
        snprintf(path, sizeof(path), "%s/no/such/dir/api.heap", dir);
        errno = 0;
        failures += check(vt_prof_dump(path) == -1 && errno == ENOENT,
                          "vt_prof_dump into a missing directory: ENOENT");
    }
    free(p);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "leak") == 0) {
        leaking_site();
        freeing_site();
        return 0;
    }
    if (strcmp(mode, "threads") == 0)
        return run_threads();
    if (strcmp(mode, "remote") == 0 && argc > 2)
        return run_remote(argv[2]);
    if (strcmp(mode, "signal") == 0)
        return run_signal();
    if (strcmp(mode, "fork") == 0)
        return run_fork();
    if (strcmp(mode, "fork-same") == 0)
        return run_fork_same();
    if (strcmp(mode, "quiet") == 0)
        return run_quiet();
    if (strcmp(mode, "api") == 0 && argc > 2)
        return run_api(argv[2]);
    fprintf(stderr,
            "usage: prof_programs leak|threads|signal|fork|fork-same|quiet|remote DIR|api DIR\n");
    return 2;
}
