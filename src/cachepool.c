/*
 * cachepool.c - the records of thread caches: the live ones, the pool of handed-back ones
 * waiting for the next thread, and the memory they are carved from.
 *
 * Layer: 6 global cache
 * Calls: os.c, page.c
 *
 * Owns: the live list and the pool (under the pool lock, one of its own: threads starting and
 * exiting do not queue behind the spans' lock), each cache's pool links, `state` while no
 * thread uses it and `tid`; the counters of exited threads; vt_process_id.
 *
 * Caches are never unmapped: a page may still name a pooled cache as its detached owner, and
 * that name must never be reused by anything but another cache.
 */
#include "internal.h"

int32_t vt_process_id;

/* Metadata memory is mapped in chunks of this size, each holding a few dozen caches. */
#define META_CHUNK ((size_t)64 << 10)

/* Caches are carved at multiples of a cache line, so that two threads' caches never share
 * one (and the owner word's low bits are free, types.h). */
#define CACHE_LINE 64

static struct cachepool {
    vt_lock_t lock;
    vt_list_t live;                /* caches in use, oldest visit first */
    vt_list_t pool;                /* caches waiting for a thread */
    uint8_t *meta_next, *meta_end; /* where the next cache is carved */
    uint64_t live_count, total;
    vt_tcache_counters_t exited;  /* counters of caches handed back */
    _Atomic uint64_t started_now; /* total, for reading without the lock */
    _Atomic uint64_t live_now;    /* live_count, likewise */
} c = {.lock = VT_LOCK_INIT};

/* Takes a live cache off the live list. Lock held. */
static void leave_live_locked(vt_tcache_t *tc)
{
    vt_list_remove(&c.live, tc, VT_CACHE_LINK);
    c.live_count--;
    atomic_store_explicit(&c.live_now, c.live_count, memory_order_relaxed);
}

/* A cache for a starting thread: a pooled one (its pages were handed back when its thread
 * exited), else a new one carved from metadata memory. NULL when no memory is left. */
vt_tcache_t *vt_cachepool_get(void)
{
    int32_t tid = vt_os_thread_id();
    vt_mutex_lock(&c.lock);
    for (;;) {
        vt_tcache_t *tc = c.pool.head;
        if (tc != NULL) {
            vt_list_remove(&c.pool, tc, VT_CACHE_LINK);
        } else if (c.meta_end - c.meta_next >= (ptrdiff_t)sizeof(vt_tcache_t)) {
            tc = (vt_tcache_t *)c.meta_next;
            c.meta_next += (sizeof(vt_tcache_t) + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
            for (unsigned k = 0; k <= VT_CLASS_COUNT; k++)
                tc->alloc_page[k] = &vt_page_none;
        }
        if (tc != NULL) {
            tc->state = VT_TCACHE_LIVE;
            atomic_store_explicit(&tc->in_use, 1, memory_order_relaxed);
            tc->tid = tid;
            vt_list_push_back(&c.live, tc, VT_CACHE_LINK);
            c.live_count++;
            atomic_store_explicit(&c.live_now, c.live_count, memory_order_relaxed);
            c.total++;
            atomic_store_explicit(&c.started_now, c.total, memory_order_relaxed);
            vt_mutex_unlock(&c.lock);
            return tc;
        }
        vt_mutex_unlock(&c.lock);
        uint8_t *chunk = vt_os_map(META_CHUNK, CACHE_LINE);
        if (chunk == NULL)
            return NULL;
        vt_mutex_lock(&c.lock);
        /* Another thread may have added a chunk meanwhile; the old remainder is small. */
        c.meta_next = chunk;
        c.meta_end = chunk + META_CHUNK;
    }
}

/* Adds a cache's counters to `into` and zeroes them. The cache's thread is gone. */
static void counters_move(vt_tcache_counters_t *into, vt_tcache_counters_t *from)
{
    _Atomic uint64_t *dst = (_Atomic uint64_t *)into, *src = (_Atomic uint64_t *)from;
    for (size_t i = 0; i < sizeof(*from) / sizeof(uint64_t); i++) {
        uint64_t v = atomic_load_explicit(&src[i], memory_order_relaxed);
        atomic_fetch_add_explicit(&dst[i], v, memory_order_relaxed);
        atomic_store_explicit(&src[i], 0, memory_order_relaxed);
    }
}

/* A thread has handed its cache back, its memory already in the global cache (reclaim.c):
 * the retention policy decides, by demand, when that goes back to the OS, so a server's next
 * wave of connection threads reuses it without a page fault. */
void vt_cachepool_put(vt_tcache_t *tc)
{
    vt_mutex_lock(&c.lock);
    if (tc->state == VT_TCACHE_LIVE) /* not when vt_cachepool_claim took it already */
        leave_live_locked(tc);
    tc->state = VT_TCACHE_POOLED;
    atomic_store_explicit(&tc->in_use, 0, memory_order_relaxed);
    counters_move(&c.exited, &tc->counters);
    vt_list_push_back(&c.pool, tc, VT_CACHE_LINK);
    vt_mutex_unlock(&c.lock);
}

/* Up to `max` live caches with their threads' ids, for the passes that look at other threads'
 * caches (reclaim.c: reaping, idle reclaim, trim). The caches returned move to the end of the
 * live list, and new caches join at the end, so successive calls go round every live cache,
 * however many there are, at a bounded cost per call. *live is set to the number of live
 * caches, so that a caller can go round them all once. */
size_t vt_cachepool_snapshot(vt_tcache_t **caches, int32_t *tids, size_t max, size_t *live)
{
    size_t n = 0;
    vt_mutex_lock(&c.lock);
    *live = c.live_count;
    if (max > c.live_count)
        max = c.live_count;
    while (n < max) {
        vt_tcache_t *tc = c.live.head;
        caches[n] = tc;
        tids[n++] = tc->tid;
        vt_list_remove(&c.live, tc, VT_CACHE_LINK);
        vt_list_push_back(&c.live, tc, VT_CACHE_LINK);
    }
    vt_mutex_unlock(&c.lock);
    return n;
}

/* Takes a live cache off the live list if it still belongs to thread `tid`: its thread is
 * gone (reclaim.c), so nobody else will hand it back. True when the caller now owns it and
 * must abandon it and put it in the pool. */
bool vt_cachepool_claim(vt_tcache_t *tc, int32_t tid)
{
    bool claimed = false;
    vt_mutex_lock(&c.lock);
    if (tc->state == VT_TCACHE_LIVE && tc->tid == tid) {
        leave_live_locked(tc);
        tc->state = VT_TCACHE_EXITED;
        atomic_store_explicit(&tc->in_use, 0, memory_order_relaxed);
        claimed = true;
    }
    vt_mutex_unlock(&c.lock);
    return claimed;
}

/* Thread caches started since the start (or the fork), and live now. Relaxed: heuristics for
 * the purge thread (purge.c), read without the lock. */
uint64_t vt_cachepool_started(void)
{
    return atomic_load_explicit(&c.started_now, memory_order_relaxed);
}

uint64_t vt_cachepool_live(void)
{
    return atomic_load_explicit(&c.live_now, memory_order_relaxed);
}

static void counters_add(vt_stats_t *st, uint64_t puts[], const vt_tcache_counters_t *from)
{
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++)
        puts[k] += atomic_load_explicit(&from->remote_puts[k], memory_order_relaxed);
    st->remote_frees_total += atomic_load_explicit(&from->remote_frees, memory_order_relaxed);
    st->pages_adopted_total += atomic_load_explicit(&from->pages_adopted, memory_order_relaxed);
    /* Large blocks in spans: each thread's figures wrap, their sum does not. */
    st->large_blocks += atomic_load_explicit(&from->large_blocks, memory_order_relaxed);
    st->large_bytes += atomic_load_explicit(&from->large_bytes, memory_order_relaxed);
    st->large_allocs_total += atomic_load_explicit(&from->large_allocs, memory_order_relaxed);
    st->bytes_requested_live += atomic_load_explicit(&from->large_requested, memory_order_relaxed);
}

