"""Each shipped rule proves itself with the examples in its own file: events it must take
(expect: match) and near misses it must not (expect: no-match), run by the engine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyzer.classify import check_rules, load_rules, parse_rule_file
from analyzer.classify.check import run_example
from analyzer.classify.examples import START, example_events
from analyzer.cli import app
from analyzer.resources import rules_dir
from analyzer.schema import empty_events

RULE_FILES = sorted(p for p in rules_dir().glob("*.yaml") if p.name != "causes.yaml")
RULES = [parse_rule_file(p)[0] for p in RULE_FILES]
CASES = [pytest.param(rule, ex, id=f"{Path(rule.path).name}:{ex.name}") for rule in RULES for ex in rule.examples]


@pytest.mark.parametrize(("rule", "example"), CASES)
def test_rule_example(rule, example):
    assert run_example(rule, example) is None


def test_every_shipped_rule_has_a_match_and_a_no_match_example():
    assert None not in RULES and len(RULES) == len(load_rules().rules)
    lacking = [
        (Path(r.path).name, want)
        for r in RULES
        for want in (True, False)
        if not any(ex.expect is want for ex in r.examples)
    ]
    assert lacking == []


def _with_examples(tmp_path: Path, examples: str, rule: str = "063-brute-force.yaml") -> Path:
    """A copy of a shipped rule with ``examples`` in place of its own."""
    text = (rules_dir() / rule).read_text()
    path = tmp_path / rule
    path.write_text(text[: text.index("\nexamples:\n")] + "\nexamples:\n" + examples)
    return path


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_an_example_that_does_not_do_as_it_expects_is_a_problem_at_its_line(tmp_path):
    path = _with_examples(
        tmp_path,
        "  - name: three are a few\n    expect: match\n"
        "    common: {host: h, user: u, src_ip: 192.0.2.1, action: logon, outcome: failure}\n"
        "    events:\n      - {repeat: 3, every: 1m}\n"
        "  - name: a success\n    expect: match\n    events:\n      - {host: h, action: logon, outcome: success}\n"
        "  - name: six are many\n    expect: no-match\n"
        "    common: {host: h, user: u, src_ip: 192.0.2.1, action: logon, outcome: failure}\n"
        "    events:\n      - {repeat: 6, every: 1m}\n",
    )
    rules, errors = check_rules([path])
    assert [r.id for r in rules] == ["brute-force"]  # the rule itself is sound
    assert [str(e) for e in errors] == [
        f"{path}:{_line(path, 'three are a few')}: example 'three are a few' expects a match, and the rule takes "
        "none of its 3 event(s): its detection selects 3, and its group conditions (or its `when`) rule them all out",
        f"{path}:{_line(path, 'a success')}: example 'a success' expects a match, and the rule takes none of its "
        "1 event(s): its detection selects none",
        f"{path}:{_line(path, 'six are many')}: example 'six are many' expects no match, and the rule takes 6 of "
        "its 6 event(s)",
    ]
    res = CliRunner().invoke(app, ["rules", "check", str(path)])
    assert res.exit_code == 2 and f"{path}:{_line(path, 'a success')}: example 'a success'" in res.output
    assert check_rules([path], examples=False)[1] == []  # read and run only when asked


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("  - name: x\n    expect: maybe\n    events: [{host: h}]\n", "example 'x': expect is match or no-match"),
        ("  - name: x\n    expect: match\n    events: []\n", "example 'x': events is a list of events"),
        ("  - name: x\n    expect: match\n    events: [{usr: root}]\n", "example 'x': unknown column 'usr'"),
        ("  - name: x\n    expect: match\n    events: [{outcome: failed}]\n", "example 'x': outcome is one of success"),
        (
            "  - name: x\n    expect: match\n    events: [{action: 'log{n}', repeat: 2, every: 1m}]\n",
            "action is one of",
        ),
        ("  - name: x\n    expect: match\n    events: [{dst_port: '22'}]\n", "dst_port takes a whole number"),
        ("  - name: x\n    expect: match\n    events: [{user: 7}]\n", "user takes text (quote it)"),
        ("  - name: x\n    expect: match\n    events: [{timestamp: 0}]\n", "an event's time is 'at'"),
        ("  - name: x\n    expect: match\n    events: [{at: soon}]\n", "'at' is a duration after the example's start"),
        ("  - name: x\n    expect: match\n    events: [{repeat: 3}]\n", "repeat takes every"),
        ("  - name: x\n    expect: match\n    events: [{repeat: 0, every: 1m}]\n", "repeat is a number of events"),
        ("  - name: x\n    expect: match\n    events: [{at: [1m, 2m], repeat: 2}]\n", "'at' is a duration (0s"),
        ("  - name: x\n    expect: match\n    profile: {networks: [nowhere]}\n    events: [{}]\n", "profile networks"),
        ("  - name: x\n    expect: match\n    profile: {mood: calm}\n    events: [{}]\n", "profile takes accounts"),
        ("  - name: x\n    expect: match\n    colour: red\n    events: [{}]\n", "example 'x': unknown key 'colour'"),
        ("  - expect: match\n    events: [{}]\n", "an example needs a name"),
        ("  - {name: x, expect: match, events: [{}]}\n  - {name: x, expect: match, events: [{}]}\n", "'x' again"),
    ],
)
def test_bad_examples_are_errors_at_their_line(tmp_path, example, message):
    path = _with_examples(tmp_path, example)
    rule, errors = parse_rule_file(path)
    first = _line(path, "examples:") + 1
    assert rule is None and any(message in str(e) and str(e).startswith(f"{path}:") for e in errors), errors
    assert all(int(str(e)[len(str(path)) + 1 :].split(":")[0]) >= first for e in errors)  # in the examples


def test_examples_is_a_list_of_mappings(tmp_path):
    path = tmp_path / "r.yaml"
    text = (rules_dir() / "063-brute-force.yaml").read_text()
    path.write_text(text[: text.index("\nexamples:\n")] + "\nexamples: {name: x}\n")
    at = _line(path, "examples:")  # the line of the key
    assert [str(e) for e in parse_rule_file(path)[1]] == [
        f"{path}:{at}: examples is a list of {{name, expect, events}}"
    ]
    path.write_text(text[: text.index("\nexamples:\n")] + "\nexamples: [just words]\n")
    assert [str(e) for e in parse_rule_file(path)[1]] == [
        f"{path}:{at}: an example is a mapping of name, expect and events, not 'just words'"
    ]


def test_an_examples_events_are_the_normalized_frame(tmp_path):
    path = _with_examples(
        tmp_path,
        "  - name: x\n    expect: match\n"
        "    common: {host: h, action: logon, outcome: failure, dst_port: 22}\n"
        "    events:\n"
        "      - {user: 'u{n}', src_ip: '192.0.2.{n}', at: 1m, repeat: 3, every: 90s}\n"
        "      - {user: root, at: [0s, 1h], src_ip: null}\n",
    )
    (example,) = parse_rule_file(path)[0].examples
    frame = example_events(example)
    assert [str(d) for d in frame.dtypes] == [str(d) for d in empty_events().dtypes]
    assert frame["user"].astype(object).tolist() == ["u1", "u2", "u3", "root", "root"]
    assert frame["src_ip"].astype(object).tolist()[:3] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert frame["src_ip"].isna().tolist() == [False, False, False, True, True]
    offsets = (frame["timestamp"] - START).dt.total_seconds().tolist()
    assert offsets == [60, 150, 240, 0, 3600] and frame["dst_port"].tolist() == [22] * 5
    with pytest.raises(TypeError):
        example.events[0]["user"] = "x"  # type: ignore[index]


def test_loading_the_rules_leaves_their_examples_unread():
    assert all(r.examples == () for r in load_rules().rules)
    assert sum(len(r.examples) for r in RULES) == len(CASES) >= 2 * len(RULES)


def test_the_profile_of_an_example(tmp_path):
    path = _with_examples(
        tmp_path,
        "  - name: x\n    expect: match\n    profile: {networks: [198.51.100.7/24], accounts: [svc], ports: [2222]}\n"
        "    events: [{}]\n",
    )
    (example,) = parse_rule_file(path)[0].examples
    assert example.profile.networks == ("198.51.100.0/24",) and example.profile.accounts == ("svc",)
    assert example.profile.ports == (2222,) and isinstance(example_events(example), pd.DataFrame)
