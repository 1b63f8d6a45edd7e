/*
 * os.c - the only file that maps memory or talks to the kernel.
 *
 * Layer: 0 OS
 * Calls: sysalloc.c, report.c
 *
 * Owns: mmap/munmap/mremap, the backing choice (mmap or the system allocator), write(2) for
 * messages, abort, the start-up randomness, and the fork holder of lock.h. Never called with
 * the global lock held (span.c, spanpurge.c and large.c drop their locks first), and never
 * changes errno except to report its own failure.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "tsan.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic long vt_os_fail_countdown;

/* lock.h: the thread running fork(), between our prepare and parent/child handlers. */
__thread bool vt_fork_holder __attribute__((tls_model("initial-exec")));

size_t vt_os_page_size(void)
{
    /* getauxval reads the auxiliary vector the kernel passed: no system call, no allocation.
     * Threads may race to fill the cache; they all store the same value, hence relaxed. */
    static _Atomic size_t cached;
    size_t size = atomic_load_explicit(&cached, memory_order_relaxed);
    if (vt_unlikely(size == 0)) {
        size = (size_t)getauxval(AT_PAGESZ);
        if (size == 0)
            size = 4096;
        atomic_store_explicit(&cached, size, memory_order_relaxed);
    }
    return size;
}

/* The test hook of issue "out of memory": true when this mapping is the one asked to fail. */
static bool injected_failure(void)
{
    if (vt_likely(atomic_load_explicit(&vt_os_fail_countdown, memory_order_relaxed) <= 0))
        return false;
    return atomic_fetch_sub_explicit(&vt_os_fail_countdown, 1, memory_order_relaxed) == 1;
}

static void *map_anonymous(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *vt_os_map(size_t size, size_t alignment)
{
    size_t page = vt_os_page_size();
    VT_ASSERT(size % page == 0 && (alignment & (alignment - 1)) == 0);
    if (injected_failure()) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = map_anonymous(size);
    if (p == NULL || alignment <= page || ((uintptr_t)p & (alignment - 1)) == 0)
        return p; /* The kernel places mappings top-down, so spans are often aligned at once. */
    vt_os_unmap(p, size);
    /* Map enough to contain an aligned range, then give back the ends. */
    size_t over = size + alignment - page;
    if (over < size) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *raw = map_anonymous(over);
    if (raw == NULL)
        return NULL;
    uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1));
    if (aligned > raw)
        vt_os_unmap(raw, (size_t)(aligned - raw));
    size_t tail = (size_t)(raw + over - (aligned + size));
    if (tail > 0)
        vt_os_unmap(aligned + size, tail);
    return aligned;
}

void vt_os_unmap(void *p, size_t size)
{
    int saved = errno; /* free() must not change errno, and munmap may. */
    munmap(p, size);
    errno = saved;
}

void *vt_os_remap(void *p, size_t old_size, size_t new_size)
{
    if (injected_failure()) {
        errno = ENOMEM;
        return NULL;
    }
    vt_tsan_address_space_release();
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    vt_tsan_address_space_acquire();
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

void *vt_os_backing_alloc(size_t size, size_t alignment, vt_backing_t backing)
{
    if (backing == VT_BACKING_MMAP)
        return vt_os_map(size, alignment);
    if (injected_failure()) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = vt_sysalloc_memalign(alignment, size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void vt_os_backing_free(void *p, size_t size, vt_backing_t backing)
{
    int saved = errno; /* free() must not change errno */
    if (backing == VT_BACKING_MMAP)
        vt_os_unmap(p, size);
    else
        vt_sysalloc_free(p);
    errno = saved;
}

/* Writes all of text; false (errno set) when the descriptor refused some of it. */
bool vt_os_write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        text += n;
        len -= (size_t)n;
    }
    return true;
}

/* For messages: errno as it was, whatever happened. */
void vt_os_write(int fd, const char *text, size_t len)
{
    int saved = errno;
    vt_os_write_all(fd, text, len);
    errno = saved;
}

/* A file for a dump, created or truncated: its descriptor, or -1 with errno set. */
int vt_os_create(const char *path)
{
    int fd;
    do
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* False (errno set) when the last writes could not be completed. */
static bool close_written(int fd)
{
    return close(fd) == 0 || errno == EINTR;
}

/* Creates (or truncates) the file `path` and has `write` fill it: 0, or -1 with errno set by
 * the first step that failed (EINVAL: path is NULL). For the dumps an operator asks for. */
int vt_os_write_file(const char *path, bool (*write_to)(int fd, void *arg), void *arg)
{
    if (path == NULL) {
        errno = EINVAL;
        return -1;
    }
    int fd = vt_os_create(path);
    if (fd < 0)
        return -1;
    bool ok = write_to(fd, arg);
    int saved = errno;
    if (!close_written(fd) && ok) {
        saved = errno;
        ok = false;
    }
    errno = saved;
    return ok ? 0 : -1;
}

/* Copies a file (/proc/self/maps) to fd, through a stack buffer. */
bool vt_os_copy_file(const char *path, int fd)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return false;
    char buf[4096];
    bool ok = true;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        if (!vt_os_write_all(fd, buf, (size_t)n)) {
            ok = false;
            break;
        }
    }
    int saved = errno;
    close(in);
    errno = saved;
    return ok;
}

