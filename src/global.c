/*
 * global.c - the global cache behind the one mutex: pages nobody owns, spans and their free
 * units, the reserve of empty spans, and the pool of thread caches.
 *
 * Owns: struct global and everything reachable from it; the span headers' free_units, lists
 * and on_list fields. Calls: page.c (describing runs), spanmap.c, os.c, stats.c.
 *
 * Rules: every critical section is short and makes no system call. A new span is mapped with
 * the lock dropped, and spans beyond the reserve are unmapped after it is released. Threads
 * come here only on slow paths: when a class has no page with free blocks, when an empty page
 * leaves a thread's stash, when a thread starts or exits.
 *
 * No zippy growth (review point h): nothing here is per class except the list of partial pages.
 * A page that empties returns its units to its span, where any class can take them; a span all
 * of whose units are free joins the reserve or goes back to the OS.
 */
#include "internal.h"

#define FREE_UNITS (~(uint64_t)1)      /* every unit but 0, the header */
#define EMPTY_RUN  (VT_SPAN_UNITS - 1) /* the longest run of an empty span */

/* Spans are listed under their longest run of free units; 0: on no list (no free unit, or
 * taken out of the lists). */
#define NOT_LISTED 0

/* A list of spans, linked through vt_span_t.prev/next. */
typedef struct span_list {
    vt_span_t *head;
    uint32_t count;
} span_list_t;

/* A list of thread caches, linked through vt_tcache_t.pool_prev/pool_next. */
typedef struct cache_list {
    vt_tcache_t *head, *tail;
} cache_list_t;

/* The global cache. Every field is protected by `lock`, except the counters marked atomic,
 * which are read without it. */
static struct global {
    pthread_mutex_t lock;
    vt_page_list_t partial[VT_CLASS_COUNT]; /* pages owned by nobody (VT_OWNER_GLOBAL) */
    /* Spans with free units, by the length of their longest run of free units (1..63): the
     * index that finds a span for a run without looking at every span. by_run[EMPTY_RUN]
     * holds the spans all of whose units are free. Bit r of run_mask: by_run[r] not empty. */
    span_list_t by_run[VT_SPAN_UNITS];
    uint64_t run_mask;
    cache_list_t live;             /* thread caches in use, oldest visit first */
    cache_list_t pool;             /* thread caches waiting for a thread */
    uint8_t *meta_next, *meta_end; /* where the next thread cache is carved */
    /* Hint for vt_global_take_partial: bit c set iff partial[c] is not empty. Written under
     * the lock, read without it; a stale bit only costs a lock or skips a page until the
     * next refill, both harmless. */
    _Atomic uint64_t partial_mask;
    uint64_t spans_total, span_maps, span_unmaps;
    uint64_t caches_live, caches_total, pages_abandoned;
    uint64_t lock_total, lock_waits;
    uint64_t class_locks[VT_CLASS_COUNT + 1], class_waits[VT_CLASS_COUNT + 1]; /* +1: no class */
    uint64_t purged_bytes, purges;
    _Atomic uint64_t shared_puts[VT_CLASS_COUNT]; /* frees by threads without a cache */
    vt_tcache_counters_t exited;                  /* counters of caches handed back */
    /* When the next purge pass is due (vt_os_now_ms). Read and advanced without the lock by
     * compare-and-swap, so that one thread, not all, does a due pass. */
    _Atomic uint32_t next_purge_ms;
    uint32_t last_pass_ms; /* when the last purge pass collected the partial lists */
    /* Free units that may still be resident (the spans' dirty_units together), and the most
     * the dirty budget allows (VTMALLOC_DIRTY_PCT of the units of the spans held). Written
     * under the lock, read without it by vt_global_maybe_purge: a stale value only moves an
     * early purge by one call. */
    _Atomic uint32_t dirty_count, dirty_budget;
    _Atomic bool purging_excess;      /* one thread at a time purges above the budget */
    _Atomic uint64_t caches_started;  /* caches_total, for reading without the lock */
    _Atomic uint64_t caches_live_now; /* caches_live, likewise */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

_Static_assert(VT_CLASS_COUNT <= 64, "partial_mask has a bit per class");

/* Takes the lock on behalf of a class (VT_CLASS_COUNT: of none), counting zippy's per-bucket
 * lock figures: acquisitions, and how many had to wait. */
static void lock_for(unsigned class_idx)
{
    if (!vt_mutex_trylock(&g.lock)) {
        vt_mutex_lock(&g.lock);
        g.lock_waits++;
        g.class_waits[class_idx]++;
    }
    g.lock_total++;
    g.class_locks[class_idx]++;
}

static void lock(void)
{
    lock_for(VT_CLASS_COUNT);
}

static void unlock(void)
{
    vt_mutex_unlock(&g.lock);
}

/* Changes a span's map of dirty units, keeping the total in step. Lock held. */
static void dirty_set(vt_span_t *span, uint64_t dirty)
{
    uint32_t count = atomic_load_explicit(&g.dirty_count, memory_order_relaxed);
    count += (uint32_t)__builtin_popcountll(dirty);
    count -= (uint32_t)__builtin_popcountll(span->dirty_units);
    atomic_store_explicit(&g.dirty_count, count, memory_order_relaxed);
    span->dirty_units = dirty;
}

/* The dirty budget follows the spans held, with a floor so that a small process does not
 * purge at every free. Lock held. */
static void spans_changed(void)
{
    uint64_t budget = g.spans_total * (VT_SPAN_UNITS - 1) * vt_options.dirty_pct / 100;
    if (budget < VT_DIRTY_MIN_UNITS)
        budget = VT_DIRTY_MIN_UNITS;
    atomic_store_explicit(&g.dirty_budget, (uint32_t)budget, memory_order_relaxed);
}

/* ---- Span lists ------------------------------------------------------------------------- */

static void span_list_push(span_list_t *list, vt_span_t *span)
{
    span->prev = NULL;
    span->next = list->head;
    if (list->head)
        list->head->prev = span;
    list->head = span;
    list->count++;
}

static void span_list_remove(span_list_t *list, vt_span_t *span)
{
    if (span->prev)
        span->prev->next = span->next;
    else
        list->head = span->next;
    if (span->next)
        span->next->prev = span->prev;
    span->prev = span->next = NULL;
    list->count--;
}

/* The length of the longest run of set bits: each step shortens every run by one. */
static unsigned longest_run(uint64_t m)
{
    unsigned len = 0;
    for (; m != 0; len++)
        m &= m >> 1;
    return len;
}

static void by_run_remove(vt_span_t *span)
{
    unsigned r = span->on_list;
    span_list_remove(&g.by_run[r], span);
    if (g.by_run[r].head == NULL)
        g.run_mask &= ~((uint64_t)1 << r);
    span->on_list = NOT_LISTED;
}

/* Puts a span under the longest run of its free units, after they changed. An empty span
 * stays mapped, whatever it holds: whether it goes back is the retention policy's decision at
 * the next pass (unmap_empty_spans), not the moment it happens to empty. Lock held. */
static void span_relist(vt_span_t *span)
{
    unsigned want = longest_run(span->free_units);
    if (want == span->on_list)
        return;
    if (span->on_list != NOT_LISTED)
        by_run_remove(span);
    if (want != NOT_LISTED) {
        span_list_push(&g.by_run[want], span);
        g.run_mask |= (uint64_t)1 << want;
        span->on_list = (uint8_t)want;
    }
}

/* Takes an empty span out of the lists and chains it on *release (through next), for the
 * caller to unmap once the lock is dropped. Lock held. */
static void span_leave_locked(vt_span_t *span, vt_span_t **release)
{
    VT_ASSERT(span->on_list == EMPTY_RUN && span->free_units == FREE_UNITS);
    by_run_remove(span);
    g.spans_total--;
    g.span_unmaps++;
    dirty_set(span, 0);
    span->next = *release;
    *release = span;
}

/* Unmaps spans collected by span_relist. Lock not held. */
static void release_spans(vt_span_t *list)
{
    while (list != NULL) {
        vt_span_t *next = list->next;
        vt_spanmap_remove(list);
        vt_os_backing_free(list->base, list->map_size, (vt_backing_t)list->backing);
        list = next;
    }
}

/* A span from the backing, its header written, registered in the span map. Lock not held. */
static vt_span_t *span_map_new(void)
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
    memset(span, 0, sizeof(*span));
    span->magic = VT_SPAN_MAGIC;
    span->base = base;
    span->map_size = VT_SPAN_SIZE;
    span->backing = (uint8_t)backing;
    span->free_units = FREE_UNITS;
    for (unsigned u = 0; u < VT_SPAN_UNITS; u++) {
        atomic_store_explicit(&span->unit_page[u], &vt_page_none, memory_order_relaxed);
        span->pages[u].first_unit = (uint8_t)u;
    }
    if (!vt_spanmap_add(span)) {
        vt_os_backing_free(base, VT_SPAN_SIZE, backing);
        errno = ENOMEM;
        return NULL;
    }
    return span;
}

