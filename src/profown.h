/*
 * profown.h - the heap profiler's pages of a thread's own (profown.c): their record, and the
 * common case of taking a block from them, inline, so that a sample pays no call for it
 * (prof.c).
 *
 * Owns: nothing; a vt_prof_own_t belongs to a thread cache (types.h: prof_own).
 */
#ifndef VT_PROFOWN_H
#define VT_PROFOWN_H

#include "internal.h"
#include "profpages.h"

/* The kinds of a thread's own pages: the page classes whose samples share pages
 * (profpages.c), 64 B, 256 B, 1 KiB, 4 KiB and 16 KiB, each a page of VT_PROF_RUN. The classes
 * above get a page each, and stay with the shards, whose few kept pages of one serve every
 * thread. */
#define VT_PROFOWN_KINDS 5
_Static_assert((64 << 2 * (VT_PROFOWN_KINDS - 1)) == VT_PROF_SHARED_MAX, "kinds are powers of 4");

/* The kind that serves class c, VT_PROFOWN_KINDS or more for none: the classes are 16..128 in
 * steps of 16, then four to each power of two, so 64 B is class 3, 256 B class 11, and each
 * power of four eight classes on (test_profpages checks it against profpages.c). */
static inline unsigned vt_profown_kind(unsigned class_idx)
{
    return (class_idx + 4) >> 3;
}

/*
 * The profiler's record of one thread cache: its own pages, which samples of a thread that
 * samples often come from without a lock. Every field belongs to the cache's owner: the thread
 * using the cache, or whoever hands the cache back when its thread is gone (reclaim.c). The
 * pages themselves are shared in part: any thread frees into them (profown.c says how). A
 * sample reads and writes the first cache line only (the record is mapped, its first field at a
 * line's start): at one sample in many mallocs, each line it touches has left the first-level
 * cache.
 */
typedef struct vt_prof_own {
    vt_page_t *current[VT_PROFOWN_KINDS]; /* by kind: where its samples come from, or NULL */
    uint64_t pend_known; /* the stack (a word of the unwind memo, prof.c) of the counts below */
    uint32_t pend_bytes; /* samples of it not yet in its stack's entry: their bytes (prof.c) */
    /* by kind: where a page's records start, from its unit (profpages.c), as in
     * vt_profpages_record_of but without a read of the page's descriptor */
    uint16_t records_at[VT_PROFOWN_KINDS];
    uint8_t pend_n; /* and how many */
    bool hot;       /* its samples come from these pages (prof.c says when) */
    /* -- the rest, on the slow paths -- */
    uint32_t samples; /* samples it took through the shards since its thread started */
    vt_list_t pages;  /* every page it owns, the current ones too (through page->link) */
} vt_prof_own_t;
_Static_assert(offsetof(vt_prof_own_t, samples) == 64, "a sample's fields fill one line");

/* A record, mapped and set up; NULL when there is no memory for it. */
vt_prof_own_t *vt_profown_new(void) VT_HIDDEN;
/* The record's fields that depend on nothing but the kind, once the record is mapped. */
void vt_profown_init(vt_prof_own_t *own) VT_HIDDEN;
/* A page of its own of kind k (the current one, another with blocks back, or a fresh one for
 * the shard), with a free block; NULL when there is no memory. */
vt_page_t *vt_profown_refill(vt_prof_own_t *own, unsigned k, uint8_t shard) VT_HIDDEN;
/* A page of its own that emptied goes back (vt_profown_free). */
void vt_profown_release(vt_prof_own_t *own, vt_page_t *page) VT_HIDDEN;
/* Any other thread's free of block p of an owned page: pushed for the owner to collect; false,
 * having pushed nothing, when the page is a shard's (then the shard's lock serves the free). */
bool vt_profown_push(vt_page_t *page, void *p) VT_HIDDEN;
/* The owner leaves the page: the blocks freed into it are collected, and from now on every
 * free goes to the shard. The shard's lock held. */
void vt_profown_close(vt_page_t *page) VT_HIDDEN;
/* A damaged link on page's list: reported, and the list dropped (warn mode). */
void vt_profown_damaged(vt_page_t *page) VT_COLD VT_HIDDEN;

/* The record of block p of page, a page of its own of kind k: where the page's records start
 * is known from the kind, so of the descriptor only first_unit is read besides the free list
 * (the run is VT_PROF_RUN long but only unit-aligned, so p alone does not give its start). */
static inline _Atomic uint64_t *vt_profown_record(const vt_prof_own_t *own, unsigned k,
                                                  const vt_page_t *page, void *p)
{
    uintptr_t area = (uintptr_t)vt_page_area(page);
    return (_Atomic uint64_t *)(area + own->records_at[k]) + (((uintptr_t)p - area) >> (6 + 2 * k));
}

/* A block for a sample of kind k, and in *record the place of its record; NULL when there is
 * no memory. Owner only: no lock, no atomic read-modify-write. */
static inline void *vt_profown_pop(vt_prof_own_t *own, unsigned k, uint8_t shard,
                                   _Atomic uint64_t **record)
{
    vt_page_t *page = own->current[k];
    if (vt_unlikely(page == NULL || page->free == NULL)) {
        page = vt_profown_refill(own, k, shard);
        if (page == NULL)
            return NULL;
    }
    void *p = vt_page_pop(page);
    if (vt_unlikely(p == NULL)) {
        vt_profown_damaged(page);
        return NULL;
    }
    *record = vt_profown_record(own, k, page, p);
    VT_ASSERT(*record == vt_profpages_record_of(page, p));
    return p;
}

/* The owner's free of block p of its page (page->prof_owner is the caller's own): checked as
 * vt_page_check_block would, knowing that the page is assigned, never purged (only the global
 * cache's pages are) and of a power-of-two block size (profpages.c), then its record cleared and
 * the block pushed. False, having done nothing, when the check fails: the caller reports. */
static inline bool vt_profown_free(vt_prof_own_t *own, vt_page_t *page, void *p)
{
    VT_ASSERT((page->bsize & (page->bsize - 1)) == 0 && !vt_profpages_one_block(page));
    uint8_t *area = vt_page_area(page);
    uintptr_t offset = (uintptr_t)p - (uintptr_t)area,
              end = (uintptr_t)page->capacity * page->bsize;
    vt_block_t *b = p;
    if (vt_unlikely(offset >= end || (offset & (page->bsize - 1)) != 0 ||
                    b->key == vt_block_key(b)))
        return false;
    /* The block is ours until it is pushed, and the scan only reads: no other writer. */
    atomic_store_explicit(&vt_profpages_records(page)[offset >> __builtin_ctz(page->bsize)], 0,
                          memory_order_relaxed);
    vt_page_push(page, b);
    /* Empty, and not where samples come from: nothing pins it. `used` counts the blocks on the
     * remote list too, so none is on its way here. */
    if (vt_unlikely(--page->used == 0 && page != own->current[vt_profown_kind(page->class_idx)]))
        vt_profown_release(own, page);
    return true;
}

#endif /* VT_PROFOWN_H */
