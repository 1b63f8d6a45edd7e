/*
 * largetable.c - the table of mapped large blocks (large.c): from a block's address to its
 * mapping, so that free() can check a pointer without reading memory that may not be ours.
 *
 * Layer: 6 large-block table
 * Calls: os.c, report.c
 *
 * Owns: the table and the lock that large.c's cache shares. Open addressing with linear
 * probing, kept at most half full; grown by mapping a table twice the size with the lock
 * dropped.
 *
 * Why a table and not a header in front of a mapped block: a header would cost a whole OS
 * page per block once alignment is asked for, mremap could not move it freely, and free()
 * could not check a pointer without reading memory that may not be ours. A mapped block's
 * free already pays munmap, so a short locked hash lookup costs nothing in comparison.
 */
#include "internal.h"

static struct large_table {
    vt_lock_t lock;
    vt_large_entry_t *slots; /* lock */
    size_t capacity;         /* lock: a power of two, or 0 before the first block */
    size_t count;            /* lock */
    size_t bytes;            /* lock */
    size_t requested;        /* lock: bytes asked for by the live blocks */
} t = {.lock = VT_LOCK_INIT};

/* The table's first size, in slots. */
#define FIRST_CAPACITY 256

void vt_largetable_lock(void)
{
    vt_mutex_lock(&t.lock);
}

void vt_largetable_unlock(void)
{
    vt_mutex_unlock(&t.lock);
}

/* Bytes mapped for a table of `capacity` slots: whole pages. */
static size_t table_bytes(size_t capacity)
{
    size_t page = vt_os_page_size();
    return (capacity * sizeof(vt_large_entry_t) + page - 1) & ~(page - 1);
}

static size_t slot_of(uintptr_t addr, size_t capacity)
{
    uint64_t h = (uint64_t)(addr >> 12) * VT_FIBONACCI_HASH;
    return (size_t)(h >> 32) & (capacity - 1);
}

vt_large_entry_t *vt_largetable_find_locked(uintptr_t addr)
{
    if (t.capacity == 0)
        return NULL;
    for (size_t i = slot_of(addr, t.capacity);; i = (i + 1) & (t.capacity - 1)) {
        if (t.slots[i].addr == addr)
            return &t.slots[i];
        if (t.slots[i].addr == 0)
            return NULL;
    }
}

void vt_largetable_insert_locked(vt_large_entry_t e)
{
    VT_ASSERT(2 * (t.count + 1) <= t.capacity);
    size_t i = slot_of(e.addr, t.capacity);
    while (t.slots[i].addr != 0)
        i = (i + 1) & (t.capacity - 1);
    t.slots[i] = e;
    t.count++;
    t.bytes += e.size;
    t.requested += e.requested;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void vt_largetable_remove_locked(vt_large_entry_t *slot)
{
    t.count--;
    t.bytes -= slot->size;
    t.requested -= slot->requested;
    size_t hole = (size_t)(slot - t.slots);
    for (size_t i = (hole + 1) & (t.capacity - 1); t.slots[i].addr != 0;
         i = (i + 1) & (t.capacity - 1)) {
        if (!vt_probe_stays(hole, i, slot_of(t.slots[i].addr, t.capacity))) {
            t.slots[hole] = t.slots[i];
            hole = i;
        }
    }
    t.slots[hole].addr = 0;
}

/* Returns with the lock held and room for one more entry, or false (lock not held) when the
 * table could not grow. The new table is mapped with the lock dropped. */
bool vt_largetable_lock_with_room(void)
{
    vt_mutex_lock(&t.lock);
    while (2 * (t.count + 1) > t.capacity) {
        size_t want = t.capacity ? 2 * t.capacity : FIRST_CAPACITY;
        vt_mutex_unlock(&t.lock);
        size_t bytes = table_bytes(want);
        vt_large_entry_t *fresh = vt_os_map(bytes, vt_os_page_size());
        if (fresh == NULL)
            return false;
        vt_mutex_lock(&t.lock);
        if (t.capacity >= want) { /* somebody else grew it meanwhile */
            vt_mutex_unlock(&t.lock);
            vt_os_unmap(fresh, bytes);
            vt_mutex_lock(&t.lock);
            continue;
        }
        vt_large_entry_t *old = t.slots;
        size_t old_capacity = t.capacity;
        t.slots = fresh;
        t.capacity = want;
        t.count = 0;
        t.bytes = 0;
        t.requested = 0;
        for (size_t i = 0; i < old_capacity; i++)
            if (old[i].addr != 0)
                vt_largetable_insert_locked(old[i]);
        if (old != NULL) {
            vt_mutex_unlock(&t.lock);
            vt_os_unmap(old, table_bytes(old_capacity));
            vt_mutex_lock(&t.lock);
        }
    }
    return true;
}

/* realloc to the same mapping: only what the block was asked for changes. Lock held. */
void vt_largetable_set_requested_locked(vt_large_entry_t *slot, size_t requested)
{
    t.requested = t.requested - slot->requested + requested;
    slot->requested = requested;
}

/* Lock held. */
void vt_largetable_stats_locked(vt_stats_t *st)
{
    st->large_blocks += t.count;
    st->large_bytes += t.bytes;
    st->bytes_mapped += t.bytes; /* blocks in spans are in span_bytes */
    st->bytes_requested_live += t.requested;
}

void vt_largetable_fork_prepare(void)
{
    vt_lock_take(&t.lock);
}

void vt_largetable_fork_parent(void)
{
    vt_lock_give(&t.lock);
}

void vt_largetable_fork_child(void)
{
    vt_lock_give(&t.lock); /* held by this thread's parent copy: see span.c */
}
