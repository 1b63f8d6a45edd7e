/*
 * sysalloc.c - how the core reaches the system allocator (VTMALLOC_BACKING=malloc).
 *
 * Layer: 0 OS
 * Calls: nothing
 *
 * Owns: nothing but the lookup; calls only the C library.
 *
 * Built twice. In the core library that tests link (no VT_OVERRIDE), malloc is the system's,
 * so plain calls do. In libvtmalloc (VT_OVERRIDE), our own malloc replaces the system's, so
 * the system's must be found by name in libc's own symbol table, without dlsym (which may
 * allocate, and would recurse) and without calling the replaced names: dl_iterate_phdr walks
 * the loaded objects without allocating, and libc.so.6's GNU hash table answers the lookup of
 * __libc_memalign and __libc_free, glibc's allocator under its internal names.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <malloc.h>
#include <stdlib.h>

#ifndef VT_OVERRIDE

bool vt_sysalloc_init(void)
{
    return true;
}

void *vt_sysalloc_memalign(size_t alignment, size_t size)
{
    return memalign(alignment, size);
}

void vt_sysalloc_free(void *p)
{
    free(p);
}

#else

#include <elf.h>
#include <link.h>

typedef void *(*memalign_fn)(size_t, size_t);
typedef void (*free_fn)(void *);

/* Set once by vt_sysalloc_init, during vt_init, before any span exists. */
static memalign_fn sys_memalign;
static free_fn sys_free;

static uint32_t gnu_hash(const char *name)
{
    uint32_t h = 5381;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++)
        h = h * 33 + *s;
    return h;
}

/* glibc relocates the d_ptr entries of a loaded object's dynamic section in place on most
 * targets, but not on all: accept both forms. */
static uintptr_t dyn_addr(ElfW(Addr) base, ElfW(Addr) value)
{
    return value < base ? base + value : value;
}

typedef struct lookup {
    const char *names[2];
    void *found[2];
} lookup_t;

static void *find_symbol(ElfW(Addr) base, const ElfW(Sym) * symtab, const char *strtab,
                         const uint32_t *gnu, const char *name)
{
    uint32_t nbuckets = gnu[0], symoffset = gnu[1], bloom_size = gnu[2];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)(gnu + 4);
    const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t h = gnu_hash(name);
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset)
        return NULL;
    for (;; i++) {
        uint32_t ch = chain[i - symoffset];
        if ((ch | 1) == (h | 1) && strcmp(strtab + symtab[i].st_name, name) == 0 &&
            symtab[i].st_value != 0)
            return (void *)(base + symtab[i].st_value);
        if (ch & 1)
            return NULL;
    }
}

static int visit(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    lookup_t *lk = arg;
    const char *name = info->dlpi_name;
    if (name == NULL || strstr(name, "libc.so.6") == NULL)
        return 0;
    const ElfW(Dyn) *dyn = NULL;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (dyn == NULL)
        return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *gnu = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            symtab = (const ElfW(Sym) *)dyn_addr(info->dlpi_addr, dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            strtab = (const char *)dyn_addr(info->dlpi_addr, dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_GNU_HASH)
            gnu = (const uint32_t *)dyn_addr(info->dlpi_addr, dyn->d_un.d_ptr);
    }
    if (symtab == NULL || strtab == NULL || gnu == NULL)
        return 0;
    for (int k = 0; k < 2; k++)
        lk->found[k] = find_symbol(info->dlpi_addr, symtab, strtab, gnu, lk->names[k]);
    return 1;
}

bool vt_sysalloc_init(void)
{
    lookup_t lk = {{"__libc_memalign", "__libc_free"}, {NULL, NULL}};
    dl_iterate_phdr(visit, &lk);
    if (lk.found[0] == NULL || lk.found[1] == NULL)
        return false;
    sys_memalign = (memalign_fn)lk.found[0];
    sys_free = (free_fn)lk.found[1];
    return true;
}

void *vt_sysalloc_memalign(size_t alignment, size_t size)
{
    return sys_memalign(alignment, size);
}

void vt_sysalloc_free(void *p)
{
    sys_free(p);
}

#endif
