/*
 * test_unwind.c - the profiler's unwinder (unwind.c) finds the same callers as glibc's
 * backtrace(), on stacks that need each kind of rule it caches: frames addressed from rsp and
 * from rbp (alloca), the C library's own frames (qsort calling back), threads, the cache hit
 * on a second walk, a stack cut at the depth asked for, a walk from a frame further up (as the
 * profiler starts), and a signal handler (whose trampoline it hands to backtrace()).
 */
#include <execinfo.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

#define MAX_FRAMES 64

typedef struct stacks {
    uintptr_t ours[MAX_FRAMES];
    void *theirs[MAX_FRAMES];
    int n_ours, n_theirs;
} stacks_t;

/* Both stacks, taken in this one function: each starts with an address in it, and from its
 * caller on they must name the same frames. */
static __attribute__((noinline)) void take_both(stacks_t *s)
{
    s->n_ours = vt_unwind(s->ours, MAX_FRAMES);
    s->n_theirs = backtrace(s->theirs, MAX_FRAMES);
    __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays on the stack */
}

/* Where the callers of take_both start in our stack: 1 when vt_unwind stepped through every
 * frame itself; further on when it handed the stack to backtrace() (then its own frames come
 * first). -1 when the callers are not there. */
static int callers_start(const stacks_t *s)
{
    for (int i = 1; i < s->n_ours; i++)
        if (s->ours[i] == (uintptr_t)s->theirs[1])
            return i;
    return -1;
}

static void assert_same_callers(const stacks_t *s)
{
    assert_true(s->n_theirs >= 3);
    int start = callers_start(s);
    assert_true(start >= 1);
    assert_int_equal(s->n_ours - start, s->n_theirs - 1);
    for (int i = 1; i < s->n_theirs; i++)
        assert_true(s->ours[start + i - 1] == (uintptr_t)s->theirs[i]);
}

/* ---- Frames of several shapes -------------------------------------------------------------- */

static volatile int sink;

static __attribute__((noinline)) void leaf(stacks_t *s)
{
    take_both(s);
    sink++;
}

/* A frame sized at run time: addressed from rbp. */
static __attribute__((noinline)) void with_alloca(stacks_t *s, size_t n)
{
    volatile char *buf = __builtin_alloca(n);
    buf[0] = 1;
    buf[n - 1] = 2;
    leaf(s);
    sink += buf[0];
}

/* A large frame addressed from rsp. */
static __attribute__((noinline)) void with_big_frame(stacks_t *s, int depth)
{
    volatile char buf[4096];
    buf[depth] = (char)depth;
    if (depth > 0)
        with_big_frame(s, depth - 1);
    else
        with_alloca(s, 100 + (size_t)sink % 7);
    sink += buf[depth];
}

/* Frames 0-9 are take_both, leaf, with_alloca, six of with_big_frame and this one: the same
 * addresses at every call. */
#define SAME_SITE_FRAMES 10
static __attribute__((noinline)) void from_one_site(stacks_t *s)
{
    with_big_frame(s, 5);
    __asm__ volatile("" ::: "memory");
}

static void frames_of_every_shape(void **state)
{
    (void)state;
    stacks_t s[2];
    /* Twice: the second time every rule comes from the cache. */
    for (int round = 0; round < 2; round++)
        from_one_site(&s[round]);
    for (int round = 0; round < 2; round++) {
        assert_same_callers(&s[round]);
        assert_int_equal(callers_start(&s[round]), 1); /* all by the cached rules */
    }
    assert_int_equal(s[1].n_ours, s[0].n_ours);
    assert_true(s[0].n_ours > SAME_SITE_FRAMES);
    for (int i = 0; i < SAME_SITE_FRAMES; i++)
        assert_true(s[1].ours[i] == s[0].ours[i]);
}

/* ---- The C library's frames: qsort calls back --------------------------------------------- */

static stacks_t in_compare;
static int compare_calls;

static int compare_ints(const void *a, const void *b)
{
    if (compare_calls++ == 3)
        take_both(&in_compare);
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void frames_of_the_c_library(void **state)
{
    (void)state;
    int values[64];
    for (int i = 0; i < 64; i++)
        values[i] = (i * 37) % 64;
    compare_calls = 0;
    qsort(values, 64, sizeof(int), compare_ints);
    assert_true(compare_calls > 3);
    assert_same_callers(&in_compare);
    assert_int_equal(callers_start(&in_compare), 1);
}

/* ---- A thread's stack ends where the thread started --------------------------------------- */

static void *thread_body(void *arg)
{
    with_alloca(arg, 64);
    return NULL;
}

static void a_thread(void **state)
{
    (void)state;
    stacks_t s;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_body, &s), 0);
    pthread_join(th, NULL);
    assert_same_callers(&s);
    assert_int_equal(callers_start(&s), 1);
}

