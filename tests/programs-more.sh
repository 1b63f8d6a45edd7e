#!/usr/bin/env bash
# More real programs under LD_PRELOAD=libvtmalloc.so (tests/preload-programs.sh has the first
# ones), each first proven to run on vtmalloc (the library in the process's memory map, or its
# statistics printed at exit), then compared with the same run on glibc's allocator:
#   python   a curated set of CPython's own regression tests (Debian: libpython3.11-testsuite),
#            run with and without the preload: the same tests must pass, fail and skip;
#   gcc      gcc -O2 -c of a large generated C file (and -O0 -g): byte-identical objects;
#   sqlite   the sqlite3 shell running a heavy SQL script (300,000 rows, indexes, sorts,
#            joins, window functions, JSON, big blobs, VACUUM): identical output;
#   redis    redis-server on 127.0.0.1 (a free port) loaded by redis-benchmark (bounded
#            counts, the client preloaded too) and by a known data set; the data set and the
#            whole database's digest must survive SAVE + DEBUG RELOAD and a restart.
# Usage: programs-more.sh LIBVTMALLOC CASE
# Exits 77 (ctest: skipped) when the programs a case needs are not installed.
set -euo pipefail
lib=$1
case_name=$2
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
need() { for p in "$@"; do command -v "$p" >/dev/null || skip "$p is not installed"; done; }
[[ -f $lib ]] || fail "no library at $lib"

# Proves that a process started with the preload maps libvtmalloc: /proc/PID/maps.
assert_mapped_pid() {
  grep -q libvtmalloc "/proc/$1/maps" 2>/dev/null || fail "process $1 does not map libvtmalloc"
}
# Asserts that statistics were printed by at least $2 processes into file $1, one of which
# mapped at least $3 spans.
assert_stats() {
  local file=$1 min_procs=$2 min_spans=$3 procs spans
  procs=$(grep -c "vtmalloc .* statistics (pid" "$file" || true)
  spans=$(awk '/spans mapped\/unmapped since start/ {if ($5 > m) m = $5} END {print m + 0}' "$file")
  ((procs >= min_procs)) || fail "statistics of $procs processes in $file, expected >= $min_procs"
  ((spans >= min_spans)) || fail "at most $spans spans mapped by one process, expected >= $min_spans"
}

case $case_name in
python)
  need python3
  python3 -c 'import test.libregrtest' 2>/dev/null || skip "CPython's test suite is not installed (Debian: libpython3.11-testsuite)"
  # Chosen to pass on glibc here in about half a minute with two workers: threads, the
  # object and container types, pickling, regular expressions, the garbage collector,
  # codecs, decimal, hashing, compression, mmap.
  tests=(test_threading test_thread test_queue test_weakref test_gc test_dict test_list
         test_tuple test_set test_sort test_bytes test_unicode test_long test_memoryview
         test_json test_re test_pickle test_itertools test_collections test_deque test_heapq
         test_array test_struct test_codecs test_decimal test_random test_hashlib test_zlib
         test_mmap)
  # The regrtest parent checks its own map first; its workers inherit LD_PRELOAD.
  runner='import os, sys
maps = open("/proc/self/maps").read()
want = os.environ.get("VT_EXPECT_PRELOAD") == "1"
if ("libvtmalloc" in maps) != want:
    sys.exit("libvtmalloc mapped: %s, expected: %s" % ("libvtmalloc" in maps, want))
if want and "libvtmalloc" not in os.environ.get("LD_PRELOAD", ""):
    sys.exit("workers would not inherit the preload")
