"""A fixture's expectations checked against the alerts of one replay.

Each expectation is checked on its own and gives an :class:`Outcome`: passed or not, and a message
a detection engineer can act on (expected against fired rules as a diff, the output of an alert
that should not have happened, the tag a rule is missing). Rule names are checked against the
loaded pack first, so a typo in a fixture fails loudly instead of passing a ``not_fires`` check
vacuously.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from falcorules_ci.errors import Span
from falcorules_ci.expect.attack import AttackTable, TagKind, TechniquePolicy, parse_attack_tag
from falcorules_ci.expect.fixture import FireSpec, Fixture, Ioa
from falcorules_ci.rules.model import Priority

MAX_LISTED_ALERTS = 5


class AlertLike(Protocol):
    """What expectations read from an alert (``falcorules_ci.engine.alerts.Alert`` fits)."""

    @property
    def rule(self) -> str: ...
    @property
    def priority(self) -> Priority | str: ...
    @property
    def output(self) -> str: ...
    @property
    def output_fields(self) -> Mapping[str, Any]: ...
    @property
    def tags(self) -> Collection[str]: ...


class RuleLike(Protocol):
    """What expectations read from a loaded rule (``falcorules_ci.Rule`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def tags(self) -> Collection[str]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one expectation."""

    name: str  # fires[Rule], not_fires[any], attack_parity
    passed: bool
    message: str
    span: Span | None = None
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.name}: {'passed' if self.passed else 'FAILED'}: {self.message}"


class RuleCatalog:
    """The loaded pack's rules by name, with did-you-mean for names it does not have."""

    def __init__(self, rules: Iterable[RuleLike]) -> None:
        self._rules: dict[str, RuleLike] = {}
        for rule in rules:
            self._rules.setdefault(rule.name, rule)

    def get(self, name: str) -> RuleLike | None:
        return self._rules.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def unknown(self, name: str) -> str:
        """The message for a rule name the pack does not define."""
        close = difflib.get_close_matches(name, list(self._rules), n=1, cutoff=0.6)
        if not close:
            folded = {n.lower(): n for n in self._rules}
            close = [folded[name.lower()]] if name.lower() in folded else []
        hint = f"; did you mean {close[0]!r}?" if close else f" ({len(self._rules)} rules loaded)"
        return f"no rule named {name!r} in the loaded rules{hint}"


class Expectation(Protocol):
    """One thing a fixture asserts; one pytest item each."""

    @property
    def name(self) -> str: ...
    @property
    def span(self) -> Span | None: ...
    def check(self, alerts: Sequence[AlertLike], rules: RuleCatalog) -> Outcome: ...


# -- alert helpers -------------------------------------------------------------------------------------


def priority_label(value: Priority | str) -> str:
    if isinstance(value, Priority):
        return value.label
    parsed = Priority.parse(str(value))
    return parsed.label if parsed is not None else str(value)


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def same_value(expected: Any, actual: Any) -> bool:
    """An expected output field value against the alert's: numbers and texts compare by text, so
    ``uid: 0`` matches ``0`` and ``"0"``; ``null`` means the field has no value."""
    if isinstance(expected, list):
        return isinstance(actual, list | tuple) and len(expected) == len(actual) and all(
            same_value(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if expected is None or actual is None:
        return expected is None and actual is None
    return _value_text(expected) == _value_text(actual)


def mismatches(spec: FireSpec, alert: AlertLike) -> list[str]:
    """Why an alert of the right rule does not satisfy a ``fires`` entry (empty: it does)."""
    why: list[str] = []
    if spec.priority is not None and priority_label(alert.priority) != spec.priority.label:
        why.append(f"priority is {priority_label(alert.priority)}, expected {spec.priority.label}")
    fields = alert.output_fields
    for name, expected in spec.output_fields:
        if name not in fields:
            why.append(f"output_fields has no {name!r} (the rule's output does not print it)")
        elif not same_value(expected, fields[name]):
            why.append(f"{name} is {_value_text(fields[name])!r}, expected {_value_text(expected)!r}")
    for text in spec.output_contains:
        if text not in alert.output:
            why.append(f"output does not contain {text!r}")
    return why


def _times(n: int) -> str:
    return f"{n} time" + ("" if n == 1 else "s")


def list_alerts(alerts: Sequence[AlertLike], limit: int = MAX_LISTED_ALERTS) -> str:
    lines = [f"  [{priority_label(a.priority)}] {a.rule}: {a.output}" for a in alerts[:limit]]
    if len(alerts) > limit:
        lines.append(f"  ... and {len(alerts) - limit} more")
    return "\n".join(lines)


def rules_diff(expected: Sequence[str], alerts: Sequence[AlertLike]) -> str:
    """Expected against fired rules: ``-`` expected but silent, ``+`` fired but not expected."""
    fired = Counter(a.rule for a in alerts)
    lines = ["expected vs fired rules (- expected, did not fire; + fired, not expected):"]
    for rule in expected:
        lines.append(f"    {rule} (fired {_times(fired[rule])})" if fired[rule] else f"  - {rule}")
    lines.extend(f"  + {rule} (fired {_times(n)})" for rule, n in fired.items() if rule not in expected)
    if len(lines) == 1:
        lines.append("  (nothing expected, nothing fired)")
    return "\n".join(lines)


# -- expectations --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fires:
    """A rule must fire, with matching priority, output fields and text (``count`` times if given)."""

    spec: FireSpec
    expected: tuple[str, ...]  # every rule the fixture expects, for the diff
    name: str = ""

    @property
    def span(self) -> Span | None:
        return self.spec.span

    def check(self, alerts: Sequence[AlertLike], rules: RuleCatalog) -> Outcome:
        spec = self.spec
        rule = rules.get(spec.rule)
        if rule is None:
            return self._fail(rules.unknown(spec.rule))
        if not rule.enabled:
            return self._fail(f"rule {spec.rule!r} is disabled in the loaded rules (enabled: false), so it cannot "
                              "fire; enable it in the pack or move it to not_fires")  # fmt: skip
        fired = [a for a in alerts if a.rule == spec.rule]
        if not fired:
            return self._fail(f"expected rule {spec.rule!r} to fire, but it did not\n{rules_diff(self.expected, alerts)}")
        matching = [a for a in fired if not mismatches(spec, a)]
        if spec.count is None and matching:
            return Outcome(self.name, True, f"rule {spec.rule!r} fired {_times(len(matching))}", spec.span)
        if spec.count is not None and len(matching) == spec.count:
            return Outcome(self.name, True, f"rule {spec.rule!r} fired {_times(spec.count)} as expected", spec.span)
        if not matching:
            details = []
            for i, alert in enumerate(fired[:MAX_LISTED_ALERTS], 1):
                details.append(f"  alert {i}: " + "; ".join(mismatches(spec, alert)) + f"\n    output: {alert.output}")
            more = f"\n  ... and {len(fired) - MAX_LISTED_ALERTS} more" if len(fired) > MAX_LISTED_ALERTS else ""
            return self._fail(f"rule {spec.rule!r} fired {_times(len(fired))}, but no alert matched the fixture:\n"
                              + "\n".join(details) + more)  # fmt: skip
        what = "matching alert" + ("" if spec.count == 1 else "s")
        return self._fail(f"expected {spec.count} {what} of rule {spec.rule!r}, got {len(matching)}"
                          f" ({len(fired)} alerts of the rule in all):\n{list_alerts(matching)}")  # fmt: skip

    def _fail(self, message: str) -> Outcome:
        return Outcome(self.name, False, message, self.spec.span)


@dataclass(frozen=True, slots=True)
class NotFires:
    """A named rule must stay quiet; with ``rule=None``, every rule outside ``allowed`` must."""

    rule: str | None
    allowed: tuple[str, ...]
    name: str
    span: Span | None = None
    benign: bool = False

    def check(self, alerts: Sequence[AlertLike], rules: RuleCatalog) -> Outcome:
        if self.rule is not None:
            if self.rule not in rules:
                return Outcome(self.name, False, rules.unknown(self.rule), self.span)
            fired = [a for a in alerts if a.rule == self.rule]
            if not fired:
                return Outcome(self.name, True, f"rule {self.rule!r} did not fire", self.span)
            return Outcome(self.name, False, f"rule {self.rule!r} fired {_times(len(fired))}; expected it not to "
                                             f"fire:\n{list_alerts(fired)}", self.span)  # fmt: skip
        others = [a for a in alerts if a.rule not in self.allowed]
        if not others:
            quiet = "no rule fired" if self.benign else "no rule outside fires fired"
            return Outcome(self.name, True, quiet, self.span)
        if self.benign:
            head = f"benign input: expected no alerts, got {len(others)}"
        else:
            head = f"expected only the rules in fires to fire, but {len(others)} other alert(s) fired"
        body = f"{head}\n{rules_diff(self.allowed, alerts)}\n{list_alerts(others)}"
        return Outcome(self.name, False, body, self.span)


@dataclass(frozen=True, slots=True)
class AttackParity:
    """Every expected rule carries the IOA's ATT&CK technique (per the technique policy)."""

    ioa: Ioa
    technique: str
    rules: tuple[str, ...]
    policy: TechniquePolicy
    attack: AttackTable = field(compare=False, repr=False)
    name: str = "attack_parity"

    @property
    def span(self) -> Span | None:
        return self.ioa.span

    def check(self, alerts: Sequence[AlertLike], rules: RuleCatalog) -> Outcome:
        attack = self.attack
        ident = f", id {self.ioa.id}" if self.ioa.id else ""
        origin = f"{self.ioa.origin}{ident}" if self.ioa.origin else ident.lstrip(", ")
        head = (f"IOA {self.ioa.name!r}" + (f" ({origin})" if origin else "")
                + f" maps to {attack.describe(self.technique)}; technique_policy: {self.policy}")  # fmt: skip
        lines: list[str] = []
        warnings: list[str] = []
        passed = True
        for name in self.rules:
            rule = rules.get(name)
            if rule is None:
                passed = False
                lines.append(f"  FAIL {rules.unknown(name)}")
                continue
            tags = sorted(rule.tags)
            findings = attack.check_tags(tags)
            warnings.extend(f"rule {name!r}: {f.message}" for f in findings if not f.is_error)
            warnings.extend(self._tactic_warnings(name, tags))
            errors = [f.message for f in findings if f.is_error]
            matched = [t for t in tags if attack.technique_matches(self.technique, t, self.policy)]
            if matched and not errors:
                lines.append(f"  ok   {name}: tagged {', '.join(matched)}")
                continue
            passed = False
            if matched:
                lines.append(f"  FAIL {name}: tagged {', '.join(matched)}, but its ATT&CK tags are wrong: "
                             + "; ".join(errors))  # fmt: skip
            else:
                lines.append(f"  FAIL {name}: {self._missing(tags)}" + ("; also: " + "; ".join(errors) if errors else ""))
        return Outcome(self.name, passed, head + "\n" + "\n".join(lines), self.span, tuple(warnings))

    def _missing(self, tags: Sequence[str]) -> str:
        attack = self.attack
        techniques = [t for t in tags if (p := parse_attack_tag(t)) is not None and p.kind is TagKind.TECHNIQUE]
        if not techniques:
            return f"no ATT&CK technique tag; add {self.technique} to its tags"
        if self.policy == "exact":
            near = [t for t in techniques if attack.technique_matches(self.technique, t, "parent")]
            if near:
                return (f"tagged {', '.join(near)}, not {self.technique}; tag the rule {self.technique}, or set "
                        "technique_policy: parent to accept the parent technique")  # fmt: skip
        described = ", ".join(attack.describe(parse_attack_tag(t).ref) for t in techniques)  # type: ignore[union-attr]
        return f"tagged {described}, not {self.technique}; add {self.technique} to its tags"

    def _tactic_warnings(self, name: str, tags: Sequence[str]) -> list[str]:
        if not self.ioa.tactic:
            return []
        tactics = {tac.id for t in tags if (p := parse_attack_tag(t)) is not None and p.kind is not TagKind.TECHNIQUE
                   and (tac := self.attack.tactic(p.ref)) is not None}  # fmt: skip
        if not tactics or self.ioa.tactic in tactics:
            return []
        wanted = self.attack.tactic(self.ioa.tactic)
        return [f"rule {name!r} is tagged with tactic(s) {', '.join(sorted(tactics))}, not the IOA's tactic "
                f"{wanted or self.ioa.tactic}"]  # fmt: skip


# -- a fixture's expectations ---------------------------------------------------------------------------


def expectations_of(fixture: Fixture, attack: AttackTable | None = None) -> list[Expectation]:
    """The fixture's expectations, in file order, with unique names for pytest node ids:
    ``fires[Rule]`` (``fires[Rule#2]`` for a repeat), ``not_fires[Rule]``, ``not_fires[any]``,
    ``attack_parity``."""
    out: list[Expectation] = []
    seen: Counter[str] = Counter()

    def unique(base: str) -> str:
        seen[base] += 1
        return base if seen[base] == 1 else f"{base}#{seen[base]}"

    expected = fixture.expected_rules
    for spec in fixture.fires:
        out.append(Fires(spec, expected, name=f"fires[{unique(spec.rule)}]"))
    if isinstance(fixture.not_fires, tuple):
        for rule, span in zip(fixture.not_fires, fixture.not_fires_spans, strict=True):
            out.append(NotFires(rule, expected, name=f"not_fires[{unique(rule)}]", span=span))
    if fixture.benign or fixture.not_fires == "any":
        span = fixture.not_fires_spans[0] if fixture.not_fires == "any" else fixture.span
        out.append(NotFires(None, expected, name="not_fires[any]", span=span, benign=fixture.benign))
    if fixture.ioa is not None and fixture.ioa.technique and fixture.fires:
        out.append(AttackParity(fixture.ioa, fixture.ioa.technique, expected, fixture.technique_policy,
                                attack or AttackTable.load()))  # fmt: skip
    return out


def check_fixture(fixture: Fixture, alerts: Sequence[AlertLike], rules: RuleCatalog | Iterable[RuleLike],
                  attack: AttackTable | None = None) -> list[Outcome]:  # fmt: skip
    """Every expectation of the fixture against one replay's alerts."""
    catalog = rules if isinstance(rules, RuleCatalog) else RuleCatalog(rules)
    return [e.check(alerts, catalog) for e in expectations_of(fixture, attack)]
