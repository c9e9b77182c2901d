"""The settings of one replay, resolved once from flags, ``-o key=value`` options and defaults."""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from falcorules_ci.errors import UsageError
from falcorules_ci.rules.model import Priority

RuleMatching = Literal["first", "all"]

_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})\Z")


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the embedded engine selects rules, evaluates events and prints alerts.

    ``enabled_tags`` (``-t``) first disables every rule and then enables the rules carrying any of
    these tags, as ``-o rules[].disable.rule=*`` followed by ``-o rules[].enable.tag=T`` does in
    Falco 0.44 (so a rule loaded with ``enabled: false`` is enabled if it has such a tag);
    ``disabled_tags`` (``-T``) and ``disabled_rules`` (``-D``, name substrings) then disable.
    ``legacy_enter_events`` (``-A``) lets enter events reach the rules, as libsinsp < 0.22 and
    Debian's sysdig 0.29.3 do. ``timezone`` is used for the text time (``HH:MM:SS.ns``): ``local``
    (Falco's behaviour: the machine's current UTC offset), ``UTC``, ``+HH:MM`` or an IANA name.
    """

    rule_matching: RuleMatching = "first"
    min_priority: Priority = Priority.DEBUG
    enabled_tags: frozenset[str] = frozenset()
    disabled_tags: frozenset[str] = frozenset()
    disabled_rules: tuple[str, ...] = ()
    legacy_enter_events: bool = False
    json_output: bool = False
    time_format_iso_8601: bool = False
    hostname: str | None = None
    timezone: str = "local"
    json_include_output_property: bool = True
    json_include_tags_property: bool = True
    json_include_message_property: bool = False
    json_include_output_fields_property: bool = True

    def __post_init__(self) -> None:
        if self.rule_matching not in ("first", "all"):
            raise UsageError(f"rule_matching must be 'first' or 'all', not {self.rule_matching!r}")
        utc_offset_seconds(self.timezone)  # validate early

    def resolved_hostname(self) -> str:
        """The hostname put in alerts: the option, else ``FALCO_HOSTNAME``, else this machine's."""
        if self.hostname is not None:
            return self.hostname
        return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()

    def with_setting(self, key: str, value: str) -> EngineOptions:
        """Apply one Falco-style ``-o key=value`` setting (the keys this engine understands)."""
        key = key.strip()
        value = value.strip()
        if key == "priority":
            priority = Priority.parse(value)
            if priority is None:
                raise UsageError(f"invalid priority {value!r}")
            return replace(self, min_priority=priority)
        if key == "rule_matching":
            if value not in ("first", "all"):
                raise UsageError(f"rule_matching must be 'first' or 'all', not {value!r}")
            return replace(self, rule_matching=value)  # type: ignore[arg-type]
        if key in _BOOL_KEYS:
            flag = _parse_bool(key, value)
            if key == "json_output":
                return replace(self, json_output=flag)
            if key == "time_format_iso_8601":
                return replace(self, time_format_iso_8601=flag)
            if key == "json_include_output_property":
                return replace(self, json_include_output_property=flag)
            if key == "json_include_tags_property":
                return replace(self, json_include_tags_property=flag)
            if key == "json_include_message_property":
                return replace(self, json_include_message_property=flag)
            return replace(self, json_include_output_fields_property=flag)
        if key == "engine.kind":
            if value not in ("replay", "embedded"):
                raise UsageError(f"engine.kind {value!r} is not supported by the embedded engine")
            return self
        raise UsageError(f"unsupported option {key!r}")


_BOOL_KEYS = frozenset({
    "json_output", "time_format_iso_8601", "json_include_output_property", "json_include_tags_property",
    "json_include_message_property", "json_include_output_fields_property",
})  # fmt: skip


def _parse_bool(key: str, value: str) -> bool:
    # yaml-cpp's boolean spellings, as Falco reads -o values.
    lowered = value.lower()
    if lowered in ("true", "yes", "on", "y"):
        return True
    if lowered in ("false", "no", "off", "n"):
        return False
    raise UsageError(f"option {key} expects a boolean, got {value!r}")


def utc_offset_seconds(zone: str) -> int:
    """The UTC offset used for text times.

    Falco computes it from the machine's current offset (not the event's), so ``local`` and IANA
    names resolve to their offset *now*.
    """
    if zone == "local":
        return time.localtime().tm_gmtoff
    if zone.upper() in ("UTC", "Z", "GMT"):
        return 0
    m = _OFFSET.match(zone)
    if m:
        seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60
        return -seconds if m.group(1) == "-" else seconds
    try:
        info = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {zone!r}") from None
    offset = datetime.now(UTC).astimezone(info).utcoffset() or timedelta(0)
    return int(offset.total_seconds())
