/*
 * prototypes.h - the functions each file of src/ offers the others, grouped by file, from the
 * bottom layer up (the layers: internal.h). Included by internal.h, after the inline helpers.
 */
#ifndef VT_PROTOTYPES_H
#define VT_PROTOTYPES_H

/* ---- os.c ------------------------------------------------------------------------------- */

size_t vt_os_page_size(void) VT_HIDDEN;
void *vt_os_map(size_t size, size_t alignment) VT_HIDDEN;
void vt_os_unmap(void *p, size_t size) VT_HIDDEN;
void *vt_os_remap(void *p, size_t old_size, size_t new_size) VT_HIDDEN;
void *vt_os_backing_alloc(size_t size, size_t alignment, vt_backing_t backing) VT_HIDDEN;
void vt_os_backing_free(void *p, size_t size, vt_backing_t backing) VT_HIDDEN;
void vt_os_write(int fd, const char *text, size_t len) VT_HIDDEN;
bool vt_os_write_all(int fd, const char *text, size_t len) VT_HIDDEN;
int vt_os_create(const char *path) VT_HIDDEN;
int vt_os_write_file(const char *path, bool (*write_to)(int fd, void *arg), void *arg) VT_HIDDEN;
bool vt_os_copy_file(const char *path, int fd) VT_HIDDEN;
int vt_os_backtrace(void **frames, int max) VT_HIDDEN;
/* A loaded object: its mapping, its identity while loaded, and its unwind tables (or NULL). */
typedef struct vt_code_object {
    uintptr_t start, end, id;
    const void *eh_frame_hdr;
} vt_code_object_t;
bool vt_os_code_object(uintptr_t pc, vt_code_object_t *object) VT_HIDDEN;
bool vt_os_catch_signal(int sig, void (*handler)(int)) VT_HIDDEN;
bool vt_os_purge(void *p, size_t size) VT_HIDDEN;
/* Milliseconds of a monotonic clock; wraps after 49 days, so compare differences only. */
uint32_t vt_os_now_ms(void) VT_HIDDEN;
void vt_os_wait(_Atomic uint32_t *word, uint32_t expected, uint32_t ms) VT_HIDDEN;
void vt_os_wake(_Atomic uint32_t *word) VT_HIDDEN;
int vt_os_dup_fd(int fd) VT_HIDDEN;
/* What a descriptor refers to: the same file, device or pipe gives the same identity. */
typedef struct vt_fd_identity {
    uint64_t dev, ino, rdev;
} vt_fd_identity_t;
bool vt_os_fd_identity(int fd, vt_fd_identity_t *id) VT_HIDDEN; /* false: fd is not open */
unsigned vt_os_cpu(void) VT_HIDDEN;
int32_t vt_os_thread_id(void) VT_HIDDEN;
int32_t vt_os_process_id(void) VT_HIDDEN;
bool vt_os_thread_gone(int32_t pid, int32_t tid) VT_HIDDEN;
VT_NORETURN void vt_os_abort(void) VT_HIDDEN;
uint64_t vt_os_random(void) VT_HIDDEN;
/* Test hook: when positive, the n-th next mapping fails (counting down to 1). */
extern _Atomic long vt_os_fail_countdown VT_HIDDEN;

/* ---- sysalloc.c ------------------------------------------------------------------------- */

/* The system allocator (VTMALLOC_BACKING=malloc), reached past the replaced names. */
bool vt_sysalloc_init(void) VT_HIDDEN; /* false: not found, use mmap */
void *vt_sysalloc_memalign(size_t alignment, size_t size) VT_HIDDEN;
void vt_sysalloc_free(void *p) VT_HIDDEN;

/* ---- report.c --------------------------------------------------------------------------- */

