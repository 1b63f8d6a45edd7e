/*
 * remote.c - frees into other threads' pages: gathered per page in a few chains, pushed to the
 * page with one compare-and-swap, and taken from a thread that went quiet by another.
 *
 * Layer: 7 remote frees
 * Calls: page.c, global.c
 *
 * Remote frees are gathered per page in chains (VT_REMOTE_SLOTS, direct-mapped by page), and
 * each chain is pushed with one CAS when it is VT_REMOTE_BATCH long, when another page needs
 * its slot, from the allocation slow path, at thread exit and by malloc_trim; another thread
 * takes the chains of a cache that went quiet (vt_remote_take_chains). The blocks stay counted
 * as in use by their page meanwhile, so the page cannot be emptied or reassigned under a
 * chain. Lengthening a chain is a compare-and-swap on a line only this thread writes: it costs
 * no cache miss, unlike a push to the page, whose line the page's owner and other freeing
 * threads share.
 */
#include "internal.h"

/* Fibonacci hashing: the golden ratio's 64-bit fraction spreads page addresses over the
 * slots. */
#define SLOT_HASH 0x9e3779b97f4a7c15ull

/* Pushes blocks to another thread's page and, when the push wakes a detached page, hands the
 * page to the global cache (page.c: the ownership protocol). */
void vt_remote_push(vt_page_t *page, vt_block_t *first, vt_block_t *last, uint32_t n)
{
    /* Read before the push, while these blocks keep the page assigned: after it, the page may
     * go back to its span and the span be unmapped. A page handed to the global cache as this
     * reads (a stale owner) misses its note: it waits for the next purge pass, as before. */
    bool parked = atomic_load_explicit(&page->owner, memory_order_relaxed) == VT_OWNER_GLOBAL;
    unsigned class_idx = page->class_idx;
    if (vt_page_push_remote(page, first, last, n)) {
        /* This push consumed the detach's mark: the page is ours to hand on, and nobody else
         * acts on it meanwhile (page.c). Its owner's word still names the cache that detached
         * it: a free may adopt the page only if no thread uses that cache now. */
        uintptr_t was = atomic_load_explicit(&page->owner, memory_order_relaxed);
        const vt_tcache_t *from = (const vt_tcache_t *)(was & ~VT_OWNER_DETACHED);
        bool gone = atomic_load_explicit(&from->in_use, memory_order_relaxed) == 0;
        atomic_store_explicit(&page->owner, VT_OWNER_GLOBAL, memory_order_relaxed);
        vt_global_put_partial(page, gone);
        parked = true;
    }
    if (parked)
        vt_global_note_remote(class_idx);
}

static void flush_chain(vt_remote_chain_t *chain)
{
    /* Relaxed: a non-zero word is the chain this thread built itself. */
    uintptr_t word = atomic_exchange_explicit(&chain->head, 0, memory_order_relaxed);
    if (word != 0)
        vt_remote_push(chain->page, (vt_block_t *)(word & VT_REMOTE_PTR_MASK), chain->last,
                       (uint32_t)(word >> VT_REMOTE_COUNT_SHIFT));
}

/* Pushes every chain the owner gathered. Owner only. */
void vt_remote_flush(vt_tcache_t *tc)
{
    if (tc->pending_chains == 0)
        return;
    for (unsigned i = 0; i < VT_REMOTE_SLOTS; i++)
        flush_chain(&tc->pending[i]);
    tc->pending_chains = 0;
}

/* Adds a block freed by the owner of `tc` into another thread's page to that page's chain. */
void vt_remote_gather(vt_tcache_t *tc, vt_page_t *page, vt_block_t *block)
{
    _Static_assert(VT_REMOTE_SLOTS == 8, "the slot is the hash's top 3 bits");
    uint64_t h = ((uintptr_t)page >> 6) * SLOT_HASH;
    vt_remote_chain_t *chain = &tc->pending[h >> 61];
    uintptr_t old = atomic_load_explicit(&chain->head, memory_order_relaxed);
    if (old != 0 && chain->page == page) {
        uintptr_t count = (old >> VT_REMOTE_COUNT_SHIFT) + 1;
        vt_block_set_next(block, (vt_block_t *)(old & VT_REMOTE_PTR_MASK));
        /* Release: whoever takes the chain sees the block's link and key. Fails only when
         * another thread took the chain meanwhile (vt_remote_take_chains): start a new one. */
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

/* Takes every chain of remote frees that another thread gathered and pushes it to its page.
 * Safe while the owner runs: the exchange takes a chain whole or finds the slot empty, and the
 * owner's compare-and-swap fails on a slot taken from under it. The chain's page and last
 * block are found from the blocks themselves (the owner's notes of them are its own); acquire
 * pairs with the owner's release, so the links are visible. */
void vt_remote_take_chains(vt_tcache_t *tc)
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
        vt_remote_push(vt_span_page(vt_span_base(first), first), first, last, count);
    }
}
