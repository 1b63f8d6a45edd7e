/*
 * internal.h - attributes, assertions, the prototypes every file shares (grouped by the file
 * that defines them) and the tiny inline helpers of the hot paths.
 *
 * Calls go one way: os <- spanmap, page, large <- global <- tcache <- alloc <- override.
 * Every function declared here has hidden visibility: only include/vtmalloc.h and the
 * override layer export symbols.
 */
#ifndef VT_INTERNAL_H
#define VT_INTERNAL_H

#include "types.h"
#include "vtmalloc.h"
#include "lock.h"

#include <errno.h>
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

/* The calling thread's cache. Starts as the static "unstarted" cache whose bins are all empty,
 * so the first malloc of a thread falls into the slow path, which starts a real cache: the
 * fast path never asks whether the thread is initialised. Initial-exec TLS: one %fs load. */
extern __thread vt_tcache_t *vt_tls_tcache VT_HIDDEN __attribute__((tls_model("initial-exec")));

/* Random at start-up (init.c), constant after: keys of free blocks, and the mangling of their
 * links (whose low four bits are never all zero: see vt_block_next). */
extern uintptr_t vt_secret VT_HIDDEN;
extern uintptr_t vt_link_secret VT_HIDDEN;

extern vt_options_t vt_options VT_HIDDEN;

/* The id of the process whose threads own the thread caches: set at start-up and in the child
 * of a fork (init.c). A vfork or CLONE_VM child shares our memory but has another id; it must
 * neither start a cache nor judge whether our threads are gone (tcache.c). */
extern int32_t vt_process_id VT_HIDDEN;

/* Adds one to a counter that only the calling thread writes: a relaxed load and a relaxed
 * store, not a locked add, so it costs what a plain increment costs; readers on other threads
 * (stats.c) see some recent value, never a torn one. */
