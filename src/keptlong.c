/*
 * keptlong.c - the empty long pages that threads keep: which emptied pages of the classes above
 * 32 KiB stay as their class's current page, within a budget per thread and one for the process.
 *
 * Layer: 8 thread cache
 * Calls: options.c, sizeclass.c, page.c
 *
 * Owns: the process's count of kept units (kept_long_total); in each cache, the kept_long marks,
 * kept_mask and kept_counted (types.h: vt_tcache_t says who writes them). tcache.c asks it when
 * a long page empties and does what it answers; reclaim.c takes a quiet cache's count.
 *
 * Why keep an empty page at all: a program that frees a 40-256 KiB block and asks for one of
 * the same size again (a request buffer, a loop) would otherwise send the page to the stash and
 * take it back at every turn, a slow path each way: 110-130 ns a pair against 12-17 kept
 * (bench/patterns -p loop-40k, loop-200k). Why a budget for the process as well as per thread:
 * a thread that used such a class for a while and moved on keeps its page until its next
 * housekeeping, and eight connection threads of the soak benchmark (bench/run-soak --long) each
 * kept up to 512 KiB of them: its peak RSS was 95.7-98.9 MiB, and 91.6-93.8 with the budget
 * shared (5 runs each, same build otherwise; bench/RESULTS.md). One thread looping keeps its
 * pages as before. A thread that has stopped calling the allocator cannot give its kept pages
 * back (only it may touch its pages), so after VTMALLOC_PURGE_MS a purge pass takes its share
 * of the count (reclaim.c), and the threads still working may keep theirs.
 *
 * The count is a budget, not a lock: every word is relaxed, since it orders no memory. Each
 * change of a cache's kept_counted is paired with the same change of the total, and a purge
 * pass's exchange takes exactly what the owner had not taken off yet, so the total never counts
 * units twice nor drifts; two threads that check at once may both find the budget full and keep
 * nothing, which costs each one trip to its stash.
 */
#include "internal.h"

#include "bin.h"

/* The units of the kept marks of every cache: the sum of their kept_counted. */
static _Atomic uint32_t kept_long_total;

static unsigned budget_units(void)
{
    return (unsigned)(((size_t)vt_options.kept_long_kb << 10) >> VT_UNIT_SHIFT);
}

static void mark(vt_tcache_t *tc, unsigned class_idx)
{
    if (tc->kept_long[class_idx])
        return;
    tc->kept_long[class_idx] = 1;
    tc->kept_mask |= (uint64_t)1 << class_idx;
    uint32_t units = vt_classes[class_idx].units;
    atomic_fetch_add_explicit(&tc->kept_counted, units, memory_order_relaxed);
    atomic_fetch_add_explicit(&kept_long_total, units, memory_order_relaxed);
}

/* Takes the mark's length off what the cache counts, or what is left of it after a purge pass
 * took the count: the total drops by what this cache added and nobody took yet. */
void vt_kept_long_unmark(vt_tcache_t *tc, unsigned class_idx)
{
    if (!tc->kept_long[class_idx])
        return;
    tc->kept_long[class_idx] = 0;
    tc->kept_mask &= ~((uint64_t)1 << class_idx);
    uint32_t units = vt_classes[class_idx].units, take;
    uint32_t have = atomic_load_explicit(&tc->kept_counted, memory_order_relaxed);
    do {
        if (have == 0)
            return;
        take = have < units ? have : units;
    } while (!atomic_compare_exchange_weak_explicit(&tc->kept_counted, &have, have - take,
                                                    memory_order_relaxed, memory_order_relaxed));
    atomic_fetch_sub_explicit(&kept_long_total, take, memory_order_relaxed);
}

bool vt_kept_long_fits(vt_tcache_t *tc, unsigned class_idx)
{
    unsigned units = 0, budget = budget_units();
    mark(tc, class_idx);
    for (uint64_t m = tc->kept_mask; m != 0; m &= m - 1) {
        unsigned c = (unsigned)__builtin_ctzll(m);
        vt_page_t *kept = vt_bin_first(tc, c);
        if (kept != NULL && kept->used == 0)
            units += kept->units;
        else /* in use again, or gone */
            vt_kept_long_unmark(tc, c);
    }
    return units <= budget &&
           atomic_load_explicit(&kept_long_total, memory_order_relaxed) <= budget;
}

void vt_kept_long_uncount(vt_tcache_t *tc)
{
    uint32_t units = atomic_exchange_explicit(&tc->kept_counted, 0, memory_order_relaxed);
    if (units != 0)
        atomic_fetch_sub_explicit(&kept_long_total, units, memory_order_relaxed);
}

/* In a fork's child the other threads' caches are gone (cachepool.c), and so are their shares:
 * the total is the caller's own count. */
void vt_kept_long_fork_child(vt_tcache_t *self)
{
    uint32_t own = self != NULL && self->state == VT_TCACHE_LIVE
                       ? atomic_load_explicit(&self->kept_counted, memory_order_relaxed)
                       : 0;
    atomic_store_explicit(&kept_long_total, own, memory_order_relaxed);
}
