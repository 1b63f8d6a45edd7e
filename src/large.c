/*
 * large.c - blocks above the largest class (256 KiB) that do not go into spans: those above
 * VT_LARGE_SPAN_MAX (960 KiB) and those aligned above half a span. Each is a mapping of its own,
 * grown and shrunk with mremap; a freed one is kept for reuse while the recent peak of live
 * mapped blocks accounts for it (retain.c's window), up to VTMALLOC_LARGE_CACHE MiB.
 *
 * Layer: 7 large blocks
 * Calls: os.c, report.c, options.c, retain.c, global.c, largetable.c, largespan.c
 *
 * Owns: the cache of freed mappings (under the table's lock, largetable.c). The lock is never
 * held across a system call; a mapped block is in the table exactly while it is mapped and
 * live, in the cache exactly while it is mapped and free.
 */
#include "internal.h"

/* Freed mappings the cache holds at most; the demand rule usually keeps far fewer. Each
 * large malloc scans them (a few dozen ns, against the page faults of a fresh MiB). */
#define CACHE_SLOTS 64

/* Evicted together, the oldest, by a free that finds every slot taken: a program freeing many
 * in a row pays one munmap per run of neighbours (unmap_entries), not one per free (a fifth of
 * the time for 1 MiB blocks), and still keeps more than 32 slots evicting one at a time did. */
#define EVICT_BATCH (CACHE_SLOTS / 4)

/* The cache of freed blocks (mmap backing only), under the table's lock (largetable.c). */
static struct large_cache {
    vt_large_entry_t cached[CACHE_SLOTS]; /* unordered, at most CACHE_SLOTS */
    uint32_t cached_ms[CACHE_SLOTS];      /* when each was freed */
    size_t cached_count;
    size_t cached_bytes;
    uint64_t cache_hits;
    uint64_t allocs;   /* mapped blocks handed out, ever */
    uint64_t mappings; /* mmaps and moving mremaps made, ever: the last vt_large_entry_t.mapping */
    /* Bytes of live mapped blocks (mmap backing), and their recent peak: the cache keeps what
     * that peak accounts for (retain.c). */
    vt_window_t live;
} t;

