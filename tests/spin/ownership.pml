/*
 * ownership.pml - a Promela model of vtmalloc's page ownership protocol: owner-tagged pages,
 * cross-thread (remote) frees, detach / reattach / revoke, thread exit and page adoption.
 * tests/spin/check.sh runs it with spin; tests/spin/README.md explains the model.
 *
 * One page of CAP blocks, NT thread caches (T1..T3) and the global cache (a lock, the partial
 * list, the free units). Each step of a process is one atomic access of the C code (a load, a
 * store, a CAS, an exchange, a lock operation) or one owner-only update of page->free and
 * page->used, which asserts at that instant that the caller owns the page. Spin explores
 * every interleaving of those steps.
 *
 * The C code modelled (src/; quoted statements rather than line numbers, which drift):
 *   vt_tcache_alloc (internal.h)       malloc fast path: pop page->free, used++
 *   alloc_from, bin_refill (tcache.c)  flush_pending; refill or detach; adopt; a fresh run
 *   vt_page_collect_remote (page.c)    relaxed peek; exchange(&remote, 0); splice; used -= n
 *   vt_page_try_detach (page.c)        store owner = T|DET; CAS remote 0 -> FULL; restore
 *   vt_api_free (alloc.h)              owner == tc ? push on page->free, --used
 *   vt_tcache_free_other (tcache.c)    owner == tc|DET ? try_reattach : gather / push
 *   vt_page_try_reattach (page.c)      CAS owner T|DET -> T; fetch_and(&remote, ~FULL)
 *   gather_remote, flush_chain,        a per-thread pending chain per page, pushed with one
 *   push_remote (tcache.c)             CAS; then try_revoke and vt_global_put_partial
 *   vt_page_push_remote (page.c)       CAS remote old -> chain (FULL dropped); old had FULL?
 *   vt_page_try_revoke (page.c)        load owner; if DET: CAS owner -> GLOBAL
 *   vt_global_put_partial,             under the lock: push on / take from g.partial
 *   vt_global_take_partial (global.c)
 *   collect_partial_locked (global.c)  under the lock: collect; used == 0: unassign, give back
 *   vt_tcache_page_emptied,            --used == 0 on a page that is not the class's current
 *   release_empty_page (tcache.c)      one: unassign; the run to the stash or the global cache
 *   take_empty_page, take_runs,        a fresh run: FREE -> T
 *   vt_page_assign (page.c)
 *   abandon (tcache.c)                 exit: flush; collect; unassign or owner = GLOBAL; put
 *
 * Abstractions (README.md argues each):
 *   - page->free and the remote list are sets (bit masks); malloc pops the lowest block; the
 *     remote word's count field is the size of the set.
 *   - A fresh page has every block carved at once.
 *   - Other pages, classes and spans exist only as "this malloc is served elsewhere", which
 *     changes nothing here, so such mallocs are not modelled; whether the page is the class's
 *     current page (alloc_page) is a nondeterministic choice.
 *   - Keys, misuse checks, counters, statistics, purge and the orphan cache are left out.
 *     The program is correct: each block is freed once, by the thread holding it.
 *   - At malloc the block goes to any running thread, which frees it whenever it likes: this
 *     covers every later hand-off between threads.
 *   - An owner-only update that the C code does in a few statements (splice and used -= n;
 *     push and --used) is one step here, asserting ownership; between two such updates other
 *     threads interleave freely. The owner's two loads in free (vt_api_free's `owner == tc`,
 *     free_other's `owner == tc|DET`) are one load: the word cannot become tc in between but
 *     by this thread.
 *   - Memory order: spin explores sequentially consistent interleavings. The C11 orders are
 *     argued in page.c, not checked here.
 *
 * Switches (spin -DNAME[=value]):
 *   CAP=n            blocks in the page, 2..4 (default 2)
 *   NT=n             threads, 2 or 3 (default 2)
 *   EXITER=t         the thread that may exit (0: none; default NT)
 *   BATCH=n          VT_REMOTE_BATCH (default 2; 1 pushes every remote free at once)
 *   B1, B2, B3       malloc calls per thread
 *   OLD_REVOKE       the earlier protocol, which spin showed wrong (README.md); without it,
 *                    the current one (src/page.c): detach CASes remote
 *                    0 -> FULL|tc; reattach CASes remote FULL|tc -> 0; the push that replaces
 *                    a FULL word owns the page and stores owner = GLOBAL.
 *   NO_GHOST         check only the C code's own state (owner == self at every owner-only
 *                    access, block accounting, no block handed out twice, the VT_ASSERTs, the
 *                    end state): what a real run could observe, without the ghost owner.
 *   NO_TOKEN_CHECK   drop the ghost check that the revoker cleared FULL in this detach.
 *   NO_VT_ASSERT     drop the mirrors of the C code's VT_ASSERTs (a release build).
 *   BUG_DETACH_STORE, BUG_DETACH_ORDER, BUG_REATTACH_NO_CAS, BUG_REVOKE_NO_HANDSHAKE:
 *                    deliberately broken protocols; the checker must find an error in each.
 */