/* The return addresses of the calling thread's stack, innermost first (glibc's backtrace,
 * which unwinds by the DWARF tables: programs built without frame pointers too). Its first call
 * loads libgcc_s and may allocate: the caller must be ready to be called back. */
int vt_os_backtrace(void **frames, int max)
{
    return backtrace(frames, max);
}

/* The loaded object (program or library) whose mapping holds pc: false when none does, or
 * on a C library without _dl_find_object (glibc before 2.35). Lock-free and never allocates,
 * unlike dl_iterate_phdr, which takes a loader lock that a child of a threaded parent can
 * inherit held. */
bool vt_os_code_object(uintptr_t pc, vt_code_object_t *object)
{
#if defined(DLFO_STRUCT_HAS_EH_DBASE)
    struct dl_find_object found;
    if (_dl_find_object((void *)pc, &found) == 0) {
        object->start = (uintptr_t)found.dlfo_map_start;
        object->end = (uintptr_t)found.dlfo_map_end;
        object->id = (uintptr_t)found.dlfo_link_map;
        object->eh_frame_hdr = found.dlfo_eh_frame;
        return true;
    }
#else
    (void)pc;
    (void)object;
#endif
    return false;
}

/* Installs a handler for sig (SA_RESTART, so the program's system calls are not cut short).
 * False when the signal cannot be caught. */
bool vt_os_catch_signal(int sig, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) == 0;
}

bool vt_os_purge(void *p, size_t size)
{
    /* DONTNEED: the kernel drops the pages now and maps zero pages on the next touch; the
     * mapping itself stays, so the number of VMAs does not grow with purging. It fails (EINVAL)
     * on locked pages (mlock, mlockall) and wherever a seccomp filter refuses it: the memory
     * then still holds its old bytes, and the caller must not count it as returned or zero. */
    int saved = errno;
    bool done = madvise(p, size, MADV_DONTNEED) == 0;
    errno = saved;
    return done;
}

/* Sleeps up to `ms` while *word holds `expected`; returns early once another thread changed it
 * and called vt_os_wake (or on a signal). A futex, not a condition variable: it holds no lock
 * that a fork child could inherit held. Linux only: elsewhere a plain sleep. */
void vt_os_wait(_Atomic uint32_t *word, uint32_t expected, uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    int saved = errno;
#if defined(SYS_futex) && defined(FUTEX_WAIT_PRIVATE)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
#else
    (void)word;
    (void)expected;
    nanosleep(&ts, NULL);
#endif
    errno = saved;
}

/* Wakes the threads in vt_os_wait on `word` (the caller changed it first). */
void vt_os_wake(_Atomic uint32_t *word)
{
#if defined(SYS_futex) && defined(FUTEX_WAKE_PRIVATE)
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    errno = saved;
#else
    (void)word;
#endif
}

/* Tells the CPU that this is a spin-wait loop (it then yields to a sibling hyperthread, and
 * leaves the loop without a pipeline flush). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* A waiter's spins before it sleeps (lock.h): VTMALLOC_LOCK_SPINS, which options.c copies here
 * at initialisation, before any lock is contended; 0 until then, and 0 sleeps at once. A plain
 * variable: it is written once, by the initialising thread, and every other thread reads it
 * only after it has seen initialisation done (init.c's acquire of INIT_DONE, released after). */