/* t.cached_bytes, copied under the lock for readers without it (vt_large_cached_bytes). */
static _Atomic size_t cached_bytes_hint;

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
    vt_window_quiet_forget(&t.live, now);
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
static vt_large_entry_t cache_take_locked(size_t i)
{
    vt_large_entry_t e = t.cached[i];
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

/* Caches the tail of a mapping split off a block (at the block's freeing time, so it ages as
 * the block did). False when the cache is full. Lock held. */
static bool cache_tail_locked(uintptr_t addr, size_t size, uint64_t mapping, uint32_t freed_ms)
{
    if (t.cached_count == CACHE_SLOTS)
        return false;
    t.cached[t.cached_count] = (vt_large_entry_t){
        .addr = addr, .size = size, .backing = VT_BACKING_MMAP, .mapping = mapping};
    t.cached_ms[t.cached_count] = freed_ms;
    t.cached_count++;
    t.cached_bytes += size;
    atomic_store_explicit(&cached_bytes_hint, t.cached_bytes, memory_order_relaxed);
    return true;
}

/* A cached mapping for `bytes`: the smallest one that holds it, else the biggest one at least
 * half as big, grown with mremap. Its pages that stay are resident already: no page fault, no
 * zeroing by the kernel. A mapping much bigger than asked for is split: the block takes its
 * head and the tail stays in the cache, still resident, to serve the next request or to
 * join the block again when it is freed (cache_put_locked), so that a program whose arrays
 * change size from one request to the next keeps reusing the same pages. NULL when none
 * fits. */
static void *take_cached(size_t bytes, size_t size, bool zero)
{
    if (!vt_largetable_lock_with_room())
        return NULL;
    size_t best = CACHE_SLOTS;
    for (size_t i = 0; i < t.cached_count; i++) {
        size_t have = t.cached[i].size;
        if (have < bytes / 2)
            continue;
        if (best == CACHE_SLOTS) {
            best = i;
            continue;
        }
        size_t best_have = t.cached[best].size;
        bool fits = have >= bytes, best_fits = best_have >= bytes;
        if (fits ? (!best_fits || have < best_have) : (!best_fits && have > best_have))
            best = i;
    }
    if (best == CACHE_SLOTS) {
        vt_largetable_unlock();
        return NULL;
    }
    uint32_t freed_ms = t.cached_ms[best];
    vt_large_entry_t e = cache_take_locked(best);
    /* A block at most a quarter too big is kept whole (the tail is the block's usable size,
     * and stays resident for the next owner); a bigger one leaves its tail in the cache. */
    if (e.size > bytes && e.size - bytes > e.size / 4 &&
        cache_tail_locked(e.addr + bytes, e.size - bytes, e.mapping, freed_ms))
        e.size = bytes;
    vt_largetable_unlock();
    size_t reused = e.size < bytes ? e.size : bytes;
    bool moved = false;
    if (e.size < bytes || e.size - bytes > e.size / 4) {
        /* Grown (the new tail is fresh), or shrunk when the cache had no slot for the tail.
         * mremap refuses a range that the kernel keeps as two (joined pieces of mappings it
         * did not merge, or one the program split with mlock or mprotect): then the old one
         * goes back, nothing half-done, and the caller maps afresh. */
        void *q = vt_os_remap((void *)e.addr, e.size, bytes);
        if (q == NULL) {
            vt_os_backing_free((void *)e.addr, e.size, VT_BACKING_MMAP);
            return NULL;
        }
        moved = (uintptr_t)q != e.addr;
        e.addr = (uintptr_t)q;
        e.size = bytes;
    }
    if (zero)
        memset((void *)e.addr, 0, reused); /* the rest, if it grew, is fresh and zero */
    e.requested = size;
    if (!vt_largetable_lock_with_room()) {
        vt_os_backing_free((void *)e.addr, e.size, VT_BACKING_MMAP);
        return NULL;
    }
    t.cache_hits++;
    t.allocs++;
    if (moved)
        e.mapping = ++t.mappings;
    vt_largetable_insert_locked(e);
    vt_window_change(&t.live, (int64_t)e.size, vt_os_now_ms());
    vt_largetable_unlock();
    return (void *)e.addr;
}

/* Keeps a freed mmap'ed block while the recent peak of live blocks accounts for it, evicting
 * the oldest to make room (EVICT_BATCH when every slot is taken); otherwise it goes. Lock
 * held; what must be unmapped is returned through *evict (at most CACHE_SLOTS + 1). */
static size_t cache_put_locked(vt_large_entry_t e, vt_large_entry_t *evict)
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
    /* A tail split off this block (or a block split off the same mapping before it) that is
     * still cached joins it again, so the mapping serves the next request whole. Pieces of
     * different mappings never join, even when they touch: the kernel may keep them as two
     * ranges, and mremap refuses a range that is not one. */
    for (size_t i = 0; i < t.cached_count;) {
        vt_large_entry_t c = t.cached[i];
        if (c.mapping == e.mapping && (c.addr == e.addr + e.size || c.addr + c.size == e.addr)) {
            cache_take_locked(i);
            e.addr = c.addr < e.addr ? c.addr : e.addr;
            e.size += c.size;
        } else {
            i++;
        }
    }
    if (e.size > allowed) { /* joined, it is more than the peak accounts for */
        evict[n++] = e;
        return n;
    }
    if (t.cached_count == CACHE_SLOTS)
        while (n < EVICT_BATCH)
            evict[n++] = cache_take_locked(cache_oldest_locked());
    while (t.cached_count > 0 && t.cached_bytes + e.size > allowed)
        evict[n++] = cache_take_locked(cache_oldest_locked());
    t.cached[t.cached_count] = e;
    t.cached_ms[t.cached_count] = now;
    t.cached_count++;
    t.cached_bytes += e.size;
    atomic_store_explicit(&cached_bytes_hint, t.cached_bytes, memory_order_relaxed);
    return n;
}

