#!/bin/bash
# run.sh WORKLOAD ROUNDS variant...   variant: base | new | v3:IDLE | glibc
W=$1; R=$2; shift 2
for i in $(seq $R); do for v in "$@"; do
  E=""; case $v in glibc) L=;; tc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; v3:*) L=/tmp/o/vt-v3.so; E="SCR_IDLE=${v#v3:}";; pct*) L=/tmp/o/vt-pct.so; E="SCR_PCT=${v#pct}";; one) L=/tmp/o/vt-one.so; E="SCR_ONE=1";; k*) L=/tmp/o/vt-k.so; E="SCR_KEEP=${v#k}";; *) L=/tmp/o/vt-$v.so;; esac
  case $W in
  churn*) env $E LD_PRELOAD=$L /work/main/build/bench/memtest -w churn -t ${W#churn} -n 1000000 -c 5000 -q 2>&1 | grep RESULT | sed -E "s/.*ops_per_s=([0-9]+).*peak_rss_kb=([0-9]+).*tables_kb=([0-9]+).*faults_per_mop=([0-9.]+).*/$v \1 \2 \4/";;
  waves) env $E LD_PRELOAD=$L /work/main/build/bench/server -w waves 2>&1 | grep RESULT | sed -E "s/.*ops_per_s=([0-9]+) peak_rss_kb=([0-9]+) minflt=([0-9]+) faults_per_mop=([0-9]+).*growth=([0-9.]+).*/$v \1 \2 \4 \5/";;
  larson) env $E LD_PRELOAD=$L /work/main/build/bench/server -w larson 2>&1 | grep RESULT | sed -E "s/.*ops_per_s=([0-9]+) peak_rss_kb=([0-9]+) minflt=([0-9]+) faults_per_mop=([0-9]+).*/$v \1 \2 \4/";;
  esac
done; done
