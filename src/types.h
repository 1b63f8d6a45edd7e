/*
 * types.h - every structure and constant of vtmalloc, with its invariants.
 *
 * Glossary (the words the code uses):
 *   block   what malloc hands out; every block of a page has the same size (bsize).
 *   class   a block size; class_idx 0..VT_CLASS_COUNT-1 (sizeclass.c). Sizes above the largest
 *           class are "large" blocks: runs of units in spans up to 960 KiB (largespan.c),
 *           mappings of their own above (large.c).
 *   unit    32 KiB of a span, the grain in which spans are divided among pages.
 *   page    a run of 1..VT_PAGE_MAX_UNITS units of one span holding blocks of one class.
 *           Its descriptor (vt_page_t) lives in the span header, not in the page itself.
 *   span    a VT_SPAN_SIZE region aligned to VT_SPAN_SIZE, obtained from the backing (os.c).
 *           Unit 0 holds the span header; units 1..VT_SPAN_UNITS-1 are given to pages.
 *   owner   the thread cache a page belongs to (VT's page tag). Only the owner touches the
 *           page's free lists without atomics; every other thread frees through `remote`.
 *   tcache  one thread's cache: its pages per class and a few empty units (tcache.c).
 *   global  the cache behind the global lock: pages nobody owns (global.c), spans and their free
 *           units (span.c).
 *
 * Depends on nothing but the C library headers. Nothing here allocates.
 */
#ifndef VT_TYPES_H
#define VT_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

/* ---- Geometry --------------------------------------------------------------------------- */

/* Every block is aligned to 16 bytes, as glibc guarantees on 64-bit targets. */
#define VT_MIN_ALIGN 16

/* A unit is 32 KiB: the page of every class up to 16 KiB, so big enough that a page of small
 * blocks amortises its refill (a trip to the stash or the global cache), small enough that
 * a page pinned by one live block pins little. That pinning is what a server's peak is made
 * of: its long-lived blocks (a cache, a log, a session table) sit scattered over pages whose
 * other blocks are free but can serve only their class. With 64 KiB units the soak benchmark
 * (bench/run-soak --long) peaked at 1.08x glibc's RSS; with 32 KiB units, 1.02-1.03x. The
 * price is twice the page events per block, which the pages up to VT_SHORT_PAGE_MAX kept
 * when they empty (tcache.c) and adopt on free (tcache.c: vt_tcache_free_other) win back
 * (bench/RESULTS.md). 16 KiB pages were not tried: a 16 KiB block would need a longer page. */
#define VT_UNIT_SHIFT 15
#define VT_UNIT_SIZE  ((size_t)1 << VT_UNIT_SHIFT)

/* A span is 2 MiB: 64 units, so that a span's free units are one 64-bit word (span.c); one
 * mmap call serves up to 63 pages, and a span-aligned mask finds the header. */
#define VT_SPAN_SHIFT 21
#define VT_SPAN_SIZE  ((size_t)1 << VT_SPAN_SHIFT)
#define VT_SPAN_MASK  (VT_SPAN_SIZE - 1)
#define VT_SPAN_UNITS ((unsigned)(VT_SPAN_SIZE / VT_UNIT_SIZE))

/* Classes: 16..128 in steps of 16, then four classes per power of two up to 256 KiB, but two
 * between 16 and 64 KiB (sizeclass.c says why), so the internal waste of any class is below
 * 25 % (below 12.5 % from 160 B on), and below a third between 16 and 64 KiB. */
#define VT_CLASS_COUNT 48
#define VT_SMALL_MAX   ((size_t)256 << 10)
/* Index of the sentinel class used for "larger than every class". */
#define VT_CLASS_LARGE VT_CLASS_COUNT

/* Pages up to 64 KiB (two units) are short: a thread keeps its class's current page when it
 * empties, as a loop that mallocs and frees one block needs. The first class with longer pages
 * (48 KiB blocks, three units, sizeclass.c) is VT_FIRST_LONG_CLASS; the empty long pages kept
 * are budgeted. Counting the two-unit pages (20-32 KiB blocks) as long cost memtest churn 22
 * instructions a malloc-free pair more than 64 KiB units did; counted as short, 12. */
