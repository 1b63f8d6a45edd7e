#!/usr/bin/env python3
"""Keeps src/ one-way: no file calls a file on a higher layer, and every file says what it calls.

The convention: the opening comment block of every src/*.c file has two lines

     * Layer: <N> <name>
     * Calls: a.c, b.c, c.c

("Calls: nothing" when the file calls no other src file). The Calls list may wrap onto the
following " * " lines, up to a blank " *" line, the end of the comment or a line that starts
with another field ("Owns: ...").

What is checked, from the compiled objects (not from the text, which could lie):
  - each src/*.c file is compiled alone as the build compiles it, and its symbol table read with
    nm: defined symbols (T D B R C V W, thread-local ones included) and undefined ones (U, and weak
    references w v); an undefined symbol that another src file defines is a call of that file
    (a function or a variable);
  - a file calls no file on a higher layer;
  - a file's Calls line names every file it calls, and names no file it does not call (stale);
  - every file has its Layer and Calls lines, and they name src/*.c files;
  - no src/*.c or src/*.h file is longer than 450 lines.
Every violation is printed (on stdout, one a line, each starting with "layering: "), then a
summary on stderr; the exit status is 1 when there is any, 0 otherwise.

The build, as CMakeLists.txt has it: every file with the C standard of the project,
position-independent, hidden visibility, the include directories include/ and src/, and the
library flags (VT_LIB_FLAGS, given with --cflags); with -O2 and without NDEBUG, so that the calls
of the debug builds' invariant checks count too (a Release build makes a subset of them). Two libraries are made of src/: libvtmalloc,
the drop-in library, where override.c and sysalloc.c are compiled with -DVT_OVERRIDE=1; and the
core library the tests link, without override.c and with sysalloc.c compiled without it. A call
counts when it is made in either library.

Usage:
  layering.py [--cc CC] [--nm NM] [--cflags FLAGS] [--graph] [ROOT]
ROOT is the directory that holds src/ (and include/); by default the repository this script is
in. --graph prints who calls whom (with the symbols) instead of checking: a help for writing the
Calls lines.
"""
import argparse
import concurrent.futures
import os
import re
import shlex
import subprocess
import sys
import tempfile

MAX_LINES = 450

# The compilation of a src file, as CMakeLists.txt does it (GNU C11: CMAKE_C_EXTENSIONS ON;
# CMAKE_POSITION_INDEPENDENT_CODE; CMAKE_C_VISIBILITY_PRESET hidden), at -O2 without NDEBUG.
BASE_FLAGS = ["-std=gnu11", "-O2", "-fPIC", "-fvisibility=hidden"]
# VT_LIB_FLAGS of CMakeLists.txt, used when --cflags is not given.
DEFAULT_LIB_FLAGS = ("-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc "
                     "-fno-builtin-realloc -ftls-model=initial-exec")
OVERRIDE_DEFINE = "-DVT_OVERRIDE=1"

# The libraries made of src/ (see the module's comment): the files each leaves out, and the files
# it compiles with OVERRIDE_DEFINE.
LIBRARIES = [
    ("libvtmalloc", set(), {"override.c", "sysalloc.c"}),
    ("libvtmalloc_core", {"override.c"}, set()),
]

DEFINED_TYPES = set("ABCDGRSTVW") | {"i", "u"}
UNDEFINED_TYPES = {"U", "w", "v"}

FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.c$")
LAYER_LINE = re.compile(r"^Layer:(.*)$")
CALLS_LINE = re.compile(r"^Calls:(.*)$")
FIELD_LINE = re.compile(r"^[A-Za-z]+:")  # "Owns:", "Layer:": not part of a Calls list


class Source:
    """One src/*.c file: what its opening comment says."""

    def __init__(self, name):
        self.name = name
        self.layer = None  # int, once read
        self.calls = None  # set of file names, once read
        self.problems = []  # messages about the comment itself


def opening_comment(text):
    """The lines of the comment that opens the file, without their leading ' * ', or None."""
    stripped = text.lstrip()
    if not stripped.startswith("/*"):
        return None
    end = stripped.find("*/")
    body = stripped[2:end if end >= 0 else len(stripped)]
    lines = []
    for line in body.split("\n"):
        line = line.strip()
        if line.startswith("*"):
            line = line[1:]
        lines.append(line.strip())
    return lines


def read_header(src_dir, name, all_files):
    """Reads the Layer and Calls lines of src/name."""
    s = Source(name)
    path = os.path.join(src_dir, name)
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = opening_comment(f.read())
    where = "src/" + name
    if lines is None:
        s.problems.append(f"{where} has no opening comment block (it must hold the Layer and "
                          "Calls lines)")
        return s
    layer_seen = False
    for i, line in enumerate(lines):
        m = LAYER_LINE.match(line)
        if m and not layer_seen:
            layer_seen = True
            words = m.group(1).split()
            if len(words) < 2 or not words[0].isdigit():
                s.problems.append(f"{where}: malformed Layer line '{line}' (wanted "
                                  "'Layer: <N> <name>')")
            else:
                s.layer = int(words[0])
        m = CALLS_LINE.match(line)
        if m and s.calls is None:
            text = [m.group(1)]
            for more in lines[i + 1:]:
                if more == "" or FIELD_LINE.match(more):
                    break
                text.append(more)
            s.calls = parse_calls(" ".join(text), where, all_files, s.problems)
    if not layer_seen:
        s.problems.append(f"{where} has no 'Layer: <N> <name>' line in its opening comment")
    return s


