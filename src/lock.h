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

#include <pthread.h>
#include <stdbool.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define VT_HAVE_SINGLE_THREADED 1
#endif

extern __thread bool vt_fork_holder
    __attribute__((visibility("hidden"), tls_model("initial-exec")));

static inline __attribute__((always_inline)) void vt_mutex_lock(pthread_mutex_t *m)
{
    if (!vt_fork_holder)
        pthread_mutex_lock(m);
}

/* True when the lock is now held (or the caller is the fork holder). */
static inline __attribute__((always_inline)) bool vt_mutex_trylock(pthread_mutex_t *m)
{
    return vt_fork_holder || pthread_mutex_trylock(m) == 0;
}

static inline __attribute__((always_inline)) void vt_mutex_unlock(pthread_mutex_t *m)
{
    if (!vt_fork_holder)
        pthread_mutex_unlock(m);
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