/* ---- The depth asked for ------------------------------------------------------------------ */

static __attribute__((noinline)) int take_three(uintptr_t *pcs)
{
    int n = vt_unwind(pcs, 3);
    __asm__ volatile("" ::: "memory");
    return n;
}

static void stops_at_the_depth_asked_for(void **state)
{
    (void)state;
    stacks_t s;
    with_big_frame(&s, 2);
    uintptr_t three[4] = {0, 0, 0, 0};
    assert_int_equal(take_three(three), 3);
    assert_true(three[3] == 0);
    for (int i = 0; i < 3; i++)
        assert_true(three[i] != 0);
}

/* ---- From a frame further up (what the profiler does) ---------------------------------------- */

static __attribute__((noinline)) int walk_from(const void *frame, uintptr_t *pcs)
{
    int n = vt_unwind_from(frame, pcs, MAX_FRAMES);
    __asm__ volatile("" ::: "memory");
    return n;
}

/* The walk from this function's frame, taken two calls deeper, starts with the address into
 * this function's caller: backtrace's callers, without the frames in between. */
static __attribute__((noinline)) void from_this_frame(stacks_t *s)
{
    s->n_ours = walk_from(__builtin_frame_address(0), s->ours);
    s->n_theirs = backtrace(s->theirs, MAX_FRAMES);
    __asm__ volatile("" ::: "memory");
}

static void from_a_frame_further_up(void **state)
{
    (void)state;
    stacks_t s;
    from_this_frame(&s);
    assert_true(s.n_theirs >= 3);
    assert_int_equal(s.n_ours, s.n_theirs - 1);
    for (int i = 0; i < s.n_ours; i++)
        assert_true(s.ours[i] == (uintptr_t)s.theirs[i + 1]);
}

/* ---- The memo of the last walks (what the profiler uses) ------------------------------------ */

#define MEMO_DEPTH VT_UNWIND_MEMO_FRAMES /* the profiler's: VT_PROF_DEPTH and its own frames */

static vt_unwind_memo_t *memo;

typedef struct walk_pair {
    uintptr_t memo[MEMO_DEPTH], plain[MEMO_DEPTH];
    int n_memo, n_plain;
    const void *frame;
    uint64_t hits_after;
    uint64_t user_seen; /* the memo's user word as the walk left it, before this call's note */
} walk_pair_t;

