/*
 * join-lag.c - how often the kernel still knows a thread right after pthread_join returned.
 *
 * pthread_join waits for the kernel to clear the thread's id word (CLONE_CHILD_CLEARTID); the
 * kernel does that on the way out, before it removes the thread from its tables. vtmalloc's
 * reap (reclaim.c) judges a thread gone by tgkill(pid, tid, 0) failing with ESRCH, so a
 * malloc_trim right after a join may still find the thread there.
 *
 *   gcc -O2 -pthread join-lag.c -o join-lag && ./join-lag [joins]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *body(void *arg)
{
    *(pid_t *)arg = gettid();
    return NULL;
}

int main(int argc, char **argv)
{
    int joins = argc > 1 ? atoi(argv[1]) : 20000, known = 0;
    for (int i = 0; i < joins; i++) {
        pid_t tid;
        pthread_t t;
        if (pthread_create(&t, NULL, body, &tid) != 0 || pthread_join(t, NULL) != 0)
            return 1;
        if (syscall(SYS_tgkill, getpid(), tid, 0) == 0)
            known++;
    }
    printf("still known to tgkill right after the join: %d of %d\n", known, joins);
    return 0;
}
