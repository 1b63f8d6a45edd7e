/*
 * sample.c - the heap profiler's draws: how many bytes until the next sampled allocation.
 *
 * Layer: 3 pages
 * Calls: options.c, page.c
 *
 * Owns: each thread's random sequence (thread-local, so nothing here is shared). Every sampled
 * allocation makes a draw (its page's countdown starts again): about 70 instructions.
 */
#include "internal.h"

/* The state of the calling thread's draws: a splitmix64 sequence, seeded on first use. */
static __thread uint64_t sample_rng __attribute__((tls_model("initial-exec")));

/* -ln(u) for u uniform in (0, 1], u from the top 53 bits of r: ln of the mantissa by its
 * atanh series (|t| <= 1/3, so five terms leave an error below 1.2e-6), plus the exponent. The
 * library does not link libm for one logarithm. */
double vt_sample_neg_log(uint64_t r)
{
    const double ln2 = 0.69314718055994530942;
    uint64_t m = (r >> 11) + 1; /* 1 .. 2^53 */
    int e = 63 - __builtin_clzll(m);
    /* f = m / 2^e in [1, 2), built from m's bits below its top one (exact). */
    uint64_t bits = ((uint64_t)1023 << 52) | ((m << (63 - e) << 1) >> 12);
    double f;
    memcpy(&f, &bits, sizeof(f));
    double t = (f - 1.0) / (f + 1.0), t2 = t * t;
    double ln_f = 2.0 * t * (1.0 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 / 9))));
    return (53 - e) * ln2 - ln_f;
}

/* Bytes until the next sampled allocation: an exponential draw with the mean
 * VTMALLOC_PROF_SAMPLE, so that every byte allocated is a sampling point with the same
 * probability and a block of n bytes is sampled with probability 1 - exp(-n / mean), which is
 * what google-pprof assumes when it scales the samples back up. Profiling off: never. */
int64_t vt_sample_draw(void)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return VT_SAMPLE_NEVER;
    if (vt_unlikely(sample_rng == 0))
        sample_rng = vt_secret ^ (uintptr_t)&sample_rng;
    uint64_t z = (sample_rng += VT_FIBONACCI_HASH);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (int64_t)(vt_sample_neg_log(z) * (double)vt_options.prof_sample) + 1;
}
