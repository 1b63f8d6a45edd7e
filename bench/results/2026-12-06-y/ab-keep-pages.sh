#!/bin/bash
# ab-keep-pages.sh OUTDIR: larson and waves (bench/server), 6 interleaved rounds: the build, scrK, scrK2 and scrK3
# (scratch-experiments.diff), run from the repository root.
out=$1
B=/work/main/build/libvtmalloc.so
for w in larson waves; do
  for r in 1 2 3 4 5 6; do for L in $B /tmp/scrK/b/libvtmalloc.so /tmp/scrK2/b/libvtmalloc.so /tmp/scrK3/b/libvtmalloc.so; do
    LD_PRELOAD=$L build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' | grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |"; echo
  done; done > $out/keep-pages-$w.txt
done
