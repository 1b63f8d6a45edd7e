#!/bin/sh
cd /work/main
for r in 1 2; do
 for s in X=1 VTMALLOC_LARGE_CACHE=0 VTMALLOC_LARGE_CACHE=8 glibc; do
  if [ $s = glibc ]; then out=$(build/tests/soak -p long -q 2>&1 | grep -o 'requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|growth_last=[0-9.]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')
  else out=$(LD_PRELOAD=/tmp/bb/base.so env $s build/tests/soak -p long -q 2>&1 | grep -o 'requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|growth_last=[0-9.]*\|faults_per_mop=[0-9.]*' | tr '\n' ' '); fi
  echo "$r $s $out"
 done
done
echo done
