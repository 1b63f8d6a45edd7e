#!/bin/bash
# loop-40k's extra resident pages under vtmalloc: smaps of a running process (glibc, then
# vtmalloc preloaded), and the resident pages of libc's and vtmalloc's file mappings from
# /proc/PID/pagemap (pagemap.py; needs root).
R=$(dirname "$0")
for a in glibc vt; do
    case $a in glibc) l= ;; vt) l=$PWD/build/libvtmalloc.so ;; esac
    env LD_PRELOAD=$l build/bench/patterns -p loop-40k -n 200000000 >/dev/null &
    sleep 1.5
    pid=$(pgrep -n patterns)
    echo "== $a"
    grep -E "^VmRSS|RssAnon|RssFile" /proc/$pid/status
    awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6" "$2} /^Rss:/{ if ($2>0) print $2, name}' /proc/$pid/smaps |
        sort -rn | head -12
    echo "resident pages of libc: $(python3 $R/pagemap.py $pid libc.so | wc -l)," \
        "of libvtmalloc: $(python3 $R/pagemap.py $pid vtmalloc | wc -l)"
    kill $pid
    wait 2>/dev/null
done
