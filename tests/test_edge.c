/*
 * test_edge.c - the edge cases of glibc's malloc checklist that test_api.c does not cover:
 *
 *   - sizes near SIZE_MAX and PTRDIFF_MAX (and just past the rounding of each entry point) at
 *     every entry point: NULL with ENOMEM (EINVAL where glibc says so), never a short block;
 *   - calloc zeroes recycled blocks of every class (blocks freed dirty by this thread and by
 *     another), and large blocks from the system-allocator backing;
 *   - realloc across every class boundary in both directions, into and out of large blocks
 *     and out of aligned blocks, contents preserved and neighbours untouched;
 *   - an alignment x size matrix (size below, equal to and above the alignment, and at class
 *     boundaries) for memalign, aligned_alloc, posix_memalign, valloc and pvalloc;
 *   - every result 16-byte aligned; malloc_usable_size >= the request, stable, and all of it
 *     writable without touching the neighbours;
 *   - errno: set on every failure, preserved by every free and every successful call.
 *
 * Where C and glibc disagree or glibc changed (realloc(p, 0), aligned_alloc with an alignment
 * that is not a power of two or a size that is not a multiple of it, posix_memalign's errno,
 * calloc(0, SIZE_MAX), ...) the test asks the glibc installed here: this program links the
 * core library, so malloc, realloc, aligned_alloc, ... are glibc's own, and vtmalloc must give
 * the same answer (NULL or not, and the same errno).
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "vtmalloc.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Opaque to the compiler, so it cannot fold an allocation of an impossible size away. */
static size_t opaque(size_t n)
{
    volatile size_t v = n;
    return v;
}

/* ---- Impossible sizes at every entry point ----------------------------------------------- */

enum entry {
    E_MALLOC,
    E_CALLOC_1N,
    E_CALLOC_N1,
    E_REALLOC_SMALL,
    E_REALLOC_LARGE,
    E_REALLOC_ALIGNED,
    E_REALLOCARRAY_NULL,
    E_REALLOCARRAY_P,
    E_MEMALIGN_32,
    E_MEMALIGN_4K,
    E_MEMALIGN_1M,
    E_ALIGNED_ALLOC_64,
    E_ALIGNED_ALLOC_128K,
    E_POSIX_MEMALIGN_16,
    E_POSIX_MEMALIGN_256,
    E_POSIX_MEMALIGN_2M,
    E_VALLOC,
    E_PVALLOC,
    E_COUNT
};

static const char *const entry_names[E_COUNT] = {
    "malloc",
    "calloc(1,n)",
    "calloc(n,1)",
    "realloc(small,n)",
    "realloc(large,n)",
    "realloc(aligned 1 MiB,n)",
    "reallocarray(NULL,n,1)",
    "reallocarray(p,1,n)",
    "memalign(32,n)",
    "memalign(4096,n)",
    "memalign(1 MiB,n)",
    "aligned_alloc(64,n)",
    "aligned_alloc(128 KiB,n)",
    "posix_memalign(16,n)",
    "posix_memalign(256,n)",
    "posix_memalign(2 MiB,n)",
    "valloc",
    "pvalloc",
};

/* What one call gave: the pointer, errno after it, posix_memalign's return value. */
typedef struct outcome {
    void *p;
    int err;
    int rc;
} outcome_t;

/* The functions of one allocator, so the same case runs on vtmalloc and on glibc. */
typedef struct allocator {
    void *(*malloc_)(size_t);
    void *(*calloc_)(size_t, size_t);
    void *(*realloc_)(void *, size_t);
    void *(*reallocarray_)(void *, size_t, size_t);
    void *(*memalign_)(size_t, size_t);
    void *(*aligned_alloc_)(size_t, size_t);
    int (*posix_memalign_)(void **, size_t, size_t);
    void *(*valloc_)(size_t);
    void *(*pvalloc_)(size_t);
    void (*free_)(void *);
} allocator_t;

static const allocator_t vt = {vt_malloc,   vt_calloc,        vt_realloc,        vt_reallocarray,
                               vt_memalign, vt_aligned_alloc, vt_posix_memalign, vt_valloc,
                               vt_pvalloc,  vt_free};
static const allocator_t sys = {malloc,        calloc,         realloc, reallocarray, memalign,
                                aligned_alloc, posix_memalign, valloc,  pvalloc,      free};

/* Calls one entry point with size n. For the realloc cases, *old is the block to resize; it
 * is filled with a pattern before, and must be intact (and still ours) after a failure. */
static outcome_t call_entry(const allocator_t *a, int e, size_t n, void *old)
{
    outcome_t o = {NULL, 0, 0};
    errno = 0;
    switch (e) {
    case E_MALLOC:
        o.p = a->malloc_(n);
        break;
    case E_CALLOC_1N:
        o.p = a->calloc_(1, n);
        break;
    case E_CALLOC_N1:
        o.p = a->calloc_(n, 1);
        break;
    case E_REALLOC_SMALL:
    case E_REALLOC_LARGE:
    case E_REALLOC_ALIGNED:
        o.p = a->realloc_(old, n);
        break;
    case E_REALLOCARRAY_NULL:
        o.p = a->reallocarray_(NULL, n, 1);
        break;
    case E_REALLOCARRAY_P:
        o.p = a->reallocarray_(old, 1, n);
        break;
    case E_MEMALIGN_32:
        o.p = a->memalign_(32, n);
        break;
    case E_MEMALIGN_4K:
        o.p = a->memalign_(4096, n);
        break;
    case E_MEMALIGN_1M:
        o.p = a->memalign_((size_t)1 << 20, n);
        break;
    case E_ALIGNED_ALLOC_64:
        o.p = a->aligned_alloc_(64, n);
        break;
    case E_ALIGNED_ALLOC_128K:
        o.p = a->aligned_alloc_((size_t)128 << 10, n);
        break;
    case E_POSIX_MEMALIGN_16:
    case E_POSIX_MEMALIGN_256:
    case E_POSIX_MEMALIGN_2M: {
        size_t al = e == E_POSIX_MEMALIGN_16    ? 16
                    : e == E_POSIX_MEMALIGN_256 ? 256
                                                : (size_t)2 << 20;
        void *out = (void *)0x5151;
        o.rc = a->posix_memalign_(&out, al, n);
        o.p = o.rc == 0 ? out : NULL;
        if (o.rc != 0 && out != (void *)0x5151)
            fail_msg("posix_memalign(%zu, %#zx) failed with %d but wrote *out", al, n, o.rc);
        break;
    }
    case E_VALLOC:
        o.p = a->valloc_(n);
        break;
    case E_PVALLOC:
        o.p = a->pvalloc_(n);
        break;
    }
    o.err = errno;
    return o;
}

