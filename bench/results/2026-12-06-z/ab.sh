#!/bin/bash
# A/B: base (a62f96c), a7 (32 KiB units, stash 8), a7env (same library, VTMALLOC_STASH_UNITS=16 BATCH_UNITS=16 RESERVE_SPANS=8)
cd /work/main
B=/tmp/base/b/libvtmalloc.so; A=/work/main/build/libvtmalloc.so
ENV16="VTMALLOC_STASH_UNITS=16 VTMALLOC_BATCH_UNITS=16 VTMALLOC_RESERVE_SPANS=8"
run() { # name cmd...
  local n=$1; shift
  case $n in base) env LD_PRELOAD=$B "$@";; a7) env LD_PRELOAD=$A "$@";; a7env) env $ENV16 LD_PRELOAD=$A "$@";; glibc) "$@";; esac
}
for r in 1 2 3; do for n in base a7 a7env glibc; do
  echo "$r $n $(run $n build/bench-bin/soak -p long -q 2>&1 | grep '^RESULT' | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=' | tr '\n' ' ')"
done; done > /tmp/z2/soak.txt
for w in larson waves; do for r in 1 2 3 4 5; do for n in base a7 a7env; do
  echo "$r $n $(run $n build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ')"
done; done > /tmp/z2/$w.txt; done
for t in 2 8; do for r in 1 2 3 4; do for n in base a7 a7env; do
  echo "$r $n $(run $n build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' | awk '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", b, pk, f}')"
done; done > /tmp/z2/churn$t.txt; done
echo done > /tmp/z2/DONE
