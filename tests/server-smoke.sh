#!/usr/bin/env bash
# Smoke run of bench/server: both loads, small work, vtmalloc preloaded, with the RSS series of
# -o. Asserts that each run completes on vtmalloc with sane numbers (not timings), and that the
# series is what run-server plots: time that only moves forward, the waves' six stages in order,
# and samples that reach the run's peak without passing it. Both are VmRSS less the same tables,
# the peak mark reset before the sampler starts; but the kernel sums a process's RSS from
# per-CPU counts and updates the peak mark lazily, so a sample may read a little above the
# peak: 88 KiB was seen, 512 KiB is allowed.
# Usage: server-smoke.sh SERVER LIBVTMALLOC
set -euo pipefail
server=$1 lib=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

for w in waves larson; do
    work=50
    [[ $w == larson ]] && work=5
    out=$(env LD_PRELOAD="$lib" "$server" -w "$w" -n "$work" -o "$dir/$w.csv" -S 1) ||
        fail "$w: exit $?"
    line=$(grep '^RESULT ' <<<"$out" | tail -1)
    [[ -n $line ]] || fail "$w: no RESULT line"
    [[ $(field entry "$line") == libvtmalloc* ]] || fail "$w: not served by vtmalloc: $line"
    peak=$(field peak_rss_kb "$line")
    awk -v l="$line" 'BEGIN { n = split(l, kv, " "); for (i = 2; i <= n; i++) {
        split(kv[i], p, "="); v[p[1]] = p[2] }
      exit v["ops"] > 0 && v["ops_per_s"] > 0 && v["peak_rss_kb"] > 0 ? 0 : 1 }' ||
        fail "$w: insane numbers: $line"
    [[ $(head -1 "$dir/$w.csv") == "t_s,rss_kb,stage" ]] || fail "$w: series header"
    awk -F, -v w="$w" -v peak="$peak" '
      NR == 1 { next }
      { rows++
        if ($1 < t) { print "time went back at row " NR; bad = 1 }
        if ($2 <= 0 || $2 > peak + 512) { print "rss " $2 " outside (0, " peak " + 512] at row " NR; bad = 1 }
        if ($2 > max) max = $2
        if ($3 < stage) { print "stage went back at row " NR; bad = 1 }
        t = $1; stage = $3 }
      END {
        if (rows < 2) { print "only " rows " samples"; bad = 1 }
        if (max < peak / 2) { print "the samples reach " max " KiB, the peak is " peak; bad = 1 }
        if (w == "waves" && stage != 5) { print "last stage " stage ", not 5"; bad = 1 }
        if (w == "larson" && stage != 0) { print "larson has stages"; bad = 1 }
        exit bad }' "$dir/$w.csv" || fail "$w: bad series"
    echo "ok: $w: $(field ops_per_s "$line") ops/s, peak $peak KiB, $(($(wc -l <"$dir/$w.csv") - 1)) samples"
done