#define VT_SHORT_PAGE_MAX   ((size_t)64 << 10)
#define VT_SHORT_PAGE_UNITS ((unsigned)(VT_SHORT_PAGE_MAX >> VT_UNIT_SHIFT))
#define VT_FIRST_LONG_CLASS 38

/* The largest page, in units: the 256 KiB class gets 8 units (its block alone, sizeclass.c). */
#define VT_PAGE_MAX_UNITS 8

/* The dirty budget (VTMALLOC_DIRTY_PCT) never asks for fewer resident free units than this
 * (1 MiB): a small process would otherwise purge, and fault back in, at almost every free. */
#define VT_DIRTY_MIN_UNITS ((unsigned)(((size_t)1 << 20) >> VT_UNIT_SHIFT))

/* How many other threads' caches one pass looks at (reclaim.c: reaping the caches of threads
 * that are gone, reclaiming those of quiet threads). Each pass goes on where the last one
 * stopped, so every cache is visited however many threads there are, at a bounded cost. */
#define VT_CACHES_PER_PASS 256

/* Runs of at most this many units (256 KiB) are "short" (the pages of every class) and are
 * packed into the fullest spans; longer ones (large blocks in spans) go to the emptiest
 * (span.c). */
#define VT_SHORT_RUN_UNITS 8

/* Large blocks up to 30 units (960 KiB) are runs of units in spans: a freed one leaves its
 * units resident for the next block of any size, and they are purged on the same schedule as
 * pages' (no mmap, munmap and page faults per block). 30 units and not 32: two such blocks
 * fit a span's 63 free units, and a block of exactly 1 MiB, a size programs ask for often
 * and often hold by the thousand with only its first pages touched, gets a mapping of its own,
 * which costs the pages it touches and nothing more; in a span it would also make its share of
 * the span header's pages resident (3,000 such blocks held: 29 MiB of RSS in spans, 13.7 MiB
 * mapped, glibc 13.2). Bigger blocks are rare enough, and costly enough to fill, that a
 * mapping of their own costs little in comparison. */
#define VT_LARGE_SPAN_UNITS 30
#define VT_LARGE_SPAN_MAX   ((size_t)VT_LARGE_SPAN_UNITS << VT_UNIT_SHIFT)

/* Remote frees into one page that a thread collects before pushing them with one CAS, and how
 * many pages a thread gathers chains for at once (a direct-mapped table). */
#define VT_REMOTE_BATCH 32
#define VT_REMOTE_SLOTS 8

/* Pointers above this never belong to us: user space is at most 48 bits on x86-64 and arm64. */
#define VT_ADDRESS_BITS 48

/* Fresh pages are carved lazily, about this many bytes at a time, so a page that is hardly
 * used never touches (and never makes resident) its whole run. */
#define VT_CARVE_BYTES 4096

/* What sizeclass.c knows of each class. */
typedef struct vt_class_info {
    uint32_t bsize;    /* block size in bytes */
    uint16_t capacity; /* blocks per page */
    uint8_t units;     /* page length in units */
} vt_class_info_t;

/* ---- Blocks ----------------------------------------------------------------------------- */

/* A free block. `link` holds the next free block's address mangled (vt_block_next, internal.h:
 * xor-ed with a secret whose low four bits are not all zero, much as glibc's safe-linking
 * protects its lists): an overflow from the block before, even by one
 * NUL byte, turns the link into a misaligned address that malloc reports instead of handing
 * out memory that is in use. While free, the second word holds vt_block_key(block): a double
 * free finds its own key there (page.c). malloc clears the key, so a live block never carries
 * it unless the program wrote it, which needs the secret. */
typedef struct vt_block {
    uintptr_t link;
    uintptr_t key;
} vt_block_t;

/* ---- Pages ------------------------------------------------------------------------------ */

/* Values of vt_page_t.owner besides a tcache pointer. Thread caches are 64-byte aligned, so the
 * low bits of a tcache pointer are free for the detached flag. */
#define VT_OWNER_GLOBAL   ((uintptr_t)0) /* in the global cache, or in transit to it */
#define VT_OWNER_DETACHED ((uintptr_t)1) /* or-ed with a tcache: full, and off its bin list */
#define VT_OWNER_FREE     ((uintptr_t)2) /* not a page now: the units are free or stashed */
#define VT_OWNER_LARGE    ((uintptr_t)4) /* a large block in a span: every free is a slow path */
#define VT_OWNER_PROF     ((uintptr_t)8) /* sampled blocks (prof.c): every free is a slow path */

