#!/usr/bin/env python3
"""The self-test of tests/layering.py: it must fail where it should, and pass where it should.

Each directory of tests/layering-fixtures/ is a small src/ with an `expect` file: "pass" or
"fail" on its first line (after comments), then every line the checker must print on stdout, and
no other, in any order. Besides those, cases made here from the clean fixture: files of exactly
450 lines pass, longer .c and .h files fail; a file that does not compile is an error (status 2).

Usage: layering-selftest.py [options of layering.py: --cc CC --nm NM --cflags FLAGS]
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "layering.py")
FIXTURES = os.path.join(HERE, "layering-fixtures")
failures = []


def run(root):
    done = subprocess.run([sys.executable, CHECKER, *sys.argv[1:], root], capture_output=True,
                          text=True)
    return done.returncode, done.stdout.splitlines(), done.stderr


def expect(case, root, status, lines):
    got_status, got_lines, err = run(root)
    problems = []
    if got_status != status:
        problems.append(f"exit status {got_status}, expected {status}")
    missing = sorted(set(lines) - set(got_lines))
    extra = sorted(set(got_lines) - set(lines))
    problems += [f"missing line: {l}" for l in missing]
    problems += [f"unexpected line: {l}" for l in extra]
    if len(got_lines) != len(set(got_lines)):
        problems.append("a line printed twice")
    if problems:
        failures.append(case)
        print(f"FAIL: {case}:")
        for p in problems:
            print(f"    {p}")
        print("    stderr: " + err.strip().replace("\n", "\n            "))
    else:
        print(f"ok: {case}: exit {got_status}, {len(got_lines)} violation(s) as expected")
    return got_lines, err


def read_expect(path):
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if not l.startswith("#") and l.strip()]
    assert lines and lines[0] in ("pass", "fail"), f"{path}: first line must be pass or fail"
    return (0 if lines[0] == "pass" else 1), lines[1:]


def pad(path, total):
    """Appends comment lines to path until it has `total` lines."""
    with open(path) as f:
        n = len(f.read().splitlines())
    with open(path, "a") as f:
        for i in range(n, total):
            f.write(f"/* padding line {i + 1} */\n")


def generated_cases():
    with tempfile.TemporaryDirectory(prefix="layering-selftest-") as tmp:
        root = os.path.join(tmp, "long")
        shutil.copytree(os.path.join(FIXTURES, "clean"), root)
        src = os.path.join(root, "src")
        pad(os.path.join(src, "mid.c"), 450)  # at the limit: allowed
        pad(os.path.join(src, "base.c"), 451)
        pad(os.path.join(src, "fixture.h"), 460)
        expect("long (generated from clean)", root, 1, [
            "layering: src/base.c has 451 lines, more than 450",
            "layering: src/fixture.h has 460 lines, more than 450",
        ])

        root = os.path.join(tmp, "broken")
        shutil.copytree(os.path.join(FIXTURES, "clean"), root)
        with open(os.path.join(root, "src", "peer.c"), "a") as f:
            f.write("this is not C\n")
        _, err = expect("broken (generated from clean)", root, 2, [])
        if "cannot compile src/peer.c" not in err:
            failures.append("broken: message")
            print("FAIL: broken: stderr does not say 'cannot compile src/peer.c'")


def main():
    cases = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d)))
    for case in cases:
        root = os.path.join(FIXTURES, case)
        status, lines = read_expect(os.path.join(root, "expect"))
        expect(case, root, status, lines)
    generated_cases()
    if failures:
        print(f"layering-selftest: FAIL: {', '.join(failures)}")
        return 1
    print(f"layering-selftest: ok: {len(cases) + 2} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
