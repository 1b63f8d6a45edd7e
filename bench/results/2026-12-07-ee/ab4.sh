#!/bin/bash
# usage: LIB=lib NEWENV="X=1" ab4.sh rounds: as ab3.sh, one library with and without NEWENV
cd "$(git rev-parse --show-toplevel)"
for r in $(seq 1 ${1:-5}); do for v in base new; do
  E="NONE=1"; [ $v = new ] && E=$NEWENV
  for t in 2 8; do echo "$r churn$t v=$v $(env $E LD_PRELOAD=$LIB /usr/bin/time -f 'cpu=%U+%S' build/bench/memtest -w churn -t $t -q 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
  for w in larson waves; do echo "$r $w v=$v $(env $E LD_PRELOAD=$LIB VTMALLOC_STATS=1 /usr/bin/time -f 'cpu=%U+%S' build/bench/server -w $w 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*\|global lock *[0-9]*' | tr -s ' ' | sed 's/global lock /locks=/' | tr '\n' ' ')"; done
  echo "$r soakq v=$v $(env $E LD_PRELOAD=$LIB VTMALLOC_STATS=1 build/tests/soak -p quick -q 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|global lock *[0-9]*' | tr -s ' ' | sed 's/global lock /locks=/' | tr '\n' ' ')"
done; done
