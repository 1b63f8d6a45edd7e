#!/bin/bash
# abcmp.sh ROUNDS SLICES name ... : prof-ab on /tmp/o/vt-NAME.so, interleaved, both copies' roles
R=$1 S=$2; shift 2
for r in $(seq $R); do for lib in "$@"; do for args in "" "-x"; do echo "$lib $(taskset -c 1 /work/main/build/bench/prof-ab -l /tmp/o/vt-$lib.so -s $S -S $r $args)"; done; done; done > /tmp/o/abcmp.last
awk '{for(i=2;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]} print $1, v["ratio"], v["ns_off"]}' /tmp/o/abcmp.last | sort -k1,1 -k2n | awk '{a[$1]=a[$1]" "$2; o[$1]+=$3; c[$1]++} END{for(k in a){n=split(a[k],x," "); s=0; ss=0; for(i=1;i<=n;i++){s+=x[i]; ss+=x[i]*x[i]} m=s/n; sd=sqrt(ss/n-m*m); printf "%-10s n=%d mean=%.4f se=%.4f median=%.4f q1=%.4f q3=%.4f min=%.4f max=%.4f ns_off=%.2f\n",k,n,m,sd/sqrt(n),x[int((n+1)/2)],x[int((n+3)/4)],x[int((3*n+1)/4)],x[1],x[n],o[k]/c[k]}}'
