"""Linux messages (sshd, PAM, sudo, su, login, account tools, netfilter, systemd) → rows.

Matching is vectorized: each message's first word is dictionary-encoded once, and each
catalog pattern runs its RE2 regex (pyarrow) only over the not-yet-matched rows of its
family whose first word it accepts. No Python loop runs per line.

:func:`match_messages` turns (program, message) arrays into matched rows;
:func:`finish_events` applies what needs the whole source: ``message repeated`` weights,
PAM lines folded into the sshd attempt of the same pid, and addresses carried across
the lines of one sshd connection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .catalog import Catalog, load_catalog

__all__ = ["match_messages", "finish_events", "normalize_program"]

_FIRST_WORD = r"^(?:(?:error|fatal): )?(?P<k>[^ ]*)"
# systemd sometimes relays sshd's text behind the kernel's own stamp
_KERNEL_STAMP = r"^kernel: ?\[ *[0-9.]+\]:? "
_SSHD_FAMILY = "sshd"
_GENERIC_REASONS = ("bad-password", "unknown-user")
_ALWAYS = (
    "action",
    "outcome",
    "service",
    "reason",
    "user",
    "domain",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "auth_method",
    "status",
)


def normalize_program(prog: pa.Array) -> pa.Array:
    """``[sshd]`` → ``sshd``; ``sshd(pam_unix)`` stays (it names the PAM module)."""
    return pc.replace_substring_regex(prog, r"^\[(.*)\]$", r"\1")


def _family_masks(cat: Catalog, prog: pa.Array) -> dict[str, np.ndarray]:
    enc = pc.dictionary_encode(prog)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    codes = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
    values = enc.dictionary.to_pylist()
    masks = {}
    for name, fam in cat.families.items():
        if "*" in fam.programs:
            masks[name] = np.ones(len(prog), dtype=bool)
            continue
        allowed = set(fam.programs)
        dmask = np.array([v in allowed for v in values] + [False], dtype=bool)
        masks[name] = dmask[codes]
    return masks


def _word_matcher(words: tuple[str, ...], vocab: list[str | None]) -> np.ndarray:
    exact = {w for w in words if not w.endswith("*")}
    prefixes = tuple(w[:-1] for w in words if w.endswith("*"))
    return np.array(
        [v is not None and (v in exact or (bool(prefixes) and v.startswith(prefixes))) for v in vocab] + [False],
        dtype=bool,
    )


def _null_empty(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def match_messages(prog: pa.Array, msg: pa.Array, catalog: Catalog | None = None) -> pd.DataFrame:
    """Match each message against the catalog.

    Returns one row per matched message: ``row`` (its position in the inputs),
    ``pattern``, ``role``, ``family``, and the event columns the pattern filled.
    Rows no pattern matched are absent; the caller counts them.
    """
    cat = catalog or load_catalog()
    n = len(msg)
    if n == 0:
        return pd.DataFrame({"row": pd.Series([], dtype="int64")})
    fam_masks = _family_masks(cat, prog)
    stamped = pc.starts_with(msg, "kernel:")
    if pc.any(stamped).as_py():
        msg = pc.if_else(stamped, pc.replace_substring_regex(msg, _KERNEL_STAMP, ""), msg)
    first = pc.extract_regex(msg, _FIRST_WORD).field("k")
    kenc = pc.dictionary_encode(first)
    kcodes = np.asarray(kenc.indices.fill_null(-1), dtype=np.int64)
    vocab = kenc.dictionary.to_pylist()
    open_rows = np.ones(n, dtype=bool)
    pieces: list[pa.Table] = []
    for pat in cat.patterns:
        mask = fam_masks[pat.family] & open_rows
        if pat.first != ("*",):
            mask &= _word_matcher(pat.first, vocab)[kcodes]
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            continue
        sub = msg.take(pa.array(rows))
        if pat.groups:
            found = pc.extract_regex(sub, pat.regex)
            ok = np.asarray(found.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        else:
            found = None
            ok = np.asarray(pc.match_substring_regex(sub, pat.regex).to_numpy(zero_copy_only=False), dtype=bool)
        if not ok.any():
            continue
        hit = rows[ok]
        open_rows[hit] = False
        k = hit.size
        cols: dict[str, pa.Array] = {
            "row": pa.array(hit, pa.int64()),
            "pattern": pa.array(np.full(k, pat.id, dtype=object), pa.string()),
            "role": pa.array(np.full(k, pat.role, dtype=object), pa.string()),
            "family": pa.array(np.full(k, pat.family, dtype=object), pa.string()),
        }
        if pat.role != "ignore":
            okmask = pa.array(ok)
            for col, value in pat.set.items():
                cols[col] = pa.array(np.full(k, value, dtype=object), pa.string())
            if found is not None:
                fields = {g: found.field(g).filter(okmask) for g in pat.groups}
                for col, groups in pat.column_groups().items():
                    val = _null_empty(fields[groups[0]])
                    for alt in groups[1:]:
                        val = pc.coalesce(val, _null_empty(fields[alt]))
                    cols[col] = val
                for col, spec in pat.map.items():
                    keys = list(spec.get("values") or {})
                    vals = pa.array([spec["values"][key] for key in keys] + [spec.get("default")], pa.string())
                    idx = pc.index_in(fields[spec["group"]], value_set=pa.array(keys, pa.string()))
                    idx = pc.fill_null(idx, len(keys))
                    cols[col] = vals.take(idx)
        pieces.append(pa.table(cols))
    if not pieces:
        return pd.DataFrame({"row": pd.Series([], dtype="int64")})
    table = pa.concat_tables(pieces, promote_options="default")
    for col in _ALWAYS:
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(len(table), pa.string()))
    table = table.sort_by("row")
    return table.to_pandas(types_mapper=pd.ArrowDtype)


_IPV4_MAPPED = r"^::ffff:(\d+\.\d+\.\d+\.\d+)$"


def normalize_ip(values: pd.Series) -> pd.Series:
    """``::ffff:1.2.3.4`` → ``1.2.3.4``; drop an IPv6 zone (``%eth0``) and brackets."""
    arr = pa.array(values.astype("string[pyarrow]"), pa.string())
    arr = pc.replace_substring_regex(arr, r"^\[(.*)\]$", r"\1")
    arr = pc.replace_substring_regex(arr, r"%[^%]*$", "")
    arr = pc.replace_substring_regex(arr, _IPV4_MAPPED, r"\1")
    return pd.Series(arr.to_pandas(), index=values.index, dtype="string[pyarrow]")


def finish_events(ev: pd.DataFrame) -> pd.DataFrame:
    """Source-wide steps over one source's matched rows (in line order).

    - ``weight`` (from ``message repeated N times``) repeats a row N times;
    - ``enrich`` rows (PAM lines, sshd summaries) pair with the sshd failure of the same
      (host, pid): the k-th enrich row of a connection is folded into its k-th failed
      attempt and not counted; unpaired ones stand as attempts of their own;
    - an sshd row without an address takes the address known for its (host, pid)
      connection from the nearest line within ten minutes.
    """
    if ev.empty:
        return ev
    ev = ev.reset_index(drop=True)
    key = ev["host"].astype("string").fillna("") + "\x00" + ev["pid"].astype("string").fillna("")
    has_pid = ev["pid"].notna()

    # Addresses first (the folding below looks at them).
    sshd = has_pid & (ev["family"] == _SSHD_FAMILY).fillna(False)
    if sshd.any() and ev.loc[sshd, "src_ip"].isna().any():
        sub = ev.loc[sshd, ["timestamp", "src_ip"]].copy()
        sub["k"] = key[sshd]
        known_ts = sub["timestamp"].where(sub["src_ip"].notna())
        g = sub.groupby("k", sort=False)
        fwd_ip, fwd_ts = g["src_ip"].ffill(), known_ts.groupby(sub["k"]).ffill()
        bwd_ip, bwd_ts = g["src_ip"].bfill(), known_ts.groupby(sub["k"]).bfill()
        window = pd.Timedelta(minutes=10)
        fwd_ok = (sub["timestamp"] - fwd_ts).abs() <= window
        bwd_ok = (bwd_ts - sub["timestamp"]).abs() <= window
        fill = fwd_ip.where(fwd_ok.fillna(False)).fillna(bwd_ip.where(bwd_ok.fillna(False)))
        missing = sub["src_ip"].isna()
        ev.loc[sub.index[missing], "src_ip"] = fill[missing].to_numpy()

    # Fold enrich rows into the failures of the same connection: a PAM auth failure pairs
    # with one sshd failure (the k-th with the k-th); other enrich lines (account expired,
    # policy, limits) belong to the connection as a whole.
    enrich = (ev["role"] == "enrich").fillna(False) & has_pid
    if enrich.any():
        attempt = (
            (ev["family"] == _SSHD_FAMILY)
            & (ev["action"] == "logon")
            & (ev["outcome"] == "failure")
            & (ev["role"] == "attempt")
        ).fillna(False) & has_pid
        n_attempts = attempt.groupby(key).transform("sum")
        generic = enrich & ev["reason"].isin(_GENERIC_REASONS).fillna(False)
        rank = generic.astype("int64").groupby(key).cumsum() - 1
        folded = (generic & (rank < n_attempts)) | (enrich & ~generic & (n_attempts > 0))
        # A specific reason from PAM (expired, policy) beats sshd's generic one.
        specific = folded & ~generic & (ev["action"] == "logon").fillna(False)
        if specific.any():
            best = ev.loc[specific].groupby(key[specific])["reason"].first()
            target = attempt & key.isin(best.index)
            ev.loc[target, "reason"] = key[target].map(best).to_numpy()
        ev = ev.loc[~folded]
    if "weight" in ev.columns and (ev["weight"] > 1).any():
        ev = ev.loc[ev.index.repeat(ev["weight"].to_numpy())]
    return ev.reset_index(drop=True)
