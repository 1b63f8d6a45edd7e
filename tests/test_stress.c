/*
 * test_stress.c - many threads, random sizes (small, medium, large), cross-thread frees through
 * queues, realloc, calloc, aligned allocations, malloc_trim racing with all of it; threads are
 * replaced every epoch, so blocks outlive the thread that allocated them and are freed or
 * resized by the next generation. Every block carries a pattern derived from its identity
 * (id and size), checked before every free and realloc and on every hand-over: a block handed
 * out twice, an overflow into a neighbour, a lost realloc copy, memory purged under a live
 * block, all show as a broken pattern. At the end everything is freed and, on vtmalloc, the
 * statistics must be back where they started (no span, large block or thread cache leaked).
 *
 * Built twice: against the core library's vt_* names (label "threads", so ThreadSanitizer runs
 * it too), and with -DSTRESS_PLAIN_MALLOC against plain malloc/free/realloc/posix_memalign,
 * not linked with vtmalloc, run with libvtmalloc.so preloaded (label "preload").
 *
 * Usage: test_stress [THREADS [SCALE [ITER [SEED]]]]  (or VT_STRESS_THREADS, VT_STRESS_SCALE,
 * VT_STRESS_ITER, VT_STRESS_SEED in the environment; arguments win)
 *   THREADS  worker threads (default 4)
 *   SCALE    live blocks per thread = 1024 * SCALE (default 1)
 *   ITER     operations per thread over the whole run (default: about 30 s in a Release
 *            build on 2 cores; far fewer under ThreadSanitizer)
 *   SEED     the PRNG seed (printed; a failing run is replayed with the same seed, though the
 *            interleaving of threads is not)
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "vtmalloc.h"

#ifdef STRESS_PLAIN_MALLOC
#include <dlfcn.h>
#define A_MALLOC(n)               malloc(n)
#define A_CALLOC(a, b)            calloc(a, b)
#define A_REALLOC(p, n)           realloc(p, n)
#define A_FREE(p)                 free(p)
#define A_POSIX_MEMALIGN(o, a, n) posix_memalign(o, a, n)
#define A_ALIGNED_ALLOC(a, n)     aligned_alloc(a, n)
#define A_MEMALIGN(a, n)          memalign(a, n)
#define A_USABLE(p)               malloc_usable_size(p)
#define A_TRIM()                  malloc_trim(0)
#define ALLOCATOR                 "malloc (whatever is preloaded)"
#else
#define A_MALLOC(n)               vt_malloc(n)
#define A_CALLOC(a, b)            vt_calloc(a, b)
#define A_REALLOC(p, n)           vt_realloc(p, n)
#define A_FREE(p)                 vt_free(p)
#define A_POSIX_MEMALIGN(o, a, n) vt_posix_memalign(o, a, n)
#define A_ALIGNED_ALLOC(a, n)     vt_aligned_alloc(a, n)
#define A_MEMALIGN(a, n)          vt_memalign(a, n)
#define A_USABLE(p)               vt_malloc_usable_size(p)
#define A_TRIM()                  vt_malloc_trim(0)
#define ALLOCATOR                 "vtmalloc (vt_* API)"
#endif

#ifdef __SANITIZE_THREAD__
#define DEFAULT_ITER  150000u /* ThreadSanitizer: 10-20 times slower, and it checks every access */
#define DEFAULT_SLOTS 256u
#else
#define DEFAULT_ITER  3000000u
#define DEFAULT_SLOTS 1024u
#endif
#define EPOCHS 8u

static unsigned g_threads = 4, g_scale = 1;
static uint64_t g_iter = DEFAULT_ITER, g_seed = 20240611;

/* ---- Patterns: 8 bytes at a time, derived from (id, size, offset) -------------------------- */

static inline uint64_t word_at(uint64_t key, size_t w)
{
    uint64_t x = key + (uint64_t)w * RNG_GOLDEN;
    x ^= x >> 29;
    x *= RNG_MUL1;
    return x ^ (x >> 32);
}

static inline uint64_t key_of(uint64_t id, size_t size)
{
    return id * 0xd6e8feb86659fd93ull ^ (uint64_t)size;
}

/* Regions of a block that carry the pattern: all of it up to 64 KiB; beyond, the first and
 * last 4 KiB and one word every 64 KiB (touching every page of a 4 MiB block would make the
 * test about memset). */
#define DENSE_MAX 65536u

