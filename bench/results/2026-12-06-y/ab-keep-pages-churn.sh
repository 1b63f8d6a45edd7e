#!/bin/bash
# ab-keep-pages-churn.sh OUT: memtest churn at 1, 2 and 8 threads, the build and scrK3, 5 processes
# each (-n 4000000 -r 3: the best of the three repetitions is the process's figure), interleaved.
B=/work/main/build/libvtmalloc.so
for t in 1 2 8; do for r in 1 2 3 4 5; do for L in $B /tmp/scrK3/b/libvtmalloc.so; do
  LD_PRELOAD=$L build/bench/memtest -w churn -t $t -n 4000000 -r 3 -q | grep '^RESULT' |
    awk -v L=$L -v t=$t -v r=$r '{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; if (v["ops_per_s"]>b) b=v["ops_per_s"]; pk=v["peak_rss_kb"]-v["tables_kb"]; f=v["faults_per_mop"]} END{printf "threads=%d round=%d %s best_ops_per_s=%.0f peak_net_kb=%d faults_per_mop=%s\n", t, r, L, b, pk, f}'
done; done; done > "$1"