/* Adds a freshly mapped span to the lists. Lock held. */
static void span_add(vt_span_t *span)
{
    g.spans_total++;
    g.span_maps++;
    spans_changed();
    span->on_list = NOT_LISTED;
    span_relist(span);
}

/* ---- Units ------------------------------------------------------------------------------ */

/* The first run of n free units in a span's map, or -1. Each step doubles the run length the
 * mask guarantees, so this is a handful of shifts, not a scan. */
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

static int find_run(uint64_t free_units, unsigned n)
{
    uint64_t m = run_starts(free_units, n);
    return m ? __builtin_ctzll(m) : -1;
}

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

/* How many spans a long run looks at for one whose run is resident. */
#define RESIDENT_LOOKS 8

/* Where a run goes, through the index: a bit scan, and a short look for long runs. Short runs
 * (pages of small blocks) take a span whose longest free run is the shortest that fits, so
 * they fill holes instead of cutting up the free stretches the long ones need, fewer spans
 * are mapped, and a span whose blocks all leave can go back whole. Long runs (pages of the
 * biggest classes, large blocks) take a span with the longest free run, preferring, among the
 * first few with room, one whose run is still resident (no page faults). Lock held. */
static vt_span_t *best_span_locked(unsigned units, unsigned align)
{
    uint64_t fits = g.run_mask & ~(((uint64_t)1 << units) - 1);
    if (fits == 0)
        return NULL;
    if (align > 1) {
        /* A free run of units + align - 1 holds an aligned run of units: the span with the
         * shortest such run, as for short runs. Else a look at the fullest spans. */
        unsigned sure = units + align - 1;
        uint64_t certain = sure < VT_SPAN_UNITS ? fits & ~(((uint64_t)1 << sure) - 1) : 0;
        if (certain != 0)
            return g.by_run[__builtin_ctzll(certain)].head;
        uint64_t starts = aligned_starts(align);
        unsigned looks = 0;
        for (uint64_t m = fits; m != 0 && looks < ALIGNED_LOOKS; m &= m - 1)
            for (vt_span_t *span = g.by_run[__builtin_ctzll(m)].head;
                 span != NULL && looks < ALIGNED_LOOKS; span = span->next, looks++)
                if (run_starts(span->free_units, units) & starts)
                    return span;
        return NULL;
    }
    if (units <= VT_SHORT_RUN_UNITS)
        return g.by_run[__builtin_ctzll(fits)].head;
    unsigned looks = 0;
    for (uint64_t m = fits; m != 0 && looks < RESIDENT_LOOKS;) {
        unsigned r = 63u - (unsigned)__builtin_clzll(m);
        m &= ~((uint64_t)1 << r);
        for (vt_span_t *span = g.by_run[r].head; span != NULL && looks < RESIDENT_LOOKS;
             span = span->next, looks++)
            if (find_run(span->free_units & span->dirty_units, units) >= 0)
                return span;
    }
    return g.by_run[63u - (unsigned)__builtin_clzll(fits)].head;
}

