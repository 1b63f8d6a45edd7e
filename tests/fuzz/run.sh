#!/usr/bin/env bash
# Builds the libFuzzer harness fuzz_ops.c with clang, directly from the core library's sources
# (every src/*.c but override.c; sysalloc.c without VT_OVERRIDE, so it reaches the system
# allocator by its plain names), with debug assertions on, and runs a bounded session:
#   1. AddressSanitizer build: fuzzes for SECONDS, starting from the committed seed corpus
#      (tests/fuzz/corpus, never modified: new inputs go to a work directory);
#   2. UndefinedBehaviorSanitizer build: replays every input of the session (seeds and new).
# Fails (exit 1) on any crash or finding; the input that caused it is kept in the work
# directory (crash-*), to replay with: FUZZER INPUT. Exits 77 (ctest: skipped) only when clang
# or libFuzzer is not installed (Debian: clang-14 libclang-rt-14-dev).
#
# Usage: tests/fuzz/run.sh [SECONDS] [WORKDIR]     (default 60 s; WORKDIR default: a temp dir)
# Environment: FUZZ_JOBS=N fuzzes with N processes at once (default 1);
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-60}
work=${2:-}
if [[ -z $work ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

cc=""
for c in clang-14 clang; do
  if command -v "$c" >/dev/null; then cc=$c; break; fi
done
if [[ -z $cc ]]; then
  echo "SKIP: clang is not installed (Debian: apt-get install clang-14 libclang-rt-14-dev)"
  exit 77
fi
probe="$work/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$cc" -fsanitize=fuzzer "$probe" -o "$work/probe" 2>/dev/null; then
  echo "SKIP: $cc has no libFuzzer (Debian: apt-get install libclang-rt-14-dev)"
  exit 77
fi

sources=()
for f in "$root"/src/*.c; do
  [[ $(basename "$f") == override.c ]] || sources+=("$f")
done
flags=(-g -O1 -std=gnu11 -I"$root/src" -I"$root/include" -I"$root/bench" -fno-builtin-malloc
       -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc -pthread)
build() { # NAME SANITIZERS
  "$cc" "${flags[@]}" -fsanitize="$2" -fno-sanitize-recover=all "${sources[@]}" \
    "$here/fuzz_ops.c" -o "$work/$1"
}
echo "fuzz: building with $cc"
build fuzz_ops_asan fuzzer,address
build fuzz_ops_ubsan fuzzer,undefined

rm -rf "$work/artifacts" # a reused work directory keeps its corpus, not old findings
mkdir -p "$work/corpus" "$work/artifacts"
jobs=${FUZZ_JOBS:-1}
echo "fuzz: fuzzing for $seconds s (AddressSanitizer, $jobs job(s)), seeds: $here/corpus"
set +e
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" \
  "$work/fuzz_ops_asan" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  $( ((jobs > 1)) && echo "-fork=$jobs" ) \
  "$work/corpus" "$here/corpus" >"$work/asan.log" 2>&1
rc=$?
set -e
tail -n 8 "$work/asan.log"
if ((rc != 0)) || compgen -G "$work/artifacts/crash-*" >/dev/null || compgen -G "$work/artifacts/leak-*" >/dev/null; then
  grep -E "check failed|ERROR|SUMMARY" "$work/asan.log" | head -n 20 >&2 || true
  echo "FAIL: the fuzzer found a problem (exit $rc); inputs kept in $work/artifacts:" >&2
  ls "$work/artifacts" >&2
  trap - EXIT
  exit 1
fi

echo "fuzz: replaying $(find "$work/corpus" "$here/corpus" -type f | wc -l) inputs (UndefinedBehaviorSanitizer)"
set +e
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$work/fuzz_ops_ubsan" -runs=0 -timeout=30 -artifact_prefix="$work/artifacts/" \
  "$work/corpus" "$here/corpus" >"$work/ubsan.log" 2>&1
rc=$?
set -e
if ((rc != 0)) || grep -q "runtime error" "$work/ubsan.log"; then
  grep -E "runtime error|check failed|ERROR|SUMMARY" "$work/ubsan.log" | head -n 20 >&2 || true
  echo "FAIL: undefined behaviour while replaying the corpus (exit $rc)" >&2
  trap - EXIT
  exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/asan.log")
echo "fuzz: ok: ${runs:-?} inputs executed, no finding"
