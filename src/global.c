/*
 * global.c - the global cache: pages that no thread owns (given back by exited threads, or
 * revoked from detached owners), and the runs of units threads take for their pages.
 *
 * Layer: 6 global cache
 * Calls: os.c, report.c, options.c, page.c, span.c, spanpurge.c, pagepurge.c
 *
 * Owns: the partial lists (under the global lock, span.c) and their hint mask; the count of
 * frees by threads without a cache. Threads come here only on slow paths: when a class has no
 * page with free blocks, when empty pages leave a thread's stash, when a thread exits, when a
 * thread frees into one of these pages and adopts it (tcache.c).
 *
 * Nothing here is per class but the partial lists: a page that empties returns its units to
 * its span (span.c), where any class can take them.
 */
#include "internal.h"

static struct global {
    vt_list_t partial[VT_CLASS_COUNT]; /* global lock: pages owned by nobody */
    /* Hint for vt_global_take_partial: bit c set iff partial[c] is not empty. Written under
     * the lock, read without it; a stale bit only costs a lock or skips a page until the
     * next refill, both harmless. */
    _Atomic uint64_t partial_mask;
    uint64_t pages_abandoned;                     /* global lock */
    uint32_t last_pass_ms;                        /* global lock: see vt_global_collect */
    _Atomic uint64_t shared_puts[VT_CLASS_COUNT]; /* frees by threads without a cache */
    /* Hook: gives back what an upper layer keeps only for reuse (large.c's cached mappings)
     * when a span cannot be mapped. Registered once at start-up (init.c), before any span. */
    bool (*release_reserves_hook)(void);
    /* Held while pages are off the partial lists to have their free blocks purged, which fork()
     * takes too (before the global lock): a child forked in that moment would lose them. */
    vt_lock_t purge_lock;
    uint64_t purged_bytes, purges; /* global lock: what vt_global_purge_partial gave back */
    /* Bit c: a thread freed into a page of partial[c] since the list was last looked at, so a
     * page of it may have emptied (vt_global_note_remote). Set by any freeing thread; taken
     * (exchanged for 0) under the lock by the next take of units. Relaxed: a bit seen late
     * only delays that look to the next take, and the lock orders the list itself. */
    _Atomic uint64_t remote_mask;
} g = {.purge_lock = VT_LOCK_INIT};

_Static_assert(VT_CLASS_COUNT <= 64, "partial_mask has a bit per class");

static void partial_mask_update(unsigned c)
{
    uint64_t bit = (uint64_t)1 << c,
             mask = atomic_load_explicit(&g.partial_mask, memory_order_relaxed);
    mask = g.partial[c].head != NULL ? mask | bit : mask & ~bit;
    atomic_store_explicit(&g.partial_mask, mask, memory_order_relaxed);
}

/* ---- Partial pages ---------------------------------------------------------------------- */

static void put_partial_locked(vt_page_t *page, uint8_t abandoned)
{
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_GLOBAL);
    VT_ASSERT(atomic_load_explicit(&page->purged, memory_order_relaxed) == 0);
    page->parked_ms = vt_os_now_ms();
    page->purge_used = UINT32_MAX; /* never looked at */
    vt_list_push_back(&g.partial[page->class_idx], page, VT_PAGE_LINK);
    page->on_partial = VT_ON_PARTIAL | abandoned;
    partial_mask_update(page->class_idx);
}

/* Pages of exited threads wait on the partial lists for a thread of their class; when every
 * block of one has been freed meanwhile (remotely), its units are returned to the span, where
 * any class can use them. Run before mapping a new span, by the purge schedule and by trim.
 * Lock held; touching the pages' owner-only fields is allowed because their owner is the
 * global cache. The units count as freed at the previous pass: the page emptied at some time
 * since (else that pass would have collected it), so a process that went quiet gets them
 * purged at its next pass instead of one purge delay later. Returns how many pages were
 * freed. */
static uint32_t collect_partial_locked(void)
{
    uint32_t freed = 0;
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = g.partial[c].head;
        while (page != NULL) {
            vt_page_t *next = page->link.next;
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_list_remove(&g.partial[c], page, VT_PAGE_LINK);
                page->on_partial = 0;
                vt_page_unassign(page);
                vt_span_give_back_locked(page, g.last_pass_ms);
                freed++;
            }
            page = next;
        }
        partial_mask_update(c);
    }
    return freed;
}

/* Pages of a class looked at per take of units (collect_emptied_locked): bounds the work under
 * the lock when a class has many pages waiting. Those further back wait for the purge pass, or
 * for the pages in front of them to go. */
