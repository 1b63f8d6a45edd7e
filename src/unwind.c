/*
 * unwind.c - the return addresses on the calling thread's stack, for the heap profiler, at a
 * fraction of the cost of glibc's backtrace.
 *
 * Layer: 1 stack unwinding
 * Calls: os.c, cfi.c, report.c
 *
 * Owns: a cache of unwind rules by code address, and the mutex of its writers; the walks kept
 * in the memo of a thread's last ones (vt_unwind_memo_t, held by its thread cache; its layout
 * and its check are in unwindmemo.h, for the profiler to ask inline).
 *
 * Why not backtrace() alone: libgcc's unwinder finds the DWARF call-frame information (CFI) of
 * every frame afresh, then runs its program, for every frame of every stack: about 1 us per
 * stack, which at one sample per 512 KiB allocated is most of what profiling costs a program
 * that allocates gigabytes a second. The rule that takes a frame to its caller depends only on
 * the code address, so it is worked out once per address from the same CFI (cfi.c) and cached
 * here; a cached frame then costs a hash probe and two loads. No frame pointers are needed:
 * Debian builds without them.
 *
 * A frame whose rule cfi.c cannot express (signal trampolines, PLT stubs, realigned stacks)
 * sends the whole stack to backtrace(), which knows them all: slower, never wrong. An address
 * without CFI (JIT code), or one whose return address is undefined (a thread's first frame),
 * ends the stack. On other machines everything goes to backtrace().
 *
 * A cached rule stays true while the code at its address does, which changes only when a
 * library is unloaded and another is loaded in its place. So a rule names the object it was
 * read from (its link map and its unwind tables, from glibc's _dl_find_object), and is used
 * only while the object at the address is the same: once per object that the stack passes
 * through, not once per frame. (A different library loaded at the very same address whose
 * link map and unwind tables also landed at the same addresses would pass for the old one;
 * reloading the same library, the one case where that is likely, leaves the rules true.)
 */
#define _GNU_SOURCE
#include "internal.h"
#include "unwindmemo.h"

/* Protects the cache's writers (and its mapping); readers take no lock. Held for a few
 * stores, never while anything that allocates or takes another lock runs. */
static vt_lock_t unwind_lock = VT_LOCK_INIT;

/* The addresses as glibc's backtrace() finds them (it knows every kind of frame); it starts
 * in this file, whose frames the caller leaves out with the rest of ours. */
static int unwind_by_backtrace(uintptr_t *pcs, int max)
{
    void *frames[VT_UNWIND_MAX];
    int n = vt_os_backtrace(frames, max < VT_UNWIND_MAX ? max : VT_UNWIND_MAX);
    for (int i = 0; i < n; i++)
        pcs[i] = (uintptr_t)frames[i];
    return n;
}

#if defined(__x86_64__)

/* Cache entries: a power of two. 1024 addresses cover the call sites of a large server. */
#define RULE_SLOTS 1024
/* A caller's frame further than this above its callee's is taken as a sign of bad CFI, and
 * ends the stack rather than a read of memory that is not the stack. */
#define FRAME_MAX ((uintptr_t)256 << 20)
/* A slot of the cache: the rule for one address in one object. Written only with unwind_lock
 * held, read by any thread without it, as a sequence lock: the writer makes seq odd, stores
 * the fields (release stores: each is ordered after the odd seq), and makes seq even again
 * (release: after the fields); a reader loads seq, the fields and seq once more, all with
 * acquire (no later load moves above an earlier one), and keeps what it read only if seq was
 * even and has not moved. A reader that saw any field of a write in progress sees its odd seq
 * on the second load, so no write overlapped the reads it keeps. No fences: every ordering is
 * on the atomics themselves, which ThreadSanitizer checks (it does not model fences). Every
 * field is an atomic, so a read that races a write is a defined read, then thrown away. seq
 * would have to wrap around (2^31 writes) during one read to fool a reader. On x86-64 these
 * are plain moves. */
typedef struct rule_slot {
    _Atomic uint32_t seq;
    _Atomic uintptr_t pc;           /* a return address minus one; 0: an empty slot */
    _Atomic uintptr_t object;       /* the id of the object it was read from */
    _Atomic uintptr_t eh_frame_hdr; /* and that object's unwind tables */
    _Atomic uint64_t rule;          /* the rule, packed (pack_rule) */
} rule_slot_t;

