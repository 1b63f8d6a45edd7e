/*
 * internal.h - attributes, assertions, the prototypes every file shares (grouped by the file
 * that defines them) and the tiny inline helpers of the hot paths.
 *
 * Calls go one way, down the layers (each file's opening comment names its layer and the
 * files it calls; tests/layering.py checks both against the symbol tables):
 *
 *   14 override.c                 the standard C names
 *   13 alloc.c, alloc.h           the C API; alloc.h holds the malloc and free fast paths
 *   12 init.c, dumps.c            process start, thread start and exit, fork; files written
 *                                 on a signal or at exit (profiles, statistics)
 *   11 stats.c                    statistics, malloc_info, mallinfo
 *   10 purge.c                    when free memory goes back; the purge thread
 *    9 reclaim.c                  other threads' caches: quiet, gone, trimmed
 *    8 tcache.c                   the thread cache
 *    7 stash.c, remote.c,         a cache's empty runs; frees into other threads' pages;
 *      large.c, largespan.c,      blocks above the classes (own mappings, runs in spans);
 *      prof.c                     the heap profiler's samples
 *    6 global.c, cachepool.c,     pages nobody owns; the records of thread caches; the table
 *      largetable.c               of mapped large blocks
 *    5 spanpurge.c                free units and empty spans back to the OS
 *    4 span.c                     spans, their index of free runs, the global lock
 *    3 page.c, sample.c           blocks of one class in a run of units; sampling draws
 *    2 sizeclass.c, spanmap.c,    size classes; the map of our spans; recent demand and
 *      retain.c, proftable.c      what free memory to keep; the heap profiler's tables
 *    1 options.c, cfi.c,          VTMALLOC_* options, mallopt; call stacks for the
 *      unwind.c                   profiler (unwind rules read from the CFI, cached)
 *    0 os.c, sysalloc.c,          system calls; the system allocator as backing; messages
 *      report.c, lock.h           and misuse reports (written with os.c's write)
 *
 * Every function declared here has hidden visibility: only include/vtmalloc.h and the
 * override layer export symbols.
 */
#ifndef VT_INTERNAL_H
#define VT_INTERNAL_H

#include "types.h"
#include "vtmalloc.h"
#include "lock.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Attributes ------------------------------------------------------------------------- */

#define VT_HIDDEN      __attribute__((visibility("hidden")))
#define VT_EXPORT      __attribute__((visibility("default")))
#define VT_NOINLINE    __attribute__((noinline))
#define VT_COLD        __attribute__((cold, noinline))
#define VT_NORETURN    __attribute__((noreturn))
#define VT_INLINE      static inline __attribute__((always_inline))
#define vt_likely(x)   __builtin_expect(!!(x), 1)
#define vt_unlikely(x) __builtin_expect(!!(x), 0)

/* The entry points that inline the fast paths (malloc and free, vt_malloc and vt_free) start on
 * a cache line. Where they happened to land moved memtest single by 3 % between builds whose
 * instructions were the same (19.3 against 18.8 ns a pair, pinned to one CPU): a change
 * anywhere in the library shifted them. Aligned, both builds ran at 18.8, and a comparison of
 * two builds measures the change rather than the layout. */
#define VT_HOT_ENTRY __attribute__((aligned(64)))

/* ---- Assertions ------------------------------------------------------------------------- */

/* Internal invariants are checked in debug builds only (VT_DEBUG, on unless NDEBUG). Checks that
 * protect users from their own misuse (double and invalid frees) stay on in every build and
 * go through report.c, not through these. */
#ifndef NDEBUG
#define VT_DEBUG 1
#else
#define VT_DEBUG 0
#endif

#define VT_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (VT_DEBUG && vt_unlikely(!(cond)))                                                      \
            vt_assert_fail(__FILE__, __LINE__, #cond);                                             \
    } while (0)

/* ---- Shared state ----------------------------------------------------------------------- */

/* The sentinel page: no free blocks, owned by nobody. Empty bins point here so the malloc fast
 * path needs no NULL test, and free units point here so a stray free is caught. */
extern vt_page_t vt_page_none VT_HIDDEN;

/* The calling thread's cache and the words a sample reads (types.h: vt_thread_t; defined in
 * thread.c). Initial-exec TLS: the cache is one %fs load. */
extern __thread vt_thread_t vt_thread VT_HIDDEN __attribute__((tls_model("initial-exec")));

/* Defined in page.c; random at start-up (init.c), constant after: keys of free blocks, and
 * the mangling of their links (whose low four bits are never all zero: see vt_block_next). */
extern uintptr_t vt_secret VT_HIDDEN;
extern uintptr_t vt_link_secret VT_HIDDEN;

extern vt_options_t vt_options VT_HIDDEN;

