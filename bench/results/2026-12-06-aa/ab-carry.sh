#!/bin/bash
# A/B: base (1021a43, /tmp/base2/b) against carry (the working tree, build/): interleaved.
cd /work/main
B=/tmp/base2/b/libvtmalloc.so; A=/work/main/build/libvtmalloc.so
O=${OUT:-/tmp/aa}
run() { local n=$1; shift; case $n in base) env LD_PRELOAD=$B "$@";; carry) env LD_PRELOAD=$A "$@";; glibc) "$@";; esac; }
for w in larson waves; do for r in 1 2 3 4 5; do for n in base carry; do
  echo "$r $n $(run $n build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ')"
done; done > $O/$w.txt; done
for t in 2 8; do for r in 1 2 3 4; do for n in base carry; do
  echo "$r $n $(run $n build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' | awk '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", b, pk, f}')"
done; done > $O/churn$t.txt; done
for r in 1 2 3; do for n in base carry glibc; do
  echo "$r $n $(run $n build/tests/soak -p long -q 2>&1 | grep '^RESULT' | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|growth_max|faults_per_mop)=' | tr '\n' ' ')"
done; done > $O/soak.txt
echo done > $O/DONE
