"""Why a rule did or did not fire on an input, clause by clause.

An input is replayed event by event with the state updated first, as the engine does, through the
whole selected pack (so ``rule_matching: first`` is honoured) while each rule under study is
watched on its own: on every *candidate* event (an event of the rule's source and event types that
reaches the rules) every node of its expanded condition is evaluated, short-circuits ignored, with
the field values each check saw. The explanation is then about one event:

- the first event the rule fired on, if it fired;
- else the first event its condition was true on (another rule matched first, or the rule is not
  selected by the options);
- else the *nearest candidate*: the event on which most top-level conjuncts of the condition held
  (ties: most checks held inside them, then the latest event). Each conjunct is shown true or
  false, printed as written in the rule (``shell_procs``) and as expanded, and the first false one
  is taken apart down to the checks and values that made it false.

:class:`ReplaySession` also serves plain replays: it compiles the pack once and reuses the engine
for every input, which is what makes a thousand small fixtures cheap.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.condition.ast import And
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.printer import to_text
from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.core import EmbeddedEngine
from falcorules_ci.engine.generic import PluginState
from falcorules_ci.engine.index import reaches_rules, rule_codes
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.predicate import CompiledCheck, CompiledNode, EventValues, Predicate, compile_condition
from falcorules_ci.errors import FalcoRulesError, Span, UsageError
from falcorules_ci.expect.expectations import AlertLike, Expectation, Fires, NotFires, RuleCatalog
from falcorules_ci.expect.fixture import Fixture, FixtureInput
from falcorules_ci.expect.inputs import open_input
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.ruleset.model import Rule, Ruleset
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

MAX_SHOWN_CHILDREN = 8  # sub-clauses listed under one and/or before "... N more"
MAX_DEPTH = 6  # levels of sub-clauses taken apart below a conjunct
MAX_TEXT = 160  # characters of a clause's text before it is cut
MAX_VALUE_ITEMS = 8  # items of a list value shown
MAX_ALERTS_KEPT = 5


# -- records -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRef:
    """The event an explanation is about, with where it came from (a scenario line, a capture offset)."""

    num: int
    name: str
    direction: str
    tid: int
    source: str
    span: Span | None = None

    @classmethod
    def of(cls, event: Event) -> EventRef:
        return cls(event.num, event.name, event.direction, event.tid, event.source, event.span)

    def describe(self) -> str:
        what = f"event #{self.num} {self.name}"
        what += f" {self.direction} (tid {self.tid})" if self.source == SYSCALL_SOURCE else f" ({self.source})"
        return what + (f" at {self.span}" if self.span else "")

    def to_json(self) -> dict[str, Any]:
        return {"num": self.num, "type": self.name, "dir": self.direction, "tid": self.tid, "source": self.source,
                "at": str(self.span) if self.span else None}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Clause:
    """One node of a condition evaluated on one event.

    ``result`` is the node's value on its own; ``reached`` whether Falco's left-to-right
    short-circuit evaluates it at all. ``values`` are a check's operands and extracted values
    (JSON-ready; ``None``: the field has no value). ``label`` is a top-level conjunct as written
    in the rule (a macro name, a list name) when that differs from the expanded ``text``.
    """

    kind: str  # "check" | "and" | "or" | "not"
    text: str
    result: bool
    reached: bool
    values: tuple[tuple[str, Any], ...] = ()
    children: tuple[Clause, ...] = ()
    label: str = ""
    error: str = ""

    @property
    def shown(self) -> str:
        return self.label or self.text

    def reasons(self) -> tuple[tuple[Clause, ...], int]:
        """The sub-clauses that decide this node's value, and how many siblings were left out:
        a false ``and`` by its first false part, a true ``or`` by its first true part, a false
        ``or`` / true ``and`` by all of them, a ``not`` by its operand."""
        kids = self.children
        if (self.kind == "and" and not self.result) or (self.kind == "or" and self.result):
            deciding = next((c for c in kids if c.result is (self.kind == "or")), None)
            return ((deciding,) if deciding else ()), 0
        if len(kids) > MAX_SHOWN_CHILDREN:
            return kids[:MAX_SHOWN_CHILDREN], len(kids) - MAX_SHOWN_CHILDREN
        return kids, 0

    def to_json(self, depth: int = 0, expand: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text, "result": self.result, "reached": self.reached}
        if self.label:
            out["label"] = self.label
        if self.values:
            out["values"] = [{"operand": name, "value": value} for name, value in self.values]
        if self.error:
            out["error"] = self.error
        if expand and self.children and depth < MAX_DEPTH:
            shown, more = self.reasons()
            out["because"] = [c.to_json(depth + 1) for c in shown]
            if more:
                out["more"] = more
        return out


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """An alert and the event it fired on."""

    rule: str
    priority: str
    output: str
    event: EventRef

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "priority": self.priority, "output": self.output, "event": self.event.to_json()}


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """Why one rule fired or not on one input.

    ``status``: ``fired``; ``preempted`` (its condition was true but it raised no alert: with
    ``rule_matching: first`` an earlier rule matched the event); ``not_selected`` (the options
    never run it: disabled, tags, priority); ``no_match`` (false on every candidate event);
    ``no_candidates`` (the input has no event the rule is evaluated on).
    """

    rule: str
    status: str
    summary: str
    span: Span
    candidates: int
    event_types: tuple[str, ...]
    event: EventRef | None = None
    conjuncts: tuple[Clause, ...] = ()
    alerts: tuple[FiredAlert, ...] = ()
    fired: int = 0
    preempted_by: tuple[str, ...] = ()
    not_selected: str = ""

    @property
    def satisfied(self) -> int:
        return sum(c.result for c in self.conjuncts)

    def to_text(self) -> str:
        lines = [self.summary, f"  {self.span}: note: rule '{self.rule}' is defined here"]
        if self.status == "no_candidates":
            return "\n".join(lines)
        if self.event is not None:
            lines.append(f"  {_event_heading(self)}:")
            lines.extend(_conjunct_lines(self.conjuncts, explain_first_false=self.status in ("no_match", "not_selected")
                                         and self.satisfied < len(self.conjuncts)))  # fmt: skip
        for alert in self.alerts[:MAX_ALERTS_KEPT]:
            lines.append(f"  alert on {alert.event.describe()}:\n    {alert.output}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        first_false = next((i for i, c in enumerate(self.conjuncts) if not c.result), None)
        return {
            "rule": self.rule, "status": self.status, "summary": self.summary, "defined_at": str(self.span),
            "not_selected": self.not_selected or None, "candidates": self.candidates,
            "event_types": list(self.event_types), "event": self.event.to_json() if self.event else None,
            "conjuncts_true": self.satisfied, "conjuncts_total": len(self.conjuncts),
            "conjuncts": [c.to_json(expand=i == first_false) for i, c in enumerate(self.conjuncts)],
            "fired": self.fired, "alerts": [a.to_json() for a in self.alerts],
            "preempted_by": list(self.preempted_by),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class InputExplanation:
    """Every requested rule explained on one input, and every alert of the replay."""

    input: str
    events: int
    rules: tuple[RuleExplanation, ...]
    alerts: tuple[FiredAlert, ...] = field(default=())

    def rule(self, name: str) -> RuleExplanation:
        for item in self.rules:
            if item.rule == name:
                return item
        raise KeyError(name)

    def to_text(self) -> str:
        return "\n\n".join(r.to_text() for r in self.rules)

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "events": self.events, "rules": [r.to_json() for r in self.rules],
                "alerts": [a.to_json() for a in self.alerts]}  # fmt: skip


# -- rendering ---------------------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def show_value(value: Any) -> str:
    """A field value as a rule author reads it: strings quoted, ``<NA>`` for no value."""
    if value is None:
        return "<NA>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        items = [show_value(v) for v in value[:MAX_VALUE_ITEMS]]
        more = f", ... {len(value) - MAX_VALUE_ITEMS} more" if len(value) > MAX_VALUE_ITEMS else ""
        return "(" + ", ".join(items) + more + ")"
    return str(value)


def _values_text(clause: Clause) -> str:
    if clause.error:
        return f"evaluating it failed: {clause.error}"
    return ", ".join(f"{name} is {show_value(value)}" for name, value in clause.values)


def _mark(clause: Clause) -> str:
    return "true " if clause.result else "FALSE"


def _event_heading(item: RuleExplanation) -> str:
    total = len(item.conjuncts)
    held = f"{item.satisfied} of {total} top-level conjuncts true"
    if item.status == "fired":
        return f"its condition on the first event it fired on, {item.event.describe()} ({held})"  # type: ignore[union-attr]
    if item.satisfied == total:
        return f"its condition is true on {item.event.describe()}"  # type: ignore[union-attr]
    among = f"of {item.candidates} candidate event" + ("" if item.candidates == 1 else "s")
    return f"nearest candidate {among}: {item.event.describe()}, {held}"  # type: ignore[union-attr]


def _conjunct_lines(conjuncts: Sequence[Clause], explain_first_false: bool) -> list[str]:
    lines: list[str] = []
    first_false = next((i for i, c in enumerate(conjuncts) if not c.result), None)
    width = len(str(len(conjuncts)))
    for i, clause in enumerate(conjuncts):
        note = "" if clause.reached else "  (not reached)"
        head = f"    {i + 1:>{width}}. {_mark(clause)}  {_cut(clause.shown)}"
        if clause.kind == "check" and clause.values:
            head += f"  [{_values_text(clause)}]"
        lines.append(head + note)
        if explain_first_false and i == first_false:
            if clause.label and clause.kind != "check":
                lines.append(f"         = {_cut(clause.text)}")
            if clause.kind != "check":
                lines.extend(_why_lines(clause, "         ", 0))
    if any(not c.reached for c in conjuncts):
        lines.append("    (not reached: Falco stops at the first false conjunct; shown for information)")
    return lines


def _why_lines(clause: Clause, indent: str, depth: int) -> list[str]:
    if depth >= MAX_DEPTH:
        return [f"{indent}..."]
    shown, more = clause.reasons()
    lines: list[str] = []
    for child in shown:
        text = f"{indent}{_mark(child)}  {_cut(child.text)}"
        if child.kind == "check":
            text += f": {_values_text(child)}"
        lines.append(text)
        if child.kind != "check":
            lines.extend(_why_lines(child, indent + "  ", depth + 1))
    if more:
        lines.append(f"{indent}... and {more} more")
    return lines


# -- watching one rule ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """An extracted value as JSON: text, numbers, booleans, lists; anything else as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    return str(value)


