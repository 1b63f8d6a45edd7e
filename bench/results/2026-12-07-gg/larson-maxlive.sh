#!/bin/bash
# larson's peak against the most thread caches live at once: a scratch build of
# larson-maxlive.diff (LIB) prints MAXLIVE at exit. 16 runs, one after the other.
LIB=${LIB:-/tmp/u16/build/libvtmalloc.so}
for i in $(seq 1 16); do
    env LD_PRELOAD=$LIB build/bench/server -w larson 2>&1 |
        grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9]*\|MAXLIVE [0-9]*' | tr '\n' ' '
    echo
done
