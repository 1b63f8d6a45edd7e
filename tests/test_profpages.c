/*
 * test_profpages.c - where the heap profiler puts sampled small blocks (profpages.c): blocks up
 * to 16 KiB share the pages of five classes, each block aligned to its page's block size; a
 * larger block gets a run of its own, of one to four whole units, which is kept empty after
 * its free and serves the next sample of its length; kept and shared pages go back at
 * malloc_trim, and at the purge pass once nothing was sampled into them for a retention
 * window. Each block's record is kept beside it, and comes back with its put.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "internal.h"
#include "profpages.h"

static vt_page_t *page_of(void *p)
{
    return vt_span_page(vt_span_base(p), p);
}

/* A block for a sample of class c, its record written as prof.c does: the block's address. */
static void *pop(vt_prof_pages_t *pp, unsigned c)
{
    uint64_t *record = NULL;
    void *p = vt_profpages_pop(pp, c, 0, &record);
    if (p != NULL) {
        assert_non_null(record);
        *record = (uint64_t)(uintptr_t)p;
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
    assert_int_equal(pp_page->units, 1);
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
    assert_int_equal(page_of(big)->units, 4);
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
    /* The records lie past the last block, within the run. */
    uint8_t *area = vt_page_area(first), *end = area + (size_t)first->capacity * 64;
    assert_true(end + first->capacity * sizeof(uint64_t) <= area + run);
    for (int i = 0; i < N; i++) /* every record still holds what was written into it */
        assert_int_equal(vt_profpages_put(&pp, page_of(blocks[i]), blocks[i]),
                         (uint64_t)(uintptr_t)blocks[i]);
    /* A put clears the record: the next block there starts without one. */
    uint64_t *record = NULL;
    void *again = vt_profpages_pop(&pp, c64, 0, &record);
    assert_int_equal(*record, 0);
    vt_profpages_put(&pp, page_of(again), again);

    void *b16k[4];
    for (int i = 0; i < 4; i++)
        b16k[i] = pop(&pp, c16k);
    assert_int_equal(page_of(b16k[0])->capacity, 3);          /* 4 blocks of 16 KiB less one */
    assert_ptr_not_equal(page_of(b16k[0]), page_of(b16k[3])); /* the fourth went elsewhere */
    void *one = pop(&pp, c20k); /* a page of one block: the record is in its descriptor */
    assert_int_equal(page_of(one)->prof_record, (uint64_t)(uintptr_t)one);
    assert_int_equal(vt_profpages_put(&pp, page_of(one), one), (uint64_t)(uintptr_t)one);
    assert_int_equal(page_of(one)->prof_record, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(vt_profpages_put(&pp, page_of(b16k[i]), b16k[i]),
                         (uint64_t)(uintptr_t)b16k[i]);
    vt_profpages_release_empty(&pp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_samples_share_five_classes),
        cmocka_unit_test(larger_samples_get_a_run_each_and_reuse_it),
        cmocka_unit_test(the_pass_returns_what_was_not_sampled_for_a_window),
        cmocka_unit_test(records_are_kept_beside_the_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
