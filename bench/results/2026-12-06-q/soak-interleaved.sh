#!/bin/bash
R=$1; shift
for i in $(seq $R); do for v in "$@"; do
  case $v in tc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; glibc) L=;; *) L=/tmp/o/vt-$v.so;; esac
  LD_PRELOAD=$L /work/main/build/bench-bin/soak -p quick -q 2>&1 | grep '^RESULT' | sed -E "s/.*requests_per_s=([0-9.]+).* peak_rss_kb=([0-9]+).*growth_max=([0-9.]+).*idle_rss_kb=([0-9]+).*faults_per_mop=([0-9.]+).*/$v \1 \2 \3 \4 \5/"
done; done
