"""`authtriage rules check`: every value checked, every problem at the line of its key or
value, a suggestion for a typo, all of a file's problems reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer._yaml import item_line, key_line, line_of, load_yaml
from analyzer.classify import check_rules, parse_rule_file
from analyzer.classify.model import Bounds, Periodicity
from analyzer.cli import app

# a sound rule; each case below changes one thing (lines numbered for the expectations)
BASE = """\
id: r
title: many failures
cause: brute-force
confidence: high
priority: 63
detection:
  failed:
    outcome: failure
    action: [logon, invalid-user]
  condition: failed
group:
  group-by: [host, src_ip]
  timespan: 10m
  count: {gte: 5}
"""
OUTCOMES = "one of: success, failure, blocked, info"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def _edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def test_the_base_rule_is_sound(tmp_path):
    rule, errors = parse_rule_file(_write(tmp_path, BASE))
    assert errors == [] and rule.id == "r" and rule.group.count == Bounds(gte=5)


BAD = [
    # the three
    pytest.param(
        _edit("outcome: failure", "outcome: failur"),
        8,
        f"selection 'failed', 'outcome': unknown outcome 'failur' (did you mean 'failure'?); {OUTCOMES}",
        id="outcome-typo",
    ),
    pytest.param(
        _edit("action: [logon, invalid-user]", "action: [logn, invalid-user]"),
        9,
        "selection 'failed', 'action': unknown action 'logn' (did you mean 'logon'?); one of: logon, invalid-user,",
        id="action-typo",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gte: five}"),
        14,
        "group: count: gte is a whole number ≥ 0, not 'five'",
        id="count-as-text",
    ),
    # missing keys: at the line of the mapping that lacks them
    pytest.param(_edit("cause: brute-force\n", ""), 1, "missing key 'cause'", id="missing-cause"),
    pytest.param(_edit("confidence: high\n", ""), 1, "missing key 'confidence'", id="missing-confidence"),
    pytest.param(
        _edit("  condition: failed\n", ""),
        6,
        "detection: missing key 'condition' (e.g. 'selection and not filter')",
        id="missing-condition",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "value_count: {gte: 5}"),
        14,
        "group: value_count: missing key 'field'",
        id="missing-value-count-field",
    ),
    pytest.param(
        BASE + "  followed_by:\n    within: 1h\n",
        15,
        "group: followed_by: missing key 'match'",
        id="missing-sequence-match",
    ),
    # top-level keys: each at its own line
    pytest.param(
        _edit("priority: 63", "priorty: 63"),
        5,
        "unknown key 'priorty' (did you mean 'priority'?); one of: id, title, description, cause,",
        id="top-level-typo",
    ),
    pytest.param(
        _edit("cause: brute-force", "cause: brute-forse"),
        3,
        "unknown cause 'brute-forse' (did you mean 'brute-force'?)",
        id="cause-typo",
    ),
    pytest.param(
        _edit("confidence: high", "confidence: hihg"),
        4,
        "unknown confidence 'hihg' (did you mean 'high'?)",
        id="confidence-typo",
    ),
    pytest.param(
        _edit("confidence: high", "verdict: atack\nconfidence: high"),
        4,
        "unknown verdict 'atack' (did you mean 'attack'?)",
        id="verdict-typo",
    ),
    pytest.param(
        _edit("priority: 63", "priority: true"), 5, "priority must be a whole number, not True", id="priority-bool"
    ),
    pytest.param(_edit("title: many failures", "title: [a, b]"), 2, "title is text, not ['a', 'b']", id="title-list"),
    pytest.param(_edit("id: r", "id: 7"), 1, "id is a name (text), not 7", id="id-number"),
    pytest.param(
        BASE + "when: {platform_networks: configure}\n",
        15,
        "when: unknown platform_networks 'configure' (did you mean 'configured'?); one of: configured, unset",
        id="when-typo",
    ),
    # selection values
    pytest.param(
        _edit("action: [logon, invalid-user]", "action:\n      - logon\n      - invalid-usr"),
        11,
        "selection 'failed', 'action': unknown action 'invalid-usr' (did you mean 'invalid-user'?)",
        id="block-list-item-at-its-line",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: Failure"),
        8,
        f"selection 'failed', 'outcome': unknown outcome 'Failure' (did you mean 'failure'?); {OUTCOMES}",
        id="exact-is-case-sensitive",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome|i: FAILUR"),
        8,
        f"selection 'failed', 'outcome|i': unknown outcome 'FAILUR' (did you mean 'failure'?); {OUTCOMES}",
        id="case-insensitive-typo",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: failure\n    reason|startswith: acount"),
        9,
        "selection 'failed', 'reason|startswith': startswith 'acount' matches no reason (one of: unknown-user,",
        id="text-test-fits-no-value",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome|re: '^fail(ed)$'"),
        8,
        f"selection 'failed', 'outcome|re': re '^fail(ed)$' matches no outcome ({OUTCOMES})",
        id="regex-fits-no-value",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: failure\n    user|i: $platfrom_accounts"),
        9,
        "selection 'failed', 'user|i': unknown variable '$platfrom_accounts' (did you mean '$platform_accounts'?)",
        id="variable-typo",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: failure\n    event_id: four"),
        9,
        "selection 'failed', 'event_id': event_id is a whole number, not 'four'",
        id="number-column-text",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: failure\n    dst_port: [22, 22.5]"),
        9,
        "selection 'failed', 'dst_port': dst_port is a whole number, not 22.5",
        id="number-column-fraction",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: []"),
        8,
        "selection 'failed', 'outcome': an empty list matches no event",
        id="empty-list",
    ),
    pytest.param(
        _edit("outcome: failure", "outcome: failure\n    logon_type|gte: true"),
        9,
        "selection 'failed', 'logon_type|gte': gte needs a number, not True",
        id="bool-as-number",
    ),
    # group conditions: types, each at the line of its key (or list item)
    pytest.param(
        _edit("group-by: [host, src_ip]", "group-by: [host, 5]"),
        12,
        "group: group-by: unknown column 5; one of: host,",
        id="group-by-number",
    ),
    pytest.param(
        _edit("group-by: [host, src_ip]", "group-by: host"),
        12,
        "group: group-by is a list of event columns, not 'host'",
        id="group-by-not-a-list",
    ),
    pytest.param(
        _edit("group-by: [host, src_ip]", "group-by:\n    - host\n    - src-ip"),
        14,
        "group: group-by: unknown column 'src-ip' (did you mean 'src_ip'?)",
        id="group-by-item-at-its-line",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gte: true}"),
        14,
        "group: count: gte is a whole number ≥ 0, not True",
        id="bool-as-count",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count:\n    gte: 2.5"),
        15,
        "group: count: gte is a whole number ≥ 0, not 2.5",
        id="float-count-at-its-key",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gte: -1}"),
        14,
        "group: count: gte is a whole number ≥ 0, not -1",
        id="negative-count",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gte: 5, lte: 3}"),
        14,
        "group: count: no count is gte 5, lte 3",
        id="empty-range",
    ),
    pytest.param(_edit("count: {gte: 5}", "count: 5"), 14, "group: count takes {gte|gt|lte|lt: N}", id="count-scalar"),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gtе: 5}"),  # a Cyrillic e
        14,
        "group: count: unknown key 'gtе'",
        id="count-unknown-bound",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "value_count: {field: usr, gte: 5}"),
        14,
        "group: value_count: unknown field 'usr' (did you mean 'user'?)",
        id="value-count-field",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "value_count:\n    field: user\n    gte: '5'"),
        16,
        "group: value_count: gte is a whole number ≥ 0, not '5'",
        id="value-count-text",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "value_count: {field: user, gte: 5, amoung: {outcome: failure}}"),
        14,
        "group: value_count: unknown key 'amoung' (did you mean 'among'?)",
        id="value-count-key-typo",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "value_count: {field: user, gte: 5, among: {outcome: faliure}}"),
        14,
        "selection 'among', 'outcome': unknown outcome 'faliure' (did you mean 'failure'?)",
        id="value-count-among-value",
    ),
    pytest.param(
        _edit("timespan: 10m", "timespan: 10 minutes"),
        13,
        "group: timespan is a number and a unit (s, m, h, d, w) such as 15m or 6h, not '10 minutes'",
        id="timespan-words",
    ),
    pytest.param(
        _edit("timespan: 10m", "timespan: 0s"), 13, "group: timespan is longer than 0s, not '0s'", id="timespan-zero"
    ),
    pytest.param(
        _edit("timespan: 10m", "timespan: 600"), 13, "group: timespan is a number and a unit", id="timespan-number"
    ),
    pytest.param(
        _edit("count: {gte: 5}", "periodicity: {max_cv: 0.2, min_beats: '4'}"),
        14,
        "group: periodicity: min_beats is a whole number ≥ 0, not '4'",
        id="periodicity-text",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "periodicity:\n    max_cv: 0.2\n    min_beat: 4"),
        16,
        "group: periodicity: unknown key 'min_beat' (did you mean 'min_beats'?)",
        id="periodicity-key-typo",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "periodicity: {max_cv: .nan}"),
        14,
        "group: periodicity: max_cv is a number ≥ 0, not nan",
        id="periodicity-nan",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "host_role: [domain-controler]"),
        14,
        "group: host_role: unknown role 'domain-controler' (did you mean 'domain-controller'?)",
        id="role-typo",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "host_role: linux"),
        14,
        "group: host_role is a list of roles among domain-controller, windows, linux, unknown, not 'linux'",
        id="role-not-a-list",
    ),
    pytest.param(
        BASE + "  followed_by:\n    match:\n      outcome: sucess\n",
        17,
        "selection 'followed_by', 'outcome': unknown outcome 'sucess' (did you mean 'success'?)",
        id="sequence-match-value",
    ),
    pytest.param(
        BASE + "  preceded_by:\n    match: {outcome: success}\n    count: {gte: many}\n",
        17,
        "group: preceded_by: count: gte is a whole number ≥ 0, not 'many'",
        id="sequence-count",
    ),
    pytest.param(
        BASE + "  preceded_by:\n    match: {outcome: success}\n    whithin: 1h\n",
        17,
        "group: preceded_by: unknown key 'whithin' (did you mean 'within'?)",
        id="sequence-key-typo",
    ),
    pytest.param(
        _edit("count: {gte: 5}", "count: {gte: 5}\n  colour: blue"),
        15,
        "group: unknown key 'colour'; one of: group-by, timespan,",
        id="group-key",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_a_bad_value_is_one_problem_at_its_line(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    rule, errors = parse_rule_file(path)
    assert rule is None
    assert len(errors) == 1 and str(errors[0]).startswith(f"{path}:{line}: {message}"), errors


GOOD = [
    pytest.param(_edit("outcome: failure", "outcome|i: FAILURE"), id="case-insensitive"),
    pytest.param(_edit("outcome: failure", "outcome: [failure, null]"), id="null"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    user|i: [ROOT, $platform_accounts]"), id="variable"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    reason|re: '^account-'"), id="regex"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    reason|contains|i: LOCK"), id="contains"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    event_id: [4625, '4771']"), id="numbers"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    dst_port: $probe_ports"), id="number-variable"),
    pytest.param(_edit("outcome: failure", "outcome: failure\n    user|startswith: adm"), id="free-text"),
    pytest.param(_edit("count: {gte: 5}", "count: {lte: 0}"), id="zero"),
    pytest.param(_edit("count: {gte: 5}", "periodicity: {max_cv: 0.3, min_beats: 4, min_interval: 300}"), id="period"),
    pytest.param(_edit("count: {gte: 5}", "periodicity: {}\n  host_role: [linux, windows]"), id="roles"),
]


@pytest.mark.parametrize("text", GOOD)
def test_good_values_load(tmp_path, text):
    rule, errors = parse_rule_file(_write(tmp_path, text))
    assert errors == [] and rule is not None


def test_periodicity_takes_its_types_from_the_dataclass(tmp_path):
    rule, errors = parse_rule_file(
        _write(tmp_path, _edit("count: {gte: 5}", "periodicity: {max_cv: 1, min_beats: 3, min_interval: 90.5}"))
    )
    assert not errors and rule.group.periodicity == Periodicity(max_cv=1, min_beats=3, min_interval=90.5)


def test_every_problem_of_a_file_is_reported_in_line_order(tmp_path):
    text = (
        BASE.replace("cause: brute-force\n", "")
        .replace("outcome: failure", "outcome: failur")
        .replace("[logon, invalid-user]", "[logn, invalid-user]")
        .replace("{gte: 5}", "{gte: five}")
        .replace("priority: 63", "priorty: 63")
        .replace("group-by: [host, src_ip]", "group-by: [host, true]")
    )
    path = _write(tmp_path, text)
    _, errors = check_rules([path])
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:{n}" for n in (1, 4, 7, 8, 11, 13)]
    assert [str(e).split(": ", 1)[1].split(" (")[0].split(";")[0] for e in errors] == [
        "missing key 'cause'",
        "unknown key 'priorty'",
        "selection 'failed', 'outcome': unknown outcome 'failur'",
        "selection 'failed', 'action': unknown action 'logn'",
        "group: group-by: unknown column True",
        "group: count: gte is a whole number ≥ 0, not 'five'",
    ]


def test_cli_says_every_problem_and_exits_2(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.yaml").write_text(_edit("outcome: failure", "outcome: failur"))
    (bad / "b.yaml").write_text(_edit("count: {gte: 5}", "count: {gte: five}").replace("id: r", "id: s"))
    (bad / "c.yaml").write_text(BASE.replace("id: r", "id: t"))
    res = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert res.exit_code == 2
    assert f"{bad / 'a.yaml'}:8: selection 'failed', 'outcome': unknown outcome 'failur'" in res.output
    assert f"{bad / 'b.yaml'}:14: group: count: gte is a whole number ≥ 0, not 'five'" in res.output
    assert "1 rule(s) valid, 2 problem(s)" in res.output
    (bad / "a.yaml").unlink()
    (bad / "b.yaml").unlink()
    res = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert res.exit_code == 0 and "1 rule(s) valid, 0 problem(s)" in res.output


def test_the_yaml_knows_the_line_of_each_key_and_item(tmp_path):
    doc = load_yaml(tmp_path / "x.yaml", "a: 1\nb:\n  c: [x,\n    y]\n  d:\n    - p\n    - {q: 1}\n")
    assert (line_of(doc), key_line(doc, "b"), key_line(doc["b"], "d")) == (1, 2, 5)
    assert (item_line(doc["b"]["c"], 0), item_line(doc["b"]["c"], 1), item_line(doc["b"]["d"], 1)) == (3, 4, 7)
    assert key_line(doc["b"]["d"][1], "q") == 7 and key_line(doc, "missing", 9) == 1 and key_line({}, "x", 9) == 9
    assert item_line(["plain"], 0, 5) == 5 and item_line(doc["b"]["c"], 2, 5) == 5
    assert doc["b"]["c"] == ["x", "y"] and doc["a"] == 1  # still plain lists and mappings to compare


def test_bounds_admit_some_count():
    assert Bounds(gte=3, lte=3).admits_some() and Bounds(lte=0).admits_some() and Bounds(gt=0).admits_some()
    assert not Bounds(gt=3, lt=4).admits_some() and not Bounds(lt=0).admits_some()
    assert not Bounds(gte=5, lte=3).admits_some()
