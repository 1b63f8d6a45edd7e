/*
 * test_threads.c - blocks crossing threads: producer/consumer frees, threads that exit while
 * their blocks live on, thread churn, fork while other threads allocate. Every block carries a
 * pattern derived from its identity, checked before it is freed. Also built with
 * ThreadSanitizer (label "threads"), which checks the protocol's memory ordering.
 *
 * VT_TEST_SCALE (environment) multiplies the amount of work; sanitizer runs use the default 1.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "vtmalloc.h"

static unsigned scale(void)
{
    const char *s = getenv("VT_TEST_SCALE");
    unsigned v = s ? (unsigned)atoi(s) : 1;
    return v ? v : 1;
}

/* A size mix that crosses small, medium and (rarely) large blocks. */
static size_t random_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    switch (r % 16) {
    case 0:
        return (size_t)(r >> 8) % 300000 + 1;
    case 1:
    case 2:
        return (size_t)(r >> 8) % 16384 + 1;
    default:
        return (size_t)(r >> 8) % 256 + 1;
    }
}

/* Blocks carry their size and id in their first bytes, and the pattern after them. */
typedef struct tagged {
    size_t size;
    uint64_t id;
} tagged_t;

static void *tagged_alloc(size_t size, uint64_t id)
{
    if (size < sizeof(tagged_t))
        size = sizeof(tagged_t);
    tagged_t *t = vt_malloc(size);
    CHECK(t != NULL, "malloc(%zu) failed", size);
    t->size = size;
    t->id = id;
    pattern_fill(t + 1, size - sizeof(tagged_t), id);
    return t;
}

static void tagged_check_free(void *p)
{
    tagged_t *t = p;
    size_t n = t->size - sizeof(tagged_t);
    size_t bad = pattern_check(t + 1, n, t->id);
    CHECK(bad == n, "block %p (id %llu, size %zu) corrupt at byte %zu", p,
          (unsigned long long)t->id, t->size, bad);
    vt_free(p);
}

/* ---- Producer / consumer ---------------------------------------------------------------- */

enum { RING = 1024 };

typedef struct ring {
    _Atomic(void *) slot[RING];
    _Atomic size_t head, tail; /* single producer, single consumer */
    size_t count;
    uint64_t seed;
} ring_t;

static void *producer(void *arg)
{
    ring_t *r = arg;
    uint64_t rng = r->seed;
    for (size_t i = 0; i < r->count; i++) {
        void *p = tagged_alloc(random_size(&rng), r->seed * 1000000 + i);
        size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING)
            sched_yield();
        atomic_store_explicit(&r->slot[head % RING], p, memory_order_relaxed);
        atomic_store_explicit(&r->head, head + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    ring_t *r = arg;
    for (size_t i = 0; i < r->count; i++) {
        size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (atomic_load_explicit(&r->head, memory_order_acquire) == tail)
            sched_yield();
        void *p = atomic_load_explicit(&r->slot[tail % RING], memory_order_relaxed);
        atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        tagged_check_free(p);
        /* The consumer allocates too, so its own pages mix with the remote frees. */
        void *own = vt_malloc(64);
        vt_free(own);
    }
    return NULL;
}

static void producer_consumer_cross_thread_frees(void **state)
{
    (void)state;
    enum { PAIRS = 2 };
    static ring_t rings[PAIRS];
    pthread_t th[2 * PAIRS];
    vt_stats_t before, after;
    vt_stats_get(&before);
    for (int i = 0; i < PAIRS; i++) {
        memset(&rings[i], 0, sizeof(rings[i]));
        rings[i].count = 50000 * scale();
        rings[i].seed = (uint64_t)i + 1;
        pthread_create(&th[2 * i], NULL, producer, &rings[i]);
        pthread_create(&th[2 * i + 1], NULL, consumer, &rings[i]);
    }
    for (int i = 0; i < 2 * PAIRS; i++)
        pthread_join(th[i], NULL);
    vt_stats_get(&after);
    /* The frees really took the remote path (and were collected: nothing leaked above). */
    assert_true(after.remote_frees_total - before.remote_frees_total >= 50000);
}

/* ---- Threads that exit while their blocks live on ---------------------------------------- */

enum { KEEP = 2000 };

typedef struct survivor_arg {
    void **out; /* KEEP blocks handed to the main thread */
    uint64_t id;
} survivor_arg_t;

static void *allocate_and_exit(void *arg)
{
    survivor_arg_t *a = arg;
    uint64_t rng = a->id;
    void *scratch[256];
    for (int round = 0; round < 4; round++) { /* some churn of its own */
        for (int i = 0; i < 256; i++)
            scratch[i] = tagged_alloc(random_size(&rng), a->id * 10000 + (uint64_t)i);
        for (int i = 0; i < 256; i++)
            tagged_check_free(scratch[i]);
    }
    for (int i = 0; i < KEEP; i++)
        a->out[i] = tagged_alloc(random_size(&rng), a->id * 10000 + 5000 + (uint64_t)i);
    return NULL;
}

static void blocks_outlive_their_thread_and_are_freed_elsewhere(void **state)
{
    (void)state;
    enum { THREADS = 16 };
    static void *blocks[THREADS][KEEP];
    static survivor_arg_t args[THREADS];
    vt_stats_t before, after;
    vt_stats_get(&before);
    for (int i = 0; i < THREADS; i++) {
        pthread_t th;
        args[i].out = blocks[i];
        args[i].id = (uint64_t)i + 100;
        pthread_create(&th, NULL, allocate_and_exit, &args[i]);
        pthread_join(th, NULL); /* it is gone before its blocks are freed */
    }
    vt_stats_get(&after);
    assert_true(after.pages_abandoned_total > before.pages_abandoned_total);
    /* Its cache was handed back and reused: the number of live caches did not grow. */
    assert_int_equal(after.thread_caches_live, before.thread_caches_live);
    /* Free half here, and the other half from new threads that also allocate. */
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < KEEP; j += 2)
            tagged_check_free(blocks[i][j]);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 1; j < KEEP; j += 2)
            tagged_check_free(blocks[i][j]);
    }
    /* The freed memory is reusable: a new round does not need many new spans. */
    vt_stats_t again;
    for (int i = 0; i < THREADS; i++) {
        pthread_t th;
        pthread_create(&th, NULL, allocate_and_exit, &args[i]);
        pthread_join(th, NULL);
    }
    vt_stats_get(&again);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < KEEP; j++)
            tagged_check_free(blocks[i][j]);
    /* Spans beyond the reserve may have been returned meanwhile; the footprint did not grow
     * beyond what placing the same blocks in reused spans costs (runs of units for blocks of
     * up to 300 KB fit less tightly in spans that are not fresh: a few percent). */
    if (again.spans_mapped > after.spans_mapped + after.spans_mapped / 16 + 2)
        fail_msg("spans: %zu after the first round, %zu after the second",
                 (size_t)after.spans_mapped, (size_t)again.spans_mapped);
}

