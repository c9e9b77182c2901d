"""The generic ``evt.*`` fields of plugin-source events (``k8s_audit``), which libsinsp's
``gen_event`` field class computes from the event alone, plus the little replay state they need
(first event time, host name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from falcorules_ci.engine.options import utc_offset_seconds
from falcorules_ci.engine.timefmt import NS, iso8601_text, local_time_text
from falcorules_ci.errors import ConditionError
from falcorules_ci.extract.base import Extractor
from falcorules_ci.sources.event import Event

PLUGIN_NAMES: Final = {"k8s_audit": "k8saudit"}


@dataclass(slots=True)
class PluginState:
    """What the generic fields of a plugin event need besides the event."""

    hostname: str = ""
    first_ts: int = 0
    utc_offset: int = 0

    def update(self, event: Event) -> None:
        if not self.first_ts:
            self.first_ts = event.ts


def _reltime(event: Event, state: Any) -> int:
    first = getattr(state, "first_ts", 0) or event.ts
    return event.ts - first


def _offset(state: Any) -> int:
    offset = getattr(state, "utc_offset", None)
    return utc_offset_seconds("local") if offset is None else int(offset)


_GENERIC: Final[dict[str, Callable[[Event, Any], Any]]] = {
    "evt.num": lambda e, s: e.num,
    "evt.time": lambda e, s: local_time_text(e.ts, _offset(s)),
    "evt.time.s": lambda e, s: local_time_text(e.ts, _offset(s), nanos=False),
    "evt.time.iso8601": lambda e, s: iso8601_text(e.ts),
    "evt.datetime": lambda e, s: local_time_text(e.ts, _offset(s), date=True),
    "evt.datetime.s": lambda e, s: local_time_text(e.ts, _offset(s), date=True, nanos=False),
    "evt.rawtime": lambda e, s: e.ts,
    "evt.rawtime.s": lambda e, s: e.ts // NS,
    "evt.rawtime.ns": lambda e, s: e.ts % NS,
    "evt.reltime": _reltime,
    "evt.reltime.s": lambda e, s: _reltime(e, s) // NS,
    "evt.reltime.ns": lambda e, s: _reltime(e, s) % NS,
    "evt.pluginname": lambda e, s: PLUGIN_NAMES.get(e.source),
    # The k8saudit plugin renders no per-event summary this engine knows of.
    "evt.plugininfo": lambda e, s: None,
    "evt.source": lambda e, s: e.source or None,
    "evt.is_async": lambda e, s: False,
    "evt.asynctype": lambda e, s: None,
    "evt.hostname": lambda e, s: getattr(s, "hostname", None) or None,
}


def plugin_generic_extractor(name: str, arg: str | None) -> Extractor:
    """The extractor of a generic ``evt.*`` field for plugin events."""
    found = _GENERIC.get(name)
    if found is None:
        raise ConditionError(f"filter_check called with nonexistent field {name}")
    return found