/* vt_page_t.purged: the granule mask in the low bits, the granule's shift from this bit. */
#define VT_PURGED_SHIFT_BIT 16
#define VT_PURGED_MASK      ((uint32_t)0xffff)

/* vt_page_t.remote packs three things into one word, so one atomic operation changes them
 * together: the head of the list of blocks freed by other threads (bits 4..47: blocks are
 * 16-byte aligned and user addresses have 48 bits), how many blocks are on it (bits 48..63,
 * so the owner learns the count without walking the list, whose blocks were just written by
 * other cores), and VT_REMOTE_FULL (bit 0). FULL is the mark of a detach: while the page is
 * detached and nobody has freed into it since, the word is (detaching cache | FULL), the cache
 * in the pointer bits; the one atomic operation that consumes the mark (a remote free, or the
 * owner's reattach) decides where the page goes (page.c). */
#define VT_REMOTE_FULL        ((uintptr_t)1)
#define VT_REMOTE_COUNT_SHIFT 48
#define VT_REMOTE_PTR_MASK    ((((uintptr_t)1 << VT_REMOTE_COUNT_SHIFT) - 1) & ~(uintptr_t)15)

/* on_partial's bits: the page is on a partial list of the global cache; its thread has exited
 * (vt_tcache_abandon handed it over, or a free woke it detached and its cache was not in use:
 * remote.c), not woken from a live thread's cache. Only such pages are adopted on free
 * (global.c: vt_global_adopt). */
#define VT_ON_PARTIAL        1u
#define VT_PARTIAL_ABANDONED 2u

/*
 * The descriptor of a page. Invariant while the page is assigned to a class:
 *   used + (blocks on free) + (capacity - carved) == capacity
 * and the blocks on `remote` are a subset of `used` (they return to the lists when collected).
 * Owner-only fields may be written by the thread whose cache is `owner` (or, when the owner is
 * VT_OWNER_GLOBAL, by whoever holds the global lock); a change of owner publishes them
 * (through the global lock, or the release/acquire pairs described in page.c).
 */
