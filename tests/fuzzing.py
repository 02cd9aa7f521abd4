"""What the fuzz tests share: their Hypothesis settings, the properties every read must
keep, and the crash corpus.

``make test`` runs each property a fixed number of times from a fixed seed (a bounded time);
``make fuzz-text`` sets ``HYPOTHESIS_PROFILE=fuzz``: many more examples, a random seed, and
the input of any failure kept under ``tests/files/crashes/<kind>/`` (named by its hash),
where a test of the suite reads every file again from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis.control import current_build_context

from analyzer.ingest import IngestOptions, IngestResult, read_events

CRASHES = Path(__file__).resolve().parent / "files" / "crashes"
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
FUZZ_FACTOR = int(os.environ.get("FUZZ_FACTOR", "100"))  # examples in a campaign, per example of the suite


def fuzz_settings(examples: int) -> settings:
    """``examples`` runs from a fixed seed in the suite; FUZZ_FACTOR times as many, seeded at
    random, in a campaign. Never a deadline (a slow shared machine is no failure) and no
    example database (nothing written beside the tests)."""
    return settings(
        max_examples=examples * FUZZ_FACTOR if FUZZ else examples,
        derandomize=not FUZZ,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


@contextlib.contextmanager
def kept_if_it_fails(kind: str, data: bytes, suffix: str = "") -> Iterator[None]:
    """In a campaign, the input of the (shrunk) failing example is written to the crash
    corpus, where the suite replays it."""
    try:
        yield
    except BaseException:
        if FUZZ and current_build_context().is_final:
            folder = CRASHES / kind
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}").write_bytes(data)
        raise


def crash_files(kind: str) -> list[Path]:
    """The kept inputs of one kind (each a regression case)."""
    folder = CRASHES / kind
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


# formats whose every line is counted: used, irrelevant or unparsed
LINE_FORMATS = {"syslog", "pfirewall"}


def read_checked(path: Path, jobs: int = 1) -> IngestResult:
    """Read ``path`` and check what every read must keep, whatever the bytes: no fault escapes
    or is left to the "authtriage bug" net, every line of a text log is accounted for, and
    every event points to a line or record that was read."""
    res = read_events([str(path)], IngestOptions(year=2025, jobs=jobs))
    for rep in res.inputs:
        assert not (rep.error and "authtriage bug" in rep.error), (rep.name, rep.error)
        assert rep.events >= 0 and rep.used >= 0 and rep.irrelevant >= 0 and rep.unparsed >= 0, rep
        if rep.format in LINE_FORMATS and not rep.skipped:
            assert rep.used + rep.irrelevant + rep.unparsed == rep.lines, rep
    assert len(res.events) == sum(r.events for r in res.inputs)
    if len(res.events):
        by_source = res.events.groupby("source", observed=True)["locator"]
        most: dict[str, int] = {}  # (an archive may hold two members of one name)
        for rep in res.inputs:
            if rep.format in LINE_FORMATS and rep.events:
                most[rep.name] = max(most.get(rep.name, 0), rep.lines)
        for name, lines in most.items():
            loc = by_source.get_group(name).to_numpy(dtype=np.float64, na_value=np.nan)
            assert not np.isnan(loc).any() and (loc >= 1).all() and (loc <= lines).all(), name
    return res