@dataclass(slots=True)
class _Snapshot:
    event: EventRef
    root: Clause
    score: tuple[int, int]


class _Watch:
    """One rule followed through a replay: its condition compiled on its own value cache."""

    def __init__(self, rule: Rule, options: EngineOptions, selected: bool) -> None:
        self.rule = rule
        self.selected = selected
        self.not_selected_reason = "" if selected else _not_selected_reason(rule, options)
        self.legacy = options.legacy_enter_events
        self.predicate: Predicate = compile_condition(rule.checked, rule.source, name=rule.name)
        self.values: EventValues = self.predicate.slots.new_values()
        self.codes = rule_codes(rule)
        self.texts: dict[int, str] = {}
        self.labels = _conjunct_labels(rule)
        self.candidates = 0
        self.nearest: _Snapshot | None = None
        self.first_true: _Snapshot | None = None
        self.first_fired: _Snapshot | None = None
        self.alerts: list[FiredAlert] = []
        self.fired = 0
        self.preempted_by: list[str] = []

    def is_candidate(self, event: Event) -> bool:
        return (event.source == self.rule.source and (self.codes is None or event.code in self.codes)
                and reaches_rules(event.code, event.direction, self.legacy))  # fmt: skip

    def observe(self, event: Event, state: Any, alerts: Sequence[Alert]) -> None:
        """Evaluate the rule on an event the state has seen; ``alerts`` are the engine's for it."""
        mine = [a for a in alerts if a.rule == self.rule.name]
        if mine:
            self.fired += len(mine)
            if len(self.alerts) < MAX_ALERTS_KEPT:
                self.alerts.extend(FiredAlert(a.rule, a.priority.label, a.output, EventRef.of(event)) for a in mine)
        if not self.is_candidate(event):
            return
        self.candidates += 1
        if mine and self.first_fired is not None:
            return
        self.values.reset(event, state)
        root = self._walk(self.predicate.tree, True)
        snapshot = _Snapshot(EventRef.of(event), root, _score(root))
        if mine:
            self.first_fired = snapshot
        elif root.result:
            if self.first_true is None:
                self.first_true = snapshot
                self.preempted_by = list(dict.fromkeys(a.rule for a in alerts))
        elif self.nearest is None or snapshot.score >= self.nearest.score:
            self.nearest = snapshot

    def _text(self, node: CompiledNode) -> str:
        key = id(node)
        text = self.texts.get(key)
        if text is None:
            ast_node = node.typed.node if isinstance(node, CompiledCheck) else node.node
            try:
                text = to_text(ast_node)
            except FalcoRulesError:
                text = type(ast_node).__name__
            self.texts[key] = text
        return text

    def _walk(self, node: CompiledNode, reached: bool) -> Clause:
        values = self.values
        if isinstance(node, CompiledCheck):
            try:
                seen = [(node.left.text, plain(values[node.left_slot]))]
                if node.right is not None:
                    seen.append((node.right.text, plain(values[node.right_slot])))
                return Clause("check", self._text(node), node.evaluate(values), reached, tuple(seen))
            except Exception as exc:  # an unreached check may fail where Falco never evaluates it
                return Clause("check", self._text(node), False, reached, error=f"{type(exc).__name__}: {exc}")
        children: list[Clause] = []
        child_reached = reached
        for child in node.children:
            clause = self._walk(child, child_reached)
            children.append(clause)
            if (node.kind == "and" and not clause.result) or (node.kind == "or" and clause.result):
                child_reached = False
        if node.kind == "and":
            result = all(c.result for c in children)
        elif node.kind == "or":
            result = any(c.result for c in children)
        else:
            result = not children[0].result
        return Clause(node.kind, self._text(node), result, reached, children=tuple(children))

    def explanation(self) -> RuleExplanation:
        rule = self.rule
        name = f"rule '{rule.name}'"
        if self.first_fired is not None:
            times = f"{self.fired} time" + ("" if self.fired == 1 else "s")
            return self._result("fired", f"{name} fired {times}", self.first_fired)
        if self.candidates == 0:
            types = _event_type_names(rule)
            wanted = f"{', '.join(types)} events" if types else f"{rule.source} events"
            return self._result("no_candidates", f"{name} did not fire: the input has no {wanted}, the only events "
                                "the rule is evaluated on")  # fmt: skip
        chosen = self.first_true or self.nearest
        assert chosen is not None
        if not self.selected:
            would = "would have fired" if self.first_true else "would not have fired either"
            return self._result("not_selected", f"{name} did not fire: {self.not_selected_reason}; if it ran, it "
                                f"{would}", chosen)  # fmt: skip
        if self.first_true is not None:
            if self.preempted_by:
                by = ", ".join(f"'{r}'" for r in self.preempted_by)
                why = f"rule_matching is first and {by} matched that event first"
            else:
                why = "no alert was raised for it"
            return self._result("preempted", f"{name} did not fire: its condition is true on "
                                f"{chosen.event.describe()}, but {why}", chosen)  # fmt: skip
        result = self._result("no_match", "", chosen)
        first_false = next(c for c in result.conjuncts if not c.result)
        summary = (f"{name} did not fire: its condition is false on all {self.candidates} candidate event(s); "
                   f"nearest miss: {_cut(first_false.shown)} is false")  # fmt: skip
        return dataclasses.replace(result, summary=summary)

    def _result(self, status: str, summary: str, chosen: _Snapshot | None = None) -> RuleExplanation:
        return RuleExplanation(
            rule=self.rule.name, status=status, summary=summary, span=self.rule.span, candidates=self.candidates,
            event_types=_event_type_names(self.rule), event=chosen.event if chosen else None,
            conjuncts=self._conjuncts(chosen) if chosen else (), alerts=tuple(self.alerts[:MAX_ALERTS_KEPT]),
            fired=self.fired, preempted_by=tuple(self.preempted_by) if status == "preempted" else (),
            not_selected=self.not_selected_reason,
        )  # fmt: skip

    def _conjuncts(self, snapshot: _Snapshot) -> tuple[Clause, ...]:
        root = snapshot.root
        parts = root.children if root.kind == "and" else (root,)
        labels = self.labels if len(self.labels) == len(parts) else ()
        out = []
        for i, clause in enumerate(parts):
            label = labels[i] if labels and labels[i] != clause.text else ""
            out.append(Clause(clause.kind, clause.text, clause.result, clause.reached, clause.values,
                              clause.children, label, clause.error))  # fmt: skip
        return tuple(out)


