/*
 * profpages.c - where the heap profiler's sampled small blocks live: the profiler's own pages,
 * which no thread cache owns, so that the free of a sampled block always takes the slow path
 * to the profiler (prof.c says why).
 *
 * Layer: 7 heap profiler
 * Calls: options.c, page.c, span.c, global.c, sizeclass.c
 *
 * Owns: nothing of its own; each vt_prof_pages_t belongs to a shard of prof.c, under the
 * shard's lock, which serialises every call on it; its pages name the shard (prof_shard), for
 * their frees. It keeps each block's record (prof.c writes and reads it) beside the block:
 * a shared page holds fewer blocks than its class's own pages, and the records fill the end
 * of its run; a page of one block keeps it in its descriptor.
 *
 * Samples are few, so these pages are mostly empty, and what they cost is the runs they hold:
 * each was taken from memory the threads would otherwise have reused, so the threads fault in
 * fresh memory in its place. With a page per class (and a spare) in each shard, memtest churn
 * ran with 4 MiB more at the peak and took 1,500 page faults in 1M mallocs against 740
 * without profiling. So a sampled block is served by the smallest of nine classes that holds
 * it (page_class), and a few pages serve every class:
 *   - 64 B, 256 B, 1 KiB, 4 KiB or 16 KiB (powers of four), whose pages it shares with other
 *     samples;
 *   - 64, 128, 192 or 256 KiB, a block that fills a run of one to four units: a page of its
 *     own, which holds the sample and nothing else. VT_PROF_ONES empty ones are kept, for the
 *     next samples of their class, so that a program that samples and frees again and again
 *     reuses one run, already resident, and takes no global lock. (tcmalloc gives each
 *     sampled object a span of its own, for the same reason.)
 * The sizes keep every alignment a class gives (powers of two, and unit-aligned runs). A block
 * may be larger than asked for, but mostly in address space: memory comes in as the program
 * touches it. Where the shared classes stop is a trade. A sample that lives long pins its
 * page, resident as far as any earlier user touched it: with pages of their own from 4 KiB
 * up, the soak benchmark peaked at 117.7 MiB with profiling on against 104.2 off; sharing up
 * to 16 KiB, 113.1 against 104.7; classes at every power of two, 111.0 against 105.6, but
 * with more pages held, churn's peak rose by 1.6 MiB instead of 1.0. Churn now takes about
 * 950 faults with profiling on.
 */
#include "internal.h"
#include "profpages.h"

/* The class of the profiler's page that holds a sampled block of class c. */
static unsigned page_class(unsigned class_idx)
{
    size_t b = vt_classes[class_idx].bsize;
    if (b > VT_PROF_SHARED_MAX) /* a whole number of units: 64, 128, 192 or 256 KiB */
        return vt_size_class((b + VT_UNIT_SIZE - 1) & ~(VT_UNIT_SIZE - 1));
    size_t q = 64;
    while (q < b)
        q *= 4;
    return vt_size_class(q);
}

/* The shared page of class c, with a free block. When the current page has none left, the
 * spare takes its place, or else a fresh run. */
static vt_page_t *page_shared(vt_prof_pages_t *pp, unsigned c, uint8_t shard)
{
    pp->sampled[c] = true; /* no clock here: the pass reads it */
    vt_page_t *page = pp->current[c];
    if (page == NULL || (page->free == NULL && !vt_page_refill(page))) {
        /* A full page stays the profiler's (its blocks come back through vt_profpages_put);
         * the class gets another. */
        page = pp->spare[c];
        if (page != NULL) {
            pp->spare[c] = NULL;
        } else {
            page = vt_global_take_run(vt_classes[c].units, 1, c);
            if (page == NULL)
                return NULL;
            size_t run = (size_t)page->units << VT_UNIT_SHIFT;
            vt_page_assign_short(page, c, VT_OWNER_PROF,
                                 (uint32_t)(run / (vt_classes[c].bsize + sizeof(uint64_t))));
            page->prof_shard = shard;
            vt_page_refill(page);
        }
        pp->current[c] = page;
    }
    return page;
}

/* A page of its own for a block of class c (a whole number of units): a kept one, the most
 * recently freed first, else a fresh run. */