void vt_message(const char *fmt, ...) VT_HIDDEN;
bool vt_message_fd(int fd, const char *fmt, ...) VT_HIDDEN;
bool vt_vmessage_fd(int fd, const char *fmt, va_list ap) VT_HIDDEN;
size_t vt_format(char *buf, size_t cap, const char *fmt, ...) VT_HIDDEN;
/* What a misuse does: abort (the default) or warn and go on (VTMALLOC_ON_ERROR, options.c). */
void vt_report_set_on_error(vt_on_error_t action) VT_HIDDEN;
/* A private copy of stderr, for the statistics printed at exit (report.c says why). */
void vt_report_keep_stderr(void) VT_HIDDEN;
int vt_report_stderr_fd(void) VT_HIDDEN;
/* A misuse of the API by the program: prints one line naming the pointer and the error, then
 * aborts, or returns when VTMALLOC_ON_ERROR=warn (the caller then leaks the block). */
void vt_report_misuse(const char *fn, const char *what, const void *p) VT_COLD VT_HIDDEN;
/* A free list whose link at `block` was overwritten (most likely by an overflow of the block
 * before it): reported as a misuse of malloc; returns only in warn mode. */
void vt_report_corrupt_list(const void *block) VT_COLD VT_HIDDEN;
VT_NORETURN void vt_assert_fail(const char *file, int line, const char *expr) VT_COLD VT_HIDDEN;

/* ---- options.c -------------------------------------------------------------------------- */

void vt_options_load(void) VT_HIDDEN;
/* The text options (empty: not set). */
extern char vt_options_prof_dump_at_exit[VT_OPTION_TEXT_MAX] VT_HIDDEN;
extern char vt_options_prof_prefix[VT_OPTION_TEXT_MAX] VT_HIDDEN;
extern char vt_options_stats_prefix[VT_OPTION_TEXT_MAX] VT_HIDDEN;
int vt_api_mallopt(int param, int value) VT_HIDDEN;

/* ---- cfi.c ------------------------------------------------------------------------------ */

enum vt_cfi_kind { VT_CFI_STEP = 1, VT_CFI_END, VT_CFI_UNKNOWN };
/* CFA offsets from this up are not expressed (unwind.c packs them into 24 bits). */
#define VT_CFI_CFA_MAX (1 << 23)
/* How to step from a frame at a code address to its caller's (x86-64). */
typedef struct vt_cfi_rule {
    int32_t cfa_off;      /* the CFA (the caller's rsp) is rsp or rbp + cfa_off, below CFA_MAX */
    int16_t ra_off;       /* the return address is at CFA + ra_off */
    int16_t rbp_off;      /* the caller's rbp is at CFA + rbp_off; 0: this frame keeps rbp */
    uint8_t cfa_from_rbp; /* the CFA is rbp + cfa_off (else rsp + cfa_off) */
    uint8_t kind;         /* VT_CFI_STEP: the above holds; END: the outermost frame, or no
                             code we know; UNKNOWN: the rule cannot be expressed so */
} vt_cfi_rule_t;
vt_cfi_rule_t vt_cfi_rule(uintptr_t pc, const void *eh_frame_hdr) VT_HIDDEN;

/* ---- unwind.c --------------------------------------------------------------------------- */

/* The most return addresses vt_unwind stores. */
#define VT_UNWIND_MAX 64
/* The deepest walk whose memo vt_unwind_from_memo keeps: the heap profiler's (prof.c). */
#define VT_UNWIND_MEMO_FRAMES 40
int vt_unwind(uintptr_t *pcs, int max) VT_HIDDEN;
int vt_unwind_from(const void *frame, uintptr_t *pcs, int max) VT_HIDDEN;
int vt_unwind_from_memo(const void *frame, uintptr_t *scratch, int max, vt_unwind_memo_t **slot,
                        uint64_t **user, const uintptr_t **pcs) VT_HIDDEN;