def _score(root: Clause) -> tuple[int, int]:
    """Top-level conjuncts true, then checks true among their nested and-parts."""
    parts = root.children if root.kind == "and" else (root,)
    return sum(c.result for c in parts), sum(_and_parts_true(c) for c in parts)


def _and_parts_true(clause: Clause) -> int:
    if clause.kind == "and":
        return sum(_and_parts_true(c) for c in clause.children)
    return int(clause.result)


def _conjunct_labels(rule: Rule) -> tuple[str, ...]:
    """The top-level conjuncts as written in the rule (macro and list names unexpanded)."""
    try:
        written = parse_condition(rule.condition)
    except FalcoRulesError:
        return ()
    parts = written.children if isinstance(written, And) else (written,)
    try:
        return tuple(to_text(p) for p in parts)
    except FalcoRulesError:
        return ()


def _event_type_names(rule: Rule) -> tuple[str, ...]:
    if rule.source != SYSCALL_SOURCE or rule.evttypes is None:
        return ()
    table = event_table().by_code
    return tuple(sorted({table[c].name for c in rule.evttypes if c in table}))


def _not_selected_reason(rule: Rule, options: EngineOptions) -> str:
    if rule.priority > options.min_priority:
        return f"its priority {rule.priority.label} is below the minimum priority {options.min_priority.label}"
    if options.enabled_tags and not options.enabled_tags.intersection(rule.tags):
        return "it has none of the tags selected with -t"
    if options.disabled_tags.intersection(rule.tags):
        return "one of its tags is disabled with -T"
    if any(s in rule.name for s in options.disabled_rules):
        return "its name is disabled with -D"
    return "it is loaded with enabled: false"


