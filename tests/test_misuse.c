/*
 * test_misuse.c - misuse is reported, not absorbed: each case runs in a child process, which
 * must die of SIGABRT after one line on stderr naming the function, the error and the pointer
 * (or, with VTMALLOC_ON_ERROR=warn, report the same line and carry on).
 */
#include "common.h"

#include <pthread.h>

#include "internal.h"
#include "vtmalloc.h"

static char static_buffer[64];
static char expected_pointer[32];

/* Asserts the child died of SIGABRT with a message holding every fragment and the pointer. */
static void expect_abort(child_result_t r, const char *fragment, const void *p)
{
    if (r.exited || r.status != SIGABRT)
        fail_msg("child did not abort (exited=%d status=%d), stderr: %s", r.exited, r.status,
                 r.err);
    if (strstr(r.err, fragment) == NULL)
        fail_msg("message lacks \"%s\": %s", fragment, r.err);
    snprintf(expected_pointer, sizeof(expected_pointer), "%p", p);
    if (strstr(r.err, expected_pointer) == NULL)
        fail_msg("message does not name pointer %s: %s", expected_pointer, r.err);
    assert_non_null(strstr(r.err, "vtmalloc: "));
}

/* ---- Cases, each run in a child -------------------------------------------------------- */

static void *victim;

static void double_free_at_once(void *arg)
{
    (void)arg;
    vt_free(victim);
    vt_free(victim);
}

static void double_free_after_other_activity(void *arg)
{
    (void)arg;
    vt_free(victim);
    void *others[1000];
    for (int i = 0; i < 1000; i++)
        others[i] = vt_malloc((size_t)(i % 200) + 1);
    for (int i = 0; i < 1000; i += 2)
        vt_free(others[i]);
    vt_free(victim);
}

static void *free_it(void *p)
{
    vt_free(p);
    return NULL;
}

static void double_free_from_another_thread(void *arg)
{
    (void)arg;
    vt_free(victim);
    pthread_t th;
    pthread_create(&th, NULL, free_it, victim); /* the remote path checks too */
    pthread_join(th, NULL);
}

static void free_inside_a_block(void *arg)
{
    vt_free((char *)victim + (uintptr_t)arg);
}

static void free_inside_a_block_from_another_thread(void *arg)
{
    pthread_t th;
    pthread_create(&th, NULL, free_it, (char *)victim + (uintptr_t)arg);
    pthread_join(th, NULL);
}

static void free_stack_address(void *arg)
{
    (void)arg;
    char local[32];
    victim = local;
    vt_free(local);
}

static void free_static_address(void *arg)
{
    (void)arg;
    vt_free(static_buffer);
}

static void free_foreign_pointer(void *arg)
{
    vt_free(arg); /* from the system allocator */
}

static void realloc_freed_block(void *arg)
{
    (void)arg;
    vt_free(victim);
    void *p = vt_realloc(victim, 500);
    (void)p;
}

static void double_free_large(void *arg)
{
    (void)arg;
    vt_free(victim);
    vt_free(victim);
}

/* The thread frees the block, whose run waits in its stash still naming the block's descriptor
 * (page.c: vt_page_release_large), then frees it, or a pointer `arg` bytes into it, again. */
static void free_large_twice_in_this_thread(void *arg)
{
    vt_free(victim);
    vt_free((char *)victim + (uintptr_t)arg);
}

/* The classic off-by-one: a string of 32 characters copied into malloc(32) writes its NUL
 * into the first byte of the next block, which is free: its link. The next malloc(32) pops
 * that block and must report the damaged link instead of handing out a block still in use. */
static void overflow_into_free_neighbour(void *arg)
{
    (void)arg;
    char *a, *b;
    do { /* two neighbours on the class's current page */
        a = vt_malloc(32);
        b = vt_malloc(32);
    } while (b != a + 32);
    victim = b;
    vt_free(b);
    /* strcpy(a, 32 characters), written so that the compiler cannot drop the overflow */
    memcpy(a, "0123456789abcdef0123456789abcdef", 32);
    *(volatile char *)((uintptr_t)a + 32) = '\0'; /* the NUL, one byte past the end */
    char *c = vt_malloc(32), *d = vt_malloc(32);
    fprintf(stderr, "not detected: %p %p\n", (void *)c, (void *)d);
    if (d != a && c != a) /* warn mode: neither is the live block */
        fprintf(stderr, "no live block handed out\n");
}

static void usable_size_of_foreign(void *arg)
{
    (void)vt_malloc_usable_size(arg);
}

/* ---- Tests ------------------------------------------------------------------------------ */

static void double_free_is_detected_at_once(void **state)
{
    (void)state;
    victim = vt_malloc(40);
    expect_abort(run_in_child(double_free_at_once, NULL), "free(): double free", victim);
}

static void double_free_is_detected_after_other_activity(void **state)
{
    (void)state;
    victim = vt_malloc(100);
    expect_abort(run_in_child(double_free_after_other_activity, NULL), "double free", victim);
}

static void double_free_is_detected_from_another_thread(void **state)
{
    (void)state;
    victim = vt_malloc(3000);
    expect_abort(run_in_child(double_free_from_another_thread, NULL), "double free", victim);
}

