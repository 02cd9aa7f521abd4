"""The causes, as data: ``rules/causes.yaml`` says per cause its verdict, how its events
are gathered into findings, whether its findings show a transition, whether it is the
platform's probe, and its rank. Loaded once (:func:`load_causes`) and checked: every
problem is a ``file:line: message`` (a cause without its explanation template, a template
for no cause, a cause no rule names: :func:`uncovered`).

The JSON report's schema lists the causes, verdicts, confidences and host roles in its
enums; :func:`schema_with_enums` derives them from here (the checked-in schema is tested
against it; ``python -m analyzer.classify.causes SCHEMA`` rewrites it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .._yaml import key_line, line_of, load_yaml
from ..errors import RuleError
from ..resources import rules_dir, templates_dir
from ..schema import COLUMNS, ENUMS
from .model import CONFIDENCES, ROLES, VERDICTS, Rule

__all__ = [
    "CAUSES_FILE",
    "Campaign",
    "Cause",
    "Causes",
    "causes_path",
    "load_causes",
    "parse_causes",
    "schema_with_enums",
    "uncovered",
]

CAUSES_FILE = "causes.yaml"  # in the rules directory; never a rule file itself
_KEYS = ("id", "verdict", "findings_by", "transition", "platform_probe", "platform", "rank")
PLATFORM_STATUSES = ("failing", "blocked", "ok")  # what a cause's findings say of the platform's login


@dataclass(frozen=True, slots=True)
class Cause:
    """One cause and what is done per cause (see ``rules/causes.yaml``)."""

    id: str
    verdict: str
    findings_by: tuple[str, ...]  # besides host
    transition: bool
    platform_probe: bool
    rank: int
    platform: str | None = None  # failing, blocked or ok: the platform's login on the host; None: no say
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Campaign:
    """An attack cause whose findings merge into campaigns, and the kind of attempt it adds."""

    cause: str
    kind: str | None
    succeeded: bool = False  # its finding means the attack got in


@dataclass(frozen=True, slots=True)
class Causes:
    """The causes in file order, by id; the campaign causes, most serious first."""

    path: str
    by_id: Mapping[str, Cause]
    campaigns: tuple[Campaign, ...] = ()
    reason_kinds: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(
        cls,
        path: str,
        causes: Iterable[Cause],
        campaigns: Iterable[Campaign] = (),
        reason_kinds: Mapping[str, str] | None = None,
    ) -> Causes:
        return cls(
            path,
            MappingProxyType({c.id: c for c in causes}),
            tuple(campaigns),
            MappingProxyType(dict(reason_kinds or {})),
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind of attempt a campaign may name, in file order."""
        found = [c.kind for c in self.campaigns if c.kind] + list(self.reason_kinds.values())
        return tuple(dict.fromkeys(found))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.by_id)

    def __iter__(self) -> Iterator[Cause]:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, cause: object) -> bool:
        return cause in self.by_id

    def __getitem__(self, cause: str) -> Cause:
        return self.by_id[cause]

    def location(self, cause: str) -> str:
        return f"{self.path}:{self.by_id[cause].line}"


def causes_path() -> Path:
    return rules_dir() / CAUSES_FILE


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_columns(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(c, str) and c in COLUMNS and c != "host" for c in v)


# each key's test and what it takes
_CHECKS = {
    "verdict": (lambda v: v in VERDICTS, f"one of {', '.join(VERDICTS)}"),
    "findings_by": (_is_columns, "a list of event columns (host is always one)"),
    "transition": (_is_bool, "true or false"),
    "platform_probe": (_is_bool, "true or false"),
    "rank": (_is_int, "a whole number"),
}


def parse_causes(path: Path, templates: Path | None = None) -> tuple[Causes, list[RuleError]]:
    """The causes file → (the causes without problems, every problem). ``templates``: the
    directory of the explanation templates (default: the shipped ``causes/`` templates)."""
    templates = templates_dir() / "causes" if templates is None else templates
    errors: list[RuleError] = []

    def err(line: int, msg: str) -> None:
        errors.append(RuleError(msg, source=f"{path}:{line}"))

    try:
        doc = load_yaml(path)
    except RuleError as exc:
        return Causes.of(str(path), ()), [exc]
    except OSError as exc:
        return Causes.of(str(path), ()), [RuleError(f"cannot read: {exc.strerror or exc}", source=str(path))]
    entries = doc.get("causes") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        err(line_of(doc, 1), "the file holds 'causes:', a list of causes (id, verdict, findings_by, …)")
        return Causes.of(str(path), ()), errors
    for key in sorted(set(doc) - {"causes", "campaigns", "reason_kinds", "__line__"}):
        err(line_of(doc, 1), f"unknown key {key!r} (known: causes, campaigns, reason_kinds)")
    good: dict[str, Cause] = {}
    seen: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            err(line_of(doc, 1), f"a cause is a mapping of {', '.join(_KEYS)}, not {entry!r}")
            continue
        line = line_of(entry)
        cid = entry.get("id")
        if not isinstance(cid, str) or not cid.strip():
            err(line, "a cause needs an id")
            continue
        if cid in seen:
            err(line, f"cause {cid!r} again (first at line {seen[cid]})")
            continue
        seen[cid] = line
        before = len(errors)
        for key in sorted(set(entry) - {*_KEYS, "__line__"}):
            err(line, f"cause {cid!r}: unknown key {key!r} (known: {', '.join(_KEYS)})")
        for key, (ok, takes) in _CHECKS.items():
            if key not in entry:
                err(line, f"cause {cid!r}: missing {key} ({takes})")
            elif not ok(entry[key]):
                err(line, f"cause {cid!r}: {key} is {takes}, not {entry[key]!r}")
        if entry.get("platform") not in (None, *PLATFORM_STATUSES):  # optional
            err(line, f"cause {cid!r}: platform is one of {', '.join(PLATFORM_STATUSES)}, not {entry['platform']!r}")
        if not (templates / f"{cid}.j2").is_file():
            err(line, f"cause {cid!r} has no explanation template ({templates / f'{cid}.j2'})")
        if len(errors) == before:
            good[cid] = Cause(
                id=cid,
                verdict=entry["verdict"],
                findings_by=tuple(entry["findings_by"]),
                transition=entry["transition"],
                platform_probe=entry["platform_probe"],
                rank=entry["rank"],
                platform=entry.get("platform"),
                line=line,
            )
    for tpl in sorted(templates.glob("*.j2")) if templates.is_dir() else ():
        if tpl.stem not in seen:
            errors.append(RuleError(f"an explanation template for no cause (the causes: {path})", source=str(tpl)))
    campaigns = _campaigns(doc, good, err)
    reason_kinds = _reason_kinds(doc, err)
    return Causes.of(str(path), good.values(), campaigns, reason_kinds), errors


