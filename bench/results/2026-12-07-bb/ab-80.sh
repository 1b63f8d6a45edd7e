#!/bin/sh
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*'
for r in 1 2; do
 for l in base alone44 alone80; do
  L=/tmp/bb/$l.so
  echo "$r $l soak $(LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l churn8 $(LD_PRELOAD=$L build/bench/memtest -w churn -t 8 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  for w in 1 2; do
  echo "$r $l waves $(VTMALLOC_STATS=1 LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep 'RESULT\|global lock' | grep -o "$F\|[0-9]*  acquisitions" | tr '\n' ' ')"
  done
 done
done
echo done
