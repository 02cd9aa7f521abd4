"""Where a run's CPU goes, by phase and process, from a py-spy profile of the whole process tree.

    pip install '.[profile]'
    py-spy record -s -r 200 -f raw -o run.raw -- authtriage analyze bench/out/bundle-20x1000000 --jobs 2 -o /dev/null
    python bench/spy_phases.py run.raw

Each sample's stack is put under the first of PHASES it passes through (else "other"), for the
parent (P) or a worker (W); then the innermost functions overall.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

PHASES = [
    "_find_and_load",  # importing
    "_syslog_block",  # a text log's block: framing, headers, the catalog
    "read_evtx",
    "finish",  # a source's times, PAM folding, schema
    "concat_events",
    "_settled",  # a worker's result arriving
    "classify",
    "findings",
    "fill_examples",  # the examples' text, read again
    "explain",
    "_analyze_part",
    "summarize",  # what is left of it: merging the shares, counts, timeline
    "render",
    "_write",
    "read_events",
    "analyze_events",
]


def main(path: str) -> None:
    phases: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            who = "P" if sum(f.startswith("process ") for f in frames) == 1 else "W"  # a worker's stack names both
            funcs = [re.sub(r" \(.*", "", f) for f in frames]
            phases[f"{who} {next((p for p in PHASES if p in funcs), 'other')}"] += n
            leaves[funcs[-1]] += n
    print(f"{total} samples")
    for name, n in phases.most_common():
        print(f"{n / total:6.1%}  {name}")
    print("innermost functions:")
    for name, n in leaves.most_common(15):
        print(f"{n / total:6.1%}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
