"""Where the shipped data lives: ``rules/`` and ``reports/templates/``.

In a wheel they are copied inside the package (``analyzer/rules``,
``analyzer/reports/templates``); in a source checkout they stay at the top level.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["rules_dir", "templates_dir"]

_PKG = Path(__file__).resolve().parent


def _find(*parts: str) -> Path:
    for base in (_PKG, _PKG.parent):
        candidate = base.joinpath(*parts)
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{'/'.join(parts)} not found beside {_PKG}")


def rules_dir() -> Path:
    return _find("rules")


def templates_dir() -> Path:
    return _find("reports", "templates")
