#!/bin/bash
# ab.sh ROUNDS: larson-shaped and memtest xthread (2 threads): base (5a9bc3e), new2 (60172d3)
# and tcmalloc, interleaved, one process each.
R=${1:-7}
TC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
for i in $(seq $R); do
  for L in base new2 tcmalloc; do
    lib=/tmp/pk/$L.so; [ $L = tcmalloc ] && lib=$TC
    l=$(LD_PRELOAD=$lib /work/main/build/bench/server -w larson -a $L | grep -o 'ops_per_s=[0-9]*' | cut -d= -f2)
    x=$(LD_PRELOAD=$lib /work/main/build/bench/memtest -w xthread -t 2 -q -a $L | grep -o 'ops_per_s=[0-9]*' | cut -d= -f2)
    echo "$i $L larson $l xthread $x"
  done
done
