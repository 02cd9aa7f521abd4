"""Reports: every format from one document, the JSON schema, hostile strings, exit codes."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.report import md_escape, text_escape

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "reports" / "report.schema.json").read_text())
runner = CliRunner()
EVIL_USER = (
    '<script>alert("x")</script><img src=x onerror=alert(1)>|`code`*b*_i_\x1b[31mRED\x1b[0m=HYPERLINK("x")' + "A" * 3000
)


def _failed_logins(tmp_path: Path, users: list[str]) -> Path:
    """An auth log of one failed password a minute, for each of ``users`` in turn."""
    log = tmp_path / "auth.log"
    lines = (
        f"Nov  3 14:{m:02d}:00 web9 sshd[{100 + m}]: Failed password for invalid user {u} from 203.0.113.9 port 4{m:04d} ssh2\n"
        for m, u in enumerate(users)
    )
    log.write_text("".join(lines))
    return log


def _analyze(args, tmp_path=None):
    res = runner.invoke(app, ["analyze", *args])
    assert res.exit_code in (0, 1), res.output
    return res


def test_json_report_validates_against_the_committed_schema():
    res = _analyze(["samples/", "--year", "2025", "--format", "json"])
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["report_version"] == 2
    assert all(h["headline"] for h in doc["hosts"])
    f = next(f for f in doc["findings"] if f["cause"] == "probe-firewall-blocked" and f["host"] == "app03")
    assert f["cadence_text"] == "every 15 min, 52 of 52 expected beats"  # UFW, then plain iptables lines
    assert f["remediation"] and "5985" in " ".join(f["remediation"])


def test_format_follows_the_extension_and_the_flag(tmp_path):
    for ext, marker in (
        (".html", "<!doctype html>"),
        (".md", "# Why logins fail"),
        (".txt", "authtriage: why logins fail"),
        (".json", '"report_version"'),
    ):
        out = tmp_path / f"r{ext}"
        _analyze(["samples/linux-root-refused/auth.log", "--year", "2025", "-o", str(out)])
        assert out.read_text().lstrip().startswith(marker) or marker in out.read_text()[:200], ext
    out = tmp_path / "r.html"
    _analyze(["samples/linux-root-refused/auth.log", "--year", "2025", "--format", "md", "-o", str(out)])
    assert out.read_text().startswith("# Why logins fail")


def test_fail_on():
    base = ["samples/linux-brute-force/secure", "--year", "2025", "--format", "json"]
    assert runner.invoke(app, ["analyze", *base]).exit_code == 0
    assert runner.invoke(app, ["analyze", *base, "--fail-on", "attack"]).exit_code == 1
    assert runner.invoke(app, ["analyze", *base, "--fail-on", "any"]).exit_code == 1
    ok = ["samples/linux-root-refused/auth.log", "--year", "2025", "--format", "json"]
    assert runner.invoke(app, ["analyze", *ok, "--fail-on", "attack"]).exit_code == 0
    assert runner.invoke(app, ["analyze", *ok, "--fail-on", "misconfiguration"]).exit_code == 1


class _Scan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        if tag in ("link", "img", "iframe", "object", "embed") or (tag == "script"):
            self.handlers.append(f"<{tag}>")

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    log = tmp / "auth.log"
    lines = [
        f"Nov  3 14:{m:02d}:00 evil<b>host sshd[{100 + m}]: Failed password for invalid user {EVIL_USER} from 203.0.113.9 port 4{m:04d} ssh2"
        for m in range(12)
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = {}
    for fmt in ("html", "md", "text", "json"):
        res = runner.invoke(app, ["analyze", str(log), "--year", "2025", "--format", fmt])
        assert res.exit_code == 0, res.output
        out[fmt] = res.stdout
    return out


def test_hostile_strings_in_html(hostile):
    scan = _Scan()
    scan.feed(hostile["html"])
    assert scan.handlers == [], scan.handlers  # no script, no event handler, no external resource
    text = "".join(scan.text)
    assert '<script>alert("x")</script>' in text  # shown as text
    assert "Content-Security-Policy" in hostile["html"]


def test_hostile_strings_in_markdown(hostile):
    md = hostile["md"]
    pipes = re.compile(r"(?<!\\)\|")
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    # the hosts (a hostile host name) and the inputs; the attack findings are one line each
    assert len(tables) >= 2 and "evil\\<b\\>host" in tables[0][2]
    for table in tables:  # every row has the header's number of cells: no table is broken
        widths = {len(pipes.findall(row)) for row in table}
        assert len(widths) == 1, table
    assert "\\<script\\>" in md and "\\`code\\`" in md and "\x1b" not in md
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("x&amp;.evtx") == "x\\&amp;.evtx"  # an entity in a name shown as written, not decoded


def test_hostile_strings_in_text_and_json(hostile):
    assert "\x1b" not in hostile["text"] and "\\x1b[31mRED" in hostile["text"]
    doc = json.loads(hostile["json"])
    assert any(EVIL_USER in f["users"] for f in doc["findings"])  # JSON keeps the text exactly
    assert text_escape("\x1b[2J") == "\\x1b[2J"


def test_terminal_and_ticket_formats_cap_each_hosts_findings(tmp_path):
    """Caps apply per host, to what is neither the platform's finding nor needs action
    (tests/test_platform.py: the order within a host)."""
    from analyzer.report import ATTACKS_SHOWN, FINDINGS_SHOWN, host_sections, render

    doc = json.loads(_analyze(["samples/", "--year", "2025", "--format", "json"]).stdout)
    hosts = [{k: v for k, v in h.items() if k != "findings"} for h in doc["hosts"]]
    many = dict(doc, findings=doc["findings"] * 10, hosts=hosts)
    for fmt in ("text", "md"):
        out, limit, attacks = render(many, fmt), FINDINGS_SHOWN[fmt], ATTACKS_SHOWN[fmt]
        sections = {s["host"]["name"]: s for s in host_sections(many, limit, attacks)}
        assert any(s["cut"] for s in sections.values())
        for name, s in sections.items():
            mine = [f for f in many["findings"] if (f["host"] or "(unknown host)") == name]
            shown = [f for _, f in s["rest"]]
            for cap, is_attack in ((attacks, True), (limit, False)):  # attacks and the rest capped apart
                kind = [f for f in shown if (f["verdict"] == "attack") == is_attack]
                first = [f for _, f in s["first"] if (f["verdict"] == "attack") == is_attack]
                total = [f for f in mine if (f["verdict"] == "attack") == is_attack]
                assert len(kind) == min(cap, len(total) - len(first)), (fmt, name, is_attack)
            cut = f"and {s['cut']:,} more finding{'' if s['cut'] == 1 else 's'} on {name}"
            assert (cut in out) == bool(s["cut"]), (fmt, name)
            needs_action = [f for f in many["findings"] if f["host"] == name and f["verdict"] == "misconfiguration"]
            assert len(s["first"]) >= len(needs_action)  # none of them cut
    assert render(many, "html").count('<article class="finding') == len(many["findings"])


def test_long_lists_are_cut_for_people_and_whole_in_json():
    from analyzer.analysis import host_verdicts
    from analyzer.prose import explain
    from analyzer.report import render, some

    assert some(["a", "b"]) == "a, b"
    assert some([str(i) for i in range(1234)], 3) == "0, 1, 2 and 1,231 more"
    ips = [f"203.0.113.{i}" for i in range(80)]
    finding = {
        "cause": "unclassified",
        "verdict": "unknown",
        "confidence": "low",
        "rule": "unclassified",
        "host": "web01",
        "service": ["ssh"],
        "src_ips": ips,
        "dst_ports": [22],
        "users": ["root"],
        "reasons": {"other": 80},
        "actions": {"logon": 80},
        "count": 80,
        "failures": 80,
        "first_seen": "2025-11-03T14:00:00Z",
        "last_seen": "2025-11-03T15:00:00Z",
        "cadence_seconds": None,
        "beats": None,
        "transition": None,
        "examples": [],
        "notes": [],
    }
    doc = {
        "generator": "test",
        "totals": {"inputs": 0, "lines": 0, "records": 0, "events": 80, "findings": 1},
        "hosts": [{"name": "web01", "role": "linux", "role_evidence": []}],
        "findings": [finding],
        "timeline": {"bucket_seconds": None, "start": None, "hosts": {}},
        "inputs": [],
        "assumptions": {},
        "platform": {"networks": [], "accounts": ["root"]},
    }
    explain(doc["findings"])
    host_verdicts(doc["hosts"], doc["findings"])
    assert "and 70 more" in doc["findings"][0]["explanation"]
    for fmt in ("html", "md"):
        out = render(doc, fmt)
        assert "203.0.113.49" in out and "203.0.113.50" not in out and "and 30 more" in out
    assert json.loads(render(doc, "json"))["findings"][0]["src_ips"] == ips


def test_dict_fields_in_templates_read_as_jinja_reads_them():
    """The report's Jinja environment takes a dict's item before trying (and failing) an
    attribute; a dict's methods still win, as in Jinja, so a host called "items" or a field
    called "keys" cannot turn a loop into a call of a string."""
    import jinja2

    from analyzer.report import _env

    env, plain = _env(), jinja2.Environment(undefined=jinja2.StrictUndefined)
    cases = [
        ("{{ d.name }}", {"d": {"name": "x<y"}}),
        ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"items": "a", "b": 1}}),
        ("{{ d.keys() | list | sort | join(',') }}", {"d": {"keys": 1, "z": 2}}),
        ("{{ d.get('a') }}|{{ d.missing is defined }}", {"d": {"a": 3}}),
    ]
    for source, ctx in cases:
        assert env.from_string(source).render(ctx) == plain.from_string(source).render(ctx)
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ d.missing }}").render(d={})


def _timeline_by_unique(events, causes, buckets=48):
    """The timeline's counts as first written: np.unique over (host, cause) pairs, np.add.at."""
    import numpy as np
    import pandas as pd

    from analyzer.analysis import _BUCKETS

    micros = events["timestamp"].to_numpy(dtype="datetime64[us]").view(np.int64)
    keep = causes.notna().to_numpy() & (micros != np.iinfo(np.int64).min)
    t = micros[keep] // 1_000_000
    span = max(int(t.max() - t.min()), 1)
    size = next((b for b in _BUCKETS if span / b <= buckets), _BUCKETS[-1])
    idx = (t - int(t.min() // size * size)) // size
    hosts, host_names = pd.factorize(events["host"], use_na_sentinel=False)
    ncause = len(causes.cat.categories)
    pair = hosts[keep].astype(np.int64) * ncause + causes.cat.codes.to_numpy(dtype=np.int64)[keep]
    keys, inverse = np.unique(pair, return_inverse=True)
    counts = np.zeros((len(keys), int(idx.max()) + 1), dtype=np.int64)
    np.add.at(counts, (inverse, idx), 1)
    out = {}
    for row, key in enumerate(keys.tolist()):
        h = host_names[key // ncause]
        out.setdefault("(unknown host)" if pd.isna(h) else str(h), {})[str(causes.cat.categories[key % ncause])] = (
            counts[row].tolist()
        )
    return out


@pytest.mark.parametrize("grid", [1 << 20, 0])  # every combination at once; only those that occur
def test_timeline_counts_by_bincount_as_by_unique_pairs(monkeypatch, grid):
    import numpy as np
    import pandas as pd

    from analyzer import analysis
    from analyzer.analysis import timeline

    monkeypatch.setattr(analysis, "TIMELINE_GRID", grid)
    monkeypatch.setattr(analysis, "TIMELINE_GRID_PER_EVENT", 4 if grid else 0)
    rng = np.random.default_rng(4)
    for categorical in (True, False):
        for _ in range(30):
            n = int(rng.integers(1, 400))
            hosts = rng.choice(np.array(["web1", "db1", "dc1", None], dtype=object), n)
            stamps = pd.Series(pd.to_datetime(rng.integers(0, 86_400 * 30, n), unit="s", utc=True))
            stamps[rng.random(n) < 0.1] = pd.NaT
            events = pd.DataFrame({
                "timestamp": stamps,
                "host": pd.Categorical(hosts, categories=["web1", "db1", "dc1", "unused"]) if categorical else hosts,
            })  # fmt: skip
            causes = pd.Series(pd.Categorical(rng.choice(np.array(["a", "b", None], dtype=object), n),
                                              categories=["b", "a", "z"]))  # fmt: skip
            if not (causes.notna() & stamps.notna()).any():
                continue
            assert timeline(events, causes)["hosts"] == _timeline_by_unique(events, causes)


def test_timeline_of_years_far_apart_stays_small():
    """Forged RFC 3339 times of year 1 and year 9999 asked for 520,000 weekly buckets per host
    and cause (18 MB of report, 660 MB for 13 lines); a span past ten years of weeks takes
    longer buckets, from the first event's day. Two years of events keep their weeks."""
    import pandas as pd

    from analyzer.analysis import MAX_BUCKETS, timeline

    def tl(*stamps: str) -> dict:
        when = pd.to_datetime(list(stamps), utc=True, format="ISO8601").as_unit("us")
        events = pd.DataFrame({"timestamp": when, "host": "h"})
        return timeline(events, pd.Series(pd.Categorical(["c"] * len(stamps))))

    far = tl("0001-01-01T05:00:00Z", "9999-12-31T23:59:59Z", "2025-06-01T00:00:00Z")
    counts = far["hosts"]["h"]["c"]
    assert far["start"] == "0001-01-01T00:00:00Z" and len(counts) <= MAX_BUCKETS + 1 and sum(counts) == 3
    assert far["bucket_seconds"] % (7 * 86400) == 0
    near = tl("2024-01-03T00:00:00Z", "2025-12-30T00:00:00Z")
    assert near["bucket_seconds"] == 7 * 86400 and len(near["hosts"]["h"]["c"]) == 105


def test_a_log_that_names_no_host_reads_as_one_host_in_every_format(tmp_path):
    """pfirewall.log has no computer name: its findings keep a null host in JSON, and the
    host list, the headline and the prose call it "(unknown host)" (they said "None", and
    the host's headline said no failed logins were found beside its finding)."""
    log = "samples/windows-firewall-blocked-pfirewall/pfirewall.log"
    doc = json.loads(_analyze([log, "--format", "json"]).stdout)
    (host,) = doc["hosts"]
    (f,) = doc["findings"]
    assert f["host"] is None and host["name"] == "(unknown host)"
    assert host["headline"].startswith("Platform login blocked since") and host["verdict"] == f["verdict"]
    assert host["platform"]["status"] == "blocked" and host["platform"]["cause"] == f["cause"]
    assert f["explanation"].startswith("(unknown host) drops") and "None" not in f["explanation"]
    for fmt in ("text", "md", "html"):
        out = _analyze([log, "--format", fmt]).stdout
        assert "None" not in out and "no failed logins found" not in out, fmt
        assert "unknown host" in out, fmt


def test_counts_read_as_english():
    from analyzer.report import plural

    assert [plural(n, "finding") for n in (0, 1, 2, 12_345)] == ["0 findings", "1 finding", "2 findings", "12,345 findings"]
    assert plural(1, "more finding") == "1 more finding"
    doc = json.loads(_analyze(["samples/", "--year", "2025", "--format", "json"]).stdout)
    typo = next(f for f in doc["findings"] if f["cause"] == "user-typo")
    assert re.search(r"failed \d+ times? and then logged in\.$", typo["explanation"]) and typo["impact"] != "None."
    text = _analyze(["samples/linux-root-refused/auth.log", "--year", "2025", "--format", "text"]).stdout
    assert re.search(r"^1 input, [\d,]+ events, 1 finding$", text, re.M), text[:200]


def test_hostile_names_make_no_markup_in_rendered_markdown(tmp_path):
    """The Markdown report as a ticket system renders it (CommonMark, raw HTML allowed, GitHub's
    tables and bare-URL links): user names that are links, images, URLs, HTML, emphasis, code or
    a list's mark stay text. Its own prose keeps its parentheses unescaped."""
    from markdown_it import MarkdownIt

    users = ["[click](http://evil.example/a)", "![x](http://evil.example/i.png)", "http://evil.example/phish",
             "www.evil.example", "<img src=x onerror=alert(1)>", "**bold**", "`code`", "~~gone~~", "- item"]  # fmt: skip
    log = _failed_logins(tmp_path, [users[m % len(users)] for m in range(40)])
    md = _analyze([str(log), "--year", "2025", "--format", "md"]).stdout
    html = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "linkify", "strikethrough"]).render(md)
    for made in ("<a ", "<img", "<del", "<s>", "<code>code", "<strong>bold", "<li>item"):  # (the report's own
        assert made not in html, (made, re.findall(rf"{made}[^\n]{{0,80}}", html)[:3])  # code, lists, bold: fine)
    assert "evil.example/phish" in html and "[click]" in html  # shown as text
    assert "\\(" not in md and "(" in md


def test_reordering_and_control_characters_are_shown_in_every_format(tmp_path):
    """A user name with U+202E (right-to-left override) shows its letters backwards ("Trojan
    Source"), an ANSI escape drives a terminal: in HTML, Markdown and text both are shown as
    escapes; JSON keeps the text exactly."""
    user = "admin\u202egnp.exe\u2066x\x1b[2Jy"
    log = _failed_logins(tmp_path, [user] * 12)
    for fmt in ("html", "md", "text"):
        out = _analyze([str(log), "--year", "2025", "--format", fmt]).stdout
        assert not any(c in out for c in "\u202e\u2066\x1b"), fmt
        assert "admin\\u202egnp.exe\\u2066x\\x1b" in out.replace("\\\\", "\\"), fmt
    doc = json.loads(_analyze([str(log), "--year", "2025", "--format", "json"]).stdout)
    assert any(user in f["users"] for f in doc["findings"])


def _cells(line: str) -> int:
    """Terminal cells of a line, measured here on their own: wide characters 2, combining
    marks and format characters 0."""
    import unicodedata

    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in line
    )


