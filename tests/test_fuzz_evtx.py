"""Property tests of damaged EVTX files, both backends: real files (the samples, small logs
of ../shared/data, a small file of the project's writer) with bits flipped, cut short,
a chunk zeroed, a chunk repeated. Whatever the damage: no exception; every record that
lies wholly before the damage in its chunk (or in a chunk left sound) comes out, decoded
as in the sound file (unless a damaged copy of it is in the file too); no record comes out
twice; and when the damage can be seen, a
warning names the chunk (or the file header) where it is.

The suite runs a fixed-seed profile of a few dozen files; HYPOTHESIS_PROFILE=fuzz (`make
fuzz-evtx`) a long random campaign that keeps every input failing a property under
tests/files/crashes/evtx/ (as the source's name and the damage done: a JSON file), where
test_saved_crashes_read_cleanly makes it again and checks it from then on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
import struct
import tempfile
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.ingest import IngestOptions, evtx, read_events

ROOT = Path(__file__).resolve().parent.parent
CRASHES = ROOT / "tests" / "files" / "crashes" / "evtx"
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SAMPLES = [
    "samples/windows-firewall-blocked/Security.evtx",  # one chunk
    "samples/windows-dc-probe/Security.evtx",  # two full chunks
    "samples/windows-member-mismatch/Security.evtx",  # a full chunk, then one of 8 records
]
SHARED = [
    "evtx/WithSecureLabs__chainsaw/tests/evtx/security_sample.evtx",  # one chunk of 10 records
    "evtx/Velocidex__velociraptor/artifacts/testdata/files/RDPAuth_System.evtx",  # a stale header, empty slots
    "evtx/omerbenamram__evtx/samples/security.evtx",  # 26 chunks, then empty ones
]
HEADER, CHUNK = 0x1000, 0x10000
NO_CRC32 = 0x4
PLACE = re.compile(r"chunks? \d+(–\d+)? \(offset 0x[0-9a-f]+|EVTX file header|the file ends after \d+ chunks")


def _settings(examples: int) -> settings:
    """The suite's fixed seed and bound, or the campaign's many random examples."""
    return settings(
        max_examples=examples * 50 if FUZZ else examples,
        derandomize=not FUZZ,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------------------
# the sound files, as an oracle: each chunk's records by its own header


@dataclass(frozen=True)
class Sound:
    """A sound file: its bytes, and per 64 KiB slot the records a chunk there holds
    ((offset, size, id), empty for a blank slot) and where its records end."""

    name: str
    data: bytes
    records: tuple[tuple[tuple[int, int, int], ...], ...]
    free: tuple[int, ...]

    @property
    def used(self) -> int:
        """Slots up to the last that holds records."""
        return max((i + 1 for i, recs in enumerate(self.records) if recs), default=0)


def _sound(name: str, data: bytes) -> Sound:
    records, free = [], []
    for i in range((len(data) - HEADER) // CHUNK):
        chunk = data[HEADER + i * CHUNK : HEADER + (i + 1) * CHUNK]
        recs: list[tuple[int, int, int]] = []
        end = 0
        if chunk[:8] == b"ElfChnk\x00":
            end = struct.unpack_from("<I", chunk, 48)[0]
            at = 0x200
            while at < end:
                size, rid = struct.unpack_from("<IQ", chunk, at + 4)
                recs.append((at, size, rid))
                at += size
        records.append(tuple(recs))
        free.append(end)
    return Sound(name, data, tuple(records), tuple(free))


def _tiny() -> bytes:
    """A small file of the project's writer: three chunks of four records (one large)."""
    from analyzer.evtxwriter import SECURITY, Event, EvtxWriter

    t0 = dt.datetime(2025, 1, 2, 3, 4, 5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.evtx"
        with EvtxWriter(path) as w:
            for i in range(12):
                data = {"TargetUserName": f"user{i}", "IpAddress": f"203.0.113.{i}", "Status": "0xc000006d",
                        "SubStatus": "0xc000006a", "LogonType": 3}  # fmt: skip
                if i % 4 == 3:
                    data["Padding"] = "x" * 24_000  # the chunk's last record: the next starts a chunk
                w.write(Event(4625, "Security", SECURITY, "DC01", t0 + dt.timedelta(seconds=i), data))
        return path.read_bytes()


@cache
def _system_ids(name: str) -> dict[int, int]:
    """Record id in a record's header → the EventRecordID of its System part (the locator
    of its event): the same in a log Windows wrote, not in records cut out of a larger one."""
    from evtx import PyEvtxParser

    out = {}
    for r in PyEvtxParser(io.BytesIO(_source(name).data)).records_json():
        out[r["event_record_id"]] = evtx.record_from_json(json.loads(r["data"])).record_id
    return out


@cache
def _source(name: str) -> Sound:
    if name == "tiny":
        return _sound(name, _tiny())
    path = ROOT / name if name.startswith("samples/") else shared_path(*name.split("/"))
    return _sound(name, path.read_bytes())


# ---------------------------------------------------------------------------------------
# damage


@dataclass
class Damage:
    """What was done to a sound file, in order: a chunk repeated (copied to another slot),
    a chunk zeroed, bits flipped (file offsets), the file cut."""

    repeat: tuple[int, int] | None = None
    zero: int | None = None
    flips: list[tuple[int, int]] = field(default_factory=list)
    cut: int | None = None


@st.composite
def damages(draw, sound: Sound) -> Damage:
    slots = max(sound.used, 1)
    d = Damage()
    if draw(st.integers(0, 4)) == 0:
        d.repeat = (draw(st.integers(0, slots - 1)), draw(st.integers(0, slots)))
    if draw(st.integers(0, 4)) == 0:
        d.zero = draw(st.integers(0, slots - 1 + (d.repeat is not None)))
    size = HEADER + (slots + (d.repeat is not None)) * CHUNK
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.one_of(st.integers(8, HEADER - 1), st.integers(HEADER, size - 1)))  # (a flipped
        d.flips.append((where, draw(st.integers(0, 7))))  # file magic is not an EVTX file any more)
    if draw(st.integers(0, 2)) == 0 or not (d.repeat or d.zero is not None or d.flips):
        d.cut = draw(st.integers(0, size))
    return d


