/*
 * test_fork.c - fork() and vfork() around the allocator.
 *
 * Fork handlers that allocate: fork_handlers.c, run preloaded and linked, with its handlers
 * registered after vtmalloc's (the usual order) and before them (libforkearly.so, whose
 * constructor runs first), single- and multi-threaded: each run must print "child ok" and
 * "parent ok" (an alarm in the program turns a hang into a failure).
 *
 * vfork: a child that shares the parent's memory and allocates must not take the parent's
 * live thread caches for those of threads that are gone, nor leave the parent's thread with a
 * cache made under the child's id.
 *
 * Usage (ctest passes these): test_fork LIBVTMALLOC FORK_HANDLERS FORK_HANDLERS_LINKED LIBFORKEARLY
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "vtmalloc.h"

static const char *lib, *program, *program_linked, *early_lib;

/* Runs argv[0] with the extra environment entries, and returns what it printed on stdout;
 * fails the test unless it exits 0. */
static void run_program(const char *path, const char *preload, const char *phases, int early,
                        int threaded)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        setenv("PHASES", phases, 1);
        if (early)
            setenv("FORK_EARLY", "1", 1);
        if (threaded)
            setenv("THREADED", "1", 1);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[256] = {0};
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strcmp(out, "child ok\nparent ok\n") != 0)
        fail_msg("%s (LD_PRELOAD=%s PHASES=%s early=%d threaded=%d): %s %d, printed \"%s\"", path,
                 preload ? preload : "", phases, early, threaded,
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
}

static const char *const phase_sets[] = {"1", "2", "4", "7"};

static void handlers_registered_after_ours_may_allocate(void **state)
{
    (void)state;
    for (int threaded = 0; threaded <= 1; threaded++)
        for (size_t i = 0; i < sizeof(phase_sets) / sizeof(phase_sets[0]); i++) {
            run_program(program, lib, phase_sets[i], 0, threaded);
            run_program(program_linked, NULL, phase_sets[i], 0, threaded);
        }
}

/* libforkearly.so preloaded after vtmalloc: the loader runs its constructor first, so its
 * handlers are registered before vtmalloc's, and the prepare handler runs while vtmalloc holds
 * every lock (the case the fork holder exists for). Both orders of the two libraries run. */
static void handlers_registered_before_ours_may_allocate(void **state)
{
    (void)state;
    char after[2048], before[2048];
    snprintf(after, sizeof(after), "%s %s", lib, early_lib);
    snprintf(before, sizeof(before), "%s %s", early_lib, lib);
    for (int threaded = 0; threaded <= 1; threaded++)
        for (size_t i = 0; i < sizeof(phase_sets) / sizeof(phase_sets[0]); i++) {
            run_program(program, after, phase_sets[i], 1, threaded);
            run_program(program, before, phase_sets[i], 1, threaded);
            run_program(program_linked, early_lib, phase_sets[i], 1, threaded);
        }
}

/* ---- vfork ------------------------------------------------------------------------------- */

enum { VFORK_WORKERS = 4 };
static atomic_bool workers_stop;
static pthread_barrier_t workers_started;

static void *vfork_worker(void *arg)
{
    (void)arg;
    void *keep[64] = {0};
    unsigned i = 0;
    vt_free(vt_malloc(16));
    pthread_barrier_wait(&workers_started);
    while (!atomic_load(&workers_stop)) {
        unsigned k = i++ % 64;
        vt_free(keep[k]);
        keep[k] = vt_malloc(16 + (i * 40) % 3000);
        memset(keep[k], (int)k, 16);
    }
    for (unsigned k = 0; k < 64; k++)
        vt_free(keep[k]);
    return NULL;
}

/* What the child does before _exit: thousands of allocations (slow paths, housekeeping and
 * its reaping included), then malloc_trim, which reaps every cache whose thread is gone. */
