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

#endif /* VT_LOCK_H */
