/*
 * init.c - process start, thread exit and fork.
 *
 * Owns: the one-time initialisation, the pthread key whose destructor hands a thread's cache
 * back, the fork handlers, the optional purge thread, and the statistics printed at exit.
 * Calls: options.c, os.c, tcache.c, global.c, large.c, stats.c.
 *
 * Initialisation is lazy: the first malloc of the first thread runs it from the slow path,
 * which may be during the dynamic loader's start or inside another library's constructor.
 * It touches nothing that could call back into malloc before the allocator is usable:
 * options come from `environ` (options.c), randomness from the auxiliary vector (os.c), and
 * the key and fork handlers are registered last. If one of those does allocate, the nested
 * malloc sees this thread is initialising and goes on with the state already in place.
 */
#include "internal.h"

uintptr_t vt_secret;
uintptr_t vt_link_secret;

enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2 };
static _Atomic int init_state;
static __thread bool init_in_this_thread __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static bool exit_key_ok;

static void on_thread_exit(void *cache)
{
    vt_tcache_thread_exit(cache);
}

/* ---- fork() ---------------------------------------------------------------------------- */

__thread bool vt_fork_holder __attribute__((tls_model("initial-exec")));
int32_t vt_process_id;

/* Fork: hold every lock across fork() so the child does not inherit one held by a thread
 * that no longer exists. Order: orphan cache, global cache, large blocks (the order in which
 * the code nests them), released in reverse. From the last lock taken until the first one is
 * released, this thread is the fork holder (lock.h): other handlers of the program that run
 * in between, before or after ours, may allocate and free. The handlers are registered when
 * the library is loaded (vt_init from the constructor below), so ours are usually the first:
 * then the program's prepare handlers run before ours and its parent and child handlers
 * after, and the fork holder is only needed for handlers registered earlier still. */
static void fork_prepare(void)
{
    vt_tcache_fork_prepare();
    vt_global_fork_prepare();
    vt_large_fork_prepare();
    vt_fork_holder = true;
}

static void fork_parent(void)
{
    vt_fork_holder = false;
    vt_large_fork_parent();
    vt_global_fork_parent();
    vt_tcache_fork_parent();
}

/* ---- The purge thread (VTMALLOC_PURGE_THREAD) ------------------------------------------ */

/* Without it, purge passes run on the allocator's slow paths, so a process that stops calling
 * the allocator keeps what it freed until it calls again. With it, a detached thread runs a
 * pass every quarter of VTMALLOC_PURGE_MS, whatever the program does, so a server that goes
 * quiet is lean a window later (measured on the soak benchmark's quick mode: RSS after the
 * drain and 2 s of quiet 3.9 MiB with it, 98 MiB without; throughput the same within the
 * noise, on it and on the server waves). It never allocates (its cache stays the static
 * unstarted one). With 2 it starts with the second thread cache: a threaded process, whose
 * quiet spells matter; a single-threaded program keeps glibc's single-thread fast paths
 * (stdio without locks), which a second thread would end. 1 starts it with the first cache.
 * Started after the cache is in place: pthread_create may call malloc, which then finds a
 * working cache. While there is no free memory left to return it sleeps longer, up to
 * PURGE_THREAD_MAX_SLEEP_MS. It ends when no thread cache is live any more: a program whose
 * main thread calls pthread_exit ends when its last thread does, and must not wait for ours
 * (a new cache starts another). Off by default for now: that rule makes such a program wait
 * up to PURGE_THREAD_MAX_SLEEP_MS more before it ends. */
#define PURGE_THREAD_MAX_SLEEP_MS 1000

static _Atomic bool purge_thread_started;