static void child_allocates(void)
{
    void *blocks[256];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 256; i++)
            blocks[i] = vt_malloc((size_t)(16 + (i * 97) % 40000));
        for (int i = 0; i < 256; i++)
            vt_free(blocks[i]);
    }
    vt_malloc_trim(0);
}

static uint64_t live_caches(void)
{
    vt_stats_t st;
    vt_stats_get(&st);
    return st.thread_caches_live;
}

static void a_vfork_child_that_allocates_leaves_the_parent_intact(void **state)
{
    (void)state;
    vt_free(vt_malloc(16)); /* this thread's cache is live */
    pthread_t th[VFORK_WORKERS];
    atomic_store(&workers_stop, false);
    pthread_barrier_init(&workers_started, NULL, VFORK_WORKERS + 1);
    for (int i = 0; i < VFORK_WORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, vfork_worker, NULL), 0);
    pthread_barrier_wait(&workers_started);
    uint64_t before = live_caches();
    for (int round = 0; round < 5; round++) {
        pid_t pid = vfork();
        if (pid == 0) {
            child_allocates();
            _exit(0);
        }
        assert_true(pid > 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* The workers still run: their caches must all still be live. */
        assert_int_equal(live_caches(), before);
    }
    atomic_store(&workers_stop, true);
    for (int i = 0; i < VFORK_WORKERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&workers_started);
    assert_int_equal(live_caches(), before - VFORK_WORKERS);
}

/* A thread that has not allocated yet vforks; the child allocates (served by the orphan
 * cache), then the thread allocates itself and waits while another thread trims (which reaps
 * every cache whose thread is gone): its cache must not be taken from it. */
static pthread_barrier_t vfork_thread_allocated, vfork_trimmed;

static void *vfork_from_a_fresh_thread(void *arg)
{
    (void)arg;
    pid_t pid = vfork();
    if (pid == 0) {
        child_allocates();
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "vfork child failed");
    void *blocks[100];
    for (int i = 0; i < 100; i++)
        blocks[i] = vt_malloc(64);
    pthread_barrier_wait(&vfork_thread_allocated);
    pthread_barrier_wait(&vfork_trimmed);
    for (int i = 0; i < 100; i++)
        vt_free(blocks[i]); /* own-cache frees: a reaped cache would now be shared */
    for (int i = 0; i < 100; i++)
        blocks[i] = vt_malloc(64);
    for (int i = 0; i < 100; i++)
        vt_free(blocks[i]);
    return NULL;
}

static void a_vfork_child_of_a_fresh_thread_starts_no_cache_for_it(void **state)
{
    (void)state;
    vt_free(vt_malloc(16));
    uint64_t before = live_caches();
    pthread_barrier_init(&vfork_thread_allocated, NULL, 2);
    pthread_barrier_init(&vfork_trimmed, NULL, 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, vfork_from_a_fresh_thread, NULL), 0);
    pthread_barrier_wait(&vfork_thread_allocated);
    assert_int_equal(live_caches(), before + 1);
    vt_malloc_trim(0);
    assert_int_equal(live_caches(), before + 1); /* the thread is alive: its cache stays */
    pthread_barrier_wait(&vfork_trimmed);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&vfork_thread_allocated);
    pthread_barrier_destroy(&vfork_trimmed);
    assert_int_equal(live_caches(), before);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s LIBVTMALLOC FORK_HANDLERS FORK_HANDLERS_LINKED LIBFORKEARLY\n",
                argv[0]);
        return 2;
    }
    lib = argv[1];
    program = argv[2];
    program_linked = argv[3];
    early_lib = argv[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handlers_registered_after_ours_may_allocate),
        cmocka_unit_test(handlers_registered_before_ours_may_allocate),
        cmocka_unit_test(a_vfork_child_that_allocates_leaves_the_parent_intact),
        cmocka_unit_test(a_vfork_child_of_a_fresh_thread_starts_no_cache_for_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
