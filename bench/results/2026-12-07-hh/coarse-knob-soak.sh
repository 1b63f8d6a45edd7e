#!/bin/bash
# usage: absoak.sh ROUNDS preset "envA" "envB"
R=$1; P=$2; A=$3; B=$4
run() { env $1 LD_PRELOAD=/tmp/x/build/libvtmalloc.so /work/main/build/tests/soak -p $P -q 2>/dev/null | grep ^RESULT | awk -v tag="$2" '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s %.1f %.1f %s %s\n", tag, v["ops_per_s"]/1e6, v["peak_rss_kb"]/1024, v["faults_per_mop"], v["growth_last"]}'; }
for r in $(seq $R); do
  if (( r % 2 )); then run "$A" A; run "$B" B; else run "$B" B; run "$A" A; fi
done
