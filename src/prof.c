/*
 * prof.c - the sampling heap profiler (VTMALLOC_PROF_SAMPLE): which call stacks hold the
 * memory. This file takes the samples and sees their frees; profdump.c writes the profile.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, report.c, unwind.c, proftable.c, options.c, page.c, thread.c, profpages.c,
 *        profown.c
 *
 * Owns: the shards (profshard.h), each with its table of call stacks and of sampled large
 * blocks (proftable.c), its pages (profpages.c), which keep the records of the sampled small
 * blocks beside them, and the mutex that protects them; and each thread cache's record of the
 * profiler's pages it owns (profown.c). Nothing here runs unless profiling is on, and then only
 * for the sampled allocations (one in VTMALLOC_PROF_SAMPLE bytes on average) and their frees.
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
 * profiler's own pages (owner VT_OWNER_PROF; profpages.c), a shard's or one that a thread
 * samples into without a lock (profown.c), which the fast path's owner test never matches, so
 * its free always takes the slow path (alloc.c), which brings it here. A large block's free is a
 * slow path anyway; it looks the address up here while profiling is on.
 *
 * What is live is not counted as blocks come and go: a free only clears the block's record,
 * and a profile counts the records that are set (profdump.c). What each stack allocated since
 * the start is counted at the sample, under the shard's lock, or by the sampling thread itself
 * and added in batches (pend_flush).
 *
 * Never calls malloc: the tables are mapped (proftable.c) and grow by doubling. The stack is taken
 * (unwind.c) with the profiler's mutex not held: for the frames it cannot step through itself
 * it calls glibc's backtrace, which may allocate the first time (it loads libgcc_s), and a
 * thread that is inside the profiler is not sampled again (vt_thread.prof_inside), so that
 * allocation is served as any other.
 */
#include "internal.h"
#include "profown.h"
#include "profshard.h"
#include "unwindmemo.h"

_Static_assert(PROF_DEPTH + PROF_SKIP <= VT_UNWIND_MEMO_FRAMES, "a sampled stack fits the memo");

prof_shard_t vt_prof_shards[PROF_SHARDS] = {[0 ... PROF_SHARDS - 1] = {.lock = VT_LOCK_INIT}};
/* Our own code, whose frames are left out of stacks: set once, by the first sample; hi is
 * stored last (release), so a reader that sees it sees lo. Every writer stores the same. */
static _Atomic uintptr_t self_lo, self_hi;

/* The calling thread's words (types.h: vt_thread_t, on the line malloc's fast path keeps
 * hot): prof_inside; prof_shard, the shard of its small samples, that of the CPU it ran on when
 * it last asked, asked again every SHARD_RECHECK samples (asking costs about 45 instructions, a
 * twelfth of a sample; a thread that moved to another CPU meanwhile shares a shard for a few
 * samples); prof_own and prof_memo, its cache's record of its pages of its own and its memo, so
 * that a sample and its free need not reach into the cache's far end. */
#define SHARD_RECHECK 32

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
 * memo's word (`known`, owner only) keeps it from the last time this thread sampled this very
 * stack: while its generation is the shard's, the index is good, and the filtering, hashing and
 * comparing are skipped. Generations are unique over all shards (proftable.c), so a word noted
 * in another shard never matches. Lock held. */
uint32_t vt_prof_stack_locked(prof_shard_t *sh, const uintptr_t *frames, int n, uint64_t *known)
{
    if (known != NULL && *known != 0 && (uint32_t)(*known >> 32) == sh->t.generation)
        return (uint32_t)*known & KNOWN_STACK_MASK;
    uintptr_t pcs[PROF_DEPTH];
    uint32_t depth = callers(frames, n, pcs);
    uint32_t stack = vt_proftable_stack(&sh->t, pcs, depth);
    if (stack >= KNOWN_STACK_MASK) /* the word has no room for it: as if out of memory */
        stack = UINT32_MAX;
    if (known != NULL)
        *known = stack == UINT32_MAX ? 0 : known_make(sh, stack);
    return stack;
}

/* ---- A thread's own pages (profown.c) --------------------------------------------------- */

/* Samples a thread takes through the shards before its samples come from pages of its own:
 * enough that a thread that allocates a few MiB and exits (a server's connection thread) stays
 * with the shards, whose pages it shares: with 16, the soak benchmark's peak with profiling on
 * was about 2 MiB higher (bench/RESULTS.md). A thread that samples this often saves a lock pair
 * at each sample and each free from then on. */
#define OWN_AFTER 64
/* Samples of one stack that a thread counts in its vt_prof_own_t before it adds them to the
 * stack's totals since the start, under the shard's lock: a profile written meanwhile by
 * another thread counts up to this many fewer (it counts the live ones from their records). */
