/*
 * test_oom.c - running out of memory: every allocation that cannot be served fails cleanly
 * (NULL with errno ENOMEM, posix_memalign's ENOMEM with *out untouched), nothing crashes,
 * nothing leaks, no live block is touched, and allocation works again as soon as memory does.
 *
 * Two ways of running out:
 *   - the failure-injection hook vt_os_fail_countdown (os.c): the n-th next mapping fails, for
 *     n = 1, 2, 3, ... until the workload makes fewer than n mappings, on every path that maps:
 *     a thread cache's refill (a new span), large blocks, realloc of large blocks (mremap),
 *     aligned large blocks, a new thread's first malloc (its cache's metadata, then its
 *     first span), the large-block table's growth; with the mmap backing and with the
 *     system-allocator backing;
 *   - setrlimit(RLIMIT_AS) in a child process: the kernel refuses, for real.
 *
 * After each failure: errno is ENOMEM, the failed call mapped nothing (the process's
 * mapped size is what it was before the call), the counters of large blocks did not move,
 * every live block still holds its pattern, a failed realloc left its block as it was, and the
 * same call made again (the hook has fired, so it is off) succeeds. After each workload,
 * everything is freed, vt_malloc_trim(0) runs, and vt_stats_get's figures are back where they
 * were before it: spans mapped, large blocks and bytes, live thread caches.
 *
 * VT_TEST_SCALE (environment) multiplies the work of each workload.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "internal.h"
#include "vtmalloc.h"

static unsigned scale(void)
{
    const char *s = getenv("VT_TEST_SCALE");
    unsigned v = s ? (unsigned)atoi(s) : 1;
    return v ? v : 1;
}

static void arm(long n)
{
    atomic_store(&vt_os_fail_countdown, n);
}

static long disarm(void)
{
    return atomic_exchange(&vt_os_fail_countdown, 0);
}

/* The process's mapped size in pages (/proc/self/statm), read without allocating. */
static long vm_pages(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open /proc/self/statm");
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    CHECK(n > 0, "read /proc/self/statm");
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* ---- Live blocks and their patterns ------------------------------------------------------- */

typedef struct block {
    uint8_t *p;
    size_t size;
    uint64_t id;
} block_t;

/* Small blocks are patterned whole; big ones on their first and last 4 KiB. */
static void mark(const block_t *b)
{
    if (b->size <= 65536) {
        pattern_fill(b->p, b->size, b->id);
    } else {
        pattern_fill(b->p, 4096, b->id);
        pattern_fill(b->p + b->size - 4096, 4096, b->id ^ 0xfeed);
    }
}

static void check_block(const block_t *b, const char *when)
{
    size_t bad;
    if (b->size <= 65536) {
        bad = pattern_check(b->p, b->size, b->id);
        CHECK(bad == b->size, "%s: block %p (%zu bytes, id %llu) corrupt at byte %zu", when,
              (void *)b->p, b->size, (unsigned long long)b->id, bad);
    } else {
        bad = pattern_check(b->p, 4096, b->id);
        CHECK(bad == 4096, "%s: block %p (%zu bytes) head corrupt at %zu", when, (void *)b->p,
              b->size, bad);
        bad = pattern_check(b->p + b->size - 4096, 4096, b->id ^ 0xfeed);
        CHECK(bad == 4096, "%s: block %p (%zu bytes) tail corrupt", when, (void *)b->p, b->size);
    }
    CHECK(vt_malloc_usable_size(b->p) >= b->size, "%s: usable size of %p shrank", when,
          (void *)b->p);
}

typedef struct live_set {
    block_t *b;
    size_t n, cap;
    uint64_t next_id;
} live_set_t;

static void live_init(live_set_t *s, size_t cap)
{
    /* Not from vtmalloc (it is being starved) nor from glibc (RLIMIT_AS): mapped up front. */
    s->b = mmap(NULL, cap * sizeof(block_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
    CHECK(s->b != MAP_FAILED, "mmap for the live set");
    s->n = 0;
    s->cap = cap;
    s->next_id = 1;
}

static void live_destroy(live_set_t *s)
{
    munmap(s->b, s->cap * sizeof(block_t));
}

static void live_add(live_set_t *s, void *p, size_t size)
{
    CHECK(s->n < s->cap, "live set full");
    block_t *b = &s->b[s->n++];
    b->p = p;
    b->size = size;
    b->id = s->next_id++;
    mark(b);
}

static void live_check_all(const live_set_t *s, const char *when)
{
    for (size_t i = 0; i < s->n; i++)
        check_block(&s->b[i], when);
}

static void live_free_at(live_set_t *s, size_t i)
{
    check_block(&s->b[i], "before free");
    vt_free(s->b[i].p);
    s->b[i] = s->b[--s->n];
}

static void live_free_all(live_set_t *s)
{
    while (s->n > 0)
        live_free_at(s, s->n - 1);
}

/* ---- Baselines ----------------------------------------------------------------------------- */

typedef struct figures {
    uint64_t spans, reserved, large_blocks, large_bytes, caches_live;
} figures_t;

static figures_t settle(void)
{
    vt_malloc_trim(0);
    vt_stats_t st;
    vt_stats_get(&st);
    return (figures_t){st.spans_mapped, st.spans_reserved, st.large_blocks, st.large_bytes,
                       st.thread_caches_live};
}

static void check_back_to(figures_t before, const char *what, long n)
{
    figures_t after = settle();
    CHECK(after.spans == before.spans && after.reserved == 0 &&
              after.large_blocks == before.large_blocks &&
              after.large_bytes == before.large_bytes && after.caches_live == before.caches_live,
          "%s, n=%ld: leak: spans %llu -> %llu (reserve %llu), large blocks %llu -> %llu, "
          "large bytes %llu -> %llu, live caches %llu -> %llu",
          what, n, (unsigned long long)before.spans, (unsigned long long)after.spans,
          (unsigned long long)after.reserved, (unsigned long long)before.large_blocks,
          (unsigned long long)after.large_blocks, (unsigned long long)before.large_bytes,
          (unsigned long long)after.large_bytes, (unsigned long long)before.caches_live,
          (unsigned long long)after.caches_live);
}

/* ---- One operation, and what a failure of it must look like -------------------------------- */

enum op {
    OP_MALLOC,
    OP_CALLOC,
    OP_REALLOC,
    OP_MEMALIGN,
    OP_POSIX_MEMALIGN,
    OP_ALIGNED_ALLOC,
    OP_FREE
};

typedef struct workload workload_t;

typedef struct step {
    enum op op;
    size_t size, alignment;
    size_t victim; /* OP_REALLOC / OP_FREE: index in the live set */
} step_t;

struct workload {
    const char *name;
    /* picks the next step for the live set; returns false when the workload is done */
    bool (*next)(workload_t *w, live_set_t *s, uint64_t *rng, step_t *st);
    unsigned steps, done;
    long n;     /* the mapping to fail */
    bool fired; /* the injected failure happened */
    unsigned failures;
    bool errno_bug; /* a successful call changed errno */
};

/* Runs one step; NULL results are checked and the step retried once the hook has fired. */
static void run_step(workload_t *w, live_set_t *s, const step_t *st)
{
    vt_stats_t before;
    vt_stats_get(&before);
    long vm_before = vm_pages();
    block_t old = st->op == OP_REALLOC || st->op == OP_FREE ? s->b[st->victim] : (block_t){0};
    if (st->op == OP_FREE) {
        live_free_at(s, st->victim);
        return;
    }
    for (int attempt = 0;; attempt++) {
        void *p = NULL;
        int rc = 0;
        errno = 0;
        switch (st->op) {
        case OP_MALLOC:
            p = vt_malloc(st->size);
            break;
        case OP_CALLOC:
            p = vt_calloc(1, st->size);
            break;
        case OP_REALLOC:
            p = vt_realloc(old.p, st->size);
            break;
        case OP_MEMALIGN:
            p = vt_memalign(st->alignment, st->size);
            break;
        case OP_ALIGNED_ALLOC:
            p = vt_aligned_alloc(st->alignment, st->size);
            break;
        case OP_POSIX_MEMALIGN: {
            void *out = (void *)0x4321;
            rc = vt_posix_memalign(&out, st->alignment, st->size);
            CHECK(rc == 0 || out == (void *)0x4321, "posix_memalign wrote *out on failure");
            p = rc == 0 ? out : NULL;
            break;
        }
        default:
            break;
        }
        int err = errno;
        if (p != NULL) {
            if (err != 0) /* successful calls preserve errno (README, "Semantics") */
                w->errno_bug = true;
            CHECK(vt_malloc_usable_size(p) >= st->size, "%s: a short block", w->name);
            if (st->alignment > 0)
                CHECK((uintptr_t)p % st->alignment == 0, "%s: misaligned", w->name);
            if (st->op == OP_CALLOC) {
                const uint8_t *z = p;
                for (size_t i = 0; i < st->size; i += (st->size > 65536 ? 4093 : 1))
                    CHECK(z[i] == 0, "%s: calloc(%zu) byte %zu not zero", w->name, st->size, i);
            }
            if (st->op == OP_REALLOC) {
                /* contents kept up to the smaller size */
                size_t keep = old.size < st->size ? old.size : st->size;
                block_t moved = {p, keep, old.id};
                if (keep <= 65536 && old.size <= 65536) {
                    check_block(&moved, "after realloc");
                } else if (keep >= 4096) {
                    CHECK(pattern_check(p, 4096, old.id) == 4096, "%s: realloc lost the head",
                          w->name);
                }
                /* the realloc'ed block takes its place in the set under a new pattern */
                s->b[st->victim] = s->b[--s->n];
            }
            live_add(s, p, st->size);
            return;
        }
        /* A failure: only the injected one is expected, and only once. */
        CHECK(attempt == 0, "%s, n=%ld: the retry failed too (errno %d)", w->name, w->n, err);
        CHECK(atomic_load(&vt_os_fail_countdown) == 0,
              "%s, n=%ld: a failure that was not injected (errno %d)", w->name, w->n, err);
        if (st->op == OP_POSIX_MEMALIGN)
            CHECK(rc == ENOMEM, "%s: posix_memalign returned %d", w->name, rc);
        else
            CHECK(err == ENOMEM, "%s, n=%ld: op %d size %zu failed with errno %d", w->name, w->n,
                  (int)st->op, st->size, err);
        CHECK(vm_pages() <= vm_before, "%s, n=%ld: the failed call left %ld pages mapped", w->name,
              w->n, vm_pages() - vm_before);
        vt_stats_t after;
        vt_stats_get(&after);
        CHECK(after.large_blocks == before.large_blocks && after.large_bytes == before.large_bytes,
              "%s, n=%ld: the failed call changed the large-block counters", w->name, w->n);
        if (st->op == OP_REALLOC) { /* the old block is as it was */
            check_block(&old, "after a failed realloc");
            CHECK(vt_malloc_usable_size(old.p) == vt_malloc_usable_size(old.p), "usable");
        }
        live_check_all(s, "after a failure");
        w->fired = true;
        w->failures++;
    }
}

/* ---- The workloads -------------------------------------------------------------------------- */

static size_t small_size(uint64_t r)
{
    static const size_t sizes[] = {16,    100,   1000,   3000,   9000,
                                   20000, 60000, 100000, 200000, VT_SMALL_MAX};
    size_t base = sizes[r % (sizeof(sizes) / sizeof(sizes[0]))];
    return base - (size_t)((r >> 8) % 8);
}

static size_t large_size(uint64_t r)
{
    return VT_SMALL_MAX + 1 + (size_t)((r >> 8) % (8u << 20));
}

/* Refills of thread caches: small blocks of every kind, until several spans were needed. */
static bool next_refill(workload_t *w, live_set_t *s, uint64_t *rng, step_t *st)
{
    if (w->done++ >= w->steps)
        return false;
    uint64_t r = rng_next(rng);
    memset(st, 0, sizeof(*st));
    st->size = small_size(r);
    switch ((r >> 40) % 8) {
    case 0:
        st->op = OP_CALLOC;
        break;
    case 1:
        st->op = OP_ALIGNED_ALLOC;
        st->alignment = (size_t)64 << ((r >> 44) % 11); /* 64 B .. 64 KiB: from a class */
        if (st->size > VT_SMALL_MAX - st->alignment)
            st->size = st->alignment;
        break;
    case 2:
        if (s->n > 0) { /* small to small across classes */
            st->op = OP_REALLOC;
            st->victim = (size_t)(r >> 20) % s->n;
            if (s->b[st->victim].size > VT_SMALL_MAX)
                st->op = OP_MALLOC;
            break;
        }
        /* fall through */
    default:
        st->op = OP_MALLOC;
        break;
    }
    if (s->n > 0 && (r >> 50) % 10 == 0) {
        st->op = OP_FREE;
        st->victim = (size_t)(r >> 20) % s->n;
    }
    return true;
}

/* Large blocks: malloc, calloc, and realloc into and out of the classes. */
static bool next_large(workload_t *w, live_set_t *s, uint64_t *rng, step_t *st)
{
    if (w->done++ >= w->steps)
        return false;
    uint64_t r = rng_next(rng);
    memset(st, 0, sizeof(*st));
    st->size = large_size(r);
    st->op = (r >> 40) % 2 ? OP_CALLOC : OP_MALLOC;
    if (s->n > 0 && (r >> 44) % 4 == 0) {
        st->op = OP_REALLOC; /* small <-> large */
        st->victim = (size_t)(r >> 20) % s->n;
        if (s->b[st->victim].size > VT_SMALL_MAX)
            st->size = small_size(r);
    }
    if (s->n > 6 && (r >> 50) % 3 == 0) {
        st->op = OP_FREE;
        st->victim = (size_t)(r >> 20) % s->n;
    }
    return true;
}

/* realloc of large blocks to other large sizes: mremap, growing and shrinking. */
static bool next_mremap(workload_t *w, live_set_t *s, uint64_t *rng, step_t *st)
{
    if (w->done++ >= w->steps)
        return false;
    uint64_t r = rng_next(rng);
    memset(st, 0, sizeof(*st));
    st->size = large_size(r);
    if (s->n < 4) {
        st->op = OP_MALLOC;
    } else {
        st->op = OP_REALLOC;
        st->victim = (size_t)(r >> 20) % s->n;
    }
    return true;
}

/* Aligned blocks above a unit's alignment: their own mapping, through all three calls. */
static bool next_aligned(workload_t *w, live_set_t *s, uint64_t *rng, step_t *st)
{
    if (w->done++ >= w->steps)
        return false;
    uint64_t r = rng_next(rng);
    memset(st, 0, sizeof(*st));
    st->alignment = (size_t)128 << (10 + (r >> 40) % 6); /* 128 KiB .. 4 MiB */
    st->size = (size_t)((r >> 8) % (3u << 20)) + 1;
    static const enum op ops[] = {OP_MEMALIGN, OP_POSIX_MEMALIGN, OP_ALIGNED_ALLOC};
    st->op = ops[(r >> 48) % 3];
    if (s->n > 8 && (r >> 52) % 3 == 0) {
        st->op = OP_FREE;
        st->victim = (size_t)(r >> 20) % s->n;
    }
    return true;
}

typedef struct job {
    workload_t w;
    uint64_t seed;
} job_t;

static void *run_workload(void *arg)
{
    job_t *job = arg;
    workload_t *w = &job->w;
    live_set_t s;
    live_init(&s, 100000);
    uint64_t rng = job->seed;
    step_t st;
    vt_free(vt_malloc(1)); /* this thread's cache, before the hook counts */
    arm(w->n);
    while (w->next(w, &s, &rng, &st))
        run_step(w, &s, &st);
    long left = disarm();
    if (left == 0)
        w->fired = true;
    CHECK(w->failures <= 1, "%s: %u failures for one injected", w->name, w->failures);
    live_check_all(&s, "at the end");
    live_free_all(&s);
    live_destroy(&s);
    return NULL;
}

/* Runs the workload in a thread of its own (its cache is handed back when it exits, so every
 * span it used can be returned) for n = 1, 2, ... until it makes fewer than n mappings. */
static void fail_every_mapping(workload_t proto, uint64_t seed)
{
    pthread_t th;
    job_t warm = {proto, seed};
    warm.w.n = 0;
    pthread_create(&th, NULL, run_workload, &warm); /* glibc caches the thread's stack */
    pthread_join(th, NULL);
    figures_t base = settle();
    long n;
    unsigned fired = 0;
    for (n = 1; n <= 400; n++) {
        job_t job = {proto, seed};
        job.w.n = n;
        assert_int_equal(pthread_create(&th, NULL, run_workload, &job), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        check_back_to(base, proto.name, n);
        if (job.w.errno_bug)
            fail_msg("%s, n=%ld: a successful call changed errno", proto.name, n);
        if (!job.w.fired)
            break; /* the workload made fewer than n mappings: every one has failed once */
        fired++;
    }
    if (fired < 3)
        fail_msg("%s: only %u mappings were failed: the path was not exercised", proto.name, fired);
    print_message("%s: failed each of %u mappings in turn\n", proto.name, fired);
}

static void refill_of_a_thread_cache(void **state)
{
    (void)state;
    workload_t w = {.name = "refill", .next = next_refill, .steps = 1500 * scale()};
    fail_every_mapping(w, 11);
}

static void large_blocks(void **state)
{
    (void)state;
    workload_t w = {.name = "large", .next = next_large, .steps = 60 * scale()};
    fail_every_mapping(w, 12);
}

static void realloc_of_large_blocks(void **state)
{
    (void)state;
    workload_t w = {.name = "mremap", .next = next_mremap, .steps = 60 * scale()};
    fail_every_mapping(w, 13);
}

static void aligned_large_blocks(void **state)
{
    (void)state;
    workload_t w = {.name = "aligned", .next = next_aligned, .steps = 60 * scale()};
    fail_every_mapping(w, 14);
}

/* The same with the system-allocator backing (VTMALLOC_BACKING=malloc), in a child. */
static void with_malloc_backing(void *arg)
{
    (void)arg;
    vt_options.backing = VT_BACKING_MALLOC;
    vt_malloc_trim(0); /* mmap'ed spans in reserve would serve the refills */
    workload_t ws[] = {
        {.name = "refill (malloc backing)", .next = next_refill, .steps = 1500},
        {.name = "large (malloc backing)", .next = next_large, .steps = 60},
        {.name = "realloc large (malloc backing)", .next = next_mremap, .steps = 60},
        {.name = "aligned (malloc backing)", .next = next_aligned, .steps = 60},
    };
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        /* fail_every_mapping uses cmocka's reporting: here failures go through CHECK */
        pthread_t th;
        job_t warm = {ws[i], 21 + i};
        pthread_create(&th, NULL, run_workload, &warm);
        pthread_join(th, NULL);
        figures_t base = settle();
        unsigned fired = 0;
        for (long n = 1; n <= 400; n++) {
            job_t job = {ws[i], 21 + i};
            job.w.n = n;
            pthread_create(&th, NULL, run_workload, &job);
            pthread_join(th, NULL);
            check_back_to(base, ws[i].name, n);
            if (!job.w.fired)
                break;
            fired++;
        }
        CHECK(fired >= 3, "%s: only %u mappings failed", ws[i].name, fired);
    }
}

static void every_path_with_the_malloc_backing(void **state)
{
    (void)state;
    child_result_t r = run_in_child(with_malloc_backing, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
}

/* ---- The large-block table's growth --------------------------------------------------------- */

/* The table of large blocks grows (a mapping of its own) when it is half full, so the
 * allocation that needs it makes two mappings. Blocks aligned above half a span (here 4 MiB)
 * are mapped first, then the table grows: with the hook at 2, the table fails after the block was
 * mapped, and the block must go back. Every allocation here is made with the hook at 1, then
 * 2, then 3, until it succeeds: each mapping of each call fails once. After a failure: ENOMEM,
 * the counters of large blocks unchanged, and the block's mapping not left behind (a table
 * that did grow may stay: it is smaller than any block). (A failed growth may also be
 * absorbed by a second try within the call: then the call succeeds.) */
static void large_table_growth(void **state)
{
    (void)state;
    enum { MAX = 1200 };
    static void *blocks[MAX];
    figures_t base = settle();
    size_t growths = 0, failures = 0, count = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < MAX && growths < 2; i++) {
        size_t size = VT_SMALL_MAX + 1 + (i % 7) * 4096;
        void *p = NULL;
        for (long k = 1; p == NULL; k++) {
            assert_true(k <= 3);
            vt_stats_t before, after;
            vt_stats_get(&before);
            long vm_before = vm_pages();
            arm(k);
            errno = 0;
            p = vt_memalign(VT_SPAN_SIZE, size);
            int err = errno;
            long left = disarm();
            if (p != NULL)
                break; /* fewer than k mappings, or a failed growth absorbed by a retry */
            failures++;
            if (k == 2)
                growths++;
            assert_int_equal(err, ENOMEM);
            assert_int_equal(left, 0);
            if ((vm_pages() - vm_before) * page >= (long)size)
                fail_msg("a failed memalign(%zu) left %ld pages mapped", size,
                         vm_pages() - vm_before);
            vt_stats_get(&after);
            assert_int_equal(after.large_blocks, before.large_blocks);
            assert_int_equal(after.large_bytes, before.large_bytes);
        }
        ((uint8_t *)p)[0] = (uint8_t)i;
        ((uint8_t *)p)[size - 1] = (uint8_t)(i >> 3);
        blocks[count++] = p;
    }
    assert_true(growths >= 1);
    for (size_t i = 0; i < count; i++) {
        size_t size = VT_SMALL_MAX + 1 + (i % 7) * 4096;
        assert_int_equal(((uint8_t *)blocks[i])[0], (uint8_t)i);
        assert_int_equal(((uint8_t *)blocks[i])[size - 1], (uint8_t)(i >> 3));
        vt_free(blocks[i]);
    }
    figures_t after = settle();
    assert_int_equal(after.large_blocks, base.large_blocks);
    assert_int_equal(after.large_bytes, base.large_bytes);
    print_message("large table: %zu growths and %zu injected failures over %zu blocks\n", growths,
                  failures, count);
}

/* ---- A new thread's first malloc ------------------------------------------------------------ */

/* White-box helpers: the thread caches' pool and metadata chunk can be drained, every free unit
 * of every span taken, and the global cache's pages of a class held, so that a thread's first
 * malloc has to map its cache's metadata and a span. Everything is given back afterwards. */
enum { HOLD_CACHES = 4096, HOLD_PAGES = 64 * 4096 };
static vt_tcache_t *held_caches[HOLD_CACHES];
static size_t held_cache_count;
static vt_page_t *held_units[HOLD_PAGES];
static size_t held_unit_count;
static vt_page_t *held_partial[4096];
static size_t held_partial_count;

static void drain_caches(void)
{
    for (;;) {
        arm(1);
        vt_tcache_t *tc = vt_cachepool_get();
        long left = disarm();
        if (tc == NULL) {
            CHECK(left == 0, "tcache_get failed without the hook");
            return;
        }
        CHECK(held_cache_count < HOLD_CACHES, "too many caches");
        held_caches[held_cache_count++] = tc;
    }
}

static void undrain_one_cache(void)
{
    vt_cachepool_put(held_caches[--held_cache_count]);
}

static void drain_units(void)
{
    for (;;) {
        vt_page_t *batch[64];
        arm(1);
        uint32_t got = vt_global_take_units(batch, 64, VT_CLASS_COUNT); /* no class */
        long left = disarm();
        if (got == 0) {
            CHECK(left == 0, "take_units failed without the hook");
            return;
        }
        for (uint32_t i = 0; i < got; i++) {
            CHECK(held_unit_count < HOLD_PAGES, "too many units");
            held_units[held_unit_count++] = batch[i];
        }
    }
}

static void drain_partial(unsigned class_idx)
{
    vt_page_t *page;
    while ((page = vt_global_take_partial(class_idx)) != NULL)
        held_partial[held_partial_count++] = page;
}

static void undrain_all(void)
{
    vt_list_t units = {0};
    while (held_unit_count > 0)
        vt_list_push_back(&units, held_units[--held_unit_count], VT_PAGE_LINK);
    vt_global_put_pages(NULL, &units, false);
    while (held_partial_count > 0)
        vt_global_put_partial(held_partial[--held_partial_count], false);
    while (held_cache_count > 0)
        undrain_one_cache();
}

/* Many threads start at once, each allocating at once, with no cache in the pool and no free
 * unit, while the n-th mapping fails: the mappings are the thread caches' metadata (a chunk
 * per ~26 caches) and spans. A thread whose cache cannot be started is served by the shared
 * orphan cache; a thread whose span cannot be mapped gets NULL with ENOMEM. */
typedef struct starter {
    pthread_barrier_t *go;
    unsigned id;
    unsigned failures;
    bool orphaned; /* its first malloc found no cache for it */
} starter_t;

static void *starting_thread(void *arg)
{
    starter_t *me = arg;
    pthread_barrier_wait(me->go);
    enum { N = 24 };
    block_t blocks[N];
    for (unsigned i = 0; i < N; i++) {
        size_t size = small_size((uint64_t)me->id * 131 + i * 7);
        errno = 0;
        void *p = vt_malloc(size);
        if (i == 0)
            me->orphaned = vt_thread.tcache->state != VT_TCACHE_LIVE;
        if (p == NULL) {
            CHECK(errno == ENOMEM, "thread %u: malloc(%zu) failed with errno %d", me->id, size,
                  errno);
            CHECK(atomic_load(&vt_os_fail_countdown) <= 0, "thread %u: a failure not injected",
                  me->id);
            me->failures++;
            p = vt_malloc(size); /* the hook has fired: works again */
            CHECK(p != NULL, "thread %u: malloc(%zu) failed again", me->id, size);
        }
        blocks[i] = (block_t){p, size, (uint64_t)me->id * 1000 + i};
        mark(&blocks[i]);
    }
    pthread_barrier_wait(me->go); /* all alive together, all blocks live */
    for (unsigned i = 0; i < N; i++) {
        check_block(&blocks[i], "thread start");
        vt_free(blocks[i].p);
    }
    return NULL;
}

static void many_threads_start_while_mappings_fail(void **state)
{
    (void)state;
    enum { T = 40 };
    static pthread_t th[T];
    static starter_t st[T];
    pthread_barrier_t go;
    figures_t base = settle();
    unsigned fired = 0, failures = 0, orphaned = 0;
    uint64_t orphan_spans = 0;
    long n;
    for (n = 1; n <= 24; n++) {
        drain_caches();
        drain_units();
        pthread_barrier_init(&go, NULL, T + 1);
        for (unsigned i = 0; i < T; i++) {
            st[i] = (starter_t){&go, (unsigned)n * 100 + i, 0, false};
            assert_int_equal(pthread_create(&th[i], NULL, starting_thread, &st[i]), 0);
        }
        arm(n);
        pthread_barrier_wait(&go); /* they start allocating */
        pthread_barrier_wait(&go); /* they have allocated */
        long left = disarm();
        bool orphan_used = false;
        for (unsigned i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            failures += st[i].failures;
            orphan_used |= st[i].orphaned;
            orphaned += st[i].orphaned;
        }
        pthread_barrier_destroy(&go);
        undrain_all();
        if (orphan_used) {
            /* The orphan cache keeps the pages it took (it never exits): a bounded cost (a
             * few pages per class it served, in spans mapped while no unit was free), so it
             * must not grow with the rounds; the rest must be back. */
            figures_t now = settle();
            uint64_t growth = now.spans > base.spans ? now.spans - base.spans : 0;
            print_message("round %ld: the orphan cache served threads; spans +%llu\n", n,
                          (unsigned long long)growth);
            orphan_spans += growth;
            assert_true(orphan_spans <= ((size_t)64 << 20) / VT_SPAN_SIZE); /* 16 of 4 MiB */
            base.spans = now.spans;
        }
        check_back_to(base, "thread start", n);
        if (left != 0)
            break;
        fired++;
    }
    assert_true(fired >= 3);
    print_message("thread start: %u mappings failed in turn, %u mallocs saw ENOMEM, %u threads "
                  "served by the orphan cache\n",
                  fired, failures, orphaned);
}

/* White-box, in a child, one thread at a time: a new thread's first malloc with nothing to
 * start from. */
typedef struct first_malloc {
    long n; /* the hook, armed by the thread itself just before its first malloc */
    size_t size;
    void *p;
    int err;
    long left;
    uint32_t state; /* the thread's cache state after the call */
    void *again;    /* a second malloc, hook off */
} first_malloc_t;

static void *first_malloc_thread(void *arg)
{
    first_malloc_t *f = arg;
    arm(f->n);
    errno = 0;
    f->p = vt_malloc(f->size);
    f->err = errno;
    f->left = disarm();
    f->state = vt_thread.tcache->state;
    f->again = vt_malloc(f->size);
    CHECK(f->again != NULL, "malloc after the hook: errno %d", errno);
    memset(f->again, 0x3c, f->size);
    if (f->p != NULL)
        memset(f->p, 0x3d, f->size);
    vt_free(f->again);
    vt_free(f->p);
    return NULL;
}

static first_malloc_t first_malloc_in_new_thread(long n, size_t size)
{
    first_malloc_t f = {.n = n, .size = size};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, first_malloc_thread, &f) == 0, "pthread_create");
    pthread_join(th, NULL);
    return f;
}

static void first_malloc_without_cache_or_span(void *arg)
{
    (void)arg;
    const size_t size = 3000; /* class 3072, one-unit pages */
    unsigned class_idx = vt_size_class(size);
    first_malloc_in_new_thread(0, size); /* a thread stack for glibc's cache */
    figures_t base = settle();
    vt_stats_t st0;
    vt_stats_get(&st0);

    /* 1. No cache in the pool, no unit free: the metadata maps (1st mapping), the span
     *    fails (2nd): NULL with ENOMEM; the thread has a live cache; the next malloc works. */
    drain_caches();
    drain_units();
    drain_partial(class_idx);
    first_malloc_t f = first_malloc_in_new_thread(2, size);
    CHECK(f.p == NULL && f.err == ENOMEM && f.left == 0,
          "no span: first malloc gave %p errno %d (hook left %ld)", f.p, f.err, f.left);
    CHECK(f.state == VT_TCACHE_LIVE, "the thread started its cache (state %u)", f.state);
    undrain_all();
    check_back_to(base, "first malloc, no span", 2);

    /* 2. A pooled cache, no unit free: the span is the first mapping and fails. */
    drain_caches();
    undrain_one_cache();
    drain_units();
    drain_partial(class_idx);
    f = first_malloc_in_new_thread(1, size);
    CHECK(f.p == NULL && f.err == ENOMEM && f.left == 0,
          "pooled cache, no span: first malloc gave %p errno %d", f.p, f.err);
    CHECK(f.state == VT_TCACHE_LIVE, "state %u", f.state);
    undrain_all();
    check_back_to(base, "first malloc, pooled cache, no span", 1);

    /* 3. No cache can be started (the metadata mapping fails): the thread is served by the
     *    shared orphan cache, which maps a span (the hook has fired). */
    drain_caches();
    drain_units();
    drain_partial(class_idx);
    f = first_malloc_in_new_thread(1, size);
    CHECK(f.p != NULL && f.left == 0, "no cache: first malloc gave %p errno %d", f.p, f.err);
    /* It succeeded, so errno is as it was, although a mapping failed on the way (found by
     * the fuzzer: a successful realloc that left errno at ENOMEM). */
    CHECK(f.err == 0, "no cache: a successful first malloc set errno to %d", f.err);
    CHECK(f.state == VT_TCACHE_UNSTARTED, "the thread has no cache of its own (state %u)", f.state);
    undrain_all();
    vt_stats_t st1;
    vt_malloc_trim(0);
    vt_stats_get(&st1);
    /* The orphan cache keeps its page (it is never handed back): at most one span more. */
    CHECK(st1.spans_mapped <= st0.spans_mapped + 1 &&
              st1.thread_caches_live == st0.thread_caches_live,
          "no cache: spans %llu -> %llu, caches %llu -> %llu", (unsigned long long)st0.spans_mapped,
          (unsigned long long)st1.spans_mapped, (unsigned long long)st0.thread_caches_live,
          (unsigned long long)st1.thread_caches_live);
}

static void first_malloc_of_a_thread_without_cache_or_span(void **state)
{
    (void)state;
    child_result_t r = run_in_child(first_malloc_without_cache_or_span, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
}

/* A realloc that shrinks a block across classes but cannot get the smaller block keeps the old
 * one ("a shrink can always stay in place") and reports success, so errno must be as it was
 * (README, "Semantics": every successful call preserves errno). Found by this suite; fixed in
 * aa4629b. White-box: no unit is free, and the 100-byte class has no page in the new thread. */
typedef struct shrink {
    void *p, *q;
    int err;
} shrink_t;

static void *shrink_thread(void *arg)
{
    shrink_t *s = arg;
    s->p = vt_malloc((size_t)2 << 20); /* above VT_LARGE_SPAN_MAX: its own mapping */
    memset(s->p, 0x6b, (size_t)2 << 20);
    arm(1); /* the 100-byte class has no page in this new thread, and no unit is free */
    errno = 0;
    s->q = vt_realloc(s->p, 100);
    s->err = errno;
    disarm();
    for (size_t i = 0; i < 100; i++)
        CHECK(((uint8_t *)s->q)[i] == 0x6b, "contents lost");
    vt_free(s->q);
    return NULL;
}

static void shrink_fallback(void *arg)
{
    (void)arg;
    drain_caches();
    undrain_one_cache(); /* the thread gets a pooled cache: no mapping for it */
    drain_units();
    drain_partial(vt_size_class(100));
    shrink_t s = {0};
    pthread_t th;
    pthread_create(&th, NULL, shrink_thread, &s);
    pthread_join(th, NULL);
    undrain_all();
    CHECK(s.q == s.p, "the shrink did not stay in place (%p -> %p)", s.p, s.q);
    CHECK(s.err == 0, "realloc succeeded (kept the block) but set errno to %d", s.err);
}

static void realloc_shrink_that_cannot_move_keeps_errno(void **state)
{
    (void)state;
    child_result_t r = run_in_child(shrink_fallback, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
}

/* ---- RLIMIT_AS: the kernel says no ---------------------------------------------------------- */

typedef struct limited {
    long headroom_mib;
} limited_t;

/* Allocates until the first NULL; returns how many succeeded. */
static size_t fill_until_null(live_set_t *s, size_t size, const char *what)
{
    size_t got = 0;
    for (;;) {
        long vm_before = vm_pages();
        errno = 0;
        void *p = vt_malloc(size);
        if (p == NULL) {
            CHECK(errno == ENOMEM, "%s: malloc(%zu) failed with errno %d", what, size, errno);
            CHECK(vm_pages() <= vm_before, "%s: the failed malloc left pages mapped", what);
            return got;
        }
        live_add(s, p, size);
        got++;
    }
}

static void *limited_worker(void *arg)
{
    limited_t *lim = arg;
    live_set_t s;
    live_init(&s, 400000);
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur =
        (rlim_t)vm_pages() * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)lim->headroom_mib << 20);
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: errno %d", errno);

    /* 1. Small blocks until the address space is full. */
    size_t small = fill_until_null(&s, 1000, "small");
    CHECK(small > 1000, "only %zu small blocks fitted", small);
    live_check_all(&s, "address space full");
    /* Every other entry point fails cleanly too. */
    errno = 0;
    CHECK(vt_malloc((size_t)64 << 20) == NULL && errno == ENOMEM, "large malloc");
    errno = 0;
    CHECK(vt_calloc(1, (size_t)64 << 20) == NULL && errno == ENOMEM, "large calloc");
    errno = 0;
    CHECK(vt_memalign((size_t)1 << 20, (size_t)64 << 20) == NULL && errno == ENOMEM, "memalign");
    void *out = (void *)0x99;
    CHECK(vt_posix_memalign(&out, (size_t)1 << 21, (size_t)64 << 20) == ENOMEM &&
              out == (void *)0x99,
          "posix_memalign");
    errno = 0;
    block_t victim = s.b[s.n / 2];
    CHECK(vt_realloc(victim.p, (size_t)64 << 20) == NULL && errno == ENOMEM, "realloc");
    check_block(&victim, "after a failed realloc under RLIMIT_AS");
    live_check_all(&s, "after the failures");

    /* 2. Frees make room without the OS: half the blocks go, as many come back. */
    size_t before = s.n;
    for (size_t i = 0; i < s.n; i += 2)
        live_free_at(&s, i);
    size_t freed = before - s.n;
    for (size_t i = 0; i < freed; i++) {
        void *p = vt_malloc(1000);
        CHECK(p != NULL, "malloc after frees failed at %zu of %zu (errno %d)", i, freed, errno);
        live_add(&s, p, 1000);
    }
    live_check_all(&s, "after refilling the freed blocks");
    live_free_all(&s);
    vt_malloc_trim(0);

    /* 3. Large blocks until full, then realloc growth until full. */
    size_t large = fill_until_null(&s, (size_t)3 << 20, "large");
    CHECK(large >= 4, "only %zu large blocks fitted", large);
    live_check_all(&s, "large blocks");
    live_free_all(&s);
    void *p = vt_malloc((size_t)1 << 20);
    CHECK(p != NULL, "1 MiB after freeing everything");
    block_t grow = {p, (size_t)1 << 20, 4242};
    mark(&grow);
    for (;;) {
        errno = 0;
        void *q = vt_realloc(grow.p, grow.size * 2);
        if (q == NULL) {
            CHECK(errno == ENOMEM, "realloc growth failed with errno %d", errno);
            check_block(&grow, "after a failed growth");
            break;
        }
        CHECK(pattern_check(q, 4096, grow.id) == 4096, "growth lost the head");
        grow.p = q;
        grow.size *= 2;
        mark(&grow);
    }
    vt_free(grow.p);

    /* 4. Everything works again. */
    void *again[4] = {vt_malloc(100), vt_malloc(100000), vt_malloc((size_t)8 << 20),
                      vt_memalign((size_t)1 << 20, (size_t)2 << 20)};
    for (int i = 0; i < 4; i++) {
        CHECK(again[i] != NULL, "allocation %d after recovery: errno %d", i, errno);
        vt_free(again[i]);
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_AS, &rl);
    live_destroy(&s);
    return NULL;
}

static void *warm_up_thread(void *arg)
{
    vt_free(vt_malloc(10));
    return arg;
}

static void address_space_limit(void *arg)
{
    (void)arg;
    pthread_t th;
    limited_t lim = {96};
    /* a warm-up thread: glibc keeps its stack for the next one */
    pthread_create(&th, NULL, warm_up_thread, NULL);
    pthread_join(th, NULL);
    figures_t base = settle();
    /* In a thread of its own, so its cache is handed back when it exits. */
    CHECK(pthread_create(&th, NULL, limited_worker, &lim) == 0, "pthread_create");
    pthread_join(th, NULL);
    check_back_to(base, "RLIMIT_AS", 0);
}

static void rlimit_as_in_a_child(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* AddressSanitizer's shadow memory does not live under an address-space limit */
#endif
    child_result_t r = run_in_child(address_space_limit, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_malloc_of_a_thread_without_cache_or_span),
        cmocka_unit_test(refill_of_a_thread_cache),
        cmocka_unit_test(large_blocks),
        cmocka_unit_test(realloc_of_large_blocks),
        cmocka_unit_test(aligned_large_blocks),
        cmocka_unit_test(large_table_growth),
        cmocka_unit_test(many_threads_start_while_mappings_fail),
        cmocka_unit_test(every_path_with_the_malloc_backing),
        cmocka_unit_test(realloc_shrink_that_cannot_move_keeps_errno),
        cmocka_unit_test(rlimit_as_in_a_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
