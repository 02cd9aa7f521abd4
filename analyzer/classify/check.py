"""`authtriage rules check`: every rule file read, the causes checked against the rules, and
each rule's examples run through the classification engine as ``analyze`` runs it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import RuleError
from .causes import Causes, causes_path, parse_causes, uncovered
from .engine import classify
from .examples import Example, example_events
from .load import RuleSet, read_rules
from .match import evaluate_rule
from .model import Rule
from .roles import host_roles

__all__ = ["check_rules", "run_example"]


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
    rules, errs = read_rules(paths, causes, examples)
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


def run_example(rule: Rule, example: Example) -> str | None:
    """Classify the example's events with ``rule`` alone; what is wrong (None: as expected)."""
    events = example_events(example)
    roles = {h["name"]: h["role"] for h in host_roles(events)}
    taken = int((classify(events, RuleSet((rule,)), example.profile, roles).rule == rule.id).sum())
    n = len(events)
    if example.expect and not taken:
        selected = int(evaluate_rule(events, rule, example.profile.variables()).sum())
        why = (
            "its detection selects none"
            if not selected
            else f"its detection selects {selected}, and its group conditions (or its `when`) rule them all out"
        )
        return f"example {example.name!r} expects a match, and the rule takes none of its {n} event(s): {why}"
    if not example.expect and taken:
        return f"example {example.name!r} expects no match, and the rule takes {taken} of its {n} event(s)"
    return None
