/*
 * pagepurge.c - giving back to the OS the free blocks of pages that no thread owns, and taking
 * them back when a thread adopts such a page.
 *
 * Layer: 4 returning pages' memory
 * Calls: os.c, report.c, page.c
 *
 * Owns: how a page's free memory is purged and restored (global.c decides which pages, and
 * when). A page that a thread left with blocks in use waits on the global cache's partial list
 * for a thread of its class; in a server whose long-lived structures (a cache, a log, a
 * session table) keep a few blocks of each of many classes, such pages can wait for good, and
 * their free blocks are resident memory that no other class can use: measured on the soak
 * benchmark, 16 MiB of the peak were free blocks in pages that each held a few live ones.
 *
 * A page is cut into at most 16 granules of at least an OS page (64 KiB pages: 4 KiB ones). A
 * granule that only free blocks overlap is purged; those blocks leave the free list, since
 * their links are gone with the memory, and the page's `purged` word names the granules. They
 * are free and on no list, and `used` does not count them, so a page whose last live block is
 * freed is still seen as empty. When a thread adopts the page, the blocks are put back on the
 * free list (their granules are faulted in as they are written), first checking the blocks
 * freed meanwhile: one in purged memory was free already (a double free).
 *
 * The caller owns the page for both calls: it took it off the partial list, so no thread can
 * adopt it, and nobody else touches its owner-only fields; other threads' frees go to
 * `remote`, which is collected here first.
 */
#include "internal.h"

/* A page holds at most this many blocks (the 16-byte class in a unit). */
#define MAX_BLOCKS   (VT_UNIT_SIZE / VT_MIN_ALIGN)
#define MAX_GRANULES 16

_Static_assert(MAX_GRANULES <= VT_PURGED_MASK + 1 && (VT_PURGED_MASK >> (MAX_GRANULES - 1)) == 1,
               "the purged word has a bit per granule");

/* The shift of the page's granules: a sixteenth of the page, and not less than an OS page. */
static unsigned granule_shift(const vt_page_t *page)
{
    size_t bytes = (size_t)page->units << VT_UNIT_SHIFT;
    size_t granule = vt_os_page_size();
    while (granule * MAX_GRANULES < bytes)
        granule <<= 1;
    return (unsigned)__builtin_ctzll(granule);
}

/* The blocks that overlap granule g: [*first, *last]; false when none does (the page's tail
 * past its last block, never written). */
static bool granule_blocks(const vt_page_t *page, unsigned shift, unsigned g, uint32_t *first,
                           uint32_t *last)
{
    size_t start = (size_t)g << shift, end = ((size_t)(g + 1) << shift) - 1;
    *first = (uint32_t)(start / page->bsize);
    if (*first >= page->capacity)
        return false;
    uint32_t l = (uint32_t)(end / page->bsize);
    *last = l < page->capacity ? l : page->capacity - 1;
    return true;
}