#define EMPTIED_LOOK 16

/* Gives a page of the partial lists back to its span if every block of it has been freed by
 * other threads (its remote list holds all it has in use). Lock held. True when it did. */
static bool give_back_if_emptied_locked(vt_page_t *page, uint32_t now)
{
    if (vt_page_remote_count(page) != page->used)
        return false; /* blocks still in use: the page and its remote list stay as they are */
    vt_page_collect_remote(page);
    if (page->used != 0)
        return false;
    vt_list_remove(&g.partial[page->class_idx], page, VT_PAGE_LINK);
    page->on_partial = 0;
    vt_page_unassign(page);
    vt_span_give_back_locked(page, now);
    return true;
}

/* Before a take of units that would otherwise fault memory in: the partial pages that other
 * threads' frees have emptied since the last look go back to their spans, so the take finds
 * their units, which are resident. Left on the lists until the next purge pass, they lay idle
 * while takes faulted in fresh or purged units (in bench/server's waves, threads hand blocks
 * to a thread that frees them after their own exit: thousands of such pages in a run).
 * Looks at the first EMPTIED_LOOK pages of each noted class: the oldest, whose blocks have had
 * the longest to be freed. Lock held. */
static void collect_emptied_locked(void)
{
    uint64_t mask = atomic_exchange_explicit(&g.remote_mask, 0, memory_order_relaxed);
    uint32_t now = vt_os_now_ms();
    while (mask != 0) {
        unsigned c = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        vt_page_t *page = g.partial[c].head;
        for (unsigned looked = 0; page != NULL && looked < EMPTIED_LOOK; looked++) {
            vt_page_t *next = page->link.next;
            give_back_if_emptied_locked(page, now);
            page = next;
        }
        partial_mask_update(c);
    }
}

/* A thread freed blocks into a page of the global cache of class c (remote.c): the next take
 * of units looks whether that emptied it. */
void vt_global_note_remote(unsigned class_idx)
{
    uint64_t bit = (uint64_t)1 << class_idx;
    /* Read first: the cache thread of a server frees into such pages all the time, and an
     * atomic or on a line that takes write it would bounce that line for nothing. */
    if ((atomic_load_explicit(&g.remote_mask, memory_order_relaxed) & bit) == 0)
        atomic_fetch_or_explicit(&g.remote_mask, bit, memory_order_relaxed);
}

/* The purge pass's first step (purge.c): emptied pages back to their spans, and `now` noted
 * as the time of this pass. */
void vt_global_collect(uint32_t now)
{
    vt_span_lock();
    collect_partial_locked();
    g.last_pass_ms = now;
    vt_span_unlock();
}

vt_page_t *vt_global_take_partial(unsigned class_idx)
{
    uint64_t bit = (uint64_t)1 << class_idx;
    if ((atomic_load_explicit(&g.partial_mask, memory_order_relaxed) & bit) == 0)
        return NULL; /* the common case costs no lock */
    vt_span_lock_for(class_idx);
    vt_page_t *page = g.partial[class_idx].head;
    if (page != NULL) {
        vt_list_remove(&g.partial[class_idx], page, VT_PAGE_LINK);
        page->on_partial = 0;
    }
    partial_mask_update(class_idx);
    vt_span_unlock();
    if (page != NULL)
        vt_pagepurge_restore(page); /* off the list, the page is the caller's alone */
    return page;
}

/* A page of the partial lists that a freeing thread takes as its own (adopt on free,
 * tcache.c), if its thread exited. on_partial, not the owner alone, says whether it is still
 * there: a purge pass takes pages off the lists while it purges them outside the lock (still
 * owned by the global cache), and another thread may have adopted it first. A page woken by a
 * free into a detached page (remote.c) is not adopted: its owner is likely alive and about to
 * want it, and in memtest xthread, where two live threads free each other's blocks, adopting
 * those doubled the peak (6 to 12 MiB) and the faults. True when it was taken: the caller owns
 * it, and its purged granules are restored (its blocks back on its free list). */
bool vt_global_adopt(vt_page_t *page)
{
    unsigned c = page->class_idx;
    vt_span_lock_for(c);
    bool ok = page->on_partial == (VT_ON_PARTIAL | VT_PARTIAL_ABANDONED) &&
              vt_page_owner(page) == VT_OWNER_GLOBAL;
    if (ok) {
        vt_list_remove(&g.partial[c], page, VT_PAGE_LINK);
        page->on_partial = 0;
        partial_mask_update(c);
    }
    vt_span_unlock();
    if (ok)
        vt_pagepurge_restore(page);
    return ok;
}

