/*
 * alloc.c - the entry points beyond malloc and free, with glibc's documented semantics, and
 * the exported vt_* names.
 *
 * Layer: 13 API
 * Calls: os.c, report.c, sizeclass.c, spanmap.c, page.c, thread.c, prof.c, proflarge.c,
 *        large.c, largespan.c, tcache.c, purge.c, init.c, dumps.c
 *
 * Owns: argument checking, errno, overflow, the realloc and alignment policies, and the slow
 * paths of malloc and free: where a thread's first allocation starts its cache (init.c) and
 * where the purge schedule gets its turns (purge.c), so that the layers below never call up.
 * Knows nothing of being preloaded.
 *
 * Choices where C and glibc differ (glibc 2.36, the version this was checked against):
 *   realloc(p, 0)          frees p and returns NULL, as glibc does.
 *   aligned_alloc(a, n)    is memalign: any size; a non-power-of-two alignment is rounded up
 *                          to the next power of two (glibc < 2.38 aliases the two).
 *   posix_memalign         EINVAL unless the alignment is a power of two and a multiple of
 *                          sizeof(void *); *out is untouched on any error.
 *   sizes above PTRDIFF_MAX fail with ENOMEM, as glibc's do.
 */
#define _GNU_SOURCE
#include "alloc.h"

/* ---- Slow paths of malloc and free ------------------------------------------------------ */

/* A thread's first allocation: the process is initialised if need be and the thread's cache
 * started (init.c). When that is not possible (no memory, or a vfork child) the caller goes
 * on with `tc`, and the orphan cache serves it. errno stays as it was. */
static vt_tcache_t *start_thread(vt_tcache_t *tc)
{
    int saved = errno;
    vt_tcache_t *mine = vt_init_thread();
    errno = saved;
    return mine != NULL ? mine : tc;
}

/* The class's current page is empty, or the thread has no cache yet. Every few dozen slow
 * calls, housekeeping (purge.c). A success keeps errno as it was. */
void *vt_api_alloc_slow(size_t size, vt_tcache_t *tc, unsigned class_idx)
{
    if (vt_unlikely(tc->state == VT_TCACHE_UNSTARTED)) {
        tc = start_thread(tc);
    } else if (vt_likely(tc->state == VT_TCACHE_LIVE)) {
        vt_purge_housekeeping(tc);
    }
    /* Relaxed: a request seen one slow path late is served then. */
    if (vt_unlikely(atomic_load_explicit(&vt_dumps_pending, memory_order_relaxed)))
        vt_dumps_serve();
    void *p = vt_tcache_alloc_slow(tc, class_idx, size);
    vt_purge_after_take();
    return p;
}

/* ---- Sizes above the classes, and frees that are not in a span --------------------------- */

/* A large block, sampled by the heap profiler when its countdown says so. */
static void *large_sampled(void *p, size_t size)
{
    if (vt_unlikely(p != NULL && vt_prof_large_due(size)))
        vt_prof_record_large(p, size);
    return p;
}

/* A block up to VT_LARGE_SPAN_MAX is a run of units: first from the thread's stash, where its
 * own frees of such blocks leave them (no lock: a server that builds a 300 KiB reply per
 * request takes and gives back the same run), else from the global cache (largespan.c). A
 * thread whose first allocations are large ones starts its cache (and stash) here: else each
 * of its frees would give the run back under the global lock. */
static void *large_alloc(size_t size, bool zero)
{
    vt_tcache_t *tc = vt_thread.tcache;
    if (vt_unlikely(tc->state == VT_TCACHE_UNSTARTED) && size <= VT_LARGE_SPAN_MAX)
        tc = start_thread(tc);
    if (size <= VT_LARGE_SPAN_MAX && tc->state == VT_TCACHE_LIVE) {
        vt_purge_housekeeping(tc); /* a slow path like any other */
        vt_page_t *run =
            vt_tcache_take_run(tc, (unsigned)((size + VT_UNIT_SIZE - 1) >> VT_UNIT_SHIFT));
        if (run != NULL)
            return large_sampled(vt_large_start_in_span(run, size, zero, true, &tc->counters),
                                 size);
    }
    void *p = large_sampled(vt_large_alloc(size, 0, zero), size);
    vt_purge_after_take();
    return p;
}

void *vt_api_malloc_large(size_t size)
{
    vt_init(); /* the first malloc of the process may be a large one */
    return large_alloc(size, false);
}

