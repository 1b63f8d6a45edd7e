#!/bin/bash
# soak-quick.sh SOAK: the soak benchmark's quick mode on vtmalloc (LD_PRELOAD set by ctest),
# five times, asserting on the medians of the five runs:
#   peak growth (the highest RSS of cycle 3 over that of cycle 1)       <= 1.10
#   end growth (RSS at the end of cycle 3 over the end of cycle 1)      <= 1.25
#   RSS after the load stopped, as a fraction of peak RSS              <= 0.25
# Why medians, and why the end's bound is looser: RSS at the end of a cycle includes what the
# cycle freed in its last second and has not purged yet, a few MiB that move with the timing of
# the run (bench/SOAK.md). On 2026-12-07 twelve runs read an end growth of 0.96-1.13, three of
# them above 1.10 (so a median of three above 1.10 about one CI run in six), and a peak growth
# of 0.96-1.09. Since the overshoot (retain.c), fifteen runs on this machine (six of them beside
# a busy loop) read a peak growth of 0.99-1.05, but one CI run read 1.006, 1.105 and 1.129: a
# median of three failed on two unlucky runs, so the test takes five. An allocator that grows
# fails either way (zippy: end 1.76-1.85, peak 1.66-1.69 after three cycles); one that keeps
# what it freed (tcmalloc: 99 % after the load) fails the third.
set -euo pipefail
soak=$1
peak=() growth=() after=()
for run in 1 2 3 4 5; do
  line=$("$soak" -p quick -a vtmalloc -m libvtmalloc -q | grep '^RESULT ') || {
    echo "soak-quick: run $run failed" >&2
    exit 1
  }
  p=$(sed -n 's/.* peak_growth_last=\([0-9.]*\).*/\1/p' <<<"$line")
  g=$(sed -n 's/.* growth_last=\([0-9.]*\).*/\1/p' <<<"$line")
  f=$(sed -n 's/.* after_stop_frac=\([0-9.]*\).*/\1/p' <<<"$line")
  [[ -n $p && -n $g && -n $f ]] || { echo "soak-quick: no figures in: $line" >&2; exit 1; }
  echo "soak-quick: run $run: peak growth $p, end growth $g, RSS after the load $f of peak"
  peak+=("$p")
  growth+=("$g")
  after+=("$f")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
mp=$(median "${peak[@]}")
mg=$(median "${growth[@]}")
mf=$(median "${after[@]}")
echo "soak-quick: medians: peak growth $mp (at most 1.10), end growth $mg (at most 1.25)," \
  "RSS after the load $mf of peak (at most 0.25)"
awk -v p="$mp" -v g="$mg" -v f="$mf" 'BEGIN { exit !(p <= 1.10 && g <= 1.25 && f <= 0.25) }' || {
  echo "soak-quick: FAIL" >&2
  exit 1
}
