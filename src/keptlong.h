/*
 * keptlong.h - the check that keeps an emptied long page (keptlong.c says why there is one, and a
 * budget for the process as well as per thread).
 *
 * Layer: 8 thread cache (a header of keptlong.c's, inlined into tcache.c's free slow path). It
 * reads the total of keptlong.c and the class table; only the owner of `tc` calls these.
 */
#ifndef VT_KEPTLONG_H
#define VT_KEPTLONG_H

#include "internal.h"

#include "bin.h"

/* The units of the kept marks of every cache: the sum of their kept_counted (keptlong.c). */
extern _Atomic uint32_t vt_kept_long_total VT_HIDDEN;

/* Sets the cache's share of the total (keptlong.c). */
void vt_kept_long_publish(vt_tcache_t *tc, uint32_t own) VT_HIDDEN;

static inline void vt_kept_long_unmark(vt_tcache_t *tc, unsigned class_idx)
{
    if (tc->kept_long[class_idx])
        tc->kept_units -= vt_classes[class_idx].units;
    tc->kept_long[class_idx] = 0;
    tc->kept_mask &= ~((uint64_t)1 << class_idx);
}

/* Marks the class whose current page just emptied, and says whether the kept pages, this one
 * included, fit the budget: this thread's alone, and with the other threads' shares.
 *
 * First as a reservation: the marked classes' pages, empty or in use again, and this one. When
 * they fit, the marks stay, and every marked class keeps its page at its next empty without
 * coming here. A program that frees blocks of a dozen long classes in turn (bench/patterns -p
 * round-robin), each page in use again before the next one empties, would otherwise clear the
 * others' marks at every free and come here for each. Only when they do not fit are the marks
 * of pages in use again (or gone) cleared, and the empty pages alone count.
 *
 * The marks change in the cache alone; the share it publishes only grows here, to what its
 * marks hold, and comes down at the thread's housekeeping or exit (vt_kept_long_forget).
 * Publishing every change, two atomic read-modify-writes a free, took round-robin from 25.6 to
 * 31.5 ns a pair, and the check out of line, from 24.1 to 27.7. The share then stands at the
 * most the marks held since the last housekeeping, never below what they hold, so the pages
 * kept fit the budget. */
static inline bool vt_kept_long_fits(vt_tcache_t *tc, unsigned class_idx)
{
    uint32_t add = tc->kept_long[class_idx] ? 0 : vt_classes[class_idx].units;
    /* The share first: read after the total, a purge pass taking it in between would make the
     * others' part look one share larger than it is, and turn a fitting page away. */
    uint32_t own = atomic_load_explicit(&tc->kept_counted, memory_order_relaxed);
    uint32_t total = atomic_load_explicit(&vt_kept_long_total, memory_order_relaxed);
    uint32_t others = total > own ? total - own : 0;
    uint32_t budget = (uint32_t)(((size_t)vt_options.kept_long_kb << 10) >> VT_UNIT_SHIFT);
    if (vt_unlikely(tc->kept_units + add > budget || others + tc->kept_units + add > budget)) {
        for (uint64_t m = tc->kept_mask; m != 0; m &= m - 1) {
            unsigned c = (unsigned)__builtin_ctzll(m);
            const vt_page_t *kept = tc->alloc_page[c];
            if (c != class_idx && (kept == &vt_page_none || kept->used != 0))
                vt_kept_long_unmark(tc, c); /* in use again, or gone */
        }
        if (tc->kept_units + add > budget || others + tc->kept_units + add > budget)
            return false; /* the caller gives the page back, and clears its mark if it had one */
    }
    if (add != 0) {
        tc->kept_long[class_idx] = 1;
        tc->kept_mask |= (uint64_t)1 << class_idx;
        tc->kept_units += add;
    }
    if (vt_unlikely(tc->kept_units > own))
        vt_kept_long_publish(tc, tc->kept_units);
    return true;
}

#endif /* VT_KEPTLONG_H */
