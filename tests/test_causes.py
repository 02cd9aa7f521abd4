"""The causes as data (rules/causes.yaml): loading, its file:line errors, what derives from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analyzer.classify import check_rules, load_causes, load_rules, parse_causes, parse_rule_file
from analyzer.classify.causes import causes_path, main, schema_text, schema_with_enums, uncovered
from analyzer.errors import RuleError
from analyzer.resources import rules_dir, templates_dir

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "reports" / "report.schema.json"
TEMPLATES = templates_dir() / "causes"
GOOD = Path(__file__).parent / "files" / "rules" / "good"


def _line(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that contains ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _causes_file(tmp_path: Path, extra: str = "", drop: str | None = None) -> Path:
    """A copy of the shipped causes file, one cause left out and ``extra`` text appended."""
    text = causes_path().read_text()
    if drop is not None:
        start = text.index(f"  - id: {drop}\n")
        end = text.find("  - id: ", start + 1)
        text = text[:start] + (text[end:] if end >= 0 else "")
    path = tmp_path / "causes.yaml"
    path.write_text(text + extra)
    return path


def test_the_shipped_causes_load_in_order_each_with_its_template():
    causes = load_causes()
    assert causes.ids[0] == "probe-dc-account" and causes.ids[-1] == "unclassified" and len(causes) == 16
    assert {c.id for c in causes} == {p.stem for p in TEMPLATES.glob("*.j2")}
    assert causes["success-after-attack"].rank < min(c.rank for c in causes if c.id != "success-after-attack")
    assert causes["unclassified"].findings_by == ("reason",) and causes["brute-force"].findings_by == ("src_ip",)
    assert causes["scanning"].rank > max(c.rank for c in causes if c.id != "scanning")  # after every attack
    assert [c.cause for c in causes.campaigns][0] == "success-after-attack" and causes.campaigns[0].succeeded
    assert causes["stale-credentials"].transition and not causes["brute-force"].transition
    assert causes["probe-ok"].platform_probe and not causes["probe-service-down"].platform_probe
    assert causes.location("probe-ok") == f"{causes_path()}:{_line(causes_path(), 'id: probe-ok')}"


def test_each_rule_takes_its_causes_verdict():
    causes = load_causes()
    rules = load_rules().rules
    assert {r.cause for r in rules} == set(causes.ids)
    assert all(r.verdict == causes[r.cause].verdict for r in rules)


def test_the_checked_in_schema_enums_are_the_causes_and_vocabularies():
    """If this fails: python -m analyzer.classify.causes reports/report.schema.json"""
    text = SCHEMA.read_text()
    schema = json.loads(text)
    assert schema_text(schema_with_enums(schema, load_causes())) == text
    assert schema["properties"]["findings"]["items"]["properties"]["cause"]["enum"] == list(load_causes().ids)


def test_the_schema_enums_are_regenerated_in_place(tmp_path):
    schema = json.loads(SCHEMA.read_text())
    schema["properties"]["findings"]["items"]["properties"]["cause"]["enum"] = ["stale"]
    copy = tmp_path / "schema.json"
    copy.write_text(json.dumps(schema))
    assert main([str(copy)]) == 0
    assert copy.read_text() == SCHEMA.read_text()
    assert main([]) == 2


def test_a_cause_without_a_template_is_an_error_at_its_line(tmp_path):
    path = _causes_file(
        tmp_path,
        "  - id: made-up\n    verdict: attack\n    findings_by: [user]\n"
        "    transition: false\n    platform_probe: false\n    rank: 1\n",
    )
    causes, errors = parse_causes(path)
    assert [str(e) for e in errors] == [
        f"{path}:{_line(path, 'id: made-up')}: cause 'made-up' has no explanation template ({TEMPLATES / 'made-up.j2'})"
    ]
    assert "made-up" not in causes and "brute-force" in causes  # the good ones are kept


def test_a_template_for_no_cause_is_an_error(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "forgotten.j2").write_text("{% block title %}x{% endblock %}")
    _, errors = parse_causes(causes_path(), templates)
    assert [str(e) for e in errors] == [
        f"{templates / 'forgotten.j2'}: an explanation template for no cause (the causes: {causes_path()})"
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - id: brute-force\n", "cause 'brute-force' again (first at line"),
        ("  - id: x\n    verdict: harmless\n", "cause 'x': verdict is one of expected, misconfiguration"),
        ("  - id: x\n    verdict: attack\n", "cause 'x': missing findings_by (a list of event columns"),
        ("  - id: x\n    findings_by: [host]\n", "cause 'x': findings_by is a list of event columns (host is always"),
        ("  - id: x\n    rank: first\n", "cause 'x': rank is a whole number, not 'first'"),
        ("  - id: x\n    transition: yes please\n", "cause 'x': transition is true or false"),
        ("  - id: x\n    colour: red\n", "cause 'x': unknown key 'colour'"),
        ("  - verdict: attack\n", "a cause needs an id"),
    ],
)
def test_bad_causes_are_errors_at_their_line(tmp_path, entry, message):
    path = _causes_file(tmp_path, entry)
    _, errors = parse_causes(path)
    first = len(path.read_text().splitlines()) - entry.count("\n") + 1
    assert any(str(e).startswith(f"{path}:{first}: {message}") for e in errors), errors


def test_a_causes_file_that_is_no_list_of_causes(tmp_path):
    path = tmp_path / "causes.yaml"
    path.write_text("verdicts: [attack]\n")
    causes, errors = parse_causes(path)
    assert len(causes) == 0 and str(errors[0]).startswith(f"{path}:1: the file holds 'causes:'")
    path.write_text("causes: [\n")
    assert str(parse_causes(path)[1][0]).startswith(f"{path}:")  # a syntax error, with its place


def test_a_cause_no_rule_names_is_an_error_at_the_cause(tmp_path):
    home = tmp_path / "rules"
    shutil.copytree(rules_dir(), home)
    for rule in [*home.glob("059-*.yaml"), *home.glob("06[0-9]-*.yaml")]:  # the attacks' rules but brute force's
        if "brute-force" not in rule.name:
            rule.unlink()
    causes, errors = parse_causes(home / "causes.yaml")
    assert not errors
    _, errors = check_rules([home], causes)
    where = {c: f"{home / 'causes.yaml'}:{_line(home / 'causes.yaml', f'id: {c}')}" for c in causes.ids}
    assert [str(e) for e in errors] == [  # in the causes' order
        f"{where[c]}: cause {c!r} has no rule (no rule file names it)"
        for c in ("password-spray", "user-enumeration", "distributed-attack")
    ]
    # a directory of extra rules is not the whole catalog: its causes need no rule each
    assert check_rules([GOOD], causes) == (check_rules([GOOD], causes)[0], [])
    assert uncovered(causes, load_rules().rules) == []


def test_loading_fails_on_a_cause_without_a_rule(tmp_path, monkeypatch):
    import analyzer.classify.load as load

    home = tmp_path / "rules"
    shutil.copytree(rules_dir(), home)
    (home / "080-user-typo.yaml").unlink()
    causes, _ = parse_causes(home / "causes.yaml")
    monkeypatch.setattr(load, "rules_dir", lambda: home)
    monkeypatch.setattr(load, "load_causes", lambda: causes)
    with pytest.raises(RuleError) as exc:
        load.load_rules()
    assert str(exc.value) == f"{causes.location('user-typo')}: cause 'user-typo' has no rule (no rule file names it)"


def test_loading_fails_on_a_cause_that_lost_its_template(tmp_path):
    path = _causes_file(tmp_path, drop="user-typo")
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "probe-ok.j2").unlink()
    causes, errors = parse_causes(path, templates)
    assert sorted(str(e) for e in errors) == sorted(
        [
            f"{path}:{_line(path, 'id: probe-ok')}: cause 'probe-ok' has no explanation template "
            f"({templates / 'probe-ok.j2'})",
            f"{templates / 'user-typo.j2'}: an explanation template for no cause (the causes: {path})",
        ]
    )
    # a rule naming a cause that is gone is an error at the rule (one with a problem is left out)
    rule, errs = parse_rule_file(rules_dir() / "080-user-typo.yaml", causes)
    assert rule is None and [str(e).split(" (the causes")[0] for e in errs] == [
        f"{rules_dir() / '080-user-typo.yaml'}:{_line(rules_dir() / '080-user-typo.yaml', 'cause:')}: "
        "unknown cause 'user-typo'; one of: "
        + ", ".join(c for c in load_causes().ids if c not in ("user-typo", "probe-ok"))  # probe-ok: no template
    ]


def test_a_rule_whose_verdict_is_not_its_causes(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "id: r\ncause: probe-ok\nverdict: attack\nconfidence: high\n"
        "detection:\n  ok: {outcome: success}\n  condition: ok\n"
    )
    rule, errors = parse_rule_file(path)
    assert rule is None and [str(e) for e in errors] == [
        f"{path}:3: verdict 'attack' is not that of cause 'probe-ok', 'expected' "  # the line of verdict:
        f"({load_causes().location('probe-ok')}); a rule takes its cause's verdict"
    ]
    path.write_text(path.read_text().replace("verdict: attack", "verdict: expected"))
    rule, errors = parse_rule_file(path)
    assert not errors and rule.verdict == "expected"
    path.write_text(path.read_text().replace("verdict: expected\n", ""))
    assert parse_rule_file(path)[0].verdict == "expected"


def test_the_causes_file_is_no_rule_file(tmp_path):
    rules, errors = check_rules([rules_dir()])
    assert not errors and all(Path(r.path).name != "causes.yaml" for r in rules)
