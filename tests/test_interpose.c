/*
 * test_interpose.c - with libvtmalloc.so preloaded (this program is not linked with it), every
 * allocation a program or glibc itself makes is vtmalloc's. Goes further than test_override.c:
 *
 *   - every entry point, called through its own name, through dlsym(RTLD_DEFAULT) and through
 *     dlsym(RTLD_NEXT) (what a wrapping library calls), including pvalloc, reallocarray, cfree,
 *     free_sized, free_aligned_sized and the __libc_* names; blocks cross from one name to
 *     another (allocated by __libc_memalign, resized by realloc, freed by __libc_free, ...);
 *   - glibc functions that return memory they allocated: getdelim, vasprintf (also of a
 *     large string), open_wmemstream, getcwd(NULL, 0), get_current_dir_name,
 *     canonicalize_file_name, tempnam, wcsdup, backtrace_symbols, argz_create, getline of a
 *     1 MiB line (grown by glibc's realloc through every class into a large block);
 *   - glibc functions that allocate internally and free before returning (or on their
 *     matching close): regcomp/regexec/regerror/regfree, qsort of a large array, fopen/fclose,
 *     setvbuf, getpwnam/getgrnam (NSS), iconv_open/iconv/iconv_close, newlocale/duplocale/
 *     freelocale, setlocale, dlopen/dlsym/dlclose and dlerror, pthread_create/join (the new
 *     thread's TLS), popen/pclose, setenv/unsetenv, glob/globfree, fts, nftw, tsearch,
 *     hcreate/hsearch, localtime with a time zone, vfprintf with a huge width, getaddrinfo of a
 *     numeric address: each must make vtmalloc count allocations;
 *   - and the decisive check, after every test: glibc's own heap was never used by anything in
 *     the process (glibc's own mallinfo2, reached through a handle on libc.so.6, reports an
 *     empty arena and no mapped chunk), so nothing anywhere was allocated by one allocator
 *     and could be freed by the other.
 *
 * Runs with VTMALLOC_ON_ERROR=warn so that a foreign pointer shows as a failed assertion (usable
 * size 0 after vtmalloc's one-line report) rather than an abort.
 */
#include "common.h"

#include <argz.h>
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fts.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <iconv.h>
#include <limits.h>
#include <locale.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <regex.h>
#include <search.h>
#include <time.h>
#include <wchar.h>

#include "vtmalloc.h" /* for vt_stats_t only: the functions are found at run time */

static size_t (*vt_usable)(void *);
static void (*vt_stats)(vt_stats_t *);
static struct mallinfo2 (*glibc_mallinfo2)(void);

static void find_allocators(void)
{
    vt_usable = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "vt_malloc_usable_size");
    vt_stats = (void (*)(vt_stats_t *))dlsym(RTLD_DEFAULT, "vt_stats_get");
    if (vt_usable == NULL || vt_stats == NULL) {
        fprintf(stderr, "libvtmalloc is not preloaded in this process\n");
        exit(1);
    }
    /* glibc's own mallinfo2: a lookup through a handle on libc.so.6 finds libc's definition,
     * not the interposed one. */
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (libc == NULL ||
        (glibc_mallinfo2 = (struct mallinfo2(*)(void))dlsym(libc, "mallinfo2")) == NULL) {
        fprintf(stderr, "cannot reach glibc's own mallinfo2\n");
        exit(1);
    }
    if ((void *)glibc_mallinfo2 == dlsym(RTLD_DEFAULT, "mallinfo2")) {
        fprintf(stderr, "glibc's mallinfo2 resolves to the interposed one\n");
        exit(1);
    }
}

/* The block is vtmalloc's: it knows it, and it is at least `at_least` bytes. */
#define assert_ours(p, at_least) assert_ours_at(p, at_least, #p, __LINE__)
static void assert_ours_at(void *p, size_t at_least, const char *what, int line)
{
    if (p == NULL)
        fail_msg("line %d: %s is NULL", line, what);
    size_t usable = vt_usable(p);
    if (usable < at_least)
        fail_msg("line %d: %s (%p) is not a vtmalloc block of >= %zu bytes (usable %zu)", line,
                 what, p, at_least, usable);
}