#ifndef CAP
#define CAP 2
#endif
#ifndef NT
#define NT 2
#endif
#ifndef EXITER
#define EXITER NT
#endif
#ifndef BATCH
#define BATCH 2
#endif
#ifndef B1
#define B1 5
#endif
#ifndef B2
#define B2 2
#endif
#ifndef B3
#define B3 1
#endif

#define ALL    ((1 << CAP) - 1)
#define BIT(i) (1 << (i))
#define FULL   128               /* VT_REMOTE_FULL (bit 0 in C; apart from the blocks here) */
#define TAG(t) ((t) << 4)        /* the detaching cache, in the FULL word */

/* page->owner. Cache t is the number t; EXITED stands for &exited, the cache a thread's TLS
 * names after its exit destructor: no page ever has that owner. */
#define GLOBAL 0                 /* VT_OWNER_GLOBAL */
#define DET    4                 /* VT_OWNER_DETACHED */
#define FREEP  8                 /* VT_OWNER_FREE */
#define EXITED 16

/* Ghost: who owns the page, logically: a thread 1..3, the global cache, nobody (detached and
 * waiting for the FULL handshake), or nobody because it is not a page now (free units). */
#define H_NONE   0
#define H_GLOBAL 4
#define H_UNITS  5

/* Where an unassigned run is: in use as a page (0), thread t's stash (t), the global
 * cache's free units (4). */
#define U_ASSIGNED 0
#define U_GLOBAL   4

#define CNT(m)    ((((m) >> 0) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1) + (((m) >> 3) & 1))
#define LOWEST(m) (((m) & 1) -> 0 : (((m) & 2) -> 1 : (((m) & 4) -> 2 : 3)))

byte owner = FREEP;          /* page->owner (atomic) */
byte remote;                 /* page->remote (atomic): blocks | FULL (| TAG: the mark) */
byte freel = ALL;            /* page->free (owner only) */
byte used;                   /* page->used (owner only) */
byte holder[4];              /* the program: 0, or the thread holding the live block */
byte pend[4];                /* tc->pending[]: blocks thread t gathered for this page */
bool inbin[4];               /* tc->bins[class] of thread t holds the page */
bool onglobal;               /* g.partial[class] holds the page */
byte units = U_GLOBAL;       /* where the run is while it is not a page */
byte glock;                  /* g.lock: 0, or the thread holding it */
bool done[4];
byte ndone;

/* ghosts */
byte pg = H_UNITS;           /* the logical owner, H_* or a thread */
byte tok;                    /* the thread whose push cleared FULL in this detach; 0: none */
byte handoffs;               /* hand-offs to the global cache since the last detach */

#define LIVEB(i) ((holder[i] != 0) -> BIT(i) : 0)
#define LIVEM    (LIVEB(0) | LIVEB(1) | LIVEB(2) | LIVEB(3))
#define PENDM    (pend[1] | pend[2] | pend[3])
#define RLIST    (remote & ALL)

#ifdef NO_VT_ASSERT
#define VT_ASSERT(c) skip
#else
#define VT_ASSERT(c) assert(c)
#endif

/* The caller may touch page->free and page->used: the owner word names its cache (and, with
 * the ghost, it is the logical owner), or the page is the global cache's and it holds the
 * lock. */
