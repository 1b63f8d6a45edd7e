/*
 * rand.h - the one pseudo-random generator of the tests and the benchmarks: splitmix64 (Steele,
 * Lea, Flood 2014), and the few ways they draw from it. One 64-bit state, one add and three
 * xor-shift-multiply steps per number; it passes BigCrush and is trivially seeded, which is all a
 * workload generator or a stress test needs.
 *
 * Used by bench/ (through bench.h) and by tests/ (the test targets have bench/ on their include
 * path). Everything is static inline; nothing here allocates or keeps state of its own. The
 * sequences are part of what the programs mean: a seed printed by a failing test or written in a
 * benchmark's results must replay the same run, so a change here changes every recorded seed.
 */
#ifndef VT_RAND_H
#define VT_RAND_H

#include <stdint.h>

/* splitmix64's constants: the increment (2^64 / golden ratio, odd) and the two multipliers of
 * its output function. */
#define RNG_GOLDEN UINT64_C(0x9e3779b97f4a7c15)
#define RNG_MUL1   UINT64_C(0xbf58476d1ce4e5b9)
#define RNG_MUL2   UINT64_C(0x94d049bb133111eb)

/* splitmix64's output function: a bijective mix of all 64 bits. */
static inline uint64_t rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * RNG_MUL1;
    z = (z ^ (z >> 27)) * RNG_MUL2;
    return z ^ (z >> 31);
}

/* The next number of the stream whose state is *state. Any state, 0 included, is a good seed. */
static inline uint64_t rng_next(uint64_t *state)
{
    return rng_mix(*state += RNG_GOLDEN);
}

/* Uniform in [0, bound) by multiply-shift on the top 32 bits; the bias is below 2^-32 * bound. */
static inline uint32_t rng_below(uint64_t *state, uint32_t bound)
{
    return (uint32_t)(((rng_next(state) >> 32) * (uint64_t)bound) >> 32);
}

/* Uniform in [lo, hi], both included. */
static inline uint32_t rng_range(uint64_t *state, uint32_t lo, uint32_t hi)
{
    return lo + rng_below(state, hi - lo + 1);
}

/* Uniform double in [0, 1) from the top 53 bits. */
static inline double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * The state of an independent stream, from a seed and two numbers that name the stream (in the
 * benchmarks: a workload or phase, and a thread or connection). Streams that differ in either
 * number are unrelated, and none depends on which thread draws from it or when.
 */
static inline uint64_t rng_stream(uint64_t seed, uint32_t major, uint32_t minor)
{
    uint64_t mix = ((uint64_t)major << 32) ^ (uint64_t)(minor + 1);
    uint64_t state = seed ^ rng_next(&mix);
    rng_next(&state);
    return state;
}

/*
 * A cheap hash of (key, position) for patterns written into memory and checked later, one call
 * per byte or word: two multiplies, no state. Its top bits differ between keys and between
 * nearby positions, which is what a pattern check needs (a block holding another block's bytes,
 * or its own shifted, fails); it is not a random-number generator.
 */
static inline uint64_t rng_pattern(uint64_t key, uint64_t pos)
{
    return key * RNG_GOLDEN + pos * RNG_MUL1;
}

#endif /* VT_RAND_H */
