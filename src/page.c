/*
 * page.c - pages: assigning a run of units to a class, carving blocks, the free lists, and the
 * ownership protocol that lets any thread free any block without a global lock.
 *
 * Layer: 3 pages
 * Calls: report.c, sizeclass.c, sample.c
 *
 * Owns: the fields of vt_page_t, the page lists and the block secrets. The callers decide where
 * a page goes when it changes hands. Never locks, never maps.
 *
 * ---- The ownership protocol (the "dirty read" that VT did without a proof) --------------
 *
 * page->owner is one word, changed only by these transitions:
 *
 *   FREE      -> T        the thread of cache T assigns a fresh run to a class (vt_page_assign)
 *   GLOBAL    -> T        T adopts a page from the global cache, holding the global lock
 *   T         -> GLOBAL   T hands its attached pages to the global cache when its thread exits
 *   T         -> T|DET    T finds the page exhausted and detaches it (vt_page_try_detach)
 *   T|DET     -> T        T takes its detached page back (vt_page_try_reattach)
 *   T|DET     -> GLOBAL   the thread whose remote free woke the detached page hands it to the
 *                         global cache (remote.c, after vt_page_push_remote returns true)
 *   T         -> FREE     T finds the page empty and unassigns it (vt_page_unassign)
 *   FREE      -> LARGE    a thread makes a run it took a large block (vt_page_assign_large)
 *   LARGE     -> FREE     the block's free, by a compare-and-swap (vt_page_release_large)
 *
 * Claim: in free(), the relaxed load `page->owner == my cache` is true exactly when the caller
 * owns the page, so the non-atomic free list is only ever touched by its owner.
 * Proof: every transition *away* from the plain value T is made by T's own thread (detach,
 * exit, unassign); other threads only ever move the word away from GLOBAL (under the lock) or
 * from T|DET (after winning the handshake below). So while the word holds T, only T can change
 * it, and T reads its own latest write (C11 coherence: a thread never reads a value older than
 * its own last store to the same location). Conversely, the word can only *become* T by T's
 * own store, which T again sees. A stale value is therefore impossible for the one comparison
 * that matters; any other value sends the block down the remote path, which is correct for
 * every owner, because a remote free goes to the page itself, never to a thread. Nothing can
 * be misrouted: the worst a stale read of a foreign owner could do is choose the atomic path.
 * LARGE is never a cache, so a large block's free always takes the slow path, where the CAS
 * LARGE -> FREE lets exactly one of two racing frees of the block give its units back.
 *
 * Who decides where a detached page goes. The decision is taken on the remote word alone, by
 * the one atomic operation that consumes the detach's mark, never on a value of the owner word
 * loaded earlier (an earlier design CASed the owner from T|DET to GLOBAL; T|DET is the same
 * value at every detach of T, so a freer delayed from one detach could win against the next
 * one while T owned the page again: an ABA that tests/spin/ownership.pml found):
 *   detach by T:   store owner = T|DET (T's own frees now take the slow path); then CAS remote
 *                  0 -> T|FULL (release): the mark names the detaching cache. Failure means
 *                  remote frees arrived: T restores owner = T (nobody acts on T|DET without the
 *                  mark) and collects them.
 *   remote free:   push on remote (CAS, acq_rel). A push that finds a mark replaces it (the
 *                  mark is not a list) and makes the pusher the page's waker: it stores owner =
 *                  GLOBAL and puts the page on the global cache's partial list.
 *   reattach by T: CAS remote T|FULL -> 0 (acquire), then store owner = T. It fails once a
 *                  pusher consumed the mark; T then frees remotely like anyone else.
 * Each mark is consumed exactly once, by either T's reattach or one pusher, so a page is handed
 * on at most once per detach and is never both in T's bins and in the global cache. The
 * pusher's acquire pairs with the detach's release, so the page's fields are published to it,
 * and through the global lock to whoever adopts the page. tests/spin/ownership.pml checks this
 * protocol for lost blocks, blocks owned twice and blocks reused while still on a list.
 */
#include "internal.h"

vt_page_t vt_page_none = {.owner = VT_OWNER_FREE};

/* See internal.h: set once by init.c before the first block exists. */
uintptr_t vt_secret;
uintptr_t vt_link_secret;

/* Per class: pages assigned, and the mallocs and frees its pages have published. Changed on
 * slow paths with relaxed atomic adds (statistics only; nothing is ordered by them). */
