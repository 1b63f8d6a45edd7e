/*
 * server.c - server-shaped loads, for comparing allocators preloaded in front of malloc.
 *
 *   waves   connection threads created and joined in waves. Each request builds a burst of
 *           small objects and a buffer, hands a share of them to one long-lived cache thread
 *           (which frees them later, from its own thread), and frees the rest. The size mix
 *           shifts between phases: small objects, then mid-size buffers, then large ones.
 *   larson  Larson and Krishnan's server model: each thread keeps a table of live blocks and
 *           replaces random ones; after a round it exits and a new thread inherits the table,
 *           so most blocks are freed by a thread other than the one that allocated them.
 *
 * One RESULT line per run: operations (mallocs + frees) per second, peak RSS, RSS at the end
 * of each cycle of phases (growth: the second over the first), and the minor page faults of the run
 * (getrusage), per million operations. With -o, a thread samples the RSS every -S ms and the
 * series goes to a CSV file at the end: the shape of a run (a wave's rise, what a phase leaves
 * behind, whether the second cycle climbs above the first), which one peak and two cycle ends
 * cannot show. bench/run-server runs every allocator side by side, adds futex calls from strace,
 * writes the tables and plots the series of one more run of each.
 *
 * Usage: server -w waves|larson [-t threads] [-n requests|rounds] [-s seed] [-a label]
 *               [-o series.csv] [-S ms]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define ALLOCATOR_ENTRY malloc
#define BENCH_NAME      "server"
#include "bench.h"

typedef struct options {
    const char *workload, *label;
    unsigned threads; /* connection threads per wave; larson: threads at once */
    unsigned work;    /* waves: requests per connection thread; larson: rounds */
    uint64_t seed;
    const char *series; /* -o: CSV file for the RSS series; NULL: no sampler thread */
    unsigned sample_ms; /* -S */
} options_t;

static _Atomic uint64_t ops; /* mallocs + frees, summed by each thread at its end */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *checked_malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        die("malloc(%zu) failed", size);
    return p;
}

/* ---- the RSS series (-o) -------------------------------------------------------------------- */

/* At most this many samples: at the 10 ms default, 20 minutes of run. When the table is full the
 * sampler stops; a run that long is not what this benchmark is for. */
enum { SERIES_MAX = 1 << 17 };

typedef struct sample {
    float t_s;      /* since the sampler started, just before the load */
    int32_t rss_kb; /* VmRSS */
    int32_t stage;  /* waves: cycle * PHASES + phase; larson: 0 */
} sample_t;

/* Written by the sampler thread alone while it runs; main reads `rows` and `n` after joining it.
 * `stage` is the main thread's word to the sampler (relaxed: a sample a moment late names the
 * phase before, which the plot cannot tell from the truth at its resolution). */
static struct {
    sample_t *rows;
    size_t n;
    double t0;
    unsigned interval_ms;
    _Atomic int stage;
    atomic_bool stop;
} series;

static void *sampler_thread(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&series.stop, memory_order_acquire) && series.n < SERIES_MAX) {
        series.rows[series.n++] =
            (sample_t){(float)(now_s() - series.t0), (int32_t)status_kb("VmRSS"),
                       atomic_load_explicit(&series.stage, memory_order_relaxed)};
        usleep(series.interval_ms * 1000u);
    }
    return NULL;
}

/* The series less the benchmark's tables (bk_kb), as peak_rss_kb is: counted once, at the end,
 * since the tables are mapped and unmapped by other threads while the sampler runs. */
static void write_series(const char *path, long bk_kb)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("cannot write %s", path);
    fprintf(f, "t_s,rss_kb,stage\n");
    for (size_t i = 0; i < series.n; i++)
        fprintf(f, "%.3f,%ld,%d\n", (double)series.rows[i].t_s, series.rows[i].rss_kb - bk_kb,
                series.rows[i].stage);
    if (fclose(f) != 0)
        die("cannot write %s", path);
}

/* ---- waves -------------------------------------------------------------------------------- */

