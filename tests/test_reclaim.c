/*
 * test_reclaim.c - what other threads hold back is reachable, however many threads there are.
 *
 * Each pass over other threads' caches looks at VT_CACHES_PER_PASS of them and goes on where
 * the last one stopped; malloc_trim goes round them all. With more threads than one pass
 * takes: malloc_trim takes every thread's stash; idle threads' stashes are taken by the purge
 * passes; every thread that is gone without its exit destructor is reaped. And a thread that
 * freed other threads' blocks and went quiet pins none of them: malloc_trim, or the purge
 * passes once it has been quiet for VTMALLOC_PURGE_MS, push the frees it gathered.
 *
 * Run with VTMALLOC_PURGE_MS=40 (ctest sets it) so that the idle cases take a moment.
 */
#include "common.h"

#include <pthread.h>
#include <limits.h>
#include <time.h>

#include "internal.h"
#include "vtmalloc.h"

enum { MANY = 2 * VT_CACHES_PER_PASS + 88, BURST = 400, BURST_SIZE = 1000 };

static pthread_barrier_t burst_done, release_threads;

static vt_stats_t stats(void)
{
    vt_stats_t st;
    vt_stats_get(&st);
    return st;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Allocates a burst, frees it (its emptied pages go to the thread's stash), and blocks. */
static void *burst_then_block(void *arg)
{
    (void)arg;
    void *blocks[BURST];
    for (int i = 0; i < BURST; i++) {
        blocks[i] = vt_malloc(BURST_SIZE);
        memset(blocks[i], 1, BURST_SIZE);
    }
    for (int i = 0; i < BURST; i++)
        vt_free(blocks[i]);
    pthread_barrier_wait(&burst_done);
    pthread_barrier_wait(&release_threads);
    return NULL;
}

static pthread_t *start_threads(unsigned n, void *(*fn)(void *))
{
    pthread_t *th = calloc(n, sizeof(*th));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 << 10);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], &attr, fn, NULL), 0);
    pthread_attr_destroy(&attr);
    return th;
}

static void join_threads(pthread_t *th, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    free(th);
}

/* What a blocked thread may keep: the current page of the class it used (a unit), and as
 * much again for the statistics' lag (a running thread's counts are published at its pages'
 * slow events). Before every cache was reachable, each thread past the first pass kept its
 * whole stash (7-8 units): 300 MiB for these threads against this limit of 83 MiB. */
static uint64_t kept_limit(unsigned threads)
{
    return (uint64_t)threads * 2 * VT_UNIT_SIZE + (8u << 20);
}

static bool threads_hold_little(void *arg)
{
    (void)arg;
    return stats().bytes_free_threads <= kept_limit(MANY);
}

/* The main thread keeps calling the allocator's slow paths (each large block in a span gives
 * its units back, which runs the purge schedule) until `done` says so, or 20 s pass. */
static bool drive_purge_passes(bool (*done)(void *), void *arg)
{
    uint64_t deadline = now_ms() + 20000;
    while (now_ms() < deadline) {
        if (done(arg))
            return true;
        vt_free(vt_malloc(300000));
        usleep(2000);
    }
    return done(arg);
}

static bool trim_once(void)
{
    vt_malloc_trim(0);
    return threads_hold_little(NULL);
}

static bool purge_passes(void)
{
    return drive_purge_passes(threads_hold_little, NULL);
}

/* MANY threads allocate a burst, free it and block; `reclaim` runs meanwhile, and must bring
 * what they hold down to kept_limit(). */
static void blocked_threads_give_up(bool (*reclaim)(void), const char *how)
{
    vt_malloc_trim(0);
    pthread_barrier_init(&burst_done, NULL, MANY + 1);
    pthread_barrier_init(&release_threads, NULL, MANY + 1);
    pthread_t *th = start_threads(MANY, burst_then_block);
    pthread_barrier_wait(&burst_done);
    uint64_t held = stats().bytes_free_threads;
    bool ok = reclaim();
    uint64_t after = stats().bytes_free_threads;
    pthread_barrier_wait(&release_threads);
    join_threads(th, MANY);
    pthread_barrier_destroy(&burst_done);
    pthread_barrier_destroy(&release_threads);
    if (!ok)
        fail_msg("%d blocked threads hold %zu KiB free after %s (%zu KiB before)", MANY,
                 (size_t)(after >> 10), how, (size_t)(held >> 10));
}

static void malloc_trim_takes_every_threads_stash(void **state)
{
    (void)state;
    blocked_threads_give_up(trim_once, "malloc_trim");
}

static void idle_threads_stashes_are_taken_however_many(void **state)
{
    (void)state;
    blocked_threads_give_up(purge_passes, "20 s of purge passes");
}

/* ---- Threads gone without their exit destructor ------------------------------------------ */

