"""The embedded engine: selected rules compiled per source, run on each event in Falco's order,
and matches turned into alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.formatter import CompiledFormat, Formatter
from falcorules_ci.engine.index import EventTypeIndex, reaches_rules, rule_codes, select_rules, syscall_enter_codes
from falcorules_ci.engine.operands import FieldResolver, OperandCompiler
from falcorules_ci.engine.options import EngineOptions, utc_offset_seconds
from falcorules_ci.engine.predicate import ClauseResult, EventValues, Predicate, Slots, explain_tree
from falcorules_ci.engine.timefmt import time_field_text
from falcorules_ci.errors import FalcoRulesError
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.ruleset.model import Rule, Ruleset
from falcorules_ci.sources.event import Event


class EngineError(FalcoRulesError):
    """A rule could not be evaluated or formatted on an event (a defect, reported with context)."""


@dataclass(slots=True)
class CompiledRule:
    """A selected rule with its compiled condition; its output is compiled on first alert."""

    rule: Rule
    predicate: Predicate
    evaluate: Callable[[EventValues], bool]
    runtime: SourceRuntime
    _format: CompiledFormat | None = None
    _extras: tuple[tuple[str, Callable[[Event, EventValues], Any]], ...] | None = None

    def output_format(self) -> CompiledFormat:
        if self._format is None:
            self._format = self.runtime.formatter.compile(self.rule.output)
        return self._format

    def extra_fields(self) -> tuple[tuple[str, Callable[[Event, EventValues], Any]], ...]:
        if self._extras is None:
            extras: list[tuple[str, Callable[[Event, EventValues], Any]]] = []
            formatter = self.runtime.formatter
            for name, fmt in self.rule.extra_fields:
                if fmt is None:
                    extras.append((name, formatter.raw_field(name)))
                elif fmt:
                    extras.append((name, _text_of(formatter.compile(fmt), self.runtime.utc_offset)))
            self._extras = tuple(extras)
        return self._extras


def _text_of(compiled: CompiledFormat, offset: int) -> Callable[[Event, EventValues], Any]:
    return lambda event, values: compiled.render(event, values, offset)


@dataclass(slots=True)
class SourceRuntime:
    """Everything one event source needs: operand slots, the shared value cache, a formatter."""

    source: str
    slots: Slots
    values: EventValues
    formatter: Formatter
    utc_offset: int


@dataclass(slots=True)
class EngineStats:
    events_evaluated: Counter[str] = field(default_factory=Counter)  # by source
    alerts_by_rule: Counter[str] = field(default_factory=Counter)


class EmbeddedEngine:
    """Falco 0.44.1's rule engine in Python, for one ruleset and one set of options."""

    def __init__(
        self,
        ruleset: Ruleset | Sequence[Rule],
        options: EngineOptions | None = None,
        *,
        registry: FieldRegistry | None = None,
        resolver: FieldResolver | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self.registry = registry or default_registry()
        self.resolver = resolver
        self.hostname = self.options.resolved_hostname()
        self.utc_offset = utc_offset_seconds(self.options.timezone)
        self.stats = EngineStats()
        rules = ruleset.rules if isinstance(ruleset, Ruleset) else list(ruleset)
        self.rules = select_rules(rules, self.options)
        self.runtimes: dict[str, SourceRuntime] = {}
        entries = [(r.source, rule_codes(r), self._compile(r)) for r in self.rules]
        self.index: EventTypeIndex[CompiledRule] = EventTypeIndex(entries)
        self._first = self.options.rule_matching == "first"
        self._legacy = self.options.legacy_enter_events
        self._enter_codes = syscall_enter_codes()
        self._tables: dict[str, dict[int, tuple[CompiledRule, ...]]] = {}

    # -- compilation ---------------------------------------------------------------------------

    def runtime(self, source: str) -> SourceRuntime:
        found = self.runtimes.get(source)
        if found is None:
            slots = Slots(OperandCompiler(source, self.resolver))
            found = SourceRuntime(source, slots, slots.new_values(), Formatter(slots, self.registry, source),
                                  self.utc_offset)  # fmt: skip
            self.runtimes[source] = found
        return found

    def _compile(self, rule: Rule) -> CompiledRule:
        runtime = self.runtime(rule.source)
        try:
            predicate = Predicate(rule.checked, runtime.slots, rule.name)
        except FalcoRulesError:
            raise
        except Exception as exc:
            raise EngineError(f"cannot compile the condition of rule '{rule.name}': {exc}", rule.span) from exc
        return CompiledRule(rule, predicate, predicate.evaluate, runtime)

    def compiled(self, name: str) -> CompiledRule:
        for item in self.index.items():
            if item.rule.name == name:
                return item
        raise KeyError(name)

    # -- evaluation ----------------------------------------------------------------------------

    def candidates(self, event: Event) -> tuple[CompiledRule, ...]:
        """The rules Falco would run on this event, in order (empty for dropped enter events)."""
        if not reaches_rules(event.code, event.direction, self._legacy):
            return ()
        return self.index.lookup(event.source, event.code)

    def process(self, event: Event, state: Any) -> list[Alert]:
        """Run the rules on one event (after the state saw it) and return the alerts."""
        code = event.code
        if event.direction == ">" and not self._legacy and code in self._enter_codes:
            return []
        table = self._tables.get(event.source)
        rules = table.get(code) if table is not None else None
        if rules is None:
            rules = self.index.lookup(event.source, code)
            self._tables[event.source] = self.index.table(event.source)
        if not rules:
            return []
        values = rules[0].runtime.values
        values.reset(event, state)
        self.stats.events_evaluated[event.source] += 1
        current = rules[0]
        try:
            if self._first:
                for current in rules:
                    if current.evaluate(values):
                        return [self._alert_of(current, event, values)]
                return []
            matched = []
            for current in rules:
                if current.evaluate(values):
                    matched.append(current)
        except FalcoRulesError:
            raise
        except Exception as exc:
            raise self._failure(current, event, exc) from exc
        return [self._alert_of(c, event, values) for c in matched]

    def _failure(self, compiled: CompiledRule, event: Event, exc: Exception) -> EngineError:
        where = f"event {event.num} ({event.name})"
        return EngineError(f"rule '{compiled.rule.name}' failed on {where}: {type(exc).__name__}: {exc}",
                           event.span)  # fmt: skip

    def _alert_of(self, compiled: CompiledRule, event: Event, values: EventValues) -> Alert:
        try:
            return self.alert(compiled, event, values)
        except FalcoRulesError:
            raise
        except Exception as exc:
            raise self._failure(compiled, event, exc) from exc

    def alert(self, compiled: CompiledRule, event: Event, values: EventValues) -> Alert:
        """Format the alert of a matched rule (values already hold the event's extractions)."""
        rule = compiled.rule
        fmt = compiled.output_format()
        offset = compiled.runtime.utc_offset
        message = fmt.render(event, values, offset)
        time_key = "evt.time.iso8601" if self.options.time_format_iso_8601 else "evt.time"
        line = f"{time_field_text(time_key, event.ts, offset)}: {rule.priority.label} {message}"
        fields = fmt.fields(event, values)
        fields[time_key] = event.ts
        for name, value_of in compiled.extra_fields():
            fields[name] = value_of(event, values)
        self.stats.alerts_by_rule[rule.name] += 1
        return Alert(
            time=event.ts,
            rule=rule.name,
            priority=rule.priority,
            source=rule.source,
            tags=rule.tags,
            output=line,
            message=message,
            output_fields=fields,
            hostname=self.hostname,
            event_num=event.num,
        )

    def explain(self, rule_name: str, event: Event, state: Any) -> list[ClauseResult]:
        """Evaluate every check of one selected rule's condition on an event (after the state
        saw it), for "why did (not) it fire" reports."""
        compiled = self.compiled(rule_name)
        values = compiled.runtime.slots.new_values()
        values.reset(event, state)
        return explain_tree(compiled.predicate.tree, values)