static void fill_range(uint8_t *p, size_t from, size_t to, uint64_t key)
{
    size_t w = from / 8;
    for (; w * 8 + 8 <= to; w++) {
        uint64_t v = word_at(key, w);
        memcpy(p + w * 8, &v, 8);
    }
    for (size_t i = w * 8; i < to; i++)
        p[i] = (uint8_t)(word_at(key, i / 8) >> (8 * (i % 8)));
}

static size_t check_range(const uint8_t *p, size_t from, size_t to, uint64_t key)
{
    size_t w = from / 8;
    for (; w * 8 + 8 <= to; w++) {
        uint64_t v = word_at(key, w), got;
        memcpy(&got, p + w * 8, 8);
        if (got != v)
            for (size_t i = w * 8;; i++)
                if (p[i] != (uint8_t)(v >> (8 * (i % 8))))
                    return i;
    }
    for (size_t i = w * 8; i < to; i++)
        if (p[i] != (uint8_t)(word_at(key, i / 8) >> (8 * (i % 8))))
            return i;
    return SIZE_MAX;
}

static void pattern_apply(uint8_t *p, size_t size, uint64_t id, bool check, const char *when)
{
    uint64_t key = key_of(id, size);
    size_t bad = SIZE_MAX;
    if (size <= DENSE_MAX) {
        if (check)
            bad = check_range(p, 0, size, key);
        else
            fill_range(p, 0, size, key);
    } else {
        for (size_t off = 0; off < size && bad == SIZE_MAX; off += DENSE_MAX) {
            size_t to = off == 0 ? 4096 : off + 8;
            if (check)
                bad = check_range(p, off, to, key);
            else
                fill_range(p, off, to, key);
        }
        if (bad == SIZE_MAX) {
            if (check)
                bad = check_range(p, size - 4096, size, key);
            else
                fill_range(p, size - 4096, size, key);
        }
    }
    CHECK(bad == SIZE_MAX, "%s: block %p (id %llu, %zu bytes) corrupt at byte %zu", when, (void *)p,
          (unsigned long long)id, size, bad);
}

/* The first `n` bytes still hold the pattern of (id, old_size): what realloc must keep. */
static void check_prefix(const uint8_t *p, size_t n, uint64_t id, size_t old_size)
{
    uint64_t key = key_of(id, old_size);
    size_t bad;
    if (old_size <= DENSE_MAX) {
        bad = check_range(p, 0, n, key);
    } else {
        bad = check_range(p, 0, n < 4096 ? n : 4096, key);
        for (size_t off = DENSE_MAX; off + 8 <= n && bad == SIZE_MAX; off += DENSE_MAX)
            bad = check_range(p, off, off + 8, key);
    }
    CHECK(bad == SIZE_MAX, "realloc lost contents: block %p (id %llu, %zu -> ? bytes) at %zu",
          (void *)p, (unsigned long long)id, old_size, bad);
}

/* ---- Blocks, queues, threads ---------------------------------------------------------------- */

typedef struct block {
    uint8_t *p;
    size_t size;
    uint64_t id;
    uint32_t align; /* 0, or the alignment it was allocated with */
} block_t;

/* A hand-over: a node (itself allocated by the sender, freed by the receiver) on the
 * receiver's lock-free stack. */
typedef struct node {
    struct node *next;
    block_t b;
} node_t;

typedef struct worker {
    unsigned index;
    block_t *slots;
    size_t nslots;
    _Atomic(node_t *) inbox;
    uint64_t rng;
    uint64_t ops, ops_target;
    /* counts, for the report */
    uint64_t allocs, frees, reallocs, sent, received, aligned, callocs, trims;
} worker_t;

static worker_t *g_workers;
static _Atomic uint64_t g_next_id = 1;

static void send_block(worker_t *to, block_t b)
{
    node_t *n = A_MALLOC(sizeof(node_t));
    CHECK(n != NULL, "malloc(node)");
    n->b = b;
    node_t *head = atomic_load_explicit(&to->inbox, memory_order_relaxed);
    do {
        n->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&to->inbox, &head, n, memory_order_release,
                                                    memory_order_relaxed));
}

static node_t *take_inbox(worker_t *w)
{
    return atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
}

static void check_block(const block_t *b, const char *when)
{
    CHECK(b->p != NULL, "%s: NULL block", when);
    if (b->align)
        CHECK((uintptr_t)b->p % b->align == 0, "%s: alignment %u lost", when, b->align);
    CHECK((uintptr_t)b->p % 16 == 0, "%s: %p not 16-byte aligned", when, (void *)b->p);
    pattern_apply(b->p, b->size, b->id, true, when);
}