void vt_global_put_partial(vt_page_t *page, bool owner_gone)
{
    vt_span_lock_for(page->class_idx);
    put_partial_locked(page, owner_gone ? VT_PARTIAL_ABANDONED : 0);
    vt_span_unlock();
}

/* Pages a thread hands back: those with blocks in use to the partial lists, empty ones to
 * their spans. `idle`: the empty ones lay unused in the thread's stash for a while, so they
 * leave the retention policy's record of demand too. */
void vt_global_put_pages(vt_list_t *partial, vt_list_t *empty, bool idle)
{
    vt_page_t *page;
    vt_span_lock();
    while (partial != NULL && (page = partial->head) != NULL) {
        vt_list_remove(partial, page, VT_PAGE_LINK);
        put_partial_locked(page, VT_PARTIAL_ABANDONED);
        g.pages_abandoned++;
    }
    while (empty != NULL && (page = empty->head) != NULL) {
        vt_list_remove(empty, page, VT_PAGE_LINK);
        /* An idle page counts as freed a quiet time ago, which is when it was last of use at
         * the latest: span.c then takes it out of the demand without restarting the quiet
         * clock, and the purge takes its units first. */
        uint32_t now = vt_os_now_ms();
        vt_span_give_back_locked(page, idle ? now - vt_options.purge_ms : now);
    }
    vt_span_unlock();
}

/* ---- Free blocks of partial pages back to the OS ---------------------------------------- */

/* Pages taken off the partial lists at a time to be purged with the lock dropped. */
#define PURGE_PAGES_BATCH 32

/* Up to PURGE_PAGES_BATCH partial pages that waited at least age_ms since they were parked or
 * last looked at, and in which blocks were freed since that look, taken off their lists. */
static size_t take_purgeable_locked(vt_page_t **out, uint32_t now, uint32_t age_ms)
{
    size_t n = 0;
    for (unsigned c = 0; c < VT_CLASS_COUNT && n < PURGE_PAGES_BATCH; c++) {
        vt_page_t *next;
        for (vt_page_t *page = g.partial[c].head; page != NULL && n < PURGE_PAGES_BATCH;
             page = next) {
            next = page->link.next;
            if (page->used == page->purge_used || (int32_t)(now - page->parked_ms) < 0 ||
                now - page->parked_ms < age_ms)
                continue;
            vt_list_remove(&g.partial[c], page, VT_PAGE_LINK);
            page->on_partial &= (uint8_t)~VT_ON_PARTIAL; /* back on a list after the purge */
            out[n++] = page;
        }
        partial_mask_update(c);
    }
    return n;
}

/* Gives back to the OS the free blocks of pages that waited on the partial lists for at least
 * age_ms (vt_pagepurge_page): a class whose live blocks are few and long-lived pins little
 * more than their memory. Each page is looked at again only once blocks were freed in it, and
 * not before another age_ms. The purge runs with the global lock dropped; the pages go back to
 * the end of their lists, so that threads adopt the pages that kept their memory first. Returns
 * the bytes given back. Lock not held. */
size_t vt_global_purge_partial(uint32_t now, uint32_t age_ms)
{
    size_t total = 0;
    vt_mutex_lock(&g.purge_lock);
    for (;;) {
        vt_page_t *pages[PURGE_PAGES_BATCH];
        vt_span_lock();
        size_t n = take_purgeable_locked(pages, now, age_ms);
        vt_span_unlock();
        if (n == 0)
            break;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += vt_pagepurge_page(pages[i]);
        vt_span_lock();
        for (size_t i = 0; i < n; i++) {
            vt_page_t *page = pages[i];
            if (page->used == 0) { /* its last blocks were freed meanwhile */
                vt_page_unassign(page);
                vt_span_give_back_locked(page, now);
                continue;
            }
            page->parked_ms = now;
            page->purge_used = page->used;
            vt_list_push_back(&g.partial[page->class_idx], page, VT_PAGE_LINK);
            page->on_partial |= VT_ON_PARTIAL;
            partial_mask_update(page->class_idx);
        }
        g.purged_bytes += bytes;
        g.purges += bytes > 0;
        vt_span_unlock();
        total += bytes;
        if (n < PURGE_PAGES_BATCH)
            break;
    }
    vt_mutex_unlock(&g.purge_lock);
    return total;
}

void vt_global_fork_prepare(void)
{
    vt_lock_take(&g.purge_lock);
}

void vt_global_fork_parent(void)
{
    vt_lock_give(&g.purge_lock);
}

void vt_global_fork_child(void)
{
    vt_lock_give(&g.purge_lock); /* held by this thread's parent copy: see span.c */
}