from test.libregrtest import main
sys.argv = ["regrtest", "-j2", "--timeout", "600"] + sys.argv[1:]
main()'
  summarize() { # the status of every test, sorted
    grep -Eo '(test_[a-z0-9_]+) (passed|failed|skipped|crashed|timed out|resource denied)' "$1" | sort -u
  }
  set +e
  env -u LD_PRELOAD VT_EXPECT_PRELOAD=0 /usr/bin/python3 -c "$runner" "${tests[@]}" >"$work/glibc.log" 2>&1
  rc_glibc=$?
  env LD_PRELOAD="$lib" VT_EXPECT_PRELOAD=1 /usr/bin/python3 -c "$runner" "${tests[@]}" >"$work/vt.log" 2>&1
  rc_vt=$?
  set -e
  grep -q "libvtmalloc mapped" "$work/vt.log" "$work/glibc.log" && { cat "$work/vt.log" >&2; fail "preload check"; }
  summarize "$work/glibc.log" >"$work/glibc.sum"
  summarize "$work/vt.log" >"$work/vt.sum"
  [[ $(wc -l <"$work/glibc.sum") -ge ${#tests[@]} ]] || { tail -30 "$work/glibc.log" >&2; fail "the glibc run reported only $(wc -l <"$work/glibc.sum") tests"; }
  if ! cmp -s "$work/glibc.sum" "$work/vt.sum"; then
    # A timing-sensitive test may fail once on a loaded machine: the tests whose results
    # differ run again on both allocators, and must then agree.
    differ=$(diff "$work/glibc.sum" "$work/vt.sum" | awk '/^[<>]/ {print $2}' | sort -u | tr '\n' ' ')
    echo "python: results differ for: $differ; running them again"
    set +e
    # shellcheck disable=SC2086
    env -u LD_PRELOAD VT_EXPECT_PRELOAD=0 /usr/bin/python3 -c "$runner" $differ >"$work/glibc2.log" 2>&1
    # shellcheck disable=SC2086
    env LD_PRELOAD="$lib" VT_EXPECT_PRELOAD=1 /usr/bin/python3 -c "$runner" $differ >"$work/vt2.log" 2>&1
    set -e
    summarize "$work/glibc2.log" >"$work/glibc2.sum"
    summarize "$work/vt2.log" >"$work/vt2.sum"
    if ! cmp -s "$work/glibc2.sum" "$work/vt2.sum" || [[ ! -s $work/vt2.sum ]]; then
      diff "$work/glibc.sum" "$work/vt.sum" >&2 || true
      diff "$work/glibc2.sum" "$work/vt2.sum" >&2 || true
      tail -40 "$work/vt2.log" >&2
      fail "the test results differ (exit $rc_glibc on glibc, $rc_vt on vtmalloc), also when run again"
    fi
    grep -q failed "$work/vt2.sum" && rc_vt=1 || rc_vt=0
  fi
  ((rc_vt == 0)) || echo "note: both runs failed the same tests (exit $rc_vt)"
  echo "python: $(grep -c passed "$work/vt.sum") tests passed on both allocators"
  ;;

gcc)
  need gcc awk cmp
  # A large C file, generated: 400 functions (VT_GCC_FUNCTIONS) over structs, unions, switches,
  # loops, string tables, inline helpers and a big initialised table: cc1 builds large trees
  # and RTL, and -O2 runs every pass over them.
  nfunc=${VT_GCC_FUNCTIONS:-400}
  awk -v NFUNC="$nfunc" 'BEGIN {
    print "#include <stddef.h>\n#include <string.h>\n#include <stdint.h>";
    print "typedef struct node { struct node *next; int key; double w; char name[16]; } node_t;";
    print "typedef union cell { int64_t i; double d; void *p; } cell_t;";
    print "static inline int mix(int a, int b) { return (a * 31) ^ (b >> 3) ^ (a << 7); }";
    print "const int table[] = {";
    for (i = 0; i < 20000; i++) printf "%d,%s", (i * 7919) % 100003, (i % 20 == 19) ? "\n" : "";
    print "};";
    for (f = 0; f < NFUNC; f++) {
      printf "int fn_%d(node_t *n, cell_t *c, int k, const char *s) {\n", f;
      printf "  int acc = %d; static const char *names[] = {\"a%d\", \"bb%d\", \"ccc%d\", \"dddd%d\"};\n", f, f, f, f, f;
      printf "  for (int i = 0; i < k; i++) {\n    switch ((i + %d) %% 7) {\n", f;
      for (c = 0; c < 7; c++)
        printf "    case %d: acc = mix(acc, table[(i * %d + %d) %% 20000]); if (n) n->w += acc * %d.5; break;\n", c, c + f % 13 + 1, f, c;
      printf "    }\n    if (s && s[i %% 4] == %d) acc += (int)strlen(names[i & 3]);\n  }\n", f % 127;
      printf "  while (n) { acc ^= n->key + fn_%d_helper(n->name, acc); n = n->next; }\n", f;
      printf "  if (c) { c[0].i += acc; c[1].d *= 1.0 + acc / 1e9; }\n  return acc;\n}\n";
      printf "int fn_%d_helper(const char *name, int v) { int h = v; for (size_t j = 0; name[j] && j < 16; j++) h = h * 33 + name[j]; return h %% %d; }\n", f, f + 7;
    }
  }' >"$work/body.c"
  # forward declarations of the helpers, so the file is valid C
  { awk -v NFUNC="$nfunc" 'BEGIN { print "#include <stddef.h>"; for (f = 0; f < NFUNC; f++) printf "int fn_%d_helper(const char *name, int v);\n", f }'; cat "$work/body.c"; } >"$work/big.c"
  lines=$(wc -l <"$work/big.c")
  # First: cc1, the compiler proper, runs on vtmalloc (the driver, cc1 and as all print).
  env LD_PRELOAD="$lib" VTMALLOC_STATS=1 gcc -O0 -g -c "$work/big.c" -o "$work/vt-O0.o" 2>"$work/probe.err" ||
    { cat "$work/probe.err" >&2; fail "preloaded gcc failed"; }
  assert_stats "$work/probe.err" 3 2
  env -u LD_PRELOAD gcc -O0 -g -c "$work/big.c" -o "$work/glibc-O0.o" || fail "gcc -O0 -g on glibc"
  cmp -s "$work/glibc-O0.o" "$work/vt-O0.o" || fail "gcc -O0 -g: the objects differ"
  env -u LD_PRELOAD gcc -O2 -c "$work/big.c" -o "$work/glibc-O2.o" || fail "gcc -O2 on glibc"
  env LD_PRELOAD="$lib" gcc -O2 -c "$work/big.c" -o "$work/vt-O2.o" || fail "preloaded gcc -O2"
  cmp -s "$work/glibc-O2.o" "$work/vt-O2.o" || fail "gcc -O2: the objects differ"
  echo "gcc: $lines lines; -O0 -g ($(stat -c %s "$work/vt-O0.o") bytes) and -O2 ($(stat -c %s "$work/vt-O2.o") bytes) objects identical"
  ;;

sqlite)
  need sqlite3
  # First: the shell's own map (.system runs a child of the sqlite3 process).
  mapped=$(echo '.system grep -c libvtmalloc /proc/$PPID/maps' | env LD_PRELOAD="$lib" sqlite3 :memory:)
  [[ ${mapped:-0} -ge 1 ]] || fail "sqlite3 does not map libvtmalloc ($mapped)"
  cat >"$work/heavy.sql" <<'SQL'
