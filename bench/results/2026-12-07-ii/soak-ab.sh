#!/bin/bash
# usage: absoakl.sh ROUNDS PRESET -> base.so (A) against new.so (B), soak; columns: tag Mops/s peak-MiB faults/Mop growth_last
R=$1; P=$2
run() { LD_PRELOAD=/tmp/ii/$1.so /work/main/build/tests/soak -p $P -q 2>/dev/null | grep ^RESULT | awk -v tag="$1" '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s %.1f %.1f %s %s\n", tag, v["ops_per_s"]/1e6, v["peak_rss_kb"]/1024, v["faults_per_mop"], v["growth_last"]}'; }
for r in $(seq $R); do
  if (( r % 2 )); then run base; run new; else run new; run base; fi
done
