/*
 * span.c - spans and their units: mapping and unmapping spans, the index of spans by their
 * longest run of free units, taking runs out of spans and giving them back, and the lock that
 * protects all of it (the global lock).
 *
 * Layer: 4 spans
 * Calls: os.c, report.c, options.c, retain.c, spanmap.c, page.c
 *
 * Owns: the span headers' free_units, dirty_units, unpurgeable, freed_ms, lists and on_list
 * fields; the global lock and its counters. Every critical section is short and makes no
 * system call: a new span is mapped with the lock dropped, and spans leave the lists under
 * the lock but are unmapped after it is released.
 *
 * No zippy growth: nothing here is per class. A page that empties returns its units to its
 * span, where any class (or a large block) can take them, and a span all of whose units are
 * free can go back to the OS whole (spanpurge.c decides when).
 */
#include "internal.h"

/* Spans are listed under their longest run of free units; 0: on no list (no free unit, or
 * taken out of the lists while their units are purged). */
#define NOT_LISTED 0

/* The spans. Every field is protected by `lock`, except the atomics, which are read without
 * it. */
static struct spans {
    vt_lock_t lock;
    /* Spans with free units, by the length of their longest run of free units (1..63): the
     * index that finds a span for a run without looking at every span. by_run[VT_EMPTY_RUN]
     * holds the spans all of whose units are free. Bit r of run_mask: by_run[r] not empty. */
    vt_list_t by_run[VT_SPAN_UNITS];
    uint64_t run_mask;
    uint64_t total, maps, unmaps;
    uint64_t lock_total, lock_waits;
    uint64_t class_locks[VT_CLASS_COUNT + 1], class_waits[VT_CLASS_COUNT + 1]; /* +1: no class */
    /* Free units that may still be resident (the spans' dirty_units together), and the most
     * the dirty budget allows (VTMALLOC_DIRTY_PCT of the units of the spans held). Written
     * under the lock, read without it by the purge schedule: a stale value only moves an
     * early purge by one call. */
    _Atomic uint32_t dirty_count, dirty_budget;
} s = {.lock = VT_LOCK_INIT};

/* ---- The global lock -------------------------------------------------------------------- */

/* Takes the lock on behalf of a class (VT_CLASS_COUNT: of none), counting the per-class lock
 * figures that zippy's statistics show: acquisitions, and how many had to wait. */
void vt_span_lock_for(unsigned class_idx)
{
    if (!vt_mutex_trylock(&s.lock)) {
        vt_mutex_lock(&s.lock);
        s.lock_waits++;
        s.class_waits[class_idx]++;
    }
    s.lock_total++;
    s.class_locks[class_idx]++;
}

void vt_span_lock(void)
{
    vt_span_lock_for(VT_CLASS_COUNT);
}

void vt_span_unlock(void)
{
    vt_mutex_unlock(&s.lock);
}

/* ---- Dirty units ------------------------------------------------------------------------ */

/* Changes a span's map of dirty units, keeping the total in step. Lock held. */
void vt_span_set_dirty(vt_span_t *span, uint64_t dirty)
{
    uint32_t count = atomic_load_explicit(&s.dirty_count, memory_order_relaxed);
    count += (uint32_t)__builtin_popcountll(dirty);
    count -= (uint32_t)__builtin_popcountll(span->dirty_units);
    atomic_store_explicit(&s.dirty_count, count, memory_order_relaxed);
    span->dirty_units = dirty;
}

/* The dirty budget follows the spans held, with a floor so that a small process does not
 * purge at every free. Lock held. */
static void spans_changed(void)
{
    uint64_t budget = s.total * (VT_SPAN_UNITS - 1) * vt_options.dirty_pct / 100;
    if (budget < VT_DIRTY_MIN_UNITS)
        budget = VT_DIRTY_MIN_UNITS;
    atomic_store_explicit(&s.dirty_budget, (uint32_t)budget, memory_order_relaxed);
}

