#!/bin/bash
# What vtmalloc holds at the peak of bench/server's waves: the statistics table written at each
# new RSS high (VTMALLOC_STATS_SIGNAL; RSS polled every 2 ms, a signal whenever it passes the
# highest so far by 256 KiB above 40 MiB). The last table written is the one nearest the peak.
# usage (repository root, Release build in build/): waves-peak-stats.sh OUTDIR [LIB]
out=${1:?outdir}; lib=${2:-build/libvtmalloc.so}; mkdir -p "$out"; rm -f "$out"/vt.*.stats "$out/signals.txt"
VTMALLOC_STATS_SIGNAL=USR2 VTMALLOC_STATS_PREFIX="$out/vt" LD_PRELOAD=$lib \
  build/bench/server -w waves > "$out/waves.out" 2>&1 &
pid=$!; sleep 0.05; max=0
while kill -0 $pid 2>/dev/null; do
  r=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null); [ -z "$r" ] && break
  if [ "$r" -gt $((max + 256)) ] && [ "$r" -gt 40000 ]; then max=$r; kill -USR2 $pid; echo "$r" >> "$out/signals.txt"; fi
  sleep 0.002
done
wait $pid
grep -o 'peak_rss_kb=[0-9]*' "$out/waves.out"
ls "$out"/vt.*.stats | sort -t. -k3 -n | tail -1
