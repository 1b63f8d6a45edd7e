#!/bin/bash
# soakenv.sh ROUNDS variant...  variant: glibc | tc | NAME or NAME:VAR=VAL,VAR=VAL (lib /tmp/o/vt-NAME.so)
R=$1; shift
for i in $(seq $R); do for v in "$@"; do
  E=""; n=${v%%:*}; [ "$n" != "$v" ] && E=$(echo ${v#*:} | tr ',' ' ')
  case $n in tc) L=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; glibc) L=;; *) L=/tmp/o/vt-$n.so;; esac
  env $E LD_PRELOAD=$L /work/main/build/bench-bin/soak -p quick -q 2>&1 | grep '^RESULT' | sed -E "s/.*requests_per_s=([0-9.]+).* peak_rss_kb=([0-9]+).*growth_max=([0-9.]+).*idle_rss_kb=([0-9]+).*faults_per_mop=([0-9.]+).*/$v \1 \2 \3 \4 \5/"
done; done
