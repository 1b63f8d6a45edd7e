/*
 * prof.c - the sampling heap profiler (VTMALLOC_PROF_SAMPLE): which call stacks hold the
 * memory, written in the heap-profile format of gperftools that google-pprof reads.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, report.c, options.c, sizeclass.c, page.c, span.c, global.c
 *
 * Owns: the table of call stacks, the table of live sampled blocks, the profiler's pages, and
 * the mutex that protects all three. Nothing here runs unless profiling is on, and then only
 * for the sampled allocations (one in VTMALLOC_PROF_SAMPLE bytes on average) and their frees.
 *
 * Which allocations: every byte allocated is a sampling point with probability 1/mean (page.c
 * counts each page's bytes down to an exponential draw; large blocks count down per thread,
 * here), so a block of n bytes is sampled with probability 1 - exp(-n/mean). The profile holds
 * the raw samples and names the mean ("heap_v2/mean"); google-pprof divides each stack's
 * figures by that probability, so its totals are unbiased estimates of the live bytes and
 * objects per stack, and of what each stack allocated since the start.
 *
 * Recognising the free of a sampled block, by any thread, without a test on the free fast
 * path: a sampled small block is not handed out from the thread's page but from one of the
 * profiler's own pages (owner VT_OWNER_PROF), which no thread cache owns, so its free always
 * takes the slow path (alloc.c), which brings it here. A large block's free is a slow path
 * anyway; it looks the address up here while profiling is on.
 *
 * Never calls malloc: the tables are mapped (os.c) and grow by doubling. The stack is taken
 * with the profiler's mutex not held; glibc's backtrace may allocate the first time (it loads
 * libgcc_s), and a thread that is inside the profiler is not sampled again (in_prof), so that
 * allocation is served as any other.
 */
#include "internal.h"

/* Frames kept per stack, and frames looked at (ours come first and are left out). */
#define PROF_DEPTH 32
#define PROF_SKIP  8

/* The tables start this big (entries) and double when half full. */
#define FIRST_STACKS  1024
#define FIRST_SAMPLES 1024

typedef struct prof_stack {
    uint64_t hash;   /* 0: an empty slot */
    uint32_t depth;  /* frames in pcs */
    uint64_t live_n; /* sampled blocks live now, and their bytes (as asked for) */
    uint64_t live_bytes;
    uint64_t alloc_n; /* sampled blocks allocated since the start (or the fork), and bytes */
    uint64_t alloc_bytes;
    uintptr_t pcs[PROF_DEPTH]; /* call sites, innermost first */
} prof_stack_t;

typedef struct prof_sample {
    uintptr_t addr; /* 0: an empty slot */
    size_t size;    /* bytes asked for */
    uint32_t stack; /* index in the stack table */
} prof_sample_t;

static struct prof {
    pthread_mutex_t lock;
    prof_stack_t *stacks; /* open addressing by hash, linear probing */
    size_t stack_cap, stack_count;
    prof_sample_t *samples; /* open addressing by address, backward-shift deletion */
    size_t sample_cap, sample_count;
    vt_page_t *current[VT_CLASS_COUNT]; /* the profiler's page of each class, or NULL */
    uintptr_t self_lo, self_hi;         /* our own code: frames there are left out */
} pf = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The calling thread is inside the profiler: it is not sampled again. */
static __thread bool in_prof __attribute__((tls_model("initial-exec")));
/* Bytes until the calling thread's next sampled large block. */
static __thread int64_t large_left __attribute__((tls_model("initial-exec")));

VT_EXPORT size_t vt_prof_sample_bytes(void)
{
    return vt_options.prof_sample;
}

/* ---- The tables ------------------------------------------------------------------------- */

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * VT_FIBONACCI_HASH) >> 32) & (cap - 1);
}

/* Maps a table of cap entries of `size` bytes; NULL when there is no memory. */
static void *table_map(size_t cap, size_t size)
{
    return vt_os_map((cap * size + vt_os_page_size() - 1) & ~(vt_os_page_size() - 1),
                     vt_os_page_size());
}

static void table_unmap(void *table, size_t cap, size_t size)
{
    if (table != NULL)
        vt_os_unmap(table, (cap * size + vt_os_page_size() - 1) & ~(vt_os_page_size() - 1));
}

