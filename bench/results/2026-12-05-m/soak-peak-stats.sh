#!/bin/bash
# What vtmalloc holds at the soak benchmark's peak: the statistics table written at each new RSS
# high (VTMALLOC_STATS_SIGNAL; RSS polled every 3 ms, a signal whenever it passes the highest so
# far by 256 KiB above 80 MiB). The last table written is the one nearest the peak.
# usage (repository root, Release build in build/): soak-peak-stats.sh OUTDIR
out=${1:?outdir}; mkdir -p "$out"; rm -f "$out"/vt.*.stats
VTMALLOC_STATS_SIGNAL=USR2 VTMALLOC_STATS_PREFIX="$out/vt" LD_PRELOAD=build/libvtmalloc.so \
  build/bench-bin/soak -p quick -c 100 -q -a vtmalloc -i 100 > "$out/soak.out" 2>&1 &
pid=$!; sleep 0.2; max=0
while kill -0 $pid 2>/dev/null; do
  r=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null); [ -z "$r" ] && break
  if [ "$r" -gt $((max + 256)) ] && [ "$r" -gt 80000 ]; then max=$r; kill -USR2 $pid; echo "$r" >> "$out/signals.txt"; fi
  sleep 0.003
done
wait $pid
grep -o 'peak_rss_kb=[0-9]*' "$out/soak.out"
ls "$out"/vt.*.stats | sort -t. -k3 -n | tail -1
