"""The engine seam: the same inputs on local processes and on a real Dask cluster (a
``dask scheduler`` and ``dask worker`` processes over TCP on 127.0.0.1, started here) give
the same JSON report; a worker killed mid-run changes nothing; a wrong address, a cluster
without workers and workers running other code each fail in seconds with one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analyzer import IngestOptions, TriageOptions, triage
from analyzer.config import load_profile
from analyzer.engine import EngineError, cluster_address

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and its workers, each a process of its own (no nanny: a killed worker stays dead)."""

    def __init__(self, where: Path, workers: int) -> None:
        self.where = where
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        try:
            self._start(
                [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"], "scheduler"
            )
            for _ in range(workers):
                self.add_worker()
            self.wait_for(workers)
        except BaseException:  # no process left behind by a cluster that did not come up
            self.stop()
            raise

    def _start(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.where / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115  (the process keeps it)
        # workers run elsewhere than the client: the inputs reach them as absolute paths
        proc = subprocess.Popen(cmd, cwd=self.where, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def add_worker(self) -> subprocess.Popen:
        cmd = [str(DASK), "worker", self.address, "--no-nanny", "--nthreads", "1", "--no-dashboard"]
        proc = self._start([*cmd, "--memory-limit", "0", "--death-timeout", "60"], "worker")
        self.workers.append(proc)
        return proc

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=20, set_as_default=False)

    def wait_for(self, n: int) -> None:
        with self.client() as client:  # the connection waits for the scheduler to listen
            if n:
                client.wait_for_workers(n, timeout=60)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        yield running
    finally:
        running.stop()


def _report(inputs: list[Path], cluster: str | None = None, jobs: int = 1) -> dict:
    opts = TriageOptions(ingest=IngestOptions(lazy_raw=True, jobs=jobs), cluster=cluster)
    return triage([str(p) for p in inputs], options=opts).data


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    a.pop("engine"), b.pop("engine")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


SAMPLE_DIRS = sorted(p for p in SAMPLES.iterdir() if p.is_dir())


@pytest.mark.parametrize("sample", SAMPLE_DIRS, ids=[p.name for p in SAMPLE_DIRS])
def test_samples_same_report_on_cluster(cluster, sample):
    local = _report([sample])
    remote = _report([sample], cluster.address)
    _same(local, remote)
    assert local["engine"]["name"] == "local"
    assert remote["engine"] == {"name": "dask", "workers": 2, "tasks": remote["engine"]["tasks"]}
    assert remote["engine"]["tasks"] >= 2  # the reads (small files in one batch) and the analysis


def test_shared_data_same_report_on_cluster(cluster, shared):
    data = shared()
    local = _report([data], jobs=2)
    remote = _report([data], cluster.address)
    _same(local, remote)
    assert remote["totals"]["events"] > 10_000
    # reads (small files in batches of up to 64: fewer tasks than inputs), then shares of the hosts
    assert len(local["inputs"]) // 64 < remote["engine"]["tasks"] < len(local["inputs"])


def test_cli_cluster_option_and_footer(cluster, tmp_path):
    out = tmp_path / "report.md"
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", str(SAMPLES / "ticket-bundle"), "--cluster", cluster.address]
        + ["-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Run by the dask engine: 2 workers," in out.read_text()


def test_worker_killed_mid_run_same_report(tmp_path):
    """A worker killed (SIGKILL) while it holds tasks: Dask runs them on the other worker."""
    inputs = [p for d in SAMPLE_DIRS for p in sorted(d.iterdir()) if p.name != "expected.json"]
    local = _report(inputs)
    fleet = Cluster(tmp_path, workers=2)
    killed = threading.Event()
    try:
        victim = fleet.workers[0]
        with fleet.client() as watcher:
            victim_addr = next(a for a, pid in watcher.run(os.getpid).items() if pid == victim.pid)

            def progress(_rep) -> None:  # after the first input taken: kill the victim once it holds a task
                if killed.is_set():
                    return
                deadline = time.monotonic() + 10
                while not watcher.processing().get(victim_addr) and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.kill(victim.pid, signal.SIGKILL)
                killed.set()

            opts = TriageOptions(ingest=IngestOptions(lazy_raw=True, jobs=1), cluster=fleet.address, progress=progress)
            remote = triage([str(p) for p in inputs], options=opts).data
        assert killed.is_set()
        assert victim.wait(timeout=10) == -signal.SIGKILL
        _same(local, remote)
        assert not any(i.get("error") for i in remote["inputs"])
    finally:
        fleet.stop()


def test_wrong_address_fails_fast_in_one_line(tmp_path):
    port = _free_port()  # nothing listens there
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", str(SAMPLES / "ticket-bundle"), "--format", "json"]
        + ["--cluster", f"tcp://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - start
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"authtriage: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert took < 20


def test_env_names_the_cluster_and_fails_fast(tmp_path):
    env = {**os.environ, "AUTHTRIAGE_CLUSTER": f"tcp://127.0.0.1:{_free_port()}"}
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", str(SAMPLES / "ticket-bundle"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 2 and "cannot reach the Dask scheduler" in run.stderr


def test_workers_running_other_code_refused(cluster, monkeypatch):
    import analyzer.engine as engine

    monkeypatch.setattr(engine, "fingerprint", lambda: "0123456789ab")  # this client's code differs
    with pytest.raises(EngineError, match=r"runs authtriage .* this client authtriage .*0123456789ab"):
        _report([SAMPLES / "ticket-bundle"], cluster.address)


def test_scheduler_without_workers_fails_in_seconds(tmp_path):
    fleet = Cluster(tmp_path, workers=0)
    try:
        start = time.monotonic()
        with pytest.raises(EngineError, match="has no workers"):
            _report([SAMPLES / "ticket-bundle"], fleet.address)
        assert time.monotonic() - start < 20
    finally:
        fleet.stop()


def test_cluster_address_precedence(tmp_path, monkeypatch):
    config = tmp_path / "authtriage.toml"
    config.write_text('[cluster]\naddress = "tcp://from-config:8786"\n')
    profile = load_profile(config)
    assert profile.cluster == "tcp://from-config:8786"
    monkeypatch.delenv("AUTHTRIAGE_CLUSTER", raising=False)
    assert cluster_address(None, profile.cluster) == "tcp://from-config:8786"
    monkeypatch.setenv("AUTHTRIAGE_CLUSTER", "tcp://from-env:8786")
    assert cluster_address(None, profile.cluster) == "tcp://from-env:8786"
    assert cluster_address("tcp://flag:8786", profile.cluster) == "tcp://flag:8786"
    assert cluster_address("", profile.cluster) is None  # an empty flag: the local engine


def test_cluster_table_rejects_unknown_keys(tmp_path):
    from analyzer.errors import UsageError

    config = tmp_path / "authtriage.toml"
    config.write_text('[cluster]\naddress = "tcp://x:8786"\nworkers = 4\n')
    with pytest.raises(UsageError, match=r"\[cluster\] takes only address"):
        load_profile(config)


def test_losing_every_worker_mid_run_fails_in_one_line(tmp_path, monkeypatch):
    """The only worker killed while the read waits on it: no hang; the run stops once the
    cluster has had no worker for NO_WORKERS_SECONDS."""
    import analyzer.engine as engine

    monkeypatch.setattr(engine, "NO_WORKERS_SECONDS", 3.0)
    inputs = [p for d in SAMPLE_DIRS for p in sorted(d.iterdir()) if p.name != "expected.json"]
    fleet = Cluster(tmp_path, workers=1)
    try:
        victim = fleet.workers[0]

        def progress(_rep) -> None:
            if victim.poll() is None:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()

        opts = TriageOptions(ingest=IngestOptions(lazy_raw=True, jobs=1), cluster=fleet.address, progress=progress)
        start = time.monotonic()
        with pytest.raises(EngineError, match="has had no worker for 3 s"):
            triage([str(p) for p in inputs], options=opts)
        assert time.monotonic() - start < 30
    finally:
        fleet.stop()


def test_spilled_events_analyzed_on_the_cluster_give_the_same_report(cluster, shared, monkeypatch):
    """Workers that see the store's files (a cluster on this machine) read their shares
    there; to workers that do not, each share is sent: the same report either way."""
    import analyzer.shares as shares_mod
    from analyzer.engine import DaskEngine
    from analyzer.ingest.store import Share

    monkeypatch.setattr(shares_mod, "SHARE_EVENTS", 2_000)
    data = shared()
    local = _report([SAMPLES, data])
    opts = TriageOptions(ingest=IngestOptions(lazy_raw=True), cluster=cluster.address, spill_bytes=0)
    sent: list[str] = []
    real = DaskEngine.submit

    def spy(self, fn, *args):
        if fn is shares_mod.analyze_share:
            sent.append(type(args[0]).__name__)
        return real(self, fn, *args)

    monkeypatch.setattr(DaskEngine, "submit", spy)
    remote = triage([str(SAMPLES), str(data)], options=opts).data
    _same(local, remote)
    assert remote["engine"]["name"] == "dask" and remote["engine"]["tasks"] > 10
    assert len(sent) > 3 and set(sent) == {Share.__name__}
    # the workers quote the plain files' lines themselves: the client quoting nothing, those have their text
    import analyzer.evidence as evidence

    monkeypatch.setattr(evidence, "fill_examples", lambda *a, **k: 0)
    quoted = triage([str(SAMPLES), str(data)], options=opts).data
    plain = [e for f in quoted["findings"] for e in f["examples"] if "!" not in e["where"]]
    assert len(plain) > 20 and all(e["text"] for e in plain)
    monkeypatch.undo()
    monkeypatch.setattr(shares_mod, "SHARE_EVENTS", 2_000)
    monkeypatch.setattr(DaskEngine, "submit", spy)
    sent.clear()
    monkeypatch.setattr(DaskEngine, "sees", lambda self, path: False)
    _same(local, triage([str(SAMPLES), str(data)], options=opts).data)
    assert len(sent) > 3 and set(sent) == {"DataFrame"}