_Atomic uint64_t vt_page_class_pages[VT_CLASS_COUNT];
_Atomic uint64_t vt_page_class_gets[VT_CLASS_COUNT];
_Atomic uint64_t vt_page_class_puts[VT_CLASS_COUNT];
_Atomic uint64_t vt_page_class_requested[VT_CLASS_COUNT];

/* Adds the page's own counts of mallocs and frees to its class's. The fast paths count with a
 * plain increment of a field on the owner's hot line; the owner publishes at the page's slow
 * events (refill, detach, unassign, thread exit), so a class's figures lag by what its pages'
 * owners did since. Owner only. */
void vt_page_publish(vt_page_t *page)
{
    /* The mallocs are not counted one by one: `used` went up by one for each, down by one for
     * each of the owner's frees (pushes) and each block other threads freed (collected). */
    uint64_t pops =
        (uint64_t)((int64_t)page->used - (int64_t)page->used_base) + page->pushes + page->collected;
    uint64_t requested = page->requested + (uint64_t)(page->sample_base - page->sample_left);
    if (pops != 0)
        atomic_fetch_add_explicit(&vt_page_class_gets[page->class_idx], pops, memory_order_relaxed);
    if (page->pushes != 0)
        atomic_fetch_add_explicit(&vt_page_class_puts[page->class_idx], page->pushes,
                                  memory_order_relaxed);
    if (requested != 0)
        atomic_fetch_add_explicit(&vt_page_class_requested[page->class_idx], requested,
                                  memory_order_relaxed);
    page->used_base = page->used;
    page->pushes = 0;
    page->collected = 0;
    page->requested = 0;
    page->sample_base = page->sample_left;
}

/* ---- Life cycle ------------------------------------------------------------------------- */

/* Describes a run of free units as a (not yet assigned) page. Global lock held. */
void vt_page_init(vt_span_t *span, unsigned first_unit, unsigned units)
{
    vt_page_t *page = vt_span_descriptor(span, first_unit);
    page->first_unit = (uint8_t)first_unit;
    page->units = (uint8_t)units;
    page->written = 0; /* span.c: vt_span_give_back_locked */
    page->link.prev = page->link.next = NULL;
    atomic_store_explicit(&page->purged, 0, memory_order_relaxed); /* a run back from global */
    atomic_store_explicit(&page->owner, VT_OWNER_FREE, memory_order_relaxed);
}

/* Gives the run to a class and an owner, as a page of `capacity` blocks. Caller owns the run
 * (took it from its stash or the global cache). The unit map is written last: from then on
 * free() can find the page, and only blocks handed out later can be freed into it. */
static void assign(vt_page_t *page, unsigned class_idx, uintptr_t owner, uint16_t capacity)
{
    const vt_class_info_t *info = &vt_classes[class_idx];
    page->free = NULL;
    page->used = page->used_base = page->collected = page->carved = 0;
    page->pushes = 0;
    /* A countdown left from the descriptor's last assignment goes on: the draw is memoryless,
     * so what remains of it is as good as a fresh one, and a page assigned again and again (a
     * program that allocates and frees one block of a size) does not pay for a draw each time.
     * A descriptor that never counted (0, from a fresh span) draws. */
    if (page->sample_left <= 0)
        page->sample_left = vt_sample_draw();
    page->sample_base = page->sample_left;
    page->requested = 0;
    page->bsize = info->bsize;
    page->capacity = capacity;
    page->class_idx = (uint8_t)class_idx;
    page->written = 1;
    atomic_store_explicit(&page->remote, 0, memory_order_relaxed);
    atomic_store_explicit(&page->owner, owner, memory_order_relaxed);
    atomic_fetch_add_explicit(&vt_page_class_pages[class_idx], 1, memory_order_relaxed);
    vt_span_set_units(vt_span_base(page), page->first_unit, page->units, page);
}

void vt_page_assign(vt_page_t *page, unsigned class_idx, uintptr_t owner)
{
    VT_ASSERT(page->units == vt_classes[class_idx].units);
    assign(page, class_idx, owner, vt_classes[class_idx].capacity);
}

/* A page of the class that holds `capacity` blocks, in any run long enough for them: the heap
 * profiler's pages, which hold one block in a run of whole units, or fewer blocks than the
 * class's own pages so that their records fit past the last (profpages.c). */
void vt_page_assign_short(vt_page_t *page, unsigned class_idx, uintptr_t owner, uint32_t capacity)
{
    VT_ASSERT(capacity > 0 && (size_t)capacity * vt_classes[class_idx].bsize <=
                                  ((size_t)page->units << VT_UNIT_SHIFT));
    assign(page, class_idx, owner, (uint16_t)capacity);
    atomic_store_explicit(&page->prof_record, 0, memory_order_relaxed);
}

