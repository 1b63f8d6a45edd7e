/*
 * prof.c - the sampling heap profiler (VTMALLOC_PROF_SAMPLE): which call stacks hold the
 * memory, written in the heap-profile format of gperftools that google-pprof reads.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, unwind.c, report.c, proftable.c, options.c, sample.c, page.c, profpages.c
 *
 * Owns: the shards (below), each with its table of call stacks and of sampled large blocks
 * (proftable.c), its pages (profpages.c), which keep the records of the sampled small blocks
 * beside them, and the mutex that protects them. Nothing here runs
 * unless profiling is on, and then only for the sampled allocations (one in VTMALLOC_PROF_SAMPLE
 * bytes on average) and their frees.
 *
 * Which allocations: every byte allocated is a sampling point with probability 1/mean (each
 * page counts its bytes down to an exponential draw, sample.c; large blocks count down per thread,
 * here), so a block of n bytes is sampled with probability 1 - exp(-n/mean). The profile holds
 * the raw samples and names the mean ("heap_v2/mean"); google-pprof divides each stack's
 * figures by that probability, so its totals are unbiased estimates of the live bytes and
 * objects per stack, and of what each stack allocated since the start.
 *
 * Recognising the free of a sampled block, by any thread, without a test on the free fast
 * path: a sampled small block is not handed out from the thread's page but from one of the
 * profiler's own pages (owner VT_OWNER_PROF; profpages.c), which no thread cache owns, so its
 * free always takes the slow path (alloc.c), which brings it here. A large block's free is a slow
 * path anyway; it looks the address up here while profiling is on.
 *
 * Never calls malloc: the tables are mapped (proftable.c) and grow by doubling. The stack is taken
 * (unwind.c) with the profiler's mutex not held: for the frames it cannot step through itself
 * it calls glibc's backtrace, which may allocate the first time (it loads libgcc_s), and a
 * thread that is inside the profiler is not sampled again (in_prof), so that allocation is
 * served as any other.
 */
#include "internal.h"
#include "profpages.h"
#include "unwindmemo.h"

/* Frames kept per stack, and frames looked at (ours come first and are left out). */
#define PROF_DEPTH VT_PROF_DEPTH
#define PROF_SKIP  8
_Static_assert(PROF_DEPTH + PROF_SKIP <= VT_UNWIND_MEMO_FRAMES, "a sampled stack fits the memo");

/* The profiler's state is split into shards, each with its own lock, so that threads that
 * sample at once on different CPUs do not queue on one mutex. That happens more than one would
 * think: sampling is by bytes asked for, not bytes touched, and memtest single's two threads
 * (blocks of up to 16 KiB, 100M mallocs a second) sample 1.5M blocks a second between them;
 * with one lock for all they ran at half the speed. A small block is recorded in the shard of
 * the CPU the thread runs on, and taken from that shard's pages, which name the shard for its
 * free. Shards by CPU rather than by thread, so that a server that starts thousands of threads
 * keeps pages in no more shards than it has CPUs. A large block is recorded in the shard its
 * address hashes to, which its free finds again. A stack that several shards saw appears once
 * per shard in a profile; google-pprof adds such lines up. */
#define PROF_SHARDS 8

typedef struct prof_shard {
    vt_lock_t lock;
    vt_prof_tables_t t;                      /* its stacks and live samples (proftable.c) */
    vt_prof_pages_t pages;                   /* where its small samples live (profpages.c) */
} __attribute__((aligned(64))) prof_shard_t; /* a cache line of its own */

/* Every field of a shard belongs to its lock. */
static prof_shard_t shards[PROF_SHARDS] = {[0 ... PROF_SHARDS - 1] = {.lock = VT_LOCK_INIT}};
/* Our own code, whose frames are left out of stacks: set once, by the first sample; hi is
 * stored last (release), so a reader that sees it sees lo. Every writer stores the same. */
static _Atomic uintptr_t self_lo, self_hi;

/* The calling thread is inside the profiler: it is not sampled again. */
static __thread bool in_prof __attribute__((tls_model("initial-exec")));
/* The shard of the calling thread's small samples: that of the CPU it ran on when it last
 * asked, asked again every SHARD_RECHECK samples. Asking costs about 45 instructions, a twelfth
 * of a sample; a thread that moved to another CPU meanwhile shares a shard for a few samples. */
#define SHARD_RECHECK 32
static __thread uint8_t my_shard __attribute__((tls_model("initial-exec")));
static __thread uint8_t shard_left __attribute__((tls_model("initial-exec")));
/* Bytes until the calling thread's next sampled large block. */
static __thread int64_t large_left __attribute__((tls_model("initial-exec")));

