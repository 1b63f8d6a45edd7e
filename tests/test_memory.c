/*
 * test_memory.c - memory that stays bounded: statistics that add up (per class, under
 * threads), RSS that returns after frees and malloc_trim, purging on a schedule without trim,
 * a thousand threads that come and go without growing the footprint, a window of recent
 * demand that keeps its peak when a caller's clock is a moment behind, short runs that take
 * resident units before fresh ones, and pages emptied by other threads' frees that go back to
 * their spans before the next take of units.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "internal.h"
#include "vtmalloc.h"

/* Mappings of the process (lines of /proc/self/maps). */
static size_t vma_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        abort();
    size_t lines = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        lines += c == '\n';
    fclose(f);
    return lines;
}

/* ---- Statistics add up ------------------------------------------------------------------ */

enum { WORKERS = 6, PER_WORKER = 20000, KEEP_EVERY = 7 };

typedef struct worker {
    uint64_t seed;
    uint64_t mallocs[VT_CLASS_COUNT]; /* what this worker asked for, per class */
    void *kept[PER_WORKER / KEEP_EVERY + 1];
    size_t kept_count;
    void **handoff; /* blocks left for the next worker to free */
    size_t handoff_count;
} worker_t;

static void *stats_worker(void *arg)
{
    worker_t *w = arg;
    void *recent[64] = {0};
    for (size_t i = 0; i < PER_WORKER; i++) {
        size_t size = rng_next(&w->seed) % (i % 50 == 0 ? 100000 : 2000) + 1;
        void *p = vt_malloc(size);
        CHECK(p != NULL, "malloc");
        w->mallocs[vt_size_class(size)]++;
        if (i % KEEP_EVERY == 0) {
            w->kept[w->kept_count++] = p;
            continue;
        }
        size_t slot = i % 64;
        if (recent[slot])
            vt_free(recent[slot]);
        recent[slot] = p;
    }
    for (int i = 0; i < 64; i++)
        if (recent[i])
            vt_free(recent[i]);
    /* Free what the previous worker left (cross-thread, its thread is gone). */
    for (size_t i = 0; i < w->handoff_count; i++)
        vt_free(w->handoff[i]);
    return NULL;
}

static void statistics_add_up_per_class_under_threads(void **state)
{
    (void)state;
    static worker_t workers[WORKERS];
    vt_stats_t before, after;
    vt_stats_get(&before);
    for (int i = 0; i < WORKERS; i++) {
        memset(&workers[i], 0, sizeof(workers[i]));
        workers[i].seed = (uint64_t)i * 77 + 5;
    }
    /* Two at a time; each worker also frees the blocks the worker two before it kept. */
    for (int i = 0; i < WORKERS; i += 2) {
        pthread_t th[2];
        for (int j = 0; j < 2; j++) {
            worker_t *w = &workers[i + j];
            if (i >= 2) {
                w->handoff = workers[i + j - 2].kept;
                w->handoff_count = workers[i + j - 2].kept_count;
            }
            pthread_create(&th[j], NULL, stats_worker, w);
        }
        for (int j = 0; j < 2; j++)
            pthread_join(th[j], NULL);
    }
    vt_stats_get(&after);
    /* Live now: what the last two workers kept. */
    uint64_t live[VT_CLASS_COUNT] = {0}, mallocs[VT_CLASS_COUNT] = {0};
    for (int i = WORKERS - 2; i < WORKERS; i++)
        for (size_t k = 0; k < workers[i].kept_count; k++)
            live[vt_size_class(vt_malloc_usable_size(workers[i].kept[k]))]++;
    for (int i = 0; i < WORKERS; i++)
        for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
            mallocs[c] += workers[i].mallocs[c];
    assert_int_equal(after.class_count, VT_CLASS_COUNT);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        const vt_class_stats_t *a = &after.classes[c], *b = &before.classes[c];
        assert_int_equal(a->block_size, vt_classes[c].bsize);
        if (a->gets - b->gets != mallocs[c])
            fail_msg("class %u: %llu gets counted, %llu mallocs made", c,
                     (unsigned long long)(a->gets - b->gets), (unsigned long long)mallocs[c]);
        if (a->in_use - b->in_use != live[c])
            fail_msg("class %u: %llu in use counted, %llu live", c,
                     (unsigned long long)(a->in_use - b->in_use), (unsigned long long)live[c]);
        assert_true(a->pages * vt_classes[c].capacity >=
                    a->in_use + a->free_in_threads + a->free_in_global);
    }
    for (int i = WORKERS - 2; i < WORKERS; i++)
        for (size_t k = 0; k < workers[i].kept_count; k++)
            vt_free(workers[i].kept[k]);
    vt_stats_get(&after);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
        assert_int_equal(after.classes[c].in_use, before.classes[c].in_use);
}

/* The bytes asked for: per class at malloc (exact for the calling thread, whose pages
 * vt_stats_get publishes), and for large blocks live, through realloc and free. */
static void requested_bytes_are_counted(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 17, 100, 1000, 5000, 60000, 200000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]), EACH = 50 };
    static void *blocks[N][EACH];
    vt_stats_t before, during, after;
    vt_stats_get(&before);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < EACH; j++)
            blocks[i][j] = vt_malloc(sizes[i]);
    vt_stats_get(&during);
    uint64_t want[VT_CLASS_COUNT] = {0};
    for (size_t i = 0; i < N; i++)
        want[vt_size_class(sizes[i])] += EACH * sizes[i];
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
        if (during.classes[c].requested_total - before.classes[c].requested_total != want[c])
            fail_msg("class %u: %llu bytes requested counted, %llu asked for", c,
                     (unsigned long long)(during.classes[c].requested_total -
                                          before.classes[c].requested_total),
                     (unsigned long long)want[c]);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < EACH; j++)
            vt_free(blocks[i][j]);

    /* Large blocks, in a span and mapped, are exact while they live. */
    vt_stats_get(&before);
    void *a = vt_malloc(300001), *b = vt_malloc(3000001);
    vt_stats_get(&during);
    assert_int_equal(during.bytes_requested_live - before.bytes_requested_live, 3300002);
    a = vt_realloc(a, 700003);
    b = vt_realloc(b, 5000005);
    vt_stats_get(&during);
    assert_int_equal(during.bytes_requested_live - before.bytes_requested_live, 5700008);
    vt_free(a);
    vt_free(b);
    vt_stats_get(&after);
    assert_int_equal(after.bytes_requested_live, before.bytes_requested_live);
}

/* ---- RSS returns ------------------------------------------------------------------------ */

enum { BIG_COUNT = 40000 };
static void *big_set[BIG_COUNT];

/* About 200 MiB in blocks from 16 B to 200 KiB, every page of them touched. */
static size_t allocate_big_set(uint64_t seed)
{
    size_t total = 0;
    for (size_t i = 0; i < BIG_COUNT; i++) {
        size_t size = i % 100 == 0 ? 200000 : rng_next(&seed) % 8000 + 16;
        big_set[i] = vt_malloc(size);
        assert_non_null(big_set[i]);
        for (size_t off = 0; off < size; off += 4096)
            ((volatile char *)big_set[i])[off] = 1;
        total += size;
    }
    return total;
}

static void free_big_set(void)
{
    for (size_t i = 0; i < BIG_COUNT; i++)
        vt_free(big_set[i]);
}

static void rss_returns_after_free_and_trim(void **state)
{
    (void)state;
    vt_malloc_trim(0);
    size_t base = rss_bytes();
    size_t total = allocate_big_set(1);
    size_t full = rss_bytes();
    assert_true(!RSS_MEANINGFUL || full >= base + total / 2);
    free_big_set();
    assert_int_equal(vt_malloc_trim(0), 1);
    size_t after = rss_bytes();
    vt_stats_t st;
    vt_stats_get(&st);
    if (RSS_MEANINGFUL && after > base + (4 << 20))
        fail_msg("RSS %zu KiB after trim, %zu KiB before (%zu KiB at the peak)", after >> 10,
                 base >> 10, full >> 10);
    assert_true(st.bytes_returned_total >= total / 2);
}

static void purged_on_schedule_without_trim(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 50;
    vt_malloc_trim(0);
    size_t base = rss_bytes();
    vt_stats_t before, after;
    vt_stats_get(&before);
    allocate_big_set(2);
    size_t full = rss_bytes();
    size_t vmas_full = vma_count();
    vt_stats_t at_full;
    vt_stats_get(&at_full);
    free_big_set();
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    /* Activity after the delay (pages emptied and returned) lets the schedule run. */
    for (int round = 0; round < 4; round++) {
        void *blocks[2000];
        for (int i = 0; i < 2000; i++)
            blocks[i] = vt_malloc(3000);
        for (int i = 0; i < 2000; i++)
            vt_free(blocks[i]);
        nanosleep(&pause, NULL);
    }
    size_t later = rss_bytes();
    size_t vmas_later = vma_count();
    vt_stats_get(&after);
    vt_options.purge_ms = saved;
    /* Purging scattered free units (madvise) leaves the mappings as they were: no VMA
     * explosion. Only a span unmapped out of a run of adjacent ones can split a mapping in
     * two, so the count may grow by one per unmapped span at most. */
    size_t unmapped = after.span_unmaps_total - at_full.span_unmaps_total;
    if (vmas_later > vmas_full + unmapped + 4)
        fail_msg("%zu mappings at the peak, %zu after purging (%zu spans unmapped)", vmas_full,
                 vmas_later, unmapped);
    if (RSS_MEANINGFUL && later > base + (24 << 20))
        fail_msg("RSS %zu KiB after the purge delay, %zu KiB before (peak %zu KiB)", later >> 10,
                 base >> 10, full >> 10);
    /* Returned: purged in place, or unmapped with spans beyond the reserve. */
    assert_true(after.bytes_returned_total > before.bytes_returned_total + ((size_t)150 << 20));
    assert_true(after.purged_bytes_total > before.purged_bytes_total);
}

