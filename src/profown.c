/*
 * profown.c - pages of the heap profiler that one thread cache owns, so that a thread that
 * samples often takes its samples, and frees them, with no lock.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, page.c, report.c, sizeclass.c, profpages.c, prof.c
 *
 * Owns: nothing of its own; a vt_prof_own_t belongs to its thread cache, and its pages are
 * registered with the rest of the profiler's (profpages.c).
 *
 * Why: a sample through a shard (prof.c) takes the shard's lock twice, once for the block and
 * once for its free, and each lock and unlock is an atomic read-modify-write on a line the
 * thread last touched a few dozen allocations ago. That was about 15 of the 54 ns a sample cost
 * memtest single at the usual mean (bench/RESULTS.md), the largest part of what kept profiling
 * above 3 % of its time. A thread that samples often is given pages of its own instead: it pops
 * its sampled blocks from them and pushes its own frees back with plain loads and stores, as it
 * does with its other pages, and counts its samples in vt_prof_own_t until it adds them up
 * under the shard's lock now and then (prof.c). Threads that sample rarely stay with the shards:
 * a server that parks thousands of threads should not hold a page per thread for the few
 * samples each took.
 *
 * Every free of a sampled block comes here (alloc.c: the pages' owner word is VT_OWNER_PROF, so
 * the free fast path never matches it), and the free is one of three kinds:
 *   - by the owner (page->prof_owner is the caller's own vt_prof_own_t): a plain push;
 *   - by any other thread while the owner holds the page: pushed onto the page's remote word
 *     with one CAS, as a remote free into any thread's page; the owner collects the list when
 *     its page runs out (vt_page_refill);
 *   - by any thread once the page is a shard's: under the shard's lock (prof.c), as before.
 * The remote word tells the last two apart at the moment of the push: a shard's page carries
 * VT_PROF_CLOSED there, and a push that finds it pushes nothing.
 *
 * Why the owner test is exact with a relaxed load: prof_owner changes only when the page is
 * made (before any of its blocks exists) and when its owner leaves (vt_profown_close). Only
 * the owning cache's thread, or whoever hands the cache back once that thread is gone, ever
 * finds its own vt_prof_own_t there; any other thread finds another value, old or new, and both
 * send it to the push, which the remote word then decides.
 *
 * Why no block is lost when the owner leaves (its thread exits): the owner, holding the
 * shard's lock, collects the remote list and closes the word with a CAS from an empty list,
 * again until the CAS wins. A push that lands before that is collected; one that finds the word
 * closed takes the shard's lock, which the owner gives back only once the page is the shard's,
 * so the push's free sees the page as the shard keeps it. The page, if it has room, goes on the
 * shard's list, from which a thread that needs a page of its own takes it again, under the same
 * lock: a free that found the word closed and waited for the lock then finds an owner in
 * prof_owner, gives the lock back and pushes again (prof.c: free_other).
 */
#include "internal.h"
#include "profown.h"
#include "profshard.h"

void vt_profown_init(vt_prof_own_t *own)
{
    for (unsigned k = 0; k < VT_PROFOWN_KINDS; k++) {
        size_t b = (size_t)64 << 2 * k; /* as vt_profpages_new_page lays a shared page out */
        own->records_at[k] =
            (uint16_t)(VT_PROF_RUN - VT_PROF_RUN / (b + sizeof(uint64_t)) * sizeof(uint64_t));
    }
}

/* Where a record lies in its mapping: not at the start, whose line falls in the same set of
 * the first-level cache as the first line of every page-aligned block (and of the memo without
 * its own offset, unwindmemo.h), a set that programs writing large blocks keep busy; there a
 * line read once in many mallocs is gone by the next sample (bench/RESULTS.md). */
#define OWN_OFFSET (44 * 64)