/* The cache: RULE_SLOTS slots, mapped on first use and kept (a release store under the lock,
 * acquire loads: a reader that sees the pointer sees the zeroed mapping). */
static _Atomic(rule_slot_t *) rules;

static uint64_t pack_rule(vt_cfi_rule_t r)
{
    return (uint64_t)r.kind | (uint64_t)r.cfa_from_rbp << 2 | (uint64_t)(uint32_t)r.cfa_off << 8 |
           (uint64_t)(uint16_t)r.ra_off << 32 | (uint64_t)(uint16_t)r.rbp_off << 48;
}

static vt_cfi_rule_t unpack_rule(uint64_t v)
{
    return (vt_cfi_rule_t){.kind = (uint8_t)(v & 3),
                           .cfa_from_rbp = (uint8_t)(v >> 2 & 1),
                           .cfa_off = (int32_t)(v >> 8 & 0xffffff),
                           .ra_off = (int16_t)(uint16_t)(v >> 32),
                           .rbp_off = (int16_t)(uint16_t)(v >> 48)};
}

/* ---- Walking the stack: the rules ------------------------------------------------------ */

static size_t slot_of(uintptr_t pc)
{
    return (size_t)((pc * VT_FIBONACCI_HASH) >> 32) & (RULE_SLOTS - 1);
}

/* The slot's rule if it holds the one for pc in the object; false otherwise (another address
 * is there, or a writer was at work: then the rule is worked out afresh, which is only
 * slower). No lock: the sequence lock of rule_slot_t. */
static bool read_slot(rule_slot_t *slot, uintptr_t pc, const vt_code_object_t *object,
                      vt_cfi_rule_t *rule)
{
    /* Acquire on every load: none of them, nor the second load of seq, moves up. */
    uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    uintptr_t slot_pc = atomic_load_explicit(&slot->pc, memory_order_acquire);
    uintptr_t id = atomic_load_explicit(&slot->object, memory_order_acquire);
    uintptr_t hdr = atomic_load_explicit(&slot->eh_frame_hdr, memory_order_acquire);
    uint64_t packed = atomic_load_explicit(&slot->rule, memory_order_acquire);
    if ((seq & 1) != 0 || atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq)
        return false;
    if (slot_pc != pc || id != object->id || hdr != (uintptr_t)object->eh_frame_hdr)
        return false;
    *rule = unpack_rule(packed);
    return true;
}

static void write_slot(rule_slot_t *slot, uintptr_t pc, const vt_code_object_t *object,
                       vt_cfi_rule_t rule)
{
    vt_mutex_lock(&unwind_lock);
    uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    atomic_store_explicit(&slot->seq, seq + 1, memory_order_relaxed);
    /* Release on every store: a reader that sees any of them sees the odd seq before it. */
    atomic_store_explicit(&slot->pc, pc, memory_order_release);
    atomic_store_explicit(&slot->object, object->id, memory_order_release);
    atomic_store_explicit(&slot->eh_frame_hdr, (uintptr_t)object->eh_frame_hdr,
                          memory_order_release);
    atomic_store_explicit(&slot->rule, pack_rule(rule), memory_order_release);
    atomic_store_explicit(&slot->seq, seq + 2, memory_order_release); /* fields, then even */
    vt_mutex_unlock(&unwind_lock);
}

/* The cache, mapped on the first call; NULL when there is no memory for it. */
static rule_slot_t *cache(void)
{
    rule_slot_t *slots = atomic_load_explicit(&rules, memory_order_acquire);
    if (vt_likely(slots != NULL))
        return slots;
    vt_mutex_lock(&unwind_lock);
    slots = atomic_load_explicit(&rules, memory_order_relaxed);
    if (slots == NULL) {
        slots = vt_os_map(RULE_SLOTS * sizeof(rule_slot_t), vt_os_page_size());
        atomic_store_explicit(&rules, slots, memory_order_release);
    }
    vt_mutex_unlock(&unwind_lock);
    return slots;
}

/* The rule for pc in the object, from the cache or worked out (and then cached). */
static vt_cfi_rule_t rule_for(rule_slot_t *slots, uintptr_t pc, const vt_code_object_t *object)
{
    vt_cfi_rule_t rule;
    rule_slot_t *slot = slots != NULL ? &slots[slot_of(pc)] : NULL;
    if (vt_likely(slot != NULL && read_slot(slot, pc, object, &rule)))
        return rule;
    rule = vt_cfi_rule(pc, object->eh_frame_hdr);
    if (slot != NULL)
        write_slot(slot, pc, object, rule);
    return rule;
}

