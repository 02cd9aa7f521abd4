"""Windows scenarios (and the Linux attack mix) for the sample generator.

Security events carry their fields as Windows fills them: a WinRM NTLM failure has
IpAddress ``-``, a domain controller logs the 4776 of the same attempt and Kerberos
traffic (4768/4769) for its users, service accounts fail with logon type 5.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .evtxwriter import EVENTLOG, SCM, SECURITY, Event, EvtxWriter

__all__ = ["windows_scenarios", "security_event", "write_evtx", "large_security_evtx", "write_security_events"]

T0 = dt.datetime(2025, 11, 3, 14, 0, 0, tzinfo=dt.UTC)
PLATFORM_IP = "198.51.100.10"
_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
_LOGON_BASE = {
    "SubjectUserSid": "S-1-0-0",
    "SubjectUserName": "-",
    "SubjectDomainName": "-",
    "SubjectLogonId": "0x0",
    "TargetUserSid": "S-1-0-0",
}


def security_event(eid: int, host: str, t: dt.datetime, **data) -> Event:
    return Event(
        eid, "Security", SECURITY, host, t, dict(data), task={4625: 12544, 4624: 12544, 4776: 14336}.get(eid, 0)
    )


def logon_failure(
    host: str, t: dt.datetime, user: str, domain: str, status: str, sub: str, ip: str = "-", ltype: int = 3
) -> Event:
    return security_event(
        4625, host, t, **_LOGON_BASE, TargetUserName=user, TargetDomainName=domain, Status=status,
        FailureReason="%%2313" if sub in ("0xc000006a", "0xc0000064") else "%%2310", SubStatus=sub, LogonType=ltype,
        LogonProcessName="NtLmSsp ", AuthenticationPackageName="NTLM", WorkstationName="-", TransmittedServices="-",
        LmPackageName="-", KeyLength=0, ProcessId="0x0", ProcessName="-", IpAddress=ip, IpPort="-" if ip == "-" else "0",
    )  # fmt: skip


def logon_success(
    host: str, t: dt.datetime, user: str, domain: str, ip: str, ltype: int = 3, package: str = "NTLM"
) -> Event:
    return security_event(
        4624, host, t, **_LOGON_BASE, TargetUserName=user, TargetDomainName=domain, TargetLogonId="0x3e7aa",
        LogonType=ltype, LogonProcessName="NtLmSsp " if package == "NTLM" else "Kerberos", AuthenticationPackageName=package,
        WorkstationName="-", ProcessId="0x0", ProcessName="-", IpAddress=ip, IpPort="49832",
    )  # fmt: skip


def ntlm_validation(host: str, t: dt.datetime, user: str, status: str) -> Event:
    return security_event(4776, host, t, PackageName="MICROSOFT_AUTHENTICATION_PACKAGE_V1_0", TargetUserName=user,
                          Workstation="", Status=status)  # fmt: skip


def kerberos_noise(host: str, rng: random.Random, start: dt.datetime, hours: int, domain: str = "CORP") -> list[Event]:
    """TGT and service-ticket requests of ordinary users: what marks a domain controller."""
    out = []
    users = ["alice", "bob", "carol", "dave", "erin"]
    for h in range(hours):
        for _ in range(3):
            t = start + dt.timedelta(hours=h, seconds=rng.randint(0, 3599))
            u = rng.choice(users)
            ip = f"::ffff:10.0.0.{rng.randint(20, 80)}"
            out.append(
                security_event(
                    4768,
                    host,
                    t,
                    TargetUserName=u,
                    TargetDomainName=f"{domain}.EXAMPLE",
                    Status="0x0",
                    IpAddress=ip,
                    IpPort="50123",
                )
            )
            out.append(security_event(4769, host, t + dt.timedelta(seconds=1), TargetUserName=f"{u}@{domain}.EXAMPLE",
                                      TargetDomainName=f"{domain}.EXAMPLE", ServiceName="cifs/FS01", Status="0x0", IpAddress=ip, IpPort="50124"))  # fmt: skip
    return out


def write_evtx(path: Path, events: list[Event], first_record_id: int = 1000) -> None:
    events = sorted(events, key=lambda e: e.time)
    with EvtxWriter(path, first_record_id=first_record_id) as w:
        for ev in events:
            w.write(ev)


def _dc_probe(rng: random.Random, status: str, sub: str, beats: int = 96, lockout: bool = False) -> list[Event]:
    host = "DC01.corp.example"
    events = kerberos_noise(host, rng, T0, beats // 4)
    for i in range(beats):
        t = T0 + dt.timedelta(minutes=15 * i, seconds=rng.randint(0, 2))
        events.append(logon_failure(host, t, "Administrator", "DC01", status, sub))
        events.append(ntlm_validation(host, t, "Administrator", sub if sub != "0x0" else status))
        if lockout and i == beats // 2:
            events.append(security_event(4740, host, t + dt.timedelta(seconds=1), TargetUserName="Administrator",
                                         TargetDomainName="DC01", TargetSid="S-1-5-21-1-2-3-500", SubjectUserSid="S-1-5-18",
                                         SubjectUserName="DC01$", SubjectDomainName="CORP", SubjectLogonId="0x3e7"))  # fmt: skip
    return events


def _member_mismatch(rng: random.Random) -> list[Event]:
    host = "APP01.corp.example"
    events = []
    reset = T0 + dt.timedelta(hours=6, minutes=5)
    for i in range(96):
        t = T0 + dt.timedelta(minutes=15 * i, seconds=rng.randint(0, 2))
        if t < reset:
            events.append(logon_success(host, t, "Administrator", "APP01", PLATFORM_IP))
        else:
            events.append(logon_failure(host, t, "Administrator", "APP01", "0xc000006d", "0xc000006a"))
            events.append(ntlm_validation(host, t, "Administrator", "0xc000006a"))
    events.append(security_event(4724, host, reset, TargetUserName="Administrator", TargetDomainName="APP01",
                                 TargetSid="S-1-5-21-9-9-9-500", SubjectUserSid="S-1-5-21-9-9-9-1105",
                                 SubjectUserName="jsmith", SubjectDomainName="CORP", SubjectLogonId="0x51a2f"))  # fmt: skip
    return events


def _stale_service(rng: random.Random) -> list[Event]:
    host = "FS01.corp.example"
    return [
        logon_failure(host, T0 + dt.timedelta(hours=h, minutes=rng.randint(0, 5)), "svc_backup", "CORP", "0xc000006d", "0xc000006a", ip="-", ltype=5)
        for h in range(0, 24, 2)
    ]  # fmt: skip


def _wfp_drops(rng: random.Random) -> list[Event]:
    host = "APP02.corp.example"
    out = []
    for i in range(48):
        t = T0 + dt.timedelta(minutes=15 * i, seconds=rng.randint(0, 2))
        for retry in range(2):
            out.append(security_event(5157, host, t + dt.timedelta(seconds=3 * retry), ProcessID=4, Application="System",
                                      Direction="%%14592", SourceAddress="192.0.2.30", SourcePort="5985", DestAddress=PLATFORM_IP,
                                      DestPort=str(rng.randint(49152, 65000)), Protocol=6, FilterRTID=84391, LayerName="%%14610",
                                      LayerRTID=44, RemoteUserID="S-1-0-0", RemoteMachineID="S-1-0-0"))  # fmt: skip
    return out


def _pfirewall(rng: random.Random) -> str:
    lines = [
        "#Version: 1.5",
        "#Software: Microsoft Windows Firewall",
        "#Time Format: Local",
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid",
        "",
    ]
    for i in range(48):
        t = (T0 + dt.timedelta(minutes=15 * i)).replace(tzinfo=None)
        sport = rng.randint(49152, 65000)
        for retry in range(2):
            u = t + dt.timedelta(seconds=3 * retry)
            lines.append(
                f"{u:%Y-%m-%d %H:%M:%S} DROP TCP {PLATFORM_IP} 192.0.2.30 {sport} 5985 52 S {rng.randint(10**8, 10**9)} 0 64240 - - - RECEIVE 4"
            )
        if i % 4 == 0:
            lines.append(f"{t:%Y-%m-%d %H:%M:%S} ALLOW TCP 192.0.2.30 192.0.2.1 {sport} 443 0 - - - - - - - SEND 1204")
    return "\n".join(lines) + "\n"


def _winrm_stopped() -> list[Event]:
    host = "APP03.corp.example"
    stop = T0 + dt.timedelta(hours=2)
    return [
        Event(7036, "System", SCM, host, T0, {"param1": "Windows Remote Management (WS-Management)", "param2": "running"}, level=4, qualifiers=16384, keywords=0x8080000000000000),
        Event(7040, "System", SCM, host, stop - dt.timedelta(minutes=1), {"param1": "Windows Remote Management (WS-Management)", "param2": "auto start", "param3": "disabled", "param4": "WinRM"}, level=4, qualifiers=16384, keywords=0x8080000000000000),
        Event(7036, "System", SCM, host, stop, {"param1": "Windows Remote Management (WS-Management)", "param2": "stopped"}, level=4, qualifiers=16384, keywords=0x8080000000000000),
    ]  # fmt: skip


def _kerberos_spray(rng: random.Random) -> list[Event]:
    """A domain controller's day of Kerberos, and a spray from one workstation address:
    seven names that do not exist (4768 0x6), two wrong passwords (4771 0x18), then a
    ticket for a third account (4768 0x0) 25 ms after the last failure."""
    host = "DC02.corp.example"
    events = kerberos_noise(host, rng, T0, 24)
    ip, t = "::ffff:10.0.0.199", T0 + dt.timedelta(hours=9, minutes=41, seconds=7)
    realm = "CORP.EXAMPLE"
    for i, name in enumerate(["admin", "administrateur", "backup", "scanner", "sql", "test", "veeam"]):
        events.append(security_event(4768, host, t + dt.timedelta(milliseconds=40 * i), TargetUserName=name,
                                     TargetDomainName=realm, TargetSid="S-1-0-0", ServiceName="krbtgt/CORP.EXAMPLE",
                                     Status="0x6", IpAddress=ip, IpPort=str(50200 + i)))  # fmt: skip
    t += dt.timedelta(milliseconds=300)
    for i, name in enumerate(["alice", "bob"]):
        events.append(security_event(4771, host, t + dt.timedelta(milliseconds=40 * i), TargetUserName=name,
                                     TargetSid=f"S-1-5-21-1-2-3-{1105 + i}", ServiceName="krbtgt/CORP.EXAMPLE",
                                     TicketOptions="0x40810010", Status="0x18", PreAuthType="2", IpAddress=ip,
                                     IpPort=str(50210 + i)))  # fmt: skip
    events.append(security_event(4768, host, t + dt.timedelta(milliseconds=65), TargetUserName="carol",
                                 TargetDomainName=realm, TargetSid="S-1-5-21-1-2-3-1107", ServiceName="krbtgt",
                                 Status="0x0", IpAddress=ip, IpPort="50212"))  # fmt: skip
    return sorted(events, key=lambda e: e.time)


def _xml_export(events: list[Event]) -> str:
    """Event Viewer's "Save as XML" shape: an <Events> root of <Event> elements."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<Events>"]
    for rid, ev in enumerate(sorted(events, key=lambda e: e.time), start=5000):
        data = "".join(f"<Data Name={quoteattr(k)}>{escape(str(v))}</Data>" for k, v in ev.data.items())
        when = ev.time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        parts.append(
            f'<Event xmlns="{_NS}"><System><Provider Name={quoteattr(ev.provider[0])} Guid={quoteattr(ev.provider[1])}/>'
            f"<EventID>{ev.event_id}</EventID><Version>0</Version><Level>0</Level><Task>{ev.task}</Task><Opcode>0</Opcode>"
            f'<Keywords>0x{ev.keywords:x}</Keywords><TimeCreated SystemTime="{when}"/><EventRecordID>{rid}</EventRecordID>'
            f'<Correlation/><Execution ProcessID="{ev.process_id}" ThreadID="{ev.thread_id}"/><Channel>{escape(ev.channel)}</Channel>'
            f"<Computer>{escape(ev.computer)}</Computer><Security/></System><EventData>{data}</EventData></Event>"
        )
    parts.append("</Events>")
    return "\n".join(parts) + "\n"


