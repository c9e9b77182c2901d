"""Which rules run, and on which events: Falco's rule selection and event-type index.

Selection (``falco_engine::load_rules`` and ``indexable_ruleset``): a rule less severe than the
minimum priority is never added; the others start enabled or disabled as loaded; then ``-t``
disables everything and enables rules carrying any of its tags (even rules loaded disabled), and
``-T`` / ``-D`` disable by tag / name substring.

Index (``evttype_index_ruleset``): a syscall rule is filed under every event code its condition
can match, a plugin-source rule under the plugin event; every rule is also filed under the async
event. For an event, the rules filed under its code run in load order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Generic, TypeVar

from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.ruleset.model import Rule
from falcorules_ci.sources.event import SYSCALL_SOURCE

PLUGIN_EVENT_CODE = 322  # PPME_PLUGINEVENT_E
ASYNC_EVENT_CODE = 402  # PPME_ASYNCEVENT_E

T = TypeVar("T")


def select_rules(rules: Iterable[Rule], options: EngineOptions) -> list[Rule]:
    """The rules Falco would evaluate with these options, in load order."""
    loaded = [r for r in rules if r.priority <= options.min_priority]
    enabled = {r.name: r.enabled for r in loaded}
    if options.enabled_tags:
        for r in loaded:
            enabled[r.name] = bool(options.enabled_tags.intersection(r.tags))
    if options.disabled_tags:
        for r in loaded:
            if options.disabled_tags.intersection(r.tags):
                enabled[r.name] = False
    for substring in options.disabled_rules:
        for r in loaded:
            if substring in r.name:
                enabled[r.name] = False
    return [r for r in loaded if enabled[r.name]]


def rule_codes(rule: Rule) -> frozenset[int] | None:
    """The event codes a rule is filed under; None for every code."""
    if rule.source == SYSCALL_SOURCE:
        if rule.evttypes is None:
            return None
        return rule.evttypes | {ASYNC_EVENT_CODE}
    return frozenset({PLUGIN_EVENT_CODE, ASYNC_EVENT_CODE})


@cache
def syscall_enter_codes() -> frozenset[int]:
    """Enter events of system calls: since libs 0.22 they never reach the rules."""
    return frozenset(
        code
        for code, info in event_table().by_code.items()
        if info.direction == ">" and "EC_SYSCALL" in info.category
    )


def reaches_rules(code: int, direction: str, legacy_enter_events: bool) -> bool:
    """Whether an event goes to the rules: everything but syscall enter events, unless legacy."""
    return legacy_enter_events or direction != ">" or code not in syscall_enter_codes()


class EventTypeIndex(Generic[T]):
    """Items (compiled rules) per source and event code, in the order they were given."""

    def __init__(self, entries: Sequence[tuple[str, frozenset[int] | None, T]]) -> None:
        self._entries = tuple(entries)
        self._tables: dict[str, dict[int, tuple[T, ...]]] = {}

    def lookup(self, source: str, code: int) -> tuple[T, ...]:
        table = self._tables.get(source)
        if table is None:
            table = self._tables[source] = {}
        found = table.get(code)
        if found is None:
            found = table[code] = tuple(
                item for src, codes, item in self._entries if src == source and (codes is None or code in codes)
            )
        return found

    def table(self, source: str) -> dict[int, tuple[T, ...]]:
        """The lazily filled code → items table of one source (the engine reads it directly)."""
        return self._tables.setdefault(source, {})

    def items(self, source: str | None = None) -> list[T]:
        return [item for src, _, item in self._entries if source is None or src == source]

    @property
    def sources(self) -> list[str]:
        return sorted({src for src, _, _ in self._entries})


def build_index(rules: Sequence[Rule], compile_rule: Callable[[Rule], T]) -> EventTypeIndex[T]:
    """Index compiled rules (``compile_rule(rule)``) by source and event code, in load order."""
    return EventTypeIndex([(r.source, rule_codes(r), compile_rule(r)) for r in rules])
