/*
 * override.c - the standard C allocation names, mapped onto vtmalloc. The only file that knows
 * it replaces the C library's allocator (with sysalloc.c built with VT_OVERRIDE, which finds
 * the replaced one for VTMALLOC_BACKING=malloc).
 *
 * Layer: 14 override
 * Calls: report.c, options.c, sizeclass.c, spanmap.c, page.c, thread.c, tcache.c, stats.c,
 *        alloc.c
 *
 * Owns: the exported standard symbols. Each function only forwards (to alloc.h); malloc
 * and free inline the fast paths, so replacing malloc costs no extra call. The __libc_* names
 * are glibc's public aliases of its allocator, which some programs call directly: they are
 * ours too, so no block is ever allocated by one allocator and freed by the other.
 */
#define _GNU_SOURCE
#include "alloc.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

/* An alias shares the target's code; copy() gives it the target's attributes as declared by
 * glibc's headers (nothrow, malloc, alloc_size), as glibc's own aliases have them. */
#define VT_OVERRIDE_ALIAS(name) __attribute__((alias(#name), copy(name), visibility("default")))

/* clang-format off: one line per name reads best */
VT_EXPORT VT_HOT_ENTRY void *malloc(size_t size)
{
    return vt_api_malloc(size);
}
VT_EXPORT VT_HOT_ENTRY void free(void *p)
{
    vt_api_free(p);
}
VT_EXPORT void *calloc(size_t count, size_t size)
{
    return vt_api_calloc(count, size);
}
VT_EXPORT void *realloc(void *p, size_t size)
{
    return vt_api_realloc(p, size);
}
VT_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    return vt_api_reallocarray(p, count, size);
}
VT_EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    return vt_api_posix_memalign(out, alignment, size);
}
VT_EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    return vt_api_memalign(alignment, size);
}
VT_EXPORT void *memalign(size_t alignment, size_t size)
{
    return vt_api_memalign(alignment, size);
}
VT_EXPORT void *valloc(size_t size)
{
    return vt_api_valloc(size);
}
VT_EXPORT void *pvalloc(size_t size)
{
    return vt_api_pvalloc(size);
}
VT_EXPORT size_t malloc_usable_size(void *p)
{
    return vt_api_malloc_usable_size(p);
}
VT_EXPORT void free_sized(void *p, size_t size)
{
    vt_api_free_sized(p, size);
}
VT_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size)
{
    vt_api_free_aligned_sized(p, alignment, size);
}
VT_EXPORT int malloc_trim(size_t pad)
{
    return vt_api_malloc_trim(pad);
}
VT_EXPORT void malloc_stats(void)
{
    vt_stats_print();
}
VT_EXPORT int mallopt(int param, int value)
{
    return vt_api_mallopt(param, value);
}
VT_EXPORT struct mallinfo2 mallinfo2(void)
{
    return vt_api_mallinfo2();
}
VT_EXPORT struct mallinfo mallinfo(void)
{
    return vt_api_mallinfo();
}
VT_EXPORT struct mallinfo __libc_mallinfo(void)
{
    return vt_api_mallinfo();
} /* not an alias: mallinfo is deprecated */
VT_EXPORT int malloc_info(int options, FILE *stream)
{
    return vt_api_malloc_info(options, stream);
}

void cfree(void *p) VT_OVERRIDE_ALIAS(free);
void *__libc_malloc(size_t size) VT_OVERRIDE_ALIAS(malloc);
void __libc_free(void *p) VT_OVERRIDE_ALIAS(free);
void *__libc_calloc(size_t count, size_t size) VT_OVERRIDE_ALIAS(calloc);
void *__libc_realloc(void *p, size_t size) VT_OVERRIDE_ALIAS(realloc);
void *__libc_reallocarray(void *p, size_t count, size_t size) VT_OVERRIDE_ALIAS(reallocarray);
void *__libc_memalign(size_t alignment, size_t size) VT_OVERRIDE_ALIAS(memalign);
void *__libc_valloc(size_t size) VT_OVERRIDE_ALIAS(valloc);
void *__libc_pvalloc(size_t size) VT_OVERRIDE_ALIAS(pvalloc);
int __libc_mallopt(int param, int value) VT_OVERRIDE_ALIAS(mallopt);
/* clang-format on */
