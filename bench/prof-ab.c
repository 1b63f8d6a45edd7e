/*
 * prof-ab.c - what heap profiling costs memtest single's loop, timed inside one process.
 *
 * On a shared machine a process's throughput moves by 10 to 40 % from one second to the next
 * (other tenants' work), far more than the 3 % the profiler may cost; runs in separate processes,
 * even interleaved, then need thousands of rounds to place the cost within a point. Here two
 * copies of the library are loaded into one process (two files, dlopen'd, each with its own
 * state, options and thread caches): copy A with VTMALLOC_PROF_SAMPLE set, copy B without. One
 * thread runs memtest single's loop (free the previous block, malloc a random size below 16 KiB,
 * write it as memtest does) in short slices, alternating between the copies, so that both meet
 * the machine as it is within a few milliseconds of each other; each pair of slices gives one
 * ratio of times, and the median of the ratios is the cost.
 *
 * A copy lives at other addresses than the first, which alone can move the time a little: a run
 * with -m 0 (both copies off) measures that, and -x makes copy B the one that samples, so that
 * the two runs together cancel it. bench/run-prof-ab runs all three.
 *
 * Usage: prof-ab [-l LIB] [-m MEAN] [-x] [-n PAIRS] [-s SLICES] [-S SEED]
 *   -l  the library (default build/libvtmalloc.so)
 *   -m  VTMALLOC_PROF_SAMPLE of the sampling copy (default 524288; 0: neither samples)
 *   -x  copy B samples instead of copy A
 *   -n  malloc+free pairs per slice (default 100000, about 2 ms)
 *   -s  slices per copy (default 2000), after 50 of warm-up
 * Prints one line: RESULT ... ratio=<median of the slices' time with sampling over without>
 * q1= q3= (the ratios' quartiles) ns_on= ns_off= (median ns a pair).
 */
#define _GNU_SOURCE
#define BENCH_NAME "prof-ab"
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rand.h"

typedef struct copy {
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    size_t (*sample_bytes)(void);
    void *live;    /* memtest single's one live block */
    uint32_t size; /* its size */
    size_t next;   /* where in the size sequence this copy is */
} copy_t;

/* memtest single's sizes, drawn before timing (memtest draws them before timing too). */
#define SIZES (1u << 20)
static uint32_t sizes[SIZES];

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "prof-ab: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

/* A private copy of the library file: dlopen of the same path twice gives the same handle. */
static void *load_copy(const char *lib, const char *sample)
{
    const char *dir = getenv("TMPDIR"); /* where the copy goes; it must allow mapping code */
    char path[4096];
    if (snprintf(path, sizeof path, "%s/prof-ab-XXXXXX.so", dir ? dir : "/tmp") >= (int)sizeof path)
        fail("TMPDIR is too long", dir);
    int out = mkstemps(path, 3);
    FILE *in = fopen(lib, "rb");
    if (out < 0 || in == NULL)
        fail("cannot copy the library", lib);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (write(out, buf, n) != (ssize_t)n)
            fail("cannot write a copy of the library", path);
    fclose(in);
    close(out);
    /* The library reads its options when it is loaded (its constructor). */
    if (setenv("VTMALLOC_PROF_SAMPLE", sample, 1) != 0)
        fail("setenv failed", NULL);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    unlink(path);
    if (h == NULL)
        fail("dlopen failed", dlerror());
    return h;
}

static copy_t open_copy(const char *lib, const char *sample)
{
    void *h = load_copy(lib, sample);
    copy_t c = {0};
    c.malloc_fn = (void *(*)(size_t))dlsym(h, "vt_malloc");
    c.free_fn = (void (*)(void *))dlsym(h, "vt_free");
    c.sample_bytes = (size_t(*)(void))dlsym(h, "vt_prof_sample_bytes");
    if (c.malloc_fn == NULL || c.free_fn == NULL || c.sample_bytes == NULL)
        fail("the library lacks vt_malloc, vt_free or vt_prof_sample_bytes", lib);
    if (c.sample_bytes() != strtoull(sample, NULL, 10))
        fail("a copy did not take its VTMALLOC_PROF_SAMPLE", sample);
    return c;
}

