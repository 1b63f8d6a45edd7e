/*
 * bin.h - a thread cache's bins: for each size class, the pages the thread has attached, the
 * current one (where malloc's fast path pops) first.
 *
 * Layer: 8 thread cache (a header of tcache.c's; stats.c walks the bins with it too). It calls
 * nothing; an empty bin points at page.c's static empty page.
 *
 * A bin is a list through the pages' links, stored in two small arrays of the cache rather than
 * in a list header of three words a class: every thread has one cache, so its size is paid per
 * thread (a server with thousands of threads, most parked). The head is alloc_page[c], the very
 * word the fast path reads, with &vt_page_none for an empty bin (the fast path then needs no
 * NULL test). The tail is not stored: the head's prev link points to it, while the tail's next
 * is NULL, so a walk by `next` from the head ends as on any list, and a push at either end is a
 * few stores. Only the cache's owner (or whoever holds the cache, see vt_tcache_t) calls these.
 */
#ifndef VT_BIN_H
#define VT_BIN_H

#include "internal.h"

/* The first page of the bin, or NULL when it has none. */
static inline vt_page_t *vt_bin_first(const vt_tcache_t *tc, unsigned c)
{
    vt_page_t *head = tc->alloc_page[c];
    return head != &vt_page_none ? head : NULL;
}

/* The page after `page` in its bin, or NULL. */
static inline vt_page_t *vt_bin_next(const vt_page_t *page)
{
    return page->link.next;
}

/* Debug builds: the bin's shape after each change (at most VTMALLOC_CLASS_PAGES pages). */
static inline void vt_bin_check(const vt_tcache_t *tc, unsigned c)
{
    if (!VT_DEBUG)
        return;
    vt_page_t *head = vt_bin_first(tc, c), *last = NULL;
    unsigned n = 0;
    for (vt_page_t *page = head; page != NULL; last = page, page = page->link.next, n++)
        VT_ASSERT(page == head || page->link.prev == last);
    VT_ASSERT(n == tc->bin_pages[c] && (head == NULL || head->link.prev == last));
}

/* Makes `page` the bin's first, hence current, page. */
static inline void vt_bin_push_front(vt_tcache_t *tc, unsigned c, vt_page_t *page)
{
    vt_page_t *head = vt_bin_first(tc, c);
    page->link.next = head;
    page->link.prev = head != NULL ? head->link.prev : page; /* the tail */
    if (head != NULL)
        head->link.prev = page;
    tc->alloc_page[c] = page;
    tc->bin_pages[c]++;
    vt_bin_check(tc, c);
}

/* Puts `page` last, behind the pages with free blocks already in the bin. */
static inline void vt_bin_push_back(vt_tcache_t *tc, unsigned c, vt_page_t *page)
{
    vt_page_t *head = vt_bin_first(tc, c);
    if (head == NULL) {
        vt_bin_push_front(tc, c, page);
        return;
    }
    vt_page_t *tail = head->link.prev;
    tail->link.next = page;
    page->link.prev = tail;
    page->link.next = NULL;
    head->link.prev = page;
    tc->bin_pages[c]++;
    vt_bin_check(tc, c);
}

/* Takes `page`, which is in bin c, out of it; its links end NULL, as vt_list_remove leaves them. */
static inline void vt_bin_remove(vt_tcache_t *tc, unsigned c, vt_page_t *page)
{
    vt_page_t *head = tc->alloc_page[c], *prev = page->link.prev, *next = page->link.next;
    if (page == head) {
        tc->alloc_page[c] = next != NULL ? next : &vt_page_none;
        if (next != NULL)
            next->link.prev = prev; /* the tail, which may be `next` itself */
    } else {
        prev->link.next = next;
        if (next != NULL)
            next->link.prev = prev;
        else
            head->link.prev = prev; /* it was the tail */
    }
    page->link.prev = page->link.next = NULL;
    tc->bin_pages[c]--;
    vt_bin_check(tc, c);
}

#endif /* VT_BIN_H */
