/*
 * test_profpages.c - where the heap profiler puts sampled small blocks (profpages.c): blocks up
 * to 16 KiB share the pages of five classes, each block aligned to its page's block size; a
 * larger block gets a run of its own, of one to four whole units, which is kept empty after
 * its free and serves the next sample of its length; kept and shared pages go back at
 * malloc_trim, and at the purge pass once nothing was sampled into them for a retention
 * window. Each block's record is kept beside it, and comes back with its put.
 *
 * A thread's own pages (profown.c): the five kinds are those five classes, found from the
 * class index alone; a block's record is found from its address and kind alone, where the page
 * keeps it; the owner's frees, other threads' pushes and the owner's leaving keep every block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "internal.h"
#include "profown.h"
#include "profpages.h"

static vt_page_t *page_of(void *p)
{
    return vt_span_page(vt_span_base(p), p);
}

/* A block for a sample of class c, its record written as prof.c does: the block's address. */
static void *pop(vt_prof_pages_t *pp, unsigned c)
{
    _Atomic uint64_t *record = NULL;
    void *p = vt_profpages_pop(pp, c, 0, &record);
    if (p != NULL) {
        assert_non_null(record);
        atomic_store(record, (uint64_t)(uintptr_t)p);
    }
    return p;
}

static uint64_t class_pages(size_t size)
{
    return atomic_load_explicit(&vt_page_class_pages[vt_size_class(size)], memory_order_relaxed);
}

static void small_samples_share_five_classes(void **state)
{
    (void)state;
    vt_init();
    vt_prof_pages_t pp = {0};
    static const size_t asked[] = {16, 48, 64, 100, 256, 300, 1000, 2000, 4096, 5000, 16384};
    static const size_t served[] = {64, 64, 64, 256, 256, 1024, 1024, 4096, 4096, 16384, 16384};
    enum { N = sizeof(asked) / sizeof(asked[0]) };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = pop(&pp, vt_size_class(asked[i]));
        assert_non_null(blocks[i]);
        vt_page_t *page = page_of(blocks[i]);
        assert_int_equal(vt_page_owner(page), VT_OWNER_PROF);
        assert_int_equal(page->bsize, served[i]);
        assert_int_equal((uintptr_t)blocks[i] % served[i], 0);
    }
    /* One page per shared class: 16 and 48 bytes come from the same one. */
    assert_ptr_equal(page_of(blocks[0]), page_of(blocks[1]));
    for (int i = 0; i < N; i++)
        vt_profpages_put(&pp, page_of(blocks[i]), blocks[i]);
    /* The empty current pages stay for the next samples... */
    assert_ptr_equal(pp.current[vt_size_class(64)], page_of(blocks[0]));
    /* ...and go back at malloc_trim. */
    vt_profpages_release_empty(&pp);
    for (size_t c = 0; c < VT_CLASS_COUNT; c++)
        assert_null(pp.current[c]);
    assert_ptr_equal(page_of(blocks[0]), &vt_page_none);
}