uint32_t vt_os_lock_spins;

/* lock.h's slow path: the lock was not free. Spin while the holder may be about to give it
 * back, then mark the lock waited-for (2) and sleep until an unlock wakes us. A thread that
 * takes the lock by the exchange to 2 keeps the mark, so its own unlock wakes the next
 * waiter: at worst a wake-up with nobody asleep, never a sleeper left behind. */
void vt_os_lock_wait(_Atomic uint32_t *state)
{
    for (uint32_t i = 0; i < vt_os_lock_spins; i++) {
        uint32_t seen = atomic_load_explicit(state, memory_order_relaxed);
        if (seen == 0 && atomic_compare_exchange_weak_explicit(
                             state, &seen, 1, memory_order_acquire, memory_order_relaxed))
            return;
        if (seen == 2)
            break; /* others sleep already: queue behind them, do not spin past them */
        cpu_relax();
    }
    int saved = errno;
    while (atomic_exchange_explicit(state, 2, memory_order_acquire) != 0) {
#if defined(SYS_futex) && defined(FUTEX_WAIT_PRIVATE)
        syscall(SYS_futex, (uint32_t *)state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    errno = saved;
}

/* lock.h's unlock found a waiter's mark: one sleeper is woken to try again. */
void vt_os_lock_wake(_Atomic uint32_t *state)
{
#if defined(SYS_futex) && defined(FUTEX_WAKE_PRIVATE)
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
#else
    (void)state;
#endif
}

uint32_t vt_os_now_ms(void)
{
    /* The coarse clock is read from the vDSO: no system call, a few nanoseconds. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* The CPU the calling thread runs on (it may move at any time: a hint), or 0 when the kernel
 * will not say. glibc reads it from the thread's rseq area, without a system call. */
unsigned vt_os_cpu(void)
{
    int cpu = sched_getcpu();
    return cpu > 0 ? (unsigned)cpu : 0;
}

int32_t vt_os_thread_id(void)
{
    return (int32_t)syscall(SYS_gettid);
}

int32_t vt_os_process_id(void)
{
    /* The system call, not a cached value: a vfork or CLONE_VM child must see its own id. */
    return (int32_t)syscall(SYS_getpid);
}

bool vt_os_thread_gone(int32_t pid, int32_t tid)
{
    /* Signal 0 only checks: ESRCH means process `pid` has no thread of that id any more. An id
     * the kernel gave to a new thread since reads as alive, the safe answer. The caller names
     * the process: in a vfork child getpid() is the child's, whose threads are not ours. */
    int saved = errno;
    bool gone = syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH;
    errno = saved;
    return gone;
}

int vt_os_dup_fd(int fd)
{
    int saved = errno;
    /* Far above the descriptors programs count on, and closed across exec. */
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    errno = saved;
    return copy;
}

bool vt_os_fd_identity(int fd, vt_fd_identity_t *id)
{
    struct stat st;
    int saved = errno;
    bool open = fstat(fd, &st) == 0;
    errno = saved;
    if (open) {
        id->dev = (uint64_t)st.st_dev;
        id->ino = (uint64_t)st.st_ino;
        id->rdev = (uint64_t)st.st_rdev;
    }
    return open;
}

void vt_os_abort(void)
{
    abort();
}

uint64_t vt_os_random(void)
{
    /* AT_RANDOM: 16 random bytes the kernel gives every process; no system call needed. */
    uint64_t r = VT_FIBONACCI_HASH;
    const uint8_t *bytes = (const uint8_t *)getauxval(AT_RANDOM);
    if (bytes != NULL) {
        uint64_t a, b;
        memcpy(&a, bytes, 8);
        memcpy(&b, bytes + 8, 8);
        r ^= a * VT_FIBONACCI_HASH ^ b; /* any odd multiplier mixes */
    }
    r ^= (uint64_t)(uintptr_t)&r; /* stack randomisation as a fallback */
    r ^= r >> 31;
    return r;
}