/* Takes an empty page out of service: a later free of one of its old blocks finds
 * vt_page_none and is reported. Caller owns the page and used == 0. */
void vt_page_unassign(vt_page_t *page)
{
    VT_ASSERT(page->used == 0);
    VT_ASSERT((atomic_load_explicit(&page->remote, memory_order_relaxed) & VT_REMOTE_PTR_MASK) ==
              0);
    vt_page_publish(page);
    vt_span_set_units(vt_span_base(page), page->first_unit, page->units, &vt_page_none);
    atomic_store_explicit(&page->owner, VT_OWNER_FREE, memory_order_relaxed);
    page->free = NULL;
    atomic_fetch_sub_explicit(&vt_page_class_pages[page->class_idx], 1, memory_order_relaxed);
}

/* Makes a run the caller took (owner FREE) one large block. A correct program reaches the
 * page only through this block, which it has not seen yet (a stale pointer into the run that
 * finds the map still naming the page reads owner FREE until the owner is stored, and is
 * reported), and its synchronisation that passes the block on orders these stores before any
 * other thread's free. */
void vt_page_assign_large(vt_page_t *page)
{
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_FREE);
    page->free = NULL;
    page->used = page->carved = 1;
    page->pushes = 0;
    page->large_requested = 0;
    page->bsize = (uint32_t)page->units << VT_UNIT_SHIFT;
    page->capacity = 1;
    page->class_idx = VT_CLASS_LARGE;
    page->written = 1;
    atomic_store_explicit(&page->remote, 0, memory_order_relaxed);
    atomic_store_explicit(&page->owner, VT_OWNER_LARGE, memory_order_relaxed);
    /* A run that was this descriptor's large block before it was stashed still names it in the
     * unit map (vt_page_release_large): a program that frees and allocates one such block in a
     * loop does not rewrite the map twice a turn. */
    vt_span_t *span = vt_span_base(page);
    if (atomic_load_explicit(&span->unit_page[page->first_unit], memory_order_relaxed) != page)
        vt_span_set_units(span, page->first_unit, page->units, page);
}

/* Ends a large block: false when another free got there first (a double free). Relaxed: the
 * winner gives the units back under the global lock, which publishes everything after it. The
 * unit map keeps naming the page, now FREE, which every reader takes for free units: the run
 * goes to the thread's stash, where its next block of that length takes it with the map as it
 * is (vt_page_assign_large), or to its span, which points the map at vt_page_none again. */
bool vt_page_release_large(vt_page_t *page)
{
    uintptr_t expected = VT_OWNER_LARGE;
    if (vt_sole_thread()) { /* no other free can race this one (lock.h) */
        if (atomic_load_explicit(&page->owner, memory_order_relaxed) != VT_OWNER_LARGE)
            return false;
        atomic_store_explicit(&page->owner, VT_OWNER_FREE, memory_order_relaxed);
    } else if (!atomic_compare_exchange_strong_explicit(&page->owner, &expected, VT_OWNER_FREE,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed)) {
        return false;
    }
    page->used = 0;
    return true;
}

/* ---- Refill ----------------------------------------------------------------------------- */

/* The remote frees of a page whose free blocks were partly purged in the global cache
 * (pagepurge.c): a block in purged memory was free already, a double free that the free path's
 * hint missed: reported, and left out of the list and the count. Owner only. */
static uint32_t collect_checked(vt_page_t *page, uint32_t purged, vt_block_t *b, uint32_t count)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < count; i++) {
        vt_block_t *next = vt_block_next(b);
        if (vt_unlikely(vt_page_block_purged(page, purged, b))) {
            vt_report_misuse("free", "double free (block is already free)", b);
        } else {
            vt_block_set_next(b, page->free);
            page->free = b;
            kept++;
        }
        if (vt_unlikely(i + 1 < count && !vt_page_link_in_page(page, next))) {
            vt_report_corrupt_list(b); /* warn mode: the rest is dropped (leaked) */
            break;
        }
        b = next;
    }
    page->used -= kept;
    page->collected += kept;
    return kept;
}

/* Moves the blocks other threads freed onto `free`. Owner only. Returns how many. The cheap
 * relaxed peek saves a locked exchange when nothing arrived; acquire on the exchange pairs with
 * the pushers' release, so the blocks' links are visible. The count comes with the list,
 * so when `free` is empty (the refill path) nothing is walked. */