typedef struct vt_page {
    /* -- cache line 1: read by every free, from any thread; written only when the page
     *    changes hands or lists, so other cores keep it cached -- */
    _Atomic uintptr_t owner; /* tcache*, tcache*|DETACHED, or VT_OWNER_*: see page.c */
    uint32_t bsize;          /* constant while assigned: block size in bytes (*) */
    uint32_t capacity;       /* constant while assigned: blocks that fit in the page */
    vt_link_t link;          /* owner or global lock: in a bin, a global list or a stash */
    uint8_t class_idx;       /* constant while assigned */
    uint8_t units;           /* constant while assigned: length of the run (*) */
    uint8_t first_unit;      /* constant: index of the page's first unit in its span */
    uint8_t stale;           /* global lock, when the run is taken: some unit may hold old
                                data (not known to be zero) */
    uint8_t prof_shard;      /* constant while the profiler owns the page: its shard (prof.c) */
    uint8_t written;         /* whoever owns the run: it was assigned since it was taken, so its
                                units may hold bytes (span.c: a run that never was goes back to
                                its span as clean as it came) */
    uint8_t prof_listed;     /* shard lock: on its shard's list of pages with room (profpages.c) */
    uint8_t on_partial;      /* global lock: VT_ON_PARTIAL, VT_PARTIAL_ABANDONED (below) */
    union {
        uint64_t large_requested; /* a large block's user: what its malloc or realloc asked for */
        _Atomic uint64_t prof_record; /* a page of one sampled block: its record (profpages.c) */
    };
    /* Free blocks of a page that sat in the global cache were given back to the OS
     * (pagepurge.c): bits 0..15 name the purged granules of the page, bits 16..23 hold the
     * granule's shift (VT_PURGED_SHIFT_BIT). Written by whoever owns the page while it belongs to
     * the global cache; read by the owner, and by any thread's free as a hint (relaxed: a stale
     * 0 only leaves a double free for the owner's collection to find). 0 while a thread owns
     * the page. */
    _Atomic uint32_t purged;
    uint32_t parked_ms;  /* global lock: when the page was parked or last looked at for purging */
    uint32_t purge_used; /* global lock: `used` at that look (nothing new to purge while equal) */
    uint8_t pad1b_[4];
    /* (*) except for a large block (VT_OWNER_LARGE), whose realloc may resize its run in
     * place; it writes both under the global lock, and only the block's user reads them. */
    /* -- cache line 2: the owner's fast paths write these all the time -- */
    _Alignas(64) vt_block_t *free; /* owner: blocks malloc pops and the owner's free pushes */
    uint32_t used;                 /* owner: blocks handed out and not yet back on a list */
    uint32_t carved;               /* owner: blocks carved from the area so far */
    /* owner: bytes the page may still hand out before its next sampled allocation (heap
     * profiling; sample.c: vt_sample_draw), and what it was when the countdown started or
     * was last published: their difference is the bytes mallocs asked for since
     * (statistics) */
    int64_t sample_left, sample_base;
    uint64_t pushes;    /* owner: its own frees into it, not yet added to the class's (publish) */
    uint32_t used_base; /* owner: `used` at the last publish */
    uint32_t collected; /* owner: blocks freed by other threads collected since the publish */
    uint64_t requested; /* owner: bytes asked for in the countdowns ended since the publish */
    /* A page of the heap profiler's (profpages.c): the cache's vt_prof_own_t that owns it
     * (profown.c), or NULL for a page of a shard. Written when the page is made and when its
     * owner leaves, under the shard's lock; any freeing thread reads it (relaxed: only the
     * owner's own thread can read its own address there, see profown.c). On this line, which
     * the owner's free writes anyway, so that its free of a sample reads no other. */
    _Atomic(void *) prof_owner;
    /* -- cache line 3: written by other threads' frees -- */
    _Alignas(64) _Atomic uintptr_t remote; /* any thread: count | list head | REMOTE_FULL */
    vt_link_t prof_all; /* the profiler's registry lock: on the list of all its pages */
    uint8_t pad3_[40];
} vt_page_t;

#define VT_PAGE_LINK offsetof(vt_page_t, link)

/* ---- Spans ------------------------------------------------------------------------------ */

/* How a span's or large block's memory was obtained; os.c gives it back the same way. */
typedef enum vt_backing { VT_BACKING_MMAP = 0, VT_BACKING_MALLOC = 1 } vt_backing_t;

/*
 * The header at the start of every span. Invariant: bit u of free_units is set iff unit u is
 * not part of a page (unit 0, the header, is never free), and unit_page[u] points to the
 * descriptor of the page holding unit u, or to vt_page_none when it is free. A run in a
 * thread's stash (neither in free_units nor a page) maps to vt_page_none, or, when it was last a
 * large block, to its own descriptor, whose owner is VT_OWNER_FREE: every reader of the map
 * takes a FREE owner for free units (vt_page_check_block), and the run's way back into
 * free_units (vt_span_give_back_locked) points the map at vt_page_none again.
 */
typedef struct vt_span {
    uint64_t magic;       /* constant: VT_SPAN_MAGIC, checked in debug builds */
    void *base;           /* constant: what the backing returned (may precede the span) */
    size_t map_size;      /* constant: bytes the backing gave */
    uint8_t backing;      /* constant: vt_backing_t */
    uint64_t free_units;  /* global lock: bitmap of units not in any page */
    uint64_t dirty_units; /* global lock: free units that may still be resident */
    uint64_t unpurgeable; /* global lock: dirty free units whose purge failed (locked memory):
                             not tried again until they have been used and freed again */
    uint32_t freed_ms[VT_SPAN_UNITS]; /* global lock: when each dirty unit was freed */
    vt_link_t link;                   /* global lock: on a list of the index (span.c) */
    uint8_t on_list; /* global lock: the longest run of free units it is listed under (span.c) */
    /* any thread reads (free), page setup writes: the page each unit belongs to */
    _Atomic(vt_page_t *) unit_page[VT_SPAN_UNITS];
    /* the descriptor of the page whose first unit is u, at slot u's bits reversed
     * (vt_span_descriptor); written only by vt_page_init and those who own the page */
    vt_page_t pages[VT_SPAN_UNITS];
} vt_span_t;

