"""`schedule run` and `serve` on a Dask cluster (a real ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, one cluster for the module): the same report as on local processes, the
report naming the engine, and an unreachable scheduler failing in seconds with one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.serve import Settings, create_app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cluster import Cluster, _free_port  # noqa: E402  (the cluster the engine's own tests start)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# several hosts (Linux and Windows), so that the analysis is split into shares, one task each
INPUTS = [
    SAMPLES / "linux-attacks" / "auth.log",
    SAMPLES / "linux-password-mismatch" / "auth.log",
    SAMPLES / "linux-brute-force" / "secure",
    SAMPLES / "windows-dc-probe",
    SAMPLES / "windows-member-mismatch",
]
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        yield running
    finally:
        running.stop()


def _config(where: Path, cluster: str | None = None, jobs: tuple[str, ...] = ("nightly",)) -> Path:
    """A configuration of ``jobs`` over :data:`INPUTS` (a window long enough for every sample)."""
    where.mkdir(parents=True, exist_ok=True)
    tables = [f'[cluster]\naddress = "{cluster}"\n'] if cluster is not None else []
    for name in jobs:
        tables.append(
            f'[[job]]\nname = "{name}"\ninputs = {json.dumps([str(p) for p in INPUTS])}\noutput = "out"\n'
            'formats = ["json", "text"]\nwindow_days = 366\n'
        )
    cfg = where / "authtriage.toml"
    cfg.write_text("\n".join(tables))
    return cfg


def _schedule_run(cfg: Path, *args: str) -> dict:
    res = runner.invoke(app, ["schedule", "run", "--config", str(cfg), "--jobs", "1", *args])
    assert res.exit_code == 0, res.output
    return json.loads((cfg.parent / "out" / "nightly" / "latest.json").read_text())


def _comparable(doc: dict) -> dict:
    """The report without what differs between two runs of the same inputs: the engine, when it ran."""
    doc = json.loads(json.dumps(doc))
    doc.pop("engine")
    doc["schedule"].pop("started")
    return doc


def test_schedule_run_same_report_on_cluster(cluster, tmp_path):
    cfg = _config(tmp_path)
    local = _schedule_run(cfg)
    shutil.rmtree(tmp_path / "out")  # its state too: the second run reads the same inputs afresh
    remote = _schedule_run(cfg, "--cluster", cluster.address)
    assert local["engine"]["name"] == "local"
    assert remote["engine"]["name"] == "dask" and remote["engine"]["workers"] == 2
    assert remote["engine"]["tasks"] >= 2  # the hosts' shares, each a task on the cluster
    assert len(remote["hosts"]) >= 4 and remote["findings"]
    assert json.dumps(_comparable(local), sort_keys=True) == json.dumps(_comparable(remote), sort_keys=True)
    text = (tmp_path / "out" / "nightly" / "latest.text").read_text()
    assert "run by the dask engine: 2 workers" in text
    # the configuration's [cluster] address; two jobs of one run share the connection, and each
    # job's report counts its own tasks (the same hosts: as many as the first run's)
    cfg = _config(tmp_path, cluster.address, jobs=("nightly", "twin"))
    again = _schedule_run(cfg)
    twin = json.loads((tmp_path / "out" / "twin" / "latest.json").read_text())
    assert again["schedule"]["run"] == 2 and twin["schedule"]["job"] == "twin"
    assert again["engine"] == twin["engine"] == remote["engine"]


def _one_line_exit_2(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> tuple[str, float]:
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", *cmd], capture_output=True, text=True, timeout=timeout, env=env
    )
    took = time.monotonic() - start
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0], took


def test_schedule_run_unreachable_scheduler_fails_fast_in_one_line(tmp_path):
    bad = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    cfg = _config(tmp_path, bad)
    line, took = _one_line_exit_2(["schedule", "run", "--config", str(cfg), "--jobs", "1"])
    assert line.startswith(f"authtriage: cannot reach the Dask scheduler at {bad}") and took < 20
    assert not (tmp_path / "out" / "nightly").exists()  # no job ran
    # the variable comes before the file; --cluster '' before both: local processes
    other = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "AUTHTRIAGE_CLUSTER": other}
    line, _ = _one_line_exit_2(["schedule", "run", "--config", str(cfg), "--jobs", "1"], env=env)
    assert other in line
    assert _schedule_run(cfg, "--cluster", "")["engine"]["name"] == "local"


def _wait(client: TestClient, id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/analyses/{id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"analysis {id} still {body['status']} after {timeout} s")


def _upload(client: TestClient, files: list[Path]) -> str:
    res = client.post(
        "/api/analyses",
        files=[("files", (f"{p.parent.name}-{p.name}", p.read_bytes(), "application/octet-stream")) for p in files],
        data={"tz": "UTC"},
    )
    assert res.status_code == 202, res.text
    return res.json()["id"]


def test_serve_analyzes_an_upload_on_the_cluster(cluster, tmp_path):
    files = [INPUTS[0], INPUTS[1], SAMPLES / "ticket-bundle" / "ticket.zip"]
    reports = {}
    for name, address in (("local", None), ("dask", cluster.address)):
        settings = Settings(data_dir=tmp_path / name, workers=1, cluster=address)
        with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
            body = _wait(client, _upload(client, files))
        assert body["status"] == "done", body
        reports[name] = body["report"]
    remote = reports["dask"]
    assert remote["engine"]["name"] == "dask" and remote["engine"]["tasks"] >= 2
    # named as uploaded (the workers read them from the data directory by absolute path)
    names = {i["name"] for i in remote["inputs"]}
    assert "linux-attacks-auth.log" in names and not any(str(tmp_path) in n for n in names)
    assert all(e["text"] for f in remote["findings"] for e in f["examples"])  # quoted lines read again
    a, b = dict(reports["local"]), dict(remote)
    for doc in (a, b):
        doc.pop("engine")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_serve_unreachable_scheduler_fails_the_upload_and_the_start_in_one_line(tmp_path):
    bad = f"tcp://127.0.0.1:{_free_port()}"
    settings = Settings(data_dir=tmp_path / "d", workers=1, cluster=bad)
    start = time.monotonic()
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        body = _wait(client, _upload(client, [INPUTS[0]]), timeout=60)
    assert time.monotonic() - start < 30
    assert body["status"] == "failed"
    assert body["error"].startswith(f"cannot reach the Dask scheduler at {bad}") and "\n" not in body["error"]
    # the server itself does not start on it
    port = str(_free_port())
    line, took = _one_line_exit_2(["serve", "--port", port, "--data-dir", str(tmp_path / "s"), "--cluster", bad])
    assert line.startswith(f"authtriage: cannot reach the Dask scheduler at {bad}") and took < 20
    # nor on the [cluster] address of its configuration
    cfg = _config(tmp_path / "cfg", bad, jobs=())
    line, _ = _one_line_exit_2(["serve", "--port", port, "--data-dir", str(tmp_path / "s"), "--config", str(cfg)])
    assert line.startswith(f"authtriage: cannot reach the Dask scheduler at {bad}")


def test_a_thread_the_memory_limit_refuses_counts_as_memory():
    """The Dask client maps more than a local analysis (its threads, ~85 MiB): near the limit, the
    first thing refused may be a thread of Arrow's pool, which the upload's error must call memory."""
    from analyzer.serve.child import looks_like_memory

    error = "internal error: ArrowException: Unknown error: Failed to launch worker thread: Resource temporarily unavailable"
    assert looks_like_memory(error)
    assert not looks_like_memory("nothing readable in the upload — worker thread.log: unknown format")


def test_schedule_run_losing_the_cluster_mid_run_stops_with_the_failure_recorded(tmp_path, monkeypatch):
    """The only worker killed while the first job reads: its events cannot be sent to the cluster,
    that job fails with the engine's one line (in the history too), and the next job is not
    tried against a cluster without workers."""
    import analyzer.engine as engine
    from analyzer.engine import EngineError
    from analyzer.schedule import State, load_schedule, run_jobs

    monkeypatch.setattr(engine, "NO_WORKERS_SECONDS", 2.0)
    fleet = Cluster(tmp_path, workers=1)
    try:
        victim = fleet.workers[0]

        def progress(_rep) -> None:
            if victim.poll() is None:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()

        sched = load_schedule(_config(tmp_path, jobs=("first", "second")))
        start = time.monotonic()
        with pytest.raises(EngineError, match="no worker"):
            run_jobs(sched, progress=progress, jobs=1, cluster=fleet.address)
        assert time.monotonic() - start < 30
    finally:
        fleet.stop()
    state = State(sched.state)
    try:
        runs = state.runs()
    finally:
        state.close()
    assert [(r["job"], r["status"]) for r in runs] == [("first", "failed")]
    assert "no worker" in runs[0]["error"]
