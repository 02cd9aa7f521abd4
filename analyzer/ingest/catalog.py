"""The Linux message catalog: a data file of patterns, loaded once and validated.

The file (``analyzer/data/linux_messages.yaml``) says, for each message form, which
programs log it, its first word, an RE2 regex whose named groups fill event columns,
fixed values, and a sample that the pattern must match. Loading checks all of it and
reports problems as ``file:line: message``; a broken catalog never half-loads. What a
loaded catalog holds (its families and patterns) is defined in :mod:`.patterns`; a
pattern's sample is checked by running it through the matcher (:mod:`.linux`).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._yaml import clean, load_yaml
from ..errors import RuleError
from ..schema import ENUMS
from .linux import match_messages
from .patterns import FILLABLE, SETTABLE, Catalog, Family, Fast, Pattern

__all__ = ["Catalog", "Family", "Fast", "Pattern", "load_catalog", "fast_disagreement", "FILLABLE"]

ROLES = ("attempt", "enrich", "ignore")
_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")


def _check_value(column: str, value: str) -> str | None:
    enum = ENUMS.get(column)
    if enum is not None and value not in {e.value for e in enum}:
        return f"{column} value {value!r} is not one of {sorted(e.value for e in enum)}"
    return None


def parse_catalog(path: Path, check_samples: bool = True) -> tuple[Catalog | None, list[RuleError]]:
    """Parse and validate; return the catalog (or None) and every error found.

    ``check_samples`` also runs every regex (RE2) on its sample; the shipped catalog is
    checked so by the tests, and loads without it at run time.
    """
    errors: list[RuleError] = []
    try:
        doc = load_yaml(path)
    except RuleError as exc:
        return None, [exc]

    def err(line: int, msg: str) -> None:
        errors.append(RuleError(msg, source=f"{path}:{line}"))

    families: dict[str, Family] = {}
    for name, spec in (doc.get("families") or {}).items():
        if name == "__line__":
            continue
        line = spec.get("__line__", 0)
        progs = spec.get("programs")
        flt = spec.get("line_filter")
        if not isinstance(progs, list) or not progs or not isinstance(flt, str):
            err(line, f"family {name!r} needs programs (list) and line_filter (string)")
            continue
        families[name] = Family(name=name, programs=tuple(progs), line_filter=flt)

    patterns: list[Pattern] = []
    ids: set[str] = set()
    known = {"id", "family", "first", "regex", "set", "map", "role", "sample", "fast", "__line__"}
    for spec in doc.get("patterns") or []:
        line = spec.get("__line__", 0)
        pid = spec.get("id")
        unknown = set(spec) - known
        if unknown:
            err(line, f"pattern {pid!r}: unknown keys {sorted(unknown)}")
        if not isinstance(pid, str) or not pid:
            err(line, "pattern without an id")
            continue
        if pid in ids:
            err(line, f"duplicate pattern id {pid!r}")
        ids.add(pid)
        fam = spec.get("family")
        if fam not in families:
            err(line, f"pattern {pid!r}: unknown family {fam!r}")
        role = spec.get("role", "attempt")
        if role not in ROLES:
            err(line, f"pattern {pid!r}: role must be one of {ROLES}")
        regex = spec.get("regex")
        if not isinstance(regex, str) or not regex.startswith("^") and regex != ".":
            err(line, f"pattern {pid!r}: regex must be a string anchored with ^")
            continue
        groups = tuple(_GROUP.findall(regex))
        sets = clean(spec.get("set") or {})
        for k, v in sets.items():
            if k not in SETTABLE:
                err(line, f"pattern {pid!r}: set of {k!r} is not allowed (one of {SETTABLE})")
            elif (problem := _check_value(k, str(v))) is not None:
                err(line, f"pattern {pid!r}: {problem}")
        maps = {col: m if isinstance(m, list) else [m] for col, m in clean(spec.get("map") or {}).items()}
        for col, specs in maps.items():
            if col not in SETTABLE:
                err(line, f"pattern {pid!r}: map of {col!r} is not allowed")
                continue
            for m in specs:
                if not isinstance(m, dict) or m.get("group") not in groups:
                    err(line, f"pattern {pid!r}: map {col!r} must name a group of the regex")
                    continue
                for v in [*(m.get("values") or {}).values(), m.get("default")]:
                    if v is not None and (problem := _check_value(col, str(v))) is not None:
                        err(line, f"pattern {pid!r}: map {col!r}: {problem}")
        first = spec.get("first")
        if not isinstance(first, list) or not first:
            err(line, f"pattern {pid!r}: first must be a non-empty list of words")
            first = ["*"]
        fast, problems = _parse_fast(spec.get("fast"), groups)
        for problem in problems:
            err(line, f"pattern {pid!r}: {problem}")
        pat = Pattern(
            id=pid,
            family=fam,
            first=tuple(str(w) for w in first),
            regex=regex,
            set={k: str(v) for k, v in sets.items()},
            map=maps,
            role=role,
            groups=groups,
            line=line,
            fast=fast,
        )
        problem = _check_sample(pat, clean(spec.get("sample"))) if check_samples else None
        if problem:
            err(line, f"pattern {pid!r}: {problem}")
        patterns.append(pat)
    skips = doc.get("skip_lines") or []
    if not isinstance(skips, list) or not all(isinstance(x, str) for x in skips):
        err(1, "skip_lines must be a list of regexes")
        skips = []
    for rx in skips:
        try:
            pc.match_substring_regex(pa.array([""]), rx)
        except pa.ArrowInvalid as exc:
            err(1, f"skip_lines regex {rx!r} does not compile in RE2: {exc}")
    if errors:
        return None, errors
    return Catalog(families=families, patterns=tuple(patterns), path=str(path), skip_lines=tuple(skips)), []


MAX_FAST_GROUPS = 4  # RE2's one-pass engine takes at most this many groups


def _parse_fast(spec: Any, groups: tuple[str, ...]) -> tuple[tuple[Fast, ...], list[str]]:
    """A pattern's ``fast`` list: regexes, or ``{regex: ..., fixed: {group: value}}``."""
    if spec is None:
        return (), []
    if not isinstance(spec, list) or not groups:
        return (), ["fast must be a list, on a pattern whose regex has groups"]
    out: list[Fast] = []
    problems: list[str] = []
    for item in clean(spec):
        rx, fixed = (item, {}) if isinstance(item, str) else (item.get("regex"), item.get("fixed") or {})
        if not isinstance(rx, str) or not rx.startswith("^") or not isinstance(fixed, dict):
            problems.append("a fast regex must be a string anchored with ^ (fixed: a mapping)")
            continue
        mine = tuple(_GROUP.findall(rx))
        try:  # (Arrow refuses unnamed groups)
            pc.extract_regex(pa.array([""]), rx) if mine else pc.match_substring_regex(pa.array([""]), rx)
        except pa.ArrowInvalid as exc:
            problems.append(f"fast regex {rx!r} does not compile in RE2: {exc}")
            continue
        fixed = {str(k): str(v) for k, v in fixed.items()}
        if not mine or len(mine) > MAX_FAST_GROUPS or set(mine) - set(groups):
            problems.append(
                f"fast regex {rx!r} must have 1 to {MAX_FAST_GROUPS} groups, all of them groups of the pattern's regex"
            )
        elif set(fixed) - set(groups) or set(fixed) & set(mine):
            problems.append(f"fast regex {rx!r}: fixed names groups of the pattern's regex that it does not capture")
        else:
            out.append(Fast(regex=rx, groups=mine, fixed=fixed))
    return tuple(out), problems