PRAGMA cache_size = -100000;
PRAGMA temp_store = MEMORY;
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
INSERT INTO t SELECT i, printf('row-%08d-%x-%s', i, (i * 2654435761) % 4294967296, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)),
                    ((i * 7919) % 100003) / 7.0, zeroblob(i % 300) FROM n;
CREATE INDEX t_b ON t(b);
CREATE INDEX t_c ON t(c, a);
SELECT count(*), sum(length(b)), printf('%.3f', total(c)), sum(length(d)) FROM t;
SELECT a % 97 AS k, count(*), length(group_concat(b, ',')), printf('%.2f', avg(c)) FROM t GROUP BY k ORDER BY k;
SELECT a, b FROM t ORDER BY c DESC, b LIMIT 5 OFFSET 150000;
SELECT a, printf('%.3f', sum(c) OVER (ORDER BY a ROWS BETWEEN 500 PRECEDING AND CURRENT ROW)) FROM t WHERE a % 5000 = 0;
CREATE TABLE u AS SELECT a, (a * 7) % 300000 AS r, upper(b) AS ub FROM t;
SELECT count(*), sum(t.a), max(u.ub) FROM t JOIN u ON t.a = u.r;
SELECT length(json_group_array(json_object('a', a, 'b', b, 'c', c))) FROM t WHERE a <= 40000;
SELECT count(*) FROM (SELECT DISTINCT substr(b, 1, 12) FROM t);
CREATE TABLE blobs(i INTEGER PRIMARY KEY, x BLOB, y TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO blobs SELECT i, zeroblob(i * 5000), hex(zeroblob(i * 1000)) || i FROM n;
SELECT count(*), sum(length(x)), max(length(x)), sum(length(y)), max(y) FROM blobs;
UPDATE blobs SET y = replace(y, '00', 'ab') WHERE i % 2 = 0;
SELECT sum(length(y)), count(DISTINCT substr(y, 1, 2)) FROM blobs;
UPDATE t SET b = b || '-updated-' || a WHERE a % 7 = 0;
DELETE FROM t WHERE a % 3 = 0;
SELECT count(*), sum(length(b)) FROM t;
VACUUM;
SELECT count(*), max(a), min(b) FROM t;
PRAGMA integrity_check;
SQL
  time_run() { # DB OUT ERR [env...]
    local db=$1 out=$2 err=$3
    shift 3
    rm -f "$db"
    env "$@" sqlite3 "$db" <"$work/heavy.sql" >"$out" 2>"$err" || { cat "$err" >&2; fail "sqlite3 ($*) failed"; }
  }
  time_run "$work/glibc.db" "$work/out.glibc" "$work/err.glibc" -u LD_PRELOAD
  time_run "$work/vt.db" "$work/out.vt" "$work/err.vt" LD_PRELOAD="$lib" VTMALLOC_STATS=1
  assert_stats "$work/err.vt" 1 2
  cmp -s "$work/out.glibc" "$work/out.vt" || { diff "$work/out.glibc" "$work/out.vt" | head -20 >&2; fail "sqlite3 output differs"; }
  grep -qx ok "$work/out.vt" || fail "integrity check"
  echo "sqlite: $(wc -l <"$work/out.vt") lines of identical output"
  ;;

redis)
  need redis-server redis-cli redis-benchmark python3
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
  start_server() {
    env LD_PRELOAD="$lib" VTMALLOC_STATS=1 redis-server --port "$port" --bind 127.0.0.1 \
      --dir "$work" --dbfilename dump.rdb --save "" --appendonly no --daemonize no \
      --enable-debug-command local --io-threads 2 --logfile "$work/redis.log" \
      2>>"$work/redis.err" &
    server_pid=$!
    for _ in $(seq 100); do
      [[ $(cli ping 2>/dev/null) == PONG ]] && break
      kill -0 "$server_pid" 2>/dev/null || { cat "$work/redis.log" >&2; fail "redis-server exited"; }
      sleep 0.1
    done
    [[ $(cli ping 2>/dev/null) == PONG ]] || fail "redis-server does not answer"
    assert_mapped_pid "$server_pid" # first: it really runs on vtmalloc
  }
  stop_server() { # how: SAVE or NOSAVE
    cli shutdown "$1" >/dev/null 2>&1 || true
    local rc=0
    wait "$server_pid" || rc=$?
    server_pid=""
    ((rc == 0)) || { tail -20 "$work/redis.log" >&2; fail "redis-server exited with $rc"; }
  }
  # A known data set in database 1: strings of many sizes (up to 300 KB: large blocks),
  # hashes, lists, sorted sets. Its expected digest is computed here from the same values.
  python3 - "$work" <<'PY'
