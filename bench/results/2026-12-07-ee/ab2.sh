#!/bin/bash
# usage: LIB=lib NEWENV="X=1" ab2.sh rounds  (base: same lib without NEWENV)
cd "$(git rev-parse --show-toplevel)"
for r in $(seq 1 ${1:-5}); do for v in base new; do
  E="NONE=1"; [ $v = new ] && E=$NEWENV
  for t in 2 8; do echo "$r churn$t v=$v $(env $E LD_PRELOAD=$LIB /usr/bin/time -f 'cpu=%U+%S' build/bench/memtest -w churn -t $t -q 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
  for w in larson waves; do echo "$r $w v=$v $(env $E LD_PRELOAD=$LIB /usr/bin/time -f 'cpu=%U+%S' build/bench/server -w $w 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
  echo "$r soakq v=$v $(env $E LD_PRELOAD=$LIB build/tests/soak -p quick -q 2>&1 | tail -1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"
done; done