void vt_api_free_nonspan(void *p)
{
    if (p == NULL)
        return;
    if (vt_in_span(p)) { /* a misaligned pointer into a span */
        vt_page_check_block(vt_span_page(vt_span_base(p), p), p, "free");
        return;
    }
    vt_prof_forget_large(p);
    if (!vt_large_free(p))
        vt_report_misuse("free", "invalid or double free (not a live vtmalloc block)", p);
}

/* free() of a block in a page the caller does not own: large blocks in spans, then other
 * threads' pages (tcache.c). */
void vt_api_free_other(vt_tcache_t *tc, vt_page_t *page, void *p)
{
    uintptr_t owner = vt_page_owner(page);
    if (vt_unlikely(owner == VT_OWNER_PROF)) {
        vt_prof_free_small(page, p);
        return;
    }
    if (vt_unlikely(owner == VT_OWNER_LARGE)) {
        vt_prof_forget_large(p);
        vt_tcache_counters_t *mine = tc->state == VT_TCACHE_LIVE ? &tc->counters : NULL;
        vt_page_t *run = vt_large_free_in_span(page, p, "free", mine);
        if (run != NULL)
            vt_tcache_keep_run(tc, run);
        return;
    }
    vt_tcache_free_other(tc, page, p);
}

/* ---- calloc, realloc -------------------------------------------------------------------- */

void *vt_api_calloc(size_t count, size_t size)
{
    size_t total;
    if (vt_unlikely(__builtin_mul_overflow(count, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    if (vt_likely(total <= VT_SMALL_MAX)) {
        void *p = vt_api_alloc_class(vt_thread.tcache, vt_size_class(total), total);
        if (p != NULL)
            memset(p, 0, total);
        return p;
    }
    vt_init();
    return large_alloc(total, true);
}

/* The usable size of a live block, or 0 after reporting `fn`'s misuse of p. */
static size_t checked_size(void *p, const char *fn)
{
    if (vt_in_span(p)) {
        vt_page_t *page = vt_span_page(vt_span_base(p), p);
        return vt_page_check_block(page, p, fn) ? page->bsize : 0;
    }
    size_t size = vt_large_usable_size(p);
    if (size == 0)
        vt_report_misuse(fn, "invalid pointer (not a live vtmalloc block)", p);
    return size;
}

void *vt_api_realloc(void *p, size_t size)
{
    if (p == NULL)
        return vt_api_malloc(size);
    if (size == 0) {
        vt_api_free(p);
        return NULL;
    }
    size_t old_size = checked_size(p, "realloc");
    if (old_size == 0) { /* reported; in warn mode the block is left alone */
        errno = EINVAL;
        return NULL;
    }
    if (!vt_in_span(p)) { /* a mapped block, whatever its size (aligned ones can be small) */
        if (size > VT_SMALL_MAX) {
            vt_prof_forget_large(p);
            return large_sampled(vt_large_realloc(p, size), size); /* mremap: no copy */
        }
    } else if (vt_page_owner(vt_span_page(vt_span_base(p), p)) == VT_OWNER_LARGE) {
        if (size > VT_SMALL_MAX && size <= VT_LARGE_SPAN_MAX &&
            vt_large_resize_in_span(vt_span_page(vt_span_base(p), p), size))
            return p; /* its run shrank, or grew into the free units after it */
    } else if (size <= VT_SMALL_MAX && vt_size_class(size) == vt_size_class(old_size)) {
        return p; /* same class: nothing to do */
    }
    int saved = errno;
    void *q = vt_api_malloc(size);
    if (q == NULL) {
        if (size > old_size)
            return NULL; /* errno ENOMEM; p untouched */
        errno = saved;   /* a shrink can always stay in place: success, errno as it was */
        return p;
    }
    memcpy(q, p, size < old_size ? size : old_size);
    vt_api_free(p);
    return q;
}

void *vt_api_reallocarray(void *p, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return vt_api_realloc(p, total);
}

/* ---- Aligned allocation ----------------------------------------------------------------- */

/*
 * An alignment up to a unit (32 KiB) is served by a size class: round the size up to a
 * multiple of the alignment; the class of that size has a block size that is a multiple of
 * the alignment (sizeclass.c), and pages start on a unit boundary, so every block of the page
 * is aligned. No padding, no interior pointers, free() stays the fast path. Larger
 * alignments, or sizes beyond the classes, are large blocks (largespan.c): runs of units that
 * start at a multiple of the alignment, or, aligned above half a span (1 MiB) or larger than
 * 960 KiB, mappings of their own (large.c).
 */
static void *aligned_pow2(size_t alignment, size_t size)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment <= VT_UNIT_SIZE) {
        size_t rounded = (size + alignment - 1) & ~(alignment - 1);
        if (rounded == 0)
            rounded = alignment;
        if (rounded <= VT_SMALL_MAX) {
            void *p = vt_api_alloc_class(vt_thread.tcache, vt_size_class(rounded), size);
            VT_ASSERT(((uintptr_t)p & (alignment - 1)) == 0);
            return p;
        }
    }
    vt_init();
    void *p = large_sampled(vt_large_alloc(size, alignment, false), size);
    vt_purge_after_take();
    return p;
}

void *vt_api_memalign(size_t alignment, size_t size)
{
    if (alignment <= VT_MIN_ALIGN)
        return vt_api_malloc(size);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment & (alignment - 1)) /* round up to a power of two, as glibc does */
        alignment = (size_t)1 << (64 - __builtin_clzll(alignment));
    return aligned_pow2(alignment, size);
}