/* glibc's heap never got memory: nothing in this process was ever allocated by it. */
static void assert_glibc_heap_untouched(const char *when)
{
    struct mallinfo2 m = glibc_mallinfo2();
    if (m.arena != 0 || m.hblks != 0 || m.hblkhd != 0 || m.uordblks != 0)
        fail_msg("%s: glibc's own allocator was used (arena %zu, mmapped %zu in %zu chunks, "
                 "in use %zu)",
                 when, m.arena, m.hblkhd, m.hblks, m.uordblks);
}

static int teardown_check_glibc(void **state)
{
    (void)state;
    assert_glibc_heap_untouched("after the test");
    return 0;
}

/* Allocations vtmalloc has served: every class's count plus large blocks (exact for the
 * calling thread's pages, which vt_stats_get publishes first). */
static uint64_t vt_allocations(void)
{
    static vt_stats_t st;
    vt_stats(&st);
    uint64_t n = st.large_allocs_total;
    for (uint32_t k = 0; k < st.class_count; k++)
        n += st.classes[k].gets;
    return n;
}

#define EXPECT_VT_ALLOCATES(what, ...)                                                             \
    do {                                                                                           \
        uint64_t before_ = vt_allocations();                                                       \
        __VA_ARGS__;                                                                               \
        uint64_t after_ = vt_allocations();                                                        \
        if (after_ <= before_)                                                                     \
            fail_msg("%s: vtmalloc served no allocation (the call allocated elsewhere, or "        \
                     "not at all)",                                                                \
                     what);                                                                        \
        assert_glibc_heap_untouched(what);                                                         \
    } while (0)