/* ---- The retention policy (retain.c) ---------------------------------------------------- */

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

enum { BIG_BLOCKS = 24 };
static void *big_blocks[BIG_BLOCKS];

static void allocate_big_blocks(void)
{
    for (int i = 0; i < BIG_BLOCKS; i++) { /* 22.5 MiB in large blocks of runs of units */
        big_blocks[i] = vt_malloc(VT_LARGE_SPAN_MAX);
        assert_true(vt_in_span(big_blocks[i]));
        memset(big_blocks[i], 1, VT_LARGE_SPAN_MAX);
    }
}

static void free_big_blocks(void)
{
    for (int i = 0; i < BIG_BLOCKS; i++)
        vt_free(big_blocks[i]);
}

/* Slow-path activity (a large block in a span, whose free runs the schedule) until the free
 * memory still resident is at most `limit`, or 10 s pass. */
static bool wait_for_resident_free_at_most(uint64_t limit)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500; i++) {
        vt_stats_t st;
        vt_stats_get(&st);
        if (st.bytes_free_resident <= limit)
            return true;
        vt_free(vt_malloc(300000));
        nanosleep(&pause, NULL);
    }
    return false;
}

/* Memory freed while the demand is recent stays resident, so the next demand reuses it without
 * page faults, purges or new spans; after a window (VTMALLOC_PURGE_MS) without that demand it
 * goes back. The window is long for the first part (a slow machine must not let it pass) and
 * short for the second. */
static void freed_memory_serves_the_next_demand_then_leaves(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000;
    vt_malloc_trim(0);
    allocate_big_blocks();
    free_big_blocks();
    vt_stats_t freed, again;
    vt_stats_get(&freed);
    assert_true(freed.bytes_free_resident >= (uint64_t)(BIG_BLOCKS - 2) * VT_LARGE_SPAN_MAX);
    long faults = minor_faults();
    allocate_big_blocks();
    faults = minor_faults() - faults;
    vt_stats_get(&again);
    free_big_blocks();
    /* 22.5 MiB is 5,760 pages: refaulting even a tenth of them would show. */
    if (faults > 600 || again.purged_bytes_total != freed.purged_bytes_total ||
        again.span_maps_total != freed.span_maps_total)
        fail_msg("reuse cost %ld page faults, %zu KiB purged, %zu spans mapped", faults,
                 (size_t)((again.purged_bytes_total - freed.purged_bytes_total) >> 10),
                 (size_t)(again.span_maps_total - freed.span_maps_total));
    vt_options.purge_ms = 100;
    bool returned = wait_for_resident_free_at_most((uint64_t)4 << 20);
    vt_stats_t later;
    vt_stats_get(&later);
    vt_options.purge_ms = saved;
    if (!returned)
        fail_msg("%zu KiB of free memory still resident 10 s after the demand ended",
                 (size_t)(later.bytes_free_resident >> 10));
}

/* Passes of the purge schedule for `ms` milliseconds, with no allocation in between: what a
 * quiet process sees. */
static void quiet_for(long ms)
{
    struct timespec step = {0, 20 * 1000 * 1000};
    for (long t = 0; t < ms; t += 20) {
        vt_purge_tick();
        nanosleep(&step, NULL);
    }
}

/* A process that comes back after each pause (retain.c: the quiet time learned from regret).
 * Its first quiet spell gives the memory back, as any does; the demand that then returns takes
 * it again, so the next pause of that length keeps it resident; a longer one still returns it. */
static void a_process_that_comes_back_keeps_its_memory_over_the_next_pause(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms, saved_retain = vt_options.retain_ms;
    vt_options.purge_ms = 100;
    vt_options.retain_ms = 10000; /* the most the quiet time may grow to */
    vt_malloc_trim(0);
    allocate_big_blocks();
    free_big_blocks();
    quiet_for(1000); /* quiet after 100 ms: given back */
    vt_stats_t first, kept, later;
    vt_stats_get(&first);
    allocate_big_blocks(); /* it was needed again after a pause of about a second */
    free_big_blocks();
    quiet_for(300);
    vt_stats_get(&kept);
    quiet_for(3000);
    vt_stats_get(&later);
    vt_options.purge_ms = saved;
    vt_options.retain_ms = saved_retain;
    vt_retain_quiet_reset();
    if (first.bytes_free_resident > (uint64_t)4 << 20)
        fail_msg("first pause: %zu KiB of free memory still resident",
                 (size_t)(first.bytes_free_resident >> 10));
    if (kept.bytes_free_resident < (uint64_t)(BIG_BLOCKS - 2) * VT_LARGE_SPAN_MAX)
        fail_msg("second pause: only %zu KiB of free memory kept",
                 (size_t)(kept.bytes_free_resident >> 10));
    if (later.bytes_free_resident > (uint64_t)4 << 20)
        fail_msg("a longer pause: %zu KiB of free memory still resident",
                 (size_t)(later.bytes_free_resident >> 10));
}

/* Every test starts without a quiet time learned by the tests before it. */
static int fresh_quiet_time(void **state)
{
    (void)state;
    vt_retain_quiet_reset();
    return 0;
}

/* Arrays above the mapped-block threshold whose sizes change from one request to the next
 * (calloc'ed, written, freed) keep reusing one mapping: a smaller request takes its head and
 * leaves the tail cached, the free joins them again, so after the first array no page is
 * faulted in afresh. Each comes back zeroed where the last one wrote. */
static void arrays_of_changing_sizes_reuse_one_mapping(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000;
    vt_malloc_trim(0);
    static const size_t mib[] = {48, 8, 40, 16, 48, 4, 32, 47};
    enum { ARRAYS = sizeof(mib) / sizeof(mib[0]) };
    long faults = 0;
    for (int i = 0; i < ARRAYS; i++) {
        size_t size = mib[i] << 20;
        long before = minor_faults();
        unsigned char *p = vt_calloc(1, size);
        assert_non_null(p);
        for (size_t o = 0; o < size; o += 4096) {
            if (p[o] != 0 || p[o + 4095] != 0)
                fail_msg("array %d (%zu MiB): byte %zu not zero", i, mib[i], o);
            p[o] = p[o + 4095] = 1;
        }
        vt_free(p);
        if (i > 0)
            faults += minor_faults() - before;
    }
    vt_options.purge_ms = saved;
    /* The arrays after the first make 195 MiB, 49,920 pages; a tenth of the smallest one
     * (1,024 pages) refaulted would be a lot. Under a sanitizer the faults are its own (its
     * memset resets the shadow of the range): only the zeroing is checked there. */
    if (RSS_MEANINGFUL && faults > 1024)
        fail_msg("the arrays after the first cost %ld page faults", faults);
    vt_malloc_trim(0);
}

/* Mapped blocks freed in a row go back in runs: the cache keeps what it has slots for and
 * unmaps the oldest together, a run of neighbours in one call. Every eighth block stays live
 * between the freed ones, so a run that reached past its neighbours would unmap a live block;
 * and what the cache does not keep must really be gone. */
static void freed_mapped_blocks_go_back_in_runs_around_live_ones(void **state)
{
    (void)state;
    vt_init();
    if (vt_options.backing != VT_BACKING_MMAP || vt_options.large_cache_mb == 0)
        skip(); /* no cache: every block goes back at its free */
    vt_malloc_trim(0);
    enum { BLOCKS = 160, STRIDE = 8 };
    size_t size = (size_t)1 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = vt_malloc(size);
        assert_non_null(blocks[i]);
        blocks[i][0] = (unsigned char)i;
        blocks[i][size - 1] = (unsigned char)~i;
    }
    for (int i = 0; i < BLOCKS; i++)
        if (i % STRIDE != 0)
            vt_free(blocks[i]);
    vt_stats_t st;
    vt_stats_get(&st);
    int unmapped = 0;
    unsigned char vec[1];
    for (int i = 0; i < BLOCKS; i++) {
        bool mapped =
            mincore(blocks[i], page, vec) == 0 && mincore(blocks[i] + size - page, page, vec) == 0;
        if (i % STRIDE == 0) {
            if (!mapped)
                fail_msg("live block %d at %p was unmapped", i, (void *)blocks[i]);
            if (blocks[i][0] != (unsigned char)i || blocks[i][size - 1] != (unsigned char)~i)
                fail_msg("live block %d at %p lost its bytes", i, (void *)blocks[i]);
        } else if (!mapped) {
            unmapped++;
        }
    }
    int freed = BLOCKS - BLOCKS / STRIDE;
    size_t cached = (size_t)st.large_cached_bytes / size;
    if (cached > 64 || unmapped != freed - (int)cached)
        fail_msg("of %d freed blocks %zu are cached and %d unmapped", freed, cached, unmapped);
    for (int i = 0; i < BLOCKS; i += STRIDE)
        vt_free(blocks[i]);
    vt_malloc_trim(0);
}

/* ---- Waves of threads --------------------------------------------------------------------- */

/* Eight threads allocate 12 MiB each, free it and exit; a second wave does the same. What the
 * first wave freed serves the second: no purge, no new span, in between. */
enum { DROP_WORKERS = 8, DROP_BLOCKS = 400 };
/* All workers are alive together before any exits. */
static pthread_barrier_t drop_all_alive;

static void *drop_worker(void *arg)
{
    uintptr_t w = (uintptr_t)arg;
    static void *blocks[DROP_WORKERS][DROP_BLOCKS];
    vt_free(vt_malloc(16)); /* this thread's cache is live from here */
    pthread_barrier_wait(&drop_all_alive);
    for (int i = 0; i < DROP_BLOCKS; i++) { /* 12 MiB each, two blocks to a page */
        blocks[w][i] = vt_malloc(30000);
        memset(blocks[w][i], 1, 30000);
    }
    for (int i = 0; i < DROP_BLOCKS; i++)
        vt_free(blocks[w][i]);
    return NULL;
}

