"""Loading rule files: strict, with every problem as ``file:line: message``.

``load_rules()`` reads the shipped ``rules/`` and any extra directories (a rule there
replaces a shipped one with the same id) and raises the first error;
``check_rules(paths)`` returns all of them (``authtriage rules check``). A rule names one
of the causes of ``rules/causes.yaml`` (:mod:`.causes`) and takes its verdict; every
shipped cause needs a shipped rule.

Every value is checked, at the line of its own key (or list item): the keys themselves
(a misspelt one gets a suggestion), a missing required key ("missing key 'cause'", at the
line of the mapping that lacks it), the values of the enumerated columns
(:data:`analyzer.schema.ENUMS`: outcome, action, service, reason) wherever a selection
compares them — exactly, case-insensitively, or by a text test that must fit at least one of
them —, and the types of the group conditions (counts whole numbers ≥ 0, durations,
columns, roles). A rule with a problem is not kept: one that would never fire is an error,
not a silent no-op.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._yaml import clean, item_line, key_line, line_of, load_yaml
from ..errors import RuleError
from ..resources import rules_dir
from ..schema import CATEGORICAL, COLUMNS, ENUMS
from ._sections import without
from .causes import CAUSES_FILE, Causes, load_causes, uncovered
from .condition import ConditionError, check_names, parse_condition
from .examples import parse_examples
from .match import FLAGS, MODIFIERS, NUMERIC, STRING_ONLY
from .model import (
    CONFIDENCES,
    GROUP_KEYS,
    ROLES,
    VERDICTS,
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

__all__ = ["RuleSet", "load_rules", "read_rules", "parse_rule_file", "ENUM_VALUES", "FIELDS"]

Err = Callable[[int, str], None]

_RULE_KEYS = (
    "id", "title", "description", "cause", "verdict", "confidence", "priority", "detection", "group", "when",
    "examples",
)  # fmt: skip
_REQUIRED = ("id", "cause", "confidence", "detection")
_TEXT = ("title", "description")  # optional free text
_BOUNDS = ("gte", "gt", "lte", "lt")
_VALUE_COUNT = ("field", "group-by", "among")  # and bounds
_SEQUENCE = ("match", "within", "count")
_WHEN = {"platform_networks": ("configured", "unset")}
VARIABLES = ("platform_accounts", "platform_networks", "probe_ports")
# the columns a selection tests and a group gathers by (an event's time is the engine's)
FIELDS = tuple(c for c in COLUMNS if c != "timestamp")
ENUM_VALUES: dict[str, tuple[str, ...]] = {col: tuple(e.value for e in enum) for col, enum in ENUMS.items()}


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


# -- messages ---------------------------------------------------------------------------


def _unknown(what: str, value: Any, known: Iterable[str]) -> str:
    """``unknown outcome 'failur' (did you mean 'failure'?); one of: success, failure, …``"""
    known = list(known)
    lowered = {k.lower(): k for k in known}  # FAILUR is as close to failure as failur is
    close = difflib.get_close_matches(str(value).lower(), list(lowered), n=1)
    hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
    return f"unknown {what} {clean(value)!r}{hint}; one of: {', '.join(known)}"


def _keys(mapping: dict) -> list[Any]:
    return [k for k in mapping if k != "__line__"]


def _check_keys(mapping: dict, known: Iterable[str], line: int, err: Err, what: str = "") -> None:
    """Each key of ``mapping`` not in ``known`` is an error at its line."""
    known = tuple(known)
    prefix = f"{what}: " if what else ""
    for key in _keys(mapping):
        if key not in known:
            err(key_line(mapping, key, line), prefix + _unknown("key", key, known))


def _whole(value: Any) -> str | None:
    """Why ``value`` is no count (None: it is one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f"is a whole number ≥ 0, not {clean(value)!r}"


def _number(value: Any) -> str | None:
    """Why ``value`` is no measure (None: it is one)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return None
    return f"is a number ≥ 0, not {clean(value)!r}"


def _kind(cls: type, name: str) -> type:
    """``int`` when the dataclass field ``name`` holds whole numbers, else ``float``."""
    hint = typing.get_type_hints(cls)[name]
    return int if hint is int or int in typing.get_args(hint) else float


# -- the rule ---------------------------------------------------------------------------


def parse_rule_file(
    path: Path, causes: Causes | None = None, examples: bool = True
) -> tuple[Rule | None, list[RuleError]]:
    """One rule file → (rule or None, every problem found, in the order of their lines).
    ``causes``: the causes it may name (default: the shipped ones). Without ``examples`` its
    examples are not read (they are most of a shipped rule file, and only ``rules check``
    and the tests run them)."""
    try:
        causes = load_causes() if causes is None else causes
        text = path.read_text(encoding="utf-8")
        doc = load_yaml(path, text if examples else without(text, "examples"))
    except RuleError as exc:
        return None, [exc]
    except OSError as exc:
        return None, [RuleError(f"cannot read: {exc.strerror or exc}", source=str(path))]

    problems: list[tuple[int, str]] = []

    def err(line: int, msg: str) -> None:
        problems.append((line, msg))

    def errors() -> list[RuleError]:
        return [RuleError(msg, source=f"{path}:{line}") for line, msg in sorted(problems, key=lambda p: p[0])]

    if not isinstance(doc, dict):
        err(1, "a rule file holds one mapping (id, cause, detection, …)")
        return None, errors()
    top = line_of(doc, 1)

    def at(key: str) -> int:
        return key_line(doc, key, top)

    _check_keys(doc, _RULE_KEYS, top, err)
    for key in _REQUIRED:
        if key not in doc:
            err(top, f"missing key {key!r}")
    rid = doc.get("id")
    if "id" in doc and (not isinstance(rid, str) or not rid.strip()):
        err(at("id"), f"id is a name (text), not {clean(rid)!r}")
    named = doc.get("cause")
    cause = causes.by_id.get(named) if isinstance(named, str) else None
    if cause is None and "cause" in doc:
        err(at("cause"), _unknown("cause", named, causes.ids) + f" (the causes in {causes.path})")
    if "verdict" in doc:  # optional: each cause has one verdict
        if doc["verdict"] not in VERDICTS:
            err(at("verdict"), _unknown("verdict", doc["verdict"], VERDICTS))
        elif cause is not None and doc["verdict"] != cause.verdict:
            err(
                at("verdict"),
                f"verdict {doc['verdict']!r} is not that of cause {cause.id!r}, {cause.verdict!r} "
                f"({causes.location(cause.id)}); a rule takes its cause's verdict",
            )
    if "confidence" in doc and doc["confidence"] not in CONFIDENCES:
        err(at("confidence"), _unknown("confidence", doc["confidence"], CONFIDENCES))
    priority = doc.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool):
        err(at("priority"), f"priority must be a whole number, not {clean(priority)!r}")
    for key in _TEXT:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            err(at(key), f"{key} is text, not {clean(doc[key])!r}")
    selections, condition, cond_text = (
        _detection(doc["detection"], at("detection"), err) if "detection" in doc else ({}, None, "")
    )
    group = _group(doc["group"], at("group"), err) if doc.get("group") is not None else None
    when = _when(doc["when"], at("when"), err) if doc.get("when") is not None else None
    examples = parse_examples(doc["examples"], at("examples"), err) if "examples" in doc else ()
    if problems or condition is None or cause is None:
        return None, errors()
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


def _when(spec: Any, line: int, err: Err) -> dict[str, str] | None:
    """``{platform_networks: configured|unset}``."""
    if not isinstance(spec, dict) or not _keys(spec):
        err(line, "when takes {platform_networks: configured} or {platform_networks: unset}")
        return None
    _check_keys(spec, _WHEN, line, err, "when")
    for key, allowed in _WHEN.items():
        if key not in spec:
            err(line, f"when: missing key {key!r}")
        elif spec[key] not in allowed:
            err(key_line(spec, key, line), "when: " + _unknown(key, spec[key], allowed))
    return clean(spec)


# -- detection --------------------------------------------------------------------------


def _detection(det: Any, line: int, err: Err) -> tuple[dict[str, Selection], Any, str]:
    if not isinstance(det, dict):
        err(line, "detection must be a mapping of selections and a condition")
        return {}, None, ""
    selections: dict[str, Selection] = {}
    for name in _keys(det):
        if name == "condition":
            continue
        sel = _selection(str(name), det[name], key_line(det, name, line), err)
        if sel is not None:
            selections[name] = sel
    if "condition" not in det:
        err(line, "detection: missing key 'condition' (e.g. 'selection and not filter')")
        return selections, None, ""
    text = det["condition"]
    cline = key_line(det, "condition", line)
    if not isinstance(text, str):
        err(cline, f"condition is text (e.g. 'selection and not filter'), not {clean(text)!r}")
        return selections, None, ""
    try:
        node = parse_condition(text)
    except ConditionError as exc:
        err(cline, f"condition: {exc}")
        return selections, None, text
    problems = check_names(node, set(_keys(det)) - {"condition"})
    for p in problems:
        err(cline, p)
    return selections, (None if problems else node), text


def _selection(name: str, body: Any, line: int, err: Err) -> Selection | None:
    """A selection (``line``: of its name): a mapping of items, or a list of such mappings."""
    maps = body if isinstance(body, list) else [body]
    if not maps or not all(isinstance(m, dict) for m in maps):
        err(line, f"selection {name!r} must be a mapping of field: value, or a list of such mappings")
        return None
    alternatives = []
    ok = True
    for i, m in enumerate(maps):
        at = item_line(body, i, line) if isinstance(body, list) else line
        items = []
        for key in _keys(m):
            item = _item(name, key, m[key], key_line(m, key, at), err)
            ok &= item is not None
            if item is not None:
                items.append(item)
        alternatives.append(tuple(items))
    return Selection(name, tuple(alternatives)) if ok else None


def _item(sel: str, key: Any, value: Any, line: int, err: Err) -> Item | None:
    """One ``field|modifier…: value(s)`` (``line``: of its key); every bad value an error at
    its own line."""
    field, *mods = str(key).split("|")
    where = f"selection {sel!r}, {key!r}"
    if field not in FIELDS:
        err(line, f"{where}: " + _unknown("field", field, FIELDS))
        return None
    known = set(MODIFIERS) | set(FLAGS) | set(NUMERIC)
    bad = [m for m in mods if m not in known]
    if bad:
        err(line, f"{where}: " + _unknown("modifier", bad[0], sorted(known)))
        return None
    ops = [m for m in mods if m not in FLAGS]
    if len(ops) > 1:
        err(line, f"{where}: one comparison per item, not {ops}")
        return None
    values = tuple(value) if isinstance(value, list) else (value,)
    if not values:
        err(line, f"{where}: an empty list matches no event")
        return None
    if "exists" in mods:
        if not (len(values) == 1 and isinstance(values[0], bool)):
            err(line, f"{where}: exists takes true or false")
            return None
        return Item(field, tuple(mods), values)
    is_text = field in CATEGORICAL or field == "raw"
    op = ops[0] if ops else "eq"
    if op in STRING_ONLY and not is_text:
        err(line, f"{where}: {op} works on text fields, and {field} is a number")
        return None
    if op in NUMERIC and is_text:
        err(line, f"{where}: {op} compares numbers, and {field} is text")
        return None
    ok = True
    for i, v in enumerate(values):
        problem = _value_problem(field, op, "i" in mods, is_text, v)
        if problem is not None:
            err(item_line(value, i, line) if isinstance(value, list) else line, f"{where}: {problem}")
            ok = False
    return Item(field, tuple(mods), values) if ok else None


def _value_problem(field: str, op: str, ci: bool, is_text: bool, v: Any) -> str | None:
    """Why the value ``v`` does not do in ``field|op`` (None: it does)."""
    if isinstance(v, str) and v.startswith("$"):  # the platform profile's, given when analyzing
        return None if v[1:] in VARIABLES else _unknown("variable", v, ["$" + n for n in VARIABLES])
    if isinstance(v, dict | list):
        return "values are strings, numbers or null"
    if op in NUMERIC:
        return None if isinstance(v, int | float) and not isinstance(v, bool) else f"{op} needs a number, not {v!r}"
    if v is None:  # the rows without a value
        return None
    if op == "re":
        try:
            pc.match_substring_regex(pa.array([""]), str(v))
        except pa.ArrowInvalid as exc:
            return f"the regex does not compile (RE2 syntax): {exc}"
    if op == "cidr":
        try:
            ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            return f"{v!r} is not a network (CIDR)"
    if not is_text and not _is_whole(v):
        return f"{field} is a whole number, not {v!r}"
    if field in ENUM_VALUES:
        return _enum_problem(field, op, ci, v)
    return None


def _is_whole(v: Any) -> bool:
    """Whether ``v`` can equal a value of a number column (all hold whole numbers): a whole
    number, or text that is one (the engine compares ``float(v)``)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    try:
        return float(str(v)).is_integer()
    except ValueError:
        return False


def _enum_problem(field: str, op: str, ci: bool, v: Any) -> str | None:
    """Why ``v`` compared by ``op`` matches no value of an enumerated column (None: it
    matches one). Equality looks the value up; a text test runs the engine's own on the
    column's values."""
    known = ENUM_VALUES[field]
    if op == "eq":
        if (str(v).lower() in {k.lower() for k in known}) if ci else (str(v) in known):
            return None
        return _unknown(field, v, known)
    hits = MODIFIERS[op](pa.array(known, pa.string()), str(v), ci)
    if pc.any(pc.fill_null(hits, False)).as_py():
        return None
    return f"{op} {v!r} matches no {field} (one of: {', '.join(known)})"


# -- group conditions -------------------------------------------------------------------


def _group(group: Any, line: int, err: Err) -> Group | None:
    """The group conditions (``line``: of the ``group`` key), each checked, each problem at
    the line of its key; None when there are none."""
    if not isinstance(group, dict):
        err(line, "group must be a mapping")
        return None
    _check_keys(group, GROUP_KEYS, line, err, "group")

    def at(key: str) -> int:
        return key_line(group, key, line)

    by = _columns(group["group-by"], "group: group-by", at("group-by"), err) if "group-by" in group else ()
    timespan = _span(group["timespan"], "group: timespan", at("timespan"), err) if "timespan" in group else None
    count = _bounds(group["count"], "group: count", at("count"), err) if "count" in group else None
    value_count = _value_count(group["value_count"], at("value_count"), err) if "value_count" in group else None
    roles = _roles(group["host_role"], at("host_role"), err) if group.get("host_role") is not None else None
    per = group.get("periodicity")
    periodicity = _periodicity(per, at("periodicity"), err) if per is not None else None
    sequences = {
        key: _sequence(key, group[key], timespan, at(key), err)
        for key in ("followed_by", "preceded_by")
        if key in group
    }
    built = Group(
        by=by or (),
        timespan=timespan,
        count=count,
        value_count=value_count,
        periodicity=periodicity,
        host_role=roles,
        followed_by=sequences.get("followed_by"),
        preceded_by=sequences.get("preceded_by"),
    )
    return None if built == Group() else built


def _columns(value: Any, what: str, line: int, err: Err) -> tuple[str, ...] | None:
    """A list of event columns, each unknown one an error at its line; None when it is not that."""
    if not isinstance(value, list):
        err(line, f"{what} is a list of event columns, not {clean(value)!r}")
        return None
    bad = [i for i, c in enumerate(value) if not isinstance(c, str) or c not in FIELDS]
    for i in bad:
        err(item_line(value, i, line), f"{what}: " + _unknown("column", value[i], FIELDS))
    return None if bad else tuple(value)


def _span(value: Any, what: str, line: int, err: Err) -> Timespan | None:
    """A duration longer than nothing (``15m``)."""
    try:
        span = Timespan(clean(value))
    except ValueError:
        err(line, f"{what} is a number and a unit (s, m, h, d, w) such as 15m or 6h, not {clean(value)!r}")
        return None
    if span.seconds <= 0:
        err(line, f"{what} is longer than 0s, not {value!r}")
        return None
    return span


def _bounds(spec: Any, what: str, line: int, err: Err, others: tuple[str, ...] = ()) -> Bounds | None:
    """``{gte|gt|lte|lt: N}``, each N a whole number ≥ 0, at least one, that some count
    meets (``others``: the mapping's other keys, checked by the caller)."""
    if not isinstance(spec, dict):
        err(line, f"{what} takes {{gte|gt|lte|lt: N}} (N a whole number ≥ 0), not {clean(spec)!r}")
        return None
    given: dict[str, int] = {}
    ok = True
    for key in _keys(spec):
        at = key_line(spec, key, line)
        if key in others:
            continue
        if key not in _BOUNDS:
            err(at, f"{what}: " + _unknown("key", key, (*others, *_BOUNDS)))
            ok = False
        elif (problem := _whole(spec[key])) is not None:
            err(at, f"{what}: {key} {problem}")
            ok = False
        else:
            given[key] = spec[key]
    if not ok:
        return None
    if not given:
        err(line, f"{what} takes at least one of gte, gt, lte, lt (a whole number ≥ 0)")
        return None
    bounds = Bounds(**given)
    if not bounds.admits_some():
        err(line, f"{what}: no count is {', '.join(f'{k} {v}' for k, v in given.items())}")
        return None
    return bounds


def _value_count(spec: Any, line: int, err: Err) -> ValueCount | None:
    what = "group: value_count"
    if not isinstance(spec, dict):
        err(line, f"{what} takes {GROUP_KEYS['value_count']}")
        return None

    def at(key: str) -> int:
        return key_line(spec, key, line)

    bounds = _bounds(spec, what, line, err, others=_VALUE_COUNT)
    field = spec.get("field")
    if "field" not in spec:
        err(line, f"{what}: missing key 'field' (the column whose distinct values are counted)")
    elif not isinstance(field, str) or field not in FIELDS:
        err(at("field"), f"{what}: " + _unknown("field", field, FIELDS))
        field = None
    group_by = _columns(spec["group-by"], f"{what}: group-by", at("group-by"), err) if "group-by" in spec else None
    among = _selection("among", spec["among"], at("among"), err) if "among" in spec else None
    if bounds is None or not isinstance(field, str):
        return None
    return ValueCount(field=field, bounds=bounds, group_by=group_by, among=among)


def _roles(value: Any, line: int, err: Err) -> tuple[str, ...] | None:
    what = "group: host_role"
    if not isinstance(value, list) or not value:
        err(line, f"{what} is a list of roles among {', '.join(ROLES)}, not {clean(value)!r}")
        return None
    bad = [i for i, r in enumerate(value) if not isinstance(r, str) or r not in ROLES]
    for i in bad:
        err(item_line(value, i, line), f"{what}: " + _unknown("role", value[i], ROLES))
    return None if bad else tuple(value)


def _periodicity(spec: Any, line: int, err: Err) -> Periodicity | None:
    """``{max_cv, min_beats, min_interval}``, each optional: as the dataclass's fields say,
    whole numbers or numbers, ≥ 0."""
    what = "group: periodicity"
    knobs = tuple(f.name for f in fields(Periodicity))
    if not isinstance(spec, dict):
        err(line, f"{what} takes {{{', '.join(knobs)}}} (each optional)")
        return None
    given: dict[str, Any] = {}
    ok = True
    for key in _keys(spec):
        at = key_line(spec, key, line)
        if key not in knobs:
            err(at, f"{what}: " + _unknown("key", key, knobs))
            ok = False
        elif (problem := (_whole if _kind(Periodicity, key) is int else _number)(spec[key])) is not None:
            err(at, f"{what}: {key} {problem}")
            ok = False
        else:
            given[key] = spec[key]
    return Periodicity(**given) if ok else None


def _sequence(key: str, spec: Any, timespan: Timespan | None, line: int, err: Err) -> Sequence | None:
    what = f"group: {key}"
    if not isinstance(spec, dict):
        err(line, f"{what} takes {GROUP_KEYS[key]}")
        return None
    _check_keys(spec, _SEQUENCE, line, err, what)

    def at(k: str) -> int:
        return key_line(spec, k, line)

    match = None
    if "match" not in spec:
        err(line, f"{what}: missing key 'match' (the events to look for)")
    else:
        match = _selection(key, spec["match"], at("match"), err)
    within = _span(spec["within"], f"{what}: within", at("within"), err) if "within" in spec else None
    count = _bounds(spec["count"], f"{what}: count", at("count"), err) if "count" in spec else Bounds(gte=1)
    if match is None or count is None or ("within" in spec and within is None):
        return None
    return Sequence(match=match, within=within or timespan or Timespan("1d"), count=count)


def _dedupe(rules: list[Rule]) -> RuleSet:
    return RuleSet(tuple(sorted(rules, key=lambda r: (r.priority, r.id))))


def read_rules(paths: Iterable[Path], causes: Causes, examples: bool) -> tuple[list[Rule], list[RuleError]]:
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


def load_rules(extra: Iterable[Path] = ()) -> RuleSet:
    """The shipped rules, then each extra directory's (same id: the extra one wins); their
    examples are left unread (``check_rules`` reads and runs them)."""
    causes = load_causes()
    rules, errors = read_rules([rules_dir()], causes, examples=False)
    errors.extend(uncovered(causes, rules))
    if errors:
        raise errors[0]
    merged = {r.id: r for r in rules}
    for directory in extra:
        more, errs = read_rules([Path(directory)], causes, examples=False)
        if errs:
            raise errs[0]
        merged.update({r.id: r for r in more})
    return _dedupe(list(merged.values()))
