/*
 * test_api.c - every entry point of the vt_* API and its edge cases, with glibc's semantics:
 * return values, errno, contents, usable sizes. Linked against the core library, so the
 * system allocator stays in place beside vtmalloc.
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>

#include "internal.h"
#include "vtmalloc.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- malloc, free ----------------------------------------------------------------------- */

static void malloc_zero_returns_unique_pointers(void **state)
{
    (void)state;
    void *a = vt_malloc(0), *b = vt_malloc(0);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_true(vt_malloc_usable_size(a) >= 1);
    vt_free(a);
    vt_free(b);
}

static void malloc_every_small_size_is_aligned_and_writable(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 5000; n += (n < 300 ? 1 : 37)) {
        uint8_t *p = vt_malloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        size_t usable = vt_malloc_usable_size(p);
        assert_true(usable >= n);
        pattern_fill(p, usable, n); /* the whole usable size is ours to write */
        assert_int_equal(pattern_check(p, usable, n), usable);
        vt_free(p);
    }
}

static void malloc_impossible_sizes_fail_with_enomem(void **state)
{
    (void)state;
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, SIZE_MAX / 2 + 2};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        errno = 0;
        assert_null(vt_malloc(sizes[i]));
        assert_int_equal(errno, ENOMEM);
    }
}

static void large_blocks_are_page_aligned_and_exact(void **state)
{
    (void)state;
    size_t sizes[] = {VT_SMALL_MAX + 1, 300000, 1 << 20, (size_t)100 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = vt_malloc(sizes[i]);
        assert_non_null(p);
        /* Up to VT_LARGE_SPAN_MAX a run of 64 KiB units, above it a mapping of its own. */
        size_t grain = sizes[i] <= VT_LARGE_SPAN_MAX ? VT_UNIT_SIZE : page_size();
        assert_int_equal((uintptr_t)p % grain, 0);
        assert_int_equal(vt_in_span(p), sizes[i] <= VT_LARGE_SPAN_MAX);
        size_t usable = vt_malloc_usable_size(p);
        assert_true(usable >= sizes[i]);
        assert_true(usable < sizes[i] + grain); /* never more than really reserved */
        p[0] = 1;
        p[usable - 1] = 2;
        vt_free(p);
    }
}

/* ---- Large blocks in spans (above the classes, up to VT_LARGE_SPAN_MAX) ----------------- */

static uint64_t run_bits(const void *p, size_t units)
{
    size_t first = ((uintptr_t)p & VT_SPAN_MASK) >> VT_UNIT_SHIFT;
    return (((uint64_t)1 << units) - 1) << first;
}

/* A large block in a span grows in place into the free units after it, and gives the tail
 * back when it shrinks; the contents survive either way. */
static void large_block_in_a_span_resizes_in_place(void **state)
{
    (void)state;
    /* A run of the fewest units above the classes, and three more to grow into. */
    enum { A = (int)(VT_SMALL_MAX / VT_UNIT_SIZE) + 1, B = A + 3 };
    _Static_assert(B * VT_UNIT_SIZE <= VT_LARGE_SPAN_MAX, "both sizes are large blocks in spans");
    uint8_t *p = vt_malloc(A * VT_UNIT_SIZE);
    assert_non_null(p);
    assert_true(vt_in_span(p));
    pattern_fill(p, A * VT_UNIT_SIZE, 3);
    vt_span_t *span = vt_span_base(p);
    /* White box: whether the next three units are free decides in place or moved. The global
     * lock is not held, but this test's thread is the only one allocating. */
    bool room = (span->free_units & (run_bits(p, B) & ~run_bits(p, A))) ==
                    (run_bits(p, B) & ~run_bits(p, A)) &&
                ((uintptr_t)p & VT_SPAN_MASK) + B * VT_UNIT_SIZE <= VT_SPAN_SIZE;
    uint8_t *q = vt_realloc(p, B * VT_UNIT_SIZE - 100);
    assert_non_null(q);
    if (room)
        assert_ptr_equal(q, p);
    assert_int_equal(pattern_check(q, A * VT_UNIT_SIZE, 3), A * VT_UNIT_SIZE);
    assert_int_equal(vt_malloc_usable_size(q), B * VT_UNIT_SIZE);

    /* Shrink back: same block, its last three units free again. */
    uint8_t *r = vt_realloc(q, A * VT_UNIT_SIZE);
    assert_ptr_equal(r, q);
    assert_int_equal(vt_malloc_usable_size(r), A * VT_UNIT_SIZE);
    uint64_t tail = run_bits(r, B) & ~run_bits(r, A);
    assert_int_equal(vt_span_base(r)->free_units & tail, tail);
    assert_int_equal(pattern_check(r, A * VT_UNIT_SIZE, 3), A * VT_UNIT_SIZE);
    /* Below the classes' top it moves into a class; above VT_LARGE_SPAN_MAX to a mapping. */
    uint8_t *small = vt_realloc(r, 1000);
    assert_true(vt_in_span(small));
    assert_int_equal(vt_malloc_usable_size(small), 1024);
    assert_int_equal(pattern_check(small, 1000, 3), 1000);
    uint8_t *big = vt_realloc(small, VT_LARGE_SPAN_MAX + 1);
    assert_false(vt_in_span(big));
    assert_int_equal(pattern_check(big, 1000, 3), 1000);
    vt_free(big);
}

