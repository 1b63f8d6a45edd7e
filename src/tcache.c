/*
 * tcache.c - the per-thread cache: refilling a class, frees that are not the fast path, empty
 * pages, and handing everything back when the thread exits.
 *
 * Layer: 8 thread cache
 * Calls: os.c, report.c, options.c, sizeclass.c, page.c, thread.c, span.c, global.c,
 *        cachepool.c, stash.c, remote.c, prof.c, sample.c, keptlong.c
 *
 * Owns: every vt_tcache_t while a thread uses it; the static cache of threads that have exited;
 * the orphan cache and its mutex. The thread's pointer to its cache is in thread.c.
 *
 * A thread's cache is reached through vt_thread.tcache. It starts as thread.c's unstarted cache
 * (every bin is the static empty page), so the first malloc of a thread lands in the slow path,
 * where the API layer starts a real cache (init.c, vt_tcache_start). After the thread's exit
 * destructor it is &exited: a thread that still allocates then (a destructor of the program
 * running after ours) is served by the orphan cache under orphan_lock, and its frees take the
 * remote path, so nothing is leaked. What a thread keeps (lock traffic against memory) is set
 * by VTMALLOC_CLASS_PAGES, VTMALLOC_STASH_UNITS and VTMALLOC_BATCH_UNITS (options.c).
 */
#include "internal.h"

#include "bin.h"
#include "keptlong.h"

static vt_tcache_t exited = {.alloc_page = {[0 ... VT_CLASS_COUNT] = &vt_page_none},
                             .state = VT_TCACHE_EXITED};

/* The cache of threads that have none (after their exit destructor, or when a cache could not
 * be started for lack of memory). Used only with orphan_lock held; every free into its pages
 * is a remote free, because no thread's TLS points to it. */
static vt_tcache_t orphan = {
    .alloc_page = {[0 ... VT_CLASS_COUNT] = &vt_page_none}, .state = VT_TCACHE_LIVE, .in_use = 1};
static vt_lock_t orphan_lock = VT_LOCK_INIT;

/* Hook (registered by init.c): a free handed units to the global cache, the cue of the purge
 * schedule (purge.c, a layer above). Only on that rare path: the fast path pays nothing. */
static void (*gave_back_hook)(void);

void vt_tcache_set_gave_back_hook(void (*hook)(void))
{
    gave_back_hook = hook;
}

static void gave_back(void)
{
    if (gave_back_hook != NULL)
        gave_back_hook();
}

#define BATCH_MAX          64 /* units taken from the global cache per lock, at most (stack) */
#define HOUSEKEEPING_CALLS 64 /* allocation slow paths per housekeeping check (a clock read) */

/* ---- Empty units ------------------------------------------------------------------------ */

/* Gives an empty page back to the stash, where the next page of any class of its length takes
 * it without a lock; the stash's surplus goes to the global cache. True when it did. */
static bool release_empty_page(vt_tcache_t *tc, vt_page_t *page)
{
    vt_page_unassign(page);
    vt_stash_push(tc, page);
    if (vt_stash_count(tc) <= vt_options.stash_units)
        return false;
    vt_stash_shrink(tc, vt_options.stash_units / 2);
    return true;
}

/* A fresh run for a class: from the stash, else from the global cache (which maps a new span
 * when it has none): one-unit runs in a batch (batch_ramp), longer ones one at a time. */
static vt_page_t *take_empty_page(vt_tcache_t *tc, unsigned units, unsigned class_idx)
{
    vt_page_t *page = vt_stash_pop(tc, units);
    if (page == NULL && units > 1)
        return vt_global_take_run(units, 1, class_idx);
    if (page == NULL) {
        vt_page_t *batch[BATCH_MAX];
        uint32_t want = vt_options.batch_units < BATCH_MAX ? vt_options.batch_units : BATCH_MAX;
        if (tc->batch_ramp < want) { /* 1, 2, 4 ... units */
            uint32_t next = tc->batch_ramp > 0 ? tc->batch_ramp * 2 : 1;
            want = tc->batch_ramp = next < want ? next : want;
        }
        uint32_t got = vt_global_take_units(batch, want ? want : 1, class_idx);
        if (got == 0)
            return NULL;
        vt_stash_push_batch(tc, batch + 1, got - 1);
        page = batch[0];
    }
    tc->stash_taken++;
    return page;
}

/* The part of vt_tcache_page_emptied that gives the page back: out of line, so that the
 * common early return of a thread freeing its only block in a loop costs no stack frame. */
static VT_NOINLINE void page_emptied_release(vt_tcache_t *tc, vt_page_t *page)
{
    unsigned class_idx = page->class_idx;
    vt_kept_long_unmark(tc, class_idx);
    vt_bin_remove(tc, class_idx, page);
    if (release_empty_page(tc, page))
        gave_back();
}

