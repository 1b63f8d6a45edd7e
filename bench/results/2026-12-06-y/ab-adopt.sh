#!/bin/bash
# ab-adopt.sh OUTDIR: the build, scrA (adopt on free), scrU5 (scrU with 64 KiB pages counted as
# short) and scrA5 (scrU5 with adopt on free): larson and waves, 6 interleaved rounds; memtest
# churn at 1 and 2 threads, 5 processes each (-n 4000000 -r 3, the best repetition).
out=${1:?outdir}; mkdir -p "$out"
LIBS="/work/main/build/libvtmalloc.so /tmp/scrA/b/libvtmalloc.so /tmp/scrU5/b/libvtmalloc.so /tmp/scrA5/b/libvtmalloc.so"
for w in larson waves; do for r in 1 2 3 4 5 6; do for L in $LIBS; do
  LD_PRELOAD=$L build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |"; echo
done; done > "$out/adopt-$w.txt"; done
for t in 1 2; do for r in 1 2 3 4 5; do for L in $LIBS; do
  LD_PRELOAD=$L build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' |
    awk -v L=$L -v r=$r '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "%d %s ops_per_s=%.0f peak_rss_kb=%d faults_per_mop=%s\n", r, L, b, pk, f}'
done; done > "$out/adopt-churn$t.txt"; done
