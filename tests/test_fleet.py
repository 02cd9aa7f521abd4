"""Many small inputs (a collector's tree ``<root>/<host>/…``): read in batches, one task and
one frame per batch, with the same events and reports as one at a time; a log that names no
host takes its folder's name when the folders beside it are named after their hosts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from analyzer.engine import LocalEngine
from analyzer.ingest import IngestOptions, read_events, runner
from analyzer.ingest.sources import Limits

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SECURE = SAMPLES / "linux-brute-force" / "secure"  # names the host "bastion"
PFIREWALL = SAMPLES / "windows-firewall-blocked-pfirewall" / "pfirewall.log"


def _collector(root: Path, hosts: int, firewall: str | None = None) -> Path:
    text = SECURE.read_text()
    for i in range(hosts):
        name = f"vm{i:03d}"
        (root / name).mkdir(parents=True)
        (root / name / "secure").write_text(text.replace(" bastion ", f" {name} "))
    if firewall:
        (root / firewall).mkdir(parents=True, exist_ok=True)
        shutil.copy(PFIREWALL, root / firewall / "pfirewall.log")
    return root


def _reports(res) -> list[dict]:
    return [r.as_dict() for r in res.inputs]


def test_small_files_go_in_batches_with_the_same_result(tmp_path):
    root = _collector(tmp_path / "logs", 150)
    opts = IngestOptions(year=2025, jobs=1)
    one = read_events([str(root)], opts)
    engine = LocalEngine(2)
    two = read_events([str(root)], IngestOptions(year=2025, jobs=2), engine=engine)
    assert engine.tasks == 3  # 64 + 64 + 22 files, not 150 tasks
    assert _reports(one) == _reports(two)
    pd.testing.assert_frame_equal(one.events, two.events)
    assert one.events["host"].nunique() == 150


def test_the_events_limit_cuts_inside_a_batch_as_it_does_one_file_at_a_time(tmp_path):
    root = _collector(tmp_path / "logs", 20)
    per_file = len(read_events([str(root / "vm000")], IngestOptions(year=2025, jobs=1)).events)
    limits = Limits(max_events=per_file * 5 + 3)  # the sixth file is cut, those after it dropped
    one = read_events([str(root)], IngestOptions(year=2025, jobs=1, limits=limits))
    two = read_events([str(root)], IngestOptions(year=2025, jobs=2, limits=limits))
    assert len(two.events) == per_file * 5 + 3
    # the same file is cut; the files read ahead in the batch after it say that none of their
    # events were kept (as files read ahead by workers one at a time do)
    assert [r.name for r in one.inputs if r.error][0] == [r.name for r in two.inputs if r.error][0]
    assert "more than" in [r.error for r in two.inputs if r.error][0]
    after = two.inputs[6:]
    assert after and all(r.events == 0 and r.error for r in after)
    pd.testing.assert_frame_equal(one.events, two.events)


def test_a_batch_whose_worker_dies_names_each_of_its_files(tmp_path, monkeypatch):
    root = _collector(tmp_path / "logs", 3)

    def boom(*_args, **_kwargs):
        raise RuntimeError("reader fault\nsecond line")

    monkeypatch.setattr(runner, "_read_file", boom)  # in the forked workers too: the batch's task fails
    monkeypatch.setattr(runner.textlog, "read_syslog_batch", boom)  # (its text logs are read as one block)
    res = read_events([str(root)], IngestOptions(year=2025, jobs=2))
    assert [r.name.rsplit("/", 2)[-2] for r in res.inputs] == ["vm000", "vm001", "vm002"]
    assert all(r.error and "\n" not in r.error and "reader fault second line" in r.error for r in res.inputs)


def test_a_collector_tree_names_a_firewall_log_after_its_folder(tmp_path):
    root = _collector(tmp_path / "logs", 3, firewall="vm777")
    res = read_events([str(root)], IngestOptions(year=2025, jobs=1))
    fw = next(r for r in res.inputs if r.format == "pfirewall")
    assert fw.events > 0
    assert fw.assumptions["host"].startswith("vm777 for pfirewall.log, which names none: the name of its folder")
    rows = res.events["source"] == fw.name
    assert set(res.events.loc[rows, "host"].astype(str)) == {"vm777"}


def test_folders_not_named_after_their_hosts_leave_the_firewall_log_without_one(tmp_path):
    root = tmp_path / "logs"
    for folder, host in (("a", "vm1"), ("b", "vm2")):
        (root / folder).mkdir(parents=True)
        (root / folder / "secure").write_text(SECURE.read_text().replace(" bastion ", f" {host} "))
    (root / "c").mkdir()
    shutil.copy(PFIREWALL, root / "c" / "pfirewall.log")
    res = read_events([str(root)], IngestOptions(year=2025, jobs=1))
    fw = next(r for r in res.inputs if r.format == "pfirewall")
    assert "host" not in fw.assumptions
    assert res.events.loc[res.events["source"] == fw.name, "host"].isna().all()


def test_a_log_beside_the_firewall_log_still_names_its_host(tmp_path):
    root = _collector(tmp_path / "logs", 2, firewall="vm001")  # vm001's own secure names vm001
    res = read_events([str(root)], IngestOptions(year=2025, jobs=1))
    fw = next(r for r in res.inputs if r.format == "pfirewall")
    assert "the one host of the other logs" in fw.assumptions["host"]