VT_EXPORT size_t vt_prof_sample_bytes(void)
{
    return vt_options.prof_sample;
}

/* ---- Recording -------------------------------------------------------------------------- */

/* The caller's stack from the frames of a walk (unwind.c): our own left out, each address moved
 * back into its call instruction (a return address may already be the next function's first byte).
 */
static uint32_t callers(const uintptr_t *frames, int n, uintptr_t *pcs)
{
    uintptr_t hi = atomic_load_explicit(&self_hi, memory_order_acquire), lo;
    if (hi != 0) {
        lo = atomic_load_explicit(&self_lo, memory_order_relaxed);
    } else {
        vt_code_object_t self = {0};
        vt_os_code_object((uintptr_t)callers, &self);
        lo = self.start;
        hi = self.end;
        atomic_store_explicit(&self_lo, lo, memory_order_relaxed);
        atomic_store_explicit(&self_hi, hi, memory_order_release);
    }
    int first = 0;
    while (first < n && frames[first] >= lo && frames[first] < hi)
        first++;
    uint32_t depth = 0;
    for (int i = first; i < n && depth < PROF_DEPTH; i++)
        pcs[depth++] = frames[i] - 1;
    return depth;
}

/* The index of the stack in the shard's table, UINT32_MAX when there is no memory for it. The
 * memo's word (`known`, owner only) keeps the index and the table's generation from the last
 * time this thread sampled this very stack: while the generation is the shard's, the index is
 * good, and the filtering, hashing and comparing are skipped. Generations are unique over all
 * shards (proftable.c), so a word noted in another shard never matches. Lock held. */
static uint32_t stack_locked(prof_shard_t *sh, const uintptr_t *frames, int n, uint64_t *known)
{
    if (known != NULL && *known != 0 && (uint32_t)(*known >> 32) == sh->t.generation)
        return (uint32_t)*known;
    uintptr_t pcs[PROF_DEPTH];
    uint32_t depth = callers(frames, n, pcs);
    uint32_t stack = vt_proftable_stack(&sh->t, pcs, depth);
    if (known != NULL)
        *known = stack == UINT32_MAX ? 0 : (uint64_t)sh->t.generation << 32 | stack;
    return stack;
}

/* A sampled block counts for its stack. Lock held. */
static void count_locked(prof_shard_t *sh, uint32_t stack, size_t size)
{
    vt_prof_stack_t *s = &sh->t.stacks[stack];
    s->live_n++;
    s->live_bytes += size;
    s->alloc_n++;
    s->alloc_bytes += size;
}

static void uncount_locked(prof_shard_t *sh, uint32_t stack, size_t size)
{
    sh->t.stacks[stack].live_n--;
    sh->t.stacks[stack].live_bytes -= size;
}

/* The record of a sampled small block, kept beside it (profpages.c), packs its stack's index
 * plus one (0: no record, the table had no memory), the bytes asked for, and the low bits of
 * the shard table's generation, which tell a record made before a fork (the child clears its
 * tables) from one of the child's own; the generations of 4,096 clears of the shard go by
 * before the bits repeat. */
#define RECORD_GEN_SHIFT  32
#define RECORD_GEN_MASK   0xfffu
#define RECORD_SIZE_SHIFT 44
_Static_assert(VT_SMALL_MAX < (uint64_t)1 << (64 - RECORD_SIZE_SHIFT), "a small size fits");

static uint64_t record_make(const prof_shard_t *sh, uint32_t stack, size_t size)
{
    if (stack == UINT32_MAX)
        return 0;
    return (uint64_t)size << RECORD_SIZE_SHIFT |
           (uint64_t)(sh->t.generation & RECORD_GEN_MASK) << RECORD_GEN_SHIFT | (stack + 1);
}

/* A large block's sample, in the shard's table by address. Lock held. */
static void record_large_locked(prof_shard_t *sh, uintptr_t addr, size_t size, uint32_t stack)
{
    if (stack == UINT32_MAX ||
        !vt_proftable_sample_add(&sh->t,
                                 (vt_prof_sample_t){.addr = addr, .size = size, .stack = stack}))
        return; /* no memory for the record: the block simply goes unrecorded */
    count_locked(sh, stack, size);
}