/* The id of the process whose threads own the thread caches (defined in cachepool.c): set at
 * start-up and in the child of a fork (init.c). A vfork or CLONE_VM child shares our memory
 * but has another id; it must neither start a cache (init.c) nor judge whether our threads
 * are gone (reclaim.c). */
extern int32_t vt_process_id VT_HIDDEN;

/* Fibonacci hashing: 2^64 divided by the golden ratio spreads addresses over a table's slots
 * (remote.c, large.c) and seeds the mixing of random words (os.c, init.c). */
#define VT_FIBONACCI_HASH 0x9e3779b97f4a7c15ull

/* Backward-shift deletion from a table with linear probing (largetable.c, prof.c): the entry
 * in slot i, whose home slot is `home`, stays where it is when its home lies cyclically in
 * (hole, i]; otherwise it moves into the hole, which keeps probe chains whole without
 * tombstones. */
VT_INLINE bool vt_probe_stays(size_t hole, size_t i, size_t home)
{
    return hole < i ? (home > hole && home <= i) : (home > hole || home <= i);
}

/* Adds one to a counter that only the calling thread writes: a relaxed load and a relaxed
 * store, not a locked add, so it costs what a plain increment costs; readers on other threads
 * (stats.c) see some recent value, never a torn one. */
VT_INLINE void vt_count(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The same for any amount (unsigned arithmetic: subtracting is adding its complement). */
VT_INLINE void vt_count_add(_Atomic uint64_t *counter, uint64_t amount)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + amount,
                          memory_order_relaxed);
}

/* ---- sizeclass.c ------------------------------------------------------------------------ */

extern const vt_class_info_t vt_classes[VT_CLASS_COUNT] VT_HIDDEN;

/* Class of each size up to VT_SMALL_TABLE_MAX, indexed by (size + 15) / 16. */
#define VT_SMALL_TABLE_MAX 4096
extern const uint8_t vt_small_class[VT_SMALL_TABLE_MAX / 16 + 1] VT_HIDDEN;

/* The class of n bytes, n <= VT_SMALL_TABLE_MAX: one byte load. */
VT_INLINE unsigned vt_size_class_small(size_t n)
{
    return vt_small_class[(n + 15) >> 4];
}

/* Class of each size above VT_SMALL_TABLE_MAX, by KiB: (size - 1) / 1024 - VT_MEDIUM_FIRST_KIB. */
#define VT_MEDIUM_FIRST_KIB (VT_SMALL_TABLE_MAX >> 10)
extern const uint8_t vt_medium_class[(VT_SMALL_MAX >> 10) - VT_MEDIUM_FIRST_KIB] VT_HIDDEN;

/* The class of n bytes, VT_SMALL_TABLE_MAX < n <= VT_SMALL_MAX: one byte load. */
VT_INLINE unsigned vt_size_class_medium(size_t n)
{
    return vt_medium_class[((n - 1) >> 10) - VT_MEDIUM_FIRST_KIB];
}

/* The smallest class whose blocks hold n bytes, n <= VT_SMALL_MAX, in constant time (review
 * point e: never a scan over the classes). */
VT_INLINE unsigned vt_size_class(size_t n)
{
    return n <= VT_SMALL_TABLE_MAX ? vt_size_class_small(n) : vt_size_class_medium(n);
}

/* ---- spanmap.c -------------------------------------------------------------------------- */

/* The map has a byte per VT_SPAN_SIZE chunk of the address space, in leaves of 256 KiB (2^18
 * chunks, 1 TiB of addresses) that are mapped when a span first lands in their range (only
 * the leaf's pages that name spans become resident); the root of 256 leaf pointers is all
 * that is static (2 KiB), and its unused entries point to one shared leaf of zeros, so the
 * lookup needs no test for a missing leaf. Bytes, not bits: one load and a compare, where a
 * bit map needs a shift and a bit test more. Few roots, because each is a pointer the dynamic
 * linker relocates when the library loads: 2,048 of them made 48 KiB of relocations, read
 * (and resident) in every process. */
#define VT_SPANMAP_CHUNKS     ((uintptr_t)1 << (VT_ADDRESS_BITS - VT_SPAN_SHIFT))
#define VT_SPANMAP_LEAF_SHIFT 18
#define VT_SPANMAP_LEAF_BYTES ((size_t)1 << VT_SPANMAP_LEAF_SHIFT)
#define VT_SPANMAP_ROOTS      (VT_SPANMAP_CHUNKS >> VT_SPANMAP_LEAF_SHIFT)
extern _Atomic(_Atomic uint8_t *) vt_spanmap_root[VT_SPANMAP_ROOTS] VT_HIDDEN;

bool vt_spanmap_add(vt_span_t *span) VT_HIDDEN; /* false: no memory for a leaf */
void vt_spanmap_remove(vt_span_t *span) VT_HIDDEN;