/* A run of `units` free units of the span, described as a page, or NULL. Runs whose units are
 * all still resident come first: reusing them costs no page faults and no new RSS, while
 * purged units stay out of memory until nothing else fits. Lock held. */
static vt_page_t *take_from_span_locked(vt_span_t *span, unsigned units, unsigned align)
{
    uint64_t starts = align > 1 ? aligned_starts(align) : ~(uint64_t)0;
    uint64_t m = run_starts(span->free_units & span->dirty_units, units) & starts;
    if (m == 0)
        m = run_starts(span->free_units, units) & starts;
    if (m == 0)
        return NULL;
    int first = __builtin_ctzll(m);
    uint64_t bits = (((uint64_t)1 << units) - 1) << first;
    vt_page_t *page = &span->pages[first];
    span->free_units &= ~bits;
    vt_page_init(span, (unsigned)first, units);
    page->stale = (span->dirty_units & bits) != 0 || span->backing != VT_BACKING_MMAP;
    dirty_set(span, span->dirty_units & ~bits); /* in use: resident or not, it is the page's */
    span_relist(span);
    vt_retain_demand_changed((int32_t)units, vt_os_now_ms());
    return page;
}

/* Takes up to `max_count` runs of `units` units, each from the best span at the time. Lock
 * held. */
static uint32_t take_locked(unsigned units, unsigned align, vt_page_t **out, uint32_t max_count)
{
    uint32_t n = 0;
    vt_span_t *span;
    while (n < max_count && (span = best_span_locked(units, align)) != NULL) {
        vt_page_t *page = take_from_span_locked(span, units, align);
        VT_ASSERT(page != NULL); /* the index promised a run */
        if (page == NULL)
            break;
        out[n++] = page;
    }
    return n;
}

static void give_back_locked(vt_page_t *page, uint32_t freed_ms);
static size_t purge(uint32_t age_ms, uint32_t budget);
static void put_partial_locked(vt_page_t *page);

/* Pages of exited threads wait on the partial lists for a thread of their class; when every
 * block of one has been freed meanwhile (remotely), its units are returned to the span, where
 * any class can use them. Run before mapping a new span, by the purge schedule and by trim.
 * Lock held; touching the pages' owner-only fields is allowed because their owner is the
 * global cache. The units count as freed at the previous purge pass: the page emptied at some
 * time since (else that pass would have collected it), so a process that went quiet gets them
 * purged at its next pass instead of one purge delay later. Returns how many pages were
 * freed. */
static uint32_t collect_partial_locked(void)
{
    uint32_t freed = 0;
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = g.partial[c].head;
        while (page != NULL) {
            vt_page_t *next = page->next;
            vt_page_collect_remote(page);
            if (page->used == 0) {
                vt_list_remove(&g.partial[c], page);
                vt_page_unassign(page);
                give_back_locked(page, g.last_pass_ms);
                freed++;
            }
            page = next;
        }
        if (g.partial[c].head == NULL)
            atomic_store_explicit(&g.partial_mask,
                                  atomic_load_explicit(&g.partial_mask, memory_order_relaxed) &
                                      ~((uint64_t)1 << c),
                                  memory_order_relaxed);
    }
    return freed;
}

/* Free runs of `units` units starting at a multiple of `align` units, for a thread's pages or
 * a large block: from the spans' free units, else from emptied global pages, else from a new
 * span (mapped with the lock dropped). */