static void run_wave(void)
{
    pthread_t th[DROP_WORKERS];
    pthread_barrier_init(&drop_all_alive, NULL, DROP_WORKERS);
    for (uintptr_t w = 0; w < DROP_WORKERS; w++)
        pthread_create(&th[w], NULL, drop_worker, (void *)w);
    for (int w = 0; w < DROP_WORKERS; w++)
        pthread_join(th[w], NULL);
    pthread_barrier_destroy(&drop_all_alive);
}

static void the_next_wave_of_threads_reuses_what_the_last_freed(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000; /* the window outlasts the test, sanitized and loaded too */
    vt_malloc_trim(0);
    run_wave();
    vt_stats_t first, second;
    vt_stats_get(&first);
    run_wave();
    vt_stats_get(&second);
    vt_options.purge_ms = saved;
    /* A wave touches 96 MiB; where its pages land varies with the timing (a slow sanitized
     * build on a loaded machine mapped 24 MiB more; with 2 MiB spans, 28 MiB once under
     * ctest -j2), but without reuse it would map 96 MiB more. */
    if (second.purged_bytes_total != first.purged_bytes_total ||
        second.span_maps_total > first.span_maps_total + ((size_t)32 << 20) / VT_SPAN_SIZE)
        fail_msg("between two waves: %zu KiB purged, %zu spans mapped",
                 (size_t)((second.purged_bytes_total - first.purged_bytes_total) >> 10),
                 (size_t)(second.span_maps_total - first.span_maps_total));
}

/* ---- A process that stops calling the allocator ---------------------------------------- */

/* With VTMALLOC_PURGE_THREAD=1, memory freed just before the process went quiet goes back to
 * the OS although no thread calls the allocator again; without it, it stays until the next
 * call (the control run). In a child, so that the thread and the short delay stay there. */
static void *start_a_cache(void *arg)
{
    (void)arg;
    vt_free(vt_malloc(100)); /* a new thread cache: it starts the purge thread if asked */
    return NULL;
}

static void free_then_go_quiet(void *arg)
{
    bool with_thread = arg != NULL;
    vt_options.purge_ms = 40;
    vt_options.purge_thread = with_thread;
    pthread_t th;
    pthread_create(&th, NULL, start_a_cache, NULL);
    pthread_join(th, NULL);
    enum { N = 2000 };
    static void *blocks[N];
    vt_malloc_trim(0);
    size_t base = rss_bytes();
    for (int i = 0; i < N; i++) { /* 2 blocks to a one-unit page: about 60 MiB, 16 spans */
        blocks[i] = vt_malloc(30000);
        memset(blocks[i], 1, 30000);
    }
    size_t full = rss_bytes();
    for (int i = 0; i < N; i++) /* every 50th stays, so that no span empties (no reserve) */
        if (i % 50 != 0)
            vt_free(blocks[i]);
    struct timespec pause = {0, 400 * 1000 * 1000}; /* ten times the delay, no allocator call */
    nanosleep(&pause, NULL);
    size_t quiet = rss_bytes();
    fprintf(stderr, "rss base %zu full %zu quiet %zu KiB\n", base >> 10, full >> 10, quiet >> 10);
    bool returned = quiet < base + (full - base) / 4;
    if (returned != with_thread) {
        vt_stats_t st;
        vt_stats_get(&st);
        fprintf(stderr,
                "%s the purge thread, RSS %s; free: %zu KiB in units (%zu KiB resident), %zu KiB "
                "in threads, %zu KiB global; %zu purges\n",
                with_thread ? "with" : "without", returned ? "fell" : "stayed up",
                (size_t)(st.bytes_free_units >> 10), (size_t)(st.bytes_free_resident >> 10),
                (size_t)(st.bytes_free_threads >> 10), (size_t)(st.bytes_free_global >> 10),
                (size_t)st.purges_total);
        _exit(1);
    }
}

static void a_quiet_process_returns_memory_with_the_purge_thread(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__) || !RSS_MEANINGFUL
    skip(); /* threads in a forked child hang under ThreadSanitizer; RSS is not ours there */
#endif
    child_result_t without = run_in_child(free_then_go_quiet, NULL);
    if (!without.exited || without.status != 0)
        fail_msg("control run: %s", without.err);
    child_result_t with = run_in_child(free_then_go_quiet, (void *)1);
    if (!with.exited || with.status != 0)
        fail_msg("with the purge thread: %s", with.err);
}

/* The purge thread runs a pass at each of its wake-ups while there is memory to return. It
 * wakes an interval (a quarter of VTMALLOC_PURGE_MS) after its last pass, when the coarse
 * clock the schedule reads may still be a step short of the pass's due time. With the default
 * 250 ms interval and the 4 ms steps of a kernel ticking at 250 Hz, it was short at every other
 * wake-up, which then ran no pass, and a process that had gone quiet gave its memory back up to
 * an interval late (the soak benchmark found it still resident in about one run in twenty).
 * Kernels with other tick rates fall short at other wake-ups or never, so the test fails with
 * that defect on some machines only; it cannot pass with the passes too few on any. Here the
 * freed memory is resident when the count begins (the window keeps it until the process has
 * been quiet for 1,000 ms, and the pass that returns it still counts), no other thread calls
 * the allocator, and in the 900 ms after the thread's first pass, passes due every 250 ms must
 * be at least three; one at every other wake-up makes one. In a child, so that the thread and the
 * options stay there. */
static void count_the_purge_threads_passes(void *arg)
{
    (void)arg;
    vt_options.purge_ms = 1000;
    vt_options.purge_thread = 1;
    pthread_t th;
    pthread_create(&th, NULL, start_a_cache, NULL);
    pthread_join(th, NULL);
    enum { N = 1000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = vt_malloc(30000);
        memset(blocks[i], 1, 30000);
    }
    for (int i = 0; i < N; i++)
        if (i % 50 != 0)
            vt_free(blocks[i]);
    /* From the thread's first pass after the frees: a thread that woke to nothing to return
     * before they were done (a slow machine) sleeps longer once, which is not the defect. */
    uint64_t before = vt_purge_passes();
    struct timespec tick = {0, 2 * 1000 * 1000};
    for (int waited = 0; vt_purge_passes() == before && waited < 1000; waited++)
        nanosleep(&tick, NULL);
    before = vt_purge_passes();
    uint32_t dirty = vt_span_dirty_count();
    if (dirty == 0) { /* nothing to return: the thread may sleep longer, the count says nothing */
        fprintf(stderr, "the freed memory went back before the count began\n");
        _exit(2);
    }
    struct timespec pause = {0, 900 * 1000 * 1000};
    nanosleep(&pause, NULL);
    uint64_t passes = vt_purge_passes() - before;
    fprintf(stderr, "%llu passes in 900 ms; %u free units resident when the count began\n",
            (unsigned long long)passes, dirty);
    _exit(passes >= 3 ? 0 : 1);
}

static void the_purge_thread_runs_a_pass_at_every_wake_up(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip(); /* threads in a forked child hang under ThreadSanitizer */
#endif
    child_result_t r = run_in_child(count_the_purge_threads_passes, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("status %d: %s", r.status, r.err);
}

/* ---- An idle thread's cache ------------------------------------------------------------ */

/* A thread that frees a lot and then stops calling the allocator keeps its stash of empty
 * units only until the purge passes that other threads' activity runs have seen it idle
 * for a while: then the stash is taken from it, and the thread, when it wakes, refills. */
typedef struct sleeper {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stage; /* 1: it has freed and sleeps; 2: wake up; 3: it has checked its blocks */
    vt_tcache_t *tc;
    uint32_t stash_before;
} sleeper_t;

static void *free_a_lot_then_sleep(void *arg)
{
    sleeper_t *s = arg;
    enum { N = 3000 };
    static void *blocks[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            blocks[i] = vt_malloc(4000); /* 16 to a one-unit page: about 190 pages */
            memset(blocks[i], i & 0xff, 4000);
        }
        for (int i = 0; i < N; i++) {
            assert_int_equal(((unsigned char *)blocks[i])[3999], i & 0xff);
            vt_free(blocks[i]);
        }
        if (round == 1)
            break;
        pthread_mutex_lock(&s->lock);
        s->tc = vt_thread.tcache;
        s->stash_before = atomic_load(&s->tc->stash_count);
        s->stage = 1;
        pthread_cond_broadcast(&s->cond);
        while (s->stage != 2)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_lock(&s->lock);
    s->stage = 3;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void an_idle_thread_gives_up_its_stash(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 40;
    sleeper_t s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_a_lot_then_sleep, &s), 0);
    pthread_mutex_lock(&s.lock);
    while (s.stage != 1)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_true(s.stash_before >= vt_options.stash_units / 2); /* it kept empty units */
    assert_non_null(atomic_load(&s.tc->stash));

    /* Activity on this thread for well over VT_IDLE_PASSES passes. */
    struct timespec pause = {0, 15 * 1000 * 1000};
    for (int round = 0; round < 60 && atomic_load(&s.tc->stash) != NULL; round++) {
        void *blocks[400];
        for (int i = 0; i < 400; i++)
            blocks[i] = vt_malloc(3000);
        for (int i = 0; i < 400; i++)
            vt_free(blocks[i]);
        vt_free(vt_malloc(VT_SMALL_MAX + 1)); /* a large block: its free runs the schedule */
        nanosleep(&pause, NULL);
    }
    assert_null(atomic_load(&s.tc->stash));
    assert_int_equal(atomic_load(&s.tc->stash_count), 0);

    /* Woken, it allocates and frees as before: its empty stash is refilled. */
    pthread_mutex_lock(&s.lock);
    s.stage = 2;
    pthread_cond_broadcast(&s.cond);
    while (s.stage != 3)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    pthread_join(th, NULL);
    vt_options.purge_ms = saved;
}