static void free_block(block_t *b, const char *when)
{
    check_block(b, when);
    A_FREE(b->p);
    b->p = NULL;
}

static size_t random_size(uint64_t r)
{
    switch (r % 100) {
    case 0:
    case 1: /* large: up to 2 MiB, and now and then up to 6 MiB */
        return (size_t)256 * 1024 + 1 +
               (size_t)((r >> 8) % ((r >> 40) % 8 == 0 ? (6u << 20) : (2u << 20)));
    default:
        if (r % 100 < 22) /* medium: the classes above 1 KiB */
            return 1025 + (size_t)((r >> 8) % ((r >> 32) % 4 == 0 ? 262143u - 1024u : 65536u));
        return (size_t)((r >> 8) % 1025); /* small, 0 included */
    }
}

static void new_block(worker_t *w, block_t *slot, uint64_t r)
{
    size_t size = random_size(r);
    unsigned kind = (unsigned)((r >> 24) % 16);
    block_t b = {NULL, size, atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed), 0};
    if (kind == 0) { /* calloc: zero, also when the memory was used before */
        b.p = A_CALLOC(1, size);
        CHECK(b.p != NULL, "calloc(%zu)", size);
        size_t step = size > DENSE_MAX ? 4096 : 1;
        for (size_t i = 0; i < size; i += step)
            CHECK(b.p[i] == 0, "calloc(%zu): byte %zu is %#x", size, i, b.p[i]);
        w->callocs++;
    } else if (kind <= 2) {                                                   /* aligned */
        unsigned shift = (r >> 32) % 64 == 0 ? 16 + (unsigned)((r >> 40) % 6) /* 64K..2M */
                                             : 4 + (unsigned)((r >> 40) % 9); /* 16..4K */
        size_t align = (size_t)1 << shift;
        void *p = NULL;
        switch ((r >> 48) % 3) {
        case 0:
            CHECK(A_POSIX_MEMALIGN(&p, align, size) == 0, "posix_memalign(%zu, %zu)", align, size);
            break;
        case 1:
            p = A_ALIGNED_ALLOC(align, size);
            break;
        default:
            p = A_MEMALIGN(align, size);
            break;
        }
        CHECK(p != NULL, "aligned allocation (%zu, %zu)", align, size);
        CHECK((uintptr_t)p % align == 0, "aligned allocation (%zu, %zu) = %p", align, size, p);
        b.p = p;
        b.align = (uint32_t)align;
        w->aligned++;
    } else if (kind == 3) {
        b.p = A_REALLOC(NULL, size);
    } else {
        b.p = A_MALLOC(size);
    }
    CHECK(b.p != NULL, "allocation of %zu bytes failed", size);
    CHECK((uintptr_t)b.p % 16 == 0, "%p is not 16-byte aligned", (void *)b.p);
    if ((r >> 56) % 8 == 0)
        CHECK(A_USABLE(b.p) >= size, "usable size %zu < %zu", (size_t)A_USABLE(b.p), size);
    pattern_apply(b.p, size, b.id, false, "fill");
    *slot = b;
    w->allocs++;
}

static void resize_block(worker_t *w, block_t *b, uint64_t r)
{
    check_block(b, "before realloc");
    size_t size;
    if ((r >> 30) % 4 == 0) { /* anywhere */
        size = random_size(r >> 4);
    } else { /* near: within 2 KiB either way, often across a class boundary */
        size_t delta = (size_t)((r >> 8) % 4096);
        size = b->size + delta >= 2048 ? b->size + delta - 2048 : delta;
    }
    if (size > ((size_t)8 << 20))
        size = b->size / 2 + 1;
    uint8_t *q = A_REALLOC(b->p, size);
    if (size == 0 && q == NULL) { /* realloc(p, 0) frees (glibc) */
        b->p = NULL;
        w->frees++;
        return;
    }
    CHECK(q != NULL, "realloc(%zu -> %zu) failed", b->size, size);
    check_prefix(q, b->size < size ? b->size : size, b->id, b->size);
    b->p = q;
    b->size = size;
    b->align = 0; /* realloc does not keep an alignment */
    pattern_apply(q, size, b->id, false, "refill after realloc");
    w->reallocs++;
}

/* Blocks handed to this thread: checked, then freed here or adopted (and later resized or
 * freed, or handed on again). */
