#!/bin/bash
cd "$(git rev-parse --show-toplevel)"
L=${LIB:?build of adopted-global.diff}
for r in 1 2 3 4 5 6; do for m in 0 1 2; do
  for t in 2 8; do echo "$r churn$t m=$m $(DBG_ADOPTED=$m LD_PRELOAD=$L /usr/bin/time -f 'cpu=%U+%S' build/bench/memtest -w churn -t $t -q 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
  for w in larson waves; do echo "$r $w m=$m $(DBG_ADOPTED=$m LD_PRELOAD=$L /usr/bin/time -f 'cpu=%U+%S' build/bench/server -w $w 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
done; done