/* memtest's writes: a byte in every 4 KiB and the last one, and its check before the free. */
static inline void touch(uint8_t *b, uint32_t size)
{
    for (uint32_t off = 0; off < size; off += 4096)
        b[off] = (uint8_t)size;
    if (size != 0)
        b[size - 1] = (uint8_t)size;
}

/* One slice: n pairs of memtest single on copy c; its time in ns. Not inlined, so that both
 * copies are reached through the same frames. */
static __attribute__((noinline)) double run_slice(copy_t *c, uint32_t n)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t i = 0; i < n; i++) {
        if (c->live != NULL) {
            uint8_t *b = c->live;
            if (c->size != 0 && b[c->size - 1] != (uint8_t)c->size)
                fail("a block was overwritten while live", NULL);
            c->free_fn(c->live);
        }
        uint32_t size = sizes[c->next++ & (SIZES - 1)];
        uint8_t *p = c->malloc_fn(size);
        if (p == NULL)
            fail("malloc returned NULL", NULL);
        touch(p, size);
        c->live = p, c->size = size;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n), by the nearest rank. */
static double quantile(const double *v, unsigned n, double q)
{
    unsigned k = (unsigned)(q * (n - 1) + 0.5);
    return v[k];
}

int main(int argc, char **argv)
{
    const char *lib = "build/libvtmalloc.so", *mean = "524288";
    unsigned slices = 2000, pairs = 100000;
    bool swap = false;
    uint64_t seed = 1;
    int opt;
    while ((opt = getopt(argc, argv, "l:m:xn:s:S:")) != -1) {
        switch (opt) {
        case 'l':
            lib = optarg;
            break;
        case 'm':
            mean = optarg;
            break;
        case 'x':
            swap = true;
            break;
        case 'n':
            pairs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            slices = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'S':
            seed = strtoull(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: prof-ab [-l LIB] [-m MEAN] [-x] [-n PAIRS] [-s SLICES] "
                            "[-S SEED]\n");
            return 2;
        }
    }
    if (pairs == 0 || slices < 5)
        fail("-n must be at least 1 and -s at least 5", NULL);
    if (strspn(mean, "0123456789") != strlen(mean) || *mean == '\0')
        fail("-m wants a number of bytes", mean);

    uint64_t rng = seed;
    for (unsigned i = 0; i < SIZES; i++)
        sizes[i] = rng_below(&rng, 16384);

    /* on: the copy that samples (A, or B with -x); off: the other. */
    copy_t a = open_copy(lib, swap ? "0" : mean);
    copy_t b = open_copy(lib, swap ? mean : "0");
    copy_t *on = swap ? &b : &a, *off = swap ? &a : &b;

    enum { WARM = 50 };
    for (unsigned i = 0; i < WARM; i++)
        run_slice(on, pairs), run_slice(off, pairs);
    double *ratio = calloc(slices, sizeof(double));
    double *t_on = calloc(slices, sizeof(double)), *t_off = calloc(slices, sizeof(double));
    if (ratio == NULL || t_on == NULL || t_off == NULL)
        fail("out of memory", NULL);
    for (unsigned i = 0; i < slices; i++) {
        if (i % 2 == 0) {
            t_on[i] = run_slice(on, pairs);
            t_off[i] = run_slice(off, pairs);
        } else {
            t_off[i] = run_slice(off, pairs);
            t_on[i] = run_slice(on, pairs);
        }
        ratio[i] = t_on[i] / t_off[i];
    }
    qsort(ratio, slices, sizeof(double), cmp_double);
    qsort(t_on, slices, sizeof(double), cmp_double);
    qsort(t_off, slices, sizeof(double), cmp_double);
    printf("RESULT lib=%s mean=%s sampling_copy=%s pairs=%u slices=%u ratio=%.4f q1=%.4f "
           "q3=%.4f ns_on=%.2f ns_off=%.2f\n",
           lib, mean, swap ? "B" : "A", pairs, slices, quantile(ratio, slices, 0.5),
           quantile(ratio, slices, 0.25), quantile(ratio, slices, 0.75),
           quantile(t_on, slices, 0.5) / pairs, quantile(t_off, slices, 0.5) / pairs);
    return 0;
}
