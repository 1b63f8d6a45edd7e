/*
 * stats.c - the counters behind vt_stats_get() and the table vt_stats_print() writes, and
 * glibc's shapes of them (mallinfo, mallinfo2, malloc_info).
 *
 * Layer: 11 statistics
 * Calls: os.c, report.c, sizeclass.c, page.c, thread.c, span.c, spanpurge.c, global.c,
 *        cachepool.c, large.c, largespan.c, tcache.c
 *
 * Owns: the presentation. The counters themselves live where they are counted (span.c and
 * global.c under the global lock, cachepool.c under its lock, large.c under its lock, each
 * page and thread cache for itself); none of them is on the malloc or free fast path.
 */
#include "internal.h"

#include "bin.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

/* Publishes the counts of the calling thread's own pages, so that its statistics are exact
 * (vt_stats_get). */
static void publish_own_pages(void)
{
    vt_tcache_t *tc = vt_thread.tcache;
    if (tc->state != VT_TCACHE_LIVE)
        return;
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
        for (vt_page_t *page = vt_bin_first(tc, c); page != NULL; page = vt_bin_next(page))
            vt_page_publish(page);
}

/* The per-class figures, from the pages' published counts, the frees into other threads'
 * pages (`puts`) and the free blocks of the global cache's pages. Per class, gets and puts
 * are exact for exited threads and the caller, behind by what other running threads did since
 * their pages' last slow event. */
static void class_stats(vt_stats_t *st, const uint64_t puts[VT_CLASS_COUNT])
{
    st->class_count = VT_CLASS_COUNT;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        vt_class_stats_t *c = &st->classes[k];
        uint64_t bsize = vt_classes[k].bsize;
        c->block_size = bsize;
        c->pages = atomic_load_explicit(&vt_page_class_pages[k], memory_order_relaxed);
        c->gets = atomic_load_explicit(&vt_page_class_gets[k], memory_order_relaxed);
        c->puts = puts[k] + atomic_load_explicit(&vt_page_class_puts[k], memory_order_relaxed);
        c->in_use = c->gets > c->puts ? c->gets - c->puts : 0;
        c->requested_total =
            atomic_load_explicit(&vt_page_class_requested[k], memory_order_relaxed);
        if (c->gets > 0) /* the estimate: see bytes_requested_live in vtmalloc.h */
            st->bytes_requested_live +=
                (uint64_t)((double)c->in_use * (double)c->requested_total / (double)c->gets);
        uint64_t capacity = c->pages * vt_classes[k].capacity;
        uint64_t accounted = c->in_use + c->free_in_global;
        c->free_in_threads = capacity > accounted ? capacity - accounted : 0;
        st->bytes_in_use += c->in_use * bsize;
        st->bytes_free_threads += c->free_in_threads * bsize;
        st->bytes_free_global += c->free_in_global * bsize;
    }
}

/* vt_stats_get, and in *purged_now the bytes of the global cache's free blocks that are given
 * back to the OS now (pagepurge.c), which the table shows beside them. */
static void collect(vt_stats_t *out, uint64_t *purged_now)
{
    vt_stats_t st;
    uint64_t puts[VT_CLASS_COUNT] = {0};
    memset(&st, 0, sizeof(st));
    publish_own_pages();
    vt_cachepool_stats(&st, puts, &vt_tcache_orphan()->counters, vt_largespan_counters());
    vt_span_lock(); /* the spans, the purge counters and the partial lists, exact together */
    vt_span_stats_locked(&st);
    vt_spanpurge_stats_locked(&st);
    vt_global_stats_locked(&st, puts, purged_now);
    vt_span_unlock();
    class_stats(&st, puts);
    st.bytes_returned_total = st.purged_bytes_total + st.span_unmaps_total * VT_SPAN_SIZE;
    vt_large_stats(&st);
    st.bytes_in_use += st.large_bytes;
    st.bytes_mapped += st.span_bytes; /* vt_large_stats added the mapped large blocks */
    *out = st;
}

VT_EXPORT void vt_stats_get(vt_stats_t *out)
{
    uint64_t purged_now;
    collect(out, &purged_now);
}

/* The table's writer: once a write failed, the rest is skipped. */
typedef struct table_out {
    int fd;
    bool ok;
} table_out_t;

