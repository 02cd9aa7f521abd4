"""Evidence on demand: `analyze` reads text logs without keeping every line, then fetches
the lines its examples quote; they must be exactly what a full read keeps as `raw`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import analyzer.evidence as evidence
from analyzer.cli import app
from analyzer.ingest import IngestOptions, read_events
from analyzer.ingest.sources import Source


@pytest.mark.parametrize("chunk", [7, 64, 4 << 20])
def test_lines_at_any_chunking(monkeypatch, chunk):
    monkeypatch.setattr(evidence, "_CHUNK", chunk)
    data = b"one\r\ntwo\n\nfour \xff bad\nfive without newline"
    src = Source.from_bytes("x", data)
    got = evidence.lines_at(src, [1, 2, 3, 4, 5])
    assert got == {1: "one", 2: "two", 3: "", 4: "four \ufffd bad", 5: "five without newline"}
    assert evidence.lines_at(Source.from_bytes("x", data), [9]) == {}


def test_examples_quote_the_lines_a_full_read_keeps():
    res = CliRunner().invoke(app, ["analyze", "samples/ticket-bundle/ticket.zip", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    full = read_events(["samples/ticket-bundle/ticket.zip"], IngestOptions(jobs=1)).events
    raw = {f"{s}:{loc}": r for s, loc, r in zip(full["source"], full["locator"], full["raw"], strict=True)}
    examples = [e for f in doc["findings"] for e in f["examples"]]
    texts = [e for e in examples if "auth.log" in e["where"]]
    assert texts, "the bundle's Linux findings quote its auth logs (plain and .gz members)"
    assert any(".gz" in e["where"] for e in texts)
    for e in examples:
        assert e["text"] is not None and e["text"] == raw[e["where"]], e


def test_standard_input_keeps_its_lines(tmp_path):
    log = b"".join(
        f"Nov  3 14:{m:02d}:00 web9 sshd[{100 + m}]: Failed password for root from 203.0.113.9 port 5{m:04d} ssh2\n".encode()
        for m in range(12)
    )
    res = CliRunner().invoke(app, ["analyze", "-", "--format", "json", "--year", "2025"], input=log)
    assert res.exit_code == 0, res.output
    examples = [e for f in json.loads(res.stdout)["findings"] for e in f["examples"]]
    assert examples and all(e["text"] and "Failed password" in e["text"] for e in examples)
