#!/usr/bin/env python3
"""Rewrites the tables at the bottom of bench/RESULTS.md (from "## memtest" on) from a battery's
markdown files: assemble.py RESULTS.md BATTERY_DIR COMMIT. The battery directory holds
memtest.md, instr.md and soak-long.md as bench/main, bench/run-instr and bench/run-soak write
them; their headings move down to fit under this file's sections."""
import re, sys

def shift(text, first, rest):
    out, seen = [], False
    for line in text.splitlines():
        m = re.match(r'^(#+) ', line)
        if m:
            line = ('#' * (first if not seen else len(m.group(1)) + rest)) + line[len(m.group(1)):]
            seen = True
        out.append(line)
    return '\n'.join(out).rstrip('\n') + '\n'

path, bat, commit = sys.argv[1:4]
results = open(path).read()
head = results[:results.index('\n## memtest\n') + 1]
memtest = shift(open(f'{bat}/memtest.md').read(), 3, 1)
instr = shift(open(f'{bat}/instr.md').read(), 3, 2)
soak = shift(open(f'{bat}/soak-long.md').read(), 3, 2)
open(path, 'w').write(head + '## memtest\n\n' + memtest + '\n## Instructions per malloc+free pair\n\n' +
                      instr + '\n## Soak (memory over time)\n\n' +
                      f'Two runs of each allocator, at {commit}, with `bench/run-soak --long --reps 2`; '
                      'the tables show their medians.\n\n' + soak)
