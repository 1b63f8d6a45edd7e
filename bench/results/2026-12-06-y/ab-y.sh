#!/bin/bash
# ab-y.sh OUTDIR: session y's interleaved A/B runs of the scratch libraries (scratch-experiments.diff)
# against the library as built (build/). Scratch trees: /tmp/scrF (foreign-block cache, one build
# directory per variant), /tmp/scrU (32 KiB units), /tmp/scrU4, /tmp/scrK, /tmp/scrUK.
# Each line: round, library, then the benchmark's own RESULT fields.
out=${1:?outdir}; mkdir -p "$out"
B=/work/main/build/libvtmalloc.so
F=/tmp/scrF
run_mt() { # file workload threads libs...
  f=$1; w=$2; t=$3; shift 3
  for r in 1 2 3 4 5 6 7 8; do for L in "$@"; do
    LD_PRELOAD=$L build/bench/memtest -w $w -t $t -q | grep '^RESULT' | tr ' ' '\n' |
      grep -E '^(ops_per_s|peak_rss_kb|tables_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |"; echo
  done; done > "$out/$f"
}
run_sv() { # file workload rounds libs...
  f=$1; w=$2; n=$3; shift 3
  for r in $(seq $n); do for L in "$@"; do
    LD_PRELOAD=$L build/bench/server -w $w | grep '^RESULT' | tr ' ' '\n' |
      grep -E '^(ops_per_s|peak_rss_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |"; echo
  done; done > "$out/$f"
}
run_mtb() { # file workload threads libs...: -n 4000000 -r 3 in each process
  f=$1; w=$2; t=$3; shift 3
  for r in 1 2 3 4 5; do for L in "$@"; do
    LD_PRELOAD=$L build/bench/memtest -w $w -t $t -n 4000000 -r 3 -q | grep '^RESULT' | tr ' ' '\n' |
      grep -E '^(rep|ops_per_s|peak_rss_kb|tables_kb|faults_per_mop)=' | tr '\n' ' ' | sed "s|^|$r $L |" | sed 's/ rep=/\n&/g' | sed '/^$/d'; echo
  done; done > "$out/$f"
}
FOREIGN="$B $F/fany/libvtmalloc.so $F/fanynf/libvtmalloc.so $F/flivenf/libvtmalloc.so $F/fanyat/libvtmalloc.so"
run_mt foreign-xthread2.txt xthread 2 $FOREIGN
run_sv foreign-larson.txt larson 8 $FOREIGN
GEOM="$B /tmp/scrU/b/libvtmalloc.so /tmp/scrU4/b/libvtmalloc.so /tmp/scrK/b/libvtmalloc.so /tmp/scrUK/b/libvtmalloc.so"
run_sv geometry-larson.txt larson 6 $GEOM
run_sv geometry-waves.txt waves 6 $GEOM
run_mtb geometry-churn1.txt churn 1 $B /tmp/scrU/b/libvtmalloc.so /tmp/scrU4/b/libvtmalloc.so
run_mtb geometry-churn2.txt churn 2 $B /tmp/scrU/b/libvtmalloc.so /tmp/scrU4/b/libvtmalloc.so
