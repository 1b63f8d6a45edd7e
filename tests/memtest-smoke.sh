#!/usr/bin/env bash
# Smoke run of bench/memtest: every workload, tiny sizes, vtmalloc preloaded and linked. Asserts
# that each run completes, really ran on vtmalloc, and reports sane numbers (not timings).
# Usage: memtest-smoke.sh MEMTEST MEMTEST_VTLINKED LIBVTMALLOC
set -euo pipefail
memtest=$1 linked=$2 lib=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

for w in original capped tcl single xthread churn; do
  for how in preloaded linked; do
    if [[ $how == preloaded ]]; then
      out=$(env LD_PRELOAD="$lib" "$memtest" -w "$w" -t 2 -n 3000 -R 2000 -c 500 -q -m libvtmalloc) ||
        fail "$w $how: exit $?"
    else
      out=$("$linked" -w "$w" -t 2 -n 3000 -R 2000 -c 500 -q -m libvtmalloc) || fail "$w $how: exit $?"
    fi
    line=$(grep '^RESULT ' <<<"$out" | tail -1)
    [[ -n $line ]] || fail "$w $how: no RESULT line"
    [[ $(field workload "$line") == "$w" ]] || fail "$w $how: wrong workload in $line"
    [[ $(field malloc_from "$line") == libvtmalloc* ]] || fail "$w $how: not served by vtmalloc: $line"
    mallocs=$(field mallocs "$line") frees=$(field frees "$line")
    ((mallocs > 0 && mallocs == frees)) || fail "$w $how: mallocs $mallocs frees $frees"
    awk -v l="$line" 'BEGIN {
      n = split(l, kv, " "); for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
      ok = v["ops_per_s"] > 0 && v["ns_per_pair"] > 0 && v["peak_rss_kb"] > 0 &&
           v["end_rss_kb"] > 0 && v["peak_live_kb"] > 0 && v["peak_rss_kb"] >= v["end_rss_kb"] - 4
      exit ok ? 0 : 1 }' || fail "$w $how: insane numbers: $line"
    echo "ok: $w $how: $(field ops_per_s "$line") ops/s, peak RSS $(field peak_rss_kb "$line") KiB"
  done
done
