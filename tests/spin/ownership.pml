/*
 * ownership.pml - a Promela model of vtmalloc's page ownership protocol, checked by spin
 * (tests/spin/check.sh runs it; README.md explains the model).
 *
 * One page of CAP blocks, three thread caches T1..T3 and the global cache. Every operation of
 * the C code that touches the page's ownership is a step here, split at the same points where
 * the C code lets other threads in: one Promela statement per atomic load, store, CAS or
 * exchange, and one per access to the owner-only (non-atomic) fields. Spin then tries every
 * interleaving of those steps.
 *
 * The C functions modelled (src/, names are stable; line numbers drift, so each step quotes
 * the C statement it stands for):
 *   vt_tcache_alloc (internal.h)       malloc fast path: pop page->free, used++
 *   alloc_from, bin_refill (tcache.c)  flush_pending, refill / detach, adopt, fresh run
 *   vt_page_collect_remote (page.c)    peek, exchange, splice, used -= count
 *   vt_page_try_detach (page.c)        store owner = T|DET; CAS remote 0 -> FULL; restore
 *   vt_api_free (alloc.h)              owner == self ? local push, --used
 *   vt_tcache_free_other (tcache.c)    owner == self|DET ? try_reattach : gather / push
 *   vt_page_try_reattach (page.c)      CAS owner T|DET -> T; fetch_and remote ~FULL
 *   gather_remote, flush_chain,        per-thread pending chain, pushed with one CAS
 *   push_remote (tcache.c)
 *   vt_page_push_remote (page.c)       CAS remote old -> chain | (old minus FULL)
 *   vt_page_try_revoke (page.c)        load owner; if DET: CAS owner -> GLOBAL
 *   vt_global_put_partial,             lock; push on g.partial; unlock
 *   vt_global_take_partial (global.c)
 *   collect_partial_locked (global.c)  under the lock: collect, unassign pages with used == 0
 *   vt_tcache_page_emptied,            unassign an empty page, to the stash or the global
 *   release_empty_page (tcache.c)      cache
 *   take_empty_page, take_runs,        a fresh run, assigned: FREE -> T
 *   vt_page_assign (page.c)
 *   abandon (tcache.c)                 thread exit: flush, collect, owner = GLOBAL or unassign
 *
 * Abstracted away (see README.md for why each is sound):
 *   - Block order: page->free and the remote list are sets (bit masks), not linked lists;
 *     malloc pops the lowest block. The remote word's count field is CNT(remote).
 *   - Carving: a fresh page has every block on its free list at once (carved == capacity).
 *   - Other pages, classes and spans: a malloc that this page cannot serve is served
 *     elsewhere and has no effect here; the bin holds this page or nothing, and "the page is
 *     the class's current page" (alloc_page) is a nondeterministic choice.
 *   - Keys, double-free and invalid-pointer checks, counters, statistics, purge: not modelled
 *     (they touch no ownership state). The program is assumed correct: every block is freed
 *     exactly once, by the thread holding it.
 *   - Handing blocks between threads: at malloc the block is given to any running thread,
 *     which may free it at any later time; this covers every later hand-off.
 *   - Memory order: spin explores sequentially consistent interleavings. The C11 orders
 *     (release on detach, acq_rel on push, acquire on exchange and reattach) are argued in
 *     page.c's comment, not checked here.
 *   - The orphan cache (a cache shared under a mutex behaves as one more thread) and mallocs
 *     by exited threads.
 *
 * Compile-time switches (spin -D...):
 *   CAP=n        blocks per page (2..4; default 2)
 *   BATCH=n      VT_REMOTE_BATCH (default 2; 1 = the unbatched push of the first version)
 *   B1, B2, B3   malloc budget (calls) of T1, T2, T3
 *   NO_TOKEN_CHECK  drop the ghost check "only the thread that cleared FULL in this detach
 *                revokes" (the other properties stay)
 *   NO_VT_ASSERT drop the mirrors of the C code's VT_ASSERTs (what a release build does)
 *   FIX_TOKEN    a candidate protocol change: reattach and revoke both compete for the FULL
 *                bit itself (see README.md); not what the C code does today
 *   BUG_DETACH_STORE, BUG_DETACH_ORDER, BUG_REATTACH_NO_CAS, BUG_REVOKE_NO_HANDSHAKE
 *                deliberately broken protocols: the checker must find an error in each.
 */