static void *purge_thread_main(void *arg)
{
    (void)arg;
    uint32_t sleep_ms = 0;
    for (;;) {
        uint32_t interval = vt_options.purge_ms / 4 ? vt_options.purge_ms / 4 : 1;
        if (vt_global_nothing_to_return())
            sleep_ms = sleep_ms * 2 < PURGE_THREAD_MAX_SLEEP_MS ? sleep_ms * 2 + interval
                                                                : PURGE_THREAD_MAX_SLEEP_MS;
        else
            sleep_ms = interval;
        vt_os_sleep_ms(sleep_ms);
        if (vt_global_caches_live() == 0) {
            /* Relaxed: the flag only elects the thread; a cache that starts after the store
             * starts another, and one that started before it is seen by the check below. */
            atomic_store_explicit(&purge_thread_started, false, memory_order_relaxed);
            bool no = false;
            if (vt_global_caches_live() == 0 ||
                !atomic_compare_exchange_strong_explicit(
                    &purge_thread_started, &no, true, memory_order_relaxed, memory_order_relaxed))
                return NULL;
        }
        vt_global_maybe_purge();
    }
}

static void start_purge_thread(void)
{
    bool no = false;
    /* Relaxed: only elects the starter; nothing else is published through the flag. */
    if (!atomic_compare_exchange_strong_explicit(&purge_thread_started, &no, true,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    pthread_attr_t attr;
    pthread_t thread;
    int saved = errno;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, (size_t)64 << 10);
        if (pthread_create(&thread, &attr, purge_thread_main, NULL) != 0)
            vt_message("vtmalloc: VTMALLOC_PURGE_THREAD=1: the purge thread could not be "
                       "started; purging stays on the allocator's slow paths\n");
        pthread_attr_destroy(&attr);
    }
    errno = saved;
}

static void fork_child(void)
{
    vt_fork_holder = false;
    vt_process_id = vt_os_process_id();
    vt_large_fork_child();
    vt_global_fork_child();
    vt_tcache_fork_child();
    /* The purge thread did not come along: the child's next new thread cache starts one. */
    atomic_store_explicit(&purge_thread_started, false, memory_order_relaxed);
}

void vt_init(void)
{
    if (vt_likely(atomic_load_explicit(&init_state, memory_order_acquire) == INIT_DONE))
        return;
    int expected = INIT_NONE;
    if (atomic_compare_exchange_strong_explicit(&init_state, &expected, INIT_RUNNING,
                                                memory_order_acquire, memory_order_acquire)) {
        init_in_this_thread = true;
        vt_options_load();
        if (vt_options.backing == VT_BACKING_MALLOC && !vt_sysalloc_init()) {
            vt_message("vtmalloc: VTMALLOC_BACKING=malloc: the system allocator was not found; "
                       "using mmap\n");
            vt_options.backing = VT_BACKING_MMAP;
        }
        vt_secret = (uintptr_t)vt_os_random();
        /* A second secret for the links, so that a free block's two words do not reveal one
         * another; its low four bits must not all be zero (vt_block_next). */
        uint64_t link = (vt_secret + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
        link ^= link >> 29;
        vt_link_secret = (uintptr_t)(link & 15 ? link : link | 1);
        vt_process_id = vt_os_process_id();
        if (vt_options.stats)
            vt_report_keep_stderr();
        exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        init_in_this_thread = false;
        atomic_store_explicit(&init_state, INIT_DONE, memory_order_release);
        return;
    }
    if (init_in_this_thread)
        return; /* called back from pthread_key_create or pthread_atfork */
    while (atomic_load_explicit(&init_state, memory_order_acquire) != INIT_DONE)
        sched_yield();
}

/* Arms the destructor that hands the cache back when the thread exits. Without a key (it
 * could not be created) the cache simply stays with the thread until the process ends. */
void vt_init_thread_cache(vt_tcache_t *tc)
{
    if (exit_key_ok)
        pthread_setspecific(exit_key, tc);
    if (vt_unlikely(vt_options.purge_thread != 0) &&
        !atomic_load_explicit(&purge_thread_started, memory_order_relaxed) &&
        (vt_options.purge_thread == 1 || vt_global_caches_started() >= 2))
        start_purge_thread();
}

/* Initialises when the library is loaded, unless a malloc did so already: the fork handlers
 * must be registered before any of the program's, and never from inside a fork (glibc runs
 * the handlers of a threaded process under the lock that pthread_atfork takes). */
__attribute__((constructor(101))) static void at_load(void)
{
    vt_init();
}

__attribute__((destructor)) static void at_exit(void)
{
    if (vt_options.stats)
        vt_stats_print();
}
