/*
 * test_threadexit.c - threads ending in every way a server's threads end, with memory live:
 *
 *   - the program's thread-specific destructors running before and after vtmalloc's own (keys
 *     created before and after vtmalloc initialised), re-setting their values to run again in
 *     later rounds, and allocating and freeing in every round, including a thread whose very
 *     first allocation happens in a destructor;
 *   - threads that exit holding thousands of live blocks, freed afterwards by several other
 *     threads at once while yet others allocate (and adopt the exited threads' pages);
 *   - 10,000 short-lived threads (1,000 under ThreadSanitizer) of several kinds: allocating,
 *     only freeing another thread's block (their first call into the allocator is a free),
 *     never allocating, detached, allocating large and aligned blocks;
 *   - pthread_exit from deep inside nested calls, with a live block per level, cleanup
 *     handlers that free and allocate during the unwinding;
 *   - the main thread leaving with pthread_exit (in a child process) while other threads still
 *     allocate and free its blocks, and the process ending cleanly when the last one is done.
 *
 * After each: every block's pattern was intact when it was freed, and vtmalloc's statistics are
 * back where they were (no thread cache left live, no span or large block leaked); memory taken
 * by threads after their own exit destructor is served by the shared orphan cache, which keeps
 * its pages: allowed, but bounded (it must not grow with the number of threads).
 *
 * Built twice: with the vt_* API (label "threads", also under ThreadSanitizer), and with
 * -DTHREADEXIT_PLAIN_MALLOC using malloc/free, run with libvtmalloc.so preloaded (label
 * "preload"), where glibc's own allocations for threads (TLS, keys' storage) come through
 * vtmalloc as well. VT_TEST_SCALE multiplies the thread counts.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "vtmalloc.h"

#ifdef THREADEXIT_PLAIN_MALLOC
#include <dlfcn.h>
#include <malloc.h>
#define T_MALLOC(n)     malloc(n)
#define T_CALLOC(a, b)  calloc(a, b)
#define T_REALLOC(p, n) realloc(p, n)
#define T_FREE(p)       free(p)
#define T_ALIGNED(a, n) aligned_alloc(a, n)
#else
#define T_MALLOC(n)     vt_malloc(n)
#define T_CALLOC(a, b)  vt_calloc(a, b)
#define T_REALLOC(p, n) vt_realloc(p, n)
#define T_FREE(p)       vt_free(p)
#define T_ALIGNED(a, n) vt_aligned_alloc(a, n)
#endif

#ifdef __SANITIZE_THREAD__
#define SHORT_LIVED_THREADS 1000u
#else
#define SHORT_LIVED_THREADS 10000u
#endif

static unsigned scale(void)
{
    const char *s = getenv("VT_TEST_SCALE");
    unsigned v = s ? (unsigned)atoi(s) : 1;
    return v ? v : 1;
}

/* ---- vtmalloc's statistics, linked or preloaded --------------------------------------------- */

static bool stats_get(vt_stats_t *st)
{
#ifdef THREADEXIT_PLAIN_MALLOC
    static void (*get)(vt_stats_t *);
    static int (*trim)(size_t);
    if (get == NULL) {
        get = (void (*)(vt_stats_t *))dlsym(RTLD_DEFAULT, "vt_stats_get");
        trim = (int (*)(size_t))dlsym(RTLD_DEFAULT, "vt_malloc_trim");
        if (get == NULL || trim == NULL) {
            fprintf(stderr, "libvtmalloc is not preloaded\n");
            abort();
        }
    }
    trim(0);
    get(st);
#else
    vt_malloc_trim(0);
    vt_stats_get(st);
#endif
    return true;
}

typedef struct figures {
    uint64_t spans, large_blocks, large_bytes, caches_live, caches_total, in_use;
} figures_t;

static figures_t figures(void)
{
    static vt_stats_t st; /* large: per-class figures */
    stats_get(&st);
    return (figures_t){st.spans_mapped,       st.large_blocks,        st.large_bytes,
                       st.thread_caches_live, st.thread_caches_total, st.bytes_in_use};
}

