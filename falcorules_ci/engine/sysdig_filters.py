"""Which rules sysdig 0.29.3 can check, and the libsinsp filter each one becomes.

A rule is checkable when it is a syscall rule, every field of its condition is one sysdig 0.29.3
knows (``FieldInfo.sysdig_known``), and the condition — macros, lists and exceptions already
resolved in ``Rule.expanded`` — prints in that sysdig's filter syntax
(:func:`~falcorules_ci.condition.printer.to_sysdig_filter`). Everything else is reported as not
checkable, with the reason, by rule name: nothing is silently passed. Filters sysdig itself then
rejects when it compiles them are added to the same report by the engine.

The output side: an output field sysdig cannot print (unknown to it, filter-only there, or an
argument-less ancestor field its formatter misreads) is rendered as ``<NA>`` in sysdig alerts;
:attr:`RulePlan.unprintable` lists them per rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from falcorules_ci.condition.output import as_libsinsp_string, parse_output
from falcorules_ci.condition.printer import to_sysdig_filter
from falcorules_ci.condition.typecheck import (
    field_matches,
    plain_fields,
)
from falcorules_ci.engine.formatter import TIME_FIELDS
from falcorules_ci.engine.sysdig_runner import FILTER_ONLY_FIELDS, MISPRINTED_FIELDS
from falcorules_ci.errors import FalcoRulesError
from falcorules_ci.fields.registry import FieldMatch, FieldRegistry
from falcorules_ci.ruleset.model import Rule
from falcorules_ci.sources.event import SYSCALL_SOURCE


@dataclass(frozen=True, slots=True)
class OutputField:
    """One plain field of a rule's output: its libsinsp name (``proc.aname[2]``, the
    ``output_fields`` key) and whether sysdig 0.29.3 can print it."""

    name: str
    match: FieldMatch | None  # None for the event time fields, which we render from the timestamp
    printable: bool


@dataclass(frozen=True, slots=True)
class RulePlan:
    """A rule as the sysdig engine sees it: its filter, or why it cannot be checked."""

    rule: Rule
    filter: str | None
    reason: str | None
    output_fields: tuple[OutputField, ...] = ()

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def checkable(self) -> bool:
        return self.filter is not None

    @property
    def unprintable(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.output_fields if f.match is not None and not f.printable)

    @property
    def printed(self) -> tuple[str, ...]:
        """The output fields to ask sysdig for."""
        return tuple(f.name for f in self.output_fields if f.printable)


# Fields whose filter values sysdig 0.29.3 resolves through the machine's DNS when it compiles the
# filter (its DNS manager looks every listed host name up, blocking for seconds per name offline):
# results would depend on the network, so rules comparing them are not checked.
DNS_FIELDS = frozenset({"fd.sip.name", "fd.cip.name", "fd.rip.name", "fd.lip.name"})


def unknown_fields(matches: Iterable[FieldMatch]) -> list[str]:
    """The fields (as written) that sysdig 0.29.3 does not know, sorted."""
    return sorted({m.text for m in matches if not m.info.sysdig_known})


def printable_by_sysdig(match: FieldMatch) -> bool:
    """Whether ``-p %FIELD`` prints this field's value in sysdig 0.29.3."""
    if not match.info.sysdig_known or match.info.name in FILTER_ONLY_FIELDS:
        return False
    return not (match.arg is None and match.info.name in MISPRINTED_FIELDS)


def _output_fields(rule: Rule, registry: FieldRegistry) -> tuple[OutputField, ...]:
    star = rule.output if rule.output.startswith("*") else "*" + rule.output
    parsed = parse_output(star, registry, rule.source)
    found: dict[str, OutputField] = {}
    for token in parsed.tokens:
        for typed in plain_fields(token.typed):
            match = typed.match
            name = as_libsinsp_string(typed.node)
            if name in found:
                continue
            if name in TIME_FIELDS:
                found[name] = OutputField(name, None, False)
            else:
                found[name] = OutputField(name, match, printable_by_sysdig(match))
    return tuple(found.values())


def plan_rule(rule: Rule, registry: FieldRegistry) -> RulePlan:
    """The filter of one rule for sysdig 0.29.3, or the reason it has none."""
    if rule.source != SYSCALL_SOURCE:
        return RulePlan(rule, None, f"source {rule.source}: sysdig 0.29.3 reads syscall captures only")
    used = field_matches(rule.checked)
    unknown = unknown_fields(used)
    outputs = _output_fields(rule, registry)
    if unknown:
        return RulePlan(rule, None, "fields unknown to sysdig 0.29.3: " + ", ".join(unknown), outputs)
    dns = sorted({m.text for m in used if m.info.name in DNS_FIELDS})
    if dns:
        return RulePlan(rule, None, f"compares {', '.join(dns)} with host names, which sysdig 0.29.3 resolves "
                                    "through this machine's DNS (network-dependent results)", outputs)  # fmt: skip
    try:
        text = to_sysdig_filter(rule.expanded)
    except FalcoRulesError as exc:
        return RulePlan(rule, None, exc.message, outputs)
    return RulePlan(rule, text, None, outputs)


def plan_rules(rules: Iterable[Rule], registry: FieldRegistry) -> list[RulePlan]:
    """Every rule's plan, in the given (load) order."""
    return [plan_rule(rule, registry) for rule in rules]


__all__ = ["DNS_FIELDS", "OutputField", "RulePlan", "plan_rule", "plan_rules", "printable_by_sysdig", "unknown_fields"]