static void sample_insert_locked(prof_sample_t s)
{
    size_t i = slot_of(s.addr, pf.sample_cap);
    while (pf.samples[i].addr != 0)
        i = (i + 1) & (pf.sample_cap - 1);
    pf.samples[i] = s;
    pf.sample_count++;
}

/* Room for one more sample, or false. Lock held. */
static bool sample_room_locked(void)
{
    if (2 * (pf.sample_count + 1) <= pf.sample_cap)
        return true;
    size_t cap = pf.sample_cap ? 2 * pf.sample_cap : FIRST_SAMPLES;
    prof_sample_t *fresh = table_map(cap, sizeof(prof_sample_t));
    if (fresh == NULL)
        return false;
    prof_sample_t *old = pf.samples;
    size_t old_cap = pf.sample_cap;
    pf.samples = fresh;
    pf.sample_cap = cap;
    pf.sample_count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].addr != 0)
            sample_insert_locked(old[i]);
    table_unmap(old, old_cap, sizeof(prof_sample_t));
    return true;
}

/* Takes the sample of addr out of the table: its entry, or one with addr 0. Lock held. */
static prof_sample_t sample_remove_locked(uintptr_t addr)
{
    prof_sample_t found = {0};
    if (pf.sample_cap == 0)
        return found;
    size_t mask = pf.sample_cap - 1, hole = slot_of(addr, pf.sample_cap);
    while (pf.samples[hole].addr != addr) {
        if (pf.samples[hole].addr == 0)
            return found;
        hole = (hole + 1) & mask;
    }
    found = pf.samples[hole];
    pf.sample_count--;
    for (size_t i = (hole + 1) & mask; pf.samples[i].addr != 0; i = (i + 1) & mask) {
        if (!vt_probe_stays(hole, i, slot_of(pf.samples[i].addr, pf.sample_cap))) {
            pf.samples[hole] = pf.samples[i];
            hole = i;
        }
    }
    pf.samples[hole].addr = 0;
    return found;
}

static uint64_t stack_hash(const uintptr_t *pcs, uint32_t depth)
{
    uint64_t h = depth;
    for (uint32_t i = 0; i < depth; i++)
        h = (h ^ pcs[i]) * VT_FIBONACCI_HASH;
    return h | 1; /* never 0, the empty slot */
}

/* The index of the stack's entry, added if new; UINT32_MAX when there is no memory. Lock
 * held. */
static uint32_t stack_find_locked(const uintptr_t *pcs, uint32_t depth)
{
    if (2 * (pf.stack_count + 1) > pf.stack_cap) {
        size_t cap = pf.stack_cap ? 2 * pf.stack_cap : FIRST_STACKS;
        prof_stack_t *fresh = table_map(cap, sizeof(prof_stack_t));
        if (fresh == NULL)
            return UINT32_MAX;
        /* Indices change: the samples name their stacks by index, so they are renamed. */
        uint32_t *moved = table_map(pf.stack_cap ? pf.stack_cap : 1, sizeof(uint32_t));
        if (moved == NULL) {
            table_unmap(fresh, cap, sizeof(prof_stack_t));
            return UINT32_MAX;
        }
        for (size_t i = 0; i < pf.stack_cap; i++) {
            if (pf.stacks[i].hash == 0)
                continue;
            size_t j = slot_of(pf.stacks[i].hash, cap);
            while (fresh[j].hash != 0)
                j = (j + 1) & (cap - 1);
            fresh[j] = pf.stacks[i];
            moved[i] = (uint32_t)j;
        }
        for (size_t i = 0; i < pf.sample_cap; i++)
            if (pf.samples[i].addr != 0)
                pf.samples[i].stack = moved[pf.samples[i].stack];
        table_unmap(moved, pf.stack_cap ? pf.stack_cap : 1, sizeof(uint32_t));
        table_unmap(pf.stacks, pf.stack_cap, sizeof(prof_stack_t));
        pf.stacks = fresh;
        pf.stack_cap = cap;
    }
    uint64_t hash = stack_hash(pcs, depth);
    size_t i = slot_of(hash, pf.stack_cap);
    for (;; i = (i + 1) & (pf.stack_cap - 1)) {
        prof_stack_t *s = &pf.stacks[i];
        if (s->hash == 0) {
            s->hash = hash;
            s->depth = depth;
            memcpy(s->pcs, pcs, depth * sizeof(uintptr_t));
            pf.stack_count++;
            return (uint32_t)i;
        }
        if (s->hash == hash && s->depth == depth &&
            memcmp(s->pcs, pcs, depth * sizeof(uintptr_t)) == 0)
            return (uint32_t)i;
    }
}