#define VT_SPAN_MAGIC 0x76747370616e2121ull /* "vtspan!!" */
#define VT_SPAN_LINK  offsetof(vt_span_t, link)

/* ---- Thread caches ---------------------------------------------------------------------- */

typedef enum vt_tcache_state {
    VT_TCACHE_UNSTARTED =
        0,                /* the static cache every thread starts with: first malloc starts one */
    VT_TCACHE_LIVE = 1,   /* a started cache, owned by one thread */
    VT_TCACHE_EXITED = 2, /* the static cache of a thread whose cache was handed back */
    VT_TCACHE_POOLED = 3  /* a cache waiting in the global pool for the next thread */
} vt_tcache_state_t;

/* Counters a thread keeps for itself: one writer (the owner, with vt_count), any reader
 * (stats.c, relaxed loads); added to the pool's (cachepool.c) when the thread exits.
 * remote_puts: its frees into other threads' pages, per class (its own frees and all mallocs
 * are counted per page, page.c). */
typedef struct vt_tcache_counters {
    _Atomic uint64_t remote_puts[VT_CLASS_COUNT];
    _Atomic uint64_t remote_frees;
    _Atomic uint64_t pages_adopted;
    /* Large blocks in spans this thread allocated (+) and freed (-), whoever allocated them:
     * one thread's figures may wrap below zero; their sum over all threads is exact. */
    _Atomic uint64_t large_blocks, large_bytes, large_allocs, large_requested;
} vt_tcache_counters_t;

/* The memo of a thread's last stack walk (unwind.c). */
typedef struct vt_unwind_memo vt_unwind_memo_t;

/* Blocks freed by one thread into one page of another, waiting to be pushed together. `head`
 * packs the chain's first block and its length as page->remote does (VT_REMOTE_PTR_MASK, count
 * from VT_REMOTE_COUNT_SHIFT); 0 is an empty slot. Only the owner makes it non-zero (a store,
 * or a compare-and-swap that lengthens the chain); the owner, or another thread trimming or
 * reclaiming a quiet cache, empties it by an exchange, and whoever gets the chain pushes it to
 * its page. So a thread that goes quiet pins nothing that others freed into it. */
typedef struct vt_remote_chain {
    _Atomic uintptr_t head; /* owner sets; owner or a reclaimer takes: count | first block */
    vt_page_t *page;        /* owner: the page of the chain the owner last started */
    vt_block_t *last;       /* owner: that chain's last block (another thread walks to it) */
} vt_remote_chain_t;

/*
 * One thread's cache. Written only by the thread it is assigned to (its TLS pointer names it),
 * except: the pool links and `state`, which change under the pool lock (cachepool.c) while no
 * thread uses the cache; and the orphan cache (tcache.c), which is used only under its own
 * mutex.
 * The record is kept small (1.4 KiB): a server may park thousands of threads, each with one.
 */