#ifndef CAP
#define CAP 2
#endif
#ifndef BATCH
#define BATCH 2
#endif
#ifndef B1
#define B1 6
#endif
#ifndef B2
#define B2 3
#endif
#ifndef B3
#define B3 2
#endif

#define ALL  ((1 << CAP) - 1)
#define BIT(i) (1 << (i))
#define FULL 128                 /* VT_REMOTE_FULL, kept apart from the block bits */

/* page->owner. A thread's cache is its number 1..3; EXITED stands for &exited, the cache a
 * thread's TLS points to after its exit destructor: no page ever has that owner. */
#define GLOBAL 0                 /* VT_OWNER_GLOBAL */
#define DET    4                 /* VT_OWNER_DETACHED */
#define FREEP  8                 /* VT_OWNER_FREE */
#define EXITED 16
#define EXITER 3                 /* the thread that may exit */

/* Ghost: who owns the page, logically. A thread, the global cache, nobody (detached: the page
 * waits for the FULL handshake), or nobody because it is not a page (free units). */
#define H_NONE   0
#define H_GLOBAL 4
#define H_UNITS  5

/* Ghost: where an unassigned run is: assigned (0), a thread's stash or hands (1..3), the
 * global cache's free units (4). */
#define U_ASSIGNED 0
#define U_GLOBAL   4

#define CNT(m) ((((m) >> 0) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1) + (((m) >> 3) & 1))
#define LOWEST(m) (((m) & 1) -> 0 : (((m) & 2) -> 1 : (((m) & 4) -> 2 : 3)))

byte owner = FREEP;          /* page->owner (atomic) */
byte remote;                 /* page->remote (atomic): blocks pushed | FULL */
byte freel = ALL;            /* page->free (owner only) */
byte used;                   /* page->used (owner only) */
byte holder[4];              /* program: 0, or the thread holding the live block */
byte pend[4];                /* tc->pending[]: blocks gathered by thread t for this page */
bool inbin[4];               /* tc->bins[class] of thread t holds the page */
bool onglobal;               /* g.partial[class] holds the page (global lock) */
byte units = U_GLOBAL;       /* where the run is while unassigned */
byte glock;                  /* g.lock: 0 or the holding thread */
bool done[4];
byte ndone;

/* ghosts */
byte pg = H_UNITS;           /* logical owner, see H_* */
byte excl;                   /* the thread inside an owner-only multi-step update */
byte tok;                    /* the thread that cleared FULL in the current detach, 0: none */
byte puts;                   /* hand-offs to the global cache since the last detach */

#define LIVEB(i) ((holder[i] != 0) -> BIT(i) : 0)
#define LIVEM (LIVEB(0) | LIVEB(1) | LIVEB(2) | LIVEB(3))
#define PENDM (pend[1] | pend[2] | pend[3])

/* The caller may touch page->free and page->used: it owns the page (its cache is the owner
 * word and, logically, the owner), or the page is the global cache's and it holds the lock. */
#define MINE (owner == self && pg == me)
#define OWNER_OK (MINE || (owner == GLOBAL && pg == H_GLOBAL && glock == me))

#ifdef NO_VT_ASSERT
#define VT_ASSERT(c) skip
#else
#define VT_ASSERT(c) assert(c)
#endif

/* ---- Invariants, checked in every reachable state ------------------------------------- */

/* Property 1, no lost block: each block is in exactly one place (live in a thread's hands,
 * on the free list, on the remote list, in one thread's pending chain) and used counts the
 * blocks not on the free list. Not checked while an owner is between the steps of one update
 * (excl), where the C code is between two statements too. */
