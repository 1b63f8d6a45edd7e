#!/bin/bash
# ab-a7.sh OUTDIR: the build, scrA5 and scrA7 (scrA5 adopting only into classes the thread has a page of)
out=${1:?outdir}; mkdir -p "$out"
LIBS="/work/main/build/libvtmalloc.so /tmp/scrA5/b/libvtmalloc.so /tmp/scrA7/b/libvtmalloc.so"
for w in larson waves; do for r in 1 2 3 4 5 6; do for L in $LIBS; do
  LD_PRELOAD=$L build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |"; echo
done; done > "$out/a7-$w.txt"; done
for t in 1 2; do for r in 1 2 3 4 5; do for L in $LIBS; do
  LD_PRELOAD=$L build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' |
    awk -v L=$L -v r=$r '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "%d %s ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", r, L, b, pk, f}'
done; done > "$out/a7-churn$t.txt"; done