/* ---- A thousand threads ----------------------------------------------------------------- */

/* Each thread frees the ten blocks its predecessor in the same lane kept, allocates 2000 of
 * its own, keeps ten and exits: the live data stays the same while threads come and go. */
typedef struct lane {
    void *kept[10];
    uint64_t seed;
} lane_t;

static void *short_lived(void *arg)
{
    lane_t *lane = arg;
    for (int i = 0; i < 10; i++)
        vt_free(lane->kept[i]);
    void *blocks[2000];
    for (int i = 0; i < 2000; i++)
        blocks[i] = vt_malloc(rng_next(&lane->seed) % 4000 + 1);
    for (int i = 10; i < 2000; i++)
        vt_free(blocks[i]);
    memcpy(lane->kept, blocks, sizeof(lane->kept));
    return NULL;
}

/* A thread that allocates a little takes one unit from the global cache, not a whole batch:
 * its first batches take 1, 2, 4 ... units (tcache.c: batch_ramp), so a server's thousands of
 * idle threads do not each hold a batch of empty units. Measured from the thread itself,
 * between its first allocation and the stats just before it. */
static void *first_block_of_a_thread(void *arg)
{
    vt_stats_t before, after;
    vt_stats_get(&before);
    void *p = vt_malloc(1000); /* a one-unit page: the first run the thread takes */
    vt_stats_get(&after);
    *(uint64_t *)arg = after.bytes_free_threads - before.bytes_free_threads;
    vt_free(p);
    return NULL;
}

static void a_new_thread_takes_one_unit(void **state)
{
    (void)state;
    vt_malloc_trim(0); /* nothing left in stashes or partial pages to adopt instead */
    uint64_t held = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, first_block_of_a_thread, &held), 0);
    pthread_join(th, NULL);
    /* The page's other blocks (under a unit); a batch of eight would add seven empty units. */
    if (held >= 2 * VT_UNIT_SIZE)
        fail_msg("a thread's first block left %llu KiB free in its cache",
                 (unsigned long long)(held >> 10));
}

/* Lets the purge schedule catch up (what the last threads freed ages past the delay), then
 * gives it the activity it runs on: one more thread of the lane, whose exit returns pages. */
static void settle(lane_t *lane)
{
    /* Longer than the longest quiet time (the window, 8 x VTMALLOC_PURGE_MS: 160 ms here). The
     * waves of threads come back after pauses of a few milliseconds, so the quiet time grows
     * from PURGE_MS toward the window (retain.c). */
    struct timespec pause = {0, 240 * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_t th;
    pthread_create(&th, NULL, short_lived, lane);
    pthread_join(th, NULL);
}

static void thousand_threads_stay_bounded(void **state)
{
    (void)state;
    static lane_t lanes[8];
    memset(lanes, 0, sizeof(lanes));
    vt_malloc_trim(0); /* start from what earlier tests left, returned */
    /* A short purge delay, so that RSS shows the footprint, not what awaits its purge. */
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 20;
    for (int j = 0; j < 8; j++)
        lanes[j].seed = (uint64_t)j + 1;
    size_t rss_at_100 = 0;
    vt_stats_t at_100, st;
    for (int i = 0; i < 1000; i += 8) {
        pthread_t th[8];
        for (int j = 0; j < 8; j++)
            pthread_create(&th[j], NULL, short_lived, &lanes[j]);
        for (int j = 0; j < 8; j++)
            pthread_join(th[j], NULL);
        if (i == 96) {
            settle(&lanes[0]);
            rss_at_100 = rss_bytes();
            vt_stats_get(&at_100);
        }
    }
    settle(&lanes[0]);
    vt_stats_get(&st);
    size_t rss = rss_bytes();
    vt_options.purge_ms = saved;
    assert_true(st.spans_reserved <= vt_options.reserve_spans);
    assert_true(st.thread_caches_live <= 2);
    assert_true(st.thread_caches_total >= at_100.thread_caches_total + 897);
    /* 900 more threads did not grow the footprint. */
    uint64_t busy_100 = at_100.spans_mapped - at_100.spans_reserved;
    uint64_t busy = st.spans_mapped - st.spans_reserved;
    /* The 80 blocks the lanes keep pin the pages they sit in, and so their spans; which spans
     * those are depends on how the threads interleave, and on a loaded machine (the suite
     * runs two tests at once, beside short-lived processes) they were spread over 3 spans
     * more than at 100 threads in about one run in 12, with glibc's mutexes as with ours, and
     * stayed there through ten more purge passes: pinned, not waiting. A margin of 16 MiB of
     * spans still fails a footprint that grows with the threads (one unit a thread would be
     * 28 MiB), and the RSS check below stays at 4 MiB. Under sanitizers everything runs ten
     * times slower, so more of the last threads' units are still waiting for their purge when
     * this is read: a wider margin there. */
    if (busy > busy_100 + ((RSS_MEANINGFUL ? (size_t)16 : 24) << 20) / VT_SPAN_SIZE)
        fail_msg("spans in use: %llu after 100 threads, %llu after 1000",
                 (unsigned long long)busy_100, (unsigned long long)busy);
    if (RSS_MEANINGFUL && rss > rss_at_100 + (4 << 20))
        fail_msg("RSS: %zu KiB after 100 threads, %zu KiB after 1000", rss_at_100 >> 10, rss >> 10);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 10; i++)
            vt_free(lanes[j].kept[i]);
}

/* ---- A purge the kernel refuses -------------------------------------------------------- */

/* madvise(MADV_DONTNEED) fails on locked memory (mlock, mlockall) and under seccomp filters
 * that refuse it: the units keep their old bytes. calloc must not take them for zeros, and
 * the statistics must not count them as returned. A block of 600 KiB is a run of units in a
 * span; another block keeps the span, so that malloc_trim purges it instead of unmapping it.
 * The refusal comes three ways: one block under mlock, the whole process under mlockall (in a
 * child), and a seccomp filter that refuses the advice (in a child). */
enum { LOCKED_SIZE = 600 << 10, LOCKED_TRIES = 16 };

typedef enum { REFUSED_BY_MLOCK, REFUSED_BY_MLOCKALL, REFUSED_BY_SECCOMP } refusal_t;

/* The child's exit status when the kernel will not refuse the purge the way it asks for. */
enum { REFUSAL_UNAVAILABLE = 77 };

/* Without CAP_IPC_LOCK (CI's containers drop it) the kernel caps locked memory at
 * RLIMIT_MEMLOCK: 8 MiB by default, 64 KiB on older kernels and some hosts, below what the test
 * locks; mlock and mlockall then fail with ENOMEM (EPERM at a limit of 0). The soft limit is
 * raised to the hard one first. */
static void raise_memlock_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_MEMLOCK, &rl);
    }
}

/* True when the refusal `err` of `call` is that limit's; says so. */
static bool refused_by_the_limit(int err, const char *call)
{
    struct rlimit rl;
    if ((err != ENOMEM && err != EPERM) || getrlimit(RLIMIT_MEMLOCK, &rl) != 0 ||
        rl.rlim_cur == RLIM_INFINITY)
        return false;
    fprintf(stderr, "%s: %s, with RLIMIT_MEMLOCK at %llu KiB and no CAP_IPC_LOCK\n", call,
            strerror(err), (unsigned long long)(rl.rlim_cur >> 10));
    return true;
}

/* Locks every mapping of the process, now and to come, or exits saying why it could not. */
static void lock_all_or_exit(void)
{
    raise_memlock_limit();
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0)
        return;
    int err = errno;
    if (refused_by_the_limit(err, "mlockall"))
        _exit(REFUSAL_UNAVAILABLE);
    CHECK(false, "mlockall: %s", strerror(err));
}

/* Has the kernel answer madvise(MADV_DONTNEED) with EINVAL, as it does on locked pages, for
 * the rest of this process; any other call and advice pass. No privilege is needed once the
 * process gives up gaining any (no_new_privs). Exits saying why when the kernel refuses the
 * filter (a sandbox without seccomp). */
static void refuse_dontneed_or_exit(void)
{
#if defined(__x86_64__)
    const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
    fprintf(stderr, "no seccomp architecture constant for this machine\n");
    _exit(REFUSAL_UNAVAILABLE);
#endif
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* the advice is a small int: its low word (little-endian machines only, above) */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_DONTNEED, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof code / sizeof code[0]),
                              .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "seccomp filter refused: %s\n", strerror(errno));
        _exit(REFUSAL_UNAVAILABLE);
    }
    char probe[2 * 4096];
    CHECK(madvise((void *)(((uintptr_t)probe + 4095) & ~(uintptr_t)4095), 4096, MADV_DONTNEED) !=
                  0 &&
              errno == EINVAL,
          "the filter let MADV_DONTNEED through");
}