/* A joined thread's destructors have run when pthread_join returns; a detached thread's may
 * still be running after it signalled it was done: wait a little for those. */
static figures_t figures_settled(uint64_t caches_expected)
{
    figures_t f = figures();
    for (int i = 0; i < 5000 && f.caches_live > caches_expected; i++) {
        usleep(1000);
        f = figures();
    }
    return f;
}

/* ---- Blocks ------------------------------------------------------------------------------- */

typedef struct block {
    uint8_t *p;
    size_t size;
    uint64_t id;
} block_t;

static _Atomic uint64_t next_id = 1;

static size_t mixed_size(uint64_t i)
{
    static const size_t sizes[] = {1,    16,   40,    100,   250,    700,    1500,
                                   4000, 9000, 30000, 70000, 200000, 300000, 1 << 20};
    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))] + (size_t)(i % 7);
}

static block_t block_new(size_t size)
{
    block_t b = {NULL, size, atomic_fetch_add(&next_id, 1)};
    b.p = T_MALLOC(size);
    CHECK(b.p != NULL, "malloc(%zu)", size);
    pattern_fill(b.p, size < 8192 ? size : 8192, b.id);
    if (size > 8192)
        b.p[size - 1] = (uint8_t)b.id;
    return b;
}

static void block_check(const block_t *b, const char *when)
{
    size_t n = b->size < 8192 ? b->size : 8192;
    size_t bad = pattern_check(b->p, n, b->id);
    CHECK(bad == n, "%s: block %p (%zu bytes, id %llu) corrupt at byte %zu", when, (void *)b->p,
          b->size, (unsigned long long)b->id, bad);
    if (b->size > 8192)
        CHECK(b->p[b->size - 1] == (uint8_t)b->id, "%s: block %p tail corrupt", when, (void *)b->p);
}

static void block_free(block_t *b, const char *when)
{
    block_check(b, when);
    T_FREE(b->p);
    b->p = NULL;
}

/* The allocator's statistics table on stderr, for a failure report: where the memory is. */
static void print_statistics(void)
{
#ifdef THREADEXIT_PLAIN_MALLOC
    void (*print)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "vt_stats_print");
    if (print != NULL)
        print();
#else
    vt_stats_print();
#endif
}

/* Blocks the test freed are counted free again (what is still in use grew by less than
 * 64 KiB: glibc's and cmocka's own bookkeeping), and the spans, large blocks and caches are
 * back (spans_slack: spans kept by such bookkeeping blocks that landed in spans the test
 * had mapped; under a loaded machine two were seen, so every test allows two, and the bytes
 * in use are the strict check). */
static void check_no_leak(figures_t before, figures_t after, uint64_t spans_slack, const char *what)
{
    bool spans_ok = after.spans <= before.spans + spans_slack;
    bool large_ok =
        after.large_blocks == before.large_blocks && after.large_bytes == before.large_bytes;
    if (after.in_use > before.in_use + (64 << 10) || !spans_ok || !large_ok ||
        after.caches_live != before.caches_live)
        print_statistics();
    if (after.in_use > before.in_use + (64 << 10))
        fail_msg("%s: leak: %llu bytes in use before, %llu after", what,
                 (unsigned long long)before.in_use, (unsigned long long)after.in_use);

    if (!spans_ok || !large_ok || after.caches_live != before.caches_live)
        fail_msg("%s: leak: spans %llu -> %llu (slack %llu), large blocks %llu -> %llu, large "
                 "bytes %llu -> %llu, live thread caches %llu -> %llu",
                 what, (unsigned long long)before.spans, (unsigned long long)after.spans,
                 (unsigned long long)spans_slack, (unsigned long long)before.large_blocks,
                 (unsigned long long)after.large_blocks, (unsigned long long)before.large_bytes,
                 (unsigned long long)after.large_bytes, (unsigned long long)before.caches_live,
                 (unsigned long long)after.caches_live);
}

/* ---- Thread-specific destructors ----------------------------------------------------------- */