@dataclass
class Damaged:
    """A damaged file: its bytes, the records that must come out of it (those of ``exact``
    as in the sound file: no damaged copy of them is in the file either), and whether its
    damage can be seen (a warning must then name where)."""

    data: bytes
    must: set[int]
    seen: bool
    exact: set[int] = field(default_factory=set)


def _apply(sound: Sound, d: Damage) -> Damaged:
    data = sound.data
    slots = [data[HEADER + i * CHUNK : HEADER + (i + 1) * CHUNK] for i in range(len(sound.records))]
    origin: list[int | None] = list(range(len(slots)))
    seen = False
    if d.repeat:
        (i, j) = d.repeat
        slots.insert(j, slots[i])
        origin.insert(j, origin[i])
    if d.zero is not None:
        seen |= bool(origin[d.zero] is not None and sound.records[origin[d.zero]] and d.zero < _declared(data))
        slots[d.zero] = bytes(CHUNK)
        origin[d.zero] = None
    out = bytearray(data[:HEADER] + b"".join(slots) + data[HEADER + len(sound.records) * CHUNK :])
    masks: Counter = Counter()
    for at, bit in d.flips:
        masks[at] ^= 1 << bit
    for at, mask in masks.items():
        out[at] ^= mask
    flipped = {at for at, mask in masks.items() if mask}  # (a bit flipped twice is not)
    if _head_checked(bytes(out)) and any(8 <= at < 120 or 124 <= at < 128 for at in flipped):
        seen = True
    cut = len(out) if d.cut is None else d.cut
    if d.repeat and sound.records[d.repeat[0]]:  # both copies still whole in the file
        seen |= sum(o == d.repeat[0] and HEADER + (k + 1) * CHUNK <= cut for k, o in enumerate(origin)) > 1
    must, spoilt = set(), set()
    for k, o in enumerate(origin):
        if o is None:
            continue
        base = HEADER + k * CHUNK
        mine = sorted(at - base for at in flipped if base <= at < base + CHUNK)
        chunk = out[base : base + CHUNK]
        if mine and not (len(chunk) >= 124 and struct.unpack_from("<I", chunk, 120)[0] & NO_CRC32):
            seen |= any(at < 120 or 124 <= at < sound.free[o] for at in mine) and sound.records[o] != ()
        for off, size, rid in sound.records[o]:
            if base + off + size <= cut:  # in the file, whole
                (spoilt if any(0x200 <= at < off + size for at in mine) else must).add(rid)
        if base < cut < base + CHUNK and sound.records[o]:
            seen = True  # a chunk cut short
        if cut <= base and k < _declared(data) and sound.records[o]:
            seen = True  # a chunk the file header counts, gone
    return Damaged(bytes(out[:cut]), must, seen, must - spoilt)