vt_prof_own_t *vt_profown_new(void)
{
    size_t page = vt_os_page_size();
    uint8_t *map = vt_os_map((OWN_OFFSET + sizeof(vt_prof_own_t) + page - 1) & ~(page - 1), page);
    if (map == NULL)
        return NULL;
    vt_prof_own_t *own = (vt_prof_own_t *)(map + OWN_OFFSET);
    vt_profown_init(own);
    return own;
}

vt_page_t *vt_profown_refill(vt_prof_own_t *own, unsigned k, uint8_t shard)
{
    unsigned c = vt_size_class((size_t)64 << 2 * k);
    vt_page_t *page = own->current[k];
    if (page != NULL && vt_page_refill(page)) /* blocks freed by others, else fresh ones */
        return page;
    /* The current page is full; its blocks come back as they are freed. Another of the class
     * that has some back, else a fresh one. Pages stay few: a page becomes another's current
     * only when it is exhausted, and one that empties is given back (vt_profown_free). */
    for (vt_page_t *q = own->pages.head; q != NULL; q = q->link.next) {
        if (q != page && q->class_idx == c && (q->free != NULL || vt_page_collect_remote(q) > 0))
            return own->current[k] = q;
    }
    /* A page with room that a thread left to the shard (vt_profpages_adopt), else a fresh one.
     * Opened under the shard's lock: a free that found the page closed waits for the lock, and
     * then finds that the page has an owner again (prof.c: free_other). */
    prof_shard_t *sh = &vt_prof_shards[shard];
    vt_mutex_lock(&sh->lock);
    vt_page_t *taken = vt_profpages_take_partial(&sh->pages, c);
    if (taken != NULL) {
        atomic_store_explicit(&taken->prof_owner, own, memory_order_relaxed);
        atomic_store_explicit(&taken->remote, 0, memory_order_relaxed);
    }
    vt_mutex_unlock(&sh->lock);
    if (taken == NULL && (taken = vt_profpages_new_page(c, shard, own)) == NULL)
        return NULL;
    vt_list_push_back(&own->pages, taken, VT_PAGE_LINK);
    return own->current[k] = taken;
}

void vt_profown_release(vt_prof_own_t *own, vt_page_t *page)
{
    vt_list_remove(&own->pages, page, VT_PAGE_LINK);
    vt_profpages_release(page);
}

bool vt_profown_push(vt_page_t *page, void *p)
{
    vt_block_t *b = p;
    uintptr_t old = atomic_load_explicit(&page->remote, memory_order_relaxed), word;
    do {
        if (old & VT_PROF_CLOSED)
            return false;
        b->key = vt_block_key(b);
        vt_block_set_next(b, (vt_block_t *)(old & VT_REMOTE_PTR_MASK));
        word = ((old >> VT_REMOTE_COUNT_SHIFT) + 1) << VT_REMOTE_COUNT_SHIFT | (uintptr_t)b;
        /* Release: the owner's collection (acquire) sees the block's link, key and record. */
    } while (!atomic_compare_exchange_weak_explicit(&page->remote, &old, word, memory_order_release,
                                                    memory_order_relaxed));
    /* The statistics count a free where it is made: the owner's collection counts the block as
     * taken again, not as freed (page.c: vt_page_publish). */
    atomic_fetch_add_explicit(&vt_page_class_puts[page->class_idx], 1, memory_order_relaxed);
    return true;
}

void vt_profown_close(vt_page_t *page)
{
    uintptr_t empty;
    do {
        vt_page_collect_remote(page);
        empty = 0;
        /* Relaxed: a pusher that reads the closed word goes on under the shard's lock, which
         * the caller holds until the page is the shard's (see the top of this file). */
    } while (!atomic_compare_exchange_strong_explicit(&page->remote, &empty, VT_PROF_CLOSED,
                                                      memory_order_relaxed, memory_order_relaxed));
    atomic_store_explicit(&page->prof_owner, NULL, memory_order_relaxed);
}

void vt_profown_damaged(vt_page_t *page)
{
    vt_report_corrupt_list(page->free);
    page->free = NULL; /* warn mode: the rest of the list is dropped (leaked) */
}
