# adopt.py TREE: applies scrA (adopt on free) to a source tree; used to make scrA5 from scrU5.
import re,sys
root=sys.argv[1]
p=root+'/src/types.h'; s=open(p).read()
a="    uint8_t pad1_[1];"
assert a in s; s=s.replace(a,"    uint8_t on_partial; /* global lock: on a partial list of the global cache */")
open(p,'w').write(s)
p=root+'/src/global.c'; s=open(p).read()
n0=s.count("vt_list_remove(&g.partial[")
s=re.sub(r"(\n(\s*)vt_list_remove\(&g\.partial\[[^\]]*\], page, VT_PAGE_LINK\);)", r"\1\n\2page->on_partial = 0;", s)
s=re.sub(r"(\n(\s*)vt_list_push_back\(&g\.partial\[page->class_idx\], page, VT_PAGE_LINK\);)", r"\1\n\2page->on_partial = 1;", s)
assert s.count("page->on_partial = 0;")==n0, (n0, s.count("page->on_partial = 0;"))
a="void vt_global_put_partial(vt_page_t *page)"
assert a in s
s=s.replace(a,"""/* A page of the partial lists that a freeing thread takes as its own (adopt on free). */
bool vt_global_adopt(vt_page_t *page)
{
    unsigned c = page->class_idx;
    vt_span_lock_for(c);
    bool ok = page->on_partial && vt_page_owner(page) == VT_OWNER_GLOBAL;
    if (ok) {
        vt_list_remove(&g.partial[c], page, VT_PAGE_LINK);
        page->on_partial = 0;
        partial_mask_update(c);
    }
    vt_span_unlock();
    if (ok)
        vt_pagepurge_restore(page);
    return ok;
}

"""+a)
a2='''    if (page != NULL)
        vt_list_remove(&g.partial[class_idx], page, VT_PAGE_LINK);
        page->on_partial = 0;'''
s=s.replace(a2,'''    if (page != NULL) {
        vt_list_remove(&g.partial[class_idx], page, VT_PAGE_LINK);
        page->on_partial = 0;
    }''')
open(p,'w').write(s)
p=root+'/src/prototypes.h'; s=open(p).read()
a="void vt_global_put_partial(vt_page_t *page)"
i=s.index(a)
s=s[:i]+"bool vt_global_adopt(vt_page_t *page) VT_HIDDEN;\n"+s[i:]
open(p,'w').write(s)
p=root+'/src/tcache.c'; s=open(p).read()
a="""    block->key = vt_block_key(block);
    if (vt_unlikely(tc->state != VT_TCACHE_LIVE)) { /* a shared static cache: no batching */"""
assert a in s
s=s.replace(a,"""    if (vt_page_owner(page) == VT_OWNER_GLOBAL && tc->state == VT_TCACHE_LIVE && tc != &orphan &&
        tc->bin_pages[class_idx] < vt_options.class_pages && vt_global_adopt(page)) {
        atomic_store_explicit(&page->owner, (uintptr_t)tc, memory_order_relaxed);
        vt_count(&tc->counters.pages_adopted);
        vt_bin_push_back(tc, class_idx, page);
        vt_page_push(page, block);
        if (--page->used == 0)
            vt_tcache_page_emptied(tc, page);
        return;
    }
"""+a)
open(p,'w').write(s)