/* Empty current long pages go to the stash: a thread that used such a class for a moment must
 * not keep them (housekeeping runs on slow paths, which a loop on one class does not take). */
static void release_idle_long_pages(vt_tcache_t *tc)
{
    for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = vt_bin_first(tc, c);
        if (page != NULL && page->used == 0) /* no remote free either: they count as used */
            page_emptied_release(tc, page);
    }
}

/* The thread's own part of housekeeping (purge.c calls it from the slow paths): every
 * HOUSEKEEPING_CALLS calls, once per VTMALLOC_PURGE_MS (sooner if it was shortened since), an
 * unused stash and idle long pages go back. True when it ran: the schedule's turn too. */
bool vt_tcache_housekeeping(vt_tcache_t *tc)
{
    if (++tc->slow_calls % HOUSEKEEPING_CALLS != 0)
        return false;
    uint32_t now = vt_os_now_ms(), ahead = tc->next_housekeeping_ms - now;
    if ((int32_t)ahead > 0 && ahead <= vt_options.purge_ms)
        return false;
    tc->next_housekeeping_ms = now + vt_options.purge_ms;
    if (vt_stash_count(tc) > 0 && tc->stash_taken == tc->stash_taken_seen)
        vt_stash_give_back(tc);
    tc->stash_taken_seen = tc->stash_taken;
    release_idle_long_pages(tc);
    vt_kept_long_forget(tc);
    return true;
}

/* ---- Allocation slow path --------------------------------------------------------------- */

/* Finds the class a page with free blocks: the attached pages first (local frees, remote frees,
 * uncarved space), detaching those that are exhausted; then a page from the global cache;
 * then a fresh run. Returns NULL only when memory is exhausted. */
static vt_page_t *bin_refill(vt_tcache_t *tc, unsigned class_idx)
{
    for (;;) {
        vt_page_t *page;
        while ((page = vt_bin_first(tc, class_idx)) != NULL) {
            if (page->free != NULL || vt_page_refill(page))
                return page;
            vt_bin_remove(tc, class_idx, page);
            if (!vt_page_try_detach(page, tc)) /* remote frees arrived: the next turn collects */
                vt_bin_push_front(tc, class_idx, page);
        }
        page = vt_global_take_partial(class_idx);
        if (page == NULL)
            break;
        /* Adopt it: the global lock published its fields, and from this store on, frees by
         * this thread take the local path. The loop above refills it or detaches it. */
        atomic_store_explicit(&page->owner, (uintptr_t)tc, memory_order_relaxed);
        vt_count(&tc->counters.pages_adopted);
        vt_bin_push_front(tc, class_idx, page);
    }
    vt_page_t *page = take_empty_page(tc, vt_classes[class_idx].units, class_idx);
    if (page == NULL)
        return NULL;
    vt_page_assign(page, class_idx, (uintptr_t)tc);
    vt_page_refill(page);
    vt_bin_push_front(tc, class_idx, page);
    return page;
}