/* Unmaps `list` (sorted here by address), a run of mapped neighbours in one call: munmap costs
 * per call (splitting the kernel's merged area, a TLB flush), not per byte. Returns the bytes. */
static size_t unmap_entries(vt_large_entry_t *list, size_t n)
{
    size_t total = 0;
    for (size_t i = 1; i < n; i++) {
        vt_large_entry_t e = list[i];
        size_t j = i;
        for (; j > 0 && list[j - 1].addr > e.addr; j--)
            list[j] = list[j - 1];
        list[j] = e;
    }
    for (size_t i = 0, next; i < n; i = next) {
        size_t bytes = list[i].size;
        for (next = i + 1;
             list[i].backing == VT_BACKING_MMAP && next < n &&
             list[next].backing == VT_BACKING_MMAP && list[next].addr == list[i].addr + bytes;
             next++)
            bytes += list[next].size;
        vt_os_backing_free((void *)list[i].addr, bytes, (vt_backing_t)list[i].backing);
        total += bytes;
    }
    return total;
}

/* Takes cached blocks out, oldest first, until at most `allowed` bytes stay; returns how many
 * went into evict (at most CACHE_SLOTS), for the caller to unmap without the lock. Lock
 * held. */
static size_t evict_beyond_locked(size_t allowed, vt_large_entry_t *evict)
{
    size_t n = 0;
    while (t.cached_count > 0 && t.cached_bytes > allowed)
        evict[n++] = cache_take_locked(cache_oldest_locked());
    return n;
}

/* Unmaps cached blocks beyond what the recent peak of live blocks accounts for, oldest
 * first (`all`: every cached block, for malloc_trim). Returns the bytes. */
size_t vt_large_purge(bool all)
{
    vt_large_entry_t evict[CACHE_SLOTS];
    vt_largetable_lock();
    size_t n = evict_beyond_locked(all ? 0 : cache_allowed_locked(vt_os_now_ms()), evict);
    vt_largetable_unlock();
    return unmap_entries(evict, n);
}

/* The hook of global.c (registered by init.c): a span could not be mapped, so the cached
 * mappings go, to make room. True when there were any. */
bool vt_large_release_cache(void)
{
    return vt_large_purge(true) > 0;
}

static void *large_alloc(size_t size, size_t alignment, bool zero)
{
    /* Units are unit-aligned, and a run may start at any multiple of a larger alignment up to
     * half a span: aligned blocks need no mapping of their own (a mapping each would run into
     * the kernel's limit on mappings long before memory runs out). */
    if (size <= VT_LARGE_SPAN_MAX && alignment <= VT_SPAN_SIZE / 2)
        return vt_largespan_alloc(size == 0 ? 1 : size, alignment, zero);
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
    if (!vt_largetable_lock_with_room()) {
        vt_os_backing_free(p, bytes, backing);
        errno = ENOMEM;
        return NULL;
    }
    vt_largetable_insert_locked((vt_large_entry_t){.addr = (uintptr_t)p,
                                                   .size = bytes,
                                                   .requested = size,
                                                   .backing = (uint8_t)backing,
                                                   .mapping = ++t.mappings});
    t.allocs++;
    /* No cached block served this one, so the cached blocks the recent peak no longer accounts
     * for go now, before the new block's pages are touched: not kept beside it until the next
     * free. */
    vt_large_entry_t evict[CACHE_SLOTS];
    size_t n = 0;
    if (backing == VT_BACKING_MMAP) {
        uint32_t now = vt_os_now_ms();
        vt_window_change(&t.live, (int64_t)bytes, now);
        n = evict_beyond_locked(cache_allowed_locked(now), evict);
    }
    vt_largetable_unlock();
    unmap_entries(evict, n);
    if (zero && backing != VT_BACKING_MMAP)
        memset(p, 0, size); /* fresh anonymous mappings are zero already */
    return p;
}

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

