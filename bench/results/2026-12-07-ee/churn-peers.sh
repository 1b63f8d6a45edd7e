#!/bin/bash
cd "$(git rev-parse --show-toplevel)"
D=/usr/lib/x86_64-linux-gnu
for r in 1 2 3; do for a in glibc vt je tc mi; do
 case $a in glibc) L=;; vt) L=$PWD/build/libvtmalloc.so;; je) L=$D/libjemalloc.so.2;; tc) L=$D/libtcmalloc_minimal.so.4;; mi) L=$D/libmimalloc.so.2;; esac
 for t in 2 8; do echo "$r churn$t $a $(LD_PRELOAD=$L /usr/bin/time -f 'cpu=%U+%S' build/bench/memtest -w churn -t $t -q 2>&1 | grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"; done
done; done