/* The thread's first allocation happens in the last round of key destructors, after
 * vtmalloc's destructor had its turn: its cache stays live when the thread is gone. */
static pthread_key_t late_key;
static _Atomic pid_t late_tids[MANY]; /* the threads' kernel ids, for wait_thread_gone */
static _Atomic unsigned late_count;   /* threads started so far */

static void late_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, (void *)(round + 1));
        return;
    }
    vt_free(vt_malloc(100));
}

static void *allocate_in_last_destructor_round(void *arg)
{
    (void)arg;
    atomic_store(&late_tids[atomic_fetch_add(&late_count, 1) % MANY], gettid());
    pthread_setspecific(late_key, (void *)(uintptr_t)1);
    return NULL;
}

static void every_gone_thread_is_reaped_by_one_trim(void **state)
{
    (void)state;
    assert_int_equal(pthread_key_create(&late_key, late_destructor), 0);
    vt_malloc_trim(0);
    uint64_t before = stats().thread_caches_live;
    pthread_t *th = start_threads(MANY, allocate_in_last_destructor_round);
    join_threads(th, MANY);
    for (unsigned i = 0; i < MANY; i++) /* the kernel lags the joins (common.h) */
        assert_true(wait_thread_gone(atomic_load(&late_tids[i])));
    uint64_t left = stats().thread_caches_live;
    vt_malloc_trim(0);
    uint64_t after = stats().thread_caches_live;
    pthread_key_delete(late_key);
    if (left <= before)
        skip(); /* the destructors' order left no cache behind: nothing to reap */
    if (after != before)
        fail_msg("%zu live caches before, %zu after %d threads ended, %zu after one "
                 "malloc_trim",
                 (size_t)before, (size_t)left, MANY, (size_t)after);
}

/* ---- Remote frees gathered by a thread that goes quiet --------------------------------- */

enum { REMOTE_BLOCKS = 64, REMOTE_SIZE = 250000 };
static void *remote_blocks[REMOTE_BLOCKS];
static pthread_barrier_t freed, finish;

static void *free_then_wait(void *arg)
{
    (void)arg;
    vt_free(vt_malloc(16)); /* a thread with a cache of its own gathers its remote frees */
    for (int i = 0; i < REMOTE_BLOCKS; i++)
        vt_free(remote_blocks[i]);
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&finish);
    return NULL;
}

static unsigned remote_class;

static uint64_t class_pages(void)
{
    return stats().classes[remote_class].pages;
}

static bool remote_pages_released(void *arg)
{
    return class_pages() <= *(uint64_t *)arg;
}

/* The main thread allocates the blocks; another frees them all and waits. */
static void run_remote_case(bool trim)
{
    remote_class = vt_size_class(REMOTE_SIZE);
    vt_malloc_trim(0);
    uint64_t pages_before = class_pages();
    for (int i = 0; i < REMOTE_BLOCKS; i++) {
        remote_blocks[i] = vt_malloc(REMOTE_SIZE);
        memset(remote_blocks[i], 7, REMOTE_SIZE);
    }
    pthread_barrier_init(&freed, NULL, 2);
    pthread_barrier_init(&finish, NULL, 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_then_wait, NULL), 0);
    pthread_barrier_wait(&freed);
    uint64_t pages_freed = class_pages();
    bool ok;
    uint64_t allowed = pages_before;
    if (trim) {
        vt_malloc_trim(0);
        ok = class_pages() <= allowed;
    } else {
        allowed = pages_before + 1; /* the main thread's current page of the class stays */
        ok = drive_purge_passes(remote_pages_released, &allowed);
    }
    uint64_t pages_after = class_pages();
    pthread_barrier_wait(&finish);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&freed);
    pthread_barrier_destroy(&finish);
    if (!ok)
        fail_msg("pages of %d-byte blocks: %zu before, %zu when all were freed, %zu after %s "
                 "(at most %zu expected)",
                 REMOTE_SIZE, (size_t)pages_before, (size_t)pages_freed, (size_t)pages_after,
                 trim ? "malloc_trim" : "20 s of purge passes", (size_t)allowed);
}

static void malloc_trim_releases_a_quiet_threads_remote_frees(void **state)
{
    (void)state;
    run_remote_case(true);
}

static void purge_passes_release_a_quiet_threads_remote_frees(void **state)
{
    (void)state;
    run_remote_case(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malloc_trim_takes_every_threads_stash),
        cmocka_unit_test(idle_threads_stashes_are_taken_however_many),
        cmocka_unit_test(every_gone_thread_is_reaped_by_one_trim),
        cmocka_unit_test(malloc_trim_releases_a_quiet_threads_remote_frees),
        cmocka_unit_test(purge_passes_release_a_quiet_threads_remote_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
