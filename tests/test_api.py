"""The Python API: ``analyzer.triage`` is the one front door — the command line, the upload
worker and the scheduled runs all go through it, and it gives what ``authtriage analyze``
gives. What ``analyzer`` exports is ``__all__``, all of it importable, nothing private."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import analyzer
from analyzer import pipeline
from analyzer.cli import app
from analyzer.samples_windows import T0

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = "samples/ticket-bundle"
runner = CliRunner()


def _cli(*args: str) -> str:
    res = runner.invoke(app, ["analyze", *args])
    assert res.exit_code == 0, res.output
    return res.stdout


def _spy(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper that records each call's report; the list of them."""
    reports: list = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        reports.append(real(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(module, name, spy)
    return reports


@pytest.fixture(scope="module")
def bundle():
    return analyzer.triage([BUNDLE])


def test_triage_gives_what_the_command_line_gives(bundle, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli_json = _cli(BUNDLE, "--format", "json")
    assert bundle.render("json") == cli_json
    assert bundle.data == json.loads(cli_json)
    assert bundle.data["findings"] and all(h["headline"] and h["verdict"] for h in bundle.data["hosts"])
    for fmt in ("html", "md", "text"):
        assert bundle.render(fmt) == _cli(BUNDLE, "--format", fmt), fmt


def test_inputs_options_and_rules_as_the_command_line_takes_them(monkeypatch):
    """One path alone, an IngestOptions instead of TriageOptions (the lines kept, not read
    again), a directory of rules, a profile."""
    monkeypatch.chdir(ROOT)
    log = "samples/linux-password-mismatch/auth.log"
    net = "198.51.100.0/24"
    report = analyzer.triage(
        Path(log),
        profile=analyzer.Profile().with_overrides([net]),
        rules=["rules"],
        options=analyzer.IngestOptions(jobs=1, year=2025),
    )
    assert report.render("json") == _cli(
        log, "--platform-net", net, "--rules", "rules", "--year", "2025", "--jobs", "1"
    )
    assert report.data["platform"]["networks"] == [net]


def test_exit_code_is_the_command_lines(bundle, monkeypatch):
    monkeypatch.chdir(ROOT)
    verdicts = {f["verdict"] for f in bundle.data["findings"]}
    assert "expected" in verdicts and verdicts - {"expected"}  # the bundle has both kinds
    for fail_on in ("attack", "misconfiguration", "any"):
        code = runner.invoke(app, ["analyze", BUNDLE, "--format", "json", "--fail-on", fail_on]).exit_code
        assert bundle.exit_code(fail_on) == code, fail_on
    assert bundle.exit_code(None) == 0
    assert bundle.exit_code("any") == 1
    with pytest.raises(ValueError, match="unknown verdict"):
        bundle.exit_code("attacks")
    with pytest.raises(ValueError, match="unknown format"):
        bundle.render("pdf")


def test_nothing_readable_is_an_error_naming_each_input(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01 not a log")
    with pytest.raises(analyzer.NothingReadable) as caught:
        analyzer.triage([str(tmp_path / "missing.log"), str(tmp_path / "notes.bin")])
    assert isinstance(caught.value, analyzer.AuthtriageError)
    reasons = {Path(r.name).name: r.error or r.skip_reason for r in caught.value.inputs}
    assert set(reasons) == {"missing.log", "notes.bin"} and all(reasons.values())


# ---------------------------------------------------------------------------------
# the three front doors call it


def test_cli_analyze_calls_triage(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    reports = _spy(monkeypatch, pipeline, "triage")
    out = tmp_path / "report.md"
    _cli(BUNDLE, "-o", str(out))
    (report,) = reports
    assert out.read_text(encoding="utf-8") == report.render("md")


def test_upload_worker_calls_triage(monkeypatch, tmp_path):
    """The worker reads the upload where it lies, its inputs named as uploaded: its report is
    the command line's run in that directory."""
    from analyzer.serve import worker

    upload, out = tmp_path / "upload", tmp_path / "out"
    shutil.copytree(ROOT / BUNDLE, upload)
    out.mkdir()
    reports = _spy(monkeypatch, worker, "triage")
    summary = worker.analyze_upload(str(upload), str(out), [], None, {})
    (report,) = reports
    for fmt in worker.REPORT_FORMATS:
        assert (out / f"report.{fmt}").read_text(encoding="utf-8") == report.render(fmt)
    assert summary["findings"] == len(report.data["findings"])
    monkeypatch.chdir(upload)
    monkeypatch.delenv("AUTHTRIAGE_CONFIG", raising=False)
    names = sorted(p.name for p in upload.iterdir())
    assert report.render("json") == _cli(*names, "--format", "json", "--jobs", "1")
    examples = [e for f in report.data["findings"] for e in f["examples"]]
    assert examples and all(e["text"] for e in examples)  # the quoted lines, read again in the upload


def test_scheduled_run_calls_triage_events(monkeypatch, tmp_path):
    """A scheduled run's findings are the command line's over the same log."""
    from analyzer.schedule import load_schedule, run_jobs
    from analyzer.schedule import runner as sched_runner

    log = tmp_path / "auth.log"
    shutil.copy(ROOT / "samples" / "linux-password-mismatch" / "auth.log", log)
    old = T0.timestamp() + 3 * 86400  # no longer written to (its last lines are not held back); its year
    os.utime(log, (old, old))
    cfg = tmp_path / "authtriage.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [[job]]
            name = "nightly"
            inputs = [{json.dumps(str(log))}]
            output = {json.dumps(str(tmp_path / "out"))}
            formats = ["json", "md"]
            """
        )
    )
    reports = _spy(monkeypatch, sched_runner, "triage_events")
    (outcome,) = run_jobs(load_schedule(cfg), jobs=1)
    assert outcome.ok, outcome.error
    (report,) = reports
    folder = tmp_path / "out" / "nightly"
    for fmt in ("json", "md"):
        assert (folder / f"latest.{fmt}").read_text(encoding="utf-8") == report.render(fmt)
    assert report.classification is not None and len(report.classification.cause) == report.data["totals"]["events"]
    scheduled = json.loads((folder / "latest.json").read_text(encoding="utf-8"))
    direct = json.loads(_cli(str(log), "--format", "json", "--jobs", "1"))
    assert scheduled["schedule"]["job"] == "nightly"
    assert scheduled["findings"] and scheduled["findings"] == direct["findings"]
    assert scheduled["hosts"] == direct["hosts"] and scheduled["timeline"] == direct["timeline"]


# ---------------------------------------------------------------------------------
# what `analyzer` exports (as httpx tests its own)


def test_every_public_name_is_in_all_and_nothing_private():
    public = {
        name
        for name, value in vars(analyzer).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(analyzer.__all__)
    assert [name for name in analyzer.__all__ if name.startswith("_")] == ["__version__"]
    assert len(set(analyzer.__all__)) == len(analyzer.__all__)
    assert set(analyzer.__all__) <= set(dir(analyzer))
    with pytest.raises(AttributeError):
        analyzer.summarize  # noqa: B018 - a module of the package is not an export of it


@pytest.mark.parametrize("name", analyzer.__all__)
def test_all_imports(name):
    namespace: dict = {}
    exec(f"from analyzer import {name}", namespace)
    assert namespace[name] is getattr(analyzer, name)
    if name != "__version__":
        assert namespace[name].__module__.startswith("analyzer.") and not namespace[name].__name__.startswith("_")


def test_import_analyzer_stays_cheap():
    """The command line starts with ``import analyzer``: the exports load on first use."""
    code = (
        "import sys, analyzer\n"
        "heavy = [m for m in ('pandas', 'numpy', 'jinja2', 'analyzer.pipeline', 'analyzer.ingest') if m in sys.modules]\n"
        "print(heavy)\n"
        "analyzer.triage\n"
        "print('analyzer.pipeline' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
