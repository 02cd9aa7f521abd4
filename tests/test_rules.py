"""Rule files: strict loading with file:line errors, conditions, vectorized matching, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analyzer.classify import check_rules, evaluate_rule, load_rules, parse_condition
from analyzer.classify.condition import ConditionError
from analyzer.classify.model import Bounds, Group, Timespan, ValueCount
from analyzer.cli import app
from analyzer.schema import conform

FILES = Path(__file__).parent / "files" / "rules"
runner = CliRunner()


def _events(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("category")
    return conform(frame)


EVENTS = _events(
    [
        {
            "service": "ssh",
            "reason": "root-login-refused",
            "user": "root",
            "outcome": "failure",
            "action": "logon",
            "src_ip": "203.0.113.7",
        },
        {
            "service": "ssh",
            "reason": "root-login-refused",
            "user": "ROOT",
            "outcome": "failure",
            "action": "logon",
            "src_ip": "10.1.2.3",
        },
        {
            "service": "ssh",
            "reason": "bad-password",
            "user": "root",
            "outcome": "failure",
            "action": "logon",
            "src_ip": "192.168.1.9",
        },
        {
            "service": "winrm",
            "reason": "root-login-refused",
            "user": "bob",
            "outcome": "failure",
            "action": "invalid-user",
            "src_ip": None,
        },
        {
            "service": "ssh",
            "reason": None,
            "user": "alice",
            "outcome": "success",
            "action": "logon",
            "src_ip": "203.0.113.8",
        },
    ]
)


def test_good_rules_load_and_match():
    rules, errors = check_rules([FILES / "good"])
    assert not errors
    by_id = {r.id: r for r in rules}
    assert list(evaluate_rule(EVENTS, by_id["root-refused-by-policy"])) == [True, True, False, False, False]
    # failures not from 10/8 or 192.168/16 (a missing address is outside both)
    assert list(evaluate_rule(EVENTS, by_id["spray-from-outside"])) == [True, False, False, True, False]
    group = by_id["spray-from-outside"].group
    assert group == Group(
        by=("host", "src_ip"), timespan=Timespan("10m"), value_count=ValueCount("user", Bounds(gte=5))
    )


def test_every_problem_is_reported_with_file_and_line():
    _, errors = check_rules([FILES / "broken"])
    text = "\n".join(str(e) for e in errors)
    bad = FILES / "broken" / "bad.yaml"
    assert f"{bad}:14: unknown key 'color'" in text
    assert f"{bad}:2: unknown cause 'not-a-cause'; one of: " in text
    assert f"{bad}:5: priority must be a whole number" in text
    assert f"{bad}:8: selection 'sel', 'usr': unknown field 'usr' (did you mean 'user'?)" in text
    assert f"{bad}:9: selection 'sel', 'src_port|contains': contains works on text fields, and src_port is a" in text
    assert f"{bad}:10: selection 'sel', 'reason|frobnicate': unknown modifier 'frobnicate'" in text
    assert f"{bad}:12: selection 'other', 'logon_type|gt': gt needs a number, not 'three'" in text
    assert f"{bad}:13: condition: expected ')'" in text
    dup = FILES / "broken" / "dup.yaml"
    assert f"{dup}:8: duplicate key 'user' (first at line 7)" in text
    group = FILES / "broken" / "group.yaml"
    assert f"{group}:7: 'nothing_*' in the condition matches no selection" in text
    assert f"{group}:12: group: unknown key 'colour'" in text
    assert f"{group}:9: group: group-by: unknown column 'nonsense'" in text
    assert (
        f"{group}:10: group: timespan is a number and a unit (s, m, h, d, w) such as 15m or 6h, not '10 minutes'"
        in text
    )
    assert f"{group}:11: group: count: unknown key 'about'; one of: gte, gt, lte, lt" in text
    lines = [int(str(e).split(":")[1]) for e in errors if str(e).startswith(str(bad))]
    assert lines == sorted(lines)  # a file's problems in the order of their lines


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("a and b", [False, False, False, True]),
        ("a or b", [False, True, True, True]),
        ("not a and b", [False, True, False, False]),
        ("not (a and b)", [True, True, True, False]),
        ("1 of sel_*", [False, True, True, True]),
        ("all of sel_*", [False, False, False, True]),
        ("all of them", [False, False, False, True]),
    ],
)
def test_conditions(text, want):
    a = np.array([False, False, True, True])
    b = np.array([False, True, False, True])
    masks = {"a": a, "b": b, "sel_a": a, "sel_b": b}
    if "them" in text:
        masks = {"sel_a": a, "sel_b": b}
    assert list(parse_condition(text).evaluate(masks)) == want


@pytest.mark.parametrize("bad", ["a and", "(a or b", "a b", "2 of sel_*", "", "a && b"])
def test_bad_conditions(bad):
    with pytest.raises(ConditionError):
        parse_condition(bad)


def test_extra_rules_directory_overrides_by_id(tmp_path):
    shipped = load_rules()
    override = tmp_path / "mine"
    override.mkdir()
    (override / "x.yaml").write_text(
        (FILES / "good" / "root-refused.yaml").read_text().replace("priority: 30", "priority: 7")
    )
    merged = load_rules([override])
    assert merged.by_id()["root-refused-by-policy"].priority == 7
    assert len(merged.rules) == len({r.id for r in shipped.rules} | {"root-refused-by-policy"})


def test_rules_cli():
    res = runner.invoke(app, ["rules", "check", str(FILES / "broken")])
    assert res.exit_code == 2
    assert "bad.yaml:14: unknown key 'color'" in res.output
    res = runner.invoke(app, ["rules", "check", str(FILES / "good")])
    assert res.exit_code == 0 and "2 rule(s) valid, 0 problem(s)" in res.output
    res = runner.invoke(app, ["rules", "list", "--rules", str(FILES / "good")])
    assert res.exit_code == 0 and "root-refused-by-policy" in res.output and "password-spray" in res.output
    res = runner.invoke(app, ["rules", "check"])  # the shipped rules
    assert res.exit_code == 0


def _rule_file(tmp_path: Path, group: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(
        "id: r\ncause: brute-force\nverdict: attack\nconfidence: high\n"
        "detection:\n  failed: {outcome: failure}\n  condition: failed\n" + group
    )
    return path


def test_group_conditions_are_frozen_dataclasses(tmp_path):
    import dataclasses

    from analyzer.classify import parse_rule_file
    from analyzer.classify.model import Sequence

    rule, errors = parse_rule_file(
        _rule_file(
            tmp_path,
            "group:\n  group-by: [host, user]\n  timespan: 30m\n  count: {lte: 3}\n"
            "  followed_by: {match: {outcome: success}}\n",
        )
    )
    assert not errors
    seq = rule.group.followed_by
    assert isinstance(seq, Sequence) and seq.within == Timespan("30m")  # the group's timespan by default
    assert seq.count == Bounds(gte=1) and rule.group.count == Bounds(lte=3) and not rule.group.count.lower
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.group.by = ()  # type: ignore[misc]
    assert rule.group.keeps_hosts_apart()


@pytest.mark.parametrize(
    ("group", "apart"),
    [
        ("group:\n  host_role: [linux]\n", True),  # per event
        ("group:\n  group-by: [user]\n  count: {gte: 3}\n", False),
        ("group:\n  group-by: [host, src_ip]\n  value_count: {field: user, gte: 5}\n", True),
        ("group:\n  group-by: [host, src_ip]\n  value_count: {field: user, group-by: [src_ip], gte: 5}\n", False),
    ],
)
def test_which_groups_keep_hosts_apart(tmp_path, group, apart):
    from analyzer.classify import parse_rule_file

    rule, errors = parse_rule_file(_rule_file(tmp_path, group))
    assert not errors and rule.group.keeps_hosts_apart() is apart


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("group:\n  count: {gte: many}\n", "group: count: gte is a whole number ≥ 0, not 'many'"),
        (
            "group:\n  value_count: {field: user, group-by: [nonsense], gte: 2}\n",
            "value_count: group-by: unknown column",
        ),
        ("group:\n  periodicity: {max_cv: small}\n", "group: periodicity: max_cv is a number ≥ 0, not 'small'"),
        ("group:\n  followed_by: {match: {usr: x}}\n", "unknown field 'usr'"),
        ("group: [host]\n", "group must be a mapping"),
    ],
)
def test_bad_group_conditions(tmp_path, group, message):
    from analyzer.classify import parse_rule_file

    rule, errors = parse_rule_file(_rule_file(tmp_path, group))
    assert rule is None and any(message in str(e) and str(e).startswith(f"{tmp_path / 'r.yaml'}:") for e in errors)
