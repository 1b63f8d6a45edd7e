#!/bin/bash
# soak5.sh ROUNDS: soak long (bench-bin/soak -p long -q) for glibc, vtmalloc and tcmalloc, interleaved.
R=${1:-5}
for i in $(seq $R); do for a in glibc vtmalloc tcmalloc; do
  case $a in glibc) L=;; vtmalloc) L=/work/main/build/libvtmalloc.so;; tcmalloc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; esac
  LD_PRELOAD=$L /work/main/build/bench-bin/soak -p long -q 2>&1 | grep '^RESULT' | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|growth_last|growth_max|faults_per_mop)=' | tr '\n' ' ' | sed "s/^/$i $a /"; echo
done; done