static void *alloc_from(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    vt_remote_flush(tc);
    vt_page_t *page = bin_refill(tc, class_idx);
    if (page == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (vt_page_count_down(page, size)) /* the page has free blocks */
        return vt_tcache_alloc_sampled(size, tc, page, class_idx);
    vt_block_t *block = vt_page_pop(page);
    return block != NULL ? block : vt_tcache_alloc_corrupt(tc, page, class_idx, size);
}

/* The page's countdown ran out: this allocation is sampled (heap profiling). The countdown
 * restarts; the block comes from the profiler's pages (prof.c; none of the orphan's own, as
 * threads share it), the stack walked from this frame. Failing that, the page serves it. */
void *vt_tcache_alloc_sampled(size_t size, vt_tcache_t *tc, vt_page_t *page, unsigned class_idx)
{
    vt_page_sample_restart(page);
    void *p = vt_prof_alloc_small(class_idx, size, __builtin_frame_address(0), &tc->prof_memo,
                                  tc != &orphan ? &tc->prof_own : NULL);
    if (p != NULL)
        return p;
    vt_block_t *block = vt_page_pop(page);
    return block != NULL ? block : vt_tcache_alloc_corrupt(tc, page, class_idx, size);
}

/* A cache for the calling thread, from the pool (cachepool.c), its idle clock started, and
 * made the thread's: NULL when there is no memory for one. init.c calls it for a thread's
 * first allocation, after the process is initialised. */
vt_tcache_t *vt_tcache_start(void)
{
    vt_tcache_t *mine = vt_cachepool_get();
    if (mine == NULL)
        return NULL;
    atomic_store_explicit(&mine->idle_epoch,
                          atomic_load_explicit(&mine->stash_epoch, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&mine->idle_since_ms, vt_os_now_ms(), memory_order_relaxed);
    mine->batch_ramp = 0;
    vt_thread.tcache = mine;
    return mine;
}

/* malloc found a damaged link on the class's current page (the fast path): reported; in warn
 * mode the rest of the list is dropped (leaked) and the call goes on as if it had been empty. */
void *vt_tcache_alloc_corrupt(vt_tcache_t *tc, vt_page_t *page, unsigned class_idx, size_t size)
{
    vt_report_corrupt_list(page->free);
    page->free = NULL;
    return vt_tcache_alloc_slow(tc, class_idx, size);
}

/* The class's current page is empty: refill it. A cache that is not live (the thread has none,
 * or had one and exited) is served by the orphan cache. A success keeps errno as it was, even
 * when a step failed and another served the call. */
void *vt_tcache_alloc_slow(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    VT_ASSERT(class_idx < VT_CLASS_COUNT);
    int saved = errno;
    void *p;
    if (vt_likely(tc->state == VT_TCACHE_LIVE)) {
        p = alloc_from(tc, class_idx, size);
    } else {
        vt_mutex_lock(&orphan_lock);
        p = alloc_from(&orphan, class_idx, size);
        vt_mutex_unlock(&orphan_lock);
    }
    if (p != NULL)
        errno = saved;
    return p;
}

/* ---- Free slow paths -------------------------------------------------------------------- */

/* A run of `units` free units from the thread's own stash, for a large block; NULL if none. */
vt_page_t *vt_tcache_take_run(vt_tcache_t *tc, unsigned units)
{
    bool has = tc->state == VT_TCACHE_LIVE && vt_stash_count(tc) >= units;
    vt_page_t *page = has ? vt_stash_pop(tc, units) : NULL;
    tc->stash_taken += page != NULL;
    return page;
}

/* A large block's run this thread freed goes first in its stash, for its next block of that
 * length without a lock; over VTMALLOC_STASH_UNITS the older pages go back, not this run, and
 * a longer run alone stays (a loop over one took the global lock twice a turn). `units` is
 * read before the push: once stashed, a reclaimer may take the run and hand it on. */
void vt_tcache_keep_run(vt_tcache_t *tc, vt_page_t *page)
{
    uint32_t units = page->units;
    if (tc->state != VT_TCACHE_LIVE || vt_options.stash_units == 0) {
        vt_span_put_run(page);
        gave_back();
        return;
    }
    vt_stash_push(tc, page);
    if (vt_stash_count(tc) <= vt_options.stash_units || vt_stash_count(tc) == units)
        return;
    uint32_t keep = vt_options.stash_units / 2;
    vt_stash_shrink(tc, keep > units ? keep : units);
    gave_back();
}

/* The rest of vt_tcache_page_emptied: the budget of the empty long pages kept. */
static VT_NOINLINE void long_page_emptied(vt_tcache_t *tc, vt_page_t *page)
{
    unsigned class_idx = page->class_idx;
    vt_page_t *current = tc->alloc_page[class_idx];
    if (current != page && current->free == NULL) { /* full: this one replaces it */
        vt_bin_remove(tc, class_idx, page);
        vt_bin_push_front(tc, class_idx, page);
        current = page;
    }
    if (current == page && page->units <= VT_SHORT_PAGE_UNITS)
        return; /* kept, as on the fast path; the budget below is the long pages' */
    if (current == page) {
        if (vt_kept_long_fits(tc, class_idx))
            return;
    }
    page_emptied_release(tc, page);
}

/* Called by the free fast path when a page it owns has no block in use any more. Its class's
 * current page stays, as a loop freeing a 40 KiB buffer needs; a long page (classes above 32
 * KiB) only while the empty ones kept fit VTMALLOC_KEPT_LONG_KB (keptlong.c; soak quick's
 * peak: keeping all, 124 MiB; none, 98; up to 512 KiB, 102-106), or at once if kept_long marks
 * it (types.h); the others go to the stash, the kept ones too at the next housekeeping. An
 * emptied page replaces a full current one (round-robin's). */
void vt_tcache_page_emptied(vt_tcache_t *tc, vt_page_t *page)
{
    unsigned c = page->class_idx; /* the common cases at once; the rest out of line */
    if (vt_likely(tc->alloc_page[c] == page &&
                  (page->units <= VT_SHORT_PAGE_UNITS || tc->kept_long[c])))
        return;
    long_page_emptied(tc, page);
}

/* A free into a page the caller does not own as attached: checks the block, then takes the
 * page (its own detached one, or adopting the global cache's) or hands the block to its owner. */
void vt_tcache_free_other(vt_tcache_t *tc, vt_page_t *page, void *p)
{
    if (!vt_page_check_block(page, p, "free"))
        return;
    vt_block_t *block = p;
    uintptr_t self = (uintptr_t)tc;
    unsigned class_idx = page->class_idx;
    bool mine = vt_page_owner(page) == (self | VT_OWNER_DETACHED) &&
                tc->bin_pages[class_idx] < vt_options.class_pages && vt_page_try_reattach(page, tc);
    /* Adopt on free (docs/design.md): a global page of a class this thread has pages of, room
     * for one more and no free block listed on the current one. The block keeps it in use. */
    if (!mine && vt_page_owner(page) == VT_OWNER_GLOBAL && tc->state == VT_TCACHE_LIVE &&
        tc != &orphan && tc->bin_pages[class_idx] > 0 && tc->alloc_page[class_idx]->free == NULL &&
        tc->bin_pages[class_idx] < vt_options.class_pages && vt_global_adopt(page)) {
        atomic_store_explicit(&page->owner, self, memory_order_relaxed); /* as bin_refill's */
        vt_count(&tc->counters.pages_adopted);
        mine = true;
    }
    if (mine) {
        vt_page_push(page, block);
        vt_bin_push_back(tc, class_idx, page);
        if (--page->used == 0)
            vt_tcache_page_emptied(tc, page);
        return;
    }
    block->key = vt_block_key(block);
    if (vt_unlikely(tc->state != VT_TCACHE_LIVE)) { /* a shared static cache: no batching */
        vt_global_count_shared_put(class_idx);
        vt_remote_push(page, block, block, 1);
        return;
    }
    vt_count(&tc->counters.remote_puts[class_idx]);
    vt_count(&tc->counters.remote_frees);
    vt_remote_gather(tc, page, block);
}

/* ---- Trim, thread exit ------------------------------------------------------------------ */

/* What a cache holds back goes to the global cache: its gathered remote frees, its empty
 * pages (the current page of a class included) and its stash. Its owner only. */
static void trim_cache(vt_tcache_t *tc)
{
    vt_remote_flush(tc);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        for (vt_page_t *page = vt_bin_first(tc, c), *next; page != NULL; page = next) {
            next = vt_bin_next(page);
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_bin_remove(tc, c, page);
                release_empty_page(tc, page);
            }
        }
    }
    vt_stash_give_back(tc);
}

