/*
 * patterns.c - small programs that each repeat one allocation pattern a real program has, for
 * comparing allocators preloaded in front of malloc. Each was, at some commit, a case where
 * vtmalloc was far behind the best peer; bench/run-patterns keeps them measured.
 *
 * Usage: patterns -p NAME [-n COUNT] [-i IDLE_MS]; prints one line:
 *   RESULT pattern=NAME count=N seconds=S ns_per_op=X peak_rss_kb=K [idle_rss_kb=K]
 * "op" is one iteration of the pattern (a malloc+free pair, a request, a round, ...);
 * idle_rss_kb is the RSS after a quiet spell of IDLE_MS (leftovers only).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALLOCATOR_ENTRY malloc
#define BENCH_NAME      "patterns"
#include "bench.h"

static volatile char sink; /* keeps the compiler from removing a block's use */

static void *must(void *p)
{
    if (p == NULL)
        die("allocation failed");
    return p;
}

/* One block of `size` bytes allocated, touched (once, or written whole) and freed, n times. */
static void loop_one(long n, size_t size, bool write_all)
{
    for (long i = 0; i < n; i++) {
        char *p = must(malloc(size));
        if (write_all)
            memset(p, (int)i, size);
        else
            p[0] = (char)i;
        sink = p[size - 1];
        free(p);
    }
}

/* A server holding 50 MB of state that allocates a 300 KiB reply per request. */
static void server_with_state(long n)
{
    enum { HELD = 50 };
    void *held[HELD];
    for (int i = 0; i < HELD; i++)
        memset(held[i] = must(malloc(1 << 20)), 1, 1 << 20);
    loop_one(n, 300 << 10, true);
    for (int i = 0; i < HELD; i++)
        free(held[i]);
}

/* 3,000 blocks of 1 MiB held (first byte touched), then 512 KiB blocks in a loop. */
static void held_then_loop(long n)
{
    enum { HELD = 3000 };
    static void *held[HELD];
    for (int i = 0; i < HELD; i++)
        ((char *)(held[i] = must(malloc(1 << 20))))[0] = 1;
    loop_one(n, 512 << 10, false);
    for (int i = 0; i < HELD; i++)
        free(held[i]);
}

/* Twelve sizes from 40 KiB to 238 KiB, one live block each, replaced in turn. */
static void round_robin(long n)
{
    void *live[12] = {0};
    for (long i = 0; i < n; i++) {
        int k = (int)(i % 12);
        free(live[k]);
        live[k] = must(malloc((size_t)(40 << 10) + (size_t)k * (18 << 10)));
        ((char *)live[k])[0] = 1;
    }
    for (int k = 0; k < 12; k++)
        free(live[k]);
}

/* calloc of arrays of 1 to 64 MiB, all written. */
static void calloc_arrays(long n)
{
    uint64_t rng = 7;
    for (long i = 0; i < n; i++) {
        size_t size = (size_t)rng_range(&rng, 1, 64) << 20;
        char *p = must(calloc(1, size));
        for (size_t o = 0; o < size; o += 4096)
            p[o] = 1;
        free(p);
    }
}

/* n blocks of 64 bytes, written, all held, then freed: a heap of many small objects. With the
 * heap profiler on at a small mean (VTMALLOC_PROF_SAMPLE=64 samples most of them), what each
 * live sample costs in memory and time shows (not in run-patterns' list: for the profiler). */
static void held_small(long n)
{
    void **b = bk_map((size_t)n * sizeof(void *));
    for (long i = 0; i < n; i++)
        memset(b[i] = must(malloc(64)), 5, 64);
    for (long i = 0; i < n; i++)
        free(b[i]);
    bk_unmap(b, (size_t)n * sizeof(void *));
}

/* Fork-join: 8 new threads per round, each allocating and freeing 8 MB in 64 KiB blocks. */
static void *fork_join_worker(void *arg)
{
    (void)arg;
    enum { BLOCKS = 128 };
    void *b[BLOCKS];
    for (int i = 0; i < BLOCKS; i++)
        memset(b[i] = must(malloc(64 << 10)), 2, 64 << 10);
    for (int i = 0; i < BLOCKS; i++)
        free(b[i]);
    return NULL;
}

static void fork_join(long rounds)
{
    for (long r = 0; r < rounds; r++) {
        pthread_t th[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&th[i], NULL, fork_join_worker, NULL) != 0)
                die("pthread_create failed");
        for (int i = 0; i < 8; i++)
            pthread_join(th[i], NULL);
    }
}

/* Bursts: 4 threads allocate 50 MB each in 4 KiB blocks, free it all, then the process idles;
 * only the time of the bursts is counted. */
static double burst_seconds;