/* Created in main: key_before before the first allocation of the process (when vtmalloc is
 * linked; preloaded, the loader may have allocated already), key_after after it, so that
 * their destructors run before and after vtmalloc's own (glibc runs them in key order). */
static pthread_key_t key_before, key_after;
static bool vtmalloc_was_initialised_before_key_before;

/* glibc runs key destructors for PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds. ThreadSanitizer
 * tears its own state of the thread down in the last round (from a key destructor of its
 * own, which runs before ours), so under it the program's destructors stop a round earlier. */
#ifdef __SANITIZE_THREAD__
enum { DTOR_BLOCKS = 48, DTOR_ROUNDS = 3 };
#else
enum { DTOR_BLOCKS = 48, DTOR_ROUNDS = 4 };
#endif

typedef struct dtor_state {
    pthread_key_t key;
    int rounds_left;       /* re-set the value while positive */
    int first_alloc_round; /* 0: allocate in the thread body too; k: only from round k on */
    block_t blocks[DTOR_BLOCKS];
    /* results, read by the test after join */
    _Atomic int rounds_run;
    _Atomic int allocs_in_dtor;
} dtor_state_t;

static void dtor_round(void *v)
{
    dtor_state_t *s = v;
    int round = atomic_fetch_add(&s->rounds_run, 1) + 1;
    bool allocate = s->first_alloc_round == 0 || round >= s->first_alloc_round;
    /* free half of what is live, checking it */
    for (int i = round % 2; i < DTOR_BLOCKS; i += 2)
        if (s->blocks[i].p != NULL)
            block_free(&s->blocks[i], "destructor free");
    if (allocate) {
        /* allocate new ones of every kind, resize some */
        for (int i = round % 2; i < DTOR_BLOCKS; i += 2) {
            s->blocks[i] = block_new(mixed_size((uint64_t)i + (uint64_t)round * 3));
            atomic_fetch_add(&s->allocs_in_dtor, 1);
        }
        uint8_t *z = T_CALLOC(100, 10);
        CHECK(z != NULL, "calloc in a destructor");
        for (int i = 0; i < 1000; i++)
            CHECK(z[i] == 0, "calloc in a destructor: byte %d", i);
        T_FREE(z);
        block_t *r = &s->blocks[round % 2];
        if (r->p != NULL) {
            block_check(r, "before realloc in a destructor");
            uint8_t *q = T_REALLOC(r->p, r->size * 3 + 100);
            CHECK(q != NULL, "realloc in a destructor");
            r->p = q;
            r->size = r->size * 3 + 100;
            pattern_fill(q, r->size < 8192 ? r->size : 8192, r->id);
            if (r->size > 8192)
                q[r->size - 1] = (uint8_t)r->id;
        }
    }
    if (s->rounds_left-- > 0) {
        CHECK(pthread_setspecific(s->key, s) == 0, "pthread_setspecific in a destructor");
        return;
    }
    for (int i = 0; i < DTOR_BLOCKS; i++) /* the last round: everything goes */
        if (s->blocks[i].p != NULL)
            block_free(&s->blocks[i], "last destructor round");
}

typedef struct dtor_thread {
    dtor_state_t before, after;
    int mode;
    _Atomic pid_t tid; /* the thread's kernel id, for wait_thread_gone */
} dtor_thread_t;

enum { MODE_BODY_ALLOCATES, MODE_FIRST_ALLOC_IN_DTOR, MODE_FIRST_ALLOC_IN_LAST_ROUND };

