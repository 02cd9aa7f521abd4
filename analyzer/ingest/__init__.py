"""Inputs → normalized events, with an account of every line read.

:func:`read_events` is the one front door (:mod:`.runner`): it walks the paths
(:mod:`.sources`), detects each stream's format by content (:mod:`.sniff`), runs that
format's reader (:data:`READERS`), and returns the events (the :mod:`analyzer.schema`
frame) with one :class:`InputReport` per input. A reader that fails on one input reports
it there; the other inputs carry on.

The modules, one concern each: :mod:`.types` (options, reports, results), :mod:`.runner`
(the read), :mod:`.workers` (worker processes), :mod:`.readers` (which reader reads which
format); the readers: :mod:`.textlog` (syslog-framed text, with :mod:`.syslog` for line
framing and times), :mod:`.journal` (systemd journals), :mod:`.winreaders` (EVTX),
:mod:`.winexports` (Windows event exports), :mod:`.firewall` (pfirewall.log); the Linux
message catalog (:mod:`.catalog`, :mod:`.patterns`) and its matcher (:mod:`.linux`,
:mod:`.messages`); Windows event semantics (:mod:`.windows`).
"""

from __future__ import annotations

from .readers import READERS
from .runner import Window, read_events, read_source
from .types import IngestOptions, IngestResult, InputReport

__all__ = ["IngestOptions", "InputReport", "IngestResult", "Window", "read_events", "read_source", "READERS"]
