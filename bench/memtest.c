/*
 * memtest.c: a multi-threaded malloc/free benchmark for vtmalloc and its peers.
 *
 * Why it exists. The 2007 review of the VT allocator against Tcl's zippy allocator
 * (docs/history.md) found that the benchmark of the day drew sizes uniformly up
 * to 16 KiB (so it partly measured the system allocator behind zippy, point a), that such sizes are
 * far from what Tcl and NaviServer allocate (points b, c), and that memory read after the threads
 * had joined says nothing about growth under load (point h). This program keeps that original
 * workload so old numbers can be compared, and adds workloads that answer the review's objections,
 * with the memory figures needed to read overhead as a ratio.
 *
 * How it stays fair. Every random decision (sizes, free-or-malloc, lifetimes) is drawn from a
 * seeded PRNG and written into per-thread arrays before the clock starts; a thread's stream depends
 * only on the seed, the workload and the thread's index. So every allocator does exactly the same
 * mallocs and frees in the same order per thread. The benchmark's own tables come from mmap, not
 * malloc, so the allocator under test sees only the benchmark's requests (plus what libc and
 * pthreads ask of it).
 *
 * How it is built (bench/run-memtest does this):
 *   cc -O2 -std=c11 -pthread memtest.c -o memtest                       malloc/free, any LD_PRELOAD
 *   cc -O2 -std=c11 -pthread -DMEMTEST_ZIPPY -I/usr/include/tcl8.6 memtest.c -ltcl8.6
 *                                                                       Tcl_Alloc/Tcl_Free (zippy)
 *   cc -O2 -std=c11 -pthread -DMEMTEST_VT -Iinclude memtest.c -Lbuild -lvtmalloc
 *                                                                       vt_malloc/vt_free, linked
 *
 * Output: per repetition a human line and a line that starts with RESULT and holds key=value pairs
 * (see report()). Peak RSS is per process, so compare runs that each had a process of their own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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
 * The allocator under test: seam.h names it (Tcl_Alloc with -DMEMTEST_ZIPPY, vt_malloc with
 * -DMEMTEST_VT, malloc otherwise) and holds what memtest and soak share: die(), bookkeeping memory,
 * the random numbers, the /proc readers, the options -s -a -m -q -v -h and the check of which
 * allocator serves the program.
 * ---------------------------------------------------------------------------------------------- */

#define BENCH_NAME "memtest"
#if defined(MEMTEST_ZIPPY)
#define BENCH_ZIPPY
#elif defined(MEMTEST_VT)
#define BENCH_VT
#endif
#include "seam.h"

/* ------------------------------------------------------------------------------------------------
 * Time (the /proc readers are in bench.h).
 * ---------------------------------------------------------------------------------------------- */

static long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------------
 * Scripts: a thread's whole work, generated before timing. An op either mallocs `size` bytes into
 * slot `slot` of the thread's pointer table or frees the block in that slot (OP_FREE set in size).
 * OP_END ends a script, or one churn worker's share of its lane's script.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t slot; /* index into the pointer table; OP_END marks an end */
    uint32_t size; /* bytes to request, or OP_FREE | bytes of the block to free */
} op_t;

#define OP_FREE 0x80000000u
#define OP_END  UINT32_MAX

/* A script and the facts about it that the generator knows exactly. */
typedef struct {
    op_t *ops;           /* nops entries, from bk_map */
    size_t nops;         /* entries written, including OP_END markers */
    size_t cap;          /* entries mapped */
    uint32_t nslots;     /* pointer-table entries the script uses */
    uint64_t mallocs;    /* mallocs in the script; it frees as many */
    uint64_t peak_live;  /* largest sum of live requested bytes, exact for this thread */
    uint64_t *wave_live; /* churn: live bytes at the end of each worker's share */
    uint32_t waves;      /* churn: OP_END markers, i.e. workers in the lane */
} script_t;

static void script_init(script_t *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->cap = cap;
    s->ops = bk_map(cap * sizeof(op_t));
}

static void emit(script_t *s, uint32_t slot, uint32_t size)
{
    if (s->nops == s->cap) {
        die("internal: script capacity %zu exceeded", s->cap);
    }
    s->ops[s->nops].slot = slot;
    s->ops[s->nops].size = size;
    s->nops++;
}

/*
 * Block contents. Each block gets a tag byte derived from its address, written at its first byte,
 * one byte in every 4 KiB and its last byte: every page the block spans becomes resident, as in a
 * program that uses its memory, so an allocator cannot look good by handing out untouched pages.
 * Before the free, the first and last byte are checked; a mismatch means two live blocks overlap
 * (or something else wrote into the block), and the run stops with an error.
 */
static inline unsigned char tag_of(const void *ptr)
{
    uintptr_t a = (uintptr_t)ptr;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ 0xA5);
}

static inline void touch(void *ptr, uint32_t size)
{
    unsigned char *b = ptr, tag = tag_of(ptr);
    if (size == 0) {
        return;
    }
    for (uint32_t off = 0; off < size; off += 4096) {
        b[off] = tag;
    }
    b[size - 1] = tag;
}