static void *dtor_thread_main(void *arg)
{
    dtor_thread_t *t = arg;
    atomic_store(&t->tid, gettid());
    dtor_state_t *states[2] = {&t->before, &t->after};
    pthread_key_t keys[2] = {key_before, key_after};
    for (int k = 0; k < 2; k++) {
        dtor_state_t *s = states[k];
        memset(s, 0, sizeof(*s));
        s->key = keys[k];
        s->rounds_left = DTOR_ROUNDS - 1;
        /* Which round a key's destructor allocates from (0: the body allocates too; 99:
         * never). The first allocation of a thread decides when vtmalloc's key gets its value,
         * and so in which round (if any) vtmalloc's destructor runs. */
        static const int from[3][2] = {
            [MODE_BODY_ALLOCATES] = {0, 0},
            [MODE_FIRST_ALLOC_IN_DTOR] = {2, 1}, /* key_after's round 1 starts the cache */
            [MODE_FIRST_ALLOC_IN_LAST_ROUND] = {99, DTOR_ROUNDS},
        };
        s->first_alloc_round = from[t->mode][k];
        if (s->first_alloc_round == 0)
            for (int i = 0; i < DTOR_BLOCKS; i++)
                s->blocks[i] = block_new(mixed_size((uint64_t)i));
        CHECK(pthread_setspecific(s->key, s) == 0, "pthread_setspecific");
    }
    return NULL;
}

/* Runs `threads` threads of a mode, `parallel` at a time; checks every round ran, and waits
 * until the kernel has dropped each thread, so that a thread whose cache only a reap hands back
 * (MODE_FIRST_ALLOC_IN_LAST_ROUND) is one malloc_trim can reap when this returns. */
static void run_dtor_threads(int mode, unsigned threads, unsigned parallel)
{
    dtor_thread_t *t = calloc(parallel, sizeof(*t));
    pthread_t *th = calloc(parallel, sizeof(*th));
    assert_non_null(t);
    for (unsigned done = 0; done < threads; done += parallel) {
        for (unsigned i = 0; i < parallel; i++) {
            t[i].mode = mode;
            assert_int_equal(pthread_create(&th[i], NULL, dtor_thread_main, &t[i]), 0);
        }
        for (unsigned i = 0; i < parallel; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(atomic_load(&t[i].before.rounds_run), DTOR_ROUNDS);
            assert_int_equal(atomic_load(&t[i].after.rounds_run), DTOR_ROUNDS);
            assert_true(atomic_load(&t[i].after.allocs_in_dtor) >= DTOR_BLOCKS / 2);
            for (int k = 0; k < DTOR_BLOCKS; k++) {
                assert_null(t[i].before.blocks[k].p); /* all freed in the last round */
                assert_null(t[i].after.blocks[k].p);
            }
            assert_true(wait_thread_gone(atomic_load(&t[i].tid)));
        }
    }
    free(t);
    free(th);
}

static void destructors_before_and_after_ours_allocate_and_free(void **state)
{
    (void)state;
    if (vtmalloc_was_initialised_before_key_before)
        print_message("note: vtmalloc was initialised before the first key was created\n");
    unsigned threads = 64 * scale();
    run_dtor_threads(MODE_BODY_ALLOCATES, 8, 4); /* warm up: thread stacks, the orphan's pages */
    figures_t base = figures();
    run_dtor_threads(MODE_BODY_ALLOCATES, threads, 4);
    figures_t after = figures();
    /* Allocations after our destructor come from the orphan cache, which keeps its pages:
     * bounded, whatever the number of threads. */
    check_no_leak(base, after, 2, "destructors, the thread body allocates");
    print_message("%u threads, 2 keys, %d destructor rounds each\n", threads, DTOR_ROUNDS);
}

static void first_allocation_of_a_thread_in_a_destructor(void **state)
{
    (void)state;
    figures_t base = figures();
    run_dtor_threads(MODE_FIRST_ALLOC_IN_DTOR, 32 * scale(), 4);
    figures_t after = figures();
    check_no_leak(base, after, 2, "first allocation in a destructor");
}

/* A thread whose first allocation happens in the last destructor round glibc runs
 * (PTHREAD_DESTRUCTOR_ITERATIONS): vtmalloc starts a cache for it and arms its exit key, but
 * glibc runs no further round, so its destructor never hands the cache back. This test found
 * that leak; vtmalloc now reclaims such caches once their thread is gone (vt_reclaim_reap, run
 * by malloc_trim, which figures() calls, and by housekeeping). */
