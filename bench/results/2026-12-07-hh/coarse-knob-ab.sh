#!/bin/bash
# usage: ab.sh ROUNDS THREADS "envA" "envB"
R=$1; T=$2; A=$3; B=$4
run() { env $1 LD_PRELOAD=/tmp/x/build/libvtmalloc.so /work/main/build/bench/memtest -w churn -t $T -n 1000000 -c 10000 -q | awk -v tag="$2" '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s %.1f %d %s\n", tag, v["ops_per_s"]/1e6, v["peak_rss_kb"]-v["tables_kb"], v["faults_per_mop"]}'; }
for r in $(seq $R); do
  if (( r % 2 )); then run "$A" A; run "$B" B; else run "$B" B; run "$A" A; fi
done