static inline void check(const void *ptr, uint32_t size)
{
    const unsigned char *b = ptr;
    unsigned char tag = tag_of(ptr);
    if (size != 0 && (b[0] != tag || b[size - 1] != tag)) {
        die("block %p of %u bytes was overwritten while live (expected byte 0x%02x, found "
            "0x%02x/0x%02x): the allocator handed out overlapping memory",
            ptr, size, tag, b[0], b[size - 1]);
    }
}

static inline void *checked_malloc(uint32_t size)
{
    void *ptr = bench_malloc(size);
    if (ptr == NULL) {
        die("malloc(%u) returned NULL", size);
    }
    touch(ptr, size);
    return ptr;
}

/*
 * The timed inner loop: run ops up to the next OP_END and return the op after it. One predictable
 * branch per op besides the allocator's own work.
 */
static const op_t *run_ops(const op_t *op, void **slots)
{
    for (;; op++) {
        uint32_t slot = op->slot, size = op->size;
        if (slot == OP_END) {
            return op + 1;
        }
        if (size & OP_FREE) {
            void *ptr = slots[slot];
            check(ptr, size & ~OP_FREE);
            bench_free(ptr);
        } else {
            slots[slot] = checked_malloc(size);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Options.
 * ---------------------------------------------------------------------------------------------- */

enum workload { WL_ORIGINAL, WL_CAPPED, WL_TCL, WL_SINGLE, WL_XTHREAD, WL_CHURN, WL_COUNT };

static const char *const workload_names[WL_COUNT] = {"original", "capped",  "tcl",
                                                     "single",   "xthread", "churn"};

typedef struct {
    bench_options_t common; /* -s -a -m -q, and -v: churn prints RSS after every wave */
    enum workload workload;
    unsigned threads;    /* -t */
    uint64_t work;       /* -n: mallocs per thread (see usage) */
    unsigned reps;       /* -r */
    uint32_t records;    /* -R: original/capped, live blocks at the end, all threads together */
    uint32_t per_worker; /* -c: churn, mallocs per worker thread */
} options_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: memtest [-w workload] [-t threads] [-n mallocs] [-s seed] [-r reps]\n"
        "               [-a label] [-m substring] [-R records] [-c per-worker] [-q] [-v]\n"
        "  -w  original  nedmalloc-style LIFO walk; 25%% powers of two 4..512, 75%% 0..16383\n"
        "      capped    the same with sizes capped at 16000 (the review's patch a)\n"
        "      tcl       a model of Tcl/NaviServer allocation: small objects, mixed lifetimes\n"
        "      single    one live block per thread: free previous, malloc(random %% 16384)\n"
        "      xthread   thread i mallocs batches that thread i+1 frees (a ring of threads)\n"
        "      churn     worker threads created and joined in waves; blocks outlive workers\n"
        "  -t  threads (default 2); for churn, workers alive at once\n"
        "  -n  mallocs per thread (default 1000000); for original/capped the expected count of\n"
        "      the calibrated walk; for churn per lane, split among workers of -c mallocs each\n"
        "  -R  original/capped: live blocks held at the end, all threads together (default\n"
        "      100000, as in the original; each thread holds R/threads)\n"
        "  -c  churn: mallocs per worker thread (default 10000)\n"
        "  -s  seed (default 1); -r repetitions in this process (default 1)\n"
        "  -a  allocator label for the output; -q only RESULT lines; -v churn: RSS per wave\n"
        "  -m  exit with status 3 unless the library whose name contains this is mapped and\n"
        "      serves the benchmark's malloc (Tcl_Alloc, vt_malloc)\n");
}

static void parse_options(int argc, char **argv, options_t *o)
{
    *o = (options_t){.common = bench_options_default(),
                     .workload = WL_ORIGINAL,
                     .threads = 2,
                     .work = 1000000,
                     .reps = 1,
                     .records = 100000,
                     .per_worker = 10000};
    int c;
    while ((c = getopt(argc, argv, "w:t:n:r:R:c:" BENCH_OPTIONS)) != -1) {
        switch (c) {
        case 'w': {
            int found = -1;
            for (int i = 0; i < WL_COUNT; i++) {
                if (strcmp(optarg, workload_names[i]) == 0) {
                    found = i;
                }
            }
            if (found < 0) {
                fprintf(stderr, "memtest: unknown workload '%s'\n", optarg);
                usage(stderr);
                exit(2);
            }
            o->workload = (enum workload)found;
            break;
        }
        case 't':
            o->threads = (unsigned)parse_u64(optarg, 't', 1, 1024);
            break;
        case 'n':
            o->work = parse_u64(optarg, 'n', 1, 1u << 30);
            break;
        case 'r':
            o->reps = (unsigned)parse_u64(optarg, 'r', 1, 1000);
            break;
        case 'R':
            o->records = (uint32_t)parse_u64(optarg, 'R', 1, 1u << 26);
            break;
        case 'c':
            o->per_worker = (uint32_t)parse_u64(optarg, 'c', 1, 1u << 30);
            break;
        default: /* -s -a -m -q -v -h, or a mistake */
            bench_option(c, optarg, &o->common, usage);
            break;
        }
    }
    bench_options_end(argc, argv, &o->common, " =,");
}

/* ------------------------------------------------------------------------------------------------
 * Workload generators (all run before timing).
 * ---------------------------------------------------------------------------------------------- */

static void track_live(script_t *s, uint64_t *live, int64_t delta)
{
    *live = (uint64_t)((int64_t)*live + delta);
    if (*live > s->peak_live) {
        s->peak_live = *live;
    }
}

/* Sizes of the original test: 25 % a power of two from 4 to 512, else 0..16383 (r & 0x3FFF). */
static uint32_t original_size(uint64_t *rng, bool capped)
{
    uint32_t r = (uint32_t)(rng_next(rng) >> 32);
    uint32_t size = r < (1u << 30) ? 4u << (r & 7) : r & 0x3FFF;
    return capped && size > 16000 ? 16000 : size; /* the review's patch (a) */
}

/*
 * original / capped. As in the nedmalloc test program of 2006 that memtest adapted, a thread owns a
 * stack of RECORDS slots and a table of RECORDS sizes indexed by stack depth (its size pointer
 * moves back on a free, so the block at depth d always has the same size). Each step frees the top
 * block with probability a little under one half, otherwise mallocs the size for the current depth;
 * the thread stops when it holds RECORDS blocks, then frees them all, top first.
 *
 * The original took its coin from the low 16 bits of a 32-bit LCG (free if < 32760 of 65536); those
 * bits repeat every 65536 steps, so its walk climbed a fixed 16 levels per period and took about
 * 2048 * RECORDS mallocs. We use a proper PRNG and calibrate the bias instead so that the expected
 * number of mallocs is -n: with p(malloc) = 1/2 + e the walk climbs 2e per step, needs about
 * R / (2e) steps, and mallocs = (steps + R) / 2, so e = R / (2 (2n - R)).
 */
static void gen_original(script_t *s, const options_t *o, unsigned tid, bool capped)
{
    uint64_t rng =
        rng_stream(o->common.seed, WL_ORIGINAL, tid); /* capped shares the original's stream */
    uint32_t records = o->records / o->threads > 0 ? o->records / o->threads : 1;
    uint64_t n = o->work;
    double p_malloc = 1.0;
    if (2 * n > 2 * (uint64_t)records) {
        p_malloc = 0.5 + (double)records / (2.0 * (double)(2 * n - records));
    }
    /* A walk that has not arrived after max_steps only mallocs; it needs at most records more. */
    uint64_t max_steps = 8 * (n > records ? n : records);

    script_init(s, max_steps + 2 * (size_t)records + 1);
    uint32_t *sizes = bk_map((size_t)records * sizeof *sizes);
    for (uint32_t d = 0; d < records; d++) {
        sizes[d] = original_size(&rng, capped);
    }
    uint64_t live = 0, steps = 0;
    uint32_t depth = 0;
    while (depth < records) {
        if (depth == 0 || steps >= max_steps || rng_unit(&rng) < p_malloc) {
            emit(s, depth, sizes[depth]);
            track_live(s, &live, sizes[depth]);
            s->mallocs++;
            depth++;
        } else {
            depth--;
            emit(s, depth, OP_FREE | sizes[depth]);
            track_live(s, &live, -(int64_t)sizes[depth]);
        }
        steps++;
    }
    while (depth > 0) {
        depth--;
        emit(s, depth, OP_FREE | sizes[depth]);
    }
    emit(s, OP_END, 0);
    s->nslots = records;
    bk_unmap(sizes, (size_t)records * sizeof *sizes);
}

/* single: NaviServer's old thread test, one live block: free the previous, malloc random % 16384.
 */
static void gen_single(script_t *s, const options_t *o, unsigned tid)
{
    uint64_t rng = rng_stream(o->common.seed, WL_SINGLE, tid);
    uint64_t live = 0;
    uint32_t prev = 0;
    script_init(s, 2 * o->work + 1);
    for (uint64_t i = 0; i < o->work; i++) {
        uint32_t size = rng_below(&rng, 16384);
        if (i > 0) {
            emit(s, 0, OP_FREE | prev);
            track_live(s, &live, -(int64_t)prev);
        }
        emit(s, 0, size);
        track_live(s, &live, size);
        prev = size;
    }
    emit(s, 0, OP_FREE | prev);
    emit(s, OP_END, 0);
    s->mallocs = o->work;
    s->nslots = 1;
}

/*
 * The Tcl/NaviServer model. This is a MODEL, not a measurement: no public histogram of Tcl's
 * allocation sizes or lifetimes exists. It encodes what Tcl's sources make likely: a Tcl_Obj is 48
 * bytes on 64-bit, string representations and names are short, list and dict representations are a
 * header plus 8 bytes per element, and buffers of a few KiB (Tcl_DString growth, channel buffers)
 * are rarer; results above zippy's 16 KiB largest block are rare. One caveat: real Tcl takes its
 * Tcl_Obj structs from a separate per-thread object cache (TclThreadAllocObj), not from Tcl_Alloc;
 * they are in the mix because an allocator that replaces malloc under Tcl, or under C extensions
 * that allocate similar small structs, has to serve them.
 *
 * Shares are in per mille; a class draws uniformly from lo..hi in steps of step bytes.
 */
typedef struct {
    uint32_t per_mille, lo, hi, step;
} size_class_t;

/* The base mix (workloads tcl and xthread, and the "small" phases of churn). */
static const size_class_t tcl_mix[] = {
    {400, 48, 48, 1},      /* Tcl_Obj */
    {220, 8, 100, 1},      /* short strings: string reps, names, small DStrings */
    {120, 16, 256, 1},     /* small structs: hash entries, call frames, records */
    {100, 32, 536, 8},     /* list/dict internal reps: 24 + 8 * (1..64) elements */
    {100, 101, 1023, 1},   /* longer strings, command and proc structures */
    {50, 1024, 8192, 1},   /* KiB buffers: DString growth, channel buffers */
    {10, 16384, 65536, 1}, /* rare large results, beyond zippy's 16 KiB blocks */
};

/* The "buffer" phases of churn: a shifted load with more and bigger buffers, up to 16000 bytes. */
static const size_class_t tcl_buffer_mix[] = {
    {250, 48, 48, 1},      /* Tcl_Obj */
    {150, 8, 100, 1},      /* short strings */
    {100, 16, 256, 1},     /* small structs */
    {100, 32, 536, 8},     /* list/dict internal reps */
    {150, 101, 1023, 1},   /* longer strings */
    {200, 1024, 16000, 1}, /* buffers up to just below zippy's largest block */
    {50, 16384, 65536, 1}, /* large results */
};

#define MIX_CLASSES 7
_Static_assert(sizeof tcl_mix / sizeof tcl_mix[0] == MIX_CLASSES, "tcl_mix has 7 classes");
_Static_assert(sizeof tcl_buffer_mix / sizeof tcl_buffer_mix[0] == MIX_CLASSES, "7 classes");

static uint32_t mix_size(uint64_t *rng, const size_class_t *mix)
{
    uint32_t u = rng_below(rng, 1000);
    for (int i = 0; i < MIX_CLASSES; i++) {
        if (u < mix[i].per_mille || i == MIX_CLASSES - 1) {
            const size_class_t *c = &mix[i];
            return c->lo + c->step * rng_below(rng, (c->hi - c->lo) / c->step + 1);
        }
        u -= mix[i].per_mille;
    }
    return 0; /* not reached: the last class always returns */
}

/*
 * Lifetimes of the model, counted in the thread's own later mallocs (a block with lifetime L is
 * freed just before the thread's L-th next malloc):
 *   60 %  1..8          temporaries: intermediate results, scratch strings
 *   25 %  9..256        values that live for a command or a few
 *   12 %  257..16384    per-request state, results kept for a while
 *    3 %  long          interpreter state: lives to the end of the thread's work (in churn, for the
 *                       mallocs of 2 to 4 workers, so the lane's live data stays stationary)
 * Blocks of 1 KiB or more only draw from the first two classes: buffers are released when the
 * request that needed them ends.
 */
#define LIFETIME_LONG UINT64_MAX

static uint64_t model_lifetime(uint64_t *rng, uint32_t size)
{
    uint32_t u = rng_below(rng, size >= 1024 ? 850 : 1000);
    if (u < 600) {
        return rng_range(rng, 1, 8);
    }
    if (u < 850) {
        return rng_range(rng, 9, 256);
    }
    if (u < 970) {
        return rng_range(rng, 257, 16384);
    }
    return LIFETIME_LONG;
}

/* A min-heap of live blocks by the malloc index before which they are freed (generator only). */
typedef struct {
    uint64_t due;
    uint32_t slot, size;
} pending_t;

typedef struct {
    pending_t *items;
    size_t count, cap;
} heap_t;

static void heap_push(heap_t *h, pending_t item)
{
    if (h->count == h->cap) {
        die("internal: pending heap full");
    }
    size_t i = h->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent].due <= item.due) {
            break;
        }
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = item;
}

