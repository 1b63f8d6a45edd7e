/*
 * test_align.c - every power-of-two alignment from 1 B to 64 MiB, each with sizes smaller
 * than, equal to and larger than the alignment (where shipped allocators have had bugs), for
 * each aligned entry point: the block is aligned, its usable size covers the request, it is
 * writable to the end, and it frees cleanly. Blocks of one round stay live together, so
 * overlapping blocks would corrupt each other's patterns.
 */
#include "common.h"

#include "vtmalloc.h"

enum { ENTRY_POSIX, ENTRY_ALIGNED_ALLOC, ENTRY_MEMALIGN, ENTRIES };

static void *aligned(int entry, size_t alignment, size_t size)
{
    void *p = NULL;
    switch (entry) {
    case ENTRY_POSIX:
        if (alignment < sizeof(void *))
            alignment = sizeof(void *); /* posix_memalign's floor */
        assert_int_equal(vt_posix_memalign(&p, alignment, size), 0);
        return p;
    case ENTRY_ALIGNED_ALLOC:
        return vt_aligned_alloc(alignment, size);
    default:
        return vt_memalign(alignment, size);
    }
}

static void every_alignment_with_many_sizes(void **state)
{
    (void)state;
    for (int entry = 0; entry < ENTRIES; entry++) {
        for (size_t alignment = 1; alignment <= ((size_t)64 << 20); alignment *= 2) {
            size_t sizes[] = {
                0,    1,     alignment / 2, alignment - 1, alignment, alignment + 1, 3 * alignment,
                1000, 70000, 300000};
            enum { N = sizeof(sizes) / sizeof(sizes[0]) };
            void *blocks[N];
            for (size_t i = 0; i < N; i++) {
                size_t size = sizes[i];
                if (size > ((size_t)64 << 20))
                    size = (size_t)64 << 20; /* keep the test's memory modest */
                void *p = aligned(entry, alignment, size);
                if (p == NULL)
                    fail_msg("entry %d alignment %zu size %zu failed", entry, alignment, size);
                if ((uintptr_t)p % alignment != 0)
                    fail_msg("entry %d alignment %zu size %zu: %p", entry, alignment, size, p);
                size_t usable = vt_malloc_usable_size(p);
                assert_true(usable >= size);
                /* Fill everything that is ours for small blocks, the ends for big ones. */
                if (usable <= (1 << 20)) {
                    pattern_fill(p, usable, alignment * 31 + i);
                } else {
                    pattern_fill(p, 4096, alignment * 31 + i);
                    ((uint8_t *)p)[usable - 1] = 0x5a;
                }
                sizes[i] = usable;
                blocks[i] = p;
            }
            for (size_t i = 0; i < N; i++) {
                size_t n = sizes[i] <= (1 << 20) ? sizes[i] : 4096;
                if (pattern_check(blocks[i], n, alignment * 31 + i) != n)
                    fail_msg("entry %d alignment %zu block %zu corrupt", entry, alignment, i);
                vt_free(blocks[i]);
            }
        }
    }
}

static void many_live_aligned_blocks_do_not_overlap(void **state)
{
    (void)state;
    enum { N = 3000 };
    static void *blocks[N];
    static size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        size_t alignment = (size_t)16 << (i % 10); /* 16 B .. 8 KiB */
        sizes[i] = (i * 37) % 5000 + 1;
        blocks[i] = vt_aligned_alloc(alignment, sizes[i]);
        assert_non_null(blocks[i]);
        assert_int_equal((uintptr_t)blocks[i] % alignment, 0);
        pattern_fill(blocks[i], sizes[i], i);
    }
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(pattern_check(blocks[i], sizes[i], i), sizes[i]);
        vt_free(blocks[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_alignment_with_many_sizes),
        cmocka_unit_test(many_live_aligned_blocks_do_not_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