/* The caches' part of the statistics: counts, the counters of live and exited threads, of the
 * orphan cache and of `shared` (large blocks counted by threads without a cache), and the units
 * in live caches' stashes. */
void vt_cachepool_stats(vt_stats_t *st, uint64_t puts[VT_CLASS_COUNT],
                        const vt_tcache_counters_t *orphan, const vt_tcache_counters_t *shared)
{
    vt_mutex_lock(&c.lock);
    st->thread_caches_live = c.live_count;
    st->thread_caches_total = c.total;
    counters_add(st, puts, &c.exited);
    counters_add(st, puts, orphan);
    counters_add(st, puts, shared);
    for (vt_tcache_t *tc = c.live.head; tc != NULL; tc = tc->pool_link.next) {
        counters_add(st, puts, &tc->counters);
        st->bytes_free_threads +=
            (uint64_t)atomic_load_explicit(&tc->stash_count, memory_order_relaxed) * VT_UNIT_SIZE;
    }
    vt_mutex_unlock(&c.lock);
}

void vt_cachepool_fork_prepare(void)
{
    vt_lock_take(&c.lock);
}

void vt_cachepool_fork_parent(void)
{
    vt_lock_give(&c.lock);
}

/* In the child only the forking thread runs (its cache is `self`). The other threads' caches
 * may be half-way through an update: they leave the live list for good, so that nothing (the
 * reaper included) ever walks or hands them back. Their pages keep them as owners; frees into
 * them in the child are remote frees. */
void vt_cachepool_fork_child(vt_tcache_t *self)
{
    vt_tcache_t *tc = c.live.head;
    while (tc != NULL) {
        vt_tcache_t *next = tc->pool_link.next;
        if (tc != self) {
            leave_live_locked(tc);
            tc->state = VT_TCACHE_EXITED;
            atomic_store_explicit(&tc->in_use, 0, memory_order_relaxed);
        }
        tc = next;
    }
    if (self->state == VT_TCACHE_LIVE)
        self->tid = vt_os_thread_id();
    vt_lock_give(&c.lock); /* held by this thread's parent copy: see span.c */
}
