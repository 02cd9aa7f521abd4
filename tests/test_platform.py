"""Platform-first answers per host: the platform's login in JSON, each format's host sections
(platform first, caps per host), the ticket paragraph, --host, and the HTML timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.classify.causes import load_causes
from analyzer.cli import app
from analyzer.errors import UsageError
from analyzer.prose import host_name, platform_words
from analyzer.report import ATTACKS_SHOWN, render

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
NOISY = "samples/linux-internet-mismatch"  # the platform's mismatch under 300 attacking sources
runner = CliRunner()


def _run(*args: str, env: dict | None = None):
    res = runner.invoke(app, ["analyze", *args], env=env)
    assert res.exit_code in (0, 1), res.output
    return res.stdout


@pytest.fixture(scope="module")
def noisy() -> dict:
    return json.loads(_run(NOISY, "--year", "2025", "--format", "json"))


def test_the_mismatch_leads_its_host_in_json(noisy):
    (host,) = noisy["hosts"]
    p = host["platform"]
    f = noisy["findings"][p["finding"]]
    assert (p["status"], p["cause"], f["cause"]) == ("failing", "probe-password-mismatch", "probe-password-mismatch")
    assert p["finding"] > 100  # ranked after the attacks globally …
    assert host["findings"][0] == p["finding"]  # … and first in its host's section
    assert sorted(host["findings"]) == list(range(len(noisy["findings"])))
    assert p["since"] == "2025-11-03T22:15:04Z" and p["last_success"] == "2025-11-03T22:00:02Z"
    assert p["beats"] == {"seen": f["beats"]["observed"], "expected": f["beats"]["expected"]}
    assert p["next_step"].endswith(".") and "22:05 UTC" in p["next_step"]
    assert host["headline"].startswith("Platform login failing since Nov 3 22:15 UTC: the password was changed")
    a = host["attacks"]
    exp = json.loads((SAMPLES / "linux-internet-mismatch" / "expected.json").read_text())
    assert a["sources"] == exp["attacking_sources"] and not a["succeeded"] and len(a["top_sources"]) == 5
    assert a["scanning"] == {"sources": exp["scanning_sources"], "connections": exp["scanning_sources"]}
    assert "; attacks from 300 sources (" in host["headline"]
    # the attack findings come after the platform's, the expected one last
    verdicts = [noisy["findings"][i]["verdict"] for i in host["findings"]]
    assert verdicts[0] == "misconfiguration" and verdicts[-1] == "expected" and set(verdicts[1:-1]) == {"attack"}


MD_FINDING = r"^(?:### |- \*\*)(\d+)\.[ *]"  # a finding in full, or an attack in one line


def _numbers(text: str, pattern: str) -> list[int]:
    return [int(n) for n in re.findall(pattern, text, re.M)]


def test_each_format_shows_the_platform_first_and_caps_the_rest_per_host(noisy):
    pf = noisy["hosts"][0]["platform"]["finding"] + 1  # as the formats number findings
    text = render(noisy, "text")
    shown = _numbers(text, r"^\[(\d+)\] ")
    attacks = [i + 1 for i, f in enumerate(noisy["findings"]) if f["verdict"] == "attack"]
    others = [i + 1 for i, f in enumerate(noisy["findings"]) if f["verdict"] != "attack" and i + 1 != pf]
    assert len(attacks) > ATTACKS_SHOWN["md"] and others  # the expected traffic: never pushed out by attacks
    assert shown[0] == pf and len(shown) == 1 + ATTACKS_SHOWN["text"] + len(others)
    assert set(others) <= set(shown)
    assert f"... and {len(attacks) - ATTACKS_SHOWN['text']} more findings on edge01" in text
    assert text.index("on edge01: attacks from 300 sources") < text.index(f"[{shown[1]}]")
    md = render(noisy, "md")
    shown = _numbers(md, MD_FINDING)
    assert shown[0] == pf and len(shown) == 1 + ATTACKS_SHOWN["md"] + len(others) and set(others) <= set(shown)
    assert f"… and {len(attacks) - ATTACKS_SHOWN['md']} more findings on edge01" in md
    assert md.index("For the ticket:") < md.index(f"### {pf}. ") < md.index("### Attacks on edge01")
    assert md.index("### Attacks on edge01") < md.index(f"- **{shown[1]}.** ")
    # the attacks in one line each; the platform's finding and the rest in full
    assert text.count("\n    Impact: ") == 1 + len(others) and md.count("**Impact.**") == 1 + len(others)
    html = render(noisy, "html")
    shown = _numbers(html, r'<article class="finding card [a-z-]+" id="f(\d+)"')
    assert shown[0] == pf and sorted(shown) == list(range(1, len(noisy["findings"]) + 1))  # nothing cut
    details = html[html.index('<details class="attacks">') : html.index("</details>")]
    assert details.count('<article class="finding card attack"') == noisy["hosts"][0]["attacks"]["findings"]
    assert html.index(f'id="f{pf}"') < html.index('class="attack-summary') < html.index('<details class="attacks">')


def test_the_platform_and_what_needs_action_are_never_cut(noisy):
    """A finding that needs action ranked below hundreds of attacks is still shown."""
    doc = json.loads(json.dumps(noisy))
    late = dict(doc["findings"][0], cause="unclassified", verdict="unknown", title="Something else fails")
    doc["findings"].append(late)
    del doc["hosts"][0]["findings"]  # the order is derived again for a document without it
    for fmt, pattern in (("text", r"^\[(\d+)\] "), ("md", MD_FINDING)):
        shown = _numbers(render(doc, fmt), pattern)
        assert shown[:2] == [doc["hosts"][0]["platform"]["finding"] + 1, len(doc["findings"])], fmt
        expected = [i for i, f in enumerate(doc["findings"]) if f["verdict"] == "expected"]
        assert len(shown) == 2 + ATTACKS_SHOWN[fmt] + len(expected) < len(doc["findings"]), fmt


def _expected_status(causes: list[str]) -> str:
    table = load_causes()
    statuses = {table[c].platform for c in causes} - {None}
    return next((s for s in ("failing", "blocked", "ok") if s in statuses), "not-seen")


@pytest.mark.parametrize("scenario", sorted(p.parent.name for p in SAMPLES.glob("*/expected.json")))
def test_every_samples_platform_block(scenario):
    exp = json.loads((SAMPLES / scenario / "expected.json").read_text())
    doc = json.loads(_run(str(SAMPLES / scenario), "--year", "2025", "--format", "json"))
    hosts = {h["name"]: h for h in doc["hosts"]}
    by_host: dict[str, list[str]] = {}
    for f in exp["findings"]:
        by_host.setdefault(host_name(f["host"]), []).append(f["cause"])
    for name, causes in by_host.items():
        p = hosts[name]["platform"]
        assert p["status"] == _expected_status(causes), (name, p)
        if p["status"] in ("failing", "blocked"):
            assert p["cause"] in causes and load_causes()[p["cause"]].platform == p["status"]
            assert doc["findings"][p["finding"]]["cause"] == p["cause"] and p["since"]
            assert hosts[name]["headline"].startswith(f"Platform login {p['status']}")
        assert p["next_step"] and p["ticket"] and "None" not in p["ticket"]
    if "platform" in exp:
        p = hosts[exp["host"]]["platform"]
        assert {k: p[k] for k in exp["platform"]} == exp["platform"]


def test_not_seen_says_what_it_can_mean():
    doc = json.loads(_run("samples/linux-brute-force", "--year", "2025", "--format", "json"))
    (host,) = doc["hosts"]
    p = host["platform"]
    assert p["status"] == "not-seen" and p["cause"] is None and p["finding"] is None and p["attempts"] == 0
    assert all(w in p["next_step"] for w in ("firewall", "another host", "time"))
    assert host["headline"].startswith("No platform login seen; attacks from 1 source")
    assert "bastion" in p["ticket"] and "firewall" in p["ticket"]


def _finding(cause: str) -> dict:
    return {
        "cause": cause,
        "verdict": load_causes()[cause].verdict,
        "confidence": "high",
        "host": "web01",
        "service": ["ssh"],
        "src_ips": ["198.51.100.10"],
        "dst_ports": [22],
        "users": ["root"],
        "reasons": {"bad-password": 4},
        "count": 4,
        "failures": 4,
        "first_seen": "2025-11-03T14:15:00Z",
        "last_seen": "2025-11-03T15:00:00Z",
        "cadence_seconds": 900.0,
        "beats": {"expected": 4, "observed": 4},
        "transition": {
            "last_success": "2025-11-03T14:00:00Z",
            "first_failure": "2025-11-03T14:15:00Z",
            "password_changes": [{"time": "2025-11-03T14:05:00Z", "user": "root", "where": "auth.log:9"}],
        },
    }


@pytest.mark.parametrize("cause", [c.id for c in load_causes() if c.platform])
def test_every_probe_cause_has_a_next_step_and_a_ticket_paragraph(cause):
    f = _finding(cause)
    p = {"since": "2025-11-03T14:15:00Z", "last_success": "2025-11-03T14:00:00Z"}
    words = platform_words(f, "web01", p)
    step, ticket = words["next_step"], words["ticket"]
    assert step[0].isupper() and step.endswith(".") and step.count(". ") == 0, step
    assert "web01" in ticket and len(ticket) > 120 and "{" not in ticket and "None" not in ticket, ticket
    if load_causes()[cause].platform != "ok":
        assert "since Nov 3 14:15 UTC" in ticket and "Please" in ticket, ticket
    if cause == "probe-password-mismatch":
        assert "14:05 UTC" in step and "14:05 UTC" in ticket


def test_host_option_reports_on_one_host():
    doc = json.loads(_run("samples/", "--year", "2025", "--host", "web01", "--format", "json"))
    (host,) = doc["hosts"]
    assert host["name"] == "web01" and {f["host"] for f in doc["findings"]} == {"web01"}
    assert doc["findings"][host["platform"]["finding"]]["cause"] == "probe-password-mismatch"
    assert sorted(host["findings"]) == list(range(len(doc["findings"])))
    assert doc["totals"]["findings"] == len(doc["findings"])
    assert set(doc["timeline"]["hosts"]) == {"web01"}
    res = runner.invoke(app, ["analyze", "samples/linux-brute-force", "--year", "2025", "--host", "nope"])
    assert res.exit_code == 2 and "no host 'nope'" in res.output and "bastion" in res.output


def test_ticket_format_is_just_the_paragraphs():
    out = _run("samples/", "--year", "2025", "--format", "ticket", env={"COLUMNS": "80"})
    doc = json.loads(_run("samples/", "--year", "2025", "--format", "json"))
    blocks = out.strip().split("\n\n")
    assert [b.split("\n", 1)[0] for b in blocks] == [h["name"] for h in doc["hosts"]]
    for b, h in zip(blocks, doc["hosts"], strict=True):
        assert " ".join(b.split("\n")[1:]) == " ".join(h["platform"]["ticket"].split())
    assert all(len(line) <= 80 for line in out.splitlines())
    one = _run("samples/", "--year", "2025", "--format", "ticket", "--host", "edge01")
    assert one.startswith("edge01\nThe platform's login to edge01 as root fails since Nov 3 22:15 UTC")


@pytest.mark.parametrize("fmt", ["text", "ticket"])
def test_every_line_fits_80_columns(fmt):
    for target in ("samples/", NOISY):
        out = _run(target, "--year", "2025", "--format", fmt, env={"COLUMNS": "80"})
        long = [line for line in out.splitlines() if len(line) > 80]
        assert not long, long[:3]


def test_the_timeline_in_chromium(tmp_path, chromium):
    """Labelled times on the axis, a legend, colours by meaning (platform failing, attack,
    expected), in light, dark and print."""
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    res = runner.invoke(app, ["analyze", NOISY, "--year", "2025", "-o", str(report)])
    assert res.exit_code == 0, res.output
    fills = "kinds => kinds.map(k => getComputedStyle(document.querySelector('rect.k-' + k)).fill)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(report.as_uri())
        labels = page.locator("svg.timeline .axis text").all_text_contents()
        assert len(labels) >= 4 and all(re.fullmatch(r"(\w{3} \d+ )?\d\d:\d\d", t) for t in labels), labels
        assert page.locator("svg.timeline .axis text").first.is_visible()
        legend = page.locator(".legend").first.inner_text()
        assert all(k in legend for k in ("platform login failing", "attack", "expected")), legend
        kinds = ["platform", "attack", "expected"]
        light = page.evaluate(fills, kinds)
        assert len(set(light)) == 3 and "none" not in light, light
        page.emulate_media(color_scheme="dark")
        dark = page.evaluate(fills, kinds)
        assert len(set(dark)) == 3 and dark != light, dark
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg != "rgb(255, 255, 255)"
        page.emulate_media(media="print", color_scheme="dark")
        printed = page.evaluate(fills, kinds)
        assert len(set(printed)) == 3
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
        browser.close()


def test_hostile_host_names_and_ticket_text_are_escaped_in_every_format():
    """The ticket paragraph and headline carry names from the logs: each format escapes them."""
    evil = '<script>alert(1)</script>\x1b[2J|`x`*[a](http://x)'
    doc = {
        "generator": "test",
        "totals": {"inputs": 0, "lines": 0, "records": 0, "events": 0, "findings": 0},
        "hosts": [
            {
                "name": evil,
                "role": "linux",
                "role_evidence": [],
                "verdict": "expected",
                "headline": f"No platform login seen on {evil}",
                "platform": {
                    "status": "not-seen", "cause": None, "confidence": None, "since": None, "last_success": None,
                    "beats": None, "attempts": 0, "finding": None, "next_step": "Check.", "ticket": f"The logs of {evil}.",
                },  # fmt: skip
                "findings": [],
                "attacks": None,
            }
        ],
        "findings": [],
        "timeline": {"bucket_seconds": None, "start": None, "hosts": {}},
        "inputs": [],
        "assumptions": {},
        "platform": {"networks": [], "accounts": []},
    }
    for fmt in ("text", "ticket", "md", "html"):
        out = render(doc, fmt)
        assert "\x1b" not in out and "\\x1b" in out, fmt
        assert "<script>alert" not in out or fmt in ("text", "ticket"), fmt
    assert "&lt;script&gt;" in render(doc, "html")
    assert "\\<script\\>" in render(doc, "md") and "\\[a\\]" in render(doc, "md")


def test_a_causes_platform_field_is_optional_and_checked(tmp_path):
    """rules/causes.yaml's ``platform`` (failing, blocked, ok) may be left out; anything else
    is an error at the cause's line."""
    from analyzer.classify.causes import causes_path, parse_causes

    text = causes_path().read_text()
    assert text.count("    platform: ") == sum(1 for c in load_causes() if c.platform)
    bad = tmp_path / "causes.yaml"
    bad.write_text(text.replace("    platform: ok\n", "    platform: fine\n"))
    causes, errors = parse_causes(bad)
    assert len(errors) == 1 and "cause 'probe-ok': platform is one of failing, blocked, ok, not 'fine'" in str(errors[0])
    assert str(errors[0]).startswith(f"{bad}:") and "probe-ok" not in causes
    without = tmp_path / "without.yaml"
    without.write_text(text.replace("    platform: blocked\n", ""))
    causes, errors = parse_causes(without)
    assert not errors and causes["probe-firewall-blocked"].platform is None


