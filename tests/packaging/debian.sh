#!/usr/bin/env bash
# The Debian packages, built and checked as a user would get them:
#   1. the working tree (uncommitted work included, ignored files and build directories
#      left out) is copied and `dpkg-buildpackage -b -us -uc` is run in the copy;
#   2. the .debs' contents and control fields are checked (SONAME link, header, .pc, CMake
#      package, manual pages, launcher, Tcl package, dependencies, symbols file);
#   3. lintian must report no error and no warning;
#   4. the packages are installed into a throwaway dpkg root (dpkg --root), used from there
#      (the library preloaded into the probe, programs built against libvtmalloc-dev with
#      find_package and pkg-config, the launcher, the manual pages, the Tcl package in
#      tclsh8.6), then purged, and the root must be empty of them again. The machine's own
#      dpkg database is not touched.
#
# Needs dpkg-dev, debhelper, lintian, cmake, a C compiler, pkg-config, man-db and tcl8.6-dev
# (a build dependency, which brings tclsh8.6). When one is missing it is installed with
# apt-get if running as root; if that fails the test fails. Without root and with something
# missing, the test is skipped (status 77), saying what to install.
#
# Usage: debian.sh SOURCE_DIR BUILD_DIR WORK_DIR VERSION PROBE
set -uo pipefail

src=$(cd "$1" && pwd) build=$(cd "$2" && pwd) work=$3 version=$4 probe=$5
here=$(cd "$(dirname "$0")" && pwd)
start=$SECONDS
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
pass() { echo "ok: $*"; }
die() {
    echo "FAIL: $*" >&2
    exit 1
}

# ---- Tools --------------------------------------------------------------------------------
# command:package
needed=(dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian cmake:cmake cc:gcc
    make:make pkg-config:pkgconf man:man-db objdump:binutils)
find_missing() {
    missing=()
    for pair in "${needed[@]}"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    # debhelper's cmake build system, which debian/rules uses.
    [[ -f /usr/share/perl5/Debian/Debhelper/Buildsystem/cmake.pm ]] || missing+=(debhelper)
    # The Tcl package's build dependency (tcl.h, libtclstub8.6.a, and tclsh8.6 with it).
    [[ -f /usr/include/tcl8.6/tcl.h ]] && command -v tclsh8.6 >/dev/null || missing+=(tcl8.6-dev)
}
find_missing
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [[ $(id -u) != 0 ]]; then
        echo "SKIP: not root and missing packages: ${missing[*]}" >&2
        echo "      (apt-get install ${missing[*]}, or run as root to have them installed)" >&2
        exit 77
    fi
    echo "== installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"${TMPDIR:-/tmp}/vt-debian-apt.log" 2>&1; then
        apt-get update -qq >>"${TMPDIR:-/tmp}/vt-debian-apt.log" 2>&1
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"${TMPDIR:-/tmp}/vt-debian-apt.log" 2>&1 ||
            { tail -n 20 "${TMPDIR:-/tmp}/vt-debian-apt.log" >&2; die "could not install ${missing[*]} with apt-get"; }
    fi
    find_missing
    ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
fi

# make's variables from a parent make (ctest run from `make test`) would leak into dh.
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=usr/lib/$multiarch

# The packaging's version must be the project's.
changelog_version=$(cd "$src" && dpkg-parsechangelog -S Version) || die "cannot read debian/changelog"
upstream=${changelog_version%-*}
[[ $upstream == "$version" ]] ||
    die "debian/changelog is at $changelog_version, the project at $version: add a changelog entry (dch -v $version-1)"
debver=$changelog_version
pass "debian/changelog: $debver"

