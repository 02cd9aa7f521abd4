"""Benchmark: authtriage on a large generated auth log, beside baselines run in the same
invocation (the machine is noisy; only ratios measured side by side mean anything).

    python bench/run.py [--lines 1000000] [--repeat 3] [--gigabyte]

Workloads: `wc -l` (the I/O floor), a Python loop running one compiled regex (sshd's
Failed/Accepted line) over every line (the baseline the targets are stated against),
`authtriage events` and `authtriage analyze`. Each command runs in its own process; the
table shows the best wall time of --repeat runs, lines/s, and the peak RSS of that process.
--gigabyte adds a ~1 GB log for the memory target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

BASELINE = r"""
import re, sys
rx = re.compile(r"sshd(?:-session)?\[\d+\]: (?:Failed|Accepted) (\S+) for (.*?) from (\S+) port (\d+)")
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        if rx.search(line.decode("utf-8", "replace")):
            n += 1
print(n)
"""


def make_log(path: Path, lines: int) -> None:
    from analyzer.samples import large_auth_log

    if path.exists() and path.stat().st_size > 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    t = time.perf_counter()
    with open(tmp, "w", encoding="utf-8") as fh:
        for chunk in large_auth_log(lines, seed=1):
            fh.write(chunk)
    tmp.rename(path)
    size = path.stat().st_size / 1e6
    print(f"generated {path.name}: {lines} lines, {size:.0f} MB in {time.perf_counter() - t:.1f} s")


def _tree_rss(pid: int) -> int:
    """Proportional resident bytes of a process and its descendants (worker processes)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:  # Pss: shared (forked) pages counted once
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak memory (bytes, worker processes included) and standard output.

    The peak is the larger of the process's own ru_maxrss and the process tree's summed
    Pss sampled every 10 ms (workers are children of the measured process)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.01)
    wall = time.perf_counter() - t
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{cmd} failed ({status}): {err}")
    return wall, max(peak, usage.ru_maxrss * 1024), out


def bench(path: Path, repeat: int) -> list[tuple[str, float, int]]:
    exe = [sys.executable, "-m", "analyzer"]
    work = {
        "wc -l (I/O floor)": ["wc", "-l", str(path)],
        "one-regex Python loop": [sys.executable, "-c", BASELINE, str(path)],
        "authtriage events": [*exe, "events", str(path), "--year", "2025", "-o", os.devnull],
        "authtriage analyze --jobs 1": [*exe, "analyze", str(path), "--year", "2025", "--jobs", "1", "-o", os.devnull],
        "authtriage analyze": [*exe, "analyze", str(path), "--year", "2025", "-o", os.devnull],
    }
    results = []
    for name, cmd in work.items():
        runs = [run(cmd)[:2] for _ in range(repeat)]
        best = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        results.append((name, best, rss))
    return results


def table(path: Path, results: list[tuple[str, float, int]]) -> str:
    with open(path, "rb") as fh:
        lines = sum(1 for _ in fh)
    base = dict((n, t) for n, t, _ in results)["one-regex Python loop"]
    out = [
        f"{path.name}: {lines:,} lines, {path.stat().st_size / 1e6:,.0f} MB",
        f"{'workload':<30}{'seconds':>9}{'lines/s':>12}{'peak RSS MB':>13}{'× regex loop':>14}",
    ]
    for name, t, rss in results:
        out.append(f"{name:<30}{t:>9.2f}{lines / t:>12,.0f}{rss / 1e6:>13.0f}{t / base:>14.2f}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gigabyte", action="store_true", help="also measure a ~1 GB log (memory target)")
    args = ap.parse_args()
    path = OUT / f"auth-{args.lines}.log"
    make_log(path, args.lines)
    print(f"{os.cpu_count()} CPUs; analyze and events use all of them unless --jobs 1")
    print(table(path, bench(path, args.repeat)))
    if args.gigabyte:
        big = OUT / "auth-1gb.log"
        make_log(big, 7_800_000)
        print()
        print(table(big, bench(big, 1)))


if __name__ == "__main__":
    main()