/* ---- Every entry point, under every name --------------------------------------------------- */

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*reallocarray_fn)(void *, size_t, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef void (*free_fn)(void *);

static void *sym(void *handle, const char *name)
{
    void *p = dlsym(handle, name);
    if (p == NULL)
        fail_msg("%s does not resolve (%s)", name,
                 handle == RTLD_NEXT ? "RTLD_NEXT" : "RTLD_DEFAULT");
    return p;
}

static void names_through_dlsym_and_rtld_next(void **state)
{
    (void)state;
    void *handles[2] = {RTLD_DEFAULT, RTLD_NEXT};
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    for (int h = 0; h < 2; h++) {
        malloc_fn m = (malloc_fn)sym(handles[h], "malloc");
        calloc_fn c = (calloc_fn)sym(handles[h], "calloc");
        realloc_fn r = (realloc_fn)sym(handles[h], "realloc");
        reallocarray_fn ra = (reallocarray_fn)sym(handles[h], "reallocarray");
        memalign_fn ma = (memalign_fn)sym(handles[h], "memalign");
        memalign_fn aa = (memalign_fn)sym(handles[h], "aligned_alloc");
        malloc_fn va = (malloc_fn)sym(handles[h], "valloc");
        malloc_fn pva = (malloc_fn)sym(handles[h], "pvalloc");
        int (*pm)(void **, size_t, size_t) =
            (int (*)(void **, size_t, size_t))sym(handles[h], "posix_memalign");
        free_fn f = (free_fn)sym(handles[h], "free");

        void *p = m(100);
        assert_ours(p, 100);
        p = r(p, 5000);
        assert_ours(p, 5000);
        p = ra(p, 1000, 1000); /* into a large block */
        assert_ours(p, 1000000);
        f(p);
        uint8_t *z = c(1000, 1000);
        assert_ours(z, 1000000);
        assert_int_equal(z[999999], 0);
        f(z);
        p = ma(3000, 10); /* an odd alignment, rounded up */
        assert_ours(p, 10);
        assert_int_equal((uintptr_t)p % 4096, 0);
        f(p);
        p = aa((size_t)1 << 20, 100);
        assert_ours(p, 100);
        assert_int_equal((uintptr_t)p % ((size_t)1 << 20), 0);
        f(p);
        p = va(10);
        assert_ours(p, 10);
        assert_int_equal((uintptr_t)p % ps, 0);
        f(p);
        p = pva(ps + 1);
        assert_ours(p, 2 * ps);
        f(p);
        p = NULL;
        assert_int_equal(pm(&p, 256, 3000), 0);
        assert_ours(p, 3000);
        f(p);
    }
}

static void libc_names_and_c23_frees(void **state)
{
    (void)state;
    malloc_fn lm = (malloc_fn)sym(RTLD_DEFAULT, "__libc_malloc");
    calloc_fn lc = (calloc_fn)sym(RTLD_DEFAULT, "__libc_calloc");
    realloc_fn lr = (realloc_fn)sym(RTLD_DEFAULT, "__libc_realloc");
    memalign_fn lma = (memalign_fn)sym(RTLD_DEFAULT, "__libc_memalign");
    malloc_fn lva = (malloc_fn)sym(RTLD_DEFAULT, "__libc_valloc");
    malloc_fn lpva = (malloc_fn)sym(RTLD_DEFAULT, "__libc_pvalloc");
    free_fn lf = (free_fn)sym(RTLD_DEFAULT, "__libc_free");
    reallocarray_fn lra = (reallocarray_fn)dlsym(RTLD_DEFAULT, "__libc_reallocarray");
    free_fn cf = (free_fn)dlsym(RTLD_DEFAULT, "cfree");
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))sym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))sym(RTLD_DEFAULT, "free_aligned_sized");

    /* Blocks cross from one name to another in every direction. */
    uint8_t *p = lm(300);
    assert_ours(p, 300);
    memset(p, 0x42, 300);
    p = realloc(p, 70000);
    assert_ours(p, 70000);
    assert_int_equal(p[299], 0x42);
    lf(p);
    p = malloc(40);
    p = lr(p, 400000);
    assert_ours(p, 400000);
    free(p);
    p = lc(10, 10);
    assert_ours(p, 100);
    assert_int_equal(p[99], 0);
    free(p);
    p = lma((size_t)128 << 10, 1000);
    assert_ours(p, 1000);
    assert_int_equal((uintptr_t)p % ((size_t)128 << 10), 0);
    lf(p);
    p = lva(5);
    assert_ours(p, 5);
    free(p);
    p = lpva(1);
    assert_ours(p, (size_t)sysconf(_SC_PAGESIZE));
    fs(p, 1);
    p = aligned_alloc(64, 640);
    assert_ours(p, 640);
    fas(p, 64, 640);
    if (lra != NULL) {
        p = lra(NULL, 30, 30);
        assert_ours(p, 900);
        free(p);
    }
    if (cf != NULL) {
        p = malloc(33);
        cf(p);
    }
    p = pvalloc(0);
    assert_ours(p, 1);
    free(p);
    p = reallocarray(NULL, 7, 9);
    assert_ours(p, 63);
    p = reallocarray(p, 7000, 90);
    assert_ours(p, 630000);
    free(p);
}

/* ---- glibc functions that hand out memory they allocated ----------------------------------- */

static char *call_vasprintf(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return out;
}

