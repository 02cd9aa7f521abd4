"""Shared fixtures. Tests that need ../shared/data or Chromium fail in CI when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def _missing(msg: str) -> None:
    """Something a test needs is not here: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data: a failure in CI if absent, a skip elsewhere."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        _missing(f"{path} is missing (the shared test data sits beside the repository as ../shared/data)")
    return path


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture
def chromium() -> str:
    """Chromium's path: a failure in CI if absent, a skip elsewhere."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("no Chromium found (Debian package 'chromium'; .ci/run installs it)")
    return path