# -- the session ---------------------------------------------------------------------------------------


class ReplaySession:
    """One rule pack compiled once, replaying inputs as Falco would (state first, then rules).

    ``alerts`` gives the same alerts as :func:`falcorules_ci.engine.replay` on a fresh engine;
    ``explain`` also follows the named rules (see the module docstring).
    """

    def __init__(self, ruleset: Ruleset, options: EngineOptions | None = None) -> None:
        self.ruleset = ruleset
        self.options = options or EngineOptions()
        self.engine = EmbeddedEngine(ruleset, self.options)
        self.selected = {r.name for r in self.engine.rules}
        self.catalog = RuleCatalog(ruleset.rules)

    def alerts(self, fixture_input: FixtureInput) -> list[Alert]:
        out: list[Alert] = []
        for _, _, alerts in self._events(fixture_input):
            out.extend(alerts)
        return out

    def explain(self, fixture_input: FixtureInput, rules: Sequence[str]) -> InputExplanation:
        watches = []
        for name in dict.fromkeys(rules):
            if name not in self.catalog:
                raise UsageError(self.catalog.unknown(name))
            watches.append(_Watch(self.ruleset.rule(name), self.options, name in self.selected))
        fired: list[FiredAlert] = []
        events = 0
        for event, state, alerts in self._events(fixture_input):
            events += 1
            fired.extend(FiredAlert(a.rule, a.priority.label, a.output, EventRef.of(event)) for a in alerts)
            for watch in watches:
                watch.observe(event, state, alerts)
        return InputExplanation(fixture_input.describe(), events, tuple(w.explanation() for w in watches), tuple(fired))

    def _events(self, fixture_input: FixtureInput) -> Iterator[tuple[Event, Any, list[Alert]]]:
        """Each event with the state it was evaluated with and the engine's alerts on it, in the
        order of ``falcorules_ci.engine.replay``: state update, then the rules."""
        from falcorules_ci.state.syscall_state import SyscallState

        process = self.engine.process
        plugin_state = PluginState(hostname=self.engine.hostname, utc_offset=self.engine.utc_offset)
        with open_input(fixture_input) as opened:
            if fixture_input.event_source != SYSCALL_SOURCE:
                for event in opened:
                    plugin_state.update(event)
                    yield event, plugin_state, process(event, plugin_state)
                return
            state = SyscallState(opened.header)
            for event in opened.events():
                if event.source != SYSCALL_SOURCE:
                    plugin_state.update(event)
                    yield event, plugin_state, process(event, plugin_state)
                    continue
                state.update(event)
                yield event, state, process(event, state)


