#!/usr/bin/env bash
# Builds the consumer program (tests/packaging/consumer) against an installed vtmalloc the
# two documented ways, and runs it; the program checks that it uses that installation.
#   1. CMake: find_package(vtmalloc) with CMAKE_PREFIX_PATH=PREFIX, the shared target
#      vtmalloc::vtmalloc and the static one vtmalloc::vtmalloc_static;
#   2. pkg-config: PKG_CONFIG_LIBDIR=LIBDIR/pkgconfig (and PKG_CONFIG_SYSROOT_DIR=SYSROOT
#      for an installation under a throwaway root, whose .pc file says prefix=/usr).
#
# Usage: consumers.sh PREFIX LIBDIR VERSION WORK_DIR [SYSROOT]
set -euo pipefail

prefix=$1 libdir=$2 version=$3 work=$4 sysroot=${5:-}
src=$(cd "$(dirname "$0")/consumer" && pwd)
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

rm -rf "$work"
mkdir -p "$work"

run() { # NAME COMMAND...: runs a consumer, which prints its own verdict
    local out
    if out=$("${@:2}" 2>&1); then
        echo "ok: $1: $out"
    else
        fail "$1: $out"
    fi
}

echo "== CMake: find_package(vtmalloc) with CMAKE_PREFIX_PATH=$prefix"
if cmake -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DVT_EXPECTED_VERSION="$version" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF >"$work/cmake.log" 2>&1 &&
    cmake --build "$work/cmake" >>"$work/cmake.log" 2>&1; then
    found=$(sed -n 's/^vtmalloc_DIR:PATH=//p' "$work/cmake/CMakeCache.txt")
    if [[ $(readlink -f "$found") == $(readlink -f "$libdir/cmake/vtmalloc") ]]; then
        echo "ok: find_package used $found"
    else
        fail "find_package used '$found', not $libdir/cmake/vtmalloc"
    fi
    run "find_package, shared" "$work/cmake/consumer_shared" "$version" shared "$libdir"
    run "find_package, static" "$work/cmake/consumer_static" "$version" static
else
    cat "$work/cmake.log" >&2
    fail "the CMake consumer did not configure or build"
fi

echo "== pkg-config with PKG_CONFIG_LIBDIR=$libdir/pkgconfig${sysroot:+ PKG_CONFIG_SYSROOT_DIR=$sysroot}"
pc_env=(PKG_CONFIG_LIBDIR="$libdir/pkgconfig" PKG_CONFIG_PATH=)
[[ -n $sysroot ]] && pc_env+=(PKG_CONFIG_SYSROOT_DIR="$sysroot")
if flags=$(env "${pc_env[@]}" pkg-config --cflags --libs vtmalloc) &&
    pcversion=$(env "${pc_env[@]}" pkg-config --modversion vtmalloc); then
    echo "pkg-config: $flags (version $pcversion)"
    [[ $pcversion == "$version" ]] || fail "pkg-config says version $pcversion"
    # The library directory from -L, also the run-time path.
    ldir=
    for f in $flags; do [[ $f == -L* ]] && ldir=${f#-L}; done
    if [[ -z $ldir || $(readlink -f "$ldir") != $(readlink -f "$libdir") ]]; then
        fail "pkg-config's -L is '$ldir', not $libdir"
    fi
    # shellcheck disable=SC2086 # the flags are words
    if ${CC:-cc} -o "$work/consumer_pc" "$src/consumer.c" $flags ${ldir:+-Wl,-rpath,$ldir} -ldl \
        >"$work/pc.log" 2>&1; then
        run "pkg-config, shared" "$work/consumer_pc" "$version" shared "$libdir"
    else
        cat "$work/pc.log" >&2
        fail "the pkg-config consumer did not build"
    fi
else
    fail "pkg-config does not know vtmalloc in $libdir/pkgconfig"
fi

if ((fails)); then
    echo "consumers: $fails check(s) failed" >&2
    exit 1
fi
echo "consumers: every check passed"