#ifdef NO_GHOST
#define GHOST(c) skip
#define MINE     (owner == self)
#define OWNER_OK (MINE || (owner == GLOBAL && glock == me))
#else
#define GHOST(c) assert(c)
#define MINE     (owner == self && pg == me)
#define OWNER_OK (MINE || (owner == GLOBAL && pg == H_GLOBAL && glock == me))
#endif

/* Coverage (check.sh --coverage): with COVER=n, reaching event n fails an assertion, so
 * spin proves the event reachable. The events are numbered where they happen. */
#ifdef COVER
#define EVENT(n) assert(COVER != (n))
#else
#define EVENT(n)
#endif

#ifndef OLD_REVOKE
#define LISTOF(w) ((((w) & FULL) != 0) -> 0 : (w))
#else
#define LISTOF(w) ((w) & ~FULL)
#endif

/* ---- Invariants, checked in every reachable state -------------------------------------- */

/* Property 1, no lost block: every block is in exactly one place (in a thread's hands, on the
 * free list, on the remote list, in one thread's pending chain), and used counts those not on
 * the free list (types.h: used + free == capacity, remote and pending blocks count as used). */
#define ACCOUNTED ( \
    (freel & RLIST) == 0 && (freel & LIVEM) == 0 && (freel & PENDM) == 0 && \
    (RLIST & LIVEM) == 0 && (RLIST & PENDM) == 0 && (LIVEM & PENDM) == 0 && \
    (pend[1] & pend[2]) == 0 && (pend[1] & pend[3]) == 0 && (pend[2] & pend[3]) == 0 && \
    (freel | RLIST | LIVEM | PENDM) == ALL && \
    used == CNT(LIVEM) + CNT(RLIST) + CNT(PENDM))

/* Property 2, one owner: the lists that hold the page agree with the owner word and with the
 * logical owner: never on the global list and in a bin, never in two bins. */
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

#ifdef NO_GHOST
#define INVARIANT ACCOUNTED
#else
#define INVARIANT (ACCOUNTED && PLACED)
#endif

active proctype monitor()
{
end_watch:
    atomic { !(INVARIANT) -> assert(INVARIANT) }
}

/* ---- The global lock (g.lock) ---------------------------------------------------------- */

inline lock()
{
    atomic { glock == 0 -> glock = me }
}

inline unlock()
{
    d_step { assert(glock == me); glock = 0 }
}

/* ---- page.c ---------------------------------------------------------------------------- */

/* vt_page_collect_remote: owner, or the global lock for a GLOBAL page. */
inline collect_remote()
{
    if
    :: remote != 0 ->                  /* if (load(&remote, relaxed) == 0) return 0; */
        d_step {
            assert(OWNER_OK);
            head = remote;             /* word = exchange(&remote, 0, acquire); */
            remote = 0;
            /* VT_ASSERT((word & VT_REMOTE_FULL) == 0): an owned page never carries FULL */
            VT_ASSERT((head & FULL) == 0);
            head = head & ALL;         /* first = word & PTR_MASK (NULL: return 0) */
            assert((freel & head) == 0);
            freel = freel | head;      /* last->next = page->free; page->free = first; */
            assert(used >= CNT(head));
            used = used - CNT(head);   /* page->used -= count; */
            head = 0
        }
    :: else -> skip
    fi
}

/* vt_page_unassign: owner = FREE; the run goes to `where` (stash, or free units). */
inline unassign(where)
{
    d_step {
        assert(OWNER_OK && used == 0);
        VT_ASSERT(RLIST == 0);         /* VT_ASSERT((remote & PTR_MASK) == 0) */
#ifndef OLD_REVOKE
        assert(remote == 0);           /* and no FULL word is left behind */
#endif
        owner = FREEP;
        pg = H_UNITS;
        units = where
    }
}

/* vt_page_assign(page, class, tc) and the first vt_page_refill (carving abstracted). */
inline assign()
{
    d_step {
        assert(owner == FREEP && units == U_ASSIGNED && used == 0 && freel == ALL);
        GHOST(pg == H_UNITS);
        remote = 0;                    /* store(&remote, 0) */
        owner = self;                  /* store(&owner, tc) */
        pg = me;
        inbin[me] = 1                  /* vt_list_push_front(bin, page) */
    }
}

