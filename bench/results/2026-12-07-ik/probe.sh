#!/bin/bash
# probe.sh ROUNDS: u32 vs u16 vs u16eq on churn8, churn2, larson, waves (one line per run)
R=$1
B=/work/main/build/bench
run() { # variant workload
  case $1 in u32) E="X=1"; L=/tmp/ik/u32.so;; u16) E="X=1"; L=/tmp/ik/u16.so;; u16eq) E="VTMALLOC_STASH_UNITS=32 VTMALLOC_BATCH_UNITS=32 VTMALLOC_RESERVE_SPANS=16"; L=/tmp/ik/u16.so;; esac
  case $2 in
   churn8) l=$(env $E LD_PRELOAD=$L $B/memtest -w churn -t 8 -n 1000000 -c 10000 -q); t=125188;;
   churn2) l=$(env $E LD_PRELOAD=$L $B/memtest -w churn -t 2 -n 1000000 -c 10000 -q); t=$(grep -o 'tables_kb=[0-9]*' <<<"$l" | cut -d= -f2);;
   larson) l=$(env $E LD_PRELOAD=$L $B/server -w larson); t=0;;
   waves) l=$(env $E LD_PRELOAD=$L $B/server -w waves); t=0;;
  esac
  [ $2 = churn2 ] && t=$(grep -o 'tables_kb=[0-9]*' <<<"$l" | cut -d= -f2)
  o=$(grep -o 'ops_per_s=[0-9]*' <<<"$l" | cut -d= -f2); p=$(grep -o ' peak_rss_kb=[0-9]*' <<<"$l" | cut -d= -f2); f=$(grep -o 'faults_per_mop=[0-9.]*' <<<"$l" | cut -d= -f2)
  echo "$2 $1 $o $((p-t)) $f"
}
for r in $(seq $R); do for w in churn8 churn2 larson waves; do for v in u32 u16 u16eq; do run $v $w; done; done; done
