#!/bin/bash
# The peer comparisons at the checked-out commit, one after the other (outputs in ${OUT:-/tmp/ee/bat}).
cd "$(git rev-parse --show-toplevel)"
O=${OUT:-/tmp/ee/bat}
s=$(date +%s)
bench/run-server --reps 5 --no-install > $O/server.log 2>&1; cp bench/out/server.* $O/; echo "server $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/run-soak --long --reps 2 --no-install --out $O/soak > $O/soak.log 2>&1; echo "soak $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/main --full --no-install --out $O/memtest > $O/main.log 2>&1; echo "main $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/run-instr --no-install --out $O/instr > $O/instr.log 2>&1; echo "instr $(( $(date +%s)-s ))s" >> $O/times
echo done >> $O/times