static void *make_old(const allocator_t *a, int e)
{
    void *p;
    if (e == E_REALLOC_LARGE)
        p = a->malloc_((size_t)1 << 20);
    else if (e == E_REALLOC_ALIGNED)
        p = a->memalign_((size_t)1 << 20, 100);
    else
        p = a->malloc_(100);
    assert_non_null(p);
    pattern_fill(p, 100, 77);
    return p;
}

/* Sizes where overflow in rounding (to a class, to an alignment, to a page, to a mapping)
 * would turn an impossible request into a small block. */
static size_t huge_sizes[256];
static size_t huge_count;

static void collect_huge_sizes(void)
{
    const size_t bases[] = {SIZE_MAX,         (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
                            SIZE_MAX / 2 + 2, (size_t)1 << 62,     (size_t)1 << 56};
    const size_t deltas[] = {0,
                             1,
                             2,
                             7,
                             8,
                             15,
                             16,
                             17,
                             31,
                             32,
                             63,
                             64,
                             4095,
                             4096,
                             4097,
                             65535,
                             65536,
                             65537,
                             (size_t)1 << 20,
                             ((size_t)2 << 20) - 1,
                             (size_t)4 << 20,
                             VT_SMALL_MAX,
                             VT_SMALL_MAX + 1};
    huge_count = 0;
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
        for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
            /* Far beyond this machine's memory, so glibc must fail too (a 2^56 request
             * could in principle succeed with overcommit: kept, as glibc is asked too). */
            size_t n = bases[b] - deltas[d];
            if (huge_count < sizeof(huge_sizes) / sizeof(huge_sizes[0]))
                huge_sizes[huge_count++] = n;
        }
}

static void impossible_sizes_fail_like_glibc_at_every_entry_point(void **state)
{
    (void)state;
    collect_huge_sizes();
    for (size_t i = 0; i < huge_count; i++) {
        size_t n = opaque(huge_sizes[i]);
        for (int e = 0; e < E_COUNT; e++) {
            void *vold = NULL, *gold = NULL;
            if (e == E_REALLOC_SMALL || e == E_REALLOC_LARGE || e == E_REALLOC_ALIGNED ||
                e == E_REALLOCARRAY_P) {
                vold = make_old(&vt, e);
                gold = make_old(&sys, e);
            }
            outcome_t v = call_entry(&vt, e, n, vold);
            outcome_t g = call_entry(&sys, e, n, gold);
            if (g.p != NULL) { /* glibc managed it (overcommit): vtmalloc's must be whole */
                if (v.p == NULL)
                    fail_msg("%s(%#zx): glibc succeeded, vtmalloc failed (errno %d)",
                             entry_names[e], n, v.err);
                assert_true(vt_malloc_usable_size(v.p) >= n);
                sys.free_(g.p);
                vt.free_(v.p);
                continue;
            }
            if (v.p != NULL)
                fail_msg("%s(%#zx) returned %p (usable %zu): a short block; glibc: NULL/%d",
                         entry_names[e], n, v.p, vt_malloc_usable_size(v.p), g.err);
            if (v.err != g.err || v.rc != g.rc)
                fail_msg("%s(%#zx): vtmalloc errno %d rc %d, glibc errno %d rc %d", entry_names[e],
                         n, v.err, v.rc, g.err, g.rc);
            if (e < E_POSIX_MEMALIGN_16 || e > E_POSIX_MEMALIGN_2M)
                assert_true(v.err == ENOMEM || v.err == EINVAL);
            else
                assert_int_equal(v.rc, ENOMEM);
            if (vold != NULL) { /* a failed realloc leaves the block as it was, and ours */
                assert_int_equal(pattern_check(vold, 100, 77), 100);
                assert_true(vt_malloc_usable_size(vold) >= 100);
                vt_free(vold);
                sys.free_(gold);
            }
        }
    }
}

/* calloc and reallocarray: every product that overflows, and products that do not overflow
 * but are impossible, and zero products of huge factors (a block, as glibc gives). */
static void calloc_and_reallocarray_products_like_glibc(void **state)
{
    (void)state;
    const size_t f[][2] = {
        {2, SIZE_MAX / 2 + 1},
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)1 << 32, (size_t)1 << 31},
        {3, SIZE_MAX / 3 + 1},
        {SIZE_MAX, SIZE_MAX},
        {65537, SIZE_MAX / 65536},
        {16, (size_t)PTRDIFF_MAX / 16 + 1},
        {SIZE_MAX, 1},
        {1, (size_t)PTRDIFF_MAX + 1},
        {0, SIZE_MAX},
        {SIZE_MAX, 0},
        {0, 0},
        {(size_t)1 << 40, 0},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        size_t a = opaque(f[i][0]), b = opaque(f[i][1]);
        errno = 0;
        void *v = vt_calloc(a, b);
        int verr = errno;
        errno = 0;
        void *g = calloc(a, b);
        int gerr = errno;
        if ((v == NULL) != (g == NULL) || verr != gerr)
            fail_msg("calloc(%#zx, %#zx): vtmalloc %p errno %d, glibc %p errno %d", a, b, v, verr,
                     g, gerr);
        if (v != NULL) {
            assert_true(vt_malloc_usable_size(v) >= 1);
            vt_free(v);
            free(g);
        }
        /* reallocarray from NULL and from a live block */
        errno = 0;
        v = vt_reallocarray(NULL, a, b);
        verr = errno;
        errno = 0;
        g = reallocarray(NULL, a, b);
        gerr = errno;
        if ((v == NULL) != (g == NULL) || verr != gerr)
            fail_msg("reallocarray(NULL, %#zx, %#zx): vtmalloc %p errno %d, glibc %p errno %d", a,
                     b, v, verr, g, gerr);
        vt_free(v);
        free(g);
        if (a == 0 || b == 0)
            continue; /* reallocarray(p, 0, n) is realloc(p, 0): the glibc comparison below */
        void *vp = vt_malloc(40), *gp = malloc(40);
        void *volatile gkeep = gp; /* freed below: the failed reallocarray left it alone */
        pattern_fill(vp, 40, 9);
        errno = 0;
        v = vt_reallocarray(vp, a, b);
        verr = errno;
        errno = 0;
        g = reallocarray(gp, a, b);
        gerr = errno;
        if ((v == NULL) != (g == NULL) || verr != gerr)
            fail_msg("reallocarray(p, %#zx, %#zx): vtmalloc %p errno %d, glibc %p errno %d", a, b,
                     v, verr, g, gerr);
        assert_null(v);
        assert_int_equal(pattern_check(vp, 40, 9), 40);
        vt_free(vp);
        free(gkeep);
    }
}

