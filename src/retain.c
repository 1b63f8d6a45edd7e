/*
 * retain.c - the retention policy: how much free memory stays resident, how many spans stay
 * mapped and which freed large mappings are kept, decided by the demand the process has
 * recently shown, not by events.
 *
 * Layer: 2 retention policy
 * Calls: options.c
 *
 * Owns: the windows of recent demand (vt_window_t) and the one of spans' units. span.c feeds
 * the units' window under the global lock, spanpurge.c asks it what to keep; large.c keeps a
 * window of its own (bytes of mapped large blocks) under its lock. It calls nothing but reads
 * the options: the layers that hold memory ask it, and it sits below them all.
 *
 * Demand is the number of units taken out of spans: in pages, in threads' stashes, in large
 * blocks. The window keeps its highest value over the last VTMALLOC_RETAIN_MS (eight times
 * VTMALLOC_PURGE_MS unless set), in VT_WINDOW_SLOTS slots that each cover a part of it, so the
 * peak forgets old highs part by part. Free memory that this recent peak accounts for (the peak
 * minus what is in use now) is what the process is about to need again: a server between two waves
 * of connections, a phase that frees a working set and builds the next. It stays resident, so
 * reusing it costs no page fault and no TLB shootdown. Free memory beyond that is returned
 * (madvise), the units freed longest ago first, and empty spans beyond the peak's need are
 * unmapped. So RSS never stays above the peak demand of the last window, and when demand falls for
 * a whole window, memory goes back: slow enough to ride out the gaps of a server's load. Freed
 * large mappings (above 960 KiB) follow the same rule with a window of their own (large.c): kept
 * for reuse while the recent peak of live large blocks accounts for them.
 *
 * Two clocks, because a process between two phases of its work and one that has stopped look
 * alike for a while. While demand keeps moving, the window is long: a server whose phases last a
 * second or more (the soak benchmark's long mode: small objects for a second, then buffers, then
 * large blocks, again and again) finds the memory of the phase before last still resident. With
 * a one-second window it gave each phase's memory back during the next and faulted it in again
 * a second later: 163 page faults per million operations against tcmalloc's 105; with two
 * seconds and the quiet clock, 97-111, at the same peak. When no window has changed for
 * VTMALLOC_PURGE_MS, nothing is being taken or given back at the scale of units or large
 * mappings: the process went quiet, the windows forget their past peaks, and the next pass
 * returns all free memory beyond what is in use. So a quiet process is lean about a PURGE_MS
 * later, however long the window.
 *
 * Why not the old triggers: returning everything when threads exit, or when a span empties,
 * returned memory exactly when the next wave of threads was about to fault it back in (a
 * fault costs about 5 us here, and each also shoots down the TLBs of every CPU running the
 * process).
 */
#include "internal.h"

/* The demand of spans' units, under the global lock (span.c). */
static vt_window_t units;

/* When a window last changed (vt_os_now_ms), for vt_retain_quiet. The windows live under two
 * locks (the global one, large.c's), so this is an atomic of its own; relaxed, because it
 * orders nothing: it is a clock reading that a pass compares with its own. Two changes under
 * different locks may store their readings out of order, leaving the older one: the process
 * then looks quiet a few milliseconds early, once, which costs at most one early purge. */
static _Atomic uint32_t last_change_ms;

/* The window while busy, in quiet times (VTMALLOC_PURGE_MS), unless VTMALLOC_RETAIN_MS sets it.
 * The soak benchmark's long mode cycles through three phases, about 3.5 s a cycle. With a
 * window of two quiet times (2 s), each phase found part of the memory of the phase before last
 * returned and faulted it in again: 147-152 page faults a million operations, against
 * tcmalloc's 109. With eight (8 s, near jemalloc's 10 s dirty decay), 73-77, and no higher
 * peak (105.7-107.8 MiB against 108.7-109.7; bench/RESULTS.md). A quiet process still returns
 * its memory one quiet time after it stops, whatever the window. */
#define WINDOW_QUIET_TIMES 8

/* The window's length while the process is busy. */
static uint32_t window_ms(void)
{
    return vt_options.retain_ms ? vt_options.retain_ms : WINDOW_QUIET_TIMES * vt_options.purge_ms;
}

/* The slot width: the window over the slots, at least a millisecond. */
static uint32_t slot_ms(void)
{
    uint32_t ms = window_ms() / VT_WINDOW_SLOTS;
    return ms ? ms : 1;
}

