#!/bin/sh
cd /work/main
F='ops_per_s=[0-9.]*\|requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*'
for r in 1 2; do
 for v in base alone44 keep4 keep8; do
  case $v in base) L=/tmp/bb/base.so; E=X=1;; alone44) L=/tmp/bb/alone44.so; E=X=1;; keep4) L=/tmp/bb/keepone.so; E=DBG_KEEP_ONE=4;; keep8) L=/tmp/bb/keepone.so; E=DBG_KEEP_ONE=8;; esac
  for w in 1 2 3; do
  echo "$r $v waves $(env $E VTMALLOC_STATS=1 LD_PRELOAD=$L build/bench/server -w waves 2>&1 | grep 'RESULT\|global lock' | grep -o "$F\|lock *[0-9]*" | tr '\n' ' ')"
  done
  echo "$r $v soak $(env $E LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
  echo "$r $v churn8 $(env $E LD_PRELOAD=$L build/bench/memtest -w churn -t 8 -q 2>&1 | grep RESULT | grep -o "$F" | tr '\n' ' ')"
 done
done
echo done