#define PEND_MAX 64
_Static_assert(PEND_MAX < 256 && PEND_MAX * VT_PROF_SHARED_MAX < ((uint64_t)1 << 32),
               "pend_n is a byte, and pend_bytes 32 bits");

/* The cache's record at the thread's first sample: mapped at the cache's first (zero: cold,
 * no pages), kept for the cache's life; NULL when there is no memory for it. */
static VT_NOINLINE vt_prof_own_t *own_first(vt_prof_own_t **slot, vt_unwind_memo_t *memo)
{
    if (*slot == NULL)
        *slot = vt_profown_new();
    vt_thread.prof_memo = memo;
    return vt_thread.prof_own = *slot;
}

/* The counts the thread kept go to their stack's entry. Owner only. */
static void pend_flush(vt_prof_own_t *own)
{
    if (own->pend_n == 0)
        return;
    prof_shard_t *sh = known_shard(own->pend_known);
    vt_mutex_lock(&sh->lock);
    if (known_current(own->pend_known)) /* else its table was cleared (fork): dropped */
        count_locked(sh, (uint32_t)own->pend_known & KNOWN_STACK_MASK, own->pend_n,
                     own->pend_bytes);
    vt_mutex_unlock(&sh->lock);
    own->pend_n = 0;
    own->pend_bytes = 0;
}

/* The memo's word for the stack still names it (known_current): at once when it is the stack
 * of the counts the thread keeps, which was current when they started (sample_own) and stays
 * so until a forked child clears the tables and, with them, forgets those counts
 * (vt_prof_fork_child). That spares a sample a read of the shard's line. */
static inline bool own_knows(const vt_prof_own_t *own, uint64_t known)
{
    return (known == own->pend_known && known != 0) || known_current(known);
}

/* A sample from the thread's own pages, of a stack that the memo knows (`known`): no lock. */
static void *sample_own(vt_prof_own_t *own, unsigned k, size_t size, uint64_t known)
{
    _Atomic uint64_t *record;
    void *p = vt_profown_pop(own, k, (uint8_t)(known_shard(known) - vt_prof_shards), &record);
    if (vt_unlikely(p == NULL))
        return NULL;
    atomic_store_explicit(record, record_make(known, size), memory_order_relaxed);
    if (vt_unlikely(own->pend_known != known || own->pend_n >= PEND_MAX)) {
        pend_flush(own);
        own->pend_known = known;
    }
    own->pend_n++;
    own->pend_bytes += (uint32_t)size;
    return p;
}

void vt_prof_flush_own(void)
{
    if (vt_thread.prof_own != NULL)
        pend_flush(vt_thread.prof_own);
}

/* malloc_trim on a thread with pages of its own: the empty ones go back (those of other threads
 * are theirs until they leave them; each holds one page of a kind it samples at most, besides
 * pages that live samples pin). */
void vt_prof_trim_own(void)
{
    vt_prof_own_t *own = vt_thread.prof_own;
    if (own == NULL)
        return;
    vt_page_t *page = own->pages.head;
    while (page != NULL) {
        vt_page_t *next = page->link.next;
        if (page->used == 0) {
            unsigned k = vt_profown_kind(page->class_idx);
            if (own->current[k] == page)
                own->current[k] = NULL;
            vt_profown_release(own, page);
        }
        page = next;
    }
}

/* The thread's cache hands its pages to the shards: its thread is gone, or is the caller
 * (tcache.c). */
void vt_prof_own_leave(vt_prof_own_t *own)
{
    if (own == NULL)
        return;
    if (vt_thread.prof_own == own) /* the thread leaves its cache (else its thread is gone) */
        vt_thread.prof_own = NULL, vt_thread.prof_memo = NULL;
    pend_flush(own);
    vt_page_t *page;
    while ((page = own->pages.head) != NULL) {
        vt_list_remove(&own->pages, page, VT_PAGE_LINK);
        prof_shard_t *sh = &vt_prof_shards[page->prof_shard];
        vt_mutex_lock(&sh->lock);
        vt_profown_close(page);
        vt_profpages_adopt(&sh->pages, page);
        vt_mutex_unlock(&sh->lock);
    }
    memset(own->current, 0, sizeof(own->current));
    own->hot = false; /* the cache's next thread earns its pages again */
    own->samples = 0;
    own->pend_known = 0;
}

/* ---- Sampling --------------------------------------------------------------------------- */