static pending_t heap_pop(heap_t *h)
{
    pending_t top = h->items[0], last = h->items[--h->count];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count && h->items[child + 1].due < h->items[child].due) {
            child++;
        }
        if (last.due <= h->items[child].due) {
            break;
        }
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->count > 0) {
        h->items[i] = last;
    }
    return top;
}

/*
 * tcl (and churn, with per_worker > 0): n mallocs drawn from the model; before each malloc, the
 * blocks whose lifetime has run out are freed; at the end the rest are freed in order of due time.
 * For churn the script is cut into shares of per_worker mallocs, each ended by OP_END and run by a
 * fresh thread; blocks still live at a cut are freed by a later worker of the same lane. The mix
 * alternates every two workers between tcl_mix and tcl_buffer_mix: a load that shifts, which is
 * where an allocator that splits blocks but never coalesces them (review point h) would grow.
 */
static void gen_model(script_t *s, const options_t *o, unsigned tid, uint32_t per_worker,
                      unsigned stream_id)
{
    uint64_t rng = rng_stream(o->common.seed, stream_id, tid);
    uint64_t n = o->work;
    uint32_t waves = 0;
    if (per_worker > 0) {
        n = (n + per_worker - 1) / per_worker * per_worker;
        waves = (uint32_t)(n / per_worker);
    }
    heap_t heap = {.items = bk_map(n * sizeof(pending_t)), .cap = n};
    uint32_t *free_slots = bk_map(n * sizeof(uint32_t));
    uint32_t nfree = 0, nslots = 0;
    uint64_t live = 0;

    script_init(s, 2 * n + waves + 1);
    s->waves = waves;
    if (waves > 0) {
        s->wave_live = bk_map(s->waves * sizeof(uint64_t));
    }
    for (uint64_t i = 0; i < n; i++) {
        while (heap.count > 0 && heap.items[0].due <= i) {
            pending_t p = heap_pop(&heap);
            emit(s, p.slot, OP_FREE | p.size);
            track_live(s, &live, -(int64_t)p.size);
            free_slots[nfree++] = p.slot;
        }
        const size_class_t *mix = tcl_mix;
        if (per_worker > 0 && (i / per_worker / 2) % 2 == 1) {
            mix = tcl_buffer_mix;
        }
        uint32_t size = mix_size(&rng, mix);
        uint64_t life = model_lifetime(&rng, size);
        if (life == LIFETIME_LONG && per_worker > 0) {
            life = (uint64_t)per_worker * rng_range(&rng, 2, 4);
        }
        uint32_t slot = nfree > 0 ? free_slots[--nfree] : nslots++;
        emit(s, slot, size);
        track_live(s, &live, size);
        heap_push(&heap, (pending_t){life == LIFETIME_LONG ? LIFETIME_LONG : i + life, slot, size});
        if (per_worker > 0 && (i + 1) % per_worker == 0 && i + 1 < n) {
            s->wave_live[(i + 1) / per_worker - 1] = live;
            emit(s, OP_END, 0);
        }
    }
    while (heap.count > 0) {
        pending_t p = heap_pop(&heap);
        emit(s, p.slot, OP_FREE | p.size);
    }
    if (s->waves > 0) {
        s->wave_live[s->waves - 1] = 0;
    }
    emit(s, OP_END, 0);
    s->mallocs = n;
    s->nslots = nslots;
    bk_unmap(heap.items, n * sizeof(pending_t));
    bk_unmap(free_slots, n * sizeof(uint32_t));
}

