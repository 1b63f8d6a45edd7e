/*
 * soak.c: a long-running, server-shaped load for vtmalloc and its peers. Does the footprint stay
 * bounded, and does it fall back when the load stops?
 *
 * Why it exists. Point (h) of the 2007 review of VT against Tcl's zippy allocator
 * (docs/history.md) is that servers on zippy grew until they were restarted,
 * and that reading memory once after the threads have joined cannot show it. What shows it is a
 * load that runs for a long time with a bounded, roughly constant amount of live data while the
 * size mix shifts and comes back: an allocator that never reuses memory across size classes (or
 * splits big blocks and never coalesces them) grows from cycle to cycle; one that reuses and
 * returns memory stays flat and falls back when the load stops.
 *
 * The load (bench/SOAK.md has the reasons):
 *   - A pool of -t connection threads. Each connection thread opens a connection (allocates some
 *     connection state), serves a number of requests, frees its state and exits; the main thread
 *     joins it and starts the next connection in its place. So threads are created and destroyed
 *     in waves all the time, as in NaviServer/AOLserver with connection-thread recycling.
 *   - A request allocates a burst of small objects (some freed a few allocations later, the rest
 *     at the end of the request), a few buffers grown with realloc, and single-shot blocks; it
 *     frees most of it at the end and hands some objects (and always one log record) to a
 *     long-lived logger/cache thread, which frees them later: it keeps the newest -k objects and at
 *     most -K MiB, oldest out first. Live data is therefore bounded and, phase by phase, constant.
 *   - Phases: A small-object heavy (16-256 B), B buffer heavy (1-64 KiB, realloc growth), C large
 *     mixed (up to 1 MiB); a cycle is A, B, C, and -y cycles run one after the other. At the end of
 *     each phase the pool drains (every connection closes) and the logger frees down to its
 *     bounds before the next phase starts, so the RSS read there sees exactly the logger's backlog
 *     at its bounds as live data.
 *   - After the last cycle: the logger drains its backlog, the process idles for -i ms, then one
 *     more connection arrives: a short-lived thread does one small malloc/free and exits (an
 *     allocator that returns memory on activity gets its chance, as it would in a server that
 *     is quiet but not dead), and RSS is read: "RSS after stop"; then malloc_trim(0) and RSS
 *     again, reported separately.
 *   - A sampler thread reads VmRSS every -S ms, with the live bytes the benchmark itself tracks.
 *
 * How it stays fair. Every random decision comes from splitmix64 streams that depend only on the
 * seed, the phase (cycle x phase), and the connection's number within the phase; which thread
 * runs a connection does not matter. So every allocator serves the same connections, requests,
 * sizes, realloc steps, frees and hand-offs. The order in which concurrent connections reach the
 * logger depends on scheduling, so its backlog can differ by a few objects during a phase; at
 * every phase end it is brought to its bounds, where the live bytes are the same for every
 * allocator within 64 KiB (the largest object handed to it). The benchmark's own tables come from
 * mmap, are faulted in before the load starts, and are the same size for every allocator.
 *
 * Build (bench/run-soak does this):
 *   cc -O2 -std=c11 -pthread -fno-builtin soak.c -o soak                malloc/free, any LD_PRELOAD
 *   cc -O2 -std=c11 -pthread -fno-builtin -DSOAK_ZIPPY -I/usr/include/tcl8.6 soak.c -ltcl8.6
 *                                                          Tcl_Alloc/Tcl_Realloc/Tcl_Free (zippy)
 *
 * Output: human lines (unless -q), PHASE lines (one per phase end), then one RESULT line of
 * key=value pairs (see report()); -o FILE writes the RSS time series as CSV.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * The allocator under test: seam.h names it (Tcl_Alloc/Tcl_Realloc/Tcl_Free with -DSOAK_ZIPPY,
 * malloc/realloc/free otherwise) and holds what memtest and soak share: die(), bookkeeping memory,
 * the random numbers, the /proc readers, the options -s -a -m -q -v -h and the check of which
 * allocator serves the program.
 * ---------------------------------------------------------------------------------------------- */

#define BENCH_NAME "soak"
#if defined(SOAK_ZIPPY)
#define BENCH_ZIPPY
#endif
#include "seam.h"

/* ------------------------------------------------------------------------------------------------
 * Progress messages and bookkeeping memory. Messages are formatted on the stack and written with
 * write(2): a failure may come from the allocator under test, and stdio may need that allocator.
 * ---------------------------------------------------------------------------------------------- */

/* A progress line on stderr (-v), formatted on the stack: it runs while the load does. */
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof buf - 1) {
        len = (int)sizeof buf - 1;
    }
    if (len > 0 && write(2, buf, (size_t)len) < 0) {
        /* Progress is optional. */
    }
}

/* Bookkeeping mappings written now, so that they are resident before the load starts and the
 * benchmark's share of RSS is constant while it runs. */
static void *bk_map_touched(size_t bytes)
{
    void *ptr = bk_map(bytes);
    memset(ptr, 0, bytes);
    return ptr;
}

/* ------------------------------------------------------------------------------------------------
 * Random numbers (rand.h has the generator and the streams). Drawn during the load: the draws are
 * the same for every allocator, and cost a few ns against the hundreds of ns of allocator work per
 * object.
 * ---------------------------------------------------------------------------------------------- */

/* True with probability permille / 1000. */
static inline bool rng_permille(uint64_t *state, uint32_t permille)
{
    return rng_below(state, 1000) < permille;
}

/*
 * Log-uniform by octave in [lo, hi]: an octave [2^k, 2^(k+1)) that meets the range is chosen
 * uniformly, then a size uniformly within it. Each power of two is as likely as the next, as in a
 * log-uniform distribution, without floating point.
 */
static inline uint32_t rng_logsize(uint64_t *state, uint32_t lo, uint32_t hi)
{
    unsigned klo = 31u - (unsigned)__builtin_clz(lo), khi = 31u - (unsigned)__builtin_clz(hi);
    unsigned k = klo + rng_below(state, khi - klo + 1);
    uint32_t a = (uint32_t)1 << k, b = k == 31 ? UINT32_MAX : ((uint32_t)2 << k) - 1;
    a = a < lo ? lo : a;
    b = b > hi ? hi : b;
    return rng_range(state, a, b);
}

/* ------------------------------------------------------------------------------------------------
 * /proc readers and clocks; open/read into stack buffers, so they allocate nothing.
 * ---------------------------------------------------------------------------------------------- */

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------------------------------
 * The phases. A cycle is A, B, C. Sizes are log-uniform by octave within each range.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *what;
    uint32_t objs_min, objs_max;   /* small objects per request */
    uint32_t obj_min, obj_max;     /* their sizes, bytes */
    uint32_t bufs_min, bufs_max;   /* buffers per request, grown with realloc */
    uint32_t buf_start;            /* a buffer's first size; each step doubles it (capped) */
    uint32_t buf_min, buf_max;     /* a buffer's final size */
    uint32_t blobs_min, blobs_max; /* single-shot blocks per request (no realloc) */
    uint32_t blob_min, blob_max;   /* their sizes */
    uint32_t temp_pm;              /* objects freed 1..8 allocations later, per mille */
    uint32_t log_obj_pm;           /* objects handed to the logger, per mille */
    uint32_t log_buf_pm;           /* buffers and blobs of at most LOG_ITEM_MAX handed to it */
    uint32_t requests;             /* requests per connection, mean (-r scales it) */
} phase_t;

#define PHASES       3
#define LOG_ITEM_MAX (64u * 1024) /* nothing larger goes to the logger: bounds its jitter */