/* A sample through the calling CPU's shard, under its lock: the stack is looked up there, and
 * the block comes from the shard's pages, or (own_k, the kind of a thread with pages of its own
 * whose stack the memo did not know) from the thread's. */
static void *sample_shard(unsigned class_idx, size_t size, const uintptr_t *frames, int n,
                          uint64_t *known, vt_prof_own_t *own, unsigned own_k)
{
    if (vt_unlikely(vt_thread.prof_shard_left-- == 0)) {
        vt_thread.prof_shard = (uint8_t)(vt_os_cpu() % PROF_SHARDS);
        vt_thread.prof_shard_left = SHARD_RECHECK - 1;
    }
    prof_shard_t *sh = &vt_prof_shards[vt_thread.prof_shard];
    _Atomic uint64_t *record = NULL;
    void *p = NULL;
    if (own_k < VT_PROFOWN_KINDS &&
        (p = vt_profown_pop(own, own_k, vt_thread.prof_shard, &record)) == NULL)
        return NULL;
    vt_mutex_lock(&sh->lock);
    if (p == NULL) {
        p = vt_profpages_pop_current(&sh->pages, class_idx, &record);
        if (vt_unlikely(p == NULL))
            p = vt_profpages_pop(&sh->pages, class_idx, vt_thread.prof_shard, &record);
    }
    if (p != NULL) {
        uint32_t stack = vt_prof_stack_locked(sh, frames, n, known);
        if (stack != UINT32_MAX) {
            atomic_store_explicit(record, record_make(known_make(sh, stack), size),
                                  memory_order_relaxed);
            count_locked(sh, stack, 1, size);
        }
    }
    vt_mutex_unlock(&sh->lock);
    if (own != NULL && !own->hot && ++own->samples >= OWN_AFTER)
        own->hot = true;
    return p;
}

/* vt_prof_alloc_small through a shard: the stack walked if the memo (n, known, frames) did not
 * know it. Apart, so that the common case keeps a small frame. */
static VT_NOINLINE void *sample_walked(unsigned class_idx, size_t size, const void *frame,
                                       vt_unwind_memo_t **memo, int n, uint64_t *known,
                                       const uintptr_t *frames, vt_prof_own_t *own, unsigned k)
{
    uintptr_t scratch[PROF_DEPTH + PROF_SKIP];
    if (n < 0) { /* a stack new to the memo: walked, and kept there (mapped on the first) */
        n = vt_unwind_from_memo(frame, scratch, PROF_DEPTH + PROF_SKIP, memo, &known, &frames);
        if (own != NULL)
            vt_thread.prof_memo = *memo;
    }
    return sample_shard(class_idx, size, frames, n, known, own, k);
}

/* vt_prof_alloc_small past its common case: `w`, the memo's way that answered for this stack,
 * or NULL when the memo was not asked or did not know it (asking again changes nothing). */
static VT_NOINLINE void *sample_slow(unsigned class_idx, size_t size, const void *frame,
                                     vt_unwind_memo_t **memo, vt_prof_own_t **own_slot,
                                     memo_way_t *w)
{
    if (vt_thread.prof_inside)
        return NULL;
    vt_thread.prof_inside = true;
    vt_prof_own_t *own = NULL;
    vt_unwind_memo_t *m;
    if (own_slot == NULL) {
        m = *memo;
    } else {
        own =
            vt_likely(vt_thread.prof_own != NULL) ? vt_thread.prof_own : own_first(own_slot, *memo);
        m = vt_thread.prof_memo;
    }
    if (w == NULL)
        w = vt_unwind_memo_find(m, frame, PROF_DEPTH + PROF_SKIP);
    int n = w != NULL ? w->n : -1;
    uint64_t *known = w != NULL ? &w->user : NULL; /* the memo's word for this stack */
    const uintptr_t *frames = w != NULL ? w->pcs : NULL;
    /* the kind of its own pages that serves the class, or VT_PROFOWN_KINDS for none */
    unsigned k = own != NULL && own->hot ? vt_profown_kind(class_idx) : VT_PROFOWN_KINDS;
    void *p;
    if (n >= 0 && k < VT_PROFOWN_KINDS && own_knows(own, *known))
        p = sample_own(own, k, size, *known);
    else
        p = sample_walked(class_idx, size, frame, memo, n, known, frames, own, k);
    vt_thread.prof_inside = false;
    return p;
}

