/*
 * profdump.c - what the heap profiler does with every shard at once: the profile (live blocks
 * counted from the records, then written in the heap-profile format of gperftools that
 * google-pprof reads), malloc_trim's and the purge pass's return of its empty pages, and fork.
 *
 * Layer: 7 heap profiler
 * Calls: os.c, report.c, options.c, profpages.c, prof.c
 *
 * Owns: nothing of its own; it takes the shards' locks (profshard.h), all of them at once for a
 * profile, so that its lines add up to its totals.
 */
#include "internal.h"
#include "profshard.h"

/* A record's block counts as live for its stack, if the record is one of this generation's
 * (the profile, below). All locks held. */
static void count_live(uint64_t record, void *arg)
{
    (void)arg;
    prof_shard_t *sh = known_shard(record - 1);
    uint32_t stack = ((uint32_t)record & KNOWN_STACK_MASK) - 1;
    /* The bound holds unless the program wrote past its block's end into the records. */
    if (stack < sh->t.stack_count &&
        (record >> RECORD_GEN_SHIFT & RECORD_GEN_MASK) == (sh->t.generation & RECORD_GEN_MASK)) {
        sh->t.stacks[stack].live_n++;
        sh->t.stacks[stack].live_bytes += record >> RECORD_SIZE_SHIFT;
    }
}

/* malloc_trim: every shard's empty pages go back. */
void vt_prof_trim(void)
{
    vt_prof_trim_own();
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++) {
        vt_mutex_lock(&sh->lock);
        vt_profpages_release_empty(&sh->pages);
        vt_mutex_unlock(&sh->lock);
    }
}

/* The purge pass (purge.c): pages nobody sampled into for a retention window go back. */
void vt_prof_pass(void)
{
    if (vt_likely(vt_options.prof_sample == 0))
        return;
    uint32_t now = vt_os_now_ms();
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++) {
        vt_mutex_lock(&sh->lock);
        vt_profpages_pass(&sh->pages, now);
        vt_mutex_unlock(&sh->lock);
    }
}

/* ---- The profile ------------------------------------------------------------------------ */

/* What is live now, per stack: counted afresh from the records of the small samples (every
 * page of the profiler's, profpages.c) and the table of the large ones. A thread's samples that
 * it has not added to its stack's totals yet (PEND_MAX) may make a stack's live count exceed
 * its total since the start; the total then reads as the live count. All locks held. */
static void count_all_live_locked(void)
{
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        for (size_t i = 0; i < sh->t.stack_count; i++)
            sh->t.stacks[i].live_n = sh->t.stacks[i].live_bytes = 0;
    vt_profpages_scan(count_live, NULL);
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++) {
        for (size_t i = 0; i < sh->t.sample_cap; i++) {
            const vt_prof_sample_t *x = &sh->t.samples[i];
            if (x->addr != 0) {
                sh->t.stacks[x->stack].live_n++;
                sh->t.stacks[x->stack].live_bytes += x->size;
            }
        }
        for (size_t i = 0; i < sh->t.stack_count; i++) {
            vt_prof_stack_t *st = &sh->t.stacks[i];
            if (st->alloc_n < st->live_n) {
                st->alloc_n = st->live_n;
                st->alloc_bytes =
                    st->live_bytes > st->alloc_bytes ? st->live_bytes : st->alloc_bytes;
            }
        }
    }
}

/* The lines of one shard's stacks. Its lock held. */
static bool write_stacks_locked(const prof_shard_t *sh, int fd)
{
    for (size_t i = 0; i < sh->t.stack_count; i++) {
        const vt_prof_stack_t *s = &sh->t.stacks[i];
        if (s->alloc_n == 0)
            continue;
        if (!vt_message_fd(fd, "%zu: %zu [%zu: %zu] @", (size_t)s->live_n, (size_t)s->live_bytes,
                           (size_t)s->alloc_n, (size_t)s->alloc_bytes))
            return false;
        for (uint32_t k = 0; k < s->depth; k++)
            if (!vt_message_fd(fd, " %p", (void *)s->pcs[k]))
                return false;
        if (!vt_message_fd(fd, "\n"))
            return false;
    }
    return true;
}

/* One line per stack: "live_n: live_bytes [alloc_n: alloc_bytes] @ pc pc ...", after a
 * header with the totals, then the process's memory map, which google-pprof needs to find the
 * code each address belongs to. Every shard's lock held, so the lines add up to the totals. */
static bool write_profile_locked(int fd)
{
    count_all_live_locked();
    uint64_t live_n = 0, live_bytes = 0, alloc_n = 0, alloc_bytes = 0;
    for (const prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++) {
        for (size_t i = 0; i < sh->t.stack_count; i++) {
            live_n += sh->t.stacks[i].live_n;
            live_bytes += sh->t.stacks[i].live_bytes;
            alloc_n += sh->t.stacks[i].alloc_n;
            alloc_bytes += sh->t.stacks[i].alloc_bytes;
        }
    }
    if (!vt_message_fd(fd, "heap profile: %zu: %zu [%zu: %zu] @ heap_v2/%u\n", (size_t)live_n,
                       (size_t)live_bytes, (size_t)alloc_n, (size_t)alloc_bytes,
                       vt_options.prof_sample))
        return false;
    for (const prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        if (!write_stacks_locked(sh, fd))
            return false;
    return vt_message_fd(fd, "\nMAPPED_LIBRARIES:\n") && vt_os_copy_file("/proc/self/maps", fd);
}

/* Every shard's lock, in the order of the array (the only place that holds two, with fork). */
static void lock_all(void)
{
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        vt_mutex_lock(&sh->lock);
}

static void unlock_all(void)
{
    for (prof_shard_t *sh = vt_prof_shards; sh < vt_prof_shards + PROF_SHARDS; sh++)
        vt_mutex_unlock(&sh->lock);
}

static bool write_profile(int fd, void *arg)
{
    (void)arg;
    vt_prof_flush_own();
    lock_all();
    bool ok = write_profile_locked(fd);
    int saved = errno;
    unlock_all();
    errno = saved;
    return ok;
}

VT_EXPORT int vt_prof_dump(const char *path)
{
    if (vt_options.prof_sample == 0) {
        errno = ENOTSUP;
        return -1;
    }
    return vt_os_write_file(path, write_profile, NULL);
}