typedef struct vt_tcache {
    /* owner: the bins (bin.h). alloc_page[c] is the first attached page of class c, where
     * malloc's fast path pops, or &vt_page_none when the class has none (and in the extra slot,
     * which no class uses); bin_pages[c] counts the attached pages: at most
     * VTMALLOC_CLASS_PAGES (< 65536), since a page is reattached only below that number and a
     * refill adds one only to a bin it found with no free block and emptied (tcache.c). */
    _Alignas(64) vt_page_t *alloc_page[VT_CLASS_COUNT + 1];
    uint16_t bin_pages[VT_CLASS_COUNT];
    /* Empty pages of any length and class: a list that the owner pushes to and pops from, and that
     * another thread may take whole when the owner has left it alone for a while (reclaim.c:
     * "Idle caches"). Only the owner ever adds, so the exchange-and-put-back pop has no ABA. */
    _Atomic(vt_page_t *) stash;
    _Atomic uint32_t stash_count;   /* owner writes (an estimate after a take), anyone reads */
    _Atomic uint32_t stash_epoch;   /* owner bumps it at every use of the stash */
    uint32_t stash_taken;           /* owner: pages taken from the stash, ever */
    uint32_t stash_taken_seen;      /* owner: stash_taken at the last housekeeping */
    _Atomic uint32_t idle_epoch;    /* purge pass: stash_epoch when a pass last saw it change */
    _Atomic uint32_t idle_since_ms; /* purge pass: when that was (vt_os_now_ms) */
    uint32_t slow_calls;            /* owner: allocation slow paths, to pace housekeeping */
    /* owner: units of the thread's last batch from the global cache while it ramps up (0 at
     * its start): its first batches take 1, 2, 4 ... units up to VTMALLOC_BATCH_UNITS, so that
     * a thread that allocates a little holds one unit, not a batch (tcache.c) */
    uint32_t batch_ramp;
    /* owner: long classes whose current page was kept when it emptied, by a check that the
     * kept empty pages fit VTMALLOC_KEPT_LONG_KB (tcache.c: long_page_emptied). While
     * kept_long[c] is set, the class's current page is kept again without that check, because
     * the marked classes' page lengths (kept_units) add up to at most that budget at all
     * times: only a check sets a mark, and only when they fit with its own (or, after the
     * marks of pages in use again or gone are cleared, when the empty ones do: keptlong.h);
     * and all pages of a class have the same length. A mark of a page in use again or given
     * back by malloc_trim can only make a later page of its class kept within that sum. Bytes
     * for the free's test (one compare); the same marks as a mask for the walk. */
    uint8_t kept_long[VT_CLASS_COUNT];
    uint64_t kept_mask;
    uint32_t kept_units;
    /* This cache's share of the process's kept units (keptlong.c): the owner raises it to its
     * marks' units at a check, sets it to 0 at housekeeping and exit; a purge pass takes it
     * from a quiet cache. Relaxed: a budget, no ordering. */
    _Atomic uint32_t kept_counted;
    uint32_t next_housekeeping_ms; /* owner: vt_os_now_ms() when housekeeping is next due */
    /* owner: blocks this thread freed into other threads' pages, not yet pushed: remote frees
     * into one page gather in a chain that is pushed with one CAS (remote.c) */
    vt_remote_chain_t pending[VT_REMOTE_SLOTS];
    uint32_t pending_chains; /* owner: slots it filled since it last emptied them all */
    uint32_t state;          /* vt_tcache_state_t */
    int32_t tid;             /* pool lock: the kernel's id of the thread using it (reclaim.c) */
    /* pool lock writes, any thread reads (relaxed): 1 while a thread uses the cache. Only a
     * hint, for which pages a free may adopt (remote.c): a stale value costs a page adopted
     * or left to the partial list, never a wrong owner, so no ordering is needed. */
    _Atomic uint8_t in_use;
    vt_tcache_counters_t counters; /* owner writes, anyone reads */
    vt_unwind_memo_t *prof_memo;   /* owner: the heap profiler's last stack (unwind.c), or NULL */
    struct vt_prof_own *prof_own;  /* owner: the heap profiler's pages of its own (profown.c) */
    vt_link_t pool_link;           /* pool lock: on the live list or in the pool (cachepool.c) */
} vt_tcache_t;

#define VT_CACHE_LINK offsetof(vt_tcache_t, pool_link)

/*
 * The calling thread's own words that malloc's fast path and a heap-profile sample read, in one
 * initial-exec TLS variable (internal.h: vt_thread) aligned to a cache line. The fast path loads
 * `tcache` at every call, which keeps the line in the first-level cache; a sample, one in many
 * allocations, then finds its words there instead of on lines the program has evicted since the
 * last one. As separate variables they were spread over three lines by the linker. Every field
 * is the thread's own: only it reads or writes them, so none is atomic.
 */
typedef struct vt_thread {
    /* tcache.c: the thread's cache. Starts as the static "unstarted" cache whose bins are all
     * empty (thread.c), so the first malloc of a thread falls into the slow path, which starts a
     * real cache: the fast path never asks whether the thread is initialised. */
    _Alignas(64) vt_tcache_t *tcache;
    /* prof.c: the cache's record of its pages of its own, and its memo, once it sampled (NULL
     * before, and once the thread left its cache). A thread keeps one cache all its life. */
    struct vt_prof_own *prof_own;
    vt_unwind_memo_t *prof_memo;
    unsigned sample_draws_left; /* sample.c: draws left in vt_sample_draws */
    bool prof_inside;           /* prof.c: inside the profiler, so not sampled again */
    uint8_t prof_shard;         /* prof.c: the shard of the thread's small samples */
    uint8_t prof_shard_left;    /* prof.c: samples before it asks for its CPU again */
} vt_thread_t;
_Static_assert(sizeof(vt_thread_t) == 64, "one line");