static const phase_t phases[PHASES] = {
    {"A", "small objects 16-256 B", 100, 300, 16, 256, 1, 3, 64, 256, 4096, 0, 0, 0, 0, 400, 20,
     100, 1000},
    {"B", "buffers 1-64 KiB with realloc growth", 20, 60, 16, 256, 4, 10, 1024, 1024, 65536, 0, 2,
     1024, 65536, 300, 10, 60, 800},
    {"C", "large mixed up to 1 MiB", 30, 100, 16, 1024, 1, 3, 4096, 16384, 1048576, 1, 3, 4096,
     1048576, 300, 10, 200, 100},
};

#define MAX_OBJS    300
#define MAX_BUFS    10
#define MAX_BLOBS   3
#define MAX_ITEMS   (MAX_OBJS + MAX_BUFS + MAX_BLOBS + 1) /* + the log record */
#define CONN_OBJS   16                                    /* connection state: objects ... */
#define CONN_ITEMS  (CONN_OBJS + 1)                       /* ... and its read buffer */
#define TEMP_DEPTH  8                                     /* temporaries pending at most */
#define MAX_SLOTS   256
#define LOG_BATCH   256 /* objects the logger frees per trip to its lock */
#define MAX_SAMPLES 16384

/* ------------------------------------------------------------------------------------------------
 * Blocks. Each has a tag byte, written at its first byte, one byte in every 4 KiB and its last
 * byte: every page of the block becomes resident, as in a program that uses its memory. The first
 * and last bytes are checked before a free and around a realloc (which must have copied them); a
 * mismatch means the allocator handed out overlapping memory, and the run stops.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    unsigned char *ptr; /* NULL once freed or handed on */
    uint32_t size;      /* bytes requested; for a buffer, its current size */
    uint32_t target;    /* buffers: final size; others: size */
    uint8_t tag;        /* never 0, so that memory that was not copied shows */
    uint8_t fate;       /* FATE_* */
} item_t;

enum { FATE_REQUEST, FATE_TEMP, FATE_LOG };

/* Writes the tag into [from, to): the first byte (if from is 0), every 4 KiB, and the last. */
static inline void touch(unsigned char *p, uint32_t from, uint32_t to, uint8_t tag)
{
    for (uint32_t off = (from + 4095u) & ~4095u; off < to; off += 4096) {
        p[off] = tag;
    }
    p[to - 1] = tag;
}

static inline void check(const item_t *it)
{
    if (it->ptr[0] != it->tag || it->ptr[it->size - 1] != it->tag) {
        die("block %p of %u bytes was overwritten while live (expected 0x%02x, found "
            "0x%02x/0x%02x): the allocator handed out overlapping memory",
            (void *)it->ptr, it->size, it->tag, it->ptr[0], it->ptr[it->size - 1]);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Connection slots: the pool. Each slot's tables are mapped before the load; the thread that
 * runs a connection in the slot is the only writer of its fields (the sampler reads `live` and
 * `requests_done`; the main thread reads the counters after joining the thread).
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    void *ptr;
    uint32_t size;
    uint8_t tag;
} log_entry_t;

typedef struct {
    _Alignas(64) pthread_t tid;
    unsigned index;
    const phase_t *phase; /* set by the main thread before the thread starts */
    uint64_t rng;         /* the connection's stream */
    uint32_t requests;    /* mean requests for this connection (scaled) */
    item_t items[MAX_ITEMS];
    item_t conn[CONN_ITEMS];
    uint32_t order[MAX_ITEMS];
    uint32_t temps[TEMP_DEPTH];
    log_entry_t batch[MAX_ITEMS];
    int64_t live_plain;                /* bytes requested and held by this slot's thread */
    _Atomic int64_t live;              /* copy of live_plain for the sampler */
    _Atomic uint64_t requests_done;    /* for the sampler's progress column */
    uint64_t mallocs, frees, reallocs; /* all connections run in this slot */
} slot_t;

static inline void live_add(slot_t *s, int64_t delta)
{
    s->live_plain += delta;
    /* Relaxed: only this thread writes it; the sampler wants a recent value, not an ordering. */
    atomic_store_explicit(&s->live, s->live_plain, memory_order_relaxed);
}

static inline uint8_t new_tag(uint64_t *rng)
{
    return (uint8_t)(1 + rng_below(rng, 255));
}

static unsigned char *alloc_block(slot_t *s, uint32_t size, uint8_t tag)
{
    unsigned char *p = bench_malloc(size);
    if (p == NULL) {
        die("malloc(%u) returned NULL", size);
    }
    touch(p, 0, size, tag);
    s->mallocs++;
    live_add(s, size);
    return p;
}

static void free_item(slot_t *s, item_t *it)
{
    check(it);
    bench_free(it->ptr);
    it->ptr = NULL;
    s->frees++;
    live_add(s, -(int64_t)it->size);
}

/* One realloc step of a buffer: double its size, up to its final size. */
static void grow_item(slot_t *s, item_t *it)
{
    uint32_t old = it->size;
    uint32_t want = old >= it->target / 2 ? it->target : old * 2;
    check(it);
    unsigned char *p = bench_realloc(it->ptr, want);
    if (p == NULL) {
        die("realloc(%u -> %u) returned NULL", old, want);
    }
    if (p[0] != it->tag || p[old - 1] != it->tag) {
        die("realloc(%u -> %u) did not keep the contents (expected 0x%02x, found 0x%02x/0x%02x)",
            old, want, it->tag, p[0], p[old - 1]);
    }
    touch(p, old, want, it->tag);
    it->ptr = p;
    it->size = want;
    s->reallocs++;
    live_add(s, (int64_t)want - old);
}

static void new_item(slot_t *s, item_t *it, uint32_t size, uint32_t target, uint8_t fate)
{
    it->tag = new_tag(&s->rng);
    it->size = size;
    it->target = target;
    it->fate = fate;
    it->ptr = alloc_block(s, size, it->tag);
}

/* ------------------------------------------------------------------------------------------------
 * The logger/cache thread: a FIFO of objects handed over by connections, behind one mutex. It
 * keeps the newest keep_count objects and at most keep_bytes; it frees the oldest beyond that (in
 * batches, outside the lock). A connection waits when the FIFO is full or far over its bytes
 * (back-pressure, so live data stays bounded whatever the scheduler does).
 * ---------------------------------------------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* logger: work to do, drain, stop */
    pthread_cond_t room; /* connections: room in the FIFO */
    pthread_cond_t idle; /* main: the drain is over */
    log_entry_t *ring;   /* cap entries, from bk_map */
    size_t cap, head, count;
    uint64_t bytes;      /* bytes in the FIFO (lock) */
    size_t keep_count;   /* -k */
    uint64_t keep_bytes; /* -K */
    size_t slack_count;  /* hysteresis: wake the logger a little over the bounds */
    uint64_t slack_bytes;
    bool drain, settle, stop, busy;    /* lock */
    _Atomic uint64_t live;             /* bytes handed over and not yet freed, for the sampler */
    log_entry_t *batch;                /* logger-private */
    uint64_t mallocs, frees, reallocs; /* the logger's own calls; read after it is joined */
    uint64_t handed;                   /* objects received (lock) */
} lg = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
        .room = PTHREAD_COND_INITIALIZER,
        .idle = PTHREAD_COND_INITIALIZER};

/* Whether the FIFO holds more than the logger keeps. Lock held. */
static bool logger_over(void)
{
    return lg.count > lg.keep_count || lg.bytes > lg.keep_bytes;
}

/* Whether the logger has something to free. Lock held. */
static bool logger_due(void)
{
    return lg.count > 0 &&
           (lg.drain || (lg.settle && logger_over()) || lg.count > lg.keep_count + lg.slack_count ||
            lg.bytes > lg.keep_bytes + lg.slack_bytes);
}

