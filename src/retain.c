/*
 * retain.c - the retention policy: how much free memory stays resident, and how many spans
 * stay mapped, decided by the demand the process has recently shown, not by events.
 *
 * Owns: the window of recent demand. Calls: nothing; global.c feeds it and asks it, under the
 * global lock, which also protects everything here.
 *
 * Demand is the number of units taken out of spans: in pages, in threads' stashes, in large
 * blocks. The window keeps its highest value over the last VTMALLOC_PURGE_MS, in
 * RETAIN_SLOTS slots that each cover a part of it, so the peak forgets old highs part by
 * part. Free memory that this recent peak accounts for (the peak minus what is in use now) is
 * what the process is about to need again: a server between two waves of connections, a
 * phase that frees a working set and builds the next. It stays resident, so reusing it costs
 * no page fault and no TLB shootdown. Free memory beyond that is returned (madvise), the units
 * freed longest ago first, and empty spans beyond the peak's need are unmapped. So RSS never
 * stays above the peak demand of the last window, and when demand falls for a whole window,
 * memory goes back: slow enough to ride out the gaps of a server's load, quick enough that a
 * process that went quiet is lean a window later.
 *
 * Why not the old triggers: returning everything when threads exit, or when a span empties,
 * returned memory exactly when the next wave of threads was about to fault it back in (a
 * fault costs about 5 us here, and each also shoots down the TLBs of every CPU running the
 * process).
 */
#include "internal.h"

/* The window is cut in this many slots; the peak is the highest of them. More slots make the
 * peak forget an old high more smoothly, at the cost of a longer scan (a few dozen bytes). */
#define RETAIN_SLOTS 8

/* Free units that are always allowed to stay resident (1 MiB): a small process would
 * otherwise purge, and fault back in, at every pass. */
#define RETAIN_FLOOR_UNITS 16

static struct retain {
    uint32_t slot_max[RETAIN_SLOTS]; /* highest demand seen in each slot's time */
    uint32_t slot_start_ms;          /* when the current slot began */
    unsigned slot;                   /* the current slot */
    uint32_t demand;                 /* units out of spans now */
} r;

/* The slot width: the window over the slots, at least a millisecond. */
static uint32_t slot_ms(void)
{
    uint32_t ms = vt_options.purge_ms / RETAIN_SLOTS;
    return ms ? ms : 1;
}

/* Moves the current slot forward to `now`, starting each new slot at today's demand. */
static void advance(uint32_t now)
{
    uint32_t width = slot_ms();
    for (unsigned steps = 0; (uint32_t)(now - r.slot_start_ms) >= width; steps++) {
        if (steps >= RETAIN_SLOTS) { /* idle for a whole window: every slot is stale */
            for (unsigned i = 0; i < RETAIN_SLOTS; i++)
                r.slot_max[i] = r.demand;
            r.slot_start_ms = now;
            return;
        }
        r.slot = (r.slot + 1) % RETAIN_SLOTS;
        r.slot_max[r.slot] = r.demand;
        r.slot_start_ms += width;
    }
}

void vt_retain_demand_changed(int32_t delta_units, uint32_t now)
{
    r.demand += (uint32_t)delta_units;
    advance(now);
    if (r.demand > r.slot_max[r.slot])
        r.slot_max[r.slot] = r.demand;
}

/* Units that were given back after lying unused for a while (a quiet thread's stash): they
 * were held, not needed, so they leave the peak of every slot too, down to today's demand.
 * Called after vt_retain_demand_changed has taken them out of the demand. */
void vt_retain_demand_forgotten(uint32_t units, uint32_t now)
{
    advance(now);
    for (unsigned i = 0; i < RETAIN_SLOTS; i++) {
        uint32_t lowered = r.slot_max[i] > units ? r.slot_max[i] - units : 0;
        r.slot_max[i] = lowered > r.demand ? lowered : r.demand;
    }
}

uint32_t vt_retain_peak(uint32_t now)
{
    advance(now);
    uint32_t peak = r.demand;
    for (unsigned i = 0; i < RETAIN_SLOTS; i++)
        if (r.slot_max[i] > peak)
            peak = r.slot_max[i];
    return peak;
}

uint32_t vt_retain_free_allowed(uint32_t now)
{
    uint32_t peak = vt_retain_peak(now);
    uint32_t allowed = peak - r.demand;
    return allowed > RETAIN_FLOOR_UNITS ? allowed : RETAIN_FLOOR_UNITS;
}

uint32_t vt_retain_spans_needed(uint32_t now)
{
    uint32_t per_span = VT_SPAN_UNITS - 1;
    return (vt_retain_peak(now) + per_span - 1) / per_span + vt_options.reserve_spans;
}

uint32_t vt_retain_demand(void)
{
    return r.demand;
}