#define ACCOUNTED (excl != 0 || \
    ((freel & (remote & ALL)) == 0 && (freel & LIVEM) == 0 && (freel & PENDM) == 0 && \
     ((remote & ALL) & LIVEM) == 0 && ((remote & ALL) & PENDM) == 0 && (LIVEM & PENDM) == 0 && \
     (pend[1] & pend[2]) == 0 && (pend[1] & pend[3]) == 0 && (pend[2] & pend[3]) == 0 && \
     (freel | (remote & ALL) | LIVEM | PENDM) == ALL && \
     used == CNT(LIVEM) + CNT(remote & ALL) + CNT(PENDM)))

/* Property 2, one owner: the lists that hold the page agree with the owner word and with the
 * logical owner, so the page is never on the global list and in a bin, nor in two bins. */
#define PLACED ( \
    (!onglobal || (owner == GLOBAL && pg == H_GLOBAL)) && \
    (!inbin[1] || (owner == 1 && pg == 1)) && \
    (!inbin[2] || (owner == 2 && pg == 2)) && \
    (!inbin[3] || (owner == 3 && pg == 3)) && \
    (units == U_ASSIGNED || (owner == FREEP && pg == H_UNITS)) && \
    (pg != H_GLOBAL || owner == GLOBAL) && \
    (pg != H_UNITS || owner == FREEP) && \
    (pg != H_NONE || (owner & DET) != 0) && \
    (pg < 1 || pg > 3 || owner == pg || owner == (pg | DET)))

active proctype monitor()
{
end_watch:
    atomic { !(ACCOUNTED && PLACED) -> assert(ACCOUNTED && PLACED) }
}

/* ---- The global lock ------------------------------------------------------------------ */

inline lock()
{
    atomic { glock == 0 -> glock = me }
}

inline unlock()
{
    d_step { assert(glock == me); glock = 0 }
}

/* ---- page.c ---------------------------------------------------------------------------- */

/* vt_page_collect_remote. Owner (or global lock) only. Leaves the count in n. */
inline collect_remote()
{
    n = 0;
    if
    :: remote != 0 ->                        /* if (load(&remote, relaxed) == 0) return 0 */
        d_step {                             /* word = exchange(&remote, 0, acquire) */
            assert(OWNER_OK && excl == 0);
            excl = me;
            head = remote;
            remote = 0;
            /* VT_ASSERT((word & VT_REMOTE_FULL) == 0): an attached page never carries FULL */
            VT_ASSERT((head & FULL) == 0);
            head = head & ALL                /* first = word & PTR_MASK; count = word >> 48 */
        }
        if
        :: head != 0 ->
            d_step {                         /* splice: last->next = free; free = first */
                assert(OWNER_OK && (freel & head) == 0);
                freel = freel | head
            }
            d_step {                         /* used -= count */
                assert(OWNER_OK);
                n = CNT(head);
                assert(used >= n);
                used = used - n
            }
        :: else -> skip                      /* if (first == NULL) return 0 */
        fi;
        d_step { excl = 0; head = 0 }
    :: else -> skip
    fi
}

/* vt_page_unassign (owner only): owner = FREE. The run goes to `where`. */
inline unassign(where)
{
    d_step {
        assert(OWNER_OK && used == 0);
        VT_ASSERT((remote & ALL) == 0);      /* VT_ASSERT((remote & PTR_MASK) == 0) */
        owner = FREEP;
        pg = H_UNITS;
        units = where
    }
}

/* vt_page_assign(page, class, tc): a fresh run becomes this thread's page. Carving is
 * abstracted: every block is on the free list at once. */
inline assign()
{
    d_step {
        assert(owner == FREEP && pg == H_UNITS && units == U_ASSIGNED);
        assert(used == 0 && freel == ALL);
        remote = 0;                          /* store(&remote, 0) */
        owner = self;                        /* store(&owner, tc) */
        pg = me;
        inbin[me] = 1                        /* vt_list_push_front(bin, page) */
    }
}