static void set_bit(uint64_t *map, uint32_t i)
{
    map[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool bit(const uint64_t *map, uint32_t i)
{
    return (map[i / 64] >> (i % 64)) & 1;
}

/* Marks in `free` every free block of the page: those on its list, those not carved yet, and
 * those in granules purged before. False when the list is damaged (reported). */
static bool mark_free(const vt_page_t *page, uint32_t purged, uint64_t *free)
{
    uint8_t *area = vt_page_area(page);
    uint32_t seen = 0;
    for (vt_block_t *b = page->free; b != NULL; b = vt_block_next(b)) {
        if (vt_unlikely(!vt_page_link_in_page(page, b) || ++seen > page->capacity)) {
            vt_report_corrupt_list(b);
            return false;
        }
        set_bit(free, (uint32_t)(((uint8_t *)b - area) / page->bsize));
    }
    for (uint32_t i = page->carved; i < page->capacity; i++)
        set_bit(free, i);
    unsigned shift = purged >> VT_PURGED_SHIFT_BIT;
    for (uint32_t m = purged & VT_PURGED_MASK; m != 0; m &= m - 1) {
        uint32_t first, last;
        if (granule_blocks(page, shift, (unsigned)__builtin_ctz(m), &first, &last))
            for (uint32_t i = first; i <= last; i++)
                set_bit(free, i);
    }
    return true;
}

/* madvise for each run of granules in `m`; returns those whose memory went (a failure, on
 * locked memory, leaves the blocks resident and on the list). */
static uint32_t purge_granules(const vt_page_t *page, unsigned shift, uint32_t m)
{
    uint32_t done = 0;
    while (m != 0) {
        unsigned first = (unsigned)__builtin_ctz(m);
        unsigned len = (unsigned)__builtin_ctz(~(m >> first));
        uint32_t run = ((len >= 32 ? 0 : (uint32_t)1 << len) - 1) << first;
        m &= ~run;
        if (vt_os_purge(vt_page_area(page) + ((size_t)first << shift), (size_t)len << shift))
            done |= run;
    }
    return done;
}

/* Purges the granules of the page that only free blocks overlap; returns the bytes given back.
 * The caller owns the page (see above), whose owner is the global cache. */
size_t vt_pagepurge_page(vt_page_t *page)
{
    vt_page_collect_remote(page);
    if (page->used == 0 || page->capacity > MAX_BLOCKS)
        return 0; /* an empty page goes back to its span whole */
    uint32_t purged = atomic_load_explicit(&page->purged, memory_order_relaxed);
    unsigned shift = purged != 0 ? purged >> VT_PURGED_SHIFT_BIT : granule_shift(page);
    unsigned granules = (unsigned)(((size_t)page->units << VT_UNIT_SHIFT) >> shift);
    uint64_t free[MAX_BLOCKS / 64] = {0};
    if (!mark_free(page, purged, free))
        return 0;
    uint32_t wanted = 0;
    for (unsigned g = 0; g < granules; g++) {
        uint32_t first, last, i;
        if ((purged >> g) & 1 || !granule_blocks(page, shift, g, &first, &last))
            continue;
        for (i = first; i <= last && bit(free, i); i++)
            ;
        if (i > last)
            wanted |= (uint32_t)1 << g;
    }
    uint32_t done = purge_granules(page, shift, wanted);
    if (done == 0)
        return 0;
    purged |= done | (uint32_t)shift << VT_PURGED_SHIFT_BIT;
    /* The list again, of the free blocks that no purged granule overlaps, in address order. */
    uint8_t *area = vt_page_area(page);
    vt_block_t *head = NULL;
    for (uint32_t i = page->carved; i-- > 0;) {
        vt_block_t *b = (vt_block_t *)(area + (size_t)i * page->bsize);
        if (!bit(free, i) || vt_page_block_purged(page, purged, b))
            continue;
        b->key = vt_block_key(b);
        vt_block_set_next(b, head);
        head = b;
    }
    page->free = head;
    /* Relaxed: other threads read it only as a hint (page.c: vt_page_check_block); the thread
     * that adopts the page next is ordered after this by the global lock. */
    atomic_store_explicit(&page->purged, purged, memory_order_relaxed);
    return (size_t)__builtin_popcount(done) << shift;
}

/* Puts a page's purged blocks back on its free list, before a thread adopts it: the blocks
 * others freed first, checked against the purged granules (page.c: collect_checked), then every
 * carved block that a purged granule overlaps, which were all free and on no list. The caller
 * owns the page (see above). */
void vt_pagepurge_restore(vt_page_t *page)
{
    uint32_t purged = atomic_load_explicit(&page->purged, memory_order_relaxed);
    if (vt_likely(purged == 0))
        return;
    vt_page_collect_remote(page);
    uint8_t *area = vt_page_area(page);
    for (uint32_t i = page->carved; i-- > 0;) {
        vt_block_t *b = (vt_block_t *)(area + (size_t)i * page->bsize);
        if (!vt_page_block_purged(page, purged, b))
            continue;
        b->key = vt_block_key(b);
        vt_block_set_next(b, page->free);
        page->free = b;
    }
    atomic_store_explicit(&page->purged, 0, memory_order_relaxed);
}