static void out(table_out_t *o, const char *fmt, ...)
{
    if (!o->ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    o->ok = vt_vmessage_fd(o->fd, fmt, ap);
    va_end(ap);
}

/* Writes the table to fd with write(2) through a small stack buffer: safe at exit and inside a
 * program's signal-free but allocation-hostile moments. Sizes in KiB. False (errno set) when
 * a write failed. */
static bool print_table(int fd)
{
    vt_stats_t st;
    uint64_t purged_now;
    collect(&st, &purged_now);
    table_out_t o = {fd, true};
    out(&o, "vtmalloc %s statistics (pid %d)\n", VTMALLOC_VERSION, (int)getpid());
    out(&o, "  %-9s %8s %6s %10s %10s %10s %12s %12s %9s %7s\n", "class", "bytes", "pages",
        "in use", "free thr", "free glob", "gets", "puts", "locks", "waits");
    for (unsigned k = 0; k < st.class_count; k++) {
        const vt_class_stats_t *c = &st.classes[k];
        if (c->gets == 0 && c->pages == 0 && c->lock_acquisitions == 0)
            continue;
        out(&o, "  %-9u %8zu %6zu %10zu %10zu %10zu %12zu %12zu %9zu %7zu\n", k, c->block_size,
            c->pages, c->in_use, c->free_in_threads, c->free_in_global, c->gets, c->puts,
            c->lock_acquisitions, c->lock_waits);
    }
    out(&o, "  in use            %12zu KiB  (blocks at their class size, large blocks included)\n",
        st.bytes_in_use >> 10);
    out(&o,
        "  requested live    %12zu KiB  (estimated: live blocks times their class's mean "
        "request)\n",
        st.bytes_requested_live >> 10);
    out(&o, "  free in threads   %12zu KiB   free in global cache %zu KiB (%zu KiB of it purged)\n",
        st.bytes_free_threads >> 10, st.bytes_free_global >> 10, (size_t)(purged_now >> 10));
    out(&o,
        "  free units        %12zu KiB   (%zu KiB resident); empty spans in reserve %zu (%zu "
        "KiB)\n",
        st.bytes_free_units >> 10, st.bytes_free_resident >> 10, st.spans_reserved,
        st.bytes_reserve >> 10);
    out(&o,
        "  mapped            %12zu KiB   (spans %zu; large blocks %zu in %zu KiB, in spans or "
        "mapped; cached %zu KiB)\n",
        st.bytes_mapped >> 10, st.spans_mapped, st.large_blocks, st.large_bytes >> 10,
        st.large_cached_bytes >> 10);
    out(&o, "  large blocks      %12zu  allocated since start, %zu from the cache\n",
        st.large_allocs_total, st.large_cache_hits_total);
    out(&o, "  returned to OS    %12zu KiB   (purged %zu KiB in %zu passes; spans unmapped %zu)\n",
        st.bytes_returned_total >> 10, st.purged_bytes_total >> 10, st.purges_total,
        st.span_unmaps_total);
    out(&o, "  spans mapped/unmapped since start %zu / %zu\n", st.span_maps_total,
        st.span_unmaps_total);
    out(&o, "  thread caches     %12zu  live (%zu started since start)\n", st.thread_caches_live,
        st.thread_caches_total);
    out(&o, "  pages adopted     %12zu  abandoned %zu; remote frees %zu\n", st.pages_adopted_total,
        st.pages_abandoned_total, st.remote_frees_total);
    out(&o, "  global lock       %12zu  acquisitions, %zu waited\n", st.global_lock_total,
        st.global_lock_waits);
    return o.ok;
}

VT_EXPORT void vt_stats_print(void)
{
    int fd = vt_report_stderr_fd();
    if (fd >= 0)
        print_table(fd);
}

/* ---- glibc's shapes --------------------------------------------------------------------- */

/* The fields, as vtmalloc fills them:
 *   arena     bytes of spans held            ordblks   empty spans in reserve
 *   hblks     large blocks                   hblkhd    bytes mapped for large blocks
 *   uordblks  bytes of blocks in use         fordblks  bytes free: in pages and free units
 *   keepcost  0 (no heap top to trim)                                                      */
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
    mi.uordblks = st.bytes_in_use - st.large_bytes;
    mi.fordblks = st.bytes_free_threads + st.bytes_free_global + st.bytes_free_units;
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

/* Called by the program, outside the allocator: stdio may allocate here. As glibc's, an
 * options value other than 0 is answered with EINVAL as the return value (errno untouched). */
/* The malloc_info XML, formatted into buf (glibc's element names where they apply). */
static size_t format_xml(char *buf, size_t cap, const vt_stats_t *st)
{
    return vt_format(buf, cap,
                     "<malloc version=\"vtmalloc-%s\">\n"
                     "<spans count=\"%zu\" bytes=\"%zu\" reserved=\"%zu\"/>\n"
                     "<large count=\"%zu\" bytes=\"%zu\"/>\n"
                     "<threads live=\"%zu\" started=\"%zu\"/>\n"
                     "</malloc>\n",
                     VTMALLOC_VERSION, (size_t)st->spans_mapped, (size_t)st->span_bytes,
                     (size_t)st->spans_reserved, (size_t)st->large_blocks, (size_t)st->large_bytes,
                     (size_t)st->thread_caches_live, (size_t)st->thread_caches_total);
}

int vt_api_malloc_info(int options, FILE *stream)
{
    if (options != 0)
        return EINVAL;
    vt_stats_t st;
    char buf[512];
    vt_stats_get(&st);
    format_xml(buf, sizeof(buf), &st);
    fputs(buf, stream);
    return 0;
}

static bool write_stats(int fd, void *arg)
{
    (void)arg;
    vt_stats_t st;
    char buf[512];
    if (!print_table(fd))
        return false;
    vt_stats_get(&st);
    size_t n = format_xml(buf, sizeof(buf), &st);
    return vt_os_write_all(fd, buf, n);
}

/* The table and the XML in one file, for an operator looking at a running process. */
VT_EXPORT int vt_stats_dump(const char *path)
{
    return vt_os_write_file(path, write_stats, NULL);
}