uint64_t vt_unwind_memo_hits(const vt_unwind_memo_t *memo) VT_HIDDEN;
void vt_unwind_fork_prepare(void) VT_HIDDEN;
void vt_unwind_fork_parent(void) VT_HIDDEN;
void vt_unwind_fork_child(void) VT_HIDDEN;

/* ---- retain.c: the retention policy ------------------------------------------------------ */

/* The highest level of something (units out of spans, bytes of large mappings) over the last
 * retention window (VTMALLOC_RETAIN_MS), kept in slots that each cover a part of the window, so
 * that an old high is forgotten part by part. Protected by its user's lock. */
#define VT_WINDOW_SLOTS 8
typedef struct vt_window {
    uint64_t slot_max[VT_WINDOW_SLOTS]; /* highest level seen in each slot's time */
    uint64_t level;                     /* the level now */
    uint32_t slot_start_ms;             /* when the current slot began */
    unsigned slot;                      /* the current slot */
} vt_window_t;

void vt_window_change(vt_window_t *w, int64_t delta, uint32_t now) VT_HIDDEN;
void vt_window_forget(vt_window_t *w, uint64_t amount, uint32_t now) VT_HIDDEN;
uint64_t vt_window_peak(vt_window_t *w, uint32_t now) VT_HIDDEN;

/* Spans' units, with the global lock held (span.c, spanpurge.c, global.c). */
void vt_retain_demand_changed(int32_t delta_units, uint32_t now) VT_HIDDEN;
/* Idle units back in their spans: out of the demand, without restarting the quiet clock. */
void vt_retain_demand_idle(uint32_t units, uint32_t now) VT_HIDDEN;
uint32_t vt_retain_free_allowed(uint32_t now) VT_HIDDEN;
/* Free units allowed resident as runs take fresh ones: the window's, plus OVERSHOOT_MB. Lock. */
uint32_t vt_retain_overshoot_allowed(uint32_t now) VT_HIDDEN;
/* A run took `clean` units the kernel must fault in while `dirty` free units were resident:
 * asks for as many to be returned if that is beyond the overshoot allowed. Global lock. */
void vt_retain_clean_taken(uint32_t clean, uint32_t dirty, uint32_t now) VT_HIDDEN;
/* The units asked for since the last call, and 0 from now on. Any thread, no lock. */
uint32_t vt_retain_take_overshoot(void) VT_HIDDEN;
uint32_t vt_retain_spans_needed(uint32_t now) VT_HIDDEN;
/* True when no window changed for the quiet time (retain.c): the process went quiet, and every
 * window then forgets its past peaks (vt_window_quiet_forget). Any thread, no lock. */
bool vt_retain_quiet(uint32_t now) VT_HIDDEN;
/* Forgets the quiet time learned (tests that change the clocks). */
void vt_retain_quiet_reset(void) VT_HIDDEN;
/* The window's past peaks forgotten when the process went quiet. Its user's lock held. */
void vt_window_quiet_forget(vt_window_t *w, uint32_t now) VT_HIDDEN;

/* ---- proftable.c ------------------------------------------------------------------------ */

/* Frames kept per stack. */
#define VT_PROF_DEPTH 32

typedef struct vt_prof_stack {
    uint64_t hash;   /* of depth and pcs, never 0 */
    uint32_t depth;  /* frames in pcs */
    uint64_t live_n; /* sampled blocks live now, and their bytes (as asked for) */
    uint64_t live_bytes;
    uint64_t alloc_n; /* sampled blocks allocated since the start (or the fork), and bytes */
    uint64_t alloc_bytes;
    uintptr_t pcs[VT_PROF_DEPTH]; /* call sites, innermost first */
} vt_prof_stack_t;

/* A sampled large block (a small one's record is kept beside it: profpages.c). */
typedef struct vt_prof_sample {
    uintptr_t addr; /* 0: an empty slot */
    size_t size;    /* bytes asked for */
    uint32_t stack; /* index in the stack table */
} vt_prof_sample_t;

