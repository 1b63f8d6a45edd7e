/*
 * alloc.h - the C allocation API as inline functions, instantiated twice: under the vt_* names
 * (alloc.c) and under the standard names (override.c), so neither pays an extra call.
 *
 * Layer: 13 API (with alloc.c)
 *
 * Owns: the fast paths of malloc and free, the only copy of each; their slow paths and the
 * other entry points are in alloc.c. Everything else they use is an inline helper of
 * internal.h (size classes, the span map, a page's free list).
 */
#ifndef VT_ALLOC_H
#define VT_ALLOC_H

#include "internal.h"

#include <malloc.h>
#include <stdio.h>

/* The slow paths the fast paths branch to (alloc.c). The size comes first in the calls from
 * malloc's fast path (and in vt_tcache_alloc_sampled): it arrives in the first argument's
 * register and stays there, and the fast path copies no register (with the class as a size_t,
 * two instructions fewer: bench/run-instr). */
void *vt_api_alloc_slow(size_t size, vt_tcache_t *tc, unsigned class_idx) VT_HIDDEN;
void vt_api_free_other(vt_tcache_t *tc, vt_page_t *page, void *p) VT_HIDDEN;
void *vt_api_malloc_large(size_t size) VT_HIDDEN;
void vt_api_free_nonspan(void *p) VT_HIDDEN;
void *vt_api_calloc(size_t count, size_t size) VT_HIDDEN;
void *vt_api_realloc(void *p, size_t size) VT_HIDDEN;
void *vt_api_reallocarray(void *p, size_t count, size_t size) VT_HIDDEN;
int vt_api_posix_memalign(void **out, size_t alignment, size_t size) VT_HIDDEN;
void *vt_api_memalign(size_t alignment, size_t size) VT_HIDDEN;
void *vt_api_valloc(size_t size) VT_HIDDEN;
void *vt_api_pvalloc(size_t size) VT_HIDDEN;
size_t vt_api_malloc_usable_size(void *p) VT_HIDDEN;
void vt_api_free_sized(void *p, size_t size) VT_HIDDEN;
void vt_api_free_aligned_sized(void *p, size_t alignment, size_t size) VT_HIDDEN;
int vt_api_malloc_trim(size_t pad) VT_HIDDEN;

/* The pop from the class's current page. No lock, no system call, three branches: an empty
 * list (including the static empty page of a bin, or of a thread that has no cache yet) goes
 * to the slow path, an allocation the heap profiler samples (never when it is off) to
 * prof.c, a damaged link to the report. The class comes as a size_t because it indexes the
 * bins: an unsigned one was widened with a register copy on every call. */
VT_INLINE void *vt_api_alloc_class(vt_tcache_t *tc, size_t class_idx, size_t size)
{
    vt_page_t *page = tc->alloc_page[class_idx];
    if (vt_unlikely(page->free == NULL))
        return vt_api_alloc_slow(size, tc, class_idx);
    if (vt_page_count_down(page, size))
        return vt_tcache_alloc_sampled(size, tc, page, class_idx);
    vt_block_t *block = vt_page_pop(page);
    if (vt_unlikely(block == NULL))
        return vt_tcache_alloc_corrupt(tc, page, class_idx, size);
    return block;
}

/* malloc: the size class (one compare and a table load for sizes up to 4 KiB), then the pop. */
VT_INLINE void *vt_api_malloc(size_t size)
{
    if (vt_likely(size <= VT_SMALL_TABLE_MAX))
        return vt_api_alloc_class(vt_thread.tcache, vt_size_class_small(size), size);
    if (size <= VT_SMALL_MAX)
        return vt_api_alloc_class(vt_thread.tcache, vt_size_class_medium(size), size);
    return vt_api_malloc_large(size);
}

/*
 * free: find the span (one bit in the span map), the page (one load), and compare the page's
 * owner with this thread's cache (see page.c for why that relaxed comparison is exact). On the
 * owner's page the block goes back on the page's free list, first in line for the next malloc
 * (LIFO: the block is still in cache): no atomic, no lock. Everything else (NULL,
 * large blocks, foreign pointers, other threads' pages) branches off to a slow path. The key
 * test catches a double free of a block that is still free, in every build. Large blocks in
 * spans belong to no cache, so their frees always branch off.
 */
VT_INLINE void vt_api_free(void *p)
{
    /* Misaligned pointers are never block starts: the slow path names the error. */
    if (vt_unlikely(!vt_in_span(p) || ((uintptr_t)p & (VT_MIN_ALIGN - 1)) != 0)) {
        vt_api_free_nonspan(p);
        return;
    }
    vt_page_t *page = vt_span_page(vt_span_base(p), p);
    vt_tcache_t *tc = vt_thread.tcache;
    if (vt_likely(vt_page_owner(page) == (uintptr_t)tc)) {
        vt_block_t *block = p;
        if (vt_unlikely(block->key == vt_block_key(block))) {
            vt_report_misuse("free", "double free (block is already free)", p);
            return;
        }
        if (VT_DEBUG && vt_unlikely(!vt_page_is_block_start(page, p))) {
            vt_report_misuse("free", "invalid pointer (inside a block, not at its start)", p);
            return;
        }
        vt_page_push(page, block);
        if (vt_unlikely(--page->used == 0))
            vt_tcache_page_emptied(tc, page);
        return;
    }
    vt_api_free_other(tc, page, p);
}

#endif /* VT_ALLOC_H */
