"""The fleet benchmark: a collector's tree of many hosts' logs, read by authtriage on this
machine's processes (``--jobs``) and on a Dask cluster started here (a scheduler and two
workers), beside the one-regex loop over the same files, in one invocation.

    python bench/fleet.py [--hosts 1000] [--lines-per-host 2000] [--records-per-host 200] [--repeat 1]
                          [--big-hosts 200] [--big-mb 10] [--only fleet,single,big]

Workloads (generated once into bench/out/ by the sample generator, never committed):
- fleet: ``<root>/<host>/auth.log`` and ``<root>/<host>/Security.evtx`` for --hosts hosts
  (each host's own names in its logs): --lines-per-host lines and --records-per-host records each;
- single: the same lines as one auth log and the same records as one Security.evtx (what the
  fleet's per-input cost is measured against);
- big: --big-hosts hosts' auth logs of --big-mb MB each (the memory target: no process over 500 MB).
Each runs the one-regex loop (baseline; a json.loads loop over the EVTX records beside it),
``analyze --jobs 2`` and ``analyze --cluster`` against the two-worker cluster; the table shows
the best wall time, lines (and records) per second and the peak resident memory: the client's
tree (Pss, as bench/run.py samples it), the client process itself and its largest local worker
(each one's own VmHWM), and each Dask process (scheduler, workers).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import MIXED, high_water, lines_in, run  # noqa: E402  (the same measuring as bench/run.py)

HOSTS = ("web01", "web02", "db01")  # the names large_auth_log writes


def make_fleet(root: Path, hosts: int, lines: int, records: int) -> list[Path]:
    """``root/<host>/auth.log`` (and ``Security.evtx`` when ``records``) for each host."""
    from analyzer.samples import large_auth_log
    from analyzer.samples_windows import large_security_evtx

    files: list[Path] = []
    t = time.perf_counter()
    made = 0
    for i in range(hosts):
        name = f"vm{i:04d}"
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        auth = folder / "auth.log"
        files.append(auth)
        if not auth.exists():
            made += 1
            tmp = auth.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for chunk in large_auth_log(lines, seed=1000 + i):
                    for h in HOSTS:
                        chunk = chunk.replace(f" {h} ", f" {name} ")
                    fh.write(chunk)
            tmp.rename(auth)
        if records:
            evtx = folder / "Security.evtx"
            files.append(evtx)
            if not evtx.exists():
                tmp = evtx.with_suffix(".tmp")
                large_security_evtx(tmp, records, seed=5000 + i, host=f"{name.upper()}.corp.example")
                tmp.rename(evtx)
    if made:
        print(f"generated {root.name}: {hosts} hosts in {time.perf_counter() - t:.0f} s", flush=True)
    return files


def make_single(path: Path, hosts: int, lines: int, records: int) -> list[Path]:
    """The fleet's content as few files: its auth lines as one file (``path``) and, when
    ``records``, its Security records as one EVTX beside it (the same records: the same seeds
    and host names as :func:`make_fleet`'s)."""
    from analyzer.evtxwriter import EvtxWriter
    from analyzer.samples_windows import write_security_events

    files = [path]
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for i in range(hosts):
                out.write((path.parent / path.name.removesuffix("-auth.log") / f"vm{i:04d}" / "auth.log").read_bytes())
        tmp.rename(path)
    if records:
        evtx = path.with_name(path.name.removesuffix("-auth.log") + "-Security.evtx")
        files.append(evtx)
        if not evtx.exists():
            tmp = evtx.with_suffix(".tmp")
            with EvtxWriter(tmp) as w:
                for i in range(hosts):
                    write_security_events(w, records, seed=5000 + i, host=f"VM{i:04d}.corp.example")
            tmp.rename(evtx)
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalDask:
    """A ``dask scheduler`` and two ``dask worker`` processes (one thread each) on 127.0.0.1."""

    def __init__(self, workers: int = 2) -> None:
        dask = str(Path(sys.executable).with_name("dask"))
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        port = self.address.rsplit(":", 1)[1]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
        scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        self.procs = [subprocess.Popen(scheduler, **quiet)]
        worker = [dask, "worker", self.address, "--no-nanny", "--nthreads", "1", "--memory-limit", "0"]
        worker.append("--no-dashboard")
        for _ in range(workers):
            self.procs.append(subprocess.Popen(worker, **quiet))
        from distributed import Client

        try:
            with Client(self.address, timeout=60, set_as_default=False) as client:
                client.wait_for_workers(workers, timeout=60)
        except BaseException:
            self.stop()
            raise
        self.peaks = [0] * len(self.procs)

    def reset_peaks(self) -> None:
        """VmHWM cannot be reset from outside: the peaks are sampled while a run goes on instead."""
        self.peaks = [0] * len(self.procs)

    def sample(self, stop: threading.Event) -> None:
        while not stop.wait(0.05):
            for i, p in enumerate(self.procs):
                self.peaks[i] = max(self.peaks[i], _rss(p.pid))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return out


def per_process(cmd: list[str]) -> tuple[int, int]:
    """One run's peak resident memory of the client process itself and of the largest of
    its worker processes (each one's own VmHWM, sampled every 50 ms until it exits)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), high_water(pid))
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode})")
    own = peaks.pop(proc.pid, 0)
    return own, max(peaks.values(), default=0)


def measure(cmd: list[str], repeat: int, cluster: LocalDask | None) -> tuple[float, int, list[int], tuple[int, int]]:
    """Best wall time of ``repeat`` runs, the client's peak (tree Pss or own VmHWM), each
    cluster process's peak RSS during one more, sampled run, and the peaks per process of
    the client and its largest local worker in a third."""
    best = min(run(cmd, sample=False)[0] for _ in range(repeat))
    stop = threading.Event()
    sampler = None
    if cluster is not None:
        cluster.reset_peaks()
        sampler = threading.Thread(target=cluster.sample, args=(stop,), daemon=True)
        sampler.start()
    _, peak, _, _ = run(cmd, sample=True)
    stop.set()
    if sampler is not None:
        sampler.join()
    return best, peak, list(cluster.peaks) if cluster is not None else [], per_process(cmd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--lines-per-host", type=int, default=2000)
    ap.add_argument("--records-per-host", type=int, default=200)
    ap.add_argument("--big-hosts", type=int, default=200)
    ap.add_argument("--big-mb", type=int, default=10, help="MB of auth log per host of the big tree")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="fleet,single", help="workloads: fleet, single, big")
    args = ap.parse_args()
    only = set(args.only.split(","))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "analyzer")], check=True)
    tag = f"{args.hosts}x{args.lines_per_host}+{args.records_per_host}"
    fleet_root = OUT / f"fleet-{tag}"
    fleet = make_fleet(fleet_root, args.hosts, args.lines_per_host, args.records_per_host)
    single = make_single(OUT / f"fleet-{tag}-auth.log", args.hosts, args.lines_per_host, args.records_per_host)
    records = args.hosts * args.records_per_host
    workloads: dict[str, tuple[str, list[Path], list[Path], int]] = {}
    if "fleet" in only:
        workloads["fleet"] = (f"{args.hosts} hosts: auth.log + Security.evtx each", fleet, [fleet_root], records)
    if "single" in only:
        workloads["single"] = ("the fleet's lines as one file, its records as one EVTX", single, single, records)
    if "big" in only:
        lines = args.big_mb * 1_000_000 // 115  # ~115 bytes a line
        big_root = OUT / f"fleet-big-{args.big_hosts}x{args.big_mb}mb"
        big = make_fleet(big_root, args.big_hosts, lines, 0)
        workloads["big"] = (f"{args.big_hosts} hosts' auth logs of ~{args.big_mb} MB", big, [big_root], 0)
    exe = [sys.executable, "-m", "analyzer", "analyze", "--year", "2025", "--format", "json", "-o", os.devnull]
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    cluster = LocalDask(2)
    try:
        print(
            f"{'workload':<8} {'command':<30}{'seconds':>9}{'lines/s':>12}{'records/s':>11}{'× base':>8}"
            f"{'peak MB':>9}{'client':>8}{'worker':>8}  cluster peaks MB (scheduler, workers)"
        )
        for key, (title, files, targets, n_records) in workloads.items():
            n_lines = lines_in(files)
            print(f"-- {key}: {title}: {n_lines:,} lines, {n_records:,} records, {len(files):,} files", flush=True)
            cmds = [
                ("regex + json.loads loop", [sys.executable, "-c", MIXED, "loads", *map(str, files)], None),
                ("analyze --jobs 2", [*exe, "--jobs", "2", *map(str, targets)], None),
                ("analyze --cluster (2 workers)", [*exe, "--cluster", cluster.address, *map(str, targets)], cluster),
            ]
            base = None
            for name, cmd, on in cmds:
                best, peak, peaks, (own, child) = measure(cmd, args.repeat, on)
                base = base or best
                extra = ", ".join(f"{p / 1e6:.0f}" for p in peaks) if peaks else ""
                print(
                    f"{key:<8} {name:<30}{best:>9.2f}{n_lines / best:>12,.0f}{n_records / best:>11,.0f}"
                    f"{best / base:>8.2f}{peak / 1e6:>9.0f}{own / 1e6:>8.0f}{child / 1e6:>8.0f}  {extra}",
                    flush=True,
                )
    finally:
        cluster.stop()
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