/* ---- Where C and glibc differ: glibc's answer is the rule --------------------------------- */

static void realloc_to_zero_and_friends_agree_with_glibc(void **state)
{
    (void)state;
    /* realloc(p, 0): glibc frees and returns NULL, errno untouched. */
    size_t sizes[] = {1, 100, 5000, 100000, (size_t)1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *vp = vt_malloc(sizes[i]), *gp = malloc(sizes[i]);
        errno = 0;
        void *v = vt_realloc(vp, 0);
        int verr = errno;
        errno = 0;
        void *g = realloc(gp, opaque(0));
        int gerr = errno;
        if ((v == NULL) != (g == NULL) || verr != gerr)
            fail_msg("realloc(%zu-byte block, 0): vtmalloc %p errno %d, glibc %p errno %d",
                     sizes[i], v, verr, g, gerr);
        vt_free(v);
        free(g);
    }
    /* The same through reallocarray, with a zero count or a zero size. */
    for (int zero_first = 0; zero_first < 2; zero_first++) {
        void *vp = vt_malloc(64), *gp = malloc(64);
        errno = 0;
        void *v = zero_first ? vt_reallocarray(vp, 0, 10) : vt_reallocarray(vp, 10, 0);
        int verr = errno;
        errno = 0;
        void *g = zero_first ? reallocarray(gp, opaque(0), 10) : reallocarray(gp, 10, opaque(0));
        int gerr = errno;
        if ((v == NULL) != (g == NULL) || verr != gerr)
            fail_msg("reallocarray(p, %d, %d): vtmalloc %p errno %d, glibc %p errno %d",
                     zero_first ? 0 : 10, zero_first ? 10 : 0, v, verr, g, gerr);
        vt_free(v);
        free(g);
    }
    /* realloc(NULL, 0) and malloc(0): a unique block in both. */
    void *v = vt_realloc(NULL, 0), *g = realloc(NULL, opaque(0));
    assert_true((v == NULL) == (g == NULL));
    vt_free(v);
    free(g);
}

static size_t next_pow2(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* aligned_alloc with alignments that are not powers of two, zero, or huge, and sizes that are
 * not multiples of the alignment (C11 said undefined, C17 and glibc < 2.38 accept them, glibc
 * 2.38 rejects bad alignments): vtmalloc answers as the glibc installed here. memalign too. */
static void aligned_alloc_odd_cases_agree_with_glibc(void **state)
{
    (void)state;
    const size_t aligns[] = {0,
                             1,
                             2,
                             3,
                             4,
                             8,
                             12,
                             17,
                             24,
                             48,
                             100,
                             1000,
                             3000,
                             4095,
                             4097,
                             40000,
                             65535,
                             65537,
                             100000,
                             1 << 20,
                             (1 << 20) + 1,
                             SIZE_MAX / 2 + 1,
                             SIZE_MAX / 2 + 2,
                             SIZE_MAX - 15,
                             SIZE_MAX};
    const size_t sizes[] = {0, 1, 10, 100, 4000, 4097, 70000, 300000};
    for (int which = 0; which < 2; which++) {
        for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
            for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
                size_t al = opaque(aligns[i]), n = opaque(sizes[j]);
                errno = 0;
                void *v = which ? vt_memalign(al, n) : vt_aligned_alloc(al, n);
                int verr = errno;
                errno = 0;
                void *g = which ? memalign(al, n) : aligned_alloc(al, n);
                int gerr = errno;
                if ((v == NULL) != (g == NULL) || verr != gerr)
                    fail_msg("%s(%#zx, %zu): vtmalloc %p errno %d, glibc %p errno %d",
                             which ? "memalign" : "aligned_alloc", al, n, v, verr, g, gerr);
                if (v != NULL) {
                    size_t want = al <= 16 ? 16 : next_pow2(al);
                    if ((uintptr_t)v % want != 0)
                        fail_msg("%s(%#zx, %zu) = %p: not aligned to %zu",
                                 which ? "memalign" : "aligned_alloc", al, n, v, want);
                    size_t usable = vt_malloc_usable_size(v);
                    assert_true(usable >= n);
                    memset(v, 0xC3, usable);
                    vt_free(v);
                    free(g);
                }
            }
        }
    }
}

/* posix_memalign: EINVAL for every bad alignment, ENOMEM for impossible sizes; *out untouched
 * on error; errno as glibc leaves it (glibc 2.36 sets ENOMEM along with the return value, and
 * leaves errno alone for EINVAL). */