static vt_page_t *page_one(vt_prof_pages_t *pp, unsigned c, uint8_t shard)
{
    pp->ones_sampled = true;
    for (unsigned i = pp->ones_n; i-- > 0;) {
        vt_page_t *page = pp->ones[i];
        if (page->class_idx == c) {
            pp->ones[i] = pp->ones[--pp->ones_n];
            return page;
        }
    }
    vt_page_t *page = vt_global_take_run(vt_classes[c].bsize >> VT_UNIT_SHIFT, 1, c);
    if (page == NULL)
        return NULL;
    vt_page_assign_short(page, c, VT_OWNER_PROF, 1);
    page->prof_shard = shard;
    vt_page_refill(page);
    return page;
}

void *vt_profpages_pop(vt_prof_pages_t *pp, unsigned class_idx, uint8_t shard, uint64_t **record)
{
    unsigned c = pp->page_class[class_idx]; /* 0 (not yet worked out) is never a page class */
    if (vt_unlikely(c == 0))
        pp->page_class[class_idx] = (uint8_t)(c = page_class(class_idx));
    vt_page_t *page = vt_classes[c].bsize > VT_PROF_SHARED_MAX ? page_one(pp, c, shard)
                                                               : page_shared(pp, c, shard);
    void *p = page != NULL ? vt_page_pop(page) : NULL;
    if (p != NULL)
        *record = vt_profpages_record_of(page, p);
    return p;
}

/* Gives an empty page back to its span. */
static void release(vt_page_t *page)
{
    vt_page_unassign(page);
    vt_span_put_run(page);
}

/* A page of one block is kept if there is room among the VT_PROF_ONES, else goes back to its
 * span. Of a shared class's pages, one other than the current one that now has room becomes
 * the class's spare if there is none; one that empties goes back to its span unless it is the
 * current page or the spare. So the profiler keeps at most two pages of a class that live
 * samples do not pin: a program that samples blocks which outlive the page they came from
 * would otherwise take a fresh run, and fault it in, every few samples. */
uint64_t vt_profpages_put(vt_prof_pages_t *pp, vt_page_t *page, void *p)
{
    uint64_t *slot = vt_profpages_record_of(page, p), record = *slot;
    *slot = 0;
    vt_page_push(page, p);
    page->used--;
    unsigned c = page->class_idx;
    if (vt_profpages_one_block(page)) {
        if (pp->ones_n < VT_PROF_ONES)
            pp->ones[pp->ones_n++] = page;
        else
            release(page);
    } else if (page != pp->current[c] && page != pp->spare[c]) {
        if (pp->spare[c] == NULL)
            pp->spare[c] = page;
        else if (page->used == 0)
            release(page);
    }
    return record;
}

void vt_profpages_release_empty(vt_prof_pages_t *pp)
{
    while (pp->ones_n > 0)
        release(pp->ones[--pp->ones_n]);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        if (pp->current[c] != NULL && pp->current[c]->used == 0) {
            release(pp->current[c]);
            pp->current[c] = NULL;
        }
        if (pp->spare[c] != NULL && pp->spare[c]->used == 0) {
            release(pp->spare[c]);
            pp->spare[c] = NULL;
        }
    }
}

/* Empty pages of a kind that had no block sampled for a whole retention window
 * (VTMALLOC_PURGE_MS) go back to the global cache, as memory nobody uses (out of the retention
 * policy's record of recent demand), so that a process whose sampled blocks were freed keeps
 * none of them and they go back to the OS at this pass; a kind still sampled keeps its pages,
 * and does not fault in fresh ones at every pass. "No sample for a window" is measured from
 * the last pass that saw one, so a sample reads no clock. */
void vt_profpages_pass(vt_prof_pages_t *pp, uint32_t now)
{
    vt_list_t idle = {0};
    if (pp->ones_sampled) {
        pp->ones_sampled = false;
        pp->ones_quiet_ms = now;
    }
    while (now - pp->ones_quiet_ms >= vt_options.purge_ms && pp->ones_n > 0) {
        vt_page_t *page = pp->ones[--pp->ones_n];
        vt_page_unassign(page);
        vt_list_push_back(&idle, page, VT_PAGE_LINK);
    }
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        if (pp->sampled[c]) {
            pp->sampled[c] = false;
            pp->quiet_ms[c] = now;
        }
        if (now - pp->quiet_ms[c] < vt_options.purge_ms)
            continue;
        vt_page_t **kept[2] = {&pp->current[c], &pp->spare[c]};
        for (int k = 0; k < 2; k++) {
            vt_page_t *page = *kept[k];
            if (page != NULL && page->used == 0) {
                *kept[k] = NULL;
                vt_page_unassign(page);
                vt_list_push_back(&idle, page, VT_PAGE_LINK);
            }
        }
    }
    if (idle.head != NULL)
        vt_global_put_pages(NULL, &idle, true);
}
