#!/bin/bash
# usage: cmp-par.sh rounds workload threads n sample name:lib ...
# Profiling off and on run at the same time, one on each CPU (swapped every round), so that the
# machine's slow spells fall on both runs of a pair alike.
reps=$1 w=$2 t=$3 n=$4 smp=$5; shift 5
run() { VTMALLOC_PROF_SAMPLE=$2 LD_PRELOAD=$1 taskset -c $3 ${MEMTEST:-build/bench/memtest} -w $w -t $t -n $n -q 2>&1 | grep -o 'ns_per_pair=[0-9.]*' | cut -d= -f2; }
for i in $(seq $reps); do for cfg in "$@"; do IFS=: read name lib <<<"$cfg"
  a=$((i % 2)); b=$((1 - a))
  run $lib 0 $a > /tmp/res/.off & run $lib $smp $b > /tmp/res/.on; wait
  echo "$name $(cat /tmp/res/.off) $(cat /tmp/res/.on)"
done; done | gawk '{r[$1]=r[$1]" "($3/$2)} END{for(k in r){n=split(r[k],a," ");asort(a); printf "%-8s n %d pair-ratio med %.4f q1 %.4f q3 %.4f\n", k, n, a[int((n+1)/2)], a[int((n+3)/4)], a[int((3*n+1)/4)]}}'
