#!/usr/bin/env bash
# check.sh - model-checks the page ownership protocol (ownership.pml) with spin.
#
# Runs spin -a, compiles pan with gcc and runs an exhaustive safety search (assertions,
# invariants, invalid end states) for each entry of RUNS below, and prints one line per run:
# the verdict, the states stored, the depth reached, the time. Exits 0 only when every run
# gives what it expects: no error for the models of a correct protocol, an error for every
# deliberately broken variant (so the checker is shown to bite), and, for the coverage runs,
# the one assertion that proves the event reachable.
#
# Usage: tests/spin/check.sh [--quick] [--keep]
#   --quick   skip the coverage runs
#   --keep    keep the work directory (pan sources, logs, trails) even when all is well
# Environment: SPIN_JOBS (parallel runs, default 2), TMPDIR.
# Needs spin and gcc. Works from any directory. A failing run's trail stays in the work
# directory, whose path is printed: replay it with
#   cd <dir>/<run> && spin -t -p <flags> ownership.pml
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$here/ownership.pml"
quick=0
keep=0
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--quick] [--keep]" >&2; exit 2 ;;
    esac
done
for tool in spin gcc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found" >&2
        exit 2
    fi
done

jobs_max=${SPIN_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/vt-spin.XXXXXX") || exit 2

# name | expect (pass, error, or cover:N) | spin -D flags
#
# "protocol" is the protocol as src/page.c and src/tcache.c implement it (the detach's mark
# names the cache and is consumed by exactly one atomic operation); the other "pass" runs vary
# its sizes. "old-revoke" is the earlier protocol (a remote freer CASed the owner word from
# T|DET to GLOBAL), which spin showed wrong: it must keep failing. The broken variants are
# mutations of the current protocol, so their errors come from the mutation alone.
RUNS=(
    "protocol|pass|"
    "protocol-batch1|pass|-DBATCH=1"
    "protocol-cap3|pass|-DCAP=3"
    "protocol-3threads|pass|-DNT=3 -DB1=2 -DB2=2 -DB3=1"
    "old-revoke|error|-DOLD_REVOKE"
    "bug-detach-store|error|-DBUG_DETACH_STORE"
    "bug-detach-order|error|-DBUG_DETACH_ORDER"
    "bug-reattach-no-cas|error|-DBUG_REATTACH_NO_CAS"
    "bug-revoke-no-handshake|error|-DBUG_REVOKE_NO_HANDSHAKE"
)
if [ "$quick" = 0 ]; then
    for n in $(seq 1 15); do
        RUNS+=("cover-$n|cover:$n|-DCOVER=$n")
    done
fi

# One run: writes <dir>/summary (one line) and <dir>/verdict (ok or FAIL).
run_one() {
    local name=$1 expect=$2 flags=$3
    local dir="$work/$name"
    mkdir -p "$dir"
    cp "$model" "$dir/ownership.pml"
    cd "$dir" || return
    local opt=-O1
    [ "$expect" = pass ] || opt=-O0 # short runs: compile time dominates
    # shellcheck disable=SC2086 # flags are words
    if ! spin $flags -a ownership.pml >spin.log 2>&1 ||
        ! gcc $opt -DSAFETY -DCOLLAPSE -DMEMLIM=1536 -o pan pan.c >gcc.log 2>&1; then
        echo "FAIL $name: spin or gcc failed (see $dir)" >summary
        echo FAIL >verdict
        return
    fi
    local t0 t1
    t0=$(date +%s.%N)
    ./pan -m1000000 -w24 >pan.log 2>&1
    t1=$(date +%s.%N)
    local errors states depth what secs incomplete=0
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -n1)
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | head -n1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' pan.log | head -n1)
    what=$(sed -n 's/^pan:1: \(.*\) (at depth.*/\1/p' pan.log | head -n1 | cut -c1-90)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    grep -qE 'max search depth too small|reached -DMEMLIM|out of memory' pan.log && incomplete=1
    : "${errors:=?}" "${states:=?}" "${depth:=?}"
    local verdict=FAIL
    case "$expect" in
    pass) [ "$errors" = 0 ] && [ "$incomplete" = 0 ] && verdict=ok ;;
    error) [ "$errors" != 0 ] && [ "$errors" != '?' ] && verdict=ok ;;
    cover:*) case "$what" in *"(${expect#cover:}!=${expect#cover:})"*) verdict=ok ;; esac ;;
    esac
    local line
    line=$(printf '%-4s %-24s expect %-8s errors=%s states=%s depth=%s time=%ss' \
        "$verdict" "$name" "$expect" "$errors" "$states" "$depth" "$secs")
    [ "$incomplete" = 1 ] && line="$line (search incomplete)"
    [ -n "$what" ] && line="$line: $what"
    echo "$line" >summary
    echo "$verdict" >verdict
}

running=0
for entry in "${RUNS[@]}"; do
    IFS='|' read -r name expect flags <<<"$entry"
    (run_one "$name" "$expect" "$flags") &
    running=$((running + 1))
    if [ "$running" -ge "$jobs_max" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
for entry in "${RUNS[@]}"; do
    IFS='|' read -r name expect flags <<<"$entry"
    cat "$work/$name/summary" 2>/dev/null || echo "FAIL $name: no result"
    [ "$(cat "$work/$name/verdict" 2>/dev/null)" = ok ] || failed=$((failed + 1))
done

if [ "$failed" -gt 0 ]; then
    echo "check.sh: $failed of ${#RUNS[@]} runs did not give what they expect; work directory: $work"
    exit 1
fi
echo "check.sh: all ${#RUNS[@]} runs as expected"
if [ "$keep" = 1 ]; then
    echo "work directory: $work"
else
    rm -rf "$work"
fi
exit 0
