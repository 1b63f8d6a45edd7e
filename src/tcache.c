/*
 * tcache.c - the per-thread cache: refilling a class, frees that are not the fast path, empty
 * pages, and handing everything back when the thread exits.
 *
 * Owns: every vt_tcache_t while a thread uses it; the TLS pointer; the static caches of threads
 * that have none; the orphan cache and its mutex. Calls: page.c, global.c, init.c.
 *
 * A thread's cache is reached through vt_tls_tcache. It starts as &unstarted (every bin is the
 * static empty page), so the first malloc of a thread lands in vt_tcache_alloc_slow, which
 * starts a real cache. After the thread's exit destructor it is &exited: a thread that still
 * allocates then (a destructor of the program running after ours) is served by the orphan
 * cache under orphan_lock, and its frees take the remote path, so nothing is leaked.
 *
 * Limits (review point c, the trade between lock traffic and memory kept per thread):
 *   VTMALLOC_CLASS_PAGES  pages a thread keeps attached per class; a page beyond it that
 *                         gets a free block goes to the global cache instead.
 *   VTMALLOC_STASH_UNITS  units of empty pages (of any length) a thread keeps for the next
 *                         page of that length, whatever its class.
 *   VTMALLOC_BATCH_UNITS  units taken from the global cache per lock.
 */
#include "internal.h"

#define VT_EMPTY_BINS                                                                              \
    {                                                                                              \
        [0 ... VT_CLASS_COUNT] = &vt_page_none                                                     \
    }

static vt_tcache_t unstarted = {.alloc_page = VT_EMPTY_BINS, .state = VT_TCACHE_UNSTARTED};
static vt_tcache_t exited = {.alloc_page = VT_EMPTY_BINS, .state = VT_TCACHE_EXITED};

/* The cache of threads that have none (after their exit destructor, or when a cache could not
 * be started for lack of memory). Used only with orphan_lock held; every free into its pages
 * is a remote free, because no thread's TLS points to it. */
static vt_tcache_t orphan = {.alloc_page = VT_EMPTY_BINS, .state = VT_TCACHE_LIVE};
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;

__thread vt_tcache_t *vt_tls_tcache __attribute__((tls_model("initial-exec"))) = &unstarted;

/* Keeps the fast path's view of a bin in step with the bin. */
static inline void bin_sync(vt_tcache_t *tc, unsigned class_idx)
{
    vt_page_t *head = tc->bins[class_idx].head;
    tc->alloc_page[class_idx] = head ? head : &vt_page_none;
}

/* ---- The stash ------------------------------------------------------------------------- */

/* The stash is an atomic list so that another thread can take it whole from a cache whose
 * thread has gone quiet ("Idle caches" below). The owner alone adds pages, so its pop (take
 * the list, put the rest back) needs no compare-and-swap: nothing can arrive in between, and a
 * taker that comes in between finds the list empty and takes nothing. */
static void stash_touch(vt_tcache_t *tc)
{
    uint32_t epoch = atomic_load_explicit(&tc->stash_epoch, memory_order_relaxed);
    atomic_store_explicit(&tc->stash_epoch, epoch + 1, memory_order_relaxed);
}

static void stash_count_set(vt_tcache_t *tc, uint32_t count)
{
    atomic_store_explicit(&tc->stash_count, count, memory_order_relaxed);
}

static uint32_t stash_count(vt_tcache_t *tc)
{
    return atomic_load_explicit(&tc->stash_count, memory_order_relaxed);
}

/* Takes the whole stash: the owner, or a thread reclaiming an idle cache. Acquire pairs with
 * the release of the push and of the pop's put-back, so the pages' fields are visible. */
static vt_page_t *stash_take_all(vt_tcache_t *tc)
{
    return atomic_exchange_explicit(&tc->stash, NULL, memory_order_acquire);
}