static void larger_samples_get_a_run_each_and_reuse_it(void **state)
{
    (void)state;
    vt_init();
    vt_prof_pages_t pp = {0};
    unsigned c20k = vt_size_class(20000), c40k = vt_size_class(40000);
    uint64_t pages_64k = class_pages(65536), pages_256k = class_pages(256 << 10);

    void *p = pop(&pp, c20k);
    void *q = pop(&pp, c20k);
    assert_non_null(p);
    assert_non_null(q);
    vt_page_t *pp_page = page_of(p);
    assert_ptr_not_equal(pp_page, page_of(q));
    assert_int_equal(pp_page->capacity, 1);
    assert_ptr_equal(p, vt_page_area(pp_page));
    assert_int_equal(pp_page->units, VT_PROF_RUN_UNITS);
    assert_int_equal(pp_page->bsize, 65536);
    assert_int_equal(class_pages(65536), pages_64k + 2);

    /* Freed, the run is kept; a sample of another class of the same length takes it. */
    vt_profpages_put(&pp, pp_page, p);
    assert_int_equal(pp.ones_n, 1);
    void *r = pop(&pp, c40k);
    assert_ptr_equal(r, p);
    assert_int_equal(pp.ones_n, 0);

    /* A block of several units does not take a kept run of one. */
    vt_profpages_put(&pp, page_of(r), r);
    void *big = pop(&pp, vt_size_class(200 << 10));
    assert_non_null(big);
    assert_ptr_not_equal(big, p);
    assert_int_equal(page_of(big)->units, 4 * VT_PROF_RUN_UNITS);
    assert_int_equal(page_of(big)->bsize, 256 << 10);
    assert_int_equal(class_pages(256 << 10), pages_256k + 1);
    assert_int_equal(pp.ones_n, 1);

    /* At most VT_PROF_ONES are kept; a page freed beyond them goes back to its span. */
    void *more[VT_PROF_ONES + 1];
    for (int i = 0; i < VT_PROF_ONES + 1; i++)
        more[i] = pop(&pp, c20k);
    vt_profpages_put(&pp, page_of(q), q);
    vt_profpages_put(&pp, page_of(big), big);
    for (int i = 0; i < VT_PROF_ONES + 1; i++)
        vt_profpages_put(&pp, page_of(more[i]), more[i]);
    assert_int_equal(pp.ones_n, VT_PROF_ONES);
    int released = 0;
    for (int i = 0; i < VT_PROF_ONES + 1; i++)
        released += page_of(more[i]) == &vt_page_none;
    assert_true(released >= 1);
    vt_profpages_release_empty(&pp);
    assert_int_equal(pp.ones_n, 0);
    assert_int_equal(class_pages(65536), pages_64k);
    assert_int_equal(class_pages(256 << 10), pages_256k);
}

static void the_pass_returns_what_was_not_sampled_for_a_window(void **state)
{
    (void)state;
    vt_init();
    vt_prof_pages_t pp = {0};
    unsigned c100 = vt_size_class(100), c20k = vt_size_class(20000);
    void *small = pop(&pp, c100), *large = pop(&pp, c20k);
    vt_page_t *small_page = page_of(small), *large_page = page_of(large);
    vt_profpages_put(&pp, small_page, small);
    vt_profpages_put(&pp, large_page, large);
    uint32_t saved = vt_options.purge_ms, now = 1000000, window = 1000;
    vt_options.purge_ms = window;
    /* A pass that finds them sampled since the last one keeps them, for a window. */
    vt_profpages_pass(&pp, now);
    vt_profpages_pass(&pp, now + window - 1);
    assert_ptr_equal(pp.current[vt_size_class(256)], small_page);
    assert_int_equal(pp.ones_n, 1);
    /* A sample of the large kind only: the small page goes at the end of its window. */
    large = pop(&pp, c20k);
    vt_profpages_put(&pp, page_of(large), large);
    vt_profpages_pass(&pp, now + window - 1);
    vt_profpages_pass(&pp, now + window);
    assert_null(pp.current[vt_size_class(256)]);
    assert_ptr_equal(page_of(small), &vt_page_none);
    assert_int_equal(pp.ones_n, 1);
    vt_profpages_pass(&pp, now + 2 * window);
    assert_int_equal(pp.ones_n, 0);
    assert_ptr_equal(page_of(large), &vt_page_none);
    vt_options.purge_ms = saved;
}

/* Each block's record is its own, outside every block of its page, and comes back with the
 * block's put; the shared pages give up a few blocks to make room for the records. */