import sys, hashlib
work = sys.argv[1]
def resp(*args):
    out = "*%d\r\n" % len(args)
    for a in args:
        a = str(a)
        out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
    return out
cmds, expect = [resp("SELECT", 1)], []
for i in range(6000):
    size = (i * 7919) % (300000 if i % 50 == 0 else 3000) + 1
    val = ("v%d-" % i) * (size // (len(str(i)) + 2) + 1)
    val = val[:size]
    cmds.append(resp("SET", "str:%d" % i, val))
    expect.append(val)
for i in range(500):
    cmds.append(resp("HSET", "h:%d" % i, *sum((["f%d" % j, "x" * (j * 13 % 200)] for j in range(40)), [])))
    cmds.append(resp("RPUSH", "l:%d" % i, *["e%d-%d" % (i, j) for j in range(100)]))
    cmds.append(resp("ZADD", "z:%d" % i, *sum(([str(j * 1.5), "m%d" % j] for j in range(60)), [])))
open(work + "/load.resp", "w").write("".join(cmds))
open(work + "/expected.sha", "w").write(hashlib.sha256("\n".join(expect).encode()).hexdigest() + "\n")
open(work + "/get.cmds", "w").write("SELECT 1\n" + "".join("GET str:%d\n" % i for i in range(6000)))
PY
  check_known() { # the strings read back hash to what was written
    local got
    got=$(cli --raw <"$work/get.cmds" | tail -n +2 | python3 -c 'import sys, hashlib; print(hashlib.sha256(sys.stdin.read().rstrip("\n").encode()).hexdigest())')
    [[ $got == "$(cat "$work/expected.sha")" ]] || fail "the known data set changed ($1)"
    [[ $(cli -n 1 hlen h:499) == 40 && $(cli -n 1 llen l:499) == 100 && $(cli -n 1 zcard z:499) == 60 ]] ||
      fail "hashes, lists or sorted sets changed ($1)"
  }
  start_server
  cli --pipe <"$work/load.resp" >"$work/pipe.out" || fail "loading the known data set"
  grep -q "errors: 0" "$work/pipe.out" || { cat "$work/pipe.out" >&2; fail "errors while loading"; }
  check_known "after loading"
  # Load: every data type, random keys, values up to 4 KB, pipelined; the client preloaded too.
  env LD_PRELOAD="$lib" redis-benchmark -h 127.0.0.1 -p "$port" -n 40000 -c 20 -P 8 -r 50000 -d 1000 \
    -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset -q >"$work/bench.out" 2>&1 ||
    { cat "$work/bench.out" >&2; fail "redis-benchmark failed"; }
  env LD_PRELOAD="$lib" redis-benchmark -h 127.0.0.1 -p "$port" -n 3000 -c 4 -r 2000 -d 200000 -t set,get -q \
    >>"$work/bench.out" 2>&1 || { cat "$work/bench.out" >&2; fail "redis-benchmark (large values) failed"; }
  grep -q "requests per second" "$work/bench.out" || fail "no benchmark results"
  keys=$(cli dbsize)
  ((keys > 1000)) || fail "only $keys keys after the benchmark"
  digest=$(cli debug digest)
  check_known "after the benchmark"
  # SAVE, then reload the RDB file into the running server: same data.
  [[ $(cli save) == OK ]] || fail "SAVE"
  [[ $(cli debug reload) == OK ]] || fail "DEBUG RELOAD"
  [[ $(cli debug digest) == "$digest" ]] || fail "digest changed by DEBUG RELOAD"
  check_known "after DEBUG RELOAD"
  stop_server SAVE
  # A new server process reads the file back.
  start_server
  [[ $(cli debug digest) == "$digest" ]] || fail "digest changed by a restart"
  [[ $(cli dbsize) == "$keys" ]] || fail "key count changed by a restart"
  check_known "after a restart"
  stop_server NOSAVE
  assert_stats "$work/redis.err" 2 1
  echo "redis: $keys keys + the known set survived SAVE, DEBUG RELOAD and a restart; digest $digest"
  ;;

*)
  fail "unknown case $case_name"
  ;;
esac
echo "ok: $case_name"
