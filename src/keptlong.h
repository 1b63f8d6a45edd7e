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
    tc->kept_long[class_idx] = 0;
    tc->kept_mask &= ~((uint64_t)1 << class_idx);
}

/* Marks the class whose current page just emptied, and says whether the kept pages, this one
 * included, fit the budget: this thread's alone, and with the other threads' shares. Stale
 * marks (their page in use again, or gone) are cleared on the way.
 *
 * The marks change in the cache alone; the share it publishes only grows here, to what its
 * marks hold, and comes down at the thread's housekeeping or exit (vt_kept_long_forget). A
 * program that frees blocks of a dozen long classes in turn (bench/patterns -p round-robin)
 * comes here at every free, and sets one mark and clears another each time: publishing every
 * change, two atomic read-modify-writes a free, took it from 25.6 to 31.5 ns a pair, and the
 * check out of line, from 24.1 to 27.7. The share then stands at the most the marks held since
 * the last housekeeping, never below what they hold, so the pages kept fit the budget. */
static inline bool vt_kept_long_fits(vt_tcache_t *tc, unsigned class_idx)
{
    bool marked = tc->kept_long[class_idx];
    uint32_t units = marked ? 0 : vt_classes[class_idx].units;
    for (uint64_t m = tc->kept_mask; m != 0; m &= m - 1) {
        unsigned c = (unsigned)__builtin_ctzll(m);
        const vt_page_t *kept = tc->alloc_page[c];
        if (kept != &vt_page_none && kept->used == 0)
            units += kept->units;
        else /* in use again, or gone */
            vt_kept_long_unmark(tc, c);
    }
    /* The share first: read after the total, a purge pass taking it in between would make the
     * others' part look one share larger than it is, and turn a fitting page away. */
    uint32_t own = atomic_load_explicit(&tc->kept_counted, memory_order_relaxed);
    uint32_t total = atomic_load_explicit(&vt_kept_long_total, memory_order_relaxed);
    uint32_t others = total > own ? total - own : 0;
    uint32_t budget = (uint32_t)(((size_t)vt_options.kept_long_kb << 10) >> VT_UNIT_SHIFT);
    if (vt_unlikely(units > budget || others + units > budget))
        return false; /* the caller gives the page back, and clears its mark if it had one */
    tc->kept_long[class_idx] = 1;
    tc->kept_mask |= (uint64_t)1 << class_idx;
    if (vt_unlikely(units > own))
        vt_kept_long_publish(tc, units);
    return true;
}

#endif /* VT_KEPTLONG_H */
