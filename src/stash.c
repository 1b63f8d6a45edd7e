/*
 * stash.c - a thread cache's stash: the empty runs of units (of any length, from any class)
 * that a thread keeps for its next page, so that a class that empties a page and another that
 * needs one trade units without a lock.
 *
 * Layer: 7 stash
 * Calls: global.c
 *
 * The stash is an atomic list so that another thread can take it whole from a cache whose
 * thread has gone quiet (reclaim.c). Only the owner adds pages, so its pop (take the list,
 * put the rest back) needs no compare-and-swap: nothing can arrive in between, and a taker
 * that comes in between finds the list empty and takes nothing.
 */
#include "internal.h"

/* The owner marks every use, so that a reclaiming thread can tell a quiet stash. */
static void stash_touch(vt_tcache_t *tc)
{
    uint32_t epoch = atomic_load_explicit(&tc->stash_epoch, memory_order_relaxed);
    atomic_store_explicit(&tc->stash_epoch, epoch + 1, memory_order_relaxed);
}

static void stash_count_set(vt_tcache_t *tc, uint32_t count)
{
    atomic_store_explicit(&tc->stash_count, count, memory_order_relaxed);
}

/* Units in the stash: exact for the owner, an estimate for others (relaxed). */
uint32_t vt_stash_count(vt_tcache_t *tc)
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
void vt_stash_push(vt_tcache_t *tc, vt_page_t *page)
{
    /* Read before the push: once the page is on the list, another thread may take the list
     * and hand the page to a third, which re-describes it. */
    uint32_t units = page->units;
    vt_page_t *head = atomic_load_explicit(&tc->stash, memory_order_relaxed);
    if (vt_sole_thread()) { /* no reclaimer exists to take the list meanwhile (lock.h) */
        page->link.next = head;
        atomic_store_explicit(&tc->stash, page, memory_order_release);
    } else {
        do {
            page->link.next = head; /* fails only when a reclaimer took it: head is NULL */
        } while (!atomic_compare_exchange_weak_explicit(
            &tc->stash, &head, page, memory_order_release, memory_order_relaxed));
    }
    stash_count_set(tc, vt_stash_count(tc) + units);
    stash_touch(tc);
}

/* Stashes a batch of runs taken from the global cache so that they come out in the order they
 * were taken: the global cache hands out resident units first (span.c), and the last of a batch
 * may be a fresh one, which the next page would fault in while resident ones wait beneath it.
 * Owner only. */
void vt_stash_push_batch(vt_tcache_t *tc, vt_page_t **pages, uint32_t n)
{
    while (n > 0)
        vt_stash_push(tc, pages[--n]);
}

/* Takes a stashed page of `units` units, or NULL. Owner only. Walks the whole list, which is
 * short (VTMALLOC_STASH_UNITS at most, plus a batch), so the count is exact again afterwards
 * even when a reclaimer took the stash meanwhile. */
vt_page_t *vt_stash_pop(vt_tcache_t *tc, unsigned units)
{
    stash_touch(tc);
    /* The sole thread takes the list with a load: no reclaimer exists to take it (lock.h). */
    vt_page_t *list = vt_sole_thread() ? atomic_load_explicit(&tc->stash, memory_order_relaxed)
                                       : stash_take_all(tc);
    vt_page_t *found = NULL, *prev = NULL, *next;
    uint32_t count = 0;
    for (vt_page_t *p = list; p != NULL; p = next) {
        next = p->link.next;
        if (found == NULL && p->units == units) {
            found = p; /* unlinked; the rest goes back below */
            if (prev != NULL)
                prev->link.next = next;
            else
                list = next;
            continue;
        }
        count += p->units;
        prev = p;
    }
    atomic_store_explicit(&tc->stash, list, memory_order_release);
    stash_count_set(tc, count);
    return found;
}

/* Gives a list of stashed pages to the global cache, keeping the first pages of the list in
 * the stash as long as they add up to at most `keep` units. `idle`: the pages lay unused in
 * the stash for a while, so they leave the retention policy's record of demand too. Owner, or
 * any thread for a list it took with stash_take_all (keep 0). */
static void give_back(vt_tcache_t *tc, vt_page_t *list, uint32_t keep, bool idle)
{
    vt_list_t surplus = {0};
    vt_page_t *kept = NULL, *kept_last = NULL;
    uint32_t kept_units = 0;
    while (list != NULL) {
        vt_page_t *p = list;
        list = p->link.next;
        if (kept_units + p->units <= keep) {
            kept_units += p->units;
            p->link.next = NULL;
            if (kept_last != NULL)
                kept_last->link.next = p;
            else
                kept = p;
            kept_last = p;
        } else {
            vt_list_push_back(&surplus, p, VT_PAGE_LINK);
        }
    }
    if (keep > 0) { /* the owner: nothing can have arrived since it took the list */
        atomic_store_explicit(&tc->stash, kept, memory_order_release);
        stash_count_set(tc, kept_units);
    }
    vt_global_put_pages(NULL, &surplus, idle);
}

/* Over the limit: gives back all but the newest `keep` units (the owner). Half the limit is
 * kept, so a thread alternating around the limit does not take the lock on every page. */
void vt_stash_shrink(vt_tcache_t *tc, uint32_t keep)
{
    give_back(tc, stash_take_all(tc), keep, false);
}

/* Gives the whole stash back to the global cache, as memory that lay idle. Owner only. */
void vt_stash_give_back(vt_tcache_t *tc)
{
    stash_count_set(tc, 0);
    stash_touch(tc);
    give_back(tc, stash_take_all(tc), 0, true);
}

/* The same, by another thread, for a cache whose thread went quiet (reclaim.c): without
 * touching the epoch, which only the owner writes. */
void vt_stash_take_from(vt_tcache_t *tc)
{
    if (atomic_load_explicit(&tc->stash, memory_order_relaxed) == NULL)
        return;
    vt_page_t *list = stash_take_all(tc);
    stash_count_set(tc, 0);
    give_back(tc, list, 0, true);
}

/* Moves every stashed page onto `empty` (a thread's exit). */
void vt_stash_empty_into(vt_tcache_t *tc, vt_list_t *empty)
{
    for (vt_page_t *page = stash_take_all(tc); page != NULL;) {
        vt_page_t *next = page->link.next;
        vt_list_push_back(empty, page, VT_PAGE_LINK);
        page = next;
    }
    stash_count_set(tc, 0);
}
