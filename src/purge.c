/*
 * purge.c - when free memory goes back to the OS: the pass that runs a few times per
 * VTMALLOC_PURGE_MS, the housekeeping of a thread's slow paths, malloc_trim, and the optional
 * purge thread.
 *
 * Layer: 10 purge schedule
 * Calls: os.c, report.c, options.c, retain.c, span.c, spanpurge.c, global.c, cachepool.c,
 *        large.c, profdump.c, tcache.c, reclaim.c
 *
 * Owns: the time of the next pass, the purge thread. How much is returned is the retention
 * policy's measure (retain.c); how, spanpurge.c's and large.c's. This file only decides when,
 * and calls down: the layers below never call it. The allocator's own slow paths (alloc.c)
 * and thread starts and exits (init.c) give it its turns.
 */
#include "internal.h"

static struct schedule {
    /* When the next pass is due (vt_os_now_ms). Read and advanced without a lock by
     * compare-and-swap, so that one thread, not all, runs a due pass. */
    _Atomic uint32_t next_pass_ms;
    _Atomic bool thread_started; /* the purge thread runs (or is being started) */
    _Atomic uint32_t wake;       /* bumped to wake the purge thread early (vt_purge_last_exit) */
    void (*thread_hook)(void);   /* registered once at start-up (init.c): see below */
    _Atomic uint64_t passes;     /* passes run: a count the tests read, ordering nothing */
} sch;

/* Hook: what the purge thread does besides the passes at each of its wake-ups (init.c: the
 * dumps a signal asked for, which a process that no longer allocates would not serve). */
void vt_purge_set_thread_hook(void (*hook)(void))
{
    sch.thread_hook = hook;
}

/* Passes run at most once per this part of VTMALLOC_PURGE_MS. */
#define PASSES_PER_WINDOW 4

static uint32_t pass_interval(void)
{
    uint32_t interval = vt_options.purge_ms / PASSES_PER_WINDOW;
    return interval ? interval : 1;
}

/* The pass: the heap profiler's empty pages of shards that went quiet, and emptied pages of
 * exited threads, back to their spans (so that their units can age and be purged too), the
 * stashes of quiet threads to the global cache (likewise), then what
 * the recent demand does not account for back to the OS: empty spans, free units, cached large
 * mappings. Whichever thread finds it due runs it; a process that stops calling the allocator
 * keeps what it freed in its last interval until it calls again, calls malloc_trim, or runs
 * the purge thread. */