/* A sampled allocation of the class (tcache.c): NULL when the profiler cannot serve it (the
 * thread is inside the profiler already, or there is no memory); the caller then serves it
 * unsampled. `frame` is the caller's own (__builtin_frame_address(0)): the stack is walked from
 * there, or found in `memo`, the calling thread's cache's memo of its last one
 * (vt_unwind_from_memo), with its index in the table: a loop that samples one call site again
 * and again skips the walk and the table lookup. `own_slot` is the cache's record of its own
 * pages (NULL for a cache that several threads share): a thread that samples often, from a
 * stack the memo knows, takes the block from them without a lock.
 *
 * The common case is here, and calls nothing: a thread with pages of its own samples again the
 * stack whose counts it keeps, and the page of the kind has a block. It touches only what the
 * owner writes and takes no lock, so it needs no vt_thread.prof_inside either (nothing it does can
 * sample again before it returns); the rest, with its larger frame, is one call away. */
void *vt_prof_alloc_small(unsigned class_idx, size_t size, const void *frame,
                          vt_unwind_memo_t **memo, vt_prof_own_t **own_slot)
{
    vt_prof_own_t *own = vt_thread.prof_own;
    if (vt_unlikely(own == NULL || own_slot == NULL || vt_thread.prof_inside))
        return sample_slow(class_idx, size, frame, memo, own_slot, NULL);
    memo_way_t *w = vt_unwind_memo_find(vt_thread.prof_memo, frame, PROF_DEPTH + PROF_SKIP);
    unsigned k = vt_profown_kind(class_idx);
    if (vt_likely(w != NULL && own->hot && k < VT_PROFOWN_KINDS && w->user == own->pend_known &&
                  w->user != 0 && own->pend_n < PEND_MAX)) {
        vt_page_t *page = own->current[k];
        void *p;
        if (vt_likely(page != NULL && page->free != NULL && (p = vt_page_pop(page)) != NULL)) {
            atomic_store_explicit(vt_profown_record(own, k, page, p), record_make(w->user, size),
                                  memory_order_relaxed);
            own->pend_n++;
            own->pend_bytes += (uint32_t)size;
            return p;
        }
    }
    return sample_slow(class_idx, size, frame, memo, own_slot, w);
}

/* vt_prof_free_small by a thread other than the page's owner, or a block that failed the
 * owner's check: reported, pushed for the owner, or under the shard's lock. */
static VT_NOINLINE void free_other(vt_page_t *page, void *p)
{
    if (!vt_page_check_block(page, p, "free"))
        return;
    /* The block is ours until it is pushed, and the scan only reads: no other writer. */
    atomic_store_explicit(vt_profpages_record_of(page, p), 0, memory_order_relaxed);
    prof_shard_t *sh = &vt_prof_shards[page->prof_shard];
    for (;;) {
        if (vt_profown_push(page, p))
            return;
        vt_mutex_lock(&sh->lock);
        /* Still the shard's: a thread may have taken it for its own meanwhile (profown.c). */
        if (atomic_load_explicit(&page->prof_owner, memory_order_relaxed) == NULL)
            break;
        vt_mutex_unlock(&sh->lock);
    }
    uint64_t record;
    if (!vt_profpages_put_kept(&sh->pages, page, p, &record))
        vt_profpages_put(&sh->pages, page, p);
    vt_mutex_unlock(&sh->lock);
}

/* free() of a block in one of the profiler's pages, by any thread: checked (double and invalid
 * frees are reported as for any block), its record cleared, and put back on its page: by its
 * owner, pushed for its owner, or under its shard's lock (profown.c says which). */
void vt_prof_free_small(vt_page_t *page, void *p)
{
    vt_prof_own_t *mine = vt_thread.prof_own;
    if (mine != NULL && atomic_load_explicit(&page->prof_owner, memory_order_relaxed) == mine &&
        vt_likely(vt_profown_free(mine, page, p)))
        return;
    free_other(page, p);
}

/* ---- fork ------------------------------------------------------------------------------- */

void vt_prof_fork_prepare(void)
{
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        vt_lock_take(&sh->lock);
    vt_profpages_fork_prepare();
}

void vt_prof_fork_parent(void)
{
    vt_profpages_fork_parent();
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        vt_lock_give(&sh->lock);
}

/* The child starts a clean profile: its parent's samples and stacks are not its own. The
 * blocks stay valid; a free of one finds no sample and is served as usual. */
void vt_prof_fork_child(void)
{
    vt_profpages_fork_child();
    if (vt_thread.prof_own != NULL) { /* its counts name stacks of the tables cleared below */
        vt_thread.prof_own->pend_known = 0;
        vt_thread.prof_own->pend_n = 0;
        vt_thread.prof_own->pend_bytes = 0;
    }
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++) {
        vt_proftable_clear(&sh->t);
        vt_lock_give(&sh->lock); /* held by this thread's parent copy: see span.c */
    }
    vt_thread.prof_inside = false;
}