static void first_allocation_in_the_last_destructor_round(void **state)
{
    (void)state;
#ifdef __SANITIZE_THREAD__
    skip(); /* ThreadSanitizer cannot run code in the last round (see DTOR_ROUNDS) */
#endif
    figures_t base = figures();
    run_dtor_threads(MODE_FIRST_ALLOC_IN_LAST_ROUND, 16, 4);
    figures_t after = figures();
    check_no_leak(base, after, 2, "first allocation in the last destructor round");
}

/* ---- Threads that exit holding thousands of blocks ----------------------------------------- */

enum { HOLDERS = 8, HELD = 3000, FREERS = 4, CHURNERS = 3 };
static block_t held[HOLDERS][HELD];

static void *holder_main(void *arg)
{
    block_t *mine = arg;
    uint64_t salt = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < HELD; i++) {
        if (i % 500 == 250) { /* an aligned block now and then */
            block_t b = {T_ALIGNED((size_t)4096 << (i % 3), 5000), 5000,
                         atomic_fetch_add(&next_id, 1)};
            CHECK(b.p != NULL, "aligned_alloc");
            pattern_fill(b.p, 5000, b.id);
            mine[i] = b;
        } else {
            mine[i] = block_new(mixed_size((uint64_t)i * 13 + salt % 11) % 20000 + 1);
        }
    }
    return NULL; /* exits with all of them live */
}

typedef struct freer {
    unsigned index;
} freer_t;

static void *freer_main(void *arg)
{
    freer_t *f = arg;
    /* each freer takes every FREERS-th block of every holder, half of them back to front */
    for (int h = 0; h < HOLDERS; h++) {
        if (f->index % 2 == 0) {
            for (int k = (int)f->index; k < HELD; k += FREERS)
                block_free(&held[h][k], "freed by another thread");
        } else {
            int last = (HELD - 1) - ((HELD - 1 - (int)f->index) % FREERS);
            for (int k = last; k >= 0; k -= FREERS)
                block_free(&held[h][k], "freed by another thread");
        }
    }
    return NULL;
}

static _Atomic int churn_stop;

static void *churner_main(void *arg)
{
    uint64_t n = (uintptr_t)arg;
    block_t local[64] = {{0}};
    while (!atomic_load(&churn_stop)) {
        n++;
        block_t *b = &local[n % 64];
        if (b->p != NULL)
            block_free(b, "churn");
        *b = block_new(mixed_size(n) % 70000 + 1);
    }
    for (int i = 0; i < 64; i++)
        if (local[i].p != NULL)
            block_free(&local[i], "churn end");
    return NULL;
}

static void exited_threads_blocks_freed_by_many(void **state)
{
    (void)state;
    figures_t base = figures();
    pthread_t th[HOLDERS];
    for (int h = 0; h < HOLDERS; h++) /* they exit together, each with HELD blocks live */
        assert_int_equal(pthread_create(&th[h], NULL, holder_main, held[h]), 0);
    for (int h = 0; h < HOLDERS; h++)
        assert_int_equal(pthread_join(th[h], NULL), 0);
    figures_t mid = figures();
    assert_int_equal(mid.caches_live, base.caches_live); /* their caches were handed back */
    /* Others free the blocks, all at once, while others allocate (adopting those pages). */
    pthread_t fr[FREERS], ch[CHURNERS];
    freer_t fa[FREERS];
    atomic_store(&churn_stop, 0);
    for (int c = 0; c < CHURNERS; c++)
        assert_int_equal(pthread_create(&ch[c], NULL, churner_main, (void *)(uintptr_t)(c * 1000)),
                         0);
    for (int f = 0; f < FREERS; f++) {
        fa[f].index = (unsigned)f;
        assert_int_equal(pthread_create(&fr[f], NULL, freer_main, &fa[f]), 0);
    }
    for (int f = 0; f < FREERS; f++)
        assert_int_equal(pthread_join(fr[f], NULL), 0);
    atomic_store(&churn_stop, 1);
    for (int c = 0; c < CHURNERS; c++)
        assert_int_equal(pthread_join(ch[c], NULL), 0);
    for (int h = 0; h < HOLDERS; h++)
        for (int i = 0; i < HELD; i++)
            assert_null(held[h][i].p);
    figures_t after = figures();
    check_no_leak(base, after, 2, "blocks of exited threads freed by others");
}

