"""Which event codes and parameter counts a capture is written with, per compatibility target.

Three targets (``../shared/reference/scap-format.md`` §5):

``sysdig-0.29`` (default): one file for sysdig 0.29.3 *and* current Falco.
  - Every event is written with the parameter count of the sysdig-0.29.3-era table (its
    "legacy" count); current libs' scap converter completes such events from their enter event.
  - Events whose current code is newer than sysdig 0.29.3 (code >= 336) go back to the older code
    the drivers of that era used for the same syscall: ``dup``/``dup2``/``dup3`` -> ``dup``,
    ``accept4`` -> the old ``accept4``, ``bpf``, ``umount``/``umount2`` -> ``umount``, ``pipe2`` ->
    ``pipe``, ``inotify_init1``, ``eventfd2`` and ``signalfd4`` -> their older events.
  - Codes with no older equivalent (:func:`sysdig_invisible_names`, e.g. ``memfd_create``,
    ``init_module``, ``finit_module``, ``setreuid``, the ``chown`` family, ``prctl``,
    ``useradded``) are written with their current count: current Falco reads them, sysdig 0.29.3
    silently skips them, so a fixture that depends on them only works on current Falco.
  - Every exit is preceded on its thread by its enter event: an exit whose enter is missing gets
    one made from the exit's own parameters (old libsinsp takes the fd of socket, connect, ... from
    the enter event, and current libs' converter fills legacy exits from it). The child's side of a
    clone has no enter, as with a real kernel.

``sysdig-0.29-full``: the same, except that events whose code is current at libs HEAD keep their
  full HEAD parameter list (execve's ``uid``, ``gid``, ``exe_ino``, ``trusted_exepath``, ...), which
  sysdig 0.29.3 ignores (it reads as many parameters as its own table has). Current Falco then sees
  every parameter; libs 0.22.x refuses the file (its table has fewer execve/socket/fcntl
  parameters than HEAD and the converter rejects "more parameters than expected").

``current``: the events exactly as given, with libs HEAD's codes and full parameter lists, and the
  current proc-list tail, for our reader and current libs only (libs 0.22 refuses some HEAD counts,
  sysdig misreads the proc list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal

from falcorules_ci.errors import InputError
from falcorules_ci.fields.event_table import EventInfo, event_table
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

Compat = Literal["sysdig-0.29", "sysdig-0.29-full", "current"]
COMPAT_SYSDIG: Final = "sysdig-0.29"
COMPAT_SYSDIG_FULL: Final = "sysdig-0.29-full"
COMPAT_CURRENT: Final = "current"
COMPAT_MODES: Final[tuple[Compat, ...]] = (COMPAT_SYSDIG, COMPAT_SYSDIG_FULL, COMPAT_CURRENT)


def for_sysdig(compat: Compat) -> bool:
    """Whether the target includes sysdig 0.29.3 (older codes, enter events, pre-0.10 proc-list tail)."""
    return compat != COMPAT_CURRENT


SYSDIG_EVENT_MAX: Final = 336  # PPM_EVENT_MAX of sysdig 0.29.3's libs: it skips codes from here on

# current event -> the event sysdig-era drivers recorded the same syscall with
_LEGACY_EQUIVALENT: Final[dict[str, str]] = {
    "PPME_SYSCALL_DUP_1_E": "PPME_SYSCALL_DUP_E", "PPME_SYSCALL_DUP_1_X": "PPME_SYSCALL_DUP_X",
    "PPME_SYSCALL_DUP2_E": "PPME_SYSCALL_DUP_E", "PPME_SYSCALL_DUP2_X": "PPME_SYSCALL_DUP_X",
    "PPME_SYSCALL_DUP3_E": "PPME_SYSCALL_DUP_E", "PPME_SYSCALL_DUP3_X": "PPME_SYSCALL_DUP_X",
    "PPME_SYSCALL_BPF_2_E": "PPME_SYSCALL_BPF_E", "PPME_SYSCALL_BPF_2_X": "PPME_SYSCALL_BPF_X",
    "PPME_SOCKET_ACCEPT4_6_E": "PPME_SOCKET_ACCEPT4_5_E", "PPME_SOCKET_ACCEPT4_6_X": "PPME_SOCKET_ACCEPT4_5_X",
    "PPME_SYSCALL_UMOUNT_1_E": "PPME_SYSCALL_UMOUNT_E", "PPME_SYSCALL_UMOUNT_1_X": "PPME_SYSCALL_UMOUNT_X",
    "PPME_SYSCALL_UMOUNT2_E": "PPME_SYSCALL_UMOUNT_E", "PPME_SYSCALL_UMOUNT2_X": "PPME_SYSCALL_UMOUNT_X",
    "PPME_SYSCALL_PIPE2_E": "PPME_SYSCALL_PIPE_E", "PPME_SYSCALL_PIPE2_X": "PPME_SYSCALL_PIPE_X",
    "PPME_SYSCALL_INOTIFY_INIT1_E": "PPME_SYSCALL_INOTIFY_INIT_E",
    "PPME_SYSCALL_INOTIFY_INIT1_X": "PPME_SYSCALL_INOTIFY_INIT_X",
    "PPME_SYSCALL_EVENTFD2_E": "PPME_SYSCALL_EVENTFD_E", "PPME_SYSCALL_EVENTFD2_X": "PPME_SYSCALL_EVENTFD_X",
    "PPME_SYSCALL_SIGNALFD4_E": "PPME_SYSCALL_SIGNALFD_E", "PPME_SYSCALL_SIGNALFD4_X": "PPME_SYSCALL_SIGNALFD_X",
}  # fmt: skip
# an enter parameter that the exit carries under another name (HEAD's dup exits say "oldfd")
_ENTER_ALIASES: Final[dict[tuple[str, str], str]] = {("dup", "fd"): "oldfd", ("dup2", "fd"): "oldfd",
                                                     ("dup3", "fd"): "oldfd"}  # fmt: skip
_CLONE_NAMES: Final = frozenset({"clone", "fork", "vfork", "clone3"})
_BPF_MAP_CREATE: Final = 0
_BPF_PROG_LOAD: Final = 5
_BPF_IDX_FD: Final = b"\x00"  # PPM_BPF_IDX_FD: res_or_fd holds a new fd
_BPF_IDX_RES: Final = b"\x01"  # PPM_BPF_IDX_RES: res_or_fd holds a return value


def _bpf_res_or_fd(params: Mapping[str, Any]) -> dict[str, Any]:
    """The old ``bpf`` exit's dynamic parameter, chosen the way that era's driver chose it."""
    fd = params.get("fd")
    if fd is None:
        return {}
    is_fd = fd >= 0 and params.get("cmd") in (_BPF_MAP_CREATE, _BPF_PROG_LOAD)
    return {"res_or_fd": (_BPF_IDX_FD if is_fd else _BPF_IDX_RES) + (fd & ((1 << 64) - 1)).to_bytes(8, "little")}


def _umount_without_flags(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"flags": 0}  # umount(2) itself has no flags; the old enter event always carried them


_ADAPTERS: Final[dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "PPME_SYSCALL_BPF_2_X": _bpf_res_or_fd,
    "PPME_SYSCALL_UMOUNT_1_E": _umount_without_flags,
}


@dataclass(frozen=True, slots=True)
class EventPlan:
    """How events of one input code are written under one compatibility target."""

    source: EventInfo
    target: EventInfo  # the code written
    nparams: int  # how many of the target's parameters are written
    adapt: Callable[[Mapping[str, Any]], dict[str, Any]] | None  # builds the target's parameters
    enter: EventInfo | None  # sysdig target: the enter this exit must follow on its thread
    enter_aliases: tuple[tuple[str, str], ...]  # (enter name, exit name) where they differ
    clone_family: bool
    known_names: frozenset[str]
    visible_to_sysdig: bool
    remapped: bool


@cache
def _enum_codes() -> dict[str, int]:
    return {info.enum: code for code, info in event_table().by_code.items()}


@cache
def event_plan(code: int, compat: Compat) -> EventPlan | None:
    """The plan for input events of ``code``, or None when the event table does not know it."""
    table = event_table().by_code
    source = table.get(code)
    if source is None:
        return None
    known = frozenset(p.name for p in source.params)
    if compat == COMPAT_CURRENT:
        return EventPlan(
            source, source, len(source.params), None, None, (), False, known, code < SYSDIG_EVENT_MAX, False
        )
    target = source
    equivalent = _LEGACY_EQUIVALENT.get(source.enum)
    if equivalent is not None:
        target = table[_enum_codes()[equivalent]]
    if target.legacy_nparams is None or (compat == COMPAT_SYSDIG_FULL and not target.is_old_version):
        nparams = len(target.params)
    else:
        nparams = target.legacy_nparams
    enter: EventInfo | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    if source.direction == "<":
        candidate = table.get(code - 1)
        if (candidate is not None and candidate.name == source.name and candidate.direction == ">"
                and not candidate.is_unused):  # fmt: skip
            enter = candidate
            aliases = tuple((p.name, _ENTER_ALIASES[(source.name, p.name)]) for p in candidate.params
                            if (source.name, p.name) in _ENTER_ALIASES)  # fmt: skip
    return EventPlan(source, target, nparams, _ADAPTERS.get(source.enum), enter, aliases,
                     source.name in _CLONE_NAMES, known, target.code < SYSDIG_EVENT_MAX,
                     target.code != source.code)  # fmt: skip


def sysdig_invisible_names() -> frozenset[str]:
    """Names of current events a ``sysdig-0.29`` capture still holds but sysdig 0.29.3 cannot see."""
    names = set()
    for code, info in event_table().by_code.items():
        plan = event_plan(code, COMPAT_SYSDIG)
        if plan is not None and not plan.visible_to_sysdig and not info.is_old_version and not info.is_unused:
            names.add(info.name)
    return frozenset(names)


# (plan, ts, tid, cpu, flags, parameters, the input event it comes from); the parameters are looked
# up by the target's names, which agree with the source's except where an adapter added them
PlannedEvent = tuple[EventPlan, int, int, int, int, Mapping[str, Any], Event]


class CompatStream:
    """Turns input events into the events a capture holds under one target, counting what changed.

    ``mapped`` counts events written with an older code (``"PPME_SYSCALL_DUP2_X -> PPME_SYSCALL_DUP_X"``); ``not_for_sysdig``
    counts written events sysdig 0.29.3 skips, by name; ``enters_added`` the enter events made for
    exits that had none; ``notes`` anything else worth reporting (timestamps going backwards).
    """

    def __init__(self, compat: Compat, path: str) -> None:
        if compat not in COMPAT_MODES:
            raise InputError(f"unknown capture compatibility {compat!r} (known: {', '.join(COMPAT_MODES)})")
        self.compat: Compat = compat
        self.path = path
        self.mapped: dict[str, int] = {}
        self.not_for_sysdig: dict[str, int] = {}
        self.enters_added = 0
        self.notes: dict[str, int] = {}
        self.events_in = 0

    def note(self, reason: str, count: int = 1) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + count

    def plan_for(self, event: Event) -> EventPlan:
        plan = event_plan(event.code, self.compat) if event.source == SYSCALL_SOURCE else None
        if plan is None:
            what = (f"event code {event.code} ({event.name!r}) is not in the event table"
                    if event.source == SYSCALL_SOURCE else f"a {event.source} event is not a syscall event")  # fmt: skip
            raise InputError(f"cannot write event #{event.num}: {what}", event.span)
        return plan

    def events(self, events: Iterable[Event]) -> Iterator[PlannedEvent]:
        strict_pairs = for_sysdig(self.compat)
        last_enter: dict[int, int] = {}  # tid -> source code of its latest enter not yet consumed
        plans: dict[int, EventPlan] = {}
        last_ts = -1
        for event in events:
            self.events_in += 1
            code = event.code
            plan = plans.get(code)
            if plan is None:
                plan = plans[code] = self.plan_for(event)
            params = event.params
            if not params.keys() <= plan.known_names:
                extra = ", ".join(sorted(set(params) - plan.known_names))
                raise InputError(f"cannot write event #{event.num} ({plan.source.enum}): unknown parameters {extra}",
                                 event.span)  # fmt: skip
            ts, tid = event.ts, event.tid
            if ts < last_ts:
                self.note("timestamps go backwards (sinsp does not re-sort events)")
            last_ts = ts
            flags = event.flags & ~4  # SCAP_DF_LARGE is the writer's business, not the event's
            if strict_pairs:
                if plan.source.direction == ">":
                    last_enter[tid] = code
                elif plan.enter is not None:
                    had_enter = last_enter.pop(tid, None) == plan.enter.code
                    # the child's side of a clone returns 0 and never entered the syscall
                    if not had_enter and not (plan.clone_family and params.get("res") == 0):
                        yield self._made_enter(plan, event, flags)
            if plan.remapped:
                key = f"{plan.source.enum} -> {plan.target.enum}"
                self.mapped[key] = self.mapped.get(key, 0) + 1
            if not plan.visible_to_sysdig:
                self.not_for_sysdig[plan.target.name] = self.not_for_sysdig.get(plan.target.name, 0) + 1
            if plan.adapt is not None:
                params = {**params, **plan.adapt(params)}
            yield plan, ts, tid, event.cpu, flags, params, event

    def _made_enter(self, plan: EventPlan, exit_event: Event, flags: int) -> PlannedEvent:
        assert plan.enter is not None
        exit_params = exit_event.params
        aliases = dict(plan.enter_aliases)
        params = {p.name: exit_params[aliases.get(p.name, p.name)] for p in plan.enter.params
                  if aliases.get(p.name, p.name) in exit_params}  # fmt: skip
        enter_plan = event_plan(plan.enter.code, self.compat)
        assert enter_plan is not None
        self.enters_added += 1
        if enter_plan.remapped:
            key = f"{enter_plan.source.enum} -> {enter_plan.target.enum}"
            self.mapped[key] = self.mapped.get(key, 0) + 1
        if not enter_plan.visible_to_sysdig:
            self.not_for_sysdig[enter_plan.target.name] = self.not_for_sysdig.get(enter_plan.target.name, 0) + 1
        if enter_plan.adapt is not None:
            params.update(enter_plan.adapt(params))
        return enter_plan, exit_event.ts, exit_event.tid, exit_event.cpu, flags, params, exit_event
