"""Differential checks of the embedded engine against sysdig 0.29.3 on one capture.

Two comparisons, both in the embedded engine's legacy mode (enter events evaluated, as in
libsinsp < 0.22) and both keyed by our event numbers:

- **Rule matches**: for every rule both can evaluate, the events the embedded engine matches
  (``rule_matching: all``) against the events sysdig's filter accepts
  (:func:`~falcorules_ci.engine.sysdig.replay`). A rule the embedded engine fails on is reported
  as an engine error for that rule and the others are compared without it.
- **Field values**: for every event sysdig reads and every field both know, the text the embedded
  engine's formatter prints (``%field`` in an output) against the text ``sysdig -p`` prints. Time
  fields are printed in UTC on both sides.

The results are plain records (:class:`MatchDisagreement`, :class:`FieldDisagreement`); deciding
which disagreements are known differences between sysdig 0.29.3 and current libs is the caller's
job (the differential tests keep a named allowance list).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from falcorules_ci.condition.typecheck import field_matches, plain_fields
from falcorules_ci.engine.core import EmbeddedEngine, EngineError
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.sysdig_events import CaptureEvents
from falcorules_ci.engine.sysdig_filters import printable_by_sysdig
from falcorules_ci.engine.sysdig_runner import SysdigError, SysdigRunner
from falcorules_ci.errors import Span
from falcorules_ci.fields.registry import FieldMatch, FieldRegistry
from falcorules_ci.ruleset.model import Rule
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

# What compare_fields asks sysdig for before the compared fields: the event's identity.
FIELD_KEYS = ("evt.rawtime", "evt.type", "evt.dir")
# Legacy mode, every match reported, times in UTC (sysdig runs with TZ=UTC).
DIFF_OPTIONS = EngineOptions(legacy_enter_events=True, rule_matching="all", timezone="UTC", hostname="diff")


@dataclass(frozen=True, slots=True)
class MatchDisagreement:
    """One event one side matched and the other did not."""

    capture: str
    rule: str
    evt_num: int
    ours: bool
    sysdig: bool


@dataclass(frozen=True, slots=True)
class FieldDisagreement:
    """One field of one event printed differently; ``evt_type`` and ``evt_dir`` say which event."""

    capture: str
    evt_num: int
    evt_type: str
    evt_dir: str
    code: int  # the event code as stored in the capture
    field: str
    ours: str
    sysdig: str
    sysdig_num: int  # sysdig's evt.num for the event
    stored: frozenset[str]  # the parameters the capture stores for the event
    ours_row: Mapping[str, str] = dataclasses.field(compare=False, repr=False)  # every compared field of the event
    sysdig_row: Mapping[str, str | None] = dataclasses.field(compare=False, repr=False)


@dataclass(slots=True)
class MatchComparison:
    capture: str
    rules: tuple[str, ...]  # the rules compared on this capture
    disagreements: list[MatchDisagreement] = dataclasses.field(default_factory=list)
    engine_errors: dict[str, str] = dataclasses.field(default_factory=dict)  # rule -> our engine's failure
    matches: int = 0  # (rule, event) matches both sides agree on


@dataclass(slots=True)
class FieldComparison:
    capture: str
    fields: tuple[str, ...]
    events: int = 0  # events compared (read by both)
    pairs: int = 0  # (event, field) pairs compared
    unread_by_sysdig: int = 0  # events of types sysdig 0.29.3 skips: not compared
    crashed: tuple[str, ...] = ()  # fields sysdig crashed printing on this capture
    unprinted: int = 0  # (event, field) pairs not compared because sysdig crashed first
    disagreements: list[FieldDisagreement] = dataclasses.field(default_factory=list)


# -- which fields ---------------------------------------------------------------------------------

# Label fields take their key in brackets in current libs and the container plugin
# (``k8s.pod.label[app]``) and after a dot in sysdig 0.29.3 (``k8s.pod.label.app``).
_DOTTED_KEY_IN_SYSDIG = re.compile(r"^(k8s\.(?:pod|rc|svc|ns|rs|deployment)\.label)\[(.+)\]$")


def sysdig_spelling(field: str) -> str:
    """How sysdig 0.29.3 spells a field written as current Falco spells it."""
    m = _DOTTED_KEY_IN_SYSDIG.match(field)
    return f"{m[1]}.{m[2]}" if m else field


def comparable_fields(registry: FieldRegistry, rules: Iterable[Rule] = ()) -> tuple[str, ...]:
    """Every syscall field both know and sysdig can print: each registry field that needs no
    argument, plus every field-with-argument the rules use (conditions and outputs), sorted."""
    names = {
        info.name
        for info in registry
        if info.source == SYSCALL_SOURCE and not info.arg_required
        and printable_by_sysdig(FieldMatch(info, None))
    }  # fmt: skip
    for rule in rules:
        if rule.source != SYSCALL_SOURCE:
            continue
        for match in _rule_fields(rule, registry):
            if match.arg is not None and printable_by_sysdig(match):
                names.add(match.text)
    return tuple(sorted(names))


def _rule_fields(rule: Rule, registry: FieldRegistry) -> set[FieldMatch]:
    from falcorules_ci.condition.output import parse_output

    found = set(field_matches(rule.checked))
    for token in parse_output("*" + rule.output.lstrip("*"), registry, rule.source).tokens:
        found.update(typed.match for typed in plain_fields(token.typed))
    return found


# -- the embedded engine's side -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbeddedTexts:
    """The embedded engine's printed field values per event (by our evt.num), and the names of
    the parameters each event has in the capture (before the state completes exits from their
    enter event, as libscap's converter does)."""

    texts: dict[int, tuple[str, ...]]
    stored: dict[int, frozenset[str]]


class EmbeddedSide:
    """The embedded engine compiled once for many captures: rule matches and printed fields.

    Every rule is enabled (selection is not what is compared). A rule the engine fails on is
    reported for that capture and the capture replayed without it; engines without the failing
    rules are compiled once and reused, since the same rules tend to fail everywhere.
    """

    def __init__(self, rules: Sequence[Rule], fields: Sequence[str] = (), options: EngineOptions = DIFF_OPTIONS):
        self.rules = [replace(r, enabled=True) for r in rules]
        self.options = options
        self.fields = tuple(fields)
        self._engines: dict[frozenset[str], EmbeddedEngine] = {}

    def engine(self, without: frozenset[str] = frozenset()) -> EmbeddedEngine:
        found = self._engines.get(without)
        if found is None:
            rules = [r for r in self.rules if r.name not in without]
            found = self._engines[without] = EmbeddedEngine(rules, self.options)
        return found

    def matches(self, capture: str | os.PathLike[str]) -> tuple[dict[str, set[int]], dict[str, str]]:
        """Each rule's matched event numbers, and the rules the engine failed on (with why)."""
        errors: dict[str, str] = {}
        while True:
            engine = self.engine(frozenset(errors))
            try:
                return self._replay(engine, os.fspath(capture)), errors
            except EngineError as exc:
                failed = next((r.name for r in engine.rules if f"rule '{r.name}'" in exc.message), None)
                if failed is None:
                    raise
                errors[failed] = exc.message

    @staticmethod
    def _replay(engine: EmbeddedEngine, capture: str) -> dict[str, set[int]]:
        # The syscall part of replay(): fresh state per capture, updated before the rules run.
        from falcorules_ci.sources.scap import read_capture
        from falcorules_ci.state.syscall_state import SyscallState

        opened = read_capture(capture)
        state = SyscallState(opened.header)
        found: dict[str, set[int]] = {r.name: set() for r in engine.rules}
        for event in opened.events():
            if event.source != SYSCALL_SOURCE:
                continue
            state.update(event)
            for alert in engine.process(event, state):
                found[alert.rule].add(alert.event_num)
        return found

    def texts(self, capture: str | os.PathLike[str], only: Collection[int] | None = None) -> EmbeddedTexts:
        """Each event's ``%field`` texts as the embedded engine prints them in an output (every
        event, enter events included; the state updated first, as for rules). With ``only``,
        just those events (by our evt.num) are formatted, the state still sees every event: the
        fields that count or time the events formatted (``util.cnt``, ``evt.deltatime``) then
        see the same events as a formatter that printed only those."""
        from falcorules_ci.sources.scap import read_capture
        from falcorules_ci.state.syscall_state import SyscallState

        # A fresh runtime per capture, as sysdig is a fresh process per capture: util.cnt and
        # evt.deltatime keep state in their extractors, which must not run on from the last capture.
        runtime = EmbeddedEngine([], self.options).runtime(SYSCALL_SOURCE)
        formats = [runtime.formatter.compile("%" + name) for name in self.fields]
        values = runtime.values
        offset = runtime.utc_offset
        opened = read_capture(os.fspath(capture))
        state = SyscallState(opened.header)
        out = EmbeddedTexts({}, {})
        event: Event
        wanted = None if only is None else set(only)
        for event in opened.events():
            out.stored[event.num] = frozenset(event.params)
            state.update(event)
            if wanted is not None and event.num not in wanted:
                continue
            values.reset(event, state)
            out.texts[event.num] = tuple(fmt.render(event, values, offset) for fmt in formats)
        return out


def embedded_matches(rules: Sequence[Rule], capture: str | os.PathLike[str],
                     options: EngineOptions = DIFF_OPTIONS) -> tuple[dict[str, set[int]], dict[str, str]]:  # fmt: skip
    """Each rule's matched event numbers through the embedded engine, and the rules it failed on."""
    return EmbeddedSide(rules, (), options).matches(capture)


def embedded_field_texts(capture: str | os.PathLike[str], fields: Sequence[str],
                         options: EngineOptions = DIFF_OPTIONS) -> EmbeddedTexts:  # fmt: skip
    """Each event's ``%field`` texts as the embedded engine prints them in an output."""
    return EmbeddedSide((), fields, options).texts(capture)


# -- comparisons ------------------------------------------------------------------------------------


def compare_matches(capture: str | os.PathLike[str], ours: dict[str, set[int]], theirs: dict[str, set[int]],
                    rules: Sequence[str], engine_errors: dict[str, str] | None = None) -> MatchComparison:  # fmt: skip
    """Every (rule, event) on which the two sides differ, for the given rules."""
    name = os.fspath(capture)
    result = MatchComparison(name, tuple(rules), engine_errors=dict(engine_errors or {}))
    for rule in rules:
        if rule in result.engine_errors:
            continue
        mine, other = ours.get(rule, set()), theirs.get(rule, set())
        result.matches += len(mine & other)
        for num in sorted(mine ^ other):
            result.disagreements.append(MatchDisagreement(name, rule, num, num in mine, num in other))
    return result


def compare_fields(capture: str | os.PathLike[str], fields: Sequence[str], runner: SysdigRunner,
                   options: EngineOptions = DIFF_OPTIONS, *, events: CaptureEvents | None = None,
                   side: EmbeddedSide | None = None) -> FieldComparison:  # fmt: skip
    """Every (event, field) whose printed text differs between the embedded engine and sysdig."""
    path = os.fspath(capture)
    events = events or CaptureEvents(path)
    keys = FIELD_KEYS
    printed = runner.print_fields(path, [*keys, *map(sysdig_spelling, fields)])
    if side is None or side.fields != tuple(fields):
        side = EmbeddedSide((), fields, options)
    # Format only what sysdig printed (it never shows container events, for one).
    ours = side.texts(path, {events.ours(n) for n in printed.rows})
    result = FieldComparison(path, tuple(fields), unread_by_sysdig=events.unread_by_sysdig, crashed=printed.crashed)
    for sysdig_num, row in sorted(printed.rows.items()):
        num = events.ours(sysdig_num)
        if row[0] is None or row[1] is None or row[2] is None:
            raise SysdigError(f"sysdig crashed printing the event keys of its event {sysdig_num}", Span(path))
        events.check(sysdig_num, row[0])
        mine = ours.texts[num]
        code = events.code(sysdig_num)
        stored = ours.stored[num]
        result.events += 1
        theirs = row[len(keys):]
        mine_row: dict[str, str] | None = None
        their_row: dict[str, str | None] | None = None
        for name, a, b in zip(fields, mine, theirs, strict=True):
            if b is None:
                result.unprinted += 1
                continue
            result.pairs += 1
            if a != b:
                if mine_row is None or their_row is None:
                    mine_row = dict(zip(fields, mine, strict=True))
                    their_row = dict(zip(fields, theirs, strict=True))
                result.disagreements.append(FieldDisagreement(path, num, row[1], row[2], code, name, a, b, sysdig_num,
                                                              stored, mine_row, their_row))  # fmt: skip
    return result


__all__ = [
    "DIFF_OPTIONS",
    "FIELD_KEYS",
    "EmbeddedSide",
    "EmbeddedTexts",
    "FieldComparison",
    "FieldDisagreement",
    "MatchComparison",
    "MatchDisagreement",
    "comparable_fields",
    "compare_fields",
    "compare_matches",
    "embedded_field_texts",
    "embedded_matches",
    "sysdig_spelling",
]
