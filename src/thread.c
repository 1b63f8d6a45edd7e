/*
 * thread.c - the calling thread's own words: its cache, and what a heap-profile sample reads.
 *
 * Layer: 3 pages
 * Calls: page.c
 *
 * Owns: vt_thread, one per thread (types.h: vt_thread_t says which file writes each field), and
 * the static "unstarted" cache that it names until the thread's first allocation starts a real
 * one (tcache.c). Apart from the thread cache, on a low layer, because the profiler (prof.c) and
 * its draws (sample.c) keep their words on the same line as the cache pointer.
 */
#include "internal.h"

/* Every bin is the static empty page, so a thread's first malloc lands in the slow path, which
 * starts a real cache: the fast path never asks whether the thread is initialised. */
static vt_tcache_t unstarted = {.alloc_page = {[0 ... VT_CLASS_COUNT] = &vt_page_none},
                                .state = VT_TCACHE_UNSTARTED};

__thread vt_thread_t vt_thread __attribute__((tls_model("initial-exec"))) = {.tcache = &unstarted};
