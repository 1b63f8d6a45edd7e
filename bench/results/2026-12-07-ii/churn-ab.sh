#!/bin/bash
# usage: abl.sh ROUNDS THREADS  -> A=base.so B=new.so, memtest churn
R=$1; T=$2; W=${3:-churn}
run() { LD_PRELOAD=/tmp/ii/$1.so /work/main/build/bench/memtest -w $W -t $T -n 1000000 -c 10000 -q | awk -v tag="$1" '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s %.1f %d %s\n", tag, v["ops_per_s"]/1e6, v["peak_rss_kb"]-v["tables_kb"], v["faults_per_mop"]}'; }
for r in $(seq $R); do
  if (( r % 2 )); then run base; run new; else run new; run base; fi
done
