#!/usr/bin/env bash
# Installs the build into a temporary prefix with `cmake --install --prefix`, and into a
# DESTDIR staging area, and checks what landed: the library with its SONAME links, the
# static library, the header, the pkg-config file and the CMake package naming the prefix
# the installation really used, the launcher preloading the installed library, the manual
# pages and the guides. Then runs the installed launcher.
#
# With TCLDIR, the Tcl package too: its extension and package index, loaded from there by
# tclsh (when there is one) with the installed library preloaded.
#
# Usage: install.sh BUILD_DIR WORK_DIR VERSION LIBDIR INCLUDEDIR BINDIR MANDIR DOCDIR PROBE [TCLDIR]
# (the *DIR arguments are CMake's GNUInstallDirs values, relative to the prefix; TCLDIR is the
# Tcl package's directory, relative to the prefix too, given when the build has the package).
# Leaves the installation in WORK_DIR/prefix for the consumer test.
set -euo pipefail

build=$1 work=$2 version=$3 libdir=$4 includedir=$5 bindir=$6 mandir=$7 docdir=$8 probe=$9
tcldir=${10:-}
prefix=$work/prefix
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
pass() { echo "ok: $*"; }

check_file() { # PATH DESCRIPTION
    if [[ -f $1 && ! -L $1 ]]; then pass "$2: $1"; else fail "$2: $1 is missing"; fi
}

rm -rf "$work"
mkdir -p "$work"

echo "== cmake --install $build --prefix $prefix"
if ! cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
    cat "$work/install.log" >&2
    echo "FAIL: cmake --install failed" >&2
    exit 1
fi

lib=$prefix/$libdir
soname=libvtmalloc.so.0

# The shared library: real file, SONAME link, development link, and the SONAME inside.
check_file "$lib/libvtmalloc.so.$version" "shared library"
if [[ -L $lib/$soname && $(readlink "$lib/$soname") == "libvtmalloc.so.$version" ]]; then
    pass "$soname -> libvtmalloc.so.$version"
else
    fail "$lib/$soname is not a link to libvtmalloc.so.$version"
fi
if [[ -L $lib/libvtmalloc.so && $(readlink -f "$lib/libvtmalloc.so") == "$(readlink -f "$lib/libvtmalloc.so.$version")" ]]; then
    pass "libvtmalloc.so link"
else
    fail "$lib/libvtmalloc.so is not a link to the library"
fi
if grep -Eq "SONAME +$soname\$" <<<"$(objdump -p "$lib/libvtmalloc.so.$version")"; then
    pass "SONAME $soname"
else
    fail "the library's SONAME is not $soname"
fi

# The static library has vtmalloc's malloc and its API.
check_file "$lib/libvtmalloc.a" "static library"
symbols=$(nm "$lib/libvtmalloc.a" 2>/dev/null || true)
if grep -Eq ' T malloc$' <<<"$symbols" && grep -Eq ' T vt_stats_get$' <<<"$symbols"; then
    pass "libvtmalloc.a defines malloc and vt_stats_get"
else
    fail "libvtmalloc.a lacks malloc or vt_stats_get"
fi

# The header, of this version.
check_file "$prefix/$includedir/vtmalloc.h" "header"
grep -q "#define VTMALLOC_VERSION *\"$version\"" "$prefix/$includedir/vtmalloc.h" ||
    fail "the installed header is not version $version"

# pkg-config: written at install time, so it names the prefix used, not the configured one.
pc=$lib/pkgconfig/vtmalloc.pc
check_file "$pc" "pkg-config file"
if [[ -f $pc ]]; then
    grep -qx "prefix=$prefix" "$pc" && pass "vtmalloc.pc: prefix=$prefix" ||
        fail "vtmalloc.pc does not say prefix=$prefix: $(grep '^prefix=' "$pc")"
    grep -qx "Version: $version" "$pc" || fail "vtmalloc.pc is not version $version"
    if out=$(PKG_CONFIG_LIBDIR=$lib/pkgconfig pkg-config --cflags --libs vtmalloc) &&
        [[ $out == *"-I$prefix/$includedir"* && $out == *"-L$lib"* && $out == *-lvtmalloc* ]]; then
        pass "pkg-config --cflags --libs vtmalloc: $out"
    else
        fail "pkg-config gives '${out:-nothing}'"
    fi
fi

# The CMake package.
for f in vtmallocConfig.cmake vtmallocConfigVersion.cmake vtmallocTargets.cmake; do
    check_file "$lib/cmake/vtmalloc/$f" "CMake package"
done

