/*
 * common.h - helpers shared by the tests: cmocka, the PRNG (bench/rand.h), byte patterns, the
 * resident set, waiting for a joined thread to be gone, and running a function in a child process
 * to observe how it ends (death tests).
 */
#ifndef VT_TEST_COMMON_H
#define VT_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rand.h" /* bench/rand.h: the PRNG the tests and the benchmarks share */

/* cmocka's assertions jump back into the test runner, which only works on the thread that runs
 * the test; code that runs on other threads (or in children) checks with this instead. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Sanitizers keep shadow memory for everything the program touches, or (UBSan) slow the
 * program down enough that RSS read at a moment reflects timing more than the allocator: the
 * RSS assertions are skipped in sanitizer builds (the rest still runs); the Release run of the
 * suite keeps them. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(VT_TEST_SANITIZED)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

/* The process's resident set, in bytes. */
static inline size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages_total = 0, pages_rss = 0;
    if (f == NULL || fscanf(f, "%lu %lu", &pages_total, &pages_rss) != 2)
        abort();
    fclose(f);
    return pages_rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* Waits until the kernel no longer knows thread `tid` of this process; false after 5 s.
 * pthread_join returns once the kernel has cleared the thread's id word, which it does before
 * it drops the thread from its tables: for a moment after the join, tgkill(pid, tid, 0) still
 * finds it (25 of 20,000 joins on the loaded 2-core machine). vtmalloc judges a thread gone by
 * that signal (it reaps the caches of threads whose exit destructor never ran), so a test that
 * expects a reap must wait for this first, or it fails now and then under load. */
static inline bool wait_thread_gone(pid_t tid)
{
    for (int i = 0; i < 5000; i++) {
        if (syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH)
            return true;
        usleep(1000);
    }
    return false;
}

/* The byte at offset i of a block identified by `id`: a block holding another's bytes, or
 * shifted ones, fails the check. */
static inline uint8_t pattern_byte(uint64_t id, size_t i)
{
    return (uint8_t)(rng_pattern(id + 1, i) >> 56);
}

/* Under ThreadSanitizer every byte the test touches is an instrumented access, and filling and
 * checking whole blocks of up to 300 KB byte by byte was most of the threaded tests' time there
 * (test_threads: 145 s of a CI run, against 11 s under UBSan). What TSan is run for is the
 * allocator's hand-off of blocks between threads, which shows in any byte two threads both
 * touch: a block's head, where the free lists' links are, and a byte every PATTERN_STRIDE after
 * it are enough for it. The offsets covered do not depend on the block's length, so a prefix of
 * a block (after realloc) checks what a fill of the whole wrote. Other builds use every byte. */
#if defined(__SANITIZE_THREAD__)
enum { PATTERN_STRIDE = 61, PATTERN_HEAD = 512 };
#else
enum { PATTERN_STRIDE = 1, PATTERN_HEAD = 1 };
#endif

/* The next offset after i that the pattern covers. */
static inline size_t pattern_next(size_t i)
{
    return i + 1 < PATTERN_HEAD ? i + 1 : i + PATTERN_STRIDE;
}

static inline void pattern_fill(void *p, size_t n, uint64_t id)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i = pattern_next(i))
        b[i] = pattern_byte(id, i);
}

/* Returns the first offset that differs, or n. */
static inline size_t pattern_check(const void *p, size_t n, uint64_t id)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i = pattern_next(i))
        if (b[i] != pattern_byte(id, i))
            return i;
    return n;
}

/* How a child process ended and what it wrote on stderr. */
typedef struct child_result {
    int exited; /* 1 if it exited normally */
    int status; /* exit status, or the signal that killed it */
    char err[4096];
} child_result_t;

/* Runs fn(arg) in a child with stderr captured; the child exits 0 if fn returns. */
static inline child_result_t run_in_child(void (*fn)(void *), void *arg)
{
    child_result_t r;
    memset(&r, 0, sizeof(r));
    int fds[2];
    if (pipe(fds) != 0)
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], r.err + len, sizeof(r.err) - 1 - len)) > 0)
        len += (size_t)n;
    r.err[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
        r.exited = 1;
        r.status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r.status = WTERMSIG(status);
    }
    return r;
}

#endif