/* The same walk, with the memo and without it, from this function's frame. */
static __attribute__((noinline)) void take_pair(walk_pair_t *w)
{
    w->frame = __builtin_frame_address(0);
    w->n_plain = vt_unwind_from(w->frame, w->plain, MEMO_DEPTH);
    uint64_t *user;
    const uintptr_t *found;
    w->n_memo = vt_unwind_from_memo(w->frame, w->memo, MEMO_DEPTH, &memo, &user, &found);
    if (w->n_memo > 0 && found != w->memo) /* the memo's own copy: compared below */
        memcpy(w->memo, found, (size_t)w->n_memo * sizeof(uintptr_t));
    w->hits_after = vt_unwind_memo_hits(memo);
    w->user_seen = user != NULL ? *user : UINT64_MAX;
    if (user != NULL)
        *user = 0x5eed; /* what the profiler keeps there: kept for this stack only */
    __asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void in_between(walk_pair_t *w)
{
    take_pair(w);
    __asm__ volatile("" ::: "memory");
}

/* Two callers of the same shape (noipa: not merged into one): in_between's frame, and so the
 * walk's start, are at the same place under either, and only a word further up the stack (the
 * return address into one or the other) tells them apart. */
static __attribute__((noinline, noipa)) void caller_a(walk_pair_t *w)
{
    in_between(w);
    __asm__ volatile("" ::: "memory");
}

static __attribute__((noinline, noipa)) void caller_b(walk_pair_t *w)
{
    in_between(w);
    __asm__ volatile("nop" ::: "memory");
}

static __attribute__((noinline, noipa)) void caller_c(walk_pair_t *w)
{
    in_between(w);
    __asm__ volatile("nop; nop" ::: "memory");
}

static void assert_same_walk(const walk_pair_t *w)
{
    assert_true(w->n_plain >= 4);
    assert_int_equal(w->n_memo, w->n_plain);
    assert_memory_equal(w->memo, w->plain, (size_t)w->n_plain * sizeof(uintptr_t));
}

/* What walk i of the sequence below must find: answered by the memo (a hit) or walked, and the
 * caller's note the memo gave it (0x5eed: the note this stack's last walk left). */
static void assert_walk(const walk_pair_t *w, const walk_pair_t *before, bool hit)
{
    assert_same_walk(w);
#if defined(__x86_64__)
    assert_true(w->hits_after == before->hits_after + (hit ? 1 : 0));
    assert_true(w->user_seen == (hit ? 0x5eed : 0));
#else
    (void)before;
    (void)hit;
#endif
}

static void the_memo_answers_only_the_same_stack(void **state)
{
    (void)state;
    enum { WALKS = 8 };
    static walk_pair_t w[WALKS];
    /* One call site for all, so that the words above the callers are the same too: a loop
     * whose count the compiler cannot see, so that it cannot unroll it into several. The
     * memo keeps two walks and replaces the one used longest ago. */
    static volatile int rounds = WALKS;
    void (*const callers[WALKS])(walk_pair_t *) = {caller_a, caller_a, caller_b, caller_a,
                                                   caller_b, caller_c, caller_b, caller_a};
    for (int i = 0; i < rounds && i < WALKS; i++)
        callers[i](&w[i]);
    assert_same_walk(&w[0]);
    assert_true(w[0].user_seen != 0x5eed);
    assert_walk(&w[1], &w[0], true);  /* a again: the memo's answer, with a's note */
    assert_walk(&w[2], &w[1], false); /* b starts where a did, but is another stack */
    assert_walk(&w[3], &w[2], true);  /* a: still kept beside b */
    assert_walk(&w[4], &w[3], true);  /* b: kept too */
    assert_walk(&w[5], &w[4], false); /* c: new, in place of a (used longest ago) */
    assert_walk(&w[6], &w[5], true);  /* b: still kept */
    assert_walk(&w[7], &w[6], false); /* a: gone */
#if defined(__x86_64__)
    /* The three start at the same place: a memo that compared only the start would answer. */
    assert_ptr_equal(w[2].frame, w[0].frame);
    assert_ptr_equal(w[5].frame, w[0].frame);
    bool differs = false;
    for (int i = 0; i < w[0].n_plain; i++)
        differs |= w[0].plain[i] != w[2].plain[i];
    assert_true(differs);
#endif
}

/* Two frames addressed from rbp, one inside the other: the walk reloads rbp from the inner one's
 * saved word and takes the outer one's CFA from it, the word that the memo notes only then. */
static __attribute__((noinline)) void inner_alloca(walk_pair_t *w, size_t n)
{
    volatile char *buf = __builtin_alloca(n);
    buf[0] = 1;
    take_pair(w);
    sink += buf[0];
}

static __attribute__((noinline)) void outer_alloca(walk_pair_t *w, size_t n)
{
    volatile char *buf = __builtin_alloca(n);
    buf[n - 1] = 1;
    inner_alloca(w, 48);
    sink += buf[n - 1];
}

static void the_memo_answers_through_frames_addressed_from_rbp(void **state)
{
    (void)state;
    static walk_pair_t w[3];
    static volatile size_t sizes[3] = {64, 64, 4096};
    static volatile int rounds = 3; /* one call site: a count the compiler cannot unroll */
    for (int i = 0; i < rounds && i < 3; i++)
        outer_alloca(&w[i], sizes[i]);
    assert_same_walk(&w[0]);
    assert_walk(&w[1], &w[0], true); /* the same stack: the memo answers, reloaded rbp and all */
    /* A deeper outer frame: the walk starts elsewhere, and is walked again. */
    assert_walk(&w[2], &w[1], false);
}

/* ---- A signal handler: the kernel's frame goes to backtrace() ------------------------------ */

static stacks_t in_handler;

static void handler(int sig)
{
    (void)sig;
    take_both(&in_handler);
}

static void a_signal_handler(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    raise(SIGUSR1);
    sigaction(SIGUSR1, &old, NULL);
    assert_same_callers(&in_handler);
    /* Past the trampoline to this test function, as backtrace() goes. */
    assert_true(in_handler.n_ours > 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frames_of_every_shape),
        cmocka_unit_test(frames_of_the_c_library),
        cmocka_unit_test(a_thread),
        cmocka_unit_test(stops_at_the_depth_asked_for),
        cmocka_unit_test(from_a_frame_further_up),
        cmocka_unit_test(the_memo_answers_only_the_same_stack),
        cmocka_unit_test(the_memo_answers_through_frames_addressed_from_rbp),
        cmocka_unit_test(a_signal_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