/* vt_page_try_revoke, called by the thread whose push cleared FULL; then
 * vt_global_put_partial when it wins (tcache.c push_remote). */
inline try_revoke()
{
#ifndef FIX_TOKEN
    o = owner;                               /* owner = load(&owner, relaxed) */
    if
    :: (o & DET) != 0 ->
        d_step {                             /* CAS(&owner, &owner, GLOBAL) */
            if
            :: owner == o ->
                owner = GLOBAL;
                ok = 1;
#ifndef NO_TOKEN_CHECK
                /* the page.c claim: "only the thread that cleared FULL may revoke" */
                assert(tok == me);
#endif
                assert(pg == H_NONE);
                pg = H_GLOBAL
            :: else -> ok = 0
            fi
        }
    :: else -> ok = 0                        /* the owner took it back already */
    fi;
#else
    /* FIX_TOKEN: clearing FULL was the decision; nobody else acts on a detached page whose
     * FULL is clear, so a plain store hands it over. */
    d_step {
        assert((owner & DET) != 0 && tok == me && pg == H_NONE);
        owner = GLOBAL;
        pg = H_GLOBAL;
        ok = 1
    };
#endif
    if
    :: ok ->
        lock();                              /* vt_global_put_partial */
        d_step {
            VT_ASSERT(owner == GLOBAL);      /* put_partial_locked */
            assert(!onglobal);               /* property 4: never inserted twice */
            onglobal = 1;
            puts++;
            assert(puts <= 1)                /* property 4: at most once per detach */
        }
        unlock()
    :: else -> skip
    fi;
    o = 0;
    ok = 0
}

/* flush_chain -> push_remote -> vt_page_push_remote (+ try_revoke). The CAS loop of
 * vt_page_push_remote is one step: its failed rounds change nothing. */
inline flush()
{
    d_step {
        assert(pend[me] != 0);
        old = remote;                        /* the value the successful CAS replaced */
        remote = (old & ~FULL) | pend[me];   /* word = count | first, FULL dropped */
        pend[me] = 0;
        if
        :: (old & FULL) != 0 -> tok = me     /* this push cleared FULL */
        :: else -> skip
        fi
    }
    if
    :: (old & FULL) != 0 -> old = 0; try_revoke()
    :: else -> old = 0
    fi
}

/* ---- malloc ---------------------------------------------------------------------------- */

/* vt_tcache_alloc's pop: block = free; free = block->next; used++. Property 3: the block is
 * on no other list and in nobody's hands. The block goes to any running thread. */
inline pop()
{
    atomic {
        assert(MINE && excl == 0 && freel != 0);
        excl = me;
        b = LOWEST(freel);
        assert(holder[b] == 0 && ((remote | PENDM) & BIT(b)) == 0);
        freel = freel & ~BIT(b);
        if
        :: !done[1] -> holder[b] = 1
        :: !done[2] -> holder[b] = 2
        :: !done[3] -> holder[b] = 3
        fi
    }
    d_step { assert(MINE); used++; excl = 0; b = 0 }
}

