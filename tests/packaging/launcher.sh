#!/usr/bin/env bash
# Tests of the launcher, tools/vtmalloc (the build directory's copy). Each case checks
# outcomes, not the script's text: the probe program reports whether its malloc really is
# vtmalloc's, and values the launcher accepts or rejects are given to the library directly
# too, which must agree.
#
# Usage: launcher.sh CASE LAUNCHER LIBRARY PROBE VERSION
#   CASE: preload | status | environment | options | help
set -uo pipefail

case=$1 launcher=$2 lib=$3 probe=$4 version=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
pass() { echo "ok: $*"; }

# expect_status WANT DESCRIPTION COMMAND...: runs it (stdout and stderr to $work/out, err).
expect_status() {
    local want=$1 what=$2 got
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    got=$?
    if [[ $got == "$want" ]]; then
        pass "$what: status $got"
    else
        fail "$what: status $got, expected $want; stdout: $(head -c 400 "$work/out"); stderr: $(head -c 400 "$work/err")"
    fi
}
expect_in() { # FILE TEXT DESCRIPTION
    if grep -qF -- "$2" "$1"; then pass "$3"; else fail "$3: '$2' not in: $(head -c 400 "$1")"; fi
}
expect_not_in() { # FILE TEXT DESCRIPTION
    if grep -qF -- "$2" "$1"; then fail "$3: '$2' found in: $(head -c 400 "$1")"; else pass "$3"; fi
}

# A copy of the launcher that preloads another path.
launcher_for() { # PATH OUT
    sed "s|^vt_library=.*|vt_library='$1'|" "$launcher" >"$2"
    chmod +x "$2"
}

case $case in
preload)
    # Control: without the launcher the probe must say it is not on vtmalloc.
    expect_status 3 "probe alone (the probe can tell)" "$probe" vtmalloc
    expect_status 0 "vtmalloc probe" "$launcher" "$probe" vtmalloc
    expect_in "$work/out" "from $lib" "the probe's malloc comes from $lib"
    expect_status 0 "vtmalloc -- probe" "$launcher" -- "$probe" vtmalloc
    # A shell started by the launcher finds the library in its own memory map.
    expect_status 0 "vtmalloc sh: libvtmalloc in /proc/\$\$/maps" \
        "$launcher" sh -c 'grep -q libvtmalloc /proc/$$/maps'
    expect_status 1 "sh alone: no libvtmalloc in /proc/\$\$/maps" \
        env -u LD_PRELOAD sh -c 'grep -q libvtmalloc /proc/$$/maps'
    # --stats: the allocator prints its table when the program exits (a program that
    # allocates: the library reads its variables at the first allocation).
    expect_status 0 "vtmalloc --stats sort" "$launcher" --stats sort /dev/null
    expect_in "$work/err" "vtmalloc $version statistics (pid" "--stats prints the statistics"
    expect_in "$work/err" "thread caches" "the statistics have their totals"
    expect_status 0 "vtmalloc --stats probe" "$launcher" --stats "$probe" vtmalloc
    expect_in "$work/err" "vtmalloc $version statistics" "--stats with the probe"
    expect_status 0 "no --stats, no statistics" "$launcher" sort /dev/null
    expect_not_in "$work/err" "statistics" "the table only with --stats"
    # The library missing, or at a path ld.so cannot take: status 125, the program not run.
    launcher_for /nonexistent/libvtmalloc.so.0 "$work/missing"
    expect_status 125 "library missing" "$work/missing" sh -c 'echo RAN'
    expect_in "$work/err" "/nonexistent/libvtmalloc.so.0" "the message names the missing library"
    expect_not_in "$work/out" RAN "the program does not run without the library"
    mkdir -p "$work/with space"
    cp "$lib" "$work/with space/libvtmalloc.so.0"
    launcher_for "$work/with space/libvtmalloc.so.0" "$work/spaced"
    expect_status 125 "library path with a space" "$work/spaced" true
    expect_in "$work/err" "colon or a space" "the message says why"
    ;;