static void forget_large_locked(prof_shard_t *sh, uintptr_t addr)
{
    vt_prof_sample_t s = vt_proftable_sample_take(&sh->t, addr);
    if (s.addr != 0) /* else recorded before a fork, or not recorded for lack of memory */
        uncount_locked(sh, s.stack, s.size);
}

/* A sampled allocation of the class (tcache.c): NULL when the profiler cannot serve it (the
 * thread is inside the profiler already, or there is no memory); the caller then serves it
 * unsampled. `frame` is the caller's own (__builtin_frame_address(0)): the stack is walked from
 * there, or found in `memo`, the calling thread's cache's memo of its last one
 * (vt_unwind_from_memo), with its index in the table: a loop that samples one call site again
 * and again skips the walk and the table lookup. */
void *vt_prof_alloc_small(unsigned class_idx, size_t size, const void *frame,
                          vt_unwind_memo_t **memo)
{
    if (in_prof)
        return NULL;
    in_prof = true;
    uintptr_t scratch[PROF_DEPTH + PROF_SKIP];
    const uintptr_t *frames;
    uint64_t *known; /* the memo's word for this stack (stack_locked), or NULL */
    int n = vt_unwind_memo_lookup(*memo, frame, PROF_DEPTH + PROF_SKIP, &known, &frames);
    if (n < 0) /* a stack new to the memo: walked, and kept there */
        n = vt_unwind_from_memo(frame, scratch, PROF_DEPTH + PROF_SKIP, memo, &known, &frames);
    if (vt_unlikely(shard_left-- == 0)) {
        my_shard = (uint8_t)(vt_os_cpu() % PROF_SHARDS);
        shard_left = SHARD_RECHECK - 1;
    }
    prof_shard_t *sh = &shards[my_shard];
    vt_mutex_lock(&sh->lock);
    uint64_t *record;
    void *p = vt_profpages_pop_current(&sh->pages, class_idx, &record);
    if (vt_unlikely(p == NULL))
        p = vt_profpages_pop(&sh->pages, class_idx, (uint8_t)(sh - shards), &record);
    if (p != NULL) {
        uint32_t stack = stack_locked(sh, frames, n, known);
        *record = record_make(sh, stack, size);
        if (stack != UINT32_MAX)
            count_locked(sh, stack, size);
    }
    vt_mutex_unlock(&sh->lock);
    in_prof = false;
    return p;
}

/* free() of a block in one of the profiler's pages, by any thread: checked (double and invalid
 * frees are reported as for any block), forgotten, and put back on its page. */
void vt_prof_free_small(vt_page_t *page, void *p)
{
    prof_shard_t *sh = &shards[page->prof_shard];
    vt_mutex_lock(&sh->lock);
    if (vt_page_check_block(page, p, "free")) {
        uint64_t record;
        if (!vt_profpages_put_kept(&sh->pages, page, p, &record))
            record = vt_profpages_put(&sh->pages, page, p);
        uint32_t stack = (uint32_t)record - 1; /* UINT32_MAX for no record */
        /* The bound holds unless the program wrote past its block's end into the records. */
        if (stack < sh->t.stack_count &&
            (record >> RECORD_GEN_SHIFT & RECORD_GEN_MASK) == (sh->t.generation & RECORD_GEN_MASK))
            uncount_locked(sh, stack, (size_t)(record >> RECORD_SIZE_SHIFT));
    }
    vt_mutex_unlock(&sh->lock);
}

/* malloc_trim: every shard's empty pages go back. */
void vt_prof_trim(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++) {
        vt_mutex_lock(&sh->lock);
        vt_profpages_release_empty(&sh->pages);
        vt_mutex_unlock(&sh->lock);
    }
}

/* The purge pass (purge.c): pages nobody sampled into for a retention window go back. */
void vt_prof_pass(void)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return;
    uint32_t now = vt_os_now_ms();
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++) {
        vt_mutex_lock(&sh->lock);
        vt_profpages_pass(&sh->pages, now);
        vt_mutex_unlock(&sh->lock);
    }
}

/* The shard that records a large block: by its address, which its free knows. */
static prof_shard_t *large_shard(const void *p)
{
    return &shards[((uintptr_t)p * VT_FIBONACCI_HASH) >> 61];
}

/* Counts a large allocation down on the calling thread's countdown: true when it is to be
 * sampled (then the caller records it with vt_prof_record_large). */
bool vt_prof_large_due(size_t size)
{
    if (vt_likely(vt_options.prof_sample == 0) || in_prof)
        return false;
    if (large_left == 0)
        large_left = vt_sample_draw();
    large_left -= (int64_t)size;
    if (large_left >= 0)
        return false;
    large_left = vt_sample_draw();
    return true;
}

