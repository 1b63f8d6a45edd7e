#!/bin/bash
# usage: cmp6.sh rounds "memtest args" cpus sample name:lib ...  order alternates; reports ops ratio via ns_per_pair
# run from the repository root, or set MEMTEST to the memtest binary
reps=$1 args=$2 cpus=$3 smp=$4; shift 4
run() { VTMALLOC_PROF_SAMPLE=$2 LD_PRELOAD=$1 taskset -c $cpus ${MEMTEST:-build/bench-bin/memtest} $args -q 2>&1 | grep -o 'ns_per_pair=[0-9.]*' | cut -d= -f2; }
for i in $(seq $reps); do for cfg in "$@"; do IFS=: read name lib <<<"$cfg"
  if ((i % 2)); then off=$(run $lib 0); on=$(run $lib $smp); else on=$(run $lib $smp); off=$(run $lib 0); fi
  echo "$name $off $on"
done; done | gawk '{r[$1]=r[$1]" "($3/$2); off[$1]=off[$1]" "$2; on[$1]=on[$1]" "$3} END{for(k in r){n=split(r[k],a," ");asort(a); m=split(off[k],b," ");asort(b); split(on[k],c," ");asort(c); printf "%-8s min off %.2f on %.2f (%.4f) | med off %.2f on %.2f (%.4f) | pair-ratio med %.4f q1 %.4f q3 %.4f\n", k, b[1], c[1], c[1]/b[1], b[int((m+1)/2)], c[int((m+1)/2)], c[int((m+1)/2)]/b[int((m+1)/2)], a[int((n+1)/2)], a[int((n+3)/4)], a[int((3*n+1)/4)]}}'