/* ------------------------------------------------------------------------------------------------
 * Threads.
 * ---------------------------------------------------------------------------------------------- */

/*
 * xthread: the threads form a ring; thread i mallocs batches of XT_BATCH blocks into the inbox of
 * thread i+1 and frees the batches that thread i-1 put in its own inbox. An inbox is a
 * single-producer single-consumer ring of XT_SLOTS batches: one release store per batch on each
 * side, so the handoff costs two cache-line transfers per 64 mallocs and 64 frees. With one thread
 * the ring closes on itself: blocks are freed by the thread that allocated them, a baseline for the
 * handoff's own cost.
 */
#define XT_BATCH 64
#define XT_SLOTS 16

typedef struct {
    void *ptr[XT_BATCH];
    uint32_t size[XT_BATCH];
} xt_batch_t;

typedef struct {
    _Alignas(64) _Atomic uint64_t head; /* batches published; written by the producer only */
    _Alignas(64) _Atomic uint64_t tail; /* batches freed; written by the consumer only */
    _Alignas(64) xt_batch_t batch[XT_SLOTS];
} xt_ring_t;

/* One per thread (per lane in churn); aligned so that threads writing results share no line. */
typedef struct worker {
    _Alignas(64) script_t script; /* original, capped, tcl, single, churn */
    void **slots;                 /* the script's pointer table */
    const op_t *cursor;           /* churn: where this lane's next worker starts */
    uint32_t *sizes;              /* xthread: this thread's malloc sizes */
    uint64_t xt_batches;          /* xthread: batches this thread produces (and consumes) */
    xt_ring_t *inbox;             /* xthread: filled by the previous thread */
    xt_ring_t *outbox;            /* xthread: the next thread's inbox */
    uint64_t xt_peak_live;        /* xthread: peak bytes malloced and not yet seen freed */
    pthread_barrier_t *start;     /* released when every thread is ready */
    long t_start, t_end;          /* CLOCK_MONOTONIC ns around the work */
    long cpu_ns;                  /* this thread's CPU time for the work */
} worker_t;

