#!/usr/bin/env bash
# Tests of the launcher, tools/vtmalloc (the build directory's copy). Each case checks
# outcomes, not the script's text: the probe program reports whether its malloc really is
# vtmalloc's, and values the launcher accepts or rejects are given to the library directly
# too, which must agree.
#
# Usage: launcher.sh CASE LAUNCHER LIBRARY PROBE VERSION
#   CASE: preload | status | environment | options | profile | help
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
# expect_exec DESCRIPTION LAUNCHER-ARGS...: the program (a shell that writes its pid) runs
# in the launcher's own process; the launcher's stderr goes to $work/err, its pid to $launched.
expect_exec() {
    local what=$1
    shift
    "$launcher" "$@" sh -c 'echo $$ >"$1"' sh "$work/pid" 2>"$work/err" &
    launched=$!
    wait "$launched"
    if [[ $(cat "$work/pid") == "$launched" ]]; then
        pass "$what: the program runs in the launcher's process ($launched)"
    else
        fail "$what: the program ran as pid $(cat "$work/pid"), the launcher was $launched"
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
    expect_exec "exec"
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
    for nv in CLASS_PAGES=1 CLASS_PAGES=65535 CLASS_PAGES=0008 STASH_UNITS=0 STASH_UNITS=65536 \
        BATCH_UNITS=1 BATCH_UNITS=64 RESERVE_SPANS=0 RESERVE_SPANS=65536 PURGE_MS=0 \
        PURGE_MS=3600000 BACKING=mmap BACKING=malloc STATS=0 ON_ERROR=abort ON_ERROR=warn; do
        expect_status 0 "vtmalloc -o $nv" "$launcher" -o "$nv" "$probe" vtmalloc
        expect_not_in "$work/err" "not valid" "the library accepts $nv too"
        env "LD_PRELOAD=$lib" "VTMALLOC_$nv" "$probe" vtmalloc >/dev/null 2>"$work/err"
        expect_not_in "$work/err" "not valid" "VTMALLOC_$nv given directly"
    done
    # Rejected by the launcher (status 2, the program not run), and by the library.
    for nv in CLASS_PAGES=0 CLASS_PAGES=65536 CLASS_PAGES=-1 CLASS_PAGES=+5 "CLASS_PAGES= 5" \
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

profile)
    # --profile, --profile-on-signal, --stats-on-signal and the profiler's names. What the
    # profiler writes is the library's business (its own tests); here: the variables, the
    # checks, the exit status, and what the launcher says afterwards. Files land in $work/run.
    mkdir -p "$work/run"
    cd "$work/run" || exit 1
    run=$(pwd)
    # expect_env NAME=VALUE...: each is in $work/out (the output of env) as is.
    expect_env() {
        local v
        for v in "$@"; do
            if grep -qxF -- "$v" "$work/out"; then pass "$v"; else fail "$v not in the environment: $(grep VTMALLOC_ "$work/out" | tr '\n' ' ')"; fi
        done
    }
    expect_no_env() { # NAME...
        local v
        for v in "$@"; do
            if grep -q "^$v=" "$work/out"; then fail "$v set: $(grep "^$v=" "$work/out")"; else pass "$v not set"; fi
        done
    }

    # The variables each flag sets.
    expect_status 0 "--profile env" "$launcher" --profile env
    expect_env VTMALLOC_PROF_SAMPLE=524288 "VTMALLOC_PROF_DUMP_AT_EXIT=$run/vtmalloc.%p.heap"
    expect_no_env VTMALLOC_PROF_SIGNAL VTMALLOC_STATS_SIGNAL
    expect_status 0 "--profile=app.heap: made absolute" "$launcher" --profile=app.heap env
    expect_env "VTMALLOC_PROF_DUMP_AT_EXIT=$run/app.heap"
    expect_status 0 "--profile=/abs/x.%p.heap" "$launcher" --profile="$work/x.%p.heap" env
    expect_env "VTMALLOC_PROF_DUMP_AT_EXIT=$work/x.%p.heap"
    # The user's rate wins, from the environment or from -o, before or after --profile.
    VTMALLOC_PROF_SAMPLE=4096 expect_status 0 "VTMALLOC_PROF_SAMPLE=4096 --profile" "$launcher" --profile env
    expect_env VTMALLOC_PROF_SAMPLE=4096
    expect_status 0 "--profile -o prof_sample=65536" "$launcher" --profile -o prof_sample=65536 env
    expect_env VTMALLOC_PROF_SAMPLE=65536
    expect_status 0 "-o VTMALLOC_PROF_SAMPLE=1 --profile" "$launcher" -o VTMALLOC_PROF_SAMPLE=1 --profile env
    expect_env VTMALLOC_PROF_SAMPLE=1
    # The file: --profile without FILE keeps one already named; the last of -o and =FILE wins.
    VTMALLOC_PROF_DUMP_AT_EXIT=mine.heap expect_status 0 "VTMALLOC_PROF_DUMP_AT_EXIT set, --profile" "$launcher" --profile env
    expect_env VTMALLOC_PROF_DUMP_AT_EXIT=mine.heap
    expect_status 0 "--profile=a.heap -o PROF_DUMP_AT_EXIT=b.heap" "$launcher" --profile=a.heap -o PROF_DUMP_AT_EXIT=b.heap env
    expect_env VTMALLOC_PROF_DUMP_AT_EXIT=b.heap
    expect_status 0 "-o PROF_DUMP_AT_EXIT=b.heap --profile=a.heap" "$launcher" -o PROF_DUMP_AT_EXIT=b.heap --profile=a.heap env
    expect_env "VTMALLOC_PROF_DUMP_AT_EXIT=$run/a.heap"
    # Sampling switched off contradicts --profile: an error, the program not run.
    for zero in 0 000; do
        VTMALLOC_PROF_SAMPLE=$zero expect_status 2 "VTMALLOC_PROF_SAMPLE=$zero --profile" "$launcher" --profile sh -c 'echo RAN'
        expect_in "$work/err" "VTMALLOC_PROF_SAMPLE=$zero turns heap profiling off" "the message says why"
        expect_not_in "$work/out" RAN "the program does not run"
    done
    expect_status 2 "-o PROF_SAMPLE=0 --profile-on-signal=USR1" "$launcher" -o PROF_SAMPLE=0 --profile-on-signal=USR1 true
    expect_status 2 "--profile= (no file name)" "$launcher" --profile= true
    expect_in "$work/err" "needs a file name" "the message says what is missing"

    expect_status 0 "--profile-on-signal=USR1" "$launcher" --profile-on-signal=USR1 env
    expect_env VTMALLOC_PROF_SIGNAL=USR1 VTMALLOC_PROF_SAMPLE=524288
    expect_no_env VTMALLOC_PROF_DUMP_AT_EXIT VTMALLOC_STATS_SIGNAL
    expect_status 0 "--stats-on-signal SIGUSR2" "$launcher" --stats-on-signal SIGUSR2 env
    expect_env VTMALLOC_STATS_SIGNAL=SIGUSR2
    expect_no_env VTMALLOC_PROF_SAMPLE VTMALLOC_PROF_SIGNAL VTMALLOC_PROF_DUMP_AT_EXIT
    expect_status 0 "--stats-on-signal=64 --profile-on-signal 12 --profile" \
        "$launcher" --stats-on-signal=64 --profile-on-signal 12 --profile env
    expect_env VTMALLOC_STATS_SIGNAL=64 VTMALLOC_PROF_SIGNAL=12 VTMALLOC_PROF_SAMPLE=524288 \
        "VTMALLOC_PROF_DUMP_AT_EXIT=$run/vtmalloc.%p.heap"
    # Signals that are not: status 2, a message that names the option, the program not run.
    for flag in --stats-on-signal --profile-on-signal; do
        for sig in usr1 Usr2 USR3 SIGUSR SIGTERM TERM KILL 0 00 65 -1 +5 '' ' 10' 10x 99999999999; do
            expect_status 2 "$flag='$sig'" "$launcher" "$flag=$sig" sh -c 'echo RAN'
            expect_in "$work/err" "vtmalloc: $flag: '$sig' is not a signal" "the message names $flag and '$sig'"
            expect_in "$work/err" "USR1, USR2, SIGUSR1, SIGUSR2 or a number from 1 to 64" "the message says what is accepted"
            expect_not_in "$work/out" RAN "the program does not run"
        done
        expect_status 2 "$flag without its value" "$launcher" "$flag"
    done
    for sig in USR1 USR2 SIGUSR1 SIGUSR2 1 10 012 64; do
        expect_status 0 "--stats-on-signal=$sig" "$launcher" --stats-on-signal="$sig" true
    done

    # The profiler's names with -o: accepted and rejected as the library does. Until the
    # library knows a name (it says "unknown variable"), only the launcher is checked.
    lib_knows() { ! env "LD_PRELOAD=$lib" "VTMALLOC_$1=1" "$probe" vtmalloc 2>&1 >/dev/null | grep -q "unknown variable"; }
    for nv in PROF_SAMPLE=0 PROF_SAMPLE=1 PROF_SAMPLE=524288 PROF_SAMPLE=1073741824 PROF_SIGNAL=0 \
        PROF_SIGNAL=64 PROF_SIGNAL=USR1 PROF_SIGNAL=SIGUSR2 STATS_SIGNAL=0 STATS_SIGNAL=USR2 \
        STATS_SIGNAL=SIGUSR1 PROF_DUMP_AT_EXIT=/tmp/x.%p.heap PROF_PREFIX=/tmp/p STATS_PREFIX=s; do
        expect_status 0 "vtmalloc -o $nv" "$launcher" -o "$nv" true
        if lib_knows "${nv%%=*}"; then
            env "LD_PRELOAD=$lib" "VTMALLOC_$nv" "$probe" vtmalloc >/dev/null 2>"$work/err"
            expect_not_in "$work/err" "not valid" "VTMALLOC_$nv given directly"
        fi
    done
    for nv in PROF_SAMPLE=1073741825 PROF_SAMPLE=-1 PROF_SAMPLE=1k PROF_SAMPLE= PROF_SIGNAL=65 \
        PROF_SIGNAL=usr1 PROF_SIGNAL=TERM STATS_SIGNAL=-1 STATS_SIGNAL= PROF_DUMP_AT_EXIT= \
        PROF_PREFIX= STATS_PREFIX=; do
        expect_status 2 "vtmalloc -o '$nv'" "$launcher" -o "$nv" sh -c 'echo RAN'
        expect_in "$work/err" "VTMALLOC_$nv is not valid" "the message names VTMALLOC_$nv"
        expect_not_in "$work/out" RAN "the program does not run"
        if [[ $nv != *= ]] && lib_knows "${nv%%=*}"; then
            env "LD_PRELOAD=$lib" "VTMALLOC_$nv" "$probe" vtmalloc >/dev/null 2>"$work/err"
            expect_in "$work/err" "VTMALLOC_$nv is not valid" "the library rejects VTMALLOC_$nv too"
        fi
    done

    # Exit status through --profile, where the program is a child.
    expect_status 0 "--profile true" "$launcher" --profile true
    expect_status 1 "--profile false" "$launcher" --profile false
    expect_status 7 "--profile sh -c 'exit 7'" "$launcher" --profile sh -c 'exit 7'
    expect_status 143 "--profile: a program killed by SIGTERM" "$launcher" --profile sh -c 'kill -TERM $$'
    expect_in "$work/err" "ended with status 143 (killed by signal 15?)" "--profile says the program was killed"
    expect_status 127 "--profile: a program that does not exist" "$launcher" --profile /nonexistent/program
    expect_not_in "$work/err" "heap profile" "no word about a profile when the program did not start"
    printf '#!/bin/sh\necho RAN\n' >"$work/not-executable"
    expect_status 126 "--profile: a program that cannot be run" "$launcher" --profile "$work/not-executable"
    if [[ $(printf 'b\na\n' | "$launcher" --profile sort 2>/dev/null | tr '\n' ' ') == "a b " ]]; then
        pass "--profile: standard input and output pass through"
    else
        fail "sort under --profile did not sort its input"
    fi
    # Without --profile the program still replaces the launcher, which names its pid.
    expect_exec "--*-on-signal" --stats-on-signal=USR2 --profile-on-signal=USR1
    expect_in "$work/err" "vtmalloc: kill -USR1 $launched writes a heap profile to vtmalloc.$launched.N.heap" "the hint for --profile-on-signal"
    expect_in "$work/err" "vtmalloc: kill -USR2 $launched writes the statistics to vtmalloc.$launched.N.stats" "the hint for --stats-on-signal"
    VTMALLOC_STATS_PREFIX=/var/tmp/s expect_status 0 "the same signal for both" \
        "$launcher" --stats-on-signal=SIGUSR1 --profile-on-signal=10 -o PROF_SIGNAL=USR1 sh -c 'echo $$'
    expect_in "$work/err" "vtmalloc: kill -USR1 $(cat "$work/out") writes a heap profile to vtmalloc.$(cat "$work/out").N.heap and the statistics to /var/tmp/s.$(cat "$work/out").N.stats" "one hint for both"

    # What --profile says afterwards: the file with the program's pid, and the command.
    # The program makes the file itself (the library, if it profiles, writes over it).
    expect_status 0 "--profile: a profile written" "$launcher" --profile sh -c 'echo $$; : >"vtmalloc.$$.heap"'
    pid=$(cat "$work/out")
    expect_in "$work/err" "vtmalloc: heap profile in vtmalloc.$pid.heap; read it with: google-pprof --text /" "the file, with the program's pid, and the command"
    if grep -qE "google-pprof --text /[^ ]*(sh|dash) vtmalloc\.$pid\.heap\$" "$work/err"; then pass "the command names the shell's executable"; else fail "the command: $(grep pprof "$work/err")"; fi
    [[ $pid != "$$" && -f vtmalloc.$pid.heap ]] && pass "the program's pid ($pid) is not the test's" || fail "pid $pid"
    # The executable comes from the profile's MAPPED_LIBRARIES when it has them (a script's
    # profile is its interpreter's); a file name that needs quoting is quoted.
    dash=$(readlink -f /bin/sh)
    expect_status 0 "--profile='my app.heap' with MAPPED_LIBRARIES" "$launcher" --profile='my app.heap' \
        sh -c 'printf "heap profile: 0: 0 [0: 0] @ heap_v2/524288\n\nMAPPED_LIBRARIES:\n55d0c0000000-55d0c0004000 r--p 00000000 08:01 42    %s\n" "$1" >"my app.heap"' sh "$dash"
    expect_in "$work/err" "vtmalloc: heap profile in my app.heap; read it with: google-pprof --text $dash 'my app.heap'" "the executable from the maps, the file quoted"
    # Children with %p in the name write files of their own: those of this run are named too
    # (a child's file without MAPPED_LIBRARIES: EXECUTABLE stands for its program), not older ones.
    : >vtmalloc.1.heap
    touch -d '2 hours ago' vtmalloc.1.heap
    expect_status 0 "--profile: a child's profile" "$launcher" --profile \
        sh -c 'sh -c "echo \$\$ >child; : >vtmalloc.\$\$.heap"; exit 0'
    child=$(cat child)
    expect_in "$work/err" "vtmalloc: heap profile in vtmalloc.$child.heap; read it with: google-pprof --text EXECUTABLE vtmalloc.$child.heap" "the child's profile is named"
    expect_not_in "$work/err" "vtmalloc.1.heap" "an older file is not"
    # None written (killed): said, and an old file of the same name is not taken for it.
    : >"$run/old.heap"
    touch -d '2 hours ago' "$run/old.heap"
    expect_status 137 "--profile=old.heap, killed" "$launcher" --profile=old.heap sh -c 'kill -KILL $$'
    expect_in "$work/err" "vtmalloc: no heap profile in old.heap: sh ended with status 137 (killed by signal 9?)" "no profile, and why"
    expect_not_in "$work/err" "google-pprof" "no command for a profile that is not there"

    # ^C: the terminal signals the whole process group. The launcher outlives it, so a program
    # that handles it and exits is reported on, with its status; one that it kills kills the
    # launcher the same way (a calling shell then stops too). Python starts them, each in a
    # group of its own, with SIGINT not ignored (bash's background jobs ignore it).
    if python3 - "$launcher" "$work/ready" >"$work/out" 2>&1 <<'PY'; then