/* True when p lies in one of our spans; false for NULL, large blocks and every pointer we did
 * not allocate. Relaxed: a pointer the program may free was returned by malloc after its span
 * was registered (its leaf published first), and the program's own synchronisation that
 * passed the pointer to this thread orders that registration before these loads. */
VT_INLINE bool vt_in_span(const void *p)
{
    uintptr_t chunk = (uintptr_t)p >> VT_SPAN_SHIFT;
    if (vt_unlikely(chunk >= VT_SPANMAP_CHUNKS))
        return false;
    _Atomic uint8_t *leaf = atomic_load_explicit(&vt_spanmap_root[chunk >> VT_SPANMAP_LEAF_SHIFT],
                                                 memory_order_relaxed);
    return atomic_load_explicit(&leaf[chunk & (VT_SPANMAP_LEAF_BYTES - 1)], memory_order_relaxed) !=
           0;
}

/* The span p lies in, when vt_in_span(p). */
VT_INLINE vt_span_t *vt_span_base(const void *p)
{
    return (vt_span_t *)((uintptr_t)p & ~(uintptr_t)VT_SPAN_MASK);
}

/* The descriptor of the page whose first unit is u, kept at the slot of u's six bits reversed:
 * a span whose pages start only at units aligned to 2^k (blocks aligned to 128 KiB or more,
 * each alone in its run) uses only the first 64 >> k slots, and its header makes half or less
 * of its pages resident (the 64 descriptors take 12 KiB). Slow paths only. */
VT_INLINE vt_page_t *vt_span_descriptor(vt_span_t *span, unsigned u)
{
    unsigned r =
        (u & 1) << 5 | (u & 2) << 3 | (u & 4) << 1 | (u & 8) >> 1 | (u & 16) >> 3 | (u & 32) >> 5;
    return &span->pages[r];
}

/* The page holding p in its span: one load. vt_page_none when the unit is free or the header.
 * Relaxed for the same reason as vt_in_span. The slot's byte offset comes straight from p's
 * unit bits, shifted to a multiple of the slot's size: GCC indexed by the unit instead and
 * added the array's offset with an instruction of its own, on every free. */
VT_INLINE vt_page_t *vt_span_page(vt_span_t *span, const void *p)
{
    _Static_assert(sizeof(span->unit_page[0]) == 8, "the shift below assumes 8-byte slots");
    size_t offset = ((uintptr_t)p >> (VT_UNIT_SHIFT - 3)) & ((size_t)(VT_SPAN_UNITS - 1) << 3);
    _Atomic(vt_page_t *) *slot = (void *)((char *)span->unit_page + offset);
    return atomic_load_explicit(slot, memory_order_relaxed);
}

/* Points units [first, first + n) of a span at `page` (vt_page_none: free). Relaxed: see
 * vt_span_page; the page's fields are published by whatever hands the block to a freeing
 * thread. */
VT_INLINE void vt_span_set_units(vt_span_t *span, unsigned first, unsigned n, vt_page_t *page)
{
    for (unsigned u = first; u < first + n; u++)
        atomic_store_explicit(&span->unit_page[u], page, memory_order_relaxed);
}

/* ---- page.c ----------------------------------------------------------------------------- */

/* The first block of a page: its first unit's address, unit-aligned. */
VT_INLINE uint8_t *vt_page_area(const vt_page_t *page)
{
    return (uint8_t *)vt_span_base(page) + ((uintptr_t)page->first_unit << VT_UNIT_SHIFT);
}

/* True when block p of the page lies, even in part, in a granule whose memory was given back to
 * the OS while the page sat in the global cache (`purged`, the page's word: pagepurge.c). Such
 * a block is free and on no list, so freeing it is a double free. p must be a block start. */
VT_INLINE bool vt_page_block_purged(const vt_page_t *page, uint32_t purged, const void *p)
{
    unsigned shift = purged >> VT_PURGED_SHIFT_BIT;
    uintptr_t offset = (uintptr_t)p - (uintptr_t)vt_page_area(page);
    unsigned first = (unsigned)(offset >> shift);
    unsigned last = (unsigned)((offset + page->bsize - 1) >> shift);
    uint32_t granules = (2u << last) - (1u << first); /* bits first..last */
    return (purged & VT_PURGED_MASK & granules) != 0;
}

/* The next block of a free list (NULL at the end), from the mangled link of block b. A link
 * that was overwritten reveals an address that is most likely misaligned: since blocks are
 * 16-byte aligned, the low four bits of a true link's mangled form are those of the secret,
 * never all zero, so any write that leaves a zero low byte (a string's NUL) is caught for
 * sure, and random damage 15 times in 16. (glibc also mixes in the link's own address,
 * because it has no secret; with one, that adds an instruction and no protection: whoever can
 * read a free block and knows where its link points learns the mask either way.) */