enum { CYCLES = 2, PHASES = 3, WAVES_PER_PHASE = 6, CACHE_KEEP = 4096, CACHE_PENDING = 4096 };

/* A block handed to the cache thread: the first word links it into a lock-free stack that the
 * connection threads push to and the cache thread takes whole. */
typedef struct handed {
    struct handed *next;
} handed_t;

static _Atomic(handed_t *) handed_stack;
/* Blocks handed and not yet taken by the cache thread. A connection thread that finds
 * CACHE_PENDING of them waits for the cache thread, as a server's bounded queue would make it:
 * without the bound, what piled up while the cache thread waited for a CPU (8 connection threads
 * on 2 here) was the largest part of the peak, and it moved by up to 2x from run to run,
 * whichever the allocator, with the scheduler's whims. */
static _Atomic uint32_t handed_pending;
static atomic_bool cache_stop;

static void hand_to_cache(void *p)
{
    while (atomic_load_explicit(&handed_pending, memory_order_relaxed) >= CACHE_PENDING)
        sched_yield();
    atomic_fetch_add_explicit(&handed_pending, 1, memory_order_relaxed);
    handed_t *h = p, *head = atomic_load_explicit(&handed_stack, memory_order_relaxed);
    do
        h->next = head;
    while (!atomic_compare_exchange_weak_explicit(&handed_stack, &head, h, memory_order_release,
                                                  memory_order_relaxed));
}

/* Keeps the last CACHE_KEEP blocks handed to it, freeing the oldest as new ones come: a
 * server's session or object cache, whose entries outlive the connections that made them. */
static void *cache_thread(void *arg)
{
    (void)arg;
    handed_t **ring = bk_map(CACHE_KEEP * sizeof(*ring));
    size_t at = 0;
    uint64_t n = 0;
    for (;;) {
        handed_t *list = atomic_exchange_explicit(&handed_stack, NULL, memory_order_acquire);
        if (list == NULL) {
            if (atomic_load(&cache_stop))
                break;
            usleep(200);
            continue;
        }
        uint32_t taken = 0;
        while (list != NULL) {
            handed_t *next = list->next;
            if (ring[at] != NULL) {
                free(ring[at]);
                n++;
            }
            ring[at] = list;
            at = (at + 1) % CACHE_KEEP;
            list = next;
            taken++;
        }
        atomic_fetch_sub_explicit(&handed_pending, taken, memory_order_relaxed);
    }
    for (size_t i = 0; i < CACHE_KEEP; i++)
        if (ring[i] != NULL) {
            free(ring[i]);
            n++;
        }
    bk_unmap(ring, CACHE_KEEP * sizeof(*ring));
    atomic_fetch_add(&ops, n);
    return NULL;
}

/* The buffer of a request in each phase: headers and small replies; mid-size pages; large
 * reports and uploads. */
static size_t buffer_size(uint64_t *rng, unsigned phase)
{
    switch (phase) {
    case 0:
        return rng_range(rng, 256, 4096);
    case 1:
        return rng_range(rng, 4096, 65536);
    default:
        return rng_range(rng, 65536, 262144);
    }
}

typedef struct conn {
    unsigned phase, requests;
    uint64_t seed;
} conn_t;

static void *connection_thread(void *arg)
{
    conn_t *c = arg;
    uint64_t rng = c->seed, n = 0;
    void *objs[64];
    for (unsigned r = 0; r < c->requests; r++) {
        unsigned count = rng_range(&rng, 8, 64);
        for (unsigned i = 0; i < count; i++) { /* parse: small objects */
            size_t size = rng_range(&rng, 16, rng_below(&rng, 8) == 0 ? 1024 : 160);
            objs[i] = checked_malloc(size);
            memset(objs[i], (int)i, size < 64 ? size : 64);
        }
        size_t bsize = buffer_size(&rng, c->phase);
        char *buf = checked_malloc(bsize);
        memset(buf, 'r', bsize); /* the reply is written whole */
        n += count + 1;
        for (unsigned i = 0; i < count; i++) { /* a share outlives the request */
            if (rng_below(&rng, 10) == 0)
                hand_to_cache(objs[i]);
            else
                free(objs[i]);
        }
        if (rng_below(&rng, 16) == 0)
            hand_to_cache(buf);
        else
            free(buf);
        n += count + 1;
    }
    atomic_fetch_add(&ops, n);
    return NULL;
}