/* The stacks (in the order first seen, found through a hash index) and the live samples of
 * large blocks (open addressing by address). Every field belongs to the user's lock. */
typedef struct vt_prof_tables {
    vt_prof_stack_t *stacks; /* stack_count entries, room for stack_cap */
    uint32_t *stack_index;   /* 2 * stack_cap slots: an entry's index + 1, or 0 (empty) */
    size_t stack_cap, stack_count;
    vt_prof_sample_t *samples;
    size_t sample_cap, sample_count;
    /* Changes, to a number no table had before, when the stacks are cleared (a forked
     * child's clean profile): an index noted with the number stays good while it holds. */
    uint32_t generation;
} vt_prof_tables_t;

uint32_t vt_proftable_stack(vt_prof_tables_t *t, const uintptr_t *pcs, uint32_t depth) VT_HIDDEN;
bool vt_proftable_sample_add(vt_prof_tables_t *t, vt_prof_sample_t s) VT_HIDDEN;
vt_prof_sample_t vt_proftable_sample_take(vt_prof_tables_t *t, uintptr_t addr) VT_HIDDEN;
void vt_proftable_clear(vt_prof_tables_t *t) VT_HIDDEN;

/* ---- page.c ----------------------------------------------------------------------------- */

extern _Atomic uint64_t vt_page_class_pages[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_gets[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_puts[VT_CLASS_COUNT] VT_HIDDEN;
extern _Atomic uint64_t vt_page_class_requested[VT_CLASS_COUNT] VT_HIDDEN;
void vt_page_publish(vt_page_t *page) VT_HIDDEN;

void vt_page_init(vt_span_t *span, unsigned first_unit, unsigned units) VT_HIDDEN;
void vt_page_assign(vt_page_t *page, unsigned class_idx, uintptr_t owner) VT_HIDDEN;
void vt_page_assign_short(vt_page_t *page, unsigned class_idx, uintptr_t owner,
                          uint32_t capacity) VT_HIDDEN;
void vt_page_unassign(vt_page_t *page) VT_HIDDEN;
void vt_page_assign_large(vt_page_t *page) VT_HIDDEN;
bool vt_page_release_large(vt_page_t *page) VT_HIDDEN;
bool vt_page_refill(vt_page_t *page) VT_HIDDEN;
bool vt_page_refill_fresh(vt_page_t *page) VT_HIDDEN;
uint32_t vt_page_collect_remote(vt_page_t *page) VT_HIDDEN;
uint32_t vt_page_remote_count(const vt_page_t *page) VT_HIDDEN;
bool vt_page_try_detach(vt_page_t *page, vt_tcache_t *tc) VT_HIDDEN;
bool vt_page_try_reattach(vt_page_t *page, vt_tcache_t *tc) VT_HIDDEN;
bool vt_page_push_remote(vt_page_t *page, vt_block_t *first, vt_block_t *last,
                         uint32_t count) VT_HIDDEN;
bool vt_page_is_block_start(const vt_page_t *page, const void *p) VT_HIDDEN;
bool vt_page_link_in_page(const vt_page_t *page, const vt_block_t *next) VT_HIDDEN;
bool vt_page_check_block(vt_page_t *page, void *p, const char *fn) VT_HIDDEN;

/* ---- span.c: spans, their index, the global lock ---------------------------------------- */

#define VT_SPAN_FREE_UNITS (~(uint64_t)1)      /* every unit but 0, the header */
#define VT_EMPTY_RUN       (VT_SPAN_UNITS - 1) /* the longest run of an empty span */

void vt_span_lock_for(unsigned class_idx) VT_HIDDEN;
void vt_span_lock(void) VT_HIDDEN;
void vt_span_unlock(void) VT_HIDDEN;
/* span.c's functions named _locked, and vt_span_set_dirty/relist/listed: global lock held. */
void vt_span_set_dirty(vt_span_t *span, uint64_t dirty) VT_HIDDEN;
uint32_t vt_span_dirty_count(void) VT_HIDDEN;
uint32_t vt_span_dirty_budget(void) VT_HIDDEN;
void vt_span_relist(vt_span_t *span) VT_HIDDEN;
vt_span_t *vt_span_listed(unsigned run) VT_HIDDEN;
vt_span_t *vt_span_map(void) VT_HIDDEN;
void vt_span_add_locked(vt_span_t *span) VT_HIDDEN;
void vt_span_leave_locked(vt_span_t *span, vt_span_t **release) VT_HIDDEN;
void vt_span_release(vt_span_t *list) VT_HIDDEN;
uint64_t vt_span_count_locked(void) VT_HIDDEN;
vt_page_t *vt_span_take_from_locked(vt_span_t *span, unsigned units, unsigned align) VT_HIDDEN;
uint32_t vt_span_take_locked(unsigned units, unsigned align, vt_page_t **out,
                             uint32_t max_count) VT_HIDDEN;
void vt_span_give_back_locked(vt_page_t *page, uint32_t freed_ms) VT_HIDDEN;
void vt_span_put_run(vt_page_t *page) VT_HIDDEN;
void vt_span_stats_locked(vt_stats_t *st) VT_HIDDEN;
void vt_span_fork_prepare(void) VT_HIDDEN;
void vt_span_fork_parent(void) VT_HIDDEN;
void vt_span_fork_child(void) VT_HIDDEN;

/* ---- pagepurge.c, spanpurge.c: free blocks of unowned pages, free units, empty spans back
 * to the OS -------------------------------------------------------------------------------- */

size_t vt_pagepurge_page(vt_page_t *page) VT_HIDDEN;
void vt_pagepurge_restore(vt_page_t *page) VT_HIDDEN;
void vt_spanpurge_excess(void) VT_HIDDEN;
bool vt_spanpurge_unmap_empty(bool by_demand) VT_HIDDEN;
void vt_spanpurge_beyond_demand(uint32_t now) VT_HIDDEN;
void vt_spanpurge_overshoot(uint32_t now, uint32_t most) VT_HIDDEN;
size_t vt_spanpurge_all(void) VT_HIDDEN;
void vt_spanpurge_stats_locked(vt_stats_t *st) VT_HIDDEN;
void vt_spanpurge_fork_prepare(void) VT_HIDDEN;
void vt_spanpurge_fork_parent(void) VT_HIDDEN;
void vt_spanpurge_fork_child(void) VT_HIDDEN;

/* ---- global.c: pages nobody owns, runs for threads ------------------------------------- */

vt_page_t *vt_global_take_partial(unsigned class_idx) VT_HIDDEN;
bool vt_global_adopt(vt_page_t *page) VT_HIDDEN;
void vt_global_put_partial(vt_page_t *page, bool owner_gone) VT_HIDDEN;
void vt_global_note_remote(unsigned class_idx) VT_HIDDEN;
void vt_global_put_pages(vt_list_t *partial, vt_list_t *empty, bool idle) VT_HIDDEN;
void vt_global_collect(uint32_t now) VT_HIDDEN;
size_t vt_global_purge_partial(uint32_t now, uint32_t age_ms) VT_HIDDEN;
void vt_global_fork_prepare(void) VT_HIDDEN;
void vt_global_fork_parent(void) VT_HIDDEN;
void vt_global_fork_child(void) VT_HIDDEN;
uint32_t vt_global_take_units(vt_page_t **out, uint32_t max_count, unsigned class_idx) VT_HIDDEN;
vt_page_t *vt_global_take_run(unsigned units, unsigned align, unsigned class_idx) VT_HIDDEN;
bool vt_global_release_reserves(void) VT_HIDDEN;
/* Hook (registered once by init.c): what an upper layer gives back when a span cannot map. */
void vt_global_set_release_reserves_hook(bool (*hook)(void)) VT_HIDDEN;
void vt_global_count_shared_put(unsigned class_idx) VT_HIDDEN;
void vt_global_stats_locked(vt_stats_t *st, uint64_t puts[VT_CLASS_COUNT],
                            uint64_t *purged_now) VT_HIDDEN;

/* ---- cachepool.c: the records of thread caches ------------------------------------------ */

vt_tcache_t *vt_cachepool_get(void) VT_HIDDEN;
void vt_cachepool_put(vt_tcache_t *tc) VT_HIDDEN;
size_t vt_cachepool_snapshot(vt_tcache_t **caches, int32_t *tids, size_t max,
                             size_t *live) VT_HIDDEN;
bool vt_cachepool_claim(vt_tcache_t *tc, int32_t tid) VT_HIDDEN;
uint64_t vt_cachepool_started(void) VT_HIDDEN;
uint64_t vt_cachepool_live(void) VT_HIDDEN;
void vt_cachepool_stats(vt_stats_t *st, uint64_t puts[VT_CLASS_COUNT],
                        const vt_tcache_counters_t *orphan,
                        const vt_tcache_counters_t *shared) VT_HIDDEN;
void vt_cachepool_fork_prepare(void) VT_HIDDEN;
void vt_cachepool_fork_parent(void) VT_HIDDEN;
void vt_cachepool_fork_child(vt_tcache_t *self) VT_HIDDEN;

/* ---- stash.c, remote.c: a cache's empty runs, its frees into others' pages -------------- */

uint32_t vt_stash_count(vt_tcache_t *tc) VT_HIDDEN;
void vt_stash_push(vt_tcache_t *tc, vt_page_t *page) VT_HIDDEN;
void vt_stash_push_batch(vt_tcache_t *tc, vt_page_t **pages, uint32_t n) VT_HIDDEN;
vt_page_t *vt_stash_pop(vt_tcache_t *tc, unsigned units) VT_HIDDEN;
void vt_stash_shrink(vt_tcache_t *tc, uint32_t keep) VT_HIDDEN;
void vt_stash_give_back(vt_tcache_t *tc) VT_HIDDEN;
void vt_stash_take_from(vt_tcache_t *tc) VT_HIDDEN;
void vt_stash_empty_into(vt_tcache_t *tc, vt_list_t *empty) VT_HIDDEN;

void vt_remote_push(vt_page_t *page, vt_block_t *first, vt_block_t *last, uint32_t n) VT_HIDDEN;
void vt_remote_flush(vt_tcache_t *tc) VT_HIDDEN;
void vt_remote_gather(vt_tcache_t *tc, vt_page_t *page, vt_block_t *block) VT_HIDDEN;
void vt_remote_take_chains(vt_tcache_t *tc) VT_HIDDEN;

/* ---- largetable.c: the table of mapped large blocks ------------------------------------- */

typedef struct vt_large_entry {
    uintptr_t addr;   /* 0: empty slot */
    size_t size;      /* bytes mapped (mmap) or requested rounded to 16 (malloc backing) */
    size_t requested; /* what malloc or realloc asked for (statistics) */
    uint8_t backing;  /* vt_backing_t */
    /* Which mmap, or moving mremap, made its pages (large.c numbers them): only pieces of one
     * mapping, still where it put them, are one range to the kernel and may join again. */
    uint64_t mapping;
} vt_large_entry_t;

void vt_largetable_lock(void) VT_HIDDEN;
void vt_largetable_unlock(void) VT_HIDDEN;
bool vt_largetable_lock_with_room(void) VT_HIDDEN; /* false: lock not held, no memory */
vt_large_entry_t *vt_largetable_find_locked(uintptr_t addr) VT_HIDDEN;
void vt_largetable_insert_locked(vt_large_entry_t e) VT_HIDDEN;
void vt_largetable_remove_locked(vt_large_entry_t *slot) VT_HIDDEN;
void vt_largetable_set_requested_locked(vt_large_entry_t *slot, size_t requested) VT_HIDDEN;
void vt_largetable_stats_locked(vt_stats_t *st) VT_HIDDEN;
void vt_largetable_fork_prepare(void) VT_HIDDEN;
void vt_largetable_fork_parent(void) VT_HIDDEN;
void vt_largetable_fork_child(void) VT_HIDDEN;

/* ---- prof.c, proflarge.c: the heap profiler --------------------------------------------- */

struct vt_prof_own;
void *vt_prof_alloc_small(unsigned class_idx, size_t size, const void *frame,
                          vt_unwind_memo_t **memo, struct vt_prof_own **own) VT_HIDDEN;
void vt_prof_free_small(vt_page_t *page, void *p) VT_HIDDEN;
void vt_prof_own_leave(struct vt_prof_own *own) VT_HIDDEN;
/* The calling thread's samples not yet in its stacks' totals go there (prof.c). */
void vt_prof_flush_own(void) VT_HIDDEN;
/* malloc_trim: the calling thread's empty pages of its own go back (prof.c). */
void vt_prof_trim_own(void) VT_HIDDEN;
void vt_prof_pass(void) VT_HIDDEN;
void vt_prof_trim(void) VT_HIDDEN;
void vt_prof_fork_prepare(void) VT_HIDDEN;
void vt_prof_fork_parent(void) VT_HIDDEN;
void vt_prof_fork_child(void) VT_HIDDEN;
/* proflarge.c: large blocks, sampled per thread by bytes and recorded by address. */
bool vt_prof_large_due(size_t size) VT_HIDDEN;
void vt_prof_record_large(void *p, size_t size) VT_HIDDEN;
void vt_prof_forget_large(void *p) VT_HIDDEN;

/* ---- large.c, largespan.c: blocks above the classes ------------------------------------- */

void *vt_large_alloc(size_t size, size_t alignment, bool zero) VT_HIDDEN;
size_t vt_large_purge(bool all) VT_HIDDEN;
bool vt_large_release_cache(void) VT_HIDDEN;
bool vt_large_free(void *p) VT_HIDDEN;
size_t vt_large_usable_size(const void *p) VT_HIDDEN;
void *vt_large_realloc(void *p, size_t size) VT_HIDDEN;
void vt_large_stats(vt_stats_t *st) VT_HIDDEN;
size_t vt_large_cached_bytes(void) VT_HIDDEN;

void *vt_largespan_alloc(size_t size, size_t alignment, bool zero) VT_HIDDEN;
vt_page_t *vt_large_free_in_span(vt_page_t *page, void *p, const char *fn,
                                 vt_tcache_counters_t *mine) VT_HIDDEN;
void *vt_large_start_in_span(vt_page_t *page, size_t size, bool zero, bool stale,
                             vt_tcache_counters_t *mine) VT_HIDDEN;
bool vt_large_resize_in_span(vt_page_t *page, size_t size) VT_HIDDEN;
const vt_tcache_counters_t *vt_largespan_counters(void) VT_HIDDEN;

/* ---- tcache.c, keptlong.c: the thread cache --------------------------------------------- */

vt_tcache_t *vt_tcache_start(void) VT_HIDDEN;
void *vt_tcache_alloc_slow(vt_tcache_t *tc, unsigned class_idx, size_t size) VT_HIDDEN;
void *vt_tcache_alloc_sampled(size_t size, vt_tcache_t *tc, vt_page_t *page,
                              unsigned class_idx) VT_HIDDEN;
void *vt_tcache_alloc_corrupt(vt_tcache_t *tc, vt_page_t *page, unsigned class_idx,
                              size_t size) VT_COLD VT_HIDDEN;
bool vt_tcache_housekeeping(vt_tcache_t *tc) VT_HIDDEN;
void vt_tcache_free_other(vt_tcache_t *tc, vt_page_t *page, void *p) VT_HIDDEN;
void vt_tcache_page_emptied(vt_tcache_t *tc, vt_page_t *page) VT_HIDDEN;
/* Hook (registered once by init.c): a free handed units to the global cache. */
void vt_tcache_set_gave_back_hook(void (*hook)(void)) VT_HIDDEN;
/* Free runs of units (large blocks in spans) kept in the thread's stash and taken from it. */
vt_page_t *vt_tcache_take_run(vt_tcache_t *tc, unsigned units) VT_HIDDEN;
void vt_tcache_keep_run(vt_tcache_t *tc, vt_page_t *page) VT_HIDDEN;
void vt_tcache_trim_own(void) VT_HIDDEN;
void vt_tcache_abandon(vt_tcache_t *tc) VT_HIDDEN;
void vt_tcache_thread_exit(vt_tcache_t *tc) VT_HIDDEN;
vt_tcache_t *vt_tcache_orphan(void) VT_HIDDEN;
void vt_tcache_fork_prepare(void) VT_HIDDEN;
void vt_tcache_fork_parent(void) VT_HIDDEN;
void vt_tcache_fork_child(void) VT_HIDDEN;
/* keptlong.c (the check: keptlong.h): forget clears the marks and the share; uncount takes a
 * quiet cache's share (reclaim.c). */
void vt_kept_long_forget(vt_tcache_t *tc) VT_HIDDEN;
void vt_kept_long_uncount(vt_tcache_t *tc) VT_HIDDEN;
void vt_kept_long_fork_child(vt_tcache_t *self) VT_HIDDEN;

/* ---- reclaim.c, purge.c: other threads' caches; the purge schedule ---------------------- */

void vt_reclaim_idle(void) VT_HIDDEN;
void vt_reclaim_reap(bool all) VT_HIDDEN;
void vt_reclaim_trim(void) VT_HIDDEN;

void vt_purge_tick(void) VT_HIDDEN;
/* After an allocation's slow path: returns what its runs asked for (retain.c: the overshoot). */
void vt_purge_after_take(void) VT_HIDDEN;
/* Passes run since the start (any thread's): the tests' measure of the schedule. */
uint64_t vt_purge_passes(void) VT_HIDDEN;
void vt_purge_housekeeping(vt_tcache_t *tc) VT_HIDDEN;
int vt_purge_trim(void) VT_HIDDEN;
void vt_purge_thread_maybe_start(void) VT_HIDDEN;
void vt_purge_last_exit(void) VT_HIDDEN;
void vt_purge_fork_child(void) VT_HIDDEN;
/* Hook (registered once by init.c): run by the purge thread at each of its passes. */
void vt_purge_set_thread_hook(void (*hook)(void)) VT_HIDDEN;

/* ---- stats.c: glibc's introspection calls, answered with vtmalloc's figures ------------- */

struct mallinfo2 vt_api_mallinfo2(void) VT_HIDDEN;
struct mallinfo vt_api_mallinfo(void) VT_HIDDEN;
int vt_api_malloc_info(int options, FILE *stream) VT_HIDDEN;

/* ---- init.c ---------------------------------------------------------------------------- */

void vt_init(void) VT_HIDDEN;
vt_tcache_t *vt_init_thread(void) VT_HIDDEN;

/* ---- dumps.c ---------------------------------------------------------------------------- */

/* Set by a dump signal's handler; the slow paths then call vt_dumps_serve. */
extern _Atomic bool vt_dumps_pending VT_HIDDEN;
void vt_dumps_serve(void) VT_HIDDEN;
void vt_dumps_serve_if_pending(void) VT_HIDDEN;
void vt_dumps_catch_signals(void) VT_HIDDEN;
void vt_dumps_at_exit(void) VT_HIDDEN;

#endif /* VT_PROTOTYPES_H */
