"""Falco's condition language: parsing, printing, lists, macros, typing, event types, outputs.

The stages follow Falco's loader: ``substitute_lists`` (text) → ``parse_condition`` (AST) →
``resolve_macros`` → ``typecheck`` against the field registry (typed AST + warnings) →
``event_codes`` for syscall rules. ``parse_output`` does the same for output formats.
"""

from __future__ import annotations

from falcorules_ci.condition.evttypes import event_codes, event_names
from falcorules_ci.condition.lists import expand_list_items, quote_item, substitute_lists
from falcorules_ci.condition.macros import MacroError, collect_identifiers, resolve_macros
from falcorules_ci.condition.output import OutputFormat, OutputToken, format_fields, parse_output, validate_output
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.printer import to_sysdig_filter, to_text
from falcorules_ci.condition.typecheck import (
    ConditionWarning,
    TypedCheck,
    TypedCondition,
    TypedNode,
    fields_used,
    lint_condition,
    typecheck,
)

__all__ = [
    "ConditionWarning",
    "MacroError",
    "OutputFormat",
    "OutputToken",
    "TypedCheck",
    "TypedCondition",
    "TypedNode",
    "collect_identifiers",
    "event_codes",
    "event_names",
    "expand_list_items",
    "fields_used",
    "format_fields",
    "lint_condition",
    "parse_condition",
    "parse_output",
    "quote_item",
    "resolve_macros",
    "substitute_lists",
    "to_sysdig_filter",
    "to_text",
    "typecheck",
    "validate_output",
]