static void records_are_kept_beside_the_blocks(void **state)
{
    (void)state;
    vt_init();
    vt_prof_pages_t pp = {0};
    unsigned c64 = vt_size_class(64), c16k = vt_size_class(16384), c20k = vt_size_class(20000);
    enum { N = 1200 }; /* more than a page of 64-byte blocks holds */
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = pop(&pp, c64);
    vt_page_t *first = page_of(blocks[0]);
    size_t run = (size_t)first->units << VT_UNIT_SHIFT;
    assert_int_equal(first->capacity, run / (64 + 8));
    /* The records end the run, past the last block. */
    uint8_t *area = vt_page_area(first), *end = area + (size_t)first->capacity * 64;
    _Atomic uint64_t *records = vt_profpages_record_of(first, area);
    assert_true((uint8_t *)records >= end);
    assert_ptr_equal(records + first->capacity, area + run);
    for (int i = 0; i < N; i++) /* every record still holds what was written into it */
        assert_int_equal(vt_profpages_put(&pp, page_of(blocks[i]), blocks[i]),
                         (uint64_t)(uintptr_t)blocks[i]);
    /* A put clears the record: the next block there starts without one. */
    _Atomic uint64_t *record = NULL;
    void *again = vt_profpages_pop(&pp, c64, 0, &record);
    assert_int_equal(atomic_load(record), 0);
    vt_profpages_put(&pp, page_of(again), again);

    void *b16k[4];
    for (int i = 0; i < 4; i++)
        b16k[i] = pop(&pp, c16k);
    assert_int_equal(page_of(b16k[0])->capacity, 3); /* 4 blocks of 16 KiB less one */
    /* Not 4 KiB-aligned, as right after the last block they would be: that offset shares the
     * first-level cache's set with every page-aligned block's first line. */
    uintptr_t at = (uintptr_t)vt_profpages_record_of(page_of(b16k[0]), b16k[0]);
    assert_int_not_equal(at % 4096, 0);
    assert_ptr_not_equal(page_of(b16k[0]), page_of(b16k[3])); /* the fourth went elsewhere */
    void *one = pop(&pp, c20k); /* a page of one block: the record is in its descriptor */
    assert_int_equal(atomic_load(&page_of(one)->prof_record), (uint64_t)(uintptr_t)one);
    assert_int_equal(vt_profpages_put(&pp, page_of(one), one), (uint64_t)(uintptr_t)one);
    assert_int_equal(atomic_load(&page_of(one)->prof_record), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(vt_profpages_put(&pp, page_of(b16k[i]), b16k[i]),
                         (uint64_t)(uintptr_t)b16k[i]);
    vt_profpages_release_empty(&pp);
}

/* A thread's record of its own pages: its sample fields on one line, and that line not at the
 * start of a page, whose first-level cache set every page-aligned block's first line shares. */
static void own_record_lies_off_the_page_start(void **state)
{
    (void)state;
    vt_init();
    vt_prof_own_t *own = vt_profown_new();
    assert_non_null(own);
    assert_int_equal((uintptr_t)own % 64, 0);
    assert_int_not_equal((uintptr_t)own % vt_os_page_size(), 0);
    assert_null(own->current[0]); /* and zero, as mapped, but for the kinds' record offsets */
    assert_int_equal(own->records_at[VT_PROFOWN_KINDS - 1], VT_PROF_RUN - 3 * sizeof(uint64_t));
}

/* vt_profown_kind's arithmetic names the page class profpages.c gives every class. */
static void own_kinds_are_the_shared_page_classes(void **state)
{
    (void)state;
    vt_init();
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        unsigned pc = vt_profpages_page_class(c), k = vt_profown_kind(c);
        if (vt_classes[pc].bsize <= VT_PROF_SHARED_MAX) {
            assert_true(k < VT_PROFOWN_KINDS);
            assert_int_equal(vt_size_class((size_t)64 << 2 * k), pc);
            assert_int_equal(vt_classes[pc].units, 1);
        } else {
            assert_true(k >= VT_PROFOWN_KINDS);
        }
    }
}

/* Every block of two pages of each kind: its record where the page keeps it. The owner frees
 * half; another thread's pushes bring back the rest, which the owner takes again once its
 * current page runs out; leaving closes the pages to pushes, with every block back. */
