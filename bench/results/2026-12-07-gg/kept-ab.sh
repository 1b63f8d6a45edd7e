#!/bin/bash
# A/B of two builds of libvtmalloc, interleaved: memtest churn at 2 and 8 threads, server waves
# and larson. Usage: ab2.sh LIB_A LIB_B ROUNDS (from the repository root, build/ built)
A=$1; B=$2; n=${3:-5}
M=build/bench
for r in $(seq 1 "$n"); do
    for v in A B; do
        L=${!v}
        for t in 2 8; do
            echo "$v churn$t $(env LD_PRELOAD=$L $M/memtest -w churn -t $t -n 1000000 -c 10000 -q |
                grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"
        done
        for w in waves larson; do
            echo "$v $w $(env LD_PRELOAD=$L $M/server -w $w | tail -1 |
                grep -o 'ops_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"
        done
    done
done
