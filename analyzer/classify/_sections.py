"""One top-level block of a YAML mapping, found by its key at the start of a line: read
alone, or left out, the other lines blank so that line numbers stay the file's. For data
where a part is needed often and the rest rarely (a rule's examples, the domain-controller
signs in the large Windows event table)."""

from __future__ import annotations

__all__ = ["only", "without"]


def _span(lines: list[str], key: str) -> tuple[int, int] | None:
    """The block ``key:`` as (first line, line after it); None without one."""
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return None
    end = next((j for j in range(start + 1, len(lines)) if lines[j][:1] not in ("", " ", "\t", "#", "\n", "\r")), None)
    return start, len(lines) if end is None else end


def only(text: str, key: str) -> str | None:
    """The block ``key:`` alone (None when there is none)."""
    lines = text.splitlines(keepends=True)
    span = _span(lines, key)
    return None if span is None else "\n" * span[0] + "".join(lines[span[0] : span[1]])


def without(text: str, key: str) -> str:
    """``text`` with the block ``key:`` blanked out."""
    lines = text.splitlines(keepends=True)
    span = _span(lines, key)
    if span is None:
        return text
    return "".join(lines[: span[0]]) + "\n" * (span[1] - span[0]) + "".join(lines[span[1] :])