/* False when the kernel would not lock the block (the limit above): nothing was checked. */
static bool refused_purge_keeps_bytes_dirty(refusal_t how)
{
    if (how == REFUSED_BY_MLOCKALL)
        lock_all_or_exit();
    else if (how == REFUSED_BY_SECCOMP)
        refuse_dontneed_or_exit();
    char *blocks[LOCKED_TRIES];
    char *p = NULL, *keep = NULL;
    for (int i = 0; i < LOCKED_TRIES && keep == NULL; i++) {
        blocks[i] = vt_malloc(LOCKED_SIZE);
        CHECK(blocks[i] != NULL, "malloc");
        for (int k = 0; k < i && keep == NULL; k++)
            if (vt_span_base(blocks[k]) == vt_span_base(blocks[i])) {
                p = blocks[k];
                keep = blocks[i];
            }
    }
    CHECK(keep != NULL, "no two blocks of 600 KiB in one span");
    if (how == REFUSED_BY_MLOCK) {
        raise_memlock_limit();
        if (mlock(p, LOCKED_SIZE) != 0) {
            int err = errno;
            if (refused_by_the_limit(err, "mlock"))
                return false;
            CHECK(false, "mlock: %s", strerror(err));
        }
    }
    memset(p, 'K', LOCKED_SIZE);
    vt_free(p);
    vt_malloc_trim(0);
    vt_stats_t st;
    vt_stats_get(&st);
    CHECK(st.bytes_free_resident >= (LOCKED_SIZE & ~(VT_UNIT_SIZE - 1)),
          "the locked units count as returned: %zu KiB free and resident",
          (size_t)(st.bytes_free_resident >> 10));
    char *q = vt_calloc(1, LOCKED_SIZE);
    CHECK(q != NULL, "calloc");
    for (size_t i = 0; i < LOCKED_SIZE; i++)
        CHECK(q[i] == 0, "calloc returned %p with byte %zu = '%c' (the freed block was %p)",
              (void *)q, i, q[i], (void *)p);
    vt_free(q);
    if (how == REFUSED_BY_MLOCK)
        munlock(p, LOCKED_SIZE);
    return true;
}

static void refused_in_child(void *arg)
{
    refused_purge_keeps_bytes_dirty(*(const refusal_t *)arg);
}

/* True when the child ran the case; false when its environment could not refuse that way. */
static bool refused_purge_in_child(refusal_t how, const char *name)
{
    child_result_t r = run_in_child(refused_in_child, &how);
    if (r.exited && r.status == REFUSAL_UNAVAILABLE) {
        print_message("not run with %s: %s", name, r.err);
        return false;
    }
    if (!r.exited || r.status != 0)
        fail_msg("with %s: %s", name, r.err);
    return true;
}

static void calloc_after_a_refused_purge_is_zero(void **state)
{
    (void)state;
#ifdef VT_TEST_SANITIZED
    skip(); /* the sanitizers' runtimes map and advise memory their own way: Release suite only */
#endif
    int ran = 0;
    if (refused_purge_keeps_bytes_dirty(REFUSED_BY_MLOCK))
        ran++;
    else
        print_message("not run with mlock: the limit on locked memory is below %d KiB\n",
                      LOCKED_SIZE >> 10);
    ran += refused_purge_in_child(REFUSED_BY_MLOCKALL, "mlockall");
    ran += refused_purge_in_child(REFUSED_BY_SECCOMP, "a seccomp filter");
    if (ran == 0)
        skip(); /* no way to have the kernel refuse a purge here: nothing was checked */
}

/* A one-unit page goes where a resident free unit is, before the fullest span's purged or
 * fresh one (span.c: best_span_locked): taking the fullest span's first left the resident units
 * of others idle, grew the resident set past the demand, and the pass gave back units that were
 * then faulted in again. Two spans of our own, each with one free unit: the fullest listed
 * (relisted last) holds a fresh one, the other a resident one. */
static void a_short_run_takes_a_resident_unit_first(void **state)
{
    (void)state;
    vt_init();
    vt_span_t *fresh = vt_span_map(), *resident = vt_span_map();
    assert_non_null(fresh);
    assert_non_null(resident);
    /* Under the lock nothing may fail (an assertion's jump would leave it held): results are
     * checked after. */
    vt_span_lock();
    vt_span_add_locked(resident);
    vt_span_add_locked(fresh);
    vt_page_t *one = vt_span_take_from_locked(resident, 1, 1);
    vt_page_t *rest = vt_span_take_from_locked(resident, VT_SPAN_UNITS - 3, 1);
    vt_page_t *most = NULL, *got = NULL;
    bool fullest_first = false, stale = false;
    vt_span_t *where = NULL;
    if (one != NULL && rest != NULL) {
        vt_page_assign(one, 0, VT_OWNER_GLOBAL); /* used, so resident when given back */
        vt_page_unassign(one);
        vt_span_give_back_locked(one, vt_os_now_ms()); /* free and resident; a fresh one too */
        most = vt_span_take_from_locked(fresh, VT_SPAN_UNITS - 2, 1); /* one fresh unit left */
        fullest_first = vt_span_listed(1) == fresh;
        if (most != NULL && vt_span_take_locked(1, 1, &got, 1) == 1) {
            where = vt_span_base(got);
            stale = got->stale; /* a unit that was in use before: resident */
            vt_span_give_back_locked(got, vt_os_now_ms());
        }
    }
    if (rest != NULL)
        vt_span_give_back_locked(rest, vt_os_now_ms());
    if (most != NULL)
        vt_span_give_back_locked(most, vt_os_now_ms());
    vt_span_unlock();
    assert_non_null(one);
    assert_non_null(rest);
    assert_non_null(most);
    assert_true(fullest_first); /* the span with one fresh unit is first in line */
    assert_ptr_equal(where, resident);
    assert_true(stale);
}

/* A run taken from a span and given back without ever being assigned (the unused part of a
 * thread's batch) goes back clean: marked resident, it would be chosen before units that are,
 * and faulted in. One that was assigned goes back resident. */
static void a_run_never_assigned_goes_back_clean(void **state)
{
    (void)state;
    vt_init();
    vt_span_t *span = vt_span_map();
    assert_non_null(span);
    vt_span_lock();
    vt_span_add_locked(span);
    vt_page_t *page = vt_span_take_from_locked(span, 1, 1);
    uint64_t bit = page != NULL ? (uint64_t)1 << page->first_unit : 0;
    if (page != NULL)
        vt_span_give_back_locked(page, vt_os_now_ms());
    bool clean_after_unused = (span->dirty_units & bit) == 0;
    vt_page_t *again = vt_span_take_from_locked(span, 1, 1);
    vt_span_unlock();
    assert_non_null(page);
    assert_true(clean_after_unused);
    assert_non_null(again);
    vt_page_assign(again, 0, VT_OWNER_GLOBAL); /* a page of 16-byte blocks nobody owns */
    vt_page_unassign(again);
    bit = (uint64_t)1 << again->first_unit;
    vt_span_lock();
    vt_span_give_back_locked(again, vt_os_now_ms());
    bool dirty_after_use = (span->dirty_units & bit) != 0;
    vt_span_unlock();
    assert_true(dirty_after_use);
}

/* A thread's batch of runs from the global cache comes out of its stash in the order the global
 * cache handed it out, resident units first: the last of a batch may be a fresh one. */
static void a_batch_leaves_the_stash_in_the_order_it_came(void **state)
{
    (void)state;
    vt_tcache_t *tc = aligned_alloc(64, sizeof(vt_tcache_t));
    assert_non_null(tc);
    memset(tc, 0, sizeof(*tc));
    vt_page_t pages[3];
    memset(pages, 0, sizeof(pages));
    vt_page_t *batch[3] = {&pages[0], &pages[1], &pages[2]};
    for (int i = 0; i < 3; i++)
        pages[i].units = 1;
    vt_stash_push_batch(tc, batch, 3);
    assert_int_equal(vt_stash_count(tc), 3);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(vt_stash_pop(tc, 1), &pages[i]);
    assert_null(vt_stash_pop(tc, 1));
    free(tc);
}

/* A page of the biggest classes holds one block, so a thread with two of a class live has its
 * current page full. Freeing the other makes that one's page the current one, and the next
 * malloc takes it back on the fast path: given back to the stash instead, every malloc of the
 * class took a page from the stash again (patterns -p round-robin: 85 ns a call, 23 with it). */
static void an_emptied_page_replaces_a_full_current_one(void **state)
{
    (void)state;
    size_t size = 200 << 10;
    unsigned c = vt_size_class(size);
    assert_int_equal(vt_classes[c].capacity, 1);
    void *a = vt_malloc(size), *b = vt_malloc(size);
    assert_non_null(a);
    assert_non_null(b);
    vt_tcache_t *tc = vt_thread.tcache;
    vt_page_t *page_a = vt_span_page(vt_span_base(a), a),
              *page_b = vt_span_page(vt_span_base(b), b);
    assert_ptr_not_equal(page_a, page_b);
    assert_ptr_equal(tc->alloc_page[c], page_b); /* full: a's page was detached for it */
    uint64_t taken = tc->stash_taken;
    vt_free(a);
    assert_ptr_equal(tc->alloc_page[c], page_a);
    assert_ptr_equal(vt_malloc(size), a);
    assert_int_equal(tc->stash_taken, taken); /* no page came from the stash */
    vt_free(a);
    vt_free(b);
}

/* A thread with one block live, of a size drawn at random up to 16 KiB (memtest single,
 * NaviServer's old thread test), keeps a page of every class, so once each class has one it
 * never leaves malloc's fast path: an emptied current page stays its class's. A change that
 * gave such pages to other classes that needed one (session gg, not kept) took about 200 slow
 * paths in this loop and made memtest single four times slower; bench/run-instr, one size in a
 * loop, did not see it. */
static void one_live_block_of_random_sizes_stays_on_the_fast_path(void **state)
{
    (void)state;
    vt_free(vt_malloc(1));
    vt_tcache_t *tc = vt_thread.tcache;
    for (size_t size = 16; size <= 16384; size += 16) /* a page of every class up to 16 KiB */
        vt_free(vt_malloc(size));
    uint32_t slow = tc->slow_calls;
    uint64_t rng = 1;
    void *prev = NULL;
    for (int i = 0; i < 100000; i++) {
        vt_free(prev);
        prev = vt_malloc(rng_range(&rng, 1, 16384));
        assert_non_null(prev);
    }
    vt_free(prev);
    assert_int_equal(tc->slow_calls, slow);
}

/* The budget of empty long pages kept, in units (VTMALLOC_KEPT_LONG_KB). */
static unsigned kept_budget(void)
{
    return (unsigned)(((size_t)vt_options.kept_long_kb << 10) >> VT_UNIT_SHIFT);
}

