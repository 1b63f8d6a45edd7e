/*
 * profpages.h - the heap profiler's pages (profpages.c): their record per shard, and the
 * common cases of taking a block for a sample and of giving it back, inline, so that a sample
 * pays no call for them (prof.c). The rest is profpages.c's.
 *
 * Owns: nothing; each vt_prof_pages_t belongs to a shard of prof.c, under the shard's lock.
 */
#ifndef VT_PROFPAGES_H
#define VT_PROFPAGES_H

#include "internal.h"

/* Sampled blocks up to this size share pages; larger ones get a page each, of which this many
 * are kept empty (profpages.c says why). */
#define VT_PROF_SHARED_MAX ((size_t)16384)
#define VT_PROF_ONES       4

/* Every page of the profiler's is a whole number of 64 KiB, whatever the unit: a shared page of
 * the 16 KiB kind then holds three blocks and their records (in a run of one 32 KiB unit it
 * would hold one, and a page of one block keeps its record elsewhere), and a page of one
 * block is 64, 128, 192 or 256 KiB, so that four sizes, not eight, share the kept ones. */
#define VT_PROF_RUN       ((size_t)64 << 10)
#define VT_PROF_RUN_UNITS ((unsigned)(VT_PROF_RUN >> VT_UNIT_SHIFT))
_Static_assert(VT_PROF_RUN % VT_UNIT_SIZE == 0 && VT_PROF_RUN_UNITS <= VT_SHORT_RUN_UNITS &&
                   VT_PROF_RUN > 3 * VT_PROF_SHARED_MAX && VT_PROF_RUN <= UINT16_MAX + 1,
               "a shared page is a short run of whole units holding three blocks of 16 KiB");

/* Every field belongs to the lock of the profiler's shard that holds it (prof.c). */
typedef struct vt_prof_pages {
    vt_page_t *current[VT_CLASS_COUNT]; /* the page of each shared class, or NULL */
    /* the other pages of each shared class that have a free block, next in line (page->link) */
    vt_list_t partial[VT_CLASS_COUNT];
    bool sampled[VT_CLASS_COUNT];      /* class c had a block sampled since the last pass */
    uint32_t quiet_ms[VT_CLASS_COUNT]; /* the last pass that found sampled[c] set */
    vt_page_t *ones[VT_PROF_ONES];     /* empty pages of one block, kept: ones_n of them */
    unsigned ones_n;
    bool ones_sampled;      /* a block was sampled into a page of one since the last pass */
    uint32_t ones_quiet_ms; /* the last pass that found ones_sampled set */
    uint8_t page_class[VT_CLASS_COUNT]; /* the page class of each class (profpages.c), or 0 */
} vt_prof_pages_t;

/* A block for a sample of the class, and in *record the place of its record (prof.c), which
 * is 0; NULL when there is no memory. */
void *vt_profpages_pop(vt_prof_pages_t *pp, unsigned class_idx, uint8_t shard,
                       _Atomic uint64_t **record) VT_HIDDEN;
/* The block p, checked, goes back on its page; returns its record, which is cleared. */
uint64_t vt_profpages_put(vt_prof_pages_t *pp, vt_page_t *page, void *p) VT_HIDDEN;
/* malloc_trim: every empty page goes back. */
void vt_profpages_release_empty(vt_prof_pages_t *pp) VT_HIDDEN;
/* The purge pass: empty pages not used for a retention window go back. */
void vt_profpages_pass(vt_prof_pages_t *pp, uint32_t now) VT_HIDDEN;

/* The class of the profiler's pages that holds a sampled block of class c. */
unsigned vt_profpages_page_class(unsigned class_idx) VT_HIDDEN;
/* A fresh page of page class c for the shard, owned by `owner` (a vt_prof_own_t, profown.c) or
 * by the shard (NULL), registered, with blocks to give; NULL when there is no memory. */
vt_page_t *vt_profpages_new_page(unsigned c, uint8_t shard, void *owner) VT_HIDDEN;
/* An empty page leaves the registry and goes back to its span. */
void vt_profpages_release(vt_page_t *page) VT_HIDDEN;
/* A page whose owner left (profown.c) joins the shard's: on its list of pages with room if it
 * has a free block, back to its span if it is empty, else it waits for its blocks to come back
 * (vt_profpages_put). */