static void posix_memalign_errors_agree_with_glibc(void **state)
{
    (void)state;
    const size_t aligns[] = {0,
                             1,
                             2,
                             4,
                             8,
                             12,
                             16,
                             24,
                             40,
                             64,
                             96,
                             4096,
                             4104,
                             (size_t)1 << 30,
                             SIZE_MAX / 2 + 1,
                             SIZE_MAX / 2 + 2,
                             SIZE_MAX};
    const size_t sizes[] = {
        0, 1, 100, 70000, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 64, SIZE_MAX};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            size_t al = opaque(aligns[i]), n = opaque(sizes[j]);
            if (al == ((size_t)1 << 30) && n < 100000)
                continue; /* possible: a 1 GiB-aligned block; checked in the matrix below */
            void *vout = (void *)0x77, *gout = (void *)0x77;
            errno = 31;
            int vrc = vt_posix_memalign(&vout, al, n);
            int verr = errno;
            errno = 31;
            int grc = posix_memalign(&gout, al, n);
            int gerr = errno;
            if (vrc != grc || verr != gerr)
                fail_msg(
                    "posix_memalign(%#zx, %#zx): vtmalloc rc %d errno %d, glibc rc %d errno %d", al,
                    n, vrc, verr, grc, gerr);
            if (vrc != 0) {
                assert_ptr_equal(vout, (void *)0x77);
            } else {
                assert_int_equal((uintptr_t)vout % al, 0);
                assert_true(vt_malloc_usable_size(vout) >= n);
                vt_free(vout);
                free(gout);
            }
        }
    }
}

/* ---- calloc zeroes recycled memory in every class ----------------------------------------- */

static void dirty(void *p)
{
    memset(p, 0xA5, vt_malloc_usable_size(p));
}

static void assert_zero(const void *p, size_t n, const char *what, size_t k)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            fail_msg("%s (class %zu, %zu bytes): byte %zu is %#x", what, k, n, i, b[i]);
}

typedef struct free_job {
    void **blocks;
    size_t count;
} free_job_t;

static void *free_all(void *arg)
{
    free_job_t *job = arg;
    for (size_t i = 0; i < job->count; i++)
        vt_free(job->blocks[i]);
    return NULL;
}

static void calloc_zeroes_recycled_blocks_of_every_class(void **state)
{
    (void)state;
    enum { N = 48 };
    void *blocks[N];
    for (size_t k = 0; k < VT_CLASS_COUNT; k++) {
        size_t bsize = vt_classes[k].bsize;
        size_t lo = k == 0 ? 1 : vt_classes[k - 1].bsize + 1;
        size_t n = N < vt_classes[k].capacity * 2 ? N : vt_classes[k].capacity * 2;
        if (bsize > 65536)
            n = 10; /* keep the big classes quick */
        /* 1. Freed dirty by this thread: LIFO gives them back at once. An empty page of more
         * than one unit goes back to its span even when it is its class's current page: there
         * the pin keeps the first page from emptying and the blocks are freed last to first,
         * so that the last one freed lies in the pinned page. */
        bool multi = vt_classes[k].units > 1;
        void *pin = vt_malloc(bsize);
        for (size_t i = 0; i < n; i++) {
            blocks[i] = vt_malloc(bsize);
            assert_non_null(blocks[i]);
            dirty(blocks[i]);
        }
        void *freed[n];
        memcpy(freed, blocks, sizeof(freed));
        for (size_t i = 0; i < n; i++)
            vt_free(blocks[multi ? n - 1 - i : i]);
        for (size_t i = 0; i < n; i++) {
            /* sizes spread over the class: the smallest, the largest, and between */
            size_t want = lo + (bsize - lo) * i / (n - 1);
            blocks[i] = (i & 1) ? vt_calloc(want, 1) : vt_calloc(1, want);
            assert_non_null(blocks[i]);
            assert_int_equal(vt_malloc_usable_size(blocks[i]), bsize);
            assert_zero(blocks[i], want, "calloc of a block freed by this thread", k);
        }
        /* they really were recycled blocks: the first is one of those just freed */
        bool recycled = false;
        for (size_t i = 0; i < n; i++)
            recycled |= blocks[0] == freed[i];
        assert_true(recycled);
        vt_free(pin);
        for (size_t i = 0; i < n; i++)
            dirty(blocks[i]);
        /* 2. Freed dirty by another thread: they come back through the remote list. */
        free_job_t job = {blocks, n};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, free_all, &job), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        void *again[N];
        for (size_t i = 0; i < n; i++) {
            again[i] = vt_calloc(1, bsize);
            assert_non_null(again[i]);
            assert_zero(again[i], bsize, "calloc of a block freed by another thread", k);
        }
        for (size_t i = 0; i < n; i++)
            vt_free(again[i]);
    }
    /* 3. Large blocks, freed dirty, then calloc'ed at the same size (a reused mapping would
     *    be dirty), and aligned ones. */
    for (size_t size = VT_SMALL_MAX + 1; size <= ((size_t)8 << 20); size *= 3) {
        void *p = vt_malloc(size);
        dirty(p);
        vt_free(p);
        void *q = vt_calloc(size, 1);
        assert_non_null(q);
        assert_zero(q, size, "calloc of a large block", size);
        vt_free(q);
    }
}

/* With VTMALLOC_BACKING=malloc, large blocks come from glibc's heap, which recycles freed
 * memory: calloc must clear it. In a child, so the backing change does not leak. */
static void calloc_large_with_malloc_backing(void *arg)
{
    (void)arg;
    vt_options.backing = VT_BACKING_MALLOC;
    for (int round = 0; round < 20; round++) {
        size_t size = VT_SMALL_MAX + 1 + (size_t)round * 4096;
        void *p = vt_malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        memset(p, 0x5A, vt_malloc_usable_size(p));
        vt_free(p);
        uint8_t *q = vt_calloc(1, size);
        CHECK(q != NULL, "calloc(%zu)", size);
        for (size_t i = 0; i < size; i++)
            CHECK(q[i] == 0, "calloc(1, %zu) with the malloc backing: byte %zu is %#x", size, i,
                  q[i]);
        vt_free(q);
    }
}

static void calloc_zeroes_large_blocks_with_malloc_backing(void **state)
{
    (void)state;
    child_result_t r = run_in_child(calloc_large_with_malloc_backing, NULL);
    if (!r.exited || r.status != 0)
        fail_msg("child ended with %s %d: %s", r.exited ? "exit" : "signal", r.status, r.err);
}