/* A connection hands over n objects at once. */
static void logger_push(const log_entry_t *batch, size_t n, uint64_t bytes)
{
    pthread_mutex_lock(&lg.lock);
    while (lg.count > 0 &&
           (lg.count + n > lg.cap || lg.bytes > lg.keep_bytes + 4 * lg.slack_bytes)) {
        pthread_cond_wait(&lg.room, &lg.lock);
    }
    for (size_t i = 0; i < n; i++) {
        lg.ring[(lg.head + lg.count) % lg.cap] = batch[i];
        lg.count++;
    }
    lg.bytes += bytes;
    lg.handed += n;
    atomic_fetch_add_explicit(&lg.live, bytes, memory_order_relaxed);
    if (logger_due()) {
        pthread_cond_signal(&lg.wake);
    }
    pthread_mutex_unlock(&lg.lock);
}

/* Free one handed-over object, after checking it like any other block. */
static void logger_free(const log_entry_t *e)
{
    item_t it = {.ptr = e->ptr, .size = e->size, .tag = e->tag};
    check(&it);
    bench_free(e->ptr);
    lg.frees++;
}

/*
 * What a logger does besides freeing: per batch it formats a line in a buffer that grows with
 * realloc (96, 384, 1536 bytes) and throws it away. A little activity of its own, on its own
 * thread, all through the allocator under test.
 */
static void logger_format(uint64_t *rng)
{
    item_t it = {.size = 96, .tag = new_tag(rng)};
    it.ptr = bench_malloc(it.size);
    if (it.ptr == NULL) {
        die("malloc(%u) returned NULL in the logger", it.size);
    }
    touch(it.ptr, 0, it.size, it.tag);
    lg.mallocs++;
    for (uint32_t want = 384; want <= 1536; want *= 4) {
        unsigned char *p = bench_realloc(it.ptr, want);
        if (p == NULL) {
            die("realloc(%u -> %u) returned NULL in the logger", it.size, want);
        }
        if (p[0] != it.tag || p[it.size - 1] != it.tag) {
            die("realloc(%u -> %u) in the logger did not keep the contents", it.size, want);
        }
        touch(p, it.size, want, it.tag);
        it.ptr = p;
        it.size = want;
        lg.reallocs++;
    }
    check(&it);
    bench_free(it.ptr);
    lg.frees++;
}

static void *logger_main(void *arg)
{
    uint64_t rng = *(const uint64_t *)arg;
    pthread_mutex_lock(&lg.lock);
    for (;;) {
        while (!lg.stop && !logger_due()) {
            pthread_cond_wait(&lg.wake, &lg.lock);
        }
        if (!logger_due()) { /* stop, and nothing left */
            break;
        }
        size_t n = 0;
        uint64_t bytes = 0;
        while (n < LOG_BATCH && lg.count > 0 && (lg.drain || logger_over())) {
            log_entry_t e = lg.ring[lg.head];
            lg.head = (lg.head + 1) % lg.cap;
            lg.count--;
            lg.bytes -= e.size;
            bytes += e.size;
            lg.batch[n++] = e;
        }
        lg.busy = true;
        pthread_cond_broadcast(&lg.room);
        pthread_mutex_unlock(&lg.lock);

        for (size_t i = 0; i < n; i++) {
            logger_free(&lg.batch[i]);
        }
        atomic_fetch_sub_explicit(&lg.live, bytes, memory_order_relaxed);
        logger_format(&rng);

        pthread_mutex_lock(&lg.lock);
        lg.busy = false;
        if ((lg.drain && lg.count == 0) || (lg.settle && !logger_over())) {
            pthread_cond_broadcast(&lg.idle);
        }
    }
    pthread_mutex_unlock(&lg.lock);
    return NULL;
}

/*
 * The main thread, at the end of a phase (no connection open): let the logger free down to its
 * bounds, so that the live data at every phase end is the backlog at its bounds, the same for every
 * allocator within the largest object it may hold (LOG_ITEM_MAX).
 */
static void logger_settle(void)
{
    pthread_mutex_lock(&lg.lock);
    lg.settle = true;
    pthread_cond_signal(&lg.wake);
    while (logger_over() || lg.busy) {
        pthread_cond_wait(&lg.idle, &lg.lock);
    }
    lg.settle = false;
    pthread_mutex_unlock(&lg.lock);
}

/* The main thread: free the whole backlog now and wait until it is done. */
static void logger_drain(void)
{
    pthread_mutex_lock(&lg.lock);
    lg.drain = true;
    pthread_cond_signal(&lg.wake);
    while (lg.count > 0 || lg.busy) {
        pthread_cond_wait(&lg.idle, &lg.lock);
    }
    lg.drain = false;
    pthread_mutex_unlock(&lg.lock);
}

/* ------------------------------------------------------------------------------------------------
 * A connection and its requests.
 * ---------------------------------------------------------------------------------------------- */

/* Free the remaining items of a list: in reverse order of allocation, or shuffled (per call). */
static void free_rest(slot_t *s, item_t *items, uint32_t n)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (items[i].ptr != NULL) {
            s->order[m++] = i;
        }
    }
    if (rng_next(&s->rng) & 1) {
        for (uint32_t i = m; i > 1; i--) { /* Fisher-Yates */
            uint32_t j = rng_below(&s->rng, i), t = s->order[i - 1];
            s->order[i - 1] = s->order[j];
            s->order[j] = t;
        }
        for (uint32_t i = 0; i < m; i++) {
            free_item(s, &items[s->order[i]]);
        }
    } else {
        for (uint32_t i = m; i > 0; i--) {
            free_item(s, &items[s->order[i - 1]]);
        }
    }
}

/* Grows every buffer that has not reached its final size by one step. */
static void grow_buffers(slot_t *s, item_t *bufs, uint32_t nbufs)
{
    for (uint32_t b = 0; b < nbufs; b++) {
        if (bufs[b].size < bufs[b].target) {
            grow_item(s, &bufs[b]);
        }
    }
}

/* The items of a request whose fate is the logger, handed over in one batch. */
static void hand_to_logger(slot_t *s, item_t *items, uint32_t n)
{
    size_t nlog = 0;
    uint64_t log_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->ptr != NULL && it->fate == FATE_LOG) {
            check(it);
            s->batch[nlog++] = (log_entry_t){.ptr = it->ptr, .size = it->size, .tag = it->tag};
            log_bytes += it->size;
            live_add(s, -(int64_t)it->size);
            it->ptr = NULL;
        }
    }
    logger_push(s->batch, nlog, log_bytes);
}

/*
 * One request: buffers at their first size; then the burst of objects, with a realloc step of
 * every buffer spread over the burst and the blobs at random points in it; temporaries are freed
 * a few allocations after they were made. At the end the buffers reach their final size, a log
 * record is written, the objects chosen for the logger are handed over in one batch, and the rest
 * is freed.
 */
