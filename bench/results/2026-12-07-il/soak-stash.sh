#!/bin/bash
# usage: soak-stash.sh ROUNDS PRESET S1 S2 ...: soak runs of /tmp/il2/cur.so with VTMALLOC_STASH_UNITS=S, alternating
R=$1; P=$2; shift 2
run() { VTMALLOC_STASH_UNITS=$1 LD_PRELOAD=/tmp/il2/cur.so /work/main/build/tests/soak -p $P -q 2>/dev/null | grep ^RESULT | awk -v tag="stash$1" '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s %.1f %.1f %s %s\n", tag, v["ops_per_s"]/1e6, v["peak_rss_kb"]/1024, v["faults_per_mop"], v["growth_last"]}'; }
for r in $(seq $R); do
  if (( r % 2 )); then for v in "$@"; do run $v; done; else for v in $(printf '%s\n' "$@" | tac); do run $v; done; fi
done
