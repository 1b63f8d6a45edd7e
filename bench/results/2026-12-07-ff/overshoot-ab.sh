#!/bin/bash
# soak long, interleaved: vtmalloc with VTMALLOC_OVERSHOOT_MB at its default (6), at 4, and at
# 65536 (the overshoot left to the purge passes, as before), glibc and tcmalloc beside them.
# usage: overshoot-ab.sh LIB REPS   (LIB: the vtmalloc library to preload)
cd "$(git rev-parse --show-toplevel)"
lib=${1:-build/libvtmalloc.so}; reps=${2:-3}
D=/usr/lib/x86_64-linux-gnu
for r in $(seq 1 "$reps"); do
  for c in vt6 vt4 vtoff glibc tc; do
    case $c in
      vt6) e="VTMALLOC_OVERSHOOT_MB=6"; L=$lib;;
      vt4) e="VTMALLOC_OVERSHOOT_MB=4"; L=$lib;;
      vtoff) e="VTMALLOC_OVERSHOOT_MB=65536"; L=$lib;;
      glibc) e="X=1"; L=;;
      tc) e="X=1"; L=$D/libtcmalloc_minimal.so.4;;
    esac
    if [ $r -gt 2 ] && { [ $c = glibc ] || [ $c = tc ]; }; then continue; fi
    echo "$r $c $(env $e LD_PRELOAD=$L build/tests/soak -p long -q 2>&1 | grep RESULT | grep -o ' ops_per_s=[0-9]*\| peak_rss_kb=[0-9]*\| faults_per_mop=[0-9.]*\| growth_last=[0-9.]*\| after_stop_rss_kb=[0-9]*' | tr -d '\n')"
  done
done
