#!/bin/bash
# bestfit-ab.sh ROUNDS: soak long with the scratch library (LIB, default /tmp/scr1/b/libvtmalloc.so,
# built as the README says), SCR_BESTFIT=0 and 1 interleaved; prints the peak's figures and the
# scratch library's counts of fresh takes.
LIB=${LIB:-/tmp/scr1/b/libvtmalloc.so}
for i in $(seq ${1:-3}); do for v in 0 1; do
  SCR_BESTFIT=$v LD_PRELOAD=$LIB /work/main/build/bench-bin/soak -p long -q 2>&1 | grep -E "^RESULT|SCR fresh while" | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=|short|long|^[0-9]+;?$' | tr '\n' ' ' | sed "s/^/$i bf=$v /"; echo
done; done
