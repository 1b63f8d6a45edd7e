/*
 * unwindmemo.h - the memo of a thread's last stack walks (unwind.c), laid out here so that the
 * heap profiler (prof.c) can ask it inline: a sampled allocation from a call site sampled
 * before is answered with a load and a compare per word of the stack, with no call.
 *
 * Owns: nothing; the memo belongs to a thread cache (types.h: prof_memo), unwind.c writes it.
 */
#ifndef VT_UNWINDMEMO_H
#define VT_UNWINDMEMO_H

#include "internal.h"

/* The longest walk a memo holds (prototypes.h: the profiler's). */
#define MEMO_FRAMES VT_UNWIND_MEMO_FRAMES
/* A step reads the return address, and the caller's rbp when the rule saved it. */
#define MEMO_READS (2 * MEMO_FRAMES)
/* Walks a memo keeps, the last ones from different starting points. A sampled allocation
 * reaches the profiler from malloc's fast path or from its slow path (an empty page), each
 * with its own frame; a program that samples one call site alternates between the two, and
 * with one walk kept, memtest original walked the whole stack at 1,447 of its 3,527 samples. */
#define MEMO_WAYS 2 /* two: the other one is last ^ 1 */

/*
 * One remembered walk, and every word of the stack it read, in order.
 *
 * Why a memo is exact: a walk is a function of where it starts (pc and rsp, and rbp if a rule
 * addressed the frame from rbp before any rule reloaded it), of the words it reads that
 * matter (every return address, and a reloaded rbp once a step addresses a frame from it: one
 * that is reloaded again first changes nothing), and of the rules, which depend on the code
 * alone. So when a new walk starts from the same place and
 * each word, read again in order, still holds what it held, every step comes out as before and
 * the stored addresses are the answer. The check stops at the first word that differs, so it
 * only reads an address the walk itself would read at that point: it is as safe as the walk.
 * A profiler that samples a loop then pays a load and a compare per frame, not a rule lookup
 * and an object lookup (_dl_find_object) each. Its one assumption is the rule cache's: the code
 * at an address stays the same while the address is on the stack (see the top of unwind.c).
 */
typedef struct memo_way {
    uintptr_t pc, rsp, rbp; /* where the walk started */
    int max, n;     /* the depth asked for (0: the way holds no walk), and the count returned */
    bool uses_rbp;  /* a rule addressed a frame from the starting rbp */
    unsigned reads; /* words in read */
    uint64_t user;  /* the caller's note about this stack; 0 whenever the walk is new */
    /* each word read, where and what: side by side, so that a check reads as few cache lines
     * as it can (a sampled allocation finds them cold) */
    struct {
        uintptr_t addr, value;
    } read[MEMO_READS];
    uintptr_t pcs[MEMO_FRAMES];
} memo_way_t;

/* Where a memo lies in its mapping (unwind.c): not at the start, whose line shares the
 * first-level cache's set with the first line of every page-aligned block, the set a program
 * that writes large blocks keeps busiest (profown.c: OWN_OFFSET). */
#define MEMO_OFFSET (10 * 64)

/* A thread's last walks. Owner only: the thread whose cache holds it (or whoever holds the lock
 * of a shared cache). */
struct vt_unwind_memo {
    /* First, on the line of the first way's start: at one sample in many mallocs, each line a
     * check reads has left the first-level cache. */
    unsigned last; /* the way that answered or was written last; the other goes first */
    uint64_t hits; /* walks it answered (the tests' proof that it is used) */
    memo_way_t way[MEMO_WAYS];
};

/* The way holds the walk from frame f ([0] = caller's rbp, [1] = return address): the start
 * is read from f again for each way, which leaves the loop registers enough to need none saved. */
static inline __attribute__((always_inline)) bool memo_answers(const memo_way_t *m,
                                                               const uintptr_t *f, int max)
{
    if (m->max != max || m->pc != f[1] || m->rsp != (uintptr_t)(f + 2) ||
        (m->uses_rbp && m->rbp != f[0]))
        return false;
    VT_ASSERT(m->n >= 0 && m->reads <= MEMO_READS); /* else the walk left max 0 */
    for (unsigned i = 0; i < m->reads; i++)
        if (*(const uintptr_t *)m->read[i].addr != m->read[i].value)
            return false; /* the stack changed below this word: walk */
    return true;
}

/* The way that holds the walk from `frame` (a caller's __builtin_frame_address(0)), or NULL
 * when none does (or there is no memo): then vt_unwind_from_memo walks and keeps the walk. Its
 * count of addresses is n, the addresses pcs, and user the caller's word for the stack (see
 * vt_unwind_from_memo). Owner only. */
static inline __attribute__((always_inline)) memo_way_t *
vt_unwind_memo_find(vt_unwind_memo_t *m, const void *frame, int max)
{
#ifdef __x86_64__
    if (m == NULL)
        return NULL;
    /* The way that answered last first: a loop that samples one place hits it at once. */
    for (unsigned k = 0; k < MEMO_WAYS; k++) {
        memo_way_t *w = &m->way[m->last ^ k];
        if (vt_likely(memo_answers(w, frame, max))) {
            m->last ^= k;
            m->hits++;
            return w;
        }
    }
#else
    (void)m, (void)frame, (void)max;
#endif
    return NULL;
}

/* The same as a count of addresses, with *pcs the addresses and *user the caller's word; -1
 * when the memo does not hold the walk. Owner only. */
static inline int vt_unwind_memo_lookup(vt_unwind_memo_t *m, const void *frame, int max,
                                        uint64_t **user, const uintptr_t **pcs)
{
    memo_way_t *w = vt_unwind_memo_find(m, frame, max);
    if (w == NULL)
        return -1;
    *user = &w->user;
    *pcs = w->pcs;
    return w->n;
}

#endif /* VT_UNWINDMEMO_H */
