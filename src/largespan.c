/*
 * largespan.c - large blocks up to VT_LARGE_SPAN_MAX (960 KiB) as runs of units in spans, taken
 * from the global cache like a page's and given back to it on free, where their units wait,
 * resident, for the next block or page of any size, and are purged on the pages' schedule.
 *
 * Layer: 7 large blocks
 * Calls: os.c, report.c, retain.c, page.c, span.c, global.c
 *
 * Owns: the counters of these blocks. Why runs of units up to 960 KiB: a server that builds
 * replies of a few hundred KiB would otherwise pay mmap, munmap and the page faults of fresh
 * memory for each (glibc serves such blocks from its heap once its mmap threshold has risen).
 * A thread's own frees of such blocks go to its stash (alloc.c), where its next block of that
 * length takes the run without a lock.
 */
#include "internal.h"

/* Large blocks in spans, for statistics, counted where the thread has no cache of its own to
 * count them in (the counters of vt_tcache_counters_t): relaxed atomics, nothing is ordered by
 * them. A thread with a cache counts in its own counters with plain stores: the lock-prefixed
 * adds cost more than the rest of a malloc+free of such a block from the thread's stash. */
static vt_tcache_counters_t shared;

/* Adds to a counter of `mine` (owner only) or, without one, of `shared`. */
static void count(vt_tcache_counters_t *mine, size_t offset, uint64_t amount)
{
    if (mine != NULL)
        vt_count_add((_Atomic uint64_t *)((char *)mine + offset), amount);
    else
        atomic_fetch_add_explicit((_Atomic uint64_t *)((char *)&shared + offset), amount,
                                  memory_order_relaxed);
}

#define BLOCKS    offsetof(vt_tcache_counters_t, large_blocks)
#define BYTES     offsetof(vt_tcache_counters_t, large_bytes)
#define ALLOCS    offsetof(vt_tcache_counters_t, large_allocs)
#define REQUESTED offsetof(vt_tcache_counters_t, large_requested)

/* Makes a free run (taken by the caller, owner FREE) a large block of `size`
 * bytes. `stale`: its units may hold old bytes (a run from a thread's stash always may).
 * `mine`: the calling thread's counters, or NULL. */
void *vt_large_start_in_span(vt_page_t *page, size_t size, bool zero, bool stale,
                             vt_tcache_counters_t *mine)
{
    vt_page_assign_large(page);
    page->large_requested = size;
    count(mine, REQUESTED, size);
    count(mine, BLOCKS, 1);
    count(mine, BYTES, page->bsize);
    count(mine, ALLOCS, 1);
    vt_block_t *p = (vt_block_t *)vt_page_area(page);
    /* Units that may hold old bytes may hold a free block's key too, which must not pass for
     * a double free; fresh or purged ones are zero, and are not touched here (a block the
     * program never writes stays out of RSS). */
    if (stale && zero)
        memset(p, 0, size);
    else if (stale)
        p->key = 0;
    return p;
}

/* A large block as a run of units: the global cache takes the run (mapping a span if none
 * has room). A run all of whose units are fresh or purged is zero already. */
void *vt_largespan_alloc(size_t size, size_t alignment, bool zero)
{
    unsigned units = (unsigned)((size + VT_UNIT_SIZE - 1) >> VT_UNIT_SHIFT);
    unsigned align = alignment > VT_UNIT_SIZE ? (unsigned)(alignment >> VT_UNIT_SHIFT) : 1;
    vt_page_t *page = vt_global_take_run(units, align, VT_CLASS_LARGE);
    if (page == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return vt_large_start_in_span(page, size, zero, page->stale, NULL);
}

/* free() (or realloc's free) of a large block in a span: the page is VT_OWNER_LARGE, or was
 * when the caller looked. Returns the run, free now, for the caller to keep or give back
 * (vt_span_put_run); NULL after reporting a misuse. */
vt_page_t *vt_large_free_in_span(vt_page_t *page, void *p, const char *fn,
                                 vt_tcache_counters_t *mine)
{
    if (vt_unlikely((uint8_t *)p != vt_page_area(page))) {
        vt_report_misuse(fn, "invalid pointer (inside a block, not at its start)", p);
        return NULL;
    }
    size_t bytes = page->bsize, requested = page->large_requested;
    if (vt_unlikely(!vt_page_release_large(page))) {
        vt_report_misuse(fn, "double free (block is already free)", p);
        return NULL;
    }
    count(mine, REQUESTED, -(uint64_t)requested);
    count(mine, BLOCKS, -(uint64_t)1);
    count(mine, BYTES, -(uint64_t)bytes);
    return page;
}

/* Resizes a large block's run in place: shrinking gives the tail units back, growing takes the
 * units that follow when they are free. False when they are not (the caller moves the block).
 * The caller is the block's user, so nobody else changes its units meanwhile; the spans' fields
 * change under the global lock (span.c). */
static bool resize_run(vt_page_t *page, unsigned units)
{
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_LARGE);
    VT_ASSERT(units >= 1 && units <= VT_LARGE_SPAN_UNITS);
    vt_span_t *span = vt_span_base(page);
    unsigned first = page->first_unit, have = page->units;
    if (units == have)
        return true;
    bool done = false;
    vt_span_lock_for(VT_CLASS_LARGE);
    if (units < have) {
        uint64_t tail = (((uint64_t)1 << (have - units)) - 1) << (first + units);
        vt_span_set_units(span, first + units, have - units, &vt_page_none);
        span->free_units |= tail;
        span->unpurgeable &= ~tail;
        vt_span_set_dirty(span, span->dirty_units | tail);
        uint32_t now = vt_os_now_ms();
        for (unsigned u = first + units; u < first + have; u++)
            span->freed_ms[u] = now;
        done = true;
    } else if (first + units <= VT_SPAN_UNITS) {
        uint64_t more = (((uint64_t)1 << (units - have)) - 1) << (first + have);
        if ((span->free_units & more) == more) {
            span->free_units &= ~more;
            vt_span_set_dirty(span, span->dirty_units & ~more);
            vt_span_set_units(span, first + have, units - have, page);
            done = true;
        }
    }
    if (done) {
        vt_retain_demand_changed((int32_t)units - (int32_t)have, vt_os_now_ms());
        page->units = (uint8_t)units;
        page->bsize = (uint32_t)units << VT_UNIT_SHIFT;
        vt_span_relist(span);
    }
    vt_span_unlock();
    return done;
}

/* realloc of a large block in a span to another size in the same range: in place when its
 * run can shrink or the units after it are free. False: the caller moves it. */
bool vt_large_resize_in_span(vt_page_t *page, size_t size)
{
    VT_ASSERT(size > VT_SMALL_MAX && size <= VT_LARGE_SPAN_MAX);
    unsigned units = (unsigned)((size + VT_UNIT_SIZE - 1) >> VT_UNIT_SHIFT);
    size_t before = page->bsize;
    if (!resize_run(page, units))
        return false;
    count(NULL, REQUESTED, (uint64_t)size - page->large_requested);
    page->large_requested = size;
    count(NULL, BYTES, (uint64_t)page->bsize - before);
    return true;
}

/* The counters of threads without a cache, for the statistics (cachepool.c sums them with
 * every thread's). */
const vt_tcache_counters_t *vt_largespan_counters(void)
{
    return &shared;
}
