/*
 * spanpurge.c - giving spans' free memory back to the OS: free units by madvise (the spans stay
 * mapped), empty spans by munmap, in the amounts the retention policy (retain.c) allows.
 *
 * Layer: 5 returning memory
 * Calls: os.c, options.c, retain.c, span.c
 *
 * Owns: the purge lock and the purge counters. Decides how, not when: purge.c runs these on
 * its schedule, malloc_trim and a failed mapping ask for everything.
 */
#include "internal.h"

static struct purge_state {
    /* Purges run one at a time under this lock, which fork() takes too (before the global
     * lock): units out of their span's map while madvise runs would otherwise be lost to a
     * child forked in that moment, where no thread is left to put them back. */
    vt_lock_t lock;
    uint64_t purged_bytes, purges; /* global lock */
    _Atomic bool purging_excess;   /* one thread at a time purges above the budget */
} p = {.lock = VT_LOCK_INIT};

/* Units being purged: taken out of their span's free map while madvise runs without the lock,
 * so that no thread can take them and write into memory the kernel is dropping. */
typedef struct purge_item {
    vt_span_t *span;
    uint64_t units;  /* taken out of the free map while madvise runs */
    uint64_t failed; /* those whose madvise failed */
} purge_item_t;

/* Spans whose units one round takes out of their maps (the items live on the stack). */
#define PURGE_BATCH 64

/* Up to PURGE_BATCH spans' free units that have been free for at least age_ms, at most
 * `*budget` of them, taken out of their spans' maps. Lock held. */
static size_t collect_aged_locked(purge_item_t *items, uint32_t age_ms, uint32_t *budget)
{
    size_t n = 0;
    uint32_t left = *budget;
    uint32_t now = vt_os_now_ms();
    for (unsigned r = VT_EMPTY_RUN; r >= 1 && n < PURGE_BATCH && left > 0; r--) {
        vt_span_t *next;
        for (vt_span_t *span = vt_span_listed(r); span != NULL && n < PURGE_BATCH && left > 0;
             span = next) {
            next = span->link.next; /* read first: the span moves to another list below */
            uint64_t aged = 0;
            uint64_t candidates = span->dirty_units & span->free_units & ~span->unpurgeable;
            for (uint64_t m = candidates; m != 0 && left > 0; m &= m - 1) {
                unsigned u = (unsigned)__builtin_ctzll(m);
                if ((uint32_t)(now - span->freed_ms[u]) >= age_ms) {
                    aged |= (uint64_t)1 << u;
                    left--;
                }
            }
            if (aged == 0)
                continue;
            span->free_units &= ~aged;
            vt_span_set_dirty(span, span->dirty_units & ~aged);
            vt_span_relist(span); /* out of the index's count while madvise runs */
            items[n++] = (purge_item_t){span, aged, 0};
        }
    }
    *budget = left;
    return n;
}

/* madvise for each run of consecutive units of the items; the bytes returned. Lock not held. */
static size_t purge_items(purge_item_t *items, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t m = items[i].units;
        while (m != 0) {
            unsigned first = (unsigned)__builtin_ctzll(m);
            unsigned len = (unsigned)__builtin_ctzll(~(m >> first));
            uint64_t run = len == 64 ? ~(uint64_t)0 : (((uint64_t)1 << len) - 1) << first;
            m &= ~run;
            if (vt_os_purge((uint8_t *)items[i].span + ((size_t)first << VT_UNIT_SHIFT),
                            (size_t)len << VT_UNIT_SHIFT))
                bytes += (size_t)len << VT_UNIT_SHIFT;
            else
                items[i].failed |= run; /* still holds its bytes: dirty, not returned */
        }
    }
    return bytes;
}

/* Gives back to the OS the memory of at most `budget` free units that have been free for at
 * least age_ms (every dirty free unit when age_ms is 0), a batch of spans at a time. The
 * system calls run with the lock dropped; the mappings stay, so the number of VMAs does not
 * change. Returns the bytes purged. Lock not held. */
static size_t purge(uint32_t age_ms, uint32_t budget)
{
    size_t total = 0;
    vt_mutex_lock(&p.lock);
    while (budget > 0) {
        purge_item_t items[PURGE_BATCH];
        vt_span_lock();
        size_t n = collect_aged_locked(items, age_ms, &budget);
        vt_span_unlock();
        if (n == 0)
            break;
        size_t bytes = purge_items(items, n);
        vt_span_lock();
        for (size_t i = 0; i < n; i++) {
            vt_span_t *span = items[i].span;
            span->free_units |= items[i].units;
            span->unpurgeable |= items[i].failed;
            vt_span_set_dirty(span, span->dirty_units | items[i].failed);
            vt_span_relist(span);
        }
        p.purged_bytes += bytes;
        p.purges++;
        vt_span_unlock();
        total += bytes;
        if (n < PURGE_BATCH)
            break;
    }
    vt_mutex_unlock(&p.lock);
    return total;
}

