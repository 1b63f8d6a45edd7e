/*
 * proftable.c - the heap profiler's two tables: the call stacks it has seen, with what each
 * holds and has allocated, and the sampled large blocks now live, by address.
 *
 * Layer: 2 profiler tables
 * Calls: os.c
 *
 * Owns: nothing of its own; a vt_prof_tables_t belongs to its user (one per shard of prof.c,
 * under that shard's lock), which serialises every call on it.
 *
 * Both live in memory mapped from the OS (never malloc: they are filled from inside malloc),
 * start at FIRST_* entries and double as they fill. The stacks stay in the order they were
 * first seen, so a stack's index never changes (until a forked child clears the table):
 * records of sampled blocks (prof.c) name their stack by index, and a thread's memo keeps the
 * index of its last stack; a hash index of its own finds a stack by its addresses. The
 * samples, those of large blocks, are an open-addressing table by address; they leave by
 * backward-shift deletion, so no tombstones pile up in a server that runs for months.
 */
#include "internal.h"

/* The tables start this big (entries): a page or so each (a stack is 296 bytes), since every
 * shard that samples maps its own, and a process with few call sites should not fault in a
 * table it hardly uses; each doubling costs one pass over the entries. */
#define FIRST_STACKS  16
#define FIRST_SAMPLES 256

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * VT_FIBONACCI_HASH) >> 32) & (cap - 1);
}

/* Maps a table of cap entries of `size` bytes; NULL when there is no memory. */
static void *table_map(size_t cap, size_t size)
{
    return vt_os_map((cap * size + vt_os_page_size() - 1) & ~(vt_os_page_size() - 1),
                     vt_os_page_size());
}

static void table_unmap(void *table, size_t cap, size_t size)
{
    if (table != NULL)
        vt_os_unmap(table, (cap * size + vt_os_page_size() - 1) & ~(vt_os_page_size() - 1));
}

static void sample_insert(vt_prof_tables_t *t, vt_prof_sample_t s)
{
    size_t i = slot_of(s.addr, t->sample_cap);
    while (t->samples[i].addr != 0)
        i = (i + 1) & (t->sample_cap - 1);
    t->samples[i] = s;
    t->sample_count++;
}

/* Room for one more sample, or false. */
static bool sample_room(vt_prof_tables_t *t)
{
    if (2 * (t->sample_count + 1) <= t->sample_cap)
        return true;
    size_t cap = t->sample_cap ? 2 * t->sample_cap : FIRST_SAMPLES;
    vt_prof_sample_t *fresh = table_map(cap, sizeof(vt_prof_sample_t));
    if (fresh == NULL)
        return false;
    vt_prof_sample_t *old = t->samples;
    size_t old_cap = t->sample_cap;
    t->samples = fresh;
    t->sample_cap = cap;
    t->sample_count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].addr != 0)
            sample_insert(t, old[i]);
    table_unmap(old, old_cap, sizeof(vt_prof_sample_t));
    return true;
}

/* Takes the sample of addr out of the table: its entry, or one with addr 0. */
vt_prof_sample_t vt_proftable_sample_take(vt_prof_tables_t *t, uintptr_t addr)
{
    vt_prof_sample_t found = {0};
    if (t->sample_cap == 0)
        return found;
    size_t mask = t->sample_cap - 1, hole = slot_of(addr, t->sample_cap);
    while (t->samples[hole].addr != addr) {
        if (t->samples[hole].addr == 0)
            return found;
        hole = (hole + 1) & mask;
    }
    found = t->samples[hole];
    t->sample_count--;
    for (size_t i = (hole + 1) & mask; t->samples[i].addr != 0; i = (i + 1) & mask) {
        if (!vt_probe_stays(hole, i, slot_of(t->samples[i].addr, t->sample_cap))) {
            t->samples[hole] = t->samples[i];
            hole = i;
        }
    }
    t->samples[hole].addr = 0;
    return found;
}

/* The last generation number handed out (vt_prof_tables_t.generation); each table's own is
 * written under its user's lock, this counter by any of them at once. Relaxed: it orders
 * nothing, it only has to hand out each number once. */
static _Atomic uint32_t generations;

static void new_generation(vt_prof_tables_t *t)
{
    t->generation = atomic_fetch_add_explicit(&generations, 1, memory_order_relaxed) + 1;
}