/* vt_global_put_partial: lock; put_partial_locked; unlock. `revoked`: after a revoke (counts
 * towards property 4), or from abandon. */
inline put_partial(revoked)
{
    lock();
    d_step {
        VT_ASSERT(owner == GLOBAL);    /* put_partial_locked */
        assert(!onglobal);             /* property 4: never on the list twice */
        onglobal = 1;
        if
        :: revoked -> handoffs++; GHOST(handoffs <= 1)   /* property 4: once per detach */
        :: else -> skip
        fi
    }
    unlock()
}

/* vt_page_try_revoke, by the thread whose push cleared FULL, then vt_global_put_partial. */
inline try_revoke()
{
#ifdef OLD_REVOKE
    o = owner;                         /* owner = load(&owner, relaxed) */
    if
    :: (o & DET) != 0 ->
        d_step {                       /* CAS(&owner, &owner, GLOBAL, acq_rel) */
            if
            :: owner == o ->
                owner = GLOBAL;
                ok = 1;
#ifndef NO_TOKEN_CHECK
                /* page.c: "Only the thread that cleared FULL may revoke" (this detach) */
                GHOST(tok == me);
#endif
                /* nobody owns a page that is being revoked: it is detached */
                GHOST(pg == H_NONE);
                pg = H_GLOBAL
            :: else -> ok = 0
            fi
        }
    :: else -> skip                    /* the owner took it back already */
    fi;
#else
    d_step {                           /* store(&owner, GLOBAL) */
        assert((owner & DET) != 0);
        GHOST(tok == me && pg == H_NONE);
        owner = GLOBAL;
        pg = H_GLOBAL;
        ok = 1
    };
#endif
    if
    :: ok -> ok = 0; o = 0; EVENT(4); put_partial(1)   /* 4: a revoke hands it over */
    :: else -> o = 0
    fi
}

/* flush_chain -> push_remote: vt_page_push_remote, then try_revoke when it cleared FULL. The
 * CAS loop is one step: its failed rounds change nothing. */
inline flush()
{
    d_step {
        old = remote;                  /* the value the successful CAS replaced */
        remote = LISTOF(old) | pend[me];   /* word = count | first; FULL dropped */
        pend[me] = 0;
        if
        :: (old & FULL) != 0 -> tok = me; ok = 1   /* return (old & FULL) != 0 */
        :: else -> skip
        fi;
        old = 0
    }
    if
    :: ok -> ok = 0; try_revoke()
    :: else -> skip
    fi
}

/* ---- malloc ---------------------------------------------------------------------------- */

/* vt_tcache_alloc's pop: block = page->free; page->free = block->next; page->used++.
 * Property 3: the block is on no list and in nobody's hands. It goes to any running thread. */
inline pop()
{
    atomic {
        assert(MINE && freel != 0);
        b = LOWEST(freel);
        assert(holder[b] == 0 && ((remote | PENDM) & BIT(b)) == 0);
        freel = freel & ~BIT(b);
        used++;
        if
        :: !done[1] -> holder[b] = 1
        :: !done[2] -> holder[b] = 2
#if NT >= 3
        :: !done[3] -> holder[b] = 3
#endif
        fi;
        b = 0
    }
}

