/*
 * profshard.h - the heap profiler's shards (prof.c and proflarge.c sample into them, profdump.c
 * writes the profile from them), and the words that name a stack in them.
 *
 * Owns: nothing; the shards are defined in prof.c.
 */
#ifndef VT_PROFSHARD_H
#define VT_PROFSHARD_H

#include "internal.h"
#include "profpages.h"

/* The profiler's state is split into shards, each with its own lock, so that threads that
 * sample at once on different CPUs do not queue on one mutex. That happens more than one would
 * think: sampling is by bytes asked for, not bytes touched, and memtest single's two threads
 * (blocks of up to 16 KiB, 100M mallocs a second) sample 1.5M blocks a second between them;
 * with one lock for all they ran at half the speed. A small block is recorded in the shard of
 * the CPU the thread runs on, and taken from that shard's pages, which name the shard for its
 * free. Shards by CPU rather than by thread, so that a server that starts thousands of threads
 * keeps pages in no more shards than it has CPUs. A large block is recorded in the shard its
 * address hashes to, which its free finds again. A stack that several shards saw appears once
 * per shard in a profile; google-pprof adds such lines up. */
#define PROF_SHARDS 8

typedef struct prof_shard {
    vt_lock_t lock;
    vt_prof_tables_t t;                      /* its stacks and live samples (proftable.c) */
    vt_prof_pages_t pages;                   /* where its small samples live (profpages.c) */
} __attribute__((aligned(64))) prof_shard_t; /* a cache line of its own */

/* Every field of a shard belongs to its lock. */
extern prof_shard_t vt_prof_shards[PROF_SHARDS] VT_HIDDEN;

/* Frames kept per stack, and frames looked at (ours come first and are left out). */
#define PROF_DEPTH VT_PROF_DEPTH
#define PROF_SKIP  8

/* The index in the shard's table of the stack that `frames` (n return addresses from a walk,
 * ours first) name, UINT32_MAX when there is no memory for it; `known`: the memo's word for the
 * stack, or NULL (prof.c). Lock held. */
uint32_t vt_prof_stack_locked(prof_shard_t *sh, const uintptr_t *frames, int n,
                              uint64_t *known) VT_HIDDEN;

/* A stack as a word: the generation of its shard's table (high half), the shard, and its index
 * in the table. The memo keeps one per stack it holds (`known`), and the records of sampled
 * small blocks keep the low half of one, plus one. */
#define KNOWN_SHARD_SHIFT 29
#define KNOWN_STACK_MASK  (((uint32_t)1 << KNOWN_SHARD_SHIFT) - 1)
_Static_assert(PROF_SHARDS <= 8, "the shard fits the word's three bits");

static inline uint64_t known_make(const prof_shard_t *sh, uint32_t stack)
{
    return (uint64_t)sh->t.generation << 32 | (uint64_t)(sh - vt_prof_shards) << KNOWN_SHARD_SHIFT |
           stack;
}

static inline prof_shard_t *known_shard(uint64_t known)
{
    return &vt_prof_shards[(uint32_t)known >> KNOWN_SHARD_SHIFT];
}

/* The word still names its stack: its table was not cleared since (a fork's child). Read
 * without the shard's lock: a table's generation changes when its first stack comes (before
 * any word can name it) and in a forked child, on the child's one thread; the word was noted
 * under the lock after the first, and the memo that holds it passes from thread to thread only
 * with its cache, through the pool's lock; so the read sees the last write. */
static inline bool known_current(uint64_t known)
{
    return known != 0 && (uint32_t)(known >> 32) == known_shard(known)->t.generation;
}

/* A sampled block counts in its stack's totals since the start. What is live is not counted
 * here: a profile counts it from the records (count_live). Lock held. */
static inline void count_locked(prof_shard_t *sh, uint32_t stack, uint64_t n, uint64_t size)
{
    sh->t.stacks[stack].alloc_n += n;
    sh->t.stacks[stack].alloc_bytes += size;
}

/* The record of a sampled small block, kept beside it (profpages.c): the low half of its
 * stack's word plus one (0: no record, the table had no memory), the low bits of the table's
 * generation, which tell a record made before a fork (the child clears its tables) from one of
 * the child's own (the generations of 4,096 clears of the shard go by before the bits
 * repeat), and the bytes asked for. */
#define RECORD_GEN_SHIFT  32
#define RECORD_GEN_MASK   0xfffu
#define RECORD_SIZE_SHIFT 44
_Static_assert(VT_SMALL_MAX < (uint64_t)1 << (64 - RECORD_SIZE_SHIFT), "a small size fits");

static inline uint64_t record_make(uint64_t known, size_t size)
{
    return (uint64_t)size << RECORD_SIZE_SHIFT |
           (known >> 32 & RECORD_GEN_MASK) << RECORD_GEN_SHIFT | ((uint32_t)known + 1);
}

#endif /* VT_PROFSHARD_H */