static uint32_t take_runs(unsigned units, unsigned align, vt_page_t **out, uint32_t max_count,
                          unsigned class_idx)
{
    lock_for(class_idx);
    uint32_t n = take_locked(units, align, out, max_count);
    if (n == 0 && collect_partial_locked() > 0)
        n = take_locked(units, align, out, max_count);
    unlock();
    if (n > 0)
        return n;
    vt_span_t *span = span_map_new();
    if (span == NULL && vt_global_release_reserves())
        span = span_map_new(); /* the address space or memory kept for reuse made room */
    if (span == NULL)
        return 0;
    lock_for(class_idx);
    span_add(span);
    n = take_locked(units, align, out, max_count); /* older spans first; the new one if none */
    if (n == 0) { /* an aligned run whose search stopped before the new span: take it there */
        vt_page_t *page = take_from_span_locked(span, units, align);
        if (page != NULL)
            out[n++] = page;
    }
    unlock();
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

/* Returns an empty run to its span, as freed at freed_ms (for the purge schedule). Lock held. */
static void give_back_locked(vt_page_t *page, uint32_t freed_ms)
{
    vt_span_t *span = (vt_span_t *)((uintptr_t)page & ~(uintptr_t)VT_SPAN_MASK);
    VT_ASSERT(span->magic == VT_SPAN_MAGIC);
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_FREE);
    uint64_t bits = (((uint64_t)1 << page->units) - 1) << page->first_unit;
    VT_ASSERT((span->free_units & bits) == 0);
    span->free_units |= bits;
    span->unpurgeable &= ~bits; /* new bytes: worth another try */
    dirty_set(span, span->dirty_units | bits);
    for (uint64_t m = bits; m != 0; m &= m - 1)
        span->freed_ms[__builtin_ctzll(m)] = freed_ms;
    span_relist(span);
    uint32_t now = vt_os_now_ms();
    vt_retain_demand_changed(-(int32_t)page->units, now);
    /* Freed longer ago than the window (a page of an exited thread that emptied before a
     * quiet spell): not part of any recent demand. */
    if ((uint32_t)(now - freed_ms) >= vt_options.purge_ms)
        vt_retain_demand_forgotten(page->units, now);
}

void vt_global_put_run(vt_page_t *page)
{
    lock_for(page->class_idx);
    give_back_locked(page, vt_os_now_ms());
    unlock();
    vt_global_maybe_purge();
}

/* Resizes a large block's run in place: shrinking gives the tail units back, growing takes the
 * units that follow when they are free. False when they are not (the caller moves the block).
 * The caller is the block's user, so nobody else changes its units meanwhile. */
bool vt_global_resize_large(vt_page_t *page, unsigned units)
{
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_LARGE);
    VT_ASSERT(units >= 1 && units <= VT_LARGE_SPAN_UNITS);
    vt_span_t *span = (vt_span_t *)((uintptr_t)page & ~(uintptr_t)VT_SPAN_MASK);
    unsigned first = page->first_unit, have = page->units;
    if (units == have)
        return true;
    bool done = false;
    lock_for(VT_CLASS_LARGE);
    if (units < have) {
        uint64_t tail = (((uint64_t)1 << (have - units)) - 1) << (first + units);
        for (unsigned u = first + units; u < first + have; u++)
            atomic_store_explicit(&span->unit_page[u], &vt_page_none, memory_order_relaxed);
        span->free_units |= tail;
        span->unpurgeable &= ~tail;
        dirty_set(span, span->dirty_units | tail);
        uint32_t now = vt_os_now_ms();
        for (unsigned u = first + units; u < first + have; u++)
            span->freed_ms[u] = now;
        done = true;
    } else if (first + units <= VT_SPAN_UNITS) {
        uint64_t more = (((uint64_t)1 << (units - have)) - 1) << (first + have);
        if ((span->free_units & more) == more) {
            span->free_units &= ~more;
            dirty_set(span, span->dirty_units & ~more);
            for (unsigned u = first + have; u < first + units; u++)
                atomic_store_explicit(&span->unit_page[u], page, memory_order_relaxed);
            done = true;
        }
    }
    if (done) {
        vt_retain_demand_changed((int32_t)units - (int32_t)have, vt_os_now_ms());
        page->units = (uint8_t)units;
        page->bsize = (uint32_t)units << VT_UNIT_SHIFT;
        span_relist(span);
    }
    unlock();
    return done;
}

/* ---- Partial pages ---------------------------------------------------------------------- */

static void put_partial_locked(vt_page_t *page)
{
    VT_ASSERT(vt_page_owner(page) == VT_OWNER_GLOBAL);
    unsigned c = page->class_idx;
    vt_list_push_back(&g.partial[c], page);
    atomic_store_explicit(&g.partial_mask,
                          atomic_load_explicit(&g.partial_mask, memory_order_relaxed) |
                              ((uint64_t)1 << c),
                          memory_order_relaxed);
}

vt_page_t *vt_global_take_partial(unsigned class_idx)
{
    uint64_t bit = (uint64_t)1 << class_idx;
    if ((atomic_load_explicit(&g.partial_mask, memory_order_relaxed) & bit) == 0)
        return NULL; /* the common case costs no lock */
    lock_for(class_idx);
    vt_page_t *page = g.partial[class_idx].head;
    if (page != NULL)
        vt_list_remove(&g.partial[class_idx], page);
    if (g.partial[class_idx].head == NULL)
        atomic_store_explicit(&g.partial_mask,
                              atomic_load_explicit(&g.partial_mask, memory_order_relaxed) & ~bit,
                              memory_order_relaxed);
    unlock();
    return page;
}

void vt_global_put_partial(vt_page_t *page)
{
    lock_for(page->class_idx);
    put_partial_locked(page);
    unlock();
}

void vt_global_put_pages(vt_page_list_t *partial, vt_page_list_t *empty, bool idle)
{
    lock();
    if (partial != NULL) {
        vt_page_t *page;
        while ((page = partial->head) != NULL) {
            vt_list_remove(partial, page);
            put_partial_locked(page);
            g.pages_abandoned++;
        }
    }
    if (empty != NULL) {
        vt_page_t *page;
        while ((page = empty->head) != NULL) {
            vt_list_remove(empty, page);
            uint32_t now = vt_os_now_ms();
            give_back_locked(page, now);
            if (idle)
                vt_retain_demand_forgotten(page->units, now);
        }
    }
    unlock();
    vt_global_maybe_purge();
}