/* The statistics count a thread's frees into another thread's pages as puts of their class
 * when it frees them (in its own record), gathered for a push or not: a thread that frees
 * another's blocks and reads the statistics sees them no longer in use, before it exits, and
 * so does every thread after. */
enum { REMOTE_N = 1000, REMOTE_SIZE = 200 };

static void *free_remote_and_read(void *arg)
{
    void **blocks = arg;
    vt_free(vt_malloc(16)); /* a cache of its own: its frees gather in chains */
    for (int i = 0; i < REMOTE_N; i++)
        vt_free(blocks[i]);
    static vt_stats_t st;
    vt_stats_get(&st);
    return &st;
}

static void remote_frees_count_as_puts(void **state)
{
    (void)state;
    static void *blocks[REMOTE_N];
    unsigned c = vt_size_class(REMOTE_SIZE);
    vt_stats_t start, before;
    vt_stats_get(&start);
    for (int i = 0; i < REMOTE_N; i++)
        assert_non_null(blocks[i] = vt_malloc(REMOTE_SIZE));
    vt_stats_get(&before); /* publishes this thread's pages: their gets are counted */
    /* Blocks the heap profiler sampled (test_threads_profiled) are its own, in no class's
     * counts, before or after their free. */
    uint64_t counted = before.classes[c].gets - start.classes[c].gets;
    assert_true(counted >= REMOTE_N / 2 && counted <= REMOTE_N);
    pthread_t th;
    void *ret;
    assert_int_equal(pthread_create(&th, NULL, free_remote_and_read, blocks), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    const vt_stats_t *seen = ret;
    if (seen->classes[c].puts != before.classes[c].puts + counted ||
        seen->classes[c].in_use + counted != before.classes[c].in_use)
        fail_msg("class of %d bytes: puts %llu -> %llu, in use %llu -> %llu (%llu freed)",
                 REMOTE_SIZE, (unsigned long long)before.classes[c].puts,
                 (unsigned long long)seen->classes[c].puts,
                 (unsigned long long)before.classes[c].in_use,
                 (unsigned long long)seen->classes[c].in_use, (unsigned long long)counted);
    vt_stats_t after; /* and the same once the freeing thread is gone */
    vt_stats_get(&after);
    assert_int_equal(after.classes[c].puts, seen->classes[c].puts);
    assert_int_equal(after.classes[c].in_use, seen->classes[c].in_use);
}

/* Pages an exiting thread leaves to the global cache, whose blocks are then all freed by other
 * threads, go back to their spans (and spans to the OS) instead of waiting for a thread of
 * the same class. */
static void *allocate_20mib_and_exit(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 20000; i++)
        out[i] = tagged_alloc(1000, (uint64_t)i);
    return NULL;
}

static void pages_of_exited_threads_return_to_spans(void **state)
{
    (void)state;
    static void *blocks[20000];
    pthread_t th;
    pthread_create(&th, NULL, allocate_20mib_and_exit, blocks);
    pthread_join(th, NULL);
    vt_stats_t held, after;
    vt_malloc_trim(0); /* what earlier tests left empty goes first */
    vt_stats_get(&held);
    for (int i = 0; i < 20000; i++)
        tagged_check_free(blocks[i]); /* remote frees into pages owned by the global cache */
    vt_malloc_trim(0);
    vt_stats_get(&after);
    assert_true(held.spans_mapped >= 5);
    assert_true(after.spans_mapped + 4 <= held.spans_mapped);
}

