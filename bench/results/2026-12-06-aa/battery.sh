#!/bin/bash
# The four peer comparisons, one after the other, at the checked-out commit (outputs in /tmp/aa/bat).
cd /work/main
O=/tmp/aa/bat
s=$(date +%s)
bench/run-server --reps 5 --no-install > $O/server.log 2>&1; echo "server $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/run-soak --long --reps 2 --no-install --out $O/soak > $O/soak.log 2>&1; echo "soak $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/main --full --no-install --out $O/memtest > $O/main.log 2>&1; echo "main $(( $(date +%s)-s ))s" >> $O/times
s=$(date +%s)
bench/run-patterns --reps 3 --no-install > $O/patterns.log 2>&1; echo "patterns $(( $(date +%s)-s ))s" >> $O/times
echo done >> $O/times