static void serve_request(slot_t *s)
{
    const phase_t *ph = s->phase;
    uint64_t *rng = &s->rng;
    uint32_t nobjs = rng_range(rng, ph->objs_min, ph->objs_max);
    uint32_t nbufs = rng_range(rng, ph->bufs_min, ph->bufs_max);
    uint32_t nblobs = rng_range(rng, ph->blobs_min, ph->blobs_max);
    uint32_t depth = rng_range(rng, 1, TEMP_DEPTH), ntemps = 0, n = 0;
    item_t *items = s->items;

    /* Buffers first: items[0 .. nbufs). */
    for (uint32_t b = 0; b < nbufs; b++) {
        uint32_t target = rng_logsize(rng, ph->buf_min, ph->buf_max);
        uint32_t start = ph->buf_start < target ? ph->buf_start : target;
        bool to_log = target <= LOG_ITEM_MAX && rng_permille(rng, ph->log_buf_pm);
        new_item(s, &items[n++], start, target, to_log ? FATE_LOG : FATE_REQUEST);
    }
    /* The number of doubling steps of the largest possible buffer, spread over the burst. */
    uint32_t steps = 0;
    for (uint32_t sz = ph->buf_start; sz < ph->buf_max; sz *= 2) {
        steps++;
    }
    uint32_t grow_every = nobjs / (steps + 1) + 1;
    uint32_t blob_at[MAX_BLOBS];
    for (uint32_t k = 0; k < nblobs; k++) {
        blob_at[k] = rng_below(rng, nobjs);
    }

    for (uint32_t i = 0; i < nobjs; i++) {
        uint32_t size = rng_logsize(rng, ph->obj_min, ph->obj_max);
        uint32_t r = rng_below(rng, 1000);
        uint8_t fate = r < ph->temp_pm                    ? FATE_TEMP
                       : r < ph->temp_pm + ph->log_obj_pm ? FATE_LOG
                                                          : FATE_REQUEST;
        uint32_t idx = n++;
        new_item(s, &items[idx], size, size, fate);
        if (fate == FATE_TEMP) {
            if (ntemps == depth) { /* the oldest pending temporary dies */
                free_item(s, &items[s->temps[0]]);
                memmove(s->temps, s->temps + 1, (ntemps - 1) * sizeof s->temps[0]);
                ntemps--;
            }
            s->temps[ntemps++] = idx;
        }
        if (i % grow_every == grow_every - 1) {
            grow_buffers(s, items, nbufs);
        }
        for (uint32_t k = 0; k < nblobs; k++) {
            if (blob_at[k] == i) {
                uint32_t bsize = rng_logsize(rng, ph->blob_min, ph->blob_max);
                bool to_log = bsize <= LOG_ITEM_MAX && rng_permille(rng, ph->log_buf_pm);
                new_item(s, &items[n++], bsize, bsize, to_log ? FATE_LOG : FATE_REQUEST);
            }
        }
    }
    for (bool more = true; more;) {
        more = false;
        for (uint32_t b = 0; b < nbufs; b++) {
            more |= items[b].size < items[b].target;
        }
        grow_buffers(s, items, nbufs);
    }
    for (uint32_t t = 0; t < ntemps; t++) {
        free_item(s, &items[s->temps[t]]);
    }
    /* The access-log record: every request writes one. */
    uint32_t rec = rng_range(rng, 64, 256);
    new_item(s, &items[n++], rec, rec, FATE_LOG);

    hand_to_logger(s, items, n);
    free_rest(s, items, n);
}

/* Signalled by a connection thread as its last act; the main thread waits on it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ring[MAX_SLOTS];
    unsigned head, count;
} done = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* The connection that arrives after the load has stopped (see "After the last cycle"). */
static void *poke_main(void *arg)
{
    (void)arg;
    item_t poke = {.size = 64, .tag = 0x5A};
    poke.ptr = bench_malloc(poke.size);
    if (poke.ptr == NULL) {
        die("malloc(%u) returned NULL", poke.size);
    }
    touch(poke.ptr, 0, poke.size, poke.tag);
    check(&poke);
    bench_free(poke.ptr);
    return NULL;
}