/* The units of the empty long pages a thread keeps as its classes' current pages. */
static unsigned kept_long_units(vt_tcache_t *tc)
{
    unsigned units = 0;
    for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = tc->alloc_page[c];
        if (page != &vt_page_none && page->used == 0)
            units += page->units;
    }
    return units;
}

/* A long class's current page that was kept when it emptied is kept again at its next empty
 * without the walk over the long classes (kept_long, types.h), and the empty long pages kept
 * still fit VTMALLOC_KEPT_LONG_KB: a 64 KiB block freed in a loop keeps its page while blocks of
 * every other long class come and go, and keeping every emptied current page (the shortcut
 * without its mark) would hold 36 units here. */
static void kept_long_pages_stay_within_their_budget(void **state)
{
    (void)state;
    vt_free(vt_malloc(1)); /* this thread's cache */
    vt_tcache_t *tc = vt_thread.tcache;
    /* No housekeeping meanwhile: it would give the kept pages back between the checks. */
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000;
    tc->next_housekeeping_ms = vt_os_now_ms() + vt_options.purge_ms;
    /* A budget of 16 units, below the 36 that keeping every page would hold, whatever the
     * default (a budget above 36 units could never be exceeded here). */
    uint32_t saved_budget = vt_options.kept_long_kb;
    vt_options.kept_long_kb = 512;
    size_t loop_size = 64 << 10;
    unsigned loop_class = vt_size_class(loop_size);
    assert_true(loop_class >= VT_FIRST_LONG_CLASS && vt_classes[loop_class].units > 1);
    void *first = vt_malloc(loop_size);
    assert_non_null(first);
    vt_page_t *page = vt_span_page(vt_span_base(first), first);
    vt_free(first);
    for (int round = 0; round < 3; round++) {
        void *others[VT_CLASS_COUNT] = {0};
        for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++)
            if (c != loop_class)
                assert_non_null(others[c] = vt_malloc(vt_classes[c].bsize));
        uint64_t taken = tc->stash_taken;
        for (int i = 0; i < 100; i++) {
            void *p = vt_malloc(loop_size);
            assert_ptr_equal(vt_span_page(vt_span_base(p), p), page);
            vt_free(p);
        }
        assert_int_equal(tc->stash_taken, taken); /* the page stayed: none came from the stash */
        for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++) {
            vt_free(others[c]);
            if (kept_long_units(tc) > kept_budget())
                fail_msg(
                    "round %d, class %u freed: %u units of empty long pages kept, more than %u",
                    round, c, kept_long_units(tc), kept_budget());
        }
        /* The last class's page went back over the budget, with no check after it that
         * could have cleared a mark left behind: its next page must be checked again. */
        vt_free(vt_malloc(vt_classes[VT_CLASS_COUNT - 1].bsize));
        assert_true(kept_long_units(tc) <= kept_budget());
        vt_free(vt_malloc(loop_size));
        assert_true(kept_long_units(tc) <= kept_budget());
        /* malloc_trim gives the kept pages back and leaves their marks: the next round's pages
         * of those classes are kept on the marks alone, which must still fit. */
        vt_malloc_trim(0);
        first = vt_malloc(loop_size);
        page = vt_span_page(vt_span_base(first), first);
        vt_free(first);
    }
    vt_options.purge_ms = saved;
    vt_options.kept_long_kb = saved_budget;
}

/* ---- Kept long pages: one budget for the process ------------------------------------------ */

enum { KEPT_THREADS = 4, KEPT_SIZE = 200000 };
static pthread_barrier_t kept_freed, kept_end;

/* This thread's marks and share of the budget, left by the tests before, are set aside: its
 * next emptied long page is checked against the budget, which counts only others. */
static void forget_own_kept_marks(void)
{
    vt_free(vt_malloc(1));
    vt_kept_long_forget(vt_thread.tcache);
}

/* Frees a block of a long class: true when its page was kept. */
static bool free_one_long_block(void)
{
    void *p = vt_malloc(KEPT_SIZE);
    if (p == NULL)
        return false;
    memset(p, 1, KEPT_SIZE);
    vt_free(p);
    return vt_thread.tcache->kept_long[vt_size_class(KEPT_SIZE)] != 0;
}

static void *free_long_then_block(void *arg)
{
    *(bool *)arg = free_one_long_block();
    pthread_barrier_wait(&kept_freed);
    pthread_barrier_wait(&kept_end);
    return NULL;
}

/* Starts n threads one after another, each freeing its block before the next starts; they
 * block until end_kept_threads. */
static void start_kept_threads(pthread_t *th, bool *kept, unsigned n)
{
    pthread_barrier_init(&kept_freed, NULL, 2);
    pthread_barrier_init(&kept_end, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, free_long_then_block, &kept[i]), 0);
        pthread_barrier_wait(&kept_freed);
    }
}

static void end_kept_threads(pthread_t *th, unsigned n)
{
    pthread_barrier_wait(&kept_end);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&kept_freed);
    pthread_barrier_destroy(&kept_end);
}

/* Sets the budget to hold two pages of `c` and part of a third, whatever the default: the tests
 * below count on threads past the second finding it full. Returns the old value. */
static uint32_t budget_of_two_pages(unsigned c)
{
    uint32_t saved = vt_options.kept_long_kb;
    vt_options.kept_long_kb = (uint32_t)((2 * vt_classes[c].units * VT_UNIT_SIZE) >> 10) + 16;
    return saved;
}

static void *probe_long(void *arg)
{
    *(bool *)arg = free_one_long_block();
    return NULL;
}

/* Threads that each free a 200 KiB block, one after another, keep no more empty pages than one
 * budget holds for them all, where each alone would keep its own (with a budget per thread
 * only, all four did); and once they have been quiet for VTMALLOC_PURGE_MS, the purge passes
 * take their share, so that a thread still working keeps its page again. */
static void kept_long_pages_share_one_budget(void **state)
{
    (void)state;
    unsigned c = vt_size_class(KEPT_SIZE);
    uint32_t saved_budget = budget_of_two_pages(c);
    unsigned fit = kept_budget() / vt_classes[c].units;
    assert_true(c >= VT_FIRST_LONG_CLASS && fit == 2 && fit < KEPT_THREADS);
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000; /* nobody counts as quiet while the threads take turns */
    forget_own_kept_marks();
    pthread_t th[KEPT_THREADS];
    bool kept[KEPT_THREADS];
    start_kept_threads(th, kept, KEPT_THREADS);
    unsigned count = 0;
    for (unsigned i = 0; i < KEPT_THREADS; i++) {
        if (kept[i] != (i < fit))
            fail_msg("thread %u of %u %s its empty page of %u units; the budget holds %u", i,
                     KEPT_THREADS, kept[i] ? "kept" : "did not keep", vt_classes[c].units, fit);
        count += kept[i];
    }
    assert_int_equal(count, fit);

    /* The threads stay blocked: after VTMALLOC_PURGE_MS of that, a new thread keeps its page. */
    vt_options.purge_ms = 40;
    bool probe = false;
    for (int round = 0; round < 2000 && !probe; round++) {
        vt_free(vt_malloc(VT_SMALL_MAX + 1)); /* a large block: its free runs the schedule */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, probe_long, &probe), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        usleep(5000);
    }
    vt_options.purge_ms = saved;
    vt_options.kept_long_kb = saved_budget;
    end_kept_threads(th, KEPT_THREADS);
    if (!probe)
        fail_msg("after 10 s of purge passes, the quiet threads' kept pages still fill the "
                 "budget: a new thread's page of class %u is not kept",
                 c);
}

/* In a fork's child, the parent's other threads and their caches are gone, and so is their
 * share of the budget: the child's own page is kept where, counted with theirs, it would not
 * be. */
static void a_forks_child_counts_only_its_own_kept_pages(void **state)
{
    (void)state;
    unsigned c = vt_size_class(KEPT_SIZE);
    uint32_t saved_budget = budget_of_two_pages(c);
    unsigned fit = kept_budget() / vt_classes[c].units;
    assert_true(fit == 2 && fit < KEPT_THREADS);
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000;
    forget_own_kept_marks();
    pthread_t th[KEPT_THREADS];
    bool kept[KEPT_THREADS];
    start_kept_threads(th, kept, fit);
    for (unsigned i = 0; i < fit; i++)
        assert_true(kept[i]); /* they fill the budget */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(free_one_long_block() ? 0 : 3);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    vt_options.purge_ms = saved;
    vt_options.kept_long_kb = saved_budget;
    end_kept_threads(th, fit);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child did not keep its empty page (status %#x): the parent's threads, "
                 "gone in the child, still fill its budget",
                 status);
}

/* A marked class keeps its page at its next empty as a reservation, in use or not; when a
 * new class does not fit with the reservations, the marks of pages in use again give way, and
 * the new class is kept if the empty pages fit. A budget of 14 units: the 160 and 192 KiB
 * classes (5 and 6 units) are marked and in use again when a 224 KiB block (7) is freed. */
