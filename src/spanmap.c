/*
 * spanmap.c - which 4 MiB chunks of the address space are our spans.
 *
 * Owns: one bit per VT_SPAN_SIZE chunk of the 48-bit address space (8 MiB of zero-initialised
 * memory that the kernel maps lazily: a 4 KiB page of it covers 128 GiB of addresses).
 * Calls: nothing. Never allocates.
 *
 * Why: free() must recognise a pointer it did not hand out (glibc's, the stack, a static
 * array) instead of trusting whatever lies at the span-aligned address below it, which may
 * not even be mapped. One relaxed load (vt_in_span in internal.h) answers "is this ours?"
 * before anything is read from the span. Large blocks are not spans; large.c keeps them.
 */
#include "internal.h"

_Atomic uint64_t vt_spanmap[VT_SPANMAP_CHUNKS / 64];

/* Called before any block of the span is handed out, so every later free of such a block sees
 * the bit (see vt_in_span). fetch_or: two threads may register spans that share a word. */
void vt_spanmap_add(vt_span_t *span)
{
    uintptr_t chunk = (uintptr_t)span >> VT_SPAN_SHIFT;
    VT_ASSERT(chunk < VT_SPANMAP_CHUNKS && ((uintptr_t)span & VT_SPAN_MASK) == 0);
    atomic_fetch_or_explicit(&vt_spanmap[chunk / 64], (uint64_t)1 << (chunk % 64),
                             memory_order_relaxed);
}

/* Called before the span goes back to the backing: no block of it is live any more, so only a
 * stale (invalid) pointer could still look it up, and it then finds "not ours". */
void vt_spanmap_remove(vt_span_t *span)
{
    uintptr_t chunk = (uintptr_t)span >> VT_SPAN_SHIFT;
    atomic_fetch_and_explicit(&vt_spanmap[chunk / 64], ~((uint64_t)1 << (chunk % 64)),
                              memory_order_relaxed);
}
