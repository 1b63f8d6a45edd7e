#!/usr/bin/env python3
"""Checks the manual pages and the guides against the code, so that they cannot drift:

- man/vtmalloc.1 and man/vtmalloc.3 render with groff -ww without a warning, and with man -l;
- their version is the project's;
- the options in the launcher's --help and in vtmalloc(1) OPTIONS are the same;
- the table of names in --help, the NAMES of vtmalloc(1) and the ENVIRONMENT of vtmalloc(3)
  say the same as src/options.c: the names, their ranges or words, and their defaults;
- every vt_* function of include/vtmalloc.h is in the SYNOPSIS of vtmalloc(3), and every
  field of vt_stats_t and vt_class_stats_t in its STATISTICS;
- the links between the guides in docs/ lead to files that exist.

Usage: check_docs.py SOURCE_DIR LAUNCHER VERSION
"""
import os
import re
import subprocess
import sys

src, launcher, version = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def read(path):
    with open(os.path.join(src, path), encoding="utf-8") as f:
        return f.read()


def render(page):
    """The page as man shows it, one paragraph a line (a very wide page does not wrap)."""
    env = dict(os.environ, MANWIDTH="1000", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8")
    out = subprocess.run(["man", "-l", os.path.join(src, page)], capture_output=True,
                         text=True, env=env, check=False)
    check(out.returncode == 0 and "NAME" in out.stdout, f"man -l {page} renders")
    text = re.sub(r".\x08", "", out.stdout)  # overstrikes, should man add any
    return text.replace("\u2010", "-").replace("\u2212", "-")


def section(text, name):
    """The lines of a top-level section of a rendered page."""
    m = re.search(r"^" + re.escape(name) + r"\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


# ---- The library's options, from src/options.c -------------------------------------------
options_c = read("src/options.c")
table = re.findall(r'\{"([A-Z_]+)",\s*&vt_options\.(\w+),\s*(\d+),\s*(\d+),\s*(NULL|"[^"]*")',
                   options_c)
defaults = dict(re.findall(r"^\s*\.(\w+)\s*=\s*([\w]+),", options_c, re.M))
check(len(table) >= 7, f"src/options.c: {len(table)} options parsed")
options = {}
for name, field, lo, hi, choices in table:
    default = defaults.get(field)
    if choices == "NULL":
        options[name] = {"values": f"{lo}..{hi}", "words": None, "default": default,
                         "lo": lo, "hi": hi}
    else:
        words = choices.strip('"').split(",")
        # An enum default: VT_BACKING_MMAP is the word "mmap".
        word = default.rsplit("_", 1)[-1].lower() if default else None
        check(word in words, f"{name}: the default {default} is one of {words}")
        options[name] = {"values": "|".join(words), "words": words, "default": word}
    check(default is not None, f"{name}: a default in vt_options")
# The options whose value is text (file names), in a table of their own.
texts = re.findall(r'\{"([A-Z_]+)",\s*vt_options_\w+,', options_c)
check(len(texts) >= 3, f"src/options.c: {len(texts)} text options parsed")

# ---- The man pages render cleanly and carry the project's version ------------------------
for page in ("man/vtmalloc.1", "man/vtmalloc.3"):
    out = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(src, page)],
                         capture_output=True, text=True, check=False)
    check(out.returncode == 0 and out.stderr == "",
          f"groff -man -ww {page}: no warning {out.stderr.strip()}")
    th = re.search(r'^\.TH\s+\S+\s+\d\s+\S+\s+"vtmalloc ([^"]+)"', read(page), re.M)
    check(th is not None and th.group(1) == version,
          f"{page}: .TH says vtmalloc {th.group(1) if th else '?'} (project: {version})")
man1 = render("man/vtmalloc.1")
man3 = render("man/vtmalloc.3")

# ---- The launcher's --help ----------------------------------------------------------------
help_out = subprocess.run([launcher, "--help"], capture_output=True, text=True, check=False)
check(help_out.returncode == 0, "vtmalloc --help exits 0")
helptext = help_out.stdout

OPTION = r"(?<![\w-])(--?[a-z][a-z-]*|--(?=\s))"
opts_help = set(re.findall(OPTION, helptext.split("Names,")[0]))
opts_man = set(re.findall(OPTION, section(man1, "OPTIONS")))
check(opts_help == opts_man,
      f"options in --help {sorted(opts_help)} and in vtmalloc(1) OPTIONS {sorted(opts_man)}")
