"""Loading rule files: strict, with every problem as ``file:line: message``.

``load_rules()`` reads the shipped ``rules/`` and any extra directories (a rule there
replaces a shipped one with the same id) and raises the first error;
``check_rules(paths)`` returns all of them (``authtriage rules check``). A rule names one
of the causes of ``rules/causes.yaml`` (:mod:`.causes`) and takes its verdict; every
shipped cause needs a shipped rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._yaml import clean, line_of, load_yaml
from ..errors import RuleError
from ..resources import rules_dir
from ..schema import CATEGORICAL, COLUMNS
from ._sections import without
from .causes import CAUSES_FILE, Causes, causes_path, load_causes, parse_causes, uncovered
from .condition import ConditionError, check_names, parse_condition
from .examples import parse_examples, run_example
from .match import FLAGS, MODIFIERS, NUMERIC, STRING_ONLY
from .model import (
    CONFIDENCES,
    GROUP_KEYS,
    ROLES,
    Bounds,
    Group,
    Item,
    Periodicity,
    Rule,
    Selection,
    Sequence,
    Timespan,
    ValueCount,
)

__all__ = ["RuleSet", "load_rules", "check_rules", "parse_rule_file"]

_RULE_KEYS = {
    "id", "title", "description", "cause", "verdict", "confidence", "priority", "detection", "group", "when",
    "examples",
}  # fmt: skip
_COMPARE = {"gte", "gt", "lte", "lt"}
VARIABLES = ("platform_accounts", "platform_networks", "probe_ports")


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]  # by priority (lowest number first), then id

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return [p for p in out if p.name != CAUSES_FILE]


def parse_rule_file(
    path: Path, causes: Causes | None = None, examples: bool = True
) -> tuple[Rule | None, list[RuleError]]:
    """One rule file → (rule or None, every problem found). ``causes``: the causes it may
    name (default: the shipped ones). Without ``examples`` its examples are not read (they
    are most of a shipped rule file, and only ``rules check`` and the tests run them)."""
    errors: list[RuleError] = []
    try:
        causes = load_causes() if causes is None else causes
        text = path.read_text(encoding="utf-8")
        doc = load_yaml(path, text if examples else without(text, "examples"))
    except RuleError as exc:
        return None, [exc]
    except OSError as exc:
        return None, [RuleError(f"cannot read: {exc.strerror or exc}", source=str(path))]

    def err(line: int, msg: str) -> None:
        errors.append(RuleError(msg, source=f"{path}:{line}"))

    if not isinstance(doc, dict):
        err(1, "a rule file holds one mapping (id, cause, detection, …)")
        return None, errors
    top = line_of(doc, 1)
    for key in sorted(set(doc) - _RULE_KEYS - {"__line__"}):
        err(top, f"unknown key {key!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    rid = doc.get("id")
    if not isinstance(rid, str) or not rid.strip():
        err(top, "missing id")
        rid = "?"
    named = doc.get("cause")
    cause = causes.by_id.get(named) if isinstance(named, str) else None
    if cause is None:
        err(top, f"cause {named!r} is not one of {', '.join(causes.ids)} (the causes in {causes.path})")
    elif "verdict" in doc and doc["verdict"] != cause.verdict:  # optional: each cause has one verdict
        err(
            top,
            f"verdict {doc['verdict']!r} is not that of cause {cause.id!r}, {cause.verdict!r} "
            f"({causes.location(cause.id)}); a rule takes its cause's verdict",
        )
    if doc.get("confidence") not in CONFIDENCES:
        err(top, f"confidence {doc.get('confidence')!r} is not one of {', '.join(CONFIDENCES)}")
    priority = doc.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool):
        err(top, f"priority must be a whole number, not {priority!r}")
        priority = 100
    selections, condition, cond_text = _detection(doc.get("detection"), top, err)
    group = _group(doc.get("group"), top, err) if doc.get("group") is not None else None
    when = clean(doc.get("when")) if doc.get("when") is not None else None
    if when is not None and (
        not isinstance(when, dict)
        or set(when) != {"platform_networks"}
        or when["platform_networks"] not in ("configured", "unset")
    ):
        err(top, "when takes {platform_networks: configured} or {platform_networks: unset}")
    examples = parse_examples(doc["examples"], top, err) if "examples" in doc else ()
    if errors or condition is None or cause is None:
        return None, errors
    return (
        Rule(
            id=rid,
            title=str(doc.get("title") or rid),
            cause=cause.id,
            verdict=cause.verdict,
            confidence=doc["confidence"],
            priority=priority,
            selections=selections,
            condition=condition,
            condition_text=cond_text,
            group=group,
            description=str(doc.get("description") or ""),
            when=when,
            examples=examples,
            path=str(path),
            line=top,
        ),
        [],
    )


def _detection(det: Any, top: int, err) -> tuple[dict[str, Selection], Any, str]:
    if not isinstance(det, dict):
        err(top, "detection must be a mapping of selections and a condition")
        return {}, None, ""
    line = line_of(det, top)
    selections: dict[str, Selection] = {}
    for name, body in det.items():
        if name in ("__line__", "condition"):
            continue
        sel = _selection(name, body, line_of(body, line), err)
        if sel is not None:
            selections[name] = sel
    text = det.get("condition")
    if not isinstance(text, str):
        err(line, "detection needs a condition (e.g. 'selection and not filter')")
        return selections, None, ""
    try:
        node = parse_condition(text)
    except ConditionError as exc:
        err(line, f"condition: {exc}")
        return selections, None, text
    problems = check_names(node, set(det) - {"condition", "__line__"})
    for p in problems:
        err(line, p)
    return selections, (None if problems else node), text


def _selection(name: str, body: Any, line: int, err) -> Selection | None:
    maps = body if isinstance(body, list) else [body]
    if not maps or not all(isinstance(m, dict) for m in maps):
        err(line, f"selection {name!r} must be a mapping of field: value, or a list of such mappings")
        return None
    alternatives = []
    ok = True
    for m in maps:
        items = []
        for key, value in m.items():
            if key == "__line__":
                continue
            item = _item(name, key, value, line_of(m, line), err)
            ok &= item is not None
            if item is not None:
                items.append(item)
        alternatives.append(tuple(items))
    return Selection(name, tuple(alternatives)) if ok else None


def _item(sel: str, key: str, value: Any, line: int, err) -> Item | None:
    field, *mods = str(key).split("|")
    where = f"selection {sel!r}, {key!r}"
    if field not in COLUMNS or field == "timestamp":
        err(line, f"{where}: unknown field {field!r} (fields: {', '.join(c for c in COLUMNS if c != 'timestamp')})")
        return None
    known = set(MODIFIERS) | set(FLAGS) | set(NUMERIC)
    bad = [m for m in mods if m not in known]
    if bad:
        err(line, f"{where}: unknown modifier {bad[0]!r} (modifiers: {', '.join(sorted(known))})")
        return None
    ops = [m for m in mods if m not in FLAGS]
    if len(ops) > 1:
        err(line, f"{where}: one comparison per item, not {ops}")
        return None
    values = tuple(value) if isinstance(value, list) else (value,)
    if "exists" in mods:
        if not (len(values) == 1 and isinstance(values[0], bool)):
            err(line, f"{where}: exists takes true or false")
            return None
        return Item(field, tuple(mods), values)
    is_text = field in CATEGORICAL or field == "raw"
    if ops and ops[0] in STRING_ONLY and not is_text:
        err(line, f"{where}: {ops[0]} works on text fields, and {field} is a number")
        return None
    if ops and ops[0] in NUMERIC and is_text:
        err(line, f"{where}: {ops[0]} compares numbers, and {field} is text")
        return None
    for v in values:
        if isinstance(v, str) and v.startswith("$"):
            if v[1:] not in VARIABLES:
                err(line, f"{where}: unknown variable {v!r} (known: {', '.join('$' + n for n in VARIABLES)})")
                return None
            continue
        if isinstance(v, dict | list):
            err(line, f"{where}: values are strings, numbers or null")
            return None
        if ops and ops[0] in NUMERIC and not isinstance(v, int | float):
            err(line, f"{where}: {ops[0]} needs a number, not {v!r}")
            return None
        if ops and ops[0] == "re":
            try:
                pc.match_substring_regex(pa.array([""]), str(v))
            except pa.ArrowInvalid as exc:
                err(line, f"{where}: the regex does not compile (RE2 syntax): {exc}")
                return None
        if ops and ops[0] == "cidr":
            import ipaddress

            try:
                ipaddress.ip_network(str(v), strict=False)
            except ValueError:
                err(line, f"{where}: {v!r} is not a network (CIDR)")
                return None
    return Item(field, tuple(mods), values)


def _bounds(spec: Any) -> Bounds | None:
    """``{gte|gt|lte|lt: N}`` (at least one, numbers) as Bounds; None when it is not that."""
    if not isinstance(spec, dict):
        return None
    ops = {k: v for k, v in spec.items() if k != "__line__"}
    if not ops or not set(ops) <= _COMPARE:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ops.values()):
        return None
    return Bounds(**ops)


def _columns(value: Any) -> tuple[str, ...] | None:
    """A list of event columns as a tuple; None when it is not that."""
    if not isinstance(value, list) or not all(isinstance(c, str) and c in COLUMNS for c in value):
        return None
    return tuple(value)


def _group(group: Any, top: int, err) -> Group | None:
    """The group conditions, each checked (a part with a problem is left out: the rule is
    not kept); None when there are none."""
    if not isinstance(group, dict):
        err(top, "group must be a mapping")
        return None
    line = line_of(group, top)
    for key in group:
        if key != "__line__" and key not in GROUP_KEYS:
            err(line, f"group: unknown key {key!r} (known: {', '.join(GROUP_KEYS)})")
    by = _columns(group.get("group-by", []))
    if by is None:
        err(line, f"group-by must list event columns, got {clean(group.get('group-by'))!r}")
    timespan = None
    if "timespan" in group:
        try:
            timespan = Timespan(group["timespan"])
        except ValueError as exc:
            err(line, f"group: {exc}")
    count = None
    if "count" in group and (count := _bounds(group["count"])) is None:
        err(line, f"group: count takes {GROUP_KEYS['count']}")
    value_count = _value_count(group.get("value_count"), line, err) if "value_count" in group else None
    roles = group.get("host_role")
    if roles is not None and (not isinstance(roles, list) or any(r not in ROLES for r in roles)):
        err(line, f"group: host_role lists roles among {', '.join(ROLES)}")
    per = group.get("periodicity")
    periodicity = None
    if per is not None:
        knobs = clean(per) if isinstance(per, dict) else None
        if knobs is None or set(knobs) - {"max_cv", "min_beats", "min_interval"}:
            err(line, "group: periodicity takes {max_cv, min_beats, min_interval} (each optional)")
        elif not all(isinstance(v, int | float) and not isinstance(v, bool) for v in knobs.values()):
            err(line, "group: periodicity's max_cv, min_beats and min_interval are numbers")
        else:
            periodicity = Periodicity(**knobs)
    sequences: dict[str, Sequence | None] = {}
    for key in ("followed_by", "preceded_by"):
        if key in group:
            sequences[key] = _sequence(key, group[key], timespan, line, err)
    built = Group(
        by=by or (),
        timespan=timespan,
        count=count,
        value_count=value_count,
        periodicity=periodicity,
        host_role=tuple(roles) if roles is not None else None,
        followed_by=sequences.get("followed_by"),
        preceded_by=sequences.get("preceded_by"),
    )
    return None if built == Group() else built


def _value_count(spec: Any, line: int, err) -> ValueCount | None:
    if not isinstance(spec, dict):
        err(line, f"group: value_count takes {GROUP_KEYS['value_count']}")
        return None
    bounds = _bounds({k: v for k, v in spec.items() if k not in ("field", "group-by", "among")})
    if bounds is None:
        err(line, f"group: value_count takes {GROUP_KEYS['value_count']}")
    field = spec.get("field")
    if not isinstance(field, str) or field not in COLUMNS:
        err(line, f"group: value_count field {field!r} is not an event column")
        field = None
    group_by = None
    if "group-by" in spec and (group_by := _columns(spec["group-by"])) is None:
        err(line, f"group: value_count group-by must list event columns, got {clean(spec['group-by'])!r}")
    among = _selection("among", spec["among"], line, err) if "among" in spec else None
    if bounds is None or field is None:
        return None
    return ValueCount(field=field, bounds=bounds, group_by=group_by, among=among)


def _sequence(key: str, spec: Any, timespan: Timespan | None, line: int, err) -> Sequence | None:
    if not isinstance(spec, dict) or "match" not in spec or set(spec) - {"__line__", "match", "within", "count"}:
        err(line, f"group: {key} takes {GROUP_KEYS[key]}")
        return None
    match = _selection(key, spec["match"], line_of(spec, line), err)
    within = timespan or Timespan("1d")
    if "within" in spec:
        try:
            within = Timespan(spec["within"])
        except ValueError as exc:
            err(line, f"group: {key}: {exc}")
    count = Bounds(gte=1)
    if "count" in spec and (count := _bounds(spec["count"])) is None:
        err(line, f"group: {key} count takes {{gte|gt|lte|lt: N}}")
    if match is None:
        return None
    return Sequence(match=match, within=within, count=count or Bounds(gte=1))


def _dedupe(rules: list[Rule]) -> RuleSet:
    return RuleSet(tuple(sorted(rules, key=lambda r: (r.priority, r.id))))


def _read_rules(paths: Iterable[Path], causes: Causes, examples: bool) -> tuple[list[Rule], list[RuleError]]:
    """Every rule file under ``paths`` → (good rules, all problems). Duplicate ids are errors."""
    rules: list[Rule] = []
    errors: list[RuleError] = []
    seen: dict[str, Rule] = {}
    for path in _files(paths):
        rule, errs = parse_rule_file(path, causes, examples)
        errors.extend(errs)
        if rule is None:
            continue
        if rule.id in seen:
            errors.append(
                RuleError(f"duplicate rule id {rule.id!r} (also {seen[rule.id].location})", source=rule.location)
            )
            continue
        seen[rule.id] = rule
        rules.append(rule)
    return rules, errors


def check_rules(
    paths: Iterable[Path], causes: Causes | None = None, examples: bool = True
) -> tuple[list[Rule], list[RuleError]]:
    """Every rule file under ``paths`` → (good rules, all problems), for ``rules check``.

    The causes are checked too (``causes``: default, the shipped ``causes.yaml``); where
    ``paths`` holds the causes file's directory, its rules are the whole catalog and each
    cause needs one of them. With ``examples``, each rule's examples are read and run, and
    one that does not do as it expects is a problem at its line."""
    paths = [Path(p) for p in paths]
    errors: list[RuleError] = []
    if causes is None:
        causes, errors = parse_causes(causes_path())
    rules, errs = _read_rules(paths, causes, examples)
    errors.extend(errs)
    home = Path(causes.path).parent.resolve()
    if any(p.is_dir() and p.resolve() == home for p in paths):
        errors.extend(uncovered(causes, rules))
    if examples:
        errors.extend(
            RuleError(problem, source=f"{rule.path}:{ex.line}")
            for rule in rules
            for ex in rule.examples
            if (problem := run_example(rule, ex)) is not None
        )
    return rules, errors


def load_rules(extra: Iterable[Path] = ()) -> RuleSet:
    """The shipped rules, then each extra directory's (same id: the extra one wins); their
    examples are left unread (``check_rules`` reads and runs them)."""
    causes = load_causes()
    rules, errors = _read_rules([rules_dir()], causes, examples=False)
    errors.extend(uncovered(causes, rules))
    if errors:
        raise errors[0]
    merged = {r.id: r for r in rules}
    for directory in extra:
        more, errs = _read_rules([Path(directory)], causes, examples=False)
        if errs:
            raise errs[0]
        merged.update({r.id: r for r in more})
    return _dedupe(list(merged.values()))