/* Fills a block of n bytes, frees it, and checks that calloc(1, n) right after is all zero:
 * the freed memory is what calloc is most likely to get back. */
static void calloc_after_a_dirty_free(size_t n)
{
    uint8_t *p = vt_malloc(n);
    assert_non_null(p);
    memset(p, 0xA5, n);
    vt_free(p);
    uint8_t *q = vt_calloc(1, n);
    assert_non_null(q);
    for (size_t i = 0; i < n; i++)
        if (q[i] != 0)
            fail_msg("calloc(1, %zu): byte %zu is %u", n, i, q[i]);
    vt_free(q);
}

/* calloc of a large block is zero even when its units held another block a moment ago (they
 * are reused resident, without a page fault, so the zeroing is calloc's job). */
static void calloc_of_a_large_block_is_zero_after_reuse(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        calloc_after_a_dirty_free(9 * VT_UNIT_SIZE);
}

static void *free_block(void *p)
{
    vt_free(p);
    return NULL;
}

/* A large block in a span belongs to no thread: another thread frees it, and its units are
 * free for blocks of any size at once. Statistics count it among the large blocks. */
static void large_block_in_a_span_is_freed_by_any_thread(void **state)
{
    (void)state;
    vt_stats_t before, during, after;
    vt_stats_get(&before);
    void *p = vt_malloc(VT_LARGE_SPAN_MAX);
    assert_true(vt_in_span(p));
    assert_int_equal((uintptr_t)p % VT_UNIT_SIZE, 0);
    vt_stats_get(&during);
    assert_int_equal(during.large_blocks, before.large_blocks + 1);
    assert_int_equal(during.large_bytes, before.large_bytes + VT_LARGE_SPAN_MAX);
    assert_int_equal(during.large_allocs_total, before.large_allocs_total + 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_block, p), 0);
    pthread_join(th, NULL);
    vt_stats_get(&after);
    assert_int_equal(after.large_blocks, before.large_blocks);
    assert_int_equal(after.large_bytes, before.large_bytes);
    uint64_t bits = run_bits(p, VT_LARGE_SPAN_UNITS);
    assert_int_equal(vt_span_base(p)->free_units & bits, bits);
    assert_ptr_equal(vt_span_page(vt_span_base(p), p), &vt_page_none);
}

/* Alignments up to half a span come from spans (a run of units starting at a multiple of
 * the alignment); larger ones are mapped. */
static void aligned_large_blocks(void **state)
{
    (void)state;
    size_t aligns[] = {VT_UNIT_SIZE, 2 * VT_UNIT_SIZE, 16 * VT_UNIT_SIZE, VT_SPAN_SIZE / 2};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++)
        for (size_t size = 16; size <= 600000; size = size * 7 + 1) {
            char *a = vt_memalign(aligns[i], size);
            assert_true(vt_in_span(a));
            assert_int_equal((uintptr_t)a % aligns[i], 0);
            assert_true(vt_malloc_usable_size(a) >= size);
            memset(a, 0x5a, size);
            vt_free(a);
        }
    void *b = vt_memalign(VT_SPAN_SIZE, 300000);
    assert_false(vt_in_span(b));
    assert_int_equal((uintptr_t)b % VT_SPAN_SIZE, 0);
    vt_free(b);
}

static void free_null_and_free_keep_errno(void **state)
{
    (void)state;
    errno = 4321;
    vt_free(NULL);
    assert_int_equal(errno, 4321);
    void *small = vt_malloc(100), *large = vt_malloc(1 << 20);
    errno = 1234;
    vt_free(small);
    vt_free(large); /* munmap: must not leak its errno */
    assert_int_equal(errno, 1234);
}

