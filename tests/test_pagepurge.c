/*
 * test_pagepurge.c - the free blocks of pages that exited threads left with a few live blocks
 * go back to the OS while the pages wait in the global cache (pagepurge.c), and come back when
 * a thread adopts such a page: live blocks keep their bytes, no block is lost or handed out
 * twice, a page whose last blocks are freed meanwhile leaves whole, and a free of a block whose
 * memory was purged is reported as the double free it is.
 */
#include "common.h"

#include <inttypes.h>
#include <pthread.h>

#include "internal.h"
#include "vtmalloc.h"

/* Pages of one class that a thread fills, and the spacing of the blocks it keeps: one every
 * KEEP_STRIDE bytes of a page, so that 4 of a page's 16 granules hold a live block. */
enum { PAGES = 32, KEEP_STRIDE = 16 << 10 };

/* What a thread left behind: the blocks it kept (live), and one it freed (for the misuse
 * cases), of blocks of `size` bytes. */
typedef struct leftover {
    size_t size;
    void *kept[PAGES * (VT_UNIT_SIZE / KEEP_STRIDE) * 2];
    size_t kept_count;
    void *freed;    /* a block the thread freed, 4 KiB past a kept one */
    uintptr_t drop; /* free_unwanted: the offset in their unit of the kept blocks to free */
} leftover_t;

static void *leave_pages(void *arg)
{
    leftover_t *lo = arg;
    size_t count = PAGES * (VT_UNIT_SIZE / lo->size);
    void **all = vt_malloc(count * sizeof(void *));
    assert_non_null(all);
    for (size_t i = 0; i < count; i++) {
        all[i] = vt_malloc(lo->size);
        assert_non_null(all[i]);
        pattern_fill(all[i], lo->size, (uintptr_t)all[i]);
    }
    for (size_t i = 0; i < count; i++) {
        uintptr_t offset = (uintptr_t)all[i] & (VT_UNIT_SIZE - 1);
        if (offset % KEEP_STRIDE == 0 && lo->kept_count < sizeof(lo->kept) / sizeof(void *)) {
            lo->kept[lo->kept_count++] = all[i];
            continue;
        }
        if (offset == 4096)
            lo->freed = all[i];
        vt_free(all[i]);
    }
    vt_free(all);
    return NULL;
}

/* A thread fills PAGES pages of the class, frees all but a few blocks of each, and exits: its
 * pages go to the global cache's partial lists. */
static void leave_pages_behind(leftover_t *lo, size_t size)
{
    memset(lo, 0, sizeof(*lo));
    lo->size = size;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, leave_pages, lo), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(lo->kept_count >= PAGES * (VT_UNIT_SIZE / KEEP_STRIDE));
    assert_non_null(lo->freed);
}

static void kept_blocks_are_intact(const leftover_t *lo)
{
    for (size_t i = 0; i < lo->kept_count; i++)
        if (lo->kept[i] != NULL &&
            pattern_check(lo->kept[i], lo->size, (uintptr_t)lo->kept[i]) != lo->size)
            fail_msg("live block %p lost its bytes", lo->kept[i]);
}

static bool in_leftover_unit(const leftover_t *lo, const void *p)
{
    uintptr_t unit = (uintptr_t)p & ~(uintptr_t)(VT_UNIT_SIZE - 1);
    for (size_t i = 0; i < lo->kept_count; i++)
        if (((uintptr_t)lo->kept[i] & ~(uintptr_t)(VT_UNIT_SIZE - 1)) == unit)
            return true;
    return false;
}

