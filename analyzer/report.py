"""Reports: one document (the JSON), rendered to HTML, Markdown or text with Jinja.

Every cause has one explanation template (``reports/templates/causes/<cause>.j2``) with
blocks ``title``, ``explanation``, ``impact`` and ``remediation``; they render to plain
text once per finding and every format shows that text with its own escaping: HTML by
Jinja's autoescape, Markdown and text by the filters below. Strings from logs are
hostile; nothing in a report executes, breaks a table or moves a terminal's cursor.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import orjson
import pandas as pd

from .resources import templates_dir
from .schema import UNKNOWN_HOST

__all__ = ["FORMATS", "render", "enrich", "explain", "format_for", "REPORT_VERSION", "timeline", "exit_code"]

REPORT_VERSION = 1
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
_BUCKETS = [60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400]
MAX_BUCKETS = 520  # ten years of weeks; a timeline over a longer span takes longer buckets
PLAIN = {
    "unknown-user": "unknown",
    "bad-password": "given a wrong password",
    "account-disabled": "disabled",
    "account-locked": "locked out",
    "account-expired": "expired",
    "account-revoked": "revoked (disabled, expired or locked)",
    "password-expired": "holding an expired password",
    "password-must-change": "required to change its password",
    "logon-type-not-granted": "not allowed this kind of logon",
    "service-stopped": "stopped",
    "service-disabled": "disabled",
}
HEADLINE = {
    "attack": "harmful: an attack",
    "misconfiguration": "needs action",
    "user-error": "harmless",
    "unknown": "needs a look",
    "expected": "expected",
}


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


def _cadence_text(f: dict) -> str | None:
    seconds = f.get("cadence_seconds")
    if not seconds:
        return None
    if seconds % 3600 == 0:
        every = f"{int(seconds // 3600)} h"
    elif seconds >= 60:
        every = f"{seconds / 60:.0f} min"
    else:
        every = f"{seconds:.0f} s"
    beats = f.get("beats")
    tail = f", {beats['observed']} of {beats['expected']} expected beats" if beats else ""
    return f"every {every}{tail}"


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """``finding.verdict`` on a dict without raising first: Jinja tries the attribute,
    catches AttributeError and only then takes the item — per field of each of thousands
    of findings that exception was half of rendering a large report. Same result: a dict
    has no attributes but its methods, which still win as before."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@cache
def _env() -> jinja2.Environment:
    env = _Environment(
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


def host_name(host: str | None) -> str:
    """A finding's host for people (findings keep ``None`` where the log names no host)."""
    return UNKNOWN_HOST if host is None else host


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


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 finding``, ``2,500 findings`` (``words``: the plural when it is not ``word`` + s)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def some(values: list, limit: int = 10) -> str:
    """A list for people: the first ``limit`` values, then how many more (the JSON report
    keeps them all)."""
    values = [str(v) for v in values]
    if len(values) <= limit:
        return ", ".join(values)
    return f"{', '.join(values[:limit])} and {len(values) - limit:,} more"


@cache
def _plain_env() -> jinja2.Environment:
    """For the cause explanations: plain text out, escaped later by each format."""
    env = _Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "causes")),
        autoescape=False,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["some"] = some
    env.filters["plural"] = plural
    return env


def _explain(f: dict) -> dict[str, Any]:
    env = _plain_env()
    tpl = env.get_template(f"{f['cause']}.j2")  # every cause has one: loading the causes checks it
    reasons = f.get("reasons") or {}
    ports = sorted({str(e) for e in f.get("dst_ports", [])}) or ["22", "5985", "5986"]
    ctx = {
        **f,
        "host": host_name(f.get("host")),
        "services": f.get("service") or [],
        "cadence": _cadence_text(f),
        "reasons_text": ", ".join(PLAIN.get(r, r) for r in reasons) or "not stated",
        "ports_text": "TCP " + "/".join(ports),
    }
    context = tpl.new_context(ctx)
    blocks = {name: "".join(fn(context)).strip() for name, fn in tpl.blocks.items()}
    return {
        "title": blocks.get("title", f["cause"]),
        "explanation": " ".join(blocks.get("explanation", "").split()),
        "impact": " ".join(blocks.get("impact", "").split()),
        "remediation": [line.strip() for line in blocks.get("remediation", "").splitlines() if line.strip()],
    }


# (host, cause, bucket) cells counted at once, every combination, up to the larger of these
TIMELINE_GRID, TIMELINE_GRID_PER_EVENT = 1 << 20, 4


