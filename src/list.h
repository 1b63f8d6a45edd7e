/*
 * list.h - the one doubly linked list of the allocator: intrusive, for any structure that
 * embeds a vt_link_t (pages in bins and on the partial lists, spans in the index, thread-cache
 * records in the pool). A list stores the structures themselves, so walking it needs no
 * conversion; each call names where the link lies in the structure (VT_PAGE_LINK, ...).
 *
 * Layer: 0 (a header: no calls). A list is protected by whoever owns its container.
 */
#ifndef VT_LIST_H
#define VT_LIST_H

#include <stddef.h>
#include <stdint.h>

/* The links of a structure on a list: the neighbouring structures, NULL at the ends. */
typedef struct vt_link {
    void *prev, *next;
} vt_link_t;

typedef struct vt_list {
    void *head, *tail;
    uint32_t count;
} vt_list_t;

/* The link of `node`, which lies `off` bytes into it. */
static inline vt_link_t *vt_link_at(void *node, size_t off)
{
    return (vt_link_t *)((char *)node + off);
}

static inline void vt_list_push_front(vt_list_t *list, void *node, size_t off)
{
    vt_link_t *link = vt_link_at(node, off);
    link->prev = NULL;
    link->next = list->head;
    if (list->head)
        vt_link_at(list->head, off)->prev = node;
    else
        list->tail = node;
    list->head = node;
    list->count++;
}

static inline void vt_list_push_back(vt_list_t *list, void *node, size_t off)
{
    vt_link_t *link = vt_link_at(node, off);
    link->next = NULL;
    link->prev = list->tail;
    if (list->tail)
        vt_link_at(list->tail, off)->next = node;
    else
        list->head = node;
    list->tail = node;
    list->count++;
}

static inline void vt_list_remove(vt_list_t *list, void *node, size_t off)
{
    vt_link_t *link = vt_link_at(node, off);
    if (link->prev)
        vt_link_at(link->prev, off)->next = link->next;
    else
        list->head = link->next;
    if (link->next)
        vt_link_at(link->next, off)->prev = link->prev;
    else
        list->tail = link->prev;
    link->prev = link->next = NULL;
    list->count--;
}

#endif /* VT_LIST_H */
