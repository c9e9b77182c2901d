"""Turning parameter values into events: the event pair for a syscall, full parameter lists, time.

Every event gets exactly the parameters libs HEAD's event table lists for its code, in table order,
each normalized to its type's range (a ``UID`` of -1 becomes 0xFFFFFFFF, an ``INT32`` is
sign-extended), so a capture writer can serialize it as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from falcorules_ci.errors import Span
from falcorules_ci.fields.event_table import EventInfo, event_table
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.sources.scenario_world import Thread

_UNSIGNED_BITS = {
    "PT_UINT8": 8, "PT_UINT16": 16, "PT_UINT32": 32, "PT_UINT64": 64, "PT_UID": 32, "PT_GID": 32,
    "PT_MODE": 32, "PT_FLAGS8": 8, "PT_FLAGS16": 16, "PT_FLAGS32": 32, "PT_ENUMFLAGS8": 8,
    "PT_ENUMFLAGS16": 16, "PT_ENUMFLAGS32": 32, "PT_SYSCALLID": 16, "PT_SIGTYPE": 8, "PT_RELTIME": 64,
    "PT_ABSTIME": 64, "PT_PORT": 16, "PT_L4PROTO": 8, "PT_SOCKFAMILY": 8, "PT_BOOL": 32, "PT_SIGSET": 32,
    "PT_IPV4ADDR": 32,
}
_SIGNED_BITS = {"PT_INT8": 8, "PT_INT16": 16, "PT_INT32": 32, "PT_INT64": 64, "PT_FD": 64, "PT_PID": 64,
                "PT_ERRNO": 64}
STRING_TYPES = frozenset({"PT_CHARBUF", "PT_FSPATH", "PT_FSRELPATH"})
INT_TYPES = frozenset(_UNSIGNED_BITS) | frozenset(_SIGNED_BITS)


def normalize(ptype: str, value: Any) -> Any:
    """``value`` in the range and Python type the event model uses for ``ptype``."""
    bits = _UNSIGNED_BITS.get(ptype)
    if bits is not None:
        return int(value) & ((1 << bits) - 1)
    bits = _SIGNED_BITS.get(ptype)
    if bits is not None:
        value = int(value) & ((1 << bits) - 1)
        return value - (1 << bits) if value >> (bits - 1) else value
    return value


def default_value(ptype: str) -> Any:
    if ptype in INT_TYPES:
        return 0
    if ptype in STRING_TYPES:
        return ""
    if ptype == "PT_SOCKADDR":
        return SockAddr(family=0)
    if ptype == "PT_SOCKTUPLE":
        return SockTuple(family=0)
    if ptype == "PT_FDLIST":
        return ()
    if ptype in ("PT_CHARBUFARRAY", "PT_CHARBUF_PAIR_ARRAY"):
        return ()
    if ptype == "PT_DOUBLE":
        return 0.0
    return b""


def full_params(info: EventInfo, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of ``info`` in table order: the given value or its type's empty value."""
    return {p.name: normalize(p.type, values[p.name]) if p.name in values else default_value(p.type)
            for p in info.params}


@dataclass(frozen=True, slots=True)
class SyscallEvents:
    """The event codes a syscall is recorded with: the current exit and the enter before it."""

    name: str
    enter: EventInfo | None
    exit: EventInfo

    @property
    def param_names(self) -> tuple[str, ...]:
        names = [p.name for p in self.exit.params]
        if self.enter is not None:
            names += [p.name for p in self.enter.params if p.name not in names]
        return tuple(names)

    def param_type(self, name: str) -> str | None:
        for info in (self.exit, self.enter):
            if info is not None:
                for p in info.params:
                    if p.name == name:
                        return p.type
        return None


@cache
def syscall_events(name: str) -> SyscallEvents | None:
    """The pair libs HEAD records ``name`` with, or None when it has no event of its own.

    The exit is the current (non-obsolete) version; its enter is the code just before it, even
    where HEAD marks that enter obsolete because modern drivers merged it into the exit: a
    capture that old readers understand needs it.
    """
    table = event_table()
    exit_info = table.lookup(name, "<")
    # Names without an event of their own map to the generic events; those are not expressible.
    if exit_info is None or exit_info.name != name or "EC_SYSCALL" not in exit_info.category:
        return None
    enter = table.by_code.get(exit_info.code - 1)
    if enter is None or enter.name != name or enter.direction != ">" or enter.is_unused:
        enter = None
    return SyscallEvents(name, enter, exit_info)


@cache
def single_event(name: str) -> EventInfo:
    """A one-event (enter-only) event such as ``procexit``."""
    info = event_table().lookup(name, ">")
    if info is None:  # pragma: no cover - the table always has these
        raise KeyError(name)
    return info


class Timeline:
    """Collects events with their timestamps, numbers and CPUs."""

    def __init__(self, start_ts: int, step: int, latency: int, num_cpus: int) -> None:
        self.events: list[Event] = []
        self.start_ts = start_ts
        self.step = step
        self.latency = latency
        self.num_cpus = max(1, num_cpus)
        self.now = start_ts
        self._next_action = start_ts

    def begin(self, at: int | None) -> None:
        """Start an action at ``at`` (absolute ns) or one step after the previous action."""
        self.now = max(self.now, at if at is not None else self._next_action)
        self._next_action = self.now + self.step

    def emit(self, tid: int, info: EventInfo, values: dict[str, Any], span: Span | None) -> Event:
        event = Event(num=len(self.events) + 1, ts=self.now, tid=tid, code=info.code, name=info.name,
                      direction=info.direction, params=full_params(info, values), cpu=tid % self.num_cpus,
                      span=span)
        self.events.append(event)
        self.now += 1 if info.direction == "<" else self.latency
        self._next_action = max(self._next_action, self.now)
        return event

    def pair(self, thread: Thread, events: SyscallEvents, values: dict[str, Any], span: Span | None) -> None:
        if events.enter is not None:
            self.emit(thread.tid, events.enter, values, span)
        self.emit(thread.tid, events.exit, values, span)

    def sleep(self, ns: int) -> None:
        self.now += max(0, ns)
        self._next_action = max(self._next_action, self.now)
