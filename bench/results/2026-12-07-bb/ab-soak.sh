#!/bin/sh
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|growth_last=[0-9.]*'
for r in 1 2 3 4; do
 for l in base alone44; do
  L=/tmp/bb/$l.so
  echo "$r $l soak $(LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l waves $(LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $l waves $(LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
 done
done
echo done
