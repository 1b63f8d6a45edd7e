#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libvtmalloc.so, each compared with the same run on glibc,
# and each proven to have run on vtmalloc (its statistics, printed at exit, show the spans it
# mapped and the thread caches it started; the dynamic loader only warns when a preload fails).
# Usage: preload-programs.sh LIBVTMALLOC CASE [HELPER_BINARY]
set -euo pipefail
lib=$1
case_name=$2
helper=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs "$@" preloaded with statistics on; stdout to $work/out.vt, stderr to $work/err.vt.
run_vt() {
  env LD_PRELOAD="$lib" VTMALLOC_STATS=1 "$@" >"$work/out.vt" 2>"$work/err.vt" ||
    { cat "$work/err.vt" >&2; fail "preloaded run of $1 failed"; }
}
run_glibc() {
  env -u LD_PRELOAD "$@" >"$work/out.glibc" 2>"$work/err.glibc" ||
    { cat "$work/err.glibc" >&2; fail "glibc run of $1 failed"; }
}
# Asserts the preloaded run was served by vtmalloc: the statistics of at least one process
# show mapped spans and at least $1 started thread caches.
assert_served() {
  local min_caches=${1:-1}
  grep -q "vtmalloc .* statistics" "$work/err.vt" || fail "no vtmalloc statistics: not preloaded?"
  local spans caches
  spans=$(awk '/spans mapped\/unmapped since start/ {print $5; exit}' "$work/err.vt")
  caches=$(awk '/thread caches/ {gsub(/[()]/, ""); print $5; exit}' "$work/err.vt")
  [[ ${spans:-0} -ge 1 ]] || fail "vtmalloc mapped no span"
  [[ ${caches:-0} -ge $min_caches ]] || fail "vtmalloc started $caches thread caches, expected >= $min_caches"
}
assert_same_output() {
  cmp -s "$work/out.vt" "$work/out.glibc" || { diff <(head -c 2000 "$work/out.vt") <(head -c 2000 "$work/out.glibc") >&2 || true; fail "output differs from the glibc run"; }
}

case $case_name in
sort)
  # 300,000 pseudo-random lines (deterministic), sorted numerically and as text.
  awk 'BEGIN { x = 12345; for (i = 0; i < 300000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%d line-%x\n", x % 1000003, x } }' >"$work/in.txt"
  run_glibc sort -n -S 8M "$work/in.txt"
  run_vt sort -n -S 8M "$work/in.txt"
  assert_same_output
  assert_served 1
  run_glibc sort --parallel=4 -S 16M "$work/in.txt"
  run_vt sort --parallel=4 -S 16M "$work/in.txt"
  assert_same_output
  assert_served 1
  ;;
python)
  cat >"$work/t.py" <<'PY'
import hashlib, threading, json
results = {}
def work(n):
    d = {}
    for i in range(60000):
        d[str(i * n)] = [i, str(i) * (i % 7), {"k": i % 13}]
    s = json.dumps(sorted(d.items())[:2000])
    lst = [bytes(range(i % 256)) for i in range(5000)]
    results[n] = hashlib.sha256(s.encode() + b"".join(lst)).hexdigest()
threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
for t in threads: t.start()
for t in threads: t.join()
for k in sorted(results): print(k, results[k])
PY
  run_glibc /usr/bin/python3 "$work/t.py"
  run_vt /usr/bin/python3 "$work/t.py"
  assert_same_output
  assert_served 8
  ;;
tcl)
  cat >"$work/t.tcl" <<'TCL'
package require Thread
set ids {}
for {set t 0} {$t < 6} {incr t} {
  lappend ids [thread::create -joinable {
    thread::wait
  }]
}
set results {}
foreach id $ids {
  thread::send $id {
    set acc {}
    for {set i 0} {$i < 40000} {incr i} { lappend acc [string repeat x [expr {$i % 50}]] [list $i [expr {$i * 3}]] }
    set d [dict create]
    for {set i 0} {$i < 20000} {incr i} { dict set d k$i [string length [lindex $acc $i]] }
    set r [expr {[llength $acc] + [dict size $d] + [string length [join [lrange $acc 0 500] ""]]}]
  } r
  lappend results $r
}
foreach id $ids { thread::release $id }
foreach id $ids { catch {thread::join $id} }
puts $results
TCL
  run_glibc tclsh8.6 "$work/t.tcl"
  run_vt tclsh8.6 "$work/t.tcl"
  assert_same_output
  assert_served 6
  ;;
gcc)
  src=$(dirname "$0")/../src/page.c
  run_glibc gcc -O2 -I"$(dirname "$0")/../src" -I"$(dirname "$0")/../include" -S -o - "$src"
  run_vt gcc -O2 -I"$(dirname "$0")/../src" -I"$(dirname "$0")/../include" -S -o - "$src"
  assert_same_output
  assert_served 1
  ;;
