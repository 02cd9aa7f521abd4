"""Benchmark: 20 concurrent uploads of the sample ticket bundle to `authtriage serve` on
loopback, from this (another) process; beside it, one `authtriage analyze` of the same
bundle as the baseline (run in the same invocation: only ratios mean anything here).

    python bench/serve.py [--uploads 20] [--workers N]

Reports: all uploads finished and none lost, throughput (analyses/min), time from upload
to report (p50, p95), and the peak memory of the server's process tree (Pss). The timed
batch runs without memory sampling (reading smaps costs the measured processes CPU time);
the peak comes from a second batch of the same uploads, sampled.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import _tree_rss  # noqa: E402

TICKET = ROOT / "samples" / "ticket-bundle" / "ticket.zip"
BIN = Path(sys.executable).with_name("authtriage")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(base: str, data: bytes) -> tuple[float, str]:
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, timeout=120) as c:
        r = c.post("/api/analyses", files=[("files", ("ticket.zip", data))])
        while r.status_code == 503:  # a full queue says when to come back
            time.sleep(float(r.headers.get("retry-after", "1")) / 10)
            r = c.post("/api/analyses", files=[("files", ("ticket.zip", data))])
        r.raise_for_status()
        id = r.json()["id"]
        while True:
            body = c.get(f"/api/analyses/{id}").json()
            if body["status"] in ("done", "failed"):
                return time.perf_counter() - t0, body["status"]
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    data = TICKET.read_bytes()

    runs = []
    for _ in range(3):  # the baseline: best of three
        t = time.perf_counter()
        subprocess.run([str(BIN), "analyze", str(TICKET), "--format", "json", "-o", os.devnull], check=True)
        runs.append(time.perf_counter() - t)
    single = min(runs)

    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        server = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), "--data-dir", tmp, "--workers", str(args.workers)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        idle = _tree_rss(server.pid)

        def batch() -> tuple[float, list[tuple[float, str]]]:
            t = time.perf_counter()
            with ThreadPoolExecutor(args.uploads) as pool:
                got = list(pool.map(lambda _: one(base, data), range(args.uploads)))
            return time.perf_counter() - t, got

        wall, results = batch()  # timed, nothing sampling
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(server.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, sampled = batch()  # for the memory peak only
        stop.set()
        sampler.join()
        failed_sampled = sum(r[1] != "done" for r in sampled)
        with httpx.Client(base_url=base) as c:
            listed = c.get("/api/analyses", params={"limit": 500}).json()
        server.terminate()
        server.wait(timeout=30)

    times = sorted(r[0] for r in results)
    done = sum(r[1] == "done" for r in results)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"uploads: {args.uploads} concurrent, {len(data) / 1024:.0f} KiB each, server --workers {args.workers}")
    print(f"finished: {done} done, {args.uploads - done} failed; {len(listed)} listed by the server (none lost)")
    print(f"(a second batch of as many uploads, sampled for the memory peak below: {failed_sampled} failed)")
    print(f"wall: {wall:.1f} s → {60 * args.uploads / wall:.0f} analyses/min")
    print(f"time to report: p50 {statistics.median(times):.2f} s, p95 {p95:.2f} s, max {times[-1]:.2f} s")
    print(f"baseline: one `authtriage analyze` of the bundle {single:.2f} s; {args.uploads} in a row would take "
          f"{args.uploads * single:.1f} s (server: {args.uploads * single / wall:.2f}× that)")  # fmt: skip
    print(f"server memory (Pss of its process tree): idle {idle / 2**20:.0f} MiB, peak {peak[0] / 2**20:.0f} MiB")
    if done != args.uploads or failed_sampled or len(listed) != 2 * args.uploads:
        raise SystemExit("some uploads were lost or failed")


if __name__ == "__main__":
    main()
