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
 * unmapped. So RSS never stays above the peak demand of the last window (nor climbs more than
 * VTMALLOC_OVERSHOOT_MB past it between passes: the overshoot, below), and when demand falls for
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
 * later, however long the window; or a little later, up to the window, when its earlier pauses
 * were followed by the demand they had given back (the quiet time learned from regret, below).
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

/* ---- The quiet time, learned from regret ------------------------------------------------ */

/* A quiet spell gives back what the window held; if the same demand comes back soon, that
 * memory was given back just before it was needed (a process that works in bursts a few
 * seconds apart: bench/patterns -p bursts, a batch job, a server between waves of clients).
 * So the quiet time grows to outlast the gap that was seen, up to the busy window, and goes back
 * down by halves after each spell whose memory stayed away for a window. A process that stops
 * for good is still lean one quiet time after it stops, and that time never exceeds the window
 * that a busy process keeps its peak for anyway. */
static struct {
    _Atomic uint32_t ms; /* the quiet time learned; 0: VTMALLOC_PURGE_MS. Relaxed: a setting */
    /* Global lock: the last spell that gave memory back, watched for a window (gave_ms 0: none). */
    uint32_t gave_ms;  /* when it began to give back */
    uint32_t spell_ms; /* last_change_ms of that spell: a new value is a new spell */
    uint64_t level;    /* units in use then */
    uint64_t gave;     /* units of the window's peak it let go */
} quiet;

/* Spells that let go of less than 4 MiB are not worth watching: the floor stays resident
 * anyway. */
#define QUIET_WATCH_MIN_UNITS ((uint64_t)(((size_t)4 << 20) >> VT_UNIT_SHIFT))

/* The quiet time: the learned one while it lies between VTMALLOC_PURGE_MS and the window (a
 * change of either option since makes it start again from PURGE_MS). */
static uint32_t quiet_ms(void)
{
    uint32_t ms = atomic_load_explicit(&quiet.ms, memory_order_relaxed);
    return ms > vt_options.purge_ms && ms <= window_ms() ? ms : vt_options.purge_ms;
}

bool vt_retain_quiet(uint32_t now)
{
    uint32_t last = atomic_load_explicit(&last_change_ms, memory_order_relaxed);
    return (int32_t)(now - last) >= (int32_t)quiet_ms();
}

/* A spell watched for a whole window without its demand coming back: the quiet time halves. */
static void quiet_expire(uint32_t now)
{
    if (quiet.gave_ms == 0 || (int32_t)(now - quiet.gave_ms) < (int32_t)window_ms())
        return;
    quiet.gave_ms = 0;
    atomic_store_explicit(&quiet.ms, quiet_ms() / 2, memory_order_relaxed);
}

/* The units' window is about to forget its peak because the process went quiet: the first
 * pass of a spell that lets go of much starts watching it. Global lock. */
static void quiet_watch(uint64_t peak, uint32_t now)
{
    uint32_t spell = atomic_load_explicit(&last_change_ms, memory_order_relaxed);
    quiet_expire(now);
    if (quiet.gave_ms != 0 || spell == quiet.spell_ms || peak < units.level + QUIET_WATCH_MIN_UNITS)
        return;
    quiet.spell_ms = spell;
    quiet.gave_ms = now ? now : 1;
    quiet.level = units.level;
    quiet.gave = peak - units.level;
}

/* Demand rose: if half of what the watched spell let go is back in use, the spell came too
 * early. The next one waits for the pause just seen (from the last change before the spell to
 * now) and half as long again, within the window. Global lock. */
static void quiet_regret(uint32_t now)
{
    quiet_expire(now);
    if (quiet.gave_ms == 0 || units.level < quiet.level + quiet.gave / 2)
        return;
    uint32_t gap = now - quiet.spell_ms; /* since the last change before the spell */
    uint32_t ms = gap + gap / 2, cap = window_ms();
    quiet.gave_ms = 0;
    atomic_store_explicit(&quiet.ms, ms < cap ? ms : cap, memory_order_relaxed);
}

/* For tests that change the clocks: forget what was learned. No pass may run meanwhile. */
void vt_retain_quiet_reset(void)
{
    atomic_store_explicit(&quiet.ms, 0, memory_order_relaxed);
    quiet.gave_ms = 0;
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
#define RETAIN_FLOOR_UNITS ((uint32_t)(((size_t)1 << 20) >> VT_UNIT_SHIFT))

void vt_retain_demand_changed(int32_t delta_units, uint32_t now)
{
    vt_window_change(&units, delta_units, now);
    if (delta_units > 0)
        quiet_regret(now);
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

/* The units' window forgets its peaks when the process went quiet; the spell is watched. */
static void units_quiet_forget(uint32_t now)
{
    if (!vt_retain_quiet(now))
        return;
    quiet_watch(vt_window_peak(&units, now), now);
    vt_window_forget(&units, UINT64_MAX, now);
}

uint32_t vt_retain_free_allowed(uint32_t now)
{
    units_quiet_forget(now);
    uint64_t allowed = vt_window_peak(&units, now) - units.level;
    return allowed > RETAIN_FLOOR_UNITS ? (uint32_t)allowed : RETAIN_FLOOR_UNITS;
}

uint32_t vt_retain_overshoot_allowed(uint32_t now)
{
    uint64_t slack = ((uint64_t)vt_options.overshoot_mb << 20) >> VT_UNIT_SHIFT;
    uint64_t allowed = vt_retain_free_allowed(now) + slack;
    return allowed < UINT32_MAX ? (uint32_t)allowed : UINT32_MAX;
}

/* ---- The overshoot ---------------------------------------------------------------------- */

/* The resident set may not grow past the recent peak demand by more than VTMALLOC_OVERSHOOT_MB.
 * A run that takes units the kernel must fault in (fresh or purged) while more free units are
 * resident than that allows asks for as many resident ones to be returned at once
 * (vt_purge_after_take, spanpurge.c), so that the resident set is traded, not grown. Those
 * resident free units lie in holes the run could not use: a long run needs contiguous units,
 * and at a shift in the size mix the holes the last phase left are too short. Without this
 * they stayed resident beside the new units until the next pass, a quarter of
 * VTMALLOC_PURGE_MS later, when the peak had been reached: the soak benchmark's peak RSS stood
 * 17-20 MiB above its peak demand. The slack is there because a hole traded away is faulted in
 * again when the next phase needs it: with none, the soak benchmark's page faults more than
 * doubled.
 *
 * The units asked for: added to under the global lock, taken whole by an exchange without it.
 * Relaxed, because it only asks for a purge, which synchronises by the locks it takes; a
 * request that two threads see, or none until the next slow path, purges the same units a
 * call earlier or later. */
static _Atomic uint32_t overshoot;

void vt_retain_clean_taken(uint32_t clean, uint32_t dirty, uint32_t now)
{
    if (dirty > vt_retain_overshoot_allowed(now))
        atomic_fetch_add_explicit(&overshoot, clean, memory_order_relaxed);
}

uint32_t vt_retain_take_overshoot(void)
{
    if (vt_likely(atomic_load_explicit(&overshoot, memory_order_relaxed) == 0))
        return 0; /* the common case: a load, no write to a shared line */
    return atomic_exchange_explicit(&overshoot, 0, memory_order_relaxed);
}

uint32_t vt_retain_spans_needed(uint32_t now)
{
    units_quiet_forget(now);
    uint64_t per_span = VT_SPAN_UNITS - 1;
    return (uint32_t)((vt_window_peak(&units, now) + per_span - 1) / per_span) +
           vt_options.reserve_spans;
}
