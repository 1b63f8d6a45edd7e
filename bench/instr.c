/*
 * instr.c: the instructions one malloc+free pair costs, counted by callgrind.
 *
 * Why: wall-clock benchmarks on a shared 2-core machine are noisy, while an instruction count of
 * the fast path is exact and repeatable, and it is what the review (point i) argued about. This
 * program runs N pairs of malloc(SIZE) + free in instr_measure(); bench/run-instr runs it under
 *   valgrind --tool=callgrind --toggle-collect=instr_measure ./instr SIZE N
 * so that only that function and what it calls are counted, and divides by N. A warm-up of the
 * same loop runs first, outside the collected function, so that lazy binding, the allocator's
 * initialisation and the first refill of its caches are not counted.
 *
 * HOLD blocks of the same size are allocated before the warm-up and stay live to the end. With
 * HOLD = 0 the measured block is alone, so many allocators see its page (or span, or run) become
 * empty on every free and take a slower path to retire it; with a few blocks held the loop stays on
 * the fast path that a busy program sees. run-instr reports both.
 *
 * Callgrind, unlike memcheck, does not replace malloc, so an LD_PRELOADed allocator is the one
 * called; run-instr checks that its library appears among the functions callgrind saw.
 *
 * Builds: plain (malloc/free, so glibc or an LD_PRELOAD), -DINSTR_ZIPPY (Tcl_Alloc/Tcl_Free from
 * libtcl8.6, after Tcl_FindExecutable) and -DINSTR_STUB (functions that return a static buffer:
 * the cost of the loop and the calls alone, which run-instr subtracts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(INSTR_ZIPPY)
#include <tcl.h>
static void *instr_malloc(size_t size)
{
    return Tcl_Alloc((unsigned int)size);
}
static void instr_free(void *ptr)
{
    Tcl_Free(ptr);
}
#elif defined(INSTR_STUB)
/*
 * Out of line, like a call into a shared library, but doing nothing; noipa keeps the compiler from
 * looking inside (and, say, folding the constant result into the loop).
 */
static _Alignas(16) char stub_block[65536];
__attribute__((noinline, noipa)) static void *instr_malloc(size_t size)
{
    (void)size; /* nothing is written into the block, so its size does not matter */
    return stub_block;
}
__attribute__((noinline, noipa)) static void instr_free(void *ptr)
{
    __asm__ volatile("" : : "r"(ptr) : "memory");
}
#else
static void *instr_malloc(size_t size)
{
    return malloc(size);
}
static void instr_free(void *ptr)
{
    free(ptr);
}
#endif

/* The loop. The empty asm makes the pointer "used", so the compiler cannot drop the pair. */
__attribute__((noinline)) static long instr_loop(size_t size, long n)
{
    long failures = 0;
    for (long i = 0; i < n; i++) {
        void *ptr = instr_malloc(size);
        failures += ptr == NULL;
        __asm__ volatile("" : : "r"(ptr) : "memory");
        instr_free(ptr);
    }
    return failures;
}

/* The function callgrind collects in (--toggle-collect=instr_measure); extern so its name stays. */
__attribute__((noinline)) long instr_measure(size_t size, long n);

long instr_measure(size_t size, long n)
{
    return instr_loop(size, n);
}

static long parse_long(const char *arg, const char *what, long min)
{
    char *end;
    errno = 0;
    long value = strtol(arg, &end, 0);
    if (errno != 0 || end == arg || *end != '\0' || value < min) {
        fprintf(stderr, "instr: %s must be a number >= %ld, not '%s'\n", what, min, arg);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: instr SIZE [N [HOLD]]   N malloc(SIZE)+free pairs (default "
                        "1000000) while HOLD other blocks of SIZE stay live (default 0)\n");
        return 2;
    }
#if defined(INSTR_ZIPPY)
    Tcl_FindExecutable(argv[0]);
#endif
    size_t size = (size_t)parse_long(argv[1], "SIZE", 1);
    long n = argc > 2 ? parse_long(argv[2], "N", 1) : 1000000;
    long hold = argc > 3 ? parse_long(argv[3], "HOLD", 0) : 0;
    long warmup = n / 10 > 1000 ? n / 10 : 1000;

    /* The held blocks come from the allocator under test, like the measured ones. */
    void **held = hold > 0 ? calloc((size_t)hold, sizeof *held) : NULL;
    if (hold > 0 && held == NULL) {
        fprintf(stderr, "instr: no memory for %ld held blocks\n", hold);
        return 1;
    }
    for (long i = 0; i < hold; i++) {
        if ((held[i] = instr_malloc(size)) == NULL) {
            fprintf(stderr, "instr: malloc(%zu) returned NULL\n", size);
            return 1;
        }
    }
    if (instr_loop(size, warmup) != 0 || instr_measure(size, n) != 0) {
        fprintf(stderr, "instr: malloc(%zu) returned NULL\n", size);
        return 1;
    }
    for (long i = 0; i < hold; i++) {
        instr_free(held[i]);
    }
    free(held);
    printf("instr: %ld pairs of malloc(%zu)+free after %ld warm-up pairs, %ld blocks held\n", n,
           size, warmup, hold);
    return 0;
}