def _widest(text: str) -> int:
    return max(_cells(line) for line in text.splitlines())


def test_text_fits_an_80_column_terminal(tmp_path):
    """COLUMNS=80: every line at most 80 cells, prose, lists, evidence and the inputs line
    among them; evidence cut with "…" (JSON keeps the line whole); inputs and evidence named
    below the inputs' common directory (JSON keeps the names as given)."""
    res = runner.invoke(app, ["analyze", "samples/", "--year", "2025", "--format", "text"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert _widest(text) <= 80, [line for line in text.splitlines() if _cells(line) > 80][:3]
    assert "samples/" not in text.split("\ninputs")[0]  # evidence below the inputs' directory
    assert re.search(r"^    linux-attacks/auth\.log:\d+: ", text, re.M)
    assert "\ninputs, in samples:\n" in text and "  linux-attacks/auth.log (syslog);" in text
    cut = [line for line in text.splitlines() if line.startswith("    linux-") and line.endswith("…")]
    assert cut and all(_cells(line) == 80 for line in cut)
    doc = json.loads(_analyze(["samples/", "--year", "2025", "--format", "json"]).stdout)
    examples = [e for f in doc["findings"] for e in f["examples"]]
    assert all(e["where"].startswith("samples/") for e in examples)
    assert max(len(e["where"]) + len(e["text"] or "") for e in examples) > 80  # whole, not cut
    # as wide as the terminal says; a file's report is 80 whatever the terminal
    wide = runner.invoke(app, ["analyze", "samples/", "--year", "2025", "--format", "text"], env={"COLUMNS": "132"})
    assert 80 < _widest(wide.stdout) <= 132
    out = tmp_path / "report.txt"
    runner.invoke(app, ["analyze", "samples/", "--year", "2025", "-o", str(out)], env={"COLUMNS": "132"})
    assert out.read_text().startswith("authtriage: why logins fail") and _widest(out.read_text()) <= 80


def test_text_measures_wide_and_hostile_names_after_escaping(tmp_path):
    """User and host names from a log: wide (CJK, emoji), combining, control characters and
    a name of 3,000 characters: escaped first, then measured; no line over 80 cells, at 40
    columns none over 40."""
    users = ["管理者アカウント" * 6, "e\u0301" * 50 + "\x1b[31mred", "🔥" * 45, "A" * 3000, "ok user"]
    log = _failed_logins(tmp_path, [users[m % len(users)] for m in range(40)])
    for columns in (80, 40):
        res = runner.invoke(app, ["analyze", str(log), "--year", "2025", "--format", "text"], env={"COLUMNS": str(columns)})
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.stdout and ("\\x1b[31mred" in res.stdout or columns < 80)
        assert _widest(res.stdout) <= columns, [ln for ln in res.stdout.splitlines() if _cells(ln) > columns][:3]
        assert "auth.log:1: " in res.stdout  # the one input's directory left out


def test_text_wrapping_keeps_every_word(tmp_path):
    from analyzer.report import cut, wrap, wrap_list

    prose = "The platform logs in to web01 as root over ssh and is told the password is wrong. " * 5
    out = wrap(prose, 40, "    ", "  ")
    assert out.split() == prose.split() and max(map(len, out.splitlines())) <= 40
    assert all(line.startswith("  ") for line in out.splitlines()[1:])
    assert wrap("x" * 100, 30).replace("\n", "") == "x" * 100  # a word longer than a line: broken
    assert cut("abcdef", 4) == "abc…" and cut("abc", 4) == "abc" and cut("漢字漢字", 5) == "漢字…"
    listed = wrap_list([f"10.0.0.{i}" for i in range(30)], 40, "    sources: ")
    assert listed.endswith("(+20)") and max(map(len, listed.splitlines())) <= 40
    assert all(line.startswith(" " * 13) for line in listed.splitlines()[1:])


def test_format_names_and_unknown_extensions(tmp_path):
    """--format txt is text; -o with an extension that names no format is a usage error
    naming the formats (it wrote JSON), before anything is read; no extension: JSON."""
    log = "samples/linux-root-refused/auth.log"
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "--format", "txt"])
    assert res.exit_code == 0 and res.stdout.startswith("authtriage: why logins fail")
    out = tmp_path / "report.pdf"
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "-o", str(out)])
    assert res.exit_code == 2 and not out.exists()
    assert "report.pdf" in res.stderr and all(f in res.stderr for f in ("json", "html", "md", "text"))
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = runner.invoke(app, ["analyze", "no-such-file.log", "-o", str(out)])
    assert res.exit_code == 2 and "report.pdf" in res.stderr  # refused before the reading
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "--format", "md", "-o", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("# Why logins fail")  # --format wins
    bare = tmp_path / "report"
    assert runner.invoke(app, ["analyze", log, "--year", "2025", "-o", str(bare)]).exit_code == 0
    assert json.loads(bare.read_text())["report_version"] == 2
