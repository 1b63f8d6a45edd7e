/*
 * fork_handlers.c - a program whose fork handlers allocate and free in all three phases, run
 * by test_fork.c preloaded and linked. The handlers are registered by main (after vtmalloc's,
 * which it registers when it is loaded) or, with FORK_EARLY set, by libforkearly.so's
 * constructor, which the test arranges to run before vtmalloc's: its prepare handler then runs
 * while vtmalloc holds its locks. PHASES (a mask: 1 prepare, 2 parent, 4 child) picks the
 * handlers that allocate; THREADED=1 keeps a second thread allocating across the forks (glibc
 * then runs the handlers under its own lock). Prints "child ok" and "parent ok"; an alarm
 * turns a hang into a failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((visibility("default"))) void fork_handlers_register(int phases);

/* Allocations of every path: a small block, a large block in a span, a mapped block. */
void fork_handlers_work(void)
{
    char *small = malloc(100), *large = malloc(600 << 10), *mapped = malloc(3 << 20);
    if (small == NULL || large == NULL || mapped == NULL)
        abort();
    memset(small, 1, 100);
    memset(large, 2, 4096);
    memset(mapped, 3, 4096);
    free(mapped);
    free(large);
    free(small);
}

static int phase_mask;
static void prepare(void)
{
    if (phase_mask & 1)
        fork_handlers_work();
}
static void parent(void)
{
    if (phase_mask & 2)
        fork_handlers_work();
}
static void child(void)
{
    if (phase_mask & 4)
        fork_handlers_work();
}

void fork_handlers_register(int phases)
{
    phase_mask = phases;
    pthread_atfork(prepare, parent, child);
}

static atomic_bool stop;
static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        free(malloc(700 << 10));
    return NULL;
}

int main(void)
{
    alarm(20);
    const char *phases = getenv("PHASES");
    if (getenv("FORK_EARLY") == NULL)
        fork_handlers_register(phases ? atoi(phases) : 7);
    fork_handlers_work(); /* the allocator is in use before the first fork */
    pthread_t thread;
    int threaded = getenv("THREADED") != NULL;
    if (threaded && pthread_create(&thread, NULL, busy, NULL) != 0)
        return 2;
    for (int i = 0; i < 5; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            return 3;
        if (pid == 0) {
            fork_handlers_work();
            if (i == 0)
                puts("child ok");
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 4;
    }
    if (threaded) {
        atomic_store(&stop, true);
        pthread_join(thread, NULL);
    }
    puts("parent ok");
    return 0;
}
