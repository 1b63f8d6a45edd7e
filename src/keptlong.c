/*
 * keptlong.c - the empty long pages that threads keep: which emptied pages of the classes above
 * 32 KiB stay as their class's current page, within a budget per thread and one for the process.
 *
 * Layer: 8 thread cache
 * Calls: nothing
 *
 * Owns: the process's count of kept units (vt_kept_long_total); in each cache, the kept_long
 * marks, kept_mask and kept_counted (types.h: vt_tcache_t says who writes them). tcache.c asks
 * its check (keptlong.h, inlined there) when a long page empties and does what it answers;
 * reclaim.c takes a quiet cache's share.
 *
 * Why keep an empty page at all: a program that frees a 40-256 KiB block and asks for one of
 * the same size again (a request buffer, a loop) would otherwise send the page to the stash and
 * take it back at every turn, a slow path each way: 80-130 ns a pair against 10-17 kept
 * (bench/patterns -p loop-40k, loop-200k). Why a budget for the process as well as per thread:
 * a thread that used such a class for a while and moved on keeps its page until its next
 * housekeeping, and eight connection threads of the soak benchmark (bench/run-soak --long) each
 * kept up to 512 KiB of them: its peak RSS was 96.0-98.8 MiB, and 91.8-93.7 with the budget
 * shared (3 runs each, alternated; bench/RESULTS.md, session ij). One thread looping keeps its
 * pages as before. A thread that has stopped calling the allocator cannot give its kept pages
 * back (only it may touch its pages), so after VTMALLOC_PURGE_MS a purge pass takes its share
 * of the count (reclaim.c), and the threads still working may keep theirs.
 *
 * The count is a budget, not a lock: every word is relaxed, since it orders no memory. A cache
 * publishes its share (kept_counted) and the total follows every change of a share by the same
 * amount, so the total is the sum of the shares; a share may stand above what its marks hold
 * (it comes down at housekeeping), never below while they count, so the pages kept fit the
 * budget. Two threads that check at once may both find it full and keep nothing, which costs
 * each one trip to its stash.
 */
#include "internal.h"

#include "keptlong.h"

/* The units of the kept marks of every cache: the sum of their kept_counted (keptlong.h). */
_Atomic uint32_t vt_kept_long_total;

/* Sets the cache's share of the total to `own` units. Against a purge pass that takes the share
 * meanwhile (an exchange to 0, then the total lowered by what it took): whichever comes first,
 * the total ends with this cache's word in it once. */
void vt_kept_long_publish(vt_tcache_t *tc, uint32_t own)
{
    uint32_t had = atomic_load_explicit(&tc->kept_counted, memory_order_relaxed);
    while (had != own) {
        if (atomic_compare_exchange_weak_explicit(&tc->kept_counted, &had, own,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            if (own > had)
                atomic_fetch_add_explicit(&vt_kept_long_total, own - had, memory_order_relaxed);
            else
                atomic_fetch_sub_explicit(&vt_kept_long_total, had - own, memory_order_relaxed);
            return;
        }
    }
}

void vt_kept_long_forget(vt_tcache_t *tc)
{
    for (uint64_t m = tc->kept_mask; m != 0; m &= m - 1)
        tc->kept_long[__builtin_ctzll(m)] = 0;
    tc->kept_mask = 0;
    tc->kept_units = 0;
    vt_kept_long_publish(tc, 0);
}

void vt_kept_long_uncount(vt_tcache_t *tc)
{
    uint32_t units = atomic_exchange_explicit(&tc->kept_counted, 0, memory_order_relaxed);
    if (units != 0)
        atomic_fetch_sub_explicit(&vt_kept_long_total, units, memory_order_relaxed);
}

/* In a fork's child the other threads' caches are gone (cachepool.c), and so are their shares:
 * the total is the caller's own count. */
void vt_kept_long_fork_child(vt_tcache_t *self)
{
    uint32_t own = self != NULL && self->state == VT_TCACHE_LIVE
                       ? atomic_load_explicit(&self->kept_counted, memory_order_relaxed)
                       : 0;
    atomic_store_explicit(&vt_kept_long_total, own, memory_order_relaxed);
}
