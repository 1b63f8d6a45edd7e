#!/bin/bash
# churnenv.sh THREADS ROUNDS variant...
T=$1; R=$2; shift 2
for i in $(seq $R); do for v in "$@"; do
  E=""; n=${v%%:*}; [ "$n" != "$v" ] && E=$(echo ${v#*:} | tr ',' ' ')
  case $n in tc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; glibc) L=;; *) L=/tmp/o/vt-$n.so;; esac
  env $E LD_PRELOAD=$L /work/main/build/bench/memtest -w churn -t $T -n 1000000 -c 5000 -q 2>&1 | grep RESULT | sed -E "s/.*ops_per_s=([0-9]+).*peak_rss_kb=([0-9]+).*tables_kb=([0-9]+).*faults_per_mop=([0-9.]+).*/$v \1 \2 \3 \4/" | awk '{print $1, $2, $3-$4, $5}'
done; done