static void glibc_returns_vtmalloc_blocks(void **state)
{
    (void)state;
    /* getdelim, from a stream of several records */
    FILE *f = fmemopen("alpha;beta;gamma", 16, "r");
    assert_non_null(f);
    char *rec = NULL;
    size_t cap = 0;
    int records = 0;
    while (getdelim(&rec, &cap, ';', f) > 0)
        records++;
    assert_int_equal(records, 3);
    assert_ours(rec, cap);
    free(rec);
    fclose(f);
    /* vasprintf, small and large (a large block) */
    char *s = call_vasprintf("%s-%d", "x", 7);
    assert_ours(s, 4);
    free(s);
    s = call_vasprintf("%0*d", 2000000, 5);
    assert_ours(s, 2000001);
    assert_int_equal(strlen(s), 2000000);
    free(s);
    /* a 1 MiB line: glibc's getline grows its buffer by realloc through every class */
    size_t big = (size_t)1 << 20;
    char *text = malloc(big + 2);
    memset(text, 'q', big);
    text[big] = '\n';
    text[big + 1] = '\0';
    f = fmemopen(text, big + 1, "r");
    char *line = NULL;
    cap = 0;
    assert_int_equal(getline(&line, &cap, f), (ssize_t)big + 1);
    assert_ours(line, big + 1);
    free(line);
    fclose(f);
    free(text);
    /* open_wmemstream */
    wchar_t *wbuf = NULL;
    size_t wsize = 0;
    FILE *wf = open_wmemstream(&wbuf, &wsize);
    assert_non_null(wf);
    for (int i = 0; i < 1000; i++)
        fwprintf(wf, L"%d,", i);
    fclose(wf);
    assert_ours(wbuf, wsize * sizeof(wchar_t));
    free(wbuf);
    /* the current directory, three ways */
    char *cwd = getcwd(NULL, 0);
    assert_ours(cwd, strlen(cwd) + 1);
    char *cwd2 = get_current_dir_name();
    assert_ours(cwd2, strlen(cwd2) + 1);
    char *canon = canonicalize_file_name(".");
    assert_ours(canon, strlen(canon) + 1);
    assert_string_equal(cwd, canon);
    free(cwd);
    free(cwd2);
    free(canon);
    /* tempnam (only the name: nothing is created), through dlsym: a direct reference makes
     * the linker warn on every build */
    char *(*tempnam_fn)(const char *, const char *) =
        (char *(*)(const char *, const char *))sym(RTLD_DEFAULT, "tempnam");
    char *tmp = tempnam_fn("/tmp", "vt");
    assert_ours(tmp, strlen(tmp) + 1);
    free(tmp);
    wchar_t *wd = wcsdup(L"wide string");
    assert_ours(wd, 12 * sizeof(wchar_t));
    free(wd);
    void *frames[16];
    int nframes = backtrace(frames, 16);
    char **symbols = backtrace_symbols(frames, nframes);
    assert_ours(symbols, (size_t)nframes * sizeof(char *));
    free(symbols);
    char *argz = NULL;
    size_t argz_len = 0;
    char *const argv[] = {"one", "two", "three", NULL};
    assert_int_equal(argz_create(argv, &argz, &argz_len), 0);
    assert_ours(argz, argz_len);
    assert_int_equal(argz_add(&argz, &argz_len, "four"), 0); /* realloc inside glibc */
    assert_ours(argz, argz_len);
    free(argz);
}

/* ---- glibc functions that allocate inside -----------------------------------------------------
 */

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int count_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path, (void)st, (void)type, (void)ftw;
    return 0;
}

static int tree_compare(const void *a, const void *b)
{
    return compare_ints(a, b);
}

static void nothing(void *p)
{
    (void)p;
}

