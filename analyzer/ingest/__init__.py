"""Inputs → normalized events, with an account of every line read.

:func:`read_events` is the one front door (:mod:`.runner`): it walks the paths
(:mod:`.sources`), detects each stream's format by content (:mod:`.sniff`), runs that
format's reader (:data:`READERS`), and returns the events (the :mod:`analyzer.schema`
frame) with one :class:`InputReport` per input. A reader that fails on one input reports
it there; the other inputs carry on.

The modules, one concern each: :mod:`.types` (options, reports, results), :mod:`.runner`
(the read), :mod:`.workers` (worker processes), :mod:`.readers` (the reader of each
format). The readers: :mod:`.textlog` (syslog-framed text; line framing and times in
:mod:`.syslog`), :mod:`.journal` (systemd journals; journald's binary files parsed by
:mod:`.journalfile`), :mod:`.winreaders` (EVTX, parsed by :mod:`.evtx`),
:mod:`.winexports` (Windows event exports), :mod:`.firewall` (pfirewall.log). Linux
messages: the catalog (:mod:`.catalog`, its types in :mod:`.patterns`), the matcher
(:mod:`.linux`) and the steps after it (:mod:`.messages`); Windows events: their
semantics (:mod:`.windows`).
"""

from __future__ import annotations

from .readers import READERS
from .runner import Window, read_events, read_source
from .types import IngestOptions, IngestResult, InputReport

__all__ = ["IngestOptions", "InputReport", "IngestResult", "Window", "read_events", "read_source", "READERS"]