static void tick(uint32_t slack_ms)
{
    vt_spanpurge_excess(); /* above the dirty budget: at once, not at the next pass */
    uint32_t now = vt_os_now_ms();
    uint32_t due = atomic_load_explicit(&sch.next_pass_ms, memory_order_relaxed);
    uint32_t interval = pass_interval();
    /* Not yet due (within slack_ms); but a pass set further ahead than one interval
     * (VTMALLOC_PURGE_MS was shortened since, as tests do) is due now. */
    if ((int32_t)(now + slack_ms - due) < 0 && due - now <= interval)
        return;
    /* Relaxed: the CAS only elects one thread; the pass synchronises by the locks it takes. */
    if (!atomic_compare_exchange_strong_explicit(&sch.next_pass_ms, &due, now + interval,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(&sch.passes, 1, memory_order_relaxed);
    vt_prof_pass();
    vt_global_collect(now);
    vt_global_purge_partial(now, vt_options.purge_ms);
    vt_reclaim_idle();
    vt_spanpurge_unmap_empty(true);
    vt_spanpurge_beyond_demand(now);
    vt_large_purge(false);
}

/* The schedule's turn on the allocator's own paths (slow paths, thread starts and exits): the
 * pass runs only once it is due. */
void vt_purge_tick(void)
{
    tick(0);
}

/* After an allocation's slow path: the resident memory its runs added beyond the recent peak
 * demand and VTMALLOC_OVERSHOOT_MB goes back now, not at the next pass (retain.c: the
 * overshoot). On the caller's thread, after the global lock was dropped, and before the new
 * units are written much: so the peak RSS does not climb in the meantime. The check is one
 * relaxed load; errno is the caller's. */
void vt_purge_after_take(void)
{
    uint32_t units = vt_retain_take_overshoot();
    if (vt_likely(units == 0))
        return;
    int saved = errno;
    vt_spanpurge_overshoot(vt_os_now_ms(), units);
    errno = saved;
}

uint64_t vt_purge_passes(void)
{
    return atomic_load_explicit(&sch.passes, memory_order_relaxed);
}

/* A thread's allocation slow path: every few dozen calls, and at most once per
 * VTMALLOC_PURGE_MS, the thread tidies its own cache (tcache.c), looks for caches of threads
 * that are gone, and the schedule gets its turn. */
void vt_purge_housekeeping(vt_tcache_t *tc)
{
    if (!vt_tcache_housekeeping(tc))
        return;
    vt_reclaim_reap(false);
    vt_purge_tick();
}

/* malloc_trim: everything free goes back now, whatever the demand: what every thread holds
 * back for itself first (their remote frees may empty pages), then the caches of threads that
 * are gone, then the spans and the large cache. */
int vt_purge_trim(void)
{
    vt_reclaim_trim();
    vt_reclaim_reap(true);
    vt_prof_trim();
    uint32_t now = vt_os_now_ms();
    vt_global_collect(now);
    size_t purged = vt_global_purge_partial(now, 0);
    bool released = vt_spanpurge_unmap_empty(false);
    purged += vt_spanpurge_all() + vt_large_purge(true);
    return purged > 0 || released;
}

/* True when no free unit is resident and no large mapping is kept: a pass has nothing to
 * return. Relaxed: a stale answer only moves the purge thread's next pass. */
static bool nothing_to_return(void)
{
    return vt_span_dirty_count() == 0 && vt_large_cached_bytes() == 0;
}

/* ---- The purge thread (VTMALLOC_PURGE_THREAD) ------------------------------------------ */

/* Without it, passes run on the allocator's slow paths, so a process that stops calling the
 * allocator keeps what it freed until it calls again. With it, a detached thread runs a pass
 * every pass interval, whatever the program does, so a server that goes quiet is lean a
 * window later (measured on the soak benchmark's quick mode: RSS after the drain and 2 s of
 * quiet 3.9 MiB with it, 98 MiB without; throughput the same within the noise, on it and on
 * the server waves). It never allocates (its cache stays the static unstarted one). With 2 it
 * starts with the second thread cache: a threaded process, whose quiet spells matter; a
 * single-threaded program keeps glibc's single-thread fast paths (stdio without locks), which
 * a second thread would end. 1 starts it with the first cache. Started after the cache is in
 * place: pthread_create may call malloc, which then finds a working cache. While there is no
 * free memory left to return it sleeps longer, up to PURGE_THREAD_MAX_SLEEP_MS. It ends when
 * no thread cache is live any more: a program whose main thread calls pthread_exit ends when
 * its last thread does, and must not wait for ours (a new cache starts another): the exit of
 * the last live cache's thread wakes it (vt_purge_last_exit), so that it ends at once, not a
 * sleep later. 2 is the default. */
#define PURGE_THREAD_MAX_SLEEP_MS 1000

/* The purge thread wakes an interval after its last pass, and then a pass is due; but the
 * clock the schedule reads (vt_os_now_ms: the coarse clock, which moves in the kernel's ticks)
 * may still read a little short of it, and the pass would wait for the next wake-up. With the
 * default 250 ms interval and a kernel ticking at 250 Hz (4 ms steps; 250 is not a multiple of
 * 4) it read 2 ms short at every other wake-up: a process that had gone quiet saw a pass every
 * half second instead of every quarter, and the soak benchmark's quick mode, which reads RSS
 * two seconds after its load, found its memory still resident in about one run in twenty. So
 * the thread runs a pass that is due within this part of an interval, and at least within
 * the longest step the clock takes (HZ = 100: 10 ms), for short intervals. */
#define THREAD_SLACK_PARTS 8
#define CLOCK_STEP_MAX_MS  10

/* The purge thread's stack: it calls only the allocator's own pass. */
#define PURGE_THREAD_STACK ((size_t)64 << 10)

static void *purge_thread_main(void *arg)
{
    (void)arg;
    uint32_t sleep_ms = 0;
    for (;;) {
        uint32_t interval = pass_interval();
        /* Longer sleeps while there is nothing to return; never more than the longest, so
         * that a window set shorter meanwhile applies soon. */
        sleep_ms = nothing_to_return() ? sleep_ms * 2 + interval : interval;
        if (sleep_ms > PURGE_THREAD_MAX_SLEEP_MS)
            sleep_ms = PURGE_THREAD_MAX_SLEEP_MS;
        /* Acquire pairs with vt_purge_last_exit's release: a thread that read its bump also
         * reads the count of live caches that it saw, and does not wait; one that read the
         * value before the bump waits on it and finds it changed, or is woken. */
        uint32_t seen = atomic_load_explicit(&sch.wake, memory_order_acquire);
        if (vt_cachepool_live() != 0)
            vt_os_wait(&sch.wake, seen, sleep_ms);
        if (vt_cachepool_live() == 0) {
            /* Relaxed: the flag only elects the thread; a cache that starts after the store
             * starts another, and one that started before it is seen by the check below. */
            atomic_store_explicit(&sch.thread_started, false, memory_order_relaxed);
            bool no = false;
            if (vt_cachepool_live() == 0 ||
                !atomic_compare_exchange_strong_explicit(
                    &sch.thread_started, &no, true, memory_order_relaxed, memory_order_relaxed))
                return NULL;
        }
        uint32_t slack = interval / THREAD_SLACK_PARTS;
        tick(slack > CLOCK_STEP_MAX_MS ? slack : CLOCK_STEP_MAX_MS);
        if (sch.thread_hook != NULL)
            sch.thread_hook();
    }
}

/* Called when a thread cache has started (init.c): starts the purge thread if the option asks
 * for it now. */
void vt_purge_thread_maybe_start(void)
{
    if (vt_likely(vt_options.purge_thread == 0) ||
        atomic_load_explicit(&sch.thread_started, memory_order_relaxed) ||
        (vt_options.purge_thread == 2 && vt_cachepool_started() < 2))
        return;
    bool no = false;
    /* Relaxed: only elects the starter; nothing else is published through the flag. */
    if (!atomic_compare_exchange_strong_explicit(&sch.thread_started, &no, true,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    pthread_attr_t attr;
    pthread_t thread;
    int saved = errno;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, PURGE_THREAD_STACK);
        if (pthread_create(&thread, &attr, purge_thread_main, NULL) != 0)
            vt_message("vtmalloc: VTMALLOC_PURGE_THREAD=%u: the purge thread could not be "
                       "started; purging stays on the allocator's slow paths\n",
                       vt_options.purge_thread);
        pthread_attr_destroy(&attr);
    }
    errno = saved;
}

/* A thread's cache went back (init.c, at its exit): when no live cache is left, the purge
 * thread ends, and must not sleep on first (a program whose main thread called pthread_exit
 * ends when our thread does). The count is read after the cache left the live list; release
 * orders that before the bump (purge_thread_main). */
void vt_purge_last_exit(void)
{
    if (!atomic_load_explicit(&sch.thread_started, memory_order_relaxed) ||
        vt_cachepool_live() != 0)
        return;
    atomic_fetch_add_explicit(&sch.wake, 1, memory_order_release);
    vt_os_wake(&sch.wake);
}

/* The purge thread did not come along into a forked child: the child's next new thread cache
 * starts one. */
void vt_purge_fork_child(void)
{
    atomic_store_explicit(&sch.thread_started, false, memory_order_relaxed);
}