/* What the statistics table says is purged of the global cache's free blocks, in KiB. */
static long purged_in_table(void)
{
    char path[] = "/tmp/vt-pagepurge-stats-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(vt_stats_dump(path), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, "free in global cache");
        if (at != NULL && sscanf(strchr(at, '('), "(%ld KiB of it purged)", &kib) != 1)
            kib = -1;
    }
    fclose(f);
    unlink(path);
    return kib;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void free_blocks_go_back_and_return_intact(void **state)
{
    (void)state;
    leftover_t *lo = vt_calloc(1, sizeof(*lo));
    leave_pages_behind(lo, 16);
    size_t before = rss_bytes();
    size_t purged = vt_global_purge_partial(vt_os_now_ms(), 0);
    size_t after = rss_bytes();
    /* 12 of 16 granules of each page hold only free blocks (4 KiB granules with 4 KiB OS
     * pages; with larger OS pages fewer, larger granules, and at least half of the page). */
    size_t expected = (size_t)PAGES * VT_UNIT_SIZE / 2;
    if (purged < expected)
        fail_msg("purged %zu KiB of %d pages left with 4 live blocks each", purged >> 10, PAGES);
    /* The kernel sums its per-CPU RSS counters only roughly for statm (a few hundred KiB off
     * at times): half of what was purged is a drop no other cause makes here. */
    if (RSS_MEANINGFUL && (long)before - (long)after < (long)(purged / 2))
        fail_msg("RSS went from %zu to %zu KiB for %zu KiB purged", before >> 10, after >> 10,
                 purged >> 10);
    assert_int_equal(vt_global_purge_partial(vt_os_now_ms(), 0), 0); /* nothing new */
    kept_blocks_are_intact(lo);
    assert_int_equal(purged_in_table(), (long)(purged >> 10)); /* an operator sees it */

    /* A thread of the class adopts the pages: every block that is not live comes back, once. */
    size_t free_count = (size_t)PAGES * (VT_UNIT_SIZE / 16) - lo->kept_count;
    uintptr_t *got = vt_malloc((free_count + lo->kept_count) * sizeof(uintptr_t));
    for (size_t i = 0; i < free_count; i++) {
        void *p = vt_malloc(16);
        pattern_fill(p, 16, 7);
        got[i] = (uintptr_t)p;
    }
    /* All of them from the pages left behind: none was lost in its purged granule. */
    size_t in_leftovers = 0;
    for (size_t i = 0; i < free_count; i++)
        in_leftovers += in_leftover_unit(lo, (void *)got[i]);
    if (in_leftovers != free_count)
        fail_msg("%zu of the %zu free blocks of the pages left behind came back", in_leftovers,
                 free_count);
    for (size_t i = 0; i < lo->kept_count; i++)
        got[free_count + i] = (uintptr_t)lo->kept[i];
    qsort(got, free_count + lo->kept_count, sizeof(uintptr_t), by_address);
    for (size_t i = 1; i < free_count + lo->kept_count; i++)
        if (got[i] == got[i - 1])
            fail_msg("block %p handed out while live", (void *)got[i]);
    kept_blocks_are_intact(lo);
    assert_int_equal(purged_in_table(), 0); /* adopted: nothing purged is left */
    vt_stats_t st;
    vt_stats_get(&st);
    assert_true(st.purged_bytes_total >= purged);
    for (size_t i = 0; i < free_count + lo->kept_count; i++)
        vt_free((void *)got[i]);
    vt_free(got);
    vt_free(lo);
}

static void *free_it(void *p)
{
    vt_free(p);
    return NULL;
}

/* Frees the kept blocks that `keep` does not keep, from a thread that exits: its remote frees
 * reach their pages' lists when its cache goes back. */
static void *free_unwanted(void *arg)
{
    leftover_t *lo = arg;
    for (size_t i = 0; i < lo->kept_count; i++) {
        if (lo->kept[i] != NULL && ((uintptr_t)lo->kept[i] & (VT_UNIT_SIZE - 1)) == lo->drop) {
            vt_free(lo->kept[i]);
            lo->kept[i] = NULL;
        }
    }
    return NULL;
}