static void drain_inbox(worker_t *w, bool adopt)
{
    node_t *n = take_inbox(w);
    while (n != NULL) {
        node_t *next = n->next;
        block_t b = n->b;
        A_FREE(n);
        check_block(&b, "received");
        w->received++;
        size_t i = (size_t)(rng_next(&w->rng) % w->nslots);
        if (adopt && w->slots[i].p == NULL) {
            w->slots[i] = b;
        } else {
            free_block(&b, "free of a received block");
            w->frees++;
        }
        n = next;
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    while (w->ops < w->ops_target) {
        w->ops++;
        uint64_t r = rng_next(&w->rng);
        if (w->ops % 32 == 0)
            drain_inbox(w, true);
        if (r % 50000 == 7) { /* trim and purge while everybody else allocates */
            A_TRIM();
            w->trims++;
            continue;
        }
        block_t *slot = &w->slots[(r >> 8) % w->nslots];
        if (slot->p == NULL) {
            new_block(w, slot, rng_next(&w->rng));
            continue;
        }
        switch ((r >> 40) % 8) {
        case 0:
        case 1:
        case 2: /* free here */
            free_block(slot, "free");
            w->frees++;
            break;
        case 3:
        case 4: { /* hand over to another thread */
            unsigned to = (unsigned)((r >> 48) % g_threads);
            check_block(slot, "before sending");
            send_block(&g_workers[to], *slot);
            slot->p = NULL;
            w->sent++;
            break;
        }
        default:
            resize_block(w, slot, rng_next(&w->rng));
            break;
        }
    }
    return NULL;
}

/* ---- The run -------------------------------------------------------------------------------- */

typedef struct figures {
    int ok;
    uint64_t spans, large_blocks, large_bytes, caches_live;
} figures_t;

static void *warm_up(void *arg)
{
    A_FREE(A_MALLOC(64)); /* starts the thread's cache */
    return arg;
}

/* The allocator's statistics table on stderr, for a failure report. */
static void print_statistics(void)
{
#ifdef STRESS_PLAIN_MALLOC
    void (*print)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "vt_stats_print");
    if (print != NULL)
        print();
#else
    vt_stats_print();
#endif
}

static figures_t figures(void)
{
    figures_t f = {0, 0, 0, 0, 0};
#ifdef STRESS_PLAIN_MALLOC
    /* Preloaded: vtmalloc's statistics, if it is the allocator here (vtmalloc.h is included
     * for the structure only; the functions are found at run time). */
    void (*get)(vt_stats_t *) = (void (*)(vt_stats_t *))dlsym(RTLD_DEFAULT, "vt_stats_get");
    int (*trim)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "vt_malloc_trim");
    if (get == NULL || trim == NULL)
        return f;
    trim(0);
    static vt_stats_t st;
    get(&st);
    f.ok = 1;
    f.spans = st.spans_mapped;
    f.large_blocks = st.large_blocks;
    f.large_bytes = st.large_bytes;
    f.caches_live = st.thread_caches_live;
#else
    vt_malloc_trim(0);
    vt_stats_t st;
    vt_stats_get(&st);
    f.ok = 1;
    f.spans = st.spans_mapped;
    f.large_blocks = st.large_blocks;
    f.large_bytes = st.large_bytes;
    f.caches_live = st.thread_caches_live;
#endif
    return f;
}

