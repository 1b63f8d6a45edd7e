/*
 * test_sampling.c - the heap profiler's draws (sample.c: vt_sample_draw) are exponential
 * with the mean VTMALLOC_PROF_SAMPLE asks for, which is what google-pprof assumes when it
 * scales the samples back up: the mean, the share above the mean (e^-1) and above three means
 * (e^-3) of 200,000 draws, each within a few standard errors of the truth. And the stack
 * table's indices, which stay as it grows, and its generation, which changes when they go.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"

enum { DRAWS = 200000 };

static void draws_are_exponential_with_the_mean_asked_for(void **state)
{
    (void)state;
    uint32_t saved = vt_options.prof_sample;
    const uint32_t means[] = {4096, 524288, 1u << 30};
    for (size_t k = 0; k < sizeof(means) / sizeof(means[0]); k++) {
        vt_options.prof_sample = means[k];
        double mean = means[k], sum = 0;
        long above1 = 0, above3 = 0;
        for (int i = 0; i < DRAWS; i++) {
            int64_t d = vt_sample_draw();
            assert_true(d >= 1);
            sum += (double)d;
            above1 += (double)d > mean;
            above3 += (double)d > 3 * mean;
        }
        /* The standard error of the mean of exponential draws is mean / sqrt(n): 0.22 %. */
        double got = sum / DRAWS;
        if (fabs(got - mean) > 0.012 * mean)
            fail_msg("mean %u: draws average %.1f", means[k], got);
        /* Shares: binomial standard errors 0.11 % and 0.05 %. */
        double p1 = (double)above1 / DRAWS, p3 = (double)above3 / DRAWS;
        if (fabs(p1 - exp(-1.0)) > 0.006 || fabs(p3 - exp(-3.0)) > 0.003)
            fail_msg("mean %u: %.4f above the mean (e^-1 = 0.3679), %.4f above three means "
                     "(e^-3 = 0.0498)",
                     means[k], p1, p3);
    }
    vt_options.prof_sample = 0;
    assert_true(vt_sample_draw() == VT_SAMPLE_NEVER); /* off: never */
    vt_options.prof_sample = saved;
}

/* The draw's logarithm, which does without libm, against libm's: at both ends of its range
 * (u = 2^-53 and u = 1), at every power of two between, and at random points. */
static void the_draws_logarithm_agrees_with_libm(void **state)
{
    (void)state;
    uint64_t r = 0x9e3779b97f4a7c15ull, worst_at = 0;
    double worst = 0;
    for (int i = 0; i < DRAWS + 64; i++) {
        uint64_t x;
        if (i < 64)
            x = i == 0 ? 0 : ((uint64_t)1 << (i - 1)) << 11; /* u = 2^(i-1) / 2^53, and 2^-53 */
        else
            x = (r = r * 6364136223846793005ull + 1442695040888963407ull);
        double u = (double)((x >> 11) + 1) / 9007199254740992.0; /* (m + 1) / 2^53 */
        double err = fabs(vt_sample_neg_log(x) + log(u));
        if (err > worst) {
            worst = err;
            worst_at = x;
        }
    }
    if (worst > 2e-6) /* the table's lines leave 1.9e-6 (sample.c), plus rounding */
        fail_msg("-ln(u) off by %g at r = %#llx", worst, (unsigned long long)worst_at);
}

/* A stack's index names it in the records of sampled blocks and in the memo of a thread's
 * last stack (prof.c), so it must not change as the table grows; the generation changes only
 * when the table is cleared (in a forked child), when every noted index is void, and no two
 * tables ever share one. */
static void stack_indices_stay_until_the_table_is_cleared(void **state)
{
    (void)state;
    vt_prof_tables_t a = {0}, b = {0};
    uintptr_t pcs[2] = {0x401000, 1};
    enum { STACKS = 5000 };
    static uint32_t index[STACKS];
    assert_int_not_equal(vt_proftable_stack(&b, pcs, 2), UINT32_MAX);
    size_t cap = 0;
    uint32_t gen = 0, growths = 0;
    for (uintptr_t k = 1; k < STACKS; k++) {
        pcs[1] = k;
        index[k] = vt_proftable_stack(&a, pcs, 2);
        assert_int_equal(index[k], k - 1); /* in the order first seen */
        if (gen == 0)
            gen = a.generation;
        assert_true(a.generation == gen && gen != 0 && gen != b.generation);
        growths += a.stack_cap != cap;
        cap = a.stack_cap;
    }
    assert_true(growths >= 5);
    for (uintptr_t k = 1; k < STACKS; k++) { /* found again at the same index after the growths */
        pcs[1] = k;
        assert_int_equal(vt_proftable_stack(&a, pcs, 2), index[k]);
        assert_int_equal(a.stacks[index[k]].pcs[1], k);
    }
    assert_int_equal(a.stack_count, STACKS - 1);
    vt_proftable_clear(&a); /* a forked child's clean profile: every index is void */
    assert_true(a.generation != gen && a.generation != b.generation);
    assert_int_equal(a.stack_count, 0);
    pcs[1] = 77;
    assert_int_equal(vt_proftable_stack(&a, pcs, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(draws_are_exponential_with_the_mean_asked_for),
        cmocka_unit_test(the_draws_logarithm_agrees_with_libm),
        cmocka_unit_test(stack_indices_stay_until_the_table_is_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