def _evtx_bytes(events: list[Event], tmp: Path, name: str) -> bytes:
    path = tmp / name
    write_evtx(path, events)
    data = path.read_bytes()
    path.unlink()
    return data


def _count(events: list[Event], event_id: int) -> int:
    return sum(e.event_id == event_id for e in events)


def _connections(drops: list[Event]) -> int:
    """Blocked connections: the drops of one remote port within 30 s are one (a retransmission)."""
    return len({(int(e.time.timestamp()) // 30, e.data["DestPort"]) for e in drops})


def windows_scenarios(rng: random.Random, tmp: Path) -> list[tuple[str, bytes, dict]]:
    """(relative path, content, expected) per scenario file. A probe's 4625 and 4776 are one
    attempt; a lockout's 4740 joins the attempt that caused it."""
    def dc(events: list[Event]) -> list[dict]:
        return [{"host": "DC01.corp.example", "cause": "probe-dc-account", "verdict": "misconfiguration",
                 "attempts": _count(events, 4625)}]

    probe, disabled = _dc_probe(rng, "0xc000006d", "0xc000006a"), _dc_probe(rng, "0xc000006e", "0xc0000072", beats=48)
    lockout = _dc_probe(rng, "0xc000006d", "0xc000006a", beats=48, lockout=True)
    unknown, member = _dc_probe(rng, "0xc000006d", "0xc0000064", beats=32), _member_mismatch(rng)
    drops, pfirewall, stopped, stale = _wfp_drops(rng), _pfirewall(rng), _winrm_stopped(), _stale_service(rng)
    out = [
        ("windows-dc-probe/Security.evtx", _evtx_bytes(probe, tmp, "a.evtx"),
         {"role": "domain-controller", "findings": dc(probe), "variant": "domain Administrator has another password"}),
        ("windows-dc-disabled/Security.evtx", _evtx_bytes(disabled, tmp, "b.evtx"),
         {"role": "domain-controller", "findings": dc(disabled), "variant": "domain Administrator disabled"}),
        ("windows-dc-lockout/Security.evtx", _evtx_bytes(lockout, tmp, "c.evtx"),
         {"role": "domain-controller", "findings": dc(lockout), "lockouts": 1, "variant": "failures lock the domain Administrator out"}),
        ("windows-dc-unknown-user/Security.xml", _xml_export(unknown).encode(),
         {"role": "domain-controller", "findings": dc(unknown), "variant": "no account named Administrator (Event Viewer XML export)"}),
        ("windows-member-mismatch/Security.evtx", _evtx_bytes(member, tmp, "d.evtx"),
         {"role": "windows", "findings": [{"host": "APP01.corp.example", "cause": "probe-password-mismatch", "verdict": "misconfiguration",
                                           "attempts": _count(member, 4625)},
                                          {"host": "APP01.corp.example", "cause": "probe-ok", "verdict": "expected",
                                           "attempts": _count(member, 4624)}], "password_changes": 1}),
        ("windows-firewall-blocked/Security.evtx", _evtx_bytes(drops, tmp, "e.evtx"),
         {"role": "windows", "findings": [{"host": "APP02.corp.example", "cause": "probe-firewall-blocked", "verdict": "misconfiguration",
                                           "attempts": 0, "connections": _connections(drops)}]}),
        ("windows-firewall-blocked-pfirewall/pfirewall.log", pfirewall.encode(),
         {"findings": [{"host": None, "cause": "probe-firewall-blocked", "verdict": "misconfiguration",
                        "attempts": 0, "connections": 48}]}),  # one source port per beat, sent twice
        ("windows-winrm-stopped/System.evtx", _evtx_bytes(stopped, tmp, "f.evtx"),
         {"role": "windows", "findings": [{"host": "APP03.corp.example", "cause": "probe-service-down", "verdict": "misconfiguration",
                                           "attempts": 2}]}),  # no login: its two records, one each
        ("windows-stale-service/Security.evtx", _evtx_bytes(stale, tmp, "g.evtx"),
         {"role": "windows", "findings": [{"host": "FS01.corp.example", "cause": "stale-credentials", "verdict": "misconfiguration",
                                           "attempts": len(stale)}]}),
        # its own generator: the scenarios after it (the ticket bundle) keep their bytes
        ("windows-kerberos-spray/Security.evtx", _evtx_bytes(_kerberos_spray(random.Random(25)), tmp, "h.evtx"),
         {"role": "domain-controller", "findings": [{"host": "DC02.corp.example", "cause": "success-after-attack", "verdict": "attack",
                                                     "kinds": ["spraying", "enumeration"], "succeeded": True,
                                                     "attempts": 7 + 2 + 1}],
          "unclassified": 0, "variant": "a Kerberos spray that gets a ticket for a third account"}),
    ]  # fmt: skip
    return out


TICKET_DC_BEATS = 64  # the bundle's domain controller: probes, one attempt each


def ticket_windows_parts(rng: random.Random, tmp: Path) -> dict[str, bytes]:
    """The DC half of the support-ticket bundle: its Security and System logs."""
    system = [
        Event(7036, "System", SCM, "DC01.corp.example", T0 - dt.timedelta(days=1), {"param1": "Windows Remote Management (WS-Management)", "param2": "running"}, level=4, qualifiers=16384, keywords=0x8080000000000000),
        Event(1102, "Security", EVENTLOG, "DC01.corp.example", T0 - dt.timedelta(days=2), {"SubjectUserName": "Administrator", "SubjectDomainName": "CORP"}),
    ]  # fmt: skip
    return {
        "DC01/Security.evtx": _evtx_bytes(_dc_probe(rng, "0xc000006d", "0xc000006a", beats=TICKET_DC_BEATS), tmp, "t1.evtx"),
        "DC01/System.evtx": _evtx_bytes(system[:1], tmp, "t2.evtx"),
    }


def large_security_evtx(path: Path, records: int, seed: int = 1, host: str = "DC01.corp.example") -> int:
    """A busy DC's Security log of about ``records`` records: logons, Kerberos, the probe,
    password guessing. Returns the number written."""
    with EvtxWriter(path) as w:
        return write_security_events(w, records, seed, host)


def write_security_events(w: EvtxWriter, records: int, seed: int = 1, host: str = "DC01.corp.example") -> int:
    """Write :func:`large_security_evtx`'s ``records`` records of ``host`` to ``w`` (several
    hosts' records into one file: the fleet benchmark's single-file baseline)."""
    rng = random.Random(seed)
    users = [f"user{i:03d}" for i in range(200)]
    n = 0
    t = T0
    while n < records:
        t += dt.timedelta(milliseconds=rng.randint(20, 400))
        k = rng.random()
        u = rng.choice(users)
        if k < 0.35:
            ev = logon_success(
                host, t, u, "CORP", f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 250)}", package="Kerberos"
            )
        elif k < 0.55:
            ev = security_event(4769, host, t, TargetUserName=f"{u}@CORP.EXAMPLE", TargetDomainName="CORP.EXAMPLE", ServiceName="cifs/FS01", Status="0x0", IpAddress="::ffff:10.0.0.9", IpPort="50124")  # fmt: skip
        elif k < 0.70:
            ev = security_event(4634, host, t, TargetUserSid="S-1-5-21-1", TargetUserName=u, TargetDomainName="CORP", TargetLogonId="0x1", LogonType=3)  # fmt: skip
        elif k < 0.85:
            ev = security_event(4672, host, t, SubjectUserSid="S-1-5-18", SubjectUserName="SYSTEM", SubjectDomainName="NT AUTHORITY", SubjectLogonId="0x3e7", PrivilegeList="SeTcbPrivilege")  # fmt: skip
        elif k < 0.95:
            ev = logon_failure(host, t, rng.choice(["admin", "administrator", "test", u]), "CORP", "0xc000006d", "0xc000006a", ip=f"203.0.113.{rng.randint(1, 250)}")  # fmt: skip
        else:
            ev = ntlm_validation(host, t, u, "0x0")
        w.write(ev)
        n += 1
    return n
