"""The alert record every engine produces, and Falco's JSON and text renderings of it."""

from __future__ import annotations

import json
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.rules.model import Priority

JSONValue = Any  # str | int | float | bool | None | list[...]: what output_fields hold

NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule match, as Falco 0.44.1 reports it.

    ``output`` is the complete text line (``<time>: <Priority> <message>``, Falco's ``output``
    property); ``message`` is the formatted rule output alone. ``output_fields`` maps each field
    of the output format (and ``evt.time``) to its JSON value: numbers for numeric fields, bools,
    strings, lists for list fields, ``None`` when the event has no value.
    """

    time: int  # ns since the epoch
    rule: str
    priority: Priority
    source: str
    tags: tuple[str, ...]
    output: str
    message: str
    output_fields: Mapping[str, JSONValue] = field(hash=False)
    hostname: str
    event_num: int

    def to_dict(
        self,
        *,
        include_output: bool = True,
        include_tags: bool = True,
        include_message: bool = False,
        include_output_fields: bool = True,
    ) -> dict[str, JSONValue]:
        """The JSON object Falco prints with ``json_output: true`` (keys as Falco includes them)."""
        obj: dict[str, JSONValue] = {
            "hostname": self.hostname,
            "priority": self.priority.label,
            "rule": self.rule,
            "source": self.source,
            "time": iso8601_utc(self.time),
        }
        if include_output:
            obj["output"] = self.output
        if include_tags:
            obj["tags"] = list(self.tags)
        if include_message:
            obj["message"] = self.message
        if include_output_fields:
            obj["output_fields"] = dict(self.output_fields)
        return obj

    def to_json(self, **include: bool) -> str:
        """One line of Falco's JSON output: sorted keys, compact, non-ASCII kept as UTF-8."""
        return dump_json(self.to_dict(**include))

    def to_text(self) -> str:
        """The line Falco prints with ``json_output: false``."""
        return self.output


def iso8601_utc(ts: int) -> str:
    """``2024-01-01T00:00:00.123456789Z``: Falco's ``time`` property (UTC, nanoseconds)."""
    seconds, nanos = divmod(ts, NS_PER_SECOND)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds)) + f".{nanos:09d}Z"


def dump_json(obj: JSONValue) -> str:
    """nlohmann's ``dump()`` as Falco calls it: compact, keys sorted by bytes, UTF-8 output, and
    invalid UTF-8 replaced by U+FFFD."""
    return json.dumps(_replace_invalid(obj), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _replace_invalid(value: JSONValue) -> JSONValue:
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {_replace_invalid(k): _replace_invalid(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_invalid(v) for v in value]
    return value
