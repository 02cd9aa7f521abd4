"""The platform profile: who the platform is, read from ``authtriage.toml``.

Looked up in ``--config``, else ``$AUTHTRIAGE_CONFIG``, else ``./authtriage.toml`` if
present; command-line flags override it. Everything has a default, so no file is needed::

    [platform]
    networks = ["198.51.100.0/24"]      # the platform's source addresses (default: none)
    accounts = ["Administrator", "root"]
    ports = [22, 5985, 5986]
    timezone = "Europe/Berlin"          # for zone-less logs (default: UTC)

    [thresholds]
    periodic_max_cv = 0.25              # how regular a probe's interval must be
    periodic_min_beats = 4              # how many attempts make a cadence

    [cluster]
    address = "tcp://scheduler:8786"    # a Dask scheduler to run on (default: local processes)
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["Profile", "load_profile", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "periodic_max_cv": 0.25,
    "periodic_min_beats": 4,
}


@dataclass(frozen=True, slots=True)
class Profile:
    networks: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ("Administrator", "root")
    ports: tuple[int, ...] = (22, 5985, 5986)
    timezone: str | None = None
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    path: str | None = None  # the file it came from
    cluster: str | None = None  # [cluster] address: a Dask scheduler (analyzer.engine)

    def variables(self) -> dict[str, tuple]:
        """Values rules refer to as ``$name``."""
        return {
            "platform_accounts": self.accounts,
            "platform_networks": self.networks,
            "probe_ports": self.ports,
        }

    def with_overrides(self, networks: list[str] | None = None, accounts: list[str] | None = None) -> Profile:
        out = self
        if networks:
            out = replace(out, networks=tuple(check_networks(networks, "--platform-net")))
        if accounts:
            out = replace(out, accounts=tuple(check_accounts(accounts, "--platform-account")))
        return out


_DEFAULT = Profile()


def check_networks(values: list[Any], where: str) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(str(v), strict=False)))
        except ValueError as exc:
            raise UsageError(f"{where}: {v!r} is not a network (CIDR such as 198.51.100.0/24)") from exc
    return out


def check_accounts(values: list[Any], where: str) -> list[str]:
    """Account names, none empty (an empty one would stand for no account: the platform's
    logins unrecognized)."""
    out = [str(v).strip() for v in values]
    if not all(out):
        raise UsageError(f"{where}: an account name is empty")
    return out


def load_profile(path: str | Path | None = None) -> Profile:
    """Read the profile; no file (and none named) gives the defaults."""
    named = path or os.environ.get("AUTHTRIAGE_CONFIG")
    candidate = Path(named) if named else Path("authtriage.toml")
    if not candidate.exists():
        if named:
            raise UsageError(f"config file not found: {candidate}")
        return Profile()
    try:
        doc = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise UsageError(f"{candidate}: {exc}") from exc
    platform = doc.get("platform", {})
    unknown = set(platform) - {"networks", "accounts", "ports", "timezone"}
    if unknown:
        raise UsageError(f"{candidate}: unknown keys in [platform]: {sorted(unknown)}")
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in doc.get("thresholds", {}).items():
        if key not in DEFAULT_THRESHOLDS or not isinstance(value, int | float):
            raise UsageError(
                f"{candidate}: [thresholds] {key} is not one of {sorted(DEFAULT_THRESHOLDS)} with a number"
            )
        thresholds[key] = float(value)
    cluster = doc.get("cluster", {})
    if not isinstance(cluster, dict) or set(cluster) - {"address"}:
        raise UsageError(f"{candidate}: [cluster] takes only address (a Dask scheduler, tcp://HOST:8786)")
    address = cluster.get("address")
    if address is not None and not isinstance(address, str):
        raise UsageError(f"{candidate}: [cluster] address is not a string (tcp://HOST:8786)")
    return Profile(
        networks=tuple(check_networks(platform.get("networks", []), f"{candidate} [platform] networks")),
        accounts=tuple(check_accounts(platform.get("accounts", _DEFAULT.accounts), f"{candidate} [platform] accounts")),
        ports=tuple(int(p) for p in platform.get("ports", _DEFAULT.ports)),
        timezone=platform.get("timezone"),
        thresholds=thresholds,
        path=str(candidate),
        cluster=address or None,
    )
