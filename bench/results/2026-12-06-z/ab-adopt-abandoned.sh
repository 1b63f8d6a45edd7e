#!/bin/bash
cd /work/main
P=/tmp/prev/b/libvtmalloc.so; N=/work/main/build/libvtmalloc.so
for w in larson waves; do for r in 1 2 3 4; do for L in $P $N; do
  echo "$r $L $(LD_PRELOAD=$L build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ')"
done; done > /tmp/z3-$w.txt; done
for t in 8; do for r in 1 2 3; do for L in $P $N; do
  echo "$r $L $(LD_PRELOAD=$L build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' | awk '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", b, pk, f}')"
done; done > /tmp/z3-churn$t.txt; done
for r in 1 2; do for L in $P $N; do
  echo "$r $L $(LD_PRELOAD=$L build/bench-bin/soak -p long -q 2>&1 | grep '^RESULT' | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=' | tr '\n' ' ')"
done; done > /tmp/z3-soak.txt
echo done > /tmp/z3-DONE