def parse_calls(text, where, all_files, problems):
    """The file names of a Calls list; problems gets what is wrong with it."""
    names = [w.rstrip(".;") for w in re.split(r"[,\s]+", text) if w.rstrip(".;")]
    if names == ["nothing"]:
        return set()
    calls = set()
    for n in names:
        if n == "nothing":
            problems.append(f"{where}: its Calls line says 'nothing' and names files too")
        elif not FILE_NAME.match(n) or n not in all_files:
            problems.append(f"{where}: its Calls line names '{n}', which is not a src/*.c file")
        else:
            calls.add(n)
    if not names:
        problems.append(f"{where}: its Calls line is empty (write 'Calls: nothing')")
    return calls


def compile_and_read(cc, flags, src_dir, root, name, defines, out_dir):
    """Compiles src/name with the given definitions into out_dir; returns the object's path."""
    tag = "override" if defines else "plain"
    obj = os.path.join(out_dir, f"{name[:-2]}.{tag}.o")
    cmd = [cc, "-c", os.path.join(src_dir, name), "-o", obj, *BASE_FLAGS,
           "-I" + os.path.join(root, "include"), "-I" + src_dir, *flags, *defines]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot compile src/{name}: {' '.join(cmd)}\n{done.stderr}")
    return obj


def symbols(nm, obj):
    """The global symbols an object defines, and those it uses without defining them."""
    done = subprocess.run([nm, "-P", obj], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{nm} -P {obj} failed: {done.stderr}")
    defined, undefined = set(), set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if kind in DEFINED_TYPES:
            defined.add(sym)
        elif kind in UNDEFINED_TYPES:
            undefined.add(sym)
    return defined, undefined


def call_graph(cc, nm, flags, root, src_dir, files):
    """{caller: {callee: set of symbols}}, over both libraries."""
    # Every (file, with the override definition?) that some library compiles, compiled once.
    variants = set()
    for _, leave_out, overridden in LIBRARIES:
        for name in files:
            if name not in leave_out:
                variants.add((name, name in overridden))
    table = {}
    with tempfile.TemporaryDirectory(prefix="layering-") as out_dir:
        jobs = min(len(variants), os.cpu_count() or 2) or 1
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                v: pool.submit(compile_and_read, cc, flags, src_dir, root, v[0],
                               [OVERRIDE_DEFINE] if v[1] else [], out_dir)
                for v in sorted(variants)
            }
            for v, fut in futures.items():
                table[v] = symbols(nm, fut.result())
    graph = {name: {} for name in files}
    for _, leave_out, overridden in LIBRARIES:
        members = [(n, n in overridden) for n in files if n not in leave_out]
        definer = {}
        for v in members:
            for sym in table[v][0]:
                definer.setdefault(sym, set()).add(v[0])
        for v in members:
            caller = v[0]
            for sym in table[v][1]:
                for callee in definer.get(sym, ()):
                    if callee != caller:
                        graph[caller].setdefault(callee, set()).add(sym)
    return graph


def long_files(src_dir):
    out = []
    for name in sorted(os.listdir(src_dir)):
        if name.endswith((".c", ".h")):
            with open(os.path.join(src_dir, name), encoding="utf-8", errors="replace") as f:
                n = len(f.read().splitlines())
            if n > MAX_LINES:
                out.append(f"src/{name} has {n} lines, more than {MAX_LINES}")
    return out


def check(sources, graph):
    """The violations of the layering and of the Calls lines."""
    out = []
    for name in sorted(sources):
        s = sources[name]
        out.extend(s.problems)
        calls = graph[name]
        if s.calls is None:
            said = ", ".join(sorted(calls)) if calls else "nothing"
            out.append(f"src/{name} has no 'Calls:' line in its opening comment (it calls: "
                       f"{said})")
        for callee in sorted(calls):
            syms = ", ".join(sorted(calls[callee]))
            c = sources[callee]
            if s.layer is not None and c.layer is not None and c.layer > s.layer:
                out.append(f"src/{name} (layer {s.layer}) calls {syms} in src/{callee} "
                           f"(layer {c.layer})")
            if s.calls is not None and callee not in s.calls:
                out.append(f"src/{name} calls src/{callee} ({syms}) but its Calls line does "
                           "not name it")
        for named in sorted(s.calls or ()):
            if named not in calls:
                out.append(f"src/{name}: its Calls line names src/{named}, which it does not "
                           "call (a stale comment)")
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--nm", default="nm")
    ap.add_argument("--cflags", default=DEFAULT_LIB_FLAGS,
                    help="the library's compile flags (VT_LIB_FLAGS)")
    ap.add_argument("--graph", action="store_true", help="print who calls whom, do not check")
    ap.add_argument("root", nargs="?", default=os.path.dirname(here))
    args = ap.parse_args()

    src_dir = os.path.join(args.root, "src")
    files = sorted(n for n in os.listdir(src_dir) if n.endswith(".c"))
    try:
        graph = call_graph(args.cc, args.nm, shlex.split(args.cflags), args.root, src_dir,
                           files)
    except RuntimeError as e:
        print(f"layering: {e}", file=sys.stderr)
        return 2
    if args.graph:
        for name in files:
            print(f"{name}: " + (", ".join(sorted(graph[name])) or "nothing"))
            for callee in sorted(graph[name]):
                print(f"    {callee}: {', '.join(sorted(graph[name][callee]))}")
        return 0

    sources = {n: read_header(src_dir, n, set(files)) for n in files}
    violations = check(sources, graph) + long_files(src_dir)
    for v in violations:
        print(f"layering: {v}")
    pairs = sum(len(c) for c in graph.values())
    if violations:
        print(f"layering: FAIL: {len(violations)} violation(s) in the {len(files)} files of "
              f"{src_dir}", file=sys.stderr)
        return 1
    print(f"layering: ok: {len(files)} files, {pairs} caller-callee pairs, all one-way and all "
          "named", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