static void *script_worker(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(w->start);
    w->t_start = now_ns(CLOCK_MONOTONIC);
    long cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    run_ops(w->script.ops, w->slots);
    w->cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    w->t_end = now_ns(CLOCK_MONOTONIC);
    return NULL;
}

static void *xthread_worker(void *arg)
{
    worker_t *w = arg;
    xt_ring_t *out = w->outbox, *in = w->inbox;
    uint64_t produced = 0, consumed = 0, seen_tail = 0, live = 0, peak = 0;
    uint64_t bytes[XT_SLOTS] = {0};
    const uint32_t *size = w->sizes;

    pthread_barrier_wait(w->start);
    w->t_start = now_ns(CLOCK_MONOTONIC);
    long cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    while (produced < w->xt_batches || consumed < w->xt_batches) {
        bool progress = false;
        if (produced < w->xt_batches) {
            /* Acquire pairs with the consumer's release: its frees of that slot are done. */
            uint64_t tail = atomic_load_explicit(&out->tail, memory_order_acquire);
            for (; seen_tail < tail; seen_tail++) {
                live -= bytes[seen_tail % XT_SLOTS];
            }
            if (produced - tail < XT_SLOTS) {
                xt_batch_t *b = &out->batch[produced % XT_SLOTS];
                uint64_t sum = 0;
                for (int k = 0; k < XT_BATCH; k++) {
                    uint32_t sz = *size++;
                    b->ptr[k] = checked_malloc(sz);
                    b->size[k] = sz;
                    sum += sz;
                }
                bytes[produced % XT_SLOTS] = sum;
                live += sum;
                peak = live > peak ? live : peak;
                produced++;
                /* Release: the batch and the blocks' bytes are visible before head moves. */
                atomic_store_explicit(&out->head, produced, memory_order_release);
                progress = true;
            }
        }
        if (consumed < w->xt_batches) {
            uint64_t head = atomic_load_explicit(&in->head, memory_order_acquire);
            if (head != consumed) {
                xt_batch_t *b = &in->batch[consumed % XT_SLOTS];
                for (int k = 0; k < XT_BATCH; k++) {
                    check(b->ptr[k], b->size[k]);
                    bench_free(b->ptr[k]);
                }
                consumed++;
                atomic_store_explicit(&in->tail, consumed, memory_order_release);
                progress = true;
            }
        }
        if (!progress) {
            sched_yield(); /* the neighbour is behind; with more threads than cores, let it run */
        }
    }
    w->cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    w->t_end = now_ns(CLOCK_MONOTONIC);
    w->xt_peak_live = peak;
    return NULL;
}