VT_INLINE void vt_count(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
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

/* The class of n bytes, VT_SMALL_TABLE_MAX < n <= VT_SMALL_MAX: the position of the top bit of
 * n-1 and the two bits below it. */
VT_INLINE unsigned vt_size_class_medium(size_t n)
{
    size_t m = n - 1;
    unsigned top = 63u - (unsigned)__builtin_clzll(m); /* 12 <= top <= 17 */
    return 8u + (top - 7u) * 4u + (unsigned)(m >> (top - 2u)) - 4u;
}

/* The smallest class whose blocks hold n bytes, n <= VT_SMALL_MAX, in constant time (review
 * point e: never a scan over the classes). */
VT_INLINE unsigned vt_size_class(size_t n)
{
    return n <= VT_SMALL_TABLE_MAX ? vt_size_class_small(n) : vt_size_class_medium(n);
}

/* ---- spanmap.c -------------------------------------------------------------------------- */

/* The map has a byte per VT_SPAN_SIZE chunk of the address space, in leaves of 32 KiB (2^15
 * chunks, 128 GiB of addresses) that are mapped when a span first lands in their range; the
 * root of 2,048 leaf pointers is all that is static (16 KiB), and its unused entries point to
 * one shared leaf of zeros, so the lookup needs no test for a missing leaf. Bytes, not bits:
 * one load and a compare, where a bit map needs a shift and a bit test more. */
#define VT_SPANMAP_CHUNKS     ((uintptr_t)1 << (VT_ADDRESS_BITS - VT_SPAN_SHIFT))
#define VT_SPANMAP_LEAF_SHIFT 15
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

/* The page holding p in its span: one load. vt_page_none when the unit is free or the header.
 * Relaxed for the same reason as vt_in_span. */
VT_INLINE vt_page_t *vt_span_page(vt_span_t *span, const void *p)
{
    size_t unit = ((uintptr_t)p & VT_SPAN_MASK) >> VT_UNIT_SHIFT;
    return atomic_load_explicit(&span->unit_page[unit], memory_order_relaxed);
}

/* ---- page.c ----------------------------------------------------------------------------- */

/* The first block of a page: its first unit's address, unit-aligned. */
VT_INLINE uint8_t *vt_page_area(const vt_page_t *page)
{
    uintptr_t span = (uintptr_t)page & ~(uintptr_t)VT_SPAN_MASK;
    return (uint8_t *)(span + ((uintptr_t)page->first_unit << VT_UNIT_SHIFT));
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

extern _Atomic uint64_t vt_page_class_pages[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_gets[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_puts[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_requested[VT_CLASS_COUNT] VT_HIDDEN;
void vt_page_publish(vt_page_t *page) VT_HIDDEN;

void vt_page_init(vt_span_t *span, unsigned first_unit, unsigned units) VT_HIDDEN;
void vt_page_assign(vt_page_t *page, unsigned class_idx, uintptr_t owner) VT_HIDDEN;
void vt_page_unassign(vt_page_t *page) VT_HIDDEN;
void vt_page_assign_large(vt_page_t *page) VT_HIDDEN;
bool vt_page_release_large(vt_page_t *page) VT_HIDDEN;
bool vt_page_refill(vt_page_t *page) VT_HIDDEN;
uint32_t vt_page_collect_remote(vt_page_t *page) VT_HIDDEN;
bool vt_page_try_detach(vt_page_t *page, vt_tcache_t *tc) VT_HIDDEN;
bool vt_page_try_reattach(vt_page_t *page, vt_tcache_t *tc) VT_HIDDEN;
bool vt_page_push_remote(vt_page_t *page, vt_block_t *first, vt_block_t *last,
                         uint32_t count) VT_HIDDEN;
bool vt_page_is_block_start(const vt_page_t *page, const void *p) VT_HIDDEN;
bool vt_page_link_in_page(const vt_page_t *page, const vt_block_t *next) VT_HIDDEN;
bool vt_page_check_block(vt_page_t *page, void *p, const char *fn) VT_HIDDEN;

void vt_list_push_front(vt_page_list_t *list, vt_page_t *page) VT_HIDDEN;
void vt_list_push_back(vt_page_list_t *list, vt_page_t *page) VT_HIDDEN;
void vt_list_remove(vt_page_list_t *list, vt_page_t *page) VT_HIDDEN;

/* ---- tcache.c --------------------------------------------------------------------------- */

void *vt_tcache_alloc_slow(vt_tcache_t *tc, unsigned class_idx, size_t size) VT_HIDDEN;
void *vt_tcache_alloc_corrupt(vt_tcache_t *tc, vt_page_t *page, unsigned class_idx,
                              size_t size) VT_COLD VT_HIDDEN;

/* The statistics' counters on the fast paths (three plain adds on the page's hot line, see
 * page.c). A build with -DVT_FAST_COUNTERS=0 leaves them out: statistics per class are then
 * wrong; it exists only to measure what the counters cost (bench/RESULTS.md). */
#ifndef VT_FAST_COUNTERS
#define VT_FAST_COUNTERS 1
#endif

/* The malloc fast path: pop the first free block of the class's current page. No lock, no
 * system call, two branches: an empty list (including the static empty page of a bin, or of a
 * thread that has no cache yet) goes to the slow path, a damaged link to the report. Clearing the
 * key is what makes a later double free recognisable (vt_block_key). The two counters (statistics,
 * page.c) are plain adds on the line the pop writes anyway. */
VT_INLINE void *vt_tcache_alloc(vt_tcache_t *tc, unsigned class_idx, size_t size)
{
    vt_page_t *page = tc->alloc_page[class_idx];
    vt_block_t *block = page->free;
    if (vt_unlikely(block == NULL))
        return vt_tcache_alloc_slow(tc, class_idx, size);
    vt_block_t *next = vt_block_next(block);
    if (vt_unlikely(!vt_block_link_ok(next)))
        return vt_tcache_alloc_corrupt(tc, page, class_idx, size);
    page->free = next;
    page->used++;
    block->key = 0;
    if (VT_FAST_COUNTERS) {
        page->pops++;
        page->requested += size;
    }
    return block;
}

void vt_tcache_free_other(vt_tcache_t *tc, vt_page_t *page, void *p) VT_HIDDEN;
/* free() of a block in a page the caller does not own: large blocks in spans, then
 * vt_tcache_free_other (alloc.c). */
void vt_api_free_other(vt_tcache_t *tc, vt_page_t *page, void *p) VT_HIDDEN;
void vt_tcache_page_emptied(vt_tcache_t *tc, vt_page_t *page) VT_HIDDEN;
/* Free runs of units (large blocks in spans) kept in the thread's stash and taken from it. */
vt_page_t *vt_tcache_take_run(vt_tcache_t *tc, unsigned units) VT_HIDDEN;
void vt_tcache_keep_run(vt_tcache_t *tc, vt_page_t *page) VT_HIDDEN;
void vt_tcache_thread_exit(vt_tcache_t *tc) VT_HIDDEN;
void vt_tcache_trim(void) VT_HIDDEN;
void vt_tcache_publish(void) VT_HIDDEN;
void vt_tcache_reap(bool all) VT_HIDDEN;
void vt_tcache_reclaim_idle(void) VT_HIDDEN;
const vt_tcache_counters_t *vt_tcache_orphan_counters(void) VT_HIDDEN;
void vt_tcache_fork_prepare(void) VT_HIDDEN;
void vt_tcache_fork_parent(void) VT_HIDDEN;
void vt_tcache_fork_child(void) VT_HIDDEN;

/* ---- global.c --------------------------------------------------------------------------- */

vt_page_t *vt_global_take_partial(unsigned class_idx) VT_HIDDEN;
void vt_global_put_partial(vt_page_t *page) VT_HIDDEN;
void vt_global_put_pages(vt_page_list_t *partial, vt_page_list_t *empty, bool idle) VT_HIDDEN;
uint32_t vt_global_take_units(vt_page_t **out, uint32_t max_count, unsigned class_idx) VT_HIDDEN;
vt_page_t *vt_global_take_run(unsigned units, unsigned align, unsigned class_idx) VT_HIDDEN;
void vt_global_put_run(vt_page_t *page) VT_HIDDEN;
bool vt_global_resize_large(vt_page_t *page, unsigned units) VT_HIDDEN;
vt_tcache_t *vt_global_tcache_get(void) VT_HIDDEN;
void vt_global_tcache_put(vt_tcache_t *tc) VT_HIDDEN;
size_t vt_global_tcache_snapshot(vt_tcache_t **caches, int32_t *tids, size_t max,
                                 size_t *live) VT_HIDDEN;
bool vt_global_tcache_claim(vt_tcache_t *tc, int32_t tid) VT_HIDDEN;
int vt_global_trim(void) VT_HIDDEN;
bool vt_global_release_reserves(void) VT_HIDDEN;
uint64_t vt_global_caches_started(void) VT_HIDDEN;
uint64_t vt_global_caches_live(void) VT_HIDDEN;
bool vt_global_nothing_to_return(void) VT_HIDDEN;
void vt_global_maybe_purge(void) VT_HIDDEN;
void vt_global_count_shared_put(unsigned class_idx) VT_HIDDEN;
void vt_global_stats(vt_stats_t *st) VT_HIDDEN;
void vt_global_fork_prepare(void) VT_HIDDEN;
void vt_global_fork_parent(void) VT_HIDDEN;
void vt_global_fork_child(void) VT_HIDDEN;

/* ---- retain.c: the retention policy ------------------------------------------------------ */

/* The highest level of something (units out of spans, bytes of large mappings) over the last
 * VTMALLOC_PURGE_MS, kept in slots that each cover a part of the window, so that an old high
 * is forgotten part by part. Protected by its user's lock. */
#define VT_WINDOW_SLOTS 8
typedef struct vt_window {
    uint64_t slot_max[VT_WINDOW_SLOTS]; /* highest level seen in each slot's time */
    uint64_t level;                     /* the level now */
    uint32_t slot_start_ms;             /* when the current slot began */
    unsigned slot;                      /* the current slot */
} vt_window_t;

void vt_window_change(vt_window_t *w, int64_t delta, uint32_t now) VT_HIDDEN;
void vt_window_forget(vt_window_t *w, uint64_t amount, uint32_t now) VT_HIDDEN;
uint64_t vt_window_peak(vt_window_t *w, uint32_t now) VT_HIDDEN;

/* Spans' units, with the global lock held (global.c). */
void vt_retain_demand_changed(int32_t delta_units, uint32_t now) VT_HIDDEN;
void vt_retain_demand_forgotten(uint32_t units, uint32_t now) VT_HIDDEN;
uint32_t vt_retain_free_allowed(uint32_t now) VT_HIDDEN;
uint32_t vt_retain_spans_needed(uint32_t now) VT_HIDDEN;

/* ---- large.c ---------------------------------------------------------------------------- */

void *vt_large_alloc(size_t size, size_t alignment, bool zero) VT_HIDDEN;
size_t vt_large_purge(bool all) VT_HIDDEN;
bool vt_large_free(void *p) VT_HIDDEN;
vt_page_t *vt_large_free_in_span(vt_page_t *page, void *p, const char *fn) VT_HIDDEN;
void *vt_large_start_in_span(vt_page_t *page, size_t size, bool zero, bool stale) VT_HIDDEN;
bool vt_large_resize_in_span(vt_page_t *page, size_t size) VT_HIDDEN;
size_t vt_large_usable_size(const void *p) VT_HIDDEN;
void *vt_large_realloc(void *p, size_t size) VT_HIDDEN;
void vt_large_stats(vt_stats_t *st) VT_HIDDEN;
size_t vt_large_cached_bytes(void) VT_HIDDEN;
void vt_large_fork_prepare(void) VT_HIDDEN;
void vt_large_fork_parent(void) VT_HIDDEN;
void vt_large_fork_child(void) VT_HIDDEN;

/* ---- os.c ------------------------------------------------------------------------------- */

size_t vt_os_page_size(void) VT_HIDDEN;
void *vt_os_map(size_t size, size_t alignment) VT_HIDDEN;
void vt_os_unmap(void *p, size_t size) VT_HIDDEN;
void *vt_os_remap(void *p, size_t old_size, size_t new_size) VT_HIDDEN;
void *vt_os_backing_alloc(size_t size, size_t alignment, vt_backing_t backing) VT_HIDDEN;
void vt_os_backing_free(void *p, size_t size, vt_backing_t backing) VT_HIDDEN;
void vt_os_write(int fd, const char *text, size_t len) VT_HIDDEN;
bool vt_os_purge(void *p, size_t size) VT_HIDDEN;
/* Milliseconds of a monotonic clock; wraps after 49 days, so compare differences only. */
uint32_t vt_os_now_ms(void) VT_HIDDEN;
void vt_os_sleep_ms(uint32_t ms) VT_HIDDEN;
int vt_os_dup_fd(int fd) VT_HIDDEN;
/* What a descriptor refers to: the same file, device or pipe gives the same identity. */
typedef struct vt_fd_identity {
    uint64_t dev, ino, rdev;
} vt_fd_identity_t;
bool vt_os_fd_identity(int fd, vt_fd_identity_t *id) VT_HIDDEN; /* false: fd is not open */
int32_t vt_os_thread_id(void) VT_HIDDEN;
int32_t vt_os_process_id(void) VT_HIDDEN;
bool vt_os_thread_gone(int32_t pid, int32_t tid) VT_HIDDEN;
VT_NORETURN void vt_os_abort(void) VT_HIDDEN;
uint64_t vt_os_random(void) VT_HIDDEN;
/* Test hook: when positive, the n-th next mapping fails (counting down to 1). */
extern _Atomic long vt_os_fail_countdown VT_HIDDEN;

/* ---- sysalloc.c ------------------------------------------------------------------------- */

/* The system allocator, for VTMALLOC_BACKING=malloc. When vtmalloc replaces malloc, these
 * reach glibc's own allocator without going through the replaced names. */
bool vt_sysalloc_init(void) VT_HIDDEN; /* false: not found, use mmap */
void *vt_sysalloc_memalign(size_t alignment, size_t size) VT_HIDDEN;
void vt_sysalloc_free(void *p) VT_HIDDEN;

/* ---- options.c -------------------------------------------------------------------------- */

void vt_options_load(void) VT_HIDDEN;

/* ---- report.c --------------------------------------------------------------------------- */

/* A small formatter into a caller's buffer: %s %d %u %zu %zx %p and %%, nothing else. Never
 * allocates; returns the length written (truncating to cap - 1). */
size_t vt_format(char *buf, size_t cap, const char *fmt, ...) VT_HIDDEN;
void vt_message(const char *fmt, ...) VT_HIDDEN;
/* Keeps a private copy of stderr for the statistics printed at exit: programs such as the
 * coreutils close stderr before the process ends. A program may also close the copy (daemons
 * close every descriptor at start) and open a file of its own under its number: the message
 * is written only to a descriptor that still refers to the stderr that was kept. */
void vt_report_keep_stderr(void) VT_HIDDEN;
void vt_message_to_kept_stderr(const char *fmt, ...) VT_HIDDEN;
/* A misuse of the API by the program: prints one line naming the pointer and the error, then
 * aborts, or returns when VTMALLOC_ON_ERROR=warn (the caller then leaks the block). */
void vt_report_misuse(const char *fn, const char *what, const void *p) VT_COLD VT_HIDDEN;
/* A free list whose link at `block` was overwritten (most likely by an overflow of the block
 * before it): reported as a misuse of malloc; returns only in warn mode. */
void vt_report_corrupt_list(const void *block) VT_COLD VT_HIDDEN;
VT_NORETURN void vt_assert_fail(const char *file, int line, const char *expr) VT_COLD VT_HIDDEN;

/* ---- init.c ----------------------------------------------------------------------------- */

void vt_init(void) VT_HIDDEN;
void vt_init_thread_cache(vt_tcache_t *tc) VT_HIDDEN;

#endif /* VT_INTERNAL_H */
