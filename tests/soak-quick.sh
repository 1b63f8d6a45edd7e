#!/bin/bash
# soak-quick.sh SOAK: the soak benchmark's quick mode on vtmalloc (LD_PRELOAD set by ctest),
# three times, asserting on the medians of the three runs:
#   growth ratio (RSS at the end of cycle 3 over the end of cycle 1)  <= 1.10
#   RSS after the load stopped, as a fraction of peak RSS            <= 0.25
# Why medians: RSS at the end of a cycle includes what the cycle freed in its last second and
# has not purged yet, a few MiB that move with the timing of the run (bench/SOAK.md); one run
# in five or so lands 10-19 % above or below. An allocator that grows (zippy: 1.6 after three
# cycles) or keeps what it freed (tcmalloc: 99 % after the load) fails every run, median or not.
set -euo pipefail
soak=$1
growth=() after=()
for run in 1 2 3; do
  line=$("$soak" -p quick -a vtmalloc -m libvtmalloc -q | grep '^RESULT ') || {
    echo "soak-quick: run $run failed" >&2
    exit 1
  }
  g=$(sed -n 's/.* growth_last=\([0-9.]*\).*/\1/p' <<<"$line")
  f=$(sed -n 's/.* after_stop_frac=\([0-9.]*\).*/\1/p' <<<"$line")
  [[ -n $g && -n $f ]] || { echo "soak-quick: no figures in: $line" >&2; exit 1; }
  echo "soak-quick: run $run: growth ratio $g, RSS after the load $f of peak"
  growth+=("$g")
  after+=("$f")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
mg=$(median "${growth[@]}")
mf=$(median "${after[@]}")
echo "soak-quick: medians: growth ratio $mg (at most 1.10), RSS after the load $mf of peak (at most 0.25)"
awk -v g="$mg" -v f="$mf" 'BEGIN { exit !(g <= 1.10 && f <= 0.25) }' || {
  echo "soak-quick: FAIL" >&2
  exit 1
}