/* A churn worker runs its lane's next share of the script and exits. */
static void *churn_worker(void *arg)
{
    worker_t *w = arg;
    w->cursor = run_ops(w->cursor, w->slots);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Running and reporting.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    double seconds;     /* wall time of the work */
    double cpu_seconds; /* CPU time of the work, all threads */
    uint64_t mallocs;   /* mallocs done, all threads; frees are equal */
    uint64_t peak_live; /* bytes: sum over threads of each thread's peak of live requested bytes */
    long base_rss_kb;   /* VmRSS just before the work: benchmark tables, libraries */
    long peak_rss_kb;   /* VmHWM after the work, reset just before it */
    long end_rss_kb;    /* VmRSS after the workers joined; every block freed */
    long tables_kb;     /* resident benchmark tables during the work (part of every RSS above) */
    bool peak_reset;    /* whether resetting VmHWM worked; if not peak includes generation */
    long minflt;        /* minor page faults of the process during the work (getrusage) */
    long wave_rss_first_kb, wave_rss_last_kb, wave_rss_max_kb; /* churn only */
    uint64_t wave_live_first, wave_live_last;                  /* churn: exact, bytes */
} result_t;

/* Minor page faults of the whole process so far: the first touch of a page the allocator got
 * from the kernel (fresh, or given back with madvise and touched again) is one; so is a
 * copy-on-write of the shared zero page after a read. */
static long minor_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static void start_threads(worker_t *w, unsigned count, void *(*fn)(void *), pthread_t *tids)
{
    for (unsigned i = 0; i < count; i++) {
        int err = pthread_create(&tids[i], NULL, fn, &w[i]);
        if (err != 0) {
            die("pthread_create failed: %s", strerror(err));
        }
    }
}

/* Threads start together at a barrier; the clock runs from the first start to the last end. */
static void run_parallel(worker_t *w, const options_t *o, void *(*fn)(void *), result_t *r)
{
    pthread_barrier_t start;
    pthread_t *tids = bk_map(o->threads * sizeof(pthread_t));
    pthread_barrier_init(&start, NULL, o->threads + 1);
    for (unsigned i = 0; i < o->threads; i++) {
        w[i].start = &start;
    }
    start_threads(w, o->threads, fn, tids);
    r->tables_kb = bk_resident_kb();
    r->base_rss_kb = status_kb("VmRSS");
    r->peak_reset = reset_peak_rss();
    long faults = minor_faults();
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < o->threads; i++) {
        int err = pthread_join(tids[i], NULL);
        if (err != 0) {
            die("pthread_join failed: %s", strerror(err));
        }
    }
    r->minflt = minor_faults() - faults;
    r->peak_rss_kb = status_kb("VmHWM");
    r->end_rss_kb = status_kb("VmRSS");
    pthread_barrier_destroy(&start);
    bk_unmap(tids, o->threads * sizeof(pthread_t));

    long first = w[0].t_start, last = w[0].t_end, cpu = 0;
    for (unsigned i = 0; i < o->threads; i++) {
        first = w[i].t_start < first ? w[i].t_start : first;
        last = w[i].t_end > last ? w[i].t_end : last;
        cpu += w[i].cpu_ns;
    }
    r->seconds = (double)(last - first) / 1e9;
    r->cpu_seconds = (double)cpu / 1e9;
}