/* Owner only. The count is in units: a stashed page may be a run of several. */
static void stash_push(vt_tcache_t *tc, vt_page_t *page)
{
    /* Read before the push: once the page is on the list, another thread may take the list
     * and hand the page to a third, which re-describes it. */
    uint32_t units = page->units;
    vt_page_t *head = atomic_load_explicit(&tc->stash, memory_order_relaxed);
    do {
        page->next = head; /* fails only when a reclaimer took the list: then head is NULL */
    } while (!atomic_compare_exchange_weak_explicit(&tc->stash, &head, page, memory_order_release,
                                                    memory_order_relaxed));
    stash_count_set(tc, stash_count(tc) + units);
    stash_touch(tc);
}

/* Takes a stashed page of `units` units, or NULL. Owner only. Walks the whole list, which is
 * short (VTMALLOC_STASH_UNITS at most, plus a batch), so the count is exact again afterwards
 * even when a reclaimer took the stash meanwhile. */
static vt_page_t *stash_pop(vt_tcache_t *tc, unsigned units)
{
    stash_touch(tc);
    vt_page_t *list = stash_take_all(tc), *found = NULL;
    uint32_t count = 0;
    for (vt_page_t **at = &list; *at != NULL;) {
        vt_page_t *p = *at;
        if (found == NULL && p->units == units) {
            found = p;
            *at = p->next; /* unlink; the rest goes back below */
            continue;
        }
        count += p->units;
        at = &p->next;
    }
    atomic_store_explicit(&tc->stash, list, memory_order_release);
    stash_count_set(tc, count);
    return found;
}

/* Gives a list of stashed pages to the global cache, keeping the first pages of the list in
 * the stash as long as they add up to at most `keep` units. `idle`: the pages lay unused in
 * the stash for a while, so they leave the retention policy's record of demand too. Owner, or any
 * thread for a list it took with stash_take_all (keep 0). */
static void stash_list_give_back(vt_tcache_t *tc, vt_page_t *list, uint32_t keep, bool idle)
{
    vt_page_list_t surplus = {0};
    vt_page_t *kept = NULL, **tail = &kept;
    uint32_t kept_units = 0;
    while (list != NULL) {
        vt_page_t *p = list;
        list = p->next;
        if (kept_units + p->units <= keep) {
            kept_units += p->units;
            *tail = p;
            tail = &p->next;
        } else {
            vt_list_push_back(&surplus, p);
        }
    }
    *tail = NULL;
    if (keep > 0) { /* the owner: nothing can have arrived since it took the list */
        atomic_store_explicit(&tc->stash, kept, memory_order_release);
        stash_count_set(tc, kept_units);
    }
    vt_global_put_pages(NULL, &surplus, idle);
}

/* ---- Empty units ------------------------------------------------------------------------ */

/* Gives an empty page back to the stash, where the next page of any class of its length
 * takes it without a lock; the stash's surplus goes to the global cache. */
static void release_empty_page(vt_tcache_t *tc, vt_page_t *page)
{
    vt_page_unassign(page);
    stash_push(tc, page);
    if (stash_count(tc) <= vt_options.stash_units)
        return;
    /* Over the limit: give back half (the oldest), so a thread alternating around the limit
     * does not take the lock on every page. */
    stash_list_give_back(tc, stash_take_all(tc), vt_options.stash_units / 2, false);
}

/* A fresh run for a class: from the stash, else from the global cache (which maps a new span
 * when it has none): one-unit runs in a batch, longer ones one at a time. */
static vt_page_t *take_empty_page(vt_tcache_t *tc, unsigned units, unsigned class_idx)
{
    vt_page_t *page = stash_pop(tc, units);
    if (page == NULL && units > 1)
        return vt_global_take_run(units, 1, class_idx);
    if (page == NULL) {
        vt_page_t *batch[64];
        uint32_t want = vt_options.batch_units;
        if (want > 64)
            want = 64;
        uint32_t got = vt_global_take_units(batch, want ? want : 1, class_idx);
        if (got == 0)
            return NULL;
        for (uint32_t i = 1; i < got; i++)
            stash_push(tc, batch[i]);
        page = batch[0];
    }
    tc->stash_taken++;
    return page;
}

