/*
 * reclaim.c - other threads' caches: what a quiet thread holds back, the caches of threads
 * that are gone without handing them back, and what malloc_trim takes from every thread.
 *
 * Layer: 9 other threads' caches
 * Calls: os.c, options.c, thread.c, cachepool.c, stash.c, remote.c, tcache.c, keptlong.c
 *
 * Owns nothing: it walks the live caches a batch at a time (cachepool.c) and takes from each
 * only what another thread may take safely: its stash and its gathered remote frees (atomic
 * lists), or everything when its thread is gone. A live thread's pages stay its own.
 */
#include "internal.h"

/* Calls visit() for live caches other than the caller's, VT_CACHES_PER_PASS at a time, going
 * on where the last call stopped (vt_cachepool_snapshot): one batch, or (all) every cache that
 * was live when it started. Caches are never unmapped, so one handed back meanwhile is still
 * memory that visit() may read; visit() must not assume it is still live. */
static void visit_caches(bool all, void (*visit)(vt_tcache_t *tc, int32_t tid))
{
    vt_tcache_t *caches[VT_CACHES_PER_PASS];
    int32_t tids[VT_CACHES_PER_PASS];
    vt_tcache_t *self = vt_thread.tcache;
    size_t live = 0, seen = 0, limit = 0;
    do {
        size_t n = vt_cachepool_snapshot(caches, tids, VT_CACHES_PER_PASS, &live);
        if (seen == 0)
            limit = live;
        for (size_t i = 0; i < n; i++)
            if (caches[i] != self)
                visit(caches[i], tids[i]);
        if (n == 0)
            break;
        seen += n;
    } while (all && seen < limit);
}

/* Takes what another thread's cache holds back for itself: its stash (to the global cache)
 * and its gathered remote frees (to their pages). Its pages stay: only their owner may touch
 * them. */
static void take_surplus(vt_tcache_t *tc, int32_t tid)
{
    (void)tid;
    vt_stash_take_from(tc);
    vt_remote_take_chains(tc);
}

/* ---- Idle caches ------------------------------------------------------------------------ */

/* A thread that stops calling the allocator cannot give anything back itself. Every purge pass
 * (purge.c, about four per VTMALLOC_PURGE_MS while any thread is active) looks at the next
 * VT_CACHES_PER_PASS live caches, and takes the surplus of a cache that has not used its stash
 * for VTMALLOC_PURGE_MS: its empty units go to the global cache, to be reused by others or
 * purged, and the remote frees it gathered go to their pages. The owner's next use of its
 * stash finds it empty and refills it. What a quiet thread keeps is then its pages with blocks
 * in use, and at most the current page of each class it used; its empty long pages kept no
 * longer count in the process's budget of them (keptlong.c), so that the threads still working
 * may keep theirs. */
static void reclaim_if_idle(vt_tcache_t *tc, int32_t tid)
{
    /* Chains cost their owner nothing to lose but one CAS each: taken at every visit, so a
     * thread pins the blocks it freed for one pass at most. */
    vt_remote_take_chains(tc);
    /* Relaxed: these are heuristics; a cache that is busy after all only has its stash taken
     * early, which costs it one refill. */
    uint32_t now = vt_os_now_ms();
    uint32_t epoch = atomic_load_explicit(&tc->stash_epoch, memory_order_relaxed);
    if (epoch != atomic_load_explicit(&tc->idle_epoch, memory_order_relaxed)) {
        atomic_store_explicit(&tc->idle_epoch, epoch, memory_order_relaxed);
        atomic_store_explicit(&tc->idle_since_ms, now, memory_order_relaxed);
        return;
    }
    /* Signed: a thread that started after `now` was read set a later time (retain.c says why
     * an unsigned difference is wrong here). */
    uint32_t since = atomic_load_explicit(&tc->idle_since_ms, memory_order_relaxed);
    if ((int32_t)(now - since) >= (int32_t)vt_options.purge_ms) {
        take_surplus(tc, tid);
        vt_kept_long_uncount(tc);
    }
}

void vt_reclaim_idle(void)
{
    visit_caches(false, reclaim_if_idle);
    /* Not on the live list; its stash and chains are as atomic as any other cache's. */
    reclaim_if_idle(vt_tcache_orphan(), 0);
}

/* ---- Caches of threads that are gone ---------------------------------------------------- */

/* Hands back the caches of threads that are gone without their exit destructor having run:
 * a thread whose first allocation came in the last round of thread-specific destructors
 * (glibc runs four) arms vtmalloc's destructor too late. Such a cache stays on the live list;
 * here, another thread finds that the kernel no longer knows its thread (a system call per
 * live cache, so this runs from housekeeping, a batch at a time, and malloc_trim, all of
 * them), claims it, and abandons it as the thread would have. A thread that is gone touches
 * nothing any more, so its owner-only fields are safe to use. Only our own process may judge:
 * a vfork or CLONE_VM child shares our memory, but our threads are not its threads. */
static void reap_if_gone(vt_tcache_t *tc, int32_t tid)
{
    if (!vt_os_thread_gone(vt_process_id, tid) || !vt_cachepool_claim(tc, tid))
        return;
    vt_tcache_abandon(tc);
    vt_cachepool_put(tc);
}

void vt_reclaim_reap(bool all)
{
    if (vt_os_process_id() != vt_process_id)
        return;
    visit_caches(all, reap_if_gone);
}

/* ---- malloc_trim ------------------------------------------------------------------------ */

/* What every other thread holds back for itself (its stash and gathered remote frees, not its
 * pages) first, since their remote frees may empty pages of ours; then the caller's own cache
 * and the orphan cache. */
void vt_reclaim_trim(void)
{
    visit_caches(true, take_surplus);
    vt_tcache_trim_own();
}