def fast_disagreement(pat: Pattern, messages: list[str]) -> str | None:
    """The first message where a fast regex of ``pat`` matches but captures other than the
    pattern's own regex would (a group it does not capture counts as empty), or None."""
    if not pat.fast or not messages:
        return None
    arr = pa.array(messages, pa.string())
    general = pc.extract_regex(arr, pat.regex)
    taken = np.zeros(len(messages), dtype=bool)
    for fv in pat.fast:
        found = pc.extract_regex(arr, fv.regex)
        ok = np.asarray(found.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & ~taken
        for i in np.flatnonzero(ok).tolist():
            if not general[i].is_valid:
                return f"fast regex {fv.regex!r} matches {messages[i]!r}, which the pattern's regex does not"
            want = general[i].as_py()
            have = {g: found[i].as_py().get(g, "") for g in fv.groups}
            have = {g: have.get(g, fv.fixed.get(g, "")) for g in pat.groups}
            if have != want:
                return f"fast regex {fv.regex!r} captures {have} from {messages[i]!r}, the pattern's regex {want}"
        taken |= ok
    return None


def _check_sample(pat: Pattern, sample: Any) -> str | None:
    """The regex must compile in RE2 and match its sample with the values it promises."""
    if not isinstance(sample, dict) or not isinstance(sample.get("message"), str):
        return "needs a sample: {message: ..., yields: {...}}"
    arr = pa.array([sample["message"]], pa.string())
    try:
        if pat.groups:
            got = pc.extract_regex(arr, pat.regex)
            matched = got.is_valid()[0].as_py()
        else:
            matched = pc.match_substring_regex(arr, pat.regex)[0].as_py()
    except pa.ArrowInvalid as exc:
        return f"regex does not compile in RE2: {exc}"
    if not matched:
        return f"regex does not match its sample {sample['message']!r}"
    if (problem := fast_disagreement(pat, [sample["message"], *(clean(sample.get("also")) or [])])) is not None:
        return problem
    result = match_messages(
        pa.array(["*"]), arr, catalog=Catalog({pat.family: Family(pat.family, ("*",), ".")}, (pat,), "")
    )
    for col, want in (sample.get("yields") or {}).items():
        if col == "__line__":
            continue
        have = result[col].iloc[0] if col in result.columns and len(result) else None
        have = None if pd.isna(have) else have
        if have is None or str(have) != str(want):
            return f"sample yields {col}={have!r}, expected {want!r}"
    return None


def default_catalog_path() -> Path:
    return Path(str(resources.files("analyzer") / "data" / "linux_messages.yaml"))


@cache
def load_catalog(path: str | None = None) -> Catalog:
    """Load (once) and validate the catalog; raise the first error.

    The shipped catalog skips the sample run (the tests do it); another file gets it.
    """
    cat, errors = parse_catalog(Path(path) if path else default_catalog_path(), check_samples=path is not None)
    if errors:
        raise errors[0]
    assert cat is not None
    return cat