void vt_profpages_adopt(vt_prof_pages_t *pp, vt_page_t *page) VT_HIDDEN;
/* A page of page class c with a free block, off the shard's list for a thread to own
 * (profown.c); NULL when there is none. */
vt_page_t *vt_profpages_take_partial(vt_prof_pages_t *pp, unsigned c) VT_HIDDEN;
/* Calls fn with every record of a live sampled block in any of the profiler's pages, under
 * the registry's lock: the snapshot a profile counts its live blocks from (prof.c). Owners
 * write records meanwhile; each is read whole (an atomic load). */
void vt_profpages_scan(void (*fn)(uint64_t record, void *arg), void *arg) VT_HIDDEN;
void vt_profpages_fork_prepare(void) VT_HIDDEN;
void vt_profpages_fork_parent(void) VT_HIDDEN;
void vt_profpages_fork_child(void) VT_HIDDEN;

/* The remote word of a page of a shard's, or of one whose owner left: no thread may push onto
 * it, and a free goes to the shard's lock instead (profown.c). The bit of a detach's mark,
 * which profiler pages never carry otherwise. */
#define VT_PROF_CLOSED VT_REMOTE_FULL

/* A page of one block (a sample of 64 KiB or more): every class's own pages hold two or more. */
static inline bool vt_profpages_one_block(const vt_page_t *page)
{
    return page->capacity == 1;
}

/* Where the records of a page of two or more blocks start: they end its run, in the part that
 * its capacity leaves out (profpages.c). Not right after the last block: in the kinds of 4 and
 * 16 KiB that place is a multiple of 4 KiB into the run, so the records of the first blocks
 * would share the first-level cache's set with the first line of every page-aligned block, and
 * a line that a sample writes once in many mallocs is the first to go from a set that busy. */
static inline _Atomic uint64_t *vt_profpages_records(const vt_page_t *page)
{
    size_t run = (size_t)page->units << VT_UNIT_SHIFT;
    return (_Atomic uint64_t *)(vt_page_area(page) + run -
                                (size_t)page->capacity * sizeof(uint64_t));
}

/* Where the record of block p is kept: for a page of one block, in its descriptor; else among
 * the page's records (above). */
static inline _Atomic uint64_t *vt_profpages_record_of(vt_page_t *page, const void *p)
{
    if (vt_profpages_one_block(page))
        return &page->prof_record;
    uintptr_t offset = (uintptr_t)p - (uintptr_t)vt_page_area(page);
    return &vt_profpages_records(page)[offset >> __builtin_ctz(page->bsize)];
}

/* vt_profpages_pop when the class's shared page has a free block, the common case; NULL
 * otherwise (then the caller asks vt_profpages_pop). Class 0 is never a page class, and a page
 * of one block is never a current page, so current[c] is set only for a shared class that has
 * had a page. */
static inline void *vt_profpages_pop_current(vt_prof_pages_t *pp, unsigned class_idx,
                                             _Atomic uint64_t **record)
{
    unsigned c = pp->page_class[class_idx];
    vt_page_t *page = pp->current[c];
    if (vt_unlikely(page == NULL || page->free == NULL))
        return NULL;
    void *p = vt_page_pop(page);
    if (vt_unlikely(p == NULL))
        return NULL; /* a damaged link: vt_profpages_pop meets it again, and gives up */
    pp->sampled[c] = true;
    *record = vt_profpages_record_of(page, p);
    return p;
}

/* vt_profpages_put for a block of the class's current page, which stays where it is whatever
 * its count: the common case. False, having done nothing, for any other page. */
static inline bool vt_profpages_put_kept(vt_prof_pages_t *pp, vt_page_t *page, void *p,
                                         uint64_t *record)
{
    if (page != pp->current[page->class_idx])
        return false;
    _Atomic uint64_t *slot = vt_profpages_record_of(page, p);
    *record = atomic_load_explicit(slot, memory_order_relaxed); /* no writer but us: see put */
    atomic_store_explicit(slot, 0, memory_order_relaxed);
    vt_page_push(page, p);
    page->used--;
    return true;
}

#endif /* VT_PROFPAGES_H */