static void freed_block_is_reused_lifo(void **state)
{
    (void)state;
    void *p = vt_malloc(48);
    vt_free(p);
    void *q = vt_malloc(48);
    assert_ptr_equal(p, q); /* the freed block is first in line: hot in cache */
    vt_free(q);
}

/* ---- calloc ----------------------------------------------------------------------------- */

static void calloc_zeroes_recycled_blocks(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 70000; n = n * 3 + 1)
        calloc_after_a_dirty_free(n);
    uint8_t *big = vt_calloc(3, 1 << 20);
    assert_non_null(big);
    for (size_t i = 0; i < (size_t)3 << 20; i += 4093)
        assert_int_equal(big[i], 0);
    vt_free(big);
}

static void calloc_overflow_fails_with_enomem(void **state)
{
    (void)state;
    errno = 0;
    assert_null(vt_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(vt_calloc((size_t)1 << 33, (size_t)1 << 33));
    assert_int_equal(errno, ENOMEM);
    void *p = vt_calloc(0, 100);
    assert_non_null(p); /* a zero-size request is still a unique block */
    vt_free(p);
}

/* ---- realloc ---------------------------------------------------------------------------- */

static void realloc_null_is_malloc_and_zero_frees(void **state)
{
    (void)state;
    void *p = vt_realloc(NULL, 64);
    assert_non_null(p);
    errno = 0;
    assert_null(vt_realloc(p, 0)); /* glibc: frees and returns NULL */
    void *q = vt_malloc(64);
    assert_ptr_equal(p, q); /* it really was freed: the block is reused */
    vt_free(q);
    void *z = vt_realloc(NULL, 0);
    assert_non_null(z);
    vt_free(z);
}

static void realloc_across_every_class_boundary_keeps_contents(void **state)
{
    (void)state;
    size_t prev = 8;
    uint8_t *p = vt_malloc(prev);
    pattern_fill(p, prev, 7);
    /* Grow through every class boundary and into large sizes, then shrink back. */
    for (unsigned k = 0; k <= VT_CLASS_COUNT; k++) {
        size_t target = k < VT_CLASS_COUNT ? vt_classes[k].bsize + 1 : (size_t)3 << 20;
        p = vt_realloc(p, target);
        assert_non_null(p);
        assert_int_equal(pattern_check(p, prev, 7), prev);
        pattern_fill(p, target, 7);
        prev = target;
    }
    for (int k = VT_CLASS_COUNT - 1; k >= 0; k--) {
        size_t target = vt_classes[k].bsize - 1;
        p = vt_realloc(p, target);
        assert_non_null(p);
        assert_int_equal(pattern_check(p, target, 7), target);
    }
    vt_free(p);
}

static void realloc_within_a_class_returns_the_same_pointer(void **state)
{
    (void)state;
    void *p = vt_malloc(100); /* class 112 */
    assert_ptr_equal(vt_realloc(p, 112), p);
    assert_ptr_equal(vt_realloc(p, 97), p);
    void *q = vt_realloc(p, 200);
    assert_ptr_not_equal(q, p);
    vt_free(q);
}

static void realloc_of_large_blocks_uses_mremap(void **state)
{
    (void)state;
    size_t n = (size_t)2 << 20;
    uint8_t *p = vt_malloc(n);
    pattern_fill(p, n, 11);
    uint8_t *q = vt_realloc(p, (size_t)64 << 20);
    assert_non_null(q);
    assert_int_equal(pattern_check(q, n, 11), n);
    assert_true(vt_malloc_usable_size(q) >= (size_t)64 << 20);
    uint8_t *r = vt_realloc(q, n / 2); /* shrink stays large */
    assert_int_equal(pattern_check(r, n / 2, 11), n / 2);
    assert_true(vt_malloc_usable_size(r) < n);
    uint8_t *s = vt_realloc(r, 1000); /* into a size class */
    assert_int_equal(pattern_check(s, 1000, 11), 1000);
    assert_int_equal(vt_malloc_usable_size(s), 1024);
    vt_free(s);
}

static void realloc_failure_leaves_the_block_intact(void **state)
{
    (void)state;
    uint8_t *p = vt_malloc(300);
    pattern_fill(p, 300, 3);
    errno = 0;
    assert_null(vt_realloc(p, SIZE_MAX - 100));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(pattern_check(p, 300, 3), 300);
    uint8_t *big = vt_malloc(1 << 20);
    errno = 0;
    assert_null(vt_realloc(big, (size_t)PTRDIFF_MAX + 1));
    assert_int_equal(errno, ENOMEM);
    big[(1 << 20) - 1] = 1;
    vt_free(big);
    vt_free(p);
}

static void reallocarray_checks_overflow(void **state)
{
    (void)state;
    uint8_t *p = vt_reallocarray(NULL, 10, 10);
    assert_non_null(p);
    pattern_fill(p, 100, 5);
    errno = 0;
    assert_null(vt_reallocarray(p, SIZE_MAX / 8, 9));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(pattern_check(p, 100, 5), 100);
    p = vt_reallocarray(p, 100, 10);
    assert_int_equal(pattern_check(p, 100, 5), 100);
    vt_free(p);
}

/* ---- Aligned allocation ----------------------------------------------------------------- */

static void posix_memalign_rejects_bad_alignments(void **state)
{
    (void)state;
    size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, 4095, SIZE_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *out = (void *)0x1234;
        errno = 77;
        assert_int_equal(vt_posix_memalign(&out, bad[i], 64), EINVAL);
        assert_ptr_equal(out, (void *)0x1234); /* untouched on error */
        assert_int_equal(errno, 77);
    }
    void *out = (void *)0x1234;
    assert_int_equal(vt_posix_memalign(&out, 64, SIZE_MAX - 10), ENOMEM);
    assert_ptr_equal(out, (void *)0x1234);
    assert_int_equal(vt_posix_memalign(&out, 8, 10), 0); /* sizeof(void *) is fine */
    assert_int_equal((uintptr_t)out % 16, 0);
    vt_free(out);
}