for opt in ("--stats", "--backing", "--option", "-o", "--help", "-h", "--version", "--"):
    check(opt in opts_help, f"--help has {opt}")

help_rows = {}
for line in helptext.splitlines():
    m = re.match(r"^  ([A-Z_]+)\s+(\S+)\s+(\S+)\s+(.+)$", line)
    if m and m.group(1) != "NAME":
        help_rows[m.group(1)] = (m.group(2), m.group(3), m.group(4).strip())
check(set(help_rows) == set(options),
      f"names in --help {sorted(help_rows)} are those of src/options.c {sorted(options)}")

names1 = section(man1, "NAMES")
env3 = section(man3, "ENVIRONMENT")
for name, o in options.items():
    row = help_rows.get(name)
    check(row is not None and row[0] == o["values"] and row[1] == o["default"],
          f"--help: {name} {row[0] if row else '?'} default {row[1] if row else '?'}"
          f" (options.c: {o['values']} default {o['default']})")
    # vtmalloc(1) NAMES: "NAME" then "VALUES, default D: MEANING", the meaning as in --help.
    values1 = o["values"] if o["words"] is None else " or ".join(o["words"])
    m = re.search(r"^\s*" + name + r"\s*\n?\s*(.+)$", names1, re.M)
    body = m.group(1).strip() if m else ""
    want = f"{values1}, default {o['default']}: {row[2] if row else ''}."
    check(body == want, f"vtmalloc(1) NAMES {name}: '{body}' (want '{want}')")
    # vtmalloc(3) ENVIRONMENT: the variable, its range or words, its default.
    m = re.search(r"^\s*VTMALLOC_" + name + r"\s*\n(.+)$", env3, re.M)
    body = m.group(1) if m else ""
    if o["words"] is None:
        ok = f"a number from {o['lo']} to {o['hi']}, default {o['default']}" in body
    else:
        ok = ("one of the words " + " or ".join(o["words"]) in body
              and f"default {o['default']}" in body)
    check(ok, f"vtmalloc(3) ENVIRONMENT VTMALLOC_{name}: range and default as options.c")
text_help = helptext.split("Names whose value is text")[-1] if "Names whose value is text" in helptext else ""
for name in texts:
    check(re.search(r"^  " + name + r"=", text_help, re.M) is not None,
          f"--help lists the text option {name}")
    check(re.search(r"^\s*VTMALLOC_" + name + r"\s*$", env3, re.M) is not None,
          f"vtmalloc(3) ENVIRONMENT documents VTMALLOC_{name}")
for extra in set(re.findall(r"^\s*VTMALLOC_([A-Z_]+)\s*$", env3, re.M)) - set(options) - set(texts):
    check(False, f"vtmalloc(3) documents VTMALLOC_{extra}, which src/options.c does not know")

# ---- vtmalloc(3) against include/vtmalloc.h -----------------------------------------------
header = read("include/vtmalloc.h")
functions = set(re.findall(r"\b(vt_\w+)\s*\(", header))
synopsis = section(man3, "SYNOPSIS")
for fn in sorted(functions):
    check(re.search(r"\b" + fn + r"\(", synopsis) is not None, f"vtmalloc(3) SYNOPSIS has {fn}()")
stats = section(man3, "STATISTICS")
for struct in ("vt_class_stats", "vt_stats"):
    body = re.search(r"typedef struct " + struct + r"\s*\{(.*?)\}", header, re.S)
    fields = re.findall(r"^\s*\w+\s+(\w+)(?:\[\w+\])?;", body.group(1), re.M) if body else []
    check(len(fields) > 0, f"{struct}: {len(fields)} fields in the header")
    for field in fields:
        check(re.search(r"\b" + field + r"\b", stats) is not None,
              f"vtmalloc(3) STATISTICS describes {struct}.{field}")

# ---- The guides ---------------------------------------------------------------------------
for guide in ("preloading.md", "statistics.md", "tcl-naviserver.md", "valgrind.md"):
    path = os.path.join("docs", guide)
    text = read(path)
    check(len(text) > 1000, f"{path} is there")
    for link in re.findall(r"\]\(([^)#:]+\.md)\)", text):
        check(os.path.exists(os.path.join(src, "docs", link)), f"{path}: link to {link} resolves")

print(f"check_docs: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