static void *burst_worker(void *arg)
{
    (void)arg;
    enum { BLOCKS = 12800 };
    void **b = bk_map(BLOCKS * sizeof(void *));
    for (int i = 0; i < BLOCKS; i++)
        memset(b[i] = must(malloc(4096)), 3, 4096);
    for (int i = 0; i < BLOCKS; i++)
        free(b[i]);
    bk_unmap(b, BLOCKS * sizeof(void *));
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bursts(long n, long idle_ms)
{
    for (long r = 0; r < n; r++) {
        double t0 = now_s();
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            if (pthread_create(&th[i], NULL, burst_worker, NULL) != 0)
                die("pthread_create failed");
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        burst_seconds += now_s() - t0;
        usleep((useconds_t)idle_ms * 1000);
    }
}

/* Blocks of 4 KiB aligned to 128 KiB, all live at once. */
static void aligned(long n)
{
    void **b = bk_map((size_t)n * sizeof(void *));
    for (long i = 0; i < n; i++)
        b[i] = must(aligned_alloc(128 << 10, 4096));
    for (long i = 0; i < n; i++)
        free(b[i]);
    bk_unmap(b, (size_t)n * sizeof(void *));
}

/* Threads that each allocate a little and then wait, all at once (a server's idle pool). */
static pthread_barrier_t parked;

static void *parked_worker(void *arg)
{
    (void)arg;
    void *b[16];
    for (int i = 0; i < 16; i++)
        memset(b[i] = must(malloc(1000)), 4, 1000);
    pthread_barrier_wait(&parked);
    pthread_barrier_wait(&parked);
    for (int i = 0; i < 16; i++)
        free(b[i]);
    return NULL;
}

static void parked_threads(long n)
{
    pthread_t *th = bk_map((size_t)n * sizeof(*th));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    pthread_barrier_init(&parked, NULL, (unsigned)n + 1);
    for (long i = 0; i < n; i++)
        if (pthread_create(&th[i], &attr, parked_worker, NULL) != 0)
            die("pthread_create failed");
    pthread_barrier_wait(&parked);
    pthread_barrier_wait(&parked);
    for (long i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&parked);
    pthread_attr_destroy(&attr);
    bk_unmap(th, (size_t)n * sizeof(*th));
}

/* Four threads each allocate n objects of 64 B-1 KiB, keep one in 64 (a long-lived cache: a
 * session table, a log's tail) and exit; then the process goes quiet for idle_ms. What counts
 * is the RSS after the quiet spell, with the kept objects still live (idle_rss_kb): the free
 * memory around them is no use to anyone. */
enum { LEFTOVER_THREADS = 4, LEFTOVER_KEEP = 64 };
static void **leftovers_kept;
static long leftovers_per_thread;

static void *leftovers_worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    uint64_t rng = 1000 + (uint64_t)t;
    long n = leftovers_per_thread, kept = n / LEFTOVER_KEEP;
    void **all = bk_map((size_t)n * sizeof(void *));
    for (long i = 0; i < n; i++)
        memset(all[i] = must(malloc(rng_range(&rng, 64, 1024))), 5, 64);
    for (long i = 0; i < n; i++) {
        if (i % LEFTOVER_KEEP == 0 && i / LEFTOVER_KEEP < kept)
            leftovers_kept[t * kept + i / LEFTOVER_KEEP] = all[i];
        else
            free(all[i]);
    }
    bk_unmap(all, (size_t)n * sizeof(void *));
    return NULL;
}

static long leftovers(long n, long idle_ms, double *burst)
{
    double t0 = now_s();
    long kept = n / LEFTOVER_KEEP;
    leftovers_per_thread = n;
    leftovers_kept = bk_map((size_t)(LEFTOVER_THREADS * kept) * sizeof(void *));
    pthread_t th[LEFTOVER_THREADS];
    for (long t = 0; t < LEFTOVER_THREADS; t++)
        if (pthread_create(&th[t], NULL, leftovers_worker, (void *)(intptr_t)t) != 0)
            die("pthread_create failed");
    for (int t = 0; t < LEFTOVER_THREADS; t++)
        pthread_join(th[t], NULL);
    *burst = now_s() - t0;
    /* Quiet, but not dead: a small request every 10 ms, as a server's timer would make. */
    for (long ms = 0; ms < idle_ms; ms += 10) {
        free(must(malloc(100)));
        struct timespec ten = {0, 10 * 1000 * 1000};
        nanosleep(&ten, NULL);
    }
    long idle_rss = status_kb("VmRSS") - bk_resident_kb();
    for (long i = 0; i < LEFTOVER_THREADS * kept; i++)
        free(leftovers_kept[i]);
    bk_unmap(leftovers_kept, (size_t)(LEFTOVER_THREADS * kept) * sizeof(void *));
    return idle_rss;
}