static void memalign_rounds_odd_alignments_up_like_glibc(void **state)
{
    (void)state;
    size_t odd[] = {24, 48, 100, 3000, 40000, 100000};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        size_t pow2 = 1;
        while (pow2 < odd[i])
            pow2 *= 2;
        void *a = vt_memalign(odd[i], 10);
        void *b = vt_aligned_alloc(odd[i], 10);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal((uintptr_t)a % pow2, 0);
        assert_int_equal((uintptr_t)b % pow2, 0);
        vt_free(a);
        vt_free(b);
    }
    errno = 0;
    assert_null(vt_memalign(SIZE_MAX / 2 + 2, 10));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(vt_aligned_alloc(64, SIZE_MAX));
    assert_int_equal(errno, ENOMEM);
    void *tiny = vt_memalign(0, 10); /* alignments up to 16 are malloc's */
    assert_non_null(tiny);
    vt_free(tiny);
}

static void valloc_and_pvalloc_are_page_aligned(void **state)
{
    (void)state;
    size_t ps = page_size();
    void *v = vt_valloc(100);
    assert_non_null(v);
    assert_int_equal((uintptr_t)v % ps, 0);
    vt_free(v);
    void *p = vt_pvalloc(ps + 1);
    assert_int_equal((uintptr_t)p % ps, 0);
    assert_true(vt_malloc_usable_size(p) >= 2 * ps);
    vt_free(p);
    void *z = vt_pvalloc(0);
    assert_non_null(z);
    assert_true(vt_malloc_usable_size(z) >= ps);
    vt_free(z);
    errno = 0;
    assert_null(vt_pvalloc(SIZE_MAX - 10));
    assert_int_equal(errno, ENOMEM);
}

/* ---- Sizes and the rest ----------------------------------------------------------------- */

static void usable_size_of_null_is_zero_and_stable(void **state)
{
    (void)state;
    assert_int_equal(vt_malloc_usable_size(NULL), 0);
    void *p = vt_malloc(33);
    size_t a = vt_malloc_usable_size(p), b = vt_malloc_usable_size(p);
    assert_int_equal(a, b);
    assert_int_equal(a, 48);
    vt_free(p);
}

static void sized_frees_free(void **state)
{
    (void)state;
    void *p = vt_malloc(77);
    vt_free_sized(p, 77);
    assert_ptr_equal(vt_malloc(77), p);
    vt_free_sized(p, 77);
    void *q = vt_aligned_alloc(256, 1000);
    vt_free_aligned_sized(q, 256, 1000);
    vt_free_sized(NULL, 0);
}

static void empty_pages_are_reused_by_other_classes(void **state)
{
    (void)state;
    /* 8 MiB of 32-byte blocks, freed, then 8 MiB of 1 KiB blocks: the second phase must run
     * on the pages the first one emptied, not on new spans (no zippy growth). */
    enum { SMALL = 32, BIG = 1024, BYTES = 8 << 20 };
    static void *ptrs[BYTES / SMALL];
    vt_stats_t before, middle, after;
    vt_stats_get(&before);
    for (size_t i = 0; i < BYTES / SMALL; i++)
        assert_non_null(ptrs[i] = vt_malloc(SMALL));
    vt_stats_get(&middle);
    for (size_t i = 0; i < BYTES / SMALL; i++)
        vt_free(ptrs[i]);
    for (size_t i = 0; i < BYTES / BIG; i++)
        assert_non_null(ptrs[i] = vt_malloc(BIG));
    vt_stats_get(&after);
    for (size_t i = 0; i < BYTES / BIG; i++)
        vt_free(ptrs[i]);
    assert_true(middle.span_maps_total > before.span_maps_total);
    assert_true(after.span_maps_total <= middle.span_maps_total + 1);
}

