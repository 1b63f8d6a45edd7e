/*
 * fuzz_ops.c - libFuzzer harness: the input is a program of operations on the vt_* API, run
 * against a shadow model of every live block (its requested size, alignment, pattern, and the
 * usable size vtmalloc reported), checked after every step.
 *
 * Operations (one opcode byte, then its arguments from the following bytes):
 *   malloc, calloc (zeroed?), realloc (contents kept up to the smaller size?), reallocarray,
 *   memalign / aligned_alloc / posix_memalign (aligned? bad alignments rejected?), valloc,
 *   pvalloc, free, free_sized, free_aligned_sized, malloc_usable_size (>= the request, stable),
 *   malloc_trim; on a second thread: free, realloc and malloc (so blocks cross threads both
 *   ways), and restarting that thread (its cache is handed back while its blocks live on);
 *   arming the failure hook vt_os_fail_countdown (the n-th next mapping fails: the calls that
 *   need it must fail with NULL and ENOMEM, leave their block alone, and work again after).
 * Sizes are drawn across small, medium and large blocks and a table of edge sizes (0, class
 * boundaries, SIZE_MAX, PTRDIFF_MAX, ...). The second thread runs one command at a time,
 * synchronously, so an input always replays the same way.
 *
 * At the end of every input every block is checked and freed, and no large block may remain.
 * Built by run.sh with clang, -fsanitize=fuzzer plus address or undefined, with the core
 * library's sources (debug assertions on). (Every known bug it found is fixed;
 * see tests/RELIABILITY.md.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "rand.h" /* bench/rand.h */
#include "vtmalloc.h"

#define SLOTS  64
#define BUDGET ((size_t)192 << 20) /* live bytes at most: the fuzzer's RSS stays small */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ops: check failed: %s: ", #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- The shadow model --------------------------------------------------------------------- */

typedef struct shadow {
    uint8_t *p;     /* NULL: the slot is empty */
    size_t size;    /* requested */
    size_t usable;  /* what vt_malloc_usable_size said at allocation */
    size_t align;   /* asked alignment (0: none) */
    uint64_t seed;  /* the pattern */
    bool big_align; /* allocated with an alignment above 64 KiB */
} shadow_t;

static shadow_t slots[SLOTS];
static size_t live_bytes;
static uint64_t next_seed = 1;

static inline uint8_t pat(uint64_t seed, size_t i)
{
    return (uint8_t)(rng_pattern(seed, i) >> 56) ^ (uint8_t)i;
}

/* Patterned regions: all of a block up to 16 KiB, else its first and last 4 KiB. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    if (n <= 16384) {
        for (size_t i = 0; i < n; i++)
            p[i] = pat(seed, i);
        return;
    }
    for (size_t i = 0; i < 4096; i++)
        p[i] = pat(seed, i);
    for (size_t i = n - 4096; i < n; i++)
        p[i] = pat(seed, i);
}

/* Checks the first n bytes of the block against its pattern, where fill() wrote it. */
static void verify(const shadow_t *s, size_t n, const char *when)
{
    const uint8_t *p = s->p;
    size_t head = s->size <= 16384 ? n : (n < 4096 ? n : 4096);
    for (size_t i = 0; i < head; i++)
        CHECK(p[i] == pat(s->seed, i), "%s: block %p (%zu bytes) byte %zu", when, (void *)p,
              s->size, i);
    if (s->size > 16384 && n == s->size)
        for (size_t i = n - 4096; i < n; i++)
            CHECK(p[i] == pat(s->seed, i), "%s: block %p (%zu bytes) byte %zu", when, (void *)p,
                  s->size, i);
}

/* ---- Input decoding ---------------------------------------------------------------------------
 */

typedef struct input {
    const uint8_t *d;
    size_t n, at;
} input_t;

static uint8_t byte(input_t *in)
{
    return in->at < in->n ? in->d[in->at++] : 0;
}

static uint32_t u16(input_t *in)
{
    uint32_t v = byte(in);
    return v | (uint32_t)byte(in) << 8;
}

static size_t edge_size(uint8_t k)
{
    static size_t table[24];
    if (table[0] == 0) {
        size_t t[] = {0,
                      1,
                      15,
                      16,
                      17,
                      128,
                      129,
                      4096,
                      4097,
                      8192,
                      8193,
                      65536,
                      65537,
                      VT_SMALL_MAX - 1,
                      VT_SMALL_MAX,
                      VT_SMALL_MAX + 1,
                      (size_t)4 << 20,
                      ((size_t)4 << 20) + 1,
                      SIZE_MAX,
                      SIZE_MAX - 4095,
                      (size_t)PTRDIFF_MAX,
                      (size_t)PTRDIFF_MAX + 1,
                      (size_t)1 << 47,
                      SIZE_MAX / 2};
        memcpy(table, t, sizeof(t));
        table[0] = 0;
    }
    return table[k % 24];
}

