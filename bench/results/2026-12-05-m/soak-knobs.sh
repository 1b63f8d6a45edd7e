#!/bin/bash
# The soak benchmark's peak against the retention settings: one quick run per line, vtmalloc
# preloaded, from the repository root with a Release build in build/.
run() { env "$@" LD_PRELOAD=build/libvtmalloc.so build/bench-bin/soak -p quick -c 100 -q -a vt -i 100 |
  grep RESULT | tr ' ' '\n' | grep -E '^(requests_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' '; echo " $*"; }
for rep in 1 2; do
  run X=defaults
  run VTMALLOC_DIRTY_PCT=25
  run VTMALLOC_DIRTY_PCT=5
  run VTMALLOC_CLASS_PAGES=2
  run VTMALLOC_LARGE_CACHE=0
  run VTMALLOC_DIRTY_PCT=5 VTMALLOC_LARGE_CACHE=0 VTMALLOC_STASH_UNITS=1 VTMALLOC_CLASS_PAGES=1 VTMALLOC_RESERVE_SPANS=0
  run VTMALLOC_PURGE_MS=50 VTMALLOC_LARGE_CACHE=0 VTMALLOC_STASH_UNITS=1 VTMALLOC_RESERVE_SPANS=0
  LD_PRELOAD= build/bench-bin/soak -p quick -c 100 -q -a glibc -i 100 | grep RESULT | tr ' ' '\n' |
    grep -E '^(requests_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' '; echo " glibc"
done