/* Moves the current slot forward to `now`, starting each new slot at today's level. A `now`
 * older than the slot's start (read before another thread's change moved it on: callers read
 * the clock before they take the lock) moves nothing; as an unsigned difference it read as
 * almost 50 days of quiet and wiped every slot, so the peak of the window was lost. */
static void advance(vt_window_t *w, uint32_t now)
{
    uint32_t width = slot_ms();
    for (unsigned steps = 0; (int32_t)(now - w->slot_start_ms) >= (int32_t)width; steps++) {
        if (steps >= VT_WINDOW_SLOTS) { /* quiet for a whole window: every slot is stale */
            for (unsigned i = 0; i < VT_WINDOW_SLOTS; i++)
                w->slot_max[i] = w->level;
            w->slot_start_ms = now;
            return;
        }
        w->slot = (w->slot + 1) % VT_WINDOW_SLOTS;
        w->slot_max[w->slot] = w->level;
        w->slot_start_ms += width;
    }
}

/* The level moves by delta; the quiet clock is the caller's business. */
static void move_level(vt_window_t *w, int64_t delta, uint32_t now)
{
    w->level += (uint64_t)delta;
    advance(w, now);
    if (w->level > w->slot_max[w->slot])
        w->slot_max[w->slot] = w->level;
}

void vt_window_change(vt_window_t *w, int64_t delta, uint32_t now)
{
    atomic_store_explicit(&last_change_ms, now, memory_order_relaxed);
    move_level(w, delta, now);
}

/* What was held, not needed (a quiet thread's stash, a page that emptied before a quiet
 * spell): it leaves the peak of every slot too, down to today's level. Called after
 * vt_window_change has taken it out of the level. */
void vt_window_forget(vt_window_t *w, uint64_t amount, uint32_t now)
{
    advance(w, now);
    for (unsigned i = 0; i < VT_WINDOW_SLOTS; i++) {
        uint64_t lowered = w->slot_max[i] > amount ? w->slot_max[i] - amount : 0;
        w->slot_max[i] = lowered > w->level ? lowered : w->level;
    }
}

bool vt_retain_quiet(uint32_t now)
{
    uint32_t last = atomic_load_explicit(&last_change_ms, memory_order_relaxed);
    return (int32_t)(now - last) >= (int32_t)vt_options.purge_ms;
}

void vt_window_quiet_forget(vt_window_t *w, uint32_t now)
{
    if (vt_retain_quiet(now))
        vt_window_forget(w, UINT64_MAX, now);
}

uint64_t vt_window_peak(vt_window_t *w, uint32_t now)
{
    advance(w, now);
    uint64_t peak = w->level;
    for (unsigned i = 0; i < VT_WINDOW_SLOTS; i++)
        if (w->slot_max[i] > peak)
            peak = w->slot_max[i];
    return peak;
}

/* ---- Spans' units (span.c, under its lock) ---------------------------------------------- */

/* Free units that are always allowed to stay resident (1 MiB): a small process would
 * otherwise purge, and fault back in, at every pass. */
#define RETAIN_FLOOR_UNITS 16

void vt_retain_demand_changed(int32_t delta_units, uint32_t now)
{
    vt_window_change(&units, delta_units, now);
}

/* Units that lay unused for a quiet time or longer (a page that emptied before a quiet spell,
 * a quiet thread's stash, the profiler's pages nobody sampled into) leave the level and every
 * slot's peak, and leave the quiet clock alone: handing back what nobody used is housekeeping,
 * not the process taking or giving memory. Counted as a change, the profiler's unsampled pages,
 * which its pass hands back a VTMALLOC_PURGE_MS after the last sample, restarted the clock just
 * as the process went quiet, and the soak benchmark with profiling on still held 56 MiB (48 %
 * of its peak) two seconds after its load stopped, against 4 MiB without. */
void vt_retain_demand_idle(uint32_t count, uint32_t now)
{
    move_level(&units, -(int64_t)count, now);
    vt_window_forget(&units, count, now);
}

uint32_t vt_retain_free_allowed(uint32_t now)
{
    vt_window_quiet_forget(&units, now);
    uint64_t allowed = vt_window_peak(&units, now) - units.level;
    return allowed > RETAIN_FLOOR_UNITS ? (uint32_t)allowed : RETAIN_FLOOR_UNITS;
}

uint32_t vt_retain_spans_needed(uint32_t now)
{
    vt_window_quiet_forget(&units, now);
    uint64_t per_span = VT_SPAN_UNITS - 1;
    return (uint32_t)((vt_window_peak(&units, now) + per_span - 1) / per_span) +
           vt_options.reserve_spans;
}
