/*
 * test_sampling.c - the heap profiler's draws (page.c: vt_page_sample_draw) are exponential
 * with the mean VTMALLOC_PROF_SAMPLE asks for, which is what google-pprof assumes when it
 * scales the samples back up: the mean, the share above the mean (e^-1) and above three means
 * (e^-3) of 200,000 draws, each within a few standard errors of the truth. And the stack
 * table's generation, which says when the index of a stack noted earlier is still good.
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
            int64_t d = vt_page_sample_draw();
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
    assert_true(vt_page_sample_draw() == VT_SAMPLE_NEVER); /* off: never */
    vt_options.prof_sample = saved;
}

/* The profiler keeps a stack's index in the memo of a thread's last stack (prof.c:
 * stack_locked), good while its table's generation is the one noted. So the generation must
 * change whenever indices do (the table grows and rehashes, or is cleared in a forked child),
 * and no two tables may ever share one. */
static void stack_indices_change_only_with_the_generation(void **state)
{
    (void)state;
    vt_prof_tables_t a = {0}, b = {0};
    uintptr_t pcs[2] = {0x401000, 1};
    assert_int_not_equal(vt_proftable_stack(&a, pcs, 2), UINT32_MAX);
    assert_int_not_equal(vt_proftable_stack(&b, pcs, 2), UINT32_MAX);
    assert_true(a.generation != 0 && b.generation != 0 && a.generation != b.generation);
    size_t cap = a.stack_cap;
    uint32_t gen = a.generation, growths = 0;
    for (uintptr_t k = 2; k < 5000; k++) {
        pcs[1] = k;
        assert_int_not_equal(vt_proftable_stack(&a, pcs, 2), UINT32_MAX);
        if (a.stack_cap != cap) { /* grown: indices moved, and the generation with them */
            assert_true(a.generation != gen);
            cap = a.stack_cap;
            gen = a.generation;
            growths++;
        } else {
            assert_true(a.generation == gen); /* same indices: the noted ones stay good */
        }
    }
    assert_true(growths >= 2);
    pcs[1] = 1;
    uint32_t first = vt_proftable_stack(&a, pcs, 2); /* its index after the growths */
    assert_true(vt_proftable_stack(&a, pcs, 2) == first && a.generation == gen);
    vt_proftable_clear(&a); /* a forked child's clean profile: every index is void */
    assert_true(a.generation != gen && a.generation != b.generation);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(draws_are_exponential_with_the_mean_asked_for),
        cmocka_unit_test(stack_indices_change_only_with_the_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
