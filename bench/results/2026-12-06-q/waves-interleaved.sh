#!/bin/bash
# interleaved waves runs: wv.sh ROUNDS name...
R=$1; shift
for i in $(seq $R); do for v in "$@"; do
  case $v in tc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; glibc) L=;; *) L=/tmp/o/vt-$v.so;; esac
  LD_PRELOAD=$L /work/main/build/bench/server -w waves 2>&1 | grep RESULT | sed -E "s/.*seconds=([0-9.]+).*ops_per_s=([0-9]+) peak_rss_kb=([0-9]+) minflt=([0-9]+) faults_per_mop=([0-9]+).*growth=([0-9.]+).*/$v \2 \3 \5 \6/"
done; done
