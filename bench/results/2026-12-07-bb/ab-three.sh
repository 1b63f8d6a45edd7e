#!/bin/sh
# A/B: base.so (HEAD) vs one-clean.so (one block per page for 20-64 KiB classes), interleaved.
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|mops=[0-9.]*\|peak_rss_kb=[0-9]*\|tables_kb=[0-9]*\|faults_per_mop=[0-9.]*\|growth_last=[0-9.]*\|ns_per_op=[0-9.]*'
for r in 1 2 3; do
 for l in base one-clean alone44; do
  L=/tmp/bb/$l.so
  echo "$r $l churn8 $(LD_PRELOAD=$L build/bench/memtest -w churn -t 8 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l churn2 $(LD_PRELOAD=$L build/bench/memtest -w churn -t 2 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l waves $(LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l larson $(LD_PRELOAD=$L build/bench/server -w larson 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  for p in loop-40k loop-64k loop-200k round-robin; do
   echo "$r $l $p $(LD_PRELOAD=$L build/bench/patterns -p $p 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  done
  echo "$r $l soak $(LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
 done
done
echo done