/* ---- Thread caches ---------------------------------------------------------------------- */

#define META_CHUNK ((size_t)64 << 10)

static void cache_list_append(cache_list_t *list, vt_tcache_t *tc)
{
    tc->pool_next = NULL;
    tc->pool_prev = list->tail;
    if (list->tail)
        list->tail->pool_next = tc;
    else
        list->head = tc;
    list->tail = tc;
}

static void cache_list_remove(cache_list_t *list, vt_tcache_t *tc)
{
    if (tc->pool_prev)
        tc->pool_prev->pool_next = tc->pool_next;
    else
        list->head = tc->pool_next;
    if (tc->pool_next)
        tc->pool_next->pool_prev = tc->pool_prev;
    else
        list->tail = tc->pool_prev;
    tc->pool_prev = tc->pool_next = NULL;
}

/* A cache for a starting thread: a pooled one (its pages were handed back when its thread
 * exited), else a new one carved from metadata memory. Caches are never unmapped: a page may
 * still name a pooled cache as its detached owner, and that name must never be reused by
 * anything but another cache. */
vt_tcache_t *vt_global_tcache_get(void)
{
    int32_t tid = vt_os_thread_id();
    lock();
    for (;;) {
        vt_tcache_t *tc = g.pool.head;
        if (tc != NULL) {
            cache_list_remove(&g.pool, tc);
        } else if (g.meta_end - g.meta_next >= (ptrdiff_t)sizeof(vt_tcache_t)) {
            tc = (vt_tcache_t *)g.meta_next;
            g.meta_next += (sizeof(vt_tcache_t) + 63) & ~(size_t)63;
            for (unsigned c = 0; c <= VT_CLASS_COUNT; c++)
                tc->alloc_page[c] = &vt_page_none;
        }
        if (tc != NULL) {
            tc->state = VT_TCACHE_LIVE;
            tc->tid = tid;
            cache_list_append(&g.live, tc);
            g.caches_live++;
            atomic_store_explicit(&g.caches_live_now, g.caches_live, memory_order_relaxed);
            g.caches_total++;
            atomic_store_explicit(&g.caches_started, g.caches_total, memory_order_relaxed);
            unlock();
            vt_global_maybe_purge(); /* a new thread is activity: a due purge runs now */
            return tc;
        }
        unlock();
        uint8_t *chunk = vt_os_map(META_CHUNK, 64);
        if (chunk == NULL)
            return NULL;
        lock();
        /* Another thread may have added a chunk meanwhile; the old remainder is small. */
        g.meta_next = chunk;
        g.meta_end = chunk + META_CHUNK;
    }
}

/* Adds a cache's counters to `into` and zeroes them. Lock held, the cache's thread gone. */
static void counters_move(vt_tcache_counters_t *into, vt_tcache_counters_t *from)
{
    _Atomic uint64_t *dst = (_Atomic uint64_t *)into, *src = (_Atomic uint64_t *)from;
    for (size_t i = 0; i < sizeof(*from) / sizeof(uint64_t); i++) {
        uint64_t v = atomic_load_explicit(&src[i], memory_order_relaxed);
        atomic_fetch_add_explicit(&dst[i], v, memory_order_relaxed);
        atomic_store_explicit(&src[i], 0, memory_order_relaxed);
    }
}

void vt_global_count_shared_put(unsigned class_idx)
{
    atomic_fetch_add_explicit(&g.shared_puts[class_idx], 1, memory_order_relaxed);
}

/* A thread has handed its cache back. Its memory went to the global cache as free units and
 * pages (abandon, tcache.c): the retention policy decides, by demand, when that goes back to
 * the OS. A server's next wave of connection threads reuses it without a page fault. */
void vt_global_tcache_put(vt_tcache_t *tc)
{
    lock();
    if (tc->state == VT_TCACHE_LIVE) { /* not when vt_global_tcache_claim took it already */
        cache_list_remove(&g.live, tc);
        g.caches_live--;
        atomic_store_explicit(&g.caches_live_now, g.caches_live, memory_order_relaxed);
    }
    tc->state = VT_TCACHE_POOLED;
    counters_move(&g.exited, &tc->counters);
    cache_list_append(&g.pool, tc);
    unlock();
}

/* Up to `max` live caches with their threads' ids, for the passes that look at other threads'
 * caches (tcache.c: reaping, idle reclaim, trim). The caches returned move to the end of the
 * live list, and new caches join at the end, so successive calls go round every live cache,
 * however many there are, at a bounded cost per call. *live is set to the number of live
 * caches, so that a caller can go round them all once. */
size_t vt_global_tcache_snapshot(vt_tcache_t **caches, int32_t *tids, size_t max, size_t *live)
{
    size_t n = 0;
    lock();
    *live = g.caches_live;
    if (max > g.caches_live)
        max = g.caches_live;
    while (n < max) {
        vt_tcache_t *tc = g.live.head;
        caches[n] = tc;
        tids[n++] = tc->tid;
        cache_list_remove(&g.live, tc);
        cache_list_append(&g.live, tc);
    }
    unlock();
    return n;
}

/* Takes a live cache out of the live list if it still belongs to thread `tid`: its thread is
 * gone (vt_tcache_reap), so nobody else will hand it back. True when the caller now owns it and
 * must abandon it and put it in the pool. */
