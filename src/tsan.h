/*
 * tsan.h - an order that ThreadSanitizer cannot see, told to it (in its builds only; empty
 * inline functions otherwise). Used by os.c.
 *
 * TSan remembers the last accesses to every address, and forgets them at the mmap and munmap
 * it intercepts, but it does not intercept mremap. A range that mremap frees (a block moved
 * away or shrunk) keeps its last owner's accesses; when another thread's block later grows or
 * moves onto it, that thread's first writes would be reported as racing with them. They do not
 * race: the kernel runs mremap and munmap one at a time under the process's address-space
 * lock, so the mremap that freed the range happened before the one that handed it out. One
 * object stands for that lock: each mremap releases it before the call and acquires it after.
 */
#ifndef VT_TSAN_H
#define VT_TSAN_H

#if defined(__SANITIZE_THREAD__) /* gcc */
#define VT_TSAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(thread_sanitizer)
#define VT_TSAN 1
#endif
#endif

#ifdef VT_TSAN
#include <sanitizer/tsan_interface.h>

/* Only its address matters: TSan keeps the order of release and acquire calls on it. */
static char vt_tsan_address_space;

static inline void vt_tsan_address_space_release(void)
{
    __tsan_release(&vt_tsan_address_space);
}

static inline void vt_tsan_address_space_acquire(void)
{
    __tsan_acquire(&vt_tsan_address_space);
}
#else
static inline void vt_tsan_address_space_release(void) {}
static inline void vt_tsan_address_space_acquire(void) {}
#endif

#endif
