#!/bin/bash
cd /work/main
s=$(date +%s)
bench/run-server --reps 5 --no-install > /tmp/z/server.log 2>&1; echo "server $(( $(date +%s)-s ))s" >> /tmp/z/times
s=$(date +%s)
bench/run-soak --long --reps 2 --no-install --out /tmp/z/soak > /tmp/z/soak.log 2>&1; echo "soak $(( $(date +%s)-s ))s" >> /tmp/z/times
s=$(date +%s)
bench/main --full --no-install --out /tmp/z/memtest > /tmp/z/main.log 2>&1; echo "main $(( $(date +%s)-s ))s" >> /tmp/z/times
s=$(date +%s)
bench/run-patterns --reps 3 --no-install > /tmp/z/patterns.log 2>&1; echo "patterns $(( $(date +%s)-s ))s" >> /tmp/z/times