static void run_waves(const options_t *o, long cycle_rss_kb[CYCLES])
{
    pthread_t cache, *th = bk_map(o->threads * sizeof(*th));
    conn_t *conns = bk_map(o->threads * sizeof(*conns));
    if (pthread_create(&cache, NULL, cache_thread, NULL) != 0)
        die("pthread_create failed");
    uint64_t seed = o->seed;
    for (unsigned cycle = 0; cycle < CYCLES; cycle++) {
        for (unsigned phase = 0; phase < PHASES; phase++) {
            atomic_store_explicit(&series.stage, (int)(cycle * PHASES + phase),
                                  memory_order_relaxed);
            for (unsigned wave = 0; wave < WAVES_PER_PHASE; wave++) {
                for (unsigned i = 0; i < o->threads; i++) {
                    conns[i] = (conn_t){phase, o->work, rng_next(&seed)};
                    if (pthread_create(&th[i], NULL, connection_thread, &conns[i]) != 0)
                        die("pthread_create failed");
                }
                for (unsigned i = 0; i < o->threads; i++)
                    pthread_join(th[i], NULL);
            }
        }
        /* Like against like: the cycle's end with nothing still on its way to the cache. */
        while (atomic_load(&handed_pending) != 0)
            usleep(100);
        cycle_rss_kb[cycle] = status_kb("VmRSS");
    }
    atomic_store(&cache_stop, true);
    pthread_join(cache, NULL);
    bk_unmap(th, o->threads * sizeof(*th));
    bk_unmap(conns, o->threads * sizeof(*conns));
}

/* ---- larson ------------------------------------------------------------------------------- */

enum { LARSON_SLOTS = 1000, LARSON_STEPS = 10000, LARSON_MIN = 16, LARSON_MAX = 1024 };

/* A lane's state, written at every step (rng) by the thread that runs it: a cache line of its
 * own, or the lanes' threads, on different CPUs, would take turns at one line and the benchmark
 * would time that instead of the allocator. */
typedef struct lane {
    _Alignas(64) void **slots; /* inherited from one thread to the next */
    uint64_t rng;
    unsigned rounds_left;
} lane_t;

static void *larson_thread(void *arg)
{
    lane_t *lane = arg;
    uint64_t n = 0;
    for (unsigned s = 0; s < LARSON_STEPS; s++) {
        unsigned k = rng_below(&lane->rng, LARSON_SLOTS);
        free(lane->slots[k]); /* most were allocated by a thread that has exited */
        size_t size = rng_range(&lane->rng, LARSON_MIN, LARSON_MAX);
        lane->slots[k] = checked_malloc(size);
        memset(lane->slots[k], 1, size < 32 ? size : 32);
        n += 2;
    }
    atomic_fetch_add(&ops, n);
    if (--lane->rounds_left > 0) { /* the successor inherits the table */
        pthread_t next;
        if (pthread_create(&next, NULL, larson_thread, lane) != 0)
            die("pthread_create failed");
        pthread_detach(next);
    }
    return NULL;
}