static void own_pages_keep_records_and_blocks(void **state)
{
    (void)state;
    vt_init();
    static vt_prof_own_t own; /* zero, as mapped */
    vt_profown_init(&own);
    for (unsigned k = 0; k < VT_PROFOWN_KINDS; k++) {
        size_t b = (size_t)64 << 2 * k;
        unsigned per_page = (unsigned)(VT_PROF_RUN / (b + 8)), n = 2 * per_page;
        static void *blocks[2 * 1000];
        for (unsigned i = 0; i < n; i++) {
            _Atomic uint64_t *record = NULL;
            blocks[i] = vt_profown_pop(&own, k, 0, &record);
            assert_non_null(blocks[i]);
            vt_page_t *page = page_of(blocks[i]);
            assert_ptr_equal(atomic_load(&page->prof_owner), &own);
            assert_int_equal(page->capacity, per_page);
            assert_ptr_equal(record, vt_profpages_record_of(page, blocks[i]));
            assert_int_equal(atomic_load(record), 0);
            atomic_store(record, (uint64_t)i + 1);
        }
        vt_page_t *first = page_of(blocks[0]), *second = page_of(blocks[n - 1]);
        assert_ptr_not_equal(first, second);
        for (unsigned i = 0; i < n; i += 2) /* the owner's frees */
            assert_true(vt_profown_free(&own, page_of(blocks[i]), blocks[i]));
        for (unsigned i = 1; i < n; i += 2) { /* another thread's */
            atomic_store(vt_profpages_record_of(page_of(blocks[i]), blocks[i]), 0);
            assert_true(vt_profown_push(page_of(blocks[i]), blocks[i]));
        }
        /* A freed block is free: a second free of it fails the owner's check. */
        assert_false(vt_profown_free(&own, page_of(blocks[0]), blocks[0]));
        /* The pushed blocks still count as used, on the page's remote list. */
        assert_int_equal(first->used, per_page / 2);
        assert_int_equal(atomic_load(&first->remote) >> VT_REMOTE_COUNT_SHIFT, per_page / 2);
        /* The owner takes every block again: its own frees, then the pushed ones. */
        for (unsigned i = 0; i < n; i++) {
            _Atomic uint64_t *record = NULL;
            blocks[i] = vt_profown_pop(&own, k, 0, &record);
            assert_true(page_of(blocks[i]) == first || page_of(blocks[i]) == second);
            assert_int_equal(atomic_load(record), 0); /* every free cleared it */
        }
        assert_int_equal(first->used + second->used, n);
        for (unsigned i = 0; i < n; i++)
            assert_true(vt_profown_free(&own, page_of(blocks[i]), blocks[i]));
    }
    /* Leaving: a closed page takes no pushes; its blocks stay its own. */
    vt_page_t *page;
    while ((page = own.pages.head) != NULL) {
        vt_list_remove(&own.pages, page, VT_PAGE_LINK);
        vt_profown_close(page);
        assert_null(atomic_load(&page->prof_owner));
        void *p = vt_page_pop(page);
        assert_non_null(p);
        assert_false(vt_profown_push(page, p));
        vt_page_push(page, p);
        page->used--;
        assert_int_equal(page->used, 0);
        vt_profpages_release(page);
    }
}

/* A thread that samples often takes its samples from pages of its own; once they are all
 * freed, the one page still current stays for the next sample, and malloc_trim gives it back. */
static void trim_gives_back_a_threads_empty_own_pages(void **state)
{
    (void)state;
    vt_init();
    uint32_t saved = vt_options.prof_sample;
    vt_options.prof_sample = 4096;
    static vt_unwind_memo_t *memo;
    static vt_prof_own_t *own;
    unsigned c = vt_size_class(1000), k = vt_profown_kind(c);
    enum { N = 300 }; /* past the samples a thread takes through its shard first */
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = vt_prof_alloc_small(c, 1000, __builtin_frame_address(0), &memo, &own);
        assert_non_null(blocks[i]);
    }
    assert_non_null(own);
    assert_true(own->hot);
    assert_non_null(own->current[k]);
    assert_ptr_equal(atomic_load(&page_of(blocks[N - 1])->prof_owner), own);
    for (int i = 0; i < N; i++)
        vt_prof_free_small(page_of(blocks[i]), blocks[i]);
    assert_int_equal(own->pages.count, 1); /* the current page, empty */
    assert_int_equal(own->current[k]->used, 0);
    vt_prof_trim_own();
    assert_int_equal(own->pages.count, 0);
    assert_null(own->current[k]);
    vt_prof_trim(); /* and the shard's pages, from the first samples */
    vt_options.prof_sample = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_samples_share_five_classes),
        cmocka_unit_test(larger_samples_get_a_run_each_and_reuse_it),
        cmocka_unit_test(the_pass_returns_what_was_not_sampled_for_a_window),
        cmocka_unit_test(records_are_kept_beside_the_blocks),
        cmocka_unit_test(own_record_lies_off_the_page_start),
        cmocka_unit_test(own_kinds_are_the_shared_page_classes),
        cmocka_unit_test(own_pages_keep_records_and_blocks),
        cmocka_unit_test(trim_gives_back_a_threads_empty_own_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
