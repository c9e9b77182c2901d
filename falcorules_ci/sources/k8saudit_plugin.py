"""What the k8saudit plugin (0.18.0) accepts as an audit event, and what it drops.

The plugin parses each input line as one JSON value and keeps it only if it is an ``Event``, an
``EventList`` with a non-empty ``items`` array, or an array of those (nested arrays allowed); one
unrecognised element rejects the whole line. Each event found then needs a ``stageTimestamp``
that Go's ``time.Parse(time.RFC3339Nano, …)`` accepts (it becomes the event time) and must not be
larger than ``maxEventSize`` once re-serialised compactly. Everything rejected is logged by the
plugin and dropped; the reader counts it.

Positions: events carry the character offset where their JSON text starts, so errors can point
into the line (or document) that holds them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

MAX_EVENT_SIZE: Final = 262144  # the plugin's default maxEventSize (sdk.DefaultEvtSize)
LINE_LIMIT: Final = 65536  # bufio.Scanner's default MaxScanTokenSize, newline included
PLUGIN_EVENT_CODE: Final = 322  # PPME_PLUGINEVENT_E
PLUGIN_EVENT_NAME: Final = "pluginevent"  # what evt.type gives for every plugin event
PLUGIN_EVENT_TID: Final = -1  # libscap sets tid to (uint64)-1: plugin events have no thread
K8SAUDIT_PLUGIN_ID: Final = 1


class Drop:
    """Reasons an input part never becomes an event (keys of ``SourceStats.skipped``)."""

    MALFORMED_JSON: Final = "malformed_json"
    MALFORMED_YAML: Final = "malformed_yaml"
    NOT_AUDIT_EVENT: Final = "not_audit_event"
    NO_STAGE_TIMESTAMP: Final = "no_stage_timestamp"
    BAD_STAGE_TIMESTAMP: Final = "bad_stage_timestamp"
    OVER_MAX_EVENT_SIZE: Final = "over_max_event_size"
    LINE_TOO_LONG: Final = "line_too_long"
    UNREAD_AFTER_LONG_LINE: Final = "unread_after_long_line"
    WHITESPACE_LINE: Final = "whitespace_line"
    INVALID_SHORTHAND: Final = "invalid_shorthand"
    NO_AUDIT_ID: Final = "no_audit_id"  # only in stop mode; in skip mode such events are kept


class Rejected(Exception):
    """A JSON value (or one event in it) the plugin would drop; ``offset`` is where it starts."""

    def __init__(self, reason: str, message: str, offset: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.offset = offset


def _reject_constant(name: str) -> Any:
    # fastjson has no NaN/Infinity literals; Python's json would accept them.
    raise ValueError(f"unexpected value {name}")


DECODER: Final = json.JSONDecoder(strict=False, parse_constant=_reject_constant)
_WS = re.compile(r"[ \t\r\n]*")


def _skip_ws(text: str, index: int) -> int:
    match = _WS.match(text, index)
    assert match is not None
    return match.end()


def _array_offsets(text: str, start: int) -> list[int]:
    """Start offsets of the elements of the (valid) JSON array that begins at ``start``."""
    offsets: list[int] = []
    index = _skip_ws(text, start + 1)
    if text[index] == "]":
        return offsets
    while True:
        offsets.append(index)
        _, index = DECODER.raw_decode(text, index)
        index = _skip_ws(text, index)
        if text[index] == "]":
            return offsets
        index = _skip_ws(text, index + 1)  # past the comma


def _member_offset(text: str, start: int, wanted: str) -> int:
    """Start offset of the value of the last member named ``wanted`` in the object at ``start``
    (the one Python's ``json`` keeps)."""
    found = -1
    index = _skip_ws(text, start + 1)
    while text[index] != "}":
        key, index = DECODER.raw_decode(text, index)
        index = _skip_ws(text, _skip_ws(text, index) + 1)  # past the colon
        if key == wanted:
            found = index
        _, index = DECODER.raw_decode(text, index)
        index = _skip_ws(text, index)
        if text[index] == ",":
            index = _skip_ws(text, index + 1)
    return found


@dataclass(frozen=True, slots=True)
class Found:
    """One candidate audit event inside a JSON value and where its text starts."""

    event: Any
    offset: int


def find_events(value: Any, text: str | None, offset: int) -> list[Found]:
    """The events the plugin takes from one parsed JSON value (``ParseAuditEventsJSON``).

    ``text`` is the JSON text the value was parsed from, used only to locate the elements of
    arrays and ``EventList``s (``None`` when there is no text, e.g. YAML: offsets are then element
    indexes). Raises :class:`Rejected` when the plugin would reject the whole value.
    """
    if isinstance(value, list):
        offsets = _array_offsets(text, offset) if text is not None else list(range(len(value)))
        found: list[Found] = []
        for element, element_offset in zip(value, offsets, strict=True):
            found.extend(find_events(element, text, element_offset))
        return found
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind == "Event":
        return [Found(value, offset)]
    if kind == "EventList":
        items = value.get("items")
        if isinstance(items, list) and items:
            if text is None:
                return [Found(item, i) for i, item in enumerate(items)]
            item_offsets = _array_offsets(text, _member_offset(text, offset, "items"))
            return [Found(item, o) for item, o in zip(items, item_offsets, strict=True)]
        raise Rejected(
            Drop.NOT_AUDIT_EVENT,
            "EventList without a non-empty 'items' array: the k8saudit plugin rejects it",
            offset,
        )
    if not isinstance(value, dict):
        what = "a JSON " + _json_type(value)
    elif kind is None:
        what = "an object without 'kind'"
    else:
        what = f"an object of kind {json.dumps(kind, ensure_ascii=False)}"
    raise Rejected(
        Drop.NOT_AUDIT_EVENT,
        f"{what} is not a Kubernetes audit Event, EventList or array of them: "
        "the k8saudit plugin rejects it (and everything else on its line)",
        offset,
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_COMPACT = re.compile(rf"({_STRING})|[ \t\r\n]+", re.DOTALL)


def compact_size(event: Any, raw: str | None = None) -> int:
    """Bytes of the event as the plugin re-serialises it (fastjson ``MarshalTo``).

    With ``raw``, the JSON text the event was read from, the size is exact: fastjson drops the
    blanks between tokens and writes strings and numbers as they were written. Without it, the
    event is re-serialised from Python values (escapes and number spellings may differ).
    """
    if raw is not None:
        return len(_COMPACT.sub(lambda m: m.group(1) or "", raw).encode("utf-8", "surrogateescape"))
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogateescape"))


# --- Go's time.Parse(time.RFC3339Nano, s) ------------------------------------------------------

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))\Z"
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, including 0)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_stage_timestamp(text: str) -> int | None:
    """Nanoseconds since the epoch, or ``None`` where Go's ``time.Parse(RFC3339Nano)`` fails.

    Go accepts a one-digit hour and a comma before the fraction (its general layout path), any
    number of fraction digits (those past nine are ignored), and zone offsets up to 24:60.
    """
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, zone_hour, zone_minute = match.group(7, 8, 9, 10)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    month_days = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= month_days:
        return None
    offset_seconds = 0
    if sign is not None:
        if int(zone_hour) > 24 or int(zone_minute) > 60:
            return None
        offset_seconds = (int(zone_hour) * 60 + int(zone_minute)) * 60 * (1 if sign == "+" else -1)
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset_seconds) * 1_000_000_000 + nanos