void vt_prof_record_large(void *p, size_t size)
{
    in_prof = true;
    uintptr_t frames[PROF_DEPTH + PROF_SKIP];
    int n = vt_unwind(frames, PROF_DEPTH + PROF_SKIP);
    prof_shard_t *sh = large_shard(p);
    vt_mutex_lock(&sh->lock);
    record_large_locked(sh, (uintptr_t)p, size, stack_locked(sh, frames, n, NULL));
    vt_mutex_unlock(&sh->lock);
    in_prof = false;
}

/* free() or realloc of a large block while profiling is on: its sample, if it has one, goes. */
void vt_prof_forget_large(void *p)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return;
    prof_shard_t *sh = large_shard(p);
    vt_mutex_lock(&sh->lock);
    forget_large_locked(sh, (uintptr_t)p);
    vt_mutex_unlock(&sh->lock);
}

/* ---- The profile ------------------------------------------------------------------------ */

/* The lines of one shard's stacks. Its lock held. */
static bool write_stacks_locked(const prof_shard_t *sh, int fd)
{
    for (size_t i = 0; i < sh->t.stack_count; i++) {
        const vt_prof_stack_t *s = &sh->t.stacks[i];
        if (s->alloc_n == 0)
            continue;
        if (!vt_message_fd(fd, "%zu: %zu [%zu: %zu] @", (size_t)s->live_n, (size_t)s->live_bytes,
                           (size_t)s->alloc_n, (size_t)s->alloc_bytes))
            return false;
        for (uint32_t k = 0; k < s->depth; k++)
            if (!vt_message_fd(fd, " %p", (void *)s->pcs[k]))
                return false;
        if (!vt_message_fd(fd, "\n"))
            return false;
    }
    return true;
}

/* One line per stack: "live_n: live_bytes [alloc_n: alloc_bytes] @ pc pc ...", after a
 * header with the totals, then the process's memory map, which google-pprof needs to find the
 * code each address belongs to. Every shard's lock held, so the lines add up to the totals. */
static bool write_profile_locked(int fd)
{
    uint64_t live_n = 0, live_bytes = 0, alloc_n = 0, alloc_bytes = 0;
    for (const prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++) {
        for (size_t i = 0; i < sh->t.stack_count; i++) {
            live_n += sh->t.stacks[i].live_n;
            live_bytes += sh->t.stacks[i].live_bytes;
            alloc_n += sh->t.stacks[i].alloc_n;
            alloc_bytes += sh->t.stacks[i].alloc_bytes;
        }
    }
    if (!vt_message_fd(fd, "heap profile: %zu: %zu [%zu: %zu] @ heap_v2/%u\n", (size_t)live_n,
                       (size_t)live_bytes, (size_t)alloc_n, (size_t)alloc_bytes,
                       vt_options.prof_sample))
        return false;
    for (const prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++)
        if (!write_stacks_locked(sh, fd))
            return false;
    return vt_message_fd(fd, "\nMAPPED_LIBRARIES:\n") && vt_os_copy_file("/proc/self/maps", fd);
}

/* Every shard's lock, in the order of the array (the only place that holds two, with fork). */
static void lock_all(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++)
        vt_mutex_lock(&sh->lock);
}

static void unlock_all(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++)
        vt_mutex_unlock(&sh->lock);
}

static bool write_profile(int fd, void *arg)
{
    (void)arg;
    lock_all();
    bool ok = write_profile_locked(fd);
    int saved = errno;
    unlock_all();
    errno = saved;
    return ok;
}

VT_EXPORT int vt_prof_dump(const char *path)
{
    if (vt_options.prof_sample == 0) {
        errno = ENOTSUP;
        return -1;
    }
    return vt_os_write_file(path, write_profile, NULL);
}

/* ---- fork ------------------------------------------------------------------------------- */

void vt_prof_fork_prepare(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++)
        vt_lock_take(&sh->lock);
}

void vt_prof_fork_parent(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++)
        vt_lock_give(&sh->lock);
}

/* The child starts a clean profile: its parent's samples and stacks are not its own. The
 * blocks stay valid; a free of one finds no sample and is served as usual. */
void vt_prof_fork_child(void)
{
    for (prof_shard_t *sh = shards; sh < shards + PROF_SHARDS; sh++) {
        vt_proftable_clear(&sh->t);
        vt_lock_give(&sh->lock); /* held by this thread's parent copy: see span.c */
    }
    in_prof = false;
}