import os, signal, subprocess, sys, time
launcher, ready = sys.argv[1], sys.argv[2]

def interrupted(script):
    """Runs launcher --profile sh -c SCRIPT in a new group, sends the group SIGINT once the
    program is ready; returns (returncode, stderr)."""
    if os.path.exists(ready):
        os.unlink(ready)
    p = subprocess.Popen([launcher, "--profile", "sh", "-c", script, "sh", ready],
                         start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(400):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=30)
        return p.returncode, err
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

fails = 0
rc, err = interrupted('trap "exit 5" INT; : >"$1"; while :; do sleep 0.05; done')
print(f"program that handles ^C: launcher status {rc}; stderr: {err.strip()}")
if rc != 5 or "heap profile in" not in err:
    fails += 1
    print("FAIL: expected status 5 and a word about the profile")
rc, err = interrupted(': >"$1"; exec sleep 30')
print(f"program killed by ^C: launcher status {rc}; stderr: {err.strip()}")
if rc != -signal.SIGINT or "killed by signal 2?" not in err:
    fails += 1
    print("FAIL: expected the launcher to end by SIGINT, after a word about the profile")
sys.exit(1 if fails else 0)
PY
        pass "^C: the launcher waits, reports, and ends as the program did"
    else
        fail "^C: $(cat "$work/out")"
    fi
    ;;

help)
    expect_status 0 "vtmalloc --help" "$launcher" --help
    expect_in "$work/out" "Usage: vtmalloc [OPTION]... [--] PROGRAM [ARGUMENT]..." "--help has the usage line"
    for o in --stats --backing=WHERE "--profile[=FILE]" --profile-on-signal=SIG --stats-on-signal=SIG \
        "-o, --option NAME=VALUE" -h --help --version PROF_DUMP_AT_EXIT=FILE; do
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