static void kept_long_marks_of_pages_in_use_give_way(void **state)
{
    (void)state;
    size_t sizes[3] = {150000, 180000, 200000};
    unsigned cls[3];
    for (int i = 0; i < 3; i++)
        cls[i] = vt_size_class(sizes[i]);
    assert_true(cls[0] < cls[1] && cls[1] < cls[2] && cls[0] >= VT_FIRST_LONG_CLASS);
    uint32_t saved_budget = budget_of_two_pages(cls[2]);
    unsigned units[3] = {vt_classes[cls[0]].units, vt_classes[cls[1]].units,
                         vt_classes[cls[2]].units};
    assert_true(units[0] + units[1] <= kept_budget() && units[2] <= kept_budget());
    assert_true(units[0] + units[1] + units[2] > kept_budget());
    unsigned budget = kept_budget();
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000; /* no housekeeping between the steps */
    forget_own_kept_marks();
    vt_tcache_t *tc = vt_thread.tcache;
    void *live[2];
    for (int i = 0; i < 2; i++) {
        vt_free(vt_malloc(sizes[i])); /* kept and marked */
        assert_true(tc->kept_long[cls[i]]);
        assert_non_null(live[i] = vt_malloc(sizes[i])); /* in use again: the mark stays */
        assert_true(tc->kept_long[cls[i]]);
    }
    vt_free(vt_malloc(sizes[2]));
    bool kept = tc->kept_long[cls[2]] != 0;
    bool gave_way = !tc->kept_long[cls[0]] && !tc->kept_long[cls[1]];
    for (int i = 0; i < 2; i++)
        vt_free(live[i]);
    vt_options.purge_ms = saved;
    vt_options.kept_long_kb = saved_budget;
    forget_own_kept_marks();
    if (!kept || !gave_way)
        fail_msg("the 224 KiB page %s kept, and the marks of the pages in use %s: the empty "
                 "pages alone (%u units) fit the budget of %u",
                 kept ? "was" : "was not", gave_way ? "gave way" : "stayed", units[2], budget);
}

/* A page of an exited thread whose blocks another thread then frees goes back to its span at
 * the next take of units that may need it, not at the next purge pass: its units are resident,
 * and a take that passed them over would fault in others while they lay idle. A take of one
 * unit that finds a resident free one leaves the page for a thread of its class to adopt; a run
 * of two units needs resident units side by side, so it looks whatever else is resident. */
enum { PARKED_BLOCKS = 3, PARKED_SIZE = 7000 }; /* a page of one unit with room left */

static void *fill_part_of_a_page(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < PARKED_BLOCKS; i++)
        if ((blocks[i] = vt_malloc(PARKED_SIZE)) != NULL)
            memset(blocks[i], 1, PARKED_SIZE);
    return NULL; /* its page, with blocks in use, goes to the global cache */
}

static void a_page_freed_by_others_goes_back_at_the_next_take(void **state)
{
    (void)state;
    unsigned c = vt_size_class(PARKED_SIZE);
    assert_true(vt_classes[c].capacity > PARKED_BLOCKS);
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000; /* no purge pass collects the page meanwhile */
    vt_free(vt_malloc(100));     /* this thread has a cache, so its frees gather in chains */
    void *blocks[PARKED_BLOCKS] = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fill_part_of_a_page, blocks), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < PARKED_BLOCKS; i++)
        assert_non_null(blocks[i]);
    vt_page_t *page = vt_span_page(vt_span_base(blocks[0]), blocks[0]);
    uintptr_t parked = vt_page_owner(page);
    /* A resident free unit, for the one-unit take below (a used run goes back resident). */
    vt_page_t *used = vt_global_take_run(1, 1, c);
    if (used != NULL) {
        vt_span_lock();
        vt_page_assign(used, 0, VT_OWNER_GLOBAL);
        vt_page_unassign(used);
        vt_span_give_back_locked(used, vt_os_now_ms());
        vt_span_unlock();
    }
    for (int i = 0; i < PARKED_BLOCKS; i++)
        vt_free(blocks[i]);
    vt_remote_flush(vt_thread.tcache); /* the chain of those frees reaches the page */
    uintptr_t before = vt_page_owner(page);
    vt_page_t *one = vt_global_take_run(1, 1, c);
    uintptr_t after_one = vt_page_owner(page);
    vt_page_t *two = vt_global_take_run(2, 1, c);
    uintptr_t after_two = vt_page_owner(page);
    vt_span_lock();
    if (one != NULL)
        vt_span_give_back_locked(one, vt_os_now_ms());
    if (two != NULL)
        vt_span_give_back_locked(two, vt_os_now_ms());
    vt_span_unlock();
    vt_options.purge_ms = saved;
    assert_non_null(used);
    assert_int_equal(parked, VT_OWNER_GLOBAL);
    assert_int_equal(before, VT_OWNER_GLOBAL); /* emptied, but not yet looked at */
    assert_non_null(one);
    assert_int_equal(after_one, VT_OWNER_GLOBAL); /* a resident unit served: left for adoption */
    assert_non_null(two);
    assert_int_equal(after_two, VT_OWNER_FREE);
}

/* Adopt on free (tcache.c): a free into a page of an exited thread makes the page the freeing
 * thread's only when that thread's current page of the class has no free block listed. While
 * it still has blocks to hand out, the page stays in the global cache for whichever thread
 * needs a page of the class next; adopting it then kept it partly used in a bin, a fifth of
 * memtest churn's peak at 8 threads. */
static void a_free_adopts_only_for_a_class_that_needs_blocks(void **state)
{
    (void)state;
    unsigned c = vt_size_class(PARKED_SIZE);
    uint32_t saved = vt_options.purge_ms;
    vt_options.purge_ms = 60000; /* no purge pass takes the page meanwhile */
    /* This thread's own page of the class, with a free block listed (made first: a page the
     * exited thread left would serve these mallocs). */
    void *a = vt_malloc(PARKED_SIZE), *b = vt_malloc(PARKED_SIZE);
    assert_non_null(a);
    assert_non_null(b);
    vt_tcache_t *tc = vt_thread.tcache;
    vt_free(a);
    vt_page_t *own = tc->alloc_page[c];
    assert_non_null(own->free);
    void *blocks[PARKED_BLOCKS] = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fill_part_of_a_page, blocks), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < PARKED_BLOCKS; i++)
        assert_non_null(blocks[i]);
    vt_page_t *parked = vt_span_page(vt_span_base(blocks[0]), blocks[0]);
    assert_ptr_not_equal(parked, own);
    assert_int_equal(vt_page_owner(parked), VT_OWNER_GLOBAL);
    vt_free(blocks[0]);
    uintptr_t with_blocks = vt_page_owner(parked);
    /* Its list runs dry: the next free into the parked page adopts it. */
    a = vt_malloc(PARKED_SIZE);
    assert_non_null(a);
    assert_ptr_equal(tc->alloc_page[c], own);
    assert_null(own->free);
    vt_free(blocks[1]);
    uintptr_t list_dry = vt_page_owner(parked);
    vt_free(blocks[2]);
    vt_free(a);
    vt_free(b);
    vt_remote_flush(tc);
    vt_options.purge_ms = saved;
    assert_int_equal(with_blocks, VT_OWNER_GLOBAL);
    assert_int_equal(list_dry, (uintptr_t)tc);
}

/* The pages of a span's header that are resident (mincore). */
static size_t header_pages_resident(vt_span_t *span, size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (bytes + page - 1) / page, resident = 0;
    unsigned char vec[64];
    assert_true(n <= sizeof(vec));
    assert_int_equal(mincore(span, n * page, vec), 0);
    for (size_t i = 0; i < n; i++)
        resident += vec[i] & 1;
    return resident;
}

/* A span whose pages all start at even units (blocks aligned to 128 KiB, each alone in its run)
 * makes only the part of its header that their descriptors occupy resident: the descriptors
 * are stored by the reversed bits of their first unit, so even units fill the first half. */
static void aligned_runs_leave_half_the_span_header_untouched(void **state)
{
    (void)state;
    vt_init();
    if (vt_options.backing != VT_BACKING_MMAP)
        skip(); /* memory from malloc is cleared whole */
    vt_span_t *span = vt_span_map();
    assert_non_null(span);
    vt_page_t *runs[VT_SPAN_UNITS / 2];
    size_t n = 0;
    vt_span_lock();
    vt_span_add_locked(span);
    while (n < VT_SPAN_UNITS / 2 && (runs[n] = vt_span_take_from_locked(span, 1, 2)) != NULL)
        n++;
    vt_span_unlock();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t used = offsetof(vt_span_t, pages) + VT_SPAN_UNITS / 2 * sizeof(vt_page_t);
    size_t resident = header_pages_resident(span, sizeof(vt_span_t));
    vt_span_lock();
    for (size_t i = 0; i < n; i++)
        vt_span_give_back_locked(runs[i], vt_os_now_ms());
    vt_span_unlock();
    assert_int_equal(n, VT_SPAN_UNITS / 2 - 1); /* every even unit but the header's */
    if (resident > (used + page - 1) / page)
        fail_msg("%zu pages of the span header resident; its first %zu bytes hold every "
                 "descriptor in use",
                 resident, used);
}

/* The window of recent demand (retain.c) keeps its peak for a window, also when a caller
 * passes a time read a moment before another's change moved the window on (callers read the
 * clock before they take the lock): such a time once read as fifty days of quiet and wiped the
 * peak, and the next pass gave back memory the load was about to use again. */
static void the_window_keeps_its_peak_against_an_older_clock(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms, saved_retain = vt_options.retain_ms;
    vt_options.purge_ms = 1000;
    vt_options.retain_ms = 1000;
    vt_window_t w = {0};
    uint32_t t = 5000000;
    vt_window_change(&w, 500, t); /* the peak */
    vt_window_change(&w, -400, t + 130);
    assert_int_equal(vt_window_peak(&w, t + 130), 500);
    assert_int_equal(vt_window_peak(&w, t + 120), 500); /* read before the last change */
    vt_window_change(&w, 1, t + 100);
    assert_int_equal(vt_window_peak(&w, t + 900), 500);
    assert_int_equal(vt_window_peak(&w, t + 1200), 101); /* a whole window later: forgotten */
    vt_options.purge_ms = saved;
    vt_options.retain_ms = saved_retain;
}

/* Two clocks (retain.c): while demand keeps moving, free memory that the window's peak
 * accounts for stays resident for the whole window (VTMALLOC_RETAIN_MS, here longer than the
 * test), though passes run all along; once nothing has moved for VTMALLOC_PURGE_MS, the next
 * pass gives it back. The moving demand is a 2 MiB block allocated and freed every 20 ms (a
 * mapped block: large.c's window changes each time). */
