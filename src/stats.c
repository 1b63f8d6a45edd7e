/*
 * stats.c - the counters behind vt_stats_get() and the table vt_stats_print() writes.
 *
 * Owns: the presentation, including glibc's shapes (mallinfo2, malloc_info). Calls: global.c,
 * large.c, report.c. The counters themselves live
 * where they are counted (global.c under its lock, large.c under its lock, each thread cache
 * for itself); none of them is on the malloc or free fast path.
 */
#include "alloc.h"

#include <unistd.h>

/* Adds a live cache's own counters. Global lock held (the cache cannot be handed back
 * meanwhile); relaxed loads, because its thread keeps counting. */
void vt_stats_add_tcache(vt_stats_t *st, vt_tcache_t *tc)
{
    st->remote_frees_total += atomic_load_explicit(&tc->counters.remote_frees, memory_order_relaxed);
    st->pages_adopted_total += atomic_load_explicit(&tc->counters.pages_adopted, memory_order_relaxed);
}

VT_EXPORT void vt_stats_get(vt_stats_t *out)
{
    vt_stats_t st;
    memset(&st, 0, sizeof(st));
    vt_global_stats(&st);
    vt_large_stats(&st);
    *out = st;
}

VT_EXPORT void vt_stats_print(void)
{
    vt_stats_t st;
    vt_stats_get(&st);
    vt_message_to_kept_stderr("vtmalloc %s statistics (pid %d)\n", VTMALLOC_VERSION, (int)getpid());
    vt_message_to_kept_stderr("  spans mapped      %12zu  (%zu KiB; %zu empty in reserve)\n", st.spans_mapped,
               st.span_bytes >> 10, st.spans_reserved);
    vt_message_to_kept_stderr("  spans mapped/unmapped since start %zu / %zu\n", st.span_maps_total,
               st.span_unmaps_total);
    vt_message_to_kept_stderr("  large blocks      %12zu  (%zu KiB; %zu allocated since start)\n",
               st.large_blocks, st.large_bytes >> 10, st.large_allocs_total);
    vt_message_to_kept_stderr("  thread caches     %12zu  live (%zu started since start)\n",
               st.thread_caches_live, st.thread_caches_total);
    vt_message_to_kept_stderr("  pages adopted     %12zu  abandoned %zu\n", st.pages_adopted_total,
               st.pages_abandoned_total);
    vt_message_to_kept_stderr("  remote frees      %12zu\n", st.remote_frees_total);
    vt_message_to_kept_stderr("  global lock       %12zu  acquisitions, %zu waited\n", st.global_lock_total,
               st.global_lock_waits);
}

/* ---- glibc's shapes --------------------------------------------------------------------- */

/* glibc's tuning parameters (M_MMAP_THRESHOLD, M_ARENA_MAX, ...) describe its own heap; none
 * applies here. Accepted and ignored, so programs that set them keep working. */
int vt_api_mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

/* The fields, as vtmalloc fills them:
 *   arena     bytes of spans held        ordblks   empty spans in reserve
 *   hblks     large blocks               hblkhd    bytes mapped for large blocks
 *   uordblks  span bytes not in reserve  fordblks  bytes of the reserve
 *   keepcost  0 (no heap top to trim)                                                  */
struct mallinfo2 vt_api_mallinfo2(void)
{
    vt_stats_t st;
    vt_stats_get(&st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof(mi));
    mi.arena = st.span_bytes;
    mi.ordblks = st.spans_reserved;
    mi.hblks = st.large_blocks;
    mi.hblkhd = st.large_bytes;
    mi.fordblks = st.spans_reserved * VT_SPAN_SIZE;
    mi.uordblks = st.span_bytes - mi.fordblks;
    return mi;
}

static int clamp_int(size_t v)
{
    return v > (size_t)INT32_MAX ? INT32_MAX : (int)v;
}

struct mallinfo vt_api_mallinfo(void)
{
    struct mallinfo2 m2 = vt_api_mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof(mi));
    mi.arena = clamp_int(m2.arena);
    mi.ordblks = clamp_int(m2.ordblks);
    mi.hblks = clamp_int(m2.hblks);
    mi.hblkhd = clamp_int(m2.hblkhd);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    return mi;
}

/* Called by the program, outside the allocator: stdio may allocate here. */
int vt_api_malloc_info(int options, FILE *stream)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    vt_stats_t st;
    vt_stats_get(&st);
    fprintf(stream,
            "<malloc version=\"vtmalloc-%s\">\n"
            "<spans count=\"%llu\" bytes=\"%llu\" reserved=\"%llu\"/>\n"
            "<large count=\"%llu\" bytes=\"%llu\"/>\n"
            "<threads live=\"%llu\" started=\"%llu\"/>\n"
            "</malloc>\n",
            VTMALLOC_VERSION, (unsigned long long)st.spans_mapped,
            (unsigned long long)st.span_bytes, (unsigned long long)st.spans_reserved,
            (unsigned long long)st.large_blocks, (unsigned long long)st.large_bytes,
            (unsigned long long)st.thread_caches_live, (unsigned long long)st.thread_caches_total);
    return 0;
}