static void *conn_main(void *arg)
{
    slot_t *s = arg;
    uint64_t *rng = &s->rng;
    uint32_t requests = s->requests / 2 + rng_below(rng, s->requests + 1); /* mean +- 50 % */
    requests = requests > 0 ? requests : 1;

    /* Open: connection state (a few small structs and a read buffer). */
    uint32_t nconn = rng_range(rng, CONN_OBJS / 2, CONN_OBJS);
    for (uint32_t i = 0; i < nconn; i++) {
        uint32_t size = rng_logsize(rng, 32, 512);
        new_item(s, &s->conn[i], size, size, FATE_REQUEST);
    }
    uint32_t rbuf = rng_range(rng, 4096, 16384);
    new_item(s, &s->conn[nconn], rbuf, rbuf, FATE_REQUEST);

    for (uint32_t r = 0; r < requests; r++) {
        serve_request(s);
        atomic_store_explicit(&s->requests_done,
                              atomic_load_explicit(&s->requests_done, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    free_rest(s, s->conn, nconn + 1); /* close */

    pthread_mutex_lock(&done.lock);
    done.ring[(done.head + done.count) % MAX_SLOTS] = s->index;
    done.count++;
    pthread_cond_signal(&done.cond);
    pthread_mutex_unlock(&done.lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * The sampler: VmRSS, live bytes and progress every interval. When its table is full it keeps
 * every other sample and doubles the interval, so any run length fits in MAX_SAMPLES.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    float t_s;         /* since the sampler started, a few ms before the load */
    uint32_t rss_kb;   /* VmRSS */
    uint32_t live_kb;  /* bytes requested and not freed, as the benchmark counts them */
    uint32_t requests; /* requests served so far */
    int32_t stage;     /* cycle * PHASES + phase during the load; STAGE_* around it */
} sample_t;

enum { STAGE_BEFORE = -1, STAGE_DRAIN = -2, STAGE_IDLE = -3, STAGE_AFTER = -4 };

static struct {
    sample_t *buf;
    size_t n;
    long interval_ns;
    long t0_ns;
    _Atomic int stage;
    _Atomic bool stop;
    slot_t *slots;
    unsigned nslots;
} smp;

static uint64_t live_bytes(void)
{
    int64_t live = (int64_t)atomic_load_explicit(&lg.live, memory_order_relaxed);
    for (unsigned i = 0; i < smp.nslots; i++) {
        live += atomic_load_explicit(&smp.slots[i].live, memory_order_relaxed);
    }
    return live > 0 ? (uint64_t)live : 0;
}

static uint64_t requests_done(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < smp.nslots; i++) {
        n += atomic_load_explicit(&smp.slots[i].requests_done, memory_order_relaxed);
    }
    return n;
}

static void take_sample(void)
{
    if (smp.n == MAX_SAMPLES) {
        for (size_t i = 0; i < MAX_SAMPLES / 2; i++) {
            smp.buf[i] = smp.buf[2 * i];
        }
        smp.n = MAX_SAMPLES / 2;
        smp.interval_ns *= 2;
    }
    long rss = status_kb("VmRSS");
    smp.buf[smp.n++] = (sample_t){
        .t_s = (float)((double)(now_ns() - smp.t0_ns) / 1e9),
        .rss_kb = rss > 0 ? (uint32_t)rss : 0,
        .live_kb = (uint32_t)(live_bytes() / 1024),
        .requests = (uint32_t)requests_done(),
        .stage = atomic_load_explicit(&smp.stage, memory_order_relaxed),
    };
}

static void *sampler_main(void *arg)
{
    (void)arg;
    long next = now_ns();
    while (!atomic_load_explicit(&smp.stop, memory_order_acquire)) {
        take_sample();
        next += smp.interval_ns;
        long wait = next - now_ns();
        if (wait < 0) { /* fell behind (a loaded machine): no burst of late samples */
            next = now_ns();
            continue;
        }
        struct timespec ts = {.tv_sec = wait / 1000000000L, .tv_nsec = wait % 1000000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Options.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    bench_options_t common; /* -s -a -m -q, and -v: progress on stderr */
    const char *preset;     /* -p */
    unsigned threads;       /* -t: connection threads alive at once */
    unsigned cycles;        /* -y */
    uint32_t conns;         /* -c: connections per phase */
    uint32_t req_pct;       /* -r: requests per connection, percent of the phase's mean */
    uint32_t keep;          /* -k: logger backlog, objects */
    uint32_t keep_mib;      /* -K: logger backlog, MiB */
    uint32_t idle_ms;       /* -i */
    uint32_t sample_ms;     /* -S */
    const char *csv;        /* -o */
    double max_growth;      /* -G: fail when growth_last exceeds it (0: no check) */
    double max_after;       /* -F: fail when RSS after stop exceeds this fraction of peak RSS */
    bool alloc_stats;       /* -V */
} options_t;

/* Work per preset; every value can be changed by its own option, in any order. */
static const struct {
    const char *name;
    unsigned cycles;
    uint32_t conns, req_pct, idle_ms;
} presets[] = {
    {"long", 10, 200, 100, 2000},
    {"quick", 3, 100, 100, 2000},
    {"tiny", 1, 4, 1, 0}, /* the runner's check that the allocator is in the process */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: soak [-p long|quick|tiny] [-t threads] [-y cycles] [-c conns] [-r pct]\n"
            "            [-k objects] [-K MiB] [-i idle-ms] [-S sample-ms] [-s seed] [-a label]\n"
            "            [-m substring] [-o series.csv] [-G growth] [-F fraction] [-q] [-v] [-V]\n"
            "  -p  work preset: long (default: 10 cycles, 96 connections per phase), quick\n"
            "      (3 cycles, 48), tiny (a check run); the options below override it\n"
            "  -t  connection threads alive at once (default 8); each serves one connection\n"
            "      of about -r %% of the phase's mean requests, then exits and is replaced\n"
            "  -y  cycles of phases A (small objects), B (buffers), C (large mixed)\n"
            "  -c  connections per phase; -r requests per connection, %% of the phase mean\n"
            "  -k  logger backlog: objects kept (default 20000); -K MiB kept (default 32)\n"
            "  -i  idle ms after the load, before the poke and the RSS-after-stop reading\n"
            "  -S  RSS sample interval, ms (default 50); -s seed (default 1)\n"
            "  -a  allocator label for the output; -q only PHASE/RESULT lines; -v progress\n"
            "  -V  at the end of every phase, the allocator's own statistics on stderr (when\n"
            "      it exports vt_stats_print, as vtmalloc does)\n"
            "  -m  exit with status 3 unless the library whose name contains this is mapped\n"
            "      and serves the benchmark's malloc (or Tcl_Alloc)\n"
            "  -o  write the RSS time series to this CSV file\n"
            "  -G  exit 1 if the growth ratio RSS(end of last cycle)/RSS(end of cycle 1)\n"
            "      exceeds this; -F exit 1 if RSS after stop exceeds this fraction of peak RSS\n");
}

static double parse_ratio(const char *arg, char opt)
{
    char *end;
    errno = 0;
    double value = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(value > 0) || value > 1000) {
        fprintf(stderr, "soak: -%c needs a positive number, not '%s'\n", opt, arg);
        exit(2);
    }
    return value;
}

#define SOAK_OPTIONS "p:t:y:c:r:k:K:i:S:o:G:F:V" BENCH_OPTIONS

/* The preset (-p, wherever it is on the command line) sets the work; the other options, parsed
 * after it, override it in any order. */
static void apply_preset(int argc, char **argv, options_t *o)
{
    int c;
    opterr = 0;
    while ((c = getopt(argc, argv, SOAK_OPTIONS)) != -1) {
        if (c == 'p') {
            o->preset = optarg;
        }
    }
    optind = 1;
    opterr = 1;
    size_t npresets = sizeof presets / sizeof presets[0], p = 0;
    while (p < npresets && strcmp(presets[p].name, o->preset) != 0) {
        p++;
    }
    if (p == npresets) {
        fprintf(stderr, "soak: unknown preset '%s'\n", o->preset);
        exit(2);
    }
    o->cycles = presets[p].cycles;
    o->conns = presets[p].conns;
    o->req_pct = presets[p].req_pct;
    o->idle_ms = presets[p].idle_ms;
}

static void parse_options(int argc, char **argv, options_t *o)
{
    *o = (options_t){.common = bench_options_default(),
                     .preset = "long",
                     .threads = 8,
                     .keep = 20000,
                     .keep_mib = 32,
                     .sample_ms = 50};
    apply_preset(argc, argv, o);
    int c;
    while ((c = getopt(argc, argv, SOAK_OPTIONS)) != -1) {
        switch (c) {
        case 'p':
            break;
        case 't':
            o->threads = (unsigned)parse_u64(optarg, 't', 1, MAX_SLOTS);
            break;
        case 'y':
            o->cycles = (unsigned)parse_u64(optarg, 'y', 1, 1000);
            break;
        case 'c':
            o->conns = (uint32_t)parse_u64(optarg, 'c', 1, 1u << 24);
            break;
        case 'r':
            o->req_pct = (uint32_t)parse_u64(optarg, 'r', 1, 100000);
            break;
        case 'k':
            o->keep = (uint32_t)parse_u64(optarg, 'k', 1, 1u << 24);
            break;
        case 'K':
            o->keep_mib = (uint32_t)parse_u64(optarg, 'K', 1, 1u << 16);
            break;
        case 'i':
            o->idle_ms = (uint32_t)parse_u64(optarg, 'i', 0, 3600000);
            break;
        case 'S':
            o->sample_ms = (uint32_t)parse_u64(optarg, 'S', 1, 60000);
            break;
        case 'o':
            o->csv = optarg;
            break;
        case 'G':
            o->max_growth = parse_ratio(optarg, 'G');
            break;
        case 'F':
            o->max_after = parse_ratio(optarg, 'F');
            break;
        case 'V':
            o->alloc_stats = true;
            break;
        default: /* -s -a -m -q -v -h, or a mistake */
            bench_option(c, optarg, &o->common, usage);
            break;
        }
    }
    bench_options_end(argc, argv, &o->common, " =,:"); /* ':' separates the cycles' figures */
}

/* ------------------------------------------------------------------------------------------------
 * Running.
 * ---------------------------------------------------------------------------------------------- */

/* What the main thread records at the end of each phase, after the pool drained. */
typedef struct {
    double end_s;      /* since the sampler started (the series' time 0) */
    double seconds;    /* the phase's wall time */
    uint64_t requests; /* requests served by the end of the phase, all phases so far */
    long rss_kb;       /* VmRSS with every connection closed */
    long hwm_kb;       /* VmHWM: the phase's peak (reset at its start) */
    uint64_t live_kb;  /* live bytes then: the logger's backlog */
} phase_rec_t;

static void start_conn(slot_t *s, const options_t *o, unsigned phase_no, uint32_t conn)
{
    const phase_t *ph = &phases[phase_no % PHASES];
    s->phase = ph;
    s->rng = rng_stream(o->common.seed, phase_no, conn);
    uint64_t mean = (uint64_t)ph->requests * o->req_pct / 100;
    s->requests = mean > 0 ? (uint32_t)mean : 1;
    int err = pthread_create(&s->tid, NULL, conn_main, s);
    if (err != 0) {
        die("pthread_create failed: %s", strerror(err));
    }
}

/* One phase: o->conns connections through the pool, a new one whenever one closes. */
static void run_phase(slot_t *slots, const options_t *o, unsigned phase_no)
{
    uint32_t started = 0, finished = 0;
    for (unsigned i = 0; i < o->threads && started < o->conns; i++) {
        start_conn(&slots[i], o, phase_no, started++);
    }
    while (finished < started) {
        pthread_mutex_lock(&done.lock);
        while (done.count == 0) {
            pthread_cond_wait(&done.cond, &done.lock);
        }
        unsigned idx = done.ring[done.head];
        done.head = (done.head + 1) % MAX_SLOTS;
        done.count--;
        pthread_mutex_unlock(&done.lock);
        int err = pthread_join(slots[idx].tid, NULL);
        if (err != 0) {
            die("pthread_join failed: %s", strerror(err));
        }
        finished++;
        if (started < o->conns) {
            start_conn(&slots[idx], o, phase_no, started++);
        }
    }
}

static const char *stage_name(int stage, char *buf, size_t len)
{
    switch (stage) {
    case STAGE_BEFORE:
        return "before";
    case STAGE_DRAIN:
        return "drain";
    case STAGE_IDLE:
        return "idle";
    case STAGE_AFTER:
        return "after";
    default:
        snprintf(buf, len, "%s", phases[stage % PHASES].name);
        return buf;
    }
}

static void write_series(const options_t *o)
{
    FILE *f = fopen(o->csv, "w");
    if (f == NULL) {
        fprintf(stderr, "soak: cannot write %s: %s\n", o->csv, strerror(errno));
        exit(2);
    }
    fprintf(f, "allocator,t_s,rss_kb,live_kb,requests,cycle,phase\n");
    for (size_t i = 0; i < smp.n; i++) {
        const sample_t *x = &smp.buf[i];
        char name[16];
        fprintf(f, "%s,%.3f,%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%d,%s\n", o->common.label, x->t_s,
                x->rss_kb, x->live_kb, x->requests, x->stage >= 0 ? x->stage / PHASES + 1 : 0,
                stage_name(x->stage, name, sizeof name));
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "soak: error writing %s\n", o->csv);
        exit(2);
    }
}

/* ------------------------------------------------------------------------------------------------
 * The run, from the main thread: set up, start the logger and the sampler, run the phases, stop
 * the load and watch the footprint fall, then the figures and the verdict.
 * ---------------------------------------------------------------------------------------------- */

/* What the main thread measures, in the order it does. */
typedef struct {
    slot_t *slots;       /* the pool, o->threads slots */
    phase_rec_t *rec;    /* one per phase run: o->cycles * PHASES */
    unsigned nphases;    /* o->cycles * PHASES */
    uint64_t logger_rng; /* the logger's stream (it keeps a pointer to it) */
    pthread_t logger_tid, sampler_tid;
    /* Before the load. */
    long tables_kb;   /* resident bookkeeping: part of every RSS figure, the same for all */
    long base_rss_kb; /* VmRSS at the start */
    bool peak_reset;  /* whether VmHWM could be reset (to start each phase's peak afresh) */
    /* The load. */
    double seconds;   /* wall time of all phases */
    long peak_rss_kb; /* the highest VmHWM: of the phases, and after the load */
    long minflt;      /* minor page faults of the process during the load (getrusage) */
    /* After the load (see "After the last cycle" at the top). */
    long stopped_rss_kb;    /* every connection closed */
    long drained_rss_kb;    /* the logger's backlog freed */
    long idle_rss_kb;       /* after -i ms idle */
    long after_stop_rss_kb; /* after the poke: "RSS after stop" */
    long after_trim_rss_kb; /* after malloc_trim(0) */
    int trim_ret;           /* what malloc_trim(0) returned */
} run_t;

/* The figures of a run, computed from run_t and the counters once every thread has ended. */
typedef struct {
    uint64_t mallocs, reallocs, frees, requests, ops;
    uint64_t live_max_kb;    /* the sampler's highest count of live bytes */
    long *cycle_end;         /* per cycle: RSS at its end (after phase C, pool drained) */
    long *cycle_peak;        /* per cycle: its peak, the highest VmHWM of its phases */
    double growth_last;      /* cycle_end: the last cycle over the first */
    double growth_max;       /* cycle_end: the highest of any cycle over the first */
    double peak_growth_last; /* the same of cycle_peak */
    double peak_growth_max;
    double trend_end;  /* cycle_end's trend after cycle 1, as a ratio (cycle_trend) */
    double trend_peak; /* the same of cycle_peak */
    double after_frac; /* RSS after stop over peak RSS */
    double req_per_s, ops_per_s;
} figures_t;

static void check_phase_table(void)
{
    for (unsigned p = 0; p < PHASES; p++) {
        if (phases[p].objs_max > MAX_OBJS || phases[p].bufs_max > MAX_BUFS ||
            phases[p].blobs_max > MAX_BLOBS) {
            die("internal: phase %s exceeds the item tables", phases[p].name);
        }
    }
}

/* Bookkeeping, all mapped and written now: the pool, the logger's FIFO, the phase records and
 * the sampler's table. */
static void setup_tables(run_t *r, const options_t *o)
{
    r->slots = bk_map_touched(o->threads * sizeof(slot_t));
    for (unsigned i = 0; i < o->threads; i++) {
        r->slots[i].index = i;
    }
    lg.keep_count = o->keep;
    lg.keep_bytes = (uint64_t)o->keep_mib << 20;
    lg.slack_count = o->keep / 32 + 1;
    lg.slack_bytes = lg.keep_bytes / 32;
    lg.cap = lg.keep_count + lg.slack_count + 2 * MAX_ITEMS + 2;
    lg.ring = bk_map_touched(lg.cap * sizeof(log_entry_t));
    lg.batch = bk_map_touched(LOG_BATCH * sizeof(log_entry_t));
    r->nphases = o->cycles * PHASES;
    r->rec = bk_map_touched(r->nphases * sizeof(phase_rec_t));
    smp.buf = bk_map_touched(MAX_SAMPLES * sizeof(sample_t));
    smp.slots = r->slots;
    smp.nslots = o->threads;
    smp.interval_ns = (long)o->sample_ms * 1000000L;
    atomic_store(&smp.stage, STAGE_BEFORE);
}

static void print_banner(const options_t *o)
{
    if (o->common.quiet) {
        return;
    }
    printf("soak: allocator=%s (%s from %s) threads=%u cycles=%u connections/phase=%u "
           "requests=%u%% backlog=%u objects/%u MiB idle=%u ms seed=%" PRIu64 "\n",
           o->common.label, ENTRY_NAME, entry_object(), o->threads, o->cycles, o->conns, o->req_pct,
           o->keep, o->keep_mib, o->idle_ms, o->common.seed);
    for (unsigned p = 0; p < PHASES; p++) {
        printf("soak: phase %s: %s\n", phases[p].name, phases[p].what);
    }
    fflush(stdout);
}

/* The long-lived threads: the logger (allocates only once objects arrive) and the sampler. */
static void start_helpers(run_t *r, const options_t *o)
{
    r->logger_rng = rng_stream(o->common.seed, UINT32_MAX, 0);
    smp.t0_ns = now_ns(); /* time 0 of the series; the load starts a few ms later */
    int err = pthread_create(&r->logger_tid, NULL, logger_main, &r->logger_rng);
    if (err == 0) {
        err = pthread_create(&r->sampler_tid, NULL, sampler_main, NULL);
    }
    if (err != 0) {
        die("pthread_create failed: %s", strerror(err));
    }
}

static void stop_helpers(run_t *r)
{
    atomic_store_explicit(&smp.stop, true, memory_order_release);
    pthread_join(r->sampler_tid, NULL);
    pthread_mutex_lock(&lg.lock);
    lg.stop = true;
    pthread_cond_signal(&lg.wake);
    pthread_mutex_unlock(&lg.lock);
    pthread_join(r->logger_tid, NULL);
}

/* -V and -v at the end of phase k. */
static void phase_progress(const options_t *o, unsigned k, const phase_rec_t *rec)
{
    if (o->alloc_stats) {
        /* Only vtmalloc exports this; looked up at run time so one binary serves all. */
        void (*print_stats)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "vt_stats_print");
        fprintf(stderr, "soak: end of cycle %u phase %s, RSS %.1f MiB, phase peak %.1f MiB\n",
                k / PHASES + 1, phases[k % PHASES].name, rec->rss_kb / 1024.0,
                rec->hwm_kb / 1024.0);
        if (print_stats != NULL)
            print_stats();
    }
    if (o->common.verbose) {
        progress("soak: %s cycle %u phase %s: %.2f s, RSS %.1f MiB, phase peak %.1f MiB, "
                 "live %.1f MiB\n",
                 o->common.label, k / PHASES + 1, phases[k % PHASES].name, rec->seconds,
                 rec->rss_kb / 1024.0, rec->hwm_kb / 1024.0, rec->live_kb / 1024.0);
    }
}

/* The load: every phase of every cycle, each recorded once its pool has drained and the logger
 * has freed down to its bounds. */
static void run_load(run_t *r, const options_t *o)
{
    r->tables_kb = bk_resident_kb();
    r->base_rss_kb = status_kb("VmRSS");
    r->peak_reset = reset_peak_rss();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    long t0 = now_ns();
    r->peak_rss_kb = 0;
    for (unsigned k = 0; k < r->nphases; k++) {
        phase_rec_t *rec = &r->rec[k];
        long ts = now_ns();
        atomic_store_explicit(&smp.stage, (int)k, memory_order_relaxed);
        run_phase(r->slots, o, k);
        logger_settle();
        long te = now_ns();
        rec->end_s = (double)(te - smp.t0_ns) / 1e9; /* on the series' clock */
        rec->seconds = (double)(te - ts) / 1e9;
        rec->requests = requests_done();
        rec->rss_kb = status_kb("VmRSS");
        rec->hwm_kb = status_kb("VmHWM");
        rec->live_kb = live_bytes() / 1024;
        r->peak_rss_kb = rec->hwm_kb > r->peak_rss_kb ? rec->hwm_kb : r->peak_rss_kb;
        if (r->peak_reset) {
            reset_peak_rss(); /* so that the next phase's VmHWM is its own */
        }
        phase_progress(o, k, rec);
    }
    r->seconds = (double)(now_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    /* The first touch of a page the allocator got from the kernel, fresh or given back, is a
     * minor fault; so is the copy of the shared zero page after a read of such a page. */
    r->minflt = ru1.ru_minflt - ru0.ru_minflt;
}

/* The load has stopped: every connection is closed. Drain the logger, idle, poke, read. */
static void after_load(run_t *r, const options_t *o)
{
    r->stopped_rss_kb = status_kb("VmRSS");
    atomic_store_explicit(&smp.stage, STAGE_DRAIN, memory_order_relaxed);
    logger_drain();
    r->drained_rss_kb = status_kb("VmRSS");
    atomic_store_explicit(&smp.stage, STAGE_IDLE, memory_order_relaxed);
    sleep_ms(o->idle_ms);
    r->idle_rss_kb = status_kb("VmRSS");

    /* The poke: the next connection, a thread that does one small malloc/free and exits. */
    pthread_t poke_tid;
    int err = pthread_create(&poke_tid, NULL, poke_main, NULL);
    if (err != 0) {
        die("pthread_create failed: %s", strerror(err));
    }
    pthread_join(poke_tid, NULL);
    r->after_stop_rss_kb = status_kb("VmRSS");

    atomic_store_explicit(&smp.stage, STAGE_AFTER, memory_order_relaxed);
    r->trim_ret = malloc_trim(0);
    r->after_trim_rss_kb = status_kb("VmRSS");
    sleep_ms(o->sample_ms); /* one more sample after the trim */
    long peak_after_kb = status_kb("VmHWM");
    r->peak_rss_kb = peak_after_kb > r->peak_rss_kb ? peak_after_kb : r->peak_rss_kb;
}

/* The trend of a per-cycle series after its first cycle, as the ratio its least-squares line
 * gives from cycle 2 to the last, over the mean of those cycles: 1.00 is flat. Cycle 1 starts
 * from an empty heap, the others with what the allocator kept, so a ratio against cycle 1
 * (growth_last) also measures that first step; this one measures only what goes on after it,
 * and, fitted over every cycle, is less moved by where one cycle's end lands. 1.00 with fewer
 * than 3 cycles. */
static double cycle_trend(const long *v, unsigned cycles)
{
    if (cycles < 3)
        return 1.0;
    unsigned n = cycles - 1;
    double mx = (n - 1) / 2.0, my = 0, sxy = 0, sxx = 0;
    for (unsigned i = 0; i < n; i++)
        my += (double)v[i + 1] / n;
    for (unsigned i = 0; i < n; i++) {
        sxy += (i - mx) * ((double)v[i + 1] - my);
        sxx += (i - mx) * (i - mx);
    }
    return my > 0 ? 1.0 + sxy / sxx * (n - 1) / my : 1.0;
}

/* Per cycle: RSS at its end and its peak; and how they grew from the first cycle. */
static void cycle_figures(const run_t *r, const options_t *o, figures_t *f)
{
    f->cycle_end = bk_map_touched(o->cycles * sizeof(long));
    f->cycle_peak = bk_map_touched(o->cycles * sizeof(long));
    for (unsigned c = 0; c < o->cycles; c++) {
        f->cycle_end[c] = r->rec[c * PHASES + PHASES - 1].rss_kb;
        f->cycle_peak[c] = 0;
        for (unsigned p = 0; p < PHASES; p++) {
            long h = r->rec[c * PHASES + p].hwm_kb;
            f->cycle_peak[c] = h > f->cycle_peak[c] ? h : f->cycle_peak[c];
        }
    }
    f->growth_last = (double)f->cycle_end[o->cycles - 1] / (double)f->cycle_end[0];
    f->growth_max = 1.0;
    f->peak_growth_max = 1.0;
    for (unsigned c = 1; c < o->cycles; c++) {
        double g = (double)f->cycle_end[c] / (double)f->cycle_end[0];
        double pg = (double)f->cycle_peak[c] / (double)f->cycle_peak[0];
        f->growth_max = g > f->growth_max ? g : f->growth_max;
        f->peak_growth_max = pg > f->peak_growth_max ? pg : f->peak_growth_max;
    }
    f->peak_growth_last = (double)f->cycle_peak[o->cycles - 1] / (double)f->cycle_peak[0];
    f->trend_end = cycle_trend(f->cycle_end, o->cycles);
    f->trend_peak = cycle_trend(f->cycle_peak, o->cycles);
}

/* The figures, once every thread has ended. Without a VmHWM reset the peak is the sampled one:
 * VmHWM would include the start-up. */
static void compute_figures(run_t *r, const options_t *o, figures_t *f)
{
    f->mallocs = lg.mallocs;
    f->frees = lg.frees;
    f->reallocs = lg.reallocs;
    for (unsigned i = 0; i < o->threads; i++) {
        f->mallocs += r->slots[i].mallocs;
        f->frees += r->slots[i].frees;
        f->reallocs += r->slots[i].reallocs;
    }
    if (f->mallocs != f->frees) {
        die("internal: %" PRIu64 " mallocs but %" PRIu64 " frees", f->mallocs, f->frees);
    }
    f->requests = r->rec[r->nphases - 1].requests;
    f->ops = f->mallocs + f->frees + f->reallocs;
    uint64_t sampled_peak_kb = 0;
    f->live_max_kb = 0;
    for (size_t i = 0; i < smp.n; i++) {
        sampled_peak_kb = smp.buf[i].rss_kb > sampled_peak_kb ? smp.buf[i].rss_kb : sampled_peak_kb;
        f->live_max_kb = smp.buf[i].live_kb > f->live_max_kb ? smp.buf[i].live_kb : f->live_max_kb;
    }
    if (!r->peak_reset) {
        r->peak_rss_kb = (long)sampled_peak_kb;
    }
    cycle_figures(r, o, f);
    f->after_frac = r->peak_rss_kb > 0 ? (double)r->after_stop_rss_kb / (double)r->peak_rss_kb : 0;
    f->req_per_s = r->seconds > 0 ? (double)f->requests / r->seconds : 0;
    f->ops_per_s = r->seconds > 0 ? (double)f->ops / r->seconds : 0;
}

/* The human lines (not with -q). */
static void print_summary(const run_t *r, const options_t *o, const figures_t *f)
{
    const char *label = o->common.label;
    for (unsigned k = 0; k < r->nphases; k++) {
        const phase_rec_t *rec = &r->rec[k];
        printf("cycle %2u phase %s: %7.2f s  %9.0f requests/s  RSS at end %8.1f MiB  "
               "phase peak %8.1f MiB  live at end %7.1f MiB\n",
               k / PHASES + 1, phases[k % PHASES].name, rec->seconds,
               (double)(rec->requests - (k > 0 ? r->rec[k - 1].requests : 0)) / rec->seconds,
               rec->rss_kb / 1024.0, rec->hwm_kb / 1024.0, rec->live_kb / 1024.0);
    }
    printf("%s: %" PRIu64 " requests in %.2f s: %.0f requests/s, %.3f M allocator calls/s "
           "(%" PRIu64 " mallocs, %" PRIu64 " reallocs, %" PRIu64 " frees)\n",
           label, f->requests, r->seconds, f->req_per_s, f->ops_per_s / 1e6, f->mallocs,
           f->reallocs, f->frees);
    printf("%s: RSS at start %.1f MiB (of it tables %.1f), peak %.1f MiB, live at most %.1f "
           "MiB (sampled)\n",
           label, r->base_rss_kb / 1024.0, r->tables_kb / 1024.0, r->peak_rss_kb / 1024.0,
           f->live_max_kb / 1024.0);
    printf("%s: RSS at the end of each cycle (MiB):", label);
    for (unsigned c = 0; c < o->cycles; c++) {
        printf(" %.1f", f->cycle_end[c] / 1024.0);
    }
    printf("\n%s: growth ratio, end of cycle k over cycle 1: last %.3f, max %.3f; "
           "of the cycle peaks: last %.3f, max %.3f\n",
           label, f->growth_last, f->growth_max, f->peak_growth_last, f->peak_growth_max);
    printf("%s: trend after cycle 1 (least squares, cycle 2 to the last): ends %.3f, peaks %.3f\n",
           label, f->trend_end, f->trend_peak);
    printf("%s: after the load: %.1f MiB with connections closed, %.1f MiB with the logger "
           "drained, %.1f MiB after %u ms idle, %.1f MiB after one more connection (%.0f %% of "
           "peak), %.1f MiB after malloc_trim(0) (returned %d)\n",
           label, r->stopped_rss_kb / 1024.0, r->drained_rss_kb / 1024.0, r->idle_rss_kb / 1024.0,
           o->idle_ms, r->after_stop_rss_kb / 1024.0, 100.0 * f->after_frac,
           r->after_trim_rss_kb / 1024.0, r->trim_ret);
}

/* The machine-readable lines: one PHASE line per phase, then the RESULT line. */
static void print_results(const run_t *r, const options_t *o, const figures_t *f)
{
    const char *label = o->common.label;
    for (unsigned k = 0; k < r->nphases; k++) {
        const phase_rec_t *rec = &r->rec[k];
        printf("PHASE allocator=%s cycle=%u phase=%s end_s=%.3f seconds=%.3f requests=%" PRIu64
               " rss_kb=%ld hwm_kb=%ld live_kb=%" PRIu64 "\n",
               label, k / PHASES + 1, phases[k % PHASES].name, rec->end_s, rec->seconds,
               rec->requests, rec->rss_kb, rec->hwm_kb, rec->live_kb);
    }
    printf("RESULT allocator=%s preset=%s seed=%" PRIu64 " threads=%u cycles=%u conns=%u "
           "req_pct=%u keep=%u keep_mib=%u idle_ms=%u requests=%" PRIu64 " mallocs=%" PRIu64
           " reallocs=%" PRIu64 " frees=%" PRIu64 " handed=%" PRIu64 " seconds=%.3f "
           "requests_per_s=%.1f ops_per_s=%.0f base_rss_kb=%ld tables_kb=%ld peak_rss_kb=%ld "
           "peak_reset=%d live_max_kb=%" PRIu64 " cycle1_rss_kb=%ld last_cycle_rss_kb=%ld "
           "growth_last=%.4f growth_max=%.4f peak_growth_last=%.4f peak_growth_max=%.4f "
           "trend_end=%.4f trend_peak=%.4f stopped_rss_kb=%ld drained_rss_kb=%ld idle_rss_kb=%ld "
           "after_stop_rss_kb=%ld "
           "after_stop_frac=%.4f after_trim_rss_kb=%ld trim_ret=%d ops=%" PRIu64
           " minflt=%ld faults_per_mop=%.1f cycle_rss_kb=",
           label, o->preset, o->common.seed, o->threads, o->cycles, o->conns, o->req_pct, o->keep,
           o->keep_mib, o->idle_ms, f->requests, f->mallocs, f->reallocs, f->frees, lg.handed,
           r->seconds, f->req_per_s, f->ops_per_s, r->base_rss_kb, r->tables_kb, r->peak_rss_kb,
           r->peak_reset ? 1 : 0, f->live_max_kb, f->cycle_end[0], f->cycle_end[o->cycles - 1],
           f->growth_last, f->growth_max, f->peak_growth_last, f->peak_growth_max, f->trend_end,
           f->trend_peak, r->stopped_rss_kb, r->drained_rss_kb, r->idle_rss_kb,
           r->after_stop_rss_kb, f->after_frac, r->after_trim_rss_kb, r->trim_ret, f->ops,
           r->minflt, f->ops > 0 ? (double)r->minflt * 1e6 / (double)f->ops : 0.0);
    for (unsigned c = 0; c < o->cycles; c++) {
        printf("%s%ld", c > 0 ? ":" : "", f->cycle_end[c]);
    }
    printf(" cycle_peak_kb=");
    for (unsigned c = 0; c < o->cycles; c++) {
        printf("%s%ld", c > 0 ? ":" : "", f->cycle_peak[c]);
    }
    printf(" malloc_from=%s\n", base_name(entry_object()));
    fflush(stdout);
}

/* -G and -F: the exit status, 1 when the run failed either bound. */
static int verdict(const run_t *r, const options_t *o, const figures_t *f)
{
    int status = 0;
    if (o->max_growth > 0 && f->growth_last > o->max_growth) {
        fprintf(stderr,
                "soak: FAIL: %s grew: RSS at the end of cycle %u is %.3f times that at the "
                "end of cycle 1 (%ld kB / %ld kB), above %.3f\n",
                o->common.label, o->cycles, f->growth_last, f->cycle_end[o->cycles - 1],
                f->cycle_end[0], o->max_growth);
        status = 1;
    }
    if (o->max_after > 0 && f->after_frac > o->max_after) {
        fprintf(stderr,
                "soak: FAIL: %s kept its memory: RSS after stop %ld kB is %.0f %% of peak "
                "%ld kB, above %.0f %% (after malloc_trim(0): %ld kB)\n",
                o->common.label, r->after_stop_rss_kb, 100.0 * f->after_frac, r->peak_rss_kb,
                100.0 * o->max_after, r->after_trim_rss_kb);
        status = 1;
    }
    return status;
}

int main(int argc, char **argv)
{
    options_t o;
    run_t r = {0};
    figures_t f = {0};
    parse_options(argc, argv, &o);
    bench_check_allocator(argv[0], &o.common, false); /* zippy, -m: exit 3 unless it is in use */
    check_phase_table();
    setup_tables(&r, &o);
    print_banner(&o);

    start_helpers(&r, &o);
    run_load(&r, &o);
    after_load(&r, &o);
    stop_helpers(&r);

    compute_figures(&r, &o, &f);
    if (!o.common.quiet) {
        print_summary(&r, &o, &f);
    }
    print_results(&r, &o, &f);
    if (o.csv != NULL) {
        write_series(&o);
    }
    return verdict(&r, &o, &f);
}
