"""Worker processes give the same events as one process, block boundaries included."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd
import pytest

from analyzer.ingest import IngestOptions, read_events, runner, textlog
from analyzer.samples import large_auth_log


def _frame(res):
    ev = res.events.astype(object)
    return ev.sort_values(["source", "locator", "action", "user"], na_position="first").reset_index(drop=True)


def test_jobs_give_identical_results(tmp_path, monkeypatch):
    path = tmp_path / "auth.log"
    path.write_text("".join(large_auth_log(20_000, seed=3)))
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 256 * 1024)  # many blocks,
    monkeypatch.setattr(runner, "WHOLE_BYTES", 512 * 1024)  # shared out among the workers
    one = read_events([str(path)], IngestOptions(year=2025, jobs=1))
    two = read_events([str(path)], IngestOptions(year=2025, jobs=2))
    assert len(one.events) > 10_000
    pd.testing.assert_frame_equal(_frame(one), _frame(two))
    a, b = one.inputs[0], two.inputs[0]
    assert (a.lines, a.used, a.irrelevant, a.unparsed, a.events) == (
        b.lines,
        b.used,
        b.irrelevant,
        b.unparsed,
        b.events,
    )
    assert a.lines >= 20_000


def test_year_rollover_across_a_block_boundary(tmp_path, monkeypatch):
    line = "{} h sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2\n"
    dec = "".join(line.format(f"Dec 31 23:59:{i % 60:02d}") for i in range(2000))
    jan = "".join(line.format(f"Jan  1 00:00:{i % 60:02d}") for i in range(2000))
    path = tmp_path / "auth.log"
    path.write_text(dec + jan)
    monkeypatch.setattr(textlog, "BLOCK_BYTES", len(dec))  # the turn of the year falls between blocks
    monkeypatch.setattr(runner, "WHOLE_BYTES", len(dec))  # that the workers read
    for jobs in (1, 2):
        ev = read_events([str(path)], IngestOptions(year=2024, jobs=jobs)).events
        years = ev.sort_values("locator")["timestamp"].dt.year.tolist()
        assert years == [2024] * 2000 + [2025] * 2000, jobs


def test_many_files_in_workers_give_the_same_results_in_order(tmp_path):
    for i in range(6):
        (tmp_path / f"auth{i}.log").write_text("".join(large_auth_log(2_000, seed=i)))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    one = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=1))
    two = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=2))
    assert [r.name for r in one.inputs] == [r.name for r in two.inputs]
    assert [(r.lines, r.events, r.error) for r in one.inputs] == [(r.lines, r.events, r.error) for r in two.inputs]
    pd.testing.assert_frame_equal(_frame(one), _frame(two))


def test_archive_members_in_workers_give_the_same_results(tmp_path):
    import gzip
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(5):
            z.writestr(f"host{i}/auth.log", "".join(large_auth_log(1_500, seed=10 + i)))
        z.writestr("host5/auth.log.2.gz", gzip.compress("".join(large_auth_log(1_000, seed=20)).encode()))
        z.writestr("junk.bin", bytes(range(256)) * 8)
    (tmp_path / "ticket.zip").write_bytes(buf.getvalue())
    one = read_events([str(tmp_path / "ticket.zip")], IngestOptions(year=2025, jobs=1))
    two = read_events([str(tmp_path / "ticket.zip")], IngestOptions(year=2025, jobs=2))
    names = [r.name for r in two.inputs]
    assert names == [r.name for r in one.inputs] and any(n.endswith("ticket.zip!host5/auth.log.2.gz") for n in names)
    assert [(r.lines, r.events, r.skipped, r.skip_reason) for r in one.inputs] == [
        (r.lines, r.events, r.skipped, r.skip_reason) for r in two.inputs
    ]
    pd.testing.assert_frame_equal(_frame(one), _frame(two))


def test_a_member_broken_midway_keeps_what_came_before(tmp_path):
    import zlib

    text = "".join(large_auth_log(3_000, seed=7)).encode()
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    data = comp.compress(text) + comp.flush()
    broken = data[: len(data) // 2] + b"\x00" * 64 + data[len(data) // 2 + 64 :]
    path = tmp_path / "auth.log.3.gz"
    path.write_bytes(broken)
    for jobs in (1, 2):
        res = read_events([str(path)], IngestOptions(year=2025, jobs=jobs))
        (rep,) = res.inputs
        assert rep.error and "before" in rep.error, (jobs, rep.error)
        assert rep.lines > 1_000 and len(res.events) > 0, jobs  # the lines before the fault


def test_analysis_split_by_host_gives_the_same_report(tmp_path, monkeypatch):
    import analyzer.analysis as analysis
    from analyzer.classify import load_rules
    from analyzer.config import Profile
    from analyzer.summary import summarize

    for i in range(4):
        text = "".join(large_auth_log(3_000, seed=30 + i)).replace("web01", f"w{i}").replace("db01", f"d{i}")
        (tmp_path / f"auth{i}.log").write_text(text)
    monkeypatch.setattr(analysis, "PARALLEL_MIN_EVENTS", 0)
    used = []
    original = analysis._partition
    monkeypatch.setattr(analysis, "_partition", lambda ev, n: used.append(n) or original(ev, n))
    from analyzer.evidence import fill_examples

    docs = []
    for jobs in (1, 2):
        opts = IngestOptions(year=2025, jobs=jobs, lazy_raw=True)  # quoted lines read again
        res = read_events([str(tmp_path)], opts)
        formats = {r.name: r.format for r in res.inputs}
        calls = []

        def examples(found, jobs, formats=formats, opts=opts, calls=calls):  # in each share's process
            calls.append(jobs)
            fill_examples(found, [str(tmp_path)], formats, opts.limits, jobs)

        docs.append(summarize(res, opts, Profile(), load_rules(), examples=examples))
        assert calls == [1]  # one process each: the whole (jobs 1) or the parent's share (jobs 2)
    assert used == [2]  # the second run did split the hosts between two processes
    assert docs[0]["findings"] and docs[0] == docs[1]
    assert len({f["host"] for f in docs[0]["findings"]}) >= 4
    quoted = [(f["host"], ex["text"]) for f in docs[1]["findings"] for ex in f["examples"]]
    assert quoted and all(text and f" {host} " in text for host, text in quoted)  # the lines themselves


def test_large_evtx_in_chunk_ranges_gives_the_same_results(tmp_path, monkeypatch):
    """With several jobs a large EVTX file is parsed in chunk ranges by workers; the
    events (in record order) and the account of records match one parser over the file."""
    from analyzer.ingest import winreaders
    from analyzer.ingest.evtx import chunk_ranges
    from analyzer.samples_windows import large_security_evtx

    path = tmp_path / "Security.evtx"
    large_security_evtx(path, 6_000, seed=5)
    monkeypatch.setattr(winreaders, "PART_CHUNKS", 4)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 64 * 1024)  # not sent to one worker whole
    parts = chunk_ranges(str(path), 4, 2)
    assert parts is not None and len(parts) >= 5 and len(parts) % 2 == 0
    shared: list[int] = []
    real = winreaders._read_parts
    monkeypatch.setattr(winreaders, "_read_parts", lambda path, parts, *a: shared.append(len(parts)) or real(path, parts, *a))
    one = read_events([str(path)], IngestOptions(jobs=1))
    two = read_events([str(path)], IngestOptions(jobs=2))
    assert shared == [len(parts)] and len(one.events) > 3_000
    pd.testing.assert_frame_equal(one.events.astype(object), two.events.astype(object))
    assert two.events["locator"].is_monotonic_increasing
    keys = ("records", "used", "irrelevant", "unparsed", "events", "first_record", "last_record", "warnings")
    assert [getattr(one.inputs[0], k) for k in keys] == [getattr(two.inputs[0], k) for k in keys]
    assert one.inputs[0].records == 6_000
    # incremental runs skip what was read before, in every part alike
    after = int(one.events["locator"].iloc[len(one.events) // 2])
    one = read_events([str(path)], IngestOptions(jobs=1, evtx_after=after))
    two = read_events([str(path)], IngestOptions(jobs=2, evtx_after=after))
    assert one.inputs[0].records == two.inputs[0].records < 6_000
    pd.testing.assert_frame_equal(one.events.astype(object), two.events.astype(object))


def test_chunk_ranges_cover_what_the_file_holds(tmp_path):
    """Ranges end at the last chunk that is not blank (a log not yet full is followed by
    empty space), reach leftovers that are not blank (the parser should see and report
    them), and a file that ends in a chunk cut short is left whole."""
    from analyzer.ingest.evtx import chunk_ranges
    from analyzer.samples_windows import large_security_evtx

    path = tmp_path / "Security.evtx"
    large_security_evtx(path, 3_000, seed=6)
    data = path.read_bytes()
    chunks = (len(data) - 4096) // 65536
    assert chunk_ranges(str(path), 2) == [(lo, min(lo + 2, chunks)) for lo in range(0, chunks, 2)]
    assert chunk_ranges(str(path), chunks) is None  # not worth splitting
    path.write_bytes(data + bytes(65536 * 5))  # empty space after the chunks
    assert chunk_ranges(str(path), 2)[-1][1] == chunks
    path.write_bytes(data + bytes(65536 * 2) + b"junk" + bytes(65532))  # leftovers after a gap
    assert chunk_ranges(str(path), 2)[-1][1] == chunks + 3
    path.write_bytes(data + data[4096 : 4096 + 30000])  # a chunk cut short
    assert chunk_ranges(str(path), 2) is None
    path.write_bytes(data)  # for several workers: a multiple of them, of about the size asked
    for workers in (2, 3):
        for per in (2, 3, 5):
            ranges = chunk_ranges(str(path), per, workers)
            sizes = [hi - lo for lo, hi in ranges]
            assert ranges[0][0] == 0 and ranges[-1][1] == chunks and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
            assert len(ranges) % workers == 0 and max(sizes) - min(sizes) <= 1, (workers, per, ranges)
            assert abs(len(ranges) - chunks / per) <= workers


def test_read_workers_exit_when_the_read_is_done(tmp_path, monkeypatch):
    """Idle read workers would hold their memory through the analysis: none are kept."""
    path = tmp_path / "auth.log"
    path.write_text("".join(large_auth_log(4_000, seed=4)))
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 128 * 1024)
    from analyzer.ingest import workers

    used: list[int] = []
    real = workers.pool
    monkeypatch.setattr(workers, "pool", lambda jobs: used.append(jobs) or real(jobs))
    res = read_events([str(path)], IngestOptions(year=2025, jobs=2))
    assert used and len(res.events) > 1_000
    assert workers._POOLS == {}


def test_consuming_concatenation_lets_the_frames_go():
    """concat_events(consume=True) empties the caller's list and keeps nothing of the
    frames alive: on a large log they would otherwise double the peak while later steps run."""
    import gc
    import weakref

    from analyzer.schema import concat_events, conform

    frames = [
        conform(pd.DataFrame({"user": pd.Categorical([f"u{i}", "root"]), "pid": pd.array([i, None], dtype="Int64")}))
        for i in range(3)
    ]
    frames.append(conform(pd.DataFrame({"user": pd.Categorical([])})))  # an empty one, filtered out
    refs = [weakref.ref(f) for f in frames]
    out = concat_events(frames, consume=True)
    gc.collect()
    assert frames == [] and all(r() is None for r in refs)
    assert out["user"].tolist() == ["u0", "root", "u1", "root", "u2", "root"]
    assert out["pid"].tolist()[::2] == [0, 1, 2]


def test_pools_let_go_are_joined_before_the_exit_wakes_them():
    # Python 3.11 wakes live pool managers at exit without a lock against their closing
    # the wake-up pipe: now and then "OSError: [Errno 9] Bad file descriptor" on stderr
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from analyzer.ingest import workers

    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    assert list(pool.map(abs, [-1, -2])) == [1, 2]
    manager = pool._executor_manager_thread
    workers.let_go(pool)
    assert manager in workers._LEAVING
    hooks = [getattr(h, "func", h) for h in getattr(threading, "_threading_atexits", [])]
    assert workers.join_let_go in hooks  # run newest first: before concurrent.futures' own
    assert hooks.index(workers.join_let_go) > max(i for i, h in enumerate(hooks) if h.__name__ == "_python_exit")
    workers.join_let_go()
    assert not manager.is_alive() and not workers._LEAVING
    assert pool._executor_manager_thread is None  # shut down, not merely forgotten


def test_a_run_that_lets_pools_go_exits_quietly(tmp_path):
    import subprocess
    import sys

    script = (
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from analyzer.ingest.workers import let_go\n"
        "for _ in range(8):\n"
        "    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('fork'))\n"
        "    assert sum(pool.map(abs, range(-50, 0))) == 1275\n"
        "    let_go(pool)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""


def test_categorical_union_keeps_first_appearance_order_and_nulls():
    import numpy as np

    from analyzer.schema import _union

    a = pd.Series(pd.Categorical(["x", None, "y"]))
    empty = pd.Series(pd.Categorical.from_codes(np.array([-1, -1]), categories=[]))
    b = pd.Series(pd.Categorical(["z", "y"], categories=["z", "y"]))
    got = _union([a, empty, b])
    assert list(got.categories) == ["x", "y", "z"]
    assert [None if pd.isna(v) else v for v in got] == ["x", None, "y", None, None, "z", "y"]
    mixed = _union([a, pd.Series(pd.Categorical([1, 2]))])  # categories of other dtypes
    assert [None if pd.isna(v) else v for v in mixed] == ["x", None, "y", 1, 2]
    # text categories typed `str` in one part and `object` in another: joined as object
    obj = pd.Series(pd.Categorical.from_codes([1, 0, -1], categories=pd.Index(["q", "x"], dtype=object)))
    text = _union([b, obj, a])
    assert list(text.categories) == ["z", "y", "q", "x"] and text.categories.dtype == object
    assert [None if pd.isna(v) else v for v in text] == ["z", "y", "x", "q", None, "x", None, "y"]


def test_a_one_shot_run_keeps_what_it_froze_frozen(monkeypatch):
    import gc

    from analyzer import _memory

    monkeypatch.setattr(_memory, "_THAW", True)
    monkeypatch.setattr(_memory, "large_arrays_from_heap", lambda limit=0: None)
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        _memory.thaw()  # a library caller (the server, a scheduled job): back to the collector
        assert gc.get_freeze_count() == 0
        _memory.one_run()
        gc.freeze()
        _memory.thaw()  # the CLI's one run: stays frozen until the process exits
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_large_file_between_small_ones_in_workers_gives_the_same_results(tmp_path, monkeypatch):
    # small files go to the pool whole; the large one's blocks share that pool, which is let
    # go once its blocks are in while the small files after it still need workers
    from analyzer.ingest import workers

    monkeypatch.setattr(textlog, "BLOCK_BYTES", 128 * 1024)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 256 * 1024)
    for i, lines in enumerate([1_500, 1_500, 12_000, 1_500, 1_500]):
        (tmp_path / f"auth{i}.log").write_text("".join(large_auth_log(lines, seed=40 + i)))
    assert (tmp_path / "auth2.log").stat().st_size > 4 * 128 * 1024  # several blocks
    one = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=1))
    two = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=2))
    assert [(r.name, r.lines, r.events, r.error) for r in one.inputs] == [
        (r.name, r.lines, r.events, r.error) for r in two.inputs
    ]
    assert all(r.events and r.error is None for r in two.inputs)
    pd.testing.assert_frame_equal(_frame(one), _frame(two))
    assert not workers._POOLS  # every pool let go when the read is done


def test_a_worker_keeps_free_heap_for_its_next_task_up_to_a_bound():
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from analyzer import _memory as m\n"
        "if m._free_heap() is None: print('unknown'); raise SystemExit\n"
        "m.keep_heap()\n"
        "a = np.ones(100 << 17); del a\n"  # 100 MB freed: kept for the next task
        "kept = m._free_heap(); m.release(); after_small = m._free_heap()\n"
        "a, b = np.ones(200 << 17), np.ones(200 << 17); del a, b\n"  # 400 MB freed: over the bound
        "big = m._free_heap(); m.release(); after_big = m._free_heap()\n"
        "print(kept >= 100 << 20, after_small >= 100 << 20, big >= 400 << 20, after_big < 64 << 20)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "unknown":  # no mallinfo2: not glibc ≥ 2.33, where release() always trims
        import platform

        lib, version = platform.libc_ver()
        assert lib != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 33)
        return
    assert done.stdout.split() == ["True", "True", "True", "True"]


def test_usable_cpus_honour_cgroup_quotas(tmp_path):
    import os

    from analyzer.ingest.workers import cgroup_cpu_quota, usable_cpus

    def tree(files: dict[str, str], cgroup: str) -> tuple[str, str]:
        root = tmp_path / f"fs{len(list(tmp_path.iterdir()))}"
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        root.mkdir(exist_ok=True)
        (root / "self-cgroup").write_text(cgroup)
        return str(root), str(root / "self-cgroup")

    # cgroup v2, a container's own root: docker --cpus 1.5
    assert cgroup_cpu_quota(*tree({"cpu.max": "150000 100000\n"}, "0::/\n")) == 1.5
    # v2, no limit
    assert cgroup_cpu_quota(*tree({"cpu.max": "max 100000\n"}, "0::/\n")) is None
    # v2, a systemd service under a slice: the smallest quota on the way up counts
    root, me = tree(
        {"system.slice/cpu.max": "300000 100000", "system.slice/x.service/cpu.max": "max 100000"},
        "0::/system.slice/x.service\n",
    )
    assert cgroup_cpu_quota(root, me) == 3.0
    # cgroup v1, cpu and cpuacct mounted together; a host path the container does not see
    root, me = tree(
        {"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
        "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n",
    )
    assert cgroup_cpu_quota(root, me) == 2.0
    # v1 without a quota (-1), and no cgroup information at all
    root, me = tree({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "4:cpu:/\n")
    assert cgroup_cpu_quota(root, me) is None
    assert cgroup_cpu_quota(str(tmp_path / "none"), str(tmp_path / "none" / "cgroup")) is None
    # the count: at least one, at most the CPUs this process may run on, the quota rounded up
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    root, me = tree({"cpu.max": "50000 100000"}, "0::/\n")
    assert usable_cpus(root, me) == 1
    root, me = tree({"cpu.max": "max 100000"}, "0::/\n")
    assert usable_cpus(root, me) == affinity
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


def _lines_of(res):
    rep = res.inputs[0]
    return (rep.lines, rep.used, rep.irrelevant, rep.unparsed, rep.events, rep.error)


def test_workers_reading_byte_ranges_of_a_file_find_every_line_once(tmp_path, monkeypatch):
    """A large file's byte ranges, read by the workers themselves: a line belongs to the
    range it begins in, whatever the boundaries cut (a line longer than several ranges, a
    boundary just after a newline, CRLF, no newline at the end)."""
    import random

    rng = random.Random(5)
    lines = "".join(large_auth_log(1_000, seed=9)).splitlines(keepends=True)
    lines[100] = lines[100].rstrip("\n") + " " + "x" * 9_000 + "\n"  # spans several ranges
    text = "".join(line.replace("\n", "\r\n") if rng.random() < 0.2 else line for line in lines).rstrip("\n")
    path = tmp_path / "auth.log"
    path.write_bytes(text.encode())
    monkeypatch.setattr(runner, "WHOLE_BYTES", 1024)
    one = read_events([str(path)], IngestOptions(year=2025, jobs=1))
    used: list[list] = []
    run_ranges = textlog._run_ranges
    monkeypatch.setattr(textlog, "_run_ranges", lambda *a: used.append(a[1]) or run_ranges(*a))
    after_newline = len(text[: text.index("\n", 5_000) + 1].encode())  # a boundary right after a newline
    for block in (8_191, 16_384, after_newline):
        monkeypatch.setattr(textlog, "BLOCK_BYTES", block)
        two = read_events([str(path)], IngestOptions(year=2025, jobs=2))
        assert _lines_of(two) == _lines_of(one), block
        pd.testing.assert_frame_equal(_frame(one), _frame(two))
    assert len(used) == 3 and all(len(r) > 2 for r in used)  # the ranges were read by the workers


def test_a_file_past_the_size_limit_keeps_its_lines_before_the_limit_with_workers_too(tmp_path, monkeypatch):
    from analyzer.ingest.sources import Limits

    path = tmp_path / "auth.log"
    path.write_text("".join(large_auth_log(3_000, seed=2)))
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 16 * 1024)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 1024)
    limit = path.stat().st_size // 2
    one, two = (
        read_events([str(path)], IngestOptions(year=2025, jobs=jobs, limits=Limits(max_total_bytes=limit)))
        for jobs in (1, 2)
    )
    assert "total uncompressed input exceeds" in two.inputs[0].error
    assert 0 < two.inputs[0].lines < 3_000 and len(two.events) > 0
    assert _lines_of(one) == _lines_of(two)


_REAL_RANGE = textlog._syslog_range


def _range_failing_past_96k(path, start, end, keep_raw, lean=False):
    """A range reader whose disk fails from byte 96 KiB on (module level: workers unpickle it)."""
    from analyzer.errors import InputError

    if start >= 3 * 32 * 1024:
        raise InputError("cannot read: [Errno 5] Input/output error")
    return _REAL_RANGE(path, start, end, keep_raw, lean)


def test_a_byte_range_that_cannot_be_read_keeps_the_lines_before_it(tmp_path, monkeypatch):
    path = tmp_path / "auth.log"
    path.write_text("".join(large_auth_log(3_000, seed=6)))
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 32 * 1024)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 1024)
    monkeypatch.setattr(textlog, "_syslog_range", _range_failing_past_96k)
    res = read_events([str(path)], IngestOptions(year=2025, jobs=2))
    rep = res.inputs[0]
    assert rep.error.startswith("cannot read: [Errno 5] Input/output error (after line "), rep.error
    assert "the lines before it were read" in rep.error
    assert 0 < rep.lines < 3_000 and len(res.events) > 0
    assert res.events["locator"].max() <= rep.lines


def test_the_first_line_that_begins_in_a_byte_range(monkeypatch):
    """Found by reading from the range's start, never past its end; against the definition
    (a newline as the file's last byte gives the file's end, where nothing is left to read)."""
    import io
    import random

    monkeypatch.setattr(textlog, "READ_BYTES", 7)  # the search crosses several reads
    rng = random.Random(8)
    for _ in range(300):
        data = bytes(rng.choice(b"ab\n" if rng.random() < 0.5 else b"abcdefgh\n") for _ in range(rng.randint(2, 80)))
        start = rng.randint(1, len(data) - 1)  # ranges begin before the end of the file
        end = rng.choice([None, rng.randint(start, len(data) + 5)])
        stop = len(data) + 1 if end is None else min(end, len(data) + 1)  # the file's end counts: nothing to read
        want = next((p for p in range(start, stop) if data[p - 1] == 10), None)
        fh = io.BytesIO(data)
        assert textlog._line_start(fh, start, end) == want, (data, start, end)
        assert end is None or fh.tell() < end + 7  # read no further than one read past the range


def test_analysis_in_host_batches_gives_the_same_result(tmp_path, monkeypatch):
    """A large input is classified and gathered into findings a batch of hosts at a time
    (bounded temporaries): the same classification and findings as all hosts at once."""
    import numpy as np

    import analyzer.analysis as analysis
    from analyzer.classify import load_rules
    from analyzer.config import Profile

    for i in range(3):
        text = "".join(large_auth_log(3_000, seed=40 + i)).replace("web01", f"w{i}").replace("db01", f"d{i}")
        (tmp_path / f"auth{i}.log").write_text(text)
    samples = Path(__file__).resolve().parent.parent / "samples"  # every cause's scenario, Windows too
    events = read_events([str(tmp_path), str(samples)], IngestOptions(year=2025, jobs=1)).events
    rules, profile = load_rules(), Profile()
    whole = analysis._analyze_serial(events, rules, profile)
    seen = []
    original = analysis._shares
    monkeypatch.setattr(analysis, "_shares", lambda ev, n: seen.append(n) or original(ev, n))
    monkeypatch.setattr(analysis, "BATCH_EVENTS", len(events) // 4)
    batched = analysis._analyze_serial(events, rules, profile)
    assert seen == [5]  # the hosts did go in batches
    causes = {f["cause"] for f in whole["findings"]}
    # rules that count other events of a group (preceded_by, followed_by, distinct among others) are among them
    assert {"success-after-attack", "user-typo", "probe-dc-account", "brute-force"} <= causes
    assert whole["findings"] == batched["findings"]
    for name in ("cause", "verdict", "confidence", "rule"):
        pd.testing.assert_series_equal(getattr(whole["classification"], name), getattr(batched["classification"], name))
    np.testing.assert_array_equal(whole["classification"].cadence, batched["classification"].cadence)
    assert whole["unclassified"] == batched["unclassified"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_many_small_inputs_joined_as_they_come_give_the_same_events(tmp_path, monkeypatch, jobs):
    """Inputs are taken in input order as they are read and small frames joined a few at a
    time (a frame costs ~80 KB whatever its rows): the events, their order and the reports
    are those of joining every frame at the end, larger inputs and skipped ones among them."""
    import io
    import tarfile

    line = "Mar  4 09:15:02 h{i} sshd[{i}]: Failed password for u{i} from 10.0.{j}.{k} port 22 ssh2\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(150):
            n = 40 if i % 50 == 7 else 1 + i % 3  # a few larger ones
            data = ("".join(line.format(i=i, j=r, k=i % 250) for r in range(n)) if i % 61 else "not a log\n").encode()
            info = tarfile.TarInfo(f"logs/f{i:03}.log")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "many.tar").write_bytes(buf.getvalue())
    opts = IngestOptions(year=2025, jobs=jobs)
    monkeypatch.setattr(runner, "SMALL_FRAMES", 10**9)  # every frame held to the end, joined once
    whole = read_events([str(tmp_path / "many.tar")], opts)
    monkeypatch.setattr(runner, "SMALL_FRAMES", 7)
    monkeypatch.setattr(runner, "SMALL_ROWS", 30)  # the 40-line inputs join as they are
    seen: list[str] = []
    joined = read_events([str(tmp_path / "many.tar")], opts, progress=lambda rep: seen.append(rep.name))
    assert len(whole.events) > 300 and sum(r.skipped for r in joined.inputs) == 3
    pd.testing.assert_frame_equal(joined.events, whole.events)
    assert [r.as_dict() for r in joined.inputs] == [r.as_dict() for r in whole.inputs]
    assert sorted(seen) == sorted(r.name for r in whole.inputs)


def test_analysis_split_with_a_share_without_failures(tmp_path, monkeypatch):
    """Hosts shared among workers where one share has only successes (no cause at all): it
    crashed with an IndexError (an empty category mapping) and broke every scheduled run."""
    import analyzer.analysis as analysis
    from analyzer.classify import load_rules
    from analyzer.config import Profile

    fails = "".join(
        f"Nov  3 10:{i // 60 % 60:02d}:{i % 60:02d} web1 sshd[{100 + i}]: Failed password for root "
        f"from 203.0.113.{i % 200 + 1} port {40000 + i} ssh2\n"
        for i in range(3_000)
    )
    oks = "".join(
        f"Nov  3 11:{i // 60 % 60:02d}:{i % 60:02d} web2 sshd[{100 + i}]: Accepted publickey for deploy "
        f"from 198.51.100.{i % 200 + 1} port {40000 + i} ssh2: RSA SHA256:abc\n"
        for i in range(1_000)
    )
    (tmp_path / "web1.log").write_text(fails)
    (tmp_path / "web2.log").write_text(oks)
    monkeypatch.setattr(analysis, "PARALLEL_MIN_EVENTS", 0)
    ev = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=1)).events
    serial = analysis.analyze_events(ev, load_rules(), Profile(), jobs=1)
    split = analysis.analyze_events(ev, load_rules(), Profile(), jobs=2)
    assert serial["findings"] and len(split["findings"]) == len(serial["findings"])
    for a, b in zip(serial["findings"], split["findings"], strict=True):  # shares add their prose too
        assert a == {k: b[k] for k in a}
    for name in ("cause", "verdict", "confidence", "rule"):
        a, b = getattr(serial["classification"], name), getattr(split["classification"], name)
        assert a.astype(object).tolist() == b.astype(object).tolist(), name
    web2 = (ev["host"] == "web2").to_numpy()
    assert split["classification"].cause[web2].isna().all()


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out.update(int(c) for c in (task / "children").read_text().split())
    return out


def test_workers_die_with_a_killed_analyze(tmp_path):
    """kill -9 of `analyze` while its workers read: they lived on, blocked writing to a pipe
    nobody reads (and kept what they had inherited, a scheduled run's lock among it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    text = "".join(large_auth_log(150_000, seed=11))
    for i in range(6):
        (tmp_path / f"auth{i}.log").write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "analyze", "--jobs", "2", "--year", "2025", "-o", os.devnull,
         *sorted(map(str, tmp_path.glob("auth*.log")))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
        seen |= _children(proc.pid)
        time.sleep(0.02)
    assert seen, "no worker was seen before the run ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    alive = seen
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)}
        time.sleep(0.05)
    for p in alive:  # tidy up before failing
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers outlived their parent: {sorted(alive)}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"
