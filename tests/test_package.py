"""The wheel carries rules/, reports/templates/ and the data files, and finds them when
installed (not editable) and run from another directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_data_and_finds_it(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("authtriage-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "analyzer/rules/README.md" in names
    assert "analyzer/reports/templates/README.md" in names
    assert "analyzer/data/linux_messages.yaml" in names
    assert "analyzer/serve/templates/index.html.j2" in names and "analyzer/serve/static/app.js" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(code: str) -> str:  # in another directory, with only the unpacked wheel importable
        env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, check=True, env=env
        ).stdout

    out = run(
        "import analyzer, analyzer.resources as r; from analyzer.ingest.catalog import load_catalog;"
        "print(analyzer.__file__); print(r.rules_dir()); print(r.templates_dir()); print(len(load_catalog().patterns))"
    ).splitlines()
    assert out[0].startswith(str(site))
    assert out[1] == str(site / "analyzer" / "rules")
    assert out[2] == str(site / "analyzer" / "reports" / "templates")
    assert int(out[3]) > 50
    # the console script's entry point, called as the installed `authtriage` script calls it
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    script = next(
        line.split("=", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(entry).decode().splitlines()
        if line.startswith("authtriage")
    )
    module, function = script.split(":")
    version = run(f"import sys; from {module} import {function}; sys.argv = ['authtriage', '--version']; {function}()")
    assert version.startswith("authtriage ")


def _hugepage_advice(env: dict[str, str]) -> str:
    code = "import analyzer, numpy; print(numpy._core.multiarray._get_madvise_hugepage())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_numpy_hugepage_advice_off_unless_asked():
    """Importing the analyzer turns off numpy's MADV_HUGEPAGE (it stalls first touches of
    big arrays where THP defrag is `madvise`); a user's own setting is kept."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    assert _hugepage_advice(env) == "False"
    if sys.platform.startswith("linux"):  # numpy only advises on Linux
        assert _hugepage_advice({**env, "NUMPY_MADVISE_HUGEPAGE": "1"}) == "True"


def test_analyze_imports_nothing_it_does_not_use():
    """A run of ``analyze`` does not import the upload server's stack (fastapi, pydantic):
    typer 0.29 imports pydantic to coerce every option, ~60 ms of every command's start
    (pyproject keeps typer below it)."""
    sample = ROOT / "samples" / "linux-attacks"
    code = (
        "import sys; from analyzer.cli import main; sys.argv = ['authtriage', 'analyze', '--format', 'json',"
        f" '-o', '-', {str(sample)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('pydantic', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert '"findings"' in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "[]"
