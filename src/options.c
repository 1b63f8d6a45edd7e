/*
 * options.c - the VTMALLOC_* environment variables, read once at start-up.
 *
 * Layer: 1 options
 * Calls: report.c, os.c
 *
 * Owns: vt_options and the tables that document every option (tests/packaging/check_docs.py
 * holds the launcher's --help and the manual pages to them); mallopt. Scans `environ`
 * directly: getenv is not guaranteed to be usable
 * this early, and nothing here may allocate. A bad value is reported on stderr and the
 * default kept; an unknown VTMALLOC_ variable is reported too, since it is most likely a typo.
 */
#include "internal.h"

#include <signal.h>

extern char **environ;

/* Defaults: see the table below for why each is what it is. */
vt_options_t vt_options = {
    .class_pages = 8,
    /* 512 KiB, 512 KiB and 16 MiB, as they were with 64 KiB units: with 8, 8 and 4 of 32 KiB
     * units, a loop over a 512 KiB block and pages of 256 KiB blocks went through the global
     * lock, and server waves ran at 0.86x (bench/RESULTS.md) */
    .stash_units = 16,
    /* a loop over a few classes of 40-256 KiB blocks keeps its pages, and so do the connection
     * threads of server waves (512 KiB cost them 8 % of their throughput); the process together
     * holds no more (keptlong.c: soak long peaked 2-3 MiB higher than with 512, against 5-8
     * with 4096; bench/results/2026-12-07-ik) */
    .kept_long_kb = 2048,
    .batch_units = 16,
    .reserve_spans = 8,
    .purge_ms = 1000,
    .retain_ms = 0,
    .dirty_pct = 100,
    .overshoot_mb = 6,
    .purge_thread = 2,
    .large_cache_mb = 4096,
    .lock_spins = 0,
    .backing = VT_BACKING_MMAP,
    .stats = 0,
    .on_error = VT_ON_ERROR_ABORT,
    .prof_sample = 0,
    .prof_signal = 0,
    .stats_signal = 0,
};

/* The options whose values are text (file names): copied here from the environment, so that a
 * program that changes its environment later changes nothing. Empty: not set. */
char vt_options_prof_dump_at_exit[VT_OPTION_TEXT_MAX];
char vt_options_prof_prefix[VT_OPTION_TEXT_MAX] = "vtmalloc";
char vt_options_stats_prefix[VT_OPTION_TEXT_MAX] = "vtmalloc";

typedef struct option {
    const char *name; /* after the VTMALLOC_ prefix */
    uint32_t *field;
    uint32_t min, max;   /* numbers: accepted range */
    const char *choices; /* words: accepted values, comma separated, in enum order */
    const char *meaning;
} option_t;

