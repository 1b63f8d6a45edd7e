/*
 * init.c - process start, thread start and exit, fork.
 *
 * Layer: 12 start and fork
 * Calls: os.c, sysalloc.c, report.c, options.c, unwind.c, page.c, thread.c, span.c, spanpurge.c,
 *        global.c, cachepool.c, largetable.c, large.c, prof.c, tcache.c, purge.c, stats.c,
 *        dumps.c
 *
 * Owns: the one-time initialisation, the pthread key whose destructor hands a thread's cache
 * back, the fork handlers, and what happens at exit (the statistics, dumps.c's profile).
 *
 * Initialisation is lazy: the first malloc of the first thread runs it from the slow path
 * (alloc.c), which may be during the dynamic loader's start or inside another library's
 * constructor. It touches nothing that could call back into malloc before the allocator is
 * usable: options come from `environ` (options.c), randomness from the auxiliary vector
 * (os.c), and the key and fork handlers are registered last. If one of those does allocate,
 * the nested malloc sees this thread is initialising and goes on with the state already in
 * place.
 */
#include "internal.h"

enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2 };
static _Atomic int init_state;
static __thread bool init_in_this_thread __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static bool exit_key_ok;

static void on_thread_exit(void *cache);

/* The mixing step of splitmix64 (Steele, Lea and Flood): turns the first secret into a second
 * that reveals nothing simple about it. */
#define SECRET_MIX 0xbf58476d1ce4e5b9ull

/* ---- fork() ---------------------------------------------------------------------------- */

/* Fork: hold every lock across fork() so the child does not inherit one held by a thread
 * that no longer exists. Order: the orphan cache, the purge lock, the global lock, the cache
 * pool, large blocks (the order in which the code nests them), released in reverse. From the
 * last lock taken until the first one is released, this thread is the fork holder (lock.h):
 * other handlers of the program that run in between, before or after ours, may allocate and
 * free. The handlers are registered when the library is loaded (vt_init from the constructor
 * below), so ours are usually the first: then the program's prepare handlers run before ours
 * and its parent and child handlers after, and the fork holder is only needed for handlers
 * registered earlier still. */
static void fork_prepare(void)
{
    vt_tcache_fork_prepare();
    vt_prof_fork_prepare();
    vt_global_fork_prepare();
    vt_spanpurge_fork_prepare();
    vt_span_fork_prepare();
    vt_cachepool_fork_prepare();
    vt_largetable_fork_prepare();
    vt_unwind_fork_prepare();
    vt_fork_holder = true;
}

static void fork_parent(void)
{
    vt_fork_holder = false;
    vt_unwind_fork_parent();
    vt_largetable_fork_parent();
    vt_cachepool_fork_parent();
    vt_span_fork_parent();
    vt_spanpurge_fork_parent();
    vt_global_fork_parent();
    vt_prof_fork_parent();
    vt_tcache_fork_parent();
}

/* In the child only the forking thread runs: each layer releases what the parent's copy of
 * this thread took, and forgets the other threads (cachepool.c). */
static void fork_child(void)
{
    vt_fork_holder = false;
    vt_process_id = vt_os_process_id();
    vt_unwind_fork_child();
    vt_largetable_fork_child();
    vt_cachepool_fork_child(vt_thread.tcache);
    vt_span_fork_child();
    vt_spanpurge_fork_child();
    vt_global_fork_child();
    vt_prof_fork_child();
    vt_tcache_fork_child();
    vt_purge_fork_child();
}

/* ---- Process start ---------------------------------------------------------------------- */

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
        uint64_t link = (vt_secret + VT_FIBONACCI_HASH) * SECRET_MIX;
        link ^= link >> 29;
        vt_link_secret = (uintptr_t)(link & 15 ? link : link | 1);
        vt_process_id = vt_os_process_id();
        /* A span that cannot be mapped may take the place of cached large mappings. */
        vt_global_set_release_reserves_hook(vt_large_release_cache);
        /* A free that hands units to the global cache is the purge schedule's cue. */
        vt_tcache_set_gave_back_hook(vt_purge_tick);
        vt_purge_set_thread_hook(vt_dumps_serve_if_pending);
        vt_dumps_catch_signals();
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

/* ---- Thread start and exit -------------------------------------------------------------- */

static void on_thread_exit(void *cache)
{
    vt_tcache_thread_exit(cache);
    vt_purge_tick(); /* its memory went to the global cache: the schedule's turn */
    vt_purge_last_exit();
}

/* A thread's first allocation (alloc.c): initialises the process if need be, then starts the
 * thread's cache and arms the destructor that hands it back when the thread exits (without a
 * key, the cache stays with the thread until the process ends). NULL when the thread cannot
 * have a cache: no memory for one, or the caller is a vfork or CLONE_VM child, which runs on
 * its parent thread's thread-local storage: a cache it started would be that thread's after
 * the child is gone, under the child's thread id, which the reaper would then find gone while
 * the parent thread uses the cache. */
vt_tcache_t *vt_init_thread(void)
{
    vt_init();
    if (vt_os_process_id() != vt_process_id)
        return NULL;
    vt_tcache_t *mine = vt_tcache_start(); /* TLS first: pthread_setspecific may allocate */
    if (mine == NULL)
        return NULL;
    if (exit_key_ok)
        pthread_setspecific(exit_key, mine);
    vt_purge_thread_maybe_start();
    vt_purge_tick(); /* a new thread is activity: a due pass runs now */
    return mine;
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
    vt_dumps_at_exit();
    if (vt_options.stats)
        vt_stats_print();
}