/* ---- realloc across every class boundary ------------------------------------------------- */

/* A block between two live neighbours of the same class, all patterned: an overflow or a
 * block handed out twice corrupts a neighbour's pattern. */
static void realloc_pair(size_t from, size_t to, uint64_t id)
{
    void *left = vt_malloc(from), *right;
    uint8_t *p = vt_malloc(from);
    right = vt_malloc(from);
    size_t lu = vt_malloc_usable_size(left), ru = vt_malloc_usable_size(right);
    pattern_fill(left, lu, id + 1);
    pattern_fill(right, ru, id + 2);
    pattern_fill(p, from, id);
    uint8_t *q = vt_realloc(p, to);
    if (q == NULL)
        fail_msg("realloc(%zu -> %zu) failed", from, to);
    size_t keep = from < to ? from : to;
    if (pattern_check(q, keep, id) != keep)
        fail_msg("realloc(%zu -> %zu): contents lost at byte %zu", from, to,
                 pattern_check(q, keep, id));
    size_t usable = vt_malloc_usable_size(q);
    if (usable < to)
        fail_msg("realloc(%zu -> %zu): usable size %zu", from, to, usable);
    assert_int_equal((uintptr_t)q % 16, 0);
    pattern_fill(q, usable, id + 3); /* all of it is ours */
    /* and back */
    uint8_t *r = vt_realloc(q, from);
    assert_non_null(r);
    keep = from < usable ? from : usable;
    if (pattern_check(r, keep, id + 3) != keep)
        fail_msg("realloc(%zu -> %zu -> %zu): contents lost", from, to, from);
    assert_true(vt_malloc_usable_size(r) >= from);
    if (pattern_check(left, lu, id + 1) != lu || pattern_check(right, ru, id + 2) != ru)
        fail_msg("realloc(%zu -> %zu): a neighbour was overwritten", from, to);
    vt_free(r);
    vt_free(left);
    vt_free(right);
}

static void realloc_across_every_boundary_both_ways(void **state)
{
    (void)state;
    /* Every pair of adjacent classes, at both edges of each, in both directions. */
    for (unsigned k = 0; k + 1 < VT_CLASS_COUNT; k++) {
        size_t b = vt_classes[k].bsize, next = vt_classes[k + 1].bsize;
        size_t lo = k == 0 ? 1 : vt_classes[k - 1].bsize + 1;
        realloc_pair(lo, b + 1, k * 10 + 1);
        realloc_pair(b, b + 1, k * 10 + 2);
        realloc_pair(b, next, k * 10 + 3);
        realloc_pair(b + 1, b, k * 10 + 4);
        realloc_pair(next, lo, k * 10 + 5);
    }
    /* Into and out of large blocks, from every class, and between large sizes. */
    const size_t large[] = {VT_SMALL_MAX + 1, VT_SMALL_MAX + 4096, (size_t)1 << 20,
                            ((size_t)4 << 20) + 1, (size_t)9 << 20};
    for (unsigned k = 0; k < VT_CLASS_COUNT; k += 3)
        for (size_t l = 0; l < sizeof(large) / sizeof(large[0]); l++)
            realloc_pair(vt_classes[k].bsize, large[l], 1000 + k * 10 + l);
    for (size_t a = 0; a < sizeof(large) / sizeof(large[0]); a++)
        for (size_t b = 0; b < sizeof(large) / sizeof(large[0]); b++)
            if (a != b)
                realloc_pair(large[a], large[b], 2000 + a * 10 + b);
    realloc_pair(VT_SMALL_MAX, VT_SMALL_MAX + 1, 3000);
    realloc_pair(VT_SMALL_MAX + 1, VT_SMALL_MAX, 3001);
    realloc_pair(1, (size_t)3 << 20, 3002);
}

/* Aligned blocks (from a class, and from their own mapping) resized by realloc keep their
 * contents, whatever the realloc does with the alignment. */
static void realloc_of_aligned_blocks_keeps_contents(void **state)
{
    (void)state;
    const size_t aligns[] = {32, 256, 4096, 65536, 131072, (size_t)1 << 21};
    const size_t sizes[] = {1, 100, 5000, 70000, 300000};
    const size_t targets[] = {1, 50, 4000, 65536, 262144, 262145, (size_t)1 << 21};
    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++)
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
            for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
                uint64_t id = a * 100 + s * 10 + t;
                uint8_t *p = vt_aligned_alloc(aligns[a], sizes[s]);
                assert_non_null(p);
                assert_int_equal((uintptr_t)p % aligns[a], 0);
                pattern_fill(p, sizes[s], id);
                uint8_t *q = vt_realloc(p, targets[t]);
                assert_non_null(q);
                size_t keep = sizes[s] < targets[t] ? sizes[s] : targets[t];
                if (pattern_check(q, keep, id) != keep)
                    fail_msg("realloc(aligned_alloc(%zu, %zu), %zu) lost contents", aligns[a],
                             sizes[s], targets[t]);
                size_t usable = vt_malloc_usable_size(q);
                assert_true(usable >= targets[t]);
                memset(q, 0x11, usable);
                vt_free(q);
            }
}

/* A block allocated with an alignment above 64 KiB is a mapping of its own (large.c) even when
 * it is small, and its usable size is the mapped size: a multiple of the page (or of 16 with
 * VTMALLOC_BACKING=malloc), usually not a class size. realloc to a size above that usable size
 * must give a block of at least that size.
 * A bug this test found (fixed): vt_api_realloc took any old block whose usable size was
 * <= 256 KiB for a class block and returned it unchanged when the new size fell in the same
 * class: vt_memalign(128 KiB, 33000) has 36864 usable bytes, and vt_realloc(p, 40000) returned
 * p, 3136 bytes short. */

