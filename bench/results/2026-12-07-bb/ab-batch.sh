#!/bin/sh
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|growth_last=[0-9.]*'
for r in 1 2 3; do
 for l in base batch; do
  L=/tmp/bb/$l.so
  echo "$r $l soak $(LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l churn8 $(LD_PRELOAD=$L build/bench/memtest -w churn -t 8 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l churn2 $(LD_PRELOAD=$L build/bench/memtest -w churn -t 2 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l waves $(LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l waves $(LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l larson $(LD_PRELOAD=$L build/bench/server -w larson 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l xthread $(LD_PRELOAD=$L build/bench/memtest -w xthread -t 2 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
 done
done
echo done