def _campaigns(doc: dict, good: Mapping[str, Cause], err: Any) -> list[Campaign]:
    """``campaigns:``: attack causes (each once) with the kind of attempt each adds, and
    whether its finding means the attack succeeded."""
    entries = doc.get("campaigns", [])
    if not isinstance(entries, list):
        err(line_of(doc, 1), "campaigns is a list of {cause, kind}")
        return []
    out: list[Campaign] = []
    for entry in entries:
        line = line_of(entry, line_of(doc, 1)) if isinstance(entry, dict) else line_of(doc, 1)
        if (
            not isinstance(entry, dict)
            or set(entry) - {"cause", "kind", "succeeded", "__line__"}
            or "cause" not in entry
        ):
            err(line, f"a campaign entry is {{cause: …, kind: …, succeeded: …}}, not {entry!r}")
            continue
        cid, kind, succeeded = entry["cause"], entry.get("kind"), entry.get("succeeded", False)
        if cid not in good:
            err(line, f"campaign cause {cid!r} is no cause of this file")
        elif good[cid].verdict != "attack":
            err(line, f"campaign cause {cid!r} is no attack (its verdict: {good[cid].verdict})")
        elif any(c.cause == cid for c in out):
            err(line, f"campaign cause {cid!r} again")
        elif kind is not None and not (isinstance(kind, str) and kind.strip()):
            err(line, f"campaign cause {cid!r}: kind is a name or null, not {kind!r}")
        elif not _is_bool(succeeded):
            err(line, f"campaign cause {cid!r}: succeeded is true or false, not {succeeded!r}")
        else:
            out.append(Campaign(cid, kind, succeeded))
    return out


def _reason_kinds(doc: dict, err: Any) -> dict[str, str]:
    """``reason_kinds:``: a reason among a campaign's events → the kind of attempt it adds."""
    table = doc.get("reason_kinds", {})
    if not isinstance(table, dict):
        err(line_of(doc, 1), "reason_kinds maps a reason to a kind of attempt")
        return {}
    reasons = set(ENUMS["reason"])
    out: dict[str, str] = {}
    for reason, kind in table.items():
        if reason == "__line__":
            continue
        if reason not in reasons or not isinstance(kind, str):
            err(
                key_line(table, reason, line_of(doc, 1)),
                f"reason_kinds: {reason!r}: {kind!r} is no reason and kind name",
            )
        else:
            out[reason] = kind
    return out


@cache
def load_causes() -> Causes:
    """The shipped causes, loaded and checked once; the first problem is raised."""
    causes, errors = parse_causes(causes_path())
    if errors:
        raise errors[0]
    return causes


def uncovered(causes: Causes, rules: Iterable[Rule]) -> list[RuleError]:
    """A problem for each cause that none of ``rules`` names."""
    named = {r.cause for r in rules}
    return [
        RuleError(f"cause {c.id!r} has no rule (no rule file names it)", source=causes.location(c.id))
        for c in causes
        if c.id not in named
    ]


def schema_with_enums(schema: dict[str, Any], causes: Causes) -> dict[str, Any]:
    """A copy of the report's JSON schema with its enums of causes, verdicts, confidences,
    host roles and the platform's login (statuses, causes) taken from the code and ``causes.yaml``."""
    out = json.loads(json.dumps(schema))
    props = out["properties"]
    finding = props["findings"]["items"]["properties"]
    finding["cause"]["enum"] = list(causes.ids)
    finding["verdict"]["enum"] = list(VERDICTS)
    finding["confidence"]["enum"] = list(CONFIDENCES)
    finding["kinds"]["items"]["enum"] = list(causes.kinds)
    host = props["hosts"]["items"]["properties"]
    host["verdict"]["enum"] = list(VERDICTS)
    host["role"]["enum"] = list(ROLES)
    if "platform" in host:  # the platform's login: the causes that speak for it, and their statuses
        platform = host["platform"]["properties"]
        platform["status"]["enum"] = [*PLATFORM_STATUSES, "not-seen"]
        platform["cause"] = {"enum": [c.id for c in causes if c.platform] + [None]}
    return out


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as the checked-in file writes it."""
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str]) -> int:
    """``python -m analyzer.classify.causes SCHEMA``: rewrite the schema's enums in place."""
    if len(argv) != 1:
        print("usage: python -m analyzer.classify.causes reports/report.schema.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    schema = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(schema_text(schema_with_enums(schema, load_causes())), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