VT_INLINE vt_block_t *vt_block_next(const vt_block_t *b)
{
    return (vt_block_t *)(b->link ^ vt_link_secret);
}

VT_INLINE void vt_block_set_next(vt_block_t *b, const vt_block_t *next)
{
    b->link = (uintptr_t)next ^ vt_link_secret;
}

/* False for a link that cannot be true (see vt_block_next). */
VT_INLINE bool vt_block_link_ok(const vt_block_t *next)
{
    return ((uintptr_t)next & (VT_MIN_ALIGN - 1)) == 0;
}

/* The key a free block carries in its second word. */
VT_INLINE uintptr_t vt_block_key(const vt_block_t *b)
{
    return (uintptr_t)b ^ vt_secret;
}

/* The owner word of a page, for comparison with the caller's own cache. See page.c for why a
 * relaxed load is exact for that comparison. */
VT_INLINE uintptr_t vt_page_owner(vt_page_t *page)
{
    return atomic_load_explicit(&page->owner, memory_order_relaxed);
}

/* The statistics' counter of the free fast path (a plain add on the page's hot line, see
 * page.c). A build with -DVT_FAST_COUNTERS=0 leaves it out: statistics per class are then
 * wrong; it exists only to measure what the counter costs (bench/RESULTS.md). */
#ifndef VT_FAST_COUNTERS
#define VT_FAST_COUNTERS 1
#endif

/* A page's sampling countdown when heap profiling is off: no page allocates this much. */
#define VT_SAMPLE_NEVER (INT64_MAX / 2)

/* Counts `size` bytes down on the page's sampling countdown (and so in its statistics of bytes
 * asked for): true when this allocation is to be sampled (heap profiling, prof.c). A subtract
 * and a branch on its sign: when profiling is off the countdown starts at VT_SAMPLE_NEVER and
 * the branch is never taken. Owner only. */
VT_INLINE bool vt_page_count_down(vt_page_t *page, size_t size)
{
    return vt_unlikely((page->sample_left -= (int64_t)size) < 0);
}

/* sample.c: bytes until the next sample (VT_SAMPLE_NEVER when profiling is off), and the
 * logarithm the draw takes. */
int64_t vt_sample_draw(void) VT_HIDDEN;
double vt_sample_neg_log(uint64_t r) VT_HIDDEN;
/* The calling thread's draws made ahead (sample.c), taken from the last; vt_sample_refill makes
 * the next batch and returns the first of it to be taken. */
#define VT_SAMPLE_BATCH 8
extern __thread int64_t vt_sample_draws[VT_SAMPLE_BATCH] VT_HIDDEN;
int64_t vt_sample_refill(void) VT_NOINLINE VT_HIDDEN;

/* The next draw, with profiling on: a sample takes one from the batch, inline. */
VT_INLINE int64_t vt_sample_next(void)
{
    if (vt_unlikely(vt_thread.sample_draws_left == 0))
        return vt_sample_refill();
    return vt_sample_draws[--vt_thread.sample_draws_left];
}

/* A page's countdown starts afresh after a sample (the exponential draw is memoryless, so
 * restarting it at any time keeps every byte's chance the same); what it counted down so far
 * goes to the bytes asked for. Owner only. */
VT_INLINE void vt_page_sample_restart(vt_page_t *page)
{
    page->requested += (uint64_t)(page->sample_base - page->sample_left);
    page->sample_left = page->sample_base = vt_sample_next(); /* on: the countdown ran out */
}

/* Pops the first block of a page whose free list is not empty (the malloc fast path, alloc.h,
 * and the slow path after a refill); NULL when its link was damaged (left for the caller to
 * report). Clearing the key is what makes a later double free recognisable (vt_block_key). No
 * counter: the mallocs of a page are counted from `used` when it publishes (page.c). Owner
 * only. */
VT_INLINE vt_block_t *vt_page_pop(vt_page_t *page)
{
    vt_block_t *block = page->free;
    vt_block_t *next = vt_block_next(block);
    if (vt_unlikely(!vt_block_link_ok(next)))
        return NULL;
    page->free = next;
    page->used++;
    block->key = 0;
    return block;
}

/* Pushes a block its owner frees onto the page's free list, first in line for the next malloc
 * (LIFO: the block is still in cache), marked with its key. The caller counts `used` down.
 * Owner only. */
VT_INLINE void vt_page_push(vt_page_t *page, vt_block_t *block)
{
    block->key = vt_block_key(block);
    vt_block_set_next(block, page->free);
    page->free = block;
    if (VT_FAST_COUNTERS)
        page->pushes++;
}

#include "prototypes.h"

#endif /* VT_INTERNAL_H */
