#!/bin/bash
# A/B: main (A) vs u16 (B), interleaved
A=/work/main/build/libvtmalloc.so; B=/tmp/u16/build/libvtmalloc.so
M=/work/main/build/bench
for r in 1 2 3; do
 for v in A B; do L=${!v}
  for t in 2 8; do echo "$v churn$t $(env LD_PRELOAD=$L $M/memtest -w churn -t $t -n 1000000 -c 10000 -q | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"; done
  for w in waves larson; do echo "$v $w $(env LD_PRELOAD=$L $M/server -w $w 2>&1 | tail -1 | grep -o 'ops_per_s=[0-9.]*\|mops=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"; done
 done
done
