/*
 * lock.h - the allocator's mutexes, and the one thread that may pass through them: the thread
 * that is running fork().
 *
 * fork() runs the handlers registered with pthread_atfork around the system call: prepare
 * handlers in the reverse order of registration, parent and child handlers in the order of
 * registration. vtmalloc's handlers (init.c) take every allocator lock before the fork and
 * release them after it, so that the child never inherits a lock held by a thread it does not
 * have. A program's own handler may run inside that window, whatever the order in which it
 * was registered (OpenSSL, NSS and many servers register handlers, and some allocate in them),
 * and then calls malloc or free on the thread that already holds every lock. That thread owns
 * every structure the locks protect, and every other thread is kept out by the real mutexes,
 * so it goes on without locking again: vt_fork_holder says it is that thread.
 *
 * Only the fork handlers in init.c set and clear the flag (defined in os.c), on their own
 * thread; it is thread-local, so no other thread ever reads it. Layer 0, with os.c.
 */
#ifndef VT_LOCK_H
#define VT_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define VT_HAVE_SINGLE_THREADED 1
#endif

extern __thread bool vt_fork_holder
    __attribute__((visibility("hidden"), tls_model("initial-exec")));

/*
 * The allocator's mutex: one word, taken and released with one atomic instruction each when no
 * other thread wants it, and a futex to sleep on when one does (the design of Drepper's
 * "Futexes are tricky", third version). The word is 0 when free, 1 when held, 2 when held and
 * a thread may be asleep on it, so that only an unlock that finds 2 makes a system call.
 *
 * Why not pthread_mutex_t: glibc's lock and unlock are calls through the PLT that first look at
 * the mutex's type; under callgrind a pair cost 55 instructions, against a few inline here,
 * and the heap profiler takes two pairs per sample (its allocation and its free). A waiter
 * may also spin before it sleeps (VTMALLOC_LOCK_SPINS, vt_os_lock_wait); by default it sleeps
 * at once, as with glibc's default mutex: see options.c for what spinning did on 2 CPUs.
 *
 * Ordering: taking the lock is an acquire and giving it back a release, so whatever a holder
 * wrote is seen by the next holder, as with any mutex. ThreadSanitizer sees the same order
 * through the atomics.
 */
typedef struct vt_lock {
    /* Any thread, through the functions below only: 0 free, 1 held, 2 held and maybe waited
     * for (only a waiter writes 2, only the holder's unlock writes 0). */
    _Atomic uint32_t state;
} vt_lock_t;

/* A free lock, for static initialisers (clang-format would spread the braces over lines). */
/* clang-format off */
#define VT_LOCK_INIT {0}
/* clang-format on */

/* The slow paths, in os.c: wait until the lock is ours (spinning up to vt_os_lock_spins
 * times first); wake one sleeping waiter. */
extern uint32_t vt_os_lock_spins __attribute__((visibility("hidden")));
void vt_os_lock_wait(_Atomic uint32_t *state) __attribute__((visibility("hidden")));
void vt_os_lock_wake(_Atomic uint32_t *state) __attribute__((visibility("hidden")));

/* Takes the lock without looking at vt_fork_holder: for the fork handlers, which take every
 * lock before they set it. */
static inline __attribute__((always_inline)) void vt_lock_take(vt_lock_t *l)
{
    uint32_t free_state = 0;
    if (__builtin_expect(!atomic_compare_exchange_strong_explicit(
                             &l->state, &free_state, 1, memory_order_acquire, memory_order_relaxed),
                         0))
        vt_os_lock_wait(&l->state);
}

static inline __attribute__((always_inline)) void vt_lock_give(vt_lock_t *l)
{
    if (__builtin_expect(atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2, 0))
        vt_os_lock_wake(&l->state);
}

static inline __attribute__((always_inline)) void vt_mutex_lock(vt_lock_t *l)
{
    if (!vt_fork_holder)
        vt_lock_take(l);
}

/* True when the lock is now held (or the caller is the fork holder). */
static inline __attribute__((always_inline)) bool vt_mutex_trylock(vt_lock_t *l)
{
    uint32_t free_state = 0;
    return vt_fork_holder ||
           atomic_compare_exchange_strong_explicit(&l->state, &free_state, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline __attribute__((always_inline)) void vt_mutex_unlock(vt_lock_t *l)
{
    if (!vt_fork_holder)
        vt_lock_give(l);
}

/* True while the process has one thread, as glibc keeps it (__libc_single_threaded, as its own
 * malloc uses it): a word that is atomic only so that other threads can take it over (a
 * thread's stash, a large block's owner word) can then be changed with a load and a store,
 * not a locked read-modify-write, which costs more than the rest of a malloc+free of a large
 * block. Why the answer is never wrong for the caller: glibc clears the flag in
 * pthread_create before the new thread exists, so every thread but the first sees it false
 * from its start (its creation happens before it runs), and the first thread sees its own
 * store; so only a process's one thread can read true, and no other thread exists to race
 * with until that same thread creates one. It becomes true again only in a fork child, which
 * has one thread. (Threads made by a raw clone(), behind glibc's back, break glibc's own malloc
 * the same way.) */
static inline bool vt_sole_thread(void)
{
#ifdef VT_HAVE_SINGLE_THREADED
    return __libc_single_threaded;
#else
    return false;
#endif
}

#endif /* VT_LOCK_H */
