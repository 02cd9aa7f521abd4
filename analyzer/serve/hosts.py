"""Which ``Host`` a request may name, and which ``Origin`` a state-changing request may come from.

A page on ``attacker.example`` whose name is made to resolve to 127.0.0.1 (DNS rebinding) reaches a
loopback server as the same origin as the attacker's page: only the ``Host`` header tells. So the
server answers only to the names it was started for: the address it is bound to (and, on loopback,
``localhost``, ``127.0.0.1`` and ``[::1]``), with its port, and the names given with
``--allowed-host``. A server bound to every interface (0.0.0.0, ``::``) also answers to any IP
address and to the machine's own name: an IP address cannot be rebound.

Every request that changes something (any method but GET, HEAD, OPTIONS) must come from one of
the server's own pages: its ``Origin`` (or, without one, the origin of its ``Referer``) must equal
exactly the origin of one of those names (or of the IP address asked for), scheme and port
included; ``null`` is refused. The server's pages send their origin (Referrer-Policy: same-origin;
``no-referrer`` would make a browser send ``Origin: null``). A request with neither header is not
from a browser's form or script (curl, a script) and is let through: it needs the token like any
other when there is one.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["HostPolicy", "parse_allowed_host", "is_loopback"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORT = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD = frozenset({"0.0.0.0", "::", "[::]", ""})
_NAME = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _canonical_name(name: str) -> str | None:
    """The name as a ``Host`` header carries it (lower case, IPv6 in brackets), or None if it is no
    host name or address."""
    name = name.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return name if _NAME.match(name) and not name.startswith("[") else None
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` → (canonical name, port or None); None when it is not one."""
    value = value.strip()
    m = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*)(?::(\d{1,5}))?", value)
    if not m:
        return None
    name = _canonical_name(m[1])
    port = int(m[2]) if m[2] is not None else None
    if name is None or (port is not None and not 0 < port < 65536):
        return None
    return name, port


@dataclass(frozen=True)
class AllowedHost:
    """One name the server answers to: the ``Host`` values it accepts and the origin of its pages."""

    name: str
    port: int
    scheme: str = "http"

    @property
    def origin(self) -> str:
        default = DEFAULT_PORT[self.scheme] == self.port
        return f"{self.scheme}://{self.name}" + ("" if default else f":{self.port}")

    @property
    def host_values(self) -> tuple[str, ...]:
        explicit = f"{self.name}:{self.port}"
        return (explicit, self.name) if DEFAULT_PORT[self.scheme] == self.port else (explicit,)


def parse_allowed_host(value: str, port: int) -> AllowedHost:
    """``--allowed-host`` as given: ``NAME`` (reached at the server's own port), ``NAME:PORT``, or the
    origin a reverse proxy serves it at, ``https://NAME[:PORT]`` (``http://`` too)."""
    usage = f"--allowed-host {value!r}: give NAME, NAME:PORT or http(s)://NAME[:PORT]"
    scheme, rest = "http", value.strip()
    if "://" in rest:
        parts = urlsplit(rest)
        if parts.scheme not in DEFAULT_PORT or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(usage)
        if "@" in parts.netloc:
            raise ValueError(usage)
        scheme, rest, port = parts.scheme, parts.netloc, DEFAULT_PORT[parts.scheme]
    split = _split_host(rest)
    if split is None or split[0] in WILDCARD or split[0] == "[::]":
        raise ValueError(usage)
    name, given = split
    return AllowedHost(name, port if given is None else given, scheme)


def _origin_of(url: str) -> str:
    """The origin of a URL (a ``Referer``) as a browser writes it: ``null`` when it has none."""
    try:
        parts = urlsplit(url)
        scheme, port = parts.scheme.lower(), parts.port
    except ValueError:
        return "null"
    name = _canonical_name(parts.hostname or "")
    if scheme not in DEFAULT_PORT or not name:
        return "null"
    return AllowedHost(name, port or DEFAULT_PORT[scheme], scheme).origin


def _shown(value: str) -> str:
    return repr(value[:100].encode("ascii", "backslashreplace").decode())


@dataclass
class HostPolicy:
    """The names a server bound to ``bind``:``port`` answers to, and its pages' origins."""

    bind: str
    port: int
    extra: tuple[str, ...] = ()
    allowed: list[AllowedHost] = field(default_factory=list, init=False)
    any_ip: bool = field(default=False, init=False)  # bound to every interface: any IP address too
    _hosts: dict[str, set[str]] = field(default_factory=dict, init=False)  # Host value -> origins
    _origins: set[str] = field(default_factory=set, init=False)  # every page's (a proxy may rewrite Host)

    def __post_init__(self) -> None:
        if self.bind.strip().lower() in WILDCARD:
            self.any_ip = True
            names = ["localhost", socket.gethostname()]
        else:
            names = [self.bind, *(LOOPBACK_NAMES if is_loopback(self.bind) else ())]
        canonical = [c for c in (_canonical_name(n) for n in names) if c]
        self.allowed = [AllowedHost(n, self.port) for n in dict.fromkeys(canonical)]
        self.allowed += [parse_allowed_host(v, self.port) for v in self.extra]
        for a in self.allowed:
            for value in a.host_values:
                self._hosts.setdefault(value, set()).add(a.origin)
            self._origins.add(a.origin)

    def describe(self) -> str:
        """The names for people (an error message)."""
        shown = [a.host_values[0] if a.scheme == "http" else a.origin for a in self.allowed]
        return ", ".join((["any IP address"] if self.any_ip else []) + shown)

    def origins(self, host: str | None) -> set[str] | None:
        """The origins of the pages served under a request's ``Host``; None when the server does not
        answer to it."""
        if not host:
            return None
        host = host.strip().lower()
        if host in self._hosts:
            return self._hosts[host]
        split = _split_host(host) if self.any_ip else None
        if split is None or (80 if split[1] is None else split[1]) != self.port:
            return None
        try:
            ipaddress.ip_address(split[0].strip("[]"))
        except ValueError:
            return None
        return {AllowedHost(split[0], self.port).origin}

    def refusal(self, method: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """(HTTP status, reason) when a request must be refused, else None."""
        host = headers.get("host")
        origins = self.origins(host)
        if origins is None:
            return 400, (
                f"this server does not answer to the host {_shown(host or '')} (it answers to {self.describe()}); "
                "start it with --allowed-host NAME to reach it under another name"
            )
        if method.upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None:
            referer = headers.get("referer")
            if referer is None:
                return None  # not a browser's form or script: curl, a script (the token still applies)
            origin = _origin_of(referer)
        if origin.strip().lower() not in origins | self._origins:
            return 403, f"cross-site request refused: it comes from {_shown(origin)}, not from this server's pages"
        return None
