/*
 * dumps.c - heap profiles and statistics written to files on request: on a signal the operator
 * chose (VTMALLOC_PROF_SIGNAL, VTMALLOC_STATS_SIGNAL), and the profile at exit
 * (VTMALLOC_PROF_DUMP_AT_EXIT).
 *
 * Layer: 12 start and fork
 * Calls: os.c, report.c, options.c, profdump.c, stats.c
 *
 * Owns: the signal handler and the requests it notes. A signal arrives at any moment, in any
 * thread, maybe inside the allocator with a lock held: the handler only sets flags, and the
 * files are written where taking locks is safe, on the next allocation slow path (alloc.c) or
 * by the purge thread (purge.c, through the hook that init.c registers).
 */
#include "internal.h"

_Atomic bool vt_dumps_pending;
static _Atomic bool prof_requested, stats_requested;
static _Atomic uint32_t prof_dumps, stats_dumps; /* numbers in the files' names */

/* The handler only notes the request (atomic stores are async-signal-safe); the dump is written
 * on the next allocation slow path, or by the purge thread, where taking locks is safe.
 * Relaxed: the flags carry no data. */
static void on_dump_signal(int sig)
{
    if ((uint32_t)sig == vt_options.prof_signal)
        atomic_store_explicit(&prof_requested, true, memory_order_relaxed);
    if ((uint32_t)sig == vt_options.stats_signal)
        atomic_store_explicit(&stats_requested, true, memory_order_relaxed);
    atomic_store_explicit(&vt_dumps_pending, true, memory_order_relaxed);
}

static void catch_signal(uint32_t sig, const char *option)
{
    if (sig != 0 && !vt_os_catch_signal((int)sig, on_dump_signal))
        vt_message("vtmalloc: VTMALLOC_%s=%u: the signal cannot be caught; ignored\n", option, sig);
}

/* Writes PREFIX.PID.N.SUFFIX with `dump`, or says why not. */
static void dump_to_file(int (*dump)(const char *), const char *prefix, _Atomic uint32_t *serial,
                         const char *suffix)
{
    char path[VT_OPTION_TEXT_MAX + 64];
    uint32_t n = atomic_fetch_add_explicit(serial, 1, memory_order_relaxed) + 1;
    vt_format(path, sizeof(path), "%s.%d.%u.%s", prefix, (int)vt_os_process_id(), n, suffix);
    int saved = errno;
    if (dump(path) != 0)
        vt_message("vtmalloc: %s could not be written (errno %d)\n", path, errno);
    errno = saved;
}

/* Serves what the signals asked for; one thread at a time takes each request. */
void vt_dumps_serve(void)
{
    atomic_store_explicit(&vt_dumps_pending, false, memory_order_relaxed);
    if (atomic_exchange_explicit(&prof_requested, false, memory_order_relaxed))
        dump_to_file(vt_prof_dump, vt_options_prof_prefix, &prof_dumps, "heap");
    if (atomic_exchange_explicit(&stats_requested, false, memory_order_relaxed))
        dump_to_file(vt_stats_dump, vt_options_stats_prefix, &stats_dumps, "stats");
}

void vt_dumps_serve_if_pending(void)
{
    if (atomic_load_explicit(&vt_dumps_pending, memory_order_relaxed))
        vt_dumps_serve();
}

/* VTMALLOC_PROF_DUMP_AT_EXIT: what is still allocated at exit (a leak report), with %p in the
 * name replaced by the process id. */
void vt_dumps_at_exit(void)
{
    if (vt_options.prof_sample == 0 || vt_options_prof_dump_at_exit[0] == '\0')
        return;
    char path[VT_OPTION_TEXT_MAX + 16];
    size_t n = 0;
    for (const char *t = vt_options_prof_dump_at_exit; *t != '\0' && n + 16 < sizeof(path); t++) {
        if (t[0] == '%' && t[1] == 'p') {
            n += vt_format(path + n, sizeof(path) - n, "%d", (int)vt_os_process_id());
            t++;
        } else {
            path[n++] = *t;
        }
    }
    path[n] = '\0';
    if (vt_prof_dump(path) != 0)
        vt_message("vtmalloc: VTMALLOC_PROF_DUMP_AT_EXIT: %s could not be written (errno %d)\n",
                   path, errno);
}

/* Installs the handler for the signals the options name (at start-up, init.c). */
void vt_dumps_catch_signals(void)
{
    catch_signal(vt_options.prof_signal, "PROF_SIGNAL");
    catch_signal(vt_options.stats_signal, "STATS_SIGNAL");
}
