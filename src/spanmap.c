/*
 * spanmap.c - which 2 MiB chunks of the address space are our spans.
 *
 * Owns: a byte per VT_SPAN_SIZE chunk of the 48-bit address space, kept sparse: a static root
 * of leaf pointers (4 KiB), and leaves of 256 KiB (each covering 512 GiB of addresses) mapped
 * when the first span lands in their range and kept for the life of the process. A flat map
 * would take 128 MiB of address space from the start, which counts against `ulimit -v`: small
 * programs would fail to start under a limit that glibc's malloc fits in.
 *
 * Layer: 2 span map
 * Calls: os.c, report.c
 *
 * Why: free() must recognise a pointer it did not hand out (glibc's, the stack, a static
 * array) instead of trusting whatever lies at the span-aligned address below it, which may
 * not even be mapped. Two relaxed loads (vt_in_span in internal.h) answer "is this ours?"
 * before anything is read from the span. Large blocks are not spans; large.c keeps them.
 */
#include "internal.h"

/* Read only, never written: the leaf of every range that holds no span. */
static _Atomic uint8_t zero_leaf[VT_SPANMAP_LEAF_BYTES];

_Atomic(_Atomic uint8_t *) vt_spanmap_root[VT_SPANMAP_ROOTS] = {
    [0 ... VT_SPANMAP_ROOTS - 1] = zero_leaf,
};

/* The leaf covering `chunk`, mapped if needed; NULL when no memory is left for it. Two threads
 * may map one at once: the compare-and-swap keeps one, the other is unmapped. Release: a
 * reader that finds the leaf finds it zeroed (as mapped). */
static _Atomic uint8_t *leaf_for(uintptr_t chunk)
{
    _Atomic(_Atomic uint8_t *) *slot = &vt_spanmap_root[chunk >> VT_SPANMAP_LEAF_SHIFT];
    _Atomic uint8_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
    if (leaf != zero_leaf)
        return leaf;
    _Atomic uint8_t *fresh = vt_os_map(VT_SPANMAP_LEAF_BYTES, vt_os_page_size());
    if (fresh == NULL)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &leaf, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    vt_os_unmap((void *)fresh, VT_SPANMAP_LEAF_BYTES);
    return leaf;
}

/* Called before any block of the span is handed out, so every later free of such a block sees
 * its byte (see vt_in_span). Each chunk has a byte of its own: a plain atomic store. */
bool vt_spanmap_add(vt_span_t *span)
{
    uintptr_t chunk = (uintptr_t)span >> VT_SPAN_SHIFT;
    VT_ASSERT(chunk < VT_SPANMAP_CHUNKS && ((uintptr_t)span & VT_SPAN_MASK) == 0);
    _Atomic uint8_t *leaf = leaf_for(chunk);
    if (leaf == NULL)
        return false;
    atomic_store_explicit(&leaf[chunk & (VT_SPANMAP_LEAF_BYTES - 1)], 1, memory_order_relaxed);
    return true;
}

/* Called before the span goes back to the backing: no block of it is live any more, so only a
 * stale (invalid) pointer could still look it up, and it then finds "not ours". Its leaf
 * exists: the span was added. */
void vt_spanmap_remove(vt_span_t *span)
{
    uintptr_t chunk = (uintptr_t)span >> VT_SPAN_SHIFT;
    _Atomic uint8_t *leaf = atomic_load_explicit(&vt_spanmap_root[chunk >> VT_SPANMAP_LEAF_SHIFT],
                                                 memory_order_relaxed);
    atomic_store_explicit(&leaf[chunk & (VT_SPANMAP_LEAF_BYTES - 1)], 0, memory_order_relaxed);
}