static void run_larson(const options_t *o)
{
    lane_t *lanes = bk_map(o->threads * sizeof(*lanes));
    uint64_t seed = o->seed;
    for (unsigned i = 0; i < o->threads; i++) {
        lanes[i].slots = bk_map(LARSON_SLOTS * sizeof(void *));
        lanes[i].rng = rng_next(&seed);
        lanes[i].rounds_left = o->work;
        for (unsigned k = 0; k < LARSON_SLOTS; k++)
            lanes[i].slots[k] = checked_malloc(rng_range(&lanes[i].rng, LARSON_MIN, LARSON_MAX));
    }
    uint64_t target = (uint64_t)o->threads * o->work * LARSON_STEPS * 2;
    pthread_t first;
    for (unsigned i = 0; i < o->threads; i++) {
        if (pthread_create(&first, NULL, larson_thread, &lanes[i]) != 0)
            die("pthread_create failed");
        pthread_detach(first);
    }
    while (atomic_load(&ops) < target)
        usleep(1000);
    for (unsigned i = 0; i < o->threads; i++) {
        for (unsigned k = 0; k < LARSON_SLOTS; k++)
            free(lanes[i].slots[k]);
        bk_unmap(lanes[i].slots, LARSON_SLOTS * sizeof(void *));
    }
    bk_unmap(lanes, o->threads * sizeof(*lanes));
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: server -w waves|larson [-t threads] [-n requests|rounds] [-s seed] "
                    "[-a label] [-o series.csv] [-S ms]\n"
                    "  waves:  -t connection threads per wave (8), -n requests each (2000)\n"
                    "  larson: -t threads at once (4), -n rounds each (1000)\n"
                    "  -o  write the RSS, sampled every -S ms (default 10), to this CSV file\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options_t o = {.workload = "waves", .label = "malloc", .seed = 1, .sample_ms = 10};
    int c;
    while ((c = getopt(argc, argv, "w:t:n:s:a:o:S:")) != -1) {
        switch (c) {
        case 'w':
            o.workload = optarg;
            break;
        case 't':
            o.threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            o.work = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            o.seed = strtoull(optarg, NULL, 10);
            break;
        case 'a':
            o.label = optarg;
            break;
        case 'o':
            o.series = optarg;
            break;
        case 'S':
            o.sample_ms = (unsigned)strtoul(optarg, NULL, 10);
            if (o.sample_ms == 0 || o.sample_ms > 10000)
                die("-S %s: give 1 to 10000 ms", optarg);
            break;
        default:
            usage();
        }
    }
    bool waves = strcmp(o.workload, "waves") == 0;
    if (!waves && strcmp(o.workload, "larson") != 0)
        usage();
    if (o.threads == 0)
        o.threads = waves ? 8 : 4;
    if (o.work == 0)
        o.work = waves ? 2000 : 1000;

    long cycle_rss[CYCLES] = {0};
    struct rusage before, after;
    reset_peak_rss();
    pthread_t sampler;
    if (o.series != NULL) { /* before the counts start: its thread is not the load's */
        series.rows = bk_map(SERIES_MAX * sizeof(sample_t));
        series.interval_ms = o.sample_ms;
        series.t0 = now_s();
        if (pthread_create(&sampler, NULL, sampler_thread, NULL) != 0)
            die("pthread_create failed");
    }
    getrusage(RUSAGE_SELF, &before);
    double t0 = now_s();
    if (waves)
        run_waves(&o, cycle_rss);
    else
        run_larson(&o);
    double seconds = now_s() - t0;
    getrusage(RUSAGE_SELF, &after);
    if (o.series != NULL) {
        atomic_store_explicit(&series.stop, true, memory_order_release);
        pthread_join(sampler, NULL);
    }
    uint64_t n = atomic_load(&ops);
    long faults = after.ru_minflt - before.ru_minflt;
    long bk = bk_resident_kb();
    printf("RESULT allocator=%s workload=%s threads=%u ops=%llu seconds=%.3f ops_per_s=%.0f "
           "peak_rss_kb=%ld minflt=%ld faults_per_mop=%.0f",
           o.label, o.workload, o.threads, (unsigned long long)n, seconds, (double)n / seconds,
           status_kb("VmHWM") - bk, faults, (double)faults * 1e6 / (double)n);
    if (waves) /* the same cycle of phases twice: RSS at the end of each, and the ratio */
        printf(" rss_cycle_kb=%ld,%ld growth=%.3f", cycle_rss[0] - bk, cycle_rss[1] - bk,
               (double)(cycle_rss[1] - bk) / (double)(cycle_rss[0] - bk));
    printf(" entry=%s\n", base_name(entry_object()));
    if (o.series != NULL) /* after the RESULT line: stdio may allocate */
        write_series(o.series, bk);
    return 0;
}