# The launcher: executable, naming the installed library, and working.
launcher=$prefix/$bindir/vtmalloc
if [[ -x $launcher ]]; then pass "launcher $launcher is executable"; else fail "no executable $launcher"; fi
if [[ -x $launcher ]]; then
    grep -qx "vt_library='$lib/$soname'" "$launcher" && pass "the launcher preloads $lib/$soname" ||
        fail "the launcher names $(grep '^vt_library=' "$launcher")"
    first=$("$launcher" --version | head -n 1)
    [[ $first == "vtmalloc $version" ]] && pass "vtmalloc --version: $first" ||
        fail "vtmalloc --version says '$first'"
    # The probe checks that malloc really is the installed library's.
    if out=$("$launcher" "$probe" vtmalloc) && [[ $out == *"from $lib/$soname"* ]]; then
        pass "installed launcher: $out"
    else
        fail "the installed launcher did not preload $lib/$soname: $out"
    fi
    if out=$("$launcher" sh -c 'cat /proc/$$/maps') && [[ $out == *"$lib/libvtmalloc.so.$version"* ]]; then
        pass "the library is mapped in a shell started by the installed launcher"
    else
        fail "the installed library is not in the shell's memory map"
    fi
fi

# Manual pages and guides.
check_file "$prefix/$mandir/man1/vtmalloc.1" "manual page"
check_file "$prefix/$mandir/man3/vtmalloc.3" "manual page"
for d in README.md preloading.md statistics.md tcl-naviserver.md valgrind.md; do
    check_file "$prefix/$docdir/$d" "guide"
done
if [[ $(man -l "$prefix/$mandir/man1/vtmalloc.1" 2>/dev/null) == *"run a program with the vtmalloc allocator"* ]]; then
    pass "man -l renders the installed vtmalloc(1)"
else
    fail "man -l cannot render the installed vtmalloc(1)"
fi

# The Tcl package: where tclsh looks (see tcl/CMakeLists.txt), and working from there.
tcl_files=
if [[ -n $tcldir ]]; then
    check_file "$prefix/$tcldir/pkgIndex.tcl" "Tcl package index"
    check_file "$prefix/$tcldir/vtmalloc_tcl.so" "Tcl extension"
    grep -q "package ifneeded vtmalloc $version " "$prefix/$tcldir/pkgIndex.tcl" 2>/dev/null ||
        fail "the installed pkgIndex.tcl does not provide vtmalloc $version"
    if command -v tclsh8.6 >/dev/null; then
        out=$(echo 'puts "[package require vtmalloc] [vtmalloc active] [vtmalloc version]"' |
            LD_PRELOAD=$lib/$soname TCLLIBPATH=$prefix/$tcldir tclsh8.6 2>&1)
        [[ $out == "$version 1 $version" ]] && pass "tclsh loads the installed Tcl package: $out" ||
            fail "tclsh with the installed Tcl package says '$out' (want '$version 1 $version')"
    else
        echo "note: no tclsh8.6, the installed Tcl package is not loaded"
    fi
    tcl_files="|${tcldir//./\\.}/(pkgIndex\.tcl|vtmalloc_tcl\.so)"
fi

# Nothing of the build's internals: the core library and test programs are not installed.
extra=$(cd "$prefix" && find . -type f -o -type l | grep -Ev "^\./($libdir/(libvtmalloc\.(so|so\.0|so\.$version|a)|pkgconfig/vtmalloc\.pc|cmake/vtmalloc/vtmalloc[A-Za-z-]*\.cmake)|$includedir/vtmalloc\.h|$bindir/vtmalloc|$mandir/man[13]/vtmalloc\.[13]|$docdir/[a-z-]+\.md|$docdir/README\.md$tcl_files)\$" || true)
[[ -z $extra ]] && pass "nothing else is installed" || fail "unexpected files installed: $extra"

# DESTDIR staging, as distributions install: the files go under DESTDIR, the paths written
# into them do not include it.
echo "== DESTDIR=$work/stage cmake --install --prefix /opt/vtmalloc-staged"
if DESTDIR=$work/stage cmake --install "$build" --prefix /opt/vtmalloc-staged >"$work/stage.log" 2>&1; then
    staged=$work/stage/opt/vtmalloc-staged
    grep -qx "vt_library='/opt/vtmalloc-staged/$libdir/$soname'" "$staged/$bindir/vtmalloc" &&
        pass "staged launcher names /opt/vtmalloc-staged/$libdir/$soname" ||
        fail "staged launcher names $(grep '^vt_library=' "$staged/$bindir/vtmalloc" 2>/dev/null)"
    grep -qx "prefix=/opt/vtmalloc-staged" "$staged/$libdir/pkgconfig/vtmalloc.pc" &&
        pass "staged vtmalloc.pc says prefix=/opt/vtmalloc-staged" ||
        fail "staged vtmalloc.pc: $(grep '^prefix=' "$staged/$libdir/pkgconfig/vtmalloc.pc" 2>/dev/null)"
else
    cat "$work/stage.log" >&2
    fail "DESTDIR installation failed"
fi

if ((fails)); then
    echo "install: $fails check(s) failed" >&2
    exit 1
fi
echo "install: every check passed"
