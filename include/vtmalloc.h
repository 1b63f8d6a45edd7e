/*
 * vtmalloc.h - the public API of vtmalloc.
 *
 * Every function here behaves like the C library function without the `vt_` prefix (glibc's
 * documented semantics, errno values and alignment guarantees). A program that links
 * libvtmalloc gets the standard names too (malloc, free, ...); these prefixed names exist so
 * that a program, a test or a benchmark can call vtmalloc explicitly, side by side with
 * another allocator.
 */
#ifndef VTMALLOC_H
#define VTMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VTMALLOC_VERSION_MAJOR 0
#define VTMALLOC_VERSION_MINOR 1
#define VTMALLOC_VERSION_PATCH 0
#define VTMALLOC_VERSION       "0.1.0"

#if defined(__GNUC__)
#define VT_API_MALLOC        __attribute__((malloc, warn_unused_result))
#define VT_API_ALLOC_SIZE(n) __attribute__((alloc_size(n)))
#else
#define VT_API_MALLOC
#define VT_API_ALLOC_SIZE(n)
#endif

/* The C allocation API. */
void *vt_malloc(size_t size) VT_API_MALLOC VT_API_ALLOC_SIZE(1);
void vt_free(void *ptr);
void *vt_calloc(size_t count, size_t size) VT_API_MALLOC;
void *vt_realloc(void *ptr, size_t size) VT_API_ALLOC_SIZE(2);
void *vt_reallocarray(void *ptr, size_t count, size_t size);
int vt_posix_memalign(void **out, size_t alignment, size_t size);
void *vt_aligned_alloc(size_t alignment, size_t size) VT_API_MALLOC VT_API_ALLOC_SIZE(2);
void *vt_memalign(size_t alignment, size_t size) VT_API_MALLOC VT_API_ALLOC_SIZE(2);
void *vt_valloc(size_t size) VT_API_MALLOC VT_API_ALLOC_SIZE(1);
void *vt_pvalloc(size_t size) VT_API_MALLOC;
size_t vt_malloc_usable_size(void *ptr);
void vt_free_sized(void *ptr, size_t size);
void vt_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Returns free memory to the operating system now; returns 1 if any was returned, else 0. */
int vt_malloc_trim(size_t pad);

/* Per size class: what Tcl's zippy allocator reported per bucket, and more. */
typedef struct vt_class_stats {
    uint64_t block_size;        /* bytes */
    uint64_t pages;             /* pages holding blocks of this class */
    uint64_t in_use;            /* blocks allocated and not freed (gets - puts) */
    uint64_t free_in_threads;   /* free blocks in pages owned by threads (uncarved included) */
    uint64_t free_in_global;    /* free blocks in pages of the global cache */
    uint64_t gets;              /* mallocs since start */
    uint64_t puts;              /* frees since start */
    uint64_t requested_total;   /* bytes those mallocs asked for */
    uint64_t lock_acquisitions; /* global-lock acquisitions on behalf of this class */
    uint64_t lock_waits;        /* of those, how many found the lock held */
} vt_class_stats_t;

#define VT_STATS_MAX_CLASSES 64

/* A snapshot of the allocator's counters (all byte counts in bytes). */
typedef struct vt_stats {
    uint64_t spans_mapped;           /* spans currently held from the backing */
    uint64_t span_bytes;             /* bytes of those spans */
    uint64_t spans_reserved;         /* empty spans kept for reuse */
    uint64_t span_maps_total;        /* spans obtained from the backing since start */
    uint64_t span_unmaps_total;      /* spans given back to the backing since start */
    uint64_t large_blocks;           /* live blocks above the largest size class */
    uint64_t large_bytes;            /* their size: whole units in spans, whole pages mapped */
    uint64_t large_allocs_total;     /* large blocks allocated since start */
    uint64_t large_cached_bytes;     /* freed large blocks kept mapped for reuse */
    uint64_t large_cache_hits_total; /* large blocks served from that cache */
    uint64_t thread_caches_live;     /* thread caches in use */
    uint64_t thread_caches_total;    /* thread caches ever started (including reused ones) */
    uint64_t pages_adopted_total;    /* pages taken over from the global cache */
    uint64_t pages_abandoned_total;  /* pages given to the global cache by exiting threads */
    uint64_t remote_frees_total;     /* blocks freed by a thread that did not own their page */
    uint64_t global_lock_total;      /* acquisitions of the global cache's lock */
    uint64_t global_lock_waits;      /* of those, how many found it held */
    uint64_t purged_bytes_total;     /* free memory given back to the OS with madvise */
    uint64_t purges_total;           /* purge passes that gave something back */
    /* Totals, in bytes. Blocks are counted at their class size: the size requested is not
     * recorded (that would cost a header per block). */
    uint64_t bytes_in_use;         /* small blocks in use plus large blocks */
    uint64_t bytes_requested_live; /* asked for by the live blocks: exact for large blocks,
                                      estimated per class as in_use times the class's mean
                                      requested size (free() is not told the size) */
    uint64_t bytes_free_threads;   /* free blocks in pages owned by threads, and their stashes */
    uint64_t bytes_free_global;    /* free blocks in pages of the global cache */
    uint64_t bytes_free_units;     /* free units in spans (the reserve included), resident or not */
    uint64_t bytes_free_resident;  /* of those, not yet returned to the OS (purge pending) */
    uint64_t bytes_reserve;        /* empty spans kept mapped */
    uint64_t bytes_mapped;         /* spans plus large blocks */
    uint64_t bytes_returned_total; /* given back to the OS since start: purged plus unmapped */
    uint32_t class_count;          /* entries used in classes[] */
    vt_class_stats_t classes[VT_STATS_MAX_CLASSES];
} vt_stats_t;

/* Fills *out; cheap enough to call at any time. */
void vt_stats_get(vt_stats_t *out);
/* Prints the counters to stderr (with write(2); never allocates). */
void vt_stats_print(void);
/* Writes the statistics table (as vt_stats_print) and the malloc_info XML to the file `path`
 * (created or truncated). 0, or -1 with errno set (EINVAL: path is NULL; else open's). */
int vt_stats_dump(const char *path);

/* Heap profiling, on when VTMALLOC_PROF_SAMPLE is set (mean bytes between samples). Writes the
 * live sampled allocations, by call stack, to `path` in the gperftools heap-profile format that
 * google-pprof reads. 0, or -1 with errno set: ENOTSUP when profiling is off, EINVAL for a NULL
 * path, else open's or write's. */
int vt_prof_dump(const char *path);
/* The mean bytes between samples: 0 when profiling is off. */
size_t vt_prof_sample_bytes(void);

/* The library's version string, e.g. "0.1.0". */
const char *vt_version(void);

#ifdef __cplusplus
}
#endif

#endif /* VTMALLOC_H */
