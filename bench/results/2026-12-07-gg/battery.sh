#!/bin/bash
# The peer comparisons at the checked-out commit, one after the other (outputs in ${OUT:-/tmp/gg/bat}).
cd "$(git rev-parse --show-toplevel)"
O=${OUT:-/tmp/gg/bat}
mkdir -p "$O"
t() { s=$(date +%s); "$@"; echo "$1 $(( $(date +%s)-s ))s" >> $O/times; }
t bench/run-patterns --reps 3 --no-install > $O/patterns.log 2>&1; cp bench/out/patterns.* $O/ 2>/dev/null
t bench/run-server --reps 5 --no-install > $O/server.log 2>&1; cp bench/out/server.* $O/
t bench/run-soak --long --reps 2 --no-install --out $O/soak > $O/soak.log 2>&1
t bench/main --full --no-install --out $O/memtest > $O/main.log 2>&1
t bench/run-instr --no-install --out $O/instr > $O/instr.log 2>&1
echo done >> $O/times
