/*
 * profpages.c - where the heap profiler's sampled small blocks live: the profiler's own pages,
 * which no thread cache owns as its own, so that the free of a sampled block always takes the
 * slow path to the profiler (prof.c says why); and the registry of them all.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, options.c, page.c, span.c, global.c, sizeclass.c
 *
 * Owns: the registry of every page of the profiler's and its lock. Each vt_prof_pages_t
 * belongs to a shard of prof.c, under the shard's lock, which serialises every call on it; its
 * pages name the shard (prof_shard), for their frees. The shared pages (below) that a thread
 * samples into are that thread's (profown.c) until it leaves them to their shard. It keeps
 * each block's record (prof.c writes and reads it) beside the block: a shared page holds fewer
 * blocks than its class's own pages, and the records fill the end of its run; a page of one
 * block keeps it in its descriptor.
 *
 * Samples are few, so these pages are mostly empty, and what they cost is the runs they hold:
 * each was taken from memory the threads would otherwise have reused, so the threads fault in
 * fresh memory in its place. With a page per class (and another) in each shard, memtest churn
 * ran with 4 MiB more at the peak and took 1,500 page faults in 1M mallocs against 740
 * without profiling. So a sampled block is served by the smallest of nine classes that holds
 * it (page_class), and a few pages serve every class:
 *   - 64 B, 256 B, 1 KiB, 4 KiB or 16 KiB (powers of four), whose pages it shares with other
 *     samples;
 *   - 64, 128, 192 or 256 KiB, a block that fills a run of one to four VT_PROF_RUN: a page of
 *     its own, which holds the sample and nothing else. VT_PROF_ONES empty ones are kept, for the
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

/* Every page of the profiler's, the shards' and the threads' own (profown.c), so that a profile
 * can count the live samples from their records (prof.c). Pages join when they are made and
 * leave when they go back to their span: rare events, so one lock serves. The shards' locks
 * come before it, and the global lock after it is given back. */
static vt_lock_t registry_lock = VT_LOCK_INIT;
static vt_list_t registry; /* registry_lock: linked through prof_all */
#define PROF_ALL_LINK offsetof(vt_page_t, prof_all)

unsigned vt_profpages_page_class(unsigned class_idx)
{
    size_t b = vt_classes[class_idx].bsize;
    if (b > VT_PROF_SHARED_MAX) /* a whole number of VT_PROF_RUN: 64, 128, 192 or 256 KiB */
        return vt_size_class((b + VT_PROF_RUN - 1) & ~(VT_PROF_RUN - 1));
    size_t q = 64;
    while (q < b)
        q *= 4;
    return vt_size_class(q);
}

/* Records are read (vt_profpages_scan) for every block the page could hold, so they start
 * at 0: a run that may hold old bytes (`stale` when it was taken) has them cleared. */
static void records_clear(vt_page_t *page, bool stale)
{
    if (!vt_profpages_one_block(page) && stale) {
        _Atomic uint64_t *records = vt_profpages_record_of(page, vt_page_area(page));
        for (uint32_t i = 0; i < page->capacity; i++)
            atomic_store_explicit(&records[i], 0, memory_order_relaxed);
    }
}

vt_page_t *vt_profpages_new_page(unsigned c, uint8_t shard, void *owner)
{
    bool one = vt_classes[c].bsize > VT_PROF_SHARED_MAX;
    unsigned units = one ? vt_classes[c].bsize >> VT_UNIT_SHIFT : VT_PROF_RUN_UNITS;
    vt_page_t *page = vt_global_take_run(units, 1, c);
    if (page == NULL)
        return NULL;
    bool stale = page->stale;
    size_t run = (size_t)page->units << VT_UNIT_SHIFT;
    vt_page_assign_short(page, c, VT_OWNER_PROF,
                         one ? 1 : (uint32_t)(run / (vt_classes[c].bsize + sizeof(uint64_t))));
    page->prof_shard = shard;
    records_clear(page, stale);
    /* A shard's page takes no remote frees (VT_PROF_CLOSED); an owner's does (profown.c). */
    atomic_store_explicit(&page->remote, owner != NULL ? 0 : VT_PROF_CLOSED, memory_order_relaxed);
    atomic_store_explicit(&page->prof_owner, owner, memory_order_relaxed);
    vt_mutex_lock(&registry_lock);
    vt_list_push_back(&registry, page, PROF_ALL_LINK);
    vt_mutex_unlock(&registry_lock);
    vt_page_refill_fresh(page);
    return page;
}