static void glibc_internal_allocations(void **state)
{
    (void)state;
    EXPECT_VT_ALLOCATES("regcomp", {
        regex_t re;
        assert_int_equal(regcomp(&re, "^(ab|cd)*[[:digit:]]{2,5}(x|y|z)+$", REG_EXTENDED), 0);
        regmatch_t m[4];
        assert_int_equal(regexec(&re, "abcdab123zz", 4, m, 0), 0);
        regfree(&re);
        regex_t bad;
        int err = regcomp(&bad, "(unclosed", REG_EXTENDED);
        char msg[128];
        assert_true(err != 0 && regerror(err, &bad, msg, sizeof(msg)) > 0);
    });
    EXPECT_VT_ALLOCATES("qsort of a large array", {
        enum { N = 1 << 20 };
        int *a = malloc(N * sizeof(int));
        for (int i = 0; i < N; i++)
            a[i] = (int)((unsigned)i * 2654435761u >> 3);
        qsort(a, N, sizeof(int), compare_ints);
        for (int i = 1; i < N; i++)
            assert_true(a[i - 1] <= a[i]);
        free(a);
    });
    EXPECT_VT_ALLOCATES("fopen, setvbuf, fclose", {
        FILE *fp = fopen("/proc/self/maps", "r");
        assert_non_null(fp);
        char buf[256];
        assert_non_null(fgets(buf, sizeof(buf), fp));
        fclose(fp);
        fp = fopen("/dev/null", "w");
        assert_int_equal(setvbuf(fp, NULL, _IOFBF, 1 << 16), 0);
        fputs("x", fp);
        fclose(fp);
    });
    EXPECT_VT_ALLOCATES("getpwnam, getgrnam", {
        struct passwd *pw = getpwnam("root");
        assert_non_null(pw);
        struct group *gr = getgrnam("root");
        assert_non_null(gr);
        pw = getpwuid(0);
        assert_non_null(pw);
    });
    EXPECT_VT_ALLOCATES("iconv", {
        iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
        assert_true(cd != (iconv_t)-1);
        char in[] = "h\xc3\xa9llo", out[64];
        char *ip = in, *op = out;
        size_t il = strlen(in), ol = sizeof(out);
        assert_true(iconv(cd, &ip, &il, &op, &ol) != (size_t)-1);
        assert_int_equal(sizeof(out) - ol, 10);
        iconv_close(cd);
    });
    EXPECT_VT_ALLOCATES("newlocale, duplocale, freelocale", {
        locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
        assert_true(l != (locale_t)0);
        locale_t d = duplocale(l);
        locale_t old = uselocale(d);
        uselocale(old);
        freelocale(d);
        freelocale(l);
        assert_non_null(setlocale(LC_ALL, "C.UTF-8"));
        assert_non_null(setlocale(LC_ALL, "C"));
    });
    EXPECT_VT_ALLOCATES("dlopen, dlerror, dlclose", {
        assert_null(dlopen("libvt-no-such-library.so.9", RTLD_NOW));
        const char *e = dlerror();
        assert_non_null(e);
        assert_non_null(strstr(e, "libvt-no-such-library"));
        void *lib = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        assert_non_null(lib);
        double (*cosine)(double) = (double (*)(double))dlsym(lib, "cos");
        assert_non_null(cosine);
        assert_true(cosine(0.0) == 1.0);
        assert_null(dlsym(lib, "vt_no_such_symbol"));
        assert_non_null(dlerror());
        dlclose(lib);
    });
    EXPECT_VT_ALLOCATES("popen, pclose", {
        FILE *p = popen("echo interposed", "r");
        assert_non_null(p);
        char buf[64] = {0};
        assert_non_null(fgets(buf, sizeof(buf), p));
        assert_string_equal(buf, "interposed\n");
        assert_int_equal(pclose(p), 0);
    });
    EXPECT_VT_ALLOCATES("setenv, unsetenv", {
        char name[32];
        for (int i = 0; i < 50; i++) { /* environ grows by realloc */
            snprintf(name, sizeof(name), "VT_INTERPOSE_%d", i);
            assert_int_equal(setenv(name, "value", 1), 0);
        }
        for (int i = 0; i < 50; i++) {
            snprintf(name, sizeof(name), "VT_INTERPOSE_%d", i);
            assert_int_equal(unsetenv(name), 0);
        }
    });
    EXPECT_VT_ALLOCATES("glob", {
        glob_t g;
        assert_int_equal(glob("/etc/*", 0, NULL, &g), 0);
        assert_true(g.gl_pathc > 3);
        assert_ours(g.gl_pathv, g.gl_pathc * sizeof(char *));
        globfree(&g);
    });
    EXPECT_VT_ALLOCATES("fts, nftw", {
        char *const roots[] = {"/etc", NULL};
        FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
        assert_non_null(fts);
        int n = 0;
        while (fts_read(fts) != NULL && n < 2000)
            n++;
        fts_close(fts);
        assert_true(n > 10);
        assert_int_equal(nftw("/etc", count_entry, 16, FTW_PHYS), 0);
    });
    EXPECT_VT_ALLOCATES("tsearch, hsearch", {
        void *root = NULL;
        static int keys[1000];
        for (int i = 0; i < 1000; i++) {
            keys[i] = (i * 7919) % 1000;
            assert_non_null(tsearch(&keys[i], &root, tree_compare));
        }
        tdestroy(root, nothing);
        assert_int_equal(hcreate(500), 1);
        ENTRY e = {"key", "value"};
        assert_non_null(hsearch(e, ENTER));
        hdestroy();
    });
    EXPECT_VT_ALLOCATES("localtime with a time zone", {
        setenv("TZ", "Europe/Paris", 1);
        tzset();
        time_t t = 1700000000;
        struct tm tm;
        assert_non_null(localtime_r(&t, &tm));
        setenv("TZ", "America/New_York", 1);
        tzset();
        assert_non_null(localtime_r(&t, &tm));
        unsetenv("TZ");
        tzset();
    });
    EXPECT_VT_ALLOCATES("vfprintf with a huge width", {
        FILE *devnull = fopen("/dev/null", "w");
        assert_true(fprintf(devnull, "%*d|%.*f", 100000, 1, 5000, 1.5) > 100000);
        fclose(devnull);
    });
    EXPECT_VT_ALLOCATES("getaddrinfo of a numeric address", {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                                 .ai_family = AF_UNSPEC};
        struct addrinfo *res = NULL;
        assert_int_equal(getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
        assert_ours(res, sizeof(*res));
        freeaddrinfo(res);
    });
}