static size_t draw_size(input_t *in)
{
    uint8_t kind = byte(in);
    if (kind < 150)
        return u16(in) % 1025; /* small */
    if (kind < 210)
        return 1025 + (u16(in) * 4u + byte(in)) % (VT_SMALL_MAX - 1024); /* medium */
    if (kind < 225)
        return VT_SMALL_MAX + 1 + ((size_t)u16(in) << 7) % ((size_t)8 << 20); /* large */
    if (kind < 245) { /* a class boundary, +-1 */
        unsigned k = byte(in) % VT_CLASS_COUNT;
        return vt_classes[k].bsize + (size_t)(byte(in) % 3) - 1;
    }
    return edge_size(byte(in));
}

static size_t draw_alignment(input_t *in)
{
    uint8_t a = byte(in);
    if (a < 200)
        return (size_t)1 << (a % 24); /* 1 B .. 8 MiB */
    if (a < 230)
        return (size_t)(a - 199) * 24; /* not powers of two */
    return edge_size(byte(in));        /* 0, huge, ... */
}

static bool impossible(size_t n)
{
    return n > (size_t)PTRDIFF_MAX || n > ((size_t)1 << 40);
}

/* ---- The failure hook
 * ---------------------------------------------------------------------------- */

static bool hook_armed(void)
{
    return atomic_load(&vt_os_fail_countdown) > 0;
}

/* A failed call is allowed when the size is impossible, or when the hook fired during it. */
static void expect_failure_ok(bool was_armed, size_t n, int err, const char *what)
{
    bool fired = was_armed && !hook_armed();
    CHECK(impossible(n) || fired || n > BUDGET,
          "%s(%zu) failed (errno %d) with nothing to explain it", what, n, err);
    CHECK(err == ENOMEM, "%s(%zu) failed with errno %d, not ENOMEM", what, n, err);
}

/* ---- The second thread -------------------------------------------------------------------------
 */

enum { CMD_NONE, CMD_FREE, CMD_REALLOC, CMD_MALLOC, CMD_EXIT };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_t thread;
    bool running;
    int cmd;
    int slot;
    size_t size;
    void *result;
    int err;
    bool done;
} peer = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *peer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&peer.lock);
    for (;;) {
        while (peer.cmd == CMD_NONE)
            pthread_cond_wait(&peer.cv, &peer.lock);
        int cmd = peer.cmd;
        shadow_t *s = peer.slot >= 0 ? &slots[peer.slot] : NULL;
        errno = 0;
        switch (cmd) {
        case CMD_FREE:
            vt_free(s->p);
            break;
        case CMD_REALLOC:
            peer.result = vt_realloc(s->p, peer.size);
            break;
        case CMD_MALLOC:
            peer.result = vt_malloc(peer.size);
            break;
        default:
            break;
        }
        peer.err = errno;
        peer.cmd = CMD_NONE;
        peer.done = true;
        pthread_cond_broadcast(&peer.cv);
        if (cmd == CMD_EXIT)
            break;
    }
    pthread_mutex_unlock(&peer.lock);
    return NULL;
}

static void peer_run(int cmd, int slot, size_t size)
{
    if (!peer.running) {
        CHECK(pthread_create(&peer.thread, NULL, peer_main, NULL) == 0, "pthread_create");
        peer.running = true;
    }
    pthread_mutex_lock(&peer.lock);
    peer.cmd = cmd;
    peer.slot = slot;
    peer.size = size;
    peer.done = false;
    pthread_cond_broadcast(&peer.cv);
    while (!peer.done)
        pthread_cond_wait(&peer.cv, &peer.lock);
    pthread_mutex_unlock(&peer.lock);
    if (cmd == CMD_EXIT) {
        pthread_join(peer.thread, NULL);
        peer.running = false;
    }
}

/* ---- Operations
 * ------------------------------------------------------------------------------------ */

static void take(shadow_t *s, void *p, size_t size, size_t align, bool big_align)
{
    s->p = p;
    s->size = size;
    s->align = align;
    s->big_align = big_align;
    s->usable = vt_malloc_usable_size(p);
    CHECK(s->usable >= size, "usable size %zu < %zu", s->usable, size);
    CHECK((uintptr_t)p % 16 == 0, "%p not 16-byte aligned", p);
    s->seed = next_seed++;
    fill(s->p, size, s->seed);
    live_bytes += s->usable;
}

static void release(shadow_t *s)
{
    live_bytes -= s->usable;
    s->p = NULL;
}