def test_host_names_are_matched_without_case_and_by_their_short_name():
    from analyzer.report import for_host

    doc = {"hosts": [{"name": "DC01.corp.example"}, {"name": "web01"}], "findings": [], "timeline": None}
    assert for_host(doc, "dc01")["hosts"][0]["name"] == "DC01.corp.example"
    assert for_host(doc, "WEB01")["hosts"][0]["name"] == "web01"
    with pytest.raises(UsageError, match="the hosts are DC01.corp.example, web01"):
        for_host(doc, "dc02")


def test_an_empty_platform_account_is_a_usage_error():
    from analyzer.config import Profile

    with pytest.raises(UsageError, match="--platform-account: an account name is empty"):
        Profile().with_overrides(accounts=[""])


def test_a_failure_with_no_success_before_it_is_failing_since_at_least():
    """Logs that begin failing do not say when it began: "since at least" their first failure;
    after a success in the logs, since the first failure after it."""
    from analyzer.prose import platform_headline

    p = {"status": "failing", "since": "2025-11-03T14:00:00Z", "last_success": None, "next_step": "Do this."}
    assert platform_headline(p, None, None).startswith("Platform login failing since at least Nov 3 14:00 UTC: do this")
    p["last_success"] = "2025-11-03T13:45:00Z"
    assert platform_headline(p, None, None).startswith("Platform login failing since Nov 3 14:00 UTC: do this")