/* Relaxed: see struct spans. */
uint32_t vt_span_dirty_count(void)
{
    return atomic_load_explicit(&s.dirty_count, memory_order_relaxed);
}

uint32_t vt_span_dirty_budget(void)
{
    return atomic_load_explicit(&s.dirty_budget, memory_order_relaxed);
}

/* ---- The index -------------------------------------------------------------------------- */

/* The units where a run of n free units starts. Each step doubles the run length the mask
 * guarantees, so this is a handful of shifts, not a scan. */
static uint64_t run_starts(uint64_t free_units, unsigned n)
{
    uint64_t m = free_units;
    for (unsigned len = 1; len < n && m != 0;) {
        unsigned step = len < n - len ? len : n - len;
        m &= m >> step;
        len += step;
    }
    return m;
}

/* The length of the longest run of set bits: a binary search over the length, each probe
 * a handful of shifts (run_starts), so about 30 simple steps whatever the pattern. A step per
 * run took 32 for a span whose units alternate (blocks aligned to two units), and that was
 * a fifth of the time of a program allocating such blocks; a step per bit of the longest run
 * took up to 63 for an empty span. */
static unsigned longest_run(uint64_t m)
{
    if (m == 0)
        return 0;
    unsigned lo = 1, hi = 64; /* a run of lo exists; none longer than hi */
    while (lo < hi) {
        unsigned mid = (lo + hi + 1) / 2;
        if (run_starts(m, mid) != 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void by_run_remove(vt_span_t *span)
{
    unsigned r = span->on_list;
    vt_list_remove(&s.by_run[r], span, VT_SPAN_LINK);
    if (s.by_run[r].head == NULL)
        s.run_mask &= ~((uint64_t)1 << r);
    span->on_list = NOT_LISTED;
}

/* Puts a span under the longest run of its free units, after they changed. An empty span
 * stays mapped, whatever it holds: whether it goes back is the retention policy's decision at
 * the next pass (spanpurge.c), not the moment it happens to empty. Lock held. */
void vt_span_relist(vt_span_t *span)
{
    unsigned want = longest_run(span->free_units);
    if (want == span->on_list)
        return;
    if (span->on_list != NOT_LISTED)
        by_run_remove(span);
    if (want != NOT_LISTED) {
        vt_list_push_front(&s.by_run[want], span, VT_SPAN_LINK);
        s.run_mask |= (uint64_t)1 << want;
        span->on_list = (uint8_t)want;
    }
}

/* The first span listed under a longest run of `run` units (VT_EMPTY_RUN: the empty spans),
 * for walks under the lock that follow span->link.next. */
vt_span_t *vt_span_listed(unsigned run)
{
    return s.by_run[run].head;
}

/* ---- Mapping and unmapping -------------------------------------------------------------- */

/* Takes an empty span out of the lists and chains it on *release (through next), for the
 * caller to unmap with vt_span_release once the lock is dropped. Lock held. */
void vt_span_leave_locked(vt_span_t *span, vt_span_t **release)
{
    VT_ASSERT(span->on_list == VT_EMPTY_RUN && span->free_units == VT_SPAN_FREE_UNITS);
    by_run_remove(span);
    s.total--;
    s.unmaps++;
    vt_span_set_dirty(span, 0);
    spans_changed();
    span->link.next = *release;
    *release = span;
}

/* Unmaps spans collected by vt_span_leave_locked. Lock not held. */
void vt_span_release(vt_span_t *list)
{
    while (list != NULL) {
        vt_span_t *next = list->link.next;
        vt_spanmap_remove(list);
        vt_os_backing_free(list->base, list->map_size, (vt_backing_t)list->backing);
        list = next;
    }
}

/* A span from the backing, its header written, registered in the span map. Lock not held. */
vt_span_t *vt_span_map(void)
{
    vt_backing_t backing = (vt_backing_t)vt_options.backing;
    void *base = vt_os_backing_alloc(VT_SPAN_SIZE, VT_SPAN_SIZE, backing);
    if (base == NULL)
        return NULL;
    if ((uintptr_t)base >> VT_ADDRESS_BITS) {
        /* Only with 57-bit address spaces and a hint asking for high addresses: the span map
         * and the remote lists assume 48 bits. Treated as memory exhaustion. */
        vt_os_backing_free(base, VT_SPAN_SIZE, backing);
        errno = ENOMEM;
        return NULL;
    }
    vt_span_t *span = base;
    VT_ASSERT(((uintptr_t)span & VT_SPAN_MASK) == 0);
    /* A fresh mapping is zero already: writing the descriptors would make all of the header's
     * pages resident, where a span whose pages are few and far apart needs some of them. */
    if (backing != VT_BACKING_MMAP)
        memset(span, 0, sizeof(*span));
    span->magic = VT_SPAN_MAGIC;
    span->base = base;
    span->map_size = VT_SPAN_SIZE;
    span->backing = (uint8_t)backing;
    span->free_units = VT_SPAN_FREE_UNITS;
    vt_span_set_units(span, 0, VT_SPAN_UNITS, &vt_page_none);
    if (!vt_spanmap_add(span)) {
        vt_os_backing_free(base, VT_SPAN_SIZE, backing);
        errno = ENOMEM;
        return NULL;
    }
    return span;
}

/* Adds a freshly mapped span to the lists. Lock held. */
void vt_span_add_locked(vt_span_t *span)
{
    s.total++;
    s.maps++;
    spans_changed();
    span->on_list = NOT_LISTED;
    vt_span_relist(span);
}

uint64_t vt_span_count_locked(void)
{
    return s.total;
}

/* ---- Runs of units ---------------------------------------------------------------------- */

/* The units where a run aligned to `align` units (a power of two up to half a span) may start:
 * the span is span-aligned, so a unit index that is a multiple of align gives an address
 * aligned to align units. */
static uint64_t aligned_starts(unsigned align)
{
    uint64_t m = 0;
    for (unsigned u = 0; u < VT_SPAN_UNITS; u += align)
        m |= (uint64_t)1 << u;
    return m;
}

/* How many spans an aligned run looks at before a new span is mapped for it. */
#define ALIGNED_LOOKS 64

/* How many spans a run looks at for one whose run is resident. */
#define RESIDENT_LOOKS 8

/* Where a run goes, through the index: a bit scan, and a short look. Short runs (the pages of
 * every class) take a span whose longest free run is the shortest that fits, so they fill
 * holes instead of cutting up the free stretches the long ones need, fewer spans are mapped,
 * and a span whose blocks all leave can go back whole; but among the first few in that order,
 * one whose run is still resident. Taking the first span's fresh or purged unit while resident
 * ones lay idle in others grew the resident set past the demand, and the purge pass then gave
 * back units the load took again: in the soak benchmark (6 runs each way) this look brought the
 * page faults from a median of 313 to 273 per million operations. Long runs (large blocks) take
 * a span with the longest free run, preferring, among the first few with room, one whose run
 * is still resident (no page faults). Lock held. */
static vt_span_t *best_span_locked(unsigned units, unsigned align)
{
    uint64_t fits = s.run_mask & ~(((uint64_t)1 << units) - 1);
    if (fits == 0)
        return NULL;
    if (align > 1) {
        /* A free run of units + align - 1 holds an aligned run of units: the span with the
         * shortest such run, as for short runs. Else a look at the fullest spans. */
        unsigned sure = units + align - 1;
        uint64_t certain = sure < VT_SPAN_UNITS ? fits & ~(((uint64_t)1 << sure) - 1) : 0;
        if (certain != 0)
            return s.by_run[__builtin_ctzll(certain)].head;
        uint64_t starts = aligned_starts(align);
        unsigned looks = 0;
        for (uint64_t m = fits; m != 0 && looks < ALIGNED_LOOKS; m &= m - 1)
            for (vt_span_t *span = s.by_run[__builtin_ctzll(m)].head;
                 span != NULL && looks < ALIGNED_LOOKS; span = span->link.next, looks++)
                if (run_starts(span->free_units, units) & starts)
                    return span;
        return NULL;
    }
    unsigned looks = 0;
    if (units <= VT_SHORT_RUN_UNITS) {
        for (uint64_t m = fits; m != 0 && looks < RESIDENT_LOOKS; m &= m - 1)
            for (vt_span_t *span = s.by_run[__builtin_ctzll(m)].head;
                 span != NULL && looks < RESIDENT_LOOKS; span = span->link.next, looks++)
                if (run_starts(span->free_units & span->dirty_units, units) != 0)
                    return span;
        return s.by_run[__builtin_ctzll(fits)].head;
    }
    for (uint64_t m = fits; m != 0 && looks < RESIDENT_LOOKS;) {
        unsigned r = 63u - (unsigned)__builtin_clzll(m);
        m &= ~((uint64_t)1 << r);
        for (vt_span_t *span = s.by_run[r].head; span != NULL && looks < RESIDENT_LOOKS;
             span = span->link.next, looks++)
            if (run_starts(span->free_units & span->dirty_units, units) != 0)
                return span;
    }
    return s.by_run[63u - (unsigned)__builtin_clzll(fits)].head;
}

/* Debug builds: the units of a run taken from the free map name no page (types.h: vt_span_t),
 * so a large block's run that came back from a stash had its map reset. */
static bool run_unmapped(vt_span_t *span, unsigned first, unsigned units)
{
    for (unsigned u = first; u < first + units; u++)
        if (atomic_load_explicit(&span->unit_page[u], memory_order_relaxed) != &vt_page_none)
            return false;
    return true;
}

/* A run of `units` free units of the span, described as a page, or NULL. Runs whose units are
 * all still resident come first: reusing them costs no page faults and no new RSS, while
 * purged units stay out of memory until nothing else fits. Lock held. */
vt_page_t *vt_span_take_from_locked(vt_span_t *span, unsigned units, unsigned align)
{
    uint64_t starts = align > 1 ? aligned_starts(align) : ~(uint64_t)0;
    uint64_t m = run_starts(span->free_units & span->dirty_units, units) & starts;
    if (m == 0)
        m = run_starts(span->free_units, units) & starts;
    if (m == 0)
        return NULL;
    int first = __builtin_ctzll(m);
    uint64_t bits = (((uint64_t)1 << units) - 1) << first;
    vt_page_t *page = vt_span_descriptor(span, (unsigned)first);
    VT_ASSERT(run_unmapped(span, (unsigned)first, units));
    span->free_units &= ~bits;
    vt_page_init(span, (unsigned)first, units);
    page->stale = (span->dirty_units & bits) != 0 || span->backing != VT_BACKING_MMAP;
    uint32_t clean = span->backing == VT_BACKING_MMAP
                         ? (uint32_t)__builtin_popcountll(bits & ~span->dirty_units)
                         : 0;
    vt_span_set_dirty(span, span->dirty_units & ~bits); /* the page's now, resident or not */
    vt_span_relist(span);
    uint32_t now = vt_os_now_ms();
    vt_retain_demand_changed((int32_t)units, now);
    if (vt_unlikely(clean != 0)) /* the kernel faults these in: maybe old ones go back */
        vt_retain_clean_taken(clean, vt_span_dirty_count(), now);
    return page;
}

/* Takes up to `max_count` runs of `units` units, each from the best span at the time. Lock
 * held. */
uint32_t vt_span_take_locked(unsigned units, unsigned align, vt_page_t **out, uint32_t max_count)
{
    uint32_t n = 0;
    vt_span_t *span;
    while (n < max_count && (span = best_span_locked(units, align)) != NULL) {
        vt_page_t *page = vt_span_take_from_locked(span, units, align);
        VT_ASSERT(page != NULL); /* the index promised a run */
        if (page == NULL)
            break;
        out[n++] = page;
    }
    return n;
}

/* Returns an empty run to its span, as freed at freed_ms (for the purge schedule). Lock held. */
void vt_span_give_back_locked(vt_page_t *page, uint32_t freed_ms)
{
    vt_span_t *span = vt_span_base(page);
    VT_ASSERT(span->magic == VT_SPAN_MAGIC);
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_FREE);
    uint64_t bits = (((uint64_t)1 << page->units) - 1) << page->first_unit;
    VT_ASSERT((span->free_units & bits) == 0);
    /* A large block's run still names its descriptor (vt_page_release_large). */
    vt_span_set_units(span, page->first_unit, page->units, &vt_page_none);
    span->free_units |= bits;
    /* A run that came clean (fresh, or purged) and was never assigned, such as the unused part
     * of a thread's batch, is clean still: marked resident, it would be chosen before units
     * that are, and faulted in. */
    if (page->written || page->stale) {
        span->unpurgeable &= ~bits; /* new bytes: worth another try */
        vt_span_set_dirty(span, span->dirty_units | bits);
        for (uint64_t m = bits; m != 0; m &= m - 1)
            span->freed_ms[__builtin_ctzll(m)] = freed_ms;
    }
    vt_span_relist(span);
    uint32_t now = vt_os_now_ms();
    /* Freed a quiet time (VTMALLOC_PURGE_MS) ago or more: a page of an exited thread that
     * emptied before a quiet spell, or one that lay unused (global.c: vt_global_put_pages),
     * not part of any recent demand, nor a sign that the process is busy (retain.c). */
    if ((uint32_t)(now - freed_ms) >= vt_options.purge_ms)
        vt_retain_demand_idle(page->units, now);
    else
        vt_retain_demand_changed(-(int32_t)page->units, now);
}

void vt_span_put_run(vt_page_t *page)
{
    vt_span_lock_for(page->class_idx);
    vt_span_give_back_locked(page, vt_os_now_ms());
    vt_span_unlock();
}

/* ---- Statistics and fork ---------------------------------------------------------------- */

/* The spans' part of the statistics, and the lock figures. Lock held. */
void vt_span_stats_locked(vt_stats_t *st)
{
    st->spans_mapped = s.total;
    st->span_bytes = s.total * VT_SPAN_SIZE;
    st->spans_reserved = s.by_run[VT_EMPTY_RUN].count;
    st->span_maps_total = s.maps;
    st->span_unmaps_total = s.unmaps;
    st->global_lock_total = s.lock_total;
    st->global_lock_waits = s.lock_waits;
    st->bytes_reserve = (uint64_t)s.by_run[VT_EMPTY_RUN].count * VT_SPAN_SIZE;
    st->bytes_free_resident =
        (uint64_t)atomic_load_explicit(&s.dirty_count, memory_order_relaxed) * VT_UNIT_SIZE;
    for (unsigned r = VT_EMPTY_RUN; r >= 1; r--)
        for (vt_span_t *span = s.by_run[r].head; span != NULL; span = span->link.next)
            st->bytes_free_units += (uint64_t)__builtin_popcountll(span->free_units) * VT_UNIT_SIZE;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        st->classes[k].lock_acquisitions = s.class_locks[k];
        st->classes[k].lock_waits = s.class_waits[k];
    }
}

void vt_span_fork_prepare(void)
{
    vt_lock_take(&s.lock);
}

void vt_span_fork_parent(void)
{
    vt_lock_give(&s.lock);
}

/* The child's only thread is the copy of the one that took the lock in fork_prepare, so it
 * may release it (re-initialising a held mutex instead confuses ThreadSanitizer). */
void vt_span_fork_child(void)
{
    vt_lock_give(&s.lock);
}
