/*
 * proflarge.c - the heap profiler's large blocks (above the size classes): which of them are
 * sampled, and their samples, kept by address.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, unwind.c, proftable.c, options.c, sample.c, thread.c, prof.c
 *
 * Owns: each thread's countdown to its next sampled large block (thread-local). The samples
 * themselves are in the shards' tables (profshard.h), under the shards' locks. Unlike a small
 * block, a large one is not moved to a page of the profiler's when it is sampled: its free is a
 * slow path anyway, which looks its address up here while profiling is on.
 */
#include "internal.h"
#include "profshard.h"

/* Bytes until the calling thread's next sampled large block. */
static __thread int64_t large_left __attribute__((tls_model("initial-exec")));

/* The shard that records a large block: by its address, which its free knows. */
static prof_shard_t *large_shard(const void *p)
{
    return &vt_prof_shards[((uintptr_t)p * VT_FIBONACCI_HASH) >> 61];
}

/* Counts a large allocation down on the calling thread's countdown: true when it is to be
 * sampled (then the caller records it with vt_prof_record_large). */
bool vt_prof_large_due(size_t size)
{
    if (vt_likely(vt_options.prof_sample == 0) || vt_thread.prof_inside)
        return false;
    if (large_left == 0)
        large_left = vt_sample_draw();
    large_left -= (int64_t)size;
    if (large_left >= 0)
        return false;
    large_left = vt_sample_draw();
    return true;
}

void vt_prof_record_large(void *p, size_t size)
{
    vt_thread.prof_inside = true;
    uintptr_t frames[PROF_DEPTH + PROF_SKIP];
    int n = vt_unwind(frames, PROF_DEPTH + PROF_SKIP);
    prof_shard_t *sh = large_shard(p);
    vt_mutex_lock(&sh->lock);
    uint32_t stack = vt_prof_stack_locked(sh, frames, n, NULL);
    /* Without memory for the stack or the record, the block simply goes unrecorded. */
    if (stack != UINT32_MAX &&
        vt_proftable_sample_add(
            &sh->t, (vt_prof_sample_t){.addr = (uintptr_t)p, .size = size, .stack = stack}))
        count_locked(sh, stack, 1, size);
    vt_mutex_unlock(&sh->lock);
    vt_thread.prof_inside = false;
}

/* free() or realloc of a large block while profiling is on: its sample, if it has one, goes. */
void vt_prof_forget_large(void *p)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return;
    prof_shard_t *sh = large_shard(p);
    vt_mutex_lock(&sh->lock);
    vt_proftable_sample_take(&sh->t, (uintptr_t)p); /* if it has one */
    vt_mutex_unlock(&sh->lock);
}
