#!/usr/bin/env bash
# valgrind's Memcheck on a program that uses vtmalloc, as docs/valgrind.md tells: preloaded
# and linked with --soname-synonyms=somalloc=*vtmalloc*, statically linked with
# somalloc=NONE, and through the launcher. A clean run must report no error
# (--error-exitcode=1), and errors planted in the probe (a read past a block, a lost block)
# must be reported, which shows that Memcheck's allocator replaced vtmalloc's. As a control,
# with interception turned off the probe runs on vtmalloc and the overflow goes unseen.
#
# Usage: valgrind.sh LIBRARY PROBE PROBE_LINKED PROBE_STATIC LAUNCHER WORK_DIR
set -uo pipefail

lib=$1 probe=$2 probe_linked=$3 probe_static=$4 launcher=$5 work=$6
if ! command -v valgrind >/dev/null; then
    echo "FAIL: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
rm -rf "$work"
mkdir -p "$work"
fails=0
n=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

vg=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)
synonym='--soname-synonyms=somalloc=*vtmalloc*'

# run WANT_STATUS DESCRIPTION COMMAND... ; the log is $log
run() {
    local want=$1 what=$2 got
    shift 2
    n=$((n + 1))
    log=$work/run$n.log
    printf '%s\n' "$*" >"$log"
    "$@" >>"$log" 2>&1
    got=$?
    if [[ $got == "$want" ]]; then
        echo "ok: $what (status $got)"
    else
        fail "$what: status $got, expected $want; log $log:"
        sed 's/^/    /' "$log" | tail -n 30 >&2
    fi
}
expect_log() { # TEXT DESCRIPTION
    if grep -qF -- "$1" "$log"; then echo "ok: $2"; else fail "$2: '$1' not in $log"; fi
}
expect_not_log() { # TEXT DESCRIPTION
    if grep -qF -- "$1" "$log"; then fail "$2: '$1' in $log"; else echo "ok: $2"; fi
}

echo "== preloaded, $synonym"
run 0 "clean threaded run" env LD_PRELOAD="$lib" "${vg[@]}" "$synonym" "$probe" work
expect_log "ERROR SUMMARY: 0 errors" "no error reported"
expect_log "probe: work done" "the program ran to the end"
run 1 "read past a block" env LD_PRELOAD="$lib" "${vg[@]}" "$synonym" "$probe" overflow
expect_log "Invalid read of size 1" "the overflow is reported"
expect_log "0 bytes after a block of size 24 alloc'd" "against the block malloc returned"
run 1 "a lost block" env LD_PRELOAD="$lib" "${vg[@]}" "$synonym" "$probe" leak
expect_log "1,000 bytes in 1 blocks are definitely lost" "the leak is reported"
# The program's malloc is Memcheck's now: its blocks are not vtmalloc's, which vtmalloc's own
# API (still vtmalloc's) reports, as docs/valgrind.md warns.
run 134 "vt_ calls on malloc's blocks" env LD_PRELOAD="$lib" "${vg[@]}" "$synonym" "$probe" vtmalloc
expect_log "invalid pointer (not a live vtmalloc block)" "vtmalloc does not own malloc's blocks"

echo "== through the launcher: vtmalloc valgrind $synonym PROGRAM"
run 0 "clean run" "$launcher" "${vg[@]}" "$synonym" "$probe" work
expect_log "ERROR SUMMARY: 0 errors" "no error reported"
run 1 "read past a block" "$launcher" "${vg[@]}" "$synonym" "$probe" overflow
expect_log "Invalid read of size 1" "the overflow is reported"

echo "== linked with -lvtmalloc, $synonym"
run 0 "clean run" "${vg[@]}" "$synonym" "$probe_linked" work
expect_log "ERROR SUMMARY: 0 errors" "no error reported"
run 1 "read past a block" "${vg[@]}" "$synonym" "$probe_linked" overflow
expect_log "Invalid read of size 1" "the overflow is reported"

echo "== linked with libvtmalloc.a, --soname-synonyms=somalloc=NONE"
run 0 "clean run" "${vg[@]}" --soname-synonyms=somalloc=NONE "$probe_static" work
expect_log "ERROR SUMMARY: 0 errors" "no error reported"
run 1 "read past a block" "${vg[@]}" --soname-synonyms=somalloc=NONE "$probe_static" overflow
expect_log "Invalid read of size 1" "the overflow is reported"
run 1 "a lost block" "${vg[@]}" --soname-synonyms=somalloc=NONE "$probe_static" leak
expect_log "definitely lost" "the leak is reported"

echo "== control: interception off (somalloc=nouserintercepts), as an old valgrind without the option"
run 0 "the probe runs on vtmalloc under valgrind" env LD_PRELOAD="$lib" "${vg[@]}" \
    --soname-synonyms=somalloc=nouserintercepts "$probe" vtmalloc
expect_log "probe: malloc is vtmalloc's" "malloc is vtmalloc's"
run 0 "the overflow goes unseen" env LD_PRELOAD="$lib" "${vg[@]}" \
    --soname-synonyms=somalloc=nouserintercepts "$probe" overflow
expect_not_log "Invalid read" "Memcheck is blind to vtmalloc's blocks"

if ((fails)); then
    echo "valgrind: $fails check(s) failed" >&2
    exit 1
fi
echo "valgrind: every check passed"
