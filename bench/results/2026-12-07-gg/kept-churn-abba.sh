#!/bin/bash
# memtest churn at 2 and 8 threads, two builds in ABBA order (so that neither always runs
# first in a round). Usage: kept-churn-abba.sh LIB_A LIB_B ROUNDS, from the repository root.
A=$1; B=$2; n=${3:-12}
for r in $(seq 1 "$n"); do
    order="A B"; [ $((r % 2)) = 0 ] && order="B A"
    for v in $order; do
        L=${!v}
        for t in 2 8; do
            echo "$v churn$t $(env LD_PRELOAD=$L build/bench/memtest -w churn -t $t -n 1000000 -c 10000 -q |
                grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"
        done
    done
done