/* collect_partial_locked, the global lock held. */
inline collect_partial_locked()
{
    if
    :: onglobal ->
        collect_remote();
        if
        :: used == 0 ->
            onglobal = 0;              /* vt_list_remove(&g.partial[c], page) */
            unassign(U_GLOBAL);        /* vt_page_unassign; give_back_locked */
            EVENT(9)                   /* 9: the global cache frees a page */
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* take_empty_page: the stash first; else take_runs: lock; take_locked, and when it finds
 * nothing, collect_partial_locked and take_locked again; unlock. Then vt_page_assign, and
 * the malloc pops a block. (When another run is taken instead, this page plays no part in
 * this malloc: not modelled.) */
inline take_empty_page()
{
    if
    :: units == me -> units = U_ASSIGNED; ok = 1; EVENT(11)   /* 11: from the stash */
    :: else ->
        lock();
        if
        :: units != U_GLOBAL -> collect_partial_locked()
        :: else -> skip
        fi;
        if
        :: units == U_GLOBAL -> units = U_ASSIGNED; ok = 1
        :: else -> skip
        fi;
        unlock()
    fi;
    if
    :: ok -> ok = 0; assign(); pop()   /* vt_page_refill; return page; alloc_from pops */
    :: else -> skip
    fi
}

/* vt_tcache_detach (vt_page_try_detach), from bin_refill when the page is exhausted. */
inline try_detach()
{
#ifndef BUG_DETACH_ORDER
    d_step {                           /* vt_list_remove(bin, page); */
        assert(MINE && freel == 0);    /* store(&owner, self | DET, relaxed) */
        inbin[me] = 0;
        owner = self | DET
    }
#endif
    d_step {                           /* CAS(&remote, 0, FULL, release) */
        if
#ifndef BUG_DETACH_STORE
        :: remote == 0 ->
#else
        :: true ->                     /* BUG: a plain store */
#endif
#ifndef OLD_REVOKE
            remote = FULL | TAG(me);
#else
            remote = FULL;
#endif
            ok = 1;
#ifndef BUG_DETACH_ORDER
            GHOST(pg == me);
#endif
            pg = H_NONE;               /* detached: nobody owns it now */
            tok = 0;
            handoffs = 0
        :: else -> skip
        fi
    }
#ifdef BUG_DETACH_ORDER
    d_step {                           /* BUG: owner = self|DET after the CAS */
        inbin[me] = 0;
        owner = self | DET
    }
#endif
    if
    :: ok -> ok = 0; EVENT(1)          /* return true. 1: detached */
    :: else ->
        d_step {                       /* store(&owner, self); vt_list_push_front(bin) */
            owner = self;
            inbin[me] = 1
        };
        EVENT(2)                       /* 2: the detach failed and was undone */
    fi
}

/* vt_api_malloc -> vt_tcache_alloc; the slow path alloc_from -> bin_refill. */
inline do_malloc()
{
    if
    :: inbin[me] && freel != 0 -> pop()              /* the fast path */
    :: else ->
        if                                           /* alloc_from: flush_pending(tc) */
        :: pend[me] != 0 -> flush()
        :: else -> skip
        fi;
        do                                           /* bin_refill */
        :: inbin[me] && freel != 0 -> pop(); break   /* page->free != NULL */
        :: inbin[me] && freel == 0 ->
            if
            :: remote != 0 ->                        /* vt_page_refill: collected */
                collect_remote();
                EVENT(15)                            /* 15: remote frees reused */
            :: else -> try_detach()                  /* exhausted: detach or restore */
            fi
        :: !inbin[me] ->
            if                                       /* vt_global_take_partial */
            :: onglobal ->                           /* partial_mask hint */
                lock();
                if
                :: onglobal -> onglobal = 0; ok = 1  /* vt_list_remove(&g.partial) */
                :: else -> skip
                fi;
                unlock()
            :: else -> skip
            fi;
            if
            :: ok ->
                d_step {                             /* adopt: store(&owner, tc); */
                    assert(owner == GLOBAL);         /* vt_list_push_front(bin, page) */
                    GHOST(pg == H_GLOBAL);
                    owner = self;
                    pg = me;
                    inbin[me] = 1;
                    ok = 0
                };
                EVENT(6)                             /* 6: adopted */
            :: else -> take_empty_page(); break
            fi
        od
    fi
}

/* ---- free ------------------------------------------------------------------------------ */

/* block->next = page->free; page->free = block; --page->used: owner only. */
inline local_push()
{
    d_step {
        assert(MINE && holder[b] == me);
        assert(((freel | remote | PENDM) & BIT(b)) == 0);
        freel = freel | BIT(b);
        holder[b] = 0;
        assert(used > 0);
        used--
    }
}

/* if (--page->used == 0) vt_tcache_page_emptied(tc, page): the class's current page stays;
 * another is unassigned (release_empty_page): its run goes to the stash, or to the global
 * cache (vt_global_put_run for longer runs, vt_global_put_pages for the stash's surplus). */
inline maybe_emptied()
{
    if
    :: used == 0 ->
        if
        :: true -> skip                              /* alloc_page[class] == page */
        :: true ->
            inbin[me] = 0;                           /* vt_list_remove(bin, page) */
            unassign(me);
            EVENT(10);                               /* 10: an emptied page leaves */
            if
            :: true -> skip                          /* stays in the stash */
            :: true -> lock(); units = U_GLOBAL; unlock()
            fi
        fi
    :: else -> skip
    fi
}

/* vt_api_free(block b) by the thread holding it. */
inline do_free()
{
    o = owner;                         /* vt_page_owner(page): relaxed load */
    if
    :: o == self ->                    /* vt_api_free's fast path */
        local_push();
        maybe_emptied()
    :: o == (self | DET) ->            /* free_other: its own detached page */
        if
        :: true ->                     /* bins[class].count < class_pages: try_reattach */
#if !defined(OLD_REVOKE)
#ifndef BUG_REATTACH_NO_CAS
            d_step {                   /* FIX: CAS(&remote, FULL|self, 0) */
                if
                :: remote == (FULL | TAG(me)) -> remote = 0; tok = me; ok = 1
                :: else -> skip
                fi
            }
#else
            ok = (remote == (FULL | TAG(me)));  /* BUG: a load, then a plain store */
            if
            :: ok -> d_step { remote = 0; tok = me }
            :: else -> skip
            fi;
#endif
            if
            :: ok ->
                d_step {               /* store(&owner, self) */
                    assert(owner == (self | DET));
                    GHOST(pg == H_NONE);
                    owner = self;
                    pg = me
                }
            :: else -> skip
            fi
#elif defined(BUG_REATTACH_NO_CAS)
            ok = (owner == (self | DET));   /* BUG: a load, then a plain store */
            if
            :: ok -> d_step { owner = self; GHOST(pg == H_NONE); pg = me }
            :: else -> skip
            fi
#else
            d_step {                   /* CAS(&owner, self|DET, self, acquire) */
                if
                :: owner == (self | DET) ->
                    owner = self;
                    GHOST(pg == H_NONE);
                    pg = me;
                    ok = 1
                :: else -> skip
                fi
            }
#endif
#ifdef OLD_REVOKE
            if
            :: ok ->
                d_step {               /* fetch_and(&remote, ~FULL, relaxed) */
                    if
                    :: (remote & FULL) != 0 -> tok = me
                    :: else -> skip
                    fi;
                    remote = remote & ~FULL
                }
            :: else -> skip
            fi
#endif
        :: true -> skip                /* the bin is full: the remote path */
        fi
    :: else -> skip
    fi;
    if
    :: o == self -> skip
    :: o != self && ok ->              /* reattached: block->next = page->free; ...; */
        ok = 0;                        /* vt_list_push_back(bin, page); --used */
#ifdef COVER
        EVENT(3);                      /* 3: reattached */
        if
        :: exited -> EVENT(14)         /* 14: ... by a new thread on a pooled cache */
        :: else -> skip
        fi;
#endif
        local_push();
        inbin[me] = 1;
        maybe_emptied()
    :: o != self && !ok ->             /* the remote path */
#ifdef COVER
        if
        :: o == (self | DET) -> EVENT(5)   /* 5: its own detached page, not taken back */
        :: else -> skip
        fi;
#endif
#ifdef BUG_REVOKE_NO_HANDSHAKE
        /* BUG: the freer pushes and, if the owner it read was detached, revokes at once,
         * without the FULL handshake */
        d_step { holder[b] = 0; remote = LISTOF(remote) | BIT(b) }
        if
        :: (o & DET) != 0 ->
            d_step {
                if
                :: owner == o -> owner = GLOBAL; ok = 1; GHOST(pg == H_NONE); pg = H_GLOBAL
                :: else -> skip
                fi
            }
            if
            :: ok -> ok = 0; put_partial(1)
            :: else -> skip
            fi
        :: else -> skip
        fi
#else
        if
        :: self == me ->               /* gather_remote: the pending chain */
            d_step { holder[b] = 0; pend[me] = pend[me] | BIT(b) }
            if
            :: CNT(pend[me]) >= BATCH ->             /* ++chain->count >= BATCH */
#ifdef COVER
                if
                :: CNT(pend[me]) > 1 -> EVENT(12)    /* 12: one CAS for a chain */
                :: else -> skip
                fi;
#endif
                flush()
            :: else -> skip
            fi
        :: else ->                     /* tc->state != LIVE: push_remote(page, b, b, 1) */
            EVENT(13);                 /* 13: a free after the thread's exit */
            d_step { holder[b] = 0; pend[me] = BIT(b) }
            flush()
        fi
#endif
    fi;
    o = 0;
    b = 0
}

/* ---- thread exit ----------------------------------------------------------------------- */

/* vt_tcache_thread_exit -> abandon: flush_pending; an attached page: vt_list_remove; collect if
 * page->free is empty; unassign (used == 0) or store owner = GLOBAL; the stash and the pages
 * go to the global cache under the lock (vt_global_put_pages). */
inline abandon()
{
    if
    :: pend[me] != 0 -> flush()
    :: else -> skip
    fi;
    if
    :: inbin[me] ->
        inbin[me] = 0;
        if
        :: freel == 0 -> collect_remote()
        :: else -> skip
        fi;
        if
        :: used == 0 -> unassign(me); EVENT(8)   /* on the `empty` list. 8 */
        :: else ->
            d_step {                   /* store(&owner, GLOBAL, relaxed) */
                assert(MINE);
                owner = GLOBAL;
                pg = H_GLOBAL
            }
            ok = 1                     /* on the `partial` list */
        fi
    :: else -> skip
    fi;
    if
    :: ok -> ok = 0; EVENT(7); put_partial(0)   /* 7: an exit hands a page over */
    :: else -> skip
    fi;
    if
    :: units == me ->                  /* give_back_locked */
        lock();
        d_step { VT_ASSERT(owner == FREEP); units = U_GLOBAL };
        unlock()
    :: else -> skip
    fi
}

/* ---- threads --------------------------------------------------------------------------- */

proctype thread(byte me; byte budget)
{
    byte self = me;                    /* vt_thread.tcache: the thread's cache, or EXITED */
    byte b, o, old, head;
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
    /* a chain also goes when another page needs its slot, and at malloc_trim */
    :: pend[me] != 0 -> flush()
    /* malloc_trim (vt_global_trim), or a malloc of another class that finds no free run
     * (take_runs): collect_partial_locked reaches this page on the global list */
    :: self == me && budget > 0 && onglobal ->
        budget--;
        lock();
        collect_partial_locked();
        unlock()
    /* the thread exits; its cache goes to the pool, and may serve a new thread */
    :: me == EXITER && !exited ->
        abandon();
        exited = 1;
        if
        :: self = EXITED               /* TLS = &exited: every later free is remote */
        :: skip                        /* a new thread gets this cache */
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

/* ---- The end: every block freed; whoever owns the page collects ----------------------- */

active proctype final()
{
    ndone == NT;
    d_step {
        assert(glock == 0 && LIVEM == 0 && PENDM == 0);
        if
        :: owner == FREEP -> assert(units != U_ASSIGNED); GHOST(pg == H_UNITS)
        :: owner == GLOBAL -> assert(onglobal); GHOST(pg == H_GLOBAL)
        :: owner >= 1 && owner <= 3 -> assert(inbin[owner]); GHOST(pg == owner)
        /* still detached with every block freed: its first free should have revoked or
         * reattached it; nobody will ever collect it (its blocks are lost) */
        :: else -> assert(false)
        fi;
        if
        :: owner != FREEP ->
            VT_ASSERT((remote & FULL) == 0);
#ifndef OLD_REVOKE
            assert((remote & ~ALL) == 0);
#endif
            freel = freel | RLIST;
            used = used - CNT(RLIST);
            remote = 0
        :: else -> assert(RLIST == 0)
        fi;
        assert(used == 0 && freel == ALL)
    }
}

init
{
    atomic {
        run thread(1, B1);
        run thread(2, B2);
#if NT >= 3
        run thread(3, B3);
#else
        done[3] = 1
#endif
    }
}
