"""Compiling collected rules as Falco's rule compiler does after each file: lists, then macros
(each seeing only the macros defined before its last change), then rules (exceptions, outputs,
conditions, event types), then unused-item warnings for everything collected so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from falcorules_ci.condition import ast
from falcorules_ci.condition.evttypes import event_codes
from falcorules_ci.condition.lint import DEPRECATED_FIELD_NOTES, deprecated_fields, lint_condition
from falcorules_ci.condition.lists import quote_item, substitute_lists
from falcorules_ci.condition.macros import MacroError, resolve_macros
from falcorules_ci.condition.output import validate_output
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.typecheck import typecheck
from falcorules_ci.errors import ConditionError, Severity, Span
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.rules.collector import LIST_OPERATORS, CollectError, Collector, fail, is_operator_with_modifier
from falcorules_ci.rules.model import Context, ExceptionInfo, Location, RuleInfo
from falcorules_ci.rules.result import LoadMessage
from falcorules_ci.rules.yamlsrc import Source, scalar_index_span
from falcorules_ci.ruleset.model import LoadOptions, Rule

DEPRECATED_FIELDS = tuple(DEPRECATED_FIELD_NOTES)
UNKNOWN_FILTER_MARKERS = ("nonexistent field", "invalid formatting token", "unknown event type", "unknown filter:")


@dataclass(slots=True)
class CompileOutput:
    rules: list[Rule] = field(default_factory=list)
    macros: dict[str, ast.Node] = field(default_factory=dict)
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)


class Compiler:
    def __init__(self, collector: Collector, registry: FieldRegistry, options: LoadOptions) -> None:
        self.col = collector
        self.registry = registry
        self.options = options
        self.out = CompileOutput()
        self.used_lists: set[str] = set()
        self.used_macros: set[str] = set()
        self.list_order: list[tuple[str, tuple[str, ...]]] = []

    def warn(self, code: str, message: str, context: Context, deprecated_field: str | None = None) -> None:
        self.out.warnings.append(LoadMessage(Severity.WARNING, code, message, context, deprecated_field))

    def compile(self) -> CompileOutput:
        try:
            self._compile_lists()
            self._compile_macros()
            self._compile_rules()
        except CollectError as exc:
            self.out.errors.append(LoadMessage(Severity.ERROR, exc.code, exc.message, exc.context))
            return self.out
        for name, info in self.col.macros.items():
            if name not in self.used_macros:
                self.warn("LOAD_UNUSED_MACRO", "Macro not referred to by any other rule/macro", info.context)
        for name, linfo in self.col.lists.items():
            if name not in self.used_lists:
                self.warn("LOAD_UNUSED_LIST", "List not referred to by any other rule/macro", linfo.context)
        return self.out

    # -- lists ---------------------------------------------------------------------------------
    def _compile_lists(self) -> None:
        for info in self.col.lists.values():
            items: list[str] = []
            for item in info.items:
                ref = self.col.lists.get(item)
                if ref is not None and ref.index < info.visibility:
                    self.used_lists.add(ref.name)
                    items.extend(ref.items)
                else:
                    items.append(item)
            self.out.lists[info.name] = tuple(items)
            self.list_order.append((info.name, tuple(items)))

    def _substitute(self, condition: str) -> str:
        return substitute_lists(condition, self.list_order, self.used_lists)

    def _parse(self, condition: str, where: Callable[[int, str], Context]) -> ast.Node:
        text = self._substitute(condition)
        try:
            return parse_condition(text)
        except ConditionError as exc:
            raise CollectError("LOAD_ERR_COMPILE_CONDITION", exc.message, where(exc.index, text)) from None

    # -- macros --------------------------------------------------------------------------------
    def _compile_macros(self) -> None:
        parsed: dict[str, ast.Node] = {}
        for info in self.col.macros.values():
            parsed[info.name] = self._parse(info.condition, self._cond_locator(info.cond_context, info.cond_node,
                                                                                 info.cond_source, info.condition))
        for info in self.col.macros.values():
            visible = {m.name for m in self.col.macros.values() if m.index < info.visibility}
            self.out.macros[info.name] = self._resolve(
                parsed[info.name], parsed, visible, self._cond_locator(info.context, None, None, info.condition)
            )
            parsed[info.name] = self.out.macros[info.name]

    def _resolve(self, node: ast.Node, macros: dict[str, ast.Node], visible: set[str] | None,
                 where: Callable[[int, str], Context]) -> ast.Node:  # fmt: skip
        def lookup(name: str) -> ast.Node | None:
            if visible is not None and name not in visible:
                return None
            return macros.get(name)

        try:
            return resolve_macros(node, lookup, self.used_macros.add)
        except MacroError as exc:
            # The index points into the text of the macro named by the error, if any.
            owner = self.col.macros.get(exc.macro) if exc.macro else None
            if owner is not None:
                where = self._cond_locator(owner.cond_context, owner.cond_node, owner.cond_source, owner.condition)
            raise fail(exc.message, where(exc.index, "")) from None

    # -- rules ---------------------------------------------------------------------------------
    def _compile_rules(self) -> None:
        additions = self.options.output_additions()
        for info in self.col.rules.values():
            if info.unknown_source:
                continue
            condition = info.condition
            exception_fields: set[str] = set()
            if info.exceptions:
                condition = build_exceptions(info.exceptions, exception_fields, condition)
            output = info.output
            extra_fields: list[tuple[str, str | None]] = []
            for extra in additions:
                if extra.matches(info.source, info.tags, info.name):
                    if extra.extra_output:
                        output = output + " " + extra.extra_output
                    extra_fields.extend(extra.extra_fields)
            if "%container.info" in output:
                self.warn(
                    "LOAD_DEPRECATED_ITEM",
                    "%container.info is deprecated and no more useful, and will be dropped by Falco 1.0.0. "
                    "The container plugin will automatically add required fields to the output message.",
                    info.context,
                )
                output = output.replace("%container.info", "")
            out_ctx = info.output_context or info.context
            try:
                validate_output(output, self.registry, info.source)
                for _, fmt in extra_fields:
                    if fmt is not None:
                        validate_output(fmt, self.registry, info.source)
            except ConditionError as exc:
                if info.skip_if_unknown_filter and _is_unknown_filter(exc.message):
                    self.warn("LOAD_UNKNOWN_FILTER", exc.message, out_ctx)
                    continue
                raise CollectError("LOAD_ERR_COMPILE_OUTPUT", exc.message, out_ctx) from None
            for df in DEPRECATED_FIELDS:
                if df in output:
                    self.warn("LOAD_DEPRECATED_ITEM",
                              f"usage of deprecated field '{df}' has been detected in the rule output",
                              out_ctx, df)  # fmt: skip
            shift = 1 if info.exceptions else 0
            where = self._cond_locator(info.cond_context or info.context, info.cond_node, info.cond_source,
                                       info.condition, shift)  # fmt: skip
            node = self._parse(condition, where)
            node = self._resolve(node, self.out.macros, None, self._cond_locator(info.context, None, None, condition))
            # Falco's warning resolver runs before compiling, so its warnings stand even on failure.
            names = iter(deprecated_fields(node))
            for code, message, _ in lint_condition(node):
                self.warn(code, message, where(0, condition),
                          next(names) if code == "LOAD_DEPRECATED_ITEM" else None)  # fmt: skip
            try:
                checked, hints = typecheck(node, self.registry, info.source)
            except ConditionError as exc:
                if info.skip_if_unknown_filter and _is_unknown_filter(exc.message):
                    self.warn("LOAD_UNKNOWN_FILTER", exc.message, where(exc.index, condition))
                    continue
                raise CollectError("LOAD_ERR_COMPILE_CONDITION", exc.message, where(exc.index, condition)) from None
            for code, message, index in hints:
                if code == "LOAD_COMPILE_CONDITION":  # the others came from lint_condition above
                    self.warn(code, message, where(index, condition))
            evttypes: frozenset[int] | None = None
            if info.source == "syscall":
                evttypes = event_codes(node)
                # Engine 0.62 (Falco 0.44.1) also warns for an empty set, e.g. `never_true` rules.
                if (not evttypes or len(evttypes) > 100) and info.warn_evttypes:
                    self.warn("LOAD_NO_EVTTYPE",
                              "Rule matches too many evt.type values. This has a significant performance penalty.",
                              info.context)  # fmt: skip
            self.out.rules.append(
                Rule(
                    name=info.name, description=info.desc, source=info.source, priority=info.priority,
                    enabled=info.enabled, tags=tuple(sorted(info.tags)), condition=condition, expanded=node,
                    checked=checked, output=output, extra_fields=tuple(extra_fields), evttypes=evttypes,
                    exception_fields=frozenset(exception_fields), capture=info.capture,
                    capture_duration=info.capture_duration, span=info.context.span, index=info.index,
                )  # fmt: skip
            )

    # -- positions -----------------------------------------------------------------------------
    def _cond_locator(self, ctx: Context, node: object, source: object, original: str, shift: int = 0
                      ) -> Callable[[int, str], Context]:  # fmt: skip
        """A function mapping an index in the (substituted) condition text to a context chain."""

        def where(index: int, text: str) -> Context:
            orig_index = _map_index(original, text, index - shift) if text else index - shift
            if isinstance(node, yaml.ScalarNode) and isinstance(source, Source):
                span = scalar_index_span(source, node, orig_index)
                snippet = source.text
            else:
                span = ctx.span
                snippet = ctx.snippet_source
            name = '"' + (original if len(original) <= 20 else original[:17] + '..."')
            if len(original) <= 20:
                name += '"'
            name = name.replace("\n", " ").replace("\r", " ")
            last = ctx.locations[-1] if ctx.locations else Location("", "", "", 0, 0, 0)
            loc = Location("condition expression", "", name, last.line, last.column + max(orig_index, 0),
                           last.offset + max(orig_index, 0))  # fmt: skip
            return Context(ctx.locations + (loc,), span, snippet)

        return where


def _map_index(original: str, text: str, index: int) -> int:
    """Map an index in the list-substituted text back to the original condition text."""
    if text == original or index <= 0:
        return max(index, 0)
    # The prefix before the first difference is shared; beyond it, look the token up.
    common = 0
    for a, b in zip(original, text, strict=False):
        if a != b:
            break
        common += 1
    if index < common:
        return index
    token_end = index
    while token_end < len(text) and not text[token_end].isspace() and text[token_end] not in "()":
        token_end += 1
    token = text[index:token_end]
    found = original.find(token, common) if token else -1
    return found if found >= 0 else min(index, max(len(original) - 1, 0))


def _is_unknown_filter(message: str) -> bool:
    return any(marker in message for marker in UNKNOWN_FILTER_MARKERS)


def build_exceptions(exceptions: list[ExceptionInfo], fields_out: set[str], condition: str) -> str:
    """Falco's text for exceptions: ``(C) and not E1 and not E2`` with its exact spacing."""
    condition = "(" + condition + ")"
    for ex in exceptions:
        icond = ""
        if not ex.fields.is_list:
            for val in ex.values:
                if val.is_list:
                    raise fail("Expected values array to contain a list of strings", ex.context)
                icond += ("(" + ex.fields.item + " " + ex.comps.item + " (") if not icond else ", "
                fields_out.add(ex.fields.item)
                icond += quote_item(val.item)
            icond += "))" if icond else ""
        else:
            icond = "("
            for values in ex.values:
                if len(ex.fields.items) != len(values.items):
                    raise fail("Fields and values lists must have equal length", ex.context)
                icond += "" if icond == "(" else " or "
                icond += "("
                for k, fld in enumerate(ex.fields.items):
                    icond += "" if k == 0 else " and "
                    value = values.items[k]
                    comp = ex.comps.items[k].item
                    if value.is_list:
                        istr = "(" + ", ".join(quote_item(v.item) for v in value.items) + ")"
                    elif comp in LIST_OPERATORS or is_operator_with_modifier(comp):
                        istr = value.item if value.item.startswith("(") else "(" + value.item + ")"
                    else:
                        istr = quote_item(value.item)
                    icond += " " + fld.item + " " + comp + " " + istr
                    fields_out.add(fld.item)
                icond += ")"
            icond += ")"
            if icond == "()":
                icond = ""
        if icond:
            condition += " and not " + icond
    return condition


def rule_span(info: RuleInfo) -> Span:
    return info.context.span
