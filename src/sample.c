/*
 * sample.c - the heap profiler's draws: how many bytes until the next sampled allocation.
 *
 * Layer: 3 pages
 * Calls: options.c, page.c, thread.c
 *
 * Owns: each thread's random sequence (thread-local, so nothing here is shared). Every sampled
 * allocation takes a draw (its page's countdown starts again): about 42 instructions, made eight
 * at a time.
 */
#include "internal.h"

/* The state of the calling thread's draws: a Weyl sequence (a counter in steps of an odd
 * constant), seeded on first use; each value is mixed into a random one (mix). */
static __thread uint64_t sample_rng __attribute__((tls_model("initial-exec")));

/* log2(1 + i/256) in units of 2^-31, for i = 0 .. 256: the draw's logarithm interpolates
 * between two neighbours, whose line error is below h^2 / 8 * max |d2/dx2 log2(1 + x)| =
 * 2^-16 / 8 * 1.4427 = 2.8e-6 (h = 1/256), 1.9e-6 as a natural logarithm: a byte at the usual
 * mean of 512 KiB. Integers and one multiply, and no floating-point chain but the last
 * conversion: with the cheaper mix below, a draw takes 42 instructions where a table of 32
 * slices and a three-term series of double operations took 56 (callgrind, memtest single;
 * bench/RESULTS.md). Made with
 *   python3 -c "import math; print([round(math.log2(1 + i / 256) * 2**31) for i in range(257)])"
 */
#define LOG_STEPS_BITS 8
static const uint32_t log2_steps[(1u << LOG_STEPS_BITS) + 1] = {
    0u,          12078627u,   24110347u,   36095523u,   48034513u,   59927671u,   71775349u,
    83577893u,   95335645u,   107048945u,  118718126u,  130343521u,  141925456u,  153464255u,
    164960239u,  176413723u,  187825021u,  199194443u,  210522295u,  221808880u,  233054496u,
    244259442u,  255424009u,  266548488u,  277633165u,  288678325u,  299684247u,  310651211u,
    321579490u,  332469358u,  343321082u,  354134928u,  364911162u,  375650043u,  386351829u,
    397016776u,  407645136u,  418237160u,  428793095u,  439313187u,  449797678u,  460246807u,
    470660814u,  481039932u,  491384396u,  501694436u,  511970279u,  522212153u,  532420281u,
    542594885u,  552736183u,  562844395u,  572919734u,  582962413u,  592972645u,  602950638u,
    612896598u,  622810731u,  632693241u,  642544327u,  652364189u,  662153025u,  671911030u,
    681638398u,  691335320u,  701001986u,  710638585u,  720245302u,  729822324u,  739369832u,
    748888009u,  758377033u,  767837083u,  777268336u,  786670965u,  796045145u,  805391046u,
    814708840u,  823998694u,  833260775u,  842495250u,  851702282u,  860882034u,  870034667u,
    879160341u,  888259214u,  897331443u,  906377184u,  915396590u,  924389816u,  933357012u,
    942298328u,  951213914u,  960103918u,  968968484u,  977807760u,  986621888u,  995411012u,
    1004175273u, 1012914810u, 1021629764u, 1030320272u, 1038986470u, 1047628495u, 1056246482u,
    1064840562u, 1073410869u, 1081957534u, 1090480686u, 1098980456u, 1107456970u, 1115910356u,
    1124340739u, 1132748245u, 1141132997u, 1149495118u, 1157834731u, 1166151954u, 1174446910u,
    1182719716u, 1190970490u, 1199199350u, 1207406412u, 1215591791u, 1223755601u, 1231897955u,
    1240018966u, 1248118746u, 1256197405u, 1264255053u, 1272291800u, 1280307752u, 1288303019u,
    1296277705u, 1304231918u, 1312165761u, 1320079339u, 1327972754u, 1335846110u, 1343699509u,
    1351533050u, 1359346835u, 1367140963u, 1374915531u, 1382670639u, 1390406384u, 1398122861u,
    1405820167u, 1413498396u, 1421157644u, 1428798003u, 1436419566u, 1444022426u, 1451606675u,
    1459172403u, 1466719700u, 1474248656u, 1481759361u, 1489251901u, 1496726366u, 1504182841u,
    1511621414u, 1519042169u, 1526445193u, 1533830570u, 1541198383u, 1548548716u, 1555881652u,
    1563197273u, 1570495661u, 1577776895u, 1585041058u, 1592288229u, 1599518487u, 1606731910u,
    1613928578u, 1621108567u, 1628271955u, 1635418819u, 1642549234u, 1649663276u, 1656761020u,
    1663842541u, 1670907913u, 1677957208u, 1684990500u, 1692007863u, 1699009366u, 1705995083u,
    1712965083u, 1719919439u, 1726858219u, 1733781493u, 1740689331u, 1747581801u, 1754458972u,
    1761320910u, 1768167684u, 1774999361u, 1781816006u, 1788617686u, 1795404466u, 1802176412u,
    1808933588u, 1815676059u, 1822403888u, 1829117139u, 1835815874u, 1842500157u, 1849170050u,
    1855825614u, 1862466912u, 1869094003u, 1875706949u, 1882305810u, 1888890646u, 1895461516u,
    1902018479u, 1908561594u, 1915090920u, 1921606515u, 1928108435u, 1934596739u, 1941071483u,
    1947532725u, 1953980519u, 1960414922u, 1966835990u, 1973243777u, 1979638338u, 1986019729u,
    1992388003u, 1998743213u, 2005085414u, 2011414658u, 2017730999u, 2024034488u, 2030325179u,
    2036603122u, 2042868370u, 2049120974u, 2055360984u, 2061588451u, 2067803426u, 2074005959u,
    2080196099u, 2086373895u, 2092539398u, 2098692655u, 2104833716u, 2110962628u, 2117079439u,
    2123184198u, 2129276951u, 2135357746u, 2141426629u, 2147483648u,
};

