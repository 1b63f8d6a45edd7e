#!/bin/bash
# abcap.sh ROUNDS: soak long, glibc, the scratch library with SCR_CAP=0 (as built) and SCR_CAP=3, interleaved
for i in $(seq ${1:-5}); do for v in glibc 0 3; do
  if [ $v = glibc ]; then L=; E="X=1"; else L=/tmp/scr2/b/libvtmalloc.so; E="SCR_CAP=$v"; fi
  env $E LD_PRELOAD=$L /work/main/build/bench-bin/soak -p long -q 2>&1 | grep -E "^RESULT" | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=' | tr '\n' ' ' | sed "s/^/$i $v /"; echo
done; done