uint32_t vt_page_collect_remote(vt_page_t *page)
{
    if (atomic_load_explicit(&page->remote, memory_order_relaxed) == 0)
        return 0;
    uintptr_t word = atomic_exchange_explicit(&page->remote, 0, memory_order_acquire);
    VT_ASSERT((word & VT_REMOTE_FULL) == 0); /* an owned, attached page never carries FULL */
    vt_block_t *first = (vt_block_t *)(word & VT_REMOTE_PTR_MASK);
    uint32_t count = (uint32_t)(word >> VT_REMOTE_COUNT_SHIFT);
    if (first == NULL)
        return 0;
    uint32_t purged = atomic_load_explicit(&page->purged, memory_order_relaxed); /* owner's */
    if (vt_unlikely(purged != 0))
        return collect_checked(page, purged, first, count);
    if (page->free != NULL) { /* splice in front of what is there: walk to the tail */
        vt_block_t *last = first;
        for (uint32_t i = 1; i < count; i++) {
            vt_block_t *next = vt_block_next(last);
            if (vt_unlikely(!vt_page_link_in_page(page, next))) {
                vt_report_corrupt_list(last); /* warn mode: the list is dropped (leaked) */
                return 0;
            }
            last = next;
        }
        vt_block_set_next(last, page->free);
    }
    page->free = first;
    VT_ASSERT(count > 0 && page->used >= count);
    page->used -= count;
    page->collected += count;
    return count;
}

/* Carves the next few blocks of a fresh page, about VT_CARVE_BYTES at a time, so memory is
 * touched (and made resident) only as it is needed. */
static void page_carve(vt_page_t *page)
{
    uint32_t left = page->capacity - page->carved;
    uint32_t step = VT_CARVE_BYTES / page->bsize;
    if (step == 0)
        step = 1;
    uint32_t n = left < step ? left : step;
    uint8_t *first = vt_page_area(page) + (size_t)page->carved * page->bsize;
    uint8_t *p = first;
    for (uint32_t i = 1; i < n; i++, p += page->bsize)
        vt_block_set_next((vt_block_t *)p, (vt_block_t *)(p + page->bsize));
    vt_block_set_next((vt_block_t *)p, page->free);
    page->free = (vt_block_t *)first;
    page->carved += n;
}

/* Gives `free` blocks again: first the blocks other threads freed, then fresh ones. Owner
 * only. False when the page is exhausted. */
bool vt_page_refill(vt_page_t *page)
{
    VT_ASSERT(page->free == NULL);
    vt_page_publish(page);
    if (vt_page_collect_remote(page) > 0)
        return true;
    if (page->carved < page->capacity) {
        page_carve(page);
        return true;
    }
    return false;
}

/* vt_page_refill for a page that takes no remote frees (a page of the heap profiler's shards,
 * whose remote word is closed: profpages.h): fresh blocks only. */
bool vt_page_refill_fresh(vt_page_t *page)
{
    VT_ASSERT(page->free == NULL);
    vt_page_publish(page);
    if (page->carved < page->capacity) {
        page_carve(page);
        return true;
    }
    return false;
}

/* ---- Detach, reattach, remote free (see the protocol above) -------------------------------- */

bool vt_page_try_detach(vt_page_t *page, vt_tcache_t *tc)
{
    VT_ASSERT(page->free == NULL && page->carved == page->capacity);
    uintptr_t self = (uintptr_t)tc;
    VT_ASSERT((self & ~VT_REMOTE_PTR_MASK) == 0); /* 64-byte aligned, below 2^48: a mark */
    atomic_store_explicit(&page->owner, self | VT_OWNER_DETACHED, memory_order_relaxed);
    uintptr_t expected = 0;
    /* Release: the pusher that consumes the mark must see the page's fields as T left them. */
    if (atomic_compare_exchange_strong_explicit(&page->remote, &expected, self | VT_REMOTE_FULL,
                                                memory_order_release, memory_order_relaxed))
        return true;
    /* Remote frees arrived. Nobody consumed a mark, so nobody acted on T|DET: plain restore. */
    atomic_store_explicit(&page->owner, self, memory_order_relaxed);
    return false;
}

bool vt_page_try_reattach(vt_page_t *page, vt_tcache_t *tc)
{
    uintptr_t mark = (uintptr_t)tc | VT_REMOTE_FULL;
    if (!atomic_compare_exchange_strong_explicit(&page->remote, &mark, 0, memory_order_acquire,
                                                 memory_order_relaxed))
        return false; /* a remote free consumed the mark: the page is on its way to global */
    atomic_store_explicit(&page->owner, (uintptr_t)tc, memory_order_relaxed);
    return true;
}