static const option_t table[] = {
    {"CLASS_PAGES", &vt_options.class_pages, 1, 65535, NULL,
     "pages a thread keeps attached per size class; more means fewer global-lock trips for "
     "threads that free much, at the cost of memory other threads cannot use"},
    {"STASH_UNITS", &vt_options.stash_units, 0, 65536, NULL,
     "empty 32 KiB units a thread keeps for any size class before returning them"},
    {"KEPT_LONG_KB", &vt_options.kept_long_kb, 0, 1048576, NULL,
     "KiB of empty pages of blocks above 32 KiB that threads keep for their next block of the "
     "same class, the whole process's and any one thread's; a thread that stops calling the "
     "allocator for VTMALLOC_PURGE_MS no longer counts, though its pages stay its own"},
    {"BATCH_UNITS", &vt_options.batch_units, 1, 64, NULL,
     "32 KiB units a thread takes from the global cache per lock"},
    {"RESERVE_SPANS", &vt_options.reserve_spans, 0, 65536, NULL,
     "empty 2 MiB spans kept mapped beyond what the recent peak demand needs"},
    {"PURGE_MS", &vt_options.purge_ms, 0, 3600000, NULL,
     "milliseconds of quiet after which free memory goes back to the OS: a process whose "
     "demand for memory has not moved for this long keeps only what it uses (it waits longer, "
     "up to the retention window, after pauses that the demand came back from); the purge "
     "passes run four times in this time"},
    {"RETAIN_MS", &vt_options.retain_ms, 0, 7200000, NULL,
     "the retention window in milliseconds while the process is busy: free memory that the "
     "peak demand of the last window accounts for stays resident, the rest is returned to the "
     "OS (madvise) and empty spans beyond the peak's need are unmapped; 0: eight "
     "times VTMALLOC_PURGE_MS"},
    {"DIRTY_PCT", &vt_options.dirty_pct, 0, 100, NULL,
     "free units that may stay resident before VTMALLOC_PURGE_MS has passed, in percent of "
     "the units of the spans held (at least 1 MiB); beyond it the units freed longest ago "
     "(but not in the last eighth of VTMALLOC_PURGE_MS) are returned to the OS at once; "
     "100: no such cap"},
    {"OVERSHOOT_MB", &vt_options.overshoot_mb, 0, 65536, NULL,
     "MiB by which the free memory kept resident may exceed what the recent peak demand "
     "accounts for while the load takes memory the kernel must fault in (a long run that the "
     "resident free holes cannot hold); beyond it the free memory freed longest ago is "
     "returned at once, as much as was taken, so that the resident set is traded, not grown; "
     "more means fewer page faults and a higher peak"},
    {"PURGE_THREAD", &vt_options.purge_thread, 0, 2, NULL,
     "a background thread runs the purge passes, so memory goes back to the OS even when no "
     "thread calls the allocator any more: 0 never, 1 from the first thread cache, 2 from the "
     "second (a threaded process)"},
    {"LARGE_CACHE", &vt_options.large_cache_mb, 0, 65536, NULL,
     "most MiB of freed mapped large blocks (above 1 MiB) kept for reuse; below it, the "
     "recent peak of live large blocks decides what is kept; 0 unmaps them on free"},
    {"LOCK_SPINS", &vt_options.lock_spins, 0, 100000, NULL,
     "times a thread that finds an allocator lock held checks it again, pausing the CPU "
     "between checks, before it sleeps on it (each check takes some tens of nanoseconds); "
     "spinning spares the system calls of a sleep and a wake-up, but on 2 CPUs it raised "
     "the peak RSS of the server loads and bought no speed, so 0, sleep at once, is the "
     "default"},
    {"BACKING", &vt_options.backing, 0, 0, "mmap,malloc",
     "where spans and large blocks come from: anonymous mmap, or the system allocator"},
    {"STATS", &vt_options.stats, 0, 1, NULL, "1: print statistics to stderr at exit"},
    {"ON_ERROR", &vt_options.on_error, 0, 0, "abort,warn",
     "on a detected double or invalid free: abort, or warn and leak the block"},
    {"PROF_SAMPLE", &vt_options.prof_sample, 0, 1073741824, NULL,
     "heap profiling: mean bytes allocated between two sampled allocations; 0: off"},
    {"PROF_SIGNAL", &vt_options.prof_signal, 0, 64, NULL,
     "a signal (a number, or USR1 or USR2) on which a heap profile is written to "
     "PREFIX.PID.N.heap; 0: none"},
    {"STATS_SIGNAL", &vt_options.stats_signal, 0, 64, NULL,
     "a signal (a number, or USR1 or USR2) on which the statistics are written to "
     "PREFIX.PID.N.stats; 0: none"},
};

/* Options whose value is text. */
typedef struct text_option {
    const char *name;
    char *text; /* VT_OPTION_TEXT_MAX bytes */
    const char *meaning;
} text_option_t;

static const text_option_t texts[] = {
    {"PROF_DUMP_AT_EXIT", vt_options_prof_dump_at_exit,
     "file the heap profile of what is still allocated is written to at exit (%p: the pid)"},
    {"PROF_PREFIX", vt_options_prof_prefix,
     "the start of the names of heap profiles written on PROF_SIGNAL (default vtmalloc)"},
    {"STATS_PREFIX", vt_options_stats_prefix,
     "the start of the names of statistics written on STATS_SIGNAL (default vtmalloc)"},
};