def explain_input(ruleset: Ruleset, fixture_input: FixtureInput, rules: Sequence[str],
                  options: EngineOptions | None = None) -> InputExplanation:  # fmt: skip
    """Replay one input and explain each named rule on it."""
    return ReplaySession(ruleset, options).explain(fixture_input, rules)


def failure_explanation(session: ReplaySession, fixture: Fixture, expectation: Expectation,
                        alerts: Sequence[AlertLike]) -> str | None:  # fmt: skip
    """What to add to a failed expectation's message: for ``fires``, why the rule did not fire;
    for ``not_fires``, the events the unexpected rules fired on. None when there is nothing to
    add (a mismatch of fields or counts is already spelled out)."""
    if isinstance(expectation, Fires):
        rule = expectation.spec.rule
        if rule not in session.catalog or any(a.rule == rule for a in alerts):
            return None
        return "why it did not fire:\n" + _indent(session.explain(fixture.input, [rule]).rule(rule).to_text())
    if isinstance(expectation, NotFires):
        if expectation.rule is not None:
            unexpected = [expectation.rule]
        else:
            unexpected = [a.rule for a in alerts if a.rule not in expectation.allowed]
        names = [r for r in dict.fromkeys(unexpected) if r in session.catalog]
        if not names:
            return None
        explained = session.explain(fixture.input, names)
        return "where they fired:\n" + "\n\n".join(_indent(r.to_text()) for r in explained.rules)
    return None


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


__all__ = [
    "Clause",
    "EventRef",
    "FiredAlert",
    "InputExplanation",
    "ReplaySession",
    "RuleExplanation",
    "explain_input",
    "failure_explanation",
    "show_value",
]