status)
    expect_status 0 "vtmalloc true" "$launcher" true
    expect_status 1 "vtmalloc false" "$launcher" false
    expect_status 7 "vtmalloc sh -c 'exit 7'" "$launcher" sh -c 'exit 7'
    expect_status 143 "a program killed by SIGTERM" "$launcher" sh -c 'kill -TERM $$'
    expect_status 127 "a program that does not exist" "$launcher" /nonexistent/program
    printf '#!/bin/sh\necho RAN\n' >"$work/not-executable"
    expect_status 126 "a program that cannot be run" "$launcher" "$work/not-executable"
    # exec: the program replaces the launcher, same process id.
    "$launcher" sh -c 'echo $$ >"$1"' sh "$work/pid" &
    launched=$!
    wait "$launched"
    if [[ $(cat "$work/pid") == "$launched" ]]; then
        pass "the program runs in the launcher's process ($launched)"
    else
        fail "the program ran as pid $(cat "$work/pid"), the launcher was $launched"
    fi
    # Standard input and output go through.
    if [[ $(printf 'b\na\n' | "$launcher" sort | tr '\n' ' ') == "a b " ]]; then
        pass "standard input and output pass through"
    else
        fail "sort under the launcher did not sort its input"
    fi
    ;;

environment)
    # LD_PRELOAD: vtmalloc goes in front, what was there stays.
    other=$(ldd /bin/sh | awk '/libc\.so/ { print $3; exit }')
    [[ -f $other ]] || fail "cannot find the C library to preload as a second library"
    LD_PRELOAD=$other expect_status 0 "an existing LD_PRELOAD" \
        "$launcher" sh -c 'printf "%s\n" "$LD_PRELOAD"'
    expect_in "$work/out" "$lib:$other" "LD_PRELOAD is '$lib:$other'"
    LD_PRELOAD=$other expect_status 0 "the probe with an existing LD_PRELOAD" \
        "$launcher" "$probe" vtmalloc
    LD_PRELOAD=$lib expect_status 0 "vtmalloc already preloaded" \
        "$launcher" sh -c 'printf "%s\n" "$LD_PRELOAD"'
    if [[ $(cat "$work/out") == "$lib" ]]; then pass "not listed twice"; else fail "LD_PRELOAD became $(cat "$work/out")"; fi
    env -u LD_PRELOAD "$launcher" sh -c 'printf "%s\n" "$LD_PRELOAD"' >"$work/out"
    if [[ $(cat "$work/out") == "$lib" ]]; then pass "no LD_PRELOAD before: '$lib'"; else fail "LD_PRELOAD became $(cat "$work/out")"; fi

    # Options become variables; names in any case, with or without the prefix.
    VTMALLOC_RESERVE_SPANS=2 expect_status 0 "options set the variables" \
        "$launcher" --stats --backing=malloc -o class_pages=16 --option VTMALLOC_PURGE_MS=0 \
        --option=on_error=warn --backing mmap -o BATCH_UNITS=3 -o BATCH_UNITS=4 env
    for v in VTMALLOC_STATS=1 VTMALLOC_BACKING=mmap VTMALLOC_CLASS_PAGES=16 \
        VTMALLOC_PURGE_MS=0 VTMALLOC_ON_ERROR=warn VTMALLOC_BATCH_UNITS=4 VTMALLOC_RESERVE_SPANS=2; do
        if grep -qx "$v" "$work/out"; then pass "$v"; else fail "$v not in the environment"; fi
    done
    # ... which the library takes without a word.
    expect_status 0 "the library accepts them" "$launcher" --backing=malloc -o class_pages=16 \
        -o PURGE_MS=0 -o ON_ERROR=warn -o BATCH_UNITS=4 "$probe" vtmalloc
    expect_not_in "$work/err" "vtmalloc:" "no message from the library"
    ;;