/* ---- Recording -------------------------------------------------------------------------- */

/* The caller's stack, our own frames left out; each address moved back into its call
 * instruction (a return address may already be the next function's first byte). */
static uint32_t take_stack(uintptr_t *pcs)
{
    void *frames[PROF_DEPTH + PROF_SKIP];
    int n = vt_os_backtrace(frames, PROF_DEPTH + PROF_SKIP);
    if (pf.self_hi == 0)
        vt_os_code_range((const void *)take_stack, &pf.self_lo, &pf.self_hi);
    int first = 0;
    while (first < n && (uintptr_t)frames[first] >= pf.self_lo &&
           (uintptr_t)frames[first] < pf.self_hi)
        first++;
    uint32_t depth = 0;
    for (int i = first; i < n && depth < PROF_DEPTH; i++)
        pcs[depth++] = (uintptr_t)frames[i] - 1;
    return depth;
}

/* Records a sampled block, its stack taken by the caller. Lock held. */
static void record_locked(uintptr_t addr, size_t size, const uintptr_t *pcs, uint32_t depth)
{
    uint32_t stack = stack_find_locked(pcs, depth);
    if (stack == UINT32_MAX || !sample_room_locked())
        return; /* no memory for the record: the block simply goes unrecorded */
    prof_stack_t *s = &pf.stacks[stack];
    s->live_n++;
    s->live_bytes += size;
    s->alloc_n++;
    s->alloc_bytes += size;
    sample_insert_locked((prof_sample_t){.addr = addr, .size = size, .stack = stack});
}

static void forget_locked(uintptr_t addr)
{
    prof_sample_t s = sample_remove_locked(addr);
    if (s.addr == 0)
        return; /* recorded before a fork, or not recorded for lack of memory */
    pf.stacks[s.stack].live_n--;
    pf.stacks[s.stack].live_bytes -= s.size;
}

/* A block of the class from the profiler's page, taking a fresh run when it has none left.
 * Lock held. */
static void *prof_pop_locked(unsigned class_idx)
{
    vt_page_t *page = pf.current[class_idx];
    if (page == NULL || (page->free == NULL && !vt_page_refill(page))) {
        /* A full page stays the profiler's (its blocks come back through vt_prof_free_small);
         * the class gets a new one. */
        page = vt_global_take_run(vt_classes[class_idx].units, 1, class_idx);
        if (page == NULL)
            return NULL;
        vt_page_assign(page, class_idx, VT_OWNER_PROF);
        vt_page_refill(page);
        pf.current[class_idx] = page;
    }
    return vt_page_pop(page);
}

/* A sampled allocation of the class (tcache.c): NULL when the profiler cannot serve it (the
 * thread is inside the profiler already, or there is no memory); the caller then serves it
 * unsampled. */
void *vt_prof_alloc_small(unsigned class_idx, size_t size)
{
    if (in_prof)
        return NULL;
    in_prof = true;
    uintptr_t pcs[PROF_DEPTH];
    uint32_t depth = take_stack(pcs);
    vt_mutex_lock(&pf.lock);
    void *p = prof_pop_locked(class_idx);
    if (p != NULL)
        record_locked((uintptr_t)p, size, pcs, depth);
    vt_mutex_unlock(&pf.lock);
    in_prof = false;
    return p;
}

/* free() of a block in one of the profiler's pages, by any thread: checked (double and invalid
 * frees are reported as for any block), forgotten, and put back on its page. A page that
 * empties goes back to its span, unless it is its class's current page: a program that
 * allocates and frees one block in a loop would otherwise take a fresh run, and fault it in,
 * at every sample. malloc_trim gives the empty current pages back too (vt_prof_trim). */
void vt_prof_free_small(vt_page_t *page, void *p)
{
    vt_mutex_lock(&pf.lock);
    if (!vt_page_check_block(page, p, "free")) {
        vt_mutex_unlock(&pf.lock);
        return;
    }
    forget_locked((uintptr_t)p);
    vt_page_push(page, p);
    if (--page->used == 0 && pf.current[page->class_idx] != page) {
        vt_page_unassign(page);
        vt_span_put_run(page);
    }
    vt_mutex_unlock(&pf.lock);
}

