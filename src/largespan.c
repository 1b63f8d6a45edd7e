/*
 * largespan.c - large blocks up to VT_LARGE_SPAN_MAX (1 MiB) as runs of units in spans, taken
 * from the global cache like a page's and given back to it on free, where their units wait,
 * resident, for the next block or page of any size, and are purged on the pages' schedule.
 *
 * Layer: 7 large blocks
 * Calls: os.c, report.c, retain.c, page.c, span.c, global.c
 *
 * Owns: the counters of these blocks. Why runs of units up to 1 MiB: a server that builds
 * replies of a few hundred KiB would otherwise pay mmap, munmap and the page faults of fresh
 * memory for each (glibc serves such blocks from its heap once its mmap threshold has risen).
 * A thread's own frees of such blocks go to its stash (alloc.c), where its next block of that
 * length takes the run without a lock.
 */
#include "internal.h"

/* Large blocks in spans, for statistics: relaxed atomics, changed by whoever allocates, frees
 * or resizes one (nothing is ordered by them). */
static _Atomic uint64_t span_blocks, span_bytes, span_allocs, span_requested;

/* Makes a free run (taken by the caller, not yet in the unit map) a large block of `size`
 * bytes. `stale`: its units may hold old bytes (a run from a thread's stash always may). */
void *vt_large_start_in_span(vt_page_t *page, size_t size, bool zero, bool stale)
{
    vt_page_assign_large(page);
    page->large_requested = size;
    atomic_fetch_add_explicit(&span_requested, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&span_blocks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&span_bytes, page->bsize, memory_order_relaxed);
    atomic_fetch_add_explicit(&span_allocs, 1, memory_order_relaxed);
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
    return vt_large_start_in_span(page, size, zero, page->stale);
}

/* free() (or realloc's free) of a large block in a span: the page is VT_OWNER_LARGE, or was
 * when the caller looked. Returns the run, free now, for the caller to keep or give back
 * (vt_span_put_run); NULL after reporting a misuse. */
vt_page_t *vt_large_free_in_span(vt_page_t *page, void *p, const char *fn)
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
    atomic_fetch_sub_explicit(&span_requested, requested, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_blocks, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_bytes, bytes, memory_order_relaxed);
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
    atomic_fetch_add_explicit(&span_requested, size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_requested, page->large_requested, memory_order_relaxed);
    page->large_requested = size;
    if (page->bsize > before)
        atomic_fetch_add_explicit(&span_bytes, page->bsize - before, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&span_bytes, before - page->bsize, memory_order_relaxed);
    return true;
}

/* The statistics of large blocks in spans (added to large.c's). */
void vt_largespan_stats(vt_stats_t *st)
{
    st->bytes_requested_live += atomic_load_explicit(&span_requested, memory_order_relaxed);
    st->large_blocks += atomic_load_explicit(&span_blocks, memory_order_relaxed);
    st->large_bytes += atomic_load_explicit(&span_bytes, memory_order_relaxed);
    st->large_allocs_total += atomic_load_explicit(&span_allocs, memory_order_relaxed);
}