bool vt_global_tcache_claim(vt_tcache_t *tc, int32_t tid)
{
    bool claimed = false;
    lock();
    if (tc->state == VT_TCACHE_LIVE && tc->tid == tid) {
        cache_list_remove(&g.live, tc);
        g.caches_live--;
        atomic_store_explicit(&g.caches_live_now, g.caches_live, memory_order_relaxed);
        tc->state = VT_TCACHE_EXITED;
        claimed = true;
    }
    unlock();
    return claimed;
}

/* ---- Returning memory to the OS ------------------------------------------------------- */

/* Units being purged: taken out of their span's free map while madvise runs without the lock,
 * so that no thread can take them and write into memory the kernel is dropping. */
typedef struct purge_item {
    vt_span_t *span;
    uint64_t units;  /* taken out of the free map while madvise runs */
    uint64_t failed; /* those whose madvise failed */
} purge_item_t;

#define PURGE_BATCH 64

/* Gives back to the OS the memory of at most `budget` free units that have been free for at
 * least age_ms (every dirty free unit when age_ms is 0), a batch of spans at a time. The
 * system calls run with the lock dropped; the mappings stay, so the number of VMAs does not
 * change. Returns the bytes purged. Lock not held. */
static size_t purge_batches(uint32_t age_ms, uint32_t budget)
{
    size_t total = 0;
    while (budget > 0) {
        purge_item_t items[PURGE_BATCH];
        size_t n = 0;
        uint32_t now = vt_os_now_ms();
        lock();
        for (unsigned r = EMPTY_RUN; r >= 1 && n < PURGE_BATCH && budget > 0; r--) {
            for (vt_span_t *span = g.by_run[r].head, *next;
                 span != NULL && n < PURGE_BATCH && budget > 0 && (next = span->next, 1);
                 span = next) {
                uint64_t aged = 0;
                uint64_t candidates = span->dirty_units & span->free_units & ~span->unpurgeable;
                for (uint64_t m = candidates; m != 0 && budget > 0; m &= m - 1) {
                    unsigned u = (unsigned)__builtin_ctzll(m);
                    if ((uint32_t)(now - span->freed_ms[u]) >= age_ms) {
                        aged |= (uint64_t)1 << u;
                        budget--;
                    }
                }
                if (aged == 0)
                    continue;
                span->free_units &= ~aged;
                dirty_set(span, span->dirty_units & ~aged);
                span_relist(span); /* out of the index's count while madvise runs */
                items[n++] = (purge_item_t){span, aged, 0};
            }
        }
        unlock();
        if (n == 0)
            return total;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t m = items[i].units;
            while (m != 0) { /* one madvise per run of consecutive units */
                unsigned first = (unsigned)__builtin_ctzll(m);
                unsigned len = (unsigned)__builtin_ctzll(~(m >> first));
                uint64_t run = len == 64 ? ~(uint64_t)0 : (((uint64_t)1 << len) - 1) << first;
                m &= ~run;
                if (vt_os_purge((uint8_t *)items[i].span + ((size_t)first << VT_UNIT_SHIFT),
                                (size_t)len << VT_UNIT_SHIFT))
                    bytes += (size_t)len << VT_UNIT_SHIFT;
                else
                    items[i].failed |= run; /* still holds its bytes: dirty, not returned */
            }
        }
        lock();
        for (size_t i = 0; i < n; i++) {
            vt_span_t *span = items[i].span;
            span->free_units |= items[i].units;
            span->unpurgeable |= items[i].failed;
            dirty_set(span, span->dirty_units | items[i].failed);
            span_relist(span);
        }
        g.purged_bytes += bytes;
        g.purges++;
        unlock();
        total += bytes;
        if (n < PURGE_BATCH)
            return total;
    }
    return total;
}

/* Purges run one at a time under purge_lock, which fork() takes too (before the global lock):
 * units out of their span's map while madvise runs would otherwise be lost to a child forked
 * in that moment, where no thread is left to put them back. */
static pthread_mutex_t purge_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t purge(uint32_t age_ms, uint32_t budget)
{
    vt_mutex_lock(&purge_lock);
    size_t bytes = purge_batches(age_ms, budget);
    vt_mutex_unlock(&purge_lock);
    return bytes;
}

#define PURGE_ALL UINT32_MAX

/* Above the dirty budget: purges the units freed longest ago until the dirty ones are down to
 * three quarters of the budget (so that a load hovering at the budget does not purge a unit at
 * every call): those older than the purge delay, then half of it, a quarter, and an eighth.
 * Units freed more recently than that are spared: they are the working set of a load that is
 * moving between sizes, and purging them would only fault them in again a moment later (the
 * budget is soft for that long). One thread at a time; the others go on. */
