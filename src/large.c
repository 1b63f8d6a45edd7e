/*
 * large.c - blocks above the largest class (256 KiB). Up to VT_LARGE_SPAN_MAX (1 MiB) one is a
 * run of units in a span, taken from the global cache like a page's and given back to it on
 * free, where its units wait, resident, for the next block or page of any size, and are
 * purged on the pages' schedule (VTMALLOC_PURGE_MS). Bigger blocks, and blocks aligned above
 * a unit (64 KiB), are mappings of their own, grown and shrunk with mremap and unmapped on
 * free (or kept in a small cache, VTMALLOC_LARGE_CACHE MiB, off by default).
 *
 * Owns: the table of mapped blocks, their cache and its mutex; the counters of blocks in
 * spans. Calls: global.c and page.c (blocks in spans), os.c. The lock is never held across a
 * system call; a mapped block is in the table exactly while it is mapped and live, in the
 * cache exactly while it is mapped and free.
 *
 * Why runs of units up to 1 MiB: a server that builds replies of a few hundred KiB would
 * otherwise pay mmap, munmap and the page faults of fresh memory for each (glibc serves such
 * blocks from its heap once its mmap threshold has risen). Every free of one takes the global
 * lock, which costs little next to filling the block.
 *
 * Why a table and not a header in front of a mapped block: a header would cost a whole OS
 * page per block once alignment is asked for, mremap could not move it freely, and free()
 * could not check a pointer without reading memory that may not be ours. A mapped block's
 * free already pays munmap, so a short locked hash lookup costs nothing in comparison.
 */
#include "internal.h"

/* Freed mappings the cache holds at most; the demand rule usually keeps far fewer. */
#define CACHE_SLOTS 32

typedef struct large_entry {
    uintptr_t addr;   /* 0: empty slot */
    size_t size;      /* bytes mapped (mmap) or requested rounded to 16 (malloc backing) */
    size_t requested; /* what malloc or realloc asked for (statistics) */
    uint8_t backing;
} large_entry_t;

/* Open addressing with linear probing, kept at most half full. */
static struct large_table {
    pthread_mutex_t lock;
    large_entry_t *slots; /* lock */
    size_t capacity;      /* lock: a power of two, or 0 before the first block */
    size_t count;         /* lock */
    size_t bytes;         /* lock */
    size_t requested;     /* lock: bytes asked for by the live blocks */
    uint64_t allocs;      /* lock */
    /* The cache of freed blocks (mmap backing only): unordered, at most CACHE_SLOTS. */
    large_entry_t cached[CACHE_SLOTS];
    uint32_t cached_ms[CACHE_SLOTS]; /* lock: when each was freed */
    size_t cached_count;             /* lock */
    size_t cached_bytes;             /* lock */
    uint64_t cache_hits;             /* lock */
    /* lock: bytes of live mapped blocks (mmap backing), and their recent peak: the cache
     * keeps what that peak accounts for (retain.c) */
    vt_window_t live;
} t = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Large blocks in spans, for statistics: relaxed atomics, changed by whoever allocates, frees
 * or resizes one (nothing is ordered by them). */
static _Atomic uint64_t span_blocks, span_bytes, span_allocs, span_requested;

/* t.cached_bytes, copied under the lock for readers without it (vt_large_cached_bytes). */
static _Atomic size_t cached_bytes_hint;

/* Bytes mapped for a table of `capacity` slots: whole pages. */
static size_t table_bytes(size_t capacity)
{
    size_t page = vt_os_page_size();
    return (capacity * sizeof(large_entry_t) + page - 1) & ~(page - 1);
}

static size_t slot_of(uintptr_t addr, size_t capacity)
{
    uint64_t h = (uint64_t)(addr >> 12) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (capacity - 1);
}

static large_entry_t *find_locked(uintptr_t addr)
{
    if (t.capacity == 0)
        return NULL;
    for (size_t i = slot_of(addr, t.capacity);; i = (i + 1) & (t.capacity - 1)) {
        if (t.slots[i].addr == addr)
            return &t.slots[i];
        if (t.slots[i].addr == 0)
            return NULL;
    }
}

