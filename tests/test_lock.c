/*
 * test_lock.c - the allocator's mutex (lock.h, with its slow paths in os.c): it excludes, a
 * waiter that found it held sleeps and is woken by the unlock, trylock says whether it took it,
 * and VTMALLOC_LOCK_SPINS sets how long a waiter spins first. Label threads: ThreadSanitizer runs
 * it too, and sees the lock's order through its atomics.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "internal.h"

enum { THREADS = 4, ROUNDS = 100000 };

static vt_lock_t counted = VT_LOCK_INIT;
/* Written only with `counted` held: plain variables, so that a lock that let two threads in
 * would lose increments (and ThreadSanitizer would report the race). */
static uint64_t total;
static int inside;
static int overlaps;

static void *count_rounds(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        vt_mutex_lock(&counted);
        if (inside++ != 0)
            overlaps++;
        total++;
        if ((i & 1023) == 0)
            sched_yield(); /* sometimes give up the CPU while holding it: others must sleep */
        inside--;
        vt_mutex_unlock(&counted);
    }
    return NULL;
}

/* With `spins` checks before a waiter sleeps (VTMALLOC_LOCK_SPINS): 0 takes the futex path at
 * every contention, many mostly the spinning one. */
static void count_with_spins(uint32_t spins)
{
    uint32_t saved = vt_os_lock_spins;
    vt_os_lock_spins = spins;
    total = 0;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, count_rounds, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(overlaps, 0);
    assert_int_equal(total, (uint64_t)THREADS * ROUNDS);
    assert_int_equal(atomic_load(&counted.state), 0);
    vt_os_lock_spins = saved;
}

static void the_lock_lets_one_thread_in_at_a_time(void **state)
{
    (void)state;
    count_with_spins(0);
    count_with_spins(1000);
}

static vt_lock_t handed = VT_LOCK_INIT;
static int message; /* written with `handed` held */

static void *wait_for_the_message(void *arg)
{
    vt_mutex_lock(&handed);
    *(int *)arg = message;
    vt_mutex_unlock(&handed);
    return NULL;
}

static void a_waiter_sleeps_until_the_unlock_wakes_it(void **state)
{
    (void)state;
    uint32_t saved = vt_os_lock_spins;
    vt_os_lock_spins = 64; /* it spins first, then sleeps all the same */
    vt_mutex_lock(&handed);
    int seen = -1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_for_the_message, &seen), 0);
    /* The waiter spins, then marks the lock waited-for (2) before it sleeps: wait for the
     * mark, so that the unlock below has a sleeper to wake (a lost wake-up hangs the test). */
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
    int waited_ms = 0;
    while (atomic_load(&handed.state) != 2 && waited_ms < 10000) {
        nanosleep(&pause, NULL);
        waited_ms++;
    }
    assert_int_equal(atomic_load(&handed.state), 2);
    message = 42;
    vt_mutex_unlock(&handed);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(seen, 42);
    assert_int_equal(atomic_load(&handed.state), 0);
    vt_os_lock_spins = saved;
}

static void trylock_takes_only_a_free_lock(void **state)
{
    (void)state;
    vt_lock_t l = VT_LOCK_INIT;
    assert_true(vt_mutex_trylock(&l));
    assert_false(vt_mutex_trylock(&l));
    vt_mutex_unlock(&l);
    assert_true(vt_mutex_trylock(&l));
    vt_mutex_unlock(&l);
    assert_int_equal(atomic_load(&l.state), 0);
}

/* VTMALLOC_LOCK_SPINS reaches the lock's slow path (options.c copies it into os.c), and a value
 * out of range is refused, the one before it kept. */
static void the_option_sets_the_spins(void **state)
{
    (void)state;
    uint32_t saved = vt_os_lock_spins, saved_option = vt_options.lock_spins;
    assert_int_equal(setenv("VTMALLOC_LOCK_SPINS", "37", 1), 0);
    vt_options_load();
    assert_int_equal(vt_os_lock_spins, 37);
    assert_int_equal(setenv("VTMALLOC_LOCK_SPINS", "100001", 1), 0); /* above its range */
    vt_options_load();
    assert_int_equal(vt_os_lock_spins, 37);
    assert_int_equal(unsetenv("VTMALLOC_LOCK_SPINS"), 0);
    vt_options.lock_spins = saved_option;
    vt_os_lock_spins = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_lock_lets_one_thread_in_at_a_time),
        cmocka_unit_test(a_waiter_sleeps_until_the_unlock_wakes_it),
        cmocka_unit_test(trylock_takes_only_a_free_lock),
        cmocka_unit_test(the_option_sets_the_spins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
