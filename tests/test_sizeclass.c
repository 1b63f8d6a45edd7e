/*
 * test_sizeclass.c - every size up to the largest class maps to a class that holds it, with
 * bounded waste, checked against a reference written from the rule (not from the table).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"

/* The rule of sizeclass.c, recomputed the slow way: the k-th block size. Four classes per
 * power of two from 128 bytes on, but two (at 1.5 and 2 times the power) between 16 and 64 KiB. */
static size_t reference_bsize(unsigned k)
{
    if (k < 8)
        return 16u * (k + 1);
    unsigned c = 8;
    for (size_t base = 128;; base *= 2) {
        bool two = base >= (16u << 10) && base < (64u << 10);
        for (unsigned j = two ? 2 : 1; j <= 4; j += two ? 2 : 1, c++) {
            size_t size = base + j * (base / 4);
            if (c == k)
                return size;
        }
    }
}

/* The smallest class holding n bytes, by a linear scan: the simple reference. */
static unsigned reference_class(size_t n)
{
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++)
        if (reference_bsize(k) >= n)
            return k;
    return VT_CLASS_LARGE;
}

static void table_follows_the_rule(void **state)
{
    (void)state;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        const vt_class_info_t *c = &vt_classes[k];
        assert_int_equal(c->bsize, reference_bsize(k));
        assert_int_equal(c->bsize % VT_MIN_ALIGN, 0);
        /* two blocks' worth of units while that is a short run, else the block's own */
        unsigned units =
            c->bsize <= 8192 ? 1 : (unsigned)((2 * c->bsize + VT_UNIT_SIZE - 1) / VT_UNIT_SIZE);
        if (units > VT_SHORT_RUN_UNITS)
            units = (unsigned)((c->bsize + VT_UNIT_SIZE - 1) / VT_UNIT_SIZE);
        assert_int_equal(c->units, units);
        assert_int_equal(c->capacity, units * VT_UNIT_SIZE / c->bsize);
        /* a unit of 32 KiB or more holds four blocks of 8 KiB */
        assert_true(c->capacity >= (c->bsize <= 8192 ? 4u : c->bsize <= 128 << 10 ? 2u : 1u));
        assert_true(c->units <= VT_SHORT_RUN_UNITS);
        assert_true(c->units <= VT_PAGE_MAX_UNITS);
        if (k > 0)
            assert_true(c->bsize > vt_classes[k - 1].bsize);
    }
    assert_int_equal(vt_classes[VT_CLASS_COUNT - 1].bsize, VT_SMALL_MAX);
}

static void every_size_maps_to_the_smallest_fitting_class(void **state)
{
    (void)state;
    for (size_t n = 0; n <= VT_SMALL_MAX; n++) {
        unsigned k = vt_size_class(n);
        unsigned want = reference_class(n);
        if (k != want)
            fail_msg("size %zu: class %u, reference %u", n, k, want);
        size_t bsize = vt_classes[k].bsize;
        assert_true(bsize >= n);
        /* Waste bound: below 25 % of the block (16 B classes: below 16 bytes), below a
         * third where there are two classes per power of two. */
        if (n > (16u << 10) && n <= (64u << 10))
            assert_true((bsize - n) * 3 < bsize);
        else if (n > 128)
            assert_true((bsize - n) * 4 < bsize);
        else
            assert_true(bsize - n < 16 || n == 0);
    }
}

/* The two lookups meet at VT_SMALL_TABLE_MAX: the medium table's first size is in the class
 * after the small table's last, and both agree with the reference around the seam. */
static void small_and_medium_lookups_meet_at_the_seam(void **state)
{
    (void)state;
    assert_int_equal(vt_size_class_medium(VT_SMALL_TABLE_MAX + 1),
                     vt_size_class_small(VT_SMALL_TABLE_MAX) + 1);
    for (size_t n = VT_SMALL_TABLE_MAX - 64; n <= VT_SMALL_TABLE_MAX; n++)
        assert_int_equal(vt_size_class_small(n), reference_class(n));
    for (size_t n = VT_SMALL_TABLE_MAX + 1; n <= VT_SMALL_TABLE_MAX + 2048; n++)
        assert_int_equal(vt_size_class_medium(n), reference_class(n));
}

/* alloc.c's aligned allocation relies on this: for a power-of-two alignment up to a unit,
 * the class of a size rounded to that alignment has a block size that is a multiple of it. */
static void rounded_sizes_give_aligned_block_sizes(void **state)
{
    (void)state;
    for (size_t align = 32; align <= VT_UNIT_SIZE; align *= 2)
        for (size_t n = align; n <= VT_SMALL_MAX; n += align)
            if (vt_classes[vt_size_class(n)].bsize % align != 0)
                fail_msg("alignment %zu, size %zu: block size %u", align, n,
                         vt_classes[vt_size_class(n)].bsize);
}

/* tcache.c releases the empty current pages from VT_FIRST_LONG_CLASS on: the pages longer than
 * VT_SHORT_PAGE_MAX. */
static void first_long_class_is_where_pages_grow(void **state)
{
    (void)state;
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++)
        assert_int_equal(vt_classes[c].units * VT_UNIT_SIZE > VT_SHORT_PAGE_MAX,
                         c >= VT_FIRST_LONG_CLASS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_follows_the_rule),
        cmocka_unit_test(first_long_class_is_where_pages_grow),
        cmocka_unit_test(every_size_maps_to_the_smallest_fitting_class),
        cmocka_unit_test(small_and_medium_lookups_meet_at_the_seam),
        cmocka_unit_test(rounded_sizes_give_aligned_block_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
