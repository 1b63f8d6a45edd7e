/*
 * test_init.c - the very first allocation of the process happens on many threads at once: the
 * one-time initialisation must run exactly once, and every thread must get a working cache.
 * A separate program, because no vt_* call may come before the race.
 */
#include "common.h"

#include <pthread.h>

#include "vtmalloc.h"

enum { THREADS = 16, BLOCKS = 2000 };
static pthread_barrier_t start;
static void *results[THREADS][BLOCKS];

static void *first_malloc(void *arg)
{
    void **mine = arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < BLOCKS; i++) {
        mine[i] = vt_malloc((size_t)(i % 300) + 1);
        CHECK(mine[i] != NULL, "malloc");
        memset(mine[i], (int)(i & 0xff), (size_t)(i % 300) + 1);
    }
    return NULL;
}

static void first_calls_race_on_many_threads(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, first_malloc, results[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    vt_stats_t st;
    vt_stats_get(&st);
    assert_true(st.thread_caches_total >= THREADS);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < BLOCKS; i++) {
            const uint8_t *b = results[t][i];
            for (int k = 0; k < i % 300 + 1; k++)
                if (b[k] != (uint8_t)(i & 0xff))
                    fail_msg("thread %d block %d overwritten", t, i);
            vt_free(results[t][i]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_calls_race_on_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