/* -log2(u) in units of 2^-31, for u uniform in (0, 1]: u = m / 2^53, m = 1 + the top 53 bits
 * of r. -log2(u) = 53 - log2(m): the whole part from m's highest bit, the fraction from the
 * table. */
static inline uint64_t neg_log2_fixed(uint64_t r)
{
    uint64_t m = (r >> 11) + 1; /* 1 .. 2^53 */
    unsigned lead = (unsigned)__builtin_clzll(m);
    uint64_t y = m << lead; /* m's bits, its top one at bit 63: m = y / 2^(63 - lead) */
    unsigned i = (unsigned)(y >> (63 - LOG_STEPS_BITS)) & ((1u << LOG_STEPS_BITS) - 1);
    uint64_t frac = (y >> (31 - LOG_STEPS_BITS)) & 0xffffffffu; /* the next 32 bits */
    uint64_t step = log2_steps[i + 1] - log2_steps[i];
    uint64_t log2_y = log2_steps[i] + ((step * frac) >> 32); /* log2(y / 2^63) */
    /* 53 - log2(m) = (lead - 10) - log2(y / 2^63); lead is at least 10 */
    return ((uint64_t)(lead - 10) << 31) - log2_y;
}

/* One unit of neg_log2_fixed as a natural logarithm. */
#define LN2_UNIT (0.69314718055994530942 / 2147483648.0)

/* -ln(u), u as above. The library does not link libm for one logarithm. */
double vt_sample_neg_log(uint64_t r)
{
    return (double)(int64_t)neg_log2_fixed(r) * LN2_UNIT;
}

/* The Weyl step and the mixer's constant: wyrand's (Wang Yi's generator, which its author
 * reports to pass the PractRand and BigCrush batteries). Its mix is one 64 x 64 -> 128-bit multiply
 * of the counter by itself with some bits flipped, the two halves folded together: five
 * instructions, where splitmix64's finaliser took sixteen. */
#define WEYL_STEP 0xa0761d6478bd642full
#define MIX_FLIP  0xe7037ed1a0b428dbull

static inline uint64_t mix(uint64_t z)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 t = (unsigned __int128)z * (z ^ MIX_FLIP);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
#else /* no 128-bit product: splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
#endif
}

/* Draws made ahead, a batch at a time. A draw is a chain of dependent steps (the generator's
 * multiply, the logarithm, the conversions), and a sampled allocation, which needs one,
 * retires nothing behind the chain until it ends (with the draw of before, a chain of about 70
 * cycles): in memtest single at the usual mean
 * (a sample every 64 mallocs) the draw took a third of a sample's time under perf. The chains of
 * a batch are independent, so the processor runs them side by side, and a sample takes a
 * finished draw (internal.h: vt_sample_next, inline, so that it costs a sample no call). The
 * sequence is the one a draw at a time would give. */
__thread int64_t vt_sample_draws[VT_SAMPLE_BATCH] __attribute__((tls_model("initial-exec")));

int64_t vt_sample_refill(void)
{
    if (vt_unlikely(sample_rng == 0))
        sample_rng = vt_secret ^ (uintptr_t)&sample_rng;
    double scale = (double)vt_options.prof_sample * LN2_UNIT; /* bytes a unit */
    for (unsigned i = 0; i < VT_SAMPLE_BATCH; i++) {
        /* below 2^38: as a signed integer it converts in one instruction */
        int64_t units = (int64_t)neg_log2_fixed(mix(sample_rng + (i + 1) * WEYL_STEP));
        vt_sample_draws[i] = (int64_t)((double)units * scale) + 1;
    }
    sample_rng += VT_SAMPLE_BATCH * WEYL_STEP;
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
