"""Each input format's reader, by the name :mod:`.sniff` gives the format. Every reader
is a :data:`.types.Reader`: ``(source, options, report) -> events``."""

from __future__ import annotations

from .firewall import read_pfirewall
from .journal import read_journal_export, read_journal_file, read_journal_json
from .textlog import read_syslog
from .types import Reader
from .winexports import read_windows_json, read_windows_xml
from .winreaders import read_evtx

__all__ = ["READERS"]

READERS: dict[str, Reader] = {
    "syslog": read_syslog,
    "journal-json": read_journal_json,
    "journal-export": read_journal_export,
    "journal-file": read_journal_file,
    "evtx": read_evtx,
    "windows-xml": read_windows_xml,
    "windows-json": read_windows_json,
    "pfirewall": read_pfirewall,
}