def test_a_document_without_the_attack_summary_still_renders(noisy):
    """A report of an earlier version (hosts without ``attacks``) renders in every format."""
    doc = json.loads(json.dumps(noisy))
    for h in doc["hosts"]:
        del h["attacks"]
    for fmt in ("html", "md", "text", "ticket"):
        assert "edge01" in render(doc, fmt), fmt


def test_platform_times_compare_as_instants_and_hostless_failures_count():
    """A failure at 07.5 s after a success at 07 s is the latest (as text it sorted first); the
    failures of a log that names no host date its platform finding too."""
    import pandas as pd

    from analyzer.analysis import _instant, _platform_failures

    assert _instant("2025-11-03T14:00:07.500000Z") > _instant("2025-11-03T14:00:07Z")
    events = pd.DataFrame(
        {
            "host": pd.Categorical([None, "web01"], categories=["web01"]),
            "timestamp": pd.to_datetime(["2025-11-03T14:00:00Z", "2025-11-03T15:00:00Z"], utc=True),
            "outcome": pd.Categorical(["blocked", "failure"]),
        }
    )
    causes = pd.Series(pd.Categorical(["probe-firewall-blocked", "probe-password-mismatch"]))
    got = _platform_failures(events, causes)
    assert sorted(got) == ["(unknown host)", "web01"] and len(got["(unknown host)"]) == 1