def timeline(events: pd.DataFrame, causes: pd.Series, buckets: int = 48) -> dict[str, Any]:
    """Attempts per time bucket, per host and cause (classified events only)."""
    micros = events["timestamp"].to_numpy(dtype="datetime64[us]").view(np.int64)
    keep = causes.notna().to_numpy() & (micros != np.iinfo(np.int64).min)
    if not keep.any():
        return {"bucket_seconds": None, "start": None, "hosts": {}}
    t = micros[keep] // 1_000_000
    span = max(int(t.max() - t.min()), 1)
    size = next((b for b in _BUCKETS if span / b <= buckets), _BUCKETS[-1])
    align = size
    if span / size > MAX_BUCKETS:  # years of weeks (forged times: year 1 and year 9999): whole weeks each
        size, align = -(-span // (MAX_BUCKETS * _BUCKETS[-1])) * _BUCKETS[-1], 86400  # from the first day
    start = int(t.min() // align * align)
    idx = (t - start) // size
    del t
    n = int(idx.max()) + 1
    # (host, cause, bucket) counted on codes, one bincount over every combination (hosts and
    # causes are few); names only for the pairs that occur
    host_col = events["host"]
    if isinstance(host_col.dtype, pd.CategoricalDtype):  # no host: a host of its own, the last
        host_names = np.append(np.asarray(host_col.cat.categories, dtype=object), np.nan)
        hosts = np.where((codes := host_col.cat.codes.to_numpy()) < 0, len(host_names) - 1, codes)
    else:
        hosts, host_names = pd.factorize(host_col, use_na_sentinel=False)
    ncause = len(causes.cat.categories)
    pair = hosts[keep].astype(np.int64) * ncause + causes.cat.codes.to_numpy()[keep]
    if len(host_names) * ncause * n <= max(TIMELINE_GRID, TIMELINE_GRID_PER_EVENT * pair.size):  # all at once
        pair *= n
        pair += idx
        counts = np.bincount(pair, minlength=len(host_names) * ncause * n).reshape(-1, n)
        keys = np.flatnonzero(counts.sum(axis=1))
        counts = counts[keys]
    else:  # many hosts: only the pairs that occur
        inverse, keys = pd.factorize(pair)
        counts = np.bincount(inverse * n + idx, minlength=len(keys) * n).reshape(-1, n)
    del pair, idx
    named = {}
    for row, key in enumerate(keys.tolist()):
        h = host_names[key // ncause]
        named[(UNKNOWN_HOST if pd.isna(h) else str(h), str(causes.cat.categories[key % ncause]))] = row
    out: dict[str, dict[str, list[int]]] = {}
    for host, cause in sorted(named):
        out.setdefault(host, {})[cause] = counts[named[(host, cause)]].tolist()
    return {
        "bucket_seconds": size,
        "start": pd.Timestamp(start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z"),
        "hosts": out,
    }


def explain(findings: list[dict[str, Any]]) -> None:
    """Add each finding's prose (title, explanation, impact, remediation), once."""
    for f in findings:
        if "title" not in f:
            f.update(_explain(f))
            f["cadence_text"] = _cadence_text(f)


def enrich(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the prose: per finding its explanation, per host its headline."""
    explain(doc["findings"])
    by_host: dict[Any, list[dict[str, Any]]] = {}  # in rank order, as the findings are
    for f in doc["findings"]:
        by_host.setdefault(host_name(f["host"]), []).append(f)
    for h in doc["hosts"]:
        theirs = by_host.get(h["name"], [])
        mine = [f for f in theirs if f["cause"] != "probe-ok"] or theirs
        if mine:
            top = mine[0]
            h["headline"] = f"{top['title']} — {HEADLINE.get(top['verdict'], top['verdict'])}"
            h["verdict"] = top["verdict"]
        else:
            h["headline"] = "no failed logins found"
            h["verdict"] = "expected"
    return {"report_version": REPORT_VERSION, **doc}


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
    """The report in one format (the document must have gone through :func:`enrich`)."""
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


def exit_code(doc: dict[str, Any], fail_on: str | None) -> int:
    """--fail-on: 1 when a finding of that kind is present (attack, misconfiguration, any)."""
    if not fail_on:
        return 0
    verdicts = {f["verdict"] for f in doc["findings"]}
    if fail_on == "any":
        return int(bool(verdicts - {"expected"}))
    return int(fail_on in verdicts)