static void op_free(shadow_t *s, int how)
{
    if (s->p == NULL)
        return;
    verify(s, s->size, "before free");
    CHECK(vt_malloc_usable_size(s->p) == s->usable, "usable size changed: %zu -> %zu", s->usable,
          vt_malloc_usable_size(s->p));
    int saved = errno = 4321;
    if (how == 0)
        vt_free(s->p);
    else if (how == 1)
        vt_free_sized(s->p, s->size);
    else
        vt_free_aligned_sized(s->p, s->align, s->size);
    CHECK(errno == saved, "free changed errno to %d", errno);
    release(s);
}

static void op_alloc(shadow_t *s, input_t *in, int kind)
{
    op_free(s, 0);
    size_t n = draw_size(in), align = 0;
    bool armed = hook_armed();
    void *p = NULL;
    int rc = 0;
    errno = 0;
    switch (kind) {
    case 0:
        p = vt_malloc(n);
        break;
    case 1: {
        size_t count = byte(in) % 4 + 1;
        size_t each = n / count;
        if (byte(in) == 255)
            each = SIZE_MAX / 2; /* an overflowing product (for count > 2) */
        if (each > SIZE_MAX / count) {
            CHECK(vt_calloc(count, each) == NULL && errno == ENOMEM, "calloc overflow");
            return;
        }
        n = count * each;
        if (n > BUDGET && !impossible(n))
            return;
        p = vt_calloc(count, each);
        if (p != NULL)
            for (size_t i = 0; i<n; i += n> 65536 ? 4093 : 1)
                CHECK(((uint8_t *)p)[i] == 0, "calloc(%zu, %zu): byte %zu not zero", count, each,
                      i);
        break;
    }
    case 2:
        p = vt_reallocarray(NULL, 1, n);
        break;
    case 3:
    case 4:
    case 5: {
        align = draw_alignment(in);
        if ((n > BUDGET && !impossible(n)) ||
            (align > ((size_t)16 << 20) && align < ((size_t)1 << 62)))
            return; /* possible, but too big for the fuzzer */
        if (kind == 3) {
            p = vt_memalign(align, n);
        } else if (kind == 4) {
            p = vt_aligned_alloc(align, n);
        } else {
            void *out = (void *)0x1;
            rc = vt_posix_memalign(&out, align, n);
            bool bad = align == 0 || align % sizeof(void *) != 0 || (align & (align - 1)) != 0;
            if (bad) {
                CHECK(rc == EINVAL && out == (void *)0x1, "posix_memalign(%zu): rc %d", align, rc);
                return;
            }
            CHECK(rc == 0 || (rc == ENOMEM && out == (void *)0x1), "posix_memalign rc %d", rc);
            p = rc == 0 ? out : NULL;
            if (rc != 0)
                errno = ENOMEM;
        }
        if (p != NULL && align > 1) {
            size_t want = align <= 16 ? 16 : align;
            if (want & (want - 1)) { /* rounded up to a power of two */
                size_t pow2 = 1;
                while (pow2 < want)
                    pow2 <<= 1;
                want = pow2;
            }
            CHECK((uintptr_t)p % want == 0, "aligned(%zu, %zu) = %p", align, n, p);
        }
        break;
    }
    case 6:
        p = vt_valloc(n);
        align = (size_t)sysconf(_SC_PAGESIZE);
        break;
    default:
        p = vt_pvalloc(n);
        align = (size_t)sysconf(_SC_PAGESIZE);
        break;
    }
    if (p == NULL) {
        if (kind >= 3 && kind <= 5 && align >= ((size_t)1 << 62)) { /* a huge alignment */
            int want = kind != 5 && align > SIZE_MAX / 2 + 1 ? EINVAL : ENOMEM;
            CHECK(errno == want, "alignment %#zx: errno %d, expected %d", align, errno, want);
            return;
        }
        expect_failure_ok(armed, n, errno, "allocation");
        return;
    }
    CHECK(!impossible(n), "an impossible size (%#zx) was allocated", n);
    CHECK(align < ((size_t)1 << 62), "an impossible alignment (%#zx) was served", align);
    CHECK(errno == 0, "a successful allocation set errno to %d", errno);
    if (n > BUDGET || live_bytes > BUDGET) { /* possible, but keep the fuzzer small */
        vt_free(p);
        return;
    }
    take(s, p, n, align, align > 65536);
}