static void free_in_a_thread(leftover_t *lo, uintptr_t offset)
{
    lo->drop = offset;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_unwanted, lo), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* Blocks freed by other threads into a purged page: collected at the next look, and the page
 * purged further; a page whose last live blocks are freed goes back to its span whole. */
static void later_frees_purge_more_then_free_the_page(void **state)
{
    (void)state;
    leftover_t *lo = vt_calloc(1, sizeof(*lo));
    leave_pages_behind(lo, 32);
    assert_true(vt_global_purge_partial(vt_os_now_ms(), 0) >= (size_t)PAGES * VT_UNIT_SIZE / 2);
    /* Free the kept blocks at 16 KiB in every page: their granules may go now. */
    free_in_a_thread(lo, KEEP_STRIDE);
    vt_global_collect(vt_os_now_ms());
    size_t more = vt_global_purge_partial(vt_os_now_ms(), 0);
    if (more < (size_t)PAGES * vt_os_page_size())
        fail_msg("%zu KiB purged after a live block per page was freed", more >> 10);
    kept_blocks_are_intact(lo);
    vt_stats_t st;
    vt_stats_get(&st);
    uint64_t pages = st.classes[1].pages;
    for (uintptr_t offset = 0; offset < VT_UNIT_SIZE; offset += KEEP_STRIDE)
        free_in_a_thread(lo, offset);
    vt_global_collect(vt_os_now_ms()); /* the emptied pages leave the class */
    vt_stats_get(&st);
    if (st.classes[1].pages + PAGES > pages)
        fail_msg("class 32 B has %" PRIu64 " pages after its leftovers emptied, %" PRIu64 " before",
                 (uint64_t)st.classes[1].pages, pages);
    vt_free(lo);
}

/* ---- Misuse: a block whose memory was purged was free already -------------------------- */

static leftover_t *misuse_lo;

static void free_purged_block(void *arg)
{
    (void)arg;
    vt_free(misuse_lo->freed);
}

static void free_purged_block_from_another_thread(void *arg)
{
    (void)arg;
    pthread_t th;
    pthread_create(&th, NULL, free_it, misuse_lo->freed);
    pthread_join(th, NULL);
}

/* The free path's check saw no purge (its word is a hint): the block is on the page's remote
 * list when the owner collects it. */
static void purged_block_on_the_remote_list(void *arg)
{
    (void)arg;
    vt_block_t *b = misuse_lo->freed;
    vt_page_push_remote(vt_span_page(vt_span_base(b), b), b, b, 1);
    vt_global_collect(vt_os_now_ms());
}

static void expect_double_free(void (*fn)(void *), const void *p)
{
    child_result_t r = run_in_child(fn, NULL);
    char pointer[32];
    snprintf(pointer, sizeof(pointer), "%p", p);
    if (r.exited || r.status != SIGABRT || strstr(r.err, "double free") == NULL ||
        strstr(r.err, pointer) == NULL)
        fail_msg("expected an abort on a double free of %s; exited=%d status=%d: %s", pointer,
                 r.exited, r.status, r.err);
}

static void a_free_of_a_purged_block_is_a_double_free(void **state)
{
    (void)state;
    misuse_lo = vt_calloc(1, sizeof(*misuse_lo));
    leave_pages_behind(misuse_lo, 64);
    assert_true(vt_global_purge_partial(vt_os_now_ms(), 0) > 0);
    expect_double_free(free_purged_block, misuse_lo->freed);
    expect_double_free(free_purged_block_from_another_thread, misuse_lo->freed);
    expect_double_free(purged_block_on_the_remote_list, misuse_lo->freed);
    vt_free(misuse_lo);
}

int main(void)
{
    vt_init();
    vt_options.purge_thread = 0; /* the purges are this test's own calls */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(free_blocks_go_back_and_return_intact),
        cmocka_unit_test(later_frees_purge_more_then_free_the_page),
        cmocka_unit_test(a_free_of_a_purged_block_is_a_double_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