static void trim_returns_empty_spans(void **state)
{
    (void)state;
    enum { N = 4000 };
    static void *ptrs[N];
    for (size_t i = 0; i < N; i++)
        ptrs[i] = vt_malloc(4000); /* about 16 MiB */
    for (size_t i = 0; i < N; i++)
        vt_free(ptrs[i]);
    vt_stats_t st;
    vt_stats_get(&st);
    assert_true(st.spans_reserved > 0);
    assert_int_equal(vt_malloc_trim(0), 1);
    vt_stats_get(&st);
    assert_int_equal(st.spans_reserved, 0);
}

/* VTMALLOC_BACKING=malloc: spans and large blocks come from the system allocator (in this test
 * program, which links the core library, plain malloc is glibc's). */
static void malloc_backing_takes_spans_from_the_system_allocator(void **state)
{
    (void)state;
    uint32_t saved = vt_options.backing;
    vt_options.backing = VT_BACKING_MALLOC;
    enum { N = 3000 };
    static void *blocks[N];
    for (size_t i = 0; i < N; i++) /* ~12 MiB: new spans, now from glibc */
        assert_non_null(blocks[i] = vt_malloc(4000));
    vt_span_t *span = vt_span_base(blocks[N - 1]);
    assert_int_equal(span->backing, VT_BACKING_MALLOC);
    assert_true(malloc_usable_size(span->base) >= VT_SPAN_SIZE); /* glibc knows the span */
    void *large = vt_malloc(2 << 20); /* above VT_LARGE_SPAN_MAX: mapped on its own */
    assert_false(vt_in_span(large));
    assert_true(malloc_usable_size(large) >= (2 << 20)); /* so does the large block */
    pattern_fill(large, 2 << 20, 9);
    large = vt_realloc(large, 3 << 20); /* no mremap here: copied */
    assert_int_equal(pattern_check(large, 2 << 20, 9), 2 << 20);
    vt_free(large);
    for (size_t i = 0; i < N; i++)
        vt_free(blocks[i]);
    vt_malloc_trim(0); /* the spans go back to glibc */
    vt_options.backing = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malloc_zero_returns_unique_pointers),
        cmocka_unit_test(malloc_every_small_size_is_aligned_and_writable),
        cmocka_unit_test(malloc_impossible_sizes_fail_with_enomem),
        cmocka_unit_test(large_blocks_are_page_aligned_and_exact),
        cmocka_unit_test(free_null_and_free_keep_errno),
        cmocka_unit_test(freed_block_is_reused_lifo),
        cmocka_unit_test(calloc_zeroes_recycled_blocks),
        cmocka_unit_test(calloc_overflow_fails_with_enomem),
        cmocka_unit_test(realloc_null_is_malloc_and_zero_frees),
        cmocka_unit_test(realloc_across_every_class_boundary_keeps_contents),
        cmocka_unit_test(realloc_within_a_class_returns_the_same_pointer),
        cmocka_unit_test(realloc_of_large_blocks_uses_mremap),
        cmocka_unit_test(realloc_failure_leaves_the_block_intact),
        cmocka_unit_test(reallocarray_checks_overflow),
        cmocka_unit_test(posix_memalign_rejects_bad_alignments),
        cmocka_unit_test(memalign_rounds_odd_alignments_up_like_glibc),
        cmocka_unit_test(valloc_and_pvalloc_are_page_aligned),
        cmocka_unit_test(usable_size_of_null_is_zero_and_stable),
        cmocka_unit_test(sized_frees_free),
        cmocka_unit_test(empty_pages_are_reused_by_other_classes),
        cmocka_unit_test(trim_returns_empty_spans),
        cmocka_unit_test(malloc_backing_takes_spans_from_the_system_allocator),
        cmocka_unit_test(large_block_in_a_span_resizes_in_place),
        cmocka_unit_test(calloc_of_a_large_block_is_zero_after_reuse),
        cmocka_unit_test(large_block_in_a_span_is_freed_by_any_thread),
        cmocka_unit_test(aligned_large_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