static void realloc_aligned_above_64k(void *arg)
{
    if (arg != NULL)
        vt_options.backing = VT_BACKING_MALLOC;
    const size_t aligns[] = {(size_t)128 << 10, (size_t)256 << 10, (size_t)1 << 20,
                             (size_t)4 << 20};
    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t size = 100; size < VT_SMALL_MAX; size += size < 20000 ? 1111 : 7777) {
            uint8_t *p = vt_aligned_alloc(aligns[a], size);
            CHECK(p != NULL && (uintptr_t)p % aligns[a] == 0, "aligned_alloc(%zu, %zu)", aligns[a],
                  size);
            size_t usable = vt_malloc_usable_size(p);
            pattern_fill(p, size, size);
            /* the sizes just above the usable size, up to the end of its class */
            unsigned k = vt_size_class(usable);
            size_t targets[] = {usable + 1, usable + 16, (usable + vt_classes[k].bsize) / 2,
                                vt_classes[k].bsize};
            for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
                size_t want = targets[t];
                if (want <= usable || want > VT_SMALL_MAX)
                    continue;
                uint8_t *q = vt_realloc(p, want);
                CHECK(q != NULL, "realloc(%zu)", want);
                CHECK(pattern_check(q, size, size) == size, "contents lost");
                size_t got = vt_malloc_usable_size(q);
                if (got < want) {
                    fprintf(stderr,
                            "realloc(aligned_alloc(%zu, %zu) [usable %zu], %zu) = %s%p with "
                            "usable size %zu: %zu bytes short\n",
                            aligns[a], size, usable, want, q == p ? "the same block " : "",
                            (void *)q, got, want - got);
                    _exit(3); /* before anything writes past the block */
                }
                memset(q + size, 0xEE, want - size); /* all of it is ours */
                p = q;
                usable = got;
            }
            vt_free(p);
        }
    }
}

static void realloc_of_blocks_aligned_above_64k(void **state)
{
    (void)state;
    for (int backing = 0; backing < 2; backing++) {
        child_result_t r = run_in_child(realloc_aligned_above_64k, backing ? (void *)1 : NULL);
        if (r.exited && r.status == 0)
            continue;
        fail_msg("%s backing: child ended with %s %d: %s", backing ? "malloc" : "mmap",
                 r.exited ? "exit" : "signal", r.status, r.err);
    }
}

/* ---- The alignment x size matrix ---------------------------------------------------------- */

enum { A_MEMALIGN, A_ALIGNED_ALLOC, A_POSIX, A_COUNT };

static void *aligned_by(int how, size_t al, size_t n)
{
    void *p = NULL;
    switch (how) {
    case A_MEMALIGN:
        return vt_memalign(al, n);
    case A_ALIGNED_ALLOC:
        return vt_aligned_alloc(al, n);
    default:
        if (vt_posix_memalign(&p, al < sizeof(void *) ? sizeof(void *) : al, n) != 0)
            return NULL;
        return p;
    }
}

typedef struct live {
    uint8_t *p;
    size_t usable;
    uint64_t id;
} live_t;

static int by_address(const void *a, const void *b)
{
    const live_t *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* Blocks live together: no two overlap, each is fully writable, no fill disturbs another. */
static void check_live_set(live_t *set, size_t n, const char *what)
{
    qsort(set, n, sizeof(set[0]), by_address);
    for (size_t i = 0; i + 1 < n; i++)
        if (set[i].p + set[i].usable > set[i + 1].p)
            fail_msg("%s: blocks %p (+%zu) and %p overlap", what, set[i].p, set[i].usable,
                     set[i + 1].p);
    for (size_t i = 0; i < n; i++)
        pattern_fill(set[i].p, set[i].usable, set[i].id);
    for (size_t i = 0; i < n; i++)
        if (pattern_check(set[i].p, set[i].usable, set[i].id) != set[i].usable)
            fail_msg("%s: block %p (usable %zu) disturbed", what, set[i].p, set[i].usable);
}

static void alignment_by_size_matrix(void **state)
{
    (void)state;
    enum { MAX = 64 };
    live_t set[MAX];
    for (int how = 0; how < A_COUNT; how++) {
        for (size_t al = 1; al <= ((size_t)4 << 20); al *= 2) {
            /* smaller than, equal to and larger than the alignment, and around the class
             * boundaries the rounded size lands on, and around the largest class */
            size_t sizes[] = {0,
                              1,
                              al / 2,
                              al > 16 ? al - 16 : 1,
                              al - 1,
                              al,
                              al + 1,
                              al + 16,
                              2 * al - 1,
                              2 * al,
                              2 * al + 1,
                              3 * al,
                              5 * al + 7,
                              VT_SMALL_MAX - 1,
                              VT_SMALL_MAX,
                              VT_SMALL_MAX + 1,
                              160,
                              161,
                              4097};
            size_t n = 0;
            for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                size_t size = sizes[s] > ((size_t)4 << 20) + 64 ? ((size_t)4 << 20) + 64 : sizes[s];
                for (int twice = 0; twice < 2; twice++) { /* two of each: neighbours */
                    uint8_t *p = aligned_by(how, al, size);
                    if (p == NULL)
                        fail_msg("entry %d: alignment %zu size %zu failed", how, al, size);
                    size_t want = al < 16 ? 16 : al;
                    if ((uintptr_t)p % want != 0)
                        fail_msg("entry %d: alignment %zu size %zu gave %p", how, al, size, p);
                    size_t usable = vt_malloc_usable_size(p);
                    if (usable < size)
                        fail_msg("entry %d: alignment %zu size %zu: usable %zu", how, al, size,
                                 usable);
                    assert_int_equal(vt_malloc_usable_size(p), usable);
                    set[n++] = (live_t){p, usable, al * 1000 + s * 2 + (uint64_t)twice};
                }
            }
            check_live_set(set, n, "aligned blocks");
            for (size_t i = 0; i < n; i++)
                vt_free(set[i].p);
        }
    }
}

