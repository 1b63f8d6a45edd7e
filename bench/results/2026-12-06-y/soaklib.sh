#!/bin/bash
# soaklib.sh ROUNDS LIB...: soak long for each library (glibc: empty), interleaved
R=$1; shift
for i in $(seq $R); do for L in "$@"; do
  [ "$L" = glibc ] && P= || P=$L
  LD_PRELOAD=$P /work/main/build/bench-bin/soak -p long -q 2>&1 | grep -E "^RESULT" | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$i $L |"; echo
done; done