static void a_busy_process_keeps_free_memory_and_a_quiet_one_returns_it(void **state)
{
    (void)state;
    uint32_t saved = vt_options.purge_ms, saved_retain = vt_options.retain_ms;
    vt_options.purge_ms = 200;
    vt_options.retain_ms = 60000;
    vt_malloc_trim(0);
    allocate_big_blocks();
    free_big_blocks();
    vt_stats_t freed, busy, quiet;
    vt_stats_get(&freed);
    assert_true(freed.bytes_free_resident >= (uint64_t)(BIG_BLOCKS - 2) * VT_LARGE_SPAN_MAX);
    struct timespec step = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 50; i++) { /* a second: five times VTMALLOC_PURGE_MS */
        vt_free(vt_malloc((size_t)2 << 20));
        vt_purge_tick();
        nanosleep(&step, NULL);
    }
    vt_stats_get(&busy);
    struct timespec rest = {0, 500 * 1000 * 1000};
    nanosleep(&rest, NULL); /* no call at all: quiet */
    vt_purge_tick();
    vt_stats_get(&quiet);
    vt_options.purge_ms = saved;
    vt_options.retain_ms = saved_retain;
    if (busy.bytes_free_resident < freed.bytes_free_resident / 10 * 9)
        fail_msg("busy: %zu of %zu KiB of free memory left resident",
                 (size_t)(busy.bytes_free_resident >> 10),
                 (size_t)(freed.bytes_free_resident >> 10));
    if (quiet.bytes_free_resident > (uint64_t)4 << 20)
        fail_msg("quiet: %zu KiB of free memory still resident",
                 (size_t)(quiet.bytes_free_resident >> 10));
}

/* A run that takes units the kernel must fault in, while more free units are resident than the
 * recent peak demand and VTMALLOC_OVERSHOOT_MB allow, asks for as many resident ones to go back,
 * and the allocation's slow path (vt_purge_after_take) returns them, those freed longest ago
 * first; within the slack it asks for nothing. Forty resident free units of a span of our own,
 * half freed 5 minutes ago, half now; a window of 1 ms, so that the peak of their demand is
 * forgotten and the policy allows only its floor (1 MiB, 32 units); runs of four fresh units
 * from another span. */
static void a_run_from_the_kernel_trades_old_resident_units(void **state)
{
    (void)state;
    enum { RESIDENT = 40, OLD = 20, RUN = 4 };
    uint32_t saved = vt_options.purge_ms, saved_retain = vt_options.retain_ms;
    uint32_t saved_overshoot = vt_options.overshoot_mb;
    vt_options.purge_ms = 600000; /* no unit is old enough for the idle path, nor quiet */
    vt_options.retain_ms = 1;
    vt_init();
    vt_malloc_trim(0); /* few other free units resident */
    vt_span_t *resident = vt_span_map(), *fresh = vt_span_map();
    assert_non_null(resident);
    assert_non_null(fresh);
    vt_page_t *pages[RESIDENT] = {0}, *within = NULL, *beyond = NULL, *traded = NULL;
    uint64_t old_units = 0;
    vt_span_lock(); /* nothing may fail under it: results are checked after */
    vt_span_add_locked(resident);
    vt_span_add_locked(fresh);
    uint32_t now = vt_os_now_ms();
    for (int i = 0; i < RESIDENT; i++)
        pages[i] = vt_span_take_from_locked(resident, 1, 1);
    for (int i = 0; i < RESIDENT && pages[i] != NULL; i++) {
        vt_page_assign(pages[i], 0, VT_OWNER_GLOBAL); /* used: resident when given back */
        vt_page_unassign(pages[i]);
        old_units |= i < OLD ? (uint64_t)1 << pages[i]->first_unit : 0;
        vt_span_give_back_locked(pages[i], i < OLD ? now - 300000 : now);
    }
    vt_span_unlock();
    for (int i = 0; i < RESIDENT; i++)
        assert_non_null(pages[i]);
    struct timespec pause = {0, 50 * 1000 * 1000}; /* the 1 ms window forgets the peak */
    nanosleep(&pause, NULL);
    uint32_t dirty = vt_span_dirty_count(); /* ours, and a few the trim left */
    assert_in_range(dirty, RESIDENT, RESIDENT + 8);
    vt_retain_take_overshoot(); /* nothing asked before */

    vt_options.overshoot_mb = 64; /* 40-48 resident units are within 1 + 64 MiB */
    vt_span_lock();
    within = vt_span_take_from_locked(fresh, RUN, 1);
    vt_span_unlock();
    uint32_t asked_within = vt_retain_take_overshoot();

    vt_options.overshoot_mb = 0; /* 40-48 are beyond the floor's 32 */
    vt_span_lock();
    beyond = vt_span_take_from_locked(fresh, RUN, 1);
    vt_span_unlock();
    uint32_t asked_beyond = vt_retain_take_overshoot();
    vt_span_lock();
    traded = vt_span_take_from_locked(fresh, RUN, 1);
    vt_span_unlock();
    vt_purge_after_take();
    uint32_t dirty_after = vt_span_dirty_count();
    uint64_t old_left = resident->dirty_units & old_units;

    vt_span_lock();
    for (vt_page_t **run = (vt_page_t *[]){within, beyond, traded}, **end = run + 3; run < end;
         run++)
        if (*run != NULL)
            vt_span_give_back_locked(*run, vt_os_now_ms()); /* never assigned: back clean */
    vt_span_unlock();
    vt_options.purge_ms = saved;
    vt_options.retain_ms = saved_retain;
    vt_options.overshoot_mb = saved_overshoot;
    assert_non_null(within);
    assert_non_null(beyond);
    assert_non_null(traded);
    assert_int_equal(asked_within, 0);
    assert_int_equal(asked_beyond, RUN);
    assert_int_equal(dirty_after, dirty - RUN); /* as many as were taken, not all 8-16 */
    assert_int_equal(__builtin_popcountll(old_left), OLD - RUN); /* the oldest went */
}

int main(void)
{
    /* These tests shorten VTMALLOC_PURGE_MS while they run and count on the passes of the
     * allocator's slow paths; a purge thread reading the option meanwhile would race with them.
     * The one test of the purge thread turns it on in a child of its own. */
    vt_options.purge_thread = 0; /* before any thread: none can start it yet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(statistics_add_up_per_class_under_threads, fresh_quiet_time),
        cmocka_unit_test_setup(the_window_keeps_its_peak_against_an_older_clock, fresh_quiet_time),
        cmocka_unit_test_setup(a_short_run_takes_a_resident_unit_first, fresh_quiet_time),
        cmocka_unit_test_setup(aligned_runs_leave_half_the_span_header_untouched, fresh_quiet_time),
        cmocka_unit_test_setup(a_run_never_assigned_goes_back_clean, fresh_quiet_time),
        cmocka_unit_test_setup(a_batch_leaves_the_stash_in_the_order_it_came, fresh_quiet_time),
        cmocka_unit_test_setup(an_emptied_page_replaces_a_full_current_one, fresh_quiet_time),
        cmocka_unit_test_setup(one_live_block_of_random_sizes_stays_on_the_fast_path,
                               fresh_quiet_time),
        cmocka_unit_test_setup(a_page_freed_by_others_goes_back_at_the_next_take, fresh_quiet_time),
        cmocka_unit_test_setup(a_free_adopts_only_for_a_class_that_needs_blocks, fresh_quiet_time),
        cmocka_unit_test_setup(requested_bytes_are_counted, fresh_quiet_time),
        cmocka_unit_test_setup(rss_returns_after_free_and_trim, fresh_quiet_time),
        cmocka_unit_test_setup(purged_on_schedule_without_trim, fresh_quiet_time),
        cmocka_unit_test_setup(freed_memory_serves_the_next_demand_then_leaves, fresh_quiet_time),
        cmocka_unit_test_setup(a_busy_process_keeps_free_memory_and_a_quiet_one_returns_it,
                               fresh_quiet_time),
        cmocka_unit_test_setup(a_process_that_comes_back_keeps_its_memory_over_the_next_pause,
                               fresh_quiet_time),
        cmocka_unit_test_setup(arrays_of_changing_sizes_reuse_one_mapping, fresh_quiet_time),
        cmocka_unit_test_setup(freed_mapped_blocks_go_back_in_runs_around_live_ones,
                               fresh_quiet_time),
        cmocka_unit_test_setup(an_idle_thread_gives_up_its_stash, fresh_quiet_time),
        cmocka_unit_test_setup(the_next_wave_of_threads_reuses_what_the_last_freed,
                               fresh_quiet_time),
        cmocka_unit_test_setup(a_quiet_process_returns_memory_with_the_purge_thread,
                               fresh_quiet_time),
        cmocka_unit_test_setup(the_purge_thread_runs_a_pass_at_every_wake_up, fresh_quiet_time),
        cmocka_unit_test_setup(a_new_thread_takes_one_unit, fresh_quiet_time),
        cmocka_unit_test_setup(thousand_threads_stay_bounded, fresh_quiet_time),
        cmocka_unit_test_setup(kept_long_pages_stay_within_their_budget, fresh_quiet_time),
        cmocka_unit_test_setup(kept_long_pages_share_one_budget, fresh_quiet_time),
        cmocka_unit_test_setup(a_forks_child_counts_only_its_own_kept_pages, fresh_quiet_time),
        cmocka_unit_test_setup(kept_long_marks_of_pages_in_use_give_way, fresh_quiet_time),
        cmocka_unit_test_setup(calloc_after_a_refused_purge_is_zero, fresh_quiet_time),
        cmocka_unit_test_setup(a_run_from_the_kernel_trades_old_resident_units, fresh_quiet_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