# ---- A copy of the working tree -----------------------------------------------------------
rm -rf "$work"
mkdir -p "$work/src"
# A build directory inside the source tree is left out, whatever its name.
build_rel=
[[ $build == "$src"/* ]] && build_rel=${build#"$src"/}
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files and new files not ignored: what a commit of the work tree would hold.
    (cd "$src" && git ls-files -z --cached --others --exclude-standard) |
        while IFS= read -r -d '' f; do
            [[ -e $src/$f || -L $src/$f ]] || continue # deleted, not committed yet
            [[ -n $build_rel && ($f == "$build_rel"/* || $f == "$build_rel") ]] && continue
            printf '%s\0' "$f"
        done >"$work/files"
    tar -C "$src" --null -T "$work/files" -cf - | tar -C "$work/src" -xf - || die "copying the tree failed"
else
    tar -C "$src" --exclude='./.git' --exclude='./build*' --exclude='./obj-*' \
        --exclude='./debian/build' --exclude='./debian/tmp' ${build_rel:+--exclude="./$build_rel"} \
        -cf - . | tar -C "$work/src" -xf - || die "copying the tree failed"
fi
[[ -f $work/src/debian/control && -f $work/src/CMakeLists.txt ]] || die "the copy has no debian/control"
pass "copied the working tree ($(find "$work/src" -type f | wc -l) files) to $work/src"

# ---- dpkg-buildpackage ----------------------------------------------------------------------
echo "== dpkg-buildpackage -b -us -uc"
t0=$SECONDS
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
    >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    die "dpkg-buildpackage failed (log: $work/build.log)"
fi
pass "dpkg-buildpackage in $((SECONDS - t0)) s"
grep -q "dpkg-gensymbols: warning" "$work/build.log" &&
    fail "dpkg-gensymbols warns: the symbols file is out of date: $(grep -A8 'dpkg-gensymbols: warning' "$work/build.log" | head -n 20)"

deb() { echo "$work/${1}_${debver}_$arch.deb"; }
for p in libvtmalloc0 libvtmalloc-dev vtmalloc tcl-vtmalloc; do
    [[ -f $(deb $p) ]] || die "no $(basename "$(deb $p)")"
done
changes=$work/vtmalloc_${debver}_$arch.changes
[[ -f $changes ]] || die "no $(basename "$changes")"

# ---- Contents -----------------------------------------------------------------------------
# expect_entry DEB TYPE PATH [LINK_TARGET]: TYPE is - (file), l (link), x (executable file).
expect_entry() {
    local deb=$1 type=$2 path=$3 target=${4:-} line
    line=$(dpkg-deb -c "$deb" | awk -v p="./$path" '$6 == p { print; exit }')
    if [[ -z $line ]]; then
        fail "$(basename "$deb"): no $path"
        return
    fi
    case $type in
    l) [[ $line == l* && $line == *" -> $target" ]] || { fail "$(basename "$deb"): $path is not a link to $target: $line"; return; } ;;
    x) [[ $line == -rwxr-xr-x* ]] || { fail "$(basename "$deb"): $path is not executable: $line"; return; } ;;
    -) [[ $line == -rw-r--r--* ]] || { fail "$(basename "$deb"): $path is not a plain file: $line"; return; } ;;
    esac
    pass "$(basename "$deb"): $path${target:+ -> $target}"
}
expect_no_entry() { # DEB REGEX
    local hits
    hits=$(dpkg-deb -c "$1" | awk '{ print $6 }' | grep -E "$2" || true)
    [[ -z $hits ]] && pass "$(basename "$1"): nothing matching $2" || fail "$(basename "$1") has $hits"
}

rt=$(deb libvtmalloc0) dev=$(deb libvtmalloc-dev) tools=$(deb vtmalloc) tcl=$(deb tcl-vtmalloc)
tcldir=usr/lib/tcltk/$multiarch/vtmalloc$version
expect_entry "$rt" - "$libdir/libvtmalloc.so.$version"
expect_entry "$rt" l "$libdir/libvtmalloc.so.0" "libvtmalloc.so.$version"
expect_entry "$rt" - usr/share/doc/libvtmalloc0/copyright
expect_no_entry "$rt" '(\.h|\.a|\.pc|libvtmalloc\.so|/bin/.*|\.cmake)$'
expect_entry "$dev" - usr/include/vtmalloc.h
expect_entry "$dev" l "$libdir/libvtmalloc.so" libvtmalloc.so.0
expect_entry "$dev" - "$libdir/libvtmalloc.a"
expect_entry "$dev" - "$libdir/pkgconfig/vtmalloc.pc"
for f in vtmallocConfig.cmake vtmallocConfigVersion.cmake vtmallocTargets.cmake; do
    expect_entry "$dev" - "$libdir/cmake/vtmalloc/$f"
done
expect_entry "$dev" - usr/share/man/man3/vtmalloc.3.gz
expect_no_entry "$dev" "libvtmalloc\.so\.$version\$"
expect_entry "$tools" x usr/bin/vtmalloc
expect_entry "$tools" - usr/share/man/man1/vtmalloc.1.gz
# The Tcl package, where Debian's tclsh looks (auto_path has /usr/lib/tcltk/<multiarch>).
expect_entry "$tcl" - "$tcldir/pkgIndex.tcl"
expect_entry "$tcl" - "$tcldir/vtmalloc_tcl.so"
expect_entry "$tcl" - usr/share/doc/tcl-vtmalloc/copyright
expect_no_entry "$tcl" '(libvtmalloc\.so.*|/bin/.*|\.h)$'
expect_no_entry "$tools" '/tcltk/'
tools_files=$(dpkg-deb -c "$tools" | awk '{ print $6 }')
for g in preloading statistics tcl-naviserver valgrind; do
    if grep -Eq "^\./usr/share/doc/vtmalloc/$g\.md(\.gz)?\$" <<<"$tools_files"; then
        pass "vtmalloc: the guide $g.md"
    else
        fail "vtmalloc: no usr/share/doc/vtmalloc/$g.md"
    fi
done

# Control fields and files.
field() { dpkg-deb -f "$1" "$2"; }
[[ $(field "$rt" Multi-Arch) == same ]] && pass "libvtmalloc0: Multi-Arch: same" || fail "libvtmalloc0: Multi-Arch is '$(field "$rt" Multi-Arch)'"
[[ $(field "$rt" Depends) == *libc6* ]] && pass "libvtmalloc0 depends on libc6 (shlibs)" || fail "libvtmalloc0: Depends is '$(field "$rt" Depends)'"
[[ $(field "$dev" Depends) == *"libvtmalloc0 (= $debver)"* ]] && pass "libvtmalloc-dev depends on libvtmalloc0 (= $debver)" || fail "libvtmalloc-dev: Depends is '$(field "$dev" Depends)'"
[[ $(field "$tools" Depends) == *"libvtmalloc0 (= $debver)"* ]] && pass "vtmalloc depends on libvtmalloc0 (= $debver)" || fail "vtmalloc: Depends is '$(field "$tools" Depends)'"
tcl_depends=$(field "$tcl" Depends)
[[ $tcl_depends == *"libvtmalloc0 (= $debver)"* && $tcl_depends == *libtcl8.6* ]] &&
    pass "tcl-vtmalloc depends on libvtmalloc0 (= $debver) and libtcl8.6" || fail "tcl-vtmalloc: Depends is '$tcl_depends'"
[[ $(field "$tcl" Multi-Arch) == same ]] && pass "tcl-vtmalloc: Multi-Arch: same" || fail "tcl-vtmalloc: Multi-Arch is '$(field "$tcl" Multi-Arch)'"
# The extension must not link libvtmalloc (docs/tcl-naviserver.md, "The Tcl package").
mkdir -p "$work/tcl-deb"
dpkg-deb -x "$tcl" "$work/tcl-deb"
if objdump -p "$work/tcl-deb/$tcldir/vtmalloc_tcl.so" | grep -Eq 'NEEDED +(libvtmalloc|libtcl)'; then
    fail "tcl-vtmalloc: the extension links libvtmalloc or libtcl: $(objdump -p "$work/tcl-deb/$tcldir/vtmalloc_tcl.so" | grep NEEDED)"
else
    pass "tcl-vtmalloc: the extension links neither libvtmalloc nor libtcl"
fi
mkdir -p "$work/control"
dpkg-deb -e "$rt" "$work/control"
if grep -q "^libvtmalloc.so.0 libvtmalloc0 " "$work/control/symbols" 2>/dev/null &&
    grep -q "^ malloc@Base" "$work/control/symbols" && grep -q "^ vt_stats_get@Base" "$work/control/symbols"; then
    pass "libvtmalloc0 has a symbols file ($(grep -c '@Base' "$work/control/symbols") symbols)"
else
    fail "libvtmalloc0 has no proper symbols file"
fi
grep -q "^libvtmalloc 0 libvtmalloc0" "$work/control/shlibs" 2>/dev/null &&
    pass "libvtmalloc0 has a shlibs file" || fail "libvtmalloc0 has no shlibs file"

# ---- lintian ------------------------------------------------------------------------------
echo "== lintian"
t0=$SECONDS
lintian --pedantic -I "$changes" >"$work/lintian.log" 2>&1
lintian_status=$?
issues=$(grep -E '^(E|W): ' "$work/lintian.log" || true)
if ((lintian_status != 0 && lintian_status != 1)); then
    fail "lintian did not run (status $lintian_status): $(tail -n 5 "$work/lintian.log")"
elif [[ -n $issues ]]; then
    fail "lintian reports errors or warnings (explain or fix them; see debian/README.source):"
    echo "$issues" >&2
else
    pass "lintian: no error, no warning ($((SECONDS - t0)) s)"
fi
grep -E '^(I|P|X): ' "$work/lintian.log" | sed 's/^/    lintian: /' || true

# ---- Installed into a throwaway dpkg root ------------------------------------------------
echo "== dpkg --root: install, use, purge"
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root=(dpkg --root="$root" --force-depends --log=/dev/null)
[[ $(id -u) == 0 ]] || dpkg_root+=(--force-not-root)
if "${dpkg_root[@]}" -i "$rt" "$dev" "$tools" "$tcl" >"$work/dpkg-install.log" 2>&1; then
    pass "dpkg --root -i libvtmalloc0 libvtmalloc-dev vtmalloc tcl-vtmalloc"
else
    cat "$work/dpkg-install.log" >&2
    fail "dpkg --root -i failed"
fi
for p in libvtmalloc0 libvtmalloc-dev vtmalloc tcl-vtmalloc; do
    status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' "$p" 2>/dev/null)
    [[ $status == "install ok installed" ]] && pass "$p: $status" || fail "$p: status '$status'"
done

if [[ -f $root/$libdir/libvtmalloc.so.0 ]]; then
    # The packaged library, preloaded: the probe checks that malloc is vtmalloc's.
    out=$(LD_PRELOAD=$root/$libdir/libvtmalloc.so.0 "$probe" vtmalloc 2>&1) &&
        [[ $out == *"from $root/$libdir/libvtmalloc.so.0"* ]] &&
        pass "packaged library preloaded: $out" || fail "packaged library preloaded: $out"
else
    fail "$root/$libdir/libvtmalloc.so.0 is not installed"
fi

# The packaged launcher names the library where the package puts it.
launcher=$root/usr/bin/vtmalloc
if [[ -x $launcher ]]; then
    grep -qx "vt_library='/$libdir/libvtmalloc.so.0'" "$launcher" &&
        pass "the packaged launcher preloads /$libdir/libvtmalloc.so.0" ||
        fail "the packaged launcher names $(grep '^vt_library=' "$launcher")"
    [[ $("$launcher" --version | head -n 1) == "vtmalloc $version" ]] &&
        pass "packaged vtmalloc --version" || fail "packaged vtmalloc --version: $("$launcher" --version 2>&1)"
    [[ $("$launcher" --help) == "Usage: vtmalloc "* ]] && pass "packaged vtmalloc --help" || fail "packaged vtmalloc --help"
    # Run it as if installed: point it at the root's library (the one it would find in /).
    sed "s|^vt_library=.*|vt_library='$root/$libdir/libvtmalloc.so.0'|" "$launcher" >"$work/vtmalloc-rooted"
    chmod +x "$work/vtmalloc-rooted"
    "$work/vtmalloc-rooted" "$probe" vtmalloc >/dev/null 2>&1 && pass "the packaged launcher preloads the packaged library" ||
        fail "the packaged launcher (pointed at the root) does not preload"
else
    fail "$launcher is not installed or not executable"
fi

# Programs built against libvtmalloc-dev as installed: find_package and pkg-config.
if "$here/consumers.sh" "$root/usr" "$root/$libdir" "$version" "$work/consumers" "$root" >"$work/consumers.log" 2>&1; then
    pass "consumers built against the packaged libvtmalloc-dev: $(grep -c '^ok' "$work/consumers.log") checks"
else
    cat "$work/consumers.log" >&2
    fail "consumers of the packaged libvtmalloc-dev"
fi

# The packaged Tcl package in tclsh8.6, with the packaged library preloaded; the root's
# /usr/lib/tcltk/<multiarch> stands for the one on Debian's auto_path.
out=$(echo 'puts "[package require vtmalloc] [vtmalloc active] [vtmalloc version]"' |
    LD_PRELOAD=$root/$libdir/libvtmalloc.so.0 TCLLIBPATH=$root/usr/lib/tcltk/$multiarch tclsh8.6 2>&1)
[[ $out == "$version 1 $version" ]] && pass "tclsh8.6 loads the packaged Tcl package: $out" ||
    fail "tclsh8.6 with the packaged Tcl package says '$out' (want '$version 1 $version')"
out=$(echo 'package require vtmalloc; puts [vtmalloc active]' |
    env -u LD_PRELOAD TCLLIBPATH=$root/usr/lib/tcltk/$multiarch tclsh8.6 2>&1)
[[ $out == 0 ]] && pass "without vtmalloc preloaded, the packaged Tcl package loads and is inactive" ||
    fail "tclsh8.6 without vtmalloc and the packaged Tcl package says '$out' (want 0)"

# The manual pages, compressed as installed.
for page in usr/share/man/man1/vtmalloc.1.gz usr/share/man/man3/vtmalloc.3.gz; do
    if [[ $(man -l "$root/$page" 2>/dev/null) == *NAME* ]]; then pass "man -l $page"; else fail "man -l $page does not render"; fi
done

# Purge, and nothing may be left.
if "${dpkg_root[@]}" --purge tcl-vtmalloc vtmalloc libvtmalloc-dev libvtmalloc0 >"$work/dpkg-purge.log" 2>&1; then
    pass "dpkg --root --purge"
else
    cat "$work/dpkg-purge.log" >&2
    fail "dpkg --root --purge failed"
fi
left=$(cd "$root" && find . -path ./var -prune -o \( -type f -o -type l \) -print)
[[ -z $left ]] && pass "nothing left in the root after the purge" || fail "left after the purge: $left"
for p in libvtmalloc0 libvtmalloc-dev vtmalloc tcl-vtmalloc; do
    status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status != *installed* || $status == *not-installed* ]] && pass "$p: purged" || fail "$p: still '$status'"
done

if ((fails)); then
    echo "debian: $fails check(s) failed in $((SECONDS - start)) s (work: $work)" >&2
    exit 1
fi
rm -rf "$work"
echo "debian: every check passed in $((SECONDS - start)) s"