/* ---- Runs of units ---------------------------------------------------------------------- */

void vt_global_set_release_reserves_hook(bool (*hook)(void))
{
    g.release_reserves_hook = hook;
}

/* When a mapping fails: what is kept only for reuse (empty spans, cached large mappings)
 * goes, so that the request can be served. True when something was given back. */
bool vt_global_release_reserves(void)
{
    bool released = vt_spanpurge_unmap_empty(false);
    if (g.release_reserves_hook != NULL && g.release_reserves_hook())
        released = true;
    return released;
}

/* Free runs of `units` units starting at a multiple of `align` units, for a thread's pages or
 * a large block: from the spans' free units (with the pages that other threads' frees emptied
 * given back first when the resident ones may fall short), else from emptied global pages,
 * else from a new span (mapped with the lock dropped). */
static uint32_t take_runs(unsigned units, unsigned align, vt_page_t **out, uint32_t max_count,
                          unsigned class_idx)
{
    vt_span_lock_for(class_idx);
    /* Only when the resident free units may not do (too few, or a longer run that needs them
     * contiguous). Otherwise an emptied page stays on its list, where the next thread of its
     * class adopts it whole: memtest churn at 8 threads, whose workers free their predecessors'
     * blocks, peaked at 21.5 MiB with the pages given back at every take and 19.1 with them
     * given back only here, against 17.2 when they waited for the purge pass; waves gained as
     * much either way (medians of 10-16 interleaved runs, bench/RESULTS.md). */
    if (atomic_load_explicit(&g.remote_mask, memory_order_relaxed) != 0 &&
        (units > 1 || vt_span_dirty_count() < max_count))
        collect_emptied_locked();
    uint32_t n = vt_span_take_locked(units, align, out, max_count);
    if (n == 0 && collect_partial_locked() > 0)
        n = vt_span_take_locked(units, align, out, max_count);
    vt_span_unlock();
    if (n > 0)
        return n;
    vt_span_t *span = vt_span_map();
    if (span == NULL && vt_global_release_reserves())
        span = vt_span_map(); /* the address space or memory kept for reuse made room */
    if (span == NULL)
        return 0;
    vt_span_lock_for(class_idx);
    vt_span_add_locked(span);
    n = vt_span_take_locked(units, align, out, max_count); /* older spans first, then the new */
    if (n == 0) { /* an aligned run whose search stopped before the new span: take it there */
        vt_page_t *page = vt_span_take_from_locked(span, units, align);
        if (page != NULL)
            out[n++] = page;
    }
    vt_span_unlock();
    return n;
}

vt_page_t *vt_global_take_run(unsigned units, unsigned align, unsigned class_idx)
{
    VT_ASSERT(units >= 1 && units <= VT_LARGE_SPAN_UNITS);
    VT_ASSERT(align >= 1 && align <= VT_SPAN_UNITS / 2 && (align & (align - 1)) == 0);
    vt_page_t *page = NULL;
    take_runs(units, align, &page, 1, class_idx);
    return page;
}

uint32_t vt_global_take_units(vt_page_t **out, uint32_t max_count, unsigned class_idx)
{
    return take_runs(1, 1, out, max_count, class_idx);
}

/* ---- Statistics ------------------------------------------------------------------------- */

/* A free by a thread without a cache of its own into another thread's page. */
void vt_global_count_shared_put(unsigned class_idx)
{
    atomic_fetch_add_explicit(&g.shared_puts[class_idx], 1, memory_order_relaxed);
}

/* The global cache's part of the statistics: per class, the free blocks of the partial pages
 * and the frees of threads without a cache (added to `puts`); in *purged_now, the bytes of
 * those pages that are given back to the OS now (pagepurge.c). Lock held. */
void vt_global_stats_locked(vt_stats_t *st, uint64_t puts[VT_CLASS_COUNT], uint64_t *purged_now)
{
    st->pages_abandoned_total = g.pages_abandoned;
    st->purged_bytes_total += g.purged_bytes;
    st->purges_total += g.purges;
    *purged_now = 0;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        puts[k] += atomic_load_explicit(&g.shared_puts[k], memory_order_relaxed);
        for (vt_page_t *page = g.partial[k].head; page != NULL; page = page->link.next) {
            st->classes[k].free_in_global += page->capacity - page->used;
            uint32_t w = atomic_load_explicit(&page->purged, memory_order_relaxed);
            *purged_now += (uint64_t)__builtin_popcount(w & VT_PURGED_MASK)
                           << (w >> VT_PURGED_SHIFT_BIT);
        }
    }
}