/*
 * churn: every wave creates one worker per lane, each runs its lane's next share, and all are
 * joined; thread creation and exit (and the allocator's thread-exit work) are part of the timed
 * work. After each wave, outside the clock, VmRSS is sampled: with the live data stationary, a
 * footprint that keeps growing over the waves is the allocator's, which is what review point (h)
 * asks about, unlike a single reading after the last join.
 */
static void run_churn(worker_t *w, const options_t *o, result_t *r)
{
    unsigned lanes = o->threads, waves = w[0].script.waves;
    pthread_t *tids = bk_map(lanes * sizeof(pthread_t));
    long *wave_rss = bk_map(waves * sizeof(long));
    long wall = 0, cpu = 0;

    for (unsigned i = 0; i < lanes; i++) {
        w[i].cursor = w[i].script.ops;
    }
    r->tables_kb = bk_resident_kb();
    r->base_rss_kb = status_kb("VmRSS");
    r->peak_reset = reset_peak_rss();
    long faults = minor_faults();
    for (unsigned wave = 0; wave < waves; wave++) {
        long t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        start_threads(w, lanes, churn_worker, tids);
        for (unsigned i = 0; i < lanes; i++) {
            int err = pthread_join(tids[i], NULL);
            if (err != 0) {
                die("pthread_join failed: %s", strerror(err));
            }
        }
        cpu += now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        wall += now_ns(CLOCK_MONOTONIC) - t0;
        wave_rss[wave] = status_kb("VmRSS");
    }
    r->minflt = minor_faults() - faults;
    r->peak_rss_kb = status_kb("VmHWM");
    r->end_rss_kb = wave_rss[waves - 1];
    r->seconds = (double)wall / 1e9;
    r->cpu_seconds = (double)cpu / 1e9;

    /*
     * Compare the end of the first full cycle of the shifting mix (4 waves) with the last wave
     * before the final drain; the live bytes at both points are exact because waves end together.
     */
    unsigned first = waves >= 5 ? 3 : 0, last = waves >= 2 ? waves - 2 : 0;
    uint64_t live_first = 0, live_last = 0;
    long max_rss = 0;
    for (unsigned i = 0; i < lanes; i++) {
        live_first += w[i].script.wave_live[first];
        live_last += w[i].script.wave_live[last];
    }
    for (unsigned wave = 0; wave < waves; wave++) {
        max_rss = wave_rss[wave] > max_rss ? wave_rss[wave] : max_rss;
        if (o->common.verbose) {
            uint64_t live = 0;
            for (unsigned i = 0; i < lanes; i++) {
                live += w[i].script.wave_live[wave];
            }
            printf("WAVE allocator=%s wave=%u rss_kb=%ld live_kb=%" PRIu64 "\n", o->common.label,
                   wave, wave_rss[wave], live / 1024);
        }
    }
    r->wave_rss_first_kb = wave_rss[first];
    r->wave_rss_last_kb = wave_rss[last];
    r->wave_rss_max_kb = max_rss;
    r->wave_live_first = live_first;
    r->wave_live_last = live_last;
    bk_unmap(wave_rss, waves * sizeof(long));
    bk_unmap(tids, lanes * sizeof(pthread_t));
}

static void report(const options_t *o, unsigned rep, const result_t *r)
{
    const char *wl = workload_names[o->workload];
    double pairs = (double)r->mallocs;
    double ops_per_s = r->seconds > 0 ? pairs / r->seconds : 0;
    /* CPU time per pair: the cost of a malloc+free on one core, whatever the thread count. */
    double ns_per_pair = pairs > 0 ? r->cpu_seconds * 1e9 / pairs : 0;
    if (!o->common.quiet) {
        printf("%-8s %-16s t=%-3u rep %u: %8.3f M mallocs/s  %7.1f ns/pair (cpu)  peak RSS %8.1f "
               "MiB (base %.1f, of it tables %.1f)  end RSS %8.1f MiB  peak live %8.1f MiB%s\n",
               wl, o->common.label, o->threads, rep, ops_per_s / 1e6, ns_per_pair,
               r->peak_rss_kb / 1024.0, r->base_rss_kb / 1024.0, r->tables_kb / 1024.0,
               r->end_rss_kb / 1024.0, (double)r->peak_live / 1048576.0,
               r->peak_reset ? "" : "  (VmHWM not reset)");
        if (o->workload == WL_CHURN) {
            printf("%-8s %-16s t=%-3u rep %u: RSS after wave: %.1f MiB (live %.1f) early, %.1f MiB "
                   "(live %.1f) late, max %.1f MiB\n",
                   wl, o->common.label, o->threads, rep, r->wave_rss_first_kb / 1024.0,
                   (double)r->wave_live_first / 1048576.0, r->wave_rss_last_kb / 1024.0,
                   (double)r->wave_live_last / 1048576.0, r->wave_rss_max_kb / 1024.0);
        }
    }
    printf("RESULT allocator=%s workload=%s threads=%u rep=%u seed=%" PRIu64 " mallocs=%" PRIu64
           " frees=%" PRIu64 " seconds=%.6f ops_per_s=%.0f calls_per_s=%.0f ns_per_pair=%.2f "
           "peak_rss_kb=%ld base_rss_kb=%ld end_rss_kb=%ld tables_kb=%ld peak_live_kb=%" PRIu64
           " peak_reset=%d minflt=%ld faults_per_mop=%.1f malloc_from=%s",
           o->common.label, wl, o->threads, rep, o->common.seed, r->mallocs, r->mallocs, r->seconds,
           ops_per_s, 2 * ops_per_s, ns_per_pair, r->peak_rss_kb, r->base_rss_kb, r->end_rss_kb,
           r->tables_kb, (r->peak_live + 1023) / 1024, r->peak_reset ? 1 : 0, r->minflt,
           pairs > 0 ? (double)r->minflt * 1e6 / (2 * pairs) : 0.0, base_name(entry_object()));
    if (o->workload == WL_CHURN) {
        printf(" wave_rss_first_kb=%ld wave_rss_last_kb=%ld wave_rss_max_kb=%ld"
               " wave_live_first_kb=%" PRIu64 " wave_live_last_kb=%" PRIu64,
               r->wave_rss_first_kb, r->wave_rss_last_kb, r->wave_rss_max_kb,
               r->wave_live_first / 1024, r->wave_live_last / 1024);
    }
    printf("\n");
    fflush(stdout);
}