static bool starts_with(const char *s, const char *prefix, const char **rest)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return false;
    *rest = s;
    return true;
}

/* Parses a decimal number in [min, max]; false on anything else. */
static bool parse_number(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Finds `value` among comma-separated choices; its index, or -1. */
static int parse_choice(const char *value, const char *choices)
{
    int index = 0;
    const char *c = choices;
    while (*c) {
        const char *v = value;
        while (*c && *c != ',' && *v == *c) {
            v++;
            c++;
        }
        if (*v == '\0' && (*c == ',' || *c == '\0'))
            return index;
        while (*c && *c != ',')
            c++;
        if (*c == ',')
            c++;
        index++;
    }
    return -1;
}

/* The signal options also take USR1 and USR2, with or without SIG. */
static bool parse_signal_name(const char *name, const char *value, uint32_t *out)
{
    const char *rest;
    if (!starts_with(name, "PROF_SIGNAL", &rest) && !starts_with(name, "STATS_SIGNAL", &rest))
        return false;
    if (starts_with(value, "SIG", &rest))
        value = rest;
    if (starts_with(value, "USR", &rest) && (rest[0] == '1' || rest[0] == '2') && !rest[1]) {
        *out = rest[0] == '1' ? SIGUSR1 : SIGUSR2;
        return true;
    }
    return false;
}

static void apply(const option_t *opt, const char *value)
{
    uint32_t parsed;
    if (parse_signal_name(opt->name, value, &parsed)) {
        *opt->field = parsed;
        return;
    }
    if (opt->choices != NULL) {
        int index = parse_choice(value, opt->choices);
        if (index >= 0) {
            *opt->field = (uint32_t)index;
            return;
        }
        vt_message("vtmalloc: VTMALLOC_%s=%s is not valid (expected one of: %s); "
                   "keeping the default\n",
                   opt->name, value, opt->choices);
        return;
    }
    if (parse_number(value, opt->min, opt->max, &parsed)) {
        *opt->field = parsed;
        return;
    }
    vt_message("vtmalloc: VTMALLOC_%s=%s is not valid (expected a number from %u to %u); "
               "keeping the default %u\n",
               opt->name, value, opt->min, opt->max, *opt->field);
}

/* Copies a text value; one too long to keep is reported and ignored. True: the name matched. */
static bool apply_text(const text_option_t *opt, const char *value)
{
    size_t len = strlen(value);
    if (len >= VT_OPTION_TEXT_MAX) {
        vt_message("vtmalloc: VTMALLOC_%s is longer than %u characters; ignored\n", opt->name,
                   (unsigned)VT_OPTION_TEXT_MAX - 1);
        return true;
    }
    memcpy(opt->text, value, len + 1);
    return true;
}

void vt_options_load(void)
{
    for (char **env = environ; env != NULL && *env != NULL; env++) {
        const char *rest;
        if (!starts_with(*env, "VTMALLOC_", &rest))
            continue;
        bool known = false;
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
            const char *value;
            if (starts_with(rest, table[i].name, &value) && *value == '=') {
                apply(&table[i], value + 1);
                known = true;
                break;
            }
        }
        for (size_t i = 0; !known && i < sizeof(texts) / sizeof(texts[0]); i++) {
            const char *value;
            if (starts_with(rest, texts[i].name, &value) && *value == '=')
                known = apply_text(&texts[i], value + 1);
        }
        if (!known)
            vt_message("vtmalloc: unknown variable %s ignored\n", *env);
    }
    if (vt_options.on_error != VT_ON_ERROR_ABORT) /* abort is report.c's default */
        vt_report_set_on_error((vt_on_error_t)vt_options.on_error);
    vt_os_lock_spins = vt_options.lock_spins; /* the lock's slow path is os.c's (lock.h) */
}

/* glibc's tuning parameters (M_MMAP_THRESHOLD, M_ARENA_MAX, ...) describe its own heap; none
 * applies here. Accepted and ignored, so programs that set them keep working. */
int vt_api_mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}