/* valloc and pvalloc across sizes around pages, with neighbours. */
static void valloc_and_pvalloc_sizes(void **state)
{
    (void)state;
    size_t ps = page_size();
    const size_t sizes[] = {0,
                            1,
                            15,
                            16,
                            17,
                            100,
                            ps - 1,
                            ps,
                            ps + 1,
                            2 * ps - 1,
                            2 * ps,
                            3 * ps + 1,
                            65535,
                            65536,
                            65537,
                            VT_SMALL_MAX - 1,
                            VT_SMALL_MAX,
                            VT_SMALL_MAX + 1,
                            (size_t)1 << 20};
    enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
    live_t set[2 * NS];
    size_t n = 0;
    for (size_t i = 0; i < NS; i++) {
        uint8_t *v = vt_valloc(sizes[i]);
        uint8_t *pv = vt_pvalloc(sizes[i]);
        assert_non_null(v);
        assert_non_null(pv);
        assert_int_equal((uintptr_t)v % ps, 0);
        assert_int_equal((uintptr_t)pv % ps, 0);
        size_t vu = vt_malloc_usable_size(v), pu = vt_malloc_usable_size(pv);
        assert_true(vu >= sizes[i]);
        /* pvalloc rounds the size up to whole pages (pvalloc(0): one page) */
        size_t whole = sizes[i] == 0 ? ps : (sizes[i] + ps - 1) / ps * ps;
        if (pu < whole)
            fail_msg("pvalloc(%zu): usable %zu < %zu", sizes[i], pu, whole);
        set[n++] = (live_t){v, vu, 500 + i};
        set[n++] = (live_t){pv, pu, 900 + i};
    }
    check_live_set(set, n, "valloc/pvalloc blocks");
    for (size_t i = 0; i < n; i++)
        vt_free(set[i].p);
}

/* ---- Alignment of every result, usable sizes ----------------------------------------------- */

static void every_result_is_16_byte_aligned(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ull;
    void *keep[512];
    size_t nkeep = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n;
        switch (x % 8) {
        case 0:
            n = (size_t)(x >> 16) % 600000;
            break;
        case 1:
            n = (size_t)(x >> 16) % 70000;
            break;
        default:
            n = (size_t)(x >> 16) % 2000;
            break;
        }
        void *p;
        switch ((x >> 8) % 6) {
        case 0:
            p = vt_malloc(n);
            break;
        case 1:
            p = vt_calloc(1, n);
            break;
        case 2:
            p = vt_realloc(NULL, n);
            break;
        case 3:
            p = vt_memalign((size_t)1 << ((x >> 12) % 5), n);
            break; /* 1..16: malloc's */
        case 4:
            p = vt_aligned_alloc(8, n);
            break;
        default:
            if (vt_posix_memalign(&p, sizeof(void *), n) != 0)
                p = NULL;
            break;
        }
        assert_non_null(p);
        if ((uintptr_t)p % 16 != 0)
            fail_msg("allocation %d (%zu bytes, kind %d) returned %p", i, n, (int)((x >> 8) % 6),
                     p);
        /* realloc results too */
        if (n < 100000 && (x >> 20) % 4 == 0) {
            p = vt_realloc(p, n * 2 + 1);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 16, 0);
        }
        if (nkeep < 512 && (x >> 24) % 3 == 0) {
            keep[nkeep++] = p;
        } else {
            vt_free(p);
        }
    }
    for (size_t i = 0; i < nkeep; i++)
        vt_free(keep[i]);
}

static void *usable_size_from_another_thread(void *p)
{
    return (void *)(uintptr_t)vt_malloc_usable_size(p);
}

/* usable size >= request, the same on every call (also from another thread, and after
 * unrelated activity), and every byte of it writable without touching the neighbours. */
static void usable_size_is_real_and_stable(void **state)
{
    (void)state;
    enum { PER = 6 };
    /* every class at both of its edges, and large sizes */
    static live_t set[(VT_CLASS_COUNT * 2 + 8) * PER];
    static size_t asked[(VT_CLASS_COUNT * 2 + 8) * PER];
    size_t n = 0;
    for (unsigned k = 0; k < VT_CLASS_COUNT; k++) {
        size_t lo = k == 0 ? 0 : vt_classes[k - 1].bsize + 1;
        size_t edges[2] = {lo, vt_classes[k].bsize};
        for (int e = 0; e < 2; e++)
            for (int i = 0; i < PER; i++) {
                uint8_t *p = vt_malloc(edges[e]);
                assert_non_null(p);
                size_t u = vt_malloc_usable_size(p);
                if (u < edges[e] || u != vt_classes[k].bsize)
                    fail_msg("malloc(%zu): usable %zu, class %u is %u", edges[e], u, k,
                             vt_classes[k].bsize);
                asked[n] = edges[e];
                set[n++] = (live_t){p, u, (uint64_t)n * 7 + 3};
            }
    }
    const size_t large[] = {VT_SMALL_MAX + 1,      VT_SMALL_MAX + 4095,   VT_SMALL_MAX + 4096,
                            (size_t)1 << 20,       ((size_t)1 << 20) + 1, (size_t)3 << 20,
                            ((size_t)5 << 20) - 1, (size_t)6 << 20};
    for (size_t l = 0; l < sizeof(large) / sizeof(large[0]); l++) {
        uint8_t *p = vt_malloc(large[l]);
        assert_non_null(p);
        size_t u = vt_malloc_usable_size(p); /* a reused mapping may be larger: all of it ours */
        assert_true(u >= large[l]);
        asked[n] = large[l];
        set[n++] = (live_t){p, u, (uint64_t)n * 7 + 3};
    }
    size_t count = n;
    size_t usable_before[sizeof(set) / sizeof(set[0])];
    for (size_t i = 0; i < count; i++)
        usable_before[i] = set[i].usable;
    check_live_set(set, count, "blocks filled to their usable size");
    /* unrelated activity, then the usable sizes are asked again, here and elsewhere */
    for (int i = 0; i < 5000; i++)
        vt_free(vt_malloc((size_t)i % 3000 + 1));
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(vt_malloc_usable_size(set[i].p), set[i].usable);
        pthread_t th;
        void *res;
        pthread_create(&th, NULL, usable_size_from_another_thread, set[i].p);
        pthread_join(th, &res);
        assert_int_equal((size_t)(uintptr_t)res, set[i].usable);
        if (pattern_check(set[i].p, set[i].usable, set[i].id) != set[i].usable)
            fail_msg("block of %zu (usable %zu) changed", asked[i], set[i].usable);
        vt_free(set[i].p);
    }
    (void)usable_before;
}