def format_stage_timestamp(ns: int, digits: int = 6) -> str:
    """RFC 3339 UTC text with ``digits`` fraction digits (Kubernetes writes microseconds)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    days, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    year, month, day = _civil_from_days(days)
    fraction = f".{nanos // 10 ** (9 - digits):0{digits}d}" if digits else ""
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


_ABSENT: Final = object()


def event_time(event: Any) -> int:
    """The plugin's timestamp for one candidate event; raises :class:`Rejected` (offset 0) if it
    would drop the event for its ``stageTimestamp``."""
    stamp = event.get("stageTimestamp", _ABSENT) if isinstance(event, dict) else _ABSENT
    if stamp is _ABSENT:
        what = "audit event" if isinstance(event, dict) else f"EventList item (a JSON {_json_type(event)})"
        raise Rejected(Drop.NO_STAGE_TIMESTAMP, f"{what} has no 'stageTimestamp': the k8saudit plugin drops it", 0)
    ns = parse_stage_timestamp(stamp) if isinstance(stamp, str) else None
    if ns is None:
        shown = json.dumps(stamp, ensure_ascii=False)
        raise Rejected(
            Drop.BAD_STAGE_TIMESTAMP,
            f"'stageTimestamp' {shown} is not an RFC 3339 time Go's time.Parse accepts: "
            "the k8saudit plugin drops the event",
            0,
        )
    return ns