/* ---- Many short-lived threads ---------------------------------------------------------------- */

enum { HANDOFF = 256 };
static _Atomic(void *) handoff[HANDOFF];
static _Atomic unsigned detached_done;

typedef struct shorty {
    unsigned id;
    int kind;
} shorty_t;

static void *shorty_main(void *arg)
{
    shorty_t *s = arg;
    unsigned id = s->id;
    switch (s->kind) {
    case 0: { /* allocate, free most, leave one for a later thread */
        void *p[16];
        for (int i = 0; i < 16; i++) {
            p[i] = T_MALLOC(mixed_size(id + (unsigned)i) % 5000 + 8);
            CHECK(p[i] != NULL, "malloc");
            memcpy(p[i], &id, sizeof(id));
        }
        for (int i = 1; i < 16; i++)
            T_FREE(p[i]);
        void *old = atomic_exchange(&handoff[id % HANDOFF], p[0]);
        if (old != NULL)
            T_FREE(old);
        break;
    }
    case 1: { /* its first (and only) call into the allocator is a free of another's block */
        void *old = atomic_exchange(&handoff[(id * 7) % HANDOFF], NULL);
        if (old != NULL)
            T_FREE(old);
        break;
    }
    case 2: /* never allocates */
        break;
    case 3: { /* large and aligned, realloc'ed, calloc'ed */
        uint8_t *p = T_MALLOC(300000);
        CHECK(p != NULL, "large malloc");
        p[299999] = 1;
        p = T_REALLOC(p, 700000);
        CHECK(p != NULL && p[299999] == 1, "large realloc");
        T_FREE(p);
        void *a = T_ALIGNED(65536, 100);
        CHECK(a != NULL && (uintptr_t)a % 65536 == 0, "aligned");
        T_FREE(a);
        uint8_t *z = T_CALLOC(1, 3000);
        CHECK(z != NULL && z[2999] == 0, "calloc");
        T_FREE(z);
        break;
    }
    }
    free(s); /* from the test's allocator in the preloaded build, glibc's otherwise */
    return NULL;
}

