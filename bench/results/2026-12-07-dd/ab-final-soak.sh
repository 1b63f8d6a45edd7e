#!/bin/bash
# soak long, the kept change against its base (BASE, NEW as in ab-final.sh), 2 interleaved rounds.
cd "$(git rev-parse --show-toplevel)"
for r in 1 2; do for v in base new; do
  L=${BASE:?}; [ $v = new ] && L=${NEW:?}
  echo "$r soak v=$v $(LD_PRELOAD=$L /usr/bin/time -f 'cpu=%U+%S' build/tests/soak -p long -q 2>&1 | grep -o 'requests_per_s=[0-9.]*\|peak_rss_kb=[0-9]*\|faults_per_mop=[0-9.]*\|^cpu.*' | tr '\n' ' ')"
done; done
