"""The words of a finding: its cause's explanation, its cadence, reasons in plain English.

Every cause has one explanation template (``reports/templates/causes/<cause>.j2``) with
blocks ``title``, ``explanation``, ``impact`` and ``remediation``; they render to plain
text once per finding, into the report's document, and every format shows that text with
its own escaping. The analysis (a host's headline), the report's templates and the
scheduler's trends all take their wording from here: it depends on neither.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from ._jinja import Environment
from .resources import templates_dir
from .schema import UNKNOWN_HOST

__all__ = ["PLAIN", "HEADLINE", "every", "cadence_text", "explain", "headline", "host_name", "plural", "some"]

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
# a verdict as a host's headline says it
HEADLINE = {
    "attack": "harmful: an attack",
    "misconfiguration": "needs action",
    "user-error": "harmless",
    "unknown": "needs a look",
    "expected": "expected",
}
NO_FAILURES = "no failed logins found"


def every(seconds: float | None) -> str:
    """A cadence in words: "every 1 h", "every 5 min", "every 30 s" ("" without one)."""
    if not seconds:
        return ""
    if seconds % 3600 == 0:
        return f"every {int(seconds // 3600)} h"
    if seconds >= 60:
        return f"every {seconds / 60:.0f} min"
    return f"every {seconds:.0f} s"


def cadence_text(f: dict[str, Any]) -> str | None:
    """A finding's cadence and, when known, its beats: "every 1 h, 40 of 48 expected beats"."""
    if not f.get("cadence_seconds"):
        return None
    beats = f.get("beats")
    tail = f", {beats['observed']} of {beats['expected']} expected beats" if beats else ""
    return f"{every(f['cadence_seconds'])}{tail}"


def headline(top: dict[str, Any] | None) -> str:
    """A host's headline from its most urgent finding (explained), or that it has none."""
    if top is None:
        return NO_FAILURES
    return f"{top['title']} — {HEADLINE.get(top['verdict'], top['verdict'])}"


def host_name(host: str | None) -> str:
    """A finding's host for people (findings keep ``None`` where the log names no host)."""
    return UNKNOWN_HOST if host is None else host


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
    env = Environment(
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
    attempts = f.get("attempts", f.get("count", 0))  # a finding of report_version 1 counted records
    ctx = {
        **f,
        "attempts": attempts,
        "connections": f.get("connections", attempts),
        "host": host_name(f.get("host")),
        "services": f.get("service") or [],
        "cadence": cadence_text(f),
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


def explain(findings: list[dict[str, Any]]) -> None:
    """Add each finding's prose (title, explanation, impact, remediation, cadence), once."""
    for f in findings:
        if "title" not in f:
            f.update(_explain(f))
            f["cadence_text"] = cadence_text(f)