/* malloc_trim: the empty current pages go back to their spans. */
void vt_prof_trim(void)
{
    vt_mutex_lock(&pf.lock);
    for (unsigned c = 0; c < VT_CLASS_COUNT; c++) {
        vt_page_t *page = pf.current[c];
        if (page != NULL && page->used == 0) {
            pf.current[c] = NULL;
            vt_page_unassign(page);
            vt_span_put_run(page);
        }
    }
    vt_mutex_unlock(&pf.lock);
}

/* Counts a large allocation down on the calling thread's countdown: true when it is to be
 * sampled (then the caller records it with vt_prof_record_large). */
bool vt_prof_large_due(size_t size)
{
    if (vt_likely(vt_options.prof_sample == 0) || in_prof)
        return false;
    if (large_left == 0)
        large_left = vt_page_sample_draw();
    large_left -= (int64_t)size;
    if (large_left >= 0)
        return false;
    large_left = vt_page_sample_draw();
    return true;
}

void vt_prof_record_large(void *p, size_t size)
{
    in_prof = true;
    uintptr_t pcs[PROF_DEPTH];
    uint32_t depth = take_stack(pcs);
    vt_mutex_lock(&pf.lock);
    record_locked((uintptr_t)p, size, pcs, depth);
    vt_mutex_unlock(&pf.lock);
    in_prof = false;
}

/* free() or realloc of a large block while profiling is on: its sample, if it has one, goes. */
void vt_prof_forget_large(void *p)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return;
    vt_mutex_lock(&pf.lock);
    forget_locked((uintptr_t)p);
    vt_mutex_unlock(&pf.lock);
}

/* ---- The profile ------------------------------------------------------------------------ */

/* One line per stack: "live_n: live_bytes [alloc_n: alloc_bytes] @ pc pc ...", after a
 * header with the totals, then the process's memory map, which google-pprof needs to find the
 * code each address belongs to. Lock held. */
static bool write_profile_locked(int fd)
{
    uint64_t live_n = 0, live_bytes = 0, alloc_n = 0, alloc_bytes = 0;
    for (size_t i = 0; i < pf.stack_cap; i++) {
        live_n += pf.stacks[i].live_n;
        live_bytes += pf.stacks[i].live_bytes;
        alloc_n += pf.stacks[i].alloc_n;
        alloc_bytes += pf.stacks[i].alloc_bytes;
    }
    if (!vt_message_fd(fd, "heap profile: %zu: %zu [%zu: %zu] @ heap_v2/%u\n", (size_t)live_n,
                       (size_t)live_bytes, (size_t)alloc_n, (size_t)alloc_bytes,
                       vt_options.prof_sample))
        return false;
    for (size_t i = 0; i < pf.stack_cap; i++) {
        const prof_stack_t *s = &pf.stacks[i];
        if (s->hash == 0 || s->alloc_n == 0)
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
    return vt_message_fd(fd, "\nMAPPED_LIBRARIES:\n") && vt_os_copy_file("/proc/self/maps", fd);
}

static bool write_profile(int fd, void *arg)
{
    (void)arg;
    vt_mutex_lock(&pf.lock);
    bool ok = write_profile_locked(fd);
    int saved = errno;
    vt_mutex_unlock(&pf.lock);
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
    pthread_mutex_lock(&pf.lock);
}

void vt_prof_fork_parent(void)
{
    pthread_mutex_unlock(&pf.lock);
}

/* The child starts a clean profile: its parent's samples and stacks are not its own. The
 * blocks stay valid; a free of one finds no sample and is served as usual. */
void vt_prof_fork_child(void)
{
    if (pf.stack_cap > 0)
        memset(pf.stacks, 0, pf.stack_cap * sizeof(prof_stack_t));
    if (pf.sample_cap > 0)
        memset(pf.samples, 0, pf.sample_cap * sizeof(prof_sample_t));
    pf.stack_count = pf.sample_count = 0;
    in_prof = false;
    pthread_mutex_unlock(&pf.lock); /* held by this thread's parent copy: see span.c */
}