/* ---- The memo of a thread's last walks (its layout: unwindmemo.h) ------------------------ */

/* Notes a word the walk read. A memo that would overflow is spoiled (it cannot: a step reads
 * two words at most, and a memo is only kept for MEMO_FRAMES steps). */
static void memo_read(memo_way_t *m, const uintptr_t *at, uintptr_t value)
{
    if (m == NULL)
        return;
    if (m->reads < MEMO_READS) {
        m->read[m->reads].addr = (uintptr_t)at;
        m->read[m->reads].value = value;
    }
    m->reads++;
}

/* ---- Walking the stack: the steps ------------------------------------------------------- */

/* Walks up from the frame described by (pc, rsp, rbp): the caller's registers as they will be
 * when it resumes. Returns the count of addresses stored, or -1 for a frame that needs
 * backtrace(). Notes the words it reads in `memo` when there is one. */
static int walk(uintptr_t pc, uintptr_t rsp, uintptr_t rbp, uintptr_t *pcs, int max,
                memo_way_t *memo)
{
    rule_slot_t *slots = cache();
    int n = 0;
    bool rbp_reloaded = false;
    /* The last rbp the walk reloaded, and where from: noted in the memo only when a step takes
     * its CFA from it. A reloaded rbp that no step uses cannot change the walk, so a check need
     * not read it again; and every word noted before it was read at a CFA taken from rsp,
     * whatever this one holds, so the check still reads nothing the walk would not. */
    const uintptr_t *rbp_at = NULL;
    vt_code_object_t object = {0};
    while (n < max && pc != 0) {
        pcs[n++] = pc;
        /* A return address follows its call; pc - 1 is inside the call, in the caller's
         * function even when the call was the function's last instruction. */
        if (pc - 1 < object.start || pc - 1 >= object.end) {
            if (!vt_os_code_object(pc - 1, &object)) {
                if (n == 1)
                    return -1; /* not even our own code: no _dl_find_object (glibc < 2.35) */
                break;         /* no object there: JIT code, or not a return address */
            }
        }
        vt_cfi_rule_t rule = rule_for(slots, pc - 1, &object);
        if (rule.kind == VT_CFI_END)
            break;
        if (vt_unlikely(rule.kind != VT_CFI_STEP))
            return -1;
        if (rule.cfa_from_rbp && memo != NULL) {
            if (!rbp_reloaded)
                memo->uses_rbp = true;
            else if (rbp_at != NULL)
                memo_read(memo, rbp_at, rbp);
            rbp_at = NULL; /* noted once: the next steps read it again only after a reload */
        }
        uintptr_t cfa = (rule.cfa_from_rbp ? rbp : rsp) + (uintptr_t)(intptr_t)rule.cfa_off;
        if (vt_unlikely(cfa <= rsp || cfa - rsp > FRAME_MAX || (cfa & 7) != 0))
            break; /* not a stack any more: bad CFI, or rbp not what the rule expects */
        const uintptr_t *ra_at = (const uintptr_t *)(cfa + (uintptr_t)(intptr_t)rule.ra_off);
        pc = *ra_at;
        memo_read(memo, ra_at, pc);
        if (rule.rbp_off != 0) {
            rbp_at = (const uintptr_t *)(cfa + (uintptr_t)(intptr_t)rule.rbp_off);
            rbp = *rbp_at;
            rbp_reloaded = true;
        }
        rsp = cfa;
    }
    return n;
}

/* Stores the return addresses of the calling thread's stack, innermost first, starting with
 * the one into this function's caller, and returns their count (at most max). Never
 * allocates, except through backtrace() for the stacks it is given to (the first of which
 * loads libgcc_s: the caller must be ready to be called back). The frame pointer of this one
 * function gives the registers of its caller: asking for __builtin_frame_address(0) makes
 * GCC and clang set one up here, whatever -fomit-frame-pointer says. */
__attribute__((noinline)) int vt_unwind(uintptr_t *pcs, int max)
{
    int n = vt_unwind_from(__builtin_frame_address(0), pcs, max);
    __asm__ volatile("" ::: "memory"); /* not a tail call: the frame must outlive the walk */
    return n;
}

