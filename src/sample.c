/*
 * sample.c - the heap profiler's draws: how many bytes until the next sampled allocation.
 *
 * Layer: 3 pages
 * Calls: options.c, page.c, thread.c
 *
 * Owns: each thread's random sequence (thread-local, so nothing here is shared). Every sampled
 * allocation takes a draw (its page's countdown starts again): about 55 instructions, made eight
 * at a time.
 */
#include "internal.h"

/* The state of the calling thread's draws: a splitmix64 sequence, seeded on first use. */
static __thread uint64_t sample_rng __attribute__((tls_model("initial-exec")));

/* The mantissa's logarithm from a table and a short series, with no division: the draw's
 * latency was most of its cost (a division and a nine-step chain of multiplies), and a sampled
 * allocation waits for it. The top five bits of the mantissa f pick c, the middle of one of 32
 * slices of [1, 2); then f = c (1 + r) with |r| < 1/64, and three terms of ln(1 + r) leave an
 * error below r^4 / 4 < 1.5e-8. One row is one 16-byte load. */
#define LOG_SLICE_BITS 5
static const struct {
    double inv_c, ln_c; /* 1 / c and ln c, for c = 1 + (2k + 1) / 64 */
} log_slice[1 << LOG_SLICE_BITS] = {
    {0.98461538461538467, 0.015504186535965254}, {0.95522388059701491, 0.045809536031294201},
    {0.92753623188405798, 0.075223421237587532}, {0.90140845070422537, 0.10379679368164356},
    {0.87671232876712324, 0.13157635778871926},  {0.85333333333333339, 0.15860503017663857},
    {0.83116883116883122, 0.18492233849401199},  {0.810126582278481, 0.21056476910734964},
    {0.79012345679012341, 0.23556607131276691},  {0.77108433734939763, 0.25995752443692605},
    {0.75294117647058822, 0.28376817313064462},  {0.73563218390804597, 0.30702503529491187},
    {0.7191011235955056, 0.32975328637246798},   {0.70329670329670335, 0.3519764231571782},
    {0.68817204301075274, 0.37371640979358406},  {0.67368421052631577, 0.39499380824086899},
    {0.65979381443298968, 0.41582789514371099},  {0.64646464646464652, 0.43623676677491807},
    {0.63366336633663367, 0.45623743348158757},  {0.62135922330097082, 0.47584590486996392},
    {0.60952380952380958, 0.49507726679785152},  {0.59813084112149528, 0.51394575110223428},
    {0.58715596330275233, 0.53246479886947184},  {0.57657657657657657, 0.5506471179526623},
    {0.5663716814159292, 0.56850473535266877},   {0.55652173913043479, 0.58604904500357824},
    {0.54700854700854706, 0.60329085143808425},  {0.53781512605042014, 0.62024040975185757},
    {0.52892561983471076, 0.63690746223706918},  {0.52032520325203258, 0.65330127201274568},
    {0.51200000000000001, 0.66943065394262924},  {0.50393700787401574, 0.68530400309891937},
};

/* -ln(u) for u uniform in (0, 1], u from the top 53 bits of r: the exponent's part plus the
 * mantissa's (above). The library does not link libm for one logarithm. */
double vt_sample_neg_log(uint64_t r)
{
    const double ln2 = 0.69314718055994530942;
    uint64_t m = (r >> 11) + 1; /* 1 .. 2^53 */
    int e = 63 - __builtin_clzll(m);
    /* f = m / 2^e in [1, 2), built from m's bits below its top one (exact). */
    uint64_t bits = ((uint64_t)1023 << 52) | ((m << (63 - e) << 1) >> 12);
    double f;
    memcpy(&f, &bits, sizeof(f));
    unsigned k = (unsigned)(bits >> (52 - LOG_SLICE_BITS)) & ((1u << LOG_SLICE_BITS) - 1);
    double x = f * log_slice[k].inv_c - 1.0; /* f / c - 1: the multiply rounds, no more */
    double ln_f = log_slice[k].ln_c + (x - x * x * (0.5 - x * (1.0 / 3)));
    return (53 - e) * ln2 - ln_f;
}

/* Draws made ahead, a batch at a time. A draw is a chain of about 70 dependent cycles (the
 * generator's multiplies, the logarithm, the conversions), and a sampled allocation, which
 * needs one, retires nothing behind the chain until it ends: in memtest single at the usual mean
 * (a sample every 64 mallocs) the draw took a third of a sample's time under perf. The chains of
 * a batch are independent, so the processor runs them side by side, and a sample takes a
 * finished draw (internal.h: vt_sample_next, inline, so that it costs a sample no call). The
 * sequence is the one a draw at a time would give. */
__thread int64_t vt_sample_draws[VT_SAMPLE_BATCH] __attribute__((tls_model("initial-exec")));

int64_t vt_sample_refill(void)
{
    if (vt_unlikely(sample_rng == 0))
        sample_rng = vt_secret ^ (uintptr_t)&sample_rng;
    double mean = (double)vt_options.prof_sample;
    for (unsigned i = 0; i < VT_SAMPLE_BATCH; i++) {
        uint64_t z = sample_rng + (i + 1) * VT_FIBONACCI_HASH;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        vt_sample_draws[i] = (int64_t)(vt_sample_neg_log(z) * mean) + 1;
    }
    sample_rng += VT_SAMPLE_BATCH * VT_FIBONACCI_HASH;
    vt_thread.sample_draws_left = VT_SAMPLE_BATCH - 1;
    return vt_sample_draws[VT_SAMPLE_BATCH - 1];
}

/* Bytes until the next sampled allocation: an exponential draw with the mean
 * VTMALLOC_PROF_SAMPLE, so that every byte allocated is a sampling point with the same
 * probability and a block of n bytes is sampled with probability 1 - exp(-n / mean), which is
 * what google-pprof assumes when it scales the samples back up. Profiling off: never. */
int64_t vt_sample_draw(void)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return VT_SAMPLE_NEVER;
    return vt_sample_next();
}