/* Gives the whole stash back to the global cache. Owner only. */
static void stash_give_back(vt_tcache_t *tc)
{
    stash_count_set(tc, 0);
    stash_touch(tc);
    stash_list_give_back(tc, stash_take_all(tc), 0, true);
}

/* Every 64 allocation slow paths, and at most once per VTMALLOC_PURGE_MS: a stash nobody took
 * from since the last time goes back to the global cache (where it can be purged), and the
 * global purge schedule gets a chance to run. */
static VT_NOINLINE void page_emptied_release(vt_tcache_t *tc, vt_page_t *page);

/* The empty current pages of the classes whose pages are longer than a unit (up to 512 KiB
 * each) go to the stash: a thread that used such a class for a moment must not keep them.
 * Housekeeping runs on slow paths, which a thread looping on one such class does not take. */
static void release_idle_long_pages(vt_tcache_t *tc)
{
    for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = tc->bins[c].head;
        if (page != NULL && page->used == 0) /* no remote free either: they count as used */
            page_emptied_release(tc, page);
    }
}

static void housekeeping(vt_tcache_t *tc)
{
    if (++tc->slow_calls % 64 != 0)
        return;
    uint32_t now = vt_os_now_ms();
    if ((int32_t)(now - tc->next_housekeeping_ms) < 0)
        return;
    tc->next_housekeeping_ms = now + vt_options.purge_ms;
    if (stash_count(tc) > 0 && tc->stash_taken == tc->stash_taken_seen)
        stash_give_back(tc);
    tc->stash_taken_seen = tc->stash_taken;
    release_idle_long_pages(tc);
    vt_tcache_reap(false);
    vt_global_maybe_purge();
}

/* ---- Other threads' caches ------------------------------------------------------------- */

static void push_remote(vt_page_t *page, vt_block_t *first, vt_block_t *last, uint32_t n);

/* Takes every chain of remote frees that another thread gathered (see gather_remote) and
 * pushes it to its page. Safe while the owner runs: the exchange takes a chain whole or finds
 * the slot empty, and the owner's compare-and-swap fails on a slot taken from under it. The
 * chain's page and last block are found from the blocks themselves (the owner's notes of them
 * are its own); acquire pairs with the owner's release, so the links are visible. */
static void take_chains(vt_tcache_t *tc)
{
    for (unsigned i = 0; i < VT_REMOTE_SLOTS; i++) {
        vt_remote_chain_t *chain = &tc->pending[i];
        if (atomic_load_explicit(&chain->head, memory_order_relaxed) == 0)
            continue;
        uintptr_t word = atomic_exchange_explicit(&chain->head, 0, memory_order_acquire);
        if (word == 0)
            continue;
        vt_block_t *first = (vt_block_t *)(word & VT_REMOTE_PTR_MASK), *last = first;
        uint32_t count = (uint32_t)(word >> VT_REMOTE_COUNT_SHIFT);
        for (uint32_t k = 1; k < count; k++)
            last = vt_block_next(last);
        push_remote(vt_span_page(vt_span_base(first), first), first, last, count);
    }
}

/* Takes what another thread's cache holds back for itself: its stash (to the global cache)
 * and its gathered remote frees (to their pages). Its pages stay: only their owner may touch
 * them. */
static void take_surplus(vt_tcache_t *tc)
{
    if (atomic_load_explicit(&tc->stash, memory_order_relaxed) != NULL) {
        vt_page_t *list = stash_take_all(tc);
        stash_count_set(tc, 0);
        stash_list_give_back(tc, list, 0, true);
    }
    take_chains(tc);
}