static void purge_excess(void)
{
    bool idle = false;
    /* Relaxed: the flag only elects a thread; purge() synchronises by the lock. */
    if (!atomic_compare_exchange_strong_explicit(&g.purging_excess, &idle, true,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    uint32_t target = atomic_load_explicit(&g.dirty_budget, memory_order_relaxed) / 4 * 3;
    for (uint32_t age = vt_options.purge_ms;; age /= 2) {
        purge(age, PURGE_ALL);
        if (age <= vt_options.purge_ms / 8 ||
            atomic_load_explicit(&g.dirty_count, memory_order_relaxed) <= target)
            break;
    }
    atomic_store_explicit(&g.purging_excess, false, memory_order_relaxed);
}

/* Unmaps empty spans: those beyond what the recent peak demand needs
 * (vt_retain_spans_needed), or (by_demand false) all of them; `collect` first returns the
 * emptied pages of exited threads to their spans. One munmap gives back a whole span,
 * resident or not, and the mappings kept are the ones the load is likely to fill again. A
 * span whose units another thread is purging right now is not listed as empty (its units are
 * out of its map): that thread puts them back. True when a span went. Lock not held. */
static bool unmap_empty_spans(bool by_demand, bool collect)
{
    vt_span_t *release = NULL;
    lock();
    if (collect)
        collect_partial_locked();
    uint32_t keep = by_demand ? vt_retain_spans_needed(vt_os_now_ms()) : 0;
    for (vt_span_t *span = g.by_run[EMPTY_RUN].head, *next; span != NULL && g.spans_total > keep;
         span = next) {
        next = span->next;
        span_leave_locked(span, &release);
    }
    spans_changed();
    unlock();
    bool released = release != NULL;
    release_spans(release);
    return released;
}

/* Returns the resident free units that the recent peak demand does not account for
 * (vt_retain_free_allowed), those freed longest ago first: older than the window, then half
 * of it, and so on down to the ones freed just now. Lock not held. */
static void purge_beyond_demand(uint32_t now)
{
    for (uint32_t age = vt_options.purge_ms;; age /= 2) {
        lock();
        uint32_t dirty = atomic_load_explicit(&g.dirty_count, memory_order_relaxed);
        uint32_t allowed = vt_retain_free_allowed(now);
        unlock();
        if (dirty <= allowed)
            return;
        purge(age, dirty - allowed);
        if (age == 0)
            return;
    }
}

/* The schedule: called from slow paths (pages returned, refills, threads starting and
 * exiting), and by the purge thread when there is one. At most one pass per quarter of
 * VTMALLOC_PURGE_MS runs, by whichever thread finds it due; a process that stops calling the
 * allocator altogether keeps what it freed in its last interval until it calls again, or
 * calls malloc_trim (or runs the purge thread). */
void vt_global_maybe_purge(void)
{
    if (vt_unlikely(atomic_load_explicit(&g.dirty_count, memory_order_relaxed) >
                    atomic_load_explicit(&g.dirty_budget, memory_order_relaxed)))
        purge_excess();
    uint32_t now = vt_os_now_ms();
    uint32_t due = atomic_load_explicit(&g.next_purge_ms, memory_order_relaxed);
    uint32_t interval = vt_options.purge_ms / 4 ? vt_options.purge_ms / 4 : 1;
    /* Not yet due; but a pass set further ahead than one interval (VTMALLOC_PURGE_MS was
     * shortened since, as tests do) is due now. */
    if ((int32_t)(now - due) < 0 && due - now <= interval)
        return;
    /* Relaxed: the CAS only elects one thread; the purge itself synchronises by the lock. */
    if (!atomic_compare_exchange_strong_explicit(&g.next_purge_ms, &due, now + interval,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    /* Pages of exited threads whose blocks have all been freed since go back to their spans
     * first, so that their units can age and be purged too. */
    lock();
    collect_partial_locked();
    g.last_pass_ms = now;
    unlock();
    vt_tcache_reclaim_idle(); /* the stashes of quiet threads, so that they can age too */
    unmap_empty_spans(true, false);
    purge_beyond_demand(now);
    vt_large_purge(false);
}

/* ---- Trim, stats, fork ------------------------------------------------------------------ */

/* When a mapping fails: what is kept only for reuse (empty spans, cached large mappings)
 * goes, so that the request can be served. True when something was given back. */
bool vt_global_release_reserves(void)
{
    bool released = unmap_empty_spans(false, false);
    return vt_large_purge(true) > 0 || released;
}

/* malloc_trim: everything free goes back now, whatever the demand. */
int vt_global_trim(void)
{
    bool released = unmap_empty_spans(false, true);
    size_t purged = purge(0, PURGE_ALL) + vt_large_purge(true);
    return purged > 0 || released;
}

/* Thread caches started since the start (or the fork). Relaxed: a heuristic for init.c. */
uint64_t vt_global_caches_started(void)
{
    return atomic_load_explicit(&g.caches_started, memory_order_relaxed);
}

/* Thread caches live now. Relaxed: the purge thread's check that it may end (init.c). */
uint64_t vt_global_caches_live(void)
{
    return atomic_load_explicit(&g.caches_live_now, memory_order_relaxed);
}

/* True when no free unit is resident and no large mapping is kept: a pass has nothing to
 * return. Relaxed: a stale answer only moves the purge thread's next pass. */
bool vt_global_nothing_to_return(void)
{
    return atomic_load_explicit(&g.dirty_count, memory_order_relaxed) == 0 &&
           vt_large_cached_bytes() == 0;
}

/* Adds a cache's counters to the sums. */
static void counters_add(uint64_t puts[], uint64_t *remote, uint64_t *adopted,
                         const vt_tcache_counters_t *c)
{
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++)
        puts[k] += atomic_load_explicit(&c->remote_puts[k], memory_order_relaxed);
    *remote += atomic_load_explicit(&c->remote_frees, memory_order_relaxed);
    *adopted += atomic_load_explicit(&c->pages_adopted, memory_order_relaxed);
}

/* The snapshot behind vt_stats_get. Under the lock, so the global structures are exact. Per
 * class, gets and puts are what pages have published (page.c) plus the frees threads made
 * into other threads' pages: exact for exited threads and the caller, behind by what other
 * running threads did since their pages' last slow event. */
void vt_global_stats(vt_stats_t *st)
{
    uint64_t puts[VT_CLASS_COUNT] = {0};
    lock();
    st->spans_mapped = g.spans_total;
    st->span_bytes = g.spans_total * VT_SPAN_SIZE;
    st->spans_reserved = g.by_run[EMPTY_RUN].count;
    st->span_maps_total = g.span_maps;
    st->span_unmaps_total = g.span_unmaps;
    st->thread_caches_live = g.caches_live;
    st->thread_caches_total = g.caches_total;
    st->pages_abandoned_total = g.pages_abandoned;
    st->global_lock_total = g.lock_total;
    st->global_lock_waits = g.lock_waits;
    st->purged_bytes_total = g.purged_bytes;
    st->purges_total = g.purges;
    st->bytes_reserve = (uint64_t)g.by_run[EMPTY_RUN].count * VT_SPAN_SIZE;
    st->bytes_free_resident =
        (uint64_t)atomic_load_explicit(&g.dirty_count, memory_order_relaxed) * VT_UNIT_SIZE;
    st->bytes_returned_total = g.purged_bytes + g.span_unmaps * VT_SPAN_SIZE;
    counters_add(puts, &st->remote_frees_total, &st->pages_adopted_total, &g.exited);
    counters_add(puts, &st->remote_frees_total, &st->pages_adopted_total,
                 vt_tcache_orphan_counters());
    for (vt_tcache_t *tc = g.live.head; tc != NULL; tc = tc->pool_next) {
        counters_add(puts, &st->remote_frees_total, &st->pages_adopted_total, &tc->counters);
        st->bytes_free_threads +=
            (uint64_t)atomic_load_explicit(&tc->stash_count, memory_order_relaxed) * VT_UNIT_SIZE;
    }
    for (unsigned r = EMPTY_RUN; r >= 1; r--)
        for (vt_span_t *span = g.by_run[r].head; span != NULL; span = span->next)
            st->bytes_free_units += (uint64_t)__builtin_popcountll(span->free_units) * VT_UNIT_SIZE;
    st->class_count = VT_CLASS_COUNT;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        vt_class_stats_t *c = &st->classes[k];
        uint64_t bsize = vt_classes[k].bsize;
        c->block_size = bsize;
        c->pages = atomic_load_explicit(&vt_page_class_pages[k], memory_order_relaxed);
        c->gets = atomic_load_explicit(&vt_page_class_gets[k], memory_order_relaxed);
        c->puts = puts[k] + atomic_load_explicit(&vt_page_class_puts[k], memory_order_relaxed) +
                  atomic_load_explicit(&g.shared_puts[k], memory_order_relaxed);
        c->in_use = c->gets > c->puts ? c->gets - c->puts : 0;
        c->requested_total =
            atomic_load_explicit(&vt_page_class_requested[k], memory_order_relaxed);
        if (c->gets > 0) /* the estimate: see bytes_requested_live in vtmalloc.h */
            st->bytes_requested_live +=
                (uint64_t)((double)c->in_use * (double)c->requested_total / (double)c->gets);
        for (vt_page_t *p = g.partial[k].head; p != NULL; p = p->next)
            c->free_in_global += p->capacity - p->used; /* the lock owns these pages */
        uint64_t capacity = c->pages * vt_classes[k].capacity;
        uint64_t accounted = c->in_use + c->free_in_global;
        c->free_in_threads = capacity > accounted ? capacity - accounted : 0;
        c->lock_acquisitions = g.class_locks[k];
        c->lock_waits = g.class_waits[k];
        st->bytes_in_use += c->in_use * bsize;
        st->bytes_free_threads += c->free_in_threads * bsize;
        st->bytes_free_global += c->free_in_global * bsize;
    }
    unlock();
}

void vt_global_fork_prepare(void)
{
    pthread_mutex_lock(&purge_lock);
    pthread_mutex_lock(&g.lock);
}

void vt_global_fork_parent(void)
{
    pthread_mutex_unlock(&g.lock);
    pthread_mutex_unlock(&purge_lock);
}

/* In the child only the forking thread runs. The caches of the other threads stay as they
 * were (their state may be mid-update, so they are not walked); their pages simply keep
 * their owner, and frees into them in the child are remote frees. */
void vt_global_fork_child(void)
{
    /* The other threads' caches may be half-way through an update: take them off the live list
     * for good, so that nothing (vt_tcache_reap included) ever walks or hands them back. Their
     * pages keep them as owners; frees into them are remote frees. */
    vt_tcache_t *self = vt_tls_tcache;
    vt_tcache_t *tc = g.live.head;
    while (tc != NULL) {
        vt_tcache_t *next = tc->pool_next;
        if (tc != self) {
            cache_list_remove(&g.live, tc);
            g.caches_live--;
            atomic_store_explicit(&g.caches_live_now, g.caches_live, memory_order_relaxed);
            tc->state = VT_TCACHE_EXITED;
        }
        tc = next;
    }
    if (self->state == VT_TCACHE_LIVE)
        self->tid = vt_os_thread_id();
    /* A thread that was purging in the parent does not exist here to clear its flag. */
    atomic_store_explicit(&g.purging_excess, false, memory_order_relaxed);
    /* The child's only thread is the copy of the one that took the lock in fork_prepare, so it
     * may release it (re-initialising a held mutex instead confuses ThreadSanitizer). */
    pthread_mutex_unlock(&g.lock);
    pthread_mutex_unlock(&purge_lock);
}
