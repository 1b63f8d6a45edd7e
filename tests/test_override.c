/*
 * test_override.c - libvtmalloc.so replaces the C library's allocator completely. Built twice
 * from this file: linked with -lvtmalloc, and not linked but run with LD_PRELOAD. In both,
 * every allocation entry point a program or glibc itself can reach must resolve to vtmalloc,
 * so that no block is ever allocated by one allocator and freed by the other.
 */
#include "common.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <wchar.h>

/* vtmalloc's own view of a pointer, found at run time so the preloaded build needs no link. */
static size_t (*vt_usable)(void *);

static void find_vtmalloc(void)
{
    vt_usable = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "vt_malloc_usable_size");
    if (vt_usable == NULL) {
        fprintf(stderr, "libvtmalloc is not loaded in this process\n");
        exit(1);
    }
}

/* True when the block is one of vtmalloc's: its usable size is known and no misuse is
 * reported (a foreign pointer would abort the test with a message). */
static void assert_ours(void *p, size_t at_least)
{
    assert_non_null(p);
    assert_true(vt_usable(p) >= at_least);
}

static void every_entry_point_resolves_to_vtmalloc(void **state)
{
    (void)state;
    const char *names[] = {
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "free_sized",
        "free_aligned_sized",
        "cfree",
        "__libc_malloc",
        "__libc_free",
        "__libc_calloc",
        "__libc_realloc",
        "__libc_memalign",
        "__libc_valloc",
        "__libc_pvalloc",
        "__libc_mallinfo",
        "__libc_mallopt",
        "malloc_trim",
        "malloc_stats",
        "mallopt",
        "mallinfo",
        "mallinfo2",
        "malloc_info",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        if (sym == NULL)
            fail_msg("%s does not resolve", names[i]);
        Dl_info info;
        assert_true(dladdr(sym, &info) != 0);
        if (info.dli_fname == NULL || strstr(info.dli_fname, "libvtmalloc") == NULL)
            fail_msg("%s resolves to %s, not libvtmalloc", names[i],
                     info.dli_fname ? info.dli_fname : "?");
    }
}

static void standard_names_allocate_from_vtmalloc(void **state)
{
    (void)state;
    void *p = malloc(100);
    assert_int_equal(vt_usable(p), 112); /* vtmalloc's 112-byte class */
    assert_int_equal(malloc_usable_size(p), 112);
    p = realloc(p, 3000);
    assert_ours(p, 3000);
    free(p);
    uint8_t *z = calloc(10, 10);
    assert_ours(z, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    free(z);
    void *a = NULL;
    assert_int_equal(posix_memalign(&a, 4096, 100), 0);
    assert_ours(a, 100);
    assert_int_equal((uintptr_t)a % 4096, 0);
    free(a);
    a = aligned_alloc(64, 64);
    assert_ours(a, 64);
    free(a);
    a = memalign(1 << 20, 10);
    assert_ours(a, 10);
    assert_int_equal((uintptr_t)a % (1 << 20), 0);
    free(a);
    a = valloc(10);
    assert_ours(a, 10);
    free(a);
    a = pvalloc(10);
    assert_ours(a, 4096);
    free(a);
    a = reallocarray(NULL, 10, 20);
    assert_ours(a, 200);
    free(a);
}

static void glibc_internal_allocations_come_from_vtmalloc(void **state)
{
    (void)state;
    /* Each of these allocates inside glibc; freeing through vtmalloc's view proves whose
     * block it is (a foreign block would be reported and the test would abort). */
    char *s = strdup("hello, allocator");
    assert_ours(s, 17);
    free(s);
    s = strndup("abcdefgh", 4);
    assert_ours(s, 5);
    free(s);
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fmemopen("one line\nsecond\n", 16, "r");
    assert_non_null(f);
    assert_true(getline(&line, &cap, f) > 0);
    assert_ours(line, cap);
    free(line);
    fclose(f);
    char *out = NULL;
    assert_true(asprintf(&out, "%d-%s", 42, "x") > 0);
    assert_ours(out, 5);
    free(out);
    char *real = realpath("/", NULL);
    assert_ours(real, 2);
    free(real);
    size_t size = 0;
    char *buf = NULL;
    FILE *ms = open_memstream(&buf, &size);
    fprintf(ms, "%0500d", 7);
    fclose(ms);
    assert_ours(buf, 501);
    free(buf);
    struct dirent **list = NULL;
    int n = scandir("/", &list, NULL, alphasort);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        assert_ours(list[i], 1);
        free(list[i]);
    }
    assert_ours(list, (size_t)n * sizeof(*list));
    free(list);
}

static void libc_names_are_the_same_allocator(void **state)
{
    (void)state;
    void *(*libc_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
    void (*libc_free)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
    void *p = libc_malloc(200);
    assert_ours(p, 200);
    free(p); /* allocated by one name, freed by the other */
    p = malloc(300);
    libc_free(p);
}

static void mallinfo2_and_trim_report_vtmalloc(void **state)
{
    (void)state;
    void *big = malloc((size_t)10 << 20);
    struct mallinfo2 mi = mallinfo2();
    assert_true(mi.hblkhd >= (size_t)10 << 20);
    assert_true(mi.hblks >= 1);
    free(big);
    /* 16 MiB of small blocks freed: trim gives memory back (1), then has nothing left (0). */
    enum { N = 4096 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = malloc(4000);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    assert_int_equal(malloc_trim(0), 1);
    assert_int_equal(malloc_trim(0), 0);
    assert_int_equal(mallopt(M_ARENA_MAX, 1), 1);
}

static void free_keeps_errno_and_bad_sizes_set_it(void **state)
{
    (void)state;
    void *p = malloc(10);
    errno = 555;
    free(p);
    assert_int_equal(errno, 555);
    volatile size_t huge = SIZE_MAX;
    errno = 0;
    assert_null(malloc(huge));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(calloc(huge, 2));
    assert_int_equal(errno, ENOMEM);
}

int main(void)
{
    find_vtmalloc();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_entry_point_resolves_to_vtmalloc),
        cmocka_unit_test(standard_names_allocate_from_vtmalloc),
        cmocka_unit_test(glibc_internal_allocations_come_from_vtmalloc),
        cmocka_unit_test(libc_names_are_the_same_allocator),
        cmocka_unit_test(mallinfo2_and_trim_report_vtmalloc),
        cmocka_unit_test(free_keeps_errno_and_bad_sizes_set_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