/* Calls visit() for live caches other than the caller's, VT_CACHES_PER_PASS at a time, going
 * on where the last call stopped (vt_global_tcache_snapshot): one batch, or (all) every cache
 * that was live when it started. Caches are never unmapped, so one handed back meanwhile is
 * still memory that visit() may read; visit() must not assume it is still live. */
static void visit_caches(bool all, void (*visit)(vt_tcache_t *tc, int32_t tid))
{
    vt_tcache_t *caches[VT_CACHES_PER_PASS];
    int32_t tids[VT_CACHES_PER_PASS];
    vt_tcache_t *self = vt_tls_tcache;
    size_t live = 0, seen = 0, limit = 0;
    do {
        size_t n = vt_global_tcache_snapshot(caches, tids, VT_CACHES_PER_PASS, &live);
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

/* ---- Idle caches ------------------------------------------------------------------------ */

/* A thread that stops calling the allocator cannot give anything back itself. Every purge pass
 * (global.c, about four per VTMALLOC_PURGE_MS while any thread is active) looks at the next
 * VT_CACHES_PER_PASS live caches, and takes the surplus of a cache that has not used its stash
 * for VTMALLOC_PURGE_MS: its empty units go to the global cache, to be reused by others or
 * purged, and the remote frees it gathered go to their pages. The owner's next use of its
 * stash finds it empty and refills it. What a quiet thread keeps is then its pages with blocks
 * in use, and at most the current one-unit page of each class it used. */
static void reclaim_if_idle(vt_tcache_t *tc, int32_t tid)
{
    (void)tid;
    /* Relaxed: these are heuristics; a cache that is busy after all only has its stash taken
     * early, which costs it one refill. */
    /* Chains cost their owner nothing to lose but one CAS each: taken at every visit, so a
     * thread pins the blocks it freed for one pass at most. */
    take_chains(tc);
    uint32_t now = vt_os_now_ms();
    uint32_t epoch = atomic_load_explicit(&tc->stash_epoch, memory_order_relaxed);
    if (epoch != atomic_load_explicit(&tc->idle_epoch, memory_order_relaxed)) {
        atomic_store_explicit(&tc->idle_epoch, epoch, memory_order_relaxed);
        atomic_store_explicit(&tc->idle_since_ms, now, memory_order_relaxed);
        return;
    }
    if (now - atomic_load_explicit(&tc->idle_since_ms, memory_order_relaxed) >= vt_options.purge_ms)
        take_surplus(tc);
}

void vt_tcache_reclaim_idle(void)
{
    visit_caches(false, reclaim_if_idle);
    reclaim_if_idle(&orphan, 0); /* not on the live list; its stash is as atomic as any other */
}

/* ---- Allocation slow path --------------------------------------------------------------- */

/* Finds the class a page with free blocks: the attached pages first (local frees, remote frees,
 * uncarved space), detaching those that are exhausted; then a page from the global cache;
 * then a fresh run. Returns NULL only when memory is exhausted. */
static vt_page_t *bin_refill(vt_tcache_t *tc, unsigned class_idx)
{
    vt_page_list_t *bin = &tc->bins[class_idx];
    for (;;) {
        vt_page_t *page;
        while ((page = bin->head) != NULL) {
            if (page->free != NULL || vt_page_refill(page))
                return page;
            vt_list_remove(bin, page);
            if (!vt_page_try_detach(page, tc))
                vt_list_push_front(bin, page); /* remote frees arrived: the next turn collects */
        }
        page = vt_global_take_partial(class_idx);
        if (page == NULL)
            break;
        /* Adopt it: the global lock published its fields, and from this store on, frees by
         * this thread take the local path. The loop above refills it or detaches it. */
        atomic_store_explicit(&page->owner, (uintptr_t)tc, memory_order_relaxed);
        vt_count(&tc->counters.pages_adopted);
        vt_list_push_front(bin, page);
    }
    vt_page_t *page = take_empty_page(tc, vt_classes[class_idx].units, class_idx);
    if (page == NULL)
        return NULL;
    vt_page_assign(page, class_idx, (uintptr_t)tc);
    vt_page_refill(page);
    vt_list_push_front(bin, page);
    return page;
}

static void flush_pending(vt_tcache_t *tc);

static void *alloc_from(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    flush_pending(tc);
    housekeeping(tc);
    vt_page_t *page = bin_refill(tc, class_idx);
    bin_sync(tc, class_idx);
    if (page == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return vt_tcache_alloc(tc, class_idx, size); /* no recursion: the page has free blocks */
}

/* The thread has no cache of its own: start one, or use the orphan cache. */
static VT_NOINLINE void *alloc_without_cache(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    /* A vfork or CLONE_VM child runs on its parent thread's thread-local storage: a cache it
     * started would be that thread's after the child is gone, under the child's thread id,
     * which the reaper would then find gone while the parent thread uses the cache. Such a
     * child is served by the orphan cache. */
    if (tc->state == VT_TCACHE_UNSTARTED && (vt_init(), vt_os_process_id() == vt_process_id)) {
        vt_tcache_t *mine = vt_global_tcache_get();
        if (mine != NULL) {
            atomic_store_explicit(&mine->idle_epoch,
                                  atomic_load_explicit(&mine->stash_epoch, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(&mine->idle_since_ms, vt_os_now_ms(), memory_order_relaxed);
            /* TLS first: pthread_setspecific may allocate, and must then find this cache. */
            vt_tls_tcache = mine;
            vt_init_thread_cache(mine);
            return alloc_from(mine, class_idx, size);
        }
    }
    vt_mutex_lock(&orphan_lock);
    void *p = alloc_from(&orphan, class_idx, size);
    vt_mutex_unlock(&orphan_lock);
    return p;
}

/* malloc found a damaged link on the class's current page (vt_tcache_alloc): reported; in
 * warn mode the rest of the page's list is dropped (its blocks are leaked) and the call goes
 * on as if the list had been empty. */
void *vt_tcache_alloc_corrupt(vt_tcache_t *tc, vt_page_t *page, unsigned class_idx, size_t size)
{
    vt_report_corrupt_list(page->free);
    page->free = NULL;
    return vt_tcache_alloc_slow(tc, class_idx, size);
}

/* A success keeps errno as it was, even when a step failed and another served the call (a
 * thread whose cache could not be started is served by the orphan cache). */
void *vt_tcache_alloc_slow(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    VT_ASSERT(class_idx < VT_CLASS_COUNT);
    int saved = errno;
    void *p = vt_unlikely(tc->state != VT_TCACHE_LIVE) ? alloc_without_cache(tc, class_idx, size)
                                                       : alloc_from(tc, class_idx, size);
    if (p != NULL)
        errno = saved;
    return p;
}

/* ---- Free slow paths -------------------------------------------------------------------- */

/* The part of vt_tcache_page_emptied that gives the page back: out of line, so that the
 * common early return of a thread freeing its only block in a loop costs no stack frame. */
static VT_NOINLINE void page_emptied_release(vt_tcache_t *tc, vt_page_t *page)
{
    unsigned class_idx = page->class_idx;
    vt_list_remove(&tc->bins[class_idx], page);
    release_empty_page(tc, page);
    bin_sync(tc, class_idx);
}

/* A free run of `units` units from the thread's stash, for a large block; NULL when there is
 * none (or the thread has no cache of its own). */
vt_page_t *vt_tcache_take_run(vt_tcache_t *tc, unsigned units)
{
    if (tc->state != VT_TCACHE_LIVE)
        return NULL;
    housekeeping(tc); /* a slow path like any other: the purge schedule gets its turn */
    if (stash_count(tc) < units)
        return NULL;
    vt_page_t *page = stash_pop(tc, units);
    if (page != NULL)
        tc->stash_taken++;
    return page;
}

/* The run of a large block this thread freed goes to its stash, first in line, where the next
 * large block of that length takes it without a lock. Over VTMALLOC_STASH_UNITS, the stash
 * gives back its older pages, keeping this run (at most a large block's 16 units). */
void vt_tcache_keep_run(vt_tcache_t *tc, vt_page_t *page)
{
    if (tc->state != VT_TCACHE_LIVE || vt_options.stash_units == 0) {
        vt_global_put_run(page);
        return;
    }
    stash_push(tc, page);
    if (stash_count(tc) > vt_options.stash_units) {
        uint32_t keep = vt_options.stash_units / 2;
        stash_list_give_back(tc, stash_take_all(tc), keep > page->units ? keep : page->units,
                             false);
    }
}

/* Units of empty current pages of the long classes a thread keeps, others' included. */
static unsigned kept_long_units(vt_tcache_t *tc)
{
    unsigned units = 0;
    for (unsigned c = VT_FIRST_LONG_CLASS; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = tc->bins[c].head;
        if (page != NULL && page->used == 0)
            units += page->units;
    }
    return units;
}

/* Called by the free fast path when a page it owns has no block in use any more. The page
 * that is its class's current page stays: a thread that allocates and frees a block in a loop
 * (a 40 KiB request buffer, a 200 KiB reply) must not give its page away and take it back
 * each time. For the long pages (classes above 32 KiB, up to 512 KiB a page) only while the
 * empty ones kept add up to VT_KEPT_LONG_UNITS (measured on the soak benchmark's quick mode:
 * keeping all of them, 124 MiB peak RSS; none, 98; up to 8 units, 102-106); the others go to
 * the stash, and the kept ones too at the
 * thread's next housekeeping (release_idle_long_pages). */
void vt_tcache_page_emptied(vt_tcache_t *tc, vt_page_t *page)
{
    if (tc->alloc_page[page->class_idx] == page &&
        (page->units == 1 || kept_long_units(tc) <= VT_KEPT_LONG_UNITS))
        return;
    page_emptied_release(tc, page);
}

/* Pushes blocks to another thread's page and, when the push wakes a detached page, hands the
 * page to the global cache (page.c: the ownership protocol). */
static void push_remote(vt_page_t *page, vt_block_t *first, vt_block_t *last, uint32_t n)
{
    if (vt_page_push_remote(page, first, last, n)) {
        /* This push consumed the detach's mark: the page is ours to hand on, and nobody else
         * acts on it meanwhile (page.c). */
        atomic_store_explicit(&page->owner, VT_OWNER_GLOBAL, memory_order_relaxed);
        vt_global_put_partial(page);
    }
}

/* Remote frees are gathered per page in a few chains (VT_REMOTE_SLOTS, direct-mapped by page)
 * and each chain is pushed with one CAS when it is VT_REMOTE_BATCH long, when another page
 * needs its slot, from the allocation slow path, at thread exit and by malloc_trim; another
 * thread takes the chains of a cache that went quiet (take_chains). The blocks stay counted as
 * in use by their page meanwhile, so the page cannot be emptied or reassigned under a chain.
 * Lengthening a chain is a compare-and-swap on a line only this thread writes: it costs no
 * cache miss, unlike a push to the page, whose line the page's owner and other freeing threads
 * share. */
static void flush_chain(vt_remote_chain_t *chain)
{
    /* Relaxed: a non-zero word is the chain this thread built itself. */
    uintptr_t word = atomic_exchange_explicit(&chain->head, 0, memory_order_relaxed);
    if (word != 0)
        push_remote(chain->page, (vt_block_t *)(word & VT_REMOTE_PTR_MASK), chain->last,
                    (uint32_t)(word >> VT_REMOTE_COUNT_SHIFT));
}

static void flush_pending(vt_tcache_t *tc)
{
    if (tc->pending_chains == 0)
        return;
    for (unsigned i = 0; i < VT_REMOTE_SLOTS; i++)
        flush_chain(&tc->pending[i]);
    tc->pending_chains = 0;
}

static void gather_remote(vt_tcache_t *tc, vt_page_t *page, vt_block_t *block)
{
    _Static_assert(VT_REMOTE_SLOTS == 8, "the slot is the hash's top 3 bits");
    uint64_t h = ((uintptr_t)page >> 6) * 0x9e3779b97f4a7c15ull;
    vt_remote_chain_t *chain = &tc->pending[h >> 61];
    uintptr_t old = atomic_load_explicit(&chain->head, memory_order_relaxed);
    if (old != 0 && chain->page == page) {
        uintptr_t count = (old >> VT_REMOTE_COUNT_SHIFT) + 1;
        vt_block_set_next(block, (vt_block_t *)(old & VT_REMOTE_PTR_MASK));
        /* Release: whoever takes the chain sees the block's link and key. Fails only when
         * another thread took the chain meanwhile (take_chains): start a new one. */
        if (atomic_compare_exchange_strong_explicit(
                &chain->head, &old, (count << VT_REMOTE_COUNT_SHIFT) | (uintptr_t)block,
                memory_order_release, memory_order_relaxed)) {
            if (count >= VT_REMOTE_BATCH)
                flush_chain(chain);
            return;
        }
    } else if (old != 0) {
        flush_chain(chain); /* another page's chain had the slot */
    }
    vt_block_set_next(block, NULL);
    chain->page = page;
    chain->last = block;
    atomic_store_explicit(&chain->head, ((uintptr_t)1 << VT_REMOTE_COUNT_SHIFT) | (uintptr_t)block,
                          memory_order_release);
    tc->pending_chains++;
}

/* What a cache holds back goes to the global cache: its gathered remote frees, its empty
 * pages (the current page of a class included) and its stash. Its owner only. */
static void trim_cache(vt_tcache_t *tc)
{
    flush_pending(tc);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = tc->bins[c].head;
        while (page != NULL) {
            vt_page_t *next = page->next;
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_list_remove(&tc->bins[c], page);
                release_empty_page(tc, page);
            }
            page = next;
        }
        bin_sync(tc, c);
    }
    stash_give_back(tc);
}

static void take_surplus_of(vt_tcache_t *tc, int32_t tid)
{
    (void)tid;
    take_surplus(tc);
}

/* For malloc_trim: the calling thread's cache; the orphan cache that threads without one share
 * (under its lock, taken before the global lock as everywhere); and what every other thread
 * holds back for itself (its stash and gathered remote frees, not its pages). */
void vt_tcache_trim(void)
{
    visit_caches(true, take_surplus_of); /* first: their remote frees may empty pages of ours */
    vt_tcache_t *tc = vt_tls_tcache;
    if (tc->state == VT_TCACHE_LIVE)
        trim_cache(tc);
    vt_mutex_lock(&orphan_lock);
    trim_cache(&orphan);
    vt_mutex_unlock(&orphan_lock);
}

/* A free whose page the caller does not own (or not as an attached page): checks the block,
 * then either takes its own detached page back or pushes the block to the page's owner. */
void vt_tcache_free_other(vt_tcache_t *tc, vt_page_t *page, void *p)
{
    if (!vt_page_check_block(page, p, "free"))
        return;
    vt_block_t *block = p;
    block->key = vt_block_key(block);

    uintptr_t self = (uintptr_t)tc;
    unsigned class_idx = page->class_idx;
    if (vt_page_owner(page) == (self | VT_OWNER_DETACHED) &&
        tc->bins[class_idx].count < vt_options.class_pages && vt_page_try_reattach(page, tc)) {
        vt_block_set_next(block, page->free);
        page->free = block;
        if (VT_FAST_COUNTERS)
            page->pushes++;
        vt_list_push_back(&tc->bins[class_idx], page);
        bin_sync(tc, class_idx);
        if (--page->used == 0)
            vt_tcache_page_emptied(tc, page);
        return;
    }

    if (vt_unlikely(tc->state != VT_TCACHE_LIVE)) { /* a shared static cache: no batching */
        vt_global_count_shared_put(class_idx);
        push_remote(page, block, block, 1);
        return;
    }
    vt_count(&tc->counters.remote_puts[class_idx]);
    vt_count(&tc->counters.remote_frees);
    gather_remote(tc, page, block);
}

/* ---- Thread exit and fork --------------------------------------------------------------- */

/* Hands every attached page to the global cache (empty ones as free units) and the cache
 * itself to the pool. Pages the thread detached stay tagged with this cache: they are full,
 * and the first free into one revokes it to the global cache (see page.c). */
static void abandon(vt_tcache_t *tc)
{
    flush_pending(tc);
    vt_page_list_t partial = {0}, empty = {0};
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page;
        while ((page = tc->bins[c].head) != NULL) {
            vt_list_remove(&tc->bins[c], page);
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_page_unassign(page);
                vt_list_push_back(&empty, page);
            } else {
                vt_page_publish(page);
                /* From here on every free into it is remote; the lock in put_pages publishes
                 * the page's fields to the thread that adopts it. */
                atomic_store_explicit(&page->owner, VT_OWNER_GLOBAL, memory_order_relaxed);
                vt_list_push_back(&partial, page);
            }
        }
        tc->alloc_page[c] = &vt_page_none;
    }
    for (vt_page_t *page = stash_take_all(tc); page != NULL;) {
        vt_page_t *next = page->next;
        vt_list_push_back(&empty, page);
        page = next;
    }
    stash_count_set(tc, 0);
    vt_global_put_pages(&partial, &empty, false);
}

void vt_tcache_thread_exit(vt_tcache_t *tc)
{
    if (tc == NULL || tc->state != VT_TCACHE_LIVE || tc == &orphan)
        return;
    vt_tls_tcache = &exited;
    abandon(tc);
    vt_global_tcache_put(tc);
}

/* Publishes the counts of the calling thread's own pages, so that its statistics are exact
 * (vt_stats_get). */
void vt_tcache_publish(void)
{
    vt_tcache_t *tc = vt_tls_tcache;
    if (tc->state != VT_TCACHE_LIVE)
        return;
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
        for (vt_page_t *page = tc->bins[c].head; page != NULL; page = page->next)
            vt_page_publish(page);
}

/* The orphan cache's counters, for statistics. */
const vt_tcache_counters_t *vt_tcache_orphan_counters(void)
{
    return &orphan.counters;
}

/* Hands back the caches of threads that are gone without their exit destructor having run:
 * a thread whose first allocation came in the last round of thread-specific destructors
 * (glibc runs four) arms vtmalloc's destructor too late. Such a cache stays on the live list;
 * here, another thread finds that the kernel no longer knows its thread (a system call per
 * live cache, so this runs from housekeeping, a batch at a time, and malloc_trim, all of
 * them), claims it under the global lock, and abandons it as the thread would have. A thread
 * that is gone touches nothing any more, so its owner-only fields are safe to use. Only our
 * own process may judge: a vfork or CLONE_VM child shares our memory, but our threads are not
 * its threads. */
static void reap_if_gone(vt_tcache_t *tc, int32_t tid)
{
    if (!vt_os_thread_gone(vt_process_id, tid) || !vt_global_tcache_claim(tc, tid))
        return;
    abandon(tc);
    vt_global_tcache_put(tc);
}

void vt_tcache_reap(bool all)
{
    if (vt_os_process_id() != vt_process_id)
        return;
    visit_caches(all, reap_if_gone);
}

void vt_tcache_fork_prepare(void)
{
    pthread_mutex_lock(&orphan_lock);
}

void vt_tcache_fork_parent(void)
{
    pthread_mutex_unlock(&orphan_lock);
}

void vt_tcache_fork_child(void)
{
    pthread_mutex_unlock(&orphan_lock); /* held by this thread's parent copy: see global.c */
}
