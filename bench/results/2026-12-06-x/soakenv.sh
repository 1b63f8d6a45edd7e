#!/bin/bash
# soakenv.sh ROUNDS ENV...: soak long with vtmalloc (build/) under each environment (X=1: none), interleaved
R=$1; shift
for i in $(seq $R); do for e in "$@"; do
  env $e LD_PRELOAD=/work/main/build/libvtmalloc.so /work/main/build/bench-bin/soak -p long -q 2>&1 | grep -E "^RESULT" | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=' | tr '\n' ' ' | sed "s/^/$i [$e] /"; echo
done; done
