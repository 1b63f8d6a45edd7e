#!/bin/sh
# base (HEAD, defaults) against alone44 with VTMALLOC_STASH_UNITS=32, interleaved
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*'
for r in 1 2 3; do
 for v in base alone44s32; do
  if [ $v = base ]; then L=/tmp/bb/base.so; E=X=1; else L=/tmp/bb/alone44.so; E=VTMALLOC_STASH_UNITS=32; fi
  echo "$r $v soak $(env $E LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $v churn8 $(env $E LD_PRELOAD=$L build/bench/memtest -w churn -t 8 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $v churn2 $(env $E LD_PRELOAD=$L build/bench/memtest -w churn -t 2 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $v larson $(env $E VTMALLOC_STATS=1 LD_PRELOAD=$L build/bench/server -w larson 2>&1 | grep 'RESULT\|global lock' | grep -o "$F\|lock *[0-9]*" | tr '\n' ' ')"
  for w in 1 2; do
  echo "$r $v waves $(env $E VTMALLOC_STATS=1 LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep 'RESULT\|global lock' | grep -o "$F\|lock *[0-9]*" | tr '\n' ' ')"
  done
  echo "$r $v fork-join $(env $E VTMALLOC_STATS=1 LD_PRELOAD=$L build/bench/patterns -p fork-join 2>&1 | grep 'RESULT\|global lock' | grep -o "ns_per_op=[0-9.]*\|peak_rss_kb=[0-9]*\|lock *[0-9]*" | tr '\n' ' ')"
 done
done
echo done