/* The same from a frame further up: `frame` is a live frame of the calling thread's stack with
 * a frame pointer (what __builtin_frame_address(0) gave the function that owns it, which has
 * not returned), and the addresses start with the one into that function's caller. The
 * profiler starts at the allocator function that decided to sample, so its own frames below
 * it (a third of a walk) are not stepped through. */
int vt_unwind_from(const void *frame, uintptr_t *pcs, int max)
{
    const uintptr_t *f = frame; /* [0] = caller's rbp, [1] = return address */
    int n = walk(f[1], (uintptr_t)(f + 2), f[0], pcs, max, NULL);
    if (n >= 0)
        return n;
    return unwind_by_backtrace(pcs, max);
}

/* The same, answered from the memo in *slot when the stack is one it holds, and the walk kept
 * there for the next calls otherwise. *pcs: the addresses, in the memo (good until the memo's
 * next use) or in `scratch` (max entries); a hit copies nothing. The memo is mapped on the first
 * call (a thread cache keeps it for every thread that uses the cache later); without memory
 * for it, a plain walk. *user: a word the caller may keep with this stack in the memo (it reads
 * 0 when the stack is new to the memo), or NULL when there is no memo. */
int vt_unwind_from_memo(const void *frame, uintptr_t *scratch, int max, vt_unwind_memo_t **slot,
                        uint64_t **user, const uintptr_t **pcs)
{
    const uintptr_t *f = frame;
    uintptr_t pc = f[1], rsp = (uintptr_t)(f + 2), rbp = f[0];
    vt_unwind_memo_t *m = *slot;
    if (m == NULL && max <= MEMO_FRAMES) { /* zero: m->max matches no call */
        size_t page = vt_os_page_size();
        uint8_t *map = vt_os_map((MEMO_OFFSET + sizeof(*m) + page - 1) & ~(page - 1), page);
        m = *slot = map != NULL ? (vt_unwind_memo_t *)(map + MEMO_OFFSET) : NULL;
    }
    *user = NULL;
    *pcs = scratch;
    if (m == NULL || max > MEMO_FRAMES)
        return vt_unwind_from(frame, scratch, max);
    int hit = vt_unwind_memo_lookup(m, frame, max, user, pcs);
    if (hit >= 0)
        return hit;
    /* A new walk replaces the way used longest ago. */
    m->last ^= 1;
    memo_way_t *w = &m->way[m->last];
    *user = &w->user;
    w->user = 0;
    w->reads = 0;
    w->uses_rbp = false;
    int n = walk(pc, rsp, rbp, w->pcs, max, w);
    w->pc = pc;
    w->rsp = rsp;
    w->rbp = rbp;
    /* A walk that needed backtrace(), or read more words than a way holds, is not kept. */
    w->max = n >= 0 && w->reads <= MEMO_READS ? max : 0;
    w->n = n;
    if (n < 0)
        return unwind_by_backtrace(scratch, max);
    *pcs = w->pcs;
    return n;
}

uint64_t vt_unwind_memo_hits(const vt_unwind_memo_t *memo)
{
    return memo != NULL ? memo->hits : 0;
}

#else /* not x86-64: glibc's unwinder for every stack */

int vt_unwind(uintptr_t *pcs, int max)
{
    return unwind_by_backtrace(pcs, max);
}

int vt_unwind_from(const void *frame, uintptr_t *pcs, int max)
{
    (void)frame;
    return unwind_by_backtrace(pcs, max);
}

int vt_unwind_from_memo(const void *frame, uintptr_t *scratch, int max, vt_unwind_memo_t **slot,
                        uint64_t **user, const uintptr_t **pcs)
{
    (void)slot;
    *user = NULL;
    *pcs = scratch;
    return vt_unwind_from(frame, scratch, max);
}

uint64_t vt_unwind_memo_hits(const vt_unwind_memo_t *memo)
{
    (void)memo;
    return 0;
}

#endif /* __x86_64__ */

/* fork(): the child must not inherit the lock held by a thread it does not have (init.c). */
void vt_unwind_fork_prepare(void)
{
    vt_mutex_lock(&unwind_lock);
}

void vt_unwind_fork_parent(void)
{
    vt_mutex_unlock(&unwind_lock);
}

void vt_unwind_fork_child(void)
{
    vt_mutex_unlock(&unwind_lock);
}
