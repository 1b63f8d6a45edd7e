/*
 * test_remap.c - a block that grows onto pages another thread's block moved away from is not
 * reported as a race.
 *
 * ThreadSanitizer remembers the last accesses to every address and forgets them at mmap and
 * munmap, but it does not intercept mremap. When one thread's block moves away, its old pages
 * keep that thread's accesses; when another thread's block later grows onto them, its first
 * writes look like a race, though the kernel ordered the two mremaps. test_stress met this
 * with its large blocks. vt_os_remap tells TSan of the kernel's order; this test, label
 * threads, fails under TSan without that.
 *
 * In a plain build it checks what the test relies on: mremap moves a block that cannot grow
 * in place, grows one in place when the pages above are free, and keeps the contents.
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "internal.h"

enum { HALF = 64 * 1024 };

/* Three HALFs: the grower's block, the leaver's, and a guard that keeps the leaver's block
 * from growing in place. */
static uint8_t *region;
/* Relaxed on purpose: TSan takes relaxed atomics as no order at all, so the only order
 * between the two threads' uses of the middle HALF is the one the kernel gives. */
static _Atomic int left;

/* Writes its block, then grows it: the guard above makes mremap move it, and the kernel
 * frees its old pages. */
static void *leaver(void *arg)
{
    (void)arg;
    memset(region + HALF, 0x5a, HALF);
    uint8_t *moved = vt_os_remap(region + HALF, HALF, 4 * HALF);
    CHECK(moved != NULL && moved != region + HALF, "mremap did not move the block: %p",
          (void *)moved);
    CHECK(moved[HALF - 1] == 0x5a, "the moved block lost its contents");
    atomic_store_explicit(&left, 1, memory_order_relaxed);
    return moved;
}

/* Once the pages above are free, grows its block over them and writes there. */
static void *grower(void *arg)
{
    (void)arg;
    memset(region, 0xa5, HALF);
    while (atomic_load_explicit(&left, memory_order_relaxed) == 0)
        sched_yield();
    uint8_t *q = vt_os_remap(region, HALF, 2 * HALF);
    CHECK(q == region, "mremap moved the mapping (%p to %p) though the pages above were free",
          (void *)region, (void *)q);
    for (size_t i = 0; i < HALF; i += 4096)
        CHECK(q[i] == 0xa5, "byte %zu of the grown mapping lost its contents", i);
    for (size_t i = HALF; i < 2 * HALF; i += 4096)
        CHECK(q[i] == 0, "byte %zu of the fresh pages is %#x, not 0", i, q[i]);
    memset(q + HALF, 0x3c, HALF); /* the first write to the pages the other thread had */
    return q;
}

static void pages_grown_into_are_new_to_the_thread_that_gets_them(void **state)
{
    (void)state;
    region = mmap(NULL, 3 * HALF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(region != MAP_FAILED);
    pthread_t a, b;
    assert_int_equal(pthread_create(&b, NULL, grower, NULL), 0);
    assert_int_equal(pthread_create(&a, NULL, leaver, NULL), 0);
    void *moved, *q;
    assert_int_equal(pthread_join(a, &moved), 0);
    assert_int_equal(pthread_join(b, &q), 0);
    assert_ptr_equal(q, region);
    assert_int_equal(region[2 * HALF - 1], 0x3c);
    vt_os_unmap(region, 3 * HALF);
    vt_os_unmap(moved, 4 * HALF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pages_grown_into_are_new_to_the_thread_that_gets_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