/* Pushes a chain of `count` blocks (first .. last, linked as free lists are) on the page's remote
 * list; any thread, lock-free, one CAS for the whole chain. Returns true when this push
 * consumed a detach's mark: the caller then owns the hand-off and must give the page to the
 * global cache (it is the only thread that may). Release publishes the blocks' links and keys
 * to the collector; acquire (when a mark is consumed) pairs with the detach. */
bool vt_page_push_remote(vt_page_t *page, vt_block_t *first, vt_block_t *last, uint32_t count)
{
    VT_ASSERT(((uintptr_t)first & ~VT_REMOTE_PTR_MASK) == 0 && count > 0);
    uintptr_t old = atomic_load_explicit(&page->remote, memory_order_relaxed);
    uintptr_t word;
    do {
        bool marked = (old & VT_REMOTE_FULL) != 0; /* a mark, not a list: start one */
        vt_block_set_next(last, marked ? NULL : (vt_block_t *)(old & VT_REMOTE_PTR_MASK));
        uintptr_t total = (marked ? 0 : old >> VT_REMOTE_COUNT_SHIFT) + count;
        word = (total << VT_REMOTE_COUNT_SHIFT) | (uintptr_t)first;
    } while (!atomic_compare_exchange_weak_explicit(&page->remote, &old, word, memory_order_acq_rel,
                                                    memory_order_relaxed));
    return (old & VT_REMOTE_FULL) != 0;
}

/* How many blocks wait on the page's remote list (0 while it carries a detach's mark). Its
 * owner, or the global lock's holder for a page of the global cache. Relaxed: a count that
 * equals `used` is then collected with the acquire of vt_page_collect_remote. */
uint32_t vt_page_remote_count(const vt_page_t *page)
{
    uintptr_t word = atomic_load_explicit(&page->remote, memory_order_relaxed);
    return (word & VT_REMOTE_FULL) != 0 ? 0 : (uint32_t)(word >> VT_REMOTE_COUNT_SHIFT);
}

/* ---- Validity --------------------------------------------------------------------------- */

/* True when `next` may follow a block of the page on one of its lists: the end of the list, or
 * a block start inside the page. The full check of the slow paths (vt_block_link_ok is the
 * fast path's). */
bool vt_page_link_in_page(const vt_page_t *page, const vt_block_t *next)
{
    return next == NULL || (vt_block_link_ok(next) && vt_page_is_block_start(page, next));
}

/* True when p is the start of one of the page's blocks. A division, but for sizes that are
 * powers of two (15 of the 48 classes, and every page of the heap profiler's, whose frees
 * all come here): slow paths and debug. */
bool vt_page_is_block_start(const vt_page_t *page, const void *p)
{
    uintptr_t area = (uintptr_t)vt_page_area(page);
    uintptr_t offset = (uintptr_t)p - area, bsize = page->bsize;
    if ((uintptr_t)p < area || offset >= (uintptr_t)page->capacity * bsize)
        return false;
    return (bsize & (bsize - 1)) == 0 ? (offset & (bsize - 1)) == 0 : offset % bsize == 0;
}

/* The checks of a block about to be freed or reallocated through a slow path. Returns true
 * when the block may be used; otherwise reports the misuse (and returns false only in warn
 * mode, where the caller leaves the block alone). */
bool vt_page_check_block(vt_page_t *page, void *p, const char *fn)
{
    if (vt_unlikely(page == &vt_page_none || vt_page_owner(page) == VT_OWNER_FREE)) {
        /* A mapped block that was unmapped, or units given back, look alike: a pointer that
         * was never ours, or a block freed before. */
        vt_report_misuse(fn,
                         fn[0] == 'f' ? "invalid or double free (not a live vtmalloc block)"
                                      : "invalid pointer (not a live vtmalloc block)",
                         p);
        return false;
    }
    if (vt_unlikely(!vt_page_is_block_start(page, p))) {
        vt_report_misuse(fn, "invalid pointer (inside a block, not at its start)", p);
        return false;
    }
    /* A block in purged memory (pagepurge.c) lost its key, and was free already. */
    uint32_t purged = atomic_load_explicit(&page->purged, memory_order_relaxed);
    vt_block_t *b = p;
    if (vt_unlikely((purged != 0 && vt_page_block_purged(page, purged, p)) ||
                    b->key == vt_block_key(b))) {
        vt_report_misuse(fn, "double free (block is already free)", p);
        return false;
    }
    return true;
}
