#!/bin/bash
# soak quick, server waves and larson, memtest churn: vtmalloc with VTMALLOC_OVERSHOOT_MB at 6
# (the default), 4 and 65536 (off), interleaved. usage: overshoot-quick.sh LIB REPS
cd "$(git rev-parse --show-toplevel)"
lib=${1:-build/libvtmalloc.so}; reps=${2:-5}
f=' ops_per_s=[0-9]*\| peak_rss_kb=[0-9]*\| faults_per_mop=[0-9.]*\| growth_last=[0-9.]*'
for r in $(seq 1 "$reps"); do
  for o in 6 4 65536; do
    export VTMALLOC_OVERSHOOT_MB=$o
    echo "$r soak-quick $o $(LD_PRELOAD=$lib build/tests/soak -p quick -q 2>&1 | grep RESULT | grep -o "$f" | tr -d '\n')"
    for w in waves larson; do
      echo "$r $w $o $(LD_PRELOAD=$lib build/bench/server -w $w 2>&1 | grep -o "$f" | tr -d '\n')"
    done
    for t in 2 8; do
      echo "$r churn$t $o $(LD_PRELOAD=$lib build/bench/memtest -w churn -t $t -q 2>&1 | grep -o "$f" | tr -d '\n')"
    done
  done
done