static uint64_t stack_hash(const uintptr_t *pcs, uint32_t depth)
{
    uint64_t h = depth;
    for (uint32_t i = 0; i < depth; i++)
        h = (h ^ pcs[i]) * VT_FIBONACCI_HASH;
    return h | 1;
}

/* Room for more stacks, or false. The entries move to a larger array (their indices stay)
 * and the index, twice as many slots as there are entries, is built again. */
static bool stack_room(vt_prof_tables_t *t)
{
    size_t cap = t->stack_cap ? 2 * t->stack_cap : FIRST_STACKS;
    vt_prof_stack_t *fresh = table_map(cap, sizeof(vt_prof_stack_t));
    uint32_t *index = table_map(2 * cap, sizeof(uint32_t));
    if (fresh == NULL || index == NULL) {
        table_unmap(fresh, cap, sizeof(vt_prof_stack_t));
        table_unmap(index, 2 * cap, sizeof(uint32_t));
        return false;
    }
    if (t->stack_count > 0)
        memcpy(fresh, t->stacks, t->stack_count * sizeof(vt_prof_stack_t));
    for (size_t k = 0; k < t->stack_count; k++) {
        size_t i = slot_of(fresh[k].hash, 2 * cap);
        while (index[i] != 0)
            i = (i + 1) & (2 * cap - 1);
        index[i] = (uint32_t)k + 1;
    }
    if (t->stacks == NULL) /* the table's first number (0 is no table's) */
        new_generation(t);
    table_unmap(t->stacks, t->stack_cap, sizeof(vt_prof_stack_t));
    table_unmap(t->stack_index, 2 * t->stack_cap, sizeof(uint32_t));
    t->stacks = fresh;
    t->stack_index = index;
    t->stack_cap = cap;
    return true;
}

/* The slot of the index that names the stack, or else the empty one where it would go. */
static size_t index_slot(const vt_prof_tables_t *t, uint64_t hash, const uintptr_t *pcs,
                         uint32_t depth)
{
    size_t mask = 2 * t->stack_cap - 1, i = slot_of(hash, mask + 1);
    for (; t->stack_index[i] != 0; i = (i + 1) & mask) {
        const vt_prof_stack_t *s = &t->stacks[t->stack_index[i] - 1];
        if (s->hash == hash && s->depth == depth &&
            memcmp(s->pcs, pcs, depth * sizeof(uintptr_t)) == 0)
            break;
    }
    return i;
}

/* The index of the stack's entry, added if new; UINT32_MAX when there is no memory. */
uint32_t vt_proftable_stack(vt_prof_tables_t *t, const uintptr_t *pcs, uint32_t depth)
{
    uint64_t hash = stack_hash(pcs, depth);
    size_t i = 0;
    if (t->stack_cap > 0) {
        i = index_slot(t, hash, pcs, depth);
        if (t->stack_index[i] != 0)
            return t->stack_index[i] - 1;
    }
    if (t->stack_count == t->stack_cap) {
        if (!stack_room(t))
            return UINT32_MAX;
        i = index_slot(t, hash, pcs, depth); /* the index was built again */
    }
    uint32_t k = (uint32_t)t->stack_count++;
    vt_prof_stack_t *s = &t->stacks[k];
    s->hash = hash;
    s->depth = depth;
    memcpy(s->pcs, pcs, depth * sizeof(uintptr_t));
    t->stack_index[i] = k + 1;
    return k;
}

/* Adds a sample (its addr not in the table); false when there is no memory for it. */
bool vt_proftable_sample_add(vt_prof_tables_t *t, vt_prof_sample_t s)
{
    if (!sample_room(t))
        return false;
    sample_insert(t, s);
    return true;
}

/* Forgets every stack and sample (the mappings stay, for the next ones). */
void vt_proftable_clear(vt_prof_tables_t *t)
{
    if (t->stack_cap > 0) {
        memset(t->stacks, 0, t->stack_cap * sizeof(vt_prof_stack_t));
        memset(t->stack_index, 0, 2 * t->stack_cap * sizeof(uint32_t));
    }
    if (t->sample_cap > 0)
        memset(t->samples, 0, t->sample_cap * sizeof(vt_prof_sample_t));
    t->stack_count = t->sample_count = 0;
    new_generation(t);
}
