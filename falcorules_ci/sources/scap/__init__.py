"""Reading Falco/sysdig ``.scap`` capture files (plain or gzip'd) in pure Python.

Typical use::

    capture = read_capture("trace.scap")          # header records, read eagerly
    capture.header.processes                      # threads and their fds at capture start
    for event in capture.events(decode=codes.__contains__):
        ...                                       # params decoded only for the wanted codes

Malformed input raises :class:`CaptureError` (an ``InputError``) carrying the stream offset of the
problem.
"""

from __future__ import annotations

from falcorules_ci.sources.scap.errors import CaptureError
from falcorules_ci.sources.scap.reader import Capture, read_capture
from falcorules_ci.sources.scap.writer import (
    WriteStats,
    as_written,
    compile_scenario,
    header_as_written,
    write_capture,
)

__all__ = [
    "Capture",
    "CaptureError",
    "WriteStats",
    "as_written",
    "compile_scenario",
    "header_as_written",
    "read_capture",
    "write_capture",
]