static void insert_locked(large_entry_t e)
{
    VT_ASSERT(2 * (t.count + 1) <= t.capacity);
    size_t i = slot_of(e.addr, t.capacity);
    while (t.slots[i].addr != 0)
        i = (i + 1) & (t.capacity - 1);
    t.slots[i] = e;
    t.count++;
    t.bytes += e.size;
    t.requested += e.requested;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void remove_locked(large_entry_t *slot)
{
    t.count--;
    t.bytes -= slot->size;
    t.requested -= slot->requested;
    size_t hole = (size_t)(slot - t.slots);
    for (size_t i = (hole + 1) & (t.capacity - 1); t.slots[i].addr != 0;
         i = (i + 1) & (t.capacity - 1)) {
        size_t home = slot_of(t.slots[i].addr, t.capacity);
        /* Move slot i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole < i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            t.slots[hole] = t.slots[i];
            hole = i;
        }
    }
    t.slots[hole].addr = 0;
}

/* Returns with the lock held and room for one more entry, or false (lock not held) when the
 * table could not grow. The new table is mapped with the lock dropped. */
static bool lock_with_room(void)
{
    vt_mutex_lock(&t.lock);
    while (2 * (t.count + 1) > t.capacity) {
        size_t want = t.capacity ? 2 * t.capacity : 256;
        vt_mutex_unlock(&t.lock);
        size_t bytes = table_bytes(want);
        large_entry_t *fresh = vt_os_map(bytes, vt_os_page_size());
        if (fresh == NULL)
            return false;
        vt_mutex_lock(&t.lock);
        if (t.capacity >= want) { /* somebody else grew it meanwhile */
            vt_mutex_unlock(&t.lock);
            vt_os_unmap(fresh, bytes);
            vt_mutex_lock(&t.lock);
            continue;
        }
        large_entry_t *old = t.slots;
        size_t old_capacity = t.capacity;
        t.slots = fresh;
        t.capacity = want;
        t.count = 0;
        t.bytes = 0;
        t.requested = 0;
        for (size_t i = 0; i < old_capacity; i++)
            if (old[i].addr != 0)
                insert_locked(old[i]);
        if (old != NULL) {
            vt_mutex_unlock(&t.lock);
            vt_os_unmap(old, table_bytes(old_capacity));
            vt_mutex_lock(&t.lock);
        }
    }
    return true;
}

/* Bytes to map for `size`, or 0 on overflow. */
static size_t mapped_size(size_t size, vt_backing_t backing)
{
    size_t grain = backing == VT_BACKING_MMAP ? vt_os_page_size() : VT_MIN_ALIGN;
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - grain)
        return 0;
    return (size + grain - 1) & ~(grain - 1);
}

/* Bytes of freed mappings the cache may hold now: what the recent peak of live mapped blocks
 * accounts for beyond those live now, and at most VTMALLOC_LARGE_CACHE MiB. Lock held. */
static size_t cache_allowed_locked(uint32_t now)
{
    uint64_t peak = vt_window_peak(&t.live, now);
    size_t allowed = (size_t)(peak - t.live.level);
    /* At least a quarter of the peak, so that a request finds a block close to its size: a
     * block grown or shrunk by mremap keeps only the pages they share resident. */
    if (allowed < peak / 4 && peak > t.live.level)
        allowed = (size_t)(peak / 4);
    size_t cap = (size_t)vt_options.large_cache_mb << 20;
    return allowed < cap ? allowed : cap;
}

/* Takes cached block i out of the cache. Lock held. */
static large_entry_t cache_take_locked(size_t i)
{
    large_entry_t e = t.cached[i];
    t.cached[i] = t.cached[t.cached_count - 1];
    t.cached_ms[i] = t.cached_ms[t.cached_count - 1];
    t.cached_count--;
    t.cached_bytes -= e.size;
    atomic_store_explicit(&cached_bytes_hint, t.cached_bytes, memory_order_relaxed);
    return e;
}

/* The oldest cached block. Lock held, the cache not empty. */
static size_t cache_oldest_locked(void)
{
    size_t oldest = 0;
    for (size_t i = 1; i < t.cached_count; i++)
        if ((int32_t)(t.cached_ms[i] - t.cached_ms[oldest]) < 0)
            oldest = i;
    return oldest;
}

/* A cached mapping for `bytes`, resized with mremap when its size differs: the one closest in
 * size, bigger or at least half as big. Its pages that stay are resident already: no page
 * fault, no zeroing by the kernel. NULL when none fits. */
static void *take_cached(size_t bytes, size_t size, bool zero)
{
    if (!lock_with_room())
        return NULL;
    size_t best = CACHE_SLOTS, best_gap = SIZE_MAX;
    for (size_t i = 0; i < t.cached_count; i++) {
        size_t have = t.cached[i].size;
        size_t gap = have >= bytes ? have - bytes : bytes - have;
        if ((have >= bytes || have >= bytes / 2) && gap < best_gap) {
            best = i;
            best_gap = gap;
        }
    }
    if (best == CACHE_SLOTS) {
        vt_mutex_unlock(&t.lock);
        return NULL;
    }
    large_entry_t e = cache_take_locked(best);
    vt_mutex_unlock(&t.lock);
    size_t reused = e.size < bytes ? e.size : bytes;
    /* A block at most a quarter too big is kept whole (the tail is the block's usable size,
     * and stays resident for the next owner); a bigger one gives its tail back. */
    if (e.size != bytes && !(e.size > bytes && e.size - bytes <= e.size / 4)) {
        void *q = vt_os_remap((void *)e.addr, e.size, bytes);
        if (q == NULL) { /* keep nothing half-done: give the old one back, map afresh */
            vt_os_backing_free((void *)e.addr, e.size, VT_BACKING_MMAP);
            return NULL;
        }
        e.addr = (uintptr_t)q;
        e.size = bytes;
    }
    if (zero)
        memset((void *)e.addr, 0, reused); /* the rest, if it grew, is fresh and zero */
    e.requested = size;
    if (!lock_with_room()) {
        vt_os_backing_free((void *)e.addr, e.size, VT_BACKING_MMAP);
        return NULL;
    }
    t.cache_hits++;
    t.allocs++;
    insert_locked(e);
    vt_window_change(&t.live, (int64_t)e.size, vt_os_now_ms());
    vt_mutex_unlock(&t.lock);
    return (void *)e.addr;
}

/* Keeps a freed mmap'ed block for reuse if the recent peak of live blocks accounts for it,
 * evicting the oldest ones to make room; otherwise it goes. Lock held; what must be unmapped
 * is returned through *evict (at most CACHE_SLOTS + 1). */
static size_t cache_put_locked(large_entry_t e, large_entry_t *evict)
{
    size_t n = 0;
    if (e.backing != VT_BACKING_MMAP) {
        evict[n++] = e;
        return n;
    }
    uint32_t now = vt_os_now_ms();
    vt_window_change(&t.live, -(int64_t)e.size, now);
    size_t allowed = cache_allowed_locked(now);
    if (e.size > allowed) {
        evict[n++] = e;
        return n;
    }
    while (t.cached_count > 0 &&
           (t.cached_count == CACHE_SLOTS || t.cached_bytes + e.size > allowed))
        evict[n++] = cache_take_locked(cache_oldest_locked());
    t.cached[t.cached_count] = e;
    t.cached_ms[t.cached_count] = now;
    t.cached_count++;
    t.cached_bytes += e.size;
    atomic_store_explicit(&cached_bytes_hint, t.cached_bytes, memory_order_relaxed);
    return n;
}

static void unmap_entries(const large_entry_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vt_os_backing_free((void *)list[i].addr, list[i].size, (vt_backing_t)list[i].backing);
}

/* Unmaps cached blocks beyond what the recent peak of live blocks accounts for, oldest
 * first (`all`: every cached block, for malloc_trim). Returns the bytes. */
size_t vt_large_purge(bool all)
{
    large_entry_t evict[CACHE_SLOTS];
    size_t n = 0, bytes = 0;
    vt_mutex_lock(&t.lock);
    size_t allowed = all ? 0 : cache_allowed_locked(vt_os_now_ms());
    while (t.cached_count > 0 && t.cached_bytes > allowed) {
        evict[n] = cache_take_locked(cache_oldest_locked());
        bytes += evict[n++].size;
    }
    vt_mutex_unlock(&t.lock);
    unmap_entries(evict, n);
    return bytes;
}

/* Makes a free run (taken by the caller, not yet in the unit map) a large block of `size`
 * bytes. `stale`: its units may hold old bytes (a run from a thread's stash always may). */
void *vt_large_start_in_span(vt_page_t *page, size_t size, bool zero, bool stale)
{
    vt_page_assign_large(page);
    page->requested = size;
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
static void *alloc_in_span(size_t size, size_t alignment, bool zero)
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
 * (vt_global_put_run); NULL after reporting a misuse. */
vt_page_t *vt_large_free_in_span(vt_page_t *page, void *p, const char *fn)
{
    if (vt_unlikely((uint8_t *)p != vt_page_area(page))) {
        vt_report_misuse(fn, "invalid pointer (inside a block, not at its start)", p);
        return NULL;
    }
    size_t bytes = page->bsize, requested = page->requested;
    if (vt_unlikely(!vt_page_release_large(page))) {
        vt_report_misuse(fn, "double free (block is already free)", p);
        return NULL;
    }
    atomic_fetch_sub_explicit(&span_requested, requested, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_blocks, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_bytes, bytes, memory_order_relaxed);
    return page;
}

/* realloc of a large block in a span to another size in the same range: in place when its
 * run can shrink or the units after it are free. False: the caller moves it. */
bool vt_large_resize_in_span(vt_page_t *page, size_t size)
{
    VT_ASSERT(size > VT_SMALL_MAX && size <= VT_LARGE_SPAN_MAX);
    unsigned units = (unsigned)((size + VT_UNIT_SIZE - 1) >> VT_UNIT_SHIFT);
    size_t before = page->bsize;
    if (!vt_global_resize_large(page, units))
        return false;
    atomic_fetch_add_explicit(&span_requested, size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&span_requested, page->requested, memory_order_relaxed);
    page->requested = size;
    if (page->bsize > before)
        atomic_fetch_add_explicit(&span_bytes, page->bsize - before, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&span_bytes, before - page->bsize, memory_order_relaxed);
    return true;
}

static void *large_alloc(size_t size, size_t alignment, bool zero);

/* A success keeps errno as it was, even when a step failed on the way (the table could not
 * grow for the cache's lookup, and then could). */
void *vt_large_alloc(size_t size, size_t alignment, bool zero)
{
    int saved = errno;
    void *p = large_alloc(size, alignment, zero);
    if (p != NULL)
        errno = saved;
    return p;
}

static void *large_alloc(size_t size, size_t alignment, bool zero)
{
    /* Units are unit-aligned, and a run may start at any multiple of a larger alignment up to
     * half a span: aligned blocks need no mapping of their own (a mapping each would run into
     * the kernel's limit on mappings long before memory runs out). */
    if (size <= VT_LARGE_SPAN_MAX && alignment <= VT_SPAN_SIZE / 2)
        return alloc_in_span(size == 0 ? 1 : size, alignment, zero);
    vt_backing_t backing = (vt_backing_t)vt_options.backing;
    size_t bytes = mapped_size(size, backing);
    if (bytes == 0 || size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment < VT_MIN_ALIGN)
        alignment = VT_MIN_ALIGN;
    if (backing == VT_BACKING_MMAP && alignment < vt_os_page_size())
        alignment = vt_os_page_size();
    if (backing == VT_BACKING_MMAP && alignment == vt_os_page_size() &&
        vt_options.large_cache_mb > 0) {
        void *p = take_cached(bytes, size, zero);
        if (p != NULL)
            return p;
    }
    void *p = vt_os_backing_alloc(bytes, alignment, backing);
    if (p == NULL && vt_global_release_reserves())
        p = vt_os_backing_alloc(bytes, alignment, backing); /* room made by what was kept */
    if (p == NULL)
        return NULL;
    if (!lock_with_room()) {
        vt_os_backing_free(p, bytes, backing);
        errno = ENOMEM;
        return NULL;
    }
    insert_locked((large_entry_t){
        .addr = (uintptr_t)p, .size = bytes, .requested = size, .backing = (uint8_t)backing});
    t.allocs++;
    if (backing == VT_BACKING_MMAP)
        vt_window_change(&t.live, (int64_t)bytes, vt_os_now_ms());
    vt_mutex_unlock(&t.lock);
    if (zero && backing != VT_BACKING_MMAP)
        memset(p, 0, size); /* fresh anonymous mappings are zero already */
    return p;
}

bool vt_large_free(void *p)
{
    vt_mutex_lock(&t.lock);
    large_entry_t *slot = find_locked((uintptr_t)p);
    if (slot == NULL) {
        vt_mutex_unlock(&t.lock);
        return false;
    }
    large_entry_t e = *slot;
    remove_locked(slot);
    large_entry_t evict[CACHE_SLOTS + 1];
    size_t n = cache_put_locked(e, evict);
    vt_mutex_unlock(&t.lock);
    unmap_entries(evict, n);
    return true;
}

size_t vt_large_usable_size(const void *p)
{
    vt_mutex_lock(&t.lock);
    large_entry_t *slot = find_locked((uintptr_t)p);
    size_t size = slot ? slot->size : 0;
    vt_mutex_unlock(&t.lock);
    return size;
}

/* Resizes a large block to another large size. mremap moves or grows the mapping without
 * copying; with the malloc backing the data is copied. NULL with errno ENOMEM leaves p as it
 * was. The caller checked that p is a large block. */
void *vt_large_realloc(void *p, size_t size)
{
    vt_mutex_lock(&t.lock);
    large_entry_t *slot = find_locked((uintptr_t)p);
    large_entry_t old = slot ? *slot : (large_entry_t){0};
    vt_mutex_unlock(&t.lock);
    VT_ASSERT(old.addr != 0);
    size_t bytes = mapped_size(size, (vt_backing_t)old.backing);
    if (bytes == 0 || size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (bytes == old.size) {
        vt_mutex_lock(&t.lock);
        slot = find_locked((uintptr_t)p);
        t.requested = t.requested - slot->requested + size;
        slot->requested = size;
        vt_mutex_unlock(&t.lock);
        return p;
    }
    if (old.backing != VT_BACKING_MMAP) {
        void *q = vt_large_alloc(size, VT_MIN_ALIGN, false);
        if (q == NULL)
            return NULL;
        memcpy(q, p, old.size < bytes ? old.size : bytes);
        vt_large_free(p);
        return q;
    }
    /* Out of the table before mremap: once the block has moved, the kernel may hand its old
     * address to another thread's new block, which must not meet a stale entry. */
    vt_mutex_lock(&t.lock);
    slot = find_locked((uintptr_t)p);
    VT_ASSERT(slot != NULL);
    remove_locked(slot);
    vt_mutex_unlock(&t.lock);
    void *q = vt_os_remap(p, old.size, bytes);
    large_entry_t now = {.addr = (uintptr_t)(q ? q : p),
                         .size = q ? bytes : old.size,
                         .requested = q ? size : old.requested,
                         .backing = old.backing};
    /* Putting back one entry after taking one out never needs room. */
    vt_mutex_lock(&t.lock);
    insert_locked(now);
    vt_window_change(&t.live, (int64_t)now.size - (int64_t)old.size, vt_os_now_ms());
    vt_mutex_unlock(&t.lock);
    return q; /* NULL (errno ENOMEM): p is intact and still ours */
}

/* Bytes of freed mappings kept, for the purge thread's backoff (global.c). */
size_t vt_large_cached_bytes(void)
{
    return atomic_load_explicit(&cached_bytes_hint, memory_order_relaxed);
}

void vt_large_stats(vt_stats_t *st)
{
    vt_mutex_lock(&t.lock);
    st->large_blocks = t.count;
    st->large_bytes = t.bytes;
    st->large_allocs_total = t.allocs;
    st->large_cached_bytes = t.cached_bytes;
    st->large_cache_hits_total = t.cache_hits;
    st->bytes_mapped += t.bytes + t.cached_bytes; /* blocks in spans are in span_bytes */
    st->bytes_requested_live += t.requested;
    vt_mutex_unlock(&t.lock);
    st->bytes_requested_live += atomic_load_explicit(&span_requested, memory_order_relaxed);
    st->large_blocks += atomic_load_explicit(&span_blocks, memory_order_relaxed);
    st->large_bytes += atomic_load_explicit(&span_bytes, memory_order_relaxed);
    st->large_allocs_total += atomic_load_explicit(&span_allocs, memory_order_relaxed);
}

void vt_large_fork_prepare(void)
{
    pthread_mutex_lock(&t.lock);
}

void vt_large_fork_parent(void)
{
    pthread_mutex_unlock(&t.lock);
}

void vt_large_fork_child(void)
{
    pthread_mutex_unlock(&t.lock); /* held by this thread's parent copy: see global.c */
}