def _declared(data: bytes) -> int:
    return struct.unpack_from("<H", data, 42)[0] if _head_checked(data) else 0


def _head_checked(data: bytes) -> bool:
    """The file header's checksum is kept (so a damaged one can be told)."""
    flags, crc = struct.unpack_from("<II", data, 120)
    return not flags & NO_CRC32 and crc == zlib.crc32(data[:120])


_KEPT: dict[tuple, Path] = {}  # (test, kind of failure, where it failed) → the case kept for it in this run


def _keep_crash(test: str, source: str, d: Damage, exc: BaseException) -> None:
    """In the campaign, a failing input is kept as a regression case: how to make it (the
    source file's name and the damage done, not its bytes: they may come from
    ../shared/data), the last one for a test, kind of failure and place (the one
    Hypothesis shrank it to)."""
    if not FUZZ:
        return
    frames = traceback.extract_tb(exc.__traceback__)
    line = next((f.lineno for f in reversed(frames) if f.filename == __file__), 0)
    case = json.dumps({"test": test, "source": source, "damage": dataclasses.asdict(d)}, sort_keys=True)
    key = (test, type(exc).__name__, line)
    if key in _KEPT:
        _KEPT[key].unlink(missing_ok=True)
    CRASHES.mkdir(parents=True, exist_ok=True)
    _KEPT[key] = CRASHES / f"{test}-{hashlib.sha1(case.encode()).hexdigest()[:12]}.json"
    _KEPT[key].write_text(case + "\n")


# ---------------------------------------------------------------------------------------
# reading


def _read(data: bytes, backend: str, tmp: Path) -> tuple:
    """Read as `authtriage` does → (report, events, every record id the parser passed on)."""
    path = tmp / "damaged.evtx"
    path.write_bytes(data)
    ids: list = []
    real = evtx._note_ids

    def noting(counts, seen, skipped):
        ids.extend(seen)
        real(counts, seen, skipped)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evtx, "_note_ids", noting)
        res = read_events([str(path)], IngestOptions(evtx_backend=backend, jobs=1))
    return res.inputs[0], res.events, ids