static void free_of_a_pointer_inside_a_block_is_detected(void **state)
{
    (void)state;
    victim = vt_malloc(256);
    expect_abort(run_in_child(free_inside_a_block, (void *)(uintptr_t)1), "inside a block",
                 (char *)victim + 1);
    expect_abort(run_in_child(free_inside_a_block, (void *)(uintptr_t)8), "inside a block",
                 (char *)victim + 8);
    /* A 16-byte aligned pointer inside a block: the owner's fast path checks it only in
     * debug builds (it costs a division); every other path checks it always, with a mask for
     * sizes that are powers of two (256) and a division for the others (320, 48). */
    expect_abort(run_in_child(free_inside_a_block_from_another_thread, (void *)(uintptr_t)32),
                 "inside a block", (char *)victim + 32);
    if (VT_DEBUG)
        expect_abort(run_in_child(free_inside_a_block, (void *)(uintptr_t)32), "inside a block",
                     (char *)victim + 32);
    void *power_of_two = victim;
    static const size_t others[] = {320, 48};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        victim = vt_malloc(others[i]);
        assert_int_equal(vt_malloc_usable_size(victim), others[i]); /* the class is this size */
        expect_abort(run_in_child(free_inside_a_block_from_another_thread, (void *)(uintptr_t)32),
                     "inside a block", (char *)victim + 32);
        vt_free(victim);
    }
    victim = power_of_two;
}

static void free_of_stack_static_and_foreign_memory_is_detected(void **state)
{
    (void)state;
    child_result_t r = run_in_child(free_stack_address, NULL);
    assert_false(r.exited);
    assert_int_equal(r.status, SIGABRT);
    assert_non_null(strstr(r.err, "invalid or double free"));
    expect_abort(run_in_child(free_static_address, NULL), "invalid or double free", static_buffer);
    void *sys = malloc(100);
    expect_abort(run_in_child(free_foreign_pointer, sys), "invalid or double free", sys);
    free(sys);
    void *sys_big = malloc(1 << 20);
    expect_abort(run_in_child(free_foreign_pointer, sys_big), "invalid or double free", sys_big);
    expect_abort(run_in_child(usable_size_of_foreign, sys_big), "malloc_usable_size()", sys_big);
    free(sys_big);
}

static void realloc_of_a_freed_block_is_detected(void **state)
{
    (void)state;
    victim = vt_malloc(200);
    expect_abort(run_in_child(realloc_freed_block, NULL), "realloc(): double free", victim);
}

static void double_free_of_a_large_block_is_detected(void **state)
{
    (void)state;
    victim = vt_malloc(1 << 20);
    expect_abort(run_in_child(double_free_large, NULL), "invalid or double free", victim);
}

/* Large blocks in spans (above 256 KiB, up to 960 KiB) have checks of their own: a pointer
 * into the block, and a second free racing or following the first. */
static void misuse_of_a_large_block_in_a_span_is_detected(void **state)
{
    (void)state;
    victim = vt_malloc(300000);
    assert_true(vt_in_span(victim));
    expect_abort(run_in_child(free_inside_a_block, (void *)(uintptr_t)VT_UNIT_SIZE),
                 "inside a block", (char *)victim + VT_UNIT_SIZE);
    expect_abort(run_in_child(free_inside_a_block_from_another_thread, (void *)(uintptr_t)4096),
                 "inside a block", (char *)victim + 4096);
    expect_abort(run_in_child(double_free_from_another_thread, NULL), "invalid or double free",
                 victim);
    expect_abort(run_in_child(free_large_twice_in_this_thread, NULL), "invalid or double free",
                 victim);
    expect_abort(run_in_child(free_large_twice_in_this_thread, (void *)(uintptr_t)VT_UNIT_SIZE),
                 "invalid or double free", (char *)victim + VT_UNIT_SIZE);
    vt_free(victim);
}

static void overflow_into_a_free_neighbour_is_reported(void **state)
{
    (void)state;
    /* The child's pointer: the block after the first of two neighbours, found the same way. */
    char *a = vt_malloc(32), *b = vt_malloc(32);
    while (b != a + 32) {
        a = vt_malloc(32);
        b = vt_malloc(32);
    }
    vt_free(b);
    vt_free(a); /* the child allocates a, then b again (LIFO) */
    expect_abort(run_in_child(overflow_into_free_neighbour, NULL), "malloc(): corrupted free list",
                 b);
    vt_report_set_on_error(VT_ON_ERROR_WARN);
    child_result_t r = run_in_child(overflow_into_free_neighbour, NULL);
    vt_report_set_on_error(VT_ON_ERROR_ABORT);
    assert_true(r.exited);
    assert_non_null(strstr(r.err, "corrupted free list"));
    assert_non_null(strstr(r.err, "no live block handed out"));
}

static void warn_mode_reports_and_continues(void **state)
{
    (void)state;
    vt_report_set_on_error(VT_ON_ERROR_WARN);
    victim = vt_malloc(40);
    child_result_t r = run_in_child(double_free_at_once, NULL);
    vt_report_set_on_error(VT_ON_ERROR_ABORT);
    assert_true(r.exited);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "double free"));
    assert_non_null(strstr(r.err, "ignored"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(double_free_is_detected_at_once),
        cmocka_unit_test(double_free_is_detected_after_other_activity),
        cmocka_unit_test(double_free_is_detected_from_another_thread),
        cmocka_unit_test(free_of_a_pointer_inside_a_block_is_detected),
        cmocka_unit_test(free_of_stack_static_and_foreign_memory_is_detected),
        cmocka_unit_test(realloc_of_a_freed_block_is_detected),
        cmocka_unit_test(double_free_of_a_large_block_is_detected),
        cmocka_unit_test(misuse_of_a_large_block_in_a_span_is_detected),
        cmocka_unit_test(overflow_into_a_free_neighbour_is_reported),
        cmocka_unit_test(warn_mode_reports_and_continues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