/* Generates the work of thread i (lane i in churn) before timing, and faults its pointer table
 * in: the tables' RSS stays constant during the work. */
static void prepare_worker(worker_t *w, const options_t *o, unsigned i)
{
    switch (o->workload) {
    case WL_ORIGINAL:
    case WL_CAPPED:
        gen_original(&w->script, o, i, o->workload == WL_CAPPED);
        break;
    case WL_SINGLE:
        gen_single(&w->script, o, i);
        break;
    case WL_TCL:
        gen_model(&w->script, o, i, 0, WL_TCL);
        break;
    case WL_CHURN:
        gen_model(&w->script, o, i, o->per_worker, WL_CHURN);
        break;
    case WL_XTHREAD: {
        uint64_t rng = rng_stream(o->common.seed, WL_XTHREAD, i);
        w->xt_batches = (o->work + XT_BATCH - 1) / XT_BATCH;
        w->sizes = bk_map(w->xt_batches * XT_BATCH * sizeof(uint32_t));
        for (uint64_t k = 0; k < w->xt_batches * XT_BATCH; k++) {
            w->sizes[k] = mix_size(&rng, tcl_mix);
        }
        w->script.mallocs = w->xt_batches * XT_BATCH;
        break;
    }
    default:
        die("internal: workload %d", (int)o->workload);
    }
    if (w->script.nslots > 0) {
        w->slots = bk_map(w->script.nslots * sizeof(void *));
        memset(w->slots, 0, w->script.nslots * sizeof(void *));
    }
}

/* One repetition of the timed work; r comes with the script's figures, xthread measures its own
 * peak of live bytes. */
static void run_rep(worker_t *w, const options_t *o, xt_ring_t *rings, result_t *r)
{
    switch (o->workload) {
    case WL_XTHREAD:
        for (unsigned i = 0; i < o->threads; i++) {
            atomic_store(&rings[i].head, 0);
            atomic_store(&rings[i].tail, 0);
        }
        run_parallel(w, o, xthread_worker, r);
        r->peak_live = 0;
        for (unsigned i = 0; i < o->threads; i++) {
            r->peak_live += w[i].xt_peak_live;
        }
        break;
    case WL_CHURN:
        run_churn(w, o, r);
        break;
    default:
        run_parallel(w, o, script_worker, r);
        break;
    }
}

int main(int argc, char **argv)
{
    options_t o;
    parse_options(argc, argv, &o);
    bench_check_allocator(argv[0], &o.common, true); /* zippy, -m: exit 3 unless it is in use */

    /* Everything below, up to the timed region, only prepares the work. */
    worker_t *w = bk_map(o.threads * sizeof(worker_t));
    uint64_t script_peak_live = 0, total_mallocs = 0;
    xt_ring_t *rings = NULL;
    for (unsigned i = 0; i < o.threads; i++) {
        prepare_worker(&w[i], &o, i);
        script_peak_live += w[i].script.peak_live;
        total_mallocs += w[i].script.mallocs;
    }
    if (o.workload == WL_XTHREAD) {
        rings = bk_map(o.threads * sizeof(xt_ring_t));
        memset(rings, 0, o.threads * sizeof(xt_ring_t)); /* resident now, like the other tables */
        for (unsigned i = 0; i < o.threads; i++) {
            w[i].inbox = &rings[i];
            w[i].outbox = &rings[(i + 1) % o.threads];
        }
    }
    if (!o.common.quiet) {
        printf("memtest: allocator=%s (%s from %s) workload=%s threads=%u mallocs/thread~%" PRIu64
               " seed=%" PRIu64 " reps=%u\n",
               o.common.label, ENTRY_NAME, entry_object(), workload_names[o.workload], o.threads,
               total_mallocs / o.threads, o.common.seed, o.reps);
    }

    for (unsigned rep = 1; rep <= o.reps; rep++) {
        result_t r = {.mallocs = total_mallocs, .peak_live = script_peak_live};
        run_rep(w, &o, rings, &r);
        report(&o, rep, &r);
    }
    return 0;
}