options)
    # Accepted by the launcher, and by the library given the variable directly.
    for nv in CLASS_PAGES=1 CLASS_PAGES=65536 CLASS_PAGES=0008 STASH_UNITS=0 STASH_UNITS=65536 \
        BATCH_UNITS=1 BATCH_UNITS=64 RESERVE_SPANS=0 RESERVE_SPANS=65536 PURGE_MS=0 \
        PURGE_MS=3600000 BACKING=mmap BACKING=malloc STATS=0 ON_ERROR=abort ON_ERROR=warn; do
        expect_status 0 "vtmalloc -o $nv" "$launcher" -o "$nv" "$probe" vtmalloc
        expect_not_in "$work/err" "not valid" "the library accepts $nv too"
        env "LD_PRELOAD=$lib" "VTMALLOC_$nv" "$probe" vtmalloc >/dev/null 2>"$work/err"
        expect_not_in "$work/err" "not valid" "VTMALLOC_$nv given directly"
    done
    # Rejected by the launcher (status 2, the program not run), and by the library.
    for nv in CLASS_PAGES=0 CLASS_PAGES=65537 CLASS_PAGES=-1 CLASS_PAGES=+5 "CLASS_PAGES= 5" \
        CLASS_PAGES=5x CLASS_PAGES= CLASS_PAGES=99999999999999999999 STASH_UNITS=65537 \
        BATCH_UNITS=0 BATCH_UNITS=65 RESERVE_SPANS=65537 PURGE_MS=3600001 STATS=2 \
        BACKING=MMAP BACKING=disk BACKING= "BACKING=mmap,malloc" ON_ERROR=ignore ON_ERROR=Warn; do
        expect_status 2 "vtmalloc -o '$nv'" "$launcher" -o "$nv" sh -c 'echo RAN'
        expect_in "$work/err" "VTMALLOC_$nv is not valid" "the message names VTMALLOC_$nv"
        expect_not_in "$work/out" RAN "the program does not run"
        env "LD_PRELOAD=$lib" "VTMALLOC_$nv" "$probe" vtmalloc >/dev/null 2>"$work/err"
        expect_in "$work/err" "VTMALLOC_$nv is not valid" "the library rejects VTMALLOC_$nv too"
    done
    expect_status 2 "--backing=disk" "$launcher" --backing=disk true
    expect_in "$work/err" "expected one of: mmap,malloc" "the message lists the choices"
    expect_status 2 "a range in the message" "$launcher" -o BATCH_UNITS=65 true
    expect_in "$work/err" "expected a number from 1 to 64" "the message gives the range"
    # Names that are not the library's.
    for nv in FOO=1 VTMALLOC_FOO=1 CLASSPAGES=2 VTMALLOC_=1 =1 STATS; do
        expect_status 2 "vtmalloc -o '$nv'" "$launcher" -o "$nv" true
        expect_in "$work/err" "vtmalloc:" "a message for '$nv'"
    done
    expect_in "$work/err" "is not NAME=VALUE" "the message for a missing ="
    # Usage errors.
    expect_status 2 "an unknown option" "$launcher" --bogus true
    expect_in "$work/err" "unknown option '--bogus'" "the message names it"
    expect_in "$work/err" "Try 'vtmalloc --help'" "the message points to --help"
    expect_status 2 "-x" "$launcher" -x true
    expect_status 2 "no program" "$launcher"
    expect_in "$work/err" "no program to run" "the message says so"
    expect_status 2 "only options" "$launcher" --stats
    expect_status 2 "--option without its value" "$launcher" --option
    expect_status 2 "--backing without its value" "$launcher" --backing
    # After --, or after the program, options are the program's.
    expect_status 0 "-- then a dash word" "$launcher" -- sh -c 'test "$1" = --stats' sh --stats
    expect_status 0 "the program's own options" "$launcher" sh -c 'test "$1" = --bogus' sh --bogus
    ;;

help)
    expect_status 0 "vtmalloc --help" "$launcher" --help
    expect_in "$work/out" "Usage: vtmalloc [OPTION]... [--] PROGRAM [ARGUMENT]..." "--help has the usage line"
    for o in --stats --backing=WHERE "-o, --option NAME=VALUE" -h --help --version; do
        expect_in "$work/out" "$o" "--help describes $o"
    done
    cp "$work/out" "$work/help"
    expect_status 0 "vtmalloc -h" "$launcher" -h
    if cmp -s "$work/out" "$work/help"; then pass "-h is --help"; else fail "-h differs from --help"; fi
    expect_status 0 "vtmalloc --version" "$launcher" --version
    if [[ $(head -n 1 "$work/out") == "vtmalloc $version" ]]; then pass "--version: vtmalloc $version"; else fail "--version: $(head -n 1 "$work/out")"; fi
    expect_in "$work/out" "library: $lib" "--version names the library"
    # Both work when the library is missing: nothing is run.
    launcher_for /nonexistent/libvtmalloc.so.0 "$work/missing"
    expect_status 0 "--help without the library" "$work/missing" --help
    expect_status 0 "--version without the library" "$work/missing" --version
    # --help stops there, even before a program.
    expect_status 0 "--help before a program" "$launcher" --help sh -c 'echo RAN'
    expect_not_in "$work/out" RAN "the program does not run"
    ;;

*)
    echo "launcher.sh: unknown case $case" >&2
    exit 2
    ;;
esac

if ((fails)); then
    echo "launcher $case: $fails check(s) failed" >&2
    exit 1
fi
echo "launcher $case: every check passed"