int vt_api_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    void *p = alignment <= VT_MIN_ALIGN ? vt_api_malloc(size) : aligned_pow2(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void *vt_api_valloc(size_t size)
{
    return vt_api_memalign(vt_os_page_size(), size);
}

void *vt_api_pvalloc(size_t size)
{
    size_t page = vt_os_page_size();
    if (size > SIZE_MAX - (page - 1)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = (size + page - 1) & ~(page - 1);
    return vt_api_memalign(page, rounded ? rounded : page);
}

/* ---- Sizes ------------------------------------------------------------------------------ */

size_t vt_api_malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    return checked_size(p, "malloc_usable_size");
}

/* C23's sized frees. The size is a promise from the program; debug builds check it. */
void vt_api_free_sized(void *p, size_t size)
{
    if (VT_DEBUG && p != NULL && size > vt_api_malloc_usable_size(p))
        vt_report_misuse("free_sized", "size larger than the block", p);
    vt_api_free(p);
}

void vt_api_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    if (VT_DEBUG && p != NULL && alignment != 0 && ((uintptr_t)p & (alignment - 1)) != 0)
        vt_report_misuse("free_aligned_sized", "pointer not aligned as declared", p);
    vt_api_free_sized(p, size);
}

int vt_api_malloc_trim(size_t pad)
{
    (void)pad; /* there is no heap top to keep padding at: spans are returned whole */
    return vt_purge_trim();
}

/* ---- The exported vt_* names ------------------------------------------------------------ */

/* malloc and free inline their fast paths into their vt_* names, so that calling them costs no
 * extra call. The others are aliases of their vt_api_* function: one copy of the code serves
 * both names (a forwarding body would get the whole function inlined into it again, about 5 KiB
 * of text that every process using the library would map). */
#define VT_API_ALIAS(target) __attribute__((alias(#target), visibility("default")))

VT_EXPORT VT_HOT_ENTRY void *vt_malloc(size_t size)
{
    return vt_api_malloc(size);
}
VT_EXPORT VT_HOT_ENTRY void vt_free(void *p)
{
    vt_api_free(p);
}
void *vt_calloc(size_t count, size_t size) VT_API_ALIAS(vt_api_calloc);
void *vt_realloc(void *p, size_t size) VT_API_ALIAS(vt_api_realloc);
void *vt_reallocarray(void *p, size_t count, size_t size) VT_API_ALIAS(vt_api_reallocarray);
int vt_posix_memalign(void **out, size_t alignment, size_t size)
    VT_API_ALIAS(vt_api_posix_memalign);
void *vt_aligned_alloc(size_t alignment, size_t size) VT_API_ALIAS(vt_api_memalign);
void *vt_memalign(size_t alignment, size_t size) VT_API_ALIAS(vt_api_memalign);
void *vt_valloc(size_t size) VT_API_ALIAS(vt_api_valloc);
void *vt_pvalloc(size_t size) VT_API_ALIAS(vt_api_pvalloc);
size_t vt_malloc_usable_size(void *p) VT_API_ALIAS(vt_api_malloc_usable_size);
void vt_free_sized(void *p, size_t size) VT_API_ALIAS(vt_api_free_sized);
void vt_free_aligned_sized(void *p, size_t alignment, size_t size)
    VT_API_ALIAS(vt_api_free_aligned_sized);
int vt_malloc_trim(size_t pad) VT_API_ALIAS(vt_api_malloc_trim);
VT_EXPORT const char *vt_version(void)
{
    return VTMALLOC_VERSION;
}