/* For malloc_trim: the calling thread's cache, and the orphan cache that threads without one
 * share (under its lock, taken before the global lock as everywhere). */
void vt_tcache_trim_own(void)
{
    vt_tcache_t *tc = vt_thread.tcache;
    if (tc->state == VT_TCACHE_LIVE)
        trim_cache(tc);
    vt_mutex_lock(&orphan_lock);
    trim_cache(&orphan);
    vt_mutex_unlock(&orphan_lock);
}

/* Hands every attached page to the global cache (empty ones as free units). Pages the thread
 * detached stay tagged with this cache: they are full, and the first free into one revokes it
 * to the global cache (see page.c). The cache's thread is gone, or is the caller. */
void vt_tcache_abandon(vt_tcache_t *tc)
{
    vt_remote_flush(tc);
    vt_prof_own_leave(tc->prof_own);
    vt_list_t partial = {0}, empty = {0};
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page;
        while ((page = vt_bin_first(tc, c)) != NULL) {
            vt_bin_remove(tc, c, page);
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_page_unassign(page);
                vt_list_push_back(&empty, page, VT_PAGE_LINK);
            } else {
                vt_page_publish(page);
                /* From here on every free into it is remote; the global lock taken by
                 * vt_global_put_pages publishes the page's fields to the thread that adopts
                 * it. */
                atomic_store_explicit(&page->owner, VT_OWNER_GLOBAL, memory_order_relaxed);
                vt_list_push_back(&partial, page, VT_PAGE_LINK);
            }
        }
    }
    vt_kept_long_forget(tc);
    vt_stash_empty_into(tc, &empty);
    vt_global_put_pages(&partial, &empty, false);
}

/* The thread's exit destructor (init.c): its cache goes back, and the thread is served by the
 * orphan cache should it allocate again. */
void vt_tcache_thread_exit(vt_tcache_t *tc)
{
    if (tc == NULL || tc->state != VT_TCACHE_LIVE || tc == &orphan)
        return;
    vt_thread.tcache = &exited;
    vt_tcache_abandon(tc);
    vt_cachepool_put(tc);
}

/* The orphan cache, which no thread's TLS names: its stash and chains are reclaimed like an
 * idle thread's (reclaim.c), its counters counted (stats.c). */
vt_tcache_t *vt_tcache_orphan(void)
{
    return &orphan;
}

void vt_tcache_fork_prepare(void)
{
    vt_lock_take(&orphan_lock);
}

void vt_tcache_fork_parent(void)
{
    vt_lock_give(&orphan_lock);
}

void vt_tcache_fork_child(void)
{
    vt_lock_give(&orphan_lock); /* held by this thread's parent copy: see span.c */
    vt_kept_long_fork_child(vt_thread.tcache);
}
