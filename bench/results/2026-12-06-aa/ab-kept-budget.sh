#!/bin/bash
cd /work/main
O=/tmp/exp1/res; mkdir -p $O
lib() { case $1 in base) echo /work/main/build/libvtmalloc.so;; *) echo /tmp/exp1/$1/libvtmalloc.so;; esac; }
for t in 8 2; do for r in 1 2 3; do for n in base b20 b28 b36; do
  echo "$r $n $(LD_PRELOAD=$(lib $n) build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' | awk '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", b, pk, f}')"
done; done > $O/churn$t.txt; done
for r in 1 2 3; do for n in base b20 b28 b36; do
  echo "$r $n $(LD_PRELOAD=$(lib $n) build/bench/server -w waves | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ')"
done; done > $O/waves.txt
echo done > $O/DONE