static void op_realloc(shadow_t *s, input_t *in, bool array, bool on_peer)
{
    if (s->p == NULL)
        return;
    size_t n = draw_size(in);
    if (!impossible(n) && (n > BUDGET || live_bytes + n > BUDGET))
        return;
    verify(s, s->size, "before realloc");
    bool armed = hook_armed();
    void *q;
    int err;
    errno = 0;
    if (on_peer) {
        peer_run(CMD_REALLOC, (int)(s - slots), n);
        q = peer.result;
        err = peer.err;
    } else {
        q = array ? vt_reallocarray(s->p, 1, n) : vt_realloc(s->p, n);
        err = errno;
    }
    if (n == 0) { /* frees, returns NULL (glibc's behaviour) */
        CHECK(q == NULL, "realloc(p, 0) returned %p", q);
        release(s);
        return;
    }
    CHECK(q == NULL || !impossible(n), "realloc to an impossible size (%#zx) succeeded", n);
    if (q == NULL) { /* the block is as it was */
        expect_failure_ok(armed, n, err, "realloc");
        verify(s, s->size, "after a failed realloc");
        CHECK(vt_malloc_usable_size(s->p) == s->usable, "a failed realloc changed the block");
        return;
    }
    CHECK(err == 0, "a successful realloc set errno to %d", err);
    size_t keep = s->size < n ? s->size : n;
    shadow_t moved = *s;
    moved.p = q;
    verify(&moved, keep, "after realloc");
    live_bytes -= s->usable;
    s->p = NULL;
    take(s, q, n, 0, false);
}

static void op_usable(shadow_t *s)
{
    if (s->p == NULL)
        return;
    size_t u = vt_malloc_usable_size(s->p);
    CHECK(u == s->usable, "usable size %zu, was %zu", u, s->usable);
    /* all of it is writable: the tail beyond the request, then restore the pattern */
    if (u - s->size <= 65536) {
        memset(s->p + s->size, 0xAB, u - s->size);
        verify(s, s->size, "after writing the slack");
    }
}

static void finish_input(void)
{
    atomic_store(&vt_os_fail_countdown, 0);
    for (int i = 0; i < SLOTS; i++)
        op_free(&slots[i], 0);
    CHECK(live_bytes == 0, "live bytes %zu after freeing everything", live_bytes);
    vt_stats_t st;
    vt_stats_get(&st);
    CHECK(st.large_blocks == 0 && st.large_bytes == 0, "%llu large blocks (%llu bytes) leaked",
          (unsigned long long)st.large_blocks, (unsigned long long)st.large_bytes);
    CHECK(st.thread_caches_live <= 3, "%llu live thread caches",
          (unsigned long long)st.thread_caches_live);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {data, size, 0};
    unsigned steps = 0;
    while (in.at < in.n && steps++ < 400) {
        uint8_t op = byte(&in);
        shadow_t *s = &slots[byte(&in) % SLOTS];
        switch (op % 20) {
        case 0:
        case 1:
        case 2:
            op_alloc(s, &in, 0);
            break; /* malloc */
        case 3:
            op_alloc(s, &in, 1);
            break; /* calloc */
        case 4:
            op_alloc(s, &in, 2);
            break; /* reallocarray(NULL) */
        case 5:
            op_alloc(s, &in, 3 + byte(&in) % 3);
            break; /* aligned */
        case 6:
            op_alloc(s, &in, 6 + byte(&in) % 2);
            break; /* valloc, pvalloc */
        case 7:
        case 8:
            op_realloc(s, &in, op & 1, false);
            break; /* realloc, reallocarray */
        case 9:
        case 10:
            op_free(s, 0);
            break;
        case 11:
            op_free(s, 1 + byte(&in) % 2);
            break; /* sized frees */
        case 12:
            op_usable(s);
            break;
        case 13:
            vt_malloc_trim(0);
            break;
        case 14: /* freed by the other thread */
            if (s->p != NULL) {
                verify(s, s->size, "before a remote free");
                peer_run(CMD_FREE, (int)(s - slots), 0);
                release(s);
            }
            break;
        case 15:
            op_realloc(s, &in, false, true);
            break; /* realloc'ed there */
        case 16: { /* allocated there, used and freed here */
            size_t n = draw_size(&in);
            if (n > BUDGET || live_bytes + n > BUDGET)
                break;
            op_free(s, 0);
            bool armed = hook_armed();
            peer_run(CMD_MALLOC, -1, n);
            if (peer.result == NULL)
                expect_failure_ok(armed, n, peer.err, "malloc on the other thread");
            else
                take(s, peer.result, n, 0, false);
            break;
        }
        case 17: /* the other thread exits: its cache goes back, its blocks live on */
            if (peer.running)
                peer_run(CMD_EXIT, -1, 0);
            break;
        case 18: /* the n-th next mapping fails */
            atomic_store(&vt_os_fail_countdown, (long)(byte(&in) % 4) + 1);
            break;
        default:
            atomic_store(&vt_os_fail_countdown, 0);
            break;
        }
    }
    finish_input();
    return 0;
}