/* An empty page stops being the profiler's: out of the registry, its words as a thread's
 * page expects them. */
static void leave(vt_page_t *page)
{
    vt_mutex_lock(&registry_lock);
    vt_list_remove(&registry, page, PROF_ALL_LINK);
    vt_mutex_unlock(&registry_lock);
    atomic_store_explicit(&page->remote, 0, memory_order_relaxed);
    atomic_store_explicit(&page->prof_owner, NULL, memory_order_relaxed);
    vt_page_unassign(page);
}

void vt_profpages_release(vt_page_t *page)
{
    leave(page);
    vt_span_put_run(page);
}

/* The shard's list of the pages of a class with room (pages of one are never on it). */
static void list_add(vt_prof_pages_t *pp, vt_page_t *page)
{
    vt_list_push_back(&pp->partial[page->class_idx], page, VT_PAGE_LINK);
    page->prof_listed = 1;
}

static void list_remove(vt_prof_pages_t *pp, vt_page_t *page)
{
    vt_list_remove(&pp->partial[page->class_idx], page, VT_PAGE_LINK);
    page->prof_listed = 0;
}

vt_page_t *vt_profpages_take_partial(vt_prof_pages_t *pp, unsigned c)
{
    vt_page_t *page = pp->partial[c].head;
    if (page != NULL)
        list_remove(pp, page);
    return page;
}

void vt_profpages_adopt(vt_prof_pages_t *pp, vt_page_t *page)
{
    if (page->used == 0)
        vt_profpages_release(page);
    else if (page->free != NULL) /* a block to give */
        list_add(pp, page);
}

void vt_profpages_scan(void (*fn)(uint64_t record, void *arg), void *arg)
{
    vt_mutex_lock(&registry_lock);
    for (vt_page_t *page = registry.head; page != NULL; page = page->prof_all.next) {
        if (vt_profpages_one_block(page)) {
            uint64_t r = atomic_load_explicit(&page->prof_record, memory_order_relaxed);
            if (r != 0)
                fn(r, arg);
            continue;
        }
        _Atomic uint64_t *records = vt_profpages_record_of(page, vt_page_area(page));
        for (uint32_t i = 0; i < page->capacity; i++) {
            uint64_t r = atomic_load_explicit(&records[i], memory_order_relaxed);
            if (r != 0)
                fn(r, arg);
        }
    }
    vt_mutex_unlock(&registry_lock);
}

void vt_profpages_fork_prepare(void)
{
    vt_lock_take(&registry_lock);
}

void vt_profpages_fork_parent(void)
{
    vt_lock_give(&registry_lock);
}

void vt_profpages_fork_child(void)
{
    vt_lock_give(&registry_lock); /* held by this thread's parent copy: see span.c */
}

/* The shared page of class c, with a free block. When the current page has none left, the
 * first page on the list of those with room takes its place, or else a fresh run. */
