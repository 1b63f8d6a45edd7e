#!/bin/bash
# The take alone, in one binary: a scratch build of 656965e whose take_empty_page reads VT_TAKE
# (0: no take of kept pages), so that code layout is the same on both sides. ABBA order.
# kept-switch.txt: VT_TAKE=0 (T0) against 1 (T1), churn at 2 and 8 threads, 10 rounds;
# kept-layout.txt: a26e95d (A) against the scratch build with VT_TAKE=0 (S), churn at 2 threads,
# 10 rounds: what the code's new layout alone does. Usage: kept-switch.sh LIB_SWITCH [ROUNDS]
S=$1; n=${2:-10}
for r in $(seq 1 "$n"); do
    order="1 0"; [ $((r % 2)) = 0 ] && order="0 1"
    for v in $order; do
        for t in 2 8; do
            echo "T$v churn$t $(env VT_TAKE=$v LD_PRELOAD=$S build/bench/memtest -w churn -t $t -n 1000000 -c 10000 -q |
                grep -o 'ops_per_s=[0-9]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*' | tr '\n' ' ')"
        done
    done
done