static void *detached_main(void *arg)
{
    shorty_main(arg);
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

static void ten_thousand_short_lived_threads(void **state)
{
    (void)state;
    unsigned total = SHORT_LIVED_THREADS * scale();
    enum { PAR = 16 };
    figures_t base = figures();
    unsigned detached = 0;
    atomic_store(&detached_done, 0);
    for (unsigned done = 0; done < total; done += PAR) {
        pthread_t th[PAR];
        bool joinable[PAR];
        for (unsigned i = 0; i < PAR; i++) {
            shorty_t *s = malloc(sizeof(*s));
            assert_non_null(s);
            s->id = done + i;
            s->kind = (int)(s->id % 4);
            joinable[i] = s->id % 10 != 9;
            if (joinable[i]) {
                assert_int_equal(pthread_create(&th[i], NULL, shorty_main, s), 0);
            } else {
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                assert_int_equal(pthread_create(&th[i], &attr, detached_main, s), 0);
                pthread_attr_destroy(&attr);
                detached++;
            }
        }
        for (unsigned i = 0; i < PAR; i++)
            if (joinable[i])
                assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    while (atomic_load(&detached_done) < detached)
        usleep(1000);
    for (int i = 0; i < HANDOFF; i++) {
        void *p = atomic_exchange(&handoff[i], NULL);
        if (p != NULL)
            T_FREE(p);
    }
    figures_t after = figures_settled(base.caches_live); /* detached ones may still be ending */
    check_no_leak(base, after, 2, "short-lived threads");
    /* caches were started (the threads that allocate) and recycled, never piled up */
    assert_true(after.caches_total - base.caches_total >= total / 4);
    print_message("%u threads (%u detached); %llu thread caches started\n", total, detached,
                  (unsigned long long)(after.caches_total - base.caches_total));
}

/* ---- pthread_exit from deep inside ---------------------------------------------------------- */

enum { DEEP_THREADS = 6, DEPTH = 150 };
static block_t deep_blocks[DEEP_THREADS][DEPTH + 1];
static _Atomic int cleanup_ran[DEEP_THREADS];

typedef struct level_ctx {
    int thread, level;
} level_ctx_t;

/* Cleanup handlers run while pthread_exit unwinds: they free the block of every third level
 * and allocate (and free) a scratch block. */
static void level_cleanup(void *arg)
{
    level_ctx_t *c = arg;
    atomic_fetch_add(&cleanup_ran[c->thread], 1);
    void *scratch = T_MALLOC((size_t)c->level * 37 + 1);
    CHECK(scratch != NULL, "malloc in a cleanup handler");
    memset(scratch, 0x77, (size_t)c->level * 37 + 1);
    T_FREE(scratch);
    if (c->level % 3 == 0)
        block_free(&deep_blocks[c->thread][c->level], "cleanup handler");
}

/* Every path of descend() either recurses or ends in pthread_exit, which GCC takes for an
 * endless recursion; the call goes through a volatile pointer to say it is not. */
static void descend(int thread, int level);
static void (*volatile descend_next)(int, int) = descend;

static void descend(int thread, int level)
{
    level_ctx_t ctx = {thread, level};
    block_t *b = &deep_blocks[thread][level];
    *b = block_new(mixed_size((uint64_t)level) % 50000 + 1);
    if (level % 5 == 0) { /* and realloc'ed on the way down */
        block_check(b, "before realloc");
        uint8_t *q = T_REALLOC(b->p, b->size + 1000);
        CHECK(q != NULL, "realloc");
        b->p = q;
        b->size += 1000;
        pattern_fill(q, b->size < 8192 ? b->size : 8192, b->id);
        if (b->size > 8192)
            q[b->size - 1] = (uint8_t)b->id;
    }
    pthread_cleanup_push(level_cleanup, &ctx);
    if (level < DEPTH)
        descend_next(thread, level + 1);
    else
        pthread_exit((void *)(uintptr_t)(0xdee9 + thread));
    pthread_cleanup_pop(0);
}

static void *deep_main(void *arg)
{
    descend((int)(uintptr_t)arg, 0);
    return NULL; /* never reached */
}

/* glibc loads libgcc_s (dlopen) at the first pthread_exit, to unwind: its allocations live
 * for good, in the pages of the thread that exits first. Made before the baseline, they are
 * not counted against the test (under load they pinned up to three spans, 1 run in 180). */
static void *exit_at_once(void *arg)
{
    pthread_exit(arg);
}

static void pthread_exit_from_deep_inside(void **state)
{
    (void)state;
    pthread_t warm;
    assert_int_equal(pthread_create(&warm, NULL, exit_at_once, NULL), 0);
    assert_int_equal(pthread_join(warm, NULL), 0);
    figures_t base = figures();
    pthread_t th[DEEP_THREADS];
    for (int t = 0; t < DEEP_THREADS; t++) {
        atomic_store(&cleanup_ran[t], 0);
        assert_int_equal(pthread_create(&th[t], NULL, deep_main, (void *)(uintptr_t)t), 0);
    }
    for (int t = 0; t < DEEP_THREADS; t++) {
        void *ret;
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_int_equal((uintptr_t)ret, 0xdee9 + (uintptr_t)t);
        assert_int_equal(atomic_load(&cleanup_ran[t]), DEPTH + 1);
        for (int l = 0; l <= DEPTH; l++) {
            if (l % 3 == 0) {
                assert_null(deep_blocks[t][l].p); /* freed by its cleanup handler */
            } else {
                assert_non_null(deep_blocks[t][l].p);
                block_free(&deep_blocks[t][l], "left by a thread that exited deep inside");
            }
        }
    }
    figures_t after = figures();
    check_no_leak(base, after, 2, "pthread_exit from deep inside");
}

/* ---- The main thread leaves first ------------------------------------------------------------ */

enum { ORPHAN_WORKERS = 4, MAIN_BLOCKS = 2000 };

static struct {
    pthread_mutex_t lock;
    block_t blocks[MAIN_BLOCKS * 2];
    size_t n;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int workers_left;

static void shared_put(block_t b)
{
    pthread_mutex_lock(&shared.lock);
    CHECK(shared.n < MAIN_BLOCKS * 2, "shared full");
    shared.blocks[shared.n++] = b;
    pthread_mutex_unlock(&shared.lock);
}

static bool shared_take(block_t *out)
{
    pthread_mutex_lock(&shared.lock);
    bool ok = shared.n > 0;
    if (ok)
        *out = shared.blocks[--shared.n];
    pthread_mutex_unlock(&shared.lock);
    return ok;
}

static void *outliving_worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    usleep(20000); /* main is gone by now, most likely */
    unsigned freed = 0;
    for (unsigned round = 0; round < 3000; round++) {
        block_t b;
        if (shared_take(&b)) { /* main's blocks, and the other workers' */
            block_free(&b, "freed after main left");
            freed++;
        }
        if (round % 2 == 0)
            shared_put(block_new(mixed_size(round + id) % 20000 + 1));
    }
    if (atomic_fetch_sub(&workers_left, 1) == 1) {
        /* the last one: nothing may be left, everything must be intact */
        block_t b;
        while (shared_take(&b))
            block_free(&b, "freed by the last worker");
        fprintf(stderr, "all workers done, last was %u\n", id);
    }
    fprintf(stderr, "worker %u ok (%u freed)\n", id, freed);
    return NULL;
}

static void main_leaves_first(void *arg)
{
    (void)arg;
    atomic_store(&workers_left, ORPHAN_WORKERS);
    for (int i = 0; i < MAIN_BLOCKS; i++)
        shared_put(block_new(mixed_size((uint64_t)i) % 100000 + 1));
    for (unsigned w = 0; w < ORPHAN_WORKERS; w++) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, outliving_worker, (void *)(uintptr_t)w) == 0, "create");
        pthread_detach(th);
    }
    pthread_exit(NULL); /* the process ends when the last worker does, with status 0 */
}