/* ---- Thread churn ----------------------------------------------------------------------- */

typedef struct churn_shared {
    _Atomic(void *) handoff[64]; /* a block left by one worker, freed by a later one */
    _Atomic unsigned next_id;
} churn_shared_t;

static void *churn_worker(void *arg)
{
    churn_shared_t *s = arg;
    unsigned id = atomic_fetch_add(&s->next_id, 1);
    uint64_t rng = id * 7919u + 1;
    void *mine[64];
    for (int i = 0; i < 64; i++)
        mine[i] = tagged_alloc(random_size(&rng) % 2048 + 1, (uint64_t)id * 100 + (uint64_t)i);
    for (int i = 1; i < 64; i++)
        tagged_check_free(mine[i]);
    void *old = atomic_exchange(&s->handoff[id % 64], mine[0]);
    if (old)
        tagged_check_free(old);
    return NULL;
}

static void many_short_lived_threads(void **state)
{
    (void)state;
    static churn_shared_t shared;
    unsigned rounds = 250 * scale();
    for (unsigned r = 0; r < rounds; r++) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, churn_worker, &shared);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
    }
    for (int i = 0; i < 64; i++) {
        void *p = atomic_exchange(&shared.handoff[i], NULL);
        if (p)
            tagged_check_free(p);
    }
    vt_stats_t st;
    vt_stats_get(&st);
    /* A thousand threads came and went; caches were recycled, not piled up. */
    assert_true(st.thread_caches_live <= 2);
}

/* ---- Fork while other threads allocate --------------------------------------------------- */

static _Atomic int stop_busy;

static void *busy_allocator(void *arg)
{
    uint64_t rng = (uintptr_t)arg;
    void *keep[128] = {0};
    while (!atomic_load(&stop_busy)) {
        unsigned i = (unsigned)(rng_next(&rng) % 128);
        if (keep[i])
            tagged_check_free(keep[i]);
        keep[i] = tagged_alloc(random_size(&rng) % 5000 + 1, rng_next(&rng));
    }
    for (int i = 0; i < 128; i++)
        if (keep[i])
            tagged_check_free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        vt_free(vt_malloc((size_t)i * 13 + 1));
    return NULL;
}

/* One fork, and what its child must manage: allocate, free, start a thread and exit cleanly
 * (bounded by an alarm, so a deadlock shows as SIGALRM). Returns the child's wait status. */
static int fork_and_check_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        void *blocks[500];
        for (int i = 0; i < 500; i++)
            blocks[i] = tagged_alloc((size_t)i * 7 + 1, (uint64_t)i);
#ifndef __SANITIZE_THREAD__ /* TSan cannot start threads in the child of a threaded parent */
        pthread_t th;
        pthread_create(&th, NULL, child_thread, NULL);
        pthread_join(th, NULL);
#else
        child_thread(NULL);
#endif
        for (int i = 0; i < 500; i++) {
            tagged_t *t = blocks[i];
            if (pattern_check(t + 1, t->size - sizeof(*t), t->id) != t->size - sizeof(*t))
                _exit(3);
            vt_free(blocks[i]);
        }
        _exit(0);
    }
    CHECK(pid > 0, "fork failed");
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    return status;
}

#ifdef __SANITIZE_THREAD__
#define FORKS 60 /* fork under ThreadSanitizer is slow */
#else
#define FORKS 300
#endif

/* Forks from a thread other than the main one; returns how many children failed. */
static void *forking_thread(void *arg)
{
    uintptr_t failed = 0;
    for (int f = 0; f < (int)(uintptr_t)arg; f++) {
        int status = fork_and_check_child();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    return (void *)failed;
}

static void fork_while_threads_allocate(void **state)
{
    (void)state;
    pthread_t busy[2];
    atomic_store(&stop_busy, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&busy[i], NULL, busy_allocator, (void *)(uintptr_t)(i + 1));
    /* Two thirds of the forks from the main thread, the rest from another thread. */
    for (int f = 0; f < FORKS * 2 / 3; f++) {
        int status = fork_and_check_child();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d ended with status 0x%x", f, status);
    }
    pthread_t forker;
    void *failed;
    pthread_create(&forker, NULL, forking_thread, (void *)(uintptr_t)(FORKS / 3));
    pthread_join(forker, &failed);
    assert_int_equal((uintptr_t)failed, 0);
    atomic_store(&stop_busy, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(busy[i], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(producer_consumer_cross_thread_frees),
        cmocka_unit_test(blocks_outlive_their_thread_and_are_freed_elsewhere),
        cmocka_unit_test(pages_of_exited_threads_return_to_spans),
        cmocka_unit_test(remote_frees_count_as_puts),
        cmocka_unit_test(many_short_lived_threads),
        cmocka_unit_test(fork_while_threads_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