static void stress(void **state)
{
    (void)state;
#ifdef STRESS_PLAIN_MALLOC
    if (getenv("VT_STRESS_REQUIRE_VTMALLOC") != NULL &&
        dlsym(RTLD_DEFAULT, "vt_malloc_usable_size") == NULL)
        fail_msg("VT_STRESS_REQUIRE_VTMALLOC is set but libvtmalloc is not loaded");
#endif
    unsigned T = g_threads;
    size_t slots = (size_t)DEFAULT_SLOTS * g_scale;
    print_message("stress on %s: %u threads, %zu live blocks each, %llu operations each, "
                  "%u epochs, seed %llu\n",
                  ALLOCATOR, T, slots, (unsigned long long)g_iter, EPOCHS,
                  (unsigned long long)g_seed);
    /* One round of T threads before the baseline. The C library keeps the stacks of joined
     * threads for the next ones, each with its vector of thread-local storage pointers, which
     * pthread_create callocs (320 bytes here); so does the purge thread, which starts with the
     * second cache. Those blocks live on for good. Allocated during the run, they could land in
     * a span of their own, which the check at the end took for a leak (about 1 preloaded run in
     * 15: 5 of the class's 320-byte blocks live, in 2 spans against 1). */
    pthread_t warm[1024];
    for (unsigned i = 0; i < T; i++)
        assert_int_equal(pthread_create(&warm[i], NULL, warm_up, NULL), 0);
    for (unsigned i = 0; i < T; i++)
        assert_int_equal(pthread_join(warm[i], NULL), 0);
    figures_t before = figures();
    g_workers = calloc(T, sizeof(worker_t));
    assert_non_null(g_workers);
    for (unsigned i = 0; i < T; i++) {
        g_workers[i].index = i;
        g_workers[i].nslots = slots;
        g_workers[i].slots = calloc(slots, sizeof(block_t));
        assert_non_null(g_workers[i].slots);
        g_workers[i].rng = g_seed * 1000003u + i;
    }
    pthread_t *th = calloc(T, sizeof(pthread_t));
    /* Each epoch, a new generation of threads takes over the blocks (and inboxes) of the last:
     * every live block outlives the thread that allocated it. */
    for (unsigned e = 0; e < EPOCHS; e++) {
        for (unsigned i = 0; i < T; i++) {
            g_workers[i].ops_target = g_iter * (e + 1) / EPOCHS;
            assert_int_equal(pthread_create(&th[i], NULL, worker_main, &g_workers[i]), 0);
        }
        for (unsigned i = 0; i < T; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    /* Nothing is sent any more: what is in an inbox or a slot is checked and freed. */
    uint64_t total[8] = {0};
    for (unsigned i = 0; i < T; i++) {
        worker_t *w = &g_workers[i];
        drain_inbox(w, false);
        for (size_t k = 0; k < w->nslots; k++)
            if (w->slots[k].p != NULL)
                free_block(&w->slots[k], "final free");
        total[0] += w->allocs, total[1] += w->frees, total[2] += w->reallocs;
        total[3] += w->sent, total[4] += w->received, total[5] += w->aligned;
        total[6] += w->callocs, total[7] += w->trims;
        free(w->slots);
    }
    free(g_workers);
    free(th);
    print_message("allocations %llu (aligned %llu, calloc %llu), frees %llu, reallocs %llu, "
                  "handed over %llu (received %llu), trims %llu\n",
                  (unsigned long long)total[0], (unsigned long long)total[5],
                  (unsigned long long)total[6], (unsigned long long)total[1],
                  (unsigned long long)total[2], (unsigned long long)total[3],
                  (unsigned long long)total[4], (unsigned long long)total[7]);
    assert_int_equal(total[3], total[4]); /* every block handed over arrived */
    figures_t after = figures();
    /* The background purge thread may be in a pass that holds an idle cache's stash or gathered
     * remote frees for a moment (reclaim.c), so a span can still be in use when the trim runs;
     * they are free again at the end of the pass, and the next trim unmaps their span. A leak
     * stays for the whole second this waits. */
    for (int wait = 0; wait < 20 && before.ok && after.spans > before.spans; wait++) {
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
        after = figures();
    }
    if (before.ok && after.ok) {
        /* everything freed and trimmed: nothing of the run is left */
        if (after.spans > before.spans || after.large_blocks != before.large_blocks ||
            after.large_bytes != before.large_bytes || after.caches_live != before.caches_live) {
            print_statistics(); /* which classes and units hold the memory left */
            fail_msg("leak: spans %llu -> %llu, large blocks %llu -> %llu (%llu -> %llu bytes), "
                     "live thread caches %llu -> %llu",
                     (unsigned long long)before.spans, (unsigned long long)after.spans,
                     (unsigned long long)before.large_blocks,
                     (unsigned long long)after.large_blocks, (unsigned long long)before.large_bytes,
                     (unsigned long long)after.large_bytes, (unsigned long long)before.caches_live,
                     (unsigned long long)after.caches_live);
        }
    }
}

static uint64_t param(int argc, char **argv, int pos, const char *env, uint64_t def)
{
    const char *s = argc > pos ? argv[pos] : getenv(env);
    if (s == NULL || *s == '\0')
        return def;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0) {
        fprintf(stderr, "bad value for %s: %s\n", env, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    g_threads = (unsigned)param(argc, argv, 1, "VT_STRESS_THREADS", 4);
    g_scale = (unsigned)param(argc, argv, 2, "VT_STRESS_SCALE", 1);
    g_iter = param(argc, argv, 3, "VT_STRESS_ITER", DEFAULT_ITER);
    g_seed = param(argc, argv, 4, "VT_STRESS_SEED", g_seed);
    if (g_threads > 1024 || g_scale > 4096) {
        fprintf(stderr, "usage: %s [THREADS<=1024 [SCALE<=4096 [ITER [SEED]]]]\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