backing)
  # Spans from the system allocator instead of mmap: glibc's own malloc, found without
  # recursing into ours.
  export VTMALLOC_BACKING=malloc
  awk 'BEGIN { for (i = 0; i < 200000; i++) print (i * 7919) % 100003 }' >"$work/in.txt"
  run_glibc sort -n "$work/in.txt"
  run_vt sort -n "$work/in.txt"
  assert_same_output
  assert_served 1
  run_glibc /usr/bin/python3 -c 'import threading; r=[]; ts=[threading.Thread(target=lambda: r.append(len(str(list(range(100000)))))) for _ in range(4)]; [t.start() for t in ts]; [t.join() for t in ts]; print(r)'
  run_vt /usr/bin/python3 -c 'import threading; r=[]; ts=[threading.Thread(target=lambda: r.append(len(str(list(range(100000)))))) for _ in range(4)]; [t.start() for t in ts]; [t.join() for t in ts]; print(r)'
  assert_same_output
  ;;
options)
  # A bad value is reported, the default kept, and the program runs.
  env LD_PRELOAD="$lib" VTMALLOC_CLASS_PAGES=banana VTMALLOC_BACKING=sbrk VTMALLOC_NOSUCH=1 \
    /bin/echo fine >"$work/out" 2>"$work/err" || fail "echo failed"
  grep -q "^fine$" "$work/out" || fail "program output lost"
  grep -q "VTMALLOC_CLASS_PAGES=banana is not valid" "$work/err" || fail "bad number not reported"
  grep -q "VTMALLOC_BACKING=sbrk is not valid (expected one of: mmap,malloc)" "$work/err" || fail "bad word not reported"
  grep -q "unknown variable VTMALLOC_NOSUCH=1" "$work/err" || fail "unknown variable not reported"
  ;;
misuse)
  # A double free in a program that knows nothing of vtmalloc: abort with a message naming
  # the pointer; with VTMALLOC_ON_ERROR=warn, the same message and the program goes on.
  [[ -x $helper ]] || fail "no helper binary"
  set +e
  env LD_PRELOAD="$lib" "$helper" >"$work/out" 2>"$work/err"
  rc=$?
  set -e
  [[ $rc -eq 134 ]] || fail "double free did not abort (exit $rc)"
  grep -Eq "vtmalloc: free\(\): double free .*: pointer 0x[0-9a-f]+$" "$work/err" || { cat "$work/err" >&2; fail "message"; }
  env LD_PRELOAD="$lib" VTMALLOC_ON_ERROR=warn "$helper" >"$work/out" 2>"$work/err" || fail "warn mode did not continue"
  grep -q "ignored, block leaked" "$work/err" || fail "warn message"
  grep -q "survived" "$work/out" || fail "program did not go on"
  ;;
daemon)
  # A daemon closes the descriptors it inherited and opens files of its own, which take the
  # numbers freed: the statistics printed at exit must not go into a file that took the number
  # of vtmalloc's copy of stderr (fd 100, the first free from 100 up). They go to stderr, which
  # is still the same pipe; when fd 2 has become a file of the program's too, they are dropped.
  cat >"$work/daemon.py" <<'PY'
import os, sys
path, reopen_stderr = sys.argv[1], sys.argv[2] == "1"
os.closerange(3, 1024)
if reopen_stderr:
    os.close(2)
    os.open(path + ".2", os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # takes fd 2
fds = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) for _ in range(120)]
assert 100 in fds
os.write(fds[0], b"data\n")
PY
  env LD_PRELOAD="$lib" VTMALLOC_STATS=1 python3 "$work/daemon.py" "$work/data" 0 \
    >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; fail "python3 failed"; }
  [[ $(cat "$work/data") == data ]] || { head -c 300 "$work/data" >&2; fail "statistics written into the program's file"; }
  grep -q "vtmalloc .* statistics" "$work/err" || fail "statistics not printed on stderr"
  rm -f "$work/data"
  env LD_PRELOAD="$lib" VTMALLOC_STATS=1 python3 "$work/daemon.py" "$work/data" 1 \
    >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; fail "python3 failed"; }
  [[ $(cat "$work/data") == data ]] || fail "statistics written into the program's file (fd 100)"
  ! grep -q "statistics" "$work/data.2" || fail "statistics written into the program's file (fd 2)"
  ;;
ulimit)
  # The span map is sparse: a small program starts under an address-space limit that glibc's
  # malloc fits in (the flat map of 8 MiB did not fit in 10,000 KiB).
  for limit in 10000 8000; do
    out=$(bash -c "ulimit -v $limit && /bin/echo glibc-fits" 2>&1) || continue
    [[ $out == glibc-fits ]] || continue
    out=$(bash -c "ulimit -v $limit && LD_PRELOAD='$lib' VTMALLOC_STATS=1 /bin/echo preloaded" 2>"$work/err") ||
      { cat "$work/err" >&2; fail "echo under ulimit -v $limit failed preloaded"; }
    [[ $out == preloaded ]] || fail "echo under ulimit -v $limit: '$out'"
    grep -q "vtmalloc .* statistics" "$work/err" || fail "not served by vtmalloc under ulimit -v $limit"
  done
  ;;
*)
  fail "unknown case $case_name"
  ;;
esac
echo "ok: $case_name"