/* Twenty live blocks of 5 to 25 MiB, replaced at random, each written whole (like mimalloc-
 * bench's malloc-large). */
static void large_buffers(long n)
{
    void *live[20] = {0};
    uint64_t rng = 42;
    for (long i = 0; i < n; i++) {
        int k = (int)rng_below(&rng, 20);
        size_t size = rng_range(&rng, 5 << 20, 25 << 20);
        char *p = must(malloc(size));
        memset(p, 0, size);
        free(live[k]);
        live[k] = p;
    }
    for (int k = 0; k < 20; k++)
        free(live[k]);
}

typedef struct pattern {
    const char *name;
    long count; /* default iterations */
} pattern_t;

static const pattern_t patterns[] = {
    {"loop-40k", 2000000},
    {"loop-64k", 2000000},
    {"loop-200k", 2000000},
    {"loop-256k16", 1000000},
    {"loop-512k", 1000000},
    {"written-300k", 20000},
    {"written-1m16", 5000},
    {"written-2m", 3000},
    {"written-8m", 500},
    {"server-300k", 20000},
    {"held-1m-loop-512k", 100000},
    {"round-robin", 2000000},
    {"calloc-arrays", 200},
    {"fork-join", 40},
    {"bursts", 5},
    {"aligned-128k", 70000},
    {"parked", 2000},
    {"large-buffers", 500},
    {"held-64", 1000000},
    {"leftovers", 50000},
};

int main(int argc, char **argv)
{
    const char *name = NULL;
    long count = 0, idle_ms = 3000;
    int c;
    while ((c = getopt(argc, argv, "p:n:i:")) != -1) {
        if (c == 'p')
            name = optarg;
        else if (c == 'n')
            count = strtol(optarg, NULL, 10);
        else if (c == 'i')
            idle_ms = strtol(optarg, NULL, 10);
        else
            name = NULL, argc = 0;
    }
    const pattern_t *p = NULL;
    for (size_t i = 0; name != NULL && i < sizeof(patterns) / sizeof(patterns[0]); i++)
        if (strcmp(patterns[i].name, name) == 0)
            p = &patterns[i];
    if (p == NULL) {
        fprintf(stderr, "usage: patterns -p NAME [-n COUNT] [-i IDLE_MS]; NAME one of:");
        for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
            fprintf(stderr, " %s", patterns[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    long n = count > 0 ? count : p->count, idle_rss = -1;
    double t0 = now_s();
    if (strncmp(name, "loop-", 5) == 0 || strncmp(name, "written-", 8) == 0) {
        size_t size = strcmp(name, "loop-40k") == 0       ? 40 << 10
                      : strcmp(name, "loop-64k") == 0     ? 64 << 10
                      : strcmp(name, "loop-200k") == 0    ? 200 << 10
                      : strcmp(name, "loop-256k16") == 0  ? (256 << 10) + 16
                      : strcmp(name, "loop-512k") == 0    ? 512 << 10
                      : strcmp(name, "written-300k") == 0 ? 300 << 10
                      : strcmp(name, "written-1m16") == 0 ? (1 << 20) + 16
                      : strcmp(name, "written-2m") == 0   ? 2 << 20
                                                          : 8 << 20;
        loop_one(n, size, name[0] == 'w');
    } else if (strcmp(name, "server-300k") == 0) {
        server_with_state(n);
    } else if (strcmp(name, "held-1m-loop-512k") == 0) {
        held_then_loop(n);
    } else if (strcmp(name, "round-robin") == 0) {
        round_robin(n);
    } else if (strcmp(name, "calloc-arrays") == 0) {
        calloc_arrays(n);
    } else if (strcmp(name, "fork-join") == 0) {
        fork_join(n);
    } else if (strcmp(name, "bursts") == 0) {
        bursts(n, idle_ms);
    } else if (strcmp(name, "aligned-128k") == 0) {
        aligned(n);
    } else if (strcmp(name, "held-64") == 0) {
        held_small(n);
    } else if (strcmp(name, "parked") == 0) {
        parked_threads(n);
    } else if (strcmp(name, "leftovers") == 0) {
        idle_rss = leftovers(n, idle_ms, &burst_seconds);
    } else {
        large_buffers(n);
    }
    bool burst = strcmp(name, "bursts") == 0 || strcmp(name, "leftovers") == 0;
    double seconds = burst ? burst_seconds : now_s() - t0;
    printf("RESULT pattern=%s count=%ld seconds=%.4f ns_per_op=%.1f peak_rss_kb=%ld", name, n,
           seconds, seconds * 1e9 / (double)n, status_kb("VmHWM") - bk_resident_kb());
    if (idle_rss >= 0)
        printf(" idle_rss_kb=%ld", idle_rss);
    printf(" entry=%s\n", base_name(entry_object()));
    return 0;
}