/* collect_partial_locked: the global lock is held. */
inline collect_partial_locked()
{
    if
    :: onglobal ->
        collect_remote();
        n = 0;
        if
        :: used == 0 ->
            d_step { assert(glock == me); onglobal = 0 }      /* vt_list_remove */
            unassign(U_GLOBAL)                                 /* + give_back_locked */
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* take_empty_page: the stash, else take_runs (take_locked; if nothing, collect_partial_locked
 * and take_locked again); then vt_page_assign. Other runs are abstracted: take_locked may find
 * another run first, and then this page plays no part in this malloc. */
inline take_empty_page()
{
    if
    :: units == me -> units = U_ASSIGNED; ok = 1                 /* from the stash */
    :: else ->
        lock();
        if
        :: units == U_GLOBAL -> units = U_ASSIGNED; ok = 1      /* take_locked */
        :: true -> skip                                          /* another run */
        :: true ->                                               /* n == 0: collect */
            collect_partial_locked();
            if
            :: units == U_GLOBAL -> units = U_ASSIGNED; ok = 1
            :: else -> skip
            fi
        fi;
        unlock()
    fi;
    if
    :: ok -> assign(); ok = 0
    :: else -> skip
    fi
}

/* vt_api_malloc -> vt_tcache_alloc, and its slow path alloc_from -> bin_refill. */
inline do_malloc()
{
    if
    :: inbin[me] && freel != 0 -> pop()                 /* fast path */
    :: else ->
        if                                              /* alloc_from: flush_pending(tc) */
        :: pend[me] != 0 -> flush()
        :: else -> skip
        fi;
        do                                              /* bin_refill */
        :: inbin[me] && freel != 0 -> pop(); break      /* page->free != NULL: return page */
        :: inbin[me] && freel == 0 ->
            collect_remote();                           /* vt_page_refill */
            if
            :: n > 0 -> n = 0                           /* refilled: popped next turn */
            :: else ->                                  /* exhausted: vt_page_try_detach */
#ifndef BUG_DETACH_ORDER
                d_step {                                /* vt_list_remove(bin, page); */
                    assert(MINE && freel == 0);         /* store(&owner, self|DET) */
                    inbin[me] = 0;
                    owner = self | DET
                }
#endif
                d_step {                                /* CAS(&remote, 0, FULL, release) */
#ifndef BUG_DETACH_STORE
                    if
                    :: remote == 0 ->
#else
                    if                                  /* BUG: a plain store, no CAS */
                    :: true ->
#endif
                        remote = FULL;
                        ok = 1;
#ifndef BUG_DETACH_ORDER
                        assert(pg == me);
#endif
                        pg = H_NONE;
                        tok = 0;
                        puts = 0
                    :: else -> ok = 0
                    fi
                }
#ifdef BUG_DETACH_ORDER
                d_step {                                /* BUG: owner stored after the CAS */
                    inbin[me] = 0;
                    owner = self | DET
                }
#endif
                if
                :: ok -> ok = 0                         /* detached */
                :: else ->
                    d_step {                            /* store(&owner, self); */
                        owner = self;                   /* vt_list_push_front(bin, page) */
                        inbin[me] = 1
                    }
                fi
            fi
        :: !inbin[me] ->
            if                                          /* vt_global_take_partial */
            :: onglobal ->                              /* partial_mask hint */
                lock();
                d_step {
                    if
                    :: onglobal -> onglobal = 0; ok = 1
                    :: else -> skip
                    fi
                }
                unlock()
            :: else -> skip
            fi;
            if
            :: ok ->
                d_step {                                /* adopt: store(&owner, tc); */
                    assert(owner == GLOBAL && pg == H_GLOBAL);
                    owner = self;                       /* vt_list_push_front(bin, page) */
                    pg = me;
                    inbin[me] = 1;
                    ok = 0
                }
            :: else -> take_empty_page(); break
            fi
        od
    fi
}

/* ---- free ------------------------------------------------------------------------------ */

/* block->next = page->free; page->free = block; --page->used (owner only). */
inline local_push()
{
    d_step {
        assert(MINE && excl == 0 && holder[b] == me);
        assert(((freel | remote | PENDM) & BIT(b)) == 0);
        excl = me;
        freel = freel | BIT(b);
        holder[b] = 0
    }
    d_step { assert(MINE && used > 0); used--; excl = 0 }
}

/* if (--page->used == 0) vt_tcache_page_emptied(tc, page): the class's current page stays;
 * any other is unassigned (release_empty_page) and its run goes to the stash, or to the
 * global cache (vt_global_put_run, or the stash's surplus through vt_global_put_pages). */
inline maybe_emptied()
{
    if
    :: used == 0 ->
        if
        :: true -> skip                                 /* alloc_page[class] == page */
        :: true ->
            d_step { assert(MINE); inbin[me] = 0 }      /* vt_list_remove(bin, page) */
            unassign(me);
            if
            :: true -> skip                             /* stays in the stash */
            :: true -> lock(); d_step { units = U_GLOBAL }; unlock()
            fi
        fi
    :: else -> skip
    fi
}

/* vt_api_free(block b), by the thread holding it. */
inline do_free()
{
    o = owner;                                /* vt_page_owner(page) == tc (relaxed) */
    if
    :: o == self -> local_push(); maybe_emptied()
    :: else ->                                /* vt_tcache_free_other */
        o = owner;                            /* vt_page_owner(page) == (self | DET) */
        if
        :: o == (self | DET) ->
            if
            :: true ->                        /* bins[class].count < class_pages: */
#if defined(FIX_TOKEN)
                d_step {                      /* FIX: take the FULL bit, not the owner */
                    if
                    :: (remote & FULL) != 0 ->
                        remote = remote & ~FULL;
                        tok = me;
                        ok = 1
                    :: else -> ok = 0
                    fi
                }
                if
                :: ok ->
                    d_step {
                        assert(owner == (self | DET) && pg == H_NONE);
                        owner = self;
                        pg = me
                    }
                :: else -> skip
                fi
#elif defined(BUG_REATTACH_NO_CAS)
                ok = (owner == (self | DET)); /* BUG: load, then a plain store */
                if
                :: ok -> d_step { owner = self; assert(pg == H_NONE); pg = me }
                :: else -> skip
                fi
#else
                d_step {                      /* vt_page_try_reattach: CAS(&owner, */
                    if                        /*   self|DET -> self, acquire) */
                    :: owner == (self | DET) ->
                        owner = self;
                        assert(pg == H_NONE);
                        pg = me;
                        ok = 1
                    :: else -> ok = 0
                    fi
                }
#endif
#ifndef FIX_TOKEN
                if
                :: ok ->
                    d_step {                  /* fetch_and(&remote, ~FULL, relaxed) */
                        if
                        :: (remote & FULL) != 0 -> tok = me
                        :: else -> skip
                        fi;
                        remote = remote & ~FULL
                    }
                :: else -> skip
                fi
#endif
            :: true -> skip                   /* the bin is full: remote path */
            fi
        :: else -> skip
        fi;
        if
        :: ok ->                              /* reattached: push on free, push_back(bin), */
            ok = 0;                           /* --used */
            local_push();
            inbin[me] = 1;
            maybe_emptied()
        :: else ->
#ifdef BUG_REVOKE_NO_HANDSHAKE
            /* BUG: the freer trusts the owner it read before pushing, and revokes a page that
             * looks detached without waiting for the FULL handshake */
            d_step {
                assert(holder[b] == me);
                holder[b] = 0;
                remote = (remote & ~FULL) | BIT(b)
            }
            if
            :: (o & DET) != 0 ->
                d_step {
                    if
                    :: owner == o -> owner = GLOBAL; ok = 1; assert(pg == H_NONE); pg = H_GLOBAL
                    :: else -> ok = 0
                    fi
                }
                if
                :: ok -> ok = 0; lock(); d_step { assert(!onglobal); onglobal = 1 }; unlock()
                :: else -> skip
                fi
            :: else -> skip
            fi
#else
            if
            :: self == me ->                  /* gather_remote: into the pending chain */
                d_step {
                    assert(holder[b] == me);
                    holder[b] = 0;
                    pend[me] = pend[me] | BIT(b)
                }
                if
                :: CNT(pend[me]) >= BATCH -> flush()   /* ++chain->count >= BATCH */
                :: else -> skip
                fi
            :: else ->                        /* tc->state != LIVE: push_remote at once */
                d_step {
                    assert(holder[b] == me && pend[me] == 0);
                    holder[b] = 0;
                    pend[me] = BIT(b)
                }
                flush()
            fi
#endif
        fi
    fi;
    o = 0;
    b = 0
}

/* ---- thread exit ----------------------------------------------------------------------- */

/* vt_tcache_thread_exit -> abandon: flush_pending; each attached page: collect if free is
 * empty, then unassign it (used == 0) or store owner = GLOBAL; the stash goes to the global
 * cache's free units; vt_global_put_pages puts everything there under the lock. */
inline abandon()
{
    if
    :: pend[me] != 0 -> flush()
    :: else -> skip
    fi;
    if
    :: inbin[me] ->
        d_step { assert(MINE); inbin[me] = 0 }  /* vt_list_remove(&tc->bins[c], page) */
        if
        :: freel == 0 -> collect_remote(); n = 0
        :: else -> skip
        fi;
        if
        :: used == 0 -> unassign(me)           /* to the `empty` list */
        :: else ->
            d_step {                           /* store(&owner, GLOBAL) */
                assert(MINE);
                owner = GLOBAL;
                pg = H_GLOBAL
            }
            ok = 1                             /* on the `partial` list */
        fi
    :: else -> skip
    fi;
    lock();                                    /* vt_global_put_pages */
    d_step {
        if
        :: ok ->
            VT_ASSERT(owner == GLOBAL);        /* put_partial_locked */
            assert(!onglobal);
            onglobal = 1
        :: else -> skip
        fi;
        if
        :: units == me ->
            VT_ASSERT(owner == FREEP);         /* give_back_locked */
            units = U_GLOBAL
        :: else -> skip
        fi;
        ok = 0
    }
    unlock()
}

/* ---- threads --------------------------------------------------------------------------- */

proctype thread(byte me; byte budget)
{
    byte self = me;          /* vt_tls_tcache: this thread's cache, or EXITED */
    byte b, o, old, head, n;
    bool ok, exited;

    do
    :: self == me && budget > 0 -> budget--; do_malloc()
    :: atomic { holder[0] == me -> b = 0 }; do_free()
    :: atomic { holder[1] == me -> b = 1 }; do_free()
#if CAP >= 3
    :: atomic { holder[2] == me -> b = 2 }; do_free()
#endif
#if CAP >= 4
    :: atomic { holder[3] == me -> b = 3 }; do_free()
#endif
    /* a chain is also pushed when another page needs its slot, and by malloc_trim */
    :: pend[me] != 0 -> flush()
    /* housekeeping / malloc_trim: stash_give_back */
    :: units == me -> lock(); d_step { units = U_GLOBAL }; unlock()
    /* the thread exits; its cache goes to the pool and may serve a new thread */
    :: me == EXITER && self == me && !exited ->
        abandon();
        exited = 1;
        if
        :: self = EXITED                       /* TLS = &exited: later frees are remote */
        :: skip                                /* a new thread takes this cache */
        fi
    :: atomic {
           holder[0] != me && holder[1] != me && holder[2] != me && holder[3] != me &&
           pend[me] == 0 ->
           done[me] = 1;
           ndone++
       };
       break
    od
}

/* ---- the end: everything freed; whoever owns the page collects ------------------------ */

active proctype final()
{
    ndone == 3;
    d_step {
        assert(glock == 0 && excl == 0 && LIVEM == 0 && PENDM == 0);
        if
        :: owner == FREEP -> assert(pg == H_UNITS && units != U_ASSIGNED)
        :: owner == GLOBAL -> assert(pg == H_GLOBAL && onglobal)
        :: owner >= 1 && owner <= 3 -> assert(pg == owner && inbin[owner])
        /* detached with every block freed: the first free should have revoked or reattached
         * it; nobody will ever collect its remote list */
        :: else -> assert(false)
        fi;
        if
        :: owner != FREEP ->
            VT_ASSERT((remote & FULL) == 0);
            freel = freel | (remote & ALL);
            used = used - CNT(remote & ALL);
            remote = 0
        :: else -> assert((remote & ALL) == 0)
        fi;
        assert(used == 0 && freel == ALL)
    }
}

init
{
    atomic {
        run thread(1, B1);
        run thread(2, B2);
        run thread(3, B3)
    }
}