bool vt_large_free(void *p)
{
    vt_largetable_lock();
    vt_large_entry_t *slot = vt_largetable_find_locked((uintptr_t)p);
    if (slot == NULL) {
        vt_largetable_unlock();
        return false;
    }
    vt_large_entry_t e = *slot;
    vt_largetable_remove_locked(slot);
    vt_large_entry_t evict[CACHE_SLOTS + 1];
    size_t n = cache_put_locked(e, evict);
    vt_largetable_unlock();
    unmap_entries(evict, n);
    return true;
}

size_t vt_large_usable_size(const void *p)
{
    vt_largetable_lock();
    vt_large_entry_t *slot = vt_largetable_find_locked((uintptr_t)p);
    size_t size = slot ? slot->size : 0;
    vt_largetable_unlock();
    return size;
}

/* Resizes a large block to another large size. mremap moves or grows the mapping without
 * copying; with the malloc backing the data is copied. NULL with errno ENOMEM leaves p as it
 * was. The caller checked that p is a large block. */
void *vt_large_realloc(void *p, size_t size)
{
    vt_largetable_lock();
    vt_large_entry_t *slot = vt_largetable_find_locked((uintptr_t)p);
    vt_large_entry_t old = slot ? *slot : (vt_large_entry_t){0};
    vt_largetable_unlock();
    VT_ASSERT(old.addr != 0);
    size_t bytes = mapped_size(size, (vt_backing_t)old.backing);
    if (bytes == 0 || size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (bytes == old.size) {
        vt_largetable_lock();
        slot = vt_largetable_find_locked((uintptr_t)p);
        vt_largetable_set_requested_locked(slot, size);
        vt_largetable_unlock();
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
    vt_largetable_lock();
    slot = vt_largetable_find_locked((uintptr_t)p);
    VT_ASSERT(slot != NULL);
    vt_largetable_remove_locked(slot);
    vt_largetable_unlock();
    int saved = errno;
    void *q = vt_os_remap(p, old.size, bytes);
    vt_large_entry_t now = {.addr = (uintptr_t)(q ? q : p),
                            .size = q ? bytes : old.size,
                            .requested = q ? size : old.requested,
                            .backing = old.backing,
                            .mapping = old.mapping};
    /* Putting back one entry after taking one out never needs room. */
    vt_largetable_lock();
    if (q != NULL && q != p)
        now.mapping = ++t.mappings;
    vt_largetable_insert_locked(now);
    vt_window_change(&t.live, (int64_t)now.size - (int64_t)old.size, vt_os_now_ms());
    vt_largetable_unlock();
    if (q != NULL)
        return q;
    /* mremap refused: no memory for a move, or a range the kernel keeps as two (the program
     * split it with mlock or mprotect). p is intact and still ours; a copy may still be made.
     * The copy's failure is ENOMEM, with p as it was. */
    q = vt_large_alloc(size, VT_MIN_ALIGN, false);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old.size < bytes ? old.size : bytes);
    vt_large_free(p);
    errno = saved; /* a success leaves errno as it was */
    return q;
}

/* Bytes of freed mappings kept, for the purge thread's backoff (purge.c). */
size_t vt_large_cached_bytes(void)
{
    return atomic_load_explicit(&cached_bytes_hint, memory_order_relaxed);
}

void vt_large_stats(vt_stats_t *st)
{
    vt_largetable_lock();
    vt_largetable_stats_locked(st);
    st->large_allocs_total += t.allocs;
    st->large_cached_bytes = t.cached_bytes;
    st->large_cache_hits_total = t.cache_hits;
    st->bytes_mapped += t.cached_bytes;
    vt_largetable_unlock();
}