static void main_thread_exits_while_others_allocate(void **state)
{
    (void)state;
#ifdef __SANITIZE_THREAD__
    skip(); /* ThreadSanitizer cannot run threads in a forked child (they hang) */
#endif
    child_result_t r = run_in_child(main_leaves_first, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
    int oks = 0;
    for (const char *s = r.err; (s = strstr(s, " ok (")) != NULL; s++)
        oks++;
    if (oks != ORPHAN_WORKERS || strstr(r.err, "all workers done") == NULL)
        fail_msg("not every worker finished: %s", r.err);
}

int main(void)
{
    /* Before anything allocates (in this file): a key whose destructor runs before vtmalloc's. */
#ifdef THREADEXIT_PLAIN_MALLOC
    /* preloaded: the loader and libc may have allocated (and so initialised vtmalloc) already */
    vtmalloc_was_initialised_before_key_before = true;
#endif
    if (pthread_key_create(&key_before, dtor_round) != 0)
        return 1;
    T_FREE(T_MALLOC(1)); /* vtmalloc initialises here, creating its own key */
    if (pthread_key_create(&key_after, dtor_round) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(destructors_before_and_after_ours_allocate_and_free),
        cmocka_unit_test(first_allocation_of_a_thread_in_a_destructor),
        cmocka_unit_test(first_allocation_in_the_last_destructor_round),
        cmocka_unit_test(exited_threads_blocks_freed_by_many),
        cmocka_unit_test(ten_thousand_short_lived_threads),
        cmocka_unit_test(pthread_exit_from_deep_inside),
        cmocka_unit_test(main_thread_exits_while_others_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