static vt_page_t *page_shared(vt_prof_pages_t *pp, unsigned c, uint8_t shard)
{
    pp->sampled[c] = true; /* no clock here: the pass reads it */
    vt_page_t *page = pp->current[c];
    if (page == NULL || (page->free == NULL && !vt_page_refill_fresh(page))) {
        /* A full page stays the profiler's (its blocks come back through vt_profpages_put);
         * the class gets another. */
        page = vt_profpages_take_partial(pp, c);
        if (page == NULL && (page = vt_profpages_new_page(c, shard, NULL)) == NULL)
            return NULL;
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
    return vt_profpages_new_page(c, shard, NULL);
}

void *vt_profpages_pop(vt_prof_pages_t *pp, unsigned class_idx, uint8_t shard,
                       _Atomic uint64_t **record)
{
    unsigned c = pp->page_class[class_idx]; /* 0 (not yet worked out) is never a page class */
    if (vt_unlikely(c == 0))
        pp->page_class[class_idx] = (uint8_t)(c = vt_profpages_page_class(class_idx));
    vt_page_t *page = vt_classes[c].bsize > VT_PROF_SHARED_MAX ? page_one(pp, c, shard)
                                                               : page_shared(pp, c, shard);
    void *p = page != NULL ? vt_page_pop(page) : NULL;
    if (p != NULL)
        *record = vt_profpages_record_of(page, p);
    return p;
}

/* A page of one block is kept if there is room among the VT_PROF_ONES, else goes back to its
 * span. A shared class's page other than the current one that now has room joins the list of
 * those with room, which the class (or a thread that owns pages, profown.c) takes from before
 * it takes a fresh run: a program that samples blocks which outlive the page they came from
 * would otherwise take a fresh run, and fault it in, every few samples, and the pages that
 * threads leave behind would hold their room for nobody. One that empties goes back to its span
 * unless it is the only one on the list. */
uint64_t vt_profpages_put(vt_prof_pages_t *pp, vt_page_t *page, void *p)
{
    /* The block is the caller's until it is pushed, and the scan only reads: no other writer. */
    _Atomic uint64_t *slot = vt_profpages_record_of(page, p);
    uint64_t record = atomic_load_explicit(slot, memory_order_relaxed);
    atomic_store_explicit(slot, 0, memory_order_relaxed);
    vt_page_push(page, p);
    page->used--;
    unsigned c = page->class_idx;
    if (vt_profpages_one_block(page)) {
        if (pp->ones_n < VT_PROF_ONES)
            pp->ones[pp->ones_n++] = page;
        else
            vt_profpages_release(page);
    } else if (page != pp->current[c]) {
        if (!page->prof_listed) {
            list_add(pp, page);
        } else if (page->used == 0 && pp->partial[c].count > 1) {
            list_remove(pp, page);
            vt_profpages_release(page);
        }
    }
    return record;
}

/* The empty pages on the class's list go back to their span, or onto `idle` when there is one. */
static void release_listed_empty(vt_prof_pages_t *pp, unsigned c, vt_list_t *idle)
{
    vt_page_t *page = pp->partial[c].head;
    while (page != NULL) {
        vt_page_t *next = page->link.next;
        if (page->used == 0) {
            list_remove(pp, page);
            if (idle == NULL) {
                vt_profpages_release(page);
            } else {
                leave(page);
                vt_list_push_back(idle, page, VT_PAGE_LINK);
            }
        }
        page = next;
    }
}

void vt_profpages_release_empty(vt_prof_pages_t *pp)
{
    while (pp->ones_n > 0)
        vt_profpages_release(pp->ones[--pp->ones_n]);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        if (pp->current[c] != NULL && pp->current[c]->used == 0) {
            vt_profpages_release(pp->current[c]);
            pp->current[c] = NULL;
        }
        release_listed_empty(pp, c, NULL);
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
        leave(page);
        vt_list_push_back(&idle, page, VT_PAGE_LINK);
    }
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        if (pp->sampled[c]) {
            pp->sampled[c] = false;
            pp->quiet_ms[c] = now;
        }
        if (now - pp->quiet_ms[c] < vt_options.purge_ms)
            continue;
        vt_page_t *page = pp->current[c];
        if (page != NULL && page->used == 0) {
            pp->current[c] = NULL;
            leave(page);
            vt_list_push_back(&idle, page, VT_PAGE_LINK);
        }
        release_listed_empty(pp, c, &idle);
    }
    if (idle.head != NULL)
        vt_global_put_pages(NULL, &idle, true);
}
