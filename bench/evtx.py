"""EVTX benchmark: `authtriage events` with each backend beside the parsers' own loops.

    python bench/evtx.py [--records 500000] [--python-records 20000] [--shared] [--repeat 1]

The input is a busy domain controller's Security log written by the sample generator
(bench/out/security-N.evtx, made once). With --shared, the largest Security log of
../shared/data is named again and again on the command line instead (no copies are
made). Baselines, run in the same invocation on the same inputs:
`PyEvtxParser(path).records_json()` with `json.loads` of every record, `records_json()`
alone, and python-evtx's own `record.xml()` loop (on --python-records only: it is slow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import OUT, run  # noqa: E402  (same measuring helper as the auth-log benchmark)

SHARED = ROOT.parent / "shared" / "data"

RUST_JSON = """
import json, sys
from evtx import PyEvtxParser
n = 0
for p in sys.argv[2:]:
    for r in PyEvtxParser(p).records_json():
        if sys.argv[1] == "loads":
            json.loads(r["data"])
        n += 1
print(n)
"""

PY_XML = """
import sys
import Evtx.Evtx as E
n = 0
for p in sys.argv[1:]:
    with E.Evtx(p) as f:
        for chunk in f.chunks():
            for rec in chunk.records():
                rec.xml()
                n += 1
print(n)
"""


def largest_security() -> tuple[Path, int]:
    manifest = json.loads((SHARED / "MANIFEST.json").read_text())["files"]
    best = max(
        (
            (v["records"], k)
            for k, v in manifest.items()
            if k.endswith(".evtx")
            and set(v.get("channels") or {}) == {"Security"}
            and v.get("ground_truth_mode") == "strict"
        ),
        default=None,
    )
    if best is None:
        raise SystemExit("no Security EVTX in ../shared/data")
    return SHARED / best[1], best[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--python-records", type=int, default=20_000)
    ap.add_argument("--shared", action="store_true", help="repeat the largest shared Security log instead")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of timed runs (best of)")
    args = ap.parse_args()
    if args.shared:
        path, per_file = largest_security()
        copies = max(1, args.records // per_file)
        py_copies = max(1, args.python_records // per_file)
        big, small = [str(path)] * copies, [str(path)] * py_copies
    else:
        from analyzer.samples_windows import large_security_evtx

        OUT.mkdir(parents=True, exist_ok=True)
        files = []
        for n in (args.records, args.python_records):
            f = OUT / f"security-{n}.evtx"
            if not f.exists():
                large_security_evtx(f, n)
            files.append(f)
        path, per_file, copies, py_copies = files[0], args.records, 1, 1
        big, small = [str(files[0])], [str(files[1])]
        per_file_small = args.python_records
    exe = [sys.executable, "-m", "analyzer", "events", "-o", os.devnull]
    small_records = per_file if args.shared else per_file_small
    work = [
        ("records_json alone", copies, [sys.executable, "-c", RUST_JSON, "plain", *big]),
        ("records_json + json.loads", copies, [sys.executable, "-c", RUST_JSON, "loads", *big]),
        ("authtriage events (rust)", copies, [*exe, *big]),
        ("python-evtx record.xml()", py_copies, [sys.executable, "-c", PY_XML, *small]),
        ("authtriage events (python)", py_copies, [*exe, "--evtx-backend", "python", *small]),
    ]
    print(
        f"{path.name}: {per_file} records, named {copies}× ({copies * per_file:,} records); python runs: {py_copies}×"
    )
    print(f"{'workload':<30}{'records':>10}{'seconds':>9}{'records/s':>12}{'peak MB':>9}")
    # timed in interleaved rounds without memory sampling (best of --repeat), then one
    # sampled run each for the peak
    best = [float("inf")] * len(work)
    outs = [""] * len(work)
    for _ in range(args.repeat):
        for i, (_, _, cmd) in enumerate(work):
            wall, _, outs[i], _ = run(cmd, sample=False)
            best[i] = min(best[i], wall)
    rates = {}
    for (name, n, cmd), wall, out in zip(work, best, outs, strict=True):
        rss = run(cmd, sample=True)[1]
        # a baseline prints how many records it decoded (python-evtx alone reads only the
        # chunks the header declares); authtriage reads them all
        records = int(out.strip()) if out.strip().isdigit() else n * (small_records if "python" in name else per_file)
        rates[name] = records / wall
        print(f"{name:<30}{records:>10,}{wall:>9.2f}{records / wall:>12,.0f}{rss / 1e6:>9.0f}")
    rust = rates["authtriage events (rust)"] / rates["records_json + json.loads"]
    python = rates["authtriage events (python)"] / rates["python-evtx record.xml()"]
    print(f"rust backend / (records_json + json.loads): {rust:.2f}×; python backend / python-evtx loop: {python:.2f}×")


if __name__ == "__main__":
    main()