#define PURGE_ALL UINT32_MAX

/* Above the dirty budget: purges the units freed longest ago until the dirty ones are down to
 * three quarters of the budget (so that a load hovering at the budget does not purge a unit at
 * every call): those older than the purge delay, then half of it, a quarter, and an eighth.
 * Units freed more recently than that are spared: they are the working set of a load that is
 * moving between sizes, and purging them would only fault them in again a moment later (the
 * budget is soft for that long). One thread at a time; the others go on. */
void vt_spanpurge_excess(void)
{
    if (vt_likely(vt_span_dirty_count() <= vt_span_dirty_budget()))
        return;
    bool idle = false;
    /* Relaxed: the flag only elects a thread; purge() synchronises by the lock. */
    if (!atomic_compare_exchange_strong_explicit(&p.purging_excess, &idle, true,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    uint32_t target = vt_span_dirty_budget() / 4 * 3;
    for (uint32_t age = vt_options.purge_ms;; age /= 2) {
        purge(age, PURGE_ALL);
        if (age <= vt_options.purge_ms / 8 || vt_span_dirty_count() <= target)
            break;
    }
    atomic_store_explicit(&p.purging_excess, false, memory_order_relaxed);
}

/* Unmaps empty spans: those beyond what the recent peak demand needs
 * (vt_retain_spans_needed), or (by_demand false) all of them. One munmap gives back a whole
 * span, resident or not, and the mappings kept are the ones the load is likely to fill again.
 * A span whose units another thread is purging right now is not listed as empty (its units
 * are out of its map): that thread puts them back. True when a span went. Lock not held. */
bool vt_spanpurge_unmap_empty(bool by_demand)
{
    vt_span_t *release = NULL;
    vt_span_lock();
    uint32_t keep = by_demand ? vt_retain_spans_needed(vt_os_now_ms()) : 0;
    for (vt_span_t *span = vt_span_listed(VT_EMPTY_RUN), *next;
         span != NULL && vt_span_count_locked() > keep; span = next) {
        next = span->link.next;
        vt_span_leave_locked(span, &release);
    }
    vt_span_unlock();
    bool released = release != NULL;
    vt_span_release(release);
    return released;
}

/* Returns the resident free units that the recent peak demand does not account for
 * (vt_retain_free_allowed), those freed longest ago first: older than the window, then half
 * of it, and so on down to the ones freed just now. Lock not held. */
void vt_spanpurge_beyond_demand(uint32_t now)
{
    for (uint32_t age = vt_options.purge_ms;; age /= 2) {
        vt_span_lock();
        uint32_t dirty = vt_span_dirty_count();
        uint32_t allowed = vt_retain_free_allowed(now);
        vt_span_unlock();
        if (dirty <= allowed)
            return;
        purge(age, dirty - allowed);
        if (age == 0)
            return;
    }
}

/* Returns up to `most` resident free units beyond what the recent peak demand and
 * VTMALLOC_OVERSHOOT_MB allow (retain.c: the overshoot), those freed longest ago first, as
 * vt_spanpurge_beyond_demand does: as many as the runs that asked for it took from the
 * kernel, so that the resident set is traded, not grown. Purging all that the demand alone
 * does not account for at once brought the soak benchmark's peak lower still (87-91 MiB
 * against 96-103 in its quick mode) but tripled its page faults: at a phase's start the demand
 * is at a new high, and holes the load needs again a moment later went back. Lock not held. */
void vt_spanpurge_overshoot(uint32_t now, uint32_t most)
{
    for (uint32_t age = vt_options.purge_ms; most > 0; age /= 2) {
        vt_span_lock();
        uint32_t dirty = vt_span_dirty_count();
        uint32_t allowed = vt_retain_overshoot_allowed(now);
        vt_span_unlock();
        if (dirty <= allowed)
            return;
        size_t units = purge(age, dirty - allowed < most ? dirty - allowed : most) >> VT_UNIT_SHIFT;
        most -= units < most ? (uint32_t)units : most;
        if (age == 0)
            return;
    }
}

/* Every free unit's memory, whatever the demand (malloc_trim). */
size_t vt_spanpurge_all(void)
{
    return purge(0, PURGE_ALL);
}

/* Lock held. */
void vt_spanpurge_stats_locked(vt_stats_t *st)
{
    st->purged_bytes_total = p.purged_bytes;
    st->purges_total = p.purges;
}

void vt_spanpurge_fork_prepare(void)
{
    vt_lock_take(&p.lock);
}

void vt_spanpurge_fork_parent(void)
{
    vt_lock_give(&p.lock);
}

void vt_spanpurge_fork_child(void)
{
    atomic_store_explicit(&p.purging_excess, false, memory_order_relaxed);
    vt_lock_give(&p.lock); /* held by this thread's parent copy: see span.c */
}
