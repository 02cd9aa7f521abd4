"""Reports: one document (the JSON), rendered to HTML, Markdown or text with Jinja.

The document comes complete from the analysis (:mod:`analyzer.summary`: verdicts, headlines,
the timeline, each finding's explanation as plain text); this module only renders it. Every
format shows its text with its own escaping: HTML by Jinja's autoescape, Markdown and
text by the filters below. Strings from logs are hostile; nothing in a report executes,
breaks a table or moves a terminal's cursor.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
import pandas as pd

from ._jinja import Environment
from .prose import PLAIN, host_name, plural, some
from .resources import templates_dir

__all__ = ["FORMATS", "render", "format_for", "md_escape", "text_escape"]

# findings shown in full by the formats meant for reading in a terminal or a ticket
FINDINGS_SHOWN = {"text": 20, "md": 30}
FORMATS = ("json", "html", "md", "text")
_EXT = {".json": "json", ".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".txt": "text"}
# control characters (ANSI escapes), and the marks that reorder text in a line (a user name
# with U+202E shows its letters backwards: "Trojan Source"): shown as escapes, never acted on
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# what makes markup anywhere in a line (brackets suffice against links and images: "(" and "!"
# mean nothing without them), and what does at a line's start (a heading, a list item, a quote)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))")
_MD_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)://|\b(www)\.")  # what GitHub's Markdown links by itself


def format_for(path: str | None, explicit: str | None, terminal: bool) -> str:
    """--format wins; else the output file's extension; else text on a terminal, JSON otherwise."""
    if explicit:
        return explicit
    if path:
        return _EXT.get(Path(path).suffix.lower(), "json")
    return "text" if terminal else "json"


def _show_control(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text)


def md_escape(value: Any) -> str:
    """Markdown-safe (tables included): markup escaped, no newlines, no control bytes."""
    if value is None:
        return ""
    text = _MD_SPECIAL.sub(r"\\\1", _show_control(str(value).replace("\r", " ").replace("\n", " ")))
    text = _MD_AUTOLINK.sub(lambda m: f"{m[1]}:\\/\\/" if m[1] else f"{m[2]}\\.", text)
    return _MD_LINE_START.sub(_line_start, text)  # a value may begin a line: "- x", "# x", "1. x"


def _line_start(m: re.Match) -> str:
    mark = m[2]
    return m[1] + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


def text_escape(value: Any) -> str:
    """Terminal-safe: control characters (ANSI escapes) shown, not interpreted."""
    return "" if value is None else _show_control(str(value))


@cache
def _env() -> jinja2.Environment:
    env = Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat per lookup
    )
    env.filters["md"] = md_escape
    env.filters["tx"] = text_escape
    env.filters["plain"] = lambda r: PLAIN.get(str(r), str(r).replace("-", " "))
    env.filters["some"] = some
    env.filters["host"] = host_name
    env.filters["plural"] = plural
    env.globals["window_text"] = window_text
    env.globals["attempts_text"] = attempts_text
    return env


def attempts_text(f: dict[str, Any]) -> str:
    """"1 attempt (0 failed), T" or "N attempts (M failed), T1 – T2": a finding's size and span."""
    first, last = f.get("first_seen"), f.get("last_seen")
    span = first if first == last else f"{first or '?'} – {last or '?'}"
    count = f"{f['count']:,} attempt{'' if f['count'] == 1 else 's'} ({f['failures']:,} failed)"
    return f"{count}, {span}" if span else count


def window_text(doc: dict[str, Any]) -> str:
    """The --since/--until window for people, with what it left out ("" without one, and for
    a scheduled report, which states its own window)."""
    w = doc.get("window") or {}
    since, until = w.get("since"), w.get("until")
    if (since is None and until is None) or "schedule" in doc:
        return ""

    def when(iso: str) -> str:  # to the second, as a relative --since gives microseconds
        return pd.Timestamp(iso).tz_convert("UTC").floor("s").isoformat().replace("+00:00", "Z")

    bounds = " and ".join(
        b for b in (f"at or after {when(since)}" if since else "", f"before {when(until)}" if until else "") if b
    )
    left = int(w.get("left_out") or 0)
    if not left:
        return f"Only events {bounds}: every event read is inside this window."
    span = f" (the events read run from {w['read_first']} to {w['read_last']})" if w.get("read_first") else ""
    return f"Only events {bounds}: {left:,} event(s) read lie outside this window and are left out{span}."


def _svg_bars(series: dict[str, list[int]], width: int = 640, height: int = 120) -> dict[str, Any]:
    """Stacked bars per bucket, one colour per cause: numbers for the SVG template."""
    causes = sorted(series)
    n = len(next(iter(series.values()))) if series else 0
    totals = [sum(series[c][i] for c in causes) for i in range(n)]
    peak = max(totals or [1]) or 1
    bar_w = width / max(n, 1)
    rects = []
    for i in range(n):
        y = height
        for ci, cause in enumerate(causes):
            v = series[cause][i]
            if not v:
                continue
            h = max(1.0, height * v / peak)
            y -= h
            rects.append(
                {
                    "x": round(i * bar_w, 2),
                    "y": round(y, 2),
                    "w": round(max(bar_w - 1, 1), 2),
                    "h": round(h, 2),
                    "c": ci,
                    "v": v,
                    "cause": cause,
                }
            )
    return {"rects": rects, "causes": causes, "peak": peak, "width": width, "height": height}


def _spark(values: list[int]) -> str:
    marks = " ▁▂▃▄▅▆▇█"
    peak = max(values or [0])
    if not peak:
        return ""
    return "".join(marks[min(8, math.ceil(8 * v / peak))] if v else " " for v in values)


def render(doc: dict[str, Any], fmt: str) -> str:
    """The report document (:func:`analyzer.summary.summarize`'s) in one format."""
    if fmt == "json":  # orjson: the standard library's encoder is pure Python once it indents
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    tl = doc.get("timeline") or {"hosts": {}}
    charts = {host: _svg_bars(series) for host, series in tl["hosts"].items()}
    sparks = {host: {c: _spark(v) for c, v in series.items()} for host, series in tl["hosts"].items()}
    template = _env().get_template(f"report.{fmt}.j2")
    out = template.render(doc=doc, charts=charts, sparks=sparks, limit=FINDINGS_SHOWN.get(fmt, 10**9))
    # HTML escapes markup but not control and reordering characters (the other formats' filters
    # show them already): shown in one pass over the page, which has none of its own
    return _show_control(out) if fmt == "html" else out