/* ---- errno ------------------------------------------------------------------------------- */

static void *free_with_errno(void *p)
{
    errno = 2468;
    vt_free(p);
    return (void *)(uintptr_t)(errno == 2468);
}

static void every_free_preserves_errno(void **state)
{
    (void)state;
    /* own small, own page emptied, large, aligned large, NULL, sized frees, remote small,
     * remote into a page whose owner exited */
    const size_t sizes[] = {
        0, 16, 1000, 8192, 100000, VT_SMALL_MAX, VT_SMALL_MAX + 1, (size_t)8 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *p = vt_malloc(sizes[i]);
        errno = 1357;
        vt_free(p);
        assert_int_equal(errno, 1357);
        p = vt_malloc(sizes[i]);
        errno = 1358;
        vt_free_sized(p, sizes[i]);
        assert_int_equal(errno, 1358);
        p = vt_aligned_alloc(128, sizes[i]);
        errno = 1359;
        vt_free_aligned_sized(p, 128, sizes[i]);
        assert_int_equal(errno, 1359);
        p = vt_memalign((size_t)1 << 20, sizes[i]);
        errno = 1360;
        vt_free(p);
        assert_int_equal(errno, 1360);
        /* freed by another thread (the remote path, batched) */
        p = vt_malloc(sizes[i]);
        pthread_t th;
        void *ok;
        pthread_create(&th, NULL, free_with_errno, p);
        pthread_join(th, &ok);
        assert_true(ok != NULL);
    }
    errno = 42;
    vt_free(NULL);
    assert_int_equal(errno, 42);
    /* Emptying many pages and spans (units go back, spans unmapped past the reserve). */
    enum { N = 20000 };
    static void *many[N];
    for (size_t i = 0; i < N; i++)
        many[i] = vt_malloc(2000);
    errno = 99;
    for (size_t i = 0; i < N; i++)
        vt_free(many[i]);
    assert_int_equal(errno, 99);
    assert_true(vt_malloc_trim(0) >= 0);
    assert_int_equal(errno, 99);
}

/* README: every successful call preserves errno. */
static void every_successful_call_preserves_errno(void **state)
{
    (void)state;
    const size_t sizes[] = {
        0, 1, 100, 5000, 70000, VT_SMALL_MAX, VT_SMALL_MAX + 1, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        void *p;
        errno = 8642;
        p = vt_malloc(n);
        vt_free(p);
        p = vt_calloc(n, 1);
        vt_free(p);
        p = vt_realloc(NULL, n);
        p = vt_realloc(p, n * 3 + 1);
        p = vt_realloc(p, n / 2 + 1);
        p = vt_reallocarray(p, 2, n + 1);
        vt_free(p);
        p = vt_memalign(4096, n);
        vt_free(p);
        p = vt_memalign((size_t)2 << 20, n);
        vt_free(p);
        p = vt_aligned_alloc(100, n);
        vt_free(p);
        assert_int_equal(vt_posix_memalign(&p, 1 << 17, n), 0);
        vt_free(p);
        p = vt_valloc(n);
        vt_free(p);
        p = vt_pvalloc(n);
        (void)vt_malloc_usable_size(p);
        vt_free(p);
        vt_malloc_trim(0);
        if (errno != 8642)
            fail_msg("a successful call with size %zu changed errno to %d", n, errno);
    }
    /* Failed calls do set it (see impossible_sizes_...); posix_memalign's EINVAL does not. */
    void *p = (void *)1;
    errno = 8642;
    assert_int_equal(vt_posix_memalign(&p, 3, 10), EINVAL);
    assert_int_equal(errno, 8642);
}

/* A mapped block that the program split in two for the kernel (mprotect on one page of it)
 * cannot be resized by mremap, which refuses such a range: realloc copies it instead, and
 * the data and errno come through. */
static void realloc_of_a_block_the_program_split(void **state)
{
    (void)state;
    size_t size = (size_t)4 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *p = vt_malloc(size);
    assert_non_null(p);
    for (size_t i = 0; i < size; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    unsigned char *middle = (unsigned char *)(((uintptr_t)p + size / 2) & ~(uintptr_t)(page - 1));
    assert_int_equal(mprotect(middle, page, PROT_READ), 0);
    errno = 1234;
    unsigned char *q = vt_realloc(p, size * 2);
    assert_non_null(q);
    assert_int_equal(errno, 1234);
    for (size_t i = 0; i < size; i += 4096)
        if (q[i] != (unsigned char)(i >> 12))
            fail_msg("byte %zu lost in the move", i);
    memset(q, 0, size * 2); /* all of it writable: the new block is not the old mapping */
    vt_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(impossible_sizes_fail_like_glibc_at_every_entry_point),
        cmocka_unit_test(calloc_and_reallocarray_products_like_glibc),
        cmocka_unit_test(realloc_to_zero_and_friends_agree_with_glibc),
        cmocka_unit_test(aligned_alloc_odd_cases_agree_with_glibc),
        cmocka_unit_test(posix_memalign_errors_agree_with_glibc),
        cmocka_unit_test(calloc_zeroes_recycled_blocks_of_every_class),
        cmocka_unit_test(calloc_zeroes_large_blocks_with_malloc_backing),
        cmocka_unit_test(realloc_across_every_boundary_both_ways),
        cmocka_unit_test(realloc_of_aligned_blocks_keeps_contents),
        cmocka_unit_test(realloc_of_blocks_aligned_above_64k),
        cmocka_unit_test(alignment_by_size_matrix),
        cmocka_unit_test(valloc_and_pvalloc_sizes),
        cmocka_unit_test(every_result_is_16_byte_aligned),
        cmocka_unit_test(usable_size_is_real_and_stable),
        cmocka_unit_test(every_free_preserves_errno),
        cmocka_unit_test(every_successful_call_preserves_errno),
        cmocka_unit_test(realloc_of_a_block_the_program_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