/* ---- Options ---------------------------------------------------------------------------- */

/* The tunables; options.c reads them once from VTMALLOC_* variables. */
typedef struct vt_options {
    uint32_t class_pages;    /* VTMALLOC_CLASS_PAGES: pages a thread keeps attached per class */
    uint32_t stash_units;    /* VTMALLOC_STASH_UNITS: empty units a thread keeps for any class */
    uint32_t kept_long_kb;   /* VTMALLOC_KEPT_LONG_KB: empty long pages kept, per thread and all */
    uint32_t batch_units;    /* VTMALLOC_BATCH_UNITS: units moved per global lock */
    uint32_t reserve_spans;  /* VTMALLOC_RESERVE_SPANS: empty spans kept mapped */
    uint32_t purge_ms;       /* VTMALLOC_PURGE_MS: free memory returned to the OS after this */
    uint32_t retain_ms;      /* VTMALLOC_RETAIN_MS: the demand window while busy; 0: 8 x purge */
    uint32_t dirty_pct;      /* VTMALLOC_DIRTY_PCT: resident free units kept, % of spans */
    uint32_t overshoot_mb;   /* VTMALLOC_OVERSHOOT_MB: RSS growth past the recent peak demand */
    uint32_t purge_thread;   /* VTMALLOC_PURGE_THREAD: 1 runs the purge passes from a thread */
    uint32_t large_cache_mb; /* VTMALLOC_LARGE_CACHE: MiB of freed large blocks kept */
    uint32_t lock_spins;     /* VTMALLOC_LOCK_SPINS: checks of a held lock before sleeping */
    uint32_t backing;        /* VTMALLOC_BACKING: vt_backing_t */
    uint32_t stats;          /* VTMALLOC_STATS: print statistics at exit */
    uint32_t on_error;       /* VTMALLOC_ON_ERROR: vt_on_error_t */
    uint32_t prof_sample;    /* VTMALLOC_PROF_SAMPLE: mean bytes between samples; 0: off */
    uint32_t prof_signal;    /* VTMALLOC_PROF_SIGNAL: signal that writes a profile; 0: none */
    uint32_t stats_signal;   /* VTMALLOC_STATS_SIGNAL: signal that writes the statistics */
} vt_options_t;

/* Room for a text option's value (a file name or its start), its NUL included. */
#define VT_OPTION_TEXT_MAX 1024

typedef enum vt_on_error { VT_ON_ERROR_ABORT = 0, VT_ON_ERROR_WARN = 1 } vt_on_error_t;

/* ---- Layout checks ---------------------------------------------------------------------- */

_Static_assert(sizeof(vt_block_t) <= VT_MIN_ALIGN, "a free block must fit the smallest class");
_Static_assert(sizeof(vt_page_t) == 192, "a page descriptor is three cache lines");
_Static_assert(VT_SPAN_UNITS == 64, "free_units is a 64-bit map");
_Static_assert(sizeof(vt_span_t) <= VT_UNIT_SIZE, "the span header fits in unit 0");
_Static_assert(VT_SMALL_MAX <= VT_PAGE_MAX_UNITS * VT_UNIT_SIZE &&
                   VT_PAGE_MAX_UNITS <= VT_SHORT_RUN_UNITS,
               "the biggest class's block fits a page, and every page is a short run");
_Static_assert(VT_PAGE_MAX_UNITS < VT_SPAN_UNITS, "a page fits in a span");
_Static_assert(VT_LARGE_SPAN_MAX > VT_SMALL_MAX && 2 * VT_LARGE_SPAN_UNITS <= VT_SPAN_UNITS,
               "large blocks in spans start above the classes and take at most half a span");
_Static_assert(VT_CLASS_COUNT < 255, "class_idx is a byte");
_Static_assert(VT_ADDRESS_BITS <= VT_REMOTE_COUNT_SHIFT,
               "remote list pointers fit below the count");
_Static_assert(VT_UNIT_SIZE / VT_MIN_ALIGN < 65536, "a page's block count fits the remote count");

#endif /* VT_TYPES_H */