@cache
def _sound_events(name: str, backend: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        _, events, _ = _read(_source(name).data, backend, Path(tmp))
    return events.drop(columns=["source"]).set_index("locator", drop=False).astype(object)


def _check_rust(sound: Sound, damaged: Damaged, tmp: Path) -> None:
    rep, events, ids = _read(damaged.data, "rust", tmp)
    if len(damaged.data) < 8:  # not even the magic: not an EVTX file
        assert rep.skipped and rep.error is None
        return
    if len(damaged.data) < HEADER:
        assert rep.error is not None and rep.error.startswith("EVTX file header is incomplete"), rep.error
        return
    assert rep.error is None, rep.error
    twice = [rid for rid, n in Counter(ids).items() if n > 1]
    assert not twice, f"records read twice: {twice[:10]}"
    assert damaged.must <= set(ids), f"records lost: {sorted(damaged.must - set(ids))[:10]}; {rep.warnings}"
    exact = {_system_ids(sound.name)[rid] for rid in damaged.exact}
    want = _sound_events(sound.name, "rust")
    want = want[want["locator"].isin(exact)]
    got = events.drop(columns=["source"]).set_index("locator", drop=False).astype(object)
    pd.testing.assert_frame_equal(got.loc[got["locator"].isin(exact)].sort_index(), want.sort_index())
    if damaged.seen:
        assert any(PLACE.search(w) for w in rep.warnings), rep.warnings


def _check_python(sound: Sound, damaged: Damaged) -> None:
    """The Python backend's records, all of them (not only the events a report uses)."""
    from analyzer.errors import InputError

    said: list[str] = []
    counts = {"records": 0}
    try:
        records = list(evtx.read_python(damaged.data, lambda channel, eid: True, said.append, counts))
    except InputError as exc:
        assert len(damaged.data) < HEADER and str(exc).startswith("EVTX file header is incomplete")
        return
    assert len(damaged.data) >= HEADER
    ids = Counter(r.record_id for r in records)  # (their System EventRecordIDs)
    assert not [rid for rid, n in ids.items() if n > 1], "records read twice"
    must = {_system_ids(sound.name)[rid] for rid in damaged.must}
    assert must <= set(ids), f"records lost: {sorted(must - set(ids))[:10]}; {said}"
    exact = {_system_ids(sound.name)[rid] for rid in damaged.exact}
    whole = {r.record_id: r for r in _sound_records(sound.name)}
    assert sorted((r for r in records if r.record_id in exact), key=lambda r: r.record_id) == [
        whole[rid] for rid in sorted(exact)
    ]
    if damaged.seen:
        assert any(PLACE.search(w) for w in said), said


@cache
def _sound_records(name: str) -> list:
    return list(evtx.read_python(_source(name).data, lambda channel, eid: True, lambda _: None, {"records": 0}))


def _run(test: str, sound: Sound, d: Damage, tmp: Path) -> None:
    damaged = _apply(sound, d)
    try:
        if test == "rust":
            _check_rust(sound, damaged, tmp)
        else:
            _check_python(sound, damaged)
    except Exception as exc:
        _keep_crash(test, sound.name, d, exc)
        raise


# ---------------------------------------------------------------------------------------
# the properties


def test_rust_backend_reads_damaged_files(tmp_path):
    names = [*SAMPLES, "tiny", *SHARED]
    for name in names:
        _source(name)  # (a shared file missing: a failure in CI)

    @_settings(60)
    @given(st.data())
    def run(data):
        sound = _source(data.draw(st.sampled_from(names)))
        _run("rust", sound, data.draw(damages(sound)), tmp_path)

    run()


def test_python_backend_reads_damaged_files(tmp_path):
    names = ["tiny", SHARED[0]]  # (python-evtx is slow: small files)
    for name in names:
        _source(name)

    @_settings(12)
    @given(st.data())
    def run(data):
        sound = _source(data.draw(st.sampled_from(names)))
        _run("python", sound, data.draw(damages(sound)), tmp_path)

    run()


def test_damage_model_sees_what_it_should():
    """The oracle itself: a cut mid-chunk keeps the records before it; a flipped record
    byte loses that record and those after it in the chunk (not required), a repeated
    chunk is damage that can be seen."""
    sound = _source(SAMPLES[0])
    assert len(sound.records[0]) == 96
    cut = _apply(sound, Damage(cut=34672))
    assert cut.must == set(range(1000, 1072)) and cut.seen
    off, size, rid = sound.records[0][10]
    flip = _apply(sound, Damage(flips=[(HEADER + off + 30, 0)]))
    assert flip.must == set(range(1000, rid)) and flip.seen
    slack = _apply(sound, Damage(flips=[(HEADER + CHUNK - 10, 0)]))
    assert slack.must == set(range(1000, 1096)) and not slack.seen
    again = _apply(sound, Damage(repeat=(0, 1)))
    assert again.must == set(range(1000, 1096)) and again.seen and len(again.data) == HEADER + 2 * CHUNK


def test_saved_crashes_read_cleanly(tmp_path):
    """Every failing input a campaign kept, made again and checked again."""
    cases = sorted(CRASHES.glob("*.json"))
    assert cases, "tests/files/crashes/evtx/ holds the campaigns' cases"
    for path in cases:
        case = json.loads(path.read_text())
        d = case["damage"]
        damage = Damage(
            repeat=tuple(d["repeat"]) if d["repeat"] else None,
            zero=d["zero"],
            flips=[tuple(f) for f in d["flips"]],
            cut=d["cut"],
        )
        _run(case["test"], _source(case["source"]), damage, tmp_path)