/* ---- Threads: glibc's allocations for a new thread ------------------------------------------- */

static __thread char tls_block[4096];

static void *thread_body(void *arg)
{
    tls_block[0] = 1;
    void *p = malloc(64); /* and the thread's own first malloc starts a cache */
    assert_ours_at(p, 64, "thread malloc", __LINE__);
    free(p);
    return arg;
}

static void thread_creation_allocates_from_vtmalloc(void **state)
{
    (void)state;
    static vt_stats_t st;
    vt_stats(&st);
    uint64_t caches = st.thread_caches_total;
    uint64_t before = vt_allocations();
    for (int i = 0; i < 20; i++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, thread_body, NULL), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
    }
    /* a thread with its own attributes (its stack size) and a detached one */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)1 << 20);
    pthread_t th;
    assert_int_equal(pthread_create(&th, &attr, thread_body, NULL), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    uint64_t after = vt_allocations();
    vt_stats(&st);
    /* Every thread's own malloc (20+1) went to vtmalloc, and so did glibc's for the threads
     * (their dynamic TLS vectors are calloc'ed). */
    assert_true(after - before >= 21);
    assert_true(st.thread_caches_total - caches >= 21);
    assert_glibc_heap_untouched("threads");
}

/* ---- Introspection answers for vtmalloc ---------------------------------------------------------
 */

static void introspection_is_vtmalloc(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *ms = open_memstream(&buf, &size);
    assert_int_equal(malloc_info(0, ms), 0);
    errno = 0;
    assert_int_equal(malloc_info(1, ms), EINVAL); /* glibc's answer: the code, errno as it was */
    assert_int_equal(errno, 0);
    fclose(ms);
    assert_non_null(strstr(buf, "vtmalloc"));
    free(buf);
    /* malloc_stats prints vtmalloc's table on stderr */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char out[8192];
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "vtmalloc"));
    void *big = malloc((size_t)16 << 20);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
    assert_true(mi.hblkhd >= (16 << 20) && mi.hblks >= 1);
    struct mallinfo (*libc_mallinfo)(void) =
        (struct mallinfo(*)(void))sym(RTLD_DEFAULT, "__libc_mallinfo");
    mi = libc_mallinfo();
    assert_true(mi.hblkhd >= (16 << 20));
    free(big);
}

int main(void)
{
    find_allocators();
    struct mallinfo2 m = glibc_mallinfo2();
    if (m.arena != 0 || m.hblks != 0) {
        fprintf(stderr, "glibc's own allocator was used before main (arena %zu)\n", m.arena);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(names_through_dlsym_and_rtld_next, teardown_check_glibc),
        cmocka_unit_test_teardown(libc_names_and_c23_frees, teardown_check_glibc),
        cmocka_unit_test_teardown(glibc_returns_vtmalloc_blocks, teardown_check_glibc),
        cmocka_unit_test_teardown(glibc_internal_allocations, teardown_check_glibc),
        cmocka_unit_test_teardown(thread_creation_allocates_from_vtmalloc, teardown_check_glibc),
        cmocka_unit_test_teardown(introspection_is_vtmalloc, teardown_check_glibc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
