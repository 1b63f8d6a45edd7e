#!/bin/bash
# usage: cmp.sh reps workload threads n  name:lib:sample ...
reps=$1 w=$2 t=$3 n=$4; shift 4
for i in $(seq $reps); do for cfg in "$@"; do IFS=: read name lib s <<<"$cfg"
 printf "%s " $name; VTMALLOC_PROF_SAMPLE=$s LD_PRELOAD=$lib taskset -c 1 /work/main/build/bench-bin/memtest -w $w -t $t -n $n -q 2>&1 | grep -o 'ns_per_pair=[0-9.]*' | cut -d= -f2
done; done | gawk '{v[$1]=v[$1]" "$2; if(!($1 in m)||$2<m[$1])m[$1]=$2} END{for(k in v){n=split(v[k],a," ");asort(a);print k, "min", m[k], "med", a[int((n+1)/2)], "|", v[k]}}'
