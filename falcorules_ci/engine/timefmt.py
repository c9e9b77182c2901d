"""Event times as libsinsp prints them (``sinsp_utils::ts_to_string`` and ``ts_to_iso_8601``)."""

from __future__ import annotations

import time as _time
from typing import Final

NS: Final = 1_000_000_000


def local_time_text(ts: int, offset: int, *, date: bool = False, nanos: bool = True) -> str:
    """``sinsp_utils::ts_to_string``: ``HH:MM:SS.nnnnnnnnn`` at a fixed UTC offset (seconds)."""
    seconds, ns = divmod(ts, NS)
    shifted = seconds + offset
    day_seconds = shifted % 86400
    text = f"{day_seconds // 3600:02d}:{day_seconds % 3600 // 60:02d}:{day_seconds % 60:02d}"
    if nanos:
        text += f".{ns:09d}"
    if date:
        text = _time.strftime("%Y-%m-%d ", _time.gmtime(shifted - day_seconds)) + text
    return text


def iso8601_text(ts: int) -> str:
    """``sinsp_utils::ts_to_iso_8601``: UTC with nanoseconds and a ``+0000`` suffix."""
    seconds, ns = divmod(ts, NS)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds)) + f".{ns:09d}+0000"


def time_field_text(name: str, ts: int, offset: int) -> str:
    if name == "evt.time":
        return local_time_text(ts, offset)
    if name == "evt.time.s":
        return local_time_text(ts, offset, nanos=False)
    if name == "evt.datetime":
        return local_time_text(ts, offset, date=True)
    if name == "evt.datetime.s":
        return local_time_text(ts, offset, date=True, nanos=False)
    return iso8601_text(ts)
